//! The dispatch position is a promise: every record before it has its
//! consume-queue unit written. Dispatch collects units per queue and writes
//! them a batch at a time; a reader that sees the position move past a record
//! must find that record through its queue, never a moment later.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferromq_engine::{GetStatus, Message, MessageFilter, MessageStore};

const TOPICS: [&str; 2] = ["Alpha", "Beta"];
const QUEUES: u32 = 3;
const MESSAGES: usize = 20_000;

/// Per put, in log order: (end offset in the log, topic, queue, queue offset).
type Puts = Arc<Mutex<Vec<(u64, &'static str, u32, u64)>>>;

#[test]
fn a_record_before_the_dispatch_position_is_in_its_queue() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(MessageStore::open(common::small_config(dir.path())).unwrap());
    for t in TOPICS {
        store.create_topic(t, QUEUES).unwrap();
    }
    let puts: Puts = Arc::default();
    let done = Arc::new(AtomicBool::new(false));

    let producer = {
        let (store, puts, done) = (Arc::clone(&store), Arc::clone(&puts), Arc::clone(&done));
        std::thread::spawn(move || {
            for i in 0..MESSAGES {
                let topic = TOPICS[i % TOPICS.len()];
                let queue = (i / TOPICS.len()) as u32 % QUEUES;
                let body = vec![b'x'; 100 + i % 400];
                let r = store
                    .put_message(&Message::new(topic, body).with_queue_id(queue))
                    .unwrap();
                let end = r.commit_log_offset + u64::from(r.wrote_bytes);
                puts.lock()
                    .unwrap()
                    .push((end, topic, queue, r.queue_offset));
            }
            done.store(true, Ordering::Release);
        })
    };

    // Check while the producer runs, then once more after it is done.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut checks = 0usize;
    let mut last_checked = 0u64;
    loop {
        assert!(Instant::now() < deadline, "dispatch did not catch up");
        let finished = done.load(Ordering::Acquire);
        let position = store.stats().dispatched_offset;
        // The last put of each queue that ends at or before the position.
        let mut latest: HashMap<(&str, u32), u64> = HashMap::new();
        {
            let puts = puts.lock().unwrap();
            let n = puts.partition_point(|p| p.0 <= position);
            for &(_, topic, queue, queue_offset) in &puts[..n] {
                latest.insert((topic, queue), queue_offset);
            }
        }
        for ((topic, queue), queue_offset) in latest {
            let r = store
                .get_message("g", topic, queue, queue_offset, 1, &MessageFilter::All)
                .unwrap();
            assert_eq!(
                r.status,
                GetStatus::Found,
                "{topic}/{queue} offset {queue_offset} is before dispatch position {position} \
                 but not in its queue"
            );
            assert_eq!(r.messages[0].queue_offset, queue_offset);
        }
        if position > last_checked {
            checks += 1;
            last_checked = position;
        }
        if finished && position >= puts.lock().unwrap().last().map_or(0, |p| p.0) {
            break;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    producer.join().unwrap();
    assert!(
        checks >= 2,
        "the position was seen to move only {checks} times"
    );
    // Every queue ends where its puts ended.
    for t in TOPICS {
        for q in 0..QUEUES {
            let puts_here = puts
                .lock()
                .unwrap()
                .iter()
                .filter(|p| p.1 == t && p.2 == q)
                .count() as u64;
            assert_eq!(store.max_offset_in_queue(t, q), puts_here, "{t}/{q}");
        }
    }
}

#[test]
fn records_before_a_corrupt_one_stay_readable_when_dispatch_stops() {
    // A master's log, copied to a slave together with garbage after it (a
    // damaged stream): dispatch reads the good records and the garbage in one
    // pass, fails on the garbage and fences the slave, but the good records'
    // units are written and the position stops exactly at the garbage.
    const GOOD: u64 = 40;
    let master_dir = tempfile::tempdir().unwrap();
    let master = MessageStore::open(common::small_config(master_dir.path())).unwrap();
    master.create_topic("T", 1).unwrap();
    let mut end = 0;
    for i in 0..GOOD {
        let r = master
            .put_message(&Message::new("T", format!("message {i}").into_bytes()))
            .unwrap();
        end = r.commit_log_offset + u64::from(r.wrote_bytes);
    }
    let mut stream = master.read_commit_log(0, end as usize).unwrap().to_vec();
    assert_eq!(stream.len() as u64, end, "the records fit one small file");
    // A record header with a size that fits and a bad magic code.
    stream.extend_from_slice(&64i32.to_be_bytes());
    stream.extend_from_slice(&0x0bad_c0dei32.to_be_bytes());
    stream.extend_from_slice(&[7u8; 56]);

    let slave_dir = tempfile::tempdir().unwrap();
    let mut cfg = common::small_config(slave_dir.path());
    cfg.broker_role = ferromq_engine::BrokerRole::Slave;
    let slave = MessageStore::open(cfg).unwrap();
    slave.append_commit_log(0, &stream).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while slave.stats().fenced.is_none() {
        assert!(
            Instant::now() < deadline,
            "dispatch never reached the garbage"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let stats = slave.stats();
    assert!(
        stats.fenced.as_deref().unwrap().contains("invalid record"),
        "{:?}",
        stats.fenced
    );
    assert_eq!(
        stats.dispatched_offset, end,
        "the position stops at the garbage"
    );
    assert_eq!(
        slave.max_offset_in_queue("T", 0),
        GOOD,
        "every good record is in its queue"
    );
    let mut offset = 0u64;
    while offset < GOOD {
        let r = slave
            .get_message("g", "T", 0, offset, 32, &MessageFilter::All)
            .unwrap();
        assert_eq!(r.status, GetStatus::Found, "at {offset}");
        for m in &r.messages {
            let body = m.decode().unwrap().body;
            assert_eq!(body, format!("message {}", m.queue_offset).into_bytes());
            assert_eq!(m.queue_offset, offset);
            offset += 1;
        }
    }
}

/// `wait_dispatched` is read-your-write: once it returns true the put is in
/// its queue, for every put of a stream, without any other wait. A put to a
/// store that will never dispatch it (shut down) times out with false.
#[test]
fn wait_dispatched_makes_each_put_readable_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(common::small_config(dir.path())).unwrap();
    store.create_topic("Orders", 2).unwrap();
    for i in 0..500u32 {
        let body = format!("order-{i}").into_bytes();
        let put = store
            .put_message(&Message::new("Orders", body.clone()).with_queue_id(i % 2))
            .unwrap();
        assert!(
            store.wait_dispatched(&put, Duration::from_secs(10)),
            "put {i} not dispatched"
        );
        let got = store
            .get_message(
                "g",
                "Orders",
                i % 2,
                put.queue_offset,
                1,
                &MessageFilter::All,
            )
            .unwrap();
        assert_eq!(got.status, GetStatus::Found, "put {i}");
        assert_eq!(got.messages.len(), 1);
        assert_eq!(got.messages[0].decode().unwrap().body, body);
    }
    // A put result past the end of the log is never dispatched.
    let mut beyond = store
        .put_message(&Message::new("Orders", b"last".to_vec()))
        .unwrap();
    beyond.commit_log_offset += 1 << 30;
    let t = Instant::now();
    assert!(!store.wait_dispatched(&beyond, Duration::from_millis(300)));
    assert!(t.elapsed() >= Duration::from_millis(300));
    store.shutdown().unwrap();
}
