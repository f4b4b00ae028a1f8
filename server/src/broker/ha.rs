//! Master/slave replication for the broker: a master serves slaves on its HA
//! port (and SYNC_MASTER puts wait for them); a slave follows the master that
//! `haMasterAddress` names, or the one the name server reports at registration.

use ferromq_engine::sync::LockExt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use ferromq_engine::{BrokerRole, MessageStore, StoreConfig};
use ferromq_replication::{HaConfig, HaMaster, HaSlave, SlaveInfo, SlaveStatus};

/// The broker's replication side.
pub struct HaRole {
    master: Option<HaMaster>,
    slave: Option<HaSlave>,
    /// `haServerAddr` this broker registers (`brokerIP2:haPort`).
    advertised: String,
    /// Set from the config: name-server reports must not override it.
    fixed_master: bool,
    fixed_address: Option<String>,
    learned_master: Mutex<Option<String>>,
}

impl std::fmt::Debug for HaRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HaRole")
            .field("advertised", &self.advertised)
            .finish()
    }
}

impl HaRole {
    /// Start the master or slave side for `store`. `bind_ip` is the address the
    /// broker listens on; `configured_listen_port` is `listenPort` as configured
    /// (0: the OS chose the port, so the HA port is chosen by the OS too).
    /// `auth`: the authenticated handshake (ACL on), or `None`; `tls`: TLS
    /// on the HA connection (the broker's TLS settings).
    pub fn start(
        store: &Arc<MessageStore>,
        cfg: &StoreConfig,
        bind_ip: std::net::IpAddr,
        configured_listen_port: u16,
        advertise_ip: &str,
        auth: Option<Arc<dyn ferromq_replication::HaAuth>>,
        tls: ferromq_replication::HaTls,
    ) -> Result<HaRole, String> {
        let mut ha_cfg = HaConfig::from_store_config(cfg);
        ha_cfg.auth = auth;
        ha_cfg.tls = tls;
        match cfg.broker_role {
            BrokerRole::Slave => {
                let fixed = cfg.ha_master_address.clone();
                let slave =
                    HaSlave::start(store.clone(), fixed.clone().unwrap_or_default(), ha_cfg)
                        .map_err(|e| format!("cannot start the HA slave: {e}"))?;
                Ok(HaRole {
                    master: None,
                    slave: Some(slave),
                    advertised: String::new(),
                    fixed_master: fixed.is_some(),
                    fixed_address: fixed,
                    learned_master: Mutex::new(None),
                })
            }
            BrokerRole::AsyncMaster | BrokerRole::SyncMaster => {
                let port = if cfg.ha_listen_port != 0 {
                    cfg.ha_listen_port
                } else if configured_listen_port == 0 {
                    0
                } else {
                    configured_listen_port.wrapping_add(1)
                };
                let master = HaMaster::start(store.clone(), SocketAddr::new(bind_ip, port), ha_cfg)
                    .map_err(|e| format!("cannot start the HA master: {e}"))?;
                if cfg.broker_role == BrokerRole::SyncMaster {
                    store.set_replica_waiter(Some(master.waiter()));
                }
                let advertised = format!("{advertise_ip}:{}", master.local_addr().port());
                Ok(HaRole {
                    master: Some(master),
                    slave: None,
                    advertised,
                    fixed_master: false,
                    fixed_address: None,
                    learned_master: Mutex::new(None),
                })
            }
        }
    }

    /// The `haServerAddr` to register (empty on a slave).
    pub fn advertised(&self) -> &str {
        &self.advertised
    }

    /// The HA port a master listens on.
    pub fn master_port(&self) -> Option<u16> {
        self.master.as_ref().map(|m| m.local_addr().port())
    }

    /// A name server told this slave where its master's HA port is.
    pub fn on_master_learned(&self, ha_server_addr: &str) {
        let Some(slave) = &self.slave else { return };
        if self.fixed_master || ha_server_addr.len() < 6 {
            return;
        }
        let mut learned = self.learned_master.locked();
        if learned.as_deref() != Some(ha_server_addr) {
            tracing::info!(
                master = ha_server_addr,
                "following the master the name server reported"
            );
            *learned = Some(ha_server_addr.to_string());
            slave.set_master_address(ha_server_addr.to_string());
        }
    }

    /// The master HA address a slave follows (configured or learned).
    pub fn master_address(&self) -> Option<String> {
        self.slave.as_ref()?;
        if self.fixed_master {
            return self.fixed_address.clone();
        }
        self.learned_master.locked().clone()
    }

    /// Slaves of a master, with their lag.
    pub fn slaves(&self) -> Vec<SlaveInfo> {
        self.master.as_ref().map(|m| m.slaves()).unwrap_or_default()
    }

    /// A slave's connection status.
    pub fn slave_status(&self) -> Option<SlaveStatus> {
        self.slave.as_ref().map(|s| s.status())
    }

    /// Stop replicating (before the store shuts down).
    pub fn shutdown(&self) {
        if let Some(m) = &self.master {
            m.shutdown();
        }
        if let Some(s) = &self.slave {
            s.shutdown();
        }
    }
}
