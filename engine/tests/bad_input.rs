//! Bad input gets a clear error and writes nothing; offsets out of range get a
//! status, never a panic.

mod common;

use ferromq_engine::{Error, GetStatus, Message, MessageFilter, MessageStore};

fn open(dir: &std::path::Path) -> MessageStore {
    MessageStore::open(common::small_config(dir)).unwrap()
}

fn assert_illegal(store: &MessageStore, msg: Message, needle: &str) {
    let before = store.commit_log_max_offset();
    match store.put_message(&msg) {
        Err(Error::IllegalMessage(why)) => {
            assert!(why.contains(needle), "`{why}` lacks `{needle}`")
        }
        other => panic!("expected IllegalMessage containing `{needle}`, got {other:?}"),
    }
    assert_eq!(store.commit_log_max_offset(), before, "nothing written");
}

#[test]
fn illegal_messages_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    assert_illegal(
        &store,
        Message::new("T", vec![0u8; 16 * 1024 + 1]),
        "maxMessageSize",
    );
    assert_illegal(&store, Message::new("", b"x".to_vec()), "empty");
    assert_illegal(
        &store,
        Message::new("x".repeat(128), b"x".to_vec()),
        "longer than 127",
    );
    assert_illegal(
        &store,
        Message::new("bad topic", b"x".to_vec()),
        "illegal character",
    );
    assert_illegal(
        &store,
        Message::new("bad/topic", b"x".to_vec()),
        "illegal character",
    );
    assert_illegal(
        &store,
        Message::new("T", b"x".to_vec()).with_property("big", "v".repeat(40_000)),
        "properties",
    );
    assert_illegal(
        &store,
        Message::new("T", b"x".to_vec()).with_property("k", "a\u{1}b"),
        "separators",
    );
    assert_illegal(
        &store,
        Message::new("T", b"x".to_vec()).with_queue_id(4),
        "out of range",
    );
    // Exactly the limit is fine.
    store
        .put_message(&Message::new("T", vec![0u8; 16 * 1024]))
        .unwrap();
    store.shutdown().unwrap();
}

#[test]
fn a_refused_put_to_a_new_topic_creates_no_topic() {
    // Auto-creation is on (4 queues by default): a put to a new topic that
    // fails a check must not leave the topic behind, whichever check it is.
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    assert_illegal(
        &store,
        Message::new("NewA", b"x".to_vec()).with_queue_id(99),
        "out of range",
    );
    assert_illegal(
        &store,
        Message::new("NewB", b"x".to_vec())
            .with_queue_id(99)
            .with_property("DELAY", "3"),
        "out of range",
    );
    assert_illegal(
        &store,
        Message::new("NewC", vec![0u8; 16 * 1024 + 1]),
        "maxMessageSize",
    );
    let names: Vec<String> = store.topics().into_iter().map(|t| t.topic_name).collect();
    for t in ["NewA", "NewB", "NewC"] {
        assert!(!names.iter().any(|n| n == t), "{t} was created: {names:?}");
    }
    // The same topics with a good put are created as usual.
    store
        .put_message(&Message::new("NewA", b"x".to_vec()).with_queue_id(3))
        .unwrap();
    assert!(store.topics().iter().any(|t| t.topic_name == "NewA"));
    store.shutdown().unwrap();
}

#[test]
fn unknown_topic_refused_without_auto_create() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::small_config(dir.path());
    cfg.auto_create_topic_enable = false;
    let store = MessageStore::open(cfg).unwrap();
    let err = store
        .put_message(&Message::new("Nope", b"x".to_vec()))
        .unwrap_err();
    assert!(
        matches!(err, Error::TopicNotExist(ref t) if t == "Nope"),
        "{err}"
    );
    store.create_topic("Nope", 2).unwrap();
    store
        .put_message(&Message::new("Nope", b"x".to_vec()).with_queue_id(1))
        .unwrap();
    assert!(store.create_topic("bad topic", 2).is_err());
    assert!(store.create_topic("Zero", 0).is_err());
    store.shutdown().unwrap();
    // Persisted in config/topics.json.
    let json = std::fs::read_to_string(dir.path().join("config/topics.json")).unwrap();
    assert!(
        json.contains("\"Nope\"") && json.contains("writeQueueNums"),
        "{json}"
    );
}

#[test]
fn offsets_out_of_range_get_statuses() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let all = MessageFilter::All;
    let r = store.get_message("g", "Missing", 0, 0, 32, &all).unwrap();
    assert_eq!(r.status, GetStatus::NoMatchedLogicQueue);
    for i in 0..10 {
        store
            .put_message(
                &Message::new("S", format!("{i}").into_bytes()).with_tags(if i < 5 {
                    "A"
                } else {
                    "B"
                }),
            )
            .unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while store.max_offset_in_queue("S", 0) < 10 {
        assert!(std::time::Instant::now() < deadline);
        store.wait_for_messages("S", 0, 9, std::time::Duration::from_millis(50));
    }
    let r = store.get_message("g", "S", 1, 0, 32, &all).unwrap();
    assert!(
        matches!(
            r.status,
            GetStatus::NoMessageInQueue | GetStatus::NoMatchedLogicQueue
        ),
        "{:?}",
        r.status
    );
    let r = store.get_message("g", "S", 0, 10, 32, &all).unwrap();
    assert_eq!(
        (r.status, r.next_begin_offset),
        (GetStatus::OffsetOverflowOne, 10)
    );
    let r = store.get_message("g", "S", 0, 11, 32, &all).unwrap();
    assert_eq!(r.status, GetStatus::OffsetOverflowBadly);
    assert_eq!(
        r.next_begin_offset, 0,
        "min offset is 0, so RocketMQ sends readers back to it"
    );
    let r = store.get_message("g", "S", 0, u64::MAX, 32, &all).unwrap();
    assert_eq!(r.status, GetStatus::OffsetOverflowBadly);
    let r = store.get_message("g", "S", 0, 3, 4, &all).unwrap();
    assert_eq!(r.status, GetStatus::Found);
    assert_eq!(r.messages.len(), 4);
    assert_eq!(r.next_begin_offset, 7);
    assert_eq!((r.min_offset, r.max_offset), (0, 10));
    // Tag filter: B only; the scan skips A units but counts them in the next offset.
    let b = MessageFilter::from_expression("B");
    let r = store.get_message("g", "S", 0, 0, 32, &b).unwrap();
    assert_eq!(r.status, GetStatus::Found);
    let bodies: Vec<_> = r
        .messages
        .iter()
        .map(|m| m.decode().unwrap().body)
        .collect();
    assert_eq!(
        bodies,
        (5..10)
            .map(|i| format!("{i}").into_bytes())
            .collect::<Vec<_>>()
    );
    assert_eq!(r.next_begin_offset, 10);
    let none = MessageFilter::from_expression("C || D");
    let r = store.get_message("g", "S", 0, 0, 32, &none).unwrap();
    assert_eq!(
        (r.status, r.next_begin_offset),
        (GetStatus::NoMatchedMessage, 10)
    );
    let either = MessageFilter::from_expression("A || B");
    assert_eq!(
        store
            .get_message("g", "S", 0, 0, 32, &either)
            .unwrap()
            .messages
            .len(),
        10
    );
    // Reads by commitlog offset: a valid record, and a clear error in the middle of one.
    let first = store.get_message("g", "S", 0, 0, 1, &all).unwrap().messages[0].commit_log_offset;
    assert_eq!(
        store.look_message_by_offset(first).unwrap().unwrap().body,
        b"0"
    );
    assert!(matches!(
        store.look_message_by_offset(first + 3),
        Err(Error::Corruption { .. })
    ));
    assert!(store.look_message_by_offset(1 << 40).unwrap().is_none());
    store.shutdown().unwrap();
    assert!(matches!(
        store.put_message(&Message::new("S", b"x".to_vec())),
        Err(Error::ShutDown)
    ));
}

#[test]
fn bad_config_is_refused_before_touching_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("never-created");
    let mut cfg = common::small_config(&root);
    cfg.mapped_file_size_commit_log = 100;
    let err = MessageStore::open(cfg).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("mappedFileSizeCommitLog") && text.contains("100"),
        "{text}"
    );
    assert!(!root.exists(), "validation runs before any file is touched");
    let mut cfg = common::small_config(&root);
    cfg.broker_ip1 = "not-an-ip".into();
    assert!(MessageStore::open(cfg)
        .unwrap_err()
        .to_string()
        .contains("brokerIP1"));
}
