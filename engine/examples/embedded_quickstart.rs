//! Quickstart: embed the store, put messages with tags and keys, read them back.
//!
//! Opens a store in a fresh temp dir (removed at exit) or in the directory
//! given as the first argument (kept, so a second run finds the first run's
//! messages), creates a topic, puts six messages tagged `TagA` or `TagB` with
//! a key each, then pulls the queue twice with `get_message`: once with every
//! message (`*`) and once with the tag expression `TagA`, and shuts down.
//!
//! The commitlog files are 4 MiB here instead of RocketMQ's 1 GiB default: the
//! store allocates every file in full when it creates it.
//!
//! Run: `cargo run -p ferromq-engine --example embedded_quickstart [STORE_DIR]`
use ferromq_engine::{GetStatus, Message, MessageFilter, MessageStore, StoreConfig};

const TOPIC: &str = "QuickstartTopic";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A dir from the command line, or a temp dir that is deleted when `_tmp` drops.
    let (_tmp, dir) = match std::env::args_os().nth(1) {
        Some(d) => (None, std::path::PathBuf::from(d)),
        None => {
            let t = tempfile::tempdir()?;
            let p = t.path().to_path_buf();
            (Some(t), p)
        }
    };

    let mut cfg = StoreConfig::new(&dir);
    cfg.mapped_file_size_commit_log = 4 * 1024 * 1024;
    cfg.mapped_file_size_consume_queue = 20 * 10_000;
    let store = MessageStore::open(cfg)?;
    println!("store opened at {}", dir.display());

    let topic = store.create_topic(TOPIC, 1)?;
    println!("topic {TOPIC}: {topic:?}");

    let first = store.max_offset_in_queue(TOPIC, 0);
    let mut last = first;
    for i in 0..6 {
        let tag = if i % 2 == 0 { "TagA" } else { "TagB" };
        let msg = Message::new(TOPIC, format!("hello #{i}").into_bytes())
            .with_tags(tag)
            .with_keys([format!("order-{i}")]);
        let put = store.put_message(&msg)?;
        last = put.queue_offset;
        println!(
            "put  {:?} queue offset {} commitlog offset {} msgId {} ({} bytes)",
            put.status,
            put.queue_offset,
            put.commit_log_offset,
            put.msg_id(),
            put.wrote_bytes
        );
    }
    // Dispatch into the consume queue runs on a background thread: wait for it.
    if !store.wait_for_messages(TOPIC, 0, last, std::time::Duration::from_secs(2)) {
        return Err("messages were not dispatched within 2 s".into());
    }

    for expr in ["*", "TagA"] {
        let filter = MessageFilter::from_expression(expr);
        let got = store.get_message("quickstart-group", TOPIC, 0, first, 32, &filter)?;
        println!(
            "get  filter {expr:?}: {:?}, {} messages, next begin offset {}, queue offsets {}..{}",
            got.status,
            got.messages.len(),
            got.next_begin_offset,
            got.min_offset,
            got.max_offset
        );
        assert_eq!(got.status, GetStatus::Found);
        for m in &got.messages {
            let ext = m.decode()?;
            // The filter compares tag hash codes, as the broker does; a client
            // re-checks the tag string to rule out hash collisions.
            println!(
                "     queue offset {} tag {:?} keys {:?} body {:?}",
                m.queue_offset,
                ext.tags().unwrap_or(""),
                ext.keys(),
                String::from_utf8_lossy(&ext.body)
            );
        }
    }

    let stats = store.stats();
    println!(
        "commitlog bytes {}..{} in {} file(s); shutting down",
        stats.commit_log_min_offset, stats.commit_log_max_offset, stats.commit_log_files
    );
    store.shutdown()?;
    Ok(())
}
