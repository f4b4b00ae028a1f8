//! Names are data, never paths: a record in the commitlog whose topic is
//! `../../../../tmp/<unique>` (crafted, then found by recovery after a
//! crash) is refused by dispatch: nothing is created outside the store, the
//! topic is not recorded, the record stays in the log, the refusal is
//! counted, and the good records around it are dispatched.

mod common;

use std::time::{Duration, Instant};

use ferromq_engine::{GetStatus, Message, MessageFilter, MessageStore};

/// A topic name that would leave the store, unique to this run.
fn evil_topic() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "../../../../tmp/ferromq-evil-{}-{nanos}",
        std::process::id()
    )
}

/// Replace the one occurrence of `from` in `bytes` with `to` (same length):
/// the record stays otherwise valid (the body CRC does not cover the topic).
fn patch_once(bytes: &mut [u8], from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len());
    let hits: Vec<usize> = bytes
        .windows(from.len())
        .enumerate()
        .filter(|(_, w)| *w == from)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(hits.len(), 1, "the placeholder occurs once");
    bytes[hits[0]..hits[0] + to.len()].copy_from_slice(to);
}

#[test]
fn a_crafted_topic_found_after_a_crash_never_becomes_a_path() {
    let dir = tempfile::tempdir().unwrap();
    let evil = evil_topic();
    let outside = std::path::PathBuf::from("/tmp").join(evil.rsplit('/').next().unwrap());
    // A valid name of the same length, patched into the evil one below.
    let placeholder = "P".repeat(evil.len());
    {
        let store = MessageStore::open(common::small_config(dir.path())).unwrap();
        for i in 0..3 {
            store
                .put_message(&Message::new("Good", format!("g-{i}").into_bytes()).with_queue_id(0))
                .unwrap();
        }
        store
            .put_message(
                &Message::new(placeholder.as_str(), b"evil".to_vec())
                    .with_queue_id(0)
                    .with_keys(["evil-key"]),
            )
            .unwrap();
        for i in 3..6 {
            store
                .put_message(&Message::new("Good", format!("g-{i}").into_bytes()).with_queue_id(0))
                .unwrap();
        }
        store.shutdown().unwrap();
    }
    // The crafted record; then a crash that lost the checkpoint, the
    // consume queues and the index, so recovery dispatches the whole log.
    let file = dir.path().join("commitlog").join(format!("{:020}", 0));
    let mut bytes = std::fs::read(&file).unwrap();
    patch_once(&mut bytes, placeholder.as_bytes(), evil.as_bytes());
    std::fs::write(&file, &bytes).unwrap();
    let topics_json = dir.path().join("config").join("topics.json");
    let topics_before = std::fs::read_to_string(&topics_json).unwrap_or_default();
    std::fs::write(
        &topics_json,
        topics_before.replace(&format!("\"{placeholder}\""), "\"Placeholder\""),
    )
    .unwrap();
    std::fs::remove_dir_all(dir.path().join("consumequeue")).unwrap();
    let _ = std::fs::remove_dir_all(dir.path().join("index"));
    std::fs::remove_file(dir.path().join("checkpoint")).unwrap();
    std::fs::write(dir.path().join("abort"), b"").unwrap();

    let store = MessageStore::open(common::small_config(dir.path())).unwrap();
    assert!(store.recovery_report().abnormal);
    let st = store.stats();
    assert_eq!(st.records_refused, 1, "{st:?}");
    assert!(st.fenced.is_none(), "{st:?}");
    assert_eq!(st.dispatched_offset, store.commit_log_max_offset());
    assert!(!outside.exists(), "{} was created", outside.display());
    let mut dirs: Vec<String> = std::fs::read_dir(dir.path().join("consumequeue"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    assert_eq!(dirs, ["Good"], "no queue folder for the crafted record");
    // The topic is not recorded.
    let topics = std::fs::read_to_string(&topics_json).unwrap();
    assert!(!topics.contains("evil"), "{topics}");
    assert!(store.topic_config(&evil).is_none());
    // The good records around it are dispatched, in order.
    let r = store
        .get_message("g", "Good", 0, 0, 32, &MessageFilter::All)
        .unwrap();
    assert_eq!(r.status, GetStatus::Found);
    let bodies: Vec<Vec<u8>> = r
        .messages
        .iter()
        .map(|m| m.decode().unwrap().body)
        .collect();
    let want: Vec<Vec<u8>> = (0..6).map(|i| format!("g-{i}").into_bytes()).collect();
    assert_eq!(bodies, want);
    // No index entry for its key; the record itself stays in the log.
    let now = ferromq_engine::message::now_ms() + 1000;
    let found = store
        .query_messages_by_key(&evil, "evil-key", 8, 0, now)
        .map(|v| v.len())
        .unwrap_or(0);
    assert_eq!(found, 0);
    let log = store
        .read_commit_log(0, store.commit_log_max_offset() as usize)
        .unwrap();
    assert!(log.windows(evil.len()).any(|w| w == evil.as_bytes()));

    // Puts go on after it, and the next open refuses it again (no queue).
    store
        .put_message(&Message::new("Good", b"g-6".to_vec()).with_queue_id(0))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.max_offset_in_queue("Good", 0) < 7 {
        assert!(
            Instant::now() < deadline,
            "the put after was not dispatched"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    store.shutdown().unwrap();
    drop(store);
    assert!(!outside.exists());
}

#[test]
fn a_masters_topic_table_with_an_invalid_name_is_copied_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::small_config(dir.path());
    cfg.broker_role = ferromq_engine::BrokerRole::Slave;
    let store = MessageStore::open(cfg).unwrap();
    let evil = evil_topic();
    let version = ferromq_engine::DataVersion {
        timestamp: 1,
        counter: 7,
    };
    store
        .replace_topics(
            vec![
                ferromq_engine::TopicConfig::new(evil.as_str(), 4),
                ferromq_engine::TopicConfig::new("Fine", 4),
            ],
            version,
        )
        .unwrap();
    assert!(store.topic_config("Fine").is_some());
    assert!(store.topic_config(&evil).is_none());
    assert_eq!(store.topic_table_version(), version);
    store.shutdown().unwrap();
    let topics = std::fs::read_to_string(dir.path().join("config").join("topics.json")).unwrap();
    assert!(topics.contains("\"Fine\""), "{topics}");
    assert!(!topics.contains("evil"), "{topics}");
}
