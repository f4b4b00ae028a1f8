//! One workload, many targets: the [`Workload`] description, the [`Target`]
//! trait every system under test implements, and [`run`], which drives a
//! target with producer threads and measures every put.
//!
//! The engine in-process is one target ([`crate::target::engine`]); a broker
//! reached over RocketMQ's protocol will be another, driven by the same code.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::error::{BenchError, Result};
use crate::thread_usage::{ProcessThreads, ThreadUsage};

/// Highest latency the histograms can hold, in nanoseconds (one minute).
/// Larger values are clamped to it and still counted.
pub const MAX_LATENCY_NS: u64 = 60_000_000_000;

/// Puts that fail with an error before the run stops early: a store that
/// rejects everything (fenced, disk full) should not spin through millions of
/// puts.
pub const MAX_PUT_ERRORS: u64 = 1000;

/// Largest `--inflight`: the broker client keys requests by a 16-bit slot.
pub const MAX_INFLIGHT: usize = 4096;

/// Largest `--batch` (RocketMQ's batch must also fit the 4 MiB message limit).
pub const MAX_BATCH: usize = 1024;

/// How the target makes puts durable (`flushDiskType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlushMode {
    /// `ASYNC_FLUSH`: a put returns once its bytes are in the page cache.
    Async,
    /// `SYNC_FLUSH`: a put returns once its bytes are durable.
    Sync,
}

impl FlushMode {
    /// The short spelling used on the command line and in JSON: `async` or `sync`.
    pub fn as_str(self) -> &'static str {
        match self {
            FlushMode::Async => "async",
            FlushMode::Sync => "sync",
        }
    }

    /// RocketMQ's name for the setting: `ASYNC_FLUSH` or `SYNC_FLUSH`.
    pub fn rocketmq_name(self) -> &'static str {
        match self {
            FlushMode::Async => "ASYNC_FLUSH",
            FlushMode::Sync => "SYNC_FLUSH",
        }
    }
}

impl std::str::FromStr for FlushMode {
    type Err = BenchError;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "async" | "async_flush" => Ok(FlushMode::Async),
            "sync" | "sync_flush" => Ok(FlushMode::Sync),
            other => Err(BenchError::new(format!(
                "bad flush mode `{other}` (expected `async` or `sync`)"
            ))),
        }
    }
}

/// How the intended send times of an open-loop workload are spaced.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Arrivals {
    /// Evenly spaced: one send every `producers x batch / rate` seconds per producer.
    #[default]
    Constant,
    /// A Poisson process: exponential gaps with that mean.
    Poisson,
}

impl Arrivals {
    /// The spelling of the command line and the JSON: `constant` or `poisson`.
    pub fn as_str(self) -> &'static str {
        match self {
            Arrivals::Constant => "constant",
            Arrivals::Poisson => "poisson",
        }
    }
}

/// The offered load of an open-loop workload: sends leave on a schedule, not
/// when acknowledgements come back, and latency counts from each send's
/// intended time (see [`crate::target::open_loop`]).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OpenLoop {
    /// Messages per second offered, all producers together.
    pub rate: f64,
    /// How the send times are spaced.
    pub arrivals: Arrivals,
}

/// A property filter on the consumers' pull path (`--filter`): the
/// producers alternate, per queue, between a message with tag `even` and
/// user property `k=even` and one with tag `odd` and `k=odd`, and the
/// consumers subscribe to the even half only.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Filter {
    /// No tags or properties; the consumers subscribe to `*` (every message).
    #[default]
    None,
    /// Expression type TAG, subscription `even`.
    Tag,
    /// Expression type SQL92, subscription `k = 'even'` (the broker needs
    /// `enablePropertyFilter=true`).
    Sql92,
}

impl Filter {
    /// The spelling of the command line and the JSON: `none`, `tag` or `sql92`.
    pub fn as_str(self) -> &'static str {
        match self {
            Filter::None => "none",
            Filter::Tag => "tag",
            Filter::Sql92 => "sql92",
        }
    }

    /// True for [`Filter::None`].
    pub fn is_none(&self) -> bool {
        *self == Filter::None
    }

    /// The pull's `expressionType`.
    pub fn expression_type(self) -> &'static str {
        match self {
            Filter::None | Filter::Tag => "TAG",
            Filter::Sql92 => "SQL92",
        }
    }

    /// The pull's `subscription`: the even half of the messages, or all.
    pub fn subscription(self) -> &'static str {
        match self {
            Filter::None => "*",
            Filter::Tag => "even",
            Filter::Sql92 => "k = 'even'",
        }
    }
}

impl std::str::FromStr for Filter {
    type Err = BenchError;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(Filter::None),
            "tag" => Ok(Filter::Tag),
            "sql92" => Ok(Filter::Sql92),
            other => Err(BenchError::new(format!(
                "bad filter `{other}` (expected `none`, `tag` or `sql92`)"
            ))),
        }
    }
}

/// Longest timer delay `--timer-delays` accepts: 30 days (RocketMQ's own
/// cap, `timerMaxDelaySec`, is 3 days by default; the broker judges).
pub const MAX_TIMER_DELAY_MS: u64 = 30 * 24 * 3600 * 1000;

/// The message property of a RocketMQ 5 timer message: deliver this many
/// milliseconds after the broker stores it.
pub const TIMER_DELAY_MS_PROPERTY: &str = "TIMER_DELAY_MS";

/// Timer delays of `--timer-delays` (ms): every sent message carries the
/// property `TIMER_DELAY_MS` with one of them, round-robin over the list,
/// so the broker holds it until due. Empty: plain messages (the default).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct TimerDelays(pub Vec<u64>);

impl TimerDelays {
    /// No delays: plain messages.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The delays, ms.
    pub fn ms(&self) -> &[u64] {
        &self.0
    }

    /// The shortest delay, ms (`None` when off).
    pub fn min_ms(&self) -> Option<u64> {
        self.0.iter().copied().min()
    }
}

/// One delay in the shortest unit that spells it exactly: `90s`, `10m`, `1h`, `250ms`.
pub fn format_delay_ms(ms: u64) -> String {
    const H: u64 = 3_600_000;
    const M: u64 = 60_000;
    if ms > 0 && ms % H == 0 {
        format!("{}h", ms / H)
    } else if ms > 0 && ms % M == 0 {
        format!("{}m", ms / M)
    } else if ms > 0 && ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

impl std::fmt::Display for TimerDelays {
    /// `10s,90s,10m,1h`, or `none`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        let parts: Vec<String> = self.0.iter().map(|&d| format_delay_ms(d)).collect();
        f.write_str(&parts.join(","))
    }
}

impl std::str::FromStr for TimerDelays {
    type Err = BenchError;

    /// A list of delays separated by `,` (or `/`, which a `--param` value
    /// can hold), each a positive whole number with a unit: `ms`, `s`, `m`
    /// or `h` (`10s,90s,10m,1h`); `none` or `off` for plain messages.
    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("none") || t.eq_ignore_ascii_case("off") {
            return Ok(TimerDelays::default());
        }
        let mut v = Vec::new();
        for part in t.split([',', '/']) {
            let p = part.trim();
            if p.is_empty() {
                return Err(BenchError::new(format!(
                    "bad timer delay list `{s}`: an empty entry (expected e.g. `10s,90s,10m,1h`)"
                )));
            }
            v.push(parse_delay_ms(p).map_err(|why| {
                BenchError::new(format!("bad timer delay `{p}` in `{s}`: {why}"))
            })?);
        }
        Ok(TimerDelays(v))
    }
}

/// One delay: digits then `ms`, `s`, `m` or `h`; above 0 and at most
/// [`MAX_TIMER_DELAY_MS`].
fn parse_delay_ms(p: &str) -> std::result::Result<u64, String> {
    let digits = p.find(|c: char| !c.is_ascii_digit()).unwrap_or(p.len());
    let (num, unit) = p.split_at(digits);
    if num.is_empty() {
        return Err("expected a whole number then a unit: ms, s, m or h".into());
    }
    let per: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "ms" => 1,
        "s" => 1000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "" => return Err("no unit (give ms, s, m or h, e.g. `90s`)".into()),
        other => return Err(format!("unknown unit `{other}` (expected ms, s, m or h)")),
    };
    let ms = num
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(per))
        .ok_or_else(|| "too large".to_string())?;
    if ms == 0 {
        return Err("a timer delay must be above 0".into());
    }
    if ms > MAX_TIMER_DELAY_MS {
        return Err(format!(
            "longer than {} (30 days)",
            format_delay_ms(MAX_TIMER_DELAY_MS)
        ));
    }
    Ok(ms)
}

/// `--timer-delays`' value parser: the list, or clap's error naming why not.
///
/// # Errors
///
/// As [`TimerDelays`]' `FromStr`.
pub fn parse_timer_delays(s: &str) -> std::result::Result<TimerDelays, String> {
    s.parse::<TimerDelays>()
        .map_err(|e| e.message().to_string())
}

/// Highest `--rate` accepted, msgs/s.
pub const MAX_RATE: f64 = 1e8;

/// Messages a pull asks for unless told otherwise (RocketMQ's
/// `pullBatchSize` default).
pub const DEFAULT_PULL_BATCH: u32 = 32;
/// Largest `--pull-batch` (RocketMQ clients cap `pullBatchSize` at 1024).
pub const MAX_PULL_BATCH: u32 = 1024;
/// How long the broker may hold a pull unless told otherwise, ms (RocketMQ's
/// `brokerSuspendMaxTimeMillis` default).
pub const DEFAULT_SUSPEND_MS: u64 = 15_000;
/// Largest `--suspend-ms`.
pub const MAX_SUSPEND_MS: u64 = 60_000;

/// What to put: how many messages, how big, from how many threads, and how
/// the target should store them. Target-independent.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Workload {
    /// Messages to put in total (split evenly over the producers).
    pub messages: u64,
    /// Body size of every message, in bytes.
    pub size_bytes: usize,
    /// Producer threads putting concurrently.
    pub producers: usize,
    /// Flush mode the target is opened with.
    pub flush: FlushMode,
    /// Commitlog file size the target is opened with, in bytes.
    pub file_size_bytes: u64,
    /// Topic every message goes to.
    pub topic: String,
    /// Queues of the topic; each producer cycles over them.
    pub queues: u32,
    /// Stop producing after this long and report what was measured.
    #[serde(serialize_with = "serialize_opt_duration")]
    pub max_duration: Option<Duration>,
    /// Store settings (`--set key=value`, RocketMQ key names) applied on top of the
    /// target's defaults.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub store_settings: Vec<(String, String)>,
    /// Requests each producer keeps in flight (1: synchronous sends). Only
    /// targets reached over the network pipeline; the in-process engine takes 1.
    pub inflight: usize,
    /// Messages per request (1: SEND_MESSAGE_V2; more: SEND_BATCH_MESSAGE).
    pub batch: usize,
    /// Pull consumers measuring send -> consume latency (0: none). Only
    /// targets reached over the network consume; bodies then carry the send
    /// time in their first 8 bytes.
    #[serde(default)]
    pub consumers: usize,
    /// Open loop: a fixed offered rate instead of sending as fast as
    /// acknowledgements allow (`None`: closed loop). Only the broker target
    /// (and the null broker) paces its sends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_loop: Option<OpenLoop>,
    /// Messages each pull asks for (PULL_MESSAGE `maxMsgNums`).
    pub pull_batch: u32,
    /// How long the broker may hold a pull that finds nothing (long polling,
    /// PULL_MESSAGE `suspendTimeoutMillis`), ms.
    pub suspend_ms: u64,
    /// The drain workload: the producers fill the topic with this many
    /// messages, then the consumers (at least one) empty it and the drain
    /// rate is measured. `None`: consumers, if any, read while the producers
    /// send.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain: Option<u64>,
    /// ACL credentials every request to a broker is signed with (`None`:
    /// unsigned). The secret is never serialized; the report says only
    /// whether requests were signed.
    #[serde(rename = "signed", serialize_with = "serialize_signed")]
    pub credentials: Option<ferromq_server::acl::Credentials>,
    /// TLS on every connection to the broker and name server (`--tls`;
    /// `None`: plain). The report says only whether TLS was on.
    #[serde(
        default,
        serialize_with = "serialize_tls",
        skip_serializing_if = "Option::is_none"
    )]
    pub tls: Option<ferromq_server::remoting::tls::TlsClientSettings>,
    /// A tag or SQL92 filter the consumers subscribe with, matching half of
    /// the messages (`--filter`; [`Filter::None`]: every message, untagged).
    #[serde(default, skip_serializing_if = "Filter::is_none")]
    pub filter: Filter,
    /// Timer messages (`--timer-delays`): every message carries
    /// `TIMER_DELAY_MS`, one of these delays round-robin, and the broker
    /// holds it until due. Empty: plain messages.
    #[serde(
        default,
        rename = "timer_delays_ms",
        skip_serializing_if = "TimerDelays::is_empty"
    )]
    pub timer_delays: TimerDelays,
}

fn serialize_tls<S: serde::Serializer>(
    t: &Option<ferromq_server::remoting::tls::TlsClientSettings>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_bool(t.is_some())
}

fn serialize_signed<S: serde::Serializer>(
    c: &Option<ferromq_server::acl::Credentials>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_bool(c.is_some())
}

fn serialize_opt_duration<S: serde::Serializer>(
    d: &Option<Duration>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

impl Workload {
    /// A workload with the harness defaults: 1 KiB bodies, 1 producer,
    /// ASYNC_FLUSH, 1 GiB files, topic `BenchTopic` with 8 queues, no time cap.
    pub fn new(messages: u64) -> Self {
        Workload {
            messages,
            size_bytes: 1024,
            producers: 1,
            flush: FlushMode::Async,
            file_size_bytes: 1024 * 1024 * 1024,
            topic: "BenchTopic".to_string(),
            queues: 8,
            max_duration: None,
            store_settings: Vec::new(),
            inflight: 1,
            batch: 1,
            consumers: 0,
            open_loop: None,
            pull_batch: DEFAULT_PULL_BATCH,
            suspend_ms: DEFAULT_SUSPEND_MS,
            drain: None,
            credentials: None,
            tls: None,
            filter: Filter::None,
            timer_delays: TimerDelays::default(),
        }
    }

    /// The TLS client of `--tls` (`None`: plain connections).
    ///
    /// # Errors
    ///
    /// When the CA bundle or client certificate cannot be loaded.
    pub fn tls_client(
        &self,
    ) -> crate::error::Result<Option<ferromq_server::remoting::tls::TlsClient>> {
        self.tls
            .as_ref()
            .map(|t| {
                t.build()
                    .map_err(|e| crate::error::BenchError::new(format!("TLS: {e}")))
            })
            .transpose()
    }

    /// Check that the numbers make sense before anything is opened.
    ///
    /// # Errors
    ///
    /// A message naming the bad field and its value.
    pub fn validate(&self) -> Result<()> {
        if self.messages == 0 {
            return Err(BenchError::new("--messages must be at least 1"));
        }
        if self.size_bytes == 0 {
            return Err(BenchError::new("--size must be at least 1 byte"));
        }
        if self.producers == 0 {
            return Err(BenchError::new("--producers must be at least 1"));
        }
        if self.producers as u64 > self.messages {
            return Err(BenchError::new(format!(
                "--producers {} is more than --messages {}",
                self.producers, self.messages
            )));
        }
        if self.inflight == 0 || self.inflight > MAX_INFLIGHT {
            return Err(BenchError::new(format!(
                "--inflight {} must be between 1 and {MAX_INFLIGHT}",
                self.inflight
            )));
        }
        if self.batch == 0 || self.batch > MAX_BATCH {
            return Err(BenchError::new(format!(
                "--batch {} must be between 1 and {MAX_BATCH}",
                self.batch
            )));
        }
        if self.consumers > 0 && self.size_bytes < crate::target::consumer::STAMP_BYTES {
            return Err(BenchError::new(format!(
                "--consumers needs --size of at least {} bytes (the send time rides in the body)",
                crate::target::consumer::STAMP_BYTES
            )));
        }
        if let Some(o) = &self.open_loop {
            if !(o.rate.is_finite() && o.rate > 0.0 && o.rate <= MAX_RATE) {
                return Err(BenchError::new(format!(
                    "--rate {} must be a number above 0 and at most {MAX_RATE}",
                    o.rate
                )));
            }
        }
        if self.queues == 0 {
            return Err(BenchError::new("the topic needs at least one queue"));
        }
        if self.pull_batch == 0 || self.pull_batch > MAX_PULL_BATCH {
            return Err(BenchError::new(format!(
                "--pull-batch {} must be between 1 and {MAX_PULL_BATCH}",
                self.pull_batch
            )));
        }
        if self.suspend_ms == 0 || self.suspend_ms > MAX_SUSPEND_MS {
            return Err(BenchError::new(format!(
                "--suspend-ms {} must be between 1 and {MAX_SUSPEND_MS}",
                self.suspend_ms
            )));
        }
        if let Some(n) = self.drain {
            if n < self.producers as u64 {
                return Err(BenchError::new(format!(
                    "--drain {n} must be at least --producers {}",
                    self.producers
                )));
            }
            if self.consumers == 0 {
                return Err(BenchError::new("--drain needs at least one consumer"));
            }
            if self.open_loop.is_some() {
                return Err(BenchError::new(
                    "--drain fills the topic as fast as it can: leave --rate out",
                ));
            }
        }
        if !self.filter.is_none() && self.consumers == 0 {
            return Err(BenchError::new(format!(
                "--filter {} filters the consumers' pulls: it needs --consumers or --drain",
                self.filter.as_str()
            )));
        }
        if !self.timer_delays.is_empty() {
            if self.batch > 1 {
                return Err(BenchError::new(
                    "--timer-delays: RocketMQ does not deliver batch messages on a timer; leave --batch at 1",
                ));
            }
            if self.drain.is_some() {
                return Err(BenchError::new(
                    "--timer-delays: the consumers of --drain would wait for messages that are not due yet; measure the sends (leave --drain out)",
                ));
            }
        }
        if self.credentials.is_some() && self.consumers > 0 {
            return Err(BenchError::new(
                "--access-key signs sends whose bodies never change: not with --consumers or --drain (their bodies carry the send time) yet",
            ));
        }
        if (self.size_bytes as u64) * (self.producers as u64) > self.file_size_bytes {
            return Err(BenchError::new(format!(
                "--file-size {} cannot hold one batch of {} messages of {} bytes",
                self.file_size_bytes, self.producers, self.size_bytes
            )));
        }
        Ok(())
    }

    /// Messages producer `index` puts: an even split, the remainder going to
    /// the first producers.
    pub fn messages_for(&self, index: usize) -> u64 {
        let p = self.producers as u64;
        self.messages / p + u64::from((index as u64) < self.messages % p)
    }

    /// Payload bytes of the whole workload.
    pub fn total_bytes(&self) -> u64 {
        self.messages * self.size_bytes as u64
    }

    /// A deterministic, non-zero body of `size_bytes` bytes.
    pub fn body(&self) -> Vec<u8> {
        (0..self.size_bytes)
            .map(|i| b'a' + (i % 26) as u8)
            .collect()
    }
}

/// One put, as the workload asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PutRequest {
    /// Index of the producer thread, `0..producers`.
    pub producer: usize,
    /// Sequence number of the put within its producer.
    pub seq: u64,
    /// Queue of the topic this put goes to.
    pub queue_id: u32,
}

/// What a target says about one put that did not fail outright.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutOutcome {
    /// The store's status in RocketMQ's spelling (`PUT_OK`, `FLUSH_DISK_TIMEOUT`, ...).
    pub status: Cow<'static, str>,
    /// Bytes the target stored for the message (record header included), 0 if unknown.
    pub stored_bytes: u64,
}

/// A system under test: opened once, shared by all producer threads, shut
/// down at the end.
pub trait Target: Send + Sync + Sized {
    /// Where and how to reach the target (a store directory, a name server address, ...).
    type Config;

    /// Open (or connect to) the target for `workload`. Not timed.
    ///
    /// # Errors
    ///
    /// When the target cannot be opened; the message says why.
    fn open(config: &Self::Config, workload: &Workload) -> Result<Self>;

    /// Put one message as `request` says. Called concurrently from every
    /// producer thread; each call is timed.
    ///
    /// # Errors
    ///
    /// When the put failed outright. A put the target accepted with a
    /// non-OK status (a flush timeout, say) is an `Ok` with that status.
    fn put(&self, request: PutRequest) -> Result<PutOutcome>;

    /// Flush and stop the target. Not timed.
    ///
    /// # Errors
    ///
    /// When the target reports a failure while stopping.
    fn shutdown(&self) -> Result<()>;

    /// Target-specific figures after the puts (untimed), for the report: the
    /// engine says which write path and commit backend served the run and
    /// what the backend did. `None` when the target has nothing to add.
    fn details(&self) -> Option<serde_json::Value> {
        None
    }
}

/// Name of producer thread `i`: this prefix and `i`.
const PRODUCER_THREAD_PREFIX: &str = "bench-producer-";

/// What [`run`] measured.
#[derive(Debug, Clone)]
pub struct RunMeasurement {
    /// Puts that returned (OK or not), errors excluded.
    pub messages: u64,
    /// Messages the workload asked for.
    pub requested_messages: u64,
    /// True when the run stopped at `max_duration` (or on errors) before all
    /// messages were put.
    pub stopped_early: bool,
    /// Payload bytes of the puts that returned.
    pub bytes: u64,
    /// Bytes the target says it stored (headers included); 0 if it does not say.
    pub stored_bytes: u64,
    /// Wall time from the first put to the last, over all producers.
    pub elapsed: Duration,
    /// Latency of every put, in nanoseconds.
    pub latency_ns: Histogram<u64>,
    /// Puts that failed with an error.
    pub put_errors: u64,
    /// The first error, if any.
    pub first_error: Option<String>,
    /// Puts per returned status.
    pub status_counts: BTreeMap<String, u64>,
    /// What the producer threads' time went to, summed over them; `None`
    /// where the kernel's per-thread accounting cannot be read.
    pub producer_usage: Option<ThreadUsage>,
    /// What the target's own threads (everything but the producers and the
    /// thread that ran the workload) used while the producers ran, by thread
    /// name; empty where it cannot be read.
    pub background_usage: BTreeMap<String, ThreadUsage>,
}

impl RunMeasurement {
    /// A measurement of `workload` before any producer's figures are added:
    /// nothing put, `elapsed` and the empty histogram `latency_ns` given, no
    /// thread usage.
    pub fn empty(workload: &Workload, elapsed: Duration, latency_ns: Histogram<u64>) -> Self {
        RunMeasurement {
            messages: 0,
            requested_messages: workload.messages,
            stopped_early: false,
            bytes: 0,
            stored_bytes: 0,
            elapsed,
            latency_ns,
            put_errors: 0,
            first_error: None,
            status_counts: BTreeMap::new(),
            producer_usage: None,
            background_usage: BTreeMap::new(),
        }
    }
}

struct ProducerResult {
    done: u64,
    stored_bytes: u64,
    errors: u64,
    first_error: Option<String>,
    hist: Histogram<u64>,
    statuses: BTreeMap<Cow<'static, str>, u64>,
    usage: Option<ThreadUsage>,
}

/// A histogram for latencies in nanoseconds, 1 ns to [`MAX_LATENCY_NS`], 3 significant digits.
///
/// # Errors
///
/// Never in practice; the bounds are constant and valid.
pub fn new_latency_histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3)
        .map_err(|e| BenchError::new(format!("cannot create latency histogram: {e}")))
}

/// Drive `target` with `workload`: `producers` threads, each putting its
/// share of the messages and cycling over the topic's queues, every put timed.
///
/// The target is not shut down here; the caller does it, untimed.
///
/// # Errors
///
/// When the workload is invalid or a producer thread panicked. Failed puts
/// are counted in [`RunMeasurement::put_errors`], not returned as errors.
pub fn run<T: Target>(target: &T, workload: &Workload) -> Result<RunMeasurement> {
    workload.validate()?;
    let stop = AtomicBool::new(false);
    let gate = StartGate::default();
    let template = new_latency_histogram()?;
    // Put latency is timed with the CPU's time-stamp counter where it is
    // usable (quanta calibrates it against the OS clock, here, before the
    // timed section, and falls back to the OS clock where the counter is not
    // usable): cheaper than two clock_gettime calls per put on a VM, which
    // would count against the engine in `ratio_to_baseline` (see
    // docs/perf-notes.md#put-latency-timed-with-the-tsc).
    let clock = quanta::Clock::new();

    let (results, elapsed, background_usage) = std::thread::scope(|scope| {
        let mut handles = Vec::with_capacity(workload.producers);
        for index in 0..workload.producers {
            let (stop, gate, template, clock) = (&stop, &gate, &template, &clock);
            let spawned = std::thread::Builder::new()
                .name(format!("{PRODUCER_THREAD_PREFIX}{index}"))
                .spawn_scoped(scope, move || {
                    produce(
                        target,
                        workload,
                        index,
                        stop,
                        gate,
                        template.clone(),
                        clock.clone(),
                    )
                });
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    // Let the threads already started leave at once.
                    stop.store(true, Ordering::Relaxed);
                    gate.open();
                    return Err(BenchError::io("cannot spawn a producer thread", e));
                }
            }
        }
        let threads_before = ProcessThreads::current();
        gate.open();
        let start = Instant::now();
        let results: Vec<_> = handles.into_iter().map(|h| h.join()).collect();
        let elapsed = start.elapsed();
        let me = std::fs::read_to_string("/proc/thread-self/comm").unwrap_or_default();
        let background = ProcessThreads::current().since(&threads_before, |name| {
            !name.starts_with(PRODUCER_THREAD_PREFIX) && name != me.trim_end()
        });
        Ok((results, elapsed, background))
    })?;

    let mut m = RunMeasurement::empty(workload, elapsed, template);
    m.producer_usage = Some(ThreadUsage::default());
    m.background_usage = background_usage;
    for r in results {
        let r = r.map_err(|_| BenchError::new("a producer thread panicked"))?;
        m.messages += r.done;
        m.stored_bytes += r.stored_bytes;
        m.put_errors += r.errors;
        if m.first_error.is_none() {
            m.first_error = r.first_error;
        }
        m.latency_ns
            .add(&r.hist)
            .map_err(|e| BenchError::new(format!("cannot merge latency histograms: {e}")))?;
        m.producer_usage = m.producer_usage.zip(r.usage).map(|(a, b)| a + b);
        for (status, n) in r.statuses {
            *m.status_counts.entry(status.into_owned()).or_insert(0) += n;
        }
    }
    m.bytes = m.messages * workload.size_bytes as u64;
    m.stopped_early = m.messages + m.put_errors < workload.messages;
    Ok(m)
}

/// Holds the producers until all are spawned, so they start together.
#[derive(Default)]
struct StartGate {
    open: Mutex<bool>,
    cond: Condvar,
}

impl StartGate {
    fn open(&self) {
        // A poisoned lock only means another thread panicked holding it;
        // the flag itself is still meaningful.
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        *open = true;
        self.cond.notify_all();
    }

    fn wait(&self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        while !*open {
            open = self.cond.wait(open).unwrap_or_else(|p| p.into_inner());
        }
    }
}

fn produce<T: Target>(
    target: &T,
    workload: &Workload,
    index: usize,
    stop: &AtomicBool,
    gate: &StartGate,
    mut hist: Histogram<u64>,
    clock: quanta::Clock,
) -> ProducerResult {
    let count = workload.messages_for(index);
    let mut done = 0;
    let mut stored_bytes = 0;
    let mut errors = 0;
    let mut first_error = None;
    let mut statuses = StatusTally::default();
    gate.wait();
    // `--max-seconds`, looked at after every put on the put's own clock reading.
    let cap_ns = workload
        .max_duration
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let usage_before = ThreadUsage::current();
    let started = clock.raw();
    for seq in 0..count {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let request = PutRequest {
            producer: index,
            seq,
            queue_id: ((index as u64 + seq) % u64::from(workload.queues)) as u32,
        };
        let t0 = clock.raw();
        let outcome = target.put(request);
        let t1 = clock.raw();
        hist.saturating_record(clock.delta_as_nanos(t0, t1).min(MAX_LATENCY_NS));
        match outcome {
            Ok(o) => {
                done += 1;
                stored_bytes += o.stored_bytes;
                statuses.add(o.status);
            }
            Err(e) => {
                errors += 1;
                if first_error.is_none() {
                    first_error = Some(e.to_string());
                }
                if errors >= MAX_PUT_ERRORS {
                    stop.store(true, Ordering::Relaxed);
                }
            }
        }
        if cap_ns.is_some_and(|cap| clock.delta_as_nanos(started, t1) >= cap) {
            stop.store(true, Ordering::Relaxed);
        }
    }
    let usage = usage_before
        .zip(ThreadUsage::current())
        .map(|(before, after)| after - before);
    ProducerResult {
        done,
        stored_bytes,
        errors,
        first_error,
        hist,
        statuses: statuses.finish(),
        usage,
    }
}

/// Puts per status, counted by a producer. Consecutive puts nearly always
/// return the same status, a `&'static str`: one pointer comparison per put
/// instead of a map search with string comparisons (bench overhead that
/// would count against the target).
#[derive(Default)]
struct StatusTally {
    counts: BTreeMap<Cow<'static, str>, u64>,
    run: Option<(Cow<'static, str>, u64)>,
}

impl StatusTally {
    fn add(&mut self, status: Cow<'static, str>) {
        if let Some((last, n)) = &mut self.run {
            let same = match (&*last, &status) {
                (Cow::Borrowed(a), Cow::Borrowed(b)) => std::ptr::eq(*a, *b) || a == b,
                (a, b) => a == b,
            };
            if same {
                *n += 1;
                return;
            }
        }
        self.end_run();
        self.run = Some((status, 1));
    }

    fn end_run(&mut self) {
        if let Some((s, n)) = self.run.take() {
            *self.counts.entry(s).or_insert(0) += n;
        }
    }

    fn finish(mut self) -> BTreeMap<Cow<'static, str>, u64> {
        self.end_run();
        self.counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn status_tally_counts_runs_and_changes() {
        let mut t = StatusTally::default();
        for s in ["PUT_OK", "PUT_OK", "FLUSH_DISK_TIMEOUT", "PUT_OK"] {
            t.add(Cow::Borrowed(s));
        }
        t.add(Cow::Owned("PUT_OK".to_string()));
        t.add(Cow::Owned("OTHER".to_string()));
        let counts = t.finish();
        assert_eq!(counts.get("PUT_OK"), Some(&4));
        assert_eq!(counts.get("FLUSH_DISK_TIMEOUT"), Some(&1));
        assert_eq!(counts.get("OTHER"), Some(&1));
        assert_eq!(counts.len(), 3);
    }

    /// A target that stores nothing; counts puts per queue.
    struct CountingTarget {
        puts: AtomicU64,
        per_queue: Vec<AtomicU64>,
        fail_every: u64,
    }

    impl Target for CountingTarget {
        type Config = u64;
        fn open(fail_every: &u64, w: &Workload) -> Result<Self> {
            Ok(CountingTarget {
                puts: AtomicU64::new(0),
                per_queue: (0..w.queues).map(|_| AtomicU64::new(0)).collect(),
                fail_every: *fail_every,
            })
        }
        fn put(&self, r: PutRequest) -> Result<PutOutcome> {
            let n = self.puts.fetch_add(1, Ordering::Relaxed) + 1;
            self.per_queue[r.queue_id as usize].fetch_add(1, Ordering::Relaxed);
            if self.fail_every > 0 && n % self.fail_every == 0 {
                return Err(BenchError::new("injected"));
            }
            Ok(PutOutcome {
                status: Cow::Borrowed("PUT_OK"),
                stored_bytes: 100,
            })
        }
        fn shutdown(&self) -> Result<()> {
            Ok(())
        }
    }

    #[test]
    fn split_is_even_and_complete() {
        let mut w = Workload::new(10);
        w.producers = 3;
        let split: Vec<u64> = (0..3).map(|i| w.messages_for(i)).collect();
        assert_eq!(split, vec![4, 3, 3]);
    }

    #[test]
    fn run_puts_every_message_once_over_all_queues() {
        let mut w = Workload::new(8000);
        w.producers = 4;
        let t = CountingTarget::open(&0, &w).unwrap();
        let m = run(&t, &w).unwrap();
        assert_eq!(m.messages, 8000);
        assert_eq!(m.latency_ns.len(), 8000);
        assert_eq!(m.status_counts.get("PUT_OK"), Some(&8000));
        assert_eq!(m.stored_bytes, 800_000);
        assert_eq!(m.bytes, 8000 * 1024);
        assert!(!m.stopped_early);
        for q in &t.per_queue {
            assert_eq!(q.load(Ordering::Relaxed), 1000);
        }
    }

    #[test]
    fn errors_are_counted_not_returned() {
        let w = Workload::new(100);
        let t = CountingTarget::open(&10, &w).unwrap();
        let m = run(&t, &w).unwrap();
        assert_eq!(m.put_errors, 10);
        assert_eq!(m.messages, 90);
        assert_eq!(m.first_error.as_deref(), Some("injected"));
        assert!(!m.stopped_early);
    }

    #[test]
    fn time_cap_stops_early() {
        struct Slow;
        impl Target for Slow {
            type Config = ();
            fn open(_: &(), _: &Workload) -> Result<Self> {
                Ok(Slow)
            }
            fn put(&self, _: PutRequest) -> Result<PutOutcome> {
                std::thread::sleep(Duration::from_micros(200));
                Ok(PutOutcome {
                    status: Cow::Borrowed("PUT_OK"),
                    stored_bytes: 0,
                })
            }
            fn shutdown(&self) -> Result<()> {
                Ok(())
            }
        }
        let mut w = Workload::new(1_000_000);
        w.producers = 2;
        w.max_duration = Some(Duration::from_millis(100));
        let m = run(&Slow, &w).unwrap();
        assert!(m.stopped_early);
        assert!(m.messages > 0 && m.messages < 1_000_000);
        assert!(m.elapsed < Duration::from_secs(5));
    }

    #[test]
    fn timer_delay_lists_parse_with_units_and_bad_ones_say_why() {
        let d: TimerDelays = "10s,90s,10m,1h".parse().unwrap();
        assert_eq!(d.ms(), &[10_000, 90_000, 600_000, 3_600_000]);
        assert_eq!(d.to_string(), "10s,90s,10m,1h");
        assert_eq!(d.min_ms(), Some(10_000));
        // `/` separates too (a `--param` value), spaces and case are forgiven.
        let d: TimerDelays = " 250ms / 2H/ 30M ,45S".parse().unwrap();
        assert_eq!(d.ms(), &[250, 7_200_000, 1_800_000, 45_000]);
        assert_eq!(d.to_string(), "250ms,2h,30m,45s");
        assert_eq!(
            "1500ms".parse::<TimerDelays>().unwrap().to_string(),
            "1500ms"
        );
        assert_eq!("120s".parse::<TimerDelays>().unwrap().to_string(), "2m");
        for off in ["none", "OFF", " none "] {
            let d: TimerDelays = off.parse().unwrap();
            assert!(d.is_empty() && d.min_ms().is_none(), "{off}");
            assert_eq!(d.to_string(), "none");
        }
        for (bad, why) in [
            ("10", "no unit"),
            ("10s,", "empty entry"),
            ("", "empty entry"),
            ("10s,,1h", "empty entry"),
            ("5d", "unknown unit `d`"),
            ("1.5s", "unknown unit `.5s`"),
            ("s", "whole number"),
            ("-1s", "whole number"),
            ("0s", "above 0"),
            ("31d", "unknown unit"),
            ("721h", "30 days"),
            ("99999999999999999999ms", "too large"),
            ("18446744073709551615h", "too large"),
        ] {
            let e = parse_timer_delays(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        assert_eq!(
            parse_timer_delays("720h").unwrap().ms(),
            &[MAX_TIMER_DELAY_MS]
        );
        // The JSON of the workload names the delays in ms, and leaves them
        // out for plain messages.
        let mut w = Workload::new(10);
        assert!(serde_json::to_value(&w)
            .unwrap()
            .get("timer_delays_ms")
            .is_none());
        w.timer_delays = "10s,1h".parse().unwrap();
        assert_eq!(
            serde_json::to_value(&w).unwrap()["timer_delays_ms"],
            serde_json::json!([10_000, 3_600_000])
        );
    }

    #[test]
    fn timer_delays_refuse_batches_and_the_drain() {
        let mut w = Workload::new(10);
        w.timer_delays = "10s".parse().unwrap();
        w.validate().unwrap();
        w.consumers = 1;
        w.validate().unwrap();
        w.batch = 4;
        assert!(w.validate().unwrap_err().message().contains("--batch"));
        w.batch = 1;
        w.drain = Some(10);
        assert!(w.validate().unwrap_err().message().contains("--drain"));
    }

    #[test]
    fn validation_names_the_flag() {
        let mut w = Workload::new(10);
        w.producers = 0;
        assert!(w.validate().unwrap_err().message().contains("--producers"));
        let mut w = Workload::new(10);
        w.file_size_bytes = 100;
        assert!(w.validate().unwrap_err().message().contains("--file-size"));
        assert!("bogus".parse::<FlushMode>().is_err());
        assert_eq!("SYNC".parse::<FlushMode>().unwrap(), FlushMode::Sync);
    }
}
