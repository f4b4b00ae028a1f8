//! The smallest put-throughput loop: N puts of 1 KiB from one thread into a
//! fresh store in a temp dir, timing each put; prints MB/s and the puts slower
//! than 500 µs (when they happened). Knobs, for comparing write paths:
//! `PREFAULT=<bytes>` sets `prefaultAheadBytes`, `POOL=1` turns on the transient
//! store pool (2 buffers), `FLUSH_LEAST_PAGES=<pages>` sets
//! `flushCommitLogLeastPages` (a huge value keeps the flush thread off the
//! written range until the thorough flush), `FILE_SIZE=<bytes>` sets
//! `mappedFileSizeCommitLog`.
//!
//! `cargo run --release -p ferromq-engine --example put_loop -- 200000`

use std::time::Instant;

use ferromq_engine::{Message, MessageStore, StoreConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(200_000);
    let dir = tempfile::tempdir()?;
    let mut cfg = StoreConfig::new(dir.path());
    if let Ok(v) = std::env::var("PREFAULT") {
        cfg.prefault_ahead_bytes = v.parse()?;
    }
    if let Ok(v) = std::env::var("FILE_SIZE") {
        cfg.mapped_file_size_commit_log = v.parse()?;
    }
    if let Ok(v) = std::env::var("FLUSH_LEAST_PAGES") {
        cfg.flush_commit_log_least_pages = v.parse()?;
    }
    if std::env::var_os("POOL").is_some() {
        cfg.transient_store_pool_enable = true;
        cfg.transient_store_pool_size = 2;
    }
    let store = MessageStore::open(cfg)?;
    let msg = Message::new("Bench", vec![7u8; 1024]);
    let mut bytes = 0u64;
    let mut slow = Vec::new();
    let t0 = Instant::now();
    for i in 0..n {
        let s = Instant::now();
        let r = store.put_message(&msg)?;
        let took = s.elapsed();
        bytes += r.wrote_bytes as u64;
        if took.as_micros() > 500 {
            slow.push((i, t0.elapsed().as_millis(), took.as_micros()));
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "{n} puts in {secs:.3} s: {:.1} MB/s; {} puts over 500 µs, {} ms in them",
        bytes as f64 / secs / 1e6,
        slow.len(),
        slow.iter().map(|s| s.2).sum::<u128>() / 1000
    );
    for (i, at, us) in slow.iter().take(10) {
        println!("  put {i} at {at} ms took {us} µs");
    }
    store.shutdown()?;
    Ok(())
}
