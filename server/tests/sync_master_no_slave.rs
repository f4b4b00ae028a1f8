//! A SYNC_MASTER with no slave says so loudly: a WARN at start and while it
//! answers sends SLAVE_NOT_AVAILABLE (clients that retry on that answer
//! store duplicates), and `haSyncMasterWithoutSlave` in its runtime info,
//! which turns false once a slave connects.

mod common;

use std::time::Duration;

use common::{
    ha_props, runtime_info, start_broker, start_broker_logged_at, temp_dir, wait_for, Client,
};
use ferromq_server::remoting::codes::response;

#[test]
fn a_sync_master_without_slave_warns_and_says_so_in_runtime_info() {
    let (_d, dir) = temp_dir();
    let mdir = dir.join("master");
    let log = dir.join("master.log");
    let (mut master, m_port) = start_broker_logged_at(
        &mdir,
        &ha_props(&mdir.join("store"), "broker-n", 0, "SYNC_MASTER", ""),
        &log,
        "warn",
    );
    let ha_port = common::ha_port(&mut master);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("brokerRole=SYNC_MASTER: until a slave connects"),
        "{text}"
    );
    assert_eq!(
        runtime_info(m_port)
            .get("haSyncMasterWithoutSlave")
            .map(String::as_str),
        Some("true")
    );
    let mut c = Client::connect(m_port);
    for i in 0..3 {
        let r = c.send_v2("NoSlaveTopic", 0, format!("m{i}").as_bytes(), None, None);
        assert_eq!(r.code, response::SLAVE_NOT_AVAILABLE, "{:?}", r.remark);
    }
    let text = std::fs::read_to_string(&log).unwrap();
    let lines = text
        .lines()
        .filter(|l| l.contains("SYNC_MASTER with no slave connected"))
        .count();
    assert_eq!(lines, 1, "one line a minute, not one per send: {text}");

    let sdir = dir.join("slave");
    let (_slave, _) = start_broker(
        &sdir,
        &ha_props(
            &sdir.join("store"),
            "broker-n",
            1,
            "SLAVE",
            &format!("haMasterAddress=127.0.0.1:{ha_port}\n"),
        ),
        None,
    );
    wait_for(Duration::from_secs(30), || {
        (runtime_info(m_port)
            .get("haSyncMasterWithoutSlave")
            .map(String::as_str)
            == Some("false"))
        .then_some(())
    })
    .expect("the flag turns false once the slave connects");
    wait_for(Duration::from_secs(30), || {
        let r = c.send_v2("NoSlaveTopic", 0, b"replicated", None, None);
        (r.code == response::SUCCESS).then_some(())
    })
    .expect("sends succeed with the slave");
}
