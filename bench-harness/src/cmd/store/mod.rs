//! `ferromq-bench store`: drive the embedded engine in-process, measure the
//! baselines on the same directory, print the figures and write the report.
//!
//! With no workload flag it runs the default suite, the project's main job:
//! ASYNC_FLUSH 1 KiB 1 producer, SYNC_FLUSH 1 KiB 1 producer and SYNC_FLUSH
//! 1 KiB 32 producers, each bounded by a message count and a time cap so the
//! whole suite ends within a minute even on a slow disk.

mod execute;
pub mod report;

use execute::WorkDir;
pub use execute::{execute, ENGINE_REPEAT_BUDGET_SECS};
use report::{summary, targets_summary};

use std::io::Write as _;
use std::time::{Duration, Instant};

use crate::baseline::{self, BaselineResult, BaselineSpec};
use crate::cli::{DiskDir, JsonFlag, OutDir};
use crate::error::{BenchError, Result};
use crate::machine::MachineInfo;
use crate::results::{check_targets, EngineRepeat, RunInputs, RunResult, SuiteResult};
use crate::target::engine::{EngineTarget, EngineTargetConfig};
use crate::workload::{self, FlushMode, Target, Workload};

/// Messages of a single run when `--messages` is not given.
pub const DEFAULT_MESSAGES: u64 = 100_000;
/// Commitlog file size when `--file-size` is not given: RocketMQ's 1 GiB.
pub const DEFAULT_FILE_SIZE: u64 = 1 << 30;
/// Time cap of each suite run's puts.
pub const SUITE_RUN_CAP: Duration = Duration::from_secs(7);
/// Per-run time cap of the write-path suite (24 runs).
pub const WRITE_PATH_RUN_CAP: Duration = Duration::from_secs(4);
/// Time cap of each suite run's flush-mode baseline.
pub const SUITE_BASELINE_CAP: Duration = Duration::from_secs(5);
/// The memcpy baselines are short and noisy: measure them up to this many
/// times and keep the median.
pub const MMAP_BASELINE_REPEATS: u32 = 5;
/// ... as long as their timed seconds stay under this.
pub const MMAP_BASELINE_BUDGET_SECS: f64 = 1.5;
/// Time cap of every warm baseline (it is fast; the cap only guards odd machines).
pub const WARM_BASELINE_CAP: Duration = Duration::from_secs(1);

/// Flags of `ferromq-bench store`.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct StoreArgs {
    /// Messages to put (a single run). Without any of --messages, --size,
    /// --producers, --flush the default suite runs.
    #[arg(long, value_parser = parse_count)]
    pub messages: Option<u64>,
    /// Body size in bytes (suffixes k, KiB, M, MiB accepted). Default 1024.
    #[arg(long, value_parser = parse_bytes)]
    pub size: Option<u64>,
    /// Producer threads. Default 1.
    #[arg(long)]
    pub producers: Option<usize>,
    /// Flush mode: async (ASYNC_FLUSH) or sync (SYNC_FLUSH). Default async.
    #[arg(long, value_parser = parse_flush)]
    pub flush: Option<FlushMode>,
    /// The directory under test.
    #[command(flatten)]
    pub dir: DiskDir,
    /// Commitlog file size in bytes (suffixes accepted). Default 1 GiB.
    #[arg(long = "file-size", value_parser = parse_bytes)]
    pub file_size: Option<u64>,
    /// Stop each run's puts (and each baseline) after this many seconds and
    /// report what was measured. Default: none for a single run; in the suite 7 s
    /// per run and 5 s per fdatasync baseline.
    #[arg(long = "max-seconds")]
    pub max_seconds: Option<f64>,
    /// `--json`.
    #[command(flatten)]
    pub json: JsonFlag,
    /// Where the report folder goes.
    #[command(flatten)]
    pub out: OutDir,
    /// Do not write a report folder.
    #[arg(long)]
    pub no_report: bool,
    /// A store setting with its RocketMQ key, e.g. `--set flushCommitLogLeastPages=16`
    /// (repeatable; applied to every run).
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_setting)]
    pub set: Vec<(String, String)>,
    /// Commitlog write paths to compare, comma-separated: `mmap` (puts copy
    /// into the mapped file), `pool-pwrite` and `pool-io-uring` (puts copy into
    /// the transient store pool; a commit service writes it with pwrite, or
    /// with io_uring from registered buffers; SYNC_FLUSH through the pool with
    /// `transientStorePoolSyncFlushEnable`). Each workload runs once per path,
    /// the paths interleaved. Without workload flags: the write-path suite
    /// (1 KiB and 16 KiB, 1 and 32 producers, ASYNC and SYNC).
    #[arg(long = "write-path", value_delimiter = ',', value_enum)]
    pub write_path: Vec<WritePath>,
    /// Do not cycle page cache through a scratch file before each timed
    /// section (each engine run and each fresh-mapping baseline). By default
    /// both start from just-used memory, so that on a VM that hands free
    /// pages back to its host neither pays host page faults the other does
    /// not (see the report's note).
    #[arg(long = "no-recycle")]
    pub no_recycle: bool,
    /// Engine runs per workload, each on a fresh store after the same memory
    /// preparation; the run with the median MB/s is reported and every run's
    /// figures are listed. Default: 5 for ASYNC_FLUSH (short runs compared
    /// with memcpy baselines that are themselves medians of 5), 1 for SYNC_FLUSH.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub repeat: Option<u32>,
}

/// A commitlog write path (`--write-path`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WritePath {
    /// Puts copy into the mapped commitlog file.
    Mmap,
    /// Transient store pool, committed with `pwrite` (+ `fdatasync`).
    PoolPwrite,
    /// Transient store pool, committed through io_uring.
    PoolIoUring,
}

impl WritePath {
    /// The name used in run names and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            WritePath::Mmap => "mmap",
            WritePath::PoolPwrite => "pool-pwrite",
            WritePath::PoolIoUring => "pool-io-uring",
        }
    }

    /// The store settings that select this path.
    pub fn settings(self) -> Vec<(String, String)> {
        let kv = |k: &str, v: &str| (k.to_string(), v.to_string());
        match self {
            WritePath::Mmap => vec![kv("transientStorePoolEnable", "false")],
            WritePath::PoolPwrite | WritePath::PoolIoUring => vec![
                kv("transientStorePoolEnable", "true"),
                kv("transientStorePoolSyncFlushEnable", "true"),
                kv(
                    "ioUringEnable",
                    if self == WritePath::PoolIoUring {
                        "true"
                    } else {
                        "false"
                    },
                ),
            ],
        }
    }
}

fn parse_setting(s: &str) -> std::result::Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not KEY=VALUE"))?;
    let (k, v) = (k.trim(), v.trim());
    if !ferromq_engine::config::is_known_key(k) {
        return Err(format!("`{k}` is not a store or broker key"));
    }
    Ok((k.to_string(), v.to_string()))
}

pub use crate::cli::DEFAULT_OUT;

impl Default for StoreArgs {
    /// What `ferromq-bench store` with no flags means: the default suite,
    /// reported into `results/`.
    fn default() -> Self {
        StoreArgs {
            messages: None,
            size: None,
            producers: None,
            flush: None,
            dir: DiskDir::default(),
            file_size: None,
            max_seconds: None,
            json: JsonFlag::default(),
            out: OutDir::default(),
            no_report: false,
            set: Vec::new(),
            write_path: Vec::new(),
            no_recycle: false,
            repeat: None,
        }
    }
}

fn parse_flush(s: &str) -> std::result::Result<FlushMode, String> {
    s.parse::<FlushMode>().map_err(|e| e.to_string())
}

fn parse_count(s: &str) -> std::result::Result<u64, String> {
    let t: String = s.trim().chars().filter(|c| *c != '_').collect();
    t.parse::<u64>()
        .map_err(|_| format!("`{s}` is not a whole number"))
}

/// A byte count with an optional suffix: `1024`, `4k`, `4KiB`, `1M`, `1MiB`, `1G`, `1GiB` (all powers of 1024).
///
/// # Errors
///
/// A message naming the text that did not parse.
pub fn parse_bytes(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '_')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num: String = num.chars().filter(|c| *c != '_').collect();
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a byte count (like 1024, 4KiB, 1GiB)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => {
            return Err(format!(
                "`{s}` has an unknown unit (use k, KiB, M, MiB, G or GiB)"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("`{s}` is too large"))
}

/// One run to do: a named workload and its baselines' time cap.
#[derive(Debug, Clone, PartialEq)]
pub struct RunPlan {
    /// Short name: `async-1024B-1p`.
    pub name: String,
    /// What to put.
    pub workload: Workload,
    /// Time cap of the flush-mode baseline.
    pub baseline_cap: Option<Duration>,
    /// The write path this run uses, when `--write-path` chose one.
    pub write_path: Option<WritePath>,
    /// Cycle page cache before each timed section ([`baseline::recycle_page_cache`]).
    pub recycle_page_cache: bool,
    /// Engine runs to make; the median one (by MB/s) is reported.
    pub engine_repeats: u32,
}

impl StoreArgs {
    /// True when no workload flag was given: run the default suite.
    pub fn is_suite(&self) -> bool {
        self.messages.is_none()
            && self.size.is_none()
            && self.producers.is_none()
            && self.flush.is_none()
    }

    fn cap(&self) -> Result<Option<Duration>> {
        match self.max_seconds {
            None => Ok(None),
            Some(s) if s.is_finite() && s > 0.0 => Ok(Some(Duration::from_secs_f64(s))),
            Some(s) => Err(BenchError::new(format!(
                "--max-seconds {s} must be a positive number"
            ))),
        }
    }

    /// The runs these flags ask for, validated.
    ///
    /// # Errors
    ///
    /// When a flag value cannot make a valid workload.
    pub fn plans(&self) -> Result<Vec<RunPlan>> {
        let file_size = self.file_size.unwrap_or(DEFAULT_FILE_SIZE);
        let cap = self.cap()?;
        let plans = if self.is_suite() && !self.write_path.is_empty() {
            let suite_cap = cap.or(Some(WRITE_PATH_RUN_CAP));
            let base_cap = cap.or(Some(SUITE_BASELINE_CAP));
            let mut v = Vec::new();
            for flush in [FlushMode::Async, FlushMode::Sync] {
                for size in [1024usize, 16 * 1024] {
                    for producers in [1usize, 32] {
                        let messages = match (flush, producers) {
                            (FlushMode::Async, _) => 200_000,
                            (FlushMode::Sync, 1) => 20_000,
                            (FlushMode::Sync, _) => 100_000,
                        };
                        let mut w = Workload::new(messages);
                        w.flush = flush;
                        w.size_bytes = size;
                        w.producers = producers;
                        w.file_size_bytes = file_size;
                        w.max_duration = suite_cap;
                        w.store_settings = self.set.clone();
                        v.push(plan(w, base_cap));
                    }
                }
            }
            v
        } else if self.is_suite() {
            let suite_cap = cap.or(Some(SUITE_RUN_CAP));
            let base_cap = cap.or(Some(SUITE_BASELINE_CAP));
            [
                (FlushMode::Async, 1, 200_000),
                (FlushMode::Sync, 1, 20_000),
                (FlushMode::Sync, 32, 100_000),
            ]
            .into_iter()
            .map(|(flush, producers, messages)| {
                let mut w = Workload::new(messages);
                w.flush = flush;
                w.producers = producers;
                w.file_size_bytes = file_size;
                w.max_duration = suite_cap;
                w.store_settings = self.set.clone();
                plan(w, base_cap)
            })
            .collect()
        } else {
            let mut w = Workload::new(self.messages.unwrap_or(DEFAULT_MESSAGES));
            let size = self.size.unwrap_or(1024);
            w.size_bytes = usize::try_from(size)
                .map_err(|_| BenchError::new(format!("--size {size} is too large")))?;
            w.producers = self.producers.unwrap_or(1);
            w.flush = self.flush.unwrap_or(FlushMode::Async);
            w.file_size_bytes = file_size;
            w.max_duration = cap;
            w.store_settings = self.set.clone();
            vec![plan(w, cap)]
        };
        let mut plans = with_write_paths(plans, &self.write_path);
        for p in &mut plans {
            p.workload.validate()?;
            p.recycle_page_cache = !self.no_recycle;
            if let Some(n) = self.repeat {
                p.engine_repeats = n;
            }
        }
        Ok(plans)
    }

    /// A `ferromq-bench store` command that repeats `plan` alone.
    pub fn command_for(&self, plan: &RunPlan) -> String {
        let w = &plan.workload;
        let mut args = vec![
            "ferromq-bench".to_string(),
            "store".to_string(),
            "--flush".to_string(),
            w.flush.as_str().to_string(),
            "--size".to_string(),
            w.size_bytes.to_string(),
            "--producers".to_string(),
            w.producers.to_string(),
            "--messages".to_string(),
            w.messages.to_string(),
            "--file-size".to_string(),
            w.file_size_bytes.to_string(),
        ];
        if let Some(cap) = w.max_duration {
            args.push("--max-seconds".to_string());
            args.push(format!("{}", cap.as_secs_f64()));
        }
        if let Some(dir) = &self.dir.dir {
            args.push("--dir".to_string());
            args.push(dir.display().to_string());
        }
        for (k, v) in &w.store_settings {
            args.push("--set".to_string());
            args.push(format!("{k}={v}"));
        }
        if plan.engine_repeats != default_engine_repeats(w.flush) {
            args.push("--repeat".to_string());
            args.push(plan.engine_repeats.to_string());
        }
        crate::reporting::shell_join(args)
    }
}

fn plan(workload: Workload, baseline_cap: Option<Duration>) -> RunPlan {
    RunPlan {
        name: format!(
            "{}-{}B-{}p",
            workload.flush.as_str(),
            workload.size_bytes,
            workload.producers
        ),
        baseline_cap,
        write_path: None,
        recycle_page_cache: true,
        engine_repeats: default_engine_repeats(workload.flush),
        workload,
    }
}

/// Engine runs per workload without `--repeat`: ASYNC_FLUSH runs last a
/// fraction of a second and are compared with memcpy baselines that are
/// medians of [`MMAP_BASELINE_REPEATS`], so they are repeated as often; a
/// SYNC_FLUSH run is long and bracketed by its own baseline.
pub fn default_engine_repeats(flush: FlushMode) -> u32 {
    match flush {
        FlushMode::Async => MMAP_BASELINE_REPEATS,
        FlushMode::Sync => 1,
    }
}

/// Each plan once per write path, the paths interleaved (plan 1 on every
/// path, then plan 2 ...), so that drift of a shared machine hits every path
/// alike. The path's settings go after the user's `--set`s (the path wins).
fn with_write_paths(plans: Vec<RunPlan>, paths: &[WritePath]) -> Vec<RunPlan> {
    if paths.is_empty() {
        return plans;
    }
    let mut out = Vec::with_capacity(plans.len() * paths.len());
    for p in plans {
        for &path in paths {
            let mut q = p.clone();
            q.name = format!("{}-{}", p.name, path.as_str());
            q.workload.store_settings.extend(path.settings());
            q.write_path = Some(path);
            out.push(q);
        }
    }
    out
}

/// Run `ferromq-bench store` with `args`; `argv` is the exact command line
/// for the report. Returns the process exit code: 0, or 1 when puts failed.
///
/// # Errors
///
/// Bad flags, a target that cannot be opened, a failing baseline, a report
/// that cannot be written.
pub fn run_store(args: &StoreArgs, argv: &[String]) -> Result<i32> {
    let started = Instant::now();
    let (stamp, iso) = crate::reporting::utc_now();
    let plans = args.plans()?;
    let workdir = WorkDir::new(args.dir.dir.as_deref())?;
    let machine = MachineInfo::collect(workdir.path());
    let mut human: Box<dyn std::io::Write> = if args.json.json {
        Box::new(std::io::stderr())
    } else {
        Box::new(std::io::stdout())
    };

    let mut runs = Vec::with_capacity(plans.len());
    for (i, plan) in plans.iter().enumerate() {
        eprintln!(
            "[{}/{}] {}: {} messages of {} B, {} producer(s), {}{} in {}",
            i + 1,
            plans.len(),
            plan.name,
            plan.workload.messages,
            plan.workload.size_bytes,
            plan.workload.producers,
            plan.workload.flush.rocketmq_name(),
            plan.workload
                .max_duration
                .map(|d| format!(", cap {:.0} s", d.as_secs_f64()))
                .unwrap_or_default(),
            workdir.path().display()
        );
        let result = execute::<EngineTarget>(
            plan,
            workdir.path(),
            i,
            |store_dir| EngineTargetConfig {
                store_dir: store_dir.to_path_buf(),
            },
            EngineTarget::NAME,
            args.command_for(plan),
        )?;
        let _ = writeln!(human, "{}", summary(&result));
        runs.push(result);
    }
    let targets = check_targets(&runs);
    if args.is_suite() {
        let _ = writeln!(human, "{}", targets_summary(&targets));
    }
    let suite = SuiteResult {
        command: crate::reporting::shell_join(argv),
        git_commit: crate::reporting::git_commit(),
        started_utc: iso,
        total_seconds: started.elapsed().as_secs_f64(),
        machine,
        runs,
        targets,
    };
    let report_dir = if args.no_report {
        None
    } else {
        let dir = report::write_report(&args.out.out, &stamp, &suite)?;
        let _ = writeln!(human, "report: {}", dir.join("report.md").display());
        Some(dir)
    };
    let _ = human.flush();
    drop(human);

    if args.json.json {
        let mut value = if args.is_suite() {
            serde_json::to_value(&suite)
        } else {
            serde_json::to_value(&suite.runs[0])
        }
        .map_err(|e| BenchError::new(format!("cannot encode results as JSON: {e}")))?;
        if let Some(obj) = value.as_object_mut() {
            obj.insert(
                "report_dir".to_string(),
                report_dir
                    .as_ref()
                    .map_or(serde_json::Value::Null, |d| d.display().to_string().into()),
            );
        }
        let text = serde_json::to_string(&value)
            .map_err(|e| BenchError::new(format!("cannot encode results as JSON: {e}")))?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{text}")
            .and_then(|()| out.flush())
            .map_err(|e| BenchError::io("cannot write JSON to stdout", e))?;
    }

    let errors: u64 = suite.runs.iter().map(|r| r.put_errors).sum();
    if errors > 0 {
        eprintln!("error: {errors} puts failed; see first_error in the results");
        return Ok(1);
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn byte_counts() {
        assert_eq!(parse_bytes("1024"), Ok(1024));
        assert_eq!(parse_bytes("4k"), Ok(4096));
        assert_eq!(parse_bytes("1GiB"), Ok(1 << 30));
        assert_eq!(parse_bytes("1_048_576"), Ok(1 << 20));
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("1 parsec").is_err());
        assert!(parse_bytes("99999999999G").is_err());
    }

    #[test]
    fn no_workload_flag_means_the_suite() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            store: StoreArgs,
        }
        // `StoreArgs::default()` (plain `ferromq-bench`) and `store` with no
        // flags must mean the same thing.
        let parsed = Cli::try_parse_from(["store"]).unwrap().store;
        let a = StoreArgs::default();
        assert_eq!(parsed, a);
        assert_eq!(a.out.out, PathBuf::from("results"));
        assert!(a.is_suite());
        let plans = a.plans().unwrap();
        let names: Vec<&str> = plans.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["async-1024B-1p", "sync-1024B-1p", "sync-1024B-32p"]);
        assert!(plans
            .iter()
            .all(|p| p.workload.max_duration == Some(SUITE_RUN_CAP)));
        assert!(plans
            .iter()
            .all(|p| p.workload.file_size_bytes == DEFAULT_FILE_SIZE));
        // Worst case: every run and every baseline hits its cap.
        let worst: Duration = plans
            .iter()
            .map(|p| {
                SUITE_RUN_CAP
                    + p.baseline_cap.unwrap_or_default()
                    + WARM_BASELINE_CAP
                    + 2 * Duration::from_secs_f64(MMAP_BASELINE_BUDGET_SECS)
            })
            .sum();
        assert!(worst <= Duration::from_secs(50), "{worst:?}");
    }

    #[test]
    fn async_runs_repeat_five_times_and_sync_once_unless_asked() {
        let suite = StoreArgs::default().plans().unwrap();
        let repeats: Vec<u32> = suite.iter().map(|p| p.engine_repeats).collect();
        assert_eq!(repeats, [5, 1, 1]);
        let a = StoreArgs {
            messages: Some(1000),
            repeat: Some(7),
            ..StoreArgs::default()
        };
        let plans = a.plans().unwrap();
        assert_eq!(plans[0].engine_repeats, 7);
        assert!(a.command_for(&plans[0]).ends_with(" --repeat 7"));
        let plain = StoreArgs {
            messages: Some(1000),
            ..StoreArgs::default()
        };
        let plans = plain.plans().unwrap();
        assert_eq!(plans[0].engine_repeats, 5);
        assert!(!plain.command_for(&plans[0]).contains("--repeat"));
    }

    #[test]
    fn single_run_from_flags() {
        let a = StoreArgs {
            messages: Some(2000),
            size: Some(256),
            flush: Some(FlushMode::Sync),
            file_size: Some(1 << 20),
            ..StoreArgs::default()
        };
        assert!(!a.is_suite());
        let plans = a.plans().unwrap();
        assert_eq!(plans.len(), 1);
        let w = &plans[0].workload;
        assert_eq!(
            (w.messages, w.size_bytes, w.producers, w.flush),
            (2000, 256, 1, FlushMode::Sync)
        );
        assert_eq!(w.max_duration, None);
        assert_eq!(
            a.command_for(&plans[0]),
            "ferromq-bench store --flush sync --size 256 --producers 1 --messages 2000 --file-size 1048576"
        );
        let bad = StoreArgs {
            producers: Some(0),
            ..StoreArgs::default()
        };
        assert!(bad.plans().is_err());
        let bad = StoreArgs {
            max_seconds: Some(-1.0),
            ..StoreArgs::default()
        };
        assert!(bad.plans().unwrap_err().message().contains("--max-seconds"));
    }

    #[test]
    fn write_paths_interleave_and_select_the_pool() {
        let a = StoreArgs {
            write_path: vec![WritePath::Mmap, WritePath::PoolIoUring],
            ..StoreArgs::default()
        };
        let plans = a.plans().unwrap();
        // The write-path suite: 2 flush modes x 2 sizes x 2 producer counts, per path.
        assert_eq!(plans.len(), 16);
        assert_eq!(plans[0].name, "async-1024B-1p-mmap");
        assert_eq!(plans[1].name, "async-1024B-1p-pool-io-uring");
        assert_eq!(plans[2].name, "async-1024B-32p-mmap");
        assert!(plans
            .iter()
            .all(|p| p.workload.max_duration == Some(WRITE_PATH_RUN_CAP)));
        let has = |p: &RunPlan, k: &str, v: &str| {
            p.workload
                .store_settings
                .iter()
                .any(|(a, b)| a == k && b == v)
        };
        assert!(has(&plans[0], "transientStorePoolEnable", "false"));
        assert!(has(&plans[1], "transientStorePoolEnable", "true"));
        assert!(has(&plans[1], "ioUringEnable", "true"));
        assert!(has(&plans[1], "transientStorePoolSyncFlushEnable", "true"));
        // A single workload: once per path, with the user's settings kept first.
        let a = StoreArgs {
            messages: Some(10),
            write_path: vec![WritePath::PoolPwrite],
            set: vec![("transientStorePoolSize".into(), "2".into())],
            ..StoreArgs::default()
        };
        let plans = a.plans().unwrap();
        assert_eq!(plans.len(), 1);
        assert_eq!(plans[0].write_path, Some(WritePath::PoolPwrite));
        assert_eq!(
            plans[0].workload.store_settings[0].0,
            "transientStorePoolSize"
        );
        assert!(has(&plans[0], "ioUringEnable", "false"));
    }
}
