//! Mutating operations subcommands with mqadmin's names and flags:
//! `resetOffsetByTime`, `updateSubGroup`, `deleteSubGroup`, `deleteTopic`,
//! `updateBrokerConfig`.

use clap::Args;
use ferromq_server::broker::ops_mut::{code, parse_reset_offset_body};
use ferromq_server::remoting::{request, response, RemotingCommand};

use crate::client::{call, ok, Admin, Res};
use crate::print::table;
use crate::Target;

/// `resetOffsetByTime` flags (mqadmin's `ResetOffsetByTimeCommand`).
#[derive(Args, Debug)]
pub(crate) struct ResetOffsetByTime {
    /// Consumer group.
    #[arg(short = 'g', long = "group")]
    group: String,
    /// Topic.
    #[arg(short = 't', long = "topic")]
    topic: String,
    /// `now` (the latest offsets), milliseconds since the epoch, or
    /// `yyyy-MM-dd#HH:mm:ss:SSS` (read as UTC).
    #[arg(short = 's', long = "timestamp", allow_hyphen_values = true)]
    timestamp: String,
    /// Force the rollback: `false` moves a queue only backwards.
    #[arg(short = 'f', long = "force", default_value = "true")]
    force: String,
    /// Send the request as a C++ client (mqadmin's `-c`/`--cplus`): every
    /// consumer is told in the C++ client's form.
    #[arg(short = 'c', long = "cplus")]
    cplus: bool,
    /// Broker address: only this broker (default: every master of the topic's route).
    #[arg(short = 'b', long = "brokerAddr")]
    broker: Option<String>,
}

/// `updateSubGroup` flags (mqadmin's `UpdateSubGroupSubCommand`).
#[derive(Args, Debug)]
pub(crate) struct UpdateSubGroup {
    /// Consumer group.
    #[arg(short = 'g', long = "groupName")]
    group: String,
    #[command(flatten)]
    target: Target,
    /// consumeEnable.
    #[arg(short = 's', long = "consumeEnable")]
    consume_enable: Option<bool>,
    /// consumeFromMinEnable.
    #[arg(short = 'm', long = "consumeFromMinEnable")]
    consume_from_min_enable: Option<bool>,
    /// consumeBroadcastEnable.
    #[arg(short = 'd', long = "consumeBroadcastEnable")]
    consume_broadcast_enable: Option<bool>,
    /// retryQueueNums.
    #[arg(short = 'q', long = "retryQueueNums")]
    retry_queue_nums: Option<i32>,
    /// retryMaxTimes.
    #[arg(short = 'r', long = "retryMaxTimes")]
    retry_max_times: Option<i32>,
    /// brokerId the group consumes from.
    #[arg(short = 'i', long = "brokerId")]
    broker_id: Option<i64>,
    /// whichBrokerWhenConsumeSlowly.
    #[arg(short = 'w', long = "whichBrokerWhenConsumeSlowly")]
    which_broker_when_consume_slowly: Option<i64>,
    /// notifyConsumerIdsChangedEnable.
    #[arg(short = 'a', long = "notifyConsumerIdsChanged")]
    notify_consumer_ids_changed_enable: Option<bool>,
}

/// `deleteSubGroup` flags.
#[derive(Args, Debug)]
pub(crate) struct DeleteSubGroup {
    /// Consumer group.
    #[arg(short = 'g', long = "groupName")]
    group: String,
    #[command(flatten)]
    target: Target,
}

/// `deleteTopic` flags (mqadmin's `DeleteTopicSubCommand`).
#[derive(Args, Debug)]
pub(crate) struct DeleteTopic {
    /// Topic.
    #[arg(short = 't', long = "topic")]
    topic: String,
    /// Cluster: the topic is deleted at every broker of it and at the name servers.
    #[arg(short = 'c', long = "clusterName")]
    cluster: String,
}

/// `updateBrokerConfig` flags (mqadmin's `UpdateBrokerConfigSubCommand`).
#[derive(Args, Debug)]
pub(crate) struct UpdateBrokerConfig {
    #[command(flatten)]
    target: Target,
    /// Key.
    #[arg(short = 'k', long = "key")]
    key: String,
    /// Value.
    #[arg(short = 'v', long = "value", allow_hyphen_values = true)]
    value: String,
}

/// `LanguageCode.CPP`'s ordinal.
const LANGUAGE_CPP: u8 = 1;

/// Milliseconds since the epoch of `yyyy-MM-dd#HH:mm:ss:SSS` (UTC).
fn parse_date(s: &str) -> Option<i64> {
    let (date, time) = s.split_once('#')?;
    let d: Vec<i64> = date
        .split('-')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let t: Vec<i64> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let ([y, mo, da], [h, mi, se, ms]) = (d.as_slice(), t.as_slice()) else {
        return None;
    };
    if !(1..=12).contains(mo) || !(1..=31).contains(da) || *h > 23 || *mi > 59 || *se > 59 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if *mo <= 2 { y - 1 } else { *y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + da - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((((days * 24 + h) * 60 + mi) * 60 + se) * 1000 + ms)
}

/// mqadmin's reading of `-s`: `now` is -1 (the latest offsets), else
/// milliseconds, else a date.
fn parse_timestamp(s: &str) -> Res<i64> {
    let s = s.trim();
    if s == "now" {
        return Ok(-1);
    }
    s.parse::<i64>()
        .ok()
        .or_else(|| parse_date(s))
        .ok_or_else(|| {
            format!("timestamp {s:?} is not `now`, milliseconds or yyyy-MM-dd#HH:mm:ss:SSS")
        })
}

impl Admin {
    /// `resetOffsetByTime`: INVOKE_BROKER_TO_RESET_OFFSET at every master of
    /// the topic's route; prints the offsets each broker set.
    pub(crate) async fn reset_offset_by_time(&self, r: ResetOffsetByTime) -> Res<()> {
        let timestamp = parse_timestamp(&r.timestamp)?;
        let force: bool = r
            .force
            .trim()
            .parse()
            .map_err(|_| format!("-f {:?}: give true or false", r.force))?;
        let addrs: Vec<String> = match &r.broker {
            Some(b) => vec![b.clone()],
            None => {
                let mut v: Vec<String> = self
                    .route(&r.topic)
                    .await?
                    .into_iter()
                    .map(|x| x.1)
                    .collect();
                v.dedup();
                v
            }
        };
        let mut rows = Vec::new();
        for addr in addrs {
            let mut req = RemotingCommand::request(code::INVOKE_BROKER_TO_RESET_OFFSET)
                .with_ext("topic", &r.topic)
                .with_ext("group", &r.group)
                .with_ext("timestamp", timestamp)
                .with_ext("isForce", force);
            if r.cplus {
                req.language = LANGUAGE_CPP;
            }
            let a = ok(call(&addr, req).await?, &format!("reset offset at {addr}"))?;
            let text = String::from_utf8_lossy(&a.body);
            let mut got = parse_reset_offset_body(&text)?;
            got.sort();
            for (b, _, q, off) in got {
                rows.push(vec![b, q.to_string(), off.to_string()]);
            }
        }
        println!(
            "rollback consumer offset by specified group[{}], topic[{}], force[{force}], timestamp(string)[{}], timestamp(long)[{timestamp}]",
            r.group, r.topic, r.timestamp
        );
        table(&["#brokerName", "#queueId", "#offset"], &rows);
        Ok(())
    }

    /// `updateSubGroup`: UPDATE_AND_CREATE_SUBSCRIPTIONGROUP at each target
    /// broker; flags not given keep RocketMQ's defaults.
    pub(crate) async fn update_sub_group(&self, u: UpdateSubGroup) -> Res<()> {
        let mut cfg = serde_json::json!({
            "groupName": u.group,
            "consumeEnable": u.consume_enable.unwrap_or(true),
            // mqadmin's defaults: both false unless given.
            "consumeFromMinEnable": u.consume_from_min_enable.unwrap_or(false),
            "consumeBroadcastEnable": u.consume_broadcast_enable.unwrap_or(false),
            "retryQueueNums": u.retry_queue_nums.unwrap_or(1),
            "retryMaxTimes": u.retry_max_times.unwrap_or(16),
            "brokerId": u.broker_id.unwrap_or(0),
            "whichBrokerWhenConsumeSlowly": u.which_broker_when_consume_slowly.unwrap_or(1),
            "notifyConsumerIdsChangedEnable": u.notify_consumer_ids_changed_enable.unwrap_or(true),
        });
        cfg.sort_all_objects();
        let body = cfg.to_string();
        for addr in self.targets(&u.target).await? {
            let req = RemotingCommand::request(code::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP)
                .with_body(body.clone().into_bytes());
            ok(
                call(&addr, req).await?,
                &format!("update subscription group at {addr}"),
            )?;
            println!("create subscription group to {addr} success.");
        }
        println!("{body}");
        Ok(())
    }

    /// `deleteSubGroup`: DELETE_SUBSCRIPTIONGROUP at each target broker.
    pub(crate) async fn delete_sub_group(&self, d: DeleteSubGroup) -> Res<()> {
        for addr in self.targets(&d.target).await? {
            let req = RemotingCommand::request(code::DELETE_SUBSCRIPTIONGROUP)
                .with_ext("groupName", &d.group);
            let a = ok(
                call(&addr, req).await?,
                &format!("delete subscription group at {addr}"),
            )?;
            match a.remark.as_deref() {
                Some(why) if !why.is_empty() => println!("{addr}: {why}"),
                _ => println!(
                    "delete subscription group [{}] from broker [{addr}] in cluster [{}] success.",
                    d.group,
                    d.target.cluster.as_deref().unwrap_or("")
                ),
            }
        }
        Ok(())
    }

    /// `deleteTopic`: DELETE_TOPIC_IN_BROKER at every broker of the cluster
    /// (masters and slaves: each has its own queues), then
    /// DELETE_TOPIC_IN_NAMESRV at every name server; each answer is printed.
    pub(crate) async fn delete_topic(&self, d: DeleteTopic) -> Res<()> {
        let addrs: Vec<String> = self
            .brokers()
            .await?
            .into_iter()
            .filter(|b| b.0 == d.cluster)
            .map(|b| b.3)
            .collect();
        if addrs.is_empty() {
            return Err(format!("no broker in cluster {}", d.cluster));
        }
        for addr in &addrs {
            let req =
                RemotingCommand::request(code::DELETE_TOPIC_IN_BROKER).with_ext("topic", &d.topic);
            let r = ok(
                call(addr, req).await?,
                &format!("delete topic at broker {addr}"),
            )?;
            println!("delete topic [{}] from broker [{addr}] success.", d.topic);
            if let Some(remark) = r.remark.as_deref().filter(|s| !s.is_empty()) {
                println!("  {remark}");
            }
        }
        let mut ns_ok = true;
        for ns in &self.namesrv {
            let req =
                RemotingCommand::request(code::DELETE_TOPIC_IN_NAMESRV).with_ext("topic", &d.topic);
            let line = match call(ns, req).await {
                Ok(a) if a.code == response::SUCCESS => "success.".to_string(),
                Ok(a) => format!("code {} {}", a.code, a.remark.unwrap_or_default()),
                Err(e) => e,
            };
            ns_ok &= line == "success.";
            println!("delete topic [{}] from NameServer [{ns}]: {line}", d.topic);
        }
        if ns_ok {
            println!(
                "delete topic [{}] from cluster [{}] success.",
                d.topic, d.cluster
            );
        } else {
            println!(
                "topic [{}] deleted at the brokers of cluster [{}]; a name server kept its route (see above)",
                d.topic, d.cluster
            );
        }
        Ok(())
    }

    /// `updateBrokerConfig`: UPDATE_BROKER_CONFIG with one `key=value` at
    /// each target broker.
    pub(crate) async fn update_broker_config(&self, u: UpdateBrokerConfig) -> Res<()> {
        let body = format!("{}={}\n", u.key.trim(), u.value.trim());
        for addr in self.targets(&u.target).await? {
            let req = RemotingCommand::request(request::UPDATE_BROKER_CONFIG)
                .with_body(body.clone().into_bytes());
            let r = ok(
                call(&addr, req).await?,
                &format!("update broker config at {addr}"),
            )?;
            println!("update broker config success, {addr}");
            // e.g. a clamped value, or "applied live; not persisted".
            if let Some(remark) = r.remark.as_deref().filter(|s| !s.is_empty()) {
                println!("  {remark}");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_as_mqadmin_reads_them() {
        assert_eq!(parse_timestamp("now"), Ok(-1));
        assert_eq!(parse_timestamp("1700000000000"), Ok(1_700_000_000_000));
        assert_eq!(parse_timestamp("1970-01-01#00:00:00:000"), Ok(0));
        assert_eq!(
            parse_timestamp("2023-11-14#22:13:20:005"),
            Ok(1_700_000_000_005)
        );
        assert!(parse_timestamp("yesterday").is_err());
        assert!(parse_timestamp("2023-13-01#00:00:00:000").is_err());
    }
}
