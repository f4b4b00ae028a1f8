//! A slave fed a frame at the wrong offset, or garbage, drops the connection and
//! reconnects, with nothing wrong appended.

mod common;

use std::time::Duration;

use ferromq_engine::{BrokerRole, Message};
use ferromq_replication::HaSlave;

#[test]
fn wrong_offsets_and_garbage_are_refused() {
    let sd = tempfile::tempdir().unwrap();
    let slave_store = common::store(sd.path(), BrokerRole::Slave);
    // Give the slave a log of its own: copy a real record in through the raw path.
    let md = tempfile::tempdir().unwrap();
    let m = common::store(md.path(), BrokerRole::AsyncMaster);
    m.put_message(&Message::new("X", b"first".to_vec()))
        .unwrap();
    let first = m.read_commit_log(0, 1 << 20).unwrap().to_vec();
    let first_len = m.commit_log_max_offset() as usize;
    slave_store
        .append_commit_log(0, &first[..first_len])
        .unwrap();
    let end = slave_store.commit_log_max_offset();

    // 1. A frame at the wrong offset.
    let addr = common::fake_master(
        vec![common::frame(end as i64 + 100, b"junk")],
        Duration::from_millis(300),
    );
    let slave = HaSlave::start(slave_store.clone(), addr.to_string(), common::fast_ha()).unwrap();
    common::wait_until(10, "protocol error seen", || {
        slave.status().protocol_errors >= 1
    });
    assert!(slave
        .status()
        .last_error
        .unwrap_or_default()
        .contains("not equal"));
    assert_eq!(slave_store.commit_log_max_offset(), end, "nothing appended");
    slave.shutdown();

    // 2. Garbage: a header with an absurd size.
    let mut garbage = (end as i64).to_be_bytes().to_vec();
    garbage.extend_from_slice(&i32::MAX.to_be_bytes());
    let addr = common::fake_master(vec![garbage], Duration::from_millis(300));
    let slave = HaSlave::start(slave_store.clone(), addr.to_string(), common::fast_ha()).unwrap();
    common::wait_until(10, "garbage refused", || {
        slave.status().protocol_errors >= 1
    });
    assert!(slave.status().connections >= 1);
    assert_eq!(slave_store.commit_log_max_offset(), end, "nothing appended");
    common::wait_until(10, "reconnects", || slave.status().connections >= 2);
    slave.shutdown();
}
