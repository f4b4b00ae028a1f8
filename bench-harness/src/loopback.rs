//! The loopback round trip: what one request and its answer cost on
//! 127.0.0.1 before any broker work, measured in the same run as a broker
//! sweep so that replication's added latency can be read against it (issue
//! #8's target: SYNC_MASTER may add at most two round trips to p99).
//!
//! One TCP connection with `TCP_NODELAY` on both ends, an echo thread, and a
//! client that writes `bytes` and reads them back `round_trips` times (or
//! until the time cap), one HDR-histogram sample per round trip.
//!
//! Back to back ([`measure`]) both threads stay hot; paced
//! ([`measure_paced`]) the client sleeps until each round trip's intended
//! time, as an open-loop workload's sends do, so the echo thread is woken
//! from sleep every time and the client's own wake-up counts: the floor of
//! a send -> consume latency at that rate on this machine (issue 19).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use crate::error::{BenchError, Result};

/// Round-trip figures, microseconds.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LoopbackRtt {
    /// Round trips measured.
    pub round_trips: u64,
    /// Bytes each way per round trip.
    pub bytes: usize,
    /// Median, µs.
    pub p50_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// Largest, µs.
    pub max_us: f64,
    /// Mean, µs.
    pub mean_us: f64,
    /// Round trips per second when paced ([`measure_paced`]); latency then
    /// counts from each round trip's intended start. `None`: back to back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paced_rate: Option<f64>,
}

/// Measure `round_trips` ping-pongs of `bytes` over loopback TCP, stopping
/// early at `cap`. The first 100 round trips warm up and are not counted.
///
/// # Errors
///
/// When the socket cannot be set up or the echo fails.
pub fn measure(round_trips: u64, bytes: usize, cap: Duration) -> Result<LoopbackRtt> {
    round_trip_loop(round_trips, bytes, cap, None)
}

/// Measure `round_trips` ping-pongs of `bytes` over loopback TCP at `rate`
/// per second: round trip `i` is due at `start + i / rate`, the client
/// sleeps until then (unless it is already late) and its latency counts from
/// that due time, so a late wake-up or a slow echo counts. Stops early at
/// `cap`. The first 100 round trips warm up and are not counted.
///
/// # Errors
///
/// When `rate` is not positive and finite, the socket cannot be set up or
/// the echo fails.
pub fn measure_paced(
    rate: f64,
    round_trips: u64,
    bytes: usize,
    cap: Duration,
) -> Result<LoopbackRtt> {
    if !(rate.is_finite() && rate > 0.0) {
        return Err(BenchError::new(format!(
            "a paced loopback needs a positive rate, not {rate}"
        )));
    }
    round_trip_loop(round_trips, bytes, cap, Some(rate))
}

/// The loop of [`measure`] (`rate` `None`) and [`measure_paced`].
fn round_trip_loop(
    round_trips: u64,
    bytes: usize,
    cap: Duration,
    rate: Option<f64>,
) -> Result<LoopbackRtt> {
    let io = |what: &str, e: std::io::Error| BenchError::io(format!("loopback {what}"), e);
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| io("bind", e))?;
    let addr = listener.local_addr().map_err(|e| io("address", e))?;
    let echo = std::thread::Builder::new()
        .name("bench-echo".into())
        .spawn(move || -> std::io::Result<()> {
            let (mut s, _) = listener.accept()?;
            s.set_nodelay(true)?;
            let mut buf = vec![0u8; bytes.max(1)];
            loop {
                match s.read_exact(&mut buf) {
                    Ok(()) => s.write_all(&buf)?,
                    // The client hung up: done.
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                    Err(e) => return Err(e),
                }
            }
        })
        .map_err(|e| io("echo thread", e))?;
    let mut c = TcpStream::connect(addr).map_err(|e| io("connect", e))?;
    c.set_nodelay(true).map_err(|e| io("nodelay", e))?;
    c.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| io("timeout", e))?;
    let out = vec![0x5Au8; bytes.max(1)];
    let mut back = vec![0u8; bytes.max(1)];
    let mut hist = crate::workload::new_latency_histogram()?;
    let start = Instant::now();
    let deadline = start + cap;
    let gap = rate.map(|r| Duration::from_secs_f64(1.0 / r));
    const WARMUP: u64 = 100;
    for i in 0..round_trips + WARMUP {
        let t0 = match gap {
            None => Instant::now(),
            Some(gap) => {
                let due = start + gap.saturating_mul(u32::try_from(i).unwrap_or(u32::MAX));
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                due
            }
        };
        c.write_all(&out).map_err(|e| io("write", e))?;
        c.read_exact(&mut back).map_err(|e| io("read", e))?;
        if i >= WARMUP {
            hist.saturating_record(t0.elapsed().as_nanos().max(1) as u64);
        }
        if t0 >= deadline {
            break;
        }
    }
    drop(c);
    match echo.join() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(io("echo", e)),
        Err(_) => return Err(BenchError::new("the loopback echo thread panicked")),
    }
    let us = |ns: u64| ns as f64 / 1000.0;
    Ok(LoopbackRtt {
        round_trips: hist.len(),
        bytes,
        p50_us: us(hist.value_at_quantile(0.50)),
        p99_us: us(hist.value_at_quantile(0.99)),
        max_us: us(hist.max()),
        mean_us: hist.mean() / 1000.0,
        paced_rate: rate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_round_trips_in_order() {
        let r = measure(500, 64, Duration::from_secs(5)).unwrap();
        assert!(r.round_trips > 0 && r.round_trips <= 500);
        assert!(r.p50_us > 0.0);
        assert!(r.p50_us <= r.p99_us && r.p99_us <= r.max_us);
        assert_eq!(r.paced_rate, None);
    }

    #[test]
    fn paced_round_trips_keep_their_schedule() {
        // 300 round trips (100 warm-up) at 1,000/s take about 0.3 s: not
        // much less (each waits for its due time), and well under the cap.
        let t = Instant::now();
        let r = measure_paced(1000.0, 200, 64, Duration::from_secs(5)).unwrap();
        let took = t.elapsed();
        assert!(took >= Duration::from_millis(290), "{took:?}");
        assert!(r.round_trips > 0 && r.round_trips <= 200);
        assert_eq!(r.paced_rate, Some(1000.0));
        assert!(r.p50_us > 0.0 && r.p50_us <= r.p99_us && r.p99_us <= r.max_us);
        assert!(measure_paced(0.0, 10, 64, Duration::from_secs(1)).is_err());
        assert!(measure_paced(f64::NAN, 10, 64, Duration::from_secs(1)).is_err());
    }
}
