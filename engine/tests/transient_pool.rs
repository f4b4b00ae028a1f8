//! The transient-store-pool write path: puts land in locked buffers, readers
//! see only committed bytes, an exhausted pool answers busy and writes nothing,
//! and a failed commit fences the store. (The crash, power-loss and corruption
//! tests also run on this path: FERROMQ_TEST_WRITE_PATH=pool, see .ci/run.)

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ferromq_engine::io::{install_hook, IoHook};
use ferromq_engine::{Error, GetStatus, Message, MessageFilter, MessageStore, StoreConfig};

fn cfg(dir: &Path, buffers: u32) -> StoreConfig {
    let mut c = common::small_config(dir);
    c.transient_store_pool_enable = true;
    c.transient_store_pool_size = buffers;
    c.commit_interval_commit_log_ms = 3_600_000; // commits only when the test flushes
    c.commit_commit_log_thorough_interval_ms = 3_600_000;
    // ... and puts never wake the commit service (they do once this many pages wait).
    c.commit_commit_log_least_pages = 1 << 20;
    c
}

#[test]
fn readers_see_only_committed_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(cfg(dir.path(), 2)).unwrap();
    assert!(store.stats().transient_store_pool);
    let backend = store.stats().commit_backend;
    assert!(
        backend == "io_uring" || backend.starts_with("pwrite ("),
        "{backend}"
    );
    eprintln!(
        "commit backend: {backend}, registered buffers: {}",
        store.stats().commit_registered_buffers
    );
    if backend == "io_uring" {
        // The pool's buffers are registered with the ring (when the kernel
        // lets the ring exist it lets it register locked anonymous memory).
        assert!(store.stats().commit_registered_buffers);
    }
    for i in 0..10 {
        store
            .put_message(&Message::new("P", format!("m{i}").into_bytes()))
            .unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    let r = store
        .get_message("g", "P", 0, 0, 32, &MessageFilter::All)
        .unwrap();
    assert_ne!(r.status, GetStatus::Found, "nothing committed yet");
    assert!(
        store.read_commit_log(0, 1024).is_none(),
        "not streamed to slaves either"
    );
    assert_eq!(store.stats().commit_counters.bytes, 0);
    store.flush().unwrap(); // commits, then flushes
    let c = store.stats().commit_counters;
    assert!(c.writes >= 1 && c.bytes > 0, "{c:?}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while store.max_offset_in_queue("P", 0) < 10 {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let r = store
        .get_message("g", "P", 0, 0, 32, &MessageFilter::All)
        .unwrap();
    assert_eq!(r.messages.len(), 10);
    assert_eq!(r.messages[9].decode().unwrap().body, b"m9");
    store.shutdown().unwrap();
    // And they are on disk: a reopened store (mapped path) reads them.
    let store = MessageStore::open(common::small_config(dir.path())).unwrap();
    assert_eq!(store.max_offset_in_queue("P", 0), 10);
}

#[test]
fn an_exhausted_pool_answers_busy_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(cfg(dir.path(), 1)).unwrap();
    let mut stored = 0;
    let err = loop {
        match store.put_message(&Message::new("P", vec![1u8; 1000])) {
            Ok(_) => stored += 1,
            Err(e) => break e,
        }
        assert!(stored < 1000);
    };
    assert!(matches!(err, Error::Busy(_)), "{err}");
    assert_eq!(store.stats().transient_store_pool_available, 0);
    let end = store.commit_log_max_offset();
    assert!(matches!(
        store.put_message(&Message::new("P", vec![1u8; 1000])),
        Err(Error::Busy(_))
    ));
    assert_eq!(
        store.commit_log_max_offset(),
        end,
        "nothing written while busy"
    );
    // Committing the full file returns its buffer: puts resume.
    store.flush().unwrap();
    store
        .put_message(&Message::new("P", vec![2u8; 1000]))
        .unwrap();
    store.flush().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while store.max_offset_in_queue("P", 0) < stored + 1 {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

struct FailCommits(AtomicBool);

impl IoHook for FailCommits {
    fn before_sync(&self, _: &Path, _: usize, _: usize) -> std::io::Result<()> {
        if self.0.load(Ordering::SeqCst) {
            Err(std::io::Error::from_raw_os_error(5))
        } else {
            Ok(())
        }
    }
}

#[test]
fn a_failed_commit_fences_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Arc::new(FailCommits(AtomicBool::new(false)));
    let _g = install_hook(dir.path(), hook.clone());
    let store = MessageStore::open(cfg(dir.path(), 2)).unwrap();
    store
        .put_message(&Message::new("P", b"a".to_vec()))
        .unwrap();
    hook.0.store(true, Ordering::SeqCst);
    assert!(store.flush().is_err());
    hook.0.store(false, Ordering::SeqCst);
    assert!(matches!(
        store.put_message(&Message::new("P", b"b".to_vec())),
        Err(Error::Fenced(_))
    ));
}

#[test]
fn io_uring_can_be_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path(), 2);
    c.io_uring_enable = false;
    let store = MessageStore::open(c).unwrap();
    assert_eq!(store.stats().commit_backend, "pwrite (ioUringEnable=false)");
    store
        .put_message(&Message::new("P", b"x".to_vec()))
        .unwrap();
    store.flush().unwrap();
    store.shutdown().unwrap();
    let store = MessageStore::open(common::small_config(dir.path())).unwrap();
    assert!(store.commit_log_max_offset() > 0);
}

#[test]
fn sync_flush_on_the_pool_writes_and_syncs_each_group_commit() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path(), 4);
    c.flush_disk_type = ferromq_engine::FlushDiskType::SyncFlush;
    c.sync_flush_timeout_ms = 10_000;
    // RocketMQ's rule by default: no pool under SYNC_FLUSH.
    c.transient_store_pool_sync_flush_enable = false;
    let store = MessageStore::open(c.clone()).unwrap();
    assert!(!store.stats().transient_store_pool);
    store.shutdown().unwrap();

    c.transient_store_pool_sync_flush_enable = true;
    let store = Arc::new(MessageStore::open(c).unwrap());
    assert!(store.stats().transient_store_pool);
    let before = store.stats().commit_counters;
    // The commit service sleeps an hour: only group commits make these durable.
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for i in 0..50 {
                    let r = store
                        .put_message(&Message::new("S", format!("t{t}-m{i}").into_bytes()))
                        .unwrap();
                    assert_eq!(r.status, ferromq_engine::PutStatus::PutOk);
                    assert!(
                        store.stats().commit_log_flushed_offset
                            >= r.commit_log_offset + r.wrote_bytes as u64
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let c = store.stats().commit_counters;
    assert!(c.syncs > before.syncs, "{c:?}");
    assert!(c.syncs <= 200, "at most one sync per put: {c:?}");
    eprintln!("200 sync puts on the pool: {c:?}");
    // Readable at once (committed), and on disk in the file itself.
    let r = store
        .get_message("g", "S", 0, 0, 32, &MessageFilter::All)
        .unwrap();
    assert_eq!(r.status, GetStatus::Found);
    let end = store.stats().commit_log_flushed_offset as usize;
    let file = std::fs::read(dir.path().join("commitlog").join(format!("{:020}", 0))).unwrap();
    let on_disk = &file[..end.min(file.len())];
    for t in 0..4 {
        let needle = format!("t{t}-m49");
        assert!(
            on_disk
                .windows(needle.len())
                .any(|w| w == needle.as_bytes()),
            "{needle} not in the file"
        );
    }
    store.shutdown().unwrap();
}

#[test]
fn puts_wake_the_commit_service_once_enough_pages_wait() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path(), 4);
    c.commit_commit_log_least_pages = 4;
    let store = MessageStore::open(c).unwrap();
    // The commit service sleeps an hour unless puts wake it: 3 pages wait, no commit.
    for _ in 0..10 {
        store
            .put_message(&Message::new("W", vec![7u8; 1000]))
            .unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(
        store.stats().commit_counters.bytes,
        0,
        "fewer than 4 pages wait"
    );
    // Past 4 pages the put wakes it.
    for _ in 0..10 {
        store
            .put_message(&Message::new("W", vec![7u8; 1000]))
            .unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while store.stats().commit_counters.bytes == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the commit service was not woken"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    store.shutdown().unwrap();
}
