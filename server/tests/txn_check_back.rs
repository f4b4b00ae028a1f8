//! The check-back service of a real broker: an undecided half message older
//! than `transactionTimeOut` is re-appended (TRANSACTION_CHECK_TIMES + 1) and
//! CHECK_TRANSACTION_STATE goes to the producer's own connection; the answer
//! (END_TRANSACTION oneway, fromTransactionCheck) commits it once; a message
//! nobody answers is moved to TRANS_CHECK_MAX_TIME_TOPIC after
//! `transactionCheckMax` checks; CHECK_IMMUNITY_TIME_IN_SECONDS delays the first
//! check; progress lands in consumerOffset.json; `ferromq-admin txnPending`
//! lists what is pending by group with its age.

mod common;
mod txn_common;

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use ferromq_engine::message::keys;
use ferromq_engine::MessageProperties;
use ferromq_server::remoting::{request, response, RemotingCommand};
use txn_common::*;

const GROUP: &str = "PG_CHECK";
const TOPIC: &str = "TxnCheck";
const PROPS: &str = "transactionCheckInterval=200\ntransactionTimeOut=600\ntransactionCheckMax=2\n";

#[test]
fn check_back_commit_discard_immunity_and_admin() {
    let (_tmp, dir) = temp_dir();
    let store = dir.join("store");
    let (_broker, port) = start_broker(&dir, &broker_props(&store, PROPS), None);
    let mut c = Client::connect(port);
    heartbeat_producer(&mut c, "checker-1", GROUP);

    let sent = Instant::now();
    let a = send_half(&mut c, GROUP, TOPIC, 2, b"answered", "UA");
    let b = send_half(&mut c, GROUP, TOPIC, 2, b"ignored", "UB");
    // C asks for 3 s before its first check.
    let mut props = MessageProperties::new();
    for (k, v) in [
        (keys::TRAN_MSG, "true"),
        (keys::PGROUP, GROUP),
        (keys::UNIQ_KEY, "UC"),
        ("CHECK_IMMUNITY_TIME_IN_SECONDS", "3"),
    ] {
        props.insert(k, v);
    }
    let mut enc = Vec::new();
    props.encode_into(&mut enc);
    let mut req = half_request(GROUP, TOPIC, 2, b"immune", "UC");
    req.ext_fields.insert("i", String::from_utf8(enc).unwrap());
    assert_eq!(c.invoke(req).code, response::SUCCESS);

    wait_for(Duration::from_secs(5), || {
        (max_offset(&mut c, "RMQ_SYS_TRANS_HALF_TOPIC", 0) >= 3).then_some(())
    })
    .expect("half messages dispatched");
    // The admin tool sees three pending transactions of the group, young.
    let out = Command::new(env!("CARGO_BIN_EXE_ferromq-admin"))
        .args(["txnPending", "-b", &format!("127.0.0.1:{port}")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(GROUP) && text.contains("UA") && text.contains("UB") && text.contains("UC"),
        "{text}"
    );
    assert!(text.contains(&format!("{GROUP}: 3 pending")), "{text}");

    let mut checks: HashMap<String, Vec<u32>> = HashMap::new();
    let mut first_c = None;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let Some((h, body)) = next_check(&mut c, Duration::from_millis(500)) else {
            if checks.get("UB").is_some_and(|v| v.len() >= 2) && first_c.is_some() {
                break;
            }
            continue;
        };
        // The body is the message on its real topic and queue.
        assert_eq!((body.topic.as_str(), body.queue_id), (TOPIC, 2));
        assert_eq!(
            body.properties.get("UNIQ_CLIENT_MESSAGE_ID_KEYIDX"),
            Some(h.uniq.as_str())
        );
        let times: u32 = body
            .properties
            .get("TRANSACTION_CHECK_TIMES")
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            h.queue_offset >= 3,
            "a check names a re-appended copy: {h:?}"
        );
        checks.entry(h.uniq.clone()).or_default().push(times);
        match h.uniq.as_str() {
            "UA" => {
                assert!(
                    sent.elapsed() >= Duration::from_millis(600),
                    "checked before transactionTimeOut"
                );
                // Answer with the copy's offsets, oneway, as clients do; twice.
                send_oneway(&mut c, end_request(GROUP, &h, COMMIT, true));
                send_oneway(&mut c, end_request(GROUP, &h, COMMIT, true));
                // The original half's offsets name the same transaction: no effect.
                send_oneway(&mut c, end_request(GROUP, &a, COMMIT, false));
            }
            "UC" => {
                first_c.get_or_insert(sent.elapsed());
                send_oneway(&mut c, end_request(GROUP, &h, ROLLBACK, true));
            }
            _ => {}
        }
    }
    assert_eq!(
        checks.get("UA").map(Vec::as_slice),
        Some(&[1][..]),
        "{checks:?}"
    );
    assert_eq!(
        checks.get("UB").map(Vec::as_slice),
        Some(&[1, 2][..]),
        "{checks:?}"
    );
    let first_c = first_c.expect("C checked");
    assert!(
        first_c >= Duration::from_secs(3),
        "C checked after {first_c:?}, before its immunity"
    );
    assert_eq!(checks["UC"], vec![1]);

    // B: discarded after transactionCheckMax checks.
    wait_for(Duration::from_secs(10), || {
        (max_offset(&mut c, "TRANS_CHECK_MAX_TIME_TOPIC", 0) == 1).then_some(())
    })
    .expect("B moved to TRANS_CHECK_MAX_TIME_TOPIC");
    let r = c.pull("x", "TRANS_CHECK_MAX_TIME_TOPIC", 0, 0, 32);
    let moved = records(&r.body);
    assert_eq!(moved[0].body, b"ignored");
    assert_eq!(moved[0].properties.get("REAL_TOPIC"), Some(TOPIC));
    let _ = b;

    // A committed exactly once, C never.
    let got = pull_all(&mut c, TOPIC, 4);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].body, b"answered");
    // Nothing is pending any more, and no further checks come.
    wait_for(Duration::from_secs(5), || {
        pending(&mut c)["groups"]
            .as_object()
            .unwrap()
            .is_empty()
            .then_some(())
    })
    .expect("nothing pending");
    assert!(next_check(&mut c, Duration::from_millis(800)).is_none());

    // The progress is in consumerOffset.json (group CID_RMQ_SYS_TRANS).
    let offsets = wait_for(Duration::from_secs(5), || {
        let t = std::fs::read_to_string(store.join("config/consumerOffset.json")).ok()?;
        (t.contains("RMQ_SYS_TRANS_HALF_TOPIC@CID_RMQ_SYS_TRANS")
            && t.contains("RMQ_SYS_TRANS_OP_HALF_TOPIC@CID_RMQ_SYS_TRANS"))
        .then_some(t)
    })
    .expect("check-back progress persisted");
    let r = c.invoke(
        RemotingCommand::request(request::QUERY_CONSUMER_OFFSET)
            .with_ext("consumerGroup", "CID_RMQ_SYS_TRANS")
            .with_ext("topic", "RMQ_SYS_TRANS_HALF_TOPIC")
            .with_ext("queueId", 0),
    );
    assert!(r.ext_fields.get_i64("offset").unwrap() >= 3, "{offsets}");
}
