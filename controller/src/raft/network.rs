//! The Raft RPCs between controllers over TCP.
//!
//! A connection starts with the 4-byte preamble [`PREAMBLE`] (`FMQR`) from
//! the client; then each message is a frame `[length: u32 BE][JSON body]`
//! of at most [`MAX_FRAME`] bytes. The client first sends a [`Hello`] (the
//! Raft group, its node id and the node id it means to reach), which the
//! server checks against its own group and id and answers with a
//! [`HelloReply`]; then requests are [`RaftRpc`], answers [`RaftRpcReply`],
//! one answer per request, in order. The hello keeps a controller listed at
//! a wrong address (or a port now used by another group's controller) from
//! mixing two Raft groups: the connection is refused with the reason on
//! both sides. The preamble read as a RocketMQ remoting length is over
//! 1 GiB, far above any remoting frame, so the controller's port can later
//! tell its Raft peers from brokers speaking remoting by the first four
//! bytes.
//!
//! The server side never trusts its peer: a wrong preamble, an oversized
//! frame (over 4 KiB before the hello is accepted), a body that does not
//! decode, or a peer that hangs up close that connection only (logged),
//! never the node; at most [`MAX_CONNECTIONS`] are served at once. The client side connects
//! lazily, bounds each RPC by openraft's time-to-live and drops the
//! connection on any failure; a peer it cannot connect to is reported
//! unreachable (openraft backs off before retrying), any other failure as
//! a network error (retried at once, on a new connection).

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::{ControllerRaft, TypeConfig};

/// The first bytes a Raft client sends on a connection.
pub const PREAMBLE: [u8; 4] = *b"FMQR";

/// The largest frame accepted (and sent): 16 MiB. Snapshots travel in
/// chunks of at most [`SNAPSHOT_CHUNK`] bytes, whose JSON stays below it.
pub const MAX_FRAME: usize = 16 << 20;

/// The snapshot chunk size configured in openraft (1 MiB; as JSON, an array
/// of numbers, up to about 4 MiB).
pub const SNAPSHOT_CHUNK: u64 = 1 << 20;

/// How long a new connection may take to send its preamble and hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest hello accepted (it holds a group name and two ids).
const MAX_HELLO: usize = 4096;

/// Connections served at once; more are closed at accept (a controller
/// has a few peers, each with a connection or two per replication stream).
pub const MAX_CONNECTIONS: usize = 256;

/// The first frame of a connection: who calls whom, in which Raft group.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hello {
    /// The Raft group (`controllerDLegerGroup`).
    pub group: String,
    /// The caller's node id.
    pub from: u64,
    /// The node id the caller means to reach.
    pub to: u64,
}

/// The answer to a [`Hello`]: `Err` with the reason when the server is not
/// the node asked for.
pub type HelloReply = Result<(), String>;

/// Who a server or client is: its group and node id.
#[derive(Clone, Debug)]
pub(crate) struct Identity {
    pub group: Arc<str>,
    pub id: u64,
}

/// A Raft request between controllers.
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftRpc {
    /// Append entries (and heartbeats).
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    /// Request a vote.
    Vote(VoteRequest<u64>),
    /// A chunk of a snapshot.
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
}

/// The answer to a [`RaftRpc`].
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftRpcReply {
    /// To [`RaftRpc::AppendEntries`].
    AppendEntries(Result<AppendEntriesResponse<u64>, RaftError<u64>>),
    /// To [`RaftRpc::Vote`].
    Vote(Result<VoteResponse<u64>, RaftError<u64>>),
    /// To [`RaftRpc::InstallSnapshot`].
    InstallSnapshot(Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>>),
}

/// Writes one frame.
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, body: &[u8]) -> io::Result<()> {
    if body.len() > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("frame of {} bytes exceeds {MAX_FRAME}", body.len()),
        ));
    }
    let len = u32::try_from(body.len()).expect("bounded by MAX_FRAME");
    let mut buf = Vec::with_capacity(4 + body.len());
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(body);
    w.write_all(&buf).await?;
    w.flush().await
}

/// Reads one frame of at most [`MAX_FRAME`] bytes; `Ok(None)` on a clean
/// end of stream before a frame.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<Option<Vec<u8>>> {
    read_frame_limited(r, MAX_FRAME).await
}

/// Reads one frame of at most `max` bytes. The body's buffer grows as the
/// bytes arrive: a peer announcing a large frame and stalling holds no
/// large allocation.
async fn read_frame_limited<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds {max}"),
        ));
    }
    let mut body = Vec::with_capacity(len.min(64 << 10));
    r.take(len as u64).read_to_end(&mut body).await?;
    if body.len() != len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("frame cut at {} of {len} bytes", body.len()),
        ));
    }
    Ok(Some(body))
}

/// Where the Raft connections come from: a listener of their own, or
/// connections accepted elsewhere and handed over (a port shared with the
/// controller's remoting server, which looks at the first bytes).
pub(crate) enum Incoming {
    /// Accept on this listener.
    Listener(TcpListener),
    /// Connections handed over, their preamble not yet read; the channel
    /// closing stops the server.
    Handed(mpsc::Receiver<(TcpStream, SocketAddr)>),
}

impl Incoming {
    async fn accept(&mut self) -> Option<io::Result<(TcpStream, SocketAddr)>> {
        match self {
            Incoming::Listener(listener) => Some(listener.accept().await),
            Incoming::Handed(rx) => rx.recv().await.map(Ok),
        }
    }
}

/// Serves the Raft RPCs of `incoming` to `raft` until `stop` turns true (or
/// its sender goes, or handed connections stop coming); then closes the
/// listener and every connection.
pub(crate) async fn serve(
    mut incoming: Incoming,
    raft: ControllerRaft,
    me: Identity,
    mut stop: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        tokio::select! {
            accepted = incoming.accept() => match accepted {
                None => break,
                Some(Ok((_, peer))) if connections.len() >= MAX_CONNECTIONS => {
                    tracing::warn!(%peer, "controller raft connection refused: {MAX_CONNECTIONS} open");
                }
                Some(Ok((stream, peer))) => {
                    let _ = stream.set_nodelay(true);
                    let raft = raft.clone();
                    let stop = stop.clone();
                    let me = me.clone();
                    connections.spawn(async move {
                        if let Err(e) = serve_connection(stream, raft, &me, stop).await {
                            tracing::warn!(%peer, error = %e, "controller raft connection closed");
                        }
                    });
                }
                Some(Err(e)) => {
                    // Out of descriptors and the like: wait a little.
                    tracing::warn!(error = %e, "controller raft accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    break;
                }
            }
        }
    }
    connections.shutdown().await;
}

/// Reads and checks the preamble and the hello; answers the hello.
async fn accept_hello(stream: &mut TcpStream, me: &Identity) -> io::Result<()> {
    let mut preamble = [0u8; 4];
    stream.read_exact(&mut preamble).await?;
    if preamble != PREAMBLE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("not a controller raft peer (preamble {preamble:02x?})"),
        ));
    }
    let hello = read_frame_limited(stream, MAX_HELLO)
        .await?
        .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "no hello"))?;
    let hello: Hello = serde_json::from_slice(&hello).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("undecodable hello: {e}"),
        )
    })?;
    let refusal = if hello.group != *me.group {
        Some(format!(
            "n{} of group {:?} reached n{} of group {:?}",
            hello.from, hello.group, me.id, me.group
        ))
    } else if hello.to != me.id {
        Some(format!(
            "n{} asked for n{} but reached n{} (controllerDLegerPeers differ)",
            hello.from, hello.to, me.id
        ))
    } else {
        None
    };
    let reply: HelloReply = refusal.clone().map_or(Ok(()), Err);
    let body = serde_json::to_vec(&reply).expect("hello reply serializes to JSON");
    write_frame(stream, &body).await?;
    match refusal {
        Some(reason) => Err(io::Error::new(io::ErrorKind::PermissionDenied, reason)),
        None => Ok(()),
    }
}

async fn serve_connection(
    mut stream: TcpStream,
    raft: ControllerRaft,
    me: &Identity,
    mut stop: watch::Receiver<bool>,
) -> io::Result<()> {
    tokio::time::timeout(HELLO_TIMEOUT, accept_hello(&mut stream, me))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no hello"))??;
    loop {
        let frame = tokio::select! {
            frame = read_frame(&mut stream) => frame?,
            _ = stop.changed() => return Ok(()),
        };
        let Some(frame) = frame else {
            return Ok(());
        };
        let rpc: RaftRpc = serde_json::from_slice(&frame).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("undecodable request: {e}"),
            )
        })?;
        let reply = match rpc {
            RaftRpc::AppendEntries(req) => {
                RaftRpcReply::AppendEntries(raft.append_entries(req).await)
            }
            RaftRpc::Vote(req) => RaftRpcReply::Vote(raft.vote(req).await),
            RaftRpc::InstallSnapshot(req) => {
                RaftRpcReply::InstallSnapshot(raft.install_snapshot(req).await)
            }
        };
        let body = serde_json::to_vec(&reply).expect("raft reply serializes to JSON");
        write_frame(&mut stream, &body).await?;
    }
}

/// openraft's network factory: one [`PeerClient`] per target, addressed by
/// the configured peers (`controllerDLegerPeers`), falling back to the
/// address in the membership.
#[derive(Clone)]
pub struct Network {
    me: Identity,
    peers: Arc<BTreeMap<u64, String>>,
}

impl Network {
    /// A factory for node `self_id` of Raft group `group`, reaching its
    /// peers at the given Raft node id → address map.
    pub fn new(group: &str, self_id: u64, peers: Arc<BTreeMap<u64, String>>) -> Self {
        Network {
            me: Identity {
                group: group.into(),
                id: self_id,
            },
            peers,
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> PeerClient {
        let addr = self
            .peers
            .get(&target)
            .cloned()
            .unwrap_or_else(|| node.addr.clone());
        PeerClient {
            me: self.me.clone(),
            target,
            addr,
            conn: None,
        }
    }
}

/// The connection to one peer.
pub struct PeerClient {
    me: Identity,
    target: u64,
    addr: String,
    conn: Option<TcpStream>,
}

enum CallError {
    /// Could not connect: openraft backs off before retrying.
    Unreachable(io::Error),
    /// The connection failed, timed out, or the peer answered garbage:
    /// retried at once (on a new connection; a peer that is down then turns
    /// out unreachable).
    Network(io::Error),
}

impl PeerClient {
    /// One request and its answer. Cancel-safe: the connection is taken out
    /// of `self.conn` for the exchange and put back only once the answer is
    /// read, so a call dropped midway (openraft bounds each RPC with its own
    /// timeout) drops its connection instead of leaving an unread answer
    /// that the next request would take for its own.
    async fn exchange(&mut self, body: &[u8]) -> Result<Vec<u8>, CallError> {
        let mut stream = match self.conn.take() {
            Some(stream) => stream,
            None => {
                let mut stream = TcpStream::connect(&self.addr)
                    .await
                    .map_err(CallError::Unreachable)?;
                self.hello(&mut stream).await?;
                stream
            }
        };
        write_frame(&mut stream, body)
            .await
            .map_err(CallError::Network)?;
        let reply = read_frame(&mut stream)
            .await
            .map_err(CallError::Network)?
            .ok_or_else(|| {
                CallError::Network(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the peer closed the connection",
                ))
            })?;
        self.conn = Some(stream);
        Ok(reply)
    }

    /// Sends the preamble and the hello on a new connection; a refusal is
    /// a network error carrying the server's reason.
    async fn hello(&self, stream: &mut TcpStream) -> Result<(), CallError> {
        stream.set_nodelay(true).map_err(CallError::Network)?;
        stream
            .write_all(&PREAMBLE)
            .await
            .map_err(CallError::Network)?;
        let hello = Hello {
            group: self.me.group.to_string(),
            from: self.me.id,
            to: self.target,
        };
        let body = serde_json::to_vec(&hello).expect("hello serializes to JSON");
        write_frame(stream, &body)
            .await
            .map_err(CallError::Network)?;
        let reply = read_frame(stream)
            .await
            .map_err(CallError::Network)?
            .ok_or_else(|| {
                CallError::Network(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the peer closed the connection at the hello",
                ))
            })?;
        let reply: HelloReply = serde_json::from_slice(&reply).map_err(|e| {
            CallError::Network(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("undecodable hello reply: {e}"),
            ))
        })?;
        reply.map_err(|reason| {
            tracing::warn!(target = self.target, addr = %self.addr, %reason, "controller raft peer refused");
            CallError::Network(io::Error::new(io::ErrorKind::PermissionDenied, reason))
        })
    }

    async fn call(&mut self, rpc: &RaftRpc, ttl: Duration) -> Result<RaftRpcReply, CallError> {
        let body = serde_json::to_vec(rpc).expect("raft request serializes to JSON");
        let result = match tokio::time::timeout(ttl, self.exchange(&body)).await {
            Ok(result) => result,
            Err(_) => Err(CallError::Network(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no answer within {ttl:?}"),
            ))),
        };
        let (target, addr) = (self.target, self.addr.clone());
        let context = move |e: io::Error| {
            io::Error::new(e.kind(), format!("controller n{target} at {addr}: {e}"))
        };
        let reply = match result {
            Ok(reply) => reply,
            Err(e) => {
                self.conn = None;
                return Err(match e {
                    CallError::Unreachable(e) => CallError::Unreachable(context(e)),
                    CallError::Network(e) => CallError::Network(context(e)),
                });
            }
        };
        serde_json::from_slice(&reply).map_err(|e| {
            self.conn = None;
            CallError::Network(context(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("undecodable reply: {e}"),
            )))
        })
    }

    fn error<E: std::error::Error>(
        &self,
        e: CallError,
    ) -> RPCError<u64, BasicNode, RaftError<u64, E>> {
        match e {
            CallError::Unreachable(e) => RPCError::Unreachable(Unreachable::new(&e)),
            CallError::Network(e) => RPCError::Network(NetworkError::new(&e)),
        }
    }

    fn mismatch<E: std::error::Error>(&mut self) -> RPCError<u64, BasicNode, RaftError<u64, E>> {
        self.conn = None;
        let e = io::Error::new(
            io::ErrorKind::InvalidData,
            format!("controller n{} answered another request", self.target),
        );
        RPCError::Network(NetworkError::new(&e))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        match self
            .call(&RaftRpc::AppendEntries(rpc), option.hard_ttl())
            .await
        {
            Ok(RaftRpcReply::AppendEntries(r)) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            Ok(_) => Err(self.mismatch()),
            Err(e) => Err(self.error(e)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>,
    > {
        match self
            .call(&RaftRpc::InstallSnapshot(rpc), option.hard_ttl())
            .await
        {
            Ok(RaftRpcReply::InstallSnapshot(r)) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            Ok(_) => Err(self.mismatch()),
            Err(e) => Err(self.error(e)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        match self.call(&RaftRpc::Vote(rpc), option.hard_ttl()).await {
            Ok(RaftRpcReply::Vote(r)) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            Ok(_) => Err(self.mismatch()),
            Err(e) => Err(self.error(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server that answers bodies starting with `slow` late.
    async fn echo_server() -> (String, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let task = tokio::spawn(async move {
            for _ in 0..16 {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let me = Identity {
                        group: "g".into(),
                        id: 1,
                    };
                    if accept_hello(&mut s, &me).await.is_err() {
                        return;
                    }
                    while let Ok(Some(body)) = read_frame(&mut s).await {
                        if body.starts_with(b"slow") {
                            tokio::time::sleep(Duration::from_millis(300)).await;
                        }
                        if write_frame(&mut s, &body).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (addr, task)
    }

    #[tokio::test]
    async fn a_cancelled_call_never_leaves_its_answer_to_the_next() {
        let (addr, server) = echo_server().await;
        let mut client = PeerClient {
            me: Identity {
                group: "g".into(),
                id: 0,
            },
            target: 1,
            addr: addr.clone(),
            conn: None,
        };
        assert!(matches!(client.exchange(b"one").await, Ok(r) if r == b"one"));
        // Dropped while waiting for its answer, as openraft's own timeout
        // does.
        let cancelled =
            tokio::time::timeout(Duration::from_millis(50), client.exchange(b"slow-two")).await;
        assert!(cancelled.is_err());
        assert!(matches!(client.exchange(b"three").await, Ok(r) if r == b"three"));
        // Another group's node, or another node than the one listed: the
        // hello is refused with the reason.
        for (group, target) in [("other", 1), ("g", 2)] {
            let mut client = PeerClient {
                me: Identity {
                    group: group.into(),
                    id: 0,
                },
                target,
                addr: addr.clone(),
                conn: None,
            };
            match client.exchange(b"x").await {
                Err(CallError::Network(e)) => {
                    assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{e}");
                }
                _ => panic!("a wrong hello must be refused"),
            }
        }
        server.abort();
    }

    #[tokio::test]
    async fn frames_are_bounded() {
        let mut hello_too_big = Vec::new();
        write_frame(&mut hello_too_big, &[b' '; MAX_HELLO + 1])
            .await
            .unwrap();
        assert!(read_frame_limited(&mut &hello_too_big[..], MAX_HELLO)
            .await
            .is_err());
        let mut cut = Vec::new();
        write_frame(&mut cut, b"{\"a\":1}").await.unwrap();
        cut.pop();
        assert_eq!(
            read_frame(&mut &cut[..]).await.unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
        let mut big = Vec::new();
        assert!(write_frame(&mut big, &vec![b' '; MAX_FRAME + 1])
            .await
            .is_err());
        let mut oversized = &((MAX_FRAME + 1) as u32).to_be_bytes()[..];
        assert!(read_frame(&mut oversized).await.is_err());
        let mut empty: &[u8] = &[];
        assert!(read_frame(&mut empty).await.unwrap().is_none());
        let mut framed = Vec::new();
        write_frame(&mut framed, b"{}").await.unwrap();
        assert_eq!(read_frame(&mut &framed[..]).await.unwrap().unwrap(), b"{}");
    }
}
