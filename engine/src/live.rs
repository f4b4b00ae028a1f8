//! Store settings that change while the store runs ([`crate::config::LIVE_KEYS`]).
//!
//! [`crate::MessageStore::set_live`] checks a change with the loader's rules
//! ([`crate::StoreConfig::set_key`]) and publishes it here. The service threads
//! read their settings on each cycle: the commitlog and consume-queue flush
//! threads from a `LivePolicy` (atomics, no lock), the clean thread its
//! interval from an atomic and everything else from a copy of the effective
//! config taken once per pass. The put path reads none of it.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::config::StoreConfig;
use crate::flush::FlushPolicy;
use crate::sync::LockExt;

/// A flush schedule (`FlushPolicy`) that can change while its thread runs.
#[derive(Debug)]
pub(crate) struct LivePolicy {
    interval_ms: AtomicU64,
    least_pages: AtomicU32,
    thorough_ms: AtomicU64,
}

impl LivePolicy {
    pub(crate) fn new(p: FlushPolicy) -> Self {
        let l = LivePolicy {
            interval_ms: AtomicU64::new(0),
            least_pages: AtomicU32::new(0),
            thorough_ms: AtomicU64::new(0),
        };
        l.set(p);
        l
    }

    /// The schedule now.
    pub(crate) fn get(&self) -> FlushPolicy {
        FlushPolicy {
            interval: Duration::from_millis(self.interval_ms.load(Ordering::Relaxed).max(1)),
            least_pages: self.least_pages.load(Ordering::Relaxed),
            thorough_interval: Duration::from_millis(self.thorough_ms.load(Ordering::Relaxed)),
        }
    }

    /// The interval now.
    pub(crate) fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms.load(Ordering::Relaxed).max(1))
    }

    /// Change the schedule (each field is read on the thread's next cycle).
    pub(crate) fn set(&self, p: FlushPolicy) {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        self.interval_ms.store(ms(p.interval), Ordering::Relaxed);
        self.least_pages.store(p.least_pages, Ordering::Relaxed);
        self.thorough_ms
            .store(ms(p.thorough_interval), Ordering::Relaxed);
    }
}

/// The store's effective configuration (what it opened with, live changes
/// applied) and the clean service's interval.
#[derive(Debug)]
pub(crate) struct LiveSettings {
    /// Held while a change is checked and published, so changes apply in order.
    config: Mutex<StoreConfig>,
    /// `cleanResourceInterval`, ms.
    clean_interval_ms: AtomicU64,
}

impl LiveSettings {
    pub(crate) fn new(cfg: &StoreConfig) -> Self {
        LiveSettings {
            config: Mutex::new(cfg.clone()),
            clean_interval_ms: AtomicU64::new(cfg.clean_resource_interval_ms),
        }
    }

    /// A copy of the effective configuration.
    pub(crate) fn config(&self) -> StoreConfig {
        self.config.locked().clone()
    }

    /// The effective configuration, locked (a change holds this lock while it
    /// is checked and published).
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, StoreConfig> {
        self.config.locked()
    }

    /// `cleanResourceInterval` now.
    pub(crate) fn clean_interval(&self) -> Duration {
        Duration::from_millis(self.clean_interval_ms.load(Ordering::Relaxed).max(1))
    }

    /// Set `cleanResourceInterval`; true when it shrank (the clean thread
    /// should wake to start the shorter wait).
    pub(crate) fn set_clean_interval_ms(&self, ms: u64) -> bool {
        self.clean_interval_ms.swap(ms, Ordering::Relaxed) > ms
    }
}
