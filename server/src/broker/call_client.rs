//! Admin requests the broker answers by asking a consumer over the consumer's
//! own connection and passing its answer back (RocketMQ's
//! `AdminBrokerProcessor.callConsumer` and `Broker2Client.getConsumeStatus`):
//!
//! - GET_CONSUMER_RUNNING_INFO 307 (mqadmin `consumerStatus`): the client's
//!   `ConsumerRunningInfo`, relayed unchanged;
//! - CONSUME_MESSAGE_DIRECTLY 309 (mqadmin `queryMsgById -g -d`): the broker
//!   reads the message named by the offset msgId, sends it to the client with
//!   the request, and relays the client's `ConsumeMessageDirectlyResult`;
//! - INVOKE_BROKER_TO_GET_CONSUMER_STATUS 223 (mqadmin `getConsumerStatus`):
//!   GET_CONSUMER_STATUS_FROM_CLIENT 221 goes to each consumer of the group
//!   (or the one named), and the answer's `GetConsumerStatusBody` gathers
//!   their `messageQueueTable`s under their client ids.
//!
//! The calls go through [`crate::remoting::ConnInfo::invoke`]: bounded per
//! connection and in time, so a client that never answers (the C++ client
//! does not answer 309 or 221) costs a timeout, not a leak. The C++ client
//! answers 307; rocketmq-client-rust answers all three; ali-ons none.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::{Broker, HandlerResult, Request};
use crate::remoting::{json, response, CallError, ConnInfo, RemotingCommand};

/// Request codes of this module.
pub mod code {
    /// GET_CONSUMER_RUNNING_INFO: admin to broker, relayed to the client.
    pub const GET_CONSUMER_RUNNING_INFO: i32 = 307;
    /// CONSUME_MESSAGE_DIRECTLY: admin to broker, relayed to the client with
    /// the message as the body.
    pub const CONSUME_MESSAGE_DIRECTLY: i32 = 309;
}

/// RocketMQ's `ResponseCode.CONSUME_MSG_TIMEOUT`: the client did not answer
/// in time.
pub const CONSUME_MSG_TIMEOUT: i32 = 207;

/// How long a relayed call waits for the client (RocketMQ's
/// `Broker2Client.callClient`: 10 s).
pub const CALL_CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long GET_CONSUMER_STATUS_FROM_CLIENT waits for each client
/// (RocketMQ's `getConsumeStatus`: 5 s); the clients are asked at once.
pub const CONSUMER_STATUS_TIMEOUT: Duration = Duration::from_secs(5);

/// Header fields of the admin's request that are its own signature, not
/// the client's business: not passed on.
const NOT_RELAYED: &[&str] = &["AccessKey", "Signature", "SecurityToken"];

/// The relayed request: `code`, the admin's header fields (less its
/// signature) and `body`.
fn relayed(code: i32, from: &RemotingCommand, body: Vec<u8>) -> RemotingCommand {
    let mut req = RemotingCommand::request(code);
    for (k, v) in from.ext_fields.iter() {
        if !NOT_RELAYED.contains(&k) {
            req = req.with_ext(k, v);
        }
    }
    req.with_body(body)
}

impl Broker {
    /// The connection of `client_id` among the group's consumers.
    fn consumer_conn(&self, group: &str, client_id: &str) -> Option<Arc<ConnInfo>> {
        self.clients
            .consumer_channels(group)
            .into_iter()
            .find(|(id, _, _)| id == client_id)
            .map(|(_, _, conn)| conn)
    }

    /// RocketMQ's `callConsumer`: relay `req` (as `code`, with `body`) to the
    /// consumer `clientId` of `consumerGroup` and answer with its response.
    async fn call_consumer(&self, req: &Request<'_>, code: i32, body: Vec<u8>) -> HandlerResult {
        let h = &req.cmd.ext_fields;
        let group = h.get_str("consumerGroup")?;
        let client_id = h.get_str("clientId")?;
        let Some(conn) = self.consumer_conn(group, client_id) else {
            return Ok(RemotingCommand::error(
                response::SYSTEM_ERROR,
                format!("The Consumer <{group}> <{client_id}> not online"),
            ));
        };
        let call = relayed(code, &req.cmd, body);
        Ok(match conn.invoke(call, CALL_CLIENT_TIMEOUT).await {
            Ok(mut answer) => {
                // The server sets opaque and the response flag on the way out.
                answer.flag = 0;
                answer
            }
            Err(e @ CallError::Timeout(_)) => RemotingCommand::error(
                CONSUME_MSG_TIMEOUT,
                format!("consumer <{group}> <{client_id}> Timeout: {e}"),
            ),
            Err(e) => RemotingCommand::error(
                response::SYSTEM_ERROR,
                format!("invoke consumer <{group}> <{client_id}> Exception: {e}"),
            ),
        })
    }

    /// GET_CONSUMER_RUNNING_INFO (header `consumerGroup`, `clientId`,
    /// `jstackEnable`): the client's `ConsumerRunningInfo`.
    pub(super) async fn consumer_running_info(self: &Arc<Self>, req: Request<'_>) -> HandlerResult {
        self.call_consumer(&req, code::GET_CONSUMER_RUNNING_INFO, Vec::new())
            .await
    }

    /// CONSUME_MESSAGE_DIRECTLY (header `consumerGroup`, `clientId`, `msgId`):
    /// the message at the offset msgId's commitlog offset goes to the client
    /// with the request (`brokerName` set to this broker's), and the client's
    /// `ConsumeMessageDirectlyResult` comes back. A msgId that is not an
    /// offset msgId, or names no message here, is refused before the client
    /// is asked (RocketMQ would send an empty body).
    pub(super) async fn consume_message_directly(
        self: &Arc<Self>,
        mut req: Request<'_>,
    ) -> HandlerResult {
        let msg_id = req.cmd.ext_fields.get_str("msgId")?.to_string();
        let Ok((_, offset)) = ferromq_engine::message::decode_offset_msg_id(&msg_id) else {
            return Ok(RemotingCommand::error(
                response::SYSTEM_ERROR,
                format!("msgId {msg_id} is not an offset message id (32 hex digits of store host and commitlog offset)"),
            ));
        };
        let record = self
            .run_on(req.on, "consume message directly", move |b| {
                if offset < b.store.commit_log_min_offset()
                    || offset >= b.store.commit_log_max_offset()
                {
                    return Ok(None);
                }
                b.store.read_record(offset).map(|r| r.map(|b| b.to_vec()))
            })
            .await?;
        let body = match record {
            Ok(Some(body)) => body,
            Ok(None) => {
                return Ok(RemotingCommand::error(
                    response::SYSTEM_ERROR,
                    format!("can not find message by the offset, {offset}"),
                ))
            }
            Err(e) => return Ok(super::store_error_response(&e)),
        };
        req.cmd
            .ext_fields
            .insert("brokerName", &self.cfg.broker_name);
        self.call_consumer(&req, code::CONSUME_MESSAGE_DIRECTLY, body)
            .await
    }

    /// INVOKE_BROKER_TO_GET_CONSUMER_STATUS (header `topic`, `group`, optional
    /// `clientAddr` naming one client id): each (or that) consumer of the
    /// group is asked GET_CONSUMER_STATUS_FROM_CLIENT, all at once, and the
    /// answer is a `GetConsumerStatusBody` whose `consumerTable` maps each
    /// client id that answered to its `messageQueueTable` (a fastjson
    /// object-key map). Clients that fail or time out are left out, as in
    /// RocketMQ.
    pub(super) async fn consumer_status(self: &Arc<Self>, req: Request<'_>) -> HandlerResult {
        let h = &req.cmd.ext_fields;
        let topic = h.get_str("topic")?.to_string();
        let group = h.get_str("group")?.to_string();
        let only = h.opt_str("clientAddr").filter(|s| !s.is_empty());
        let consumers = self.clients.consumer_channels(&group);
        if consumers.is_empty() {
            return Ok(RemotingCommand::error(
                response::SYSTEM_ERROR,
                format!("No Any Consumer online in the consumer group: [{group}]"),
            ));
        }
        let mut asks = tokio::task::JoinSet::new();
        for (client_id, _, conn) in consumers {
            if only.is_some_and(|o| o != client_id) {
                continue;
            }
            let call =
                RemotingCommand::request(super::ops_mut::code::GET_CONSUMER_STATUS_FROM_CLIENT)
                    .with_ext("topic", &topic)
                    .with_ext("group", &group);
            asks.spawn(async move {
                let answer = conn.invoke(call, CONSUMER_STATUS_TIMEOUT).await;
                (client_id, answer)
            });
        }
        let mut table = Vec::new();
        while let Some(done) = asks.join_next().await {
            let Ok((client_id, answer)) = done else {
                continue;
            };
            match answer.map(|a| (a.code, a.body)) {
                Ok((response::SUCCESS, body)) if !body.is_empty() => {
                    match client_queue_table(&body) {
                        Ok(t) => table.push((client_id, t)),
                        Err(e) => {
                            tracing::warn!(%client_id, %group, "[get-consumer-status] the client's answer is not a GetConsumerStatusBody: {e}")
                        }
                    }
                }
                Ok((code, _)) => {
                    tracing::info!(%client_id, %group, code, "[get-consumer-status] the client answered without a status")
                }
                Err(e) => {
                    tracing::info!(%client_id, %group, "[get-consumer-status] no status from the client: {e}")
                }
            }
        }
        table.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(RemotingCommand::success().with_body(consumer_status_body(&table).into_bytes()))
    }
}

/// A client's `GetConsumerStatusBody.messageQueueTable`: (MessageQueue as
/// JSON, offset) pairs.
fn client_queue_table(body: &[u8]) -> Result<Vec<(Value, i64)>, String> {
    let text = std::str::from_utf8(body).map_err(|e| e.to_string())?;
    let v = json::parse_fastjson(text)?;
    let Some(Value::Object(t)) = v.get("messageQueueTable") else {
        return Ok(Vec::new());
    };
    t.iter()
        .map(|(k, off)| {
            let mq: Value = serde_json::from_str(k).map_err(|e| format!("queue key {k}: {e}"))?;
            let off = off.as_i64().ok_or("an offset is not a number")?;
            Ok((mq, off))
        })
        .collect()
}

/// The `GetConsumerStatusBody` of the broker's answer: an empty
/// `messageQueueTable` and the clients' tables under their ids.
fn consumer_status_body(table: &[(String, Vec<(Value, i64)>)]) -> String {
    let mut s = String::from("{\"consumerTable\":{");
    for (i, (client_id, queues)) in table.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&json::string(client_id));
        s.push(':');
        s.push_str(&json::object_key_map(queues.iter().map(|(k, v)| (k, v))));
    }
    s.push_str("},\"messageQueueTable\":{}}");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_body_round_trips_through_the_fastjson_reader() {
        let client = br#"{"messageQueueTable":{{"brokerName":"b","queueId":1,"topic":"T"}:42}}"#;
        let t = client_queue_table(client).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].1, 42);
        let body = consumer_status_body(&[("c1".into(), t)]);
        assert_eq!(
            body,
            r#"{"consumerTable":{"c1":{{"brokerName":"b","queueId":1,"topic":"T"}:42}},"messageQueueTable":{}}"#
        );
        let back = json::parse_fastjson(&body).unwrap();
        let c1 = back["consumerTable"]["c1"].as_object().unwrap();
        assert_eq!(c1.len(), 1);
        assert_eq!(c1.values().next().unwrap().as_i64(), Some(42));
    }

    #[test]
    fn a_malformed_client_answer_is_an_error_not_a_panic() {
        assert!(client_queue_table(b"{\"messageQueueTable\":{{\"x\":1}:\"no\"}}").is_err());
        assert!(client_queue_table(b"not json").is_err());
        assert!(client_queue_table(&[0xff, 0xfe]).is_err());
        assert_eq!(client_queue_table(b"{}").unwrap().len(), 0);
    }

    #[test]
    fn the_admins_signature_is_not_relayed() {
        let admin = RemotingCommand::request(307)
            .with_ext("consumerGroup", "g")
            .with_ext("clientId", "c")
            .with_ext("AccessKey", "ak")
            .with_ext("Signature", "sig");
        let r = relayed(307, &admin, Vec::new());
        assert_eq!(r.ext_fields.opt_str("consumerGroup"), Some("g"));
        assert_eq!(r.ext_fields.opt_str("AccessKey"), None);
        assert_eq!(r.ext_fields.opt_str("Signature"), None);
    }
}
