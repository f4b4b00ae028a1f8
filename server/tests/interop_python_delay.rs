//! Delayed messages with a real client: Apache's C++ client (PyPI
//! `rocketmq-client-python==0.5.0rc2`, driven by `tests/clients/python_delay.py`)
//! sends with delay levels 1 to 3 (RocketMQ's default levels: 1 s, 5 s, 10 s)
//! and pulls them back; every message reaches its topic no earlier than its
//! delay after it was sent and at most a second later (born timestamp from the
//! client, store timestamp of the delivery from the broker). Then messages at
//! level 3 wait across a broker SIGKILL and restart on the same store: each is
//! still delivered on time (at least once).
//!
//! Skips (with a message) when `python3` or the package is missing; `.ci/run`
//! installs the package.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use common::*;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/python_delay.py");
const LEVEL_MS: [i64; 4] = [0, 1_000, 5_000, 10_000];

/// First delivery per body: (level, born ms, store ms), and the number of
/// deliveries in all.
fn deliveries(lines: &[String]) -> (BTreeMap<String, (usize, i64, i64)>, usize) {
    let mut first = BTreeMap::new();
    let mut n = 0;
    for l in lines {
        let Some(rest) = l.strip_prefix("GOT ") else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        assert_eq!(f.len(), 3, "bad line {l}");
        let level: usize = f[0]
            .rsplit("-L")
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("level in {l}"));
        let born: i64 = f[1].parse().unwrap();
        let stored: i64 = f[2].parse().unwrap();
        n += 1;
        first
            .entry(f[0].to_string())
            .and_modify(|e: &mut (usize, i64, i64)| {
                if stored < e.2 {
                    *e = (level, born, stored)
                }
            })
            .or_insert((level, born, stored));
    }
    (first, n)
}

/// Every delivery no earlier than its delay after it was sent, at most 1 s later.
fn check_on_time(first: &BTreeMap<String, (usize, i64, i64)>) {
    for (body, &(level, born, stored)) in first {
        let delay = LEVEL_MS[level];
        let took = stored - born;
        assert!(
            took >= delay,
            "{body}: delivered {took} ms after it was sent, before its {delay} ms delay"
        );
        assert!(
            took <= delay + 1_000,
            "{body}: delivered {took} ms after it was sent, more than 1 s after its {delay} ms delay"
        );
    }
}

#[test]
fn cpp_client_delayed_messages_arrive_on_time_across_a_restart() {
    if let Err(why) = python_rocketmq_available("import rocketmq.client") {
        eprintln!("SKIPPED interop_python_delay: {why}");
        return;
    }
    let (_tmp, dir) = temp_dir();
    let (_ns, ns_port) = start_namesrv(&dir);
    let ns = format!("127.0.0.1:{ns_port}");
    let props = broker_props(&dir.join("store"), "");
    let (mut broker, _) = start_broker(&dir.join("b1"), &props, Some(ns_port));
    let home = dir.join("home");
    let run = |args: &[&str], timeout: u64| {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        run_client_script(
            "python3",
            SCRIPT,
            &args,
            &home,
            Duration::from_secs(timeout),
        )
    };

    // Levels 1, 2, 3 while the broker runs.
    let sent = run(&[&ns, "DelayTopicA", "send", "30", "1", "3"], 120);
    result_line(&sent, &["sent=30"]);
    let got = run(&[&ns, "DelayTopicA", "pull", "30", "40"], 120);
    result_line(&got, &["distinct=30"]);
    let (first, n) = deliveries(&got);
    assert_eq!(first.len(), 30);
    check_on_time(&first);
    eprintln!("interop_python_delay: 30 messages at levels 1-3 on time ({n} deliveries)");

    // Level 3 (10 s) across a SIGKILL and a restart on the same store.
    let sent = run(&[&ns, "DelayTopicB", "send", "12", "3", "3"], 120);
    result_line(&sent, &["sent=12"]);
    let st = Command::new("kill")
        .args(["-KILL", &broker.child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(st.success());
    let _ = broker.child.wait();
    let (_broker2, _) = start_broker(&dir.join("b2"), &props, Some(ns_port));
    let got = run(&[&ns, "DelayTopicB", "pull", "12", "40"], 120);
    result_line(&got, &["distinct=12"]);
    let (first, n) = deliveries(&got);
    assert_eq!(first.len(), 12);
    check_on_time(&first);
    eprintln!(
        "interop_python_delay: 12 messages at level 3 on time across a SIGKILL and restart ({n} deliveries)"
    );
}
