//! Many producers over many topics and queues, with concurrent readers: every
//! message is read back exactly once, in order per queue, intact.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferromq_engine::{GetStatus, Message, MessageFilter, MessageStore};

const PRODUCERS: usize = 4;
const PER_PRODUCER: usize = 1500;
const TOPICS: [&str; 3] = ["OrderTopic", "PayTopic", "LogTopic"];
const QUEUES: u32 = 4;

fn body(p: usize, i: usize) -> Vec<u8> {
    format!("producer-{p}-message-{i}-{}", "x".repeat((i * 7) % 300)).into_bytes()
}

#[test]
fn every_message_read_once_in_order_and_intact() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(MessageStore::open(common::small_config(dir.path())).unwrap());
    let done = Arc::new(AtomicBool::new(false));

    // Readers follow every queue while producers write.
    let mut readers = Vec::new();
    for topic in TOPICS {
        for q in 0..QUEUES {
            let store = Arc::clone(&store);
            let done = Arc::clone(&done);
            readers.push(std::thread::spawn(move || {
                let mut got: Vec<(usize, usize)> = Vec::new();
                let mut offset = 0u64;
                let deadline = Instant::now() + Duration::from_secs(60);
                loop {
                    assert!(Instant::now() < deadline, "reader timed out");
                    let r = store
                        .get_message("g", topic, q, offset, 32, &MessageFilter::All)
                        .unwrap();
                    match r.status {
                        GetStatus::Found => {
                            for m in &r.messages {
                                assert_eq!(
                                    m.queue_offset,
                                    got.len() as u64,
                                    "queue offsets are dense"
                                );
                                let ext = m.decode().unwrap();
                                assert_eq!(ext.topic, topic);
                                assert_eq!(ext.queue_id, q);
                                assert_eq!(ext.queue_offset, m.queue_offset);
                                let p: usize =
                                    ext.properties.get("producer").unwrap().parse().unwrap();
                                let i: usize = ext.properties.get("seq").unwrap().parse().unwrap();
                                assert_eq!(ext.body, body(p, i));
                                assert_eq!(
                                    ext.tags(),
                                    Some(if i % 2 == 0 { "even" } else { "odd" })
                                );
                                assert_eq!(
                                    ext.keys(),
                                    vec![format!("k{p}-{i}"), format!("order-{i}")]
                                );
                                got.push((p, i));
                            }
                            offset = r.next_begin_offset;
                        }
                        GetStatus::OffsetOverflowOne
                        | GetStatus::NoMessageInQueue
                        | GetStatus::NoMatchedLogicQueue => {
                            if done.load(Ordering::Acquire)
                                && store.max_offset_in_queue(topic, q) == offset
                            {
                                break;
                            }
                            store.wait_for_messages(topic, q, offset, Duration::from_millis(50));
                        }
                        other => panic!("unexpected status {other:?}"),
                    }
                }
                (topic, q, got)
            }));
        }
    }

    let mut producers = Vec::new();
    for p in 0..PRODUCERS {
        let store = Arc::clone(&store);
        producers.push(std::thread::spawn(move || {
            for i in 0..PER_PRODUCER {
                let topic = TOPICS[(p + i) % TOPICS.len()];
                let q = (i as u32 / 3) % QUEUES;
                let msg = Message::new(topic, body(p, i))
                    .with_queue_id(q)
                    .with_tags(if i % 2 == 0 { "even" } else { "odd" })
                    .with_keys([format!("k{p}-{i}"), format!("order-{i}")])
                    .with_property("producer", p.to_string())
                    .with_property("seq", i.to_string());
                let r = store.put_message(&msg).unwrap();
                assert_eq!(r.status, ferromq_engine::PutStatus::PutOk);
            }
        }));
    }
    for p in producers {
        p.join().unwrap();
    }
    // Wait until everything is dispatched, then let readers finish.
    let end = store.commit_log_max_offset();
    let deadline = Instant::now() + Duration::from_secs(20);
    while store.stats().dispatched_offset < end {
        assert!(Instant::now() < deadline, "dispatch did not catch up");
        std::thread::sleep(Duration::from_millis(5));
    }
    done.store(true, Ordering::Release);

    let mut seen: HashMap<(usize, usize), usize> = HashMap::new();
    let mut per_producer_order: HashMap<(&str, u32, usize), usize> = HashMap::new();
    for r in readers {
        let (topic, q, got) = r.join().unwrap();
        for (p, i) in got {
            *seen.entry((p, i)).or_default() += 1;
            // Within one queue, each producer's messages arrive in the order it sent them.
            if let Some(prev) = per_producer_order.insert((topic, q, p), i) {
                assert!(prev < i, "out of order in {topic}-{q}: {prev} then {i}");
            }
        }
    }
    assert_eq!(seen.len(), PRODUCERS * PER_PRODUCER, "every message read");
    assert!(seen.values().all(|n| *n == 1), "no message read twice");
    assert!(
        common::commitlog_files(dir.path()).len() > 5,
        "the log rolled over several files"
    );
    store.shutdown().unwrap();
}
