//! A record whose body fails its CRC is never sent: QUERY_MESSAGE and
//! VIEW_MESSAGE_BY_ID answer SYSTEM_ERROR naming the damaged commitlog file,
//! with no body, and the broker keeps serving the intact records around it.

mod common;

use std::time::Duration;

use common::*;
use ferromq_engine::message::decode_offset_msg_id;
use ferromq_server::remoting::{request, response, RemotingCommand};

const TOPIC: &str = "CorruptTopic";
const N: usize = 30;
/// With the broker's 1 MiB test files, five records per file: the damaged one
/// (in the first file) lies outside the last three files a restart re-checks.
const BODY: usize = 200_000;

fn body(i: usize) -> Vec<u8> {
    (0..BODY).map(|j| (i * 7 + j % 251) as u8).collect()
}

fn query(c: &mut Client, key: &str) -> RemotingCommand {
    c.invoke(
        RemotingCommand::request(request::QUERY_MESSAGE)
            .with_ext("topic", TOPIC)
            .with_ext("key", key)
            .with_ext("maxNum", 32)
            .with_ext("beginTimestamp", 0)
            .with_ext("endTimestamp", i64::MAX),
    )
}

fn view(c: &mut Client, offset: u64) -> RemotingCommand {
    c.invoke(RemotingCommand::request(request::VIEW_MESSAGE_BY_ID).with_ext("offset", offset))
}

#[test]
fn damaged_record_is_an_error_response_not_bytes() {
    let (_tmp, dir) = temp_dir();
    let store = dir.join("store");
    let props = broker_props(&store, "");
    let (mut broker, port) = start_broker(&dir, &props, None);
    let mut c = Client::connect(port);
    let mut offsets = Vec::new();
    for i in 0..N {
        let r = c.send_v2(TOPIC, 0, &body(i), None, Some(&format!("ck-{i}")));
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
        let (_, off) = decode_offset_msg_id(r.ext_fields.get_str("msgId").unwrap()).unwrap();
        offsets.push(off);
    }
    wait_for(Duration::from_secs(20), || {
        (query(&mut c, &format!("ck-{}", N - 1)).code == response::SUCCESS).then_some(())
    })
    .expect("last key indexed");
    drop(c);
    assert!(broker.terminate(Duration::from_secs(30)).success());

    // Flip one byte in the middle of record 1's body (first commitlog file).
    let file = store.join("commitlog/00000000000000000000");
    assert!(offsets[1] + BODY as u64 / 2 < 1 << 20);
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[(offsets[1] + BODY as u64 / 2) as usize] ^= 0x04;
    std::fs::write(&file, bytes).unwrap();

    let (_broker, port) = start_broker(&dir, &props, None);
    let mut c = Client::connect(port);
    for (what, r) in [
        ("QUERY_MESSAGE", query(&mut c, "ck-1")),
        ("VIEW_MESSAGE_BY_ID", view(&mut c, offsets[1])),
    ] {
        assert_eq!(r.code, response::SYSTEM_ERROR, "{what}: {:?}", r.remark);
        assert!(r.body.is_empty(), "{what}: no bytes of a damaged record");
        let remark = r.remark.unwrap_or_default();
        assert!(
            remark.contains("corruption") && remark.contains("00000000000000000000"),
            "{what}: remark names the corruption and the file: {remark}"
        );
        assert!(remark.contains("CRC"), "{what}: {remark}");
    }
    // The records around it are served.
    for i in [0, 2] {
        let r = view(&mut c, offsets[i]);
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
        assert_eq!(records(&r.body)[0].body, body(i));
        let r = query(&mut c, &format!("ck-{i}"));
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
        let found = records(&r.body);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].body, body(i));
    }
}
