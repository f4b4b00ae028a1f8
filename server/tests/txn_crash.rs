//! Transactions across broker crashes (SIGKILL, and an abort at the failpoint
//! between a commit record and its op record):
//!
//! 1. Six half messages are stored and H0 is committed; the broker is SIGKILLed
//!    with H1..H5 undecided.
//! 2. Restarted with `FERROMQ_FAILPOINT=after_commit_before_op`, the broker
//!    aborts right after writing H1's commit record.
//! 3. Restarted normally: it finds H1's commit without op and writes the op
//!    record, so H1 is never checked back; H2..H5 are checked again and answered
//!    (commit H2, H4; roll back H3, H5). Duplicate decisions for H0, H1, H3 have
//!    no effect.
//!
//! The topic then holds H0, H1, H2, H4 exactly once and nothing else.
//! `FERROMQ_TXN_CRASH_TRIALS=N` repeats the scenario N times.

mod common;
mod txn_common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::*;
use txn_common::*;

const GROUP: &str = "PG_CRASH";
const TOPIC: &str = "TxnCrash";
const PROPS: &str = "transactionCheckInterval=300\ntransactionTimeOut=800\n";

fn body(i: usize) -> Vec<u8> {
    format!("crash-{i}").into_bytes()
}

#[test]
fn no_commit_lost_or_doubled_across_crashes() {
    // More trials: FERROMQ_TXN_CRASH_TRIALS=N (each about 4 s).
    let trials: usize = std::env::var("FERROMQ_TXN_CRASH_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    for _ in 0..trials.max(1) {
        one_trial();
    }
}

fn one_trial() {
    let (_tmp, dir) = temp_dir();
    let store = dir.join("store");
    let props = broker_props(&store, PROPS);

    // 1. Halves, one commit, SIGKILL.
    let (broker, port) = start_broker(&dir, &props, None);
    let mut c = Client::connect(port);
    let halves: Vec<Half> = (0..6)
        .map(|i| send_half(&mut c, GROUP, TOPIC, 0, &body(i), &format!("H{i}")))
        .collect();
    assert_eq!(
        c.invoke(end_request(GROUP, &halves[0], COMMIT, false)).code,
        0
    );
    drop(c);
    drop(broker); // SIGKILL

    // 2. The commit of H1 is written, then the broker aborts before the op record.
    let (mut broker, port) = start_broker_env(
        &dir,
        &props,
        None,
        &[("FERROMQ_FAILPOINT", "after_commit_before_op")],
    );
    let mut c = Client::connect(port);
    send_oneway(&mut c, end_request(GROUP, &halves[1], COMMIT, false));
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = broker.child.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "the failpoint did not stop the broker"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success(), "aborted at the failpoint: {status:?}");
    drop(c);

    // 3. Normal restart; answer the check-backs.
    let (_broker, port) = start_broker(&dir, &props, None);
    let mut c = Client::connect(port);
    heartbeat_producer(&mut c, "crash-client", GROUP);
    // Duplicates first: H0 (op written before the crash), H1 (op written at start).
    for h in [0, 1] {
        let r = c.invoke(end_request(GROUP, &halves[h], COMMIT, false));
        assert_eq!(
            r.remark.as_deref(),
            Some("transaction already decided"),
            "H{h}"
        );
    }
    let answers: BTreeMap<&str, i32> = [
        ("H2", COMMIT),
        ("H3", ROLLBACK),
        ("H4", COMMIT),
        ("H5", ROLLBACK),
    ]
    .into_iter()
    .collect();
    let mut checked: BTreeMap<String, u32> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        match next_check(&mut c, Duration::from_millis(500)) {
            Some((h, msg)) => {
                assert_eq!(msg.body, body(h.uniq[1..].parse().unwrap()));
                *checked.entry(h.uniq.clone()).or_default() += 1;
                let d = *answers.get(h.uniq.as_str()).unwrap_or_else(|| {
                    panic!("{} was decided before the crash but checked back", h.uniq)
                });
                send_oneway(&mut c, end_request(GROUP, &h, d, true));
            }
            None if checked.len() == 4 => break,
            None => {}
        }
    }
    assert_eq!(
        checked.keys().cloned().collect::<BTreeSet<_>>(),
        ["H2", "H3", "H4", "H5"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        "every undecided transaction is checked again after the restarts"
    );
    // A late rollback-then-commit of H3 changes nothing.
    let r = c.invoke(end_request(GROUP, &halves[3], COMMIT, false));
    assert_eq!(r.remark.as_deref(), Some("transaction already decided"));

    let got = wait_for(Duration::from_secs(10), || {
        let m = pull_all(&mut c, TOPIC, 4);
        (m.len() >= 4).then_some(m)
    })
    .expect("four committed messages");
    std::thread::sleep(Duration::from_millis(700)); // nothing more may arrive
    let got_after = pull_all(&mut c, TOPIC, 4);
    assert_eq!(got.len(), got_after.len(), "a message arrived late");
    let mut bodies: Vec<Vec<u8>> = got_after.iter().map(|m| m.body.clone()).collect();
    bodies.sort();
    assert_eq!(bodies, vec![body(0), body(1), body(2), body(4)]);
    assert!(pending(&mut c)["groups"].as_object().unwrap().is_empty());
    assert!(next_check(&mut c, Duration::from_millis(700)).is_none());
}
