//! Repairing a damaged stretch of a consume queue in place, when a read finds
//! a unit that does not point at its record: the units between the nearest
//! intact ones are rebuilt from the commitlog records between theirs.
//!
//! A pull thread repairs only a small stretch (bounded search and walk) and
//! never waits for another repair: a read that finds its queue under repair,
//! or a stretch too long for it, answers [`crate::Error::Busy`] (the client
//! retries from the same offset) and, for a long stretch, hands the queue to
//! the background worker (`ferromq-repair`), which has no bound.

use crate::sync::LockExt;
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use super::StoreInner;
use crate::consume_queue::ConsumeQueue;
use crate::consume_queue::CqUnit;
use crate::damage::{classify, UnitCheck};
use crate::message::{check_record, RecordCheck};

/// How far a repair may search and walk.
#[derive(Debug, Clone, Copy)]
pub(super) struct Bounds {
    /// Units looked at on each side of a damaged unit for an intact one.
    scan_units: u64,
    /// Of those, units checked against their records on each side.
    record_checks: usize,
    /// Commitlog bytes walked for the records of the stretch.
    log_bytes: u64,
}

/// A pull thread's repair: small enough to answer the pull.
pub(super) const FOREGROUND: Bounds = Bounds {
    scan_units: 1 << 16,
    record_checks: 256,
    log_bytes: 64 << 20,
};

/// The background worker's repair: unbounded (it stops at shutdown).
const BACKGROUND: Bounds = Bounds {
    scan_units: u64::MAX,
    record_checks: usize::MAX,
    log_bytes: u64::MAX,
};

/// Units rewritten at a time by a repair (the stretch is rebuilt window by
/// window, so an unbounded one needs bounded memory).
const WINDOW: u64 = 1 << 16;

/// What [`StoreInner::repair_units`] did.
#[derive(Debug)]
pub(super) enum Repair {
    /// The units are rewritten (or another reader already did it, or the unit
    /// is below the queue's min offset now).
    Done,
    /// The commitlog cannot give the record back (a damaged record in the way
    /// of the walk): why. Reads skip the unit from now on.
    Impossible(String),
    /// Not now (another repair of the queue runs, a rewrite failed, the
    /// commitlog moved): why. Nothing is noted; a later read tries again.
    Retry(String),
    /// The stretch is longer than the bounds allow: why. The queue is for the
    /// background worker.
    TooFar(String),
}

/// Repairs in progress and those waiting for the background worker.
pub(super) struct Repairs {
    /// Queues being repaired now (one repair per queue at a time).
    busy: Mutex<HashSet<(String, u32)>>,
    /// Queues waiting for (or in) the background worker, with the damaged
    /// unit that sent them, in order.
    pending: Mutex<VecDeque<(String, u32, u64)>>,
    /// Wakes the worker.
    wake: Condvar,
    /// Told when a repair ends (a queue leaves `busy`).
    ended: Condvar,
    log: crate::dispatch::LogLimiter,
}

impl Default for Repairs {
    fn default() -> Self {
        Repairs {
            busy: Mutex::default(),
            pending: Mutex::default(),
            wake: Condvar::new(),
            ended: Condvar::new(),
            log: crate::dispatch::LogLimiter::new(Duration::from_secs(10)),
        }
    }
}

/// A queue marked busy; unmarked when dropped.
struct Busy<'a> {
    repairs: &'a Repairs,
    key: (String, u32),
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.repairs.busy.locked().remove(&self.key);
        self.repairs.ended.notify_all();
    }
}

impl Repairs {
    /// Mark the queue busy, unless it already is.
    fn try_begin(&self, topic: &str, queue_id: u32) -> Option<Busy<'_>> {
        let key = (topic.to_string(), queue_id);
        let mut g = self.busy.locked();
        if !g.insert(key.clone()) {
            return None;
        }
        Some(Busy { repairs: self, key })
    }

    /// Wait until no repair of the queue runs, `stopping` is set, or
    /// `timeout` passes.
    fn wait_not_busy(&self, topic: &str, queue_id: u32, timeout: Duration, stopping: &AtomicBool) {
        let key = (topic.to_string(), queue_id);
        let g = self.busy.locked();
        let _ = self.ended.wait_timeout_while(g, timeout, |b| {
            b.contains(&key) && !stopping.load(Ordering::Acquire)
        });
    }

    /// Wake the worker and anyone waiting for a repair to end, at shutdown
    /// (after `stopping` is set; their waits check it under these locks).
    pub(super) fn wake_for_shutdown(&self) {
        drop(self.pending.locked());
        self.wake.notify_all();
        drop(self.busy.locked());
        self.ended.notify_all();
    }

    /// Is the queue waiting for (or in) the background worker?
    fn is_pending(&self, topic: &str, queue_id: u32) -> bool {
        let g = self.pending.locked();
        g.iter().any(|(t, q, _)| t == topic && *q == queue_id)
    }

    /// Hand the queue to the background worker (once while it waits).
    pub(super) fn schedule(&self, topic: &str, queue_id: u32, bad: u64, why: &str) {
        let mut g = self.pending.locked();
        if g.iter().any(|(t, q, _)| t == topic && *q == queue_id) {
            return;
        }
        tracing::warn!(
            topic,
            queue_id,
            queue_offset = bad,
            why,
            "damaged consume queue stretch too long to repair on a pull; rebuilding it in the \
             background, reads of it are told to retry meanwhile"
        );
        g.push_back((topic.to_string(), queue_id, bad));
        self.wake.notify_one();
    }
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

    /// The nearest intact unit from `from` stepping back or forward while
    /// inside `[lo, hi)`: `Ok(None)` when the search leaves the range, `Err`
    /// (a [`Repair`] to answer) when it hits the bounds or the store stops.
    fn nearest_intact(
        &self,
        cq: &ConsumeQueue,
        from: u64,
        back: bool,
        (lo, hi): (u64, u64),
        bounds: Bounds,
    ) -> Result<Option<(u64, CqUnit)>, Repair> {
        let mut q = from;
        let mut checks = 0usize;
        let mut scanned = 0u64;
        loop {
            if scanned >= bounds.scan_units || checks >= bounds.record_checks {
                return Err(Repair::TooFar(format!(
                    "no intact unit within {scanned} units ({checks} checked) {} queue offset \
                     {from}",
                    if back { "before" } else { "after" }
                )));
            }
            scanned += 1;
            if scanned % 4096 == 0 && self.stopping.load(Ordering::Acquire) {
                return Err(Repair::Retry("the store is stopping".into()));
            }
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
        }
    }

    /// A read found unit `bad` of `cq` not pointing at its record: rebuild
    /// the units between the nearest intact ones from the commitlog records
    /// between theirs (a record of this queue with such an offset can only lie
    /// there; an offset with no record there gets a blank unit), and write
    /// them in place, within `bounds`. Never waits for another repair of the
    /// queue (that is [`Repair::Retry`]).
    pub(super) fn repair_units(&self, cq: &ConsumeQueue, bad: u64, bounds: Bounds) -> Repair {
        if self.repairs.is_pending(cq.topic(), cq.queue_id()) {
            return Repair::Retry("the queue waits for a background rebuild".into());
        }
        let Some(_busy) = self.repairs.try_begin(cq.topic(), cq.queue_id()) else {
            return Repair::Retry("another repair of the queue is running".into());
        };
        self.repair_units_busy(cq, bad, bounds)
    }

    /// [`StoreInner::repair_units`] with the queue marked busy.
    fn repair_units_busy(&self, cq: &ConsumeQueue, bad: u64, bounds: Bounds) -> Repair {
        // No live truncation meanwhile (it may cut the units and records here).
        let _gate = crate::sync::RwLockExt::read_locked(&self.log_gate);
        let (min, max) = (cq.min_offset(), cq.max_offset());
        if bad < min {
            return Repair::Done; // retention took it meanwhile
        }
        if bad >= max {
            return Repair::Done; // a live truncation cut it meanwhile
        }
        if let Some(u) = cq.raw_unit(bad).and_then(|b| CqUnit::decode(&b)) {
            if self.unit_intact(cq, bad, &u) {
                return Repair::Done; // repaired meanwhile
            }
        }
        let before = match self.nearest_intact(cq, bad, true, (min, max), bounds) {
            Ok(b) => b,
            Err(r) => return r,
        };
        let after = match self.nearest_intact(cq, bad, false, (min, max), bounds) {
            Ok(a) => a,
            Err(r) => return r,
        };
        // The stretch of queue offsets, and the commitlog range its records lie in.
        let first = before.map_or(min, |(q, _)| q + 1);
        let end = after.map_or(max, |(q, _)| q);
        if first >= end {
            // Retention moved the min offset past the stretch meanwhile.
            return Repair::Done;
        }
        let cl_min = self.commitlog.min_offset();
        let from = before
            .map_or(cl_min, |(_, u)| u.commit_log_offset + u64::from(u.size))
            .max(cl_min);
        let to = after.map_or_else(
            || self.dispatcher.dispatched_offset(),
            |(_, u)| u.commit_log_offset,
        );
        if to.saturating_sub(from) > bounds.log_bytes {
            return Repair::TooFar(format!(
                "the records of queue offsets {first}..{end} lie in {} commitlog bytes",
                to - from
            ));
        }
        let found = match self.rebuild_stretch(cq, (first, end), (from, to)) {
            Ok(found) => found,
            Err(r) => return r,
        };
        self.units_repaired
            .fetch_add(end - first, Ordering::Relaxed);
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

    /// Rebuild the units of queue offsets `first..end` of `cq` from the
    /// commitlog records in `from..to`, window by window (an offset with no
    /// record gets a blank unit), and write them in place; how many records
    /// were found, or the [`Repair`] to answer when the walk cannot finish.
    fn rebuild_stretch(
        &self,
        cq: &ConsumeQueue,
        (first, end): (u64, u64),
        (from, to): (u64, u64),
    ) -> Result<usize, Repair> {
        let delay_levels = self.cfg.delay_levels_ms().unwrap_or_default();
        let file_size = self.commitlog.queue.file_size();
        // The window of units being rebuilt: [w_first, w_first + units.len()).
        let mut w_first = first;
        let mut units: Vec<Option<CqUnit>> = vec![None; (end - first).min(WINDOW) as usize];
        let mut found = 0usize;
        let write = |w_first: u64, units: &[Option<CqUnit>]| -> Result<(), Repair> {
            cq.rewrite_units(w_first, units)
                .map_err(|e| Repair::Retry(format!("rewriting the units failed: {e}")))
        };
        let mut off = from;
        let mut steps = 0u64;
        while off < to {
            steps += 1;
            if steps % 4096 == 0 && self.stopping.load(Ordering::Acquire) {
                return Err(Repair::Retry("the store is stopping".into()));
            }
            let Some(f) = self.commitlog.queue.find_by_offset(off) else {
                // Retention deleted it meanwhile (a later read starts past it).
                return Err(Repair::Retry(format!(
                    "commitlog offset {off} is not readable"
                )));
            };
            let data = f.bytes_from((off - f.file_from_offset()) as usize);
            match check_record(data, false) {
                Ok(RecordCheck::Message(h)) if h.physical_offset as u64 == off => {
                    let q = h.queue_offset as u64;
                    if h.topic == cq.topic()
                        && h.queue_id == cq.queue_id()
                        && (first..end).contains(&q)
                    {
                        // A queue's records lie in the log in queue-offset
                        // order: the windows before this record are done.
                        while q >= w_first + units.len() as u64 {
                            write(w_first, &units)?;
                            w_first += units.len() as u64;
                            let n = (end - w_first).min(WINDOW) as usize;
                            units.clear();
                            units.resize(n, None);
                        }
                        if q >= w_first {
                            units[(q - w_first) as usize] = Some(CqUnit {
                                commit_log_offset: off,
                                size: h.total_size,
                                tags_code: crate::dispatch::unit_tags_code(&h, &delay_levels),
                            });
                            found += 1;
                        }
                    }
                    off += u64::from(h.total_size);
                }
                Ok(RecordCheck::Blank) => off = (off / file_size + 1) * file_size,
                Ok(_) => {
                    return Err(Repair::Impossible(format!(
                        "the commitlog ends at {off}, before {to}"
                    )))
                }
                Err(e) => {
                    return Err(Repair::Impossible(format!(
                        "the commitlog record at {off} is damaged ({}), so the records after \
                     it cannot be found",
                        e.reason
                    )))
                }
            }
        }
        // The last window, and the windows after it (no records: blank).
        loop {
            write(w_first, &units)?;
            w_first += units.len() as u64;
            if w_first >= end {
                break;
            }
            let n = (end - w_first).min(WINDOW) as usize;
            units.clear();
            units.resize(n, None);
        }
        Ok(found)
    }

    /// A read's repair of unit `bad` did not happen now (`why`; with
    /// `background`, the queue goes to the background worker): log it
    /// (rate-limited) and tell the read to retry from the same offset. The
    /// error names no path (clients see it).
    #[cold]
    pub(super) fn repair_later(
        &self,
        topic: &str,
        queue_id: u32,
        bad: u64,
        why: &str,
        background: bool,
    ) -> crate::Error {
        if background {
            self.repairs.schedule(topic, queue_id, bad, why);
        } else {
            self.log_not_repaired(
                (topic, queue_id, bad),
                why,
                "damaged consume queue unit not repaired now; the read is told to retry",
            );
        }
        crate::Error::Busy(format!(
            "consume queue {topic}/{queue_id} is being repaired at queue offset {bad}; retry \
             the read"
        ))
    }

    /// The background worker: rebuilds the queues handed to it by reads whose
    /// repair was too long for a pull thread, one at a time, until shutdown.
    pub(super) fn run_repairs(&self) {
        while !self.stopping.load(Ordering::Acquire) {
            let job = {
                let g = self.repairs.pending.locked();
                let (g, _) = self
                    .repairs
                    .wake
                    .wait_timeout_while(g, Duration::from_millis(100), |p| {
                        p.is_empty() && !self.stopping.load(Ordering::Acquire)
                    })
                    .unwrap_or_else(|e| e.into_inner());
                g.front().cloned()
            };
            let Some((topic, queue_id, bad)) = job else {
                continue;
            };
            // Wait for a pull thread's repair of the queue to end.
            let busy = loop {
                if let Some(b) = self.repairs.try_begin(&topic, queue_id) {
                    break Some(b);
                }
                if self.stopping.load(Ordering::Acquire) {
                    break None;
                }
                self.repairs.wait_not_busy(
                    &topic,
                    queue_id,
                    Duration::from_millis(100),
                    &self.stopping,
                );
            };
            if busy.is_some() {
                if let Some(cq) = self.cqs.get(&topic, queue_id) {
                    self.repair_in_background(&cq, bad);
                }
            }
            drop(busy);
            let mut g = self.repairs.pending.locked();
            g.retain(|(t, q, _)| !(t == &topic && *q == queue_id));
        }
    }

    /// The background worker's repair of unit `bad` of `cq` (the queue marked
    /// busy): a unit the commitlog cannot give back is noted (reads skip it),
    /// one not finished is logged (the next read of the damage tries again).
    fn repair_in_background(&self, cq: &ConsumeQueue, bad: u64) {
        let (topic, queue_id) = (cq.topic(), cq.queue_id());
        match self.repair_units_busy(cq, bad, BACKGROUND) {
            Repair::Done => {}
            Repair::Impossible(why) => {
                let e = crate::Error::corruption(
                    self.cfg
                        .consume_queue_dir()
                        .join(topic)
                        .join(queue_id.to_string()),
                    bad * crate::consume_queue::CQ_UNIT_SIZE as u64,
                    "the consume queue unit does not point at its record",
                );
                self.damaged.note_unit(topic, queue_id, bad, &e, &why);
            }
            Repair::Retry(why) | Repair::TooFar(why) => self.log_not_repaired(
                (topic, queue_id, bad),
                &why,
                "background consume queue rebuild not finished; the next read of the damage \
                 tries again",
            ),
        }
    }

    /// Log (rate-limited) that the repair of unit `bad` did not happen, and why.
    fn log_not_repaired(&self, (topic, queue_id, bad): (&str, u32, u64), why: &str, what: &str) {
        if let Some(held_back) = self.repairs.log.allow() {
            tracing::warn!(
                topic,
                queue_id,
                queue_offset = bad,
                why,
                not_logged = held_back,
                "{what}"
            );
        }
    }
}
