//! SYNC_FLUSH: a put returns once its bytes are durable, and concurrent puts
//! share syncs (group commit).

mod common;

use std::sync::Arc;

use ferromq_engine::{Message, MessageStore, PutStatus};

#[test]
fn sync_put_is_durable_when_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(common::small_sync_config(dir.path())).unwrap();
    for i in 0..50 {
        let r = store
            .put_message(&Message::new("Sync", format!("m{i}").into_bytes()))
            .unwrap();
        assert_eq!(r.status, PutStatus::PutOk);
        let end = r.commit_log_offset + r.wrote_bytes as u64;
        assert!(
            store.stats().commit_log_flushed_offset >= end,
            "durable before returning"
        );
    }
    store.shutdown().unwrap();
}

#[test]
fn wait_false_does_not_wait_for_the_flush() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::small_sync_config(dir.path());
    cfg.flush_interval_commit_log_ms = 1000;
    let store = MessageStore::open(cfg).unwrap();
    let r = store
        .put_message(&Message::new("Sync", b"x".to_vec()).with_property("WAIT", "false"))
        .unwrap();
    assert_eq!(r.status, PutStatus::PutOk);
    store.shutdown().unwrap();
}

#[test]
fn concurrent_sync_puts_share_syncs() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(MessageStore::open(common::small_sync_config(dir.path())).unwrap());
    let threads = 16;
    let per = 40;
    let hs: Vec<_> = (0..threads)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for i in 0..per {
                    let r = store
                        .put_message(
                            &Message::new("Group", format!("{t}-{i}").into_bytes())
                                .with_queue_id(t % 4),
                        )
                        .unwrap();
                    assert_eq!(r.status, PutStatus::PutOk);
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    let syncs = store.stats().commit_log_syncs;
    let puts = (threads * per) as u64;
    assert!(syncs > 0);
    assert!(syncs < puts, "group commit: {syncs} syncs for {puts} puts");
    store.shutdown().unwrap();
}

#[test]
fn batch_put_lands_whole_with_consecutive_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(common::small_sync_config(dir.path())).unwrap();
    let batch: Vec<_> = (0..10)
        .map(|i| Message::new("Batch", format!("b{i}").into_bytes()).with_queue_id(2))
        .collect();
    let r = store.put_messages(&batch).unwrap();
    assert_eq!(r.status, PutStatus::PutOk);
    assert_eq!(r.message_count, 10);
    assert_eq!(r.queue_offset, 0);
    let all_ids = r.msg_id();
    let ids: Vec<&str> = all_ids.split(',').collect();
    assert_eq!(ids.len(), 10);
    let r2 = store.put_messages(&batch).unwrap();
    assert_eq!(r2.queue_offset, 10);
    // Each id decodes to the offset of its own record.
    for (i, id) in ids.iter().enumerate() {
        let (_, off) = ferromq_engine::message::decode_offset_msg_id(id).unwrap();
        let m = store.look_message_by_offset(off).unwrap().unwrap();
        assert_eq!(m.body, format!("b{i}").into_bytes());
        assert_eq!(m.queue_offset, i as u64);
    }
    let mixed = vec![
        Message::new("Batch", b"a".to_vec()),
        Message::new("Other", b"b".to_vec()),
    ];
    assert!(store.put_messages(&mixed).is_err());
    assert!(store.put_messages(&[]).is_err());
    store.shutdown().unwrap();
}

#[test]
fn nowait_puts_are_made_durable_by_wait_put_from_other_threads() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(MessageStore::open(common::small_sync_config(dir.path())).unwrap());
    let msg = Message::new("NW", b"x".to_vec());
    assert!(store.put_needs_wait(&msg));
    assert!(!store.put_needs_wait(&msg.clone().with_property("WAIT", "false")));
    // Many puts written by one thread, waited for by others: they share syncs.
    let puts: Vec<_> = (0..64)
        .map(|_| store.put_message_nowait(&msg).unwrap())
        .collect();
    let waiters: Vec<_> = puts
        .into_iter()
        .map(|p| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                let end = p.commit_log_offset + u64::from(p.wrote_bytes);
                let done = store.wait_put(p).unwrap();
                assert_eq!(done.status, PutStatus::PutOk);
                assert!(store.stats().commit_log_flushed_offset >= end);
            })
        })
        .collect();
    for w in waiters {
        w.join().unwrap();
    }
    store.shutdown().unwrap();
}
