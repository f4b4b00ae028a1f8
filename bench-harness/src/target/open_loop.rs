//! Open-loop pacing of the broker target's producers (`--rate`).
//!
//! A closed-loop producer sends whenever its window has room, so a slow
//! broker slows the load down and each stall is seen once per in-flight
//! request (coordinated omission). An open-loop producer instead follows a
//! [`Schedule`] of intended send times fixed before the run (constant or
//! Poisson spacing), and every message's latency — send -> ack and send ->
//! consume — counts from its intended time:
//!
//! - a send whose turn comes while the window is full waits for a slot, and
//!   that wait is in its latency; the window still bounds what is outstanding;
//! - how late each send left the client is recorded ([`Lateness`]), so a
//!   client that cannot keep up shows instead of silently lowering the load;
//! - sends whose intended time fell within the run but that never left (the
//!   window was still full at the end) are counted as unsent.
//!
//! The producer waits for its next send time on a [`PaceTimer`], a
//! `timerfd` (`CLOCK_MONOTONIC`, absolute) registered with tokio: tokio's own
//! timers tick in milliseconds, which would make every send up to 1 ms late
//! at rates above 1,000 msgs/s per producer.

use std::io;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rustix::fd::OwnedFd;
use rustix::time::{Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec};
use tokio::io::unix::AsyncFd;

use crate::target::broker::{ProducerTask, Window};
use crate::workload::{Arrivals, OpenLoop, MAX_LATENCY_NS};

/// A send that leaves the client more than this long after its intended
/// time is counted as late, ns (1 ms).
pub const LATE_NS: u64 = 1_000_000;

/// Intended send times of one producer, as offsets from the run's start, ns.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Offset of the next send, ns (fractional: constant gaps do not drift).
    next: f64,
    /// Mean gap between this producer's sends, ns.
    mean_gap: f64,
    arrivals: Arrivals,
    /// xorshift64* state (Poisson gaps).
    rng: u64,
}

impl Schedule {
    /// The schedule of producer `index` of `producers`, each send carrying
    /// `per_send` messages, for `open.rate` msgs/s over all producers.
    /// Constant arrivals stagger the producers evenly over one gap; Poisson
    /// arrivals draw each producer's gaps from its own seeded generator
    /// (the same schedule every run).
    pub fn new(open: OpenLoop, producers: usize, index: usize, per_send: u64) -> Self {
        let mean_gap = 1e9 * producers.max(1) as f64 * per_send.max(1) as f64 / open.rate;
        let mut s = Schedule {
            next: 0.0,
            mean_gap,
            arrivals: open.arrivals,
            rng: 0x9E37_79B9_7F4A_7C15 ^ (index as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9),
        };
        s.next = match open.arrivals {
            Arrivals::Constant => mean_gap * index as f64 / producers.max(1) as f64,
            Arrivals::Poisson => s.gap(),
        };
        s
    }

    /// The intended time of the next send, ns after the start.
    #[inline]
    pub fn next_ns(&self) -> u64 {
        self.next as u64
    }

    /// Move to the send after the next.
    #[inline]
    pub fn advance(&mut self) {
        self.next += self.gap();
    }

    /// Sends still to come before `until_ns`, at most `max` (the schedule
    /// moves past them).
    pub fn take_before(&mut self, until_ns: u64, max: u64) -> u64 {
        let mut n = 0;
        // Bounded by `max`.
        while n < max && self.next_ns() < until_ns {
            self.advance();
            n += 1;
        }
        n
    }

    /// The next gap, ns: the mean, or an exponential draw `-ln(u) x mean`.
    #[inline]
    fn gap(&mut self) -> f64 {
        match self.arrivals {
            Arrivals::Constant => self.mean_gap,
            Arrivals::Poisson => {
                // xorshift64*; u in (0, 1], so ln(u) is finite.
                self.rng ^= self.rng >> 12;
                self.rng ^= self.rng << 25;
                self.rng ^= self.rng >> 27;
                let x = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
                let u = ((x >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
                -u.ln() * self.mean_gap
            }
        }
    }
}

/// How late the sends left the client: every send's lateness (now minus its
/// intended time, when its frame is queued on the connection).
#[derive(Debug, Clone)]
pub struct Lateness {
    /// Lateness of every send, ns (0 recorded as 1).
    pub lateness_ns: Histogram<u64>,
    /// Sends that left.
    pub sends: u64,
    /// Sends later than [`LATE_NS`].
    pub late_sends: u64,
    /// Sends due within the run that never left.
    pub unsent: u64,
}

impl Lateness {
    /// Nothing recorded yet; `hist` is an empty latency histogram.
    pub fn new(hist: Histogram<u64>) -> Self {
        Lateness {
            lateness_ns: hist,
            sends: 0,
            late_sends: 0,
            unsent: 0,
        }
    }

    /// One send that left `late_ns` after its intended time.
    #[inline]
    pub fn record(&mut self, late_ns: u64) {
        self.lateness_ns
            .saturating_record(late_ns.clamp(1, MAX_LATENCY_NS));
        self.sends += 1;
        self.late_sends += u64::from(late_ns > LATE_NS);
    }

    /// Add another producer's figures.
    ///
    /// # Errors
    ///
    /// When the histograms cannot be merged (they never differ in bounds).
    pub fn add(&mut self, other: &Lateness) -> Result<(), hdrhistogram::errors::AdditionError> {
        self.lateness_ns.add(&other.lateness_ns)?;
        self.sends += other.sends;
        self.late_sends += other.late_sends;
        self.unsent += other.unsent;
        Ok(())
    }
}

/// A `timerfd` on `CLOCK_MONOTONIC` armed at absolute times, awaited through
/// tokio's reactor (microsecond precision, unlike tokio's millisecond timers).
pub struct PaceTimer {
    fd: AsyncFd<OwnedFd>,
    /// The time it is armed for, `CLOCK_MONOTONIC` ns.
    armed_ns: Option<u64>,
}

impl PaceTimer {
    /// A disarmed timer registered with the current tokio runtime.
    ///
    /// # Errors
    ///
    /// When the timerfd cannot be created or registered.
    #[expect(
        deprecated,
        reason = "AsyncFd::new is deprecated for types whose raw fd may change or close \
                  (tokio#8587); an OwnedFd moved into the AsyncFd is open and the same \
                  until the AsyncFd drops it, so it is sound here, and the replacement \
                  (AsyncFd::register) is `unsafe`, which the harness keeps out"
    )]
    pub fn new() -> io::Result<Self> {
        let fd = rustix::time::timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )?;
        Ok(PaceTimer {
            fd: AsyncFd::new(fd)?,
            armed_ns: None,
        })
    }

    /// Fire at `at_ns` (`CLOCK_MONOTONIC`); a syscall only when that changes.
    ///
    /// # Errors
    ///
    /// When timerfd_settime fails.
    pub fn arm(&mut self, at_ns: u64) -> io::Result<()> {
        if self.armed_ns == Some(at_ns) {
            return Ok(());
        }
        let ts = Timespec {
            tv_sec: (at_ns / 1_000_000_000) as _,
            tv_nsec: (at_ns % 1_000_000_000) as _,
        };
        let zero = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        rustix::time::timerfd_settime(
            &self.fd,
            TimerfdTimerFlags::ABSTIME,
            &Itimerspec {
                it_interval: zero,
                it_value: ts,
            },
        )?;
        self.armed_ns = Some(at_ns);
        Ok(())
    }

    /// Wait until the armed time has passed (cancel-safe: a dropped wait
    /// leaves the expiry to the next one).
    pub async fn fired(&self) {
        // Bounded: each pass waits for readiness; a spurious one is cleared.
        loop {
            let Ok(mut ready) = self.fd.readable().await else {
                return;
            };
            let mut ticks = [0u8; 8];
            match rustix::io::read(self.fd.get_ref(), &mut ticks) {
                Err(rustix::io::Errno::AGAIN) => ready.clear_ready(),
                _ => return,
            }
        }
    }

    /// The armed time was reached (its expiry read): the next `arm` re-arms.
    pub fn expired(&mut self) {
        self.armed_ns = None;
    }
}

/// One producer's open-loop state: its schedule, timer and lateness.
pub struct Pacer {
    /// Intended send times.
    pub schedule: Schedule,
    /// Wakes the producer at the next intended time.
    pub timer: PaceTimer,
    /// How late the sends left.
    pub lateness: Lateness,
    /// `CLOCK_MONOTONIC` ns of the run's start (the schedule's origin).
    pub start_mono_ns: u64,
    /// The schedule's end, ns after the start (`u64::MAX`: none).
    pub end_ns: u64,
}

impl Pacer {
    /// The schedule is done: its next send is past the end.
    #[inline]
    pub fn exhausted(&self) -> bool {
        self.schedule.next_ns() >= self.end_ns
    }

    /// The producer stops `now_ns` after the start with `frames_left` sends
    /// of its count not sent: count those due before then (and before the
    /// end) as unsent.
    pub fn stop(&mut self, now_ns: u64, frames_left: u64) {
        self.lateness.unsent += self
            .schedule
            .take_before(now_ns.min(self.end_ns), frames_left);
    }

    /// Nanoseconds from `start` to `now`.
    #[inline]
    pub fn offset_ns(start: Instant, now: Instant) -> u64 {
        now.saturating_duration_since(start).as_nanos() as u64
    }
}

/// What an open-loop run measured about its own sends.
#[derive(Debug, Clone)]
pub struct OpenLoopMeasurement {
    /// Messages per second offered.
    pub rate: f64,
    /// How the send times were spaced.
    pub arrivals: Arrivals,
    /// Lateness of the sends, all producers.
    pub lateness: Lateness,
}

/// Arm the pacer's timer for its next send when the producer is `ready`
/// for it (a free slot, the write buffer written out, not stopping).
/// Whether the send loop should wait on the timer; false for the closed loop.
///
/// # Errors
///
/// When timerfd_settime fails.
#[inline]
pub fn arm(pacer: Option<&mut Pacer>, ready: bool) -> io::Result<bool> {
    match pacer {
        Some(p) if ready => {
            p.timer.arm(p.start_mono_ns + p.schedule.next_ns())?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

impl ProducerTask {
    /// The open-loop state of this producer for `(open, producers, start)`.
    pub(super) fn pacer(
        &self,
        (open, producers, start_mono_ns): (OpenLoop, usize, u64),
    ) -> io::Result<Pacer> {
        Ok(Pacer {
            schedule: Schedule::new(
                open,
                producers,
                self.index,
                self.templates.messages_per_frame,
            ),
            timer: PaceTimer::new()?,
            lateness: Lateness::new(self.hist.clone()),
            start_mono_ns,
            end_ns: self
                .deadline
                .map_or(u64::MAX, |d| Pacer::offset_ns(self.start, d)),
        })
    }

    /// Open loop: append a request frame to `wbuf` for every send whose
    /// intended time has come, while the window has a free slot (up to
    /// 256 KiB and the frame count). Its send time (and stamp) is the
    /// intended one; how late it leaves is recorded.
    // Inlined: one step of the timed send loop.
    #[inline(always)]
    pub(super) fn fill_due(
        &self,
        p: &mut Pacer,
        win: &mut Window,
        wbuf: &mut Vec<u8>,
        sent: &mut u64,
    ) {
        let now = Pacer::offset_ns(self.start, Instant::now());
        while *sent < self.frames && !p.exhausted() {
            let intended = p.schedule.next_ns();
            if intended > now {
                break;
            }
            let Some(slot) = win.free.pop() else { break };
            let (queue, at) = self.append_frame(win, wbuf, *sent, slot);
            if self.templates.stamp {
                self.templates
                    .stamp_into(queue, &mut wbuf[at..], p.start_mono_ns + intended);
            }
            win.sent_at[slot as usize] = self.start + Duration::from_nanos(intended);
            p.lateness.record(now - intended);
            p.schedule.advance();
            *sent += 1;
            if wbuf.len() >= 256 * 1024 {
                break;
            }
        }
    }

    /// The producer stops: sends due before now (and the end) still go if
    /// the window has room (a timer a little late must not drop the last),
    /// and those that cannot are counted as unsent.
    pub(super) fn last_sends(
        &self,
        p: &mut Pacer,
        win: &mut Window,
        (wbuf, wpos): (&mut Vec<u8>, &mut usize),
        sent: &mut u64,
    ) {
        if *wpos == wbuf.len() {
            wbuf.clear();
            *wpos = 0;
        }
        self.fill_due(p, win, wbuf, sent);
        p.stop(
            Pacer::offset_ns(self.start, Instant::now()),
            self.frames - *sent,
        );
    }
}

/// Wait for the pacer's timer; with no pacer (closed loop), never.
pub async fn due(pacer: Option<&Pacer>) {
    match pacer {
        Some(p) => p.timer.fired().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(rate: f64, arrivals: Arrivals) -> OpenLoop {
        OpenLoop { rate, arrivals }
    }

    #[test]
    fn constant_schedule_is_evenly_spaced_and_staggered() {
        let mut a = Schedule::new(open(1000.0, Arrivals::Constant), 2, 0, 1);
        let mut b = Schedule::new(open(1000.0, Arrivals::Constant), 2, 1, 1);
        assert_eq!(a.next_ns(), 0);
        assert_eq!(b.next_ns(), 1_000_000);
        a.advance();
        b.advance();
        assert_eq!(a.next_ns(), 2_000_000);
        assert_eq!(b.next_ns(), 3_000_000);
        // One second: 500 sends each, 1000 msgs/s together.
        let mut a = Schedule::new(open(1000.0, Arrivals::Constant), 2, 0, 1);
        assert_eq!(a.take_before(1_000_000_000, u64::MAX), 500);
        // Batches of 4: a send every 4 ms for 1000 msgs/s alone.
        let mut c = Schedule::new(open(1000.0, Arrivals::Constant), 1, 0, 4);
        assert_eq!(c.take_before(1_000_000_000, u64::MAX), 250);
        assert_eq!(c.take_before(u64::MAX, 7), 7);
    }

    #[test]
    fn poisson_gaps_have_the_asked_mean() {
        let mut s = Schedule::new(open(10_000.0, Arrivals::Poisson), 1, 3, 1);
        let n = s.take_before(100_000_000_000, u64::MAX);
        // 100 s at 10,000/s: 1,000,000 expected, sd 1,000.
        assert!((n as f64 - 1e6).abs() < 5_000.0, "{n}");
        let mut a = Schedule::new(open(10_000.0, Arrivals::Poisson), 1, 0, 1);
        let mut b = Schedule::new(open(10_000.0, Arrivals::Poisson), 1, 1, 1);
        a.advance();
        b.advance();
        assert_ne!(a.next_ns(), b.next_ns(), "producers draw their own gaps");
    }

    #[test]
    fn lateness_counts_late_sends() {
        let mut l = Lateness::new(crate::workload::new_latency_histogram().unwrap());
        l.record(0);
        l.record(LATE_NS);
        l.record(LATE_NS + 1);
        assert_eq!((l.sends, l.late_sends), (3, 1));
        let mut m = l.clone();
        m.add(&l).unwrap();
        assert_eq!((m.sends, m.late_sends, m.lateness_ns.len()), (6, 2, 6));
    }
}
