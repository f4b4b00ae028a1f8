//! Request handling of the name server (RocketMQ `DefaultRequestProcessor`).

use std::future::Future;
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::Value;

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
}

/// Least expected cost of a topic list or cluster info not yet answered.
const MIN_LIST_REPLY_BYTES: usize = 4096;

impl NameServer {
    /// Empty tables.
    pub fn new() -> Self {
        Self::default()
    }

    /// Check REGISTER_BROKER and UNREGISTER_BROKER against `acl`
    /// ([`crate::acl::AclRules::check_cluster_member`]); `None`: take them
    /// from anyone, as RocketMQ.
    #[must_use]
    pub fn with_acl(mut self, acl: Option<Arc<crate::acl::AclLive>>) -> Self {
        self.acl = acl;
        self
    }

    /// The route tables.
    pub fn routes(&self) -> &RouteInfoManager {
        &self.routes
    }

    /// Answer one request.
    pub fn process(&self, conn: &ConnInfo, req: &RemotingCommand) -> RemotingCommand {
        if let (Some(rules), request::REGISTER_BROKER | request::UNREGISTER_BROKER) =
            (&self.acl, req.code)
        {
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
        let mut resp = RemotingCommand::success().with_body(b"{\"table\":{}}".to_vec());
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
        Ok(match self.routes.route_json(topic, standard) {
            Some(body) => RemotingCommand::success().with_body(body.into_bytes()),
            None => RemotingCommand::error(
                response::TOPIC_NOT_EXIST,
                format!("No topic route info in name server for the topic: {topic}"),
            ),
        })
    }
}

impl Handler for NameServer {
    fn handle(
        self: Arc<Self>,
        conn: Arc<ConnInfo>,
        req: RemotingCommand,
    ) -> impl Future<Output = Option<RemotingCommand>> + Send + 'static {
        // Everything here is in-memory and quick: answer inline.
        let resp = self.process(&conn, &req);
        std::future::ready(Some(resp))
    }

    /// Topic lists and cluster infos are as large as the cluster (MBs for tens
    /// of thousands of topics) and built after they are read: each counts as
    /// large as the last one answered, so a client pipelining them is paused by
    /// `serverMaxQueuedReplyBytes` after a few instead of after
    /// `serverMaxRequestsPerConnection` of them are built at once.
    fn expected_reply_bytes(&self, req: &RemotingCommand) -> usize {
        let last = match req.code {
            request::GET_ALL_TOPIC_LIST_FROM_NAMESERVER => &self.topic_list_bytes,
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
