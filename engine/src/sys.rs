//! The few system calls the engine makes through `libc` outside memory mapping
//! (which lives in `mapped_file`): file locks, memory size, disk usage, local
//! time, the wall clock, thread priority and a write prefetch.
//! Each is a thin safe wrapper; the `unsafe` blocks state why they are sound.

#![allow(unsafe_code)]

use std::ffi::CString;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;

/// Try to take an exclusive `flock` on `f` without blocking. `Ok(false)` when
/// another holder has it.
pub fn try_lock_exclusive(f: &File) -> std::io::Result<bool> {
    // SAFETY: flock on a valid open descriptor owned by `f`; no memory is involved.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

/// Release a `flock` taken with [`try_lock_exclusive`].
pub fn unlock(f: &File) {
    // SAFETY: flock on a valid open descriptor owned by `f`.
    unsafe {
        libc::flock(f.as_raw_fd(), libc::LOCK_UN);
    }
}

/// Lock a buffer's pages in memory (`mlock`).
pub fn mlock(buf: &memmap2::MmapMut) -> std::io::Result<()> {
    // SAFETY: the range is exactly the live mapping `buf`; mlock reads no memory.
    let rc = unsafe { libc::mlock(buf.as_ptr().cast(), buf.len()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The soft RLIMIT_MEMLOCK in bytes (`None` when unlimited or unknown).
pub fn memlock_limit() -> Option<u64> {
    // SAFETY: an all-zero rlimit is valid; getrlimit writes into it.
    let mut r: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: a valid out-pointer for the call.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut r) };
    (rc == 0 && r.rlim_cur != libc::RLIM_INFINITY).then_some(r.rlim_cur)
}

/// Physical memory in bytes (24 GiB when unknown, as RocketMQ assumes).
pub fn total_ram_bytes() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let (pages, size) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    if pages > 0 && size > 0 {
        pages as u64 * size as u64
    } else {
        24 * 1024 * 1024 * 1024
    }
}

/// Space figures of the file system holding a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskSpace {
    /// Bytes in the file system.
    pub total_bytes: u64,
    /// Bytes an unprivileged user may still write.
    pub available_bytes: u64,
    /// Bytes in use.
    pub used_bytes: u64,
}

impl DiskSpace {
    /// Used fraction as `df` computes it: used / (used + available).
    pub fn used_ratio(&self) -> f64 {
        let denom = self.used_bytes + self.available_bytes;
        if denom == 0 {
            0.0
        } else {
            self.used_bytes as f64 / denom as f64
        }
    }
}

/// `statvfs` of the file system holding `path`.
pub fn disk_space(path: &Path) -> std::io::Result<DiskSpace> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "path has a NUL byte")
    })?;
    // SAFETY: an all-zero statvfs is a valid value of this plain C struct.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated string and `st` a valid out-pointer for the call.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let frsize = st.f_frsize as u64;
    let total = st.f_blocks as u64 * frsize;
    let free = st.f_bfree as u64 * frsize;
    let avail = st.f_bavail as u64 * frsize;
    Ok(DiskSpace {
        total_bytes: total,
        available_bytes: avail,
        used_bytes: total.saturating_sub(free),
    })
}

/// Lower the calling thread's scheduling priority by `delta` nice levels from
/// where it is (at most 19; a best effort: an error leaves it as it was).
/// Background threads nobody waits for (cleaning, consume-queue flushing,
/// commitlog flushing under ASYNC_FLUSH) run at a lower priority so that, on a
/// machine with fewer free cores than busy threads, the scheduler hands a core
/// to a producer first: at equal priority a put could wait a whole time slice
/// (4 ms at HZ=250) behind them. They also run under `SCHED_BATCH`
/// ([`batch_scheduling`]), so that waking up never preempts a producer.
pub fn lower_thread_priority(delta: i32) {
    // SAFETY: gettid, getpriority and setpriority take plain integers and touch
    // no memory of ours; errno is thread-local. On Linux PRIO_PROCESS with a
    // thread id reads or changes only that thread.
    unsafe {
        let tid = libc::gettid() as libc::id_t;
        *libc::__errno_location() = 0;
        let now = libc::getpriority(libc::PRIO_PROCESS, tid);
        if now == -1 && *libc::__errno_location() != 0 {
            return;
        }
        let _ = libc::setpriority(libc::PRIO_PROCESS, tid, (now + delta).min(19));
    }
    batch_scheduling();
}

/// Put the calling thread under `SCHED_BATCH` (a best effort: an error leaves
/// it as it was). A batch thread keeps its share of the CPU but never preempts
/// the running thread when it wakes: the dispatch thread, woken by puts, then
/// waits for a free core or the end of the producer's time slice instead of
/// taking the producer's core for a slice (up to 4 ms a time) while the other
/// core sits idle (see docs/perf-notes.md#batch-scheduling).
pub fn batch_scheduling() {
    // SAFETY: sched_setscheduler reads the param struct we pass and touches no
    // other memory; on Linux a thread id of 0 means the calling thread.
    unsafe {
        let param = libc::sched_param { sched_priority: 0 };
        let _ = libc::sched_setscheduler(0, libc::SCHED_BATCH, &param);
    }
}

/// The local hour (0-23) of a time in ms since the epoch.
pub fn local_hour(ms: i64) -> u8 {
    let t: libc::time_t = (ms / 1000) as libc::time_t;
    // SAFETY: an all-zero tm is a valid value of this plain C struct.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call; localtime_r is thread-safe.
    let r = unsafe { libc::localtime_r(&t, &mut tm) };
    if r.is_null() {
        return ((ms / 3_600_000) % 24) as u8;
    }
    tm.tm_hour.clamp(0, 23) as u8
}

/// Milliseconds since the Unix epoch from `CLOCK_REALTIME`; `None` if the
/// call fails.
#[inline]
pub fn realtime_ms() -> Option<i64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec that outlives the call.
    if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) } != 0 {
        return None;
    }
    // The casts are no-ops where `time_t` and `c_long` are 64 bits.
    #[allow(clippy::unnecessary_cast)]
    Some(ts.tv_sec as i64 * 1000 + ts.tv_nsec as i64 / 1_000_000)
}

/// Milliseconds since the Unix epoch.
#[inline]
pub fn now_ms() -> i64 {
    // Every put reads it under the put lock: `clock_gettime` straight (a vDSO
    // call), without `SystemTime`'s `Duration` and `Result` on top.
    // CLOCK_REALTIME cannot fail on Linux; 0 if it ever did.
    realtime_ms().unwrap_or(0)
}

/// Ask the CPU to bring the cache line at `p` in for writing (PREFETCHW: in
/// exclusive state, so the store that follows does not wait for other cores to
/// give the line up). A no-op off x86-64, and on x86-64 CPUs without the
/// instruction (they execute it as a NOP). Safe for any address: a prefetch
/// never faults and changes no memory; callers pass addresses inside a mapping
/// they are about to write, or the hint is wasted.
#[inline(always)]
pub fn prefetch_write(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHW neither faults nor writes, whatever the address; it
    // reads no Rust-visible memory and leaves the stack and flags alone.
    unsafe {
        core::arch::asm!("prefetchw [{0}]", in(reg) p, options(nostack, preserves_flags, readonly));
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Give the allocator's free pages back to the OS (glibc `malloc_trim(0)`),
/// e.g. after many connections with held requests have gone; a no-op with
/// other C libraries. Returns whether anything was released.
pub fn release_free_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointers; it only walks glibc's own arenas
    // under their locks.
    unsafe {
        libc::malloc_trim(0) == 1
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_space_of_temp_dir() {
        let d = disk_space(&std::env::temp_dir()).unwrap();
        assert!(d.total_bytes > 0);
        assert!((0.0..=1.0).contains(&d.used_ratio()));
    }

    #[test]
    fn hours_and_names() {
        let h = local_hour(now_ms());
        assert!(h < 24);
    }

    #[test]
    fn lock_is_exclusive_across_descriptors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lock");
        let a = File::create(&p).unwrap();
        let b = File::open(&p).unwrap();
        assert!(try_lock_exclusive(&a).unwrap());
        assert!(!try_lock_exclusive(&b).unwrap());
        unlock(&a);
        assert!(try_lock_exclusive(&b).unwrap());
    }
}

/// The descriptor limits before and after [`raise_nofile_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NofileLimits {
    /// Soft limit found at start.
    pub soft_before: u64,
    /// Hard limit (the ceiling an unprivileged process may raise to).
    pub hard: u64,
    /// Soft limit now.
    pub soft_now: u64,
}

/// The current `RLIMIT_NOFILE` as (soft, hard); `RLIM_INFINITY` reads as
/// `u64::MAX`. Servers size their default connection cap from the soft limit
/// (after [`raise_nofile_limit`]).
///
/// # Errors
/// `getrlimit` failed.
pub fn nofile_limits() -> std::io::Result<(u64, u64)> {
    // SAFETY: an all-zero rlimit is valid; getrlimit writes into it.
    let mut r: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: a valid out-pointer for the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((r.rlim_cur as u64, r.rlim_max as u64))
}

/// Raise the soft `RLIMIT_NOFILE` to the hard limit, as a server that keeps
/// one descriptor per connection and per store file should (the usual soft
/// limit of 1024 is reached by 1,000 idle connections). Servers call it once
/// at start and log the result.
///
/// # Errors
/// `getrlimit` or `setrlimit` failed (the limits are unchanged).
pub fn raise_nofile_limit() -> std::io::Result<NofileLimits> {
    // SAFETY: an all-zero rlimit is valid; getrlimit writes into it.
    let mut r: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: a valid out-pointer for the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let before = r.rlim_cur;
    if r.rlim_cur < r.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: r.rlim_max,
            rlim_max: r.rlim_max,
        };
        // SAFETY: a valid pointer to an initialised rlimit; setrlimit only reads it.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        r = raised;
    }
    Ok(NofileLimits {
        soft_before: before as u64,
        hard: r.rlim_max as u64,
        soft_now: r.rlim_cur as u64,
    })
}
