//! Offset, connection and statistics subcommands with mqadmin's names, flags
//! and layout: `topicStatus`, `consumerProgress`, `consumerConnection`,
//! `producerConnection`, `statsAll`. They read the broker's
//! GET_TOPIC_STATS_INFO 202, GET_CONSUMER_CONNECTION_LIST 203,
//! GET_PRODUCER_CONNECTION_LIST 204, GET_CONSUME_STATS 208,
//! QUERY_TOPIC_CONSUME_BY_WHO 300 and VIEW_BROKER_STATS_DATA 315 answers (fastjson, object-key maps read with
//! `parse_fastjson`).

use clap::Args;
use ferromq_server::remoting::json::parse_fastjson;
use ferromq_server::remoting::{request, response, RemotingCommand};
use serde_json::Value;

use crate::client::{body_json, call, num, ok, Admin, Res};

/// `consumerConnection` flags.
#[derive(Args, Debug)]
pub(crate) struct ConsumerConnection {
    /// Consumer group.
    #[arg(short = 'g', long = "consumerGroup")]
    group: String,
    /// Ask only this broker (`ip:port`).
    #[arg(short = 'b', long = "brokerAddr")]
    broker: Option<String>,
}

/// `producerConnection` flags.
#[derive(Args, Debug)]
pub(crate) struct ProducerConnection {
    /// Producer group.
    #[arg(short = 'g', long = "producerGroup")]
    group: String,
    /// A topic the group sends to (its brokers are asked).
    #[arg(short = 't', long = "topic")]
    topic: String,
}

/// `statsAll` flags.
#[derive(Args, Debug)]
pub(crate) struct StatsAll {
    /// Only topics with messages in or out in the last day.
    #[arg(short = 'a', long = "activeTopic")]
    active: bool,
    /// Only this topic.
    #[arg(short = 't', long = "topic")]
    topic: Option<String>,
}

/// `brokerConsumeStats` flags.
#[derive(Args, Debug)]
pub(crate) struct BrokerConsumeStats {
    /// Broker address `ip:port`.
    #[arg(short = 'b', long = "brokerAddr")]
    broker: String,
    /// Request timeout in ms (accepted for mqadmin's sake; ferromq-admin's
    /// own timeout applies).
    #[arg(short = 't', long = "timeoutMillis")]
    _timeout: Option<u64>,
    /// Only queues whose lag is at least this.
    #[arg(short = 'l', long = "level", default_value_t = 0)]
    level: i64,
    /// `true`: ordered topics only.
    #[arg(short = 'o', long = "order", default_value_t = false, action = clap::ArgAction::Set)]
    order: bool,
}

/// RocketMQ's `MQVersion.getVersionDesc` for the 4.x and 5.x ordinals
/// (`V4_9_4` for 401); older ones as their number.
pub(crate) fn version_desc(v: i64) -> String {
    if (212..612).contains(&v) {
        let o = v - 212;
        let (major, rest, snapshot) = (4 + o / 200, (o % 200) / 2, o % 2 == 0);
        let name = format!("V{}_{}_{}", major, rest / 10, rest % 10);
        if snapshot {
            format!("{name}_SNAPSHOT")
        } else {
            name
        }
    } else if v >= 612 {
        "HIGHER_VERSION".into()
    } else {
        v.to_string()
    }
}

/// `UtilAll.frontStringAtLeast`: at most `n` characters.
fn front(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

fn fastjson_body(r: &RemotingCommand, what: &str) -> Res<Value> {
    let text = std::str::from_utf8(&r.body).map_err(|e| format!("{what}: {e}"))?;
    parse_fastjson(text).map_err(|e| format!("{what}: {e}"))
}

/// An object-key map's entries as (topic, broker name, queue id, value),
/// sorted as `MessageQueue.compareTo` sorts (topic, broker, queue).
pub(crate) fn mq_entries(v: &Value) -> Vec<(String, String, i64, Value)> {
    let mut out: Vec<(String, String, i64, Value)> = v
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, w)| {
            let mq: Value = serde_json::from_str(k).ok()?;
            Some((
                mq["topic"].as_str()?.to_string(),
                mq["brokerName"].as_str()?.to_string(),
                num(&mq["queueId"]),
                w.clone(),
            ))
        })
        .collect();
    out.sort_by(|a, b| (&a.0, &a.1, a.2).cmp(&(&b.0, &b.1, b.2)));
    out
}

impl Admin {
    /// `topicStatus -t T`: min and max offset and the last store time of
    /// every queue of the topic, from each master of its route.
    pub(crate) async fn topic_status(&self, topic: String) -> Res<()> {
        let mut all = serde_json::Map::new();
        for (_, addr, _) in self.route(&topic).await? {
            let req =
                RemotingCommand::request(request::GET_TOPIC_STATS_INFO).with_ext("topic", &topic);
            let r = ok(call(&addr, req).await?, &format!("topic stats of {addr}"))?;
            let v = fastjson_body(&r, "topic stats")?;
            if let Some(t) = v["offsetTable"].as_object() {
                all.extend(t.clone());
            }
        }
        println!(
            "{:<32}  {:<4}  {:<20}  {:<20}    #Last Updated",
            "#Broker Name", "#QID", "#Min Offset", "#Max Offset"
        );
        for (_, broker, q, o) in mq_entries(&Value::Object(all)) {
            let ts = num(&o["lastUpdateTimestamp"]);
            let human = if ts > 0 {
                format!("{},{:03}", crate::acl::date_time(ts), ts.rem_euclid(1000))
            } else {
                String::new()
            };
            println!(
                "{:<32}  {:<4}  {:<20}  {:<20}    {}",
                front(&broker, 32),
                q,
                num(&o["minOffset"]),
                num(&o["maxOffset"]),
                human
            );
        }
        Ok(())
    }

    /// `consumerProgress -g G [-t T]`: the group's offsets, lag and last
    /// consumed store time per queue on every master, its TPS and total lag.
    pub(crate) async fn consumer_progress(&self, group: String, topic: Option<String>) -> Res<()> {
        let mut all = serde_json::Map::new();
        let mut tps = 0.0;
        for addr in self.masters().await? {
            let mut req = RemotingCommand::request(request::GET_CONSUME_STATS)
                .with_ext("consumerGroup", &group);
            if let Some(t) = &topic {
                req = req.with_ext("topic", t);
            }
            let r = ok(call(&addr, req).await?, &format!("consume stats of {addr}"))?;
            let v = fastjson_body(&r, "consume stats")?;
            tps += v["consumeTps"].as_f64().unwrap_or(0.0);
            if let Some(t) = v["offsetTable"].as_object() {
                all.extend(t.clone());
            }
        }
        let rows = mq_entries(&Value::Object(all));
        if rows.is_empty() {
            return Err(format!(
                "no consumer offsets for group {group}: Not found the consumer group consume \
                 stats, because return offset table is empty, maybe the consumer not consume \
                 any message"
            ));
        }
        println!(
            "{:<64}  {:<32}  {:<4}  {:<20}  {:<20}  {:<20}  #LastTime",
            "#Topic", "#Broker Name", "#QID", "#Broker Offset", "#Consumer Offset", "#Diff"
        );
        let mut total = 0i64;
        for (t, broker, q, w) in rows {
            let (b, c) = (num(&w["brokerOffset"]), num(&w["consumerOffset"]));
            total += b - c;
            let last = match num(&w["lastTimestamp"]) {
                0 => "N/A".to_string(),
                ts => crate::acl::date_time(ts),
            };
            println!(
                "{:<64}  {:<32}  {:<4}  {:<20}  {:<20}  {:<20}  {}",
                front(&t, 64),
                front(&broker, 32),
                q,
                b,
                c,
                b - c,
                last
            );
        }
        println!();
        println!("Consume TPS: {tps:.2}");
        println!("Diff Total: {total}");
        Ok(())
    }

    /// `brokerConsumeStats -b ADDR [-l LEVEL] [-o true]`: every subscription
    /// group's queues on one broker (GET_BROKER_CONSUME_STATS), in mqadmin's
    /// columns; like mqadmin, only queues consumed at least once are shown.
    pub(crate) async fn broker_consume_stats(&self, a: BrokerConsumeStats) -> Res<()> {
        let req = RemotingCommand::request(request::GET_BROKER_CONSUME_STATS)
            .with_ext("isOrder", a.order);
        let r = ok(call(&a.broker, req).await?, "broker consume stats")?;
        let v = fastjson_body(&r, "broker consume stats")?;
        println!(
            "{:<64}  {:<64}  {:<32}  {:<4}  {:<20}  {:<20}  {:<20}  #LastTime",
            "#Topic",
            "#Group",
            "#Broker Name",
            "#QID",
            "#Broker Offset",
            "#Consumer Offset",
            "#Diff"
        );
        for m in v["consumeStatsList"].as_array().into_iter().flatten() {
            for (group, list) in m.as_object().into_iter().flatten() {
                for cs in list.as_array().into_iter().flatten() {
                    for (t, broker, q, w) in mq_entries(&cs["offsetTable"]) {
                        let (b, c) = (num(&w["brokerOffset"]), num(&w["consumerOffset"]));
                        let ts = num(&w["lastTimestamp"]);
                        if b - c < a.level || ts <= 0 {
                            continue;
                        }
                        println!(
                            "{:<64}  {:<64}  {:<32}  {:<4}  {:<20}  {:<20}  {:<20}  {}",
                            front(&t, 64),
                            group,
                            front(&broker, 32),
                            q,
                            b,
                            c,
                            b - c,
                            crate::acl::date_time(ts)
                        );
                    }
                }
            }
        }
        println!();
        println!("Diff Total: {}", num(&v["totalDiff"]));
        Ok(())
    }

    /// Master addresses of every registered broker.
    pub(crate) async fn masters(&self) -> Res<Vec<String>> {
        Ok(self
            .brokers()
            .await?
            .into_iter()
            .filter(|b| b.2 == 0)
            .map(|b| b.3)
            .collect())
    }

    /// `consumerConnection -g G [-b ADDR]`: the group's clients and
    /// subscriptions, from the first broker that knows the group online.
    pub(crate) async fn consumer_connection(&self, a: ConsumerConnection) -> Res<()> {
        let addrs = match a.broker {
            Some(b) => vec![b],
            None => self.masters().await?,
        };
        let mut last = format!("no broker for consumer group {}", a.group);
        let mut found = None;
        for addr in addrs {
            let req = RemotingCommand::request(request::GET_CONSUMER_CONNECTION_LIST)
                .with_ext("consumerGroup", &a.group);
            let r = call(&addr, req).await?;
            if r.code == response::SUCCESS {
                found = Some(body_json(&r, "consumer connection")?);
                break;
            }
            last = format!(
                "CODE: {} DESC: {}",
                r.code,
                r.remark.as_deref().unwrap_or("")
            );
        }
        let v = found.ok_or(last)?;
        println!(
            "{:<36} {:<22} {:<10} #Version",
            "#ClientId", "#ClientAddr", "#Language"
        );
        for c in v["connectionSet"].as_array().into_iter().flatten() {
            println!(
                "{:<36} {:<22} {:<10} {}",
                c["clientId"].as_str().unwrap_or(""),
                c["clientAddr"].as_str().unwrap_or(""),
                c["language"].as_str().unwrap_or(""),
                version_desc(num(&c["version"]))
            );
        }
        println!();
        println!("Below is subscription:");
        println!("{:<20} #SubExpression", "#Topic");
        for (_, s) in v["subscriptionTable"].as_object().into_iter().flatten() {
            println!(
                "{:<20} {}",
                s["topic"].as_str().unwrap_or(""),
                s["subString"].as_str().unwrap_or("")
            );
        }
        println!();
        println!("ConsumeType: {}", v["consumeType"].as_str().unwrap_or(""));
        println!("MessageModel: {}", v["messageModel"].as_str().unwrap_or(""));
        println!(
            "ConsumeFromWhere: {}",
            v["consumeFromWhere"].as_str().unwrap_or("")
        );
        Ok(())
    }

    /// `producerConnection -g G -t T`: the group's clients on the topic's
    /// brokers, numbered as mqadmin numbers them.
    pub(crate) async fn producer_connection(&self, a: ProducerConnection) -> Res<()> {
        let mut seen = std::collections::BTreeSet::new();
        let mut rows = Vec::new();
        let mut last = None;
        for (_, addr, _) in self.route(&a.topic).await? {
            let req = RemotingCommand::request(request::GET_PRODUCER_CONNECTION_LIST)
                .with_ext("producerGroup", &a.group);
            let r = call(&addr, req).await?;
            if r.code != response::SUCCESS {
                last = Some(format!(
                    "CODE: {} DESC: {}",
                    r.code,
                    r.remark.as_deref().unwrap_or("")
                ));
                continue;
            }
            let v = body_json(&r, "producer connection")?;
            for c in v["connectionSet"].as_array().into_iter().flatten() {
                let row = (
                    c["clientId"].as_str().unwrap_or("").to_string(),
                    c["clientAddr"].as_str().unwrap_or("").to_string(),
                    c["language"].as_str().unwrap_or("").to_string(),
                    version_desc(num(&c["version"])),
                );
                if seen.insert((row.0.clone(), row.1.clone())) {
                    rows.push(row);
                }
            }
        }
        if rows.is_empty() {
            if let Some(e) = last {
                return Err(e);
            }
        }
        for (i, (id, addr, lang, ver)) in rows.iter().enumerate() {
            println!("{:04}  {:<32} {:<22} {:<8} {}", i + 1, id, addr, lang, ver);
        }
        Ok(())
    }

    /// A stats item's minute TPS and day sum (mqadmin's `compute24HourSum`:
    /// the day's sum, else the hour's, else the minute's); zeros when the
    /// broker has none.
    async fn stats_item(addr: &str, name: &str, key: &str) -> (f64, i64) {
        let req = RemotingCommand::request(request::VIEW_BROKER_STATS_DATA)
            .with_ext("statsName", name)
            .with_ext("statsKey", key);
        let Ok(r) = call(addr, req).await else {
            return (0.0, 0);
        };
        let Ok(v) = ok(r, "stats").and_then(|r| body_json(&r, "stats")) else {
            return (0.0, 0);
        };
        let sum = ["statsDay", "statsHour", "statsMinute"]
            .iter()
            .map(|k| num(&v[k]["sum"]))
            .find(|s| *s != 0)
            .unwrap_or(0);
        (v["statsMinute"]["tps"].as_f64().unwrap_or(0.0), sum)
    }

    /// `statsAll [-a] [-t T]`: per topic and consuming group, the lag, in
    /// and out TPS over the last minute and messages in and out over the
    /// last day, in mqadmin's columns.
    pub(crate) async fn stats_all(&self, a: StatsAll) -> Res<()> {
        let r = self
            .namesrv_code(request::GET_ALL_TOPIC_LIST_FROM_NAMESERVER, "topic list")
            .await?;
        let v = body_json(&r, "topic list")?;
        let mut topics: Vec<String> = v["topicList"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|t| !t.starts_with("%RETRY%") && !t.starts_with("%DLQ%"))
            .filter(|t| a.topic.as_deref().is_none_or(|want| want == *t))
            .map(str::to_string)
            .collect();
        topics.sort();
        println!(
            "{:<64}  {:<64} {:>12} {:>11} {:>11} {:>14} {:>14}",
            "#Topic",
            "#Consumer Group",
            "#Accumulation",
            "#InTPS",
            "#OutTPS",
            "#InMsg24Hour",
            "#OutMsg24Hour"
        );
        for topic in topics {
            let Ok(route) = self.route(&topic).await else {
                continue;
            };
            let masters: Vec<String> = route.into_iter().map(|r| r.1).collect();
            let (mut in_tps, mut in_day) = (0.0, 0i64);
            let mut groups = std::collections::BTreeSet::new();
            for addr in &masters {
                let (t, s) = Self::stats_item(addr, "TOPIC_PUT_NUMS", &topic).await;
                in_tps += t;
                in_day += s;
                let req = RemotingCommand::request(request::QUERY_TOPIC_CONSUME_BY_WHO)
                    .with_ext("topic", &topic);
                if let Ok(r) = call(addr, req).await {
                    if let Ok(v) = ok(r, "consumers").and_then(|r| body_json(&r, "consumers")) {
                        groups.extend(
                            v["groupList"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .filter_map(Value::as_str)
                                .map(str::to_string),
                        );
                    }
                }
            }
            if groups.is_empty() {
                if !a.active || in_day > 0 {
                    println!(
                        "{:<64}  {:<64} {:>12} {:>11.2} {:>11} {:>14} {:>14}",
                        front(&topic, 64),
                        "",
                        0,
                        in_tps,
                        "",
                        in_day,
                        "NO_CONSUMER"
                    );
                }
                continue;
            }
            for group in groups {
                let (mut out_tps, mut out_day, mut lag) = (0.0, 0i64, 0i64);
                let key = format!("{topic}@{group}");
                for addr in &masters {
                    let (t, s) = Self::stats_item(addr, "GROUP_GET_NUMS", &key).await;
                    out_tps += t;
                    out_day += s;
                    let req = RemotingCommand::request(request::GET_CONSUME_STATS)
                        .with_ext("consumerGroup", &group)
                        .with_ext("topic", &topic);
                    if let Ok(r) = call(addr, req).await {
                        if let Ok(v) =
                            ok(r, "consume stats").and_then(|r| fastjson_body(&r, "consume stats"))
                        {
                            lag += v["offsetTable"]
                                .as_object()
                                .into_iter()
                                .flatten()
                                .map(|(_, w)| num(&w["brokerOffset"]) - num(&w["consumerOffset"]))
                                .sum::<i64>();
                        }
                    }
                }
                if !a.active || in_day > 0 || out_day > 0 {
                    println!(
                        "{:<64}  {:<64} {:>12} {:>11.2} {:>11.2} {:>14} {:>14}",
                        front(&topic, 64),
                        front(&group, 64),
                        lag.max(0),
                        in_tps,
                        out_tps,
                        in_day,
                        out_day
                    );
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_names_are_mqversions() {
        assert_eq!(version_desc(401), "V4_9_4");
        assert_eq!(version_desc(400), "V4_9_4_SNAPSHOT");
        assert_eq!(version_desc(213), "V4_0_0");
        assert_eq!(version_desc(412), "V5_0_0_SNAPSHOT");
        assert_eq!(version_desc(700), "HIGHER_VERSION");
        assert_eq!(version_desc(7), "7");
    }
}
