//! Flushing: the async flush policy, sync flush with group commit, consume-queue
//! flushes, and the fence that stops writes after a failed sync.
//!
//! The sync policy and the fence live here and nowhere else: every flush of the
//! commitlog goes through [`CommitLogFlusher::flush`], which latches the first
//! error into the [`Fence`]. After that, no put is accepted and no flush is
//! retried as if nothing happened (the kernel may already have dropped the dirty
//! pages, so a later successful sync would prove nothing).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::config::{FlushDiskType, StoreConfig};
use crate::error::{Error, Result};
use crate::mapped_file_queue::MappedFileQueue;

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

/// Marks the store failed if a background thread unwinds.
pub(crate) struct PanicGuard {
    pub fence: Arc<Fence>,
    pub name: &'static str,
}

impl Drop for PanicGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.fence
                .trip(format!("background thread {} panicked", self.name));
        }
    }
}

/// A cheap wake-up signal: `wake` costs one atomic store unless the waiter sleeps.
#[derive(Debug, Default)]
pub(crate) struct Waker {
    pending: AtomicBool,
    sleeping: AtomicBool,
    lock: Mutex<()>,
    cv: Condvar,
}

impl Waker {
    pub fn wake(&self) {
        self.pending.store(true, Ordering::SeqCst);
        if self.sleeping.load(Ordering::SeqCst) {
            let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.cv.notify_all();
        }
    }

    /// Wait until woken or `timeout` passes.
    pub fn wait(&self, timeout: Duration) {
        if self.pending.swap(false, Ordering::SeqCst) {
            return;
        }
        let g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.sleeping.store(true, Ordering::SeqCst);
        if !self.pending.swap(false, Ordering::SeqCst) {
            let _ = self.cv.wait_timeout(g, timeout);
        }
        self.sleeping.store(false, Ordering::SeqCst);
        self.pending.store(false, Ordering::SeqCst);
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
    interval: Duration,
    least_pages: u32,
    thorough_interval: Duration,
    timed: bool,
    fence: Arc<Fence>,
    durable: AtomicU64,
    state: Mutex<GroupState>,
    request_cv: Condvar,
    done_lock: Mutex<()>,
    done_cv: Condvar,
    waker: Waker,
    /// Number of flush (sync) calls made; for stats and tests.
    pub syncs: AtomicU64,
}

impl CommitLogFlusher {
    pub fn new(cfg: &StoreConfig, fence: Arc<Fence>, durable: u64) -> Self {
        CommitLogFlusher {
            mode: cfg.flush_disk_type,
            interval: Duration::from_millis(cfg.flush_interval_commit_log_ms.max(1)),
            least_pages: cfg.flush_commit_log_least_pages,
            thorough_interval: Duration::from_millis(cfg.flush_commit_log_thorough_interval_ms),
            timed: cfg.flush_commit_log_timed,
            fence,
            durable: AtomicU64::new(durable),
            state: Mutex::new(GroupState::default()),
            request_cv: Condvar::new(),
            done_lock: Mutex::new(()),
            done_cv: Condvar::new(),
            waker: Waker::default(),
            syncs: AtomicU64::new(0),
        }
    }

    /// Offset up to which the commitlog is durable.
    pub fn durable_offset(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }

    /// Flush `queue` with `least_pages`; the single place where a sync failure fences the store.
    pub fn flush(&self, queue: &MappedFileQueue, least_pages: u32) -> Result<u64> {
        self.fence.check()?;
        let before = queue.flushed_where();
        match queue.flush(least_pages) {
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
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if st.stop {
                return Err(Error::ShutDown);
            }
            if st.requested < end_offset {
                st.requested = end_offset;
            }
        }
        self.request_cv.notify_one();
        let deadline = Instant::now() + timeout;
        let mut g = self.done_lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if self.durable_offset() >= end_offset {
                return Ok(SyncOutcome::Durable);
            }
            self.fence.check()?;
            let now = Instant::now();
            if now >= deadline {
                return Ok(SyncOutcome::TimedOut);
            }
            g = self
                .done_cv
                .wait_timeout(g, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn notify_done(&self) {
        let _g = self.done_lock.lock().unwrap_or_else(|e| e.into_inner());
        self.done_cv.notify_all();
    }

    /// Ask the thread to stop.
    pub fn stop(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).stop = true;
        self.request_cv.notify_all();
        self.waker.wake();
    }

    fn stopped(&self) -> bool {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).stop
    }

    /// The flush thread's loop.
    pub fn run(&self, queue: &MappedFileQueue) {
        match self.mode {
            FlushDiskType::AsyncFlush => self.run_async(queue),
            FlushDiskType::SyncFlush => self.run_group_commit(queue),
        }
    }

    fn run_async(&self, queue: &MappedFileQueue) {
        let mut last_thorough = Instant::now();
        while !self.stopped() {
            if self.timed {
                let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
                if st.stop {
                    break;
                }
                let _ = self.request_cv.wait_timeout(st, self.interval);
            } else {
                self.waker.wait(self.interval);
            }
            let mut least = self.least_pages;
            if last_thorough.elapsed() >= self.thorough_interval {
                last_thorough = Instant::now();
                least = 0;
            }
            if self.flush(queue, least).is_err() {
                self.notify_done();
                return;
            }
        }
    }

    fn run_group_commit(&self, queue: &MappedFileQueue) {
        loop {
            {
                let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
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
            // because puts register only after their bytes are in the file.
            let r = self.flush(queue, 0);
            self.notify_done();
            if r.is_err() {
                return;
            }
        }
        self.notify_done();
    }
}

/// Consume-queue flush schedule (`flushIntervalConsumeQueue`, `flushConsumeQueueLeastPages`,
/// `flushConsumeQueueThoroughInterval`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct CqFlushPolicy {
    pub interval: Duration,
    pub least_pages: u32,
    pub thorough_interval: Duration,
}

impl CqFlushPolicy {
    pub fn new(cfg: &StoreConfig) -> Self {
        CqFlushPolicy {
            interval: Duration::from_millis(cfg.flush_interval_consume_queue_ms.max(1)),
            least_pages: cfg.flush_consume_queue_least_pages,
            thorough_interval: Duration::from_millis(cfg.flush_consume_queue_thorough_interval_ms),
        }
    }
}
