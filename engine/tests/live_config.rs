//! Store settings changed while the store runs (`MessageStore::set_live`):
//! the async flush schedule, retention, and refused values that change nothing.

use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferromq_engine::config::WarningKind;
use ferromq_engine::{Clock, DiskUsage, Error, Message, MessageStore, StoreConfig, StoreEnv};

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

fn put(store: &MessageStore, n: usize) {
    for i in 0..n {
        store
            .put_message(&Message::new(
                "L",
                format!("m{i:05}-{}", "l".repeat(500)).into_bytes(),
            ))
            .unwrap();
    }
}

/// True once `cond` holds, false if it still does not after `within`.
fn eventually(within: Duration, cond: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The store's log end is not durable for all of `quiet`.
fn stays_unflushed(store: &MessageStore, quiet: Duration) -> bool {
    let deadline = Instant::now() + quiet;
    while Instant::now() < deadline {
        if store.commit_log_flushed_offset() >= store.commit_log_max_offset() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

fn flushed(store: &MessageStore) -> bool {
    store.commit_log_flushed_offset() >= store.commit_log_max_offset()
}

#[test]
fn the_async_flush_schedule_changes_live() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = StoreConfig::new(dir.path());
    cfg.mapped_file_size_commit_log = 4 << 20;
    cfg.mapped_file_size_consume_queue = 20 * 1000;
    // An interval, a page count and a thorough interval that never flush
    // within the test.
    cfg.flush_interval_commit_log_ms = 600_000;
    cfg.flush_commit_log_least_pages = 100_000;
    cfg.flush_commit_log_thorough_interval_ms = 600_000;
    let store = MessageStore::open(cfg).unwrap();

    put(&store, 200);
    assert!(store.commit_log_max_offset() > 0);
    assert!(
        stays_unflushed(&store, Duration::from_millis(700)),
        "nothing flushes under the start schedule"
    );

    // Fewer pages: the flush thread is woken and flushes by the new rule now,
    // although its 10-minute interval has not passed.
    store.set_live("flushCommitLogLeastPages", "0").unwrap();
    assert!(
        eventually(Duration::from_secs(5), || flushed(&store)),
        "flushed {} of {}",
        store.commit_log_flushed_offset(),
        store.commit_log_max_offset()
    );

    // The interval is still 10 minutes: new puts wait.
    put(&store, 50);
    assert!(stays_unflushed(&store, Duration::from_millis(700)));

    // A short interval: the waiting bytes go at once, and later puts within
    // the new interval, with no further change.
    store.set_live("flushIntervalCommitLog", "20").unwrap();
    assert!(eventually(Duration::from_secs(5), || flushed(&store)));
    put(&store, 50);
    assert!(
        eventually(Duration::from_secs(5), || flushed(&store)),
        "the 20 ms interval is in effect"
    );

    let now = store.current_config();
    assert_eq!(now.flush_interval_commit_log_ms, 20);
    assert_eq!(now.flush_commit_log_least_pages, 0);
    assert_eq!(
        store.config().flush_interval_commit_log_ms,
        600_000,
        "config() keeps what the store opened with"
    );
    // The consume-queue schedule is live too.
    store.set_live("flushIntervalConsumeQueue", "15").unwrap();
    store.set_live("flushConsumeQueueLeastPages", "0").unwrap();
    store
        .set_live("flushConsumeQueueThoroughInterval", "1000")
        .unwrap();
    assert_eq!(store.current_config().flush_interval_consume_queue_ms, 15);
    store.shutdown().unwrap();
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: MessageStore,
    clock: Arc<FakeClock>,
    disk: Arc<FakeDisk>,
}

/// 64 KiB commitlog files, `messages` of about 520 bytes put and dispatched,
/// deletion at 04:00 after 72 h, clean passes only when the test asks.
fn retention_fixture(messages: usize) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(FakeClock::default());
    clock.hour.store(3, Ordering::SeqCst);
    let disk = Arc::new(FakeDisk::default());
    disk.permille.store(500, Ordering::SeqCst);
    let mut cfg = StoreConfig::new(dir.path());
    cfg.mapped_file_size_commit_log = 64 * 1024;
    cfg.mapped_file_size_consume_queue = 20 * 100;
    cfg.flush_interval_commit_log_ms = 10;
    cfg.flush_interval_consume_queue_ms = 10;
    cfg.delete_when = "04".into();
    cfg.file_reserved_time_hours = 72;
    cfg.delete_file_batch_max = 3;
    cfg.delete_commit_log_files_interval_ms = 1;
    cfg.clean_resource_interval_ms = 3_600_000;
    let env = StoreEnv {
        clock: clock.clone(),
        disk: disk.clone(),
    };
    let store = MessageStore::open_with_env(cfg, env).unwrap();
    put(&store, messages);
    store.flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.stats().dispatched_offset < store.commit_log_max_offset() {
        assert!(Instant::now() < deadline, "dispatch did not catch up");
        std::thread::sleep(Duration::from_millis(2));
    }
    store.flush().unwrap();
    Fixture {
        _dir: dir,
        store,
        clock,
        disk,
    }
}

#[test]
fn retention_follows_file_reserved_time_and_delete_when_changed_live() {
    let f = retention_fixture(1000);
    let files = f.store.stats().commit_log_files;
    assert!(files >= 8, "{files}");
    // Two hours later at 03:00: neither the hour nor the age is reached.
    f.clock.offset_ms.store(2 * HOUR_MS, Ordering::SeqCst);
    assert_eq!(f.store.run_clean_pass().commit_log_files_deleted, 0);

    // 03:00 becomes a delete hour, but 72 h are not over.
    f.store.set_live("deleteWhen", "03;16").unwrap();
    assert_eq!(f.store.current_config().delete_when, "03;16");
    let rep = f.store.run_clean_pass();
    assert!(rep.triggers.time_up, "03 is a delete hour now");
    assert_eq!(rep.commit_log_files_deleted, 0, "not yet 72 h old");

    // Files are kept one hour now: they are expired. The clean thread waits
    // an hour between passes; a shorter interval wakes it, and its own
    // passes delete every full file.
    f.store.set_live("fileReservedTime", "1").unwrap();
    f.store.set_live("cleanResourceInterval", "20").unwrap();
    assert!(
        eventually(Duration::from_secs(10), || f.store.stats().commit_log_files
            == 1),
        "files left: {}",
        f.store.stats().commit_log_files
    );
    assert!(f.store.commit_log_min_offset() > 0);
    // Puts go on.
    put(&f.store, 1);
    f.store.shutdown().unwrap();
}

#[test]
fn disk_max_used_space_ratio_changes_live() {
    let f = retention_fixture(600);
    f.disk.permille.store(500, Ordering::SeqCst);
    let rep = f.store.run_clean_pass();
    assert!(!rep.triggers.space_full, "50 % is under 75 %");
    assert_eq!(rep.commit_log_files_deleted, 0);
    assert!((f.store.retention_stats().disk_max_used_space_ratio - 0.75).abs() < 1e-9);

    f.store.set_live("diskMaxUsedSpaceRatio", "40").unwrap();
    assert!((f.store.retention_stats().disk_max_used_space_ratio - 0.40).abs() < 1e-9);
    let rep = f.store.run_clean_pass();
    assert!(rep.triggers.space_full, "50 % is over 40 %");
    assert!(rep.commit_log_files_deleted > 0);

    // Out of range: clamped into 10..=95 as a file's value is, with a warning.
    let w = f.store.set_live("diskMaxUsedSpaceRatio", "120").unwrap();
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].kind, WarningKind::Clamped);
    assert_eq!(f.store.current_config().disk_max_used_space_ratio, 95);
    f.store.shutdown().unwrap();
}

#[test]
fn bad_values_and_fixed_keys_are_refused_and_change_nothing() {
    let f = retention_fixture(10);
    let before = f.store.current_config();
    let refused = |key: &str, value: &str| match f.store.set_live(key, value) {
        Err(Error::Config {
            key: k, expected, ..
        }) => {
            assert_eq!(k, key);
            expected
        }
        other => panic!("{key}={value}: expected a config error, got {other:?}"),
    };
    assert!(refused("deleteWhen", "25").contains("hours from 0 to 23"));
    assert!(refused("deleteWhen", "4;x").contains("hours from 0 to 23"));
    assert!(refused("diskMaxUsedSpaceRatio", "abc").contains("integer"));
    assert!(refused("flushIntervalCommitLog", "0").contains("from 1 to"));
    assert!(refused("fileReservedTime", "-1").contains("integer"));
    assert!(refused("cleanFileForciblyEnable", "yes").contains("true or false"));
    assert!(refused("mapedFileSizeCommitLog", "4096").contains("fixed"));
    assert!(refused("brokerRole", "SLAVE").contains("fixed"));
    assert!(refused("storePathRootDir", "/tmp").contains("fixed"));
    assert!(refused("noSuchKey", "1").contains("fixed"));
    // All or nothing: a good value beside a bad one is not applied.
    let e = f
        .store
        .set_live_all(&[("fileReservedTime", "1"), ("deleteWhen", "25")])
        .unwrap_err();
    assert!(e.to_string().contains("deleteWhen"), "{e}");
    assert!(f
        .store
        .check_live(&[("fileReservedTime", "1"), ("diskMaxUsedSpaceRatio", "x")])
        .is_err());
    assert_eq!(f.store.current_config(), before, "nothing changed");
    // check_live accepts good values without applying them.
    f.store.check_live(&[("fileReservedTime", "1")]).unwrap();
    assert_eq!(f.store.current_config().file_reserved_time_hours, 72);
    f.store.shutdown().unwrap();
}
