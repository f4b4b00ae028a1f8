//! Retention: timed deletion at `deleteWhen`, the disk guard, files in use,
//! consume queues following the commitlog, manual deletion, and a real small
//! file system filled until puts are refused.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferromq_engine::io::{install_hook, IoHook};
use ferromq_engine::{
    Clock, DiskUsage, Error, GetStatus, Message, MessageFilter, MessageStore, StoreConfig, StoreEnv,
};

const HOUR_MS: i64 = 3_600_000;

/// Real time plus a settable offset, in a time zone where the hour is settable.
#[derive(Debug, Default)]
struct FakeClock {
    offset_ms: AtomicI64,
    hour: AtomicI64,
}

impl Clock for FakeClock {
    fn now_ms(&self) -> i64 {
        ferromq_engine::message::now_ms() + self.offset_ms.load(Ordering::SeqCst)
    }
    fn local_hour(&self, _now_ms: i64) -> u8 {
        self.hour.load(Ordering::SeqCst) as u8
    }
}

/// A disk whose used ratio the test sets (in thousandths).
#[derive(Debug, Default)]
struct FakeDisk {
    permille: AtomicU64,
}

impl DiskUsage for FakeDisk {
    fn used_ratio(&self, _path: &Path) -> std::io::Result<f64> {
        Ok(self.permille.load(Ordering::SeqCst) as f64 / 1000.0)
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: MessageStore,
    clock: Arc<FakeClock>,
    disk: Arc<FakeDisk>,
    per_file: u64,
}

fn config(dir: &Path) -> StoreConfig {
    let mut c = common::small_config(dir);
    c.delete_when = "04".into();
    c.file_reserved_time_hours = 72;
    c.delete_file_batch_max = 3;
    c.delete_commit_log_files_interval_ms = 1;
    c.clean_resource_interval_ms = 3_600_000; // passes run only when the test asks
    c
}

/// Read (and hold) the first messages of queue 0, then report the disk 80 %
/// full so that the next clean pass deletes files at once.
fn hold_first_messages_and_fill_disk(f: &Fixture) -> ferromq_engine::GetResult {
    let held = f
        .store
        .get_message("g", "R", 0, 0, 4, &MessageFilter::All)
        .unwrap();
    assert_eq!(held.messages.len(), 4);
    f.disk.permille.store(800, Ordering::SeqCst);
    held
}

/// The `i`-th plain message on `R` (about 510 bytes).
fn plain(i: usize) -> Message {
    Message::new("R", format!("m{i:05}-{}", "r".repeat(500)).into_bytes())
}

/// Put `n` plain messages on `R`.
fn put_plain(store: &MessageStore, n: usize) {
    for i in 0..n {
        store.put_message(&plain(i)).unwrap();
    }
}

fn fixture(messages: usize) -> Fixture {
    fixture_with(messages, false, |_| {})
}

/// A store with `messages` put on `R` queue 0 (with a key each when `keys`).
fn fixture_with(messages: usize, keys: bool, tune: impl FnOnce(&mut StoreConfig)) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(FakeClock::default());
    clock.hour.store(3, Ordering::SeqCst);
    let disk = Arc::new(FakeDisk::default());
    disk.permille.store(300, Ordering::SeqCst);
    let env = StoreEnv {
        clock: clock.clone(),
        disk: disk.clone(),
    };
    let mut cfg = config(dir.path());
    tune(&mut cfg);
    let store = MessageStore::open_with_env(cfg, env).unwrap();
    for i in 0..messages {
        store
            .put_message(&if keys {
                Message::new("R", format!("m{i:05}-{}", "r".repeat(490)).into_bytes())
                    .with_keys([format!("k{i}")])
            } else {
                plain(i)
            })
            .unwrap();
    }
    store.flush().unwrap();
    wait_dispatched(&store);
    let per_file = 64 * 1024 / 600;
    Fixture {
        _dir: dir,
        store,
        clock,
        disk,
        per_file,
    }
}

fn wait_dispatched(store: &MessageStore) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.stats().dispatched_offset < store.commit_log_max_offset() {
        assert!(Instant::now() < deadline, "dispatch did not catch up");
        std::thread::sleep(Duration::from_millis(2));
    }
    store.flush().unwrap();
}

/// Read everything from `from`, checking each body is the one put at its offset.
fn read_from(store: &MessageStore, from: u64) -> u64 {
    let mut offset = from;
    let mut n = 0;
    loop {
        let r = store
            .get_message("g", "R", 0, offset, 32, &MessageFilter::All)
            .unwrap();
        if r.status != GetStatus::Found {
            assert_eq!(r.status, GetStatus::OffsetOverflowOne, "at {offset}");
            return n;
        }
        for m in &r.messages {
            let b = m.decode().unwrap().body;
            assert!(b.starts_with(format!("m{:05}-", m.queue_offset).as_bytes()));
            n += 1;
        }
        offset = r.next_begin_offset;
    }
}

#[test]
fn expired_files_go_at_the_delete_hour_only() {
    let f = fixture(1000);
    let files_before = f.store.stats().commit_log_files;
    assert!(files_before >= 8, "{files_before}");
    // Wrong hour, or not yet expired: nothing goes.
    f.clock.offset_ms.store(73 * HOUR_MS, Ordering::SeqCst);
    assert_eq!(
        f.store.run_clean_pass().commit_log_files_deleted,
        0,
        "03:00 is not in deleteWhen"
    );
    f.clock.hour.store(4, Ordering::SeqCst);
    f.clock.offset_ms.store(71 * HOUR_MS, Ordering::SeqCst);
    assert_eq!(
        f.store.run_clean_pass().commit_log_files_deleted,
        0,
        "not yet 72 h old"
    );
    // 04:00 and 73 h later: oldest first, at most deleteFileBatchMax per pass.
    f.clock.offset_ms.store(73 * HOUR_MS, Ordering::SeqCst);
    let rep = f.store.run_clean_pass();
    assert!(rep.triggers.time_up && !rep.triggers.clean_at_once);
    assert_eq!(rep.commit_log_files_deleted, 3);
    assert_eq!(rep.commit_log_min_offset, 3 * 64 * 1024);
    assert!(rep.consume_queue_files_deleted > 0, "consume queues follow");
    // Readers behind the new minimum skip forward with OFFSET_TOO_SMALL.
    let r = f
        .store
        .get_message("g", "R", 0, 0, 32, &MessageFilter::All)
        .unwrap();
    assert_eq!(r.status, GetStatus::OffsetTooSmall);
    let min = r.next_begin_offset;
    assert!(min >= 3 * f.per_file, "min {min}");
    assert_eq!(min, f.store.min_offset_in_queue("R", 0));
    // Everything still in retention is readable.
    assert_eq!(read_from(&f.store, min), 1000 - min);
    // More passes never delete the file being written.
    for _ in 0..10 {
        f.store.run_clean_pass();
    }
    assert_eq!(f.store.stats().commit_log_files, 1);
    let last_min = f.store.min_offset_in_queue("R", 0);
    assert_eq!(read_from(&f.store, last_min), 1000 - last_min);
    // Puts go on.
    let r = f
        .store
        .put_message(&Message::new("R", b"m01000-after".to_vec()))
        .unwrap();
    assert_eq!(r.queue_offset, 1000);
}

#[test]
fn a_full_disk_deletes_now_and_refuses_puts_until_usage_falls() {
    let f = fixture(600);
    // Above diskMaxUsedSpaceRatio (75%): deletion runs now, whatever the hour, unexpired files too.
    f.disk.permille.store(800, Ordering::SeqCst);
    let rep = f.store.run_clean_pass();
    assert!(rep.triggers.space_full && rep.triggers.clean_at_once && !rep.triggers.time_up);
    assert_eq!(rep.commit_log_files_deleted, 3);
    assert!(!rep.disk_full);
    // Above the 90% warning level: puts are refused, nothing stored is harmed.
    f.disk.permille.store(910, Ordering::SeqCst);
    assert!(f.store.run_clean_pass().disk_full);
    let before = f.store.commit_log_max_offset();
    match f.store.put_message(&Message::new("R", b"x".to_vec())) {
        Err(Error::DiskFull(why)) => assert!(why.contains("diskSpaceWarningLevelRatio"), "{why}"),
        other => panic!("expected DiskFull, got {other:?}"),
    }
    assert_eq!(f.store.commit_log_max_offset(), before);
    let min = f.store.min_offset_in_queue("R", 0);
    assert_eq!(read_from(&f.store, min), 600 - min);
    // Still refused at 87% (above the clean-forcibly ratio), accepted again below 85%.
    f.disk.permille.store(870, Ordering::SeqCst);
    f.store.run_clean_pass();
    assert!(f
        .store
        .put_message(&Message::new("R", b"x".to_vec()))
        .is_err());
    f.disk.permille.store(500, Ordering::SeqCst);
    assert!(!f.store.run_clean_pass().disk_full);
    let r = f
        .store
        .put_message(&Message::new("R", b"m00600-resumed".to_vec()))
        .unwrap();
    assert_eq!(r.queue_offset, 600);
    let st = f.store.retention_stats();
    assert!(!st.disk_full && st.last_pass.is_some());
    assert_eq!(st.disk_used_ratio, 0.5);
}

#[test]
fn a_file_still_being_read_stays_mapped_until_the_reader_lets_go() {
    let f = fixture(600);
    let held = hold_first_messages_and_fill_disk(&f);
    let rep = f.store.run_clean_pass();
    assert!(rep.commit_log_files_deleted > 0);
    assert!(
        !f._dir
            .path()
            .join("commitlog/00000000000000000000")
            .exists(),
        "unlinked"
    );
    assert_eq!(
        rep.files_still_held, 1,
        "the reader still holds the first file"
    );
    // The held bytes are intact.
    for (i, m) in held.messages.iter().enumerate() {
        assert!(m
            .decode()
            .unwrap()
            .body
            .starts_with(format!("m{i:05}-").as_bytes()));
    }
    drop(held);
    f.disk.permille.store(300, Ordering::SeqCst);
    assert_eq!(
        f.store.run_clean_pass().files_still_held,
        0,
        "released once the reader let go"
    );
}

#[test]
fn unflushed_bytes_are_never_deleted_and_manual_deletion_works() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(FakeClock::default());
    clock.hour.store(3, Ordering::SeqCst);
    let disk = Arc::new(FakeDisk::default());
    disk.permille.store(300, Ordering::SeqCst);
    let mut cfg = config(dir.path());
    cfg.flush_interval_commit_log_ms = 3_600_000; // the flush thread stays asleep
    let store = MessageStore::open_with_env(
        cfg,
        StoreEnv {
            clock: clock.clone(),
            disk: disk.clone(),
        },
    )
    .unwrap();
    put_plain(&store, 600);
    disk.permille.store(800, Ordering::SeqCst);
    assert_eq!(
        store.run_clean_pass().commit_log_files_deleted,
        0,
        "nothing flushed: nothing may go"
    );
    disk.permille.store(300, Ordering::SeqCst);
    wait_dispatched(&store); // flushes
                             // Manual deletion runs whatever the hour, but only takes expired files.
    store.execute_delete_files_manually();
    assert_eq!(
        store.run_clean_pass().commit_log_files_deleted,
        0,
        "not expired yet"
    );
    clock.offset_ms.store(100 * HOUR_MS, Ordering::SeqCst);
    let rep = store.run_clean_pass();
    assert!(rep.triggers.manual && !rep.triggers.time_up);
    // The manual request also woke the clean thread, which may have run a pass of
    // its own: count what is gone, not what this pass did.
    assert!(
        rep.commit_log_min_offset >= 3 * 64 * 1024,
        "{rep:?} {:?}",
        store.stats()
    );
    store.shutdown().unwrap();
    // Reopen: the deletions hold, and consume queues agree.
    let store = MessageStore::open(config(dir.path())).unwrap();
    let min = store.min_offset_in_queue("R", 0);
    assert!(min > 0);
    assert_eq!(read_from(&store, min), 600 - min);
}

/// Allocated 512-byte blocks of the file this process holds open under
/// `path` (found through `/proc/self/fd`, so it works after the unlink).
fn held_file_blocks(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    let want = path.to_string_lossy().into_owned();
    for e in std::fs::read_dir("/proc/self/fd").ok()?.flatten() {
        let Ok(target) = std::fs::read_link(e.path()) else {
            continue;
        };
        let t = target.to_string_lossy();
        if t == want || t == format!("{want} (deleted)") {
            return std::fs::metadata(e.path()).ok().map(|m| m.blocks());
        }
    }
    None
}

#[test]
fn a_file_held_past_destroy_interval_is_released_forcibly_and_reads_zeros() {
    let f = fixture_with(600, false, |c| {
        c.destroy_maped_file_interval_forcibly_ms = 60_000;
        c.redelete_hanged_file_interval_ms = 10_000;
    });
    let first = f._dir.path().join("commitlog/00000000000000000000");
    let held = hold_first_messages_and_fill_disk(&f);
    let rep = f.store.run_clean_pass();
    assert_eq!(rep.commit_log_files_deleted, 3);
    assert!(!first.exists(), "unlinked at once");
    assert_eq!(rep.files_still_held, 1);
    let blocks = held_file_blocks(&first).expect("the held file is still open");
    assert!(blocks > 0, "a held, unlinked file still takes disk space");
    f.disk.permille.store(300, Ordering::SeqCst);

    // The first retry (10 s on) is before destroyMapedFileIntervalForcibly: the
    // reader keeps its bytes.
    f.clock.offset_ms.store(10_000, Ordering::SeqCst);
    let rep = f.store.run_clean_pass();
    assert!(
        rep.redelete_ran && rep.files_released_forcibly == 0,
        "{rep:?}"
    );
    assert_eq!(rep.files_still_held, 1);
    for (i, m) in held.messages.iter().enumerate() {
        let body = m.decode().unwrap().body;
        assert!(body.starts_with(format!("m{i:05}-").as_bytes()));
    }

    // Past it, at a retry: released forcibly.
    f.clock.offset_ms.store(61_000, Ordering::SeqCst);
    let rep = f.store.run_clean_pass();
    assert_eq!(rep.files_released_forcibly, 1, "{rep:?}");
    assert_eq!(rep.files_still_held, 0);
    assert_eq!(rep.files_hanging, 0);
    assert_eq!(rep.next_redelete_ms, None, "nothing waits any more");
    assert_eq!(
        held_file_blocks(&first),
        Some(0),
        "the file's disk blocks are freed although the reader still holds it"
    );
    // The reader's memory is still mapped, readable, and zeros: its records no
    // longer decode (a corruption outcome, never a wrong message or a crash).
    for m in &held.messages {
        assert!(!m.bytes().is_empty());
        assert!(m.bytes().iter().all(|b| *b == 0));
        assert!(m.decode().is_err());
    }
    let r = f
        .store
        .get_message("g", "R", 0, 0, 4, &MessageFilter::All)
        .unwrap();
    assert_eq!(r.status, GetStatus::OffsetTooSmall);
    drop(held);
    let min = f.store.min_offset_in_queue("R", 0);
    assert_eq!(read_from(&f.store, min), 600 - min);
}

/// Fails every removal below its root while `fail` is set, counting attempts.
#[derive(Default)]
struct FailRemovals {
    fail: std::sync::atomic::AtomicBool,
    attempts: std::sync::atomic::AtomicUsize,
}

impl IoHook for FailRemovals {
    fn before_remove(&self, _path: &Path) -> std::io::Result<()> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        if self.fail.load(Ordering::SeqCst) {
            return Err(std::io::Error::from_raw_os_error(16)); // EBUSY
        }
        Ok(())
    }
}

#[test]
fn failed_deletions_are_retried_every_redelete_interval() {
    let f = fixture_with(600, true, |c| {
        c.redelete_hanged_file_interval_ms = 10_000;
        c.max_hash_slot_num = 16;
        c.max_index_num = 64; // many small index files
    });
    let root = f._dir.path();
    let index_files = || std::fs::read_dir(root.join("index")).map_or(0, |d| d.count());
    let index_before = index_files();
    assert!(index_before >= 3, "{index_before} index files");
    let hook = Arc::new(FailRemovals::default());
    hook.fail.store(true, Ordering::SeqCst);
    let _guard = install_hook(root, hook.clone());
    f.disk.permille.store(800, Ordering::SeqCst);
    let rep = f.store.run_clean_pass();
    assert_eq!(rep.commit_log_files_deleted, 3);
    assert!(rep.consume_queue_files_deleted > 0);
    assert!(rep.deletions_failed > 3, "{rep:?}");
    assert_eq!(rep.commit_log_min_offset, 3 * 64 * 1024, "out of the log");
    f.disk.permille.store(300, Ordering::SeqCst);
    let first = root.join("commitlog/00000000000000000000");
    assert!(first.exists(), "the unlink failed");
    let first_cq = root.join("consumequeue/R/0/00000000000000000000");
    assert!(first_cq.exists());
    assert_eq!(index_files(), index_before);

    let attempts = || hook.attempts.load(Ordering::SeqCst);
    let a0 = attempts();
    // Not before redeleteHangedFileInterval.
    f.clock.offset_ms.store(5_000, Ordering::SeqCst);
    let rep = f.store.run_clean_pass();
    assert!(!rep.redelete_ran);
    assert_eq!(attempts(), a0, "no retry before the interval");
    // At the interval: retried (and failing again).
    f.clock.offset_ms.store(10_000, Ordering::SeqCst);
    let rep = f.store.run_clean_pass();
    assert!(rep.redelete_ran, "{rep:?}");
    let a1 = attempts();
    assert!(
        a1 > a0 + 3,
        "commitlog, consume queue and index retried: {a0} -> {a1}"
    );
    assert!(first.exists());
    // The timer restarted at the retry: none 5 s later.
    f.clock.offset_ms.store(15_000, Ordering::SeqCst);
    let rep = f.store.run_clean_pass();
    assert!(!rep.redelete_ran);
    assert_eq!(attempts(), a1, "the retry timer restarts at each retry");
    // Next interval, the disk lets go: everything is deleted.
    hook.fail.store(false, Ordering::SeqCst);
    f.clock.offset_ms.store(20_000, Ordering::SeqCst);
    let rep = f.store.run_clean_pass();
    assert!(rep.redelete_ran, "{rep:?}");
    assert!(rep.deletions_retried > 3, "{rep:?}");
    assert!(rep.index_files_deleted > 0, "{rep:?}");
    assert!(!first.exists() && !first_cq.exists());
    assert!(index_files() < index_before);
    assert_eq!(rep.files_still_held, 0);
    assert_eq!(rep.next_redelete_ms, None);
    let min = f.store.min_offset_in_queue("R", 0);
    assert_eq!(read_from(&f.store, min), 600 - min);
}

/// Holds every consume-queue file creation while `hold` is set (at most 20 s).
#[derive(Default)]
struct HoldDispatch {
    hold: std::sync::atomic::AtomicBool,
}

/// Lets the dispatcher go when the test ends, passed or not.
struct LetGo(Arc<HoldDispatch>);

impl Drop for LetGo {
    fn drop(&mut self) {
        self.0.hold.store(false, Ordering::SeqCst);
    }
}

impl IoHook for HoldDispatch {
    fn before_create(&self, path: &Path, _len: usize) -> std::io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while path.components().any(|c| c.as_os_str() == "consumequeue")
            && self.hold.load(Ordering::SeqCst)
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(())
    }
}

#[test]
fn bytes_not_yet_dispatched_are_never_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(FakeClock::default());
    clock.hour.store(4, Ordering::SeqCst);
    clock.offset_ms.store(100 * HOUR_MS, Ordering::SeqCst); // everything expired
    let disk = Arc::new(FakeDisk::default());
    disk.permille.store(800, Ordering::SeqCst); // and the disk is full
    let hook = Arc::new(HoldDispatch::default());
    hook.hold.store(true, Ordering::SeqCst);
    let _guard = install_hook(dir.path(), hook.clone());
    let store = MessageStore::open_with_env(
        config(dir.path()),
        StoreEnv {
            clock: clock.clone(),
            disk: disk.clone(),
        },
    )
    .unwrap();
    // Declared after the store, so dropped before it: a failing test does not
    // leave the dispatcher held while the store shuts down.
    let _let_go = LetGo(hook.clone());
    put_plain(&store, 600);
    // Durable, but the dispatcher is stuck creating the first consume-queue file.
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.stats().commit_log_flushed_offset < store.commit_log_max_offset() {
        assert!(Instant::now() < deadline, "flush did not catch up");
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(store.stats().dispatched_offset, 0);
    let rep = store.run_clean_pass();
    assert!(rep.triggers.clean_at_once && rep.triggers.time_up);
    assert_eq!(
        rep.commit_log_files_deleted, 0,
        "durable but undispatched bytes must stay"
    );
    assert!(dir.path().join("commitlog/00000000000000000000").exists());
    hook.hold.store(false, Ordering::SeqCst);
    wait_dispatched(&store);
    let rep = store.run_clean_pass();
    assert_eq!(
        rep.commit_log_files_deleted, 3,
        "once dispatched they may go"
    );
    let min = store.min_offset_in_queue("R", 0);
    assert_eq!(read_from(&store, min), 600 - min);
    store.shutdown().unwrap();
}

/// Mounts a small tmpfs (root only), fills it until the guard refuses puts,
/// checks what was stored, frees space, and sees puts resume.
#[test]
fn a_real_small_file_system_fills_and_recovers() {
    if not_root() {
        eprintln!(
            "SKIPPED a_real_small_file_system_fills_and_recovers: needs root to mount a tmpfs"
        );
        return;
    }
    let base = tempfile::tempdir().unwrap();
    let mnt = base.path().join("fs");
    std::fs::create_dir_all(&mnt).unwrap();
    let st = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=24m", "tmpfs"])
        .arg(&mnt)
        .status();
    if !matches!(st, Ok(s) if s.success()) {
        eprintln!("SKIPPED a_real_small_file_system_fills_and_recovers: mount -t tmpfs is not allowed here");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
    let _guard = Unmount(mnt.clone());

    let clock = Arc::new(FakeClock::default());
    clock.hour.store(3, Ordering::SeqCst);
    let mut cfg = common::small_config(&mnt);
    cfg.mapped_file_size_commit_log = 1024 * 1024;
    cfg.clean_resource_interval_ms = 20;
    cfg.clean_file_forcibly_enable = false; // only expired files may go: the disk really fills
    cfg.prefault_ahead_bytes = 0;
    // Refuse puts above 60 % of the 24 MiB: the 9.6 MiB left is far more than the
    // clean thread (every 20 ms) lets the producer write between two looks
    // (at most 200 KiB here, plus a 1 MiB file made ahead), so the guard must
    // refuse before the file system ever answers ENOSPC. Resume below 50 %.
    cfg.disk_space_warning_level_ratio = 60;
    cfg.disk_space_clean_forcibly_ratio = 50;
    let env = StoreEnv {
        clock: clock.clone(),
        disk: Arc::new(ferromq_engine::retention::StatvfsDiskUsage),
    };
    let store = MessageStore::open_with_env(cfg, env).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut stored = 0u64;
    let refusal = loop {
        assert!(Instant::now() < deadline, "the disk never filled");
        match store.put_message(&Message::new(
            "R",
            format!("m{stored:05}-{}", "f".repeat(900)).into_bytes(),
        )) {
            Ok(_) => stored += 1,
            Err(e) => break e,
        }
        if stored % 200 == 0 {
            std::thread::sleep(Duration::from_millis(25)); // let the clean thread look at the disk
        }
    };
    assert!(
        matches!(refusal, Error::DiskFull(_)),
        "the guard must refuse before the file system is full: {refusal}"
    );
    let st = store.retention_stats();
    assert!(st.disk_full, "{st:?}");
    assert!(
        st.disk_used_ratio > 0.6 && st.disk_used_ratio < 0.9,
        "refused at the warning level, well before ENOSPC: {st:?}"
    );
    assert!(stored > 1000, "stored {stored}");
    // Refused again, and still nothing is lost.
    assert!(matches!(
        store.put_message(&Message::new("R", b"refused".to_vec())),
        Err(Error::DiskFull(_))
    ));
    eprintln!("tmpfs 24 MiB: {stored} messages stored, then refused with: {refusal}");
    wait_dispatched(&store);
    assert_eq!(
        read_from(&store, 0),
        stored,
        "every stored message is intact"
    );
    // Free space: old files expire; the guard deletes them and puts resume by themselves.
    clock.offset_ms.store(100 * HOUR_MS, Ordering::SeqCst);
    store.execute_delete_files_manually();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < deadline, "puts did not resume");
        if store
            .put_message(&Message::new(
                "R",
                format!("m{stored:05}-again").into_bytes(),
            ))
            .is_ok()
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let st = store.retention_stats();
    assert!(st.commit_log_min_offset > 0 && !st.disk_full, "{st:?}");
    assert!(st.disk_used_ratio < 0.5, "{st:?}");
    // The resumed put is stored and reads back (the clean thread may still be
    // deleting old files, so only its own offset is read here).
    wait_dispatched(&store);
    let r = store
        .get_message("g", "R", 0, stored, 1, &MessageFilter::All)
        .unwrap();
    assert_eq!(r.status, GetStatus::Found);
    assert_eq!(
        r.messages[0].decode().unwrap().body,
        format!("m{stored:05}-again").into_bytes()
    );
    store.shutdown().unwrap();
}

fn not_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() != "0")
        .unwrap_or(true)
}
