//! PULL_MESSAGE with tag filtering and long polling (RocketMQ `PullMessageProcessor`
//! and `PullRequestHoldService`).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use ferromq_engine::message::name_for_message;
use ferromq_engine::{BrokerRole, GetResult, GetStatus, MessageFilter};

use super::clients::{compile_filter, PullSubscription};
use super::hold::{Activity, ParkRefused, Wake};
use super::subscription::SubscriptionGroupConfig;
use super::{store_error_response, Broker, Executor, HandlerError, HandlerResult, Request};
use crate::filter::{is_tag_type, Sql92Filter};
use crate::remoting::{response, ConnInfo, ExtFields, HeaderError, RemotingCommand};

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

/// How a broker answers pulls by its role: RocketMQ 4.9.7's
/// `PullMessageProcessor` rules for `suggestWhichBrokerId`, and a slave's
/// handling of out-of-range offsets (`nextOffsetCorrection`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PullPolicy {
    /// The broker is a `SLAVE`.
    pub slave: bool,
    /// `slaveReadEnable`.
    pub slave_read_enable: bool,
    /// `offsetCheckInSlave`.
    pub offset_check_in_slave: bool,
}

/// What a pull response says besides its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PullDecision {
    /// Response code.
    pub code: i32,
    /// `suggestWhichBrokerId`: the broker the client should pull from next.
    pub suggest_which_broker_id: i64,
    /// `nextBeginOffset`.
    pub next_begin_offset: u64,
}

impl PullPolicy {
    /// A slave that does not check offsets keeps the consumer's offset where a
    /// master would correct it (it may simply not have the data yet).
    fn keeps_offset(&self) -> bool {
        self.slave && !self.offset_check_in_slave
    }

    /// Decide code, suggested broker and next offset for a get result, as
    /// RocketMQ 4.9.7 does:
    /// - `slaveReadEnable=false`: always suggest the master (0). (A slave still
    ///   answers with what it found: RocketMQ sets PULL_RETRY_IMMEDIATELY there,
    ///   but its status mapping overwrites that code right after.)
    /// - `slaveReadEnable=true`: suggest the group's `whichBrokerWhenConsumeSlowly`
    ///   (default 1) when the consumer is further behind than
    ///   `accessMessageInMemoryMaxRatio` % of RAM, else the group's `brokerId` (0).
    /// - On a slave without `offsetCheckInSlave`, offsets are not corrected and
    ///   PULL_OFFSET_MOVED becomes PULL_RETRY_IMMEDIATELY suggesting the group's `brokerId`.
    pub fn decide(
        &self,
        status: GetStatus,
        requested_offset: u64,
        store_next_begin_offset: u64,
        suggest_pulling_from_slave: bool,
        group: &SubscriptionGroupConfig,
    ) -> PullDecision {
        let corrected = matches!(
            status,
            GetStatus::NoMessageInQueue
                | GetStatus::NoMatchedLogicQueue
                | GetStatus::OffsetTooSmall
                | GetStatus::OffsetOverflowOne
                | GetStatus::OffsetOverflowBadly
                | GetStatus::OffsetFoundNull
        );
        let next_begin_offset = if corrected && self.keeps_offset() {
            requested_offset
        } else {
            store_next_begin_offset
        };
        let mut suggest = if !self.slave_read_enable {
            MASTER_ID
        } else if suggest_pulling_from_slave {
            group.which_broker_when_consume_slowly
        } else {
            group.broker_id
        };
        let mut code = status_code(status, requested_offset);
        if code == response::PULL_OFFSET_MOVED && self.keeps_offset() {
            code = response::PULL_RETRY_IMMEDIATELY;
            suggest = group.broker_id;
        }
        PullDecision {
            code,
            suggest_which_broker_id: suggest,
            next_begin_offset,
        }
    }
}

/// Permission bit: readable (`PermName.PERM_READ`).
pub const PERM_READ: u32 = 4;

/// The master's broker id.
pub const MASTER_ID: i64 = 0;

/// Build the pull response: header fields, and the body as the stored records
/// concatenated byte for byte (copied here, on the pull pool, so page faults on
/// cold files never hit the network runtime).
pub fn pull_response(r: &GetResult, d: &PullDecision) -> RemotingCommand {
    let mut resp = RemotingCommand::response(d.code, None)
        .with_ext("suggestWhichBrokerId", d.suggest_which_broker_id)
        .with_ext("nextBeginOffset", d.next_begin_offset)
        .with_ext("minOffset", r.min_offset)
        .with_ext("maxOffset", r.max_offset);
    if d.code == response::SUCCESS {
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

/// What one read of a pull needs on the pull pool: the header, the tag
/// filter, the offset to read from and the group's settings.
#[derive(Debug, Clone)]
struct PullRead {
    h: PullHeader,
    filter: MessageFilter,
    offset: u64,
    group: SubscriptionGroupConfig,
}

impl Broker {
    /// PULL_MESSAGE: checks on the runtime, the read on `on` (the pull pool);
    /// a pull that finds nothing may be held (long polling) and read once more.
    /// [`HandlerError::Closed`] (send nothing) when the pull was held and its
    /// connection closed meanwhile.
    pub(super) async fn pull(self: &Arc<Self>, req: Request<'_>) -> HandlerResult {
        let Request { cmd, conn, on } = req;
        let h = PullHeader::parse(&cmd.ext_fields)?;
        // Not kept while the pull is held.
        drop(cmd);
        if let Some(refusal) = self.refuse_pull(&h) {
            return Ok(refusal);
        }
        let group = match self.check_group(&h.consumer_group).await? {
            Ok(g) => g,
            Err(r) => return Ok(r),
        };
        if let Some(refusal) = refuse_pull_of_group(&h, &group) {
            return Ok(refusal);
        }
        // RocketMQ's PullMessageProcessor: a group whose
        // consumeBroadcastEnable is off may not consume BROADCASTING.
        if !group.consume_broadcast_enable && self.clients.is_broadcasting(&h.consumer_group) {
            return Ok(RemotingCommand::error(
                response::NO_PERMISSION,
                format!(
                    "the consumer group[{}] can not consume by broadcast way",
                    name_for_message(&h.consumer_group)
                ),
            ));
        }
        let (expr, sql) = match self.pull_filter(&h) {
            Ok(x) => x,
            Err(refusal) => return Ok(refusal),
        };
        // A SQL92 filter runs in the store's read, over each record's raw
        // properties: what it refuses does not count against the batch.
        let filter = match sql {
            Some(sql) => MessageFilter::Records(sql),
            None => MessageFilter::from_expression(expr.as_deref().unwrap_or("*")),
        };
        let offset = u64::try_from(h.queue_offset).unwrap_or(u64::MAX);
        let read = PullRead {
            h,
            filter,
            offset,
            group,
        };

        let suspend = read.h.sys_flag & FLAG_SUSPEND != 0;
        // Registered before the first read, so that a close meanwhile is seen.
        let activity = suspend.then(|| self.hold.enter(conn));
        // A consumer that has caught up asks for the offset the queue has not
        // reached yet: the read finds nothing (it reads the queue's bounds, no
        // message). It runs here rather than on the pull pool, so a caught-up
        // consumer's pull parks without two thread wake-ups (see
        // docs/perf-notes.md#woken-pulls-read-inline). Reads of stored
        // messages, which may fault pages in from disk, stay on the pool.
        let first_on = if self
            .store
            .max_offset_in_queue(&read.h.topic, read.h.queue_id as u32)
            <= offset
        {
            Executor::Runtime
        } else {
            on
        };
        let first = self.pull_once(first_on, &read, true).await?;
        let Some(activity) = activity else {
            return Ok(first);
        };
        if first.code != response::PULL_NOT_FOUND {
            return Ok(first);
        }
        self.hold_pull(on, conn, activity, first, &read).await
    }

    /// The pull's expression and, for a SQL92 subscription, its compiled
    /// filter, as RocketMQ's `PullMessageProcessor`: from the request when it
    /// has the subscription flag (compiled, or the heartbeat's reused; a bad
    /// one is SUBSCRIPTION_PARSE_FAILED), else from the group's heartbeat (a
    /// filter that did not compile there is FILTER_DATA_NOT_EXIST). A
    /// non-TAG subscription without `enablePropertyFilter` is refused.
    fn pull_filter(
        &self,
        h: &PullHeader,
    ) -> Result<(Option<String>, Option<Arc<Sql92Filter>>), RemotingCommand> {
        let (expr, kind, compiled) = if h.sys_flag & FLAG_SUBSCRIPTION != 0 {
            let expr = h.subscription.clone();
            let kind = h.expression_type.clone();
            if is_tag_type(kind.as_deref()) {
                (expr, None, None)
            } else {
                let text = expr.as_deref().unwrap_or("");
                let f = match self.clients.filter_for(&h.consumer_group, &h.topic, text) {
                    Some(f) => f,
                    None => compile_filter(kind.as_deref().unwrap_or(""), text).map_err(|e| {
                        RemotingCommand::error(
                            response::SUBSCRIPTION_PARSE_FAILED,
                            format!("parse the consumer's subscription failed: {e}"),
                        )
                    })?,
                };
                (expr, kind, Some(f))
            }
        } else {
            match self.clients.pull_subscription(&h.consumer_group, &h.topic) {
                None => (None, None, None),
                Some(PullSubscription {
                    expression,
                    filter: None,
                }) => (Some(expression), None, None),
                Some(PullSubscription {
                    expression,
                    filter: Some((kind, f)),
                }) => {
                    let f = f.map_err(|_| {
                        RemotingCommand::error(
                            response::FILTER_DATA_NOT_EXIST,
                            "The broker's consumer filter data is not exist!Your expression may be wrong!",
                        )
                    })?;
                    (Some(expression), Some(kind), Some(f))
                }
            }
        };
        if let Some(kind) = &kind {
            if !self.cfg.enable_property_filter {
                return Err(RemotingCommand::error(
                    response::SYSTEM_ERROR,
                    format!("The broker does not support consumer to filter message by {kind}"),
                ));
            }
        }
        Ok((expr, compiled))
    }

    /// The checks of a pull before its group is looked up: the broker
    /// readable, the topic known, the queue id valid, the topic readable.
    /// `Some(answer)` refuses the pull.
    fn refuse_pull(&self, h: &PullHeader) -> Option<RemotingCommand> {
        if self.live.broker_permission() & PERM_READ == 0 {
            return Some(RemotingCommand::error(
                response::NO_PERMISSION,
                format!(
                    "the broker[{}] pulling message is forbidden",
                    self.cfg.broker_ip1
                ),
            ));
        }
        let Some(tc) = self.store.topic_config(&h.topic) else {
            return Some(RemotingCommand::error(
                response::TOPIC_NOT_EXIST,
                format!(
                    "topic[{}] not exist, apply first please!",
                    name_for_message(&h.topic)
                ),
            ));
        };
        if h.queue_id < 0 || h.queue_id as u32 >= tc.read_queue_nums {
            return Some(RemotingCommand::error(
                response::SYSTEM_ERROR,
                format!(
                    "queueId[{}] is illegal, topic:[{}] topicConfig.readQueueNums:[{}]",
                    h.queue_id,
                    name_for_message(&h.topic),
                    tc.read_queue_nums
                ),
            ));
        }
        if tc.perm & PERM_READ == 0 {
            return Some(RemotingCommand::error(
                response::NO_PERMISSION,
                format!(
                    "the topic[{}] pulling message is forbidden",
                    name_for_message(&h.topic)
                ),
            ));
        }
        None
    }

    /// Long polling of a pull whose first read found nothing (`first`): park
    /// until the queue grows past the offset (or the wait ends), then read once
    /// more; short-poll instead when the connection has its maximum parked.
    async fn hold_pull(
        self: &Arc<Self>,
        on: Executor,
        conn: &ConnInfo,
        activity: Activity<'_>,
        first: RemotingCommand,
        read: &PullRead,
    ) -> HandlerResult {
        let h = &read.h;
        let wait = if self.live.long_polling_enable() {
            let asked = u64::try_from(h.suspend_timeout_millis).unwrap_or(0);
            Duration::from_millis(asked.min(self.live.long_polling_max_suspend_ms()))
        } else {
            Duration::from_millis(self.live.short_polling_time_mills())
        };
        if wait.is_zero() {
            return Ok(first);
        }
        // Held from here on (parked, or short polling): `is_long_polling`.
        super::histograms::mark_long_polling();
        let queue_id = h.queue_id as u32;
        let parked = match self.hold.park(&activity, &h.topic, queue_id, read.offset) {
            Ok(p) => p,
            // Nobody is left to answer.
            Err(ParkRefused::Closed) => return Err(HandlerError::Closed),
            Err(ParkRefused::Full) => {
                // The connection has its maximum held: short polling (as
                // RocketMQ with long polling off). Wait `shortPollingTimeMills`
                // without being filed (no wake-up on arrival), then read again
                // and answer. Answering at once would have a push consumer that
                // owns more queues than the cap pull again at once, in a busy
                // loop; this bounds it to one pull per queue per short-poll
                // time. The wait holds the request's permit, so it counts
                // against `serverMaxRequestsPerConnection` like a held pull.
                drop(first);
                let short = Duration::from_millis(self.live.short_polling_time_mills()).min(wait);
                if !self.stopping.load(Ordering::Acquire) {
                    tokio::time::sleep(short).await;
                }
                if conn.is_closed() {
                    return Err(HandlerError::Closed);
                }
                return self.pull_once(on, read, false).await;
            }
        };
        // Not kept while the pull is held (it is read again on wake-up).
        drop(first);
        // Where the second read runs. A pull woken because its queue grew
        // reads messages the dispatch has just indexed: in memory, a copy of
        // at most one pull's batch. It reads them here, on the network
        // runtime, instead of hopping to the pull pool and back: two thread
        // wake-ups fewer between a send and its consumption (see
        // docs/perf-notes.md#woken-pulls-read-inline). A pull whose wait
        // timed out goes through the pool as its first read did.
        let mut reread_on = Executor::Runtime;
        if !self.stopping.load(Ordering::Acquire)
            && self.store.max_offset_in_queue(&h.topic, queue_id) <= read.offset
        {
            match parked.wait(wait).await {
                // Nobody is left to answer (the connection closed): do not
                // read again, send nothing.
                Wake::Closed => return Err(HandlerError::Closed),
                Wake::TimedOut => reread_on = on,
                Wake::Arrived => {}
            }
        }
        self.pull_once(reread_on, read, false).await
    }

    /// This broker's pull policy.
    pub fn pull_policy(&self) -> PullPolicy {
        PullPolicy {
            slave: self.store.role() == BrokerRole::Slave,
            slave_read_enable: self.live.slave_read_enable(),
            offset_check_in_slave: self.cfg.offset_check_in_slave,
        }
    }

    /// One read of a pull on `on`; the first read of a request also commits
    /// the offset it carries (not on a slave).
    async fn pull_once(
        self: &Arc<Self>,
        on: Executor,
        read: &PullRead,
        first: bool,
    ) -> HandlerResult {
        let PullRead {
            h,
            filter,
            offset,
            group,
        } = read.clone();
        let policy = self.pull_policy();
        let job = move |b: &Broker| {
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
                && b.store.role() != BrokerRole::Slave
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
                    let (n, size) = (r.messages.len() as u64, r.buffer_total_size() as u64);
                    if n > 0 {
                        b.offsets.commit_pull(
                            &h.consumer_group,
                            &h.topic,
                            h.queue_id as u32,
                            i64::try_from(r.next_begin_offset).unwrap_or(i64::MAX),
                        );
                    }
                    b.stats.on_get(
                        &b.cfg.broker_cluster_name,
                        &h.consumer_group,
                        &h.topic,
                        n,
                        size,
                    );
                    let d = policy.decide(
                        r.status,
                        offset,
                        r.next_begin_offset,
                        r.suggest_pulling_from_slave,
                        &group,
                    );
                    pull_response(&r, &d)
                }
                Err(e) => store_error_response(&e),
            }
        };
        self.run_on(on, "pull", job).await
    }
}

/// The checks of a pull against its group: the group may consume, and the
/// `Some(answer)` refuses the pull.
fn refuse_pull_of_group(
    h: &PullHeader,
    group: &SubscriptionGroupConfig,
) -> Option<RemotingCommand> {
    if !group.consume_enable {
        return Some(RemotingCommand::error(
            response::NO_PERMISSION,
            format!(
                "subscription group no permission, {}",
                name_for_message(&h.consumer_group)
            ),
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_mapping_follows_the_reference() {
        use GetStatus::*;
        let cases = [
            (Found, 0, response::SUCCESS),
            (NoMessageInQueue, 0, response::PULL_NOT_FOUND),
            (NoMessageInQueue, 3, response::PULL_OFFSET_MOVED),
            (OffsetOverflowOne, 9, response::PULL_NOT_FOUND),
            (OffsetOverflowBadly, 9, response::PULL_OFFSET_MOVED),
            (OffsetTooSmall, 0, response::PULL_OFFSET_MOVED),
            (NoMatchedMessage, 0, response::PULL_RETRY_IMMEDIATELY),
            (MessageWasRemoving, 0, response::PULL_RETRY_IMMEDIATELY),
            (OffsetFoundNull, 0, response::PULL_NOT_FOUND),
        ];
        for (status, offset, code) in cases {
            assert_eq!(status_code(status, offset), code, "{status:?} at {offset}");
        }
    }

    fn decide(p: PullPolicy, st: GetStatus, slow: bool) -> PullDecision {
        let g = SubscriptionGroupConfig::new("G");
        p.decide(st, 7, 3, slow, &g)
    }

    #[test]
    fn suggested_broker_follows_rocketmq_4_9() {
        let master = PullPolicy::default();
        let master_sre = PullPolicy {
            slave_read_enable: true,
            ..master
        };
        let slave = PullPolicy {
            slave: true,
            ..master
        };
        let slave_sre = PullPolicy {
            slave_read_enable: true,
            ..slave
        };
        // (policy, slow consumer, suggested broker id)
        let cases = [
            // slaveReadEnable=false: always the master, even for a slow consumer.
            (master, true, 0),
            (slave, true, 0),
            // slaveReadEnable=true: slow -> whichBrokerWhenConsumeSlowly (1), else brokerId (0).
            (master_sre, true, 1),
            (master_sre, false, 0),
            (slave_sre, true, 1),
            (slave_sre, false, 0),
        ];
        for (policy, slow, id) in cases {
            let d = decide(policy, GetStatus::Found, slow);
            assert_eq!(d.suggest_which_broker_id, id, "{policy:?}, slow {slow}");
        }
        // A slave without slaveReadEnable still answers what it found.
        assert_eq!(
            decide(slave, GetStatus::Found, false).code,
            response::SUCCESS
        );
        let mut g = SubscriptionGroupConfig::new("G");
        g.which_broker_when_consume_slowly = 2;
        g.broker_id = 1;
        let d = master_sre.decide(GetStatus::Found, 0, 1, true, &g);
        assert_eq!(d.suggest_which_broker_id, 2);
        let d = master_sre.decide(GetStatus::Found, 0, 1, false, &g);
        assert_eq!(d.suggest_which_broker_id, 1);
    }

    #[test]
    fn slave_keeps_out_of_range_offsets() {
        let master = PullPolicy::default();
        let slave = PullPolicy {
            slave: true,
            slave_read_enable: true,
            ..master
        };
        // The master corrects and says PULL_OFFSET_MOVED.
        let d = decide(master, GetStatus::OffsetOverflowBadly, false);
        assert_eq!(
            (d.code, d.next_begin_offset),
            (response::PULL_OFFSET_MOVED, 3)
        );
        // The slave keeps the offset and asks for a retry, suggesting brokerId.
        let d = decide(slave, GetStatus::OffsetOverflowBadly, true);
        assert_eq!(
            (d.code, d.next_begin_offset, d.suggest_which_broker_id),
            (response::PULL_RETRY_IMMEDIATELY, 7, 0)
        );
        let d = decide(slave, GetStatus::OffsetOverflowOne, false);
        assert_eq!((d.code, d.next_begin_offset), (response::PULL_NOT_FOUND, 7));
        // Found results are never corrected.
        let d = decide(slave, GetStatus::Found, false);
        assert_eq!(d.next_begin_offset, 3);
        // offsetCheckInSlave=true: the slave behaves as a master.
        let checking = PullPolicy {
            offset_check_in_slave: true,
            ..slave
        };
        let d = decide(checking, GetStatus::OffsetTooSmall, false);
        assert_eq!(
            (d.code, d.next_begin_offset),
            (response::PULL_OFFSET_MOVED, 3)
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
