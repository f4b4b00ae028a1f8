//! Configure the store from a RocketMQ broker `.properties` file.
//!
//! Reads the file given as the first argument (default: the seed's
//! `engine/tests/fixtures/seed-broker-a.properties`), then overrides, in the
//! parsed properties and under the key spelling the file already uses:
//!
//! - `storePathRootDir` (and `storePathCommitLog`, if set) to a temp dir
//!   removed at exit, so the example never writes to the broker's real paths;
//! - `mappedFileSizeCommitLog` / `mapedFileSizeCommitLog` to 4 MiB and the
//!   consume-queue size to 200 000 bytes, since the store allocates each file
//!   in full (the seed asks for 1 GiB commitlog files).
//!
//! It prints the loader's warnings (unknown keys, legacy keys, features ferromq
//! does not have, ...) and the effective config as `key=value` lines, opens the
//! store, puts one message and reads it back.
//!
//! Run: `cargo run -p ferromq-engine --example from_properties [BROKER.properties]`
use std::path::PathBuf;

use ferromq_engine::config::Properties;
use ferromq_engine::{Message, MessageFilter, MessageStore, StoreConfig};

const DEFAULT_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/seed-broker-a.properties"
);

/// Set `key` (current spelling) or its old `maped*` spelling, whichever the file
/// uses, so the loader does not see two spellings with different values.
fn override_size(props: &mut Properties, key: &str, value: u64) {
    let old = key.replacen("mapped", "maped", 1);
    let k = if props.contains_key(&old) {
        old
    } else {
        key.to_string()
    };
    let prev = props.insert(k.clone(), value.to_string());
    println!(
        "override {k}={value} (file: {})",
        prev.as_deref().unwrap_or("unset")
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_FILE));
    let mut props = Properties::from_file(&path)?;
    println!("read {} ({} entries)", path.display(), props.len());

    let tmp = tempfile::tempdir()?;
    let root = tmp.path().to_string_lossy().to_string();
    let prev = props.insert("storePathRootDir", root.clone());
    println!(
        "override storePathRootDir={root} (file: {})",
        prev.as_deref().unwrap_or("unset")
    );
    if props.contains_key("storePathCommitLog") {
        let cl = format!("{root}/commitlog");
        let prev = props.insert("storePathCommitLog", cl.clone());
        println!(
            "override storePathCommitLog={cl} (file: {})",
            prev.as_deref().unwrap_or("unset")
        );
    }
    override_size(&mut props, "mappedFileSizeCommitLog", 4 * 1024 * 1024);
    override_size(&mut props, "mappedFileSizeConsumeQueue", 20 * 10_000);
    // The seed's broker is a SYNC_MASTER; with no slave in this example its puts
    // would report SLAVE_NOT_AVAILABLE, so run it as a single ASYNC_MASTER.
    if props.insert("brokerRole", "ASYNC_MASTER").as_deref() != Some("ASYNC_MASTER") {
        println!("override brokerRole=ASYNC_MASTER (no slave in this example)");
    }

    let (cfg, warnings) = StoreConfig::from_properties(&props)?;
    println!("\n{} warning(s):", warnings.len());
    for w in &warnings {
        // The message already names the key and its line.
        println!("  [{:?}] {}", w.kind, w.message);
    }
    println!("\neffective config:\n{}", cfg.to_properties());

    let store = MessageStore::open(cfg)?;
    let topic = "PropertiesTopic";
    let put = store.put_message(
        &Message::new(topic, b"configured from properties".to_vec()).with_tags("TagA"),
    )?;
    println!(
        "put {:?}: queue 0 offset {} msgId {}",
        put.status,
        put.queue_offset,
        put.msg_id()
    );
    store.wait_for_messages(
        topic,
        0,
        put.queue_offset,
        std::time::Duration::from_secs(2),
    );
    let got = store.get_message(
        "props-group",
        topic,
        0,
        put.queue_offset,
        1,
        &MessageFilter::All,
    )?;
    let body = match got.messages.first() {
        Some(m) => String::from_utf8_lossy(&m.decode()?.body).to_string(),
        None => return Err(format!("get returned {:?}", got.status).into()),
    };
    println!(
        "get {:?}: {body:?} (topic auto-created with {} queues)",
        got.status,
        store
            .topic_config(topic)
            .map(|t| t.write_queue_nums)
            .unwrap_or(0)
    );
    store.shutdown()?;
    Ok(())
}
