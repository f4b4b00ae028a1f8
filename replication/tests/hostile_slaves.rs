//! The HA listener holds up against peers that are not well-behaved slaves: a
//! connection that sends nothing is closed after `haHousekeepingInterval`; one
//! that reports but never reads is closed after the same time instead of pinning
//! a writer; connections beyond [`MAX_SLAVE_CONNECTIONS`] are closed at once, and
//! a slot that frees is served again; a stranger holding connections (reporting
//! or silent) does not keep a real slave out: one address gets at most
//! [`MAX_SLAVE_CONNECTIONS_PER_ADDRESS`] slots, and connections that never
//! reported make room for new ones.

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferromq_engine::{BrokerRole, Message, MessageStore, StoreConfig};
use ferromq_replication::{
    HaConfig, HaMaster, HaSlave, MAX_SLAVE_CONNECTIONS, MAX_SLAVE_CONNECTIONS_PER_ADDRESS,
};

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

/// Connect from the loopback source address `127.0.0.<src>` (all of 127/8 is
/// loopback on Linux), as a peer on another host would.
fn connect_from(src: u8, addr: SocketAddr) -> TcpStream {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let from = SocketAddr::new(IpAddr::from([127, 0, 0, src]), 0);
    sock.bind(&from.into()).unwrap();
    sock.connect(&addr.into()).unwrap();
    let s: TcpStream = sock.into();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Live connections the master serves from `127.0.0.<src>`.
fn from_address(master: &HaMaster, src: u8) -> usize {
    let ip = IpAddr::from([127, 0, 0, src]);
    master.slaves().iter().filter(|s| s.addr.ip() == ip).count()
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
    // From as many addresses as the per-address limit requires.
    let mut held: Vec<TcpStream> = (0..MAX_SLAVE_CONNECTIONS)
        .map(|i| {
            let mut s = connect_from(10 + (i / MAX_SLAVE_CONNECTIONS_PER_ADDRESS) as u8, addr);
            report(&mut s, 0).unwrap();
            s
        })
        .collect();
    common::wait_until(10, "all slots streaming", || {
        let s = master.slaves();
        s.len() == MAX_SLAVE_CONNECTIONS && s.iter().all(|s| s.streaming_from.is_some())
    });
    for i in 0..3 {
        let mut extra = connect_from(50 + i, addr);
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
    let mut fresh = connect_from(60, addr);
    report(&mut fresh, 0).unwrap();
    let mut header = [0u8; 12];
    fresh
        .read_exact(&mut header)
        .expect("the new slave gets a frame");
    master.shutdown();
}

/// A master with one message, a long housekeeping interval (so a stranger's
/// connections stay unless the limits close them) and a slave store.
fn master_and_slave_store(
    md: &std::path::Path,
    sd: &std::path::Path,
) -> (Arc<MessageStore>, HaMaster, Arc<MessageStore>) {
    let store = common::store(md, BrokerRole::AsyncMaster);
    store
        .put_message(&Message::new("HaHostile", b"before".to_vec()))
        .unwrap();
    let master = HaMaster::start(
        store.clone(),
        "127.0.0.1:0".parse().unwrap(),
        ha(Duration::from_secs(30)),
    )
    .unwrap();
    let slave_store = common::store(sd, BrokerRole::Slave);
    (store, master, slave_store)
}

/// The real slave (from 127.0.0.1) connects and gets what the master has; it
/// is returned still running.
fn real_slave_catches_up(
    store: &MessageStore,
    master: &HaMaster,
    slave_store: &Arc<MessageStore>,
) -> HaSlave {
    let fast = HaConfig {
        heartbeat_interval: Duration::from_millis(200),
        housekeeping_interval: Duration::from_secs(5),
        reconnect_interval: Duration::from_millis(200),
        ..HaConfig::default()
    };
    let slave = HaSlave::start(slave_store.clone(), master.local_addr().to_string(), fast).unwrap();
    store
        .put_message(&Message::new("HaHostile", b"after".to_vec()))
        .unwrap();
    let end = store.commit_log_max_offset();
    let t0 = Instant::now();
    common::wait_until(20, "the real slave caught up", || {
        slave_store.commit_log_max_offset() == end
    });
    eprintln!("real slave caught up {:?} after it started", t0.elapsed());
    assert_eq!(from_address(master, 1), 1, "{:?}", master.slaves());
    slave
}

#[test]
fn a_stranger_reporting_from_one_address_gets_two_slots_and_the_slave_gets_in() {
    let (md, sd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (store, master, slave_store) = master_and_slave_store(md.path(), sd.path());
    let addr = master.local_addr();
    // A stranger on 127.0.0.2 opens as many connections as the master takes,
    // each reporting (so each is streamed to, as a slave would be).
    let mut stranger = Vec::new();
    let mut closed_at_once = 0;
    for _ in 0..MAX_SLAVE_CONNECTIONS {
        let mut s = connect_from(2, addr);
        if report(&mut s, 0).is_err() {
            closed_at_once += 1;
            continue;
        }
        stranger.push(s);
        // Let the master see this one's report before the next arrives.
        common::wait_until(5, "stranger streaming or closed", || {
            master
                .slaves()
                .iter()
                .filter(|s| s.addr.ip() == IpAddr::from([127, 0, 0, 2]))
                .all(|s| s.streaming_from.is_some())
        });
    }
    common::wait_until(5, "the stranger held to its limit", || {
        from_address(&master, 2) == MAX_SLAVE_CONNECTIONS_PER_ADDRESS
    });
    // The stranger's connections beyond the limit were closed at once.
    let mut refused = 0;
    for s in &mut stranger {
        if closed_within(s, Duration::from_millis(200)) {
            refused += 1;
        }
    }
    eprintln!(
        "stranger: {} connections kept, {} closed",
        from_address(&master, 2),
        refused + closed_at_once
    );
    assert_eq!(from_address(&master, 2), MAX_SLAVE_CONNECTIONS_PER_ADDRESS);
    assert!(refused + closed_at_once >= MAX_SLAVE_CONNECTIONS - MAX_SLAVE_CONNECTIONS_PER_ADDRESS);
    let slave = real_slave_catches_up(&store, &master, &slave_store);
    slave.shutdown();
    drop(stranger);
    master.shutdown();
}

#[test]
fn silent_connections_filling_every_slot_make_room_for_the_slave() {
    let (md, sd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (store, master, slave_store) = master_and_slave_store(md.path(), sd.path());
    let addr = master.local_addr();
    // A stranger with enough addresses fills every slot with connections that
    // never report.
    let silent: Vec<TcpStream> = (0..MAX_SLAVE_CONNECTIONS)
        .map(|i| connect_from(20 + (i / MAX_SLAVE_CONNECTIONS_PER_ADDRESS) as u8, addr))
        .collect();
    common::wait_until(10, "all slots taken", || {
        master.slaves().len() == MAX_SLAVE_CONNECTIONS
    });
    let slave = real_slave_catches_up(&store, &master, &slave_store);
    // The oldest silent connection made room; the others are still open.
    assert_eq!(master.slaves().len(), MAX_SLAVE_CONNECTIONS);
    slave.shutdown();
    let mut silent = silent;
    assert!(
        closed_within(&mut silent[0], Duration::from_secs(2)),
        "oldest kept"
    );
    drop(silent);
    master.shutdown();
}
