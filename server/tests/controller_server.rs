//! The standalone controller (`ferromq-controller`, RocketMQ 5 controller
//! mode) as real processes: three controllers sharing their ports between
//! Raft and the brokers' remoting requests; a broker group registered,
//! heartbeating, its first master elected, a new one elected when the
//! master stops heartbeating, the state kept when the controller leader is
//! SIGKILLed; bad input answered with RocketMQ's codes.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::controller::{call_on, connect, free_ports, leader_port, peers, try_call};
use common::{spawn_to, Proc};
use ferromq_controller::request_code as rc;
use ferromq_controller::response_code as code;
use ferromq_server::remoting::codec::{decode_frame, encode};
use ferromq_server::remoting::RemotingCommand;

const CLUSTER: &str = "DefaultCluster";
const GROUP: &str = "broker-a";
/// The brokers' heartbeat timeout in the tests (RocketMQ's default is 10 s).
const HB_TIMEOUT_MS: u64 = 3000;
/// `scanNotActiveBrokerInterval` in the tests.
const SCAN_MS: u64 = 1000;

fn start_controller(dir: &Path, ports: &[u16], i: usize) -> Proc {
    let cfg = dir.join(format!("controller-n{i}.properties"));
    std::fs::write(
        &cfg,
        format!(
            "controllerDLegerGroup=TestGroup\ncontrollerDLegerPeers={}\ncontrollerDLegerSelfId=n{i}\n\
             controllerStorePath={}\nscanNotActiveBrokerInterval={SCAN_MS}\nenableElectUncleanMaster=false\n\
             notifyBrokerRoleChanged=false\n",
            peers(ports),
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

fn port_in(remark: &str) -> Option<u16> {
    remark
        .rsplit("leader: ")
        .next()?
        .rsplit(':')
        .next()?
        .trim()
        .parse()
        .ok()
}

/// Sends `req` to `first`, following CONTROLLER_NOT_LEADER to the leader it
/// names; retries (bounded) while no leader is known or a controller is
/// down. Returns the answer and the port that gave it.
fn call_leader(ports: &[u16], first: u16, req: &RemotingCommand) -> (RemotingCommand, u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut port = first;
    let mut round = 0usize;
    loop {
        assert!(
            Instant::now() < deadline,
            "no leader answered {} within 30 s",
            req.code
        );
        match try_call(port, req) {
            Some(r) if r.code == code::CONTROLLER_NOT_LEADER => {
                let remark = r.remark.unwrap_or_default();
                match port_in(&remark) {
                    Some(p) if p != port => {
                        port = p;
                        continue;
                    }
                    _ => {}
                }
            }
            Some(r) if r.code == code::CONTROLLER_JRAFT_INTERNAL_ERROR => {}
            Some(r) => return (r, port),
            None => {}
        }
        round += 1;
        port = ports[round % ports.len()];
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn broker_addr(id: u64) -> String {
    format!("127.0.0.1:{}", 30910 + id)
}

fn heartbeat(id: u64, epoch: i32, max_offset: i64) -> RemotingCommand {
    RemotingCommand::request(rc::BROKER_HEARTBEAT)
        .with_ext("clusterName", CLUSTER)
        .with_ext("brokerName", GROUP)
        .with_ext("brokerAddr", broker_addr(id))
        .with_ext("brokerId", id)
        .with_ext("epoch", epoch)
        .with_ext("maxOffset", max_offset)
        .with_ext("confirmOffset", max_offset)
        .with_ext("heartbeatTimeoutMills", HB_TIMEOUT_MS)
        .with_ext("electionPriority", 0)
}

/// A broker's heartbeat: beating, silent (its connections stay open) or
/// gone (its connections closed, as when a broker process dies).
const BEATING: u8 = 0;
const SILENT: u8 = 1;
const GONE: u8 = 2;

/// Heartbeats of brokers 1..=3 to every controller every 300 ms, each on
/// its own persistent connection per controller (as RocketMQ brokers keep
/// one), reconnecting after a failure; all end at `stop` or after 120 s.
struct Heartbeats {
    state: Vec<Arc<AtomicU8>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Heartbeats {
    fn start(ports: Vec<u16>) -> Heartbeats {
        let state: Vec<Arc<AtomicU8>> = (0..3).map(|_| Arc::new(AtomicU8::new(BEATING))).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let (st, s) = (state.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut conns: Vec<Vec<Option<TcpStream>>> = (0..3)
                .map(|_| ports.iter().map(|_| None).collect())
                .collect();
            let end = Instant::now() + Duration::from_secs(120);
            while !s.load(Ordering::Relaxed) && Instant::now() < end {
                for (i, flag) in st.iter().enumerate() {
                    match flag.load(Ordering::Relaxed) {
                        BEATING => {}
                        SILENT => continue,
                        _ => {
                            conns[i].iter_mut().for_each(|c| *c = None);
                            continue;
                        }
                    }
                    let id = i as u64 + 1;
                    for (j, &p) in ports.iter().enumerate() {
                        let req = heartbeat(id, 1, 100 * id as i64);
                        if conns[i][j].is_none() {
                            conns[i][j] = connect(p);
                        }
                        let Some(c) = conns[i][j].as_mut() else {
                            continue;
                        };
                        if call_on(c, &req).is_none() {
                            conns[i][j] = None;
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        });
        Heartbeats {
            state,
            stop,
            thread: Some(thread),
        }
    }

    fn set(&self, broker_id: u64, state: u8) {
        self.state[broker_id as usize - 1].store(state, Ordering::Relaxed);
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

fn ext_u64(r: &RemotingCommand, key: &str) -> Option<u64> {
    r.ext_fields.opt_str(key).and_then(|v| v.parse().ok())
}

fn body_json(r: &RemotingCommand) -> serde_json::Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("body {:?}: {e}", r.body))
}

#[test]
fn three_controllers_register_elect_fail_over_and_survive_a_leader_kill() {
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(3);
    let mut procs: Vec<Option<Proc>> = (0..3)
        .map(|i| Some(start_controller(dir.path(), &ports, i)))
        .collect();
    let mut leader = leader_port(&ports);
    let mut follower = *ports.iter().find(|&&p| p != leader).unwrap();

    // A follower names the leader (once it has heard from it: a new
    // leader's first heartbeat may still be on its way).
    let req = RemotingCommand::request(rc::CONTROLLER_GET_NEXT_BROKER_ID)
        .with_ext("clusterName", CLUSTER)
        .with_ext("brokerName", GROUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = try_call(follower, &req).expect("follower answers");
        assert_eq!(r.code, code::CONTROLLER_NOT_LEADER, "{r:?}");
        if let Some(named) = port_in(r.remark.as_deref().unwrap_or("")) {
            leader = leader_port(&ports);
            if named == leader {
                break;
            }
            follower = *ports.iter().find(|&&p| p != leader).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "the follower names no leader: {r:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Metadata from any controller.
    let meta = try_call(
        follower,
        &RemotingCommand::request(rc::CONTROLLER_GET_METADATA_INFO),
    )
    .unwrap();
    assert_eq!(meta.code, code::SUCCESS);
    assert_eq!(meta.ext_fields.opt_str("isLeader"), Some("false"));
    assert_eq!(meta.ext_fields.opt_str("group"), Some("TestGroup"));
    assert_eq!(
        meta.ext_fields.opt_str("controllerLeaderAddress"),
        Some(format!("127.0.0.1:{leader}").as_str())
    );
    assert_eq!(
        meta.ext_fields
            .opt_str("peers")
            .unwrap()
            .matches(';')
            .count(),
        3
    );

    // Three replicas apply for ids and register (through a follower: the
    // client follows NOT_LEADER).
    for id in 1..=3u64 {
        let (r, _) = call_leader(&ports, follower, &req);
        assert_eq!(r.code, code::SUCCESS, "{r:?}");
        assert_eq!(ext_u64(&r, "nextBrokerId"), Some(id));
        let apply = RemotingCommand::request(rc::CONTROLLER_APPLY_BROKER_ID)
            .with_ext("clusterName", CLUSTER)
            .with_ext("brokerName", GROUP)
            .with_ext("appliedBrokerId", id)
            .with_ext("registerCheckCode", format!("{};{id}", broker_addr(id)));
        let (r, _) = call_leader(&ports, follower, &apply);
        assert_eq!(r.code, code::SUCCESS, "{r:?}");
        let register = RemotingCommand::request(rc::CONTROLLER_REGISTER_BROKER)
            .with_ext("clusterName", CLUSTER)
            .with_ext("brokerName", GROUP)
            .with_ext("brokerId", id)
            .with_ext("brokerAddress", broker_addr(id));
        let (r, _) = call_leader(&ports, follower, &register);
        assert_eq!(r.code, code::SUCCESS, "{r:?}");
        assert_eq!(r.ext_fields.opt_str("masterBrokerId"), None);
    }
    let hb = Heartbeats::start(ports.clone());
    std::thread::sleep(Duration::from_millis(800));

    // Broker 1 asks to be the first master.
    let elect = RemotingCommand::request(rc::CONTROLLER_ELECT_MASTER)
        .with_ext("clusterName", CLUSTER)
        .with_ext("brokerName", GROUP)
        .with_ext("brokerId", 1)
        .with_ext("designateElect", false);
    let (r, _) = call_leader(&ports, leader, &elect);
    assert_eq!(r.code, code::SUCCESS, "{r:?}");
    assert_eq!(ext_u64(&r, "masterBrokerId"), Some(1));
    assert_eq!(ext_u64(&r, "masterEpoch"), Some(1));
    // The master reports its replicas in sync; a stale master epoch is fenced.
    let alter = |epoch: i32, set_epoch: i32| {
        RemotingCommand::request(rc::CONTROLLER_ALTER_SYNC_STATE_SET)
            .with_ext("brokerName", GROUP)
            .with_ext("masterBrokerId", 1)
            .with_ext("masterEpoch", epoch)
            .with_body(
                serde_json::to_vec(&serde_json::json!({
                    "syncStateSet": [1, 2, 3], "syncStateSetEpoch": set_epoch
                }))
                .unwrap(),
            )
    };
    let (r, _) = call_leader(&ports, leader, &alter(0, 1));
    assert_eq!(r.code, code::CONTROLLER_FENCED_MASTER_EPOCH, "{r:?}");
    let (r, _) = call_leader(&ports, leader, &alter(1, 1));
    assert_eq!(r.code, code::SUCCESS, "{r:?}");
    assert_eq!(ext_u64(&r, "newSyncStateSetEpoch"), Some(2));
    // A second master election while the master lives is refused.
    let (r, _) = call_leader(&ports, leader, &elect.clone().with_ext("brokerId", 2));
    assert_eq!(r.code, code::CONTROLLER_MASTER_STILL_EXIST, "{r:?}");

    let replica_info =
        RemotingCommand::request(rc::CONTROLLER_GET_REPLICA_INFO).with_ext("brokerName", GROUP);
    let (r, _) = call_leader(&ports, follower, &replica_info);
    assert_eq!(r.code, code::SUCCESS, "{r:?}");
    assert_eq!(ext_u64(&r, "masterBrokerId"), Some(1));
    assert_eq!(body_json(&r)["syncStateSet"], serde_json::json!([1, 2, 3]));
    let sync_data = RemotingCommand::request(rc::CONTROLLER_GET_SYNC_STATE_DATA)
        .with_body(serde_json::to_vec(&[GROUP]).unwrap());
    let (r, _) = call_leader(&ports, follower, &sync_data);
    assert_eq!(r.code, code::SUCCESS, "{r:?}");
    let info = &body_json(&r)["replicasInfoTable"][GROUP];
    assert_eq!(info["masterBrokerId"], 1);
    assert_eq!(info["inSyncReplicas"].as_array().unwrap().len(), 3);

    // The master stops heartbeating: a SyncStateSet member takes over.
    hb.set(1, SILENT);
    let stopped = Instant::now();
    let bound = Duration::from_millis(SCAN_MS + HB_TIMEOUT_MS + 4000);
    let new_master = loop {
        let (r, _) = call_leader(&ports, leader, &replica_info);
        assert_eq!(r.code, code::SUCCESS, "{r:?}");
        match ext_u64(&r, "masterBrokerId") {
            Some(m) if m != 1 => {
                assert_eq!(ext_u64(&r, "masterEpoch"), Some(2), "{r:?}");
                break m;
            }
            _ => {}
        }
        assert!(
            stopped.elapsed() < bound,
            "no new master within {bound:?} of the master's last heartbeat"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let failover = stopped.elapsed();
    // Broker 3 reported the larger max offset.
    assert_eq!(new_master, 3, "the replica with the largest offset wins");
    eprintln!("new master {new_master} elected {failover:?} after the master's heartbeats stopped");

    // The new master reports broker 2 in sync; then its connections close
    // (a dead broker's do): broker 2 takes over at once, long before the
    // heartbeat timeout.
    let (r, _) = call_leader(&ports, leader, &replica_info);
    let set_epoch = body_json(&r)["syncStateSetEpoch"].as_i64().unwrap() as i32;
    let alter3 = RemotingCommand::request(rc::CONTROLLER_ALTER_SYNC_STATE_SET)
        .with_ext("brokerName", GROUP)
        .with_ext("masterBrokerId", 3)
        .with_ext("masterEpoch", 2)
        .with_body(
            serde_json::to_vec(&serde_json::json!({
                "syncStateSet": [2, 3], "syncStateSetEpoch": set_epoch
            }))
            .unwrap(),
        );
    let (r, _) = call_leader(&ports, leader, &alter3);
    assert_eq!(r.code, code::SUCCESS, "{r:?}");
    hb.set(3, GONE);
    let closed = Instant::now();
    let bound = Duration::from_millis(HB_TIMEOUT_MS - 500);
    loop {
        let (r, _) = call_leader(&ports, leader, &replica_info);
        assert_eq!(r.code, code::SUCCESS, "{r:?}");
        if ext_u64(&r, "masterBrokerId") == Some(2) {
            assert_eq!(ext_u64(&r, "masterEpoch"), Some(3), "{r:?}");
            break;
        }
        assert!(
            closed.elapsed() < bound,
            "no new master within {bound:?} of the master's connections closing: {r:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "new master 2 elected {:?} after the master's connections closed",
        closed.elapsed()
    );
    let (before, _) = call_leader(&ports, leader, &sync_data);

    // SIGKILL the controller leader: another one leads with the same state.
    let leader_index = ports.iter().position(|&p| p == leader).unwrap();
    let mut killed = procs[leader_index].take().unwrap();
    killed.child.kill().unwrap();
    killed.child.wait().unwrap();
    let killed_at = Instant::now();
    let rest: Vec<u16> = ports.iter().copied().filter(|&p| p != leader).collect();
    let new_leader = leader_port(&rest);
    eprintln!("new controller leader after {:?}", killed_at.elapsed());
    let (r, at) = call_leader(&rest, new_leader, &replica_info);
    assert_eq!(at, new_leader);
    assert_eq!(r.code, code::SUCCESS, "{r:?}");
    assert_eq!(ext_u64(&r, "masterBrokerId"), Some(2));
    assert_eq!(ext_u64(&r, "masterEpoch"), Some(3));
    let (after, _) = call_leader(&rest, new_leader, &sync_data);
    assert_eq!(body_json(&after), body_json(&before));
    // The new leader keeps serving writes.
    let (r, _) = call_leader(&rest, new_leader, &req);
    assert_eq!(r.code, code::SUCCESS, "{r:?}");
    assert_eq!(ext_u64(&r, "nextBrokerId"), Some(4));
    drop(hb);
    drop(procs);
    eprintln!("scenario took {:?}", t0.elapsed());
}

#[test]
fn bad_input_gets_rocketmq_codes_and_a_bad_frame_closes_only_its_connection() {
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(1);
    let _c = start_controller(dir.path(), &ports, 0);
    let port = leader_port(&ports);

    let r = try_call(port, &RemotingCommand::request(12345)).unwrap();
    assert_eq!(
        r.code,
        ferromq_server::remoting::response::REQUEST_CODE_NOT_SUPPORTED
    );
    let r = try_call(port, &RemotingCommand::request(rc::GET_CONTROLLER_CONFIG)).unwrap();
    assert_eq!(r.code, code::SUCCESS);
    let text = String::from_utf8(r.body).unwrap();
    assert!(text.contains("scanNotActiveBrokerInterval=1000"), "{text}");
    // Register into a group nobody applied to.
    let register = |cluster: &str, group: &str, id: u64| {
        RemotingCommand::request(rc::CONTROLLER_REGISTER_BROKER)
            .with_ext("clusterName", cluster)
            .with_ext("brokerName", group)
            .with_ext("brokerId", id)
            .with_ext("brokerAddress", broker_addr(id))
    };
    let r = try_call(port, &register(CLUSTER, "no-such-group", 1)).unwrap();
    assert_eq!(
        r.code,
        code::CONTROLLER_BROKER_NEED_TO_BE_REGISTERED,
        "{r:?}"
    );
    // A new group's first id must be 1.
    let apply = |id: u64| {
        RemotingCommand::request(rc::CONTROLLER_APPLY_BROKER_ID)
            .with_ext("clusterName", CLUSTER)
            .with_ext("brokerName", GROUP)
            .with_ext("appliedBrokerId", id)
            .with_ext("registerCheckCode", format!("{};1", broker_addr(id)))
    };
    let r = try_call(port, &apply(5)).unwrap();
    assert_eq!(r.code, code::CONTROLLER_BROKER_ID_INVALID, "{r:?}");
    assert_eq!(try_call(port, &apply(1)).unwrap().code, code::SUCCESS);
    // An id never applied for.
    let r = try_call(port, &register(CLUSTER, GROUP, 2)).unwrap();
    assert_eq!(
        r.code,
        code::CONTROLLER_BROKER_NEED_TO_BE_REGISTERED,
        "{r:?}"
    );
    assert_eq!(
        try_call(port, &register(CLUSTER, GROUP, 1)).unwrap().code,
        code::SUCCESS
    );
    // A missing header field, a heartbeat without a broker id.
    let r = try_call(
        port,
        &RemotingCommand::request(rc::CONTROLLER_REGISTER_BROKER),
    )
    .unwrap();
    assert_eq!(r.code, code::CONTROLLER_INVALID_REQUEST, "{r:?}");
    let r = try_call(
        port,
        &RemotingCommand::request(rc::BROKER_HEARTBEAT).with_ext("brokerName", GROUP),
    )
    .unwrap();
    assert_eq!(r.code, code::CONTROLLER_INVALID_REQUEST, "{r:?}");
    // Alter without a master: no such master.
    let r = try_call(
        port,
        &RemotingCommand::request(rc::CONTROLLER_ALTER_SYNC_STATE_SET)
            .with_ext("brokerName", GROUP)
            .with_ext("masterBrokerId", 1)
            .with_ext("masterEpoch", 0)
            .with_body(b"not json".to_vec()),
    )
    .unwrap();
    assert_eq!(r.code, code::CONTROLLER_INVALID_REQUEST, "{r:?}");

    // Malformed frames close only their own connection.
    let mut idle = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let first = try_call(
        port,
        &RemotingCommand::request(rc::CONTROLLER_GET_METADATA_INFO),
    );
    assert!(first.is_some());
    for junk in [
        &b"\x00\x00\x00\x08garbage!"[..],
        &b"\x7f\xff\xff\xff"[..],
        &b"FMQX\x00\x00\x00\x01x"[..],
        &b"FMQR\x00\x00\x00\x02{}"[..],
    ] {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        s.write_all(junk).unwrap();
        let mut buf = [0u8; 256];
        let deadline = Instant::now() + Duration::from_secs(15);
        let closed = loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break true,
                Ok(_) if Instant::now() < deadline => continue,
                Ok(_) => break false,
            }
        };
        assert!(closed, "{junk:?} did not close its connection");
    }
    // The controller still answers, on new and on older connections.
    let r = try_call(
        port,
        &RemotingCommand::request(rc::CONTROLLER_GET_REPLICA_INFO).with_ext("brokerName", GROUP),
    )
    .unwrap();
    assert_eq!(r.code, code::SUCCESS, "{r:?}");
    let mut req = RemotingCommand::request(rc::CONTROLLER_GET_METADATA_INFO);
    req.opaque = 3;
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    idle.write_all(&encode(&req).unwrap()).unwrap();
    let mut len = [0u8; 4];
    idle.read_exact(&mut len).unwrap();
    let mut frame = vec![0u8; u32::from_be_bytes(len) as usize];
    idle.read_exact(&mut frame).unwrap();
    assert_eq!(decode_frame(&frame).unwrap().code, code::SUCCESS);
}

#[test]
fn bad_configuration_stops_the_start_and_p_prints_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let run = |text: &str, extra: &[&str]| {
        let cfg = dir.path().join("c.properties");
        std::fs::write(&cfg, text).unwrap();
        Command::new(env!("CARGO_BIN_EXE_ferromq-controller"))
            .arg("-c")
            .arg(&cfg)
            .args(extra)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    for bad in [
        "controllerDLegerSelfId=n0\n",
        "controllerDLegerPeers=n0-127.0.0.1:1\n",
        "controllerDLegerPeers=n0-127.0.0.1:1;junk\ncontrollerDLegerSelfId=n0\n",
        "controllerDLegerPeers=n0-127.0.0.1:1\ncontrollerDLegerSelfId=n7\n",
        "controllerDLegerPeers=n0-127.0.0.1:1\ncontrollerDLegerSelfId=n0\nscanNotActiveBrokerInterval=soon\n",
    ] {
        let out = run(bad, &[]);
        assert!(!out.status.success(), "{bad:?} started");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("ferromq-controller:"), "{bad:?}: {err}");
    }
    let out = run(
        "controllerDLegerPeers=n0-127.0.0.1:9878;n1-127.0.0.1:9868\ncontrollerDLegerSelfId=n1\n\
         someUnknownKey=1\n",
        &["-p"],
    );
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for line in [
        "controllerDLegerPeers=n0-127.0.0.1:9878;n1-127.0.0.1:9868",
        "controllerDLegerSelfId=n1",
        "scanNotActiveBrokerInterval=5000",
        "enableElectUncleanMaster=false",
        "notifyBrokerRoleChanged=true",
    ] {
        assert!(text.contains(line), "{line} missing in {text}");
    }
    assert!(String::from_utf8_lossy(&out.stderr).contains("someUnknownKey"));
}
