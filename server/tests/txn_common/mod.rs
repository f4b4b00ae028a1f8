//! Helpers for the transaction tests: half sends, END_TRANSACTION and
//! check-back requests over the Rust test client in `common`.
#![allow(dead_code)]

use std::io::Read;
use std::time::{Duration, Instant};

use ferromq_engine::message::{decode_offset_msg_id, keys};
use ferromq_engine::{MessageExt, MessageProperties};
use ferromq_server::remoting::codec::{decode_frame, encode};
use ferromq_server::remoting::{request, response, RemotingCommand};

use crate::common::{records, Client};

/// Commit (`commitOrRollback` = 8).
pub const COMMIT: i32 = 8;
/// Roll back (12).
pub const ROLLBACK: i32 = 12;

/// A half message as the broker acknowledged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Half {
    /// Client id (`UNIQ_KEY`).
    pub uniq: String,
    /// Half queue offset (`tranStateTableOffset`).
    pub queue_offset: u64,
    /// Commitlog offset of the half record.
    pub commit_log_offset: u64,
    /// Offset msgId.
    pub msg_id: String,
}

/// Tell the broker `client_id` is a producer of `group` over this connection.
pub fn heartbeat_producer(c: &mut Client, client_id: &str, group: &str) {
    let body = format!(
        r#"{{"clientID":"{client_id}","producerDataSet":[{{"groupName":"{group}"}}],"consumerDataSet":[]}}"#
    );
    let r = c.invoke(RemotingCommand::request(request::HEART_BEAT).with_body(body.into_bytes()));
    assert_eq!(r.code, response::SUCCESS, "heartbeat: {:?}", r.remark);
}

/// The SEND_MESSAGE_V2 request of a transactional (PREPARED) message.
pub fn half_request(
    group: &str,
    topic: &str,
    queue_id: i32,
    body: &[u8],
    uniq: &str,
) -> RemotingCommand {
    let mut props = MessageProperties::new();
    props.insert(keys::TRAN_MSG, "true");
    props.insert(keys::PGROUP, group);
    props.insert(keys::UNIQ_KEY, uniq);
    props.insert(keys::KEYS, uniq);
    props.insert(keys::WAIT, "true");
    let mut enc = Vec::new();
    props.encode_into(&mut enc);
    RemotingCommand::request(request::SEND_MESSAGE_V2)
        .with_ext("a", group)
        .with_ext("b", topic)
        .with_ext("c", "TBW102")
        .with_ext("d", 4)
        .with_ext("e", queue_id)
        .with_ext("f", 4) // TRANSACTION_PREPARED_TYPE
        .with_ext("g", ferromq_engine::sys::now_ms())
        .with_ext("h", 0)
        .with_ext("i", String::from_utf8(enc).unwrap())
        .with_ext("j", 0)
        .with_ext("k", false)
        .with_body(body.to_vec())
}

/// Send a half message; panics unless it is stored.
pub fn send_half(
    c: &mut Client,
    group: &str,
    topic: &str,
    queue_id: i32,
    body: &[u8],
    uniq: &str,
) -> Half {
    let r = c.invoke(half_request(group, topic, queue_id, body, uniq));
    assert_eq!(r.code, response::SUCCESS, "half send: {:?}", r.remark);
    let msg_id = r.ext_fields.get_str("msgId").unwrap().to_string();
    Half {
        uniq: uniq.to_string(),
        queue_offset: r.ext_fields.get_i64("queueOffset").unwrap() as u64,
        commit_log_offset: decode_offset_msg_id(&msg_id).unwrap().1,
        msg_id,
    }
}

/// An END_TRANSACTION request for `half`.
pub fn end_request(group: &str, half: &Half, decision: i32, from_check: bool) -> RemotingCommand {
    RemotingCommand::request(request::END_TRANSACTION)
        .with_ext("producerGroup", group)
        .with_ext("tranStateTableOffset", half.queue_offset)
        .with_ext("commitLogOffset", half.commit_log_offset)
        .with_ext("commitOrRollback", decision)
        .with_ext("fromTransactionCheck", from_check)
        .with_ext("msgId", &half.uniq)
        .with_ext("transactionId", &half.uniq)
}

/// Send a request oneway (no answer is read), as producers send END_TRANSACTION.
pub fn send_oneway(c: &mut Client, mut req: RemotingCommand) {
    req.flag |= 2;
    req.opaque = 1_000_000;
    c.write_raw(&encode(&req).unwrap());
}

/// The next CHECK_TRANSACTION_STATE the broker sent on this connection, as the
/// half it names (offsets of the re-appended copy) and its decoded body; `None`
/// when none arrives within `timeout`. Other server requests are dropped.
pub fn next_check(c: &mut Client, timeout: Duration) -> Option<(Half, MessageExt)> {
    let deadline = Instant::now() + timeout;
    loop {
        let req = match c.server_requests.is_empty() {
            false => c.server_requests.remove(0),
            true => read_within(c, deadline.saturating_duration_since(Instant::now()))?,
        };
        if req.code != request::CHECK_TRANSACTION_STATE {
            continue;
        }
        let e = &req.ext_fields;
        let half = Half {
            uniq: e.get_str("msgId").unwrap().to_string(),
            queue_offset: e.get_i64("tranStateTableOffset").unwrap() as u64,
            commit_log_offset: e.get_i64("commitLogOffset").unwrap() as u64,
            msg_id: e.get_str("offsetMsgId").unwrap().to_string(),
        };
        assert_eq!(e.get_str("transactionId").unwrap(), half.uniq);
        let msgs = records(&req.body);
        assert_eq!(msgs.len(), 1, "a check body is one record");
        return Some((half, msgs.into_iter().next().unwrap()));
    }
}

fn read_within(c: &mut Client, timeout: Duration) -> Option<RemotingCommand> {
    if timeout.is_zero() {
        return None;
    }
    c.stream.set_read_timeout(Some(timeout)).unwrap();
    let mut len = [0u8; 4];
    let r = c.stream.read_exact(&mut len);
    c.stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    match r {
        Ok(()) => {}
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            return None
        }
        Err(e) => panic!("read: {e}"),
    }
    let mut frame = vec![0u8; i32::from_be_bytes(len) as usize];
    c.stream.read_exact(&mut frame).expect("read frame");
    Some(decode_frame(&frame).expect("decode"))
}

/// Max offset of a queue.
pub fn max_offset(c: &mut Client, topic: &str, q: i32) -> i64 {
    let r = c.invoke(Client::offset_req(request::GET_MAX_OFFSET, topic, q));
    r.ext_fields.get_i64("offset").unwrap_or(-1)
}

/// Every message of queues `0..queues` of `topic`, pulled from offset 0.
pub fn pull_all(c: &mut Client, topic: &str, queues: i32) -> Vec<MessageExt> {
    let mut out = Vec::new();
    for q in 0..queues {
        let mut off = 0u64;
        loop {
            let r = c.pull("txn-test-reader", topic, q, off, 32);
            if r.code != response::SUCCESS {
                break;
            }
            let got = records(&r.body);
            off = r.ext_fields.get_i64("nextBeginOffset").unwrap() as u64;
            out.extend(got);
        }
    }
    out
}

/// The pending-transactions report (ferromq request code), as JSON.
pub fn pending(c: &mut Client) -> serde_json::Value {
    let r = c.invoke(RemotingCommand::request(
        request::FERROMQ_GET_PENDING_TRANSACTIONS,
    ));
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    serde_json::from_slice(&r.body).unwrap()
}
