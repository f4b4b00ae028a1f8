use std::net::SocketAddr;

use ferromq_engine::message::{decode_record, encode_message, keys, sys_flag};
use ferromq_engine::{Message, MessageExt};

use super::check::{check_body, commit_prepared_offset};
use super::*;
use crate::remoting::ExtFields;

fn host() -> SocketAddr {
    "10.0.0.7:10911".parse().unwrap()
}

/// Encode `m` as a stored record at the given offsets and decode it back.
fn stored(m: &Message, queue_offset: u64, commit_log_offset: u64) -> MessageExt {
    let mut rec = Vec::new();
    encode_message(m, &host(), &mut rec);
    rec[20..28].copy_from_slice(&(queue_offset as i64).to_be_bytes());
    rec[28..36].copy_from_slice(&(commit_log_offset as i64).to_be_bytes());
    decode_record(&rec).unwrap()
}

fn send(topic: &str, qid: u32) -> Message {
    let mut m = Message::new(topic, b"order-1".to_vec())
        .with_tags("TagA")
        .with_property(keys::TRAN_MSG, "true")
        .with_property(keys::PGROUP, "PG")
        .with_property(keys::UNIQ_KEY, "AC11000100002A9F0000000000000001")
        .with_property(keys::DELAY, "3");
    m.queue_id = qid;
    m.sys_flag = sys_flag::TRANSACTION_PREPARED_TYPE | sys_flag::MULTI_TAGS;
    m
}

fn header(pairs: &[(&str, &str)]) -> ExtFields {
    let mut e = ExtFields::new();
    for (k, v) in pairs {
        e.insert(*k, *v);
    }
    e
}

#[test]
fn end_transaction_header_java_and_cpp_forms() {
    let full = [
        ("producerGroup", "PG"),
        ("tranStateTableOffset", "17"),
        ("commitLogOffset", "4096"),
        ("commitOrRollback", "8"),
        ("fromTransactionCheck", "true"),
        ("msgId", "X"),
        ("transactionId", "T"),
    ];
    let h = EndTransactionHeader::parse(&header(&full)).unwrap();
    assert_eq!(
        h,
        EndTransactionHeader {
            producer_group: "PG".into(),
            tran_state_table_offset: 17,
            commit_log_offset: 4096,
            commit_or_rollback: 8,
            from_transaction_check: true,
            msg_id: "X".into(),
            transaction_id: Some("T".into()),
        }
    );
    // The C++ client writes booleans as 1/0 and may send an empty transactionId.
    let mut e = header(&full);
    e.insert("fromTransactionCheck", "0");
    e.insert("transactionId", "");
    let h = EndTransactionHeader::parse(&e).unwrap();
    assert!(!h.from_transaction_check);
    assert_eq!(h.transaction_id, None);
    e.0.remove("fromTransactionCheck");
    assert!(
        !EndTransactionHeader::parse(&e)
            .unwrap()
            .from_transaction_check
    );
    for (k, bad) in [
        ("commitOrRollback", "4"),
        ("commitOrRollback", "x"),
        ("tranStateTableOffset", "-1"),
        ("commitLogOffset", "1.5"),
        ("fromTransactionCheck", "maybe"),
    ] {
        let mut e = header(&full);
        e.insert(k, bad);
        let err = EndTransactionHeader::parse(&e).unwrap_err().to_string();
        assert!(err.contains(k), "{k}={bad}: {err}");
    }
    for k in [
        "producerGroup",
        "tranStateTableOffset",
        "commitLogOffset",
        "commitOrRollback",
        "msgId",
    ] {
        let mut e = header(&full);
        e.0.remove(k);
        assert!(EndTransactionHeader::parse(&e)
            .unwrap_err()
            .to_string()
            .contains(k));
    }
}

#[test]
fn half_commit_and_op_shapes() {
    let mut m = send("Orders", 3);
    assert!(is_half_request(&m.properties));
    to_half(&mut m);
    assert_eq!((m.topic.as_str(), m.queue_id), (HALF_TOPIC, 0));
    assert_eq!(m.sys_flag & sys_flag::TRANSACTION_MASK, 0);
    assert_eq!(m.sys_flag & sys_flag::MULTI_TAGS, sys_flag::MULTI_TAGS);
    assert_eq!(m.properties.get(keys::REAL_TOPIC), Some("Orders"));
    assert_eq!(m.properties.get(keys::REAL_QID), Some("3"));
    assert_eq!(m.properties.get(keys::DELAY), None);
    let half = stored(&m, 41, 8192);
    assert_eq!(origin_of(&half), 41);

    let c = to_commit(&half).unwrap();
    assert_eq!((c.topic.as_str(), c.queue_id), ("Orders", 3));
    assert_eq!(
        c.sys_flag & sys_flag::TRANSACTION_MASK,
        sys_flag::TRANSACTION_COMMIT_TYPE
    );
    assert_eq!(c.prepared_transaction_offset, 8192);
    for k in [keys::TRAN_MSG, keys::REAL_TOPIC, keys::REAL_QID] {
        assert_eq!(c.properties.get(k), None, "{k}");
    }
    assert_eq!(c.properties.get(keys::PGROUP), Some("PG"));
    assert_eq!(c.body, b"order-1");
    // The commit record names its half (what the start-up scan reads).
    let mut rec = Vec::new();
    encode_message(&c, &host(), &mut rec);
    assert_eq!(commit_prepared_offset(&rec), Some(8192));
    let mut plain = Vec::new();
    encode_message(&send("Orders", 0), &host(), &mut plain);
    assert_eq!(commit_prepared_offset(&plain), None);
    assert_eq!(commit_prepared_offset(&rec[..40]), None);

    let op = stored(&op_message(&half, 41, host()), 0, 9000);
    assert_eq!((op.topic.as_str(), op.tags()), (OP_TOPIC, Some(REMOVE_TAG)));
    assert_eq!(op.body, b"41");
    assert_eq!(op_origin(&op), Some(41));

    let mut bad = half.clone();
    bad.properties.remove(keys::REAL_QID);
    assert!(to_commit(&bad).is_err());
}

#[test]
fn copies_keep_their_origin_and_count_checks() {
    let mut m = send("Orders", 1);
    to_half(&mut m);
    let half = stored(&m, 5, 100);
    assert_eq!(check_times(&half), 0);
    let copy = stored(&renew_half(&half, 1, origin_of(&half)), 9, 700);
    assert_eq!((copy.topic.as_str(), copy.queue_id), (HALF_TOPIC, 0));
    assert_eq!(check_times(&copy), 1);
    assert_eq!(origin_of(&copy), 5, "a copy names the first half record");
    let copy2 = stored(&renew_half(&copy, 2, origin_of(&copy)), 12, 900);
    assert_eq!((origin_of(&copy2), check_times(&copy2)), (5, 2));
    // An op for a copy names the transaction, its body the copy's offset.
    let op = stored(&op_message(&copy2, origin_of(&copy2), host()), 0, 1000);
    assert_eq!((op.body.as_slice(), op_origin(&op)), (&b"12"[..], Some(5)));
    // A RocketMQ op record (no property) names its half by the body.
    let mut java_op = op.clone();
    java_op.properties.remove(PROPERTY_PREPARED_QUEUE_OFFSET);
    assert_eq!(op_origin(&java_op), Some(12));
    java_op.body = b"x".to_vec();
    assert_eq!(op_origin(&java_op), None);
    let mut other_tag = op.clone();
    other_tag.properties.insert(keys::TAGS, "z");
    assert_eq!(op_origin(&other_tag), None);

    let moved = to_check_max(&copy2);
    assert_eq!(
        (moved.topic.as_str(), moved.queue_id),
        (CHECK_MAX_TIME_TOPIC, 0)
    );
}

#[test]
fn immunity_from_property_or_timeout() {
    let mut m = send("Orders", 0);
    to_half(&mut m);
    let half = stored(&m, 0, 0);
    assert_eq!(immunity_ms(&half, 6000), (6000, false));
    let mut h = half.clone();
    h.properties.insert(PROPERTY_CHECK_IMMUNITY, "20");
    assert_eq!(immunity_ms(&h, 6000), (20_000, true));
    h.properties.insert(PROPERTY_CHECK_IMMUNITY, "-1");
    assert_eq!(immunity_ms(&h, 6000), (6000, true));
}

#[test]
fn check_body_is_a_record_on_the_real_topic() {
    let mut m = send("Orders", 2);
    to_half(&mut m);
    let half = stored(&m, 33, 4242);
    let body = check_body(&half).unwrap();
    let d = decode_record(&body).unwrap();
    assert_eq!((d.topic.as_str(), d.queue_id), ("Orders", 2));
    assert_eq!((d.queue_offset, d.commit_log_offset), (33, 4242));
    assert_eq!(
        d.properties.get(keys::UNIQ_KEY),
        Some("AC11000100002A9F0000000000000001")
    );
    assert_eq!(d.body, b"order-1");
}

#[test]
fn book_decides_once() {
    let b = TransactionBook::new();
    assert_eq!(b.claim(7), Claim::Granted);
    assert_eq!(b.claim(7), Claim::InFlight);
    assert!(b.is_settled(7));
    assert_eq!(b.unless_settled(7, || 1), None);
    b.finish(7, false); // the write failed: the decision is free again
    assert!(!b.is_settled(7));
    assert_eq!(b.unless_settled(7, || 1), Some(1));
    assert_eq!(b.claim(7), Claim::Granted);
    b.finish(7, true);
    assert_eq!(b.claim(7), Claim::AlreadyDecided);
    assert_eq!(b.decided_runs(), 1);
    b.mark_copy(8); // a copy's offset joins the run 7..9
    assert_eq!(b.decided_runs(), 1);
    assert_eq!(b.claim(8), Claim::AlreadyDecided);
    // Replayed op records (start-up) decide too and move the op offset.
    b.replay_op(Some(9), 4);
    b.replay_op(None, 5);
    assert_eq!(b.claim(9), Claim::AlreadyDecided);
    assert_eq!(b.op_offset(), 6);
    b.replay_op(Some(10), 2);
    assert_eq!(b.op_offset(), 6, "never moves back");
}

#[test]
fn decided_set_keeps_runs() {
    let mut s = DecidedSet::new();
    assert!(!s.contains(0));
    for v in [5, 7, 6, 1, 0, 9, 3, 2, 4] {
        s.insert(v);
        s.insert(v);
    }
    for v in 0..=7 {
        assert!(s.contains(v), "{v}");
    }
    assert!(!s.contains(8));
    assert!(s.contains(9));
    assert!(!s.contains(10));
    assert_eq!(s.runs(), 2, "0..8 and 9..10");
    s.insert(8);
    assert_eq!(s.runs(), 1);
    s.insert(u64::MAX);
    assert!(!s.contains(u64::MAX));
    // A million consecutive decisions cost one run.
    let mut big = DecidedSet::new();
    for v in (0..1_000_000u64).rev() {
        big.insert(v);
    }
    assert_eq!(big.runs(), 1);
    assert!(big.contains(999_999) && !big.contains(1_000_000));
}
