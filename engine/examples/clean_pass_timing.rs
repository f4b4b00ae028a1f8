//! How long one clean pass takes to delete N commitlog files.
//!
//! For each case, fills N + 1 files of the given size in a temporary directory,
//! waits until everything is flushed and dispatched, then reports a disk over
//! `diskMaxUsedSpaceRatio` (through the disk-usage seam) so that one pass deletes
//! all N files at once, and prints the pass's own figure
//! (`CleanPassReport::millis`) beside the wall time around `run_clean_pass`.
//! `deleteCommitLogFilesInterval` is 0 here, so the figure is the cost of the
//! pass itself; the default (100 ms) adds (N - 1) x 100 ms of deliberate sleep.
//!
//! ```text
//! cargo run --release -p ferromq-engine --example clean_pass_timing [DIR]
//! ```
//! DIR (default: the system temp dir) is where the temporary stores go.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferromq_engine::{Clock, DiskUsage, Message, MessageStore, StoreConfig, StoreEnv};

/// System time, with the hour pinned away from `deleteWhen`.
#[derive(Debug)]
struct Clock3;

impl Clock for Clock3 {
    fn now_ms(&self) -> i64 {
        ferromq_engine::message::now_ms()
    }
    fn local_hour(&self, _now_ms: i64) -> u8 {
        3
    }
}

/// A disk always 80 % full: every pass may delete files at once.
#[derive(Debug)]
struct Full;

impl DiskUsage for Full {
    fn used_ratio(&self, _path: &Path) -> std::io::Result<f64> {
        Ok(0.8)
    }
}

fn case(base: &Path, files: usize, file_size: usize, body_len: usize) -> Result<(), String> {
    let dir = tempfile::tempdir_in(base).map_err(|e| e.to_string())?;
    let mut cfg = StoreConfig::new(dir.path());
    cfg.mapped_file_size_commit_log = file_size as u64;
    cfg.delete_file_batch_max = u32::try_from(files).map_err(|e| e.to_string())?;
    cfg.delete_commit_log_files_interval_ms = 0;
    cfg.clean_resource_interval_ms = 3_600_000; // only the passes run here
    cfg.flush_interval_commit_log_ms = 10;
    cfg.message_index_enable = false;
    let env = StoreEnv {
        clock: Arc::new(Clock3),
        disk: Arc::new(Full),
    };
    let store = MessageStore::open_with_env(cfg, env).map_err(|e| e.to_string())?;
    let body = vec![b'c'; body_len];
    let target = (files as u64) * file_size as u64 + 1;
    let fill = Instant::now();
    while store.commit_log_max_offset() < target {
        store
            .put_message(&Message::new("Timing", body.clone()))
            .map_err(|e| e.to_string())?;
    }
    store.flush().map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while store.stats().dispatched_offset < store.commit_log_max_offset() {
        if Instant::now() > deadline {
            return Err("dispatch did not catch up".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    store.flush().map_err(|e| e.to_string())?;
    let filled = fill.elapsed();
    let t = Instant::now();
    let rep = store.run_clean_pass();
    let wall = t.elapsed();
    println!(
        "{files:>4} files x {:>6} KiB: deleted {:>4} commitlog + {:>3} consume-queue files \
         in one pass: {:>4} ms (report) / {:>8.3} ms (wall); fill took {:.1} s",
        file_size / 1024,
        rep.commit_log_files_deleted,
        rep.consume_queue_files_deleted,
        rep.millis,
        wall.as_secs_f64() * 1e3,
        filled.as_secs_f64()
    );
    if rep.commit_log_files_deleted != files {
        return Err(format!("expected {files} files deleted: {rep:?}"));
    }
    store.shutdown().map_err(|e| e.to_string())
}

fn main() {
    let base = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let cases: [(usize, usize, usize); 4] = [
        (10, 64 * 1024, 500),
        (100, 64 * 1024, 500),
        (1000, 64 * 1024, 500),
        (3, 64 * 1024 * 1024, 4000),
    ];
    for (n, size, body) in cases {
        if let Err(e) = case(&base, n, size, body) {
            eprintln!("{n} files of {size} bytes: {e}");
            std::process::exit(1);
        }
    }
}
