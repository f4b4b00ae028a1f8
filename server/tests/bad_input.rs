//! (d) Bad input gets a clear answer, or, for malformed frames, a closed
//! connection; the broker keeps serving other connections.

mod common;

use std::io::Write;
use std::time::Duration;

use common::*;
use ferromq_server::remoting::{request, response, RemotingCommand};

const TOPIC: &str = "BadInput";

fn still_serving(port: u16) {
    let mut c = Client::connect(port);
    let r = c.invoke(Client::offset_req(request::GET_MAX_OFFSET, TOPIC, 0));
    assert_eq!(
        r.code,
        response::SUCCESS,
        "broker still serves a new connection"
    );
}

#[test]
fn bad_input_is_answered_or_closed_and_the_broker_keeps_serving() {
    let (_tmp, dir) = temp_dir();
    let props = broker_props(&dir.join("store"), "maxMessageSize=65536\n");
    let (mut broker, port) = start_broker(&dir, &props, None);
    let mut c = Client::connect(port);
    assert_eq!(
        c.send_v2(TOPIC, 0, b"one", None, None).code,
        response::SUCCESS
    );

    // Garbage: a small length with an unknown serialize type, then junk.
    let mut g = Client::connect(port);
    g.write_raw(&[0, 0, 0, 12, 0x5A, 0, 0, 4, 1, 2, 3, 4, 5, 6, 7, 8]);
    assert!(
        g.closed_within(Duration::from_secs(5)),
        "garbage closes the connection"
    );
    still_serving(port);

    // An HTTP request: its first four bytes read as a 1.2 GB length.
    let mut h = Client::connect(port);
    h.write_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        h.closed_within(Duration::from_secs(5)),
        "HTTP closes the connection"
    );

    // A huge length prefix is refused from the prefix alone.
    let mut huge = Client::connect(port);
    huge.write_raw(&0x7FFF_FFFFi32.to_be_bytes());
    assert!(
        huge.closed_within(Duration::from_secs(5)),
        "huge frame closes the connection"
    );
    let mut neg = Client::connect(port);
    neg.write_raw(&(-5i32).to_be_bytes());
    assert!(
        neg.closed_within(Duration::from_secs(5)),
        "negative length closes the connection"
    );
    still_serving(port);

    // A truncated frame: announce 100 bytes, send 20, close the write side.
    let mut t = Client::connect(port);
    let mut f = 100i32.to_be_bytes().to_vec();
    f.extend_from_slice(&[0u8; 20]);
    t.write_raw(&f);
    t.stream.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(
        t.closed_within(Duration::from_secs(5)),
        "truncated frame closes the connection"
    );

    // Malformed JSON header.
    let mut j = Client::connect(port);
    let hdr = b"{\"code\":";
    let mut f = ((4 + hdr.len()) as i32).to_be_bytes().to_vec();
    f.extend_from_slice(&(hdr.len() as u32).to_be_bytes());
    f.extend_from_slice(hdr);
    j.write_raw(&f);
    assert!(
        j.closed_within(Duration::from_secs(5)),
        "bad JSON closes the connection"
    );
    still_serving(port);

    // An unknown code: REQUEST_CODE_NOT_SUPPORTED, and the connection stays usable.
    let r = c.invoke(RemotingCommand::request(9999));
    assert_eq!(r.code, response::REQUEST_CODE_NOT_SUPPORTED);
    assert!(r.remark.unwrap().contains("9999"));

    // A missing required header field: SYSTEM_ERROR naming the field.
    let r = c.invoke(RemotingCommand::request(request::GET_MAX_OFFSET).with_ext("topic", TOPIC));
    assert_eq!(r.code, response::SYSTEM_ERROR);
    assert!(r.remark.unwrap().contains("queueId"));
    let r = c
        .invoke(Client::pull_req("g", TOPIC, 0, 0, 32, 0x4, 0, "*").with_ext("queueOffset", "abc"));
    assert_eq!(r.code, response::SYSTEM_ERROR);
    assert!(r.remark.unwrap().contains("queueOffset"));

    // An oversize message: MESSAGE_ILLEGAL.
    let r = c.send_v2(TOPIC, 0, &vec![b'x'; 70_000], None, None);
    assert_eq!(r.code, response::MESSAGE_ILLEGAL, "{:?}", r.remark);
    // An illegal topic name and a forbidden system topic.
    assert_eq!(
        c.send_v2("bad topic!", 0, b"x", None, None).code,
        response::SYSTEM_ERROR
    );
    assert_eq!(
        c.send_v2("SCHEDULE_TOPIC_XXXX", 0, b"x", None, None).code,
        response::NO_PERMISSION
    );
    // A queue id out of range.
    assert_eq!(
        c.send_v2(TOPIC, 99, b"x", None, None).code,
        response::SYSTEM_ERROR
    );

    // Pulls at illegal offsets and of unknown topics.
    wait_for(Duration::from_secs(10), || {
        let r = c.invoke(Client::offset_req(request::GET_MAX_OFFSET, TOPIC, 0));
        (r.ext_fields.get_i64("offset").unwrap() == 1).then_some(())
    })
    .expect("dispatched");
    let r = c.pull("g", TOPIC, 0, 100, 32);
    assert_eq!(r.code, response::PULL_OFFSET_MOVED);
    assert_eq!(r.remark.as_deref(), Some("OFFSET_OVERFLOW_BADLY"));
    let r = c.pull("g", TOPIC, 1, 5, 32);
    assert_eq!(
        r.code,
        response::PULL_OFFSET_MOVED,
        "empty queue, offset != 0"
    );
    let r = c.pull("g", "NoSuchTopic", 0, 0, 32);
    assert_eq!(r.code, response::TOPIC_NOT_EXIST);
    let r = c.pull("g", TOPIC, 42, 0, 32);
    assert_eq!(r.code, response::SYSTEM_ERROR);

    // A JSON header written by hand the way loose clients write it: numbers and
    // booleans as extFields values, no serializeTypeCurrentRPC, language as a number.
    let hdr = br#"{"code":30,"language":9,"opaque":77,"flag":0,"version":0,"extFields":{"topic":"BadInput","queueId":0,"x":true}}"#;
    let mut f = ((4 + hdr.len()) as i32).to_be_bytes().to_vec();
    f.extend_from_slice(&(hdr.len() as u32).to_be_bytes());
    f.extend_from_slice(hdr);
    c.stream.write_all(&f).unwrap();
    let r = c.read();
    assert_eq!((r.code, r.opaque), (response::SUCCESS, 77));
    assert_eq!(r.ext_fields.get_i64("offset").unwrap(), 1);

    // Binary (ROCKETMQ) headers are answered in kind.
    let mut req = Client::offset_req(request::GET_MAX_OFFSET, TOPIC, 0);
    req.serialize_type = ferromq_server::remoting::SerializeType::RocketMq;
    let r = c.invoke(req);
    assert_eq!(
        r.serialize_type,
        ferromq_server::remoting::SerializeType::RocketMq
    );
    assert_eq!(r.ext_fields.get_i64("offset").unwrap(), 1);

    still_serving(port);
    assert!(
        broker.child.try_wait().unwrap().is_none(),
        "broker process still running"
    );
}
