//! `ferromq-bench store`: drive the embedded engine in-process, measure the
//! baselines on the same directory, print the figures and write the report.
//!
//! With no workload flag it runs the default suite, the project's main job:
//! ASYNC_FLUSH 1 KiB 1 producer, SYNC_FLUSH 1 KiB 1 producer and SYNC_FLUSH
//! 1 KiB 32 producers, each bounded by a message count and a time cap so the
//! whole suite ends within a minute even on a slow disk.

pub mod report;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::baseline::{self, BaselineResult, BaselineSpec};
use crate::cli::{DiskDir, JsonFlag, OutDir};
use crate::error::{BenchError, Result};
use crate::machine::MachineInfo;
use crate::results::{check_targets, EngineRepeat, RunInputs, RunResult, SuiteResult, TargetCheck};
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

/// The directory runs happen in: the user's, or a temporary one removed on drop.
enum WorkDir {
    User(PathBuf),
    Temp(tempfile::TempDir),
}

impl WorkDir {
    fn new(dir: Option<&Path>) -> Result<Self> {
        match dir {
            Some(d) => {
                std::fs::create_dir_all(d).map_err(|e| {
                    BenchError::io(format!("cannot create --dir {}", d.display()), e)
                })?;
                let meta = std::fs::metadata(d)
                    .map_err(|e| BenchError::io(format!("cannot read --dir {}", d.display()), e))?;
                if !meta.is_dir() {
                    return Err(BenchError::new(format!(
                        "--dir {} is not a directory",
                        d.display()
                    )));
                }
                Ok(WorkDir::User(d.to_path_buf()))
            }
            None => tempfile::Builder::new()
                .prefix("ferromq-bench-")
                .tempdir()
                .map(WorkDir::Temp)
                .map_err(|e| BenchError::io("cannot create a temporary directory", e)),
        }
    }

    fn path(&self) -> &Path {
        match self {
            WorkDir::User(p) => p,
            WorkDir::Temp(t) => t.path(),
        }
    }
}

/// Run `plan` against the target `T`: open it on a fresh sub-directory of
/// `dir`, put, shut down, remove the store, then measure the baselines for
/// the same number of bytes on the same directory.
///
/// # Errors
///
/// When the target cannot be opened or shut down, or a baseline fails.
pub fn execute<T: Target>(
    plan: &RunPlan,
    dir: &Path,
    index: usize,
    config: impl Fn(&Path) -> T::Config,
    target_name: &str,
    command: String,
) -> Result<RunResult> {
    let w = &plan.workload;
    let store_dir = dir.join(format!(
        "ferromq-bench-store-{}-{index}",
        std::process::id()
    ));
    // The fdatasync baseline drifts with whatever else uses the disk, so it
    // brackets the run: half its time cap before, half after, pooled.
    let half_cap = plan.baseline_cap.map(|c| c / 2);
    let sync_before = if w.flush == FlushMode::Sync {
        let spec = BaselineSpec {
            dir: dir.to_path_buf(),
            file_size_bytes: w.file_size_bytes,
            chunk_bytes: w.size_bytes,
            total_bytes: w.total_bytes(),
            max_duration: half_cap,
        };
        Some(baseline::sync_write(&spec, w.producers)?)
    } else {
        None
    };
    let mut engine_runs: Vec<EngineRun> = Vec::new();
    let mut spent = 0.0;
    while (engine_runs.len() as u32) < plan.engine_repeats.max(1)
        && (engine_runs.is_empty() || spent < ENGINE_REPEAT_BUDGET_SECS)
    {
        // A repeat gets what is left of the budget as its time cap, so the
        // repeats together take no longer than the first run's cap allows.
        let mut this = plan.clone();
        if !engine_runs.is_empty() {
            let left = Duration::from_secs_f64((ENGINE_REPEAT_BUDGET_SECS - spent).max(0.001));
            this.workload.max_duration =
                Some(this.workload.max_duration.map_or(left, |c| c.min(left)));
        }
        let run = engine_run::<T>(&this, &store_dir, &config, target_name)?;
        spent += run.measurement.elapsed.as_secs_f64();
        let failed = run.measurement.put_errors > 0 || run.measurement.messages == 0;
        engine_runs.push(run);
        if failed {
            break; // reported as it is: repeating would hide the failure
        }
    }
    let repeats: Vec<EngineRepeat> = engine_runs
        .iter()
        .map(|r| EngineRepeat::of_measurement(&r.measurement, w.producers))
        .collect();
    let last_failed = engine_runs
        .last()
        .is_some_and(|r| r.measurement.put_errors > 0 || r.measurement.messages == 0);
    let kept = kept_repeat(&repeats, last_failed);
    let EngineRun {
        measurement,
        shutdown_seconds,
        details,
        memory_prep: run_prep,
    } = engine_runs.swap_remove(kept);
    let repeats = repeats
        .into_iter()
        .enumerate()
        .map(|(i, r)| EngineRepeat {
            kept: i == kept,
            ..r
        })
        .collect::<Vec<_>>();

    let spec = BaselineSpec {
        dir: dir.to_path_buf(),
        file_size_bytes: w.file_size_bytes,
        chunk_bytes: w.size_bytes,
        total_bytes: measurement.bytes,
        max_duration: plan.baseline_cap,
    };
    let (base, warm) = if measurement.bytes == 0 {
        let empty = |kind| BaselineResult {
            kind,
            bytes: 0,
            seconds: 0.0,
            mb_per_sec: 0.0,
            ops: 0,
            files: 0,
            stopped_early: false,
            repeats: 0,
            min_mb_per_sec: 0.0,
            max_mb_per_sec: 0.0,
        };
        let kind = match w.flush {
            FlushMode::Async => baseline::BaselineKind::ColdMmap,
            FlushMode::Sync => baseline::BaselineKind::PwriteFdatasync,
        };
        (empty(kind), empty(baseline::BaselineKind::WarmMmap))
    } else {
        let base = match w.flush {
            FlushMode::Async => {
                baseline::median_of(MMAP_BASELINE_REPEATS, MMAP_BASELINE_BUDGET_SECS, |cap| {
                    if plan.recycle_page_cache {
                        baseline::recycle_page_cache(dir, recycle_bytes(spec.total_bytes))?;
                    }
                    baseline::cold_mmap(&with_cap(&spec, cap))
                })?
            }
            FlushMode::Sync => {
                let after = baseline::sync_write(
                    &BaselineSpec {
                        max_duration: half_cap,
                        ..spec.clone()
                    },
                    w.producers,
                )?;
                match sync_before {
                    Some(before) => baseline::pooled(&[before, after]),
                    None => after,
                }
            }
        };
        let warm_spec = BaselineSpec {
            max_duration: Some(WARM_BASELINE_CAP),
            ..spec
        };
        let warm = baseline::median_of(MMAP_BASELINE_REPEATS, MMAP_BASELINE_BUDGET_SECS, |cap| {
            baseline::warm_mmap(&with_cap(&warm_spec, cap))
        })?;
        (base, warm)
    };
    let mut result = RunResult::new(RunInputs {
        name: plan.name.clone(),
        target: target_name.to_string(),
        command,
        workload: w,
        dir: dir.display().to_string(),
        measurement,
        baseline: base,
        warm_baseline: warm,
        shutdown_seconds,
    });
    result.write_path = plan.write_path.map(|p| p.as_str().to_string());
    result.target_details = details;
    result.memory_prep = run_prep;
    if repeats.len() > 1 {
        result.engine_repeats = repeats;
    }
    Ok(result)
}

/// Which engine run a repeated workload reports: the one with the median
/// MB/s (the lower middle of an even count), or the last when it failed (the
/// repeats stop at a failure, which must not be hidden by earlier runs).
fn kept_repeat(repeats: &[EngineRepeat], last_failed: bool) -> usize {
    if last_failed || repeats.len() < 2 {
        return repeats.len().saturating_sub(1);
    }
    let mut order: Vec<usize> = (0..repeats.len()).collect();
    order.sort_by(|&a, &b| repeats[a].mb_per_sec.total_cmp(&repeats[b].mb_per_sec));
    order[(order.len() - 1) / 2]
}

/// Timed seconds after which no further engine repeat starts.
pub const ENGINE_REPEAT_BUDGET_SECS: f64 = 3.0;

/// One engine run of a workload, with what surrounded it.
struct EngineRun {
    measurement: workload::RunMeasurement,
    shutdown_seconds: f64,
    details: Option<serde_json::Value>,
    memory_prep: Option<baseline::MemoryPrep>,
}

/// Open the target `T` on a fresh `store_dir` (after cycling page cache, if
/// the plan says so), run the workload, shut down, remove the store.
fn engine_run<T: Target>(
    plan: &RunPlan,
    store_dir: &Path,
    config: &impl Fn(&Path) -> T::Config,
    target_name: &str,
) -> Result<EngineRun> {
    let w = &plan.workload;
    if store_dir.exists() {
        std::fs::remove_dir_all(store_dir)
            .map_err(|e| BenchError::io(format!("cannot clear {}", store_dir.display()), e))?;
    }
    std::fs::create_dir_all(store_dir)
        .map_err(|e| BenchError::io(format!("cannot create {}", store_dir.display()), e))?;
    let memory_prep = if plan.recycle_page_cache {
        let dir = store_dir.parent().unwrap_or(store_dir);
        Some(baseline::recycle_page_cache(
            dir,
            recycle_bytes(w.total_bytes()),
        )?)
    } else {
        None
    };
    let outcome = (|| {
        let target = T::open(&config(store_dir), w).map_err(|e| {
            BenchError::new(format!(
                "cannot open the {target_name} in {}: {e}",
                store_dir.display()
            ))
        })?;
        let measured = workload::run(&target, w);
        let details = target.details();
        let t = Instant::now();
        let shut = target.shutdown();
        let shutdown_seconds = t.elapsed().as_secs_f64();
        let measured = measured?;
        shut.map_err(|e| BenchError::new(format!("{target_name} shutdown failed: {e}")))?;
        Ok((measured, shutdown_seconds, details))
    })();
    if let Err(e) = std::fs::remove_dir_all(store_dir) {
        tracing::warn!("cannot remove {}: {e}", store_dir.display());
    }
    let (measurement, shutdown_seconds, details) = outcome?;
    Ok(EngineRun {
        measurement,
        shutdown_seconds,
        details,
        memory_prep,
    })
}

/// Bytes of page cache to cycle before a timed section that writes
/// `payload` bytes: records are a little larger than bodies; the margin
/// covers headers, the pre-faulted window ahead of the write position and
/// the next file's start.
fn recycle_bytes(payload: u64) -> u64 {
    payload + payload / 8 + (64 << 20)
}

/// `spec` with its time cap lowered to `cap`, if one is given.
fn with_cap(spec: &BaselineSpec, cap: Option<Duration>) -> BaselineSpec {
    let mut s = spec.clone();
    if let Some(cap) = cap {
        s.max_duration = Some(s.max_duration.map_or(cap, |own| own.min(cap)));
    }
    s
}

/// Two or three lines about a run, for people.
pub fn summary(r: &RunResult) -> String {
    let l = &r.latency_us;
    let capped = if r.stopped_early { " (time cap)" } else { "" };
    let mut s = format!(
        "{}: {} msgs{} in {:.3} s: {:.0} msgs/s, {:.1} MB/s; latency µs p50 {:.1} p99 {:.1} p99.9 {:.1} max {:.1}\n  \
         baseline ({}) {:.1} MB/s, ratio {:.3}; warm mapping {:.1} MB/s, ratio {:.3}",
        r.name,
        r.messages,
        capped,
        r.seconds,
        r.msgs_per_sec,
        r.mb_per_sec,
        l.p50,
        l.p99,
        l.p999,
        l.max,
        r.baseline.kind.describe(),
        r.baseline_mb_per_sec,
        r.ratio_to_baseline,
        r.warm_baseline_mb_per_sec,
        r.ratio_to_warm_baseline
    );
    let odd: Vec<String> = r
        .status_counts
        .iter()
        .filter(|(k, _)| k.as_str() != "PUT_OK")
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    if !odd.is_empty() {
        s.push_str(&format!(
            "\n  statuses other than PUT_OK: {}",
            odd.join(", ")
        ));
    }
    if r.put_errors > 0 {
        s.push_str(&format!(
            "\n  {} put errors, first: {}",
            r.put_errors,
            r.first_error.as_deref().unwrap_or("?")
        ));
    }
    if !r.engine_repeats.is_empty() {
        s.push_str(&format!(
            "\n  engine runs (median kept): {}",
            crate::report::repeats_list(&r.engine_repeats)
        ));
    }
    s
}

fn targets_summary(targets: &[TargetCheck]) -> String {
    let mut s = String::from("targets (issue 3):");
    for t in targets {
        let result = match t.pass {
            Some(true) => "PASS",
            Some(false) => "FAIL",
            None => "n/a ",
        };
        let measured = t
            .measured
            .map_or("not measured".to_string(), |v| format!("{v:.2}"));
        s.push_str(&format!(
            "\n  {result}  {}: {measured} (required {})",
            t.target, t.required
        ));
    }
    s
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
    fn the_median_repeat_is_kept_unless_the_last_failed() {
        let r = |mb_per_sec: f64| EngineRepeat {
            messages: 10,
            seconds: 1.0,
            mb_per_sec,
            p99_us: 1.0,
            producers_asleep_ms: None,
            kept: false,
        };
        assert_eq!(kept_repeat(&[r(3.0), r(1.0), r(2.0)], false), 2);
        assert_eq!(kept_repeat(&[r(3.0), r(1.0), r(2.0), r(4.0)], false), 2);
        assert_eq!(kept_repeat(&[r(5.0)], false), 0);
        assert_eq!(kept_repeat(&[r(3.0), r(0.0)], true), 1);
        assert_eq!(kept_repeat(&[], false), 0);
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
