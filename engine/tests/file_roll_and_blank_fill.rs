//! Rolling over many small commitlog and consume-queue files; the tail of each
//! commitlog file is blank-filled and records never span files.

mod common;

use ferromq_engine::message::BLANK_MAGIC_CODE;
use ferromq_engine::{GetStatus, Message, MessageFilter, MessageStore};

#[test]
fn log_rolls_and_every_file_ends_in_a_blank_record() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::small_config(dir.path());
    let file_size = cfg.mapped_file_size_commit_log;
    let store = MessageStore::open(cfg).unwrap();
    let mut puts = Vec::new();
    for i in 0..2000u32 {
        // Sizes that do not divide the file size, so tails need blank-filling.
        let body = vec![(i % 251) as u8; 300 + (i as usize * 13) % 700];
        let r = store
            .put_message(&Message::new("RollTopic", body).with_queue_id(i % 2))
            .unwrap();
        // A record never spans files.
        assert_eq!(
            r.commit_log_offset / file_size,
            (r.commit_log_offset + r.wrote_bytes as u64 - 1) / file_size
        );
        puts.push(r);
    }
    // The dispatch thread builds the consume queues behind the puts: wait for
    // both queues' last units (bounded) before counting their files.
    for q in 0..2 {
        assert!(
            store.wait_for_messages("RollTopic", q, 999, std::time::Duration::from_secs(20)),
            "queue {q} not dispatched in time"
        );
    }
    store.flush().unwrap();
    let files = common::commitlog_files(dir.path());
    assert!(
        files.len() >= 15,
        "expected many files, got {}",
        files.len()
    );
    for (i, name) in files.iter().enumerate() {
        assert_eq!(
            name.parse::<u64>().unwrap(),
            i as u64 * file_size,
            "file names are start offsets"
        );
    }

    // Every full file ends with [remaining size][BLANK magic] right after its last record.
    for name in &files[..files.len() - 2] {
        let start: u64 = name.parse().unwrap();
        let bytes = std::fs::read(dir.path().join("commitlog").join(name)).unwrap();
        assert_eq!(bytes.len() as u64, file_size);
        let last_end = puts
            .iter()
            .filter(|p| p.commit_log_offset >= start && p.commit_log_offset < start + file_size)
            .map(|p| p.commit_log_offset + p.wrote_bytes as u64 - start)
            .max()
            .unwrap() as usize;
        let blank = i32::from_be_bytes(bytes[last_end..last_end + 4].try_into().unwrap());
        let magic = i32::from_be_bytes(bytes[last_end + 4..last_end + 8].try_into().unwrap());
        assert_eq!(magic, BLANK_MAGIC_CODE, "file {name} tail");
        assert_eq!(blank as u64, file_size - last_end as u64);
    }

    // Consume queues rolled too (100 units per file) and read across file boundaries.
    let cq_files = std::fs::read_dir(dir.path().join("consumequeue/RollTopic/0"))
        .unwrap()
        .count();
    assert!(cq_files >= 10, "consume queue files: {cq_files}");
    let mut offset = 0;
    let mut n = 0;
    loop {
        let r = store
            .get_message("g", "RollTopic", 0, offset, 32, &MessageFilter::All)
            .unwrap();
        if r.status != GetStatus::Found {
            assert_eq!(r.status, GetStatus::OffsetOverflowOne);
            break;
        }
        for m in &r.messages {
            let e = m.decode().unwrap();
            assert_eq!(e.queue_offset, n);
            let i = (n * 2) as usize;
            assert_eq!(e.body.len(), 300 + (i * 13) % 700);
            n += 1;
        }
        offset = r.next_begin_offset;
    }
    assert_eq!(n, 1000);
    store.shutdown().unwrap();
}

#[test]
fn a_message_that_can_never_fit_a_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::small_config(dir.path());
    cfg.max_message_size = 128 * 1024;
    let store = MessageStore::open(cfg).unwrap();
    let err = store
        .put_message(&Message::new("Big", vec![0u8; 70 * 1024]))
        .unwrap_err();
    assert!(
        matches!(err, ferromq_engine::Error::IllegalMessage(_)),
        "{err}"
    );
    // Nothing was written; the store still works.
    assert_eq!(store.commit_log_max_offset(), 0);
    store
        .put_message(&Message::new("Big", vec![1u8; 10]))
        .unwrap();
    store.shutdown().unwrap();
}
