//! `ferromq-admin` against the real name server and broker: topic creation and
//! listing, cluster list, topic status, consumer progress, query by key and by
//! msgId, expired-file deletion, broker status; and clear errors with exit code 1.

mod common;

use common::{admin, admin_ok};

use std::time::Duration;

use common::*;
use ferromq_server::remoting::{request, response};

const TOPIC: &str = "AdminTopic";

#[test]
fn admin_commands_against_real_binaries() {
    let (_tmp, dir) = temp_dir();
    let (_ns, ns_port) = start_namesrv(&dir);
    let (_broker, port) = start_broker(&dir, &broker_props(&dir.join("store"), ""), Some(ns_port));
    let addr = format!("127.0.0.1:{port}");

    // The broker registers within a few seconds.
    wait_for(Duration::from_secs(20), || {
        admin_ok(ns_port, &["clusterList"])
            .contains(&addr)
            .then_some(())
    })
    .expect("broker in cluster list");
    let out = admin_ok(ns_port, &["clusterList"]);
    assert!(out.starts_with("#Cluster Name"), "{out}");
    assert!(
        out.contains("TestCluster") && out.contains("broker-t"),
        "{out}"
    );

    let out = admin_ok(
        ns_port,
        &[
            "updateTopic",
            "-t",
            TOPIC,
            "-c",
            "TestCluster",
            "-r",
            "3",
            "-w",
            "3",
        ],
    );
    assert!(
        out.contains(&format!("create topic to {addr} success.")),
        "{out}"
    );
    wait_for(Duration::from_secs(20), || {
        admin_ok(ns_port, &["topicList"])
            .lines()
            .any(|l| l == TOPIC)
            .then_some(())
    })
    .expect("topic listed");

    let mut c = Client::connect(port);
    let mut msg_id = String::new();
    for i in 0..9 {
        let r = c.send_v2(
            TOPIC,
            i % 3,
            format!("admin-{i}").as_bytes(),
            Some("t"),
            Some(&format!("ak-{i}")),
        );
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
        if i == 4 {
            msg_id = r.ext_fields.get_str("msgId").unwrap().to_string();
        }
    }
    wait_for(Duration::from_secs(10), || {
        let out = admin_ok(ns_port, &["topicStatus", "-t", TOPIC]);
        let max_3 = |l: &&str| l.split_whitespace().nth(3) == Some("3");
        (out.lines().filter(max_3).count() == 3).then_some(())
    })
    .expect("3 queues with max offset 3");
    let out = admin_ok(ns_port, &["topicStatus", "-t", TOPIC]);
    assert!(
        out.starts_with("#Broker Name ") && out.lines().next().unwrap().ends_with("#Last Updated"),
        "{out}"
    );
    assert_eq!(out.lines().count(), 4, "{out}");

    // A consumer (known to the broker from its first pull) commits offsets
    // 1, 2 and 3 on queues 0..3: lag 2, 1, 0.
    let r = c.pull("AdminGroup", TOPIC, 0, 0, 1);
    assert!(
        r.code == response::SUCCESS || r.code == response::PULL_NOT_FOUND,
        "{:?}",
        r.remark
    );
    for q in 0..3 {
        let r = c.invoke(
            Client::offset_req(request::UPDATE_CONSUMER_OFFSET, TOPIC, q)
                .with_ext("consumerGroup", "AdminGroup")
                .with_ext("commitOffset", q + 1),
        );
        assert_eq!(r.code, response::SUCCESS);
    }
    let out = admin_ok(ns_port, &["consumerProgress", "-g", "AdminGroup"]);
    assert!(
        out.contains("#Consumer Offset") && out.contains("#Diff"),
        "{out}"
    );
    assert!(out.contains("Diff Total: 3"), "{out}");
    let row0: Vec<&str> = out
        .lines()
        .find(|l| l.starts_with(TOPIC) && l.split_whitespace().nth(2) == Some("0"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(row0[..6], [TOPIC, "broker-t", "0", "3", "1", "2"]);
    assert_eq!(row0.len(), 8, "#LastTime is a date and a time: {row0:?}");

    let out = wait_for(Duration::from_secs(10), || {
        let o = admin(ns_port, &["queryMsgByKey", "-t", TOPIC, "-k", "ak-4"]);
        o.status
            .success()
            .then(|| String::from_utf8(o.stdout).unwrap())
    })
    .expect("query by key");
    assert!(out.contains(&msg_id), "{out}");
    assert_eq!(out.lines().count(), 2, "{out}");

    let out = admin_ok(ns_port, &["queryMsgById", "-i", &msg_id]);
    assert!(out.contains("Message Body        : admin-4"), "{out}");
    assert!(out.contains("Keys                : ak-4"), "{out}");
    assert!(
        out.contains(&format!("Topic               : {TOPIC}")),
        "{out}"
    );

    let out = admin_ok(ns_port, &["deleteExpiredCommitLog", "-b", &addr]);
    assert!(out.contains("success"), "{out}");
    let out = admin_ok(ns_port, &["brokerStatus", "-b", &addr]);
    assert!(
        out.lines()
            .any(|l| l.starts_with("msgPutTotalTodayNow") && l.ends_with(": 9")),
        "{out}"
    );
    assert!(out.contains("commitLogMaxOffset"), "{out}");

    let out = admin_ok(ns_port, &["getBrokerConfig", "-c", "TestCluster"]);
    assert!(
        out.contains(&format!("============{addr}============")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("brokerName") && l.ends_with("=  broker-t")),
        "{out}"
    );
    assert!(out.lines().any(|l| l.starts_with("flushDiskType")), "{out}");

    // A client's msgId is its unique key: 32 hex digits that also decode as
    // an offset msgId, here of 10.0.0.1:8080. With -t, queryMsgById looks at
    // the topic's brokers only and falls back to the unique-key query, as
    // RocketMQ's viewMessage(topic, msgId) does.
    let uniq = "0A00000100001F900000000000000000";
    let r = c.invoke(Client::send_v2_req(
        TOPIC,
        1,
        b"by-unique-key",
        &[("UNIQ_CLIENT_MESSAGE_ID_KEYIDX", uniq)],
    ));
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let out = wait_for(Duration::from_secs(10), || {
        let o = admin(ns_port, &["queryMsgById", "-t", TOPIC, "-i", uniq]);
        o.status
            .success()
            .then(|| String::from_utf8(o.stdout).unwrap())
    })
    .expect("query by unique key");
    assert!(out.contains("Message Body        : by-unique-key"), "{out}");

    // Errors: clear message, exit code 1.
    for (args, want) in [
        (vec!["topicStatus", "-t", "NoSuchTopic"], "does not exist"),
        (
            vec!["consumerProgress", "-g", "NoGroup"],
            "no consumer offsets",
        ),
        (vec!["queryMsgById", "-i", "zz"], "not an offset msgId"),
        (vec!["updateTopic", "-t", "X"], "-b ADDR"),
        (vec!["brokerStatus", "-b", "127.0.0.1:1"], "127.0.0.1:1"),
    ] {
        let o = admin(ns_port, &args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.starts_with("ferromq-admin: ") && err.contains(want),
            "{args:?}: {err}"
        );
    }
}
