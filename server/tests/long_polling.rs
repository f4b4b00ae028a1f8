//! (c) A pull with the suspend flag, parked at the max offset, returns as soon as
//! a message is sent, well before its suspend timeout; with nothing sent it
//! returns PULL_NOT_FOUND when the timeout passes.

mod common;

use std::time::{Duration, Instant};

use common::*;
use ferromq_server::remoting::{request, response};

const TOPIC: &str = "LongPoll";

#[test]
fn parked_pull_wakes_on_arrival() {
    let (_tmp, dir) = temp_dir();
    let (_broker, port) = start_broker(&dir, &broker_props(&dir.join("store"), ""), None);
    let mut producer = Client::connect(port);
    assert_eq!(
        producer.send_v2(TOPIC, 0, b"first", Some("t"), None).code,
        response::SUCCESS
    );
    wait_for(Duration::from_secs(10), || {
        let r = producer.invoke(Client::offset_req(request::GET_MAX_OFFSET, TOPIC, 0));
        (r.ext_fields.get_i64("offset").unwrap() == 1).then_some(())
    })
    .expect("first message dispatched");

    // Park a pull at offset 1 (== max) with a 20 s suspend timeout.
    let consumer = std::thread::spawn(move || {
        let mut c = Client::connect(port);
        let start = Instant::now();
        let r = c.invoke(Client::pull_req(
            "lp-group",
            TOPIC,
            0,
            1,
            32,
            0x2 | 0x4,
            20_000,
            "*",
        ));
        (r, start.elapsed())
    });
    std::thread::sleep(Duration::from_millis(500));
    let sent_at = Instant::now();
    assert_eq!(
        producer.send_v2(TOPIC, 0, b"second", Some("t"), None).code,
        response::SUCCESS
    );
    let (r, waited) = consumer.join().unwrap();
    let after_send = sent_at.elapsed();
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let msgs = records(&r.body);
    assert_eq!(msgs[0].body, b"second");
    assert_eq!(msgs[0].queue_offset, 1);
    assert!(
        waited >= Duration::from_millis(400),
        "the pull was held ({waited:?})"
    );
    assert!(
        after_send < Duration::from_secs(3),
        "woken by the arrival, not the 20 s timeout ({after_send:?} after the send)"
    );

    // Nothing arrives: held for about the suspend timeout, then PULL_NOT_FOUND.
    let mut c = Client::connect(port);
    let start = Instant::now();
    let r = c.invoke(Client::pull_req(
        "lp-group",
        TOPIC,
        0,
        2,
        32,
        0x2 | 0x4,
        1000,
        "*",
    ));
    let took = start.elapsed();
    assert_eq!(r.code, response::PULL_NOT_FOUND);
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(10),
        "{took:?}"
    );

    // Without the suspend flag the answer is immediate.
    let start = Instant::now();
    let r = c.invoke(Client::pull_req(
        "lp-group", TOPIC, 0, 2, 32, 0x4, 20_000, "*",
    ));
    assert_eq!(r.code, response::PULL_NOT_FOUND);
    assert!(start.elapsed() < Duration::from_secs(2));
}
