//! The controller's replicated state: one [`BrokerGroup`] per broker name.
//!
//! RocketMQ keeps two tables in `ReplicasInfoManager`, `replicaInfoTable`
//! (`BrokerReplicaInfo`: the replicas' ids, addresses and register check
//! codes, the next id to assign) and `syncStateSetInfoTable` (`SyncStateInfo`:
//! the master, its epoch, the SyncStateSet and its epoch). A broker group
//! exists only when both entries do, so here they are one struct.
//!
//! The state changes only through [`crate::event::apply`]; every collection is
//! ordered (`BTreeMap`/`BTreeSet`), so the JSON snapshot of equal states is
//! byte-identical and replaying the same events gives the same state.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// The first broker id the controller hands out in a broker group (RocketMQ's
/// `MixAll.FIRST_BROKER_CONTROLLER_ID`).
pub const FIRST_BROKER_CONTROLLER_ID: u64 = 1;

/// One replica of a broker group, as registered by `ApplyBrokerId`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Replica {
    /// The broker's address (`ip:port`), the part of the register check code
    /// before the first `;`, updated by `UpdateBrokerAddress`.
    pub address: String,
    /// The register check code the broker applied for its id with
    /// (`address;timestamp`): a broker that applies again for the same id with
    /// the same code gets it, another broker does not.
    pub register_check_code: String,
}

/// A broker group (all the replicas of one `brokerName`): RocketMQ's
/// `BrokerReplicaInfo` and `SyncStateInfo` together.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BrokerGroup {
    pub(crate) cluster_name: String,
    pub(crate) broker_name: String,
    pub(crate) replicas: BTreeMap<u64, Replica>,
    pub(crate) next_assign_broker_id: u64,
    pub(crate) master_broker_id: Option<u64>,
    pub(crate) master_epoch: i32,
    pub(crate) sync_state_set: BTreeSet<u64>,
    pub(crate) sync_state_set_epoch: i32,
}

impl BrokerGroup {
    /// A group with no replica, no master, both epochs 0.
    pub(crate) fn new(cluster_name: &str, broker_name: &str) -> Self {
        BrokerGroup {
            cluster_name: cluster_name.to_owned(),
            broker_name: broker_name.to_owned(),
            replicas: BTreeMap::new(),
            next_assign_broker_id: FIRST_BROKER_CONTROLLER_ID,
            master_broker_id: None,
            master_epoch: 0,
            sync_state_set: BTreeSet::new(),
            sync_state_set_epoch: 0,
        }
    }

    /// The cluster the group registered in (from its first `ApplyBrokerId`).
    pub fn cluster_name(&self) -> &str {
        &self.cluster_name
    }

    /// The group's broker name.
    pub fn broker_name(&self) -> &str {
        &self.broker_name
    }

    /// The registered replicas by broker id.
    pub fn replicas(&self) -> &BTreeMap<u64, Replica> {
        &self.replicas
    }

    /// Whether `broker_id` is a registered replica.
    pub fn contains_replica(&self, broker_id: u64) -> bool {
        self.replicas.contains_key(&broker_id)
    }

    /// The address of replica `broker_id`, if registered.
    pub fn broker_address(&self, broker_id: u64) -> Option<&str> {
        self.replicas.get(&broker_id).map(|r| r.address.as_str())
    }

    /// The register check code replica `broker_id` applied with.
    pub fn register_check_code(&self, broker_id: u64) -> Option<&str> {
        self.replicas
            .get(&broker_id)
            .map(|r| r.register_check_code.as_str())
    }

    /// The id `GetNextBrokerId` hands out next.
    pub fn next_assign_broker_id(&self) -> u64 {
        self.next_assign_broker_id
    }

    /// The master's broker id; `None` before the first election and after a
    /// failed one (the master died and no replica could take over).
    pub fn master_broker_id(&self) -> Option<u64> {
        self.master_broker_id
    }

    /// The master's address.
    pub fn master_address(&self) -> Option<&str> {
        self.master_broker_id.and_then(|id| self.broker_address(id))
    }

    /// The master epoch: bumped by every master change (a new master, or the
    /// master cleared). 0 until the first election.
    pub fn master_epoch(&self) -> i32 {
        self.master_epoch
    }

    /// The SyncStateSet: the replicas in sync with the master (the master
    /// included), the candidates of a clean election.
    pub fn sync_state_set(&self) -> &BTreeSet<u64> {
        &self.sync_state_set
    }

    /// The SyncStateSet epoch: bumped by every change of the set.
    pub fn sync_state_set_epoch(&self) -> i32 {
        self.sync_state_set_epoch
    }

    /// True until the group's first election (master epoch 0): the first
    /// broker to ask becomes the master.
    pub fn is_first_time_for_elect(&self) -> bool {
        self.master_epoch == 0
    }

    /// The ids of all registered replicas.
    pub fn replica_ids(&self) -> BTreeSet<u64> {
        self.replicas.keys().copied().collect()
    }

    /// Checks the group's invariants: the master is a registered replica and
    /// a member of the SyncStateSet; the SyncStateSet holds registered
    /// replicas only; the group has at least one replica; the next id to
    /// assign is above every registered id; epochs are not negative.
    pub fn check_invariants(&self) -> Result<(), String> {
        let name = &self.broker_name;
        if self.replicas.is_empty() {
            return Err(format!("group {name}: no replica"));
        }
        if let Some(master) = self.master_broker_id {
            if !self.replicas.contains_key(&master) {
                return Err(format!("group {name}: master {master} is not a replica"));
            }
            if !self.sync_state_set.contains(&master) {
                return Err(format!(
                    "group {name}: master {master} is not in the SyncStateSet {:?}",
                    self.sync_state_set
                ));
            }
        }
        if let Some(id) = self
            .sync_state_set
            .iter()
            .find(|id| !self.replicas.contains_key(id))
        {
            return Err(format!(
                "group {name}: SyncStateSet member {id} is not a replica"
            ));
        }
        if let Some(max) = self.replicas.keys().next_back() {
            if self.next_assign_broker_id <= *max {
                return Err(format!(
                    "group {name}: next broker id {} not above replica {max}",
                    self.next_assign_broker_id
                ));
            }
        }
        if self.master_epoch < 0 || self.sync_state_set_epoch < 0 {
            return Err(format!("group {name}: negative epoch"));
        }
        Ok(())
    }
}

/// The whole controller state: the broker groups by broker name.
///
/// Serializes to JSON (the Raft snapshot); see [`State::to_json`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    pub(crate) groups: BTreeMap<String, BrokerGroup>,
}

impl State {
    /// An empty state (no broker group).
    pub fn new() -> Self {
        State::default()
    }

    /// The group of `broker_name`, if registered.
    pub fn group(&self, broker_name: &str) -> Option<&BrokerGroup> {
        self.groups.get(broker_name)
    }

    /// All groups, ordered by broker name.
    pub fn groups(&self) -> impl Iterator<Item = &BrokerGroup> {
        self.groups.values()
    }

    /// The number of broker groups.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// Whether no broker group is registered.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Checks every group's invariants ([`BrokerGroup::check_invariants`]) and
    /// that each group is filed under its own broker name.
    pub fn check_invariants(&self) -> Result<(), String> {
        for (name, group) in &self.groups {
            if *name != group.broker_name {
                return Err(format!("group {} filed under {name}", group.broker_name));
            }
            group.check_invariants()?;
        }
        Ok(())
    }

    /// The state as JSON (a snapshot): equal states give equal bytes.
    pub fn to_json(&self) -> Vec<u8> {
        // Maps with string and integer keys, strings and numbers only: cannot fail.
        serde_json::to_vec(self).expect("controller state serializes to JSON")
    }

    /// A state from its JSON snapshot ([`State::to_json`]); a snapshot that
    /// breaks the invariants ([`State::check_invariants`]) is an error too.
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        let state: State = serde_json::from_slice(bytes)?;
        state
            .check_invariants()
            .map_err(<serde_json::Error as serde::de::Error>::custom)?;
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_breaking_the_invariants_is_refused() {
        let mut group = BrokerGroup::new("c", "b");
        group.replicas.insert(
            1,
            Replica {
                address: "a:1".into(),
                register_check_code: "a:1;0".into(),
            },
        );
        group.next_assign_broker_id = 2;
        let mut state = State::default();
        state.groups.insert("b".into(), group);
        assert_eq!(State::from_json(&state.to_json()).unwrap(), state);
        // A master outside the SyncStateSet.
        state.groups.get_mut("b").unwrap().master_broker_id = Some(1);
        let err = State::from_json(&state.to_json()).unwrap_err();
        assert!(err.to_string().contains("not in the SyncStateSet"), "{err}");
        assert!(State::from_json(b"{").is_err());
    }
}
