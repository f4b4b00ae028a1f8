#![allow(dead_code)]
//! Helpers of the epoch-mode (auto switch) tests.

use std::path::Path;
use std::sync::Arc;

use ferromq_engine::{Message, MessageStore, PutResult};
use ferromq_replication::{AutoSwitch, EpochCache, HaConfig};

/// A loopback address with a port the OS picks.
pub fn any_port() -> std::net::SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// The epoch file of the store in `dir`.
pub fn epochs(dir: &Path) -> Arc<EpochCache> {
    EpochCache::open(dir.join("epochFileCheckpoint")).unwrap()
}

/// Fast HA settings in epoch mode for broker `id`.
pub fn az(epochs: &Arc<EpochCache>, id: u64) -> HaConfig {
    az_with(epochs, id, |_| {})
}

/// [`az`] with the epoch settings changed by `f`.
pub fn az_with(epochs: &Arc<EpochCache>, id: u64, f: impl FnOnce(&mut AutoSwitch)) -> HaConfig {
    let mut a = AutoSwitch::new(epochs.clone(), id);
    f(&mut a);
    HaConfig {
        auto_switch: Some(a),
        ..super::common::fast_ha()
    }
}

/// Put `n` messages tagged `tag` (about 300 bytes each) and return the last
/// result.
pub fn put_n(store: &MessageStore, n: usize, tag: &str) -> PutResult {
    let mut last = None;
    for i in 0..n {
        let body = format!("{tag}-{i}-{}", "x".repeat(200)).into_bytes();
        let r = store
            .put_message(&Message::new("AZ", body).with_queue_id((i % 4) as u32))
            .unwrap();
        last = Some(r);
    }
    last.unwrap()
}

/// `(epoch, start offset)` of each entry.
pub fn starts(e: &EpochCache) -> Vec<(u32, u64)> {
    e.entries()
        .iter()
        .map(|e| (e.epoch, e.start_offset))
        .collect()
}
