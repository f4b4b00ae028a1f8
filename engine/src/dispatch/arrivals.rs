//! Waking readers that wait for new messages, and the embedder's arrival
//! listener.

use crate::sync::{LockExt, RwLockExt};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Callback told of new messages: `(topic, queue_id, new max offset)`.
pub type ArrivalListener = Arc<dyn Fn(&str, u32, u64) + Send + Sync>;

/// Wakes readers blocked in `wait_for_messages`.
#[derive(Default)]
pub(crate) struct Arrivals {
    generation: Mutex<u64>,
    cv: Condvar,
    waiters: AtomicUsize,
    has_listener: std::sync::atomic::AtomicBool,
    listener: RwLock<Option<ArrivalListener>>,
}

impl Arrivals {
    pub fn notify(&self, touched: &HashMap<String, HashMap<u32, u64>>) {
        if self.waiters.load(Ordering::SeqCst) > 0 {
            *self.generation.locked() += 1;
            self.cv.notify_all();
        }
        let l = self.listener.read_locked().clone();
        if let Some(l) = l {
            for (t, qs) in touched {
                for (q, max) in qs {
                    l(t, *q, *max);
                }
            }
        }
    }

    pub fn set_listener(&self, l: Option<ArrivalListener>) {
        self.has_listener.store(l.is_some(), Ordering::SeqCst);
        *self.listener.write_locked() = l;
    }

    /// True when a reader waits or a listener is registered: then puts wake the
    /// dispatcher at once; otherwise it polls every millisecond, as RocketMQ's does.
    pub fn has_interest(&self) -> bool {
        self.waiters.load(Ordering::Relaxed) > 0 || self.has_listener.load(Ordering::Relaxed)
    }

    /// Wait until `ready()` is true or the deadline passes.
    pub fn wait_until(&self, deadline: Instant, ready: impl Fn() -> bool) -> bool {
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let mut g = self.generation.locked();
        let r = loop {
            if ready() {
                break true;
            }
            let now = Instant::now();
            if now >= deadline {
                break false;
            }
            // Bounded waits also cover a notification racing with the check above.
            let step = (deadline - now).min(Duration::from_millis(100));
            g = self
                .cv
                .wait_timeout(g, step)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        };
        drop(g);
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        r
    }
}
