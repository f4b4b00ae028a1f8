//! The I/O seam: hooks that see every durable file operation of a store, so that
//! tests can keep what was synced apart from what was only written (a simulated
//! power loss), or make a sync or a file creation fail (EIO, ENOSPC).
//!
//! A hook is installed for a store root directory and sees the operations on
//! files below it. With no hook installed the cost is one atomic load per
//! operation.

use crate::sync::{LockExt, RwLockExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

/// Observes (and may fail) the durable file operations below a store root.
/// Every method has a default that does nothing.
pub trait IoHook: Send + Sync {
    /// Before `len` bytes at `offset` of `path` are synced: an error makes the sync fail.
    fn before_sync(&self, _path: &Path, _offset: usize, _len: usize) -> std::io::Result<()> {
        Ok(())
    }
    /// After a sync succeeded: `bytes` at `offset` of `path` are durable.
    fn synced(&self, _path: &Path, _offset: usize, _bytes: &[u8]) {}
    /// Before a log file of `len` bytes is created: an error makes the creation fail.
    fn before_create(&self, _path: &Path, _len: usize) -> std::io::Result<()> {
        Ok(())
    }
    /// A file of `len` zero bytes now exists durably at `path`.
    fn created(&self, _path: &Path, _len: usize) {}
    /// Before `path` is removed (unlinked): an error makes the removal fail.
    fn before_remove(&self, _path: &Path) -> std::io::Result<()> {
        Ok(())
    }
    /// `path` was removed.
    fn removed(&self, _path: &Path) {}
    /// `path` was durably replaced by `bytes` as a whole.
    fn replaced(&self, _path: &Path, _bytes: &[u8]) {}
}

type Registry = RwLock<Vec<(PathBuf, Arc<dyn IoHook>)>>;

static ANY: AtomicBool = AtomicBool::new(false);
static HOOKS: Registry = RwLock::new(Vec::new());

/// Removes its hook when dropped.
#[must_use = "the hook is removed when the guard is dropped"]
pub struct IoHookGuard {
    root: PathBuf,
}

impl Drop for IoHookGuard {
    fn drop(&mut self) {
        let mut h = HOOKS.write_locked();
        h.retain(|(r, _)| r != &self.root);
        ANY.store(!h.is_empty(), Ordering::Release);
    }
}

/// Install `hook` for every store file below `root` until the guard drops.
pub fn install_hook(root: &Path, hook: Arc<dyn IoHook>) -> IoHookGuard {
    let root = root.to_path_buf();
    let mut h = HOOKS.write_locked();
    h.push((root.clone(), hook));
    ANY.store(true, Ordering::Release);
    IoHookGuard { root }
}

/// The hook responsible for `path`, if any.
pub(crate) fn hook_for(path: &Path) -> Option<Arc<dyn IoHook>> {
    if !ANY.load(Ordering::Acquire) {
        return None;
    }
    HOOKS
        .read_locked()
        .iter()
        .find(|(root, _)| path.starts_with(root))
        .map(|(_, h)| Arc::clone(h))
}

/// Most writes a commit puts in one io_uring submission (plus one sync).
const RING_WRITES: usize = 31;
/// Bytes per io_uring write: a commit of `n` bytes is `ceil(n / CHUNK)` linked
/// writes, so the kernel can start on the first chunk while later ones queue.
const CHUNK: usize = 512 * 1024;

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
            None => {
                use std::os::unix::fs::FileExt;
                let c = &self.counters;
                c.submissions.fetch_add(1, Ordering::Relaxed);
                let mut r = Ok(());
                if !data.is_empty() {
                    c.writes.fetch_add(1, Ordering::Relaxed);
                    r = file.write_all_at(data, offset);
                    if r.is_ok() {
                        c.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                    }
                }
                if r.is_ok() && sync {
                    c.syncs.fetch_add(1, Ordering::Relaxed);
                    r = file.sync_data();
                }
                r
            }
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

/// Write `data` at `offset` through the ring as linked writes of at most
/// [`CHUNK`] bytes, [`RING_WRITES`] per submission, with `sync` an
/// `fdatasync` linked behind the last write; wait for every completion. A
/// short write cancels the rest of its chain: the remainder (and the sync) go
/// in the next round. Every round writes at least one byte or fails, so the
/// loop ends.
fn uring_write(
    ring: &mut io_uring::IoUring,
    file: &std::fs::File,
    data: &[u8],
    offset: u64,
    fixed: Option<u16>,
    sync: bool,
    counters: &BackendCounters,
) -> std::io::Result<()> {
    use io_uring::{opcode, squeue, types};
    use std::os::unix::io::AsRawFd;
    const SYNC_TAG: u64 = u64::MAX;
    let fd = types::Fd(file.as_raw_fd());
    let mut done = 0usize;
    loop {
        let left = data.len() - done;
        let n = left.div_ceil(CHUNK).min(RING_WRITES);
        let with_sync = sync && left <= n * CHUNK;
        let mut lens = [0usize; RING_WRITES];
        for (i, len) in lens.iter_mut().enumerate().take(n) {
            let start = done + i * CHUNK;
            *len = CHUNK.min(data.len() - start);
            let ptr = data[start..].as_ptr();
            let entry = match fixed {
                Some(idx) => opcode::WriteFixed::new(fd, ptr, *len as u32, idx)
                    .offset(offset + start as u64)
                    .build(),
                None => opcode::Write::new(fd, ptr, *len as u32)
                    .offset(offset + start as u64)
                    .build(),
            };
            let link = i + 1 < n || with_sync;
            let entry = if link {
                entry.flags(squeue::Flags::IO_LINK)
            } else {
                entry
            };
            // SAFETY: the entry points into `data` and at `file`, both borrowed
            // for this whole function, which reaps every completion of this
            // submission below before returning or going round again; so the
            // memory and the descriptor outlive the kernel's use of them. A fixed
            // index names a registered buffer that `data` lies inside (the
            // caller's pool buffer).
            #[allow(unsafe_code)]
            unsafe {
                ring.submission()
                    .push(&entry.user_data(i as u64))
                    .map_err(|_| std::io::Error::other("io_uring submission queue full"))?;
            }
        }
        if with_sync {
            let entry = opcode::Fsync::new(fd)
                .flags(types::FsyncFlags::DATASYNC)
                .build()
                .user_data(SYNC_TAG);
            // SAFETY: a sync holds no memory of ours; `file` outlives it as above.
            #[allow(unsafe_code)]
            unsafe {
                ring.submission()
                    .push(&entry)
                    .map_err(|_| std::io::Error::other("io_uring submission queue full"))?;
            }
        }
        let total = n + usize::from(with_sync);
        counters.submissions.fetch_add(1, Ordering::Relaxed);
        ring.submit_and_wait(total)?;
        // Reap all `total` completions before looking at any result.
        let mut res = [0i32; RING_WRITES];
        let mut sync_res: Option<i32> = None;
        let mut reaped = 0;
        while reaped < total {
            let got: Vec<(u64, i32)> = ring
                .completion()
                .map(|c| (c.user_data(), c.result()))
                .collect();
            if got.is_empty() {
                ring.submit_and_wait(total - reaped)?;
                continue;
            }
            for (tag, r) in got {
                reaped += 1;
                if tag == SYNC_TAG {
                    sync_res = Some(r);
                } else if let Some(slot) = res.get_mut(tag as usize) {
                    *slot = r;
                }
            }
        }
        // Writes complete in order along the chain: count full writes, then
        // the first short or failed one ends this round.
        let mut wrote = 0usize;
        let mut broken = false;
        for i in 0..n {
            let r = res[i];
            if r < 0 {
                if r == -libc::ECANCELED && broken {
                    continue;
                }
                return Err(std::io::Error::from_raw_os_error(-r));
            }
            counters.writes.fetch_add(1, Ordering::Relaxed);
            wrote += r as usize;
            if (r as usize) < lens[i] {
                if r == 0 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::WriteZero,
                        "io_uring wrote nothing",
                    ));
                }
                broken = true;
            }
            if broken {
                // Later links were cancelled (or, if not, wrote bytes we will
                // simply write again at the same offsets).
                break;
            }
        }
        counters.bytes.fetch_add(wrote as u64, Ordering::Relaxed);
        done += wrote;
        match sync_res {
            Some(r) if r < 0 && r != -libc::ECANCELED => {
                return Err(std::io::Error::from_raw_os_error(-r));
            }
            Some(r) if r >= 0 && !broken => {
                counters.syncs.fetch_add(1, Ordering::Relaxed);
                debug_assert_eq!(done, data.len());
                return Ok(());
            }
            _ => {}
        }
        if !sync && done == data.len() {
            return Ok(());
        }
    }
}
