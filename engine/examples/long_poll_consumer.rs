//! Long polling: a consumer blocks in `wait_for_messages` until a producer's
//! messages arrive, instead of pulling in a loop.
//!
//! A producer thread puts [`MESSAGES`] messages into queue 0 of a topic, one
//! every 150 ms. The consumer pulls from its offset with `get_message`; when
//! the queue has nothing new (`OffsetOverflowOne`, or `NoMessageInQueue` before
//! the first put) it calls `wait_for_messages(topic, queue, offset, 1 s)`,
//! which returns as soon as the dispatch thread indexes a message at that
//! offset, or `false` at the deadline. It prints how long each message took
//! from its store timestamp to the consumer. The whole run is bounded: the
//! consumer stops after [`MESSAGES`] messages or [`DEADLINE`], whichever is first.
//!
//! Run: `cargo run -p ferromq-engine --example long_poll_consumer`
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ferromq_engine::{GetStatus, Message, MessageFilter, MessageStore, StoreConfig};

const TOPIC: &str = "LongPollTopic";
const MESSAGES: u64 = 10;
const DEADLINE: Duration = Duration::from_secs(10);

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let mut cfg = StoreConfig::new(tmp.path());
    cfg.mapped_file_size_commit_log = 4 * 1024 * 1024;
    cfg.mapped_file_size_consume_queue = 20 * 10_000;
    let store = Arc::new(MessageStore::open(cfg)?);
    store.create_topic(TOPIC, 1)?;

    let consumer = {
        let store = Arc::clone(&store);
        std::thread::spawn(move || -> ferromq_engine::Result<(u64, u32)> {
            let start = Instant::now();
            let (mut offset, mut waits) = (0u64, 0u32);
            while offset < MESSAGES && start.elapsed() < DEADLINE {
                let got =
                    store.get_message("poll-group", TOPIC, 0, offset, 32, &MessageFilter::All)?;
                match got.status {
                    GetStatus::Found => {
                        for m in &got.messages {
                            let ext = m.decode()?;
                            println!(
                                "consumer: offset {} body {:?}, {} ms after it was stored",
                                m.queue_offset,
                                String::from_utf8_lossy(&ext.body),
                                now_ms() - ext.store_timestamp_ms
                            );
                        }
                        offset = got.next_begin_offset;
                    }
                    GetStatus::OffsetOverflowOne | GetStatus::NoMessageInQueue => {
                        // Nothing new: block until a message lands at `offset`, at most 1 s.
                        waits += 1;
                        if !store.wait_for_messages(TOPIC, 0, offset, Duration::from_secs(1)) {
                            println!("consumer: no message within 1 s, polling again");
                        }
                    }
                    other => {
                        // OffsetTooSmall / OffsetOverflowBadly etc.: restart where the store says.
                        println!("consumer: {other:?}, moving to {}", got.next_begin_offset);
                        offset = got.next_begin_offset;
                    }
                }
            }
            Ok((offset, waits))
        })
    };

    for i in 0..MESSAGES {
        std::thread::sleep(Duration::from_millis(150));
        let put = store.put_message(&Message::new(TOPIC, format!("event {i}").into_bytes()))?;
        println!("producer: put queue offset {}", put.queue_offset);
    }

    let (consumed, waits) = consumer.join().expect("consumer thread")?;
    println!(
        "consumed {consumed} of {MESSAGES} messages with {waits} blocking waits; shutting down"
    );
    store.shutdown()?;
    Ok(())
}
