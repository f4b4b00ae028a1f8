//! Issue 23's randomized fault run: a controller-mode cluster (three
//! controllers, one group of three replicas reaching the controllers
//! through proxies the test controls) under two producers and a consumer,
//! while a seeded schedule injects one fault at a time: SIGKILL of the
//! master or a slave (restarted later), SIGKILL of a controller (restarted
//! later), a broker's controller links cut (healed later), the master
//! frozen with SIGSTOP (thawed later). At the end everything is healed and:
//! every acknowledged message was consumed at the queue offset its send was
//! answered with; no queue offset was ever consumed with two different
//! messages; every replica's commitlog equals the master's.
//!
//! `FERROMQ_FAULT_SEED` replays a schedule (the seed and each fault are
//! printed); `FERROMQ_FAULT_SECS` sets the run's length (default 180).

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::failover::{
    env_num, env_seed, find_master, must, producer, start_controller, verify, Ack, Cluster, Rng,
    TOPIC,
};
use common::{records, temp_dir, Client};

/// What the consumer saw: queue offset -> body, and any offset seen with
/// two different bodies.
#[derive(Default)]
struct Consumed {
    at: BTreeMap<u64, String>,
    conflicts: Vec<(u64, String, String)>,
    next: u64,
}

/// Pull queue 0 from the master, in order, until `stop` and caught up.
fn consumer(ports: Arc<Mutex<Vec<u16>>>, stop: Arc<AtomicBool>, seen: Arc<Mutex<Consumed>>) {
    let mut client: Option<Client> = None;
    let mut idle_after_stop = 0;
    loop {
        if stop.load(Ordering::Acquire) && idle_after_stop >= 3 {
            return;
        }
        if client.is_none() {
            let list = ports.lock().unwrap().clone();
            client =
                find_master(&list).and_then(|p| Client::try_connect(p, Duration::from_secs(3)));
            if client.is_none() {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        }
        let next = seen.lock().unwrap().next;
        let req = Client::pull_req("fault-consumer", TOPIC, 0, next, 32, 0, 0, "*");
        let r = match client.as_mut().expect("connected").try_invoke(req) {
            Ok(r) => r,
            Err(_) => {
                client = None;
                continue;
            }
        };
        let recs = if r.code == 0 {
            records(&r.body)
        } else {
            Vec::new()
        };
        if recs.is_empty() {
            if stop.load(Ordering::Acquire) {
                idle_after_stop += 1;
            }
            // No message (or not the master any more): look again.
            client = None;
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        idle_after_stop = 0;
        let mut s = seen.lock().unwrap();
        for m in recs {
            let body = String::from_utf8_lossy(&m.body).into_owned();
            if let Some(old) = s.at.get(&m.queue_offset) {
                if *old != body {
                    let c = (m.queue_offset, old.clone(), body.clone());
                    s.conflicts.push(c);
                }
            } else {
                s.at.insert(m.queue_offset, body);
            }
            s.next = s.next.max(m.queue_offset + 1);
        }
    }
}

/// One fault, undone after `hold`.
#[derive(Debug, Clone, Copy)]
enum Fault {
    KillMaster,
    KillSlave,
    KillController(usize),
    CutLinks(usize),
    FreezeMaster,
}

fn signal(pid: u32, sig: &str) {
    let _ = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status();
}

#[test]
fn random_faults_lose_no_acknowledged_message() {
    let secs = env_num("FERROMQ_FAULT_SECS", 180);
    let seed = env_seed("FERROMQ_FAULT_SEED");
    println!("FERROMQ_FAULT_SEED={seed} FERROMQ_FAULT_SECS={secs}");
    let mut rng = Rng(seed);
    let (_keep, dir) = temp_dir();
    let mut cluster = Cluster::start_proxied(&dir, 3, "");
    must(
        "a first master with all three in sync",
        Duration::from_secs(60),
        || cluster.wait_master(0, 3, Duration::from_millis(200)),
    );
    let ports = Arc::new(Mutex::new(
        cluster.replicas.iter().map(|r| r.port).collect::<Vec<_>>(),
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let acks: Arc<Mutex<Vec<Ack>>> = Arc::default();
    let producers: Vec<_> = (0..2)
        .map(|_| {
            let (p, s, a) = (ports.clone(), stop.clone(), acks.clone());
            std::thread::spawn(move || producer(p, None, s, a))
        })
        .collect();
    let seen: Arc<Mutex<Consumed>> = Arc::default();
    let consumer_thread = {
        let (p, s, c) = (ports.clone(), stop.clone(), seen.clone());
        std::thread::spawn(move || consumer(p, s, c))
    };
    let started = Instant::now();
    let t = |at: Instant| at.duration_since(started).as_secs_f64();
    let mut faults = 0;
    while started.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_millis(1000 + rng.next() % 3000));
        let hold = Duration::from_millis(1000 + rng.next() % 3000);
        let fault = match rng.next() % 5 {
            0 => Fault::KillMaster,
            1 => Fault::KillSlave,
            2 => Fault::KillController((rng.next() % 3) as usize),
            3 => Fault::CutLinks((rng.next() % 3) as usize),
            _ => Fault::FreezeMaster,
        };
        let master = cluster.master().map(|(i, _)| i);
        println!(
            "t={:.1}s {fault:?} for {hold:?} (master: {master:?})",
            t(Instant::now())
        );
        faults += 1;
        match fault {
            Fault::KillMaster | Fault::KillSlave => {
                let target = match (fault, master) {
                    (Fault::KillMaster, Some(m)) => m,
                    (Fault::KillSlave, Some(m)) => (m + 1 + (rng.next() % 2) as usize) % 3,
                    _ => (rng.next() % 3) as usize,
                };
                cluster.kill(target);
                std::thread::sleep(hold);
                cluster.start_replica(target);
                *ports.lock().unwrap() = cluster.replicas.iter().map(|r| r.port).collect();
            }
            Fault::KillController(i) => {
                let _ = cluster.controllers[i].child.kill();
                let _ = cluster.controllers[i].child.wait();
                std::thread::sleep(hold);
                cluster.controllers[i] = start_controller(&dir, &cluster.controller_ports, i);
            }
            Fault::CutLinks(i) => {
                cluster.cut_links(i, true);
                std::thread::sleep(hold);
                cluster.cut_links(i, false);
            }
            Fault::FreezeMaster => {
                let Some(m) = master else { continue };
                let pid = cluster.replicas[m].proc.as_ref().unwrap().child.id();
                signal(pid, "-STOP");
                std::thread::sleep(hold);
                signal(pid, "-CONT");
            }
        }
        // One fault at a time: the group is whole again before the next.
        let whole = cluster.wait_master(0, 3, Duration::from_secs(60));
        println!(
            "t={:.1}s healed: master {:?}, {} acknowledged so far",
            t(Instant::now()),
            whole,
            acks.lock().unwrap().len()
        );
        assert!(
            whole.is_some(),
            "seed {seed}: the group did not recover within 60 s after {fault:?}\n{}",
            (0..3)
                .map(|i| format!("--- replica {i}\n{}", cluster.log_tail(i)))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    stop.store(true, Ordering::Release);
    for p in producers {
        p.join().unwrap();
    }
    consumer_thread.join().unwrap();
    let acks = acks.lock().unwrap().clone();
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    println!(
        "seed {seed}: {faults} faults in {:.0}s, {} acknowledged, {} consumed",
        t(Instant::now()),
        acks.len(),
        seen.at.len()
    );
    assert!(
        seen.conflicts.is_empty(),
        "seed {seed}: queue offsets consumed with two different messages: {:?}",
        &seen.conflicts[..seen.conflicts.len().min(5)]
    );
    for a in &acks {
        assert_eq!(
            seen.at.get(&a.queue_offset),
            Some(&a.body),
            "seed {seed}: acknowledged {} at queue offset {} was not consumed there",
            a.body,
            a.queue_offset
        );
    }
    verify(&cluster, &acks);
}
