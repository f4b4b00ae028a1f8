//! How dispatch is doing: refused records, the resource error it retries,
//! and the rate limit on its log lines.

use crate::sync::LockExt;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lets a log line through at most once per interval and counts the ones
/// held back (a hostile peer or a long outage must not flood the log).
pub(crate) struct LogLimiter {
    every: Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

impl LogLimiter {
    pub fn new(every: Duration) -> Self {
        LogLimiter {
            every,
            state: Mutex::new((None, 0)),
        }
    }

    /// `Some(lines held back since the last one)` when a line may go out now.
    pub fn allow(&self) -> Option<u64> {
        let mut g = self.state.locked();
        let now = Instant::now();
        match g.0 {
            Some(t) if now.duration_since(t) < self.every => {
                g.1 += 1;
                None
            }
            _ => {
                g.0 = Some(now);
                Some(std::mem::take(&mut g.1))
            }
        }
    }
}

/// First wait after dispatch fails on a resource error; it doubles on each
/// failure up to [`RETRY_MAX`].
pub(super) const RETRY_FIRST: Duration = Duration::from_millis(10);
/// Longest wait between two tries of a failing dispatch.
pub(super) const RETRY_MAX: Duration = Duration::from_secs(1);
/// At most one log line per this interval for a refused record or a
/// retried dispatch error.
pub(super) const LOG_EVERY: Duration = Duration::from_secs(10);

/// How dispatch is doing: records refused (see [`Refusal`]), and the
/// resource error it is retrying, if any.
pub(crate) struct DispatchHealth {
    /// Records refused ([`Refusal`]: an invalid topic name, a queue id or
    /// offset out of range, or an offset jump too far past its queue's end).
    pub refused: AtomicU64,
    pub(super) refused_log: LogLimiter,
    /// Dispatch is retrying an error (fast check for [`Dispatcher::note_ok`]).
    pub(super) failing: std::sync::atomic::AtomicBool,
    /// The error being retried.
    pub error: Mutex<Option<String>>,
    /// Tries that failed, since the store opened.
    pub retries: AtomicU64,
    /// Failed tries of the current outage.
    pub(super) outage_retries: AtomicU64,
    /// The next wait between tries (ms).
    pub(super) backoff_ms: AtomicU64,
    pub(super) error_log: LogLimiter,
    /// For topics a slave learns from its log but cannot record yet.
    pub learn_log: LogLimiter,
}

impl Default for DispatchHealth {
    fn default() -> Self {
        DispatchHealth {
            refused: AtomicU64::new(0),
            refused_log: LogLimiter::new(LOG_EVERY),
            failing: std::sync::atomic::AtomicBool::new(false),
            error: Mutex::new(None),
            retries: AtomicU64::new(0),
            outage_retries: AtomicU64::new(0),
            backoff_ms: AtomicU64::new(0),
            error_log: LogLimiter::new(LOG_EVERY),
            learn_log: LogLimiter::new(LOG_EVERY),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_limiter_lets_one_line_through_per_interval() {
        let l = LogLimiter::new(Duration::from_secs(3600));
        assert_eq!(l.allow(), Some(0));
        assert_eq!(l.allow(), None);
        assert_eq!(l.allow(), None);
        let l = LogLimiter::new(Duration::ZERO);
        assert_eq!(l.allow(), Some(0));
        assert_eq!(l.allow(), Some(0));
    }
}
