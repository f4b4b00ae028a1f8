//! What the store's background services share: the wake-up signal they sleep
//! on ([`Waker`]), the guard that fences the store when one of them panics
//! ([`PanicGuard`]), and the set of named threads that shutdown joins
//! ([`ServiceThreads`]).
//!
//! Every service loop sleeps in [`Waker::wait`] until its interval passes or
//! something wakes it (shutdown, a put that left work for it), never in a
//! sleep-and-poll loop.

use crate::sync::LockExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::flush::Fence;

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
            let _g = self.lock.locked();
            self.cv.notify_all();
        }
    }

    /// Wait until woken or `timeout` passes.
    pub fn wait(&self, timeout: Duration) {
        if self.pending.swap(false, Ordering::SeqCst) {
            return;
        }
        let g = self.lock.locked();
        self.sleeping.store(true, Ordering::SeqCst);
        if !self.pending.swap(false, Ordering::SeqCst) {
            let _ = self.cv.wait_timeout(g, timeout);
        }
        self.sleeping.store(false, Ordering::SeqCst);
        self.pending.store(false, Ordering::SeqCst);
    }

    /// Sleep until `until`, or until woken with `stop()` true (a wake-up
    /// that does not stop the wait is slept through).
    pub fn sleep_until(&self, until: Instant, stop: impl Fn() -> bool) {
        loop {
            let now = Instant::now();
            if stop() || now >= until {
                return;
            }
            self.wait(until - now);
        }
    }
}

/// The store's named background threads: each runs with a [`PanicGuard`]
/// and is joined at shutdown.
#[derive(Debug, Default)]
pub(crate) struct ServiceThreads {
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl ServiceThreads {
    /// Start `f` on a thread called `name`; a panic in it trips `fence`.
    pub fn spawn(
        &self,
        name: &'static str,
        fence: &Arc<Fence>,
        f: impl FnOnce() + Send + 'static,
    ) -> Result<()> {
        let fence = Arc::clone(fence);
        let h = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let _guard = PanicGuard { fence, name };
                f()
            })
            .map_err(|e| Error::io(format!("spawning thread {name}"), e))?;
        self.threads.locked().push(h);
        Ok(())
    }

    /// Join every thread started so far; how many of them panicked.
    pub fn join_all(&self) -> usize {
        let threads: Vec<_> = self.threads.locked().drain(..).collect();
        threads
            .into_iter()
            .map(|h| h.join())
            .filter(|r| r.is_err())
            .count()
    }
}
