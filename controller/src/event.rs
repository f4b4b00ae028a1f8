//! The events that change the [`State`]: RocketMQ's `EventMessage`s
//! (`controller/impl/event/*.java`), the entries of the replicated log.
//!
//! The request side ([`crate::manager`]) validates a request against the
//! state and returns the events to append; every replica of the controller
//! then [`apply`]s them in log order. `apply` is deterministic (no clock, no
//! I/O, no liveness: only the state and the event), total (it never panics,
//! whatever the event) and keeps the state's invariants
//! ([`State::check_invariants`]) for any event, so a replayed or stale log
//! entry can never corrupt the state.
//!
//! Unlike RocketMQ's events, `ElectMaster` and `AlterSyncStateSet` carry the
//! master epoch and SyncStateSet epoch the controller decided at, and apply
//! only while the group is still at those epochs (a compare-and-set): two
//! requests validated against the same state cannot both take effect.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::state::{BrokerGroup, Replica, State};

/// A state change, serializable to JSON (a Raft log entry).
///
/// The JSON is internally tagged by `type`, RocketMQ's event type name
/// (`"ElectMasterEvent"`, ...), with camelCase fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Event {
    /// A new SyncStateSet for the group (`AlterSyncStateSetEvent`): bumps the
    /// SyncStateSet epoch.
    #[serde(rename = "AlterSyncStateSetEvent", rename_all = "camelCase")]
    AlterSyncStateSet {
        /// The group.
        broker_name: String,
        /// The new set; holds the master.
        new_sync_state_set: BTreeSet<u64>,
        /// The master epoch the change was validated at.
        master_epoch: i32,
        /// The SyncStateSet epoch the change was validated at.
        sync_state_set_epoch: i32,
    },
    /// A broker id given to a broker (`ApplyBrokerIdEvent`); the first one of
    /// a broker name creates the group.
    #[serde(rename = "ApplyBrokerIdEvent", rename_all = "camelCase")]
    ApplyBrokerId {
        /// The cluster (recorded when the event creates the group).
        cluster_name: String,
        /// The group.
        broker_name: String,
        /// The broker's address.
        broker_address: String,
        /// The id given.
        new_broker_id: u64,
        /// The broker's register check code (`address;timestamp`).
        register_check_code: String,
    },
    /// An election's outcome (`ElectMasterEvent`): a new master (the master
    /// epoch and the SyncStateSet epoch bump, the set becomes {new master}),
    /// or none (`new_master_broker_id: None`: the master is cleared, the
    /// master epoch bumps, the set stays).
    #[serde(rename = "ElectMasterEvent", rename_all = "camelCase")]
    ElectMaster {
        /// The group.
        broker_name: String,
        /// The new master; `None` when the election found no candidate.
        new_master_broker_id: Option<u64>,
        /// The master epoch the election was decided at.
        master_epoch: i32,
        /// The SyncStateSet epoch the election was decided at.
        sync_state_set_epoch: i32,
    },
    /// Removes replicas, or the whole group (`CleanBrokerDataEvent`).
    #[serde(rename = "CleanBrokerDataEvent", rename_all = "camelCase")]
    CleanBrokerData {
        /// The group.
        broker_name: String,
        /// The replicas to remove; `None` (or empty) removes the group.
        broker_ids_to_clean: Option<BTreeSet<u64>>,
    },
    /// A registered replica's new address (`UpdateBrokerAddressEvent`).
    #[serde(rename = "UpdateBrokerAddressEvent", rename_all = "camelCase")]
    UpdateBrokerAddress {
        /// The cluster.
        cluster_name: String,
        /// The group.
        broker_name: String,
        /// The new address.
        broker_address: String,
        /// The replica.
        broker_id: u64,
    },
}

impl Event {
    /// The broker group the event is about.
    pub fn broker_name(&self) -> &str {
        match self {
            Event::AlterSyncStateSet { broker_name, .. }
            | Event::ApplyBrokerId { broker_name, .. }
            | Event::ElectMaster { broker_name, .. }
            | Event::CleanBrokerData { broker_name, .. }
            | Event::UpdateBrokerAddress { broker_name, .. } => broker_name,
        }
    }

    /// RocketMQ's `EventType` id of the event (1 alter SyncStateSet, 2 apply
    /// broker id, 3 elect master, 5 clean broker data, 6 update address).
    pub fn event_type_id(&self) -> i16 {
        match self {
            Event::AlterSyncStateSet { .. } => 1,
            Event::ApplyBrokerId { .. } => 2,
            Event::ElectMaster { .. } => 3,
            Event::CleanBrokerData { .. } => 5,
            Event::UpdateBrokerAddress { .. } => 6,
        }
    }

    /// The event as JSON (a log entry).
    pub fn encode(&self) -> Vec<u8> {
        // Strings, integers and sets of integers: cannot fail.
        serde_json::to_vec(self).expect("controller event serializes to JSON")
    }

    /// An event from its JSON ([`Event::encode`]).
    pub fn decode(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// Applies `event` to `state`; returns whether it changed the state.
///
/// An event that does not fit the state is skipped (logged at warn level)
/// rather than applied partly: a group or replica that does not exist, an
/// `ElectMaster`/`AlterSyncStateSet` decided at other epochs than the group's,
/// a new master that is not a replica, a SyncStateSet without the master or
/// with unregistered replicas. An `ApplyBrokerId` for an id already
/// registered is a no-op, as in RocketMQ.
pub fn apply(state: &mut State, event: &Event) -> bool {
    match apply_inner(state, event) {
        Ok(changed) => changed,
        Err(reason) => {
            tracing::warn!(?event, reason, "controller event skipped");
            false
        }
    }
}

/// Applies every event in order; returns how many changed the state.
pub fn apply_all<'a>(state: &mut State, events: impl IntoIterator<Item = &'a Event>) -> usize {
    events
        .into_iter()
        .filter(|event| apply(state, event))
        .count()
}

fn bump(epoch: &mut i32) {
    *epoch = epoch.saturating_add(1);
}

fn check_epochs(
    group: &BrokerGroup,
    master_epoch: i32,
    sync_state_set_epoch: i32,
) -> Result<(), &'static str> {
    if group.master_epoch != master_epoch {
        return Err("stale master epoch");
    }
    if group.sync_state_set_epoch != sync_state_set_epoch {
        return Err("stale SyncStateSet epoch");
    }
    Ok(())
}

fn apply_inner(state: &mut State, event: &Event) -> Result<bool, &'static str> {
    match event {
        Event::AlterSyncStateSet {
            broker_name,
            new_sync_state_set,
            master_epoch,
            sync_state_set_epoch,
        } => {
            let group = state.groups.get_mut(broker_name).ok_or("unknown group")?;
            check_epochs(group, *master_epoch, *sync_state_set_epoch)?;
            let master = group.master_broker_id.ok_or("the group has no master")?;
            if !new_sync_state_set.contains(&master) {
                return Err("the new SyncStateSet lacks the master");
            }
            if !new_sync_state_set
                .iter()
                .all(|id| group.replicas.contains_key(id))
            {
                return Err("the new SyncStateSet has unregistered replicas");
            }
            group.sync_state_set = new_sync_state_set.clone();
            bump(&mut group.sync_state_set_epoch);
            Ok(true)
        }
        Event::ApplyBrokerId {
            cluster_name,
            broker_name,
            broker_address,
            new_broker_id,
            register_check_code,
        } => {
            let group = state
                .groups
                .entry(broker_name.clone())
                .or_insert_with(|| BrokerGroup::new(cluster_name, broker_name));
            if group.replicas.contains_key(new_broker_id) {
                return Ok(false);
            }
            group.replicas.insert(
                *new_broker_id,
                Replica {
                    address: broker_address.clone(),
                    register_check_code: register_check_code.clone(),
                },
            );
            group.next_assign_broker_id = group
                .next_assign_broker_id
                .max(new_broker_id.saturating_add(1));
            Ok(true)
        }
        Event::ElectMaster {
            broker_name,
            new_master_broker_id,
            master_epoch,
            sync_state_set_epoch,
        } => {
            let group = state.groups.get_mut(broker_name).ok_or("unknown group")?;
            check_epochs(group, *master_epoch, *sync_state_set_epoch)?;
            match new_master_broker_id {
                Some(master) => {
                    if !group.replicas.contains_key(master) {
                        return Err("the new master is not a replica");
                    }
                    group.master_broker_id = Some(*master);
                    bump(&mut group.master_epoch);
                    group.sync_state_set = BTreeSet::from([*master]);
                    bump(&mut group.sync_state_set_epoch);
                }
                None => {
                    // The master died and nobody could take over: no master,
                    // the SyncStateSet is kept (its members are the ones to
                    // wait for).
                    group.master_broker_id = None;
                    bump(&mut group.master_epoch);
                }
            }
            Ok(true)
        }
        Event::CleanBrokerData {
            broker_name,
            broker_ids_to_clean,
        } => {
            let ids = match broker_ids_to_clean {
                Some(ids) if !ids.is_empty() => ids,
                _ => return Ok(state.groups.remove(broker_name).is_some()),
            };
            let group = state.groups.get_mut(broker_name).ok_or("unknown group")?;
            let mut changed = false;
            let mut sync_state_set_changed = false;
            for id in ids {
                changed |= group.replicas.remove(id).is_some();
                sync_state_set_changed |= group.sync_state_set.remove(id);
            }
            if group.master_broker_id.is_some_and(|m| ids.contains(&m)) {
                group.master_broker_id = None;
                bump(&mut group.master_epoch);
            }
            if sync_state_set_changed {
                bump(&mut group.sync_state_set_epoch);
            }
            if group.replicas.is_empty() {
                state.groups.remove(broker_name);
            }
            Ok(changed)
        }
        Event::UpdateBrokerAddress {
            broker_name,
            broker_address,
            broker_id,
            ..
        } => {
            let group = state.groups.get_mut(broker_name).ok_or("unknown group")?;
            let replica = group.replicas.get_mut(broker_id).ok_or("unknown replica")?;
            if replica.address == *broker_address {
                return Ok(false);
            }
            replica.address = broker_address.clone();
            Ok(true)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply_id(state: &mut State, id: u64) -> bool {
        apply(
            state,
            &Event::ApplyBrokerId {
                cluster_name: "c".into(),
                broker_name: "b".into(),
                broker_address: format!("10.0.0.{id}:10911"),
                new_broker_id: id,
                register_check_code: format!("10.0.0.{id}:10911;1"),
            },
        )
    }

    fn elect(state: &mut State, master: Option<u64>) -> bool {
        let g = state.group("b").unwrap();
        let (me, se) = (g.master_epoch(), g.sync_state_set_epoch());
        apply(
            state,
            &Event::ElectMaster {
                broker_name: "b".into(),
                new_master_broker_id: master,
                master_epoch: me,
                sync_state_set_epoch: se,
            },
        )
    }

    #[test]
    fn apply_broker_id_creates_the_group_and_advances_the_next_id() {
        let mut s = State::new();
        assert!(apply_id(&mut s, 1));
        assert!(apply_id(&mut s, 2));
        assert!(!apply_id(&mut s, 2), "an id already given is a no-op");
        let g = s.group("b").unwrap();
        assert_eq!(g.cluster_name(), "c");
        assert_eq!(g.next_assign_broker_id(), 3);
        assert_eq!(g.broker_address(2), Some("10.0.0.2:10911"));
        assert!(g.is_first_time_for_elect());
        s.check_invariants().unwrap();
    }

    #[test]
    fn elect_master_bumps_both_epochs_and_resets_the_set() {
        let mut s = State::new();
        apply_id(&mut s, 1);
        apply_id(&mut s, 2);
        assert!(elect(&mut s, Some(2)));
        let g = s.group("b").unwrap();
        assert_eq!(g.master_broker_id(), Some(2));
        assert_eq!(g.master_address(), Some("10.0.0.2:10911"));
        assert_eq!((g.master_epoch(), g.sync_state_set_epoch()), (1, 1));
        assert_eq!(g.sync_state_set(), &BTreeSet::from([2]));
        // No new master: the master is cleared, the set is kept.
        assert!(elect(&mut s, None));
        let g = s.group("b").unwrap();
        assert_eq!(g.master_broker_id(), None);
        assert_eq!((g.master_epoch(), g.sync_state_set_epoch()), (2, 1));
        assert_eq!(g.sync_state_set(), &BTreeSet::from([2]));
        s.check_invariants().unwrap();
    }

    #[test]
    fn stale_or_invalid_events_are_skipped() {
        let mut s = State::new();
        apply_id(&mut s, 1);
        apply_id(&mut s, 2);
        let stale = Event::ElectMaster {
            broker_name: "b".into(),
            new_master_broker_id: Some(1),
            master_epoch: 0,
            sync_state_set_epoch: 0,
        };
        assert!(apply(&mut s, &stale));
        assert!(
            !apply(&mut s, &stale),
            "decided at epoch 0, the group is at 1"
        );
        let not_a_replica = Event::ElectMaster {
            broker_name: "b".into(),
            new_master_broker_id: Some(7),
            master_epoch: 1,
            sync_state_set_epoch: 1,
        };
        assert!(!apply(&mut s, &not_a_replica));
        let without_master = Event::AlterSyncStateSet {
            broker_name: "b".into(),
            new_sync_state_set: BTreeSet::from([2]),
            master_epoch: 1,
            sync_state_set_epoch: 1,
        };
        assert!(!apply(&mut s, &without_master));
        let unknown_replica = Event::AlterSyncStateSet {
            broker_name: "b".into(),
            new_sync_state_set: BTreeSet::from([1, 9]),
            master_epoch: 1,
            sync_state_set_epoch: 1,
        };
        assert!(!apply(&mut s, &unknown_replica));
        let unknown_group = Event::UpdateBrokerAddress {
            cluster_name: "c".into(),
            broker_name: "x".into(),
            broker_address: "a".into(),
            broker_id: 1,
        };
        assert!(!apply(&mut s, &unknown_group));
        let ok = Event::AlterSyncStateSet {
            broker_name: "b".into(),
            new_sync_state_set: BTreeSet::from([1, 2]),
            master_epoch: 1,
            sync_state_set_epoch: 1,
        };
        assert!(apply(&mut s, &ok));
        assert!(!apply(&mut s, &ok), "the SyncStateSet epoch moved on");
        let g = s.group("b").unwrap();
        assert_eq!(g.sync_state_set(), &BTreeSet::from([1, 2]));
        assert_eq!((g.master_epoch(), g.sync_state_set_epoch()), (1, 2));
        s.check_invariants().unwrap();
    }

    #[test]
    fn cleaning_the_master_clears_it_and_bumps_the_epochs() {
        let mut s = State::new();
        for id in 1..=3 {
            apply_id(&mut s, id);
        }
        elect(&mut s, Some(1));
        apply(
            &mut s,
            &Event::AlterSyncStateSet {
                broker_name: "b".into(),
                new_sync_state_set: BTreeSet::from([1, 2]),
                master_epoch: 1,
                sync_state_set_epoch: 1,
            },
        );
        let clean = |ids: &[u64]| Event::CleanBrokerData {
            broker_name: "b".into(),
            broker_ids_to_clean: Some(ids.iter().copied().collect()),
        };
        // A replica outside the set: the epochs stay.
        assert!(apply(&mut s, &clean(&[3])));
        let g = s.group("b").unwrap();
        assert_eq!((g.master_epoch(), g.sync_state_set_epoch()), (1, 2));
        // The master: cleared, both epochs bump.
        assert!(apply(&mut s, &clean(&[1])));
        let g = s.group("b").unwrap();
        assert_eq!(g.master_broker_id(), None);
        assert_eq!(g.sync_state_set(), &BTreeSet::from([2]));
        assert_eq!((g.master_epoch(), g.sync_state_set_epoch()), (2, 3));
        assert_eq!(g.next_assign_broker_id(), 4, "ids are never reused");
        s.check_invariants().unwrap();
        // The last replica: the group goes.
        assert!(apply(&mut s, &clean(&[2])));
        assert!(s.is_empty());
        // A whole-group clean of a missing group changes nothing.
        assert!(!apply(
            &mut s,
            &Event::CleanBrokerData {
                broker_name: "b".into(),
                broker_ids_to_clean: None
            }
        ));
    }

    #[test]
    fn events_round_trip_through_json_with_rocketmq_type_names() {
        let e = Event::ElectMaster {
            broker_name: "b".into(),
            new_master_broker_id: Some(3),
            master_epoch: 4,
            sync_state_set_epoch: 5,
        };
        let json = String::from_utf8(e.encode()).unwrap();
        assert_eq!(
            json,
            r#"{"type":"ElectMasterEvent","brokerName":"b","newMasterBrokerId":3,"masterEpoch":4,"syncStateSetEpoch":5}"#
        );
        assert_eq!(Event::decode(json.as_bytes()).unwrap(), e);
        assert_eq!(e.event_type_id(), 3);
        assert_eq!(e.broker_name(), "b");
    }
}
