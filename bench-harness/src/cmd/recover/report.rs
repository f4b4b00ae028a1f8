//! What `recover` prints without `--json`.

use super::RecoverResult;

/// The figures of a recovery measurement, for people.
pub(super) fn text(r: &RecoverResult) -> String {
    format!(
        "recover ({} variant, {} cache): {} MB in {} files of {} B messages\n  \
         both rates over the {} MB recovery walked (log offset {} to the end)\n  \
         reopen     {:>8.3} s  {:>9.1} MB/s  (scanned {} B, re-dispatched {} records from {})\n  \
         read+crc32 {:>8.3} s  {:>9.1} MB/s\n  ratio {:.2} (target >= 0.8)",
        r.variant,
        r.cache,
        r.commitlog_bytes / 1_000_000,
        r.commitlog_files,
        r.size_bytes,
        r.measured_bytes / 1_000_000,
        r.measured_from,
        r.recover_seconds,
        r.recover_mb_per_sec,
        r.bytes_scanned,
        r.records_redispatched,
        r.redispatched_from,
        r.read_crc_seconds,
        r.read_crc_mb_per_sec,
        r.ratio
    )
}
