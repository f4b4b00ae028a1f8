//! The I/O seam: hooks that see every durable file operation of a store, so that
//! tests can keep what was synced apart from what was only written (a simulated
//! power loss), or make a sync or a file creation fail (EIO, ENOSPC).
//!
//! A hook is installed for a store root directory and sees the operations on
//! files below it. With no hook installed the cost is one atomic load per
//! operation.

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
        let mut h = HOOKS.write().unwrap_or_else(|e| e.into_inner());
        h.retain(|(r, _)| r != &self.root);
        ANY.store(!h.is_empty(), Ordering::Release);
    }
}

/// Install `hook` for every store file below `root` until the guard drops.
pub fn install_hook(root: &Path, hook: Arc<dyn IoHook>) -> IoHookGuard {
    let root = root.to_path_buf();
    let mut h = HOOKS.write().unwrap_or_else(|e| e.into_inner());
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
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .find(|(root, _)| path.starts_with(root))
        .map(|(_, h)| Arc::clone(h))
}

/// How the transient store pool's commit service writes to files.
pub struct CommitBackend {
    ring: Option<std::sync::Mutex<io_uring::IoUring>>,
    why_not_uring: Option<String>,
}

impl std::fmt::Debug for CommitBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl CommitBackend {
    /// io_uring when `want_uring` and the kernel allows it, else `pwrite`. The
    /// reason for a fallback is logged once and kept for stats.
    pub fn new(want_uring: bool) -> Self {
        if !want_uring {
            return CommitBackend {
                ring: None,
                why_not_uring: Some("ioUringEnable=false".into()),
            };
        }
        match io_uring::IoUring::new(8) {
            Ok(ring) => CommitBackend {
                ring: Some(std::sync::Mutex::new(ring)),
                why_not_uring: None,
            },
            Err(e) => {
                tracing::warn!(error = %e, "io_uring unavailable; the commit service uses pwrite");
                CommitBackend {
                    ring: None,
                    why_not_uring: Some(format!("io_uring setup failed: {e}")),
                }
            }
        }
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

    /// Write all of `data` at `offset` of `file`.
    pub(crate) fn write_all_at(
        &self,
        file: &std::fs::File,
        path: &Path,
        data: &[u8],
        offset: u64,
    ) -> crate::Result<()> {
        if let Some(h) = hook_for(path) {
            h.before_sync(path, offset as usize, data.len())
                .map_err(|e| crate::Error::io(format!("committing to {}", path.display()), e))?;
        }
        let r = match &self.ring {
            Some(ring) => {
                let mut ring = ring.lock().unwrap_or_else(|e| e.into_inner());
                uring_write_all(&mut ring, file, data, offset)
            }
            None => {
                use std::os::unix::fs::FileExt;
                file.write_all_at(data, offset)
            }
        };
        r.map_err(|e| crate::Error::io(format!("committing to {}", path.display()), e))
    }
}

/// Write all of `data` through the ring, one write at a time, waiting for each.
fn uring_write_all(
    ring: &mut io_uring::IoUring,
    file: &std::fs::File,
    mut data: &[u8],
    mut offset: u64,
) -> std::io::Result<()> {
    use std::os::unix::io::AsRawFd;
    while !data.is_empty() {
        let len = data.len().min(1 << 30) as u32;
        let sqe =
            io_uring::opcode::Write::new(io_uring::types::Fd(file.as_raw_fd()), data.as_ptr(), len)
                .offset(offset)
                .build()
                .user_data(0x0c0111);
        // SAFETY: the entry points at `data` and `file`, both borrowed for this
        // whole function, which waits for the completion below before returning;
        // so the buffer and descriptor outlive the kernel's use of them.
        #[allow(unsafe_code)]
        unsafe {
            ring.submission()
                .push(&sqe)
                .map_err(|_| std::io::Error::other("io_uring submission queue full"))?;
        }
        ring.submit_and_wait(1)?;
        let cqe = ring
            .completion()
            .next()
            .ok_or_else(|| std::io::Error::other("io_uring completion missing"))?;
        let res = cqe.result();
        if res < 0 {
            return Err(std::io::Error::from_raw_os_error(-res));
        }
        if res == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::WriteZero,
                "io_uring wrote nothing",
            ));
        }
        data = &data[res as usize..];
        offset += res as u64;
    }
    Ok(())
}
