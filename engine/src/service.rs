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

/// The master-only services that a role switch pauses and resumes (indexes
/// into [`RoleGate`]).
pub(crate) const SCHEDULE_SERVICE: usize = 0;
/// See [`SCHEDULE_SERVICE`].
pub(crate) const TIMER_SERVICE: usize = 1;

/// The handshake between a role switch and the services that write puts of
/// their own (delayed and timer deliveries): they run only while the store is
/// a master. Each switch between master and slave starts a new epoch; a
/// service works for one master epoch and, once the epoch is over, drops its
/// state and acknowledges ([`RoleGate::ack`]) before it waits for the next.
#[derive(Debug, Default)]
pub(crate) struct RoleGate {
    /// The current epoch, for the services' cheap check.
    epoch: std::sync::atomic::AtomicU64,
    state: Mutex<GateState>,
    cv: Condvar,
}

#[derive(Debug, Default)]
struct GateState {
    master: bool,
    epoch: u64,
    /// Per service: the last epoch it acknowledged while not working.
    seen: [u64; 2],
    /// Per service: its thread is there (started and not ended).
    running: [bool; 2],
}

impl RoleGate {
    pub fn new(master: bool) -> Self {
        let g = RoleGate::default();
        g.state.locked().master = master;
        g
    }

    /// Note that the thread of `who` is about to start (before it is
    /// spawned, so a switch never misses it).
    pub fn register(&self, who: usize) {
        self.state.locked().running[who] = true;
    }

    /// The thread of `who` ended (or was never started).
    pub fn exit(&self, who: usize) {
        self.state.locked().running[who] = false;
        self.cv.notify_all();
    }

    /// A new epoch, as a master or a slave; returns it.
    pub fn set(&self, master: bool) -> u64 {
        let mut st = self.state.locked();
        st.master = master;
        st.epoch += 1;
        self.epoch.store(st.epoch, Ordering::Release);
        st.epoch
    }

    /// The current epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// True while `epoch` is the current one.
    pub fn is_current(&self, epoch: u64) -> bool {
        self.epoch.load(Ordering::Acquire) == epoch
    }

    /// `who` is not working: record that it saw the current epoch; whether
    /// it is a master epoch, and which.
    pub fn ack(&self, who: usize) -> (bool, u64) {
        let mut st = self.state.locked();
        st.seen[who] = st.epoch;
        self.cv.notify_all();
        (st.master, st.epoch)
    }

    /// Wait (at most `timeout`) until every running service acknowledged
    /// `epoch`; false on timeout.
    pub fn wait_acked(&self, epoch: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = self.state.locked();
        loop {
            if (0..st.seen.len()).all(|i| !st.running[i] || st.seen[i] >= epoch) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            st = self
                .cv
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// Calls [`RoleGate::exit`] when the service's thread ends (also by a panic).
pub(crate) struct GateExit<'a>(pub &'a RoleGate, pub usize);

impl Drop for GateExit<'_> {
    fn drop(&mut self) {
        self.0.exit(self.1);
    }
}
