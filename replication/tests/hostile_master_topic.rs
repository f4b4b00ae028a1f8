//! A stranger posing as the master streams a record whose topic is
//! `../../../../tmp/<unique>`: the slave appends it to its log (the bytes
//! are a valid record) but dispatch refuses the name, so nothing is created
//! outside the store, the topic is not recorded, the refusal is counted and
//! the good records around it are dispatched. The HA append itself only
//! writes commitlog files named by offset inside the store.

mod common;

use std::time::Duration;

use ferromq_engine::{BrokerRole, GetStatus, Message, MessageFilter};
use ferromq_replication::HaSlave;

#[test]
fn a_path_traversal_topic_from_a_fake_master_creates_nothing_outside_the_store() {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let leaf = format!("ferromq-ha-evil-{}-{nanos}", std::process::id());
    let evil = format!("../../../../tmp/{leaf}");
    let outside = std::path::Path::new("/tmp").join(&leaf);
    let placeholder = "P".repeat(evil.len());

    // What the stranger streams: real records from a store of its own, one
    // of whose topics is then patched (same length; the body CRC does not
    // cover the topic, so the record stays valid).
    let md = tempfile::tempdir().unwrap();
    let m = common::store(md.path(), BrokerRole::AsyncMaster);
    let put = |topic: &str, body: &str| {
        m.put_message(
            &Message::new(topic, body.as_bytes().to_vec())
                .with_queue_id(0)
                .with_keys(["k"]),
        )
        .unwrap();
    };
    for i in 0..3 {
        put("Good", &format!("g-{i}"));
    }
    put(&placeholder, "evil");
    for i in 3..6 {
        put("Good", &format!("g-{i}"));
    }
    let end = m.commit_log_max_offset();
    let mut stream = common::log_bytes(&m, 0, end);
    let at = stream
        .windows(placeholder.len())
        .position(|w| w == placeholder.as_bytes())
        .unwrap();
    stream[at..at + evil.len()].copy_from_slice(evil.as_bytes());

    let sd = tempfile::tempdir().unwrap();
    let slave_store = common::store(sd.path(), BrokerRole::Slave);
    let addr = common::fake_master(vec![common::frame(0, &stream)], Duration::from_secs(3));
    let slave = HaSlave::start(slave_store.clone(), addr.to_string(), common::fast_ha()).unwrap();
    common::wait_until(20, "the stream appended and dispatched", || {
        slave_store.commit_log_max_offset() == end && slave_store.stats().dispatched_offset == end
    });
    slave.shutdown();

    let st = slave_store.stats();
    assert_eq!(st.records_refused, 1, "{st:?}");
    assert!(st.fenced.is_none(), "{st:?}");
    assert!(!outside.exists(), "{} was created", outside.display());
    let dirs: Vec<String> = std::fs::read_dir(sd.path().join("consumequeue"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(dirs, ["Good"]);
    // The slave learns topics from the log it follows: not this one.
    assert!(slave_store.topic_config(&evil).is_none());
    common::wait_until(10, "the slave learned the good topic", || {
        slave_store.topic_config("Good").is_some()
    });
    // Every good record is in its queue, in order, around the refused one.
    let r = slave_store
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
    slave_store.shutdown().unwrap();
    let topics = std::fs::read_to_string(sd.path().join("config").join("topics.json")).unwrap();
    assert!(topics.contains("\"Good\""), "{topics}");
    assert!(!topics.contains(&leaf), "{topics}");
    // The commitlog is the only thing the HA append wrote.
    let mut top: Vec<String> = std::fs::read_dir(sd.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    assert!(
        top.iter().all(|n| [
            "abort",
            "checkpoint",
            "commitlog",
            "config",
            "consumequeue",
            "index",
            "lock"
        ]
        .contains(&n.as_str())),
        "{top:?}"
    );
}
