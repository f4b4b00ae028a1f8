//! Issue 23's first proof: kill the master, repeatedly. Three controllers,
//! one broker group of three replicas in controller mode with
//! `allAckInSyncStateSet=true`, a producer logging every acknowledged send.
//! The master is SIGKILLed at a random moment under load,
//! `FERROMQ_FAILOVER_TRIALS` times (default 20), and restarted so that it
//! rejoins. After each kill a new master is elected and takes sends; at the
//! end every acknowledged message is read back from the master at the queue
//! offset its send was answered with, the queue's offsets have no gap, no
//! body is stored twice, and every replica's commitlog equals the master's
//! byte for byte. (Without the ack rule it fails: run it with
//! `FERROMQ_FAILOVER_EXTRA=allAckInSyncStateSet=false`.)

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::failover::{env_num, env_seed, must, producer, verify, Cluster, Rng};
use common::temp_dir;

#[test]
fn kill_the_master_repeatedly_and_lose_no_acknowledged_message() {
    let trials = env_num("FERROMQ_FAILOVER_TRIALS", 20) as usize;
    let seed = env_seed("FERROMQ_FAILOVER_SEED");
    println!("FERROMQ_FAILOVER_SEED={seed} trials={trials}");
    let mut rng = Rng(seed);
    let (_keep, dir) = temp_dir();
    // Extra broker keys, `,`-separated, for experiments: with
    // `FERROMQ_FAILOVER_EXTRA=allAckInSyncStateSet=false` acknowledged
    // messages are lost and this test fails.
    let extra = std::env::var("FERROMQ_FAILOVER_EXTRA")
        .unwrap_or_default()
        .replace(',', "\n");
    let mut cluster = Cluster::start(&dir, 3, &extra);
    let (_, mut epoch) = must(
        "a first master with all three in sync",
        Duration::from_secs(60),
        || cluster.wait_master(0, 3, Duration::from_millis(200)),
    );
    let ports = Arc::new(Mutex::new(
        cluster.replicas.iter().map(|r| r.port).collect::<Vec<_>>(),
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let acks = Arc::new(Mutex::new(Vec::new()));
    let prod = {
        let (ports, stop, acks) = (ports.clone(), stop.clone(), acks.clone());
        std::thread::spawn(move || producer(ports, None, stop, acks))
    };
    must(
        "the first acknowledged send",
        Duration::from_secs(30),
        || (!acks.lock().unwrap().is_empty()).then_some(()),
    );
    let mut recoveries = Vec::new();
    for trial in 0..trials {
        std::thread::sleep(Duration::from_millis(200 + rng.next() % 1000));
        let (m, e) = cluster.master().expect("a master before the kill");
        assert_eq!(
            e, epoch,
            "trial {trial}: the master's epoch moved by itself"
        );
        let old_port = cluster.replicas[m].port;
        let acked_before = acks.lock().unwrap().len();
        let killed_at = Instant::now();
        cluster.kill(m);
        // A new master, on another replica, at a higher epoch.
        let (nm, ne) = cluster.new_master(epoch, &format!("trial {trial}: replica {m} killed"));
        assert_ne!(nm, m, "trial {trial}: the killed replica cannot be master");
        // The producer's first acknowledged send on the new master.
        let first = must(
            &format!("trial {trial}: a send acknowledged by the new master"),
            Duration::from_secs(30),
            || {
                acks.lock().unwrap()[acked_before..]
                    .iter()
                    .find(|a| a.port != old_port)
                    .map(|a| a.at)
            },
        );
        recoveries.push(first.duration_since(killed_at));
        epoch = ne;
        // The killed replica rejoins as a slave and catches up.
        cluster.start_replica(m);
        *ports.lock().unwrap() = cluster.replicas.iter().map(|r| r.port).collect();
        must(
            &format!("trial {trial}: all three in sync again"),
            Duration::from_secs(60),
            || cluster.wait_master(epoch - 1, 3, Duration::from_millis(200)),
        );
        println!(
            "trial {trial}: killed replica {m}, replica {nm} master at epoch {ne}, first ack after {:?}",
            recoveries.last().unwrap()
        );
    }
    stop.store(true, Ordering::Release);
    let sent = prod.join().unwrap();
    let acks = acks.lock().unwrap().clone();
    recoveries.sort();
    println!(
        "sent {sent}, acknowledged {}; recovery p50 {:?} max {:?}",
        acks.len(),
        recoveries.get(recoveries.len() / 2),
        recoveries.last()
    );

    verify(&cluster, &acks);

    // The final master's epoch entries, as mqadmin's getBrokerEpoch prints
    // them: one per master epoch, the last the current one.
    let (m, e) = cluster.master().expect("a final master");
    let addr = format!("127.0.0.1:{}", cluster.replicas[m].port);
    let out = common::admin_ok(cluster.namesrv_port, &["getBrokerEpoch", "-b", &addr]);
    let epochs: Vec<&str> = out.lines().filter(|l| l.starts_with("#Epoch:")).collect();
    assert_eq!(epochs.len() as i64, e, "{out}");
    assert!(
        epochs[epochs.len() - 1].contains(&format!("epoch={e},")),
        "{out}"
    );
}
