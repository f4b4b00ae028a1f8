//! A broker reached over RocketMQ's remoting protocol, driven by the harness's
//! own lean client.
//!
//! The synchronous [`crate::workload::Target`] trait holds one put per
//! producer thread, which cannot express pipelining; the broker target is the
//! sibling async driver [`drive`], which takes the same
//! [`Workload`] and returns the same [`RunMeasurement`]:
//!
//! - every producer is one tokio task owning one TCP connection, and keeps up
//!   to `workload.inflight` requests in flight on it (1 = synchronous sends);
//! - requests are keyed by their `opaque`: the low 16 bits name a slot of the
//!   producer's window (send time kept there), the high bits a sequence number
//!   so a stray or duplicated response is told apart;
//! - every request frame is encoded once at start (one per queue), with
//!   RocketMQ's binary header, so a send is a `memcpy` of the template into
//!   the write buffer and a 4-byte patch of the opaque; responses are read
//!   from the frame bytes (code and opaque, binary or JSON header) without
//!   decoding them into a command. Nothing is allocated per message.
//! - `workload.batch > 1` sends SEND_BATCH_MESSAGE with that many messages per
//!   request; each message of a batch is counted, and its latency is the
//!   batch's send -> ack time.
//! - `workload.open_loop` (`--rate`) paces the sends on a schedule instead
//!   (see [`crate::target::open_loop`]): latency counts from each send's
//!   intended time, and how late the sends left is measured.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferromq_server::remoting::codec::encode;
use ferromq_server::remoting::tls::{ClientStream, TlsClient};
use ferromq_server::remoting::{request, response, RemotingClient, RemotingCommand, SerializeType};
use hdrhistogram::Histogram;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::{BenchError, Result};
use crate::target::consumer::{self, ConsumeMeasurement, STAMP_BYTES};
pub use crate::target::open_loop::OpenLoopMeasurement;
use crate::target::open_loop::{arm, due, Lateness, Pacer};
use crate::workload::{
    new_latency_histogram, OpenLoop, RunMeasurement, Workload, MAX_LATENCY_NS,
    TIMER_DELAY_MS_PROPERTY,
};

/// Byte offset of the opaque in a frame with RocketMQ's binary header:
/// length (4), header length and type (4), code (2), language (1), version (2).
pub const BINARY_OPAQUE_AT: usize = 13;
/// Producer group the sends name.
pub const PRODUCER_GROUP: &str = "ferromq_bench_producer";
/// How long a connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A TCP connection to `addr` with TCP_NODELAY, and the TLS handshake when
/// `tls` is given, within [`CONNECT_TIMEOUT`].
pub(crate) async fn connect(addr: &str, tls: Option<&TlsClient>) -> Result<ClientStream> {
    tokio::time::timeout(
        CONNECT_TIMEOUT,
        ferromq_server::remoting::tls::connect(addr, tls),
    )
    .await
    .map_err(|_| BenchError::new(format!("connecting to {addr} timed out")))?
    .map_err(|e| BenchError::io(format!("connecting to {addr}"), e))
}
/// Longest wait for any response while requests are in flight; past it the
/// producer gives up and counts what is still in flight as errors.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(15);
/// Largest response frame accepted.
pub const MAX_RESPONSE_FRAME: usize = 1 << 20;
/// Width of a throughput-over-time bucket.
pub const BUCKET: Duration = Duration::from_millis(100);

/// One encoded request frame per queue of the topic; with a filter
/// (`workload.filter`), two per queue: tag `even` and property `k=even`, and
/// tag `odd` and `k=odd`; with timer delays (`workload.timer_delays`), that
/// many again per delay, each carrying `TIMER_DELAY_MS` (see
/// [`SendTemplates::pick`]).
#[derive(Debug, Clone)]
pub struct SendTemplates {
    /// Queue `q`'s frame at `q`; with a filter, its odd variant at `q +
    /// queues`; with timer delays, the frames of delay `d` from `d x queues
    /// x filter variants` on.
    frames: Vec<Vec<u8>>,
    /// Per frame, where each message body starts (the send stamp goes there
    /// when `stamp` is set).
    body_at: Vec<Vec<usize>>,
    /// Queues of the topic.
    queues: u32,
    /// Two variants per queue (even and odd) instead of one.
    filtered: bool,
    /// Timer delays the frames carry round-robin (0: plain messages).
    delays: u32,
    /// Write the send time into every body (consumers measure send -> consume).
    pub stamp: bool,
    /// Messages carried by one frame.
    pub messages_per_frame: u64,
}

/// Properties of every message: the broker answers once the message is stored.
const PROPS: &str = "WAIT\u{1}true\u{2}";
/// With a filter: properties of the even messages (the consumers' half)...
const PROPS_EVEN: &str = "WAIT\u{1}true\u{2}TAGS\u{1}even\u{2}k\u{1}even\u{2}";
/// ... and of the odd ones.
const PROPS_ODD: &str = "WAIT\u{1}true\u{2}TAGS\u{1}odd\u{2}k\u{1}odd\u{2}";

/// `props` with the timer property `TIMER_DELAY_MS` = `delay_ms` appended
/// (`None`: `props` as is).
fn with_timer_delay(props: &str, delay_ms: Option<u64>) -> String {
    match delay_ms {
        Some(d) => format!("{props}{TIMER_DELAY_MS_PROPERTY}\u{1}{d}\u{2}"),
        None => props.to_string(),
    }
}

impl SendTemplates {
    /// Encode the frames `workload` sends: SEND_MESSAGE_V2 (short header
    /// names) or, with `batch > 1`, SEND_BATCH_MESSAGE, binary header.
    ///
    /// # Errors
    ///
    /// When a frame cannot be encoded (too large).
    pub fn new(workload: &Workload, born_ms: i64) -> Result<Self> {
        let filtered = !workload.filter.is_none();
        let variants: &[&str] = if filtered {
            &[PROPS_EVEN, PROPS_ODD]
        } else {
            &[PROPS]
        };
        let delays: Vec<Option<u64>> = if workload.timer_delays.is_empty() {
            vec![None]
        } else {
            workload
                .timer_delays
                .ms()
                .iter()
                .map(|&d| Some(d))
                .collect()
        };
        let queues = workload.queues;
        let n = queues as usize * variants.len() * delays.len();
        let mut frames = Vec::with_capacity(n);
        let mut body_at = Vec::with_capacity(n);
        for &delay in &delays {
            for props in variants {
                let props = with_timer_delay(props, delay);
                encode_frames(workload, born_ms, &props, &mut frames, &mut body_at)?;
            }
        }
        Ok(SendTemplates {
            frames,
            body_at,
            queues,
            filtered,
            delays: u32::try_from(workload.timer_delays.ms().len())
                .map_err(|_| BenchError::new("too many --timer-delays"))?,
            stamp: workload.consumers > 0 && workload.size_bytes >= STAMP_BYTES,
            messages_per_frame: workload.batch.max(1) as u64,
        })
    }

    /// The template of send number `n` of producer `producer` (which cycles
    /// over the queues from queue `producer`): its queue's frame, and with a
    /// filter the even variant on the producer's even visits to that queue
    /// and the odd one on its odd visits, so every queue holds both halves.
    /// With timer delays, send `n` carries delay `(producer + n) % delays`:
    /// each producer goes round the list, one delay per send. Returns the
    /// template's index (for [`SendTemplates::frame`] and
    /// [`SendTemplates::stamp_into`]) and whether the consumers are to
    /// receive it within the run: their subscription matches it (always,
    /// without a filter) and it is not a timer message (those are held by
    /// the broker until due).
    // Inlined: one step of the timed send loop.
    #[inline(always)]
    pub fn pick(&self, producer: usize, n: u64) -> (u32, bool) {
        let q = u64::from(self.queues.max(1));
        let k = producer as u64 + n;
        let queue = (k % q) as u32;
        let (mut idx, matching) = if self.filtered && (k / q) & 1 == 1 {
            (queue + self.queues, false)
        } else {
            (queue, true)
        };
        if self.delays > 0 {
            let d = (k % u64::from(self.delays)) as u32;
            let per_delay = self.queues * if self.filtered { 2 } else { 1 };
            idx += d * per_delay;
            return (idx, false);
        }
        (idx, matching)
    }

    /// The frame of template `queue_id` (a queue id, or with a filter an
    /// index from [`SendTemplates::pick`]).
    pub fn frame(&self, queue_id: u32) -> &[u8] {
        &self.frames[queue_id as usize % self.frames.len()]
    }

    /// Write `stamp_ns` into the first [`STAMP_BYTES`] of every body of the
    /// frame of template `queue_id`, copied into `frame`.
    pub fn stamp_into(&self, queue_id: u32, frame: &mut [u8], stamp_ns: u64) {
        let b = stamp_ns.to_be_bytes();
        for &at in &self.body_at[queue_id as usize % self.body_at.len()] {
            if let Some(d) = frame.get_mut(at..at + STAMP_BYTES) {
                d.copy_from_slice(&b);
            }
        }
    }
}

/// Append to `frames` one frame per queue of `workload`'s topic, every
/// message with the properties `props`, and to `body_at` per frame where
/// each message body starts.
fn encode_frames(
    workload: &Workload,
    born_ms: i64,
    props: &str,
    frames: &mut Vec<Vec<u8>>,
    body_at: &mut Vec<Vec<usize>>,
) -> Result<()> {
    let body = workload.body();
    let batch = workload.batch.max(1);
    let (code, payload) = if batch > 1 {
        let mut b = Vec::with_capacity(batch * (body.len() + 22 + props.len()));
        for _ in 0..batch {
            encode_batch_item(&mut b, &body, props.as_bytes())?;
        }
        (request::SEND_BATCH_MESSAGE, b)
    } else {
        (request::SEND_MESSAGE_V2, body)
    };
    for q in 0..workload.queues {
        let mut cmd = RemotingCommand::request(code)
            .with_ext("a", PRODUCER_GROUP)
            .with_ext("b", &workload.topic)
            .with_ext("c", "TBW102")
            .with_ext("d", workload.queues)
            .with_ext("e", q)
            .with_ext("f", 0)
            .with_ext("g", born_ms)
            .with_ext("h", 0)
            .with_ext("i", props)
            .with_ext("j", 0)
            .with_ext("k", false)
            .with_body(payload.clone());
        if batch > 1 {
            cmd = cmd.with_ext("m", true);
        }
        if let Some(c) = &workload.credentials {
            // The body never changes (no send stamps with credentials),
            // so one signature serves every send of this frame.
            c.sign(&mut cmd);
        }
        cmd.serialize_type = SerializeType::RocketMq;
        cmd.opaque = 0;
        let frame = encode(&cmd)
            .map_err(|e| BenchError::new(format!("cannot encode a send request: {e}")))?;
        // The body is the frame's tail.
        let payload_at = frame.len() - payload.len();
        body_at.push(if batch > 1 {
            let one = payload.len() / batch;
            (0..batch).map(|i| payload_at + i * one + 20).collect()
        } else {
            vec![payload_at]
        });
        frames.push(frame);
    }
    Ok(())
}

/// One message of a SEND_BATCH_MESSAGE body, as RocketMQ's
/// `MessageDecoder.encodeMessage` writes it: `[TOTALSIZE][MAGIC 0][BODYCRC 0]
/// [FLAG][BODYLEN][BODY][PROPLEN i16][PROPS]`.
fn encode_batch_item(out: &mut Vec<u8>, body: &[u8], props: &[u8]) -> Result<()> {
    let total = 20 + body.len() + 2 + props.len();
    let total = i32::try_from(total).map_err(|_| BenchError::new("batch message too large"))?;
    let body_len =
        i32::try_from(body.len()).map_err(|_| BenchError::new("batch message too large"))?;
    let prop_len =
        i16::try_from(props.len()).map_err(|_| BenchError::new("properties too long"))?;
    out.extend_from_slice(&total.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes());
    out.extend_from_slice(&body_len.to_be_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(&prop_len.to_be_bytes());
    out.extend_from_slice(props);
    Ok(())
}

/// Code, opaque and flag of a frame (the bytes after the 4-byte length), read
/// straight from the header: binary (ROCKETMQ) or JSON. `None` when the
/// header is malformed.
pub fn response_head(frame: &[u8]) -> Option<(i32, i32, i32)> {
    let hlt = u32::from_be_bytes(frame.get(..4)?.try_into().ok()?);
    let kind = (hlt >> 24) as u8;
    let hlen = (hlt & 0xFF_FFFF) as usize;
    let header = frame.get(4..4 + hlen)?;
    match kind {
        1 => {
            let code = i16::from_be_bytes(header.get(..2)?.try_into().ok()?);
            let opaque = i32::from_be_bytes(header.get(5..9)?.try_into().ok()?);
            let flag = i32::from_be_bytes(header.get(9..13)?.try_into().ok()?);
            Some((i32::from(code), opaque, flag))
        }
        0 => Some((
            json_int(header, b"\"code\":")?,
            json_int(header, b"\"opaque\":")?,
            json_int(header, b"\"flag\":")?,
        )),
        _ => None,
    }
}

/// The integer after the first `key` not inside an escaped string.
fn json_int(h: &[u8], key: &[u8]) -> Option<i32> {
    let mut from = 0;
    // Bounded: each pass moves `from` forward.
    while from < h.len() {
        let pos = from + h.get(from..)?.windows(key.len()).position(|w| w == key)?;
        if pos == 0 || h[pos - 1] != b'\\' {
            let rest = &h[pos + key.len()..];
            let rest = &rest[rest.iter().take_while(|b| **b == b' ').count()..];
            let neg = rest.first() == Some(&b'-');
            let digits = &rest[usize::from(neg)..];
            let n = digits.iter().take_while(|b| b.is_ascii_digit()).count();
            if n == 0 || n > 10 {
                return None;
            }
            let v: i64 = std::str::from_utf8(&digits[..n]).ok()?.parse().ok()?;
            return i32::try_from(if neg { -v } else { v }).ok();
        }
        from = pos + 1;
    }
    None
}

/// RocketMQ's name of a response code (the status counted per message).
pub fn response_name(code: i32) -> &'static str {
    match code {
        response::SUCCESS => "SUCCESS",
        response::SYSTEM_ERROR => "SYSTEM_ERROR",
        response::SYSTEM_BUSY => "SYSTEM_BUSY",
        response::REQUEST_CODE_NOT_SUPPORTED => "REQUEST_CODE_NOT_SUPPORTED",
        response::FLUSH_DISK_TIMEOUT => "FLUSH_DISK_TIMEOUT",
        response::SLAVE_NOT_AVAILABLE => "SLAVE_NOT_AVAILABLE",
        response::FLUSH_SLAVE_TIMEOUT => "FLUSH_SLAVE_TIMEOUT",
        response::MESSAGE_ILLEGAL => "MESSAGE_ILLEGAL",
        response::SERVICE_NOT_AVAILABLE => "SERVICE_NOT_AVAILABLE",
        response::NO_PERMISSION => "NO_PERMISSION",
        response::TOPIC_NOT_EXIST => "TOPIC_NOT_EXIST",
        _ => "OTHER",
    }
}

/// What one producer task measured.
struct ProducerOut {
    acked_messages: u64,
    /// Acknowledged messages the consumers' subscription matches.
    acked_matching: u64,
    errors: super::ErrorTally,
    hist: Histogram<u64>,
    statuses: BTreeMap<&'static str, u64>,
    buckets: Vec<u64>,
    last_ack: Option<Instant>,
    /// Open loop: how late the sends left.
    lateness: Option<Lateness>,
}

impl ProducerOut {
    /// Nothing measured yet; `hist` is an empty latency histogram.
    fn new(hist: Histogram<u64>) -> Self {
        ProducerOut {
            acked_messages: 0,
            acked_matching: 0,
            errors: super::ErrorTally::default(),
            hist,
            statuses: BTreeMap::new(),
            buckets: Vec::with_capacity(1024),
            last_ack: None,
            lateness: None,
        }
    }

    fn error(&mut self, e: impl Into<String>) {
        self.errors.record(e);
    }

    /// `n` errors with the text `e` (the requests a broken connection lost).
    fn errors_n(&mut self, n: u64, e: &str) {
        for _ in 0..n {
            self.error(e);
        }
    }
}

/// Per-producer window of in-flight requests.
pub(super) struct Window {
    pub(super) sent_at: Vec<Instant>,
    opaque: Vec<i32>,
    /// Per slot: the consumers' subscription matches its messages.
    matching: Vec<bool>,
    pub(super) free: Vec<u16>,
}

impl Window {
    fn new(size: usize, now: Instant) -> Self {
        Window {
            sent_at: vec![now; size],
            opaque: vec![-1; size],
            matching: vec![true; size],
            free: (0..size as u16).rev().collect(),
        }
    }

    fn in_flight(&self) -> usize {
        self.sent_at.len() - self.free.len()
    }
}

/// A throughput-over-time series and everything [`RunMeasurement`] holds.
#[derive(Debug, Clone)]
pub struct BrokerMeasurement {
    /// The common measurement (messages, bytes, latency, statuses, errors).
    pub run: RunMeasurement,
    /// Messages acknowledged per [`BUCKET`] since the start.
    pub acks_per_bucket: Vec<u64>,
    /// Acknowledged messages the consumers subscribe to: all of them, or
    /// with a filter (`workload.filter`) the even half; what the consumers
    /// are expected to receive.
    pub consumable: u64,
    /// What the consumers received (`workload.consumers > 0`).
    pub consume: Option<ConsumeMeasurement>,
    /// Open loop (`workload.open_loop`): the offered load and how late the
    /// sends left.
    pub open_loop: Option<OpenLoopMeasurement>,
    /// CPU time the broker process used over the measurement (with
    /// consumers, until they finished), where it runs on this machine and
    /// could be found (see [`crate::proc_cpu`]).
    pub broker_cpu: Option<Duration>,
    /// The broker process's resident memory when the measured sends ended
    /// (before the consumers finished), where it runs on this machine.
    pub broker_memory: Option<crate::proc_cpu::ProcMemory>,
}

/// Drive the broker at `addr` with `workload` (its `inflight`, `batch`,
/// `producers`, `messages` and `max_duration`) on the current tokio runtime.
/// `stop` ends the run early (Ctrl-C); in-flight requests are still awaited.
///
/// # Errors
///
/// When the workload is invalid or no producer could connect. Failed
/// requests are counted, not returned.
pub async fn drive(
    addr: &str,
    workload: &Workload,
    templates: Arc<SendTemplates>,
    stop: Arc<AtomicBool>,
) -> Result<BrokerMeasurement> {
    workload.validate()?;
    let template_hist = new_latency_histogram()?;
    let tls = workload.tls_client()?;
    let mut streams = Vec::with_capacity(workload.producers);
    for _ in 0..workload.producers {
        streams.push(connect(addr, tls.as_ref()).await?);
    }
    let start = Instant::now();
    let start_mono_ns = consumer::mono_ns();
    let deadline = workload.max_duration.map(|d| start + d);
    let mut handles = Vec::with_capacity(streams.len());
    for (index, stream) in streams.into_iter().enumerate() {
        let frames = workload
            .messages_for(index)
            .div_ceil(templates.messages_per_frame);
        let task = ProducerTask {
            index,
            frames,
            window: workload.inflight,
            templates: Arc::clone(&templates),
            stop: Arc::clone(&stop),
            deadline,
            start,
            hist: template_hist.clone(),
            pacing: workload
                .open_loop
                .map(|o| (o, workload.producers, start_mono_ns)),
        };
        handles.push(tokio::spawn(task.run(stream)));
    }
    // No producer_usage: the sends' time is spent in tokio tasks, not in one
    // thread per producer.
    let mut open_loop = workload.open_loop.map(|o| OpenLoopMeasurement {
        rate: o.rate,
        arrivals: o.arrivals,
        lateness: Lateness::new(template_hist.clone()),
    });
    let mut m = RunMeasurement::empty(workload, Duration::ZERO, template_hist);
    let mut consumable = 0;
    let mut buckets: Vec<u64> = Vec::new();
    let mut last = start;
    for h in handles {
        let out = h
            .await
            .map_err(|e| BenchError::new(format!("a producer task failed: {e}")))?;
        m.messages += out.acked_messages;
        consumable += out.acked_matching;
        out.errors.add_to(&mut m.put_errors, &mut m.first_error);
        m.latency_ns
            .add(&out.hist)
            .map_err(|e| BenchError::new(format!("cannot merge histograms: {e}")))?;
        for (k, v) in out.statuses {
            *m.status_counts.entry(k.to_string()).or_insert(0) += v;
        }
        if buckets.len() < out.buckets.len() {
            buckets.resize(out.buckets.len(), 0);
        }
        for (b, n) in buckets.iter_mut().zip(&out.buckets) {
            *b += n;
        }
        if let Some(t) = out.last_ack {
            last = last.max(t);
        }
        if let (Some(o), Some(l)) = (&mut open_loop, &out.lateness) {
            o.lateness
                .add(l)
                .map_err(|e| BenchError::new(format!("cannot merge histograms: {e}")))?;
        }
    }
    m.elapsed = last.saturating_duration_since(start);
    m.bytes = m.messages * workload.size_bytes as u64;
    m.stopped_early = m.messages + m.put_errors < workload.messages;
    Ok(BrokerMeasurement {
        run: m,
        acks_per_bucket: buckets,
        consumable,
        consume: None,
        open_loop,
        broker_cpu: None,
        broker_memory: None,
    })
}

pub(super) struct ProducerTask {
    pub(super) index: usize,
    pub(super) frames: u64,
    window: usize,
    pub(super) templates: Arc<SendTemplates>,
    stop: Arc<AtomicBool>,
    pub(super) deadline: Option<Instant>,
    pub(super) start: Instant,
    pub(super) hist: Histogram<u64>,
    /// Open loop: the offered load, the producer count and the start in
    /// `CLOCK_MONOTONIC` ns (`None`: closed loop).
    pacing: Option<(OpenLoop, usize, u64)>,
}

impl ProducerTask {
    /// The send loop: keep the window full (closed loop) or send each frame
    /// at its intended time when the window has room (open loop), read every
    /// response as it comes, stop at the frame count, the deadline, Ctrl-C or
    /// too many errors, then wait for what is still in flight.
    async fn run(self, stream: ClientStream) -> ProducerOut {
        match stream {
            // The plain path borrows the socket's own halves, as before TLS.
            ClientStream::Plain(mut s) => {
                let (rd, wr) = s.split();
                self.run_on(rd, wr, false).await
            }
            ClientStream::Tls(s) => {
                let (rd, wr) = tokio::io::split(*s);
                self.run_on(rd, wr, true).await
            }
        }
    }

    /// [`ProducerTask::run`] on the stream's halves; `flush`: the writer
    /// holds bytes until flushed (TLS), so flush once the write buffer has
    /// been handed over.
    async fn run_on<R, W>(self, mut rd: R, mut wr: W, flush: bool) -> ProducerOut
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut unflushed = false;
        let mut out = ProducerOut::new(self.hist.clone());
        let per_frame = self.templates.messages_per_frame;
        let mut pacer = match self.pacing.map(|p| self.pacer(p)).transpose() {
            Ok(p) => p,
            Err(e) => {
                out.error(format!("cannot create the pacing timer: {e}"));
                return out;
            }
        };
        let mut win = Window::new(self.window, self.start);
        let frame_len = self.templates.frame(0).len();
        let mut wbuf: Vec<u8> = Vec::with_capacity(frame_len * self.window.min(64));
        let mut wpos = 0usize;
        let mut rbuf: Vec<u8> = Vec::with_capacity(64 * 1024);
        let mut rpos = 0usize;
        let mut sent = 0u64;
        let mut stopping = false;
        // Bounded: every pass sends, reads, or ends (timeouts bound the reads).
        loop {
            if !stopping
                && (sent >= self.frames
                    || self.stop.load(Ordering::Relaxed)
                    || self.deadline.is_some_and(|d| Instant::now() >= d)
                    || pacer.as_ref().is_some_and(Pacer::exhausted))
            {
                stopping = true;
                if let Some(p) = &mut pacer {
                    self.last_sends(p, &mut win, (&mut wbuf, &mut wpos), &mut sent);
                }
            }
            // Fill the window, only when the write buffer has been written out.
            if !stopping && wpos == wbuf.len() {
                wbuf.clear();
                wpos = 0;
                match &mut pacer {
                    None => self.fill_window(&mut win, &mut wbuf, &mut sent),
                    Some(p) => self.fill_due(p, &mut win, &mut wbuf, &mut sent),
                }
            }
            // Open loop: wake at the next send time when a slot is free for it.
            let ready = !stopping && wpos == wbuf.len() && !win.free.is_empty();
            let timed = arm(pacer.as_mut(), ready).unwrap_or_else(|e| {
                out.error(format!("cannot arm the pacing timer: {e}"));
                stopping = true;
                false
            });
            if win.in_flight() == 0 && wpos == wbuf.len() && !timed && !unflushed {
                if stopping || sent >= self.frames {
                    break;
                }
                continue;
            }
            if rbuf.len() == rbuf.capacity() {
                rbuf.reserve(64 * 1024);
            }
            let pending_write = wpos < wbuf.len();
            let pending_flush = unflushed && !pending_write;
            let step = tokio::time::timeout(RESPONSE_TIMEOUT, async {
                // One writer step: write what is left, or flush (TLS) once
                // all was handed over.
                let out_step = async {
                    if pending_write {
                        Step::Wrote(wr.write(&wbuf[wpos..]).await)
                    } else {
                        Step::Flushed(wr.flush().await)
                    }
                };
                tokio::select! {
                    r = rd.read_buf(&mut rbuf) => Step::Read(r),
                    w = out_step, if pending_write || pending_flush => w,
                    () = due(pacer.as_ref()), if timed => Step::Due,
                }
            })
            .await;
            match step {
                // Open loop, idle: the next send is more than the timeout away.
                Err(_) if win.in_flight() == 0 => {}
                Ok(Step::Due) => {
                    if let Some(p) = &mut pacer {
                        p.timer.expired();
                    }
                }
                Err(_) => {
                    let lost = win.in_flight() as u64;
                    out.errors_n(
                        lost,
                        &format!(
                            "no response within {RESPONSE_TIMEOUT:?} ({lost} requests in flight)"
                        ),
                    );
                    break;
                }
                Ok(Step::Wrote(Ok(n))) => {
                    wpos += n;
                    unflushed = flush;
                }
                Ok(Step::Flushed(Ok(()))) => unflushed = false,
                Ok(Step::Flushed(Err(e))) => {
                    out.errors_n(
                        win.in_flight().max(1) as u64,
                        &format!("connection failed: {e}"),
                    );
                    break;
                }
                Ok(Step::Wrote(Err(e))) | Ok(Step::Read(Err(e))) => {
                    out.errors_n(
                        win.in_flight().max(1) as u64,
                        &format!("connection failed: {e}"),
                    );
                    break;
                }
                Ok(Step::Read(Ok(0))) => {
                    out.errors_n(
                        win.in_flight().max(1) as u64,
                        "the broker closed the connection",
                    );
                    break;
                }
                Ok(Step::Read(Ok(_))) => {
                    if !self.read_responses(&mut out, &mut win, &rbuf, &mut rpos, per_frame) {
                        return out;
                    }
                    compact(&mut rbuf, &mut rpos);
                    if out.errors.count >= crate::workload::MAX_PUT_ERRORS {
                        stopping = true;
                    }
                }
            }
        }
        out.lateness = pacer.map(|p| p.lateness);
        out
    }

    /// Append a request frame to `wbuf` for every free window slot (up to
    /// 256 KiB and the frame count), each with its opaque and send time.
    // Inlined: one step of the timed send loop, kept as it was in the loop.
    #[inline(always)]
    fn fill_window(&self, win: &mut Window, wbuf: &mut Vec<u8>, sent: &mut u64) {
        while *sent < self.frames {
            let Some(slot) = win.free.pop() else { break };
            let (queue, at) = self.append_frame(win, wbuf, *sent, slot);
            if self.templates.stamp {
                self.templates
                    .stamp_into(queue, &mut wbuf[at..], consumer::mono_ns());
            }
            win.sent_at[slot as usize] = Instant::now();
            *sent += 1;
            if wbuf.len() >= 256 * 1024 {
                break;
            }
        }
    }

    /// Append send number `n`'s frame (its template, see
    /// [`SendTemplates::pick`], with the opaque of `n` and `slot`) to `wbuf`
    /// and give the slot that opaque. Returns the template index and where
    /// the frame starts in `wbuf`.
    // Inlined: one step of the timed send loop, kept as it was in the loop.
    #[inline(always)]
    pub(super) fn append_frame(
        &self,
        win: &mut Window,
        wbuf: &mut Vec<u8>,
        n: u64,
        slot: u16,
    ) -> (u32, usize) {
        let (queue, matching) = self.templates.pick(self.index, n);
        let opaque = (((n & 0x7FFF) as i32) << 16) | i32::from(slot);
        let at = wbuf.len();
        wbuf.extend_from_slice(self.templates.frame(queue));
        wbuf[at + BINARY_OPAQUE_AT..at + BINARY_OPAQUE_AT + 4]
            .copy_from_slice(&opaque.to_be_bytes());
        win.opaque[slot as usize] = opaque;
        win.matching[slot as usize] = matching;
        (queue, at)
    }

    /// Take every whole response frame in `rbuf` from `rpos` on and record
    /// it. False on a broken stream (bad length or header): the task ends.
    // Inlined: one step of the timed send loop, kept as it was in the loop.
    #[inline(always)]
    fn read_responses(
        &self,
        out: &mut ProducerOut,
        win: &mut Window,
        rbuf: &[u8],
        rpos: &mut usize,
        per_frame: u64,
    ) -> bool {
        let now = Instant::now();
        // Every whole frame in the buffer.
        while let Some(len) = rbuf.get(*rpos..*rpos + 4) {
            let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
            if !(4..=MAX_RESPONSE_FRAME).contains(&len) {
                out.error(format!("bad response frame length {len}"));
                return false;
            }
            let Some(frame) = rbuf.get(*rpos + 4..*rpos + 4 + len) else {
                break;
            };
            match response_head(frame) {
                Some((code, opaque, flag)) if flag & 1 == 1 => {
                    self.answered(out, win, (code, opaque), now, per_frame);
                }
                Some(_) => {} // A request from the broker; ignored.
                None => {
                    out.error("malformed response header");
                    return false;
                }
            }
            *rpos += 4 + len;
        }
        true
    }

    /// A response with `code` to the request `opaque` (a frame of
    /// `per_frame` messages): free its slot, and record its latency and ack
    /// bucket (a sent status) or its error.
    // Inlined: one step of the timed send loop, kept as it was in the loop.
    #[inline(always)]
    fn answered(
        &self,
        out: &mut ProducerOut,
        win: &mut Window,
        (code, opaque): (i32, i32),
        now: Instant,
        per_frame: u64,
    ) {
        let slot = (opaque & 0xFFFF) as usize;
        if slot < win.opaque.len() && win.opaque[slot] == opaque {
            win.opaque[slot] = -1;
            win.free.push(slot as u16);
            let ns = (now - win.sent_at[slot])
                .as_nanos()
                .min(u128::from(MAX_LATENCY_NS)) as u64;
            if code == response::SUCCESS
                || code == response::FLUSH_DISK_TIMEOUT
                || code == response::FLUSH_SLAVE_TIMEOUT
                || code == response::SLAVE_NOT_AVAILABLE
            {
                out.hist.saturating_record_n(ns.max(1), per_frame);
                out.acked_messages += per_frame;
                if win.matching[slot] {
                    out.acked_matching += per_frame;
                }
                let b = ((now - self.start).as_nanos() / BUCKET.as_nanos()) as usize;
                if out.buckets.len() <= b {
                    out.buckets.resize(b + 1, 0);
                }
                out.buckets[b] += per_frame;
                out.last_ack = Some(now);
            } else {
                out.error(format!("broker answered {} ({code})", response_name(code)));
            }
            *out.statuses.entry(response_name(code)).or_insert(0) += per_frame;
        }
        // Else: not ours (stale or unknown opaque); skipped.
    }
}

/// Drop the bytes `rbuf` has been read up to `rpos`: all of them when
/// everything was read, else the read part once it passes 32 KiB.
// Inlined: one step of the timed send loop, kept as it was in the loop.
#[inline(always)]
fn compact(rbuf: &mut Vec<u8>, rpos: &mut usize) {
    if *rpos == rbuf.len() {
        rbuf.clear();
        *rpos = 0;
    } else if *rpos > 32 * 1024 {
        rbuf.drain(..*rpos);
        *rpos = 0;
    }
}

enum Step {
    Read(std::io::Result<usize>),
    Wrote(std::io::Result<usize>),
    /// The TLS session has sent what it held.
    Flushed(std::io::Result<()>),
    /// Open loop: the next send's time has come.
    Due,
}

/// Create `workload.topic` with `workload.queues` queues on the broker
/// (UPDATE_AND_CREATE_TOPIC), so sends never depend on auto-creation.
///
/// # Errors
///
/// When the broker cannot be reached or refuses.
pub async fn create_topic(broker: &str, workload: &Workload) -> Result<()> {
    let client = RemotingClient::with_tls(broker, workload.tls_client()?);
    let req = RemotingCommand::request(request::UPDATE_AND_CREATE_TOPIC)
        .with_ext("topic", &workload.topic)
        .with_ext("defaultTopic", "TBW102")
        .with_ext("readQueueNums", workload.queues)
        .with_ext("writeQueueNums", workload.queues)
        .with_ext("perm", 6)
        .with_ext("topicFilterType", "SINGLE_TAG")
        .with_ext("topicSysFlag", 0)
        .with_ext("order", false);
    let mut req = req;
    if let Some(c) = &workload.credentials {
        c.sign(&mut req);
    }
    let resp = client
        .invoke(req, Duration::from_secs(10))
        .await
        .map_err(|e| BenchError::new(format!("creating topic on {broker}: {e}")))?;
    client.close().await;
    if resp.code != response::SUCCESS {
        return Err(BenchError::new(format!(
            "broker {broker} refused to create topic {}: code {} {}",
            workload.topic,
            resp.code,
            resp.remark.unwrap_or_default()
        )));
    }
    Ok(())
}

/// Ask the name server for its cluster and return the first master broker's
/// address (GET_BROKER_CLUSTER_INFO); over TLS when `tls` is given.
///
/// # Errors
///
/// When the name server cannot be reached or knows no broker.
pub async fn broker_from_namesrv(namesrv: &str, tls: Option<TlsClient>) -> Result<String> {
    let client = RemotingClient::with_tls(namesrv, tls);
    let resp = client
        .invoke(
            RemotingCommand::request(request::GET_BROKER_CLUSTER_INFO),
            Duration::from_secs(10),
        )
        .await
        .map_err(|e| BenchError::new(format!("asking name server {namesrv}: {e}")))?;
    client.close().await;
    if resp.code != response::SUCCESS {
        return Err(BenchError::new(format!(
            "name server {namesrv} answered code {}",
            resp.code
        )));
    }
    first_broker_addr(&String::from_utf8_lossy(&resp.body)).ok_or_else(|| {
        BenchError::new(format!("name server {namesrv} knows no broker address yet"))
    })
}

/// The first `host:port` string after `"brokerAddrs"` in a cluster-info body.
/// Lenient: fastjson writes the map's numeric keys unquoted.
pub fn first_broker_addr(body: &str) -> Option<String> {
    let at = body.find("\"brokerAddrs\"")?;
    let mut rest = &body[at + "\"brokerAddrs\"".len()..];
    // Bounded: each pass consumes one quoted string.
    while let Some(open) = rest.find('"') {
        let after = &rest[open + 1..];
        let close = after.find('"')?;
        let s = &after[..close];
        if let Some((host, port)) = s.rsplit_once(':') {
            if !host.is_empty() && port.parse::<u16>().is_ok() {
                return Some(s.to_string());
            }
        }
        rest = &after[close + 1..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferromq_server::remoting::codec::{decode, encode_into, DEFAULT_MAX_FRAME_BYTES};

    #[test]
    fn template_opaque_sits_at_the_fixed_offset_and_decodes() {
        let mut w = Workload::new(10);
        w.size_bytes = 100;
        w.queues = 2;
        let t = SendTemplates::new(&w, 1).unwrap();
        let mut f = t.frame(1).to_vec();
        f[BINARY_OPAQUE_AT..BINARY_OPAQUE_AT + 4].copy_from_slice(&0x1234_5678i32.to_be_bytes());
        let (cmd, used) = decode(&f, DEFAULT_MAX_FRAME_BYTES).unwrap().unwrap();
        assert_eq!(used, f.len());
        assert_eq!(cmd.opaque, 0x1234_5678);
        assert_eq!(cmd.code, request::SEND_MESSAGE_V2);
        assert_eq!(cmd.ext_fields.get_i64("e"), Ok(1));
        assert_eq!(cmd.body.len(), 100);
    }

    #[test]
    fn filter_templates_alternate_even_and_odd_per_queue() {
        use crate::workload::Filter;
        for (filter, batch) in [(Filter::Tag, 1usize), (Filter::Sql92, 1), (Filter::Tag, 2)] {
            let mut w = Workload::new(100);
            w.size_bytes = 40;
            w.queues = 3;
            w.consumers = 1;
            w.batch = batch;
            w.filter = filter;
            let t = SendTemplates::new(&w, 1).unwrap();
            for producer in [0usize, 1] {
                // Per queue: the even variant, then the odd one, then even...
                let mut last: [Option<bool>; 3] = [None; 3];
                let mut matching = 0;
                for n in 0..12u64 {
                    let (idx, even) = t.pick(producer, n);
                    let mut f = t.frame(idx).to_vec();
                    t.stamp_into(idx, &mut f, 42);
                    let (cmd, used) = decode(&f, DEFAULT_MAX_FRAME_BYTES).unwrap().unwrap();
                    assert_eq!(used, f.len());
                    let queue = (producer as u64 + n) % 3;
                    assert_eq!(cmd.ext_fields.get_i64("e"), Ok(queue as i64));
                    if let Some(prev) = last[queue as usize] {
                        assert_ne!(even, prev, "{filter:?} producer {producer} n {n}");
                    }
                    last[queue as usize] = Some(even);
                    let props = cmd.ext_fields.opt_str("i").unwrap();
                    let want = if even { "even" } else { "odd" };
                    assert!(
                        props.contains(&format!("TAGS\u{1}{want}\u{2}"))
                            && props.contains(&format!("k\u{1}{want}\u{2}"))
                            && props.contains("WAIT\u{1}true\u{2}"),
                        "{props:?}"
                    );
                    let body = if batch == 1 {
                        &cmd.body[..]
                    } else {
                        let item = &cmd.body[..cmd.body.len() / batch];
                        assert!(item
                            .windows(want.len() + 6)
                            .any(|x| x == format!("TAGS\u{1}{want}\u{2}").as_bytes()));
                        &item[20..60]
                    };
                    assert_eq!(&body[..8], &42u64.to_be_bytes(), "stamped");
                    assert_eq!(body[8], b'a' + 8);
                    matching += u64::from(even);
                }
                assert_eq!(matching, 6, "half of the sends match");
            }
        }
        // No filter: one untagged frame per queue, every send matches.
        let mut w = Workload::new(10);
        w.queues = 3;
        let t = SendTemplates::new(&w, 1).unwrap();
        assert_eq!(t.frames.len(), 3);
        for n in 0..6 {
            assert_eq!(t.pick(1, n), (((1 + n) % 3) as u32, true));
        }
        let (cmd, _) = decode(t.frame(2), DEFAULT_MAX_FRAME_BYTES)
            .unwrap()
            .unwrap();
        assert_eq!(cmd.ext_fields.opt_str("i"), Some("WAIT\u{1}true\u{2}"));
    }

    #[test]
    fn timer_templates_carry_the_delays_round_robin() {
        use crate::workload::Filter;
        let delays = [10_000u64, 90_000, 600_000, 3_600_000];
        for (filter, consumers) in [(Filter::None, 0usize), (Filter::None, 1), (Filter::Tag, 1)] {
            let mut w = Workload::new(100);
            w.size_bytes = 40;
            w.queues = 3;
            w.consumers = consumers;
            w.filter = filter;
            w.timer_delays = "10s,90s,10m,1h".parse().unwrap();
            let t = SendTemplates::new(&w, 1).unwrap();
            let variants = if filter.is_none() { 1 } else { 2 };
            assert_eq!(t.frames.len(), 3 * variants * delays.len());
            for producer in [0usize, 2] {
                let mut last_even: [Option<bool>; 3] = [None; 3];
                for n in 0..24u64 {
                    let (idx, expected) = t.pick(producer, n);
                    assert!(
                        !expected,
                        "timer messages are not expected by the consumers within the run"
                    );
                    let mut f = t.frame(idx).to_vec();
                    t.stamp_into(idx, &mut f, 42);
                    let (cmd, used) = decode(&f, DEFAULT_MAX_FRAME_BYTES).unwrap().unwrap();
                    assert_eq!(used, f.len());
                    assert_eq!(cmd.code, request::SEND_MESSAGE_V2);
                    let k = producer as u64 + n;
                    let queue = k % 3;
                    assert_eq!(cmd.ext_fields.get_i64("e"), Ok(queue as i64));
                    let props = cmd.ext_fields.opt_str("i").unwrap();
                    // Round-robin: each send carries the next delay of the list.
                    let want = delays[(k % 4) as usize];
                    assert!(
                        props.contains(&format!("TIMER_DELAY_MS\u{1}{want}\u{2}"))
                            && props.contains("WAIT\u{1}true\u{2}"),
                        "{props:?}"
                    );
                    assert_eq!(props.matches("TIMER_DELAY_MS").count(), 1, "{props:?}");
                    if !filter.is_none() {
                        // The filter's even/odd alternation per queue still holds.
                        let even = props.contains("TAGS\u{1}even\u{2}");
                        assert!(even || props.contains("TAGS\u{1}odd\u{2}"), "{props:?}");
                        if let Some(prev) = last_even[queue as usize] {
                            assert_ne!(even, prev, "producer {producer} n {n}");
                        }
                        last_even[queue as usize] = Some(even);
                    }
                    if consumers > 0 {
                        assert_eq!(&cmd.body[..8], &42u64.to_be_bytes(), "stamped");
                    }
                }
            }
        }
        // Every delay of the list is used, equally, by one producer.
        let mut w = Workload::new(100);
        w.timer_delays = "1s,2s,3s".parse().unwrap();
        let t = SendTemplates::new(&w, 1).unwrap();
        let mut per_delay = std::collections::BTreeMap::new();
        for n in 0..96 {
            let (idx, _) = t.pick(1, n);
            let (cmd, _) = decode(t.frame(idx), DEFAULT_MAX_FRAME_BYTES)
                .unwrap()
                .unwrap();
            let props = cmd.ext_fields.opt_str("i").unwrap().to_string();
            *per_delay.entry(props).or_insert(0) += 1;
        }
        assert_eq!(per_delay.len(), 3, "{per_delay:?}");
        assert!(per_delay.values().all(|&c| c == 32), "{per_delay:?}");
        // Plain messages (the default) carry no timer property.
        let t = SendTemplates::new(&Workload::new(10), 1).unwrap();
        for i in 0..8 {
            let (cmd, _) = decode(t.frame(i), DEFAULT_MAX_FRAME_BYTES)
                .unwrap()
                .unwrap();
            assert_eq!(cmd.ext_fields.opt_str("i"), Some("WAIT\u{1}true\u{2}"));
        }
    }

    #[test]
    fn batch_template_splits_into_messages() {
        let mut w = Workload::new(10);
        w.size_bytes = 50;
        w.batch = 3;
        let t = SendTemplates::new(&w, 1).unwrap();
        assert_eq!(t.messages_per_frame, 3);
        let (cmd, _) = decode(t.frame(0), DEFAULT_MAX_FRAME_BYTES)
            .unwrap()
            .unwrap();
        assert_eq!(cmd.code, request::SEND_BATCH_MESSAGE);
        let one = 20 + 50 + 2 + "WAIT\u{1}true\u{2}".len();
        assert_eq!(cmd.body.len(), 3 * one);
        assert_eq!(&cmd.body[..4], &(one as i32).to_be_bytes());
        assert_eq!(cmd.ext_fields.opt_str("m"), Some("true"));
    }

    #[test]
    fn response_head_reads_binary_and_json() {
        for st in [SerializeType::RocketMq, SerializeType::Json] {
            let mut r = RemotingCommand::response(10, Some("x \"opaque\":5".into()))
                .with_ext("msgId", "ABC");
            r.opaque = 77;
            r.serialize_type = st;
            let mut buf = Vec::new();
            encode_into(&r, &mut buf).unwrap();
            assert_eq!(response_head(&buf[4..]), Some((10, 77, 1)), "{st:?}");
        }
        assert_eq!(response_head(&[0, 0]), None);
        assert_eq!(response_head(&[9, 0, 0, 0]), None);
    }

    #[test]
    fn broker_addr_from_fastjson_cluster_info() {
        let body = r#"{"brokerAddrTable":{"b":{"brokerAddrs":{0:"127.0.0.1:10911"},"brokerName":"b","cluster":"C"}},"clusterAddrTable":{"C":["b"]}}"#;
        assert_eq!(first_broker_addr(body).as_deref(), Some("127.0.0.1:10911"));
        let quoted = r#"{"brokerAddrs":{"0":"10.0.0.1:9"}}"#;
        assert_eq!(first_broker_addr(quoted).as_deref(), Some("10.0.0.1:9"));
        assert_eq!(first_broker_addr("{}"), None);
    }
}
