//! `ferromq-admin`: RocketMQ's `mqadmin` subcommands that matter day to day,
//! against any name server and broker speaking RocketMQ 4.x remoting.
//!
//! ```text
//! ferromq-admin -n 127.0.0.1:9876 topicList
//! ferromq-admin -n 127.0.0.1:9876 updateTopic -t T -c DefaultCluster -r 4 -w 4
//! ferromq-admin -n 127.0.0.1:9876 topicStatus -t T
//! ferromq-admin -n 127.0.0.1:9876 consumerProgress -g G
//! ferromq-admin txnPending -b 127.0.0.1:10911
//! ferromq-admin damagedRecords -b 127.0.0.1:10911
//! ```
//!
//! Output is a plain table; any failure prints `ferromq-admin: <why>` and exits 1.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use ferromq_engine::message::{decode_offset_msg_id, decode_records};
use ferromq_engine::MessageExt;
use ferromq_server::remoting::{json, request, response, RemotingClient, RemotingCommand};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(10);

/// RocketMQ admin tool.
#[derive(Parser, Debug)]
#[command(name = "ferromq-admin", version, about)]
struct Cli {
    /// Name server addresses, `host:port;host:port` (default: $NAMESRV_ADDR).
    #[arg(short = 'n', long = "namesrvAddr", global = true)]
    namesrv: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
#[allow(clippy::enum_variant_names)]
enum Cmd {
    /// List every topic the name server knows.
    #[command(name = "topicList")]
    TopicList,
    /// Create or update a topic on one broker (-b) or every master of a cluster (-c).
    #[command(name = "updateTopic")]
    UpdateTopic(UpdateTopic),
    /// Brokers per cluster, with their runtime figures.
    #[command(name = "clusterList")]
    ClusterList,
    /// Min and max offsets of every queue of a topic.
    #[command(name = "topicStatus")]
    TopicStatus {
        /// Topic.
        #[arg(short = 't', long = "topic")]
        topic: String,
    },
    /// A consumer group's offsets and lag per queue.
    #[command(name = "consumerProgress")]
    ConsumerProgress {
        /// Consumer group.
        #[arg(short = 'g', long = "groupName")]
        group: String,
        /// Only this topic.
        #[arg(short = 't', long = "topicName")]
        topic: Option<String>,
    },
    /// Messages of a topic with a key.
    #[command(name = "queryMsgByKey")]
    QueryMsgByKey {
        /// Topic.
        #[arg(short = 't', long = "topic")]
        topic: String,
        /// Key.
        #[arg(short = 'k', long = "msgKey")]
        key: String,
    },
    /// One message by its msgId (offset msgId; with -t also a unique key).
    #[command(name = "queryMsgById")]
    QueryMsgById {
        /// Message id.
        #[arg(short = 'i', long = "msgId")]
        msg_id: String,
        /// Topic, to look a unique key (client msgId) up.
        #[arg(short = 't', long = "topic")]
        topic: Option<String>,
    },
    /// Delete expired commitlog files now.
    #[command(name = "deleteExpiredCommitLog")]
    DeleteExpiredCommitLog(Target),
    /// A broker's runtime figures.
    #[command(name = "brokerStatus")]
    BrokerStatus(Target),
    /// A broker's effective configuration.
    #[command(name = "getBrokerConfig")]
    GetBrokerConfig(Target),
    /// Replication: per slave of a master its address, acked offset and lag in
    /// bytes and ms; for a slave, the master it follows.
    #[command(name = "haStatus")]
    HaStatus(Target),
    /// Records the broker found damaged and skipped (a body that fails its
    /// CRC, a damaged header): topic, queue, queue offset, commitlog offset
    /// (ferromq-specific, from the runtime figures).
    #[command(name = "damagedRecords")]
    DamagedRecords(Target),
    /// Half messages still waiting for commit or rollback, per producer group,
    /// with their age (ferromq-specific broker request).
    #[command(name = "txnPending")]
    TxnPending(Target),
}

#[derive(Args, Debug)]
struct UpdateTopic {
    /// Topic.
    #[arg(short = 't', long = "topic")]
    topic: String,
    #[command(flatten)]
    target: Target,
    /// Read queues.
    #[arg(short = 'r', long = "readQueueNums", default_value_t = 8)]
    read: u32,
    /// Write queues.
    #[arg(short = 'w', long = "writeQueueNums", default_value_t = 8)]
    write: u32,
    /// Permission bits (2 write, 4 read, 6 both).
    #[arg(short = 'p', long = "perm", default_value_t = 6)]
    perm: u32,
    /// Ordered topic.
    #[arg(short = 'o', long = "order", default_value_t = false)]
    order: bool,
}

#[derive(Args, Debug)]
struct Target {
    /// Broker address `ip:port`.
    #[arg(short = 'b', long = "brokerAddr")]
    broker: Option<String>,
    /// Cluster name: every master of the cluster.
    #[arg(short = 'c', long = "clusterName")]
    cluster: Option<String>,
}

type Res<T> = Result<T, String>;

struct Admin {
    namesrv: Vec<String>,
}

async fn call(addr: &str, req: RemotingCommand) -> Res<RemotingCommand> {
    let c = RemotingClient::new(addr);
    let r = c.invoke(req, TIMEOUT).await.map_err(|e| e.to_string());
    c.close().await;
    r
}

fn ok(r: RemotingCommand, what: &str) -> Res<RemotingCommand> {
    if r.code == response::SUCCESS {
        Ok(r)
    } else {
        Err(format!(
            "{what}: code {} {}",
            r.code,
            r.remark.as_deref().unwrap_or("")
        ))
    }
}

fn body_json(r: &RemotingCommand, what: &str) -> Res<Value> {
    let text = std::str::from_utf8(&r.body).map_err(|e| format!("{what}: {e}"))?;
    json::parse_lenient(text).map_err(|e| format!("{what}: {e}"))
}

fn num(v: &Value) -> i64 {
    match v {
        Value::Number(n) => n.as_i64().unwrap_or(0),
        Value::String(s) => s.trim().parse().unwrap_or(0),
        _ => 0,
    }
}

/// Print rows as a left-aligned table.
/// Rows of `haStatus` for one broker's runtime figures.
fn ha_rows(addr: &str, info: &BTreeMap<String, String>) -> Vec<Vec<String>> {
    let g = |k: &str| info.get(k).cloned().unwrap_or_else(|| "-".into());
    if info.contains_key("haMasterConnected") {
        let state = if g("haMasterConnected") == "true" {
            "following"
        } else {
            "not connected to"
        };
        return vec![vec![
            addr.to_string(),
            g("brokerRole"),
            format!("{state} {} (HA {})", g("masterAddr"), g("haMasterAddress")),
            g("commitLogMaxOffset"),
            "-".into(),
            "-".into(),
        ]];
    }
    let n: usize = g("haSlaveCount").parse().unwrap_or(0);
    if n == 0 {
        return vec![vec![
            addr.to_string(),
            g("brokerRole"),
            "no slave".into(),
            "-".into(),
            "-".into(),
            "-".into(),
        ]];
    }
    (0..n)
        .map(|i| {
            vec![
                addr.to_string(),
                g("brokerRole"),
                format!("slave {}", g(&format!("haSlave{i}Addr"))),
                g(&format!("haSlave{i}AckedOffset")),
                g(&format!("haSlave{i}LagBytes")),
                g(&format!("haSlave{i}LagMs")),
            ]
        })
        .collect()
}

fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut w: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < w.len() {
                w[i] = w[i].max(c.len());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let s: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{:<width$}", c, width = w[i]))
            .collect();
        println!("{}", s.join("  ").trim_end());
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

/// (cluster, broker name, broker id, address) of every registered broker.
type BrokerRow = (String, String, i64, String);

impl Admin {
    /// Ask each name server in turn until one answers.
    async fn namesrv_call(&self, req: RemotingCommand) -> Res<RemotingCommand> {
        let mut last = "no name server address: use -n or NAMESRV_ADDR".to_string();
        for a in &self.namesrv {
            match call(a, req.clone()).await {
                Ok(r) => return Ok(r),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    async fn brokers(&self) -> Res<Vec<BrokerRow>> {
        let r = ok(
            self.namesrv_call(RemotingCommand::request(request::GET_BROKER_CLUSTER_INFO))
                .await?,
            "cluster info",
        )?;
        let v = body_json(&r, "cluster info")?;
        let mut out = Vec::new();
        if let Value::Object(clusters) = &v["clusterAddrTable"] {
            for (cluster, names) in clusters {
                for name in names.as_array().into_iter().flatten() {
                    let name = name.as_str().unwrap_or_default();
                    if let Value::Object(addrs) = &v["brokerAddrTable"][name]["brokerAddrs"] {
                        for (id, addr) in addrs {
                            out.push((
                                cluster.clone(),
                                name.to_string(),
                                id.trim().parse().unwrap_or(-1),
                                addr.as_str().unwrap_or_default().to_string(),
                            ));
                        }
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Broker addresses a command goes to: `-b`, or every master of `-c`.
    async fn targets(&self, t: &Target) -> Res<Vec<String>> {
        match (&t.broker, &t.cluster) {
            (Some(b), _) => Ok(vec![b.clone()]),
            (None, Some(c)) => {
                let v: Vec<String> = self
                    .brokers()
                    .await?
                    .into_iter()
                    .filter(|b| &b.0 == c && b.2 == 0)
                    .map(|b| b.3)
                    .collect();
                if v.is_empty() {
                    return Err(format!("no master broker in cluster {c}"));
                }
                Ok(v)
            }
            (None, None) => Err("give a broker (-b ADDR) or a cluster (-c NAME)".into()),
        }
    }

    /// (broker name, master address, read queues) of a topic's route.
    async fn route(&self, topic: &str) -> Res<Vec<(String, String, i64)>> {
        let req = RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC)
            .with_ext("topic", topic)
            .with_ext("acceptStandardJsonOnly", true);
        let r = self.namesrv_call(req).await?;
        if r.code == response::TOPIC_NOT_EXIST {
            return Err(format!("topic {topic} does not exist"));
        }
        let v = body_json(&ok(r, "route")?, "route")?;
        let mut out = Vec::new();
        for q in v["queueDatas"].as_array().into_iter().flatten() {
            let name = q["brokerName"].as_str().unwrap_or_default();
            let addr = v["brokerDatas"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|b| b["brokerName"].as_str() == Some(name))
                .and_then(|b| b["brokerAddrs"]["0"].as_str());
            if let Some(addr) = addr {
                out.push((name.to_string(), addr.to_string(), num(&q["readQueueNums"])));
            }
        }
        out.sort();
        Ok(out)
    }

    async fn offset(addr: &str, code: i32, topic: &str, q: i64) -> Res<i64> {
        let req = RemotingCommand::request(code)
            .with_ext("topic", topic)
            .with_ext("queueId", q);
        let r = ok(call(addr, req).await?, "offset")?;
        r.ext_fields.get_i64("offset").map_err(|e| e.to_string())
    }

    async fn runtime_info(addr: &str) -> Res<BTreeMap<String, String>> {
        let r = ok(
            call(
                addr,
                RemotingCommand::request(request::GET_BROKER_RUNTIME_INFO),
            )
            .await?,
            "runtime info",
        )?;
        let v = body_json(&r, "runtime info")?;
        Ok(v["table"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Run one subcommand: each has its own method below.
    async fn run(&self, cmd: Cmd) -> Res<()> {
        match cmd {
            Cmd::TopicList => self.topic_list().await,
            Cmd::UpdateTopic(u) => self.update_topic(u).await,
            Cmd::ClusterList => self.cluster_list().await,
            Cmd::TopicStatus { topic } => self.topic_status(topic).await,
            Cmd::ConsumerProgress { group, topic } => self.consumer_progress(group, topic).await,
            Cmd::QueryMsgByKey { topic, key } => self.query_msg_by_key(topic, key).await,
            Cmd::QueryMsgById { msg_id, topic } => self.query_msg_by_id(msg_id, topic).await,
            Cmd::DeleteExpiredCommitLog(t) => self.delete_expired_commit_log(t).await,
            Cmd::GetBrokerConfig(t) => self.get_broker_config(t).await,
            Cmd::HaStatus(t) => self.ha_status(t).await,
            Cmd::TxnPending(t) => self.txn_pending(t).await,
            Cmd::DamagedRecords(t) => self.damaged_records(t).await,
            Cmd::BrokerStatus(t) => self.broker_status(t).await,
        }
    }

    /// `topicList`: every topic the name server knows, sorted, one a line.
    async fn topic_list(&self) -> Res<()> {
        let r = ok(
            self.namesrv_call(RemotingCommand::request(
                request::GET_ALL_TOPIC_LIST_FROM_NAMESERVER,
            ))
            .await?,
            "topic list",
        )?;
        let v = body_json(&r, "topic list")?;
        let mut topics: Vec<&str> = v["topicList"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        topics.sort();
        for t in topics {
            println!("{t}");
        }
        Ok(())
    }

    /// `updateTopic`: create or update a topic on each target broker.
    async fn update_topic(&self, u: UpdateTopic) -> Res<()> {
        for addr in self.targets(&u.target).await? {
            let req = RemotingCommand::request(request::UPDATE_AND_CREATE_TOPIC)
                .with_ext("topic", &u.topic)
                .with_ext("defaultTopic", "TBW102")
                .with_ext("readQueueNums", u.read)
                .with_ext("writeQueueNums", u.write)
                .with_ext("perm", u.perm)
                .with_ext("topicFilterType", "SINGLE_TAG")
                .with_ext("topicSysFlag", 0)
                .with_ext("order", u.order);
            ok(call(&addr, req).await?, &format!("create topic on {addr}"))?;
            println!("create topic to {addr} success.");
        }
        println!(
            "TopicConfig [topicName={}, readQueueNums={}, writeQueueNums={}, perm={}, order={}]",
            u.topic, u.read, u.write, u.perm, u.order
        );
        Ok(())
    }

    /// `clusterList`: every registered broker with its runtime figures.
    async fn cluster_list(&self) -> Res<()> {
        let mut rows = Vec::new();
        for (cluster, name, id, addr) in self.brokers().await? {
            let info = Self::runtime_info(&addr).await.unwrap_or_default();
            let g = |k: &str| info.get(k).cloned().unwrap_or_else(|| "-".into());
            rows.push(vec![
                cluster,
                name,
                id.to_string(),
                addr,
                g("brokerVersionDesc"),
                g("msgPutTotalTodayNow"),
                g("msgGetTotalTodayNow"),
                g("commitLogMaxOffset"),
                g("commitLogDiskRatio"),
            ]);
        }
        table(
            &[
                "#Cluster Name",
                "#Broker Name",
                "#BID",
                "#Addr",
                "#Version",
                "#PutTotalToday",
                "#GetTotalToday",
                "#CommitLogMax",
                "#DiskRatio",
            ],
            &rows,
        );
        Ok(())
    }

    /// `topicStatus`: min and max offset of every queue of a topic.
    async fn topic_status(&self, topic: String) -> Res<()> {
        let mut rows = Vec::new();
        for (name, addr, queues) in self.route(&topic).await? {
            for q in 0..queues {
                let min = Self::offset(&addr, request::GET_MIN_OFFSET, &topic, q).await?;
                let max = Self::offset(&addr, request::GET_MAX_OFFSET, &topic, q).await?;
                rows.push(vec![
                    name.clone(),
                    q.to_string(),
                    min.to_string(),
                    max.to_string(),
                ]);
            }
        }
        table(
            &["#Broker Name", "#QID", "#Min Offset", "#Max Offset"],
            &rows,
        );
        Ok(())
    }

    /// `consumerProgress`: a group's offsets and lag per queue on every master,
    /// and the total lag.
    async fn consumer_progress(&self, group: String, topic: Option<String>) -> Res<()> {
        let suffix = format!("@{group}");
        let mut rows = Vec::new();
        let mut total = 0i64;
        for (_, name, id, addr) in self.brokers().await? {
            if id != 0 {
                continue;
            }
            let r = ok(
                call(
                    &addr,
                    RemotingCommand::request(request::GET_ALL_CONSUMER_OFFSET),
                )
                .await?,
                "consumer offsets",
            )?;
            let v = body_json(&r, "consumer offsets")?;
            for (key, queues) in v["offsetTable"].as_object().into_iter().flatten() {
                let Some(t) = key.strip_suffix(&suffix) else {
                    continue;
                };
                if topic.as_deref().is_some_and(|want| want != t) {
                    continue;
                }
                let mut qs: Vec<(i64, i64)> = queues
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(q, o)| (q.trim().parse().unwrap_or(-1), num(o)))
                    .collect();
                qs.sort();
                for (q, consumer) in qs {
                    let broker = Self::offset(&addr, request::GET_MAX_OFFSET, t, q).await?;
                    let diff = broker - consumer;
                    total += diff;
                    rows.push(vec![
                        t.to_string(),
                        name.clone(),
                        q.to_string(),
                        broker.to_string(),
                        consumer.to_string(),
                        diff.to_string(),
                    ]);
                }
            }
        }
        if rows.is_empty() {
            return Err(format!("no consumer offsets for group {group}"));
        }
        table(
            &[
                "#Topic",
                "#Broker Name",
                "#QID",
                "#Broker Offset",
                "#Consumer Offset",
                "#Diff",
            ],
            &rows,
        );
        println!();
        println!("Diff Total: {total}");
        Ok(())
    }

    /// `queryMsgByKey`: the messages of a topic with a key.
    async fn query_msg_by_key(&self, topic: String, key: String) -> Res<()> {
        let mut rows = Vec::new();
        for (_, addr, _) in self.route(&topic).await? {
            for m in Self::query(&addr, &topic, &key, false).await? {
                if m.keys().contains(&key.as_str()) {
                    rows.push(vec![
                        m.msg_id(),
                        m.properties.get("UNIQ_KEY").unwrap_or("-").to_string(),
                        m.queue_id.to_string(),
                        m.queue_offset.to_string(),
                    ]);
                }
            }
        }
        if rows.is_empty() {
            return Err(format!("no message with key {key} in topic {topic}"));
        }
        table(&["#Message ID", "#Unique Key", "#QID", "#Offset"], &rows);
        Ok(())
    }

    /// `queryMsgById`: one message by its offset msgId, or with a topic by its
    /// unique key.
    async fn query_msg_by_id(&self, msg_id: String, topic: Option<String>) -> Res<()> {
        let m = match decode_offset_msg_id(&msg_id) {
            Ok((addr, offset)) => {
                let req = RemotingCommand::request(request::VIEW_MESSAGE_BY_ID)
                    .with_ext("offset", offset);
                let r = ok(call(&addr.to_string(), req).await?, "view message")?;
                decode_records(&r.body)
                    .map_err(|e| format!("undecodable message: {e}"))?
                    .into_iter()
                    .next()
                    .ok_or("empty answer")?
            }
            Err(e) => {
                let Some(topic) = topic else {
                    return Err(format!(
                        "{msg_id} is not an offset msgId ({e}); give -t TOPIC to look it up as a unique key"
                    ));
                };
                let mut found = None;
                for (_, addr, _) in self.route(&topic).await? {
                    found = Self::query(&addr, &topic, &msg_id, true)
                        .await?
                        .into_iter()
                        .find(|m| m.properties.get("UNIQ_KEY") == Some(msg_id.as_str()));
                    if found.is_some() {
                        break;
                    }
                }
                found.ok_or(format!("no message {msg_id} in topic {topic}"))?
            }
        };
        print_message(&m);
        Ok(())
    }

    /// `deleteExpiredCommitLog`: ask each target broker to delete expired files.
    async fn delete_expired_commit_log(&self, t: Target) -> Res<()> {
        for addr in self.targets(&t).await? {
            ok(
                call(
                    &addr,
                    RemotingCommand::request(request::DELETE_EXPIRED_COMMITLOG),
                )
                .await?,
                &format!("delete expired commitlog on {addr}"),
            )?;
            println!("{addr}: delete expired commitlog success.");
        }
        Ok(())
    }

    /// `getBrokerConfig`: each target broker's `key=value` settings.
    async fn get_broker_config(&self, t: Target) -> Res<()> {
        for addr in self.targets(&t).await? {
            let r = ok(
                call(&addr, RemotingCommand::request(request::GET_BROKER_CONFIG)).await?,
                &format!("broker config of {addr}"),
            )?;
            println!("============{addr}============");
            for line in String::from_utf8_lossy(&r.body).lines() {
                match line.split_once('=') {
                    Some((k, v)) if !line.starts_with('#') => {
                        println!("{:<50}=  {}", k.trim(), v.trim())
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// `haStatus`: the replication rows ([`ha_rows`]) of each target broker.
    async fn ha_status(&self, t: Target) -> Res<()> {
        let mut rows = Vec::new();
        for addr in self.targets(&t).await? {
            let info = Self::runtime_info(&addr).await?;
            rows.extend(ha_rows(&addr, &info));
        }
        table(
            &[
                "#Broker Addr",
                "#Role",
                "#Peer",
                "#Acked Offset",
                "#Lag Bytes",
                "#Lag ms",
            ],
            &rows,
        );
        Ok(())
    }

    /// `txnPending`: each target broker's half messages awaiting a decision.
    async fn txn_pending(&self, t: Target) -> Res<()> {
        for addr in self.targets(&t).await? {
            let r = ok(
                call(
                    &addr,
                    RemotingCommand::request(request::FERROMQ_GET_PENDING_TRANSACTIONS),
                )
                .await?,
                &format!("pending transactions of {addr}"),
            )?;
            let v = body_json(&r, "pending transactions")?;
            print_pending(&addr, &v);
        }
        Ok(())
    }

    /// `damagedRecords`: the records each target broker found damaged and skipped.
    async fn damaged_records(&self, t: Target) -> Res<()> {
        let mut rows = Vec::new();
        for addr in self.targets(&t).await? {
            let info = Self::runtime_info(&addr).await?;
            let count = info.get("damagedRecordCount").cloned().unwrap_or_default();
            println!("{addr}: {count} damaged records");
            let listed = info.get("damagedRecords").map_or("[]", String::as_str);
            let v: Value = serde_json::from_str(listed)
                .map_err(|e| format!("damagedRecords of {addr}: {e}"))?;
            for d in v.as_array().into_iter().flatten() {
                rows.push(vec![
                    addr.clone(),
                    d["topic"].as_str().unwrap_or_default().to_string(),
                    num(&d["queueId"]).to_string(),
                    num(&d["queueOffset"]).to_string(),
                    num(&d["commitLogOffset"]).to_string(),
                    d["reason"].as_str().unwrap_or_default().to_string(),
                ]);
            }
        }
        table(
            &[
                "#Broker Addr",
                "#Topic",
                "#QID",
                "#Queue Offset",
                "#CommitLog Offset",
                "#Reason",
            ],
            &rows,
        );
        Ok(())
    }

    /// `brokerStatus`: each target broker's runtime figures.
    async fn broker_status(&self, t: Target) -> Res<()> {
        for addr in self.targets(&t).await? {
            let info = Self::runtime_info(&addr).await?;
            for (k, v) in info {
                println!("{k:<32}: {v}");
            }
        }
        Ok(())
    }

    async fn query(addr: &str, topic: &str, key: &str, unique: bool) -> Res<Vec<MessageExt>> {
        let mut req = RemotingCommand::request(request::QUERY_MESSAGE)
            .with_ext("topic", topic)
            .with_ext("key", key)
            .with_ext("maxNum", 64)
            .with_ext("beginTimestamp", 0)
            .with_ext("endTimestamp", i64::MAX);
        if unique {
            req = req.with_ext("_UNIQUE_KEY_QUERY", "true");
        }
        let r = call(addr, req).await?;
        if r.code == response::QUERY_NOT_FOUND {
            return Ok(Vec::new());
        }
        let r = ok(r, "query message")?;
        decode_records(&r.body).map_err(|e| format!("undecodable messages: {e}"))
    }
}

/// `1234` ms as `1.2 s`, `95000` as `1m35s`.
fn age(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        format!("{}m{:02}s", ms / 60_000, ms / 1000 % 60)
    } else {
        format!("{}h{:02}m", ms / 3_600_000, ms / 60_000 % 60)
    }
}

fn print_pending(addr: &str, v: &Value) {
    println!("============{addr}============");
    let groups = v["groups"].as_object().cloned().unwrap_or_default();
    if groups.is_empty() {
        println!("no pending transactions");
        return;
    }
    for (g, list) in groups {
        let list = list.as_array().cloned().unwrap_or_default();
        let oldest = list.iter().map(|p| num(&p["ageMs"])).max().unwrap_or(0);
        println!("{g}: {} pending, oldest {}", list.len(), age(oldest));
        let rows: Vec<Vec<String>> = list
            .iter()
            .map(|p| {
                vec![
                    p["msgId"].as_str().unwrap_or("-").to_string(),
                    p["realTopic"].as_str().unwrap_or("").to_string(),
                    num(&p["queueOffset"]).to_string(),
                    num(&p["checkTimes"]).to_string(),
                    age(num(&p["ageMs"])),
                ]
            })
            .collect();
        table(
            &["#MsgId", "#Topic", "#HalfOffset", "#Checks", "#Age"],
            &rows,
        );
    }
}

fn print_message(m: &MessageExt) {
    let props: Vec<String> = m
        .properties
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let rows = [
        ("OffsetID", m.msg_id()),
        ("Topic", m.topic.clone()),
        ("Tags", m.tags().unwrap_or("").to_string()),
        ("Keys", m.keys().join(" ")),
        ("Queue ID", m.queue_id.to_string()),
        ("Queue Offset", m.queue_offset.to_string()),
        ("CommitLog Offset", m.commit_log_offset.to_string()),
        ("Reconsume Times", m.reconsume_times.to_string()),
        ("Born Timestamp", m.born_timestamp_ms.to_string()),
        ("Store Timestamp", m.store_timestamp_ms.to_string()),
        ("Born Host", m.born_host.to_string()),
        ("Store Host", m.store_host.to_string()),
        ("System Flag", m.sys_flag.to_string()),
        ("Properties", format!("{{{}}}", props.join(", "))),
        ("Body Size", m.body.len().to_string()),
        (
            "Message Body",
            String::from_utf8_lossy(&m.body).into_owned(),
        ),
    ];
    for (k, v) in rows {
        println!("{k:<20}: {v}");
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let namesrv = cli
        .namesrv
        .or_else(|| std::env::var("NAMESRV_ADDR").ok())
        .map(|s| ferromq_server::broker::split_namesrv_addr_arg(&s))
        .unwrap_or_default();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ferromq-admin: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let admin = Admin { namesrv };
    match rt.block_on(admin.run(cli.cmd)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferromq-admin: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::age;

    #[test]
    fn ages_read_well() {
        assert_eq!(age(-5), "0.0 s");
        assert_eq!(age(1234), "1.2 s");
        assert_eq!(age(95_000), "1m35s");
        assert_eq!(age(7_380_000), "2h03m");
    }
}
