//! Where a producer thread's wall time went, from Linux's per-thread
//! accounting: time on a CPU, time runnable but waiting for one, faults and
//! context switches. A put rate that varies from run to run is explained by
//! these (a producer that sleeps on page locks or waits behind another thread
//! shows it here), so the store report prints them next to the rate.
//!
//! Read from `/proc/thread-self/{schedstat,stat,status}` before the first put
//! and after the last, outside the timed loop. Where the files are missing
//! (not Linux, or schedstats off) the usage is `None`, never a wrong figure.

use std::collections::BTreeMap;
use std::ops::{Add, Sub};

/// Counters of one thread (or a sum over threads), as read or as a difference.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ThreadUsage {
    /// Nanoseconds on a CPU (`schedstat` field 1).
    pub on_cpu_ns: u64,
    /// Nanoseconds runnable but waiting for a CPU (`schedstat` field 2).
    pub runqueue_wait_ns: u64,
    /// Minor page faults (`stat` field 10).
    pub minor_faults: u64,
    /// Major page faults, with I/O (`stat` field 12).
    pub major_faults: u64,
    /// Times the thread gave up its CPU to wait (`voluntary_ctxt_switches`).
    pub voluntary_switches: u64,
    /// Times it was preempted (`nonvoluntary_ctxt_switches`).
    pub involuntary_switches: u64,
}

impl ThreadUsage {
    /// The calling thread's counters now; `None` when they cannot be read.
    pub fn current() -> Option<Self> {
        let schedstat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
        let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
        let status = std::fs::read_to_string("/proc/thread-self/status").ok()?;
        Self::parse(&schedstat, &stat, &status)
    }

    /// The counters of thread `tid` of this process; `None` when it is gone
    /// or they cannot be read.
    fn of_task(tid: &str) -> Option<Self> {
        let read = |f: &str| std::fs::read_to_string(format!("/proc/self/task/{tid}/{f}")).ok();
        Self::parse(&read("schedstat")?, &read("stat")?, &read("status")?)
    }

    /// Parse the three files' contents.
    fn parse(schedstat: &str, stat: &str, status: &str) -> Option<Self> {
        let mut sched = schedstat.split_whitespace().map(str::parse::<u64>);
        let on_cpu_ns = sched.next()?.ok()?;
        let runqueue_wait_ns = sched.next()?.ok()?;
        // The command name (field 2) may hold spaces and parentheses: count
        // fields from the last ')'. Field 3 (state) is then the first one.
        let after_comm = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = after_comm.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
        let status_value = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        Some(ThreadUsage {
            on_cpu_ns,
            runqueue_wait_ns,
            minor_faults: field(10)?,
            major_faults: field(12)?,
            voluntary_switches: status_value("voluntary_ctxt_switches:")?,
            involuntary_switches: status_value("nonvoluntary_ctxt_switches:")?,
        })
    }

    /// Nanoseconds of `wall_ns` neither on a CPU nor waiting for one: asleep
    /// (page locks, I/O, mutexes, futexes). Saturates at zero.
    pub fn asleep_ns(&self, wall_ns: u64) -> u64 {
        wall_ns.saturating_sub(self.on_cpu_ns + self.runqueue_wait_ns)
    }
}

/// Counters of every thread of this process, by thread id, with its name.
#[derive(Debug, Clone, Default)]
pub struct ProcessThreads {
    threads: BTreeMap<String, (String, ThreadUsage)>,
}

impl ProcessThreads {
    /// Read every thread's counters now (threads that exit meanwhile are left out).
    pub fn current() -> Self {
        let mut threads = BTreeMap::new();
        let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
            return ProcessThreads { threads };
        };
        for entry in dir.flatten() {
            let tid = entry.file_name().to_string_lossy().into_owned();
            let name = std::fs::read_to_string(entry.path().join("comm"))
                .map(|n| n.trim_end().to_string())
                .unwrap_or_default();
            if let Some(u) = ThreadUsage::of_task(&tid) {
                threads.insert(tid, (name, u));
            }
        }
        ProcessThreads { threads }
    }

    /// What each thread name used between `earlier` and `self`, summed over
    /// the threads of that name (a thread started in between counts from zero),
    /// for the names `keep` accepts. Names that used no CPU are left out.
    pub fn since(
        &self,
        earlier: &ProcessThreads,
        keep: impl Fn(&str) -> bool,
    ) -> BTreeMap<String, ThreadUsage> {
        let mut by_name: BTreeMap<String, ThreadUsage> = BTreeMap::new();
        for (tid, (name, now)) in &self.threads {
            if !keep(name) {
                continue;
            }
            let before = earlier
                .threads
                .get(tid)
                .map(|(_, u)| *u)
                .unwrap_or_default();
            let used = *now - before;
            if used.on_cpu_ns > 0 {
                let sum = by_name.entry(name.clone()).or_default();
                *sum = *sum + used;
            }
        }
        by_name
    }
}

impl Sub for ThreadUsage {
    type Output = ThreadUsage;
    fn sub(self, o: ThreadUsage) -> ThreadUsage {
        ThreadUsage {
            on_cpu_ns: self.on_cpu_ns.saturating_sub(o.on_cpu_ns),
            runqueue_wait_ns: self.runqueue_wait_ns.saturating_sub(o.runqueue_wait_ns),
            minor_faults: self.minor_faults.saturating_sub(o.minor_faults),
            major_faults: self.major_faults.saturating_sub(o.major_faults),
            voluntary_switches: self.voluntary_switches.saturating_sub(o.voluntary_switches),
            involuntary_switches: self
                .involuntary_switches
                .saturating_sub(o.involuntary_switches),
        }
    }
}

impl Add for ThreadUsage {
    type Output = ThreadUsage;
    fn add(self, o: ThreadUsage) -> ThreadUsage {
        ThreadUsage {
            on_cpu_ns: self.on_cpu_ns + o.on_cpu_ns,
            runqueue_wait_ns: self.runqueue_wait_ns + o.runqueue_wait_ns,
            minor_faults: self.minor_faults + o.minor_faults,
            major_faults: self.major_faults + o.major_faults,
            voluntary_switches: self.voluntary_switches + o.voluntary_switches,
            involuntary_switches: self.involuntary_switches + o.involuntary_switches,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_proc_files() {
        let stat = "4242 (bench (producer) 0) R 1 2 3 4 5 6 17 0 3 0 11 12 0 0 20 0 1 0";
        let status = "Name:\tx\nvoluntary_ctxt_switches:\t7\nnonvoluntary_ctxt_switches:\t9\n";
        let u = ThreadUsage::parse("1000 250 12\n", stat, status).unwrap();
        assert_eq!(u.on_cpu_ns, 1000);
        assert_eq!(u.runqueue_wait_ns, 250);
        assert_eq!(u.minor_faults, 17);
        assert_eq!(u.major_faults, 3);
        assert_eq!(u.voluntary_switches, 7);
        assert_eq!(u.involuntary_switches, 9);
        assert_eq!(u.asleep_ns(2000), 750);
        assert_eq!(u.asleep_ns(100), 0);
        assert!(ThreadUsage::parse("x", stat, status).is_none());
        assert!(ThreadUsage::parse("1 2", "no paren", status).is_none());
    }

    #[test]
    fn the_calling_thread_uses_cpu_and_faults_in_pages() {
        let Some(before) = ThreadUsage::current() else {
            eprintln!("skipped: /proc/thread-self accounting is not available here");
            return;
        };
        // Touch fresh pages and spin a little: both counters must move.
        let mut v = vec![0u8; 8 << 20];
        for i in (0..v.len()).step_by(4096) {
            v[i] = 1;
        }
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = std::hint::black_box(x.wrapping_add(i));
        }
        let d = ThreadUsage::current().unwrap() - before;
        assert!(d.on_cpu_ns > 0, "{d:?}");
        assert!(d.minor_faults >= 1, "{d:?}");
        assert!(std::hint::black_box(v[4096]) == 1 && x > 0);
    }

    #[test]
    fn a_named_thread_is_found_with_its_cpu_time() {
        let before = ProcessThreads::current();
        let spun = std::thread::Builder::new()
            .name("usage-probe".into())
            .spawn(|| {
                let mut x = 0u64;
                for i in 0..5_000_000u64 {
                    x = std::hint::black_box(x.wrapping_add(i));
                }
                // Stay alive until read below.
                std::thread::sleep(std::time::Duration::from_millis(300));
                x
            })
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100));
        let used = ProcessThreads::current().since(&before, |n| n == "usage-probe");
        assert!(spun.join().unwrap() > 0);
        if std::fs::metadata("/proc/self/task").is_err() {
            eprintln!("skipped: /proc/self/task is not available here");
            return;
        }
        let probe = used.get("usage-probe").expect("the probe thread is listed");
        assert!(probe.on_cpu_ns > 0);
        assert_eq!(used.len(), 1, "only the names asked for: {used:?}");
    }
}
