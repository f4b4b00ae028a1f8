//! Broker liveness: RocketMQ's `DefaultBrokerHeartbeatManager` without its
//! threads, channels and clock.
//!
//! Every call takes `now` (milliseconds, on whatever clock the caller uses
//! for all calls), so the table is deterministic and testable; the caller
//! runs the periodic scan. The table is local to each controller (it is not
//! replicated): the leader judges liveness when it validates a request, and
//! only the resulting events are replicated.

use std::collections::BTreeMap;

use crate::elect::{BrokerLiveness, ElectionInfo};
use crate::manager::ReplicasInfoManager;

/// The heartbeat timeout of a broker that does not send one
/// (`DEFAULT_BROKER_CHANNEL_EXPIRED_TIME`, 10 s).
pub const DEFAULT_BROKER_CHANNEL_EXPIRED_TIME_MS: u64 = 10_000;

/// A replica's identity (`BrokerIdentityInfo`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BrokerIdentity {
    /// The cluster.
    pub cluster_name: String,
    /// The group.
    pub broker_name: String,
    /// The replica's id.
    pub broker_id: u64,
}

/// One heartbeat as a broker sends it (`BrokerHeartbeatRequestHeader`);
/// `None` fields take RocketMQ's defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Heartbeat {
    /// The cluster.
    pub cluster_name: String,
    /// The group.
    pub broker_name: String,
    /// The broker's address.
    pub broker_address: String,
    /// The replica's id.
    pub broker_id: u64,
    /// How long without a heartbeat until the broker is inactive
    /// (default [`DEFAULT_BROKER_CHANNEL_EXPIRED_TIME_MS`]).
    pub heartbeat_timeout_ms: Option<u64>,
    /// The last master epoch in the broker's log (default -1).
    pub epoch: Option<i32>,
    /// The broker's commitlog max offset (default -1).
    pub max_offset: Option<i64>,
    /// The broker's confirm offset (default -1).
    pub confirm_offset: Option<i64>,
    /// `brokerElectionPriority`, lower preferred (default `i32::MAX`).
    pub election_priority: Option<i32>,
}

/// What the table knows of a live broker (`BrokerLiveInfo`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerLiveInfo {
    /// The broker's address.
    pub broker_address: String,
    /// When the last heartbeat came (ms).
    pub last_update_timestamp: u64,
    /// The broker's heartbeat timeout (ms).
    pub heartbeat_timeout_ms: u64,
    /// The largest epoch reported.
    pub epoch: i32,
    /// The max offset reported with it.
    pub max_offset: i64,
    /// The confirm offset reported with it.
    pub confirm_offset: i64,
    /// The last election priority reported.
    pub election_priority: i32,
}

impl BrokerLiveInfo {
    /// Whether the broker is active at `now`: its last heartbeat is at most
    /// its timeout old (`isBrokerActive`).
    pub fn is_active(&self, now: u64) -> bool {
        self.last_update_timestamp
            .saturating_add(self.heartbeat_timeout_ms)
            >= now
    }

    /// The broker's rank as an election candidate.
    pub fn election_info(&self) -> ElectionInfo {
        ElectionInfo {
            epoch: self.epoch,
            max_offset: self.max_offset,
            election_priority: self.election_priority,
        }
    }
}

/// The brokers' liveness table (`DefaultBrokerHeartbeatManager.brokerLiveTable`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeartbeatTable {
    brokers: BTreeMap<BrokerIdentity, BrokerLiveInfo>,
}

impl HeartbeatTable {
    /// An empty table.
    pub fn new() -> Self {
        HeartbeatTable::default()
    }

    /// Records a heartbeat received at `now` (`onBrokerHeartbeat`). The
    /// epoch and offsets are replaced only by a larger epoch, or the same
    /// epoch with a larger max offset, as in RocketMQ.
    pub fn on_heartbeat(&mut self, heartbeat: &Heartbeat, now: u64) {
        let identity = BrokerIdentity {
            cluster_name: heartbeat.cluster_name.clone(),
            broker_name: heartbeat.broker_name.clone(),
            broker_id: heartbeat.broker_id,
        };
        let epoch = heartbeat.epoch.unwrap_or(-1);
        let max_offset = heartbeat.max_offset.unwrap_or(-1);
        let confirm_offset = heartbeat.confirm_offset.unwrap_or(-1);
        let timeout = heartbeat
            .heartbeat_timeout_ms
            .unwrap_or(DEFAULT_BROKER_CHANNEL_EXPIRED_TIME_MS);
        let election_priority = heartbeat.election_priority.unwrap_or(i32::MAX);
        match self.brokers.get_mut(&identity) {
            None => {
                tracing::info!(?identity, "new broker heartbeat");
                self.brokers.insert(
                    identity,
                    BrokerLiveInfo {
                        broker_address: heartbeat.broker_address.clone(),
                        last_update_timestamp: now,
                        heartbeat_timeout_ms: timeout,
                        epoch,
                        max_offset,
                        confirm_offset,
                        election_priority,
                    },
                );
            }
            Some(info) => {
                info.broker_address.clone_from(&heartbeat.broker_address);
                info.last_update_timestamp = now;
                info.heartbeat_timeout_ms = timeout;
                info.election_priority = election_priority;
                if epoch > info.epoch || (epoch == info.epoch && max_offset > info.max_offset) {
                    info.epoch = epoch;
                    info.max_offset = max_offset;
                    info.confirm_offset = confirm_offset;
                }
            }
        }
    }

    /// Forgets a broker (its connection closed: `onBrokerChannelClose`).
    pub fn remove(&mut self, identity: &BrokerIdentity) -> Option<BrokerLiveInfo> {
        self.brokers.remove(identity)
    }

    /// What the table knows of a broker (`getBrokerLiveInfo`).
    pub fn get(
        &self,
        cluster_name: &str,
        broker_name: &str,
        broker_id: u64,
    ) -> Option<&BrokerLiveInfo> {
        self.brokers.get(&BrokerIdentity {
            cluster_name: cluster_name.to_owned(),
            broker_name: broker_name.to_owned(),
            broker_id,
        })
    }

    /// Whether a broker is active at `now` (`isBrokerActive`); unknown
    /// brokers are not.
    pub fn is_active(
        &self,
        cluster_name: &str,
        broker_name: &str,
        broker_id: u64,
        now: u64,
    ) -> bool {
        self.get(cluster_name, broker_name, broker_id)
            .is_some_and(|info| info.is_active(now))
    }

    /// Removes the brokers whose last heartbeat is more than their timeout
    /// old at `now` and returns them, ordered (`scanNotActiveBroker`; the
    /// caller then checks whether each was a master and triggers elections).
    pub fn scan_not_active(&mut self, now: u64) -> Vec<BrokerIdentity> {
        let expired: Vec<BrokerIdentity> = self
            .brokers
            .iter()
            .filter(|(_, info)| {
                now.saturating_sub(info.last_update_timestamp) > info.heartbeat_timeout_ms
            })
            .map(|(id, _)| id.clone())
            .collect();
        for identity in &expired {
            tracing::warn!(?identity, "broker heartbeat expired");
            self.brokers.remove(identity);
        }
        expired
    }

    /// The longest heartbeat timeout of the brokers known, if any: how long
    /// a controller that just became the leader waits before judging
    /// masters by this table (it is not replicated, so a fresh leader may
    /// not yet have heard from every live broker).
    pub fn max_heartbeat_timeout_ms(&self) -> Option<u64> {
        self.brokers.values().map(|i| i.heartbeat_timeout_ms).max()
    }

    /// The number of active brokers per cluster and group at `now`
    /// (`getActiveBrokersNum`).
    pub fn active_brokers_num(&self, now: u64) -> BTreeMap<String, BTreeMap<String, usize>> {
        let mut map: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
        for (id, _) in self.brokers.iter().filter(|(_, info)| info.is_active(now)) {
            *map.entry(id.cluster_name.clone())
                .or_default()
                .entry(id.broker_name.clone())
                .or_default() += 1;
        }
        map
    }

    /// The table as the [`BrokerLiveness`] the state machine's requests take,
    /// judged at `now`.
    pub fn at(&self, now: u64) -> LivenessAt<'_> {
        LivenessAt { table: self, now }
    }

    /// The groups whose master is inactive at `now` while another replica is
    /// active: the ones to elect a new master for
    /// ([`ReplicasInfoManager::scan_need_reelect_broker_sets`] with this
    /// table's liveness).
    pub fn groups_with_inactive_master(
        &self,
        manager: &ReplicasInfoManager,
        now: u64,
    ) -> Vec<String> {
        manager.scan_need_reelect_broker_sets(&self.at(now))
    }
}

/// A [`HeartbeatTable`] judged at a fixed time ([`HeartbeatTable::at`]).
#[derive(Clone, Copy, Debug)]
pub struct LivenessAt<'a> {
    table: &'a HeartbeatTable,
    now: u64,
}

impl BrokerLiveness for LivenessAt<'_> {
    fn is_alive(&self, cluster_name: &str, broker_name: &str, broker_id: u64) -> bool {
        self.table
            .is_active(cluster_name, broker_name, broker_id, self.now)
    }

    fn election_info(
        &self,
        cluster_name: &str,
        broker_name: &str,
        broker_id: u64,
    ) -> Option<ElectionInfo> {
        self.table
            .get(cluster_name, broker_name, broker_id)
            .map(BrokerLiveInfo::election_info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hb(id: u64, timeout: u64, epoch: i32, offset: i64) -> Heartbeat {
        Heartbeat {
            cluster_name: "c".into(),
            broker_name: "b".into(),
            broker_address: format!("10.0.0.{id}:10911"),
            broker_id: id,
            heartbeat_timeout_ms: Some(timeout),
            epoch: Some(epoch),
            max_offset: Some(offset),
            confirm_offset: None,
            election_priority: None,
        }
    }

    #[test]
    fn active_until_the_timeout_then_scanned_out() {
        let mut t = HeartbeatTable::new();
        t.on_heartbeat(&hb(1, 1_000, 1, 10), 5_000);
        t.on_heartbeat(&hb(2, 3_000, 1, 10), 5_000);
        assert!(t.is_active("c", "b", 1, 6_000), "last + timeout >= now");
        assert!(!t.is_active("c", "b", 1, 6_001));
        assert!(!t.is_active("c", "b", 3, 5_000), "unknown broker");
        assert_eq!(t.active_brokers_num(6_001)["c"]["b"], 1);
        assert!(t.scan_not_active(6_000).is_empty());
        let gone = t.scan_not_active(6_001);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].broker_id, 1);
        assert!(t.get("c", "b", 1).is_none());
        // A new heartbeat keeps a broker alive.
        t.on_heartbeat(&hb(2, 3_000, 1, 10), 7_000);
        assert!(t.is_active("c", "b", 2, 10_000));
        // A clock going backwards does not expire anyone.
        assert!(t.scan_not_active(0).is_empty());
    }

    #[test]
    fn epoch_and_offset_only_move_forward() {
        let mut t = HeartbeatTable::new();
        t.on_heartbeat(&hb(1, 1_000, 2, 100), 0);
        t.on_heartbeat(&hb(1, 1_000, 1, 500), 1);
        assert_eq!(
            (
                t.get("c", "b", 1).unwrap().epoch,
                t.get("c", "b", 1).unwrap().max_offset
            ),
            (2, 100)
        );
        t.on_heartbeat(&hb(1, 1_000, 2, 150), 2);
        assert_eq!(t.get("c", "b", 1).unwrap().max_offset, 150);
        t.on_heartbeat(&hb(1, 1_000, 3, 10), 3);
        let info = t.get("c", "b", 1).unwrap();
        assert_eq!(
            (info.epoch, info.max_offset, info.last_update_timestamp),
            (3, 10, 3)
        );
        assert_eq!(info.election_priority, i32::MAX);
        let live = t.at(3);
        assert_eq!(live.election_info("c", "b", 1).unwrap().epoch, 3);
        assert!(live.is_alive("c", "b", 1));
        assert!(t
            .remove(&BrokerIdentity {
                cluster_name: "c".into(),
                broker_name: "b".into(),
                broker_id: 1
            })
            .is_some());
        assert!(!t.at(3).is_alive("c", "b", 1));
    }

    #[test]
    fn default_timeout_is_ten_seconds() {
        let mut t = HeartbeatTable::new();
        t.on_heartbeat(
            &Heartbeat {
                cluster_name: "c".into(),
                broker_name: "b".into(),
                broker_id: 1,
                ..Heartbeat::default()
            },
            0,
        );
        assert!(t.is_active("c", "b", 1, 10_000));
        assert!(!t.is_active("c", "b", 1, 10_001));
        let info = t.get("c", "b", 1).unwrap();
        assert_eq!(
            (info.epoch, info.max_offset, info.confirm_offset),
            (-1, -1, -1)
        );
    }
}
