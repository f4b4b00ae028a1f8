//! The shipped deployment script runs the seed's 2m-2s-sync mode end to end: two
//! name servers, two SYNC_MASTERs and their slaves from
//! `examples/deploy/2m-2s-sync/*.properties`, on free loopback ports with the
//! store in a temp dir; a message sent through the route's master is pulled back
//! from master and slave; `stop` ends every process it started. Likewise the
//! controller layout (`examples/deploy/controller/`): three name servers with
//! embedded controllers, which elect a leader, and two groups of three brokers.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    pick_pull_broker, records, route_brokers, temp_dir, try_runtime_info, wait_for, Client,
};
use ferromq_server::remoting::codes::response;
use ferromq_server::remoting::RemotingCommand;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repository root")
        .to_path_buf()
}

/// `n` distinct free ports, each with `port + 1` free too (a master's HA port).
fn free_ports(n: usize) -> Vec<u16> {
    let mut held = Vec::new();
    let mut ports = Vec::new();
    while ports.len() < n {
        let a = TcpListener::bind("127.0.0.1:0").unwrap();
        let p = a.local_addr().unwrap().port();
        if p == u16::MAX || ports.iter().any(|&q: &u16| q.abs_diff(p) <= 1) {
            continue;
        }
        if let Ok(b) = TcpListener::bind(("127.0.0.1", p + 1)) {
            ports.push(p);
            held.push(a);
            held.push(b);
        }
    }
    ports
}

/// Run the script with a bounded wait; returns (success, stdout + stderr).
fn run_script(action: &str, run_dir: &Path, ns: &[u16], brokers: &[u16]) -> (bool, String) {
    run_mode("2m-2s-sync", action, run_dir, ns, &[], brokers)
}

/// `run_script` for `mode`, with `CONTROLLER_PORTS` when `ctrl` is not empty.
fn run_mode(
    mode: &str,
    action: &str,
    run_dir: &Path,
    ns: &[u16],
    ctrl: &[u16],
    brokers: &[u16],
) -> (bool, String) {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_ferromq-broker"))
        .parent()
        .unwrap()
        .to_path_buf();
    let join = |p: &[u16]| p.iter().map(u16::to_string).collect::<Vec<_>>().join(" ");
    let mut child = Command::new("bash")
        .arg(repo_root().join("examples/deploy/run-layout.sh"))
        .arg(mode)
        .arg(action)
        .env("FERROMQ_BIN_DIR", &bin_dir)
        .env("FERROMQ_RUN_DIR", run_dir)
        .env("NAMESRV_PORTS", join(ns))
        .env("BROKER_PORTS", join(brokers))
        .env("CONTROLLER_PORTS", join(ctrl))
        .env("FERROMQ_START_TIMEOUT", "30")
        .env("FERROMQ_STOP_TIMEOUT", "15")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run bash");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("run-layout.sh {action} did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn pids(run_dir: &Path) -> Vec<u32> {
    std::fs::read_dir(run_dir.join("pids"))
        .map(|d| {
            d.filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
                .filter_map(|s| s.trim().parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

/// Stops the layout if the test fails half way.
struct Stopper<'a> {
    mode: &'a str,
    ctrl: &'a [u16],
    run_dir: &'a Path,
    ns: &'a [u16],
    brokers: &'a [u16],
    armed: bool,
}

impl Drop for Stopper<'_> {
    fn drop(&mut self) {
        if self.armed {
            let _ = run_mode(
                self.mode,
                "stop",
                self.run_dir,
                self.ns,
                self.ctrl,
                self.brokers,
            );
        }
    }
}

#[test]
fn two_masters_two_slaves_sync_layout_starts_serves_and_stops() {
    let (_d, dir) = temp_dir();
    let run_dir = dir.join("run");
    let ports = free_ports(6);
    let (ns, brokers) = ports.split_at(2);
    let mut stopper = Stopper {
        mode: "2m-2s-sync",
        ctrl: &[],
        run_dir: &run_dir,
        ns,
        brokers,
        armed: true,
    };
    let (ok, out) = run_script("start", &run_dir, ns, brokers);
    assert!(ok, "start failed:\n{out}");
    assert_eq!(pids(&run_dir).len(), 6, "{out}");
    // The relative store paths of the shipped files land in the run directory.
    assert!(run_dir.join("store/broker-a/commitlog").is_dir());
    assert!(run_dir.join("store/broker-b-s/commitlog").is_dir());

    // Send through a master: SYNC_MASTER acknowledges once its slave has it.
    let (a_master, a_slave) = (brokers[0], brokers[2]);
    let mut c = Client::connect(a_master);
    wait_for(Duration::from_secs(30), || {
        let r = c.send_v2("LayoutTopic", 0, b"hello layout", None, None);
        (r.code == response::SUCCESS).then_some(())
    })
    .expect("broker-a's slave follows, and the send is acknowledged");
    // Both name servers route the topic to broker-a with its slave.
    for n in ns {
        let route = wait_for(Duration::from_secs(20), || {
            let r = route_brokers(&[*n], "LayoutTopic")?;
            r.iter()
                .any(|(name, addrs)| name == "broker-a" && addrs.len() == 2)
                .then_some(r)
        })
        .unwrap_or_else(|| panic!("name server {n} routes LayoutTopic"));
        let (_, addrs) = route.iter().find(|(n, _)| n == "broker-a").unwrap();
        assert_eq!(
            pick_pull_broker(addrs),
            Some(format!("127.0.0.1:{a_master}"))
        );
    }
    for port in [a_master, a_slave] {
        let mut c = Client::connect(port);
        let body = wait_for(Duration::from_secs(20), || {
            let r = c.pull("layout-group", "LayoutTopic", 0, 0, 32);
            (r.code == response::SUCCESS).then(|| records(&r.body))
        })
        .unwrap_or_else(|| panic!("pull from {port}"));
        let bodies: Vec<&[u8]> = body.iter().map(|m| m.body.as_slice()).collect();
        assert!(bodies.contains(&b"hello layout".as_slice()), "{port}");
    }

    let running = pids(&run_dir);
    let (ok, out) = run_script("stop", &run_dir, ns, brokers);
    stopper.armed = false;
    assert!(ok, "stop failed:\n{out}");
    assert!(
        !out.contains("SIGKILL"),
        "every process stops on SIGTERM:\n{out}"
    );
    for pid in running {
        assert!(!alive(pid), "pid {pid} still runs after stop");
    }
    assert!(pids(&run_dir).is_empty());
}

/// The controller that says it leads, waiting (bounded) for one.
fn controller_leader(ctrl: &[u16]) -> Option<u16> {
    wait_for(Duration::from_secs(30), || {
        ctrl.iter().copied().find(|&p| {
            let Ok(s) = std::net::TcpStream::connect(("127.0.0.1", p)) else {
                return false;
            };
            drop(s);
            let r = Client::connect(p).try_invoke(RemotingCommand::request(
                ferromq_controller::request_code::CONTROLLER_GET_METADATA_INFO,
            ));
            matches!(r, Ok(r) if r.ext_fields.opt_str("isLeader") == Some("true"))
        })
    })
}

#[test]
fn controller_layout_starts_elects_serves_and_stops() {
    let (_d, dir) = temp_dir();
    let run_dir = dir.join("run");
    let ports = free_ports(12);
    let (ns, rest) = ports.split_at(3);
    let (ctrl, brokers) = rest.split_at(3);
    let mode = "controller";
    let mut stopper = Stopper {
        mode,
        ctrl,
        run_dir: &run_dir,
        ns,
        brokers,
        armed: true,
    };
    let (ok, out) = run_mode(mode, "start", &run_dir, ns, ctrl, brokers);
    assert!(ok, "start failed:\n{out}");
    assert_eq!(pids(&run_dir).len(), 9, "{out}");
    assert!(run_dir.join("store/broker-b-2/commitlog").is_dir());

    // The embedded controllers elect a leader.
    let leader = controller_leader(ctrl).expect("a controller leader within 30 s");
    assert!(run_dir.join("store/controller-n0").is_dir(), "{leader}");

    // The controllers choose broker-a's master among its three replicas
    // (brokers[0], [2], [4]); it gathers both slaves in its sync state set
    // and takes sends, and every name server routes to the three replicas
    // with the master as brokerId 0.
    let replicas = [brokers[0], brokers[2], brokers[4]];
    let master = wait_for(Duration::from_secs(60), || {
        replicas.iter().copied().find(|p| {
            try_runtime_info(*p).is_some_and(|i| {
                i.get("brokerRole").map(String::as_str) == Some("SYNC_MASTER")
                    && i.get("syncStateSet")
                        .is_some_and(|s| s.split(',').count() == 3)
            })
        })
    })
    .expect("broker-a's master elected with both slaves in its sync state set");
    let mut c = Client::connect(master);
    wait_for(Duration::from_secs(30), || {
        let r = c.send_v2("LayoutTopic", 0, b"hello controller layout", None, None);
        (r.code == response::SUCCESS).then_some(())
    })
    .expect("the send is acknowledged by the sync state set");
    for n in ns {
        wait_for(Duration::from_secs(20), || {
            let r = route_brokers(&[*n], "LayoutTopic")?;
            r.iter()
                .any(|(name, addrs)| {
                    name == "broker-a"
                        && addrs.len() == 3
                        && addrs.get(&0) == Some(&format!("127.0.0.1:{master}"))
                })
                .then_some(())
        })
        .unwrap_or_else(|| {
            panic!("name server {n} routes LayoutTopic to broker-a's three replicas, master {master} as id 0")
        });
    }

    let running = pids(&run_dir);
    let (ok, out) = run_mode(mode, "stop", &run_dir, ns, ctrl, brokers);
    stopper.armed = false;
    assert!(ok, "stop failed:\n{out}");
    assert!(
        !out.contains("SIGKILL"),
        "every process stops on SIGTERM:\n{out}"
    );
    for pid in running {
        assert!(!alive(pid), "pid {pid} still runs after stop");
    }
    // The controller-mode keys load without a word, in name servers and brokers.
    for e in std::fs::read_dir(run_dir.join("logs")).unwrap() {
        let path = e.unwrap().path();
        let log = std::fs::read_to_string(&path).unwrap();
        for bad in ["key ignored", "unknown key"] {
            assert!(!log.contains(bad), "{}: {log}", path.display());
        }
    }
}
