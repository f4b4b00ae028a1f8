//! Queue locks for orderly consumers (LOCK_BATCH_MQ / UNLOCK_BATCH_MQ),
//! RocketMQ's `RebalanceLockManager`: one owner per (group, queue), a lease of
//! 60 s renewed by every lock request of the owner.

use ferromq_engine::sync::LockExt;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// How long a lock lives without renewal (`rocketmq.broker.rebalance.lockMaxLiveTime`).
pub const LOCK_LEASE: Duration = Duration::from_secs(60);

/// A message queue as clients name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageQueue {
    /// Topic.
    pub topic: String,
    /// Broker name.
    #[serde(default)]
    pub broker_name: String,
    /// Queue id.
    pub queue_id: i32,
}

#[derive(Debug, Clone)]
struct Lease {
    client_id: String,
    renewed: Instant,
}

/// The lock table.
#[derive(Debug, Default)]
pub struct RebalanceLockManager {
    t: Mutex<HashMap<String, HashMap<MessageQueue, Lease>>>,
}

impl RebalanceLockManager {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Lock or renew each queue for `client_id`; returns the queues it now holds.
    pub fn try_lock_batch(
        &self,
        group: &str,
        mqs: &[MessageQueue],
        client_id: &str,
        now: Instant,
    ) -> Vec<MessageQueue> {
        let mut t = self.t.locked();
        let table = t.entry(group.to_string()).or_default();
        let mut ok = Vec::new();
        for mq in mqs {
            let free = match table.get(mq) {
                None => true,
                Some(l) => {
                    l.client_id == client_id
                        || now.saturating_duration_since(l.renewed) > LOCK_LEASE
                }
            };
            if free {
                table.insert(
                    mq.clone(),
                    Lease {
                        client_id: client_id.to_string(),
                        renewed: now,
                    },
                );
                ok.push(mq.clone());
            }
        }
        ok
    }

    /// Release the queues `client_id` holds among `mqs`.
    pub fn unlock_batch(&self, group: &str, mqs: &[MessageQueue], client_id: &str) {
        let mut t = self.t.locked();
        if let Some(table) = t.get_mut(group) {
            for mq in mqs {
                if table.get(mq).is_some_and(|l| l.client_id == client_id) {
                    table.remove(mq);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mq(q: i32) -> MessageQueue {
        MessageQueue {
            topic: "T".into(),
            broker_name: "b".into(),
            queue_id: q,
        }
    }

    #[test]
    fn lease_owner_renewal_and_expiry() {
        let m = RebalanceLockManager::new();
        let t0 = Instant::now();
        assert_eq!(m.try_lock_batch("G", &[mq(0), mq(1)], "c1", t0).len(), 2);
        assert_eq!(
            m.try_lock_batch("G", &[mq(1), mq(2)], "c2", t0),
            vec![mq(2)]
        );
        assert_eq!(m.try_lock_batch("G2", &[mq(1)], "c2", t0), vec![mq(1)]);
        assert_eq!(m.try_lock_batch("G", &[mq(1)], "c1", t0).len(), 1);
        let later = t0 + LOCK_LEASE + Duration::from_secs(1);
        assert_eq!(m.try_lock_batch("G", &[mq(0)], "c2", later), vec![mq(0)]);
        m.unlock_batch("G", &[mq(2)], "c1");
        assert!(m.try_lock_batch("G", &[mq(2)], "c1", t0).is_empty());
        m.unlock_batch("G", &[mq(2)], "c2");
        assert_eq!(m.try_lock_batch("G", &[mq(2)], "c1", t0), vec![mq(2)]);
    }
}
