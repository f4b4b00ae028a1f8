//! SEND_MESSAGE, SEND_MESSAGE_V2 and SEND_BATCH_MESSAGE (RocketMQ `SendMessageProcessor`).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use ferromq_engine::{Message, MessageProperties, PutResult, PutStatus, TopicConfig};

use super::{store_error_response, transaction, Broker, HandlerResult, Request};
use crate::remoting::{request, response, ExtFields, HeaderError, RemotingCommand};

/// Topics clients may not send to (`TopicValidator.NOT_ALLOWED_SEND_TOPIC_SET`).
const NOT_ALLOWED_SEND_TOPICS: &[&str] = &[
    "SCHEDULE_TOPIC_XXXX",
    "RMQ_SYS_TRANS_HALF_TOPIC",
    "RMQ_SYS_TRANS_OP_HALF_TOPIC",
    "TRANS_CHECK_MAX_TIME_TOPIC",
    "SELF_TEST_TOPIC",
    "OFFSET_MOVED_EVENT",
    "rmq_sys_wheel_timer",
];

/// A send request header, from the long (`SendMessageRequestHeader`) or the
/// single-letter (`SendMessageRequestHeaderV2`) field names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendHeader {
    /// Producer group.
    pub producer_group: String,
    /// Topic.
    pub topic: String,
    /// The auto-create template topic (`defaultTopic`, V2 `c`; `TBW102`
    /// when absent).
    pub default_topic: String,
    /// Queues for an auto-created topic.
    pub default_topic_queue_nums: i32,
    /// Queue id; negative picks one.
    pub queue_id: i32,
    /// `sysFlag`.
    pub sys_flag: i32,
    /// Producer timestamp, ms.
    pub born_timestamp: i64,
    /// Application flag.
    pub flag: i32,
    /// Encoded properties.
    pub properties: Option<String>,
    /// Reconsume times.
    pub reconsume_times: i32,
    /// `batch` (V2: `m`): the body is a batch even on SEND_MESSAGE / V2, as
    /// the C++ client sends it (`"batch":"1"` on code 10).
    pub batch: bool,
    /// `unitMode` (V2: `k`).
    pub unit_mode: bool,
}

/// Whether a send header is read with the short names (`SendMessageRequestHeaderV2`:
/// `a` producer group, `b` topic, ...): when `topic` is absent and `b`
/// present, whatever the request code, since clients differ. The ACL reads
/// the topic a send names with this same rule, so that it checks the topic
/// the send will write to.
pub(crate) fn uses_short_names(ext: &ExtFields) -> bool {
    ext.opt_str("topic").is_none() && ext.opt_str("b").is_some()
}

impl SendHeader {
    /// Read a send header. The short names are used when `topic` is absent and `b`
    /// present, whatever the request code, since clients differ.
    ///
    /// # Errors
    /// [`HeaderError`] for a missing or malformed required field.
    pub fn parse(ext: &ExtFields) -> Result<SendHeader, HeaderError> {
        let v2 = uses_short_names(ext);
        let k = |long: &'static str, short: &'static str| if v2 { short } else { long };
        Ok(SendHeader {
            producer_group: ext.get_str(k("producerGroup", "a"))?.to_string(),
            topic: ext.get_str(k("topic", "b"))?.to_string(),
            default_topic: ext
                .opt_str(k("defaultTopic", "c"))
                .unwrap_or(super::names::AUTO_CREATE_TOPIC_KEY)
                .to_string(),
            default_topic_queue_nums: ext
                .opt_i64(k("defaultTopicQueueNums", "d"))?
                .map(|v| v.clamp(1, 1024) as i32)
                .unwrap_or(4),
            queue_id: ext.get_i32(k("queueId", "e"))?,
            sys_flag: ext.opt_i64(k("sysFlag", "f"))?.unwrap_or(0) as i32,
            born_timestamp: ext.opt_i64(k("bornTimestamp", "g"))?.unwrap_or(0),
            flag: ext.opt_i64(k("flag", "h"))?.unwrap_or(0) as i32,
            properties: ext.opt_str(k("properties", "i")).map(str::to_string),
            reconsume_times: ext.opt_i64(k("reconsumeTimes", "j"))?.unwrap_or(0) as i32,
            batch: ext.opt_bool(k("batch", "m"))?.unwrap_or(false),
            unit_mode: ext.opt_bool(k("unitMode", "k"))?.unwrap_or(false),
        })
    }
}

/// `TopicValidator.validateTopic`: the engine's rule, re-exported where the
/// send path has always offered it.
pub use ferromq_engine::validate_topic;

/// One message of a batch body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchItem {
    /// Application flag.
    pub flag: i32,
    /// Body.
    pub body: Vec<u8>,
    /// Encoded properties.
    pub properties: Vec<u8>,
}

/// Split a SEND_BATCH_MESSAGE body: repeated `[TOTALSIZE 4][MAGIC 4][BODYCRC 4]
/// [FLAG 4][BODYLEN 4][BODY][PROPLEN 2][PROPS]`.
///
/// # Errors
/// A sentence when a length points past the body.
pub fn decode_batch(mut buf: &[u8]) -> Result<Vec<BatchItem>, String> {
    fn take<'a>(buf: &mut &'a [u8], n: usize, what: &str) -> Result<&'a [u8], String> {
        if buf.len() < n {
            return Err(format!("batch body ends inside {what}"));
        }
        let (a, b) = buf.split_at(n);
        *buf = b;
        Ok(a)
    }
    let mut out = Vec::new();
    while !buf.is_empty() {
        let head = take(&mut buf, 20, "a message header")?;
        let flag = i32::from_be_bytes([head[12], head[13], head[14], head[15]]);
        let body_len = i32::from_be_bytes([head[16], head[17], head[18], head[19]]);
        let body_len =
            usize::try_from(body_len).map_err(|_| format!("negative body length {body_len}"))?;
        let body = take(&mut buf, body_len, "a body")?.to_vec();
        let pl = take(&mut buf, 2, "a properties length")?;
        let plen = i16::from_be_bytes([pl[0], pl[1]]);
        let plen =
            usize::try_from(plen).map_err(|_| format!("negative properties length {plen}"))?;
        let properties = take(&mut buf, plen, "properties")?.to_vec();
        out.push(BatchItem {
            flag,
            body,
            properties,
        });
    }
    if out.is_empty() {
        return Err("empty batch".into());
    }
    Ok(out)
}

/// A batch whose encoded body is longer than `maxMessageSize` is refused
/// whole, as RocketMQ refuses it (MESSAGE_ILLEGAL, nothing stored).
///
/// # Errors
/// The remark for the refusal.
pub fn check_batch_size(body_len: usize, max_message_size: u32) -> Result<(), String> {
    if body_len > max_message_size as usize {
        return Err(format!(
            "the batch body is {body_len} bytes, more than maxMessageSize {max_message_size}; \
             nothing stored (send smaller batches)"
        ));
    }
    Ok(())
}

/// WARN lines about SYNC_MASTER sends answered SLAVE_NOT_AVAILABLE: one a
/// minute while it lasts.
static NO_SLAVE_WARN: crate::warn_limit::WarnLimiter =
    crate::warn_limit::WarnLimiter::new(std::time::Duration::from_secs(60));

/// The warning of a SYNC_MASTER that answered a send SLAVE_NOT_AVAILABLE
/// (stored here, not replicated): clients that retry on that answer store
/// the message again each time.
fn warn_no_slave() {
    if let Some(suppressed) = NO_SLAVE_WARN.check_key(0) {
        tracing::warn!(
            suppressed,
            "SYNC_MASTER with no slave connected: sends are stored here but answered \
             SLAVE_NOT_AVAILABLE, and clients that retry on that answer store duplicates; \
             start a slave or set brokerRole=ASYNC_MASTER"
        );
    }
}

/// The response to a put, RocketMQ's `handlePutMessageResult`.
pub fn put_response(
    res: Result<PutResult, ferromq_engine::Error>,
    queue_id: u32,
) -> RemotingCommand {
    match res {
        Ok(pr) => {
            let code = match pr.status {
                PutStatus::PutOk => response::SUCCESS,
                PutStatus::FlushDiskTimeout => response::FLUSH_DISK_TIMEOUT,
                PutStatus::FlushSlaveTimeout => response::FLUSH_SLAVE_TIMEOUT,
                PutStatus::SlaveNotAvailable => response::SLAVE_NOT_AVAILABLE,
            };
            let mut r = RemotingCommand::response(code, None)
                .with_ext("msgId", pr.msg_id())
                .with_ext("queueId", queue_id)
                .with_ext("queueOffset", pr.queue_offset)
                .with_ext("MSG_REGION", "DefaultRegion")
                .with_ext("TRACE_ON", "true");
            if pr.status == PutStatus::SlaveNotAvailable {
                warn_no_slave();
            }
            if code != response::SUCCESS {
                r.remark = Some(format!("{:?}", pr.status));
            }
            r
        }
        Err(e) => store_error_response(&e),
    }
}

/// What the send pool hands back: an answer, a written put that still waits
/// for its sync flush (answered once the wait is over), or the channel on
/// which the replication layer answers a SYNC_MASTER put.
enum Sent {
    Done(RemotingCommand),
    Waiting(ferromq_engine::PutResult, u32, std::time::Instant),
    Replicating(PutReply, u32),
}

/// Where a waiting put's final result arrives.
type PutReply = tokio::sync::oneshot::Receiver<ferromq_engine::Result<ferromq_engine::PutResult>>;

/// The engine's callback for a waiting put: pass its result to `reply` (only
/// that: the callback may run on the HA thread that reads a slave's acks, and
/// the response is built by the task that awaits it).
fn reply_with(
    reply: tokio::sync::oneshot::Sender<ferromq_engine::Result<ferromq_engine::PutResult>>,
) -> ferromq_engine::PutCallback {
    Box::new(move |res| {
        let _ = reply.send(res);
    })
}

/// The response to the put whose result arrives on `rx`, or SYSTEM_ERROR when
/// its sender is gone.
async fn await_reply(rx: PutReply, queue_id: u32) -> RemotingCommand {
    match rx.await {
        Ok(res) => put_response(res, queue_id),
        Err(_) => RemotingCommand::error(response::SYSTEM_ERROR, "the put waiter stopped"),
    }
}

/// A written put waiting for its sync or slave, and where its answer goes.
#[derive(Debug)]
struct WaitJob {
    put: ferromq_engine::PutResult,
    written_at: std::time::Instant,
    reply: tokio::sync::oneshot::Sender<ferromq_engine::Result<ferromq_engine::PutResult>>,
}

/// One thread that waits for SYNC_FLUSH puts in log order and answers them
/// (RocketMQ's GroupCommitService): one wake-up per sync answers every put it
/// covers, instead of a thread per waiting put. Each put keeps its own
/// deadline, counted from when it was written. Under SYNC_MASTER too, the put
/// then waits for its slave without holding this thread (the replication
/// layer answers it).
#[derive(Debug)]
pub(super) struct PutWaiter {
    tx: std::sync::mpsc::Sender<WaitJob>,
}

impl PutWaiter {
    pub(super) fn start(store: Arc<ferromq_engine::MessageStore>) -> std::io::Result<Self> {
        let (tx, rx) = std::sync::mpsc::channel::<WaitJob>();
        std::thread::Builder::new()
            .name("ferromq-put-wait".into())
            .spawn(move || {
                // Ends when the broker (the only sender) is dropped.
                while let Ok(first) = rx.recv() {
                    let mut jobs = vec![first];
                    jobs.extend(rx.try_iter());
                    jobs.sort_by_key(|j| j.put.commit_log_offset);
                    for j in jobs {
                        store.wait_put_then(j.put, j.written_at, reply_with(j.reply));
                    }
                }
            })?;
        Ok(PutWaiter { tx })
    }

    /// The answer to `put` once its wait is over.
    async fn wait(
        &self,
        put: ferromq_engine::PutResult,
        queue_id: u32,
        written_at: std::time::Instant,
    ) -> RemotingCommand {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let job = WaitJob {
            put,
            written_at,
            reply,
        };
        if self.tx.send(job).is_err() {
            return RemotingCommand::error(response::SYSTEM_ERROR, "the put waiter stopped");
        }
        await_reply(rx, queue_id).await
    }
}

impl Broker {
    /// SEND_MESSAGE, SEND_MESSAGE_V2, SEND_BATCH_MESSAGE: checks on the
    /// runtime, the write on `on` (the send pool), the wait for a sync flush
    /// or a slave off it.
    pub(super) async fn send(self: &Arc<Self>, req: Request<'_>) -> HandlerResult {
        let h = SendHeader::parse(&req.cmd.ext_fields)?;
        if let Err(refused) = self.check_send(&h) {
            return Ok(refused);
        }
        if h.properties
            .as_deref()
            .is_some_and(|p| p.contains("TRAN_MSG\u{1}true"))
        {
            // The group is kept (check-backs go to its connections) and stored
            // in the half message: checked like any group.
            if let Err(why) = ferromq_engine::validate_group(&h.producer_group) {
                return Ok(super::names::refuse(format!("producer {why}")));
            }
            // Check-backs can reach this producer before its first heartbeat.
            self.clients
                .note_producer_connection(&h.producer_group, req.conn);
        }
        let batch = req.cmd.code == request::SEND_BATCH_MESSAGE || h.batch;
        if batch {
            // RocketMQ limits a batch's whole body (`DefaultMessageStore.checkMessages`);
            // checked here, once, before the body is split.
            if let Err(why) =
                check_batch_size(req.cmd.body.len(), self.store.config().max_message_size)
            {
                return Ok(RemotingCommand::error(response::MESSAGE_ILLEGAL, why));
            }
        }
        let born = req.conn.peer;
        self.store_send(req.on, h, req.cmd.body, born, batch, true)
            .await
    }

    /// The checks every send and reply passes before anything is stored
    /// (RocketMQ's `AbstractSendMessageProcessor.msgCheck`, less the topic
    /// and queue checks of [`Broker::store_send`]): a valid topic, a broker
    /// that takes writes, a topic clients may send to. `Err` is the refusal.
    pub(super) fn check_send(&self, h: &SendHeader) -> Result<(), RemotingCommand> {
        if let Err(why) = validate_topic(&h.topic) {
            return Err(RemotingCommand::error(response::SYSTEM_ERROR, why));
        }
        // RocketMQ's `AbstractSendMessageProcessor.msgCheck`: a broker whose
        // permission (brokerPermission, changeable live) lacks write refuses sends.
        if self.live.broker_permission() & 2 == 0 {
            return Err(RemotingCommand::error(
                response::NO_PERMISSION,
                format!(
                    "the broker[{}] sending message is forbidden",
                    self.cfg.broker_ip1
                ),
            ));
        }
        if NOT_ALLOWED_SEND_TOPICS.contains(&h.topic.as_str()) {
            return Err(RemotingCommand::error(
                response::NO_PERMISSION,
                format!(
                    "Sending message to topic[{}] is forbidden.",
                    ferromq_engine::message::name_for_message(&h.topic)
                ),
            ));
        }
        Ok(())
    }

    /// Store one checked send (or a batch) and answer as the send path
    /// does: find (or auto-create) the topic, pick the queue, write on `on`
    /// (the send pool), then wait for a sync flush or a slave off it.
    /// `stamp_cluster` adds the `CLUSTER` property (sends; RocketMQ's reply
    /// path stores the reply's properties as they came).
    pub(super) async fn store_send(
        self: &Arc<Self>,
        on: super::Executor,
        h: SendHeader,
        body: Vec<u8>,
        born: SocketAddr,
        batch: bool,
        stamp_cluster: bool,
    ) -> HandlerResult {
        let outcome = self
            .run_on(on, "send", move |b| {
                b.send_blocking(h, body, born, batch, stamp_cluster)
            })
            .await?;
        Ok(match outcome {
            Sent::Done(r) => r,
            // SYNC_FLUSH: the put is written; wait for its sync off the send
            // pool (RocketMQ's asyncPutMessage), so that the pool's few threads
            // keep writing while many puts share one sync. Under SYNC_MASTER the
            // put-wait thread then registers the slave wait and moves on.
            Sent::Waiting(put, queue_id, written_at) => {
                self.put_waiter.wait(put, queue_id, written_at).await
            }
            // SYNC_MASTER alone: answered from the HA thread that reads the ack.
            Sent::Replicating(rx, queue_id) => await_reply(rx, queue_id).await,
        })
    }

    /// Runs on the send pool: validate, write, and answer, or hand back a
    /// written put that still waits for its sync or slave.
    fn send_blocking(
        &self,
        h: SendHeader,
        body: Vec<u8>,
        born: SocketAddr,
        batch: bool,
        stamp_cluster: bool,
    ) -> Sent {
        match self.send_write(h, body, born, batch, stamp_cluster) {
            Ok(sent) => sent,
            Err(r) => Sent::Done(r),
        }
    }

    /// Validate and write one send: find (or auto-create) the topic, pick
    /// the queue, build the message(s), put them, and say what the answer
    /// waits for. `Err` is the answer to a refused send.
    fn send_write(
        &self,
        h: SendHeader,
        body: Vec<u8>,
        born: SocketAddr,
        batch: bool,
        stamp_cluster: bool,
    ) -> Result<Sent, RemotingCommand> {
        let tc = self.send_topic(&h)?;
        let queue_id = self.send_queue_id(&h, &tc, born)?;
        let template = MessageTemplate {
            h: &h,
            queue_id,
            born,
            cluster: stamp_cluster.then_some(self.cfg.broker_cluster_name.as_str()),
        };
        let (wait, res) = if batch {
            self.put_batch(&template, &body)?
        } else {
            let props = h.properties.as_deref().unwrap_or("").as_bytes();
            self.put_single(template.make(h.flag, body, props)?)?
        };
        if let Ok(pr) = &res {
            let (n, size) = (u64::from(pr.message_count), u64::from(pr.wrote_bytes));
            self.stats
                .on_put(&self.cfg.broker_cluster_name, &h.topic, n, size);
            if let Some(hist) = self.histograms.get() {
                let props = h.properties.as_deref().unwrap_or("");
                hist.record_send(&h.topic, props, size, n);
            }
        }
        Ok(match res {
            Ok(put) if wait && !self.store.wait_put_blocks() => {
                // SYNC_MASTER without SYNC_FLUSH: the HA reader that sees the
                // slave's ack answers the put, one hop from the connection.
                let (reply, rx) = tokio::sync::oneshot::channel();
                self.store
                    .wait_put_then(put, std::time::Instant::now(), reply_with(reply));
                Sent::Replicating(rx, queue_id)
            }
            Ok(put) if wait => Sent::Waiting(put, queue_id, std::time::Instant::now()),
            res => Sent::Done(put_response(res, queue_id)),
        })
    }

    /// The topic of a send; unknown, it is created when
    /// `autoCreateTopicEnable` is on (with the rules UPDATE_AND_CREATE_TOPIC
    /// applies), refused otherwise.
    fn send_topic(&self, h: &SendHeader) -> Result<TopicConfig, RemotingCommand> {
        match self.store.topic_config(&h.topic) {
            Some(tc) => Ok(tc),
            None if self.cfg.auto_create_topic_enable => {
                // Exactly what UPDATE_AND_CREATE_TOPIC would accept.
                if let Err(why) =
                    super::names::check_creatable_topic(&h.topic, &self.cfg.broker_cluster_name)
                {
                    return Err(super::names::refuse(why));
                }
                let n = (h.default_topic_queue_nums.max(1) as u32)
                    .min(self.cfg.default_topic_queue_nums.max(1));
                match self.store.create_topic(&h.topic, n) {
                    Ok(tc) => {
                        tracing::info!(topic = %h.topic, queues = n, producer_group = %h.producer_group, "topic auto-created");
                        self.register_now.notify_one();
                        Ok(tc)
                    }
                    Err(e) => Err(store_error_response(&e)),
                }
            }
            None => Err(RemotingCommand::error(
                response::TOPIC_NOT_EXIST,
                format!(
                    "topic[{}] not exist, apply first please!",
                    ferromq_engine::message::name_for_message(&h.topic)
                ),
            )),
        }
    }

    /// The queue a send goes to: the one asked for, or round robin over the
    /// write queues when negative; refused beyond the topic's queues.
    fn send_queue_id(
        &self,
        h: &SendHeader,
        tc: &TopicConfig,
        born: SocketAddr,
    ) -> Result<u32, RemotingCommand> {
        let write_queues = tc.write_queue_nums.max(1);
        let queue_id = if h.queue_id < 0 {
            self.next_queue.fetch_add(1, Ordering::Relaxed) % write_queues
        } else {
            h.queue_id as u32
        };
        if queue_id >= tc.write_queue_nums.max(tc.read_queue_nums) {
            return Err(RemotingCommand::error(
                response::SYSTEM_ERROR,
                format!(
                    "request queueId[{queue_id}] is illegal, topic {} has {write_queues} queues, producer: {born}",
                    ferromq_engine::message::name_for_message(&h.topic)
                ),
            ));
        }
        Ok(queue_id)
    }

    /// Put the messages of a batch body (no transactional message may be in
    /// one): whether the answer waits, and the put's result.
    fn put_batch(
        &self,
        template: &MessageTemplate<'_>,
        body: &[u8],
    ) -> Result<PutOutcome, RemotingCommand> {
        let items =
            decode_batch(body).map_err(|e| RemotingCommand::error(response::MESSAGE_ILLEGAL, e))?;
        let mut msgs = Vec::with_capacity(items.len());
        for it in items {
            match template.make(it.flag, it.body, &it.properties) {
                Ok(m) if transaction::is_half_request(&m.properties) => {
                    return Err(RemotingCommand::error(
                        response::MESSAGE_ILLEGAL,
                        "transactional messages cannot be sent in a batch",
                    ))
                }
                Ok(m) => msgs.push(m),
                Err(r) => return Err(r),
            }
        }
        let wait = self.store.put_needs_wait(&msgs[0]);
        Ok((wait, self.store.put_messages_nowait(&msgs)))
    }

    /// Put one message; a transactional one (`TRAN_MSG=true`) is stored as a
    /// half message, unless `rejectTransactionMessage` refuses it.
    fn put_single(&self, mut m: Message) -> Result<PutOutcome, RemotingCommand> {
        if transaction::is_half_request(&m.properties) {
            if self.live.reject_transaction_message() {
                return Err(RemotingCommand::error(
                    response::NO_PERMISSION,
                    format!(
                        "the broker[{}] sending transaction message is forbidden",
                        self.cfg.broker_ip1
                    ),
                ));
            }
            if let Err(e) = self.ensure_half_topic() {
                return Err(store_error_response(&e));
            }
            transaction::to_half(&mut m);
        }
        let wait = self.store.put_needs_wait(&m);
        Ok((wait, self.store.put_message_nowait(&m)))
    }
}

/// Whether a put's answer waits (sync flush or slave), and the put's result.
type PutOutcome = (bool, Result<PutResult, ferromq_engine::Error>);

/// What every message of one send shares: its header, queue, producer
/// address and the broker's cluster (the `CLUSTER` property, when set).
struct MessageTemplate<'a> {
    h: &'a SendHeader,
    queue_id: u32,
    born: SocketAddr,
    cluster: Option<&'a str>,
}

impl MessageTemplate<'_> {
    /// One message of the send, with its flag, body and encoded properties.
    fn make(&self, flag: i32, body: Vec<u8>, props: &[u8]) -> Result<Message, RemotingCommand> {
        let h = self.h;
        let mut properties = MessageProperties::decode(props).map_err(|e| {
            RemotingCommand::error(response::MESSAGE_ILLEGAL, format!("bad properties: {e}"))
        })?;
        if let Some(cluster) = self.cluster {
            properties.insert("CLUSTER", cluster.to_string());
        }
        let mut m = Message::new(h.topic.clone(), body);
        m.queue_id = self.queue_id;
        m.flag = flag;
        m.properties = properties;
        m.sys_flag = h.sys_flag;
        m.born_timestamp_ms = h.born_timestamp;
        m.born_host = self.born;
        m.reconsume_times = h.reconsume_times;
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_and_v2_headers() {
        let mut e = ExtFields::new();
        for (k, v) in [
            ("a", "P"),
            ("b", "T"),
            ("e", "3"),
            ("f", "0"),
            ("g", "5"),
            ("h", "0"),
            ("i", "TAGS\u{1}x"),
        ] {
            e.insert(k, v);
        }
        let h = SendHeader::parse(&e).unwrap();
        assert_eq!(
            (h.topic.as_str(), h.queue_id, h.born_timestamp),
            ("T", 3, 5)
        );
        assert_eq!(h.properties.as_deref(), Some("TAGS\u{1}x"));
        assert!(!h.batch);
        e.insert("m", "1");
        assert!(SendHeader::parse(&e).unwrap().batch);
        let mut e = ExtFields::new();
        for (k, v) in [("producerGroup", "P"), ("topic", "T"), ("queueId", "1")] {
            e.insert(k, v);
        }
        assert_eq!(SendHeader::parse(&e).unwrap().queue_id, 1);
        e.0.remove("queueId");
        assert!(SendHeader::parse(&e).is_err());
    }

    #[test]
    fn batch_size_limit() {
        assert!(check_batch_size(4, 4).is_ok());
        let why = check_batch_size(5, 4).unwrap_err();
        assert!(
            why.contains("5 bytes") && why.contains("maxMessageSize 4"),
            "{why}"
        );
    }

    #[test]
    fn batch_body() {
        let mut b = Vec::new();
        for (body, props) in [(&b"one"[..], &b"TAGS\x01a"[..]), (b"", b"")] {
            let total = 20 + body.len() + 2 + props.len();
            b.extend_from_slice(&(total as i32).to_be_bytes());
            b.extend_from_slice(&[0; 8]);
            b.extend_from_slice(&7i32.to_be_bytes());
            b.extend_from_slice(&(body.len() as i32).to_be_bytes());
            b.extend_from_slice(body);
            b.extend_from_slice(&(props.len() as i16).to_be_bytes());
            b.extend_from_slice(props);
        }
        let items = decode_batch(&b).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].flag, 7);
        assert_eq!(items[0].body, b"one");
        for cut in 1..b.len() {
            let _ = decode_batch(&b[..cut]);
        }
        assert!(decode_batch(&b[..b.len() - 1]).is_err());
        assert!(decode_batch(&[]).is_err());
    }
}
