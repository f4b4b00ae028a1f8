//! `topics.json` is written at most every few hundred milliseconds after a
//! change (and at shutdown), keeps its previous version as `topics.json.bak`,
//! and a store whose `topics.json` is missing, empty or damaged opens with the
//! backup's topics.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use ferromq_engine::{Error, Message, MessageStore};

fn topics_in(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    v["topicConfigTable"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

fn names(store: &MessageStore) -> Vec<String> {
    store.topics().into_iter().map(|t| t.topic_name).collect()
}

#[test]
fn a_change_is_written_within_the_interval_without_a_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(common::small_config(dir.path())).unwrap();
    let file = dir.path().join("config/topics.json");
    let started = Instant::now();
    for i in 0..200 {
        store.create_topic(&format!("Many{i:03}"), 2).unwrap();
    }
    store
        .put_message(&Message::new("AutoMade", b"x".to_vec()))
        .unwrap();
    let created = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let have = topics_in(&file);
        if have.iter().any(|t| t == "Many199") && have.iter().any(|t| t == "AutoMade") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not written within 5 s: {have:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    println!(
        "201 topics created in {created:?}, all in topics.json {:?} after the first",
        started.elapsed()
    );
    // 201 changes cost a few writes, not 201 fsyncs under the table lock.
    assert!(created < Duration::from_secs(2), "{created:?}");
    store.shutdown().unwrap();
}

#[test]
fn a_missing_empty_or_damaged_topics_json_falls_back_to_its_backup() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::small_config(dir.path());
    let file = dir.path().join("config/topics.json");
    let bak = dir.path().join("config/topics.json.bak");
    {
        let store = MessageStore::open(cfg.clone()).unwrap();
        store.create_topic("Kept1", 2).unwrap();
        store.create_topic("Kept2", 3).unwrap();
        store.shutdown().unwrap();
    }
    {
        // A second run writes again: the backup then holds both topics.
        let store = MessageStore::open(cfg.clone()).unwrap();
        store.shutdown().unwrap();
    }
    let backed_up = topics_in(&bak);
    assert!(
        backed_up.contains(&"Kept1".to_string()) && backed_up.contains(&"Kept2".to_string()),
        "{backed_up:?}"
    );
    let damage: [(&str, Option<&[u8]>); 3] = [
        ("damaged", Some(b"{\"topicConfigTable\":{\"Kept1\":")),
        ("empty", Some(b"")),
        ("missing", None),
    ];
    for (what, content) in damage {
        match content {
            Some(bytes) => std::fs::write(&file, bytes).unwrap(),
            None => std::fs::remove_file(&file).unwrap(),
        }
        let store = MessageStore::open(cfg.clone()).unwrap_or_else(|e| panic!("{what}: {e}"));
        let have = names(&store);
        assert!(
            have.contains(&"Kept1".to_string()) && have.contains(&"Kept2".to_string()),
            "{what}: {have:?}"
        );
        assert_eq!(
            store.topic_config("Kept2").unwrap().write_queue_nums,
            3,
            "{what}"
        );
        // Puts find the topics (the write-queue index is built from the backup).
        store
            .put_message(&Message::new("Kept2", b"x".to_vec()).with_queue_id(2))
            .unwrap();
        store.shutdown().unwrap();
        // The shutdown wrote a good topics.json again.
        assert!(topics_in(&file).contains(&"Kept1".to_string()), "{what}");
    }
    // Both copies damaged: the open fails and names the file.
    std::fs::write(&file, b"{nope").unwrap();
    std::fs::write(&bak, b"[1,").unwrap();
    match MessageStore::open(cfg) {
        Err(e @ Error::Corruption { .. }) => {
            assert!(e.to_string().contains("topics.json"), "{e}")
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("opened with both copies damaged"),
    }
}
