//! A slave copies its master's topics, consumer offsets, subscription groups and
//! delay offsets (RocketMQ's SlaveSynchronize) into its own `config/` files, from
//! the master the name server reports; the master answers the four requests, and
//! both sides show the pair in GET_BROKER_RUNTIME_INFO.

mod common;

use std::time::Duration;

use common::{ha_props, runtime_info, start_broker, start_namesrv, temp_dir, wait_for, Client};
use ferromq_server::remoting::codes::{request, response};
use ferromq_server::remoting::RemotingCommand;

#[test]
fn slave_copies_topic_offset_group_and_delay_configs() {
    let (_d, dir) = temp_dir();
    let (_ns, ns_port) = start_namesrv(&dir);
    let mdir = dir.join("master");
    let sdir = dir.join("slave");
    std::fs::create_dir_all(&mdir).unwrap();
    std::fs::create_dir_all(&sdir).unwrap();
    let (_master, m_port) = start_broker(
        &mdir,
        &ha_props(&mdir.join("store"), "broker-s", 0, "ASYNC_MASTER", ""),
        Some(ns_port),
    );
    let mut mc = Client::connect(m_port);
    // A topic with its own queue counts, an offset, a group, a delayed message.
    let r = mc.invoke(
        RemotingCommand::request(request::UPDATE_AND_CREATE_TOPIC)
            .with_ext("topic", "SyncTopic")
            .with_ext("readQueueNums", 3)
            .with_ext("writeQueueNums", 3)
            .with_ext("perm", 6),
    );
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let r = mc.send_v2_props("SyncTopic", 0, b"later", &[("DELAY", "1")]);
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let r = mc.pull("SyncGroup", "SyncTopic", 1, 0, 1);
    assert_ne!(r.code, response::SUBSCRIPTION_GROUP_NOT_EXIST);
    let r = mc.invoke(
        Client::offset_req(request::UPDATE_CONSUMER_OFFSET, "SyncTopic", 2)
            .with_ext("consumerGroup", "SyncGroup")
            .with_ext("commitOffset", 42),
    );
    assert_eq!(r.code, response::SUCCESS);
    // The master answers the slave's four requests.
    for code in [
        request::GET_ALL_TOPIC_CONFIG,
        request::GET_ALL_CONSUMER_OFFSET,
        request::GET_ALL_DELAY_OFFSET,
        request::GET_ALL_SUBSCRIPTIONGROUP_CONFIG,
    ] {
        let r = mc.invoke(RemotingCommand::request(code));
        assert_eq!(r.code, response::SUCCESS, "code {code}");
        serde_json::from_slice::<serde_json::Value>(
            &ferromq_server::remoting::json::quote_integer_keys(&String::from_utf8_lossy(&r.body))
                .into_bytes(),
        )
        .unwrap_or_else(|e| panic!("code {code}: body is not JSON: {e}"));
    }
    // The delayed message is delivered (level 1 = 1 s), so the master has progress.
    wait_for(Duration::from_secs(15), || {
        let r = mc.invoke(RemotingCommand::request(request::GET_ALL_DELAY_OFFSET));
        String::from_utf8_lossy(&r.body)
            .contains("1:")
            .then_some(())
    })
    .expect("the master records delay-level progress");

    let (_slave, s_port) = start_broker(
        &sdir,
        &ha_props(
            &sdir.join("store"),
            "broker-s",
            1,
            "SLAVE",
            "slaveSyncInterval=500\n",
        ),
        Some(ns_port),
    );
    let cfg = sdir.join("store").join("config");
    let read = |f: &str| std::fs::read_to_string(cfg.join(f)).unwrap_or_default();
    wait_for(Duration::from_secs(20), || {
        let topics = read("topics.json");
        let offsets = read("consumerOffset.json");
        let groups = read("subscriptionGroup.json");
        let delay = read("delayOffset.json");
        (topics.contains("SyncTopic")
            && offsets.contains("SyncTopic@SyncGroup")
            && offsets.contains("2:42")
            && groups.contains("SyncGroup")
            && delay.contains("offsetTable"))
        .then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "slave config/ after the wait: topics {} offsets {} groups {} delay {}",
            read("topics.json"),
            read("consumerOffset.json"),
            read("subscriptionGroup.json"),
            read("delayOffset.json")
        )
    });
    // The copied topic keeps the master's queue counts.
    let topics: serde_json::Value = serde_json::from_str(&read("topics.json")).unwrap();
    assert_eq!(
        topics["topicConfigTable"]["SyncTopic"]["readQueueNums"], 3,
        "{topics}"
    );
    // The slave answers offset queries with the master's offsets.
    let mut sc = Client::connect(s_port);
    let r = sc.invoke(
        Client::offset_req(request::QUERY_CONSUMER_OFFSET, "SyncTopic", 2)
            .with_ext("consumerGroup", "SyncGroup"),
    );
    assert_eq!(r.ext_fields.get_i64("offset").unwrap(), 42);
    // Later changes on the master follow within a sync interval.
    let r = mc.invoke(
        Client::offset_req(request::UPDATE_CONSUMER_OFFSET, "SyncTopic", 2)
            .with_ext("consumerGroup", "SyncGroup")
            .with_ext("commitOffset", 43),
    );
    assert_eq!(r.code, response::SUCCESS);
    wait_for(Duration::from_secs(15), || {
        read("consumerOffset.json").contains("2:43").then_some(())
    })
    .expect("the slave follows a later offset commit");

    // Runtime info: the master lists its slave with lag, the slave its master.
    let info = wait_for(Duration::from_secs(10), || {
        let i = runtime_info(m_port);
        (i.get("haSlaveCount").map(String::as_str) == Some("1")).then_some(i)
    })
    .expect("the master reports one slave");
    for k in [
        "haSlave0Addr",
        "haSlave0AckedOffset",
        "haSlave0LagBytes",
        "haSlave0LagMs",
    ] {
        assert!(info.contains_key(k), "{k} missing: {info:?}");
    }
    let sinfo = runtime_info(s_port);
    assert_eq!(
        sinfo.get("masterAddr").map(String::as_str),
        Some(format!("127.0.0.1:{m_port}").as_str()),
        "{sinfo:?}"
    );
    assert_eq!(
        sinfo.get("haMasterConnected").map(String::as_str),
        Some("true")
    );
    assert_ne!(
        sinfo.get("slaveSyncLastOkTimestamp").map(String::as_str),
        Some("0")
    );
    // ferromq-admin haStatus shows the same, per broker.
    let admin = |b: u16| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_ferromq-admin"))
            .arg("-n")
            .arg(format!("127.0.0.1:{ns_port}"))
            .args(["haStatus", "-b", &format!("127.0.0.1:{b}")])
            .output()
            .expect("run ferromq-admin");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    let out = admin(m_port);
    assert!(out.contains("#Lag Bytes"), "{out}");
    assert!(
        out.contains(&format!("slave {}", info["haSlave0Addr"])),
        "{out}"
    );
    let out = admin(s_port);
    assert!(
        out.contains(&format!("following 127.0.0.1:{m_port}")),
        "{out}"
    );
}
