//! QUERY_ASSIGNMENT (400) and SET_MESSAGE_REQUEST_MODE (401): server-side
//! rebalance, RocketMQ 5's `QueryAssignmentProcessor` for a broker without
//! POP.
//!
//! A 5.x client that rebalances on the broker (`clientRebalance=false`)
//! sends QUERY_ASSIGNMENT with a JSON `QueryAssignmentRequestBody` and gets
//! back the queues it should pull as a `QueryAssignmentResponseBody`:
//!
//! ```json
//! {"messageQueueAssignments":[{"messageQueue":{"brokerName":"b","queueId":0,"topic":"T"},"mode":"PULL"}]}
//! ```
//!
//! As `QueryAssignmentProcessor.doLoadBalance` with
//! `serverLoadBalancerEnable=true` (its default):
//!
//! - CLUSTERING: the topic's queues, sorted as `MessageQueue.compareTo`
//!   (topic, broker name, queue id), are divided among the group's online
//!   client ids, sorted, by the named strategy: `AVG`
//!   ([`allocate_averagely`], `AllocateMessageQueueAveragely`) or
//!   `AVG_BY_CIRCLE` ([`allocate_by_circle`]). A client id not in the group
//!   gets an empty set. "No answer" (Java's `null`: the body holds no
//!   `messageQueueAssignments`, code SUCCESS, and the client skips its
//!   update) comes for an unknown topic, a group with no client online, an
//!   unknown strategy name, an empty client id and a topic with no readable
//!   queue (where Java's strategy throws and the processor returns `null`).
//! - BROADCASTING: every queue of the topic (no answer for an unknown topic).
//!
//! The queues are this broker's `readQueueNums` queues of the topic when the
//! topic is readable. RocketMQ takes them from the name server's route, so
//! there they span every broker of the cluster; a ferromq broker answers
//! for its own queues, which for a client that asks each broker (as
//! `RebalanceImpl.queryAssignment` picks one broker of the topic) is the
//! whole topic only when the topic lives on one broker. LMQ topics
//! (`%LMQ%`) are not special here: ferromq has no LMQ.
//!
//! SET_MESSAGE_REQUEST_MODE accepts `PULL` and refuses `POP` (SYSTEM_ERROR,
//! this broker serves PULL only) and, as Java, any retry topic
//! (NO_PERMISSION). Nothing is stored: PULL is the only mode ferromq
//! serves and the default of every topic and group, so a stored PULL
//! would answer exactly as none does (and a table of names sent by clients
//! would only grow). RocketMQ persists its table in `messageRequestMode.json`;
//! ferromq writes no such file.
//!
//! Neither request names a resource for the ACL (as in RocketMQ's
//! `PlainAccessValidator`): with `aclEnable=true` a signed request of any
//! account passes.

use std::sync::Arc;

use serde::Deserialize;

use super::send_back::RETRY_GROUP_TOPIC_PREFIX;
use super::{Broker, HandlerResult, Request};
use crate::remoting::{response, RemotingCommand};

/// The request codes (RocketMQ's `RequestCode`).
pub mod code {
    /// QUERY_ASSIGNMENT.
    pub const QUERY_ASSIGNMENT: i32 = 400;
    /// SET_MESSAGE_REQUEST_MODE.
    pub const SET_MESSAGE_REQUEST_MODE: i32 = 401;
}

/// `AllocateMessageQueueAveragely.getName()`.
pub const STRATEGY_AVG: &str = "AVG";
/// `AllocateMessageQueueAveragelyByCircle.getName()`.
pub const STRATEGY_AVG_BY_CIRCLE: &str = "AVG_BY_CIRCLE";

/// The permission bit of a readable topic (`PermName.PERM_READ`).
const PERM_READ: u32 = 4;

/// `QueryAssignmentRequestBody`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryAssignmentRequestBody {
    topic: Option<String>,
    consumer_group: Option<String>,
    client_id: Option<String>,
    strategy_name: Option<String>,
    message_model: Option<String>,
}

/// `SetMessageRequestModeRequestBody`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SetMessageRequestModeRequestBody {
    topic: Option<String>,
    consumer_group: Option<String>,
    mode: Option<String>,
    #[allow(dead_code)]
    pop_share_queue_num: Option<i64>,
}

/// The body `bytes` as `T`, else SYSTEM_ERROR naming `what` and why (Java's
/// `RemotingSerializable.decode` throws, answered SYSTEM_ERROR).
fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8], what: &str) -> Result<T, RemotingCommand> {
    if bytes.is_empty() {
        return Err(RemotingCommand::error(
            response::SYSTEM_ERROR,
            format!("{what}: the request has no body"),
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| {
        RemotingCommand::error(
            response::SYSTEM_ERROR,
            format!("{what}: the body is not UTF-8"),
        )
    })?;
    serde_json::from_str(text).map_err(|e| {
        RemotingCommand::error(
            response::SYSTEM_ERROR,
            format!("{what}: malformed JSON body: {e}"),
        )
    })
}

/// A required, non-empty string field, else SYSTEM_ERROR naming it.
fn required<'a>(
    v: &'a Option<String>,
    what: &str,
    field: &str,
) -> Result<&'a str, RemotingCommand> {
    match v.as_deref() {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(RemotingCommand::error(
            response::SYSTEM_ERROR,
            format!("{what}: {field} is missing"),
        )),
    }
}

/// `AllocateMessageQueueAveragely.allocate`: the indexes into `mq_count`
/// sorted queues that client `index` of `cid_count` sorted clients gets
/// (consecutive ranges; the first `mq_count % cid_count` clients get one
/// more). `cid_count` must be > 0 and `index < cid_count`.
pub fn allocate_averagely(mq_count: usize, cid_count: usize, index: usize) -> Vec<usize> {
    let modulo = mq_count % cid_count;
    let average = if mq_count <= cid_count {
        1
    } else if modulo > 0 && index < modulo {
        mq_count / cid_count + 1
    } else {
        mq_count / cid_count
    };
    let start = if modulo > 0 && index < modulo {
        index * average
    } else {
        index * average + modulo
    };
    // Java: Math.min(averageSize, mqAll.size() - startIndex), which is <= 0
    // (no queue) when the clients outnumber the queues.
    let range = average.min(mq_count.saturating_sub(start));
    (start..start + range).collect()
}

/// `AllocateMessageQueueAveragelyByCircle.allocate`: every queue `i >= index`
/// with `i % cid_count == index`.
pub fn allocate_by_circle(mq_count: usize, cid_count: usize, index: usize) -> Vec<usize> {
    (index..mq_count)
        .filter(|i| i % cid_count == index)
        .collect()
}

/// One queue of the answer.
struct Queue<'a> {
    topic: &'a str,
    broker_name: &'a str,
    queue_id: u32,
}

/// `QueryAssignmentResponseBody` as fastjson writes it: `None` (Java's null
/// set) as `{}`, else the assignments in queue order, each with mode PULL
/// and no `attachments` (null in Java, so not written).
fn response_body(queues: Option<&[Queue<'_>]>) -> Vec<u8> {
    let Some(queues) = queues else {
        return b"{}".to_vec();
    };
    let items: Vec<serde_json::Value> = queues
        .iter()
        .map(|q| {
            serde_json::json!({
                "messageQueue": {
                    "brokerName": q.broker_name,
                    "queueId": q.queue_id,
                    "topic": q.topic,
                },
                "mode": "PULL",
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({ "messageQueueAssignments": items })).unwrap_or_default()
}

impl Broker {
    /// QUERY_ASSIGNMENT: the queues of a topic this client should pull (see
    /// the [module docs](self)).
    pub(super) async fn query_assignment(self: &Arc<Self>, req: Request<'_>) -> HandlerResult {
        const WHAT: &str = "QueryAssignmentRequestBody";
        let body: QueryAssignmentRequestBody = match decode(&req.cmd.body, WHAT) {
            Ok(b) => b,
            Err(refusal) => return Ok(refusal),
        };
        let fields = (|| {
            let topic = required(&body.topic, WHAT, "topic")?;
            let group = required(&body.consumer_group, WHAT, "consumerGroup")?;
            let model = required(&body.message_model, WHAT, "messageModel")?;
            let broadcasting = match model {
                "BROADCASTING" => true,
                "CLUSTERING" => false,
                other => {
                    return Err(RemotingCommand::error(
                        response::SYSTEM_ERROR,
                        format!(
                            "{WHAT}: messageModel {:?} is neither CLUSTERING nor BROADCASTING",
                            ferromq_engine::message::name_for_message(other)
                        ),
                    ))
                }
            };
            Ok((topic, group, broadcasting))
        })();
        let (topic, group, broadcasting) = match fields {
            Ok(f) => f,
            Err(refusal) => return Ok(refusal),
        };
        let client_id = body.client_id.as_deref().unwrap_or("");
        let strategy = body.strategy_name.as_deref().unwrap_or("");

        // Java's getTopicSubscribeInfo: null for an unknown topic, no queue
        // of a broker whose queues are not readable.
        let queue_count = self.store.topic_config(topic).map(|tc| {
            if tc.perm & PERM_READ == 0 {
                0
            } else {
                tc.read_queue_nums
            }
        });
        let broker_name = self.cfg.broker_name.as_str();
        let all: Option<Vec<Queue<'_>>> = queue_count.map(|n| {
            (0..n)
                .map(|queue_id| Queue {
                    topic,
                    broker_name,
                    queue_id,
                })
                .collect()
        });
        let answer: Option<Vec<Queue<'_>>> = match all {
            None => None,
            Some(all) if broadcasting => Some(all),
            Some(all) => {
                let allocate = match strategy {
                    STRATEGY_AVG => {
                        Some(allocate_averagely as fn(usize, usize, usize) -> Vec<usize>)
                    }
                    STRATEGY_AVG_BY_CIRCLE => Some(allocate_by_circle as _),
                    _ => None,
                };
                let cids = self.clients.consumer_ids(group);
                match allocate {
                    // Java: unsupported strategy, or the strategy's check
                    // throws (empty client id, no queue, no client): null.
                    None => None,
                    Some(_) if client_id.is_empty() || all.is_empty() || cids.is_empty() => None,
                    Some(allocate) => {
                        let mut cids = cids;
                        cids.sort();
                        Some(match cids.iter().position(|c| c == client_id) {
                            None => Vec::new(),
                            Some(index) => {
                                let picked = allocate(all.len(), cids.len(), index);
                                let mut all: Vec<Option<Queue<'_>>> =
                                    all.into_iter().map(Some).collect();
                                picked.into_iter().filter_map(|i| all[i].take()).collect()
                            }
                        })
                    }
                }
            }
        };
        tracing::debug!(
            topic = %ferromq_engine::message::name_for_message(topic),
            group = %ferromq_engine::message::name_for_message(group),
            client = %ferromq_engine::message::name_for_message(client_id),
            queues = answer.as_ref().map(Vec::len),
            "QUERY_ASSIGNMENT answered"
        );
        Ok(RemotingCommand::success().with_body(response_body(answer.as_deref())))
    }

    /// SET_MESSAGE_REQUEST_MODE: PULL is accepted (and, being the default,
    /// not stored), POP refused; retry topics refused as Java refuses them
    /// (see the [module docs](self)).
    pub(super) async fn set_message_request_mode(
        self: &Arc<Self>,
        req: Request<'_>,
    ) -> HandlerResult {
        const WHAT: &str = "SetMessageRequestModeRequestBody";
        let body: SetMessageRequestModeRequestBody = match decode(&req.cmd.body, WHAT) {
            Ok(b) => b,
            Err(refusal) => return Ok(refusal),
        };
        let checked = (|| {
            let topic = required(&body.topic, WHAT, "topic")?;
            if topic.starts_with(RETRY_GROUP_TOPIC_PREFIX) {
                return Err(RemotingCommand::error(
                    response::NO_PERMISSION,
                    "retry topic is not allowed to set mode",
                ));
            }
            required(&body.consumer_group, WHAT, "consumerGroup")?;
            // Java's field defaults to PULL.
            match body.mode.as_deref().unwrap_or("PULL") {
                "PULL" => Ok(()),
                "POP" => Err(RemotingCommand::error(
                    response::SYSTEM_ERROR,
                    "message request mode POP is not supported: this broker serves PULL only",
                )),
                other => Err(RemotingCommand::error(
                    response::SYSTEM_ERROR,
                    format!(
                        "{WHAT}: mode {:?} is neither PULL nor POP",
                        ferromq_engine::message::name_for_message(other)
                    ),
                )),
            }
        })();
        Ok(match checked {
            Ok(()) => RemotingCommand::success(),
            Err(refusal) => refusal,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `AllocateMessageQueueAveragely` results, worked from the Java code:
    /// (queues, clients, per client index the queue indexes).
    #[test]
    fn averagely_matches_java() {
        let table: &[(usize, usize, &[&[usize]])] = &[
            (4, 2, &[&[0, 1], &[2, 3]]),
            (4, 3, &[&[0, 1], &[2], &[3]]),
            (8, 3, &[&[0, 1, 2], &[3, 4, 5], &[6, 7]]),
            (2, 3, &[&[0], &[1], &[]]),
            (5, 5, &[&[0], &[1], &[2], &[3], &[4]]),
            (1, 4, &[&[0], &[], &[], &[]]),
            (10, 4, &[&[0, 1, 2], &[3, 4, 5], &[6, 7], &[8, 9]]),
            (
                16,
                1,
                &[&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]],
            ),
        ];
        for (mqs, cids, want) in table {
            for (index, want) in want.iter().enumerate() {
                assert_eq!(
                    allocate_averagely(*mqs, *cids, index),
                    want.to_vec(),
                    "{mqs} queues, {cids} clients, client {index}"
                );
            }
        }
    }

    #[test]
    fn by_circle_matches_java() {
        assert_eq!(allocate_by_circle(8, 3, 0), vec![0, 3, 6]);
        assert_eq!(allocate_by_circle(8, 3, 1), vec![1, 4, 7]);
        assert_eq!(allocate_by_circle(8, 3, 2), vec![2, 5]);
        assert_eq!(allocate_by_circle(2, 3, 2), Vec::<usize>::new());
    }

    #[test]
    fn body_forms() {
        assert_eq!(response_body(None), b"{}".to_vec());
        let q = [Queue {
            topic: "T",
            broker_name: "b",
            queue_id: 3,
        }];
        let v: serde_json::Value = serde_json::from_slice(&response_body(Some(&q))).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"messageQueueAssignments":[
                {"messageQueue":{"brokerName":"b","queueId":3,"topic":"T"},"mode":"PULL"}]})
        );
        assert_eq!(
            response_body(Some(&[])),
            br#"{"messageQueueAssignments":[]}"#.to_vec()
        );
    }

    /// Under ACL these name no resource: a signed request of any account
    /// passes, an unsigned one is refused.
    #[test]
    fn acl_needs_a_signed_request_only() {
        let rules = crate::acl::AclRules::from_yaml(
            "accounts:\n  - accessKey: RocketMQ\n    secretKey: 12345678\n    \
             defaultTopicPerm: DENY\n    defaultGroupPerm: DENY\n",
        );
        let peer: std::net::SocketAddr = "127.0.0.1:40000".parse().unwrap();
        for c in [code::QUERY_ASSIGNMENT, code::SET_MESSAGE_REQUEST_MODE] {
            let body = br#"{"topic":"T","consumerGroup":"G"}"#.to_vec();
            let unsigned = RemotingCommand::request(c)
                .with_ext("x", "y")
                .with_body(body.clone());
            let r = crate::broker::dispatch::acl_refusal(&rules, &unsigned, peer);
            assert_eq!(r.map(|r| r.code), Some(response::SYSTEM_ERROR), "code {c}");
            let mut signed = RemotingCommand::request(c).with_body(body);
            signed.ext_fields.insert("AccessKey", "RocketMQ");
            let content =
                crate::acl::sign::combine_request_content(&signed.ext_fields.0, &signed.body);
            signed
                .ext_fields
                .insert("Signature", crate::acl::sign::sign(&content, "12345678"));
            assert!(
                crate::broker::dispatch::acl_refusal(&rules, &signed, peer).is_none(),
                "code {c}"
            );
        }
    }
}
