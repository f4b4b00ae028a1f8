//! What `disk` prints without `--json`.

use super::DiskResult;

/// The device's raw limits, for people.
pub(super) fn text(r: &DiskResult) -> String {
    format!(
            "disk limits of {}:\n  sequential write (1 MiB pwrite + fdatasync)  {:>9.1} MB/s\n  \
         4 KiB write + fdatasync                      {:>9.0} ops/s  p50 {:.0} µs  p99 {:.0} µs  max {:.0} µs\n  \
         memcpy into fresh mapped files               {:>9.1} MB/s\n  \
         memcpy into a pre-touched mapping            {:>9.1} MB/s",
        r.dir,
        r.seq_write_mb_per_sec,
        r.sync_4k_ops_per_sec,
        r.sync_4k_latency_us.p50,
        r.sync_4k_latency_us.p99,
        r.sync_4k_latency_us.max,
        r.memcpy_cold_mmap_mb_per_sec,
        r.memcpy_warm_mmap_mb_per_sec
    )
}
