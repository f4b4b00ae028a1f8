//! Delayed messages: held on SCHEDULE_TOPIC_XXXX and delivered to their real
//! topic no earlier than their level's delay and within a second after it,
//! across a restart too, each exactly once.

mod common;

use std::time::{Duration, Instant};

use ferromq_engine::{GetStatus, Message, MessageFilter, MessageStore, StoreConfig};

fn cfg(dir: &std::path::Path) -> StoreConfig {
    let mut c = common::small_config(dir);
    c.message_delay_level = "1s 2s 3s".into();
    c
}

/// Wait for `n` messages on `topic` queue 0; returns (body, store time) pairs.
fn collect(store: &MessageStore, topic: &str, n: usize, secs: u64) -> Vec<(String, i64)> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let r = store
            .get_message("g", topic, 0, 0, 64, &MessageFilter::All)
            .unwrap();
        if r.status == GetStatus::Found && r.messages.len() >= n {
            return r
                .messages
                .iter()
                .map(|m| {
                    let e = m.decode().unwrap();
                    (String::from_utf8(e.body).unwrap(), e.store_timestamp_ms)
                })
                .collect();
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {n} delivered",
            r.messages.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn levels_deliver_on_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(cfg(dir.path())).unwrap();
    let mut sent = Vec::new();
    for level in 1..=3 {
        let r = store
            .put_message(
                &Message::new("Later", format!("level-{level}").into_bytes())
                    .with_tags("T")
                    .with_property("DELAY", level.to_string()),
            )
            .unwrap();
        sent.push((level, r.store_timestamp_ms));
    }
    // Not visible at once.
    std::thread::sleep(Duration::from_millis(300));
    let r = store
        .get_message("g", "Later", 0, 0, 32, &MessageFilter::All)
        .unwrap();
    assert_ne!(r.status, GetStatus::Found, "delayed messages are held back");
    let got = collect(&store, "Later", 3, 10);
    for (body, delivered_at) in &got {
        let level: i64 = body.trim_start_matches("level-").parse().unwrap();
        let put_at = sent.iter().find(|(l, _)| *l == level).unwrap().1;
        let late = delivered_at - put_at;
        assert!(
            late >= level * 1000,
            "level {level} delivered after {late} ms"
        );
        assert!(
            late < level * 1000 + 1000,
            "level {level} delivered after {late} ms"
        );
    }
    // Delivered messages keep their tags and lose DELAY.
    let r = store
        .get_message("g", "Later", 0, 0, 32, &MessageFilter::from_expression("T"))
        .unwrap();
    assert_eq!(r.messages.len(), 3);
    assert!(r.messages[0]
        .decode()
        .unwrap()
        .properties
        .get("DELAY")
        .is_none());
    store.shutdown().unwrap();
}

#[test]
fn waiting_messages_survive_a_restart_and_arrive_once() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = MessageStore::open(cfg(dir.path())).unwrap();
        for i in 0..20 {
            store
                .put_message(
                    &Message::new("Later", format!("m{i}").into_bytes())
                        .with_property("DELAY", "2"),
                )
                .unwrap();
        }
        store.shutdown().unwrap();
    }
    let store = MessageStore::open(cfg(dir.path())).unwrap();
    let got = collect(&store, "Later", 20, 10);
    std::thread::sleep(Duration::from_millis(500));
    let r = store
        .get_message("g", "Later", 0, 0, 64, &MessageFilter::All)
        .unwrap();
    assert_eq!(r.messages.len(), 20, "each exactly once");
    assert_eq!(got.len(), 20);
    store.shutdown().unwrap();
    // And after a further restart nothing is delivered again.
    let store = MessageStore::open(cfg(dir.path())).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(store.max_offset_in_queue("Later", 0), 20);
    let json = std::fs::read_to_string(dir.path().join("config/delayOffset.json")).unwrap();
    assert!(json.contains("offsetTable"), "{json}");
}
