//! Message counters (RocketMQ's `BrokerStatsManager`).

use crate::util::now_ms;
use ferromq_engine::sync::LockExt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

/// Message counters behind GET_BROKER_RUNTIME_INFO's `msgPutTotal*` / `msgGetTotal*`.
#[derive(Debug)]
pub struct BrokerStats {
    pub(super) boot_ms: i64,
    put_total: AtomicU64,
    get_total: AtomicU64,
    day: AtomicI64,
    morning: Mutex<[u64; 4]>,
}

impl Default for BrokerStats {
    fn default() -> Self {
        BrokerStats {
            boot_ms: now_ms(),
            put_total: AtomicU64::new(0),
            get_total: AtomicU64::new(0),
            day: AtomicI64::new(now_ms() / 86_400_000),
            morning: Mutex::new([0; 4]),
        }
    }
}

impl BrokerStats {
    /// Count `n` messages stored.
    pub fn add_put(&self, n: u64) {
        self.put_total.fetch_add(n, Ordering::Relaxed);
    }

    /// Count `n` messages handed to consumers.
    pub fn add_get(&self, n: u64) {
        self.get_total.fetch_add(n, Ordering::Relaxed);
    }

    /// Roll the morning snapshots when the (UTC) day changes.
    pub fn roll_day(&self) {
        let today = now_ms() / 86_400_000;
        if self.day.swap(today, Ordering::AcqRel) != today {
            let mut m = self.morning.locked();
            let (put, get) = (
                self.put_total.load(Ordering::Relaxed),
                self.get_total.load(Ordering::Relaxed),
            );
            *m = [m[1], put, m[3], get];
        }
    }

    pub(super) fn snapshot(&self) -> ([u64; 4], u64, u64) {
        let m = *self.morning.locked();
        (
            m,
            self.put_total.load(Ordering::Relaxed),
            self.get_total.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_roll_moves_mornings() {
        let s = BrokerStats::default();
        s.add_put(5);
        s.day.store(0, Ordering::Relaxed);
        s.roll_day();
        let (m, put, _) = s.snapshot();
        assert_eq!((m[1], put), (5, 5));
    }
}
