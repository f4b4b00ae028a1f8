//! Repairing a damaged stretch of a consume queue in place, when a read finds
//! a unit that does not point at its record: the units between the nearest
//! intact ones are rebuilt from the commitlog records between theirs.

use super::{CqUnit, StoreInner};
use crate::consume_queue::ConsumeQueue;
use crate::damage::{classify, UnitCheck};
use crate::message::{check_record, RecordCheck};

/// At most this many units are looked at on each side of a damaged unit for
/// an intact one.
const MAX_SCAN_UNITS: u64 = 1 << 20;

/// At most this many of those are checked against their records on each side.
const MAX_RECORD_CHECKS: usize = 1024;

/// What [`StoreInner::repair_units`] did.
#[derive(Debug)]
pub(super) enum Repair {
    /// The units are rewritten (or another reader already did it).
    Done,
    /// The stretch cannot be rebuilt: why.
    Impossible(String),
}

impl StoreInner {
    /// Does unit `u` at `queue_offset` point at its record (a damaged record
    /// under a right unit counts as pointing at it)?
    fn unit_intact(&self, cq: &ConsumeQueue, queue_offset: u64, u: &CqUnit) -> bool {
        self.commitlog
            .get_data(u.commit_log_offset, u.size as usize)
            .is_some_and(|b| {
                classify(&b, u, cq.topic(), cq.queue_id(), queue_offset, None, false)
                    != UnitCheck::UnitWrong
            })
    }

    /// The nearest intact unit from `from` stepping by `step` (-1 or +1) while
    /// inside `[lo, hi)`: `Ok(None)` when the search leaves the range, `Err`
    /// when it gives up (too far, too many checks).
    fn nearest_intact(
        &self,
        cq: &ConsumeQueue,
        from: u64,
        back: bool,
        lo: u64,
        hi: u64,
    ) -> Result<Option<(u64, CqUnit)>, String> {
        let mut q = from;
        let mut checks = 0usize;
        for _ in 0..MAX_SCAN_UNITS {
            if back {
                if q <= lo {
                    return Ok(None);
                }
                q -= 1;
            } else {
                q += 1;
                if q >= hi {
                    return Ok(None);
                }
            }
            let Some(u) = cq.raw_unit(q).and_then(|b| CqUnit::decode(&b)) else {
                continue; // blank or garbage: part of the stretch
            };
            if self.unit_intact(cq, q, &u) {
                return Ok(Some((q, u)));
            }
            checks += 1;
            if checks >= MAX_RECORD_CHECKS {
                break;
            }
        }
        Err(format!(
            "no intact unit within {} units {} queue offset {from}",
            MAX_SCAN_UNITS,
            if back { "before" } else { "after" }
        ))
    }

    /// A read found unit `bad` of `cq` not pointing at its record: rebuild
    /// the units between the nearest intact ones from the commitlog records
    /// between theirs (a record of this queue with such an offset can only lie
    /// there; an offset with no record there gets a blank unit), and write
    /// them in place. Repairs run one at a time.
    pub(super) fn repair_units(&self, cq: &ConsumeQueue, bad: u64) -> Repair {
        let _one = self.repair_lock.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(u) = cq.raw_unit(bad).and_then(|b| CqUnit::decode(&b)) {
            if self.unit_intact(cq, bad, &u) {
                return Repair::Done; // repaired meanwhile
            }
        }
        let (min, max) = (cq.min_offset(), cq.max_offset());
        let before = match self.nearest_intact(cq, bad, true, min, max) {
            Ok(b) => b,
            Err(why) => return Repair::Impossible(why),
        };
        let after = match self.nearest_intact(cq, bad, false, min, max) {
            Ok(a) => a,
            Err(why) => return Repair::Impossible(why),
        };
        // The stretch of queue offsets, and the commitlog range its records lie in.
        let first = before.map_or(min, |(q, _)| q + 1);
        let end = after.map_or(max, |(q, _)| q);
        let cl_min = self.commitlog.min_offset();
        let from = before
            .map_or(cl_min, |(_, u)| u.commit_log_offset + u64::from(u.size))
            .max(cl_min);
        let to = after.map_or_else(
            || self.dispatcher.dispatched_offset(),
            |(_, u)| u.commit_log_offset,
        );
        let delay_levels = self.cfg.delay_levels_ms().unwrap_or_default();
        let mut units: Vec<Option<CqUnit>> = vec![None; (end - first) as usize];
        let file_size = self.commitlog.queue.file_size();
        let mut off = from;
        while off < to {
            let Some(f) = self.commitlog.queue.find_by_offset(off) else {
                return Repair::Impossible(format!("commitlog offset {off} is not readable"));
            };
            let data = f.bytes_from((off - f.file_from_offset()) as usize);
            match check_record(data, false) {
                Ok(RecordCheck::Message(h)) if h.physical_offset as u64 == off => {
                    let q = h.queue_offset as u64;
                    if h.topic == cq.topic()
                        && h.queue_id == cq.queue_id()
                        && (first..end).contains(&q)
                    {
                        units[(q - first) as usize] = Some(CqUnit {
                            commit_log_offset: off,
                            size: h.total_size,
                            tags_code: crate::dispatch::unit_tags_code(&h, &delay_levels),
                        });
                    }
                    off += u64::from(h.total_size);
                }
                Ok(RecordCheck::Blank) => off = (off / file_size + 1) * file_size,
                Ok(_) => {
                    return Repair::Impossible(format!("the commitlog ends at {off}, before {to}"))
                }
                Err(e) => {
                    return Repair::Impossible(format!(
                        "the commitlog record at {off} is damaged ({}), so the records after \
                         it cannot be found",
                        e.reason
                    ))
                }
            }
        }
        let found = units.iter().filter(|u| u.is_some()).count();
        if let Err(e) = cq.rewrite_units(first, &units) {
            return Repair::Impossible(format!("rewriting the units failed: {e}"));
        }
        self.units_repaired
            .fetch_add(units.len() as u64, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(
            topic = cq.topic(),
            queue_id = cq.queue_id(),
            from = first,
            to = end,
            records_found = found,
            commit_log_from = from,
            commit_log_to = to,
            "consume queue units did not point at their records; rebuilt them from the commitlog"
        );
        Repair::Done
    }
}
