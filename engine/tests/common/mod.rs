//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::Path;

use ferromq_engine::{FlushDiskType, StoreConfig};

/// A config with small files, rooted at `dir`.
pub fn small_config(dir: &Path) -> StoreConfig {
    let mut cfg = StoreConfig::new(dir);
    cfg.mapped_file_size_commit_log = 64 * 1024;
    cfg.mapped_file_size_consume_queue = 20 * 100;
    cfg.flush_interval_commit_log_ms = 10;
    cfg.flush_interval_consume_queue_ms = 10;
    cfg.max_message_size = 16 * 1024;
    cfg.default_topic_queue_nums = 4;
    // The same tests run against the transient-store-pool write path when
    // FERROMQ_TEST_WRITE_PATH=pool (.ci/run runs the durability tests both ways).
    if std::env::var("FERROMQ_TEST_WRITE_PATH").as_deref() == Ok("pool") {
        // Enough buffers that a producer outrunning the commit service on a loaded
        // machine does not get Busy (which these tests do not exercise; see
        // tests/transient_pool.rs for that).
        cfg.transient_store_pool_enable = true;
        cfg.transient_store_pool_size = 48;
        cfg.commit_interval_commit_log_ms = 1;
        cfg.commit_commit_log_least_pages = 0;
        // SYNC_FLUSH tests too: group commits then write and sync the pool's bytes.
        cfg.transient_store_pool_sync_flush_enable = true;
    }
    cfg
}

/// Same, with SYNC_FLUSH.
pub fn small_sync_config(dir: &Path) -> StoreConfig {
    let mut cfg = small_config(dir);
    cfg.flush_disk_type = FlushDiskType::SyncFlush;
    cfg
}

/// Commitlog file names in the store.
pub fn commitlog_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir.join("commitlog"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    v.sort();
    v
}
