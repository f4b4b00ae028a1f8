//! Rate limit for WARN lines caused by peers (bad frames, bad bodies, refused
//! connections): at most one line per peer address per interval, with the count of
//! lines suppressed since the last one.
//!
//! Lock-free and allocation-free: peers hash into a fixed table of [`SLOTS`] slots of
//! two atomics each. Peers sharing a slot share its budget, so a crowd of bad peers
//! logs at most [`SLOTS`] lines per interval in total.
//!
//! ```
//! use std::time::Duration;
//! use ferromq_server::warn_limit::WarnLimiter;
//!
//! static BAD_BODY: WarnLimiter = WarnLimiter::new(Duration::from_secs(10));
//! let peer: std::net::IpAddr = "10.0.0.1".parse().unwrap();
//! if let Some(suppressed) = BAD_BODY.check(peer) {
//!     eprintln!("bad body from {peer} ({suppressed} more suppressed)");
//! }
//! assert_eq!(BAD_BODY.check(peer), None); // within 10 s of the first line
//! ```

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The limiter for WARN lines about a peer's bad input (bad frames, bad bodies):
/// one line per peer per 10 s, shared by the whole server.
pub static BAD_INPUT: WarnLimiter = WarnLimiter::new(Duration::from_secs(10));

/// Slots in a [`WarnLimiter`].
pub const SLOTS: usize = 64;

struct Slot {
    /// Monotonic ms before which this slot stays quiet.
    next_ms: AtomicU64,
    /// Lines suppressed since the last one allowed.
    suppressed: AtomicU64,
}

/// At most one line per peer (slot) per interval. See the module docs.
pub struct WarnLimiter {
    interval_ms: u64,
    slots: [Slot; SLOTS],
}

impl std::fmt::Debug for WarnLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WarnLimiter")
            .field("interval_ms", &self.interval_ms)
            .finish()
    }
}

/// Milliseconds on a process-wide monotonic clock, starting at 1.
fn mono_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

impl WarnLimiter {
    /// A limiter allowing one line per peer per `interval` (usable in a `static`).
    pub const fn new(interval: Duration) -> Self {
        WarnLimiter {
            interval_ms: interval.as_millis() as u64,
            slots: [const {
                Slot {
                    next_ms: AtomicU64::new(0),
                    suppressed: AtomicU64::new(0),
                }
            }; SLOTS],
        }
    }

    /// Should a line about `peer` be logged now? `Some(n)`: yes, and `n` lines
    /// were suppressed since the last one (say so in the line); `None`: no (it is
    /// counted).
    pub fn check(&self, peer: IpAddr) -> Option<u64> {
        let h = match peer {
            IpAddr::V4(a) => u64::from(u32::from(a)),
            IpAddr::V6(a) => {
                let v = u128::from(a);
                (v as u64) ^ ((v >> 64) as u64)
            }
        };
        self.check_key(h)
    }

    /// [`WarnLimiter::check`] for any key (e.g. one fixed key for a server-wide
    /// condition).
    pub fn check_key(&self, key: u64) -> Option<u64> {
        // Fibonacci hashing: the top bits of the product pick the slot.
        let i = (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) as usize % SLOTS;
        let slot = &self.slots[i];
        let now = mono_ms();
        let next = slot.next_ms.load(Ordering::Relaxed);
        if now >= next
            && slot
                .next_ms
                .compare_exchange(
                    next,
                    now + self.interval_ms,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            return Some(slot.suppressed.swap(0, Ordering::AcqRel));
        }
        slot.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_peer_per_interval_with_the_suppressed_count() {
        let l = WarnLimiter::new(Duration::from_millis(200));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(l.check(a), Some(0));
        for _ in 0..5 {
            assert_eq!(l.check(a), None);
        }
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(l.check(a), Some(5));
        assert_eq!(l.check(a), None);
        // Many peers: at most one line per slot per interval.
        let allowed = (0..10_000u32)
            .filter(|i| l.check(IpAddr::from(i.to_be_bytes())).is_some())
            .count();
        assert!(allowed <= SLOTS, "{allowed} lines allowed");
        let v6: IpAddr = "::1".parse().unwrap();
        let _ = l.check(v6);
    }
}
