//! A broker stopped with SIGTERM leaves the name server by UNREGISTER_BROKER,
//! not by the name server noticing its connection close: the name server's log
//! (at info) shows "broker unregistered" and never "dropping broker: its
//! connection closed" / "brokers removed: connection closed". As a control, a
//! broker killed with SIGKILL (no unregister) is removed the other way, so the
//! test can tell the two apart.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

fn count(log: &Path, needle: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(needle))
        .count()
}

fn wait_count(log: &Path, needle: &str, n: usize) {
    wait_for(Duration::from_secs(15), || {
        (count(log, needle) >= n).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "name server log never had {n} x `{needle}`:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        )
    });
}

const REGISTERED: &str = "new broker registered";
const UNREGISTERED: &str = "broker unregistered";
const CONN_CLOSED: &str = "brokers removed: connection closed";
const DROPPED: &str = "dropping broker: its connection closed";

#[test]
fn sigterm_unregisters_while_sigkill_is_noticed_on_connection_close() {
    let (_tmp, dir) = temp_dir();
    let log = dir.join("namesrv.log");
    let (_ns, ns_port) = start_namesrv_logged(&dir, &log);

    let a = dir.join("a");
    let (mut broker, _) = start_broker(&a, &broker_props(&a.join("store"), ""), Some(ns_port));
    wait_count(&log, REGISTERED, 1);
    let status = broker.terminate(Duration::from_secs(20));
    assert!(status.success(), "{status:?}");
    wait_count(&log, UNREGISTERED, 1);
    // Its connection is gone too by now; give the name server time to see it.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        (count(&log, CONN_CLOSED), count(&log, DROPPED)),
        (0, 0),
        "a clean shutdown unregisters before closing, leaving nothing for the close to remove"
    );

    // Control: SIGKILL sends no UNREGISTER_BROKER; the close removes the broker.
    let b = dir.join("b");
    let (killed, _) = start_broker(
        &b,
        &broker_props(&b.join("store"), "brokerName=broker-k\n"),
        Some(ns_port),
    );
    wait_count(&log, REGISTERED, 2);
    drop(killed); // SIGKILL
    wait_count(&log, CONN_CLOSED, 1);
    assert_eq!(
        count(&log, DROPPED),
        1,
        "removed because its connection closed"
    );
}
