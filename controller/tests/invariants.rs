//! Property tests of the state machine: random sequences of requests (with
//! random liveness and heartbeat data), their events applied, must keep the
//! invariants; and the log replayed on a fresh state, or on a JSON snapshot
//! taken midway, must give the same state (what Raft replay needs).
//!
//! Invariants checked after every event:
//! - [`State::check_invariants`]: the master is a replica and is in the
//!   SyncStateSet, the set holds registered replicas only, ...;
//! - per group, the master epoch and the SyncStateSet epoch never decrease;
//!   a master change always bumps the master epoch, a set change its epoch;
//! - a successful election's response is what the state holds afterwards,
//!   and a clean election picks an alive member of the previous set.

use std::collections::BTreeSet;

use ferromq_controller::response_code::*;
use ferromq_controller::*;
use proptest::prelude::*;

const GROUPS: [&str; 2] = ["broker-a", "broker-b"];
const CLUSTER: &str = "c";
/// Broker ids 1..=MAX_ID take part; MAX_ID + 1 is never registered by `Join`.
const MAX_ID: u64 = 4;

#[derive(Clone, Debug)]
enum Op {
    /// GetNextBrokerId then ApplyBrokerId (`id: None`: the id handed out).
    Join {
        group: usize,
        id: Option<u64>,
        addr: u8,
    },
    Register {
        group: usize,
        id: u64,
        addr: u8,
    },
    Elect {
        group: usize,
        broker_id: Option<u64>,
        designate: bool,
    },
    /// `master: None`: the current master; epoch deltas applied to the current epochs.
    Alter {
        group: usize,
        master: Option<u64>,
        master_epoch_delta: i32,
        set: u8,
        /// The set cut down to alive replicas plus the master (what a real
        /// master reports), so that it mostly succeeds.
        plausible: bool,
        sss_epoch_delta: i32,
    },
    Clean {
        group: usize,
        ids: Option<u8>,
        living: bool,
    },
}

#[derive(Clone, Debug)]
struct Step {
    /// Two requests validated against the same state, then both applied:
    /// the second one's events may be stale.
    ops: Vec<Op>,
    alive: u8,
    infos: [(i32, i64, i32); MAX_ID as usize + 1],
}

struct Liveness<'a>(&'a Step);

impl BrokerLiveness for Liveness<'_> {
    fn is_alive(&self, _: &str, _: &str, id: u64) -> bool {
        (1..=MAX_ID + 1).contains(&id) && self.0.alive & (1 << (id - 1)) != 0
    }
    fn election_info(&self, _: &str, _: &str, id: u64) -> Option<ElectionInfo> {
        let &(epoch, max_offset, election_priority) =
            self.0.infos.get(id.checked_sub(1)? as usize)?;
        Some(ElectionInfo {
            epoch,
            max_offset,
            election_priority,
        })
    }
}

fn id() -> impl Strategy<Value = u64> {
    1..=MAX_ID + 1
}

/// Mostly the current epoch, sometimes a stale or a future one.
fn epoch_delta() -> impl Strategy<Value = i32> {
    prop_oneof![8 => Just(0), 1 => Just(-1), 1 => Just(1)]
}

fn op() -> impl Strategy<Value = Op> {
    let group = 0..GROUPS.len();
    prop_oneof![
        3 => (group.clone(), prop::option::weighted(0.2, id()), any::<u8>())
            .prop_map(|(group, id, addr)| Op::Join { group, id, addr: addr % 3 }),
        2 => (group.clone(), id(), any::<u8>()).prop_map(|(group, id, addr)| Op::Register { group, id, addr: addr % 3 }),
        3 => (group.clone(), prop::option::of(id()), any::<bool>())
            .prop_map(|(group, broker_id, designate)| Op::Elect { group, broker_id, designate }),
        5 => (group.clone(), prop::option::weighted(0.2, id()), epoch_delta(), any::<u8>(), prop::bool::weighted(0.7), epoch_delta()).prop_map(
            |(group, master, master_epoch_delta, set, plausible, sss_epoch_delta)| Op::Alter {
                group,
                master,
                master_epoch_delta,
                set,
                plausible,
                sss_epoch_delta,
            }
        ),
        1 => (group, prop::option::weighted(0.8, any::<u8>()), any::<bool>())
            .prop_map(|(group, ids, living)| Op::Clean { group, ids, living }),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    (
        prop::collection::vec(op(), 1..=2),
        // Each broker alive with probability 3/4.
        (any::<u8>(), any::<u8>()).prop_map(|(a, b)| a | b),
        prop::array::uniform5((0..3i32, 0..4i64, 0..3i32)),
    )
        .prop_map(|(ops, alive, infos)| Step { ops, alive, infos })
}

fn ids_of(bits: u8) -> BTreeSet<u64> {
    (1..=MAX_ID + 1)
        .filter(|id| bits & (1 << (id - 1)) != 0)
        .collect()
}

fn address(id: u64, addr: u8) -> String {
    format!("10.0.{addr}.{id}:10911")
}

/// What a request expects of the state once its events are applied.
enum Expect {
    Nothing,
    Master {
        group: String,
        master: u64,
        master_epoch: i32,
        sync_state_set_epoch: i32,
    },
    SyncStateSet {
        group: String,
        epoch: i32,
    },
}

/// Runs one request against `m`'s state; returns its events and expectation.
fn run(m: &ReplicasInfoManager, op: &Op, live: &Liveness<'_>) -> (Vec<Event>, Expect) {
    let state = m.state();
    match op {
        Op::Join { group, id, addr } => {
            let name = GROUPS[*group];
            let next = m.get_next_broker_id(&GetNextBrokerIdRequest {
                cluster_name: CLUSTER.into(),
                broker_name: name.into(),
            });
            assert_eq!(next.code, SUCCESS);
            assert!(next.events.is_empty());
            let id = id.unwrap_or(next.response.next_broker_id);
            if id > MAX_ID {
                return (Vec::new(), Expect::Nothing);
            }
            let r = m.apply_broker_id(&ApplyBrokerIdRequest {
                cluster_name: CLUSTER.into(),
                broker_name: name.into(),
                applied_broker_id: id,
                register_check_code: format!("{};{addr}", address(id, *addr)),
            });
            assert!(
                r.is_success() || (r.code == CONTROLLER_BROKER_ID_INVALID && r.events.is_empty())
            );
            (r.events, Expect::Nothing)
        }
        Op::Register { group, id, addr } => {
            let r = m.register_broker(
                &RegisterBrokerRequest {
                    cluster_name: CLUSTER.into(),
                    broker_name: GROUPS[*group].into(),
                    broker_id: *id,
                    broker_address: address(*id, *addr),
                },
                live,
            );
            if let (Some(g), true) = (state.group(GROUPS[*group]), r.is_success()) {
                if let Some(master) = r.response.master_broker_id {
                    assert_eq!(Some(master), g.master_broker_id());
                    assert_eq!(r.response.master_epoch, Some(g.master_epoch()));
                }
            } else {
                assert_eq!(r.code, CONTROLLER_BROKER_NEED_TO_BE_REGISTERED);
            }
            (r.events, Expect::Nothing)
        }
        Op::Elect {
            group,
            broker_id,
            designate,
        } => {
            let name = GROUPS[*group];
            let r = m.elect_master(
                &ElectMasterRequest {
                    cluster_name: CLUSTER.into(),
                    broker_name: name.into(),
                    broker_id: *broker_id,
                    designate_elect: *designate,
                },
                live,
            );
            let expect = match (state.group(name), r.code) {
                (Some(g), SUCCESS) => {
                    let master = r.response.master_broker_id.unwrap();
                    assert_ne!(Some(master), g.master_broker_id());
                    if !g.is_first_time_for_elect() {
                        assert!(
                            live.is_alive(CLUSTER, name, master),
                            "elected a dead broker"
                        );
                        if !m.config().enable_elect_unclean_master {
                            assert!(
                                g.sync_state_set().contains(&master),
                                "unclean election while disabled"
                            );
                        }
                        if *designate {
                            assert_eq!(Some(master), *broker_id);
                        }
                    }
                    Expect::Master {
                        group: name.into(),
                        master,
                        master_epoch: r.response.master_epoch.unwrap(),
                        sync_state_set_epoch: r.response.sync_state_set_epoch.unwrap(),
                    }
                }
                (Some(g), CONTROLLER_MASTER_STILL_EXIST) => {
                    assert!(r.events.is_empty());
                    assert_eq!(r.response.master_broker_id, g.master_broker_id());
                    assert!(g
                        .master_broker_id()
                        .is_some_and(|m| live.is_alive(CLUSTER, name, m)));
                    Expect::Nothing
                }
                (Some(g), CONTROLLER_MASTER_NOT_AVAILABLE) => {
                    assert!(broker_id.is_none());
                    assert_eq!(r.events.len(), usize::from(g.master_broker_id().is_some()));
                    Expect::Nothing
                }
                (Some(_), CONTROLLER_ELECT_MASTER_FAILED) => {
                    assert!(broker_id.is_some() && r.events.is_empty());
                    Expect::Nothing
                }
                (Some(_), CONTROLLER_INVALID_REQUEST) => {
                    assert!(*designate && broker_id.is_none() && r.events.is_empty());
                    Expect::Nothing
                }
                (None, CONTROLLER_BROKER_NEED_TO_BE_REGISTERED) => Expect::Nothing,
                (g, code) => panic!("elect on {g:?}: unexpected code {code}"),
            };
            (r.events, expect)
        }
        Op::Alter {
            group,
            master,
            master_epoch_delta,
            set,
            plausible,
            sss_epoch_delta,
        } => {
            let name = GROUPS[*group];
            let g = state.group(name);
            let master = master
                .or_else(|| g.and_then(BrokerGroup::master_broker_id))
                .unwrap_or(1);
            let master_epoch = g.map_or(0, BrokerGroup::master_epoch) + master_epoch_delta;
            let sss_epoch = g.map_or(0, BrokerGroup::sync_state_set_epoch) + sss_epoch_delta;
            let mut set = ids_of(*set);
            if *plausible {
                set.retain(|&id| {
                    live.is_alive(CLUSTER, name, id) && g.is_some_and(|g| g.contains_replica(id))
                });
                set.insert(master);
            }
            let r = m.alter_sync_state_set(
                &AlterSyncStateSetRequest {
                    broker_name: name.into(),
                    master_broker_id: master,
                    master_epoch,
                },
                &SyncStateSet {
                    sync_state_set: set.clone(),
                    sync_state_set_epoch: sss_epoch,
                },
                live,
            );
            if !r.is_success() {
                assert!(r.events.is_empty());
                return (r.events, Expect::Nothing);
            }
            let g = g.unwrap();
            assert_eq!(g.master_broker_id(), Some(master));
            assert_eq!(
                (g.master_epoch(), g.sync_state_set_epoch()),
                (master_epoch, sss_epoch)
            );
            assert!(set.contains(&master));
            (
                r.events,
                Expect::SyncStateSet {
                    group: name.into(),
                    epoch: r.response.new_sync_state_set_epoch,
                },
            )
        }
        Op::Clean { group, ids, living } => {
            let text = ids.map(|bits| {
                ids_of(bits)
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(";")
            });
            let r = m.clean_broker_data(
                &CleanBrokerDataRequest {
                    cluster_name: Some(CLUSTER.into()),
                    broker_name: GROUPS[*group].into(),
                    broker_controller_ids_to_clean: text,
                    clean_living_broker: *living,
                },
                live,
            );
            assert!(
                r.is_success()
                    || (r.code == CONTROLLER_INVALID_CLEAN_BROKER_METADATA && r.events.is_empty())
            );
            (r.events, Expect::Nothing)
        }
    }
}

/// The per-event transition checks.
fn check_transition(before: &State, after: &State) {
    after.check_invariants().unwrap();
    for b in before.groups() {
        let Some(a) = after.group(b.broker_name()) else {
            continue;
        };
        assert!(
            a.master_epoch() >= b.master_epoch(),
            "master epoch decreased"
        );
        assert!(
            a.sync_state_set_epoch() >= b.sync_state_set_epoch(),
            "SyncStateSet epoch decreased"
        );
        if a.master_broker_id() != b.master_broker_id() {
            assert!(
                a.master_epoch() > b.master_epoch(),
                "master changed without an epoch bump"
            );
        }
        if a.sync_state_set() != b.sync_state_set() {
            assert!(
                a.sync_state_set_epoch() > b.sync_state_set_epoch(),
                "set changed without an epoch bump"
            );
        }
        assert!(
            a.next_assign_broker_id() >= b.next_assign_broker_id(),
            "broker id reused"
        );
        assert_eq!(a.cluster_name(), b.cluster_name());
    }
}

fn check_replay(log: &[Event], final_state: &State) {
    // Log entries through JSON.
    let decoded: Vec<Event> = log
        .iter()
        .map(|e| Event::decode(&e.encode()).unwrap())
        .collect();
    assert_eq!(decoded, log);
    // Replay from scratch.
    let mut replayed = State::new();
    apply_all(&mut replayed, &decoded);
    assert_eq!(&replayed, final_state);
    // Replay from a snapshot taken midway.
    let mid = log.len() / 2;
    let mut prefix = State::new();
    apply_all(&mut prefix, &log[..mid]);
    let mut from_snapshot = State::from_json(&prefix.to_json()).unwrap();
    assert_eq!(from_snapshot, prefix);
    apply_all(&mut from_snapshot, &log[mid..]);
    assert_eq!(&from_snapshot, final_state);
    // The final snapshot.
    let json = final_state.to_json();
    let back = State::from_json(&json).unwrap();
    assert_eq!(&back, final_state);
    assert_eq!(back.to_json(), json);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_requests_keep_the_invariants(
        unclean in any::<bool>(),
        steps in prop::collection::vec(step(), 1..80),
    ) {
        let mut m = ReplicasInfoManager::new(ControllerConfig { enable_elect_unclean_master: unclean });
        let mut log = Vec::new();
        for step in &steps {
            let live = Liveness(step);
            // Every request of the step is validated against the same state.
            let runs: Vec<_> = step.ops.iter().map(|op| run(&m, op, &live)).collect();
            for (i, (events, expect)) in runs.into_iter().enumerate() {
                let mut took_effect = true;
                for event in &events {
                    let before = m.state().clone();
                    let changed = m.apply(event);
                    took_effect &= changed || matches!(event, Event::ApplyBrokerId { .. } | Event::CleanBrokerData { .. });
                    check_transition(&before, m.state());
                    log.push(event.clone());
                }
                if i == 0 {
                    // The first request of a step was validated on the state
                    // its events apply to: they all take effect.
                    prop_assert!(took_effect, "events of a fresh request skipped: {events:?}");
                }
                if !took_effect {
                    continue;
                }
                match expect {
                    Expect::Nothing => {}
                    Expect::Master { group, master, master_epoch, sync_state_set_epoch } => {
                        let g = m.state().group(&group).unwrap();
                        prop_assert_eq!(g.master_broker_id(), Some(master));
                        prop_assert_eq!(g.master_epoch(), master_epoch);
                        prop_assert_eq!(g.sync_state_set_epoch(), sync_state_set_epoch);
                        prop_assert_eq!(g.sync_state_set(), &BTreeSet::from([master]));
                    }
                    Expect::SyncStateSet { group, epoch } => {
                        prop_assert_eq!(m.state().group(&group).unwrap().sync_state_set_epoch(), epoch);
                    }
                }
            }
        }
        check_replay(&log, m.state());
    }

    #[test]
    fn arbitrary_events_keep_the_invariants(events in prop::collection::vec(any_event(), 0..120)) {
        let mut state = State::new();
        for event in &events {
            let before = state.clone();
            apply(&mut state, event);
            check_transition(&before, &state);
        }
        check_replay(&events, &state);
    }
}

/// Any event over a small domain, consistent with the state or not.
fn any_event() -> impl Strategy<Value = Event> {
    let group = (0..GROUPS.len()).prop_map(|g| GROUPS[g].to_owned());
    let set = any::<u8>().prop_map(ids_of);
    let epoch = 0..4i32;
    prop_oneof![
        4 => (group.clone(), id(), any::<u8>()).prop_map(|(broker_name, id, addr)| Event::ApplyBrokerId {
            cluster_name: CLUSTER.into(),
            broker_name,
            broker_address: address(id, addr % 3),
            new_broker_id: id,
            register_check_code: format!("{};{addr}", address(id, addr % 3)),
        }),
        3 => (group.clone(), prop::option::of(id()), epoch.clone(), epoch.clone()).prop_map(
            |(broker_name, new_master_broker_id, master_epoch, sync_state_set_epoch)| Event::ElectMaster {
                broker_name,
                new_master_broker_id,
                master_epoch,
                sync_state_set_epoch,
            }
        ),
        3 => (group.clone(), set.clone(), epoch.clone(), epoch).prop_map(
            |(broker_name, new_sync_state_set, master_epoch, sync_state_set_epoch)| Event::AlterSyncStateSet {
                broker_name,
                new_sync_state_set,
                master_epoch,
                sync_state_set_epoch,
            }
        ),
        1 => (group.clone(), prop::option::of(set)).prop_map(|(broker_name, broker_ids_to_clean)| Event::CleanBrokerData {
            broker_name,
            broker_ids_to_clean,
        }),
        1 => (group, id(), any::<u8>()).prop_map(|(broker_name, broker_id, addr)| Event::UpdateBrokerAddress {
            cluster_name: CLUSTER.into(),
            broker_name,
            broker_address: address(broker_id, addr % 3),
            broker_id,
        }),
    ]
}
