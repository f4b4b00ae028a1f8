//! Controllers replicated with Raft, in process on loopback: election,
//! replication of `ReplicasInfoManager`'s events, leader failover, recovery
//! from disk, a single controller, and bad input (a corrupt store, a changed
//! peers list, garbage on the port).
//!
//! Ports are picked by the OS (listeners bound first, then the peers map
//! built from their addresses); every wait is bounded in time.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ferromq_controller::raft::{ControllerNode, ControllerNodeConfig, NodeError, RaftTiming};
use ferromq_controller::*;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

const CLUSTER: &str = "DefaultCluster";
const WAIT: Duration = Duration::from_secs(20);

fn timing() -> RaftTiming {
    RaftTiming {
        heartbeat_interval_ms: 100,
        election_timeout_min_ms: 500,
        election_timeout_max_ms: 1000,
        ..RaftTiming::default()
    }
}

struct Cluster {
    /// Unique per cluster: the tests of this binary run side by side, and a
    /// port one leaves may be picked by another (the hello then refuses).
    group: String,
    dir: TempDir,
    peers: BTreeMap<u64, String>,
    timing: RaftTiming,
    nodes: BTreeMap<u64, ControllerNode>,
    /// The ports of stopped nodes, held (bound, not listening: connections
    /// are refused) until they restart, so no other test takes them.
    reserved: BTreeMap<u64, TcpSocket>,
}

fn next_group() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("test-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

impl Cluster {
    async fn start(n: u64, timing: RaftTiming) -> Cluster {
        let mut listeners = BTreeMap::new();
        for id in 0..n {
            listeners.insert(id, TcpListener::bind("127.0.0.1:0").await.unwrap());
        }
        let peers: BTreeMap<u64, String> = listeners
            .iter()
            .map(|(id, l)| (*id, l.local_addr().unwrap().to_string()))
            .collect();
        let mut cluster = Cluster {
            group: next_group(),
            dir: tempfile::tempdir().unwrap(),
            peers,
            timing,
            nodes: BTreeMap::new(),
            reserved: BTreeMap::new(),
        };
        for (id, listener) in listeners {
            let node = ControllerNode::start_with_listener(cluster.config(id), listener)
                .await
                .unwrap();
            cluster.nodes.insert(id, node);
        }
        cluster
    }

    fn config(&self, id: u64) -> ControllerNodeConfig {
        ControllerNodeConfig {
            group: self.group.clone(),
            self_id: id,
            peers: self.peers.clone(),
            store_path: self.dir.path().join(format!("n{id}")),
            timing: self.timing.clone(),
        }
    }

    /// Restarts a stopped node on its address and directory.
    async fn restart(&mut self, id: u64) {
        assert!(!self.nodes.contains_key(&id));
        let node = ControllerNode::start(self.config(id)).await.unwrap();
        self.reserved.remove(&id);
        self.nodes.insert(id, node);
    }

    async fn stop(&mut self, id: u64) {
        let node = self.nodes.remove(&id).unwrap();
        node.shutdown().await;
        let addr: SocketAddr = self.peers[&id].parse().unwrap();
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket
            .bind(addr)
            .expect("the port of a stopped node reserved at once");
        self.reserved.insert(id, socket);
    }

    async fn stop_all(&mut self) {
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            self.stop(id).await;
        }
    }

    /// Waits until every running node knows the same leader, one of them,
    /// which knows it leads.
    async fn wait_leader(&self) -> u64 {
        let start = Instant::now();
        loop {
            let leaders: Vec<Option<u64>> = self.nodes.values().map(|n| n.leader_id()).collect();
            if let Some(Some(leader)) = leaders.first() {
                if leaders.iter().all(|l| *l == Some(*leader))
                    && self.nodes.get(leader).is_some_and(|n| n.is_leader())
                {
                    return *leader;
                }
            }
            assert!(
                start.elapsed() < WAIT,
                "no agreed leader within {WAIT:?}: {leaders:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn node(&self, id: u64) -> &ControllerNode {
        &self.nodes[&id]
    }

    /// Waits until every running node applied `index`, then checks their
    /// states are equal; returns the state.
    async fn wait_applied_equal(&self, index: u64) -> State {
        let start = Instant::now();
        while !self
            .nodes
            .values()
            .all(|n| n.applied_index().is_some_and(|a| a >= index))
        {
            let applied: Vec<_> = self.nodes.values().map(|n| n.applied_index()).collect();
            assert!(
                start.elapsed() < WAIT,
                "not all applied {index} within {WAIT:?}: {applied:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let states: Vec<State> = self.nodes.values().map(|n| n.local_state()).collect();
        for s in &states[1..] {
            assert_eq!(s, &states[0], "controllers disagree");
        }
        states[0].check_invariants().unwrap();
        states.into_iter().next().unwrap()
    }
}

/// Waits until `node`'s metrics show a snapshot (they follow the state
/// machine closely, not at once).
async fn wait_snapshot(node: &ControllerNode) {
    let start = Instant::now();
    while node.metrics().snapshot.is_none() {
        assert!(
            start.elapsed() < WAIT,
            "n{} has no snapshot: {:?}",
            node.id(),
            node.metrics()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn all_alive(_: &str, _: &str, _: u64) -> bool {
    true
}

/// Registers brokers `ids` of `broker` through the leader, as the
/// controller's request handling will: validate against a linearizable read
/// of the state, append the events. Returns the last log index.
async fn register(leader: &ControllerNode, broker: &str, ids: &[u64]) -> u64 {
    let mut last = 0;
    for &id in ids {
        let state = leader.read_state().await.unwrap();
        let m = ReplicasInfoManager::with_state(ControllerConfig::default(), state);
        let r = m.apply_broker_id(&ApplyBrokerIdRequest {
            cluster_name: CLUSTER.into(),
            broker_name: broker.into(),
            applied_broker_id: id,
            register_check_code: format!("127.0.0.{id}:10911;1"),
        });
        assert!(r.is_success(), "{:?}", r.remark);
        assert_eq!(r.events.len(), 1);
        let written = leader.client_write(r.events).await.unwrap();
        assert_eq!(written.changed, vec![true]);
        last = written.log_index;
    }
    last
}

/// Elects `broker_id` master of `broker` through the leader; returns the
/// log index.
async fn elect(leader: &ControllerNode, broker: &str, broker_id: u64) -> u64 {
    let state = leader.read_state().await.unwrap();
    let m = ReplicasInfoManager::with_state(ControllerConfig::default(), state);
    let r = m.elect_master(
        &ElectMasterRequest::of_admin_trigger(CLUSTER, broker, broker_id),
        &all_alive,
    );
    assert!(r.is_success(), "{:?}", r.remark);
    let written = leader.client_write(r.events).await.unwrap();
    assert!(written.changed.iter().all(|c| *c));
    written.log_index
}

/// The controller-triggered election after `dead` (the master) stopped
/// heartbeating, with unclean elections allowed (no SyncStateSet grew in
/// these tests); returns the log index.
async fn reelect_without(leader: &ControllerNode, broker: &str, dead: u64) -> u64 {
    let state = leader.read_state().await.unwrap();
    let config = ControllerConfig {
        enable_elect_unclean_master: true,
    };
    let m = ReplicasInfoManager::with_state(config, state);
    let alive = move |_: &str, _: &str, id: u64| id != dead;
    let r = m.elect_master(&ElectMasterRequest::of_controller_trigger(broker), &alive);
    assert!(r.is_success(), "{:?}", r.remark);
    let written = leader.client_write(r.events).await.unwrap();
    assert!(written.changed.iter().all(|c| *c));
    written.log_index
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_controllers_elect_a_leader_and_replicate_events_to_all() {
    let started = Instant::now();
    let mut c = Cluster::start(3, timing()).await;
    let leader = c.wait_leader().await;
    eprintln!("leader n{leader} elected in {:?}", started.elapsed());
    register(c.node(leader), "broker-a", &[1, 2, 3]).await;
    let index = elect(c.node(leader), "broker-a", 2).await;
    let state = c.wait_applied_equal(index).await;
    let g = state.group("broker-a").unwrap();
    assert_eq!(g.replicas().len(), 3);
    assert_eq!(g.master_broker_id(), Some(2));
    assert_eq!(g.master_epoch(), 1);
    assert_eq!(g.broker_address(3), Some("127.0.0.3:10911"));
    // The leader's linearizable read is the same state.
    assert_eq!(c.node(leader).read_state().await.unwrap(), state);

    // Two requests decided against the same state (the master died, two
    // elections raced): the first to commit wins, the other's event is
    // skipped on every controller by its epoch check.
    let m = ReplicasInfoManager::with_state(
        ControllerConfig {
            enable_elect_unclean_master: true,
        },
        c.node(leader).read_state().await.unwrap(),
    );
    let dead_master = |_: &str, _: &str, id: u64| id != 2;
    let a = m.elect_master(
        &ElectMasterRequest::of_admin_trigger(CLUSTER, "broker-a", 1),
        &dead_master,
    );
    let b = m.elect_master(
        &ElectMasterRequest::of_admin_trigger(CLUSTER, "broker-a", 3),
        &dead_master,
    );
    assert!(a.is_success() && b.is_success());
    let first = c.node(leader).client_write(a.events).await.unwrap();
    let second = c.node(leader).client_write(b.events).await.unwrap();
    assert_eq!((first.changed, second.changed), (vec![true], vec![false]));
    let state = c.wait_applied_equal(second.log_index).await;
    let g = state.group("broker-a").unwrap();
    assert_eq!((g.master_broker_id(), g.master_epoch()), (Some(1), 2));
    c.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_refuse_writes_and_reads_naming_the_leader() {
    let mut c = Cluster::start(3, timing()).await;
    let leader = c.wait_leader().await;
    let follower = (0..3).find(|id| *id != leader).unwrap();
    let f = c.node(follower);
    assert!(!f.is_leader());
    match f.client_write(vec![]).await {
        Err(NodeError::NotLeader {
            leader_id,
            leader_address,
        }) => {
            assert_eq!(leader_id, Some(leader));
            assert_eq!(leader_address.as_deref(), Some(c.peers[&leader].as_str()));
        }
        other => panic!("{other:?}"),
    }
    match f.read_state().await {
        Err(NodeError::NotLeader { leader_id, .. }) => assert_eq!(leader_id, Some(leader)),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        f.leader_address().as_deref(),
        Some(c.peers[&leader].as_str())
    );
    c.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_shutdown_elects_a_new_leader_and_writes_continue() {
    let mut c = Cluster::start(3, timing()).await;
    let first = c.wait_leader().await;
    register(c.node(first), "broker-a", &[1, 2]).await;
    elect(c.node(first), "broker-a", 1).await;
    let stopped_at = Instant::now();
    c.stop(first).await;
    let second = c.wait_leader().await;
    eprintln!(
        "n{first} stopped, n{second} leads after {:?}",
        stopped_at.elapsed()
    );
    assert_ne!(first, second);
    // The old master died too: elect the other replica, register a third.
    let index = reelect_without(c.node(second), "broker-a", 1).await;
    let index = index.max(register(c.node(second), "broker-a", &[3]).await);
    let state = c.wait_applied_equal(index).await;
    let g = state.group("broker-a").unwrap();
    assert_eq!((g.master_broker_id(), g.master_epoch()), (Some(2), 2));
    assert_eq!(g.replicas().len(), 3);
    // The old leader comes back as a follower and catches up.
    c.restart(first).await;
    c.wait_leader().await;
    assert_eq!(c.wait_applied_equal(index).await, state);
    c.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_of_all_three_recovers_the_state_from_disk() {
    // Snapshots every 8 entries, keeping 2 behind: recovery goes through
    // a snapshot, a purged log and a replayed tail.
    let t = RaftTiming {
        snapshot_logs_since_last: 8,
        max_in_snapshot_log_to_keep: 2,
        ..timing()
    };
    let mut c = Cluster::start(3, t).await;
    let leader = c.wait_leader().await;
    let mut index = 0;
    for b in 0..4 {
        let broker = format!("broker-{b}");
        register(c.node(leader), &broker, &[1, 2, 3]).await;
        index = elect(c.node(leader), &broker, 1 + b % 3).await;
    }
    let before = c.wait_applied_equal(index).await;
    assert_eq!(before.len(), 4);
    let snapshots: Vec<_> = c.nodes.values().map(|n| n.metrics().snapshot).collect();
    assert!(
        snapshots.iter().any(|s| s.is_some()),
        "16+ entries with a snapshot every 8: {snapshots:?}"
    );
    c.stop_all().await;

    let restarted = Instant::now();
    for id in 0..3 {
        c.restart(id).await;
    }
    // Before any new write, each node's state is what its disk held.
    let leader = c.wait_leader().await;
    eprintln!("restarted, n{leader} leads after {:?}", restarted.elapsed());
    let after = c.wait_applied_equal(index).await;
    assert_eq!(after, before);
    assert_eq!(c.node(leader).read_state().await.unwrap(), before);
    // And the cluster goes on.
    let index = register(c.node(leader), "broker-9", &[1]).await;
    let state = c.wait_applied_equal(index).await;
    assert_eq!(state.len(), 5);
    c.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_controller_catches_up_by_snapshot() {
    let t = RaftTiming {
        snapshot_logs_since_last: 4,
        max_in_snapshot_log_to_keep: 0,
        ..timing()
    };
    let mut c = Cluster::start(3, t).await;
    let leader = c.wait_leader().await;
    let lagging = (0..3).find(|id| *id != leader).unwrap();
    c.stop(lagging).await;
    let mut index = 0;
    for b in 0..3 {
        index = register(c.node(leader), &format!("broker-{b}"), &[1, 2, 3]).await;
    }
    let state = c.wait_applied_equal(index).await;
    // Snapshots are built (and the log purged) in the background.
    let start = Instant::now();
    let purged = loop {
        let m = c.node(leader).metrics();
        if let Some(purged) = m.purged {
            break purged;
        }
        assert!(start.elapsed() < WAIT, "the leader purged nothing: {m:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    c.restart(lagging).await;
    assert_eq!(c.wait_applied_equal(index).await, state);
    wait_snapshot(c.node(lagging)).await;
    eprintln!("n{lagging} caught up by snapshot (the leader purged up to {purged})");
    c.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_larger_than_a_snapshot_chunk_travels_in_several() {
    let t = RaftTiming {
        snapshot_logs_since_last: 4,
        max_in_snapshot_log_to_keep: 0,
        ..timing()
    };
    let mut c = Cluster::start(3, t).await;
    let leader = c.wait_leader().await;
    let lagging = (0..3).find(|id| *id != leader).unwrap();
    c.stop(lagging).await;
    // 12 entries of 500 new groups each.
    let mut index = 0;
    for batch in 0..12u64 {
        let events = (0..500u64)
            .map(|i| Event::ApplyBrokerId {
                cluster_name: CLUSTER.into(),
                broker_name: format!("broker-{batch}-{i}"),
                broker_address: format!("10.0.{batch}.{i}:10911"),
                new_broker_id: 1,
                register_check_code: format!("10.0.{batch}.{i}:10911;1700000000000"),
            })
            .collect();
        let written = c.node(leader).client_write(events).await.unwrap();
        assert!(written.changed.iter().all(|c| *c));
        index = written.log_index;
    }
    let state = c.wait_applied_equal(index).await;
    assert_eq!(state.len(), 6000);
    let json = state.to_json().len() as u64;
    assert!(
        json > raft::network::SNAPSHOT_CHUNK,
        "state JSON of {json} bytes"
    );
    let start = Instant::now();
    loop {
        let m = c.node(leader).metrics();
        if m.purged.is_some_and(|p| p.index + 4 >= index) {
            break;
        }
        assert!(
            start.elapsed() < WAIT,
            "the leader purged too little: {m:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let restarted = Instant::now();
    c.restart(lagging).await;
    assert_eq!(c.wait_applied_equal(index).await, state);
    wait_snapshot(c.node(lagging)).await;
    eprintln!(
        "n{lagging} installed a {json}-byte snapshot in {:?}",
        restarted.elapsed()
    );
    c.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_controller_from_rocketmq_properties_works_and_recovers() {
    // As configured in RocketMQ 5: controllerDLegerPeers=n0-<addr>,
    // controllerDLegerSelfId=n0, controllerStorePath.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let peers = format!("n0-{}", listener.local_addr().unwrap());
    let peers = ControllerPeers::parse(&peers, "n0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = ControllerNodeConfig::new(peers.clone(), dir.path().join("n0"));
    config.timing = timing();
    config.group = next_group();
    let node = ControllerNode::start_with_listener(config.clone(), listener)
        .await
        .unwrap();
    assert_eq!(node.local_addr().to_string(), peers.self_address());
    let mut c = Cluster {
        group: config.group.clone(),
        dir,
        peers: peers.peers().clone(),
        timing: timing(),
        nodes: BTreeMap::from([(0, node)]),
        reserved: BTreeMap::new(),
    };
    assert_eq!(c.config(0).store_path, config.store_path);
    assert_eq!(c.wait_leader().await, 0);
    register(c.node(0), "broker-a", &[1, 2]).await;
    let index = elect(c.node(0), "broker-a", 1).await;
    let state = c.wait_applied_equal(index).await;
    assert_eq!(state.group("broker-a").unwrap().master_broker_id(), Some(1));
    c.stop(0).await;
    c.restart(0).await;
    assert_eq!(c.wait_leader().await, 0);
    assert_eq!(c.wait_applied_equal(index).await, state);
    assert_eq!(c.node(0).read_state().await.unwrap(), state);
    c.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_log_file_is_a_clear_error_at_open() {
    let mut c = Cluster::start(1, timing()).await;
    c.wait_leader().await;
    register(c.node(0), "broker-a", &[1, 2, 3]).await;
    c.stop(0).await;
    let path = c.config(0).store_path.join("raft-log");
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() - 10;
    bytes[at] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let err = ControllerNode::start(c.config(0))
        .await
        .err()
        .expect("a corrupt store is refused");
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(matches!(
        err,
        NodeError::Store(raft::StoreError::Corrupt { .. })
    ));
    assert!(
        msg.contains("raft-log") && msg.contains("checksum"),
        "{msg}"
    );
    // The file is left as it was for the operator.
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_peers_list_is_refused_at_start() {
    let mut c = Cluster::start(1, timing()).await;
    c.wait_leader().await;
    c.stop(0).await;
    let mut config = c.config(0);
    config.peers.insert(5, "127.0.0.1:1".into());
    let err = ControllerNode::start(config).await.err().unwrap();
    assert!(matches!(err, NodeError::MembershipMismatch { .. }), "{err}");
    // The self id must be in the peers.
    let mut config = c.config(0);
    config.self_id = 3;
    assert!(matches!(
        ControllerNode::start(config).await,
        Err(NodeError::Config(_))
    ));
    // The right list still starts.
    c.restart(0).await;
    c.wait_leader().await;
    c.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_hangups_on_the_raft_port_do_not_crash_the_node() {
    let mut c = Cluster::start(3, timing()).await;
    let leader = c.wait_leader().await;
    for addr in c.peers.values() {
        // Not the preamble.
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(WAIT, s.read(&mut buf)).await.unwrap();
        assert_eq!(n.unwrap_or(0), 0, "closed without an answer");
        // The preamble, then an oversized frame.
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"FMQR").await.unwrap();
        s.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
        let n = tokio::time::timeout(WAIT, s.read(&mut buf)).await.unwrap();
        assert_eq!(n.unwrap_or(0), 0);
        // The preamble, then a frame of garbage.
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"FMQR").await.unwrap();
        s.write_all(&5u32.to_be_bytes()).await.unwrap();
        s.write_all(b"{{{{{").await.unwrap();
        let n = tokio::time::timeout(WAIT, s.read(&mut buf)).await.unwrap();
        assert_eq!(n.unwrap_or(0), 0);
        // Half a frame, then a hang-up.
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"FMQR\x00\x00\x01\x00{\"Vote\"").await.unwrap();
        drop(s);
    }
    // Everyone still serves: a write commits on all three.
    let index = register(c.node(leader), "broker-a", &[1]).await;
    c.wait_applied_equal(index).await;
    assert_eq!(c.wait_leader().await, leader);
    c.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_answering_garbage_or_hanging_does_not_stop_the_others() {
    // n2 is a fake: each connection gets, in turn, a garbage frame, an
    // oversized length, a hang-up, or silence.
    let fake = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fake_addr = fake.local_addr().unwrap().to_string();
    let fake_task = tokio::spawn(async move {
        let mut held = Vec::new();
        for k in 0..10_000u32 {
            let Ok((mut s, _)) = fake.accept().await else {
                return;
            };
            let mut buf = [0u8; 64];
            let _ = tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await;
            match k % 4 {
                0 => {
                    let _ = s.write_all(b"\x00\x00\x00\x05{{{{{").await;
                }
                1 => {
                    let _ = s.write_all(&u32::MAX.to_be_bytes()).await;
                }
                2 => drop(s),
                _ => held.push(s),
            }
        }
    });
    let mut listeners = BTreeMap::new();
    for id in 0..2u64 {
        listeners.insert(id, TcpListener::bind("127.0.0.1:0").await.unwrap());
    }
    let mut peers: BTreeMap<u64, String> = listeners
        .iter()
        .map(|(id, l)| (*id, l.local_addr().unwrap().to_string()))
        .collect();
    peers.insert(2, fake_addr);
    let mut c = Cluster {
        group: next_group(),
        dir: tempfile::tempdir().unwrap(),
        peers,
        timing: timing(),
        nodes: BTreeMap::new(),
        reserved: BTreeMap::new(),
    };
    for (id, listener) in listeners {
        let node = ControllerNode::start_with_listener(c.config(id), listener)
            .await
            .unwrap();
        c.nodes.insert(id, node);
    }
    let leader = c.wait_leader().await;
    register(c.node(leader), "broker-a", &[1, 2]).await;
    let index = elect(c.node(leader), "broker-a", 1).await;
    // Let the leader keep talking to the fake for a while.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let state = c.wait_applied_equal(index).await;
    assert_eq!(state.group("broker-a").unwrap().master_broker_id(), Some(1));
    assert_eq!(c.wait_leader().await, leader);
    c.stop_all().await;
    fake_task.abort();
}
