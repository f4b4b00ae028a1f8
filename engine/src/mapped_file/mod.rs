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
//! - The one exception to "never written again": a live truncation
//!   ([`MappedFile::truncate_live`], a slave cutting its log back to where it
//!   agrees with a new master) moves `wrote_position` back and zeroes the bytes
//!   after it through the descriptor, never through the mapping; later appends
//!   write there again. A reader that loaded the old position may see old
//!   bytes, zeros or new bytes in that range (never unmapped memory): records
//!   and consume-queue units are checked when read.
//! - A deleted file still held past `destroyMapedFileIntervalForcibly` is released
//!   by [`MappedFile::release_forcibly`]: its pages are replaced in place by an
//!   anonymous zero mapping of the same address range (so the range stays valid
//!   memory) before the file is truncated, so a late reader sees zeros, never
//!   freed memory and never a SIGBUS.

#![allow(unsafe_code)]
mod bytes;
mod flush;
mod lifecycle;
mod paging;

pub use bytes::MappedBytes;

use crate::fs::sync_dir;
use crate::sync::LockExt;
use std::fs::{File, OpenOptions};
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
