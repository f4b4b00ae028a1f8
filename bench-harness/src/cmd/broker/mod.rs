//! `ferromq-bench broker`: drive a RocketMQ-protocol broker (`--broker ADDR`,
//! or the first master a name server knows, `--namesrv ADDR`) or the
//! in-process null broker (`--null`, the harness's own overhead) with the
//! lean pipelined client of [`crate::target::broker`].

mod report;

use std::io::Write as _;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cli::JsonFlag;
use crate::error::{BenchError, Result};
use crate::results::LatencySummary;
use crate::store::parse_bytes;
use crate::target::broker::{
    broker_from_namesrv, create_topic, drive, BrokerMeasurement, SendTemplates,
};
use crate::target::consumer::Consumers;
use crate::target::null_broker::NullBroker;
use crate::workload::Workload;

/// Flags of `ferromq-bench broker`.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct BrokerArgs {
    /// Broker address `host:port`.
    #[arg(long, conflicts_with_all = ["namesrv", "null"])]
    pub broker: Option<String>,
    /// Name server address `host:port`; the first master broker it knows is driven.
    #[arg(long, conflicts_with = "null")]
    pub namesrv: Option<String>,
    /// Drive an in-process null broker (answers SUCCESS at once): the harness's own cost.
    #[arg(long)]
    pub null: bool,
    /// The workload.
    #[command(flatten)]
    pub load: LoadArgs,
    /// `--json`.
    #[command(flatten)]
    pub json: JsonFlag,
    /// Measure plain sends, then transactional sends (half message + END_TRANSACTION
    /// commit, oneway) with the same synchronous producers, and print both
    /// (`--inflight` and `--batch` do not apply).
    #[arg(long, conflicts_with = "null")]
    pub transactional: bool,
}

/// The workload flags shared by `broker` and `sweep`.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct LoadArgs {
    /// Body size in bytes (suffixes accepted).
    #[arg(long, default_value = "1024", value_parser = parse_bytes)]
    pub size: u64,
    /// Producers, each one connection.
    #[arg(long, default_value_t = 4)]
    pub producers: usize,
    /// Requests in flight per producer (1: synchronous sends).
    #[arg(long, default_value_t = 1)]
    pub inflight: usize,
    /// Messages per request (SEND_BATCH_MESSAGE when > 1).
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Queues of the topic.
    #[arg(long, default_value_t = 8)]
    pub queues: u32,
    /// Topic.
    #[arg(long, default_value = "BenchTopic")]
    pub topic: String,
    /// Measured seconds (per point in a sweep).
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Warm-up seconds before measuring (not counted).
    #[arg(long = "warmup-seconds", default_value_t = 1.0)]
    pub warmup_seconds: f64,
    /// Cap on messages per measurement (the time usually ends it first).
    #[arg(long, default_value_t = 100_000_000)]
    pub messages: u64,
    /// Worker threads of the client's tokio runtime.
    #[arg(long = "client-threads", default_value_t = 1)]
    pub client_threads: usize,
    /// Pull consumers (long polling, one connection each) measuring send ->
    /// consume latency next to send -> ack. 0 (the default) sends only, so
    /// the send figures are not shared with the consumers' broker and client
    /// CPU; 1 or more stamps every body with its send time (needs --size >= 8).
    #[arg(long, default_value_t = 0)]
    pub consumers: usize,
}

impl Default for LoadArgs {
    fn default() -> Self {
        LoadArgs {
            size: 1024,
            producers: 4,
            inflight: 1,
            batch: 1,
            queues: 8,
            topic: "BenchTopic".into(),
            seconds: 10.0,
            warmup_seconds: 1.0,
            messages: 100_000_000,
            client_threads: 1,
            consumers: 0,
        }
    }
}

impl LoadArgs {
    /// The measured workload these flags describe.
    ///
    /// # Errors
    ///
    /// When a value is out of range.
    pub fn workload(&self) -> Result<Workload> {
        if !(self.seconds.is_finite() && self.seconds > 0.0) {
            return Err(BenchError::new("--seconds must be a positive number"));
        }
        if !(self.warmup_seconds.is_finite() && self.warmup_seconds >= 0.0) {
            return Err(BenchError::new("--warmup-seconds must be >= 0"));
        }
        let mut w = Workload::new(self.messages);
        w.size_bytes =
            usize::try_from(self.size).map_err(|_| BenchError::new("--size too large"))?;
        w.producers = self.producers;
        w.inflight = self.inflight;
        w.batch = self.batch;
        w.queues = self.queues;
        w.topic = self.topic.clone();
        w.consumers = self.consumers;
        w.max_duration = Some(Duration::from_secs_f64(self.seconds));
        w.validate()?;
        Ok(w)
    }
}

/// What one broker measurement gives, as printed by `--json` and kept per
/// point in sweeps.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LoadFigures {
    /// Messages acknowledged (any non-error status).
    pub messages: u64,
    /// Seconds from the first send to the last ack.
    pub seconds: f64,
    /// Messages per second.
    pub msgs_per_sec: f64,
    /// Payload MB (10^6 bytes) per second.
    pub mb_per_sec: f64,
    /// Send -> ack latency, µs.
    pub latency_us: LatencySummary,
    /// Requests that failed (error status, timeout, closed connection).
    pub errors: u64,
    /// The first failure.
    pub first_error: Option<String>,
    /// Messages per response status.
    pub statuses: std::collections::BTreeMap<String, u64>,
    /// Client process CPU time per acknowledged message, ns (with `--null`
    /// the null broker's share is included).
    pub cpu_ns_per_msg: f64,
    /// Acknowledged messages per 100 ms.
    pub acks_per_100ms: Vec<u64>,
    /// Send -> consume figures, with `--consumers` > 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consume: Option<ConsumeFigures>,
}

/// Send -> consume figures of a measurement.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ConsumeFigures {
    /// Consumers that pulled.
    pub consumers: usize,
    /// Messages stamped within the measurement and received.
    pub consumed: u64,
    /// Received messages per second of the producers' measured time.
    pub msgs_per_sec: f64,
    /// Send -> consume latency, µs (send = the request is queued on the
    /// producer's connection; consume = the pull response is read).
    pub latency_us: LatencySummary,
    /// Failed pulls.
    pub errors: u64,
    /// The first failure.
    pub first_error: Option<String>,
    /// Every acknowledged message was received within the drain timeout.
    pub drained: bool,
    /// Seconds after the producers' end until the last message came (or the timeout).
    pub drain_seconds: f64,
}

impl LoadFigures {
    /// Figures of a measurement, with the process CPU time it used.
    pub fn new(m: &BrokerMeasurement, cpu: Duration) -> Self {
        let r = &m.run;
        let secs = r.elapsed.as_secs_f64();
        let rate = if secs > 0.0 {
            r.messages as f64 / secs
        } else {
            0.0
        };
        LoadFigures {
            messages: r.messages,
            seconds: secs,
            msgs_per_sec: rate,
            mb_per_sec: if secs > 0.0 {
                r.bytes as f64 / 1e6 / secs
            } else {
                0.0
            },
            latency_us: LatencySummary::from_ns(&r.latency_ns),
            errors: r.put_errors,
            first_error: r.first_error.clone(),
            statuses: r.status_counts.clone(),
            cpu_ns_per_msg: if r.messages > 0 {
                cpu.as_nanos() as f64 / r.messages as f64
            } else {
                0.0
            },
            acks_per_100ms: m.acks_per_bucket.clone(),
            consume: m.consume.as_ref().map(|c| ConsumeFigures {
                consumers: c.consumers,
                consumed: c.consumed,
                msgs_per_sec: if secs > 0.0 {
                    c.consumed as f64 / secs
                } else {
                    0.0
                },
                latency_us: LatencySummary::from_ns(&c.latency_ns),
                errors: c.errors,
                first_error: c.first_error.clone(),
                drained: c.drained,
                drain_seconds: c.drain_seconds,
            }),
        }
    }
}

/// Process CPU time so far (user + system, all threads).
pub fn process_cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// A tokio runtime for the client with `threads` workers.
///
/// # Errors
///
/// When the runtime cannot be built.
pub fn client_runtime(threads: usize) -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .thread_name("bench-client")
        .enable_all()
        .build()
        .map_err(|e| BenchError::io("building the client runtime", e))
}

/// Warm up for `warmup`, then measure `workload` against `addr`, on `rt`.
/// Returns the measurement and the process CPU time it used. With
/// `workload.consumers > 0` the consumers start before the warm-up, count
/// only messages sent during the measurement, and are given up to
/// [`crate::target::consumer::DRAIN_TIMEOUT`] after it to receive every
/// acknowledged one.
///
/// # Errors
///
/// As [`drive`].
pub fn warm_and_measure(
    rt: &tokio::runtime::Runtime,
    addr: &str,
    workload: &Workload,
    warmup: Duration,
    stop: &Arc<AtomicBool>,
) -> Result<(BrokerMeasurement, Duration)> {
    let born = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let templates = Arc::new(SendTemplates::new(workload, born)?);
    let consumers = if workload.consumers > 0 {
        Some(rt.block_on(Consumers::start(addr, workload, workload.consumers))?)
    } else {
        None
    };
    let measured = (|| {
        if !warmup.is_zero() {
            let mut w = workload.clone();
            w.max_duration = Some(warmup);
            rt.block_on(drive(addr, &w, Arc::clone(&templates), Arc::clone(stop)))?;
        }
        let cpu0 = process_cpu_time();
        if let Some(c) = &consumers {
            c.measure_from_now();
        }
        let m = rt.block_on(drive(addr, workload, templates, Arc::clone(stop)))?;
        Ok((m, cpu0))
    })();
    let (mut m, cpu0) = match measured {
        Ok(x) => x,
        Err(e) => {
            if let Some(c) = consumers {
                c.abort();
            }
            return Err(e);
        }
    };
    if let Some(c) = consumers {
        m.consume = Some(rt.block_on(c.finish(m.run.messages))?);
    }
    Ok((m, process_cpu_time().saturating_sub(cpu0)))
}

/// The harness's overhead against the null broker for `workload`: figures of
/// a measurement (no warm-up beyond `warmup`).
///
/// # Errors
///
/// When the null broker cannot start or the drive fails.
pub fn null_broker_figures(
    workload: &Workload,
    client_threads: usize,
    warmup: Duration,
) -> Result<LoadFigures> {
    let null = NullBroker::start()?;
    let rt = client_runtime(client_threads)?;
    let stop = Arc::new(AtomicBool::new(false));
    let (m, cpu) = warm_and_measure(&rt, &null.addr().to_string(), workload, warmup, &stop)?;
    Ok(LoadFigures::new(&m, cpu))
}

/// Stop flag set by Ctrl-C (SIGINT) on `rt`.
pub fn ctrl_c_flag(rt: &tokio::runtime::Runtime) -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let s = Arc::clone(&stop);
    rt.spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            s.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    });
    stop
}

/// `ferromq-bench broker`: measure, print, return the exit code.
///
/// # Errors
///
/// When the target cannot be reached or the workload is invalid.
pub fn run_broker(args: &BrokerArgs) -> Result<i32> {
    let workload = args.load.workload()?;
    if args.null && workload.consumers > 0 {
        return Err(BenchError::new(
            "the null broker stores nothing to consume: --consumers must be 0 with --null",
        ));
    }
    let rt = client_runtime(args.load.client_threads)?;
    let stop = ctrl_c_flag(&rt);
    let null;
    let (target, addr) = if args.null {
        null = NullBroker::start()?;
        (
            "null broker (in-process)".to_string(),
            null.addr().to_string(),
        )
    } else if let Some(b) = &args.broker {
        (format!("broker {b}"), b.clone())
    } else if let Some(n) = &args.namesrv {
        let b = rt.block_on(broker_from_namesrv(n))?;
        (format!("broker {b} (from name server {n})"), b)
    } else {
        return Err(BenchError::new(
            "give --broker ADDR, --namesrv ADDR or --null",
        ));
    };
    if !args.null {
        rt.block_on(create_topic(&addr, &workload))?;
    }
    if args.transactional {
        return run_transactional(args, &rt, &target, &addr, &workload, &stop);
    }
    let started = Instant::now();
    let (m, cpu) = warm_and_measure(
        &rt,
        &addr,
        &workload,
        Duration::from_secs_f64(args.load.warmup_seconds),
        &stop,
    )?;
    let f = LoadFigures::new(&m, cpu);
    let mut out = std::io::stdout().lock();
    if args.json.json {
        report::json_line(
            &mut out,
            &target,
            &addr,
            &workload,
            ("figures", &f),
            started,
        )?;
    } else {
        write!(out, "{}", report::text(&target, &workload, &f, args.null))
            .map_err(|e| BenchError::io("stdout", e))?;
    }
    Ok(0)
}

/// `ferromq-bench broker --transactional`.
fn run_transactional(
    args: &BrokerArgs,
    rt: &tokio::runtime::Runtime,
    target: &str,
    addr: &str,
    workload: &Workload,
    stop: &Arc<AtomicBool>,
) -> Result<i32> {
    let started = Instant::now();
    let c = crate::txn::compare(
        rt,
        addr,
        workload,
        Duration::from_secs_f64(args.load.warmup_seconds),
        stop,
    )?;
    let mut out = std::io::stdout().lock();
    if args.json.json {
        report::json_line(
            &mut out,
            target,
            addr,
            workload,
            ("transactional", &c),
            started,
        )?;
        return Ok(0);
    }
    write!(out, "{}", report::transactional_text(target, workload, &c))
        .map_err(|e| BenchError::io("stdout", e))?;
    Ok(0)
}
