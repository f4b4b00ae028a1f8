//! QUERY_CONSUMER_OFFSET, UPDATE_CONSUMER_OFFSET and GET_CONSUMER_LIST_BY_GROUP,
//! and the subscription group a pull names (RocketMQ's `ConsumerManageProcessor`).

use std::sync::Arc;

use ferromq_engine::message::name_for_message;
use ferromq_engine::MessageFilter;

use super::{names, subscription, Broker, Executor, HandlerError, HandlerResult, Request};
use crate::remoting::{response, HeaderError, RemotingCommand};

impl Broker {
    /// The `topic` and `queueId` header fields (queue id >= 0).
    pub(super) fn topic_queue(req: &RemotingCommand) -> Result<(String, u32), HeaderError> {
        let topic = req.ext_fields.get_str("topic")?.to_string();
        let qid = req.ext_fields.get_i32("queueId")?;
        let qid = u32::try_from(qid).map_err(|_| HeaderError::Invalid {
            key: "queueId".into(),
            value: qid.to_string(),
            expected: "a queue id >= 0",
        })?;
        Ok((topic, qid))
    }

    /// QUERY_CONSUMER_OFFSET: the stored offset; with none stored, 0 while the
    /// queue still starts at 0 and its first message is in memory (so a new group
    /// started after the producer reads from the start, as with RocketMQ 4.x),
    /// else QUERY_NOT_FOUND and the client falls back to its consume-from-where.
    pub(super) async fn query_consumer_offset(self: &Arc<Self>, req: Request<'_>) -> HandlerResult {
        let (topic, qid) = Self::topic_queue(&req.cmd)?;
        let group = req.cmd.ext_fields.get_str("consumerGroup")?.to_string();
        if let Some(off) = self.offsets.query(&group, &topic, qid) {
            return Ok(RemotingCommand::success().with_ext("offset", off));
        }
        let in_memory_from_zero = self
            .run_on(req.on, "query consumer offset", move |b| {
                if b.store.min_offset_in_queue(&topic, qid) > 0 {
                    return false;
                }
                // RocketMQ's checkInDiskByConsumeOffset(topic, queueId, 0): the engine has
                // no such call; a one-message get at 0 reports it as suggest-from-slave.
                match b
                    .store
                    .get_message(&group, &topic, qid, 0, 1, &MessageFilter::All)
                {
                    Ok(r) => r.messages.is_empty() || !r.suggest_pulling_from_slave,
                    Err(_) => false,
                }
            })
            .await
            .unwrap_or(false);
        Ok(if in_memory_from_zero {
            RemotingCommand::success().with_ext("offset", 0)
        } else {
            RemotingCommand::error(
                response::QUERY_NOT_FOUND,
                "Not found, V3_0_6_SNAPSHOT maybe this group consumer boot first",
            )
        })
    }

    /// UPDATE_CONSUMER_OFFSET, refused as RocketMQ 5's `ConsumerManageProcessor`
    /// refuses it: SUBSCRIPTION_GROUP_NOT_EXIST for a group the broker does not
    /// know (groups are created by heartbeats and pulls, not by commits),
    /// TOPIC_NOT_EXIST for an unknown topic; and (beyond RocketMQ) SYSTEM_ERROR
    /// for a queue id the topic does not have. So only offsets of real queues
    /// of known groups are stored: `consumerOffset.json` cannot be grown by
    /// made-up names.
    pub(super) async fn update_consumer_offset(
        self: &Arc<Self>,
        req: Request<'_>,
    ) -> HandlerResult {
        let (topic, qid) = Self::topic_queue(&req.cmd)?;
        let group = req.cmd.ext_fields.get_str("consumerGroup")?;
        let off = req.cmd.ext_fields.get_i64("commitOffset")?;
        if self.groups.get(group).is_none() {
            return Ok(RemotingCommand::error(
                response::SUBSCRIPTION_GROUP_NOT_EXIST,
                format!("Group {} not exist!", name_for_message(group)),
            ));
        }
        let Some(tc) = self.store.topic_config(&topic) else {
            return Ok(RemotingCommand::error(
                response::TOPIC_NOT_EXIST,
                format!("Topic {} not exist!", name_for_message(&topic)),
            ));
        };
        let queues = tc.read_queue_nums.max(tc.write_queue_nums);
        if qid >= queues {
            return Ok(RemotingCommand::error(
                response::SYSTEM_ERROR,
                format!(
                    "queueId[{qid}] is illegal, topic:[{}] has {queues} queues",
                    name_for_message(&topic)
                ),
            ));
        }
        self.offsets.commit(group, &topic, qid, off);
        Ok(RemotingCommand::success())
    }

    /// GET_CONSUMER_LIST_BY_GROUP.
    pub(super) async fn consumer_list(self: &Arc<Self>, req: Request<'_>) -> HandlerResult {
        let group = req.cmd.ext_fields.get_str("consumerGroup")?;
        let ids = self.clients.consumer_ids(group);
        if ids.is_empty() {
            return Ok(RemotingCommand::error(
                response::SYSTEM_ERROR,
                format!("no consumer for this group, {}", name_for_message(group)),
            ));
        }
        let body = serde_json::json!({ "consumerIdList": ids }).to_string();
        Ok(RemotingCommand::success().with_body(body.into_bytes()))
    }

    /// Look a subscription group up, creating (and persisting, off the runtime)
    /// it when unknown and `autoCreateSubscriptionGroup` is on; refuse it
    /// otherwise (`Ok(Err(refusal))`).
    pub(super) async fn check_group(
        self: &Arc<Self>,
        group: &str,
    ) -> Result<Result<subscription::SubscriptionGroupConfig, RemotingCommand>, HandlerError> {
        if let Some(c) = self.groups.get(group) {
            return Ok(Ok(c));
        }
        let g = group.to_string();
        // Creating a group writes its file: always on a blocking thread,
        // whatever executor the request runs on.
        let r = self
            .run_on(Executor::Blocking, "subscription group", move |b| {
                b.groups.find_or_create(&g)
            })
            .await?;
        Ok(r.map_err(|e| match e {
            subscription::GroupError::Invalid(why) => names::refuse(why),
            e => RemotingCommand::error(response::SUBSCRIPTION_GROUP_NOT_EXIST, e.to_string()),
        }))
    }
}
