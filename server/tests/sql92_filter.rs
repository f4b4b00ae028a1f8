//! SQL92 property filters against the real broker binary:
//! `enablePropertyFilter=true` lets a SQL92 subscription (from the heartbeat,
//! or carried by the pull with the subscription flag) pull exactly the
//! matching messages while its offsets pass the rest; with the key off such a
//! subscription is refused as RocketMQ refuses it; a malformed selector is
//! SUBSCRIPTION_PARSE_FAILED (23) naming its position; CHECK_CLIENT_CONFIG
//! (46) compiles it.

mod common;

use std::time::Duration;

use common::*;
use ferromq_server::remoting::{request, response, RemotingCommand};

const TOPIC: &str = "SqlTopic";
const GROUP: &str = "SqlGroup";
const CLIENT: &str = "127.0.0.1@sql-consumer";
const N: usize = 20;

fn heartbeat(kind: &str, sql: &str) -> RemotingCommand {
    let body = serde_json::json!({
        "clientID": CLIENT,
        "producerDataSet": [],
        "consumerDataSet": [{
            "groupName": GROUP,
            "consumeType": "CONSUME_PASSIVELY",
            "messageModel": "CLUSTERING",
            "consumeFromWhere": "CONSUME_FROM_FIRST_OFFSET",
            "subscriptionDataSet": [{
                "classFilterMode": false, "codeSet": [], "expressionType": kind,
                "subString": sql, "subVersion": 1_700_000_000_000i64, "tagsSet": [],
                "topic": TOPIC,
            }],
            "unitMode": false,
        }],
    });
    RemotingCommand::request(request::HEART_BEAT).with_body(body.to_string().into_bytes())
}

fn check_config(kind: &str, sql: &str) -> RemotingCommand {
    let body = serde_json::json!({
        "clientId": CLIENT, "group": GROUP,
        "subscriptionData": {"expressionType": kind, "subString": sql, "topic": TOPIC},
    });
    RemotingCommand::request(request::CHECK_CLIENT_CONFIG).with_body(body.to_string().into_bytes())
}

/// Pull without the subscription flag: the group's heartbeat subscription.
fn pull_by_heartbeat(offset: u64, max: i32) -> RemotingCommand {
    Client::pull_req(GROUP, TOPIC, 0, offset, max, 0, 0, "")
}

/// Pull carrying a SQL92 subscription (SUB flag 0x4).
fn pull_with_sql(offset: u64, max: i32, sql: &str) -> RemotingCommand {
    Client::pull_req(GROUP, TOPIC, 0, offset, max, 0x4, 0, sql).with_ext("expressionType", "SQL92")
}

/// Message i: `n` = i (sent as a string), `color` red for even i, `odd` set
/// only on odd i, tag A for i < 10.
fn send_all(c: &mut Client) {
    for i in 0..N {
        let n = i.to_string();
        let color = if i % 2 == 0 { "red" } else { "blue" };
        let tag = if i < 10 { "A" } else { "B" };
        let mut props = vec![("n", n.as_str()), ("color", color), ("TAGS", tag)];
        if i % 2 == 1 {
            props.push(("odd", "yes"));
        }
        let r = c.send_v2_props(TOPIC, 0, format!("m{i}").as_bytes(), &props);
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    }
    wait_for(Duration::from_secs(10), || {
        let r = c.invoke(Client::offset_req(request::GET_MAX_OFFSET, TOPIC, 0));
        (r.ext_fields.get_i64("offset").unwrap() == N as i64).then_some(())
    })
    .expect("all messages dispatched");
}

/// Pull from 0 to the end with `req(offset)`, following nextBeginOffset;
/// the bodies got and the number of pulls.
fn drain(c: &mut Client, req: impl Fn(u64) -> RemotingCommand) -> (Vec<String>, usize) {
    let mut got = Vec::new();
    let mut offset = 0u64;
    let mut pulls = 0;
    loop {
        pulls += 1;
        assert!(pulls < 100, "no progress at offset {offset}");
        let r = c.invoke(req(offset));
        let next = r.ext_fields.get_i64("nextBeginOffset").unwrap() as u64;
        match r.code {
            response::SUCCESS => got.extend(
                records(&r.body)
                    .into_iter()
                    .map(|m| String::from_utf8(m.body).unwrap()),
            ),
            // Nothing matched in what was read: the offset still moves on.
            response::PULL_RETRY_IMMEDIATELY => {
                assert_eq!(r.remark.as_deref(), Some("NO_MATCHED_MESSAGE"));
                assert!(next > offset, "a batch filtered out whole moves the offset");
            }
            response::PULL_NOT_FOUND => return (got, pulls),
            other => panic!("pull answered {other}: {:?}", r.remark),
        }
        offset = next;
    }
}

fn bodies(f: impl Fn(usize) -> bool) -> Vec<String> {
    (0..N).filter(|i| f(*i)).map(|i| format!("m{i}")).collect()
}

#[test]
fn sql92_subscriptions_pull_exactly_the_matching_messages() {
    let (_tmp, dir) = temp_dir();
    let props = broker_props(&dir.join("store"), "enablePropertyFilter=true\n");
    let (_broker, port) = start_broker(&dir, &props, None);
    let mut c = Client::connect(port);
    send_all(&mut c);

    // From the heartbeat's subscription (no subscription flag on the pull).
    let sql = "n BETWEEN 5 AND 14 AND color = 'red'";
    let r = c.invoke(heartbeat("SQL92", sql));
    assert_eq!(r.code, response::SUCCESS);
    // The broker's version (V4_9_4): clients refuse SQL92 pulls from a
    // broker whose heartbeat answer says it is older than V4_1_0_SNAPSHOT.
    assert_eq!(r.version, 401);
    let (got, _) = drain(&mut c, |o| pull_by_heartbeat(o, 32));
    assert_eq!(got, bodies(|i| (5..=14).contains(&i) && i % 2 == 0));

    // Small batches: as RocketMQ's store, messages filtered out do not count
    // against the batch: a pull of 2 gets two matches and the offset after
    // the second.
    let r = c.invoke(pull_by_heartbeat(0, 2));
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let got: Vec<String> = records(&r.body)
        .into_iter()
        .map(|m| String::from_utf8(m.body).unwrap())
        .collect();
    assert_eq!(got, ["m6", "m8"]);
    assert_eq!(r.ext_fields.get_i64("nextBeginOffset").unwrap(), 9);
    let (got, pulls) = drain(&mut c, |o| pull_by_heartbeat(o, 2));
    assert_eq!(got, bodies(|i| (5..=14).contains(&i) && i % 2 == 0));
    assert_eq!(pulls, 4, "three batches and the end");

    // Nothing matches: one NO_MATCHED_MESSAGE passing every message.
    let r = c.invoke(pull_with_sql(0, 32, "missing = 1"));
    assert_eq!(r.code, response::PULL_RETRY_IMMEDIATELY);
    assert_eq!(r.remark.as_deref(), Some("NO_MATCHED_MESSAGE"));
    assert_eq!(r.ext_fields.get_i64("nextBeginOffset").unwrap(), N as i64);

    // Carried by the pull (subscription flag), differing from the heartbeat's.
    for (sql, want) in [
        ("odd IS NULL", bodies(|i| i % 2 == 0)),
        (
            "odd IS NOT NULL AND n > 15",
            bodies(|i| i % 2 == 1 && i > 15),
        ),
        (
            "TAGS = 'B' OR n IN ('1', '2')",
            bodies(|i| i >= 10 || i == 1 || i == 2),
        ),
        ("NOT (n < 18)", bodies(|i| i >= 18)),
        (
            "color STARTSWITH 'bl' AND n <= 3",
            bodies(|i| i % 2 == 1 && i <= 3),
        ),
        ("missing = 1", Vec::new()),
    ] {
        let (got, _) = drain(&mut c, |o| pull_with_sql(o, 32, sql));
        assert_eq!(got, want, "{sql}");
    }

    // A malformed selector carried by the pull: 23 with the position.
    let r = c.invoke(pull_with_sql(0, 32, "n > "));
    assert_eq!(r.code, response::SUBSCRIPTION_PARSE_FAILED);
    let remark = r.remark.unwrap_or_default();
    assert!(remark.contains("column 5"), "{remark}");

    // CHECK_CLIENT_CONFIG compiles it.
    assert_eq!(c.invoke(check_config("SQL92", sql)).code, response::SUCCESS);
    assert_eq!(
        c.invoke(check_config("TAG", "a || b")).code,
        response::SUCCESS
    );
    let r = c.invoke(check_config("SQL92", "n BETWEEN 1 AND"));
    assert_eq!(r.code, response::SUBSCRIPTION_PARSE_FAILED);
    let remark = r.remark.unwrap_or_default();
    assert!(remark.contains("line 1, column 16"), "{remark}");
    let r = c.invoke(check_config("SQL92", "n > 'x'"));
    assert_eq!(
        r.code,
        response::SUBSCRIPTION_PARSE_FAILED,
        "{:?}",
        r.remark
    );

    // A heartbeat with a selector that does not compile is taken (as
    // RocketMQ's), but its pulls find no filter data.
    assert_eq!(c.invoke(heartbeat("SQL92", "n >")).code, response::SUCCESS);
    let r = c.invoke(pull_by_heartbeat(0, 32));
    assert_eq!(r.code, response::FILTER_DATA_NOT_EXIST, "{:?}", r.remark);

    // Back to TAG: everything.
    assert_eq!(c.invoke(heartbeat("TAG", "*")).code, response::SUCCESS);
    let (got, _) = drain(&mut c, |o| pull_by_heartbeat(o, 32));
    assert_eq!(got, bodies(|_| true));
}

#[test]
fn sql92_is_refused_without_enable_property_filter() {
    let (_tmp, dir) = temp_dir();
    let (_broker, port) = start_broker(&dir, &broker_props(&dir.join("store"), ""), None);
    let mut c = Client::connect(port);
    send_all(&mut c);
    let refusal = Some("The broker does not support consumer to filter message by SQL92");

    let r = c.invoke(check_config("SQL92", "n > 1"));
    assert_eq!(r.code, response::SYSTEM_ERROR);
    assert_eq!(r.remark.as_deref(), refusal);
    assert_eq!(c.invoke(check_config("TAG", "*")).code, response::SUCCESS);

    let r = c.invoke(pull_with_sql(0, 32, "n > 1"));
    assert_eq!(r.code, response::SYSTEM_ERROR);
    assert_eq!(r.remark.as_deref(), refusal);

    // The heartbeat is taken; its pulls are refused.
    assert_eq!(
        c.invoke(heartbeat("SQL92", "n > 1")).code,
        response::SUCCESS
    );
    let r = c.invoke(pull_by_heartbeat(0, 32));
    assert_eq!(r.code, response::SYSTEM_ERROR);
    assert_eq!(r.remark.as_deref(), refusal);

    // TAG pulls are as before.
    let r = c.pull(GROUP, TOPIC, 0, 0, 32);
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    assert_eq!(records(&r.body).len(), N);
}

/// The pull path's cost, end to end over loopback (not a correctness test;
/// run with a release broker):
///
/// ```text
/// cargo build --release -p ferromq-server --bin ferromq-broker
/// FERROMQ_TEST_BROKER_BIN=target/release/ferromq-broker \
///   cargo test -p ferromq-server --test sql92_filter -- --ignored --nocapture
/// ```
///
/// Sends `FERROMQ_SQL92_BENCH_N` (default 50 000) 256-byte messages to one
/// queue, every other one `k=even`, then drains the queue with pulls of 32:
/// TAG `*` (every message), TAG `even` (half, by tag code), SQL92 `k = 'even'`
/// (half) and SQL92 over a missing property (none). Prints messages read per
/// second and messages returned per second for each.
#[test]
#[ignore]
fn sql92_pull_cost() {
    let n: usize = std::env::var("FERROMQ_SQL92_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let (_tmp, dir) = temp_dir();
    let props = broker_props(
        &dir.join("store"),
        "enablePropertyFilter=true\nmapedFileSizeCommitLog=134217728\nmapedFileSizeConsumeQueue=6000000\n",
    );
    let (_broker, port) = start_broker(&dir, &props, None);
    let mut c = Client::connect(port);
    let body = vec![b'x'; 256];
    for i in 0..n {
        let k = if i % 2 == 0 { "even" } else { "odd" };
        let r = c.send_v2_props(TOPIC, 0, &body, &[("k", k), ("TAGS", k), ("n", "7")]);
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    }
    wait_for(Duration::from_secs(60), || {
        let r = c.invoke(Client::offset_req(request::GET_MAX_OFFSET, TOPIC, 0));
        (r.ext_fields.get_i64("offset").unwrap() == n as i64).then_some(())
    })
    .expect("all messages dispatched");
    let cases: [(&str, &str, &str); 4] = [
        ("TAG *", "TAG", "*"),
        ("TAG even", "TAG", "even"),
        ("SQL92 k = 'even'", "SQL92", "k = 'even'"),
        ("SQL92 none match", "SQL92", "missing = 'x'"),
    ];
    for _round in 0..2 {
        for (name, kind, sub) in cases {
            let started = std::time::Instant::now();
            let mut offset = 0u64;
            let mut returned = 0usize;
            loop {
                let r = c.invoke(
                    Client::pull_req(GROUP, TOPIC, 0, offset, 32, 0x4, 0, sub)
                        .with_ext("expressionType", kind),
                );
                match r.code {
                    response::SUCCESS => returned += count_records(&r.body),
                    response::PULL_RETRY_IMMEDIATELY => {}
                    response::PULL_NOT_FOUND => break,
                    other => panic!("{name}: pull answered {other}: {:?}", r.remark),
                }
                offset = r.ext_fields.get_i64("nextBeginOffset").unwrap() as u64;
            }
            let secs = started.elapsed().as_secs_f64();
            eprintln!(
                "SQL92BENCH {name:<18} read {n} returned {returned} in {secs:.3} s: {:.0} read/s, {:.0} returned/s",
                n as f64 / secs,
                returned as f64 / secs
            );
        }
    }
}

/// Records in a pull body, by their sizes alone (no decoding).
fn count_records(mut body: &[u8]) -> usize {
    let mut n = 0;
    while body.len() >= 4 {
        let total = i32::from_be_bytes(body[..4].try_into().unwrap()) as usize;
        body = &body[total.clamp(4, body.len())..];
        n += 1;
    }
    n
}
