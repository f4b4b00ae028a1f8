//! `ferromq-replication`: RocketMQ 4.x master/slave HA on the ferromq engine,
//! byte-compatible with RocketMQ's `HAService` / `HAConnection` / `HAClient`.
//!
//! The wire protocol (big-endian, one TCP connection per slave):
//! - slave → master: a bare `i64`, the slave's commitlog max offset, on connect,
//!   after each applied chunk and at least every `haSendHeartbeatInterval` ms;
//! - master → slave: frames `[i64 offset][i32 size][size bytes]` of raw commitlog
//!   bytes, at most `haTransferBatchSize` bytes, never crossing a commitlog file;
//!   an empty frame (size 0) is a heartbeat. A new slave (first report 0) is
//!   streamed from the start of the master's last commitlog file.
//!
//! [`HaMaster`] serves slaves and implements [`ferromq_engine::ReplicaWaiter`], so a
//! SYNC_MASTER store's puts wait until a slave has their bytes (group transfer:
//! concurrent puts share the wait). [`HaSlave`] follows a master, appends what it
//! is sent at exactly the offset it was sent for, and reconnects by itself.
//!
//! With [`HaConfig::auto_switch`] both run RocketMQ 5's controller mode
//! ("epoch mode", [`autoswitch`]): an epoch hello before the stream, in which
//! a rejoining slave truncates the tail the master never had; per-slave
//! broker ids; SYNC acks by the SyncStateSet; fencing.
//!
//! ```no_run
//! use std::sync::Arc;
//! use ferromq_engine::{BrokerRole, MessageStore, StoreConfig};
//! use ferromq_replication::{HaConfig, HaMaster, HaSlave};
//!
//! let mut m = StoreConfig::new("/tmp/master");
//! m.broker_role = BrokerRole::SyncMaster;
//! let master_store = Arc::new(MessageStore::open(m)?);
//! let master = HaMaster::start(master_store.clone(), "127.0.0.1:0".parse().unwrap(), HaConfig::default())?;
//! master_store.set_replica_waiter(Some(master.waiter()));
//!
//! let mut s = StoreConfig::new("/tmp/slave");
//! s.broker_role = BrokerRole::Slave;
//! let slave_store = Arc::new(MessageStore::open(s)?);
//! let slave = HaSlave::start(slave_store, master.local_addr().to_string(), HaConfig::default())?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod auth;
pub mod autoswitch;
pub mod epoch;
mod frame;
mod master;
mod slave;
pub mod tls;

pub use auth::HaAuth;
pub use autoswitch::{AutoSwitch, EpochCache};
pub use epoch::{EpochEntry, EpochError, EpochFile};
pub use frame::{read_frame_header, FRAME_HEADER_LEN};
pub use master::{HaMaster, SlaveInfo, MAX_SLAVE_CONNECTIONS, MAX_SLAVE_CONNECTIONS_PER_ADDRESS};
pub use slave::{HaSlave, SlaveStatus};
pub use tls::HaTls;

use std::sync::Arc;
use std::time::Duration;

/// Errors of the replication layer.
#[derive(Debug, thiserror::Error)]
pub enum HaError {
    /// A socket operation failed.
    #[error("HA I/O error {context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The peer sent something the protocol does not allow.
    #[error("HA protocol error: {0}")]
    Protocol(String),
    /// The store refused the operation.
    #[error("store error: {0}")]
    Store(#[from] ferromq_engine::Error),
    /// The epoch file could not be changed (epoch mode).
    #[error("epoch file error: {0}")]
    Epoch(#[from] EpochError),
}

impl HaError {
    fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        HaError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Settings, with RocketMQ's key names and defaults.
#[derive(Debug, Clone)]
pub struct HaConfig {
    /// `haTransferBatchSize`: largest frame body. Default 32 KiB, at most 4 MiB
    /// (the largest frame a slave accepts).
    pub transfer_batch_size: usize,
    /// `haSendHeartbeatInterval`: idle time after which a heartbeat is sent. Default 5 s.
    pub heartbeat_interval: Duration,
    /// `haHousekeepingInterval`: silence after which a peer is dropped. Default 20 s.
    pub housekeeping_interval: Duration,
    /// `haSlaveFallbehindMax`: lag beyond which SYNC puts fail at once. Default 256 MiB.
    pub slave_fallbehind_max: u64,
    /// Time between a slave's reconnection attempts. Default 5 s.
    pub reconnect_interval: Duration,
    /// A slave missing bytes the master has had for this long (or lagging by
    /// `slave_fallbehind_max` bytes) is logged as fallen behind, and logged
    /// again once it has caught up. Default 5 s.
    pub fall_behind_alarm: Duration,
    /// The authenticated handshake's credentials and checks (a ferromq
    /// extension, see [`auth`]): with `Some`, a master serves only slaves that
    /// pass it and a slave follows only a master that does. Default `None`:
    /// RocketMQ's unauthenticated protocol.
    pub auth: Option<Arc<dyn HaAuth>>,
    /// TLS on the HA connection (a ferromq extension, see [`tls`]). Default:
    /// none, plain TCP as RocketMQ.
    pub tls: HaTls,
    /// Epoch mode (RocketMQ 5's controller mode, see [`autoswitch`]): with
    /// `Some`, a slave runs the epoch handshake (truncating a diverged tail)
    /// before following, and a master answers it, tracks each slave's
    /// broker id and acks SYNC puts by the SyncStateSet
    /// ([`HaMaster::set_sync_state_set`]). Both sides must agree. Default
    /// `None`: RocketMQ 4's protocol, unchanged.
    pub auto_switch: Option<AutoSwitch>,
}

impl Default for HaConfig {
    fn default() -> Self {
        HaConfig {
            transfer_batch_size: 32 * 1024,
            heartbeat_interval: Duration::from_secs(5),
            housekeeping_interval: Duration::from_secs(20),
            slave_fallbehind_max: 256 * 1024 * 1024,
            reconnect_interval: Duration::from_secs(5),
            fall_behind_alarm: Duration::from_secs(5),
            auth: None,
            tls: HaTls::default(),
            auto_switch: None,
        }
    }
}

/// Longest interval honoured (10 years): larger settings are clamped to it, as
/// deadlines that far ahead would overflow the clock.
pub const MAX_INTERVAL: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

impl HaConfig {
    /// The HA settings of a store configuration (intervals between 1 ms and
    /// [`MAX_INTERVAL`]).
    pub fn from_store_config(cfg: &ferromq_engine::StoreConfig) -> Self {
        let ms = |v: u64| Duration::from_millis(v.max(1)).min(MAX_INTERVAL);
        HaConfig {
            // Frames larger than a slave accepts would be refused by it.
            transfer_batch_size: (cfg.ha_transfer_batch_size.max(1) as usize)
                .min(frame::MAX_FRAME_BODY),
            heartbeat_interval: ms(cfg.ha_send_heartbeat_interval_ms),
            housekeeping_interval: ms(cfg.ha_housekeeping_interval_ms),
            slave_fallbehind_max: cfg.ha_slave_fallbehind_max,
            reconnect_interval: Duration::from_secs(5),
            fall_behind_alarm: Duration::from_secs(5),
            auth: None,
            tls: HaTls::default(),
            auto_switch: None,
        }
    }
}
