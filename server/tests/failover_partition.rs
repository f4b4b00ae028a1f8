//! Issue 23's partition proofs. Each broker reaches the three controllers
//! through TCP proxies the test controls (`common::proxy`), and its slaves
//! reach its HA port through another (it advertises a loopback address of
//! its own, `brokerIP2=127.0.0.<11+i>`, where that proxy listens).
//!
//! * The master's links to every controller and to its slaves are cut (open
//!   connections closed, new ones black-holed) while two producers send: one follows
//!   the master, one keeps sending to the isolated one. A new master is
//!   elected on the majority side; the isolated master stops acknowledging
//!   within `controllerHeartBeatTimeoutMills` (no slave acknowledges, and
//!   its fence trips); after the cut heals it becomes a
//!   slave, cuts its unacknowledged tail and follows. No acknowledged
//!   message is lost and no queue offset is acknowledged twice with
//!   different messages; all three commitlogs end equal.
//! * The master is frozen (SIGSTOP) past the heartbeat timeout, a new one is
//!   elected, and the frozen one, thawed (SIGCONT), acknowledges nothing
//!   more and rejoins as a slave.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::failover::{must, producer, verify, Ack, Cluster, HB_TIMEOUT_MS};
use common::temp_dir;

/// Producers: one following the master, one pinned to `pinned`.
struct Load {
    stop: Arc<AtomicBool>,
    acks: Arc<Mutex<Vec<Ack>>>,
    threads: Vec<std::thread::JoinHandle<u64>>,
}

impl Load {
    fn start(cluster: &Cluster, pinned: u16) -> Load {
        let ports = Arc::new(Mutex::new(
            cluster.replicas.iter().map(|r| r.port).collect::<Vec<_>>(),
        ));
        let stop = Arc::new(AtomicBool::new(false));
        let acks = Arc::new(Mutex::new(Vec::new()));
        let threads = [None, Some(pinned)]
            .into_iter()
            .map(|pin| {
                let (ports, stop, acks) = (ports.clone(), stop.clone(), acks.clone());
                std::thread::spawn(move || producer(ports, pin, stop, acks))
            })
            .collect();
        Load {
            stop,
            acks,
            threads,
        }
    }

    fn acks_by(&self, port: u16) -> Vec<Ack> {
        self.acks
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a.port == port)
            .cloned()
            .collect()
    }

    fn finish(self) -> Vec<Ack> {
        self.stop.store(true, Ordering::Release);
        for t in self.threads {
            t.join().unwrap();
        }
        let acks = self.acks.lock().unwrap().clone();
        acks
    }
}

fn start(dir: &std::path::Path) -> (Cluster, usize, i64) {
    let cluster = Cluster::start_proxied(dir, 3, "");
    let (m, e) = must(
        "a first master with all three in sync",
        Duration::from_secs(60),
        || cluster.wait_master(0, 3, Duration::from_millis(200)),
    );
    (cluster, m, e)
}

/// After the isolated (or frozen) master `m` is back: it is a slave, all
/// three are in sync again under a master above `epoch`, and `verify`
/// holds for every acknowledged send.
fn rejoin_and_verify(cluster: &Cluster, m: usize, epoch: i64, load: Load) {
    must(
        "the old master a slave again",
        Duration::from_secs(30),
        || {
            let info = common::try_runtime_info(cluster.replicas[m].port)?;
            (info.get("brokerRole").map(String::as_str) == Some("SLAVE")).then_some(())
        },
    );
    must("all three in sync again", Duration::from_secs(60), || {
        cluster.wait_master(epoch, 3, Duration::from_millis(200))
    });
    // Traffic on the new master after the rejoin.
    std::thread::sleep(Duration::from_millis(500));
    let acks = load.finish();
    verify(cluster, &acks);
}

#[test]
fn an_isolated_master_stops_acknowledging_and_rejoins_as_a_slave() {
    let (_keep, dir) = temp_dir();
    let (cluster, m, epoch) = start(&dir);
    let old_port = cluster.replicas[m].port;
    let load = Load::start(&cluster, old_port);
    must(
        "sends acknowledged by the first master",
        Duration::from_secs(30),
        || (load.acks_by(old_port).len() > 200).then_some(()),
    );
    let cut_at = Instant::now();
    cluster.cut_links(m, true);
    let (nm, ne) = must(
        "a new master on the majority side",
        Duration::from_secs(30),
        || cluster.master().filter(|(i, e)| *i != m && *e > epoch),
    );
    println!(
        "cut replica {m}; replica {nm} master at epoch {ne} after {:?}",
        cut_at.elapsed()
    );
    // The isolated master keeps being asked; it must stop acknowledging.
    std::thread::sleep(Duration::from_millis(HB_TIMEOUT_MS + 2000));
    let last_old = load
        .acks_by(old_port)
        .iter()
        .map(|a| a.at)
        .max()
        .expect("acks by the old master");
    let after_cut = last_old.saturating_duration_since(cut_at);
    println!("the isolated master's last acknowledgement came {after_cut:?} after the cut");
    assert!(
        after_cut <= Duration::from_millis(HB_TIMEOUT_MS),
        "the isolated master acknowledged {after_cut:?} after the cut (controllerHeartBeatTimeoutMills {HB_TIMEOUT_MS})"
    );
    let info = common::try_runtime_info(old_port).expect("the isolated master answers clients");
    println!(
        "isolated master: role {:?} fenced {:?}",
        info.get("brokerRole"),
        info.get("controllerFenced")
    );
    assert!(
        !load.acks_by(cluster.replicas[nm].port).is_empty(),
        "the new master acknowledged sends"
    );
    cluster.cut_links(m, false);
    rejoin_and_verify(&cluster, m, ne - 1, load);
}

#[test]
fn a_frozen_master_is_replaced_and_acknowledges_nothing_after_it_thaws() {
    let (_keep, dir) = temp_dir();
    let (cluster, m, epoch) = start(&dir);
    let old_port = cluster.replicas[m].port;
    let load = Load::start(&cluster, old_port);
    must(
        "sends acknowledged by the first master",
        Duration::from_secs(30),
        || (load.acks_by(old_port).len() > 200).then_some(()),
    );
    let pid = cluster.replicas[m]
        .proc
        .as_ref()
        .unwrap()
        .child
        .id()
        .to_string();
    let signal = |sig: &str| {
        let st = std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap();
        assert!(st.success(), "kill {sig}");
    };
    signal("-STOP");
    let frozen_at = Instant::now();
    let (nm, ne) = must(
        "a new master while the old one is frozen",
        Duration::from_secs(30),
        || cluster.master().filter(|(i, e)| *i != m && *e > epoch),
    );
    println!(
        "froze replica {m}; replica {nm} master at epoch {ne} after {:?}",
        frozen_at.elapsed()
    );
    std::thread::sleep(Duration::from_millis(500));
    let thawed_at = Instant::now();
    signal("-CONT");
    std::thread::sleep(Duration::from_millis(HB_TIMEOUT_MS + 1000));
    let late: Vec<Ack> = load
        .acks_by(old_port)
        .into_iter()
        .filter(|a| a.at > thawed_at)
        .collect();
    assert!(
        late.is_empty(),
        "the thawed old master acknowledged {} sends, first {:?}",
        late.len(),
        late.first()
    );
    rejoin_and_verify(&cluster, m, ne - 1, load);
}
