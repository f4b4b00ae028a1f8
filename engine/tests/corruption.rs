//! Damage to each kind of file gives a clean outcome: open recovers to the last
//! valid record (damage in the tail), rebuilds what can be rebuilt (consume
//! queues, checkpoint), or fails with `Error::Corruption` naming the file and
//! offset. Never a panic, never a record that fails its CRC.

mod common;

use std::path::{Path, PathBuf};

use ferromq_engine::{
    Error, GetStatus, Message, MessageFilter, MessageStore, PutResult, StoreConfig,
};

const N: usize = 300;

fn cfg(dir: &Path) -> StoreConfig {
    let mut c = common::small_config(dir);
    c.mapped_file_size_commit_log = 128 * 1024;
    c
}

fn body(i: usize) -> Vec<u8> {
    format!("body-{i}-{}", "z".repeat(i % 400)).into_bytes()
}

/// Write N messages over queue 0 and shut down cleanly.
fn populate(dir: &Path) -> Vec<PutResult> {
    let store = MessageStore::open(cfg(dir)).unwrap();
    let puts: Vec<_> = (0..N)
        .map(|i| store.put_message(&Message::new("C", body(i))).unwrap())
        .collect();
    store.shutdown().unwrap();
    puts
}

fn commitlog_path(dir: &Path, offset: u64) -> PathBuf {
    let fs = cfg(dir).mapped_file_size_commit_log;
    dir.join("commitlog")
        .join(format!("{:020}", offset / fs * fs))
}

fn patch(path: &Path, pos: u64, f: impl FnOnce(&mut [u8])) {
    let mut bytes = std::fs::read(path).unwrap();
    f(&mut bytes[pos as usize..]);
    std::fs::write(path, bytes).unwrap();
}

/// Read queue 0 from the start; every message served must be intact.
fn read_queue(store: &MessageStore) -> Result<Vec<Vec<u8>>, Error> {
    let mut out = Vec::new();
    let mut offset = store.min_offset_in_queue("C", 0);
    loop {
        let r = store.get_message("g", "C", 0, offset, 32, &MessageFilter::All)?;
        if r.status != GetStatus::Found {
            return Ok(out);
        }
        for m in &r.messages {
            out.push(m.decode()?.body);
        }
        offset = r.next_begin_offset;
    }
}

fn expect_corruption(dir: &Path, file_hint: &str) {
    match MessageStore::open(cfg(dir)) {
        Err(Error::Corruption { path, .. }) => {
            assert!(
                path.to_string_lossy().contains(file_hint),
                "{path:?} should name {file_hint}"
            )
        }
        Err(e) => panic!("expected Corruption naming {file_hint}, got {e}"),
        Ok(_) => panic!("expected Corruption naming {file_hint}, store opened"),
    }
}

#[test]
fn flipped_byte_in_a_middle_record_is_an_error_not_a_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let puts = populate(dir.path());
    let victim = &puts[N - 20];
    let path = commitlog_path(dir.path(), victim.commit_log_offset);
    let pos = victim.commit_log_offset % cfg(dir.path()).mapped_file_size_commit_log;
    patch(&path, pos + victim.wrote_bytes as u64 - 30, |b| {
        b[0] ^= 0x40
    }); // inside the body
    expect_corruption(dir.path(), "commitlog");
    // The file is untouched by the failed open: repairing the byte makes it open again.
    patch(&path, pos + victim.wrote_bytes as u64 - 30, |b| {
        b[0] ^= 0x40
    });
    let store = MessageStore::open(cfg(dir.path())).unwrap();
    assert_eq!(read_queue(&store).unwrap().len(), N);
}

#[test]
fn torn_last_record_is_truncated_and_everything_before_survives() {
    let dir = tempfile::tempdir().unwrap();
    let puts = populate(dir.path());
    let last = puts.last().unwrap();
    let path = commitlog_path(dir.path(), last.commit_log_offset);
    let pos = last.commit_log_offset % cfg(dir.path()).mapped_file_size_commit_log;
    // A torn write: the tail of the last record never reached the disk.
    patch(&path, pos + 40, |b| {
        b[..last.wrote_bytes as usize - 40].fill(0)
    });
    std::fs::write(dir.path().join("abort"), b"").unwrap();
    let store = MessageStore::open(cfg(dir.path())).unwrap();
    let rep = store.recovery_report();
    assert!(rep.abnormal);
    assert!(rep.commit_log.bytes_truncated > 0);
    assert_eq!(rep.commit_log.max_offset, last.commit_log_offset);
    let got = read_queue(&store).unwrap();
    assert_same(&got, N - 1, "torn tail");
    // Writes continue where the valid log ends.
    let r = store
        .put_message(&Message::new("C", b"next".to_vec()))
        .unwrap();
    assert_eq!(r.commit_log_offset, last.commit_log_offset);
    assert_eq!(r.queue_offset, (N - 1) as u64);
}

#[test]
fn zeroed_page_in_the_middle_is_an_error_but_at_the_tail_is_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let puts = populate(dir.path());
    let fs = cfg(dir.path()).mapped_file_size_commit_log;
    let last_file_start = puts.last().unwrap().commit_log_offset / fs * fs;
    let in_last: Vec<_> = puts
        .iter()
        .filter(|p| p.commit_log_offset >= last_file_start)
        .collect();
    assert!(in_last.len() > 20, "need records in the last file");
    let path = commitlog_path(dir.path(), last_file_start);
    let mid = in_last[in_last.len() / 3].commit_log_offset - last_file_start;
    let page = mid / 4096 * 4096;
    let saved = std::fs::read(&path).unwrap();
    patch(&path, page, |b| b[..4096].fill(0));
    expect_corruption(dir.path(), "commitlog");

    // Zero the page holding the tail instead: the records in it are lost, the rest survive.
    std::fs::write(&path, &saved).unwrap();
    let end = puts.last().unwrap().commit_log_offset + puts.last().unwrap().wrote_bytes as u64
        - last_file_start;
    let tail_page = (end - 1) / 4096 * 4096;
    patch(&path, tail_page, |b| b[..4096].fill(0));
    let store = MessageStore::open(cfg(dir.path())).unwrap();
    let survivors = puts
        .iter()
        .filter(|p| p.commit_log_offset + p.wrote_bytes as u64 <= last_file_start + tail_page)
        .count();
    let got = read_queue(&store).unwrap();
    assert_same(&got, survivors, "zeroed tail page");
}

#[test]
fn wrong_sizes_and_names_are_errors_and_stray_files_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let puts = populate(dir.path());
    let first = commitlog_path(dir.path(), 0);
    // A stray file is ignored.
    std::fs::write(dir.path().join("commitlog/README.txt"), b"notes").unwrap();
    let store = MessageStore::open(cfg(dir.path())).unwrap();
    assert_eq!(read_queue(&store).unwrap().len(), N);
    store.shutdown().unwrap();
    // A truncated file is an error naming it.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&first)
        .unwrap();
    f.set_len(1000).unwrap();
    expect_corruption(dir.path(), "00000000000000000000");
    f.set_len(cfg(dir.path()).mapped_file_size_commit_log)
        .unwrap();
    drop(f);
    // A file name that is not a multiple of the file size is an error naming it.
    let last = commitlog_path(dir.path(), puts.last().unwrap().commit_log_offset);
    let bogus = dir.path().join("commitlog/00000000000000000123");
    std::fs::copy(&last, &bogus).unwrap();
    expect_corruption(dir.path(), "00000000000000000123");
}

#[test]
fn damaged_or_missing_consume_queues_are_rebuilt() {
    for damage in ["delete", "zero", "flip", "truncate"] {
        let dir = tempfile::tempdir().unwrap();
        populate(dir.path());
        let qdir = dir.path().join("consumequeue/C/0");
        let mut files: Vec<_> = std::fs::read_dir(&qdir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert!(files.len() >= 3);
        let victim = &files[files.len() - 2];
        match damage {
            "delete" => std::fs::remove_dir_all(&qdir).unwrap(),
            "zero" => patch(victim, 0, |b| b[..400].fill(0)),
            "flip" => patch(victim, 200, |b| b[0] ^= 0x40), // high byte of a unit's offset
            "truncate" => {
                std::fs::remove_file(files.last().unwrap()).unwrap();
            }
            _ => unreachable!(),
        }
        let store = MessageStore::open(cfg(dir.path())).unwrap_or_else(|e| panic!("{damage}: {e}"));
        let got = read_queue(&store).unwrap_or_else(|e| panic!("{damage}: {e}"));
        assert_same(&got, N, damage);
        assert_eq!(store.max_offset_in_queue("C", 0), N as u64, "{damage}");
        let r = store
            .put_message(&Message::new("C", b"x".to_vec()))
            .unwrap();
        assert_eq!(r.queue_offset, N as u64, "{damage}: queue offsets continue");
    }
}

#[test]
fn damaged_checkpoint_falls_back_to_a_full_redispatch() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path());
    patch(&dir.path().join("checkpoint"), 0, |b| b[..64].fill(0xAB));
    std::fs::write(dir.path().join("abort"), b"").unwrap();
    let store = MessageStore::open(cfg(dir.path())).unwrap();
    assert_eq!(store.recovery_report().redispatched_from, 0);
    assert_eq!(read_queue(&store).unwrap().len(), N);
}

#[test]
fn random_byte_flips_never_panic_and_never_serve_bad_records() {
    // Deterministic pseudo-random positions over the whole last commitlog file.
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let base = tempfile::tempdir().unwrap();
    let puts = populate(base.path());
    let fs = cfg(base.path()).mapped_file_size_commit_log;
    let end = puts.last().unwrap().commit_log_offset + puts.last().unwrap().wrote_bytes as u64;
    let (mut opened, mut refused) = (0, 0);
    for _ in 0..25 {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(base.path(), dir.path());
        let at = next() % (end + 64);
        let path = commitlog_path(dir.path(), at);
        patch(&path, at % fs, |b| b[0] ^= (next() % 255 + 1) as u8);
        match MessageStore::open(cfg(dir.path())) {
            Ok(store) => {
                opened += 1;
                // Whatever is served decodes with a good CRC and is the message
                // stored at that queue offset; a bad record is an error, not data.
                let served = served_until_error(&store, "C", 0, |q| body(q as usize));
                assert!(served <= N);
            }
            Err(Error::Corruption { path, .. }) => {
                assert!(path.to_string_lossy().contains("commitlog"), "{path:?}");
                refused += 1
            }
            Err(e) => panic!("unexpected error kind: {e}"),
        }
    }
    assert_eq!(opened + refused, 25);
}

/// Read a queue from its start until the end or the first error. Every record
/// served must decode (CRC checked) and carry the expected body, topic, queue
/// and queue offset; an error must be `Corruption`. Returns how many were served.
fn served_until_error(
    store: &MessageStore,
    topic: &str,
    queue_id: u32,
    expected_body: impl Fn(u64) -> Vec<u8>,
) -> usize {
    let mut served = 0;
    let mut offset = store.min_offset_in_queue(topic, queue_id);
    loop {
        let r = match store.get_message("g", topic, queue_id, offset, 32, &MessageFilter::All) {
            Ok(r) => r,
            Err(Error::Corruption { .. }) => return served,
            Err(e) => panic!("read failed with a non-corruption error: {e}"),
        };
        if r.status != GetStatus::Found {
            return served;
        }
        for m in &r.messages {
            let e = m
                .decode()
                .unwrap_or_else(|e| panic!("served a record that does not decode: {e}"));
            assert_eq!(e.topic, topic);
            assert_eq!(e.queue_id, queue_id);
            assert_eq!(e.queue_offset, m.queue_offset);
            assert!(
                e.body == expected_body(m.queue_offset),
                "queue offset {} served the wrong body",
                m.queue_offset
            );
            served += 1;
        }
        offset = r.next_begin_offset;
    }
}

/// A tiny deterministic generator (xorshift64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// `got` must be exactly the first `n` bodies (compared without dumping them).
fn assert_same(got: &[Vec<u8>], n: usize, what: &str) {
    assert_eq!(got.len(), n, "{what}: message count");
    if let Some(i) = (0..n).find(|i| got[*i] != body(*i)) {
        panic!("{what}: message {i} differs");
    }
}

fn copy_dir(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&e.path(), &target);
        } else if e.file_name() != "lock" {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

const KEYED: usize = 600;

/// Small index files (several per store) and 128 KiB commitlog files.
fn keyed_cfg(dir: &Path) -> StoreConfig {
    let mut c = cfg(dir);
    c.max_hash_slot_num = 64;
    c.max_index_num = 256;
    c
}

fn keyed_body(i: usize) -> Vec<u8> {
    format!("keyed-{i:04}-{}", "x".repeat(900)).into_bytes()
}

fn wait_dispatched(store: &MessageStore) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while store.stats().dispatched_offset < store.commit_log_max_offset() {
        assert!(
            std::time::Instant::now() < deadline,
            "dispatch did not catch up"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// KEYED messages of about 1 KiB on topic K queue 0, keys `k<i>`, clean shutdown:
/// five commitlog files, several index files.
fn populate_keyed(dir: &Path) -> Vec<PutResult> {
    let store = MessageStore::open(keyed_cfg(dir)).unwrap();
    let puts: Vec<_> = (0..KEYED)
        .map(|i| {
            let m = Message::new("K", keyed_body(i)).with_keys([format!("k{i}")]);
            store.put_message(&m).unwrap()
        })
        .collect();
    wait_dispatched(&store);
    store.shutdown().unwrap();
    puts
}

#[track_caller]
fn expect_read_corruption<T: std::fmt::Debug>(
    r: Result<T, Error>,
    path: &Path,
    pos: u64,
    what: &str,
) {
    match r {
        Err(Error::Corruption {
            path: p, offset, ..
        }) => {
            assert_eq!(p, path, "{what}: file named");
            assert_eq!(offset, pos, "{what}: offset named");
        }
        other => panic!("{what}: expected Corruption in {path:?} at {pos}, got {other:?}"),
    }
}

#[test]
fn damaged_record_in_an_older_file_is_a_read_error_on_every_path() {
    let dir = tempfile::tempdir().unwrap();
    let puts = populate_keyed(dir.path());
    let fs = cfg(dir.path()).mapped_file_size_commit_log;
    assert!(
        common::commitlog_files(dir.path()).len() >= 5,
        "the damaged file must be older than the three files open walks"
    );
    // Record 3: a flipped body byte (only its CRC tells). Record 7: a flipped
    // byte of its physical-offset field.
    let body_victim = &puts[3];
    let body = keyed_body(3);
    let path = commitlog_path(dir.path(), body_victim.commit_log_offset);
    let rec_pos = body_victim.commit_log_offset % fs;
    let bytes = std::fs::read(&path).unwrap();
    let rec = &bytes[rec_pos as usize..(rec_pos + body_victim.wrote_bytes as u64) as usize];
    let body_at = rec.windows(body.len()).position(|w| w == body).unwrap();
    patch(&path, rec_pos + body_at as u64 + 500, |b| b[0] ^= 0x01);
    let off_victim = &puts[7];
    assert_eq!(
        commitlog_path(dir.path(), off_victim.commit_log_offset),
        path
    );
    patch(&path, off_victim.commit_log_offset % fs + 28 + 7, |b| {
        b[0] ^= 0x10
    });

    let store = MessageStore::open(keyed_cfg(dir.path())).unwrap();
    // Open did not walk the damaged file.
    assert!(store.recovery_report().commit_log.scanned_from >= fs);
    for (i, p) in [(3usize, body_victim), (7, off_victim)] {
        let pos = p.commit_log_offset % fs;
        let key = format!("k{i}");
        let w = format!("record {i}");
        expect_read_corruption(
            store.query_message("K", &key, 32, 0, i64::MAX),
            &path,
            pos,
            &format!("{w}: query_message"),
        );
        expect_read_corruption(
            store.query_messages_by_key("K", &key, 32, 0, i64::MAX),
            &path,
            pos,
            &format!("{w}: query_messages_by_key"),
        );
        expect_read_corruption(
            store.view_message_by_id(&p.msg_id()),
            &path,
            pos,
            &format!("{w}: view_message_by_id"),
        );
        expect_read_corruption(
            store.look_message_by_offset(p.commit_log_offset),
            &path,
            pos,
            &format!("{w}: look_message_by_offset"),
        );
        expect_read_corruption(
            store.read_record(p.commit_log_offset),
            &path,
            pos,
            &format!("{w}: read_record"),
        );
        // A pull skips the damaged record (the unit is right, the record is
        // not) and moves past it, serving the next one.
        let r = store
            .get_message("g", "K", 0, i as u64, 1, &MessageFilter::All)
            .unwrap_or_else(|e| panic!("{w}: get_message: {e}"));
        assert_eq!(r.status, GetStatus::Found, "{w}");
        assert_eq!(r.messages.len(), 1, "{w}");
        assert_eq!(r.messages[0].queue_offset, i as u64 + 1, "{w}");
        assert_eq!(r.next_begin_offset, i as u64 + 2, "{w}");
    }
    // Each damaged record is listed once, however often it is read.
    let _ = store.get_message("g", "K", 0, 3, 1, &MessageFilter::All);
    let listed = store.damaged_records();
    let at: Vec<_> = listed
        .iter()
        .map(|d| {
            (
                d.topic.as_str(),
                d.queue_id,
                d.queue_offset,
                d.commit_log_offset,
            )
        })
        .collect();
    assert_eq!(
        at,
        [
            ("K", 0, 3, body_victim.commit_log_offset),
            ("K", 0, 7, off_victim.commit_log_offset)
        ]
    );
    assert!(listed[0].reason.contains("CRC"), "{}", listed[0].reason);
    assert_eq!(store.stats().damaged_records, 2);
    // The neighbours are intact and served.
    let found = store
        .query_messages_by_key("K", "k5", 32, 0, i64::MAX)
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].body, keyed_body(5));
    let m = store
        .view_message_by_id(&puts[5].msg_id())
        .unwrap()
        .unwrap();
    assert_eq!(m.body, keyed_body(5));
    assert_eq!(
        store
            .read_record(puts[6].commit_log_offset)
            .unwrap()
            .unwrap()
            .len(),
        puts[6].wrote_bytes as usize
    );
}

#[test]
fn random_consume_queue_damage_is_rebuilt_or_refused() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let base = tempfile::tempdir().unwrap();
    populate(base.path());
    let qdir = |root: &Path| root.join("consumequeue/C/0");
    let mut names: Vec<_> = std::fs::read_dir(qdir(base.path()))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    let (mut rebuilt, mut refused) = (0, 0);
    for trial in 0..16 {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(base.path(), dir.path());
        let victim = qdir(dir.path()).join(&names[rng.below(names.len() as u64) as usize]);
        let len = std::fs::metadata(&victim).unwrap().len();
        let at = rng.below(len);
        let what = match rng.below(3) {
            0 => {
                let x = (rng.below(255) + 1) as u8;
                patch(&victim, at, |b| b[0] ^= x);
                format!("byte {at} of {victim:?} xor {x:#x}")
            }
            1 => {
                let n = (rng.below(200) + 1).min(len - at) as usize;
                patch(&victim, at, |b| b[..n].fill(0));
                format!("{n} bytes zeroed at {at} of {victim:?}")
            }
            _ => {
                let n = (rng.below(8) + 1).min(len - at) as usize;
                let v = rng.next().to_be_bytes();
                patch(&victim, at, |b| b[..n].copy_from_slice(&v[..n]));
                format!("{n} random bytes at {at} of {victim:?}")
            }
        };
        if trial % 2 == 1 {
            std::fs::write(dir.path().join("abort"), b"").unwrap();
        }
        match MessageStore::open(cfg(dir.path())) {
            Ok(store) => {
                let r = store.get_message("g", "C", 0, 0, 1, &MessageFilter::All);
                assert!(r.is_ok(), "{what}: {r:?}");
                let got = read_queue(&store).unwrap_or_else(|e| panic!("{what}: {e}"));
                assert_same(&got, N, &what);
                assert_eq!(store.max_offset_in_queue("C", 0), N as u64, "{what}");
                // The units are the right ones: tag codes included (no tags: 0).
                let mut offset = 0;
                while offset < N as u64 {
                    let r = store
                        .get_message("g", "C", 0, offset, 32, &MessageFilter::All)
                        .unwrap();
                    for m in &r.messages {
                        assert_eq!(m.tags_code, 0, "{what}: tag code of {}", m.queue_offset);
                    }
                    offset = r.next_begin_offset;
                }
                let rep = store.recovery_report();
                if rep.rebuilt_from_log_start {
                    rebuilt += 1;
                }
            }
            Err(Error::Corruption { path, .. }) => {
                assert!(
                    path.to_string_lossy().contains("consumequeue"),
                    "{what}: {path:?}"
                );
                refused += 1;
            }
            Err(e) => panic!("{what}: unexpected error kind: {e}"),
        }
    }
    assert!(rebuilt + refused > 0, "some damage must have been noticed");
}

#[test]
fn random_checkpoint_damage_recovers() {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let base = tempfile::tempdir().unwrap();
    populate(base.path());
    for trial in 0..10 {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(base.path(), dir.path());
        let ck = dir.path().join("checkpoint");
        // Mostly the fields (first 56 bytes), sometimes anywhere, sometimes a cut.
        let what = match rng.below(4) {
            0 => {
                let at = rng.below(4096);
                patch(&ck, at, |b| b[0] ^= 0x5A);
                format!("byte {at} flipped")
            }
            1 => {
                let len = rng.below(4096);
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&ck)
                    .unwrap()
                    .set_len(len)
                    .unwrap();
                format!("cut to {len} bytes")
            }
            _ => {
                let at = rng.below(56);
                let x = (rng.below(255) + 1) as u8;
                patch(&ck, at, |b| b[0] ^= x);
                format!("byte {at} xor {x:#x}")
            }
        };
        if trial % 2 == 0 {
            std::fs::write(dir.path().join("abort"), b"").unwrap();
        }
        match MessageStore::open(cfg(dir.path())) {
            Ok(store) => {
                let got = read_queue(&store).unwrap_or_else(|e| panic!("{what}: {e}"));
                assert_same(&got, N, &what);
                let r = store
                    .put_message(&Message::new("C", b"next".to_vec()))
                    .unwrap();
                assert_eq!(r.queue_offset, N as u64, "{what}: queue offsets continue");
            }
            Err(Error::Corruption { path, .. }) => {
                assert!(
                    path.to_string_lossy().contains("checkpoint"),
                    "{what}: {path:?}"
                )
            }
            Err(e) => panic!("{what}: unexpected error kind: {e}"),
        }
    }
}

#[test]
fn random_index_damage_never_serves_messages_of_other_keys() {
    let mut rng = Rng(0x0123_4567_89AB_CDEF);
    let base = tempfile::tempdir().unwrap();
    populate_keyed(base.path());
    let mut names: Vec<_> = std::fs::read_dir(base.path().join("index"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert!(names.len() >= 2, "several index files");
    let (mut opened, mut refused, mut query_errors) = (0, 0, 0);
    for trial in 0..12 {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(base.path(), dir.path());
        let victim = dir
            .path()
            .join("index")
            .join(&names[rng.below(names.len() as u64) as usize]);
        let len = std::fs::metadata(&victim).unwrap().len();
        // Damage a run of 1..=16 bytes: header, slots or entries.
        let at = rng.below(len);
        let n = (rng.below(16) + 1).min(len - at) as usize;
        let v: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
        patch(&victim, at, |b| b[..n].copy_from_slice(&v));
        let what = format!("{n} bytes at {at} of {victim:?}");
        if trial % 2 == 1 {
            std::fs::write(dir.path().join("abort"), b"").unwrap();
        }
        let store = match MessageStore::open(keyed_cfg(dir.path())) {
            Ok(s) => s,
            Err(Error::Corruption { path, .. }) => {
                assert!(path.to_string_lossy().contains("index"), "{what}: {path:?}");
                refused += 1;
                continue;
            }
            Err(e) => panic!("{what}: unexpected error kind: {e}"),
        };
        opened += 1;
        for k in (0..KEYED).step_by(7) {
            let key = format!("k{k}");
            match store.query_message("K", &key, 64, 0, i64::MAX) {
                Ok(r) => {
                    for m in &r.messages {
                        let e = m.decode().unwrap_or_else(|e| panic!("{what}: {e}"));
                        assert_eq!(e.topic, "K", "{what}");
                        assert!(
                            e.keys().contains(&key.as_str()),
                            "{what}: {key} served {:?}",
                            e.keys()
                        );
                        assert_eq!(e.body, keyed_body(k), "{what}");
                    }
                }
                Err(Error::Corruption { .. }) => query_errors += 1,
                Err(e) => panic!("{what}: query {key}: unexpected error kind: {e}"),
            }
        }
    }
    assert_eq!(opened + refused, 12);
    eprintln!("index damage: {opened} opened, {refused} refused, {query_errors} query errors");
}
