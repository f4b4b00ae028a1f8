//! `ferromq-bench sweep`: measure every combination of the `--param` values,
//! in an interleaved, repeated order (A B C A B C ...), against fresh brokers
//! started as child processes on loopback (or the engine in-process), and
//! write a report folder ([`crate::sweep_report`]).
//!
//! A point of the broker target: write `namesrv.properties` and
//! `broker.properties` (storePathRootDir in a fresh folder under `--dir`,
//! brokerIP1 and bindAddress 127.0.0.1, listenPort 0), start
//! `ferromq-namesrv` and `ferromq-broker` (each in its own process group, so
//! a terminal's Ctrl-C reaches only the harness), read their ports from the
//! `listening on` lines, create the topic, warm up, measure, then stop both
//! (SIGTERM, SIGKILL after [`STOP_GRACE`]; a drop guard kills them whatever
//! happens) and remove the store.

pub mod ceiling;
pub mod find_knee;
pub mod knee;
pub mod report;

use report::{build, write, LOOPBACK_ROUND_TRIPS};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::broker::{client_runtime, ctrl_c_flag, warm_and_measure, LoadArgs, LoadFigures};
use crate::cli::{ReportOut, StartedBrokers};
use crate::error::{BenchError, Result};
use crate::machine::MachineInfo;
use crate::target::broker::{create_topic, BrokerMeasurement};
use crate::target::engine::{EngineTarget, EngineTargetConfig};
use crate::workload::{self, Target as _, Workload};

pub use crate::child::{find_binary, listening_port, ChildGuard, START_DEADLINE, STOP_GRACE};
use crate::child::{start_broker, start_namesrv, write_file};
pub use crate::stats::median;

/// Keys of the workload (not written to broker.properties).
pub const WORKLOAD_KEYS: &[&str] = &[
    "producers",
    "size",
    "inflight",
    "batch",
    "queues",
    "consumers",
    "slaves",
    "rate",
    "drain",
    "pull-batch",
    "suspend-ms",
    "filter",
    "timer-delays",
];

/// Slaves a broker point may have at most (`--param slaves=0,1`).
pub const MAX_SLAVES: usize = 2;

/// A swept pseudo-key: the commitlog write path (`mmap`, `pool-pwrite`,
/// `pool-io-uring`), which stands for the store keys that select it (see
/// `ferromq-bench store --write-path`).
pub const WRITE_PATH_KEY: &str = "writePath";

fn write_path(v: &str) -> std::result::Result<crate::store::WritePath, String> {
    use clap::ValueEnum;
    crate::store::WritePath::from_str(v, true)
        .map_err(|_| format!("writePath `{v}` is not one of mmap, pool-pwrite, pool-io-uring"))
}
/// Commitlog file size with `--small-files`.
pub const SMALL_COMMITLOG_BYTES: u64 = 64 << 20;

/// What a sweep drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SweepTarget {
    /// ferromq-namesrv + ferromq-broker child processes, driven over TCP.
    Broker,
    /// The engine in-process (store keys and producers/size only).
    Store,
}

/// Flags of `ferromq-bench sweep`.
#[derive(Debug, Clone, clap::Args)]
pub struct SweepArgs {
    /// A swept key with its values, `KEY=V1,V2,...` (repeatable): a broker or
    /// store key (RocketMQ's name) or a workload key (producers, size, inflight, batch,
    /// queues, consumers, slaves, rate: msgs/s offered, open loop; 0 = closed loop;
    /// drain, pull-batch, suspend-ms, filter: none, tag or sql92, see `broker --filter`;
    /// timer-delays: `none` or delays separated by `/`, e.g. `none,10s/90s/10m/1h`,
    /// see `broker --timer-delays`).
    #[arg(long = "param", value_name = "KEY=V1,V2", value_parser = parse_param, required_unless_present = "find_knee")]
    pub params: Vec<(String, Vec<String>)>,
    /// A fixed broker or store setting for every point (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_set)]
    pub set: Vec<(String, String)>,
    /// What to drive.
    #[arg(long, value_enum, default_value_t = SweepTarget::Broker)]
    pub target: SweepTarget,
    /// Passes over all points (interleaved: A B C A B C ...).
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// The brokers (or stores) of the points.
    #[command(flatten)]
    pub started: StartedBrokers,
    /// The p99 bound (ms) the recommended settings must stay within.
    #[arg(long = "p99-bound-ms", default_value_t = 10.0)]
    pub p99_bound_ms: f64,
    /// The send -> ack p99 limit (ms) of the knee of the latency-throughput
    /// curve (`--param rate=...`): per setting, the highest offered rate
    /// taken within it. Without it the knee uses `--p99-bound-ms`.
    #[arg(long = "p99-limit-ms")]
    pub p99_limit_ms: Option<f64>,
    /// Search each setting's knee from this rate (msgs/s) instead of a
    /// fixed `rate` list: double while the setting takes the rate, then
    /// bisect `--knee-steps` times (leave `rate` out of --param).
    #[arg(long = "find-knee", value_name = "START_RATE")]
    pub find_knee: Option<f64>,
    /// Bisection steps of `--find-knee` after the first missed rate.
    #[arg(long = "knee-steps", default_value_t = 3)]
    pub knee_steps: usize,
    /// Name of the report folder's last part.
    #[arg(long, default_value = "sweep")]
    pub name: String,
    /// Where the report folder goes.
    #[command(flatten)]
    pub report: ReportOut,
    /// The workload of every point (swept workload keys override it).
    #[command(flatten)]
    pub load: LoadArgs,
    /// Bytes of the raw disk measurement (`ferromq-bench disk`) run on the
    /// dir before the first point, which the report quotes figures against;
    /// 0 skips it.
    #[arg(long = "disk-bytes", default_value = "64MiB", value_parser = crate::store::parse_bytes)]
    pub disk_bytes: u64,
    /// Seconds of that measurement's 4 KiB write + fdatasync test.
    #[arg(long = "disk-sync-seconds", default_value_t = 1.0)]
    pub disk_sync_seconds: f64,
    /// Skip the harness ceiling: by default, when any point runs open loop
    /// (`rate` swept, `--find-knee`, `--rate`), every offered rate is also
    /// measured against the in-process null broker after each pass (same
    /// client workload, no consumers) and drawn on `latency-vs-rate.svg`.
    #[arg(long = "no-null-ceiling")]
    pub no_null_ceiling: bool,
}

fn parse_param(s: &str) -> std::result::Result<(String, Vec<String>), String> {
    let (k, vals) = crate::cli::parse_param_with(s, |k| {
        if k == WRITE_PATH_KEY
            || WORKLOAD_KEYS.contains(&k)
            || ferromq_engine::config::is_known_key(k)
        {
            Ok(())
        } else {
            Err(format!(
                "`{k}` is neither a broker/store key, nor a workload key ({}), nor {WRITE_PATH_KEY}",
                WORKLOAD_KEYS.join(", ")
            ))
        }
    })?;
    if k == WRITE_PATH_KEY {
        for v in &vals {
            write_path(v)?;
        }
    }
    if k == "slaves" {
        for v in &vals {
            match v.parse::<usize>() {
                Ok(n) if n <= MAX_SLAVES => {}
                _ => return Err(format!("slaves={v}: a number from 0 to {MAX_SLAVES}")),
            }
        }
    }
    Ok((k, vals))
}

fn parse_set(s: &str) -> std::result::Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not KEY=VALUE"))?;
    let k = k.trim();
    if !ferromq_engine::config::is_known_key(k) {
        return Err(format!("`{k}` is not a broker or store key"));
    }
    Ok((k.to_string(), v.trim().to_string()))
}

/// One combination of swept values.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Point {
    /// Index in the sweep (0-based).
    pub index: usize,
    /// `key -> value` of every swept key, in `--param` order.
    pub values: Vec<(String, String)>,
}

impl Point {
    /// `k1=v1 k2=v2`.
    pub fn label(&self) -> String {
        self.values
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The value of `key`, if swept.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Every combination of `params`, the first key varying slowest.
pub fn points(params: &[(String, Vec<String>)]) -> Vec<Point> {
    let mut out: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for (k, vals) in params {
        let mut next = Vec::with_capacity(out.len() * vals.len());
        for prefix in &out {
            for v in vals {
                let mut p = prefix.clone();
                p.push((k.clone(), v.clone()));
                next.push(p);
            }
        }
        out = next;
    }
    out.into_iter()
        .enumerate()
        .map(|(index, values)| Point { index, values })
        .collect()
}

/// The points of `params` and the workload of each (`base` with the
/// point's workload keys applied).
///
/// # Errors
///
/// When a point makes no valid workload.
pub fn points_and_workloads(
    params: &[(String, Vec<String>)],
    base: &LoadArgs,
) -> Result<(Vec<Point>, Vec<Workload>)> {
    let pts = points(params);
    let workloads = pts
        .iter()
        .map(|p| point_workload(base, p))
        .collect::<Result<_>>()?;
    Ok((pts, workloads))
}

/// The run order: `repeat` passes over all points.
pub fn schedule(n_points: usize, repeat: usize) -> Vec<(usize, usize)> {
    (0..repeat)
        .flat_map(|r| (0..n_points).map(move |p| (p, r)))
        .collect()
}

/// One measured run of one point.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PointRun {
    /// Point index.
    pub point: usize,
    /// Pass (0-based).
    pub repeat: usize,
    /// Order in the sweep (0-based).
    pub order: usize,
    /// The figures.
    pub figures: LoadFigures,
    /// Latency histogram (ns), not serialized; written as `.hgrm`.
    #[serde(skip)]
    pub latency_ns: Option<Histogram<u64>>,
    /// Send -> consume histogram (ns) with consumers; written as `-e2e.hgrm`.
    #[serde(skip)]
    pub consume_latency_ns: Option<Histogram<u64>>,
}

/// Everything a sweep measured.
#[derive(Debug, Clone)]
pub struct SweepOutcome {
    /// The points.
    pub points: Vec<Point>,
    /// Completed runs, in run order.
    pub runs: Vec<PointRun>,
    /// Runs planned.
    pub planned_runs: usize,
    /// Ctrl-C stopped the sweep.
    pub interrupted: bool,
    /// `broker.properties` of each point (broker target), index-aligned with points.
    pub properties: Vec<String>,
    /// The harness ceiling's null-broker runs, in run order.
    pub ceiling: Vec<ceiling::CeilingRun>,
}

/// The workload of `point`: `base` with the swept workload keys applied.
///
/// # Errors
///
/// When a swept workload value is not a number or out of range.
pub fn point_workload(base: &LoadArgs, point: &Point) -> Result<Workload> {
    let mut l = base.clone();
    for (k, v) in &point.values {
        let bad = || BenchError::new(format!("{k}={v}: not a valid value"));
        match k.as_str() {
            "producers" => l.producers = v.parse().map_err(|_| bad())?,
            "inflight" => l.inflight = v.parse().map_err(|_| bad())?,
            "batch" => l.batch = v.parse().map_err(|_| bad())?,
            "queues" => l.queues = v.parse().map_err(|_| bad())?,
            "consumers" => l.consumers = v.parse().map_err(|_| bad())?,
            // 0 (or `closed`): the closed loop, to compare against.
            "rate" => {
                l.rate = match v.as_str() {
                    "0" | "closed" => None,
                    _ => Some(v.parse().map_err(|_| bad())?),
                }
            }
            "size" => l.size = crate::store::parse_bytes(v).map_err(|_| bad())?,
            // 0: no drain (consumers, if any, read while the producers send).
            "drain" => {
                l.drain = match v.parse().map_err(|_| bad())? {
                    0 => None,
                    n => Some(n),
                }
            }
            "pull-batch" => l.pull_batch = v.parse().map_err(|_| bad())?,
            "suspend-ms" => l.suspend_ms = v.parse().map_err(|_| bad())?,
            "filter" => l.filter = v.parse().map_err(|_| bad())?,
            // Delays separated by `/` (the `,` separates the points), or `none`.
            "timer-delays" => {
                l.timer_delays = v
                    .parse()
                    .map_err(|e: BenchError| BenchError::new(format!("{k}={v}: {}", e.message())))?
            }
            _ => {}
        }
    }
    l.workload()
}

/// Store/broker settings of `point`: the fixed `set` ones, then the swept ones.
pub fn point_settings(set: &[(String, String)], point: &Point) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = set.to_vec();
    for (k, v) in &point.values {
        if k == WRITE_PATH_KEY {
            // Validated when parsed; an unknown value adds nothing.
            for (k, v) in write_path(v).map(|p| p.settings()).unwrap_or_default() {
                out.retain(|(k2, _)| k2 != &k);
                out.push((k, v));
            }
        } else if !WORKLOAD_KEYS.contains(&k.as_str()) {
            out.retain(|(k2, _)| k2 != k);
            out.push((k.clone(), v.clone()));
        }
    }
    out
}

/// `broker.properties` for a point.
pub fn broker_properties(store: &Path, small_files: bool, settings: &[(String, String)]) -> String {
    let mut s = format!(
        "brokerClusterName=BenchCluster\nbrokerName=bench-broker\nbrokerId=0\n\
         brokerIP1=127.0.0.1\nbindAddress=127.0.0.1\nlistenPort=0\n\
         storePathRootDir={}\nautoCreateTopicEnable=true\n",
        store.display()
    );
    if small_files {
        s.push_str(&format!("mapedFileSizeCommitLog={SMALL_COMMITLOG_BYTES}\n"));
    }
    for (k, v) in settings {
        s.push_str(&format!("{k}={v}\n"));
    }
    s
}

/// Run one point against fresh child processes.
#[allow(clippy::too_many_arguments)]
fn run_broker_point(
    rt: &tokio::runtime::Runtime,
    bins: &(PathBuf, PathBuf),
    dir: &Path,
    props: &str,
    slaves: usize,
    workload: &Workload,
    warmup: Duration,
    stop: &Arc<AtomicBool>,
) -> Result<(BrokerMeasurement, Duration)> {
    let (mut namesrv, ns_port) = start_namesrv(&bins.0, dir)?;
    let b_cfg = dir.join("broker.properties");
    write_file(&b_cfg, props)?;
    let (mut broker, port) = start_broker(&bins.1, "ferromq-broker", &b_cfg, ns_port)?;
    let addr = format!("127.0.0.1:{port}");
    // Slaves follow the master's HA port (printed after its listening line).
    let mut slave_procs = Vec::new();
    let mut result = Ok(());
    if slaves > 0 {
        result = broker
            .wait_line("HA port", START_DEADLINE)
            .and_then(|line| {
                let ha = line.rsplit(' ').next().unwrap_or_default().to_string();
                for i in 1..=slaves {
                    let sdir = dir.join(format!("slave-{i}"));
                    std::fs::create_dir_all(&sdir)
                        .map_err(|e| BenchError::io(sdir.display(), e))?;
                    let cfg = sdir.join("broker.properties");
                    write_file(&cfg, &slave_properties(props, &sdir.join("store"), i, &ha))?;
                    let (slave, _) =
                        start_broker(&bins.1, "ferromq-broker (slave)", &cfg, ns_port)?;
                    slave_procs.push(slave);
                }
                rt.block_on(wait_slaves(&addr, slaves, START_DEADLINE))
            });
    }
    let result = result
        .and_then(|()| rt.block_on(create_topic(&addr, workload)))
        .and_then(|()| warm_and_measure(rt, &addr, workload, warmup, stop));
    broker.stop(STOP_GRACE);
    for mut s in slave_procs {
        s.stop(STOP_GRACE);
    }
    namesrv.stop(STOP_GRACE);
    result
}

/// A slave's properties: the master's, with `brokerId=id`, `brokerRole=SLAVE`,
/// its own store and the master's HA address.
pub fn slave_properties(master: &str, store: &Path, id: usize, ha_addr: &str) -> String {
    let mut out: String = master
        .lines()
        .filter(|l| {
            let k = l.split('=').next().unwrap_or_default().trim();
            !matches!(
                k,
                "brokerId" | "brokerRole" | "storePathRootDir" | "haMasterAddress" | "haListenPort"
            )
        })
        .map(|l| format!("{l}\n"))
        .collect();
    out.push_str(&format!(
        "brokerId={id}\nbrokerRole=SLAVE\nstorePathRootDir={}\nhaMasterAddress={ha_addr}\n",
        store.display()
    ));
    out
}

/// Wait (bounded) until the master at `addr` reports `n` connected slaves in
/// GET_BROKER_RUNTIME_INFO (`haSlave<i>Addr`).
async fn wait_slaves(addr: &str, n: usize, deadline: Duration) -> Result<()> {
    use ferromq_server::remoting::{request, RemotingClient, RemotingCommand};
    let client = RemotingClient::new(addr.to_string());
    let until = Instant::now() + deadline;
    loop {
        let req = RemotingCommand::request(request::GET_BROKER_RUNTIME_INFO);
        if let Ok(r) = client.invoke(req, Duration::from_secs(3)).await {
            let body = String::from_utf8_lossy(&r.body);
            if (0..n).all(|i| body.contains(&format!("\"haSlave{i}Addr\""))) {
                client.close().await;
                return Ok(());
            }
        }
        if Instant::now() >= until {
            client.close().await;
            return Err(BenchError::new(format!(
                "the master at {addr} did not report {n} connected slave(s) within {deadline:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Run one point against the engine in-process.
fn run_store_point(
    dir: &Path,
    settings: &[(String, String)],
    small_files: bool,
    workload: &Workload,
) -> Result<(BrokerMeasurement, Duration)> {
    if workload.inflight != 1 || workload.batch != 1 {
        return Err(BenchError::new(
            "the store target puts one message per call: inflight and batch must be 1",
        ));
    }
    if workload.consumers != 0 {
        return Err(BenchError::new(
            "the store target has no consumers: --consumers must be 0",
        ));
    }
    if workload.open_loop.is_some() {
        return Err(BenchError::new(
            "the store target is closed loop only: no --rate",
        ));
    }
    let mut w = workload.clone();
    w.store_settings = settings.to_vec();
    if small_files {
        w.file_size_bytes = SMALL_COMMITLOG_BYTES;
    }
    let cfg = EngineTargetConfig {
        store_dir: dir.join("store"),
    };
    let t = EngineTarget::open(&cfg, &w)?;
    let cpu0 = crate::broker::process_cpu_time();
    let m = workload::run(&t, &w)?;
    let cpu = crate::broker::process_cpu_time().saturating_sub(cpu0);
    t.shutdown()?;
    Ok((
        BrokerMeasurement {
            consumable: m.messages,
            run: m,
            acks_per_bucket: Vec::new(),
            consume: None,
            open_loop: None,
            broker_cpu: None,
            broker_memory: None,
        },
        cpu,
    ))
}

/// Run the sweep: every point, `repeat` times, interleaved. Ctrl-C (or
/// `stop`) ends it after the current run, which is then discarded.
///
/// # Errors
///
/// When a binary is missing or the parameters make no valid workload.
/// A point that fails is reported on stderr and skipped.
pub fn run_sweep_points(args: &SweepArgs, stop: Option<Arc<AtomicBool>>) -> Result<SweepOutcome> {
    if args.repeat == 0 {
        return Err(BenchError::new("--repeat must be at least 1"));
    }
    let (pts, workloads) = points_and_workloads(&args.params, &args.load)?;
    let (base, _tmp) = crate::machine::dir_or_temp(args.started.dir.as_deref())?;
    let bins = match args.target {
        SweepTarget::Broker => (
            find_binary(args.started.bin_dir.as_deref(), "ferromq-namesrv")?,
            find_binary(args.started.bin_dir.as_deref(), "ferromq-broker")?,
        ),
        SweepTarget::Store => (PathBuf::new(), PathBuf::new()),
    };
    let rt = client_runtime(args.load.client_threads)?;
    let stop = stop.unwrap_or_else(|| ctrl_c_flag(&rt));
    let order = schedule(pts.len(), args.repeat);
    let ceiling_targets = if args.no_null_ceiling || args.target != SweepTarget::Broker {
        Vec::new()
    } else {
        ceiling::targets(&pts, &workloads)
    };
    let per_run = args.load.seconds + args.load.warmup_seconds + 1.5;
    let total_runs = order.len() + args.repeat * ceiling_targets.len();
    let bar = indicatif::ProgressBar::new(total_runs as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} runs, ~{msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut out = SweepOutcome {
        properties: pts
            .iter()
            .map(|p| {
                broker_properties(
                    &base.join(format!("point-{}", p.index)).join("store"),
                    args.started.small_files,
                    &point_settings(&args.set, p),
                )
            })
            .collect(),
        points: pts,
        runs: Vec::new(),
        planned_runs: order.len(),
        interrupted: false,
        ceiling: Vec::new(),
    };
    for (i, &(p, r)) in order.iter().enumerate() {
        if stop.load(Ordering::Relaxed) {
            out.interrupted = true;
            break;
        }
        let left_s = (total_runs as u64).saturating_sub(bar.position()) as f64 * per_run;
        bar.set_message(format!(
            "{:.0} s left; point {} pass {}: {}",
            left_s,
            p,
            r + 1,
            out.points[p].label()
        ));
        let dir = base.join(format!("point-{p}-pass-{r}"));
        let warmup = Duration::from_secs_f64(args.load.warmup_seconds);
        let res = match args.target {
            SweepTarget::Broker => {
                let props = broker_properties(
                    &dir.join("store"),
                    args.started.small_files,
                    &point_settings(&args.set, &out.points[p]),
                );
                let slaves = out.points[p]
                    .get("slaves")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                run_broker_point(
                    &rt,
                    &bins,
                    &dir,
                    &props,
                    slaves,
                    &workloads[p],
                    warmup,
                    &stop,
                )
            }
            SweepTarget::Store => run_store_point(
                &dir,
                &point_settings(&args.set, &out.points[p]),
                args.started.small_files,
                &workloads[p],
            ),
        };
        let _ = std::fs::remove_dir_all(&dir);
        bar.inc(1);
        if stop.load(Ordering::Relaxed) {
            out.interrupted = true;
            break;
        }
        match res {
            Ok((m, cpu)) => out.runs.push(PointRun {
                point: p,
                repeat: r,
                order: i,
                figures: LoadFigures::new(&m, cpu),
                latency_ns: Some(m.run.latency_ns),
                consume_latency_ns: m.consume.map(|c| c.latency_ns),
            }),
            Err(e) => bar.println(format!("point {p} pass {}: failed: {e}", r + 1)),
        }
        let pass_done = order.get(i + 1).is_none_or(|&(_, next)| next != r);
        if pass_done
            && !run_ceiling(
                &rt,
                &ceiling_targets,
                r,
                args.load.warmup_seconds,
                &stop,
                &bar,
                &mut out.ceiling,
            )
        {
            out.interrupted = true;
            break;
        }
    }
    bar.finish_and_clear();
    Ok(out)
}

/// Measure every ceiling target once against a fresh null broker (pass
/// `repeat`), appending to `runs`; a failed run is reported and skipped.
/// Returns false when `stop` was set (the run then under way is dropped).
fn run_ceiling(
    rt: &tokio::runtime::Runtime,
    targets: &[ceiling::CeilingTarget],
    repeat: usize,
    warmup_seconds: f64,
    stop: &Arc<AtomicBool>,
    bar: &indicatif::ProgressBar,
    runs: &mut Vec<ceiling::CeilingRun>,
) -> bool {
    for t in targets {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        bar.set_message(format!(
            "pass {}: null broker at {:.0} msgs/s {}",
            repeat + 1,
            t.rate,
            t.setting
        ));
        let res = ceiling::measure(
            rt,
            &t.workload,
            Duration::from_secs_f64(warmup_seconds),
            stop,
        );
        bar.inc(1);
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        match res {
            Ok(figures) => runs.push(ceiling::CeilingRun {
                setting: t.setting.clone(),
                rate: t.rate,
                repeat,
                figures,
            }),
            Err(e) => bar.println(format!(
                "null broker at {:.0} msgs/s pass {}: failed: {e}",
                t.rate,
                repeat + 1
            )),
        }
    }
    true
}

/// Per-point summary across passes.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PointSummary {
    /// The point.
    pub point: Point,
    /// Completed passes.
    pub runs: usize,
    /// Median msgs/s.
    pub msgs_per_sec: f64,
    /// Lowest and highest msgs/s.
    pub msgs_per_sec_range: (f64, f64),
    /// (max - min) / median of msgs/s, as a fraction.
    pub spread: f64,
    /// Median MB/s.
    pub mb_per_sec: f64,
    /// Median p50, µs.
    pub p50_us: f64,
    /// Median p99, µs.
    pub p99_us: f64,
    /// Lowest and highest p99, µs.
    pub p99_us_range: (f64, f64),
    /// Median p99.9, µs.
    pub p999_us: f64,
    /// Largest max, µs.
    pub max_us: f64,
    /// Errors over all passes.
    pub errors: u64,
    /// Send -> consume, when the point had consumers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consume: Option<ConsumeSummary>,
    /// Offered msgs/s of an open-loop point (`None`: closed loop).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offered_rate: Option<f64>,
    /// Open-loop requests due that never left the client, over all passes.
    #[serde(default)]
    pub unsent: u64,
    /// Median broker CPU per acknowledged message, ns (where measurable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_cpu_ns_per_msg: Option<f64>,
    /// The drain workload (`drain` swept or `--drain`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain: Option<DrainSummary>,
}

/// Per-point drain summary across passes.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DrainSummary {
    /// Consumers.
    pub consumers: usize,
    /// Median drain rate, msgs/s.
    pub msgs_per_sec: f64,
    /// Lowest and highest drain rate.
    pub msgs_per_sec_range: (f64, f64),
    /// Median messages per pull that carried any.
    pub msgs_per_pull: f64,
    /// Median broker CPU per drained message, ns (where measurable).
    pub broker_cpu_ns_per_msg: Option<f64>,
    /// Median consumer (harness) CPU per drained message, ns.
    pub client_cpu_ns_per_msg: f64,
    /// Every pass received every message of its fill.
    pub all_drained: bool,
    /// Pull errors over all passes.
    pub errors: u64,
}

/// Per-point send -> consume summary across passes.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ConsumeSummary {
    /// Median p50, µs.
    pub p50_us: f64,
    /// Median p99, µs.
    pub p99_us: f64,
    /// Lowest and highest p99, µs.
    pub p99_us_range: (f64, f64),
    /// Median p99.9, µs.
    pub p999_us: f64,
    /// Largest max, µs.
    pub max_us: f64,
    /// Every pass received every acknowledged message.
    pub all_consumed: bool,
    /// Pull errors over all passes.
    pub errors: u64,
}

/// Summaries of every point that has at least one run.
pub fn summarize(points: &[Point], runs: &[PointRun]) -> Vec<PointSummary> {
    let mut by: BTreeMap<usize, Vec<&PointRun>> = BTreeMap::new();
    for r in runs {
        by.entry(r.point).or_default().push(r);
    }
    points
        .iter()
        .filter_map(|p| {
            let rs = by.get(&p.index)?;
            let f = |g: &dyn Fn(&LoadFigures) -> f64| -> Vec<f64> {
                rs.iter().map(|r| g(&r.figures)).collect()
            };
            let rate = f(&|x| x.msgs_per_sec);
            let p99 = f(&|x| x.latency_us.p99);
            let lo = rate.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = rate.iter().copied().fold(0.0, f64::max);
            let med = median(&rate);
            Some(PointSummary {
                point: p.clone(),
                runs: rs.len(),
                msgs_per_sec: med,
                msgs_per_sec_range: (lo, hi),
                spread: if med > 0.0 { (hi - lo) / med } else { 0.0 },
                mb_per_sec: median(&f(&|x| x.mb_per_sec)),
                p50_us: median(&f(&|x| x.latency_us.p50)),
                p99_us: median(&p99),
                p99_us_range: (
                    p99.iter().copied().fold(f64::INFINITY, f64::min),
                    p99.iter().copied().fold(0.0, f64::max),
                ),
                p999_us: median(&f(&|x| x.latency_us.p999)),
                max_us: f(&|x| x.latency_us.max).into_iter().fold(0.0, f64::max),
                errors: rs.iter().map(|r| r.figures.errors).sum(),
                consume: consume_summary(rs),
                offered_rate: rs
                    .iter()
                    .find_map(|r| r.figures.open_loop.as_ref().map(|o| o.rate)),
                unsent: rs
                    .iter()
                    .filter_map(|r| r.figures.open_loop.as_ref())
                    .map(|o| o.unsent)
                    .sum(),
                broker_cpu_ns_per_msg: median_of_some(
                    rs.iter().map(|r| r.figures.broker_cpu_ns_per_msg),
                ),
                drain: drain_summary(rs),
            })
        })
        .collect()
}

/// The median of the values that are there (`None` when none is).
fn median_of_some(v: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let v: Vec<f64> = v.flatten().collect();
    (!v.is_empty()).then(|| median(&v))
}

fn drain_summary(rs: &[&PointRun]) -> Option<DrainSummary> {
    let ds: Vec<&crate::broker::DrainFigures> =
        rs.iter().filter_map(|r| r.figures.drain.as_ref()).collect();
    let first = ds.first()?;
    let rate: Vec<f64> = ds.iter().map(|d| d.msgs_per_sec).collect();
    Some(DrainSummary {
        consumers: first.consumers,
        msgs_per_sec: median(&rate),
        msgs_per_sec_range: (
            rate.iter().copied().fold(f64::INFINITY, f64::min),
            rate.iter().copied().fold(0.0, f64::max),
        ),
        msgs_per_pull: median(&ds.iter().map(|d| d.msgs_per_pull).collect::<Vec<_>>()),
        broker_cpu_ns_per_msg: median_of_some(ds.iter().map(|d| d.broker_cpu_ns_per_msg)),
        client_cpu_ns_per_msg: median(
            &ds.iter()
                .map(|d| d.client_cpu_ns_per_msg)
                .collect::<Vec<_>>(),
        ),
        all_drained: ds.len() == rs.len() && ds.iter().all(|d| d.drained),
        errors: ds.iter().map(|d| d.errors).sum(),
    })
}

fn consume_summary(rs: &[&PointRun]) -> Option<ConsumeSummary> {
    let cs: Vec<&crate::broker::ConsumeFigures> = rs
        .iter()
        .filter_map(|r| r.figures.consume.as_ref())
        .collect();
    if cs.is_empty() {
        return None;
    }
    let p99: Vec<f64> = cs.iter().map(|c| c.latency_us.p99).collect();
    Some(ConsumeSummary {
        p50_us: median(&cs.iter().map(|c| c.latency_us.p50).collect::<Vec<_>>()),
        p99_us: median(&p99),
        p99_us_range: (
            p99.iter().copied().fold(f64::INFINITY, f64::min),
            p99.iter().copied().fold(0.0, f64::max),
        ),
        p999_us: median(&cs.iter().map(|c| c.latency_us.p999).collect::<Vec<_>>()),
        max_us: cs.iter().map(|c| c.latency_us.max).fold(0.0, f64::max),
        all_consumed: cs.len() == rs.len() && cs.iter().all(|c| c.drained),
        errors: cs.iter().map(|c| c.errors).sum(),
    })
}

/// `ferromq-bench sweep`: run, write the report, print where it is.
///
/// # Errors
///
/// When the sweep cannot start or the report cannot be written.
pub fn run_sweep(args: &SweepArgs, argv: &[String]) -> Result<i32> {
    let started = std::time::Instant::now();
    let (stamp, iso) = crate::reporting::utc_now();
    let dir_for_machine = args.started.dir.clone().unwrap_or_else(std::env::temp_dir);
    let machine = MachineInfo::collect(&dir_for_machine);
    let disk = if args.disk_bytes > 0 {
        if let Some(d) = &args.started.dir {
            std::fs::create_dir_all(d).map_err(|e| BenchError::io(d.display(), e))?;
        }
        if !args.report.quiet {
            eprintln!("measuring the disk's raw limits first (--disk-bytes 0 skips it)");
        }
        Some(crate::disk::measure(&crate::disk::DiskArgs {
            dir: crate::cli::DiskDir {
                dir: args.started.dir.clone(),
            },
            bytes: args.disk_bytes.max(1 << 20),
            sync_seconds: args.disk_sync_seconds,
            json: crate::cli::JsonFlag::default(),
        })?)
    } else {
        None
    };
    let rtt =
        || crate::loopback::measure(LOOPBACK_ROUND_TRIPS, 128, std::time::Duration::from_secs(3));
    let broker = args.target == crate::sweep::SweepTarget::Broker;
    let mut loopback = Vec::new();
    if broker {
        loopback.push(rtt()?);
    }
    let (searched, outcome) = find_knee::search_or_sweep(args)?;
    let args = searched.as_ref().unwrap_or(args);
    if broker {
        loopback.push(rtt()?);
    }
    let report = build(
        args,
        &outcome,
        crate::reporting::shell_join(argv),
        iso,
        started.elapsed().as_secs_f64(),
        machine,
        disk,
        loopback,
    );
    let dir = write(&args.report.out, &stamp, &args.name, &report, &outcome)?;
    if crate::reporting::print_report_path(&dir, args.report.quiet) {
        for p in &report.points {
            println!(
                "  point {} ({}): {:.0} msgs/s ±{:.1} %, p99 {:.3} ms",
                p.point.index,
                p.point.label(),
                p.msgs_per_sec,
                p.spread * 50.0,
                p.p99_us / 1000.0
            );
        }
        println!(
            "recommended:\n{}confidence: {}",
            report.recommendation.properties, report.recommendation.confidence
        );
    }
    Ok(if outcome.interrupted { 130 } else { 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_are_the_cartesian_product_and_schedule_interleaves() {
        let ps = points(&[
            ("a".into(), vec!["1".into(), "2".into()]),
            ("b".into(), vec!["x".into(), "y".into(), "z".into()]),
        ]);
        assert_eq!(ps.len(), 6);
        assert_eq!(ps[0].label(), "a=1 b=x");
        assert_eq!(ps[5].label(), "a=2 b=z");
        assert_eq!(schedule(2, 2), vec![(0, 0), (1, 0), (0, 1), (1, 1)]);
    }

    #[test]
    fn params_validate_keys() {
        assert!(parse_param("sendMessageThreadPoolNums=1,4").is_ok());
        assert!(parse_param("producers=1,2").is_ok());
        assert!(parse_param("noSuchKey=1").is_err());
        assert!(parse_param("flushDiskType=").is_err());
        assert!(parse_param("writePath=mmap,pool-pwrite,pool-io-uring").is_ok());
        assert!(parse_param("writePath=mmap,nvme").is_err());
    }

    #[test]
    fn slave_properties_follow_the_master() {
        let m =
            "brokerName=b\nbrokerId=0\nbrokerRole=SYNC_MASTER\nstorePathRootDir=/m\nlistenPort=0\n";
        let s = slave_properties(m, Path::new("/s"), 1, "127.0.0.1:4243");
        assert!(s.contains("brokerName=b\n") && s.contains("listenPort=0\n"));
        assert!(s.contains("brokerId=1\nbrokerRole=SLAVE\nstorePathRootDir=/s\n"));
        assert!(s.contains("haMasterAddress=127.0.0.1:4243\n"));
        assert!(!s.contains("brokerId=0") && !s.contains("SYNC_MASTER") && !s.contains("=/m"));
        assert!(parse_param("slaves=0,1").is_ok());
        assert!(parse_param("slaves=3").is_err());
    }

    #[test]
    fn write_path_expands_to_its_store_keys() {
        let p = Point {
            index: 0,
            values: vec![(WRITE_PATH_KEY.into(), "pool-io-uring".into())],
        };
        let s = point_settings(&[("transientStorePoolEnable".into(), "false".into())], &p);
        assert!(s.contains(&("transientStorePoolEnable".into(), "true".into())));
        assert!(!s.contains(&("transientStorePoolEnable".into(), "false".into())));
        assert!(s.contains(&("ioUringEnable".into(), "true".into())));
        assert!(!broker_properties(Path::new("/x"), true, &s).contains("writePath"));
    }

    #[test]
    fn workload_keys_apply_and_store_keys_go_to_properties() {
        let p = Point {
            index: 0,
            values: vec![
                ("producers".into(), "3".into()),
                ("flushDiskType".into(), "SYNC_FLUSH".into()),
            ],
        };
        let w = point_workload(&LoadArgs::default(), &p).unwrap();
        assert_eq!(w.producers, 3);
        let s = point_settings(&[("flushDiskType".into(), "ASYNC_FLUSH".into())], &p);
        assert_eq!(s, vec![("flushDiskType".into(), "SYNC_FLUSH".into())]);
        let props = broker_properties(Path::new("/x"), true, &s);
        assert!(props.contains("flushDiskType=SYNC_FLUSH\n"));
        assert!(props.contains("brokerIP1=127.0.0.1\n"));
        assert!(!props.contains("producers"));
    }

    #[test]
    fn rate_is_a_workload_key_and_zero_is_the_closed_loop() {
        assert!(parse_param("rate=0,5000,20000").is_ok());
        let point = |v: &str| Point {
            index: 0,
            values: vec![("rate".into(), v.into())],
        };
        let base = LoadArgs {
            arrivals: crate::workload::Arrivals::Poisson,
            ..LoadArgs::default()
        };
        let w = point_workload(&base, &point("5000")).unwrap();
        assert_eq!(
            w.open_loop,
            Some(crate::workload::OpenLoop {
                rate: 5000.0,
                arrivals: crate::workload::Arrivals::Poisson
            })
        );
        assert_eq!(point_workload(&base, &point("0")).unwrap().open_loop, None);
        assert!(point_workload(&base, &point("fast")).is_err());
        assert!(point_workload(&base, &point("-1")).is_err());
        assert!(point_settings(&[], &point("5000")).is_empty());
    }

    #[test]
    fn timer_delays_is_a_workload_key_with_slash_separated_delays() {
        let (k, vals) = parse_param("timer-delays=none,10s/90s/10m/1h").unwrap();
        assert_eq!((k.as_str(), vals.len()), ("timer-delays", 2));
        let pts = points(&[(k, vals)]);
        let ws: Vec<Workload> = pts
            .iter()
            .map(|p| point_workload(&LoadArgs::default(), p).unwrap())
            .collect();
        assert!(ws[0].timer_delays.is_empty());
        assert_eq!(
            ws[1].timer_delays.ms(),
            &[10_000, 90_000, 600_000, 3_600_000]
        );
        let bad = Point {
            index: 0,
            values: vec![("timer-delays".into(), "10".into())],
        };
        let e = point_workload(&LoadArgs::default(), &bad).unwrap_err();
        assert!(e.message().contains("timer-delays=10") && e.message().contains("no unit"));
        // The report's workload line says the base run sent timer messages.
        let base = LoadArgs {
            timer_delays: "30m,1h".parse().unwrap(),
            ..LoadArgs::default()
        };
        let line = crate::sweep_report::BaseWorkload::of(&base).line(1.0, 10.0);
        assert!(
            line.contains("timer messages: every send carries TIMER_DELAY_MS = one of 30m,1h"),
            "{line}"
        );
        assert!(!crate::sweep_report::BaseWorkload::of(&LoadArgs::default())
            .line(1.0, 10.0)
            .contains("timer"));
    }
}
