//! Interop with a real third-party client: Apache's C++ RocketMQ client as
//! shipped in the PyPI package `rocketmq-client-python==0.5.0rc2` (it bundles
//! `librocketmq.so`), driven by `tests/clients/python_client.py` against the
//! real name server and broker binaries on 127.0.0.1.
//!
//! The script sends 10,000 messages over 4 queues with tags and keys (9,800 sync
//! sends, 200 in batches), pulls them back with the C++ pull consumer 32 at a
//! time from offset 0 until NO_NEW_MSG (exactly once, body/tags/keys and a user property intact),
//! and consumes them with a push consumer whose handler fails once, so that the
//! message comes back through `%RETRY%py_push_group` (after its delay level,
//! 1 s here); then an orderly push
//! consumer (which consumes a queue only while holding its broker lock,
//! LOCK_BATCH_MQ) receives every message once, each queue in offset order.
//!
//! Skips (with a message) when `python3` or the package is missing;
//! `.ci/run` installs the package.

mod common;

use std::time::Duration;

use common::*;
use ferromq_server::remoting::{request, response};

const TOPIC: &str = "PyInteropTopic";
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(300);

fn python_client_available() -> Result<(), String> {
    python_rocketmq_available("import rocketmq.client")
}

#[test]
fn cpp_client_via_python_produces_pulls_and_push_consumes_with_retry() {
    if let Err(why) = python_client_available() {
        eprintln!("SKIPPED interop_python: {why}");
        return;
    }
    let (_tmp, dir) = temp_dir();
    let (_ns, ns_port) = start_namesrv(&dir);
    let store = dir.join("store");
    // The retried message waits at delay level 3 (10 s by default): short levels
    // keep the run quick; the retry still goes through SCHEDULE_TOPIC_XXXX.
    let props = broker_props(&store, "messageDelayLevel=1s 1s 1s 2s 2s 2s\n");
    let (_broker, broker_port) = start_broker(&dir, &props, Some(ns_port));

    // The C++ client logs under $HOME/logs/rocketmq-cpp: keep that in the temp dir.
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/python_client.py"
    );
    let lines = run_client_script(
        "python3",
        script,
        &[format!("127.0.0.1:{ns_port}"), TOPIC.to_string()],
        &dir.join("home"),
        SCRIPT_TIMEOUT,
    );
    let result = result_line(
        &lines,
        &[
            "produced=10000",
            "pulled=10000",
            "queues=4",
            "pushed=10000",
            "user_props_intact=10000",
            "orderly_in_queue_order=10000",
        ],
    );
    eprintln!("interop_python: {result}");

    // The broker side agrees: 10,000 messages over 4 queues, a retry topic with
    // the given-back messages, the group persisted.
    let total = total_max_offset(broker_port, TOPIC, 4);
    let mut c = Client::connect(broker_port);
    assert_eq!(total, 10_000);
    let r = c.invoke(Client::offset_req(
        request::GET_MAX_OFFSET,
        "%RETRY%py_push_group",
        0,
    ));
    assert_eq!(r.code, response::SUCCESS);
    assert!(r.ext_fields.get_i64("offset").unwrap() >= 1);
    let groups = std::fs::read_to_string(store.join("config/subscriptionGroup.json")).unwrap();
    assert!(groups.contains("\"py_push_group\""), "{groups}");
}
