//! The read-only admin and stats requests of RocketMQ 4.9's
//! `AdminBrokerProcessor` (and `ClientManageProcessor`'s CHECK_CLIENT_CONFIG)
//! that mqadmin, rocketmq-dashboard and rocketmq-exporter send:
//! GET_TOPIC_STATS_INFO 202, GET_CONSUMER_CONNECTION_LIST 203,
//! GET_PRODUCER_CONNECTION_LIST 204, GET_CONSUME_STATS 208,
//! QUERY_TOPIC_CONSUME_BY_WHO 300, VIEW_BROKER_STATS_DATA 315,
//! GET_BROKER_CONSUME_STATS 317, GET_ALL_PRODUCER_INFO 328,
//! GET_TOPIC_CONFIG 351 and CHECK_CLIENT_CONFIG 46.
//!
//! The bodies are what the Java classes' `encode()` writes (fastjson: fields
//! in alphabetical order, enums by name, `Map<MessageQueue, _>` with the
//! queue object itself as the key, see [`json::object_key_map`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use super::clients::ClientConnection;
use super::{Broker, HandlerResult, Request};
use crate::remoting::codes::language_name;
use crate::remoting::{json, response, RemotingCommand};

/// RocketMQ's `MessageQueue` as fastjson writes it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageQueueKey {
    /// The broker's name.
    pub broker_name: String,
    /// The queue.
    pub queue_id: i32,
    /// The topic.
    pub topic: String,
}

/// RocketMQ's `TopicOffset` (a value of `TopicStatsTable.offsetTable`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicOffset {
    /// Store time of the last message (ms), 0 when the queue is empty.
    pub last_update_timestamp: i64,
    /// One past the last message.
    pub max_offset: i64,
    /// The first message still there.
    pub min_offset: i64,
}

/// RocketMQ's `OffsetWrapper` (a value of `ConsumeStats.offsetTable`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OffsetWrapper {
    /// The queue's max offset.
    pub broker_offset: i64,
    /// The group's committed offset.
    pub consumer_offset: i64,
    /// Store time of the last message consumed (ms), 0 when none.
    pub last_timestamp: i64,
    /// Where the group's pulls have reached (RocketMQ 5: at least the
    /// committed offset); less `consumer_offset`, the messages in flight.
    /// Fields in fastjson's (alphabetical) order.
    #[serde(default)]
    pub pull_offset: i64,
}

/// RocketMQ's `ConsumeStats`: `{"consumeTps":..,"offsetTable":{mq:..}}`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConsumeStats {
    /// The group's pulls per second over the last minute.
    pub consume_tps: f64,
    /// Per queue offsets.
    pub offset_table: Vec<(MessageQueueKey, OffsetWrapper)>,
}

impl ConsumeStats {
    /// fastjson's text of it.
    pub fn to_fastjson(&self) -> String {
        format!(
            "{{\"consumeTps\":{},\"offsetTable\":{}}}",
            Value::from(self.consume_tps),
            json::object_key_map(self.offset_table.iter().map(|(k, v)| (k, v)))
        )
    }

    /// RocketMQ 5's `computeInflightTotalDiff`: the sum of pullOffset −
    /// consumerOffset.
    pub fn inflight_diff(&self) -> i64 {
        self.offset_table
            .iter()
            .map(|(_, w)| w.pull_offset - w.consumer_offset)
            .sum()
    }

    /// RocketMQ's `computeTotalDiff`: the sum of brokerOffset − consumerOffset.
    pub fn total_diff(&self) -> i64 {
        self.offset_table
            .iter()
            .map(|(_, w)| w.broker_offset - w.consumer_offset)
            .sum()
    }
}

/// RocketMQ's `Connection` as fastjson writes it.
fn connection_json(c: &ClientConnection) -> Value {
    serde_json::json!({
        "clientAddr": c.client_addr,
        "clientId": c.client_id,
        "language": language_name(c.language),
        "version": c.version,
    })
}

/// TOPIC_NOT_EXIST for an unknown topic, worded as RocketMQ 4.9's
/// `getTopicStatsInfo` words it.
fn topic_not_exist(topic: &str) -> RemotingCommand {
    RemotingCommand::error(
        response::TOPIC_NOT_EXIST,
        format!("topic[{topic}] not exist"),
    )
}

fn ok_body(body: String) -> HandlerResult {
    Ok(RemotingCommand::success().with_body(body.into_bytes()))
}

impl Broker {
    /// The `topic@group` keys of the consumer offset table (RocketMQ's
    /// `whichTopicByConsumer` / `whichGroupByTopic` walk the same table).
    fn offset_keys(&self) -> Vec<(String, String)> {
        let text = self.offsets.to_json();
        let Ok(v) = json::parse_lenient(&text) else {
            return Vec::new();
        };
        v["offsetTable"]
            .as_object()
            .map(|t| {
                t.keys()
                    .filter_map(|k| k.rsplit_once('@'))
                    .map(|(t, g)| (t.to_string(), g.to_string()))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn queue_key(&self, topic: &str, queue_id: u32) -> MessageQueueKey {
        MessageQueueKey {
            broker_name: self.cfg.broker_name.clone(),
            queue_id: queue_id as i32,
            topic: topic.to_string(),
        }
    }

    fn store_time(&self, topic: &str, queue_id: u32, offset: u64) -> i64 {
        self.store
            .message_store_time(topic, queue_id, offset)
            .ok()
            .flatten()
            .unwrap_or(0)
    }

    /// The figures of one group over `topics` as RocketMQ's `getConsumeStats`
    /// computes them. `all_queues`: write queues instead of read queues (as
    /// `fetchAllConsumeStatsInBroker` counts them).
    fn consume_stats_of(
        &self,
        group: &str,
        topics: &BTreeSet<String>,
        all_queues: bool,
        only_order: bool,
    ) -> Vec<ConsumeStats> {
        let subs = self.clients.subscription_count(group);
        let mut out = Vec::new();
        for topic in topics {
            let Some(tc) = self.store.topic_config(topic) else {
                continue;
            };
            if only_order && !tc.order {
                continue;
            }
            if subs > 0 && self.clients.subscription(group, topic).is_none() {
                continue;
            }
            let queues = if all_queues {
                tc.write_queue_nums
            } else {
                tc.read_queue_nums
            };
            let mut cs = ConsumeStats::default();
            for q in 0..queues {
                let broker_offset = self.store.max_offset_in_queue(topic, q) as i64;
                let consumer_offset = self.offsets.query(group, topic, q).unwrap_or(0).max(0);
                let last_timestamp = if consumer_offset > 0 {
                    self.store_time(topic, q, consumer_offset as u64 - 1)
                } else {
                    0
                };
                let pull_offset = self
                    .offsets
                    .query_pull(group, topic, q)
                    .unwrap_or(0)
                    .max(consumer_offset);
                cs.offset_table.push((
                    self.queue_key(topic, q),
                    OffsetWrapper {
                        broker_offset,
                        consumer_offset,
                        pull_offset,
                        last_timestamp,
                    },
                ));
            }
            cs.consume_tps = self.stats.tps_group_get_nums(group, topic);
            out.push(cs);
        }
        out
    }

    /// GET_TOPIC_STATS_INFO 202: `TopicStatsTable` of a topic's write queues;
    /// TOPIC_NOT_EXIST "topic[T] not exist" for an unknown topic.
    pub(super) async fn topic_stats_info(self: &Arc<Self>, req: Request<'_>) -> HandlerResult {
        let topic = req.cmd.ext_fields.get_str("topic")?.to_string();
        let body = self
            .run_on(req.on, "topic stats", move |b| {
                let tc = b.store.topic_config(&topic)?;
                let table: Vec<(MessageQueueKey, TopicOffset)> = (0..tc.write_queue_nums)
                    .map(|q| {
                        let min = b.store.min_offset_in_queue(&topic, q) as i64;
                        let max = b.store.max_offset_in_queue(&topic, q) as i64;
                        let ts = if max > 0 {
                            b.store_time(&topic, q, max as u64 - 1)
                        } else {
                            0
                        };
                        let to = TopicOffset {
                            last_update_timestamp: ts,
                            max_offset: max,
                            min_offset: min,
                        };
                        (b.queue_key(&topic, q), to)
                    })
                    .collect();
                // `topicPutTps` is not in RocketMQ 4.9/5.x's TopicStatsTable
                // (fastjson skips it); rocketmq-rust's requires it.
                Some(format!(
                    "{{\"offsetTable\":{},\"topicPutTps\":{}}}",
                    json::object_key_map(table.iter().map(|(k, v)| (k, v))),
                    Value::from(b.stats.tps_topic_put_nums(&topic))
                ))
            })
            .await?;
        match body {
            Some(b) => ok_body(b),
            None => Ok(topic_not_exist(req_topic(&req))),
        }
    }

    /// GET_CONSUMER_CONNECTION_LIST 203: `ConsumerConnection` of an online
    /// group; CONSUMER_NOT_ONLINE "the consumer group[G] not online" else.
    pub(super) async fn consumer_connection_list(
        self: &Arc<Self>,
        req: Request<'_>,
    ) -> HandlerResult {
        let group = req.cmd.ext_fields.get_str("consumerGroup")?;
        let Some(g) = self.clients.consumer_group(group) else {
            return Ok(RemotingCommand::error(
                response::CONSUMER_NOT_ONLINE,
                format!("the consumer group[{group}] not online"),
            ));
        };
        let body = serde_json::json!({
            "connectionSet": g.connections.iter().map(connection_json).collect::<Vec<_>>(),
            "consumeFromWhere": g.consume_from_where,
            "consumeType": g.consume_type,
            "messageModel": g.message_model,
            "subscriptionTable": g.subscriptions,
        });
        ok_body(body.to_string())
    }

    /// GET_PRODUCER_CONNECTION_LIST 204: `ProducerConnection`; SYSTEM_ERROR
    /// "the producer group[P] not exist" for a group no producer heartbeats.
    pub(super) async fn producer_connection_list(
        self: &Arc<Self>,
        req: Request<'_>,
    ) -> HandlerResult {
        let group = req.cmd.ext_fields.get_str("producerGroup")?;
        match self.clients.producer_group(group) {
            Some(conns) => {
                let set: Vec<Value> = conns.iter().map(connection_json).collect();
                ok_body(serde_json::json!({ "connectionSet": set }).to_string())
            }
            None => Ok(RemotingCommand::error(
                response::SYSTEM_ERROR,
                format!("the producer group[{group}] not exist"),
            )),
        }
    }

    /// GET_CONSUME_STATS 208: `ConsumeStats` of a group over `topic` or, when
    /// blank, every topic it has offsets of; the TPS is summed over topics.
    pub(super) async fn consume_stats(self: &Arc<Self>, req: Request<'_>) -> HandlerResult {
        let group = req.cmd.ext_fields.get_str("consumerGroup")?.to_string();
        let topic = req
            .cmd
            .ext_fields
            .opt_str("topic")
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string);
        let body = self
            .run_on(req.on, "consume stats", move |b| {
                let topics: BTreeSet<String> = match topic {
                    Some(t) => [t].into(),
                    None => b
                        .offset_keys()
                        .into_iter()
                        .filter(|(_, g)| *g == group)
                        .map(|(t, _)| t)
                        .collect(),
                };
                let mut all = ConsumeStats::default();
                for cs in b.consume_stats_of(&group, &topics, false, false) {
                    all.consume_tps += cs.consume_tps;
                    all.offset_table.extend(cs.offset_table);
                }
                all.to_fastjson()
            })
            .await?;
        ok_body(body)
    }

    /// QUERY_TOPIC_CONSUME_BY_WHO 300: `GroupList` of the online groups
    /// subscribed to the topic and the groups with offsets of it.
    pub(super) async fn topic_consume_by_who(self: &Arc<Self>, req: Request<'_>) -> HandlerResult {
        let topic = req.cmd.ext_fields.get_str("topic")?.to_string();
        // The offset table is walked off the network runtime.
        let groups = self
            .run_on(req.on, "consumers of a topic", move |b| {
                let mut groups = b.clients.groups_subscribed_to(&topic);
                groups.extend(
                    b.offset_keys()
                        .into_iter()
                        .filter(|(t, _)| *t == topic)
                        .map(|(_, g)| g),
                );
                groups
            })
            .await?;
        ok_body(serde_json::json!({ "groupList": groups }).to_string())
    }

    /// GET_TOPIC_CONFIG 351: `TopicConfigAndQueueMapping` as RocketMQ 5.x
    /// answers it: the topic's config fields (with 5.x's empty `attributes`)
    /// and no `mappingDetail` (fastjson leaves out nulls; ferromq has no
    /// static topics); TOPIC_NOT_EXIST "No topic in this broker. topic: T"
    /// for an unknown topic.
    pub(super) async fn topic_config(self: &Arc<Self>, req: Request<'_>) -> HandlerResult {
        let topic = req.cmd.ext_fields.get_str("topic")?;
        let Some(tc) = self.store.topic_config(topic) else {
            return Ok(RemotingCommand::error(
                response::TOPIC_NOT_EXIST,
                format!("No topic in this broker. topic: {topic}"),
            ));
        };
        let body = serde_json::json!({
            "attributes": {},
            "order": tc.order,
            "perm": tc.perm,
            "readQueueNums": tc.read_queue_nums,
            "topicFilterType": tc.topic_filter_type,
            "topicName": tc.topic_name,
            "topicSysFlag": tc.topic_sys_flag,
            "writeQueueNums": tc.write_queue_nums,
        });
        ok_body(body.to_string())
    }

    /// GET_ALL_PRODUCER_INFO 328: `ProducerTableInfo`,
    /// `{"data":{"group":[ProducerInfo]}}`.
    pub(super) async fn all_producer_info(self: &Arc<Self>, _req: Request<'_>) -> HandlerResult {
        let data: BTreeMap<String, Vec<Value>> = self
            .clients
            .producer_table()
            .into_iter()
            .map(|(g, conns)| {
                let infos = conns
                    .iter()
                    .map(|c| {
                        serde_json::json!({
                            "clientId": c.client_id,
                            "language": language_name(c.language),
                            "lastUpdateTimestamp": c.last_update_ms,
                            "remoteIP": format!("/{}", c.client_addr),
                            "version": c.version,
                        })
                    })
                    .collect();
                (g, infos)
            })
            .collect();
        ok_body(serde_json::json!({ "data": data }).to_string())
    }

    /// CHECK_CLIENT_CONFIG 46 (RocketMQ's `ClientManageProcessor.checkClientConfig`):
    /// SUCCESS for TAG subscriptions (and a body without one); another
    /// expression type is refused without `enablePropertyFilter`, else
    /// compiled: SUBSCRIPTION_PARSE_FAILED with where it failed.
    pub(super) async fn check_client_config(self: &Arc<Self>, req: Request<'_>) -> HandlerResult {
        let text = String::from_utf8_lossy(&req.cmd.body);
        let v = if text.trim().is_empty() {
            Value::Null
        } else {
            match json::parse_fastjson(&text) {
                Ok(v) => v,
                Err(e) => {
                    return Ok(RemotingCommand::error(
                        response::SYSTEM_ERROR,
                        format!("CheckClientRequestBody: {e}"),
                    ))
                }
            }
        };
        let sub = &v["subscriptionData"];
        if sub.is_object() {
            let kind = sub["expressionType"].as_str();
            if !crate::filter::is_tag_type(kind) {
                let kind = kind.unwrap_or_default();
                if !self.cfg.enable_property_filter {
                    return Ok(RemotingCommand::error(
                        response::SYSTEM_ERROR,
                        format!("The broker does not support consumer to filter message by {kind}"),
                    ));
                }
                let expr = sub["subString"].as_str().unwrap_or_default();
                if let Err(e) = super::clients::compile_filter(kind, expr) {
                    return Ok(RemotingCommand::error(
                        response::SUBSCRIPTION_PARSE_FAILED,
                        e.to_string(),
                    ));
                }
            }
        }
        Ok(RemotingCommand::success())
    }

    /// VIEW_BROKER_STATS_DATA 315: `BrokerStatsData` (minute, hour and day
    /// figures) of one stats item; SYSTEM_ERROR "The stats <name> <key> not
    /// exist" when nothing was counted under it.
    pub(super) async fn view_broker_stats_data(
        self: &Arc<Self>,
        req: Request<'_>,
    ) -> HandlerResult {
        let name = req.cmd.ext_fields.get_str("statsName")?;
        let key = req.cmd.ext_fields.get_str("statsKey")?;
        let Some(item) = self.stats.set(name).and_then(|s| s.get(key)) else {
            return Ok(RemotingCommand::error(
                response::SYSTEM_ERROR,
                format!("The stats <{name}> <{key}> not exist"),
            ));
        };
        let it = |s: super::stats::StatsSnapshot| serde_json::json!({"avgpt": s.avgpt, "sum": s.sum, "tps": s.tps});
        let body = serde_json::json!({
            "statsDay": it(item.in_day()),
            "statsHour": it(item.in_hour()),
            "statsMinute": it(item.in_minute()),
        });
        ok_body(body.to_string())
    }

    /// GET_BROKER_CONSUME_STATS 317: `ConsumeStatsList` over every
    /// subscription group (`isOrder`: ordered topics only).
    pub(super) async fn broker_consume_stats(self: &Arc<Self>, req: Request<'_>) -> HandlerResult {
        let only_order = req.cmd.ext_fields.opt_bool("isOrder")?.unwrap_or(false);
        let body = self
            .run_on(req.on, "broker consume stats", move |b| {
                let keys = b.offset_keys();
                let (mut total_diff, mut total_inflight) = (0i64, 0i64);
                let mut list = Vec::new();
                for g in b.groups.all() {
                    let group = g.group_name;
                    let topics: BTreeSet<String> = keys
                        .iter()
                        .filter(|(_, k)| *k == group)
                        .map(|(t, _)| t.clone())
                        .collect();
                    let stats = b.consume_stats_of(&group, &topics, true, only_order);
                    total_diff += stats.iter().map(ConsumeStats::total_diff).sum::<i64>();
                    total_inflight += stats.iter().map(ConsumeStats::inflight_diff).sum::<i64>();
                    let texts: Vec<String> = stats.iter().map(ConsumeStats::to_fastjson).collect();
                    list.push(format!(
                        "{{{}:[{}]}}",
                        json::string(&group),
                        texts.join(",")
                    ));
                }
                format!(
                    "{{\"brokerAddr\":{},\"consumeStatsList\":[{}],\"totalDiff\":{},\"totalInflightDiff\":{}}}",
                    json::string(&b.broker_addr),
                    list.join(","),
                    total_diff,
                    total_inflight
                )
            })
            .await?;
        ok_body(body)
    }
}

/// Sample the broker's stats items every [`super::stats::SAMPLE_EVERY_MS`]
/// until `shutdown` changes (RocketMQ's `StatsItem` sampling schedule).
pub(super) fn spawn_sampler(
    broker: &Arc<Broker>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let b = broker.clone();
    tokio::spawn(async move {
        let every = std::time::Duration::from_millis(super::stats::SAMPLE_EVERY_MS as u64);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    b.stats.sample_if_due();
                }
                _ = shutdown.changed() => break,
            }
        }
    })
}

fn req_topic<'a>(req: &'a Request<'_>) -> &'a str {
    req.cmd.ext_fields.opt_str("topic").unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consume_stats_are_written_as_fastjson() {
        let cs = ConsumeStats {
            consume_tps: 0.0,
            offset_table: vec![(
                MessageQueueKey {
                    broker_name: "broker-a".into(),
                    queue_id: 0,
                    topic: "T".into(),
                },
                OffsetWrapper {
                    broker_offset: 10,
                    consumer_offset: 7,
                    last_timestamp: 0,
                    pull_offset: 9,
                },
            )],
        };
        assert_eq!(
            cs.to_fastjson(),
            r#"{"consumeTps":0.0,"offsetTable":{{"brokerName":"broker-a","queueId":0,"topic":"T"}:{"brokerOffset":10,"consumerOffset":7,"lastTimestamp":0,"pullOffset":9}}}"#
        );
        assert_eq!(cs.total_diff(), 3);
        assert_eq!(cs.inflight_diff(), 2);
        let v = json::parse_fastjson(&cs.to_fastjson()).unwrap();
        let (k, w) = v["offsetTable"].as_object().unwrap().iter().next().unwrap();
        let k: MessageQueueKey = serde_json::from_str(k).unwrap();
        let w: OffsetWrapper = serde_json::from_value(w.clone()).unwrap();
        assert_eq!((k, w), cs.offset_table[0].clone());
    }
}
