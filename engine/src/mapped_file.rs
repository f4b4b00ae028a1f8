//! One memory-mapped file of a log: write, flush and read positions.
//!
//! All of the engine's `unsafe` code for memory mapping lives in this module.
//!
//! Invariants that make the raw access sound:
//! - The mapping is created from a file whose blocks are allocated first
//!   (`posix_fallocate`), so a store into it never faults with SIGBUS on a full disk.
//! - Bytes below `wrote_position` are never written again while the file is
//!   shared; readers only ever see `[0, wrote_position)`, loaded with `Acquire`
//!   after the writer published it with `Release`.
//! - Writes beyond `wrote_position` happen only while holding `write_lock`, so
//!   there is at most one writer per file.
//! - The mapping lives as long as the `MappedFile`; readers hold an `Arc` to it
//!   (see [`MappedBytes`]), so memory is unmapped only after the last reader lets go.
//! - A deleted file still held past `destroyMapedFileIntervalForcibly` is released
//!   by [`MappedFile::release_forcibly`]: its pages are replaced in place by an
//!   anonymous zero mapping of the same address range (so the range stays valid
//!   memory) before the file is truncated, so a late reader sees zeros, never
//!   freed memory and never a SIGBUS.

#![allow(unsafe_code)]

use crate::sync::LockExt;
use std::fs::{File, OpenOptions};
use std::ops::Deref;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use memmap2::{MmapMut, MmapOptions};

use crate::error::{Error, Result};

/// The OS page size the flush rules count in (RocketMQ's `OS_PAGE_SIZE`).
pub const OS_PAGE_SIZE: usize = 4096;

/// How far past its end an append prefetches the next appends' cache lines
/// for writing. Each append asks for the lines its own length moves this
/// window by, so every line is asked for about once. 8 KiB: see
/// docs/perf-notes.md#write-prefetch-ahead.
const WRITE_PREFETCH_AHEAD: usize = 8 << 10;

/// One mapped file.
pub struct MappedFile {
    path: PathBuf,
    file: File,
    file_from_offset: u64,
    file_size: usize,
    ptr: *mut u8,
    mmap: MmapMut,
    wrote_position: AtomicUsize,
    flushed_position: AtomicUsize,
    write_lock: Mutex<()>,
    flush_lock: Mutex<()>,
    last_write_ms: AtomicI64,
    deleted: AtomicBool,
    /// The file's pages were replaced by zeros and its blocks freed.
    released: AtomicBool,
    /// Appends store into the mapping: drop the written pages' page-table
    /// entries before a flush writes them back (see [`MappedFile::flush`]).
    unmap_before_flush: AtomicBool,
    /// Pool mode (`transientStorePoolEnable`): appends land in this buffer and
    /// `commit` writes them into the file; readers see only committed bytes.
    buffer: Mutex<Option<crate::pool::PoolBuffer>>,
    /// The buffer's memory while attached (null otherwise); set and cleared under
    /// `write_lock`.
    buf_ptr: std::sync::atomic::AtomicPtr<u8>,
    /// The attached buffer's index in its pool (io_uring fixed-buffer index).
    buf_index: std::sync::atomic::AtomicU16,
    pooled: AtomicBool,
    committed_position: AtomicUsize,
    /// End of the blank record in pool mode: bytes after it are never written.
    fill_end: AtomicUsize,
    commit_lock: Mutex<()>,
}

// SAFETY: the raw pointer refers to the mapping owned by `mmap`, which lives as
// long as `self`. Concurrent access follows the module invariants: one writer at
// a time beyond `wrote_position` (serialized by `write_lock`), readers only below
// the published `wrote_position`, which never changes bytes below it.
unsafe impl Send for MappedFile {}
// SAFETY: see `Send`; every shared-state field is atomic or behind a mutex.
unsafe impl Sync for MappedFile {}

impl std::fmt::Debug for MappedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedFile")
            .field("path", &self.path)
            .field("from", &self.file_from_offset)
            .field("wrote", &self.wrote_position())
            .field("flushed", &self.flushed_position())
            .finish()
    }
}

/// Name of a log file: its start offset in 20 decimal digits.
pub fn file_name(offset: u64) -> String {
    format!("{offset:020}")
}

/// Parse a 20-digit file name into its start offset.
pub fn parse_file_name(name: &str) -> Option<u64> {
    if name.len() == 20 && name.bytes().all(|b| b.is_ascii_digit()) {
        name.parse().ok()
    } else {
        None
    }
}

impl MappedFile {
    /// Create a new file of `file_size` bytes with all its blocks allocated, and map it.
    ///
    /// The file is made under a `.tmp` name, allocated, then renamed, so a crash
    /// never leaves a log file of the wrong length behind.
    pub fn create(dir: &Path, file_from_offset: u64, file_size: usize) -> Result<MappedFile> {
        let path = dir.join(file_name(file_from_offset));
        if path.exists() {
            // Made earlier but never written (a pre-allocated file): reuse it.
            let mut f = Self::open(&path, file_from_offset, file_size)?;
            if f.bytes(0, 8.min(file_size))
                .is_some_and(|b| b.iter().any(|x| *x != 0))
            {
                return Err(Error::corruption(
                    &path,
                    0,
                    "a new log file would overwrite one that holds data",
                ));
            }
            f.set_positions(0);
            return Ok(f);
        }
        let hook = crate::io::hook_for(&path);
        if let Some(h) = &hook {
            h.before_create(&path, file_size)
                .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
        }
        let tmp = dir.join(format!("{}.tmp", file_name(file_from_offset)));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| Error::io(format!("creating {}", tmp.display()), e))?;
        if let Err(e) = allocate(&file, file_size) {
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::io(
                format!("allocating {file_size} bytes for {}", path.display()),
                e,
            ));
        }
        std::fs::rename(&tmp, &path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::io(
                format!("renaming {} to {}", tmp.display(), path.display()),
                e,
            )
        })?;
        sync_dir(dir)?;
        if let Some(h) = &hook {
            h.created(&path, file_size);
        }
        Self::map(path, file, file_from_offset, file_size, 0)
    }

    /// Map an existing file, which must be exactly `file_size` bytes long.
    /// Its write position starts at `file_size` (full) until recovery sets it.
    pub fn open(path: &Path, file_from_offset: u64, file_size: usize) -> Result<MappedFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io(format!("stat {}", path.display()), e))?
            .len();
        if len != file_size as u64 {
            return Err(Error::corruption(
                path,
                0,
                format!("file length is {len}, expected {file_size} (mapped file size setting)"),
            ));
        }
        Self::map(
            path.to_path_buf(),
            file,
            file_from_offset,
            file_size,
            file_size,
        )
    }

    fn map(
        path: PathBuf,
        file: File,
        file_from_offset: u64,
        file_size: usize,
        position: usize,
    ) -> Result<MappedFile> {
        // SAFETY: the file is opened read-write by this process and its length is
        // `file_size` with blocks allocated. Other processes are kept out by the
        // store's lock file; within this process only this `MappedFile` maps it.
        let mut mmap = unsafe { MmapOptions::new().len(file_size).map_mut(&file) }
            .map_err(|e| Error::io(format!("mapping {}", path.display()), e))?;
        let ptr = mmap.as_mut_ptr();
        let mtime = file
            .metadata()
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Ok(MappedFile {
            path,
            file,
            file_from_offset,
            file_size,
            ptr,
            mmap,
            wrote_position: AtomicUsize::new(position),
            flushed_position: AtomicUsize::new(position),
            write_lock: Mutex::new(()),
            flush_lock: Mutex::new(()),
            last_write_ms: AtomicI64::new(mtime),
            deleted: AtomicBool::new(false),
            released: AtomicBool::new(false),
            unmap_before_flush: AtomicBool::new(false),
            buffer: Mutex::new(None),
            buf_ptr: std::sync::atomic::AtomicPtr::new(std::ptr::null_mut()),
            buf_index: std::sync::atomic::AtomicU16::new(0),
            pooled: AtomicBool::new(false),
            committed_position: AtomicUsize::new(position),
            fill_end: AtomicUsize::new(usize::MAX),
            commit_lock: Mutex::new(()),
        })
    }

    /// Path of the file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Log offset of the file's first byte.
    pub fn file_from_offset(&self) -> u64 {
        self.file_from_offset
    }

    /// File size in bytes.
    pub fn file_size(&self) -> usize {
        self.file_size
    }

    /// Bytes written (and visible to readers).
    pub fn wrote_position(&self) -> usize {
        self.wrote_position.load(Ordering::Acquire)
    }

    /// Bytes known durable.
    pub fn flushed_position(&self) -> usize {
        self.flushed_position.load(Ordering::Acquire)
    }

    /// True when no byte can be appended any more.
    pub fn is_full(&self) -> bool {
        self.wrote_position() >= self.file_size
    }

    /// Space left for appends.
    pub fn remaining(&self) -> usize {
        self.file_size - self.wrote_position()
    }

    /// Record the time of the last append (ms since the epoch).
    pub fn set_last_write_ms(&self, ms: i64) {
        self.last_write_ms.store(ms, Ordering::Relaxed);
    }

    /// Milliseconds since the epoch of the last append (or the file's mtime at open).
    pub fn last_write_ms(&self) -> i64 {
        self.last_write_ms.load(Ordering::Relaxed)
    }

    /// Append `data` at the write position. Returns the in-file position it was
    /// written at, or `None` (nothing written) when it does not fit.
    pub fn append(&self, data: &[u8]) -> Option<usize> {
        self.append_with(data, |_, _| {})
    }

    /// Append `data`, letting `patch` change the copy in place (given the bytes
    /// and their in-file position) before it becomes visible to readers.
    pub fn append_with(&self, data: &[u8], patch: impl FnOnce(&mut [u8], usize)) -> Option<usize> {
        self.append_in_place(data.len(), |dst, pos| {
            dst.copy_from_slice(data);
            patch(dst, pos);
        })
    }

    /// Append `len` bytes that `fill` writes straight into the file (given the
    /// space and its in-file position), so a record is encoded once, in place,
    /// instead of encoded elsewhere and copied. `fill` must write every byte.
    /// The bytes become visible to readers only after `fill` returns.
    pub fn append_in_place(
        &self,
        len: usize,
        fill: impl FnOnce(&mut [u8], usize),
    ) -> Option<usize> {
        let _w = self.write_lock.locked();
        let pos = self.wrote_position.load(Ordering::Acquire);
        if len > self.file_size - pos {
            return None;
        }
        let base = self.write_target();
        // SAFETY: `[pos, pos+len)` lies inside the mapping or the attached pool
        // buffer (both `file_size` long; checked above) and at or beyond
        // `wrote_position`, where no reader or committer looks; `write_lock` makes
        // this the only writer. The slice does not outlive this block.
        let dst = unsafe { std::slice::from_raw_parts_mut(base.add(pos), len) };
        fill(dst, pos);
        self.wrote_position.store(pos + len, Ordering::Release);
        // The next appends' cache lines, fetched for writing now: the copy of
        // the next record then finds them in this core's cache instead of
        // waiting for each to arrive (on the first locked instruction after
        // it, the unlock, every store must have reached the cache).
        let end = pos + len;
        let from = (end + WRITE_PREFETCH_AHEAD).saturating_sub(len).max(end) & !63;
        let to = (end + WRITE_PREFETCH_AHEAD).min(self.file_size);
        for line in (from..to).step_by(64) {
            crate::sys::prefetch_write(base.wrapping_add(line));
        }
        Some(pos)
    }

    /// Like [`MappedFile::append_in_place`], but the bytes reach the file with
    /// `pwrite` through the descriptor instead of a store into the mapping
    /// (`fill` writes them into `scratch` first). The page cache is the same, so
    /// readers of the mapping see them; what changes is that this process never
    /// dirties the pages through its page tables, so writing them back (every
    /// SYNC_FLUSH sync) need not write-protect page-table entries and shoot down
    /// other CPUs' TLBs first.
    ///
    /// # Errors
    ///
    /// The `pwrite` failed; nothing became visible (the write position stays).
    pub fn append_via_fd(
        &self,
        len: usize,
        scratch: &mut Vec<u8>,
        fill: impl FnOnce(&mut [u8], usize),
    ) -> Result<Option<usize>> {
        let _w = self.write_lock.locked();
        let pos = self.wrote_position.load(Ordering::Acquire);
        if len > self.file_size - pos {
            return Ok(None);
        }
        scratch.clear();
        scratch.resize(len, 0);
        fill(scratch, pos);
        use std::os::unix::fs::FileExt;
        self.file
            .write_all_at(scratch, pos as u64)
            .map_err(|e| Error::io(format!("writing {}", self.path.display()), e))?;
        self.wrote_position.store(pos + len, Ordering::Release);
        Ok(Some(pos))
    }

    /// Write `data` at the write position and then mark the file full: used for
    /// the blank record at a commitlog file's tail (the rest stays zero).
    pub fn append_and_fill(&self, data: &[u8]) -> bool {
        let _w = self.write_lock.locked();
        let pos = self.wrote_position.load(Ordering::Acquire);
        if data.len() > self.file_size - pos {
            return false;
        }
        let base = self.write_target();
        // SAFETY: as in `append_with`.
        let dst = unsafe { std::slice::from_raw_parts_mut(base.add(pos), data.len()) };
        dst.copy_from_slice(data);
        self.fill_end.store(pos + data.len(), Ordering::Release);
        self.wrote_position.store(self.file_size, Ordering::Release);
        true
    }

    /// Where appends go: the pool buffer when attached, else the mapping.
    /// Call with `write_lock` held.
    fn write_target(&self) -> *mut u8 {
        let b = self.buf_ptr.load(Ordering::Acquire);
        if b.is_null() {
            self.ptr
        } else {
            b
        }
    }

    /// Bytes readers may see: committed bytes in pool mode, else written bytes.
    pub fn readable_position(&self) -> usize {
        if self.pooled.load(Ordering::Acquire) {
            self.committed_position.load(Ordering::Acquire)
        } else {
            self.wrote_position()
        }
    }

    /// True when appends go through a pool buffer.
    pub fn is_pooled(&self) -> bool {
        self.pooled.load(Ordering::Acquire)
    }

    /// True when readers have seen the whole file.
    pub fn is_fully_readable(&self) -> bool {
        self.readable_position() >= self.file_size
    }

    /// Pool mode: take `buf` for appends from the write position on.
    pub(crate) fn attach_buffer(&self, mut buf: crate::pool::PoolBuffer) {
        let _w = self.write_lock.locked();
        let _c = self.commit_lock.locked();
        let wrote = self.wrote_position.load(Ordering::Acquire);
        self.committed_position.store(wrote, Ordering::Release);
        self.buf_ptr.store(buf.as_mut_ptr(), Ordering::Release);
        self.buf_index.store(buf.index(), Ordering::Release);
        *self.buffer.locked() = Some(buf);
        self.pooled.store(true, Ordering::Release);
    }

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

    /// Readable bytes `[pos, pos+len)`, or `None` if that range is not fully written.
    pub fn bytes(&self, pos: usize, len: usize) -> Option<&[u8]> {
        let end = pos.checked_add(len)?;
        if end > self.readable_position() {
            return None;
        }
        // SAFETY: `[pos, end)` is below the published write position, so it is inside
        // the mapping and never written again while `self` is shared.
        Some(unsafe { std::slice::from_raw_parts(self.ptr.add(pos), len) })
    }

    /// Readable bytes from `pos` to the readable position.
    pub fn bytes_from(&self, pos: usize) -> &[u8] {
        let end = self.readable_position();
        if pos >= end {
            return &[];
        }
        self.bytes(pos, end - pos).unwrap_or(&[])
    }

    /// Bytes `[pos, pos+len)` that keep the file mapped while held.
    pub fn slice(self: &Arc<Self>, pos: usize, len: usize) -> Option<MappedBytes> {
        self.bytes(pos, len)?;
        Some(MappedBytes {
            file: Arc::clone(self),
            pos,
            len,
        })
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

/// A range of a mapped file, kept mapped while this value lives.
#[derive(Clone)]
pub struct MappedBytes {
    file: Arc<MappedFile>,
    pos: usize,
    len: usize,
}

impl MappedBytes {
    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        // The range was checked to be written when this value was made, and the
        // write position never moves back while the file is shared.
        self.file.bytes(self.pos, self.len).unwrap_or(&[])
    }

    /// The file the bytes lie in.
    pub fn path(&self) -> &Path {
        &self.file.path
    }

    /// Position of the first byte inside that file.
    pub fn position(&self) -> u64 {
        self.pos as u64
    }
}

impl Deref for MappedBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for MappedBytes {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl std::fmt::Debug for MappedBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "MappedBytes({} bytes at {} of {:?})",
            self.len, self.pos, self.file.path
        )
    }
}

/// Allocate the file's blocks for real (no sparse file), so that writes through
/// the mapping cannot hit a full disk.
fn allocate(file: &File, len: usize) -> std::io::Result<()> {
    // SAFETY: plain syscall on a valid, open file descriptor.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len as libc::off_t) };
    match rc {
        0 => Ok(()),
        libc::EOPNOTSUPP | libc::EINVAL => {
            // The file system cannot fallocate: set the length and write zeros
            // through normal I/O so that blocks still get allocated.
            use std::io::{Seek, SeekFrom, Write};
            file.set_len(len as u64)?;
            let mut f = file;
            f.seek(SeekFrom::Start(0))?;
            let zeros = vec![0u8; 1 << 20];
            let mut left = len;
            while left > 0 {
                let n = left.min(zeros.len());
                f.write_all(&zeros[..n])?;
                left -= n;
            }
            Ok(())
        }
        e => Err(std::io::Error::from_raw_os_error(e)),
    }
}

/// fsync a directory (lives in [`crate::fs`]; kept here for old callers).
pub use crate::fs::sync_dir;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_read_flush() {
        let dir = tempfile::tempdir().unwrap();
        let f = Arc::new(MappedFile::create(dir.path(), 4096, 8192).unwrap());
        assert_eq!(f.path().file_name().unwrap(), "00000000000000004096");
        assert_eq!(f.append(b"hello"), Some(0));
        assert_eq!(f.append(b" world"), Some(5));
        assert_eq!(f.bytes(0, 11), Some(&b"hello world"[..]));
        assert_eq!(f.bytes(0, 12), None);
        let s = f.slice(6, 5).unwrap();
        assert_eq!(&*s, b"world");
        assert_eq!(
            f.flush(4).unwrap(),
            0,
            "fewer dirty pages than asked: no flush"
        );
        assert_eq!(f.flush(0).unwrap(), 11);
        assert_eq!(f.append(&vec![1u8; 8192]), None);
        assert!(f.append_and_fill(&[7u8; 8]));
        assert!(f.is_full());
        assert_eq!(f.flush(4).unwrap(), 8192, "a full file is always flushed");
        drop(f);
        let g = MappedFile::open(&dir.path().join(file_name(4096)), 4096, 8192).unwrap();
        assert_eq!(g.bytes(0, 11), Some(&b"hello world"[..]));
        assert!(MappedFile::open(&dir.path().join(file_name(4096)), 4096, 4096).is_err());
    }

    #[test]
    fn truncate_zeroes_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = MappedFile::create(dir.path(), 0, 4096).unwrap();
        f.append(&[9u8; 100]).unwrap();
        f.truncate_to(10, 200).unwrap();
        assert_eq!(f.wrote_position(), 10);
        f.append(&[]).unwrap();
        let mut g = MappedFile::open(&dir.path().join(file_name(0)), 0, 4096).unwrap();
        g.set_positions(4096);
        assert_eq!(g.bytes(0, 10).unwrap(), &[9u8; 10]);
        assert!(g.bytes(10, 90).unwrap().iter().all(|b| *b == 0));
    }

    #[test]
    fn names() {
        assert_eq!(file_name(1073741824), "00000000001073741824");
        assert_eq!(parse_file_name("00000000001073741824"), Some(1073741824));
        assert_eq!(parse_file_name("0000000000107374182x"), None);
        assert_eq!(parse_file_name("abc"), None);
    }
}
