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
//! `batch`, `size`, `producers`, `queues`, `consumers`, `rate`, `drain`, ...); the run order is
//! `repeat` passes, each pass going over every point with A then B back to
//! back, so drift of the machine hits both alike. Pass `r`'s ratio is
//! B_r / A_r (adjacent runs); the report gives its median and the range over
//! the passes, and calls a point only when every pass agrees on the side.
//! Report: `results/<UTC stamp>-<host>-<name>/` with `report.md`,
//! `results.json`, one `.hgrm` per point and target, and `ratio.svg`.

pub mod report;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::broker::{client_runtime, ctrl_c_flag, warm_and_measure, LoadArgs, LoadFigures};
use crate::child::{find_binary, start_broker, start_namesrv, write_file, ChildGuard, STOP_GRACE};
use crate::cli::{ReportOut, StartedBrokers};
use crate::error::{BenchError, Result};
use crate::machine::MachineInfo;
use crate::sweep::{Point, SMALL_COMMITLOG_BYTES, WORKLOAD_KEYS};
use crate::target::broker::{broker_from_namesrv, create_topic};
use crate::workload::{new_latency_histogram, Workload};
use ferromq_server::remoting::tls::TlsClientSettings;

use report::{fmt_ratio, point_label};
pub use report::{markdown, summarize, write, ComparePoint, CompareReport, Ratio, SideSummary};

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
    /// Connect to target A with TLS (any server certificate accepted, as
    /// RocketMQ clients by default; `--tls-ca` checks it), B as `--b-tls` says:
    /// to measure what TLS costs against one broker config served both ways.
    #[arg(long = "a-tls")]
    pub a_tls: bool,
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
    /// Connect to target B with TLS (see `--a-tls`).
    #[arg(long = "b-tls")]
    pub b_tls: bool,
    /// A workload key with its values, `KEY=V1,V2,...` (repeatable):
    /// producers, size, inflight, batch, queues, consumers, rate (msgs/s
    /// offered, open loop; 0 = closed loop), drain (messages to fill, then
    /// drain; 0 = none), pull-batch, suspend-ms, filter (none, tag, sql92;
    /// see `broker --filter`), timer-delays (`none` or delays separated by
    /// `/`, e.g. `timer-delays=none,10s/90s/10m/1h`; see `broker --timer-delays`).
    #[arg(long = "param", value_name = "KEY=V1,V2", value_parser = parse_workload_param)]
    pub params: Vec<(String, Vec<String>)>,
    /// Passes over all points, each running A then B at every point.
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// Alternate the order: A then B in odd passes, B then A in even ones,
    /// so a machine whose load drifts during the comparison does not favour
    /// one side (each pass's ratio still pairs its two adjacent runs).
    #[arg(long)]
    pub abba: bool,
    /// The brokers of `--a-props`/`--b-props`.
    #[command(flatten)]
    pub started: StartedBrokers,
    /// Name of the report folder's last part.
    #[arg(long, default_value = "compare")]
    pub name: String,
    /// Where the report folder goes.
    #[command(flatten)]
    pub report: ReportOut,
    /// The workload of every point (`--param` values override it).
    #[command(flatten)]
    pub load: LoadArgs,
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
                addr: rt.block_on(broker_from_namesrv(n, None))?,
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
    let (pts, workloads) = crate::sweep::points_and_workloads(&args.params, &args.load)?;
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
        abba: args.abba,
        planned_runs: planned,
        interrupted,
        base_workload: crate::sweep_report::BaseWorkload::of(&args.load),
        seconds: args.load.seconds,
        warmup_seconds: args.load.warmup_seconds,
        points: summarize(&pts, &runs),
        runs,
        machine,
        load_average_end: crate::machine::load_average_now(),
    };
    let dir = write(&args.report.out, &stamp, &args.name, &report, &hists)?;
    if crate::reporting::print_report_path(&dir, args.report.quiet) {
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

pub(crate) type Hists = Vec<((usize, usize), Histogram<u64>)>;

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
            let sides = if args.abba && r % 2 == 1 {
                [("b", addrs[1]), ("a", addrs[0])]
            } else {
                [("a", addrs[0]), ("b", addrs[1])]
            };
            for (side, addr) in sides {
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
                let tls_side = if side == "a" { args.a_tls } else { args.b_tls };
                let side_w;
                let w = if tls_side && w.tls.is_none() {
                    let mut t = w.clone();
                    t.tls = Some(TlsClientSettings::for_cli(args.load.tls_ca.clone()));
                    side_w = t;
                    &side_w
                } else {
                    w
                };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::plot_ratios;
    use crate::sweep::points;

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
        assert!(parse_workload_param("rate=1000,5000").is_ok());

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
