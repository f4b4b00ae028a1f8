//! Flow control of the send pool: with `sendMessageThreadPoolNums=1`, a send
//! queue of one (`sendThreadPoolQueueCapacity=1`) and SYNC_FLUSH, a flood of
//! pipelined sends on one raw connection gets SYSTEM_BUSY (code 2) at once for
//! the sends that do not fit; the rest are stored, the refused ones are not, and
//! the broker keeps serving afterwards.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::*;
use ferromq_server::remoting::codec::{decode_frame, encode};
use ferromq_server::remoting::{request, response};

const TOPIC: &str = "BusyTopic";
const FLOOD: i32 = 2000;

#[test]
fn a_full_send_queue_answers_system_busy_at_once_and_the_broker_keeps_serving() {
    let (_tmp, dir) = temp_dir();
    let props = broker_props(
        &dir.join("store"),
        "sendMessageThreadPoolNums=1\nsendThreadPoolQueueCapacity=1\nflushDiskType=SYNC_FLUSH\n",
    );
    let (_broker, port) = start_broker(&dir, &props, None);
    let mut c = Client::connect(port);
    // Create the topic first, so that every flooded send takes the same path.
    assert_eq!(
        c.send_v2(TOPIC, 0, b"warm-up", None, None).code,
        response::SUCCESS
    );

    // Write all the requests without reading a single answer: each is handled
    // concurrently by the broker, which has one send thread and room for one more.
    let mut frames = Vec::new();
    for i in 0..FLOOD {
        let mut req = Client::send_v2_req(TOPIC, 0, format!("flood-{i}").as_bytes(), &[]);
        req.opaque = 10_000 + i;
        frames.extend_from_slice(&encode(&req).unwrap());
    }
    let mut raw = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let writer = {
        let mut w = raw.try_clone().unwrap();
        std::thread::spawn(move || w.write_all(&frames))
    };
    let started = Instant::now();
    let (mut ok, mut busy) = (0usize, 0usize);
    let mut first_busy = None;
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..FLOOD {
        let mut len = [0u8; 4];
        raw.read_exact(&mut len).expect("an answer for every send");
        let mut frame = vec![0u8; u32::from_be_bytes(len) as usize];
        raw.read_exact(&mut frame).unwrap();
        let resp = decode_frame(&frame).unwrap();
        assert!(resp.is_response());
        assert!(seen.insert(resp.opaque), "one answer per request");
        match resp.code {
            response::SUCCESS => ok += 1,
            response::SYSTEM_BUSY => {
                busy += 1;
                first_busy.get_or_insert(started.elapsed());
                let remark = resp.remark.clone().unwrap_or_default();
                assert!(!remark.is_empty(), "SYSTEM_BUSY says why");
            }
            other => panic!("unexpected answer {other}: {:?}", resp.remark),
        }
    }
    writer.join().unwrap().unwrap();
    let elapsed = started.elapsed();
    eprintln!(
        "{FLOOD} pipelined sends: {ok} SEND_OK, {busy} SYSTEM_BUSY (first after {:?}), all answered in {elapsed:?}",
        first_busy.unwrap_or_default()
    );
    assert!(busy > 0, "a send queue of one must overflow under a flood");
    assert!(ok > 0, "the send thread keeps writing meanwhile");
    assert!(
        first_busy.unwrap() < Duration::from_secs(5),
        "SYSTEM_BUSY is answered at once, not after the queue drains"
    );

    // Still serving: a plain send succeeds, and exactly the accepted sends (plus
    // the warm-up and this one) are stored; none of the refused ones.
    let r = wait_for(Duration::from_secs(10), || {
        let r = c.send_v2(TOPIC, 0, b"after", None, None);
        (r.code == response::SUCCESS).then_some(r)
    })
    .expect("the broker serves sends after the flood");
    assert_eq!(r.code, response::SUCCESS);
    let want = (ok + 2) as i64;
    wait_for(Duration::from_secs(10), || {
        let r = c.invoke(Client::offset_req(request::GET_MAX_OFFSET, TOPIC, 0));
        (r.ext_fields.get_i64("offset").unwrap() == want).then_some(())
    })
    .unwrap_or_else(|| panic!("max offset should be {want}"));
    let mut offset = 0u64;
    let mut bodies = Vec::new();
    loop {
        let r = c.pull("busy-check", TOPIC, 0, offset, 32);
        if r.code != response::SUCCESS {
            break;
        }
        for m in records(&r.body) {
            offset = m.queue_offset + 1;
            bodies.push(String::from_utf8(m.body).unwrap());
        }
    }
    assert_eq!(bodies.len() as i64, want);
    assert_eq!(bodies.first().map(String::as_str), Some("warm-up"));
    assert_eq!(bodies.last().map(String::as_str), Some("after"));
}
