//! The end of a mapped file's life and recovery-time surgery: truncating a
//! torn tail, deleting, releasing a still-mapped deleted file, rewriting
//! bytes in place.

use super::MappedFile;
use crate::sync::LockExt;
use std::sync::atomic::Ordering;

use crate::error::{Error, Result};

/// Bytes zeroed per `pwrite` by [`MappedFile::truncate_live`].
const ZERO_CHUNK: usize = 1 << 20;

impl MappedFile {
    /// Recovery only: set the write and flush positions to `pos` and zero
    /// `zero_len` bytes after it (a torn record), then sync that range.
    /// Takes `&mut self`, so no reader or writer can hold the file.
    pub fn truncate_to(&mut self, pos: usize, zero_len: usize) -> Result<()> {
        let pos = pos.min(self.file_size);
        let end = pos.saturating_add(zero_len).min(self.file_size);
        if end > pos {
            // SAFETY: `&mut self` guarantees no other access; the range is inside the mapping.
            unsafe { std::ptr::write_bytes(self.ptr.add(pos), 0, end - pos) };
            self.mmap.flush_range(pos, end - pos).map_err(|e| {
                Error::io(format!("syncing truncation of {}", self.path.display()), e)
            })?;
            if let Some(h) = crate::io::hook_for(&self.path) {
                h.synced(&self.path, pos, &vec![0u8; end - pos]);
            }
        }
        *self.wrote_position.get_mut() = pos;
        *self.flushed_position.get_mut() = pos;
        *self.committed_position.get_mut() = pos;
        Ok(())
    }

    /// Live truncation (a slave cutting its log back to where it agrees with a
    /// new master): move the write, flush and commit positions back to `pos`
    /// and zero the bytes from `pos` to the old write position through the
    /// descriptor (`pwrite`, then `fdatasync`), so that a crash never brings
    /// them back. Readers loading the write position from now on see only
    /// `[0, pos)`; a reader that loaded it before may still hold a slice of
    /// the zeroed range and see old bytes, zeros, or bytes appended after the
    /// truncation, as with [`MappedFile::rewrite_via_fd`] (see the module
    /// invariants). Appends wait for it (the write lock).
    ///
    /// # Errors
    /// `pos` beyond the write position, a pool-mode file (its buffer holds
    /// uncommitted bytes: only masters use the pool), or a failed write or sync.
    pub fn truncate_live(&self, pos: usize) -> Result<()> {
        use std::os::unix::fs::FileExt;
        let _w = self.write_lock.locked();
        let _c = self.commit_lock.locked();
        if self.pooled.load(Ordering::Acquire) {
            return Err(Error::corruption(
                &self.path,
                pos as u64,
                "live truncation of a transient-store-pool file (pool files serve masters only)",
            ));
        }
        let old = self.wrote_position.load(Ordering::Acquire);
        if pos > old {
            return Err(Error::corruption(
                &self.path,
                pos as u64,
                format!("truncation beyond the written bytes (written up to {old})"),
            ));
        }
        if pos == old {
            return Ok(());
        }
        self.wrote_position.store(pos, Ordering::Release);
        self.flushed_position.fetch_min(pos, Ordering::AcqRel);
        self.committed_position.fetch_min(pos, Ordering::AcqRel);
        // A blank end record, if there was one, was after `pos`: gone.
        self.fill_end.store(usize::MAX, Ordering::Release);
        let hook = crate::io::hook_for(&self.path);
        let zeros = vec![0u8; ZERO_CHUNK.min(old - pos)];
        let io = |e| Error::io(format!("zeroing the truncated tail of {}", self.path.display()), e);
        let mut at = pos;
        while at < old {
            let len = (old - at).min(zeros.len());
            if let Some(h) = &hook {
                h.before_sync(&self.path, at, len).map_err(io)?;
            }
            self.file.write_all_at(&zeros[..len], at as u64).map_err(io)?;
            at += len;
        }
        self.sync_data()?;
        if let Some(h) = &hook {
            let mut at = pos;
            while at < old {
                let len = (old - at).min(zeros.len());
                h.synced(&self.path, at, &zeros[..len]);
                at += len;
            }
        }
        Ok(())
    }

    /// Recovery only: mark `pos` as the write position without changing bytes.
    pub fn set_positions(&mut self, pos: usize) {
        let pos = pos.min(self.file_size);
        *self.wrote_position.get_mut() = pos;
        *self.flushed_position.get_mut() = pos;
        *self.committed_position.get_mut() = pos;
    }

    /// Remove the file from disk; the mapping goes when the last holder drops it.
    pub fn delete_file(&self) -> Result<()> {
        if self.deleted.load(Ordering::Acquire) {
            return Ok(());
        }
        let hook = crate::io::hook_for(&self.path);
        if let Some(h) = &hook {
            h.before_remove(&self.path)
                .map_err(|e| Error::io(format!("deleting {}", self.path.display()), e))?;
        }
        match std::fs::remove_file(&self.path) {
            Ok(()) => {
                if let Some(h) = &hook {
                    h.removed(&self.path);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(format!("deleting {}", self.path.display()), e)),
        }
        self.deleted.store(true, Ordering::Release);
        Ok(())
    }

    /// True once the file has been removed from disk.
    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    /// True once [`MappedFile::release_forcibly`] replaced the file's pages by zeros.
    pub fn is_released(&self) -> bool {
        self.released.load(Ordering::Acquire)
    }

    /// Give a deleted file's memory and disk blocks back now, although readers
    /// may still hold its bytes (`destroyMapedFileIntervalForcibly` has passed).
    ///
    /// The mapping's pages are replaced, in place, by an anonymous private
    /// mapping of zeros over the same address range, then the (already
    /// unlinked) file is truncated to length 0, which frees its blocks even
    /// though this process still holds its descriptor. A reader that still
    /// holds a slice keeps valid, readable memory and sees zeros from then on
    /// (a record of zeros fails to decode: corruption, never a bad message).
    ///
    /// Refused (an error, nothing changed) unless the file was deleted first.
    pub fn release_forcibly(&self) -> Result<()> {
        if !self.is_deleted() {
            return Err(Error::io(
                format!("releasing {}", self.path.display()),
                std::io::Error::other("the file must be deleted before it is released"),
            ));
        }
        // No writer, flusher or committer may touch the range while it changes.
        let _w = self.write_lock.locked();
        let _f = self.flush_lock.locked();
        let _c = self.commit_lock.locked();
        if self.released.load(Ordering::Acquire) {
            return Ok(());
        }
        // SAFETY: `ptr` is the page-aligned start of the `file_size`-byte mapping
        // owned by `self.mmap` (mapped at file offset 0, so memmap2 added no
        // alignment slack), and that mapping is still in place: it is unmapped
        // only when `self.mmap` drops. MAP_FIXED replaces exactly those pages,
        // atomically per page, with a new readable and writable anonymous mapping,
        // so every address a reader may hold (`[ptr, ptr + file_size)`) stays
        // mapped the whole time; there is no moment at which it is unmapped or
        // reusable by another allocation. When `self.mmap` drops it unmaps the
        // same range, now the anonymous one. The file is deleted and out of its
        // queue, so nothing writes there any more (and the locks above keep out
        // the writer, flusher and committer meanwhile). Readers that hold `&[u8]`
        // into the range see its bytes turn to zeros: this is the same kind of
        // change behind a shared slice as any shared file mapping allows, which
        // is why every reader checks a record's CRC before it trusts it.
        // (MAP_NORESERVE keeps overcommit accounting from failing the call; a
        // kernel older than 6.12 that failed it after discarding the old pages
        // would leave a hole, which is reported below and never papered over.)
        let p = unsafe {
            libc::mmap(
                self.ptr.cast(),
                self.file_size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_FIXED | libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED || p.cast::<u8>() != self.ptr {
            return Err(Error::io(
                format!("replacing the mapping of {}", self.path.display()),
                std::io::Error::last_os_error(),
            ));
        }
        self.released.store(true, Ordering::Release);
        // Nothing maps the file any more: truncating it cannot fault a reader,
        // and it frees the blocks of the unlinked file while the fd is open.
        self.file
            .set_len(0)
            .map_err(|e| Error::io(format!("truncating {}", self.path.display()), e))?;
        Ok(())
    }

    /// Rewrite `data` at `pos`, below the write position, through the
    /// descriptor (`pwrite`, then `fdatasync`): a repair of damaged consume-queue
    /// units. The page cache is shared with the mapping, so readers see the new
    /// bytes; a reader racing the write may see a mix of old and new bytes, as
    /// with any change made to the file from outside, which is why every read
    /// checks a unit against its record.
    ///
    /// # Errors
    /// The range is not below the write position, or the write or sync failed.
    pub fn rewrite_via_fd(&self, pos: usize, data: &[u8]) -> Result<()> {
        use std::os::unix::fs::FileExt;
        if pos + data.len() > self.wrote_position() {
            return Err(Error::corruption(
                &self.path,
                pos as u64,
                "rewrite beyond the written bytes",
            ));
        }
        let hook = crate::io::hook_for(&self.path);
        if let Some(h) = &hook {
            h.before_sync(&self.path, pos, data.len())
                .map_err(|e| Error::io(format!("rewriting {}", self.path.display()), e))?;
        }
        self.file
            .write_all_at(data, pos as u64)
            .map_err(|e| Error::io(format!("rewriting {}", self.path.display()), e))?;
        self.sync_data()?;
        if let Some(h) = &hook {
            h.synced(&self.path, pos, data);
        }
        Ok(())
    }

    /// Sync the file's data with `fdatasync` (used after truncations).
    pub fn sync_data(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| Error::io(format!("fdatasync {}", self.path.display()), e))
    }
}
