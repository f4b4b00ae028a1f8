//! Consume-queue damage of every kind is rebuilt from the commitlog at open,
//! never skipped: garbage inside an old file, a missing first or middle file,
//! a file of the wrong length. Files deleted by retention are not damage. A
//! damaged record is skipped loudly; damage in the newest commitlog file fails
//! open with an error naming `checkCRCOnRecover=false`, which then starts.

mod common;

use std::path::{Path, PathBuf};

use ferromq_engine::{Error, GetStatus, Message, MessageFilter, MessageStore, StoreConfig};

/// Messages on queue 0 of `D` (100 units per consume-queue file: 10 files).
const N: usize = 1000;
/// Messages on queue 1, which no test damages.
const N1: usize = 50;

fn cfg(dir: &Path) -> StoreConfig {
    let mut c = common::small_config(dir);
    c.mapped_file_size_commit_log = 64 * 1024;
    c
}

fn body(q: u32, i: usize) -> Vec<u8> {
    format!("q{q}-m{i:05}-{}", "d".repeat(40 + i % 90)).into_bytes()
}

/// Put N messages on queue 0 and N1 on queue 1, interleaved, and shut down.
fn populate(dir: &Path) {
    let store = MessageStore::open(cfg(dir)).unwrap();
    for i in 0..N {
        let mut m = Message::new("D", body(0, i));
        m.queue_id = 0;
        store.put_message(&m).unwrap();
        if i % (N / N1) == 0 {
            let mut m = Message::new("D", body(1, i / (N / N1)));
            m.queue_id = 1;
            store.put_message(&m).unwrap();
        }
    }
    store.shutdown().unwrap();
}

fn queue_dir(dir: &Path) -> PathBuf {
    dir.join("consumequeue/D/0")
}

fn queue_file(dir: &Path, index: u64) -> PathBuf {
    queue_dir(dir).join(format!("{:020}", index * 2000))
}

/// Every message of queue `q` from offset 0 to the end, in order, each checked
/// against what was put; panics on an error, a skipped offset or a wrong body.
fn read_all(store: &MessageStore, q: u32, n: usize) {
    assert_eq!(
        store.min_offset_in_queue("D", q),
        0,
        "queue {q}: min offset"
    );
    assert_eq!(
        store.max_offset_in_queue("D", q),
        n as u64,
        "queue {q}: max"
    );
    let mut offset = 0u64;
    let mut expect = 0usize;
    for _ in 0..(2 * n + 10) {
        let r = store
            .get_message("g", "D", q, offset, 32, &MessageFilter::All)
            .unwrap_or_else(|e| panic!("queue {q}: pull at {offset}: {e}"));
        if r.status == GetStatus::OffsetOverflowOne {
            assert_eq!(expect, n, "queue {q}: delivered");
            return;
        }
        assert_eq!(r.status, GetStatus::Found, "queue {q}: at {offset}");
        for m in &r.messages {
            assert_eq!(m.queue_offset, expect as u64, "queue {q}: nothing skipped");
            assert_eq!(m.decode().unwrap().body, body(q, expect), "queue {q}");
            expect += 1;
        }
        assert_eq!(r.next_begin_offset, expect as u64, "queue {q}");
        offset = r.next_begin_offset;
    }
    panic!("queue {q}: the pulls did not reach the end");
}

/// Open after `damage`, and check every message is delivered and the damage
/// was counted.
fn check_rebuilt(what: &str, damage: impl FnOnce(&Path)) {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path());
    assert_eq!(
        std::fs::read_dir(queue_dir(dir.path())).unwrap().count(),
        10
    );
    damage(dir.path());
    let store = MessageStore::open(cfg(dir.path())).unwrap_or_else(|e| panic!("{what}: open: {e}"));
    let rep = store.recovery_report().clone();
    assert!(rep.consume_queues_damaged >= 1, "{what}: {rep:?}");
    assert!(rep.rebuilt_from_log_start, "{what}: {rep:?}");
    read_all(&store, 0, N);
    read_all(&store, 1, N1);
    // Queue offsets go on from the end.
    let r = store
        .put_message(&Message::new("D", b"x".to_vec()))
        .unwrap();
    assert_eq!(r.queue_offset, N as u64, "{what}");
    store.shutdown().unwrap();
    // The rebuilt queue is whole: the next open finds nothing to rebuild.
    let store = MessageStore::open(cfg(dir.path())).unwrap();
    let rep = store.recovery_report();
    assert_eq!(rep.consume_queues_damaged, 0, "{what}: second open {rep:?}");
    assert!(!rep.rebuilt_from_log_start, "{what}: second open {rep:?}");
    store.shutdown().unwrap();
}

fn xorshift(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// Leave the abort marker, as a crash does: the next open scans every
/// consume-queue file (a clean open scans the last three).
fn as_after_a_crash(dir: &Path) {
    std::fs::write(dir.join("abort"), b"").unwrap();
}

/// 400 random bytes over queue offsets 310..330 (file 3 of ten).
fn random_bytes_in_file_3(dir: &Path) {
    let path = queue_file(dir, 3);
    let mut bytes = std::fs::read(&path).unwrap();
    let mut seed = 0x5DEE_CE66_D1CE_B00Cu64;
    for b in &mut bytes[200..600] {
        *b = xorshift(&mut seed) as u8;
    }
    std::fs::write(&path, bytes).unwrap();
}

#[test]
fn random_bytes_inside_an_old_file_are_rebuilt() {
    check_rebuilt("400 random bytes", |dir| {
        random_bytes_in_file_3(dir);
        as_after_a_crash(dir);
    });
}

/// A clean open reads only the last three files of each queue: damage in an
/// older file is not seen there, and the reads that meet it repair it.
#[test]
fn a_clean_open_scans_the_last_files_and_reads_repair_older_damage() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path());
    random_bytes_in_file_3(dir.path());
    let store = MessageStore::open(cfg(dir.path())).unwrap();
    let rep = store.recovery_report().clone();
    assert!(!rep.abnormal, "{rep:?}");
    assert_eq!(rep.consume_queues, 2, "{rep:?}");
    assert_eq!(rep.consume_queues_fully_scanned, 0, "{rep:?}");
    assert_eq!(rep.consume_queues_damaged, 0, "{rep:?}");
    assert!(!rep.rebuilt_from_log_start, "{rep:?}");
    read_all(&store, 0, N);
    read_all(&store, 1, N1);
    let st = store.stats();
    assert!(st.consume_queue_units_repaired >= 20, "{st:?}");
    assert_eq!(st.damaged_records, 0, "{st:?}");
    store.shutdown().unwrap();
    // Manifests that disagree with the files (here: none) make open scan every file.
    std::fs::remove_file(dir.path().join("config/consumeQueueMax.json")).unwrap();
    let store = MessageStore::open(cfg(dir.path())).unwrap();
    let rep = store.recovery_report().clone();
    assert_eq!(rep.consume_queues_fully_scanned, 2, "{rep:?}");
    assert_eq!(rep.consume_queues_damaged, 0, "{rep:?}");
    store.shutdown().unwrap();
    // After a crash, too.
    as_after_a_crash(dir.path());
    let store = MessageStore::open(cfg(dir.path())).unwrap();
    let rep = store.recovery_report().clone();
    assert!(rep.abnormal);
    assert_eq!(rep.consume_queues_fully_scanned, 2, "{rep:?}");
    store.shutdown().unwrap();
}

#[test]
fn a_missing_first_file_is_rebuilt() {
    check_rebuilt("first file deleted", |dir| {
        std::fs::remove_file(queue_file(dir, 0)).unwrap();
    });
}

#[test]
fn a_missing_middle_file_is_rebuilt() {
    check_rebuilt("middle file deleted", |dir| {
        std::fs::remove_file(queue_file(dir, 4)).unwrap();
    });
}

#[test]
fn files_of_the_wrong_length_are_rebuilt() {
    check_rebuilt("truncated file", |dir| {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(queue_file(dir, 5))
            .unwrap();
        f.set_len(1000).unwrap();
    });
    check_rebuilt("extended file", |dir| {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(queue_file(dir, 2))
            .unwrap();
        f.set_len(3000).unwrap();
    });
}

#[test]
fn unit_pointing_at_another_record_in_an_old_file_is_rebuilt() {
    // A structurally plausible unit (in order, within the log) that points at
    // the record of the next unit: the spot check of the file's first unit
    // catches it.
    check_rebuilt("unit swapped", |dir| {
        let path = queue_file(dir, 2);
        let mut bytes = std::fs::read(&path).unwrap();
        let next: [u8; 20] = bytes[20..40].try_into().unwrap();
        let mut unit = next;
        // Same offset as the next one, but half the size: in order, plausible.
        let size = i32::from_be_bytes(unit[8..12].try_into().unwrap()) / 2;
        unit[8..12].copy_from_slice(&size.to_be_bytes());
        unit[..8].copy_from_slice(&bytes[..8]);
        bytes[..20].copy_from_slice(&unit);
        std::fs::write(&path, bytes).unwrap();
        as_after_a_crash(dir);
    });
}

/// Files deleted by retention are not damage: the queue is not rebuilt and
/// its min offset is the first message the commitlog still holds.
#[test]
fn consume_queue_files_deleted_by_retention_are_not_damage() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path());
    // Remove the first commitlog files as retention does, then let the store
    // delete the consume-queue files whose records are gone.
    let mut c = cfg(dir.path());
    c.file_reserved_time_hours = 0;
    c.delete_file_batch_max = 2;
    c.delete_commit_log_files_interval_ms = 0;
    c.clean_resource_interval_ms = 3_600_000;
    let store = MessageStore::open(c.clone()).unwrap();
    for _ in 0..5 {
        store.execute_delete_files_manually();
        store.run_clean_pass();
    }
    let cl_min = store.commit_log_min_offset();
    assert!(cl_min > 0, "retention deleted commitlog files");
    let min = store.min_offset_in_queue("D", 0);
    assert!(min > 100, "queue files went with them: min {min}");
    assert!(!queue_file(dir.path(), 0).exists());
    store.shutdown().unwrap();

    let store = MessageStore::open(c).unwrap();
    let rep = store.recovery_report();
    assert_eq!(rep.consume_queues_damaged, 0, "{rep:?}");
    assert!(!rep.rebuilt_from_log_start, "{rep:?}");
    assert_eq!(store.min_offset_in_queue("D", 0), min);
    let r = store
        .get_message("g", "D", 0, min, 1, &MessageFilter::All)
        .unwrap();
    assert_eq!(r.messages[0].decode().unwrap().body, body(0, min as usize));
    store.shutdown().unwrap();
}

/// The commitlog offset and length of message `i` of queue 0.
fn record_of(store: &MessageStore, i: u64) -> (u64, usize) {
    let r = store
        .get_message("g", "D", 0, i, 1, &MessageFilter::All)
        .unwrap();
    (r.messages[0].commit_log_offset, r.messages[0].bytes().len())
}

/// Flip a byte in the middle of the body of the record at commitlog `offset`.
fn flip_body_byte(dir: &Path, offset: u64, len: usize) {
    let fs = cfg(dir).mapped_file_size_commit_log;
    let path = dir
        .join("commitlog")
        .join(format!("{:020}", offset / fs * fs));
    let mut bytes = std::fs::read(&path).unwrap();
    // The body ends the record's bytes before the properties: a byte 30 from
    // the end lies in the properties or body; 60 from the end is in the body
    // (bodies are at least 40 bytes, properties short).
    let at = (offset % fs) as usize + len - 60;
    bytes[at] ^= 0x20;
    std::fs::write(&path, bytes).unwrap();
}

#[test]
fn damage_in_the_newest_commitlog_file_names_check_crc_on_recover() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path());
    let store = MessageStore::open(cfg(dir.path())).unwrap();
    let victim = N as u64 - 20;
    let (off, len) = record_of(&store, victim);
    store.shutdown().unwrap();
    flip_body_byte(dir.path(), off, len);
    match MessageStore::open(cfg(dir.path())) {
        Err(e @ Error::Corruption { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("checkCRCOnRecover=false"), "{msg}");
            assert!(msg.contains("lost"), "says what it costs: {msg}");
        }
        Err(e) => panic!("expected Corruption, got {e}"),
        Ok(_) => panic!("expected Corruption, the store opened"),
    }
    // With the option the store starts; the damaged record is skipped loudly.
    let mut c = cfg(dir.path());
    c.check_crc_on_recover = false;
    let store = MessageStore::open(c).unwrap();
    let mut offset = victim - 3;
    let mut got = Vec::new();
    for _ in 0..10 {
        let r = store
            .get_message("g", "D", 0, offset, 32, &MessageFilter::All)
            .unwrap();
        if r.status == GetStatus::OffsetOverflowOne {
            break;
        }
        got.extend(r.messages.iter().map(|m| m.queue_offset));
        assert!(r.next_begin_offset > offset, "moves on");
        offset = r.next_begin_offset;
    }
    let want: Vec<u64> = (victim - 3..N as u64).filter(|q| *q != victim).collect();
    assert_eq!(got, want);
    let listed = store.damaged_records();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].queue_offset, listed[0].commit_log_offset),
        (victim, off)
    );
    assert_eq!(store.stats().damaged_records, 1);
    store.shutdown().unwrap();
}

/// Overwrite `len` bytes at byte `at` of consume-queue file `index` through the
/// file (a running store's mapping sees them).
fn scribble_units(dir: &Path, index: u64, at: u64, len: usize, seed: u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(queue_file(dir, index))
        .unwrap();
    let mut seed = seed;
    let bytes: Vec<u8> = (0..len).map(|_| xorshift(&mut seed) as u8).collect();
    f.write_all_at(&bytes, at).unwrap();
}

#[test]
fn units_damaged_under_a_running_store_are_rebuilt_when_read() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path());
    let store = MessageStore::open(cfg(dir.path())).unwrap();
    // Queue offsets 310..330 (file 3) and 705..707 (file 7, the unit at 705
    // half overwritten).
    scribble_units(dir.path(), 3, 200, 400, 0xA5A5_5A5A_1234_5678);
    scribble_units(dir.path(), 7, 110, 30, 0x0F0F_F0F0_8765_4321);
    // A pull that starts inside the damage repairs it first.
    let r = store
        .get_message("g", "D", 0, 315, 4, &MessageFilter::All)
        .unwrap();
    let got: Vec<u64> = r.messages.iter().map(|m| m.queue_offset).collect();
    assert_eq!(got, [315, 316, 317, 318]);
    read_all(&store, 0, N);
    read_all(&store, 1, N1);
    let st = store.stats();
    assert!(st.consume_queue_units_repaired >= 22, "{st:?}");
    assert_eq!(st.damaged_records, 0, "nothing skipped");
    store.shutdown().unwrap();
    // The repair is on disk: the next open finds nothing to rebuild.
    let store = MessageStore::open(cfg(dir.path())).unwrap();
    let rep = store.recovery_report();
    assert_eq!(rep.consume_queues_damaged, 0, "{rep:?}");
    read_all(&store, 0, N);
    store.shutdown().unwrap();
}

#[test]
fn a_unit_that_cannot_be_rebuilt_is_skipped_loudly_not_forever() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path());
    let store = MessageStore::open(cfg(dir.path())).unwrap();
    let victim = 500u64;
    let (off, _) = record_of(&store, victim);
    // The unit is garbage, and the record it stood for has a damaged header,
    // so the commitlog cannot be walked past it to rebuild the unit.
    scribble_units(
        dir.path(),
        victim / 100,
        (victim % 100) * 20,
        20,
        0x1357_9BDF_2468_ACE0,
    );
    let fs = cfg(dir.path()).mapped_file_size_commit_log;
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(
                dir.path()
                    .join("commitlog")
                    .join(format!("{:020}", off / fs * fs)),
            )
            .unwrap();
        f.write_all_at(&[0x55; 4], off % fs + 4).unwrap(); // the magic code
    }
    let mut offset = 0;
    let mut got = Vec::new();
    for _ in 0..(N / 32 + 10) {
        let r = store
            .get_message("g", "D", 0, offset, 32, &MessageFilter::All)
            .unwrap_or_else(|e| panic!("pull at {offset}: {e}"));
        if r.status == GetStatus::OffsetOverflowOne {
            break;
        }
        got.extend(r.messages.iter().map(|m| m.queue_offset));
        assert!(r.next_begin_offset > offset);
        offset = r.next_begin_offset;
    }
    let want: Vec<u64> = (0..N as u64).filter(|q| *q != victim).collect();
    assert_eq!(got, want);
    let listed = store.damaged_records();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].queue_offset, victim);
    assert!(listed[0].reason.contains("damaged"), "{}", listed[0].reason);
    assert_eq!(store.stats().damaged_records, 1);
}

/// After retention, a queue's first remaining file may start at a record the
/// commitlog still holds (its previous file indexed only deleted records).
/// That is not damage; deleting that first file is (the first-file manifest
/// tells the two apart), and the rebuilt queue starts at the first record the
/// commitlog holds.
#[test]
fn first_files_lost_after_retention_are_told_from_retention() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    c.file_reserved_time_hours = 0;
    c.delete_commit_log_files_interval_ms = 0;
    c.clean_resource_interval_ms = 3_600_000;
    let store = MessageStore::open(c.clone()).unwrap();
    let put = |q: u32, i: usize| {
        let mut m = Message::new("D", body(q, i));
        m.queue_id = q;
        store.put_message(&m).unwrap()
    };
    // Queue 0: 100 messages (one full consume-queue file) in commitlog file 0;
    // queue 1 fills that file; then queue 0 gets 150 more in file 1.
    for i in 0..100 {
        put(0, i);
    }
    let mut i1 = 0;
    while put(1, i1).commit_log_offset < 64 * 1024 {
        i1 += 1;
        assert!(i1 < 10_000);
    }
    for i in 100..250 {
        let r = put(0, i);
        assert!(r.commit_log_offset >= 64 * 1024);
    }
    store.flush().unwrap();
    for _ in 0..500 {
        if store.stats().dispatched_offset >= store.commit_log_max_offset() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    store.flush().unwrap();
    for _ in 0..5 {
        store.execute_delete_files_manually();
        store.run_clean_pass();
    }
    assert_eq!(store.commit_log_min_offset(), 64 * 1024, "file 0 deleted");
    assert_eq!(store.min_offset_in_queue("D", 0), 100);
    assert!(!queue_file(dir.path(), 0).exists(), "queue file 0 deleted");
    store.shutdown().unwrap();

    let check = |what: &str, damaged: usize| {
        let store = MessageStore::open(c.clone()).unwrap();
        let rep = store.recovery_report();
        assert_eq!(rep.consume_queues_damaged, damaged, "{what}: {rep:?}");
        assert_eq!(store.min_offset_in_queue("D", 0), 100, "{what}");
        assert_eq!(store.max_offset_in_queue("D", 0), 250, "{what}");
        let mut offset = 100;
        for _ in 0..20 {
            let r = store
                .get_message("g", "D", 0, offset, 32, &MessageFilter::All)
                .unwrap();
            if r.status == GetStatus::OffsetOverflowOne {
                break;
            }
            for m in &r.messages {
                assert_eq!(m.queue_offset, offset, "{what}");
                assert_eq!(m.decode().unwrap().body, body(0, offset as usize), "{what}");
                offset += 1;
            }
        }
        assert_eq!(offset, 250, "{what}: every message still held is delivered");
        store.shutdown().unwrap();
    };
    check("after retention", 0);
    std::fs::remove_file(queue_file(dir.path(), 1)).unwrap();
    check("first remaining file deleted", 1);
}

#[test]
fn a_damaged_last_record_moves_the_reader_to_the_end() {
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path());
    let store = MessageStore::open(cfg(dir.path())).unwrap();
    let last = N as u64 - 1;
    let (off, len) = record_of(&store, last);
    let fs = cfg(dir.path()).mapped_file_size_commit_log;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(
            dir.path()
                .join("commitlog")
                .join(format!("{:020}", off / fs * fs)),
        )
        .unwrap();
    let at = off % fs + len as u64 - 60;
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 0x40], at).unwrap();
    for _ in 0..2 {
        let r = store
            .get_message("g", "D", 0, last, 32, &MessageFilter::All)
            .unwrap();
        assert_eq!(r.status, GetStatus::NoMatchedMessage);
        assert!(r.messages.is_empty());
        assert_eq!(r.next_begin_offset, N as u64, "past the damaged record");
    }
    assert_eq!(store.stats().damaged_records, 1, "counted once");
    store.shutdown().unwrap();
}

/// Overwrite the units of queue offsets `from..to` of queue 0 (through the
/// files, under a running store) with units that decode but point at no
/// record of theirs (commitlog offset 0, size 1).
fn wrong_units(dir: &Path, from: u64, to: u64) {
    use std::os::unix::fs::FileExt;
    let mut unit = [0u8; 20];
    unit[8..12].copy_from_slice(&1i32.to_be_bytes());
    for q in from..to {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(queue_file(dir, q / 100))
            .unwrap();
        f.write_all_at(&unit, (q % 100) * 20).unwrap();
    }
}

/// Pull at `offset` until it is Found (the repair is done), at most 10 s;
/// every answer before is `Busy` (retry from the same offset), never a result
/// that moves past the offset.
fn pull_until_repaired(store: &MessageStore, offset: u64) -> Vec<u64> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match store.get_message("g", "D", 0, offset, 4, &MessageFilter::All) {
            Ok(r) => {
                assert_eq!(r.status, GetStatus::Found, "at {offset}: {r:?}");
                return r.messages.iter().map(|m| m.queue_offset).collect();
            }
            Err(Error::Busy(why)) => {
                assert!(!why.contains("consumequeue"), "no path: {why}");
                assert!(std::time::Instant::now() < deadline, "not repaired in 10 s");
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("at {offset}: {e}"),
        }
    }
}

/// A stretch of damage too long for a pull thread's bounded search: the read
/// is told to retry (not skipped, not noted), the queue is rebuilt in the
/// background, and the retried read gets the message.
#[test]
fn a_repair_past_its_search_bound_goes_to_the_background_and_skips_nothing() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path());
    let store = MessageStore::open(cfg(dir.path())).unwrap();
    // 400 wrong units (310..710): more than a pull's search checks (256).
    wrong_units(dir.path(), 310, 710);
    match store.get_message("g", "D", 0, 310, 4, &MessageFilter::All) {
        Err(Error::Busy(_)) => {}
        other => panic!("expected Busy, got {other:?}"),
    }
    assert_eq!(pull_until_repaired(&store, 310), [310, 311, 312, 313]);
    // The rebuild writes file by file: reads of units not yet rewritten get
    // Busy until it ends.
    assert_eq!(pull_until_repaired(&store, 709), [709, 710, 711, 712]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while store.stats().consume_queue_units_repaired < 400 {
        assert!(std::time::Instant::now() < deadline, "rebuild not counted");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    read_all(&store, 0, N);
    read_all(&store, 1, N1);
    let st = store.stats();
    assert_eq!(st.consume_queue_units_repaired, 400, "{st:?}");
    assert_eq!(st.damaged_records, 0, "nothing skipped: {st:?}");
    assert!(store.damaged_records().is_empty());
    store.shutdown().unwrap();
}

/// Makes syncs of consume-queue files fail with EIO while `on`.
struct FailCqSyncs {
    on: std::sync::atomic::AtomicBool,
    failed: std::sync::atomic::AtomicU64,
}

impl ferromq_engine::io::IoHook for FailCqSyncs {
    fn before_sync(&self, path: &Path, _offset: usize, _len: usize) -> std::io::Result<()> {
        use std::sync::atomic::Ordering;
        if self.on.load(Ordering::SeqCst) && path.to_string_lossy().contains("consumequeue") {
            self.failed.fetch_add(1, Ordering::SeqCst);
            return Err(std::io::Error::from_raw_os_error(5)); // EIO
        }
        Ok(())
    }
}

/// A repair whose rewrite fails (EIO) is retried, not noted: the unit is not
/// skipped, and once writes work again the read gets the message.
#[test]
fn a_failed_repair_rewrite_is_retried_not_skipped() {
    use std::sync::atomic::Ordering;
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path());
    let store = MessageStore::open(cfg(dir.path())).unwrap();
    let hook = std::sync::Arc::new(FailCqSyncs {
        on: std::sync::atomic::AtomicBool::new(true),
        failed: Default::default(),
    });
    let _guard = ferromq_engine::io::install_hook(dir.path(), hook.clone());
    scribble_units(dir.path(), 3, 200, 400, 0xA5A5_5A5A_1234_5678);
    for _ in 0..3 {
        match store.get_message("g", "D", 0, 315, 4, &MessageFilter::All) {
            Err(Error::Busy(_)) => {}
            other => panic!("expected Busy, got {other:?}"),
        }
    }
    assert!(hook.failed.load(Ordering::SeqCst) >= 3);
    assert_eq!(store.stats().damaged_records, 0, "not noted");
    hook.on.store(false, Ordering::SeqCst);
    assert_eq!(pull_until_repaired(&store, 315), [315, 316, 317, 318]);
    read_all(&store, 0, N);
    assert_eq!(store.stats().damaged_records, 0);
    assert!(store.damaged_records().is_empty());
}

const RETENTION_CHILD_ENV: &str = "FERROMQ_CQ_RETENTION_CRASH_DIR";

fn retention_cfg(dir: &Path) -> StoreConfig {
    let mut c = cfg(dir);
    c.file_reserved_time_hours = 0;
    c.delete_commit_log_files_interval_ms = 0;
    c.clean_resource_interval_ms = 3_600_000;
    // No consume-queue flush pass between retention and the crash: only the
    // clean pass can have written the first-file manifest.
    c.flush_interval_consume_queue_ms = 3_600_000;
    c
}

/// Not a test of its own: the child of
/// `retention_then_a_crash_is_not_damage`, entered only when it sets the
/// variable. Queue 0 gets 100 messages in commitlog file 0 and 150 in file
/// 1, the store shuts down and opens again; retention deletes commitlog file
/// 0 and queue 0's first file (whose successor starts at a record the log
/// still holds); then the process ends at once, without shutdown.
#[test]
fn retention_crash_child() {
    let Ok(dir) = std::env::var(RETENTION_CHILD_ENV) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let store = MessageStore::open(retention_cfg(&dir)).unwrap();
    let put = |q: u32, i: usize| {
        let mut m = Message::new("D", body(q, i));
        m.queue_id = q;
        store.put_message(&m).unwrap()
    };
    for i in 0..100 {
        put(0, i);
    }
    let mut i1 = 0;
    while put(1, i1).commit_log_offset < 64 * 1024 {
        i1 += 1;
        assert!(i1 < 10_000);
    }
    for i in 100..250 {
        put(0, i);
    }
    store.flush().unwrap();
    for _ in 0..500 {
        if store.stats().dispatched_offset >= store.commit_log_max_offset() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // A clean shutdown records queue 0's first file (offset 0) in the
    // first-file manifest.
    store.shutdown().unwrap();
    drop(store);
    let store = MessageStore::open(retention_cfg(&dir)).unwrap();
    assert!(!store.recovery_report().rebuilt_from_log_start);
    for _ in 0..5 {
        store.execute_delete_files_manually();
        store.run_clean_pass();
    }
    assert_eq!(store.commit_log_min_offset(), 64 * 1024, "file 0 deleted");
    assert!(!queue_file(&dir, 0).exists(), "queue file 0 deleted");
    println!("CHILD-DONE");
    std::io::Write::flush(&mut std::io::stdout()).unwrap();
    // As a SIGKILL: no destructor, no shutdown, the abort marker stays.
    std::process::exit(0);
}

/// A crash right after retention deleted a queue's first file is not taken
/// for lost files: no damage, no rebuild from the start of the log.
#[test]
fn retention_then_a_crash_is_not_damage() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "retention_crash_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(RETENTION_CHILD_ENV, dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("CHILD-DONE"),
        "child: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        dir.path().join("abort").exists(),
        "the child did not shut down"
    );
    let store = MessageStore::open(retention_cfg(dir.path())).unwrap();
    let rep = store.recovery_report().clone();
    assert!(rep.abnormal, "{rep:?}");
    assert_eq!(rep.consume_queues_damaged, 0, "{rep:?}");
    assert!(!rep.rebuilt_from_log_start, "{rep:?}");
    assert_eq!(store.min_offset_in_queue("D", 0), 100);
    assert_eq!(store.max_offset_in_queue("D", 0), 250);
    let r = store
        .get_message("g", "D", 0, 100, 1, &MessageFilter::All)
        .unwrap();
    assert_eq!(r.messages[0].decode().unwrap().body, body(0, 100));
    store.shutdown().unwrap();
}
