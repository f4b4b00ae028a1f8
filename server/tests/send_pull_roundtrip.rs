//! (b) 1,000 messages over 4 queues with tags and keys (SEND_MESSAGE_V2), pulled
//! back 32 at a time from offset 0 until PULL_NOT_FOUND: every message exactly
//! once, body, tags and keys intact; tag filtering; a batch send.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use ferromq_engine::message::decode_offset_msg_id;
use ferromq_server::remoting::{request, response, RemotingCommand};

const TOPIC: &str = "RoundTrip";
const N: usize = 1000;

#[test]
fn thousand_messages_round_trip_exactly_once() {
    let (_tmp, dir) = temp_dir();
    let (_broker, port) = start_broker(&dir, &broker_props(&dir.join("store"), ""), None);
    let mut c = Client::connect(port);

    let mut sent_offsets = [0u64; 4];
    for i in 0..N {
        let q = (i % 4) as i32;
        let tag = if i % 2 == 0 { "even" } else { "odd" };
        let body = format!("message-{i:04}-{}", "x".repeat(i % 50));
        let r = c.send_v2(
            TOPIC,
            q,
            body.as_bytes(),
            Some(tag),
            Some(&format!("key-{i} k{i}")),
        );
        assert_eq!(r.code, response::SUCCESS, "send {i}: {:?}", r.remark);
        assert_eq!(r.ext_fields.get_i64("queueId").unwrap(), i64::from(q));
        assert_eq!(
            r.ext_fields.get_i64("queueOffset").unwrap() as u64,
            sent_offsets[q as usize]
        );
        sent_offsets[q as usize] += 1;
        let (addr, _) = decode_offset_msg_id(r.ext_fields.get_str("msgId").unwrap()).unwrap();
        assert_eq!(addr.port(), port, "msgId carries the broker's port");
    }

    // Consume queues are built asynchronously: wait (bounded) until all are dispatched.
    for q in 0..4 {
        let want = sent_offsets[q as usize] as i64;
        wait_for(Duration::from_secs(10), || {
            let r = c.invoke(Client::offset_req(request::GET_MAX_OFFSET, TOPIC, q));
            (r.ext_fields.get_i64("offset").unwrap() == want).then_some(())
        })
        .expect("all messages dispatched");
    }

    let mut seen = HashSet::new();
    for q in 0..4 {
        let mut offset = 0u64;
        loop {
            let r = c.pull("rt-group", TOPIC, q, offset, 32);
            if r.code == response::PULL_NOT_FOUND {
                assert_eq!(r.ext_fields.get_i64("maxOffset").unwrap() as u64, offset);
                break;
            }
            assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
            let msgs = records(&r.body);
            assert!(!msgs.is_empty() && msgs.len() <= 32);
            for m in &msgs {
                assert_eq!(m.queue_id, q as u32);
                let body = String::from_utf8(m.body.clone()).unwrap();
                let i: usize = body[8..12].parse().unwrap();
                assert_eq!(body, format!("message-{i:04}-{}", "x".repeat(i % 50)));
                assert_eq!(i % 4, q as usize);
                assert_eq!(m.tags(), Some(if i % 2 == 0 { "even" } else { "odd" }));
                assert_eq!(m.keys(), vec![format!("key-{i}"), format!("k{i}")]);
                assert_eq!(m.topic, TOPIC);
                assert!(seen.insert(i), "message {i} delivered twice");
            }
            let next = r.ext_fields.get_i64("nextBeginOffset").unwrap() as u64;
            assert_eq!(next, offset + msgs.len() as u64);
            offset = next;
        }
    }
    assert_eq!(seen.len(), N, "every message exactly once");

    // Tag filter: only "even" from queue 0 (all of queue 0 is even: i % 4 == 0).
    let r = c.invoke(Client::pull_req(
        "rt-group", TOPIC, 1, 0, 32, 0x4, 0, "even",
    ));
    assert_eq!(
        r.code,
        response::PULL_RETRY_IMMEDIATELY,
        "queue 1 holds only odd tags"
    );
    assert!(r.ext_fields.get_i64("nextBeginOffset").unwrap() > 0);
    let r = c.invoke(Client::pull_req(
        "rt-group",
        TOPIC,
        1,
        0,
        32,
        0x4,
        0,
        "odd || even",
    ));
    assert_eq!(r.code, response::SUCCESS);

    // Max/min offsets.
    let r = c.invoke(Client::offset_req(request::GET_MAX_OFFSET, TOPIC, 2));
    assert_eq!(r.ext_fields.get_i64("offset").unwrap(), (N / 4) as i64);
    let r = c.invoke(Client::offset_req(request::GET_MIN_OFFSET, TOPIC, 2));
    assert_eq!(r.ext_fields.get_i64("offset").unwrap(), 0);

    // A batch of three messages lands as consecutive offsets in one queue.
    let mut body = Vec::new();
    for (k, text) in ["b0", "b1", "b2"].iter().enumerate() {
        let props = format!("KEYS\u{1}batch-{k}\u{2}TAGS\u{1}batch");
        let total = 20 + text.len() + 2 + props.len();
        body.extend_from_slice(&(total as i32).to_be_bytes());
        body.extend_from_slice(&[0; 8]);
        body.extend_from_slice(&0i32.to_be_bytes());
        body.extend_from_slice(&(text.len() as i32).to_be_bytes());
        body.extend_from_slice(text.as_bytes());
        body.extend_from_slice(&(props.len() as i16).to_be_bytes());
        body.extend_from_slice(props.as_bytes());
    }
    let r = c.invoke(
        RemotingCommand::request(request::SEND_BATCH_MESSAGE)
            .with_ext("a", "p")
            .with_ext("b", "BatchTopic")
            .with_ext("c", "TBW102")
            .with_ext("d", 4)
            .with_ext("e", 3)
            .with_ext("f", 0)
            .with_ext("g", 1)
            .with_ext("h", 0)
            .with_ext("m", true)
            .with_body(body),
    );
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    assert_eq!(r.ext_fields.get_str("msgId").unwrap().split(',').count(), 3);
    wait_for(Duration::from_secs(10), || {
        let r = c.invoke(Client::offset_req(request::GET_MAX_OFFSET, "BatchTopic", 3));
        (r.ext_fields.get_i64("offset").unwrap() == 3).then_some(())
    })
    .expect("batch dispatched");
    let r = c.pull("rt-group", "BatchTopic", 3, 0, 32);
    let msgs = records(&r.body);
    let bodies: Vec<&[u8]> = msgs.iter().map(|m| m.body.as_slice()).collect();
    assert_eq!(bodies, vec![&b"b0"[..], b"b1", b"b2"]);
    assert_eq!(msgs[2].keys(), vec!["batch-2"]);
}

/// RocketMQ 5.x lite pull consumers (rocketmq-client-rust's
/// `DefaultLitePullConsumer`) pull with LITE_PULL_MESSAGE (361) and the lite
/// pull sys flag (0x10): the broker answers as it answers PULL_MESSAGE.
#[test]
fn lite_pull_message_reads_like_pull_message() {
    const LITE_PULL_FLAG: i32 = 0x10;
    let (_tmp, dir) = temp_dir();
    let (_broker, port) = start_broker(&dir, &broker_props(&dir.join("store"), ""), None);
    let mut c = Client::connect(port);
    for i in 0..10 {
        let r = c.send_v2("LitePull", 0, format!("lite-{i}").as_bytes(), None, None);
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    }
    wait_for(Duration::from_secs(10), || {
        let r = c.invoke(Client::offset_req(request::GET_MAX_OFFSET, "LitePull", 0));
        (r.ext_fields.get_i64("offset").unwrap() == 10).then_some(())
    })
    .expect("all messages dispatched");

    let pull = c.pull("lite-group", "LitePull", 0, 3, 32);
    let mut lite = Client::pull_req(
        "lite-group",
        "LitePull",
        0,
        3,
        32,
        0x4 | LITE_PULL_FLAG,
        0,
        "*",
    );
    lite.code = request::LITE_PULL_MESSAGE;
    let lite = c.invoke(lite);
    assert_eq!(lite.code, response::SUCCESS, "{:?}", lite.remark);
    assert_eq!(lite.body, pull.body);
    let bodies: Vec<String> = records(&lite.body)
        .iter()
        .map(|m| String::from_utf8(m.body.clone()).unwrap())
        .collect();
    assert_eq!(
        bodies,
        (3..10).map(|i| format!("lite-{i}")).collect::<Vec<_>>()
    );
    for f in [
        "nextBeginOffset",
        "minOffset",
        "maxOffset",
        "suggestWhichBrokerId",
    ] {
        assert_eq!(
            lite.ext_fields.get_i64(f).unwrap(),
            pull.ext_fields.get_i64(f).unwrap(),
            "{f}"
        );
    }

    // At the end of the queue: PULL_NOT_FOUND, as for PULL_MESSAGE.
    let mut lite = Client::pull_req(
        "lite-group",
        "LitePull",
        0,
        10,
        32,
        0x4 | LITE_PULL_FLAG,
        0,
        "*",
    );
    lite.code = request::LITE_PULL_MESSAGE;
    assert_eq!(c.invoke(lite).code, response::PULL_NOT_FOUND);
}
