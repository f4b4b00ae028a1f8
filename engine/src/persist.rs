//! Coalesced writes of small config files (`topics.json`, and the broker's
//! `subscriptionGroup.json`): a change marks the table dirty and one background
//! thread per file writes it at most once every [`CONFIG_PERSIST_INTERVAL`],
//! instead of a rewrite and an fsync per change (a heartbeat naming a thousand
//! new groups made a thousand of each). The last state is written at
//! [`CoalescedWriter::flush`] (shutdown) and when the writer is dropped.
//!
//! What a crash can lose: changes of the last interval, for changes made by
//! clients in bulk (heartbeats, auto-created topics: a topic with messages is
//! learned again from its consume queues at open, and a group is created again
//! by its next heartbeat). A change that must be on disk before it is
//! acknowledged (an administrator's UPDATE_AND_CREATE_TOPIC) is followed by
//! [`CoalescedWriter::write_through`], which returns once a write that
//! includes it has completed; concurrent callers share one write.

use crate::sync::LockExt;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often at most a coalesced config file is rewritten.
pub const CONFIG_PERSIST_INTERVAL: Duration = Duration::from_millis(250);

/// Writes the current state of one table to its file.
pub type WriteFn = Box<dyn Fn() -> Result<(), String> + Send + Sync>;

#[derive(Default)]
struct State {
    dirty: bool,
    stop: bool,
    last_write: Option<Instant>,
    /// Changes marked so far ([`CoalescedWriter::mark_dirty`] calls).
    changes: u64,
    /// `changes` as it was when the last successful write took its snapshot:
    /// every change up to it is on disk.
    written: u64,
}

struct Shared {
    what: String,
    interval: Duration,
    state: Mutex<State>,
    wake: Condvar,
    /// Held across "snapshot and write", so writes land in the order their
    /// snapshots were taken (the file's last write is the table's last state).
    writing: Mutex<()>,
    write: WriteFn,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.locked()
    }

    fn write_now(&self) -> Result<(), String> {
        let _w = self.writing.locked();
        self.write_locked()
    }

    /// One write; the caller holds `writing`.
    fn write_locked(&self) -> Result<(), String> {
        // Counted before the snapshot: the table was changed before its change
        // was counted, so the snapshot holds at least the changes up to here.
        let covers = self.lock().changes;
        let r = (self.write)();
        let mut st = self.lock();
        st.last_write = Some(Instant::now());
        match &r {
            Ok(()) => {
                st.written = st.written.max(covers);
                if st.changes == covers {
                    // Nothing changed since the snapshot: no write is due.
                    st.dirty = false;
                }
            }
            // Written again on the next round.
            Err(_) => st.dirty = true,
        }
        r
    }

    fn run(&self) {
        loop {
            let mut st = self.lock();
            while !st.dirty && !st.stop {
                st = self.wake.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            // At most one write per interval: later changes of the interval
            // ride along with this one.
            while !st.stop {
                let due = st.last_write.map(|t| t + self.interval);
                let now = Instant::now();
                match due {
                    Some(d) if d > now => {
                        st = self
                            .wake
                            .wait_timeout(st, d - now)
                            .unwrap_or_else(|e| e.into_inner())
                            .0;
                    }
                    _ => break,
                }
            }
            if st.stop {
                return;
            }
            st.dirty = false;
            drop(st);
            if let Err(e) = self.write_now() {
                tracing::error!(file = %self.what, error = %e, "cannot write a config file; retrying");
            }
        }
    }
}

/// One background writer for one config file (see the module docs).
pub struct CoalescedWriter {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for CoalescedWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoalescedWriter")
            .field("file", &self.shared.what)
            .field("interval", &self.shared.interval)
            .finish()
    }
}

impl CoalescedWriter {
    /// Start the writer of `what` (a file name, for logs): `write` writes the
    /// table's current state, at most once per `interval` after changes.
    ///
    /// # Errors
    /// The thread cannot be spawned.
    pub fn start(what: &str, interval: Duration, write: WriteFn) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            what: what.to_string(),
            interval,
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            writing: Mutex::new(()),
            write,
        });
        let s = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("ferromq-config-writer".into())
            .spawn(move || s.run())?;
        Ok(CoalescedWriter {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The table changed: have it written within the interval.
    pub fn mark_dirty(&self) {
        let mut st = self.shared.lock();
        st.changes += 1;
        if !st.dirty {
            st.dirty = true;
            self.shared.wake.notify_one();
        }
    }

    /// Whether a change waits to be written.
    pub fn is_dirty(&self) -> bool {
        self.shared.lock().dirty
    }

    /// Write the current state now, whether or not anything changed.
    ///
    /// # Errors
    /// The write's error (the table stays marked for the next round).
    pub fn flush(&self) -> Result<(), String> {
        self.shared.lock().dirty = false;
        self.shared.write_now()
    }

    /// Return once every change marked so far ([`Self::mark_dirty`], called
    /// after changing the table) is on disk: at once when a write that started
    /// after them has completed, else after one write now. Callers that come
    /// while a write is under way share the next one (one write for a burst).
    ///
    /// # Errors
    /// The write's error (the table stays marked for the next round).
    pub fn write_through(&self) -> Result<(), String> {
        let want = self.shared.lock().changes;
        let _w = self.shared.writing.locked();
        if self.shared.lock().written >= want {
            return Ok(());
        }
        self.shared.write_locked()
    }

    /// Return once every change marked so far is on disk: as
    /// [`Self::write_through`]. (It used to return at once when the
    /// background thread had just taken the dirty mark and was still
    /// writing, so a caller could find the file missing or old after it
    /// returned; a test caught the race on CI.)
    ///
    /// # Errors
    /// The write's error (the table stays marked for the next round).
    pub fn flush_if_dirty(&self) -> Result<(), String> {
        self.write_through()
    }

    /// Stop the background thread (pending changes are written by the caller's
    /// flush, or by drop).
    fn stop(&self) {
        {
            let mut st = self.shared.lock();
            st.stop = true;
            self.shared.wake.notify_all();
        }
        let t = self.thread.locked().take();
        if let Some(t) = t {
            let _ = t.join();
        }
    }
}

impl Drop for CoalescedWriter {
    fn drop(&mut self) {
        self.stop();
        if let Err(e) = self.flush_if_dirty() {
            tracing::error!(file = %self.shared.what, error = %e, "cannot write a config file at close");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn many_changes_make_few_writes_and_the_last_state_is_written() {
        let writes = Arc::new(AtomicUsize::new(0));
        let value = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(AtomicUsize::new(0));
        let (w, v, s) = (writes.clone(), value.clone(), seen.clone());
        let writer = CoalescedWriter::start(
            "test.json",
            Duration::from_millis(100),
            Box::new(move || {
                w.fetch_add(1, Ordering::SeqCst);
                s.store(v.load(Ordering::SeqCst), Ordering::SeqCst);
                Ok(())
            }),
        )
        .unwrap();
        let started = Instant::now();
        for i in 1..=1000 {
            value.store(i, Ordering::SeqCst);
            writer.mark_dirty();
        }
        // Written within about one interval, without a flush.
        let deadline = Instant::now() + Duration::from_secs(5);
        while seen.load(Ordering::SeqCst) != 1000 {
            assert!(Instant::now() < deadline, "not written within 5 s");
            std::thread::sleep(Duration::from_millis(10));
        }
        let n = writes.load(Ordering::SeqCst);
        let bound = 2 + (started.elapsed().as_millis() / 100) as usize;
        assert!(n <= bound, "{n} writes for 1000 changes (bound {bound})");
        value.store(1001, Ordering::SeqCst);
        writer.mark_dirty();
        drop(writer);
        assert_eq!(
            seen.load(Ordering::SeqCst),
            1001,
            "drop writes the last state"
        );
    }

    #[test]
    fn write_through_returns_with_the_change_on_disk_and_bursts_share_writes() {
        let writes = Arc::new(AtomicUsize::new(0));
        let value = Arc::new(AtomicUsize::new(0));
        let on_disk = Arc::new(AtomicUsize::new(0));
        let (w, v, d) = (writes.clone(), value.clone(), on_disk.clone());
        // A long interval: the background writer alone would wait 10 s.
        let writer = CoalescedWriter::start(
            "test.json",
            Duration::from_secs(10),
            Box::new(move || {
                w.fetch_add(1, Ordering::SeqCst);
                let now = v.load(Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(20));
                d.fetch_max(now, Ordering::SeqCst);
                Ok(())
            }),
        )
        .unwrap();
        // Make the background writer's next round wait for the interval.
        writer.flush().unwrap();
        let base = writes.load(Ordering::SeqCst);
        value.store(1, Ordering::SeqCst);
        writer.mark_dirty();
        writer.write_through().unwrap();
        assert_eq!(on_disk.load(Ordering::SeqCst), 1, "on disk when it returns");
        assert_eq!(writes.load(Ordering::SeqCst), base + 1);
        assert!(!writer.is_dirty(), "nothing left for the background writer");
        // Nothing new: no write.
        writer.write_through().unwrap();
        assert_eq!(writes.load(Ordering::SeqCst), base + 1);
        // 16 threads, each a change and a write-through: each sees its own
        // change on disk, in fewer writes than changes.
        let next = AtomicUsize::new(2);
        std::thread::scope(|s| {
            for _ in 0..16 {
                s.spawn(|| {
                    let mine = next.fetch_add(1, Ordering::SeqCst);
                    value.fetch_max(mine, Ordering::SeqCst);
                    writer.mark_dirty();
                    writer.write_through().unwrap();
                    assert!(on_disk.load(Ordering::SeqCst) >= mine);
                });
            }
        });
        let n = writes.load(Ordering::SeqCst) - base - 1;
        assert!((1..=8).contains(&n), "{n} writes for 16 changes");
        eprintln!("16 concurrent write-throughs took {n} writes");
    }

    #[test]
    fn a_failed_write_is_retried() {
        let fails = Arc::new(AtomicUsize::new(2));
        let ok = Arc::new(AtomicUsize::new(0));
        let (f, o) = (fails.clone(), ok.clone());
        let writer = CoalescedWriter::start(
            "test.json",
            Duration::from_millis(20),
            Box::new(move || {
                if f.load(Ordering::SeqCst) > 0 {
                    f.fetch_sub(1, Ordering::SeqCst);
                    return Err("disk full".into());
                }
                o.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }),
        )
        .unwrap();
        writer.mark_dirty();
        let deadline = Instant::now() + Duration::from_secs(5);
        while ok.load(Ordering::SeqCst) == 0 {
            assert!(Instant::now() < deadline, "never retried");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!writer.is_dirty());
    }
}
