//! Consume-queue damage of every kind, on a real broker's store with several
//! consume-queue files per queue: after a restart of the broker every
//! acknowledged message is delivered by pulls from offset 0 to the end,
//! nothing skipped, and the runtime figures count the damaged queue.

mod common;
mod damage_support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use damage_support::{copy_dir, pull_to_end};
use ferromq_server::remoting::response;

const TOPIC: &str = "CqDamage";
/// Acknowledged messages on queue 0: with 300 units per consume-queue file
/// (`mapedFileSizeConsumeQueue=6000`), five files.
const N: usize = 1500;

fn body(i: usize) -> Vec<u8> {
    format!("cqd-{i:05}-{}", "b".repeat(60 + i % 50)).into_bytes()
}

/// A stopped broker's store holding N acknowledged messages on queue 0 (and a
/// few on queue 1).
fn populate(dir: &Path) -> PathBuf {
    let store = dir.join("store");
    let (mut broker, port) = start_broker(dir, &broker_props(&store, ""), None);
    let mut c = Client::connect(port);
    for i in 0..N {
        let r = c.send_v2(TOPIC, 0, &body(i), None, None);
        assert_eq!(r.code, response::SUCCESS, "send {i}: {:?}", r.remark);
    }
    for i in 0..10 {
        let r = c.send_v2(TOPIC, 1, &body(i), None, None);
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    }
    drop(c);
    assert!(broker.terminate(Duration::from_secs(30)).success());
    store
}

fn queue_file(store: &Path, index: u64) -> PathBuf {
    store
        .join("consumequeue")
        .join(TOPIC)
        .join("0")
        .join(format!("{:020}", index * 6000))
}

/// Start a broker on a copy of `base` damaged by `damage`; every message must
/// come back in order and the damage must be counted.
fn check(base: &Path, what: &str, damage: impl FnOnce(&Path)) {
    let (_tmp, dir) = temp_dir();
    let store = dir.join("store");
    copy_dir(base, &store);
    assert_eq!(
        std::fs::read_dir(store.join("consumequeue").join(TOPIC).join("0"))
            .unwrap()
            .count(),
        5,
        "{what}: five consume-queue files"
    );
    damage(&store);
    let (mut broker, port) = start_broker(&dir, &broker_props(&store, ""), None);
    let info = runtime_info(port);
    assert_eq!(
        info.get("consumeQueuesDamagedAtStart").map(String::as_str),
        Some("1"),
        "{what}: the damaged queue is counted"
    );
    let mut c = Client::connect(port);
    let r = c.invoke(Client::offset_req(
        ferromq_server::remoting::request::GET_MIN_OFFSET,
        TOPIC,
        0,
    ));
    assert_eq!(
        r.ext_fields.get_str("offset").ok(),
        Some("0"),
        "{what}: min offset"
    );
    let got = pull_to_end(&mut c, TOPIC, 0, 0, 200);
    assert_eq!(got.messages.len(), N, "{what}: every message delivered");
    for (i, (q, b)) in got.messages.iter().enumerate() {
        assert_eq!(*q, i as u64, "{what}: nothing skipped");
        assert!(*b == body(i), "{what}: body of {i}");
    }
    let got1 = pull_to_end(&mut c, TOPIC, 1, 0, 10);
    assert_eq!(got1.messages.len(), 10, "{what}: queue 1");
    // Sends go on after the rebuilt queue's end.
    let r = c.send_v2(TOPIC, 0, b"after", None, None);
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    assert_eq!(
        r.ext_fields.get_str("queueOffset").ok(),
        Some(N.to_string().as_str()),
        "{what}"
    );
    drop(c);
    assert!(
        broker.terminate(Duration::from_secs(30)).success(),
        "{what}"
    );
}

fn set_len(path: &Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

#[test]
fn every_kind_of_consume_queue_damage_is_rebuilt_and_nothing_is_skipped() {
    let (_tmp, dir) = temp_dir();
    let base = populate(&dir);
    check(&base, "400 random bytes in an old file", |store| {
        // Queue offsets 310..330: inside the second of five files.
        let path = queue_file(store, 1);
        let mut bytes = std::fs::read(&path).unwrap();
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for b in &mut bytes[200..600] {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        std::fs::write(&path, bytes).unwrap();
        // As after a crash: only then does the start scan every file (a clean
        // start scans the last three; reads repair older damage).
        std::fs::write(store.join("abort"), b"").unwrap();
    });
    check(&base, "first file deleted", |store| {
        std::fs::remove_file(queue_file(store, 0)).unwrap();
    });
    check(&base, "middle file deleted", |store| {
        std::fs::remove_file(queue_file(store, 2)).unwrap();
    });
    check(&base, "file truncated", |store| {
        set_len(&queue_file(store, 1), 4000)
    });
    check(&base, "file extended", |store| {
        set_len(&queue_file(store, 3), 8000)
    });
}
