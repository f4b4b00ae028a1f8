//! Master and slave over loopback: every byte arrives, slaves build their own
//! consume queues, refuse puts, and resume from their own offset after a restart.

mod common;

use std::sync::Arc;

use ferromq_engine::{BrokerRole, Error, GetStatus, Message, MessageFilter, PutStatus};
use ferromq_replication::{HaMaster, HaSlave};

#[test]
fn async_master_streams_every_byte_and_the_slave_builds_queues() {
    let (md, sd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let master_store = common::store(md.path(), BrokerRole::AsyncMaster);
    let master = HaMaster::start(
        master_store.clone(),
        "127.0.0.1:0".parse().unwrap(),
        common::fast_ha(),
    )
    .unwrap();
    let slave_store = common::store(sd.path(), BrokerRole::Slave);
    let slave = HaSlave::start(
        slave_store.clone(),
        master.local_addr().to_string(),
        common::fast_ha(),
    )
    .unwrap();
    common::wait_streaming(&master);
    for i in 0..2000u32 {
        let m = Message::new(
            "Rep",
            format!("m{i}-{}", "x".repeat((i % 300) as usize)).into_bytes(),
        )
        .with_queue_id(i % 4)
        .with_tags("T")
        .with_keys([format!("k{i}")]);
        assert_eq!(
            master_store.put_message(&m).unwrap().status,
            PutStatus::PutOk
        );
    }
    let end = master_store.commit_log_max_offset();
    common::wait_until(20, "slave caught up", || {
        slave_store.commit_log_max_offset() == end
    });
    assert_eq!(
        common::log_bytes(&master_store, 0, end),
        common::log_bytes(&slave_store, 0, end),
        "byte-identical commitlog"
    );
    assert_eq!(master.max_acked_offset(), end);
    let info = master.slaves();
    assert_eq!(info.len(), 1);
    assert_eq!(info[0].lag_bytes, 0);
    // The slave's own dispatcher built its queues and index.
    common::wait_until(10, "slave dispatched", || {
        slave_store.max_offset_in_queue("Rep", 3) == 500
    });
    let r = slave_store
        .get_message("g", "Rep", 2, 0, 32, &MessageFilter::All)
        .unwrap();
    assert_eq!(r.status, GetStatus::Found);
    assert_eq!(r.messages[0].decode().unwrap().body, b"m2-xx");
    // The index entry follows the queue unit in the same dispatch step.
    common::wait_until(10, "slave indexed the last key", || {
        slave_store
            .query_messages_by_key("Rep", "k1999", 4, 0, i64::MAX)
            .unwrap()
            .len()
            == 1
    });
    // Slaves refuse puts.
    assert!(matches!(
        slave_store.put_message(&Message::new("Rep", b"no".to_vec())),
        Err(Error::WrongRole(_))
    ));
    drop(slave);
    drop(master);
}

#[test]
fn a_restarted_slave_resumes_from_its_own_offset() {
    let (md, sd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let master_store = common::store(md.path(), BrokerRole::AsyncMaster);
    let master = HaMaster::start(
        master_store.clone(),
        "127.0.0.1:0".parse().unwrap(),
        common::fast_ha(),
    )
    .unwrap();
    let put = |n: u32| {
        for i in 0..n {
            master_store
                .put_message(&Message::new("R", vec![b'a' + (i % 26) as u8; 700]))
                .unwrap();
        }
    };
    {
        let slave_store = common::store(sd.path(), BrokerRole::Slave);
        let slave = HaSlave::start(
            slave_store.clone(),
            master.local_addr().to_string(),
            common::fast_ha(),
        )
        .unwrap();
        common::wait_streaming(&master);
        put(300);
        let end = master_store.commit_log_max_offset();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while slave_store.commit_log_max_offset() != end {
            assert!(
                std::time::Instant::now() < deadline,
                "first catch-up: slave at {} of {end}; {:?}; master sees {:?}; slave stats {:?}",
                slave_store.commit_log_max_offset(),
                slave.status(),
                master.slaves(),
                slave_store.stats()
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        slave.shutdown();
        if let Err(e) = slave_store.shutdown() {
            panic!("slave shutdown: {e}; {:?}", slave_store.stats());
        }
    }
    put(300); // written while the slave is down
    let slave_store = common::store(sd.path(), BrokerRole::Slave);
    let before = slave_store.commit_log_max_offset();
    assert!(before > 0);
    let slave = HaSlave::start(
        slave_store.clone(),
        master.local_addr().to_string(),
        common::fast_ha(),
    )
    .unwrap();
    let end = master_store.commit_log_max_offset();
    common::wait_until(20, "resumed", || slave_store.commit_log_max_offset() == end);
    assert_eq!(
        common::log_bytes(&master_store, 0, end),
        common::log_bytes(&slave_store, 0, end)
    );
    assert_eq!(slave.status().protocol_errors, 0);
}

#[test]
fn a_new_slave_starts_at_the_masters_last_file() {
    let (md, sd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let master_store = common::store(md.path(), BrokerRole::AsyncMaster);
    for i in 0..400u32 {
        master_store
            .put_message(&Message::new("L", vec![b'0' + (i % 10) as u8; 600]).with_queue_id(i % 2))
            .unwrap();
    }
    let end = master_store.commit_log_max_offset();
    let file_size = 64 * 1024;
    let last_file = end - end % file_size;
    assert!(last_file >= 2 * file_size);
    let master = HaMaster::start(
        master_store.clone(),
        "127.0.0.1:0".parse().unwrap(),
        common::fast_ha(),
    )
    .unwrap();
    let slave_store = common::store(sd.path(), BrokerRole::Slave);
    let _slave = HaSlave::start(
        slave_store.clone(),
        master.local_addr().to_string(),
        common::fast_ha(),
    )
    .unwrap();
    common::wait_until(20, "late slave caught up", || {
        slave_store.commit_log_max_offset() == end
    });
    assert_eq!(
        slave_store.commit_log_min_offset(),
        last_file,
        "as RocketMQ: from the start of the last file"
    );
    assert_eq!(
        common::log_bytes(&master_store, last_file, end),
        common::log_bytes(&slave_store, last_file, end)
    );
    // Its queues start where its log starts: earlier offsets are OFFSET_TOO_SMALL.
    common::wait_until(10, "dispatch", || {
        slave_store.max_offset_in_queue("L", 0) == 200
    });
    let r = slave_store
        .get_message("g", "L", 0, 0, 32, &MessageFilter::All)
        .unwrap();
    assert_eq!(r.status, GetStatus::OffsetTooSmall);
    let r = slave_store
        .get_message("g", "L", 0, r.next_begin_offset, 32, &MessageFilter::All)
        .unwrap();
    assert_eq!(r.status, GetStatus::Found);
    // More writes keep flowing.
    master_store
        .put_message(&Message::new("L", b"after".to_vec()))
        .unwrap();
    let end2 = master_store.commit_log_max_offset();
    common::wait_until(10, "new write replicated", || {
        slave_store.commit_log_max_offset() == end2
    });
    drop(Arc::clone(&slave_store));
}
