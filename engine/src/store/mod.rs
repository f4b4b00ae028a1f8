//! [`MessageStore`]: the embedding API.
//!
//! The store opens in named steps (`open.rs`), writes in `put.rs`, reads in
//! `read.rs`, answers administration and replication in `admin.rs` and stops
//! in `shutdown.rs`; its public result types are in `types.rs`. The service
//! loops live beside their policies: the clean pass in [`crate::retention`],
//! delayed delivery in [`crate::schedule`], the commit and consume-queue flush
//! loops in [`crate::flush`].

use std::fs::File;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::checkpoint::Checkpoint;
use crate::commitlog::CommitLog;
use crate::config::StoreConfig;
use crate::dispatch::{Arrivals, CqTable, Dispatcher};
use crate::flush::{CommitLogFlusher, CqFlushPolicy, Fence};
use crate::index::IndexService;
use crate::retention::{CleanPassReport, Hanging, StoreEnv};
use crate::topic::TopicTable;

mod admin;
mod open;
mod put;
mod read;
mod repair;
mod shutdown;
mod types;

pub(crate) use open::{CQ_MANIFEST, CQ_MIN_MANIFEST};
pub use types::{
    GetResult, GetStatus, MessageFilter, PutCallback, PutResult, PutStatus, QueryResult,
    RecoveryReport, ReplicaCallback, ReplicaWaiter, StoreStats, StoredMessage,
};

pub(crate) struct StoreInner {
    pub(crate) cfg: StoreConfig,
    pub(crate) store_host: SocketAddr,
    pub(crate) commitlog: CommitLog,
    pub(crate) cqs: CqTable,
    pub(crate) topics: TopicTable,
    pub(crate) fence: Arc<Fence>,
    pub(crate) flusher: CommitLogFlusher,
    pub(crate) checkpoint: Checkpoint,
    pub(crate) index: Option<IndexService>,
    pub(crate) schedule: crate::schedule::ScheduleState,
    pub(crate) dispatcher: Dispatcher,
    pub(crate) arrivals: Arrivals,
    pub(crate) cq_flush: CqFlushPolicy,
    pub(crate) stopping: AtomicBool,
    pub(crate) shut_down: AtomicBool,
    pub(crate) lock_file: File,
    pub(crate) threads: Mutex<Vec<JoinHandle<()>>>,
    pub(crate) replica_waiter: std::sync::RwLock<Option<Arc<dyn ReplicaWaiter>>>,
    pub(crate) env: StoreEnv,
    pub(crate) disk_full: AtomicBool,
    pub(crate) manual_delete_rounds: std::sync::atomic::AtomicU32,
    pub(crate) clean_waker: crate::flush::Waker,
    /// Wakes the pool's commit service once `commitCommitLogLeastPages` wait.
    pub(crate) commit_waker: crate::flush::Waker,
    pub(crate) schedule_waker: crate::flush::Waker,
    pub(crate) last_clean: Mutex<Option<CleanPassReport>>,
    /// Deletions that failed or hang, retried every `redeleteHangedFileInterval` ms.
    pub(crate) hanging: Mutex<Hanging>,
    /// Units per consume queue last recorded as flushed (`config/consumeQueueMax.json`).
    pub(crate) cq_manifest:
        Mutex<std::collections::BTreeMap<String, std::collections::BTreeMap<u32, u64>>>,
    /// First-file queue offset per consume queue last recorded (`config/consumeQueueMin.json`).
    pub(crate) cq_min_manifest:
        Mutex<std::collections::BTreeMap<String, std::collections::BTreeMap<u32, u64>>>,
    /// Records found damaged by reads (listed for the admin tool).
    pub(crate) damaged: crate::damage::DamagedRecords,
    /// Consume-queue repairs running and waiting (see `repair`).
    repairs: repair::Repairs,
    /// Consume-queue units rewritten by repairs.
    pub(crate) units_repaired: std::sync::atomic::AtomicU64,
    pub(crate) total_ram: u64,
    pub(crate) recovery: RecoveryReport,
    /// The first failed flush of derived data (consume queues, index,
    /// checkpoint) since open: it does not fence (the commitlog holds every
    /// acknowledged message), but from then on the checkpoint's logics and
    /// index offsets stay where they were last known durable and shutdown
    /// keeps the abort marker, so the next open re-dispatches from there.
    pub(crate) cq_flush_failed: Mutex<Option<String>>,
    pub(crate) cq_flush_log: crate::dispatch::LogLimiter,
    /// Consume-queue files retention did not delete because the first-file
    /// manifest could not be written first: the next clean pass does.
    pub(crate) cq_expiry_owed: AtomicBool,
    /// Held by a clean pass (see `clean_pass`).
    pub(crate) clean_pass_lock: Mutex<()>,
}

/// An embedded RocketMQ-style message store.
///
/// ```no_run
/// use ferromq_engine::{Message, MessageFilter, MessageStore, StoreConfig};
/// let store = MessageStore::open(StoreConfig::new("/tmp/ferromq-doc"))?;
/// let put = store.put_message(&Message::new("TopicTest", b"hello".to_vec()).with_tags("TagA"))?;
/// store.wait_for_messages("TopicTest", 0, put.queue_offset, std::time::Duration::from_secs(1));
/// let got = store.get_message("group", "TopicTest", 0, 0, 32, &MessageFilter::All)?;
/// assert_eq!(got.messages[0].decode()?.body, b"hello");
/// store.shutdown()?;
/// # Ok::<(), ferromq_engine::Error>(())
/// ```
pub struct MessageStore {
    inner: Arc<StoreInner>,
}

impl std::fmt::Debug for MessageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageStore")
            .field("root", &self.inner.cfg.store_path_root_dir)
            .finish()
    }
}

impl MessageStore {
    /// The configuration the store runs with.
    pub fn config(&self) -> &StoreConfig {
        &self.inner.cfg
    }

    /// What opening the store found and did.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.inner.recovery
    }
}

/// How many nice levels the store's background threads drop below the level
/// they start at (see [`crate::sys::lower_thread_priority`]).
pub(crate) const BACKGROUND_NICE: i32 = 5;
