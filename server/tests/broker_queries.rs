//! The query and admin commands a stock 4.x client and mqadmin call, against the
//! real broker binary: SEARCH_OFFSET_BY_TIMESTAMP, GET_EARLIEST_MSG_STORETIME,
//! QUERY_MESSAGE (by key and by unique key), VIEW_MESSAGE_BY_ID,
//! QUERY_BROKER_OFFSET, GET_ALL_TOPIC_CONFIG, GET_BROKER_RUNTIME_INFO,
//! LOCK_BATCH_MQ / UNLOCK_BATCH_MQ, CONSUMER_SEND_MSG_BACK to the retry topic
//! and then the dead-letter topic, DELETE_EXPIRED_COMMITLOG, and subscription
//! groups (retry topic on heartbeat, `subscriptionGroup.json`, auto-create off).

mod common;

use std::time::Duration;

use common::*;
use ferromq_engine::message::decode_offset_msg_id;
use ferromq_server::remoting::{request, response, RemotingCommand};
use serde_json::Value;

const TOPIC: &str = "QueryTopic";
const N: usize = 40;

fn heartbeat(group: &str, client: &str) -> RemotingCommand {
    let body = format!(
        r#"{{"clientID":"{client}","producerDataSet":[],"consumerDataSet":[{{"groupName":"{group}","consumeType":"CONSUME_PASSIVELY","messageModel":"CLUSTERING","consumeFromWhere":"CONSUME_FROM_LAST_OFFSET","subscriptionDataSet":[{{"topic":"{TOPIC}","subString":"*"}}],"unitMode":false}}]}}"#
    );
    RemotingCommand::request(request::HEART_BEAT).with_body(body.into_bytes())
}

fn lock_body(group: &str, client: &str, queues: &[i32]) -> Vec<u8> {
    let mqs: Vec<Value> = queues
        .iter()
        .map(|q| serde_json::json!({"topic": TOPIC, "brokerName": "broker-t", "queueId": q}))
        .collect();
    serde_json::json!({"consumerGroup": group, "clientId": client, "mqSet": mqs})
        .to_string()
        .into_bytes()
}

fn locked(r: &RemotingCommand) -> Vec<i64> {
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    let mut q: Vec<i64> = v["lockOKMQSet"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["queueId"].as_i64().unwrap())
        .collect();
    q.sort();
    q
}

fn send_back(offset: u64, group: &str, max: i32) -> RemotingCommand {
    RemotingCommand::request(request::CONSUMER_SEND_MSG_BACK)
        .with_ext("offset", offset)
        .with_ext("group", group)
        .with_ext("delayLevel", 0)
        .with_ext("maxReconsumeTimes", max)
        .with_ext("unitMode", false)
}

fn max_offset(c: &mut Client, topic: &str, q: i32) -> i64 {
    let r = c.invoke(Client::offset_req(request::GET_MAX_OFFSET, topic, q));
    r.ext_fields.get_i64("offset").unwrap_or(-1)
}

#[test]
fn queries_locks_send_back_and_runtime_info() {
    let (_tmp, dir) = temp_dir();
    let store = dir.join("store");
    // Retries wait on the schedule topic by level 3 + reconsume times: short
    // levels keep the test quick (level 3 = 1 s, level 4 = 2 s).
    let (_broker, port) = start_broker(
        &dir,
        &broker_props(&store, "messageDelayLevel=1s 1s 1s 2s 2s\n"),
        None,
    );
    let mut c = Client::connect(port);

    let mut offsets = Vec::new();
    for i in 0..N {
        let r = c.send_v2(
            TOPIC,
            (i % 4) as i32,
            format!("query-body-{i}").as_bytes(),
            Some("T"),
            Some(&format!("qk-{i} shared")),
        );
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
        let (_, off) = decode_offset_msg_id(r.ext_fields.get_str("msgId").unwrap()).unwrap();
        offsets.push(off);
    }
    wait_for(Duration::from_secs(10), || {
        ((0..4).map(|q| max_offset(&mut c, TOPIC, q)).sum::<i64>() == N as i64).then_some(())
    })
    .expect("dispatched");

    // Offsets by time and the earliest store time.
    let by_time = |c: &mut Client, ts: i64| {
        let r = c.invoke(
            Client::offset_req(request::SEARCH_OFFSET_BY_TIMESTAMP, TOPIC, 1)
                .with_ext("timestamp", ts),
        );
        assert_eq!(r.code, response::SUCCESS);
        r.ext_fields.get_i64("offset").unwrap()
    };
    assert_eq!(by_time(&mut c, 0), 0);
    assert_eq!(by_time(&mut c, i64::MAX / 2), (N / 4) as i64);
    let r = c.invoke(Client::offset_req(
        request::GET_EARLIEST_MSG_STORETIME,
        TOPIC,
        1,
    ));
    assert_eq!(r.code, response::SUCCESS);
    assert!(r.ext_fields.get_i64("timestamp").unwrap() > 1_600_000_000_000);
    let r = c.invoke(Client::offset_req(
        request::SEARCH_OFFSET_BY_TIMESTAMP,
        TOPIC,
        1,
    ));
    assert_eq!(
        r.code,
        response::SYSTEM_ERROR,
        "missing timestamp is refused"
    );

    // QUERY_MESSAGE by key (index is built asynchronously: wait, bounded).
    let query = |c: &mut Client, key: &str, unique: bool| {
        let mut req = RemotingCommand::request(request::QUERY_MESSAGE)
            .with_ext("topic", TOPIC)
            .with_ext("key", key)
            .with_ext("maxNum", 64)
            .with_ext("beginTimestamp", 0)
            .with_ext("endTimestamp", i64::MAX);
        if unique {
            req = req.with_ext("_UNIQUE_KEY_QUERY", "true");
        }
        c.invoke(req)
    };
    let r = wait_for(Duration::from_secs(10), || {
        let r = query(&mut c, "qk-7", false);
        (r.code == response::SUCCESS).then_some(r)
    })
    .expect("key indexed");
    assert!(r.ext_fields.get_i64("indexLastUpdatePhyoffset").is_ok());
    assert!(r.ext_fields.get_i64("indexLastUpdateTimestamp").is_ok());
    let found = records(&r.body);
    assert!(found
        .iter()
        .any(|m| m.body == b"query-body-7" && m.keys().contains(&"qk-7")));
    let shared = wait_for(Duration::from_secs(10), || {
        let r = query(&mut c, "shared", false);
        let n = records(&r.body).len();
        (n == N).then_some(n)
    });
    assert_eq!(shared, Some(N), "all {N} messages share a key");
    let r = query(&mut c, "no-such-key", false);
    assert_eq!(r.code, response::QUERY_NOT_FOUND);
    assert!(r.body.is_empty());
    let r = query(&mut c, "no-such-key", true);
    assert_eq!(r.code, response::QUERY_NOT_FOUND);

    // VIEW_MESSAGE_BY_ID: the record at the msgId's commitlog offset.
    let r = c.invoke(
        RemotingCommand::request(request::VIEW_MESSAGE_BY_ID).with_ext("offset", offsets[5]),
    );
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let m = &records(&r.body)[0];
    assert_eq!(m.body, b"query-body-5");
    assert_eq!(m.commit_log_offset, offsets[5]);
    let r = c.invoke(
        RemotingCommand::request(request::VIEW_MESSAGE_BY_ID).with_ext("offset", 1u64 << 40),
    );
    assert_eq!(r.code, response::SYSTEM_ERROR);
    let r = c.invoke(RemotingCommand::request(request::VIEW_MESSAGE_BY_ID).with_ext("offset", 3));
    assert_eq!(r.code, response::SYSTEM_ERROR, "not a record start");

    // Broker offset, topic configs, runtime figures.
    let r = c.invoke(RemotingCommand::request(request::QUERY_BROKER_OFFSET));
    let broker_offset = r.ext_fields.get_i64("offset").unwrap();
    assert!(broker_offset as u64 > *offsets.last().unwrap());
    let r = c.invoke(RemotingCommand::request(request::GET_ALL_TOPIC_CONFIG));
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["topicConfigTable"][TOPIC]["writeQueueNums"], 4);
    let r = c.invoke(RemotingCommand::request(request::GET_BROKER_RUNTIME_INFO));
    assert_eq!(r.code, response::SUCCESS);
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    let t = &v["table"];
    assert_eq!(t["msgPutTotalTodayNow"], N.to_string());
    assert_eq!(t["commitLogMaxOffset"], broker_offset.to_string());
    for k in [
        "commitLogMinOffset",
        "dispatchBehindBytes",
        "commitLogDiskRatio",
        "msgGetTotalTodayNow",
        "sendThreadPoolQueueSize",
        "bootTimestamp",
        "brokerVersionDesc",
        "runtime",
    ] {
        assert!(t[k].is_string(), "{k} missing in {t}");
    }

    // Queue locks: one owner per (group, queue), the owner renews, unlock frees.
    let lock = |c: &mut Client, client: &str, qs: &[i32]| {
        c.invoke(
            RemotingCommand::request(request::LOCK_BATCH_MQ).with_body(lock_body("LG", client, qs)),
        )
    };
    assert_eq!(locked(&lock(&mut c, "c1", &[0, 1])), vec![0, 1]);
    assert_eq!(locked(&lock(&mut c, "c2", &[1, 2])), vec![2]);
    assert_eq!(locked(&lock(&mut c, "c1", &[0, 1, 2])), vec![0, 1]);
    let r = c.invoke(
        RemotingCommand::request(request::UNLOCK_BATCH_MQ).with_body(lock_body("LG", "c1", &[1])),
    );
    assert_eq!(r.code, response::SUCCESS);
    assert_eq!(locked(&lock(&mut c, "c2", &[1])), vec![1]);
    let r = c.invoke(RemotingCommand::request(request::LOCK_BATCH_MQ).with_body(b"nope".to_vec()));
    assert_eq!(r.code, response::SYSTEM_ERROR);

    // Heartbeat creates the group and its retry topic.
    let r = c.invoke(heartbeat("SG", "client-1"));
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let r = c.invoke(RemotingCommand::request(request::GET_ALL_TOPIC_CONFIG));
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["topicConfigTable"]["%RETRY%SG"]["perm"], 6);
    // Written by the coalescing writer within its interval (250 ms).
    let g: Value = wait_for(Duration::from_secs(5), || {
        let text = std::fs::read_to_string(store.join("config/subscriptionGroup.json")).ok()?;
        let g: Value = serde_json::from_str(&text).ok()?;
        (!g["subscriptionGroupTable"]["SG"].is_null()).then_some(g)
    })
    .expect("group SG in subscriptionGroup.json");
    assert_eq!(g["subscriptionGroupTable"]["SG"]["retryMaxTimes"], 16);

    // Send back: to %RETRY%SG with reconsume 1 and the retry properties ...
    let sent_back = std::time::Instant::now();
    let r = c.invoke(send_back(offsets[3], "SG", 2));
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    // Held back on SCHEDULE_TOPIC_XXXX queue 2 (level 3), not yet on the retry topic.
    wait_for(Duration::from_secs(5), || {
        (max_offset(&mut c, "SCHEDULE_TOPIC_XXXX", 2) == 1).then_some(())
    })
    .expect("retry waits at delay level 3");
    assert_eq!(max_offset(&mut c, "%RETRY%SG", 0), 0, "retried at once");
    let retry = wait_for(Duration::from_secs(10), || {
        let r = c.pull("SG", "%RETRY%SG", 0, 0, 32);
        (r.code == response::SUCCESS).then_some(records(&r.body))
    })
    .expect("retry message");
    assert!(
        sent_back.elapsed() >= Duration::from_millis(900),
        "retry delivered after {:?}, before its 1 s delay",
        sent_back.elapsed()
    );
    assert_eq!(retry.len(), 1);
    let m = &retry[0];
    assert_eq!(m.body, b"query-body-3");
    assert_eq!(m.reconsume_times, 1);
    assert_eq!(m.properties.get("RETRY_TOPIC"), Some(TOPIC));
    assert_eq!(m.keys(), vec!["qk-3", "shared"]);
    let origin = m.properties.get("ORIGIN_MESSAGE_ID").unwrap().to_string();
    assert_eq!(decode_offset_msg_id(&origin).unwrap().1, offsets[3]);
    // ... again (reconsume 2), then past maxReconsumeTimes 2 to %DLQ%SG.
    let r = c.invoke(send_back(m.commit_log_offset, "SG", 2));
    assert_eq!(r.code, response::SUCCESS);
    wait_for(Duration::from_secs(5), || {
        (max_offset(&mut c, "SCHEDULE_TOPIC_XXXX", 3) == 1).then_some(())
    })
    .expect("second retry waits at delay level 4");
    let second = wait_for(Duration::from_secs(10), || {
        let r = c.pull("SG", "%RETRY%SG", 0, 1, 32);
        (r.code == response::SUCCESS).then_some(records(&r.body))
    })
    .expect("second retry");
    assert_eq!(second[0].reconsume_times, 2);
    assert_eq!(
        second[0].properties.get("ORIGIN_MESSAGE_ID"),
        Some(origin.as_str())
    );
    let r = c.invoke(send_back(second[0].commit_log_offset, "SG", 2));
    assert_eq!(r.code, response::SUCCESS);
    wait_for(Duration::from_secs(10), || {
        (max_offset(&mut c, "%DLQ%SG", 0) == 1).then_some(())
    })
    .expect("dead-lettered");
    let r = c.invoke(RemotingCommand::request(request::GET_ALL_TOPIC_CONFIG));
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        v["topicConfigTable"]["%DLQ%SG"]["perm"], 2,
        "DLQ is write-only"
    );
    let r = c.invoke(send_back(1u64 << 40, "SG", 2));
    assert_eq!(r.code, response::SYSTEM_ERROR);

    // Manual deletion of expired files is accepted.
    for code in [
        request::DELETE_EXPIRED_COMMITLOG,
        request::TRIGGER_DELETE_FILES,
    ] {
        let r = c.invoke(RemotingCommand::request(code));
        assert_eq!(r.code, response::SUCCESS);
    }
}

#[test]
fn unknown_group_is_refused_on_pull_without_auto_create() {
    let (_tmp, dir) = temp_dir();
    let store = dir.join("store");
    let (_broker, port) = start_broker(
        &dir,
        &broker_props(&store, "autoCreateSubscriptionGroup=false\n"),
        None,
    );
    let mut c = Client::connect(port);
    // As RocketMQ: the heartbeat is accepted, but no retry topic is made and
    // pulls and send-backs are refused.
    let r = c.invoke(heartbeat("Unknown", "c"));
    assert_eq!(r.code, response::SUCCESS);
    let r = c.send_v2(TOPIC, 0, b"x", None, None);
    assert_eq!(r.code, response::SUCCESS);
    let r = c.pull("Unknown", TOPIC, 0, 0, 32);
    assert_eq!(r.code, response::SUBSCRIPTION_GROUP_NOT_EXIST);
    let r = c.invoke(RemotingCommand::request(request::GET_ALL_TOPIC_CONFIG));
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert!(v["topicConfigTable"]["%RETRY%Unknown"].is_null());
    assert!(
        !store.join("config/subscriptionGroup.json").exists()
            || !std::fs::read_to_string(store.join("config/subscriptionGroup.json"))
                .unwrap()
                .contains("\"Unknown\"")
    );
    let r = c.invoke(send_back(0, "Unknown", 16));
    assert_eq!(r.code, response::SUBSCRIPTION_GROUP_NOT_EXIST);
    // System groups exist from the start.
    let r = c.invoke(heartbeat("TOOLS_CONSUMER", "c"));
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
}

#[test]
fn consumers_are_told_when_group_membership_changes() {
    let (_tmp, dir) = temp_dir();
    let (_broker, port) = start_broker(&dir, &broker_props(&dir.join("store"), ""), None);
    let mut a = Client::connect(port);
    assert_eq!(
        a.invoke(heartbeat("NG", "client-a")).code,
        response::SUCCESS
    );
    // A renewed heartbeat changes nothing: one notification, for A joining.
    assert_eq!(
        a.invoke(heartbeat("NG", "client-a")).code,
        response::SUCCESS
    );
    assert_eq!(a.server_requests.len(), 1);
    a.server_requests.clear();

    let mut b = Client::connect(port);
    assert_eq!(
        b.invoke(heartbeat("NG", "client-b")).code,
        response::SUCCESS
    );
    let n = a.next_server_request();
    assert_eq!(n.code, request::NOTIFY_CONSUMER_IDS_CHANGED);
    assert!(n.is_oneway() && !n.is_response());
    assert_eq!(n.ext_fields.get_str("consumerGroup"), Ok("NG"));
    assert_eq!(b.server_requests.len(), 1, "the new member is told too");

    // B leaves (connection closed): A is told again.
    drop(b);
    let n = a.next_server_request();
    assert_eq!(n.code, request::NOTIFY_CONSUMER_IDS_CHANGED);
    let r = a.invoke(
        RemotingCommand::request(request::GET_CONSUMER_LIST_BY_GROUP)
            .with_ext("consumerGroup", "NG"),
    );
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["consumerIdList"], serde_json::json!(["client-a"]));
}
