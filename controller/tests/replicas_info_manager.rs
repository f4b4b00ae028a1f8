//! Scenarios of RocketMQ 5.3's `ReplicasInfoManagerTest` (and the
//! `DefaultElectPolicy` cases it exercises), plus the fencing, election and
//! cleaning cases around them. Every event a request returns is applied, kept
//! in a log, and the state's invariants checked; at the end of each test the
//! log replayed on a fresh state must give the same state.

use std::collections::BTreeSet;

use ferromq_controller::response_code::*;
use ferromq_controller::*;

const CLUSTER: &str = "cluster-a";
const BROKER: &str = "broker-set-a";
const IP: [&str; 3] = ["127.0.0.1:9000", "127.0.0.1:9001", "127.0.0.1:9002"];

fn all_alive(_: &str, _: &str, _: u64) -> bool {
    true
}

struct Harness {
    m: ReplicasInfoManager,
    log: Vec<Event>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        // Replay: the same events on a fresh state give the same state.
        let mut replayed = State::new();
        apply_all(&mut replayed, &self.log);
        assert_eq!(&replayed, self.m.state(), "replayed log differs");
        // Snapshot: the state through JSON is the same state.
        let back = State::from_json(&self.m.state().to_json()).unwrap();
        assert_eq!(&back, self.m.state(), "snapshot round trip differs");
    }
}

impl Harness {
    fn new() -> Self {
        Self::with_config(ControllerConfig::default())
    }

    fn with_config(config: ControllerConfig) -> Self {
        Harness {
            m: ReplicasInfoManager::new(config),
            log: Vec::new(),
        }
    }

    fn apply(&mut self, events: &[Event]) {
        for e in events {
            // Events travel as JSON log entries.
            let e = Event::decode(&e.encode()).unwrap();
            self.m.apply(&e);
            self.log.push(e);
            self.m.state().check_invariants().unwrap();
        }
    }

    fn group(&self) -> &BrokerGroup {
        self.m.state().group(BROKER).unwrap()
    }

    fn replicas_info(&self, broker_name: &str) -> ReplicasInfo {
        let r = self
            .m
            .get_sync_state_data(&[broker_name.to_owned()], &all_alive);
        assert!(r.events.is_empty());
        r.body.unwrap().replicas_info_table[broker_name].clone()
    }

    fn replica_info(&self) -> ControllerResult<GetReplicaInfoResponse, SyncStateSet> {
        self.m.get_replica_info(&GetReplicaInfoRequest {
            broker_name: BROKER.into(),
        })
    }

    /// `registerNewBroker`: next id, apply it, register.
    fn register_new_broker(&mut self, address: &str, expect_id: u64, expect_master: Option<u64>) {
        let next = self.m.get_next_broker_id(&GetNextBrokerIdRequest {
            cluster_name: CLUSTER.into(),
            broker_name: BROKER.into(),
        });
        assert_eq!(next.code, SUCCESS);
        assert_eq!(next.response.next_broker_id, expect_id);
        let applied = self.m.apply_broker_id(&ApplyBrokerIdRequest {
            cluster_name: CLUSTER.into(),
            broker_name: BROKER.into(),
            applied_broker_id: expect_id,
            register_check_code: format!("{address};1700000000000"),
        });
        assert_eq!(applied.code, SUCCESS, "{:?}", applied.remark);
        self.apply(&applied.events);
        let info = self.replicas_info(BROKER);
        let replica = info
            .not_in_sync_replicas
            .iter()
            .find(|r| r.broker_id == expect_id)
            .unwrap();
        assert_eq!(replica.broker_address, address);
        assert_eq!(replica.broker_name, BROKER);

        let registered = self.m.register_broker(
            &RegisterBrokerRequest {
                cluster_name: CLUSTER.into(),
                broker_name: BROKER.into(),
                broker_id: expect_id,
                broker_address: address.into(),
            },
            &all_alive,
        );
        assert_eq!(registered.code, SUCCESS);
        assert!(registered.events.is_empty(), "address unchanged");
        self.apply(&registered.events);
        assert_eq!(registered.response.master_broker_id, expect_master);
    }

    /// `brokerElectMaster`: broker `id` asks to be elected.
    fn broker_elect_master(
        &mut self,
        id: u64,
        address: &str,
        first_try: bool,
        expect_elected: bool,
        liveness: &dyn BrokerLiveness,
    ) {
        let before = self.replica_info().response;
        let in_sync = self.replicas_info(BROKER).is_in_sync(id);
        let r = self.m.elect_master(
            &ElectMasterRequest::of_broker_trigger(CLUSTER, BROKER, id),
            liveness,
        );
        self.apply(&r.events);
        let after = self.replica_info().response;
        if first_try {
            assert_eq!(r.code, SUCCESS);
            assert_eq!(r.response.master_epoch, Some(1));
            assert_eq!(r.response.sync_state_set_epoch, Some(1));
            assert_eq!(r.response.master_address.as_deref(), Some(address));
            assert_eq!(r.response.master_broker_id, Some(id));
            assert_eq!(after.master_address.as_deref(), Some(address));
            assert_eq!(after.master_epoch, Some(1));
            assert_eq!(after.master_broker_id, Some(id));
            return;
        }
        if let Some(old) = before.master_broker_id {
            if liveness.is_alive(CLUSTER, BROKER, old) {
                assert_eq!(r.code, CONTROLLER_MASTER_STILL_EXIST);
                assert!(r.events.is_empty());
                assert_eq!(r.response.master_address, before.master_address);
                assert_eq!(r.response.master_epoch, before.master_epoch);
                assert_eq!(r.response.master_broker_id, before.master_broker_id);
                assert_eq!(after.master_broker_id, before.master_broker_id);
                return;
            }
        }
        if in_sync || self.m.config().enable_elect_unclean_master {
            assert_eq!(r.code, SUCCESS);
            assert_eq!(after.master_epoch, before.master_epoch.map(|e| e + 1));
            if expect_elected {
                assert_eq!(r.response.master_address.as_deref(), Some(address));
                assert_eq!(r.response.master_broker_id, Some(id));
                assert_eq!(after.master_address.as_deref(), Some(address));
                assert_eq!(after.master_broker_id, Some(id));
            }
        } else {
            assert_eq!(r.code, CONTROLLER_ELECT_MASTER_FAILED);
        }
    }

    fn alter(
        &self,
        master: u64,
        master_epoch: i32,
        set: &[u64],
        sync_state_set_epoch: i32,
        liveness: &dyn BrokerLiveness,
    ) -> ControllerResult<AlterSyncStateSetResponse, SyncStateSet> {
        self.m.alter_sync_state_set(
            &AlterSyncStateSetRequest {
                broker_name: BROKER.into(),
                master_broker_id: master,
                master_epoch,
            },
            &SyncStateSet {
                sync_state_set: set.iter().copied().collect(),
                sync_state_set_epoch,
            },
            liveness,
        )
    }

    /// `alterNewInSyncSet`: must succeed; the set and its epoch + 1 are stored.
    fn alter_new_in_sync_set(
        &mut self,
        master: u64,
        master_epoch: i32,
        set: &[u64],
        sss_epoch: i32,
    ) {
        let r = self.alter(master, master_epoch, set, sss_epoch, &all_alive);
        assert_eq!(r.code, SUCCESS, "{:?}", r.remark);
        assert_eq!(r.response.new_sync_state_set_epoch, sss_epoch + 1);
        self.apply(&r.events);
        let stored = self.replica_info().body.unwrap();
        assert_eq!(
            stored.sync_state_set,
            set.iter().copied().collect::<BTreeSet<_>>()
        );
        assert_eq!(stored.sync_state_set_epoch, sss_epoch + 1);
        assert_eq!(r.body.unwrap(), stored);
    }

    /// `mockMetaData`: three replicas, 1 elected first, set {1, 2, 3} at epoch 2.
    fn mock_meta_data(&mut self) {
        self.register_new_broker(IP[0], 1, None);
        self.register_new_broker(IP[1], 2, None);
        self.register_new_broker(IP[2], 3, None);
        self.broker_elect_master(1, IP[0], true, true, &all_alive);
        self.broker_elect_master(2, IP[1], false, false, &all_alive);
        self.broker_elect_master(3, IP[2], false, false, &all_alive);
        self.alter_new_in_sync_set(1, 1, &[1, 2, 3], 1);
    }
}

/// A heartbeat at time 0; `timeout` 0 makes the broker inactive at time 1.
fn heartbeat(id: u64, timeout: u64, epoch: i32, max_offset: i64, priority: i32) -> Heartbeat {
    Heartbeat {
        cluster_name: CLUSTER.into(),
        broker_name: BROKER.into(),
        broker_address: IP[id as usize - 1].into(),
        broker_id: id,
        heartbeat_timeout_ms: Some(timeout),
        epoch: Some(epoch),
        max_offset: Some(max_offset),
        confirm_offset: None,
        election_priority: Some(priority),
    }
}

const LONG: u64 = 10_000_000_000;
const NOW: u64 = 1;

fn table(heartbeats: &[Heartbeat]) -> HeartbeatTable {
    let mut t = HeartbeatTable::new();
    for hb in heartbeats {
        t.on_heartbeat(hb, 0);
    }
    t
}

#[test]
fn register_broker_success() {
    let mut h = Harness::new();
    h.mock_meta_data();
    let info = h.replicas_info(BROKER);
    assert_eq!(info.master_broker_id, Some(1));
    assert_eq!(info.master_address.as_deref(), Some(IP[0]));
    assert_eq!(info.master_epoch, 1);
    assert_eq!(info.sync_state_set_epoch, 2);
    assert_eq!(info.in_sync_replicas.len(), 3);
    assert_eq!(info.not_in_sync_replicas.len(), 0);
}

#[test]
fn register_with_master_exist_resp() {
    let mut h = Harness::new();
    h.register_new_broker(IP[0], 1, None);
    h.register_new_broker(IP[1], 2, None);
    h.broker_elect_master(1, IP[0], true, true, &all_alive);
    h.broker_elect_master(2, IP[1], false, false, &all_alive);
    h.register_new_broker(IP[2], 3, Some(1));
    h.broker_elect_master(3, IP[2], false, false, &all_alive);
    let info = h.replicas_info(BROKER);
    assert_eq!(info.master_broker_id, Some(1));
    assert_eq!(info.master_address.as_deref(), Some(IP[0]));
    assert_eq!(info.master_epoch, 1);
    assert_eq!(info.sync_state_set_epoch, 1);
    assert_eq!(info.in_sync_replicas.len(), 1);
    assert_eq!(info.not_in_sync_replicas.len(), 2);
}

#[test]
fn register_with_old_master_inactive() {
    let mut h = Harness::new();
    h.mock_meta_data();
    // Only broker 3 alive: it asks and is elected.
    h.broker_elect_master(3, IP[2], false, true, &|_: &str, _: &str, id: u64| id == 3);
    let info = h.replicas_info(BROKER);
    assert_eq!(info.master_broker_id, Some(3));
    assert_eq!(info.master_address.as_deref(), Some(IP[2]));
    assert_eq!(info.master_epoch, 2);
    assert_eq!(info.sync_state_set_epoch, 3);
    assert_eq!(info.in_sync_replicas.len(), 1);
    assert_eq!(info.not_in_sync_replicas.len(), 2);
}

#[test]
fn elect_master_old_master_still_alive() {
    let mut h = Harness::new();
    h.mock_meta_data();
    let t = table(&[
        heartbeat(1, LONG, 1, 1, 0),
        heartbeat(2, LONG, 1, 2, 0),
        heartbeat(3, LONG, 1, 3, 0),
    ]);
    let r = h.m.elect_master(
        &ElectMasterRequest::of_controller_trigger(BROKER),
        &t.at(NOW),
    );
    assert_eq!(r.code, CONTROLLER_MASTER_STILL_EXIST);
    assert!(r.events.is_empty());
    assert_eq!(r.response.master_broker_id, Some(1));
    assert_eq!(r.response.master_epoch, Some(1));
    assert_eq!(r.body.unwrap().sync_state_set, BTreeSet::from([1, 2, 3]));
}

fn controller_elect(h: &mut Harness, t: &HeartbeatTable) -> ElectMasterResponse {
    let r = h.m.elect_master(
        &ElectMasterRequest::of_controller_trigger(BROKER),
        &t.at(NOW),
    );
    assert_eq!(r.code, SUCCESS, "{:?}", r.remark);
    h.apply(&r.events);
    r.response
}

#[test]
fn elect_master_prefers_higher_epoch() {
    let mut h = Harness::new();
    h.mock_meta_data();
    let t = table(&[
        heartbeat(1, 0, 1, 3, 0),
        heartbeat(2, LONG, 1, 2, 0),
        heartbeat(3, LONG, 0, 3, 0),
    ]);
    let r = controller_elect(&mut h, &t);
    assert_eq!(r.master_address.as_deref(), Some(IP[1]));
    assert_eq!(r.master_broker_id, Some(2));
    assert_eq!(r.master_epoch, Some(2));
}

#[test]
fn elect_master_prefers_higher_offset_when_epochs_are_equal() {
    let mut h = Harness::new();
    h.mock_meta_data();
    let t = table(&[
        heartbeat(1, 0, 1, 3, 0),
        heartbeat(2, LONG, 1, 2, 0),
        heartbeat(3, LONG, 1, 3, 0),
    ]);
    let r = controller_elect(&mut h, &t);
    assert_eq!(r.master_address.as_deref(), Some(IP[2]));
    assert_eq!(r.master_broker_id, Some(3));
    assert_eq!(r.master_epoch, Some(2));
}

#[test]
fn elect_master_prefers_higher_priority_when_epoch_and_offset_are_equal() {
    let mut h = Harness::new();
    h.mock_meta_data();
    let t = table(&[
        heartbeat(1, 0, 1, 3, 3),
        heartbeat(2, LONG, 1, 3, 2),
        heartbeat(3, LONG, 1, 3, 1),
    ]);
    let r = controller_elect(&mut h, &t);
    assert_eq!(r.master_address.as_deref(), Some(IP[2]));
    assert_eq!(r.master_broker_id, Some(3));
    assert_eq!(r.master_epoch, Some(2));
}

#[test]
fn elect_master_then_manual_elections() {
    let mut h = Harness::new();
    h.mock_meta_data();
    let not_1 = |_: &str, _: &str, id: u64| id != 1;
    let r =
        h.m.elect_master(&ElectMasterRequest::of_controller_trigger(BROKER), &not_1);
    assert_eq!(r.code, SUCCESS);
    let new_master = r.response.master_broker_id.unwrap();
    assert_eq!(r.response.master_epoch, Some(2));
    assert_ne!(new_master, 1);
    assert_ne!(r.response.master_address.as_deref(), Some(IP[0]));
    let body = r.body.clone().unwrap();
    assert_eq!(body.sync_state_set, BTreeSet::from([new_master]));
    let members = body.broker_member_group.unwrap();
    assert_eq!(
        (members.cluster.as_str(), members.broker_name.as_str()),
        (CLUSTER, BROKER)
    );
    assert_eq!(members.broker_addrs.len(), 3);
    h.apply(&r.events);
    h.alter_new_in_sync_set(
        new_master,
        2,
        &[1, 2, 3],
        r.response.sync_state_set_epoch.unwrap(),
    );

    // An admin designates broker 1, which is not alive: refused.
    let r1 = h.m.elect_master(
        &ElectMasterRequest::of_admin_trigger(CLUSTER, BROKER, 1),
        &not_1,
    );
    assert_eq!(r1.code, CONTROLLER_ELECT_MASTER_FAILED);
    assert!(r1.events.is_empty());

    // An admin designates the current, alive master: it stays.
    let r2 = h.m.elect_master(
        &ElectMasterRequest::of_admin_trigger(CLUSTER, BROKER, new_master),
        &all_alive,
    );
    assert_eq!(r2.code, CONTROLLER_MASTER_STILL_EXIST);

    // An admin designates broker 1 while the master is dead: elected.
    let not_master = |_: &str, _: &str, id: u64| id != new_master;
    let r3 = h.m.elect_master(
        &ElectMasterRequest::of_admin_trigger(CLUSTER, BROKER, 1),
        &not_master,
    );
    assert_eq!(r3.code, SUCCESS);
    assert_eq!(r3.response.master_broker_id, Some(1));
    assert_eq!(r3.response.master_address.as_deref(), Some(IP[0]));
    assert_eq!(r3.response.master_epoch, Some(3));
    h.apply(&r3.events);
    assert_eq!(h.group().master_broker_id(), Some(1));
}

#[test]
fn manual_elect_switches_an_alive_master() {
    let mut h = Harness::new();
    h.mock_meta_data();
    let r = h.m.elect_master(
        &ElectMasterRequest::of_admin_trigger(CLUSTER, BROKER, 2),
        &all_alive,
    );
    assert_eq!(r.code, SUCCESS);
    h.apply(&r.events);
    let g = h.group();
    assert_eq!(g.master_broker_id(), Some(2));
    assert_eq!((g.master_epoch(), g.sync_state_set_epoch()), (2, 3));
    assert_eq!(g.sync_state_set(), &BTreeSet::from([2]));
    // A broker outside the set cannot be designated (clean election only).
    let r = h.m.elect_master(
        &ElectMasterRequest::of_admin_trigger(CLUSTER, BROKER, 3),
        &all_alive,
    );
    assert_eq!(r.code, CONTROLLER_ELECT_MASTER_FAILED);
}

#[test]
fn all_replicas_shutdown_and_restart() {
    let mut h = Harness::new();
    h.mock_meta_data();
    h.alter_new_in_sync_set(1, 1, &[1], 2);
    // The master is gone and the set is {1}: nobody to elect.
    let not_1 = |_: &str, _: &str, id: u64| id != 1;
    let r =
        h.m.elect_master(&ElectMasterRequest::of_controller_trigger(BROKER), &not_1);
    assert_eq!(r.code, CONTROLLER_MASTER_NOT_AVAILABLE);
    assert_eq!(r.events.len(), 1);
    assert!(matches!(
        r.events[0],
        Event::ElectMaster {
            new_master_broker_id: None,
            ..
        }
    ));
    h.apply(&r.events);
    let info = h.replica_info().response;
    assert_eq!(info.master_address, None);
    assert_eq!(info.master_broker_id, None);
    assert_eq!(info.master_epoch, Some(2));
    assert_eq!(
        h.group().sync_state_set(),
        &BTreeSet::from([1]),
        "the set is kept"
    );

    // Broker 1 (the last in-sync replica) restarts and asks: elected, epoch 3.
    let r = h.m.elect_master(
        &ElectMasterRequest::of_broker_trigger(CLUSTER, BROKER, 1),
        &all_alive,
    );
    assert_eq!(r.code, SUCCESS);
    h.apply(&r.events);
    assert_eq!(h.group().master_broker_id(), Some(1));
    assert_eq!(h.group().master_epoch(), 3);

    // A broker-triggered election that finds nobody changes nothing.
    let nobody = |_: &str, _: &str, _: u64| false;
    let r = h.m.elect_master(
        &ElectMasterRequest::of_broker_trigger(CLUSTER, BROKER, 2),
        &nobody,
    );
    assert_eq!(r.code, CONTROLLER_ELECT_MASTER_FAILED);
    assert!(r.events.is_empty());
}

#[test]
fn unclean_election_only_when_enabled() {
    for unclean in [false, true] {
        let mut h = Harness::with_config(ControllerConfig {
            enable_elect_unclean_master: unclean,
        });
        h.mock_meta_data();
        h.alter_new_in_sync_set(1, 1, &[1], 2);
        let only_3 = |_: &str, _: &str, id: u64| id == 3;
        let r =
            h.m.elect_master(&ElectMasterRequest::of_controller_trigger(BROKER), &only_3);
        h.apply(&r.events);
        let g = h.group();
        if unclean {
            assert_eq!(r.code, SUCCESS);
            assert_eq!(g.master_broker_id(), Some(3));
            assert_eq!(g.sync_state_set(), &BTreeSet::from([3]));
        } else {
            assert_eq!(r.code, CONTROLLER_MASTER_NOT_AVAILABLE);
            assert_eq!(g.master_broker_id(), None);
        }
        assert_eq!(g.master_epoch(), 2);
        // Broker 3 itself asking: the same outcome.
        h.broker_elect_master(3, IP[2], false, unclean, &only_3);
    }
}

#[test]
fn first_election_needs_a_registered_broker() {
    let mut h = Harness::new();
    h.register_new_broker(IP[0], 1, None);
    // The controller cannot pick a first master nobody asked to be (the set is empty).
    let r = h.m.elect_master(
        &ElectMasterRequest::of_controller_trigger(BROKER),
        &all_alive,
    );
    assert_eq!(r.code, CONTROLLER_MASTER_NOT_AVAILABLE);
    assert!(
        r.events.is_empty(),
        "no master to clear, the first election stays open"
    );
    // A broker id that is not registered is not made master.
    let r = h.m.elect_master(
        &ElectMasterRequest::of_broker_trigger(CLUSTER, BROKER, 7),
        &all_alive,
    );
    assert_eq!(r.code, CONTROLLER_ELECT_MASTER_FAILED);
    assert!(r.events.is_empty());
    // The registered broker asking is still the first master, at epoch 1.
    h.broker_elect_master(1, IP[0], true, true, &all_alive);
    // Not registered at all.
    let r = h.m.elect_master(
        &ElectMasterRequest::of_broker_trigger(CLUSTER, "nope", 1),
        &all_alive,
    );
    assert_eq!(r.code, CONTROLLER_BROKER_NEED_TO_BE_REGISTERED);
}

#[test]
fn alter_sync_state_set_checks_in_rocketmq_order() {
    let mut h = Harness::new();
    h.mock_meta_data(); // master 1 at epoch 1, set {1, 2, 3} at epoch 2
    h.alter_new_in_sync_set(1, 1, &[1, 2], 2); // set epoch 3
    let dead_3 = |_: &str, _: &str, id: u64| id != 3;
    type Case<'a> = (&'a str, u64, i32, &'a [u64], i32, i32);
    let cases: &[Case] = &[
        (
            "unchanged set",
            1,
            1,
            &[1, 2],
            3,
            CONTROLLER_ALTER_SYNC_STATE_SET_FAILED,
        ),
        (
            "unchanged set wins over a stale epoch",
            1,
            0,
            &[1, 2],
            0,
            CONTROLLER_ALTER_SYNC_STATE_SET_FAILED,
        ),
        (
            "not the master",
            2,
            1,
            &[1, 2, 3],
            3,
            CONTROLLER_INVALID_MASTER,
        ),
        (
            "stale master epoch",
            1,
            0,
            &[1, 2, 3],
            3,
            CONTROLLER_FENCED_MASTER_EPOCH,
        ),
        (
            "future master epoch",
            1,
            2,
            &[1, 2, 3],
            3,
            CONTROLLER_FENCED_MASTER_EPOCH,
        ),
        (
            "stale set epoch",
            1,
            1,
            &[1, 2, 3],
            2,
            CONTROLLER_FENCED_SYNC_STATE_SET_EPOCH,
        ),
        (
            "unknown replica",
            1,
            1,
            &[1, 2, 9],
            3,
            CONTROLLER_INVALID_REPLICAS,
        ),
        (
            "dead replica",
            1,
            1,
            &[1, 3],
            3,
            CONTROLLER_BROKER_NOT_ALIVE,
        ),
        (
            "set without the master",
            1,
            1,
            &[2],
            3,
            CONTROLLER_ALTER_SYNC_STATE_SET_FAILED,
        ),
        (
            "empty set",
            1,
            1,
            &[],
            3,
            CONTROLLER_ALTER_SYNC_STATE_SET_FAILED,
        ),
        ("shrink to the master", 1, 1, &[1], 3, SUCCESS),
    ];
    for &(name, master, master_epoch, set, sss_epoch, code) in cases {
        let r = h.alter(master, master_epoch, set, sss_epoch, &dead_3);
        assert_eq!(r.code, code, "{name}: {:?}", r.remark);
        if code == SUCCESS {
            assert_eq!(r.remark, None);
            assert_eq!(r.events.len(), 1, "{name}");
            assert_eq!(r.response.new_sync_state_set_epoch, 4);
        } else {
            assert!(r.events.is_empty(), "{name}");
            assert!(r.remark.is_some(), "{name}");
        }
    }
    let r = h.m.alter_sync_state_set(
        &AlterSyncStateSetRequest {
            broker_name: "nope".into(),
            master_broker_id: 1,
            master_epoch: 1,
        },
        &SyncStateSet::default(),
        &all_alive,
    );
    assert_eq!(r.code, CONTROLLER_ALTER_SYNC_STATE_SET_FAILED);
    assert_eq!(r.remark.as_deref(), Some("Broker metadata is not existed"));
}

#[test]
fn alter_sync_state_set_up_and_down_then_fenced_after_failover() {
    let mut h = Harness::new();
    h.register_new_broker(IP[0], 1, None);
    h.register_new_broker(IP[1], 2, None);
    h.register_new_broker(IP[2], 3, None);
    h.broker_elect_master(1, IP[0], true, true, &all_alive);
    h.alter_new_in_sync_set(1, 1, &[1, 2], 1);
    h.alter_new_in_sync_set(1, 1, &[1, 2, 3], 2);
    h.alter_new_in_sync_set(1, 1, &[1, 3], 3);
    h.alter_new_in_sync_set(1, 1, &[1], 4);
    h.alter_new_in_sync_set(1, 1, &[1, 2, 3], 5);
    // The master (1) dies; the controller elects from the set.
    let not_1 = |_: &str, _: &str, id: u64| id != 1;
    let r =
        h.m.elect_master(&ElectMasterRequest::of_controller_trigger(BROKER), &not_1);
    assert_eq!(r.code, SUCCESS);
    h.apply(&r.events);
    let (master, epoch) = (
        h.group().master_broker_id().unwrap(),
        h.group().master_epoch(),
    );
    assert_eq!(
        master, 2,
        "alive set members rank by id without heartbeat info"
    );
    assert_eq!((epoch, h.group().sync_state_set_epoch()), (2, 7));
    // The old master comes back and reports with its old epochs: fenced.
    let r = h.alter(1, 1, &[1, 2], 6, &all_alive);
    assert_eq!(r.code, CONTROLLER_INVALID_MASTER);
    let r = h.alter(2, 1, &[2, 3], 7, &all_alive);
    assert_eq!(r.code, CONTROLLER_FENCED_MASTER_EPOCH);
    let r = h.alter(2, 2, &[2, 3], 6, &all_alive);
    assert_eq!(r.code, CONTROLLER_FENCED_SYNC_STATE_SET_EPOCH);
    h.alter_new_in_sync_set(2, 2, &[1, 2, 3], 7);
}

#[test]
fn concurrent_requests_validated_on_the_same_state_take_effect_once() {
    let mut h = Harness::new();
    h.mock_meta_data();
    // Two alters validated before either is applied.
    let a = h.alter(1, 1, &[1, 2], 2, &all_alive);
    let b = h.alter(1, 1, &[1, 3], 2, &all_alive);
    assert!(a.is_success() && b.is_success());
    h.apply(&a.events);
    let before = h.m.state().clone();
    h.apply(&b.events);
    assert_eq!(h.m.state(), &before, "the second alter is stale");
    // Two elections decided on the same state.
    let not_1 = |_: &str, _: &str, id: u64| id != 1;
    let e1 =
        h.m.elect_master(&ElectMasterRequest::of_controller_trigger(BROKER), &not_1);
    let e2 = h.m.elect_master(
        &ElectMasterRequest::of_admin_trigger(CLUSTER, BROKER, 2),
        &not_1,
    );
    h.apply(&e1.events);
    let before = h.m.state().clone();
    h.apply(&e2.events);
    assert_eq!(h.m.state(), &before, "one master change per epoch");
    assert_eq!(h.group().master_epoch(), 2);
}

#[test]
fn apply_broker_id_rules() {
    let mut h = Harness::new();
    let req = |id: u64, code: &str| ApplyBrokerIdRequest {
        cluster_name: CLUSTER.into(),
        broker_name: BROKER.into(),
        applied_broker_id: id,
        register_check_code: code.into(),
    };
    // A new group starts at id 1.
    let r = h.m.apply_broker_id(&req(2, "127.0.0.1:9001;1"));
    assert_eq!(r.code, CONTROLLER_BROKER_ID_INVALID);
    assert_eq!(
        r.remark.as_deref(),
        Some("Broker-set: broker-set-a hasn't been registered in controller, but broker try to apply brokerId: 2")
    );
    let r = h.m.apply_broker_id(&req(1, "127.0.0.1:9000;1"));
    assert!(r.is_success());
    assert_eq!(
        (
            r.response.cluster_name.as_str(),
            r.response.broker_name.as_str()
        ),
        (CLUSTER, BROKER)
    );
    h.apply(&r.events);
    // The same broker again (same check code): granted, nothing changes.
    let before = h.m.state().clone();
    let r = h.m.apply_broker_id(&req(1, "127.0.0.1:9000;1"));
    assert!(r.is_success());
    h.apply(&r.events);
    assert_eq!(h.m.state(), &before);
    // Another broker wanting id 1: refused.
    let r = h.m.apply_broker_id(&req(1, "127.0.0.1:9001;2"));
    assert_eq!(r.code, CONTROLLER_BROKER_ID_INVALID);
    assert_eq!(
        r.remark.as_deref(),
        Some("Fail to apply brokerId: 1 in broker-set: broker-set-a")
    );
    // A free id out of order is granted, and the next id moves past it.
    let r = h.m.apply_broker_id(&req(5, "127.0.0.1:9001;2"));
    assert!(r.is_success());
    h.apply(&r.events);
    let next = h.m.get_next_broker_id(&GetNextBrokerIdRequest {
        cluster_name: CLUSTER.into(),
        broker_name: BROKER.into(),
    });
    assert_eq!(next.response.next_broker_id, 6);
    assert_eq!(h.group().broker_address(5), Some("127.0.0.1:9001"));
}

#[test]
fn register_broker_rules() {
    let mut h = Harness::new();
    let req = |id: u64, addr: &str| RegisterBrokerRequest {
        cluster_name: CLUSTER.into(),
        broker_name: BROKER.into(),
        broker_id: id,
        broker_address: addr.into(),
    };
    let r = h.m.register_broker(&req(1, IP[0]), &all_alive);
    assert_eq!(r.code, CONTROLLER_BROKER_NEED_TO_BE_REGISTERED);
    h.mock_meta_data();
    let r = h.m.register_broker(&req(4, IP[0]), &all_alive);
    assert_eq!(r.code, CONTROLLER_BROKER_NEED_TO_BE_REGISTERED);
    assert_eq!(
        r.remark.as_deref(),
        Some("BrokerId: 4 hasn't been registered in broker-set: broker-set-a")
    );
    // Alive master: answered with the epochs and the set.
    let r = h.m.register_broker(&req(2, IP[1]), &all_alive);
    assert_eq!(r.code, SUCCESS);
    assert_eq!(r.response.master_broker_id, Some(1));
    assert_eq!(r.response.master_address.as_deref(), Some(IP[0]));
    assert_eq!(r.response.master_epoch, Some(1));
    assert_eq!(r.response.sync_state_set_epoch, Some(2));
    assert_eq!(
        r.body.unwrap(),
        SyncStateSet {
            sync_state_set: BTreeSet::from([1, 2, 3]),
            sync_state_set_epoch: 2
        }
    );
    // Dead master: no master in the answer.
    let not_1 = |_: &str, _: &str, id: u64| id != 1;
    let r = h.m.register_broker(&req(2, IP[1]), &not_1);
    assert_eq!(r.code, SUCCESS);
    assert_eq!(
        r.response,
        RegisterBrokerResponse {
            cluster_name: CLUSTER.into(),
            broker_name: BROKER.into(),
            ..RegisterBrokerResponse::default()
        }
    );
    // A new address is recorded.
    let r = h.m.register_broker(&req(3, "127.0.0.1:9999"), &all_alive);
    assert_eq!(r.events.len(), 1);
    h.apply(&r.events);
    assert_eq!(h.group().broker_address(3), Some("127.0.0.1:9999"));
}

#[test]
fn get_replica_info_and_sync_state_data() {
    let mut h = Harness::new();
    let r = h.replica_info();
    assert_eq!(r.code, CONTROLLER_BROKER_METADATA_NOT_EXIST);
    assert_eq!(r.remark.as_deref(), Some("Broker metadata is not existed"));
    h.mock_meta_data();
    let r = h.replica_info();
    assert_eq!(r.code, SUCCESS);
    assert_eq!(r.response.master_broker_id, Some(1));
    assert_eq!(r.response.master_address.as_deref(), Some(IP[0]));
    assert_eq!(r.response.master_epoch, Some(1));
    let only_2 = |_: &str, _: &str, id: u64| id == 2;
    let data =
        h.m.get_sync_state_data(&[BROKER.to_owned(), "nope".to_owned()], &only_2)
            .body
            .unwrap();
    assert_eq!(data.replicas_info_table.len(), 1);
    let info = &data.replicas_info_table[BROKER];
    let alive: Vec<bool> = info.in_sync_replicas.iter().map(|r| r.alive).collect();
    assert_eq!(alive, [false, true, false]);
    // The body's JSON is RocketMQ's.
    let json = serde_json::to_value(&data).unwrap();
    assert_eq!(json["replicasInfoTable"][BROKER]["masterAddress"], IP[0]);
    assert_eq!(
        json["replicasInfoTable"][BROKER]["inSyncReplicas"][1]["brokerId"],
        2
    );
    assert_eq!(
        json["replicasInfoTable"][BROKER]["inSyncReplicas"][1]["alive"],
        true
    );
}

#[test]
fn clean_broker_data() {
    let mut h = Harness::new();
    h.mock_meta_data();
    let req = |cluster: Option<&str>, broker: &str, ids: Option<&str>, living: bool| {
        CleanBrokerDataRequest {
            cluster_name: cluster.map(str::to_owned),
            broker_name: broker.into(),
            broker_controller_ids_to_clean: ids.map(str::to_owned),
            clean_living_broker: living,
        }
    };
    let alive = |_: &str, _: &str, _: u64| true;
    let dead = |_: &str, _: &str, _: u64| false;
    let r1 =
        h.m.clean_broker_data(&req(Some(CLUSTER), BROKER, Some("1"), false), &alive);
    assert_eq!(r1.code, CONTROLLER_INVALID_CLEAN_BROKER_METADATA);
    let r2 =
        h.m.clean_broker_data(&req(Some(CLUSTER), BROKER, None, false), &alive);
    assert_eq!(r2.code, CONTROLLER_INVALID_CLEAN_BROKER_METADATA);
    assert_eq!(
        r2.remark.as_deref(),
        Some("Broker broker-set-a is still alive, clean up failure")
    );
    let r3 =
        h.m.clean_broker_data(&req(Some(CLUSTER), BROKER, Some("1"), false), &dead);
    assert_eq!(r3.code, SUCCESS);
    let r4 =
        h.m.clean_broker_data(&req(Some(CLUSTER), BROKER, Some("1;2;3"), false), &dead);
    assert_eq!(r4.code, SUCCESS);
    let r5 =
        h.m.clean_broker_data(&req(Some(CLUSTER), "broker12", Some("1;2;3"), true), &dead);
    assert_eq!(r5.code, CONTROLLER_INVALID_CLEAN_BROKER_METADATA);
    assert_eq!(
        r5.remark.as_deref(),
        Some("Broker broker12 is not existed,clean broker data failure.")
    );
    let cluster_set = |cluster: &str, _: &str, _: u64| !cluster.is_empty();
    let r6 =
        h.m.clean_broker_data(&req(None, "broker12", Some("1;2;3"), true), &cluster_set);
    assert_eq!(r6.code, CONTROLLER_INVALID_CLEAN_BROKER_METADATA);
    let r7 =
        h.m.clean_broker_data(&req(None, BROKER, Some("1;2;3"), true), &dead);
    assert_eq!(r7.code, SUCCESS);
    let bad =
        h.m.clean_broker_data(&req(None, BROKER, Some("1;x"), false), &dead);
    assert_eq!(bad.code, CONTROLLER_INVALID_CLEAN_BROKER_METADATA);
    assert!(bad
        .remark
        .unwrap()
        .starts_with("Please set the option <brokerControllerIdsToClean>"));

    // Cleaning the (dead) master: the master is cleared, both epochs bump.
    h.apply(&r3.events);
    let g = h.group();
    assert_eq!(g.master_broker_id(), None);
    assert_eq!(g.replica_ids(), BTreeSet::from([2, 3]));
    assert_eq!(g.sync_state_set(), &BTreeSet::from([2, 3]));
    assert_eq!((g.master_epoch(), g.sync_state_set_epoch()), (2, 3));
    // The living-broker clean of listed ids removes those ids only.
    let r =
        h.m.clean_broker_data(&req(None, BROKER, Some("2"), true), &alive);
    assert!(r.is_success());
    h.apply(&r.events);
    assert_eq!(h.group().replica_ids(), BTreeSet::from([3]));
    // No master now: the whole group can go.
    let r =
        h.m.clean_broker_data(&req(Some(CLUSTER), BROKER, None, false), &alive);
    assert!(r.is_success(), "{:?}", r.remark);
    h.apply(&r.events);
    assert!(h.m.state().is_empty());
    // And the broker set can start again from id 1, epoch 0.
    h.register_new_broker(IP[0], 1, None);
    h.broker_elect_master(1, IP[0], true, true, &all_alive);
}

#[test]
fn serialize_round_trip_and_replay() {
    let mut h = Harness::new();
    h.mock_meta_data();
    let json = h.m.state().to_json();
    let restored = ReplicasInfoManager::with_state(
        ControllerConfig::default(),
        State::from_json(&json).unwrap(),
    );
    assert_eq!(restored.state(), h.m.state());
    assert_eq!(
        restored.state().to_json(),
        json,
        "equal states, equal bytes"
    );
    let mut replayed = ReplicasInfoManager::new(ControllerConfig::default());
    assert_eq!(
        replayed.apply_all(&h.log),
        h.log.len(),
        "every logged event changed the state"
    );
    assert_eq!(replayed.state(), h.m.state());
}

#[test]
fn failover_end_to_end_with_heartbeats() {
    let mut h = Harness::new();
    h.mock_meta_data();
    let mut t = HeartbeatTable::new();
    let beat = |t: &mut HeartbeatTable, id: u64, epoch: i32, offset: i64, now: u64| {
        let mut hb = heartbeat(id, 3_000, epoch, offset, i32::MAX);
        hb.election_priority = None;
        t.on_heartbeat(&hb, now);
    };
    for id in 1..=3 {
        beat(&mut t, id, 1, 100 * id as i64, 0);
    }
    assert!(t.groups_with_inactive_master(&h.m, 1_000).is_empty());
    // The master stops heartbeating; the slaves go on.
    for now in [2_000, 4_000] {
        beat(&mut t, 2, 1, 500, now);
        beat(&mut t, 3, 1, 400, now);
    }
    assert_eq!(t.scan_not_active(4_000).len(), 1);
    let need = t.groups_with_inactive_master(&h.m, 4_000);
    assert_eq!(need, [BROKER]);
    let r = h.m.elect_master(
        &ElectMasterRequest::of_controller_trigger(BROKER),
        &t.at(4_000),
    );
    assert_eq!(r.code, SUCCESS);
    assert_eq!(r.response.master_broker_id, Some(2), "the largest offset");
    h.apply(&r.events);
    assert!(t.groups_with_inactive_master(&h.m, 4_000).is_empty());
    // The other slave registers again and learns the new master and epoch.
    let r = h.m.register_broker(
        &RegisterBrokerRequest {
            cluster_name: CLUSTER.into(),
            broker_name: BROKER.into(),
            broker_id: 3,
            broker_address: IP[2].into(),
        },
        &t.at(4_000),
    );
    assert_eq!(r.response.master_broker_id, Some(2));
    assert_eq!(r.response.master_epoch, Some(2));
    // Everybody dead: nothing to reelect (no replica alive to take over).
    assert!(t.groups_with_inactive_master(&h.m, 100_000).is_empty());
}

#[test]
fn designated_election_without_a_broker_id_is_refused() {
    let mut h = Harness::new();
    h.mock_meta_data();
    let r = h.m.elect_master(
        &ElectMasterRequest {
            cluster_name: CLUSTER.into(),
            broker_name: BROKER.into(),
            broker_id: None,
            designate_elect: true,
        },
        &all_alive,
    );
    assert_eq!(r.code, CONTROLLER_INVALID_REQUEST);
    assert!(r.events.is_empty(), "the live master is not cleared");
    assert_eq!(h.group().master_broker_id(), Some(1));
}
