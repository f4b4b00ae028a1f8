//! QUERY_MESSAGE, VIEW_MESSAGE_BY_ID, SEARCH_OFFSET_BY_TIMESTAMP,
//! GET_EARLIEST_MSG_STORETIME, GET_MAX_OFFSET, GET_MIN_OFFSET and
//! QUERY_BROKER_OFFSET: reads of the store by key, offset and time (RocketMQ's
//! `QueryMessageProcessor`; RocketMQ answers the offset lookups in
//! `AdminBrokerProcessor`).

use std::sync::Arc;

use super::{store_error_response, Broker, HandlerResult, Request};
use crate::remoting::{response, RemotingCommand};

/// Extension field that marks a QUERY_MESSAGE by unique key (`MixAll.UNIQUE_MSG_QUERY_FLAG`).
pub const UNIQUE_KEY_QUERY: &str = "_UNIQUE_KEY_QUERY";

/// Default `maxNum` of a unique-key query (`defaultQueryMaxNum`).
const DEFAULT_QUERY_MAX_NUM: usize = 32;

impl Broker {
    /// SEARCH_OFFSET_BY_TIMESTAMP.
    pub(super) async fn search_offset(self: &Arc<Self>, req: Request<'_>) -> HandlerResult {
        let (topic, qid) = Self::topic_queue(&req.cmd)?;
        let ts = req.cmd.ext_fields.get_i64("timestamp")?;
        self.run_on(req.on, "search offset", move |b| {
            match b.store.offset_for_timestamp(&topic, qid, ts) {
                Ok(off) => RemotingCommand::success().with_ext("offset", off),
                Err(e) => store_error_response(&e),
            }
        })
        .await
    }

    /// GET_EARLIEST_MSG_STORETIME (0 when the queue is empty, as RocketMQ answers).
    pub(super) async fn earliest_msg_store_time(
        self: &Arc<Self>,
        req: Request<'_>,
    ) -> HandlerResult {
        let (topic, qid) = Self::topic_queue(&req.cmd)?;
        self.run_on(req.on, "earliest message time", move |b| {
            match b.store.earliest_message_time(&topic, qid) {
                Ok(t) => RemotingCommand::success().with_ext("timestamp", t.unwrap_or(0)),
                Err(e) => store_error_response(&e),
            }
        })
        .await
    }

    /// QUERY_MESSAGE: the records of the topic with that key, concatenated, each
    /// checked by the store (CRC included). A damaged record fails the whole
    /// query with SYSTEM_ERROR and the store's corruption message.
    pub(super) async fn query_message(self: &Arc<Self>, req: Request<'_>) -> HandlerResult {
        let topic = req.cmd.ext_fields.get_str("topic")?.to_string();
        let key = req.cmd.ext_fields.get_str("key")?.to_string();
        let mut max = req.cmd.ext_fields.opt_i64("maxNum")?.unwrap_or(32).max(0) as usize;
        let begin = req.cmd.ext_fields.opt_i64("beginTimestamp")?.unwrap_or(0);
        let end = req
            .cmd
            .ext_fields
            .opt_i64("endTimestamp")?
            .unwrap_or(i64::MAX);
        if req.cmd.ext_fields.opt_str(UNIQUE_KEY_QUERY) == Some("true") {
            max = DEFAULT_QUERY_MAX_NUM;
        }
        self.run_on(req.on, "query message", move |b| {
            match b.store.query_message(&topic, &key, max, begin, end) {
                Ok(r) => {
                    let mut resp = RemotingCommand::success()
                        .with_ext("indexLastUpdateTimestamp", r.index_last_update_timestamp_ms)
                        .with_ext("indexLastUpdatePhyoffset", r.index_last_update_phy_offset);
                    let mut body = Vec::new();
                    for m in &r.messages {
                        body.extend_from_slice(m.bytes());
                    }
                    if body.is_empty() {
                        resp.code = response::QUERY_NOT_FOUND;
                        resp.remark =
                            Some("can not find message, maybe time range not correct".into());
                    }
                    resp.with_body(body)
                }
                Err(e) => store_error_response(&e),
            }
        })
        .await
    }

    /// VIEW_MESSAGE_BY_ID: the record at commitlog offset `offset`, as stored,
    /// once the store has checked it (CRC included). A damaged record is answered
    /// with SYSTEM_ERROR and the store's corruption message (file and offset).
    pub(super) async fn view_message_by_id(self: &Arc<Self>, req: Request<'_>) -> HandlerResult {
        let offset = req.cmd.ext_fields.get_i64("offset")?;
        let not_found = move || {
            RemotingCommand::error(
                response::SYSTEM_ERROR,
                format!("can not find message by the offset, {offset}"),
            )
        };
        let Ok(off) = u64::try_from(offset) else {
            return Ok(not_found());
        };
        self.run_on(req.on, "view message", move |b| {
            if off < b.store.commit_log_min_offset() || off >= b.store.commit_log_max_offset() {
                return not_found();
            }
            match b.store.read_record(off) {
                Ok(Some(bytes)) => RemotingCommand::success().with_body(bytes.to_vec()),
                Ok(None) => not_found(),
                // A damaged record is reported as such, never sent.
                Err(e) => {
                    tracing::error!(offset = off, error = %e, "VIEW_MESSAGE_BY_ID found a damaged record");
                    store_error_response(&e)
                }
            }
        })
        .await
    }

    /// QUERY_BROKER_OFFSET: the commitlog's end.
    pub(super) async fn query_broker_offset(self: &Arc<Self>, _req: Request<'_>) -> HandlerResult {
        Ok(RemotingCommand::success().with_ext("offset", self.store.commit_log_max_offset()))
    }

    /// GET_MAX_OFFSET.
    pub(super) async fn get_max_offset(self: &Arc<Self>, req: Request<'_>) -> HandlerResult {
        let (t, q) = Self::topic_queue(&req.cmd)?;
        Ok(RemotingCommand::success().with_ext("offset", self.store.max_offset_in_queue(&t, q)))
    }

    /// GET_MIN_OFFSET.
    pub(super) async fn get_min_offset(self: &Arc<Self>, req: Request<'_>) -> HandlerResult {
        let (t, q) = Self::topic_queue(&req.cmd)?;
        Ok(RemotingCommand::success().with_ext("offset", self.store.min_offset_in_queue(&t, q)))
    }
}
