//! Flushing: the async flush policy, sync flush with group commit, consume-queue
//! flushes, and the fence that stops writes after a failed sync.
//!
//! The sync policy and the fence live here and nowhere else: every flush of the
//! commitlog goes through `CommitLogFlusher::flush`, which latches the first
//! error into the [`Fence`]. After that, no put is accepted and no flush is
//! retried as if nothing happened (the kernel may already have dropped the dirty
//! pages, so a later successful sync would prove nothing).

use crate::service::Waker;
use crate::sync::LockExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::config::{FlushDiskType, StoreConfig};
use crate::live::LivePolicy;
use crate::error::{Error, Result};
use crate::mapped_file_queue::MappedFileQueue;
/// The services' wake-up signal (moved to [`crate::service`]).
use crate::store::{Manifest, StoreInner, CQ_MANIFEST, CQ_MIN_MANIFEST};

/// Latches the first durability failure; later writes fail with it.
#[derive(Debug, Default)]
pub struct Fence {
    first: OnceLock<String>,
}

impl Fence {
    /// Record a failure (only the first is kept).
    pub fn trip(&self, why: impl Into<String>) {
        let why = why.into();
        if self.first.set(why.clone()).is_ok() {
            tracing::error!(cause = %why, "store fenced: writes are refused from now on");
        }
    }

    /// `Err(Fenced)` once tripped.
    pub fn check(&self) -> Result<()> {
        match self.first.get() {
            Some(why) => Err(Error::Fenced(why.clone())),
            None => Ok(()),
        }
    }

    /// The first failure, if any.
    pub fn cause(&self) -> Option<String> {
        self.first.get().cloned()
    }
}

/// Outcome of waiting for a sync flush.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SyncOutcome {
    Durable,
    TimedOut,
}

#[derive(Debug, Default)]
struct GroupState {
    requested: u64,
    stop: bool,
}

/// Flushes the commitlog: on a timer (ASYNC_FLUSH) or on demand with group
/// commit (SYNC_FLUSH).
pub(crate) struct CommitLogFlusher {
    mode: FlushDiskType,
    /// `flushIntervalCommitLog`, `flushCommitLogLeastPages`,
    /// `flushCommitLogThoroughInterval`: read on every cycle, changed live.
    policy: LivePolicy,
    timed: bool,
    fence: Arc<Fence>,
    durable: AtomicU64,
    state: Mutex<GroupState>,
    request_cv: Condvar,
    waker: Waker,
    /// Wakes the sync-flush watchdog at shutdown.
    watchdog: Waker,
    /// Bumped after every flush round; waiting puts sleep on it (futex).
    epoch: std::sync::atomic::AtomicU32,
    sleepers: std::sync::atomic::AtomicUsize,
    /// Number of flush (sync) calls made; for stats and tests.
    pub syncs: AtomicU64,
    /// Held by each sync and the move of `durable` after it, and by a live
    /// truncation (see [`CommitLogFlusher::truncating`]), so that a sync of
    /// the old log never raises `durable` past the cut.
    sync_gate: Mutex<()>,
}

impl CommitLogFlusher {
    pub fn new(cfg: &StoreConfig, fence: Arc<Fence>, durable: u64) -> Self {
        CommitLogFlusher {
            mode: cfg.flush_disk_type,
            policy: LivePolicy::new(FlushPolicy::commit_log(cfg)),
            timed: cfg.flush_commit_log_timed,
            fence,
            durable: AtomicU64::new(durable),
            state: Mutex::new(GroupState::default()),
            request_cv: Condvar::new(),
            waker: Waker::default(),
            watchdog: Waker::default(),
            epoch: std::sync::atomic::AtomicU32::new(0),
            sleepers: std::sync::atomic::AtomicUsize::new(0),
            syncs: AtomicU64::new(0),
            sync_gate: Mutex::new(()),
        }
    }

    /// Run `cut` (a live truncation of the commitlog to `offset`) with no
    /// sync in progress, then, when it succeeded, lower the durable offset
    /// to `offset` (a cut that failed part-way fences the store).
    pub fn truncating<R>(&self, offset: u64, cut: impl FnOnce() -> Result<R>) -> Result<R> {
        let _g = self.sync_gate.locked();
        let r = cut();
        if r.is_ok() {
            self.durable.fetch_min(offset, Ordering::AcqRel);
        }
        r
    }

    /// Offset up to which the commitlog is durable.
    pub fn durable_offset(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }

    /// Flush `queue` with `least_pages`; the single place where a sync failure fences the store.
    pub fn flush(&self, queue: &MappedFileQueue, least_pages: u32) -> Result<u64> {
        self.sync_with(queue, || queue.flush(least_pages))
    }

    /// Make `queue` durable with `sync` (a flush, or a commit-and-sync on the
    /// pool path), counting the sync and fencing the store when it fails.
    pub fn sync_with(
        &self,
        queue: &MappedFileQueue,
        sync: impl FnOnce() -> Result<u64>,
    ) -> Result<u64> {
        self.fence.check()?;
        let _g = self.sync_gate.locked();
        let before = queue.flushed_where();
        match sync() {
            Ok(mark) => {
                if mark > before {
                    self.syncs.fetch_add(1, Ordering::Relaxed);
                }
                self.durable.fetch_max(mark, Ordering::AcqRel);
                Ok(mark)
            }
            Err(e) => {
                self.fence.trip(format!("commitlog flush failed: {e}"));
                Err(e)
            }
        }
    }

    /// Change the async flush schedule (a live `flushIntervalCommitLog`,
    /// `flushCommitLogLeastPages` or `flushCommitLogThoroughInterval`) and wake
    /// the flush thread, so that it flushes by the new rule now and then sleeps
    /// the new interval (not the rest of an old, longer one).
    pub fn set_policy(&self, p: FlushPolicy) {
        self.policy.set(p);
        if self.mode == FlushDiskType::AsyncFlush {
            // Under the state lock: the timed loop cannot miss the notify
            // between reading the policy and starting to wait.
            let _st = self.state.locked();
            self.request_cv.notify_all();
            self.waker.wake();
        }
    }

    /// Called after each put: wakes the async flusher when it is not timed.
    pub fn on_put(&self) {
        if self.mode == FlushDiskType::AsyncFlush && !self.timed {
            self.waker.wake();
        }
    }

    /// SYNC_FLUSH: wait until `end_offset` is durable, or `timeout`.
    pub fn wait_durable(&self, end_offset: u64, timeout: Duration) -> Result<SyncOutcome> {
        if self.durable_offset() >= end_offset {
            return Ok(SyncOutcome::Durable);
        }
        {
            let mut st = self.state.locked();
            if st.stop {
                return Err(Error::ShutDown);
            }
            if st.requested < end_offset {
                st.requested = end_offset;
            }
        }
        self.request_cv.notify_one();
        let deadline = Instant::now() + timeout;
        loop {
            // Read the epoch before checking, so a flush that completes in between
            // changes it and the wait below returns at once.
            let epoch = self.epoch.load(Ordering::Acquire);
            if self.durable_offset() >= end_offset {
                return Ok(SyncOutcome::Durable);
            }
            self.fence.check()?;
            if Instant::now() >= deadline {
                return Ok(SyncOutcome::TimedOut);
            }
            self.sleepers.fetch_add(1, Ordering::SeqCst);
            // Bounded by the timeout: the flusher wakes sleepers after each sync,
            // and the watchdog below wakes everyone on the deadline.
            if self.epoch.load(Ordering::SeqCst) == epoch {
                atomic_wait::wait(&self.epoch, epoch);
            }
            self.sleepers.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Wake every waiting put with one futex call (a broadcast with no lock to
    /// re-take, unlike a condvar's `notify_all`).
    fn notify_done(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            atomic_wait::wake_all(&self.epoch);
        }
    }

    /// The sync-flush watchdog (RocketMQ's `FlushDiskWatcher`): every 10 ms wake
    /// sleeping puts so that each sees its own deadline even while a sync hangs
    /// in the kernel. Runs on its own thread until stopped.
    pub fn run_watchdog(&self) {
        while !self.stopped() {
            self.watchdog.wait(Duration::from_millis(10));
            if self.sleepers.load(Ordering::SeqCst) > 0 {
                self.notify_done();
            }
        }
        self.notify_done();
    }

    /// Ask the thread to stop.
    pub fn stop(&self) {
        self.state.locked().stop = true;
        self.request_cv.notify_all();
        self.waker.wake();
        self.watchdog.wake();
        self.notify_done();
    }

    fn stopped(&self) -> bool {
        self.state.locked().stop
    }

    /// The flush thread's loop.
    pub fn run(&self, queue: &MappedFileQueue) {
        match self.mode {
            FlushDiskType::AsyncFlush => self.run_async(queue),
            FlushDiskType::SyncFlush => self.run_group_commit(queue, || queue.flush(0)),
        }
    }

    /// The flush thread's loop on the pool path: SYNC_FLUSH group commits go
    /// through `commit_and_sync` (the pool's bytes written and synced in one
    /// submission); ASYNC_FLUSH flushes what the commit service committed.
    pub fn run_pooled(&self, queue: &MappedFileQueue, commit_and_sync: impl Fn() -> Result<u64>) {
        match self.mode {
            FlushDiskType::AsyncFlush => self.run_async(queue),
            FlushDiskType::SyncFlush => self.run_group_commit(queue, commit_and_sync),
        }
    }

    fn run_async(&self, queue: &MappedFileQueue) {
        let mut pages = self.policy.get().least_pages_rule();
        while !self.stopped() {
            if self.timed {
                let st = self.state.locked();
                if st.stop {
                    break;
                }
                // Read under the lock `set_policy` notifies under.
                let interval = self.policy.interval();
                let _ = self.request_cv.wait_timeout(st, interval);
            } else {
                self.waker.wait(self.policy.interval());
            }
            pages.follow(&self.policy.get());
            if self.flush(queue, pages.now()).is_err() {
                self.notify_done();
                return;
            }
        }
    }

    fn run_group_commit(&self, queue: &MappedFileQueue, sync: impl Fn() -> Result<u64>) {
        loop {
            {
                let mut st = self.state.locked();
                while !st.stop && st.requested <= self.durable_offset() {
                    st = self
                        .request_cv
                        .wait_timeout(st, Duration::from_millis(10))
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                if st.stop {
                    break;
                }
            }
            // Flush everything written so far: every waiting request is covered,
            // because puts register only after their bytes are written.
            let r = self.sync_with(queue, &sync);
            self.notify_done();
            if r.is_err() {
                return;
            }
        }
        self.notify_done();
    }
}

/// A flush (or commit) service's schedule: it wakes every `interval` and
/// syncs only when at least `least_pages` dirty pages wait, except once
/// `thorough_interval` has passed since its last thorough pass, when it syncs
/// everything (RocketMQ's `flushCommitLogLeastPages` /
/// `flushCommitLogThoroughInterval`, and the same pair for commits and
/// consume queues).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FlushPolicy {
    pub interval: Duration,
    pub least_pages: u32,
    pub thorough_interval: Duration,
}

impl FlushPolicy {
    /// The commitlog flush (`flushIntervalCommitLog`,
    /// `flushCommitLogLeastPages`, `flushCommitLogThoroughInterval`).
    pub fn commit_log(cfg: &StoreConfig) -> Self {
        Self::new(
            cfg.flush_interval_commit_log_ms,
            cfg.flush_commit_log_least_pages,
            cfg.flush_commit_log_thorough_interval_ms,
        )
    }

    /// The pool's commit (`commitIntervalCommitLog`,
    /// `commitCommitLogLeastPages`, `commitCommitLogThoroughInterval`).
    pub fn commit(cfg: &StoreConfig) -> Self {
        Self::new(
            cfg.commit_interval_commit_log_ms,
            cfg.commit_commit_log_least_pages,
            cfg.commit_commit_log_thorough_interval_ms,
        )
    }

    /// The consume-queue flush (`flushIntervalConsumeQueue`,
    /// `flushConsumeQueueLeastPages`, `flushConsumeQueueThoroughInterval`).
    pub fn consume_queue(cfg: &StoreConfig) -> Self {
        Self::new(
            cfg.flush_interval_consume_queue_ms,
            cfg.flush_consume_queue_least_pages,
            cfg.flush_consume_queue_thorough_interval_ms,
        )
    }

    fn new(interval_ms: u64, least_pages: u32, thorough_ms: u64) -> Self {
        FlushPolicy {
            interval: Duration::from_millis(interval_ms.max(1)),
            least_pages,
            thorough_interval: Duration::from_millis(thorough_ms),
        }
    }

    /// The "least pages unless thorough" rule, its thorough clock starting now.
    pub fn least_pages_rule(&self) -> LeastPages {
        LeastPages {
            least_pages: self.least_pages,
            thorough_interval: self.thorough_interval,
            last_thorough: Instant::now(),
        }
    }
}

/// The one place of the rule "sync at least N pages, unless the thorough
/// interval has passed" (see [`FlushPolicy`]).
#[derive(Debug)]
pub(crate) struct LeastPages {
    least_pages: u32,
    thorough_interval: Duration,
    last_thorough: Instant,
}

impl LeastPages {
    /// Take `policy`'s page count and thorough interval (changed live); the
    /// thorough clock keeps running.
    pub fn follow(&mut self, policy: &FlushPolicy) {
        self.least_pages = policy.least_pages;
        self.thorough_interval = policy.thorough_interval;
    }

    /// The dirty pages this pass needs before it syncs: `least_pages`, or 0
    /// (everything) when the thorough interval has passed since the last
    /// thorough pass (which this one then is).
    pub fn now(&mut self) -> u32 {
        if self.last_thorough.elapsed() >= self.thorough_interval {
            self.last_thorough = Instant::now();
            0
        } else {
            self.least_pages
        }
    }
}

impl StoreInner {
    /// Pool mode: commit buffered bytes every `commitIntervalCommitLog` ms when
    /// `commitCommitLogLeastPages` pages wait, everything every
    /// `commitCommitLogThoroughInterval` ms. A failed write fences the store.
    pub(crate) fn run_commit(&self) {
        let policy = FlushPolicy::commit(&self.cfg);
        let mut pages = policy.least_pages_rule();
        while !self.stopping.load(Ordering::Acquire) {
            // Sleep the interval, or until puts have left enough to commit
            // (or shutdown wakes us).
            self.commit_waker.wait(policy.interval);
            if self.stopping.load(Ordering::Acquire) {
                break;
            }
            if let Err(e) = self.commitlog.commit(pages.now()) {
                self.fence.trip(format!("commitlog commit failed: {e}"));
                return;
            }
        }
    }

    /// Flush the consume queues, the index and the checkpoint every
    /// `flushIntervalConsumeQueue` ms (see [`FlushPolicy::consume_queue`]);
    /// once more when shutdown wakes it.
    ///
    /// The schedule is read on every cycle: a live change that shortens the
    /// interval ends the current wait at once.
    pub(crate) fn run_cq_flush(&self) {
        let mut pages = self.cq_flush.get().least_pages_rule();
        let stopping = || self.stopping.load(Ordering::Acquire);
        while !stopping() {
            let interval = self.cq_flush.interval();
            let deadline = Instant::now() + interval;
            self.cq_flush_waker
                .sleep_until(deadline, || stopping() || self.cq_flush.interval() < interval);
            pages.follow(&self.cq_flush.get());
            if let Err(e) = self.flush_consume_queues(pages.now()) {
                // Retried at the next interval; no fence (see `cq_flush_failed`).
                self.note_cq_flush_failed(&e);
            }
        }
    }

    /// A flush of derived data failed: remember it (sticky), log it (rate-limited).
    pub(crate) fn note_cq_flush_failed(&self, e: &Error) {
        let mut g = self
            .cq_flush_failed
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if g.is_none() {
            *g = Some(e.to_string());
        }
        drop(g);
        if let Some(held_back) = self.cq_flush_log.allow() {
            tracing::error!(error = %e, not_logged = held_back,
                "consume queue flush failed; retried, puts go on, the checkpoint keeps the last offset known flushed");
        }
    }

    /// Flush every consume queue, then record in the checkpoint how far they are
    /// durable (and how far the commitlog is) and sync the checkpoint.
    pub(crate) fn flush_consume_queues(&self, least_pages: u32) -> Result<()> {
        // No live truncation meanwhile: the offsets read below must not be
        // recorded after the truncation lowered them.
        let _gate = crate::sync::RwLockExt::read_locked(&self.log_gate);
        // Read before flushing: every unit below this offset is in its file
        // already. The time first: dispatch stores it after the offset, so it
        // is never later than the offset's record (a conservative checkpoint).
        let dispatched_ts = self.dispatcher.last_store_timestamp_ms();
        let dispatched = self.dispatcher.dispatched_offset();
        // After a failed flush, a later one that succeeds does not prove the
        // earlier pages reached the disk: the logics and index offsets stay.
        let derived_ok = self.cq_flush_failed.locked().is_none();
        let mut all_flushed = derived_ok;
        let mut maxes: Manifest = Default::default();
        let queues = self.cqs.all();
        let mut flushed = Ok(());
        for cq in &queues {
            let max = cq.max_offset();
            if let Err(e) = cq.flush(least_pages) {
                flushed = Err(e);
                all_flushed = false;
                break;
            }
            all_flushed &= cq.fully_flushed();
            maxes
                .entry(cq.topic().to_string())
                .or_default()
                .insert(cq.queue_id(), max);
        }
        {
            // The first-file manifest says where files start, not what they
            // hold: written whatever the flushes did (so that a failed flush
            // never leaves it behind retention), and under its lock, so that
            // it never goes back behind what the clean pass wrote before
            // deleting files. One not written now is retried on the next pass.
            let mut last_min = self.cq_min_manifest.locked();
            let mut mins = std::collections::BTreeMap::<_, std::collections::BTreeMap<_, _>>::new();
            for cq in &queues {
                mins.entry(cq.topic().to_string())
                    .or_default()
                    .insert(cq.queue_id(), cq.first_file_offset());
            }
            if *last_min != mins && self.write_manifest(CQ_MIN_MANIFEST, &mins) {
                *last_min = mins;
            }
        }
        flushed?;
        if all_flushed {
            // A hint for the next open (a queue that lost units is rebuilt):
            // one not written now is retried on the next pass, and the
            // queues' own flush is not in doubt.
            let mut last = self.cq_manifest.locked();
            if *last != maxes && self.write_manifest(CQ_MANIFEST, &maxes) {
                *last = maxes;
            }
        }
        let mut index_done = None;
        if let Some(ix) = &self.index {
            // Everything dispatched before this point was given to the index.
            let ts = ix.last_update().0;
            ix.flush()?;
            index_done = derived_ok.then_some((dispatched, ts));
        }
        let physic_offset = self.flusher.durable_offset();
        let physic_ts = self.commitlog.queue.flushed_store_timestamp_ms();
        let before = self.checkpoint.data();
        self.checkpoint.update(|d| {
            if all_flushed {
                d.logics_offset = d.logics_offset.max(dispatched);
                d.logics_msg_timestamp = d.logics_msg_timestamp.max(dispatched_ts);
            }
            d.physic_offset = d.physic_offset.max(physic_offset);
            d.physic_msg_timestamp = d.physic_msg_timestamp.max(physic_ts);
            if let Some((off, ts)) = index_done {
                d.index_offset = d.index_offset.max(off);
                d.index_msg_timestamp = d.index_msg_timestamp.max(ts);
            }
        });
        if self.checkpoint.data() != before {
            self.checkpoint.flush()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(dir: &std::path::Path) -> MappedFileQueue {
        let q = MappedFileQueue::load(dir, 4096).unwrap();
        let f = q.create_file(0).unwrap();
        f.append(&[1u8; 100]).unwrap();
        q.set_flushed_where(0);
        q
    }

    #[test]
    fn wait_times_out_when_no_flush_happens() {
        let dir = tempfile::tempdir().unwrap();
        let _q = queue(dir.path());
        let mut cfg = StoreConfig::new(dir.path());
        cfg.flush_disk_type = FlushDiskType::SyncFlush;
        let fl = Arc::new(CommitLogFlusher::new(&cfg, Arc::new(Fence::default()), 0));
        // No flush thread runs (as when a sync hangs): the watchdog makes the
        // waiter give up at its deadline.
        let fl2 = Arc::clone(&fl);
        let dog = std::thread::spawn(move || fl2.run_watchdog());
        let t = Instant::now();
        let r = fl.wait_durable(100, Duration::from_millis(50)).unwrap();
        assert_eq!(r, SyncOutcome::TimedOut);
        assert!(t.elapsed() >= Duration::from_millis(50));
        assert!(t.elapsed() < Duration::from_secs(2));
        fl.stop();
        dog.join().unwrap();
    }

    #[test]
    fn group_commit_thread_makes_waiters_durable() {
        let dir = tempfile::tempdir().unwrap();
        let q = Arc::new(queue(dir.path()));
        let mut cfg = StoreConfig::new(dir.path());
        cfg.flush_disk_type = FlushDiskType::SyncFlush;
        let fl = Arc::new(CommitLogFlusher::new(&cfg, Arc::new(Fence::default()), 0));
        let (fl2, q2) = (Arc::clone(&fl), Arc::clone(&q));
        let h = std::thread::spawn(move || fl2.run(&q2));
        assert_eq!(
            fl.wait_durable(100, Duration::from_secs(5)).unwrap(),
            SyncOutcome::Durable
        );
        assert_eq!(q.flushed_where(), 100);
        fl.stop();
        h.join().unwrap();
    }

    #[test]
    fn a_tripped_fence_fails_waiters_and_flushes() {
        let dir = tempfile::tempdir().unwrap();
        let q = queue(dir.path());
        let fence = Arc::new(Fence::default());
        let mut cfg = StoreConfig::new(dir.path());
        cfg.flush_disk_type = FlushDiskType::SyncFlush;
        let fl = CommitLogFlusher::new(&cfg, Arc::clone(&fence), 0);
        fence.trip("fdatasync: EIO (injected)");
        fence.trip("a second cause is not kept");
        let e = fl.wait_durable(100, Duration::from_secs(5)).unwrap_err();
        assert!(e.to_string().contains("EIO (injected)"), "{e}");
        let e = fl.flush(&q, 0).unwrap_err();
        assert!(matches!(e, Error::Fenced(_)));
        assert_eq!(q.flushed_where(), 0, "no flush is retried after a failure");
    }

    #[test]
    fn least_pages_rule_asks_for_everything_once_the_thorough_interval_passed() {
        let policy = FlushPolicy::new(10, 4, 60_000);
        let mut rule = policy.least_pages_rule();
        assert_eq!(rule.now(), 4, "within the thorough interval");
        assert_eq!(rule.now(), 4);
        let mut always = FlushPolicy::new(10, 4, 0).least_pages_rule();
        assert_eq!(
            always.now(),
            0,
            "a zero thorough interval: every pass is thorough"
        );
        assert_eq!(always.now(), 0);
    }

    #[test]
    fn async_policy_respects_least_pages() {
        let dir = tempfile::tempdir().unwrap();
        let q = queue(dir.path());
        let cfg = StoreConfig::new(dir.path());
        let fl = CommitLogFlusher::new(&cfg, Arc::new(Fence::default()), 0);
        // 100 bytes dirty: less than 4 pages, nothing flushed with least_pages 4.
        assert_eq!(fl.flush(&q, 4).unwrap(), 0);
        assert_eq!(fl.flush(&q, 0).unwrap(), 100);
        assert_eq!(fl.durable_offset(), 100);
    }
}
