//! The broker's mutating operations requests (issue 21) against the real
//! binaries: offset reset (INVOKE_BROKER_TO_RESET_OFFSET 222) with Apache's
//! C++ push consumer (rocketmq-client-python 0.5.0rc2, driven by
//! `tests/clients/reset_offset_client.py`) both while it runs and while it is
//! stopped; subscription groups (200, 207) with `ferromq-admin updateSubGroup`
//! / `deleteSubGroup` and their effect on pulls and send-back; and the bad
//! input: an unknown topic or group, a malformed body.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;
use ferromq_server::broker::ops_mut::{code, parse_reset_offset_body};
use ferromq_server::remoting::{request, response, RemotingCommand};

const WAIT: Duration = Duration::from_secs(120);

fn admin(ns_port: u16, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferromq-admin"))
        .arg("-n")
        .arg(format!("127.0.0.1:{ns_port}"))
        .args(args)
        .output()
        .expect("run ferromq-admin")
}

fn admin_ok(ns_port: u16, args: &[&str]) -> String {
    let o = admin(ns_port, args);
    assert!(
        o.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn stored_offset(port: u16, group: &str, topic: &str, q: i32) -> i64 {
    let mut c = Client::connect(port);
    let r = c.invoke(
        RemotingCommand::request(request::QUERY_CONSUMER_OFFSET)
            .with_ext("consumerGroup", group)
            .with_ext("topic", topic)
            .with_ext("queueId", q),
    );
    if r.code != response::SUCCESS {
        return -1;
    }
    r.ext_fields.get_i64("offset").unwrap()
}

/// Wait (bounded) until the group's stored offsets of `queues` queues sum to `want`.
fn wait_stored_sum(port: u16, group: &str, topic: &str, queues: i32, want: i64) {
    let got = wait_for(WAIT, || {
        let s: i64 = (0..queues)
            .map(|q| stored_offset(port, group, topic, q).max(0))
            .sum();
        (s == want).then_some(s)
    });
    assert!(
        got.is_some(),
        "stored offsets of {group} never summed to {want}"
    );
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/clients/reset_offset_client.py"
);

/// The consumer script as a child whose stdout lines can be awaited.
fn spawn_consumer(
    home: &std::path::Path,
    ns: &str,
    topic: &str,
    group: &str,
    n: usize,
    times: u32,
) -> Proc {
    std::fs::create_dir_all(home).unwrap();
    let mut cmd = Command::new("python3");
    cmd.args([
        SCRIPT,
        "consume",
        ns,
        topic,
        group,
        &n.to_string(),
        &times.to_string(),
        "150",
    ])
    .env("HOME", home)
    .env("PYTHONUNBUFFERED", "1");
    spawn_to("reset_offset_client", cmd, Stdio::inherit(), "warn")
}

#[test]
fn reset_offset_by_time_with_the_cpp_push_consumer_online_and_offline() {
    if let Err(why) = python_rocketmq_available("import rocketmq.client") {
        eprintln!("SKIPPED broker_ops_mut reset with the C++ client: {why}");
        return;
    }
    const TOPIC: &str = "ResetTopic";
    const GROUP: &str = "reset_py_group";
    const N: usize = 40;
    let (_tmp, dir) = temp_dir();
    let (_ns, ns_port) = start_namesrv(&dir);
    let store = dir.join("store");
    let (_broker, port) = start_broker(&dir, &broker_props(&store, ""), Some(ns_port));
    let ns = format!("127.0.0.1:{ns_port}");
    admin_ok(
        ns_port,
        &[
            "updateTopic",
            "-t",
            TOPIC,
            "-c",
            "TestCluster",
            "-r",
            "4",
            "-w",
            "4",
        ],
    );
    // The reset goes to a time an hour before the first message.
    let before = now_ms() - 3_600_000;
    let home = dir.join("home");
    let lines = run_client_script(
        "python3",
        SCRIPT,
        &["produce".into(), ns.clone(), TOPIC.into(), N.to_string()],
        &home,
        Duration::from_secs(120),
    );
    result_line(&lines, &[&format!("produced={N}")]);
    assert_eq!(total_max_offset(port, TOPIC, 4), N as i64);

    // Online: the consumer gets every message once, its offsets reach the
    // end, then the reset while it runs makes it get every message again.
    let mut consumer = spawn_consumer(&home, &ns, TOPIC, GROUP, N, 2);
    consumer.wait_line("SEEN 1", WAIT);
    wait_stored_sum(port, GROUP, TOPIC, 4, N as i64);
    let out = admin_ok(
        ns_port,
        &[
            "resetOffsetByTime",
            "-g",
            GROUP,
            "-t",
            TOPIC,
            "-s",
            &before.to_string(),
        ],
    );
    eprintln!("resetOffsetByTime (online):\n{out}");
    assert!(out.contains("#brokerName"), "{out}");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("broker-t")).count(),
        4,
        "{out}"
    );
    let again = consumer.wait_line("SEEN 2", WAIT);
    eprintln!("C++ consumer after the online reset: {again}");
    consumer.wait_line("RESULT seen=2", WAIT);
    let _ = consumer.child.wait();
    wait_stored_sum(port, GROUP, TOPIC, 4, N as i64);

    // Offline: nobody of the group is connected; the stored offsets go back
    // and the restarted consumer resumes there.
    let out = admin_ok(
        ns_port,
        &[
            "resetOffsetByTime",
            "-g",
            GROUP,
            "-t",
            TOPIC,
            "-s",
            "1970-01-01#00:00:00:000",
        ],
    );
    eprintln!("resetOffsetByTime (offline):\n{out}");
    for q in 0..4 {
        assert_eq!(stored_offset(port, GROUP, TOPIC, q), 0, "queue {q}");
    }
    let file = std::fs::read_to_string(store.join("config/consumerOffset.json")).unwrap();
    assert!(
        file.contains(&format!("\"{TOPIC}@{GROUP}\":{{0:0,1:0,2:0,3:0}}")),
        "{file}"
    );
    let mut consumer = spawn_consumer(&home, &ns, TOPIC, GROUP, N, 1);
    let seen = consumer.wait_line("RESULT seen=1", WAIT);
    eprintln!("C++ consumer restarted after the offline reset: {seen}");
    let _ = consumer.child.wait();
    wait_stored_sum(port, GROUP, TOPIC, 4, N as i64);

    // `now` (timestamp -1): the latest offsets.
    let mut c = Client::connect(port);
    let r = c.invoke(
        RemotingCommand::request(code::INVOKE_BROKER_TO_RESET_OFFSET)
            .with_ext("topic", TOPIC)
            .with_ext("group", GROUP)
            .with_ext("timestamp", -1)
            .with_ext("isForce", true),
    );
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let rows = parse_reset_offset_body(std::str::from_utf8(&r.body).unwrap()).unwrap();
    assert_eq!(rows.iter().map(|r| r.3).sum::<i64>(), N as i64);
}

#[test]
fn reset_offset_bad_input_changes_nothing() {
    const TOPIC: &str = "ResetBad";
    let (_tmp, dir) = temp_dir();
    let store = dir.join("store");
    let (_broker, port) = start_broker(&dir, &broker_props(&store, ""), None);
    let mut c = Client::connect(port);
    for i in 0..4 {
        let r = c.send_v2(TOPIC, i % 4, format!("m{i}").as_bytes(), None, None);
        assert_eq!(r.code, response::SUCCESS);
    }
    let reset = |c: &mut Client, topic: &str, group: &str, ts: i64| {
        c.invoke(
            RemotingCommand::request(code::INVOKE_BROKER_TO_RESET_OFFSET)
                .with_ext("topic", topic)
                .with_ext("group", group)
                .with_ext("timestamp", ts)
                .with_ext("isForce", true),
        )
    };
    // A group the broker knows nothing of.
    let r = reset(&mut c, TOPIC, "nobody_group", 0);
    assert_eq!(r.code, response::SUBSCRIPTION_GROUP_NOT_EXIST);
    assert!(
        r.remark.as_deref().unwrap().contains("nobody_group"),
        "{:?}",
        r.remark
    );
    // A topic the broker does not have.
    let r = reset(&mut c, "NoSuchTopic", "nobody_group", 0);
    assert_eq!(r.code, response::SYSTEM_ERROR);
    assert!(r
        .remark
        .as_deref()
        .unwrap()
        .contains("no topic in this broker"));
    // A header without a timestamp.
    let r = c.invoke(
        RemotingCommand::request(code::INVOKE_BROKER_TO_RESET_OFFSET)
            .with_ext("topic", TOPIC)
            .with_ext("group", "g"),
    );
    assert_ne!(r.code, response::SUCCESS);
    // Nothing was stored for the unknown group.
    assert!(
        !std::fs::read_to_string(store.join("config/consumerOffset.json"))
            .unwrap_or_default()
            .contains("nobody_group")
    );
}
