//! The I/O seam: hooks that see every durable file operation of a store, so that
//! tests can keep what was synced apart from what was only written (a simulated
//! power loss), or make a sync or a file creation fail (EIO, ENOSPC).
//!
//! A hook is installed for a store root directory and sees the operations on
//! files below it. With no hook installed the cost is one atomic load per
//! operation; without the `fault-injection` cargo feature hooks cannot be
//! installed and there is no lookup at all.

mod hook;
mod pwrite;
mod uring;

use crate::sync::LockExt;
pub(crate) use hook::hook_for;
pub use hook::IoHook;
#[cfg(feature = "fault-injection")]
pub use hook::{install_hook, IoHookGuard};
use pwrite::pwrite;
use std::path::Path;
use std::sync::atomic::Ordering;
use uring::{uring_write, RING_WRITES};

/// Counters of the commit backend, for stats and for the write-path report.
#[derive(Debug, Default)]
struct BackendCounters {
    submissions: std::sync::atomic::AtomicU64,
    writes: std::sync::atomic::AtomicU64,
    syncs: std::sync::atomic::AtomicU64,
    bytes: std::sync::atomic::AtomicU64,
}

/// What the commit backend has done so far (see [`CommitBackend::counters`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CommitCounters {
    /// `io_uring_enter` submissions (or commit calls on the `pwrite` path).
    pub submissions: u64,
    /// Write operations (io_uring writes or `pwrite` calls).
    pub writes: u64,
    /// Data syncs (`fdatasync`, through the ring when it is on).
    pub syncs: u64,
    /// Bytes written.
    pub bytes: u64,
}

/// How the transient store pool's commit service writes to files: io_uring
/// (from the pool's registered buffers, with the data sync linked behind the
/// writes in the same submission) or, when io_uring cannot be had,
/// `pwrite` + `fdatasync`.
pub struct CommitBackend {
    ring: Option<std::sync::Mutex<io_uring::IoUring>>,
    /// The pool's buffers are registered with the ring (fixed-buffer writes).
    fixed: bool,
    why_not_uring: Option<String>,
    why_not_fixed: Option<String>,
    counters: BackendCounters,
    /// Keeps the registered buffers' memory alive. Declared after `ring`, so
    /// the ring (and its registration) is dropped first.
    _pool: Option<crate::pool::TransientStorePool>,
}

impl std::fmt::Debug for CommitBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl CommitBackend {
    /// io_uring when `want_uring` and the kernel allows it, else `pwrite`; with
    /// a pool, its buffers are registered with the ring when the kernel lets
    /// it (else the ring writes from them unregistered). The reason for a
    /// fallback is logged once and kept for stats.
    pub fn new(want_uring: bool, pool: Option<&crate::pool::TransientStorePool>) -> Self {
        let mut b = CommitBackend {
            ring: None,
            fixed: false,
            why_not_uring: None,
            why_not_fixed: None,
            counters: BackendCounters::default(),
            _pool: pool.cloned(),
        };
        if !want_uring {
            b.why_not_uring = Some("ioUringEnable=false".into());
            return b;
        }
        let ring = match io_uring::IoUring::new((RING_WRITES + 1) as u32) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "io_uring unavailable; the commit service uses pwrite + fdatasync");
                b.why_not_uring = Some(format!("io_uring setup failed: {e}"));
                return b;
            }
        };
        if let Some(pool) = pool {
            let iovecs: Vec<libc::iovec> = pool
                .regions()
                .iter()
                .map(|&(base, len)| libc::iovec {
                    iov_base: base as *mut libc::c_void,
                    iov_len: len,
                })
                .collect();
            // SAFETY: every region is a live anonymous mapping owned by the pool
            // (its memory never moves: buffers only move between the free list and
            // `PoolBuffer`s, both keeping the pool alive). `self._pool` holds a
            // clone of the pool for as long as the ring exists, and is dropped
            // after it, so the registered memory outlives the registration.
            #[allow(unsafe_code)]
            let r = unsafe { ring.submitter().register_buffers(&iovecs) };
            match r {
                Ok(()) => b.fixed = true,
                Err(e) => {
                    tracing::warn!(error = %e, "io_uring cannot register the pool buffers; committing from unregistered buffers");
                    b.why_not_fixed = Some(format!("register_buffers failed: {e}"));
                }
            }
        }
        b.ring = Some(std::sync::Mutex::new(ring));
        b
    }

    /// `"io_uring"` or `"pwrite"`.
    pub fn name(&self) -> &'static str {
        if self.ring.is_some() {
            "io_uring"
        } else {
            "pwrite"
        }
    }

    /// Why io_uring is not used, if it is not.
    pub fn fallback_reason(&self) -> Option<&str> {
        self.why_not_uring.as_deref()
    }

    /// True when io_uring writes from the pool's registered (fixed) buffers.
    pub fn registered_buffers(&self) -> bool {
        self.fixed
    }

    /// Why the pool's buffers are not registered, if the ring is on and they are not.
    pub fn unregistered_reason(&self) -> Option<&str> {
        self.why_not_fixed.as_deref()
    }

    /// What the backend has done so far.
    pub fn counters(&self) -> CommitCounters {
        let c = &self.counters;
        CommitCounters {
            submissions: c.submissions.load(Ordering::Relaxed),
            writes: c.writes.load(Ordering::Relaxed),
            syncs: c.syncs.load(Ordering::Relaxed),
            bytes: c.bytes.load(Ordering::Relaxed),
        }
    }

    /// Write all of `data` at `offset` of `file`; with `sync`, then make the
    /// file's data durable (`fdatasync`: everything written to it so far, not
    /// only `data`). `buffer` is the pool buffer index `data` lies in, for a
    /// fixed-buffer write. On io_uring the writes and the sync go in one
    /// submission, the sync linked behind the writes.
    pub(crate) fn write_at(
        &self,
        file: &std::fs::File,
        path: &Path,
        data: &[u8],
        offset: u64,
        buffer: Option<u16>,
        sync: bool,
    ) -> crate::Result<()> {
        if let Some(h) = hook_for(path) {
            h.before_sync(path, offset as usize, data.len())
                .map_err(|e| crate::Error::io(format!("committing to {}", path.display()), e))?;
        }
        let r = match &self.ring {
            Some(ring) => {
                let mut ring = ring.locked();
                let fixed = if self.fixed { buffer } else { None };
                uring_write(&mut ring, file, data, offset, fixed, sync, &self.counters)
            }
            None => pwrite(file, data, offset, sync, &self.counters),
        };
        r.map_err(|e| {
            let what = if sync {
                "committing and syncing"
            } else {
                "committing to"
            };
            crate::Error::io(format!("{what} {}", path.display()), e)
        })
    }
}
