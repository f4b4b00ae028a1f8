//! Out of descriptors is a passing condition, not a fence. A broker whose
//! open-file limit is 1,024 (soft and hard, so it cannot raise it) holds
//! 1,100 idle connections; sends to new queues and new topics then succeed
//! or get a status a producer retries, while dispatch cannot create their
//! consume-queue files. Once the idle connections close, every send
//! succeeds and every acknowledged message is pulled from its queue, with
//! no restart. (That test sets `serverMaxConnections` above the limit; by
//! default the cap derives from the limit and keeps descriptors for the store,
//! so the same connections never starve it.) And a broker whose soft limit is
//! below its hard limit raises it at start.
//!
//! `FERROMQ_TEST_BROKER_BIN=/path/to/ferromq-broker` runs it against another build.

mod common;

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::limited::{
    nofile_of, runtime_info_via, start_broker_with_nofile, start_namesrv_with_nofile,
};
use common::{broker_props, records, temp_dir, Client, Proc};

const IDLE: usize = 1_100;
/// Queues of an auto-created topic (the request's default of 4).
const QUEUES: i32 = 4;
const NEW_TOPICS: usize = 4;

/// Codes a RocketMQ producer retries on another attempt (SYSTEM_ERROR,
/// SYSTEM_BUSY, SERVICE_NOT_AVAILABLE), besides SUCCESS.
const SUCCESS: i32 = 0;
const RETRYABLE: [i32; 3] = [1, 2, 14];

/// Pull every message of `topic`/`queue` (bounded in time), as bodies.
fn pull_all(c: &mut Client, topic: &str, queue: i32, want: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut got = Vec::new();
        let mut offset = 0u64;
        for _ in 0..100 {
            let r = c.pull("fd-group", topic, queue, offset, 32);
            if r.code != SUCCESS {
                break;
            }
            let recs = records(&r.body);
            if recs.is_empty() {
                break;
            }
            for m in &recs {
                got.push(String::from_utf8(m.body.clone()).unwrap());
            }
            offset += recs.len() as u64;
        }
        if got.len() >= want || Instant::now() >= deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A broker limited to 1,024 descriptors (its properties plus `extra`), with
/// topic `FdTopic` holding one message sent by the returned client; `None`,
/// after saying why, when this process (it holds the idle connections) or the
/// broker cannot get the descriptors.
fn broker_at_1024_descriptors(extra: &str) -> Option<(tempfile::TempDir, Proc, u16, Client)> {
    let mine = ferromq_engine::sys::raise_nofile_limit().unwrap();
    if mine.soft_now < (IDLE as u64) + 200 {
        eprintln!(
            "SKIPPED: this process may open only {} files",
            mine.soft_now
        );
        return None;
    }
    let (t, dir) = temp_dir();
    let props = broker_props(&dir.join("store"), extra);
    let (broker, port) = start_broker_with_nofile(&dir, &props, 1024, 1024)?;
    assert_eq!(nofile_of(broker.child.id()), (1024, 1024));
    // The topic exists with one used queue; the client connects first.
    let mut c = Client::connect(port);
    let r = c.send_v2("FdTopic", 0, b"first", None, None);
    assert_eq!(r.code, SUCCESS, "{:?}", r.remark);
    Some((t, broker, port, c))
}

#[test]
fn idle_connections_exhausting_descriptors_never_fence_the_store() {
    // A connection cap above the descriptor limit, so the connections really
    // take every descriptor.
    let Some((_t, _broker, port, mut c)) =
        broker_at_1024_descriptors("serverMaxConnections=100000\n")
    else {
        return;
    };

    // 1,100 idle connections: the broker accepts until it has no descriptor
    // left (the rest wait in the listen backlog).
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut idle = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        if let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_secs(3)) {
            idle.push(s);
        }
    }
    assert!(idle.len() >= 1_050, "only {} idle connections", idle.len());
    std::thread::sleep(Duration::from_millis(500));

    // Sends to new queues of the topic, and to new topics.
    let mut acked: BTreeMap<(String, i32), Vec<String>> = BTreeMap::new();
    acked.insert(("FdTopic".into(), 0), vec!["first".into()]);
    let mut codes = Vec::new();
    let mut targets: Vec<(String, i32)> = (1..QUEUES).map(|q| ("FdTopic".into(), q)).collect();
    targets.extend((0..NEW_TOPICS).map(|t| (format!("FdNew{t}"), 0)));
    for (topic, q) in &targets {
        let body = format!("{topic}-{q}-during");
        let r = c.send_v2(topic, *q, body.as_bytes(), None, None);
        codes.push((r.code, r.remark.clone()));
        assert!(
            r.code == SUCCESS || RETRYABLE.contains(&r.code),
            "send to {topic}/{q} while out of descriptors: code {} {:?}",
            r.code,
            r.remark
        );
        if r.code == SUCCESS {
            acked.entry((topic.clone(), *q)).or_default().push(body);
        }
    }
    // The broker really ran out: dispatch reports the error and retries.
    let deadline = Instant::now() + Duration::from_secs(10);
    let info = loop {
        let info = runtime_info_via(&mut c);
        let retries: u64 = info
            .get("dispatchRetries")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if retries > 0 || Instant::now() >= deadline {
            break info;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    eprintln!(
        "while out of descriptors: send codes {codes:?}; dispatchRetries={:?} dispatchError={:?} writable={:?}",
        info.get("dispatchRetries"),
        info.get("dispatchError"),
        info.get("writable")
    );
    assert_eq!(
        info.get("writable").map(String::as_str),
        Some("true"),
        "{info:?}"
    );
    assert!(
        info.get("dispatchRetries")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            > 0,
        "dispatch never met the descriptor limit: {info:?}"
    );

    // Descriptors come back: every send succeeds, no restart.
    drop(idle);
    let deadline = Instant::now() + Duration::from_secs(20);
    for (topic, q) in &targets {
        let body = format!("{topic}-{q}-after");
        let r = loop {
            let r = c.send_v2(topic, *q, body.as_bytes(), None, None);
            // The broker closes the idle connections as it reads their EOFs.
            if r.code == SUCCESS || Instant::now() >= deadline {
                break r;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(
            r.code, SUCCESS,
            "send to {topic}/{q} after descriptors came back: {:?}",
            r.remark
        );
        acked.entry((topic.clone(), *q)).or_default().push(body);
    }
    // Every acknowledged message is pulled from its queue.
    for ((topic, q), want) in &acked {
        let got = pull_all(&mut c, topic, *q, want.len());
        assert_eq!(&got, want, "{topic}/{q}");
    }
    let info = runtime_info_via(&mut c);
    assert_eq!(
        info.get("writable").map(String::as_str),
        Some("true"),
        "{info:?}"
    );
    assert!(!info.contains_key("dispatchError"), "{info:?}");
}

#[test]
fn broker_and_name_server_raise_their_soft_descriptor_limit_to_the_hard_one() {
    let (_t, dir) = temp_dir();
    let props = broker_props(&dir.join("store"), "");
    let Some((broker, _port)) = start_broker_with_nofile(&dir, &props, 1024, 4096) else {
        return;
    };
    assert_eq!(nofile_of(broker.child.id()), (4096, 4096));
    let Some((namesrv, _port)) = start_namesrv_with_nofile(&dir, 1024, 4096) else {
        return;
    };
    assert_eq!(nofile_of(namesrv.child.id()), (4096, 4096));
}

#[test]
fn the_default_connection_cap_keeps_descriptors_for_the_store() {
    let Some((_t, _broker, port, mut c)) = broker_at_1024_descriptors("") else {
        return;
    };
    // As many connections as before: those beyond the default cap (half of
    // 1,024) are closed at once.
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let idle: Vec<TcpStream> = (0..IDLE)
        .filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(3)).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    // Every send to a new queue or topic succeeds and is dispatched.
    let mut targets: Vec<(String, i32)> = (1..QUEUES).map(|q| ("FdTopic".into(), q)).collect();
    targets.extend((0..NEW_TOPICS).map(|t| (format!("FdNew{t}"), 0)));
    for (topic, q) in &targets {
        let body = format!("{topic}-{q}");
        let r = c.send_v2(topic, *q, body.as_bytes(), None, None);
        assert_eq!(r.code, SUCCESS, "send to {topic}/{q}: {:?}", r.remark);
        let got = pull_all(&mut c, topic, *q, 1);
        assert_eq!(got, vec![body], "{topic}/{q}");
    }
    let info = runtime_info_via(&mut c);
    eprintln!(
        "with {} connections attempted: dispatchRetries={:?} dispatchError={:?}",
        idle.len(),
        info.get("dispatchRetries"),
        info.get("dispatchError")
    );
    assert_eq!(
        info.get("dispatchRetries")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0),
        0,
        "{info:?}"
    );
    assert!(!info.contains_key("dispatchError"), "{info:?}");
    drop(idle);
}
