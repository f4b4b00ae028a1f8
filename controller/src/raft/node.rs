//! A running controller: openraft over the on-disk store, serving the Raft
//! RPCs on its port.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::error::{CheckIsLeaderError, ClientWriteError, InitializeError, RaftError};
use openraft::{BasicNode, Config, RaftMetrics, ServerState, SnapshotPolicy};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::codec::StoreError;
use super::log_store::LogStore;
use super::network::{self, Network};
use super::state_machine::{SmShared, StateMachineStore};
use super::{ControllerRaft, EventBatch};
use crate::event::Event;
use crate::peers::{node_name, ControllerPeers};
use crate::state::State;

/// Raft timing and log compaction of a controller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaftTiming {
    /// The leader's heartbeat interval, in milliseconds.
    pub heartbeat_interval_ms: u64,
    /// The shortest election timeout, in milliseconds.
    pub election_timeout_min_ms: u64,
    /// The longest election timeout, in milliseconds (a random timeout in
    /// `[min, max)` is drawn).
    pub election_timeout_max_ms: u64,
    /// A snapshot is taken every this many applied entries.
    pub snapshot_logs_since_last: u64,
    /// Entries kept in the log behind the snapshot (for followers slightly
    /// behind, which then need no snapshot).
    pub max_in_snapshot_log_to_keep: u64,
}

impl Default for RaftTiming {
    /// Heartbeat every 300 ms, elections after 1–2 s of silence (a failed
    /// controller leader is replaced within about 2 s), a snapshot every
    /// 5,000 entries keeping 1,000 behind it.
    fn default() -> Self {
        RaftTiming {
            heartbeat_interval_ms: 300,
            election_timeout_min_ms: 1000,
            election_timeout_max_ms: 2000,
            snapshot_logs_since_last: 5000,
            max_in_snapshot_log_to_keep: 1000,
        }
    }
}

/// How to start a [`ControllerNode`].
#[derive(Clone, Debug)]
pub struct ControllerNodeConfig {
    /// The Raft group's name (`controllerDLegerGroup`), checked in every
    /// Raft connection's hello: controllers of other groups are refused.
    pub group: String,
    /// This controller's Raft node id.
    pub self_id: u64,
    /// Every controller, this one included: Raft node id → `host:port`.
    pub peers: BTreeMap<u64, String>,
    /// The store directory (`controllerStorePath`).
    pub store_path: PathBuf,
    /// Raft timing.
    pub timing: RaftTiming,
}

impl ControllerNodeConfig {
    /// A configuration from parsed peers, with the default timing.
    pub fn new(peers: ControllerPeers, store_path: impl Into<PathBuf>) -> Self {
        let (self_id, peers) = peers.into_parts();
        ControllerNodeConfig {
            group: "DefaultControllerGroup".to_owned(),
            self_id,
            peers,
            store_path: store_path.into(),
            timing: RaftTiming::default(),
        }
    }
}

/// Why a controller could not start, write or read.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The configuration does not hold together.
    #[error("controller configuration: {0}")]
    Config(String),
    /// The store directory could not be opened (or is corrupt).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The controller's port could not be bound.
    #[error("controller cannot listen on {address}: {source}")]
    Bind {
        /// The configured address.
        address: String,
        /// The error.
        source: io::Error,
    },
    /// The store's Raft membership is not the configured peer list (the
    /// peers list changed, or differs between controllers): the node does
    /// not start rather than run a cluster nobody configured.
    #[error(
        "controllerDLegerPeers lists {configured:?} but the store at {store} was \
         formed with {stored:?}"
    )]
    MembershipMismatch {
        /// The configured node ids.
        configured: Vec<String>,
        /// The node ids in the store.
        stored: Vec<String>,
        /// The store directory.
        store: String,
    },
    /// This controller is not the leader; the leader as far as it knows.
    #[error("this controller is not the leader (leader: {})", leader_address.as_deref().unwrap_or("unknown"))]
    NotLeader {
        /// The leader's node id, if known.
        leader_id: Option<u64>,
        /// The leader's address, if known.
        leader_address: Option<String>,
    },
    /// Raft failed (the node is shutting down, or its storage failed).
    #[error("controller raft: {0}")]
    Raft(String),
}

/// What a [`ControllerNode::client_write`] did, once committed and applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    /// The log index of the entry.
    pub log_index: u64,
    /// For each event, whether it changed the state (a stale event decided at
    /// older epochs is skipped).
    pub changed: Vec<bool>,
}

/// A running controller replica: Raft over the store directory, the Raft
/// RPCs served on its port.
///
/// Writes ([`client_write`](Self::client_write)) and linearizable reads
/// ([`read_state`](Self::read_state)) are the leader's; a follower answers
/// them with [`NodeError::NotLeader`] naming the leader it knows.
pub struct ControllerNode {
    id: u64,
    peers: Arc<BTreeMap<u64, String>>,
    raft: ControllerRaft,
    sm: Arc<SmShared>,
    local_addr: SocketAddr,
    /// How long [`ControllerNode::read_state`] retries a missed quorum.
    read_retry: Duration,
    stop: watch::Sender<bool>,
    server: Mutex<Option<JoinHandle<()>>>,
}

impl ControllerNode {
    /// Starts a controller listening on its own address in the peers.
    pub async fn start(config: ControllerNodeConfig) -> Result<Self, NodeError> {
        let address = config
            .peers
            .get(&config.self_id)
            .cloned()
            .ok_or_else(|| self_not_in_peers(&config))?;
        let listener = bind(&address)
            .await
            .map_err(|source| NodeError::Bind { address, source })?;
        Self::start_with_listener(config, listener).await
    }

    /// Starts a controller serving on `listener` (already bound; its
    /// address should be this controller's in the peers).
    ///
    /// The store directory is opened (a corrupt one is an error), Raft
    /// starts, and a pristine store is initialized with the configured peers
    /// as the voters (every controller does so with the same list, which
    /// openraft allows); a formed store must hold the same voters.
    pub async fn start_with_listener(
        config: ControllerNodeConfig,
        listener: TcpListener,
    ) -> Result<Self, NodeError> {
        let local_addr = listener
            .local_addr()
            .map_err(|e| NodeError::Config(format!("listener address: {e}")))?;
        Self::start_serving(config, network::Incoming::Listener(listener), local_addr).await
    }

    /// Starts a controller whose Raft connections are accepted elsewhere and
    /// handed over on `connections`, as accepted (nothing read from them
    /// yet): for a port shared with the controller's remoting server, which
    /// tells a Raft peer by the first four bytes, [`network::PREAMBLE`].
    /// `local_addr` is the shared port's address. Closing the channel's
    /// sender stops serving Raft connections.
    pub async fn start_with_handed_connections(
        config: ControllerNodeConfig,
        local_addr: SocketAddr,
        connections: mpsc::Receiver<(TcpStream, SocketAddr)>,
    ) -> Result<Self, NodeError> {
        Self::start_serving(config, network::Incoming::Handed(connections), local_addr).await
    }

    async fn start_serving(
        config: ControllerNodeConfig,
        incoming: network::Incoming,
        local_addr: SocketAddr,
    ) -> Result<Self, NodeError> {
        if !config.peers.contains_key(&config.self_id) {
            return Err(self_not_in_peers(&config));
        }
        let log_store = LogStore::open(&config.store_path)?;
        let state_machine = StateMachineStore::open(&config.store_path)?;
        let sm = state_machine.shared();
        let t = &config.timing;
        let raft_config = Config {
            cluster_name: config.group.clone(),
            heartbeat_interval: t.heartbeat_interval_ms,
            election_timeout_min: t.election_timeout_min_ms,
            election_timeout_max: t.election_timeout_max_ms,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(t.snapshot_logs_since_last),
            max_in_snapshot_log_to_keep: t.max_in_snapshot_log_to_keep,
            snapshot_max_chunk_size: network::SNAPSHOT_CHUNK,
            // openraft's 200 ms is short for a 1 MiB chunk as JSON plus
            // the atomic write of the snapshot file.
            install_snapshot_timeout: 3000,
            ..Config::default()
        }
        .validate()
        .map_err(|e| NodeError::Config(e.to_string()))?;
        let peers = Arc::new(config.peers.clone());
        let raft = ControllerRaft::new(
            config.self_id,
            Arc::new(raft_config),
            Network::new(&config.group, config.self_id, peers.clone()),
            log_store,
            state_machine,
        )
        .await
        .map_err(|e| NodeError::Raft(e.to_string()))?;
        let (stop, stop_rx) = watch::channel(false);
        let me = network::Identity {
            group: config.group.as_str().into(),
            id: config.self_id,
        };
        let server = tokio::spawn(network::serve(incoming, raft.clone(), me, stop_rx));
        let node = ControllerNode {
            id: config.self_id,
            peers,
            raft,
            sm,
            local_addr,
            read_retry: Duration::from_millis(config.timing.election_timeout_max_ms),
            stop,
            server: Mutex::new(Some(server)),
        };
        if let Err(e) = node.initialize_or_check(&config).await {
            node.shutdown().await;
            return Err(e);
        }
        tracing::info!(
            id = %node_name(node.id),
            address = %local_addr,
            store = %config.store_path.display(),
            "controller started"
        );
        Ok(node)
    }

    async fn initialize_or_check(&self, config: &ControllerNodeConfig) -> Result<(), NodeError> {
        let initialized = self
            .raft
            .is_initialized()
            .await
            .map_err(|e| NodeError::Raft(e.to_string()))?;
        if !initialized {
            let members: BTreeMap<u64, BasicNode> = config
                .peers
                .iter()
                .map(|(id, addr)| (*id, BasicNode::new(addr)))
                .collect();
            return match self.raft.initialize(members).await {
                Ok(()) => Ok(()),
                // A peer's vote or log reached us first: formed already.
                Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(()),
                Err(e) => Err(NodeError::Raft(e.to_string())),
            };
        }
        let stored: BTreeSet<u64> = self
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .collect();
        let configured: BTreeSet<u64> = config.peers.keys().copied().collect();
        // No membership yet: this node voted (it is "initialized") before
        // its own initialization or the leader's log reached it.
        if !stored.is_empty() && stored != configured {
            return Err(NodeError::MembershipMismatch {
                configured: configured.into_iter().map(node_name).collect(),
                stored: stored.into_iter().map(node_name).collect(),
                store: config.store_path.display().to_string(),
            });
        }
        Ok(())
    }

    /// This controller's Raft node id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The address the Raft RPCs are served on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Whether this controller is the leader now (as its metrics say; a
    /// leader cut off from the others keeps saying so until it learns of a
    /// newer term: use [`read_state`](Self::read_state) for a checked read).
    pub fn is_leader(&self) -> bool {
        let m = self.raft.metrics();
        let m = m.borrow();
        m.state == ServerState::Leader && m.current_leader == Some(self.id)
    }

    /// The leader this controller knows of.
    pub fn leader_id(&self) -> Option<u64> {
        self.raft.metrics().borrow().current_leader
    }

    /// The address of the leader this controller knows of.
    pub fn leader_address(&self) -> Option<String> {
        self.leader_id().and_then(|id| self.peers.get(&id).cloned())
    }

    /// Waits (at most `timeout`) until this controller knows a leader.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Option<u64> {
        self.raft
            .wait(Some(timeout))
            .metrics(|m| m.current_leader.is_some(), "a leader")
            .await
            .ok()
            .and_then(|m| m.current_leader)
    }

    /// Raft's metrics (term, leader, log and applied indexes, ...).
    pub fn metrics(&self) -> RaftMetrics<u64, BasicNode> {
        self.raft.metrics().borrow().clone()
    }

    /// The openraft handle, for what this API does not cover.
    pub fn raft(&self) -> &ControllerRaft {
        &self.raft
    }

    /// Appends `events` (what [`crate::ReplicasInfoManager`] returned for a
    /// request) as one log entry; returns once it is committed and applied
    /// here. Only the leader accepts: others answer
    /// [`NodeError::NotLeader`].
    ///
    /// The events were decided against the leader's state; if that state
    /// moved on meanwhile (another request won), the epoch-checked events
    /// are skipped on apply, which [`Written::changed`] reports.
    pub async fn client_write(&self, events: Vec<Event>) -> Result<Written, NodeError> {
        match self.raft.client_write(EventBatch { events }).await {
            Ok(resp) => Ok(Written {
                log_index: resp.log_id.index,
                changed: resp.data.changed,
            }),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(self.not_leader(f.leader_id))
            }
            Err(e) => Err(NodeError::Raft(e.to_string())),
        }
    }

    /// A linearizable read of the state: the leader confirms its leadership
    /// with a quorum (openraft's `ensure_linearizable`, a read index) and
    /// waits until it has applied up to it, then copies its state. Others
    /// answer [`NodeError::NotLeader`].
    ///
    /// A leader whose confirmation round misses a quorum (a follower slow
    /// or reconnecting) tries again for up to the longest election timeout,
    /// then fails with [`NodeError::Raft`].
    pub async fn read_state(&self) -> Result<State, NodeError> {
        let deadline = Instant::now() + self.read_retry;
        loop {
            let e = match self.raft.ensure_linearizable().await {
                Ok(_) => return Ok(self.sm.state()),
                Err(e) => e,
            };
            if let Some(f) = e.forward_to_leader() {
                return Err(self.not_leader(f.leader_id));
            }
            let quorum_missed = matches!(
                e,
                RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_))
            );
            if !quorum_missed || Instant::now() >= deadline {
                return Err(NodeError::Raft(e.to_string()));
            }
            tokio::time::sleep(self.read_retry / 20).await;
        }
    }

    /// This controller's applied state, without checking it is current (a
    /// follower's may lag; a deposed leader's may be stale).
    pub fn local_state(&self) -> State {
        self.sm.state()
    }

    /// The index of the last entry applied to [`local_state`](Self::local_state).
    pub fn applied_index(&self) -> Option<u64> {
        self.sm.last_applied().map(|id| id.index)
    }

    /// Stops Raft and the RPC server (idempotent). The store directory is
    /// closed once this returns, so a new node may open it.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "controller raft shutdown");
        }
        let server = self.server.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(server) = server {
            let _ = server.await;
        }
    }

    fn not_leader(&self, leader_id: Option<u64>) -> NodeError {
        NodeError::NotLeader {
            leader_id,
            leader_address: leader_id.and_then(|id| self.peers.get(&id).cloned()),
        }
    }
}

impl Drop for ControllerNode {
    /// Stops the RPC server and, inside a Tokio runtime, Raft (in the
    /// background: call [`ControllerNode::shutdown`] to wait for it, e.g.
    /// before reopening the store directory).
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let raft = self.raft.clone();
            runtime.spawn(async move {
                let _ = raft.shutdown().await;
            });
        }
    }
}

fn self_not_in_peers(config: &ControllerNodeConfig) -> NodeError {
    NodeError::Config(format!(
        "self id {} is not in the peers ({})",
        node_name(config.self_id),
        config
            .peers
            .keys()
            .map(|id| node_name(*id))
            .collect::<Vec<_>>()
            .join(",")
    ))
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
