//! The master SIGKILLed under SYNC_MASTER load: every message the master
//! acknowledged (SUCCESS, which under SYNC_MASTER means a slave confirmed its
//! end offset) is readable from the slave afterwards.
//!
//! Each trial starts a SYNC_MASTER and a SLAVE (`haMasterAddress` set from the
//! master's printed HA port), runs three producers, each on its own
//! connection and queue, SIGKILLs the master 150..650 ms after the first
//! acknowledgement (spread deterministically over trials), then pulls every
//! queue from the slave. `FERROMQ_HA_KILL_TRIALS=N` runs more trials (default 3).

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{ha_props, records, start_broker, temp_dir, wait_for, Client};
use ferromq_server::remoting::codes::response;

const TOPIC: &str = "KillTopic";
const PRODUCERS: usize = 3;
/// Sends per producer at most (the kill comes long before on any machine).
const MAX_SENDS: usize = 200_000;

fn trials() -> usize {
    std::env::var("FERROMQ_HA_KILL_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

/// Bodies of every message of `TOPIC` queue `q` on the broker at `port`.
fn bodies_on(port: u16, q: i32) -> HashSet<String> {
    let mut c = Client::connect(port);
    let mut out = HashSet::new();
    let mut offset = 0u64;
    for _ in 0..10_000 {
        let r = c.pull("kill-check", TOPIC, q, offset, 32);
        if r.code != response::SUCCESS {
            break;
        }
        let recs = records(&r.body);
        if recs.is_empty() {
            break;
        }
        for m in &recs {
            out.insert(String::from_utf8_lossy(&m.body).to_string());
        }
        offset = r.ext_fields.get_i64("nextBeginOffset").unwrap() as u64;
    }
    out
}

/// How the pair is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Secured {
    /// RocketMQ's defaults: no ACL, no TLS.
    No,
    /// `aclEnable=true`, one ACL file that white lists loopback for the
    /// test's unsigned clients: master and slave still run the authenticated
    /// HA handshake (the white list does not cover it).
    Acl,
    /// ACL as above and TLS: `tls.server.mode=permissive` with a
    /// self-signed certificate (so the test's plain clients still reach the
    /// client port) and `useTLS=true`, so the slave follows its master over
    /// TLS on the HA port.
    AclTls,
}

/// A self-signed certificate for 127.0.0.1 under `dir`, and the broker
/// lines of [`Secured::AclTls`].
fn tls_lines(dir: &Path) -> String {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let (cert, key) = (dir.join("ha.pem"), dir.join("ha.key"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    format!(
        "tls.server.mode=permissive\nuseTLS=true\ntls.server.certPath={}\ntls.server.keyPath={}\n",
        cert.display(),
        key.display()
    )
}

/// One trial: (acknowledged, lost, answered but not acknowledged).
fn run_trial(trial: usize, secured: Secured) -> (usize, usize, usize) {
    let (_d, dir) = temp_dir();
    let mdir = dir.join("master");
    let sdir = dir.join("slave");
    std::fs::create_dir_all(&mdir).unwrap();
    std::fs::create_dir_all(&sdir).unwrap();
    let mut acl_keys = if secured != Secured::No {
        let file = dir.join("plain_acl.yml");
        std::fs::write(
            &file,
            "globalWhiteRemoteAddresses:\n  - 127.0.0.1\naccounts:\n  \
             - accessKey: clusteradmin\n    secretKey: adminsecret1\n    admin: true\n",
        )
        .unwrap();
        format!("aclEnable=true\naclFilePath={}\n", file.display())
    } else {
        String::new()
    };
    if secured == Secured::AclTls {
        acl_keys.push_str(&tls_lines(&dir));
    }
    let (mut master, m_port) = start_broker(
        &mdir,
        &ha_props(&mdir.join("store"), "broker-k", 0, "SYNC_MASTER", &acl_keys),
        None,
    );
    let ha_port = common::ha_port(&mut master);
    let (_slave, s_port) = start_broker(
        &sdir,
        &ha_props(
            &sdir.join("store"),
            "broker-k",
            1,
            "SLAVE",
            &format!("{acl_keys}haMasterAddress=127.0.0.1:{ha_port}\nslaveReadEnable=true\n"),
        ),
        None,
    );
    let mut probe = Client::connect(m_port);
    wait_for(Duration::from_secs(30), || {
        let r = probe.send_v2("KillProbe", 0, b"probe", None, None);
        (r.code == response::SUCCESS).then_some(())
    })
    .expect("the slave follows the master");

    let acked: Arc<Vec<Mutex<Vec<String>>>> =
        Arc::new((0..PRODUCERS).map(|_| Mutex::new(Vec::new())).collect());
    let not_acked = Arc::new(Mutex::new(0usize));
    let first_ack = Arc::new(AtomicBool::new(false));
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let acked = Arc::clone(&acked);
            let not_acked = Arc::clone(&not_acked);
            let first_ack = Arc::clone(&first_ack);
            std::thread::spawn(move || {
                let mut c = Client::connect(m_port);
                for i in 0..MAX_SENDS {
                    let body = format!("t{trial}-p{p}-{i}");
                    let req = Client::send_v2_req(TOPIC, p as i32, body.as_bytes(), &[]);
                    match c.try_invoke(req) {
                        Ok(r) if r.code == response::SUCCESS => {
                            acked[p].lock().unwrap().push(body);
                            first_ack.store(true, Ordering::Release);
                        }
                        // FLUSH_SLAVE_TIMEOUT / SLAVE_NOT_AVAILABLE: stored on the
                        // master, not promised on the slave.
                        Ok(_) => *not_acked.lock().unwrap() += 1,
                        Err(_) => return, // the master is gone
                    }
                }
            })
        })
        .collect();
    let started = Instant::now();
    while !first_ack.load(Ordering::Acquire) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no acknowledgement within 30 s"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(150 + (trial as u64 * 7919) % 500));
    let st = Command::new("kill")
        .args(["-KILL", &master.child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(st.success(), "kill -KILL failed");
    for p in producers {
        p.join().expect("producer thread");
    }
    let _ = master.child.wait();

    // The slave dispatches what it received on its own: wait (bounded) until
    // every acknowledged message is pullable, then count what is missing.
    let want: Vec<HashSet<String>> = acked
        .iter()
        .map(|a| a.lock().unwrap().iter().cloned().collect())
        .collect();
    let mut missing = usize::MAX;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        missing = (0..PRODUCERS)
            .map(|p| {
                let have = bodies_on(s_port, p as i32);
                want[p].difference(&have).count()
            })
            .sum();
        if missing == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let total: usize = want.iter().map(|w| w.len()).sum();
    let n = *not_acked.lock().unwrap();
    (total, missing, n)
}

/// `n` trials; panics if an acknowledged message is missing on the slave.
fn run_trials(n: usize, secured: Secured) {
    let started = Instant::now();
    let (mut acked, mut lost, mut not_acked) = (0, 0, 0);
    for t in 0..n {
        let (a, l, na) = run_trial(t, secured);
        assert!(a > 0, "trial {t}: nothing acknowledged before the kill");
        acked += a;
        lost += l;
        not_acked += na;
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "trials over their time budget"
        );
    }
    eprintln!(
        "SYNC_MASTER SIGKILL trials ({secured:?}): {n}, {acked} acknowledged messages, {lost} missing on the slave, \
         {not_acked} answered FLUSH_SLAVE_TIMEOUT/SLAVE_NOT_AVAILABLE"
    );
    assert_eq!(lost, 0, "acknowledged messages missing on the slave");
}

#[test]
fn sync_master_sigkilled_under_load_loses_no_acknowledged_message() {
    run_trials(trials(), Secured::No);
}

/// The same with ACL on: the slave passes the authenticated HA handshake and
/// replication keeps its promise.
#[test]
fn with_acl_on_sync_master_sigkilled_loses_no_acknowledged_message() {
    run_trials(1, Secured::Acl);
}

/// The same with ACL and TLS on: the HA stream runs over TLS.
#[test]
fn with_acl_and_tls_on_sync_master_sigkilled_loses_no_acknowledged_message() {
    run_trials(1, Secured::AclTls);
}
