//! Subcommands the broker answers by asking a consumer (mqadmin's names,
//! flags and layout): `consumerStatus` (GET_CONSUMER_RUNNING_INFO 307),
//! `getConsumerStatus` (INVOKE_BROKER_TO_GET_CONSUMER_STATUS 223) and
//! `queryMsgById -g G -d CLIENT` (CONSUME_MESSAGE_DIRECTLY 309).

use clap::Args;
use ferromq_server::remoting::json::parse_fastjson;
use ferromq_server::remoting::{request, response, RemotingCommand};
use serde_json::Value;

use crate::client::{body_json, call, call_within, num, Admin, Res};

/// How long a relayed request waits: the broker's own wait for the client
/// (10 s) and some.
const RELAYED_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// GET_CONSUMER_RUNNING_INFO.
const GET_CONSUMER_RUNNING_INFO: i32 = 307;
/// CONSUME_MESSAGE_DIRECTLY.
const CONSUME_MESSAGE_DIRECTLY: i32 = 309;
/// INVOKE_BROKER_TO_GET_CONSUMER_STATUS.
const INVOKE_BROKER_TO_GET_CONSUMER_STATUS: i32 = 223;

/// `consumerStatus` flags.
#[derive(Args, Debug)]
pub(crate) struct ConsumerStatus {
    /// Consumer group.
    #[arg(short = 'g', long = "consumerGroup")]
    group: String,
    /// One client: print its whole running info.
    #[arg(short = 'i', long = "clientId")]
    client_id: Option<String>,
    /// Ask only this broker (`ip:port`).
    #[arg(short = 'b', long = "brokerAddr")]
    broker: Option<String>,
    /// Ask the client for its thread dump (Java clients).
    #[arg(short = 's', long = "jstackEnable", default_value_t = false, action = clap::ArgAction::Set)]
    jstack: bool,
}

/// `getConsumerStatus` flags.
#[derive(Args, Debug)]
pub(crate) struct GetConsumerStatus {
    /// Consumer group.
    #[arg(short = 'g', long = "group")]
    group: String,
    /// Topic.
    #[arg(short = 't', long = "topic")]
    topic: String,
    /// Only this client id.
    #[arg(short = 'i', long = "originClientId")]
    client_id: Option<String>,
}

/// A client's answer as JSON. The C++ client writes an empty `mqTable` as
/// `"mqTable":}` (its encoder drops the brace it opened); that one slip is
/// mended before parsing, anything else malformed is an error.
pub(crate) fn client_json(body: &[u8], what: &str) -> Res<Value> {
    let text = std::str::from_utf8(body).map_err(|e| format!("{what}: {e}"))?;
    parse_fastjson(text)
        .or_else(|first| {
            let mended = text.replacen("\"mqTable\":}", "\"mqTable\":{}", 1);
            if mended == text {
                return Err(first);
            }
            parse_fastjson(&mended).map_err(|_| first)
        })
        .map_err(|e| format!("{what}: {e}"))
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn float(v: &Value) -> f64 {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or(0.0)
}

/// RocketMQ's `ConsumerRunningInfo.formatString`.
pub(crate) fn format_running_info(v: &Value) -> String {
    let mut s = String::from("#Consumer Properties#\n");
    for (k, p) in v["properties"].as_object().into_iter().flatten() {
        s.push_str(&format!("{k:<40}: {}\n", text(p)));
    }
    s.push_str("\n\n#Consumer Subscription#\n");
    for (i, sub) in v["subscriptionSet"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        s.push_str(&format!(
            "{:03} Topic: {:<40} ClassFilter: {:<8} SubExpression: {}\n",
            i + 1,
            text(&sub["topic"]),
            sub["classFilterMode"].as_bool().unwrap_or(false),
            text(&sub["subString"])
        ));
    }
    let mqs = crate::ops_stats::mq_entries(&v["mqTable"]);
    s.push_str("\n\n#Consumer Offset#\n");
    s.push_str(&format!(
        "{:<64}  {:<32}  {:<4}  {:<20}\n",
        "#Topic", "#Broker Name", "#QID", "#Consumer Offset"
    ));
    for (t, b, q, pq) in &mqs {
        s.push_str(&format!(
            "{t:<32}  {b:<32}  {q:<4}  {:<20}\n",
            num(&pq["commitOffset"])
        ));
    }
    s.push_str("\n\n#Consumer MQ Detail#\n");
    s.push_str(&format!(
        "{:<64}  {:<32}  {:<4}  {:<20}\n",
        "#Topic", "#Broker Name", "#QID", "#ProcessQueueInfo"
    ));
    for (t, b, q, pq) in &mqs {
        s.push_str(&format!("{t:<64}  {b:<32}  {q:<4}  {pq}\n"));
    }
    s.push_str("\n\n#Consumer RT&TPS#\n");
    s.push_str(&format!(
        "{:<64}  {:>14} {:>14} {:>14} {:>14} {:>18} {:>25}\n",
        "#Topic",
        "#Pull RT",
        "#Pull TPS",
        "#Consume RT",
        "#ConsumeOK TPS",
        "#ConsumeFailed TPS",
        "#ConsumeFailedMsgsInHour"
    ));
    for (t, st) in v["statusTable"].as_object().into_iter().flatten() {
        s.push_str(&format!(
            "{t:<32}  {:>14.2} {:>14.2} {:>14.2} {:>14.2} {:>18.2} {:>25}\n",
            float(&st["pullRT"]),
            float(&st["pullTPS"]),
            float(&st["consumeRT"]),
            float(&st["consumeOKTPS"]),
            float(&st["consumeFailedTPS"]),
            num(&st["consumeFailedMsgs"])
        ));
    }
    if let Some(j) = v["jstack"].as_str().filter(|j| !j.is_empty()) {
        s.push_str("\n\n#Consumer jstack#\n");
        s.push_str(j);
    }
    s
}

impl Admin {
    /// The broker to ask about a consumer group: `-b`, else the first
    /// master that has the group online (GET_CONSUMER_CONNECTION_LIST).
    /// Returns the address and the group's `ConsumerConnection`.
    async fn group_broker(&self, group: &str, broker: Option<String>) -> Res<(String, Value)> {
        let addrs = match broker {
            Some(b) => vec![b],
            None => self.masters().await?,
        };
        let mut last = format!("no broker has consumer group {group} online");
        for addr in addrs {
            let req = RemotingCommand::request(request::GET_CONSUMER_CONNECTION_LIST)
                .with_ext("consumerGroup", group);
            let r = call(&addr, req).await?;
            if r.code == response::SUCCESS {
                return Ok((addr, body_json(&r, "consumer connection")?));
            }
            last = format!(
                "CODE: {} DESC: {}",
                r.code,
                r.remark.as_deref().unwrap_or("")
            );
        }
        Err(last)
    }

    /// GET_CONSUMER_RUNNING_INFO of one client, through `addr`.
    async fn running_info(addr: &str, group: &str, client_id: &str, jstack: bool) -> Res<Value> {
        let req = RemotingCommand::request(GET_CONSUMER_RUNNING_INFO)
            .with_ext("consumerGroup", group)
            .with_ext("clientId", client_id)
            .with_ext("jstackEnable", jstack);
        let r = call_within(addr, req, RELAYED_TIMEOUT).await?;
        if r.code != response::SUCCESS {
            return Err(format!(
                "CODE: {} DESC: {}",
                r.code,
                r.remark.as_deref().unwrap_or("")
            ));
        }
        client_json(&r.body, "consumer running info")
    }

    /// `consumerStatus -g G [-i CLIENT] [-b ADDR] [-s]`: with `-i`, the
    /// client's running info in RocketMQ's layout; without, one line per
    /// client of the group (mqadmin's numbering) and whether their
    /// subscriptions agree.
    pub(crate) async fn consumer_status(&self, a: ConsumerStatus) -> Res<()> {
        let (addr, conn) = self.group_broker(&a.group, a.broker).await?;
        if let Some(id) = a.client_id {
            let info = Self::running_info(&addr, &a.group, &id, a.jstack).await?;
            print!("{}", format_running_info(&info));
            return Ok(());
        }
        let mut subs = Vec::new();
        let mut failed = 0;
        for (i, c) in conn["connectionSet"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let id = c["clientId"].as_str().unwrap_or("");
            let version = crate::ops_stats::version_desc(num(&c["version"]));
            match Self::running_info(&addr, &a.group, id, a.jstack).await {
                Ok(info) => {
                    println!("{:03}  {id:<40} {version:<20} ok", i + 1);
                    let mut s: Vec<String> = info["subscriptionSet"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|x| format!("{}:{}", text(&x["topic"]), text(&x["subString"])))
                        .collect();
                    s.sort();
                    subs.push(s);
                }
                Err(e) => {
                    failed += 1;
                    println!("{:03}  {id:<40} {version:<20} {e}", i + 1);
                }
            }
        }
        println!();
        if subs.windows(2).all(|w| w[0] == w[1]) {
            println!("Same subscription in the same group of consumer");
        } else {
            println!("WARN: Different subscription in the same group of consumer!!!");
        }
        if failed > 0 {
            return Err(format!("{failed} client(s) did not answer"));
        }
        Ok(())
    }

    /// `getConsumerStatus -g G -t T [-i CLIENT]`: each client's offset per
    /// queue as the client holds it (INVOKE_BROKER_TO_GET_CONSUMER_STATUS),
    /// from every master of the topic.
    pub(crate) async fn get_consumer_status(&self, a: GetConsumerStatus) -> Res<()> {
        let mut rows = Vec::new();
        let mut last = None;
        let mut seen = std::collections::BTreeSet::new();
        for (_, addr, _) in self.route(&a.topic).await? {
            if !seen.insert(addr.clone()) {
                continue;
            }
            let mut req = RemotingCommand::request(INVOKE_BROKER_TO_GET_CONSUMER_STATUS)
                .with_ext("topic", &a.topic)
                .with_ext("group", &a.group);
            if let Some(id) = &a.client_id {
                req = req.with_ext("clientAddr", id);
            }
            let r = call_within(&addr, req, RELAYED_TIMEOUT).await?;
            if r.code != response::SUCCESS {
                last = Some(format!(
                    "CODE: {} DESC: {}",
                    r.code,
                    r.remark.as_deref().unwrap_or("")
                ));
                continue;
            }
            let v = client_json(&r.body, "consumer status")?;
            for (client, table) in v["consumerTable"].as_object().into_iter().flatten() {
                for (t, b, q, off) in crate::ops_stats::mq_entries(table) {
                    rows.push((client.clone(), t, b, q, num(&off)));
                }
            }
        }
        if rows.is_empty() {
            if let Some(e) = last {
                return Err(e);
            }
        }
        rows.sort();
        println!(
            "{:<40}  {:<32}  {:<32}  {:<4}  {:<20}",
            "#clientId", "#topic", "#brokerName", "#queueId", "#offset"
        );
        for (client, t, b, q, off) in rows {
            println!("{client:<40}  {t:<32}  {b:<32}  {q:<4}  {off:<20}");
        }
        Ok(())
    }

    /// `queryMsgById -i ID -g G -d CLIENT`: the broker that stored the
    /// message (the offset msgId's address) sends it to the client to
    /// consume at once (CONSUME_MESSAGE_DIRECTLY); the client's
    /// `ConsumeMessageDirectlyResult` is printed.
    pub(crate) async fn consume_message_directly(
        &self,
        msg_id: &str,
        topic: Option<&str>,
        group: &str,
        client_id: &str,
    ) -> Res<()> {
        let (addr, _) = ferromq_engine::message::decode_offset_msg_id(msg_id)
            .map_err(|e| format!("{msg_id} is not an offset msgId ({e})"))?;
        let mut req = RemotingCommand::request(CONSUME_MESSAGE_DIRECTLY)
            .with_ext("consumerGroup", group)
            .with_ext("clientId", client_id)
            .with_ext("msgId", msg_id);
        if let Some(t) = topic {
            req = req.with_ext("topic", t);
        }
        let r = call_within(&addr.to_string(), req, RELAYED_TIMEOUT).await?;
        if r.code != response::SUCCESS {
            return Err(format!(
                "CODE: {} DESC: {}",
                r.code,
                r.remark.as_deref().unwrap_or("")
            ));
        }
        let v = client_json(&r.body, "consume message directly result")?;
        // rocketmq-client-rust 1.0 writes this body's fields in snake_case
        // (`consume_result`: its struct lacks serde's camelCase renaming);
        // Java and C++ clients write camelCase. Either is read.
        let field = |camel: &str, snake: &str| match &v[camel] {
            Value::Null => v[snake].clone(),
            x => x.clone(),
        };
        println!(
            "ConsumeMessageDirectlyResult [order={}, autoCommit={}, consumeResult={}, remark={}, spentTimeMills={}]",
            v["order"].as_bool().unwrap_or(false),
            field("autoCommit", "auto_commit").as_bool().unwrap_or(false),
            text(&field("consumeResult", "consume_result")),
            text(&v["remark"]),
            num(&field("spentTimeMills", "spent_time_mills"))
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpp_clients_empty_mq_table_is_mended() {
        let cpp = br#"{"mqTable":},"jstack":"","properties":{"consumeType":"CONSUME_PASSIVELY"}}"#;
        let v = client_json(cpp, "t").unwrap();
        assert_eq!(v["properties"]["consumeType"], "CONSUME_PASSIVELY");
        assert!(v["mqTable"].as_object().unwrap().is_empty());
        assert!(client_json(b"{\"x\":}", "t").is_err());
    }

    #[test]
    fn running_info_prints_offsets_per_queue() {
        let body = br#"{"mqTable":{{"brokerName":"b","queueId":1,"topic":"T"}:{"commitOffset":7}},"properties":{"k":"v"},"subscriptionSet":[{"topic":"T","subString":"*"}],"statusTable":{"T":{"pullRT":1.5,"consumeFailedMsgs":2}}}"#;
        let out = format_running_info(&client_json(body, "t").unwrap());
        assert!(out.contains(&format!("{:<40}: v", "k")), "{out}");
        assert!(out.contains("001 Topic: T"), "{out}");
        assert!(
            out.contains(&format!("{:<32}  {:<32}  {:<4}  {:<20}", "T", "b", 1, 7)),
            "{out}"
        );
        assert!(out.contains("1.50"), "{out}");
    }
}
