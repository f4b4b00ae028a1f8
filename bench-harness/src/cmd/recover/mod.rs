//! `ferromq-bench recover`: how fast a crashed store reopens, next to a plain
//! read + CRC32 of the same commitlog bytes in the same run.
//!
//! 1. A child process (this binary, hidden subcommand [`WRITER_SUBCOMMAND`])
//!    writes `--bytes` of `--size` messages into a fresh store with small
//!    commitlog files, flushes, waits until consume queues and the checkpoint
//!    caught up, prints [`WRITTEN_LINE`] and waits; the parent SIGKILLs it, so
//!    the store is left exactly as a crash leaves it (abort file present).
//! 2. Baseline: every commitlog file is read with `read(2)` into one buffer and
//!    CRC32-ed (crc32fast), up to the recovered end of the log.
//! 3. `MessageStore::open` is timed. Default (`full` variant): the checkpoint is
//!    deleted first, so abnormal recovery validates every record (magic, sizes,
//!    body CRC) and dispatches it again. With `--from-checkpoint` the checkpoint
//!    stays: recovery validates only the files from the checkpoint's commitlog
//!    offset (at least the last three) and re-dispatches from its consume-queue
//!    offset.
//!
//! Both steps read cold: the page cache is dropped before each when the
//! harness may (root, writable `/proc/sys/vm/drop_caches`); otherwise, or with
//! `--cached`, both read warm after a warm-up read. The report says which.
//!
//! Both throughputs are over the same bytes: the commitlog range recovery
//! walked (`measured_from` to the recovered end, from the store's
//! `RecoveryReport`), so `ratio = recover_mb_per_sec / read_crc_mb_per_sec` is
//! the reopen's speed as a fraction of what the disk and CRC allow for the bytes
//! it verified. In the `full` variant that range is the whole log; in the
//! `checkpoint` variant it is the tail from the checkpoint, and the open's fixed
//! costs (loading every consume queue and index file) weigh on far fewer bytes.

mod report;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferromq_engine::store::RecoveryReport;
use ferromq_engine::{FlushDiskType, Message, MessageStore, StoreConfig};

use crate::child::KillOnDrop;
use crate::cli::{DiskDir, JsonFlag};
use crate::error::{BenchError, Result};
use crate::store::parse_bytes;

/// Hidden subcommand the parent re-executes itself with to write the store.
pub const WRITER_SUBCOMMAND: &str = "__recover-writer";
/// Line the writer prints once everything is written, flushed and checkpointed.
pub const WRITTEN_LINE: &str = "WRITTEN";
/// Longest the parent waits for the writer to report.
pub const WRITER_DEADLINE: Duration = Duration::from_secs(600);
/// Longest the writer waits to be killed before it exits on its own (still
/// without a shutdown, so the store stays crashed).
pub const WRITER_LINGER: Duration = Duration::from_secs(120);
/// Longest the writer waits for the dispatcher and the checkpoint to catch up.
pub const CATCH_UP_DEADLINE: Duration = Duration::from_secs(60);
/// Buffer of the read + CRC baseline.
pub const READ_BUFFER_BYTES: usize = 1 << 20;
/// Topic the writer puts to.
pub const TOPIC: &str = "RecoverBench";
/// Queues of that topic.
pub const QUEUES: u32 = 8;

/// Flags of `ferromq-bench recover`.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct RecoverArgs {
    /// Commitlog bytes to write (suffixes k, KiB, M, MiB, G, GiB accepted).
    #[arg(long, default_value = "256MiB", value_parser = parse_bytes)]
    pub bytes: u64,
    /// Body size of every message, in bytes (suffixes accepted).
    #[arg(long, default_value = "1024", value_parser = parse_bytes)]
    pub size: u64,
    /// Commitlog file size (`mapedFileSizeCommitLog`), small so the log spans many files.
    #[arg(long = "file-size", default_value = "16MiB", value_parser = parse_bytes)]
    pub file_size: u64,
    /// The directory under test (the store goes into a fresh `recover-store` folder in it).
    #[command(flatten)]
    pub dir: DiskDir,
    /// Delete the checkpoint before reopening: validate and re-dispatch the whole
    /// log. This is the default; the flag stays for old scripts.
    #[arg(long, conflicts_with = "from_checkpoint")]
    pub full: bool,
    /// Keep the checkpoint: recovery validates only the files since it, and both
    /// throughputs are over those bytes.
    #[arg(long = "from-checkpoint")]
    pub from_checkpoint: bool,
    /// Do not drop the page cache: both steps read warm (after a warm-up read).
    #[arg(long)]
    pub cached: bool,
    /// `--json`.
    #[command(flatten)]
    pub json: JsonFlag,
}

impl Default for RecoverArgs {
    fn default() -> Self {
        RecoverArgs {
            bytes: 256 << 20,
            size: 1024,
            file_size: 16 << 20,
            dir: DiskDir::default(),
            full: false,
            from_checkpoint: false,
            cached: false,
            json: JsonFlag::default(),
        }
    }
}

/// Flags of the hidden writer subcommand.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct WriterArgs {
    /// Store root.
    #[arg(long)]
    pub store: PathBuf,
    /// Commitlog bytes to write.
    #[arg(long)]
    pub bytes: u64,
    /// Body size.
    #[arg(long)]
    pub size: u64,
    /// Commitlog file size.
    #[arg(long = "file-size")]
    pub file_size: u64,
}

/// What `recover` measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RecoverResult {
    /// `full` (checkpoint deleted: every record validated; the default) or
    /// `checkpoint` (abnormal recovery from the checkpoint).
    pub variant: &'static str,
    /// What both throughputs divide: always the commitlog bytes recovery walked.
    pub basis: &'static str,
    /// `cold` (page cache dropped before each step) or `warm`.
    pub cache: String,
    /// Body size of the messages.
    pub size_bytes: u64,
    /// Commitlog file size.
    pub file_size_bytes: u64,
    /// Commitlog bytes of the store (start to recovered end).
    pub commitlog_bytes: u64,
    /// Log offset where recovery's walk began (the start of the bytes measured).
    pub measured_from: u64,
    /// Bytes measured: `measured_from` to the recovered end.
    pub measured_bytes: u64,
    /// Commitlog files.
    pub commitlog_files: usize,
    /// Wall time of `MessageStore::open`, seconds.
    pub recover_seconds: f64,
    /// Measured bytes over the open's wall time, MB/s (10^6 bytes).
    pub recover_mb_per_sec: f64,
    /// Wall time of reading + CRC32 of the same bytes, seconds.
    pub read_crc_seconds: f64,
    /// Measured bytes over the baseline's wall time, MB/s.
    pub read_crc_mb_per_sec: f64,
    /// `recover_mb_per_sec / read_crc_mb_per_sec`; the target is >= 0.8.
    pub ratio: f64,
    /// The CRC32 of the bytes read (proves the read happened).
    pub read_crc32: u32,
    /// The previous run did not shut down cleanly.
    pub abnormal: bool,
    /// Commitlog files walked by recovery.
    pub files_scanned: usize,
    /// Bytes of valid records walked and checked.
    pub bytes_scanned: u64,
    /// Bytes of a torn record zeroed at the tail.
    pub bytes_truncated: u64,
    /// Empty files after the end that were removed.
    pub files_removed: usize,
    /// The recovered end of the log.
    pub max_offset: u64,
    /// Consume queues loaded.
    pub consume_queues: usize,
    /// Consume-queue units removed.
    pub consume_queue_units_truncated: u64,
    /// Records dispatched again.
    pub records_redispatched: u64,
    /// Commitlog offset the re-dispatch started from.
    pub redispatched_from: u64,
    /// Consume queues that gained units in a re-dispatch from the log start.
    pub consume_queues_rebuilt: usize,
    /// Every consume queue was re-dispatched from the log start.
    pub rebuilt_from_log_start: bool,
    /// The engine's own wall time of the recovery, ms.
    pub recovery_millis: u64,
    /// Of which: walking and checking the commitlog, ms.
    pub walk_millis: u64,
    /// Of which: loading and checking consume queues and the index, ms.
    pub consume_queue_millis: u64,
    /// Of which: re-dispatching records, ms.
    pub redispatch_millis: u64,
}

/// MB (10^6 bytes) per second.
fn mb_per_sec(bytes: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        bytes as f64 / 1e6 / secs
    } else {
        0.0
    }
}

/// Store config both the writer and the reopen use.
fn store_config(root: &Path, file_size: u64) -> StoreConfig {
    let mut cfg = StoreConfig::new(root.to_path_buf());
    cfg.mapped_file_size_commit_log = file_size;
    cfg.flush_disk_type = FlushDiskType::AsyncFlush;
    cfg
}

/// The hidden writer: fill the store, flush, wait for the dispatcher and the
/// checkpoint, print [`WRITTEN_LINE`], then wait to be killed. Never shuts the
/// store down.
///
/// # Errors
///
/// When the store cannot be opened or written.
pub fn run_writer(args: &WriterArgs) -> Result<()> {
    let cfg = store_config(&args.store, args.file_size);
    let ck_interval = Duration::from_millis(cfg.flush_interval_consume_queue_ms.max(10));
    let store = MessageStore::open(cfg)
        .map_err(|e| BenchError::new(format!("writer: open failed: {e}")))?;
    store
        .create_topic(TOPIC, QUEUES)
        .map_err(|e| BenchError::new(format!("writer: create_topic failed: {e}")))?;
    let body = vec![b'r'; usize::try_from(args.size).unwrap_or(1024)];
    let msgs: Vec<Message> = (0..QUEUES)
        .map(|q| Message::new(TOPIC, body.clone()).with_queue_id(q))
        .collect();
    let mut written = 0u64;
    let mut i = 0usize;
    while written < args.bytes {
        let r = store
            .put_message(&msgs[i % msgs.len()])
            .map_err(|e| BenchError::new(format!("writer: put failed: {e}")))?;
        written += u64::from(r.wrote_bytes).max(1);
        i += 1;
    }
    store
        .flush()
        .map_err(|e| BenchError::new(format!("writer: flush failed: {e}")))?;
    let deadline = Instant::now() + CATCH_UP_DEADLINE;
    loop {
        let s = store.stats();
        if s.dispatched_offset >= s.commit_log_max_offset || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // Two consume-queue flush intervals: the checkpoint records the flushed state.
    std::thread::sleep(ck_interval * 2 + Duration::from_millis(100));
    let mut out = std::io::stdout().lock();
    writeln!(out, "{WRITTEN_LINE} {written}").map_err(|e| BenchError::io("writer: stdout", e))?;
    out.flush()
        .map_err(|e| BenchError::io("writer: stdout", e))?;
    drop(out);
    std::thread::sleep(WRITER_LINGER);
    // Not killed: leave without shutdown all the same.
    std::process::exit(3);
}

/// Start the writer as a child process, wait for its [`WRITTEN_LINE`], SIGKILL it.
fn write_crashed_store(args: &RecoverArgs, root: &Path) -> Result<()> {
    let exe = std::env::current_exe().map_err(|e| BenchError::io("locating ferromq-bench", e))?;
    let child = Command::new(exe)
        .arg(WRITER_SUBCOMMAND)
        .arg("--store")
        .arg(root)
        .args(["--bytes", &args.bytes.to_string()])
        .args(["--size", &args.size.to_string()])
        .args(["--file-size", &args.file_size.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| BenchError::io("starting the writer process", e))?;
    let mut guard = KillOnDrop(child);
    let stdout = guard
        .0
        .stdout
        .take()
        .ok_or_else(|| BenchError::new("writer has no stdout"))?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("recover-writer-out".into())
        .spawn(move || {
            let mut line = String::new();
            let r = BufReader::new(stdout).take(4096).read_line(&mut line);
            let _ = tx.send(r.map(|_| line));
        })
        .map_err(|e| BenchError::io("spawning a reader thread", e))?;
    let line = rx
        .recv_timeout(WRITER_DEADLINE)
        .map_err(|_| BenchError::new("the writer did not report within the deadline"))?
        .map_err(|e| BenchError::io("reading the writer's stdout", e))?;
    if !line.starts_with(WRITTEN_LINE) {
        let status = guard.0.wait().ok();
        return Err(BenchError::new(format!(
            "the writer failed (status {status:?}, said {line:?})"
        )));
    }
    // SIGKILL: the store is left as a crash leaves it.
    guard
        .0
        .kill()
        .map_err(|e| BenchError::io("killing the writer", e))?;
    let _ = guard.0.wait();
    Ok(())
}

/// Drop the page cache (`echo 1 > /proc/sys/vm/drop_caches`) after a sync.
///
/// # Errors
///
/// When the harness may not (not root, read-only `/proc`).
pub fn drop_page_cache() -> std::io::Result<()> {
    rustix::fs::sync();
    std::fs::write("/proc/sys/vm/drop_caches", b"1\n")
}

/// Commitlog files of a store, in offset order (names are 20-digit offsets).
///
/// # Errors
///
/// When the folder cannot be listed.
pub fn commitlog_files(root: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let dir = root.join("commitlog");
    let rd = std::fs::read_dir(&dir).map_err(|e| BenchError::io(dir.display(), e))?;
    let mut files = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| BenchError::io(dir.display(), e))?;
        let name = entry.file_name();
        if let Some(off) = name.to_str().and_then(|n| n.parse::<u64>().ok()) {
            files.push((off, entry.path()));
        }
    }
    files.sort();
    Ok(files)
}

/// Read the commitlog `files` (log offset of each file's start, path) over the
/// log range `[from, end)`, CRC32 everything read. Returns (bytes read, crc).
///
/// # Errors
///
/// When a file cannot be opened, positioned or read.
pub fn read_crc(files: &[(u64, PathBuf)], from: u64, end: u64) -> Result<(u64, u32)> {
    use std::io::Seek as _;
    let mut buf = vec![0u8; READ_BUFFER_BYTES];
    let mut hasher = crc32fast::Hasher::new();
    let mut total = 0u64;
    for (i, (start, path)) in files.iter().enumerate() {
        if *start >= end {
            break;
        }
        let file_end = files.get(i + 1).map_or(end, |(next, _)| (*next).min(end));
        if file_end <= from {
            continue;
        }
        let skip = from.saturating_sub(*start);
        let mut left = end - start - skip;
        let mut f = std::fs::File::open(path).map_err(|e| BenchError::io(path.display(), e))?;
        if skip > 0 {
            f.seek(std::io::SeekFrom::Start(skip))
                .map_err(|e| BenchError::io(path.display(), e))?;
        }
        while left > 0 {
            let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
            let n = f
                .read(&mut buf[..want])
                .map_err(|e| BenchError::io(path.display(), e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            total += n as u64;
            left -= n as u64;
        }
    }
    Ok((total, hasher.finalize()))
}

/// Run the whole measurement.
///
/// # Errors
///
/// When the store cannot be written, reopened or read.
pub fn measure(args: &RecoverArgs) -> Result<RecoverResult> {
    if args.size == 0 || args.bytes == 0 {
        return Err(BenchError::new("--bytes and --size must be at least 1"));
    }
    if args.size + 4096 > args.file_size {
        return Err(BenchError::new(format!(
            "--file-size {} cannot hold a message of --size {}",
            args.file_size, args.size
        )));
    }
    let (base, _tmp) = crate::machine::dir_or_temp(args.dir.dir.as_deref())?;
    let root = base.join("recover-store");
    if root.exists() {
        std::fs::remove_dir_all(&root).map_err(|e| BenchError::io(root.display(), e))?;
    }
    std::fs::create_dir_all(&root).map_err(|e| BenchError::io(root.display(), e))?;
    let result = measure_in(args, &root);
    let _ = std::fs::remove_dir_all(&root);
    result
}

fn measure_in(args: &RecoverArgs, root: &Path) -> Result<RecoverResult> {
    write_crashed_store(args, root)?;
    if !root.join("abort").exists() {
        return Err(BenchError::new("the crashed store has no abort file"));
    }
    if !args.from_checkpoint {
        let ck = root.join("checkpoint");
        std::fs::remove_file(&ck).map_err(|e| BenchError::io(ck.display(), e))?;
    }
    let files = commitlog_files(root)?;
    // The written end: the largest file's start plus its records, as the
    // engine will recover it; bound the read by the total of all files first.
    let all_bytes: u64 = files.len() as u64 * args.file_size;

    let mut cache = if args.cached {
        "warm".to_string()
    } else {
        match drop_page_cache() {
            Ok(()) => "cold".to_string(),
            Err(e) => format!("warm (page cache not dropped: {e})"),
        }
    };
    let cold = cache == "cold";
    if !cold {
        read_crc(&files, 0, all_bytes)?;
    }

    // Recovery first (it tells the end of the log), then the baseline over the
    // same bytes; each one cold when allowed.
    let t0 = Instant::now();
    let store = MessageStore::open(store_config(root, args.file_size))
        .map_err(|e| BenchError::new(format!("reopen failed: {e}")))?;
    let recover_seconds = t0.elapsed().as_secs_f64();
    let report: RecoveryReport = store.recovery_report().clone();
    let min = store.stats().commit_log_min_offset;
    store
        .shutdown()
        .map_err(|e| BenchError::new(format!("shutdown after reopen failed: {e}")))?;
    drop(store);
    let end = report.commit_log.max_offset;
    if cold {
        if let Err(e) = drop_page_cache() {
            cache = format!("mixed (second drop failed: {e})");
        }
    }
    let files = commitlog_files(root)?;
    let t1 = Instant::now();
    let measured_from = report.commit_log.scanned_from.max(min);
    let (read_bytes, crc) = read_crc(&files, measured_from, end)?;
    let read_crc_seconds = t1.elapsed().as_secs_f64();
    let commitlog_bytes = end.saturating_sub(min);
    let measured_bytes = end.saturating_sub(measured_from);
    let recover_mb_per_sec = mb_per_sec(measured_bytes, recover_seconds);
    let read_crc_mb_per_sec = mb_per_sec(read_bytes, read_crc_seconds);
    Ok(RecoverResult {
        variant: if args.from_checkpoint {
            "checkpoint"
        } else {
            "full"
        },
        basis: "commitlog bytes recovery walked and verified (measured_from to the end)",
        cache,
        size_bytes: args.size,
        file_size_bytes: args.file_size,
        commitlog_bytes,
        measured_from,
        measured_bytes,
        commitlog_files: files.iter().filter(|(start, _)| *start < end).count(),
        recover_seconds,
        recover_mb_per_sec,
        read_crc_seconds,
        read_crc_mb_per_sec,
        ratio: if read_crc_mb_per_sec > 0.0 {
            recover_mb_per_sec / read_crc_mb_per_sec
        } else {
            0.0
        },
        read_crc32: crc,
        abnormal: report.abnormal,
        files_scanned: report.commit_log.files_scanned,
        bytes_scanned: report.commit_log.bytes_scanned,
        bytes_truncated: report.commit_log.bytes_truncated,
        files_removed: report.commit_log.files_removed,
        max_offset: report.commit_log.max_offset,
        consume_queues: report.consume_queues,
        consume_queue_units_truncated: report.consume_queue_units_truncated,
        records_redispatched: report.records_redispatched,
        redispatched_from: report.redispatched_from,
        consume_queues_rebuilt: report.consume_queues_rebuilt,
        rebuilt_from_log_start: report.rebuilt_from_log_start,
        recovery_millis: report.millis,
        walk_millis: report.walk_millis,
        consume_queue_millis: report.consume_queue_millis,
        redispatch_millis: report.redispatch_millis,
    })
}

/// `ferromq-bench recover`: measure, print, return the exit code (0).
///
/// # Errors
///
/// As [`measure`], or when stdout cannot be written.
pub fn run_recover(args: &RecoverArgs) -> Result<i32> {
    let r = measure(args)?;
    crate::reporting::print_result(args.json.json, &r, report::text)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_crc_stops_at_end_and_spans_files() {
        let tmp = tempfile::tempdir().unwrap();
        let a = tmp.path().join("00000000000000000000");
        let b = tmp.path().join("00000000000000000010");
        std::fs::write(&a, [1u8; 10]).unwrap();
        std::fs::write(&b, [2u8; 10]).unwrap();
        let files = vec![(0, a), (10, b)];
        let (n, crc) = read_crc(&files, 0, 15).unwrap();
        assert_eq!(n, 15);
        let mut h = crc32fast::Hasher::new();
        h.update(&[1u8; 10]);
        h.update(&[2u8; 5]);
        assert_eq!(crc, h.finalize());
        // From inside the first file, and from the second.
        let (n, crc) = read_crc(&files, 7, 15).unwrap();
        assert_eq!(n, 8);
        let mut h = crc32fast::Hasher::new();
        h.update(&[1u8; 3]);
        h.update(&[2u8; 5]);
        assert_eq!(crc, h.finalize());
        let (n, _) = read_crc(&files, 12, 15).unwrap();
        assert_eq!(n, 3);
    }

    #[test]
    fn mb_per_sec_guards_zero() {
        assert_eq!(mb_per_sec(10, 0.0), 0.0);
        assert!((mb_per_sec(2_000_000, 2.0) - 1.0).abs() < 1e-9);
    }
}
