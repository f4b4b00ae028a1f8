//! Epoch mode's confirm offset: a master's consumers see a record only once
//! every other member of its SyncStateSet has it (RocketMQ 5's
//! `confirmOffset`), so nothing a consumer read can be cut by a failover.

mod autoswitch_common;
mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use autoswitch_common::{any_port, az, epochs, put_n};
use common::{store, wait_until};
use ferromq_engine::BrokerRole;
use ferromq_replication::{HaMaster, HaSlave};

fn units(s: &ferromq_engine::MessageStore) -> u64 {
    (0..4).map(|q| s.max_offset_in_queue("AZ", q)).sum()
}

#[test]
fn consumers_of_a_master_see_only_what_the_sync_state_set_has() {
    let (md, sd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let m = store(md.path(), BrokerRole::AsyncMaster);
    let em = epochs(md.path());
    em.become_master(1, 0).unwrap();
    let master = HaMaster::start(m.clone(), any_port(), az(&em, 1)).unwrap();
    // Alone in its set: everything is confirmed at once.
    put_n(&m, 20, "alone");
    wait_until(10, "20 units", || units(&m) == 20);
    assert_eq!(m.confirm_offset(), None);

    // Slave 2 in the set but not connected: nothing more is shown.
    master.set_sync_state_set(BTreeSet::from([1, 2]), 1);
    put_n(&m, 30, "waiting");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(units(&m), 20, "records slave 2 does not have stay hidden");

    // Slave 2 connects and copies: they appear.
    let s = store(sd.path(), BrokerRole::Slave);
    let es = epochs(sd.path());
    let slave = HaSlave::start(s.clone(), master.local_addr().to_string(), az(&es, 2)).unwrap();
    wait_until(20, "50 units once slave 2 has them", || units(&m) == 50);
    assert!(m.confirm_offset().unwrap() >= m.commit_log_max_offset());

    // Slave 2 stops: new records wait again, until it leaves the set.
    slave.shutdown();
    put_n(&m, 10, "gone");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(units(&m), 50);
    master.set_sync_state_set(BTreeSet::from([1]), 1);
    wait_until(10, "60 units once the set is the master alone", || {
        units(&m) == 60
    });

    // A fenced master confirms nothing more.
    master.set_sync_state_set(BTreeSet::from([1, 2]), 1);
    master.set_fenced(true);
    put_n(&m, 5, "fenced");
    let slave = HaSlave::start(s.clone(), master.local_addr().to_string(), az(&es, 2)).unwrap();
    wait_until(20, "slave 2 copied everything", || {
        s.commit_log_max_offset() == m.commit_log_max_offset()
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(units(&m), 60, "a fenced master shows nothing new");
    master.set_fenced(false);
    put_n(&m, 1, "unfenced");
    wait_until(10, "66 units once unfenced", || units(&m) == 66);
    drop(slave);
    master.shutdown();
}
