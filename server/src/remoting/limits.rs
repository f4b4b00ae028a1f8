//! The per-connection bounds of the connection server and the server-wide
//! budget of queued reply bytes: what a connection's reader, request tasks and
//! writer count ([`Flow`]), what a queued reply costs ([`reply_cost`]), and
//! the idle clock ([`IdleWatch`]). See [`super::server`] for how they bound a peer.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio::time::{Interval, MissedTickBehavior};

use super::command::RemotingCommand;
use super::server::ServerConfig;

/// The per-connection bounds of a [`ServerConfig`].
#[derive(Debug, Clone)]
pub(super) struct Limits {
    pub(super) max_frame_bytes: usize,
    pub(super) max_requests: usize,
    pub(super) max_queued: usize,
    pub(super) idle: Option<Duration>,
    pub(super) drain: Duration,
    pub(super) budget: Arc<Budget>,
}

impl Limits {
    pub(super) fn new(cfg: &ServerConfig) -> Self {
        Limits {
            max_frame_bytes: cfg.max_frame_bytes,
            max_requests: cfg
                .max_requests_per_connection
                .clamp(1, (Semaphore::MAX_PERMITS - 1).min(u32::MAX as usize)),
            max_queued: cfg.max_queued_reply_bytes.max(1),
            idle: cfg.idle_timeout.filter(|d| !d.is_zero()),
            drain: cfg.drain_timeout,
            budget: Arc::new(Budget {
                used: AtomicUsize::new(0),
                max: cfg.max_queued_reply_bytes_total.max(1),
                room: Notify::new(),
            }),
        }
    }
}

/// The server-wide count of queued reply bytes
/// ([`ServerConfig::max_queued_reply_bytes_total`]).
#[derive(Debug)]
pub(super) struct Budget {
    pub(super) used: AtomicUsize,
    pub(super) max: usize,
    /// Paused readers wait here for `used` to drop below `max`.
    pub(super) room: Notify,
}

impl Budget {
    pub(super) fn release(&self, cost: usize) {
        let before = self.used.fetch_sub(cost, Ordering::AcqRel);
        if before >= self.max && before - cost < self.max {
            self.room.notify_waiters();
        }
    }

    pub(super) fn spent(&self) -> bool {
        self.used.load(Ordering::Acquire) >= self.max
    }
}

/// What the reader, the request tasks and the writer of one connection share.
#[derive(Debug)]
pub(super) struct Flow {
    /// Cost ([`reply_cost`]) of the responses queued for the writer.
    pub(super) queued: AtomicUsize,
    /// Bound on `queued`.
    pub(super) max_queued: usize,
    /// The reader waits here for `queued` to drop below the bound.
    pub(super) room: Notify,
    /// Frames written so far (for the idle check).
    pub(super) writes: AtomicU64,
    /// The writer has stopped (its socket failed).
    pub(super) writer_gone: AtomicBool,
    /// The server-wide count that `queued` is part of.
    pub(super) budget: Arc<Budget>,
}

impl Flow {
    /// Nothing queued yet on a connection bounded by `max_queued`, counting in
    /// the server's `budget`.
    pub(super) fn new(max_queued: usize, budget: Arc<Budget>) -> Self {
        Flow {
            queued: AtomicUsize::new(0),
            max_queued,
            room: Notify::new(),
            writes: AtomicU64::new(0),
            writer_gone: AtomicBool::new(false),
            budget,
        }
    }

    /// Count `cost` queued bytes (here and in the server's budget); returns
    /// whether either count was at its bound before.
    pub(super) fn charge(&self, cost: usize) -> bool {
        let own = self.queued.fetch_add(cost, Ordering::AcqRel);
        let all = self.budget.used.fetch_add(cost, Ordering::AcqRel);
        own >= self.max_queued || all >= self.budget.max
    }

    /// [`Flow::charge`] unless this connection or the server is at its bound.
    pub(super) fn try_charge(&self, cost: usize) -> bool {
        if self.charge(cost) {
            self.release(cost);
            return false;
        }
        true
    }

    /// `cost` bytes left the queue: wake a reader paused on either bound.
    pub(super) fn release(&self, cost: usize) {
        let before = self.queued.fetch_sub(cost, Ordering::AcqRel);
        if before >= self.max_queued && before - cost < self.max_queued {
            self.room.notify_waiters();
        }
        self.budget.release(cost);
    }
}

impl Drop for Flow {
    fn drop(&mut self) {
        // Frames still queued when the connection ended (a writer aborted,
        // answers finished after it) go back to the server's budget.
        let left = *self.queued.get_mut();
        if left > 0 {
            self.budget.release(left);
        }
    }
}

/// What a queued response counts against [`ServerConfig::max_queued_reply_bytes`]:
/// its body and remark plus an estimate of its header.
pub(super) fn reply_cost(c: &RemotingCommand) -> usize {
    64 + c.body.len() + c.remark.as_ref().map_or(0, String::len) + 48 * c.ext_fields.len()
}

/// Marks the writer gone (and wakes the reader) however the writer ends.
pub(super) struct WriterGone(pub(super) Arc<Flow>);

impl Drop for WriterGone {
    fn drop(&mut self) {
        self.0.writer_gone.store(true, Ordering::Release);
        self.0.room.notify_waiters();
        // The reader may be paused by the server's budget instead (rare: a
        // writer ends only when its socket fails or the connection closes).
        self.0.budget.room.notify_waiters();
    }
}

/// The idle clock of one connection: ticks every quarter of the idle time; a
/// connection that read no frame, wrote nothing and had no request in progress
/// over four ticks in a row is idle (so it closes between 1 and 1.25 idle times
/// after its last activity). One timer per connection, nothing per frame.
pub(super) struct IdleWatch {
    tick: Option<Interval>,
    quiet_ticks: u32,
    last: (u64, u64),
}

impl IdleWatch {
    pub(super) fn new(idle: Option<Duration>) -> Self {
        let tick = idle.and_then(|d| {
            let every = (d / 4).max(Duration::from_millis(1));
            // An idle time too large for the clock never expires.
            let first = tokio::time::Instant::now().checked_add(every)?;
            let mut t = tokio::time::interval_at(first, every);
            t.set_missed_tick_behavior(MissedTickBehavior::Delay);
            Some(t)
        });
        IdleWatch {
            tick,
            quiet_ticks: 0,
            last: (0, 0),
        }
    }

    pub(super) async fn tick(&mut self) {
        match &mut self.tick {
            Some(t) => {
                t.tick().await;
            }
            None => std::future::pending().await,
        }
    }

    /// After a tick: is the connection idle? `frames` read and `writes` done so
    /// far, `busy` when a request is in progress.
    pub(super) fn idle_now(&mut self, frames: u64, writes: u64, busy: bool) -> bool {
        if busy || (frames, writes) != self.last {
            self.last = (frames, writes);
            self.quiet_ticks = 0;
            return false;
        }
        self.quiet_ticks += 1;
        self.quiet_ticks >= 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(max_queued: usize, budget: &Arc<Budget>) -> Flow {
        Flow::new(max_queued, budget.clone())
    }

    #[test]
    fn oneways_stop_at_either_bound_and_a_dropped_flow_returns_its_bytes() {
        let budget = Arc::new(Budget {
            used: AtomicUsize::new(0),
            max: 1000,
            room: Notify::new(),
        });
        let a = flow(600, &budget);
        let b = flow(600, &budget);
        // Below its own bound: queued; at it: dropped.
        assert!(a.try_charge(400));
        assert!(a.try_charge(400));
        assert!(!a.try_charge(10));
        assert_eq!(a.queued.load(Ordering::Relaxed), 800);
        // The other connection is below its bound but the server's is reached.
        assert!(b.try_charge(300));
        assert!(!b.try_charge(10));
        assert!(budget.spent());
        // Answers are charged whatever the bound (the reader paused before).
        assert!(b.charge(50));
        b.release(350);
        assert_eq!(budget.used.load(Ordering::Relaxed), 800);
        // A connection that ends with frames queued gives them back.
        drop(a);
        assert_eq!(budget.used.load(Ordering::Relaxed), 0);
        drop(b);
        assert_eq!(budget.used.load(Ordering::Relaxed), 0);
    }
}
