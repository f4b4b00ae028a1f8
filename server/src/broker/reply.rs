//! Request-reply (RocketMQ 4.6+, `ReplyMessageProcessor`): SEND_REPLY_MESSAGE
//! 324 and SEND_REPLY_MESSAGE_V2 325 from a responder.
//!
//! A requester's `request(msg, timeout)` sends an ordinary message with the
//! properties `CORRELATION_ID`, `REPLY_TO_CLIENT` (its client id) and `TTL`;
//! the broker's send path adds `CLUSTER`. The responder consumes it and sends
//! its reply (client helper `MessageUtil.createReplyMessage`) to the topic
//! `<cluster>_REPLY_TOPIC` ([`reply_topic`], a system topic every broker
//! creates at start, with one queue, and registers with the name servers)
//! with SEND_REPLY_MESSAGE(_V2), the send header of SEND_MESSAGE(_V2).
//!
//! The broker then, as RocketMQ 4.9 does:
//! 1. pushes the reply to the requester with PUSH_REPLY_MESSAGE_TO_CLIENT 326
//!    (header `ReplyMessageRequestHeader`: the send header's fields plus
//!    `bornHost`, `storeHost`, `storeTimestamp`; the properties with
//!    `PUSH_REPLY_TIME` added; the body as sent) over the connection of the
//!    producer whose heartbeats name the `REPLY_TO_CLIENT` client id, and
//!    waits for its answer ([`PUSH_REPLY_TIMEOUT`], RocketMQ's
//!    `Broker2Client.callClient`);
//! 2. stores the reply in the reply topic (unless
//!    `storeReplyMessageEnable=false`; RocketMQ's default is true), through
//!    the send path's own checks, queue choice and put;
//! 3. answers the responder from the push: SUCCESS when the requester took
//!    the reply, else SYSTEM_ERROR with RocketMQ's remark (the requester is
//!    not connected, it refused, or it did not answer in time). `msgId`,
//!    `queueId` and `queueOffset` are the stored reply's (`msgId` `0` when the
//!    push worked but the put did not, as RocketMQ answers).
//!
//! A reply whose requester is gone is not kept for it: it is pushed nowhere,
//! stored like any reply (retention removes it), logged (rate-limited) and
//! answered SYSTEM_ERROR. A reply without `REPLY_TO_CLIENT` is answered as
//! RocketMQ answers it; one without `CORRELATION_ID`, which no requester could
//! match to its request, is not pushed either (RocketMQ would push it for the
//! client to drop): both are stored and refused with a remark that names the
//! missing property.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ferromq_engine::MessageProperties;

use super::send::SendHeader;
use super::{Broker, HandlerResult, Request};
use crate::remoting::{response, CallError, ConnInfo, RemotingCommand};
use crate::warn_limit::WarnLimiter;

/// Request codes of request-reply.
pub mod code {
    /// SEND_REPLY_MESSAGE: a responder's reply, send header with long names.
    pub const SEND_REPLY_MESSAGE: i32 = 324;
    /// SEND_REPLY_MESSAGE_V2: a responder's reply, single-letter send header.
    pub const SEND_REPLY_MESSAGE_V2: i32 = 325;
    /// PUSH_REPLY_MESSAGE_TO_CLIENT: broker to the requester, the reply.
    pub const PUSH_REPLY_MESSAGE_TO_CLIENT: i32 = 326;
}

/// `MixAll.REPLY_TOPIC_POSTFIX`.
pub const REPLY_TOPIC_POSTFIX: &str = "REPLY_TOPIC";

/// `MessageConst.PROPERTY_MESSAGE_REPLY_TO_CLIENT`: the requester's client id.
pub const PROPERTY_REPLY_TO_CLIENT: &str = "REPLY_TO_CLIENT";
/// `MessageConst.PROPERTY_CORRELATION_ID`: matches a reply to its request.
pub const PROPERTY_CORRELATION_ID: &str = "CORRELATION_ID";
/// `MessageConst.PROPERTY_PUSH_REPLY_TIME`: when the broker pushed the reply (ms).
pub const PROPERTY_PUSH_REPLY_TIME: &str = "PUSH_REPLY_TIME";

/// How long the push waits for the requester's answer (RocketMQ's
/// `Broker2Client.callClient`: `invokeSync` with 10 s).
pub const PUSH_REPLY_TIMEOUT: Duration = super::call_client::CALL_CLIENT_TIMEOUT;

/// The reply topic of a cluster, `<cluster>_REPLY_TOPIC` (`MixAll.getReplyTopic`).
pub fn reply_topic(cluster: &str) -> String {
    format!("{cluster}_{REPLY_TOPIC_POSTFIX}")
}

/// WARN lines about replies that reached no requester: one per requester
/// address (or missing property) per 10 s.
static REPLY_WARN: WarnLimiter = WarnLimiter::new(Duration::from_secs(10));

/// Why a reply was not delivered: the remark of the answer.
struct NotPushed(String);

impl Broker {
    /// Create `<cluster>_REPLY_TOPIC` (1 read and 1 write queue, read-write)
    /// when missing, as RocketMQ's `TopicConfigManager` does at every start.
    pub(super) fn ensure_reply_topic(&self) -> Result<(), ferromq_engine::Error> {
        let topic = reply_topic(&self.cfg.broker_cluster_name);
        if self.store.topic_config(&topic).is_some() {
            return Ok(());
        }
        let mut tc = ferromq_engine::TopicConfig::new(&topic, 1);
        tc.perm = 6;
        self.store.upsert_topic(tc)?;
        tracing::info!(%topic, "request-reply topic created");
        self.register_now.notify_one();
        Ok(())
    }

    /// SEND_REPLY_MESSAGE / SEND_REPLY_MESSAGE_V2: push the reply to its
    /// requester (on the runtime: the wait for its answer holds no thread),
    /// then store it on `on` (the send pool) through the send path, then
    /// answer from the push. See the module docs.
    pub(super) async fn reply(self: &Arc<Self>, req: Request<'_>) -> HandlerResult {
        let h = SendHeader::parse(&req.cmd.ext_fields)?;
        if let Err(refused) = self.check_send(&h) {
            return Ok(refused);
        }
        let props =
            match MessageProperties::decode(h.properties.as_deref().unwrap_or("").as_bytes()) {
                Ok(p) => p,
                Err(e) => {
                    return Ok(RemotingCommand::error(
                        response::MESSAGE_ILLEGAL,
                        format!("bad properties: {e}"),
                    ))
                }
            };
        let pushed = self
            .push_reply(&h, &props, &req.cmd.body, req.conn.peer)
            .await;
        let asked_queue = h.queue_id;
        if !self.cfg.store_reply_message_enable {
            return Ok(reply_answer(pushed, None, asked_queue));
        }
        let stored = self
            .store_send(req.on, h, req.cmd.body, req.conn.peer, false, false)
            .await?;
        Ok(reply_answer(pushed, Some(stored), asked_queue))
    }

    /// RocketMQ's `pushReplyMessage`: find the requester's connection by
    /// its client id and send it the reply; `Err` says why it did not take it.
    async fn push_reply(
        &self,
        h: &SendHeader,
        props: &MessageProperties,
        body: &[u8],
        born: SocketAddr,
    ) -> Result<(), NotPushed> {
        let Some(requester) = props.get(PROPERTY_REPLY_TO_CLIENT) else {
            return Err(self.not_pushed(
                0,
                format!("reply message properties[{PROPERTY_REPLY_TO_CLIENT}] is null"),
            ));
        };
        if props.get(PROPERTY_CORRELATION_ID).is_none() {
            return Err(self.not_pushed(
                1,
                format!(
                    "reply message properties[{PROPERTY_CORRELATION_ID}] is null: \
                     no requester can match it, not pushed to <{requester}>"
                ),
            ));
        }
        let Some(conn) = self.clients.producer_by_client_id(requester) else {
            return Err(self.not_pushed(
                key_of(requester),
                format!("push reply message fail, channel of <{requester}> not found."),
            ));
        };
        let push = self.push_request(h, props, body, born);
        match conn.invoke(push, PUSH_REPLY_TIMEOUT).await {
            Ok(answer) if answer.code == response::SUCCESS => Ok(()),
            Ok(answer) => {
                if let Some(suppressed) = REPLY_WARN.check_key(key_of(requester)) {
                    tracing::warn!(
                        requester,
                        peer = %conn.peer,
                        code = answer.code,
                        remark = ?answer.remark,
                        suppressed,
                        "push reply message to the requester: it answered a failure"
                    );
                }
                Err(NotPushed(format!("push reply message to {requester}fail.")))
            }
            Err(e) => Err(self.push_failed(requester, &conn, e)),
        }
    }

    /// The PUSH_REPLY_MESSAGE_TO_CLIENT request: `ReplyMessageRequestHeader`
    /// as RocketMQ's `pushReplyMessage` fills it, the body as sent.
    fn push_request(
        &self,
        h: &SendHeader,
        props: &MessageProperties,
        body: &[u8],
        born: SocketAddr,
    ) -> RemotingCommand {
        let mut props = props.clone();
        props.insert(PROPERTY_PUSH_REPLY_TIME, crate::util::now_ms().to_string());
        let mut encoded = Vec::new();
        props.encode_into(&mut encoded);
        RemotingCommand::request(code::PUSH_REPLY_MESSAGE_TO_CLIENT)
            .with_ext("producerGroup", &h.producer_group)
            .with_ext("topic", &h.topic)
            .with_ext("defaultTopic", &h.default_topic)
            .with_ext("defaultTopicQueueNums", h.default_topic_queue_nums)
            .with_ext("queueId", h.queue_id)
            .with_ext("sysFlag", h.sys_flag)
            .with_ext("bornTimestamp", h.born_timestamp)
            .with_ext("flag", h.flag)
            .with_ext("properties", String::from_utf8_lossy(&encoded))
            .with_ext("reconsumeTimes", h.reconsume_times)
            .with_ext("unitMode", h.unit_mode)
            .with_ext("bornHost", born)
            .with_ext("storeHost", &self.broker_addr)
            .with_ext("storeTimestamp", crate::util::now_ms())
            .with_body(body.to_vec())
    }

    /// A reply that goes to no requester: logged (rate-limited by `key`).
    fn not_pushed(&self, key: u64, remark: String) -> NotPushed {
        if let Some(suppressed) = REPLY_WARN.check_key(key) {
            let kept = if self.cfg.store_reply_message_enable {
                "stored in the reply topic"
            } else {
                "not stored: storeReplyMessageEnable=false"
            };
            tracing::warn!(
                suppressed,
                "{remark} (the reply is pushed to nobody; {kept})"
            );
        }
        NotPushed(remark)
    }

    /// The push to a connected requester failed: it closed, its queue is
    /// full, or it did not answer in time.
    fn push_failed(&self, requester: &str, conn: &ConnInfo, e: CallError) -> NotPushed {
        if let Some(suppressed) = REPLY_WARN.check_key(key_of(requester)) {
            tracing::warn!(
                requester,
                peer = %conn.peer,
                error = %e,
                suppressed,
                "push reply message to the requester failed"
            );
        }
        NotPushed(format!("push reply message to {requester}fail."))
    }
}

/// A rate-limit key for a requester id.
fn key_of(requester: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    requester.hash(&mut h);
    h.finish() | 2
}

/// Whether a put's answer means the reply is stored (RocketMQ's reply
/// `handlePutMessageResult`: PUT_OK and the flush or slave timeouts).
fn stored_ok(code: i32) -> bool {
    matches!(
        code,
        response::SUCCESS
            | response::FLUSH_DISK_TIMEOUT
            | response::FLUSH_SLAVE_TIMEOUT
            | response::SLAVE_NOT_AVAILABLE
    )
}

/// The answer to the responder (RocketMQ's `handlePushReplyResult` then
/// `handlePutMessageResult`): the push decides the code, the put the
/// `msgId`, `queueId` and `queueOffset` (`stored` is `None` when
/// `storeReplyMessageEnable=false`).
fn reply_answer(
    pushed: Result<(), NotPushed>,
    stored: Option<RemotingCommand>,
    asked_queue: i32,
) -> RemotingCommand {
    let mut r = match pushed {
        Ok(()) => RemotingCommand::response(response::SUCCESS, None)
            .with_ext("msgId", "0")
            .with_ext("queueId", asked_queue.max(0))
            .with_ext("queueOffset", 0),
        Err(NotPushed(remark)) => RemotingCommand::error(response::SYSTEM_ERROR, remark),
    };
    r = r
        .with_ext("MSG_REGION", "DefaultRegion")
        .with_ext("TRACE_ON", "true");
    let Some(stored) = stored else {
        return r;
    };
    if stored_ok(stored.code) {
        for k in ["msgId", "queueId", "queueOffset"] {
            if let Some(v) = stored.ext_fields.opt_str(k) {
                r.ext_fields.insert(k, v.to_string());
            }
        }
    } else if let Some(suppressed) = REPLY_WARN.check_key(3) {
        tracing::warn!(
            code = stored.code,
            remark = ?stored.remark,
            suppressed,
            "process reply message: the reply was not stored"
        );
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(code: i32) -> RemotingCommand {
        RemotingCommand::response(code, None)
            .with_ext("msgId", "ABC")
            .with_ext("queueId", 0)
            .with_ext("queueOffset", 7)
    }

    #[test]
    fn the_push_decides_the_code_and_the_put_the_ids() {
        let r = reply_answer(Ok(()), Some(put(response::SUCCESS)), -1);
        assert_eq!(r.code, response::SUCCESS);
        assert_eq!(r.ext_fields.opt_str("msgId"), Some("ABC"));
        assert_eq!(r.ext_fields.opt_str("queueOffset"), Some("7"));
        let r = reply_answer(Ok(()), Some(put(response::SYSTEM_ERROR)), 2);
        assert_eq!(r.code, response::SUCCESS);
        assert_eq!(r.ext_fields.opt_str("msgId"), Some("0"));
        assert_eq!(r.ext_fields.opt_str("queueId"), Some("2"));
        let r = reply_answer(
            Err(NotPushed("gone".into())),
            Some(put(response::FLUSH_DISK_TIMEOUT)),
            0,
        );
        assert_eq!(r.code, response::SYSTEM_ERROR);
        assert_eq!(r.remark.as_deref(), Some("gone"));
        assert_eq!(r.ext_fields.opt_str("msgId"), Some("ABC"));
        // storeReplyMessageEnable=false: the push's answer alone.
        let r = reply_answer(Ok(()), None, 1);
        assert_eq!(r.code, response::SUCCESS);
        assert_eq!(r.ext_fields.opt_str("msgId"), Some("0"));
        assert_eq!(r.ext_fields.opt_str("queueOffset"), Some("0"));
    }

    #[test]
    fn reply_topic_name() {
        assert_eq!(reply_topic("DefaultCluster"), "DefaultCluster_REPLY_TOPIC");
    }
}
