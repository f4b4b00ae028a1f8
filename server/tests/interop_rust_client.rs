//! Interop with a real third-party client: the crates.io Rust client
//! `rocketmq-client-rust` 1.0 (built on RocketMQ 5.x's protocol structs),
//! driven by the binary of `interop/rust-client/` against the real name server
//! and broker binaries on 127.0.0.1.
//!
//! The binary sends 200 messages (tag and key each, sync sends), a push
//! consumer receives every one with body and key intact, and a lite pull
//! consumer reads them all again; it prints a `RESULT` line and exits non-zero
//! on any mismatch or timeout.
//!
//! The client crate is heavy, so it lives outside the workspace and `cargo test
//! --workspace` does not build it: `.ci/run` builds it first with
//! `cargo build --manifest-path interop/rust-client/Cargo.toml`. The test finds
//! the binary through `FERROMQ_RUST_CLIENT_BIN` or under
//! `interop/rust-client/target/{debug,release}/`, and skips with a message when
//! it is not there.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;
use ferromq_server::remoting::{request, response};

const TOPIC: &str = "RustClientInteropTopic";
const COUNT: usize = 200;
const CLIENT_TIMEOUT: Duration = Duration::from_secs(300);
const BIN_NAME: &str = "ferromq-interop-rust-client";

/// The driver binary (see [`common::interop_bin`]).
fn rust_client_bin() -> Result<PathBuf, String> {
    interop_bin(BIN_NAME, "FERROMQ_RUST_CLIENT_BIN")
}

#[test]
fn rocketmq_client_rust_sends_push_consumes_and_lite_pulls() {
    let bin = match rust_client_bin() {
        Ok(b) => b,
        Err(why) => {
            eprintln!("SKIPPED interop_rust_client: {why}");
            return;
        }
    };
    let (_tmp, dir) = temp_dir();
    let (_ns, ns_port) = start_namesrv(&dir);
    let store = dir.join("store");
    let (_broker, broker_port) = start_broker(&dir, &broker_props(&store, ""), Some(ns_port));

    let lines = run_client(
        bin.to_str().expect("utf-8 path"),
        &[
            format!("127.0.0.1:{ns_port}"),
            TOPIC.to_string(),
            COUNT.to_string(),
        ],
        &dir.join("home"),
        CLIENT_TIMEOUT,
    );
    let want = [
        format!("sent={COUNT} "),
        format!("pushed={COUNT} "),
        "pushed_bad=0".to_string(),
        format!("pulled={COUNT} "),
        "pulled_bad=0".to_string(),
    ];
    let wants: Vec<&str> = want.iter().map(String::as_str).collect();
    let result = result_line(&lines, &wants);
    assert!(result.starts_with("RESULT ok "), "{result}");
    eprintln!("interop_rust_client: {result}");

    // The broker agrees: every message stored once, both consumer groups'
    // offsets committed to the end (UPDATE_CONSUMER_OFFSET from the client),
    // and both groups known to it (their subscriptions persisted).
    assert_eq!(total_max_offset(broker_port, TOPIC, 4), COUNT as i64);
    let mut c = Client::connect(broker_port);
    for group in ["rs_interop_push", "rs_interop_pull"] {
        let committed: i64 = (0..4)
            .map(|q| {
                let r = c.invoke(
                    Client::offset_req(request::QUERY_CONSUMER_OFFSET, TOPIC, q)
                        .with_ext("consumerGroup", group),
                );
                assert_eq!(
                    r.code,
                    response::SUCCESS,
                    "{group} queue {q}: {:?}",
                    r.remark
                );
                r.ext_fields.get_i64("offset").unwrap()
            })
            .sum();
        assert_eq!(committed, COUNT as i64, "{group}'s committed offsets");
    }
    let groups = std::fs::read_to_string(store.join("config/subscriptionGroup.json")).unwrap();
    for g in ["rs_interop_push", "rs_interop_pull"] {
        assert!(
            groups.contains(&format!("\"{g}\"")),
            "{g} missing: {groups}"
        );
    }
}

/// The requests the broker relays to a consumer, answered by
/// rocketmq-client-rust 1.0's own client processor (it answers all three):
/// `ferromq-admin consumerStatus` (GET_CONSUMER_RUNNING_INFO 307),
/// `getConsumerStatus` (223, which sends GET_CONSUMER_STATUS_FROM_CLIENT 221)
/// and `queryMsgById -g -d` (CONSUME_MESSAGE_DIRECTLY 309), while the
/// driver's push consumer stays up (`FERROMQ_RUST_CLIENT_HOLD_SECS`).
#[test]
fn rocketmq_client_rust_answers_the_requests_the_broker_relays() {
    const GROUP: &str = "rs_interop_push";
    const N: usize = 20;
    let bin = match rust_client_bin() {
        Ok(b) => b,
        Err(why) => {
            eprintln!("SKIPPED interop_rust_client relayed requests: {why}");
            return;
        }
    };
    let (_tmp, dir) = temp_dir();
    let (_ns, ns_port) = start_namesrv(&dir);
    let (_broker, broker_port) =
        start_broker(&dir, &broker_props(&dir.join("store"), ""), Some(ns_port));
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let mut cmd = std::process::Command::new(&bin);
    cmd.args([format!("127.0.0.1:{ns_port}"), TOPIC.into(), N.to_string()])
        .env("HOME", &home)
        .env("FERROMQ_RUST_CLIENT_HOLD_SECS", "120");
    let mut client = spawn_to("rust-client", cmd, std::process::Stdio::inherit(), "warn");
    client.wait_line("HOLDING", CLIENT_TIMEOUT);

    let conn = Client::connect(broker_port).invoke(
        ferromq_server::remoting::RemotingCommand::request(request::GET_CONSUMER_CONNECTION_LIST)
            .with_ext("consumerGroup", GROUP),
    );
    assert_eq!(conn.code, response::SUCCESS, "{:?}", conn.remark);
    let conn: serde_json::Value = serde_json::from_slice(&conn.body).unwrap();
    let id = conn["connectionSet"][0]["clientId"]
        .as_str()
        .expect("a client id")
        .to_string();

    let all = admin_ok(ns_port, &["consumerStatus", "-g", GROUP]);
    eprintln!("consumerStatus:\n{all}");
    assert!(all.contains(&format!("001  {id}")), "{all}");
    assert!(all.contains(" ok"), "{all}");
    let one = admin_ok(ns_port, &["consumerStatus", "-g", GROUP, "-i", &id]);
    eprintln!("consumerStatus -i:\n{one}");
    assert!(one.contains(&format!("Topic: {TOPIC}")), "{one}");
    // Its offsets: one row per queue of the topic, summing to N.
    let offsets: i64 = one
        .lines()
        .skip_while(|l| !l.starts_with("#Consumer Offset#"))
        .skip(2)
        .take_while(|l| !l.is_empty())
        .filter(|l| l.starts_with(TOPIC))
        .map(|l| l.split_whitespace().nth(3).unwrap().parse::<i64>().unwrap())
        .sum();
    assert_eq!(offsets, N as i64, "{one}");

    let status = admin_ok(ns_port, &["getConsumerStatus", "-g", GROUP, "-t", TOPIC]);
    eprintln!("getConsumerStatus:\n{status}");
    let rows: Vec<&str> = status.lines().filter(|l| l.starts_with(&id)).collect();
    assert_eq!(rows.len(), 4, "{status}");

    let q = Client::connect(broker_port).invoke(
        ferromq_server::remoting::RemotingCommand::request(request::QUERY_MESSAGE)
            .with_ext("topic", TOPIC)
            .with_ext("key", "rs-key-0")
            .with_ext("maxNum", 1)
            .with_ext("beginTimestamp", 0)
            .with_ext("endTimestamp", i64::MAX),
    );
    assert_eq!(q.code, response::SUCCESS, "{:?}", q.remark);
    let msg_id = records(&q.body)[0].msg_id();
    let direct = admin_ok(
        ns_port,
        &["queryMsgById", "-i", &msg_id, "-g", GROUP, "-d", &id],
    );
    eprintln!("queryMsgById -g -d:\n{direct}");
    assert!(direct.contains("consumeResult=CR_SUCCESS"), "{direct}");
}

/// rocketmq-client-rust 1.0's push consumer with `client_rebalance(false)`
/// (the driver's `FERROMQ_RUST_CLIENT_SERVER_REBALANCE`): it asks the broker
/// for its queues with QUERY_ASSIGNMENT 400 and still receives every
/// message; the broker's log shows the assignment it answered.
#[test]
fn rocketmq_client_rust_push_consumer_with_broker_side_rebalance() {
    const N: usize = 40;
    let bin = match rust_client_bin() {
        Ok(b) => b,
        Err(why) => {
            eprintln!("SKIPPED interop_rust_client broker-side rebalance: {why}");
            return;
        }
    };
    let (_tmp, dir) = temp_dir();
    let (_ns, ns_port) = start_namesrv(&dir);
    let log = dir.join("broker.log");
    let props = broker_props(
        &dir.join("store"),
        &format!("namesrvAddr=127.0.0.1:{ns_port}\n"),
    );
    let (_broker, _port) = start_broker_logged_at(
        &dir,
        &props,
        &log,
        "warn,ferromq_server::broker::assignment=debug",
    );
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let mut cmd = std::process::Command::new(&bin);
    cmd.args([format!("127.0.0.1:{ns_port}"), TOPIC.into(), N.to_string()])
        .env("HOME", &home)
        .env("FERROMQ_RUST_CLIENT_SERVER_REBALANCE", "1");
    let mut client = spawn_to("rust-client", cmd, std::process::Stdio::inherit(), "warn");
    let result = client.wait_line("RESULT", CLIENT_TIMEOUT);
    assert!(result.contains(&format!("pushed={N} ")), "{result}");
    assert!(result.contains("pushed_bad=0"), "{result}");
    let text = std::fs::read_to_string(&log).unwrap();
    let answered: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("QUERY_ASSIGNMENT answered") && l.contains("rs_interop_push"))
        .collect();
    assert!(
        !answered.is_empty(),
        "no QUERY_ASSIGNMENT from the client:\n{text}"
    );
    assert!(
        answered
            .iter()
            .any(|l| l.contains(&format!("topic={TOPIC} ")) && l.ends_with("queues=4")),
        "{answered:#?}"
    );
}
