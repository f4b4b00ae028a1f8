//! The controller's broker-facing server (RocketMQ 5 controller mode,
//! RIP-44): RocketMQ's controller requests over the remoting protocol, on
//! the controller's own port, which it shares with the controllers' Raft
//! traffic ([`ferromq_controller::raft`]).
//!
//! Each accepted connection is told apart by its first bytes: a Raft peer
//! begins with [`PREAMBLE`] (`FMQR`), a remoting client with a frame length
//! (whose first byte is 0 for any frame under 16 MiB). Raft connections
//! are handed to the [`ControllerNode`], the others to the remoting server
//! ([`crate::remoting::serve_handed`]) with [`ControllerHandler`].
//!
//! How the requests are answered mirrors RocketMQ 5.3's
//! `ControllerRequestProcessor` and `DLedgerController`:
//!
//! * requests that read or change the replicas' state are the leader's:
//!   another controller answers `CONTROLLER_NOT_LEADER`, with the leader's
//!   address in the remark when it knows it;
//! * on the leader, requests that change the state are serialized (one
//!   async mutex): a linearizable read of the state, the state machine
//!   ([`ReplicasInfoManager`](ferromq_controller::ReplicasInfoManager)) decides, its events are replicated
//!   ([`ControllerNode::client_write`]), then the answer goes out;
//! * `BROKER_HEARTBEAT` is answered by every controller (brokers send it to
//!   all of them) and updates its own [`HeartbeatTable`](ferromq_controller::HeartbeatTable);
//!   a broker whose heartbeat connection closes is forgotten at once and the
//!   scanner below runs (RocketMQ's `onBrokerChannelClose`);
//! * every `scanNotActiveBrokerInterval` ms the leader drops expired
//!   heartbeats and elects a new master for each group whose master is no
//!   longer active while another replica is, through the same serialized
//!   path. The heartbeat table is not replicated, so a controller that just
//!   became the leader waits one heartbeat timeout before its first scan.
//!
//! With `notifyBrokerRoleChanged=true` (the default) an election is
//! followed by NOTIFY_BROKER_ROLE_CHANGED to each replica of the group; a
//! broker takes it as a prompt to ask the leader at once (it does not trust
//! the notice's content), so failover does not wait for its
//! `syncBrokerMetadataPeriod`.
//!
//! Not yet: changing the settings at run time
//! (`UPDATE_CONTROLLER_CONFIG` answers `REQUEST_CODE_NOT_SUPPORTED`;
//! `GET_CONTROLLER_CONFIG` answers the effective settings).

pub mod client;
mod config;
mod handler;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ferromq_controller::raft::network::PREAMBLE;
use ferromq_controller::raft::{ControllerNode, NodeError};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

pub use config::{
    ControllerConfigError, ControllerServerConfig, DEFAULT_SCAN_NOT_ACTIVE_BROKER_INTERVAL_MS, KEYS,
};
pub use handler::ControllerHandler;

use crate::remoting::ServerConfig;

/// How long a new connection may take to send the bytes that tell Raft from
/// remoting.
const SNIFF_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections whose first bytes are awaited at once; more are closed.
const MAX_SNIFFING: usize = 1024;

/// A running controller: Raft, the remoting server and the inactive-master
/// scanner on one port.
pub struct ControllerServer {
    node: Arc<ControllerNode>,
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl ControllerServer {
    /// Binds this controller's address in the peers and starts.
    ///
    /// # Errors
    /// The port cannot be bound, the store cannot be opened, Raft fails to
    /// start.
    pub async fn start(cfg: ControllerServerConfig) -> Result<Self, NodeError> {
        let address = cfg.peers.self_address().to_owned();
        let listener = bind(&address)
            .await
            .map_err(|source| NodeError::Bind { address, source })?;
        Self::start_with_listener(cfg, listener).await
    }

    /// Starts serving on `listener` (bound to this controller's address in
    /// the peers).
    ///
    /// # Errors
    /// The store cannot be opened, Raft fails to start.
    pub async fn start_with_listener(
        cfg: ControllerServerConfig,
        listener: TcpListener,
    ) -> Result<Self, NodeError> {
        let local_addr = listener
            .local_addr()
            .map_err(|e| NodeError::Config(format!("listener address: {e}")))?;
        let (raft_tx, raft_rx) = mpsc::channel(64);
        let (remoting_tx, remoting_rx) = mpsc::channel(64);
        let node = Arc::new(
            ControllerNode::start_with_handed_connections(cfg.node(), local_addr, raft_rx).await?,
        );
        let (stop, stop_rx) = watch::channel(false);
        let handler = Arc::new(ControllerHandler::new(node.clone(), &cfg));
        let tasks = vec![
            tokio::spawn(demux(listener, raft_tx, remoting_tx, stop_rx.clone())),
            tokio::spawn(crate::remoting::serve_handed(
                remoting_rx,
                handler.clone(),
                ServerConfig {
                    drain_timeout: Duration::from_secs(3),
                    ..ServerConfig::default()
                },
                stop_rx.clone(),
            )),
            tokio::spawn(handler.scan_loop(
                Duration::from_millis(cfg.scan_not_active_broker_interval_ms),
                stop_rx,
            )),
        ];
        Ok(ControllerServer {
            node,
            local_addr,
            stop,
            tasks,
        })
    }

    /// Starts the controller as a server process does and announces it on
    /// stdout as `{program} {node} listening on {address}`: the start
    /// shared by `ferromq-controller` and `ferromq-namesrv` with
    /// `enableControllerInNamesrv=true`.
    ///
    /// # Errors
    /// As [`start`](Self::start), as a message for the operator.
    pub async fn launch(cfg: ControllerServerConfig, program: &str) -> Result<Self, String> {
        let node = ferromq_controller::peers::node_name(cfg.peers.self_id());
        let server = Self::start(cfg)
            .await
            .map_err(|e| format!("controller {node}: {e}"))?;
        println!("{program} {node} listening on {}", server.local_addr());
        let _ = std::io::Write::flush(&mut std::io::stdout());
        tracing::info!(%node, local = %server.local_addr(), "controller started");
        Ok(server)
    }

    /// The address served on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The Raft node.
    pub fn node(&self) -> &ControllerNode {
        &self.node
    }

    /// Stops serving, then stops Raft.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        self.node.shutdown().await;
    }
}

/// Accepts on the shared port and hands each connection to Raft or to the
/// remoting server by its first bytes.
async fn demux(
    listener: TcpListener,
    raft: mpsc::Sender<(TcpStream, SocketAddr)>,
    remoting: mpsc::Sender<(TcpStream, SocketAddr)>,
    mut stop: watch::Receiver<bool>,
) {
    let sniffing = Arc::new(Semaphore::new(MAX_SNIFFING));
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Ok(permit) = sniffing.clone().try_acquire_owned() else {
                        tracing::warn!(%peer, "controller: {MAX_SNIFFING} connections not yet identified; closing");
                        continue;
                    };
                    let (raft, remoting) = (raft.clone(), remoting.clone());
                    tokio::spawn(route(stream, peer, raft, remoting, permit));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "controller accept failed");
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
}

async fn route(
    stream: TcpStream,
    peer: SocketAddr,
    raft: mpsc::Sender<(TcpStream, SocketAddr)>,
    remoting: mpsc::Sender<(TcpStream, SocketAddr)>,
    _permit: OwnedSemaphorePermit,
) {
    match tokio::time::timeout(SNIFF_TIMEOUT, is_raft(&stream)).await {
        Ok(Ok(Some(true))) => {
            let _ = raft.send((stream, peer)).await;
        }
        Ok(Ok(Some(false))) => {
            let _ = remoting.send((stream, peer)).await;
        }
        Ok(Ok(None)) => tracing::debug!(%peer, "controller connection closed before a byte"),
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "controller connection failed"),
        Err(_) => {
            tracing::debug!(%peer, "controller connection silent for {SNIFF_TIMEOUT:?}; closed")
        }
    }
}

/// Whether the connection is a Raft peer's, by peeking (nothing is
/// consumed): `None` when it closes first. A first byte other than `F`
/// decides at once (a remoting length starting with `F` would announce a
/// frame over 1 GiB); otherwise the four bytes of the preamble decide.
async fn is_raft(stream: &TcpStream) -> io::Result<Option<bool>> {
    let mut buf = [0u8; 4];
    loop {
        let n = stream.peek(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        if buf[..n] != PREAMBLE[..n] {
            return Ok(Some(false));
        }
        if n == PREAMBLE.len() {
            return Ok(Some(true));
        }
        // A prefix of the preamble: wait for the rest (bounded by the
        // caller's timeout).
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Binds `address` with `SO_REUSEADDR` (a restarted controller rebinds its
/// port while old connections linger in TIME_WAIT).
async fn bind(address: &str) -> io::Result<TcpListener> {
    let mut last = None;
    for addr in tokio::net::lookup_host(address).await? {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        match socket.bind(addr).and_then(|()| socket.listen(1024)) {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("{address} resolves to nothing"),
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    async fn sniff(parts: &[&[u8]]) -> Option<bool> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let parts: Vec<Vec<u8>> = parts.iter().map(|p| p.to_vec()).collect();
        let client = tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            for p in parts {
                s.write_all(&p).await.unwrap();
                s.flush().await.unwrap();
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
            // Held open until the server has decided.
            tokio::time::sleep(Duration::from_millis(200)).await;
        });
        let (server, _) = listener.accept().await.unwrap();
        let decided = tokio::time::timeout(Duration::from_secs(5), is_raft(&server))
            .await
            .expect("decided in time")
            .unwrap();
        // Nothing was consumed: the first bytes are still there.
        if decided.is_some() {
            let mut buf = [0u8; 1];
            assert_eq!(server.peek(&mut buf).await.unwrap(), 1);
        }
        client.await.unwrap();
        decided
    }

    #[tokio::test]
    async fn the_first_bytes_tell_raft_from_remoting() {
        assert_eq!(sniff(&[b"FMQR{}"]).await, Some(true));
        assert_eq!(sniff(&[b"F", b"MQ", b"R"]).await, Some(true));
        assert_eq!(sniff(&[b"\0\0\0\x10"]).await, Some(false));
        assert_eq!(sniff(&[b"FM", b"QX"]).await, Some(false));
        assert_eq!(sniff(&[]).await, None);
    }
}
