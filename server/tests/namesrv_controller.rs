//! `ferromq-namesrv` with `enableControllerInNamesrv=true` (RocketMQ 5
//! controller mode, the controller embedded in the name server): three name
//! server processes, each with its controller on its own port from
//! `controllerDLegerPeers`; the name servers answer their requests, the
//! controllers elect a leader and answer CONTROLLER_GET_METADATA_INFO; the
//! name server holding the controller leader is SIGKILLed and another
//! controller leads; SIGTERM stops name server and controller; a bad
//! controller configuration is a failed start.

mod common;

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::controller::{free_ports, peers, try_call};
use common::{port_of, spawn_to, Client, Proc};
use ferromq_controller::request_code as rc;
use ferromq_server::remoting::codes::{request, response};
use ferromq_server::remoting::RemotingCommand;

fn namesrv_props(dir: &Path, ns_port: u16, ctrl_ports: &[u16], i: usize) -> String {
    format!(
        "listenPort={ns_port}\nbindAddress=127.0.0.1\nkvConfigPath={}\n\
         enableControllerInNamesrv=true\ncontrollerDLegerGroup=TestGroup\n\
         controllerDLegerPeers={}\ncontrollerDLegerSelfId=n{i}\ncontrollerStorePath={}\n\
         scanNotActiveBrokerInterval=1000\nenableElectUncleanMaster=false\nnotifyBrokerRoleChanged=false\n",
        dir.join(format!("kv-n{i}.json")).display(),
        peers(ctrl_ports),
        dir.join(format!("controller-store-n{i}")).display()
    )
}

/// Starts name server `i`; its log (stderr) goes to `namesrv-n{i}.log`.
fn start_namesrv(dir: &Path, ns_port: u16, ctrl_ports: &[u16], i: usize) -> Proc {
    let cfg = dir.join(format!("namesrv-n{i}.properties"));
    std::fs::write(&cfg, namesrv_props(dir, ns_port, ctrl_ports, i)).unwrap();
    let log = std::fs::File::create(dir.join(format!("namesrv-n{i}.log"))).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferromq-namesrv"));
    cmd.arg("-c").arg(&cfg);
    let mut p = spawn_to("namesrv", cmd, Stdio::from(log), "warn");
    let ctrl = p.wait_line("controller n", Duration::from_secs(30));
    assert_eq!(port_of(&ctrl), ctrl_ports[i], "{ctrl}");
    let line = p.wait_line("ferromq-namesrv listening on", Duration::from_secs(30));
    assert_eq!(port_of(&line), ns_port, "{line}");
    p
}

/// The port of the controller that says it leads, waiting (bounded) for
/// one; every live controller must agree on the leader's address.
fn leader_port(ports: &[u16]) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut leaders = Vec::new();
        let mut named = Vec::new();
        for &p in ports {
            let req = RemotingCommand::request(rc::CONTROLLER_GET_METADATA_INFO);
            if let Some(r) = try_call(p, &req) {
                assert_eq!(r.code, response::SUCCESS, "{r:?}");
                if r.ext_fields.opt_str("isLeader") == Some("true") {
                    leaders.push(p);
                }
                named.push(
                    r.ext_fields
                        .opt_str("controllerLeaderAddress")
                        .map(str::to_owned),
                );
            }
        }
        if let [leader] = leaders[..] {
            let addr = format!("127.0.0.1:{leader}");
            if named.len() == ports.len() && named.iter().all(|n| n.as_deref() == Some(&addr)) {
                return leader;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no agreed controller leader within 30 s (leaders {leaders:?}, named {named:?})"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn assert_namesrv_answers(port: u16) {
    let r = Client::connect(port).invoke(
        RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC).with_ext("topic", "NoSuchTopic"),
    );
    assert_eq!(r.code, response::TOPIC_NOT_EXIST, "{r:?}");
}

fn port_closed(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1)).is_err()
}

#[test]
fn three_name_servers_with_embedded_controllers_elect_and_fail_over() {
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(6);
    let (ns_ports, ctrl_ports) = ports.split_at(3);
    let mut procs: Vec<Option<Proc>> = (0..3)
        .map(|i| Some(start_namesrv(dir.path(), ns_ports[i], ctrl_ports, i)))
        .collect();

    // The name servers do their usual work on their own ports.
    for &p in ns_ports {
        assert_namesrv_answers(p);
    }
    // The controllers elect one leader, which all of them name.
    let leader = leader_port(ctrl_ports);
    let li = ctrl_ports.iter().position(|&p| p == leader).unwrap();

    // SIGKILL the name server holding the leader: another controller leads.
    let mut killed = procs[li].take().unwrap();
    killed.child.kill().unwrap();
    killed.child.wait().unwrap();
    let rest: Vec<u16> = ctrl_ports
        .iter()
        .copied()
        .filter(|&p| p != leader)
        .collect();
    let new_leader = leader_port(&rest);
    assert_ne!(new_leader, leader);
    for (i, &p) in ns_ports.iter().enumerate() {
        if i != li {
            assert_namesrv_answers(p);
        }
    }

    // SIGTERM stops a name server and its controller cleanly.
    let fi = (0..3).find(|&i| i != li).unwrap();
    let mut p = procs[fi].take().unwrap();
    let st = p.terminate(Duration::from_secs(20));
    assert!(st.success(), "{st:?}");
    assert!(port_closed(ns_ports[fi]) && port_closed(ctrl_ports[fi]));

    // The controller keys were known to the name servers: no warnings.
    drop(procs);
    for i in 0..3 {
        let log = std::fs::read_to_string(dir.path().join(format!("namesrv-n{i}.log"))).unwrap();
        assert!(!log.contains("key ignored"), "namesrv n{i} log: {log}");
    }
}

#[test]
fn bad_controller_config_in_the_name_server_is_a_failed_start() {
    let dir = tempfile::tempdir().unwrap();
    let base = "listenPort=0\nbindAddress=127.0.0.1\nenableControllerInNamesrv=true\n";
    let cases = [
        ("", "controllerDLegerPeers"),
        (
            "controllerDLegerPeers=n0-127.0.0.1:19878\n",
            "controllerDLegerSelfId",
        ),
        (
            "controllerDLegerPeers=n0-127.0.0.1:19878\ncontrollerDLegerSelfId=n5\n",
            "n5",
        ),
        (
            "controllerDLegerPeers=n0-127.0.0.1:19878\ncontrollerDLegerSelfId=n0\n\
             scanNotActiveBrokerInterval=soon\n",
            "scanNotActiveBrokerInterval",
        ),
    ];
    for (i, (extra, needle)) in cases.iter().enumerate() {
        let cfg = dir.path().join(format!("bad-{i}.properties"));
        std::fs::write(&cfg, format!("{base}{extra}")).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_ferromq-namesrv"))
            .arg("-c")
            .arg(&cfg)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{extra:?} started");
        assert!(
            err.contains("ferromq-namesrv:") && err.contains(needle),
            "{extra:?}: {err}"
        );
    }

    // The controller's port taken: the name server does not start either.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let cfg = dir.path().join("taken.properties");
    std::fs::write(
        &cfg,
        format!(
            "{base}controllerDLegerPeers=n0-127.0.0.1:{port}\ncontrollerDLegerSelfId=n0\n\
             controllerStorePath={}\n",
            dir.path().join("store").display()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ferromq-namesrv"))
        .arg("-c")
        .arg(&cfg)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started with the port taken: {err}");
    assert!(err.contains("enableControllerInNamesrv"), "{err}");
    drop(taken);

    // Without enableControllerInNamesrv the controller keys are ignored,
    // with a word, and the name server prints its config.
    let cfg = dir.path().join("off.properties");
    std::fs::write(
        &cfg,
        "listenPort=0\ncontrollerDLegerPeers=n0-127.0.0.1:19878\ncontrollerDLegerSelfId=n0\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ferromq-namesrv"))
        .arg("-c")
        .arg(&cfg)
        .arg("-p")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("enableControllerInNamesrv=false"), "{text}");
    assert!(!text.contains("controllerDLegerPeers"), "{text}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("enableControllerInNamesrv is not true"),
        "{err}"
    );

    // With it, -p prints the controller's effective settings too, silently.
    let cfg = dir.path().join("on.properties");
    std::fs::write(
        &cfg,
        "listenPort=0\nenableControllerInNamesrv=true\ncontrollerDLegerGroup=G1\n\
         controllerDLegerPeers=n0-127.0.0.1:19878;n1-127.0.0.1:19868\ncontrollerDLegerSelfId=n1\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ferromq-namesrv"))
        .arg("-c")
        .arg(&cfg)
        .arg("-p")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for line in [
        "enableControllerInNamesrv=true\n",
        "controllerDLegerGroup=G1\n",
        "controllerDLegerPeers=n0-127.0.0.1:19878;n1-127.0.0.1:19868\n",
        "controllerDLegerSelfId=n1\n",
    ] {
        assert!(text.contains(line), "{line} missing in {text}");
    }
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
