//! The records an abnormal recovery's walk kept, and the re-dispatch pass
//! that builds consume queues from them without reading the log again.

use crate::consume_queue::CqTable;
use super::{
    unit_tags_code, Arrivals, Dispatcher, Placed, Refusal, UnitBatcher,
    PUBLISH_EVERY_RECORDS,
};
use std::sync::atomic::Ordering;

use crate::commitlog::CommitLog;
use crate::consume_queue::CqUnit;
use crate::error::{Error, Result};
use crate::index::IndexService;
use crate::message::sys_flag;

/// A record the recovery walk checked, kept in a few words so that
/// re-dispatching it needs no second read of the log (which, for a log larger
/// than the CPU caches, is a memory miss or two per record).
#[derive(Debug, Clone, Copy)]
struct WalkedRecord {
    phys: u64,
    queue_offset: u64,
    tags_code: i64,
    store_timestamp_ms: i64,
    size: u32,
    queue_id: u32,
    sys_flag: i32,
    /// Index into [`WalkedRecords`]' topic names.
    topic: u32,
    /// The record has `KEYS` or `UNIQ_KEY`: the index needs its properties.
    has_keys: bool,
}

/// The records an abnormal recovery's walk checked, in log order, up to a
/// bound; past it they are dropped and re-dispatch reads the log as before.
pub(crate) struct WalkedRecords {
    topics: Vec<String>,
    topic_ids: hashbrown::HashMap<String, u32>,
    records: Vec<WalkedRecord>,
    max_records: usize,
    overflowed: bool,
    delay_levels_ms: Vec<i64>,
}

impl WalkedRecords {
    /// Keep at most `max_records` (0: keep none).
    pub fn new(max_records: usize, delay_levels_ms: Vec<i64>) -> Self {
        WalkedRecords {
            topics: Vec::new(),
            topic_ids: hashbrown::HashMap::new(),
            records: Vec::new(),
            max_records,
            overflowed: max_records == 0,
            delay_levels_ms,
        }
    }

    /// Keep the record the walk just checked (the walk calls this in log order).
    pub fn push(&mut self, h: &crate::message::RecordHeader<'_>) {
        if self.overflowed {
            return;
        }
        if self.records.len() >= self.max_records {
            self.overflowed = true;
            self.records = Vec::new();
            return;
        }
        if self.records.len() == self.records.capacity() {
            // Grow by doubling, but never past the bound (a plain push could
            // allocate twice the bound).
            let extra = self
                .records
                .capacity()
                .max(4096)
                .min(self.max_records - self.records.len());
            self.records.reserve_exact(extra);
        }
        let topic = match self.topic_ids.get(h.topic) {
            Some(id) => *id,
            None => {
                let id = self.topics.len() as u32;
                self.topics.push(h.topic.to_string());
                self.topic_ids.insert(h.topic.to_string(), id);
                id
            }
        };
        // One pass over the properties for the tag and the keys (the walk is on
        // the recovery's critical path; three lookups cost three passes).
        use crate::message::keys;
        let (mut tags, mut has_keys) = (None, false);
        for seg in h.properties.split(|b| *b == 2) {
            let Some(i) = seg.iter().position(|b| *b == 1) else {
                continue;
            };
            let (k, v) = (&seg[..i], &seg[i + 1..]);
            if seg.len() < 3 {
                continue;
            } else if k == keys::TAGS.as_bytes() {
                // The first one counts, as in `find_property`.
                tags = tags.or(Some(v));
            } else if k == keys::KEYS.as_bytes() {
                has_keys |= v.iter().any(|b| *b != b' ');
            } else if k == keys::UNIQ_KEY.as_bytes() {
                has_keys |= !v.is_empty();
            }
        }
        let tags_code = if h.topic == crate::schedule::SCHEDULE_TOPIC {
            unit_tags_code(h, &self.delay_levels_ms)
        } else {
            tags.and_then(|t| std::str::from_utf8(t).ok())
                .map_or(0, |t| crate::message::tags_code(Some(t)))
        };
        self.records.push(WalkedRecord {
            phys: h.physical_offset as u64,
            queue_offset: h.queue_offset as u64,
            tags_code,
            store_timestamp_ms: h.store_timestamp_ms,
            size: h.total_size,
            queue_id: h.queue_id,
            sys_flag: h.sys_flag,
            topic,
            has_keys,
        });
    }

    /// True when the kept records are every record from `from` to `end`.
    fn covers(&self, from: u64, end: u64) -> bool {
        if self.overflowed {
            return false;
        }
        match (self.records.first(), self.records.last()) {
            (Some(first), Some(last)) => first.phys <= from && last.phys + last.size as u64 <= end,
            _ => from >= end,
        }
    }
}

/// A consume queue found missing units during recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueGap {
    /// Topic.
    pub topic: String,
    /// Queue id.
    pub queue_id: u32,
    /// Units the queue holds.
    pub have: u64,
    /// Queue offset of the record being dispatched.
    pub want: u64,
}

impl Dispatcher {
    /// Recovery pass from the records the walk kept: like
    /// [`Dispatcher::dispatch_checking_gaps`] from the dispatch position to
    /// `end` (the recovered end of the log), without reading the log again
    /// (except the properties of records with keys, for the index). `None`
    /// when the kept records do not cover that range (the caller then reads
    /// the log).
    pub fn dispatch_walked(
        &self,
        walked: &WalkedRecords,
        end: u64,
        commitlog: &CommitLog,
        cqs: &CqTable,
        index: Option<&IndexService>,
        arrivals: &Arrivals,
    ) -> Result<Option<std::result::Result<usize, QueueGap>>> {
        let from = self.dispatched_offset();
        if !walked.covers(from, end) {
            return Ok(None);
        }
        let mut batch = UnitBatcher::default();
        let mut count = 0;
        let refused_before = self.health.refused.load(Ordering::Relaxed);
        let start = walked.records.partition_point(|r| r.phys < from);
        for r in &walked.records[start..] {
            let topic = walked.topics[r.topic as usize].as_str();
            let tx = r.sys_flag & sys_flag::TRANSACTION_MASK;
            let mut refused = None;
            if tx == sys_flag::TRANSACTION_NOT_TYPE || tx == sys_flag::TRANSACTION_COMMIT_TYPE {
                let unit = CqUnit {
                    commit_log_offset: r.phys,
                    size: r.size,
                    tags_code: r.tags_code,
                };
                let target = (topic, r.queue_id, r.queue_offset);
                match batch.put(cqs, target, unit, true)? {
                    Placed::Taken => {}
                    Placed::Gap(gap) => {
                        batch.write_pending()?;
                        // The caller dispatches the log again from its start:
                        // the records refused here are counted then.
                        self.health.refused.store(refused_before, Ordering::Relaxed);
                        return Ok(Some(Err(gap)));
                    }
                    Placed::Refused(why) => refused = Some(why),
                }
            } else if crate::message::validate_topic(topic).is_err() {
                // No queue for these; the index still must not take the name.
                refused = Some(Refusal::TopicName);
            }
            if let Some(why) = refused {
                self.refuse(topic, r.phys, r.queue_id, r.queue_offset, why);
            }
            // Units are written as the pass goes (the position moves at its
            // end), a bounded number held at a time.
            if count % PUBLISH_EVERY_RECORDS == PUBLISH_EVERY_RECORDS - 1 {
                batch.write_pending()?;
            }
            if let (Some(ix), true, None) = (index, r.has_keys, refused) {
                // The walk checked this record as the configuration asks; read
                // it back as the log-reading dispatch does (no second CRC).
                let Some(bytes) = commitlog.get_data(r.phys, r.size as usize) else {
                    return Err(Error::corruption(
                        "commitlog",
                        r.phys,
                        "a record the recovery walk checked is gone",
                    ));
                };
                let h = crate::message::parse_header(&bytes).map_err(|e| {
                    Error::corruption(
                        "commitlog",
                        r.phys,
                        format!("re-reading a walked record: {e}"),
                    )
                })?;
                ix.build_index(
                    h.topic,
                    h.properties,
                    r.sys_flag,
                    r.phys,
                    r.store_timestamp_ms,
                )?;
            }
            count += 1;
            self.last_store_timestamp_ms
                .store(r.store_timestamp_ms, Ordering::Release);
        }
        self.publish(&mut batch, end.max(from), None)?;
        batch.notify(arrivals);
        Ok(Some(Ok(count)))
    }
}
