//! Pending half messages per producer group, for `ferromq-admin txnPending`.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use ferromq_engine::message::keys;
use ferromq_engine::sys::now_ms;
use serde::Serialize;

use super::{check_times, origin_of, real_destination};
use crate::broker::Broker;

/// One undecided transaction (its newest half record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingHalf {
    /// Queue offset of the transaction's first half record.
    pub origin: u64,
    /// Queue offset of its newest half record.
    pub queue_offset: u64,
    /// Commitlog offset of its newest half record.
    pub commit_log_offset: u64,
    /// The client's message id (`UNIQ_KEY`), when set.
    pub msg_id: Option<String>,
    /// Topic it commits to.
    pub real_topic: String,
    /// Producer timestamp (ms).
    pub born_timestamp: i64,
    /// Now minus the producer timestamp (ms).
    pub age_ms: i64,
    /// Check-backs so far.
    pub check_times: u32,
}

/// Pending transactions by producer group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingReport {
    /// Group -> its pending transactions, oldest first.
    pub groups: BTreeMap<String, Vec<PendingHalf>>,
    /// Half queue offset the scan started at (the check-back's progress).
    pub from_offset: u64,
    /// One past the last half queue offset scanned.
    pub to_offset: u64,
}

impl Broker {
    /// Undecided transactions from the check-back's progress to the end of the
    /// half queue (bounded to a few seconds of scanning).
    pub fn pending_transactions(&self) -> PendingReport {
        let from = self.half_progress();
        let mut latest: HashMap<u64, (String, PendingHalf)> = HashMap::new();
        let now = now_ms();
        let to = self.walk_half(from, Instant::now() + Duration::from_secs(5), |qo, half| {
            let origin = origin_of(&half);
            if self.txn.is_settled(origin) {
                return true;
            }
            let group = half.properties.get(keys::PGROUP).unwrap_or("").to_string();
            let p = PendingHalf {
                origin,
                queue_offset: qo,
                commit_log_offset: half.commit_log_offset,
                msg_id: half.properties.get(keys::UNIQ_KEY).map(str::to_string),
                real_topic: real_destination(&half).map(|d| d.0).unwrap_or_default(),
                born_timestamp: half.born_timestamp_ms,
                age_ms: now - half.born_timestamp_ms,
                check_times: check_times(&half),
            };
            latest.insert(origin, (group, p));
            true
        });
        let mut rep = PendingReport {
            from_offset: from,
            to_offset: to,
            ..Default::default()
        };
        for (_, (g, p)) in latest {
            rep.groups.entry(g).or_default().push(p);
        }
        for v in rep.groups.values_mut() {
            v.sort_by_key(|p| (p.born_timestamp, p.origin));
        }
        rep
    }
}

impl Broker {
    /// FERROMQ_GET_PENDING_TRANSACTIONS: [`PendingReport`] as JSON (scanned off the runtime).
    pub(in crate::broker) async fn pending_transactions_request(
        self: &std::sync::Arc<Self>,
        req: crate::broker::dispatch::Request<'_>,
    ) -> crate::broker::HandlerResult {
        use crate::remoting::{response, RemotingCommand};
        let rep = self
            .run_on(req.on, "pending transactions", |b| b.pending_transactions())
            .await?;
        Ok(match serde_json::to_vec(&rep) {
            Ok(body) => RemotingCommand::success().with_body(body),
            Err(e) => RemotingCommand::error(response::SYSTEM_ERROR, e.to_string()),
        })
    }
}
