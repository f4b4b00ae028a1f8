//! The check-back (RocketMQ's `TransactionalMessageServiceImpl.check`) and the
//! start-up recovery of transactions.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ferromq_engine::message::{
    decode_offset_msg_id, encode_message, keys, now_ms, sys_flag, BLANK_MAGIC_CODE,
    MESSAGE_MAGIC_CODE,
};
use ferromq_engine::store::{GetStatus, MessageFilter};
use ferromq_engine::{BrokerRole, MessageExt, PutResult};

use super::{
    check_times, immunity_ms, op_origin, origin_of, real_destination, renew_half, to_check_max,
    CHECK_MAX_TIME_TOPIC, HALF_TOPIC, OP_TOPIC, SYS_TRANS_GROUP,
};
use crate::broker::Broker;
use crate::remoting::{request, RemotingCommand};

/// RocketMQ's `MAX_PROCESS_TIME_LIMIT`: at most this long per queue per round.
const MAX_ROUND: Duration = Duration::from_secs(60);
/// Half or op messages read per get.
const BATCH: u32 = 32;
const PERM_READ_WRITE: u32 = 6;

/// What one check-back round did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// Half records looked at.
    pub scanned: u64,
    /// Records skipped because their transaction is decided.
    pub decided: u64,
    /// Copies appended for a check-back.
    pub checked: u64,
    /// CHECK_TRANSACTION_STATE requests handed to a producer connection.
    pub sent: u64,
    /// Records moved to `TRANS_CHECK_MAX_TIME_TOPIC`.
    pub discarded: u64,
    /// Half queue offset after the round.
    pub half_offset: u64,
}

/// What the start-up recovery did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecoverReport {
    /// Op records read.
    pub ops: u64,
    /// Undecided half records found after the check-back's progress.
    pub pending: u64,
    /// Commitlog bytes scanned for commit records without op.
    pub scanned_bytes: u64,
    /// Op records written for commits found without one.
    pub ops_written: u64,
}

impl Broker {
    pub(super) fn half_progress(&self) -> u64 {
        let min = self.store.min_offset_in_queue(HALF_TOPIC, 0);
        self.offsets
            .query(SYS_TRANS_GROUP, HALF_TOPIC, 0)
            .and_then(|v| u64::try_from(v).ok())
            .unwrap_or(min)
            .max(min)
    }

    /// Read op records not yet in the book (every op record at start).
    fn replay_ops(&self) -> u64 {
        let mut off = self
            .txn
            .op_offset()
            .max(self.store.min_offset_in_queue(OP_TOPIC, 0));
        let mut n = 0;
        loop {
            let r = match self.store.get_message(
                SYS_TRANS_GROUP,
                OP_TOPIC,
                0,
                off,
                BATCH,
                &MessageFilter::All,
            ) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, offset = off, "reading the op queue failed");
                    return n;
                }
            };
            if r.messages.is_empty() {
                if r.next_begin_offset > off && r.status != GetStatus::OffsetOverflowBadly {
                    off = r.next_begin_offset;
                    continue;
                }
                return n;
            }
            for m in &r.messages {
                let origin = match m.decode() {
                    Ok(op) => op_origin(&op),
                    Err(e) => {
                        tracing::error!(error = %e, offset = m.queue_offset, "op record does not decode; skipped");
                        None
                    }
                };
                self.txn.replay_op(origin, m.queue_offset);
                n += 1;
            }
            off = r.next_begin_offset;
        }
    }

    /// Visit the half records from the check-back's progress on (bounded by
    /// `deadline`); `f` returns false to stop. Returns the offset after the last
    /// record visited.
    pub(super) fn walk_half(
        &self,
        from: u64,
        deadline: Instant,
        mut f: impl FnMut(u64, MessageExt) -> bool,
    ) -> u64 {
        let mut i = from;
        while Instant::now() < deadline {
            let r = match self.store.get_message(
                SYS_TRANS_GROUP,
                HALF_TOPIC,
                0,
                i,
                BATCH,
                &MessageFilter::All,
            ) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, offset = i, "reading the half queue failed");
                    return i;
                }
            };
            if r.messages.is_empty() {
                if r.next_begin_offset > i && r.status != GetStatus::OffsetOverflowBadly {
                    i = r.next_begin_offset;
                    continue;
                }
                return i;
            }
            for m in &r.messages {
                match m.decode() {
                    Ok(half) => {
                        if !f(m.queue_offset, half) {
                            return i;
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, offset = m.queue_offset, "half record does not decode; skipped")
                    }
                }
                i = m.queue_offset + 1;
            }
            i = i.max(r.next_begin_offset);
        }
        i
    }

    /// One check-back round over the half queue. A slave does nothing.
    pub fn transaction_check_once(&self) -> CheckReport {
        let mut rep = CheckReport::default();
        if self.store.role() == BrokerRole::Slave || self.store.topic_config(HALF_TOPIC).is_none() {
            return rep;
        }
        self.replay_ops();
        let start_ms = now_ms();
        let timeout_ms = self.cfg.transaction_timeout_ms;
        let check_max = self.cfg.transaction_check_max;
        let reserved_ms = self
            .store
            .current_config()
            .file_reserved_time_hours
            .saturating_mul(3_600_000);
        let from = self.half_progress();
        // Transactions re-appended in this round: an older copy met after a newer
        // one (progress lost in a crash) is not checked twice.
        let mut handled = std::collections::HashSet::new();
        let end = self.walk_half(from, Instant::now() + MAX_ROUND, |qo, half| {
            rep.scanned += 1;
            let origin = origin_of(&half);
            if origin != qo {
                self.txn.mark_copy(qo);
            }
            tracing::trace!(
                qo,
                origin,
                decided = self.txn.is_decided(origin),
                settled = self.txn.is_settled(origin),
                fresh = half.store_timestamp_ms >= start_ms,
                times = check_times(&half),
                "check-back looks at a half record"
            );
            if self.txn.is_decided(origin) {
                rep.decided += 1;
                return true;
            }
            if self.txn.is_settled(origin) {
                // Being decided: progress must not pass a transaction whose op
                // record is not in the log yet (a crash would forget it).
                return false;
            }
            if half.store_timestamp_ms >= start_ms {
                return false; // appended during this round (copies too): next round
            }
            if handled.contains(&origin) {
                return true; // an older copy of a transaction re-appended this round
            }
            let now = now_ms();
            let age_ms = now - half.born_timestamp_ms;
            let times = check_times(&half);
            if times >= check_max || age_ms.max(0) as u64 > reserved_ms {
                self.discard(&half);
                rep.discarded += 1;
                return true;
            }
            let (immunity, custom) = immunity_ms(&half, timeout_ms);
            if age_ms >= 0 && (age_ms as u64) < immunity {
                if !custom {
                    return false; // the rest is younger still
                }
                // A custom immunity goes back to the tail (RocketMQ re-puts it
                // too), so one long immunity does not hold up the queue.
                let copy = renew_half(&half, times, origin);
                return match self.txn.unless_settled(origin, || self.store.put_message(&copy)) {
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, origin, "cannot re-append a half message; next round");
                        false
                    }
                    Some(Ok(pr)) => {
                        self.txn.mark_copy(pr.queue_offset);
                        handled.insert(origin);
                        true
                    }
                    None => false,
                };
            }
            let copy = renew_half(&half, times + 1, origin);
            match self.txn.unless_settled(origin, || self.store.put_message(&copy)) {
                None => false, // a decision is being written: next round
                Some(Err(e)) => {
                    tracing::warn!(error = %e, origin, "cannot re-append a half message for its check-back; next round");
                    false
                }
                Some(Ok(pr)) => {
                    self.txn.mark_copy(pr.queue_offset);
                    handled.insert(origin);
                    rep.checked += 1;
                    if self.send_check(&copy_ext(&half, &copy, &pr), &pr) {
                        rep.sent += 1;
                    }
                    true
                }
            }
        });
        rep.half_offset = end;
        if end != from {
            self.offsets
                .commit(SYS_TRANS_GROUP, HALF_TOPIC, 0, end as i64);
        }
        self.offsets
            .commit(SYS_TRANS_GROUP, OP_TOPIC, 0, self.txn.op_offset() as i64);
        if rep.checked + rep.discarded > 0 {
            tracing::info!(?rep, "transaction check-back round");
        }
        rep
    }

    fn discard(&self, half: &MessageExt) {
        tracing::warn!(
            msg_id = %half.msg_id(),
            times = check_times(half),
            real_topic = ?half.properties.get(keys::REAL_TOPIC),
            "half message checked too many times (or older than fileReservedTime); moved to TRANS_CHECK_MAX_TIME_TOPIC"
        );
        let r = self
            .ensure_group_topic(CHECK_MAX_TIME_TOPIC, 1, PERM_READ_WRITE)
            .and_then(|_| self.store.put_message(&to_check_max(half)));
        if let Err(e) = r {
            tracing::error!(error = %e, "cannot move a half message to TRANS_CHECK_MAX_TIME_TOPIC");
        }
    }

    /// Send CHECK_TRANSACTION_STATE for the copy `copy` to a live connection of
    /// its producer group (oneway). False when no producer of the group is known.
    fn send_check(&self, copy: &MessageExt, pr: &PutResult) -> bool {
        let Some(group) = copy.properties.get(keys::PGROUP) else {
            return false;
        };
        let body = match check_body(copy) {
            Ok(b) => b,
            Err(why) => {
                tracing::error!(%why, "cannot build a check-back body");
                return false;
            }
        };
        let mut req = RemotingCommand::request(request::CHECK_TRANSACTION_STATE)
            .with_ext("tranStateTableOffset", pr.queue_offset)
            .with_ext("commitLogOffset", pr.commit_log_offset)
            .with_ext("offsetMsgId", pr.msg_id());
        if let Some(u) = copy.properties.get(keys::UNIQ_KEY) {
            req = req.with_ext("msgId", u).with_ext("transactionId", u);
        }
        let req = req.with_body(body);
        for conn in self.clients.producer_channels(group) {
            if conn.send_oneway(req.clone()) {
                return true;
            }
        }
        tracing::warn!(%group, "Check transaction failed, channel is null");
        false
    }

    /// At start (master only): rebuild the decided set from the op queue, then
    /// find commit records written without their op record (a crash between the
    /// two) and write those op records.
    pub fn recover_transactions(&self) -> RecoverReport {
        let mut rep = RecoverReport::default();
        if self.store.role() == BrokerRole::Slave {
            return rep;
        }
        rep.ops = self.replay_ops();
        // Undecided half records after the progress: commitlog offset -> origin.
        let mut pending: HashMap<u64, u64> = HashMap::new();
        let from = self.half_progress();
        self.walk_half(from, Instant::now() + MAX_ROUND, |qo, half| {
            let origin = origin_of(&half);
            if origin != qo {
                self.txn.mark_copy(qo);
            }
            if !self.txn.is_settled(origin) {
                pending.insert(half.commit_log_offset, origin);
            }
            true
        });
        rep.pending = pending.len() as u64;
        let Some(&scan_from) = pending.keys().min() else {
            return rep;
        };
        let end = self.store.commit_log_max_offset();
        let file_size = self.store.config().mapped_file_size_commit_log;
        let mut commits = Vec::new();
        walk_records(&self.store, scan_from, end, file_size, |rec| {
            if let Some(prepared) = commit_prepared_offset(rec) {
                commits.push(prepared);
            }
        });
        rep.scanned_bytes = end.saturating_sub(scan_from);
        for prepared in commits {
            let origin = match pending.get(&prepared) {
                Some(o) => *o,
                None => match self.store.look_message_by_offset(prepared) {
                    Ok(Some(h)) if h.topic == HALF_TOPIC => origin_of(&h),
                    _ => continue,
                },
            };
            if self.txn.claim(origin) != super::Claim::Granted {
                continue;
            }
            match self.store.look_message_by_offset(prepared) {
                Ok(Some(half)) => match self.write_op(&half, origin) {
                    Ok(()) => {
                        rep.ops_written += 1;
                        self.txn.finish(origin, true);
                        tracing::warn!(
                            origin,
                            "commit without op record found at start; op record written"
                        );
                    }
                    Err(e) => {
                        // Still decided: the commit is in the log.
                        self.txn.finish(origin, true);
                        tracing::error!(origin, error = %e, "cannot write a missing op record");
                    }
                },
                _ => self.txn.finish(origin, false),
            }
        }
        if rep.pending > 0 || rep.ops_written > 0 {
            tracing::info!(?rep, "transactions recovered");
        }
        rep
    }
}

/// The copy as stored, for the check request (offsets from its put).
fn copy_ext(half: &MessageExt, copy: &ferromq_engine::Message, pr: &PutResult) -> MessageExt {
    let mut m = half.clone();
    m.properties = copy.properties.clone();
    m.queue_offset = pr.queue_offset;
    m.commit_log_offset = pr.commit_log_offset;
    m.store_timestamp_ms = pr.store_timestamp_ms;
    if let Ok((host, _)) = decode_offset_msg_id(&pr.msg_id()) {
        m.store_host = host;
    }
    m
}

/// The CHECK_TRANSACTION_STATE body: the half record with its real topic and
/// queue restored, encoded as a stored record (`MessageDecoder.encode`).
///
/// # Errors
/// A sentence when the half lacks its real topic or queue.
pub fn check_body(half: &MessageExt) -> Result<Vec<u8>, String> {
    let (topic, qid) = real_destination(half)?;
    let m = super::base_message(&topic, qid, half);
    let mut out = Vec::new();
    encode_message(&m, &half.store_host, &mut out);
    if out.len() >= 36 {
        out[20..28].copy_from_slice(&(half.queue_offset as i64).to_be_bytes());
        out[28..36].copy_from_slice(&(half.commit_log_offset as i64).to_be_bytes());
        let born_len = if m.born_host.is_ipv6() { 20 } else { 8 };
        let ts = 48 + born_len;
        if out.len() >= ts + 8 {
            out[ts..ts + 8].copy_from_slice(&half.store_timestamp_ms.to_be_bytes());
        }
    }
    Ok(out)
}

/// The prepared-transaction offset of a COMMIT record, from its raw bytes.
pub fn commit_prepared_offset(rec: &[u8]) -> Option<u64> {
    let be32 = |p: usize| Some(i32::from_be_bytes(rec.get(p..p + 4)?.try_into().ok()?));
    let sys = be32(36)?;
    if sys & sys_flag::TRANSACTION_MASK != sys_flag::TRANSACTION_COMMIT_TYPE {
        return None;
    }
    let born = if sys & sys_flag::BORNHOST_V6 != 0 {
        20
    } else {
        8
    };
    let store = if sys & sys_flag::STOREHOST_V6 != 0 {
        20
    } else {
        8
    };
    let p = 48 + born + 8 + store + 4;
    let v = i64::from_be_bytes(rec.get(p..p + 8)?.try_into().ok()?);
    u64::try_from(v).ok()
}

/// Visit every record between `from` (a record start) and `end`, jumping over
/// file-end blanks. Stops at the first bytes that are not a record.
fn walk_records(
    store: &ferromq_engine::MessageStore,
    from: u64,
    end: u64,
    file_size: u64,
    mut f: impl FnMut(&[u8]),
) {
    const CHUNK: usize = 8 << 20;
    let mut off = from;
    while off < end {
        let Some(chunk) = store.read_commit_log(off, CHUNK) else {
            return;
        };
        let mut pos = 0usize;
        let mut next_file = None;
        while let Some(head) = chunk.get(pos..pos + 8) {
            let size = i32::from_be_bytes(head[..4].try_into().expect("4"));
            let magic = i32::from_be_bytes(head[4..8].try_into().expect("4"));
            if magic == BLANK_MAGIC_CODE {
                next_file = Some(((off + pos as u64) / file_size + 1) * file_size);
                break;
            }
            if magic != MESSAGE_MAGIC_CODE || size <= 0 {
                tracing::warn!(
                    offset = off + pos as u64,
                    "commit scan stopped at bytes that are not a record"
                );
                return;
            }
            let Some(rec) = chunk.get(pos..pos + size as usize) else {
                break; // the record continues past this chunk: read from it
            };
            f(rec);
            pos += size as usize;
        }
        off = match next_file {
            Some(n) => n,
            None if pos == 0 => return, // not even one whole record readable here
            None => off + pos as u64,
        };
    }
}
