//! One consume queue: the index of a (topic, queueId) into the commitlog.
//!
//! A unit is 20 bytes, big-endian: `[commitlog offset i64][size i32][tag code i64]`.
//! Queue offset `i` lives at byte `i * 20`. A blank unit `(0, i32::MAX, 0)` fills
//! positions before the first real unit of a queue that starts at a non-zero offset.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::mapped_file::MappedFile;
use crate::mapped_file_queue::MappedFileQueue;

pub(crate) mod table;
pub(crate) use table::CqTable;

/// Bytes per unit.
pub const CQ_UNIT_SIZE: usize = 20;
const BLANK_SIZE: i32 = i32::MAX;

/// One decoded unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CqUnit {
    /// Commitlog offset of the record.
    pub commit_log_offset: u64,
    /// Record size.
    pub size: u32,
    /// Tag hash code (or delivery time for scheduled messages).
    pub tags_code: i64,
}

impl CqUnit {
    /// Decode a unit; `None` for a blank or invalid unit.
    pub fn decode(b: &[u8]) -> Option<CqUnit> {
        let off = i64::from_be_bytes(b.get(0..8)?.try_into().ok()?);
        let size = i32::from_be_bytes(b.get(8..12)?.try_into().ok()?);
        let tags = i64::from_be_bytes(b.get(12..20)?.try_into().ok()?);
        if off < 0 || size <= 0 || size == BLANK_SIZE {
            return None;
        }
        Some(CqUnit {
            commit_log_offset: off as u64,
            size: size as u32,
            tags_code: tags,
        })
    }

    fn encode(&self) -> [u8; CQ_UNIT_SIZE] {
        let mut b = [0u8; CQ_UNIT_SIZE];
        b[..8].copy_from_slice(&(self.commit_log_offset as i64).to_be_bytes());
        b[8..12].copy_from_slice(&(self.size as i32).to_be_bytes());
        b[12..].copy_from_slice(&self.tags_code.to_be_bytes());
        b
    }
}

/// Do all units of `f` point below `commit_log_min` (retention may delete it)?
fn expired(f: &MappedFile, commit_log_min: u64) -> bool {
    let w = f.wrote_position();
    w >= CQ_UNIT_SIZE
        && f.bytes(w - CQ_UNIT_SIZE, CQ_UNIT_SIZE)
            .and_then(CqUnit::decode)
            .is_none_or(|u| u.commit_log_offset < commit_log_min)
}

fn not_unit_aligned(f: &MappedFile) -> Error {
    Error::corruption(
        f.path(),
        f.wrote_position() as u64,
        "consume queue file is not a multiple of 20 bytes",
    )
}

fn blank_unit() -> [u8; CQ_UNIT_SIZE] {
    let mut b = [0u8; CQ_UNIT_SIZE];
    b[8..12].copy_from_slice(&BLANK_SIZE.to_be_bytes());
    b
}

/// Is this the blank unit that fills positions before a queue's first record?
pub fn is_blank_unit(b: &[u8]) -> bool {
    b == blank_unit()
}

/// Is this unit written (valid or blank), as RocketMQ's recovery decides: offset >= 0 and size > 0.
fn unit_written(b: &[u8]) -> bool {
    let off = i64::from_be_bytes(b[..8].try_into().expect("8"));
    let size = i32::from_be_bytes(b[8..12].try_into().expect("4"));
    off >= 0 && size > 0
}

/// What [`ConsumeQueue::recover`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CqRecovery {
    /// Units removed from the tail because they point past the commitlog end.
    pub units_truncated: u64,
    /// Damage was found and the queue was cut before it: it must be rebuilt
    /// from the commitlog.
    pub damaged: bool,
}

/// A consume queue.
pub struct ConsumeQueue {
    topic: String,
    queue_id: u32,
    queue: MappedFileQueue,
    min_logic_offset: AtomicU64,
    max_physic_offset: AtomicU64,
}

impl std::fmt::Debug for ConsumeQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ConsumeQueue({}-{})", self.topic, self.queue_id)
    }
}

impl ConsumeQueue {
    /// Open (or create empty) the queue stored in `dir`.
    pub fn load(dir: &Path, topic: &str, queue_id: u32, file_size: u64) -> Result<ConsumeQueue> {
        Ok(ConsumeQueue {
            topic: topic.to_string(),
            queue_id,
            queue: MappedFileQueue::load(dir, file_size)?,
            min_logic_offset: AtomicU64::new(0),
            max_physic_offset: AtomicU64::new(0),
        })
    }

    /// [`ConsumeQueue::load`] that ends the queue before a file of the wrong
    /// length, a missing middle file or a misnamed file, deleting it and every
    /// later file (see [`MappedFileQueue::load_lenient`]): the queue must then
    /// be rebuilt from the commitlog. Returns what was wrong, if anything.
    pub fn load_lenient(
        dir: &Path,
        topic: &str,
        queue_id: u32,
        file_size: u64,
    ) -> Result<(ConsumeQueue, Option<Error>)> {
        let (queue, damage) = MappedFileQueue::load_lenient(dir, file_size)?;
        let cq = ConsumeQueue {
            topic: topic.to_string(),
            queue_id,
            queue,
            min_logic_offset: AtomicU64::new(0),
            max_physic_offset: AtomicU64::new(0),
        };
        Ok((cq, damage))
    }

    /// Queue offset of the first unit of the first file (0 when empty).
    pub fn first_file_offset(&self) -> u64 {
        self.queue.min_offset() / CQ_UNIT_SIZE as u64
    }

    /// The first unit of the first file that points at a record.
    pub fn first_unit(&self) -> Option<CqUnit> {
        let first = self.queue.first_file()?;
        let unit = first
            .bytes_from(0)
            .chunks_exact(CQ_UNIT_SIZE)
            .find_map(CqUnit::decode);
        unit
    }

    /// Recovery: delete every file, leaving an empty queue to be rebuilt from
    /// the commitlog.
    pub fn clear(&mut self) -> Result<()> {
        self.queue.delete_files_from(0)?;
        self.queue.set_flushed_where(0);
        self.min_logic_offset.store(0, Ordering::Release);
        self.max_physic_offset.store(0, Ordering::Release);
        Ok(())
    }

    /// Topic of the queue.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Queue id.
    pub fn queue_id(&self) -> u32 {
        self.queue_id
    }

    /// Recovery: find the end of the units, drop units that point past
    /// `commit_log_max`, and set the min offset against `commit_log_min`.
    ///
    /// The last three files are scanned, and with `all_files` every file (a
    /// pass over the units, no commitlog reads for most of them: for an open
    /// after a crash, or when the manifests disagree with the files). A unit
    /// that goes back in the log or overlaps the one before it, a unit of the
    /// last three files that `verify` rejects (called with the queue offset and
    /// the unit, for units whose record lies in `[verify_from,
    /// commit_log_max)`), written units after an unwritten one, or, in files
    /// older than the last three, a first or last unit of a file that `verify`
    /// rejects (spot checks; its record must still be in `[commit_log_min,
    /// commit_log_max)`), are damage: the queue is cut before the damage and
    /// [`CqRecovery::damaged`] is set, so that the caller rebuilds it from the
    /// log. (Damage in older files that a scan does not see is found by reads,
    /// which check every unit against its record.)
    pub fn recover(
        &mut self,
        commit_log_min: u64,
        commit_log_max: u64,
        verify_from: u64,
        all_files: bool,
        verify: &mut dyn FnMut(u64, &CqUnit) -> bool,
    ) -> Result<CqRecovery> {
        let file_size = self.queue.file_size() as usize;
        let files = self.queue.files();
        if files.is_empty() {
            return Ok(CqRecovery::default());
        }
        // Find the last written unit, scanning the last three files.
        let start_idx = files.len().saturating_sub(3);
        let bounds = ScanBounds {
            commit_log_min,
            commit_log_max,
            verify_from,
        };
        let (end, damaged) = self.scan_units(&files, start_idx, all_files, &bounds, verify);
        let (idx, pos, removed, max_phys) =
            walk_back_past_log_end(&files, end, start_idx, file_size, commit_log_max);
        let end_offset = files[idx].file_from_offset() + pos as u64;
        drop(files);
        self.cut_at(idx, pos)?;
        self.queue.set_flushed_where(end_offset);
        self.max_physic_offset.store(max_phys, Ordering::Release);
        self.correct_min_offset(commit_log_min);
        Ok(CqRecovery {
            units_truncated: removed,
            damaged,
        })
    }

    /// Scan the units of the last three files (of all files with
    /// `all_files`) and return where the written, undamaged units end
    /// (`(file index, position)`) and whether damage ended them (see
    /// [`ConsumeQueue::recover`] for what counts as damage).
    fn scan_units(
        &self,
        files: &[Arc<MappedFile>],
        start_idx: usize,
        all_files: bool,
        bounds: &ScanBounds,
        verify: &mut dyn FnMut(u64, &CqUnit) -> bool,
    ) -> ((usize, usize), bool) {
        let file_size = self.queue.file_size() as usize;
        let mut damaged = false;
        let mut end = (start_idx, 0usize);
        // The previous decoded unit: (file index, position, end offset in the log).
        let mut prev_unit: Option<(usize, usize, u64)> = None;
        let skip = if all_files { 0 } else { start_idx };
        'outer: for (idx, f) in files.iter().enumerate().skip(skip) {
            let data = f.bytes(0, file_size).unwrap_or(&[]);
            let mut pos = 0;
            // Older files: spot-check the first and the last unit against their records.
            let mut spot_first = idx < start_idx;
            while pos + CQ_UNIT_SIZE <= data.len() {
                let unit = &data[pos..pos + CQ_UNIT_SIZE];
                if !unit_written(unit) {
                    end = (idx, pos);
                    // Written units after an unwritten one: damage, not the end.
                    if written_after(&files[idx..], pos, file_size) {
                        tracing::warn!(topic = %self.topic, queue_id = self.queue_id,
                            file = %f.path().display(), pos, "unwritten consume queue unit before written ones; truncating");
                        damaged = true;
                    }
                    break 'outer;
                }
                if let Some(u) = CqUnit::decode(unit) {
                    let qoff = (f.file_from_offset() + pos as u64) / CQ_UNIT_SIZE as u64;
                    let u_end = u.commit_log_offset.saturating_add(u.size as u64);
                    // Units follow the log in order without overlap; one that goes
                    // back is damage, in it or in the one before (a flipped high
                    // byte of an offset or size): end the queue before both.
                    if let Some((p_idx, p_pos, p_end)) = prev_unit {
                        if u.commit_log_offset < p_end {
                            tracing::warn!(topic = %self.topic, queue_id = self.queue_id,
                                file = %files[p_idx].path().display(), pos = p_pos,
                                "consume queue units out of order; truncating");
                            end = (p_idx, p_pos);
                            damaged = true;
                            break 'outer;
                        }
                    }
                    let spot = (spot_first
                        || (idx < start_idx && pos + 2 * CQ_UNIT_SIZE > data.len()))
                        && u.commit_log_offset >= bounds.commit_log_min;
                    spot_first = false;
                    if ((idx >= start_idx && u.commit_log_offset >= bounds.verify_from) || spot)
                        && u_end <= bounds.commit_log_max
                        && !verify(qoff, &u)
                    {
                        tracing::warn!(topic = %self.topic, queue_id = self.queue_id,
                            file = %f.path().display(), pos, queue_offset = qoff,
                            "consume queue unit does not match its commitlog record; truncating");
                        end = (idx, pos);
                        damaged = true;
                        break 'outer;
                    }
                    prev_unit = Some((idx, pos, u_end));
                }
                pos += CQ_UNIT_SIZE;
            }
            end = (idx, pos);
        }
        (end, damaged)
    }

    /// Drop the files after file `idx`, whose units end at `pos`, and zero
    /// the stale units after `pos` in it.
    fn cut_at(&mut self, idx: usize, pos: usize) -> Result<()> {
        let file_size = self.queue.file_size() as usize;
        // Drop files after the end; zero stale units in the end file.
        let cut = self.queue.files()[idx].file_from_offset() + file_size as u64;
        self.queue.delete_files_from(cut)?;
        if pos == file_size && idx + 1 < self.queue.file_count() {
            // Unreachable: files after idx were just removed.
        }
        let files_mut = self.queue.files_mut();
        let f = files_mut
            .get_mut(idx)
            .and_then(Arc::get_mut)
            .ok_or_else(|| Error::corruption("consumequeue", 0, "file shared during recovery"))?;
        let stale = if pos < file_size {
            let data = f.bytes(pos, file_size - pos).unwrap_or(&[]);
            // Up to the last written unit: after damage, written units may
            // follow unwritten ones.
            data.chunks_exact(CQ_UNIT_SIZE)
                .rposition(unit_written)
                .map_or(0, |i| (i + 1) * CQ_UNIT_SIZE)
        } else {
            0
        };
        if stale > 0 {
            f.truncate_to(pos, stale)?;
        } else {
            f.set_positions(pos);
        }
        Ok(())
    }

    /// Set the min logical offset to the first unit whose record is at or after `commit_log_min`.
    pub fn correct_min_offset(&self, commit_log_min: u64) {
        let Some(first) = self.queue.first_file() else {
            return;
        };
        let data = first.bytes_from(0);
        let mut min = first.file_from_offset() / CQ_UNIT_SIZE as u64;
        for (i, u) in data.chunks_exact(CQ_UNIT_SIZE).enumerate() {
            match CqUnit::decode(u) {
                Some(unit) if unit.commit_log_offset >= commit_log_min => {
                    min = first.file_from_offset() / CQ_UNIT_SIZE as u64 + i as u64;
                    break;
                }
                _ => {
                    min = first.file_from_offset() / CQ_UNIT_SIZE as u64 + i as u64 + 1;
                }
            }
        }
        self.min_logic_offset.store(min, Ordering::Release);
    }

    /// Append the unit for `queue_offset`. A unit already present is skipped
    /// (dispatch is idempotent); a gap is filled with blank units.
    #[cfg_attr(not(feature = "internals"), allow(dead_code))] // for the benches and tests
    pub fn put(&self, unit: CqUnit, queue_offset: u64) -> Result<()> {
        self.put_batch(queue_offset, std::slice::from_ref(&unit))
    }

    /// Append `units` for the consecutive queue offsets from `first`, as
    /// [`ConsumeQueue::put`] does for each, but with one file lookup and one
    /// copy per file they land in instead of one per unit (dispatch collects a
    /// queue's units over a pass and writes them here).
    pub fn put_batch(&self, first: u64, units: &[CqUnit]) -> Result<()> {
        let max = self.max_offset();
        // Units already present are skipped.
        let skip = usize::try_from(max.saturating_sub(first)).unwrap_or(usize::MAX);
        let Some(units) = units.get(skip..).filter(|u| !u.is_empty()) else {
            return Ok(());
        };
        let first = first.max(max);
        let unit_size = CQ_UNIT_SIZE as u64;
        if first > max {
            let Some(first_byte) = first
                .checked_mul(unit_size)
                .filter(|b| b.checked_add(self.queue.file_size()).is_some())
            else {
                return Err(Error::IllegalMessage(format!(
                    "queue offset {first} of {}-{} has no byte position in a consume queue",
                    self.topic, self.queue_id
                )));
            };
            if self.queue.file_count() == 0 {
                // First file of a queue that starts late: begin at the file
                // holding it (at most a file's worth of blanks before it).
                let fsz = self.queue.file_size();
                self.queue.create_file(first_byte / fsz * fsz)?;
                self.min_logic_offset.store(first, Ordering::Release);
            } else if first - max > self.units_per_file() {
                // Dispatch refuses such a record before it gets here; never
                // blank-fill gigabytes for one unit.
                return Err(Error::IllegalMessage(format!(
                    "queue offset {first} of {}-{} is more than a file's worth of units past \
                     its end {max}: not blank-filled",
                    self.topic, self.queue_id
                )));
            } else {
                tracing::warn!(topic = %self.topic, queue_id = self.queue_id, max, queue_offset = first,
                    "consume queue gap filled with blank units");
            }
            while self.max_offset() < first {
                let f = self.writable_file()?;
                if f.append(&blank_unit()).is_none() {
                    return Err(not_unit_aligned(&f));
                }
            }
        }
        let mut rest = units;
        while !rest.is_empty() {
            let f = self.writable_file()?;
            let n = (f.remaining() / CQ_UNIT_SIZE).min(rest.len());
            let placed = (n > 0).then(|| {
                f.append_in_place(n * CQ_UNIT_SIZE, |dst, _| {
                    for (d, u) in dst.chunks_exact_mut(CQ_UNIT_SIZE).zip(rest) {
                        d.copy_from_slice(&u.encode());
                    }
                })
            });
            if placed.flatten().is_none() {
                return Err(not_unit_aligned(&f));
            }
            rest = &rest[n..];
        }
        let last = units[units.len() - 1];
        self.max_physic_offset
            .store(last.commit_log_offset + last.size as u64, Ordering::Release);
        Ok(())
    }

    /// The file the next unit goes to, created when the last one is full.
    fn writable_file(&self) -> Result<Arc<MappedFile>> {
        match self.queue.last_file() {
            Some(f) if !f.is_full() => Ok(f),
            Some(f) => self
                .queue
                .create_file(f.file_from_offset() + self.queue.file_size()),
            None => self.queue.create_file(0),
        }
    }

    /// Units one file holds.
    pub fn units_per_file(&self) -> u64 {
        self.queue.file_size() / CQ_UNIT_SIZE as u64
    }

    /// One past the last unit.
    pub fn max_offset(&self) -> u64 {
        self.queue.max_offset() / CQ_UNIT_SIZE as u64
    }

    /// First unit still served.
    pub fn min_offset(&self) -> u64 {
        self.min_logic_offset.load(Ordering::Acquire)
    }

    /// End (offset + size) of the last record indexed.
    #[cfg_attr(not(feature = "internals"), allow(dead_code))] // for the benches and tests
    pub fn max_physic_offset(&self) -> u64 {
        self.max_physic_offset.load(Ordering::Acquire)
    }

    /// The unit at `queue_offset`.
    pub fn get(&self, queue_offset: u64) -> Option<CqUnit> {
        let byte = queue_offset.checked_mul(CQ_UNIT_SIZE as u64)?;
        let f = self.queue.find_by_offset(byte)?;
        let b = f.bytes((byte - f.file_from_offset()) as usize, CQ_UNIT_SIZE)?;
        CqUnit::decode(b)
    }

    /// The raw bytes of the unit at `queue_offset`, if written.
    pub fn raw_unit(&self, queue_offset: u64) -> Option<[u8; CQ_UNIT_SIZE]> {
        let byte = queue_offset.checked_mul(CQ_UNIT_SIZE as u64)?;
        let f = self.queue.find_by_offset(byte)?;
        let pos = (byte - f.file_from_offset()) as usize;
        if pos + CQ_UNIT_SIZE > f.wrote_position() {
            return None;
        }
        f.bytes(pos, CQ_UNIT_SIZE)?.try_into().ok()
    }

    /// Repair: rewrite the units from `first` on (each `None` becomes a blank
    /// unit) in their files, through the descriptor, synced. Every unit must
    /// already be written (below [`ConsumeQueue::max_offset`]).
    ///
    /// # Errors
    /// A unit not yet written, or the write failed.
    pub fn rewrite_units(&self, first: u64, units: &[Option<CqUnit>]) -> Result<()> {
        let per_file = (self.queue.file_size() / CQ_UNIT_SIZE as u64) as usize;
        let mut i = 0;
        while i < units.len() {
            let q = first + i as u64;
            let byte = q * CQ_UNIT_SIZE as u64;
            let f = self.queue.find_by_offset(byte).ok_or_else(|| {
                Error::corruption(self.queue.dir(), byte, "no consume queue file to repair")
            })?;
            let pos = (byte - f.file_from_offset()) as usize;
            let n = (per_file - pos / CQ_UNIT_SIZE).min(units.len() - i);
            let mut buf = Vec::with_capacity(n * CQ_UNIT_SIZE);
            for u in &units[i..i + n] {
                buf.extend_from_slice(&u.map_or_else(blank_unit, |u| u.encode()));
            }
            f.rewrite_via_fd(pos, &buf)?;
            i += n;
        }
        Ok(())
    }

    /// Live truncation of the commitlog to `commit_log_offset`: remove the
    /// units whose record is at or after it (a tail: units follow the log),
    /// with the blank units among them, zeroed and synced
    /// ([`MappedFileQueue::truncate_live`]); then correct the min offset
    /// against `commit_log_min`. The queue's max offset becomes the queue
    /// offset of the first unit removed. Returns how many units were removed.
    /// Callers keep dispatch and repairs out meanwhile.
    ///
    /// # Errors
    /// A failed delete, write or sync.
    pub fn truncate_live(&self, commit_log_offset: u64, commit_log_min: u64) -> Result<u64> {
        let max = self.max_offset();
        let floor = self.first_file_offset();
        let mut cut = max;
        let mut q = max;
        while q > floor {
            match self.get(q - 1) {
                Some(u) if u.commit_log_offset >= commit_log_offset => cut = q - 1,
                Some(_) => break,
                None => {} // a blank unit: look further back
            }
            q -= 1;
        }
        if cut == max {
            return Ok(0);
        }
        self.queue.truncate_live(cut * CQ_UNIT_SIZE as u64)?;
        let last_end = (floor..cut)
            .rev()
            .find_map(|q| self.get(q))
            .map_or(0, |u| u.commit_log_offset + u.size as u64);
        self.max_physic_offset.store(last_end, Ordering::Release);
        if self.min_offset() > cut {
            self.min_logic_offset.store(cut, Ordering::Release);
        }
        self.correct_min_offset(commit_log_min);
        Ok(max - cut)
    }

    /// The file holding `queue_offset` and the readable units from there to the
    /// end of that file: `(file, byte position in file, unit count)`.
    pub fn units_from(&self, queue_offset: u64) -> Option<(Arc<MappedFile>, usize, usize)> {
        let byte = queue_offset.checked_mul(CQ_UNIT_SIZE as u64)?;
        let f = self.queue.find_by_offset(byte)?;
        let pos = (byte - f.file_from_offset()) as usize;
        let n = f.wrote_position().saturating_sub(pos) / CQ_UNIT_SIZE;
        if n == 0 {
            return None;
        }
        Some((f, pos, n))
    }

    /// Queue offset of the first unit of the file after the one holding `queue_offset`.
    pub fn roll_next_file(&self, queue_offset: u64) -> u64 {
        let per_file = self.queue.file_size() / CQ_UNIT_SIZE as u64;
        (queue_offset / per_file + 1) * per_file
    }

    /// Flush with `least_pages`.
    pub fn flush(&self, least_pages: u32) -> Result<()> {
        self.queue.flush(least_pages).map(|_| ())
    }

    /// Queue offset of the first file [`ConsumeQueue::delete_expired`] would
    /// leave for `commit_log_min` (the first-file manifest is written with it
    /// before the files go).
    pub fn first_file_offset_after_expiry(&self, commit_log_min: u64) -> u64 {
        let files = self.queue.files();
        let mut n = 0;
        while files.len() > 1 + n && expired(&files[n], commit_log_min) {
            n += 1;
        }
        files
            .get(n)
            .map_or(0, |f| f.file_from_offset() / CQ_UNIT_SIZE as u64)
    }

    /// Retention: take the oldest files (never the last, never one at or
    /// after queue offset `keep_from`) whose units all point below
    /// `commit_log_min` out of the queue, unlink them, then move the min
    /// offset. Returns the files taken out; one whose unlink failed is not
    /// [`MappedFile::is_deleted`] and is for the caller to retry.
    pub fn delete_expired(&self, commit_log_min: u64, keep_from: u64) -> Vec<Arc<MappedFile>> {
        let keep_from = keep_from.saturating_mul(CQ_UNIT_SIZE as u64);
        let removed = self.queue.remove_first_while(
            |f| f.file_from_offset() < keep_from && expired(f, commit_log_min),
            usize::MAX,
        );
        for f in &removed {
            if let Err(e) = f.delete_file() {
                tracing::warn!(error = %e, "deleting a consume queue file failed; retried later");
            }
        }
        self.correct_min_offset(commit_log_min);
        removed
    }

    /// True when every written unit is flushed.
    pub fn fully_flushed(&self) -> bool {
        self.queue.flushed_where() >= self.queue.max_offset()
    }

    /// Number of files.
    pub fn file_count(&self) -> usize {
        self.queue.file_count()
    }
}

/// The log range [`ConsumeQueue::recover`] checks units against.
struct ScanBounds {
    /// Oldest commitlog offset: spot checks of older files need records from here on.
    commit_log_min: u64,
    /// End of the commitlog: units past it are dropped.
    commit_log_max: u64,
    /// Units of the last three files whose records start here or later are verified.
    verify_from: u64,
}

/// Whether any written unit follows position `pos` of the first of `files`
/// (in it or in a later file).
fn written_after(files: &[Arc<MappedFile>], pos: usize, file_size: usize) -> bool {
    files.iter().enumerate().any(|(i, g)| {
        let from = if i == 0 { pos + CQ_UNIT_SIZE } else { 0 };
        g.bytes(0, file_size)
            .unwrap_or(&[])
            .get(from..)
            .unwrap_or(&[])
            .chunks_exact(CQ_UNIT_SIZE)
            .any(unit_written)
    })
}

/// From `end`, walk back over units that point past the commitlog end
/// (`commit_log_max`), not below the first scanned file `start_idx`.
/// Returns the new end `(file index, position)`, the units walked over and
/// the log end of the last unit kept (0 if none).
fn walk_back_past_log_end(
    files: &[Arc<MappedFile>],
    end: (usize, usize),
    start_idx: usize,
    file_size: usize,
    commit_log_max: u64,
) -> (usize, usize, u64, u64) {
    // Walk back over units that point past the commitlog end.
    let (mut idx, mut pos) = end;
    let mut removed = 0u64;
    let mut max_phys = 0u64;
    loop {
        if pos == 0 {
            if idx == 0 || idx <= start_idx {
                break;
            }
            idx -= 1;
            pos = file_size;
            continue;
        }
        let data = files[idx]
            .bytes(pos - CQ_UNIT_SIZE, CQ_UNIT_SIZE)
            .unwrap_or(&[]);
        match CqUnit::decode(data) {
            Some(u) if u.commit_log_offset + u.size as u64 > commit_log_max => {
                pos -= CQ_UNIT_SIZE;
                removed += 1;
            }
            Some(u) => {
                max_phys = u.commit_log_offset + u.size as u64;
                break;
            }
            None => break,
        }
    }
    (idx, pos, removed, max_phys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(off: u64) -> CqUnit {
        CqUnit {
            commit_log_offset: off,
            size: 100,
            tags_code: 7,
        }
    }

    #[test]
    fn a_batch_rolls_files_skips_present_units_and_fills_gaps() {
        let dir = tempfile::tempdir().unwrap();
        // 10 units per file.
        let cq = ConsumeQueue::load(dir.path(), "T", 0, 200).unwrap();
        for i in 0..3u64 {
            cq.put(unit(i * 100), i).unwrap();
        }
        // Offsets 1..26: 1 and 2 are present (skipped), the rest spans three files.
        let batch: Vec<CqUnit> = (1..26u64).map(|i| unit(i * 100 + 1)).collect();
        cq.put_batch(1, &batch).unwrap();
        assert_eq!(cq.max_offset(), 26);
        assert_eq!(cq.file_count(), 3);
        assert_eq!(cq.get(2), Some(unit(200)), "a present unit is kept");
        for i in 3..26u64 {
            assert_eq!(cq.get(i), Some(unit(i * 100 + 1)), "offset {i}");
        }
        assert_eq!(cq.max_physic_offset(), 2501 + 100);
        // All present: nothing changes.
        cq.put_batch(20, &batch[..6]).unwrap();
        assert_eq!(cq.max_offset(), 26);
        assert_eq!(cq.get(20), Some(unit(2001)));
        // A batch beyond the end: blank units fill the gap.
        cq.put_batch(28, &[unit(9000), unit(9100)]).unwrap();
        assert_eq!(cq.max_offset(), 30);
        assert_eq!((cq.get(26), cq.get(27)), (None, None));
        assert_eq!(cq.get(29), Some(unit(9100)));
        cq.put_batch(30, &[]).unwrap();
        assert_eq!(cq.max_offset(), 30);
    }

    #[test]
    fn put_get_roll_and_idempotence() {
        let dir = tempfile::tempdir().unwrap();
        let cq = ConsumeQueue::load(dir.path(), "T", 0, 200).unwrap();
        for i in 0..25u64 {
            cq.put(unit(i * 100), i).unwrap();
        }
        cq.put(unit(0), 3).unwrap(); // already there: skipped
        assert_eq!(cq.max_offset(), 25);
        assert_eq!(cq.file_count(), 3);
        assert_eq!(cq.get(12), Some(unit(1200)));
        assert_eq!(cq.get(25), None);
        let (_, pos, n) = cq.units_from(12).unwrap();
        assert_eq!((pos, n), (40, 8));
        assert_eq!(cq.roll_next_file(12), 20);
        assert_eq!(cq.max_physic_offset(), 2500);
    }

    #[test]
    fn late_start_is_prefilled_with_blanks() {
        let dir = tempfile::tempdir().unwrap();
        let cq = ConsumeQueue::load(dir.path(), "T", 0, 200).unwrap();
        cq.put(unit(5000), 13).unwrap();
        assert_eq!(cq.min_offset(), 13);
        assert_eq!(cq.max_offset(), 14);
        assert_eq!(cq.get(12), None);
        assert_eq!(cq.get(13), Some(unit(5000)));
    }

    #[test]
    fn a_gap_of_more_than_a_file_is_not_blank_filled() {
        let dir = tempfile::tempdir().unwrap();
        // 10 units per file.
        let cq = ConsumeQueue::load(dir.path(), "T", 0, 200).unwrap();
        cq.put(unit(0), 0).unwrap();
        assert_eq!(cq.units_per_file(), 10);
        // A file's worth of blanks at most.
        cq.put(unit(100), 11).unwrap();
        assert_eq!((cq.max_offset(), cq.file_count()), (12, 2));
        for far in [23, 1 << 40, u64::MAX / 20] {
            assert!(
                matches!(cq.put(unit(200), far), Err(Error::IllegalMessage(_))),
                "{far}"
            );
            assert_eq!((cq.max_offset(), cq.file_count()), (12, 2));
        }
        cq.put(unit(200), 12).unwrap();
        assert_eq!(cq.get(12), Some(unit(200)));
    }

    #[test]
    fn a_late_start_at_a_huge_offset_makes_one_file() {
        let dir = tempfile::tempdir().unwrap();
        let cq = ConsumeQueue::load(dir.path(), "T", 0, 200).unwrap();
        let far = (1u64 << 40) + 3;
        cq.put(unit(5000), far).unwrap();
        assert_eq!((cq.min_offset(), cq.max_offset()), (far, far + 1));
        assert_eq!(cq.file_count(), 1);
        assert_eq!(cq.get(far), Some(unit(5000)));
        // No byte position: refused, nothing made.
        let dir = tempfile::tempdir().unwrap();
        let cq = ConsumeQueue::load(dir.path(), "T", 0, 200).unwrap();
        assert!(matches!(
            cq.put(unit(0), u64::MAX / 20),
            Err(Error::IllegalMessage(_))
        ));
        assert_eq!(cq.file_count(), 0);
    }

    #[test]
    fn recover_truncates_units_past_commitlog() {
        let dir = tempfile::tempdir().unwrap();
        {
            let cq = ConsumeQueue::load(dir.path(), "T", 0, 200).unwrap();
            for i in 0..25u64 {
                cq.put(unit(i * 100), i).unwrap();
            }
            cq.flush(0).unwrap();
        }
        let mut cq = ConsumeQueue::load(dir.path(), "T", 0, 200).unwrap();
        let r = cq
            .recover(0, 1750, u64::MAX, false, &mut |_, _| true)
            .unwrap();
        assert_eq!(r.units_truncated, 8);
        assert!(!r.damaged);
        assert_eq!(cq.max_offset(), 17);
        assert_eq!(cq.max_physic_offset(), 1700);
        assert_eq!(cq.file_count(), 2);
        cq.put(unit(1700), 17).unwrap();
        assert_eq!(cq.get(17), Some(unit(1700)));
    }
}
