//! The read-only admin and stats requests against the real broker binary,
//! their answers decoded as RocketMQ 4.9's Java classes would (fastjson
//! object-key maps read with `parse_fastjson`): GET_TOPIC_STATS_INFO 202,
//! GET_CONSUMER_CONNECTION_LIST 203, GET_PRODUCER_CONNECTION_LIST 204,
//! GET_CONSUME_STATS 208, QUERY_TOPIC_CONSUME_BY_WHO 300, GET_TOPIC_CONFIG 351,
//! GET_ALL_PRODUCER_INFO 328, CHECK_CLIENT_CONFIG 46, VIEW_BROKER_STATS_DATA
//! 315, GET_BROKER_CONSUME_STATS 317.

mod common;

use std::collections::BTreeMap;

use common::*;
use ferromq_server::broker::ops_stats::{MessageQueueKey, OffsetWrapper, TopicOffset};
use ferromq_server::remoting::json::parse_fastjson;
use ferromq_server::remoting::{request, response, RemotingCommand};
use serde_json::Value;

const TOPIC: &str = "OpsTopic";
const GROUP: &str = "OpsGroup";
const PRODUCER: &str = "OpsProducer";
const CLIENT: &str = "127.0.0.1@ops-consumer";
const N: usize = 12;
const M: i64 = 5;

fn heartbeat() -> RemotingCommand {
    let body = format!(
        r#"{{"clientID":"{CLIENT}","producerDataSet":[{{"groupName":"{PRODUCER}"}}],"consumerDataSet":[{{"groupName":"{GROUP}","consumeType":"CONSUME_PASSIVELY","messageModel":"CLUSTERING","consumeFromWhere":"CONSUME_FROM_FIRST_OFFSET","subscriptionDataSet":[{{"classFilterMode":false,"codeSet":[],"expressionType":"TAG","subString":"*","subVersion":1700000000000,"tagsSet":[],"topic":"{TOPIC}"}}],"unitMode":false}}]}}"#
    );
    let mut r = RemotingCommand::request(request::HEART_BEAT).with_body(body.into_bytes());
    r.language = 0;
    r.version = 401;
    r
}

/// An object-key map decoded as `Map<MessageQueue, V>`.
fn mq_map<V: serde::de::DeserializeOwned>(v: &Value) -> BTreeMap<MessageQueueKey, V> {
    v.as_object()
        .expect("an object-key map")
        .iter()
        .map(|(k, w)| {
            (
                serde_json::from_str(k).expect("a MessageQueue key"),
                serde_json::from_value(w.clone()).expect("a value"),
            )
        })
        .collect()
}

fn body_of(r: &RemotingCommand) -> Value {
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    parse_fastjson(std::str::from_utf8(&r.body).unwrap()).expect("fastjson body")
}

#[test]
fn read_only_admin_answers_match_what_was_sent_and_committed() {
    let (_tmp, dir) = temp_dir();
    let (_broker, port) = start_broker(&dir, &broker_props(&dir.join("store"), ""), None);
    let mut c = Client::connect(port);

    // Unknown topic, before anything: RocketMQ's TOPIC_NOT_EXIST answers.
    let r = c.invoke(
        RemotingCommand::request(request::GET_TOPIC_STATS_INFO).with_ext("topic", "NoSuchTopic"),
    );
    assert_eq!(r.code, response::TOPIC_NOT_EXIST);
    assert_eq!(r.remark.as_deref(), Some("topic[NoSuchTopic] not exist"));
    let r = c.invoke(
        RemotingCommand::request(request::GET_TOPIC_CONFIG).with_ext("topic", "NoSuchTopic"),
    );
    assert_eq!(r.code, response::TOPIC_NOT_EXIST);
    assert_eq!(
        r.remark.as_deref(),
        Some("No topic in this broker. topic: NoSuchTopic")
    );

    for i in 0..N {
        let r = c.send_v2(TOPIC, 0, format!("m{i}").as_bytes(), Some("a"), None);
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    }
    assert_eq!(c.invoke(heartbeat()).code, response::SUCCESS);
    // The consume queue is written a moment after the sends: bounded retry.
    let got = wait_for(std::time::Duration::from_secs(10), || {
        let r = c.pull(GROUP, TOPIC, 0, 0, 32);
        (r.code == response::SUCCESS && records(&r.body).len() == N).then_some(())
    });
    assert!(got.is_some(), "{N} messages pulled");
    let r = c.invoke(
        RemotingCommand::request(request::UPDATE_CONSUMER_OFFSET)
            .with_ext("consumerGroup", GROUP)
            .with_ext("topic", TOPIC)
            .with_ext("queueId", 0)
            .with_ext("commitOffset", M),
    );
    assert_eq!(r.code, response::SUCCESS);

    // 202: per queue min/max offset and the last store time.
    let v = body_of(
        &c.invoke(RemotingCommand::request(request::GET_TOPIC_STATS_INFO).with_ext("topic", TOPIC)),
    );
    let t: BTreeMap<MessageQueueKey, TopicOffset> = mq_map(&v["offsetTable"]);
    assert_eq!(t.len(), 4, "defaultTopicQueueNums=4: {v}");
    let q0 = &t[&MessageQueueKey {
        broker_name: "broker-t".into(),
        queue_id: 0,
        topic: TOPIC.into(),
    }];
    assert_eq!((q0.min_offset, q0.max_offset), (0, N as i64));
    assert!(q0.last_update_timestamp > 1_600_000_000_000, "{q0:?}");
    assert!(t.values().skip(1).all(|o| o.max_offset == 0));

    // 203: the consumer, its subscription and kinds.
    let v = body_of(
        &c.invoke(
            RemotingCommand::request(request::GET_CONSUMER_CONNECTION_LIST)
                .with_ext("consumerGroup", GROUP),
        ),
    );
    let conns = v["connectionSet"].as_array().unwrap();
    assert_eq!(conns.len(), 1, "{v}");
    assert_eq!(conns[0]["clientId"], CLIENT);
    assert_eq!(conns[0]["language"], "JAVA");
    assert_eq!(conns[0]["version"], 401);
    assert!(conns[0]["clientAddr"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    assert_eq!(v["consumeType"], "CONSUME_PASSIVELY");
    assert_eq!(v["messageModel"], "CLUSTERING");
    assert_eq!(v["consumeFromWhere"], "CONSUME_FROM_FIRST_OFFSET");
    let sub = &v["subscriptionTable"][TOPIC];
    assert_eq!(sub["subString"], "*");
    assert_eq!(sub["expressionType"], "TAG");
    assert_eq!(sub["subVersion"], 1_700_000_000_000i64);

    // A group not online: CONSUMER_NOT_ONLINE with RocketMQ's remark.
    let r = c.invoke(
        RemotingCommand::request(request::GET_CONSUMER_CONNECTION_LIST)
            .with_ext("consumerGroup", "NobodyHere"),
    );
    assert_eq!(r.code, response::CONSUMER_NOT_ONLINE);
    assert_eq!(
        r.remark.as_deref(),
        Some("the consumer group[NobodyHere] not online")
    );

    // 204: the producer group's connection; an unknown one as RocketMQ.
    let v = body_of(
        &c.invoke(
            RemotingCommand::request(request::GET_PRODUCER_CONNECTION_LIST)
                .with_ext("producerGroup", PRODUCER),
        ),
    );
    assert_eq!(v["connectionSet"][0]["clientId"], CLIENT);
    let r = c.invoke(
        RemotingCommand::request(request::GET_PRODUCER_CONNECTION_LIST)
            .with_ext("producerGroup", "NoProducer"),
    );
    assert_eq!(r.code, response::SYSTEM_ERROR);
    assert_eq!(
        r.remark.as_deref(),
        Some("the producer group[NoProducer] not exist")
    );

    // 208: brokerOffset N, consumerOffset M, with and without the topic.
    for with_topic in [true, false] {
        let mut req =
            RemotingCommand::request(request::GET_CONSUME_STATS).with_ext("consumerGroup", GROUP);
        if with_topic {
            req = req.with_ext("topic", TOPIC);
        }
        let v = body_of(&c.invoke(req));
        assert!(v["consumeTps"].is_number(), "{v}");
        let t: BTreeMap<MessageQueueKey, OffsetWrapper> = mq_map(&v["offsetTable"]);
        let w = t.values().next().expect("queue 0");
        assert_eq!((w.broker_offset, w.consumer_offset), (N as i64, M), "{v}");
        assert!(w.last_timestamp > 1_600_000_000_000);
        let lag: i64 = t
            .values()
            .map(|w| w.broker_offset - w.consumer_offset)
            .sum();
        assert_eq!(lag, N as i64 - M);
    }

    // 300: the group consumes the topic.
    let v = body_of(&c.invoke(
        RemotingCommand::request(request::QUERY_TOPIC_CONSUME_BY_WHO).with_ext("topic", TOPIC),
    ));
    assert_eq!(v["groupList"], serde_json::json!([GROUP]));

    // 351: the topic config.
    let v = body_of(
        &c.invoke(RemotingCommand::request(request::GET_TOPIC_CONFIG).with_ext("topic", TOPIC)),
    );
    assert_eq!(v["topicName"], TOPIC);
    assert_eq!(
        (v["readQueueNums"].as_i64(), v["perm"].as_i64()),
        (Some(4), Some(6))
    );

    // 328: every producer.
    let v = body_of(&c.invoke(RemotingCommand::request(request::GET_ALL_PRODUCER_INFO)));
    assert_eq!(v["data"][PRODUCER][0]["clientId"], CLIENT);

    // 46: TAG passes; SQL92 is refused as with enablePropertyFilter=false.
    let check = |kind: &str| {
        let body = format!(
            r#"{{"clientId":"{CLIENT}","group":"{GROUP}","subscriptionData":{{"expressionType":"{kind}","subString":"a > 1","topic":"{TOPIC}"}}}}"#
        );
        RemotingCommand::request(request::CHECK_CLIENT_CONFIG).with_body(body.into_bytes())
    };
    assert_eq!(c.invoke(check("TAG")).code, response::SUCCESS);
    let r = c.invoke(check("SQL92"));
    assert_eq!(r.code, response::SYSTEM_ERROR);
    assert_eq!(
        r.remark.as_deref(),
        Some("The broker does not support consumer to filter message by SQL92")
    );

    // A malformed body (an object key left open): a clear error, nothing else.
    let r = c.invoke(
        RemotingCommand::request(request::CHECK_CLIENT_CONFIG)
            .with_body(br#"{"subscriptionData":{{"topic":"T"}:1"#.to_vec()),
    );
    assert_eq!(r.code, response::SYSTEM_ERROR);
    let remark = r.remark.unwrap_or_default();
    assert!(
        remark.starts_with("CheckClientRequestBody: fastjson: "),
        "{remark}"
    );

    // 315: the topic's put count; an unknown key as RocketMQ.
    let v = body_of(
        &c.invoke(
            RemotingCommand::request(request::VIEW_BROKER_STATS_DATA)
                .with_ext("statsName", "TOPIC_PUT_NUMS")
                .with_ext("statsKey", TOPIC),
        ),
    );
    for k in ["statsMinute", "statsHour", "statsDay"] {
        assert!(v[k]["tps"].is_number() && v[k]["sum"].is_number(), "{v}");
    }
    let r = c.invoke(
        RemotingCommand::request(request::VIEW_BROKER_STATS_DATA)
            .with_ext("statsName", "TOPIC_PUT_NUMS")
            .with_ext("statsKey", "Nope"),
    );
    assert_eq!(r.code, response::SYSTEM_ERROR);
    assert_eq!(
        r.remark.as_deref(),
        Some("The stats <TOPIC_PUT_NUMS> <Nope> not exist")
    );

    // 317: the group's lag in the broker's list.
    let v = body_of(&c.invoke(
        RemotingCommand::request(request::GET_BROKER_CONSUME_STATS).with_ext("isOrder", false),
    ));
    assert_eq!(v["totalDiff"].as_i64(), Some(N as i64 - M), "{v}");
    assert_eq!(v["brokerAddr"], format!("127.0.0.1:{port}"));

    // Sampled every 10 s: within a sample or two the minute figures show the
    // sends and the pull, and the group's TPS reaches GET_CONSUME_STATS.
    let stats = |c: &mut Client, name: &str, key: &str| {
        body_of(
            &c.invoke(
                RemotingCommand::request(request::VIEW_BROKER_STATS_DATA)
                    .with_ext("statsName", name)
                    .with_ext("statsKey", key),
            ),
        )
    };
    let key = format!("{TOPIC}@{GROUP}");
    let seen = wait_for(std::time::Duration::from_secs(25), || {
        let put = stats(&mut c, "TOPIC_PUT_NUMS", TOPIC);
        let get = stats(&mut c, "GROUP_GET_NUMS", &key);
        let n = Some(N as i64);
        (put["statsMinute"]["sum"].as_i64() == n && get["statsMinute"]["sum"].as_i64() == n)
            .then_some((put, get))
    });
    let (put, get) = seen.expect("the minute figures count the sends and the pull");
    assert!(put["statsMinute"]["tps"].as_f64().unwrap() > 0.0, "{put}");
    assert!(
        (put["statsMinute"]["avgpt"].as_f64().unwrap() - 1.0).abs() < 1e-9,
        "one a send: {put}"
    );
    assert!(
        (get["statsMinute"]["avgpt"].as_f64().unwrap() - N as f64).abs() < 1e-9,
        "{get}"
    );
    let size = stats(&mut c, "TOPIC_PUT_SIZE", TOPIC);
    assert!(size["statsMinute"]["sum"].as_i64().unwrap() > 0, "{size}");
    let v = body_of(
        &c.invoke(
            RemotingCommand::request(request::GET_CONSUME_STATS)
                .with_ext("consumerGroup", GROUP)
                .with_ext("topic", TOPIC),
        ),
    );
    assert!(v["consumeTps"].as_f64().unwrap() > 0.0, "{v}");
}

fn admin(ns_port: u16, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_ferromq-admin"))
        .arg("-n")
        .arg(format!("127.0.0.1:{ns_port}"))
        .args(args)
        .output()
        .expect("run ferromq-admin")
}

/// stdout of a run that succeeded, `None` when it failed.
fn admin_ok(ns_port: u16, args: &[&str]) -> Option<String> {
    let o = admin(ns_port, args);
    o.status
        .success()
        .then(|| String::from_utf8(o.stdout).unwrap())
}

#[test]
fn admin_subcommands_print_the_figures() {
    use std::time::Duration;
    let (_tmp, dir) = temp_dir();
    let (_ns, ns_port) = start_namesrv(&dir);
    let (_broker, port) = start_broker(&dir, &broker_props(&dir.join("store"), ""), Some(ns_port));
    let mut c = Client::connect(port);
    for i in 0..N {
        let r = c.send_v2(TOPIC, 0, format!("m{i}").as_bytes(), None, None);
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    }
    assert_eq!(c.invoke(heartbeat()).code, response::SUCCESS);
    let r = c.invoke(
        Client::offset_req(request::UPDATE_CONSUMER_OFFSET, TOPIC, 0)
            .with_ext("consumerGroup", GROUP)
            .with_ext("commitOffset", M),
    );
    assert_eq!(r.code, response::SUCCESS);

    // The broker registers the topic with the name server within seconds.
    let out = wait_for(Duration::from_secs(30), || {
        admin_ok(
            ns_port,
            &["producerConnection", "-g", PRODUCER, "-t", TOPIC],
        )
    })
    .expect("producerConnection succeeds once the topic is routed");
    let line = out.lines().next().unwrap_or_default();
    assert!(line.starts_with("0001  ") && line.contains(CLIENT), "{out}");
    assert!(
        line.contains("127.0.0.1:") && line.ends_with("JAVA     V4_9_4"),
        "{out}"
    );

    let out = admin_ok(ns_port, &["consumerConnection", "-g", GROUP]).expect("consumerConnection");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("#ClientId") && lines[0].ends_with("#Version"),
        "{out}"
    );
    assert!(
        lines[1].starts_with(CLIENT) && lines[1].ends_with("V4_9_4"),
        "{out}"
    );
    assert!(out.contains("Below is subscription:"), "{out}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(TOPIC) && l.ends_with(" *")),
        "{out}"
    );
    assert!(out.contains("ConsumeType: CONSUME_PASSIVELY"), "{out}");
    assert!(out.contains("MessageModel: CLUSTERING"), "{out}");
    assert!(
        out.contains("ConsumeFromWhere: CONSUME_FROM_FIRST_OFFSET"),
        "{out}"
    );
    let o = admin(ns_port, &["consumerConnection", "-g", "NobodyHere"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("CODE: 206 DESC: the consumer group[NobodyHere] not online"),
        "{err}"
    );

    let out = admin_ok(ns_port, &["topicStatus", "-t", TOPIC]).expect("topicStatus");
    let q0: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(q0[..4], ["broker-t", "0", "0", &N.to_string()], "{out}");
    assert!(q0.len() == 6 && q0[5].contains(','), "last updated: {out}");

    let out = admin_ok(ns_port, &["consumerProgress", "-g", GROUP]).expect("consumerProgress");
    let q0: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
    let lag = (N as i64 - M).to_string();
    assert_eq!(
        q0[..6],
        [TOPIC, "broker-t", "0", &N.to_string(), &M.to_string(), &lag],
        "{out}"
    );
    assert!(out.contains("Consume TPS: "), "{out}");
    assert!(out.contains(&format!("Diff Total: {lag}")), "{out}");

    let addr = format!("127.0.0.1:{port}");
    let out = admin_ok(ns_port, &["brokerConsumeStats", "-b", &addr]).expect("brokerConsumeStats");
    let q0: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        q0[..7],
        [
            TOPIC,
            GROUP,
            "broker-t",
            "0",
            &N.to_string(),
            &M.to_string(),
            &lag
        ],
        "{out}"
    );
    assert!(out.ends_with(&format!("\nDiff Total: {lag}\n")), "{out}");
    let out = admin_ok(ns_port, &["brokerConsumeStats", "-b", &addr, "-l", "100"]).unwrap();
    assert_eq!(out.lines().count(), 3, "level 100 hides the queue: {out}");

    let out = admin_ok(ns_port, &["statsAll", "-t", TOPIC]).expect("statsAll");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("#Topic") && lines[0].ends_with("#OutMsg24Hour"),
        "{out}"
    );
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(row[0], TOPIC, "{out}");
    assert_eq!(row[1], GROUP, "{out}");
    assert_eq!(row[2], (N as i64 - M).to_string(), "accumulation: {out}");
    assert_eq!(row.len(), 7, "{out}");
}

/// `cmd` signed as a client's ACL hook signs it.
fn signed(mut cmd: RemotingCommand, access_key: &str, secret_key: &str) -> RemotingCommand {
    use ferromq_server::acl::sign;
    cmd.ext_fields.insert(sign::ACCESS_KEY_FIELD, access_key);
    let content = sign::combine_request_content(&cmd.ext_fields.0, &cmd.body);
    cmd.ext_fields
        .insert(sign::SIGNATURE_FIELD, sign::sign(&content, secret_key));
    cmd
}

/// With `aclEnable=true` these are not admin requests (RocketMQ 4.9's
/// `PlainAccessValidator` checks only the signature for them): an account
/// without admin rights and with every topic denied gets its answers; an
/// unsigned request is refused.
#[test]
fn with_acl_a_signed_account_reads_the_stats() {
    let (_tmp, dir) = temp_dir();
    let acl = dir.join("plain_acl.yml");
    std::fs::write(
        &acl,
        "accounts:\n  - accessKey: readonly\n    secretKey: reader-secret\n    admin: false\n    \
         defaultTopicPerm: DENY\n    defaultGroupPerm: DENY\n",
    )
    .unwrap();
    let extra = format!("aclEnable=true\naclFilePath={}\n", acl.display());
    let (_broker, port) = start_broker(&dir, &broker_props(&dir.join("store"), &extra), None);
    let mut c = Client::connect(port);
    let reqs = [
        RemotingCommand::request(request::GET_TOPIC_STATS_INFO).with_ext("topic", "NoSuchTopic"),
        RemotingCommand::request(request::GET_CONSUME_STATS).with_ext("consumerGroup", GROUP),
        RemotingCommand::request(request::GET_CONSUMER_CONNECTION_LIST)
            .with_ext("consumerGroup", GROUP),
        RemotingCommand::request(request::QUERY_TOPIC_CONSUME_BY_WHO).with_ext("topic", TOPIC),
        RemotingCommand::request(request::GET_ALL_PRODUCER_INFO),
    ];
    let want = [
        response::TOPIC_NOT_EXIST,
        response::SUCCESS,
        response::CONSUMER_NOT_ONLINE,
        response::SUCCESS,
        response::SUCCESS,
    ];
    for (req, want) in reqs.into_iter().zip(want) {
        let code = req.code;
        let r = c.invoke(signed(req.clone(), "readonly", "reader-secret"));
        assert_eq!(r.code, want, "{code}: {:?}", r.remark);
        let r = c.invoke(req);
        assert_eq!(r.code, response::SYSTEM_ERROR, "{code} unsigned");
        assert!(
            r.remark.unwrap_or_default().contains("AclException"),
            "{code} unsigned"
        );
    }
}
