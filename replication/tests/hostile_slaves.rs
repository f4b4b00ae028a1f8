//! The HA listener holds up against peers that are not well-behaved slaves: a
//! connection that sends nothing is closed after `haHousekeepingInterval`; one
//! that reports but never reads is closed after the same time instead of pinning
//! a writer; connections beyond [`MAX_SLAVE_CONNECTIONS`] are closed at once, and
//! a slot that frees is served again.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferromq_engine::{BrokerRole, Message, MessageStore, StoreConfig};
use ferromq_replication::{HaConfig, HaMaster, MAX_SLAVE_CONNECTIONS};

fn ha(housekeeping: Duration) -> HaConfig {
    HaConfig {
        heartbeat_interval: Duration::from_millis(200),
        housekeeping_interval: housekeeping,
        ..HaConfig::default()
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

fn report(s: &mut TcpStream, offset: i64) -> std::io::Result<()> {
    s.write_all(&offset.to_be_bytes())
}

/// True when the peer closes `s` within `timeout` (anything it sends is skipped).
fn closed_within(s: &mut TcpStream, timeout: Duration) -> bool {
    let end = Instant::now() + timeout;
    let mut b = [0u8; 4096];
    while Instant::now() < end {
        s.set_read_timeout(Some(
            end.saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1)),
        ))
        .unwrap();
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
    false
}

#[test]
fn silent_connections_close_after_the_housekeeping_interval() {
    let md = tempfile::tempdir().unwrap();
    let store = common::store(md.path(), BrokerRole::AsyncMaster);
    let master = HaMaster::start(
        store,
        "127.0.0.1:0".parse().unwrap(),
        ha(Duration::from_secs(2)),
    )
    .unwrap();
    let mut idle = connect(master.local_addr());
    let s = Instant::now();
    assert!(closed_within(&mut idle, Duration::from_secs(8)));
    let took = s.elapsed();
    assert!(
        took >= Duration::from_millis(1_900) && took < Duration::from_secs(5),
        "closed after {took:?}"
    );
    master.shutdown();
}

#[test]
fn a_slave_that_reports_but_never_reads_is_closed() {
    let md = tempfile::tempdir().unwrap();
    let mut c = StoreConfig::new(md.path());
    c.mapped_file_size_commit_log = 4 * 1024 * 1024;
    c.max_message_size = 64 * 1024;
    c.broker_role = BrokerRole::AsyncMaster;
    let store = Arc::new(MessageStore::open(c).unwrap());
    // 12 MiB of log: more than the socket buffers hold for a peer that never reads.
    let body = vec![b'r'; 48 * 1024];
    for _ in 0..256 {
        store
            .put_message(&Message::new("HaHostile", body.clone()))
            .unwrap();
    }
    let master = HaMaster::start(
        store,
        "127.0.0.1:0".parse().unwrap(),
        ha(Duration::from_secs(2)),
    )
    .unwrap();
    let mut s = connect(master.local_addr());
    let stop = Arc::new(AtomicBool::new(false));
    // Report every 300 ms (so the read side never times out), read nothing.
    let mut w = s.try_clone().unwrap();
    let st = stop.clone();
    let reporter = std::thread::spawn(move || {
        let t0 = Instant::now();
        for _ in 0..100 {
            if st.load(Ordering::Acquire) || report(&mut w, 1).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        t0.elapsed()
    });
    common::wait_until(10, "streaming", || {
        master.slaves().iter().any(|s| s.streaming_from.is_some())
    });
    let t0 = Instant::now();
    common::wait_until(15, "the non-reading slave closed", || {
        master.slaves().is_empty()
    });
    let took = t0.elapsed();
    stop.store(true, Ordering::Release);
    let reported_for = reporter.join().unwrap();
    eprintln!(
        "non-reading slave closed {took:?} after streaming began; reported for {reported_for:?}"
    );
    assert!(
        reported_for >= Duration::from_secs(2),
        "closed while it still reported: {reported_for:?}"
    );
    assert!(closed_within(&mut s, Duration::from_secs(5)));
    master.shutdown();
}

#[test]
fn connections_beyond_the_cap_are_closed_at_once() {
    let md = tempfile::tempdir().unwrap();
    let store = common::store(md.path(), BrokerRole::AsyncMaster);
    store
        .put_message(&Message::new("HaHostile", b"x".to_vec()))
        .unwrap();
    // A long housekeeping interval: the slots stay taken for the whole test.
    let master = HaMaster::start(
        store,
        "127.0.0.1:0".parse().unwrap(),
        ha(Duration::from_secs(30)),
    )
    .unwrap();
    let addr = master.local_addr();
    let mut held: Vec<TcpStream> = (0..MAX_SLAVE_CONNECTIONS)
        .map(|_| {
            let mut s = connect(addr);
            report(&mut s, 0).unwrap();
            s
        })
        .collect();
    common::wait_until(10, "all slots streaming", || {
        let s = master.slaves();
        s.len() == MAX_SLAVE_CONNECTIONS && s.iter().all(|s| s.streaming_from.is_some())
    });
    for _ in 0..3 {
        let mut extra = connect(addr);
        let s = Instant::now();
        assert!(
            closed_within(&mut extra, Duration::from_secs(3)),
            "cap+1 served"
        );
        assert!(s.elapsed() < Duration::from_secs(2));
    }
    assert_eq!(master.slaves().len(), MAX_SLAVE_CONNECTIONS);
    // One leaves: a new slave is streamed to (a heartbeat frame arrives).
    drop(held.remove(0));
    common::wait_until(10, "slot freed", || {
        master.slaves().len() < MAX_SLAVE_CONNECTIONS
    });
    let mut fresh = connect(addr);
    report(&mut fresh, 0).unwrap();
    let mut header = [0u8; 12];
    fresh
        .read_exact(&mut header)
        .expect("the new slave gets a frame");
    master.shutdown();
}
