//! END_TRANSACTION against a real broker process: half messages stay invisible;
//! commit makes a message visible exactly once (sysFlag COMMIT, prepared
//! offset = the half's, TRAN_MSG / REAL_* gone); rollback shows nothing; every
//! decision writes one op record; a second decision (two-way, oneway, or after a
//! restart) has no effect; wrong group / offsets are refused as RocketMQ does;
//! `rejectTransactionMessage` and a slave refuse.

mod common;
mod txn_common;

use std::time::Duration;

use common::*;
use ferromq_engine::message::sys_flag;
use ferromq_server::remoting::{request, response, RemotingCommand};
use txn_common::*;

const GROUP: &str = "PG_END";
const TOPIC: &str = "TxnEnd";
/// No check-back during this test.
const PROPS: &str = "transactionCheckInterval=600000\n";

fn topic_messages(c: &mut Client) -> Vec<ferromq_engine::MessageExt> {
    pull_all(c, TOPIC, 4)
}

#[test]
fn commit_rollback_duplicates_and_checks() {
    let (_tmp, dir) = temp_dir();
    let store = dir.join("store");
    let props = broker_props(&store, PROPS);
    let (mut broker, port) = start_broker(&dir, &props, None);
    let mut c = Client::connect(port);

    let halves: Vec<Half> = (0..4)
        .map(|i| {
            send_half(
                &mut c,
                GROUP,
                TOPIC,
                1,
                format!("tx-{i}").as_bytes(),
                &format!("U{i}"),
            )
        })
        .collect();
    assert_eq!(
        halves.iter().map(|h| h.queue_offset).collect::<Vec<_>>(),
        vec![0, 1, 2, 3],
        "half queue offsets"
    );
    wait_for(Duration::from_secs(5), || {
        (max_offset(&mut c, "RMQ_SYS_TRANS_HALF_TOPIC", 0) == 4).then_some(())
    })
    .expect("4 half messages on RMQ_SYS_TRANS_HALF_TOPIC queue 0");
    assert_eq!(
        max_offset(&mut c, TOPIC, 1),
        0,
        "half messages are invisible"
    );

    // RocketMQ's checks: group, queue offset, commitlog offset; bad headers.
    let mut wrong_group = end_request("OTHER", &halves[0], COMMIT, false);
    wrong_group.ext_fields.insert("producerGroup", "OTHER");
    let r = c.invoke(wrong_group);
    assert_eq!(
        (r.code, r.remark.as_deref()),
        (response::SYSTEM_ERROR, Some("The producer group wrong"))
    );
    let mut off = halves[0].clone();
    off.queue_offset = 3;
    let r = c.invoke(end_request(GROUP, &off, COMMIT, false));
    assert_eq!(
        r.remark.as_deref(),
        Some("The transaction state table offset wrong")
    );
    let mut off = halves[0].clone();
    off.commit_log_offset += 3;
    let r = c.invoke(end_request(GROUP, &off, COMMIT, false));
    assert_eq!(
        r.remark.as_deref(),
        Some("Find prepared transaction message failed")
    );
    let mut bad = end_request(GROUP, &halves[0], COMMIT, false);
    bad.ext_fields.insert("commitOrRollback", "5");
    let r = c.invoke(bad);
    assert_eq!(r.code, response::SYSTEM_ERROR);
    assert!(r.remark.unwrap().contains("commitOrRollback"));
    let mut bad = end_request(GROUP, &halves[0], COMMIT, false);
    bad.ext_fields.0.remove("tranStateTableOffset");
    assert!(c
        .invoke(bad)
        .remark
        .unwrap()
        .contains("tranStateTableOffset"));
    // Unknown state: nothing happens.
    let r = c.invoke(end_request(GROUP, &halves[3], 0, false));
    assert_eq!(r.code, response::SUCCESS);

    // h0 commit (two-way) twice, then a rollback of it: one effect.
    assert_eq!(
        c.invoke(end_request(GROUP, &halves[0], COMMIT, false)).code,
        response::SUCCESS
    );
    let again = c.invoke(end_request(GROUP, &halves[0], COMMIT, true));
    assert_eq!(
        (again.code, again.remark.as_deref()),
        (response::SUCCESS, Some("transaction already decided"))
    );
    c.invoke(end_request(GROUP, &halves[0], ROLLBACK, true));
    // h1 commit oneway (as producers send it), twice; h2 rollback oneway.
    send_oneway(&mut c, end_request(GROUP, &halves[1], COMMIT, false));
    send_oneway(&mut c, end_request(GROUP, &halves[1], COMMIT, false));
    send_oneway(&mut c, end_request(GROUP, &halves[2], ROLLBACK, false));
    wait_for(Duration::from_secs(5), || {
        (max_offset(&mut c, "RMQ_SYS_TRANS_OP_HALF_TOPIC", 0) == 3).then_some(())
    })
    .expect("one op record per decided transaction");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(max_offset(&mut c, "RMQ_SYS_TRANS_OP_HALF_TOPIC", 0), 3);

    let got = topic_messages(&mut c);
    let mut bodies: Vec<&[u8]> = got.iter().map(|m| m.body.as_slice()).collect();
    bodies.sort();
    assert_eq!(
        bodies,
        vec![&b"tx-0"[..], b"tx-1"],
        "committed once each, rolled back absent"
    );
    for m in &got {
        let i: usize = std::str::from_utf8(&m.body).unwrap()[3..].parse().unwrap();
        assert_eq!(m.queue_id, 1);
        assert_eq!(
            m.sys_flag & sys_flag::TRANSACTION_MASK,
            sys_flag::TRANSACTION_COMMIT_TYPE
        );
        assert_eq!(
            m.prepared_transaction_offset as u64,
            halves[i].commit_log_offset
        );
        for k in ["TRAN_MSG", "REAL_TOPIC", "REAL_QID"] {
            assert_eq!(m.properties.get(k), None, "{k} on the committed message");
        }
        assert_eq!(m.properties.get("PGROUP"), Some(GROUP));
        assert_eq!(
            m.properties.get("UNIQ_CLIENT_MESSAGE_ID_KEYIDX"),
            Some(format!("U{i}").as_str())
        );
    }
    // Op records: tag d, body = half queue offset.
    let r = c.pull("x", "RMQ_SYS_TRANS_OP_HALF_TOPIC", 0, 0, 32);
    let mut op_bodies: Vec<String> = records(&r.body)
        .iter()
        .map(|m| {
            assert_eq!(m.tags(), Some("d"));
            String::from_utf8(m.body.clone()).unwrap()
        })
        .collect();
    op_bodies.sort();
    assert_eq!(op_bodies, vec!["0", "1", "2"]);
    let p = pending(&mut c);
    let pg = p["groups"][GROUP].as_array().expect("pending of the group");
    assert_eq!(pg.len(), 1);
    assert_eq!(pg[0]["msgId"], "U3");

    // After a restart the decisions still hold: the book comes back from the op queue.
    drop(c);
    assert!(broker.terminate(Duration::from_secs(20)).success());
    let (_broker2, port) = start_broker(&dir, &props, None);
    let mut c = Client::connect(port);
    for (h, d) in [(0, COMMIT), (1, COMMIT), (2, COMMIT), (0, ROLLBACK)] {
        let r = c.invoke(end_request(GROUP, &halves[h], d, true));
        assert_eq!(
            (r.code, r.remark.as_deref()),
            (response::SUCCESS, Some("transaction already decided")),
            "h{h}"
        );
    }
    assert_eq!(
        c.invoke(end_request(GROUP, &halves[3], COMMIT, false)).code,
        response::SUCCESS
    );
    wait_for(Duration::from_secs(5), || {
        (topic_messages(&mut c).len() == 3).then_some(())
    })
    .expect("h3 committed after the restart");
    assert_eq!(max_offset(&mut c, "RMQ_SYS_TRANS_OP_HALF_TOPIC", 0), 4);
    assert_eq!(pending(&mut c)["groups"].as_object().unwrap().len(), 0);
}

#[test]
fn reject_transaction_message_and_slave() {
    let (_tmp, dir) = temp_dir();
    let store = dir.join("store");
    let (_b, port) = start_broker(
        &dir,
        &broker_props(
            &store,
            "rejectTransactionMessage=true\ncheckTransactionMessageEnable=false\n",
        ),
        None,
    );
    let mut c = Client::connect(port);
    let r = c.invoke(half_request(GROUP, TOPIC, 0, b"x", "U"));
    assert_eq!(r.code, response::NO_PERMISSION);
    assert!(r
        .remark
        .unwrap()
        .contains("sending transaction message is forbidden"));
    // A plain send still works; batches may not carry transactional messages.
    assert_eq!(
        c.send_v2(TOPIC, 0, b"plain", None, None).code,
        response::SUCCESS
    );

    let (_tmp2, dir2) = temp_dir();
    let store2 = dir2.join("store");
    let (_slave, sport) = start_broker(
        &dir2,
        &broker_props(
            &store2,
            "brokerRole=SLAVE\nbrokerId=1\nhaMasterAddress=127.0.0.1:1\n",
        ),
        None,
    );
    let mut s = Client::connect(sport);
    let h = Half {
        uniq: "U".into(),
        queue_offset: 0,
        commit_log_offset: 0,
        msg_id: String::new(),
    };
    let r = s.invoke(end_request(GROUP, &h, COMMIT, false));
    assert_eq!(r.code, response::SLAVE_NOT_AVAILABLE);
    let r = s.invoke(RemotingCommand::request(request::END_TRANSACTION));
    assert_eq!(
        r.code,
        response::SYSTEM_ERROR,
        "a header without fields is refused clearly"
    );
}
