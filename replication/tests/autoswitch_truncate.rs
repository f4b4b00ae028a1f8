//! Epoch mode: a former master that rejoins with a tail the new master never
//! got truncates exactly that tail and then follows byte for byte; a slave
//! that only lags is not truncated.

mod autoswitch_common;
mod common;

use autoswitch_common::{any_port, az, epochs, put_n, starts};
use common::{log_bytes, store, wait_until};
use ferromq_engine::BrokerRole;
use ferromq_replication::{HaMaster, HaSlave};

#[test]
fn diverged_tail_is_truncated_exactly_then_followed() {
    let (ad, bd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());

    // A is master at epoch 1; B follows it.
    let a = store(ad.path(), BrokerRole::AsyncMaster);
    let ea = epochs(ad.path());
    ea.become_master(1, a.commit_log_max_offset()).unwrap();
    let ma = HaMaster::start(a.clone(), any_port(), az(&ea, 1)).unwrap();
    let b = store(bd.path(), BrokerRole::Slave);
    let eb = epochs(bd.path());
    let sb = HaSlave::start(b.clone(), ma.local_addr().to_string(), az(&eb, 2)).unwrap();
    put_n(&a, 300, "shared");
    wait_until(20, "B caught up with A", || {
        b.commit_log_max_offset() == a.commit_log_max_offset()
    });
    assert_eq!(starts(&eb), vec![(1, 0)], "B adopted A's epochs");
    assert_eq!(ma.slaves()[0].broker_id, Some(2));
    let shared = b.commit_log_max_offset();
    assert!(shared > 64 * 1024, "the shared part spans commitlog files");
    sb.shutdown();
    ma.shutdown();
    drop((sb, ma));

    // A writes a tail B never gets.
    put_n(&a, 250, "diverged");
    let a_old_max = a.commit_log_max_offset();
    assert!(
        a_old_max / (64 * 1024) > shared / (64 * 1024),
        "the diverged tail reaches into a later commitlog file"
    );
    let a_shared_bytes = log_bytes(&a, 0, shared);
    a.shutdown().unwrap();
    drop(a);

    // Failover: B becomes master at epoch 2 from where its log ends, and
    // writes records of its own there.
    b.shutdown().unwrap();
    drop(b);
    let b = store(bd.path(), BrokerRole::AsyncMaster);
    eb.become_master(2, b.commit_log_max_offset()).unwrap();
    assert_eq!(starts(&eb), vec![(1, 0), (2, shared)]);
    let mb = HaMaster::start(b.clone(), any_port(), az(&eb, 2)).unwrap();
    put_n(&b, 50, "epoch2");

    // A rejoins as a slave of B (reopened, its epoch file read afresh).
    let a = store(ad.path(), BrokerRole::Slave);
    assert_eq!(a.commit_log_max_offset(), a_old_max);
    let ea = epochs(ad.path());
    assert_eq!(starts(&ea), vec![(1, 0)]);
    let sa = HaSlave::start(a.clone(), mb.local_addr().to_string(), az(&ea, 1)).unwrap();
    wait_until(20, "A followed B", || {
        a.commit_log_max_offset() == b.commit_log_max_offset()
    });
    let st = sa.status();
    assert_eq!(st.truncations, 1, "{st:?}");
    assert_eq!(
        st.last_truncated_to,
        Some(shared),
        "cut exactly the unshared tail"
    );
    assert_eq!(starts(&ea), vec![(1, 0), (2, shared)]);
    let max = b.commit_log_max_offset();
    assert_eq!(
        log_bytes(&a, 0, shared),
        a_shared_bytes,
        "the shared part kept"
    );
    assert!(
        log_bytes(&a, 0, max) == log_bytes(&b, 0, max),
        "byte for byte"
    );

    // And it keeps following.
    put_n(&b, 80, "more");
    wait_until(20, "A followed B again", || {
        a.commit_log_max_offset() == b.commit_log_max_offset()
    });
    let max = b.commit_log_max_offset();
    assert!(log_bytes(&a, 0, max) == log_bytes(&b, 0, max));
    assert_eq!(sa.status().truncations, 1);
    // The consume queues follow the cut: the old tail's messages are gone
    // and B's are there, at the same queue offsets.
    // (Both dispatch in the background: wait for all of B's records.)
    let total = |s: &ferromq_engine::MessageStore| {
        (0..4).map(|q| s.max_offset_in_queue("AZ", q)).sum::<u64>()
    };
    wait_until(20, "A's and B's consume queues hold every record", || {
        total(&a) == 300 + 50 + 80 && total(&b) == 300 + 50 + 80
    });
    assert!((0..4).all(|q| a.max_offset_in_queue("AZ", q) == b.max_offset_in_queue("AZ", q)));
}

#[test]
fn lagging_slave_is_not_truncated() {
    let (md, sd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let m = store(md.path(), BrokerRole::AsyncMaster);
    let em = epochs(md.path());
    em.become_master(1, 0).unwrap();
    let master = HaMaster::start(m.clone(), any_port(), az(&em, 1)).unwrap();
    let s = store(sd.path(), BrokerRole::Slave);
    let es = epochs(sd.path());
    let slave = HaSlave::start(s.clone(), master.local_addr().to_string(), az(&es, 2)).unwrap();
    put_n(&m, 100, "one");
    wait_until(20, "slave caught up", || {
        s.commit_log_max_offset() == m.commit_log_max_offset()
    });
    slave.shutdown();
    drop(slave);
    let lag_from = s.commit_log_max_offset();
    let before = log_bytes(&s, 0, lag_from);

    // The master writes on, and starts a new epoch meanwhile.
    put_n(&m, 150, "two");
    em.become_master(2, m.commit_log_max_offset()).unwrap();
    put_n(&m, 60, "three");

    let slave = HaSlave::start(s.clone(), master.local_addr().to_string(), az(&es, 2)).unwrap();
    wait_until(20, "slave caught up again", || {
        s.commit_log_max_offset() == m.commit_log_max_offset()
    });
    let st = slave.status();
    assert_eq!(st.truncations, 0, "{st:?}");
    assert_eq!(st.last_truncated_to, None);
    assert!(st.epoch_handshakes >= 1);
    assert_eq!(starts(&es), starts(&em));
    assert_eq!(log_bytes(&s, 0, lag_from), before);
    let max = m.commit_log_max_offset();
    assert!(log_bytes(&s, 0, max) == log_bytes(&m, 0, max));
}

#[test]
fn slave_ending_inside_a_record_follows_from_there() {
    let (md, sd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let m = store(md.path(), BrokerRole::AsyncMaster);
    let em = epochs(md.path());
    em.become_master(1, 0).unwrap();
    put_n(&m, 40, "one");
    em.become_master(2, m.commit_log_max_offset()).unwrap();
    put_n(&m, 40, "two");
    // The slave got the first 1000 bytes of epoch 1 (a stream cut inside a
    // record) and knows epoch 1.
    let s = store(sd.path(), BrokerRole::Slave);
    s.append_commit_log(0, &log_bytes(&m, 0, 1000)).unwrap();
    let mut f =
        ferromq_replication::EpochFile::open(sd.path().join("epochFileCheckpoint")).unwrap();
    f.append(1, 0).unwrap();
    drop(f);
    let es = epochs(sd.path());
    let master = HaMaster::start(m.clone(), any_port(), az(&em, 1)).unwrap();
    let slave = HaSlave::start(s.clone(), master.local_addr().to_string(), az(&es, 2)).unwrap();
    wait_until(20, "slave caught up", || {
        s.commit_log_max_offset() == m.commit_log_max_offset()
    });
    assert_eq!(slave.status().truncations, 0);
    assert_eq!(master.slaves()[0].streaming_from, Some(1000));
    assert_eq!(starts(&es), starts(&em));
    let max = m.commit_log_max_offset();
    assert!(log_bytes(&s, 0, max) == log_bytes(&m, 0, max));
}
