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
                // Whatever is served decodes with a good CRC; a bad one is an error, not data.
                let _ = read_queue(&store);
            }
            Err(Error::Corruption { .. }) => refused += 1,
            Err(e) => panic!("unexpected error kind: {e}"),
        }
    }
    assert_eq!(opened + refused, 25);
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
