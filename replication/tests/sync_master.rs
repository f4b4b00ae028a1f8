//! SYNC_MASTER: a put returns once a slave has its bytes; no slave gives
//! SLAVE_NOT_AVAILABLE at once; a dead link gives FLUSH_SLAVE_TIMEOUT within the
//! timeout and recovers when the link returns; concurrent puts share the wait.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferromq_engine::{BrokerRole, FlushDiskType, Message, PutStatus};
use ferromq_replication::{HaMaster, HaSlave};

#[test]
fn no_slave_means_slave_not_available_at_once() {
    let md = tempfile::tempdir().unwrap();
    let store = common::store(md.path(), BrokerRole::SyncMaster);
    // No waiter registered, then a master with no slave: both refuse to wait.
    let r = store
        .put_message(&Message::new("S", b"x".to_vec()))
        .unwrap();
    assert_eq!(r.status, PutStatus::SlaveNotAvailable);
    let master = HaMaster::start(
        store.clone(),
        "127.0.0.1:0".parse().unwrap(),
        common::fast_ha(),
    )
    .unwrap();
    store.set_replica_waiter(Some(master.waiter()));
    let t = Instant::now();
    let r = store
        .put_message(&Message::new("S", b"y".to_vec()))
        .unwrap();
    assert_eq!(r.status, PutStatus::SlaveNotAvailable);
    assert!(t.elapsed() < Duration::from_millis(500), "answered at once");
}

#[test]
fn sync_puts_are_on_the_slave_when_acknowledged() {
    let (md, sd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let store = common::store(md.path(), BrokerRole::SyncMaster);
    let master = HaMaster::start(
        store.clone(),
        "127.0.0.1:0".parse().unwrap(),
        common::fast_ha(),
    )
    .unwrap();
    store.set_replica_waiter(Some(master.waiter()));
    let slave_store = common::store(sd.path(), BrokerRole::Slave);
    let _slave = HaSlave::start(
        slave_store.clone(),
        master.local_addr().to_string(),
        common::fast_ha(),
    )
    .unwrap();
    common::wait_streaming(&master);
    for i in 0..200u32 {
        let r = store
            .put_message(&Message::new("S", format!("m{i}").into_bytes()))
            .unwrap();
        assert_eq!(r.status, PutStatus::PutOk);
        let end = r.commit_log_offset + r.wrote_bytes as u64;
        assert!(
            slave_store.commit_log_max_offset() >= end,
            "on the slave before the ack"
        );
    }
    // Concurrent puts share the wait (group transfer).
    let hs: Vec<_> = (0..16)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    let r = store
                        .put_message(
                            &Message::new("S", format!("{t}-{i}").into_bytes())
                                .with_queue_id(t % 4),
                        )
                        .unwrap();
                    assert_eq!(r.status, PutStatus::PutOk);
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert!(slave_store.commit_log_max_offset() >= store.commit_log_max_offset());
}

/// A TCP proxy that can be cut: while cut it swallows bytes in both directions.
struct Proxy {
    addr: std::net::SocketAddr,
    cut: Arc<AtomicBool>,
}

fn proxy(target: std::net::SocketAddr) -> Proxy {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let cut = Arc::new(AtomicBool::new(false));
    let c = cut.clone();
    std::thread::spawn(move || {
        for client in l.incoming().take(20) {
            let Ok(client) = client else { continue };
            let Ok(server) = TcpStream::connect(target) else {
                continue;
            };
            for (mut from, mut to) in [
                (client.try_clone().unwrap(), server.try_clone().unwrap()),
                (server, client),
            ] {
                let c = c.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 65536];
                    loop {
                        let n = match from.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if c.load(Ordering::SeqCst) {
                            continue; // blackholed
                        }
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = to.shutdown(std::net::Shutdown::Both);
                });
            }
        }
    });
    Proxy { addr, cut }
}

/// A SYNC_MASTER store with its HA master, and a slave that follows it through
/// a [`proxy`], streaming.
fn proxied_pair(
    master_dir: &std::path::Path,
    slave_dir: &std::path::Path,
    flush: FlushDiskType,
) -> (
    Arc<ferromq_engine::MessageStore>,
    HaMaster,
    Proxy,
    Arc<ferromq_engine::MessageStore>,
    HaSlave,
) {
    let store = common::store_with(master_dir, BrokerRole::SyncMaster, flush);
    let master = HaMaster::start(
        store.clone(),
        "127.0.0.1:0".parse().unwrap(),
        common::fast_ha(),
    )
    .unwrap();
    store.set_replica_waiter(Some(master.waiter()));
    let p = proxy(master.local_addr());
    let slave_store = common::store(slave_dir, BrokerRole::Slave);
    let slave = HaSlave::start(slave_store.clone(), p.addr.to_string(), common::fast_ha()).unwrap();
    common::wait_streaming(&master);
    (store, master, p, slave_store, slave)
}

#[test]
fn a_blackholed_link_times_out_within_the_slave_timeout_and_recovers() {
    let (md, sd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (store, _master, p, slave_store, _slave) =
        proxied_pair(md.path(), sd.path(), FlushDiskType::AsyncFlush);
    assert_eq!(
        store
            .put_message(&Message::new("B", b"a".to_vec()))
            .unwrap()
            .status,
        PutStatus::PutOk
    );
    p.cut.store(true, Ordering::SeqCst);
    let t = Instant::now();
    let r = store
        .put_message(&Message::new("B", b"b".to_vec()))
        .unwrap();
    let waited = t.elapsed();
    assert_eq!(r.status, PutStatus::FlushSlaveTimeout);
    assert!(
        waited >= Duration::from_millis(1900) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
    // The link returns: the master drops the silent slave, the slave reconnects, puts succeed.
    p.cut.store(false, Ordering::SeqCst);
    common::wait_until(20, "sync puts work again", || {
        store
            .put_message(&Message::new("B", b"c".to_vec()))
            .unwrap()
            .status
            == PutStatus::PutOk
    });
    let end = store.commit_log_max_offset();
    assert_eq!(
        common::log_bytes(&store, 0, end),
        common::log_bytes(&slave_store, 0, end)
    );
}

/// The callback form a server uses (`wait_put_then`): the thread that put is
/// not held; each waiting put is answered once, by the ack that covers it or
/// by its timeout when the link is dead.
#[test]
fn callback_waits_are_answered_by_ack_or_timeout() {
    let (md, sd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (store, _master, p, slave_store, _slave) =
        proxied_pair(md.path(), sd.path(), FlushDiskType::AsyncFlush);
    assert!(!store.wait_put_blocks(), "ASYNC_FLUSH: only the slave wait");

    // Put `n` messages without waiting; register each; collect (index, status,
    // put end, slave end when answered, time to answer).
    let put_all = |tag: &str, n: u32| {
        let (tx, rx) = std::sync::mpsc::channel();
        let t = Instant::now();
        for i in 0..n {
            let put = store
                .put_message_nowait(&Message::new("CB", format!("{tag}{i}").into_bytes()))
                .unwrap();
            let end = put.commit_log_offset + u64::from(put.wrote_bytes);
            let (tx, ss) = (tx.clone(), slave_store.clone());
            store.wait_put_then(
                put,
                Instant::now(),
                Box::new(move |res| {
                    let status = res.unwrap().status;
                    let _ = tx.send((i, status, end, ss.commit_log_max_offset(), t.elapsed()));
                }),
            );
        }
        drop(tx);
        let mut got: Vec<_> = (0..n)
            .map(|_| {
                rx.recv_timeout(Duration::from_secs(10))
                    .expect("every put answered")
            })
            .collect();
        assert!(rx.try_recv().is_err(), "a put answered twice");
        got.sort_by_key(|g| g.0);
        got
    };

    for (_, status, end, slave_end, _) in put_all("ok", 50) {
        assert_eq!(status, PutStatus::PutOk);
        assert!(slave_end >= end, "acknowledged before the slave had it");
    }

    p.cut.store(true, Ordering::SeqCst);
    for (_, status, _, _, waited) in put_all("cut", 20) {
        assert_eq!(status, PutStatus::FlushSlaveTimeout);
        assert!(
            waited >= Duration::from_millis(1900) && waited < Duration::from_secs(4),
            "{waited:?}"
        );
    }
}

/// A put waiting for its slave when the master stops is answered
/// SLAVE_NOT_AVAILABLE at once, not at its timeout.
#[test]
fn a_waiting_put_is_answered_when_the_master_stops() {
    let (md, sd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (store, master, p, _slave_store, _slave) =
        proxied_pair(md.path(), sd.path(), FlushDiskType::AsyncFlush);
    p.cut.store(true, Ordering::SeqCst);
    let put = store
        .put_message_nowait(&Message::new("CB", b"stop".to_vec()))
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    store.wait_put_then(
        put,
        Instant::now(),
        Box::new(move |res| {
            let _ = tx.send(res.unwrap().status);
        }),
    );
    // Registered and waiting (the link is cut, the slave still counted).
    std::thread::sleep(Duration::from_millis(100));
    assert!(rx.try_recv().is_err(), "answered before the stop");
    let t = Instant::now();
    master.shutdown();
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)).unwrap(),
        PutStatus::SlaveNotAvailable
    );
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
}

/// SYNC_FLUSH and SYNC_MASTER together: `wait_put_then` waits for the disk on
/// the calling thread, then leaves the slave wait to the replication layer
/// (the caller is free long before the slave timeout).
#[test]
fn sync_flush_and_sync_master_wait_for_the_disk_only_on_the_caller() {
    let (md, sd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (store, _master, p, _slave_store, _slave) =
        proxied_pair(md.path(), sd.path(), FlushDiskType::SyncFlush);
    assert!(store.wait_put_blocks(), "SYNC_FLUSH waits on the caller");
    p.cut.store(true, Ordering::SeqCst);
    let put = store
        .put_message_nowait(&Message::new("SF", b"both".to_vec()))
        .unwrap();
    let end = put.commit_log_offset + u64::from(put.wrote_bytes);
    let (tx, rx) = std::sync::mpsc::channel();
    let t = Instant::now();
    store.wait_put_then(
        put,
        Instant::now(),
        Box::new(move |res| {
            let _ = tx.send(res.unwrap().status);
        }),
    );
    let returned = t.elapsed();
    assert!(
        returned < Duration::from_millis(1000),
        "the caller waited for the slave: {returned:?}"
    );
    // The disk part is done: the bytes are durable before the slave answers.
    assert!(store.commit_log_flushed_offset() >= end);
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)).unwrap(),
        PutStatus::FlushSlaveTimeout
    );
    assert!(
        t.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        t.elapsed()
    );
}
