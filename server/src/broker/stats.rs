//! Message counters (RocketMQ's `BrokerStatsManager`).
//!
//! Besides the broker totals, per-key counters as RocketMQ keeps them
//! (`TOPIC_PUT_NUMS` by topic, `GROUP_GET_NUMS` by `topic@group`, ...): one
//! [`StatsItem`] of atomics per key in a read-mostly map, so a send or pull
//! takes a read lock, finds its item and adds to it, never waiting on the
//! store's put lock or on a writer but the first of a new key. Every 10 s
//! [`BrokerStats::sample_if_due`] copies each item's figures into its rings
//! (a minute of 10 s samples, an hour of 10 min samples, a day of hour
//! samples, as RocketMQ's `StatsItem` keeps them) from which [`StatsSnapshot`]s (sum, tps, avgpt) are computed as
//! RocketMQ's `StatsItem.computeStatsData` does.

use crate::util::now_ms;
use ferromq_engine::sync::LockExt;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// `BrokerStatsManager.TOPIC_PUT_NUMS`: messages stored, by topic.
pub const TOPIC_PUT_NUMS: &str = "TOPIC_PUT_NUMS";
/// `BrokerStatsManager.TOPIC_PUT_SIZE`: bytes stored, by topic.
pub const TOPIC_PUT_SIZE: &str = "TOPIC_PUT_SIZE";
/// `BrokerStatsManager.GROUP_GET_NUMS`: messages pulled, by `topic@group`.
pub const GROUP_GET_NUMS: &str = "GROUP_GET_NUMS";
/// `BrokerStatsManager.GROUP_GET_SIZE`: bytes pulled, by `topic@group`.
pub const GROUP_GET_SIZE: &str = "GROUP_GET_SIZE";
/// `BrokerStatsManager.SNDBCK_PUT_NUMS`: messages sent back, by `topic@group`.
pub const SNDBCK_PUT_NUMS: &str = "SNDBCK_PUT_NUMS";
/// `BrokerStatsManager.BROKER_PUT_NUMS`: messages stored, by cluster name.
pub const BROKER_PUT_NUMS: &str = "BROKER_PUT_NUMS";
/// `BrokerStatsManager.BROKER_GET_NUMS`: messages pulled, by cluster name.
pub const BROKER_GET_NUMS: &str = "BROKER_GET_NUMS";

/// The stats names [`BrokerStats::set`] knows.
pub const STATS_NAMES: [&str; 7] = [
    TOPIC_PUT_NUMS,
    TOPIC_PUT_SIZE,
    GROUP_GET_NUMS,
    GROUP_GET_SIZE,
    SNDBCK_PUT_NUMS,
    BROKER_PUT_NUMS,
    BROKER_GET_NUMS,
];

// Positions in STATS_NAMES (and `BrokerStats::sets`): the counting paths
// index the sets directly instead of searching the names per message.
const I_TOPIC_PUT_NUMS: usize = 0;
const I_TOPIC_PUT_SIZE: usize = 1;
const I_GROUP_GET_NUMS: usize = 2;
const I_GROUP_GET_SIZE: usize = 3;
const I_SNDBCK_PUT_NUMS: usize = 4;
const I_BROKER_PUT_NUMS: usize = 5;
const I_BROKER_GET_NUMS: usize = 6;

/// How often [`BrokerStats::sample_if_due`] samples (RocketMQ: every 10 s).
pub const SAMPLE_EVERY_MS: i64 = 10_000;

/// One sample of an item: when, its sum, its count of additions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sample {
    at_ms: i64,
    value: u64,
    times: u64,
}

#[derive(Debug, Default)]
struct Rings {
    minute: VecDeque<Sample>,
    hour: VecDeque<Sample>,
    day: VecDeque<Sample>,
    samples: u64,
}

/// One key's counters (RocketMQ's `StatsItem`): a sum and a count of
/// additions, and the samples taken of them.
#[derive(Debug, Default)]
pub struct StatsItem {
    value: AtomicU64,
    times: AtomicU64,
    rings: Mutex<Rings>,
}

/// Figures over a window (RocketMQ's `StatsSnapshot`).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct StatsSnapshot {
    /// What was added in the window.
    pub sum: u64,
    /// `sum` per second over the window.
    pub tps: f64,
    /// `sum` per addition (average per request).
    pub avgpt: f64,
}

fn push(ring: &mut VecDeque<Sample>, s: Sample, keep: usize) {
    ring.push_back(s);
    while ring.len() > keep {
        ring.pop_front();
    }
}

fn compute(ring: &VecDeque<Sample>) -> StatsSnapshot {
    let (Some(first), Some(last)) = (ring.front(), ring.back()) else {
        return StatsSnapshot::default();
    };
    let sum = last.value.saturating_sub(first.value);
    let times = last.times.saturating_sub(first.times);
    let ms = last.at_ms.saturating_sub(first.at_ms);
    StatsSnapshot {
        sum,
        tps: if ms > 0 {
            sum as f64 * 1000.0 / ms as f64
        } else {
            0.0
        },
        avgpt: if times > 0 {
            sum as f64 / times as f64
        } else {
            0.0
        },
    }
}

impl StatsItem {
    /// Add `value` in one addition.
    pub fn add(&self, value: u64) {
        self.value.fetch_add(value, Ordering::Relaxed);
        self.times.fetch_add(1, Ordering::Relaxed);
    }

    /// The sum since start.
    pub fn value(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }

    fn sample(&self, at_ms: i64) {
        let s = Sample {
            at_ms,
            value: self.value(),
            times: self.times.load(Ordering::Relaxed),
        };
        let mut guard = self.rings.locked();
        let r = &mut *guard;
        // As RocketMQ's `StatsItem`: the minute ring every 10 s (7 kept), the
        // hour ring every 10 min (7 kept), the day ring every hour (25 kept);
        // an empty ring is seeded with zeros one period back, so what was
        // counted before an item's first sample shows too.
        let n = r.samples;
        let rings = [
            (&mut r.minute, 1, 7, SAMPLE_EVERY_MS),
            (&mut r.hour, 60, 7, 600_000),
            (&mut r.day, 360, 25, 3_600_000),
        ];
        for (ring, every, keep, period) in rings {
            if n % every != 0 {
                continue;
            }
            if ring.is_empty() {
                let zero = Sample {
                    at_ms: at_ms - period,
                    value: 0,
                    times: 0,
                };
                push(ring, zero, keep);
            }
            push(ring, s, keep);
        }
        r.samples += 1;
    }

    /// The last minute's figures (from the 10 s samples).
    pub fn in_minute(&self) -> StatsSnapshot {
        compute(&self.rings.locked().minute)
    }

    /// The last hour's figures (from the 10 min samples).
    pub fn in_hour(&self) -> StatsSnapshot {
        compute(&self.rings.locked().hour)
    }

    /// The last day's figures (from the hour samples).
    pub fn in_day(&self) -> StatsSnapshot {
        compute(&self.rings.locked().day)
    }
}

/// The items of one stats name by key (RocketMQ's `StatsItemSet`).
#[derive(Debug, Default)]
pub struct StatsItemSet {
    items: RwLock<HashMap<String, Arc<StatsItem>>>,
}

impl StatsItemSet {
    /// The item of `key`, created on first use.
    pub fn item(&self, key: &str) -> Arc<StatsItem> {
        if let Some(i) = self.get(key) {
            return i;
        }
        let mut w = self.items.write().unwrap_or_else(|e| e.into_inner());
        w.entry(key.to_string()).or_default().clone()
    }

    /// The item of `key`, if anything was added under it.
    pub fn get(&self, key: &str) -> Option<Arc<StatsItem>> {
        self.items
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
    }

    /// Add `value` under `key` in one addition: under the read lock, without
    /// touching the item's reference count, unless the key is new.
    pub fn add(&self, key: &str, value: u64) {
        {
            let items = self.items.read().unwrap_or_else(|e| e.into_inner());
            if let Some(i) = items.get(key) {
                i.add(value);
                return;
            }
        }
        self.item(key).add(value);
    }

    /// Every key with its item.
    pub fn entries(&self) -> Vec<(String, Arc<StatsItem>)> {
        self.items
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn sample(&self, at_ms: i64) {
        for (_, i) in self.entries() {
            i.sample(at_ms);
        }
    }
}

/// Message counters behind GET_BROKER_RUNTIME_INFO's `msgPutTotal*` / `msgGetTotal*`.
#[derive(Debug)]
pub struct BrokerStats {
    pub(super) boot_ms: i64,
    put_total: AtomicU64,
    get_total: AtomicU64,
    day: AtomicI64,
    morning: Mutex<[u64; 4]>,
    sets: [StatsItemSet; 7],
    last_sample_ms: AtomicI64,
}

impl Default for BrokerStats {
    fn default() -> Self {
        BrokerStats {
            boot_ms: now_ms(),
            put_total: AtomicU64::new(0),
            get_total: AtomicU64::new(0),
            day: AtomicI64::new(now_ms() / 86_400_000),
            morning: Mutex::new([0; 4]),
            sets: Default::default(),
            last_sample_ms: AtomicI64::new(0),
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

    /// The item set of a stats name of [`STATS_NAMES`].
    pub fn set(&self, name: &str) -> Option<&StatsItemSet> {
        STATS_NAMES
            .iter()
            .position(|n| *n == name)
            .map(|i| &self.sets[i])
    }

    /// Count a stored send of `nums` messages and `size` bytes to `topic`
    /// (TOPIC_PUT_NUMS, TOPIC_PUT_SIZE, BROKER_PUT_NUMS under `cluster`).
    pub fn on_put(&self, cluster: &str, topic: &str, nums: u64, size: u64) {
        self.add_put(nums);
        self.sets[I_TOPIC_PUT_NUMS].add(topic, nums);
        self.sets[I_TOPIC_PUT_SIZE].add(topic, size);
        self.sets[I_BROKER_PUT_NUMS].add(cluster, nums);
    }

    /// Count a pull of `nums` messages and `size` bytes by `group` from
    /// `topic` (GROUP_GET_NUMS, GROUP_GET_SIZE by `topic@group`, BROKER_GET_NUMS).
    pub fn on_get(&self, cluster: &str, group: &str, topic: &str, nums: u64, size: u64) {
        self.add_get(nums);
        if nums == 0 {
            return;
        }
        let key = format!("{topic}@{group}");
        self.sets[I_GROUP_GET_NUMS].add(&key, nums);
        self.sets[I_GROUP_GET_SIZE].add(&key, size);
        self.sets[I_BROKER_GET_NUMS].add(cluster, nums);
    }

    /// Count a message sent back by `group` (SNDBCK_PUT_NUMS by `topic@group`).
    pub fn on_send_back(&self, group: &str, topic: &str) {
        self.add_put(1);
        self.sets[I_SNDBCK_PUT_NUMS].add(&format!("{topic}@{group}"), 1);
    }

    /// `group`'s pulls of `topic` per second over the last minute
    /// (RocketMQ's `tpsGroupGetNums`).
    pub fn tps_group_get_nums(&self, group: &str, topic: &str) -> f64 {
        self.sets[I_GROUP_GET_NUMS]
            .get(&format!("{topic}@{group}"))
            .map_or(0.0, |i| i.in_minute().tps)
    }

    /// Messages put to `topic` per second over the last minute (the
    /// `topicPutTps` of rocketmq-rust's `TopicStatsTable`).
    pub fn tps_topic_put_nums(&self, topic: &str) -> f64 {
        self.sets[I_TOPIC_PUT_NUMS]
            .get(topic)
            .map_or(0.0, |i| i.in_minute().tps)
    }

    /// Sample every item when about [`SAMPLE_EVERY_MS`] (at least 90 % of
    /// it) has passed since the last sample; the broker calls it from a 10 s
    /// ticker. Returns whether it sampled.
    pub fn sample_if_due(&self) -> bool {
        self.sample_at(now_ms())
    }

    fn sample_at(&self, now: i64) -> bool {
        let last = self.last_sample_ms.load(Ordering::Acquire);
        // A tick a little early (timer jitter) still samples.
        if now - last < SAMPLE_EVERY_MS * 9 / 10
            || self
                .last_sample_ms
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            return false;
        }
        for s in &self.sets {
            s.sample(now);
        }
        true
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
    fn set_indices_match_the_names() {
        let named = [
            (I_TOPIC_PUT_NUMS, TOPIC_PUT_NUMS),
            (I_TOPIC_PUT_SIZE, TOPIC_PUT_SIZE),
            (I_GROUP_GET_NUMS, GROUP_GET_NUMS),
            (I_GROUP_GET_SIZE, GROUP_GET_SIZE),
            (I_SNDBCK_PUT_NUMS, SNDBCK_PUT_NUMS),
            (I_BROKER_PUT_NUMS, BROKER_PUT_NUMS),
            (I_BROKER_GET_NUMS, BROKER_GET_NUMS),
        ];
        for (i, name) in named {
            assert_eq!(STATS_NAMES[i], name);
        }
    }

    #[test]
    fn day_roll_moves_mornings() {
        let s = BrokerStats::default();
        s.add_put(5);
        s.day.store(0, Ordering::Relaxed);
        s.roll_day();
        let (m, put, _) = s.snapshot();
        assert_eq!((m[1], put), (5, 5));
    }

    #[test]
    fn rates_come_from_the_samples() {
        let s = BrokerStats::default();
        s.on_put("c", "T", 3, 300);
        assert!(s.sample_at(1_000_000));
        assert!(!s.sample_at(1_005_000), "not due yet");
        s.on_put("c", "T", 7, 700);
        s.on_get("c", "g", "T", 4, 400);
        assert!(s.sample_at(1_010_000));
        // Seeded with zeros 10 s before the first sample: 10 over 20 s.
        let m = s.set(TOPIC_PUT_NUMS).unwrap().get("T").unwrap().in_minute();
        assert_eq!(m.sum, 10);
        assert!((m.tps - 0.5).abs() < 1e-9);
        assert!((m.avgpt - 5.0).abs() < 1e-9);
        let size = s.set(TOPIC_PUT_SIZE).unwrap().get("T").unwrap();
        assert_eq!(size.value(), 1000);
        // The group's item was born after the first sample: 4 over its seed's 10 s.
        assert!((s.tps_group_get_nums("g", "T") - 0.4).abs() < 1e-9);
        s.on_get("c", "g", "T", 6, 600);
        assert!(s.sample_at(1_020_000));
        assert!((s.tps_group_get_nums("g", "T") - 0.5).abs() < 1e-9);
        for i in 3..12 {
            s.sample_at(1_000_000 + i * 10_000);
        }
        let item = s.set(GROUP_GET_NUMS).unwrap().get("T@g").unwrap();
        assert_eq!(item.in_minute().sum, 0, "a quiet minute");
        // The hour ring is sampled every 10 minutes: its first sample only.
        assert_eq!(item.in_hour().sum, 4);
        assert_eq!(item.in_day().sum, 4);
        assert!(s.set("NOPE").is_none());
    }
}
