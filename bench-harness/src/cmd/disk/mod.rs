//! `ferromq-bench disk`: the raw limits of the directory's device, to quote
//! the engine's and the broker's figures against.
//!
//! - sequential write: `pwrite` of 1 MiB chunks into a fallocated file, one
//!   `fdatasync` at the end, both timed;
//! - 4 KiB write + `fdatasync`: append 4 KiB and sync, one at a time, every
//!   operation timed (rate and latency percentiles);
//! - memcpy into a mapped file: [`crate::baseline::cold_mmap`] (fresh
//!   fallocated mapped files, page faults included) and
//!   [`crate::baseline::warm_mmap`] (pre-touched mapping).

mod report;

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::baseline::{cold_mmap, warm_mmap, BaselineSpec};
use crate::cli::{DiskDir, JsonFlag};
use crate::error::{BenchError, Result};
use crate::results::LatencySummary;
use crate::store::parse_bytes;
use crate::workload::{new_latency_histogram, MAX_LATENCY_NS};

/// Flags of `ferromq-bench disk`.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct DiskArgs {
    /// The directory on the device under test.
    #[command(flatten)]
    pub dir: DiskDir,
    /// Bytes of the sequential write and memcpy tests (suffixes accepted).
    #[arg(long, default_value = "256MiB", value_parser = parse_bytes)]
    pub bytes: u64,
    /// Seconds of the 4 KiB write + fdatasync test (also capped at 100 000 operations).
    #[arg(long = "sync-seconds", default_value_t = 3.0)]
    pub sync_seconds: f64,
    /// `--json`.
    #[command(flatten)]
    pub json: JsonFlag,
}

/// What `disk` measured.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DiskResult {
    /// The directory measured.
    pub dir: String,
    /// Sequential write (pwrite 1 MiB + one fdatasync), MB/s.
    pub seq_write_mb_per_sec: f64,
    /// 4 KiB write + fdatasync operations per second.
    pub sync_4k_ops_per_sec: f64,
    /// Latency of one 4 KiB write + fdatasync, µs.
    pub sync_4k_latency_us: LatencySummary,
    /// memcpy (1 MiB chunks) into fresh fallocated mapped files, MB/s.
    pub memcpy_cold_mmap_mb_per_sec: f64,
    /// memcpy into a pre-touched mapping, MB/s.
    pub memcpy_warm_mmap_mb_per_sec: f64,
}

/// Largest number of 4 KiB sync operations.
pub const MAX_SYNC_OPS: u64 = 100_000;

/// Run the measurements.
///
/// # Errors
///
/// When a file cannot be created, written, synced or mapped.
pub fn measure(args: &DiskArgs) -> Result<DiskResult> {
    if args.bytes < (1 << 20) {
        return Err(BenchError::new("--bytes must be at least 1 MiB"));
    }
    if !(args.sync_seconds.is_finite() && args.sync_seconds > 0.0) {
        return Err(BenchError::new("--sync-seconds must be positive"));
    }
    let (dir, _tmp) = crate::machine::dir_or_temp(args.dir.dir.as_deref())?;
    let work = tempfile::Builder::new()
        .prefix("ferromq-bench-disk-")
        .tempdir_in(&dir)
        .map_err(|e| BenchError::io(dir.display(), e))?;

    // Sequential write.
    let path = work.path().join("seq");
    let f = create_file(&path)?;
    let chunk = vec![0x5Au8; 1 << 20];
    let t0 = Instant::now();
    let mut off = 0u64;
    while off < args.bytes {
        f.write_all_at(&chunk, off)
            .map_err(|e| BenchError::io(path.display(), e))?;
        off += chunk.len() as u64;
    }
    f.sync_data()
        .map_err(|e| BenchError::io(path.display(), e))?;
    let seq = off as f64 / 1e6 / t0.elapsed().as_secs_f64().max(1e-9);
    drop(f);
    let _ = std::fs::remove_file(&path);

    // 4 KiB write + fdatasync.
    let path = work.path().join("sync4k");
    let f = create_file(&path)?;
    let page = vec![0xA5u8; 4096];
    let mut hist = new_latency_histogram()?;
    let cap = Duration::from_secs_f64(args.sync_seconds);
    let start = Instant::now();
    let mut ops = 0u64;
    while ops < MAX_SYNC_OPS && start.elapsed() < cap {
        let t = Instant::now();
        f.write_all_at(&page, ops * 4096)
            .map_err(|e| BenchError::io(path.display(), e))?;
        f.sync_data()
            .map_err(|e| BenchError::io(path.display(), e))?;
        hist.saturating_record(
            (t.elapsed().as_nanos().min(u128::from(MAX_LATENCY_NS)) as u64).max(1),
        );
        ops += 1;
    }
    let sync_rate = ops as f64 / start.elapsed().as_secs_f64().max(1e-9);
    drop(f);
    let _ = std::fs::remove_file(&path);

    // memcpy into mapped files.
    let spec = BaselineSpec {
        dir: work.path().to_path_buf(),
        file_size_bytes: (64u64 << 20).min(args.bytes),
        chunk_bytes: 1 << 20,
        total_bytes: args.bytes,
        max_duration: Some(Duration::from_secs(20)),
    };
    let cold = cold_mmap(&spec)?;
    let warm = warm_mmap(&spec)?;
    Ok(DiskResult {
        dir: dir.display().to_string(),
        seq_write_mb_per_sec: seq,
        sync_4k_ops_per_sec: sync_rate,
        sync_4k_latency_us: LatencySummary::from_ns(&hist),
        memcpy_cold_mmap_mb_per_sec: cold.mb_per_sec,
        memcpy_warm_mmap_mb_per_sec: warm.mb_per_sec,
    })
}

/// `ferromq-bench disk`: measure and print.
///
/// # Errors
///
/// As [`measure`], or when stdout cannot be written.
pub fn run_disk(args: &DiskArgs) -> Result<i32> {
    let r = measure(args)?;
    crate::reporting::print_result(args.json.json, &r, report::text)?;
    Ok(0)
}

/// Create (or truncate) the scratch file `path` for writing.
///
/// # Errors
///
/// When it cannot be created; the message names the path.
fn create_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(|e| BenchError::io(path.display(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_disk_run_gives_positive_figures() {
        let tmp = tempfile::tempdir().unwrap();
        let r = measure(&DiskArgs {
            dir: DiskDir {
                dir: Some(tmp.path().to_path_buf()),
            },
            bytes: 2 << 20,
            sync_seconds: 0.1,
            json: JsonFlag { json: true },
        })
        .unwrap();
        assert!(r.seq_write_mb_per_sec > 0.0);
        assert!(r.sync_4k_ops_per_sec > 0.0);
        assert!(r.sync_4k_latency_us.p50 > 0.0);
        assert!(r.memcpy_cold_mmap_mb_per_sec > 0.0 && r.memcpy_warm_mmap_mb_per_sec > 0.0);
        // Nothing left behind.
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    }
}
