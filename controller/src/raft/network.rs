//! The Raft RPCs between controllers over TCP.
//!
//! A connection starts with the 4-byte preamble [`PREAMBLE`] (`FMQR`) from
//! the client; then each request and each response is a frame
//! `[length: u32 BE][JSON body]` of at most [`MAX_FRAME`] bytes. Requests
//! are [`RaftRpc`], answers [`RaftRpcReply`], one answer per request, in
//! order. The preamble read as a RocketMQ remoting length is over 1 GiB, far
//! above any remoting frame, so the controller's port can later tell its
//! Raft peers from brokers speaking remoting by the first four bytes.
//!
//! The server side never trusts its peer: a wrong preamble, an oversized
//! frame, a body that does not decode, or a peer that hangs up close that
//! connection only (logged), never the node. The client side connects
//! lazily, bounds each RPC by openraft's time-to-live, drops the connection
//! on any failure and reports the peer unreachable, so openraft backs off
//! and retries.

use std::collections::BTreeMap;
use std::io;
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
use tokio::sync::watch;
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

/// How long a new connection may take to send its preamble.
const PREAMBLE_TIMEOUT: Duration = Duration::from_secs(10);

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

/// Reads one frame; `Ok(None)` on a clean end of stream before a frame.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds {MAX_FRAME}"),
        ));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    Ok(Some(body))
}

/// Serves the Raft RPCs of `listener` to `raft` until `stop` turns true (or
/// its sender goes); then closes the listener and every connection.
pub(crate) async fn serve(
    listener: TcpListener,
    raft: ControllerRaft,
    mut stop: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let raft = raft.clone();
                    let stop = stop.clone();
                    connections.spawn(async move {
                        if let Err(e) = serve_connection(stream, raft, stop).await {
                            tracing::warn!(%peer, error = %e, "controller raft connection closed");
                        }
                    });
                }
                Err(e) => {
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

async fn serve_connection(
    mut stream: TcpStream,
    raft: ControllerRaft,
    mut stop: watch::Receiver<bool>,
) -> io::Result<()> {
    let mut preamble = [0u8; 4];
    tokio::time::timeout(PREAMBLE_TIMEOUT, stream.read_exact(&mut preamble))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no preamble"))??;
    if preamble != PREAMBLE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("not a controller raft peer (preamble {preamble:02x?})"),
        ));
    }
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
    peers: Arc<BTreeMap<u64, String>>,
}

impl Network {
    /// A factory for the given Raft node id → address map.
    pub fn new(peers: Arc<BTreeMap<u64, String>>) -> Self {
        Network { peers }
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
            target,
            addr,
            conn: None,
        }
    }
}

/// The connection to one peer.
pub struct PeerClient {
    target: u64,
    addr: String,
    conn: Option<TcpStream>,
}

enum CallError {
    /// Not connected, could not connect, or the connection failed.
    Unreachable(io::Error),
    /// The peer answered something else than the answer to the request.
    Protocol(io::Error),
}

impl PeerClient {
    async fn exchange(&mut self, body: &[u8]) -> io::Result<Vec<u8>> {
        if self.conn.is_none() {
            let mut stream = TcpStream::connect(&self.addr).await?;
            stream.set_nodelay(true)?;
            stream.write_all(&PREAMBLE).await?;
            self.conn = Some(stream);
        }
        let stream = self.conn.as_mut().expect("connected above");
        write_frame(stream, body).await?;
        read_frame(stream).await?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the peer closed the connection",
            )
        })
    }

    async fn call(&mut self, rpc: &RaftRpc, ttl: Duration) -> Result<RaftRpcReply, CallError> {
        let body = serde_json::to_vec(rpc).expect("raft request serializes to JSON");
        let result = match tokio::time::timeout(ttl, self.exchange(&body)).await {
            Ok(result) => result,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no answer within {ttl:?}"),
            )),
        };
        let reply = match result {
            Ok(reply) => reply,
            Err(e) => {
                self.conn = None;
                return Err(CallError::Unreachable(io::Error::new(
                    e.kind(),
                    format!("controller n{} at {}: {e}", self.target, self.addr),
                )));
            }
        };
        serde_json::from_slice(&reply).map_err(|e| {
            self.conn = None;
            CallError::Protocol(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "controller n{} at {}: undecodable reply: {e}",
                    self.target, self.addr
                ),
            ))
        })
    }

    fn error<E: std::error::Error>(
        &self,
        e: CallError,
    ) -> RPCError<u64, BasicNode, RaftError<u64, E>> {
        match e {
            CallError::Unreachable(e) => RPCError::Unreachable(Unreachable::new(&e)),
            CallError::Protocol(e) => RPCError::Network(NetworkError::new(&e)),
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
