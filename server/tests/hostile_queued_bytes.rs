//! Queued bytes a server holds for peers that do not read, beyond one
//! connection's own answers: the broker's own oneway requests (check-backs) to
//! a producer that heartbeats but never reads stay within the connection's
//! bound (the rest are dropped and counted); many connections each below their
//! bound stay within the server-wide `serverMaxQueuedReplyBytesTotal` (readers
//! pause, a WARN says so, and a good client is served once the others go); a
//! huge `serverChannelMaxIdleTimeSeconds` is clamped instead of panicking.
//!
//! Memory is measured as the broker's anonymous RSS (`RssAnon`): the mapped
//! commitlog's pages count in `VmRSS` and grow with every message stored.
//!
//! Run against another build (to see the failure before the fix) with
//! `FERROMQ_TEST_BROKER_BIN=/path/ferromq-broker FERROMQ_TEST_NAMESRV_BIN=/path/ferromq-namesrv`.

mod common;
mod txn_common;

use std::io::Write;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::hostile::*;
use common::*;
use ferromq_server::remoting::codec::encode;
use ferromq_server::remoting::{request, response, RemotingCommand};
use txn_common::*;

/// Anonymous resident memory of process `pid` in bytes (`RssAnon`).
fn rss_anon(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn log_count(log: &std::path::Path, needle: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(needle))
        .count()
}

const PGROUP: &str = "PG_NEVER_READS";
const TXN_TOPIC: &str = "TxnNeverReads";

/// Growth of the broker's anonymous memory allowed while check-backs pile up
/// for a producer that never reads: its connection's bound is
/// `serverMaxQueuedReplyBytes` (4 MiB) plus one check-back (512 KiB); the rest
/// is allocator slack of a debug build. Without the bound the check-backs of
/// this test (8 x 512 KiB every round of 100 ms) add some 40 MB a second.
const ONEWAY_GROWTH_LIMIT: u64 = 32 * 1024 * 1024;

#[test]
fn check_backs_to_a_producer_that_never_reads_stay_bounded() {
    let (_d, dir) = temp_dir();
    let log = dir.join("broker.log");
    let props = broker_props(
        &dir.join("store"),
        "transactionCheckInterval=100\ntransactionTimeOut=100\ntransactionCheckMax=100000\n\
         maxMessageSize=1048576\n",
    )
    .replace(
        "mapedFileSizeCommitLog=1048576",
        "mapedFileSizeCommitLog=67108864",
    );
    let (broker, port) = start_broker_logged(&dir.join("b"), &props, &log);
    let pid = broker.child.id();

    // The producer: a heartbeat and eight half messages of 512 KiB, answered;
    // from then on it sends a heartbeat every 500 ms and reads nothing.
    let mut p = Client::connect(port);
    heartbeat_producer(&mut p, "never-reads", PGROUP);
    let body = vec![b'h'; 512 * 1024];
    for i in 0..8 {
        send_half(&mut p, PGROUP, TXN_TOPIC, 0, &body, &format!("U{i}"));
    }
    let base = rss_anon(pid);
    let hb = encode(
        &RemotingCommand::request(request::HEART_BEAT).with_body(
            format!(
                r#"{{"clientID":"never-reads","producerDataSet":[{{"groupName":"{PGROUP}"}}],"consumerDataSet":[]}}"#
            )
            .into_bytes(),
        ),
    )
    .unwrap();
    p.stream
        .set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut peak = base;
    let t0 = Instant::now();
    let mut good = Client::connect(port);
    while t0.elapsed() < Duration::from_secs(8) {
        let _ = p.stream.write_all(&hb);
        for _ in 0..5 {
            std::thread::sleep(Duration::from_millis(100));
            peak = peak.max(rss_anon(pid));
        }
        if peak.saturating_sub(base) > ONEWAY_GROWTH_LIMIT {
            break;
        }
        // Meanwhile another client is served.
        let r = good.send_v2("GoodTopic", 0, b"good", None, None);
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    }
    let info = runtime_info(port);
    let dropped: u64 = info
        .get("onewayDroppedCount")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    eprintln!(
        "broker RssAnon {:.1} MB before the check-backs, peak {:.1} MB; {dropped} oneways dropped",
        mb(base),
        mb(peak)
    );
    assert!(
        peak.saturating_sub(base) <= ONEWAY_GROWTH_LIMIT,
        "broker anonymous memory grew {:.1} MB (limit {:.1} MB)",
        mb(peak - base),
        mb(ONEWAY_GROWTH_LIMIT)
    );
    assert!(dropped > 0, "no oneway dropped: {info:?}");
    drop(p);
    // Service goes on.
    let r = good.send_v2("GoodTopic", 0, b"after", None, None);
    assert_eq!(r.code, response::SUCCESS);
}

/// Connections that pipeline pulls and never read, each allowed 16 MiB of
/// queued answers, the server 16 MiB in total.
const PER_CONNECTION: u64 = 16 * 1024 * 1024;
const TOTAL: u64 = 16 * 1024 * 1024;
const HOSTILE: usize = 8;
/// Anonymous memory growth allowed: the total budget, plus the answers of the
/// requests in progress when it was reached (8 connections x 16 requests x
/// ~35 KB), plus allocator slack. Without the total the 8 connections would
/// hold 8 x 16 MiB.
const BUDGET_GROWTH_LIMIT: u64 = 64 * 1024 * 1024;
const BUDGET_LINE: &str = "queued reply bytes of all connections reached";

#[test]
fn many_connections_below_their_bound_stay_within_the_total_budget() {
    let (_d, dir) = temp_dir();
    let log = dir.join("broker.log");
    let props = broker_props(
        &dir.join("store"),
        &format!(
            "serverMaxQueuedReplyBytes={PER_CONNECTION}\nserverMaxQueuedReplyBytesTotal={TOTAL}\n\
             serverMaxRequestsPerConnection=16\n"
        ),
    );
    let (broker, port) = start_broker_logged(&dir.join("b"), &props, &log);
    let pid = broker.child.id();
    let mut c = Client::connect(port);
    // 64 messages of 1 KiB: a pull from 0 answers ~33 KB.
    let body = vec![b'x'; 1024];
    for _ in 0..64 {
        let r = c.send_v2("BudgetTopic", 0, &body, None, None);
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    }
    wait_for(Duration::from_secs(5), || {
        (total_max_offset(port, "BudgetTopic", 1) >= 64).then_some(())
    })
    .expect("messages dispatched");
    let base = rss_anon(pid);

    let mut frames = Vec::with_capacity(20_000 * 300);
    for i in 0..20_000i32 {
        let mut req = Client::pull_req("budget-group", "BudgetTopic", 0, 0, 32, 0x4, 0, "*");
        req.opaque = i + 1;
        frames.extend_from_slice(&encode(&req).unwrap());
    }
    let stop = Arc::new(AtomicBool::new(false));
    let hostile: Vec<Pipeliner> = (0..HOSTILE)
        .map(|_| Pipeliner::start(port, frames.clone(), Duration::from_secs(30), stop.clone()))
        .collect();
    // Until the budget is reached (the WARN) and a little longer.
    let reached = wait_for(Duration::from_secs(20), || {
        (log_count(&log, BUDGET_LINE) > 0).then_some(())
    });
    let mut peak = base;
    for _ in 0..40 {
        std::thread::sleep(Duration::from_millis(50));
        peak = peak.max(rss_anon(pid));
    }
    // A good client asks meanwhile: it waits for room, as everyone does.
    c.stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut req = Client::offset_req(request::GET_MAX_OFFSET, "BudgetTopic", 0);
    req.opaque = 777;
    c.write_raw(&encode(&req).unwrap());
    std::thread::sleep(Duration::from_millis(500));
    peak = peak.max(rss_anon(pid));
    eprintln!(
        "broker RssAnon {:.1} MB before, peak {:.1} MB with {HOSTILE} never-reading connections \
         (each may queue {:.0} MB, all together {:.0} MB); budget line: {}",
        mb(base),
        mb(peak),
        mb(PER_CONNECTION),
        mb(TOTAL),
        reached.is_some()
    );
    assert!(reached.is_some(), "no WARN about the spent budget");
    assert!(
        peak.saturating_sub(base) <= BUDGET_GROWTH_LIMIT,
        "broker anonymous memory grew {:.1} MB (limit {:.1} MB)",
        mb(peak - base),
        mb(BUDGET_GROWTH_LIMIT)
    );
    // The others go: the good client's request is read and answered.
    stop.store(true, std::sync::atomic::Ordering::Release);
    let t = Instant::now();
    for h in hostile {
        h.disconnect();
    }
    let r = c.read();
    eprintln!(
        "good client answered {:?} after the others left",
        t.elapsed()
    );
    assert_eq!((r.opaque, r.code), (777, response::SUCCESS));
    assert!(t.elapsed() < Duration::from_secs(15));
    std::thread::sleep(Duration::from_millis(500));
    let after = rss_anon(pid);
    assert!(
        after.saturating_sub(base) <= BUDGET_GROWTH_LIMIT,
        "RssAnon {:.1} MB after",
        mb(after)
    );
    // And new requests go on being served.
    let r = c.invoke(Client::offset_req(
        request::GET_MAX_OFFSET,
        "BudgetTopic",
        0,
    ));
    assert_eq!(r.code, response::SUCCESS);
}

#[test]
fn a_huge_idle_time_is_clamped_not_a_panic() {
    let (_d, dir) = temp_dir();
    let huge = format!("serverChannelMaxIdleTimeSeconds={}\n", i64::MAX);
    let log = dir.join("broker.log");
    let (_broker, port) = start_broker_logged(
        &dir.join("b"),
        &broker_props(&dir.join("store"), &huge),
        &log,
    );
    let mut c = Client::connect(port);
    c.stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let r = c
        .try_invoke(Client::offset_req(request::GET_MAX_OFFSET, "IdleTopic", 0))
        .expect("broker answers");
    assert_eq!(r.code, response::SUCCESS);
    let (_ns, ns_port) = start_namesrv_with(&dir.join("ns"), &huge, &dir.join("ns.log"));
    let mut n = Client::connect(ns_port);
    n.stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let r = n
        .try_invoke(RemotingCommand::request(
            request::GET_ALL_TOPIC_LIST_FROM_NAMESERVER,
        ))
        .expect("name server answers");
    assert_eq!(r.code, response::SUCCESS);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!text.contains("panicked"), "{text}");
}
