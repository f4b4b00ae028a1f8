//! Master election: RocketMQ's `DefaultElectPolicy`, and the liveness the
//! controller passes in (`BrokerValidPredicate` and `BrokerLiveInfoGetter`).

use std::cmp::{Ordering, Reverse};
use std::collections::BTreeSet;

/// What a replica last reported in its heartbeat that ranks it as a
/// candidate (part of RocketMQ's `BrokerLiveInfo`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ElectionInfo {
    /// The last master epoch in the replica's log (`-1`: unknown).
    pub epoch: i32,
    /// The replica's commitlog max offset (`-1`: unknown).
    pub max_offset: i64,
    /// The broker's `brokerElectionPriority`: lower is preferred
    /// (`i32::MAX`: not set).
    pub election_priority: i32,
}

/// The liveness the request-side logic needs: which replicas are alive
/// (RocketMQ's `BrokerValidPredicate`) and, for the election's preference,
/// what each last reported (`BrokerLiveInfoGetter`).
///
/// Any `Fn(&str, &str, u64) -> bool` (cluster, broker name, broker id) is a
/// `BrokerLiveness` without election info; a
/// [`crate::heartbeat::HeartbeatTable`] at a given time gives both
/// ([`crate::heartbeat::HeartbeatTable::at`]).
pub trait BrokerLiveness {
    /// Whether replica `broker_id` of `broker_name` is alive.
    fn is_alive(&self, cluster_name: &str, broker_name: &str, broker_id: u64) -> bool;

    /// The replica's last reported epoch, offset and priority, if known.
    fn election_info(
        &self,
        _cluster_name: &str,
        _broker_name: &str,
        _broker_id: u64,
    ) -> Option<ElectionInfo> {
        None
    }
}

impl<F> BrokerLiveness for F
where
    F: Fn(&str, &str, u64) -> bool,
{
    fn is_alive(&self, cluster_name: &str, broker_name: &str, broker_id: u64) -> bool {
        self(cluster_name, broker_name, broker_id)
    }
}

/// The candidates and constraints of one election.
#[derive(Clone, Copy, Debug)]
pub struct ElectionInput<'a> {
    /// The group's cluster.
    pub cluster_name: &'a str,
    /// The group.
    pub broker_name: &'a str,
    /// The SyncStateSet: the candidates tried first.
    pub sync_state_set: &'a BTreeSet<u64>,
    /// All replicas, tried when no SyncStateSet member can be elected; `Some`
    /// only when unclean election is enabled.
    pub all_replicas: Option<&'a BTreeSet<u64>>,
    /// The current master.
    pub old_master: Option<u64>,
    /// The designated broker (an admin's election): it or nobody.
    pub prefer: Option<u64>,
}

/// Elects a master (`DefaultElectPolicy.elect`): among the alive members of
/// the SyncStateSet, then (unclean election) among all alive replicas:
/// - the old master when it is alive and no other broker is designated;
/// - the designated broker if it is an alive candidate, else nobody;
/// - else the candidate with the largest epoch, then the largest max offset,
///   then the smallest election priority value, then the smallest id
///   (replicas without election info rank last).
///
/// Returns the old master itself when it is still valid: the caller answers
/// `CONTROLLER_MASTER_STILL_EXIST`.
pub fn elect(liveness: &dyn BrokerLiveness, input: &ElectionInput<'_>) -> Option<u64> {
    try_elect(liveness, input, input.sync_state_set).or_else(|| {
        input
            .all_replicas
            .and_then(|all| try_elect(liveness, input, all))
    })
}

fn try_elect(
    liveness: &dyn BrokerLiveness,
    input: &ElectionInput<'_>,
    brokers: &BTreeSet<u64>,
) -> Option<u64> {
    let alive: BTreeSet<u64> = brokers
        .iter()
        .copied()
        .filter(|&id| liveness.is_alive(input.cluster_name, input.broker_name, id))
        .collect();
    if alive.is_empty() {
        return None;
    }
    if let Some(old) = input.old_master {
        if alive.contains(&old) && input.prefer.is_none_or(|p| p == old) {
            return Some(old);
        }
    }
    if let Some(prefer) = input.prefer {
        return alive.contains(&prefer).then_some(prefer);
    }
    alive.into_iter().min_by(|&a, &b| {
        let rank = |id| {
            liveness
                .election_info(input.cluster_name, input.broker_name, id)
                .map(|i| (Reverse(i.epoch), Reverse(i.max_offset), i.election_priority))
        };
        match (rank(a), rank(b)) {
            (Some(ra), Some(rb)) => ra.cmp(&rb),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        }
        .then(a.cmp(&b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Info(Vec<(u64, bool, Option<ElectionInfo>)>);

    impl BrokerLiveness for Info {
        fn is_alive(&self, _: &str, _: &str, id: u64) -> bool {
            self.0.iter().any(|&(i, alive, _)| i == id && alive)
        }
        fn election_info(&self, _: &str, _: &str, id: u64) -> Option<ElectionInfo> {
            self.0.iter().find(|&&(i, _, _)| i == id).and_then(|t| t.2)
        }
    }

    fn info(epoch: i32, max_offset: i64, election_priority: i32) -> Option<ElectionInfo> {
        Some(ElectionInfo {
            epoch,
            max_offset,
            election_priority,
        })
    }

    fn input<'a>(
        sss: &'a BTreeSet<u64>,
        all: Option<&'a BTreeSet<u64>>,
        old: Option<u64>,
        prefer: Option<u64>,
    ) -> ElectionInput<'a> {
        ElectionInput {
            cluster_name: "c",
            broker_name: "b",
            sync_state_set: sss,
            all_replicas: all,
            old_master: old,
            prefer,
        }
    }

    #[test]
    fn old_master_alive_is_kept_unless_another_is_designated() {
        let sss = BTreeSet::from([1, 2, 3]);
        let all_alive = |_: &str, _: &str, _: u64| true;
        assert_eq!(
            elect(&all_alive, &input(&sss, None, Some(1), None)),
            Some(1)
        );
        assert_eq!(
            elect(&all_alive, &input(&sss, None, Some(1), Some(1))),
            Some(1)
        );
        assert_eq!(
            elect(&all_alive, &input(&sss, None, Some(1), Some(3))),
            Some(3)
        );
        // Designated but not a candidate: nobody.
        assert_eq!(
            elect(&all_alive, &input(&sss, None, Some(1), Some(9))),
            None
        );
    }

    #[test]
    fn ranks_by_epoch_then_offset_then_priority_then_id() {
        let sss = BTreeSet::from([1, 2, 3, 4]);
        let by_epoch = Info(vec![
            (1, false, info(9, 9, 0)),
            (2, true, info(2, 1, 5)),
            (3, true, info(1, 100, 0)),
        ]);
        assert_eq!(elect(&by_epoch, &input(&sss, None, Some(1), None)), Some(2));
        let by_offset = Info(vec![(2, true, info(1, 5, 0)), (3, true, info(1, 7, 9))]);
        assert_eq!(
            elect(&by_offset, &input(&sss, None, Some(1), None)),
            Some(3)
        );
        let by_priority = Info(vec![(2, true, info(1, 7, 2)), (3, true, info(1, 7, 1))]);
        assert_eq!(
            elect(&by_priority, &input(&sss, None, Some(1), None)),
            Some(3)
        );
        let by_id = Info(vec![(3, true, info(1, 7, 1)), (2, true, info(1, 7, 1))]);
        assert_eq!(elect(&by_id, &input(&sss, None, Some(1), None)), Some(2));
        let unknown_last = Info(vec![(2, true, None), (4, true, info(-1, -1, i32::MAX))]);
        assert_eq!(
            elect(&unknown_last, &input(&sss, None, None, None)),
            Some(4)
        );
    }

    #[test]
    fn unclean_election_only_when_all_replicas_are_given() {
        let sss = BTreeSet::from([1]);
        let all = BTreeSet::from([1, 2, 3]);
        let only_3 = |_: &str, _: &str, id: u64| id == 3;
        assert_eq!(elect(&only_3, &input(&sss, None, Some(1), None)), None);
        assert_eq!(
            elect(&only_3, &input(&sss, Some(&all), Some(1), None)),
            Some(3)
        );
    }
}
