//! [`MessageStore`]: the embedding API.
//!
//! Where each part lives:
//! - `open.rs`: [`MessageStore::open`] as named steps, in order: lock the
//!   directory, open and walk the commitlog, load the consume queues, plan
//!   the re-dispatch, re-dispatch, restore queue offsets, mark the store open,
//!   start the services (RocketMQ's `DefaultMessageStore` `load()` →
//!   `recover()` → `start()`); the consume-queue manifests.
//! - `put.rs`: every put and wait-for-put path, validation, queue assignment.
//! - `read.rs`: gets, queue offsets, lookups, queries, time search, waits.
//! - `admin.rs`: topics, delay offsets, statistics, retention controls,
//!   replication hooks.
//! - `shutdown.rs`: flushing everything and stopping.
//! - `types.rs`: the public result, status and statistics types.
//! - `repair.rs`: rebuilding damaged consume-queue stretches in place.
//! - `role.rs`: switching between master and slave while the store runs.
//! - `truncate.rs`: cutting the commitlog back while the store runs (a slave
//!   about to follow a new master), consume queues and index following.
//! - this file: the store's state ([`MessageStore`], `StoreInner`) and the
//!   dispatch service's loop.
//!
//! The other service loops live beside their policies: the clean pass in
//! [`crate::retention`], delayed delivery in `crate::schedule`, the commit
//! and consume-queue flush loops in `crate::flush`; what they share (wake-up
//! signal, panic guard, thread set) in `crate::service`.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::checkpoint::Checkpoint;
use crate::commitlog::CommitLog;
use crate::config::{BrokerRole, StoreConfig};
use crate::consume_queue::CqTable;
use crate::dispatch::{Arrivals, Dispatcher};
use crate::error::Error;
use crate::flush::{CommitLogFlusher, Fence, FlushPolicy};
use crate::index::IndexService;
use crate::retention::{CleanState, StoreEnv};
use crate::sync::RwLockExt;
use crate::topic::TopicTable;

mod admin;
mod confirm;
mod open;
mod put;
mod read;
mod repair;
mod role;
mod shutdown;
mod truncate;
mod types;

use open::{LoadedQueues, OpenedLog};

pub(crate) use open::{CQ_MANIFEST, CQ_MIN_MANIFEST};

pub use types::{
    CommitLogRecovery, GetResult, GetStatus, LogTruncation, MessageFilter, PutCallback, PutResult,
    PutStatus, QueryResult, RecordFilter, RecoveryReport, ReplicaCallback, ReplicaWaiter,
    StoreStats, StoredMessage,
};

/// A consume-queue manifest: per topic, per queue id, a queue offset (see
/// [`CQ_MANIFEST`], [`CQ_MIN_MANIFEST`]).
pub(crate) type Manifest = BTreeMap<String, BTreeMap<u32, u64>>;

/// The store's state, shared by the API handle and the service threads.
/// Fields the service loops outside this module use (retention, schedule,
/// flush) are `pub(crate)`; the rest are the store's own.
pub(crate) struct StoreInner {
    pub(crate) cfg: StoreConfig,
    store_host: SocketAddr,
    pub(crate) commitlog: CommitLog,
    pub(crate) cqs: CqTable,
    topics: TopicTable,
    pub(crate) fence: Arc<Fence>,
    pub(crate) flusher: CommitLogFlusher,
    pub(crate) checkpoint: Checkpoint,
    pub(crate) index: Option<IndexService>,
    pub(crate) schedule: crate::schedule::ScheduleState,
    pub(crate) dispatcher: Dispatcher,
    arrivals: Arrivals,
    /// The consume-queue flush schedule (changed live).
    pub(crate) cq_flush: crate::live::LivePolicy,
    /// The effective config and the settings changed live (see [`crate::live`]).
    pub(crate) live: crate::live::LiveSettings,
    pub(crate) stopping: AtomicBool,
    shut_down: AtomicBool,
    lock_file: File,
    threads: crate::service::ServiceThreads,
    replica_waiter: std::sync::RwLock<Option<Arc<dyn ReplicaWaiter>>>,
    pub(crate) env: StoreEnv,
    /// The clean service's state (see [`crate::retention`]).
    pub(crate) clean: CleanState,
    /// Wakes the pool's commit service once `commitCommitLogLeastPages` wait.
    pub(crate) commit_waker: crate::service::Waker,
    pub(crate) schedule_waker: crate::service::Waker,
    /// Timer messages (see [`crate::timer`]).
    pub(crate) timer: crate::timer::TimerState,
    /// Wakes the consume-queue flush service at shutdown.
    pub(crate) cq_flush_waker: crate::service::Waker,
    /// Units per consume queue last recorded as flushed (`config/consumeQueueMax.json`).
    pub(crate) cq_manifest: Mutex<Manifest>,
    /// First-file queue offset per consume queue last recorded (`config/consumeQueueMin.json`).
    pub(crate) cq_min_manifest: Mutex<Manifest>,
    /// Records found damaged by reads (listed for the admin tool).
    damaged: crate::damage::DamagedRecords,
    /// Consume-queue repairs running and waiting (see `repair`).
    repairs: repair::Repairs,
    /// Consume-queue units rewritten by repairs.
    units_repaired: std::sync::atomic::AtomicU64,
    total_ram: u64,
    recovery: RecoveryReport,
    /// The first failed flush of derived data (consume queues, index,
    /// checkpoint) since open: it does not fence (the commitlog holds every
    /// acknowledged message), but from then on the checkpoint's logics and
    /// index offsets stay where they were last known durable and shutdown
    /// keeps the abort marker, so the next open re-dispatches from there.
    pub(crate) cq_flush_failed: Mutex<Option<String>>,
    pub(crate) cq_flush_log: crate::dispatch::LogLimiter,
    /// Read-held by each dispatch pass, consume-queue flush pass, clean pass
    /// and consume-queue repair; write-held by a live truncation of the
    /// commitlog (see `truncate`), which so sees none of them half done.
    pub(crate) log_gate: std::sync::RwLock<()>,
    /// The role the store has now (see [`MessageStore::change_role`]),
    /// starting as `cfg.broker_role`; [`role_code`] encoded.
    role: std::sync::atomic::AtomicU8,
    /// Held by a role switch from start to end (switches run one at a time).
    role_switch: Mutex<()>,
    /// Pauses and resumes the delayed and timer deliveries at a role switch.
    pub(crate) role_gate: crate::service::RoleGate,
}

/// [`BrokerRole`] as stored in `StoreInner::role`.
fn role_code(role: BrokerRole) -> u8 {
    match role {
        BrokerRole::AsyncMaster => 0,
        BrokerRole::SyncMaster => 1,
        BrokerRole::Slave => 2,
    }
}

impl StoreInner {
    /// The store's role now (see [`MessageStore::change_role`]).
    #[inline]
    pub(crate) fn role(&self) -> BrokerRole {
        match self.role.load(Ordering::Acquire) {
            0 => BrokerRole::AsyncMaster,
            1 => BrokerRole::SyncMaster,
            _ => BrokerRole::Slave,
        }
    }

    fn set_role(&self, role: BrokerRole) {
        self.role.store(role_code(role), Ordering::Release);
    }
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
    /// The configuration the store was opened with. Settings changed live
    /// ([`MessageStore::set_live`]) and the role now
    /// ([`MessageStore::change_role`]) show in [`MessageStore::current_config`].
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

impl StoreInner {
    /// Topics whose queues appeared through dispatch but are not in the topic
    /// table (a slave's log carries its master's topics) join the table.
    fn learn_dispatched_topics(&self) {
        let mut later = Vec::new();
        for (topic, queue_id) in self.cqs.take_created() {
            if self.topics.get(&topic).is_none() {
                // Dispatch gives queues only to ids below 1024, the store's
                // topic queue limit; saturating all the same (the id is data).
                let n = queue_id
                    .saturating_add(1)
                    .max(self.cfg.default_topic_queue_nums);
                if let Err(e) = self.topics.get_or_create(&topic, n) {
                    // Retried on the next pass (no descriptor or space now).
                    if let Some(held_back) = self.dispatcher.health.learn_log.allow() {
                        tracing::warn!(topic, error = %e, not_logged = held_back,
                            "cannot record a dispatched topic yet; retried");
                    }
                    later.push((topic, queue_id));
                }
            }
        }
        self.cqs.requeue_created(later);
    }

    /// Follow the commitlog. A resource error (an [`Error::Io`] creating or
    /// growing a consume-queue or index file: no descriptor, no space, EIO)
    /// is retried with back-off and reported, never fenced: the position stays
    /// before the record whose unit is not written, puts go on, and dispatch
    /// resumes by itself. Other errors (a record that does not parse) fence.
    fn run_dispatch(&self) {
        while !self.stopping.load(Ordering::Acquire) {
            self.learn_dispatched_topics();
            let gate = self.log_gate.read_locked();
            let dispatched = self.dispatcher.dispatch_available(
                &self.commitlog,
                &self.cqs,
                self.index.as_ref(),
                &self.arrivals,
            );
            drop(gate);
            match dispatched {
                Ok(n) => {
                    self.dispatcher.note_ok();
                    if n == 0 {
                        self.dispatcher.waker.wait(Duration::from_millis(1));
                    }
                }
                Err(e @ Error::Io { .. }) => {
                    let wait = self.dispatcher.note_retry(&e);
                    self.dispatcher
                        .backoff
                        .sleep_until(Instant::now() + wait, || {
                            self.stopping.load(Ordering::Acquire)
                        });
                }
                Err(e) => {
                    self.fence.trip(format!("dispatch failed: {e}"));
                    return;
                }
            }
        }
    }
}

impl StoreInner {
    /// The store's state from what the steps of opening built (see `open.rs`).
    fn assemble(
        cfg: StoreConfig,
        env: StoreEnv,
        (lock_file, store_host): (File, SocketAddr),
        log: OpenedLog,
        queues: LoadedQueues,
        (schedule, dispatcher, arrivals): (crate::schedule::ScheduleState, Dispatcher, Arrivals),
    ) -> StoreInner {
        let fence = Arc::new(Fence::default());
        let flusher = CommitLogFlusher::new(&cfg, Arc::clone(&fence), log.commitlog.max_offset());
        let timer = crate::timer::TimerState::new(&cfg.store_path_root_dir, &cfg.config_dir());
        let slave = cfg.broker_role == BrokerRole::Slave;
        log.commitlog.set_follower(slave);
        StoreInner {
            role: std::sync::atomic::AtomicU8::new(role_code(cfg.broker_role)),
            role_switch: Mutex::new(()),
            role_gate: crate::service::RoleGate::new(!slave),
            cq_flush: crate::live::LivePolicy::new(FlushPolicy::consume_queue(&cfg)),
            live: crate::live::LiveSettings::new(&cfg),
            cfg,
            store_host,
            commitlog: log.commitlog,
            cqs: queues.cqs,
            topics: queues.topics,
            fence,
            flusher,
            checkpoint: log.checkpoint,
            index: queues.index,
            schedule,
            dispatcher,
            arrivals,
            stopping: AtomicBool::new(false),
            shut_down: AtomicBool::new(false),
            lock_file,
            threads: crate::service::ServiceThreads::default(),
            replica_waiter: std::sync::RwLock::new(None),
            env,
            clean: CleanState::default(),
            commit_waker: crate::service::Waker::default(),
            schedule_waker: crate::service::Waker::default(),
            timer,
            cq_flush_waker: crate::service::Waker::default(),
            cq_manifest: Mutex::new(queues.manifest),
            cq_min_manifest: Mutex::new(queues.min_manifest),
            damaged: crate::damage::DamagedRecords::default(),
            repairs: repair::Repairs::default(),
            units_repaired: std::sync::atomic::AtomicU64::new(0),
            total_ram: crate::sys::total_ram_bytes(),
            recovery: log.report,
            cq_flush_failed: Mutex::new(None),
            cq_flush_log: crate::dispatch::LogLimiter::new(Duration::from_secs(10)),
            log_gate: std::sync::RwLock::new(()),
        }
    }
}
