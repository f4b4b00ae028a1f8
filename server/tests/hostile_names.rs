//! Issue 17, item 7 and the broker's part of item 4: names are validated at
//! every entry (nothing is saved for a refused request, no `%RETRY%`/`%DLQ%`
//! topic for a bad or empty group, auto-create through a send accepts exactly
//! what UPDATE_AND_CREATE_TOPIC accepts), and config files are written at most
//! every few hundred milliseconds, not per change (a heartbeat naming 1,000 new
//! groups used to take 14.8 s), and at shutdown.
//!
//! `FERROMQ_BROKER_BIN=/path/to/ferromq-broker cargo test -p ferromq-server
//! --test hostile_names -- --nocapture heartbeat` times an older build the same
//! way (the time is printed; the one-second bound applies to this build only).

mod common;

use std::time::{Duration, Instant};

use common::names::{
    broker_bin, broker_topics, config_size, group_names, heartbeat_req, read_config,
    start_broker_bin, topic_names, wait_config,
};
use common::{broker_props, start_broker, temp_dir, Client};
use ferromq_server::remoting::{request, RemotingCommand};

const SYSTEM_ERROR: i32 = 1;

fn groups(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i:04}")).collect()
}

/// A refusal: SYSTEM_ERROR with a short remark naming the rule.
fn assert_refused(r: &RemotingCommand, what: &str) {
    assert_eq!(r.code, SYSTEM_ERROR, "{what}: {:?}", r.remark);
    let remark = r.remark.clone().unwrap_or_default();
    assert!(
        remark.len() < 400,
        "{what}: the remark echoes too much ({} bytes)",
        remark.len()
    );
    assert!(
        remark.contains("group") || remark.contains("topic"),
        "{what}: the remark names no rule: {remark}"
    );
}

#[test]
fn heartbeat_naming_1000_new_groups_is_fast_and_every_group_is_persisted() {
    let (_d, dir) = temp_dir();
    let store = dir.join("store");
    let bin = broker_bin();
    let (mut broker, port) = start_broker_bin(&bin, &dir, &broker_props(&store, ""));
    let mut c = Client::connect(port);
    if std::env::var_os("FERROMQ_BROKER_BIN").is_some() {
        // An older build may take far longer than this one's bound.
        c.stream
            .set_read_timeout(Some(Duration::from_secs(300)))
            .unwrap();
    }

    let first = groups("HbGroupA", 1000);
    let started = Instant::now();
    let r = c.invoke(heartbeat_req("hb-client-1", &first, &[], "HbTopic"));
    let took = started.elapsed();
    assert_eq!(r.code, 0, "{:?}", r.remark);
    println!(
        "heartbeat naming 1000 new groups answered in {took:?} by {}",
        bin.display()
    );
    if std::env::var_os("FERROMQ_BROKER_BIN").is_none() {
        assert!(took < Duration::from_secs(1), "took {took:?}");
    }

    // Written within the coalescing interval, without a shutdown.
    let all_groups = |names: &[String]| {
        let names = names.to_vec();
        move |text: &str| {
            let have = group_names(text);
            names.iter().all(|g| have.contains(g))
        }
    };
    let all_retry_topics = |names: &[String]| {
        let names = names.to_vec();
        move |text: &str| {
            let have = topic_names(text);
            names.iter().all(|g| have.contains(&format!("%RETRY%{g}")))
        }
    };
    let t = wait_config(
        &store,
        "subscriptionGroup.json",
        Duration::from_secs(10),
        all_groups(&first),
    )
    .expect("every group in subscriptionGroup.json without a shutdown");
    println!("the 1000 groups were in subscriptionGroup.json {t:?} after the answer");
    wait_config(
        &store,
        "topics.json",
        Duration::from_secs(10),
        all_retry_topics(&first),
    )
    .expect("every retry topic in topics.json without a shutdown");

    // 1,000 more, then a graceful shutdown at once: the latest state is written.
    let second = groups("HbGroupB", 1000);
    let started = Instant::now();
    let r = c.invoke(heartbeat_req("hb-client-2", &second, &[], "HbTopic"));
    let took = started.elapsed();
    assert_eq!(r.code, 0, "{:?}", r.remark);
    println!("a second heartbeat naming 1000 new groups answered in {took:?}");
    drop(c);
    let st = broker.terminate(Duration::from_secs(30));
    assert!(st.success(), "{st:?}");
    let groups_text = read_config(&store, "subscriptionGroup.json");
    assert!(all_groups(&first)(&groups_text) && all_groups(&second)(&groups_text));
    let topics_text = read_config(&store, "topics.json");
    assert!(all_retry_topics(&first)(&topics_text) && all_retry_topics(&second)(&topics_text));
}

#[test]
fn oversize_empty_and_illegal_group_names_are_refused_and_nothing_is_saved() {
    let (_d, dir) = temp_dir();
    let store = dir.join("store");
    let (mut broker, port) = start_broker(&dir, &broker_props(&store, ""), None);
    let mut c = Client::connect(port);
    assert_eq!(c.send_v2("NamesT", 0, b"m0", None, None).code, 0);
    let offset_req = |code: i32, group: &str| {
        Client::offset_req(code, "NamesT", 0)
            .with_ext("consumerGroup", group)
            .with_ext("commitOffset", 5)
    };

    let huge = "K".repeat(8 << 20);
    let bad: Vec<(&str, String)> = vec![
        ("8 MiB", huge.clone()),
        ("256 characters", "K".repeat(256)),
        ("empty", String::new()),
        ("a dot", "Kept.out".into()),
        ("a path", "../../KeptOut".into()),
    ];
    for (what, g) in &bad {
        for _ in 0..3 {
            let r = c.invoke(offset_req(request::UPDATE_CONSUMER_OFFSET, g));
            assert_refused(&r, &format!("offset commit, group {what}"));
        }
        let r = c.invoke(offset_req(request::QUERY_CONSUMER_OFFSET, g));
        assert_refused(&r, &format!("offset query, group {what}"));
        // A heartbeat naming a good group and a bad one saves neither.
        let r = c.invoke(heartbeat_req(
            "bad-client",
            &["KeptOutGood".to_string(), g.clone()],
            &[],
            "NamesT",
        ));
        assert_refused(&r, &format!("heartbeat, consumer group {what}"));
        let r = c.invoke(heartbeat_req(
            "bad-client",
            &["KeptOutGood2".to_string()],
            std::slice::from_ref(g),
            "NamesT",
        ));
        assert_refused(&r, &format!("heartbeat, producer group {what}"));
        let r = c.invoke(Client::pull_req(g, "NamesT", 0, 0, 1, 0, 0, "*"));
        assert_refused(&r, &format!("pull, group {what}"));
        for delay in [0, -1] {
            let r = c.invoke(
                RemotingCommand::request(request::CONSUMER_SEND_MSG_BACK)
                    .with_ext("offset", 0)
                    .with_ext("group", g.as_str())
                    .with_ext("delayLevel", delay)
                    .with_ext("originMsgId", "x")
                    .with_ext("maxReconsumeTimes", 0),
            );
            assert_refused(&r, &format!("send-back, group {what}"));
        }
        let r = c.invoke(
            RemotingCommand::request(request::LOCK_BATCH_MQ).with_body(
                serde_json::json!({
                    "consumerGroup": g, "clientId": "bad-client",
                    "mqSet": [{"topic": "NamesT", "brokerName": "broker-t", "queueId": 0}]
                })
                .to_string()
                .into_bytes(),
            ),
        );
        assert_refused(&r, &format!("lock batch, group {what}"));
    }
    // A subscription to a bad topic refuses the whole heartbeat too.
    let r = c.invoke(heartbeat_req(
        "bad-client",
        &["KeptOutGood3".to_string()],
        &[],
        "../../KeptOutTopic",
    ));
    assert_refused(&r, "heartbeat subscribing to a path");

    // Good requests still work, and their writes carry none of the refused names.
    // (Offsets are stored for groups the broker knows, from a heartbeat or a pull.)
    let r = c.invoke(heartbeat_req(
        "good-client",
        &["GoodHb".into(), "GoodG".into()],
        &[],
        "NamesT",
    ));
    assert_eq!(r.code, 0, "{:?}", r.remark);
    let r = c.invoke(offset_req(request::UPDATE_CONSUMER_OFFSET, "GoodG"));
    assert_eq!(r.code, 0, "{:?}", r.remark);
    wait_config(
        &store,
        "consumerOffset.json",
        Duration::from_secs(15),
        |t| t.contains("NamesT@GoodG"),
    )
    .expect("the good offset is written");
    wait_config(&store, "topics.json", Duration::from_secs(10), |t| {
        t.contains("%RETRY%GoodHb")
    })
    .expect("the good group's retry topic is written");
    wait_config(
        &store,
        "subscriptionGroup.json",
        Duration::from_secs(10),
        |t| t.contains("GoodHb"),
    )
    .expect("the good group is written");
    let live_topics = broker_topics(&mut c);
    drop(c);
    let st = broker.terminate(Duration::from_secs(30));
    assert!(st.success(), "{st:?}");

    let check = |topics: &[String]| {
        for t in topics {
            assert!(
                t != "%RETRY%" && t != "%DLQ%" && !t.contains("Kept") && t.len() <= 127,
                "topic created for a refused name: {}",
                &t[..t.len().min(80)]
            );
        }
    };
    check(&live_topics);
    check(&topic_names(&read_config(&store, "topics.json")));
    for f in [
        "consumerOffset.json",
        "subscriptionGroup.json",
        "topics.json",
    ] {
        let size = config_size(&store, f);
        assert!(size < 64 * 1024, "{f} is {size} bytes");
        let text = read_config(&store, f);
        assert!(!text.contains("Kept"), "{f} holds a refused name");
        assert!(!text.contains("KKKKKKKK"), "{f} holds a refused name");
    }
    let groups = group_names(&read_config(&store, "subscriptionGroup.json"));
    assert!(groups.contains(&"GoodHb".to_string()));
    assert!(
        !groups.iter().any(|g| g.is_empty()),
        "the empty group was saved"
    );
    assert!(read_config(&store, "consumerOffset.json").contains("NamesT@GoodG"));
}

#[test]
fn auto_create_through_a_send_accepts_exactly_what_update_and_create_topic_accepts() {
    let (_d, dir) = temp_dir();
    let store = dir.join("store");
    let (mut broker, port) = start_broker(&dir, &broker_props(&store, ""), None);
    let mut c = Client::connect(port);
    let escape = format!("../../ferromq-names-{}", std::process::id());
    let refused = [
        "a.b".to_string(),
        "a/b".to_string(),
        escape.clone(),
        "x".repeat(128),
        "with space".to_string(),
        "TBW102".to_string(),
        // The cluster name (broker_props: TestCluster).
        "TestCluster".to_string(),
    ];
    let create = |c: &mut Client, topic: &str| {
        c.invoke(
            RemotingCommand::request(request::UPDATE_AND_CREATE_TOPIC)
                .with_ext("topic", topic)
                .with_ext("readQueueNums", 2)
                .with_ext("writeQueueNums", 2)
                .with_ext("perm", 6),
        )
    };
    for name in &refused {
        let by_admin = create(&mut c, name);
        let by_send = c.send_v2(name, 0, b"x", None, None);
        for (how, r) in [("UPDATE_AND_CREATE_TOPIC", &by_admin), ("send", &by_send)] {
            assert_eq!(r.code, SYSTEM_ERROR, "{how} {name}: {:?}", r.remark);
            let remark = r.remark.clone().unwrap_or_default();
            assert!(remark.contains("topic"), "{how} {name}: {remark}");
        }
    }
    // Valid names: both create.
    assert_eq!(create(&mut c, "AdminMade").code, 0);
    let r = c.send_v2("SendMade", 1, b"x", None, None);
    assert_eq!(r.code, 0, "{:?}", r.remark);
    let r = c.send_v2("%RETRY%SomeGroup", 0, b"x", None, None);
    assert_eq!(r.code, 0, "{:?}", r.remark);

    let live = broker_topics(&mut c);
    for name in &refused {
        assert!(!live.contains(name), "{name} was created");
    }
    for name in ["AdminMade", "SendMade", "%RETRY%SomeGroup"] {
        assert!(live.contains(&name.to_string()), "{name} missing: {live:?}");
    }
    drop(c);
    assert!(broker.terminate(Duration::from_secs(30)).success());
    let saved = topic_names(&read_config(&store, "topics.json"));
    for name in &refused {
        assert!(!saved.contains(name), "{name} was saved");
    }
    assert!(saved.contains(&"SendMade".to_string()));
    // Nothing was made outside the store for the path-like name.
    let leaf = format!("ferromq-names-{}", std::process::id());
    for d in [
        dir.join(&leaf),
        store.join(&leaf),
        dir.parent().unwrap().join(&leaf),
    ] {
        assert!(!d.exists(), "{} was created", d.display());
    }
}

#[test]
fn config_changes_are_written_within_the_interval_and_survive_sigkill() {
    let (_d, dir) = temp_dir();
    let store = dir.join("store");
    let props = broker_props(&store, "");
    let (broker, port) = start_broker(&dir, &props, None);
    let mut c = Client::connect(port);

    // Without a shutdown, each table is written soon after its change.
    let r = c.invoke(
        RemotingCommand::request(request::UPDATE_AND_CREATE_TOPIC)
            .with_ext("topic", "IntervalT")
            .with_ext("readQueueNums", 2)
            .with_ext("writeQueueNums", 2)
            .with_ext("perm", 6),
    );
    assert_eq!(r.code, 0, "{:?}", r.remark);
    let t = wait_config(&store, "topics.json", Duration::from_secs(5), |t| {
        t.contains("\"IntervalT\"")
    })
    .expect("topics.json written without a shutdown");
    println!("topics.json had the new topic after {t:?}");
    let r = c.invoke(heartbeat_req(
        "int-client",
        &["IntervalG".into()],
        &[],
        "IntervalT",
    ));
    assert_eq!(r.code, 0, "{:?}", r.remark);
    let t = wait_config(
        &store,
        "subscriptionGroup.json",
        Duration::from_secs(5),
        |t| t.contains("\"IntervalG\""),
    )
    .expect("subscriptionGroup.json written without a shutdown");
    println!("subscriptionGroup.json had the new group after {t:?}");
    let r = c.invoke(
        Client::offset_req(request::UPDATE_CONSUMER_OFFSET, "IntervalT", 1)
            .with_ext("consumerGroup", "IntervalG")
            .with_ext("commitOffset", 7),
    );
    assert_eq!(r.code, 0, "{:?}", r.remark);
    // Offsets follow RocketMQ's flushConsumerOffsetInterval (1000 ms here).
    let t = wait_config(
        &store,
        "consumerOffset.json",
        Duration::from_secs(10),
        |t| t.contains("IntervalT@IntervalG"),
    )
    .expect("consumerOffset.json written without a shutdown");
    println!("consumerOffset.json had the new offset after {t:?}");

    // A topic auto-created by a send, then SIGKILL at once (before its table
    // write is due: a change was just written, so the next waits an interval):
    // the topic is learned again from its message at the next start.
    assert_eq!(c.send_v2("WarmUpT", 0, b"w", None, None).code, 0);
    let r = c.send_v2("KilledT", 2, b"k", None, None);
    assert_eq!(r.code, 0, "{:?}", r.remark);
    drop(c);
    drop(broker); // SIGKILL
    let in_file = topic_names(&read_config(&store, "topics.json")).contains(&"KilledT".to_string());
    println!("after SIGKILL, topics.json held KilledT: {in_file}");
    let (mut broker, port) = start_broker(&dir, &props, None);
    let mut c = Client::connect(port);
    assert!(broker_topics(&mut c).contains(&"KilledT".to_string()));
    let r = c.pull("PullG", "KilledT", 2, 0, 8);
    assert_eq!(r.code, 0, "{:?}", r.remark);
    assert_eq!(common::records(&r.body)[0].body, b"k");
    drop(c);
    assert!(broker.terminate(Duration::from_secs(30)).success());
    assert!(topic_names(&read_config(&store, "topics.json")).contains(&"KilledT".to_string()));
}
