//! Request-reply with a real third-party client: rocketmq-client-rust 1.0,
//! driven by the `request_reply` binary of `interop/rust-client/` against the
//! real name server and broker binaries on 127.0.0.1.
//!
//! The binary runs a responder (a push consumer on the request topic that
//! answers each request with the client's `MessageUtil::create_reply_message`
//! and a producer: SEND_REPLY_MESSAGE_V2 to `TestCluster_REPLY_TOPIC`) and a
//! requester whose `request(msg, timeout)` must return each reply (pushed by
//! the broker with PUSH_REPLY_MESSAGE_TO_CLIENT); a request to a topic nobody
//! consumes must end in the client's timeout. It prints a `RESULT` line.
//!
//! The client crate lives outside the workspace (see
//! `interop_rust_client.rs`): build it with `cargo build --manifest-path
//! interop/rust-client/Cargo.toml`. The test finds the binary through
//! `FERROMQ_RUST_REQUEST_REPLY_BIN` or under
//! `interop/rust-client/target/{debug,release}/request_reply`, and skips with a
//! message when it is not there.
//!
//! Apache's C++ client (rocketmq-client-python 0.5.0rc2, librocketmq 2.x) has
//! no request-reply: no `request` in its API, no PUSH_REPLY_MESSAGE_TO_CLIENT
//! processor (only the unreleased `re_dev` rewrite of rocketmq-client-cpp has
//! one), so it is not tested here.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;
use ferromq_server::remoting::{request, response};

const TOPIC: &str = "RustRequestReplyTopic";
const COUNT: usize = 20;
const REPLY_TOPIC: &str = "TestCluster_REPLY_TOPIC";
const CLIENT_TIMEOUT: Duration = Duration::from_secs(300);
const BIN_NAME: &str = "request_reply";

/// The driver binary (see [`common::interop_bin`]).
fn request_reply_bin() -> Result<PathBuf, String> {
    interop_bin(BIN_NAME, "FERROMQ_RUST_REQUEST_REPLY_BIN")
}

#[test]
fn rocketmq_client_rust_request_gets_the_responders_reply() {
    let bin = match request_reply_bin() {
        Ok(b) => b,
        Err(why) => {
            eprintln!("SKIPPED interop_rust_request_reply: {why}");
            return;
        }
    };
    let (_tmp, dir) = temp_dir();
    let (_ns, ns_port) = start_namesrv(&dir);
    let (_broker, broker_port) =
        start_broker(&dir, &broker_props(&dir.join("store"), ""), Some(ns_port));

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
        format!("requests={COUNT} "),
        format!("replied={COUNT} "),
        "bad=0 ".to_string(),
        "no_responder=timeout".to_string(),
    ];
    let wants: Vec<&str> = want.iter().map(String::as_str).collect();
    let result = result_line(&lines, &wants);
    assert!(result.starts_with("RESULT ok "), "{result}");
    eprintln!("interop_rust_request_reply: {result}");

    // The broker agrees: every reply stored in the reply topic (a request
    // retried while the responder started may add a reply nobody awaited).
    let mut c = Client::connect(broker_port);
    let r = c.invoke(Client::offset_req(request::GET_MAX_OFFSET, REPLY_TOPIC, 0));
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let stored = r.ext_fields.get_i64("offset").unwrap();
    assert!(stored >= COUNT as i64, "{stored} replies stored");
    let pulled = c.invoke(Client::pull_req(
        "rr_interop_check",
        REPLY_TOPIC,
        0,
        0,
        32,
        0x4,
        0,
        "*",
    ));
    assert_eq!(pulled.code, response::SUCCESS, "{:?}", pulled.remark);
    let msgs = records(&pulled.body);
    assert!(msgs
        .iter()
        .all(|m| m.body.starts_with(b"reply-to:rr-request-")
            && m.properties.get("CORRELATION_ID").is_some()
            && m.properties.get("MSG_TYPE") == Some("reply")));
}
