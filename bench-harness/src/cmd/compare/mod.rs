//! `ferromq-bench compare`: one workload against two RocketMQ-protocol
//! brokers, A and B, in one run.
//!
//! Each target is a running broker (`--a-broker ADDR`), the first master a
//! name server knows (`--a-namesrv ADDR`), or a ferromq broker the harness
//! starts itself from a `.properties` file (`--a-props FILE`: a fresh name
//! server and broker as child processes on loopback, store in a fresh folder
//! under `--dir`; the file's addresses, ports and store path are replaced).
//! Started brokers live for the whole comparison, like external ones.
//!
//! Points are the combinations of `--param` workload values (`inflight`,
//! `batch`, `size`, `producers`, `queues`, `consumers`); the run order is
//! `repeat` passes, each pass going over every point with A then B back to
//! back, so drift of the machine hits both alike. Pass `r`'s ratio is
//! B_r / A_r (adjacent runs); the report gives its median and the range over
//! the passes, and calls a point only when every pass agrees on the side.
//! Report: `results/<UTC stamp>-<host>-<name>/` with `report.md`,
//! `results.json`, one `.hgrm` per point and target, and `ratio.svg`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::broker::{client_runtime, ctrl_c_flag, warm_and_measure, LoadArgs, LoadFigures};
use crate::child::{find_binary, start_broker, start_namesrv, write_file, ChildGuard, STOP_GRACE};
use crate::cli::{OutDir, StartedBrokers};
use crate::error::{BenchError, Result};
use crate::machine::MachineInfo;
use crate::plot::plot_ratios;
use crate::stats::median;
use crate::sweep::{point_workload, points, Point, SMALL_COMMITLOG_BYTES, WORKLOAD_KEYS};
use crate::target::broker::{broker_from_namesrv, create_topic};
use crate::workload::{new_latency_histogram, Workload};

/// The ratio plot of a comparison report.
pub const RATIO_PLOT: &str = "ratio.svg";

/// Keys a started broker's `.properties` may not set (the harness sets them).
pub const OVERRIDDEN_KEYS: &[&str] = &[
    "brokerIP1",
    "brokerIP2",
    "bindAddress",
    "listenPort",
    "haListenPort",
    "storePathRootDir",
    "storePathCommitLog",
    "namesrvAddr",
];

/// Flags of `ferromq-bench compare`.
#[derive(Debug, Clone, clap::Args)]
pub struct CompareArgs {
    /// Target A: a broker address `host:port`.
    #[arg(long = "a-broker", group = "a")]
    pub a_broker: Option<String>,
    /// Target A: a name server; its first master broker is driven.
    #[arg(long = "a-namesrv", group = "a")]
    pub a_namesrv: Option<String>,
    /// Target A: start ferromq-namesrv + ferromq-broker with this `.properties`.
    #[arg(long = "a-props", group = "a")]
    pub a_props: Option<PathBuf>,
    /// Name of A in the report.
    #[arg(long = "a-name", default_value = "A")]
    pub a_name: String,
    /// Target B: a broker address `host:port`.
    #[arg(long = "b-broker", group = "b")]
    pub b_broker: Option<String>,
    /// Target B: a name server; its first master broker is driven.
    #[arg(long = "b-namesrv", group = "b")]
    pub b_namesrv: Option<String>,
    /// Target B: start ferromq-namesrv + ferromq-broker with this `.properties`.
    #[arg(long = "b-props", group = "b")]
    pub b_props: Option<PathBuf>,
    /// Name of B in the report.
    #[arg(long = "b-name", default_value = "B")]
    pub b_name: String,
    /// A workload key with its values, `KEY=V1,V2,...` (repeatable):
    /// producers, size, inflight, batch, queues, consumers.
    #[arg(long = "param", value_name = "KEY=V1,V2", value_parser = parse_workload_param)]
    pub params: Vec<(String, Vec<String>)>,
    /// Passes over all points, each running A then B at every point.
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// The brokers of `--a-props`/`--b-props`.
    #[command(flatten)]
    pub started: StartedBrokers,
    /// Name of the report folder's last part.
    #[arg(long, default_value = "compare")]
    pub name: String,
    /// Where the report folder goes.
    #[command(flatten)]
    pub out: OutDir,
    /// The workload of every point (`--param` values override it).
    #[command(flatten)]
    pub load: LoadArgs,
    /// Print the report folder's `results.json` path and nothing else on stdout.
    #[arg(long)]
    pub quiet: bool,
}

/// `--param KEY=V1,V2`: workload keys only.
fn parse_workload_param(s: &str) -> std::result::Result<(String, Vec<String>), String> {
    crate::cli::parse_param_with(s, |k| {
        if WORKLOAD_KEYS.contains(&k) {
            Ok(())
        } else {
            Err(format!(
                "`{k}` is not a workload key ({}); broker settings belong in --a-props/--b-props",
                WORKLOAD_KEYS.join(", ")
            ))
        }
    })
}

/// How a target is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSpec {
    /// A broker address.
    Broker(String),
    /// A name server address.
    Namesrv(String),
    /// A `.properties` file to start a ferromq broker with.
    Props(PathBuf),
}

impl TargetSpec {
    fn pick(
        side: &str,
        broker: &Option<String>,
        namesrv: &Option<String>,
        props: &Option<PathBuf>,
    ) -> Result<TargetSpec> {
        match (broker, namesrv, props) {
            (Some(b), None, None) => Ok(TargetSpec::Broker(b.clone())),
            (None, Some(n), None) => Ok(TargetSpec::Namesrv(n.clone())),
            (None, None, Some(p)) => Ok(TargetSpec::Props(p.clone())),
            _ => Err(BenchError::new(format!(
                "give exactly one of --{side}-broker, --{side}-namesrv, --{side}-props"
            ))),
        }
    }

    /// How the report names it.
    pub fn describe(&self) -> String {
        match self {
            TargetSpec::Broker(a) => format!("broker {a}"),
            TargetSpec::Namesrv(n) => format!("first master of name server {n}"),
            TargetSpec::Props(p) => {
                format!("ferromq-broker started by the harness with {}", p.display())
            }
        }
    }
}

/// `props` with the keys the harness sets removed, then those keys set:
/// loopback addresses, OS-picked ports, the store in `store`.
pub fn started_broker_properties(props: &str, store: &Path, small_files: bool) -> String {
    let mut out = String::new();
    for line in props.lines() {
        let key = line
            .trim_start()
            .split(['=', ':'])
            .next()
            .unwrap_or("")
            .trim();
        let overridden = OVERRIDDEN_KEYS.contains(&key)
            || (small_files
                && (key == "mapedFileSizeCommitLog" || key == "mappedFileSizeCommitLog"));
        if overridden {
            let _ = writeln!(out, "# replaced by ferromq-bench compare: {}", line.trim());
        } else {
            let _ = writeln!(out, "{line}");
        }
    }
    let _ = writeln!(
        out,
        "brokerIP1=127.0.0.1\nbindAddress=127.0.0.1\nlistenPort=0\nstorePathRootDir={}",
        store.display()
    );
    if small_files {
        let _ = writeln!(out, "mapedFileSizeCommitLog={SMALL_COMMITLOG_BYTES}");
    }
    out
}

/// A target ready to drive: its address, and the child processes when the
/// harness started them.
struct Live {
    addr: String,
    children: Vec<ChildGuard>,
}

impl Live {
    fn start(
        rt: &tokio::runtime::Runtime,
        spec: &TargetSpec,
        dir: &Path,
        small_files: bool,
        bin_dir: Option<&Path>,
    ) -> Result<Live> {
        match spec {
            TargetSpec::Broker(a) => Ok(Live {
                addr: a.clone(),
                children: Vec::new(),
            }),
            TargetSpec::Namesrv(n) => Ok(Live {
                addr: rt.block_on(broker_from_namesrv(n))?,
                children: Vec::new(),
            }),
            TargetSpec::Props(p) => {
                let user =
                    std::fs::read_to_string(p).map_err(|e| BenchError::io(p.display(), e))?;
                let (namesrv, ns_port) =
                    start_namesrv(&find_binary(bin_dir, "ferromq-namesrv")?, dir)?;
                let b_cfg = dir.join("broker.properties");
                write_file(
                    &b_cfg,
                    &started_broker_properties(&user, &dir.join("store"), small_files),
                )?;
                let (broker, port) = start_broker(
                    &find_binary(bin_dir, "ferromq-broker")?,
                    "ferromq-broker",
                    &b_cfg,
                    ns_port,
                )?;
                Ok(Live {
                    addr: format!("127.0.0.1:{port}"),
                    children: vec![broker, namesrv],
                })
            }
        }
    }

    fn stop(mut self) {
        for c in &mut self.children {
            c.stop(STOP_GRACE);
        }
    }
}

/// One measured run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CompareRun {
    /// Point index.
    pub point: usize,
    /// Pass (0-based).
    pub repeat: usize,
    /// `a` or `b`.
    pub target: String,
    /// Order in the comparison (0-based).
    pub order: usize,
    /// The figures.
    pub figures: LoadFigures,
}

/// One side of a point, across passes.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SideSummary {
    /// Completed passes.
    pub runs: usize,
    /// Median msgs/s and its min-max.
    pub msgs_per_sec: f64,
    /// Lowest and highest msgs/s.
    pub msgs_per_sec_range: (f64, f64),
    /// Median send -> ack p99, µs.
    pub p99_us: f64,
    /// Median send -> consume p99, µs (with consumers).
    pub e2e_p99_us: Option<f64>,
    /// Errors over all passes (sends and pulls).
    pub errors: u64,
}

/// A ratio B/A: median over passes and the passes' range.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Ratio {
    /// Median of the per-pass ratios.
    pub median: f64,
    /// Smallest per-pass ratio.
    pub min: f64,
    /// Largest per-pass ratio.
    pub max: f64,
}

impl Ratio {
    fn of(v: &[f64]) -> Option<Ratio> {
        if v.is_empty() {
            return None;
        }
        Some(Ratio {
            median: median(v),
            min: v.iter().copied().fold(f64::INFINITY, f64::min),
            max: v.iter().copied().fold(0.0, f64::max),
        })
    }
}

/// One point of the comparison.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ComparePoint {
    /// The point.
    pub point: Point,
    /// A's figures.
    pub a: Option<SideSummary>,
    /// B's figures.
    pub b: Option<SideSummary>,
    /// B/A of msgs/s, per pass where both ran.
    pub throughput_ratio: Option<Ratio>,
    /// B/A of send -> ack p99.
    pub p99_ratio: Option<Ratio>,
    /// B/A of send -> consume p99 (with consumers).
    pub e2e_p99_ratio: Option<Ratio>,
    /// What the passes support, in a few words.
    pub verdict: String,
}

/// Everything `results.json` holds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CompareReport {
    /// The exact command line.
    pub command: String,
    /// `git rev-parse HEAD` (with `-dirty`).
    pub git_commit: String,
    /// UTC start, ISO 8601.
    pub started_utc: String,
    /// Wall seconds.
    pub total_seconds: f64,
    /// A's name and how it was reached.
    pub a: (String, String),
    /// B's name and how it was reached.
    pub b: (String, String),
    /// Swept workload keys.
    pub params: Vec<(String, Vec<String>)>,
    /// Passes asked for.
    pub repeat: usize,
    /// Runs planned.
    pub planned_runs: usize,
    /// Ctrl-C stopped it early.
    pub interrupted: bool,
    /// The base workload.
    pub base_workload: crate::sweep_report::BaseWorkload,
    /// Measured seconds per run.
    pub seconds: f64,
    /// Warm-up seconds per run.
    pub warmup_seconds: f64,
    /// Per-point comparison.
    pub points: Vec<ComparePoint>,
    /// Every run, in order.
    pub runs: Vec<CompareRun>,
    /// The machine.
    pub machine: MachineInfo,
    /// Load average (1/5/15 min) when the last run ended.
    pub load_average_end: String,
}

fn side(runs: &[&CompareRun]) -> Option<SideSummary> {
    if runs.is_empty() {
        return None;
    }
    let rate: Vec<f64> = runs.iter().map(|r| r.figures.msgs_per_sec).collect();
    let e2e: Vec<f64> = runs
        .iter()
        .filter_map(|r| r.figures.consume.as_ref().map(|c| c.latency_us.p99))
        .collect();
    Some(SideSummary {
        runs: runs.len(),
        msgs_per_sec: median(&rate),
        msgs_per_sec_range: (
            rate.iter().copied().fold(f64::INFINITY, f64::min),
            rate.iter().copied().fold(0.0, f64::max),
        ),
        p99_us: median(
            &runs
                .iter()
                .map(|r| r.figures.latency_us.p99)
                .collect::<Vec<_>>(),
        ),
        e2e_p99_us: (!e2e.is_empty()).then(|| median(&e2e)),
        errors: runs
            .iter()
            .map(|r| r.figures.errors + r.figures.consume.as_ref().map_or(0, |c| c.errors))
            .sum(),
    })
}

/// Summaries and per-pass ratios of every point.
pub fn summarize(points: &[Point], runs: &[CompareRun]) -> Vec<ComparePoint> {
    points
        .iter()
        .map(|p| {
            let of = |t: &str| -> Vec<&CompareRun> {
                runs.iter()
                    .filter(|r| r.point == p.index && r.target == t)
                    .collect()
            };
            let (ra, rb) = (of("a"), of("b"));
            let mut tr = Vec::new();
            let mut lr = Vec::new();
            let mut er = Vec::new();
            for a in &ra {
                let Some(b) = rb.iter().find(|b| b.repeat == a.repeat) else {
                    continue;
                };
                let (fa, fb) = (&a.figures, &b.figures);
                if fa.msgs_per_sec > 0.0 {
                    tr.push(fb.msgs_per_sec / fa.msgs_per_sec);
                }
                if fa.latency_us.p99 > 0.0 {
                    lr.push(fb.latency_us.p99 / fa.latency_us.p99);
                }
                if let (Some(ca), Some(cb)) = (&fa.consume, &fb.consume) {
                    if ca.latency_us.p99 > 0.0 {
                        er.push(cb.latency_us.p99 / ca.latency_us.p99);
                    }
                }
            }
            let throughput_ratio = Ratio::of(&tr);
            let verdict = match throughput_ratio {
                None => "not measured on both".to_string(),
                Some(r) if tr.len() < 2 => {
                    format!("B/A {:.2} from one pass: no spread measured", r.median)
                }
                Some(r) if r.min > 1.0 => "B faster in every pass".to_string(),
                Some(r) if r.max < 1.0 => "A faster in every pass".to_string(),
                Some(_) => "within the spread (passes disagree)".to_string(),
            };
            ComparePoint {
                point: p.clone(),
                a: side(&ra),
                b: side(&rb),
                throughput_ratio,
                p99_ratio: Ratio::of(&lr),
                e2e_p99_ratio: Ratio::of(&er),
                verdict,
            }
        })
        .collect()
}

fn point_label(p: &Point) -> String {
    if p.values.is_empty() {
        "(base workload)".to_string()
    } else {
        p.label()
    }
}

fn fmt_ratio(r: Option<Ratio>) -> String {
    r.map_or_else(
        || "-".to_string(),
        |r| format!("{:.2} ({:.2}-{:.2})", r.median, r.min, r.max),
    )
}

/// The `report.md` text.
pub fn markdown(r: &CompareReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# ferromq-bench compare: {} vs {}\n", r.a.0, r.b.0);
    let _ = writeln!(s, "- command: `{}`", r.command);
    let _ = writeln!(s, "- git commit: `{}`", r.git_commit);
    let _ = writeln!(
        s,
        "- started (UTC): {}; took {:.0} s",
        r.started_utc, r.total_seconds
    );
    let _ = writeln!(s, "- A = **{}**: {}", r.a.0, r.a.1);
    let _ = writeln!(s, "- B = **{}**: {}", r.b.0, r.b.1);
    let b = &r.base_workload;
    let _ = writeln!(
        s,
        "- workload: {} producers (one connection each), {} B bodies, {} in flight per producer, batch {}, {} queues, {} consumers; {} s warm-up + {} s measured per run",
        b.producers, b.size, b.inflight, b.batch, b.queues, b.consumers, r.warmup_seconds, r.seconds
    );
    let _ = writeln!(
        s,
        "- runs: {} of {} planned ({} passes; each pass runs every point on A then on B){}",
        r.runs.len(),
        r.planned_runs,
        r.repeat,
        crate::reporting::interrupted_note(r.interrupted)
    );
    let _ = writeln!(
        s,
        "{}\n",
        crate::reporting::load_average_line(&r.machine, &r.load_average_end)
    );
    let _ = writeln!(s, "## B / A, point by point\n");
    let _ = writeln!(
        s,
        "| point | workload | {a} msgs/s (min-max) | {b} msgs/s (min-max) | B/A msgs/s (min-max) | {a} p99 ms | {b} p99 ms | B/A p99 (min-max) | B/A send->consume p99 | errors A/B | verdict |",
        a = r.a.0,
        b = r.b.0
    );
    let _ = writeln!(s, "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for p in &r.points {
        let rate = |x: &Option<SideSummary>| {
            x.as_ref().map_or_else(
                || "-".to_string(),
                |x| {
                    format!(
                        "{:.0} ({:.0}-{:.0})",
                        x.msgs_per_sec, x.msgs_per_sec_range.0, x.msgs_per_sec_range.1
                    )
                },
            )
        };
        let p99 = |x: &Option<SideSummary>| {
            x.as_ref()
                .map_or_else(|| "-".to_string(), |x| format!("{:.3}", x.p99_us / 1000.0))
        };
        let errs = |x: &Option<SideSummary>| x.as_ref().map_or(0, |x| x.errors);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {}/{} | {} |",
            p.point.index,
            point_label(&p.point),
            rate(&p.a),
            rate(&p.b),
            fmt_ratio(p.throughput_ratio),
            p99(&p.a),
            p99(&p.b),
            fmt_ratio(p.p99_ratio),
            fmt_ratio(p.e2e_p99_ratio),
            errs(&p.a),
            errs(&p.b),
            p.verdict
        );
    }
    let _ = writeln!(
        s,
        "\nB/A is computed per pass from the two adjacent runs (A then B) and summarized as the median with the range over passes; above 1 in msgs/s means B is faster, above 1 in p99 means B is slower. A point is called only when every pass agrees; otherwise the difference is within the spread. Latency is send -> ack per message (a batch shares its ack time); send -> consume is from queueing the request to reading the pull response that holds the message.\n"
    );
    let _ = writeln!(
        s,
        "**B/A per point (dot = median, bar = range over passes; 1 = equal; log scale)**\n\n![B/A per point]({RATIO_PLOT})\n"
    );
    let _ = writeln!(s, "## Every run, in order\n");
    let _ = writeln!(
        s,
        "| # | point | pass | target | msgs/s | p99 ms | send->consume p99 ms | errors |\n|---:|---:|---:|---|---:|---:|---:|---:|"
    );
    for run in &r.runs {
        let name = if run.target == "a" { &r.a.0 } else { &r.b.0 };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {:.0} | {:.3} | {} | {} |",
            run.order,
            run.point,
            run.repeat + 1,
            name,
            run.figures.msgs_per_sec,
            run.figures.latency_us.p99 / 1000.0,
            run.figures.consume.as_ref().map_or_else(
                || "-".into(),
                |c| format!("{:.3}", c.latency_us.p99 / 1000.0)
            ),
            run.figures.errors
        );
    }
    let _ = writeln!(s);
    crate::reporting::machine_section(&mut s, &r.machine);
    let _ = writeln!(
        s,
        "## How to read this\n\n- Both targets ran on this machine, in the same sitting, alternating; on a shared machine compare only what the ranges separate.\n- `point-<n>-<a|b>.hgrm` hold each side's send -> ack latency distribution (all passes merged, µs); `results.json` every figure."
    );
    s
}

/// `ferromq-bench compare`: run, write the report, print where it is.
///
/// # Errors
///
/// When a target cannot be started or reached, or the report cannot be written.
pub fn run_compare(args: &CompareArgs, argv: &[String]) -> Result<i32> {
    let a_spec = TargetSpec::pick("a", &args.a_broker, &args.a_namesrv, &args.a_props)?;
    let b_spec = TargetSpec::pick("b", &args.b_broker, &args.b_namesrv, &args.b_props)?;
    if args.repeat == 0 {
        return Err(BenchError::new("--repeat must be at least 1"));
    }
    let started = Instant::now();
    let (stamp, iso) = crate::reporting::utc_now();
    let pts = points(&args.params);
    let workloads: Vec<Workload> = pts
        .iter()
        .map(|p| point_workload(&args.load, p))
        .collect::<Result<_>>()?;
    let (base, _tmp) = crate::machine::dir_or_temp(args.started.dir.as_deref())?;
    let machine = MachineInfo::collect(&base);
    let rt = client_runtime(args.load.client_threads)?;
    let stop = ctrl_c_flag(&rt);
    let a_dir = base.join("compare-a");
    let b_dir = base.join("compare-b");
    let a = Live::start(
        &rt,
        &a_spec,
        &a_dir,
        args.started.small_files,
        args.started.bin_dir.as_deref(),
    )?;
    let b = match Live::start(
        &rt,
        &b_spec,
        &b_dir,
        args.started.small_files,
        args.started.bin_dir.as_deref(),
    ) {
        Ok(b) => b,
        Err(e) => {
            a.stop();
            return Err(e);
        }
    };
    let result = measure_all(args, &rt, &pts, &workloads, [&a.addr, &b.addr], &stop);
    a.stop();
    b.stop();
    for (spec, d) in [(&a_spec, &a_dir), (&b_spec, &b_dir)] {
        if matches!(spec, TargetSpec::Props(_)) {
            let _ = std::fs::remove_dir_all(d);
        }
    }
    let (runs, hists, planned, interrupted) = result?;
    let report = CompareReport {
        command: crate::reporting::shell_join(argv),
        git_commit: crate::reporting::git_commit(),
        started_utc: iso,
        total_seconds: started.elapsed().as_secs_f64(),
        a: (args.a_name.clone(), a_spec.describe()),
        b: (args.b_name.clone(), b_spec.describe()),
        params: args.params.clone(),
        repeat: args.repeat,
        planned_runs: planned,
        interrupted,
        base_workload: crate::sweep_report::BaseWorkload {
            producers: args.load.producers,
            size: args.load.size,
            inflight: args.load.inflight,
            batch: args.load.batch,
            queues: args.load.queues,
            consumers: args.load.consumers,
        },
        seconds: args.load.seconds,
        warmup_seconds: args.load.warmup_seconds,
        points: summarize(&pts, &runs),
        runs,
        machine,
        load_average_end: crate::machine::load_average_now(),
    };
    let dir = write(&args.out.out, &stamp, &args.name, &report, &hists)?;
    if args.quiet {
        println!("{}", dir.join("results.json").display());
    } else {
        println!("{}", dir.join("report.md").display());
        for p in &report.points {
            println!(
                "  point {} ({}): B/A msgs/s {}, p99 {}: {}",
                p.point.index,
                point_label(&p.point),
                fmt_ratio(p.throughput_ratio),
                fmt_ratio(p.p99_ratio),
                p.verdict
            );
        }
    }
    Ok(if interrupted { 130 } else { 0 })
}

type Hists = Vec<((usize, usize), Histogram<u64>)>;

/// Every run: passes x points x [A, B]. Returns runs, merged send -> ack
/// histograms per (point, side), runs planned, and whether Ctrl-C stopped it.
fn measure_all(
    args: &CompareArgs,
    rt: &tokio::runtime::Runtime,
    pts: &[Point],
    workloads: &[Workload],
    addrs: [&String; 2],
    stop: &Arc<AtomicBool>,
) -> Result<(Vec<CompareRun>, Hists, usize, bool)> {
    let planned = args.repeat * pts.len() * 2;
    let per_run = args.load.seconds + args.load.warmup_seconds + 0.5;
    let bar = indicatif::ProgressBar::new(planned as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} runs, ~{msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut runs = Vec::new();
    let mut hists: Hists = Vec::new();
    let warmup = Duration::from_secs_f64(args.load.warmup_seconds);
    let mut order = 0usize;
    let mut interrupted = false;
    'passes: for r in 0..args.repeat {
        for (p, w) in pts.iter().zip(workloads) {
            for (side, addr) in ["a", "b"].into_iter().zip(addrs) {
                if stop.load(Ordering::Relaxed) {
                    interrupted = true;
                    break 'passes;
                }
                bar.set_message(format!(
                    "{:.0} s left; pass {} point {} on {}",
                    (planned - order) as f64 * per_run,
                    r + 1,
                    p.index,
                    side.to_uppercase()
                ));
                let res = rt
                    .block_on(create_topic(addr, w))
                    .and_then(|()| warm_and_measure(rt, addr, w, warmup, stop));
                bar.inc(1);
                if stop.load(Ordering::Relaxed) {
                    interrupted = true;
                    break 'passes;
                }
                match res {
                    Ok((m, cpu)) => {
                        let key = (p.index, usize::from(side == "b"));
                        match hists.iter_mut().find(|(k, _)| *k == key) {
                            Some((_, h)) => h
                                .add(&m.run.latency_ns)
                                .map_err(|e| BenchError::new(format!("merging histograms: {e}")))?,
                            None => {
                                let mut h = new_latency_histogram()?;
                                h.add(&m.run.latency_ns).map_err(|e| {
                                    BenchError::new(format!("merging histograms: {e}"))
                                })?;
                                hists.push((key, h));
                            }
                        }
                        runs.push(CompareRun {
                            point: p.index,
                            repeat: r,
                            target: side.to_string(),
                            order,
                            figures: LoadFigures::new(&m, cpu),
                        });
                    }
                    Err(e) => bar.println(format!(
                        "pass {} point {} on {}: failed: {e}",
                        r + 1,
                        p.index,
                        side.to_uppercase()
                    )),
                }
                order += 1;
            }
        }
    }
    bar.finish_and_clear();
    Ok((runs, hists, planned, interrupted))
}

/// Write the report folder `<stamp>-<host>-<name>/` under `out`.
///
/// # Errors
///
/// When a file cannot be written or the plot drawn.
pub fn write(
    out: &Path,
    stamp: &str,
    name: &str,
    r: &CompareReport,
    hists: &Hists,
) -> Result<PathBuf> {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let base = format!("{stamp}-{}-{}", clean(&r.machine.hostname), clean(name));
    let dir = crate::reporting::new_report_dir(out, &base)?;
    let put = |f: &str, text: &str| -> Result<()> {
        let p = dir.join(f);
        std::fs::write(&p, text).map_err(|e| BenchError::io(p.display(), e))
    };
    let json = serde_json::to_string_pretty(r)
        .map_err(|e| BenchError::new(format!("encoding results.json: {e}")))?;
    put("results.json", &(json + "\n"))?;
    for ((p, side), h) in hists {
        let s = if *side == 0 { "a" } else { "b" };
        put(&format!("point-{p}-{s}.hgrm"), &crate::reporting::hgrm(h))?;
    }
    let labels: Vec<String> = r.points.iter().map(|p| point_label(&p.point)).collect();
    plot_ratios(&dir.join(RATIO_PLOT), &r.points, &labels)?;
    put("report.md", &markdown(r))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn started_properties_replace_addresses_and_store() {
        let user = "brokerName=x\nlistenPort = 10911\nbrokerIP1=10.0.0.5\nstorePathRootDir=/data\nflushDiskType=SYNC_FLUSH\nmapedFileSizeCommitLog=1073741824\n";
        let p = started_broker_properties(user, Path::new("/tmp/s"), true);
        let props = ferromq_engine::config::Properties::parse(&p);
        let (store, _) = ferromq_engine::StoreConfig::from_properties(&props).unwrap();
        assert_eq!(store.store_path_root_dir, PathBuf::from("/tmp/s"));
        assert_eq!(
            store.flush_disk_type,
            ferromq_engine::FlushDiskType::SyncFlush
        );
        assert_eq!(store.mapped_file_size_commit_log, SMALL_COMMITLOG_BYTES);
        assert!(!p.contains("\nbrokerIP1=10.0.0.5"));
        assert!(p.contains("brokerIP1=127.0.0.1\n") && p.contains("listenPort=0\n"));
    }

    #[test]
    fn ratios_pair_the_passes_and_verdicts_need_every_pass() {
        let fig = |rate: f64| {
            let mut f: LoadFigures = serde_json::from_value(serde_json::json!({
                "messages": 1, "seconds": 1.0, "msgs_per_sec": rate, "mb_per_sec": 1.0,
                "latency_us": {"p50": 1.0, "p90": 1.0, "p99": 1000.0 / rate, "p999": 1.0,
                               "p9999": 1.0, "max": 1.0, "mean": 1.0},
                "errors": 0, "first_error": null, "statuses": {}, "cpu_ns_per_msg": 1.0,
                "acks_per_100ms": []
            }))
            .unwrap();
            f.msgs_per_sec = rate;
            f
        };
        let run = |point, repeat, target: &str, rate| CompareRun {
            point,
            repeat,
            target: target.into(),
            order: 0,
            figures: fig(rate),
        };
        let pts = points(&[("inflight".into(), vec!["1".into(), "16".into()])]);
        let runs = vec![
            run(0, 0, "a", 100.0),
            run(0, 0, "b", 200.0),
            run(1, 0, "a", 100.0),
            run(1, 0, "b", 90.0),
            run(0, 1, "a", 100.0),
            run(0, 1, "b", 150.0),
            run(1, 1, "a", 100.0),
            run(1, 1, "b", 110.0),
        ];
        let s = summarize(&pts, &runs);
        let t0 = s[0].throughput_ratio.unwrap();
        assert_eq!((t0.median, t0.min, t0.max), (1.75, 1.5, 2.0));
        assert_eq!(s[0].verdict, "B faster in every pass");
        assert_eq!(s[1].verdict, "within the spread (passes disagree)");
        let l0 = s[0].p99_ratio.unwrap();
        assert!((l0.max - 1.0 / 1.5).abs() < 1e-9, "{l0:?}");
        assert!(s[0].e2e_p99_ratio.is_none());
        assert!(parse_workload_param("flushDiskType=SYNC_FLUSH").is_err());
        assert!(parse_workload_param("inflight=1,16").is_ok());

        // The plot takes ratios of 0 (a failed pass) and far from 1 on its log scale.
        let mut s = s;
        s[1].throughput_ratio = Some(Ratio {
            median: 0.03,
            min: 0.0,
            max: 0.05,
        });
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(RATIO_PLOT);
        let labels: Vec<String> = s.iter().map(|p| point_label(&p.point)).collect();
        plot_ratios(&path, &s, &labels).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("log scale") && svg.contains("inflight=16")
        );
        assert!(!svg.contains("point 1"));
    }
}
