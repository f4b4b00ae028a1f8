//! `ferromq-bench broker`: drive a RocketMQ-protocol broker (`--broker ADDR`,
//! or the first master a name server knows, `--namesrv ADDR`) or the
//! in-process null broker (`--null`, the harness's own overhead) with the
//! lean pipelined client of [`crate::target::broker`].

mod report;

pub(crate) use report::open_loop_section;

use std::io::Write as _;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cli::JsonFlag;
use crate::error::{BenchError, Result};
use crate::proc_cpu::{broker_pid, process_memory, CpuMeter, ProcMemory};
use crate::results::LatencySummary;
use crate::store::parse_bytes;
use crate::target::broker::{
    broker_from_namesrv, create_topic, drive, BrokerMeasurement, SendTemplates,
};
use crate::target::consumer::{
    mono_ns, queue_max_offsets, ConsumeMeasurement, Consumers, DRAIN_WORKLOAD_TIMEOUT,
};
use crate::target::null_broker::NullBroker;
use crate::workload::{
    parse_timer_delays, Arrivals, Filter, OpenLoop, TimerDelays, Workload, DEFAULT_PULL_BATCH,
    DEFAULT_SUSPEND_MS,
};

/// Longest fill of the drain workload (`--drain N`): a fill that takes longer
/// stops there and the consumers drain what was acknowledged.
pub const FILL_TIMEOUT: Duration = Duration::from_secs(300);

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
    /// (`--inflight`, `--batch` and `--rate` do not apply).
    #[arg(long, conflicts_with_all = ["null", "rate"])]
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
    /// Open loop: offer this many messages per second (all producers
    /// together) whatever the acknowledgements do; latency counts from each
    /// message's intended send time, and the report says how late the sends
    /// left. `--inflight` still bounds what is outstanding (a send whose
    /// turn comes while the window is full waits, and the wait counts).
    /// Without it: closed loop (send as fast as acknowledgements allow).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Spacing of the open loop's send times (with `--rate`, or with `rate`
    /// swept by `--param`).
    #[arg(long, value_enum, default_value_t = Arrivals::Constant)]
    pub arrivals: Arrivals,
    /// Messages each pull of the consumers asks for (PULL_MESSAGE maxMsgNums).
    #[arg(long = "pull-batch", default_value_t = DEFAULT_PULL_BATCH)]
    pub pull_batch: u32,
    /// How long the broker may hold a consumer's pull that finds nothing
    /// (long polling, suspendTimeoutMillis), ms.
    #[arg(long = "suspend-ms", default_value_t = DEFAULT_SUSPEND_MS)]
    pub suspend_ms: u64,
    /// Measure a filter on the consumers' pull path (needs `--consumers` or
    /// `--drain`): with `tag` or `sql92` the producers alternate, per queue,
    /// between a message with tag `even` and user property `k=even` and one
    /// with tag `odd` and `k=odd`, and the consumers subscribe to the even
    /// half, by tag (expression type TAG, `even`) or by property (SQL92,
    /// `k = 'even'`); they receive, count and time that half only. `sql92`
    /// needs `enablePropertyFilter=true` in the broker's properties (add it
    /// to the props file when the harness starts the broker). `none` (the
    /// default): untagged messages, subscription `*`.
    #[arg(long, value_enum, default_value_t = Filter::None)]
    pub filter: Filter,
    /// Send RocketMQ 5 timer messages: every message carries the property
    /// `TIMER_DELAY_MS` with one of these delays, round-robin over the list
    /// (mixed delays), e.g. `10s,90s,10m,1h` (units ms, s, m, h; `,` or `/`
    /// between them). The broker holds each message until it is due, so
    /// consumers (`--consumers`) see only those that fall due during the
    /// run, and their send->consume includes the delay; the figure that
    /// counts is send msgs/s. Not with `--batch` > 1, `--drain` or
    /// `--transactional`. `none` (the default): plain messages.
    #[arg(
        long = "timer-delays",
        value_name = "LIST",
        default_value = "none",
        value_parser = parse_timer_delays
    )]
    pub timer_delays: TimerDelays,
    /// The drain workload: the producers fill the topic with N messages (as
    /// fast as they can), then the consumers (`--consumers`, 1 when not given)
    /// empty it from where the fill began; the report gives the drain rate
    /// and the broker's CPU per consumed message. `--seconds` then does not
    /// apply (the fill is bounded by N and by 300 s).
    #[arg(long, value_name = "N", conflicts_with = "rate")]
    pub drain: Option<u64>,
    /// ACL access key: every send and the topic creation are signed as
    /// RocketMQ clients sign them, for a broker with `aclEnable=true` (the
    /// account must be admin to create the topic). Sends only: not with
    /// consumers yet.
    #[arg(long = "access-key", requires = "secret_key")]
    pub access_key: Option<String>,
    /// ACL secret key of `--access-key`.
    #[arg(long = "secret-key", requires = "access_key")]
    pub secret_key: Option<String>,
    /// Connect to the broker and name server with TLS. Without `--tls-ca`
    /// any server certificate is accepted, as RocketMQ clients do by
    /// default (`tls.client.authServer=false`).
    #[arg(long)]
    pub tls: bool,
    /// PEM CA bundle the server certificate must chain to (implies `--tls`).
    #[arg(long = "tls-ca")]
    pub tls_ca: Option<std::path::PathBuf>,
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
            rate: None,
            arrivals: Arrivals::Constant,
            pull_batch: DEFAULT_PULL_BATCH,
            suspend_ms: DEFAULT_SUSPEND_MS,
            filter: Filter::None,
            timer_delays: TimerDelays::default(),
            drain: None,
            access_key: None,
            secret_key: None,
            tls: false,
            tls_ca: None,
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
        w.open_loop = self.rate.map(|rate| OpenLoop {
            rate,
            arrivals: self.arrivals,
        });
        w.max_duration = Some(Duration::from_secs_f64(self.seconds));
        w.pull_batch = self.pull_batch;
        if let (Some(a), Some(k)) = (&self.access_key, &self.secret_key) {
            w.credentials = Some(ferromq_server::acl::Credentials::new(a, k).ok_or_else(|| {
                BenchError::new("--access-key and --secret-key must not be blank")
            })?);
        }
        if self.tls || self.tls_ca.is_some() {
            w.tls = Some(ferromq_server::remoting::tls::TlsClientSettings::for_cli(
                self.tls_ca.clone(),
            ));
        }
        w.suspend_ms = self.suspend_ms;
        w.filter = self.filter;
        w.timer_delays = self.timer_delays.clone();
        if let Some(n) = self.drain {
            w.drain = Some(n);
            w.consumers = self.consumers.max(1);
            w.messages = n;
            w.max_duration = Some(FILL_TIMEOUT);
        }
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
    /// Open loop (`--rate`): the offered load and how late the sends left.
    /// The latencies above then count from each message's intended send time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_loop: Option<OpenLoopFigures>,
    /// Broker process CPU time per acknowledged message over the measurement
    /// (with consumers, serving them too), ns; where the broker runs on this
    /// machine and could be found by its listening port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_cpu_ns_per_msg: Option<f64>,
    /// The broker process's resident memory (VmRSS, RssAnon) when the
    /// measured sends ended, where it runs on this machine and could be
    /// found by its listening port. With timer messages every message sent
    /// and not yet due is pending in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_memory: Option<ProcMemory>,
    /// The drain workload (`--drain N`): how fast the consumers emptied the
    /// topic the producers filled (the figures above are the fill's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain: Option<DrainFigures>,
    /// Loopback TCP round trips measured in the same run, as the floor of
    /// send -> consume (`broker` with consumers): back to back, and paced at
    /// the offered rate with an open loop.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub loopback: Vec<crate::loopback::LoopbackRtt>,
}

/// What the drain workload measured: the consumers emptying a filled topic.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DrainFigures {
    /// Consumers that pulled.
    pub consumers: usize,
    /// Messages of the fill (acknowledged) to drain.
    pub messages: u64,
    /// Messages of the fill received.
    pub consumed: u64,
    /// Seconds from starting the consumers to the last message received.
    pub seconds: f64,
    /// Drain rate: messages received per second.
    pub msgs_per_sec: f64,
    /// Payload MB (10^6 bytes) received per second.
    pub mb_per_sec: f64,
    /// Pull responses that carried messages.
    pub pulls: u64,
    /// Messages per pull response that carried any.
    pub msgs_per_pull: f64,
    /// Broker process CPU time per received message, ns (where measurable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_cpu_ns_per_msg: Option<f64>,
    /// This process's CPU time (the consumers) per received message, ns.
    pub client_cpu_ns_per_msg: f64,
    /// Every message of the fill was received before the drain timeout.
    pub drained: bool,
    /// Failed pulls.
    pub errors: u64,
    /// The first failure.
    pub first_error: Option<String>,
}

impl DrainFigures {
    /// Drain figures of a drain run's consume measurement (`None` for any
    /// other run); `body_bytes` is the size of one message body.
    fn of(c: &ConsumeMeasurement, expect: u64, body_bytes: f64) -> Option<Self> {
        let secs = c.drain_run_seconds?;
        let per_msg = |d: Duration| {
            if c.consumed > 0 {
                d.as_nanos() as f64 / c.consumed as f64
            } else {
                0.0
            }
        };
        let rate = if secs > 0.0 {
            c.consumed as f64 / secs
        } else {
            0.0
        };
        Some(DrainFigures {
            consumers: c.consumers,
            messages: expect,
            consumed: c.consumed,
            seconds: secs,
            msgs_per_sec: rate,
            mb_per_sec: rate * body_bytes / 1e6,
            pulls: c.pulls_found,
            msgs_per_pull: if c.pulls_found > 0 {
                c.consumed as f64 / c.pulls_found as f64
            } else {
                0.0
            },
            broker_cpu_ns_per_msg: c.drain_broker_cpu.map(per_msg),
            client_cpu_ns_per_msg: c.drain_client_cpu.map_or(0.0, per_msg),
            drained: c.drained,
            errors: c.errors,
            first_error: c.first_error.clone(),
        })
    }
}

/// The offered load of an open-loop measurement and how well the client kept
/// to it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct OpenLoopFigures {
    /// Messages per second offered (`--rate`).
    pub rate: f64,
    /// `constant` or `poisson`.
    pub arrivals: Arrivals,
    /// Requests sent (a request carries `--batch` messages).
    pub sends: u64,
    /// Requests that left the client more than `late_threshold_us` after
    /// their intended time.
    pub late_sends: u64,
    /// The threshold of `late_sends`, µs.
    pub late_threshold_us: f64,
    /// How late the requests left the client (now minus intended time, when
    /// the request is queued on its connection), µs.
    pub lateness_us: LatencySummary,
    /// Requests due within the measured time that never left (the window was
    /// still full at the end): a target that fell far behind.
    pub unsent: u64,
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
            broker_cpu_ns_per_msg: m
                .broker_cpu
                .filter(|_| r.messages > 0)
                .map(|d| d.as_nanos() as f64 / r.messages as f64),
            broker_memory: m.broker_memory,
            drain: m.consume.as_ref().and_then(|c| {
                let body = if r.messages > 0 {
                    r.bytes as f64 / r.messages as f64
                } else {
                    0.0
                };
                DrainFigures::of(c, m.consumable, body)
            }),
            consume: m
                .consume
                .as_ref()
                .filter(|c| c.drain_run_seconds.is_none())
                .map(|c| ConsumeFigures {
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
            loopback: Vec::new(),
            open_loop: m.open_loop.as_ref().map(|o| OpenLoopFigures {
                rate: o.rate,
                arrivals: o.arrivals,
                sends: o.lateness.sends,
                late_sends: o.lateness.late_sends,
                late_threshold_us: crate::target::open_loop::LATE_NS as f64 / 1000.0,
                lateness_us: LatencySummary::from_ns(&o.lateness.lateness_ns),
                unsent: o.lateness.unsent,
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
    if workload.drain.is_some() {
        return fill_and_drain(rt, addr, workload, warmup, stop, templates);
    }
    let consumers = if workload.consumers > 0 {
        Some(rt.block_on(Consumers::start(addr, workload, workload.consumers))?)
    } else {
        None
    };
    // Found before anything is timed: the search scans /proc.
    let broker_pid = broker_pid(addr);
    let measured = (|| {
        if !warmup.is_zero() {
            let mut w = workload.clone();
            w.max_duration = Some(warmup);
            rt.block_on(drive(addr, &w, Arc::clone(&templates), Arc::clone(stop)))?;
        }
        let cpu0 = process_cpu_time();
        let broker0 = broker_pid.and_then(CpuMeter::start);
        if let Some(c) = &consumers {
            c.measure_from_now();
        }
        let mut m = rt.block_on(drive(addr, workload, templates, Arc::clone(stop)))?;
        // The end of the send phase: with timer messages, every one sent is
        // still pending (unless its delay already passed).
        m.broker_memory = broker_pid.and_then(process_memory);
        Ok((m, cpu0, broker0))
    })();
    let (mut m, cpu0, broker0) = match measured {
        Ok(x) => x,
        Err(e) => {
            if let Some(c) = consumers {
                c.abort();
            }
            return Err(e);
        }
    };
    if let Some(c) = consumers {
        m.consume = Some(rt.block_on(c.finish(m.consumable))?);
    }
    m.broker_cpu = broker0.and_then(|b| b.used());
    Ok((m, process_cpu_time().saturating_sub(cpu0)))
}

/// The drain workload (`workload.drain`): warm up, note each queue's max
/// offset, fill the topic (the measurement of the producers), then start the
/// consumers at the noted offsets and time how fast they receive every
/// acknowledged message of the fill, with the broker's and this process's
/// CPU over the drain.
fn fill_and_drain(
    rt: &tokio::runtime::Runtime,
    addr: &str,
    workload: &Workload,
    warmup: Duration,
    stop: &Arc<AtomicBool>,
    templates: Arc<SendTemplates>,
) -> Result<(BrokerMeasurement, Duration)> {
    if !warmup.is_zero() {
        let mut w = workload.clone();
        w.max_duration = Some(warmup);
        rt.block_on(drive(addr, &w, Arc::clone(&templates), Arc::clone(stop)))?;
    }
    let from = rt.block_on(queue_max_offsets(addr, workload))?;
    // Found before anything is timed: the search scans /proc.
    let broker_pid = broker_pid(addr);
    // The fill's messages are stamped from here on; older ones (the warm-up,
    // earlier runs) are not counted even where a queue holds them.
    let fill_from_ns = mono_ns();
    let cpu0 = process_cpu_time();
    let broker0 = broker_pid.and_then(CpuMeter::start);
    let mut m = rt.block_on(drive(addr, workload, templates, Arc::clone(stop)))?;
    m.broker_cpu = broker0.and_then(|b| b.used());
    m.broker_memory = broker_pid.and_then(process_memory);
    let fill_cpu = process_cpu_time().saturating_sub(cpu0);
    let drain_cpu0 = process_cpu_time();
    let drain_broker0 = broker_pid.and_then(CpuMeter::start);
    let started_ns = mono_ns();
    let consumers = rt.block_on(Consumers::start_from(
        addr,
        workload,
        workload.consumers,
        &from,
        fill_from_ns,
    ))?;
    let mut c = rt.block_on(consumers.drain(m.consumable, DRAIN_WORKLOAD_TIMEOUT, started_ns))?;
    c.drain_broker_cpu = drain_broker0.and_then(|b| b.used());
    c.drain_client_cpu = Some(process_cpu_time().saturating_sub(drain_cpu0));
    m.consume = Some(c);
    Ok((m, fill_cpu))
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
    if args.load.rate.is_none() && args.load.arrivals != Arrivals::Constant {
        return Err(BenchError::new(
            "--arrivals spaces an open loop's sends: give --rate too",
        ));
    }
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
        let b = rt.block_on(broker_from_namesrv(n, workload.tls_client()?))?;
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
        if !workload.timer_delays.is_empty() {
            return Err(BenchError::new(
                "--transactional sends plain and half messages: leave --timer-delays out",
            ));
        }
        if workload.credentials.is_some() {
            return Err(BenchError::new(
                "--transactional does not sign its requests yet: leave --access-key out",
            ));
        }
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
    let mut f = LoadFigures::new(&m, cpu);
    if f.consume.is_some() {
        f.loopback = loopback_floor(workload.open_loop.map(|o| o.rate))?;
    }
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

/// Round trips of each loopback measurement of [`loopback_floor`].
pub const LOOPBACK_FLOOR_ROUND_TRIPS: u64 = 5_000;

/// The loopback round trip of this machine, measured right after a
/// measurement with consumers: back to back, and paced at `rate` when the
/// measurement was an open loop (the client then wakes from sleep for every
/// round trip, as the open loop's producer and the broker's parked pulls
/// do). A send -> consume latency below these is not possible here; each
/// send -> consume crosses loopback at least twice (send, pull response).
///
/// # Errors
///
/// When the loopback socket cannot be set up.
pub fn loopback_floor(rate: Option<f64>) -> Result<Vec<crate::loopback::LoopbackRtt>> {
    // A message's bytes one way (1 KiB body plus headers), echoed back.
    const BYTES: usize = 1200;
    let cap = Duration::from_secs(3);
    let mut v = vec![crate::loopback::measure(
        LOOPBACK_FLOOR_ROUND_TRIPS,
        BYTES,
        cap,
    )?];
    if let Some(rate) = rate {
        v.push(crate::loopback::measure_paced(
            rate,
            LOOPBACK_FLOOR_ROUND_TRIPS,
            BYTES,
            cap,
        )?);
    }
    Ok(v)
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        load: LoadArgs,
    }

    #[test]
    fn rate_flags_make_an_open_loop_and_none_keeps_the_closed_loop() {
        let closed = Cli::try_parse_from(["broker"]).unwrap().load;
        assert_eq!(closed, LoadArgs::default());
        assert_eq!(closed.workload().unwrap().open_loop, None);
        let open = Cli::try_parse_from(["broker", "--rate", "20000", "--arrivals", "poisson"])
            .unwrap()
            .load;
        assert_eq!(
            open.workload().unwrap().open_loop,
            Some(OpenLoop {
                rate: 20_000.0,
                arrivals: Arrivals::Poisson
            })
        );
        // Accepted (a sweep may give `rate` by --param); `broker` refuses it
        // without --rate.
        let no_rate = Cli::try_parse_from(["broker", "--arrivals", "poisson"])
            .unwrap()
            .load;
        let args = BrokerArgs {
            broker: None,
            namesrv: None,
            null: true,
            load: no_rate,
            json: JsonFlag::default(),
            transactional: false,
        };
        assert!(run_broker(&args).unwrap_err().message().contains("--rate"));
        for bad in ["--rate=0", "--rate=-5", "--rate=inf"] {
            let l = Cli::try_parse_from(["broker", bad]).unwrap().load;
            assert!(
                l.workload().unwrap_err().message().contains("--rate"),
                "{bad}"
            );
        }
    }

    #[test]
    fn timer_delays_flag_reaches_the_workload_and_bad_lists_are_clap_errors() {
        let plain = Cli::try_parse_from(["broker"]).unwrap().load;
        assert!(plain.timer_delays.is_empty());
        assert!(plain.workload().unwrap().timer_delays.is_empty());
        let l = Cli::try_parse_from(["broker", "--timer-delays", "10s,90s,10m,1h"])
            .unwrap()
            .load;
        assert_eq!(
            l.workload().unwrap().timer_delays.ms(),
            &[10_000, 90_000, 600_000, 3_600_000]
        );
        let l = Cli::try_parse_from(["broker", "--timer-delays=none"])
            .unwrap()
            .load;
        assert_eq!(l, LoadArgs::default());
        for (bad, why) in [
            ("10", "no unit"),
            ("10s,,1h", "empty entry"),
            ("3x", "unknown unit"),
            ("0ms", "above 0"),
        ] {
            let e = Cli::try_parse_from(["broker", "--timer-delays", bad])
                .err()
                .unwrap_or_else(|| panic!("{bad} accepted"));
            assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation, "{bad}");
            let msg = e.to_string();
            assert!(
                msg.contains("--timer-delays") && msg.contains(why),
                "{bad}: {msg}"
            );
        }
        // Batches and the drain are refused with timer messages.
        let l = Cli::try_parse_from(["broker", "--timer-delays", "10s", "--batch", "8"])
            .unwrap()
            .load;
        assert!(l.workload().unwrap_err().message().contains("--batch"));
        let l = Cli::try_parse_from(["broker", "--timer-delays", "10s", "--drain", "1000"])
            .unwrap()
            .load;
        assert!(l.workload().unwrap_err().message().contains("--drain"));
    }

    #[test]
    fn timer_runs_and_broker_memory_reach_the_text_and_the_json() {
        let mut w = Workload::new(10);
        w.timer_delays = "10s,90s,10m,1h".parse().unwrap();
        let hist = crate::workload::new_latency_histogram().unwrap();
        let mut run = crate::workload::RunMeasurement::empty(&w, Duration::from_secs(1), hist);
        run.messages = 1000;
        let m = BrokerMeasurement {
            run,
            acks_per_bucket: Vec::new(),
            consumable: 0,
            consume: None,
            open_loop: None,
            broker_cpu: None,
            broker_memory: Some(ProcMemory {
                pid: 42,
                vm_rss_kib: 2048,
                rss_anon_kib: 1536,
                vm_hwm_kib: None,
            }),
        };
        let f = LoadFigures::new(&m, Duration::ZERO);
        let text = report::text("broker x", &w, &f, false);
        assert!(
            text.contains(
                "timer messages (TIMER_DELAY_MS 10s,90s,10m,1h round-robin, held by the broker until due)"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "broker memory at the end of the sends: VmRSS 2.0 MiB  RssAnon 1.5 MiB (pid 42)"
            ),
            "{text}"
        );
        assert!(
            text.contains("timer messages pending then: up to 1000"),
            "{text}"
        );
        let mut out = Vec::new();
        report::json_line(&mut out, "x", "a", &w, ("figures", &f), Instant::now()).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v["workload"]["timer_delays_ms"],
            serde_json::json!([10_000, 90_000, 600_000, 3_600_000])
        );
        assert_eq!(v["figures"]["broker_memory"]["rss_anon_kib"], 1536);
        assert_eq!(v["figures"]["broker_memory"]["vm_rss_kib"], 2048);
        // Consumers with timer messages: the report says they see them only when due.
        let mut c = f.clone();
        c.consume = Some(ConsumeFigures {
            consumers: 1,
            consumed: 7,
            msgs_per_sec: 7.0,
            latency_us: f.latency_us,
            errors: 0,
            first_error: None,
            drained: true,
            drain_seconds: 0.0,
        });
        let text = report::text("broker x", &w, &c, false);
        assert!(
            text.contains("7 msgs received (timer messages: consumers see them only when due")
                && text.contains("shortest delay 10s")
                && !text.contains("all acknowledged"),
            "{text}"
        );
        // Plain messages: no timer words, and no memory line without a figure.
        let plain = Workload::new(10);
        let f = LoadFigures {
            broker_memory: None,
            ..f
        };
        let text = report::text("broker x", &plain, &f, false);
        assert!(!text.contains("timer") && !text.contains("VmRSS"), "{text}");
        assert!(serde_json::to_value(&f)
            .unwrap()
            .get("broker_memory")
            .is_none());
    }

    #[test]
    fn open_loop_figures_reach_the_json_and_the_text() {
        let mut w = Workload::new(10);
        w.open_loop = Some(OpenLoop {
            rate: 1000.0,
            arrivals: Arrivals::Constant,
        });
        let hist = crate::workload::new_latency_histogram().unwrap();
        let mut lateness = crate::target::open_loop::Lateness::new(hist.clone());
        lateness.record(10_000);
        lateness.record(3_000_000);
        lateness.unsent = 4;
        let mut run = crate::workload::RunMeasurement::empty(&w, Duration::from_secs(1), hist);
        run.messages = 2;
        let m = BrokerMeasurement {
            run,
            acks_per_bucket: Vec::new(),
            consumable: 2,
            consume: None,
            open_loop: Some(crate::target::open_loop::OpenLoopMeasurement {
                rate: 1000.0,
                arrivals: Arrivals::Constant,
                lateness,
            }),
            broker_cpu: None,
            broker_memory: None,
        };
        let f = LoadFigures::new(&m, Duration::ZERO);
        let v = serde_json::to_value(&f).unwrap();
        let o = &v["open_loop"];
        assert_eq!(o["rate"], 1000.0);
        assert_eq!(o["arrivals"], "constant");
        assert_eq!(
            (o["sends"].as_u64(), o["late_sends"].as_u64()),
            (Some(2), Some(1))
        );
        assert_eq!(o["unsent"], 4);
        assert_eq!(o["late_threshold_us"], 1000.0);
        assert!(o["lateness_us"]["max"].as_f64().unwrap() >= 2990.0);
        let mut with_floor = f.clone();
        with_floor.loopback = loopback_floor(Some(2000.0)).unwrap();
        assert_eq!(with_floor.loopback.len(), 2);
        assert_eq!(with_floor.loopback[1].paced_rate, Some(2000.0));
        let text = report::text("x", &w, &with_floor, false);
        assert!(
            text.contains("loopback TCP round trip (1200 B each way, back to back): p50"),
            "{text}"
        );
        assert!(
            text.contains("(1200 B each way, paced at 2000/s from intended times)"),
            "{text}"
        );
        assert!(text.contains("consumers: none"), "{text}");
        let v = serde_json::to_value(&with_floor).unwrap();
        assert_eq!(v["loopback"][1]["paced_rate"], 2000.0);
        let text = report::text("null", &w, &f, true);
        assert!(!text.contains("loopback"), "{text}");
        assert!(text.contains("1000 msgs/s offered (constant)"), "{text}");
        assert!(text.contains("2 sends, 1 left > 1000 µs late"), "{text}");
        assert!(
            text.contains("4 sends due within the run never left"),
            "{text}"
        );
        let md = open_loop_section([("point 0 pass 1".to_string(), &f)]).unwrap();
        assert!(md.contains("| point 0 pass 1 | 1000 | constant |"), "{md}");
        assert!(!md.contains("\n "), "no line starts indented: {md}");
        // A closed-loop measurement adds none of it.
        let closed = LoadFigures {
            open_loop: None,
            ..f
        };
        assert!(serde_json::to_value(&closed)
            .unwrap()
            .get("open_loop")
            .is_none());
        assert!(open_loop_section([("x".to_string(), &closed)]).is_none());
    }
}
