//! [`MessageStore`]: the embedding API.

use crate::sync::{LockExt, RwLockExt};
use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::File;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::checkpoint::{Checkpoint, CheckpointState};
use crate::commitlog::{CommitLog, CommitLogRecovery, RecordSlot};
use crate::config::{BrokerRole, FlushDiskType, StoreConfig};
use crate::consume_queue::{ConsumeQueue, CqUnit, CQ_UNIT_SIZE};
use crate::damage::UnitCheck;
use crate::dispatch::{ArrivalListener, Arrivals, CqTable, Dispatcher, WalkedRecords};
use crate::error::{Error, Result};
use crate::flush::{CommitLogFlusher, CqFlushPolicy, Fence, PanicGuard, SyncOutcome};
use crate::index::IndexService;
use crate::mapped_file::MappedBytes;
use crate::message::{
    self, decode_record, encode_record, offset_msg_id, sys_flag, validate_topic, Message,
    MessageExt, MAX_PROPERTIES_LEN,
};
use crate::retention::{evaluate, CleanPassReport, RetentionStats, StoreEnv};
use crate::topic::{TopicConfig, TopicTable};

mod repair;

/// Status of a stored put (RocketMQ's `PutMessageStatus` for outcomes where the
/// message *was* written; failures where nothing was written are [`Error`]s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutStatus {
    /// Stored (and, under SYNC_FLUSH, durable).
    PutOk,
    /// Stored, but the sync flush did not finish within `syncFlushTimeout`.
    FlushDiskTimeout,
    /// Stored, but no slave confirmed it in time (SYNC_MASTER).
    FlushSlaveTimeout,
    /// Stored, but no slave was available (SYNC_MASTER).
    SlaveNotAvailable,
}

/// The result of a put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutResult {
    /// Outcome.
    pub status: PutStatus,
    /// Commitlog offset of the (first) record.
    pub commit_log_offset: u64,
    /// Queue offset of the (first) message.
    pub queue_offset: u64,
    /// Bytes written to the commitlog.
    pub wrote_bytes: u32,
    /// Number of messages written.
    pub message_count: u32,
    /// Store timestamp (ms).
    pub store_timestamp_ms: i64,
    /// The store's address, the first half of an offset msgId.
    store_host: SocketAddr,
    /// A batch's msgIds, joined with commas (a single put's id is made on demand).
    batch_msg_ids: Option<String>,
}

impl PutResult {
    /// Offset msgId (`[store ip][port][commitlog offset]` in hex); for a batch,
    /// the ids joined with commas. Made on demand, as RocketMQ 4.9's
    /// `AppendMessageResult` does with its msgId supplier: most embedders never
    /// look at it, and formatting it on every put is a measurable share of a
    /// put's cost.
    pub fn msg_id(&self) -> String {
        match &self.batch_msg_ids {
            Some(ids) => ids.clone(),
            None => offset_msg_id(self.store_host, self.commit_log_offset),
        }
    }
}

/// RocketMQ's `GetMessageStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetStatus {
    /// At least one message found.
    Found,
    /// Messages were scanned but none passed the filter.
    NoMatchedMessage,
    /// The first message's commitlog data is gone.
    MessageWasRemoving,
    /// A consume-queue slice was not available.
    OffsetFoundNull,
    /// `offset > max offset`.
    OffsetOverflowBadly,
    /// `offset == max offset`: nothing new yet.
    OffsetOverflowOne,
    /// `offset < min offset`.
    OffsetTooSmall,
    /// No such queue.
    NoMatchedLogicQueue,
    /// The queue is empty.
    NoMessageInQueue,
}

/// One message as stored: its record bytes, mapped (no copy).
#[derive(Debug, Clone)]
pub struct StoredMessage {
    /// Queue offset.
    pub queue_offset: u64,
    /// Commitlog offset.
    pub commit_log_offset: u64,
    /// Tag code from the consume queue.
    pub tags_code: i64,
    bytes: MappedBytes,
}

impl StoredMessage {
    /// The record exactly as stored in the commitlog.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Decode the record (verifying its body CRC).
    pub fn decode(&self) -> Result<MessageExt> {
        decode_record(&self.bytes).map_err(|e| {
            Error::corruption(
                self.bytes.path(),
                self.bytes.position(),
                format!(
                    "record at commitlog offset {} does not decode: {e}",
                    self.commit_log_offset
                ),
            )
        })
    }
}

/// The result of a get (pull).
#[derive(Debug, Clone)]
pub struct GetResult {
    /// Outcome.
    pub status: GetStatus,
    /// Where the next pull should start.
    pub next_begin_offset: u64,
    /// Min queue offset.
    pub min_offset: u64,
    /// Max queue offset (one past the last message).
    pub max_offset: u64,
    /// Messages found.
    pub messages: Vec<StoredMessage>,
    /// Whether the reader is far enough behind to be sent to a slave.
    pub suggest_pulling_from_slave: bool,
}

impl GetResult {
    /// Total bytes of the messages.
    pub fn buffer_total_size(&self) -> usize {
        self.messages.iter().map(|m| m.bytes().len()).sum()
    }
}

/// Which messages a get returns, by tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageFilter {
    /// Every message (`*`).
    All,
    /// Messages whose tag hash code is one of these.
    TagCodes(Vec<i64>),
}

impl MessageFilter {
    /// Parse a RocketMQ tag expression: `*`, empty, or `TagA || TagB`.
    pub fn from_expression(expr: &str) -> MessageFilter {
        let e = expr.trim();
        if e.is_empty() || e == "*" {
            return MessageFilter::All;
        }
        MessageFilter::TagCodes(
            e.split("||")
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(|t| message::tags_code(Some(t)))
                .collect(),
        )
    }

    fn matches(&self, tags_code: i64) -> bool {
        match self {
            MessageFilter::All => true,
            MessageFilter::TagCodes(codes) => codes.contains(&tags_code),
        }
    }
}

/// What a SYNC_MASTER put waits for after it is written (and flushed, under
/// SYNC_FLUSH): implemented by the replication layer.
pub trait ReplicaWaiter: Send + Sync {
    /// Wait until a slave has confirmed the log up to `end_offset`, at most
    /// `timeout`. Returns [`PutStatus::PutOk`], [`PutStatus::FlushSlaveTimeout`]
    /// or [`PutStatus::SlaveNotAvailable`].
    fn wait_replicated(&self, end_offset: u64, timeout: Duration) -> PutStatus;

    /// Call `done` with what [`ReplicaWaiter::wait_replicated`] would return.
    /// An implementation that tracks slave confirmations on its own threads
    /// should register `done` and return at once, so that the caller's thread
    /// is free while the put waits (and `done` runs on the thread that saw the
    /// confirmation: it must be short, such as a send on a channel). The default
    /// blocks the caller in [`ReplicaWaiter::wait_replicated`].
    fn on_replicated(&self, end_offset: u64, timeout: Duration, done: ReplicaCallback) {
        done(self.wait_replicated(end_offset, timeout));
    }

    /// True when [`ReplicaWaiter::on_replicated`] registers the callback and
    /// returns at once (false for the default, which blocks).
    fn answers_without_blocking(&self) -> bool {
        false
    }
}

/// What [`ReplicaWaiter::on_replicated`] calls with a SYNC_MASTER put's slave
/// outcome.
pub type ReplicaCallback = Box<dyn FnOnce(PutStatus) + Send>;

/// What [`MessageStore::wait_put_then`] calls with a put's final result.
pub type PutCallback = Box<dyn FnOnce(Result<PutResult>) + Send>;

/// Time left of `ms` milliseconds counted from `since`.
fn deadline_left(since: Instant, ms: u64) -> Duration {
    (since + Duration::from_millis(ms)).saturating_duration_since(Instant::now())
}

/// A put's status from its disk and slave outcomes: as RocketMQ, when both
/// fail, the replica status wins.
fn combine_wait_status(flushed: PutStatus, replica: PutStatus) -> PutStatus {
    if replica == PutStatus::PutOk {
        flushed
    } else {
        replica
    }
}

/// The result of [`MessageStore::query_message`].
#[derive(Debug, Clone, Default)]
pub struct QueryResult {
    /// Records found, as stored.
    pub messages: Vec<StoredMessage>,
    /// End timestamp of the index (RocketMQ's `indexLastUpdateTimestamp`).
    pub index_last_update_timestamp_ms: i64,
    /// End commitlog offset of the index (`indexLastUpdatePhyoffset`).
    pub index_last_update_phy_offset: u64,
}

/// What opening the store found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The previous run did not shut down cleanly.
    pub abnormal: bool,
    /// Commitlog scan.
    pub commit_log: CommitLogRecovery,
    /// Consume queues loaded.
    pub consume_queues: usize,
    /// Consume-queue units removed because they pointed past the commitlog end.
    pub consume_queue_units_truncated: u64,
    /// Consume queues that lost units pointing past the commitlog end.
    pub consume_queues_truncated: usize,
    /// Consume queues found damaged (units out of order, overlapping, not
    /// matching their record, or written after unwritten ones; a file of the
    /// wrong length or a missing middle file; missing first files whose
    /// records the commitlog still holds) and cut before the damage (or
    /// emptied); each is rebuilt from the commitlog.
    pub consume_queues_damaged: usize,
    /// Consume queues whose every file was scanned (after an abnormal
    /// shutdown, or when a queue's files are not what the consume-queue
    /// manifests recorded at the last flush); the others had their last three
    /// files scanned.
    pub consume_queues_fully_scanned: usize,
    /// Consume queues that gained units while being re-dispatched from the start
    /// of the log (damaged, short or re-created missing queues, and queues that
    /// only had records since the checkpoint). 0 when
    /// [`RecoveryReport::rebuilt_from_log_start`] is false.
    pub consume_queues_rebuilt: usize,
    /// A consume queue was damaged, missing or short, so every queue was
    /// re-dispatched from the start of the log (units already present are kept).
    pub rebuilt_from_log_start: bool,
    /// Records dispatched again to rebuild consume queues.
    pub records_redispatched: u64,
    /// Commitlog offset the re-dispatch started from.
    pub redispatched_from: u64,
    /// Wall time of the recovery, ms.
    pub millis: u64,
    /// Of which: walking and checking the commitlog, ms.
    pub walk_millis: u64,
    /// Of which: loading and checking consume queues and the index, ms.
    pub consume_queue_millis: u64,
    /// Of which: re-dispatching records into consume queues and the index, ms.
    pub redispatch_millis: u64,
}

/// Store figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreStats {
    /// First commitlog offset still stored.
    pub commit_log_min_offset: u64,
    /// End of the commitlog.
    pub commit_log_max_offset: u64,
    /// Commitlog offset known durable.
    pub commit_log_flushed_offset: u64,
    /// Commitlog offset dispatched to consume queues.
    pub dispatched_offset: u64,
    /// Commitlog files.
    pub commit_log_files: usize,
    /// Consume queues.
    pub consume_queues: usize,
    /// Number of flushes that advanced the durable offset.
    pub commit_log_syncs: u64,
    /// Store timestamp of the last dispatched record (ms).
    pub last_dispatched_store_timestamp_ms: i64,
    /// Puts go through the transient store pool.
    pub transient_store_pool: bool,
    /// Pool buffers free now.
    pub transient_store_pool_available: usize,
    /// How the pool's commits are written: `io_uring` or `pwrite` (with the
    /// reason io_uring is not used, when it is not).
    pub commit_backend: String,
    /// The io_uring commit backend writes from the pool's registered buffers.
    pub commit_registered_buffers: bool,
    /// What the pool's commit backend has done (submissions, writes, syncs, bytes).
    pub commit_counters: crate::io::CommitCounters,
    /// Why the store refuses writes, if it does.
    pub fenced: Option<String>,
    /// The resource error dispatch is retrying now (no descriptor or space
    /// for a consume-queue or index file), if any; puts go on meanwhile.
    pub dispatch_error: Option<String>,
    /// Dispatch tries that failed on a resource error, since the store opened.
    pub dispatch_retries: u64,
    /// Records refused by dispatch or recovery (kept in the commitlog, in no
    /// consume queue or index): their topic is not a valid name, their queue
    /// id is not below 1024 (the store's topic queue limit) or their queue
    /// offset is out of range, or their offset jumps more than a
    /// consume-queue file's worth of units past their queue's end.
    pub records_refused: u64,
    /// The last failed consume-queue, index or checkpoint flush, if one
    /// failed since the store opened (see [`MessageStore::flush`]).
    pub consume_queue_flush_error: Option<String>,
    /// Damaged records reads found and skipped (each counted once; see
    /// [`MessageStore::damaged_records`]).
    pub damaged_records: u64,
    /// Consume-queue units that reads found not pointing at their records and
    /// that were rebuilt from the commitlog in place.
    pub consume_queue_units_repaired: u64,
}

struct StoreInner {
    cfg: StoreConfig,
    store_host: SocketAddr,
    commitlog: CommitLog,
    cqs: CqTable,
    topics: TopicTable,
    fence: Arc<Fence>,
    flusher: CommitLogFlusher,
    checkpoint: Checkpoint,
    index: Option<IndexService>,
    schedule: crate::schedule::ScheduleState,
    dispatcher: Dispatcher,
    arrivals: Arrivals,
    cq_flush: CqFlushPolicy,
    stopping: AtomicBool,
    shut_down: AtomicBool,
    lock_file: File,
    threads: Mutex<Vec<JoinHandle<()>>>,
    replica_waiter: std::sync::RwLock<Option<Arc<dyn ReplicaWaiter>>>,
    env: StoreEnv,
    disk_full: AtomicBool,
    manual_delete_rounds: std::sync::atomic::AtomicU32,
    clean_waker: crate::flush::Waker,
    /// Wakes the pool's commit service once `commitCommitLogLeastPages` wait.
    commit_waker: crate::flush::Waker,
    schedule_waker: crate::flush::Waker,
    last_clean: Mutex<Option<CleanPassReport>>,
    /// Deletions that failed or hang, retried every `redeleteHangedFileInterval` ms.
    hanging: Mutex<Hanging>,
    /// Units per consume queue last recorded as flushed (`config/consumeQueueMax.json`).
    cq_manifest: Mutex<std::collections::BTreeMap<String, std::collections::BTreeMap<u32, u64>>>,
    /// First-file queue offset per consume queue last recorded (`config/consumeQueueMin.json`).
    cq_min_manifest:
        Mutex<std::collections::BTreeMap<String, std::collections::BTreeMap<u32, u64>>>,
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
    cq_flush_failed: Mutex<Option<String>>,
    cq_flush_log: crate::dispatch::LogLimiter,
    /// Consume-queue files retention did not delete because the first-file
    /// manifest could not be written first: the next clean pass does.
    cq_expiry_owed: AtomicBool,
    /// Held by a clean pass (see `clean_pass`).
    clean_pass_lock: Mutex<()>,
}

/// Deletions not finished (RocketMQ's hanged files), retried every
/// `redeleteHangedFileInterval` ms.
#[derive(Default)]
struct Hanging {
    /// Files taken out of their queues whose unlink failed, or whose mapping a
    /// reader still holds, with the time they were first deleted.
    files: Vec<(Arc<crate::mapped_file::MappedFile>, i64)>,
    /// Deleting index files below the commitlog minimum failed.
    index_retry: bool,
    /// When the next retry is due; `None` while nothing waits.
    next_retry_ms: Option<i64>,
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

/// File (under `config/`) recording how many units each consume queue had when
/// last flushed, so that open can tell a deleted or shortened queue.
const CQ_MANIFEST: &str = "consumeQueueMax.json";

/// File (under `config/`) recording the queue offset each consume queue's first
/// file starts at, as last flushed, so that open can tell first files lost to
/// damage from files deleted by retention.
const CQ_MIN_MANIFEST: &str = "consumeQueueMin.json";

thread_local! {
    /// Per-thread encoding buffer and record slots, reused by every put (no
    /// allocation per message once warm).
    static ENCODE_BUF: RefCell<(Vec<u8>, Vec<RecordSlot>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

fn basic_config_checks(cfg: &StoreConfig) -> Result<()> {
    if cfg.mapped_file_size_commit_log < 4096 {
        return Err(Error::config(
            "mappedFileSizeCommitLog",
            cfg.mapped_file_size_commit_log.to_string(),
            "at least 4096 bytes",
        ));
    }
    if cfg.consume_queue_file_size() < CQ_UNIT_SIZE as u64 {
        return Err(Error::config(
            "mappedFileSizeConsumeQueue",
            cfg.mapped_file_size_consume_queue.to_string(),
            "at least 20 bytes",
        ));
    }
    if cfg.max_message_size == 0 {
        return Err(Error::config(
            "maxMessageSize",
            "0",
            "a positive number of bytes",
        ));
    }
    cfg.delay_levels_ms()?;
    if cfg.default_topic_queue_nums == 0 {
        return Err(Error::config("defaultTopicQueueNums", "0", "at least 1"));
    }
    Ok(())
}

fn lock_store(root: &std::path::Path) -> Result<File> {
    let path = root.join("lock");
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    match crate::sys::try_lock_exclusive(&f) {
        Ok(true) => Ok(f),
        Ok(false) => Err(Error::Locked(root.to_path_buf())),
        Err(e) => Err(Error::io(format!("locking {}", path.display()), e)),
    }
}

impl MessageStore {
    /// Open (or create) the store at `cfg.store_path_root_dir`: validate the
    /// config, lock the directory, recover commitlog and consume queues, and
    /// start the background threads.
    ///
    /// # Errors
    /// [`Error::Config`] for bad settings, [`Error::Locked`] when another process
    /// holds the store, [`Error::Corruption`] for damage that recovery must not
    /// paper over, [`Error::Io`] for failed system calls.
    pub fn open(cfg: StoreConfig) -> Result<MessageStore> {
        Self::open_with_env(cfg, StoreEnv::default())
    }

    /// [`MessageStore::open`] with a given clock and disk-usage source (tests use
    /// this to move time to the `deleteWhen` hour or simulate a full disk).
    ///
    /// # Errors
    /// As [`MessageStore::open`].
    pub fn open_with_env(cfg: StoreConfig, env: StoreEnv) -> Result<MessageStore> {
        cfg.validate()?;
        basic_config_checks(&cfg)?;
        let started = Instant::now();
        let root = cfg.store_path_root_dir.clone();
        std::fs::create_dir_all(&root)
            .map_err(|e| Error::io(format!("creating {}", root.display()), e))?;
        let lock_file = lock_store(&root)?;
        let ip: IpAddr = cfg
            .broker_ip1
            .parse()
            .map_err(|_| Error::config("brokerIP1", &cfg.broker_ip1, "an IPv4 or IPv6 address"))?;
        let store_host = SocketAddr::new(ip, cfg.listen_port);
        let abort_path = root.join("abort");
        let abnormal = abort_path.exists();
        let (checkpoint, ck_state) = Checkpoint::open(&root.join("checkpoint"))?;
        let ck = checkpoint.data();
        let ck_valid = ck_state == CheckpointState::Valid;

        // RocketMQ's rule: the transient store pool only serves ASYNC_FLUSH
        // masters; ferromq serves SYNC_FLUSH too when asked.
        let pool = if cfg.transient_store_pool_enable {
            if (cfg.flush_disk_type == FlushDiskType::AsyncFlush
                || cfg.transient_store_pool_sync_flush_enable)
                && cfg.broker_role != BrokerRole::Slave
            {
                Some(crate::pool::TransientStorePool::new(
                    cfg.transient_store_pool_size as usize,
                    cfg.mapped_file_size_commit_log as usize,
                )?)
            } else {
                tracing::warn!(
                    "transientStorePoolEnable applies only to masters, and to SYNC_FLUSH only \
                     with transientStorePoolSyncFlushEnable=true; ignored"
                );
                None
            }
        } else {
            None
        };
        let pooled = pool.is_some();
        let via_fd = commitlog_writes_via_fd(&cfg, pooled);
        let mut commitlog = CommitLog::load(
            &cfg.commit_log_dir(),
            cfg.mapped_file_size_commit_log,
            cfg.warm_maped_file_enable,
            if pooled || via_fd {
                0
            } else {
                cfg.prefault_ahead_bytes
            },
            pool,
            cfg.io_uring_enable,
            via_fd,
        )?;
        let max_record = cfg.max_message_size as usize + 64 * 1024 + 1024;
        // After a crash, check every record written since the last known flush.
        let validate_from = abnormal.then_some(if ck_valid { ck.physic_offset } else { 0 });
        let phase = Instant::now();
        let delay_levels = cfg.delay_levels_ms()?;
        // After a crash the walk keeps what re-dispatch needs of each record it
        // checks, so re-dispatch does not read the log a second time.
        let mut walked = WalkedRecords::new(
            if abnormal { MAX_WALKED_RECORDS } else { 0 },
            delay_levels.clone(),
        );
        let cl_report = commitlog.recover(
            cfg.check_crc_on_recover,
            max_record,
            validate_from,
            &mut |h| walked.push(h),
        )?;
        let walk_millis = phase.elapsed().as_millis() as u64;
        let phase = Instant::now();
        let cl_min = commitlog.min_offset();
        let cl_max = commitlog.max_offset();

        let cqs = CqTable::new(cfg.consume_queue_dir(), cfg.consume_queue_file_size());
        let mut report = RecoveryReport {
            abnormal,
            commit_log: cl_report,
            walk_millis,
            ..Default::default()
        };
        // Units whose records the commitlog walk just checked are compared with
        // those records (the pages are warm), at most the last three files' worth
        // (the span a normal recovery walks; a crash tears only the tail). Older
        // units get order checks here, and every read checks a unit against its
        // record anyway.
        let verify_from = report
            .commit_log
            .scanned_from
            .max(cl_max.saturating_sub(3 * cfg.mapped_file_size_commit_log));
        let min_manifest = load_manifest(&cfg.config_dir().join(CQ_MIN_MANIFEST));
        let manifest = load_manifest(&cfg.config_dir().join(CQ_MANIFEST));
        for (topic, queue_id, dir) in list_consume_queues(&cfg.consume_queue_dir())? {
            let (mut cq, bad_file) =
                ConsumeQueue::load_lenient(&dir, &topic, queue_id, cfg.consume_queue_file_size())?;
            let mut verify = |queue_offset: u64, u: &CqUnit| {
                check_unit(&commitlog, &topic, queue_id, queue_offset, u, &delay_levels)
                    != UnitCheck::UnitWrong
            };
            // Every file is scanned only after a crash or when the files are
            // not what the manifests recorded; otherwise the last three.
            let all_files = abnormal
                || bad_file.is_some()
                || manifests_disagree(
                    &cq,
                    min_manifest
                        .get(&topic)
                        .and_then(|q| q.get(&queue_id))
                        .copied(),
                    manifest.get(&topic).and_then(|q| q.get(&queue_id)).copied(),
                    cfg.consume_queue_file_size(),
                );
            report.consume_queues_fully_scanned += usize::from(all_files);
            let r = cq.recover(cl_min, cl_max, verify_from, all_files, &mut verify)?;
            let expected_first = min_manifest.get(&topic).and_then(|q| q.get(&queue_id));
            let front_missing = front_files_missing(&cq, cl_min, expected_first.copied());
            if front_missing {
                tracing::warn!(
                    topic,
                    queue_id,
                    first_file_offset = cq.first_file_offset(),
                    expected_first,
                    commit_log_min = cl_min,
                    "consume queue lacks its first files while the commitlog still holds their \
                     records; rebuilding it from the commitlog"
                );
                cq.clear()?;
            }
            if let Some(e) = &bad_file {
                tracing::warn!(topic, queue_id, error = %e,
                    "consume queue file damaged or missing; rebuilding from the commitlog");
            }
            report.consume_queue_units_truncated += r.units_truncated;
            report.consume_queues_truncated += usize::from(r.units_truncated > 0);
            report.consume_queues_damaged +=
                usize::from(r.damaged || front_missing || bad_file.is_some());
            cqs.insert(cq);
            report.consume_queues += 1;
        }
        let topics = TopicTable::load(&cfg.config_dir())?;
        let index = if cfg.message_index_enable {
            let ix = IndexService::load(&cfg.index_dir(), &cfg)?;
            ix.truncate_after(cl_max)?;
            Some(ix)
        } else {
            None
        };
        let short_queue = manifest.iter().find_map(|(topic, qs)| {
            qs.iter().find_map(|(q, max)| {
                let have = cqs.get(topic, *q).map(|c| c.max_offset()).unwrap_or(0);
                (have < *max).then(|| (topic.clone(), *q, have, *max))
            })
        });
        if let Some((topic, q, have, want)) = &short_queue {
            tracing::warn!(topic, queue_id = q, have, want,
                "consume queue has fewer units than when last flushed; rebuilding from the commitlog");
            report.rebuilt_from_log_start = true;
        }
        if report.consume_queues_damaged > 0 {
            tracing::warn!(
                queues = report.consume_queues_damaged,
                "damaged consume queues; rebuilding from the commitlog"
            );
            report.rebuilt_from_log_start = true;
        }
        // Re-dispatch from where consume queues were last known flushed; without a
        // valid checkpoint, or when a queue lost units or is damaged, from the start
        // of the log (idempotent: units already present are skipped).
        let units_before: HashMap<(String, u32), u64> = cqs
            .all()
            .iter()
            .map(|q| ((q.topic().to_string(), q.queue_id()), q.max_offset()))
            .collect();
        let reput_from = if ck_valid && !report.rebuilt_from_log_start {
            let mut from = ck.logics_offset;
            if index.is_some() {
                // Keys added since the index's last flush are rebuilt too.
                from = from.min(ck.index_offset);
            }
            from.clamp(cl_min, cl_max)
        } else {
            cl_min
        };
        report.redispatched_from = reput_from;
        report.consume_queue_millis = phase.elapsed().as_millis() as u64;
        let phase = Instant::now();
        let schedule =
            crate::schedule::ScheduleState::load(&cfg.config_dir(), delay_levels.clone())?;
        let dispatcher = Dispatcher::new(reput_from, delay_levels);
        let arrivals = Arrivals::default();
        let first_pass = match dispatcher.dispatch_walked(
            &walked,
            cl_max,
            &commitlog,
            &cqs,
            index.as_ref(),
            &arrivals,
        )? {
            Some(r) => r,
            None => {
                dispatcher.dispatch_checking_gaps(&commitlog, &cqs, index.as_ref(), &arrivals)?
            }
        };
        drop(walked);
        report.records_redispatched = match first_pass {
            Ok(n) => n as u64,
            Err(gap) => {
                // A queue lacks units that the log still has (deleted, damaged or
                // lost its tail): rebuild every queue from the start of the log.
                tracing::warn!(
                    ?gap,
                    "consume queue is missing units; rebuilding from the commitlog"
                );
                report.rebuilt_from_log_start = true;
                report.redispatched_from = cl_min;
                dispatcher.reset(cl_min);
                dispatcher.dispatch_available(&commitlog, &cqs, index.as_ref(), &arrivals)? as u64
            }
        };
        report.redispatch_millis = phase.elapsed().as_millis() as u64;
        let mut table: HashMap<String, Vec<u64>> = HashMap::new();
        for cq in cqs.all() {
            let v = table.entry(cq.topic().to_string()).or_default();
            let q = cq.queue_id() as usize;
            if v.len() <= q {
                v.resize(q + 1, 0);
            }
            v[q] = cq.max_offset();
            if topics.get(cq.topic()).is_none() {
                let n = (cq.queue_id() + 1).max(cfg.default_topic_queue_nums);
                topics.upsert(TopicConfig::new(cq.topic(), n))?;
            }
        }
        commitlog.set_queue_offsets(table);
        if report.rebuilt_from_log_start {
            report.consume_queues_rebuilt = cqs
                .all()
                .iter()
                .filter(|q| {
                    let key = (q.topic().to_string(), q.queue_id());
                    q.max_offset() > units_before.get(&key).copied().unwrap_or(0)
                })
                .count();
        }
        report.millis = started.elapsed().as_millis() as u64;
        if abnormal
            || report.commit_log.bytes_truncated > 0
            || report.consume_queue_units_truncated > 0
            || report.rebuilt_from_log_start
        {
            tracing::warn!(
                abnormal,
                files_scanned = report.commit_log.files_scanned,
                bytes_scanned = report.commit_log.bytes_scanned,
                bytes_truncated = report.commit_log.bytes_truncated,
                consume_queues_truncated = report.consume_queues_truncated,
                consume_queue_units_truncated = report.consume_queue_units_truncated,
                consume_queues_damaged = report.consume_queues_damaged,
                consume_queues_rebuilt = report.consume_queues_rebuilt,
                rebuilt_from_log_start = report.rebuilt_from_log_start,
                records_redispatched = report.records_redispatched,
                millis = report.millis,
                "recovered the store"
            );
        } else {
            tracing::info!(?report, "store opened");
        }

        File::create(&abort_path)
            .map_err(|e| Error::io(format!("creating {}", abort_path.display()), e))?;
        crate::mapped_file::sync_dir(&root)?;
        if let Some(h) = crate::io::hook_for(&abort_path) {
            h.created(&abort_path, 0);
        }

        if let Some(ix) = &index {
            ix.flush()?;
        }
        checkpoint.update(|d| {
            d.physic_offset = cl_max;
            d.logics_offset = dispatcher.dispatched_offset();
            d.index_offset = dispatcher.dispatched_offset();
        });
        checkpoint.flush()?;
        let fence = Arc::new(Fence::default());
        let flusher = CommitLogFlusher::new(&cfg, Arc::clone(&fence), cl_max);
        let inner = Arc::new(StoreInner {
            cq_flush: CqFlushPolicy::new(&cfg),
            cfg,
            store_host,
            commitlog,
            cqs,
            topics,
            fence,
            flusher,
            checkpoint,
            index,
            schedule,
            dispatcher,
            arrivals,
            stopping: AtomicBool::new(false),
            shut_down: AtomicBool::new(false),
            lock_file,
            threads: Mutex::new(Vec::new()),
            replica_waiter: std::sync::RwLock::new(None),
            env,
            disk_full: AtomicBool::new(false),
            manual_delete_rounds: std::sync::atomic::AtomicU32::new(0),
            clean_waker: crate::flush::Waker::default(),
            commit_waker: crate::flush::Waker::default(),
            schedule_waker: crate::flush::Waker::default(),
            last_clean: Mutex::new(None),
            hanging: Mutex::new(Hanging::default()),
            cq_manifest: Mutex::new(manifest),
            cq_min_manifest: Mutex::new(min_manifest),
            damaged: crate::damage::DamagedRecords::default(),
            repairs: repair::Repairs::default(),
            units_repaired: std::sync::atomic::AtomicU64::new(0),
            total_ram: crate::sys::total_ram_bytes(),
            recovery: report,
            cq_flush_failed: Mutex::new(None),
            cq_flush_log: crate::dispatch::LogLimiter::new(Duration::from_secs(10)),
            cq_expiry_owed: AtomicBool::new(false),
            clean_pass_lock: Mutex::new(()),
        });
        inner.commitlog.start()?;
        let store = MessageStore { inner };
        // Thread names: Linux keeps 15 bytes of a name (what `top -H`, `perf`
        // and /proc show), so names are unique within their first 15.
        store.spawn("ferromq-flushcl", |s| {
            // Under ASYNC_FLUSH no put waits for this thread.
            if s.cfg.flush_disk_type == FlushDiskType::AsyncFlush {
                crate::sys::lower_thread_priority(BACKGROUND_NICE);
            }
            if s.commitlog.pooled() {
                s.flusher
                    .run_pooled(&s.commitlog.queue, || s.commitlog.commit_and_sync());
            } else {
                s.flusher.run(&s.commitlog.queue);
            }
        })?;
        store.spawn("ferromq-dispatch", |s| {
            // Normal priority (consumers wait for it), but woken by puts it
            // must not preempt the producer that woke it.
            crate::sys::batch_scheduling();
            s.run_dispatch()
        })?;
        if store.inner.cfg.flush_disk_type == FlushDiskType::SyncFlush {
            store.spawn("ferromq-flushdog", |s| s.flusher.run_watchdog())?;
        }
        store.spawn("ferromq-flushcq", |s| {
            crate::sys::lower_thread_priority(BACKGROUND_NICE);
            s.run_cq_flush()
        })?;
        store.spawn("ferromq-clean", |s| {
            crate::sys::lower_thread_priority(BACKGROUND_NICE);
            s.run_clean()
        })?;
        store.spawn("ferromq-repair", |s| {
            crate::sys::lower_thread_priority(BACKGROUND_NICE);
            s.run_repairs()
        })?;
        if store.inner.cfg.broker_role != BrokerRole::Slave {
            store.spawn("ferromq-schedule", |s| s.run_schedule())?;
        }
        if store.inner.commitlog.pooled() {
            store.spawn("ferromq-commit", |s| s.run_commit())?;
        }
        if store.inner.cfg.prefault_ahead_bytes > 0
            && !store.inner.cfg.warm_maped_file_enable
            && !store.inner.commitlog.pooled()
            && !commitlog_writes_via_fd(&store.inner.cfg, false)
        {
            store.spawn("ferromq-prefault", |s| {
                // Not niced: when it shares a core with the dispatch thread it
                // must keep its lead, or the producer catches it up and waits
                // on the page locks of its read-around batch (8 MiB at a time).
                // Under SCHED_BATCH its wake-ups never preempt a producer.
                // 8 interleaved pairs: ratio_to_baseline median 0.68 against
                // 0.63 niced.
                crate::sys::batch_scheduling();
                s.commitlog
                    .run_prefault(&s.stopping, s.cfg.prefault_ahead_bytes as usize)
            })?;
        }
        Ok(store)
    }

    fn spawn(
        &self,
        name: &'static str,
        f: impl FnOnce(&StoreInner) + Send + 'static,
    ) -> Result<()> {
        let inner = Arc::clone(&self.inner);
        let h = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let _guard = PanicGuard {
                    fence: Arc::clone(&inner.fence),
                    name,
                };
                f(&inner)
            })
            .map_err(|e| Error::io(format!("spawning thread {name}"), e))?;
        self.inner.threads.locked().push(h);
        Ok(())
    }

    /// The configuration the store runs with.
    pub fn config(&self) -> &StoreConfig {
        &self.inner.cfg
    }

    /// What opening the store found and did.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.inner.recovery
    }

    /// Store one message.
    ///
    /// Returns a [`PutResult`] when the message was written (its status says
    /// whether a sync flush finished in time).
    ///
    /// # Errors
    /// Nothing is written when it returns an error: [`Error::IllegalMessage`]
    /// (bad topic, body over `maxMessageSize`, properties too long, queue id out
    /// of range), [`Error::TopicNotExist`], [`Error::ShutDown`], [`Error::Fenced`],
    /// [`Error::WrongRole`] on a slave, [`Error::Io`] when a new file cannot be made.
    pub fn put_message(&self, msg: &Message) -> Result<PutResult> {
        let r = self.inner.put_message(msg)?;
        self.finish_put(r, msg.wait_store_ok(), None)
    }

    /// Store one message without waiting for a sync flush or a slave: the
    /// result's status is [`PutStatus::PutOk`] once the bytes are in the log
    /// (readable, not yet durable). Pass it to [`MessageStore::wait_put`], on
    /// any thread, for the status [`MessageStore::put_message`] would have
    /// given. A server uses this to keep its put threads free while puts wait
    /// for SYNC_FLUSH or SYNC_MASTER (RocketMQ's `asyncPutMessage`), so that
    /// many waiting puts share one sync or one slave round trip.
    ///
    /// # Errors
    /// As [`MessageStore::put_message`].
    pub fn put_message_nowait(&self, msg: &Message) -> Result<PutResult> {
        self.inner.put_message(msg)
    }

    /// [`MessageStore::put_messages`] without the wait; see
    /// [`MessageStore::put_message_nowait`].
    ///
    /// # Errors
    /// As [`MessageStore::put_messages`].
    pub fn put_messages_nowait(&self, msgs: &[Message]) -> Result<PutResult> {
        Self::check_batch(msgs)?;
        self.inner.put_batch_inner(msgs, true)
    }

    /// True when a put must still wait after it is written: SYNC_FLUSH or
    /// SYNC_MASTER, and the message asks to (`WAIT` is not `false`).
    pub fn put_needs_wait(&self, msg: &Message) -> bool {
        let c = &self.inner.cfg;
        msg.wait_store_ok()
            && (c.flush_disk_type == FlushDiskType::SyncFlush
                || c.broker_role == BrokerRole::SyncMaster)
    }

    /// Wait for what a put written by [`MessageStore::put_message_nowait`]
    /// still needs: its bytes durable (SYNC_FLUSH, up to `syncFlushTimeout`)
    /// and on a slave (SYNC_MASTER, up to the slave timeout). Returns the put
    /// with its final status: `PutOk`, `FlushDiskTimeout`, `FlushSlaveTimeout`
    /// or `SlaveNotAvailable`.
    ///
    /// # Errors
    /// [`Error::Fenced`] when a sync failed; [`Error::ShutDown`].
    pub fn wait_put(&self, put: PutResult) -> Result<PutResult> {
        self.finish_put(put, true, None)
    }

    /// [`MessageStore::wait_put`] with the timeouts counted from `written_at`
    /// (when the put was written) rather than from now: one thread can wait
    /// for many puts in turn, in log order, and each still gets its own
    /// deadline (a put whose deadline passed gets its timeout status at once).
    ///
    /// # Errors
    /// As [`MessageStore::wait_put`].
    pub fn wait_put_since(&self, put: PutResult, written_at: Instant) -> Result<PutResult> {
        self.finish_put(put, true, Some(written_at))
    }

    /// True when [`MessageStore::wait_put_then`] may block its caller: under
    /// SYNC_FLUSH it waits for the disk on the calling thread, and under
    /// SYNC_MASTER for the slave unless the registered [`ReplicaWaiter`]
    /// answers without blocking ([`ReplicaWaiter::answers_without_blocking`]),
    /// in which case it returns at once and the replication layer calls back
    /// from its own thread.
    pub fn wait_put_blocks(&self) -> bool {
        let s = &self.inner;
        s.cfg.flush_disk_type == FlushDiskType::SyncFlush
            || (s.cfg.broker_role == BrokerRole::SyncMaster
                && s.replica_waiter()
                    .is_some_and(|w| !w.answers_without_blocking()))
    }

    /// [`MessageStore::wait_put_since`] that hands the put with its final status
    /// to `done` instead of returning it. The disk wait (SYNC_FLUSH) happens on
    /// the calling thread; the slave wait (SYNC_MASTER) does not block it when
    /// the registered [`ReplicaWaiter`] implements
    /// [`ReplicaWaiter::on_replicated`]: `done` then runs on the replication
    /// layer's thread once a slave confirmed the put or its timeout passed, so
    /// it must be short (a send on a channel). A server uses it to answer
    /// SYNC_MASTER sends without a thread per waiting put and without a hop
    /// through a waiting thread.
    ///
    /// `done` gets what [`MessageStore::wait_put_since`] would return:
    /// [`Error::Fenced`] when a sync failed, [`Error::ShutDown`] when the store
    /// stopped, otherwise the put with its final status. It is called exactly
    /// once.
    pub fn wait_put_then(&self, mut put: PutResult, written_at: Instant, done: PutCallback) {
        let s = &self.inner;
        let end = put.commit_log_offset + u64::from(put.wrote_bytes);
        let flushed = match s.wait_flushed(end, written_at) {
            Ok(st) => st,
            Err(e) => return done(Err(e)),
        };
        if s.cfg.broker_role != BrokerRole::SyncMaster {
            put.status = flushed;
            return done(Ok(put));
        }
        match s.replica_waiter() {
            None => {
                put.status = PutStatus::SlaveNotAvailable;
                done(Ok(put));
            }
            Some(w) => {
                let timeout = deadline_left(written_at, s.cfg.slave_timeout_ms);
                w.on_replicated(
                    end,
                    timeout,
                    Box::new(move |replica| {
                        put.status = combine_wait_status(flushed, replica);
                        done(Ok(put));
                    }),
                );
            }
        }
    }

    /// Wait for the put as its message asks (`wait`) and the store's flush
    /// mode and role require; the timeouts count from `since`, or from now.
    /// A put that need not wait reads no clock: a clock read costs as much
    /// as a tenth of a 1 KiB put on a VM.
    #[inline]
    fn finish_put(
        &self,
        mut put: PutResult,
        wait: bool,
        since: Option<Instant>,
    ) -> Result<PutResult> {
        let s = &self.inner;
        if wait
            && (s.cfg.flush_disk_type == FlushDiskType::SyncFlush
                || s.cfg.broker_role == BrokerRole::SyncMaster)
        {
            put.status = s.wait_put(
                put.commit_log_offset + u64::from(put.wrote_bytes),
                since.unwrap_or_else(Instant::now),
            )?;
        }
        Ok(put)
    }

    /// Store a batch of messages for one topic and queue as one unit (they land
    /// in the same commitlog file with consecutive queue offsets).
    ///
    /// # Errors
    /// As [`MessageStore::put_message`]; also when the batch is empty, mixes
    /// topics or queues, or holds transactional or delayed messages.
    pub fn put_messages(&self, msgs: &[Message]) -> Result<PutResult> {
        Self::check_batch(msgs)?;
        let r = self.inner.put_batch_inner(msgs, true)?;
        self.finish_put(r, msgs[0].wait_store_ok(), None)
    }

    fn check_batch(msgs: &[Message]) -> Result<()> {
        let first = msgs
            .first()
            .ok_or_else(|| Error::IllegalMessage("empty batch".into()))?;
        for m in msgs {
            if m.topic != first.topic || m.queue_id != first.queue_id {
                return Err(Error::IllegalMessage(
                    "a batch must have one topic and one queue".into(),
                ));
            }
            if m.sys_flag & sys_flag::TRANSACTION_MASK != 0
                || m.properties.get(message::keys::DELAY).is_some()
            {
                return Err(Error::IllegalMessage(
                    "transactional or delayed messages cannot be batched".into(),
                ));
            }
        }
        Ok(())
    }

    /// Read up to `max_msgs` messages of a queue from `offset`, as RocketMQ's
    /// `getMessage` does (statuses, next offset, transfer limits, tag filter).
    ///
    /// A record that fails its checks while its consume-queue unit is right
    /// (body CRC, a damaged header field) is skipped: the result holds the good
    /// messages around it and a next offset past it, and the record is logged
    /// once, counted ([`StoreStats::damaged_records`]) and listed
    /// ([`MessageStore::damaged_records`]).
    ///
    /// # Errors
    /// [`Error::ShutDown`] after shutdown; [`Error::Corruption`] when the
    /// requested offset's consume-queue unit does not point at its record (a
    /// damaged consume queue): a read never moves past such a unit (when it
    /// is not the first unit read, the result ends before it).
    /// [`Error::Busy`] when the requested offset's unit is damaged and its
    /// repair runs or waits (or failed for a passing reason): the read is to
    /// be retried from the same offset (brokers answer SYSTEM_BUSY, which
    /// clients retry later without moving their offset).
    pub fn get_message(
        &self,
        _group: &str,
        topic: &str,
        queue_id: u32,
        offset: u64,
        max_msgs: u32,
        filter: &MessageFilter,
    ) -> Result<GetResult> {
        self.get_message_inner(topic, queue_id, offset, max_msgs, filter, true)
    }

    /// [`MessageStore::get_message`]; with `may_repair`, a damaged unit at the
    /// requested offset is repaired (or, when it cannot be, noted and skipped)
    /// and the read done once more.
    fn get_message_inner(
        &self,
        topic: &str,
        queue_id: u32,
        offset: u64,
        max_msgs: u32,
        filter: &MessageFilter,
        may_repair: bool,
    ) -> Result<GetResult> {
        let s = &self.inner;
        if s.shut_down.load(Ordering::Acquire) {
            return Err(Error::ShutDown);
        }
        let cl_max = s.commitlog.max_offset();
        let mut r = GetResult {
            status: GetStatus::NoMatchedLogicQueue,
            next_begin_offset: 0,
            min_offset: 0,
            max_offset: 0,
            messages: Vec::new(),
            suggest_pulling_from_slave: false,
        };
        let Some(cq) = s.cqs.get(topic, queue_id) else {
            r.status = if s.topics.get(topic).is_some() {
                GetStatus::NoMessageInQueue
            } else {
                GetStatus::NoMatchedLogicQueue
            };
            return Ok(r);
        };
        let min = cq.min_offset();
        let max = cq.max_offset();
        r.min_offset = min;
        r.max_offset = max;
        if max == 0 {
            r.status = GetStatus::NoMessageInQueue;
            return Ok(r);
        }
        if offset < min {
            r.status = GetStatus::OffsetTooSmall;
            r.next_begin_offset = min;
            return Ok(r);
        }
        if offset == max {
            r.status = GetStatus::OffsetOverflowOne;
            r.next_begin_offset = offset;
            return Ok(r);
        }
        if offset > max {
            r.status = GetStatus::OffsetOverflowBadly;
            r.next_begin_offset = if min == 0 { min } else { max };
            return Ok(r);
        }
        let Some((file, pos, avail)) = cq.units_from(offset) else {
            r.status = GetStatus::OffsetFoundNull;
            r.next_begin_offset = cq.roll_next_file(offset);
            return Ok(r);
        };
        let max_msgs = max_msgs.max(1);
        let max_scan = (16000usize.max(max_msgs as usize * CQ_UNIT_SIZE)) / CQ_UNIT_SIZE;
        let n = avail.min(max_scan).min((max - offset) as usize);
        let units = file.bytes(pos, n * CQ_UNIT_SIZE).unwrap_or(&[]);
        let mem_limit = s.total_ram / 100 * s.cfg.access_message_in_memory_max_ratio as u64;
        let mut scanned = 0usize;
        let mut bytes = 0usize;
        let mut first_missing = false;
        let mut last_phys = 0u64;
        // A unit that fails its checks ends the loop with what to do (cold path).
        let mut bad: Option<(u64, Error)> = None;
        for chunk in units.chunks_exact(CQ_UNIT_SIZE) {
            let Some(u) = CqUnit::decode(chunk) else {
                if !crate::consume_queue::is_blank_unit(chunk) {
                    let q = offset + scanned as u64;
                    if let Some(e) = s.bad_unit(topic, queue_id, q, None, None) {
                        bad = Some((q, e));
                        break;
                    }
                }
                scanned += 1;
                continue;
            };
            last_phys = u.commit_log_offset;
            let in_disk = cl_max.saturating_sub(u.commit_log_offset) > mem_limit;
            if !r.messages.is_empty()
                && self.is_full(bytes, u.size as usize, r.messages.len(), max_msgs, in_disk)
            {
                break;
            }
            scanned += 1;
            if !filter.matches(u.tags_code) {
                continue;
            }
            let q = offset + scanned as u64 - 1;
            match s.commitlog.get_data(u.commit_log_offset, u.size as usize) {
                Some(b) => {
                    // Never hand out a record that fails its checks (magic, sizes, body CRC).
                    match crate::message::check_record(&b, true) {
                        Ok(crate::message::RecordCheck::Message(h))
                            if h.physical_offset as u64 == u.commit_log_offset
                                && h.total_size == u.size
                                && h.topic == topic
                                && h.queue_id == queue_id
                                && h.queue_offset as u64 == q => {}
                        _ => match s.bad_unit(topic, queue_id, q, Some(&u), Some(&b)) {
                            None => continue,
                            Some(e) => {
                                bad = Some((q, e));
                                break;
                            }
                        },
                    }
                    bytes += b.len();
                    r.messages.push(StoredMessage {
                        queue_offset: q,
                        commit_log_offset: u.commit_log_offset,
                        tags_code: u.tags_code,
                        bytes: b,
                    });
                }
                None => {
                    if u.commit_log_offset >= s.commitlog.min_offset() {
                        // The log holds that offset, but not this record.
                        if let Some(e) = s.bad_unit(topic, queue_id, q, Some(&u), None) {
                            bad = Some((q, e));
                            break;
                        }
                        continue;
                    }
                    if r.messages.is_empty() {
                        first_missing = true;
                    }
                }
            }
        }
        if let Some((q, e)) = bad {
            // A unit that does not point at its record: never move past it.
            // The messages before it are served; a read that starts at it
            // repairs the queue there first.
            scanned = (q - offset) as usize;
            if r.messages.is_empty() {
                if !may_repair {
                    return Err(e);
                }
                match s.repair_units(&cq, q, repair::FOREGROUND) {
                    repair::Repair::Done => {}
                    repair::Repair::Impossible(why) => {
                        s.damaged.note_unit(topic, queue_id, q, &e, &why);
                    }
                    repair::Repair::Retry(why) => {
                        return Err(s.repair_later(topic, queue_id, q, &why, false))
                    }
                    repair::Repair::TooFar(why) => {
                        return Err(s.repair_later(topic, queue_id, q, &why, true))
                    }
                }
                drop(file);
                return self.get_message_inner(topic, queue_id, offset, max_msgs, filter, false);
            }
        }
        r.next_begin_offset = offset + scanned as u64;
        r.status = if !r.messages.is_empty() {
            GetStatus::Found
        } else if first_missing {
            GetStatus::MessageWasRemoving
        } else {
            GetStatus::NoMatchedMessage
        };
        r.suggest_pulling_from_slave = cl_max.saturating_sub(last_phys) > mem_limit;
        Ok(r)
    }

    fn is_full(
        &self,
        bytes: usize,
        size: usize,
        count: usize,
        max_msgs: u32,
        in_disk: bool,
    ) -> bool {
        let c = &self.inner.cfg;
        if count >= max_msgs as usize {
            return true;
        }
        if in_disk {
            bytes + size > c.max_transfer_bytes_on_message_in_disk as usize
                || count >= c.max_transfer_count_on_message_in_disk as usize
        } else {
            bytes + size > c.max_transfer_bytes_on_message_in_memory as usize
                || count >= c.max_transfer_count_on_message_in_memory as usize
        }
    }

    /// Block until the queue holds a message at `offset` or `timeout` passes.
    /// Returns true when a message is there. (The broker's long polling uses this.)
    pub fn wait_for_messages(
        &self,
        topic: &str,
        queue_id: u32,
        offset: u64,
        timeout: Duration,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        self.inner.arrivals.wait_until(deadline, || {
            self.max_offset_in_queue(topic, queue_id) > offset
        })
    }

    /// Read-your-write for embedders: block until `put`'s record(s) are
    /// dispatched, that is visible to [`get_message`](Self::get_message) and the
    /// queue lookups, or `timeout` passes. Returns true when they are.
    ///
    /// A put returns once its record is in the commitlog; the dispatch thread
    /// indexes it into its consume queue a moment later (usually well under a
    /// millisecond), so a read issued right after a put may not see it yet.
    pub fn wait_dispatched(&self, put: &PutResult, timeout: Duration) -> bool {
        let end = put.commit_log_offset + u64::from(put.wrote_bytes);
        let deadline = Instant::now() + timeout;
        self.inner.arrivals.wait_until(deadline, || {
            self.inner.dispatcher.dispatched_offset() >= end
        })
    }

    /// Register a callback told `(topic, queue_id, new max offset)` after new
    /// messages are dispatched (`None` removes it). It runs on the dispatch
    /// thread and must not block.
    pub fn set_message_arrival_listener(&self, listener: Option<ArrivalListener>) {
        self.inner.arrivals.set_listener(listener);
    }

    /// One past the last queue offset of a queue (0 when empty or unknown).
    pub fn max_offset_in_queue(&self, topic: &str, queue_id: u32) -> u64 {
        self.inner
            .cqs
            .get(topic, queue_id)
            .map(|q| q.max_offset())
            .unwrap_or(0)
    }

    /// First queue offset still served (0 when empty or unknown).
    pub fn min_offset_in_queue(&self, topic: &str, queue_id: u32) -> u64 {
        self.inner
            .cqs
            .get(topic, queue_id)
            .map(|q| q.min_offset())
            .unwrap_or(0)
    }

    /// The message at commitlog offset `offset`, decoded.
    ///
    /// # Errors
    /// [`Error::Corruption`] naming the commitlog file and position if no valid
    /// record starts there (bad magic, sizes or fields, a physical offset field
    /// that differs, or a body that fails its CRC).
    pub fn look_message_by_offset(&self, offset: u64) -> Result<Option<MessageExt>> {
        match self.inner.commitlog.read_record(offset)? {
            Some(b) => decode_record(&b).map(Some).map_err(|e| {
                Error::corruption(
                    b.path(),
                    b.position(),
                    format!("record at commitlog offset {offset}: {e}"),
                )
            }),
            None => Ok(None),
        }
    }

    /// The record at commitlog offset `offset`, as stored, after checking it
    /// (magic, sizes, fields, physical offset, body CRC).
    ///
    /// # Errors
    /// As [`MessageStore::look_message_by_offset`].
    pub fn read_record(&self, offset: u64) -> Result<Option<MappedBytes>> {
        self.inner.commitlog.read_record(offset)
    }

    /// Messages of `topic` whose `KEYS` contain `key` or whose `UNIQ_KEY` is
    /// `key`, newest first, stored between `begin_ms` and `end_ms`: RocketMQ's
    /// QUERY_MESSAGE, at most `min(max_num, 64)` index hits. Every record is
    /// checked (CRC included) before it is returned, and hits whose topic or keys
    /// differ (hash collisions, damaged index entries) are dropped, so fewer than
    /// `max_num` may come back while more exist.
    ///
    /// # Errors
    /// [`Error::Corruption`] naming the commitlog file and position when the index
    /// points at bytes that are not a valid record (a damaged record, or a damaged
    /// index entry).
    pub fn query_message(
        &self,
        topic: &str,
        key: &str,
        max_num: usize,
        begin_ms: i64,
        end_ms: i64,
    ) -> Result<QueryResult> {
        let s = &self.inner;
        let Some(ix) = &s.index else {
            return Ok(QueryResult::default());
        };
        let (ts, phy) = ix.last_update();
        let mut messages = Vec::new();
        for off in ix.query(topic, key, max_num, begin_ms, end_ms) {
            let Some(bytes) = s.commitlog.read_record(off)? else {
                continue; // deleted by retention meanwhile
            };
            let h = crate::message::parse_header(&bytes).map_err(|e| {
                Error::corruption(
                    bytes.path(),
                    bytes.position(),
                    format!("indexed record at commitlog offset {off}: {e}"),
                )
            })?;
            if h.topic != topic || !record_has_key(h.properties, key) {
                continue;
            }
            messages.push(StoredMessage {
                queue_offset: h.queue_offset as u64,
                commit_log_offset: off,
                tags_code: h.tags_code(),
                bytes,
            });
        }
        Ok(QueryResult {
            messages,
            index_last_update_timestamp_ms: ts,
            index_last_update_phy_offset: phy,
        })
    }

    /// Decoded messages of `topic` whose `KEYS` contain `key` or whose `UNIQ_KEY`
    /// is `key` (index hits compared with the real keys), newest first.
    ///
    /// # Errors
    /// As [`MessageStore::query_message`].
    pub fn query_messages_by_key(
        &self,
        topic: &str,
        key: &str,
        max_num: usize,
        begin_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<MessageExt>> {
        let r = self.query_message(topic, key, max_num, begin_ms, end_ms)?;
        let mut out = Vec::new();
        for m in &r.messages {
            let e = m.decode()?;
            if e.topic == topic
                && (e.keys().contains(&key)
                    || e.properties.get(crate::message::keys::UNIQ_KEY) == Some(key))
            {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// The message with this offset msgId (RocketMQ's VIEW_MESSAGE_BY_ID).
    ///
    /// # Errors
    /// [`Error::IllegalMessage`] when `msg_id` is not an offset msgId;
    /// [`Error::Corruption`] when no record starts at its offset.
    pub fn view_message_by_id(&self, msg_id: &str) -> Result<Option<MessageExt>> {
        let (_, offset) = crate::message::decode_offset_msg_id(msg_id)
            .map_err(|e| Error::IllegalMessage(format!("msgId `{msg_id}`: {e}")))?;
        self.look_message_by_offset(offset)
    }

    /// Store timestamp of the record a queue unit points at, after checking the
    /// record (CRC included) and that it is the one the unit describes.
    fn store_time_at(&self, cq: &ConsumeQueue, queue_offset: u64) -> Result<Option<i64>> {
        let Some(u) = cq.get(queue_offset) else {
            return Ok(None);
        };
        let Some(b) = self.inner.commitlog.read_record(u.commit_log_offset)? else {
            return Ok(None);
        };
        let h = crate::message::parse_header(&b).map_err(|e| {
            Error::corruption(
                b.path(),
                b.position(),
                format!("record at commitlog offset {}: {e}", u.commit_log_offset),
            )
        })?;
        if h.total_size != u.size {
            return Err(Error::corruption(
                b.path(),
                b.position(),
                format!(
                    "record at commitlog offset {} is {} bytes, its consume-queue unit says {}",
                    u.commit_log_offset, h.total_size, u.size
                ),
            ));
        }
        Ok(Some(h.store_timestamp_ms))
    }

    /// The first queue offset whose message was stored at or after `timestamp_ms`
    /// (RocketMQ's SEARCH_OFFSET_BY_TIMESTAMP: a binary search over the consume
    /// queue by store time). Before every message: the min offset; after every
    /// message: the max offset.
    ///
    /// # Errors
    /// [`Error::Corruption`] if a unit points at bytes that are not a record.
    pub fn offset_for_timestamp(
        &self,
        topic: &str,
        queue_id: u32,
        timestamp_ms: i64,
    ) -> Result<u64> {
        let Some(cq) = self.inner.cqs.get(topic, queue_id) else {
            return Ok(0);
        };
        let (mut lo, mut hi) = (cq.min_offset(), cq.max_offset());
        // Invariant: every offset below `lo` was stored before `timestamp_ms`,
        // every offset at or above `hi` at or after it.
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.store_time_at(&cq, mid)? {
                Some(t) if t < timestamp_ms => lo = mid + 1,
                Some(_) => hi = mid,
                None => lo = mid + 1, // blank or removed unit: look further on
            }
        }
        Ok(lo)
    }

    /// Store time of the first message still in a queue (RocketMQ's
    /// GET_EARLIEST_MSG_STORETIME), if any.
    ///
    /// # Errors
    /// [`Error::Corruption`] if a unit points at bytes that are not a record.
    pub fn earliest_message_time(&self, topic: &str, queue_id: u32) -> Result<Option<i64>> {
        let Some(cq) = self.inner.cqs.get(topic, queue_id) else {
            return Ok(None);
        };
        self.store_time_at(&cq, cq.min_offset())
    }

    /// Raw commitlog bytes from `offset`, at most `max_len`, never crossing a
    /// file: what a master streams to a slave. `None` when nothing is there yet.
    pub fn read_commit_log(&self, offset: u64, max_len: usize) -> Option<MappedBytes> {
        self.inner.commitlog.read_raw(offset, max_len)
    }

    /// Append raw commitlog bytes at exactly `offset` (a slave applying its
    /// master's stream). `offset` must be the end of the log, or the start of a
    /// file when the log is empty; the bytes must not cross a file. The dispatcher
    /// builds consume queues and the index from them as from local puts.
    ///
    /// # Errors
    /// [`Error::IllegalMessage`] when the offset does not continue the log or the
    /// bytes cross a file; [`Error::Fenced`] / [`Error::ShutDown`] as for puts.
    pub fn append_commit_log(&self, offset: u64, data: &[u8]) -> Result<()> {
        let s = &self.inner;
        if s.stopping.load(Ordering::Acquire) {
            return Err(Error::ShutDown);
        }
        s.fence.check()?;
        s.commitlog.append_raw(offset, data)?;
        if s.arrivals.has_interest() {
            s.dispatcher.waker.wake();
        }
        Ok(())
    }

    /// Commitlog offset known durable on this store.
    pub fn commit_log_flushed_offset(&self) -> u64 {
        self.inner.flusher.durable_offset()
    }

    /// Register what SYNC_MASTER puts wait for after writing: the replication
    /// layer's "a slave has this offset" (see [`ReplicaWaiter`]). Without one,
    /// SYNC_MASTER puts report [`PutStatus::SlaveNotAvailable`].
    pub fn set_replica_waiter(&self, waiter: Option<Arc<dyn ReplicaWaiter>>) {
        *self.inner.replica_waiter.write_locked() = waiter;
    }

    /// Create or update a topic.
    ///
    /// # Errors
    /// [`Error::IllegalMessage`] for a bad name or zero queues; [`Error::Io`] if it cannot be persisted.
    pub fn create_topic(&self, topic: &str, queue_nums: u32) -> Result<TopicConfig> {
        validate_topic(topic).map_err(Error::IllegalMessage)?;
        if queue_nums == 0 || queue_nums > 1024 {
            return Err(Error::IllegalMessage(format!(
                "queue count {queue_nums} out of range 1..=1024"
            )));
        }
        self.inner
            .topics
            .upsert(TopicConfig::new(topic, queue_nums))
    }

    /// Create or replace a topic with every field of its configuration
    /// (read/write queue counts, perm, flags), as UPDATE_AND_CREATE_TOPIC does.
    ///
    /// # Errors
    /// [`Error::IllegalMessage`] for a bad name or queue counts outside 1..=1024;
    /// [`Error::Io`] if it cannot be persisted.
    pub fn upsert_topic(&self, cfg: TopicConfig) -> Result<TopicConfig> {
        validate_topic(&cfg.topic_name).map_err(Error::IllegalMessage)?;
        for (what, n) in [
            ("read", cfg.read_queue_nums),
            ("write", cfg.write_queue_nums),
        ] {
            if n == 0 || n > 1024 {
                return Err(Error::IllegalMessage(format!(
                    "{what} queue count {n} out of range 1..=1024"
                )));
            }
        }
        self.inner.topics.upsert(cfg)
    }

    /// Return once every topic change made so far is in `config/topics.json`
    /// (changes are otherwise written within a short interval; see
    /// [`crate::persist`]). For changes that must survive a crash once
    /// acknowledged, as an administrator's UPDATE_AND_CREATE_TOPIC.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be written.
    pub fn persist_topics(&self) -> Result<()> {
        self.inner.topics.persist()
    }

    /// Whether the message at `queue_offset` of a queue is probably no longer in
    /// the page cache (RocketMQ's `checkInDiskByConsumeOffset`: further behind the
    /// commitlog end than `accessMessageInMemoryMaxRatio` % of RAM).
    pub fn is_offset_in_disk(&self, topic: &str, queue_id: u32, queue_offset: u64) -> bool {
        let s = &self.inner;
        let Some(u) = s.cqs.get(topic, queue_id).and_then(|q| q.get(queue_offset)) else {
            return false;
        };
        let limit = s.total_ram / 100 * s.cfg.access_message_in_memory_max_ratio as u64;
        s.commitlog.max_offset().saturating_sub(u.commit_log_offset) > limit
    }

    /// Version of the topic table (`dataVersion` of `config/topics.json`).
    pub fn topic_table_version(&self) -> crate::topic::DataVersion {
        self.inner.topics.data_version()
    }

    /// Replace every topic and the table's version, as a slave does with its
    /// master's table (RocketMQ's `SlaveSynchronize.syncTopicConfig`), and persist it.
    ///
    /// # Errors
    /// [`Error::Io`] when `config/topics.json` cannot be written.
    pub fn replace_topics(
        &self,
        mut topics: Vec<TopicConfig>,
        version: crate::topic::DataVersion,
    ) -> Result<()> {
        // A master's table is input like any other: names are checked.
        let before = topics.len();
        topics.retain(|t| validate_topic(&t.topic_name).is_ok());
        if topics.len() < before {
            tracing::warn!(
                refused = before - topics.len(),
                "topics with invalid names in the master's table are not copied"
            );
        }
        self.inner.topics.replace_all(topics, version)
    }

    /// Delivery progress of delayed messages: next queue offset per delay level
    /// (the content of `config/delayOffset.json`).
    pub fn delay_offsets(&self) -> std::collections::BTreeMap<u32, u64> {
        self.inner.schedule.all()
    }

    /// Replace the delivery progress of delayed messages (a slave copying its
    /// master's) and persist `config/delayOffset.json`.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be written.
    pub fn replace_delay_offsets(
        &self,
        offsets: std::collections::BTreeMap<u32, u64>,
    ) -> Result<()> {
        self.inner.schedule.replace_all(offsets)
    }

    /// A topic's configuration.
    pub fn topic_config(&self, topic: &str) -> Option<TopicConfig> {
        self.inner.topics.get(topic)
    }

    /// Every topic.
    pub fn topics(&self) -> Vec<TopicConfig> {
        self.inner.topics.all()
    }

    /// End of the commitlog.
    pub fn commit_log_max_offset(&self) -> u64 {
        self.inner.commitlog.max_offset()
    }

    /// Start of the commitlog.
    pub fn commit_log_min_offset(&self) -> u64 {
        self.inner.commitlog.min_offset()
    }

    /// Current figures.
    pub fn stats(&self) -> StoreStats {
        let s = &self.inner;
        StoreStats {
            commit_log_min_offset: s.commitlog.min_offset(),
            commit_log_max_offset: s.commitlog.max_offset(),
            commit_log_flushed_offset: s.flusher.durable_offset(),
            dispatched_offset: s.dispatcher.dispatched_offset(),
            commit_log_files: s.commitlog.queue.file_count(),
            consume_queues: s.cqs.all().len(),
            commit_log_syncs: s.flusher.syncs.load(Ordering::Relaxed),
            last_dispatched_store_timestamp_ms: s.dispatcher.last_store_timestamp_ms(),
            transient_store_pool: s.commitlog.pooled(),
            transient_store_pool_available: s.commitlog.pool_available(),
            commit_backend: match s.commitlog.commit_backend().fallback_reason() {
                Some(why) if s.commitlog.pooled() => format!("pwrite ({why})"),
                _ => s.commitlog.commit_backend().name().to_string(),
            },
            commit_registered_buffers: s.commitlog.commit_backend().registered_buffers(),
            commit_counters: s.commitlog.commit_backend().counters(),
            fenced: s.fence.cause(),
            dispatch_error: s.dispatcher.health.error.locked().clone(),
            dispatch_retries: s.dispatcher.health.retries.load(Ordering::Relaxed),
            records_refused: s.dispatcher.health.refused.load(Ordering::Relaxed),
            consume_queue_flush_error: s.cq_flush_failed.locked().clone(),
            damaged_records: s.damaged.count(),
            consume_queue_units_repaired: s.units_repaired.load(Ordering::Relaxed),
        }
    }

    /// Records that reads found damaged (body CRC, header) and skipped, the
    /// first [`crate::damage::MAX_LISTED_DAMAGED_RECORDS`] found: each was
    /// logged once, and pulls moved past it.
    pub fn damaged_records(&self) -> Vec<crate::damage::DamagedRecord> {
        self.inner.damaged.list()
    }

    /// Run one clean pass now (what the clean thread does every
    /// `cleanResourceInterval` ms) and return what it did.
    pub fn run_clean_pass(&self) -> CleanPassReport {
        self.inner.clean_pass()
    }

    /// Ask for expired files to be deleted whatever the hour (RocketMQ's
    /// DELETE_EXPIRED_COMMITLOG): the next 20 clean passes delete expired files.
    pub fn execute_delete_files_manually(&self) {
        self.inner.manual_delete_rounds.store(20, Ordering::Release);
        self.inner.clean_waker.wake();
    }

    /// Disk usage, thresholds, offsets and the last clean pass.
    pub fn retention_stats(&self) -> RetentionStats {
        let s = &self.inner;
        RetentionStats {
            disk_used_ratio: s
                .env
                .disk
                .used_ratio(&s.cfg.commit_log_dir())
                .unwrap_or(-1.0),
            disk_max_used_space_ratio: s.cfg.disk_max_used_space_ratio.clamp(10, 95) as f64 / 100.0,
            clean_forcibly_ratio: s.cfg.disk_space_clean_forcibly_ratio as f64 / 100.0,
            warning_ratio: s.cfg.disk_space_warning_level_ratio as f64 / 100.0,
            disk_full: s.disk_full.load(Ordering::Acquire),
            commit_log_min_offset: s.commitlog.min_offset(),
            commit_log_max_offset: s.commitlog.max_offset(),
            commit_log_files: s.commitlog.queue.file_count(),
            last_pass: s.last_clean.locked().clone(),
        }
    }

    /// Flush the commitlog and every consume queue now.
    ///
    /// # Errors
    /// The flush error. A failed commitlog sync fences the store; a failed
    /// consume-queue flush does not (the queues are rebuilt from the
    /// commitlog): it is reported in [`StoreStats::consume_queue_flush_error`]
    /// and the next open re-dispatches from the last offset known flushed.
    pub fn flush(&self) -> Result<()> {
        let s = &self.inner;
        if s.commitlog.pooled() {
            s.commitlog
                .commit(0)
                .inspect_err(|e| s.fence.trip(format!("commitlog commit failed: {e}")))?;
        }
        s.flusher.flush(&s.commitlog.queue, 0)?;
        for cq in s.cqs.all() {
            cq.flush(0).inspect_err(|e| s.note_cq_flush_failed(e))?;
        }
        Ok(())
    }

    /// Stop accepting puts, dispatch what is written, flush everything, join
    /// the background threads and mark the shutdown clean. Calling it again is a no-op.
    ///
    /// # Errors
    /// The first error met while flushing or persisting; the abort marker then
    /// stays, so the next open runs the abnormal recovery.
    pub fn shutdown(&self) -> Result<()> {
        let s = &self.inner;
        if s.shut_down.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        s.stopping.store(true, Ordering::Release);
        s.commitlog.close();
        let mut first_err: Option<Error> = None;
        fn keep_first(slot: &mut Option<Error>, r: Result<()>) {
            if let Err(e) = r {
                slot.get_or_insert(e);
            }
        }
        macro_rules! keep {
            ($r:expr $(,)?) => {
                keep_first(&mut first_err, $r)
            };
        }
        s.flusher.stop();
        s.dispatcher.waker.wake();
        s.clean_waker.wake();
        s.schedule_waker.wake();
        s.commit_waker.wake();
        let threads: Vec<_> = s.threads.locked().drain(..).collect();
        for h in threads {
            if h.join().is_err() {
                keep!(Err(Error::Fenced("a background thread panicked".into())));
            }
        }
        s.commitlog.stop();
        if s.commitlog.pooled() {
            // Commit what the pool holds first, so it is dispatched and flushed below.
            keep!(s.commitlog.commit(0).map(|_| ()));
        }
        keep!(s
            .dispatcher
            .dispatch_available(&s.commitlog, &s.cqs, s.index.as_ref(), &s.arrivals)
            .map(|_| ()));
        keep!(s.flusher.flush(&s.commitlog.queue, 0).map(|_| ()));
        keep!(s.flush_consume_queues(0));
        if let Some(why) = s.cq_flush_failed.locked().clone() {
            // Keep the abort marker: the next open re-dispatches from the
            // last offset known flushed.
            keep!(Err(Error::io(
                "a consume queue flush failed earlier; the next open rebuilds from the commitlog",
                std::io::Error::other(why),
            )));
        }
        keep!(s.topics.flush());
        keep!(s.schedule.persist());
        keep!(s.fence.check());
        if first_err.is_none() {
            let abort = s.cfg.store_path_root_dir.join("abort");
            keep!(std::fs::remove_file(&abort)
                .map_err(|e| Error::io(format!("removing {}", abort.display()), e)),);
            keep!(crate::mapped_file::sync_dir(&s.cfg.store_path_root_dir));
            if let Some(h) = crate::io::hook_for(&abort) {
                h.removed(&abort);
            }
        }
        crate::sys::unlock(&s.lock_file);
        match first_err {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }
}

impl Drop for MessageStore {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::error!(error = %e, "store shutdown on drop failed");
        }
    }
}

impl StoreInner {
    fn put_message(&self, msg: &Message) -> Result<PutResult> {
        if let Some(level) = crate::schedule::delay_level(msg) {
            // A delayed message: check its real topic and queue now, then let it
            // wait on the schedule topic (RocketMQ 4.x's layout).
            self.check_writable()?;
            self.validate(msg)?;
            self.checked_queues(&msg.topic, msg.queue_id, None)?;
            let level = level.min(self.schedule.max_level());
            self.topics
                .get_or_create(crate::schedule::SCHEDULE_TOPIC, self.schedule.max_level())?;
            let waiting = crate::schedule::to_schedule(msg, level);
            return self.put_batch_inner(std::slice::from_ref(&waiting), false);
        }
        self.put_batch_inner(std::slice::from_ref(msg), false)
    }

    /// Write queue count of `topic` (`known` if the caller looked it up
    /// already), auto-creating the topic when allowed, with `queue_id`
    /// checked against it. A put whose queue id is out of range creates
    /// nothing: an auto-created topic would get `defaultTopicQueueNums` queues,
    /// so that is checked first.
    fn checked_queues(&self, topic: &str, queue_id: u32, known: Option<u32>) -> Result<u32> {
        let out_of_range = |queues: u32| {
            Error::IllegalMessage(format!(
                "queue id {queue_id} out of range: topic `{topic}` has {queues} write queues"
            ))
        };
        let queues = match known.or_else(|| self.topics.write_queues(topic)) {
            Some(n) => n,
            None if self.cfg.auto_create_topic_enable => {
                let n = self.cfg.default_topic_queue_nums;
                if queue_id >= n {
                    return Err(out_of_range(n));
                }
                self.topics.get_or_create(topic, n)?
            }
            None => return Err(Error::TopicNotExist(topic.to_string())),
        };
        if queue_id >= queues {
            return Err(out_of_range(queues));
        }
        Ok(queues)
    }

    /// Deliver the scheduled messages that are due; returns how many.
    fn deliver_due(&self) -> usize {
        let now = crate::message::now_ms();
        let mut delivered = 0;
        for level in 1..=self.schedule.max_level() {
            let Some(cq) = self.cqs.get(crate::schedule::SCHEDULE_TOPIC, level - 1) else {
                continue;
            };
            let mut offset = self
                .schedule
                .offset(level)
                .unwrap_or(0)
                .max(cq.min_offset());
            let max = cq.max_offset();
            while offset < max && !self.stopping.load(Ordering::Acquire) {
                let Some(unit) = cq.get(offset) else {
                    offset += 1; // blank unit
                    continue;
                };
                if unit.tags_code > now {
                    break; // in order: later ones are due later
                }
                let Some(bytes) = self
                    .commitlog
                    .get_data(unit.commit_log_offset, unit.size as usize)
                else {
                    offset += 1; // deleted by retention
                    continue;
                };
                match decode_record(&bytes)
                    .ok()
                    .and_then(|e| crate::schedule::to_real(&e))
                {
                    Some(real) => match self.put_batch_inner(std::slice::from_ref(&real), false) {
                        Ok(_) => delivered += 1,
                        Err(e @ (Error::IllegalMessage(_) | Error::TopicNotExist(_))) => {
                            tracing::error!(error = %e, level, offset, "dropping an undeliverable delayed message");
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, level, offset, "delayed delivery failed; retrying");
                            break;
                        }
                    },
                    None => {
                        tracing::error!(
                            level,
                            offset,
                            "scheduled record lacks REAL_TOPIC/REAL_QID; skipped"
                        );
                    }
                }
                offset += 1;
            }
            self.schedule.set_offset(level, offset);
        }
        delivered
    }

    fn run_schedule(&self) {
        let mut last_persist = Instant::now();
        while !self.stopping.load(Ordering::Acquire) {
            let n = self.deliver_due();
            if last_persist.elapsed() >= Duration::from_secs(1) {
                if let Err(e) = self.schedule.persist() {
                    tracing::error!(error = %e, "persisting delayOffset.json failed");
                }
                last_persist = Instant::now();
            }
            if n == 0 {
                self.schedule_waker.wait(Duration::from_millis(50));
            }
        }
    }
    fn check_writable(&self) -> Result<()> {
        let s = self;
        if s.stopping.load(Ordering::Acquire) {
            return Err(Error::ShutDown);
        }
        s.fence.check()?;
        if s.disk_full.load(Ordering::Acquire) {
            return Err(Error::DiskFull(format!(
                "the commitlog's disk is fuller than diskSpaceWarningLevelRatio {}%; puts resume below {}%",
                s.cfg.disk_space_warning_level_ratio, s.cfg.disk_space_clean_forcibly_ratio
            )));
        }
        if s.cfg.broker_role == BrokerRole::Slave {
            return Err(Error::WrongRole("a slave does not accept puts".into()));
        }
        Ok(())
    }

    fn validate(&self, msg: &Message) -> Result<()> {
        validate_topic(&msg.topic).map_err(Error::IllegalMessage)?;
        self.validate_content(msg)
    }

    /// [`StoreInner::validate`] but for the topic's name.
    fn validate_content(&self, msg: &Message) -> Result<()> {
        if msg.body.len() > self.cfg.max_message_size as usize {
            return Err(Error::IllegalMessage(format!(
                "body is {} bytes, more than maxMessageSize {}",
                msg.body.len(),
                self.cfg.max_message_size
            )));
        }
        let plen = msg.properties.encoded_len();
        if plen > MAX_PROPERTIES_LEN {
            return Err(Error::IllegalMessage(format!(
                "properties are {plen} bytes encoded, more than {MAX_PROPERTIES_LEN}"
            )));
        }
        for (k, v) in msg.properties.iter() {
            if k.is_empty() || k.bytes().chain(v.bytes()).any(|b| b == 1 || b == 2) {
                return Err(Error::IllegalMessage(format!(
                    "property `{}` has an empty key or contains the separators \\x01/\\x02",
                    k.escape_debug()
                )));
            }
        }
        Ok(())
    }

    fn put_batch_inner(&self, msgs: &[Message], batch: bool) -> Result<PutResult> {
        self.check_writable()?;
        let first = &msgs[0];
        let s = self;
        // A topic the table knows has a legal name (see `TopicTable::write_queues`);
        // an unknown one is checked before anything is created for it.
        let known = s.topics.write_queues(&first.topic);
        for (i, m) in msgs.iter().enumerate() {
            if known.is_some() && (i == 0 || m.topic == first.topic) {
                self.validate_content(m)?;
            } else {
                self.validate(m)?;
            }
        }
        s.checked_queues(&first.topic, first.queue_id, known)?;
        let tx = first.sys_flag & sys_flag::TRANSACTION_MASK;
        let assign = !(tx == sys_flag::TRANSACTION_PREPARED_TYPE
            || tx == sys_flag::TRANSACTION_ROLLBACK_TYPE);
        let appended = if let [m] = msgs {
            // One message: checksum it here, encode it once, in place, under the lock.
            let rec = message::PreparedRecord::new(m, &s.store_host);
            let slot = RecordSlot {
                start: 0,
                store_timestamp_pos: rec.store_timestamp_pos,
            };
            check_record_len(rec.len, s.cfg.max_message_size, batch)?;
            s.commitlog.append(
                rec.len,
                |dst| rec.write(dst),
                &[slot],
                &first.topic,
                first.queue_id,
                assign,
            )?
        } else {
            ENCODE_BUF.with(|b| {
                let (buf, slots) = &mut *b.borrow_mut();
                buf.clear();
                slots.clear();
                for m in msgs {
                    let start = buf.len();
                    let layout = encode_record(m, &s.store_host, buf);
                    debug_assert_eq!(layout.len, buf.len() - start);
                    slots.push(RecordSlot {
                        start,
                        store_timestamp_pos: layout.store_timestamp_pos,
                    });
                }
                check_record_len(buf.len(), s.cfg.max_message_size, batch)?;
                s.commitlog.append(
                    buf.len(),
                    |dst| dst.copy_from_slice(buf),
                    slots,
                    &first.topic,
                    first.queue_id,
                    assign,
                )
            })?
        };
        s.flusher.on_put();
        if s.commitlog.pooled() {
            // As RocketMQ wakes its commit service after a put, but only once a
            // commit would write something: at least commitCommitLogLeastPages
            // pages wait (one atomic load otherwise).
            let end = appended.wrote_offset + appended.wrote_bytes as u64;
            let least = u64::from(s.cfg.commit_commit_log_least_pages.max(1)) * 4096;
            if end.saturating_sub(s.commitlog.queue.committed_where()) >= least {
                s.commit_waker.wake();
            }
        }
        if s.arrivals.has_interest() {
            s.dispatcher.waker.wake();
        }

        let status = PutStatus::PutOk;
        let batch_msg_ids = if msgs.len() == 1 {
            None
        } else {
            // Recompute each record's offset from the encoded sizes.
            let mut ids = Vec::with_capacity(msgs.len());
            let mut off = appended.wrote_offset;
            for m in msgs {
                ids.push(offset_msg_id(s.store_host, off));
                off += message::record_len(m, &s.store_host, m.properties.encoded_len()) as u64;
            }
            Some(ids.join(","))
        };
        Ok(PutResult {
            status,
            commit_log_offset: appended.wrote_offset,
            queue_offset: appended.queue_offset,
            store_host: s.store_host,
            batch_msg_ids,
            wrote_bytes: appended.wrote_bytes as u32,
            message_count: msgs.len() as u32,
            store_timestamp_ms: appended.store_timestamp_ms,
        })
    }

    /// Wait until the log is durable (SYNC_FLUSH) and on a slave (SYNC_MASTER)
    /// up to `end`, as the config asks; the put's final status.
    fn wait_put(&self, end: u64, since: Instant) -> Result<PutStatus> {
        let flushed = self.wait_flushed(end, since)?;
        if self.cfg.broker_role != BrokerRole::SyncMaster {
            return Ok(flushed);
        }
        let replica = match self.replica_waiter() {
            Some(w) => w.wait_replicated(end, deadline_left(since, self.cfg.slave_timeout_ms)),
            None => PutStatus::SlaveNotAvailable,
        };
        Ok(combine_wait_status(flushed, replica))
    }

    /// Under SYNC_FLUSH, wait until the log is durable up to `end` (at most
    /// `syncFlushTimeout` from `since`): `PutOk` or `FlushDiskTimeout`.
    fn wait_flushed(&self, end: u64, since: Instant) -> Result<PutStatus> {
        if self.cfg.flush_disk_type != FlushDiskType::SyncFlush {
            return Ok(PutStatus::PutOk);
        }
        let timeout = deadline_left(since, self.cfg.sync_flush_timeout_ms);
        Ok(match self.flusher.wait_durable(end, timeout)? {
            SyncOutcome::TimedOut => PutStatus::FlushDiskTimeout,
            _ => PutStatus::PutOk,
        })
    }

    fn replica_waiter(&self) -> Option<Arc<dyn ReplicaWaiter>> {
        self.replica_waiter.read_locked().clone()
    }

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

    /// A read met unit `u` (`None`: a unit that does not decode) at
    /// `queue_offset` of `topic`/`queue_id` that fails its checks against the
    /// record bytes `b` (`None`: nothing readable there). A damaged record (the
    /// unit is right) is noted and skipped: `None`. A damaged unit is an error
    /// for the read, which must not move past it: `Some`.
    #[cold]
    #[inline(never)]
    fn bad_unit(
        &self,
        topic: &str,
        queue_id: u32,
        queue_offset: u64,
        u: Option<&CqUnit>,
        b: Option<&MappedBytes>,
    ) -> Option<Error> {
        let fs = self.cfg.mapped_file_size_commit_log;
        if self.damaged.has_unit(topic, queue_id, queue_offset) {
            return None; // a unit that could not be repaired: skipped (listed)
        }
        if let (Some(u), Some(b)) = (u, b) {
            let check = crate::damage::classify(b, u, topic, queue_id, queue_offset, None, true);
            if check != crate::damage::UnitCheck::UnitWrong {
                let reason = match crate::message::check_record(b, true) {
                    Err(e) => e.reason,
                    Ok(_) => "its physical offset field does not match its position".into(),
                };
                self.damaged.note(
                    crate::damage::DamagedRecord {
                        topic: topic.to_string(),
                        queue_id,
                        queue_offset,
                        commit_log_offset: u.commit_log_offset,
                        reason,
                    },
                    b.path(),
                );
                return None;
            }
        }
        let what = match u {
            Some(u) => format!(
                "points at commitlog offset {} size {}, which is not its record",
                u.commit_log_offset, u.size
            ),
            None => "is not a unit".into(),
        };
        let at = u.map_or(0, |u| u.commit_log_offset);
        Some(Error::corruption(
            self.cfg
                .consume_queue_dir()
                .join(topic)
                .join(queue_id.to_string()),
            queue_offset * CQ_UNIT_SIZE as u64,
            format!(
                "consume queue unit {queue_offset} of {topic}-{queue_id} {what} \
                 (commitlog file {}); a read that starts there rebuilds it from the commitlog",
                crate::mapped_file::file_name(at / fs * fs)
            ),
        ))
    }

    /// Follow the commitlog. A resource error (an [`Error::Io`] creating or
    /// growing a consume-queue or index file: no descriptor, no space, EIO)
    /// is retried with back-off and reported, never fenced: the position stays
    /// before the record whose unit is not written, puts go on, and dispatch
    /// resumes by itself. Other errors (a record that does not parse) fence.
    fn run_dispatch(&self) {
        while !self.stopping.load(Ordering::Acquire) {
            self.learn_dispatched_topics();
            match self.dispatcher.dispatch_available(
                &self.commitlog,
                &self.cqs,
                self.index.as_ref(),
                &self.arrivals,
            ) {
                Ok(n) => {
                    self.dispatcher.note_ok();
                    if n == 0 {
                        self.dispatcher.waker.wait(Duration::from_millis(1));
                    }
                }
                Err(e @ Error::Io { .. }) => {
                    let wait = self.dispatcher.note_retry(&e);
                    let until = Instant::now() + wait;
                    while !self.stopping.load(Ordering::Acquire) && Instant::now() < until {
                        std::thread::sleep(Duration::from_millis(10).min(wait));
                    }
                }
                Err(e) => {
                    self.fence.trip(format!("dispatch failed: {e}"));
                    return;
                }
            }
        }
    }

    fn run_clean(&self) {
        let interval = Duration::from_millis(self.cfg.clean_resource_interval_ms.max(1));
        while !self.stopping.load(Ordering::Acquire) {
            self.clean_waker.wait(interval);
            if self.stopping.load(Ordering::Acquire) {
                break;
            }
            self.clean_pass();
        }
    }

    fn clean_pass(&self) -> CleanPassReport {
        // One pass at a time (the clean thread's and a manual one): a pass
        // that returns has finished what it started, manifest included.
        let _one = self.clean_pass_lock.locked();
        let started = Instant::now();
        let cfg = &self.cfg;
        let now = self.env.clock.now_ms();
        let hours = cfg.delete_when_hours().unwrap_or_default();
        let ratio = match self.env.disk.used_ratio(&cfg.commit_log_dir()) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read disk usage of the commitlog partition");
                None
            }
        };
        let manual = self
            .manual_delete_rounds
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok();
        let was_full = self.disk_full.load(Ordering::Acquire);
        let (triggers, full) = evaluate(
            cfg,
            &hours,
            self.env.clock.local_hour(now),
            ratio,
            manual,
            was_full,
        );
        if full != was_full {
            self.disk_full.store(full, Ordering::Release);
            if full {
                tracing::error!(ratio, "disk full: puts are refused until usage falls");
            } else {
                tracing::info!(ratio, "disk usage fell: puts are accepted again");
            }
        }
        let mut rep = CleanPassReport {
            at_ms: now,
            disk_used_ratio: ratio.unwrap_or(-1.0),
            triggers,
            disk_full: full,
            ..Default::default()
        };
        if triggers.time_up || triggers.space_full || triggers.manual {
            let file_size = cfg.mapped_file_size_commit_log;
            let reserved_ms = cfg.file_reserved_time_hours.saturating_mul(3_600_000) as i64;
            // Never bytes that are not yet durable or not yet in the consume queues.
            let safe_end = self
                .flusher
                .durable_offset()
                .min(self.dispatcher.dispatched_offset());
            for i in 0..cfg.delete_file_batch_max {
                if self.stopping.load(Ordering::Acquire) {
                    break;
                }
                if i > 0 {
                    std::thread::sleep(Duration::from_millis(
                        cfg.delete_commit_log_files_interval_ms,
                    ));
                }
                let removed = self.commitlog.queue.remove_first_while(
                    |f| {
                        f.is_full()
                            && f.file_from_offset() + file_size <= safe_end
                            && (triggers.clean_at_once || now >= f.last_write_ms() + reserved_ms)
                    },
                    1,
                );
                let Some(f) = removed.into_iter().next() else {
                    break;
                };
                if let Err(e) = f.delete_file() {
                    tracing::error!(error = %e, "deleting a commitlog file failed; retried later");
                    rep.deletions_failed += 1;
                } else {
                    tracing::info!(file = %f.path().display(), ?triggers, "deleted commitlog file");
                }
                rep.commit_log_files_deleted += 1;
                rep.commit_log_bytes_deleted += file_size;
                self.hanging.locked().files.push((f, now));
            }
            let owed = self.cq_expiry_owed.swap(false, Ordering::AcqRel);
            if rep.commit_log_files_deleted > 0 || owed {
                let min = self.commitlog.min_offset();
                // The first-file manifest first, under its lock (a flush
                // never writes an older one after it): a crash after the
                // deletions must not take them for lost files.
                let mut last_min = self.cq_min_manifest.locked();
                let plan: Vec<_> = self
                    .cqs
                    .all()
                    .into_iter()
                    .map(|cq| {
                        let keep_from = cq.first_file_offset_after_expiry(min);
                        (cq, keep_from)
                    })
                    .collect();
                let mut mins = last_min.clone();
                for (cq, keep_from) in &plan {
                    mins.entry(cq.topic().to_string())
                        .or_default()
                        .insert(cq.queue_id(), *keep_from);
                }
                let changed = plan.iter().any(|(cq, k)| *k != cq.first_file_offset());
                let go =
                    !changed || *last_min == mins || self.write_manifest(CQ_MIN_MANIFEST, &mins);
                let mut h = self.hanging.locked();
                if go {
                    if changed {
                        *last_min = mins;
                    }
                    for (cq, keep_from) in &plan {
                        for f in cq.delete_expired(min, *keep_from) {
                            rep.consume_queue_files_deleted += 1;
                            if !f.is_deleted() {
                                rep.deletions_failed += 1;
                            }
                            h.files.push((f, now));
                        }
                    }
                } else {
                    // Files stay until the manifest can be written (the next pass).
                    self.cq_expiry_owed.store(true, Ordering::Release);
                    rep.deletions_failed += 1;
                    for (cq, _) in &plan {
                        cq.correct_min_offset(min);
                    }
                }
                drop(last_min);
                if let Some(ix) = &self.index {
                    match ix.delete_before(min) {
                        Ok(n) => rep.index_files_deleted += n,
                        Err(e) => {
                            tracing::error!(error = %e, "deleting index files failed; retried later");
                            rep.deletions_failed += 1;
                            h.index_retry = true;
                        }
                    }
                }
            }
        }
        self.redelete_hanged(now, &mut rep);
        rep.commit_log_min_offset = self.commitlog.min_offset();
        rep.millis = started.elapsed().as_millis() as u64;
        *self.last_clean.locked() = Some(rep.clone());
        rep
    }

    /// RocketMQ's `redeleteHangedFile`: every `redeleteHangedFileInterval` ms
    /// (counted from the last retry, or from the first failure or hang since
    /// nothing waited), retry the unlinks and index deletions that failed, and
    /// release forcibly the deleted files a reader has held for longer than
    /// `destroyMapedFileIntervalForcibly` ms. Files nobody holds any more are
    /// let go on every pass (their mapping goes with the last `Arc`).
    fn redelete_hanged(&self, now: i64, rep: &mut CleanPassReport) {
        let cfg = &self.cfg;
        let forcibly_ms =
            i64::try_from(cfg.destroy_maped_file_interval_forcibly_ms).unwrap_or(i64::MAX);
        let redelete_ms = i64::try_from(cfg.redelete_hanged_file_interval_ms).unwrap_or(i64::MAX);
        let mut h = self.hanging.locked();
        let due = h.next_retry_ms.is_some_and(|t| now >= t);
        if due {
            rep.redelete_ran = true;
            for (f, t0) in h.files.iter() {
                if !f.is_deleted() {
                    match f.delete_file() {
                        Ok(()) => {
                            tracing::info!(file = %f.path().display(), "deleted on retry");
                            rep.deletions_retried += 1;
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "retrying a deletion failed; retried later")
                        }
                    }
                }
                if f.is_deleted()
                    && !f.is_released()
                    && Arc::strong_count(f) > 1
                    && now.saturating_sub(*t0) >= forcibly_ms
                {
                    match f.release_forcibly() {
                        Ok(()) => {
                            tracing::warn!(
                                file = %f.path().display(),
                                "a reader held a deleted file past destroyMapedFileIntervalForcibly: released forcibly"
                            );
                            rep.files_released_forcibly += 1;
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "releasing a held file forcibly failed")
                        }
                    }
                }
            }
            if h.index_retry {
                if let Some(ix) = &self.index {
                    match ix.delete_before(self.commitlog.min_offset()) {
                        Ok(n) => {
                            rep.index_files_deleted += n;
                            rep.deletions_retried += n;
                            h.index_retry = false;
                        }
                        Err(e) => tracing::error!(error = %e, "retrying index deletion failed"),
                    }
                } else {
                    h.index_retry = false;
                }
            }
        }
        h.files
            .retain(|(f, _)| !f.is_deleted() || (Arc::strong_count(f) > 1 && !f.is_released()));
        rep.files_still_held = h.files.iter().filter(|(f, _)| f.is_deleted()).count();
        rep.files_hanging = h
            .files
            .iter()
            .filter(|(_, t0)| now.saturating_sub(*t0) > forcibly_ms)
            .count();
        if rep.files_hanging > 0 {
            tracing::warn!(
                files = rep.files_hanging,
                "deleted files are still held by readers (or undeletable) past destroyMapedFileIntervalForcibly"
            );
        }
        let waiting = !h.files.is_empty() || h.index_retry;
        h.next_retry_ms = match h.next_retry_ms {
            _ if !waiting => None,
            Some(t) if !due => Some(t),
            _ => Some(now.saturating_add(redelete_ms)),
        };
        rep.next_redelete_ms = h.next_retry_ms;
    }

    /// Pool mode: commit buffered bytes every `commitIntervalCommitLog` ms when
    /// `commitCommitLogLeastPages` pages wait, everything every
    /// `commitCommitLogThoroughInterval` ms. A failed write fences the store.
    fn run_commit(&self) {
        let interval = Duration::from_millis(self.cfg.commit_interval_commit_log_ms.max(1));
        let thorough = Duration::from_millis(self.cfg.commit_commit_log_thorough_interval_ms);
        let mut last_thorough = Instant::now();
        while !self.stopping.load(Ordering::Acquire) {
            // Sleep the interval, or until puts have left enough to commit
            // (or shutdown wakes us).
            self.commit_waker.wait(interval);
            if self.stopping.load(Ordering::Acquire) {
                break;
            }
            let mut least = self.cfg.commit_commit_log_least_pages;
            if last_thorough.elapsed() >= thorough {
                last_thorough = Instant::now();
                least = 0;
            }
            if let Err(e) = self.commitlog.commit(least) {
                self.fence.trip(format!("commitlog commit failed: {e}"));
                return;
            }
        }
    }

    fn run_cq_flush(&self) {
        let p = self.cq_flush;
        let mut last_thorough = Instant::now();
        while !self.stopping.load(Ordering::Acquire) {
            let deadline = Instant::now() + p.interval;
            while Instant::now() < deadline && !self.stopping.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(10).min(p.interval));
            }
            let mut least = p.least_pages;
            if last_thorough.elapsed() >= p.thorough_interval {
                last_thorough = Instant::now();
                least = 0;
            }
            if let Err(e) = self.flush_consume_queues(least) {
                // Retried at the next interval; no fence (see `cq_flush_failed`).
                self.note_cq_flush_failed(&e);
            }
        }
    }

    /// A flush of derived data failed: remember it (sticky), log it (rate-limited).
    fn note_cq_flush_failed(&self, e: &Error) {
        let mut g = self
            .cq_flush_failed
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if g.is_none() {
            *g = Some(e.to_string());
        }
        drop(g);
        if let Some(held_back) = self.cq_flush_log.allow() {
            tracing::error!(error = %e, not_logged = held_back,
                "consume queue flush failed; retried, puts go on, the checkpoint keeps the last offset known flushed");
        }
    }

    /// Flush every consume queue, then record in the checkpoint how far they are
    /// durable (and how far the commitlog is) and sync the checkpoint.
    /// Write a consume-queue manifest (`config/<name>`); false, with a
    /// rate-limited WARN, when it cannot be written (retried by the next pass).
    fn write_manifest(
        &self,
        name: &str,
        map: &std::collections::BTreeMap<String, std::collections::BTreeMap<u32, u64>>,
    ) -> bool {
        let written = serde_json::to_vec(map)
            .map_err(|e| {
                Error::io(
                    "encoding a consume queue manifest",
                    std::io::Error::other(e),
                )
            })
            .and_then(|json| {
                crate::topic::write_atomically(&self.cfg.config_dir().join(name), &json)
            });
        match written {
            Ok(()) => true,
            Err(e) => {
                if let Some(held_back) = self.cq_flush_log.allow() {
                    tracing::warn!(error = %e, manifest = name, not_logged = held_back,
                        "cannot write a consume queue manifest; retried");
                }
                false
            }
        }
    }

    fn flush_consume_queues(&self, least_pages: u32) -> Result<()> {
        // Read before flushing: every unit below this offset is in its file
        // already. The time first: dispatch stores it after the offset, so it
        // is never later than the offset's record (a conservative checkpoint).
        let dispatched_ts = self.dispatcher.last_store_timestamp_ms();
        let dispatched = self.dispatcher.dispatched_offset();
        // After a failed flush, a later one that succeeds does not prove the
        // earlier pages reached the disk: the logics and index offsets stay.
        let derived_ok = self.cq_flush_failed.locked().is_none();
        let mut all_flushed = derived_ok;
        let mut maxes: std::collections::BTreeMap<String, std::collections::BTreeMap<u32, u64>> =
            Default::default();
        let queues = self.cqs.all();
        let mut flushed = Ok(());
        for cq in &queues {
            let max = cq.max_offset();
            if let Err(e) = cq.flush(least_pages) {
                flushed = Err(e);
                all_flushed = false;
                break;
            }
            all_flushed &= cq.fully_flushed();
            maxes
                .entry(cq.topic().to_string())
                .or_default()
                .insert(cq.queue_id(), max);
        }
        {
            // The first-file manifest says where files start, not what they
            // hold: written whatever the flushes did (so that a failed flush
            // never leaves it behind retention), and under its lock, so that
            // it never goes back behind what the clean pass wrote before
            // deleting files. One not written now is retried on the next pass.
            let mut last_min = self.cq_min_manifest.locked();
            let mut mins = std::collections::BTreeMap::<_, std::collections::BTreeMap<_, _>>::new();
            for cq in &queues {
                mins.entry(cq.topic().to_string())
                    .or_default()
                    .insert(cq.queue_id(), cq.first_file_offset());
            }
            if *last_min != mins && self.write_manifest(CQ_MIN_MANIFEST, &mins) {
                *last_min = mins;
            }
        }
        flushed?;
        if all_flushed {
            // A hint for the next open (a queue that lost units is rebuilt):
            // one not written now is retried on the next pass, and the
            // queues' own flush is not in doubt.
            let mut last = self.cq_manifest.locked();
            if *last != maxes && self.write_manifest(CQ_MANIFEST, &maxes) {
                *last = maxes;
            }
        }
        let mut index_done = None;
        if let Some(ix) = &self.index {
            // Everything dispatched before this point was given to the index.
            let ts = ix.last_update().0;
            ix.flush()?;
            index_done = derived_ok.then_some((dispatched, ts));
        }
        let physic_offset = self.flusher.durable_offset();
        let physic_ts = self.commitlog.queue.flushed_store_timestamp_ms();
        let before = self.checkpoint.data();
        self.checkpoint.update(|d| {
            if all_flushed {
                d.logics_offset = d.logics_offset.max(dispatched);
                d.logics_msg_timestamp = d.logics_msg_timestamp.max(dispatched_ts);
            }
            d.physic_offset = d.physic_offset.max(physic_offset);
            d.physic_msg_timestamp = d.physic_msg_timestamp.max(physic_ts);
            if let Some((off, ts)) = index_done {
                d.index_offset = d.index_offset.max(off);
                d.index_msg_timestamp = d.index_msg_timestamp.max(ts);
            }
        });
        if self.checkpoint.data() != before {
            self.checkpoint.flush()?;
        }
        Ok(())
    }
}

fn load_manifest(
    path: &std::path::Path,
) -> std::collections::BTreeMap<String, std::collections::BTreeMap<u32, u64>> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
            tracing::warn!(path = %path.display(), error = %e, "ignoring a damaged consume queue manifest");
            Default::default()
        }),
        Err(_) => Default::default(),
    }
}

/// Find `consumequeue/<topic>/<queueId>` directories.
fn list_consume_queues(root: &std::path::Path) -> Result<Vec<(String, u32, PathBuf)>> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io(format!("listing {}", root.display()), e)),
    };
    for t in rd {
        let t = t.map_err(|e| Error::io(format!("listing {}", root.display()), e))?;
        if !t.path().is_dir() {
            tracing::warn!(path = %t.path().display(), "ignoring a stray file in consumequeue/");
            continue;
        }
        let topic = t.file_name().to_string_lossy().to_string();
        if validate_topic(&topic).is_err() {
            tracing::warn!(path = %t.path().display(), "ignoring a consume queue folder that is not a topic name");
            continue;
        }
        let qrd = std::fs::read_dir(t.path())
            .map_err(|e| Error::io(format!("listing {}", t.path().display()), e))?;
        for q in qrd {
            let q = q.map_err(|e| Error::io(format!("listing {}", t.path().display()), e))?;
            match q.file_name().to_string_lossy().parse::<u32>() {
                Ok(id) if id >= crate::dispatch::MAX_QUEUES_PER_TOPIC => {
                    // Left by an older version from a record dispatch now
                    // refuses: its topic would get an absurd queue count.
                    tracing::warn!(path = %q.path().display(),
                        "ignoring a consume queue folder whose queue id is out of range 0..1024")
                }
                Ok(id) if q.path().is_dir() => out.push((topic.clone(), id, q.path())),
                _ => {
                    tracing::warn!(path = %q.path().display(), "ignoring a stray entry in a consume queue folder")
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

/// At most this many records kept by a recovery walk for re-dispatch (56
/// bytes each: about 64 MiB); a longer walk re-dispatches by reading the log.
const MAX_WALKED_RECORDS: usize = 1_200_000;

/// How many nice levels the store's background threads drop below the level
/// they start at (see [`crate::sys::lower_thread_priority`]).
pub(crate) const BACKGROUND_NICE: i32 = 5;

/// Whether puts write the commitlog with `pwrite` (`syncFlushPwriteEnable`
/// under SYNC_FLUSH, when the transient store pool does not take the writes).
/// Pre-faulting the mapping for writes would dirty page-table entries again,
/// so it is off then.
fn commitlog_writes_via_fd(cfg: &StoreConfig, pooled: bool) -> bool {
    cfg.sync_flush_pwrite_enable && cfg.flush_disk_type == FlushDiskType::SyncFlush && !pooled
}

/// A single record (not a batch) may be at most `maxMessageSize` + 64 KiB
/// (room for header, topic and properties).
fn check_record_len(len: usize, max_message_size: u32, batch: bool) -> Result<()> {
    let max_rec = max_message_size as usize + 64 * 1024;
    if !batch && len > max_rec {
        return Err(Error::IllegalMessage(format!(
            "record of {len} bytes is larger than maxMessageSize + 64 KiB"
        )));
    }
    Ok(())
}

/// Recovery: how consume-queue unit `u` at `queue_offset` of `topic`/`queue_id`
/// relates to the record it points at (the body CRC is not checked here: the
/// commitlog walk did, where it walked). See [`crate::damage::classify`].
fn check_unit(
    commitlog: &CommitLog,
    topic: &str,
    queue_id: u32,
    queue_offset: u64,
    u: &CqUnit,
    delay_levels_ms: &[i64],
) -> UnitCheck {
    let Some(b) = commitlog.get_data(u.commit_log_offset, u.size as usize) else {
        return UnitCheck::UnitWrong;
    };
    crate::damage::classify(
        &b,
        u,
        topic,
        queue_id,
        queue_offset,
        Some(delay_levels_ms),
        false,
    )
}

/// True when a queue's files are not what the manifests recorded at the last
/// flush (`first`: first-file queue offset, `max`: units), or there is no
/// record: its first file starts elsewhere, or its last file is not the one
/// that holds its last recorded unit.
fn manifests_disagree(
    cq: &ConsumeQueue,
    first: Option<u64>,
    max: Option<u64>,
    file_size: u64,
) -> bool {
    let (Some(first), Some(max)) = (first, max) else {
        return true;
    };
    let per_file = (file_size / CQ_UNIT_SIZE as u64).max(1);
    let n = cq.file_count() as u64;
    if n == 0 || max == 0 {
        return n != 0 || max != 0;
    }
    let last_start = cq.first_file_offset() + (n - 1) * per_file;
    first != cq.first_file_offset() || last_start != (max - 1) / per_file * per_file
}

/// True when a consume queue's first files are gone while the commitlog still
/// holds records they indexed: the queue starts after offset 0, its first unit
/// points at or after the commitlog's start (files deleted by retention index
/// only records before it), and either the last flush recorded an earlier first
/// file (`expected_first`) or, with no record, the commitlog starts at 0 (so no
/// record was ever deleted).
fn front_files_missing(cq: &ConsumeQueue, cl_min: u64, expected_first: Option<u64>) -> bool {
    let first = cq.first_file_offset();
    if first == 0 || cq.file_count() == 0 {
        return false;
    }
    let Some(u) = cq.first_unit() else {
        return false;
    };
    u.commit_log_offset >= cl_min && expected_first.map_or(cl_min == 0, |e| e < first)
}

/// True when the raw properties hold `key` among the space-separated `KEYS` or
/// as the `UNIQ_KEY` (what the index stored the record under).
fn record_has_key(properties: &[u8], key: &str) -> bool {
    use crate::message::{find_property, keys};
    find_property(properties, keys::UNIQ_KEY) == Some(key)
        || find_property(properties, keys::KEYS)
            .is_some_and(|ks| ks.split(' ').any(|k| !k.is_empty() && k == key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fenced_store_refuses_puts_and_keeps_the_abort_marker() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = StoreConfig::new(dir.path());
        cfg.mapped_file_size_commit_log = 64 * 1024;
        cfg.mapped_file_size_consume_queue = 2000;
        let store = MessageStore::open(cfg).unwrap();
        store
            .put_message(&Message::new("F", b"before".to_vec()))
            .unwrap();
        store
            .inner
            .fence
            .trip("fdatasync of commitlog: EIO (injected)");
        let e = store
            .put_message(&Message::new("F", b"after".to_vec()))
            .unwrap_err();
        assert!(
            matches!(e, Error::Fenced(ref why) if why.contains("EIO")),
            "{e}"
        );
        assert_eq!(
            store.stats().fenced.as_deref(),
            Some("fdatasync of commitlog: EIO (injected)")
        );
        assert!(store.shutdown().is_err(), "shutdown reports the failure");
        assert!(
            dir.path().join("abort").exists(),
            "next open must recover abnormally"
        );
        drop(store);
        let mut cfg = StoreConfig::new(dir.path());
        cfg.mapped_file_size_commit_log = 64 * 1024;
        cfg.mapped_file_size_consume_queue = 2000;
        let store = MessageStore::open(cfg).unwrap();
        assert!(store.recovery_report().abnormal);
        let r = store
            .get_message("g", "F", 0, 0, 32, &MessageFilter::All)
            .unwrap();
        assert_eq!(r.messages.len(), 1);
        store.shutdown().unwrap();
    }
}
