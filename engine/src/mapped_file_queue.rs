//! The ordered files of one log (the commitlog, or one consume queue).

use crate::sync::{LockExt, RwLockExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::error::{Error, Result};
use crate::mapped_file::{parse_file_name, MappedFile};

/// An atomic alone on its cache line (128 bytes: adjacent-line prefetch pairs lines).
#[derive(Debug)]
#[repr(align(128))]
struct Padded(AtomicU64);

/// Files named by their start offset, each `file_size` bytes, contiguous.
pub struct MappedFileQueue {
    dir: PathBuf,
    file_size: u64,
    files: RwLock<Vec<Arc<MappedFile>>>,
    /// Bumped when the last file changes; on a cache line of its own, apart
    /// from the lock word that every reader writes.
    generation: Padded,
    flushed_where: AtomicU64,
    flush_lock: Mutex<()>,
    committed_where: AtomicU64,
    commit_lock: Mutex<()>,
    last_store_timestamp_ms: std::sync::atomic::AtomicI64,
    flushed_store_timestamp_ms: std::sync::atomic::AtomicI64,
}

impl std::fmt::Debug for MappedFileQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedFileQueue")
            .field("dir", &self.dir)
            .field("files", &self.file_count())
            .finish()
    }
}

impl MappedFileQueue {
    /// Open the log in `dir` (created if missing), mapping every file found.
    /// Every file starts full; recovery sets the real positions.
    pub fn load(dir: &Path, file_size: u64) -> Result<MappedFileQueue> {
        Self::load_inner(dir, file_size, false).map(|(q, _)| q)
    }

    /// [`MappedFileQueue::load`] for a log that can be rebuilt (a consume
    /// queue): a file of the wrong length, one whose name is not a multiple of
    /// the file size, or a gap before a file, ends the log there. That file and
    /// every later one are deleted, and what was wrong is returned with the
    /// queue, which keeps the files before it.
    pub fn load_lenient(dir: &Path, file_size: u64) -> Result<(MappedFileQueue, Option<Error>)> {
        Self::load_inner(dir, file_size, true)
    }

    fn load_inner(
        dir: &Path,
        file_size: u64,
        lenient: bool,
    ) -> Result<(MappedFileQueue, Option<Error>)> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let mut offsets = Vec::new();
        let rd = std::fs::read_dir(dir)
            .map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
        for entry in rd {
            let entry = entry.map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if let Some(stem) = name.strip_suffix(".tmp") {
                if parse_file_name(stem).is_some() {
                    // A file whose creation was interrupted: it never held data.
                    tracing::warn!(path = %entry.path().display(), "removing an unfinished log file");
                    std::fs::remove_file(entry.path()).map_err(|e| {
                        Error::io(format!("removing {}", entry.path().display()), e)
                    })?;
                    continue;
                }
            }
            match parse_file_name(&name) {
                Some(off) if entry.path().is_file() => offsets.push(off),
                _ => tracing::warn!(
                    path = %entry.path().display(),
                    "ignoring a file that is not named as a log file (20 digits)"
                ),
            }
        }
        offsets.sort_unstable();
        let mut files = Vec::with_capacity(offsets.len());
        let mut damage = None;
        for (i, off) in offsets.iter().enumerate() {
            let path = dir.join(crate::mapped_file::file_name(*off));
            let bad = if off % file_size != 0 {
                Some(Error::corruption(
                    &path,
                    0,
                    format!(
                        "file name offset {off} is not a multiple of the file size {file_size}"
                    ),
                ))
            } else if i > 0 && offsets[i - 1] + file_size != *off {
                Some(Error::corruption(
                    &path,
                    0,
                    format!(
                        "gap in the log: previous file starts at {}, this one at {off}",
                        offsets[i - 1]
                    ),
                ))
            } else if lenient {
                let len = std::fs::metadata(&path)
                    .map_err(|e| Error::io(format!("stat {}", path.display()), e))?
                    .len();
                (len != file_size).then(|| {
                    Error::corruption(
                        &path,
                        0,
                        format!("file length is {len}, expected {file_size}"),
                    )
                })
            } else {
                None
            };
            if let Some(e) = bad {
                if !lenient {
                    return Err(e);
                }
                // The log ends before this file: it and every later one go.
                for later in &offsets[i..] {
                    let p = dir.join(crate::mapped_file::file_name(*later));
                    tracing::warn!(path = %p.display(), reason = %e,
                        "removing a damaged or out-of-place log file; it is rebuilt");
                    std::fs::remove_file(&p)
                        .map_err(|e| Error::io(format!("removing {}", p.display()), e))?;
                }
                crate::fs::sync_dir(dir)?;
                damage = Some(e);
                break;
            }
            files.push(Arc::new(MappedFile::open(&path, *off, file_size as usize)?));
        }
        let flushed = files
            .last()
            .map(|f| f.file_from_offset() + file_size)
            .unwrap_or(0);
        let q = MappedFileQueue {
            dir: dir.to_path_buf(),
            file_size,
            files: RwLock::new(files),
            generation: Padded(AtomicU64::new(0)),
            flushed_where: AtomicU64::new(flushed),
            flush_lock: Mutex::new(()),
            committed_where: AtomicU64::new(flushed),
            commit_lock: Mutex::new(()),
            last_store_timestamp_ms: std::sync::atomic::AtomicI64::new(0),
            flushed_store_timestamp_ms: std::sync::atomic::AtomicI64::new(0),
        };
        Ok((q, damage))
    }

    /// Directory of the files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Size of every file.
    pub fn file_size(&self) -> u64 {
        self.file_size
    }

    /// A snapshot of the files, oldest first.
    pub fn files(&self) -> Vec<Arc<MappedFile>> {
        self.files.read_locked().clone()
    }

    /// Number of files.
    pub fn file_count(&self) -> usize {
        self.files.read_locked().len()
    }

    /// The newest file.
    pub fn last_file(&self) -> Option<Arc<MappedFile>> {
        self.files.read_locked().last().cloned()
    }

    /// A number that changes whenever the last file changes (a file pushed or
    /// truncated away), so a writer may keep the last file at hand and check
    /// with one load that it still is the last.
    pub fn generation(&self) -> u64 {
        self.generation.0.load(Ordering::Acquire)
    }

    /// The oldest file.
    pub fn first_file(&self) -> Option<Arc<MappedFile>> {
        self.files.read_locked().first().cloned()
    }

    /// The file holding log offset `offset`.
    pub fn find_by_offset(&self, offset: u64) -> Option<Arc<MappedFile>> {
        let files = self.files.read_locked();
        let first = files.first()?.file_from_offset();
        if offset < first {
            return None;
        }
        let idx = ((offset - first) / self.file_size) as usize;
        let f = files.get(idx)?;
        debug_assert!(
            f.file_from_offset() <= offset && offset < f.file_from_offset() + self.file_size
        );
        Some(Arc::clone(f))
    }

    /// Offset of the first byte of the first file (0 when empty).
    pub fn min_offset(&self) -> u64 {
        self.first_file().map(|f| f.file_from_offset()).unwrap_or(0)
    }

    /// End of the written bytes.
    pub fn max_offset(&self) -> u64 {
        // Under the read lock, without cloning the file's `Arc` (the dispatcher
        // asks this for every record).
        self.files
            .read_locked()
            .last()
            .map(|f| f.file_from_offset() + f.wrote_position() as u64)
            .unwrap_or(0)
    }

    /// Log offset up to which bytes are known durable.
    pub fn flushed_where(&self) -> u64 {
        self.flushed_where.load(Ordering::Acquire)
    }

    /// Recovery: set the durable mark.
    pub fn set_flushed_where(&self, offset: u64) {
        self.flushed_where.store(offset, Ordering::Release);
    }

    /// Append a newly created file; it must start where the last one ends.
    pub fn push(&self, file: Arc<MappedFile>) -> Result<()> {
        let mut files = self.files.write_locked();
        if let Some(last) = files.last() {
            let want = last.file_from_offset() + self.file_size;
            if file.file_from_offset() != want {
                return Err(Error::corruption(
                    file.path(),
                    0,
                    format!(
                        "new file starts at {}, expected {want}",
                        file.file_from_offset()
                    ),
                ));
            }
        }
        files.push(file);
        self.generation.0.fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// Create and append the file starting at `offset` inline.
    pub fn create_file(&self, offset: u64) -> Result<Arc<MappedFile>> {
        let f = Arc::new(MappedFile::create(
            &self.dir,
            offset,
            self.file_size as usize,
        )?);
        self.push(Arc::clone(&f))?;
        Ok(f)
    }

    /// Record the store timestamp of the newest appended record.
    pub fn set_last_store_timestamp_ms(&self, ms: i64) {
        self.last_store_timestamp_ms.store(ms, Ordering::Release);
    }

    /// Store timestamp of the newest appended record (0 if unknown).
    pub fn last_store_timestamp_ms(&self) -> i64 {
        self.last_store_timestamp_ms.load(Ordering::Acquire)
    }

    /// Store timestamp of the newest record known flushed (0 if unknown).
    pub fn flushed_store_timestamp_ms(&self) -> i64 {
        self.flushed_store_timestamp_ms.load(Ordering::Acquire)
    }

    /// Flush the files from the durable mark on, each with `least_pages`.
    /// Returns the new durable mark.
    pub fn flush(&self, least_pages: u32) -> Result<u64> {
        let _g = self.flush_lock.locked();
        // Read before flushing: that record's bytes are in the file already.
        let ts = self.last_store_timestamp_ms();
        let end_before = self.max_offset();
        let r = self.flush_files(least_pages);
        if r.is_ok() && self.flushed_where() >= end_before {
            self.flushed_store_timestamp_ms
                .fetch_max(ts, Ordering::AcqRel);
        }
        r
    }

    /// Pool mode, SYNC_FLUSH: commit and sync every file from the flushed mark
    /// on, each in one backend call ([`MappedFile::commit_and_sync`]). Returns
    /// the new flushed mark, which is also the committed one.
    pub fn commit_and_sync(&self, backend: &crate::io::CommitBackend) -> Result<u64> {
        let _g = self.flush_lock.locked();
        let _c = self.commit_lock.locked();
        let ts = self.last_store_timestamp_ms();
        let end_before = self.max_offset();
        let r = self.flush_files_with(|f| f.commit_and_sync(backend));
        if let Ok(mark) = r {
            self.committed_where.fetch_max(mark, Ordering::AcqRel);
            if mark >= end_before {
                self.flushed_store_timestamp_ms
                    .fetch_max(ts, Ordering::AcqRel);
            }
        }
        r
    }

    fn flush_files(&self, least_pages: u32) -> Result<u64> {
        self.flush_files_with(|f| f.flush(least_pages))
    }

    fn flush_files_with(&self, flush: impl Fn(&MappedFile) -> Result<usize>) -> Result<u64> {
        loop {
            let at = self.flushed_where();
            let Some(f) = self.find_by_offset(at) else {
                return Ok(at);
            };
            let pos = flush(&f)?;
            let mark = f.file_from_offset() + pos as u64;
            if mark > at {
                self.flushed_where.store(mark, Ordering::Release);
            }
            if pos < f.file_size() {
                return Ok(self.flushed_where());
            }
        }
    }

    /// Pool mode: commit the files from the committed mark on. Returns the new mark
    /// (the end of the readable log).
    pub fn commit(&self, least_pages: u32, backend: &crate::io::CommitBackend) -> Result<u64> {
        let _g = self.commit_lock.locked();
        loop {
            let at = self.committed_where.load(Ordering::Acquire);
            let Some(f) = self.find_by_offset(at) else {
                return Ok(at);
            };
            let pos = f.commit(least_pages, backend)?;
            let mark = f.file_from_offset() + pos as u64;
            if mark > at {
                self.committed_where.store(mark, Ordering::Release);
            }
            if pos < f.file_size() {
                return Ok(self.committed_where.load(Ordering::Acquire));
            }
        }
    }

    /// Pool mode: the log offset up to which buffered bytes are in the files.
    pub fn committed_where(&self) -> u64 {
        self.committed_where.load(Ordering::Acquire)
    }

    /// Recovery: set the committed mark.
    pub fn set_committed_where(&self, offset: u64) {
        self.committed_where.store(offset, Ordering::Release);
    }

    /// Recovery: drop every file that starts at or after `offset`, deleting it from disk.
    pub fn delete_files_from(&self, offset: u64) -> Result<()> {
        let mut files = self.files.write_locked();
        while let Some(last) = files.last() {
            if last.file_from_offset() < offset {
                break;
            }
            last.delete_file()?;
            files.pop();
            self.generation.0.fetch_add(1, Ordering::Release);
        }
        Ok(())
    }

    /// Live truncation: make `offset` the end of the log while readers and
    /// the flush service may be running. Files after the one holding `offset`
    /// are deleted first (newest first, then a directory fsync), so a crash
    /// part-way leaves a shorter but contiguous log; then the file holding
    /// `offset` loses its bytes from there ([`MappedFile::truncate_live`],
    /// zeroed and synced). A file that would be left empty goes too, unless it
    /// is the first (the log keeps its start). The durable and committed marks
    /// move back to `offset`. Returns how many files were deleted. Callers
    /// keep writers out (the queue's own flush and commit wait for it here).
    ///
    /// # Errors
    /// `offset` below the first file; a failed delete, write or sync (the log
    /// may then end anywhere between `offset` and where it ended).
    pub fn truncate_live(&self, offset: u64) -> Result<usize> {
        let _f = self.flush_lock.locked();
        let _c = self.commit_lock.locked();
        if offset >= self.max_offset() {
            return Ok(0);
        }
        let Some(f) = self.find_by_offset(offset) else {
            return Err(Error::corruption(
                &self.dir,
                offset,
                format!(
                    "truncation to {offset}, below the first file (at {})",
                    self.min_offset()
                ),
            ));
        };
        let pos = (offset - f.file_from_offset()) as usize;
        let is_first = self
            .first_file()
            .is_some_and(|first| first.file_from_offset() == f.file_from_offset());
        let cut_from = if pos == 0 && !is_first {
            f.file_from_offset()
        } else {
            f.file_from_offset() + self.file_size
        };
        let before = self.file_count();
        self.delete_files_from(cut_from)?;
        let removed = before - self.file_count();
        if removed > 0 {
            crate::fs::sync_dir(&self.dir)?;
        }
        if cut_from > f.file_from_offset() {
            f.truncate_live(pos)?;
        }
        self.flushed_where.fetch_min(offset, Ordering::AcqRel);
        self.committed_where.fetch_min(offset, Ordering::AcqRel);
        self.generation.0.fetch_add(1, Ordering::Release);
        Ok(removed)
    }

    /// Recovery: exclusive access to the file list (no readers exist yet).
    pub fn files_mut(&mut self) -> &mut Vec<Arc<MappedFile>> {
        *self.generation.0.get_mut() += 1;
        self.files.get_mut().unwrap_or_else(|e| e.into_inner())
    }

    /// Drop the oldest files while `pred` says so (never the last file). Returns the removed files.
    pub fn remove_first_while(
        &self,
        mut pred: impl FnMut(&MappedFile) -> bool,
        max: usize,
    ) -> Vec<Arc<MappedFile>> {
        let mut files = self.files.write_locked();
        let mut n = 0;
        while n < max && files.len() > 1 + n && pred(&files[n]) {
            n += 1;
        }
        files.drain(..n).collect()
    }
}
