//! The confirm offset (`MessageStore::set_confirm_offset`): records past it
//! get no consume-queue unit until it passes their end; lowering it hides
//! nothing already dispatched; `None` dispatches everything.

use std::time::{Duration, Instant};

use ferromq_engine::{Message, MessageStore, StoreConfig};

fn store(dir: &std::path::Path) -> MessageStore {
    let mut c = StoreConfig::new(dir);
    c.mapped_file_size_commit_log = 64 * 1024;
    c.mapped_file_size_consume_queue = 20 * 100;
    MessageStore::open(c).unwrap()
}

/// Wait (bounded) until queue 0 of `T` has `n` units; the count at the end.
fn units_within(s: &MessageStore, n: u64, wait: Duration) -> u64 {
    let until = Instant::now() + wait;
    loop {
        let have = s.max_offset_in_queue("T", 0);
        if have >= n || Instant::now() >= until {
            return have;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn records_past_the_confirm_offset_wait_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let mut ends = Vec::new();
    s.set_confirm_offset(Some(0));
    for i in 0..10 {
        let mut m = Message::new("T", format!("m{i}").into_bytes());
        m.queue_id = 0;
        let r = s.put_message(&m).unwrap();
        ends.push(r.commit_log_offset + u64::from(r.wrote_bytes));
    }
    // Nothing confirmed: nothing dispatched (give the dispatcher time).
    assert_eq!(units_within(&s, 1, Duration::from_millis(300)), 0);
    // Up to the end of the 4th record, and one byte into the 5th.
    s.set_confirm_offset(Some(ends[3] + 1));
    assert_eq!(units_within(&s, 4, Duration::from_secs(5)), 4);
    assert_eq!(
        units_within(&s, 5, Duration::from_millis(300)),
        4,
        "a record across the offset waits"
    );
    assert_eq!(s.confirm_offset(), Some(ends[3] + 1));
    // Lowering it hides nothing already dispatched.
    s.set_confirm_offset(Some(ends[0]));
    assert_eq!(s.max_offset_in_queue("T", 0), 4);
    s.set_confirm_offset(Some(ends[7]));
    assert_eq!(units_within(&s, 8, Duration::from_secs(5)), 8);
    s.set_confirm_offset(None);
    assert_eq!(units_within(&s, 10, Duration::from_secs(5)), 10);
    assert_eq!(s.confirm_offset(), None);
    let got = s
        .get_message("g", "T", 0, 0, 32, &ferromq_engine::MessageFilter::All)
        .unwrap();
    assert_eq!(got.messages.len(), 10);
    s.shutdown().unwrap();
}
