//! Topic subcommands: `topicList`, `updateTopic` (`topicStatus` and
//! `consumerProgress` are in `ops_stats.rs`).

use ferromq_server::remoting::{request, RemotingCommand};
use serde_json::Value;

use crate::client::{body_json, call, ok, Admin, Res};
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
}
