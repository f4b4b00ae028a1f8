//! The commitlog file allocator: creates the next file in the background.

use crate::sync::LockExt;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::mapped_file::MappedFile;

/// Background creation of the next commitlog file, so that a roll never waits
/// for file creation in the common case.
pub(super) struct Allocator {
    inner: Arc<AllocInner>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

struct AllocInner {
    dir: std::path::PathBuf,
    file_size: usize,
    warm: bool,
    prefault_ahead: usize,
    state: Mutex<AllocState>,
    cv: Condvar,
}

#[derive(Default)]
struct AllocState {
    want: Option<u64>,
    busy: Option<u64>,
    ready: Option<(u64, Result<Arc<MappedFile>>)>,
    stop: bool,
}

impl Allocator {
    pub(super) fn new(
        dir: std::path::PathBuf,
        file_size: usize,
        warm: bool,
        prefault_ahead: usize,
    ) -> Self {
        Allocator {
            inner: Arc::new(AllocInner {
                dir,
                file_size,
                warm,
                prefault_ahead,
                state: Mutex::new(AllocState::default()),
                cv: Condvar::new(),
            }),
            thread: Mutex::new(None),
        }
    }

    pub(super) fn start(&self) -> Result<()> {
        let inner = Arc::clone(&self.inner);
        let h = std::thread::Builder::new()
            .name("ferromq-allocate".into())
            // Normal priority: a put that rolls may wait for this thread.
            .spawn(move || inner.run())
            .map_err(|e| Error::io("spawning the file allocation thread", e))?;
        *self.thread.locked() = Some(h);
        Ok(())
    }

    pub(super) fn stop(&self) {
        {
            let mut st = self.inner.state.locked();
            st.stop = true;
            st.want = None;
        }
        self.inner.cv.notify_all();
        if let Some(h) = self.thread.locked().take() {
            let _ = h.join();
        }
    }

    pub(super) fn request(&self, offset: u64) {
        let mut st = self.inner.state.locked();
        if st.stop || st.busy == Some(offset) || matches!(st.ready, Some((o, _)) if o == offset) {
            return;
        }
        st.want = Some(offset);
        drop(st);
        self.inner.cv.notify_all();
    }

    /// Forget the next file asked for and delete one made ahead (waiting for
    /// one being made): the log is being cut back, and a file made for the
    /// old end would be a gap in the log at the next open. The caller asks
    /// for the new next file afterwards.
    pub(super) fn discard(&self) -> Result<()> {
        let mut st = self.inner.state.locked();
        st.want = None;
        while st.busy.is_some() && !st.stop {
            st = self
                .inner
                .cv
                .wait_timeout(st, Duration::from_millis(100))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        if let Some((_, Ok(made))) = st.ready.take() {
            made.delete_file()?;
            crate::fs::sync_dir(&self.inner.dir)?;
        }
        Ok(())
    }

    /// The file starting at `offset`: pre-allocated if ready, awaited (at most
    /// 5 s) if being made, created inline otherwise.
    pub(super) fn take(&self, offset: u64) -> Result<Arc<MappedFile>> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut st = self.inner.state.locked();
        loop {
            if let Some((o, _)) = &st.ready {
                if *o == offset {
                    let (_, r) = st.ready.take().expect("checked");
                    return r;
                }
                // Made for another offset (the log jumped): never written, remove it.
                if let Some((_, Ok(stale))) = st.ready.take() {
                    let _ = stale.delete_file();
                }
            }
            if st.busy != Some(offset) || st.stop {
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            st = self
                .inner
                .cv
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        if st.want == Some(offset) {
            st.want = None;
        }
        drop(st);
        self.inner.create(offset)
    }
}

impl AllocInner {
    fn create(&self, offset: u64) -> Result<Arc<MappedFile>> {
        let f = MappedFile::create(&self.dir, offset, self.file_size)?;
        if self.warm {
            f.warm();
        } else if self.prefault_ahead > 0 {
            // Best effort: a kernel without MADV_POPULATE_* just skips it.
            let _ = f.prefault(0, self.prefault_ahead);
        }
        Ok(Arc::new(f))
    }

    fn run(&self) {
        let mut st = self.state.locked();
        loop {
            if st.stop {
                return;
            }
            let Some(offset) = st.want.take() else {
                st = self
                    .cv
                    .wait_timeout(st, Duration::from_millis(500))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
                continue;
            };
            st.busy = Some(offset);
            drop(st);
            let started = Instant::now();
            let r = self.create(offset);
            if let Err(e) = &r {
                tracing::error!(offset, error = %e, "pre-allocating the next commitlog file failed");
            } else {
                tracing::debug!(
                    offset,
                    ms = started.elapsed().as_millis() as u64,
                    "pre-allocated commitlog file"
                );
            }
            st = self.state.locked();
            st.busy = None;
            st.ready = Some((offset, r));
            self.cv.notify_all();
        }
    }
}
