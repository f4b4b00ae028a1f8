//! The connection loop shared by the name server and the broker.
//!
//! Every connection gets a reader (frames in) and a writer task (responses out).
//! Each request runs in its own task, so a slow request (a held long poll) does
//! not stall the others on the same connection; responses go out as they finish,
//! matched by `opaque`. A malformed or oversize frame closes only that connection.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use super::codec::{encode_into, read_frame};
use super::command::RemotingCommand;

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
        }
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

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest frame accepted; larger announcements close the connection.
    pub max_frame_bytes: usize,
    /// How long shutdown waits for in-flight requests.
    pub drain_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_frame_bytes: super::codec::DEFAULT_MAX_FRAME_BYTES,
            drain_timeout: Duration::from_secs(10),
        }
    }
}

static NEXT_CONN_ID: AtomicU64 = AtomicU64::new(1);

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
    loop {
        tokio::select! {
            acc = listener.accept() => match acc {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let id = NEXT_CONN_ID.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%peer, id, "connection accepted");
                    tokio::spawn(connection(
                        stream,
                        ConnInfo::detached(id, peer),
                        handler.clone(),
                        cfg.max_frame_bytes,
                        shutdown.clone(),
                        inflight.clone(),
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

async fn connection<H: Handler>(
    stream: TcpStream,
    mut conn: ConnInfo,
    handler: Arc<H>,
    max_frame_bytes: usize,
    mut shutdown: watch::Receiver<bool>,
    inflight: mpsc::Sender<()>,
) {
    let (rd, wr) = stream.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel::<RemotingCommand>();
    conn.out = Some(tx.downgrade());
    let conn = Arc::new(conn);
    let writer_guard = inflight.clone();
    let peer = conn.peer;
    let writer = tokio::spawn(async move {
        let _guard = writer_guard;
        let mut w = BufWriter::with_capacity(64 * 1024, wr);
        let mut buf = Vec::with_capacity(64 * 1024);
        while let Some(cmd) = rx.recv().await {
            buf.clear();
            if let Err(e) = encode_into(&cmd, &mut buf) {
                tracing::error!(%peer, error = %e, "cannot encode response");
                continue;
            }
            if let Err(e) = w.write_all(&buf).await {
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
    let mut rd = BufReader::with_capacity(64 * 1024, rd);
    let mut bad_frame = false;
    loop {
        let frame = tokio::select! {
            f = read_frame(&mut rd, max_frame_bytes) => f,
            _ = shutdown.changed() => break,
        };
        match frame {
            Ok(Some(req)) => {
                if req.is_response() {
                    tracing::debug!(%peer, opaque = req.opaque, "ignoring a response sent to the server");
                    continue;
                }
                let (opaque, st, oneway) = (req.opaque, req.serialize_type, req.is_oneway());
                let h = handler.clone();
                let c = conn.clone();
                let tx = tx.clone();
                let guard = inflight.clone();
                tokio::spawn(async move {
                    let _guard = guard;
                    if let Some(mut resp) = h.handle(c, req).await {
                        if !oneway {
                            resp.opaque = opaque;
                            resp.serialize_type = st;
                            resp.flag |= super::command::FLAG_RESPONSE;
                            let _ = tx.send(resp);
                        }
                    }
                });
            }
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "closing connection after a bad frame");
                bad_frame = true;
                break;
            }
        }
    }
    handler.on_close(&conn);
    drop(tx);
    if bad_frame {
        // Close at once: answers still pending for this peer are dropped.
        drop(rd);
        writer.abort();
    }
    let _ = writer.await;
    tracing::debug!(%peer, id = conn.id, "connection closed");
}
