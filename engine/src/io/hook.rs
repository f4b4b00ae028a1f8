//! The test I/O hook: observers that see every durable file operation of a
//! store, so that tests can keep what was synced apart from what was only
//! written (a simulated power loss), or make a sync or a file creation fail.
//!
//! Installing hooks needs the `fault-injection` cargo feature (off by default;
//! the engine's own tests turn it on). Without it [`hook_for`] is a constant
//! `None`, so a release build has no hook lookup on any file operation.

#[cfg(feature = "fault-injection")]
use crate::sync::RwLockExt;
use std::path::Path;
#[cfg(feature = "fault-injection")]
use std::path::PathBuf;
#[cfg(feature = "fault-injection")]
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
#[cfg(feature = "fault-injection")]
use std::sync::RwLock;

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

#[cfg(feature = "fault-injection")]
type Registry = RwLock<Vec<(PathBuf, Arc<dyn IoHook>)>>;

#[cfg(feature = "fault-injection")]
static ANY: AtomicBool = AtomicBool::new(false);
#[cfg(feature = "fault-injection")]
static HOOKS: Registry = RwLock::new(Vec::new());

/// Removes its hook when dropped.
#[cfg(feature = "fault-injection")]
#[must_use = "the hook is removed when the guard is dropped"]
pub struct IoHookGuard {
    root: PathBuf,
}

#[cfg(feature = "fault-injection")]
impl Drop for IoHookGuard {
    fn drop(&mut self) {
        let mut h = HOOKS.write_locked();
        h.retain(|(r, _)| r != &self.root);
        ANY.store(!h.is_empty(), Ordering::Release);
    }
}

/// Install `hook` for every store file below `root` until the guard drops.
#[cfg(feature = "fault-injection")]
pub fn install_hook(root: &Path, hook: Arc<dyn IoHook>) -> IoHookGuard {
    let root = root.to_path_buf();
    let mut h = HOOKS.write_locked();
    h.push((root.clone(), hook));
    ANY.store(true, Ordering::Release);
    IoHookGuard { root }
}

/// The hook responsible for `path`, if any.
#[cfg(feature = "fault-injection")]
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

/// Without the `fault-injection` feature no hook can be installed: always
/// `None`, inlined away at every call site.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub(crate) fn hook_for(_path: &Path) -> Option<Arc<dyn IoHook>> {
    None
}
