//! Collecting consume-queue units per queue during a dispatch pass and
//! writing them a queue at a time; the checks that refuse a record.

use super::{Arrivals, QueueGap};
use crate::consume_queue::CqTable;
use std::collections::HashMap;
use std::sync::Arc;

use crate::consume_queue::{ConsumeQueue, CqUnit, CQ_UNIT_SIZE};
use crate::error::Result;

/// Records a dispatch pass reads before it writes the units it collected and
/// moves the dispatch position past them (also the bound on units held).
pub(super) const PUBLISH_EVERY_RECORDS: usize = 4096;

/// Units a queue's buffer keeps room for between batches: a pass over many
/// queues holds at most this much per queue once their batches are written.
const KEPT_UNIT_CAPACITY: usize = 256;

/// Empty a queue's collected units, giving back room beyond
/// [`KEPT_UNIT_CAPACITY`] (one long batch must not pin its memory for the
/// rest of the call, once per queue).
fn clear_units(units: &mut Vec<CqUnit>) {
    units.clear();
    units.shrink_to(KEPT_UNIT_CAPACITY);
}

/// One queue a dispatch call wrote to.
struct CachedQueue {
    cq: Arc<ConsumeQueue>,
    /// Next queue offset not yet announced to readers.
    announce: Option<u64>,
    /// Units collected and not yet written, for consecutive queue offsets
    /// from `from`.
    units: Vec<CqUnit>,
    from: u64,
    /// The queue's end as last seen (only dispatch makes it grow): a unit
    /// within a file's worth of units past it needs no look at the queue.
    end_seen: u64,
    /// Units one file of the queue holds.
    per_file: u64,
}

/// Queue ids dispatch gives a consume queue: `0..MAX_QUEUES_PER_TOPIC`. The
/// store never holds a topic with more queues (topic creation and updates
/// take 1..=1024, as does `defaultTopicQueueNums`), so no record a master
/// running this store writes has a larger id, whether or not a slave knows its
/// topic yet. The bound is fixed rather than the topic's configured count: a
/// topic whose queue count was lowered still has records in its higher queues,
/// and a slave learns topics from the log before their configs arrive.
pub(crate) const MAX_QUEUES_PER_TOPIC: u32 = 1024;

/// Largest queue offset dispatch gives a unit: half the largest offset whose
/// byte position in a consume queue (offset x 20) fits the signed 64-bit file
/// offsets RocketMQ uses, leaving room for file arithmetic. No queue reaches it
/// (2.3e17 messages: a billion a second for seven years); a negative offset
/// read from a record lands above it.
pub(crate) const MAX_QUEUE_OFFSET: u64 = i64::MAX as u64 / CQ_UNIT_SIZE as u64 / 2;

/// Why dispatch refused a record (it stays in the log, in no consume queue or
/// index, and the position moves past it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// Its topic is not a valid name (its queue would be a path built from it).
    TopicName,
    /// Its queue id is not below [`MAX_QUEUES_PER_TOPIC`] (a negative id
    /// included).
    QueueId,
    /// Its queue offset is above [`MAX_QUEUE_OFFSET`] (a negative one included).
    QueueOffset,
    /// Its queue offset is more than a consume-queue file's worth of units
    /// beyond the end of its queue, which holds units: it would be reached by
    /// blank-filling up to that many gigabytes. `end` is the queue's end.
    OffsetJump { end: u64 },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::TopicName => f.write_str("its topic is not a valid name"),
            Refusal::QueueId => write!(
                f,
                "its queue id is out of range 0..{MAX_QUEUES_PER_TOPIC} (the store's topic queue limit)"
            ),
            Refusal::QueueOffset => write!(f, "its queue offset is out of range 0..={MAX_QUEUE_OFFSET}"),
            Refusal::OffsetJump { end } => write!(
                f,
                "its queue offset is more than a consume-queue file beyond its queue's end {end} \
                 (no blank fill that large)"
            ),
        }
    }
}

/// What [`UnitBatcher::put`] did with a unit.
pub(super) enum Placed {
    /// Collected; written before the position moves past its record.
    Taken,
    /// Not taken: the queue lacks units before it (strict mode).
    Gap(QueueGap),
    /// Not taken: the record gets no unit (see [`Refusal`]).
    Refused(Refusal),
}

/// `Some(end of the queue)` when a unit for `queue_offset` would need more
/// than a file's worth of blank units before it (`pending_end`: the end of
/// the units collected and not yet written, if any). A queue without files
/// starts late at the file holding the offset instead (at most a file of
/// blanks; see [`ConsumeQueue::put_batch`]): no jump then.
#[cold]
#[inline(never)]
fn jump_too_far(cq: &ConsumeQueue, pending_end: Option<u64>, queue_offset: u64) -> Option<u64> {
    let end = pending_end.map_or(cq.max_offset(), |p| p.max(cq.max_offset()));
    if queue_offset <= end.saturating_add(cq.units_per_file()) {
        return None;
    }
    if pending_end.is_none() && cq.file_count() == 0 {
        return None;
    }
    Some(end)
}

/// Per dispatch call: the queues it wrote to (one cheap lookup per record
/// instead of the table's lock, two SipHash lookups and an `Arc` clone), the
/// units each has collected, and the queues readers have not yet been told
/// about. Units are written a queue at a time ([`ConsumeQueue::put_batch`]:
/// one file lookup and one copy per batch instead of per unit), always before
/// the dispatch position moves past their records, so a caller that sees the
/// position sees the units.
#[derive(Default)]
pub(super) struct UnitBatcher {
    queues: hashbrown::HashMap<String, hashbrown::HashMap<u32, CachedQueue>>,
    /// Queues that gained units since the last notice: every queue holding
    /// collected units is among them, since a notice always follows a write.
    dirty: Vec<(String, u32)>,
}

impl UnitBatcher {
    /// Collect `unit` for `(topic, queue id, queue offset)`. Units already in
    /// the queue are skipped when written. With `strict`, a unit beyond the
    /// queue's end is not taken: the gap is returned instead. A record is
    /// refused ([`Refusal`]) when its queue id or offset is out of range, when
    /// its topic is not a valid name (its queue would be a path built from
    /// it; checked only when its queue is not known yet), or when its offset
    /// jumps more than a file's worth of units past its queue's end (the
    /// queue is looked at only for a unit beyond a file's worth past the end
    /// last seen), so a record of a known queue costs a few comparisons more.
    pub(super) fn put(
        &mut self,
        cqs: &CqTable,
        (topic, queue_id, queue_offset): (&str, u32, u64),
        unit: CqUnit,
        strict: bool,
    ) -> Result<Placed> {
        let gap = |have: u64| QueueGap {
            topic: topic.to_string(),
            queue_id,
            have,
            want: queue_offset,
        };
        // From the record, so from a peer or the disk: never trusted for
        // arithmetic or for sizing anything.
        if queue_id >= MAX_QUEUES_PER_TOPIC {
            return Ok(Placed::Refused(Refusal::QueueId));
        }
        if queue_offset > MAX_QUEUE_OFFSET {
            return Ok(Placed::Refused(Refusal::QueueOffset));
        }
        let cached = self
            .queues
            .get_mut(topic)
            .and_then(|m| m.get_mut(&queue_id));
        let entry = match cached {
            Some(e) => e,
            None => {
                let known = cqs.get(topic, queue_id);
                if known.is_none() && crate::message::validate_topic(topic).is_err() {
                    return Ok(Placed::Refused(Refusal::TopicName));
                }
                // A record stored before its topic was deleted: done, no unit.
                if known.is_none() && cqs.is_deleted(topic, unit.commit_log_offset) {
                    return Ok(Placed::Taken);
                }
                if strict {
                    let have = known.as_ref().map_or(0, |q| q.max_offset());
                    if queue_offset > have {
                        return Ok(Placed::Gap(gap(have)));
                    }
                }
                let cq = match known {
                    Some(q) => q,
                    None => cqs.get_or_create(topic, queue_id)?,
                };
                self.queues
                    .entry_ref(topic)
                    .or_default()
                    .entry(queue_id)
                    .or_insert(CachedQueue {
                        end_seen: cq.max_offset(),
                        per_file: cq.units_per_file(),
                        cq,
                        announce: None,
                        units: Vec::new(),
                        from: queue_offset,
                    })
            }
        };
        let collected_end = entry.from + entry.units.len() as u64;
        if strict {
            let have = if entry.units.is_empty() {
                entry.cq.max_offset()
            } else {
                entry.cq.max_offset().max(collected_end)
            };
            if queue_offset > have {
                return Ok(Placed::Gap(gap(have)));
            }
        }
        // A unit that continues the collected ones, or lands within a file
        // of the queue's end as last seen, is near (the usual case: two
        // comparisons); otherwise the queue decides.
        let pending_end = (!entry.units.is_empty()).then_some(collected_end);
        let near = entry
            .end_seen
            .max(pending_end.unwrap_or(0))
            .saturating_add(entry.per_file);
        if queue_offset > near {
            if let Some(end) = jump_too_far(&entry.cq, pending_end, queue_offset) {
                return Ok(Placed::Refused(Refusal::OffsetJump { end }));
            }
        }
        if !entry.units.is_empty() && queue_offset != collected_end {
            entry.cq.put_batch(entry.from, &entry.units)?;
            entry.end_seen = entry.end_seen.max(collected_end);
            clear_units(&mut entry.units);
        }
        if entry.units.is_empty() {
            entry.from = queue_offset;
        }
        entry.units.push(unit);
        if entry.announce.replace(queue_offset + 1).is_none() {
            self.dirty.push((topic.to_string(), queue_id));
        }
        Ok(Placed::Taken)
    }

    /// Write every collected unit to its queue.
    pub(super) fn write_pending(&mut self) -> Result<()> {
        for (topic, q) in &self.dirty {
            let Some(e) = self
                .queues
                .get_mut(topic.as_str())
                .and_then(|m| m.get_mut(q))
            else {
                continue;
            };
            if !e.units.is_empty() {
                e.cq.put_batch(e.from, &e.units)?;
                e.end_seen = e.end_seen.max(e.from + e.units.len() as u64);
                clear_units(&mut e.units);
            }
        }
        Ok(())
    }

    /// Announce the queues that gained units since the last notice with their
    /// next offsets, and forget them (the queues stay cached). Call after
    /// [`UnitBatcher::write_pending`].
    pub(super) fn notify(&mut self, arrivals: &Arrivals) {
        if self.dirty.is_empty() {
            return;
        }
        let mut touched: HashMap<String, HashMap<u32, u64>> = HashMap::new();
        for (topic, q) in self.dirty.drain(..) {
            let next = self
                .queues
                .get_mut(topic.as_str())
                .and_then(|m| m.get_mut(&q))
                .and_then(|e| e.announce.take());
            if let Some(n) = next {
                touched.entry(topic).or_default().insert(q, n);
            }
        }
        arrivals.notify(&touched);
    }
}

/// The consume-queue tag code of a record: the hash of its tags, or for a
/// scheduled message its delivery time (store time + the level's delay).
pub(crate) fn unit_tags_code(h: &crate::message::RecordHeader<'_>, delay_levels_ms: &[i64]) -> i64 {
    if h.topic == crate::schedule::SCHEDULE_TOPIC && !delay_levels_ms.is_empty() {
        if let Some(level) =
            crate::message::find_property(h.properties, crate::message::keys::DELAY)
                .and_then(|v| v.trim().parse::<usize>().ok())
                .filter(|l| *l > 0)
        {
            let i = level.min(delay_levels_ms.len()) - 1;
            return h.store_timestamp_ms.saturating_add(delay_levels_ms[i]);
        }
    }
    if h.topic == crate::timer::TIMER_TOPIC {
        if let Some(due) = crate::timer::timer_tags_code(h.properties) {
            return due;
        }
    }
    h.tags_code()
}
