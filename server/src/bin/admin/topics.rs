//! Topic subcommands: `topicList`, `updateTopic`, `topicStatus`,
//! `consumerProgress`.

use ferromq_server::remoting::{request, RemotingCommand};
use serde_json::Value;

use crate::client::{body_json, call, call_code, num, ok, Admin, Res};
use crate::print::table;
use crate::UpdateTopic;

impl Admin {
    /// `topicList`: every topic the name server knows, sorted, one a line.
    pub(crate) async fn topic_list(&self) -> Res<()> {
        let r = self
            .namesrv_code(request::GET_ALL_TOPIC_LIST_FROM_NAMESERVER, "topic list")
            .await?;
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
    pub(crate) async fn update_topic(&self, u: UpdateTopic) -> Res<()> {
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

    /// `topicStatus`: min and max offset of every queue of a topic.
    pub(crate) async fn topic_status(&self, topic: String) -> Res<()> {
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
    pub(crate) async fn consumer_progress(&self, group: String, topic: Option<String>) -> Res<()> {
        let suffix = format!("@{group}");
        let mut rows = Vec::new();
        let mut total = 0i64;
        for (_, name, id, addr) in self.brokers().await? {
            if id != 0 {
                continue;
            }
            let r = call_code(&addr, request::GET_ALL_CONSUMER_OFFSET, "consumer offsets").await?;
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
}
