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
//!   plus `max_requests_per_connection` requests and their answers. Requests the
//!   server sends on its own (oneways: NOTIFY_CONSUMER_IDS_CHANGED,
//!   CHECK_TRANSACTION_STATE) count in the same bytes and are dropped at the
//!   bound (best effort, as RocketMQ bounds them by `serverOnewaySemaphoreValue`);
//!   [`dropped_oneways`] counts them. Requests that await the client's
//!   answer ([`ConnInfo::invoke`]: GET_CONSUMER_RUNNING_INFO and the like)
//!   count there too, and at most [`MAX_PENDING_CALLS`] wait per connection.
//! - at most `max_queued_reply_bytes_total` of responses wait for all writers
//!   together; while that budget is spent every reader pauses (a rate-limited
//!   WARN says so), so many connections each below their own bound cannot add up
//!   to more. A handler may name what an answer will cost before it is computed
//!   ([`Handler::expected_reply_bytes`]), so requests whose answers are large
//!   and slow to build count from when they are read.
//! - a connection with no frame read, nothing written and no request in progress
//!   for `idle_timeout` is closed (`serverChannelMaxIdleTimeSeconds`);
//! - at most `max_connections` connections are open; more are accepted and closed
//!   at once (the client sees the close at once instead of hanging in the
//!   listen backlog, and the backlog keeps draining), with a rate-limited WARN.
//!   Failed accepts (EMFILE) are retried every 50 ms with a rate-limited WARN.
//!
//! The counting behind these bounds lives in `limits.rs`; here a connection
//! runs as named steps: [`serve`] accepts (connection cap), `connection` starts
//! the reply writer (`spawn_writer`) and the read loop (`Reader`: admit a
//! request, wait for room, read a frame, dispatch it), then closes.
//!
//! With [`ServerConfig::tls`] set, an accepted connection first goes through
//! `tls_or_plain` ([`super::tls`]): its first byte decides TLS or plain
//! (permissive) or TLS or close (enforcing), then it runs the same
//! `connection`, generic over its read and write halves. A port without TLS
//! skips that step and splits the socket with `into_split` as before.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use ferromq_engine::sync::LockExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use super::codec::{encode_into, read_frame};
use super::command::RemotingCommand;
use super::limits::{reply_cost, Flow, IdleWatch, Limits, WriterGone};
use super::tls::{Accepted, TlsServer};
use crate::warn_limit::WarnLimiter;

/// One client connection, as a handler sees it.
#[derive(Debug)]
pub struct ConnInfo {
    /// Unique id for the life of the process.
    pub id: u64,
    /// The peer's address.
    pub peer: SocketAddr,
    /// The connection's outgoing frames and their byte count; weak, so the
    /// connection still closes when only handlers remember it.
    out: Option<(mpsc::WeakUnboundedSender<RemotingCommand>, Weak<Flow>)>,
    /// Set just before [`Handler::on_close`] runs; stays set.
    closed: AtomicBool,
    /// Requests this server sent to the peer with [`ConnInfo::invoke`] and
    /// whose answers it awaits, by opaque (at most [`MAX_PENDING_CALLS`]).
    pending: Mutex<HashMap<i32, oneshot::Sender<RemotingCommand>>>,
}

/// At most this many [`ConnInfo::invoke`] calls wait for one peer's answers
/// at once; more are refused with [`CallError::Busy`], so a peer that never
/// answers costs the server a bounded table.
pub const MAX_PENDING_CALLS: usize = 16;

/// Why a request the server sent to a client got no answer
/// ([`ConnInfo::invoke`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The connection is closed (or closed while waiting).
    #[error("the connection is closed")]
    Gone,
    /// The connection's queued bytes or pending calls are at their bound.
    #[error("the connection is busy: too many requests or bytes queued for it")]
    Busy,
    /// No answer came in time.
    #[error("no answer within {0} ms")]
    Timeout(u64),
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
            pending: Mutex::new(HashMap::new()),
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
    /// e.g. NOTIFY_CONSUMER_IDS_CHANGED). It counts in the connection's queued
    /// reply bytes and the server's budget; at either bound it is dropped (logged
    /// at debug, counted in [`dropped_oneways`]), as a peer that reads nothing
    /// must not make the server buffer without end. Returns false when it was
    /// not queued: the connection is gone or the request was dropped.
    pub fn send_oneway(&self, mut req: RemotingCommand) -> bool {
        req.flag = super::command::FLAG_ONEWAY;
        req.opaque = NEXT_SERVER_OPAQUE.fetch_add(1, Ordering::Relaxed);
        match self.queue(req) {
            Ok(()) => true,
            Err(CallError::Busy) => {
                DROPPED_ONEWAYS.fetch_add(1, Ordering::Relaxed);
                false
            }
            Err(_) => false,
        }
    }

    /// Queue a request of the server's for the writer, counted in the
    /// connection's queued bytes and the server's budget (refused at either
    /// bound with [`CallError::Busy`], logged at debug).
    fn queue(&self, req: RemotingCommand) -> Result<(), CallError> {
        let Some((tx, flow)) = self
            .out
            .as_ref()
            .and_then(|(tx, flow)| Some((tx.upgrade()?, flow.upgrade()?)))
        else {
            return Err(CallError::Gone);
        };
        let cost = reply_cost(&req);
        if !flow.try_charge(cost) {
            tracing::debug!(
                peer = %self.peer,
                code = req.code,
                bytes = cost,
                "request to the client dropped: the connection's queued bytes \
                 (serverMaxQueuedReplyBytes) or the server's \
                 (serverMaxQueuedReplyBytesTotal) are at their bound"
            );
            return Err(CallError::Busy);
        }
        if tx.send(req).is_err() {
            flow.release(cost);
            return Err(CallError::Gone);
        }
        Ok(())
    }

    /// Send a request to the peer and wait up to `timeout` for its answer
    /// (RocketMQ's `invokeSync` from the broker to a client: GET_CONSUMER_RUNNING_INFO,
    /// CONSUME_MESSAGE_DIRECTLY, GET_CONSUMER_STATUS_FROM_CLIENT). The answer
    /// is matched by opaque when the connection's reader sees a response frame.
    ///
    /// # Errors
    /// [`CallError::Gone`] when the connection is or becomes closed,
    /// [`CallError::Busy`] at the queued-bytes bounds or with
    /// [`MAX_PENDING_CALLS`] calls already waiting on this peer,
    /// [`CallError::Timeout`] when no answer came in time.
    pub async fn invoke(
        &self,
        mut req: RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand, CallError> {
        req.flag = 0;
        let opaque = NEXT_SERVER_OPAQUE.fetch_add(1, Ordering::Relaxed);
        req.opaque = opaque;
        let (answer_tx, answer_rx) = oneshot::channel();
        {
            let mut pending = self.pending.locked();
            if pending.len() >= MAX_PENDING_CALLS {
                return Err(CallError::Busy);
            }
            pending.insert(opaque, answer_tx);
        }
        // `mark_closed` comes before the table is cleared on close: a call
        // inserted after the clear sees the connection closed here.
        let queued = if self.is_closed() {
            Err(CallError::Gone)
        } else {
            self.queue(req)
        };
        if let Err(e) = queued {
            self.pending.locked().remove(&opaque);
            return Err(e);
        }
        match tokio::time::timeout(timeout, answer_rx).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(_)) => Err(CallError::Gone),
            Err(_) => {
                self.pending.locked().remove(&opaque);
                Err(CallError::Timeout(
                    u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                ))
            }
        }
    }

    /// Hand a response frame from the peer to the [`ConnInfo::invoke`] call
    /// that waits for it; false when none does (it timed out, or the peer
    /// answered something the server never asked).
    fn complete(&self, resp: RemotingCommand) -> bool {
        let waiter = self.pending.locked().remove(&resp.opaque);
        match waiter {
            Some(tx) => tx.send(resp).is_ok(),
            None => false,
        }
    }

    /// Calls still waiting for the peer's answers ([`ConnInfo::invoke`]).
    pub fn pending_calls(&self) -> usize {
        self.pending.locked().len()
    }
}

/// Oneway requests dropped because their connection's queued bytes or the
/// server's budget were at the bound (process-wide).
static DROPPED_ONEWAYS: AtomicU64 = AtomicU64::new(0);

/// Server-initiated oneway requests dropped so far by this process
/// ([`ConnInfo::send_oneway`] at the queued-bytes bounds).
pub fn dropped_oneways() -> u64 {
    DROPPED_ONEWAYS.load(Ordering::Relaxed)
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

    /// What the answer to `req` is expected to cost in queued bytes, counted
    /// against the connection's and the server's bounds from when the request
    /// is read until its answer is queued (then the answer's real size counts).
    /// For requests whose answers are large and slow to build (a name server's
    /// topic list), so that a client pipelining them is paused by the bounds
    /// before the answers exist. Default 0: only queued answers count.
    fn expected_reply_bytes(&self, _req: &RemotingCommand) -> usize {
        0
    }
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

/// Default [`ServerConfig::max_queued_reply_bytes_total`]: 256 MiB, the queues
/// of 64 connections each at its full 4 MiB. A client that reads its answers
/// keeps its queue near empty (the kernel's socket buffers take the bursts), so
/// only peers that read slower than they ask fill it; 256 MiB is small beside
/// the page cache a broker is sized for, and large enough that a few slow
/// consumers do not pause the others. Not derived from the machine's memory:
/// in a container that reads as the host's, which would make the bound
/// meaningless exactly where memory is tight.
pub const DEFAULT_MAX_QUEUED_REPLY_BYTES_TOTAL: usize = 256 * 1024 * 1024;

/// Default [`ServerConfig::idle_timeout`]: RocketMQ's
/// `serverChannelMaxIdleTimeSeconds`, 120 s.
pub const DEFAULT_IDLE_SECS: u64 = 120;

/// Largest idle time honoured (10 years); larger values of
/// `serverChannelMaxIdleTimeSeconds` are clamped to it, as timer arithmetic on
/// them would overflow.
pub const MAX_IDLE_SECS: u64 = 10 * 365 * 24 * 3600;

/// Upper end of the default [`ServerConfig::max_connections`]: 65 536, about the
/// open-file limit RocketMQ's deployment guide asks for. The default itself is
/// [`default_max_connections`], which also stays below the open-file limit.
pub const DEFAULT_MAX_CONNECTIONS: usize = 65_536;

/// Descriptors a broker keeps free of connections for its own files when it
/// derives `serverMaxConnections` (see [`max_connections_for`]): every mapped
/// commitlog, consume queue and index file holds one.
pub const BROKER_FD_RESERVE: u64 = 4096;

/// Descriptors a name server keeps free of connections (it has no store).
pub const NAMESRV_FD_RESERVE: u64 = 64;

/// The connection cap for a soft open-file limit `nofile` keeping `reserve`
/// descriptors (or a quarter of the limit, if more) for everything else: the
/// rest, at most [`DEFAULT_MAX_CONNECTIONS`]; half the limit when the limit is
/// too low for the reserve; at least 1. Connections beyond the limit would fail
/// at accept with EMFILE, and worse, take the descriptors the store needs for
/// its next commitlog or consume-queue file.
pub fn max_connections_for(nofile: u64, reserve: u64) -> usize {
    let reserve = reserve.max(nofile / 4);
    let n = if nofile > reserve.saturating_mul(2) {
        nofile - reserve
    } else {
        nofile / 2
    };
    usize::try_from(n)
        .unwrap_or(usize::MAX)
        .clamp(1, DEFAULT_MAX_CONNECTIONS)
}

/// The default `serverMaxConnections`: [`max_connections_for`] the process's
/// current soft `RLIMIT_NOFILE` (read it after `util::raise_fd_limit`);
/// [`DEFAULT_MAX_CONNECTIONS`] when the limit cannot be read.
pub fn default_max_connections(reserve: u64) -> usize {
    match ferromq_engine::sys::nofile_limits() {
        Ok((soft, _)) => max_connections_for(soft, reserve),
        Err(_) => DEFAULT_MAX_CONNECTIONS,
    }
}

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
    /// Bytes of responses (and server oneways) waiting for all writers together
    /// (`serverMaxQueuedReplyBytesTotal`); at the bound no connection is read
    /// until writers have sent some.
    pub max_queued_reply_bytes_total: usize,
    /// Close a connection that read no frame, wrote nothing and had no request in
    /// progress for this long (`serverChannelMaxIdleTimeSeconds`); `None`: never.
    pub idle_timeout: Option<Duration>,
    /// Connections open at once (`serverMaxConnections`); more are closed at once.
    pub max_connections: usize,
    /// TLS on this port (`tls.server.mode` permissive or enforcing); `None`:
    /// plain only.
    pub tls: Option<TlsServer>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_frame_bytes: super::codec::DEFAULT_MAX_FRAME_BYTES,
            drain_timeout: Duration::from_secs(10),
            max_requests_per_connection: DEFAULT_MAX_REQUESTS_PER_CONNECTION,
            max_queued_reply_bytes: DEFAULT_MAX_QUEUED_REPLY_BYTES,
            max_queued_reply_bytes_total: DEFAULT_MAX_QUEUED_REPLY_BYTES_TOTAL,
            idle_timeout: Some(Duration::from_secs(DEFAULT_IDLE_SECS)),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            tls: None,
        }
    }
}

impl ServerConfig {
    /// `idle_timeout` from `serverChannelMaxIdleTimeSeconds` (0 or less: never;
    /// at most [`MAX_IDLE_SECS`]).
    pub fn idle_from_secs(secs: i64) -> Option<Duration> {
        (secs > 0).then(|| Duration::from_secs((secs as u64).min(MAX_IDLE_SECS)))
    }
}

static NEXT_CONN_ID: AtomicU64 = AtomicU64::new(1);

/// The connection-cap WARN: one per 10 s server-wide.
static CAP_WARN: WarnLimiter = WarnLimiter::new(Duration::from_secs(10));

/// The failed-accept WARN (EMFILE and the like): one per 10 s server-wide.
static ACCEPT_WARN: WarnLimiter = WarnLimiter::new(Duration::from_secs(10));

/// The spent-budget WARN: one per 10 s server-wide.
static BUDGET_WARN: WarnLimiter = WarnLimiter::new(Duration::from_secs(10));

/// Accept connections on `listener` until `shutdown` turns true, then stop
/// reading new requests, wait (up to `drain_timeout`) for in-flight requests to
/// be answered, and return.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    cfg: ServerConfig,
    shutdown: watch::Receiver<bool>,
) {
    serve_incoming(Incoming::Listener(listener), handler, cfg, shutdown).await;
}

/// [`serve`] for connections accepted elsewhere and handed over on
/// `streams` (nothing read from them yet): a port shared with another
/// protocol, told apart by the first bytes of each connection (the
/// controller's port, shared with its Raft peers). Stops when `shutdown`
/// turns true or the channel closes.
pub async fn serve_handed<H: Handler>(
    streams: mpsc::Receiver<(TcpStream, SocketAddr)>,
    handler: Arc<H>,
    cfg: ServerConfig,
    shutdown: watch::Receiver<bool>,
) {
    serve_incoming(Incoming::Handed(streams), handler, cfg, shutdown).await;
}

enum Incoming {
    Listener(TcpListener),
    Handed(mpsc::Receiver<(TcpStream, SocketAddr)>),
}

impl Incoming {
    async fn accept(&mut self) -> Option<std::io::Result<(TcpStream, SocketAddr)>> {
        match self {
            Incoming::Listener(l) => Some(l.accept().await),
            Incoming::Handed(rx) => rx.recv().await.map(Ok),
        }
    }
}

async fn serve_incoming<H: Handler>(
    mut listener: Incoming,
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
                None => break,
                Some(Ok((stream, peer))) => {
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
                    let conn = ConnInfo::detached(id, peer);
                    let (h, lim, stop) = (handler.clone(), limits.clone(), shutdown.clone());
                    let held = (inflight.clone(), slot);
                    match &cfg.tls {
                        None => {
                            let (rd, wr) = stream.into_split();
                            tokio::spawn(connection(rd, wr, conn, h, lim, stop, held));
                        }
                        Some(tls) => {
                            let tls = tls.clone();
                            tokio::spawn(tls_or_plain(tls, stream, conn, h, lim, stop, held));
                        }
                    }
                }
                Some(Err(e)) => {
                    if let Some(since) = ACCEPT_WARN.check_key(0) {
                        tracing::warn!(
                            error = %e,
                            failed_since_last_line = since,
                            "accept failed (retrying every 50 ms)"
                        );
                    }
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

/// How the read loop of a connection ended, which decides how its writer ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// The peer closed, the server stops, the writer is gone or the request
    /// slots closed: the writer may still send what is queued (within the
    /// drain time).
    Flush,
    /// Idle, a socket error or a bad frame: close at once, dropping the
    /// answers still queued for this peer.
    Abort,
}

/// The WARN for connections closed before or during the TLS handshake
/// (enforcing mode's plain clients, failed handshakes): one per 10 s per
/// client address.
static TLS_WARN: WarnLimiter = WarnLimiter::new(Duration::from_secs(10));

/// A connection on a TLS port: tell TLS from plain by its first byte
/// ([`TlsServer::accept`]), then serve it as [`connection`] does, or close
/// it (enforcing mode and a plain client, a failed handshake, shutdown).
/// The plain path keeps `into_split`; the TLS stream is split with
/// `tokio::io::split`.
async fn tls_or_plain<H: Handler>(
    tls: TlsServer,
    stream: TcpStream,
    conn: ConnInfo,
    handler: Arc<H>,
    lim: Limits,
    mut shutdown: watch::Receiver<bool>,
    held: (mpsc::Sender<()>, tokio::sync::OwnedSemaphorePermit),
) {
    let peer = conn.peer;
    let accepted = tokio::select! {
        a = tls.accept(stream, lim.idle) => a,
        _ = shutdown.changed() => return,
    };
    match accepted {
        Accepted::Plain(stream) => {
            let (rd, wr) = stream.into_split();
            connection(rd, wr, conn, handler, lim, shutdown, held).await;
        }
        Accepted::Tls(stream) => {
            tracing::debug!(%peer, "TLS session started");
            let (rd, wr) = tokio::io::split(*stream);
            connection(rd, wr, conn, handler, lim, shutdown, held).await;
        }
        Accepted::Gone(why) => tracing::debug!(%peer, "connection closed: {why}"),
        Accepted::Refused(why) => {
            if let Some(suppressed) = TLS_WARN.check(peer.ip()) {
                tracing::warn!(%peer, suppressed, "connection closed: {why}");
            } else {
                tracing::debug!(%peer, "connection closed: {why}");
            }
        }
    }
}

/// One accepted connection: start its reply writer, run its read loop, then
/// close it ([`Reader::close`]). `inflight` and `_slot` are held until the very
/// end, so shutdown waits for this connection and the connection cap counts it
/// until its writer is done. Generic over the halves: a plain TCP stream's
/// own halves, or a TLS stream's.
async fn connection<H, R, W>(
    rd: R,
    wr: W,
    mut conn: ConnInfo,
    handler: Arc<H>,
    lim: Limits,
    shutdown: watch::Receiver<bool>,
    (inflight, _slot): (mpsc::Sender<()>, tokio::sync::OwnedSemaphorePermit),
) where
    H: Handler,
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel::<RemotingCommand>();
    let flow = Arc::new(Flow::new(lim.max_queued, lim.budget.clone()));
    conn.out = Some((tx.downgrade(), Arc::downgrade(&flow)));
    let conn = Arc::new(conn);
    let writer = spawn_writer(wr, rx, flow.clone(), inflight.clone(), conn.peer);
    let mut reader = Reader {
        requests: Arc::new(Semaphore::new(lim.max_requests)),
        idle: IdleWatch::new(lim.idle),
        frames: 0,
        peer: conn.peer,
        handler,
        conn,
        lim,
        flow,
        tx,
        inflight,
        shutdown,
    };
    let mut rd = BufReader::with_capacity(64 * 1024, rd);
    let ending = reader.read_loop(&mut rd).await;
    reader.close(rd, writer, ending).await;
}

/// The reply writer of a connection: sends the responses (and the server's
/// oneways) queued on `rx` in order, releasing each one's queued bytes as it
/// goes, and flushes when the queue is empty. Ends when every sender is gone
/// (then flushes and shuts the socket down) or a write fails; however it ends,
/// [`WriterGone`] tells the reader.
fn spawn_writer<W: AsyncWrite + Unpin + Send + 'static>(
    wr: W,
    mut rx: mpsc::UnboundedReceiver<RemotingCommand>,
    wflow: Arc<Flow>,
    writer_guard: mpsc::Sender<()>,
    peer: SocketAddr,
) -> JoinHandle<()> {
    tokio::spawn(async move {
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
            // Responses and the server's oneways alike were counted.
            flow.release(reply_cost(&cmd));
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
    })
}

/// The reading side of one connection and what its steps share.
struct Reader<H> {
    handler: Arc<H>,
    conn: Arc<ConnInfo>,
    peer: SocketAddr,
    lim: Limits,
    flow: Arc<Flow>,
    /// The writer's queue; request tasks send their answers on clones.
    tx: mpsc::UnboundedSender<RemotingCommand>,
    /// Held by every request task, so shutdown can wait for them.
    inflight: mpsc::Sender<()>,
    /// One permit per request in progress (`max_requests` in all).
    requests: Arc<Semaphore>,
    idle: IdleWatch,
    /// Frames read so far (for the idle check).
    frames: u64,
    shutdown: watch::Receiver<bool>,
}

impl<H: Handler> Reader<H> {
    /// Read and dispatch requests until the peer closes, the server stops,
    /// the connection idles out or a frame is bad. Before each frame it takes
    /// a request slot ([`Reader::admit`]) and waits for room for the answer
    /// ([`Reader::wait_for_room`]); at either bound the socket is simply not
    /// read, so TCP pushes back on the client.
    async fn read_loop<R: AsyncRead + Unpin>(&mut self, rd: &mut BufReader<R>) -> Ending {
        loop {
            let Some(permit) = self.admit().await else {
                return Ending::Flush;
            };
            if let Err(ending) = self.wait_for_room().await {
                return ending;
            }
            let frame = match self.next_frame(rd).await {
                Ok(frame) => frame,
                Err(ending) => return ending,
            };
            match frame {
                Ok(Some(req)) => {
                    self.frames += 1;
                    if req.is_response() {
                        let opaque = req.opaque;
                        if !self.conn.complete(req) {
                            tracing::debug!(peer = %self.peer, opaque, "ignoring a response no call waits for");
                        }
                        continue;
                    }
                    self.dispatch(req, permit);
                }
                Ok(None) => return Ending::Flush,
                Err(super::codec::CodecError::Io(e)) => {
                    // The peer hung up or the socket failed: not bad input.
                    tracing::debug!(peer = %self.peer, error = %e, "connection ended by a socket error");
                    return Ending::Abort;
                }
                Err(e) => {
                    let peer = self.peer;
                    if let Some(suppressed) = crate::warn_limit::BAD_INPUT.check(peer.ip()) {
                        tracing::warn!(%peer, error = %e, suppressed, "closing connection after a bad frame");
                    } else {
                        tracing::debug!(%peer, error = %e, "closing connection after a bad frame");
                    }
                    return Ending::Abort;
                }
            }
        }
    }

    /// A permit for the next request; at the bound
    /// (`max_requests_per_connection`), stop reading until a request finishes.
    /// `None`: the server stops (or the slots closed).
    async fn admit(&mut self) -> Option<OwnedSemaphorePermit> {
        match self.requests.clone().try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) => tokio::select! {
                p = self.requests.clone().acquire_owned() => p.ok(),
                _ = self.shutdown.changed() => None,
            },
        }
    }

    /// Room for the next answer; at the connection's bound
    /// (`max_queued_reply_bytes`), stop reading until the writer has sent some.
    /// A peer that reads nothing stays here until it is idle. Likewise while
    /// the server's budget is spent, until some writer has sent some (with a
    /// rate-limited WARN). `Err`: close the connection.
    async fn wait_for_room(&mut self) -> Result<(), Ending> {
        let (flow, lim) = (&self.flow, &self.lim);
        loop {
            let own = flow.queued.load(Ordering::Acquire) >= lim.max_queued;
            if !own && !lim.budget.spent() {
                return Ok(());
            }
            let notified = if own {
                flow.room.notified()
            } else {
                lim.budget.room.notified()
            };
            tokio::pin!(notified);
            notified.as_mut().enable();
            if flow.writer_gone.load(Ordering::Acquire) {
                return Err(Ending::Flush);
            }
            let still = if own {
                flow.queued.load(Ordering::Acquire) >= lim.max_queued
            } else {
                lim.budget.spent()
            };
            if !still {
                continue;
            }
            if !own {
                if let Some(since) = BUDGET_WARN.check_key(0) {
                    tracing::warn!(
                        max = lim.budget.max,
                        paused_since_last_line = since,
                        "queued reply bytes of all connections reached \
                         serverMaxQueuedReplyBytesTotal: reading paused until writers catch up"
                    );
                }
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = self.shutdown.changed() => return Err(Ending::Flush),
                _ = self.idle.tick() => {
                    if flow.writer_gone.load(Ordering::Acquire) {
                        return Err(Ending::Flush);
                    }
                    // Paused by the server's budget with nothing of its own
                    // queued, a connection waits for others: not idle.
                    let busy = self.requests.available_permits() + 1 < lim.max_requests
                        || (!own && flow.queued.load(Ordering::Acquire) == 0);
                    if self.idle.idle_now(self.frames, flow.writes.load(Ordering::Relaxed), busy) {
                        tracing::debug!(peer = %self.peer, "closing a connection that reads no replies and sends nothing");
                        return Err(Ending::Abort);
                    }
                }
            }
        }
    }

    /// The next frame, or `Err` when the server stops or the connection has
    /// been idle for `idle_timeout`.
    async fn next_frame<R: AsyncRead + Unpin>(
        &mut self,
        rd: &mut BufReader<R>,
    ) -> Result<Result<Option<RemotingCommand>, super::codec::CodecError>, Ending> {
        let read = read_frame(rd, self.lim.max_frame_bytes);
        tokio::pin!(read);
        loop {
            tokio::select! {
                f = &mut read => return Ok(f),
                _ = self.shutdown.changed() => return Err(Ending::Flush),
                _ = self.idle.tick() => {
                    // The reader holds one permit itself.
                    let busy = self.requests.available_permits() + 1 < self.lim.max_requests;
                    if self.idle.idle_now(self.frames, self.flow.writes.load(Ordering::Relaxed), busy) {
                        tracing::debug!(peer = %self.peer, idle = ?self.lim.idle, "closing an idle connection");
                        return Err(Ending::Abort);
                    }
                }
            }
        }
    }

    /// Run one request in its own task, holding its request slot (`permit`)
    /// until answered; queue the answer (unless oneway) for the writer,
    /// counted in the queued bytes. An answer the handler expects to be large
    /// counts from now on.
    fn dispatch(&self, req: RemotingCommand, permit: OwnedSemaphorePermit) {
        let (opaque, st, oneway) = (req.opaque, req.serialize_type, req.is_oneway());
        let flow = &self.flow;
        let reserved = self.handler.expected_reply_bytes(&req);
        if reserved > 0 {
            flow.charge(reserved);
        }
        let h = self.handler.clone();
        let c = self.conn.clone();
        let tx = self.tx.clone();
        let guard = self.inflight.clone();
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
                    flow.charge(cost);
                    if tx.send(resp).is_err() {
                        flow.release(cost);
                    }
                }
            }
            if reserved > 0 {
                flow.release(reserved);
            }
        });
    }

    /// Close the connection: when the server stops, first let the requests in
    /// progress answer (up to the drain time); then mark it closed, tell the
    /// handler, and end the writer: at once for [`Ending::Abort`], else after
    /// it has sent what is queued (up to the drain time).
    async fn close<R>(self, rd: BufReader<R>, mut writer: JoinHandle<()>, ending: Ending) {
        let Reader {
            handler,
            conn,
            peer,
            lim,
            tx,
            requests,
            shutdown,
            ..
        } = self;
        if *shutdown.borrow() {
            // The server stops, not the peer: let the requests in progress answer
            // first (held pulls are woken by the broker's own stop), or the
            // handler would drop them as requests of a closed connection.
            let all = u32::try_from(lim.max_requests).unwrap_or(u32::MAX);
            let _ = tokio::time::timeout(lim.drain, requests.acquire_many(all)).await;
        }
        conn.mark_closed();
        // Calls waiting for this peer's answers end now (CallError::Gone).
        conn.pending.locked().clear();
        handler.on_close(&conn);
        drop(tx);
        drop(rd);
        if ending == Ending::Abort {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_cap_from_the_open_file_limit() {
        // Plenty of descriptors: all but the reserve (or a quarter), capped.
        assert_eq!(max_connections_for(1 << 20, 4096), DEFAULT_MAX_CONNECTIONS);
        assert_eq!(max_connections_for(65_536, 4096), 49_152);
        assert_eq!(max_connections_for(16_384, 4096), 12_288);
        assert_eq!(max_connections_for(10_000, 64), 7_500);
        // Too few for the reserve: half.
        assert_eq!(max_connections_for(1024, 4096), 512);
        assert_eq!(max_connections_for(1, 4096), 1);
        assert_eq!(max_connections_for(u64::MAX, 4096), DEFAULT_MAX_CONNECTIONS);
        let d = default_max_connections(BROKER_FD_RESERVE);
        assert!((1..=DEFAULT_MAX_CONNECTIONS).contains(&d));
    }

    #[tokio::test]
    async fn idle_time_is_clamped() {
        assert_eq!(ServerConfig::idle_from_secs(0), None);
        assert_eq!(ServerConfig::idle_from_secs(-5), None);
        assert_eq!(
            ServerConfig::idle_from_secs(i64::MAX),
            Some(Duration::from_secs(MAX_IDLE_SECS))
        );
        // Neither the clamped time nor the largest Duration panics the clock.
        let _ = IdleWatch::new(ServerConfig::idle_from_secs(i64::MAX));
        let _ = IdleWatch::new(Some(Duration::MAX));
    }
}
