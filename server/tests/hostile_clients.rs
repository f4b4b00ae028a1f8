//! Hostile and unlucky clients against the real binaries: a client that pipelines
//! tens of thousands of requests and never reads a reply must not grow the server
//! without bound nor slow other clients down; idle connections close after
//! `serverChannelMaxIdleTimeSeconds` while busy ones stay; `serverMaxConnections`
//! caps connections with one log line.
//!
//! Run against another build (to see the failure before the fix) with
//! `FERROMQ_TEST_BROKER_BIN=/path/ferromq-broker FERROMQ_TEST_NAMESRV_BIN=/path/ferromq-namesrv`.

mod common;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::hostile::*;
use common::*;
use ferromq_server::remoting::codec::encode;
use ferromq_server::remoting::{request, response, RemotingCommand};

/// RSS bound for a server under one pipelining client. The bound the server
/// itself keeps per connection is `serverMaxQueuedReplyBytes` (default 4 MiB) plus
/// `serverMaxRequestsPerConnection` (1024) requests and their answers (here at
/// most ~35 KB for a pull, ~100 KB for a topic list); the rest is the process's
/// own baseline (a debug build, the store's mapped files).
const RSS_LIMIT: u64 = 300 * 1024 * 1024;

/// p99 bound for a well-behaved client's requests meanwhile (debug build, a
/// loaded 2-core box).
const P99_LIMIT: Duration = Duration::from_millis(500);

const TOPIC: &str = "HostileTopic";
const GROUP: &str = "hostile-group";

fn log_count(log: &std::path::Path, needle: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(needle))
        .count()
}

#[test]
fn pipelined_pulls_that_are_never_read_keep_the_broker_bounded() {
    let (_d, dir) = temp_dir();
    let log = dir.join("broker.log");
    let (broker, port) =
        start_broker_logged(&dir.join("b"), &broker_props(&dir.join("store"), ""), &log);
    let pid = broker.child.id();

    // 64 messages of 1 KiB on queue 0: a plain pull from 0 answers ~33 KB.
    let mut c = Client::connect(port);
    let body = vec![b'x'; 1024];
    for _ in 0..64 {
        let r = c.send_v2(TOPIC, 0, &body, None, None);
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    }
    let base = rss_bytes(pid);

    // 50 000 pulls: even ones long-poll at the end of queue 0 (they park for
    // 30 s), odd ones read 32 messages from its start.
    let mut frames = Vec::with_capacity(50_000 * 400);
    for i in 0..50_000i32 {
        let mut req = if i % 2 == 0 {
            Client::pull_req(GROUP, TOPIC, 0, 64, 32, 0x2 | 0x4, 30_000, "*")
        } else {
            Client::pull_req(GROUP, TOPIC, 0, 0, 32, 0x4, 0, "*")
        };
        req.opaque = i + 1;
        frames.extend_from_slice(&encode(&req).unwrap());
    }
    let total = frames.len() as u64;
    let watch = RssWatch::start(pid, RSS_LIMIT);
    let stop = Arc::new(AtomicBool::new(false));
    let hostile = Pipeliner::start(port, frames, Duration::from_secs(20), stop.clone());

    // Meanwhile a well-behaved client sends to and pulls from queue 1.
    let mut lat = Vec::new();
    let t0 = Instant::now();
    let mut i = 0u64;
    while t0.elapsed() < Duration::from_secs(6) && i < 5_000 && !watch.is_over() {
        let s = Instant::now();
        let r = c.send_v2(TOPIC, 1, b"good", None, None);
        lat.push(s.elapsed());
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
        // A long poll, so a message not yet in the consume queue is waited for.
        let s = Instant::now();
        let r = c.invoke(Client::pull_req(
            GROUP,
            TOPIC,
            1,
            i,
            32,
            0x2 | 0x4,
            5_000,
            "*",
        ));
        lat.push(s.elapsed());
        assert_eq!(r.code, response::SUCCESS, "pull at {i}: {:?}", r.remark);
        i += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
    let during = watch.peak();
    let sent = hostile.sent.load(std::sync::atomic::Ordering::Acquire);
    let p99 = percentile(&mut lat, 99.0);
    eprintln!(
        "broker: baseline RSS {:.1} MB, peak {:.1} MB; pipeliner got {:.1} of {:.1} MB of requests \
         into the socket; good client {} ops, p99 {:?}",
        mb(base),
        mb(during),
        mb(sent),
        mb(total),
        lat.len(),
        p99
    );
    assert!(
        !watch.is_over() && during < RSS_LIMIT,
        "broker RSS reached {:.1} MB (limit {:.1} MB)",
        mb(during),
        mb(RSS_LIMIT)
    );
    assert!(
        p99 < P99_LIMIT,
        "good client's p99 {p99:?} over {P99_LIMIT:?}"
    );

    // The pipelining client goes away: memory stays bounded, service goes on.
    hostile.disconnect();
    std::thread::sleep(Duration::from_secs(2));
    let after = rss_bytes(pid);
    eprintln!("broker: RSS {:.1} MB after the pipeliner left", mb(after));
    assert!(after < RSS_LIMIT, "RSS {:.1} MB after", mb(after));
    let r = c.send_v2(TOPIC, 1, b"after", None, None);
    assert_eq!(r.code, response::SUCCESS);
    let r = c.pull(GROUP, TOPIC, 1, i, 32);
    assert_eq!(r.code, response::SUCCESS);
    assert!(records(&r.body).iter().any(|m| m.body == b"after"));
    drop(watch);
}

/// REGISTER_BROKER with `n` topics of long names.
fn register_many_topics(n: usize) -> RemotingCommand {
    let mut table = serde_json::Map::new();
    for i in 0..n {
        let name = format!("HostileTopic-{i:05}-{}", "p".repeat(80));
        table.insert(
            name.clone(),
            serde_json::json!({"topicName": name, "readQueueNums": 4, "writeQueueNums": 4, "perm": 6}),
        );
    }
    let body = serde_json::json!({
        "topicConfigSerializeWrapper": {
            "topicConfigTable": table,
            "dataVersion": {"counter": 1, "timestamp": 1}
        }
    })
    .to_string();
    RemotingCommand::request(request::REGISTER_BROKER)
        .with_ext("brokerName", "broker-h")
        .with_ext("brokerAddr", "127.0.0.1:1")
        .with_ext("clusterName", "HostileCluster")
        .with_ext("haServerAddr", "127.0.0.1:2")
        .with_ext("brokerId", 0)
        .with_ext("compressed", false)
        .with_body(body.into_bytes())
}

#[test]
fn pipelined_topic_lists_that_are_never_read_keep_the_name_server_bounded() {
    let (_d, dir) = temp_dir();
    let log = dir.join("namesrv.log");
    let (ns, port) = start_namesrv_with(&dir, "", &log);
    let pid = ns.child.id();
    // Registered on a connection that stays open (its close drops the broker).
    let mut reg = Client::connect(port);
    let r = reg.invoke(register_many_topics(1000));
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let mut c = Client::connect(port);
    let list = c.invoke(RemotingCommand::request(
        request::GET_ALL_TOPIC_LIST_FROM_NAMESERVER,
    ));
    assert_eq!(list.code, response::SUCCESS);
    let base = rss_bytes(pid);

    let mut frames = Vec::new();
    for i in 0..20_000i32 {
        let mut req = RemotingCommand::request(request::GET_ALL_TOPIC_LIST_FROM_NAMESERVER);
        req.opaque = i + 1;
        frames.extend_from_slice(&encode(&req).unwrap());
    }
    let total = frames.len() as u64;
    let watch = RssWatch::start(pid, RSS_LIMIT);
    let hostile = Pipeliner::start(
        port,
        frames,
        Duration::from_secs(20),
        Arc::new(AtomicBool::new(false)),
    );
    let route = || {
        RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC)
            .with_ext("topic", "HostileTopic-00007-".to_string() + &"p".repeat(80))
    };
    let mut lat = Vec::new();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(5) && lat.len() < 5_000 && !watch.is_over() {
        let s = Instant::now();
        let r = c.invoke(route());
        lat.push(s.elapsed());
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
        std::thread::sleep(Duration::from_millis(5));
    }
    let during = watch.peak();
    let p99 = percentile(&mut lat, 99.0);
    eprintln!(
        "namesrv: topic list {} KB; baseline RSS {:.1} MB, peak {:.1} MB; pipeliner got {:.2} of \
         {:.2} MB of requests into the socket; good client {} routes, p99 {:?}",
        list.body.len() / 1024,
        mb(base),
        mb(during),
        mb(hostile.sent.load(std::sync::atomic::Ordering::Acquire)),
        mb(total),
        lat.len(),
        p99
    );
    assert!(
        !watch.is_over() && during < RSS_LIMIT,
        "name server RSS reached {:.1} MB (limit {:.1} MB)",
        mb(during),
        mb(RSS_LIMIT)
    );
    assert!(
        p99 < P99_LIMIT,
        "good client's p99 {p99:?} over {P99_LIMIT:?}"
    );
    hostile.disconnect();
    std::thread::sleep(Duration::from_secs(1));
    let after = rss_bytes(pid);
    assert!(after < RSS_LIMIT, "RSS {:.1} MB after", mb(after));
    let r = c.invoke(route());
    assert_eq!(r.code, response::SUCCESS);
    drop(reg);
}

fn heartbeat(client: &str) -> RemotingCommand {
    let body = format!(
        r#"{{"clientID":"{client}","producerDataSet":[],"consumerDataSet":[{{"groupName":"{GROUP}","consumeType":"CONSUME_PASSIVELY","messageModel":"CLUSTERING","consumeFromWhere":"CONSUME_FROM_LAST_OFFSET","subscriptionDataSet":[{{"topic":"{TOPIC}","subString":"*"}}],"unitMode":false}}]}}"#
    );
    RemotingCommand::request(request::HEART_BEAT).with_body(body.into_bytes())
}

#[test]
fn idle_connections_close_and_busy_ones_stay() {
    let (_d, dir) = temp_dir();
    let log = dir.join("broker.log");
    let (_broker, port) = start_broker_logged(
        &dir.join("b"),
        &broker_props(&dir.join("store"), "serverChannelMaxIdleTimeSeconds=2\n"),
        &log,
    );
    let mut c = Client::connect(port);
    let r = c.send_v2(TOPIC, 0, b"m", None, None);
    assert_eq!(r.code, response::SUCCESS);
    // The message is in the consume queue, so a pull at offset 1 parks.
    wait_for(Duration::from_secs(5), || {
        (total_max_offset(port, TOPIC, 1) >= 1).then_some(())
    })
    .expect("message dispatched");

    // Active: a heartbeat every second for 5 s.
    let active = std::thread::spawn(move || {
        let mut a = Client::connect(port);
        for i in 0..5 {
            let r = a.invoke(heartbeat("active-client"));
            assert_eq!(r.code, response::SUCCESS, "heartbeat {i}");
            std::thread::sleep(Duration::from_secs(1));
        }
        let r = a.invoke(heartbeat("active-client"));
        assert_eq!(r.code, response::SUCCESS, "last heartbeat");
    });
    // Parked: a long poll held 4 s (longer than the idle time) is not idle.
    let parked = std::thread::spawn(move || {
        let mut p = Client::connect(port);
        let s = Instant::now();
        let r = p.invoke(Client::pull_req(
            GROUP,
            TOPIC,
            0,
            1,
            32,
            0x2 | 0x4,
            4_000,
            "*",
        ));
        assert_eq!(r.code, response::PULL_NOT_FOUND);
        assert!(s.elapsed() >= Duration::from_millis(3_500), "held");
        // Right after the hold the connection still works.
        let r = p.invoke(heartbeat("parked-client"));
        assert_eq!(r.code, response::SUCCESS);
    });
    // Idle: connects and says nothing.
    let mut idle = Client::connect(port);
    let s = Instant::now();
    assert!(
        idle.closed_within(Duration::from_secs(8)),
        "an idle connection stays open"
    );
    let took = s.elapsed();
    eprintln!("idle connection closed after {took:?}");
    assert!(
        took >= Duration::from_millis(1_900) && took < Duration::from_secs(5),
        "closed after {took:?} (idle time 2 s)"
    );
    active.join().expect("active client");
    parked.join().expect("parked client");
}

#[test]
fn name_server_closes_idle_connections() {
    let (_d, dir) = temp_dir();
    let (_ns, port) = start_namesrv_with(
        &dir,
        "serverChannelMaxIdleTimeSeconds=2\n",
        &dir.join("ns.log"),
    );
    let mut idle = Client::connect(port);
    let s = Instant::now();
    assert!(idle.closed_within(Duration::from_secs(8)));
    let took = s.elapsed();
    assert!(
        took >= Duration::from_millis(1_900) && took < Duration::from_secs(5),
        "closed after {took:?}"
    );
}

const CAP_LINE: &str = "connection limit (serverMaxConnections) reached";

#[test]
fn connection_cap_closes_extra_connections_with_one_log_line() {
    let (_d, dir) = temp_dir();
    let log = dir.join("broker.log");
    let (_broker, port) = start_broker_logged(
        &dir.join("b"),
        &broker_props(&dir.join("store"), "serverMaxConnections=3\n"),
        &log,
    );
    let offset_req = || Client::offset_req(request::GET_MAX_OFFSET, TOPIC, 0);
    let mut open: Vec<Client> = (0..3).map(|_| Client::connect(port)).collect();
    for c in &mut open {
        assert_eq!(c.invoke(offset_req()).code, response::SUCCESS);
    }
    // Beyond the cap: accepted by the kernel, closed at once by the broker.
    for _ in 0..2 {
        let mut extra = Client::connect(port);
        let s = Instant::now();
        assert!(extra.closed_within(Duration::from_secs(3)), "cap+1 served");
        assert!(s.elapsed() < Duration::from_secs(2));
    }
    // One leaves: a new connection is served (once the broker saw the close).
    drop(open.remove(0));
    let served = wait_for(Duration::from_secs(5), || {
        let mut c = Client::connect(port);
        c.stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        c.try_invoke(offset_req())
            .ok()
            .filter(|r| r.code == response::SUCCESS)
            .map(|_| c)
    });
    assert!(served.is_some(), "no connection served after one closed");
    // The old ones still work.
    for c in &mut open {
        assert_eq!(c.invoke(offset_req()).code, response::SUCCESS);
    }
    let lines = log_count(&log, CAP_LINE);
    assert_eq!(
        lines,
        1,
        "cap log lines:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

#[test]
fn bad_frame_warnings_are_limited_per_peer() {
    let (_d, dir) = temp_dir();
    let log = dir.join("broker.log");
    let (_broker, port) =
        start_broker_logged(&dir.join("b"), &broker_props(&dir.join("store"), ""), &log);
    for _ in 0..5 {
        let mut c = Client::connect(port);
        // A negative frame length: the connection is closed.
        c.write_raw(&(-1i32).to_be_bytes());
        c.write_raw(&[0u8; 8]);
        assert!(c.closed_within(Duration::from_secs(5)));
    }
    // The broker still serves this peer.
    let mut c = Client::connect(port);
    let r = c.invoke(Client::offset_req(request::GET_MAX_OFFSET, TOPIC, 0));
    assert_eq!(r.code, response::SUCCESS);
    let lines = log_count(&log, "closing connection after a bad frame");
    assert_eq!(
        lines,
        1,
        "bad-frame lines:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}
