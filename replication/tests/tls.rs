//! TLS on the HA port: a master that requires TLS streams every byte to a
//! TLS slave (frames larger than one TLS record, the reader and writer
//! threads sharing the session) and refuses a plain slave and a raw
//! connection before any byte of the log.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use ferromq_engine::{BrokerRole, Message, PutStatus};
use ferromq_replication::{HaConfig, HaMaster, HaSlave, HaTls};

use common::certs::configs;

fn with_tls(tls: HaTls) -> HaConfig {
    HaConfig {
        tls,
        ..common::fast_ha()
    }
}

/// Bytes the HA port at `addr` sends a raw connection that reports offset
/// 0, until it closes (at most 5 s).
fn raw_connection_gets(addr: std::net::SocketAddr) -> usize {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s.write_all(&0i64.to_be_bytes()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let (mut got, mut buf) = (0, [0u8; 4096]);
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got += n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return got,
        }
    }
    panic!("the HA port kept a raw connection open for 5 s ({got} bytes)");
}

#[test]
fn a_master_requiring_tls_streams_to_tls_slaves_only() {
    let (server, client) = configs();
    let (md, sd, pd) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let master_store = common::store(md.path(), BrokerRole::AsyncMaster);
    let master = HaMaster::start(
        master_store.clone(),
        "127.0.0.1:0".parse().unwrap(),
        with_tls(HaTls {
            server: Some(server),
            server_required: true,
            client: None,
        }),
    )
    .unwrap();
    let addr = master.local_addr();
    assert_eq!(
        raw_connection_gets(addr),
        0,
        "log bytes sent to a raw connection"
    );

    let plain_store = common::store(pd.path(), BrokerRole::Slave);
    let plain = HaSlave::start(plain_store.clone(), addr.to_string(), common::fast_ha()).unwrap();
    let slave_store = common::store(sd.path(), BrokerRole::Slave);
    let slave = HaSlave::start(
        slave_store.clone(),
        addr.to_string(),
        with_tls(HaTls {
            client: Some(client),
            ..HaTls::default()
        }),
    )
    .unwrap();
    common::wait_streaming(&master);
    // Bodies from 1 byte to 15 KiB: frames of up to haTransferBatchSize
    // (32 KiB) span several TLS records.
    for i in 0..600u32 {
        let body = format!("m{i}-{}", "x".repeat(((i * 97) % 15_000) as usize));
        let m = Message::new("Tls", body.into_bytes()).with_queue_id(i % 4);
        assert_eq!(
            master_store.put_message(&m).unwrap().status,
            PutStatus::PutOk
        );
    }
    let end = master_store.commit_log_max_offset();
    common::wait_until(30, "the TLS slave caught up", || {
        slave_store.commit_log_max_offset() == end
    });
    assert_eq!(
        common::log_bytes(&master_store, 0, end),
        common::log_bytes(&slave_store, 0, end),
        "byte-identical commitlog over TLS"
    );
    assert!(slave.status().connected);
    // The plain slave, retrying every 100 ms all along, got nothing.
    assert_eq!(plain_store.commit_log_max_offset(), 0);
    assert!(plain.status().connections > 0, "the plain slave did try");
    assert_eq!(master.slaves().len(), 1, "only the TLS slave is served");
    drop(plain);
    drop(slave);
    drop(master);
}
