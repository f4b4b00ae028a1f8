//! The name server's operations requests against the real binaries (issue 21
//! items 1 and 6): the KV config (PUT/GET/DELETE_KV_CONFIG,
//! GET_KVLIST_BY_NAMESPACE) survives a restart and a damaged file stops the
//! start; `orderTopicConf` in a route; WIPE/ADD_WRITE_PERM_OF_BROKER change
//! the perm a producer reads, and the broker's periodic registration keeps the
//! wipe; DELETE_TOPIC_IN_NAMESRV, GET_TOPICS_BY_CLUSTER,
//! GET_SYSTEM_TOPIC_LIST_FROM_NS; the writing requests need an admin account
//! with the ACL on. `ferromq-admin` runs as a process for each subcommand.

mod common;

use common::{admin, admin_ok};

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::hostile::start_namesrv_with;
use common::{broker_props, start_broker, temp_dir, wait_for, Client, Proc};
use ferromq_server::acl::Credentials;
use ferromq_server::remoting::json::parse_lenient;
use ferromq_server::remoting::{request, response, RemotingCommand};
use serde_json::Value;

const TOPIC: &str = "NsOpsTopic";

fn kv_get(ns_port: u16, namespace: &str, key: &str) -> RemotingCommand {
    Client::connect(ns_port).invoke(
        RemotingCommand::request(request::GET_KV_CONFIG)
            .with_ext("namespace", namespace)
            .with_ext("key", key),
    )
}

fn ns_props(dir: &Path, extra: &str) -> String {
    format!(
        "kvConfigPath={}\norderMessageEnable=true\n{extra}",
        dir.join("kv").join("kvConfig.json").display()
    )
}

/// The route as a 4.x producer reads it (fastjson, version 0) and as a
/// newer one does (standard JSON); both must agree. `None`: no route.
fn route(ns_port: u16, topic: &str) -> Option<Value> {
    // A registration or a perm change may land between the two reads: read
    // the pair again (a few times, bounded) until both forms agree.
    let mut last = None;
    for _ in 0..10 {
        match route_pair(ns_port, topic) {
            None => return None,
            Some((old, std)) if old["queueDatas"] == std["queueDatas"] => return Some(std),
            Some(pair) => last = Some(pair),
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let (old, std) = last.expect("read at least once");
    assert_eq!(old["queueDatas"], std["queueDatas"]);
    Some(std)
}

/// The route in both forms, fastjson first; `None`: no route.
fn route_pair(ns_port: u16, topic: &str) -> Option<(Value, Value)> {
    let mut c = Client::connect(ns_port);
    let old = c
        .invoke(RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC).with_ext("topic", topic));
    if old.code == response::TOPIC_NOT_EXIST {
        return None;
    }
    assert_eq!(old.code, 0, "{:?}", old.remark);
    let old = parse_lenient(std::str::from_utf8(&old.body).unwrap()).expect("fastjson route");
    let std = c.invoke(
        RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC)
            .with_ext("topic", topic)
            .with_ext("acceptStandardJsonOnly", true),
    );
    let std: Value = serde_json::from_slice(&std.body).expect("standard JSON route");
    Some((old, std))
}

fn perm(ns_port: u16, topic: &str) -> i64 {
    route(ns_port, topic).expect("route")["queueDatas"][0]["perm"]
        .as_i64()
        .unwrap()
}

/// Start `ferromq-namesrv` expecting it to fail; its stderr (bounded wait).
fn failed_start(dir: &Path, extra: &str) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let cfg = dir.join("namesrv.properties");
    std::fs::write(
        &cfg,
        format!("listenPort=0\nbindAddress=127.0.0.1\n{extra}"),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferromq-namesrv"))
        .arg("-c")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the name server started with a damaged KV config file");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success());
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    err
}

fn start_with_broker(dir: &Path, ns_extra: &str, broker_extra: &str) -> (Proc, u16, Proc, u16) {
    let (ns, ns_port) = start_namesrv_with(
        &dir.join("ns"),
        &ns_props(dir, ns_extra),
        &dir.join("ns.log"),
    );
    let bdir = dir.join("broker");
    let (broker, port) = start_broker(
        &bdir,
        &broker_props(&bdir.join("store"), broker_extra),
        Some(ns_port),
    );
    let out = admin_ok(
        ns_port,
        &[
            "updateTopic",
            "-t",
            TOPIC,
            "-b",
            &format!("127.0.0.1:{port}"),
            "-r",
            "4",
            "-w",
            "4",
        ],
    );
    assert!(out.contains("success"), "{out}");
    wait_for(Duration::from_secs(20), || {
        route(ns_port, TOPIC).map(|_| ())
    })
    .expect("the topic's route");
    (ns, ns_port, broker, port)
}

#[test]
fn kv_config_survives_restart_and_order_topic_conf_is_in_the_route() {
    let (_d, dir) = temp_dir();
    let (mut ns, ns_port, _broker, _) = start_with_broker(&dir, "", "");

    let r = kv_get(ns_port, "app", "k1");
    assert_eq!(r.code, response::QUERY_NOT_FOUND);
    assert_eq!(
        r.remark.as_deref(),
        Some("No config item, Namespace: app Key: k1")
    );
    let out = admin_ok(
        ns_port,
        &["updateKvConfig", "-s", "app", "-k", "k1", "-v", "v1"],
    );
    assert_eq!(out, "create or update kv config to namespace success.\n");
    admin_ok(
        ns_port,
        &["updateKvConfig", "-s", "app", "-k", "k2", "-v", "v2"],
    );
    admin_ok(
        ns_port,
        &[
            "updateKvConfig",
            "-s",
            "ORDER_TOPIC_CONFIG",
            "-k",
            TOPIC,
            "-v",
            "broker-t:4",
        ],
    );
    let r = kv_get(ns_port, "app", "k1");
    assert_eq!((r.code, r.ext_fields.opt_str("value")), (0, Some("v1")));
    let mut c = Client::connect(ns_port);
    let r = c.invoke(
        RemotingCommand::request(request::GET_KVLIST_BY_NAMESPACE).with_ext("namespace", "app"),
    );
    assert_eq!(r.code, 0);
    assert_eq!(r.body, br#"{"table":{"k1":"v1","k2":"v2"}}"#);
    let r = c.invoke(
        RemotingCommand::request(request::GET_KVLIST_BY_NAMESPACE).with_ext("namespace", "nope"),
    );
    assert_eq!(r.code, response::QUERY_NOT_FOUND);
    let r = c.invoke(RemotingCommand::request(request::GET_KVLIST_BY_NAMESPACE));
    assert_eq!(r.code, response::SYSTEM_ERROR);
    assert!(
        r.remark.as_deref().unwrap_or("").contains("<namespace>"),
        "{:?}",
        r.remark
    );
    // The file is RocketMQ's KVConfigSerializeWrapper.
    let file = dir.join("kv").join("kvConfig.json");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(v["configTable"]["app"]["k2"], "v2");

    // orderTopicConf, as RocketMQ 4.9 with orderMessageEnable=true.
    let rt = route(ns_port, TOPIC).unwrap();
    assert_eq!(rt["orderTopicConf"], "broker-t:4", "{rt}");

    // Restart: everything is still there.
    ns.terminate(Duration::from_secs(20));
    drop(ns);
    let (mut ns, ns_port) =
        start_namesrv_with(&dir.join("ns"), &ns_props(&dir, ""), &dir.join("ns2.log"));
    assert_eq!(
        kv_get(ns_port, "app", "k2").ext_fields.opt_str("value"),
        Some("v2")
    );
    assert_eq!(
        kv_get(ns_port, "ORDER_TOPIC_CONFIG", TOPIC)
            .ext_fields
            .opt_str("value"),
        Some("broker-t:4")
    );
    let out = admin_ok(ns_port, &["deleteKvConfig", "-s", "app", "-k", "k1"]);
    assert_eq!(out, "delete kv config from namespace success.\n");
    // Deleting what is not there succeeds, as in RocketMQ.
    admin_ok(ns_port, &["deleteKvConfig", "-s", "nope", "-k", "k1"]);
    assert_eq!(kv_get(ns_port, "app", "k1").code, response::QUERY_NOT_FOUND);
    ns.terminate(Duration::from_secs(20));
    drop(ns);
    let (ns, ns_port) =
        start_namesrv_with(&dir.join("ns"), &ns_props(&dir, ""), &dir.join("ns3.log"));
    assert_eq!(kv_get(ns_port, "app", "k1").code, response::QUERY_NOT_FOUND);
    assert_eq!(
        kv_get(ns_port, "app", "k2").ext_fields.opt_str("value"),
        Some("v2")
    );
    drop(ns);

    // A damaged file stops the start, naming it; the file is left alone.
    std::fs::write(&file, "{\"configTable\":{\"app\":{\"k2\"").unwrap();
    let err = failed_start(&dir.join("ns"), &ns_props(&dir, ""));
    assert!(
        err.contains("kvConfig.json") && err.contains("damaged"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "{\"configTable\":{\"app\":{\"k2\""
    );
}

#[test]
fn wipe_and_add_write_perm_delete_topic_and_topic_lists() {
    let (_d, dir) = temp_dir();
    let (_ns, ns_port, _broker, port) =
        start_with_broker(&dir, "", "registerNameServerPeriod=10000\n");
    assert_eq!(perm(ns_port, TOPIC), 6);
    let ns_addr = format!("127.0.0.1:{ns_port}");

    let out = admin_ok(ns_port, &["wipeWritePerm", "-b", "broker-t"]);
    let prefix = format!("wipe write perm of broker[broker-t] in name server[{ns_addr}] OK, ");
    let n: usize = out
        .trim_end()
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{out}"))
        .parse()
        .unwrap();
    assert!(n >= 2, "the topic and TBW102 at least: {out}");
    // A producer reading the route sees read-only queues.
    assert_eq!(perm(ns_port, TOPIC), 4);
    // The broker's periodic registrations (same data version) keep the wipe,
    // as RocketMQ's registerBroker does.
    std::thread::sleep(Duration::from_millis(11_000));
    assert_eq!(perm(ns_port, TOPIC), 4, "a registration undid the wipe");

    let out = admin_ok(ns_port, &["wipeWritePerm", "-b", "no-such-broker"]);
    assert_eq!(
        out,
        format!("wipe write perm of broker[no-such-broker] in name server[{ns_addr}] OK, 0\n")
    );
    let out = admin_ok(ns_port, &["addWritePerm", "-b", "broker-t"]);
    assert_eq!(
        out,
        format!("add write perm of broker[broker-t] in name server[{ns_addr}] OK, {n}\n")
    );
    assert_eq!(perm(ns_port, TOPIC), 6);
    // As in RocketMQ, a changed topic config on the broker (a new data
    // version in its registration) brings the broker's own perms back.
    admin_ok(ns_port, &["wipeWritePerm", "-b", "broker-t"]);
    assert_eq!(perm(ns_port, TOPIC), 4);
    admin_ok(
        ns_port,
        &[
            "updateTopic",
            "-t",
            "NsOpsOther",
            "-b",
            &format!("127.0.0.1:{port}"),
        ],
    );
    wait_for(Duration::from_secs(20), || {
        (perm(ns_port, TOPIC) == 6).then_some(())
    })
    .expect("the new data version's perms replace the wipe");
    // Without -b: clap's usage error, exit 2.
    assert!(!admin(ns_port, &["wipeWritePerm"]).status.success());

    // topicList -c: mqadmin's table with the cluster per topic.
    let out = admin_ok(ns_port, &["topicList", "-c"]);
    let mut lines = out.lines();
    let head = lines.next().unwrap();
    assert!(
        head.starts_with(&format!("{:<20}  #Topic", "#Cluster Name"))
            && head.contains("#Consumer Group"),
        "{out}"
    );
    assert!(
        lines.any(|l| l.starts_with("TestCluster") && l.contains(TOPIC)),
        "{out}"
    );

    // topicRoute: the route as JSON; an unknown topic is an error.
    let out = admin_ok(ns_port, &["topicRoute", "-t", TOPIC]);
    let shown: serde_json::Value = serde_json::from_str(&out).expect("route JSON");
    assert_eq!(shown["brokerDatas"][0]["brokerName"], "broker-t", "{out}");
    assert!(
        shown["queueDatas"]
            .as_array()
            .is_some_and(|q| !q.is_empty()),
        "{out}"
    );
    let o = admin(ns_port, &["topicRoute", "-t", "NoSuchTopicAnywhere"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("does not exist"));

    let mut c = Client::connect(ns_port);
    let r = c.invoke(
        RemotingCommand::request(request::GET_TOPICS_BY_CLUSTER).with_ext("cluster", "TestCluster"),
    );
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert!(
        v["topicList"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == TOPIC),
        "{v}"
    );
    let r = c.invoke(
        RemotingCommand::request(request::GET_TOPICS_BY_CLUSTER).with_ext("cluster", "nope"),
    );
    assert_eq!(r.body, br#"{"topicList":[]}"#);
    let r = c.invoke(RemotingCommand::request(
        request::GET_SYSTEM_TOPIC_LIST_FROM_NS,
    ));
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        v["topicList"],
        serde_json::json!(["TestCluster", "broker-t"])
    );
    assert_eq!(v["brokerAddr"], format!("127.0.0.1:{port}"));

    // DELETE_TOPIC_IN_NAMESRV: the route goes; an unknown topic is fine too.
    let del = |topic: &str| {
        RemotingCommand::request(request::DELETE_TOPIC_IN_NAMESRV).with_ext("topic", topic)
    };
    assert_eq!(c.invoke(del(TOPIC)).code, 0);
    assert!(route(ns_port, TOPIC).is_none());
    assert_eq!(c.invoke(del("NeverWasATopic")).code, 0);
    let r = c.invoke(RemotingCommand::request(request::DELETE_TOPIC_IN_NAMESRV));
    assert_eq!(r.code, response::SYSTEM_ERROR);
    assert!(
        r.remark.as_deref().unwrap_or("").contains("<topic>"),
        "{:?}",
        r.remark
    );
}

const ACL: &str = "\
accounts:
  - accessKey: clusteradmin
    secretKey: adminsecret1
    admin: true
  - accessKey: appuser
    secretKey: appsecret1
    admin: false
    defaultTopicPerm: PUB|SUB
    defaultGroupPerm: PUB|SUB
";

#[test]
fn with_acl_the_writing_requests_need_an_admin_account() {
    let (_d, dir) = temp_dir();
    let acl_file = dir.join("plain_acl.yml");
    std::fs::write(&acl_file, ACL).unwrap();
    let extra = format!("aclEnable=true\naclFilePath={}\n", acl_file.display());
    let (_ns, ns_port) = start_namesrv_with(
        &dir.join("ns"),
        &ns_props(&dir, &extra),
        &dir.join("ns.log"),
    );
    let app = Credentials::new("appuser", "appsecret1").unwrap();
    let mut c = Client::connect(ns_port);
    let writes = [
        RemotingCommand::request(request::PUT_KV_CONFIG)
            .with_ext("namespace", "app")
            .with_ext("key", "k")
            .with_ext("value", "v"),
        RemotingCommand::request(request::DELETE_KV_CONFIG)
            .with_ext("namespace", "app")
            .with_ext("key", "k"),
        RemotingCommand::request(request::WIPE_WRITE_PERM_OF_BROKER).with_ext("brokerName", "b"),
        RemotingCommand::request(request::ADD_WRITE_PERM_OF_BROKER).with_ext("brokerName", "b"),
        RemotingCommand::request(request::DELETE_TOPIC_IN_NAMESRV).with_ext("topic", "T"),
    ];
    for w in &writes {
        let r = c.invoke(w.clone());
        assert_eq!(
            r.code,
            response::SYSTEM_ERROR,
            "unsigned {}: {:?}",
            w.code,
            r.remark
        );
        assert!(
            r.remark.as_deref().unwrap_or("").contains("No accessKey"),
            "{:?}",
            r.remark
        );
        let mut signed = w.clone();
        app.sign(&mut signed);
        let r = c.invoke(signed);
        assert!(
            r.remark
                .as_deref()
                .unwrap_or("")
                .contains("Need admin permission"),
            "{}: {:?}",
            w.code,
            r.remark
        );
    }
    // ferromq-admin signs with an admin account: taken.
    let keys = ["--accessKey", "clusteradmin", "--secretKey", "adminsecret1"];
    let mut args = keys.to_vec();
    args.extend(["updateKvConfig", "-s", "app", "-k", "k", "-v", "v"]);
    admin_ok(ns_port, &args);
    // Reads stay open.
    let r = kv_get(ns_port, "app", "k");
    assert_eq!((r.code, r.ext_fields.opt_str("value")), (0, Some("v")));
    // Unsigned, ferromq-admin says why and exits 1.
    let o = admin(
        ns_port,
        &["updateKvConfig", "-s", "app", "-k", "k", "-v", "w"],
    );
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("No accessKey"), "{err}");
    let mut args = keys.to_vec();
    args.extend(["wipeWritePerm", "-b", "b"]);
    let out = admin_ok(ns_port, &args);
    assert!(out.trim_end().ends_with("OK, 0"), "{out}");
    let o = admin(ns_port, &["addWritePerm", "-b", "b"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("Failed"));
}

/// Draining a broker with a real producer: Apache's C++ client (through
/// rocketmq-client-python) reads the route after `wipeWritePerm -b broker-a`
/// and writes only to broker-b; after `addWritePerm` it writes to both.
/// Skips with a message when the client is not installed.
#[test]
fn cpp_producer_moves_to_the_other_broker_while_one_is_wiped() {
    if let Err(why) = common::python_rocketmq_available("import rocketmq.client") {
        eprintln!("SKIPPED cpp_producer_moves_to_the_other_broker_while_one_is_wiped: {why}");
        return;
    }
    let (_d, dir) = temp_dir();
    let (_ns, ns_port) =
        start_namesrv_with(&dir.join("ns"), &ns_props(&dir, ""), &dir.join("ns.log"));
    let mut brokers = Vec::new();
    for name in ["broker-a", "broker-b"] {
        let bdir = dir.join(name);
        let props = common::ha_props(&bdir.join("store"), name, 0, "ASYNC_MASTER", "");
        brokers.push(start_broker(&bdir, &props, Some(ns_port)));
    }
    wait_for(Duration::from_secs(30), || {
        let out = admin_ok(ns_port, &["clusterList"]);
        (out.contains("broker-a") && out.contains("broker-b")).then_some(())
    })
    .expect("both brokers registered");
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
    wait_for(Duration::from_secs(20), || {
        let n = route(ns_port, TOPIC)?["queueDatas"].as_array()?.len();
        (n == 2).then_some(())
    })
    .expect("the topic on both brokers");
    let (a_port, b_port) = (brokers[0].1, brokers[1].1);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/python_drain.py");
    let send = |count: usize| {
        let lines = common::run_client_script(
            "python3",
            script,
            &[
                format!("127.0.0.1:{ns_port}"),
                TOPIC.to_string(),
                count.to_string(),
            ],
            &dir.join("home"),
            Duration::from_secs(120),
        );
        common::result_line(&lines, &[&format!("sent={count}")]);
    };

    let out = admin_ok(ns_port, &["wipeWritePerm", "-b", "broker-a"]);
    assert!(out.contains("OK, "), "{out}");
    // The consume queues take a send a moment after it is acknowledged:
    // wait (bounded) for all of them before counting per broker.
    let both = |want: i64| {
        wait_for(Duration::from_secs(10), || {
            let a = common::total_max_offset(a_port, TOPIC, 4);
            let b = common::total_max_offset(b_port, TOPIC, 4);
            (a + b == want).then_some((a, b))
        })
        .unwrap_or_else(|| panic!("{want} messages in the consume queues"))
    };
    send(20);
    let (a, b) = both(20);
    assert_eq!(a, 0, "broker-a is drained");
    assert_eq!(b, 20);

    admin_ok(ns_port, &["addWritePerm", "-b", "broker-a"]);
    send(40);
    let (a, b) = both(60);
    assert_eq!(a + b, 60);
    assert!(a > 0, "broker-a takes sends again: a={a} b={b}");
}
