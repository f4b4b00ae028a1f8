//! The figures of a run and of a suite, as they go to JSON and into reports,
//! and the checks of issue 3's targets against them.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use crate::baseline::{BaselineKind, BaselineResult};
use crate::machine::MachineInfo;
use crate::thread_usage::ThreadUsage;
use crate::workload::{FlushMode, RunMeasurement, Workload};

pub use crate::stats::ratio;

/// Latency percentiles of the puts, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LatencySummary {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// 99.99th percentile.
    pub p9999: f64,
    /// Largest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

impl LatencySummary {
    /// Percentiles of a histogram recorded in nanoseconds, converted to µs.
    pub fn from_ns(h: &Histogram<u64>) -> Self {
        let us = |ns: u64| ns as f64 / 1000.0;
        LatencySummary {
            p50: us(h.value_at_quantile(0.5)),
            p90: us(h.value_at_quantile(0.9)),
            p99: us(h.value_at_quantile(0.99)),
            p999: us(h.value_at_quantile(0.999)),
            p9999: us(h.value_at_quantile(0.9999)),
            max: us(h.max()),
            mean: h.mean() / 1000.0,
        }
    }
}

/// Everything measured in one run of one workload against one target, with
/// its baselines. Serialized as the JSON object of `ferromq-bench store --json`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunResult {
    /// Short name of the run: `async-1024B-1p`.
    pub name: String,
    /// What was driven: `engine` (in-process).
    pub target: String,
    /// A `ferromq-bench` command that repeats this run alone.
    pub command: String,
    /// Flush mode.
    pub flush: FlushMode,
    /// Producer threads.
    pub producers: usize,
    /// Body size in bytes.
    pub size: usize,
    /// Commitlog file size in bytes.
    pub file_size: u64,
    /// Directory under test.
    pub dir: String,
    /// Puts that returned (any status).
    pub messages: u64,
    /// Puts the workload asked for.
    pub requested_messages: u64,
    /// True when the time cap (or errors) stopped the run before all puts were done.
    pub stopped_early: bool,
    /// Per-run time cap in seconds, if any.
    pub max_seconds: Option<f64>,
    /// Payload bytes put (`messages × size`).
    pub bytes: u64,
    /// Bytes the store wrote, record headers included.
    pub stored_bytes: u64,
    /// Wall time of the puts, first to last.
    pub seconds: f64,
    /// `messages / seconds`.
    pub msgs_per_sec: f64,
    /// `bytes / seconds / 10^6`.
    pub mb_per_sec: f64,
    /// Put latency percentiles in µs.
    pub latency_us: LatencySummary,
    /// Which baseline `baseline_mb_per_sec` is.
    pub baseline_kind: BaselineKind,
    /// MB/s of the baseline for this flush mode: cold mmap (median of repeats) for async,
    /// pwrite+fdatasync (pooled from just before and just after the run) for sync.
    pub baseline_mb_per_sec: f64,
    /// `mb_per_sec / baseline_mb_per_sec`.
    pub ratio_to_baseline: f64,
    /// MB/s of memcpy into a pre-touched mapping.
    pub warm_baseline_mb_per_sec: f64,
    /// `mb_per_sec / warm_baseline_mb_per_sec`.
    pub ratio_to_warm_baseline: f64,
    /// The baseline's details.
    pub baseline: BaselineResult,
    /// The warm baseline's details.
    pub warm_baseline: BaselineResult,
    /// Seconds `shutdown()` took (untimed in the figures; it flushes what is left).
    pub shutdown_seconds: f64,
    /// Puts that failed with an error.
    pub put_errors: u64,
    /// The first put error, if any.
    pub first_error: Option<String>,
    /// Puts per returned status (`PUT_OK`, `FLUSH_DISK_TIMEOUT`, ...).
    pub status_counts: BTreeMap<String, u64>,
    /// The commitlog write path of the run (`mmap`, `pool-pwrite`,
    /// `pool-io-uring`) when `--write-path` chose it.
    pub write_path: Option<String>,
    /// What the target reported after the puts (see `Target::details`).
    pub target_details: Option<serde_json::Value>,
    /// Page cache cycled right before the engine run (the fresh-mapping
    /// baseline repeats get the same); `None` with `--no-recycle`.
    pub memory_prep: Option<crate::baseline::MemoryPrep>,
    /// Where the producer threads' time went (summed over them), with the
    /// time they slept: wall time × producers minus on-CPU and run-queue time.
    pub producer_usage: Option<ProducerUsage>,
    /// What the target's own threads used while the producers ran, by name
    /// (the engine's dispatch, pre-fault, flush threads ...).
    pub background_usage: BTreeMap<String, ThreadUsage>,
    /// Every engine run of this workload when it ran more than once, in order;
    /// the figures above are those of the one marked `kept` (median MB/s).
    /// Empty for a single run.
    pub engine_repeats: Vec<EngineRepeat>,
    /// The latency histogram, nanoseconds. Not serialized; written as `.hgrm`.
    #[serde(skip)]
    pub histogram: Histogram<u64>,
}

/// Measured wall time and the figures derived from it.
pub struct RunInputs<'a> {
    /// Short name of the run.
    pub name: String,
    /// Target name.
    pub target: String,
    /// Command that repeats the run alone.
    pub command: String,
    /// The workload that was run.
    pub workload: &'a Workload,
    /// Directory under test.
    pub dir: String,
    /// The engine's measurement.
    pub measurement: RunMeasurement,
    /// The flush mode's baseline.
    pub baseline: BaselineResult,
    /// The warm-mapping baseline.
    pub warm_baseline: BaselineResult,
    /// Seconds shutdown took.
    pub shutdown_seconds: f64,
}

/// One engine run of a workload that was run more than once (`--repeat`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EngineRepeat {
    /// Puts that returned.
    pub messages: u64,
    /// Wall time of the puts.
    pub seconds: f64,
    /// Payload MB/s.
    pub mb_per_sec: f64,
    /// p99 put latency, µs.
    pub p99_us: f64,
    /// Milliseconds the producers slept (page locks, mutexes), if known.
    pub producers_asleep_ms: Option<f64>,
    /// This is the run the other figures of the result are from (the median).
    pub kept: bool,
}

impl EngineRepeat {
    /// The figures of one measured run (not yet marked kept).
    pub fn of_measurement(m: &RunMeasurement, producers: usize) -> Self {
        let seconds = m.elapsed.as_secs_f64();
        EngineRepeat {
            messages: m.messages,
            seconds,
            mb_per_sec: ratio(m.bytes as f64 / 1e6, seconds),
            p99_us: m.latency_ns.value_at_quantile(0.99) as f64 / 1000.0,
            producers_asleep_ms: ProducerUsage::of(m, producers).map(|u| u.asleep_ns as f64 / 1e6),
            kept: false,
        }
    }
}

/// [`ThreadUsage`] of a run's producers and the time they slept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ProducerUsage {
    /// The kernel's counters, summed over the producer threads.
    #[serde(flatten)]
    pub usage: ThreadUsage,
    /// Nanoseconds asleep: wall time × producers, less on-CPU and run-queue time.
    pub asleep_ns: u64,
}

impl ProducerUsage {
    /// The usage of `m`'s `producers` threads, if it was read.
    pub fn of(m: &RunMeasurement, producers: usize) -> Option<Self> {
        let wall_ns = u64::try_from(m.elapsed.as_nanos()).unwrap_or(u64::MAX);
        m.producer_usage.map(|usage| ProducerUsage {
            asleep_ns: usage.asleep_ns(wall_ns.saturating_mul(producers as u64)),
            usage,
        })
    }
}

impl RunResult {
    /// Derive the rates and ratios from what was measured.
    pub fn new(i: RunInputs<'_>) -> Self {
        let m = i.measurement;
        let producer_usage = ProducerUsage::of(&m, i.workload.producers);
        let seconds = m.elapsed.as_secs_f64();
        let msgs_per_sec = ratio(m.messages as f64, seconds);
        let mb_per_sec = ratio(m.bytes as f64 / 1e6, seconds);
        RunResult {
            name: i.name,
            target: i.target,
            command: i.command,
            flush: i.workload.flush,
            producers: i.workload.producers,
            size: i.workload.size_bytes,
            file_size: i.workload.file_size_bytes,
            dir: i.dir,
            messages: m.messages,
            requested_messages: m.requested_messages,
            stopped_early: m.stopped_early,
            max_seconds: i.workload.max_duration.map(|d| d.as_secs_f64()),
            bytes: m.bytes,
            stored_bytes: m.stored_bytes,
            seconds,
            msgs_per_sec,
            mb_per_sec,
            latency_us: LatencySummary::from_ns(&m.latency_ns),
            baseline_kind: i.baseline.kind,
            baseline_mb_per_sec: i.baseline.mb_per_sec,
            ratio_to_baseline: ratio(mb_per_sec, i.baseline.mb_per_sec),
            warm_baseline_mb_per_sec: i.warm_baseline.mb_per_sec,
            ratio_to_warm_baseline: ratio(mb_per_sec, i.warm_baseline.mb_per_sec),
            baseline: i.baseline,
            warm_baseline: i.warm_baseline,
            shutdown_seconds: i.shutdown_seconds,
            put_errors: m.put_errors,
            first_error: m.first_error,
            status_counts: m.status_counts,
            write_path: None,
            target_details: None,
            memory_prep: None,
            producer_usage,
            background_usage: m.background_usage,
            engine_repeats: Vec::new(),
            histogram: m.latency_ns,
        }
    }
}

/// One of issue 3's performance targets, checked against a suite's runs.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TargetCheck {
    /// What is required, in words.
    pub target: String,
    /// The threshold, as text (`≥ 0.8`).
    pub required: String,
    /// The measured value, if the runs it needs were measured.
    pub measured: Option<f64>,
    /// `Some(true)` pass, `Some(false)` fail, `None` not measured.
    pub pass: Option<bool>,
    /// The commands of the runs it was measured with.
    pub commands: Vec<String>,
    /// What the baselines say the disk allows, to read the figure against.
    pub context: Option<String>,
}

fn find(runs: &[RunResult], flush: FlushMode, size: usize, producers: usize) -> Option<&RunResult> {
    runs.iter()
        .find(|r| r.flush == flush && r.size == size && r.producers == producers && r.messages > 0)
}

/// Check issue 3's three targets against whichever runs match them:
/// ASYNC 1 KiB 1 producer `ratio_to_baseline ≥ 0.8`; SYNC 1 KiB 32 producers
/// msgs/s ≥ 8 × 1 producer; ASYNC 1 KiB 1 producer p99 ≤ 20 µs.
pub fn check_targets(runs: &[RunResult]) -> Vec<TargetCheck> {
    let async1 = find(runs, FlushMode::Async, 1024, 1);
    let sync1 = find(runs, FlushMode::Sync, 1024, 1);
    let sync32 = find(runs, FlushMode::Sync, 1024, 32);
    let check = |target: &str,
                 required: &str,
                 measured: Option<f64>,
                 pass: fn(f64) -> bool,
                 used: Vec<&RunResult>,
                 context: Option<String>| TargetCheck {
        target: target.to_string(),
        required: required.to_string(),
        measured,
        pass: measured.map(pass),
        commands: used.iter().map(|r| r.command.clone()).collect(),
        context,
    };
    vec![
        check(
            "ASYNC_FLUSH, 1 KiB, 1 producer: ratio_to_baseline",
            "≥ 0.8",
            async1.map(|r| r.ratio_to_baseline),
            |v| v >= 0.8,
            async1.into_iter().collect(),
            async1.map(|r| {
                format!(
                    "baseline {:.0} MB/s (median of {}, spread {:.0}-{:.0}); engine {:.0} MB/s",
                    r.baseline_mb_per_sec,
                    r.baseline.repeats,
                    r.baseline.min_mb_per_sec,
                    r.baseline.max_mb_per_sec,
                    r.mb_per_sec
                )
            }),
        ),
        check(
            "SYNC_FLUSH, 1 KiB: msgs/s of 32 producers ÷ msgs/s of 1 producer",
            "≥ 8",
            sync1
                .zip(sync32)
                .map(|(one, many)| ratio(many.msgs_per_sec, one.msgs_per_sec)),
            |v| v >= 8.0,
            sync1.into_iter().chain(sync32).collect(),
            sync1.zip(sync32).map(|(one, many)| {
                format!(
                    "ideal group commit on this disk (pwrite+fdatasync of 32-message vs 1-message batches): {:.2}x; \
                     engine vs that baseline: {:.2} (1 producer), {:.2} (32 producers)",
                    ratio(many.baseline_mb_per_sec, one.baseline_mb_per_sec),
                    one.ratio_to_baseline,
                    many.ratio_to_baseline
                )
            }),
        ),
        check(
            "ASYNC_FLUSH, 1 KiB, 1 producer: p99 put latency (µs)",
            "≤ 20",
            async1.map(|r| r.latency_us.p99),
            |v| v <= 20.0,
            async1.into_iter().collect(),
            None,
        ),
    ]
}

/// A whole invocation: what was run, where, and every run's figures.
/// Written as `results.json`, and printed by `store --json` for a suite.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SuiteResult {
    /// The exact command line.
    pub command: String,
    /// `git rev-parse HEAD` (with `-dirty` when the tree has changes), or unknown.
    pub git_commit: String,
    /// UTC start time, ISO 8601.
    pub started_utc: String,
    /// Wall seconds of the whole invocation, baselines and setup included.
    pub total_seconds: f64,
    /// The machine and the directory's file system.
    pub machine: MachineInfo,
    /// Every run, in order.
    pub runs: Vec<RunResult>,
    /// Issue 3's targets against these runs.
    pub targets: Vec<TargetCheck>,
}
