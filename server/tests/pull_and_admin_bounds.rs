//! Review fixes of issue 17's broker side, against the real broker:
//! - a pull over `longPollingMaxParkedPerConnection` is short-polled: answered
//!   after `shortPollingTimeMills` with what a read then finds, not at once (a
//!   push consumer owning more queues than the cap would otherwise busy-loop);
//! - pulls get the same name check as every other request, and no remark
//!   echoes more than 64 characters of a name;
//! - pulls of a connection that closes while they are still on their way to
//!   the hold are never held;
//! - offset commits for unknown groups, topics and queue ids are refused
//!   (RocketMQ 5's codes), so `consumerOffset.json` holds only real queues;
//!   a heartbeat's subscriptions replace the group's;
//! - UPDATE_AND_CREATE_TOPIC is on disk when SUCCESS is answered: after a
//!   SIGKILL right then, the topic is there with its queue counts.

mod common;

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use common::longpoll::*;
use common::names::{heartbeat_req, read_config, topic_names};
use common::*;
use ferromq_server::remoting::codec::encode;
use ferromq_server::remoting::{request, response, RemotingCommand};

fn wait_max_offset(c: &mut Client, topic: &str, queue_id: i32, want: i64) {
    wait_for(Duration::from_secs(10), || {
        let r = c.invoke(Client::offset_req(request::GET_MAX_OFFSET, topic, queue_id));
        (r.ext_fields.get_i64("offset").unwrap() == want).then_some(())
    })
    .unwrap_or_else(|| panic!("{topic}/{queue_id} max offset {want} within 10 s"));
}

fn write_req(c: &mut Client, mut req: RemotingCommand, opaque: i32) {
    req.opaque = opaque;
    c.write_raw(&encode(&req).unwrap());
}

#[test]
fn a_pull_over_the_park_cap_is_short_polled() {
    const SHORT_MS: u64 = 1500;
    const TOPIC: &str = "ShortPollT";
    let (_tmp, dir) = temp_dir();
    let props = broker_props(
        &dir.join("store"),
        &format!("longPollingMaxParkedPerConnection=1\nshortPollingTimeMills={SHORT_MS}\n"),
    );
    let (_broker, port) = start_broker_bin(&dir, &props);
    let mut c = Client::connect(port);
    assert_eq!(c.send_v2(TOPIC, 0, b"first", None, None).code, 0);
    wait_max_offset(&mut c, TOPIC, 0, 1);

    // One pull held (the cap), on queue 0 at its end.
    let mut held = Client::connect(port);
    write_req(&mut held, held_pull_req(TOPIC, 0, 1, 20_000), 1);
    wait_for(Duration::from_secs(10), || {
        (held_pulls(port) == Some(1)).then_some(())
    })
    .expect("the first pull is held");

    // A second pull on the same connection, on empty queue 1: over the cap.
    let t = Instant::now();
    write_req(&mut held, held_pull_req(TOPIC, 1, 0, 20_000), 2);
    std::thread::sleep(Duration::from_millis(300));
    // It is not filed: still one held, and a message now does not wake it.
    assert_eq!(held_pulls(port), Some(1));
    assert_eq!(c.send_v2(TOPIC, 1, b"during", None, None).code, 0);
    let r = held.read();
    let took = t.elapsed();
    assert_eq!(r.opaque, 2);
    // Answered after the short-poll time with what a read then finds.
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    assert_eq!(records(&r.body)[0].body, b"during");
    assert!(
        took >= Duration::from_millis(SHORT_MS - 100)
            && took < Duration::from_millis(SHORT_MS + 3000),
        "answered after about {SHORT_MS} ms, not at once nor on arrival: {took:?}"
    );
    assert!(refused_holds(port).unwrap_or(0) >= 1);

    // With nothing to find it is PULL_NOT_FOUND, again after the short-poll
    // time: a client re-pulling at once makes one pull per short-poll time.
    let t = Instant::now();
    let mut answered = 0;
    while t.elapsed() < Duration::from_millis(2 * SHORT_MS + 500) && answered < 100 {
        write_req(&mut held, held_pull_req(TOPIC, 2, 0, 20_000), 10 + answered);
        let r = held.read();
        assert_eq!(r.code, response::PULL_NOT_FOUND, "{:?}", r.remark);
        answered += 1;
    }
    assert!(
        answered <= 3,
        "{answered} over-cap pulls answered in {:?}",
        t.elapsed()
    );
    // The held pull is still held, and answered by its message.
    assert_eq!(held_pulls(port), Some(1));
    assert_eq!(c.send_v2(TOPIC, 0, b"second", None, None).code, 0);
    let r = held.read();
    assert_eq!((r.opaque, r.code), (1, response::SUCCESS), "{:?}", r.remark);
}

#[test]
fn pulls_get_the_name_check_and_remarks_quote_short_names() {
    let (_tmp, dir) = temp_dir();
    let props = broker_props(&dir.join("store"), "");
    let (_broker, port) = start_broker_bin(&dir, &props);
    let mut c = Client::connect(port);
    let huge = "T".repeat(8 << 20);
    for (what, topic) in [("8 MiB", huge.as_str()), ("a slash", "a/b"), ("empty", "")] {
        for flags in [0x4, 0x2 | 0x4] {
            let r = c.invoke(Client::pull_req("G", topic, 0, 0, 1, flags, 1000, "*"));
            let remark = r.remark.unwrap_or_default();
            assert_eq!(
                r.code,
                response::SYSTEM_ERROR,
                "pull, topic {what}: {remark}"
            );
            assert!(
                remark.len() < 300,
                "pull, topic {what}: remark of {} bytes",
                remark.len()
            );
            assert!(remark.contains("topic"), "{remark}");
        }
    }
    // A valid but unknown topic of 127 characters: TOPIC_NOT_EXIST, quoting 64.
    let long = "L".repeat(127);
    let r = c.invoke(Client::pull_req("G", &long, 0, 0, 1, 0x4, 0, "*"));
    assert_eq!(r.code, response::TOPIC_NOT_EXIST);
    let remark = r.remark.unwrap_or_default();
    assert!(!remark.contains(&"L".repeat(65)), "{remark}");
    // So does a refused offset commit.
    let r = c.invoke(
        Client::offset_req(request::UPDATE_CONSUMER_OFFSET, &long, 0)
            .with_ext("consumerGroup", "TOOLS_CONSUMER")
            .with_ext("commitOffset", 1),
    );
    assert_eq!(r.code, response::TOPIC_NOT_EXIST);
    assert!(!r.remark.unwrap_or_default().contains(&"L".repeat(65)));
    // The broker still serves.
    assert_eq!(c.send_v2("NamesOk", 0, b"x", None, None).code, 0);
}

#[test]
fn pulls_of_a_closing_connection_are_never_held() {
    const CONNS: usize = 60;
    const PER_CONN: usize = 64;
    let (_tmp, dir) = temp_dir();
    let props = broker_props(&dir.join("store"), "");
    let (_broker, port) = start_broker_bin(&dir, &props);
    let mut c = Client::connect(port);
    assert_eq!(c.send_v2("CloseT", 0, b"first", None, None).code, 0);
    wait_max_offset(&mut c, "CloseT", 0, 1);
    // Each connection writes its held pulls and closes at once: the broker
    // reads them, sees the end of the stream and closes while many of their
    // tasks have not reached the hold yet. None of them may stay held (for
    // their 30 s).
    let req = held_pull_req("CloseT", 0, 1, 30_000);
    let mut buf = Vec::new();
    for i in 0..PER_CONN {
        let mut r = req.clone();
        r.opaque = i as i32 + 1;
        buf.extend_from_slice(&encode(&r).unwrap());
    }
    for _ in 0..CONNS {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(&buf).unwrap();
        let _ = s.shutdown(Shutdown::Both);
    }
    // Give the broker time to work through all of them (a few thousand quick
    // reads), then none may be held, now or a little later.
    let t = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let gone = wait_for(Duration::from_secs(6), || {
        (held_pulls(port) == Some(0)).then_some(())
    });
    assert!(
        gone.is_some(),
        "pulls of closed connections still held after {:?}: {:?}",
        t.elapsed(),
        held_pulls(port)
    );
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(
            held_pulls(port),
            Some(0),
            "a pull of a closed connection was held late"
        );
    }
    // And the broker keeps answering held pulls of live connections.
    let mut live = Client::connect(port);
    write_req(&mut live, held_pull_req("CloseT", 0, 1, 20_000), 1);
    wait_for(Duration::from_secs(10), || {
        (held_pulls(port) == Some(1)).then_some(())
    })
    .expect("a live connection's pull is held");
    assert_eq!(c.send_v2("CloseT", 0, b"second", None, None).code, 0);
    let r = live.read();
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
}

#[test]
fn offset_commits_need_a_known_group_topic_and_queue() {
    let (_tmp, dir) = temp_dir();
    let store = dir.join("store");
    let props = broker_props(&store, "");
    let (mut broker, port) = start_broker_bin(&dir, &props);
    let mut c = Client::connect(port);
    let r = c.invoke(
        RemotingCommand::request(request::UPDATE_AND_CREATE_TOPIC)
            .with_ext("topic", "OffT")
            .with_ext("readQueueNums", 2)
            .with_ext("writeQueueNums", 2)
            .with_ext("perm", 6),
    );
    assert_eq!(r.code, 0, "{:?}", r.remark);
    let r = c.invoke(heartbeat_req("off-client", &["OffG".into()], &[], "OffT"));
    assert_eq!(r.code, 0, "{:?}", r.remark);
    let commit = |c: &mut Client, group: &str, topic: &str, q: i32| {
        c.invoke(
            Client::offset_req(request::UPDATE_CONSUMER_OFFSET, topic, q)
                .with_ext("consumerGroup", group)
                .with_ext("commitOffset", 5),
        )
    };
    let r = commit(&mut c, "NoSuchG", "OffT", 0);
    assert_eq!(
        r.code,
        response::SUBSCRIPTION_GROUP_NOT_EXIST,
        "{:?}",
        r.remark
    );
    let r = commit(&mut c, "OffG", "NoSuchT", 0);
    assert_eq!(r.code, response::TOPIC_NOT_EXIST, "{:?}", r.remark);
    let r = commit(&mut c, "OffG", "OffT", 2);
    assert_eq!(r.code, response::SYSTEM_ERROR, "{:?}", r.remark);
    assert!(r.remark.unwrap_or_default().contains("queueId[2]"));
    let r = commit(&mut c, "OffG", "OffT", 1);
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    // The group's retry topic exists (the heartbeat created it): consumers
    // commit offsets there too.
    let r = commit(&mut c, "OffG", "%RETRY%OffG", 0);
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    // Many made-up groups and topics store nothing.
    for i in 0..500 {
        assert_ne!(commit(&mut c, &format!("Made{i}"), "OffT", 0).code, 0);
        assert_ne!(commit(&mut c, "OffG", &format!("Made{i}"), 0).code, 0);
    }

    // A heartbeat's subscriptions replace the group's: after subscribing to
    // OffT with tag `a`, then to another topic only, a pull of OffT without a
    // subscription of its own is no longer filtered by `a`.
    let sub = |tag: &str, topic: &str| {
        let body = serde_json::json!({
            "clientID": "off-client",
            "consumerDataSet": [{
                "groupName": "OffG", "consumeType": "CONSUME_PASSIVELY",
                "messageModel": "CLUSTERING", "consumeFromWhere": "CONSUME_FROM_LAST_OFFSET",
                "subscriptionDataSet": [{"topic": topic, "subString": tag}]
            }],
            "producerDataSet": []
        });
        RemotingCommand::request(request::HEART_BEAT).with_body(body.to_string().into_bytes())
    };
    assert_eq!(c.invoke(sub("a", "OffT")).code, 0);
    assert_eq!(c.send_v2("OffT", 0, b"tagged-b", Some("b"), None).code, 0);
    wait_max_offset(&mut c, "OffT", 0, 1);
    let unsubscribed_pull =
        |c: &mut Client| c.invoke(Client::pull_req("OffG", "OffT", 0, 0, 8, 0, 0, ""));
    let r = unsubscribed_pull(&mut c);
    assert_ne!(
        r.code,
        response::SUCCESS,
        "tag b filtered out by the subscription to a"
    );
    assert_eq!(c.invoke(sub("*", "OtherT")).code, 0);
    let r = unsubscribed_pull(&mut c);
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    assert_eq!(records(&r.body)[0].body, b"tagged-b");

    drop(c);
    assert!(broker.terminate(Duration::from_secs(30)).success());
    let offsets = read_config(&store, "consumerOffset.json");
    assert!(offsets.contains("OffT@OffG"), "{offsets}");
    assert!(offsets.contains("%RETRY%OffG@OffG"), "{offsets}");
    assert!(
        !offsets.contains("Made") && !offsets.contains("NoSuch"),
        "{offsets}"
    );
}

/// Read and write queue counts of `topic` in a `topics.json` text.
fn queue_counts(topics_json: &str, topic: &str) -> Option<(u64, u64)> {
    let v: serde_json::Value = serde_json::from_str(topics_json).ok()?;
    let t = &v["topicConfigTable"][topic];
    Some((t["readQueueNums"].as_u64()?, t["writeQueueNums"].as_u64()?))
}

#[test]
fn an_admin_created_topic_survives_sigkill_right_after_success() {
    let (_tmp, dir) = temp_dir();
    let store = dir.join("store");
    let props = broker_props(&store, "");
    let (broker, port) = start_broker_bin(&dir, &props);
    let mut c = Client::connect(port);
    let create = |c: &mut Client, topic: &str| {
        let r = c.invoke(
            RemotingCommand::request(request::UPDATE_AND_CREATE_TOPIC)
                .with_ext("topic", topic)
                .with_ext("readQueueNums", 7)
                .with_ext("writeQueueNums", 7)
                .with_ext("perm", 6),
        );
        assert_eq!(r.code, 0, "{topic}: {:?}", r.remark);
    };
    // A change just written (an auto-created topic): a coalesced write of the
    // next change would wait for the interval.
    assert_eq!(c.send_v2("WarmUpT", 0, b"w", None, None).code, 0);
    create(&mut c, "AdminMsgT");
    // On disk when SUCCESS is answered.
    let text = read_config(&store, "topics.json");
    assert_eq!(queue_counts(&text, "AdminMsgT"), Some((7, 7)), "{text}");
    // A message on queue 5: a topic learned again from its log would get
    // max(5 + 1, defaultTopicQueueNums 4) = 6 queues, not its 7.
    assert_eq!(c.send_v2("AdminMsgT", 5, b"m", None, None).code, 0);
    create(&mut c, "AdminT");
    let text = read_config(&store, "topics.json");
    assert_eq!(queue_counts(&text, "AdminT"), Some((7, 7)), "{text}");
    drop(c);
    drop(broker); // SIGKILL

    let (mut broker, port) = start_broker_bin(&dir, &props);
    let mut c = Client::connect(port);
    let r = c.invoke(RemotingCommand::request(request::GET_ALL_TOPIC_CONFIG));
    let live = String::from_utf8_lossy(&r.body).to_string();
    for t in ["AdminT", "AdminMsgT"] {
        assert_eq!(
            queue_counts(&live, t),
            Some((7, 7)),
            "{t} after SIGKILL: {live}"
        );
    }
    let r = c.pull("AdminG", "AdminMsgT", 5, 0, 8);
    assert_eq!(r.code, 0, "{:?}", r.remark);
    assert_eq!(records(&r.body)[0].body, b"m");
    drop(c);
    assert!(broker.terminate(Duration::from_secs(30)).success());
    assert!(topic_names(&read_config(&store, "topics.json")).contains(&"AdminT".to_string()));
}
