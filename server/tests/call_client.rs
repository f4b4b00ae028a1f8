//! Admin requests the broker answers by asking a consumer over the
//! consumer's own connection (issue 21): GET_CONSUMER_RUNNING_INFO 307,
//! CONSUME_MESSAGE_DIRECTLY 309 and INVOKE_BROKER_TO_GET_CONSUMER_STATUS 223
//! (which sends GET_CONSUMER_STATUS_FROM_CLIENT 221), against the real broker
//! binary.
//!
//! - A scripted consumer on a raw socket answers each relayed request, so
//!   the test sees exactly what the client was sent (header, body: the
//!   stored message for 309) and what the admin got back.
//! - A consumer that never answers costs a CONSUME_MSG_TIMEOUT, one that
//!   hangs up ends the wait at once, and at most 16 calls wait on one
//!   client at a time.
//! - Apache's C++ push consumer (rocketmq-client-python 0.5.0rc2) answers
//!   307, read by `ferromq-admin consumerStatus`; it does not answer 309 or
//!   221, which then time out cleanly.
//!
//! rocketmq-client-rust 1.0, which answers all three, is in
//! `interop_rust_client.rs`.

mod common;

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::*;
use ferromq_server::remoting::json::parse_fastjson;
use ferromq_server::remoting::{request, response, RemotingCommand};
use serde_json::Value;

const TOPIC: &str = "CallTopic";
const GROUP: &str = "CallGroup";
const CLIENT_ID: &str = "127.0.0.1@call-consumer";
const CONSUME_MSG_TIMEOUT: i32 = 207;

fn heartbeat(client_id: &str) -> RemotingCommand {
    let body = format!(
        r#"{{"clientID":"{client_id}","producerDataSet":[],"consumerDataSet":[{{"groupName":"{GROUP}","consumeType":"CONSUME_PASSIVELY","messageModel":"CLUSTERING","consumeFromWhere":"CONSUME_FROM_FIRST_OFFSET","subscriptionDataSet":[{{"classFilterMode":false,"codeSet":[],"expressionType":"TAG","subString":"*","subVersion":1700000000000,"tagsSet":[],"topic":"{TOPIC}"}}],"unitMode":false}}]}}"#
    );
    let mut r = RemotingCommand::request(request::HEART_BEAT).with_body(body.into_bytes());
    r.language = 0;
    r.version = 401;
    r
}

/// A consumer on a raw socket, registered by heartbeat.
fn consumer(port: u16, client_id: &str) -> Client {
    let mut c = Client::connect(port);
    assert_eq!(c.invoke(heartbeat(client_id)).code, response::SUCCESS);
    c
}

/// Answer `req` (a request the broker sent) with `code` and `body`.
fn answer(c: &mut Client, req: &RemotingCommand, code: i32, body: &str) {
    let mut resp = RemotingCommand::response(code, None).with_body(body.as_bytes().to_vec());
    resp.opaque = req.opaque;
    resp.flag = 1;
    c.write_raw(&ferromq_server::remoting::codec::encode(&resp).unwrap());
}

/// The next request the broker sent `c` other than
/// NOTIFY_CONSUMER_IDS_CHANGED (which a heartbeat may set off).
fn next_call(c: &mut Client) -> RemotingCommand {
    for _ in 0..8 {
        let r = c.next_server_request();
        if r.code != request::NOTIFY_CONSUMER_IDS_CHANGED {
            return r;
        }
    }
    panic!("only NOTIFY_CONSUMER_IDS_CHANGED came");
}

/// Run `req` on a new admin connection in a thread.
fn ask(port: u16, req: RemotingCommand) -> std::thread::JoinHandle<RemotingCommand> {
    std::thread::spawn(move || Client::connect(port).invoke(req))
}

fn running_info_req(client_id: &str) -> RemotingCommand {
    RemotingCommand::request(307)
        .with_ext("consumerGroup", GROUP)
        .with_ext("clientId", client_id)
        .with_ext("jstackEnable", false)
}

fn fastjson(body: &[u8]) -> Value {
    parse_fastjson(std::str::from_utf8(body).unwrap()).expect("fastjson body")
}

#[test]
fn relayed_requests_reach_the_client_and_its_answers_come_back() {
    let (_tmp, dir) = temp_dir();
    let (_broker, port) = start_broker(&dir, &broker_props(&dir.join("store"), ""), None);
    let mut producer = Client::connect(port);
    let sent = producer.send_v2(TOPIC, 0, b"directly-please", Some("tagA"), Some("key-1"));
    assert_eq!(sent.code, response::SUCCESS, "{:?}", sent.remark);
    let msg_id = sent.ext_fields.get_str("msgId").unwrap().to_string();
    let mut fake = consumer(port, CLIENT_ID);

    // 307: relayed with the admin's header (less its signature), answered
    // with the client's body unchanged.
    let admin = ask(
        port,
        signed(running_info_req(CLIENT_ID), "RocketMQ", "12345678"),
    );
    let req = next_call(&mut fake);
    assert_eq!(req.code, 307);
    assert!(!req.is_oneway(), "a relayed call awaits an answer");
    assert_eq!(req.ext_fields.opt_str("consumerGroup"), Some(GROUP));
    assert_eq!(req.ext_fields.opt_str("clientId"), Some(CLIENT_ID));
    assert_eq!(req.ext_fields.opt_str("Signature"), None);
    let info = r#"{"properties":{"PROP_CONSUME_TYPE":"CONSUME_PASSIVELY"},"mqTable":{{"brokerName":"broker-t","queueId":0,"topic":"CallTopic"}:{"commitOffset":1}},"subscriptionSet":[],"statusTable":{}}"#;
    answer(&mut fake, &req, response::SUCCESS, info);
    let got = admin.join().unwrap();
    assert_eq!(got.code, response::SUCCESS, "{:?}", got.remark);
    assert_eq!(got.body, info.as_bytes());

    // 309: the stored message goes to the client with the request.
    let admin = ask(
        port,
        RemotingCommand::request(309)
            .with_ext("consumerGroup", GROUP)
            .with_ext("clientId", CLIENT_ID)
            .with_ext("msgId", &msg_id),
    );
    let req = next_call(&mut fake);
    assert_eq!(req.code, 309);
    assert!(req.ext_fields.opt_str("brokerName").is_some());
    let msgs = records(&req.body);
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].body, b"directly-please");
    assert_eq!(msgs[0].topic, TOPIC);
    let result = r#"{"order":false,"autoCommit":true,"consumeResult":"CR_SUCCESS","remark":"consumed","spentTimeMills":3}"#;
    answer(&mut fake, &req, response::SUCCESS, result);
    let got = admin.join().unwrap();
    assert_eq!(got.code, response::SUCCESS, "{:?}", got.remark);
    assert_eq!(fastjson(&got.body)["consumeResult"], "CR_SUCCESS");

    // 309 with an id that names no message: refused before the client is asked.
    let bad = Client::connect(port).invoke(
        RemotingCommand::request(309)
            .with_ext("consumerGroup", GROUP)
            .with_ext("clientId", CLIENT_ID)
            .with_ext("msgId", "not-a-msg-id"),
    );
    assert_eq!(bad.code, response::SYSTEM_ERROR);
    assert!(bad.remark.unwrap().contains("not an offset message id"));

    // 223 -> 221 to each consumer; their tables gathered by client id.
    let admin = ask(
        port,
        RemotingCommand::request(223)
            .with_ext("topic", TOPIC)
            .with_ext("group", GROUP),
    );
    let req = next_call(&mut fake);
    assert_eq!(req.code, 221);
    assert_eq!(req.ext_fields.opt_str("topic"), Some(TOPIC));
    answer(
        &mut fake,
        &req,
        response::SUCCESS,
        r#"{"messageQueueTable":{{"brokerName":"broker-t","queueId":0,"topic":"CallTopic"}:1}}"#,
    );
    let got = admin.join().unwrap();
    assert_eq!(got.code, response::SUCCESS, "{:?}", got.remark);
    let v = fastjson(&got.body);
    let table = v["consumerTable"][CLIENT_ID].as_object().unwrap();
    assert_eq!(table.len(), 1);
    let (mq, off) = table.iter().next().unwrap();
    let mq: Value = serde_json::from_str(mq).unwrap();
    assert_eq!(
        (mq["topic"].as_str(), mq["queueId"].as_i64()),
        (Some(TOPIC), Some(0))
    );
    assert_eq!(off.as_i64(), Some(1));

    // A client the group does not have, and a group with no consumer.
    let got = Client::connect(port).invoke(running_info_req("nobody@1"));
    assert_eq!(got.code, response::SYSTEM_ERROR);
    assert_eq!(
        got.remark.as_deref(),
        Some("The Consumer <CallGroup> <nobody@1> not online")
    );
    let got = Client::connect(port).invoke(
        RemotingCommand::request(223)
            .with_ext("topic", TOPIC)
            .with_ext("group", "NoSuchGroup"),
    );
    assert_eq!(got.code, response::SYSTEM_ERROR);
    assert!(got.remark.unwrap().contains("No Any Consumer online"));
}

#[test]
fn a_silent_client_times_out_a_hung_up_one_ends_the_wait_and_calls_are_bounded() {
    let (_tmp, dir) = temp_dir();
    let (_broker, port) = start_broker(&dir, &broker_props(&dir.join("store"), ""), None);
    let silent = consumer(port, CLIENT_ID);

    // 17 calls at once on a client that reads nothing back: 16 wait and
    // time out (CONSUME_MSG_TIMEOUT after 10 s), one is refused at once.
    let start = Instant::now();
    let go = Arc::new(Barrier::new(17));
    let calls: Vec<_> = (0..17)
        .map(|_| {
            let go = go.clone();
            std::thread::spawn(move || {
                let mut c = Client::connect(port);
                go.wait();
                let r = c.invoke(running_info_req(CLIENT_ID));
                (r, start.elapsed())
            })
        })
        .collect();
    let answers: Vec<_> = calls.into_iter().map(|h| h.join().unwrap()).collect();
    let timeouts = answers
        .iter()
        .filter(|(r, _)| r.code == CONSUME_MSG_TIMEOUT)
        .count();
    let busy: Vec<_> = answers
        .iter()
        .filter(|(r, _)| r.code == response::SYSTEM_ERROR)
        .collect();
    assert_eq!(timeouts, 16, "{answers:?}");
    assert_eq!(busy.len(), 1, "{answers:?}");
    assert!(
        busy[0].0.remark.as_deref().unwrap().contains("busy"),
        "{:?}",
        busy[0].0.remark
    );
    assert!(busy[0].1 < Duration::from_secs(8), "refused at once");
    for (r, took) in &answers {
        if r.code == CONSUME_MSG_TIMEOUT {
            assert!(*took >= Duration::from_secs(9), "{took:?}");
            assert!(r.remark.as_deref().unwrap().contains("Timeout"), "{r:?}");
        }
    }
    drop(silent);

    // A client that hangs up while the broker waits ends the wait at once.
    let mut leaving = consumer(port, "127.0.0.1@leaving");
    let t = Instant::now();
    let admin = ask(port, running_info_req("127.0.0.1@leaving"));
    let req = next_call(&mut leaving);
    assert_eq!(req.code, 307);
    drop(leaving);
    let got = admin.join().unwrap();
    assert_eq!(got.code, response::SYSTEM_ERROR, "{got:?}");
    assert!(got.remark.unwrap().contains("closed"));
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());

    // The broker still serves.
    let mut p = Client::connect(port);
    assert_eq!(
        p.send_v2(TOPIC, 0, b"after", None, None).code,
        response::SUCCESS
    );
}

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/clients/reset_offset_client.py"
);

#[test]
fn the_cpp_push_consumer_answers_running_info_and_the_rest_time_out() {
    if let Err(why) = python_rocketmq_available("import rocketmq.client") {
        eprintln!("SKIPPED call_client with the C++ client: {why}");
        return;
    }
    const CPP_TOPIC: &str = "CallCppTopic";
    const CPP_GROUP: &str = "call_py_group";
    const N: usize = 10;
    let (_tmp, dir) = temp_dir();
    let (_ns, ns_port) = start_namesrv(&dir);
    let (_broker, port) = start_broker(&dir, &broker_props(&dir.join("store"), ""), Some(ns_port));
    let ns = format!("127.0.0.1:{ns_port}");
    wait_for(Duration::from_secs(30), || {
        admin(ns_port, &["clusterList"])
            .status
            .success()
            .then_some(())
    })
    .expect("broker registered");
    admin_ok(
        ns_port,
        &[
            "updateTopic",
            "-t",
            CPP_TOPIC,
            "-c",
            "TestCluster",
            "-r",
            "2",
            "-w",
            "2",
        ],
    );
    let home = dir.join("home");
    let lines = run_client_script(
        "python3",
        SCRIPT,
        &[
            "produce".into(),
            ns.clone(),
            CPP_TOPIC.into(),
            N.to_string(),
        ],
        &home,
        Duration::from_secs(120),
    );
    result_line(&lines, &[&format!("produced={N}")]);

    std::fs::create_dir_all(&home).unwrap();
    let mut cmd = std::process::Command::new("python3");
    cmd.args([
        SCRIPT,
        "consume",
        &ns,
        CPP_TOPIC,
        CPP_GROUP,
        &N.to_string(),
        "2",
        "120",
    ])
    .env("HOME", &home)
    .env("PYTHONUNBUFFERED", "1");
    let mut cpp = spawn_to(
        "reset_offset_client",
        cmd,
        std::process::Stdio::inherit(),
        "warn",
    );
    cpp.wait_line("SEEN 1", Duration::from_secs(120));

    // The C++ client's id, from the broker's connection list.
    let conn = Client::connect(port).invoke(
        RemotingCommand::request(request::GET_CONSUMER_CONNECTION_LIST)
            .with_ext("consumerGroup", CPP_GROUP),
    );
    assert_eq!(conn.code, response::SUCCESS);
    let conn: Value = serde_json::from_slice(&conn.body).unwrap();
    let client_id = conn["connectionSet"][0]["clientId"]
        .as_str()
        .unwrap()
        .to_string();

    // consumerStatus: one line per client, and -i prints its running info.
    let all = admin_ok(ns_port, &["consumerStatus", "-g", CPP_GROUP]);
    eprintln!("consumerStatus:\n{all}");
    assert!(all.contains(&format!("001  {client_id}")), "{all}");
    assert!(all.contains("Same subscription"), "{all}");
    let one = admin_ok(
        ns_port,
        &["consumerStatus", "-g", CPP_GROUP, "-i", &client_id],
    );
    eprintln!("consumerStatus -i:\n{one}");
    assert!(one.contains("#Consumer Properties#"), "{one}");
    assert!(one.contains("#Consumer Subscription#"), "{one}");
    assert!(one.contains(&format!("Topic: {CPP_TOPIC}")), "{one}");
    assert!(one.contains("#Consumer RT&TPS#"), "{one}");

    // The C++ client does not answer CONSUME_MESSAGE_DIRECTLY: a timeout
    // after 10 s, reported as such, and the consumer goes on.
    let q = Client::connect(port).invoke(
        RemotingCommand::request(request::QUERY_MESSAGE)
            .with_ext("topic", CPP_TOPIC)
            .with_ext("key", "k0")
            .with_ext("maxNum", 1)
            .with_ext("beginTimestamp", 0)
            .with_ext("endTimestamp", i64::MAX),
    );
    assert_eq!(q.code, response::SUCCESS, "{:?}", q.remark);
    let stored = records(&q.body);
    let msg_id = stored[0].msg_id();
    let o = admin(
        ns_port,
        &[
            "queryMsgById",
            "-i",
            &msg_id,
            "-g",
            CPP_GROUP,
            "-d",
            &client_id,
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains(&format!("CODE: {CONSUME_MSG_TIMEOUT}")),
        "{err}"
    );

    // Nor GET_CONSUMER_STATUS_FROM_CLIENT: the client is left out.
    let out = admin_ok(
        ns_port,
        &["getConsumerStatus", "-g", CPP_GROUP, "-t", CPP_TOPIC],
    );
    assert!(out.contains("#clientId"), "{out}");
    assert!(!out.contains(&client_id), "{out}");
    assert!(
        cpp.child.try_wait().unwrap().is_none(),
        "the consumer still runs"
    );
}
