//! Epoch mode on a SYNC_MASTER: puts are acknowledged by the SyncStateSet
//! (allAckInSyncStateSet), or by enough slaves (minInSyncReplicas); a
//! fenced master fails puts at once.

mod autoswitch_common;
mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use autoswitch_common::{any_port, az, az_with, epochs, put_n};
use common::{store, wait_until};
use ferromq_engine::{BrokerRole, Message, PutStatus};
use ferromq_replication::{HaMaster, HaSlave};

fn set(ids: &[u64]) -> BTreeSet<u64> {
    ids.iter().copied().collect()
}

fn put(store: &ferromq_engine::MessageStore, body: &str) -> (PutStatus, u64, Duration) {
    let t = Instant::now();
    let r = store
        .put_message(&Message::new("AZ", body.as_bytes().to_vec()))
        .unwrap();
    (
        r.status,
        r.commit_log_offset + r.wrote_bytes as u64,
        t.elapsed(),
    )
}

/// Wait until the master streams to slaves with exactly these broker ids.
fn wait_slaves(master: &HaMaster, ids: &[u64]) {
    wait_until(20, "the slaves' hellos", || {
        let mut got: Vec<u64> = master
            .slaves()
            .iter()
            .filter(|s| s.streaming_from.is_some())
            .filter_map(|s| s.broker_id)
            .collect();
        got.sort_unstable();
        got == ids
    });
}

#[test]
fn all_ack_in_sync_state_set_waits_for_every_member() {
    let md = tempfile::tempdir().unwrap();
    let (d2, d3) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let m = store(md.path(), BrokerRole::SyncMaster);
    let em = epochs(md.path());
    em.become_master(1, 0).unwrap();
    let cfg = az_with(&em, 1, |a| a.all_ack_in_sync_state_set = true);
    let master = HaMaster::start(m.clone(), any_port(), cfg).unwrap();
    m.set_replica_waiter(Some(master.waiter()));
    assert_eq!(master.sync_state_set(), set(&[1]));
    // A set of the master alone acknowledges at once.
    let (st, _, took) = put(&m, "alone");
    assert_eq!(st, PutStatus::PutOk);
    assert!(took < Duration::from_millis(500));

    let s2 = store(d2.path(), BrokerRole::Slave);
    let s3 = store(d3.path(), BrokerRole::Slave);
    let addr = master.local_addr().to_string();
    let h2 = HaSlave::start(s2.clone(), addr.clone(), az(&epochs(d2.path()), 2)).unwrap();
    let h3 = HaSlave::start(s3.clone(), addr.clone(), az(&epochs(d3.path()), 3)).unwrap();
    wait_slaves(&master, &[2, 3]);
    master.set_sync_state_set(set(&[1, 2, 3]), 1);
    for i in 0..50 {
        let (st, end, _) = put(&m, &format!("both-{i}"));
        assert_eq!(st, PutStatus::PutOk);
        assert!(s2.commit_log_max_offset() >= end, "slave 2 has it");
        assert!(s3.commit_log_max_offset() >= end, "slave 3 has it");
    }
    // Both report when they caught up.
    wait_until(10, "caught-up times", || {
        master.slaves().iter().all(|s| s.last_caught_up.is_some())
    });

    // Slave 3 stops: a put waits for it while it is in the set ...
    h3.shutdown();
    drop(h3);
    wait_slaves(&master, &[2]);
    let m2 = m.clone();
    let pending = std::thread::spawn(move || put(&m2, "waits-for-3"));
    std::thread::sleep(Duration::from_millis(300));
    assert!(!pending.is_finished(), "a put waits for every member");
    // ... and is acknowledged by slave 2 alone once 3 leaves the set.
    let t = Instant::now();
    master.set_sync_state_set(set(&[1, 2]), 1);
    let (st, end, _) = pending.join().unwrap();
    assert_eq!(st, PutStatus::PutOk);
    assert!(t.elapsed() < Duration::from_millis(1000));
    assert!(s2.commit_log_max_offset() >= end);
    for i in 0..20 {
        let (st, end, _) = put(&m, &format!("two-{i}"));
        assert_eq!(st, PutStatus::PutOk);
        assert!(s2.commit_log_max_offset() >= end);
    }
    // A member that is gone: the put times out (slaveTimeout 2 s).
    master.set_sync_state_set(set(&[1, 2, 3]), 1);
    let (st, _, took) = put(&m, "times-out");
    assert_eq!(st, PutStatus::FlushSlaveTimeout);
    assert!(took >= Duration::from_millis(1500) && took < Duration::from_secs(5));
    drop(h2);
}

#[test]
fn min_in_sync_replicas_refuses_a_small_set() {
    let (md, sd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let m = store(md.path(), BrokerRole::SyncMaster);
    let em = epochs(md.path());
    em.become_master(1, 0).unwrap();
    let cfg = az_with(&em, 1, |a| a.min_in_sync_replicas = 2);
    let master = HaMaster::start(m.clone(), any_port(), cfg).unwrap();
    m.set_replica_waiter(Some(master.waiter()));
    // The set is the master alone: fewer than minInSyncReplicas.
    let (st, _, took) = put(&m, "refused");
    assert_eq!(st, PutStatus::SlaveNotAvailable);
    assert!(took < Duration::from_millis(500));

    let s = store(sd.path(), BrokerRole::Slave);
    let _h = HaSlave::start(
        s.clone(),
        master.local_addr().to_string(),
        az(&epochs(sd.path()), 2),
    )
    .unwrap();
    wait_slaves(&master, &[2]);
    master.set_sync_state_set(set(&[1, 2]), 1);
    for i in 0..20 {
        let (st, end, _) = put(&m, &format!("ok-{i}"));
        assert_eq!(st, PutStatus::PutOk);
        assert!(
            s.commit_log_max_offset() >= end,
            "minInSyncReplicas 2: a slave has it"
        );
    }
    // Shrunk below the minimum again: refused at once.
    master.set_sync_state_set(set(&[1]), 1);
    let (st, _, took) = put(&m, "refused-again");
    assert_eq!(st, PutStatus::SlaveNotAvailable);
    assert!(took < Duration::from_millis(500));
}

#[test]
fn fenced_master_fails_puts_promptly() {
    let (md, sd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let m = store(md.path(), BrokerRole::SyncMaster);
    let em = epochs(md.path());
    em.become_master(1, 0).unwrap();
    let cfg = az_with(&em, 1, |a| a.all_ack_in_sync_state_set = true);
    let master = HaMaster::start(m.clone(), any_port(), cfg).unwrap();
    m.set_replica_waiter(Some(master.waiter()));
    // Slave 2 is in the set but not connected: puts wait.
    master.set_sync_state_set(set(&[1, 2]), 1);
    let m2 = m.clone();
    let pending = std::thread::spawn(move || put(&m2, "pending"));
    std::thread::sleep(Duration::from_millis(200));
    assert!(!pending.is_finished());
    let t = Instant::now();
    master.set_fenced(true);
    assert!(master.is_fenced());
    let (st, _, _) = pending.join().unwrap();
    assert_eq!(st, PutStatus::SlaveNotAvailable);
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "the waiting put failed at once"
    );
    let (st, _, took) = put(&m, "new");
    assert_eq!(st, PutStatus::SlaveNotAvailable);
    assert!(took < Duration::from_millis(200));

    // Unfenced, with the member connected, puts are acknowledged again.
    let s = store(sd.path(), BrokerRole::Slave);
    let _h = HaSlave::start(
        s.clone(),
        master.local_addr().to_string(),
        az(&epochs(sd.path()), 2),
    )
    .unwrap();
    wait_slaves(&master, &[2]);
    master.set_fenced(false);
    put_n(&m, 1, "warm");
    let (st, end, _) = put(&m, "after");
    assert_eq!(st, PutStatus::PutOk);
    assert!(s.commit_log_max_offset() >= end);
}
