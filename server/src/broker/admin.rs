//! Consumer-offset, client and topic-admin requests.

use std::sync::Arc;

use ferromq_engine::message::name_for_message;
use ferromq_engine::{MessageFilter, TopicConfig};

use super::{store_error_response, Broker};
use crate::remoting::{response, ConnInfo, HeaderError, RemotingCommand};

impl Broker {
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
    pub(super) async fn query_consumer_offset(
        self: Arc<Self>,
        req: &RemotingCommand,
    ) -> RemotingCommand {
        let (topic, qid) = match Self::topic_queue(req) {
            Ok(v) => v,
            Err(e) => return e.into(),
        };
        let group = match req.ext_fields.get_str("consumerGroup") {
            Ok(g) => g.to_string(),
            Err(e) => return e.into(),
        };
        if let Some(off) = self.offsets.query(&group, &topic, qid) {
            return RemotingCommand::success().with_ext("offset", off);
        }
        let b = self.clone();
        let in_memory_from_zero = tokio::task::spawn_blocking(move || {
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
        if in_memory_from_zero {
            RemotingCommand::success().with_ext("offset", 0)
        } else {
            RemotingCommand::error(
                response::QUERY_NOT_FOUND,
                "Not found, V3_0_6_SNAPSHOT maybe this group consumer boot first",
            )
        }
    }

    /// UPDATE_CONSUMER_OFFSET, refused as RocketMQ 5's `ConsumerManageProcessor`
    /// refuses it: SUBSCRIPTION_GROUP_NOT_EXIST for a group the broker does not
    /// know (groups are created by heartbeats and pulls, not by commits),
    /// TOPIC_NOT_EXIST for an unknown topic; and (beyond RocketMQ) SYSTEM_ERROR
    /// for a queue id the topic does not have. So only offsets of real queues
    /// of known groups are stored: `consumerOffset.json` cannot be grown by
    /// made-up names.
    pub(super) fn update_consumer_offset(&self, req: &RemotingCommand) -> RemotingCommand {
        let r = (|| -> Result<RemotingCommand, HeaderError> {
            let (topic, qid) = Self::topic_queue(req)?;
            let group = req.ext_fields.get_str("consumerGroup")?;
            let off = req.ext_fields.get_i64("commitOffset")?;
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
        })();
        r.unwrap_or_else(RemotingCommand::from)
    }

    /// GET_MAX_OFFSET.
    pub(super) fn get_max_offset(&self, req: &RemotingCommand) -> RemotingCommand {
        match Self::topic_queue(req) {
            Ok((t, q)) => {
                RemotingCommand::success().with_ext("offset", self.store.max_offset_in_queue(&t, q))
            }
            Err(e) => e.into(),
        }
    }

    /// GET_MIN_OFFSET.
    pub(super) fn get_min_offset(&self, req: &RemotingCommand) -> RemotingCommand {
        match Self::topic_queue(req) {
            Ok((t, q)) => {
                RemotingCommand::success().with_ext("offset", self.store.min_offset_in_queue(&t, q))
            }
            Err(e) => e.into(),
        }
    }

    /// HEART_BEAT: register the client; for each consumer group, find or create
    /// (per `autoCreateSubscriptionGroup`) the subscription group and its retry
    /// topic `%RETRY%group` (as RocketMQ's `ClientManageProcessor.heartBeat`), so
    /// the client can subscribe to it. A heartbeat naming a group or topic that
    /// breaks the rules is refused whole (nothing registered or created). New
    /// groups and topics are created in one blocking task, and their files
    /// written once by their coalescing writers.
    pub(super) async fn heart_beat(
        self: Arc<Self>,
        conn: &Arc<ConnInfo>,
        req: &RemotingCommand,
    ) -> RemotingCommand {
        let sum = match self.clients.heartbeat(conn, &req.body) {
            Ok(sum) => sum,
            Err(e) => return RemotingCommand::error(response::SYSTEM_ERROR, e),
        };
        let retry_missing = |g: &str, c: &super::subscription::SubscriptionGroupConfig| {
            let topic = super::send_back::retry_topic(g);
            c.retry_queue_nums > 0
                && self.store.topic_config(&topic).is_none()
                && ferromq_engine::validate_topic(&topic).is_ok()
        };
        let work = sum
            .consumer_groups
            .iter()
            .any(|g| self.groups.get(g).is_none_or(|c| retry_missing(g, &c)));
        if !work {
            self.consumer_ids_changed(&sum.joined_groups);
            return RemotingCommand::success();
        }
        let b = self.clone();
        let groups = sum.consumer_groups.clone();
        let r = tokio::task::spawn_blocking(move || {
            for g in &groups {
                // As RocketMQ: an unknown group (auto-creation off) still heartbeats;
                // it gets no retry topic, and its pulls are refused.
                let cfg = match b.groups.find_or_create(g) {
                    Ok(cfg) => cfg,
                    Err(e) => {
                        tracing::debug!(group = %g, error = %e, "heartbeat of an unknown subscription group");
                        continue;
                    }
                };
                let topic = super::send_back::retry_topic(g);
                if cfg.retry_queue_nums <= 0 || b.store.topic_config(&topic).is_some() {
                    continue;
                }
                if ferromq_engine::validate_topic(&topic).is_err() {
                    // A group of more than 120 characters: its retry topic
                    // would be longer than a topic may be.
                    tracing::debug!(group = %g, "no retry topic: the group name is too long for one");
                    continue;
                }
                b.ensure_group_topic(&topic, cfg.retry_queue_nums as u32, 6)?;
            }
            Ok::<(), ferromq_engine::Error>(())
        })
        .await;
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return store_error_response(&e),
            Err(e) => return RemotingCommand::error(response::SYSTEM_ERROR, e.to_string()),
        }
        self.consumer_ids_changed(&sum.joined_groups);
        RemotingCommand::success()
    }

    /// UNREGISTER_CLIENT.
    pub(super) fn unregister_client(&self, req: &RemotingCommand) -> RemotingCommand {
        match req.ext_fields.get_str("clientID") {
            Ok(id) => {
                let changed = self.clients.unregister(
                    id,
                    req.ext_fields.opt_str("producerGroup"),
                    req.ext_fields.opt_str("consumerGroup"),
                );
                self.consumer_ids_changed(&changed);
                RemotingCommand::success()
            }
            Err(e) => e.into(),
        }
    }

    /// GET_CONSUMER_LIST_BY_GROUP.
    pub(super) fn consumer_list(&self, req: &RemotingCommand) -> RemotingCommand {
        let group = match req.ext_fields.get_str("consumerGroup") {
            Ok(g) => g,
            Err(e) => return e.into(),
        };
        let ids = self.clients.consumer_ids(group);
        if ids.is_empty() {
            return RemotingCommand::error(
                response::SYSTEM_ERROR,
                format!("no consumer for this group, {}", name_for_message(group)),
            );
        }
        let body = serde_json::json!({ "consumerIdList": ids }).to_string();
        RemotingCommand::success().with_body(body.into_bytes())
    }

    /// UPDATE_AND_CREATE_TOPIC: read and write queue counts, perm, flags and
    /// order as given (RocketMQ's defaults 16/16/6 when absent). The topic
    /// table is on disk before SUCCESS is answered (an admin's change must
    /// survive a crash right after; a topic without messages would not be
    /// learned again, one with messages only with a guessed queue count);
    /// concurrent changes share one write.
    pub(super) async fn create_topic(self: Arc<Self>, req: &RemotingCommand) -> RemotingCommand {
        let parsed = (|| -> Result<TopicConfig, HeaderError> {
            let e = &req.ext_fields;
            let topic = e.get_str("topic")?.to_string();
            let count = |key: &str, default: i64| -> Result<u32, HeaderError> {
                let n = e.opt_i64(key)?.unwrap_or(default);
                u32::try_from(n).map_err(|_| HeaderError::Invalid {
                    key: key.into(),
                    value: n.to_string(),
                    expected: "a count >= 0",
                })
            };
            let mut tc = TopicConfig::new(topic, 16);
            tc.read_queue_nums = count("readQueueNums", 16)?;
            tc.write_queue_nums = count("writeQueueNums", 16)?;
            tc.perm = count("perm", 6)?;
            tc.topic_sys_flag = count("topicSysFlag", 0)?;
            tc.order = e.opt_bool("order")?.unwrap_or(false);
            Ok(tc)
        })();
        let tc = match parsed {
            Ok(v) => v,
            Err(e) => return e.into(),
        };
        let topic = tc.topic_name.clone();
        let (r, w) = (tc.read_queue_nums, tc.write_queue_nums);
        // The same rule as a send that auto-creates a topic.
        if let Err(why) = super::names::check_creatable_topic(&topic, &self.cfg.broker_cluster_name)
        {
            return super::names::refuse(why);
        }
        let b = self.clone();
        let res = tokio::task::spawn_blocking(move || {
            let tc = b.store.upsert_topic(tc)?;
            b.store.persist_topics()?;
            Ok::<_, ferromq_engine::Error>(tc)
        })
        .await;
        match res {
            Ok(Ok(_)) => {
                tracing::info!(%topic, read = r, write = w, "topic created or updated");
                self.register_now.notify_one();
                RemotingCommand::success()
            }
            Ok(Err(e)) => store_error_response(&e),
            Err(e) => RemotingCommand::error(response::SYSTEM_ERROR, e.to_string()),
        }
    }
}
