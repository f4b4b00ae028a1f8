//! Interop with a real third-party client: the pure-JavaScript RocketMQ client
//! `ali-ons` (npm, 3.x), driven by `tests/clients/node_client.js` against the
//! real name server and broker binaries on 127.0.0.1.
//!
//! The script sends 10,000 messages over 4 queues with tags and keys (9,000
//! awaited one by one, 1,000 with 50 in flight), then a push consumer receives
//! every message exactly once with body, tags and keys intact, and a message
//! whose handler asks for a retry comes back through `%RETRY%node_push_group`.
//!
//! Skips (with a message) when `node` or the package is missing; `.ci/run`
//! installs it with `npm install --prefix server/tests/clients`.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use ferromq_server::remoting::{request, response, RemotingCommand};

const TOPIC: &str = "NodeInteropTopic";
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(300);

fn node_client_available() -> Result<(), String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients");
    match Command::new("node")
        .args(["-e", "require('ali-ons')"])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Err(e) => Err(format!("node not runnable: {e}")),
        Ok(s) if !s.success() => Err(
            "`require('ali-ons')` failed; install with `npm install --prefix server/tests/clients`"
                .into(),
        ),
        Ok(_) => Ok(()),
    }
}

#[test]
fn ali_ons_produces_and_push_consumes_with_retry() {
    if let Err(why) = node_client_available() {
        eprintln!("SKIPPED interop_node: {why}");
        return;
    }
    let (_tmp, dir) = temp_dir();
    let (_ns, ns_port) = start_namesrv(&dir);
    let (_broker, broker_port) =
        start_broker(&dir, &broker_props(&dir.join("store"), ""), Some(ns_port));

    // ali-ons does not auto-create topics: create it as mqadmin updateTopic does,
    // then wait (bounded) until the name server routes it.
    let mut b = Client::connect(broker_port);
    let r = b.invoke(
        RemotingCommand::request(request::UPDATE_AND_CREATE_TOPIC)
            .with_ext("topic", TOPIC)
            .with_ext("readQueueNums", 4)
            .with_ext("writeQueueNums", 4)
            .with_ext("perm", 6),
    );
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let mut ns = Client::connect(ns_port);
    wait_for(Duration::from_secs(20), || {
        let r = ns.invoke(
            RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC).with_ext("topic", TOPIC),
        );
        (r.code == response::SUCCESS).then_some(())
    })
    .expect("route within 20 s");

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/node_client.js");
    let lines = run_client_script(
        "node",
        script,
        &[format!("127.0.0.1:{ns_port}"), TOPIC.to_string()],
        &dir.join("home"),
        SCRIPT_TIMEOUT,
    );
    let result = result_line(
        &lines,
        &[
            "produced=10000",
            "queues=4",
            "pushed=10000",
            "exactly_once=1",
            "via_retry_topic=1",
        ],
    );
    eprintln!("interop_node: {result}");

    let mut total = 0;
    for q in 0..4 {
        let r = b.invoke(Client::offset_req(request::GET_MAX_OFFSET, TOPIC, q));
        total += r.ext_fields.get_i64("offset").unwrap();
    }
    assert_eq!(total, 10_000);
    let r = b.invoke(Client::offset_req(
        request::GET_MAX_OFFSET,
        "%RETRY%node_push_group",
        0,
    ));
    assert_eq!(r.ext_fields.get_i64("offset").unwrap(), 1);
}
