//! Broker administration: UPDATE_AND_CREATE_TOPIC, GET_ALL_TOPIC_CONFIG,
//! GET_BROKER_RUNTIME_INFO, GET_BROKER_CONFIG, TRIGGER_DELETE_FILES /
//! DELETE_EXPIRED_COMMITLOG, GET_ALL_CONSUMER_OFFSET,
//! GET_ALL_SUBSCRIPTIONGROUP_CONFIG, GET_ALL_DELAY_OFFSET, LOCK_BATCH_MQ and
//! UNLOCK_BATCH_MQ (RocketMQ's `AdminBrokerProcessor`).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use ferromq_engine::TopicConfig;
use std::time::Instant;

use serde_json::Value;

use super::lock::MessageQueue;
use super::{store_error_response, Broker, HandlerResult, Request};
use crate::remoting::{json, response, HeaderError, RemotingCommand};
use crate::util::now_ms;

/// Version string GET_BROKER_RUNTIME_INFO reports (the 4.x protocol it speaks).
const BROKER_VERSION_DESC: &str = "V4_9_4";
/// `MQVersion.Version.V4_9_4.ordinal()`.
pub(super) const BROKER_VERSION: i32 = 401;

fn parse_lock_body(body: &[u8]) -> Result<(String, String, Vec<MessageQueue>), String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("lock body: {e}"))?;
    let v = json::parse_lenient(text).map_err(|e| format!("lock body: {e}"))?;
    let s = |k: &str| match &v[k] {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(format!("lock body has no {k}")),
    };
    let group = s("consumerGroup")?;
    ferromq_engine::validate_group(&group)?;
    let client = s("clientId")?;
    let mut mqs = Vec::new();
    if let Value::Array(a) = &v["mqSet"] {
        for m in a {
            let topic = m["topic"].as_str().ok_or("mq without topic")?.to_string();
            super::names::validate_subscribed_topic(&topic)?;
            let broker_name = m["brokerName"].as_str().unwrap_or("").to_string();
            let queue_id = match &m["queueId"] {
                Value::Number(n) => n.as_i64(),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            }
            .and_then(|q| i32::try_from(q).ok())
            .ok_or("mq without a queueId")?;
            mqs.push(MessageQueue {
                topic,
                broker_name,
                queue_id,
            });
        }
    }
    Ok((group, client, mqs))
}

impl Broker {
    /// UPDATE_AND_CREATE_TOPIC: read and write queue counts, perm, flags and
    /// order as given (RocketMQ's defaults 16/16/6 when absent). The topic
    /// table is on disk before SUCCESS is answered (an admin's change must
    /// survive a crash right after; a topic without messages would not be
    /// learned again, one with messages only with a guessed queue count);
    /// concurrent changes share one write.
    pub(super) async fn create_topic(self: &Arc<Self>, req: Request<'_>) -> HandlerResult {
        let tc = topic_config_header(&req.cmd)?;
        let topic = tc.topic_name.clone();
        let (r, w) = (tc.read_queue_nums, tc.write_queue_nums);
        // The same rule as a send that auto-creates a topic.
        if let Err(why) = super::names::check_creatable_topic(&topic, &self.cfg.broker_cluster_name)
        {
            return Ok(super::names::refuse(why));
        }
        let res = self
            .run_on(req.on, "create topic", move |b| {
                let tc = b.store.upsert_topic(tc)?;
                b.store.persist_topics()?;
                Ok::<_, ferromq_engine::Error>(tc)
            })
            .await?;
        Ok(match res {
            Ok(_) => {
                tracing::info!(%topic, read = r, write = w, "topic created or updated");
                self.register_now.notify_one();
                RemotingCommand::success()
            }
            Err(e) => store_error_response(&e),
        })
    }

    /// GET_ALL_TOPIC_CONFIG: `{"topicConfigTable":{...},"dataVersion":{...}}`.
    pub(super) async fn all_topic_config(self: &Arc<Self>, _req: Request<'_>) -> HandlerResult {
        let table: serde_json::Map<String, Value> = self
            .store
            .topics()
            .into_iter()
            .filter_map(|t| {
                let name = t.topic_name.clone();
                serde_json::to_value(t).ok().map(|v| (name, v))
            })
            .collect();
        let v = self.store.topic_table_version();
        let body = serde_json::json!({
            "topicConfigTable": table,
            "dataVersion": {"timestamp": v.timestamp, "counter": v.counter},
        });
        Ok(RemotingCommand::success().with_body(body.to_string().into_bytes()))
    }

    /// GET_ALL_DELAY_OFFSET: `{"offsetTable":{1:5,...}}` (fastjson's bare keys).
    pub(super) async fn all_delay_offset(self: &Arc<Self>, _req: Request<'_>) -> HandlerResult {
        let offsets: Vec<(u32, String)> = self
            .store
            .delay_offsets()
            .into_iter()
            .map(|(k, v)| (k, v.to_string()))
            .collect();
        let table = json::int_key_map(offsets.iter().map(|(k, v)| (*k, v.as_str())), false);
        Ok(RemotingCommand::success()
            .with_body(format!("{{\"offsetTable\":{table}}}").into_bytes()))
    }

    /// GET_ALL_CONSUMER_OFFSET: `consumerOffset.json`'s content.
    pub(super) async fn all_consumer_offset(self: &Arc<Self>, _req: Request<'_>) -> HandlerResult {
        Ok(RemotingCommand::success().with_body(self.offsets.to_json().into_bytes()))
    }

    /// GET_ALL_SUBSCRIPTIONGROUP_CONFIG: `subscriptionGroup.json`'s content.
    pub(super) async fn all_subscription_group(
        self: &Arc<Self>,
        _req: Request<'_>,
    ) -> HandlerResult {
        Ok(RemotingCommand::success().with_body(self.groups.to_json().into_bytes()))
    }

    /// The figures of GET_BROKER_RUNTIME_INFO, RocketMQ's names.
    ///
    /// ferromq adds `dispatchRetries`, `recordsRefused`, and while there is
    /// one, `dispatchError` (a resource error dispatch is retrying) and
    /// `consumeQueueFlushError`.
    /// ferromq adds `consumeQueuesDamagedAtStart` (consume queues the last
    /// start found damaged and rebuilt), `consumeQueueUnitsRepaired` (units
    /// reads found damaged and rebuilt in place), `damagedRecordCount` (records reads
    /// found damaged and skipped) and `damagedRecords` (the first of those, a
    /// JSON array of `{topic, queueId, queueOffset, commitLogOffset, reason}`).
    ///
    /// Replication adds, on a master, `haSlaveCount` and per connected slave `i`
    /// (0-based, by address) `haSlave<i>Addr`, `haSlave<i>AckedOffset`,
    /// `haSlave<i>LagBytes` and `haSlave<i>LagMs` (a SYNC_MASTER also
    /// `haSyncMasterWithoutSlave`: true while no slave is connected, when
    /// every send is answered SLAVE_NOT_AVAILABLE); on a slave, `haMasterConnected`,
    /// `haMasterAddress`, `masterAddr` and `slaveSyncLastOkTimestamp`.
    ///
    /// ferromq adds `pullHoldCount` (pulls held by long polling now) and
    /// `pullHoldRefusedCount` (pulls short-polled instead of held because their
    /// connection had `longPollingMaxParkedPerConnection` held) and
    /// `onewayDroppedCount` (server oneways such as check-backs dropped because
    /// their connection's or the server's queued bytes were at the bound).
    pub fn runtime_info(&self) -> BTreeMap<String, String> {
        let st = self.store.stats();
        let rs = self.store.retention_stats();
        let (m, put, get) = self.stats.snapshot();
        let now = now_ms();
        let mut t = BTreeMap::new();
        let mut put_kv = |k: &str, v: String| {
            t.insert(k.to_string(), v);
        };
        put_kv("brokerVersionDesc", BROKER_VERSION_DESC.into());
        put_kv("brokerVersion", BROKER_VERSION.to_string());
        put_kv("msgPutTotalYesterdayMorning", m[0].to_string());
        put_kv("msgPutTotalTodayMorning", m[1].to_string());
        put_kv("msgPutTotalTodayNow", put.to_string());
        put_kv("msgGetTotalYesterdayMorning", m[2].to_string());
        put_kv("msgGetTotalTodayMorning", m[3].to_string());
        put_kv("msgGetTotalTodayNow", get.to_string());
        let pools = [
            (
                "sendThreadPoolQueue",
                &self.send_pool,
                self.cfg.send_thread_pool_queue_capacity,
            ),
            (
                "pullThreadPoolQueue",
                &self.pull_pool,
                self.cfg.pull_thread_pool_queue_capacity,
            ),
        ];
        for (name, pool, capacity) in pools {
            put_kv(&format!("{name}Size"), pool.queued().to_string());
            put_kv(&format!("{name}Capacity"), capacity.to_string());
        }
        // ferromq figures (RocketMQ reports none for held pulls).
        put_kv("pullHoldCount", self.hold.parked().to_string());
        put_kv("pullHoldRefusedCount", self.hold.refused().to_string());
        put_kv(
            "onewayDroppedCount",
            crate::remoting::server::dropped_oneways().to_string(),
        );
        put_kv(
            "dispatchBehindBytes",
            st.commit_log_max_offset
                .saturating_sub(st.dispatched_offset)
                .to_string(),
        );
        put_kv("commitLogMinOffset", st.commit_log_min_offset.to_string());
        put_kv("commitLogMaxOffset", st.commit_log_max_offset.to_string());
        put_kv(
            "commitLogFlushedOffset",
            st.commit_log_flushed_offset.to_string(),
        );
        put_kv("commitLogDiskRatio", format!("{}", rs.disk_used_ratio));
        put_kv("consumeQueueDiskRatio", format!("{}", rs.disk_used_ratio));
        put_kv("diskRatio", format!("{}", rs.disk_used_ratio));
        put_kv("diskFull", rs.disk_full.to_string());
        put_kv("commitLogFiles", st.commit_log_files.to_string());
        put_kv("consumeQueues", st.consume_queues.to_string());
        put_kv("commitLogSyncs", st.commit_log_syncs.to_string());
        put_kv(
            "lastDispatchedStoreTimestamp",
            st.last_dispatched_store_timestamp_ms.to_string(),
        );
        // Timer messages: RocketMQ 5's keys for how far the wheel is behind
        // the clock (seconds) and the timer topic behind the wheel
        // (messages), and ferromq's pending and delivered counts.
        let timer = self.store.timer_stats();
        if timer.read_time_ms > 0 {
            put_kv(
                "timerReadBehind",
                (now.saturating_sub(timer.read_time_ms).max(0) / 1000).to_string(),
            );
            put_kv(
                "timerOffsetBehind",
                self.store
                    .max_offset_in_queue(ferromq_engine::TIMER_TOPIC, 0)
                    .saturating_sub(timer.enqueue_offset)
                    .to_string(),
            );
        }
        put_kv("timerPendingNum", timer.pending.to_string());
        put_kv("timerDeliveredNum", timer.delivered.to_string());
        put_kv("bootTimestamp", self.stats.boot_ms.to_string());
        put_kv(
            "runtime",
            format_runtime(now.saturating_sub(self.stats.boot_ms)),
        );
        put_kv("brokerRole", self.store.role().as_str().to_string());
        put_kv("writable", st.fenced.is_none().to_string());
        if let Some(f) = st.fenced {
            put_kv("fenced", f);
        }
        put_kv("dispatchRetries", st.dispatch_retries.to_string());
        if let Some(e) = st.dispatch_error {
            put_kv("dispatchError", e);
        }
        put_kv("recordsRefused", st.records_refused.to_string());
        if let Some(f) = st.consume_queue_flush_error {
            put_kv("consumeQueueFlushError", f);
        }
        put_kv(
            "consumeQueuesDamagedAtStart",
            self.store
                .recovery_report()
                .consume_queues_damaged
                .to_string(),
        );
        put_kv("damagedRecordCount", st.damaged_records.to_string());
        put_kv(
            "consumeQueueUnitsRepaired",
            st.consume_queue_units_repaired.to_string(),
        );
        let damaged: Vec<_> = self
            .store
            .damaged_records()
            .into_iter()
            .map(|d| {
                serde_json::json!({
                    "topic": d.topic,
                    "queueId": d.queue_id,
                    "queueOffset": d.queue_offset,
                    "commitLogOffset": d.commit_log_offset,
                    "reason": d.reason,
                })
            })
            .collect();
        put_kv(
            "damagedRecords",
            serde_json::Value::from(damaged).to_string(),
        );
        self.ha_runtime_info(&mut put_kv);
        t
    }

    /// The replication figures of [`Broker::runtime_info`].
    fn ha_runtime_info(&self, put_kv: &mut impl FnMut(&str, String)) {
        if let Some(cm) = self.controller() {
            let v = cm.view();
            put_kv("brokerRole", self.role().as_str().to_string());
            put_kv(
                "controllerBrokerId",
                cm.controller_id()
                    .map_or(String::new(), |id| id.to_string()),
            );
            put_kv("masterEpoch", v.master_epoch.to_string());
            put_kv(
                "syncStateSet",
                v.sync_state_set
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            );
            put_kv("syncStateSetEpoch", v.sync_state_set_epoch.to_string());
            put_kv("controllerFenced", cm.fenced().to_string());
        }
        let Some(ha) = self.ha() else { return };
        // The HA port a slave of this master connects to (controller mode's
        // slaves ask for it here).
        if !ha.advertised().is_empty() {
            put_kv("haServerAddr", ha.advertised().to_string());
        }
        if let Some(status) = ha.slave_status() {
            put_kv("haMasterConnected", status.connected.to_string());
            put_kv("haMasterAddress", ha.master_address().unwrap_or_default());
            put_kv("haSlaveConnections", status.connections.to_string());
            put_kv("haSlaveProtocolErrors", status.protocol_errors.to_string());
            put_kv("masterAddr", self.master_addr().unwrap_or_default());
            put_kv(
                "slaveSyncLastOkTimestamp",
                self.slave_sync
                    .last_ok_ms
                    .load(Ordering::Acquire)
                    .to_string(),
            );
            put_kv(
                "slaveSyncFailedRounds",
                self.slave_sync
                    .failed_rounds
                    .load(Ordering::Relaxed)
                    .to_string(),
            );
            return;
        }
        let mut slaves = ha.slaves();
        slaves.sort_by_key(|s| s.addr);
        put_kv("haSlaveCount", slaves.len().to_string());
        if self.role() == ferromq_engine::BrokerRole::SyncMaster && self.controller().is_none() {
            // Said loudly: every send is answered SLAVE_NOT_AVAILABLE meanwhile.
            put_kv("haSyncMasterWithoutSlave", slaves.is_empty().to_string());
        }
        for (i, s) in slaves.iter().enumerate() {
            put_kv(&format!("haSlave{i}Addr"), s.addr.to_string());
            put_kv(
                &format!("haSlave{i}AckedOffset"),
                s.acked_offset.to_string(),
            );
            put_kv(&format!("haSlave{i}LagBytes"), s.lag_bytes.to_string());
            put_kv(&format!("haSlave{i}LagMs"), s.lag_ms.to_string());
        }
    }

    /// GET_BROKER_RUNTIME_INFO: a KVTable `{"table":{...}}`.
    pub(super) async fn broker_runtime_info(self: &Arc<Self>, req: Request<'_>) -> HandlerResult {
        self.run_on(req.on, "runtime info", |b| {
            let body = serde_json::json!({ "table": b.runtime_info() });
            RemotingCommand::success().with_body(body.to_string().into_bytes())
        })
        .await
    }

    /// GET_BROKER_CONFIG: the effective configuration as `key=value` lines
    /// (store keys, then broker keys), with a data version header.
    pub(super) async fn broker_config(self: &Arc<Self>, _req: Request<'_>) -> HandlerResult {
        // The live settings (UPDATE_BROKER_CONFIG) replace their start values;
        // the store's are in its current config.
        let start: String = self
            .cfg
            .to_properties(false)
            .lines()
            .filter(|l| {
                let key = l.split('=').next().unwrap_or_default();
                !super::ops_mut::LIVE_KEYS.contains(&key)
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let text = format!(
            "{}{start}{}",
            self.store.current_config().to_properties(),
            self.live.to_properties()
        );
        let version = serde_json::json!({"counter": 0, "timestamp": self.stats.boot_ms});
        Ok(RemotingCommand::success()
            .with_ext("version", version)
            .with_body(text.into_bytes()))
    }

    /// TRIGGER_DELETE_FILES and DELETE_EXPIRED_COMMITLOG: delete expired files now.
    pub(super) async fn delete_expired_files(self: &Arc<Self>, _req: Request<'_>) -> HandlerResult {
        self.store.execute_delete_files_manually();
        tracing::info!("manual deletion of expired commitlog files requested");
        Ok(RemotingCommand::success())
    }

    /// LOCK_BATCH_MQ: `{"lockOKMQSet":[...]}`.
    pub(super) async fn lock_batch_mq(self: &Arc<Self>, req: Request<'_>) -> HandlerResult {
        Ok(match parse_lock_body(&req.cmd.body) {
            Ok((group, client, mqs)) => {
                let ok = self
                    .locks
                    .try_lock_batch(&group, &mqs, &client, Instant::now());
                let body = serde_json::json!({ "lockOKMQSet": ok });
                RemotingCommand::success().with_body(body.to_string().into_bytes())
            }
            Err(e) => RemotingCommand::error(response::SYSTEM_ERROR, e),
        })
    }

    /// UNLOCK_BATCH_MQ.
    pub(super) async fn unlock_batch_mq(self: &Arc<Self>, req: Request<'_>) -> HandlerResult {
        Ok(match parse_lock_body(&req.cmd.body) {
            Ok((group, client, mqs)) => {
                self.locks.unlock_batch(&group, &mqs, &client);
                RemotingCommand::success()
            }
            Err(e) => RemotingCommand::error(response::SYSTEM_ERROR, e),
        })
    }
}

/// The UPDATE_AND_CREATE_TOPIC header: read and write queue counts, perm,
/// flags and order (RocketMQ's defaults 16/16/6 when absent).
fn topic_config_header(req: &RemotingCommand) -> Result<TopicConfig, HeaderError> {
    let e = &req.ext_fields;
    let topic = e.get_str("topic")?.to_string();
    let count = |key: &str, default: i64| -> Result<u32, HeaderError> {
        let n = e.opt_i64(key)?.unwrap_or(default);
        u32::try_from(n).map_err(|_| HeaderError::Invalid {
            key: key.into(),
            value: n.to_string(),
            expected: "a count >= 0",
        })
    };
    let mut tc = TopicConfig::new(topic, 16);
    tc.read_queue_nums = count("readQueueNums", 16)?;
    tc.write_queue_nums = count("writeQueueNums", 16)?;
    tc.perm = count("perm", 6)?;
    tc.topic_sys_flag = count("topicSysFlag", 0)?;
    tc.order = e.opt_bool("order")?.unwrap_or(false);
    Ok(tc)
}

/// `[ 0 days, 1 hours, 2 minutes, 3 seconds ]`, RocketMQ's runtime format.
fn format_runtime(ms: i64) -> String {
    let s = ms / 1000;
    format!(
        "[ {} days, {} hours, {} minutes, {} seconds ]",
        s / 86_400,
        s % 86_400 / 3600,
        s % 3600 / 60,
        s % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_body_is_parsed_leniently() {
        let (g, c, mqs) = parse_lock_body(
            br#"{"consumerGroup":"G","clientId":"c","mqSet":[{"topic":"T","brokerName":"b","queueId":"3"},{"topic":"T","queueId":1}]}"#,
        )
        .unwrap();
        assert_eq!((g.as_str(), c.as_str(), mqs.len()), ("G", "c", 2));
        assert_eq!(mqs[0].queue_id, 3);
        assert!(parse_lock_body(b"{}").is_err());
        assert!(parse_lock_body(
            br#"{"consumerGroup":"G","clientId":"c","mqSet":[{"queueId":1}]}"#
        )
        .is_err());
    }

    #[test]
    fn runtime_format() {
        assert_eq!(
            format_runtime(90_061_000),
            "[ 1 days, 1 hours, 1 minutes, 1 seconds ]"
        );
    }
}
