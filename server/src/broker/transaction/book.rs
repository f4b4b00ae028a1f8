//! The decided set of transactions and the claims of decisions in progress.

use ferromq_engine::sync::LockExt;
use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

/// A set of `u64` kept as runs of consecutive values (`start -> end`, end
/// exclusive): dense sets cost one entry per run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DecidedSet {
    runs: BTreeMap<u64, u64>,
}

impl DecidedSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `v` is in the set.
    pub fn contains(&self, v: u64) -> bool {
        self.runs
            .range(..=v)
            .next_back()
            .is_some_and(|(_, &end)| v < end)
    }

    /// Add `v`, joining the runs it touches.
    pub fn insert(&mut self, v: u64) {
        if self.contains(v) {
            return;
        }
        let Some(next) = v.checked_add(1) else {
            return; // u64::MAX is never a queue offset
        };
        let mut start = v;
        let mut end = next;
        if let Some((&s, &e)) = self.runs.range(..v).next_back() {
            if e == v {
                start = s;
            }
        }
        if let Some(e) = self.runs.remove(&next) {
            end = e;
        }
        self.runs.insert(start, end);
    }

    /// Number of runs.
    pub fn runs(&self) -> usize {
        self.runs.len()
    }
}

/// What [`TransactionBook::claim`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The caller now owns the decision and must call [`TransactionBook::finish`].
    Granted,
    /// An op record exists (or was written by this process): nothing to do.
    AlreadyDecided,
    /// Another request is deciding it right now.
    InFlight,
}

#[derive(Debug, Default)]
struct BookInner {
    decided: DecidedSet,
    in_flight: HashSet<u64>,
    /// Op queue offset up to which op records are in `decided`.
    op_offset: u64,
}

/// Which transactions (by origin half queue offset) are decided.
///
/// Decided origins are kept as runs of consecutive half queue offsets
/// ([`DecidedSet`]); the offsets of check-back copies are marked too (no
/// transaction has a copy's offset as origin), so memory grows with the number
/// of transactions still open or given up, not with the number decided. It is
/// rebuilt from the op queue at start.
#[derive(Debug, Default)]
pub struct TransactionBook {
    inner: Mutex<BookInner>,
}

impl TransactionBook {
    /// Nothing decided.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BookInner> {
        self.inner.locked()
    }

    /// Take the decision of `origin`, unless it is taken or being taken.
    pub fn claim(&self, origin: u64) -> Claim {
        let mut g = self.lock();
        if g.decided.contains(origin) {
            Claim::AlreadyDecided
        } else if !g.in_flight.insert(origin) {
            Claim::InFlight
        } else {
            Claim::Granted
        }
    }

    /// End a granted claim: `decided` once the op record is in the log, false
    /// to give the claim back after a failed write. (A claim whose commit record
    /// is written but whose op record is not stays in flight until a restart
    /// repairs it.)
    pub fn finish(&self, origin: u64, decided: bool) {
        let mut g = self.lock();
        g.in_flight.remove(&origin);
        if decided {
            g.decided.insert(origin);
        }
    }

    /// Whether `origin` is decided: its op record is in the log.
    pub fn is_decided(&self, origin: u64) -> bool {
        self.lock().decided.contains(origin)
    }

    /// Whether `origin` is decided or being decided.
    pub fn is_settled(&self, origin: u64) -> bool {
        let g = self.lock();
        g.decided.contains(origin) || g.in_flight.contains(&origin)
    }

    /// Record an op record read from the op queue at `op_offset`.
    pub fn replay_op(&self, origin: Option<u64>, op_offset: u64) {
        let mut g = self.lock();
        if let Some(o) = origin {
            g.decided.insert(o);
        }
        g.op_offset = g.op_offset.max(op_offset + 1);
    }

    /// Op queue offset up to which op records were replayed.
    pub fn op_offset(&self) -> u64 {
        self.lock().op_offset
    }

    /// Raise the replayed op offset (ops this process wrote itself).
    pub fn advance_op_offset(&self, to: u64) {
        let mut g = self.lock();
        g.op_offset = g.op_offset.max(to);
    }

    /// Run `f` while no claim on `origin` can start, unless `origin` is settled
    /// (then `None`). The check-back appends its copy inside `f`, so a copy is
    /// never written after the commit record of the same transaction.
    pub fn unless_settled<R>(&self, origin: u64, f: impl FnOnce() -> R) -> Option<R> {
        let g = self.lock();
        if g.decided.contains(origin) || g.in_flight.contains(&origin) {
            return None;
        }
        let r = f();
        drop(g);
        Some(r)
    }

    /// Mark the queue offset of a check-back copy (it is no transaction's
    /// origin), so that runs of decided offsets stay unbroken.
    pub fn mark_copy(&self, queue_offset: u64) {
        self.lock().decided.insert(queue_offset);
    }

    /// Runs of consecutive decided offsets held (the book's memory is
    /// proportional to this).
    pub fn decided_runs(&self) -> usize {
        self.lock().decided.runs()
    }
}
