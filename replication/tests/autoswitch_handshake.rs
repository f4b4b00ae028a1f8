//! Epoch mode's handshake under stress: malformed or cut hellos and peers
//! that hang up leave the master serving the others and the slave's store
//! untouched; a new epoch on the master makes its slaves re-handshake.

mod autoswitch_common;
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use autoswitch_common::{any_port, az, epochs, put_n, starts};
use common::{log_bytes, store, wait_until};
use ferromq_engine::BrokerRole;
use ferromq_replication::autoswitch::{EPOCH_HELLO_MAGIC, EPOCH_PROTOCOL_VERSION};
use ferromq_replication::{HaMaster, HaSlave};

fn hello(version: u16, id: u64, max: i64) -> Vec<u8> {
    let mut h = EPOCH_HELLO_MAGIC.to_vec();
    h.extend_from_slice(&version.to_be_bytes());
    h.extend_from_slice(&id.to_be_bytes());
    h.extend_from_slice(&max.to_be_bytes());
    h
}

/// Send `bytes` (then half-close when `hang_up`) and return all the master
/// answers before it closes the connection.
fn poke(master: SocketAddr, bytes: &[u8], hang_up: bool) -> Vec<u8> {
    let mut s = TcpStream::connect(master).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(bytes).unwrap();
    if hang_up {
        s.shutdown(std::net::Shutdown::Write).unwrap();
    }
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    got
}

#[test]
fn malformed_hellos_are_refused_and_the_master_keeps_serving() {
    let (md, sd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let m = store(md.path(), BrokerRole::AsyncMaster);
    let em = epochs(md.path());
    em.become_master(1, 0).unwrap();
    let master = HaMaster::start(m.clone(), any_port(), az(&em, 1)).unwrap();
    let s = store(sd.path(), BrokerRole::Slave);
    let slave = HaSlave::start(
        s.clone(),
        master.local_addr().to_string(),
        az(&epochs(sd.path()), 2),
    )
    .unwrap();
    put_n(&m, 50, "before");
    wait_until(20, "slave caught up", || {
        s.commit_log_max_offset() == m.commit_log_max_offset()
    });
    let addr = master.local_addr();
    let max_before = m.commit_log_max_offset();

    // Garbage, a classic offset report, an unknown version, cut hellos, a
    // negative offset, nothing at all: each closed, none answered but the
    // unknown version (11 bytes: magic, version, status 1).
    assert!(poke(addr, &[0xAB; 26], false).is_empty());
    assert!(poke(addr, &0i64.to_be_bytes(), false).is_empty());
    let v9 = poke(addr, &hello(9, 5, 0), false);
    assert_eq!(v9.len(), 11);
    assert_eq!(&v9[..8], &EPOCH_HELLO_MAGIC);
    assert_eq!(v9[10], 1);
    let good = hello(EPOCH_PROTOCOL_VERSION, 5, 0);
    for cut in [1, 8, 10, 17, 25] {
        assert!(poke(addr, &good[..cut], true).is_empty(), "cut at {cut}");
    }
    assert!(poke(addr, &hello(EPOCH_PROTOCOL_VERSION, 5, -1), false).is_empty());
    assert!(poke(addr, &[], true).is_empty());
    // A slave claiming more than the master has is answered, then dropped
    // at its first report.
    let mut liar = hello(EPOCH_PROTOCOL_VERSION, 6, 0);
    liar.extend_from_slice(&((max_before + 4096) as i64).to_be_bytes());
    let got = poke(addr, &liar, false);
    assert_eq!(&got[..8], &EPOCH_HELLO_MAGIC, "the answer came first");

    // The real slave was never disturbed, and the master serves on.
    assert_eq!(slave.status().connections, 1);
    put_n(&m, 50, "after");
    wait_until(20, "slave followed", || {
        s.commit_log_max_offset() == m.commit_log_max_offset()
    });
    wait_until(10, "strangers gone", || {
        master
            .slaves()
            .iter()
            .map(|s| s.broker_id)
            .collect::<Vec<_>>()
            == [Some(2)]
    });
    let max = m.commit_log_max_offset();
    assert!(log_bytes(&s, 0, max) == log_bytes(&m, 0, max));
    assert_eq!(m.commit_log_max_offset(), max);
}

/// A master that reads the 26-byte hello and answers `answer`, then hangs
/// up, for each connection.
fn fake_master(answer: Vec<u8>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in l.incoming().take(50) {
            let Ok(mut c) = conn else { continue };
            let mut h = [0u8; 26];
            if c.read_exact(&mut h).is_ok() {
                let _ = c.write_all(&answer);
            }
        }
    });
    addr
}

fn answer(min: i64, max: i64, entries: &[(u32, i64)], count: u32) -> Vec<u8> {
    let mut a = EPOCH_HELLO_MAGIC.to_vec();
    a.extend_from_slice(&EPOCH_PROTOCOL_VERSION.to_be_bytes());
    a.push(0);
    a.extend_from_slice(&9u64.to_be_bytes());
    a.extend_from_slice(&min.to_be_bytes());
    a.extend_from_slice(&max.to_be_bytes());
    a.extend_from_slice(&count.to_be_bytes());
    for &(e, s) in entries {
        a.extend_from_slice(&e.to_be_bytes());
        a.extend_from_slice(&s.to_be_bytes());
    }
    a
}

#[test]
fn bad_answers_leave_the_slave_untouched() {
    let (md, sd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let m = store(md.path(), BrokerRole::AsyncMaster);
    let em = epochs(md.path());
    em.become_master(1, 0).unwrap();
    let master = HaMaster::start(m.clone(), any_port(), az(&em, 1)).unwrap();
    let s = store(sd.path(), BrokerRole::Slave);
    let es = epochs(sd.path());
    let slave = HaSlave::start(s.clone(), master.local_addr().to_string(), az(&es, 2)).unwrap();
    put_n(&m, 300, "data");
    wait_until(20, "slave caught up", || {
        s.commit_log_max_offset() == m.commit_log_max_offset()
    });
    master.shutdown();
    let max = s.commit_log_max_offset();
    let bytes = log_bytes(&s, 0, max);
    let before = slave.status();

    let cases = [
        // Hangs up mid-answer.
        answer(0, 10, &[(1, 0)], 1)[..20].to_vec(),
        // Says two entries, sends one.
        answer(0, max as i64 + 10, &[(1, 0)], 2),
        // Entries out of order.
        answer(0, max as i64 + 10, &[(3, 0), (2, 100)], 2),
        // No common epoch, and the master lost the start of its log: the
        // slave cannot prove its bytes and must not follow.
        answer(4096, max as i64 + 10, &[(7, 4096)], 1),
        // No epochs at all.
        answer(0, max as i64, &[], 0),
    ];
    let mut errors = before.protocol_errors;
    for (i, a) in cases.into_iter().enumerate() {
        let addr = fake_master(a);
        slave.set_master_address(addr.to_string());
        wait_until(10, "the slave refused the answer", || {
            slave.status().protocol_errors > errors
        });
        errors = slave.status().protocol_errors;
        let st = slave.status();
        assert_eq!(st.truncations, 0, "case {i}: {st:?}");
        assert_eq!(s.commit_log_max_offset(), max, "case {i}");
        assert_eq!(starts(&es), vec![(1, 0)], "case {i}");
        if i == 3 {
            let e = st.last_error.unwrap_or_default();
            assert!(e.contains("cannot follow"), "{e}");
        }
    }
    assert!(log_bytes(&s, 0, max) == bytes);
    assert_eq!(slave.status().epoch_handshakes, before.epoch_handshakes);
}

#[test]
fn new_epoch_drops_slaves_and_they_re_handshake() {
    let (md, d2, d3) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let m = store(md.path(), BrokerRole::AsyncMaster);
    let em = epochs(md.path());
    em.become_master(1, 0).unwrap();
    let master = HaMaster::start(m.clone(), any_port(), az(&em, 1)).unwrap();
    let addr = master.local_addr().to_string();
    let (s2, s3) = (
        store(d2.path(), BrokerRole::Slave),
        store(d3.path(), BrokerRole::Slave),
    );
    let (e2, e3) = (epochs(d2.path()), epochs(d3.path()));
    let h2 = HaSlave::start(s2.clone(), addr.clone(), az(&e2, 2)).unwrap();
    let h3 = HaSlave::start(s3.clone(), addr, az(&e3, 3)).unwrap();
    put_n(&m, 100, "one");
    wait_until(20, "both caught up", || {
        s2.commit_log_max_offset() == m.commit_log_max_offset()
            && s3.commit_log_max_offset() == m.commit_log_max_offset()
    });
    assert_eq!((h2.status().connections, h3.status().connections), (1, 1));

    let at = m.commit_log_max_offset();
    em.become_master(2, at).unwrap();
    wait_until(10, "both re-handshook", || {
        h2.status().epoch_handshakes >= 2 && h3.status().epoch_handshakes >= 2
    });
    assert!(h2.status().connections >= 2 && h3.status().connections >= 2);
    assert_eq!(starts(&e2), vec![(1, 0), (2, at)]);
    assert_eq!(starts(&e3), vec![(1, 0), (2, at)]);
    put_n(&m, 100, "two");
    wait_until(20, "both follow epoch 2", || {
        s2.commit_log_max_offset() == m.commit_log_max_offset()
            && s3.commit_log_max_offset() == m.commit_log_max_offset()
    });
    assert_eq!((h2.status().truncations, h3.status().truncations), (0, 0));
    let mut ids: Vec<_> = master.slaves().iter().filter_map(|s| s.broker_id).collect();
    ids.sort_unstable();
    assert_eq!(ids, [2, 3]);
    let max = m.commit_log_max_offset();
    assert!(log_bytes(&s2, 0, max) == log_bytes(&m, 0, max));
    assert!(log_bytes(&s3, 0, max) == log_bytes(&m, 0, max));
}
