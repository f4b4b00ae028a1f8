//! The transient store pool (`transientStorePoolEnable`): pre-allocated buffers,
//! one commitlog file long each and locked in memory, that puts write into;
//! a commit service writes them to the file in batches, so puts never touch the
//! page cache of the file (no page faults, no write-protect faults after a sync).

use std::sync::{Arc, Mutex};

use memmap2::MmapMut;

use crate::error::{Error, Result};

struct PoolInner {
    free: Mutex<Vec<MmapMut>>,
    buffer_size: usize,
    total: usize,
}

/// A fixed set of locked buffers.
#[derive(Clone)]
pub struct TransientStorePool {
    inner: Arc<PoolInner>,
}

impl std::fmt::Debug for TransientStorePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransientStorePool")
            .field("buffers", &self.inner.total)
            .field("available", &self.available())
            .finish()
    }
}

impl TransientStorePool {
    /// Allocate `count` buffers of `buffer_size` bytes and lock them in memory.
    ///
    /// # Errors
    /// [`Error::Config`] naming `transientStorePoolSize` when the memory-lock
    /// limit (RLIMIT_MEMLOCK) forbids locking them, with the limit named;
    /// [`Error::Io`] when the memory cannot be had.
    pub fn new(count: usize, buffer_size: usize) -> Result<Self> {
        let mut free = Vec::with_capacity(count);
        for _ in 0..count {
            let m = MmapMut::map_anon(buffer_size).map_err(|e| {
                Error::io(format!("allocating a {buffer_size}-byte pool buffer"), e)
            })?;
            if let Err(e) = crate::sys::mlock(&m) {
                let limit = crate::sys::memlock_limit()
                    .map(|l| format!("{l} bytes"))
                    .unwrap_or_else(|| "unknown".into());
                return Err(Error::config(
                    "transientStorePoolSize",
                    count.to_string(),
                    format!(
                        "buffers that can be locked in memory ({count} x {buffer_size} bytes; \
                         mlock failed: {e}; RLIMIT_MEMLOCK is {limit}: raise it with `ulimit -l` \
                         or lower transientStorePoolSize / mappedFileSizeCommitLog)"
                    ),
                ));
            }
            free.push(m);
        }
        Ok(TransientStorePool {
            inner: Arc::new(PoolInner {
                free: Mutex::new(free),
                buffer_size,
                total: count,
            }),
        })
    }

    /// Take a buffer, if one is free.
    pub fn borrow(&self) -> Option<PoolBuffer> {
        let m = self
            .inner
            .free
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()?;
        Some(PoolBuffer {
            map: Some(m),
            pool: Arc::clone(&self.inner),
        })
    }

    /// Buffers free now.
    pub fn available(&self) -> usize {
        self.inner
            .free
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Buffers in the pool.
    pub fn total(&self) -> usize {
        self.inner.total
    }

    /// Buffer size in bytes.
    pub fn buffer_size(&self) -> usize {
        self.inner.buffer_size
    }
}

/// A borrowed buffer; it returns to its pool when dropped.
pub struct PoolBuffer {
    map: Option<MmapMut>,
    pool: Arc<PoolInner>,
}

impl PoolBuffer {
    /// Start of the buffer's memory, for writing. The memory does not move when
    /// the buffer does (it is a mapping).
    pub(crate) fn as_mut_ptr(&mut self) -> *mut u8 {
        self.map
            .as_mut()
            .map(|m| m.as_mut_ptr())
            .unwrap_or(std::ptr::null_mut())
    }
}

impl Drop for PoolBuffer {
    fn drop(&mut self) {
        if let Some(m) = self.map.take() {
            self.pool
                .free
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(m);
        }
    }
}
