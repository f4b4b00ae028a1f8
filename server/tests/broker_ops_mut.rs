//! The broker's mutating operations requests (issue 21) against the real
//! binaries: offset reset (INVOKE_BROKER_TO_RESET_OFFSET 222) with Apache's
//! C++ push consumer (rocketmq-client-python 0.5.0rc2, driven by
//! `tests/clients/reset_offset_client.py`) both while it runs and while it is
//! stopped; subscription groups (200, 207) with `ferromq-admin updateSubGroup`
//! / `deleteSubGroup` and their effect on pulls and send-back; and the bad
//! input: an unknown topic or group, a malformed body.

mod common;

use common::{admin, admin_ok};

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use ferromq_server::broker::ops_mut::{code, parse_reset_offset_body};
use ferromq_server::remoting::{request, response, RemotingCommand};

const WAIT: Duration = Duration::from_secs(120);

/// Wait (bounded) until the broker is registered with the name server.
fn wait_registered(ns_port: u16) {
    let ok = wait_for(WAIT, || {
        let mut c = Client::connect(ns_port);
        let r = c.invoke(RemotingCommand::request(request::GET_BROKER_CLUSTER_INFO));
        String::from_utf8_lossy(&r.body)
            .contains("broker-t")
            .then_some(())
    });
    assert!(ok.is_some(), "the broker never registered");
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

/// Lines containing `needle` in the files under `dir` (bounded walk).
fn cpp_log_lines(dir: &std::path::Path, needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    let mut budget = 256usize;
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            budget = budget.saturating_sub(1);
            if budget == 0 {
                return out;
            }
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                let text = String::from_utf8_lossy(&bytes);
                out.extend(
                    text.lines()
                        .filter(|l| l.contains(needle))
                        .take(16)
                        .map(str::to_string),
                );
            }
        }
    }
    out
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
    wait_registered(ns_port);
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
    // The C++ client's own log says it decoded the reset (its
    // ResetOffsetBody::Decode logs each queue at INFO).
    let decoded = cpp_log_lines(&home.join("logs"), "ResetOffsetBody brokerName");
    eprintln!("C++ client log, decoded reset entries: {decoded:#?}");
    assert!(
        !decoded.is_empty(),
        "the C++ client did not log decoding RESET_CONSUMER_CLIENT_OFFSET"
    );
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

fn route_code(ns_port: u16, topic: &str) -> i32 {
    let mut c = Client::connect(ns_port);
    c.invoke(
        RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC)
            .with_ext("topic", topic)
            .with_ext("acceptStandardJsonOnly", true),
    )
    .code
}

#[test]
fn delete_topic_removes_config_queues_offsets_and_reports_the_name_server() {
    const TOPIC: &str = "DeleteMe";
    const KEEP: &str = "KeepMe";
    let (_tmp, dir) = temp_dir();
    let (_ns, ns_port) = start_namesrv(&dir);
    let store = dir.join("store");
    let (mut broker, port) = start_broker(&dir, &broker_props(&store, ""), Some(ns_port));
    wait_registered(ns_port);
    for t in [TOPIC, KEEP] {
        admin_ok(
            ns_port,
            &[
                "updateTopic",
                "-t",
                t,
                "-c",
                "TestCluster",
                "-r",
                "2",
                "-w",
                "2",
            ],
        );
    }
    admin_ok(
        ns_port,
        &["updateSubGroup", "-g", "del_group", "-c", "TestCluster"],
    );
    let mut c = Client::connect(port);
    for i in 0..6 {
        for t in [TOPIC, KEEP] {
            let r = c.send_v2(t, i % 2, format!("m{i}").as_bytes(), None, None);
            assert_eq!(r.code, response::SUCCESS);
        }
    }
    for t in [TOPIC, KEEP] {
        let r = c.invoke(
            RemotingCommand::request(request::UPDATE_CONSUMER_OFFSET)
                .with_ext("consumerGroup", "del_group")
                .with_ext("topic", t)
                .with_ext("queueId", 0)
                .with_ext("commitOffset", 2),
        );
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    }
    let cq = store.join("consumequeue").join(TOPIC);
    // Every message dispatched to its queue before the deletion.
    assert!(
        wait_for(WAIT, || (total_max_offset(port, TOPIC, 2) == 6)
            .then_some(()))
        .is_some(),
        "messages not dispatched"
    );
    assert!(cq.join("0").exists() && cq.join("1").exists());
    for t in [TOPIC, KEEP] {
        let seen = wait_for(WAIT, || {
            (route_code(ns_port, t) == response::SUCCESS).then_some(())
        });
        assert!(seen.is_some(), "the route of {t} never appeared");
    }

    let o = admin(ns_port, &["deleteTopic", "-t", TOPIC, "-c", "TestCluster"]);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    eprintln!("deleteTopic:\n{out}{}", String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success());
    assert!(out.contains("from broker"), "{out}");

    // On disk: the config, the queues and the offsets of the topic are gone,
    // the other topic's are kept.
    assert!(
        !cq.exists(),
        "consume queue folder still there: {:?}",
        std::fs::read_dir(&cq).map(|d| d.flatten().map(|e| e.path()).collect::<Vec<_>>())
    );
    assert!(store.join("consumequeue").join(KEEP).exists());
    let topics = std::fs::read_to_string(store.join("config/topics.json")).unwrap();
    assert!(!topics.contains(&format!("\"{TOPIC}\"")), "{topics}");
    assert!(topics.contains(&format!("\"{KEEP}\"")), "{topics}");
    let offsets = std::fs::read_to_string(store.join("config/consumerOffset.json")).unwrap();
    assert!(!offsets.contains(TOPIC), "{offsets}");
    assert!(offsets.contains(&format!("{KEEP}@del_group")), "{offsets}");
    assert_eq!(
        c.invoke(Client::offset_req(request::GET_MAX_OFFSET, TOPIC, 0))
            .ext_fields
            .get_i64("offset")
            .unwrap(),
        0
    );
    assert_eq!(total_max_offset(port, KEEP, 2), 6);

    // The route: gone when the name server serves DELETE_TOPIC_IN_NAMESRV.
    let ns_line = out
        .lines()
        .find(|l| l.contains("NameServer"))
        .unwrap_or("")
        .to_string();
    eprintln!("name server's answer to DELETE_TOPIC_IN_NAMESRV: {ns_line}");
    if ns_line.contains("success") {
        assert_eq!(route_code(ns_port, TOPIC), response::TOPIC_NOT_EXIST);
    } else {
        assert!(ns_line.contains("code"), "{out}");
    }
    assert_eq!(route_code(ns_port, KEEP), response::SUCCESS);

    // Bad input: the topic is gone now, a system topic is refused.
    let mut del = |t: &str| {
        c.invoke(RemotingCommand::request(code::DELETE_TOPIC_IN_BROKER).with_ext("topic", t))
    };
    // A topic that is gone: SUCCESS as RocketMQ answers, saying so.
    let r = del(TOPIC);
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    assert!(r.remark.unwrap().contains("nothing deleted"));
    let r = del("SCHEDULE_TOPIC_XXXX");
    assert_eq!(r.code, response::SYSTEM_ERROR);
    assert!(r.remark.unwrap().contains("system topic"));
    let r = del("../x");
    assert_ne!(r.code, response::SUCCESS);
    assert_eq!(total_max_offset(port, KEEP, 2), 6);

    // A crash (SIGKILL) once the queues' flush pass has run (every second
    // by default) does not bring the topic's queues back from the commitlog.
    drop(c);
    std::thread::sleep(Duration::from_secs(3));
    let _ = broker.child.kill();
    let _ = broker.child.wait();
    let (_broker, port) = start_broker(&dir, &broker_props(&store, ""), Some(ns_port));
    wait_registered(ns_port);
    assert_eq!(total_max_offset(port, KEEP, 2), 6);
    assert_eq!(total_max_offset(port, TOPIC, 2), 0);
    assert!(!cq.exists(), "the consume queues came back after a crash");

    // The topic may be used again: its queues start at 0.
    let mut c = Client::connect(port);
    for i in 0..2 {
        let r = c.send_v2(TOPIC, 0, format!("again{i}").as_bytes(), None, None);
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    }
    let back = wait_for(WAIT, || {
        (total_max_offset(port, TOPIC, 1) == 2).then_some(())
    });
    assert!(
        back.is_some(),
        "new messages of the deleted topic not dispatched"
    );
    let r = c.pull("del_group", TOPIC, 0, 0, 32);
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let bodies: Vec<String> = records(&r.body)
        .iter()
        .map(|m| String::from_utf8_lossy(&m.body).into_owned())
        .collect();
    assert_eq!(bodies, ["again0", "again1"]);
}

#[test]
fn sub_groups_consume_enable_retry_max_times_and_delete() {
    const TOPIC: &str = "SubGroupTopic";
    const GROUP: &str = "sub_g";
    let (_tmp, dir) = temp_dir();
    let (_ns, ns_port) = start_namesrv(&dir);
    let store = dir.join("store");
    let (_broker, port) = start_broker(&dir, &broker_props(&store, ""), Some(ns_port));
    wait_registered(ns_port);
    let addr = format!("127.0.0.1:{port}");
    let mut c = Client::connect(port);
    let r = c.send_v2(TOPIC, 0, b"hello", None, None);
    assert_eq!(r.code, response::SUCCESS);

    // consumeEnable=false: pulls refused with NO_PERMISSION.
    let out = admin_ok(
        ns_port,
        &[
            "updateSubGroup",
            "-g",
            GROUP,
            "-c",
            "TestCluster",
            "-s",
            "false",
            "-r",
            "0",
        ],
    );
    assert!(out.contains("success"), "{out}");
    let groups = std::fs::read_to_string(store.join("config/subscriptionGroup.json")).unwrap();
    assert!(groups.contains("\"consumeEnable\": false"), "{groups}");
    let r = c.pull(GROUP, TOPIC, 0, 0, 32);
    assert_eq!(r.code, response::NO_PERMISSION, "{:?}", r.remark);

    // consumeEnable=true again, retryMaxTimes=0: the first send-back goes to the DLQ.
    admin_ok(
        ns_port,
        &["updateSubGroup", "-g", GROUP, "-b", &addr, "-r", "0"],
    );
    let r = c.pull(GROUP, TOPIC, 0, 0, 32);
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let msgs = records(&r.body);
    assert_eq!(msgs.len(), 1);
    let r = c.invoke(
        RemotingCommand::request(request::CONSUMER_SEND_MSG_BACK)
            .with_ext("offset", msgs[0].commit_log_offset)
            .with_ext("group", GROUP)
            .with_ext("delayLevel", 0)
            .with_ext("originMsgId", "x")
            .with_ext("originTopic", TOPIC),
    );
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let dlq = format!("%DLQ%{GROUP}");
    assert!(
        wait_for(WAIT, || (total_max_offset(port, &dlq, 1) == 1)
            .then_some(()))
        .is_some(),
        "the message did not reach {dlq}"
    );

    // consumeBroadcastEnable=false (mqadmin's default): a BROADCASTING
    // consumer of the group is refused; true lets it pull.
    let bc = "bc_group";
    admin_ok(ns_port, &["updateSubGroup", "-g", bc, "-b", &addr]);
    let hb = format!(
        r#"{{"clientID":"bc-client","producerDataSet":[],"consumerDataSet":[{{"groupName":"{bc}","consumeType":"CONSUME_PASSIVELY","messageModel":"BROADCASTING","consumeFromWhere":"CONSUME_FROM_LAST_OFFSET","subscriptionDataSet":[{{"topic":"{TOPIC}","subString":"*"}}],"unitMode":false}}]}}"#
    );
    let r = c.invoke(RemotingCommand::request(request::HEART_BEAT).with_body(hb.into_bytes()));
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let r = c.pull(bc, TOPIC, 0, 0, 32);
    assert_eq!(r.code, response::NO_PERMISSION, "{:?}", r.remark);
    assert!(r
        .remark
        .unwrap()
        .contains("can not consume by broadcast way"));
    admin_ok(
        ns_port,
        &["updateSubGroup", "-g", bc, "-b", &addr, "-d", "true"],
    );
    let r = c.pull(bc, TOPIC, 0, 0, 32);
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);

    // A malformed body changes nothing.
    let r = c.invoke(
        RemotingCommand::request(code::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP)
            .with_body(b"{\"groupName\":".to_vec()),
    );
    assert_eq!(r.code, response::SYSTEM_ERROR);
    assert!(r.remark.unwrap().contains("SubscriptionGroupConfig"));

    // deleteSubGroup: gone from the file; deleting it again says so.
    let out = admin_ok(ns_port, &["deleteSubGroup", "-g", GROUP, "-b", &addr]);
    assert!(out.contains("success"), "{out}");
    let groups = std::fs::read_to_string(store.join("config/subscriptionGroup.json")).unwrap();
    assert!(!groups.contains("\"sub_g\""), "{groups}");
    let out = admin_ok(ns_port, &["deleteSubGroup", "-g", GROUP, "-b", &addr]);
    assert!(out.contains("does not exist"), "{out}");
}

#[test]
fn update_broker_config_applies_live_keys_persists_them_and_refuses_the_rest() {
    const TOPIC: &str = "ConfigTopic";
    let (_tmp, dir) = temp_dir();
    let (_ns, ns_port) = start_namesrv(&dir);
    let store = dir.join("store");
    let (_broker, port) = start_broker(&dir, &broker_props(&store, ""), Some(ns_port));
    wait_registered(ns_port);
    let addr = format!("127.0.0.1:{port}");
    let file = dir.join("broker.properties");
    let before = std::fs::read_to_string(&file).unwrap();
    let mut c = Client::connect(port);
    let r = c.send_v2(TOPIC, 0, b"m", None, None);
    assert_eq!(r.code, response::SUCCESS);

    // A live key: brokerPermission=4 (read only) refuses sends at once and
    // is in the properties file afterwards.
    let out = admin_ok(
        ns_port,
        &[
            "updateBrokerConfig",
            "-b",
            &addr,
            "-k",
            "brokerPermission",
            "-v",
            "4",
        ],
    );
    assert!(out.contains("success"), "{out}");
    let r = c.send_v2(TOPIC, 0, b"m", None, None);
    assert_eq!(r.code, response::NO_PERMISSION, "{:?}", r.remark);
    let after = std::fs::read_to_string(&file).unwrap();
    assert!(after.contains("brokerPermission=4\n"), "{after}");
    assert!(after.starts_with(&before), "other lines kept:\n{after}");
    let conf = c.invoke(RemotingCommand::request(request::GET_BROKER_CONFIG));
    let text = String::from_utf8_lossy(&conf.body).to_string();
    let perm: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("brokerPermission="))
        .collect();
    assert_eq!(perm, ["brokerPermission=4"], "{text}");
    // Back to 6: sends work again.
    admin_ok(
        ns_port,
        &[
            "updateBrokerConfig",
            "-b",
            &addr,
            "-k",
            "brokerPermission",
            "-v",
            "6",
        ],
    );
    let r = c.send_v2(TOPIC, 0, b"m", None, None);
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let persisted = std::fs::read_to_string(&file).unwrap();

    // Refused, nothing changed: a store key, a start-only key, an unknown
    // key, a bad value, and a body mixing a live key with a refused one.
    for (body, why) in [
        (
            "storePathRootDir=/tmp/elsewhere\n",
            "cannot be changed while the broker runs",
        ),
        ("mapedFileSizeCommitLog=4096\n", "store setting"),
        (
            "listenPort=1234\n",
            "cannot be changed while the broker runs",
        ),
        (
            "brokerName=other\n",
            "cannot be changed while the broker runs",
        ),
        ("noSuchKey=1\n", "unknown broker config key noSuchKey"),
        ("brokerPermission=99\n", "permission bits"),
        ("brokerPermission=2\nlistenPort=1\n", "listenPort"),
    ] {
        let r = c.invoke(
            RemotingCommand::request(request::UPDATE_BROKER_CONFIG)
                .with_body(body.as_bytes().to_vec()),
        );
        assert_eq!(r.code, response::SYSTEM_ERROR, "{body}");
        let remark = r.remark.unwrap_or_default();
        assert!(remark.contains(why), "{body}: {remark}");
    }
    let o = admin(
        ns_port,
        &[
            "updateBrokerConfig",
            "-b",
            &addr,
            "-k",
            "noSuchKey",
            "-v",
            "1",
        ],
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown broker config key"));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), persisted);
    let r = c.send_v2(TOPIC, 0, b"m", None, None);
    assert_eq!(r.code, response::SUCCESS, "permission unchanged");
}

/// With `aclEnable=true` the mutating requests 215, 200, 207 and 25 are
/// admin requests (RocketMQ 5's `Permission.ADMIN_CODE` lists those and not
/// 222): a non-admin account is refused and nothing changes; the admin
/// account is served.
#[test]
fn with_acl_the_mutating_requests_need_the_admin_account() {
    use ferromq_server::acl::sign;
    const ACL: &str = "\
accounts:
  - accessKey: rocketmq2
    secretKey: 12345678
    admin: false
    defaultTopicPerm: PUB|SUB
    defaultGroupPerm: SUB
  - accessKey: RocketMQAdmin
    secretKey: adminsecret
    admin: true
";
    fn signed(mut cmd: RemotingCommand, ak: &str, sk: &str) -> RemotingCommand {
        cmd.ext_fields.insert(sign::ACCESS_KEY_FIELD, ak);
        let content = sign::combine_request_content(&cmd.ext_fields.0, &cmd.body);
        cmd.ext_fields
            .insert(sign::SIGNATURE_FIELD, sign::sign(&content, sk));
        cmd
    }
    let (_tmp, dir) = temp_dir();
    let store = dir.join("store");
    let acl_file = dir.join("plain_acl.yml");
    std::fs::write(&acl_file, ACL).unwrap();
    let props = broker_props(
        &store,
        &format!("aclEnable=true\naclFilePath={}\n", acl_file.display()),
    );
    let (_broker, port) = start_broker(&dir, &props, None);
    let file = dir.join("broker.properties");
    let mut c = Client::connect(port);
    let r = c.invoke(signed(
        Client::send_v2_req("AclOpsTopic", 0, b"m", &[]),
        "rocketmq2",
        "12345678",
    ));
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let group_body = br#"{"groupName":"acl_g","consumeEnable":false}"#.to_vec();
    let requests = [
        RemotingCommand::request(code::DELETE_TOPIC_IN_BROKER).with_ext("topic", "AclOpsTopic"),
        RemotingCommand::request(code::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP)
            .with_body(group_body.clone()),
        RemotingCommand::request(code::DELETE_SUBSCRIPTIONGROUP).with_ext("groupName", "acl_g"),
        RemotingCommand::request(request::UPDATE_BROKER_CONFIG)
            .with_body(b"brokerPermission=4\n".to_vec()),
    ];
    let props_before = std::fs::read_to_string(&file).unwrap();
    for req in &requests {
        let r = c.invoke(signed(req.clone(), "rocketmq2", "12345678"));
        assert_eq!(r.code, response::SYSTEM_ERROR);
        let remark = r.remark.unwrap_or_default();
        assert!(
            remark.contains(&format!(
                "Need admin permission for request code={}, but accessKey=rocketmq2 is not",
                req.code
            )),
            "{remark}"
        );
    }
    // Nothing changed.
    let dispatched = wait_for(WAIT, || {
        let r = c.invoke(signed(
            Client::offset_req(request::GET_MAX_OFFSET, "AclOpsTopic", 0),
            "RocketMQAdmin",
            "adminsecret",
        ));
        (r.ext_fields.get_i64("offset").ok() == Some(1)).then_some(())
    });
    assert!(dispatched.is_some(), "the topic's message is gone");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), props_before);
    assert!(
        !std::fs::read_to_string(store.join("config/subscriptionGroup.json"))
            .unwrap_or_default()
            .contains("acl_g")
    );
    // The admin account is served.
    let r = c.invoke(signed(
        RemotingCommand::request(code::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP).with_body(group_body),
        "RocketMQAdmin",
        "adminsecret",
    ));
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let r = c.invoke(signed(
        RemotingCommand::request(code::DELETE_TOPIC_IN_BROKER).with_ext("topic", "AclOpsTopic"),
        "RocketMQAdmin",
        "adminsecret",
    ));
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
}
