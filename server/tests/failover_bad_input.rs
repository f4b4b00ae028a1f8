//! Issue 23, bad input, against a running controller-mode cluster of real
//! processes (three controllers, a name server, one broker group of three
//! replicas): each is refused with a clear error, and none moves the
//! group's master, its epoch or its SyncStateSet.
//!
//! * A broker whose `brokerIdentity` names another group, or is damaged,
//!   does not register; its log names the file.
//! * CONTROLLER_ALTER_SYNC_STATE_SET at an old master epoch is refused with
//!   CONTROLLER_FENCED_MASTER_EPOCH and changes nothing.
//! * A controller whose `controllerDLegerPeers` disagrees with the others'
//!   does not join or disturb the group: a new one with its ids on the
//!   wrong addresses is refused by the others, one with an extra id of its
//!   own never leads, and a member restarted with another peers list
//!   refuses to start.
//! * A controller whose `raft-log` is damaged refuses to start, naming the
//!   file and the offset; the other two keep serving (a master SIGKILL
//!   still fails over).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::controller::{free_ports, peers, try_call};
use common::failover::{
    call_controllers, controller_leader_now, exited_within, group_state, kill_controller, must,
    restart_controller, spawn_controller, Cluster, GroupState, Replica, GROUP,
};
use common::{temp_dir, try_runtime_info, Client};
use ferromq_controller::request_code as rc;
use ferromq_controller::response_code as code;
use ferromq_server::remoting::RemotingCommand;

/// A cluster with a master and all three in sync, the controller leader's
/// port and the group's state.
fn start(dir: &Path) -> (Cluster, usize, i64, u16, GroupState) {
    // The cluster idles between the cases: its slaves must keep reporting
    // (replication/tests/idle_slave.rs).
    let cluster = Cluster::start(dir, 3, "");
    let (m, e) = must(
        "a first master with all three in sync",
        Duration::from_secs(60),
        || cluster.wait_master(0, 3, Duration::from_millis(200)),
    );
    let ports = cluster.controller_ports.clone();
    let state = must(
        "the controllers' SyncStateSet of three",
        Duration::from_secs(30),
        || Some(group_state(&ports, GROUP)).filter(|s| s.sync_state_set.len() == 3),
    );
    let leader = controller_leader_now(&ports).expect("a controller leader");
    (cluster, m, e, leader, state)
}

/// One send to the broker at `port`: its response code.
fn send_once(port: u16, body: &str) -> i32 {
    let Some(mut c) = Client::try_connect(port, Duration::from_secs(3)) else {
        return -1;
    };
    c.try_invoke(Client::send_v2_req(
        common::failover::TOPIC,
        0,
        body.as_bytes(),
        &[],
    ))
    .map_or(-1, |r| r.code)
}

/// Nothing moved: the same controller leader, the same group state, the
/// same master at the same epoch taking sends.
fn unchanged(cluster: &Cluster, leader: u16, state: &GroupState, m: usize, e: i64, what: &str) {
    let ports = &cluster.controller_ports;
    assert_eq!(
        controller_leader_now(ports),
        Some(leader),
        "{what}: the controller leader changed"
    );
    assert_eq!(
        &group_state(ports, GROUP),
        state,
        "{what}: the group changed"
    );
    assert_eq!(cluster.master(), Some((m, e)), "{what}: the master changed");
    let r = send_once(cluster.replicas[m].port, what);
    assert_eq!(r, 0, "{what}: the master does not acknowledge sends");
}

fn text_of(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

#[test]
fn a_broker_with_a_foreign_or_damaged_identity_does_not_register() {
    let t0 = Instant::now();
    let (_keep, dir) = temp_dir();
    let (mut cluster, m, e, leader, state) = start(&dir);
    println!("replica {m} master at epoch {e}; {state:?}");
    // A fourth replica of the group, its identity file written beforehand.
    let rdir = dir.join("replica-3");
    let idfile = rdir.join("store").join("brokerIdentity");
    std::fs::create_dir_all(idfile.parent().unwrap()).unwrap();
    cluster.replicas.push(Replica {
        proc: None,
        dir: rdir,
        port: 0,
        log: dir.join("replica-3.log"),
    });
    for (case, content, expect) in [
        (
            "another group",
            "TestCluster#otherGroup#5",
            "names broker TestCluster#otherGroup, not this broker's TestCluster#broker-f",
        ),
        (
            "damaged",
            "garbage",
            "is damaged: expected cluster#brokerName#brokerId, found \"garbage\"",
        ),
    ] {
        std::fs::write(&idfile, content).unwrap();
        let log_from = text_of(&cluster.replicas[3].log).len();
        cluster.start_replica(3);
        let line = must(
            &format!("{case}: the error naming {}", idfile.display()),
            Duration::from_secs(15),
            || {
                let log = text_of(&cluster.replicas[3].log);
                log[log_from..]
                    .lines()
                    .find(|l| l.contains(&idfile.display().to_string()) && l.contains(expect))
                    .map(str::to_owned)
            },
        );
        println!("{case}: {}", line.trim());
        // A few registration rounds later: still no id, no role, no sends.
        std::thread::sleep(Duration::from_secs(2));
        let info = try_runtime_info(cluster.replicas[3].port).expect("runtime info");
        assert_eq!(
            info.get("controllerBrokerId").map(String::as_str),
            Some(""),
            "{case}: {info:?}"
        );
        assert_eq!(
            info.get("masterEpoch").map(String::as_str),
            Some("0"),
            "{case}"
        );
        let r = send_once(cluster.replicas[3].port, case);
        assert_ne!(r, 0, "{case}: the unregistered broker acknowledged a send");
        // The file is left as it was.
        assert_eq!(
            text_of(&idfile),
            content,
            "{case}: the identity file was rewritten"
        );
        // No group of that name appeared on the controllers.
        let other = call_controllers(
            &cluster.controller_ports,
            &RemotingCommand::request(rc::CONTROLLER_GET_REPLICA_INFO)
                .with_ext("brokerName", "otherGroup"),
        );
        assert!(
            other.code != 0 || other.ext_fields.opt_str("masterBrokerId").is_none(),
            "{case}: otherGroup exists: {other:?}"
        );
        unchanged(&cluster, leader, &state, m, e, case);
        println!(
            "{case}: broker refused (send answered {r}), group unchanged: master replica {m} epoch {e}, {} replicas",
            state.replicas.len()
        );
        cluster.kill(3);
    }
    println!("test time {:?}", t0.elapsed());
}

#[test]
fn a_sync_state_set_change_at_a_stale_master_epoch_is_fenced() {
    let t0 = Instant::now();
    let (_keep, dir) = temp_dir();
    let (mut cluster, m1, e1, _, _) = start(&dir);
    let id_of = |c: &Cluster, i: usize| -> i64 {
        try_runtime_info(c.replicas[i].port).expect("runtime info")["controllerBrokerId"]
            .parse()
            .expect("a controller id")
    };
    let old_id = id_of(&cluster, m1);
    // Move the epoch on: kill the master, let the new one take over, bring
    // the old one back as a slave.
    cluster.kill(m1);
    let (m2, e2) = must("a new master", Duration::from_secs(30), || {
        cluster.wait_master(e1, 1, Duration::from_millis(200))
    });
    cluster.start_replica(m1);
    must("all three in sync again", Duration::from_secs(60), || {
        cluster.wait_master(e2 - 1, 3, Duration::from_millis(200))
    });
    let ports = cluster.controller_ports.clone();
    let before = must(
        "the controllers' SyncStateSet of three",
        Duration::from_secs(30),
        || Some(group_state(&ports, GROUP)).filter(|s| s.sync_state_set.len() == 3),
    );
    let leader = controller_leader_now(&ports).expect("a controller leader");
    let new_id = id_of(&cluster, m2);
    println!("old master id {old_id} (epoch {e1}); master id {new_id} at epoch {e2}; {before:?}");
    assert_eq!(before.master_epoch, e2);
    let alter = |master: i64, epoch: i64, set: &[i64]| {
        RemotingCommand::request(rc::CONTROLLER_ALTER_SYNC_STATE_SET)
            .with_ext("clusterName", "TestCluster")
            .with_ext("brokerName", GROUP)
            .with_ext("masterBrokerId", master)
            .with_ext("masterEpoch", epoch)
            .with_body(
                serde_json::to_vec(&serde_json::json!({
                    "syncStateSet": set,
                    "syncStateSetEpoch": before.sync_state_set_epoch,
                }))
                .unwrap(),
            )
    };
    // The master at the previous epoch is fenced by its epoch; the old
    // master, asking at its own (old) epoch, is refused first as not the
    // master (RocketMQ checks the master before the epoch).
    for (who, req, want) in [
        (
            "the master at the previous epoch",
            alter(new_id, e2 - 1, &[new_id]),
            code::CONTROLLER_FENCED_MASTER_EPOCH,
        ),
        (
            "the old master at its epoch",
            alter(old_id, e1, &[old_id]),
            code::CONTROLLER_INVALID_MASTER,
        ),
    ] {
        let r = call_controllers(&ports, &req);
        println!(
            "ALTER_SYNC_STATE_SET from {who}: code {} {:?}",
            r.code,
            r.remark.as_deref().unwrap_or("")
        );
        assert_eq!(r.code, want, "{who}: {r:?}");
    }
    std::thread::sleep(Duration::from_secs(1));
    unchanged(&cluster, leader, &before, m2, e2, "stale alter");
    // Each broker still sees itself in the set it had.
    for (i, r) in cluster.replicas.iter().enumerate() {
        let info = try_runtime_info(r.port).expect("runtime info");
        assert_eq!(info["masterEpoch"], e2.to_string(), "replica {i}: {info:?}");
    }
    println!("test time {:?}", t0.elapsed());
}

#[test]
fn a_controller_with_other_peers_does_not_join_or_disturb_the_group() {
    let t0 = Instant::now();
    let (_keep, dir) = temp_dir();
    let (mut cluster, m, e, leader, state) = start(&dir);
    let p = cluster.controller_ports.clone();
    let li = p.iter().position(|x| *x == leader).unwrap();
    println!("controller leader n{li}; replica {m} master at epoch {e}; {state:?}");
    let p3 = free_ports(1)[0];
    let meta = |port: u16| {
        try_call(
            port,
            &RemotingCommand::request(rc::CONTROLLER_GET_METADATA_INFO),
        )
    };

    // 1. A new controller n3 whose list puts n0 and n1 on each other's
    //    address: both refuse its Raft connections, naming the reason.
    let swapped = format!(
        "n0-127.0.0.1:{};n1-127.0.0.1:{};n3-127.0.0.1:{p3}",
        p[1], p[0]
    );
    let mut n3 = spawn_controller(
        &dir,
        "swapped-n3",
        "n3",
        &swapped,
        &dir.join("store-swapped"),
    );
    n3.wait_line("listening on", Duration::from_secs(30));
    let log = dir.join("swapped-n3.log");
    let refused = must(
        "the swapped peers refused with the reason",
        Duration::from_secs(15),
        || {
            text_of(&log)
                .lines()
                .find(|l| {
                    l.contains("controller raft peer refused")
                        && l.contains("controllerDLegerPeers differ")
                })
                .map(str::to_owned)
        },
    );
    println!("swapped peers: {}", refused.trim());
    std::thread::sleep(Duration::from_secs(3));
    let m3 = meta(p3).expect("n3 answers");
    assert_eq!(m3.ext_fields.opt_str("isLeader"), Some("false"), "{m3:?}");
    unchanged(&cluster, leader, &state, m, e, "swapped peers");
    drop(n3);

    // 2. A new controller n3 with the right addresses but an id of its own
    //    (a four-node list nobody else has): it never leads, nor moves the
    //    group's leader.
    let extra = format!("{};n3-127.0.0.1:{p3}", peers(&p));
    let mut n3 = spawn_controller(&dir, "extra-n3", "n3", &extra, &dir.join("store-extra"));
    n3.wait_line("listening on", Duration::from_secs(30));
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(500));
        let m3 = meta(p3).expect("n3 answers");
        assert_eq!(m3.ext_fields.opt_str("isLeader"), Some("false"), "{m3:?}");
        assert_eq!(
            controller_leader_now(&p),
            Some(leader),
            "the group's leader moved"
        );
    }
    let m3 = meta(p3).expect("n3 answers");
    println!(
        "extra id: n3 knows leader {:?}; group leader still n{li}",
        m3.ext_fields.opt_str("controllerLeaderId")
    );
    unchanged(&cluster, leader, &state, m, e, "extra peer");
    drop(n3);

    // 3. A member (a follower) restarted with another peers list refuses to
    //    start; restarted with its own it rejoins.
    let f = (0..3).find(|i| *i != li).unwrap();
    kill_controller(&mut cluster, f);
    let mut bad = spawn_controller(
        &dir,
        &format!("controller-n{f}-otherpeers"),
        &format!("n{f}"),
        &extra,
        &dir.join(format!("controller-store-n{f}")),
    );
    let status = exited_within(&mut bad, Duration::from_secs(20))
        .expect("the controller with another peers list exits");
    assert!(!status.success(), "{status:?}");
    let blog = text_of(&dir.join(format!("controller-n{f}-otherpeers.log")));
    let line = blog
        .lines()
        .find(|l| l.contains("controllerDLegerPeers lists"))
        .unwrap_or_else(|| panic!("no membership error in:\n{blog}"));
    println!("member n{f} with another list: {status}: {}", line.trim());
    assert!(line.contains("was formed with"), "{line}");
    unchanged(&cluster, leader, &state, m, e, "member with another list");
    restart_controller(&mut cluster, f);
    must("the member rejoins", Duration::from_secs(20), || {
        let r = meta(p[f])?;
        (r.ext_fields.opt_str("controllerLeaderAddress")? == format!("127.0.0.1:{leader}"))
            .then_some(())
    });
    unchanged(&cluster, leader, &state, m, e, "member rejoined");
    println!("test time {:?}", t0.elapsed());
}

#[test]
fn a_controller_with_a_damaged_raft_log_refuses_to_start() {
    let t0 = Instant::now();
    let (_keep, dir) = temp_dir();
    let (mut cluster, m, e, leader, state) = start(&dir);
    let p = cluster.controller_ports.clone();
    let li = p.iter().position(|x| *x == leader).unwrap();
    let f = (0..3).find(|i| *i != li).unwrap();
    kill_controller(&mut cluster, f);
    let store = dir.join(format!("controller-store-n{f}"));
    let log_file = store.join("raft-log");
    let mut bytes = std::fs::read(&log_file).expect("raft-log");
    println!("n{f}'s raft-log: {} bytes", bytes.len());
    // Garbage over the first record's payload (after the 8-byte magic and
    // the record's length and checksum): its checksum no longer matches.
    let (at, expect_offset) = if bytes.len() >= 8 + 8 + 7 {
        (16, 8)
    } else {
        (0, 0)
    };
    bytes[at..at + 7].copy_from_slice(b"garbage");
    std::fs::write(&log_file, &bytes).unwrap();
    let mut bad = spawn_controller(
        &dir,
        &format!("controller-n{f}-corrupt"),
        &format!("n{f}"),
        &peers(&p),
        &store,
    );
    let status = exited_within(&mut bad, Duration::from_secs(20))
        .expect("the controller on a damaged store exits");
    assert!(!status.success(), "{status:?}");
    let blog = text_of(&dir.join(format!("controller-n{f}-corrupt.log")));
    let want = format!(
        "controller store file {} is corrupt at byte {expect_offset}",
        log_file.display()
    );
    let line = blog
        .lines()
        .find(|l| l.contains(&want))
        .unwrap_or_else(|| panic!("no `{want}` in:\n{blog}"));
    println!("n{f} on a damaged raft-log: {status}: {}", line.trim());
    // The file is left as it was (no silent reset).
    assert_eq!(
        std::fs::read(&log_file).unwrap(),
        bytes,
        "the damaged log was rewritten"
    );
    unchanged(&cluster, leader, &state, m, e, "damaged controller");
    // The other two keep serving: a master SIGKILL still fails over.
    let killed_at = Instant::now();
    cluster.kill(m);
    let (nm, ne) = must(
        "a new master with two controllers",
        Duration::from_secs(30),
        || cluster.wait_master(e, 1, Duration::from_millis(200)),
    );
    must(
        "a send acknowledged by the new master",
        Duration::from_secs(30),
        || (send_once(cluster.replicas[nm].port, "after") == 0).then_some(()),
    );
    let after = group_state(&p, GROUP);
    println!(
        "with n{f} down: killed master replica {m}, replica {nm} master at epoch {ne} after {:?}; {after:?}",
        killed_at.elapsed()
    );
    assert_eq!(after.master_epoch, ne);
    println!("test time {:?}", t0.elapsed());
}
