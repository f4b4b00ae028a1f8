//! Name server subcommands: `updateKvConfig`, `deleteKvConfig`,
//! `wipeWritePerm`, `addWritePerm`, and `topicList -c`, with mqadmin's
//! names, flags and output lines.

use clap::Args;
use ferromq_server::remoting::{request, response, RemotingCommand};
use serde_json::Value;

use crate::client::{body_json, call, ok, Admin, Res};

/// `updateKvConfig`'s flags.
#[derive(Args, Debug)]
pub(crate) struct UpdateKvConfig {
    /// Namespace.
    #[arg(short = 's', long = "namespace")]
    namespace: String,
    /// Key name.
    #[arg(short = 'k', long = "key")]
    key: String,
    /// Value.
    #[arg(short = 'v', long = "value")]
    value: String,
}

/// `deleteKvConfig`'s flags.
#[derive(Args, Debug)]
pub(crate) struct DeleteKvConfig {
    /// Namespace.
    #[arg(short = 's', long = "namespace")]
    namespace: String,
    /// Key name.
    #[arg(short = 'k', long = "key")]
    key: String,
}

/// `wipeWritePerm`'s and `addWritePerm`'s flags.
#[derive(Args, Debug)]
pub(crate) struct WritePerm {
    /// Broker name.
    #[arg(short = 'b', long = "brokerName")]
    broker_name: String,
}

/// `topicList`'s flags.
#[derive(Args, Debug)]
pub(crate) struct TopicListArgs {
    /// Cluster model: each topic with its cluster and consumer groups.
    #[arg(short = 'c', long = "clusterModel")]
    cluster_model: bool,
}

/// mqadmin's `UtilAll.frontStringAtLeast`: at most the first `n` characters.
fn front(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

impl Admin {
    /// Send `req` to every name server of `-n` (as mqadmin's KV and perm
    /// requests go to each); each answer, or why there is none, in order.
    async fn each_namesrv(&self, req: RemotingCommand) -> Res<Vec<(String, Res<RemotingCommand>)>> {
        if self.namesrv.is_empty() {
            return Err("no name server address: use -n or NAMESRV_ADDR".into());
        }
        let mut out = Vec::new();
        for a in &self.namesrv {
            out.push((a.clone(), call(a, req.clone()).await));
        }
        Ok(out)
    }

    /// Send a KV change to every name server; the first refusal is the error.
    async fn kv_change(&self, req: RemotingCommand, what: &str) -> Res<()> {
        for (addr, r) in self.each_namesrv(req).await? {
            ok(r?, &format!("{what} at name server {addr}"))?;
        }
        Ok(())
    }

    /// `updateKvConfig -s NAMESPACE -k KEY -v VALUE`.
    pub(crate) async fn update_kv_config(&self, u: UpdateKvConfig) -> Res<()> {
        let req = RemotingCommand::request(request::PUT_KV_CONFIG)
            .with_ext("namespace", u.namespace.trim())
            .with_ext("key", u.key.trim())
            .with_ext("value", u.value.trim());
        self.kv_change(req, "update kv config").await?;
        println!("create or update kv config to namespace success.");
        Ok(())
    }

    /// `deleteKvConfig -s NAMESPACE -k KEY`.
    pub(crate) async fn delete_kv_config(&self, d: DeleteKvConfig) -> Res<()> {
        let req = RemotingCommand::request(request::DELETE_KV_CONFIG)
            .with_ext("namespace", d.namespace.trim())
            .with_ext("key", d.key.trim());
        self.kv_change(req, "delete kv config").await?;
        println!("delete kv config from namespace success.");
        Ok(())
    }

    /// `wipeWritePerm -b BROKER_NAME` (`wipe`) or `addWritePerm -b
    /// BROKER_NAME`: at every name server, one line as mqadmin prints it
    /// with the number of topics changed; an error if any name server failed.
    pub(crate) async fn write_perm(&self, w: WritePerm, wipe: bool) -> Res<()> {
        let name = w.broker_name.trim();
        let (code, verb, field) = if wipe {
            (request::WIPE_WRITE_PERM_OF_BROKER, "wipe", "wipeTopicCount")
        } else {
            (request::ADD_WRITE_PERM_OF_BROKER, "add", "addTopicCount")
        };
        let req = RemotingCommand::request(code).with_ext("brokerName", name);
        let mut failed = Vec::new();
        for (addr, r) in self.each_namesrv(req).await? {
            let count = r
                .and_then(|r| ok(r, "answer"))
                .and_then(|r| r.ext_fields.get_i64(field).map_err(|e| e.to_string()));
            match count {
                Ok(n) => {
                    println!("{verb} write perm of broker[{name}] in name server[{addr}] OK, {n}")
                }
                Err(e) => {
                    println!("{verb} write perm of broker[{name}] in name server[{addr}] Failed");
                    failed.push(format!("{addr}: {e}"));
                }
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(format!("{verb} write perm failed at {}", failed.join("; ")))
        }
    }

    /// `topicList`, or with `-c` mqadmin's cluster model: per topic (retry
    /// and DLQ topics left out) its cluster and each group consuming it.
    pub(crate) async fn topic_list_cmd(&self, a: TopicListArgs) -> Res<()> {
        if !a.cluster_model {
            return self.topic_list().await;
        }
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
            .map(str::to_string)
            .collect();
        topics.sort();
        let brokers = self.brokers().await?;
        println!(
            "{:<20}  {:<48}  {:<48}",
            "#Cluster Name", "#Topic", "#Consumer Group"
        );
        for topic in topics {
            let (cluster, groups) = self.topic_cluster_and_groups(&topic, &brokers).await;
            for g in groups {
                let line = format!(
                    "{:<20}  {:<64}  {:<64}",
                    front(&cluster, 20),
                    front(&topic, 64),
                    front(&g, 64)
                );
                println!("{}", line.trim_end());
            }
        }
        Ok(())
    }

    /// The cluster of the first broker of a topic's route and the groups its
    /// master says consume it; "" and [""] for what cannot be found out, as
    /// mqadmin prints them.
    async fn topic_cluster_and_groups(
        &self,
        topic: &str,
        brokers: &[crate::client::BrokerRow],
    ) -> (String, Vec<String>) {
        let Ok(route) = self.route(topic).await else {
            return (String::new(), vec![String::new()]);
        };
        let Some((name, addr, _)) = route.first() else {
            return (String::new(), vec![String::new()]);
        };
        let cluster = brokers
            .iter()
            .find(|b| &b.1 == name)
            .map(|b| b.0.clone())
            .unwrap_or_default();
        let req =
            RemotingCommand::request(request::QUERY_TOPIC_CONSUME_BY_WHO).with_ext("topic", topic);
        let mut groups: Vec<String> = match call(addr, req).await {
            Ok(r) if r.code == response::SUCCESS => body_json(&r, "groups")
                .ok()
                .and_then(|v| {
                    v["groupList"].as_array().map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect()
                    })
                })
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        groups.sort();
        if groups.is_empty() {
            groups.push(String::new());
        }
        (cluster, groups)
    }
}

#[cfg(test)]
mod tests {
    use super::front;

    #[test]
    fn front_cuts_as_mqadmin() {
        assert_eq!(front("abcdef", 3), "abc");
        assert_eq!(front("ab", 3), "ab");
    }
}
