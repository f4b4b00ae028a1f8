//! Queue ids and offsets are data: records in the commitlog (crafted, then
//! found by recovery after a crash) whose queue id is -1 or 2,000,000,000,
//! whose queue offset is negative, or whose offset jumps 2^40 units past the
//! end of an existing queue are refused by dispatch: no panic, no queue
//! folder for them, no absurd queue count in the topic table, no blank fill
//! of terabytes; they stay in the log, the refusals are counted, and the good
//! records around them are dispatched. A small gap is still blank-filled and
//! a queue that starts late still starts at its file.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use ferromq_engine::{GetStatus, Message, MessageFilter, MessageStore};

/// Byte position of the queue id in a record.
const QUEUE_ID_POS: usize = 12;
/// Byte position of the queue offset in a record.
const QUEUE_OFFSET_POS: usize = 20;
/// 2^40: a jump of terabytes of blank units.
const FAR: u64 = 1 << 40;

/// Set the queue id and/or offset of the record at `at` in `log`.
fn patch(log: &mut [u8], at: u64, queue_id: Option<i32>, queue_offset: Option<i64>) {
    let at = at as usize;
    if let Some(q) = queue_id {
        log[at + QUEUE_ID_POS..at + QUEUE_ID_POS + 4].copy_from_slice(&q.to_be_bytes());
    }
    if let Some(o) = queue_offset {
        log[at + QUEUE_OFFSET_POS..at + QUEUE_OFFSET_POS + 8].copy_from_slice(&o.to_be_bytes());
    }
}

/// Bytes of every file under `dir`.
fn du(dir: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        total += if m.is_dir() { du(&e.path()) } else { m.len() };
    }
    total
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn bodies(store: &MessageStore, queue_id: u32, from: u64) -> Vec<String> {
    let r = store
        .get_message("g", "Good", queue_id, from, 32, &MessageFilter::All)
        .unwrap();
    assert_eq!(r.status, GetStatus::Found, "queue {queue_id} from {from}");
    r.messages
        .iter()
        .map(|m| String::from_utf8(m.decode().unwrap().body).unwrap())
        .collect()
}

#[test]
fn crafted_queue_ids_and_offsets_found_after_a_crash_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = MessageStore::open(common::small_config(dir.path())).unwrap();
        let put = |q: u32, body: &str| {
            store
                .put_message(&Message::new("Good", body.as_bytes().to_vec()).with_queue_id(q))
                .unwrap()
                .commit_log_offset
        };
        for i in 0..3 {
            put(0, &format!("g-{i}"));
        }
        let neg_id = put(1, "bad-neg-id");
        let big_id = put(1, "bad-big-id");
        let jump = put(1, "bad-jump");
        let neg_off = put(1, "bad-neg-offset");
        put(2, "s-0");
        let small_gap = put(2, "s-1");
        let late = put(3, "late");
        for i in 3..6 {
            put(0, &format!("g-{i}"));
        }
        store.shutdown().unwrap();
        drop(store);
        let file = dir.path().join("commitlog").join(format!("{:020}", 0));
        let mut log = std::fs::read(&file).unwrap();
        patch(&mut log, neg_id, Some(-1), None);
        patch(&mut log, big_id, Some(2_000_000_000), None);
        patch(&mut log, jump, Some(0), Some(FAR as i64));
        patch(&mut log, neg_off, Some(0), Some(-5));
        patch(&mut log, small_gap, None, Some(5));
        patch(&mut log, late, None, Some(FAR as i64));
        std::fs::write(&file, &log).unwrap();
    }
    // A crash that lost the checkpoint, the consume queues, the index and
    // the topic table: recovery dispatches the whole log and learns the
    // topics from its queues.
    std::fs::remove_dir_all(dir.path().join("consumequeue")).unwrap();
    let _ = std::fs::remove_dir_all(dir.path().join("index"));
    std::fs::remove_file(dir.path().join("checkpoint")).unwrap();
    for n in names(&dir.path().join("config")) {
        if n.starts_with("topics.json") {
            std::fs::remove_file(dir.path().join("config").join(n)).unwrap();
        }
    }
    std::fs::write(dir.path().join("abort"), b"").unwrap();

    let started = Instant::now();
    let store = MessageStore::open(common::small_config(dir.path())).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert!(store.recovery_report().abnormal);
    let st = store.stats();
    assert_eq!(st.records_refused, 4, "{st:?}");
    assert!(st.fenced.is_none(), "{st:?}");
    assert_eq!(st.dispatched_offset, store.commit_log_max_offset());
    // Queues only for the ids and offsets dispatch accepted; a few small files.
    let cq = dir.path().join("consumequeue");
    assert_eq!(names(&cq), ["Good"]);
    assert_eq!(names(&cq.join("Good")), ["0", "2", "3"]);
    let size = du(&cq);
    assert!(size <= 8 * 2000, "consume queues hold {size} bytes");
    // The topic is learned with its usual queue count, nothing absurd.
    let tc = store.topic_config("Good").unwrap();
    assert_eq!((tc.read_queue_nums, tc.write_queue_nums), (4, 4));
    // The good records around the refused ones, in order.
    assert_eq!(
        bodies(&store, 0, 0),
        ["g-0", "g-1", "g-2", "g-3", "g-4", "g-5"]
    );
    assert_eq!(store.max_offset_in_queue("Good", 0), 6);
    // A small gap is blank-filled; a late start begins at its file.
    assert_eq!(store.max_offset_in_queue("Good", 2), 6);
    assert_eq!(bodies(&store, 2, 0), ["s-0", "s-1"]);
    assert_eq!(store.min_offset_in_queue("Good", 3), FAR);
    assert_eq!(bodies(&store, 3, FAR), ["late"]);
    // The refused records stay in the log.
    let log = store
        .read_commit_log(0, store.commit_log_max_offset() as usize)
        .unwrap();
    for b in ["bad-neg-id", "bad-big-id", "bad-jump", "bad-neg-offset"] {
        assert!(log.windows(b.len()).any(|w| w == b.as_bytes()), "{b}");
    }

    // Puts go on after them.
    store
        .put_message(&Message::new("Good", b"g-6".to_vec()).with_queue_id(0))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.max_offset_in_queue("Good", 0) < 7 {
        assert!(
            Instant::now() < deadline,
            "the put after was not dispatched"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    store.shutdown().unwrap();
    drop(store);
    let topics = std::fs::read_to_string(dir.path().join("config").join("topics.json")).unwrap();
    for absurd in ["2000000001", "4294967296", "1099511627"] {
        assert!(!topics.contains(absurd), "{topics}");
    }
    // A clean reopen finds the same queues.
    let store = MessageStore::open(common::small_config(dir.path())).unwrap();
    assert_eq!(names(&cq.join("Good")), ["0", "2", "3"]);
    assert_eq!(store.max_offset_in_queue("Good", 0), 7);
    store.shutdown().unwrap();
}

#[test]
fn a_queue_folder_with_an_out_of_range_id_left_on_disk_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = MessageStore::open(common::small_config(dir.path())).unwrap();
        store
            .put_message(&Message::new("Good", b"g-0".to_vec()).with_queue_id(0))
            .unwrap();
        store.shutdown().unwrap();
    }
    // What an older version made for a hostile master's record, and a topic
    // table that lost the topic (it is learned from the queues again).
    let stray = dir.path().join("consumequeue").join("Good").join("5000");
    std::fs::create_dir_all(&stray).unwrap();
    std::fs::write(stray.join(format!("{:020}", 0)), vec![0u8; 2000]).unwrap();
    for n in names(&dir.path().join("config")) {
        if n.starts_with("topics.json") {
            std::fs::remove_file(dir.path().join("config").join(n)).unwrap();
        }
    }
    let started = Instant::now();
    let store = MessageStore::open(common::small_config(dir.path())).unwrap();
    assert!(started.elapsed() < Duration::from_secs(20));
    let tc = store.topic_config("Good").unwrap();
    assert_eq!((tc.read_queue_nums, tc.write_queue_nums), (4, 4));
    assert_eq!(bodies(&store, 0, 0), ["g-0"]);
    assert_eq!(store.max_offset_in_queue("Good", 5000), 0);
    store.shutdown().unwrap();
}
