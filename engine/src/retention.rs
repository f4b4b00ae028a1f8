//! Retention: timed deletion at `deleteWhen`, the disk-usage guard, forced
//! deletion, and write rejection on a full disk.
//!
//! A clean pass deletes commitlog files oldest first when one of these holds:
//! the local hour is listed in `deleteWhen`; the commitlog's partition is fuller
//! than `diskMaxUsedSpaceRatio`; a manual deletion was asked for. A file goes when
//! it is older than `fileReservedTime` hours since its last write, or at once
//! when the partition is fuller than `diskMaxUsedSpaceRatio` or the
//! clean-forcibly ratio (with `cleanFileForciblyEnable`). Never the file being
//! written, never bytes not yet flushed or dispatched, never a hole (the pass
//! stops at the first file it must keep), at most `deleteFileBatchMax` files per
//! pass, `deleteCommitLogFilesInterval` ms apart.
//!
//! Above `diskSpaceWarningLevelRatio` the store refuses puts ([`crate::Error::DiskFull`])
//! until usage falls below the clean-forcibly ratio again.
//!
//! A deleted file is unlinked at once; its mapping is released when the last
//! reader drops its bytes (readers never see freed memory). A deletion that
//! failed (commitlog, consume queue or index file) or still hangs on a reader is
//! retried every `redeleteHangedFileInterval` ms; at such a retry, a file held
//! for longer than `destroyMapedFileIntervalForcibly` ms is released forcibly:
//! its pages become zeros in place and its disk blocks are freed, so the late
//! reader reads zeros (a record that fails its checks), never freed memory.
//!
//! Time and disk usage come through [`Clock`] and [`DiskUsage`], so tests can move
//! the clock to 04:00 or report a 90 % full disk.

use std::fmt::Debug;
use std::path::Path;
use std::sync::Arc;

/// Where the clean service reads the time.
pub trait Clock: Send + Sync + Debug {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
    /// Local hour (0-23) at `now_ms`.
    fn local_hour(&self, now_ms: i64) -> u8;
}

/// The system clock and time zone.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        crate::message::now_ms()
    }
    fn local_hour(&self, now_ms: i64) -> u8 {
        crate::sys::local_hour(now_ms)
    }
}

/// Where the clean service reads disk usage.
pub trait DiskUsage: Send + Sync + Debug {
    /// Used fraction (0.0 to 1.0) of the file system holding `path`.
    fn used_ratio(&self, path: &Path) -> std::io::Result<f64>;
}

/// `statvfs` of the real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct StatvfsDiskUsage;

impl DiskUsage for StatvfsDiskUsage {
    fn used_ratio(&self, path: &Path) -> std::io::Result<f64> {
        crate::sys::disk_space(path).map(|d| d.used_ratio())
    }
}

/// The environment a store runs in: its clock and its view of disk usage.
#[derive(Debug, Clone)]
pub struct StoreEnv {
    /// Time source.
    pub clock: Arc<dyn Clock>,
    /// Disk usage source.
    pub disk: Arc<dyn DiskUsage>,
}

impl Default for StoreEnv {
    fn default() -> Self {
        StoreEnv {
            clock: Arc::new(SystemClock),
            disk: Arc::new(StatvfsDiskUsage),
        }
    }
}

/// Why a clean pass deleted (or could have deleted) files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanTriggers {
    /// The local hour is in `deleteWhen`.
    pub time_up: bool,
    /// The partition is fuller than `diskMaxUsedSpaceRatio`.
    pub space_full: bool,
    /// A manual deletion is in progress.
    pub manual: bool,
    /// Files not yet expired may go too.
    pub clean_at_once: bool,
}

/// What one clean pass did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CleanPassReport {
    /// When the pass ran (ms since the epoch, from the store's clock).
    pub at_ms: i64,
    /// Used fraction of the commitlog's partition (-1 when unreadable).
    pub disk_used_ratio: f64,
    /// Why it ran.
    pub triggers: CleanTriggers,
    /// Commitlog files deleted.
    pub commit_log_files_deleted: usize,
    /// Bytes of commitlog files deleted.
    pub commit_log_bytes_deleted: u64,
    /// Consume-queue files deleted.
    pub consume_queue_files_deleted: usize,
    /// Index files deleted.
    pub index_files_deleted: usize,
    /// First commitlog offset still stored after the pass.
    pub commit_log_min_offset: u64,
    /// Puts are refused because the disk is too full.
    pub disk_full: bool,
    /// Deleted files still mapped because a reader holds them.
    pub files_still_held: usize,
    /// Files held (or failing to unlink) longer than `destroyMapedFileIntervalForcibly`
    /// and not yet released.
    pub files_hanging: usize,
    /// Unlinks (commitlog, consume queue, index) that failed in this pass; each is
    /// retried every `redeleteHangedFileInterval` ms.
    pub deletions_failed: usize,
    /// This pass was a retry tick (`redeleteHangedFileInterval` had passed).
    pub redelete_ran: bool,
    /// Failed deletions that succeeded on this pass's retry.
    pub deletions_retried: usize,
    /// Held files released forcibly in this pass: their pages replaced by
    /// zeros and their disk blocks freed.
    pub files_released_forcibly: usize,
    /// When the next retry is due (ms since the epoch), if anything waits.
    pub next_redelete_ms: Option<i64>,
    /// Wall time of the pass, ms.
    pub millis: u64,
}

/// Retention figures for [`crate::MessageStore::retention_stats`].
#[derive(Debug, Clone, PartialEq)]
pub struct RetentionStats {
    /// Used fraction of the commitlog's partition now (-1 when unreadable).
    pub disk_used_ratio: f64,
    /// `diskMaxUsedSpaceRatio` as a fraction.
    pub disk_max_used_space_ratio: f64,
    /// Clean-forcibly ratio as a fraction.
    pub clean_forcibly_ratio: f64,
    /// Warning (refuse puts) ratio as a fraction.
    pub warning_ratio: f64,
    /// Puts are refused because the disk is too full.
    pub disk_full: bool,
    /// First commitlog offset stored.
    pub commit_log_min_offset: u64,
    /// End of the commitlog.
    pub commit_log_max_offset: u64,
    /// Commitlog files.
    pub commit_log_files: usize,
    /// The last pass, if one ran.
    pub last_pass: Option<CleanPassReport>,
}

/// Decide the triggers and the disk-full flag from the usage ratio.
/// Returns `(triggers, disk_full)` where `disk_full` is `Some(new)` when it changes.
pub(crate) fn evaluate(
    cfg: &crate::StoreConfig,
    hours: &[u8],
    hour_now: u8,
    ratio: Option<f64>,
    manual: bool,
    disk_full_now: bool,
) -> (CleanTriggers, bool) {
    let max_ratio = cfg.disk_max_used_space_ratio.clamp(10, 95) as f64 / 100.0;
    let warning = cfg.disk_space_warning_level_ratio as f64 / 100.0;
    let forcibly = cfg.disk_space_clean_forcibly_ratio as f64 / 100.0;
    let mut t = CleanTriggers {
        time_up: hours.contains(&hour_now),
        manual,
        ..Default::default()
    };
    let mut disk_full = disk_full_now;
    if let Some(r) = ratio {
        if r > warning {
            disk_full = true;
        } else if r < forcibly {
            disk_full = false;
        }
        t.space_full = r > max_ratio || r > forcibly;
        t.clean_at_once = cfg.clean_file_forcibly_enable && t.space_full;
    }
    (t, disk_full)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds() {
        let cfg = crate::StoreConfig::new("/tmp/x");
        let hours = [4u8];
        let (t, full) = evaluate(&cfg, &hours, 4, Some(0.5), false, false);
        assert!(t.time_up && !t.space_full && !t.clean_at_once && !full);
        let (t, full) = evaluate(&cfg, &hours, 3, Some(0.80), false, false);
        assert!(
            !t.time_up && t.space_full && t.clean_at_once && !full,
            "above diskMaxUsedSpaceRatio 75"
        );
        let (_, full) = evaluate(&cfg, &hours, 3, Some(0.91), false, false);
        assert!(full, "above the 90% warning level puts stop");
        let (_, full) = evaluate(&cfg, &hours, 3, Some(0.87), false, true);
        assert!(full, "stays full until below the clean-forcibly ratio");
        let (_, full) = evaluate(&cfg, &hours, 3, Some(0.84), false, true);
        assert!(!full, "clears below 85%");
        let (t, full) = evaluate(&cfg, &hours, 3, None, true, true);
        assert!(
            t.manual && !t.space_full && full,
            "unreadable usage changes nothing"
        );
    }
}
