//! Paging advice for a mapped file: pre-faulting for writes, read-ahead for
//! the recovery walk, and back to normal.

use super::{MappedFile, OS_PAGE_SIZE};
use crate::sync::LockExt;
use std::os::unix::io::AsRawFd;
use std::sync::atomic::Ordering;

impl MappedFile {
    /// Pre-fault every page from the write position on by writing a zero byte to
    /// it (`warmMapedFileEnable`), so that later appends do not page-fault.
    pub fn warm(&self) {
        let _w = self.write_lock.locked();
        let start = self
            .wrote_position
            .load(Ordering::Acquire)
            .div_ceil(OS_PAGE_SIZE)
            * OS_PAGE_SIZE;
        let mut pos = start;
        while pos < self.file_size {
            // SAFETY: `pos` is inside the mapping, beyond the write position (no
            // reader looks there) and we hold `write_lock`.
            unsafe { self.ptr.add(pos).write_volatile(0) };
            pos += OS_PAGE_SIZE;
        }
    }

    /// Tell the kernel the whole file is about to be read once, front to back
    /// (recovery's walk): `MADV_SEQUENTIAL` (larger read-ahead, pages dropped
    /// behind) and, with `prefetch`, `MADV_WILLNEED` (start reading it now, so
    /// the disk works while the CPU checks the file before). Advice only: errors
    /// are ignored and contents never change.
    pub fn advise_sequential_read(&self, prefetch: bool) {
        let advices: &[libc::c_int] = if prefetch {
            &[libc::MADV_SEQUENTIAL, libc::MADV_WILLNEED]
        } else {
            &[libc::MADV_SEQUENTIAL]
        };
        for advice in advices {
            // SAFETY: the range is exactly the mapping owned by `self`; these
            // advices only steer read-ahead and never change memory contents.
            let _ = unsafe { libc::madvise(self.ptr.cast(), self.file_size, *advice) };
        }
    }

    /// Read `[from, from + len)` of the file into the page cache and map it
    /// readable now (`MADV_POPULATE_READ`), so a later walk over it neither
    /// waits for the disk nor takes page faults. Best effort: an error (an old
    /// kernel) is ignored, the walk then faults the pages in itself.
    pub fn populate_read(&self, from: usize, len: usize) {
        let start = from / OS_PAGE_SIZE * OS_PAGE_SIZE;
        let end = from.saturating_add(len).min(self.file_size);
        if end <= start {
            return;
        }
        // SAFETY: `[start, end)` lies inside the mapping owned by `self`;
        // MADV_POPULATE_READ only faults pages in for reading.
        let _ = unsafe {
            libc::madvise(
                self.ptr.add(start).cast(),
                end - start,
                libc::MADV_POPULATE_READ,
            )
        };
    }

    /// Start reading `[from, from + len)` of the file into the page cache
    /// without waiting for it (`POSIX_FADV_WILLNEED`), so that the disk works
    /// on it while the caller handles the bytes before it. Best effort.
    pub fn will_need(&self, from: usize, len: usize) {
        let end = from.saturating_add(len).min(self.file_size);
        if end <= from {
            return;
        }
        // SAFETY: posix_fadvise takes the descriptor `self.file` owns and plain
        // integers; it touches no memory of ours.
        let _ = unsafe {
            libc::posix_fadvise(
                self.file.as_raw_fd(),
                from as libc::off_t,
                (end - from) as libc::off_t,
                libc::POSIX_FADV_WILLNEED,
            )
        };
    }

    /// Undo [`MappedFile::advise_sequential_read`]: back to `MADV_NORMAL`.
    pub fn advise_normal_read(&self) {
        // SAFETY: as in `advise_sequential_read`; MADV_NORMAL only resets read-ahead.
        let _ = unsafe { libc::madvise(self.ptr.cast(), self.file_size, libc::MADV_NORMAL) };
    }

    /// Pre-fault `[from, from+len)` of the mapping writable (`MADV_POPULATE_WRITE`,
    /// falling back to `MADV_POPULATE_READ` on kernels without it), so that page-cache
    /// allocation, zeroing and the filesystem's page_mkwrite happen now, off the put
    /// path. Never changes file contents, so it may run beside the writer.
    pub fn prefault(&self, from: usize, len: usize) -> std::io::Result<()> {
        let start = from / OS_PAGE_SIZE * OS_PAGE_SIZE;
        let end = from.saturating_add(len).min(self.file_size);
        if end <= start {
            return Ok(());
        }
        for advice in [libc::MADV_POPULATE_WRITE, libc::MADV_POPULATE_READ] {
            // SAFETY: the range lies inside the mapping owned by `self`; the
            // populate advices only fault in page tables and never write memory.
            let rc = unsafe { libc::madvise(self.ptr.add(start).cast(), end - start, advice) };
            if rc == 0 {
                return Ok(());
            }
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINVAL) {
                return Err(e);
            }
        }
        Err(std::io::Error::from_raw_os_error(libc::EINVAL))
    }
}
