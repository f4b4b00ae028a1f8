//! The list forms of topic and group deletion that rocketmq-rust's admin
//! tools send (`rocketmq-admin-cli` 1.0 `topic deleteTopic` and `consumer
//! deleteSubGroup`): DELETE_TOPIC_IN_BROKER_LIST 5002 (body
//! `{"topicList":[..]}`) and DELETE_SUBSCRIPTION_GROUP_LIST 5003 (body
//! `{"groupNameList":[..],"cleanOffset":bool}`). They are rocketmq-rust's
//! codes, not Apache RocketMQ's, and its tools do not fall back to the
//! single forms; each name here runs through the single handler
//! (DELETE_TOPIC_IN_BROKER 215, DELETE_SUBSCRIPTIONGROUP 207), so the checks
//! and effects are the same.

use std::sync::Arc;

use serde::Deserialize;

use super::{Broker, HandlerResult, Request};
use crate::remoting::{response, RemotingCommand};

/// Request codes of this module.
pub mod code {
    /// rocketmq-rust's DELETE_TOPIC_IN_BROKER_LIST.
    pub const DELETE_TOPIC_IN_BROKER_LIST: i32 = 5002;
    /// rocketmq-rust's DELETE_SUBSCRIPTION_GROUP_LIST.
    pub const DELETE_SUBSCRIPTION_GROUP_LIST: i32 = 5003;
}

/// At most this many names in one list request.
pub const MAX_NAMES: usize = 1024;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TopicList {
    topic_list: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GroupList {
    group_name_list: Vec<String>,
    #[serde(default)]
    clean_offset: bool,
}

/// The body as `T`, or the refusal to answer with.
fn body<T: serde::de::DeserializeOwned>(
    req: &Request<'_>,
    what: &str,
    len: impl Fn(&T) -> usize,
) -> Result<T, RemotingCommand> {
    let v: T = serde_json::from_slice(&req.cmd.body)
        .map_err(|e| RemotingCommand::error(response::SYSTEM_ERROR, format!("{what} body: {e}")))?;
    let n = len(&v);
    if n == 0 || n > MAX_NAMES {
        return Err(RemotingCommand::error(
            response::SYSTEM_ERROR,
            format!("{what} body: {n} names; 1 to {MAX_NAMES} expected"),
        ));
    }
    Ok(v)
}

/// One answer for the list: SUCCESS when every name's answer was SUCCESS,
/// with their remarks joined; else the first other answer, naming its item
/// and how many went before it.
fn combine(answers: Vec<(String, RemotingCommand)>) -> RemotingCommand {
    let mut remarks = Vec::new();
    for (i, (name, a)) in answers.iter().enumerate() {
        if a.code != response::SUCCESS {
            return RemotingCommand::error(
                a.code,
                format!(
                    "{name}: {} ({i} done before it; the rest not tried)",
                    a.remark.as_deref().unwrap_or("")
                ),
            );
        }
        if let Some(r) = a.remark.as_deref().filter(|r| !r.is_empty()) {
            remarks.push(format!("{name}: {r}"));
        }
    }
    RemotingCommand::response(
        response::SUCCESS,
        (!remarks.is_empty()).then(|| remarks.join("; ")),
    )
}

impl Broker {
    /// DELETE_TOPIC_IN_BROKER_LIST: each topic as DELETE_TOPIC_IN_BROKER
    /// (one that does not exist: SUCCESS, the remark says so).
    pub(super) async fn delete_topic_list(self: &Arc<Self>, req: Request<'_>) -> HandlerResult {
        let list = match body(&req, "delete topic list", |t: &TopicList| {
            t.topic_list.len()
        }) {
            Ok(l) => l,
            Err(refusal) => return Ok(refusal),
        };
        let mut answers = Vec::new();
        for topic in list.topic_list {
            let one = Request {
                cmd: RemotingCommand::request(super::ops_mut::code::DELETE_TOPIC_IN_BROKER)
                    .with_ext("topic", &topic),
                conn: req.conn,
                on: req.on,
            };
            let a = self.delete_topic(one).await?;
            let stop = a.code != response::SUCCESS;
            answers.push((topic, a));
            if stop {
                break;
            }
        }
        Ok(combine(answers))
    }

    /// DELETE_SUBSCRIPTION_GROUP_LIST: each group as DELETE_SUBSCRIPTIONGROUP
    /// (with `cleanOffset`).
    pub(super) async fn delete_subscription_group_list(
        self: &Arc<Self>,
        req: Request<'_>,
    ) -> HandlerResult {
        let list = match body(&req, "delete subscription group list", |g: &GroupList| {
            g.group_name_list.len()
        }) {
            Ok(l) => l,
            Err(refusal) => return Ok(refusal),
        };
        let mut answers = Vec::new();
        for group in list.group_name_list {
            let one = Request {
                cmd: RemotingCommand::request(super::ops_mut::code::DELETE_SUBSCRIPTIONGROUP)
                    .with_ext("groupName", &group)
                    .with_ext("cleanOffset", list.clean_offset),
                conn: req.conn,
                on: req.on,
            };
            let a = self.delete_subscription_group(one).await?;
            let stop = a.code != response::SUCCESS;
            answers.push((group, a));
            if stop {
                break;
            }
        }
        Ok(combine(answers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combine_reports_the_first_failure_and_keeps_remarks() {
        let ok = RemotingCommand::success();
        let missing = RemotingCommand::response(response::SUCCESS, Some("no such topic".into()));
        let r = combine(vec![("a".into(), ok.clone()), ("b".into(), missing)]);
        assert_eq!(r.code, response::SUCCESS);
        assert_eq!(r.remark.as_deref(), Some("b: no such topic"));
        let bad = RemotingCommand::error(response::SYSTEM_ERROR, "conflict");
        let r = combine(vec![("a".into(), ok), ("s".into(), bad)]);
        assert_eq!(r.code, response::SYSTEM_ERROR);
        assert_eq!(
            r.remark.as_deref(),
            Some("s: conflict (1 done before it; the rest not tried)")
        );
    }
}
