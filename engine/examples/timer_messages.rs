//! Timer messages: hold a message until a time of your choosing (RocketMQ 5's
//! `TIMER_DELIVER_MS`, `TIMER_DELAY_SEC`, `TIMER_DELAY_MS`).
//!
//! Opens a store (fresh temp dir, removed at exit), puts three messages due
//! in 1, 2 and 3 seconds, and reads each as it arrives on its topic: never
//! before its due time. Then, with `--pending N`, puts N more timer messages
//! with delays spread evenly from 10 minutes to the 3-day maximum (so every
//! slot of the wheel's range is in use) and prints the process's anonymous memory
//! (`RssAnon`) before and after, once all N are in the timer log: the wheel
//! is a fixed array and the pending timers live on disk, so the figure does
//! not grow with N. `--plain` puts the N messages without a timer, for the
//! baseline.
//!
//! Run: `cargo run --release -p ferromq-engine --example timer_messages -- --pending 1000000`
use std::time::{Duration, Instant};

use ferromq_engine::message::{keys, now_ms};
use ferromq_engine::{Message, MessageFilter, MessageStore, StoreConfig};

/// `RssAnon` of this process in KiB, from /proc (0 where there is no /proc).
fn rss_anon_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("RssAnon:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let pending: u64 = args
        .iter()
        .position(|a| a == "--pending")
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse())
        .transpose()?
        .unwrap_or(0);
    let plain = args.iter().any(|a| a == "--plain");

    let tmp = tempfile::tempdir()?;
    let mut cfg = StoreConfig::new(tmp.path());
    cfg.mapped_file_size_commit_log = 64 * 1024 * 1024;
    cfg.timer_precision_ms = 1000; // the default: delivered at most 1 s late
    let store = MessageStore::open(cfg)?;

    let t0 = now_ms();
    for s in 1..=3 {
        let msg = Message::new("TimerTopic", format!("due in {s} s").into_bytes())
            .with_property(keys::TIMER_DELAY_SEC, s.to_string());
        store.put_message(&msg)?;
    }
    let mut next = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while next < 3 && Instant::now() < deadline {
        let got = store.get_message("g", "TimerTopic", 0, next, 8, &MessageFilter::All)?;
        for m in &got.messages {
            let e = m.decode()?;
            println!(
                "{:>5} ms after the put: {:?} (stored at +{} ms)",
                now_ms() - t0,
                String::from_utf8_lossy(&e.body),
                e.store_timestamp_ms - t0
            );
        }
        next = got.next_begin_offset;
        store.wait_for_messages("TimerTopic", 0, next, Duration::from_millis(200));
    }

    if pending > 0 {
        let before = rss_anon_kib();
        let start = Instant::now();
        let body = vec![b'x'; 100];
        for i in 0..pending {
            let mut msg = Message::new("TimerTopic", body.clone()).with_queue_id((i % 4) as u32);
            if !plain {
                // 10 min .. 3 days - 10 min: all stay pending, every slot used.
                let delay = 600_000 + (i * (259_200_000 - 1_200_000) / pending) as i64;
                msg = msg.with_property(keys::TIMER_DELAY_MS, delay.to_string());
            }
            store.put_message(&msg)?;
        }
        let put_secs = start.elapsed().as_secs_f64();
        // Wait (bounded) until the timer service has read them all into its log.
        let deadline = Instant::now() + Duration::from_secs(300);
        while !plain && store.timer_stats().pending < pending && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let after = rss_anon_kib();
        println!(
            "{} {pending} {} messages in {put_secs:.1} s ({:.0} msgs/s); RssAnon {before} KiB -> {after} KiB; {:?}",
            if plain { "put" } else { "held" },
            if plain { "plain" } else { "timer" },
            pending as f64 / put_secs,
            store.timer_stats()
        );
    }
    store.shutdown()?;
    Ok(())
}
