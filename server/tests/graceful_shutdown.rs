//! SIGTERM: the broker stops accepting, answers the requests in flight (a parked
//! long poll gets its PULL_NOT_FOUND instead of a dropped connection),
//! unregisters from the name server and exits cleanly.

mod common;

use std::time::{Duration, Instant};

use common::*;
use ferromq_server::remoting::{request, response, RemotingCommand};

#[test]
fn sigterm_finishes_in_flight_and_unregisters() {
    let (_tmp, dir) = temp_dir();
    let (_ns, ns_port) = start_namesrv(&dir);
    let (mut broker, port) =
        start_broker(&dir, &broker_props(&dir.join("store"), ""), Some(ns_port));
    let mut c = Client::connect(port);
    assert_eq!(
        c.send_v2("Bye", 0, b"m", None, None).code,
        response::SUCCESS
    );
    let mut ns = Client::connect(ns_port);
    let route = |ns: &mut Client| {
        ns.invoke(
            RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC).with_ext("topic", "Bye"),
        )
        .code
    };
    wait_for(Duration::from_secs(10), || {
        (route(&mut ns) == response::SUCCESS).then_some(())
    })
    .expect("auto-created topic registered");
    wait_for(Duration::from_secs(10), || {
        let r = c.invoke(Client::offset_req(request::GET_MAX_OFFSET, "Bye", 0));
        (r.ext_fields.get_i64("offset").unwrap() == 1).then_some(())
    })
    .expect("dispatched");

    let parked = std::thread::spawn(move || {
        let mut p = Client::connect(port);
        let start = Instant::now();
        let r = p.invoke(Client::pull_req(
            "g",
            "Bye",
            0,
            1,
            32,
            0x2 | 0x4,
            30_000,
            "*",
        ));
        (r.code, start.elapsed())
    });
    std::thread::sleep(Duration::from_millis(500));
    let status = broker.terminate(Duration::from_secs(20));
    assert!(status.success(), "{status:?}");
    let (code, held) = parked.join().unwrap();
    assert_eq!(code, response::PULL_NOT_FOUND, "in-flight pull answered");
    assert!(
        held < Duration::from_secs(15),
        "woken by shutdown, not the 30 s timeout: {held:?}"
    );
    assert!(
        wait_for(Duration::from_secs(5), || (route(&mut ns)
            == response::TOPIC_NOT_EXIST)
            .then_some(()))
        .is_some(),
        "route removed after shutdown"
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "no longer accepting"
    );
}
