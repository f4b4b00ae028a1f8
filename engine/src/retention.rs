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

use crate::service::Waker;
use crate::store::{StoreInner, CQ_MIN_MANIFEST};
use crate::sync::LockExt;
use std::fmt::Debug;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
        crate::sys::now_ms()
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

/// The clean service's state (RocketMQ's `CleanCommitLogService`): the
/// disk-full flag puts check, manual deletion requests, the last pass, and
/// the deletions still hanging.
#[derive(Debug, Default)]
pub(crate) struct CleanState {
    /// The commitlog's disk is fuller than `diskSpaceWarningLevelRatio`:
    /// puts are refused until usage falls below the clean-forcibly ratio.
    pub(crate) disk_full: AtomicBool,
    /// Clean passes left that delete expired files whatever the hour.
    pub(crate) manual_delete_rounds: AtomicU32,
    /// Wakes the clean thread (a manual deletion, shutdown).
    pub(crate) waker: Waker,
    /// What the last pass did.
    pub(crate) last: Mutex<Option<CleanPassReport>>,
    /// Deletions that failed or hang, retried every `redeleteHangedFileInterval` ms.
    hanging: Mutex<Hanging>,
    /// Consume-queue files retention did not delete because the first-file
    /// manifest could not be written first: the next clean pass does.
    cq_expiry_owed: AtomicBool,
    /// Held by a clean pass (see `clean_pass`).
    pass_lock: Mutex<()>,
}

/// Deletions not finished (RocketMQ's hanged files), retried every
/// `redeleteHangedFileInterval` ms.
#[derive(Debug, Default)]
struct Hanging {
    /// Files taken out of their queues whose unlink failed, or whose mapping a
    /// reader still holds, with the time they were first deleted.
    files: Vec<(Arc<crate::mapped_file::MappedFile>, i64)>,
    /// Deleting index files below the commitlog minimum failed.
    index_retry: bool,
    /// When the next retry is due; `None` while nothing waits.
    next_retry_ms: Option<i64>,
}

impl StoreInner {
    /// The clean thread: a pass every `cleanResourceInterval` ms (read on
    /// every cycle; a live change that shortens it wakes the thread).
    pub(crate) fn run_clean(&self) {
        while !self.stopping.load(Ordering::Acquire) {
            self.clean.waker.wait(self.live.clean_interval());
            if self.stopping.load(Ordering::Acquire) {
                break;
            }
            self.clean_pass();
        }
    }

    /// One clean pass: decide the triggers from the hour, the disk usage and
    /// a manual request (updating the disk-full flag), delete expired
    /// commitlog files and then the consume-queue and index files below the
    /// new commitlog start, and retry the deletions that hang. The retention
    /// settings are the effective ones (live changes included), read once per
    /// pass.
    pub(crate) fn clean_pass(&self) -> CleanPassReport {
        // One pass at a time (the clean thread's and a manual one): a pass
        // that returns has finished what it started, manifest included.
        let _one = self.clean.pass_lock.locked();
        // No live truncation meanwhile: it cuts the files' tail, this pass
        // their head, and each checks the log's bounds first.
        let _gate = crate::sync::RwLockExt::read_locked(&self.log_gate);
        let started = Instant::now();
        let cfg = &self.live.config();
        let now = self.env.clock.now_ms();
        let hours = cfg.delete_when_hours().unwrap_or_default();
        let ratio = match self.env.disk.used_ratio(&cfg.commit_log_dir()) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read disk usage of the commitlog partition");
                None
            }
        };
        let manual = self
            .clean
            .manual_delete_rounds
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok();
        let was_full = self.clean.disk_full.load(Ordering::Acquire);
        let (triggers, full) = evaluate(
            cfg,
            &hours,
            self.env.clock.local_hour(now),
            ratio,
            manual,
            was_full,
        );
        if full != was_full {
            self.clean.disk_full.store(full, Ordering::Release);
            if full {
                tracing::error!(ratio, "disk full: puts are refused until usage falls");
            } else {
                tracing::info!(ratio, "disk usage fell: puts are accepted again");
            }
        }
        let mut rep = CleanPassReport {
            at_ms: now,
            disk_used_ratio: ratio.unwrap_or(-1.0),
            triggers,
            disk_full: full,
            ..Default::default()
        };
        if triggers.time_up || triggers.space_full || triggers.manual {
            self.delete_commit_log_files(cfg, now, triggers, &mut rep);
            let owed = self.clean.cq_expiry_owed.swap(false, Ordering::AcqRel);
            if rep.commit_log_files_deleted > 0 || owed {
                self.delete_files_below_log_start(now, &mut rep);
            }
        }
        self.redelete_hanged(cfg, now, &mut rep);
        rep.commit_log_min_offset = self.commitlog.min_offset();
        rep.millis = started.elapsed().as_millis() as u64;
        *self.clean.last.locked() = Some(rep.clone());
        rep
    }

    /// Delete commitlog files oldest first, at most `deleteFileBatchMax`,
    /// `deleteCommitLogFilesInterval` ms apart: full files that are expired
    /// (or any, when `triggers.clean_at_once`), never bytes that are not yet
    /// durable or not yet in the consume queues. A file whose unlink fails or
    /// that a reader holds waits in the hanging list.
    fn delete_commit_log_files(
        &self,
        cfg: &crate::StoreConfig,
        now: i64,
        triggers: CleanTriggers,
        rep: &mut CleanPassReport,
    ) {
        let file_size = cfg.mapped_file_size_commit_log;
        let reserved_ms = cfg.file_reserved_time_hours.saturating_mul(3_600_000) as i64;
        // Never bytes that are not yet durable or not yet in the consume queues.
        let safe_end = self
            .flusher
            .durable_offset()
            .min(self.dispatcher.dispatched_offset());
        for i in 0..cfg.delete_file_batch_max {
            if self.stopping.load(Ordering::Acquire) {
                break;
            }
            if i > 0 {
                std::thread::sleep(Duration::from_millis(
                    cfg.delete_commit_log_files_interval_ms,
                ));
            }
            let removed = self.commitlog.queue.remove_first_while(
                |f| {
                    f.is_full()
                        && f.file_from_offset() + file_size <= safe_end
                        && (triggers.clean_at_once || now >= f.last_write_ms() + reserved_ms)
                },
                1,
            );
            let Some(f) = removed.into_iter().next() else {
                break;
            };
            if let Err(e) = f.delete_file() {
                tracing::error!(error = %e, "deleting a commitlog file failed; retried later");
                rep.deletions_failed += 1;
            } else {
                tracing::info!(file = %f.path().display(), ?triggers, "deleted commitlog file");
            }
            rep.commit_log_files_deleted += 1;
            rep.commit_log_bytes_deleted += file_size;
            self.clean.hanging.locked().files.push((f, now));
        }
    }

    /// After commitlog files went (or when a pass owes it): delete the
    /// consume-queue files and index files that only index records below the
    /// new commitlog start. The first-file manifest is written first, under
    /// its lock (a flush never writes an older one after it), so that a crash
    /// after the deletions does not take them for lost files; when it cannot
    /// be written, the files stay until the next pass.
    fn delete_files_below_log_start(&self, now: i64, rep: &mut CleanPassReport) {
        let min = self.commitlog.min_offset();
        let mut last_min = self.cq_min_manifest.locked();
        let plan: Vec<_> = self
            .cqs
            .all()
            .into_iter()
            .map(|cq| {
                let keep_from = cq.first_file_offset_after_expiry(min);
                (cq, keep_from)
            })
            .collect();
        let mut mins = last_min.clone();
        for (cq, keep_from) in &plan {
            mins.entry(cq.topic().to_string())
                .or_default()
                .insert(cq.queue_id(), *keep_from);
        }
        let changed = plan.iter().any(|(cq, k)| *k != cq.first_file_offset());
        let go = !changed || *last_min == mins || self.write_manifest(CQ_MIN_MANIFEST, &mins);
        let mut h = self.clean.hanging.locked();
        if go {
            if changed {
                *last_min = mins;
            }
            for (cq, keep_from) in &plan {
                for f in cq.delete_expired(min, *keep_from) {
                    rep.consume_queue_files_deleted += 1;
                    if !f.is_deleted() {
                        rep.deletions_failed += 1;
                    }
                    h.files.push((f, now));
                }
            }
        } else {
            // Files stay until the manifest can be written (the next pass).
            self.clean.cq_expiry_owed.store(true, Ordering::Release);
            rep.deletions_failed += 1;
            for (cq, _) in &plan {
                cq.correct_min_offset(min);
            }
        }
        drop(last_min);
        if let Some(ix) = &self.index {
            match ix.delete_before(min) {
                Ok(n) => rep.index_files_deleted += n,
                Err(e) => {
                    tracing::error!(error = %e, "deleting index files failed; retried later");
                    rep.deletions_failed += 1;
                    h.index_retry = true;
                }
            }
        }
    }

    /// RocketMQ's `redeleteHangedFile`: every `redeleteHangedFileInterval` ms
    /// (counted from the last retry, or from the first failure or hang since
    /// nothing waited), retry the unlinks and index deletions that failed, and
    /// release forcibly the deleted files a reader has held for longer than
    /// `destroyMapedFileIntervalForcibly` ms. Files nobody holds any more are
    /// let go on every pass (their mapping goes with the last `Arc`).
    fn redelete_hanged(&self, cfg: &crate::StoreConfig, now: i64, rep: &mut CleanPassReport) {
        let forcibly_ms =
            i64::try_from(cfg.destroy_maped_file_interval_forcibly_ms).unwrap_or(i64::MAX);
        let redelete_ms = i64::try_from(cfg.redelete_hanged_file_interval_ms).unwrap_or(i64::MAX);
        let mut h = self.clean.hanging.locked();
        let due = h.next_retry_ms.is_some_and(|t| now >= t);
        if due {
            rep.redelete_ran = true;
            for (f, t0) in h.files.iter() {
                if !f.is_deleted() {
                    match f.delete_file() {
                        Ok(()) => {
                            tracing::info!(file = %f.path().display(), "deleted on retry");
                            rep.deletions_retried += 1;
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "retrying a deletion failed; retried later")
                        }
                    }
                }
                if f.is_deleted()
                    && !f.is_released()
                    && Arc::strong_count(f) > 1
                    && now.saturating_sub(*t0) >= forcibly_ms
                {
                    match f.release_forcibly() {
                        Ok(()) => {
                            tracing::warn!(
                                file = %f.path().display(),
                                "a reader held a deleted file past destroyMapedFileIntervalForcibly: released forcibly"
                            );
                            rep.files_released_forcibly += 1;
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "releasing a held file forcibly failed")
                        }
                    }
                }
            }
            if h.index_retry {
                if let Some(ix) = &self.index {
                    match ix.delete_before(self.commitlog.min_offset()) {
                        Ok(n) => {
                            rep.index_files_deleted += n;
                            rep.deletions_retried += n;
                            h.index_retry = false;
                        }
                        Err(e) => tracing::error!(error = %e, "retrying index deletion failed"),
                    }
                } else {
                    h.index_retry = false;
                }
            }
        }
        h.files
            .retain(|(f, _)| !f.is_deleted() || (Arc::strong_count(f) > 1 && !f.is_released()));
        rep.files_still_held = h.files.iter().filter(|(f, _)| f.is_deleted()).count();
        rep.files_hanging = h
            .files
            .iter()
            .filter(|(_, t0)| now.saturating_sub(*t0) > forcibly_ms)
            .count();
        if rep.files_hanging > 0 {
            tracing::warn!(
                files = rep.files_hanging,
                "deleted files are still held by readers (or undeletable) past destroyMapedFileIntervalForcibly"
            );
        }
        let waiting = !h.files.is_empty() || h.index_retry;
        h.next_retry_ms = match h.next_retry_ms {
            _ if !waiting => None,
            Some(t) if !due => Some(t),
            _ => Some(now.saturating_add(redelete_ms)),
        };
        rep.next_redelete_ms = h.next_retry_ms;
    }
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
