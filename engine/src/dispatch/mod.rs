//! The dispatcher: follows the commitlog by offset and builds the consume
//! queues, then wakes readers waiting for new messages.

mod arrivals;
mod batch;
mod follow;
mod health;
mod walk;

pub use arrivals::*;
pub(crate) use batch::*;
pub(crate) use health::*;
pub use walk::*;

use crate::consume_queue::CqTable;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use crate::commitlog::CommitLog;
use crate::error::{Error, Result};
use crate::service::Waker;
use crate::index::IndexService;

/// Follows the commitlog.
pub(crate) struct Dispatcher {
    reput_from: AtomicU64,
    /// Delay of each level (ms), for the tag code of scheduled messages.
    delay_levels_ms: Vec<i64>,
    last_store_timestamp_ms: AtomicI64,
    /// Woken by puts (new records to dispatch).
    pub waker: Waker,
    /// The back-off after a resource error sleeps on this one, woken only
    /// by shutdown: puts keep arriving during an outage and must not wake
    /// the dispatcher once each.
    pub backoff: Waker,
    pub health: DispatchHealth,
    /// The confirm offset ([`crate::MessageStore::set_confirm_offset`]):
    /// records ending past it are not dispatched yet. `u64::MAX`: no limit.
    limit: AtomicU64,
}

impl Dispatcher {
    pub fn new(from: u64, delay_levels_ms: Vec<i64>) -> Self {
        Dispatcher {
            reput_from: AtomicU64::new(from),
            delay_levels_ms,
            last_store_timestamp_ms: AtomicI64::new(0),
            waker: Waker::default(),
            backoff: Waker::default(),
            health: DispatchHealth::default(),
            limit: AtomicU64::new(u64::MAX),
        }
    }

    /// Dispatch only records that end at or before `limit` (`u64::MAX`:
    /// all); the previous limit.
    pub fn set_limit(&self, limit: u64) -> u64 {
        self.limit.swap(limit, Ordering::AcqRel)
    }

    /// The limit [`Dispatcher::set_limit`] set.
    pub fn limit(&self) -> u64 {
        self.limit.load(Ordering::Acquire)
    }

    /// A record at `phys` refused for `why` ([`Refusal`]: its topic is not a
    /// valid name, its queue id or offset is out of range, or its offset jumps
    /// too far past its queue's end): it stays in the log, gets no
    /// consume-queue unit and no index entry, and the position moves past it.
    /// Counted, and logged at most every [`LOG_EVERY`].
    #[cold]
    #[inline(never)]
    fn refuse(&self, topic: &str, phys: u64, queue_id: u32, queue_offset: u64, why: Refusal) {
        let n = self.health.refused.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(held_back) = self.health.refused_log.allow() {
            // Debug-quoted and cut short: the name is hostile input. The id
            // and offset are shown as the record's signed fields.
            let shown: String = topic.chars().take(80).collect();
            tracing::warn!(topic = ?shown, queue_id = queue_id as i32, queue_offset = queue_offset as i64,
                commit_log_offset = phys, reason = %why, refused_total = n, not_logged = held_back,
                "record refused: kept in the commitlog, not dispatched to any consume queue or index");
        }
    }

    /// Dispatch failed with `e`, a resource error (no descriptor, no space, an
    /// I/O error creating or growing a consume-queue or index file): the
    /// position stays before the record whose unit is not written. Note it for
    /// stats and the (rate-limited) log, and return how long to wait before the
    /// next try (10 ms, doubling up to 1 s).
    pub fn note_retry(&self, e: &Error) -> Duration {
        let h = &self.health;
        let total = h.retries.fetch_add(1, Ordering::Relaxed) + 1;
        let outage = h.outage_retries.fetch_add(1, Ordering::Relaxed) + 1;
        *h.error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
        h.failing.store(true, Ordering::Release);
        if let Some(held_back) = h.error_log.allow() {
            tracing::error!(error = %e, retries = outage, retries_total = total, not_logged = held_back,
                dispatched_offset = self.dispatched_offset(),
                "dispatch cannot write a consume queue or index file; retrying (puts go on, readers wait)");
        }
        let prev = h.backoff_ms.load(Ordering::Relaxed);
        let next = if prev == 0 {
            RETRY_FIRST.as_millis() as u64
        } else {
            (prev * 2).min(RETRY_MAX.as_millis() as u64)
        };
        h.backoff_ms.store(next, Ordering::Relaxed);
        Duration::from_millis(next)
    }

    /// A dispatch call succeeded: end an outage noted by
    /// [`Dispatcher::note_retry`] (one atomic load when there is none).
    pub fn note_ok(&self) {
        let h = &self.health;
        if h.failing.load(Ordering::Acquire) && h.failing.swap(false, Ordering::AcqRel) {
            let outage = h.outage_retries.swap(0, Ordering::Relaxed);
            h.backoff_ms.store(0, Ordering::Relaxed);
            let was = h.error.lock().unwrap_or_else(|p| p.into_inner()).take();
            tracing::info!(retries = outage, error = ?was, dispatched_offset = self.dispatched_offset(),
                "dispatch resumed");
        }
    }

    /// Commitlog offset up to which records are dispatched.
    pub fn dispatched_offset(&self) -> u64 {
        self.reput_from.load(Ordering::Acquire)
    }

    /// Store timestamp of the last record dispatched (ms; 0 before the first).
    pub fn last_store_timestamp_ms(&self) -> i64 {
        self.last_store_timestamp_ms.load(Ordering::Acquire)
    }

    /// The consume-queue tag code of a record (see [`unit_tags_code`]).
    fn tags_code(&self, h: &crate::message::RecordHeader<'_>) -> i64 {
        unit_tags_code(h, &self.delay_levels_ms)
    }

    /// Restart dispatching at `offset` (recovery).
    pub fn reset(&self, offset: u64) {
        self.reput_from.store(offset, Ordering::Release);
    }

    /// Dispatch every readable record. Returns how many records were dispatched.
    pub fn dispatch_available(
        &self,
        commitlog: &CommitLog,
        cqs: &CqTable,
        index: Option<&IndexService>,
        arrivals: &Arrivals,
    ) -> Result<usize> {
        match self.dispatch_inner(commitlog, cqs, index, arrivals, false)? {
            Ok(n) => Ok(n),
            Err(gap) => Err(Error::corruption(
                "consumequeue",
                gap.want,
                "unexpected gap",
            )),
        }
    }

    /// Recovery pass: like [`Dispatcher::dispatch_available`], but stop at the first
    /// record whose consume queue is missing units before it (a queue that was
    /// deleted, damaged or lost its tail). The caller then dispatches again from
    /// the start of the log, which rebuilds such queues.
    pub fn dispatch_checking_gaps(
        &self,
        commitlog: &CommitLog,
        cqs: &CqTable,
        index: Option<&IndexService>,
        arrivals: &Arrivals,
    ) -> Result<std::result::Result<usize, QueueGap>> {
        self.dispatch_inner(commitlog, cqs, index, arrivals, true)
    }

    /// Write the units `batch` collected, then move the dispatch position to
    /// `offset` (the records before it are dispatched), the last of them stored
    /// at `last_store_timestamp_ms` if any were read. The position is stored
    /// before the time: a reader that loads the time and then the position
    /// gets a time no later than the position's (the checkpoint).
    fn publish(
        &self,
        batch: &mut UnitBatcher,
        offset: u64,
        last_store_timestamp_ms: Option<i64>,
    ) -> Result<()> {
        batch.write_pending()?;
        self.reput_from.store(offset, Ordering::Release);
        if let Some(ms) = last_store_timestamp_ms {
            self.last_store_timestamp_ms.store(ms, Ordering::Release);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_from_10_ms_doubling_to_1_s_and_reset_on_success() {
        let d = Dispatcher::new(0, Vec::new());
        let e = Error::io("creating a file", std::io::Error::from_raw_os_error(24));
        let waits: Vec<u64> = (0..10)
            .map(|_| d.note_retry(&e).as_millis() as u64)
            .collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
        assert_eq!(d.health.retries.load(Ordering::Relaxed), 10);
        assert!(d.health.error.lock().unwrap().is_some());
        d.note_ok();
        assert!(d.health.error.lock().unwrap().is_none());
        assert_eq!(d.note_retry(&e), Duration::from_millis(10));
        assert_eq!(d.health.retries.load(Ordering::Relaxed), 11, "a total");
    }
}
