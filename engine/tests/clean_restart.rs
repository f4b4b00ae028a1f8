//! After shutdown and reopen every message and consume queue is as it was, and
//! the store directory is locked against a second opener.

mod common;

use ferromq_engine::{Error, GetStatus, Message, MessageFilter, MessageStore};

fn read_all(store: &MessageStore, topic: &str, q: u32) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut offset = store.min_offset_in_queue(topic, q);
    loop {
        let r = store
            .get_message("g", topic, q, offset, 32, &MessageFilter::All)
            .unwrap();
        if r.status != GetStatus::Found {
            break;
        }
        for m in &r.messages {
            out.push(m.decode().unwrap().body);
        }
        offset = r.next_begin_offset;
    }
    out
}

#[test]
fn restart_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let mut expected: Vec<Vec<Vec<u8>>> = vec![Vec::new(); 4];
    {
        let store = MessageStore::open(common::small_config(dir.path())).unwrap();
        for i in 0..1200u32 {
            let body = format!("m{i}-{}", "y".repeat((i % 97) as usize)).into_bytes();
            store
                .put_message(&Message::new("Restart", body.clone()).with_queue_id(i % 4))
                .unwrap();
            expected[(i % 4) as usize].push(body);
        }
        store.shutdown().unwrap();
        assert!(
            !dir.path().join("abort").exists(),
            "clean shutdown removes the abort marker"
        );
    }
    for round in 0..2 {
        let store = MessageStore::open(common::small_config(dir.path())).unwrap();
        let rep = store.recovery_report().clone();
        assert!(!rep.abnormal);
        assert_eq!(rep.commit_log.bytes_truncated, 0);
        assert_eq!(rep.consume_queue_units_truncated, 0);
        assert_eq!(rep.consume_queues, 4);
        for q in 0..4 {
            assert_eq!(
                store.max_offset_in_queue("Restart", q),
                expected[q as usize].len() as u64
            );
            assert_eq!(
                read_all(&store, "Restart", q),
                expected[q as usize],
                "round {round} queue {q}"
            );
        }
        assert_eq!(store.topic_config("Restart").unwrap().write_queue_nums, 4);
        // New puts continue the queue offsets.
        let r = store
            .put_message(&Message::new("Restart", b"after".to_vec()).with_queue_id(1))
            .unwrap();
        assert_eq!(r.queue_offset, expected[1].len() as u64);
        expected[1].push(b"after".to_vec());
        store.shutdown().unwrap();
    }
}

#[test]
fn second_opener_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(common::small_config(dir.path())).unwrap();
    let err = MessageStore::open(common::small_config(dir.path())).unwrap_err();
    assert!(matches!(err, Error::Locked(_)), "{err}");
    store.shutdown().unwrap();
    // Released by shutdown.
    let again = MessageStore::open(common::small_config(dir.path())).unwrap();
    again.shutdown().unwrap();
}

#[test]
fn drop_without_shutdown_still_shuts_down_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = MessageStore::open(common::small_config(dir.path())).unwrap();
        store
            .put_message(&Message::new("D", b"x".to_vec()))
            .unwrap();
    }
    let store = MessageStore::open(common::small_config(dir.path())).unwrap();
    assert!(!store.recovery_report().abnormal);
    assert_eq!(read_all(&store, "D", 0), vec![b"x".to_vec()]);
}
