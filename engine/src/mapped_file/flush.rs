//! Making a mapped file's bytes durable: the pool mode's commit from its
//! buffer into the file, and the flush (msync) of written pages.

use super::{MappedFile, OS_PAGE_SIZE};
use crate::sync::LockExt;
use std::sync::atomic::Ordering;

use crate::error::{Error, Result};

impl MappedFile {
    /// Pool mode: write buffered bytes into the file when at least `least_pages`
    /// pages wait (any with 0; always when the file is full). Returns the committed
    /// position. The buffer goes back to the pool once the whole file is committed.
    pub fn commit(&self, least_pages: u32, backend: &crate::io::CommitBackend) -> Result<usize> {
        let _c = self.commit_lock.locked();
        let committed = self.committed_position.load(Ordering::Acquire);
        if !self.pooled.load(Ordering::Acquire) {
            return Ok(self.wrote_position());
        }
        let wrote = self.wrote_position();
        if wrote <= committed {
            return Ok(committed);
        }
        let full = wrote >= self.file_size;
        let ready = full
            || least_pages == 0
            || wrote / OS_PAGE_SIZE - committed / OS_PAGE_SIZE >= least_pages as usize;
        if !ready {
            return Ok(committed);
        }
        self.commit_locked(committed, wrote, backend, false)
    }

    /// Pool mode, SYNC_FLUSH: commit every buffered byte and make the file's
    /// data durable, in one backend call (on io_uring: the writes and an
    /// `fdatasync` linked behind them, one submission). Returns the new
    /// flushed position (which is then also the committed one). A file not in
    /// pool mode is flushed as usual.
    pub fn commit_and_sync(&self, backend: &crate::io::CommitBackend) -> Result<usize> {
        if !self.pooled.load(Ordering::Acquire) {
            return self.flush(0);
        }
        let _f = self.flush_lock.locked();
        let _c = self.commit_lock.locked();
        let flushed = self.flushed_position.load(Ordering::Acquire);
        let committed = self.committed_position.load(Ordering::Acquire);
        let wrote = self.wrote_position();
        if wrote <= flushed {
            return Ok(flushed);
        }
        self.commit_locked(committed, wrote, backend, true)?;
        let start = flushed / OS_PAGE_SIZE * OS_PAGE_SIZE;
        Ok(self.mark_synced(crate::io::hook_for(&self.path).as_deref(), start, wrote))
    }

    /// `[start, wrote)` is durable: tell the I/O hook, publish the flushed
    /// position. Caller holds `flush_lock`.
    fn mark_synced(
        &self,
        hook: Option<&dyn crate::io::IoHook>,
        start: usize,
        wrote: usize,
    ) -> usize {
        if let Some(h) = hook {
            h.synced(
                &self.path,
                start,
                self.bytes(start, wrote - start).unwrap_or(&[]),
            );
        }
        self.flushed_position.store(wrote, Ordering::Release);
        wrote
    }

    /// Write the buffer's `[committed, wrote)` (up to the blank record's end)
    /// into the file, with `sync` then `fdatasync` it; publish `wrote` as
    /// committed and give the buffer back once the file is full. Caller holds
    /// `commit_lock`.
    fn commit_locked(
        &self,
        committed: usize,
        wrote: usize,
        backend: &crate::io::CommitBackend,
        sync: bool,
    ) -> Result<usize> {
        let full = wrote >= self.file_size;
        let end = wrote.min(self.fill_end.load(Ordering::Acquire));
        let mut src: &[u8] = &[];
        if end > committed {
            let base = self.buf_ptr.load(Ordering::Acquire);
            if base.is_null() {
                return Err(Error::corruption(
                    &self.path,
                    committed as u64,
                    "pool buffer missing",
                ));
            }
            // SAFETY: `[committed, end)` is inside the buffer, written and published
            // by the writer (Acquire load of `wrote_position`), and never written
            // again; the buffer stays attached until this function detaches it
            // (the caller holds `commit_lock`, and only this function detaches).
            src = unsafe { std::slice::from_raw_parts(base.add(committed), end - committed) };
        }
        if !src.is_empty() || sync {
            let index = self.buf_index.load(Ordering::Acquire);
            backend.write_at(
                &self.file,
                &self.path,
                src,
                committed as u64,
                Some(index),
                sync,
            )?;
        }
        self.committed_position.store(wrote, Ordering::Release);
        if full {
            let _w = self.write_lock.locked();
            self.buf_ptr.store(std::ptr::null_mut(), Ordering::Release);
            // Dropping the buffer returns it to the pool.
            self.buffer.locked().take();
        }
        Ok(wrote)
    }

    /// Flush written bytes to disk if at least `least_pages` dirty pages wait
    /// (or any, with 0; or the file is full). Returns the new flushed position.
    pub fn flush(&self, least_pages: u32) -> Result<usize> {
        let _f = self.flush_lock.locked();
        let wrote = self.readable_position();
        let flushed = self.flushed_position.load(Ordering::Acquire);
        if wrote <= flushed {
            return Ok(flushed);
        }
        let full = wrote >= self.file_size;
        let ready = full
            || if least_pages > 0 {
                wrote / OS_PAGE_SIZE - flushed / OS_PAGE_SIZE >= least_pages as usize
            } else {
                true
            };
        if !ready {
            return Ok(flushed);
        }
        let start = flushed / OS_PAGE_SIZE * OS_PAGE_SIZE;
        let hook = crate::io::hook_for(&self.path);
        if let Some(h) = &hook {
            h.before_sync(&self.path, start, wrote - start)
                .map_err(|e| Error::io(format!("flushing {}", self.path.display()), e))?;
        }
        if self.unmap_before_flush.load(Ordering::Relaxed) {
            self.unmap_written(start, wrote);
        }
        self.mmap
            .flush_range(start, wrote - start)
            .map_err(|e| Error::io(format!("flushing {}", self.path.display()), e))?;
        Ok(self.mark_synced(hook.as_deref(), start, wrote))
    }

    /// Appends to this file store into the mapping: before each flush, drop the
    /// page-table entries of the whole pages written since the last one.
    pub fn set_unmap_before_flush(&self, on: bool) {
        self.unmap_before_flush.store(on, Ordering::Relaxed);
    }

    /// Drop this process's page-table entries for the whole pages in
    /// `[start, wrote)` (`MADV_DONTNEED`). Writing back a page still mapped
    /// writable means write-protecting its entry and flushing the TLB of every
    /// CPU running one of our threads, one interrupt per page: hundreds of
    /// thousands of interrupts per GiB flushed, landing on the producers'
    /// CPUs. Dropping the entries first costs one batched flush per call. For a
    /// shared file mapping the page cache keeps the bytes (a dirty entry's
    /// dirty bit moves to its page), and a later read refaults the same data.
    fn unmap_written(&self, start: usize, wrote: usize) {
        let end = wrote / OS_PAGE_SIZE * OS_PAGE_SIZE;
        if end <= start {
            return;
        }
        // SAFETY: `[start, end)` is page-aligned and inside the mapping owned by
        // `self`. It lies below the write position, so no writer stores there;
        // MADV_DONTNEED on a MAP_SHARED file mapping only removes page-table
        // entries (the VMA stays, so every address a reader holds stays valid
        // and refaults the same page-cache bytes).
        let _ =
            unsafe { libc::madvise(self.ptr.add(start).cast(), end - start, libc::MADV_DONTNEED) };
    }
}
