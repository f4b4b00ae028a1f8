#![allow(dead_code)]
//! Helpers shared by the replication tests.

pub mod certs;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferromq_engine::{BrokerRole, FlushDiskType, MessageStore, StoreConfig};
use ferromq_replication::HaConfig;

pub fn store(dir: &Path, role: BrokerRole) -> Arc<MessageStore> {
    store_with(dir, role, FlushDiskType::AsyncFlush)
}

pub fn store_with(dir: &Path, role: BrokerRole, flush: FlushDiskType) -> Arc<MessageStore> {
    let mut c = StoreConfig::new(dir);
    c.flush_disk_type = flush;
    c.mapped_file_size_commit_log = 64 * 1024;
    c.mapped_file_size_consume_queue = 20 * 100;
    c.flush_interval_commit_log_ms = 10;
    c.flush_interval_consume_queue_ms = 10;
    c.max_message_size = 16 * 1024;
    c.default_topic_queue_nums = 4;
    c.slave_timeout_ms = 2000;
    c.broker_role = role;
    Arc::new(MessageStore::open(c).unwrap())
}

pub fn fast_ha() -> HaConfig {
    HaConfig {
        heartbeat_interval: Duration::from_millis(200),
        housekeeping_interval: Duration::from_secs(2),
        reconnect_interval: Duration::from_millis(100),
        ..HaConfig::default()
    }
}

/// Wait until `f` holds, at most `secs` seconds.
pub fn wait_until(secs: u64, what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The commitlog bytes of `[from, to)`, file by file.
pub fn log_bytes(s: &MessageStore, from: u64, to: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = from;
    while at < to {
        let b = s
            .read_commit_log(at, (to - at) as usize)
            .unwrap_or_else(|| {
                panic!(
                    "offset {at} of [{from}, {to}) not readable; log is [{}, {})",
                    s.commit_log_min_offset(),
                    s.commit_log_max_offset()
                )
            });
        out.extend_from_slice(&b);
        at += b.len() as u64;
    }
    out
}

/// Wait until the master streams to exactly one slave (its first report arrived).
pub fn wait_streaming(master: &ferromq_replication::HaMaster) {
    wait_until(10, "slave streaming", || {
        let s = master.slaves();
        s.len() == 1 && s[0].streaming_from.is_some()
    });
}

/// A stranger posing as the HA master: serves `frames` to each of the first
/// three connections (after reading the slave's 8-byte offset report), then
/// holds each connection open for `hold` (a slave that reconnects asks again).
pub fn fake_master(frames: Vec<Vec<u8>>, hold: Duration) -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in l.incoming().take(3) {
            let Ok(mut s) = conn else { continue };
            let mut report = [0u8; 8];
            if s.read_exact(&mut report).is_err() {
                continue;
            }
            for f in &frames {
                let _ = s.write_all(f);
            }
            std::thread::sleep(hold);
        }
    });
    addr
}

/// One HA frame: commitlog offset (8 bytes), body size (4), body.
pub fn frame(offset: i64, body: &[u8]) -> Vec<u8> {
    let mut v = offset.to_be_bytes().to_vec();
    v.extend_from_slice(&(body.len() as i32).to_be_bytes());
    v.extend_from_slice(body);
    v
}
