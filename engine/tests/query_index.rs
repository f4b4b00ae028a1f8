//! The key index through the store: query by key and by UNIQ_KEY, collisions
//! filtered by the caller, time ranges, lookup by msgId, offsets by time, and
//! the index surviving a restart.

mod common;

use std::time::{Duration, Instant};

use ferromq_engine::{Message, MessageStore};

fn wait_dispatched(store: &MessageStore) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.stats().dispatched_offset < store.commit_log_max_offset() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn query_by_key_uniq_key_msg_id_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(common::small_config(dir.path())).unwrap();
    let t0 = ferromq_engine::message::now_ms();
    let mut ids = Vec::new();
    for i in 0..300u32 {
        let m = Message::new("Q", format!("body-{i}").into_bytes())
            .with_queue_id(i % 4)
            .with_keys([format!("order-{i}"), format!("user-{}", i % 10)])
            .with_property("UNIQ_CLIENT_MESSAGE_ID_KEYIDX", format!("UNIQ{i:08}"));
        ids.push(store.put_message(&m).unwrap().msg_id());
    }
    wait_dispatched(&store);
    let now = ferromq_engine::message::now_ms() + 1000;
    let found = store
        .query_messages_by_key("Q", "order-17", 32, 0, now)
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].body, b"body-17");
    let users = store
        .query_messages_by_key("Q", "user-3", 64, 0, now)
        .unwrap();
    assert_eq!(users.len(), 30);
    assert!(users.iter().all(|m| m.keys().contains(&"user-3")));
    let u = store
        .query_messages_by_key("Q", "UNIQ00000042", 32, 0, now)
        .unwrap();
    assert_eq!(u.len(), 1);
    assert_eq!(u[0].body, b"body-42");
    // Raw query: at most 64, RocketMQ's cap, and nothing for another topic or time.
    assert!(
        store
            .query_message("Q", "user-3", 1000, 0, now)
            .unwrap()
            .messages
            .len()
            <= 64
    );
    assert!(store
        .query_messages_by_key("Other", "order-17", 32, 0, now)
        .unwrap()
        .is_empty());
    assert!(store
        .query_message("Q", "order-17", 32, 0, t0 - 10_000)
        .unwrap()
        .messages
        .is_empty());
    // By msgId.
    let m = store.view_message_by_id(&ids[123]).unwrap().unwrap();
    assert_eq!(m.body, b"body-123");
    assert!(store.view_message_by_id("not-hex").is_err());
    // Offsets by store time.
    assert_eq!(store.offset_for_timestamp("Q", 0, 0).unwrap(), 0);
    assert_eq!(
        store.offset_for_timestamp("Q", 0, now + 60_000).unwrap(),
        75
    );
    let mid = store
        .look_message_by_offset(
            ferromq_engine::message::decode_offset_msg_id(&ids[160])
                .unwrap()
                .1,
        )
        .unwrap()
        .unwrap();
    let off = store
        .offset_for_timestamp("Q", 0, mid.store_timestamp_ms)
        .unwrap();
    assert!(
        off <= 40,
        "first message stored at or after that time is at or before queue offset 40: {off}"
    );
    assert!(store.earliest_message_time("Q", 0).unwrap().unwrap() >= t0);
    store.shutdown().unwrap();

    // The index survives a restart.
    let store = MessageStore::open(common::small_config(dir.path())).unwrap();
    let found = store
        .query_messages_by_key("Q", "order-299", 32, 0, now)
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(
        std::fs::read_dir(dir.path().join("index")).unwrap().count(),
        1
    );
}

#[test]
fn index_disabled_returns_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::small_config(dir.path());
    cfg.message_index_enable = false;
    let store = MessageStore::open(cfg).unwrap();
    store
        .put_message(&Message::new("Q", b"x".to_vec()).with_keys(["k"]))
        .unwrap();
    wait_dispatched(&store);
    assert!(store
        .query_message("Q", "k", 32, 0, i64::MAX)
        .unwrap()
        .messages
        .is_empty());
}
