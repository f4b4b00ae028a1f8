//! CONSUMER_SEND_MSG_BACK: a consumer gives a message back after its handler
//! failed (RocketMQ's `SendMessageProcessor.consumerSendMsgBack`).
//!
//! The original record is looked up by its commitlog offset and stored again in
//! `%RETRY%<group>` (created on demand, `retryQueueNums` queues, read/write)
//! with reconsume times + 1, `RETRY_TOPIC` = the original topic and
//! `ORIGIN_MESSAGE_ID` = the first msgId. Once the reconsume times reach
//! `maxReconsumeTimes` (request header, else the group's `retryMaxTimes`, 16),
//! or when the delay level is negative, it goes to `%DLQ%<group>` (1 queue,
//! write-only) instead.
//!
//! As RocketMQ, the retry is delayed: by the request's `delayLevel` when it is
//! above 0, else by level `3 + reconsumeTimes` (10 s, 30 s, 1 min, ... with the
//! default `messageDelayLevel`), through the store's `DELAY` property (the
//! message waits on `SCHEDULE_TOPIC_XXXX`). A dead-lettered message is stored at
//! once, with no delay.

use std::sync::Arc;

use ferromq_engine::{Message, TopicConfig};

use super::{store_error_response, Broker, HandlerResult, Request};
use crate::remoting::{response, HeaderError, RemotingCommand};

/// Prefix of a group's retry topic.
pub const RETRY_GROUP_TOPIC_PREFIX: &str = "%RETRY%";
/// Prefix of a group's dead-letter topic.
pub const DLQ_GROUP_TOPIC_PREFIX: &str = "%DLQ%";
const PROPERTY_RETRY_TOPIC: &str = "RETRY_TOPIC";
const PROPERTY_ORIGIN_MESSAGE_ID: &str = "ORIGIN_MESSAGE_ID";
const PROPERTY_WAIT: &str = "WAIT";
const PROPERTY_DELAY: &str = "DELAY";
const PERM_WRITE: u32 = 2;
const PERM_READ: u32 = 4;

/// `%RETRY%<group>`.
pub fn retry_topic(group: &str) -> String {
    format!("{RETRY_GROUP_TOPIC_PREFIX}{group}")
}

/// `%DLQ%<group>`.
pub fn dlq_topic(group: &str) -> String {
    format!("{DLQ_GROUP_TOPIC_PREFIX}{group}")
}

/// The delay level of a retry: the requested level when above 0, else
/// `3 + reconsumeTimes` (RocketMQ's `consumerSendMsgBack`). Levels past the last
/// configured one are capped by the store.
pub fn retry_delay_level(requested: i32, reconsume_times: i32) -> i32 {
    if requested > 0 {
        requested
    } else {
        3i32.saturating_add(reconsume_times.max(0))
    }
}

#[derive(Debug)]
struct SendBackHeader {
    offset: u64,
    group: String,
    delay_level: i32,
    max_reconsume_times: Option<i32>,
}

impl SendBackHeader {
    fn parse(req: &RemotingCommand) -> Result<SendBackHeader, HeaderError> {
        let e = &req.ext_fields;
        let offset = e.get_i64("offset")?;
        let offset = u64::try_from(offset).map_err(|_| HeaderError::Invalid {
            key: "offset".into(),
            value: offset.to_string(),
            expected: "a commitlog offset >= 0",
        })?;
        Ok(SendBackHeader {
            offset,
            group: e.get_str("group")?.to_string(),
            delay_level: e.opt_i64("delayLevel")?.unwrap_or(0) as i32,
            max_reconsume_times: e.opt_i64("maxReconsumeTimes")?.map(|v| v as i32),
        })
    }
}

impl Broker {
    /// Create `%RETRY%group` / `%DLQ%group` when missing (and announce it to the
    /// name servers), as RocketMQ's `createTopicInSendMessageBackMethod`.
    pub(super) fn ensure_group_topic(
        &self,
        topic: &str,
        queues: u32,
        perm: u32,
    ) -> Result<TopicConfig, ferromq_engine::Error> {
        if let Some(tc) = self.store.topic_config(topic) {
            return Ok(tc);
        }
        let mut tc = TopicConfig::new(topic, queues.max(1));
        tc.perm = perm;
        let tc = self.store.upsert_topic(tc)?;
        tracing::info!(%topic, queues, perm, "group topic created");
        self.register_now.notify_one();
        Ok(tc)
    }

    /// CONSUMER_SEND_MSG_BACK (on the send pool: it reads and writes the log).
    pub(super) async fn consumer_send_msg_back(
        self: &Arc<Self>,
        req: Request<'_>,
    ) -> HandlerResult {
        let h = SendBackHeader::parse(&req.cmd)?;
        self.run_on(req.on, "send-back", move |b| b.send_back_blocking(h))
            .await
    }

    fn send_back_blocking(&self, h: SendBackHeader) -> RemotingCommand {
        let group = match self.groups.find_or_create(&h.group) {
            Ok(g) => g,
            Err(super::subscription::GroupError::Invalid(why)) => return super::names::refuse(why),
            Err(e) => {
                return RemotingCommand::error(
                    response::SUBSCRIPTION_GROUP_NOT_EXIST,
                    e.to_string(),
                )
            }
        };
        if self.live.broker_permission() & PERM_WRITE == 0 {
            return RemotingCommand::error(
                response::NO_PERMISSION,
                format!(
                    "the broker[{}] sending message is forbidden",
                    self.cfg.broker_ip1
                ),
            );
        }
        if group.retry_queue_nums <= 0 {
            return RemotingCommand::success();
        }
        let Some(orig) = self.store.look_message_by_offset(h.offset).ok().flatten() else {
            return RemotingCommand::error(
                response::SYSTEM_ERROR,
                format!("look message by offset failed, {}", h.offset),
            );
        };
        let max_reconsume = h.max_reconsume_times.unwrap_or(group.retry_max_times);
        let to_dlq = orig.reconsume_times >= max_reconsume || h.delay_level < 0;
        let (topic, queues, perm) = if to_dlq {
            (dlq_topic(&h.group), 1, PERM_WRITE)
        } else {
            (
                retry_topic(&h.group),
                group.retry_queue_nums as u32,
                PERM_WRITE | PERM_READ,
            )
        };
        let tc = match self.ensure_group_topic(&topic, queues, perm) {
            Ok(tc) => tc,
            Err(e) => return store_error_response(&e),
        };
        if tc.perm & PERM_WRITE == 0 {
            return RemotingCommand::error(
                response::NO_PERMISSION,
                format!(
                    "the topic[{}] sending message is forbidden",
                    ferromq_engine::message::name_for_message(&topic)
                ),
            );
        }
        let orig_id = orig.msg_id();
        let mut props = orig.properties.clone();
        if props.get(PROPERTY_RETRY_TOPIC).is_none() {
            props.insert(PROPERTY_RETRY_TOPIC, orig.topic.clone());
        }
        if props
            .get(PROPERTY_ORIGIN_MESSAGE_ID)
            .is_none_or(|v| v.trim().is_empty())
        {
            props.insert(PROPERTY_ORIGIN_MESSAGE_ID, orig_id);
        }
        props.insert(PROPERTY_WAIT, "false");
        if to_dlq {
            props.remove(PROPERTY_DELAY);
        } else {
            props.insert(
                PROPERTY_DELAY,
                retry_delay_level(h.delay_level, orig.reconsume_times).to_string(),
            );
        }
        let queue_id = self
            .next_queue
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            % tc.write_queue_nums.max(1);
        let mut m = Message::new(topic.clone(), orig.body);
        m.queue_id = queue_id;
        m.flag = orig.flag;
        m.properties = props;
        m.sys_flag = orig.sys_flag;
        m.born_timestamp_ms = orig.born_timestamp_ms;
        m.born_host = orig.born_host;
        m.reconsume_times = orig.reconsume_times + 1;
        match self.store.put_message(&m) {
            Ok(_) => {
                self.stats.on_send_back(&h.group, &topic);
                tracing::debug!(%topic, offset = h.offset, reconsume = m.reconsume_times, "message sent back");
                RemotingCommand::success()
            }
            Err(e) => store_error_response(&e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_levels() {
        assert_eq!(retry_delay_level(0, 0), 3);
        assert_eq!(retry_delay_level(0, 2), 5);
        assert_eq!(retry_delay_level(5, 0), 5);
        assert_eq!(retry_delay_level(0, -4), 3);
        assert_eq!(retry_delay_level(0, i32::MAX), i32::MAX);
    }
}
