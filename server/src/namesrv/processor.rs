//! Request handling of the name server (RocketMQ `DefaultRequestProcessor`).

use std::future::Future;
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::Value;

use super::kvconfig::{KvConfigManager, NAMESPACE_ORDER_TOPIC_CONFIG};
use super::route::{Registration, RouteInfoManager, TopicEntry};
use crate::remoting::json::parse_lenient;
use crate::remoting::{request, response, ConnInfo, Handler, HeaderError, RemotingCommand};
use crate::util::crc32_masked;
use crate::warn_limit::BAD_INPUT;

/// Client version from which routes are sent as standard JSON (`V4_9_4`).
const STANDARD_JSON_VERSION: i32 = 401;
/// Largest inflated register body accepted.
const MAX_INFLATED_BYTES: u64 = 64 * 1024 * 1024;

/// The name server's request handler.
#[derive(Debug, Default)]
pub struct NameServer {
    routes: RouteInfoManager,
    /// Size of the last topic list answered: what the next one is expected to
    /// cost ([`Handler::expected_reply_bytes`]).
    topic_list_bytes: AtomicUsize,
    /// Size of the last cluster info answered, likewise.
    cluster_info_bytes: AtomicUsize,
    /// With `aclEnable=true`: registrations need an admin account.
    acl: Option<Arc<crate::acl::AclLive>>,
    /// The KV config (PUT/GET/DELETE_KV_CONFIG, GET_KVLIST_BY_NAMESPACE).
    kv: KvConfigManager,
    /// `orderMessageEnable`: routes carry `orderTopicConf` from the
    /// ORDER_TOPIC_CONFIG namespace.
    order_message_enable: bool,
}

/// The requests that change the name server's tables for everyone: with the
/// ACL on, they need an admin account, as registrations do.
pub const ADMIN_REQUESTS: &[i32] = &[
    request::REGISTER_BROKER,
    request::UNREGISTER_BROKER,
    request::PUT_KV_CONFIG,
    request::DELETE_KV_CONFIG,
    request::WIPE_WRITE_PERM_OF_BROKER,
    request::ADD_WRITE_PERM_OF_BROKER,
    request::DELETE_TOPIC_IN_NAMESRV,
];

/// Least expected cost of a topic list or cluster info not yet answered.
const MIN_LIST_REPLY_BYTES: usize = 4096;

impl NameServer {
    /// Empty tables.
    pub fn new() -> Self {
        Self::default()
    }

    /// Check the requests of [`ADMIN_REQUESTS`] (registrations, KV config
    /// changes, write perm changes, topic deletion) against `acl`
    /// ([`crate::acl::AclRules::check_cluster_member`]); `None`: take them
    /// from anyone, as RocketMQ.
    #[must_use]
    pub fn with_acl(mut self, acl: Option<Arc<crate::acl::AclLive>>) -> Self {
        self.acl = acl;
        self
    }

    /// Keep the KV config in `kv` (default: in memory only).
    #[must_use]
    pub fn with_kv_config(mut self, kv: KvConfigManager) -> Self {
        self.kv = kv;
        self
    }

    /// `orderMessageEnable`: put `orderTopicConf` (the topic's value in the
    /// ORDER_TOPIC_CONFIG namespace) into routes, as RocketMQ does with it on.
    #[must_use]
    pub fn with_order_message_enable(mut self, on: bool) -> Self {
        self.order_message_enable = on;
        self
    }

    /// The KV config.
    pub fn kv_config(&self) -> &KvConfigManager {
        &self.kv
    }

    /// The route tables.
    pub fn routes(&self) -> &RouteInfoManager {
        &self.routes
    }

    /// Answer one request.
    pub fn process(&self, conn: &ConnInfo, req: &RemotingCommand) -> RemotingCommand {
        if let (Some(rules), true) = (&self.acl, ADMIN_REQUESTS.contains(&req.code)) {
            let refusal = rules.with_rules(|rules| {
                let check = |r: &crate::acl::AccessRequest<'_>| rules.check_cluster_member(r);
                crate::acl::refusal::refusal_with(req, conn.peer, check)
            });
            if let Some(refusal) = refusal {
                return refusal;
            }
        }
        let r = match req.code {
            request::REGISTER_BROKER => self.register_broker(conn, req),
            request::UNREGISTER_BROKER => self.unregister_broker(req),
            request::GET_ROUTEINFO_BY_TOPIC => self.route_by_topic(req),
            request::GET_BROKER_CLUSTER_INFO => {
                let body = self.routes.cluster_info_json(false);
                self.cluster_info_bytes.store(body.len(), Ordering::Relaxed);
                Ok(RemotingCommand::success().with_body(body.into_bytes()))
            }
            request::GET_ALL_TOPIC_LIST_FROM_NAMESERVER => {
                let list: Vec<String> = self.routes.topic_list();
                let body = serde_json::json!({ "topicList": list }).to_string();
                self.topic_list_bytes.store(body.len(), Ordering::Relaxed);
                Ok(RemotingCommand::success().with_body(body.into_bytes()))
            }
            request::PUT_KV_CONFIG => self.put_kv_config(conn, req),
            request::GET_KV_CONFIG => self.get_kv_config(req),
            request::DELETE_KV_CONFIG => self.delete_kv_config(conn, req),
            request::GET_KVLIST_BY_NAMESPACE => self.kv_list(req),
            request::WIPE_WRITE_PERM_OF_BROKER => self.write_perm(conn, req, true),
            request::ADD_WRITE_PERM_OF_BROKER => self.write_perm(conn, req, false),
            request::DELETE_TOPIC_IN_NAMESRV => self.delete_topic(conn, req),
            request::GET_TOPICS_BY_CLUSTER => req.ext_fields.get_str("cluster").map(|cluster| {
                let topics = self.routes.topics_by_cluster(cluster);
                let body = serde_json::json!({ "topicList": topics }).to_string();
                RemotingCommand::success().with_body(body.into_bytes())
            }),
            request::GET_SYSTEM_TOPIC_LIST_FROM_NS => {
                let (topics, addr) = self.routes.system_topic_list();
                let mut v = serde_json::json!({ "topicList": topics });
                if let Some(a) = addr {
                    v["brokerAddr"] = Value::String(a);
                }
                Ok(RemotingCommand::success().with_body(v.to_string().into_bytes()))
            }
            code => Ok(RemotingCommand::error(
                response::REQUEST_CODE_NOT_SUPPORTED,
                format!(" request type {code} not supported"),
            )),
        };
        r.unwrap_or_else(RemotingCommand::from)
    }

    fn register_broker(
        &self,
        conn: &ConnInfo,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, HeaderError> {
        let h = &req.ext_fields;
        let broker_name = h.get_str("brokerName")?.to_string();
        let broker_addr = h.get_str("brokerAddr")?.to_string();
        let cluster = h.get_str("clusterName")?.to_string();
        let ha_server_addr = h.opt_str("haServerAddr").unwrap_or("").to_string();
        let broker_id = h.get_i64("brokerId")?;
        let compressed = h.opt_bool("compressed")?.unwrap_or(false);
        let crc = h.opt_i64("bodyCrc32")?.unwrap_or(0);
        if crc != 0 && crc != i64::from(crc32_masked(&req.body)) {
            if let Some(suppressed) = BAD_INPUT.check(conn.peer.ip()) {
                tracing::warn!(peer = %conn.peer, suppressed, "register body crc32 does not match");
            }
            return Ok(RemotingCommand::error(
                response::SYSTEM_ERROR,
                "crc32 not match",
            ));
        }
        let (data_version, topics) = if req.body.is_empty() {
            (Value::Null, None)
        } else {
            match parse_register_body(&req.body, compressed) {
                Ok((dv, t)) => (dv, Some(t)),
                Err(e) => {
                    if let Some(suppressed) = BAD_INPUT.check(conn.peer.ip()) {
                        tracing::warn!(peer = %conn.peer, error = %e, suppressed, "bad register body");
                    }
                    return Ok(RemotingCommand::error(
                        response::SYSTEM_ERROR,
                        format!("bad RegisterBrokerBody: {e}"),
                    ));
                }
            }
        };
        let res = self.routes.register(Registration {
            cluster,
            broker_addr,
            broker_name,
            broker_id,
            ha_server_addr,
            data_version,
            topics,
            enable_acting_master: h.opt_bool("enableActingMaster")?.unwrap_or(false),
            zone_name: h.opt_str("zoneName").map(str::to_string),
            conn_id: conn.id,
        });
        // As RocketMQ: the answer carries the ORDER_TOPIC_CONFIG namespace.
        let body = self
            .kv
            .list_json(NAMESPACE_ORDER_TOPIC_CONFIG)
            .unwrap_or_else(|| "{\"table\":{}}".to_string());
        let mut resp = RemotingCommand::success().with_body(body.into_bytes());
        if let Some(a) = res.ha_server_addr {
            resp.ext_fields.insert("haServerAddr", a);
        }
        if let Some(a) = res.master_addr {
            resp.ext_fields.insert("masterAddr", a);
        }
        Ok(resp)
    }

    fn unregister_broker(&self, req: &RemotingCommand) -> Result<RemotingCommand, HeaderError> {
        let h = &req.ext_fields;
        self.routes.unregister(
            h.get_str("clusterName")?,
            h.get_str("brokerAddr")?,
            h.get_str("brokerName")?,
            h.get_i64("brokerId")?,
        );
        Ok(RemotingCommand::success())
    }

    fn route_by_topic(&self, req: &RemotingCommand) -> Result<RemotingCommand, HeaderError> {
        let topic = req.ext_fields.get_str("topic")?;
        let standard = req.version >= STANDARD_JSON_VERSION
            || req
                .ext_fields
                .opt_bool("acceptStandardJsonOnly")?
                .unwrap_or(false);
        let order = if self.order_message_enable {
            self.kv.get(NAMESPACE_ORDER_TOPIC_CONFIG, topic)
        } else {
            None
        };
        Ok(
            match self
                .routes
                .route_json_with(topic, standard, order.as_deref())
            {
                Some(body) => RemotingCommand::success().with_body(body.into_bytes()),
                None => RemotingCommand::error(
                    response::TOPIC_NOT_EXIST,
                    format!("No topic route info in name server for the topic: {topic}"),
                ),
            },
        )
    }
}

/// A required header field that must not be blank either: what RocketMQ's
/// `@CFNotNull` checks, with the field named in the remark.
fn required<'a>(req: &'a RemotingCommand, key: &str) -> Result<&'a str, HeaderError> {
    let v = req.ext_fields.get_str(key)?;
    if v.trim().is_empty() {
        return Err(HeaderError::Missing(key.to_string()));
    }
    Ok(v)
}

impl NameServer {
    fn put_kv_config(
        &self,
        conn: &ConnInfo,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, HeaderError> {
        let namespace = required(req, "namespace")?;
        let key = required(req, "key")?;
        let value = req.ext_fields.get_str("value")?;
        tracing::info!(peer = %conn.peer, namespace, key, "PUT_KV_CONFIG");
        Ok(match self.kv.put(namespace, key, value) {
            Ok(()) => RemotingCommand::success(),
            Err(e) => kv_write_failed(&self.kv, &e),
        })
    }

    fn get_kv_config(&self, req: &RemotingCommand) -> Result<RemotingCommand, HeaderError> {
        let namespace = req.ext_fields.get_str("namespace")?;
        let key = req.ext_fields.get_str("key")?;
        Ok(match self.kv.get(namespace, key) {
            Some(v) => {
                let mut r = RemotingCommand::success();
                r.ext_fields.insert("value", v);
                r
            }
            None => RemotingCommand::error(
                response::QUERY_NOT_FOUND,
                format!("No config item, Namespace: {namespace} Key: {key}"),
            ),
        })
    }

    fn delete_kv_config(
        &self,
        conn: &ConnInfo,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, HeaderError> {
        let namespace = req.ext_fields.get_str("namespace")?;
        let key = req.ext_fields.get_str("key")?;
        tracing::info!(peer = %conn.peer, namespace, key, "DELETE_KV_CONFIG");
        // As RocketMQ: deleting what is not there succeeds.
        Ok(match self.kv.delete(namespace, key) {
            Ok(()) => RemotingCommand::success(),
            Err(e) => kv_write_failed(&self.kv, &e),
        })
    }

    fn kv_list(&self, req: &RemotingCommand) -> Result<RemotingCommand, HeaderError> {
        let namespace = req.ext_fields.get_str("namespace")?;
        Ok(match self.kv.list_json(namespace) {
            Some(body) => RemotingCommand::success().with_body(body.into_bytes()),
            None => RemotingCommand::error(
                response::QUERY_NOT_FOUND,
                format!("No config item, Namespace: {namespace}"),
            ),
        })
    }

    fn write_perm(
        &self,
        conn: &ConnInfo,
        req: &RemotingCommand,
        wipe: bool,
    ) -> Result<RemotingCommand, HeaderError> {
        let broker_name = required(req, "brokerName")?;
        let n = self.routes.operate_write_perm(broker_name, wipe);
        let (what, field) = if wipe {
            ("wipe", "wipeTopicCount")
        } else {
            ("add", "addTopicCount")
        };
        tracing::info!(peer = %conn.peer, broker = broker_name, topics = n, "{what} write perm of broker");
        let mut r = RemotingCommand::success();
        r.ext_fields.insert(field, n.to_string());
        Ok(r)
    }

    fn delete_topic(
        &self,
        conn: &ConnInfo,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, HeaderError> {
        let topic = required(req, "topic")?;
        let cluster = req
            .ext_fields
            .opt_str("clusterName")
            .filter(|c| !c.is_empty());
        let removed = self.routes.delete_topic(topic, cluster);
        tracing::info!(peer = %conn.peer, topic, cluster, removed, "DELETE_TOPIC_IN_NAMESRV");
        // As RocketMQ: deleting a topic the name server does not know succeeds.
        Ok(RemotingCommand::success())
    }
}

/// The answer to a KV change whose file could not be written (the change is
/// not made).
fn kv_write_failed(kv: &KvConfigManager, e: &std::io::Error) -> RemotingCommand {
    let path = kv
        .path()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    tracing::error!(path = %path, error = %e, "cannot write the KV config file");
    RemotingCommand::error(
        response::SYSTEM_ERROR,
        format!("cannot write the KV config file {path}: {e}; nothing changed"),
    )
}

impl Handler for NameServer {
    fn handle(
        self: Arc<Self>,
        conn: Arc<ConnInfo>,
        req: RemotingCommand,
    ) -> impl Future<Output = Option<RemotingCommand>> + Send + 'static {
        // KV config changes write (and sync) a file: off the I/O threads.
        // Everything else is in-memory and quick: answered inline.
        let kv_write = matches!(req.code, request::PUT_KV_CONFIG | request::DELETE_KV_CONFIG);
        let inline = (!kv_write).then(|| self.process(&conn, &req));
        async move {
            match inline {
                Some(resp) => Some(resp),
                None => tokio::task::spawn_blocking(move || self.process(&conn, &req))
                    .await
                    .ok(),
            }
        }
    }

    /// Topic lists and cluster infos are as large as the cluster (MBs for tens
    /// of thousands of topics) and built after they are read: each counts as
    /// large as the last one answered, so a client pipelining them is paused by
    /// `serverMaxQueuedReplyBytes` after a few instead of after
    /// `serverMaxRequestsPerConnection` of them are built at once.
    fn expected_reply_bytes(&self, req: &RemotingCommand) -> usize {
        let last = match req.code {
            // A cluster's topics are as many as all of them, near enough.
            request::GET_ALL_TOPIC_LIST_FROM_NAMESERVER | request::GET_TOPICS_BY_CLUSTER => {
                &self.topic_list_bytes
            }
            request::GET_BROKER_CLUSTER_INFO => &self.cluster_info_bytes,
            _ => return 0,
        };
        last.load(Ordering::Relaxed).max(MIN_LIST_REPLY_BYTES)
    }

    fn on_close(&self, conn: &ConnInfo) {
        let n = self.routes.on_connection_closed(conn.id);
        if n > 0 {
            tracing::info!(peer = %conn.peer, removed = n, "brokers removed: connection closed");
        }
    }
}

fn u32_of(v: &Value, key: &str, default: u32) -> u32 {
    match &v[key] {
        Value::Number(n) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(default),
        Value::String(s) => s.trim().parse().unwrap_or(default),
        _ => default,
    }
}

/// Decode a `RegisterBrokerBody`: its data version and topic configs.
///
/// # Errors
/// A sentence saying what is wrong.
pub fn parse_register_body(
    body: &[u8],
    compressed: bool,
) -> Result<(Value, Vec<TopicEntry>), String> {
    if compressed {
        return parse_compressed_body(body);
    }
    let text = std::str::from_utf8(body).map_err(|e| format!("not UTF-8: {e}"))?;
    let v = parse_lenient(text).map_err(|e| format!("not JSON: {e}"))?;
    let wrapper = &v["topicConfigSerializeWrapper"];
    let data_version = wrapper["dataVersion"].clone();
    let mut topics = Vec::new();
    if let Value::Object(table) = &wrapper["topicConfigTable"] {
        for (name, tc) in table {
            topics.push(TopicEntry {
                topic_name: tc["topicName"].as_str().unwrap_or(name).to_string(),
                read_queue_nums: u32_of(tc, "readQueueNums", 0),
                write_queue_nums: u32_of(tc, "writeQueueNums", 0),
                perm: u32_of(tc, "perm", 6),
                topic_sys_flag: u32_of(tc, "topicSysFlag", 0),
            });
        }
    }
    Ok((data_version, topics))
}

fn parse_compressed_body(body: &[u8]) -> Result<(Value, Vec<TopicEntry>), String> {
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(body)
        .take(MAX_INFLATED_BYTES)
        .read_to_end(&mut raw)
        .map_err(|e| format!("cannot inflate: {e}"))?;
    let mut pos = 0usize;
    let next_i32 = |raw: &[u8], pos: &mut usize| -> Result<i32, String> {
        let b = raw
            .get(*pos..*pos + 4)
            .ok_or_else(|| "compressed body ends early".to_string())?;
        *pos += 4;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let take = |raw: &[u8], pos: &mut usize, n: i32| -> Result<String, String> {
        let n = usize::try_from(n).map_err(|_| "negative length".to_string())?;
        let b = raw
            .get(*pos..*pos + n)
            .ok_or_else(|| "compressed body ends early".to_string())?;
        *pos += n;
        Ok(String::from_utf8_lossy(b).into_owned())
    };
    let n = next_i32(&raw, &mut pos)?;
    let dv_text = take(&raw, &mut pos, n)?;
    let data_version = parse_lenient(&dv_text).map_err(|e| format!("dataVersion: {e}"))?;
    let count = next_i32(&raw, &mut pos)?;
    let mut topics = Vec::new();
    for _ in 0..count.max(0) {
        let n = next_i32(&raw, &mut pos)?;
        let s = take(&raw, &mut pos, n)?;
        let f: Vec<&str> = s.split(' ').collect();
        if f.len() < 4 {
            return Err(format!("bad topic config `{s}`"));
        }
        let num = |i: usize| f.get(i).and_then(|x| x.parse::<u32>().ok());
        topics.push(TopicEntry {
            topic_name: f[0].to_string(),
            read_queue_nums: num(1).ok_or_else(|| format!("bad topic config `{s}`"))?,
            write_queue_nums: num(2).ok_or_else(|| format!("bad topic config `{s}`"))?,
            perm: num(3).ok_or_else(|| format!("bad topic config `{s}`"))?,
            topic_sys_flag: 0,
        });
    }
    Ok((data_version, topics))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn conn() -> ConnInfo {
        ConnInfo::detached(1, "127.0.0.1:1".parse().unwrap())
    }

    fn kv_req(code: i32, fields: &[(&str, &str)]) -> RemotingCommand {
        let mut r = RemotingCommand::request(code);
        for (k, v) in fields {
            r = r.with_ext(k, v);
        }
        r
    }

    #[test]
    fn kv_requests_and_order_topic_conf() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kvConfig.json");
        let ns = NameServer::new()
            .with_kv_config(KvConfigManager::load(&path).unwrap())
            .with_order_message_enable(true);
        let c = conn();
        let r = ns.process(
            &c,
            &kv_req(request::GET_KV_CONFIG, &[("namespace", "n"), ("key", "k")]),
        );
        assert_eq!(r.code, response::QUERY_NOT_FOUND);
        assert_eq!(
            r.remark.as_deref(),
            Some("No config item, Namespace: n Key: k")
        );
        let r = ns.process(
            &c,
            &kv_req(request::GET_KVLIST_BY_NAMESPACE, &[("namespace", "n")]),
        );
        assert_eq!(r.code, response::QUERY_NOT_FOUND);
        let r = ns.process(
            &c,
            &kv_req(request::PUT_KV_CONFIG, &[("namespace", "n"), ("key", "k")]),
        );
        assert_eq!(r.code, response::SYSTEM_ERROR);
        assert!(
            r.remark.as_deref().unwrap().contains("<value>"),
            "{:?}",
            r.remark
        );
        let r = ns.process(
            &c,
            &kv_req(
                request::PUT_KV_CONFIG,
                &[("namespace", " "), ("key", "k"), ("value", "v")],
            ),
        );
        assert_eq!(r.code, response::SYSTEM_ERROR);
        assert!(
            r.remark.as_deref().unwrap().contains("<namespace>"),
            "{:?}",
            r.remark
        );
        let put = kv_req(
            request::PUT_KV_CONFIG,
            &[("namespace", "n"), ("key", "k"), ("value", "v")],
        );
        assert_eq!(ns.process(&c, &put).code, response::SUCCESS);
        let r = ns.process(
            &c,
            &kv_req(request::GET_KV_CONFIG, &[("namespace", "n"), ("key", "k")]),
        );
        assert_eq!((r.code, r.ext_fields.opt_str("value")), (0, Some("v")));
        let r = ns.process(
            &c,
            &kv_req(request::GET_KVLIST_BY_NAMESPACE, &[("namespace", "n")]),
        );
        assert_eq!(r.body, br#"{"table":{"k":"v"}}"#);
        let del = kv_req(
            request::DELETE_KV_CONFIG,
            &[("namespace", "n"), ("key", "k")],
        );
        assert_eq!(ns.process(&c, &del).code, response::SUCCESS);
        assert_eq!(
            ns.process(&c, &del).code,
            response::SUCCESS,
            "absent key: still success"
        );
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .contains(r#""n":{}"#));

        // orderTopicConf from ORDER_TOPIC_CONFIG, with orderMessageEnable.
        let body = br#"{"topicConfigSerializeWrapper":{"topicConfigTable":{"T":{"topicName":"T","readQueueNums":4,"writeQueueNums":4,"perm":6}},"dataVersion":{"timestamp":1,"counter":2}},"filterServerList":[]}"#;
        let reg = RemotingCommand::request(request::REGISTER_BROKER)
            .with_ext("brokerName", "b")
            .with_ext("brokerAddr", "127.0.0.1:5")
            .with_ext("clusterName", "C")
            .with_ext("brokerId", 0)
            .with_body(body.to_vec());
        assert_eq!(ns.process(&c, &reg).code, 0);
        let route = kv_req(request::GET_ROUTEINFO_BY_TOPIC, &[("topic", "T")]);
        let r = ns.process(&c, &route);
        assert!(!String::from_utf8_lossy(&r.body).contains("orderTopicConf"));
        let put = kv_req(
            request::PUT_KV_CONFIG,
            &[
                ("namespace", "ORDER_TOPIC_CONFIG"),
                ("key", "T"),
                ("value", "b:4"),
            ],
        );
        assert_eq!(ns.process(&c, &put).code, 0);
        let r = ns.process(&c, &route);
        assert!(String::from_utf8_lossy(&r.body).contains(r#""orderTopicConf":"b:4""#));
        // The registration answer carries the namespace, as RocketMQ's.
        let r = ns.process(&c, &reg);
        assert_eq!(r.body, br#"{"table":{"T":"b:4"}}"#);

        let wipe = kv_req(request::WIPE_WRITE_PERM_OF_BROKER, &[("brokerName", "b")]);
        let r = ns.process(&c, &wipe);
        assert_eq!(
            (r.code, r.ext_fields.opt_str("wipeTopicCount")),
            (0, Some("1"))
        );
        let r = ns.process(
            &c,
            &kv_req(request::ADD_WRITE_PERM_OF_BROKER, &[("brokerName", "x")]),
        );
        assert_eq!(
            (r.code, r.ext_fields.opt_str("addTopicCount")),
            (0, Some("0"))
        );
        let r = ns.process(
            &c,
            &RemotingCommand::request(request::WIPE_WRITE_PERM_OF_BROKER),
        );
        assert_eq!(r.code, response::SYSTEM_ERROR);
        assert!(r.remark.as_deref().unwrap().contains("<brokerName>"));
        let r = ns.process(
            &c,
            &kv_req(request::GET_TOPICS_BY_CLUSTER, &[("cluster", "C")]),
        );
        assert_eq!(r.body, br#"{"topicList":["T"]}"#);
        let r = ns.process(
            &c,
            &RemotingCommand::request(request::GET_SYSTEM_TOPIC_LIST_FROM_NS),
        );
        assert_eq!(
            r.body,
            br#"{"brokerAddr":"127.0.0.1:5","topicList":["C","b"]}"#
        );
        let r = ns.process(
            &c,
            &kv_req(request::DELETE_TOPIC_IN_NAMESRV, &[("topic", "T")]),
        );
        assert_eq!(r.code, 0);
        assert_eq!(ns.process(&c, &route).code, response::TOPIC_NOT_EXIST);
    }

    #[test]
    fn parses_json_and_compressed_bodies() {
        let body = br#"{"topicConfigSerializeWrapper":{"topicConfigTable":{"T":{"topicName":"T","readQueueNums":4,"writeQueueNums":4,"perm":6,"topicFilterType":"SINGLE_TAG","topicSysFlag":0,"order":false}},"dataVersion":{"timestamp":1,"counter":2}},"filterServerList":[]}"#;
        let (dv, t) = parse_register_body(body, false).unwrap();
        assert_eq!(dv["counter"], 2);
        assert_eq!(t[0].write_queue_nums, 4);

        let mut raw = Vec::new();
        let dv = br#"{"timestamp":1,"counter":3}"#;
        raw.extend_from_slice(&(dv.len() as i32).to_be_bytes());
        raw.extend_from_slice(dv);
        raw.extend_from_slice(&1i32.to_be_bytes());
        let tc = b"T 8 8 6 SINGLE_TAG";
        raw.extend_from_slice(&(tc.len() as i32).to_be_bytes());
        raw.extend_from_slice(tc);
        raw.extend_from_slice(&2i32.to_be_bytes());
        raw.extend_from_slice(b"[]");
        let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&raw).unwrap();
        let z = enc.finish().unwrap();
        let (dv, t) = parse_register_body(&z, true).unwrap();
        assert_eq!(dv["counter"], 3);
        assert_eq!(t[0].read_queue_nums, 8);
        assert!(parse_register_body(&z[..z.len() / 2], true).is_err());
        assert!(parse_register_body(b"garbage", true).is_err());
    }
}
