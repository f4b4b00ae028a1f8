//! Request-reply (issue 22 item 2, RocketMQ 4.6+) against the real broker
//! binary: a responder's SEND_REPLY_MESSAGE_V2 325 is pushed to the requesting
//! producer over that producer's own connection as PUSH_REPLY_MESSAGE_TO_CLIENT
//! 326 (found by the `REPLY_TO_CLIENT` client id among the producers known
//! from heartbeats) and stored in `<cluster>_REPLY_TOPIC`.
//!
//! - The reply topic exists at start (1 queue) and the name server routes it.
//! - The requester gets the push: `ReplyMessageRequestHeader` as RocketMQ's
//!   `ReplyMessageProcessor.pushReplyMessage` fills it, body and
//!   `CORRELATION_ID` intact; the responder gets SUCCESS with the stored
//!   reply's ids; a requester answering a failure makes the responder's
//!   answer SYSTEM_ERROR.
//! - A requester that disconnected: the reply is pushed nowhere, answered
//!   SYSTEM_ERROR at once with RocketMQ's remark, and the broker keeps
//!   serving (sends, and the next reply to a requester that came back).
//! - No `CORRELATION_ID` / no `REPLY_TO_CLIENT`: a clear refusal naming the
//!   property, nothing pushed, the reply still stored.
//!
//! rocketmq-client-rust 1.0's own `request()` and reply API run in
//! `interop_rust_request_reply.rs`.

mod common;

use std::time::{Duration, Instant};

use common::*;
use ferromq_engine::MessageProperties;
use ferromq_server::remoting::{request, response, RemotingCommand};

const REPLY_TOPIC: &str = "TestCluster_REPLY_TOPIC";
const SEND_REPLY_MESSAGE_V2: i32 = 325;
const PUSH_REPLY_MESSAGE_TO_CLIENT: i32 = 326;
const REQUESTER_GROUP: &str = "rr_requester_group";

/// A heartbeat registering `client_id` as a producer of [`REQUESTER_GROUP`].
fn producer_heartbeat(client_id: &str) -> RemotingCommand {
    let body = format!(
        r#"{{"clientID":"{client_id}","producerDataSet":[{{"groupName":"{REQUESTER_GROUP}"}},{{"groupName":"CLIENT_INNER_PRODUCER"}}],"consumerDataSet":[]}}"#
    );
    RemotingCommand::request(request::HEART_BEAT).with_body(body.into_bytes())
}

/// A requester: a producer connection registered by heartbeat.
fn requester(port: u16, client_id: &str) -> Client {
    let mut c = Client::connect(port);
    let r = c.invoke(producer_heartbeat(client_id));
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    c
}

/// A SEND_REPLY_MESSAGE_V2 as rocketmq clients send a reply
/// (`MessageUtil.createReplyMessage`): `MSG_TYPE=reply` plus the given
/// properties.
fn reply_req(body: &[u8], props: &[(&str, &str)]) -> RemotingCommand {
    let mut all = vec![("MSG_TYPE", "reply"), ("TTL", "3000")];
    all.extend_from_slice(props);
    let mut r = Client::send_v2_req(REPLY_TOPIC, -1, body, &all);
    r.code = SEND_REPLY_MESSAGE_V2;
    r
}

/// Send `req` from a new responder connection in a thread; its local
/// address (the reply's born host) comes back with the answer.
fn respond(
    port: u16,
    req: RemotingCommand,
) -> std::thread::JoinHandle<(std::net::SocketAddr, RemotingCommand)> {
    std::thread::spawn(move || {
        let mut c = Client::connect(port);
        let local = c.stream.local_addr().unwrap();
        (local, c.invoke(req))
    })
}

/// Answer the broker's request `req` on `c` with `code`.
fn answer(c: &mut Client, req: &RemotingCommand, code: i32) {
    let mut resp = RemotingCommand::response(code, Some("from the test".into()));
    resp.opaque = req.opaque;
    resp.flag = 1;
    c.write_raw(&ferromq_server::remoting::codec::encode(&resp).unwrap());
}

/// Wait (up to 10 s: the consume queue is written after the answer) until
/// the reply topic's only queue holds `n` messages; assert it does.
fn assert_stored_replies(port: u16, n: i64) {
    let got = wait_for(Duration::from_secs(10), || {
        let got = stored_replies(port);
        (got >= n).then_some(got)
    });
    assert_eq!(
        got,
        Some(n),
        "replies stored (now {})",
        stored_replies(port)
    );
}

/// Messages stored in the reply topic's only queue.
fn stored_replies(port: u16) -> i64 {
    let r =
        Client::connect(port).invoke(Client::offset_req(request::GET_MAX_OFFSET, REPLY_TOPIC, 0));
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    r.ext_fields.get_i64("offset").unwrap()
}

#[test]
fn a_reply_is_pushed_to_its_requester_and_stored() {
    let (_tmp, dir) = temp_dir();
    let (_ns, ns_port) = start_namesrv(&dir);
    let (_broker, port) = start_broker(&dir, &broker_props(&dir.join("store"), ""), Some(ns_port));

    // The reply topic: created at start with one queue, routed by the name server.
    let tc = Client::connect(port)
        .invoke(RemotingCommand::request(request::GET_TOPIC_CONFIG).with_ext("topic", REPLY_TOPIC));
    assert_eq!(tc.code, response::SUCCESS, "{:?}", tc.remark);
    let tc: serde_json::Value = serde_json::from_slice(&tc.body).unwrap();
    let tc = if tc["topicConfig"].is_object() {
        tc["topicConfig"].clone()
    } else {
        tc
    };
    assert_eq!(tc["readQueueNums"], 1, "{tc}");
    assert_eq!(tc["writeQueueNums"], 1, "{tc}");
    let route = wait_for(Duration::from_secs(10), || {
        route_brokers(&[ns_port], REPLY_TOPIC).filter(|r| !r.is_empty())
    })
    .expect("the name server routes the reply topic");
    assert_eq!(route[0].0, "broker-t");

    let id = "127.0.0.1@rr-requester-1";
    let mut req_conn = requester(port, id);
    let responder = respond(
        port,
        reply_req(
            b"the answer is 42",
            &[("CORRELATION_ID", "corr-1"), ("REPLY_TO_CLIENT", id)],
        ),
    );
    let push = req_conn.next_server_request();
    assert_eq!(push.code, PUSH_REPLY_MESSAGE_TO_CLIENT);
    assert!(!push.is_oneway(), "the push awaits the requester's answer");
    assert_eq!(push.body, b"the answer is 42");
    let h = &push.ext_fields;
    for (k, v) in [
        ("producerGroup", "test-producer"),
        ("topic", REPLY_TOPIC),
        ("defaultTopic", "TBW102"),
        ("defaultTopicQueueNums", "4"),
        ("queueId", "-1"),
        ("sysFlag", "0"),
        ("bornTimestamp", "1700000000000"),
        ("flag", "0"),
        ("reconsumeTimes", "0"),
        ("unitMode", "false"),
    ] {
        assert_eq!(h.opt_str(k), Some(v), "{k} in {h:?}");
    }
    assert_eq!(
        h.opt_str("storeHost").map(str::to_string),
        Some(format!("127.0.0.1:{port}"))
    );
    let store_ts = h.get_i64("storeTimestamp").unwrap();
    let now = ferromq_server::util::now_ms();
    assert!((now - store_ts).abs() < 60_000, "storeTimestamp {store_ts}");
    let props = MessageProperties::decode(h.get_str("properties").unwrap().as_bytes()).unwrap();
    assert_eq!(props.get("CORRELATION_ID"), Some("corr-1"));
    assert_eq!(props.get("REPLY_TO_CLIENT"), Some(id));
    assert_eq!(props.get("MSG_TYPE"), Some("reply"));
    let pushed_at: i64 = props.get("PUSH_REPLY_TIME").unwrap().parse().unwrap();
    assert!((now - pushed_at).abs() < 60_000);
    answer(&mut req_conn, &push, response::SUCCESS);
    let (responder_addr, got) = responder.join().unwrap();
    assert_eq!(
        h.opt_str("bornHost"),
        Some(responder_addr.to_string().as_str())
    );
    assert_eq!(got.code, response::SUCCESS, "{:?}", got.remark);
    assert_eq!(got.ext_fields.opt_str("queueId"), Some("0"));
    assert_eq!(got.ext_fields.opt_str("queueOffset"), Some("0"));
    let msg_id = got.ext_fields.get_str("msgId").unwrap();
    assert_eq!(
        msg_id.len(),
        32,
        "the stored reply's offset msgId: {msg_id}"
    );

    // Stored in the reply topic, with its properties as sent.
    assert_stored_replies(port, 1);
    let pulled = Client::connect(port).pull("rr_check", REPLY_TOPIC, 0, 0, 8);
    assert_eq!(pulled.code, response::SUCCESS, "{:?}", pulled.remark);
    let msgs = records(&pulled.body);
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].body, b"the answer is 42");
    assert_eq!(msgs[0].properties.get("CORRELATION_ID"), Some("corr-1"));

    // A requester that answers a failure: the responder hears of it.
    let responder = respond(
        port,
        reply_req(
            b"second",
            &[("CORRELATION_ID", "corr-2"), ("REPLY_TO_CLIENT", id)],
        ),
    );
    let push = req_conn.next_server_request();
    assert_eq!(push.code, PUSH_REPLY_MESSAGE_TO_CLIENT);
    answer(&mut req_conn, &push, response::SYSTEM_ERROR);
    let (_, got) = responder.join().unwrap();
    assert_eq!(got.code, response::SYSTEM_ERROR);
    assert_eq!(
        got.remark.as_deref(),
        Some(format!("push reply message to {id}fail.").as_str())
    );
    assert_stored_replies(port, 2);
}

#[test]
fn a_reply_to_a_requester_that_left_is_dropped_and_the_broker_keeps_serving() {
    let (_tmp, dir) = temp_dir();
    let (_broker, port) = start_broker(&dir, &broker_props(&dir.join("store"), ""), None);
    let id = "127.0.0.1@rr-gone";
    let gone = requester(port, id);
    drop(gone);
    // The broker forgets the producer when it sees the connection close.
    std::thread::sleep(Duration::from_millis(300));

    let started = Instant::now();
    let (_, got) = respond(
        port,
        reply_req(
            b"too late",
            &[("CORRELATION_ID", "corr-x"), ("REPLY_TO_CLIENT", id)],
        ),
    )
    .join()
    .unwrap();
    assert_eq!(got.code, response::SYSTEM_ERROR);
    assert_eq!(
        got.remark.as_deref(),
        Some(format!("push reply message fail, channel of <{id}> not found.").as_str())
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered at once, not after a push timeout: {:?}",
        started.elapsed()
    );
    // Stored like any reply (RocketMQ's storeReplyMessageEnable), not kept
    // for the requester.
    assert_stored_replies(port, 1);

    // The broker keeps serving: sends, and replies to a requester that is back.
    let sent = Client::connect(port).send_v2("RrPlainTopic", 0, b"plain", None, None);
    assert_eq!(sent.code, response::SUCCESS, "{:?}", sent.remark);
    let mut back = requester(port, id);
    let responder = respond(
        port,
        reply_req(
            b"welcome back",
            &[("CORRELATION_ID", "corr-y"), ("REPLY_TO_CLIENT", id)],
        ),
    );
    let push = back.next_server_request();
    assert_eq!(push.code, PUSH_REPLY_MESSAGE_TO_CLIENT);
    assert_eq!(push.body, b"welcome back");
    answer(&mut back, &push, response::SUCCESS);
    let (_, got) = responder.join().unwrap();
    assert_eq!(got.code, response::SUCCESS, "{:?}", got.remark);
    assert_stored_replies(port, 2);
}

#[test]
fn a_reply_without_correlation_id_or_requester_is_refused_clearly() {
    let (_tmp, dir) = temp_dir();
    let (_broker, port) = start_broker(&dir, &broker_props(&dir.join("store"), ""), None);
    let id = "127.0.0.1@rr-waiting";
    let mut waiting = requester(port, id);

    let (_, got) = respond(
        port,
        reply_req(b"no correlation", &[("REPLY_TO_CLIENT", id)]),
    )
    .join()
    .unwrap();
    assert_eq!(got.code, response::SYSTEM_ERROR);
    let remark = got.remark.unwrap_or_default();
    assert!(
        remark.contains("properties[CORRELATION_ID] is null"),
        "{remark}"
    );
    assert!(
        got.ext_fields.opt_str("msgId").is_some(),
        "stored all the same"
    );

    let (_, got) = respond(
        port,
        reply_req(b"no requester", &[("CORRELATION_ID", "corr-z")]),
    )
    .join()
    .unwrap();
    assert_eq!(got.code, response::SYSTEM_ERROR);
    assert_eq!(
        got.remark.as_deref(),
        Some("reply message properties[REPLY_TO_CLIENT] is null")
    );
    // Nothing lost: both stored.
    assert_stored_replies(port, 2);

    // Nothing was pushed to the requester: its next exchange brings no
    // server request.
    let r = waiting.invoke(producer_heartbeat(id));
    assert_eq!(r.code, response::SUCCESS);
    assert!(
        waiting.server_requests.is_empty(),
        "{:?}",
        waiting.server_requests
    );

    // A reply header without its topic: the send path's header error.
    let mut bad = reply_req(b"x", &[("CORRELATION_ID", "c"), ("REPLY_TO_CLIENT", id)]);
    bad.ext_fields.0.remove("b");
    let got = Client::connect(port).invoke(bad);
    assert_ne!(got.code, response::SUCCESS);
    assert!(got.remark.is_some());
}

#[test]
fn with_store_reply_message_enable_false_replies_are_only_pushed() {
    let (_tmp, dir) = temp_dir();
    let props = broker_props(&dir.join("store"), "storeReplyMessageEnable=false\n");
    let (_broker, port) = start_broker(&dir, &props, None);
    let id = "127.0.0.1@rr-unstored";
    let mut req_conn = requester(port, id);
    let responder = respond(
        port,
        reply_req(
            b"not kept",
            &[("CORRELATION_ID", "corr-u"), ("REPLY_TO_CLIENT", id)],
        ),
    );
    let push = req_conn.next_server_request();
    assert_eq!(push.code, PUSH_REPLY_MESSAGE_TO_CLIENT);
    assert_eq!(push.body, b"not kept");
    answer(&mut req_conn, &push, response::SUCCESS);
    let (_, got) = responder.join().unwrap();
    assert_eq!(got.code, response::SUCCESS, "{:?}", got.remark);
    // RocketMQ's answer to a reply it did not store.
    assert_eq!(got.ext_fields.opt_str("msgId"), Some("0"));
    assert_eq!(got.ext_fields.opt_str("queueOffset"), Some("0"));
    // A plain send is stored and dispatched; the reply before it was not.
    let sent = Client::connect(port).send_v2("RrPlainTopic", 0, b"plain", None, None);
    assert_eq!(sent.code, response::SUCCESS, "{:?}", sent.remark);
    let plain = wait_for(Duration::from_secs(10), || {
        let r = Client::connect(port).invoke(Client::offset_req(
            request::GET_MAX_OFFSET,
            "RrPlainTopic",
            0,
        ));
        (r.ext_fields.get_i64("offset").ok()? == 1).then_some(())
    });
    assert!(plain.is_some(), "the plain send is dispatched");
    assert_eq!(stored_replies(port), 0);
}
