//! The broker's mutating operations requests (issue 21): offset reset
//! (INVOKE_BROKER_TO_RESET_OFFSET 222, telling online consumers with
//! RESET_CONSUMER_CLIENT_OFFSET 220) and subscription-group management
//! (UPDATE_AND_CREATE_SUBSCRIPTIONGROUP 200, DELETE_SUBSCRIPTIONGROUP 207),
//! as RocketMQ 4.9's `AdminBrokerProcessor` and `Broker2Client` answer them;
//! topic deletion (DELETE_TOPIC_IN_BROKER 215) and live broker settings
//! (UPDATE_BROKER_CONFIG 25: [`LiveConfig`] for the broker's keys, the
//! store's [`ferromq_engine::config::LIVE_KEYS`] through
//! [`ferromq_engine::MessageStore::set_live_all`]).
//!
//! Where ferromq differs from RocketMQ 4.9, on purpose:
//! - An offset reset changes the stored offsets too and answers SUCCESS when
//!   no consumer of the group is online (RocketMQ answers
//!   CONSUMER_NOT_ONLINE and leaves the offsets to mqadmin's fallback, which
//!   sets them with UPDATE_CONSUMER_OFFSET): an offline group resumes at the
//!   reset offsets either way.
//! - The body of RESET_CONSUMER_CLIENT_OFFSET is encoded per consumer: the
//!   C++ client's list form (`ResetOffsetBodyForC`) for a consumer whose
//!   heartbeats say CPP, or for every consumer when the admin request itself
//!   comes from a CPP client (RocketMQ's only rule, `mqadmin -c`); fastjson's
//!   object-key map (`ResetOffsetBody`) otherwise. RocketMQ sends the map to
//!   C++ consumers unless `-c` is given, which they cannot parse.
//! - A queue with no stored offset for the group does not fail the reset
//!   (RocketMQ answers `THe consumer group <g> not exist` as soon as one
//!   queue has none); only a group the broker knows nothing of fails.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use ferromq_engine::sync::LockExt;

use super::subscription::SubscriptionGroupConfig;
use super::{Broker, HandlerResult, Request};
use crate::remoting::{json, response, RemotingCommand};

/// RocketMQ's request codes of this module.
pub mod code {
    /// UPDATE_AND_CREATE_SUBSCRIPTIONGROUP: body a `SubscriptionGroupConfig`.
    pub const UPDATE_AND_CREATE_SUBSCRIPTIONGROUP: i32 = 200;
    /// DELETE_SUBSCRIPTIONGROUP: header `groupName`.
    pub const DELETE_SUBSCRIPTIONGROUP: i32 = 207;
    /// DELETE_TOPIC_IN_BROKER: header `topic`.
    pub const DELETE_TOPIC_IN_BROKER: i32 = 215;
    /// DELETE_TOPIC_IN_NAMESRV: header `topic` (name server).
    pub const DELETE_TOPIC_IN_NAMESRV: i32 = 216;
    /// RESET_CONSUMER_CLIENT_OFFSET: broker to client, oneway.
    pub const RESET_CONSUMER_CLIENT_OFFSET: i32 = 220;
    /// GET_CONSUMER_STATUS_FROM_CLIENT: broker to client.
    pub const GET_CONSUMER_STATUS_FROM_CLIENT: i32 = 221;
    /// INVOKE_BROKER_TO_RESET_OFFSET: header `topic`, `group`, `timestamp`, `isForce`.
    pub const INVOKE_BROKER_TO_RESET_OFFSET: i32 = 222;
    /// INVOKE_BROKER_TO_GET_CONSUMER_STATUS: header `topic`, `group`, `clientAddr`.
    pub const INVOKE_BROKER_TO_GET_CONSUMER_STATUS: i32 = 223;
}

/// `LanguageCode.CPP`'s ordinal.
const LANGUAGE_CPP: u8 = 1;

/// One queue of a reset: (broker name, topic, queue id, offset).
type ResetRow = (String, String, u32, i64);

/// `ResetOffsetBody` as fastjson writes it: a map whose keys are
/// `MessageQueue` objects, `{"offsetTable":{{"brokerName":"b","queueId":0,"topic":"T"}:5}}`.
pub fn reset_offset_body(rows: &[ResetRow]) -> String {
    let entries: Vec<String> = rows
        .iter()
        .map(|(b, t, q, off)| {
            format!(
                "{{\"brokerName\":{},\"queueId\":{q},\"topic\":{}}}:{off}",
                json::string(b),
                json::string(t)
            )
        })
        .collect();
    format!("{{\"offsetTable\":{{{}}}}}", entries.join(","))
}

/// `ResetOffsetBodyForC` as fastjson writes it (the C++ client's form):
/// `{"offsetTable":[{"brokerName":"b","offset":5,"queueId":0,"topic":"T"}]}`.
pub fn reset_offset_body_for_c(rows: &[ResetRow]) -> String {
    let entries: Vec<String> = rows
        .iter()
        .map(|(b, t, q, off)| {
            format!(
                "{{\"brokerName\":{},\"offset\":{off},\"queueId\":{q},\"topic\":{}}}",
                json::string(b),
                json::string(t)
            )
        })
        .collect();
    format!("{{\"offsetTable\":[{}]}}", entries.join(","))
}

/// Parse a `ResetOffsetBody` (fastjson's object-key map, or the C++ list
/// form) into (broker name, topic, queue id, offset) rows.
///
/// # Errors
/// A sentence naming what is malformed.
pub fn parse_reset_offset_body(text: &str) -> Result<Vec<ResetRow>, String> {
    let v = json::parse_fastjson(text).map_err(|e| format!("reset offset body: {e}"))?;
    let row = |mq: &serde_json::Value, off: i64| -> Result<ResetRow, String> {
        let s = |k: &str| {
            mq[k]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("reset offset body: a queue without {k}"))
        };
        let q = mq["queueId"]
            .as_u64()
            .and_then(|q| u32::try_from(q).ok())
            .ok_or("reset offset body: a queue without a queueId")?;
        Ok((s("brokerName")?, s("topic")?, q, off))
    };
    match &v["offsetTable"] {
        serde_json::Value::Array(a) => a
            .iter()
            .map(|e| row(e, e["offset"].as_i64().unwrap_or(-1)))
            .collect(),
        serde_json::Value::Object(m) => m
            .iter()
            .map(|(k, off)| {
                let mq = json::parse_lenient(k)
                    .map_err(|e| format!("reset offset body: key {k}: {e}"))?;
                row(
                    &mq,
                    off.as_i64()
                        .ok_or("reset offset body: an offset is not a number")?,
                )
            })
            .collect(),
        _ => Err("reset offset body has no offsetTable".into()),
    }
}

impl Broker {
    /// INVOKE_BROKER_TO_RESET_OFFSET (RocketMQ's `Broker2Client.resetOffset`):
    /// for each write queue of the topic the offset stored at or after
    /// `timestamp` (`-1`: the queue's max offset, as mqadmin sends `now`);
    /// with `isForce=false` a queue only moves back. The stored offsets
    /// change (and are written at once), online consumers of the group are
    /// told with RESET_CONSUMER_CLIENT_OFFSET over their own connections,
    /// and the answer's body is the `ResetOffsetBody`.
    pub(super) async fn reset_offset(self: &Arc<Self>, req: Request<'_>) -> HandlerResult {
        let h = &req.cmd.ext_fields;
        let topic = h.get_str("topic")?.to_string();
        let group = h.get_str("group")?.to_string();
        let timestamp = h.get_i64("timestamp")?;
        let force = h.opt_bool("isForce")?.unwrap_or(true);
        let admin_is_cpp = req.cmd.language == LANGUAGE_CPP;
        let Some(tc) = self.store.topic_config(&topic) else {
            return Ok(RemotingCommand::error(
                response::SYSTEM_ERROR,
                format!(
                    "[reset-offset] reset offset failed, no topic in this broker. topic={}",
                    ferromq_engine::message::name_for_message(&topic)
                ),
            ));
        };
        let consumers = self.clients.consumer_channels(&group);
        if consumers.is_empty()
            && self.groups.get(&group).is_none()
            && !self.offsets.has_topic_group(&topic, &group)
        {
            return Ok(RemotingCommand::error(
                response::SUBSCRIPTION_GROUP_NOT_EXIST,
                format!(
                    "THe consumer group <{}> not exist",
                    ferromq_engine::message::name_for_message(&group)
                ),
            ));
        }
        let (t2, g2) = (topic.clone(), group.clone());
        let rows = self
            .run_on(req.on, "reset offset", move |b| {
                let mut rows = Vec::new();
                for q in 0..tc.write_queue_nums {
                    let found = if timestamp == -1 {
                        Ok(b.store.max_offset_in_queue(&t2, q))
                    } else {
                        b.store.offset_for_timestamp(&t2, q, timestamp)
                    };
                    let at = i64::try_from(found?).unwrap_or(i64::MAX);
                    let offset = match b.offsets.query(&g2, &t2, q) {
                        Some(cur) if !force && at >= cur => cur,
                        _ => at,
                    };
                    rows.push((b.cfg.broker_name.clone(), t2.clone(), q, offset));
                }
                for (_, t, q, off) in &rows {
                    b.offsets.commit(&g2, t, *q, *off);
                }
                if let Err(e) = b.offsets.persist() {
                    tracing::warn!(error = %e, "consumer offsets not written after a reset; retried by the periodic write");
                }
                Ok::<_, ferromq_engine::Error>(rows)
            })
            .await?;
        let rows = match rows {
            Ok(r) => r,
            Err(e) => return Ok(super::store_error_response(&e)),
        };
        let map_body = reset_offset_body(&rows);
        let c_body = reset_offset_body_for_c(&rows);
        let mut told = 0usize;
        for (client_id, language, conn) in &consumers {
            let body = if admin_is_cpp || *language == LANGUAGE_CPP {
                &c_body
            } else {
                &map_body
            };
            let sent = conn.send_oneway(
                RemotingCommand::request(code::RESET_CONSUMER_CLIENT_OFFSET)
                    .with_ext("topic", &topic)
                    .with_ext("group", &group)
                    .with_ext("timestamp", timestamp)
                    .with_ext("isForce", force)
                    .with_body(body.clone().into_bytes()),
            );
            if sent {
                told += 1;
            } else {
                tracing::warn!(%client_id, "[reset-offset] the consumer could not be told");
            }
        }
        tracing::info!(
            topic = %ferromq_engine::message::name_for_message(&topic),
            group = %ferromq_engine::message::name_for_message(&group),
            timestamp,
            force,
            queues = rows.len(),
            consumers_told = told,
            "[reset-offset] consumer offsets reset"
        );
        Ok(RemotingCommand::success().with_body(map_body.into_bytes()))
    }

    /// DELETE_TOPIC_IN_BROKER (RocketMQ's `AdminBrokerProcessor.deleteTopic`):
    /// the topic's configuration, consume queues and every group's offsets
    /// of it go (files written before SUCCESS); its commitlog records age
    /// out by retention. The broker registers again at once; the name
    /// servers keep the topic's route until DELETE_TOPIC_IN_NAMESRV, as
    /// RocketMQ's do. A slave deletes its own queues and offsets too (its
    /// topic table follows the master's anyway). Refused for system topics.
    /// A topic the broker does not have is answered SUCCESS, as RocketMQ
    /// answers, with a remark saying nothing was deleted (tools such as
    /// rocketmq-admin-cli's `deleteSubGroup` delete the group's retry and DLQ
    /// topics whether or not they exist, and fail on any other code).
    pub(super) async fn delete_topic(self: &Arc<Self>, req: Request<'_>) -> HandlerResult {
        let topic = req.cmd.ext_fields.get_str("topic")?.to_string();
        if let Err(why) = ferromq_engine::validate_topic(&topic) {
            return Ok(super::names::refuse(why));
        }
        if is_system_topic(&topic, &self.cfg.broker_cluster_name, &self.cfg.broker_name) {
            return Ok(RemotingCommand::error(
                response::SYSTEM_ERROR,
                format!("The topic[{topic}] is conflict with system topic."),
            ));
        }
        let t2 = topic.clone();
        let res = self
            .run_on(req.on, "delete topic", move |b| {
                let existed = b.store.delete_topic(&t2)?;
                let offsets = b.offsets.remove_topic(&t2);
                if let Some(h) = b.histograms() {
                    h.forget_topic(&t2);
                }
                if offsets > 0 {
                    if let Err(e) = b.offsets.persist() {
                        tracing::warn!(error = %e, "consumer offsets not written after a topic deletion; retried by the periodic write");
                    }
                }
                Ok::<_, ferromq_engine::Error>(existed || offsets > 0)
            })
            .await?;
        Ok(match res {
            Ok(true) => {
                self.register_now.notify_one();
                RemotingCommand::success()
            }
            Ok(false) => RemotingCommand::response(
                response::SUCCESS,
                Some(format!(
                    "topic[{topic}] does not exist on this broker; nothing deleted"
                )),
            ),
            Err(e) => super::store_error_response(&e),
        })
    }

    /// Where UPDATE_BROKER_CONFIG persists its changes: the broker's
    /// properties file (`-c`). Without one, changes apply live only.
    pub fn set_config_file(&self, path: PathBuf) {
        let _ = self.live.config_file.set(path);
    }

    /// The settings UPDATE_BROKER_CONFIG changes live.
    pub fn live(&self) -> &LiveConfig {
        &self.live
    }

    /// UPDATE_BROKER_CONFIG: a properties body. Every key must be one ferromq
    /// applies live with a valid value: a broker key of [`LIVE_KEYS`], or a
    /// store key of [`ferromq_engine::config::LIVE_KEYS`] (flush schedules,
    /// retention; checked with the store's own loading rules). Else nothing
    /// changes, the file included, and the answer is SYSTEM_ERROR naming the
    /// first key refused and why (a bad value, a store key fixed while the
    /// store runs, a key read once at start, an unknown key). Accepted
    /// changes are written to the properties file (atomically, the file's
    /// other lines kept) and then applied; a brokerPermission change
    /// re-registers the broker at once, so routes follow. A slave takes the
    /// store keys too: they are its own store's settings.
    pub(super) async fn update_broker_config(self: &Arc<Self>, req: Request<'_>) -> HandlerResult {
        let text = String::from_utf8_lossy(&req.cmd.body).into_owned();
        let changes = match parse_properties(&text) {
            Ok(c) if c.is_empty() => {
                return Ok(RemotingCommand::error(
                    response::SYSTEM_ERROR,
                    "the body holds no key=value",
                ))
            }
            Ok(c) => c,
            Err(e) => return Ok(RemotingCommand::error(response::SYSTEM_ERROR, e)),
        };
        let mut checked = Vec::new();
        let mut store_changes = Vec::new();
        for (k, v) in &changes {
            if ferromq_engine::config::LIVE_KEYS.contains(&k.as_str()) {
                store_changes.push((k.clone(), v.clone()));
                continue;
            }
            match LiveConfig::check(k, v) {
                Ok(val) => checked.push((k.clone(), val)),
                Err(why) => {
                    tracing::warn!(key = %k, "UPDATE_BROKER_CONFIG refused: {why}");
                    return Ok(RemotingCommand::error(response::SYSTEM_ERROR, why));
                }
            }
        }
        if let Err(e) = self.store.check_live(&as_strs(&store_changes)) {
            let why = store_refusal(e);
            tracing::warn!("UPDATE_BROKER_CONFIG refused: {why}");
            return Ok(RemotingCommand::error(response::SYSTEM_ERROR, why));
        }
        let res = self
            .run_on(req.on, "update broker config", move |b| {
                let _one = b.live.update.locked();
                let mut persisted = None;
                if let Some(path) = b.live.config_file.get() {
                    let old = std::fs::read_to_string(path).map_err(|e| {
                        format!("cannot read {}: {e}; nothing changed", path.display())
                    })?;
                    crate::util::atomic_write(path, edit_properties(&old, &changes).as_bytes())
                        .map_err(|e| {
                            format!("cannot write {}: {e}; nothing changed", path.display())
                        })?;
                    persisted = Some((path, old));
                }
                // Checked above; under the update lock nothing else changes
                // the store's settings, so this refuses only if the store's
                // rules changed in between. Then the file goes back.
                let warnings = if store_changes.is_empty() {
                    Vec::new()
                } else {
                    match b.store.set_live_all(&as_strs(&store_changes)) {
                        Ok(w) => w,
                        Err(e) => {
                            if let Some((path, old)) = &persisted {
                                if let Err(we) = crate::util::atomic_write(path, old.as_bytes()) {
                                    tracing::error!(error = %we, file = %path.display(),
                                        "cannot restore the properties file after a refused store setting");
                                }
                            }
                            return Err(store_refusal(e));
                        }
                    }
                };
                for (k, v) in &checked {
                    b.live.apply(k, *v);
                }
                let warnings: Vec<String> = warnings.into_iter().map(|w| w.message).collect();
                Ok::<_, String>((persisted.is_some(), changes, warnings))
            })
            .await?;
        Ok(match res {
            Ok((persisted, changes, warnings)) => {
                for w in &warnings {
                    tracing::warn!("UPDATE_BROKER_CONFIG: {w}");
                }
                for (k, v) in &changes {
                    tracing::info!(key = %k, value = %v, persisted, "broker config changed live");
                }
                if changes.iter().any(|(k, _)| k == "brokerPermission") {
                    self.register_now.notify_one();
                }
                let mut remarks = warnings;
                if !persisted {
                    remarks.push("applied live; not persisted: the broker was started without a properties file (-c)".into());
                }
                if remarks.is_empty() {
                    RemotingCommand::success()
                } else {
                    RemotingCommand::response(response::SUCCESS, Some(remarks.join("; ")))
                }
            }
            Err(e) => RemotingCommand::error(response::SYSTEM_ERROR, e),
        })
    }

    /// UPDATE_AND_CREATE_SUBSCRIPTIONGROUP: the body is a
    /// `SubscriptionGroupConfig` (missing fields take RocketMQ's defaults);
    /// the table is on disk before SUCCESS is answered.
    pub(super) async fn update_subscription_group(
        self: &Arc<Self>,
        req: Request<'_>,
    ) -> HandlerResult {
        let parsed = std::str::from_utf8(&req.cmd.body)
            .map_err(|e| e.to_string())
            .and_then(|t| json::parse_lenient(t).map_err(|e| e.to_string()))
            .and_then(|v| {
                serde_json::from_value::<SubscriptionGroupConfig>(v).map_err(|e| e.to_string())
            });
        let cfg = match parsed {
            Ok(c) => c,
            Err(e) => {
                return Ok(RemotingCommand::error(
                    response::SYSTEM_ERROR,
                    format!("the body is not a SubscriptionGroupConfig: {e}"),
                ))
            }
        };
        if cfg.retry_queue_nums < 0 || cfg.retry_max_times < 0 || cfg.broker_id < 0 {
            return Ok(RemotingCommand::error(
                response::SYSTEM_ERROR,
                "retryQueueNums, retryMaxTimes and brokerId must not be negative",
            ));
        }
        let name = cfg.group_name.clone();
        let res = self
            .run_on(req.on, "update subscription group", move |b| {
                b.groups.upsert(cfg).map_err(|e| e.to_string())?;
                b.groups.persist().map_err(|e| e.to_string())
            })
            .await?;
        Ok(match res {
            Ok(()) => {
                tracing::info!(group = %ferromq_engine::message::name_for_message(&name), "subscription group created or updated");
                RemotingCommand::success()
            }
            Err(e) => RemotingCommand::error(response::SYSTEM_ERROR, e),
        })
    }

    /// DELETE_SUBSCRIPTIONGROUP: the group goes from the table (SUCCESS even
    /// when it was unknown, as RocketMQ answers, with a remark saying so);
    /// with RocketMQ 5's `cleanOffset=true` its stored offsets go too.
    pub(super) async fn delete_subscription_group(
        self: &Arc<Self>,
        req: Request<'_>,
    ) -> HandlerResult {
        let group = req.cmd.ext_fields.get_str("groupName")?.to_string();
        let clean_offset = req.cmd.ext_fields.opt_bool("cleanOffset")?.unwrap_or(false);
        let g2 = group.clone();
        let res = self
            .run_on(req.on, "delete subscription group", move |b| {
                let known = b.groups.remove(&g2);
                if clean_offset && b.offsets.remove_group(&g2) > 0 {
                    if let Err(e) = b.offsets.persist() {
                        tracing::warn!(error = %e, "consumer offsets not written after a group deletion; retried by the periodic write");
                    }
                }
                b.groups
                    .persist()
                    .map(|()| known)
                    .map_err(|e| e.to_string())
            })
            .await?;
        let shown = ferromq_engine::message::name_for_message(&group).to_string();
        Ok(match res {
            Ok(true) => {
                tracing::info!(group = %shown, "subscription group deleted");
                RemotingCommand::success()
            }
            Ok(false) => RemotingCommand::response(
                response::SUCCESS,
                Some(format!(
                    "subscription group [{shown}] does not exist; nothing deleted"
                )),
            ),
            Err(e) => RemotingCommand::error(response::SYSTEM_ERROR, e),
        })
    }
}

/// The broker settings UPDATE_BROKER_CONFIG may change while the broker runs
/// (RocketMQ's `updateBrokerConfig`): every other part of the broker reads
/// them here, not from [`super::BrokerConfig`], so a change applies to the
/// next request.
#[derive(Debug)]
pub struct LiveConfig {
    broker_permission: AtomicU32,
    slave_read_enable: AtomicBool,
    long_polling_enable: AtomicBool,
    short_polling_time_mills: AtomicU64,
    long_polling_max_suspend_ms: AtomicU64,
    reject_transaction_message: AtomicBool,
    /// The broker's properties file (`-c`), where changes are persisted.
    config_file: OnceLock<PathBuf>,
    /// One UPDATE_BROKER_CONFIG at a time (apply and persist together).
    update: Mutex<()>,
}

/// Keys [`LiveConfig`] applies live.
pub const LIVE_KEYS: &[&str] = &[
    "brokerPermission",
    "slaveReadEnable",
    "longPollingEnable",
    "shortPollingTimeMills",
    "longPollingMaxSuspendMillis",
    "rejectTransactionMessage",
];

/// One checked `key=value` of an UPDATE_BROKER_CONFIG body.
#[derive(Debug, Clone, Copy)]
enum LiveValue {
    Perm(u32),
    Flag(bool),
    Millis(u64),
}

impl LiveConfig {
    /// The live settings' start values, from the broker's configuration.
    pub fn new(cfg: &super::BrokerConfig) -> Self {
        LiveConfig {
            broker_permission: AtomicU32::new(cfg.broker_permission),
            slave_read_enable: AtomicBool::new(cfg.slave_read_enable),
            long_polling_enable: AtomicBool::new(cfg.long_polling_enable),
            short_polling_time_mills: AtomicU64::new(cfg.short_polling_time_mills),
            long_polling_max_suspend_ms: AtomicU64::new(cfg.long_polling_max_suspend_ms),
            reject_transaction_message: AtomicBool::new(cfg.reject_transaction_message),
            config_file: OnceLock::new(),
            update: Mutex::new(()),
        }
    }

    /// `brokerPermission` (2 write, 4 read, 6 both).
    pub fn broker_permission(&self) -> u32 {
        self.broker_permission.load(Ordering::Relaxed)
    }

    /// `slaveReadEnable`.
    pub fn slave_read_enable(&self) -> bool {
        self.slave_read_enable.load(Ordering::Relaxed)
    }

    /// `longPollingEnable`.
    pub fn long_polling_enable(&self) -> bool {
        self.long_polling_enable.load(Ordering::Relaxed)
    }

    /// `shortPollingTimeMills`.
    pub fn short_polling_time_mills(&self) -> u64 {
        self.short_polling_time_mills.load(Ordering::Relaxed)
    }

    /// `longPollingMaxSuspendMillis`.
    pub fn long_polling_max_suspend_ms(&self) -> u64 {
        self.long_polling_max_suspend_ms.load(Ordering::Relaxed)
    }

    /// `rejectTransactionMessage`.
    pub fn reject_transaction_message(&self) -> bool {
        self.reject_transaction_message.load(Ordering::Relaxed)
    }

    /// The live keys with their current values, `key=value` lines.
    pub fn to_properties(&self) -> String {
        format!(
            "brokerPermission={}\nslaveReadEnable={}\nlongPollingEnable={}\nshortPollingTimeMills={}\n\
             longPollingMaxSuspendMillis={}\nrejectTransactionMessage={}\n",
            self.broker_permission(),
            self.slave_read_enable(),
            self.long_polling_enable(),
            self.short_polling_time_mills(),
            self.long_polling_max_suspend_ms(),
            self.reject_transaction_message()
        )
    }

    fn check(key: &str, value: &str) -> Result<LiveValue, String> {
        let v = value.trim();
        let flag = || match v {
            "true" => Ok(LiveValue::Flag(true)),
            "false" => Ok(LiveValue::Flag(false)),
            _ => Err(format!("{key}={v}: give true or false")),
        };
        let millis = || match v.parse::<u64>() {
            Ok(n) if n >= 1 => Ok(LiveValue::Millis(n)),
            _ => Err(format!("{key}={v}: give milliseconds, at least 1")),
        };
        match key {
            "brokerPermission" => match v.parse::<u32>() {
                Ok(p) if p & !7 == 0 => Ok(LiveValue::Perm(p)),
                _ => Err(format!(
                    "{key}={v}: give permission bits 0..7 (2 write, 4 read, 6 both)"
                )),
            },
            "slaveReadEnable" | "longPollingEnable" | "rejectTransactionMessage" => flag(),
            "shortPollingTimeMills" | "longPollingMaxSuspendMillis" => millis(),
            _ => Err(refusal(key)),
        }
    }

    fn apply(&self, key: &str, v: LiveValue) {
        match (key, v) {
            ("brokerPermission", LiveValue::Perm(p)) => {
                self.broker_permission.store(p, Ordering::Relaxed)
            }
            ("slaveReadEnable", LiveValue::Flag(b)) => {
                self.slave_read_enable.store(b, Ordering::Relaxed)
            }
            ("longPollingEnable", LiveValue::Flag(b)) => {
                self.long_polling_enable.store(b, Ordering::Relaxed)
            }
            ("rejectTransactionMessage", LiveValue::Flag(b)) => {
                self.reject_transaction_message.store(b, Ordering::Relaxed)
            }
            ("shortPollingTimeMills", LiveValue::Millis(n)) => {
                self.short_polling_time_mills.store(n, Ordering::Relaxed)
            }
            ("longPollingMaxSuspendMillis", LiveValue::Millis(n)) => {
                self.long_polling_max_suspend_ms.store(n, Ordering::Relaxed)
            }
            _ => {}
        }
    }
}

/// `(key, value)` pairs borrowed, as the store's live-settings calls take them.
fn as_strs(changes: &[(String, String)]) -> Vec<(&str, &str)> {
    changes
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// The remark of a store setting the store refused.
fn store_refusal(e: ferromq_engine::Error) -> String {
    match e {
        ferromq_engine::Error::Config {
            key,
            value,
            expected,
        } => format!("{key}={value}: give {expected}; nothing changed"),
        e => format!("{e}; nothing changed"),
    }
}

/// Why `key` cannot be changed live.
fn refusal(key: &str) -> String {
    const START_ONLY: &[&str] = &[
        "listenPort",
        "haListenPort",
        "fastListenPort",
        "bindAddress",
        "brokerIP1",
        "brokerIP2",
        "brokerName",
        "brokerClusterName",
        "brokerId",
        "brokerRole",
        "storePathRootDir",
        "storePathCommitLog",
        "storePathConsumeQueue",
        "storePathIndex",
        "storeCheckpoint",
        "abortFile",
        "namesrvAddr",
        "aclEnable",
    ];
    let is_path = key.starts_with("storePath") || key.ends_with("Path") || key.ends_with("Dir");
    if START_ONLY.contains(&key) || (is_path && ferromq_engine::config::is_known_key(key)) {
        format!(
            "{key} cannot be changed while the broker runs (ports, addresses, paths, names \
             and roles are read once at start); set it in the properties file and restart"
        )
    } else if ferromq_engine::StoreConfig::keys().any(|k| k == key) {
        format!(
            "{key} is a store setting fixed while the store runs (the store settings changed \
             live are {}); set it in the properties file and restart the broker",
            ferromq_engine::config::LIVE_KEYS.join(", ")
        )
    } else if ferromq_engine::config::is_known_key(key) {
        format!(
            "{key} cannot be changed while the broker runs (pools, timers and the like are \
             read once at start); set it in the properties file and restart"
        )
    } else {
        format!(
            "unknown broker config key {key}: neither the store nor a RocketMQ 4.x broker reads it"
        )
    }
}

/// Parse an UPDATE_BROKER_CONFIG body (`java.util.Properties` text:
/// `key=value` or `key:value` lines, `#`/`!` comments).
fn parse_properties(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') || l.starts_with('!') {
            continue;
        }
        let Some(at) = l.find(['=', ':']) else {
            return Err(format!("line {l:?} is not key=value"));
        };
        out.push((l[..at].trim().to_string(), l[at + 1..].trim().to_string()));
    }
    Ok(out)
}

/// `text` (a properties file) with each of `changes` set: an existing
/// `key=value` line is replaced in place (comments and order kept), a new
/// key is appended.
pub fn edit_properties(text: &str, changes: &[(String, String)]) -> String {
    let mut done = vec![false; changes.len()];
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.lines() {
        let l = line.trim_start();
        let key = l
            .find(['=', ':'])
            .filter(|_| !l.starts_with('#') && !l.starts_with('!'))
            .map(|at| l[..at].trim());
        match key.and_then(|k| changes.iter().position(|(ck, _)| ck == k)) {
            Some(i) => {
                out.push_str(&format!("{}={}\n", changes[i].0, changes[i].1));
                done[i] = true;
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    for (i, (k, v)) in changes.iter().enumerate() {
        if !done[i] {
            out.push_str(&format!("{k}={v}\n"));
        }
    }
    out
}

/// RocketMQ 4.9's `TopicValidator.isSystemTopic`, plus the cluster's and
/// the broker's own names (topics of those names exist on every broker) and
/// the cluster's reply topic (`<cluster>_REPLY_TOPIC`, which RocketMQ adds to
/// its system topics when it creates it).
pub fn is_system_topic(topic: &str, cluster: &str, broker_name: &str) -> bool {
    const SYSTEM: &[&str] = &[
        "TBW102",
        "SCHEDULE_TOPIC_XXXX",
        "BenchmarkTest",
        "OFFSET_MOVED_EVENT",
        "SELF_TEST_TOPIC",
        "RMQ_SYS_TRACE_TOPIC",
        "RMQ_SYS_TRANS_HALF_TOPIC",
        "RMQ_SYS_TRANS_OP_HALF_TOPIC",
        "TRANS_CHECK_MAX_TIME_TOPIC",
    ];
    SYSTEM.contains(&topic)
        || topic.starts_with("rmq_sys_")
        || topic.starts_with("RMQ_SYS_")
        || topic == cluster
        || topic == broker_name
        || topic == super::reply::reply_topic(cluster)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_edited_in_place() {
        let old = "# broker\nbrokerName=b\nbrokerPermission = 6\n";
        let new = edit_properties(
            old,
            &[
                ("brokerPermission".into(), "4".into()),
                ("slaveReadEnable".into(), "true".into()),
            ],
        );
        assert_eq!(
            new,
            "# broker\nbrokerName=b\nbrokerPermission=4\nslaveReadEnable=true\n"
        );
        assert_eq!(
            parse_properties("a=1\n# c\nb : 2\n").unwrap(),
            vec![("a".into(), "1".into()), ("b".into(), "2".into())]
        );
        assert!(LiveConfig::check("brokerPermission", "9").is_err());
        assert!(LiveConfig::check("mapedFileSizeCommitLog", "4096")
            .unwrap_err()
            .contains("store setting"));
        assert!(LiveConfig::check("listenPort", "1")
            .unwrap_err()
            .contains("cannot be changed while the broker runs"));
        assert!(LiveConfig::check("noSuchKey", "1")
            .unwrap_err()
            .contains("unknown broker config key noSuchKey"));
    }

    #[test]
    fn reset_bodies_round_trip_in_both_forms() {
        let rows = vec![
            ("b".to_string(), "T".to_string(), 0, 5),
            ("b".to_string(), "T".to_string(), 1, 0),
        ];
        let m = reset_offset_body(&rows);
        assert_eq!(
            m,
            r#"{"offsetTable":{{"brokerName":"b","queueId":0,"topic":"T"}:5,{"brokerName":"b","queueId":1,"topic":"T"}:0}}"#
        );
        let c = reset_offset_body_for_c(&rows);
        assert_eq!(
            c,
            r#"{"offsetTable":[{"brokerName":"b","offset":5,"queueId":0,"topic":"T"},{"brokerName":"b","offset":0,"queueId":1,"topic":"T"}]}"#
        );
        let mut back = parse_reset_offset_body(&m).unwrap();
        back.sort();
        assert_eq!(back, rows);
        assert_eq!(parse_reset_offset_body(&c).unwrap(), rows);
        assert!(parse_reset_offset_body(r#"{"offsetTable":{{"topic":"T"}:1}}"#).is_err());
        assert!(parse_reset_offset_body("{nope").is_err());
    }
}
