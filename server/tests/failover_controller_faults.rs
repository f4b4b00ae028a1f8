//! Issue 23, controller faults, against real processes: three controllers,
//! a name server and one broker group of three controller-mode replicas
//! (`allAckInSyncStateSet=true`) under a producer logging every
//! acknowledged send.
//!
//! * The controller leader is SIGKILLed under traffic: sends keep being
//!   acknowledged (the longest pause between two acknowledgements is
//!   bounded), the master and its epoch stay, the two others elect a new
//!   leader, and a master SIGKILLed after that still fails over. The killed
//!   controller, restarted, rejoins: it names the new leader, its
//!   `raft-log` becomes the leader's byte for byte, and once the new leader
//!   is killed too, it is needed (two of three) for the next leader, which
//!   still knows the group.
//! * All three controllers are SIGKILLed and started again on their stores
//!   and ports: the group's state comes back from disk (same master id and
//!   epoch, same SyncStateSet and its epoch, same replica ids and addresses,
//!   every broker keeps its `brokerIdentity`), sends are acknowledged again,
//!   and a master SIGKILLed after that still fails over.
//!
//! Each ends with `verify`: every acknowledged message is on the final
//! master at the offset its send was answered with, and every replica's
//! commitlog equals the master's.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::failover::{
    controller_leader_now, group_state, identity_of, kill_controller, longest_gap, must, producer,
    raft_log, restart_controller, verify, Ack, Cluster, GROUP, HB_TIMEOUT_MS,
};
use common::temp_dir;
use ferromq_controller::request_code as rc;
use ferromq_server::remoting::RemotingCommand;

/// How long acknowledgements may pause around a controller leader change.
/// The master keeps acknowledging for `controllerHeartBeatTimeoutMills`
/// after its last heartbeat answered by the leader it knows, then stops (its
/// fence: it cannot tell a dead controller leader from its own isolation,
/// in which another master may be elected) until a new leader confirms it.
/// So sends pause for about the election time less that timeout, plus a
/// replica-info sync: allowed, 2.5 s beyond it.
fn max_gap(elected_in: Duration) -> Duration {
    elected_in.saturating_sub(Duration::from_millis(HB_TIMEOUT_MS)) + Duration::from_millis(2500)
}

struct Load {
    stop: Arc<AtomicBool>,
    acks: Arc<Mutex<Vec<Ack>>>,
    ports: Arc<Mutex<Vec<u16>>>,
    thread: std::thread::JoinHandle<u64>,
}

impl Load {
    fn start(cluster: &Cluster) -> Load {
        let ports = Arc::new(Mutex::new(
            cluster.replicas.iter().map(|r| r.port).collect::<Vec<_>>(),
        ));
        let stop = Arc::new(AtomicBool::new(false));
        let acks = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (ports, stop, acks) = (ports.clone(), stop.clone(), acks.clone());
            std::thread::spawn(move || producer(ports, None, stop, acks))
        };
        Load {
            stop,
            acks,
            ports,
            thread,
        }
    }

    fn count(&self) -> usize {
        self.acks.lock().unwrap().len()
    }

    fn snapshot(&self) -> Vec<Ack> {
        self.acks.lock().unwrap().clone()
    }

    /// Wait for `n` more acknowledgements than `since`, by a port other
    /// than `not_port` (when given).
    fn wait_more(&self, what: &str, since: usize, n: usize, not_port: Option<u16>) -> Instant {
        must(what, Duration::from_secs(30), || {
            let acks = self.acks.lock().unwrap();
            let new: Vec<&Ack> = acks[since.min(acks.len())..]
                .iter()
                .filter(|a| Some(a.port) != not_port)
                .collect();
            (new.len() >= n).then(|| new[0].at)
        })
    }

    fn finish(self) -> (u64, Vec<Ack>) {
        self.stop.store(true, Ordering::Release);
        let sent = self.thread.join().unwrap();
        let acks = self.acks.lock().unwrap().clone();
        (sent, acks)
    }
}

fn start(dir: &std::path::Path) -> (Cluster, usize, i64, Load) {
    let cluster = Cluster::start(dir, 3, "");
    let (m, e) = must(
        "a first master with all three in sync",
        Duration::from_secs(60),
        || cluster.wait_master(0, 3, Duration::from_millis(200)),
    );
    let load = Load::start(&cluster);
    load.wait_more("sends acknowledged by the first master", 0, 200, None);
    (cluster, m, e, load)
}

fn index_of(cluster: &Cluster, port: u16) -> usize {
    cluster
        .controller_ports
        .iter()
        .position(|p| *p == port)
        .expect("a cluster controller port")
}

/// SIGKILL the master `m` (at `epoch`): a new master on another replica
/// at a higher epoch, sends acknowledged by it; `m` restarted, all three in
/// sync again. Returns the new master, its epoch and the recovery time.
fn kill_master_and_fail_over(
    cluster: &mut Cluster,
    load: &Load,
    m: usize,
    epoch: i64,
) -> (usize, i64, Duration) {
    let old_port = cluster.replicas[m].port;
    let before = load.count();
    let killed_at = Instant::now();
    cluster.kill(m);
    let (nm, ne) = match cluster.wait_master(epoch, 1, Duration::from_secs(30)) {
        Some(v) => v,
        None => panic!(
            "no new master within 30 s of killing replica {m}\n{}",
            (0..3)
                .map(|i| format!("--- replica {i}\n{}", cluster.log_tail(i)))
                .collect::<Vec<_>>()
                .join("\n")
        ),
    };
    assert_ne!(nm, m, "the killed replica cannot be the master");
    let first = load.wait_more(
        "a send acknowledged by the new master",
        before,
        20,
        Some(old_port),
    );
    let recovery = first.duration_since(killed_at);
    cluster.start_replica(m);
    *load.ports.lock().unwrap() = cluster.replicas.iter().map(|r| r.port).collect();
    must("all three in sync again", Duration::from_secs(60), || {
        cluster.wait_master(ne - 1, 3, Duration::from_millis(200))
    });
    (nm, ne, recovery)
}

#[test]
fn the_controller_leader_killed_under_traffic_is_replaced_and_rejoins() {
    let t0 = Instant::now();
    let (_keep, dir) = temp_dir();
    let (mut cluster, m, epoch, load) = start(&dir);
    let ports = cluster.controller_ports.clone();
    let state0 = group_state(&ports, GROUP);
    let old_leader = must("a controller leader", Duration::from_secs(30), || {
        controller_leader_now(&ports)
    });
    let li = index_of(&cluster, old_leader);
    println!(
        "controller leader n{li} (port {old_leader}); replica {m} master at epoch {epoch}; {state0:?}"
    );

    // SIGKILL the controller leader under traffic.
    let before = load.count();
    let killed_at = Instant::now();
    kill_controller(&mut cluster, li);
    let others: Vec<u16> = ports.iter().copied().filter(|p| *p != old_leader).collect();
    let new_leader = must(
        "a new controller leader among the other two",
        Duration::from_secs(30),
        || controller_leader_now(&others),
    );
    let elected_in = killed_at.elapsed();
    let nli = index_of(&cluster, new_leader);
    // Traffic for a while under the new leader, then the longest pause.
    std::thread::sleep(Duration::from_secs(4));
    let window_end = Instant::now();
    let acks = load.snapshot();
    let gap = longest_gap(&acks, killed_at, window_end);
    let during = acks[before..].len();
    println!(
        "killed controller leader n{li}: n{nli} leads after {elected_in:?}; {during} sends acknowledged \
         in the {:?} after the kill, longest pause {gap:?}",
        window_end.duration_since(killed_at)
    );
    assert!(
        gap <= max_gap(elected_in),
        "sends stalled for {gap:?} after the controller leader was killed (a new leader after {elected_in:?})"
    );
    // The group did not move: same master, same epoch, same set.
    let state1 = group_state(&ports, GROUP);
    assert_eq!(
        state1, state0,
        "the group's state changed with the controller leader"
    );
    assert_eq!(
        cluster.master(),
        Some((m, epoch)),
        "the master changed with the controller leader"
    );

    // A master SIGKILL under the new controller leader still fails over.
    let (nm, ne, recovery) = kill_master_and_fail_over(&mut cluster, &load, m, epoch);
    println!("killed master replica {m}: replica {nm} master at epoch {ne}, first ack after {recovery:?}");
    let state2 = group_state(&ports, GROUP);
    assert_eq!(state2.master_epoch, ne, "{state2:?}");
    assert_eq!(
        state2.master_addr,
        format!("127.0.0.1:{}", cluster.replicas[nm].port),
        "{state2:?}"
    );

    // The killed controller rejoins: it names the new leader ...
    restart_controller(&mut cluster, li);
    let named = must(
        "the restarted controller names the new leader",
        Duration::from_secs(20),
        || {
            let r = common::controller::try_call(
                old_leader,
                &RemotingCommand::request(rc::CONTROLLER_GET_METADATA_INFO),
            )?;
            let addr = r.ext_fields.opt_str("controllerLeaderAddress")?.to_owned();
            (r.ext_fields.opt_str("isLeader") == Some("false")
                && addr.ends_with(&format!(":{new_leader}")))
            .then_some(addr)
        },
    );
    // Naming the leader is learned from its first vote message; caught up
    // means holding the leader's log: the same raft-log bytes.
    let caught_up_in = must(
        "the restarted controller's raft-log equals the leader's",
        Duration::from_secs(20),
        || {
            let (a, b) = (raft_log(&cluster, li), raft_log(&cluster, nli));
            (a.len() > 8 && a == b).then_some(a.len())
        },
    );
    println!("restarted n{li}: follows the leader at {named}; its raft-log equals the leader's ({caught_up_in} bytes)");
    // ... and is one of the two needed once that leader is killed too.
    let before = load.count();
    let killed2_at = Instant::now();
    kill_controller(&mut cluster, nli);
    let rest: Vec<u16> = ports.iter().copied().filter(|p| *p != new_leader).collect();
    let third = must(
        "a third controller leader (the rejoined one needed for a majority)",
        Duration::from_secs(30),
        || controller_leader_now(&rest),
    );
    let third_at = Instant::now();
    let state3 = group_state(&rest, GROUP);
    assert_eq!(
        state3, state2,
        "the leader elected with the rejoined controller lost the group's state"
    );
    // Past the brokers' heartbeat timeout (a fence the leader change may
    // have tripped is lifted by then), sends are acknowledged again.
    std::thread::sleep(Duration::from_millis(HB_TIMEOUT_MS + 1000));
    let later = load.count();
    load.wait_more("sends acknowledged under the third leader", later, 50, None);
    let acks = load.snapshot();
    let gap = longest_gap(&acks[before..], killed2_at, Instant::now());
    println!(
        "third leader after {:?}; longest pause since the kill: {gap:?}",
        third_at.duration_since(killed2_at)
    );
    assert!(
        gap <= max_gap(third_at.duration_since(killed2_at)),
        "sends stalled for {gap:?} after the second controller leader was killed"
    );
    println!(
        "killed n{nli}: n{} leads (the rejoined one: n{li}); the group's state kept: {state3:?}",
        index_of(&cluster, third)
    );
    restart_controller(&mut cluster, nli);

    must("an unfenced master", Duration::from_secs(10), || {
        cluster.master()
    });
    let (sent, acks) = load.finish();
    println!("sent {sent}, acknowledged {}", acks.len());
    verify(&cluster, &acks);
    println!("test time {:?}", t0.elapsed());
}

#[test]
fn all_controllers_restarted_recover_the_group_from_disk() {
    let t0 = Instant::now();
    let (_keep, dir) = temp_dir();
    let (mut cluster, m, epoch, load) = start(&dir);
    let ports = cluster.controller_ports.clone();
    let state0 = group_state(&ports, GROUP);
    let ids0: Vec<String> = (0..3).map(|i| identity_of(&cluster, i)).collect();
    let runtime_ids = |c: &Cluster| -> Vec<String> {
        (0..3)
            .map(|i| {
                common::try_runtime_info(c.replicas[i].port)
                    .and_then(|info| info.get("controllerBrokerId").cloned())
                    .unwrap_or_default()
            })
            .collect()
    };
    let rids0 = runtime_ids(&cluster);
    println!("before: replica {m} master at epoch {epoch}; {state0:?}; identities {ids0:?}");
    assert_eq!(state0.sync_state_set.len(), 3, "{state0:?}");
    assert!(
        ids0.iter()
            .all(|s| s.starts_with(&format!("TestCluster#{GROUP}#"))),
        "{ids0:?}"
    );

    // SIGKILL all three, then start them again on the same stores and ports.
    let down_at = Instant::now();
    for i in 0..3 {
        kill_controller(&mut cluster, i);
    }
    // Down past the brokers' heartbeat timeout: the master stops
    // acknowledging, and the restarted controllers start with empty
    // heartbeat tables (those are not replicated); they must not take the
    // brokers for dead and elect anew.
    std::thread::sleep(Duration::from_millis(HB_TIMEOUT_MS + 2000));
    let acked_down = load.count();
    for i in 0..3 {
        restart_controller(&mut cluster, i);
    }
    let leader = must(
        "a controller leader after the restart",
        Duration::from_secs(30),
        || controller_leader_now(&ports),
    );
    println!(
        "all three controllers restarted; n{} leads {:?} after the kill",
        index_of(&cluster, leader),
        down_at.elapsed()
    );
    let state1 = group_state(&ports, GROUP);
    println!("after: {state1:?}");
    assert_eq!(
        state1, state0,
        "the group's state was not recovered from disk"
    );

    // Sends acknowledged again, by the same master at the same epoch.
    let before = load.count();
    assert!(
        before - acked_down < 5,
        "{} sends acknowledged while no controller ran (the fence did not trip)",
        before - acked_down
    );
    let again = load.wait_more("sends acknowledged after the restart", before, 100, None);
    println!(
        "sends acknowledged again {:?} after the kill",
        again.saturating_duration_since(down_at)
    );
    assert_eq!(cluster.master(), Some((m, epoch)), "the master moved");
    // Give the brokers a few heartbeats and syncs: nothing moves.
    std::thread::sleep(Duration::from_secs(3));
    let state2 = group_state(&ports, GROUP);
    assert_eq!(state2, state0, "the group moved after the restart");
    let ids1: Vec<String> = (0..3).map(|i| identity_of(&cluster, i)).collect();
    assert_eq!(ids1, ids0, "broker identities rewritten");
    assert_eq!(runtime_ids(&cluster), rids0, "broker ids reassigned");

    // A master SIGKILL after that still fails over.
    let (nm, ne, recovery) = kill_master_and_fail_over(&mut cluster, &load, m, epoch);
    println!("killed master replica {m}: replica {nm} master at epoch {ne}, first ack after {recovery:?}");
    let state3 = group_state(&ports, GROUP);
    assert_eq!(state3.master_epoch, ne, "{state3:?}");
    // The restarted replica has a new port (its address), not a new id.
    let ids_of = |s: &common::failover::GroupState| -> Vec<i64> {
        s.replicas.iter().map(|(id, _)| *id).collect()
    };
    assert_eq!(ids_of(&state3), ids_of(&state0), "replica ids changed");
    let ids2: Vec<String> = (0..3).map(|i| identity_of(&cluster, i)).collect();
    assert_eq!(ids2, ids0, "broker identities rewritten by the failover");

    must("an unfenced master", Duration::from_secs(10), || {
        cluster.master()
    });
    let (sent, acks) = load.finish();
    println!("sent {sent}, acknowledged {}", acks.len());
    verify(&cluster, &acks);
    println!("test time {:?}", t0.elapsed());
}
