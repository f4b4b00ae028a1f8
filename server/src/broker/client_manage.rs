//! HEART_BEAT and UNREGISTER_CLIENT (RocketMQ's `ClientManageProcessor`).

use std::sync::Arc;

use super::{store_error_response, Broker, HandlerResult, Request};
use crate::remoting::{response, RemotingCommand};

/// A HEART_BEAT's SUCCESS stamped with the broker's version, as RocketMQ's
/// broker stamps every command (`rocketmq.remoting.version`): clients keep it
/// per broker address, and RocketMQ clients (Java's, rocketmq-client-rust)
/// refuse to pull with a SQL92 subscription from a broker older than
/// `V4_1_0_SNAPSHOT`.
fn heartbeat_ok() -> RemotingCommand {
    let mut r = RemotingCommand::success();
    r.version = super::admin::BROKER_VERSION;
    r
}

impl Broker {
    /// HEART_BEAT: register the client; for each consumer group, find or create
    /// (per `autoCreateSubscriptionGroup`) the subscription group and its retry
    /// topic `%RETRY%group` (as RocketMQ's `ClientManageProcessor.heartBeat`), so
    /// the client can subscribe to it. A heartbeat naming a group or topic that
    /// breaks the rules is refused whole (nothing registered or created). New
    /// groups and topics are created in one blocking task, and their files
    /// written once by their coalescing writers.
    pub(super) async fn heart_beat(self: &Arc<Self>, req: Request<'_>) -> HandlerResult {
        let (language, version) = (req.cmd.language, req.cmd.version);
        let sum = match self
            .clients
            .heartbeat_from(req.conn, &req.cmd.body, language, version)
        {
            Ok(sum) => sum,
            Err(e) => return Ok(RemotingCommand::error(response::SYSTEM_ERROR, e)),
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
            return Ok(heartbeat_ok());
        }
        let groups = sum.consumer_groups.clone();
        let r = self.run_on(req.on, "heartbeat", move |b| {
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
        .await?;
        if let Err(e) = r {
            return Ok(store_error_response(&e));
        }
        self.consumer_ids_changed(&sum.joined_groups);
        Ok(heartbeat_ok())
    }

    /// UNREGISTER_CLIENT.
    pub(super) async fn unregister_client(self: &Arc<Self>, req: Request<'_>) -> HandlerResult {
        let id = req.cmd.ext_fields.get_str("clientID")?;
        let changed = self.clients.unregister(
            id,
            req.cmd.ext_fields.opt_str("producerGroup"),
            req.cmd.ext_fields.opt_str("consumerGroup"),
        );
        self.consumer_ids_changed(&changed);
        Ok(RemotingCommand::success())
    }

    /// Tell the consumers of each group whose membership changed, unless the
    /// group turned `notifyConsumerIdsChangedEnable` off (RocketMQ's
    /// `DefaultConsumerIdsChangeListener`).
    pub(super) fn consumer_ids_changed(&self, groups: &[String]) {
        for g in groups {
            let enabled = self
                .groups
                .get(g)
                .is_none_or(|c| c.notify_consumer_ids_changed_enable);
            if enabled {
                let n = self.clients.notify_consumer_ids_changed(g);
                tracing::debug!(group = %g, told = n, "consumer ids changed");
            }
        }
    }
}
