//! The transient store pool (`transientStorePoolEnable`): pre-allocated buffers,
//! one commitlog file long each and locked in memory, that puts write into;
//! a commit service writes them to the file in batches, so puts never touch the
//! page cache of the file (no page faults, no write-protect faults after a sync).

use crate::sync::LockExt;
use std::sync::{Arc, Mutex};

use memmap2::MmapMut;

use crate::error::{Error, Result};

struct PoolInner {
    /// Free buffers with their index (their place in `regions`).
    free: Mutex<Vec<(u16, MmapMut)>>,
    /// Start and length of every buffer, by index. The memory does not move or
    /// go away while the pool lives: a buffer is only ever moved between `free`
    /// and a [`PoolBuffer`], both of which keep `PoolInner` alive.
    regions: Vec<(usize, usize)>,
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
        if count > usize::from(u16::MAX) {
            return Err(Error::config(
                "transientStorePoolSize",
                count.to_string(),
                format!("a buffer count of at most {}", u16::MAX),
            ));
        }
        let mut free = Vec::with_capacity(count);
        let mut regions = Vec::with_capacity(count);
        for i in 0..count {
            let mut m = MmapMut::map_anon(buffer_size).map_err(|e| {
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
            regions.push((m.as_mut_ptr() as usize, m.len()));
            free.push((i as u16, m));
        }
        // Hand out low indexes first.
        free.reverse();
        Ok(TransientStorePool {
            inner: Arc::new(PoolInner {
                free: Mutex::new(free),
                regions,
                buffer_size,
                total: count,
            }),
        })
    }

    /// Take a buffer, if one is free.
    pub fn borrow(&self) -> Option<PoolBuffer> {
        let (index, m) = self.inner.free.locked().pop()?;
        Some(PoolBuffer {
            map: Some(m),
            index,
            pool: Arc::clone(&self.inner),
        })
    }

    /// Buffers free now.
    pub fn available(&self) -> usize {
        self.inner.free.locked().len()
    }

    /// Buffers in the pool.
    pub fn total(&self) -> usize {
        self.inner.total
    }

    /// Buffer size in bytes.
    pub fn buffer_size(&self) -> usize {
        self.inner.buffer_size
    }

    /// Start address and length of every buffer, by index: what io_uring
    /// registers as fixed buffers. Valid while any clone of the pool (or any
    /// buffer borrowed from it) lives.
    pub(crate) fn regions(&self) -> &[(usize, usize)] {
        &self.inner.regions
    }
}

/// A borrowed buffer; it returns to its pool when dropped.
pub struct PoolBuffer {
    map: Option<MmapMut>,
    index: u16,
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

    /// The buffer's index in its pool (its io_uring fixed-buffer index).
    pub(crate) fn index(&self) -> u16 {
        self.index
    }
}

impl Drop for PoolBuffer {
    fn drop(&mut self) {
        if let Some(m) = self.map.take() {
            self.pool.free.locked().push((self.index, m));
        }
    }
}
