//! Topic and group names at the broker's entries: every request that names a
//! topic or a group is checked with the engine's rules
//! ([`ferromq_engine::validate_topic`], [`ferromq_engine::validate_group`]:
//! `[%|a-zA-Z0-9_-]`, topics up to 127 characters, groups up to 255) before
//! anything is looked up, created or saved. A refusal is SYSTEM_ERROR (the
//! code of RocketMQ's `TopicValidator`) with a remark that names the rule and
//! quotes at most 64 characters of the name.
//!
//! Sends check their topic in the send processor, heartbeats every group and
//! subscribed topic in [`super::clients`], lock requests their body in
//! [`super::query`]; this module checks the header fields of the others.

use ferromq_engine::{validate_group, validate_topic};

use crate::remoting::{request, response, RemotingCommand};

/// The topic producers ask routes for when auto-creating (`TBW102`): a
/// template, never a topic of its own (RocketMQ refuses sends to it and
/// creating it).
pub const AUTO_CREATE_TOPIC_KEY: &str = "TBW102";

/// A refusal of a bad name.
pub fn refuse(why: String) -> RemotingCommand {
    RemotingCommand::error(response::SYSTEM_ERROR, why)
}

/// Whether `topic` may be created, by UPDATE_AND_CREATE_TOPIC or by a send
/// that auto-creates it: one rule for both. A valid name that is neither the
/// auto-create template `TBW102` nor the cluster's name (RocketMQ's
/// "conflict with system reserved words").
///
/// # Errors
/// The remark of the refusal.
pub fn check_creatable_topic(topic: &str, cluster_name: &str) -> Result<(), String> {
    validate_topic(topic)?;
    if topic == AUTO_CREATE_TOPIC_KEY || topic == cluster_name {
        return Err(format!(
            "the topic[{topic}] is conflict with system reserved words."
        ));
    }
    Ok(())
}

/// A topic a consumer subscribes to: a valid topic, or the retry topic
/// `%RETRY%<group>` of a valid group (longer than a topic may be for groups of
/// more than 120 characters; such a retry topic is never created, but a
/// client may still name it).
///
/// # Errors
/// Why the name is refused.
pub fn validate_subscribed_topic(topic: &str) -> Result<(), String> {
    match validate_topic(topic) {
        Ok(()) => Ok(()),
        Err(why) => match topic.strip_prefix(super::send_back::RETRY_GROUP_TOPIC_PREFIX) {
            Some(group) if validate_group(group).is_ok() => Ok(()),
            _ => Err(why),
        },
    }
}

/// Check the topic and group fields of a request's header (those present;
/// a missing required field is reported by the request's own handler).
///
/// # Errors
/// The refusal to answer with.
pub fn check_request_names(req: &RemotingCommand) -> Result<(), RemotingCommand> {
    let ext = &req.ext_fields;
    let topic = |key: &str| match ext.opt_str(key) {
        Some(t) => validate_topic(t).map_err(refuse),
        None => Ok(()),
    };
    let group = |key: &str| match ext.opt_str(key) {
        Some(g) => validate_group(g).map_err(refuse),
        None => Ok(()),
    };
    // Clients that send every field of the header leave the unused one empty.
    let group_if_set = |key: &str| match ext.opt_str(key) {
        Some(g) if !g.is_empty() => validate_group(g).map_err(refuse),
        _ => Ok(()),
    };
    match req.code {
        request::PULL_MESSAGE
        | request::LITE_PULL_MESSAGE
        | request::QUERY_CONSUMER_OFFSET
        | request::UPDATE_CONSUMER_OFFSET => {
            group("consumerGroup")?;
            topic("topic")
        }
        request::GET_MAX_OFFSET
        | request::GET_MIN_OFFSET
        | request::SEARCH_OFFSET_BY_TIMESTAMP
        | request::GET_EARLIEST_MSG_STORETIME
        | request::QUERY_MESSAGE => topic("topic"),
        request::GET_CONSUMER_LIST_BY_GROUP => group("consumerGroup"),
        request::CONSUMER_SEND_MSG_BACK => group("group"),
        request::END_TRANSACTION => group("producerGroup"),
        request::UNREGISTER_CLIENT => {
            group_if_set("producerGroup")?;
            group_if_set("consumerGroup")
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creatable_topics_and_subscribed_topics() {
        assert!(check_creatable_topic("Orders", "DefaultCluster").is_ok());
        assert!(check_creatable_topic("%RETRY%G", "DefaultCluster").is_ok());
        for bad in ["", "a.b", "a/b", "../x", "TBW102", "DefaultCluster"] {
            assert!(
                check_creatable_topic(bad, "DefaultCluster").is_err(),
                "{bad}"
            );
        }
        assert!(check_creatable_topic(&"x".repeat(128), "C").is_err());
        let long_group = "g".repeat(200);
        assert!(validate_subscribed_topic(&format!("%RETRY%{long_group}")).is_ok());
        assert!(validate_subscribed_topic(&format!("%RETRY%{}", "g".repeat(256))).is_err());
        assert!(validate_subscribed_topic("%RETRY%a.b").is_err());
        assert!(validate_subscribed_topic("T").is_ok());
    }

    #[test]
    fn header_names_are_checked_by_request() {
        let huge = "g".repeat(8 << 20);
        let r = RemotingCommand::request(request::UPDATE_CONSUMER_OFFSET)
            .with_ext("consumerGroup", huge.as_str())
            .with_ext("topic", "T");
        let refused = check_request_names(&r).unwrap_err();
        assert_eq!(refused.code, response::SYSTEM_ERROR);
        let remark = refused.remark.unwrap();
        assert!(remark.contains("longer than 255"), "{remark}");
        assert!(remark.len() < 300, "the remark quotes a short prefix");
        let r = RemotingCommand::request(request::PULL_MESSAGE)
            .with_ext("consumerGroup", "G")
            .with_ext("topic", "a/b");
        assert!(check_request_names(&r).is_err());
        let r = RemotingCommand::request(request::LITE_PULL_MESSAGE)
            .with_ext("consumerGroup", "G")
            .with_ext("topic", "a/b");
        assert!(check_request_names(&r).is_err());
        let r = RemotingCommand::request(request::QUERY_CONSUMER_OFFSET)
            .with_ext("consumerGroup", "")
            .with_ext("topic", "T");
        assert!(check_request_names(&r).is_err());
        let r = RemotingCommand::request(request::UNREGISTER_CLIENT)
            .with_ext("clientID", "c")
            .with_ext("producerGroup", "")
            .with_ext("consumerGroup", "G");
        assert!(check_request_names(&r).is_ok());
        let r = RemotingCommand::request(request::CONSUMER_SEND_MSG_BACK).with_ext("group", "a b");
        assert!(check_request_names(&r).is_err());
        let r = RemotingCommand::request(request::PULL_MESSAGE)
            .with_ext("consumerGroup", "G")
            .with_ext("topic", "T");
        assert!(check_request_names(&r).is_ok());
    }
}
