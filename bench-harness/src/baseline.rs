//! Baselines: what the disk and memory allow for the same bytes, measured in
//! the same run on the same directory, so the engine's figures can be read as
//! ratios.
//!
//! - [`cold_mmap`]: memcpy into fresh mapped files, allocated like the
//!   engine's commitlog files (`fallocate`, then `mmap`), rolling to a new
//!   file when one is full. Every page is touched for the first time during
//!   the copy, so page faults are part of the cost, as they are for a store
//!   that does not warm its files. The ASYNC_FLUSH baseline.
//! - [`warm_mmap`]: memcpy into a mapping whose pages were all written
//!   beforehand (untimed). The ceiling for a store that pre-allocates and
//!   warms its next file.
//! - [`sync_write`]: the same bytes written with `pwrite` in batches, each
//!   batch followed by `fdatasync`. With a batch of as many messages as there
//!   are producers this is ideal group commit: the SYNC_FLUSH baseline.
//!
//! Creating, allocating and mapping a file is not timed: the engine does it in
//! the background before a put needs the file.
//!
//! No `unsafe` here: `MmapMut` derefs to `&mut [u8]`, `fallocate` comes from
//! rustix, and `fdatasync` is [`File::sync_data`].

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use memmap2::MmapMut;

use crate::error::{BenchError, Result};

pub use crate::stats::mb_per_sec;

/// Page size assumed when pre-touching a mapping.
pub const PAGE_BYTES: usize = 4096;

/// Which baseline was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BaselineKind {
    /// memcpy into fresh, allocated, never-touched mapped files.
    ColdMmap,
    /// memcpy into a mapping whose pages were touched beforehand.
    WarmMmap,
    /// pwrite of batches, each followed by fdatasync.
    PwriteFdatasync,
}

impl BaselineKind {
    /// A short description for reports.
    pub fn describe(self) -> &'static str {
        match self {
            BaselineKind::ColdMmap => "memcpy into fresh fallocated mapped files",
            BaselineKind::WarmMmap => "memcpy into a pre-touched mapping",
            BaselineKind::PwriteFdatasync => "pwrite + fdatasync per batch",
        }
    }
}

/// What a baseline measured.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BaselineResult {
    /// Which baseline this is.
    pub kind: BaselineKind,
    /// Payload bytes copied or written.
    pub bytes: u64,
    /// Timed seconds (file creation excluded).
    pub seconds: f64,
    /// `bytes / seconds / 10^6`.
    pub mb_per_sec: f64,
    /// Chunks copied (mmap) or syncs done (pwrite).
    pub ops: u64,
    /// Files the baseline created.
    pub files: u64,
    /// True when the time cap stopped it before all bytes were done.
    pub stopped_early: bool,
    /// How many times it was measured; the figures are those of the median.
    pub repeats: u32,
    /// Slowest of the repeats, MB/s.
    pub min_mb_per_sec: f64,
    /// Fastest of the repeats, MB/s.
    pub max_mb_per_sec: f64,
}

/// Parameters shared by the baselines.
#[derive(Debug, Clone)]
pub struct BaselineSpec {
    /// Directory under test; a private sub-directory is created in it and removed afterwards.
    pub dir: PathBuf,
    /// Size of each file, as the store's commitlog files.
    pub file_size_bytes: u64,
    /// Bytes per copy or write: the message size.
    pub chunk_bytes: usize,
    /// Total payload bytes to copy or write.
    pub total_bytes: u64,
    /// Stop after this much timed work and report the rate of what was done.
    pub max_duration: Option<Duration>,
}

impl BaselineSpec {
    fn check(&self, batch_chunks: usize) -> Result<()> {
        if self.chunk_bytes == 0 {
            return Err(BenchError::new(
                "baseline chunk size must be at least 1 byte",
            ));
        }
        let batch = self.chunk_bytes as u64 * batch_chunks as u64;
        if batch > self.file_size_bytes {
            return Err(BenchError::new(format!(
                "baseline file size {} cannot hold a batch of {batch} bytes",
                self.file_size_bytes
            )));
        }
        if usize::try_from(self.file_size_bytes).is_err() {
            return Err(BenchError::new(format!(
                "file size {} does not fit in this platform's address space",
                self.file_size_bytes
            )));
        }
        Ok(())
    }
}

/// A private directory for one baseline's files, removed on drop.
struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn new(parent: &Path, name: &str) -> Result<Self> {
        let dir = parent.join(format!("ferromq-bench-{name}-{}", std::process::id()));
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .map_err(|e| BenchError::io(format!("cannot clear {}", dir.display()), e))?;
        }
        std::fs::create_dir_all(&dir)
            .map_err(|e| BenchError::io(format!("cannot create {}", dir.display()), e))?;
        Ok(Scratch { dir })
    }

    /// Create a file named by its start offset, allocate its blocks.
    fn allocated_file(&self, start_offset: u64, size: u64) -> Result<File> {
        let path = self.dir.join(format!("{start_offset:020}"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| BenchError::io(format!("cannot create {}", path.display()), e))?;
        allocate(&file, size).map_err(|e| {
            BenchError::io(
                format!("cannot allocate {size} bytes for {}", path.display()),
                e,
            )
        })?;
        Ok(file)
    }

    fn map(&self, file: &File, start_offset: u64) -> Result<MmapMut> {
        map_file(file).map_err(|e| {
            BenchError::io(
                format!(
                    "cannot map {}",
                    self.dir.join(format!("{start_offset:020}")).display()
                ),
                e,
            )
        })
    }
}

/// Map a file read-write. The one `unsafe` call in the harness: memmap2 has
/// no safe way to map a file, and a mapped-file baseline needs one.
#[expect(
    unsafe_code,
    reason = "memmap2::MmapMut::map_mut is unsafe; the baseline must copy into a mapped file"
)]
fn map_file(file: &File) -> std::io::Result<MmapMut> {
    // SAFETY: the mapping is undefined behaviour only if the file is changed
    // under it by someone else (truncated, written through another handle).
    // Every mapped file is created here with `create_new` in a private
    // directory named after this process, allocated to its full length before
    // mapping, never resized, and removed only after its mapping is dropped
    // (`Scratch` outlives every map, and each map is dropped at the end of its
    // loop iteration).
    unsafe { MmapMut::map_mut(file) }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!(
                "cannot remove baseline files in {}: {e}",
                self.dir.display()
            );
        }
    }
}

/// Allocate `size` bytes of real blocks, as the engine's posix_fallocate does.
/// Falls back to writing zeros where the file system has no fallocate.
fn allocate(file: &File, size: u64) -> std::io::Result<()> {
    match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, size) {
        Ok(()) => Ok(()),
        Err(e) if e == rustix::io::Errno::OPNOTSUPP || e == rustix::io::Errno::NOSYS => {
            let zeros = vec![0u8; 1 << 20];
            let mut pos = 0;
            while pos < size {
                let n = (size - pos).min(zeros.len() as u64) as usize;
                file.write_all_at(&zeros[..n], pos)?;
                pos += n as u64;
            }
            file.sync_data()
        }
        Err(e) => Err(e.into()),
    }
}

/// A pattern the size of one chunk; its content does not matter but must not be all zeros.
fn pattern(bytes: usize) -> Vec<u8> {
    (0..bytes).map(|i| b'A' + (i % 26) as u8).collect()
}

/// What was done to the machine's free memory right before a timed section.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MemoryPrep {
    /// Bytes of page cache cycled through a scratch file.
    pub bytes: u64,
    /// Seconds it took (not part of any timed figure).
    pub seconds: f64,
}

/// Cycle `bytes` of page cache through a scratch file on `dir` (allocate,
/// map, write one byte per page, unmap, delete), untimed, right before a
/// timed section, so the section's new pages come from memory the machine
/// has just used.
///
/// Why: on a VM whose balloon device reports free pages to the host (this
/// project's CI VMs do), the first touch of a page the host took back costs a
/// host page fault, several times slower than a page just freed (see
/// docs/perf-notes.md#page-cache-recycling-before-timed-sections). Without
/// this step, a baseline measured right after the engine's store is deleted
/// reuses the engine's pages and looks faster than the engine run that came
/// before it; with it, the engine run
/// and every baseline repeat start from the same state, the steady state of
/// a busy broker whose new pages come from page cache it just dropped. The
/// amount is capped at half of `MemAvailable`.
///
/// # Errors
///
/// When the scratch file cannot be created, allocated or mapped.
pub fn recycle_page_cache(dir: &Path, bytes: u64) -> Result<MemoryPrep> {
    let t0 = Instant::now();
    // At most half the free memory (1 GiB when it is unknown) and half the
    // free space of the directory's file system.
    let mem_cap = mem_available_bytes().map_or(1 << 30, |a| a / 2);
    let disk_cap = rustix::fs::statvfs(dir)
        .map(|s| s.f_bavail.saturating_mul(s.f_frsize) / 2)
        .unwrap_or(0);
    let bytes = bytes.min(mem_cap).min(disk_cap) / PAGE_BYTES as u64 * PAGE_BYTES as u64;
    if bytes > 0 {
        let scratch = Scratch::new(dir, "recycle")?;
        let file = scratch.allocated_file(0, bytes)?;
        let map = scratch.map(&file, 0)?;
        // Read faults: each page is allocated and zeroed as a write would, but
        // stays clean, so nothing is ever written back.
        let mut sum = 0u8;
        for page in map.chunks(PAGE_BYTES) {
            sum = sum.wrapping_add(std::hint::black_box(page[0]));
        }
        std::hint::black_box(sum);
        drop(map);
        drop(file);
        drop(scratch);
    }
    Ok(MemoryPrep {
        bytes,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// `MemAvailable` from `/proc/meminfo`, in bytes (None where there is none).
fn mem_available_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// memcpy `total_bytes` in `chunk_bytes` pieces into fresh, allocated mapped
/// files of `file_size_bytes`, rolling to a new file when the next chunk does
/// not fit (a record never spans files). Only the copying is timed.
///
/// # Errors
///
/// When a file cannot be created, allocated or mapped.
pub fn cold_mmap(spec: &BaselineSpec) -> Result<BaselineResult> {
    spec.check(1)?;
    let scratch = Scratch::new(&spec.dir, "cold")?;
    let src = pattern(spec.chunk_bytes);
    let file_size = spec.file_size_bytes as usize;
    let mut timed = Duration::ZERO;
    let mut copied = 0u64;
    let mut ops = 0u64;
    let mut files = 0u64;
    let mut stopped_early = false;
    let mut file_start = 0u64;
    'files: while copied < spec.total_bytes {
        let file = scratch.allocated_file(file_start, spec.file_size_bytes)?;
        let mut map = scratch.map(&file, file_start)?;
        files += 1;
        let mut pos = 0usize;
        let t0 = Instant::now();
        while copied < spec.total_bytes && pos + spec.chunk_bytes <= file_size {
            map[pos..pos + spec.chunk_bytes].copy_from_slice(&src);
            pos += spec.chunk_bytes;
            copied += spec.chunk_bytes as u64;
            ops += 1;
            if ops % 1024 == 0 {
                if let Some(cap) = spec.max_duration {
                    if timed + t0.elapsed() >= cap {
                        timed += t0.elapsed();
                        stopped_early = copied < spec.total_bytes;
                        break 'files;
                    }
                }
            }
        }
        timed += t0.elapsed();
        std::hint::black_box(&map[..]);
        file_start += spec.file_size_bytes;
    }
    Ok(finish(
        BaselineKind::ColdMmap,
        copied,
        timed,
        ops,
        files,
        stopped_early,
    ))
}

/// memcpy `total_bytes` in `chunk_bytes` pieces into one mapping whose pages
/// were all written beforehand (untimed), wrapping to its start when full.
/// The mapping is `min(file_size, total_bytes)` rounded up to whole pages.
///
/// # Errors
///
/// When the file cannot be created, allocated or mapped.
pub fn warm_mmap(spec: &BaselineSpec) -> Result<BaselineResult> {
    spec.check(1)?;
    let scratch = Scratch::new(&spec.dir, "warm")?;
    let src = pattern(spec.chunk_bytes);
    let wanted = spec
        .total_bytes
        .max(spec.chunk_bytes as u64)
        .min(spec.file_size_bytes);
    let size = (wanted.div_ceil(PAGE_BYTES as u64) * PAGE_BYTES as u64).min(spec.file_size_bytes);
    let file = scratch.allocated_file(0, size)?;
    let mut map = scratch.map(&file, 0)?;
    // Write (not read) every page, so that no write fault is left for the timed copy.
    for page in map.chunks_mut(PAGE_BYTES) {
        page[0] = 1;
    }
    let size = size as usize;
    let mut copied = 0u64;
    let mut ops = 0u64;
    let mut pos = 0usize;
    let mut stopped_early = false;
    let t0 = Instant::now();
    while copied < spec.total_bytes {
        if pos + spec.chunk_bytes > size {
            pos = 0;
        }
        map[pos..pos + spec.chunk_bytes].copy_from_slice(&src);
        pos += spec.chunk_bytes;
        copied += spec.chunk_bytes as u64;
        ops += 1;
        if ops % 1024 == 0 && spec.max_duration.is_some_and(|cap| t0.elapsed() >= cap) {
            stopped_early = copied < spec.total_bytes;
            break;
        }
    }
    let timed = t0.elapsed();
    std::hint::black_box(&map[..]);
    Ok(finish(
        BaselineKind::WarmMmap,
        copied,
        timed,
        ops,
        1,
        stopped_early,
    ))
}

/// Write `total_bytes` as batches of `batch_chunks` chunks of `chunk_bytes`
/// with `pwrite` into fresh allocated files of `file_size_bytes`, each batch
/// followed by `fdatasync`; roll to a new file when the next batch does not fit.
///
/// # Errors
///
/// When a file cannot be created or allocated, or a write or sync fails.
pub fn sync_write(spec: &BaselineSpec, batch_chunks: usize) -> Result<BaselineResult> {
    let batch_chunks = batch_chunks.max(1);
    spec.check(batch_chunks)?;
    let scratch = Scratch::new(&spec.dir, "sync")?;
    let buf = pattern(spec.chunk_bytes).repeat(batch_chunks);
    let mut timed = Duration::ZERO;
    let mut written = 0u64;
    let mut syncs = 0u64;
    let mut files = 0u64;
    let mut stopped_early = false;
    let mut file_start = 0u64;
    'files: while written < spec.total_bytes {
        let file = scratch.allocated_file(file_start, spec.file_size_bytes)?;
        let path = scratch.dir.join(format!("{file_start:020}"));
        files += 1;
        let mut pos = 0u64;
        let t0 = Instant::now();
        loop {
            let left_chunks = (spec.total_bytes - written).div_ceil(spec.chunk_bytes as u64);
            if left_chunks == 0 {
                break;
            }
            let n = (left_chunks.min(batch_chunks as u64) as usize) * spec.chunk_bytes;
            if pos + n as u64 > spec.file_size_bytes {
                break;
            }
            file.write_all_at(&buf[..n], pos)
                .map_err(|e| BenchError::io(format!("cannot write to {}", path.display()), e))?;
            file.sync_data().map_err(|e| {
                BenchError::io(format!("fdatasync of {} failed", path.display()), e)
            })?;
            pos += n as u64;
            written += n as u64;
            syncs += 1;
            if spec
                .max_duration
                .is_some_and(|cap| timed + t0.elapsed() >= cap)
            {
                timed += t0.elapsed();
                stopped_early = written < spec.total_bytes;
                break 'files;
            }
        }
        timed += t0.elapsed();
        file_start += spec.file_size_bytes;
    }
    Ok(finish(
        BaselineKind::PwriteFdatasync,
        written,
        timed,
        syncs,
        files,
        stopped_early,
    ))
}

fn finish(
    kind: BaselineKind,
    bytes: u64,
    timed: Duration,
    ops: u64,
    files: u64,
    stopped_early: bool,
) -> BaselineResult {
    let seconds = timed.as_secs_f64();
    let rate = mb_per_sec(bytes, seconds);
    BaselineResult {
        kind,
        bytes,
        seconds,
        mb_per_sec: rate,
        ops,
        files,
        stopped_early,
        repeats: 1,
        min_mb_per_sec: rate,
        max_mb_per_sec: rate,
    }
}

/// Several measurements of one baseline pooled into one: bytes and seconds
/// added up (so the rate is total bytes over total time), with the spread of
/// the individual rates. Returns an empty result for an empty slice.
pub fn pooled(parts: &[BaselineResult]) -> BaselineResult {
    let Some(first) = parts.first() else {
        return finish(BaselineKind::WarmMmap, 0, Duration::ZERO, 0, 0, false);
    };
    let bytes = parts.iter().map(|p| p.bytes).sum();
    let seconds: f64 = parts.iter().map(|p| p.seconds).sum();
    let rate = mb_per_sec(bytes, seconds);
    BaselineResult {
        kind: first.kind,
        bytes,
        seconds,
        mb_per_sec: rate,
        ops: parts.iter().map(|p| p.ops).sum(),
        files: parts.iter().map(|p| p.files).sum(),
        stopped_early: parts.iter().any(|p| p.stopped_early),
        repeats: parts.len() as u32,
        min_mb_per_sec: parts
            .iter()
            .map(|p| p.mb_per_sec)
            .fold(f64::INFINITY, f64::min),
        max_mb_per_sec: parts.iter().map(|p| p.mb_per_sec).fold(0.0, f64::max),
    }
}

/// Measure a baseline up to `max_repeats` times, stopping early once the
/// timed seconds add up to `budget_seconds`, and keep the median (the lower
/// middle for an even count), with the spread of all repeats.
///
/// `measure` gets `None` for the first measurement (use its own cap) and
/// the budget left for each repeat, so repeats never run past the budget.
///
/// A short memcpy baseline on a shared machine varies by a factor of two or
/// more between runs; one sample makes a poor divisor.
///
/// # Errors
///
/// The first error of any repeat.
pub fn median_of(
    max_repeats: u32,
    budget_seconds: f64,
    mut measure: impl FnMut(Option<Duration>) -> Result<BaselineResult>,
) -> Result<BaselineResult> {
    let mut all = vec![measure(None)?];
    let mut spent = all[0].seconds;
    while (all.len() as u32) < max_repeats.max(1) && spent < budget_seconds {
        let r = measure(Some(Duration::from_secs_f64(budget_seconds - spent)))?;
        spent += r.seconds;
        all.push(r);
    }
    all.sort_by(|a, b| a.mb_per_sec.total_cmp(&b.mb_per_sec));
    let min = all[0].mb_per_sec;
    let max = all[all.len() - 1].mb_per_sec;
    let repeats = all.len() as u32;
    let mut median = all.swap_remove((all.len() - 1) / 2);
    median.repeats = repeats;
    median.min_mb_per_sec = min;
    median.max_mb_per_sec = max;
    Ok(median)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dir: &Path, total: u64) -> BaselineSpec {
        BaselineSpec {
            dir: dir.to_path_buf(),
            file_size_bytes: 64 * 1024,
            chunk_bytes: 1000,
            total_bytes: total,
            max_duration: None,
        }
    }

    #[test]
    fn cold_rolls_files_and_cleans_up() {
        let tmp = tempfile::tempdir().unwrap();
        // 65 chunks of 1000 bytes fit in 64 KiB: 200 chunks need 4 files.
        let r = cold_mmap(&spec(tmp.path(), 200_000)).unwrap();
        assert_eq!(r.bytes, 200_000);
        assert_eq!(r.ops, 200);
        assert_eq!(r.files, 4);
        assert!(r.seconds > 0.0 && r.mb_per_sec > 0.0);
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    }

    #[test]
    fn warm_wraps_inside_one_mapping() {
        let tmp = tempfile::tempdir().unwrap();
        let r = warm_mmap(&spec(tmp.path(), 1_000_000)).unwrap();
        assert_eq!(r.bytes, 1_000_000);
        assert_eq!(r.files, 1);
        assert!(r.mb_per_sec > 0.0);
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    }

    #[test]
    fn sync_batches_and_syncs() {
        let tmp = tempfile::tempdir().unwrap();
        let r = sync_write(&spec(tmp.path(), 100_000), 8).unwrap();
        assert_eq!(r.bytes, 100_000);
        // 100 chunks in batches of 8: 13 syncs.
        assert_eq!(r.ops, 13);
        assert!(r.mb_per_sec > 0.0);
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    }

    #[test]
    fn time_cap_stops_a_baseline() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = spec(tmp.path(), u64::MAX / 2);
        s.max_duration = Some(Duration::from_millis(50));
        let r = warm_mmap(&s).unwrap();
        assert!(r.stopped_early);
        assert!(r.bytes < s.total_bytes);
    }

    #[test]
    fn median_keeps_the_middle_and_the_spread() {
        let rates = [300.0, 100.0, 200.0];
        let mut i = 0;
        let r = median_of(3, 10.0, |_| {
            let rate = rates[i];
            i += 1;
            Ok(BaselineResult {
                mb_per_sec: rate,
                seconds: 0.1,
                ..finish(
                    BaselineKind::ColdMmap,
                    1,
                    Duration::from_millis(100),
                    1,
                    1,
                    false,
                )
            })
        })
        .unwrap();
        assert_eq!(
            (r.mb_per_sec, r.min_mb_per_sec, r.max_mb_per_sec, r.repeats),
            (200.0, 100.0, 300.0, 3)
        );
        // The budget stops repeating.
        let r = median_of(3, 0.05, |_| {
            Ok(finish(
                BaselineKind::ColdMmap,
                1,
                Duration::from_millis(100),
                1,
                1,
                false,
            ))
        })
        .unwrap();
        assert_eq!(r.repeats, 1);
    }

    #[test]
    fn pooling_adds_bytes_and_time() {
        let a = finish(
            BaselineKind::PwriteFdatasync,
            1_000_000,
            Duration::from_secs(1),
            10,
            1,
            false,
        );
        let b = finish(
            BaselineKind::PwriteFdatasync,
            3_000_000,
            Duration::from_secs(1),
            30,
            1,
            true,
        );
        let p = pooled(&[a, b]);
        assert_eq!((p.bytes, p.ops, p.files, p.repeats), (4_000_000, 40, 2, 2));
        assert!((p.mb_per_sec - 2.0).abs() < 1e-9);
        assert_eq!((p.min_mb_per_sec, p.max_mb_per_sec), (1.0, 3.0));
        assert!(p.stopped_early);
        assert_eq!(pooled(&[]).bytes, 0);
    }

    #[test]
    fn batch_larger_than_file_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let err = sync_write(&spec(tmp.path(), 1000), 100).unwrap_err();
        assert!(err.message().contains("cannot hold a batch"));
    }
}
