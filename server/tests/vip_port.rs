//! The VIP ("fast") port, RocketMQ's `listenPort - 2`: open by default with
//! the same requests as the main port (a client there sends and pulls); a
//! clear startup error when it is taken; `fastListenPort=-1` opens none.

mod common;

use std::net::TcpListener;
use std::process::Stdio;
use std::time::Duration;

use common::{broker_command, broker_props, records, spawn_to, temp_dir, Client, Proc};
use ferromq_server::remoting::codes::response;

/// Start the broker with `props`; its main port and, if it printed one, its
/// fast port.
fn start(dir: &std::path::Path, props: &str) -> (Proc, u16, Option<u16>) {
    let mut cmd = broker_command(env!("CARGO_BIN_EXE_ferromq-broker"), dir, props);
    cmd.stdin(Stdio::null());
    let mut p = spawn_to("broker", cmd, Stdio::null(), "warn");
    let main = common::port_of(&p.wait_line("listening on", Duration::from_secs(30)));
    let port_of = |line: &str| line.rsplit(':').next().and_then(|p| p.trim().parse().ok());
    // The fast port's line comes right after the main one, before the HA port's.
    let next = p.wait_line("port", Duration::from_secs(30));
    let fast = next.contains("fast port").then(|| port_of(&next)).flatten();
    (p, main, fast)
}

#[test]
fn the_fast_port_is_open_by_default_and_serves_sends_and_pulls() {
    let (_d, dir) = temp_dir();
    // listenPort=0: the OS chooses both ports.
    let (_b, main, fast) = start(&dir, &broker_props(&dir.join("store"), ""));
    let fast = fast.expect("a fast port by default");
    assert_ne!(fast, main);
    let mut c = Client::connect(fast);
    let r = c.send_v2("VipTopic", 0, b"via the vip port", None, None);
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let got = common::wait_for(Duration::from_secs(10), || {
        let r = c.pull("vip-group", "VipTopic", 0, 0, 8);
        (r.code == response::SUCCESS).then(|| records(&r.body))
    })
    .expect("pulled on the fast port");
    assert_eq!(got[0].body, b"via the vip port");
    // The main port serves the same store.
    let mut m = Client::connect(main);
    let r = m.pull("vip-group", "VipTopic", 0, 0, 8);
    assert_eq!(r.code, response::SUCCESS);
    assert_eq!(records(&r.body).len(), 1);
}

#[test]
fn a_taken_fast_port_is_a_clear_startup_error_and_minus_one_opens_none() {
    let (_d, dir) = temp_dir();
    // Hold a port P and ask for listenPort P + 2: the fast port P is taken.
    let mut tried = 0;
    loop {
        tried += 1;
        let held = TcpListener::bind("127.0.0.1:0").unwrap();
        let p = held.local_addr().unwrap().port();
        if p > 65_000 || TcpListener::bind(("127.0.0.1", p + 2)).is_err() {
            assert!(tried < 20, "no free port pair found");
            continue;
        }
        let props = broker_props(&dir.join("store"), &format!("listenPort={}\n", p + 2));
        let out = broker_command(env!("CARGO_BIN_EXE_ferromq-broker"), &dir, &props)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains(&format!("cannot bind 127.0.0.1:{}", p + 2)) {
            // The main port was taken meanwhile by someone else: try again.
            assert!(tried < 20, "{err}");
            continue;
        }
        assert!(!out.status.success(), "started with its fast port taken");
        assert!(
            err.contains(&format!("cannot bind the fast (VIP) port 127.0.0.1:{p}")),
            "{err}"
        );
        drop(held);
        break;
    }
    let (_b, _main, fast) = start(
        &dir,
        &broker_props(&dir.join("store"), "fastListenPort=-1\n"),
    );
    assert_eq!(fast, None, "fastListenPort=-1 opens no fast port");
}
