//! `ferromq-admin`'s controller subcommands (RocketMQ 5 controller mode)
//! against three real `ferromq-controller` processes: `getControllerMetaData`,
//! `getControllerConfig`, `getSyncStateSet`, `electMaster` (a manual switch),
//! `cleanBrokerMetadata`; `getBrokerEpoch` against a broker not in controller
//! mode; bad input refused with a clear error and a non-zero exit.

mod common;

use std::collections::BTreeSet;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::controller::{call_on, connect, free_ports, leader_port, try_call};
use common::{broker_props, spawn_to, start_broker, Proc};
use ferromq_controller::request_code as rc;
use ferromq_controller::response_code as code;
use ferromq_server::remoting::RemotingCommand;

const CLUSTER: &str = "DefaultCluster";
const GROUP: &str = "broker-a";

fn start_controller(dir: &Path, ports: &[u16], i: usize) -> Proc {
    let peers = ports
        .iter()
        .enumerate()
        .map(|(i, p)| format!("n{i}-127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(";");
    let cfg = dir.join(format!("controller-n{i}.properties"));
    std::fs::write(
        &cfg,
        format!(
            "controllerDLegerGroup=TestGroup\ncontrollerDLegerPeers={peers}\ncontrollerDLegerSelfId=n{i}\n\
             controllerStorePath={}\nscanNotActiveBrokerInterval=1000\nenableElectUncleanMaster=false\n\
             notifyBrokerRoleChanged=false\n",
            dir.join(format!("store-n{i}")).display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferromq-controller"));
    cmd.arg("-c").arg(&cfg);
    let log = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into());
    let mut p = spawn_to("controller", cmd, Stdio::inherit(), &log);
    p.wait_line("listening on", Duration::from_secs(30));
    p
}

/// `req` to the leader (retried while the leader settles).
fn call_leader(ports: &[u16], req: &RemotingCommand) -> RemotingCommand {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = try_call(leader_port(ports), req);
        match r {
            Some(r)
                if r.code != code::CONTROLLER_NOT_LEADER
                    && r.code != code::CONTROLLER_JRAFT_INTERNAL_ERROR =>
            {
                return r
            }
            _ => {}
        }
        assert!(Instant::now() < deadline, "no leader answered {}", req.code);
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn broker_addr(id: u64) -> String {
    format!("127.0.0.1:{}", 30910 + id)
}

/// Heartbeats of the brokers in `beating` to every controller every 300 ms,
/// on one persistent connection per broker and controller; a broker taken
/// out of `beating` has its connections closed.
struct Heartbeats {
    beating: Arc<Mutex<BTreeSet<u64>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Heartbeats {
    fn start(ports: Vec<u16>, ids: &[u64]) -> Heartbeats {
        let beating = Arc::new(Mutex::new(ids.iter().copied().collect::<BTreeSet<u64>>()));
        let stop = Arc::new(AtomicBool::new(false));
        let (b, s) = (beating.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut conns: std::collections::BTreeMap<(u64, u16), TcpStream> = Default::default();
            let end = Instant::now() + Duration::from_secs(120);
            while !s.load(Ordering::Relaxed) && Instant::now() < end {
                let ids = b.lock().unwrap().clone();
                conns.retain(|(id, _), _| ids.contains(id));
                for &id in &ids {
                    for &p in &ports {
                        let req = RemotingCommand::request(rc::BROKER_HEARTBEAT)
                            .with_ext("clusterName", CLUSTER)
                            .with_ext("brokerName", GROUP)
                            .with_ext("brokerAddr", broker_addr(id))
                            .with_ext("brokerId", id)
                            .with_ext("epoch", 1)
                            .with_ext("maxOffset", 100 * id)
                            .with_ext("confirmOffset", 100 * id)
                            .with_ext("heartbeatTimeoutMills", 3000)
                            .with_ext("electionPriority", 0);
                        if let std::collections::btree_map::Entry::Vacant(e) = conns.entry((id, p))
                        {
                            match connect(p) {
                                Some(c) => {
                                    e.insert(c);
                                }
                                None => continue,
                            }
                        }
                        let c = conns.get_mut(&(id, p)).unwrap();
                        if call_on(c, &req).is_none() {
                            conns.remove(&(id, p));
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        });
        Heartbeats {
            beating,
            stop,
            thread: Some(thread),
        }
    }

    fn stop_broker(&self, id: u64) {
        self.beating.lock().unwrap().remove(&id);
    }
}

impl Drop for Heartbeats {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn admin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferromq-admin"))
        .args(args)
        .output()
        .expect("run ferromq-admin")
}

fn admin_ok(args: &[&str]) -> String {
    let o = admin(args);
    assert!(
        o.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// `args` must fail with a non-zero exit; its standard error.
fn admin_err(args: &[&str]) -> String {
    let o = admin(args);
    assert!(
        !o.status.success(),
        "{args:?} succeeded: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    let err = String::from_utf8(o.stderr).unwrap();
    eprintln!("{args:?} -> {}", err.trim());
    err
}

fn line_value<'a>(out: &'a str, key: &str) -> Option<&'a str> {
    out.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('\t'))
}

#[test]
fn controller_commands_show_switch_and_clean_replicas() {
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(3);
    let _procs: Vec<Proc> = (0..3)
        .map(|i| start_controller(dir.path(), &ports, i))
        .collect();
    let leader = leader_port(&ports);
    let follower = *ports.iter().find(|&&p| p != leader).unwrap();
    let fa = format!("127.0.0.1:{follower}");

    // getControllerMetaData from a follower names the group, leader and peers
    // (once the follower has heard from the leader).
    let deadline = Instant::now() + Duration::from_secs(10);
    let meta = loop {
        let out = admin_ok(&["getControllerMetaData", "-a", &fa]);
        let leader = leader_port(&ports);
        if line_value(&out, "#ControllerLeaderAddress") == Some(&format!("127.0.0.1:{leader}")) {
            break out;
        }
        assert!(Instant::now() < deadline, "no leader in {out}");
        std::thread::sleep(Duration::from_millis(200));
    };
    eprintln!("getControllerMetaData:\n{meta}");
    assert_eq!(line_value(&meta, "#ControllerGroup"), Some("TestGroup"));
    assert!(line_value(&meta, "#ControllerLeaderId").is_some_and(|id| id.starts_with('n')));
    let peers: Vec<&str> = meta.lines().filter(|l| l.starts_with("#Peer:\t")).collect();
    assert_eq!(peers.len(), 3, "{meta}");
    for p in &ports {
        assert!(meta.contains(&format!("127.0.0.1:{p}")), "{meta}");
    }

    // getControllerConfig of two controllers.
    let all = format!("127.0.0.1:{};127.0.0.1:{}", ports[0], ports[1]);
    let cfg = admin_ok(&["getControllerConfig", "-a", &all]);
    assert_eq!(cfg.matches("============127.0.0.1:").count(), 2, "{cfg}");
    assert!(
        cfg.lines()
            .any(|l| l.starts_with("controllerDLegerGroup") && l.ends_with("=  TestGroup")),
        "{cfg}"
    );

    // Three replicas register; broker 1 becomes master; all three in sync.
    for id in 1..=3u64 {
        let apply = RemotingCommand::request(rc::CONTROLLER_APPLY_BROKER_ID)
            .with_ext("clusterName", CLUSTER)
            .with_ext("brokerName", GROUP)
            .with_ext("appliedBrokerId", id)
            .with_ext("registerCheckCode", format!("{};{id}", broker_addr(id)));
        let r = call_leader(&ports, &apply);
        assert_eq!(r.code, code::SUCCESS, "{r:?}");
        let register = RemotingCommand::request(rc::CONTROLLER_REGISTER_BROKER)
            .with_ext("clusterName", CLUSTER)
            .with_ext("brokerName", GROUP)
            .with_ext("brokerId", id)
            .with_ext("brokerAddress", broker_addr(id));
        let r = call_leader(&ports, &register);
        assert_eq!(r.code, code::SUCCESS, "{r:?}");
    }
    let hb = Heartbeats::start(ports.clone(), &[1, 2, 3]);
    std::thread::sleep(Duration::from_millis(800));
    let elect = RemotingCommand::request(rc::CONTROLLER_ELECT_MASTER)
        .with_ext("clusterName", CLUSTER)
        .with_ext("brokerName", GROUP)
        .with_ext("brokerId", 1)
        .with_ext("designateElect", false);
    let r = call_leader(&ports, &elect);
    assert_eq!(r.code, code::SUCCESS, "{r:?}");
    let alter = RemotingCommand::request(rc::CONTROLLER_ALTER_SYNC_STATE_SET)
        .with_ext("brokerName", GROUP)
        .with_ext("masterBrokerId", 1)
        .with_ext("masterEpoch", 1)
        .with_body(br#"{"syncStateSet":[1,2,3],"syncStateSetEpoch":1}"#.to_vec());
    let r = call_leader(&ports, &alter);
    assert_eq!(r.code, code::SUCCESS, "{r:?}");

    // getSyncStateSet through a follower (the admin follows it to the leader).
    let set = admin_ok(&["getSyncStateSet", "-a", &fa, "-b", GROUP]);
    eprintln!("getSyncStateSet:\n{set}");
    assert_eq!(line_value(&set, "#brokerName"), Some(GROUP));
    assert_eq!(line_value(&set, "#MasterBrokerId"), Some("1"));
    assert_eq!(
        line_value(&set, "#MasterAddr"),
        Some(broker_addr(1).as_str())
    );
    assert_eq!(line_value(&set, "#MasterEpoch"), Some("1"));
    assert_eq!(line_value(&set, "#SyncStateSetNums"), Some("3"));
    for id in 1..=3 {
        let want = format!(
            "InSyncReplica:\tReplicaIdentity{{brokerName='{GROUP}', brokerId={id}, brokerAddress='{}', alive=true}}",
            broker_addr(id)
        );
        assert!(set.contains(&want), "{want} not in {set}");
    }

    // electMaster: a manual switch to broker 2 bumps the master epoch.
    let out = admin_ok(&[
        "electMaster",
        "-a",
        &fa,
        "-c",
        CLUSTER,
        "-b",
        GROUP,
        "-i",
        "2",
    ]);
    eprintln!("electMaster:\n{out}");
    assert_eq!(line_value(&out, "#ClusterName"), Some(CLUSTER));
    assert_eq!(line_value(&out, "#BrokerName"), Some(GROUP));
    assert_eq!(
        line_value(&out, "#BrokerMasterAddr"),
        Some(broker_addr(2).as_str())
    );
    assert_eq!(line_value(&out, "#MasterEpoch"), Some("2"));
    for id in 1..=3 {
        assert!(
            out.contains(&format!("\t#Broker\t{id}\t{}", broker_addr(id))),
            "{out}"
        );
    }
    let set = admin_ok(&["getSyncStateSet", "-a", &fa, "-b", GROUP]);
    assert_eq!(line_value(&set, "#MasterBrokerId"), Some("2"), "{set}");
    assert_eq!(line_value(&set, "#MasterEpoch"), Some("2"), "{set}");

    // A replica that is not registered, a group that is not: clear errors.
    let err = admin_err(&[
        "electMaster",
        "-a",
        &fa,
        "-c",
        CLUSTER,
        "-b",
        GROUP,
        "-i",
        "9",
    ]);
    assert!(
        err.contains("elect broker 9 of broker-a master: code 20"),
        "{err}"
    );
    let err = admin_err(&[
        "electMaster",
        "-a",
        &fa,
        "-c",
        CLUSTER,
        "-b",
        "nope",
        "-i",
        "1",
    ]);
    assert!(err.contains("CONTROLLER_"), "{err}");
    let err = admin_err(&["getSyncStateSet", "-a", &fa, "-b", "nope"]);
    assert!(
        err.contains("broker group nope not registered at the controller"),
        "{err}"
    );

    // cleanBrokerMetadata: without -l a cluster is needed, and a live
    // replica is kept; with -l it goes.
    let err = admin_err(&["cleanBrokerMetadata", "-a", &fa, "-b", GROUP, "-i", "3"]);
    assert!(err.contains("-c <clusterName> is required"), "{err}");
    let err = admin_err(&[
        "cleanBrokerMetadata",
        "-a",
        &fa,
        "-b",
        GROUP,
        "-i",
        "x;3",
        "-l",
    ]);
    assert!(err.contains("bad -i"), "{err}");
    let err = admin_err(&[
        "cleanBrokerMetadata",
        "-a",
        &fa,
        "-c",
        CLUSTER,
        "-b",
        GROUP,
        "-i",
        "3",
    ]);
    assert!(err.contains("still alive"), "{err}");
    hb.stop_broker(3);
    let out = admin_ok(&[
        "cleanBrokerMetadata",
        "-a",
        &fa,
        "-b",
        GROUP,
        "-i",
        "3",
        "-l",
    ]);
    assert_eq!(
        out.trim(),
        format!("clear broker {GROUP} metadata from controller success!")
    );
    let set = admin_ok(&["getSyncStateSet", "-a", &fa, "-b", GROUP]);
    assert!(!set.contains("brokerId=3"), "{set}");
    assert!(
        set.contains("brokerId=1") && set.contains("brokerId=2"),
        "{set}"
    );
    assert_eq!(line_value(&set, "#MasterBrokerId"), Some("2"), "{set}");

    // Missing flags: clap refuses (non-zero exit, the flag named).
    let err = admin_err(&["getSyncStateSet", "-b", GROUP]);
    assert!(err.contains("--controllerAddress"), "{err}");
    let err = admin_err(&["electMaster", "-a", &fa, "-c", CLUSTER, "-b", GROUP]);
    assert!(err.contains("--brokerId"), "{err}");
    let err = admin_err(&["getSyncStateSet", "-a", &fa]);
    assert!(err.contains("--brokerName"), "{err}");
    // A controller that is not there.
    let dead = free_ports(1)[0];
    let err = admin_err(&["getControllerMetaData", "-a", &format!("127.0.0.1:{dead}")]);
    assert!(err.contains(&format!("127.0.0.1:{dead}")), "{err}");
    drop(hb);
    eprintln!("controller commands checked in {:?}", t0.elapsed());
}

#[test]
fn get_broker_epoch_of_a_broker_without_controller_mode() {
    let (_tmp, dir) = common::temp_dir();
    let (_broker, port) = start_broker(&dir, &broker_props(&dir.join("store"), ""), None);
    let addr = format!("127.0.0.1:{port}");
    let err = admin_err(&["getBrokerEpoch", "-b", &addr]);
    assert!(
        err.contains(&format!("epoch cache of {addr}")) && err.contains("not in controller mode"),
        "{err}"
    );
    let err = admin_err(&["getBrokerEpoch"]);
    assert!(err.contains("--brokerAddr"), "{err}");
}
