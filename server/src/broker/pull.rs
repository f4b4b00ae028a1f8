//! PULL_MESSAGE with tag filtering and long polling (RocketMQ `PullMessageProcessor`
//! and `PullRequestHoldService`).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use ferromq_engine::{BrokerRole, GetResult, GetStatus, MessageFilter};

use super::{store_error_code, Broker, BUSY_REMARK};
use crate::remoting::{response, ExtFields, HeaderError, RemotingCommand};

/// PullSysFlag bit: the request carries a commit offset.
pub const FLAG_COMMIT_OFFSET: i32 = 0x1;
/// PullSysFlag bit: the broker may hold the request (long polling).
pub const FLAG_SUSPEND: i32 = 0x2;
/// PullSysFlag bit: the request carries a subscription expression.
pub const FLAG_SUBSCRIPTION: i32 = 0x4;

/// A `PullMessageRequestHeader`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullHeader {
    /// Consumer group.
    pub consumer_group: String,
    /// Topic.
    pub topic: String,
    /// Queue id.
    pub queue_id: i32,
    /// First queue offset wanted.
    pub queue_offset: i64,
    /// Most messages wanted.
    pub max_msg_nums: i32,
    /// PullSysFlag bits.
    pub sys_flag: i32,
    /// Offset to commit for the group.
    pub commit_offset: i64,
    /// How long the broker may hold the request, ms.
    pub suspend_timeout_millis: i64,
    /// Subscription expression (tags).
    pub subscription: Option<String>,
    /// `TAG` (default) or `SQL92`.
    pub expression_type: Option<String>,
}

impl PullHeader {
    /// Read a pull header.
    ///
    /// # Errors
    /// [`HeaderError`] for a missing or malformed required field.
    pub fn parse(ext: &ExtFields) -> Result<PullHeader, HeaderError> {
        Ok(PullHeader {
            consumer_group: ext.get_str("consumerGroup")?.to_string(),
            topic: ext.get_str("topic")?.to_string(),
            queue_id: ext.get_i32("queueId")?,
            queue_offset: ext.get_i64("queueOffset")?,
            max_msg_nums: ext.get_i32("maxMsgNums")?,
            sys_flag: ext.get_i32("sysFlag")?,
            commit_offset: ext.opt_i64("commitOffset")?.unwrap_or(0),
            suspend_timeout_millis: ext.opt_i64("suspendTimeoutMillis")?.unwrap_or(0),
            subscription: ext.opt_str("subscription").map(str::to_string),
            expression_type: ext.opt_str("expressionType").map(str::to_string),
        })
    }
}

/// Name of a get status, as RocketMQ puts it in the remark.
pub fn status_name(s: GetStatus) -> &'static str {
    match s {
        GetStatus::Found => "FOUND",
        GetStatus::NoMatchedMessage => "NO_MATCHED_MESSAGE",
        GetStatus::MessageWasRemoving => "MESSAGE_WAS_REMOVING",
        GetStatus::OffsetFoundNull => "OFFSET_FOUND_NULL",
        GetStatus::OffsetOverflowBadly => "OFFSET_OVERFLOW_BADLY",
        GetStatus::OffsetOverflowOne => "OFFSET_OVERFLOW_ONE",
        GetStatus::OffsetTooSmall => "OFFSET_TOO_SMALL",
        GetStatus::NoMatchedLogicQueue => "NO_MATCHED_LOGIC_QUEUE",
        GetStatus::NoMessageInQueue => "NO_MESSAGE_IN_QUEUE",
    }
}

/// Response code of a get status (reference section 4).
pub fn status_code(s: GetStatus, requested_offset: u64) -> i32 {
    match s {
        GetStatus::Found => response::SUCCESS,
        GetStatus::NoMatchedLogicQueue | GetStatus::NoMessageInQueue => {
            if requested_offset != 0 {
                response::PULL_OFFSET_MOVED
            } else {
                response::PULL_NOT_FOUND
            }
        }
        GetStatus::OffsetTooSmall | GetStatus::OffsetOverflowBadly => response::PULL_OFFSET_MOVED,
        GetStatus::OffsetOverflowOne | GetStatus::OffsetFoundNull => response::PULL_NOT_FOUND,
        GetStatus::MessageWasRemoving | GetStatus::NoMatchedMessage => {
            response::PULL_RETRY_IMMEDIATELY
        }
    }
}

/// Build the pull response: header fields, and the body as the stored records
/// concatenated byte for byte (copied here, on the pull pool, so page faults on
/// cold files never hit the network runtime).
pub fn pull_response(r: &GetResult, requested_offset: u64) -> RemotingCommand {
    let code = status_code(r.status, requested_offset);
    let mut resp = RemotingCommand::response(code, None)
        .with_ext("suggestWhichBrokerId", 0)
        .with_ext("nextBeginOffset", r.next_begin_offset)
        .with_ext("minOffset", r.min_offset)
        .with_ext("maxOffset", r.max_offset);
    if code == response::SUCCESS {
        let mut body = Vec::with_capacity(r.buffer_total_size());
        for m in &r.messages {
            body.extend_from_slice(m.bytes());
        }
        resp.body = body;
    } else {
        resp.remark = Some(status_name(r.status).to_string());
    }
    resp
}

impl Broker {
    pub(super) async fn pull(self: Arc<Self>, req: RemotingCommand) -> RemotingCommand {
        let h = match PullHeader::parse(&req.ext_fields) {
            Ok(h) => h,
            Err(e) => return e.into(),
        };
        let Some(tc) = self.store.topic_config(&h.topic) else {
            return RemotingCommand::error(
                response::TOPIC_NOT_EXIST,
                format!("topic[{}] not exist, apply first please!", h.topic),
            );
        };
        if h.queue_id < 0 || h.queue_id as u32 >= tc.read_queue_nums {
            return RemotingCommand::error(
                response::SYSTEM_ERROR,
                format!(
                    "queueId[{}] is illegal, topic:[{}] topicConfig.readQueueNums:[{}]",
                    h.queue_id, h.topic, tc.read_queue_nums
                ),
            );
        }
        if let Err(r) = self.check_group(&h.consumer_group).await {
            return r;
        }
        if h.expression_type
            .as_deref()
            .is_some_and(|t| !t.eq_ignore_ascii_case("TAG"))
        {
            return RemotingCommand::error(
                response::SYSTEM_ERROR,
                "The broker does not support consumer to filter message by SQL92",
            );
        }
        let expr = if h.sys_flag & FLAG_SUBSCRIPTION != 0 {
            h.subscription.clone()
        } else {
            self.clients.subscription(&h.consumer_group, &h.topic)
        };
        let filter = MessageFilter::from_expression(expr.as_deref().unwrap_or("*"));
        let offset = u64::try_from(h.queue_offset).unwrap_or(u64::MAX);

        let first = self.clone().pull_once(&h, &filter, offset, true).await;
        let suspend = h.sys_flag & FLAG_SUSPEND != 0;
        if first.code != response::PULL_NOT_FOUND || !suspend {
            return first;
        }
        // Long polling: park until the queue grows past `offset`, then pull once more.
        let wait = if self.cfg.long_polling_enable {
            Duration::from_millis(u64::try_from(h.suspend_timeout_millis).unwrap_or(0))
        } else {
            Duration::from_millis(self.cfg.short_polling_time_mills)
        };
        let queue_id = h.queue_id as u32;
        let rx = self.hold.park(&h.topic, queue_id, offset);
        if !self.stopping.load(Ordering::Acquire)
            && self.store.max_offset_in_queue(&h.topic, queue_id) <= offset
        {
            let _ = tokio::time::timeout(wait, rx).await;
        }
        self.pull_once(&h, &filter, offset, false).await
    }

    async fn pull_once(
        self: Arc<Self>,
        h: &PullHeader,
        filter: &MessageFilter,
        offset: u64,
        first: bool,
    ) -> RemotingCommand {
        let b = self.clone();
        let h = h.clone();
        let filter = filter.clone();
        let job = move || {
            let res = b.store.get_message(
                &h.consumer_group,
                &h.topic,
                h.queue_id as u32,
                offset,
                h.max_msg_nums.max(1) as u32,
                &filter,
            );
            if first
                && h.sys_flag & FLAG_COMMIT_OFFSET != 0
                && h.commit_offset >= 0
                && b.store.config().broker_role != BrokerRole::Slave
            {
                b.offsets.commit(
                    &h.consumer_group,
                    &h.topic,
                    h.queue_id as u32,
                    h.commit_offset,
                );
            }
            match res {
                Ok(r) => {
                    b.stats.add_get(r.messages.len() as u64);
                    pull_response(&r, offset)
                }
                Err(e) => RemotingCommand::error(store_error_code(&e), e.to_string()),
            }
        };
        match self.pull_pool.try_execute(job) {
            Ok(rx) => rx.await.unwrap_or_else(|_| {
                RemotingCommand::error(response::SYSTEM_ERROR, "pull task failed")
            }),
            Err(_) => RemotingCommand::error(response::SYSTEM_BUSY, BUSY_REMARK),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_mapping_follows_the_reference() {
        assert_eq!(status_code(GetStatus::Found, 0), response::SUCCESS);
        assert_eq!(
            status_code(GetStatus::NoMessageInQueue, 0),
            response::PULL_NOT_FOUND
        );
        assert_eq!(
            status_code(GetStatus::NoMessageInQueue, 3),
            response::PULL_OFFSET_MOVED
        );
        assert_eq!(
            status_code(GetStatus::OffsetOverflowOne, 9),
            response::PULL_NOT_FOUND
        );
        assert_eq!(
            status_code(GetStatus::OffsetOverflowBadly, 9),
            response::PULL_OFFSET_MOVED
        );
        assert_eq!(
            status_code(GetStatus::OffsetTooSmall, 0),
            response::PULL_OFFSET_MOVED
        );
        assert_eq!(
            status_code(GetStatus::NoMatchedMessage, 0),
            response::PULL_RETRY_IMMEDIATELY
        );
        assert_eq!(
            status_code(GetStatus::MessageWasRemoving, 0),
            response::PULL_RETRY_IMMEDIATELY
        );
        assert_eq!(
            status_code(GetStatus::OffsetFoundNull, 0),
            response::PULL_NOT_FOUND
        );
    }

    #[test]
    fn pull_header_requires_fields() {
        let mut e = ExtFields::new();
        for (k, v) in [
            ("consumerGroup", "G"),
            ("topic", "T"),
            ("queueId", "1"),
            ("queueOffset", "5"),
            ("maxMsgNums", "32"),
            ("sysFlag", "6"),
        ] {
            e.insert(k, v);
        }
        let h = PullHeader::parse(&e).unwrap();
        assert_eq!(h.queue_offset, 5);
        e.insert("queueOffset", "x");
        assert!(PullHeader::parse(&e).is_err());
    }
}
