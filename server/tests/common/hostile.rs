//! Helpers for tests of hostile and unlucky clients: binaries that can be swapped
//! for another build (to show a test failing against old code), a process's RSS,
//! a pipelining client that never reads, latency percentiles.
//!
//! `FERROMQ_TEST_BROKER_BIN` / `FERROMQ_TEST_NAMESRV_BIN` replace the binaries
//! under test (e.g. `/work/main/target/debug/ferromq-broker`).

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{port_of, spawn_to, Proc};

fn bin(var: &str, default: &str) -> String {
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

/// Start a broker with `props`; its log (stderr, at `warn`) goes to `log`.
pub fn start_broker_logged(dir: &Path, props: &str, log: &Path) -> (Proc, u16) {
    super::start_broker_logged_at(dir, props, log, "warn")
}

/// Start a name server with `extra` properties; its log (at `warn`) goes to `log`.
pub fn start_namesrv_with(dir: &Path, extra: &str, log: &Path) -> (Proc, u16) {
    std::fs::create_dir_all(dir).unwrap();
    let cfg = dir.join("namesrv.properties");
    std::fs::write(
        &cfg,
        format!("listenPort=0\nbindAddress=127.0.0.1\n{extra}"),
    )
    .unwrap();
    let mut cmd = Command::new(bin(
        "FERROMQ_TEST_NAMESRV_BIN",
        env!("CARGO_BIN_EXE_ferromq-namesrv"),
    ));
    cmd.arg("-c").arg(&cfg);
    let f = std::fs::File::create(log).unwrap();
    let mut p = spawn_to("namesrv", cmd, Stdio::from(f), "warn");
    let line = p.wait_line("listening on", Duration::from_secs(20));
    (p, port_of(&line))
}

/// Resident set size of process `pid` in bytes (`VmRSS` of /proc/<pid>/status).
pub fn rss_bytes(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Samples a process's RSS every 50 ms and remembers the peak; `over` turns
/// true once the peak passes `limit` (so a test can stop early).
pub struct RssWatch {
    pub peak: Arc<AtomicU64>,
    pub over: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl RssWatch {
    pub fn start(pid: u32, limit: u64) -> RssWatch {
        let peak = Arc::new(AtomicU64::new(rss_bytes(pid)));
        let over = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, o, s) = (peak.clone(), over.clone(), stop.clone());
        let handle = std::thread::spawn(move || {
            // Bounded: at most 10 minutes of samples even if never stopped.
            for _ in 0..12_000 {
                if s.load(Ordering::Acquire) {
                    break;
                }
                let r = rss_bytes(pid);
                p.fetch_max(r, Ordering::AcqRel);
                if r > limit {
                    o.store(true, Ordering::Release);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        RssWatch {
            peak,
            over,
            stop,
            handle: Some(handle),
        }
    }

    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::Acquire)
    }

    pub fn is_over(&self) -> bool {
        self.over.load(Ordering::Acquire)
    }
}

impl Drop for RssWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// A client that writes pre-encoded frames as fast as the server takes them and
/// never reads a reply. Writing stops when all are sent, `deadline` passes, or
/// `stop` turns true; the result is the number of bytes the server accepted.
pub struct Pipeliner {
    pub stream: TcpStream,
    pub sent: Arc<AtomicU64>,
    handle: Option<JoinHandle<u64>>,
}

impl Pipeliner {
    pub fn start(port: u16, frames: Vec<u8>, deadline: Duration, stop: Arc<AtomicBool>) -> Self {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_nodelay(true).unwrap();
        // Short write timeouts so a stalled write notices the deadline.
        stream
            .set_write_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut w = stream.try_clone().unwrap();
        let sent = Arc::new(AtomicU64::new(0));
        let s2 = sent.clone();
        let handle = std::thread::spawn(move || {
            let end = Instant::now() + deadline;
            let mut at = 0usize;
            while at < frames.len() && Instant::now() < end && !stop.load(Ordering::Acquire) {
                let upto = (at + 64 * 1024).min(frames.len());
                match w.write(&frames[at..upto]) {
                    Ok(0) => break,
                    Ok(n) => {
                        at += n;
                        s2.store(at as u64, Ordering::Release);
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => break,
                }
            }
            let _ = w.flush();
            at as u64
        });
        Pipeliner {
            stream,
            sent,
            handle: Some(handle),
        }
    }

    /// Wait for the writer to finish (it is bounded by its deadline).
    pub fn join(&mut self) -> u64 {
        self.handle
            .take()
            .map_or(0, |h| h.join().expect("pipeliner thread"))
    }

    /// Close the connection without reading anything.
    pub fn disconnect(mut self) -> u64 {
        let _ = self.stream.shutdown(Shutdown::Both);
        self.join()
    }
}

/// The `p`th percentile (0..=100) of `samples` (sorted here).
pub fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort();
    let i = ((samples.len() - 1) as f64 * p / 100.0).round() as usize;
    samples[i]
}

/// Megabytes, for messages.
pub fn mb(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}
