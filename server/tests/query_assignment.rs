//! QUERY_ASSIGNMENT 400 and SET_MESSAGE_REQUEST_MODE 401 against the real
//! broker binary (RocketMQ 5's `QueryAssignmentProcessor`, without POP).
//!
//! Consumers on raw sockets register by heartbeat; each asks for its
//! queues of a topic with 4 read queues (6 write queues, so the read count
//! is the one used) and gets what `AllocateMessageQueueAveragely` gives for
//! the sorted client ids: 2+2 with two clients, 2/1/1 with three, all 4
//! for BROADCASTING; a client id not in the group gets an empty set; an
//! unknown topic, a group with no client online and an unknown strategy
//! get Java's null (`{}`).

mod common;

use std::time::Duration;

use common::*;
use ferromq_server::remoting::{request, response, RemotingCommand};
use serde_json::Value;

const TOPIC: &str = "AssignTopic";
const GROUP: &str = "AssignGroup";
const QUERY_ASSIGNMENT: i32 = 400;
const SET_MESSAGE_REQUEST_MODE: i32 = 401;
// Registered in this order; sorted they are A, B, C.
const CID_B: &str = "127.0.0.1@assign-b";
const CID_A: &str = "127.0.0.1@assign-a";
const CID_C: &str = "127.0.0.1@assign-c";

fn heartbeat(client_id: &str, model: &str) -> RemotingCommand {
    let body = format!(
        r#"{{"clientID":"{client_id}","producerDataSet":[],"consumerDataSet":[{{"groupName":"{GROUP}","consumeType":"CONSUME_PASSIVELY","messageModel":"{model}","consumeFromWhere":"CONSUME_FROM_FIRST_OFFSET","subscriptionDataSet":[{{"classFilterMode":false,"codeSet":[],"expressionType":"TAG","subString":"*","subVersion":1700000000000,"tagsSet":[],"topic":"{TOPIC}"}}],"unitMode":false}}]}}"#
    );
    let mut r = RemotingCommand::request(request::HEART_BEAT).with_body(body.into_bytes());
    r.language = 0;
    r.version = 401;
    r
}

fn consumer(port: u16, client_id: &str) -> Client {
    let mut c = Client::connect(port);
    assert_eq!(
        c.invoke(heartbeat(client_id, "CLUSTERING")).code,
        response::SUCCESS
    );
    c
}

fn query_req(topic: &str, client_id: &str, strategy: &str, model: &str) -> RemotingCommand {
    let body = serde_json::json!({
        "topic": topic,
        "consumerGroup": GROUP,
        "clientId": client_id,
        "strategyName": strategy,
        "messageModel": model,
    });
    RemotingCommand::request(QUERY_ASSIGNMENT).with_body(serde_json::to_vec(&body).unwrap())
}

/// The answer's body as JSON (asserting SUCCESS).
fn query(c: &mut Client, topic: &str, client_id: &str, strategy: &str, model: &str) -> Value {
    let r = c.invoke(query_req(topic, client_id, strategy, model));
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    serde_json::from_slice(&r.body).expect("JSON body")
}

/// The queue ids assigned, sorted; `None` for Java's null set (`{}`).
/// Checks every assignment's form on the way.
fn queue_ids(v: &Value, topic: &str) -> Option<Vec<u64>> {
    let list = v.get("messageQueueAssignments")?.as_array().expect("array");
    let mut ids: Vec<u64> = list
        .iter()
        .map(|a| {
            assert_eq!(a["mode"], "PULL", "{a}");
            let mq = &a["messageQueue"];
            assert_eq!(mq["topic"], topic, "{a}");
            assert_eq!(mq["brokerName"], "broker-t", "{a}");
            mq["queueId"].as_u64().expect("queueId")
        })
        .collect();
    ids.sort();
    Some(ids)
}

fn avg(c: &mut Client, client_id: &str) -> Option<Vec<u64>> {
    queue_ids(&query(c, TOPIC, client_id, "AVG", "CLUSTERING"), TOPIC)
}

fn set_mode(c: &mut Client, body: &[u8]) -> RemotingCommand {
    c.invoke(RemotingCommand::request(SET_MESSAGE_REQUEST_MODE).with_body(body.to_vec()))
}

#[test]
fn assignment_follows_allocate_message_queue_averagely() {
    let (_tmp, dir) = temp_dir();
    let props = broker_props(&dir.join("store"), "");
    let (mut broker, port) = start_broker(&dir, &props, None);
    let mut admin = Client::connect(port);
    let created = admin.invoke(
        RemotingCommand::request(request::UPDATE_AND_CREATE_TOPIC)
            .with_ext("topic", TOPIC)
            .with_ext("readQueueNums", 4)
            .with_ext("writeQueueNums", 6)
            .with_ext("perm", 6),
    );
    assert_eq!(created.code, response::SUCCESS, "{:?}", created.remark);

    // No client online: Java's null.
    assert_eq!(avg(&mut admin, CID_A), None);

    let mut b = consumer(port, CID_B);
    let mut a = consumer(port, CID_A);
    // Two clients, 4 queues: A (first sorted) 0-1, B 2-3.
    let qa = avg(&mut a, CID_A).expect("assigned");
    let qb = avg(&mut b, CID_B).expect("assigned");
    assert_eq!(qa, vec![0, 1]);
    assert_eq!(qb, vec![2, 3]);

    // A client id not in the group: an empty set.
    assert_eq!(avg(&mut admin, "127.0.0.1@stranger"), Some(vec![]));
    // An empty client id, an unknown strategy, an unknown topic: null.
    assert_eq!(avg(&mut admin, ""), None);
    let v = query(&mut a, TOPIC, CID_A, "NO_SUCH_STRATEGY", "CLUSTERING");
    assert_eq!(v, serde_json::json!({}));
    let v = query(&mut a, "NoSuchTopic", CID_A, "AVG", "CLUSTERING");
    assert_eq!(v, serde_json::json!({}));
    let v = query(&mut a, "NoSuchTopic", CID_A, "AVG", "BROADCASTING");
    assert_eq!(v, serde_json::json!({}));

    // BROADCASTING: every queue, whoever asks.
    for cid in [CID_A, CID_B, "127.0.0.1@stranger"] {
        let v = query(&mut a, TOPIC, cid, "AVG", "BROADCASTING");
        assert_eq!(queue_ids(&v, TOPIC), Some(vec![0, 1, 2, 3]), "{cid}");
    }

    // Three clients, 4 queues: 2/1/1 (Java gives the first mod=1 client one more).
    let mut c = consumer(port, CID_C);
    assert_eq!(avg(&mut a, CID_A), Some(vec![0, 1]));
    assert_eq!(avg(&mut b, CID_B), Some(vec![2]));
    assert_eq!(avg(&mut c, CID_C), Some(vec![3]));
    // AVG_BY_CIRCLE: 0,3 / 1 / 2.
    let circle = |cl: &mut Client, cid: &str| {
        queue_ids(&query(cl, TOPIC, cid, "AVG_BY_CIRCLE", "CLUSTERING"), TOPIC)
    };
    assert_eq!(circle(&mut a, CID_A), Some(vec![0, 3]));
    assert_eq!(circle(&mut b, CID_B), Some(vec![1]));
    assert_eq!(circle(&mut c, CID_C), Some(vec![2]));

    // The retry topic the heartbeat created (1 queue): the first client has it.
    let retry = format!("%RETRY%{GROUP}");
    let v = query(&mut a, &retry, CID_A, "AVG", "CLUSTERING");
    assert_eq!(queue_ids(&v, &retry), Some(vec![0]));
    let v = query(&mut b, &retry, CID_B, "AVG", "CLUSTERING");
    assert_eq!(queue_ids(&v, &retry), Some(vec![]));

    // A leaves (its connection closes): B and C share the 4 queues.
    drop(a);
    let split = wait_for(Duration::from_secs(10), || {
        let qb = avg(&mut b, CID_B)?;
        (qb == vec![0, 1]).then_some(qb)
    });
    assert_eq!(split, Some(vec![0, 1]), "B after A left");
    assert_eq!(avg(&mut c, CID_C), Some(vec![2, 3]));

    broker.terminate(Duration::from_secs(10));
}

#[test]
fn malformed_query_bodies_are_refused() {
    let (_tmp, dir) = temp_dir();
    let props = broker_props(&dir.join("store"), "");
    let (mut broker, port) = start_broker(&dir, &props, None);
    let mut c = Client::connect(port);
    let cases: &[(&[u8], &str)] = &[
        (b"", "no body"),
        (b"not json", "malformed JSON"),
        (br#"{"topic":5}"#, "malformed JSON"),
        (
            br#"{"consumerGroup":"G","clientId":"x","strategyName":"AVG","messageModel":"CLUSTERING"}"#,
            "topic is missing",
        ),
        (
            br#"{"topic":"T","clientId":"x","strategyName":"AVG","messageModel":"CLUSTERING"}"#,
            "consumerGroup is missing",
        ),
        (
            br#"{"topic":"T","consumerGroup":"G","clientId":"x","strategyName":"AVG"}"#,
            "messageModel is missing",
        ),
        (
            br#"{"topic":"T","consumerGroup":"G","clientId":"x","strategyName":"AVG","messageModel":"SIDEWAYS"}"#,
            "neither CLUSTERING nor BROADCASTING",
        ),
    ];
    for (body, why) in cases {
        let r = c.invoke(RemotingCommand::request(QUERY_ASSIGNMENT).with_body(body.to_vec()));
        assert_eq!(r.code, response::SYSTEM_ERROR, "{why}");
        let remark = r.remark.unwrap_or_default();
        assert!(remark.contains("QueryAssignmentRequestBody"), "{remark}");
        assert!(remark.contains(why), "{why}: {remark}");
    }
    // The connection still serves.
    let v = query(&mut c, "NoSuchTopic", "x", "AVG", "CLUSTERING");
    assert_eq!(v, serde_json::json!({}));
    broker.terminate(Duration::from_secs(10));
}

#[test]
fn set_message_request_mode_accepts_pull_only() {
    let (_tmp, dir) = temp_dir();
    let props = broker_props(&dir.join("store"), "");
    let (mut broker, port) = start_broker(&dir, &props, None);
    let mut c = Client::connect(port);

    let pull = br#"{"topic":"AssignTopic","consumerGroup":"AssignGroup","mode":"PULL","popShareQueueNum":0}"#;
    let r = set_mode(&mut c, pull);
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    // Java's mode defaults to PULL.
    let r = set_mode(
        &mut c,
        br#"{"topic":"AssignTopic","consumerGroup":"AssignGroup"}"#,
    );
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);

    let pop = br#"{"topic":"AssignTopic","consumerGroup":"AssignGroup","mode":"POP","popShareQueueNum":1}"#;
    let r = set_mode(&mut c, pop);
    assert_eq!(r.code, response::SYSTEM_ERROR);
    let remark = r.remark.unwrap_or_default();
    assert!(
        remark.contains("POP") && remark.contains("PULL only"),
        "{remark}"
    );

    // Retry topics: NO_PERMISSION, as Java.
    let r = set_mode(
        &mut c,
        br#"{"topic":"%RETRY%AssignGroup","consumerGroup":"AssignGroup","mode":"PULL"}"#,
    );
    assert_eq!(r.code, response::NO_PERMISSION);
    assert_eq!(
        r.remark.as_deref(),
        Some("retry topic is not allowed to set mode")
    );

    let bad: &[(&[u8], &str)] = &[
        (b"", "no body"),
        (b"{", "malformed JSON"),
        (
            br#"{"consumerGroup":"G","mode":"PULL"}"#,
            "topic is missing",
        ),
        (
            br#"{"topic":"T","mode":"PULL"}"#,
            "consumerGroup is missing",
        ),
        (
            br#"{"topic":"T","consumerGroup":"G","mode":"PUSH"}"#,
            "neither PULL nor POP",
        ),
    ];
    for (body, why) in bad {
        let r = set_mode(&mut c, body);
        assert_eq!(r.code, response::SYSTEM_ERROR, "{why}");
        let remark = r.remark.unwrap_or_default();
        assert!(remark.contains(why), "{why}: {remark}");
    }

    // After the refused POP the group still gets PULL assignments.
    let mut a = consumer(port, CID_A);
    let mut admin = Client::connect(port);
    let created = admin.invoke(
        RemotingCommand::request(request::UPDATE_AND_CREATE_TOPIC)
            .with_ext("topic", TOPIC)
            .with_ext("readQueueNums", 4)
            .with_ext("writeQueueNums", 4)
            .with_ext("perm", 6),
    );
    assert_eq!(created.code, response::SUCCESS, "{:?}", created.remark);
    assert_eq!(avg(&mut a, CID_A), Some(vec![0, 1, 2, 3]));
    broker.terminate(Duration::from_secs(10));
}
