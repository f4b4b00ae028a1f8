//! The broker's request table: each request code, the handler that answers it
//! and the executor its blocking step runs on (RocketMQ's
//! `BrokerController.registerProcessor`, which pairs each code with a
//! processor and a thread pool).
//!
//! Every handler has the one signature
//! `async fn(&Arc<Broker>, Request<'_>) -> HandlerResult` (a [`Request`] is the
//! command, its connection and its executor): it decodes its header on the network runtime (a bad header is returned with
//! `?` as a [`HandlerError`]), then runs its blocking step with
//! `Broker::run_on` on the executor the table gave it. A full pool
//! (SYSTEM_BUSY) and a lost task (SYSTEM_ERROR) are answered in
//! [`HandlerError::into_response`], the one place for both.
//!
//! The table is a `match` that calls each handler directly (no dynamic
//! call), and boxes each handler's future: a request's task is then as big
//! as its own handler's state, not the biggest handler's. Unboxed, every
//! task was about 5 KB (the largest arm), and 100,000 held pulls cost the
//! broker 660 MB instead of under 400 MB (`tests/long_poll_abuse.rs`); one
//! allocation per request is the price. `tests/request_future_size.rs` keeps
//! the request future small, so an arm added unboxed shows up there.
//!
//! With `aclEnable=true`, every request is first checked against the plain
//! ACL rules ([`acl_refusal`]), as RocketMQ 4.9 runs its `AclValidator` in an
//! RPC hook before any processor: a refused request reaches no handler and
//! is answered SYSTEM_ERROR with the validator's remark.

use std::net::SocketAddr;
use std::sync::Arc;

use super::{assignment, call_client, names, ops_list, ops_mut, reply, Broker, BUSY_REMARK};
use crate::acl::AclRules;
use crate::remoting::request::*;
use crate::remoting::{response, ConnInfo, HeaderError, RemotingCommand};

/// The ACL's answer to `req` from `peer`: `None` when it may proceed, else
/// RocketMQ 4.9's refusal ([`crate::acl::refusal::refusal_with`]).
pub(crate) fn acl_refusal(
    rules: &AclRules,
    req: &RemotingCommand,
    peer: SocketAddr,
) -> Option<RemotingCommand> {
    crate::acl::refusal::refusal_with(req, peer, |r| rules.check(r))
}

/// Request codes whose answers hold fastjson object-key maps
/// (`Map<MessageQueue, _>`): GET_TOPIC_STATS_INFO, GET_CONSUME_STATS,
/// GET_BROKER_CONSUME_STATS, INVOKE_BROKER_TO_RESET_OFFSET,
/// INVOKE_BROKER_TO_GET_CONSUMER_STATUS and the relayed
/// GET_CONSUMER_RUNNING_INFO.
const OBJECT_KEY_ANSWERS: &[i32] = &[202, 208, 317, 222, 223, 307];

/// `LanguageCode.RUST`.
const LANGUAGE_RUST: u8 = 12;

/// For a rocketmq-rust client (language RUST), an answer's fastjson
/// object keys rewritten as JSON string keys holding the key object's text
/// (`{"{\"brokerName\":..}":..}`). rocketmq-rust 1.0 (its admin CLI and
/// client) reads these bodies with plain serde_json and fails on fastjson's
/// object keys, which a Java broker writes too; string keys are what its own
/// broker writes and what its `any_key_map` fields read. Java, C++, Go and
/// Node clients keep getting fastjson's form. A body that does not parse is
/// left as it is.
fn string_keys_for_rust(code: i32, language: u8, mut resp: RemotingCommand) -> RemotingCommand {
    if language != LANGUAGE_RUST
        || resp.code != crate::remoting::response::SUCCESS
        || resp.body.is_empty()
        || !OBJECT_KEY_ANSWERS.contains(&code)
    {
        return resp;
    }
    let rewritten = std::str::from_utf8(&resp.body)
        .ok()
        .and_then(|t| crate::remoting::json::parse_fastjson(t).ok())
        .and_then(|v| serde_json::to_vec(&v).ok());
    if let Some(body) = rewritten {
        resp.body = body;
    }
    resp
}

/// Where a handler's blocking step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Executor {
    /// On the network runtime: the handler never blocks (in-memory tables).
    Runtime,
    /// On tokio's blocking threads (`spawn_blocking`): store reads and file
    /// writes that are rare and must not wait behind the send or pull pool.
    Blocking,
    /// On the send pool (`sendMessageThreadPoolNums`, bounded queue): writes to
    /// the commitlog.
    SendPool,
    /// On the pull pool (`pullMessageThreadPoolNums`, bounded queue): reads for
    /// consumers.
    PullPool,
}

/// Why a handler ends without its normal answer.
#[derive(Debug)]
pub enum HandlerError {
    /// A missing or malformed header field (answered as [`HeaderError`] maps it).
    Header(HeaderError),
    /// The executor's pool queue is full: SYSTEM_BUSY, RocketMQ's flow control.
    Busy,
    /// A pool job ended without an answer (it panicked): SYSTEM_ERROR
    /// "`<task>` task failed".
    Lost(&'static str),
    /// A blocking task failed (it panicked): SYSTEM_ERROR with tokio's error.
    Panicked(String),
    /// The pull was held and its connection closed meanwhile: nothing is sent.
    Closed,
}

/// One request as its handler gets it.
#[derive(Debug)]
pub struct Request<'a> {
    /// The command: code, header fields, body.
    pub cmd: RemotingCommand,
    /// The connection it came on.
    pub conn: &'a Arc<ConnInfo>,
    /// Where its blocking step runs (from the table).
    pub on: Executor,
}

/// What a handler returns.
pub type HandlerResult = Result<RemotingCommand, HandlerError>;

impl From<HeaderError> for HandlerError {
    fn from(e: HeaderError) -> Self {
        HandlerError::Header(e)
    }
}

impl HandlerError {
    /// The answer to send, `None` for nothing.
    pub fn into_response(self) -> Option<RemotingCommand> {
        Some(match self {
            HandlerError::Header(e) => e.into(),
            HandlerError::Busy => RemotingCommand::error(response::SYSTEM_BUSY, BUSY_REMARK),
            HandlerError::Lost(task) => {
                RemotingCommand::error(response::SYSTEM_ERROR, format!("{task} task failed"))
            }
            HandlerError::Panicked(e) => RemotingCommand::error(response::SYSTEM_ERROR, e),
            HandlerError::Closed => return None,
        })
    }
}

impl Broker {
    /// Answer one request: check it against the ACL (when enabled) and the
    /// names it carries, then call its handler from the table with its
    /// executor. `None` sends nothing (a held pull whose connection closed).
    pub(super) async fn dispatch(
        self: &Arc<Self>,
        conn: &Arc<ConnInfo>,
        req: RemotingCommand,
    ) -> Option<RemotingCommand> {
        // Before any handler, as RocketMQ's RPC hook.
        if let Some(acl) = &self.acl {
            if let Some(refusal) = acl.with_rules(|rules| acl_refusal(rules, &req, conn.peer)) {
                return Some(refusal);
            }
        }
        // Before anything is looked up or echoed.
        if let Err(refusal) = names::check_request_names(&req) {
            return Some(refusal);
        }
        use Executor::*;
        let code = req.code;
        let language = req.language;
        let r = move |on| Request { cmd: req, conn, on };
        #[rustfmt::skip]
        let answer = match code {
            // SendMessageProcessor
            SEND_MESSAGE | SEND_MESSAGE_V2 | SEND_BATCH_MESSAGE => Box::pin(self.send(r(SendPool))).await,
            CONSUMER_SEND_MSG_BACK => Box::pin(self.consumer_send_msg_back(r(SendPool))).await,
            // ReplyMessageProcessor (reply.rs)
            reply::code::SEND_REPLY_MESSAGE | reply::code::SEND_REPLY_MESSAGE_V2 => Box::pin(self.reply(r(SendPool))).await,
            // PullMessageProcessor
            PULL_MESSAGE | LITE_PULL_MESSAGE => Box::pin(self.pull(r(PullPool))).await,
            // ConsumerManageProcessor
            QUERY_CONSUMER_OFFSET => Box::pin(self.query_consumer_offset(r(Blocking))).await,
            UPDATE_CONSUMER_OFFSET => Box::pin(self.update_consumer_offset(r(Runtime))).await,
            GET_CONSUMER_LIST_BY_GROUP => Box::pin(self.consumer_list(r(Runtime))).await,
            // ClientManageProcessor
            HEART_BEAT => Box::pin(self.heart_beat(r(Blocking))).await,
            UNREGISTER_CLIENT => Box::pin(self.unregister_client(r(Runtime))).await,
            // QueryMessageProcessor
            QUERY_MESSAGE => Box::pin(self.query_message(r(Blocking))).await,
            VIEW_MESSAGE_BY_ID => Box::pin(self.view_message_by_id(r(Blocking))).await,
            SEARCH_OFFSET_BY_TIMESTAMP => Box::pin(self.search_offset(r(Blocking))).await,
            GET_EARLIEST_MSG_STORETIME => Box::pin(self.earliest_msg_store_time(r(Blocking))).await,
            GET_MAX_OFFSET => Box::pin(self.get_max_offset(r(Runtime))).await,
            GET_MIN_OFFSET => Box::pin(self.get_min_offset(r(Runtime))).await,
            QUERY_BROKER_OFFSET => Box::pin(self.query_broker_offset(r(Runtime))).await,
            // AdminBrokerProcessor
            UPDATE_AND_CREATE_TOPIC => Box::pin(self.create_topic(r(Blocking))).await,
            GET_ALL_TOPIC_CONFIG => Box::pin(self.all_topic_config(r(Runtime))).await,
            GET_BROKER_RUNTIME_INFO => Box::pin(self.broker_runtime_info(r(Blocking))).await,
            GET_BROKER_CONFIG => Box::pin(self.broker_config(r(Runtime))).await,
            TRIGGER_DELETE_FILES | DELETE_EXPIRED_COMMITLOG => Box::pin(self.delete_expired_files(r(Runtime))).await,
            GET_ALL_CONSUMER_OFFSET => Box::pin(self.all_consumer_offset(r(Runtime))).await,
            GET_ALL_SUBSCRIPTIONGROUP_CONFIG => Box::pin(self.all_subscription_group(r(Runtime))).await,
            GET_ALL_DELAY_OFFSET => Box::pin(self.all_delay_offset(r(Runtime))).await,
            LOCK_BATCH_MQ => Box::pin(self.lock_batch_mq(r(Runtime))).await,
            UNLOCK_BATCH_MQ => Box::pin(self.unlock_batch_mq(r(Runtime))).await,
            UPDATE_AND_CREATE_ACL_CONFIG => Box::pin(self.update_acl_account(r(Blocking))).await,
            DELETE_ACL_CONFIG => Box::pin(self.delete_acl_account(r(Blocking))).await,
            GET_BROKER_CLUSTER_ACL_INFO => Box::pin(self.acl_version_info(r(Runtime))).await,
            UPDATE_GLOBAL_WHITE_ADDRS_CONFIG => Box::pin(self.update_acl_global_white(r(Blocking))).await,
            GET_BROKER_CLUSTER_ACL_CONFIG => Box::pin(self.acl_config(r(Blocking))).await,
            // AdminBrokerProcessor, mutating operations (ops_mut.rs)
            ops_mut::code::INVOKE_BROKER_TO_RESET_OFFSET => Box::pin(self.reset_offset(r(Blocking))).await,
            ops_mut::code::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP => Box::pin(self.update_subscription_group(r(Blocking))).await,
            ops_mut::code::DELETE_SUBSCRIPTIONGROUP => Box::pin(self.delete_subscription_group(r(Blocking))).await,
            ops_mut::code::DELETE_TOPIC_IN_BROKER => Box::pin(self.delete_topic(r(Blocking))).await,
            UPDATE_BROKER_CONFIG => Box::pin(self.update_broker_config(r(Blocking))).await,
            // rocketmq-rust's list forms (ops_list.rs)
            ops_list::code::DELETE_TOPIC_IN_BROKER_LIST => Box::pin(self.delete_topic_list(r(Blocking))).await,
            ops_list::code::DELETE_SUBSCRIPTION_GROUP_LIST => Box::pin(self.delete_subscription_group_list(r(Blocking))).await,
            // AdminBrokerProcessor, answered by asking a consumer (call_client.rs)
            call_client::code::GET_CONSUMER_RUNNING_INFO => Box::pin(self.consumer_running_info(r(Runtime))).await,
            call_client::code::CONSUME_MESSAGE_DIRECTLY => Box::pin(self.consume_message_directly(r(Blocking))).await,
            ops_mut::code::INVOKE_BROKER_TO_GET_CONSUMER_STATUS => Box::pin(self.consumer_status(r(Runtime))).await,
            // AdminBrokerProcessor, read-only admin and stats (ops_stats.rs)
            GET_TOPIC_STATS_INFO => Box::pin(self.topic_stats_info(r(Blocking))).await,
            GET_CONSUMER_CONNECTION_LIST => Box::pin(self.consumer_connection_list(r(Runtime))).await,
            GET_PRODUCER_CONNECTION_LIST => Box::pin(self.producer_connection_list(r(Runtime))).await,
            GET_CONSUME_STATS => Box::pin(self.consume_stats(r(Blocking))).await,
            QUERY_TOPIC_CONSUME_BY_WHO => Box::pin(self.topic_consume_by_who(r(Blocking))).await,
            GET_TOPIC_CONFIG => Box::pin(self.topic_config(r(Runtime))).await,
            GET_ALL_PRODUCER_INFO => Box::pin(self.all_producer_info(r(Runtime))).await,
            VIEW_BROKER_STATS_DATA => Box::pin(self.view_broker_stats_data(r(Runtime))).await,
            GET_BROKER_CONSUME_STATS => Box::pin(self.broker_consume_stats(r(Blocking))).await,
            // Controller mode (controller_mode.rs)
            ferromq_controller::request_code::NOTIFY_BROKER_ROLE_CHANGED => Box::pin(self.role_change_notice(r(Runtime))).await,
            ferromq_controller::request_code::GET_BROKER_EPOCH_CACHE => Box::pin(self.broker_epoch_cache(r(Runtime))).await,
            // QueryAssignmentProcessor (assignment.rs)
            assignment::code::QUERY_ASSIGNMENT => Box::pin(self.query_assignment(r(Runtime))).await,
            assignment::code::SET_MESSAGE_REQUEST_MODE => Box::pin(self.set_message_request_mode(r(Runtime))).await,
            // ClientManageProcessor
            CHECK_CLIENT_CONFIG => Box::pin(self.check_client_config(r(Runtime))).await,
            // EndTransactionProcessor
            END_TRANSACTION => Box::pin(self.end_transaction(r(SendPool))).await,
            // ferromq: `ferromq-admin txnPending`
            FERROMQ_GET_PENDING_TRANSACTIONS => Box::pin(self.pending_transactions_request(r(Blocking))).await,
            _ => Box::pin(self.not_supported(r(Runtime))).await,
        };
        let answer = answer.map(|resp| string_keys_for_rust(code, language, resp));
        answer.map_or_else(HandlerError::into_response, Some)
    }

    /// Run `job` on `on` and return its result: inline on the runtime, on a
    /// blocking thread, or queued on a pool ([`HandlerError::Busy`] when the
    /// queue is full; [`HandlerError::Lost`] naming `task` when the job ends
    /// without a result).
    pub(super) async fn run_on<F, R>(
        self: &Arc<Self>,
        on: Executor,
        task: &'static str,
        job: F,
    ) -> Result<R, HandlerError>
    where
        F: FnOnce(&Broker) -> R + Send + 'static,
        R: Send + 'static,
    {
        let pool = match on {
            Executor::Runtime => return Ok(job(self)),
            Executor::Blocking => {
                let b = self.clone();
                return tokio::task::spawn_blocking(move || job(&b))
                    .await
                    .map_err(|e| HandlerError::Panicked(e.to_string()));
            }
            Executor::SendPool => &self.send_pool,
            Executor::PullPool => &self.pull_pool,
        };
        let b = self.clone();
        let rx = pool
            .try_execute(move || job(&b))
            .map_err(|_| HandlerError::Busy)?;
        rx.await.map_err(|_| HandlerError::Lost(task))
    }

    /// Any code not in the table: REQUEST_CODE_NOT_SUPPORTED.
    async fn not_supported(self: &Arc<Self>, req: Request<'_>) -> HandlerResult {
        let code = req.cmd.code;
        // Rate-limited per peer: a client may send one per request.
        if let Some(suppressed) = crate::warn_limit::BAD_INPUT.check(req.conn.peer.ip()) {
            tracing::warn!(
                code,
                language = crate::remoting::codes::language_name(req.cmd.language),
                version = req.cmd.version,
                peer = %req.conn.peer,
                suppressed,
                "request code not supported"
            );
        }
        Ok(RemotingCommand::error(
            response::REQUEST_CODE_NOT_SUPPORTED,
            format!(" request type {code} not supported"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_answered_as_before_the_table() {
        let busy = HandlerError::Busy.into_response().unwrap();
        assert_eq!(busy.code, response::SYSTEM_BUSY);
        assert_eq!(busy.remark.as_deref(), Some(BUSY_REMARK));
        let lost = HandlerError::Lost("send").into_response().unwrap();
        assert_eq!(lost.code, response::SYSTEM_ERROR);
        assert_eq!(lost.remark.as_deref(), Some("send task failed"));
        let header = HeaderError::Missing("topic".into());
        let want = RemotingCommand::from(header.clone());
        let got = HandlerError::from(header).into_response().unwrap();
        assert_eq!((got.code, got.remark), (want.code, want.remark));
        assert!(HandlerError::Closed.into_response().is_none());
    }

    fn acl_rules() -> AclRules {
        let text = "accounts:\n  - accessKey: RocketMQ\n    secretKey: 12345678\n    \
                    topicPerms:\n      - topicA=PUB\n";
        AclRules::from_yaml(text)
    }

    fn signed(mut cmd: RemotingCommand, secret: &str) -> RemotingCommand {
        cmd.ext_fields.insert("AccessKey", "RocketMQ");
        let content = crate::acl::sign::combine_request_content(&cmd.ext_fields.0, &cmd.body);
        let signature = crate::acl::sign::sign(&content, secret);
        cmd.ext_fields.insert("Signature", signature);
        cmd
    }

    #[test]
    fn acl_refusals_are_system_errors_with_the_validator_remark() {
        let rules = acl_rules();
        let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let send = |topic: &str| {
            RemotingCommand::request(SEND_MESSAGE_V2)
                .with_ext("a", "producer")
                .with_ext("b", topic)
                .with_body(b"hello".to_vec())
        };
        assert!(acl_refusal(&rules, &signed(send("topicA"), "12345678"), peer).is_none());
        let cases = [
            (send("topicA"), "No accessKey is configured"),
            (
                signed(send("topicA"), "wrong-secret"),
                "Check signature failed for accessKey=RocketMQ",
            ),
            (
                signed(send("topicB"), "12345678"),
                "No default permission for topic:topicB",
            ),
        ];
        for (cmd, why) in cases {
            let r = acl_refusal(&rules, &cmd, peer).expect("refused");
            assert_eq!(r.code, response::SYSTEM_ERROR);
            let want = format!("org.apache.rocketmq.acl.common.AclException: {why}");
            assert_eq!(r.remark.as_deref(), Some(want.as_str()));
            assert!(!r.remark.unwrap().contains("12345678"));
        }
        let bad_heartbeat = RemotingCommand::request(HEART_BEAT)
            .with_ext("AccessKey", "RocketMQ")
            .with_body(b"not json".to_vec());
        let r = acl_refusal(&rules, &bad_heartbeat, peer).expect("refused");
        assert_eq!(r.code, response::SYSTEM_ERROR);
    }
}
