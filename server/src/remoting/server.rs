//! The connection loop shared by the name server and the broker.
//!
//! Every connection gets a reader (frames in) and a writer task (responses out).
//! Each request runs in its own task, so a slow request (a held long poll) does
//! not stall the others on the same connection; responses go out as they finish,
//! matched by `opaque`. A malformed or oversize frame closes only that connection.
//!
//! Every peer is bounded ([`ServerConfig`]):
//! - at most `max_requests_per_connection` requests in progress per connection
//!   (a parked long poll is in progress), and at most `max_queued_reply_bytes` of
//!   responses waiting for the writer; at either bound the reader stops reading
//!   that socket until room frees, so TCP pushes back on the client instead of the
//!   server buffering. A connection's memory is thus about `max_queued_reply_bytes`
//!   plus `max_requests_per_connection` requests and their answers.
//! - a connection with no frame read, nothing written and no request in progress
//!   for `idle_timeout` is closed (`serverChannelMaxIdleTimeSeconds`);
//! - at most `max_connections` connections are open; more are accepted and closed
//!   at once (the client sees the close at once instead of hanging in the
//!   listen backlog, and the backlog keeps draining), with a rate-limited WARN.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Notify, Semaphore};
use tokio::time::{Interval, MissedTickBehavior};

use super::codec::{encode_into, read_frame};
use super::command::RemotingCommand;
use crate::warn_limit::WarnLimiter;

/// One client connection, as a handler sees it.
#[derive(Debug)]
pub struct ConnInfo {
    /// Unique id for the life of the process.
    pub id: u64,
    /// The peer's address.
    pub peer: SocketAddr,
    /// The connection's outgoing frames; weak, so the connection still closes
    /// when only handlers remember it.
    out: Option<mpsc::WeakUnboundedSender<RemotingCommand>>,
    /// Set just before [`Handler::on_close`] runs; stays set.
    closed: AtomicBool,
}

/// Opaque ids of requests the server sends to its clients.
static NEXT_SERVER_OPAQUE: AtomicI32 = AtomicI32::new(1);

impl ConnInfo {
    /// A connection record with no channel behind it (for tests and tools):
    /// [`ConnInfo::send_oneway`] on it sends nothing.
    pub fn detached(id: u64, peer: SocketAddr) -> Self {
        ConnInfo {
            id,
            peer,
            out: None,
            closed: AtomicBool::new(false),
        }
    }

    /// Whether the connection has closed ([`Handler::on_close`] has run or is
    /// running). Set before `on_close`, so a request task that reads `false`
    /// under a lock that `on_close` also takes is seen by that `on_close`.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Mark the connection closed (the server does, before `on_close`).
    pub(crate) fn mark_closed(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    /// Send a oneway request to the peer (RocketMQ's broker-to-client calls,
    /// e.g. NOTIFY_CONSUMER_IDS_CHANGED). Returns false when the connection is gone.
    pub fn send_oneway(&self, mut req: RemotingCommand) -> bool {
        let Some(tx) = self.out.as_ref().and_then(|w| w.upgrade()) else {
            return false;
        };
        req.flag = super::command::FLAG_ONEWAY;
        req.opaque = NEXT_SERVER_OPAQUE.fetch_add(1, Ordering::Relaxed);
        tx.send(req).is_ok()
    }
}

/// Serves requests. Implemented by the name server and the broker.
pub trait Handler: Send + Sync + 'static {
    /// Answer one request. `None` sends nothing (for oneway requests the answer
    /// is dropped anyway). The server sets the response's opaque, flag and
    /// serialize type from the request.
    fn handle(
        self: Arc<Self>,
        conn: Arc<ConnInfo>,
        req: RemotingCommand,
    ) -> impl Future<Output = Option<RemotingCommand>> + Send + 'static;

    /// The connection closed (peer went away, bad frame, shutdown).
    fn on_close(&self, _conn: &ConnInfo) {}
}

/// Default [`ServerConfig::max_requests_per_connection`]: 1024. A push consumer
/// keeps one pull in flight (often parked) per queue it owns, which can be hundreds
/// on one connection, and producers pipeline up to a few hundred sends.
pub const DEFAULT_MAX_REQUESTS_PER_CONNECTION: usize = 1024;

/// Default [`ServerConfig::max_queued_reply_bytes`]: 4 MiB. It sits on top of the
/// kernel's socket buffers (a few MiB on Linux), so it only holds back a client
/// that reads slower than it asks, which could not take its answers faster anyway;
/// and it bounds the work a client that never reads can make the server do.
pub const DEFAULT_MAX_QUEUED_REPLY_BYTES: usize = 4 * 1024 * 1024;

/// Default [`ServerConfig::idle_timeout`]: RocketMQ's
/// `serverChannelMaxIdleTimeSeconds`, 120 s.
pub const DEFAULT_IDLE_SECS: u64 = 120;

/// Default [`ServerConfig::max_connections`]: 65 536, about the open-file limit
/// RocketMQ's deployment guide asks for, so the cap only stops a runaway peer.
pub const DEFAULT_MAX_CONNECTIONS: usize = 65_536;

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest frame accepted; larger announcements close the connection.
    pub max_frame_bytes: usize,
    /// How long shutdown waits for in-flight requests.
    pub drain_timeout: Duration,
    /// Requests in progress per connection, parked long polls included
    /// (`serverMaxRequestsPerConnection`); at the bound the connection is not read
    /// until one finishes.
    pub max_requests_per_connection: usize,
    /// Bytes of responses waiting for the writer per connection, counted as body
    /// plus a header estimate (`serverMaxQueuedReplyBytes`); at the bound the
    /// connection is not read until the writer has sent some.
    pub max_queued_reply_bytes: usize,
    /// Close a connection that read no frame, wrote nothing and had no request in
    /// progress for this long (`serverChannelMaxIdleTimeSeconds`); `None`: never.
    pub idle_timeout: Option<Duration>,
    /// Connections open at once (`serverMaxConnections`); more are closed at once.
    pub max_connections: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_frame_bytes: super::codec::DEFAULT_MAX_FRAME_BYTES,
            drain_timeout: Duration::from_secs(10),
            max_requests_per_connection: DEFAULT_MAX_REQUESTS_PER_CONNECTION,
            max_queued_reply_bytes: DEFAULT_MAX_QUEUED_REPLY_BYTES,
            idle_timeout: Some(Duration::from_secs(DEFAULT_IDLE_SECS)),
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

impl ServerConfig {
    /// `idle_timeout` from `serverChannelMaxIdleTimeSeconds` (0 or less: never).
    pub fn idle_from_secs(secs: i64) -> Option<Duration> {
        (secs > 0).then(|| Duration::from_secs(secs as u64))
    }
}

static NEXT_CONN_ID: AtomicU64 = AtomicU64::new(1);

/// The connection-cap WARN: one per 10 s server-wide.
static CAP_WARN: WarnLimiter = WarnLimiter::new(Duration::from_secs(10));

/// Accept connections on `listener` until `shutdown` turns true, then stop
/// reading new requests, wait (up to `drain_timeout`) for in-flight requests to
/// be answered, and return.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    cfg: ServerConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    // Every connection and request task holds a clone of `inflight`; when all
    // are dropped, `drained` yields None.
    let (inflight, mut drained) = mpsc::channel::<()>(1);
    let slots = Arc::new(Semaphore::new(
        cfg.max_connections.clamp(1, Semaphore::MAX_PERMITS),
    ));
    let limits = Limits::new(&cfg);
    loop {
        tokio::select! {
            acc = listener.accept() => match acc {
                Ok((stream, peer)) => {
                    let Ok(slot) = slots.clone().try_acquire_owned() else {
                        if let Some(since) = CAP_WARN.check_key(0) {
                            tracing::warn!(
                                %peer,
                                max = cfg.max_connections,
                                refused_since_last_line = since,
                                "connection limit (serverMaxConnections) reached: closing new connections at once"
                            );
                        }
                        drop(stream);
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let id = NEXT_CONN_ID.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%peer, id, "connection accepted");
                    tokio::spawn(connection(
                        stream,
                        ConnInfo::detached(id, peer),
                        handler.clone(),
                        limits.clone(),
                        shutdown.clone(),
                        (inflight.clone(), slot),
                    ));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    drop(inflight);
    if tokio::time::timeout(cfg.drain_timeout, drained.recv())
        .await
        .is_err()
    {
        tracing::warn!(
            "requests still in flight after {:?}; stopping anyway",
            cfg.drain_timeout
        );
    }
}

/// The per-connection bounds of a [`ServerConfig`].
#[derive(Debug, Clone)]
struct Limits {
    max_frame_bytes: usize,
    max_requests: usize,
    max_queued: usize,
    idle: Option<Duration>,
    drain: Duration,
}

impl Limits {
    fn new(cfg: &ServerConfig) -> Self {
        Limits {
            max_frame_bytes: cfg.max_frame_bytes,
            max_requests: cfg
                .max_requests_per_connection
                .clamp(1, Semaphore::MAX_PERMITS - 1),
            max_queued: cfg.max_queued_reply_bytes.max(1),
            idle: cfg.idle_timeout.filter(|d| !d.is_zero()),
            drain: cfg.drain_timeout,
        }
    }
}

/// What the reader, the request tasks and the writer of one connection share.
struct Flow {
    /// Cost ([`reply_cost`]) of the responses queued for the writer.
    queued: AtomicUsize,
    /// Bound on `queued`.
    max_queued: usize,
    /// The reader waits here for `queued` to drop below the bound.
    room: Notify,
    /// Frames written so far (for the idle check).
    writes: AtomicU64,
    /// The writer has stopped (its socket failed).
    writer_gone: AtomicBool,
}

/// What a queued response counts against [`ServerConfig::max_queued_reply_bytes`]:
/// its body and remark plus an estimate of its header.
fn reply_cost(c: &RemotingCommand) -> usize {
    64 + c.body.len() + c.remark.as_ref().map_or(0, String::len) + 48 * c.ext_fields.len()
}

/// Marks the writer gone (and wakes the reader) however the writer ends.
struct WriterGone(Arc<Flow>);

impl Drop for WriterGone {
    fn drop(&mut self) {
        self.0.writer_gone.store(true, Ordering::Release);
        self.0.room.notify_waiters();
    }
}

/// The idle clock of one connection: ticks every quarter of the idle time; a
/// connection that read no frame, wrote nothing and had no request in progress
/// over four ticks in a row is idle (so it closes between 1 and 1.25 idle times
/// after its last activity). One timer per connection, nothing per frame.
struct IdleWatch {
    tick: Option<Interval>,
    quiet_ticks: u32,
    last: (u64, u64),
}

impl IdleWatch {
    fn new(idle: Option<Duration>) -> Self {
        let tick = idle.map(|d| {
            let every = (d / 4).max(Duration::from_millis(1));
            let mut t = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            t.set_missed_tick_behavior(MissedTickBehavior::Delay);
            t
        });
        IdleWatch {
            tick,
            quiet_ticks: 0,
            last: (0, 0),
        }
    }

    async fn tick(&mut self) {
        match &mut self.tick {
            Some(t) => {
                t.tick().await;
            }
            None => std::future::pending().await,
        }
    }

    /// After a tick: is the connection idle? `frames` read and `writes` done so
    /// far, `busy` when a request is in progress.
    fn idle_now(&mut self, frames: u64, writes: u64, busy: bool) -> bool {
        if busy || (frames, writes) != self.last {
            self.last = (frames, writes);
            self.quiet_ticks = 0;
            return false;
        }
        self.quiet_ticks += 1;
        self.quiet_ticks >= 4
    }
}

async fn connection<H: Handler>(
    stream: TcpStream,
    mut conn: ConnInfo,
    handler: Arc<H>,
    lim: Limits,
    mut shutdown: watch::Receiver<bool>,
    (inflight, _slot): (mpsc::Sender<()>, tokio::sync::OwnedSemaphorePermit),
) {
    let (rd, wr) = stream.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel::<RemotingCommand>();
    conn.out = Some(tx.downgrade());
    let conn = Arc::new(conn);
    let flow = Arc::new(Flow {
        queued: AtomicUsize::new(0),
        max_queued: lim.max_queued,
        room: Notify::new(),
        writes: AtomicU64::new(0),
        writer_gone: AtomicBool::new(false),
    });
    let writer_guard = inflight.clone();
    let peer = conn.peer;
    let wflow = flow.clone();
    let mut writer = tokio::spawn(async move {
        let _guard = writer_guard;
        let flow = WriterGone(wflow);
        let flow = &flow.0;
        let mut w = BufWriter::with_capacity(64 * 1024, wr);
        let mut buf = Vec::with_capacity(64 * 1024);
        while let Some(cmd) = rx.recv().await {
            buf.clear();
            let encoded = encode_into(&cmd, &mut buf);
            let written = match encoded {
                Ok(()) => w.write_all(&buf).await,
                Err(e) => {
                    tracing::error!(%peer, error = %e, "cannot encode response");
                    Ok(())
                }
            };
            if cmd.is_response() {
                let cost = reply_cost(&cmd);
                let before = flow.queued.fetch_sub(cost, Ordering::AcqRel);
                if before >= flow.max_queued && before - cost < flow.max_queued {
                    flow.room.notify_waiters();
                }
            }
            flow.writes.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = written {
                tracing::debug!(%peer, error = %e, "write failed");
                return;
            }
            if rx.is_empty() && w.flush().await.is_err() {
                return;
            }
        }
        let _ = w.flush().await;
        let _ = w.shutdown().await;
    });
    let requests = Arc::new(Semaphore::new(lim.max_requests));
    let mut idle = IdleWatch::new(lim.idle);
    let mut frames = 0u64;
    let mut rd = BufReader::with_capacity(64 * 1024, rd);
    let mut abort_writer = false;
    'conn: loop {
        // A permit for the next request; at the bound, stop reading until a
        // request finishes.
        let permit = match requests.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => tokio::select! {
                p = requests.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
                _ = shutdown.changed() => break,
            },
        };
        // Room for its answer; at the bound, stop reading until the writer has
        // sent some. A peer that reads nothing stays here until it is idle.
        while flow.queued.load(Ordering::Acquire) >= lim.max_queued {
            let notified = flow.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if flow.writer_gone.load(Ordering::Acquire) {
                break 'conn;
            }
            if flow.queued.load(Ordering::Acquire) < lim.max_queued {
                break;
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = shutdown.changed() => break 'conn,
                _ = idle.tick() => {
                    let busy = requests.available_permits() + 1 < lim.max_requests;
                    if idle.idle_now(frames, flow.writes.load(Ordering::Relaxed), busy) {
                        tracing::debug!(%peer, "closing a connection that reads no replies and sends nothing");
                        abort_writer = true;
                        break 'conn;
                    }
                }
            }
        }
        let frame = {
            let read = read_frame(&mut rd, lim.max_frame_bytes);
            tokio::pin!(read);
            loop {
                tokio::select! {
                    f = &mut read => break f,
                    _ = shutdown.changed() => break 'conn,
                    _ = idle.tick() => {
                        // The reader holds one permit itself.
                        let busy = requests.available_permits() + 1 < lim.max_requests;
                        if idle.idle_now(frames, flow.writes.load(Ordering::Relaxed), busy) {
                            tracing::debug!(%peer, idle = ?lim.idle, "closing an idle connection");
                            abort_writer = true;
                            break 'conn;
                        }
                    }
                }
            }
        };
        match frame {
            Ok(Some(req)) => {
                frames += 1;
                if req.is_response() {
                    tracing::debug!(%peer, opaque = req.opaque, "ignoring a response sent to the server");
                    continue;
                }
                let (opaque, st, oneway) = (req.opaque, req.serialize_type, req.is_oneway());
                let h = handler.clone();
                let c = conn.clone();
                let tx = tx.clone();
                let guard = inflight.clone();
                let flow = flow.clone();
                tokio::spawn(async move {
                    let _guard = guard;
                    let _permit = permit;
                    if let Some(mut resp) = h.handle(c, req).await {
                        if !oneway {
                            resp.opaque = opaque;
                            resp.serialize_type = st;
                            resp.flag |= super::command::FLAG_RESPONSE;
                            let cost = reply_cost(&resp);
                            flow.queued.fetch_add(cost, Ordering::AcqRel);
                            if tx.send(resp).is_err() {
                                flow.queued.fetch_sub(cost, Ordering::AcqRel);
                            }
                        }
                    }
                });
            }
            Ok(None) => break,
            Err(e) => {
                if let Some(suppressed) = crate::warn_limit::BAD_INPUT.check(peer.ip()) {
                    tracing::warn!(%peer, error = %e, suppressed, "closing connection after a bad frame");
                } else {
                    tracing::debug!(%peer, error = %e, "closing connection after a bad frame");
                }
                abort_writer = true;
                break;
            }
        }
    }
    conn.mark_closed();
    handler.on_close(&conn);
    drop(tx);
    drop(rd);
    if abort_writer {
        // Close at once: answers still pending for this peer are dropped.
        writer.abort();
        let _ = writer.await;
    } else if tokio::time::timeout(lim.drain, &mut writer).await.is_err() {
        // The peer stopped sending but does not read its answers either.
        writer.abort();
        let _ = writer.await;
    }
    tracing::debug!(%peer, id = conn.id, "connection closed");
}
