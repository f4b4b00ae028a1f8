//! Soak: producers and consumers run while the clean service deletes files
//! under them. No panic, no message served from a deleted file, everything in
//! retention readable, and consumers that fall behind skip forward with
//! OFFSET_TOO_SMALL. Bounded: `FERROMQ_SOAK_SECS` (default 4) seconds of load,
//! longer (at most 60 s) until a slow consumer has been overtaken.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferromq_engine::{DiskUsage, GetStatus, Message, MessageFilter, MessageStore, StoreEnv};

/// Reports 80% used (above diskMaxUsedSpaceRatio, below the refusal level:
/// the cleaner deletes continuously) until switched off.
#[derive(Debug)]
struct AlwaysFull(AtomicBool);

impl DiskUsage for AlwaysFull {
    fn used_ratio(&self, _: &Path) -> std::io::Result<f64> {
        Ok(if self.0.load(Ordering::SeqCst) {
            0.80
        } else {
            0.30
        })
    }
}

/// Commitlog files the producers let the store hold (64 KiB each).
const MAX_BACKLOG_FILES: usize = 2_000;

/// Files in `dir` (0 when it cannot be read).
fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.count())
}

#[test]
fn producers_and_consumers_survive_continuous_deletion() {
    let secs: u64 = std::env::var("FERROMQ_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    // 64 KiB files: on a loaded machine the backlog of files the niced clean
    // thread has yet to delete can pass the default 1024 descriptors (the
    // broker raises the limit at start; so does this test).
    let _ = ferromq_engine::sys::raise_nofile_limit();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::small_config(dir.path());
    cfg.clean_resource_interval_ms = 20;
    cfg.delete_file_batch_max = 2;
    cfg.delete_commit_log_files_interval_ms = 1;
    cfg.flush_interval_commit_log_ms = 5;
    cfg.flush_commit_log_least_pages = 0;
    let disk = Arc::new(AlwaysFull(AtomicBool::new(true)));
    let env = StoreEnv {
        clock: Arc::new(ferromq_engine::retention::SystemClock),
        disk: disk.clone(),
    };
    let store = Arc::new(MessageStore::open_with_env(cfg, env).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let produced = Arc::new(AtomicU64::new(0));
    // Skips by the slow consumers so far (the load runs until there is one).
    let slow_skips_seen = Arc::new(AtomicU64::new(0));

    let commitlog_dir = dir.path().join("commitlog");
    let producers: Vec<_> = (0..2u32)
        .map(|q| {
            let (store, stop, produced) = (store.clone(), stop.clone(), produced.clone());
            let commitlog_dir = commitlog_dir.clone();
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::Acquire) {
                    // The producers wait while the clean thread (niced: on a
                    // loaded machine it may get little CPU) has more than
                    // MAX_BACKLOG_FILES files to delete, so the store never
                    // holds more files, and descriptors, than the limit
                    // allows (CI once hit EMFILE at ~11,000 files).
                    if i % 256 == 0 {
                        while files_in(&commitlog_dir) > MAX_BACKLOG_FILES
                            && !stop.load(Ordering::Acquire)
                        {
                            std::thread::sleep(Duration::from_millis(2));
                        }
                    }
                    let body = format!("q{q}-{i:08}-{}", "s".repeat(300));
                    store
                        .put_message(&Message::new("Soak", body.into_bytes()).with_queue_id(q))
                        .unwrap();
                    i += 1;
                    produced.fetch_add(1, Ordering::Relaxed);
                }
                i
            })
        })
        .collect();

    // One fast and one slow consumer per queue.
    let consumers: Vec<_> = (0..4u32)
        .map(|c| {
            let (store, stop, slow_skips_seen) =
                (store.clone(), stop.clone(), slow_skips_seen.clone());
            std::thread::spawn(move || {
                let q = c % 2;
                let slow = c >= 2;
                let mut offset = 0u64;
                let (mut read, mut skipped) = (0u64, 0u64);
                let mut last: Option<u64> = None;
                while !stop.load(Ordering::Acquire) {
                    let r = store
                        .get_message("g", "Soak", q, offset, 32, &MessageFilter::All)
                        .unwrap();
                    match r.status {
                        GetStatus::Found => {
                            for m in &r.messages {
                                let e =
                                    m.decode().expect("a served record decodes with a good CRC");
                                let text = String::from_utf8(e.body).unwrap();
                                let seq: u64 = text[3..11].parse().unwrap();
                                assert!(text.starts_with(&format!("q{q}-")));
                                assert_eq!(seq, m.queue_offset, "body matches its queue offset");
                                if let Some(l) = last {
                                    assert!(m.queue_offset > l, "in order");
                                }
                                last = Some(m.queue_offset);
                                read += 1;
                            }
                            offset = r.next_begin_offset;
                        }
                        GetStatus::OffsetTooSmall => {
                            assert!(r.next_begin_offset > offset);
                            offset = r.next_begin_offset;
                            skipped += 1;
                            if slow {
                                slow_skips_seen.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        GetStatus::MessageWasRemoving
                        | GetStatus::OffsetFoundNull
                        | GetStatus::NoMatchedMessage => {
                            offset = r.next_begin_offset.max(offset);
                        }
                        _ => std::thread::sleep(Duration::from_millis(1)),
                    }
                    if slow {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
                (slow, read, skipped)
            })
        })
        .collect();

    // At least `secs` of load, and on until a slow consumer has been
    // overtaken by deletion (a loaded machine produces less per second), at
    // most 60 s.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(secs)
        || (slow_skips_seen.load(Ordering::Relaxed) == 0
            && started.elapsed() < Duration::from_secs(60))
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Release);
    let per_queue: Vec<u64> = producers.into_iter().map(|p| p.join().unwrap()).collect();
    let mut slow_skips = 0;
    for c in consumers {
        let (slow, read, skipped) = c.join().unwrap();
        assert!(read > 0);
        if slow {
            slow_skips += skipped;
        }
    }
    assert!(
        slow_skips > 0,
        "slow consumers fell behind and skipped forward"
    );
    // Stop deleting, and wait for a whole pass that saw the low usage, so that
    // no deletion is in flight while what is left is checked.
    disk.0.store(false, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let p = store.retention_stats().last_pass;
        if p.is_some_and(|p| !p.triggers.space_full && p.commit_log_files_deleted == 0) {
            break;
        }
        assert!(Instant::now() < deadline, "the cleaner did not settle");
        std::thread::sleep(Duration::from_millis(10));
    }
    let stats = store.retention_stats();
    assert!(
        stats.commit_log_min_offset > 0,
        "files were deleted during the run"
    );
    // Everything still in retention is readable, in order, intact.
    let end = store.commit_log_max_offset();
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.stats().dispatched_offset < end {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(2));
    }
    for (q, total) in per_queue.iter().enumerate() {
        let q = q as u32;
        let min = store.min_offset_in_queue("Soak", q);
        assert_eq!(store.max_offset_in_queue("Soak", q), *total);
        let mut offset = min;
        while offset < *total {
            let r = store
                .get_message("g", "Soak", q, offset, 32, &MessageFilter::All)
                .unwrap();
            assert_eq!(
                r.status,
                GetStatus::Found,
                "queue {q} offset {offset} (min {min}, commitlog min {}, retention {:?})",
                store.commit_log_min_offset(),
                store.retention_stats().last_pass
            );
            for m in &r.messages {
                m.decode().unwrap();
            }
            offset = r.next_begin_offset;
        }
    }
    eprintln!(
        "soak {secs}s: {} messages, min offset {} of {}, last pass {:?} ms",
        produced.load(Ordering::Relaxed),
        stats.commit_log_min_offset,
        stats.commit_log_max_offset,
        stats.last_pass.map(|p| p.millis)
    );
    drop(store);
}
