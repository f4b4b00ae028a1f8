//! A stranger posing as the master streams records whose queue id is -1 or
//! 2,000,000,000, whose queue offset is negative, or whose offset jumps 2^40
//! units past the end of an existing queue: the slave appends them (the
//! bytes are valid records) but dispatch refuses them, so the dispatch thread
//! does not panic, no queue folder or file is made for them, the slave does
//! not learn (and would not register) a topic with an absurd queue count, no
//! terabytes of blank units are written, the refusals are counted and the
//! good records around them are dispatched. A small gap is still
//! blank-filled, and a queue first seen at a large offset (a slave that
//! starts at the master's last file) still starts at its file.

mod common;

use std::path::Path;
use std::time::Duration;

use ferromq_engine::{BrokerRole, GetStatus, Message, MessageFilter, MessageStore};
use ferromq_replication::HaSlave;

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
fn hostile_queue_ids_and_offsets_from_a_fake_master_are_refused() {
    // What the stranger streams: real records from a store of its own, some
    // of whose queue ids and offsets are then patched (the body CRC does not
    // cover them, so the records stay valid).
    let md = tempfile::tempdir().unwrap();
    let m = common::store(md.path(), BrokerRole::AsyncMaster);
    let put = |q: u32, body: &str| {
        m.put_message(
            &Message::new("Good", body.as_bytes().to_vec())
                .with_queue_id(q)
                .with_keys(["k"]),
        )
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
    let end = m.commit_log_max_offset();
    let mut stream = common::log_bytes(&m, 0, end);
    patch(&mut stream, neg_id, Some(-1), None);
    patch(&mut stream, big_id, Some(2_000_000_000), None);
    patch(&mut stream, jump, Some(0), Some(FAR as i64));
    patch(&mut stream, neg_off, Some(0), Some(-5));
    patch(&mut stream, small_gap, None, Some(5));
    patch(&mut stream, late, None, Some(FAR as i64));

    let sd = tempfile::tempdir().unwrap();
    let slave_store = common::store(sd.path(), BrokerRole::Slave);
    let addr = common::fake_master(vec![common::frame(0, &stream)], Duration::from_secs(3));
    let slave = HaSlave::start(slave_store.clone(), addr.to_string(), common::fast_ha()).unwrap();
    common::wait_until(20, "the stream appended and dispatched", || {
        slave_store.commit_log_max_offset() == end && slave_store.stats().dispatched_offset == end
    });
    slave.shutdown();

    let st = slave_store.stats();
    assert_eq!(st.records_refused, 4, "{st:?}");
    assert!(st.fenced.is_none(), "{st:?}");
    assert!(st.dispatch_error.is_none(), "{st:?}");
    // Queues only for the ids and offsets dispatch accepted; a few small files.
    let cq = sd.path().join("consumequeue");
    assert_eq!(names(&cq), ["Good"]);
    assert_eq!(names(&cq.join("Good")), ["0", "2", "3"]);
    let size = du(&cq);
    assert!(size <= 8 * 2000, "consume queues hold {size} bytes");
    // The slave learns the topic from its log with a sane queue count (what
    // it registers with the name server).
    common::wait_until(10, "the slave learned the topic", || {
        slave_store.topic_config("Good").is_some()
    });
    let tc = slave_store.topic_config("Good").unwrap();
    assert_eq!((tc.read_queue_nums, tc.write_queue_nums), (4, 4));
    // Every good record is in its queue, in order, around the refused ones.
    assert_eq!(
        bodies(&slave_store, 0, 0),
        ["g-0", "g-1", "g-2", "g-3", "g-4", "g-5"]
    );
    assert_eq!(slave_store.max_offset_in_queue("Good", 0), 6);
    assert_eq!(slave_store.max_offset_in_queue("Good", 2), 6);
    assert_eq!(bodies(&slave_store, 2, 0), ["s-0", "s-1"]);
    assert_eq!(slave_store.min_offset_in_queue("Good", 3), FAR);
    assert_eq!(bodies(&slave_store, 3, FAR), ["late"]);
    slave_store.shutdown().unwrap();
    let topics = std::fs::read_to_string(sd.path().join("config").join("topics.json")).unwrap();
    assert!(topics.contains("\"Good\""), "{topics}");
    for absurd in ["2000000001", "4294967296", "1099511627"] {
        assert!(!topics.contains(absurd), "{topics}");
    }
}
