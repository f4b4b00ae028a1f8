//! How `ferromq-admin` talks to name servers and brokers: one request per
//! connection, answers checked and parsed, and the look-ups the subcommands share.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use ferromq_engine::message::decode_records;
use ferromq_engine::MessageExt;
use ferromq_server::acl::Credentials;
use ferromq_server::remoting::tls::TlsClient;
use ferromq_server::remoting::{json, request, response, RemotingClient, RemotingCommand};
use serde_json::Value;

use crate::Target;

/// How long one request may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// A result whose error is the line printed after `ferromq-admin: `.
pub(crate) type Res<T> = Result<T, String>;

/// The name servers to ask; the subcommands are its methods.
pub(crate) struct Admin {
    pub(crate) namesrv: Vec<String>,
}

/// The credentials every request is signed with (`--accessKey`, or
/// `conf/tools.yml`); set once in `main`.
static CREDENTIALS: OnceLock<Option<Credentials>> = OnceLock::new();

/// TLS for every connection (`--tls`); set once in `main`.
static TLS: OnceLock<Option<TlsClient>> = OnceLock::new();

/// Connect with TLS from now on (`None`: plain).
pub(crate) fn set_tls(t: Option<TlsClient>) {
    let _ = TLS.set(t);
}

/// Sign every request from now on with `c` (`None`: unsigned).
pub(crate) fn set_credentials(c: Option<Credentials>) {
    let _ = CREDENTIALS.set(c);
}

/// One request to `addr` on its own connection, closed after the answer;
/// signed when credentials were given.
pub(crate) async fn call(addr: &str, req: RemotingCommand) -> Res<RemotingCommand> {
    call_within(addr, req, TIMEOUT).await
}

/// [`call`] waiting up to `timeout` for the answer (requests the broker
/// relays to a client wait for the client, up to 10 s there).
pub(crate) async fn call_within(
    addr: &str,
    mut req: RemotingCommand,
    timeout: std::time::Duration,
) -> Res<RemotingCommand> {
    if let Some(c) = CREDENTIALS.get().and_then(Option::as_ref) {
        c.sign(&mut req);
    }
    let c = RemotingClient::with_tls(addr, TLS.get().cloned().flatten());
    let r = c.invoke(req, timeout).await.map_err(|e| e.to_string());
    c.close().await;
    r
}

/// Send `addr` a request that is only its `code`; an answer other than
/// SUCCESS is an error naming `what`.
pub(crate) async fn call_code(addr: &str, code: i32, what: &str) -> Res<RemotingCommand> {
    ok(call(addr, RemotingCommand::request(code)).await?, what)
}

/// The answer `r` if it is SUCCESS, else an error naming `what`.
pub(crate) fn ok(r: RemotingCommand, what: &str) -> Res<RemotingCommand> {
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

/// The body of `r` as (lenient) JSON; errors name `what`.
pub(crate) fn body_json(r: &RemotingCommand, what: &str) -> Res<Value> {
    let text = std::str::from_utf8(&r.body).map_err(|e| format!("{what}: {e}"))?;
    json::parse_lenient(text).map_err(|e| format!("{what}: {e}"))
}

/// A JSON number, or a string holding one, as i64 (0 otherwise).
pub(crate) fn num(v: &Value) -> i64 {
    match v {
        Value::Number(n) => n.as_i64().unwrap_or(0),
        Value::String(s) => s.trim().parse().unwrap_or(0),
        _ => 0,
    }
}

/// (cluster, broker name, broker id, address) of every registered broker.
pub(crate) type BrokerRow = (String, String, i64, String);

impl Admin {
    /// Ask each name server in turn until one answers.
    pub(crate) async fn namesrv_call(&self, req: RemotingCommand) -> Res<RemotingCommand> {
        let mut last = "no name server address: use -n or NAMESRV_ADDR".to_string();
        for a in &self.namesrv {
            match call(a, req.clone()).await {
                Ok(r) => return Ok(r),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// [`Admin::namesrv_call`] with a request that is only its `code`; an
    /// answer other than SUCCESS is an error naming `what`.
    pub(crate) async fn namesrv_code(&self, code: i32, what: &str) -> Res<RemotingCommand> {
        ok(
            self.namesrv_call(RemotingCommand::request(code)).await?,
            what,
        )
    }

    /// Every broker registered with the name server, sorted.
    pub(crate) async fn brokers(&self) -> Res<Vec<BrokerRow>> {
        let r = self
            .namesrv_code(request::GET_BROKER_CLUSTER_INFO, "cluster info")
            .await?;
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
    pub(crate) async fn targets(&self, t: &Target) -> Res<Vec<String>> {
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

    /// Send each target broker in turn a request that is only its `code` (an
    /// answer other than SUCCESS is an error naming `what` and the broker),
    /// and hand the answer to `show` before the next broker is asked.
    pub(crate) async fn each_target(
        &self,
        t: &Target,
        code: i32,
        what: &str,
        mut show: impl FnMut(&str, RemotingCommand) -> Res<()>,
    ) -> Res<()> {
        for addr in self.targets(t).await? {
            let r = call_code(&addr, code, &format!("{what} {addr}")).await?;
            show(&addr, r)?;
        }
        Ok(())
    }

    /// `topicRoute -t T`: the route as the name server answers it, pretty
    /// printed (mqadmin's `TopicRouteData.toJson(true)`).
    pub(crate) async fn topic_route(&self, topic: &str) -> Res<()> {
        let req = RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC)
            .with_ext("topic", topic)
            .with_ext("acceptStandardJsonOnly", true);
        let r = self.namesrv_call(req).await?;
        if r.code == response::TOPIC_NOT_EXIST {
            return Err(format!("topic {topic} does not exist"));
        }
        let v = body_json(&ok(r, "route")?, "route")?;
        println!(
            "{}",
            serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?
        );
        Ok(())
    }

    /// (broker name, master address, read queues) of a topic's route.
    pub(crate) async fn route(&self, topic: &str) -> Res<Vec<(String, String, i64)>> {
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

    /// The runtime figures (`GET_BROKER_RUNTIME_INFO` table) of `addr`.
    pub(crate) async fn runtime_info(addr: &str) -> Res<BTreeMap<String, String>> {
        let r = call_code(addr, request::GET_BROKER_RUNTIME_INFO, "runtime info").await?;
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

    /// Up to 64 messages of `topic` on `addr` with `key` (a unique key when
    /// `unique`); none when the broker finds none.
    pub(crate) async fn query(
        addr: &str,
        topic: &str,
        key: &str,
        unique: bool,
    ) -> Res<Vec<MessageExt>> {
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
