//! Reads: get_message, queue offsets, lookups by offset, key and msgId,
//! time search, and the waits for new messages.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{
    repair, GetResult, GetStatus, MessageFilter, MessageStore, PutResult, QueryResult, StoreInner,
    StoredMessage,
};
use crate::consume_queue::{ConsumeQueue, CqUnit, CQ_UNIT_SIZE};
use crate::dispatch::ArrivalListener;
use crate::error::{Error, Result};
use crate::mapped_file::MappedBytes;
use crate::message::{decode_record, MessageExt};

impl MessageStore {
    /// Read up to `max_msgs` messages of a queue from `offset`, as RocketMQ's
    /// `getMessage` does (statuses, next offset, transfer limits, tag filter).
    ///
    /// A record that fails its checks while its consume-queue unit is right
    /// (body CRC, a damaged header field) is skipped: the result holds the good
    /// messages around it and a next offset past it, and the record is logged
    /// once, counted ([`StoreStats::damaged_records`](super::StoreStats::damaged_records)) and listed
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
        let (min, max) = (cq.min_offset(), cq.max_offset());
        if offset_outside_queue(&mut r, min, max, offset) {
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
        let read = UnitRead {
            topic,
            queue_id,
            offset,
            max_msgs,
            filter,
            cl_max,
            mem_limit: s.total_ram / 100 * s.cfg.access_message_in_memory_max_ratio as u64,
        };
        let mut scan = self.read_units(&read, units, &mut r.messages);
        if let Some((q, e)) = scan.bad {
            // A unit that does not point at its record: never move past it.
            // The messages before it are served; a read that starts at it
            // repairs the queue there first.
            scan.scanned = (q - offset) as usize;
            if r.messages.is_empty() {
                if !may_repair {
                    return Err(e);
                }
                s.repair_for_read(&cq, q, &e)?;
                drop(file);
                return self.get_message_inner(topic, queue_id, offset, max_msgs, filter, false);
            }
        }
        r.next_begin_offset = offset + scan.scanned as u64;
        r.status = if !r.messages.is_empty() {
            GetStatus::Found
        } else if scan.first_missing {
            GetStatus::MessageWasRemoving
        } else {
            GetStatus::NoMatchedMessage
        };
        r.suggest_pulling_from_slave = cl_max.saturating_sub(scan.last_phys) > read.mem_limit;
        Ok(r)
    }

    /// Read the messages the consume-queue `units` (from `read.offset`) point
    /// at into `out`, up to the transfer limits, skipping what the filter
    /// refuses and damaged records (noted); stop at a unit that does not point
    /// at its record.
    #[inline]
    fn read_units(
        &self,
        read: &UnitRead<'_>,
        units: &[u8],
        out: &mut Vec<StoredMessage>,
    ) -> UnitScan {
        let s = &self.inner;
        let (topic, queue_id, offset) = (read.topic, read.queue_id, read.offset);
        let mut scan = UnitScan {
            scanned: 0,
            first_missing: false,
            last_phys: 0,
            bad: None,
        };
        let mut bytes = 0usize;
        for chunk in units.chunks_exact(CQ_UNIT_SIZE) {
            let Some(u) = CqUnit::decode(chunk) else {
                if !crate::consume_queue::is_blank_unit(chunk) {
                    let q = offset + scan.scanned as u64;
                    if let Some(e) = s.bad_unit(topic, queue_id, q, None, None) {
                        scan.bad = Some((q, e));
                        break;
                    }
                }
                scan.scanned += 1;
                continue;
            };
            scan.last_phys = u.commit_log_offset;
            let in_disk = read.cl_max.saturating_sub(u.commit_log_offset) > read.mem_limit;
            if !out.is_empty()
                && self.is_full(bytes, u.size as usize, out.len(), read.max_msgs, in_disk)
            {
                break;
            }
            scan.scanned += 1;
            if !read.filter.matches(u.tags_code) {
                continue;
            }
            let q = offset + scan.scanned as u64 - 1;
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
                                scan.bad = Some((q, e));
                                break;
                            }
                        },
                    }
                    if !read.filter.matches_record(&b) {
                        continue;
                    }
                    bytes += b.len();
                    out.push(StoredMessage {
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
                            scan.bad = Some((q, e));
                            break;
                        }
                        continue;
                    }
                    if out.is_empty() {
                        scan.first_missing = true;
                    }
                }
            }
        }
        scan
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

    /// Store time of the message at `queue_offset` of a queue (RocketMQ's
    /// `getMessageStoreTimeStamp`), if it is there.
    ///
    /// # Errors
    /// [`Error::Corruption`] if the unit points at bytes that are not a record.
    pub fn message_store_time(
        &self,
        topic: &str,
        queue_id: u32,
        queue_offset: u64,
    ) -> Result<Option<i64>> {
        let Some(cq) = self.inner.cqs.get(topic, queue_id) else {
            return Ok(None);
        };
        self.store_time_at(&cq, queue_offset)
    }

    /// Raw commitlog bytes from `offset`, at most `max_len`, never crossing a
    /// file: what a master streams to a slave. `None` when nothing is there yet.
    pub fn read_commit_log(&self, offset: u64, max_len: usize) -> Option<MappedBytes> {
        self.inner.commitlog.read_raw(offset, max_len)
    }
}

impl StoreInner {
    /// A read starting at unit `q` of `cq` found it damaged (`e`): repair it
    /// now, or note it as impossible to repair (reads skip it from then on).
    /// `Err` ([`Error::Busy`]) when the repair must wait: the read is retried.
    #[cold]
    fn repair_for_read(&self, cq: &ConsumeQueue, q: u64, e: &Error) -> Result<()> {
        let (topic, queue_id) = (cq.topic(), cq.queue_id());
        match self.repair_units(cq, q, repair::FOREGROUND) {
            repair::Repair::Done => {}
            repair::Repair::Impossible(why) => {
                self.damaged.note_unit(topic, queue_id, q, e, &why);
            }
            repair::Repair::Retry(why) => {
                return Err(self.repair_later(topic, queue_id, q, &why, false))
            }
            repair::Repair::TooFar(why) => {
                return Err(self.repair_later(topic, queue_id, q, &why, true))
            }
        }
        Ok(())
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
}

/// True when the raw properties hold `key` among the space-separated `KEYS` or
/// as the `UNIQ_KEY` (what the index stored the record under).
fn record_has_key(properties: &[u8], key: &str) -> bool {
    use crate::message::{find_property, keys};
    find_property(properties, keys::UNIQ_KEY) == Some(key)
        || find_property(properties, keys::KEYS)
            .is_some_and(|ks| ks.split(' ').any(|k| !k.is_empty() && k == key))
}

/// What a get reads: the queue, the start offset, the limits.
struct UnitRead<'a> {
    topic: &'a str,
    queue_id: u32,
    offset: u64,
    max_msgs: u32,
    filter: &'a MessageFilter,
    /// End of the commitlog when the read started.
    cl_max: u64,
    /// How far behind the commitlog end a record is still taken to be in
    /// memory (`accessMessageInMemoryMaxRatio` % of RAM).
    mem_limit: u64,
}

/// What [`MessageStore::read_units`] found.
struct UnitScan {
    /// Units passed (read, filtered out or skipped).
    scanned: usize,
    /// The first unit's record is gone from the commitlog (retention).
    first_missing: bool,
    /// Commitlog offset of the last unit looked at.
    last_phys: u64,
    /// A unit that does not point at its record, and the error for it.
    bad: Option<(u64, Error)>,
}

/// Set the status of a get whose `offset` is not inside the queue's
/// `[min, max)` (or whose queue is empty); true when it is not.
fn offset_outside_queue(r: &mut GetResult, min: u64, max: u64, offset: u64) -> bool {
    r.min_offset = min;
    r.max_offset = max;
    if max == 0 {
        r.status = GetStatus::NoMessageInQueue;
    } else if offset < min {
        r.status = GetStatus::OffsetTooSmall;
        r.next_begin_offset = min;
    } else if offset == max {
        r.status = GetStatus::OffsetOverflowOne;
        r.next_begin_offset = offset;
    } else if offset > max {
        r.status = GetStatus::OffsetOverflowBadly;
        r.next_begin_offset = if min == 0 { min } else { max };
    } else {
        return false;
    }
    true
}
