//! SYNC_FLUSH with several producer threads: put statuses and group commit.
//!
//! Under `SYNC_FLUSH` a put returns only once its bytes are durable, or with
//! `PutStatus::FlushDiskTimeout` after `syncFlushTimeout` ms: the message is
//! then stored but its durability is not yet known, and the producer decides
//! (RocketMQ clients treat it as a send that may be retried). Errors (`Err`)
//! mean nothing was written.
//!
//! Two rounds share one `Arc<MessageStore>` in a temp dir: first one producer,
//! then [`PRODUCERS`] producers at once, [`PUTS_PER_PRODUCER`] puts each. The
//! figure to watch is `stats().commit_log_syncs` against the number of puts:
//! alone, every put needs its own sync; together, one sync (the group commit
//! leader's) covers every put waiting at that moment, so syncs grow far more
//! slowly than puts and msgs/s go up.
//!
//! Run: `cargo run -p ferromq-engine --example sync_flush_producers`
use std::sync::Arc;
use std::time::Instant;

use ferromq_engine::{FlushDiskType, Message, MessageStore, PutStatus, StoreConfig};

const TOPIC: &str = "SyncFlushTopic";
const PRODUCERS: usize = 8;
const PUTS_PER_PRODUCER: usize = 100;

/// Puts by `threads` producers at once; returns (PutOk, FlushDiskTimeout, other statuses).
fn round(store: &Arc<MessageStore>, threads: usize) -> (usize, usize, usize) {
    let handles: Vec<_> = (0..threads)
        .map(|p| {
            let store = Arc::clone(store);
            std::thread::spawn(move || {
                let (mut ok, mut timeout, mut other) = (0, 0, 0);
                for i in 0..PUTS_PER_PRODUCER {
                    let msg = Message::new(TOPIC, vec![b'x'; 1024])
                        .with_queue_id((p % 4) as u32)
                        .with_keys([format!("p{p}-{i}")]);
                    match store.put_message(&msg) {
                        Ok(r) => match r.status {
                            PutStatus::PutOk => ok += 1,
                            // Stored, durability unknown: a producer could resend (duplicates
                            // are possible) or report it; here it is only counted.
                            PutStatus::FlushDiskTimeout => timeout += 1,
                            _ => other += 1,
                        },
                        // Nothing was written (bad message, store fenced or shut down).
                        Err(e) => panic!("put failed: {e}"),
                    }
                }
                (ok, timeout, other)
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("producer thread"))
        .fold((0, 0, 0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let mut cfg = StoreConfig::new(tmp.path());
    cfg.flush_disk_type = FlushDiskType::SyncFlush;
    cfg.sync_flush_timeout_ms = 2_000;
    cfg.mapped_file_size_commit_log = 16 * 1024 * 1024;
    cfg.mapped_file_size_consume_queue = 20 * 10_000;
    let store = Arc::new(MessageStore::open(cfg)?);
    store.create_topic(TOPIC, 4)?;

    for threads in [1, PRODUCERS] {
        let syncs_before = store.stats().commit_log_syncs;
        let start = Instant::now();
        let (ok, timeout, other) = round(&store, threads);
        let secs = start.elapsed().as_secs_f64();
        let puts = threads * PUTS_PER_PRODUCER;
        let syncs = store.stats().commit_log_syncs - syncs_before;
        println!(
            "{threads} producer(s): {puts} puts in {secs:.2} s ({:.0} msgs/s): PutOk {ok}, \
             FlushDiskTimeout {timeout}, other {other}; commitlog syncs {syncs} ({:.1} puts per sync)",
            puts as f64 / secs,
            puts as f64 / syncs.max(1) as f64
        );
    }

    let stats = store.stats();
    println!(
        "durable up to commitlog offset {} of {}; shutting down",
        stats.commit_log_flushed_offset, stats.commit_log_max_offset
    );
    store.shutdown()?;
    Ok(())
}
