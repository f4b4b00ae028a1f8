//! Transactional messages, as RocketMQ 4.x keeps them (`TransactionalMessageServiceImpl`,
//! `EndTransactionProcessor`, `TransactionalMessageCheckService`).
//!
//! * A send with `TRAN_MSG=true` stores a **half** message: topic
//!   [`HALF_TOPIC`] queue 0, the real topic and queue in `REAL_TOPIC` /
//!   `REAL_QID`, the sysFlag transaction type reset to NOT_TYPE. Consumers never
//!   see it: nobody subscribes to the half topic.
//! * END_TRANSACTION (37) commits (a new record on the real topic and queue,
//!   sysFlag COMMIT, `preparedTransactionOffset` = the half's commitlog offset,
//!   `TRAN_MSG` / `REAL_TOPIC` / `REAL_QID` removed) or rolls back (nothing
//!   visible); both then write an **op** record on [`OP_TOPIC`] queue 0, tag
//!   `d`, body = the half's queue offset in decimal.
//! * A check-back service on the master re-appends half messages that have no
//!   decision after `transactionTimeOut` (`TRANSACTION_CHECK_TIMES` + 1) and
//!   asks a producer of the group (CHECK_TRANSACTION_STATE, 39, oneway); after
//!   `transactionCheckMax` checks the message moves to [`CHECK_MAX_TIME_TOPIC`].
//!   Its progress is the consumer offset of group [`SYS_TRANS_GROUP`] on the
//!   half and op queues, in `consumerOffset.json`.
//!
//! ferromq additions, all compatible with RocketMQ's on-disk shapes:
//!
//! * **A decision takes effect once.** Every re-appended copy carries
//!   `TRAN_PREPARED_QUEUE_OFFSET` = the queue offset of the first half record
//!   (the transaction's *origin*), and every op record carries the same property.
//!   The broker keeps the set of decided origins ([`TransactionBook`]), rebuilt
//!   from the op queue at start; a second commit or rollback of the same
//!   transaction (for any copy) answers SUCCESS and writes nothing.
//! * **Commit without op after a crash.** A commit record written just before a
//!   crash, without its op record, is found at start by a scan of the commitlog
//!   from the oldest undecided half message, and its op record is written then
//!   (see `check::recover`), so the check-back does not commit it twice.

mod book;
mod check;
mod end;
mod pending;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;

use ferromq_engine::message::{keys, sys_flag};
use ferromq_engine::{Message, MessageExt};

use crate::remoting::{ExtFields, HeaderError};

pub use book::{Claim, DecidedSet, TransactionBook};
pub use check::{CheckReport, RecoverReport};
pub use pending::{PendingHalf, PendingReport};

/// Topic of half messages (`TopicValidator.RMQ_SYS_TRANS_HALF_TOPIC`).
pub const HALF_TOPIC: &str = "RMQ_SYS_TRANS_HALF_TOPIC";
/// Topic of op (decision) records.
pub const OP_TOPIC: &str = "RMQ_SYS_TRANS_OP_HALF_TOPIC";
/// Where half messages go after `transactionCheckMax` check-backs.
pub const CHECK_MAX_TIME_TOPIC: &str = "TRANS_CHECK_MAX_TIME_TOPIC";
/// Consumer group whose offsets on the half and op queues are the check-back's progress.
pub const SYS_TRANS_GROUP: &str = "CID_RMQ_SYS_TRANS";
/// Tag of an op record that removes a half message.
pub const REMOVE_TAG: &str = "d";
/// Check-backs so far (`MessageConst.PROPERTY_TRANSACTION_CHECK_TIMES`).
pub const PROPERTY_CHECK_TIMES: &str = "TRANSACTION_CHECK_TIMES";
/// Seconds before the first check-back (`PROPERTY_CHECK_IMMUNITY_TIME_IN_SECONDS`).
pub const PROPERTY_CHECK_IMMUNITY: &str = "CHECK_IMMUNITY_TIME_IN_SECONDS";
/// Queue offset of the first half record of a transaction
/// (`PROPERTY_TRANSACTION_PREPARED_QUEUE_OFFSET`); ferromq sets it on every copy
/// and on op records.
pub const PROPERTY_PREPARED_QUEUE_OFFSET: &str = "TRAN_PREPARED_QUEUE_OFFSET";
/// Environment variable naming a failpoint (tests only, read only with the
/// `fault-injection` feature): `after_commit_before_op` aborts the broker
/// between a commit record and its op record.
pub const FAILPOINT_ENV: &str = "FERROMQ_FAILPOINT";

/// Whether a send's properties ask for a half message (`TRAN_MSG` parses as true).
pub fn is_half_request(props: &ferromq_engine::MessageProperties) -> bool {
    props
        .get(keys::TRAN_MSG)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// Turn a send into its half message (`TransactionalMessageBridge.parseHalfMessageInner`).
/// A `DELAY` level is dropped: RocketMQ clients clear it on transactional sends,
/// and a half message must not wait on the schedule topic.
pub fn to_half(msg: &mut Message) {
    msg.properties
        .insert(keys::REAL_TOPIC, std::mem::take(&mut msg.topic));
    msg.properties
        .insert(keys::REAL_QID, msg.queue_id.to_string());
    msg.properties.remove(keys::DELAY);
    msg.sys_flag = (msg.sys_flag & !sys_flag::TRANSACTION_MASK) | sys_flag::TRANSACTION_NOT_TYPE;
    msg.topic = HALF_TOPIC.to_string();
    msg.queue_id = 0;
}

/// The transaction a half record belongs to: its `TRAN_PREPARED_QUEUE_OFFSET`
/// when it is a re-appended copy, else its own queue offset.
pub fn origin_of(half: &MessageExt) -> u64 {
    half.properties
        .get(PROPERTY_PREPARED_QUEUE_OFFSET)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(half.queue_offset)
}

/// The origin an op record names: its `TRAN_PREPARED_QUEUE_OFFSET` (ferromq),
/// else its body (the half queue offset, RocketMQ). `None` for a record that is
/// not a remove op or has neither.
pub fn op_origin(op: &MessageExt) -> Option<u64> {
    if op.tags() != Some(REMOVE_TAG) {
        return None;
    }
    op.properties
        .get(PROPERTY_PREPARED_QUEUE_OFFSET)
        .and_then(|v| v.trim().parse().ok())
        .or_else(|| std::str::from_utf8(&op.body).ok()?.trim().parse().ok())
}

fn base_message(topic: &str, queue_id: u32, half: &MessageExt) -> Message {
    let mut m = Message::new(topic.to_string(), half.body.clone());
    m.queue_id = queue_id;
    m.flag = half.flag;
    m.properties = half.properties.clone();
    m.sys_flag = half.sys_flag;
    m.born_timestamp_ms = half.born_timestamp_ms;
    m.born_host = half.born_host;
    m.reconsume_times = half.reconsume_times;
    m
}

/// The real topic and queue of a half message.
///
/// # Errors
/// A sentence when `REAL_TOPIC` or `REAL_QID` is missing or malformed.
pub fn real_destination(half: &MessageExt) -> Result<(String, u32), String> {
    let topic = half
        .properties
        .get(keys::REAL_TOPIC)
        .filter(|t| !t.is_empty())
        .ok_or("the half message has no REAL_TOPIC")?;
    let qid = half
        .properties
        .get(keys::REAL_QID)
        .and_then(|q| q.trim().parse().ok())
        .ok_or("the half message has no valid REAL_QID")?;
    Ok((topic.to_string(), qid))
}

/// The committed message for a half record (`EndTransactionProcessor.endMessageTransaction`).
///
/// # Errors
/// A sentence when the half lacks its real topic or queue.
pub fn to_commit(half: &MessageExt) -> Result<Message, String> {
    let (topic, qid) = real_destination(half)?;
    let mut m = base_message(&topic, qid, half);
    for k in [
        keys::TRAN_MSG,
        keys::REAL_TOPIC,
        keys::REAL_QID,
        PROPERTY_PREPARED_QUEUE_OFFSET,
    ] {
        m.properties.remove(k);
    }
    m.properties.insert(keys::WAIT, "false");
    m.sys_flag = (half.sys_flag & !sys_flag::TRANSACTION_MASK) | sys_flag::TRANSACTION_COMMIT_TYPE;
    m.prepared_transaction_offset = half.commit_log_offset as i64;
    Ok(m)
}

/// The op record ending the half record `half` of transaction `origin`.
pub fn op_message(half: &MessageExt, origin: u64, store_host: SocketAddr) -> Message {
    let mut m = Message::new(OP_TOPIC, half.queue_offset.to_string().into_bytes());
    m.queue_id = half.queue_id;
    m.properties.insert(keys::TAGS, REMOVE_TAG);
    m.properties
        .insert(PROPERTY_PREPARED_QUEUE_OFFSET, origin.to_string());
    m.properties.insert(keys::WAIT, "false");
    m.born_host = store_host;
    m
}

/// A copy of `half` appended for a check-back, with `check_times` and its origin.
pub fn renew_half(half: &MessageExt, check_times: u32, origin: u64) -> Message {
    let mut m = base_message(HALF_TOPIC, half.queue_id, half);
    m.properties
        .insert(PROPERTY_CHECK_TIMES, check_times.to_string());
    m.properties
        .insert(PROPERTY_PREPARED_QUEUE_OFFSET, origin.to_string());
    m.properties.insert(keys::WAIT, "false");
    m
}

/// The half message as moved to [`CHECK_MAX_TIME_TOPIC`] after too many checks.
pub fn to_check_max(half: &MessageExt) -> Message {
    let mut m = base_message(CHECK_MAX_TIME_TOPIC, 0, half);
    m.properties.insert(keys::WAIT, "false");
    m
}

/// Check-backs already done for a half record (`TRANSACTION_CHECK_TIMES`, 0 when absent).
pub fn check_times(half: &MessageExt) -> u32 {
    half.properties
        .get(PROPERTY_CHECK_TIMES)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// ms a half message is left alone before its first check-back: the
/// `CHECK_IMMUNITY_TIME_IN_SECONDS` property when set and valid, else
/// `transactionTimeOut` (`TransactionalMessageUtil.getImmunityTime`).
pub fn immunity_ms(half: &MessageExt, timeout_ms: u64) -> (u64, bool) {
    match half
        .properties
        .get(PROPERTY_CHECK_IMMUNITY)
        .map(|v| v.trim().parse::<i64>())
    {
        Some(Ok(s)) if s >= 0 => (s as u64 * 1000, true),
        Some(_) => (timeout_ms, true),
        None => (timeout_ms, false),
    }
}

/// An END_TRANSACTION request header (`EndTransactionRequestHeader`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndTransactionHeader {
    /// Producer group (must match the half's `PGROUP`).
    pub producer_group: String,
    /// Queue offset of the half record.
    pub tran_state_table_offset: u64,
    /// Commitlog offset of the half record.
    pub commit_log_offset: u64,
    /// 0x0 unknown, 0x8 commit, 0xC rollback.
    pub commit_or_rollback: i32,
    /// The answer to a check-back (`true`/`1`), not the producer's first decision.
    pub from_transaction_check: bool,
    /// The message's id (UNIQ_KEY or offset msgId).
    pub msg_id: String,
    /// Transaction id, when sent.
    pub transaction_id: Option<String>,
}

fn offset_field(ext: &ExtFields, key: &str) -> Result<u64, HeaderError> {
    let v = ext.get_i64(key)?;
    u64::try_from(v).map_err(|_| HeaderError::Invalid {
        key: key.to_string(),
        value: v.to_string(),
        expected: "an offset >= 0",
    })
}

impl EndTransactionHeader {
    /// Read the header.
    ///
    /// # Errors
    /// [`HeaderError`] for a missing required field, a malformed number or
    /// boolean, a negative offset, or a `commitOrRollback` other than 0, 8 or 12.
    pub fn parse(ext: &ExtFields) -> Result<Self, HeaderError> {
        let cr = ext.get_i32("commitOrRollback")?;
        if ![
            sys_flag::TRANSACTION_NOT_TYPE,
            sys_flag::TRANSACTION_COMMIT_TYPE,
            sys_flag::TRANSACTION_ROLLBACK_TYPE,
        ]
        .contains(&cr)
        {
            return Err(HeaderError::Invalid {
                key: "commitOrRollback".into(),
                value: cr.to_string(),
                expected: "0 (unknown), 8 (commit) or 12 (rollback)",
            });
        }
        Ok(EndTransactionHeader {
            producer_group: ext.get_str("producerGroup")?.to_string(),
            tran_state_table_offset: offset_field(ext, "tranStateTableOffset")?,
            commit_log_offset: offset_field(ext, "commitLogOffset")?,
            commit_or_rollback: cr,
            from_transaction_check: ext.opt_bool("fromTransactionCheck")?.unwrap_or(false),
            msg_id: ext.get_str("msgId")?.to_string(),
            transaction_id: ext
                .opt_str("transactionId")
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        })
    }
}
