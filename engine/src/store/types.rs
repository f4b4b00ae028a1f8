//! The store's public result, status and statistics types.

use std::net::SocketAddr;
use std::time::Duration;

pub use crate::commitlog::CommitLogRecovery;
use crate::error::{Error, Result};
use crate::mapped_file::MappedBytes;
use crate::message::{self, decode_record, offset_msg_id, MessageExt};

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
    pub(super) store_host: SocketAddr,
    /// A batch's msgIds, joined with commas (a single put's id is made on demand).
    pub(super) batch_msg_ids: Option<String>,
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
    pub(super) bytes: MappedBytes,
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

/// A filter over stored records, applied to each record a get reads after
/// the consume queue's tag check passed (RocketMQ's
/// `MessageFilter.isMatchedByCommitLog`): the broker's SQL92 property filters.
pub trait RecordFilter: Send + Sync + std::fmt::Debug {
    /// Whether a record (commitlog format, checked) is returned.
    fn matches_record(&self, record: &[u8]) -> bool;
}

/// Which messages a get returns, by tag or by record.
#[derive(Debug, Clone)]
pub enum MessageFilter {
    /// Every message (`*`).
    All,
    /// Messages whose tag hash code is one of these.
    TagCodes(Vec<i64>),
    /// Messages whose record this filter accepts. Records it refuses do not
    /// count against the get's message and byte limits (the get scans on, up
    /// to its unit limit, as RocketMQ's `getMessage`); the next offset passes
    /// them.
    Records(std::sync::Arc<dyn RecordFilter>),
}

impl PartialEq for MessageFilter {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (MessageFilter::All, MessageFilter::All) => true,
            (MessageFilter::TagCodes(a), MessageFilter::TagCodes(b)) => a == b,
            (MessageFilter::Records(a), MessageFilter::Records(b)) => std::sync::Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for MessageFilter {}

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

    pub(super) fn matches(&self, tags_code: i64) -> bool {
        match self {
            MessageFilter::All | MessageFilter::Records(_) => true,
            MessageFilter::TagCodes(codes) => codes.contains(&tags_code),
        }
    }

    pub(super) fn matches_record(&self, record: &[u8]) -> bool {
        match self {
            MessageFilter::Records(f) => f.matches_record(record),
            MessageFilter::All | MessageFilter::TagCodes(_) => true,
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

/// What [`MessageStore::wait_put_then`](super::MessageStore::wait_put_then) calls with a put's final result.
pub type PutCallback = Box<dyn FnOnce(Result<PutResult>) + Send>;

/// The result of [`MessageStore::query_message`](super::MessageStore::query_message).
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
    /// failed since the store opened (see [`MessageStore::flush`](super::MessageStore::flush)).
    pub consume_queue_flush_error: Option<String>,
    /// Damaged records reads found and skipped (each counted once; see
    /// [`MessageStore::damaged_records`](super::MessageStore::damaged_records)).
    pub damaged_records: u64,
    /// Consume-queue units that reads found not pointing at their records and
    /// that were rebuilt from the commitlog in place.
    pub consume_queue_units_repaired: u64,
}

/// What [`MessageStore::truncate_commit_log`](super::MessageStore::truncate_commit_log) cut.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogTruncation {
    /// The new end of the commitlog (the offset asked for).
    pub offset: u64,
    /// The end of the commitlog before.
    pub old_max_offset: u64,
    /// Commitlog files deleted (those after the one holding `offset`).
    pub commit_log_files_removed: usize,
    /// Consume queues that lost units.
    pub consume_queues_truncated: usize,
    /// Consume-queue units removed, over every queue.
    pub consume_queue_units_removed: u64,
    /// How long it took.
    pub millis: u64,
}
