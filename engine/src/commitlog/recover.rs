//! Recovering the commitlog's write position after a restart: the walk over
//! the last files with its read-ahead and CRC thread, the damage check, and
//! cutting a torn tail.

use super::{CommitLog, CommitLogRecovery, END_FILE_MIN_BLANK_LENGTH};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::mapped_file::MappedFile;
use crate::message::{self, check_record, RecordCheck, MESSAGE_MAGIC_CODE};

/// The recovery reader's CRC pass over `f`: check the records from `*pos`
/// that lie wholly below `upto` (the part just pulled in), moving `checked`
/// (a log offset) past each good one and past a blank tail to the next file.
/// False at the first record it cannot vouch for (the walk then decides).
fn check_ahead(
    f: &MappedFile,
    pos: &mut usize,
    upto: usize,
    checked: &std::sync::atomic::AtomicU64,
) -> bool {
    use std::sync::atomic::Ordering::Release;
    let data = f.bytes(0, upto).unwrap_or(&[]);
    while *pos + 8 <= data.len() {
        let total = i32::from_be_bytes(data[*pos..*pos + 4].try_into().expect("4"));
        let magic = i32::from_be_bytes(data[*pos + 4..*pos + 8].try_into().expect("4"));
        if magic == message::BLANK_MAGIC_CODE {
            checked.store(f.file_from_offset() + f.file_size() as u64, Release);
            *pos = usize::MAX / 2;
            return true;
        }
        if magic != message::MESSAGE_MAGIC_CODE || total <= 0 {
            return false;
        }
        if *pos + total as usize > data.len() {
            // Not wholly pulled in yet: on the next step.
            return true;
        }
        match check_record(&data[*pos..], true) {
            Ok(RecordCheck::Message(h))
                if h.physical_offset as u64 == f.file_from_offset() + *pos as u64 =>
            {
                *pos += h.total_size as usize;
                checked.store(f.file_from_offset() + *pos as u64, Release);
            }
            _ => return false,
        }
    }
    true
}

/// How much the recovery read-ahead thread pulls in per call.
const READ_AHEAD_STEP: usize = 8 << 20;

/// Shared between the recovery walk and its read-ahead thread.
struct WalkProgress {
    /// Index of the file the walk is checking.
    walked: AtomicUsize,
    /// The walk ended (however it ended).
    walk_done: AtomicBool,
    /// The reader checked every body CRC of the records below this log
    /// offset; the walk skips their CRCs.
    crc_checked: AtomicU64,
}

/// Where the walk stopped: `(file index, position in it, torn)`, torn when the
/// record there is not a clean end of the log; `None` when every walked file
/// ended with a blank record.
type WalkEnd = Option<(usize, usize, bool)>;

impl CommitLog {
    /// Find the write position after a restart: walk the records of the last
    /// three files, stop at the first that is not valid, zero a torn tail and
    /// drop empty files after the end. Damage followed by valid records is an
    /// error, not a truncation.
    ///
    /// The walk starts at the third-last file, or earlier at the file holding
    /// `validate_from` (the last offset known flushed) after an unclean shutdown.
    pub fn recover(
        &mut self,
        check_crc: bool,
        max_record_len: usize,
        validate_from: Option<u64>,
        on_record: &mut dyn FnMut(&message::RecordHeader<'_>),
    ) -> Result<CommitLogRecovery> {
        let mut report = CommitLogRecovery::default();
        let file_size = self.file_size as usize;
        let files = self.queue.files();
        if files.is_empty() {
            return Ok(report);
        }
        let start_idx = self.walk_start(&files, validate_from);
        report.scanned_from = files.get(start_idx).map_or(0, |f| f.file_from_offset());
        let end = walk_with_read_ahead(
            &files,
            start_idx,
            file_size,
            check_crc,
            &mut report,
            on_record,
        );
        for f in files.iter().skip(start_idx) {
            f.advise_normal_read();
        }
        let (idx, pos, torn) = match end {
            Some(e) => e,
            None => {
                // Every scanned file ended with a blank record.
                let last = files.len() - 1;
                (last, file_size, false)
            }
        };
        let f = &files[idx];
        let end_file_from = f.file_from_offset();
        if pos < file_size {
            refuse_damage_before_valid(f, pos, file_size, max_record_len, check_crc)?;
        }
        check_nothing_after(&files[idx + 1..], f, pos, file_size)?;
        drop(files);
        self.cut_at_end(end_file_from, idx, pos, torn, max_record_len, &mut report)?;
        Ok(report)
    }

    /// Index of the first file to walk: the third-last, or earlier the file
    /// holding `validate_from`.
    fn walk_start(&self, files: &[Arc<MappedFile>], validate_from: Option<u64>) -> usize {
        let mut start_idx = files.len().saturating_sub(3);
        if let Some(from) = validate_from {
            let first = files[0].file_from_offset();
            let idx = (from.saturating_sub(first) / self.file_size) as usize;
            start_idx = start_idx.min(idx);
        }
        start_idx
    }

    /// Remove the files after the one the log ends in, and set that file's
    /// positions to the end: a torn tail is zeroed (up to one record's
    /// length). Records the new end in `report`.
    fn cut_at_end(
        &mut self,
        end_file_from: u64,
        idx: usize,
        pos: usize,
        torn: bool,
        max_record_len: usize,
        report: &mut CommitLogRecovery,
    ) -> Result<()> {
        let file_size = self.file_size as usize;
        let cut = end_file_from + self.file_size;
        let removed_before = self.queue.file_count();
        self.queue.delete_files_from(cut)?;
        report.files_removed = removed_before - self.queue.file_count();
        let files_mut = self.queue.files_mut();
        let last = files_mut
            .get_mut(idx)
            .and_then(Arc::get_mut)
            .ok_or_else(|| Error::corruption("commitlog", 0, "file shared during recovery"))?;
        if torn {
            let zero = max_record_len.min(file_size - pos);
            last.truncate_to(pos, zero)?;
            report.bytes_truncated = zero as u64;
            tracing::warn!(file = %last.path().display(), pos, "truncated a torn record at the commitlog tail");
        } else {
            last.set_positions(pos);
        }
        let max = last.file_from_offset() + pos as u64;
        self.queue.set_flushed_where(max);
        self.queue.set_committed_where(max);
        report.max_offset = max;
        Ok(())
    }
}

/// Walk the records of `files` from `start_idx` (see [`walk_records`]) while
/// a reader thread pulls the files into memory, at most two ahead of the
/// walk, so disk reads overlap with checking (the walk itself then finds its
/// pages mapped). The reader stops when the walk ends.
fn walk_with_read_ahead(
    files: &[Arc<MappedFile>],
    start_idx: usize,
    file_size: usize,
    check_crc: bool,
    report: &mut CommitLogRecovery,
    on_record: &mut dyn FnMut(&message::RecordHeader<'_>),
) -> WalkEnd {
    let mut end: WalkEnd = None;
    if let Some(f) = files.get(start_idx) {
        f.advise_sequential_read(true);
    }
    // The reader also checks body CRCs of the records it pulled in, in log
    // order from the walk's start: up to `crc_checked` (a log offset) every
    // record is known good, and the walk skips their CRCs. It stops at the
    // first record it cannot vouch for; the walk checks everything after that
    // itself.
    let progress = WalkProgress {
        walked: AtomicUsize::new(start_idx),
        walk_done: AtomicBool::new(false),
        crc_checked: AtomicU64::new(report.scanned_from),
    };
    std::thread::scope(|scope| {
        let reader = std::thread::Builder::new()
            .name("ferromq-recover-read".into())
            .spawn_scoped(scope, || {
                read_ahead(files, start_idx, file_size, check_crc, &progress)
            });
        if let Err(e) = &reader {
            tracing::debug!(error = %e, "no read-ahead thread for recovery");
        }
        // Tell the reader the walk ended however it ends (a panic included),
        // so the scope never waits on it.
        struct Done<'a>(&'a AtomicBool);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Release);
            }
        }
        let _done = Done(&progress.walk_done);
        end = walk_records(
            files, start_idx, file_size, check_crc, &progress, report, on_record,
        );
        progress.walk_done.store(true, Ordering::Release);
    });
    end
}

/// The recovery reader: pull each file from `start_idx` into memory in
/// [`READ_AHEAD_STEP`]s, at most two files ahead of the walk, and with
/// `check_crc` check the body CRCs of what it pulled in ([`check_ahead`]).
fn read_ahead(
    files: &[Arc<MappedFile>],
    start_idx: usize,
    file_size: usize,
    check_crc: bool,
    progress: &WalkProgress,
) {
    use std::sync::atomic::Ordering::Acquire;
    let mut crc_ok = true;
    for (idx, f) in files.iter().enumerate().skip(start_idx) {
        let mut crc_pos = 0usize;
        while idx > progress.walked.load(Acquire) + 2 && !progress.walk_done.load(Acquire) {
            std::thread::sleep(Duration::from_micros(200));
        }
        // In steps, so that the end of the walk stops it soon.
        let mut from = 0;
        while from < file_size && !progress.walk_done.load(Acquire) {
            let len = READ_AHEAD_STEP.min(file_size - from);
            // Queue the next step's reads before faulting this one in, so the
            // disk always has a step in flight (populating alone waits for
            // each step's reads before asking for the next); see
            // docs/perf-notes.md#commitlog-recovery-read-ahead.
            if from + len < file_size {
                f.will_need(from + len, READ_AHEAD_STEP);
            } else if let Some(n) = files.get(idx + 1) {
                n.will_need(0, READ_AHEAD_STEP);
            }
            f.populate_read(from, len);
            from += len;
            if check_crc && crc_ok {
                crc_ok = check_ahead(f, &mut crc_pos, from, &progress.crc_checked);
            }
        }
        if progress.walk_done.load(Acquire) {
            break;
        }
    }
}

/// Check the records of `files` from `start_idx` in log order, passing each
/// valid one to `on_record`, and return where the valid records end: at the
/// first record that is not valid (or whose offset field does not match its
/// position, or that leaves no room for a blank record), or at a clean end.
/// A blank record moves on to the next file.
fn walk_records(
    files: &[Arc<MappedFile>],
    start_idx: usize,
    file_size: usize,
    check_crc: bool,
    progress: &WalkProgress,
    report: &mut CommitLogRecovery,
    on_record: &mut dyn FnMut(&message::RecordHeader<'_>),
) -> WalkEnd {
    'files: for (idx, f) in files.iter().enumerate().skip(start_idx) {
        progress.walked.store(idx, Ordering::Release);
        report.files_scanned += 1;
        // Read the next file ahead while this one is checked.
        if let Some(next) = files.get(idx + 1) {
            next.advise_sequential_read(true);
        }
        let data = f.bytes(0, file_size).unwrap_or(&[]);
        let mut pos = 0usize;
        loop {
            let abs = f.file_from_offset() + pos as u64;
            let crc = check_crc && abs >= progress.crc_checked.load(Ordering::Acquire);
            match check_record(&data[pos..], crc) {
                Ok(RecordCheck::Message(h)) => {
                    let want = f.file_from_offset() + pos as u64;
                    if h.physical_offset as u64 != want {
                        return Some((idx, pos, true));
                    }
                    pos += h.total_size as usize;
                    report.bytes_scanned += h.total_size as u64;
                    on_record(&h);
                    if pos + END_FILE_MIN_BLANK_LENGTH > file_size && pos != file_size {
                        // A record must leave room for the blank record.
                        return Some((idx, pos, true));
                    }
                }
                Ok(RecordCheck::Blank) => continue 'files,
                Ok(RecordCheck::End) => return Some((idx, pos, false)),
                Err(_) => return Some((idx, pos, true)),
            }
        }
    }
    None
}

/// The walk stopped at `pos` of `f`, before its end: valid records soon
/// after the stop point mean damage (a flipped byte, a zeroed page), not a
/// torn tail, so refuse to truncate good data. Records are contiguous, so a
/// record after the damage starts within a couple of record lengths of it.
fn refuse_damage_before_valid(
    f: &MappedFile,
    pos: usize,
    file_size: usize,
    max_record_len: usize,
    check_crc: bool,
) -> Result<()> {
    let window_end = (pos + 2 * max_record_len + 64 * 1024).min(file_size);
    let data = f.bytes(0, window_end).unwrap_or(&[]);
    if let Some(found) = find_valid_record_after(data, pos + 1, f.file_from_offset(), check_crc) {
        let here = f.file_from_offset() + pos as u64;
        let crc_only = check_crc
            && matches!(check_record(&data[pos..], false),
                Ok(RecordCheck::Message(h)) if h.physical_offset as u64 == here);
        let hint = if crc_only {
            "its body fails its CRC. To start anyway set checkCRCOnRecover=false: \
             recovery then checks record structure but not body CRCs, so a damaged \
             body in the last files is not found at start; reads still check every \
             CRC, and a pull skips this record (logged once, counted, listed as a \
             damaged record): its message is lost"
        } else {
            "its header is damaged (not only its body, so checkCRCOnRecover=false, \
             which starts the store despite body CRC failures, does not help here); \
             restore the file from a replica or backup"
        };
        return Err(Error::corruption(
            f.path(),
            pos as u64,
            format!(
                "invalid record followed by a valid one at file position {found}; \
                 refusing to truncate good data: {hint}"
            ),
        ));
    }
    Ok(())
}

/// Every file after `f`, the one the log ends in (at `pos`), must be empty:
/// data there is an error, not something to drop.
fn check_nothing_after(
    later_files: &[Arc<MappedFile>],
    f: &MappedFile,
    pos: usize,
    file_size: usize,
) -> Result<()> {
    for later in later_files {
        let data = later.bytes(0, file_size).unwrap_or(&[]);
        if !matches!(check_record(data, false), Ok(RecordCheck::End)) {
            return Err(Error::corruption(
                later.path(),
                0,
                format!(
                    "data after the end of the log ({} at position {pos})",
                    f.path().display()
                ),
            ));
        }
    }
    Ok(())
}

/// Look for a valid message record at or after `from` whose physical offset
/// field matches its position.
fn find_valid_record_after(data: &[u8], from: usize, base: u64, check_crc: bool) -> Option<usize> {
    let magic = MESSAGE_MAGIC_CODE.to_be_bytes();
    let mut i = from.max(4);
    while i + 4 <= data.len() {
        let hit = data[i..].windows(4).position(|w| w == magic)?;
        let magic_at = i + hit;
        let start = magic_at - 4;
        if let Ok(RecordCheck::Message(h)) = check_record(&data[start..], check_crc) {
            if h.physical_offset as u64 == base + start as u64 {
                return Some(start);
            }
        }
        i = magic_at + 1;
    }
    None
}
