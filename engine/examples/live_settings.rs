//! Change flush and retention settings of a running store, as a broker's
//! `updateBrokerConfig` does.
//!
//! Opens a store (fresh temp dir, removed at exit) whose async flush waits
//! for 10,000 dirty pages, puts a few messages and shows they stay unflushed;
//! then sets `flushCommitLogLeastPages=0` and `flushIntervalCommitLog=20`
//! live and waits (at most 5 s) until they are flushed. It also shows a value
//! the store clamps (`diskMaxUsedSpaceRatio=120`), one it refuses (a key
//! fixed while the store runs) and the configuration in effect afterwards.
//!
//! Run: `cargo run -p ferromq-engine --example live_settings`
use std::time::{Duration, Instant};

use ferromq_engine::{Message, MessageStore, StoreConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let mut cfg = StoreConfig::new(tmp.path());
    cfg.mapped_file_size_commit_log = 4 * 1024 * 1024;
    cfg.mapped_file_size_consume_queue = 20 * 10_000;
    cfg.flush_commit_log_least_pages = 10_000;
    cfg.flush_interval_commit_log_ms = 500;
    let store = MessageStore::open(cfg)?;

    for i in 0..8 {
        store.put_message(&Message::new("LiveTopic", format!("m{i}").into_bytes()))?;
    }
    std::thread::sleep(Duration::from_millis(800));
    println!(
        "written {} bytes, flushed {} (the flush waits for 10,000 dirty pages)",
        store.commit_log_max_offset(),
        store.commit_log_flushed_offset()
    );

    // Both keys together, checked first: all or nothing.
    store.set_live_all(&[
        ("flushCommitLogLeastPages", "0"),
        ("flushIntervalCommitLog", "20"),
    ])?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while store.commit_log_flushed_offset() < store.commit_log_max_offset() {
        if Instant::now() > deadline {
            return Err("not flushed within 5 s of the change".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    println!(
        "after the live change: flushed {} of {} bytes",
        store.commit_log_flushed_offset(),
        store.commit_log_max_offset()
    );

    // A value out of range is clamped, with a warning, as when the store
    // loads a file.
    for w in store.set_live("diskMaxUsedSpaceRatio", "120")? {
        println!("warning: {}", w.message);
    }
    // A key fixed while the store runs is refused; nothing changes.
    match store.set_live("mapedFileSizeCommitLog", "1048576") {
        Ok(_) => return Err("a fixed key was accepted".into()),
        Err(e) => println!("refused: {e}"),
    }
    let now = store.current_config();
    println!(
        "in effect: flushCommitLogLeastPages={} flushIntervalCommitLog={} diskMaxUsedSpaceRatio={}",
        now.flush_commit_log_least_pages,
        now.flush_interval_commit_log_ms,
        now.disk_max_used_space_ratio
    );
    store.shutdown()?;
    Ok(())
}
