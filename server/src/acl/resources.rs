//! Which resources a request touches, as RocketMQ 4.9.7's
//! `PlainAccessValidator.parse` extracts them.
//!
//! [`parse_request`] reads a decoded [`RemotingCommand`] and the peer's
//! address into a [`ParsedAccess`], from which [`ParsedAccess::as_request`]
//! borrows the [`AccessRequest`] that [`AclRules::check`](super::AclRules::check)
//! decides.
//!
//! # The resource table
//!
//! Only these request codes name resources; every other code names none
//! (admin codes are decided by the account's admin flag, see
//! [`super::perm::needs_admin`]). Topics are named as sent, groups as their
//! retry topic `%RETRY%group`. A field that is absent adds nothing.
//!
//! | code | resources |
//! |------|-----------|
//! | `SEND_MESSAGE` (10), `SEND_MESSAGE_V2` (310), `SEND_BATCH_MESSAGE` (320) | the topic the send writes to: `PUB`; a retry topic `%RETRY%G`: `SUB` on it (group G's permission) |
//! | `CONSUMER_SEND_MSG_BACK` (36) | retry topic of `group`: `SUB` |
//! | `PULL_MESSAGE` (11), `LITE_PULL_MESSAGE` (361, served as a pull) | `topic`: `SUB`; retry topic of `consumerGroup`: `SUB` |
//! | `QUERY_CONSUMER_OFFSET` (14, not in 4.9.7) | retry topic of `consumerGroup` and `topic`: `SUB` |
//! | `QUERY_MESSAGE` (12) | `topic`: `SUB` |
//! | `HEART_BEAT` (34) | per consumer of the body: retry topic of `groupName` and each subscription `topic`: `SUB` |
//! | `UNREGISTER_CLIENT` (35) | retry topic of `consumerGroup`: `SUB` |
//! | `GET_CONSUMER_LIST_BY_GROUP` (38) | retry topic of `consumerGroup`: `SUB` |
//! | `UPDATE_CONSUMER_OFFSET` (15) | retry topic of `consumerGroup` and `topic`: `SUB` |
//!
//! Sends differ from 4.9.7 on purpose. 4.9.7 reads `topic`/`group` for
//! code 10 and `b`/`a` for code 310 and does not list code 320 (5.x adds
//! it as 310), but ferromq's send handler (as RocketMQ clients vary) takes
//! the short names whenever `topic` is absent and `b` present, whatever the
//! code: reading the fields by code would let a send name one topic to the
//! ACL and write another. So every send names the topic it writes to, read
//! with the handler's own rule; and a retry topic needs `SUB` on the group
//! it belongs to (RocketMQ checks the group of the `group`/`a` field, which
//! a v1 header does not have: such a send named nothing).
//!
//! As in 4.9.7, `END_TRANSACTION`, `LOCK_BATCH_MQ`/`UNLOCK_BATCH_MQ`,
//! `VIEW_MESSAGE_BY_ID` and the rest name no resource (a signed account
//! may use them on any topic), and producer groups of a heartbeat are not
//! checked. RocketMQ decodes the custom headers of
//! `UNREGISTER_CLIENT`, `GET_CONSUMER_LIST_BY_GROUP` and
//! `UPDATE_CONSUMER_OFFSET` first, but that decoding logs and skips missing
//! or malformed fields and never throws, so reading the fields directly is
//! the same. Only the heartbeat body can fail: see [`ParseError`].
//!
//! # Where ferromq differs
//!
//! ferromq's `extFields` cannot be absent, only empty; an empty map is taken
//! as RocketMQ's absent one (no access key, no resources, nothing parsed,
//! empty content), which is what a client without the ACL hook sends.
//!
//! In a heartbeat body, a `groupName` or `topic` that is a boolean, an
//! object or an array is an error; fastjson may take it as text.

use std::net::{IpAddr, SocketAddr};

use serde_json::Value;

use super::perm::Perm;
use super::rules::AccessRequest;
use super::sign;
use crate::broker::send_back::RETRY_GROUP_TOPIC_PREFIX;
use crate::remoting::json::parse_lenient;
use crate::remoting::{request, RemotingCommand};

/// What [`parse_request`] read from one request: the owned data of an
/// [`AccessRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedAccess<'a> {
    /// The peer's address without port; `None` if unknown.
    pub remote_ip: Option<IpAddr>,
    /// The request code.
    pub request_code: i32,
    /// `extFields["AccessKey"]`, if any.
    pub access_key: Option<String>,
    /// `extFields["Signature"]`, if any.
    pub signature: Option<String>,
    /// The signed `extFields` values ([`sign::validator_request_content`]
    /// without the body); empty when `extFields` is empty.
    pub content: Vec<u8>,
    /// The request body, the rest of the signed content, borrowed in place
    /// (a copy per request would cost more than the signature); empty when
    /// `extFields` is empty.
    pub body: &'a [u8],
    /// The resources used and the permission each needs, in RocketMQ's
    /// order of adding (see the [module docs](self)).
    pub resources: Vec<(String, Perm)>,
}

impl ParsedAccess<'_> {
    /// The whole signed content: the values, then the body.
    pub fn signed_content(&self) -> Vec<u8> {
        [self.content.as_slice(), self.body].concat()
    }

    /// The request to decide with [`AclRules::check`](super::AclRules::check).
    pub fn as_request(&self) -> AccessRequest<'_> {
        AccessRequest {
            remote_ip: self.remote_ip,
            request_code: self.request_code,
            access_key: self.access_key.as_deref(),
            signature: self.signature.as_deref(),
            content: &self.content,
            body: self.body,
            resources: &self.resources,
        }
    }
}

/// Why a request's resources cannot be read: RocketMQ's `parse` throws an
/// `AclException` for these (before any access check, so also for a white
/// listed peer).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A `HEART_BEAT` body that is not `HeartbeatData` JSON. RocketMQ's
    /// message here is fastjson's or a `NullPointerException`'s (often
    /// `null`); ferromq says what is wrong instead.
    #[error("heartbeat body: {0}")]
    HeartbeatBody(String),
}

impl ParseError {
    /// The response remark for this error, in the form of
    /// [`AclDenied::remark`](super::AclDenied::remark).
    pub fn remark(&self) -> String {
        format!("org.apache.rocketmq.acl.common.AclException: {self}")
    }
}

/// `PlainAccessValidator.parse(request, remoteAddr)`: the access key,
/// signature, signed content and resources of `cmd` from `peer`.
///
/// # Errors
/// [`ParseError`] when a `HEART_BEAT` body is not `HeartbeatData` JSON.
pub fn parse_request(
    cmd: &RemotingCommand,
    peer: Option<SocketAddr>,
) -> Result<ParsedAccess<'_>, ParseError> {
    let mut parsed = ParsedAccess {
        remote_ip: peer.map(|p| p.ip()),
        request_code: cmd.code,
        access_key: None,
        signature: None,
        content: Vec::new(),
        body: &[],
        resources: Vec::new(),
    };
    let fields = &cmd.ext_fields;
    if fields.is_empty() {
        // RocketMQ returns here when extFields is null.
        return Ok(parsed);
    }
    parsed.access_key = fields.opt_str(sign::ACCESS_KEY_FIELD).map(str::to_string);
    parsed.signature = fields.opt_str(sign::SIGNATURE_FIELD).map(str::to_string);
    parsed.resources = request_resources(cmd)?;
    parsed.content = sign::validator_request_content(&fields.0, &[]);
    parsed.body = &cmd.body;
    Ok(parsed)
}

/// The resources `cmd` uses and the permission each needs (the `switch` of
/// `PlainAccessValidator.parse`; see the [module docs](self)).
///
/// # Errors
/// [`ParseError`] when a `HEART_BEAT` body is not `HeartbeatData` JSON.
pub fn request_resources(cmd: &RemotingCommand) -> Result<Vec<(String, Perm)>, ParseError> {
    let fields = &cmd.ext_fields;
    let mut out = Resources::default();
    match cmd.code {
        request::SEND_MESSAGE | request::SEND_MESSAGE_V2 | request::SEND_BATCH_MESSAGE => {
            send(&mut out, fields);
        }
        request::CONSUMER_SEND_MSG_BACK => out.group(fields.opt_str("group")),
        // LITE_PULL_MESSAGE is served as PULL_MESSAGE (same header), so it
        // is checked as one; 4.9.7 has no lite pull.
        request::PULL_MESSAGE | request::LITE_PULL_MESSAGE => {
            out.topic(fields.opt_str("topic"), Perm::SUB);
            out.group(fields.opt_str("consumerGroup"));
        }
        // Not in 4.9.7: a group's offsets are read with its permission, as
        // UPDATE_CONSUMER_OFFSET writes them.
        request::QUERY_CONSUMER_OFFSET => {
            out.group(fields.opt_str("consumerGroup"));
            out.topic(fields.opt_str("topic"), Perm::SUB);
        }
        request::QUERY_MESSAGE => out.topic(fields.opt_str("topic"), Perm::SUB),
        request::HEART_BEAT => heartbeat(&mut out, &cmd.body)?,
        request::UNREGISTER_CLIENT | request::GET_CONSUMER_LIST_BY_GROUP => {
            out.group(fields.opt_str("consumerGroup"));
        }
        request::UPDATE_CONSUMER_OFFSET => {
            out.group(fields.opt_str("consumerGroup"));
            out.topic(fields.opt_str("topic"), Perm::SUB);
        }
        _ => {}
    }
    Ok(out.0)
}

/// `addResourceAndPerm` calls, in order (a name may repeat; the check keeps
/// its last permission, as RocketMQ's map does).
#[derive(Default)]
struct Resources(Vec<(String, Perm)>);

impl Resources {
    /// A topic, if present.
    fn topic(&mut self, topic: Option<&str>, perm: Perm) {
        if let Some(topic) = topic {
            self.0.push((topic.to_string(), perm));
        }
    }

    /// A group's retry topic with `SUB`, if present.
    fn group(&mut self, group: Option<&str>) {
        if let Some(group) = group {
            self.0
                .push((format!("{RETRY_GROUP_TOPIC_PREFIX}{group}"), Perm::SUB));
        }
    }
}

/// SEND_MESSAGE, SEND_MESSAGE_V2 and SEND_BATCH_MESSAGE: the topic the send
/// handler will write to, read with its rule (the short names `b`/`a` when
/// `topic` is absent and `b` present, whatever the code), needs `PUB`; a
/// retry topic `%RETRY%G` needs `SUB` on group G (the retry topic itself).
fn send(out: &mut Resources, fields: &crate::remoting::ExtFields) {
    let topic = if crate::broker::send_uses_short_names(fields) {
        fields.opt_str("b")
    } else {
        fields.opt_str("topic")
    };
    match topic {
        Some(t) if t.starts_with(RETRY_GROUP_TOPIC_PREFIX) => {
            out.0.push((t.to_string(), Perm::SUB));
        }
        _ => out.topic(topic, Perm::PUB),
    }
}

/// HEART_BEAT: each consumer group (as its retry topic) and each of its
/// subscribed topics, all `SUB`.
///
/// Read as RocketMQ's fastjson `HeartbeatData.decode` then the loop over
/// `getConsumerDataSet()` would: invalid UTF-8 is replaced (Java's
/// `new String`); an empty body, `null`, a non-object, a `null` or
/// non-array set, or a `null` or non-object element is an error (an
/// exception in RocketMQ); a missing set is empty; a missing or `null`
/// `groupName` or `topic` adds nothing; a number is taken as its text.
fn heartbeat(out: &mut Resources, body: &[u8]) -> Result<(), ParseError> {
    let text = String::from_utf8_lossy(body);
    let data = parse_lenient(&text).map_err(|e| ParseError::HeartbeatBody(e.to_string()))?;
    let Value::Object(data) = data else {
        return Err(bad("not a JSON object"));
    };
    for consumer in set(data.get("consumerDataSet"), "consumerDataSet")? {
        let Value::Object(consumer) = consumer else {
            return Err(bad("a consumerDataSet element is not an object"));
        };
        out.group(name(consumer.get("groupName"), "groupName")?.as_deref());
        for sub in set(consumer.get("subscriptionDataSet"), "subscriptionDataSet")? {
            let Value::Object(sub) = sub else {
                return Err(bad("a subscriptionDataSet element is not an object"));
            };
            out.topic(name(sub.get("topic"), "topic")?.as_deref(), Perm::SUB);
        }
    }
    Ok(())
}

/// A `HeartbeatBody` error.
fn bad(what: &str) -> ParseError {
    ParseError::HeartbeatBody(what.to_string())
}

/// The elements of a set field: missing is empty, an array its elements.
fn set<'v>(value: Option<&'v Value>, field: &str) -> Result<&'v [Value], ParseError> {
    match value {
        None => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(bad(&format!("{field} is not an array"))),
    }
}

/// A name field: missing or `null` is `None`, a string or number its text.
fn name(value: Option<&Value>, field: &str) -> Result<Option<String>, ParseError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(bad(&format!("{field} is not a string"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::rules::{AclDenied, AclRules};

    fn cmd(code: i32, fields: &[(&str, &str)]) -> RemotingCommand {
        let mut cmd = RemotingCommand::request(code);
        for (k, v) in fields {
            cmd.ext_fields.insert(*k, *v);
        }
        cmd
    }

    fn resources(cmd: &RemotingCommand) -> Vec<(String, Perm)> {
        request_resources(cmd).expect("resources")
    }

    fn owned(expected: &[(&str, Perm)]) -> Vec<(String, Perm)> {
        expected.iter().map(|(n, p)| (n.to_string(), *p)).collect()
    }

    /// The header fields of a send as the 4.9 Java producer puts them in
    /// `SendMessageRequestHeaderV2` (short names), for `topic`.
    fn send_v2_fields(topic: &str) -> Vec<(&'static str, String)> {
        vec![
            ("a", "please_rename_unique_group_name".into()),
            ("b", topic.into()),
            ("c", "TBW102".into()),
            ("d", "4".into()),
            ("e", "0".into()),
            ("f", "0".into()),
            ("g", "1700000000000".into()),
            ("h", "0".into()),
            (
                "i",
                "UNIQ_KEY\u{1}AC1100010001\u{2}WAIT\u{1}true\u{2}".into(),
            ),
            ("j", "0".into()),
            ("k", "false".into()),
            ("m", "false".into()),
        ]
    }

    const HEARTBEAT: &str = r#"{"clientID":"10.0.0.1@1234","consumerDataSet":[{"consumeFromWhere":"CONSUME_FROM_LAST_OFFSET","consumeType":"CONSUME_PASSIVELY","groupName":"cg","messageModel":"CLUSTERING","subscriptionDataSet":[{"classFilterMode":false,"codeSet":[],"expressionType":"TAG","subString":"*","subVersion":1700000000000,"tagsSet":[],"topic":"TopicTest"},{"classFilterMode":false,"codeSet":[],"expressionType":"TAG","subString":"*","subVersion":1700000000001,"tagsSet":[],"topic":"%RETRY%cg"}],"unitMode":false}],"producerDataSet":[{"groupName":"CLIENT_INNER_PRODUCER"},{"groupName":"pg"}]}"#;

    #[test]
    fn resource_table() {
        use Perm as P;
        let v2: Vec<(&str, String)> = send_v2_fields("TopicTest");
        let v2: Vec<(&str, &str)> = v2.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let v2_retry: Vec<(&str, String)> = send_v2_fields("%RETRY%cg");
        let v2_retry: Vec<(&str, &str)> = v2_retry.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let table: Vec<(RemotingCommand, Vec<(&str, Perm)>)> = vec![
            (
                cmd(
                    request::SEND_MESSAGE,
                    &[
                        ("producerGroup", "pg"),
                        ("topic", "TopicTest"),
                        ("queueId", "0"),
                    ],
                ),
                vec![("TopicTest", P::PUB)],
            ),
            // A retry topic needs SUB on its group, whatever group field
            // the header carries (RocketMQ 4.9.7 named nothing here).
            (
                cmd(
                    request::SEND_MESSAGE,
                    &[("producerGroup", "pg"), ("topic", "%RETRY%cg")],
                ),
                vec![("%RETRY%cg", P::SUB)],
            ),
            // Short names on code 10: the handler writes to `b`, so the
            // ACL checks `b`.
            (
                cmd(request::SEND_MESSAGE, &[("a", "pg"), ("b", "TopicTest")]),
                vec![("TopicTest", P::PUB)],
            ),
            (
                cmd(
                    request::SEND_MESSAGE,
                    &[("group", "cg"), ("topic", "%RETRY%cg")],
                ),
                vec![("%RETRY%cg", P::SUB)],
            ),
            (
                cmd(request::SEND_MESSAGE_V2, &v2),
                vec![("TopicTest", P::PUB)],
            ),
            (
                cmd(request::SEND_MESSAGE_V2, &v2_retry),
                vec![("%RETRY%cg", P::SUB)],
            ),
            // Long names on code 310: the handler writes to `topic` (even
            // with a `b` beside it), so the ACL checks `topic`.
            (
                cmd(
                    request::SEND_MESSAGE_V2,
                    &[
                        ("producerGroup", "pg"),
                        ("topic", "TopicTest"),
                        ("b", "Other"),
                    ],
                ),
                vec![("TopicTest", P::PUB)],
            ),
            (
                cmd(
                    request::CONSUMER_SEND_MSG_BACK,
                    &[
                        ("group", "cg"),
                        ("offset", "100"),
                        ("delayLevel", "0"),
                        ("originTopic", "TopicTest"),
                    ],
                ),
                vec![("%RETRY%cg", P::SUB)],
            ),
            (
                cmd(
                    request::PULL_MESSAGE,
                    &[
                        ("consumerGroup", "cg"),
                        ("topic", "TopicTest"),
                        ("queueId", "1"),
                        ("queueOffset", "0"),
                        ("maxMsgNums", "32"),
                        ("sysFlag", "2"),
                        ("commitOffset", "0"),
                        ("suspendTimeoutMillis", "15000"),
                        ("subVersion", "0"),
                    ],
                ),
                vec![("TopicTest", P::SUB), ("%RETRY%cg", P::SUB)],
            ),
            (
                cmd(
                    request::QUERY_MESSAGE,
                    &[
                        ("topic", "TopicTest"),
                        ("key", "k1"),
                        ("maxNum", "32"),
                        ("beginTimestamp", "0"),
                        ("endTimestamp", "1"),
                    ],
                ),
                vec![("TopicTest", P::SUB)],
            ),
            (
                cmd(request::HEART_BEAT, &[("AccessKey", "ak")]).with_body(HEARTBEAT.into()),
                vec![
                    ("%RETRY%cg", P::SUB),
                    ("TopicTest", P::SUB),
                    ("%RETRY%cg", P::SUB),
                ],
            ),
            (
                cmd(
                    request::UNREGISTER_CLIENT,
                    &[("clientID", "c1"), ("consumerGroup", "cg")],
                ),
                vec![("%RETRY%cg", P::SUB)],
            ),
            // A producer leaving: no consumer group, nothing.
            (
                cmd(
                    request::UNREGISTER_CLIENT,
                    &[("clientID", "c1"), ("producerGroup", "pg")],
                ),
                vec![],
            ),
            (
                cmd(
                    request::GET_CONSUMER_LIST_BY_GROUP,
                    &[("consumerGroup", "cg")],
                ),
                vec![("%RETRY%cg", P::SUB)],
            ),
            (
                cmd(
                    request::UPDATE_CONSUMER_OFFSET,
                    &[
                        ("consumerGroup", "cg"),
                        ("topic", "TopicTest"),
                        ("queueId", "0"),
                        ("commitOffset", "42"),
                    ],
                ),
                vec![("%RETRY%cg", P::SUB), ("TopicTest", P::SUB)],
            ),
            // Malformed numbers are skipped by RocketMQ's header decoding.
            (
                cmd(
                    request::UPDATE_CONSUMER_OFFSET,
                    &[
                        ("consumerGroup", "cg"),
                        ("topic", "TopicTest"),
                        ("queueId", "x"),
                        ("commitOffset", ""),
                    ],
                ),
                vec![("%RETRY%cg", P::SUB), ("TopicTest", P::SUB)],
            ),
            // As RocketMQ 5.x (4.9.7 did not list the batch code).
            (
                cmd(
                    request::SEND_BATCH_MESSAGE,
                    &[("a", "pg"), ("b", "TopicTest")],
                ),
                vec![("TopicTest", P::PUB)],
            ),
            // Codes 4.9.7's parse does not list.
            (
                cmd(
                    request::QUERY_CONSUMER_OFFSET,
                    &[
                        ("consumerGroup", "cg"),
                        ("topic", "TopicTest"),
                        ("queueId", "0"),
                    ],
                ),
                vec![("%RETRY%cg", P::SUB), ("TopicTest", P::SUB)],
            ),
            (
                cmd(
                    request::LITE_PULL_MESSAGE,
                    &[
                        ("consumerGroup", "cg"),
                        ("topic", "TopicTest"),
                        ("queueId", "0"),
                        ("queueOffset", "0"),
                    ],
                ),
                vec![("TopicTest", P::SUB), ("%RETRY%cg", P::SUB)],
            ),
            (
                cmd(
                    request::END_TRANSACTION,
                    &[("producerGroup", "pg"), ("tranStateTableOffset", "0")],
                ),
                vec![],
            ),
            (
                cmd(request::UPDATE_AND_CREATE_TOPIC, &[("topic", "TopicTest")]),
                vec![],
            ),
        ];
        for (i, (cmd, expected)) in table.iter().enumerate() {
            assert_eq!(resources(cmd), owned(expected), "row {i} code {}", cmd.code);
        }
    }

    #[test]
    fn missing_fields_add_nothing() {
        for code in [
            request::SEND_MESSAGE,
            request::SEND_MESSAGE_V2,
            request::SEND_BATCH_MESSAGE,
            request::CONSUMER_SEND_MSG_BACK,
            request::PULL_MESSAGE,
            request::LITE_PULL_MESSAGE,
            request::QUERY_CONSUMER_OFFSET,
            request::QUERY_MESSAGE,
            request::UNREGISTER_CLIENT,
            request::GET_CONSUMER_LIST_BY_GROUP,
            request::UPDATE_CONSUMER_OFFSET,
        ] {
            assert_eq!(
                resources(&cmd(code, &[("AccessKey", "ak")])),
                vec![],
                "{code}"
            );
        }
    }

    #[test]
    fn parse_reads_credentials_address_and_content() {
        let peer: SocketAddr = "192.168.0.7:50123".parse().expect("addr");
        let c = cmd(
            request::QUERY_MESSAGE,
            &[
                ("AccessKey", "ak"),
                ("Signature", "sig"),
                ("topic", "t"),
                ("_UNIQUE_KEY_QUERY", "true"),
            ],
        )
        .with_body(b"B".to_vec());
        let p = parse_request(&c, Some(peer)).expect("parsed");
        assert_eq!(p.remote_ip, Some(peer.ip()));
        assert_eq!(p.request_code, request::QUERY_MESSAGE);
        assert_eq!(p.access_key.as_deref(), Some("ak"));
        assert_eq!(p.signature.as_deref(), Some("sig"));
        // Values in key order without Signature and _UNIQUE_KEY_QUERY, then the body.
        assert_eq!(p.signed_content(), b"aktB".to_vec());
        assert_eq!(p.resources, owned(&[("t", Perm::SUB)]));
        let r = p.as_request();
        assert_eq!(r.access_key, Some("ak"));
        assert_eq!(r.signature, Some("sig"));
        assert_eq!([r.content, r.body].concat(), b"aktB");
        assert_eq!(r.resources.len(), 1);
        // The field names are case-sensitive, as Java's map.
        let lower = cmd(
            request::QUERY_MESSAGE,
            &[("accesskey", "ak"), ("signature", "s")],
        );
        let p = parse_request(&lower, None).expect("parsed");
        assert_eq!((p.access_key, p.signature, p.remote_ip), (None, None, None));
    }

    #[test]
    fn empty_ext_fields_is_javas_null() {
        // Not even the heartbeat body is read.
        let c = RemotingCommand::request(request::HEART_BEAT).with_body(b"not json".to_vec());
        let p = parse_request(&c, None).expect("nothing parsed");
        assert_eq!(p.access_key, None);
        assert!(p.resources.is_empty());
        assert!(p.signed_content().is_empty());
    }

    #[test]
    fn malformed_heartbeats_are_errors_not_panics() {
        let bodies: &[&[u8]] = &[
            b"",
            b"   ",
            b"null",
            b"[]",
            b"42",
            b"\"text\"",
            b"{",
            b"{\"consumerDataSet\":null}",
            b"{\"consumerDataSet\":{}}",
            b"{\"consumerDataSet\":[null]}",
            b"{\"consumerDataSet\":[1]}",
            b"{\"consumerDataSet\":[{\"groupName\":{}}]}",
            b"{\"consumerDataSet\":[{\"groupName\":\"g\",\"subscriptionDataSet\":null}]}",
            b"{\"consumerDataSet\":[{\"groupName\":\"g\",\"subscriptionDataSet\":[[]]}]}",
            b"{\"consumerDataSet\":[{\"subscriptionDataSet\":[{\"topic\":true}]}]}",
            b"\xff\xfe\x00",
        ];
        for body in bodies {
            let c = cmd(request::HEART_BEAT, &[("AccessKey", "ak")]).with_body(body.to_vec());
            let err = parse_request(&c, None).expect_err(&String::from_utf8_lossy(body));
            assert!(matches!(err, ParseError::HeartbeatBody(_)));
            assert!(
                err.remark()
                    .starts_with("org.apache.rocketmq.acl.common.AclException: heartbeat body: "),
                "{}",
                err.remark()
            );
        }
        // Deep nesting hits serde_json's recursion limit, not the stack.
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let c = cmd(request::HEART_BEAT, &[("AccessKey", "ak")]).with_body(deep.into_bytes());
        assert!(parse_request(&c, None).is_err());
    }

    #[test]
    fn lenient_heartbeats() {
        let body = br#"{"clientID":"c","consumerDataSet":[{"groupName":null},{"groupName":7,"subscriptionDataSet":[{"topic":null},{"subString":"*"},{"topic":"T"}]},{"groupName":"g2"}]}"#;
        let c = cmd(request::HEART_BEAT, &[("AccessKey", "ak")]).with_body(body.to_vec());
        assert_eq!(
            resources(&c),
            owned(&[
                ("%RETRY%7", Perm::SUB),
                ("T", Perm::SUB),
                ("%RETRY%g2", Perm::SUB)
            ])
        );
        // A producer-only heartbeat, and fastjson's unquoted integer keys.
        let c = cmd(request::HEART_BEAT, &[("AccessKey", "ak")]).with_body(
            br#"{"clientID":"c","producerDataSet":[{"groupName":"pg"}],"x":{0:1}}"#.to_vec(),
        );
        assert_eq!(resources(&c), vec![]);
    }

    const CONFIG: &str = "\
accounts:
  - accessKey: RocketMQ
    secretKey: 12345678
    admin: false
    defaultTopicPerm: DENY
    defaultGroupPerm: SUB
    topicPerms:
      - topicA=DENY
      - topicB=PUB|SUB
      - topicC=SUB
    groupPerms:
      - groupA=DENY
      - groupB=PUB|SUB
  - accessKey: trusted
    secretKey: 87654321
    whiteRemoteAddress: 192.168.1.*
    defaultTopicPerm: DENY
    defaultGroupPerm: DENY
";

    fn rules() -> AclRules {
        AclRules::from_yaml(CONFIG)
    }

    /// `fields` plus AccessKey, signed as the Java client's `AclClientRPCHook`
    /// signs (all fields, then the body) with `secret`.
    fn signed(code: i32, fields: &[(&str, &str)], body: &[u8], secret: &str) -> RemotingCommand {
        let mut c = cmd(code, fields).with_body(body.to_vec());
        c.ext_fields.insert(sign::ACCESS_KEY_FIELD, "RocketMQ");
        let content = sign::combine_request_content(&c.ext_fields.0, &c.body);
        c.ext_fields
            .insert(sign::SIGNATURE_FIELD, sign::sign(&content, secret));
        c
    }

    fn check(c: &RemotingCommand) -> Result<(), AclDenied> {
        let peer: SocketAddr = "127.0.0.1:40000".parse().expect("addr");
        rules().check(&parse_request(c, Some(peer)).expect("parsed").as_request())
    }

    #[test]
    fn end_to_end_checks() {
        let send_b = send_v2_fields("topicB");
        let send_b: Vec<(&str, &str)> = send_b.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let good = signed(
            request::SEND_MESSAGE_V2,
            &send_b,
            b"Hello RocketMQ",
            "12345678",
        );
        assert_eq!(check(&good), Ok(()));

        let wrong = signed(
            request::SEND_MESSAGE_V2,
            &send_b,
            b"Hello RocketMQ",
            "12345679",
        );
        assert_eq!(
            check(&wrong),
            Err(AclDenied::SignatureMismatch("RocketMQ".into()))
        );
        // A body changed after signing.
        let mut tampered = good.clone();
        tampered.body = b"Hello RocketMQ!".to_vec();
        assert_eq!(
            check(&tampered),
            Err(AclDenied::SignatureMismatch("RocketMQ".into()))
        );

        let deny = signed(
            request::SEND_MESSAGE,
            &[("producerGroup", "groupB"), ("topic", "topicA")],
            b"m",
            "12345678",
        );
        assert_eq!(
            check(&deny),
            Err(AclDenied::NoPermission {
                resource: "topic:topicA".into()
            })
        );
        let sub_only = signed(
            request::SEND_MESSAGE,
            &[("producerGroup", "groupB"), ("topic", "topicC")],
            b"m",
            "12345678",
        );
        assert_eq!(
            check(&sub_only),
            Err(AclDenied::NoPermission {
                resource: "topic:topicC".into()
            })
        );
        let pull_c = signed(
            request::PULL_MESSAGE,
            &[
                ("consumerGroup", "groupB"),
                ("topic", "topicC"),
                ("queueId", "0"),
            ],
            b"",
            "12345678",
        );
        assert_eq!(check(&pull_c), Ok(()));
        let denied_group = signed(
            request::PULL_MESSAGE,
            &[
                ("consumerGroup", "groupA"),
                ("topic", "topicB"),
                ("queueId", "0"),
            ],
            b"",
            "12345678",
        );
        assert_eq!(
            check(&denied_group),
            Err(AclDenied::NoPermission {
                resource: "group:groupA".into()
            })
        );
        // The signed content ignores _UNIQUE_KEY_QUERY on the broker side,
        // so a client signing with it is refused (as in RocketMQ).
        let unique = signed(
            request::QUERY_MESSAGE,
            &[("topic", "topicB"), ("_UNIQUE_KEY_QUERY", "true")],
            b"",
            "12345678",
        );
        assert_eq!(
            check(&unique),
            Err(AclDenied::SignatureMismatch("RocketMQ".into()))
        );
        // No access key at all.
        let anonymous = cmd(request::SEND_MESSAGE, &[("topic", "topicB")]);
        assert_eq!(check(&anonymous), Err(AclDenied::NoAccessKey));
        // Message trace: exactly PUB on RMQ_SYS_TRACE_TOPIC passes although
        // the default topic permission is DENY.
        let trace = send_v2_fields(crate::acl::rules::TRACE_TOPIC);
        let trace: Vec<(&str, &str)> = trace.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let trace = signed(request::SEND_MESSAGE_V2, &trace, b"t", "12345678");
        assert_eq!(check(&trace), Ok(()));
    }

    #[test]
    fn end_to_end_heartbeats() {
        let ok = br#"{"clientID":"c","consumerDataSet":[{"groupName":"groupB","subscriptionDataSet":[{"topic":"topicC","subString":"*"},{"topic":"%RETRY%groupB","subString":"*"}]}],"producerDataSet":[{"groupName":"CLIENT_INNER_PRODUCER"}]}"#;
        let c = signed(request::HEART_BEAT, &[], ok, "12345678");
        assert_eq!(check(&c), Ok(()));
        let denied_topic = br#"{"clientID":"c","consumerDataSet":[{"groupName":"groupB","subscriptionDataSet":[{"topic":"topicA"}]}]}"#;
        let c = signed(request::HEART_BEAT, &[], denied_topic, "12345678");
        assert_eq!(
            check(&c),
            Err(AclDenied::NoPermission {
                resource: "topic:topicA".into()
            })
        );
        let denied_group = br#"{"clientID":"c","consumerDataSet":[{"groupName":"groupA","subscriptionDataSet":[]}]}"#;
        let c = signed(request::HEART_BEAT, &[], denied_group, "12345678");
        assert_eq!(
            check(&c),
            Err(AclDenied::NoPermission {
                resource: "group:groupA".into()
            })
        );
    }

    #[test]
    fn white_remote_address_uses_the_peer_ip() {
        let rules = rules();
        // No signature, every resource denied: the account's white address
        // lets the peer in, also as an IPv4-mapped IPv6 peer.
        let c = cmd(
            request::PULL_MESSAGE,
            &[
                ("AccessKey", "trusted"),
                ("consumerGroup", "g"),
                ("topic", "t"),
            ],
        );
        for peer in ["192.168.1.20:1234", "[::ffff:192.168.1.20]:1234"] {
            let peer: SocketAddr = peer.parse().expect("addr");
            let p = parse_request(&c, Some(peer)).expect("parsed");
            assert_eq!(rules.check(&p.as_request()), Ok(()), "{peer}");
        }
        let other: SocketAddr = "192.168.2.20:1234".parse().expect("addr");
        let p = parse_request(&c, Some(other)).expect("parsed");
        assert_eq!(
            rules.check(&p.as_request()),
            Err(AclDenied::SignatureMismatch("trusted".into()))
        );
        let p = parse_request(&c, None).expect("parsed");
        assert_eq!(
            rules.check(&p.as_request()),
            Err(AclDenied::SignatureMismatch("trusted".into()))
        );
    }
}
