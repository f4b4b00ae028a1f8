//! Pull consumers of the broker target: send -> consume end-to-end latency.
//!
//! Every message the producers send carries its send time in its first
//! [`STAMP_BYTES`] body bytes (`CLOCK_MONOTONIC` nanoseconds, big-endian,
//! written into the request frame as it is queued; see
//! [`crate::target::broker::SendTemplates`]). The consumers are the
//! harness's own lean client:
//!
//! - consumer `c` of `n` owns the queues `q` with `q % n == c` and one TCP
//!   connection; it keeps one PULL_MESSAGE per owned queue outstanding on
//!   that connection (long polling: `FLAG_SUSPEND | FLAG_SUBSCRIPTION`,
//!   subscription `*`, or with a filter (`--filter`) TAG `even` or SQL92
//!   `k = 'even'`, so no heartbeat is needed), keyed by opaque = slot;
//! - it starts at each queue's max offset (GET_MAX_OFFSET), so messages
//!   already in the queue are not consumed;
//! - a response's records are walked in place (the body of a pull response
//!   is the stored commitlog records); the clock is read once per response,
//!   and each message whose stamp is at or after the measurement start is
//!   recorded in an HDR histogram as `now - stamp`. Warm-up messages are
//!   consumed but not counted.
//!
//! Nothing is allocated per message; a response costs one frame decode.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferromq_server::remoting::codec::{decode, encode};
use ferromq_server::remoting::tls::ClientStream;
use ferromq_server::remoting::{request, response, RemotingClient, RemotingCommand};
use hdrhistogram::Histogram;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::{BenchError, Result};
use crate::workload::{new_latency_histogram, Filter, Workload, MAX_LATENCY_NS};

/// Body bytes holding the send stamp.
pub const STAMP_BYTES: usize = 8;
/// Consumer group of the pulls.
pub const CONSUMER_GROUP: &str = "ferromq_bench_consumer";
/// Largest pull response accepted.
pub const MAX_PULL_FRAME: usize = 64 << 20;
/// How long, after the producers finish, the consumers may take to receive
/// every acknowledged message before the measurement ends without them.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the drain workload's consumers may take to empty the topic
/// before the measurement ends without the rest.
pub const DRAIN_WORKLOAD_TIMEOUT: Duration = Duration::from_secs(120);
/// Errors after which a consumer gives up.
pub const MAX_CONSUME_ERRORS: u64 = 100;
/// Pause before pulling again after an error answer.
const ERROR_BACKOFF: Duration = Duration::from_millis(50);
/// How often a consumer looks at its stop flag while it waits.
const POLL_STEP: Duration = Duration::from_millis(100);

/// `PullSysFlag`: the broker may hold the request.
const FLAG_SUSPEND: i32 = 0x2;
/// `PullSysFlag`: the request carries its subscription.
const FLAG_SUBSCRIPTION: i32 = 0x4;
/// Record offsets (RocketMQ 4.x layout, see `ferromq_engine::message`).
const SYSFLAG_AT: usize = 36;
const BORNHOST_AT: usize = 48;
const BORNHOST_V6: i32 = 0x10;
const STOREHOST_V6: i32 = 0x20;

/// `CLOCK_MONOTONIC` now, in nanoseconds (the same clock in every process of
/// the machine, so a stamp from another process reads correctly too).
pub fn mono_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(t.tv_nsec).unwrap_or(0)
}

/// The body of every stored record in `records` (a pull response body), in
/// order. Stops at the first record whose lengths do not fit.
pub fn record_bodies(records: &[u8]) -> impl Iterator<Item = &[u8]> + '_ {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        let rec = records.get(at..)?;
        let total = i32::from_be_bytes(rec.get(..4)?.try_into().ok()?);
        let total = usize::try_from(total).ok()?;
        let rec = rec.get(..total)?;
        let sys = i32::from_be_bytes(rec.get(SYSFLAG_AT..SYSFLAG_AT + 4)?.try_into().ok()?);
        let born = if sys & BORNHOST_V6 != 0 { 20 } else { 8 };
        let store = if sys & STOREHOST_V6 != 0 { 20 } else { 8 };
        // BORNHOST, STORETIMESTAMP, STOREHOST, RECONSUMETIMES, PREPARED OFFSET.
        let len_at = BORNHOST_AT + born + 8 + store + 4 + 8;
        let body_len = i32::from_be_bytes(rec.get(len_at..len_at + 4)?.try_into().ok()?);
        let body_len = usize::try_from(body_len).ok()?;
        let body = rec.get(len_at + 4..len_at + 4 + body_len)?;
        at += total.max(1);
        Some(body)
    })
}

/// The send stamp of a body (`None` when it is too short).
pub fn body_stamp(body: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(
        body.get(..STAMP_BYTES)?.try_into().ok()?,
    ))
}

/// State the consumers share with the driver.
#[derive(Debug)]
struct Shared {
    /// Stamps at or after this count (`u64::MAX`: nothing counts yet).
    measure_from_ns: AtomicU64,
    /// Counted messages so far, all consumers.
    counted: AtomicU64,
    /// When the last counted message arrived (`mono_ns`).
    last_counted_ns: AtomicU64,
    /// Pull responses with messages (`SUCCESS`).
    pulls_found: AtomicU64,
    /// Pull responses without (`PULL_NOT_FOUND`, held pulls that timed out, ...).
    pulls_empty: AtomicU64,
    stop: AtomicBool,
}

/// What the consumers measured.
#[derive(Debug, Clone)]
pub struct ConsumeMeasurement {
    /// Consumers that pulled (some may own no queue when there are more
    /// consumers than queues).
    pub consumers: usize,
    /// Messages received whose stamp is within the measurement.
    pub consumed: u64,
    /// Send -> consume latency, ns.
    pub latency_ns: Histogram<u64>,
    /// Failed pulls (error answers, broken connections).
    pub errors: u64,
    /// The first failure.
    pub first_error: Option<String>,
    /// Seconds from the end of the producers to the last counted message,
    /// or to the drain timeout.
    pub drain_seconds: f64,
    /// Received every acknowledged message before [`DRAIN_TIMEOUT`].
    pub drained: bool,
    /// Pull responses that carried messages.
    pub pulls_found: u64,
    /// Pull responses that carried none.
    pub pulls_empty: u64,
    /// The drain workload only: seconds from the first pull to the last
    /// message counted.
    pub drain_run_seconds: Option<f64>,
    /// The drain workload only: CPU the broker process used while the
    /// consumers drained (where it could be measured).
    pub drain_broker_cpu: Option<Duration>,
    /// The drain workload only: CPU this process (the consumers) used while
    /// they drained.
    pub drain_client_cpu: Option<Duration>,
}

/// Running consumers.
pub struct Consumers {
    shared: Arc<Shared>,
    handles: Vec<tokio::task::JoinHandle<ConsumerOut>>,
}

struct ConsumerOut {
    hist: Histogram<u64>,
    errors: super::ErrorTally,
}

impl ConsumerOut {
    fn error(&mut self, e: impl Into<String>) {
        self.errors.record(e);
    }
}

impl Consumers {
    /// Start `n` consumers of `workload.topic` on the broker at `addr`, each
    /// at the current max offset of its queues. Nothing is counted until
    /// [`Consumers::measure_from_now`].
    ///
    /// # Errors
    ///
    /// When the broker cannot be reached or does not answer GET_MAX_OFFSET.
    pub async fn start(addr: &str, workload: &Workload, n: usize) -> Result<Consumers> {
        let from = queue_max_offsets(addr, workload).await?;
        Self::start_from(addr, workload, n, &from, u64::MAX).await
    }

    /// Start `n` consumers of `workload.topic`, queue `q` at offset `from[q]`
    /// (0 where `from` is short), counting messages stamped at or after
    /// `measure_from_ns` (`u64::MAX`: none until
    /// [`Consumers::measure_from_now`]; 0: every message).
    ///
    /// # Errors
    ///
    /// When the broker cannot be reached.
    pub async fn start_from(
        addr: &str,
        workload: &Workload,
        n: usize,
        from: &[i64],
        measure_from_ns: u64,
    ) -> Result<Consumers> {
        let shared = Arc::new(Shared {
            measure_from_ns: AtomicU64::new(measure_from_ns),
            counted: AtomicU64::new(0),
            last_counted_ns: AtomicU64::new(0),
            pulls_found: AtomicU64::new(0),
            pulls_empty: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let hist = new_latency_histogram()?;
        let tls = workload.tls_client()?;
        let mut handles = Vec::new();
        for c in 0..n.max(1) {
            let slots: Vec<(u32, i64)> = (0..workload.queues)
                .filter(|q| *q as usize % n.max(1) == c)
                .map(|q| (q, from.get(q as usize).copied().unwrap_or(0)))
                .collect();
            if slots.is_empty() {
                continue;
            }
            let s = crate::target::broker::connect(addr, tls.as_ref()).await?;
            let task = ConsumerTask {
                topic: workload.topic.clone(),
                pull_batch: i64::from(workload.pull_batch),
                suspend_ms: i64::try_from(workload.suspend_ms).unwrap_or(i64::MAX),
                filter: workload.filter,
                slots,
                shared: Arc::clone(&shared),
                hist: hist.clone(),
            };
            handles.push(tokio::spawn(task.run(s)));
        }
        Ok(Consumers { shared, handles })
    }

    /// Count messages stamped from now on.
    pub fn measure_from_now(&self) {
        self.shared
            .measure_from_ns
            .store(mono_ns(), Ordering::Relaxed);
    }

    /// Wait until `expect` messages were counted (or [`DRAIN_TIMEOUT`]),
    /// then stop the consumers and merge what they measured.
    ///
    /// # Errors
    ///
    /// When a consumer task panicked or histograms cannot be merged.
    pub async fn finish(self, expect: u64) -> Result<ConsumeMeasurement> {
        self.wait_and_stop(expect, DRAIN_TIMEOUT, None).await
    }

    /// The drain workload's end: wait until `expect` messages were counted
    /// (or `timeout`), then stop the consumers. `started_ns` (`mono_ns`) is
    /// when the consumers were started: the drain time runs from it to the
    /// last message counted.
    ///
    /// # Errors
    ///
    /// As [`Consumers::finish`].
    pub async fn drain(
        self,
        expect: u64,
        timeout: Duration,
        started_ns: u64,
    ) -> Result<ConsumeMeasurement> {
        self.wait_and_stop(expect, timeout, Some(started_ns)).await
    }

    async fn wait_and_stop(
        self,
        expect: u64,
        timeout: Duration,
        drain_started_ns: Option<u64>,
    ) -> Result<ConsumeMeasurement> {
        let t0 = Instant::now();
        // Bounded by `timeout`.
        while self.shared.counted.load(Ordering::Relaxed) < expect
            && t0.elapsed() < timeout
            && !self.handles.iter().all(|h| h.is_finished())
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let drain_seconds = t0.elapsed().as_secs_f64();
        self.shared.stop.store(true, Ordering::Relaxed);
        let mut m = ConsumeMeasurement {
            consumers: self.handles.len(),
            consumed: 0,
            latency_ns: new_latency_histogram()?,
            errors: 0,
            first_error: None,
            drain_seconds,
            drained: false,
            pulls_found: self.shared.pulls_found.load(Ordering::Relaxed),
            pulls_empty: self.shared.pulls_empty.load(Ordering::Relaxed),
            drain_run_seconds: drain_started_ns.map(|t| {
                let last = self.shared.last_counted_ns.load(Ordering::Relaxed);
                // Nothing counted: the whole wait.
                if last > t {
                    (last - t) as f64 / 1e9
                } else {
                    drain_seconds
                }
            }),
            drain_broker_cpu: None,
            drain_client_cpu: None,
        };
        for h in self.handles {
            let out = h
                .await
                .map_err(|e| BenchError::new(format!("a consumer task failed: {e}")))?;
            m.latency_ns
                .add(&out.hist)
                .map_err(|e| BenchError::new(format!("cannot merge histograms: {e}")))?;
            out.errors.add_to(&mut m.errors, &mut m.first_error);
        }
        m.consumed = m.latency_ns.len();
        m.drained = m.consumed >= expect;
        Ok(m)
    }

    /// Stop the consumers without waiting for anything (warm-up failed).
    pub fn abort(self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for h in self.handles {
            h.abort();
        }
    }
}

/// The max offset of each queue of `workload.topic` (index = queue id; 0
/// where the broker does not know the queue yet).
///
/// # Errors
///
/// When the broker cannot be reached or does not answer.
pub async fn queue_max_offsets(addr: &str, workload: &Workload) -> Result<Vec<i64>> {
    let admin = RemotingClient::with_tls(addr, workload.tls_client()?);
    let mut out = Vec::with_capacity(workload.queues as usize);
    for q in 0..workload.queues {
        let req = RemotingCommand::request(request::GET_MAX_OFFSET)
            .with_ext("topic", &workload.topic)
            .with_ext("queueId", q);
        let resp = match admin.invoke(req, Duration::from_secs(10)).await {
            Ok(r) => r,
            Err(e) => {
                admin.close().await;
                return Err(BenchError::new(format!("GET_MAX_OFFSET on {addr}: {e}")));
            }
        };
        out.push(if resp.code == response::SUCCESS {
            resp.ext_fields
                .opt_i64("offset")
                .ok()
                .flatten()
                .unwrap_or(0)
        } else {
            0
        });
    }
    admin.close().await;
    Ok(out)
}

struct ConsumerTask {
    topic: String,
    /// `maxMsgNums` of every pull.
    pull_batch: i64,
    /// `suspendTimeoutMillis` of every pull.
    suspend_ms: i64,
    /// The subscription every pull carries.
    filter: Filter,
    /// (queue id, next offset); the slot index is the opaque.
    slots: Vec<(u32, i64)>,
    shared: Arc<Shared>,
    hist: Histogram<u64>,
}

impl ConsumerTask {
    fn pull_frame(&self, slot: usize) -> Result<Vec<u8>> {
        let (q, off) = self.slots[slot];
        let mut cmd = RemotingCommand::request(request::PULL_MESSAGE)
            .with_ext("consumerGroup", CONSUMER_GROUP)
            .with_ext("topic", &self.topic)
            .with_ext("queueId", q)
            .with_ext("queueOffset", off)
            .with_ext("maxMsgNums", self.pull_batch)
            .with_ext("sysFlag", FLAG_SUSPEND | FLAG_SUBSCRIPTION)
            .with_ext("commitOffset", 0)
            .with_ext("suspendTimeoutMillis", self.suspend_ms)
            .with_ext("subscription", self.filter.subscription())
            .with_ext("subVersion", 0)
            .with_ext("expressionType", self.filter.expression_type());
        cmd.opaque = slot as i32;
        encode(&cmd).map_err(|e| BenchError::new(format!("encoding a pull: {e}")))
    }

    async fn run(self, stream: ClientStream) -> ConsumerOut {
        match stream {
            ClientStream::Plain(mut s) => {
                let (rd, wr) = s.split();
                self.run_on(rd, wr).await
            }
            ClientStream::Tls(s) => {
                let (rd, wr) = tokio::io::split(*s);
                self.run_on(rd, wr).await
            }
        }
    }

    /// [`ConsumerTask::run`] on the stream's halves.
    async fn run_on<R, W>(mut self, mut rd: R, mut wr: W) -> ConsumerOut
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut out = ConsumerOut {
            hist: self.hist.clone(),
            errors: super::ErrorTally::default(),
        };
        // One pull per queue goes out first.
        let mut outstanding = vec![true; self.slots.len()];
        let mut wbuf = Vec::new();
        for slot in 0..self.slots.len() {
            match self.pull_frame(slot) {
                Ok(f) => wbuf.extend_from_slice(&f),
                Err(e) => {
                    out.error(e.to_string());
                    return out;
                }
            }
        }
        let mut rbuf: Vec<u8> = Vec::with_capacity(256 * 1024);
        // Bounded: each pass waits at most POLL_STEP and the stop flag ends it.
        while !self.shared.stop.load(Ordering::Relaxed) && out.errors.count < MAX_CONSUME_ERRORS {
            if !wbuf.is_empty() {
                // Flush: a TLS session holds bytes until flushed (a no-op on TCP).
                let written = match wr.write_all(&wbuf).await {
                    Ok(()) => wr.flush().await,
                    Err(e) => Err(e),
                };
                if let Err(e) = written {
                    out.error(format!("consumer connection failed: {e}"));
                    break;
                }
                wbuf.clear();
            }
            match tokio::time::timeout(POLL_STEP, rd.read_buf(&mut rbuf)).await {
                Err(_) => continue,
                Ok(Ok(0)) => {
                    out.error("the broker closed the consumer connection");
                    break;
                }
                Ok(Err(e)) => {
                    out.error(format!("consumer connection failed: {e}"));
                    break;
                }
                Ok(Ok(_)) => {}
            }
            let now = mono_ns();
            let from = self.shared.measure_from_ns.load(Ordering::Relaxed);
            let mut used = 0usize;
            let mut backoff = false;
            loop {
                let (cmd, n) = match decode(&rbuf[used..], MAX_PULL_FRAME) {
                    Ok(Some(x)) => x,
                    Ok(None) => break,
                    Err(e) => {
                        out.error(format!("bad pull response: {e}"));
                        return out;
                    }
                };
                used += n;
                let slot = cmd.opaque as usize;
                if cmd.flag & 1 == 0 || slot >= outstanding.len() || !outstanding[slot] {
                    continue; // A request from the broker, or not ours.
                }
                outstanding[slot] = false;
                let next = cmd.ext_fields.opt_i64("nextBeginOffset").ok().flatten();
                match cmd.code {
                    response::SUCCESS => {
                        let mut counted = 0u64;
                        for body in record_bodies(&cmd.body) {
                            if let Some(stamp) = body_stamp(body) {
                                if stamp >= from && stamp <= now {
                                    let ns = (now - stamp).clamp(1, MAX_LATENCY_NS);
                                    out.hist.saturating_record(ns);
                                    counted += 1;
                                }
                            }
                        }
                        if counted > 0 {
                            self.shared
                                .last_counted_ns
                                .fetch_max(now, Ordering::Relaxed);
                        }
                        self.shared.counted.fetch_add(counted, Ordering::Relaxed);
                        self.shared.pulls_found.fetch_add(1, Ordering::Relaxed);
                    }
                    response::PULL_NOT_FOUND
                    | response::PULL_RETRY_IMMEDIATELY
                    | response::PULL_OFFSET_MOVED => {
                        self.shared.pulls_empty.fetch_add(1, Ordering::Relaxed);
                    }
                    code => {
                        out.error(format!(
                            "pull answered {code}: {}",
                            cmd.remark.as_deref().unwrap_or("")
                        ));
                        backoff = true;
                    }
                }
                if let Some(next) = next {
                    self.slots[slot].1 = next;
                }
                match self.pull_frame(slot) {
                    Ok(f) => wbuf.extend_from_slice(&f),
                    Err(e) => {
                        out.error(e.to_string());
                        return out;
                    }
                }
                outstanding[slot] = true;
            }
            rbuf.drain(..used);
            if backoff {
                tokio::time::sleep(ERROR_BACKOFF).await;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferromq_engine::message::{encode_message, Message};

    #[test]
    fn bodies_and_stamps_come_out_of_stored_records() {
        let mut buf = Vec::new();
        let hosts: [std::net::SocketAddr; 2] = [
            "127.0.0.1:10911".parse().unwrap(),
            "[::1]:10911".parse().unwrap(),
        ];
        for (i, stamp) in [7u64, 1 << 40].into_iter().enumerate() {
            let mut body = stamp.to_be_bytes().to_vec();
            body.extend_from_slice(&[b'x'; 20][..10 + i]);
            let mut m = Message::new("T", body.clone());
            m.born_host = hosts[i];
            let mut rec = Vec::new();
            encode_message(&m, &hosts[i], &mut rec);
            buf.extend_from_slice(&rec);
        }
        let stamps: Vec<u64> = record_bodies(&buf).filter_map(body_stamp).collect();
        assert_eq!(stamps, vec![7, 1 << 40]);
        let lens: Vec<usize> = record_bodies(&buf).map(<[u8]>::len).collect();
        assert_eq!(lens, vec![18, 19]);
        // A torn tail ends the walk instead of reading past it.
        assert_eq!(record_bodies(&buf[..buf.len() - 3]).count(), 1);
        assert_eq!(body_stamp(&[1, 2, 3]), None);
    }

    #[test]
    fn pulls_carry_the_filter_subscription() {
        for (filter, expr, kind) in [
            (Filter::None, "*", "TAG"),
            (Filter::Tag, "even", "TAG"),
            (Filter::Sql92, "k = 'even'", "SQL92"),
        ] {
            let task = ConsumerTask {
                topic: "T".into(),
                pull_batch: 32,
                suspend_ms: 1000,
                filter,
                slots: vec![(3, 17)],
                shared: Arc::new(Shared {
                    measure_from_ns: AtomicU64::new(0),
                    counted: AtomicU64::new(0),
                    last_counted_ns: AtomicU64::new(0),
                    pulls_found: AtomicU64::new(0),
                    pulls_empty: AtomicU64::new(0),
                    stop: AtomicBool::new(false),
                }),
                hist: new_latency_histogram().unwrap(),
            };
            let f = task.pull_frame(0).unwrap();
            let (cmd, _) = decode(&f, 1 << 20).unwrap().unwrap();
            assert_eq!(cmd.code, request::PULL_MESSAGE);
            assert_eq!(cmd.ext_fields.opt_str("subscription"), Some(expr));
            assert_eq!(cmd.ext_fields.opt_str("expressionType"), Some(kind));
            assert_eq!(
                cmd.ext_fields.get_i64("sysFlag"),
                Ok(i64::from(FLAG_SUSPEND | FLAG_SUBSCRIPTION))
            );
            assert_eq!(cmd.ext_fields.get_i64("queueId"), Ok(3));
            assert_eq!(cmd.ext_fields.get_i64("queueOffset"), Ok(17));
        }
    }

    #[test]
    fn send_stamps_land_at_the_start_of_every_body() {
        use crate::target::broker::SendTemplates;
        use ferromq_server::remoting::codec::decode;
        for batch in [1usize, 3] {
            let mut w = Workload::new(10);
            w.size_bytes = 40;
            w.batch = batch;
            w.queues = 12; // two-digit queue ids change the header length
            w.consumers = 1;
            let t = SendTemplates::new(&w, 1).unwrap();
            assert!(t.stamp);
            for q in [0u32, 11] {
                let mut f = t.frame(q).to_vec();
                t.stamp_into(q, &mut f, 0x0102_0304_0506_0708);
                let (cmd, _) = decode(&f, 1 << 20).unwrap().unwrap();
                let bodies: Vec<&[u8]> = if batch == 1 {
                    vec![&cmd.body[..]]
                } else {
                    // [TOTALSIZE][MAGIC][BODYCRC][FLAG][BODYLEN][BODY][PROPLEN][PROPS]
                    cmd.body
                        .chunks(cmd.body.len() / batch)
                        .map(|c| &c[20..60])
                        .collect()
                };
                assert_eq!(bodies.len(), batch);
                for b in bodies {
                    assert_eq!(
                        body_stamp(b),
                        Some(0x0102_0304_0506_0708),
                        "batch {batch} queue {q}"
                    );
                    assert_eq!(b[8], b'a' + 8, "the rest of the body is untouched");
                }
            }
        }
        let w = Workload::new(10);
        assert!(
            !SendTemplates::new(&w, 1).unwrap().stamp,
            "no consumers, no stamps"
        );
    }
}
