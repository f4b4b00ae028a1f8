//! After a crash without a checkpoint, with one consume queue and the whole
//! key index lost, reopening rebuilds both from the commitlog: every message is
//! read back through its queue in order with its tag filter working, every key
//! is found again, and queue offsets continue where they were. (The recovery
//! walk keeps what re-dispatch needs of each record; this checks that path
//! builds the same queues and index as reading the log does.)

mod common;

use std::time::{Duration, Instant};

use ferromq_engine::{GetStatus, Message, MessageFilter, MessageStore};

const N: u32 = 1200;
const QUEUES: u32 = 3;

fn wait_dispatched(store: &MessageStore) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while store.stats().dispatched_offset < store.commit_log_max_offset() {
        assert!(Instant::now() < deadline, "dispatch did not catch up");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn message(i: u32) -> Message {
    let topic = if i % 5 == 0 { "Other" } else { "Main" };
    Message::new(topic, format!("body-{i}").into_bytes())
        .with_queue_id(i % QUEUES)
        .with_tags(if i % 2 == 0 { "even" } else { "odd" })
        .with_keys([format!("k-{i}")])
}

/// Every message of `topic`/`queue` through the consume queue, as i values.
fn read_queue(store: &MessageStore, topic: &str, queue: u32, filter: &MessageFilter) -> Vec<u32> {
    let mut out = Vec::new();
    let mut offset = 0;
    for _ in 0..10_000 {
        let r = store
            .get_message("g", topic, queue, offset, 32, filter)
            .unwrap();
        for m in &r.messages {
            let b = m.decode().unwrap().body;
            let i: u32 = std::str::from_utf8(&b[5..]).unwrap().parse().unwrap();
            out.push(i);
        }
        if r.status != GetStatus::Found && r.status != GetStatus::NoMatchedMessage {
            break;
        }
        offset = r.next_begin_offset;
    }
    out
}

#[test]
fn lost_queue_and_index_are_rebuilt_from_the_walked_log() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = MessageStore::open(common::small_config(dir.path())).unwrap();
        for i in 0..N {
            store.put_message(&message(i)).unwrap();
        }
        wait_dispatched(&store);
        store.shutdown().unwrap();
    }
    // A crash that lost the checkpoint, one queue and the index.
    std::fs::write(dir.path().join("abort"), b"").unwrap();
    std::fs::remove_file(dir.path().join("checkpoint")).unwrap();
    std::fs::remove_dir_all(dir.path().join("consumequeue/Main/1")).unwrap();
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();

    let store = MessageStore::open(common::small_config(dir.path())).unwrap();
    let report = store.recovery_report().clone();
    assert!(report.abnormal);
    assert!(report.records_redispatched >= u64::from(N), "{report:?}");
    for topic in ["Main", "Other"] {
        for q in 0..QUEUES {
            let want: Vec<u32> = (0..N)
                .filter(|i| message(*i).topic == topic && i % QUEUES == q)
                .collect();
            assert_eq!(
                read_queue(&store, topic, q, &MessageFilter::All),
                want,
                "{topic}/{q}"
            );
            let even: Vec<u32> = want.iter().copied().filter(|i| i % 2 == 0).collect();
            assert_eq!(
                read_queue(&store, topic, q, &MessageFilter::from_expression("even")),
                even,
                "{topic}/{q} tag filter"
            );
        }
    }
    let now = ferromq_engine::message::now_ms() + 1000;
    for i in (0..N).step_by(97) {
        let t = message(i).topic;
        let found = store
            .query_messages_by_key(&t, &format!("k-{i}"), 8, 0, now)
            .unwrap();
        assert_eq!(found.len(), 1, "key k-{i}");
        assert_eq!(found[0].body, format!("body-{i}").into_bytes());
    }
    // Queue offsets continue after the rebuilt queue's last unit.
    let lost_queue_len = (0..N).filter(|i| i % 5 != 0 && i % QUEUES == 1).count() as u64;
    let r = store
        .put_message(&Message::new("Main", b"after".to_vec()).with_queue_id(1))
        .unwrap();
    assert_eq!(r.queue_offset, lost_queue_len);
}
