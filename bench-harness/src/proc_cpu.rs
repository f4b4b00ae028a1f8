//! The CPU time of the broker under test, for figures such as "broker CPU
//! per consumed message", whoever started the broker.
//!
//! A broker on this machine is found by its listening TCP port: the socket
//! inode comes from `/proc/net/tcp` (or `tcp6`) of the harness's own network
//! namespace, the process from the `/proc/<pid>/fd` link that points at that
//! inode. That finds brokers the harness started, brokers started by hand and
//! a peer broker run inside the same network namespace alike. Its CPU time
//! is `utime + stime` of `/proc/<pid>/stat` (every thread, exited ones too),
//! in clock ticks: 10 ms at the usual 100 Hz, so a figure over a run of a
//! second or more is good to about 1 %.
//!
//! Where the broker is remote, or `/proc` cannot tell (another user's
//! process without permission, not Linux), the answer is `None`: a figure
//! left out, never a wrong one.

use std::net::SocketAddr;
use std::time::Duration;

/// `st` of a listening socket in `/proc/net/tcp`.
const TCP_LISTEN: &str = "0A";

/// The process listening on `addr` (`host:port`) on this machine, if one
/// can be found.
pub fn listener_pid(addr: &str) -> Option<i32> {
    let sa: SocketAddr = addr.parse().ok()?;
    if !(sa.ip().is_loopback() || sa.ip().is_unspecified() || is_local_ip(sa.ip())) {
        return None;
    }
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(table) {
            inodes.extend(listening_inodes(&text, sa.port()));
        }
    }
    if inodes.is_empty() {
        return None;
    }
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue; // Gone, or not ours to read.
        };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                if wanted.iter().any(|w| target.as_os_str() == w.as_str()) {
                    return Some(pid);
                }
            }
        }
    }
    None
}

/// Whether `ip` is one of this machine's addresses (any local interface).
fn is_local_ip(ip: std::net::IpAddr) -> bool {
    // Binding a UDP socket to it succeeds only for a local address.
    std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

/// Inodes of the sockets listening on `port` in a `/proc/net/tcp{,6}` table.
fn listening_inodes(table: &str, port: u16) -> Vec<u64> {
    let want = format!("{port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            let local_port = f.get(1)?.rsplit(':').next()?;
            (local_port == want && *f.get(3)? == TCP_LISTEN)
                .then(|| f.get(9)?.parse().ok())
                .flatten()
        })
        .collect()
}

/// The broker process listening on `addr` ([`listener_pid`]), unless that is
/// this process (the in-process null broker: its CPU is already the
/// client's).
pub fn broker_pid(addr: &str) -> Option<i32> {
    let pid = listener_pid(addr)?;
    (u32::try_from(pid).ok() != Some(std::process::id())).then_some(pid)
}

/// CPU time (user + system, all threads) process `pid` has used so far.
pub fn process_cpu(pid: i32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    cpu_of_stat(&stat, clock_ticks())
}

/// `utime + stime` (fields 14 and 15) of a `/proc/<pid>/stat` line.
fn cpu_of_stat(stat: &str, ticks_per_sec: u64) -> Option<Duration> {
    // The command name (field 2) may hold spaces and parentheses: count
    // fields from the last ')', where field 3 is the first.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    let ticks = utime + stime;
    let tps = ticks_per_sec.max(1);
    Some(
        Duration::from_secs(ticks / tps)
            + Duration::from_nanos((ticks % tps) * 1_000_000_000 / tps),
    )
}

/// Clock ticks per second of `/proc/<pid>/stat` times.
fn clock_ticks() -> u64 {
    rustix::param::clock_ticks_per_second()
}

/// A process's CPU time between two moments.
#[derive(Debug, Clone, Copy)]
pub struct CpuMeter {
    pid: i32,
    start: Duration,
}

impl CpuMeter {
    /// Start measuring the broker listening on `addr`; `None` when it cannot
    /// be found on this machine, its CPU time cannot be read, or it is this
    /// process (see [`broker_pid`]). Finding it scans `/proc`: where the
    /// caller's own CPU is being timed, find the pid first ([`broker_pid`])
    /// and start with [`CpuMeter::start`].
    pub fn of_listener(addr: &str) -> Option<CpuMeter> {
        Self::start(broker_pid(addr)?)
    }

    /// Start measuring process `pid` (one read of its `stat`); `None` when
    /// it is gone.
    pub fn start(pid: i32) -> Option<CpuMeter> {
        Some(CpuMeter {
            pid,
            start: process_cpu(pid)?,
        })
    }

    /// The process measured.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// CPU time used since the start; `None` when the process is gone.
    pub fn used(&self) -> Option<Duration> {
        Some(process_cpu(self.pid)?.saturating_sub(self.start))
    }
}

/// A process's resident memory, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProcMemory {
    /// The process measured.
    pub pid: i32,
    /// `VmRSS`: resident set, KiB (anonymous + file-backed + shared memory;
    /// for a broker, mapped commitlog pages it has touched count here).
    pub vm_rss_kib: u64,
    /// `RssAnon`: resident anonymous memory, KiB (the heap: indexes,
    /// queues, pending timers; not the mapped files).
    pub rss_anon_kib: u64,
    /// `VmHWM`: peak resident set, KiB (where the kernel gives it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_hwm_kib: Option<u64>,
}

/// The resident memory of process `pid` now; `None` when it is gone or its
/// status cannot be read (another user's process, not Linux).
pub fn process_memory(pid: i32) -> Option<ProcMemory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    memory_of_status(pid, &status)
}

/// `VmRSS`, `RssAnon` and `VmHWM` of a `/proc/<pid>/status` text.
fn memory_of_status(pid: i32, status: &str) -> Option<ProcMemory> {
    let kib = |key: &str| {
        status.lines().find_map(|l| {
            let v = l.strip_prefix(key)?.strip_prefix(':')?;
            v.split_whitespace().next()?.parse::<u64>().ok()
        })
    };
    Some(ProcMemory {
        pid,
        vm_rss_kib: kib("VmRSS")?,
        rss_anon_kib: kib("RssAnon")?,
        vm_hwm_kib: kib("VmHWM"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_gives_rss_and_anonymous_rss() {
        let status = "Name:\tferromq-broker\nVmPeak:\t 9000 kB\nVmHWM:\t  812345 kB\nVmRSS:\t  800000 kB\nRssAnon:\t  612000 kB\nRssFile:\t  188000 kB\nThreads:\t40\n";
        assert_eq!(
            memory_of_status(7, status),
            Some(ProcMemory {
                pid: 7,
                vm_rss_kib: 800_000,
                rss_anon_kib: 612_000,
                vm_hwm_kib: Some(812_345),
            })
        );
        assert_eq!(memory_of_status(7, "VmRSS:\t1 kB\n"), None, "no RssAnon");
        // This process: it has resident anonymous memory.
        if let Some(m) = process_memory(std::process::id() as i32) {
            assert!(
                m.rss_anon_kib > 0 && m.vm_rss_kib >= m.rss_anon_kib,
                "{m:?}"
            );
        }
    }

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        // pid (comm with ") x" in it) state ppid ... utime=250 stime=50
        let mut s = String::from("42 (a) b) x) S 1 42 42 0 -1 4194560 100 0 0 0 250 50");
        s.push_str(" 0 0 20 0 9 0 1000 2000 300");
        assert_eq!(cpu_of_stat(&s, 100), Some(Duration::from_secs(3)));
        assert_eq!(
            cpu_of_stat(&s, 1000),
            Some(Duration::from_millis(300)),
            "ticks are scaled by the clock rate"
        );
        assert_eq!(cpu_of_stat("42 (short) S 1", 100), None);
    }

    #[test]
    fn listening_sockets_are_found_by_port_and_state() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:2AA7 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1111 1 0000000000000000 100 0 0 10 0
   1: 0100007F:2AA7 0100007F:D2C4 01 00000000:00000000 00:00000000 00000000     0        0 2222 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:2AA8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3333 1 0000000000000000 100 0 0 10 0";
        assert_eq!(listening_inodes(table, 10919), vec![1111], "0x2AA7");
        assert_eq!(listening_inodes(table, 10920), vec![3333]);
        assert!(listening_inodes(table, 1).is_empty());
    }

    #[test]
    fn this_process_is_found_by_its_listener_and_its_cpu_grows() {
        if std::fs::metadata("/proc/net/tcp").is_err() {
            eprintln!("skipped: no /proc/net/tcp here");
            return;
        }
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        assert_eq!(listener_pid(&addr), Some(std::process::id() as i32));
        assert!(
            CpuMeter::of_listener(&addr).is_none(),
            "this process is not a broker to meter apart from the client"
        );
        let me = i32::try_from(std::process::id()).unwrap();
        assert_eq!(broker_pid(&addr), None);
        let meter = CpuMeter::start(me).unwrap();
        // Burn 100 ms of this process's CPU (its own clock says when),
        // bounded by time too.
        let cpu0 = crate::broker::process_cpu_time();
        let t0 = std::time::Instant::now();
        let mut x = 0u64;
        while crate::broker::process_cpu_time() - cpu0 < Duration::from_millis(100)
            && t0.elapsed() < Duration::from_secs(10)
        {
            for i in 0..10_000u64 {
                x = x.wrapping_mul(31).wrapping_add(i);
            }
        }
        std::hint::black_box(x);
        let used = meter.used().unwrap();
        // /proc counts in ticks (10 ms at 100 Hz).
        assert!(used >= Duration::from_millis(70), "{used:?}");
        drop(l);
        assert_eq!(listener_pid(&addr), None, "closed: nobody listens");
        assert_eq!(listener_pid("192.0.2.1:10911"), None, "not this machine");
    }
}
