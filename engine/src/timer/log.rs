//! The timer log: fixed 40-byte units appended to files named by the byte
//! position of their first unit (20 digits, as commitlog files), read and
//! written with `pread`/`pwrite`.
//!
//! A unit, big-endian: commitlog offset of the waiting record (8), its size
//! (4), CRC32 of the other 36 bytes (4), delivery slot in epoch ms (8), the
//! position + 1 of the previous unit of the same slot, 0 for none (8), and the
//! record's offset in the timer topic's consume queue (8). A unit whose CRC
//! does not match (a torn write) ends the log at open.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Bytes per unit.
pub(super) const UNIT: usize = 40;
/// Bytes read per call when scanning the log.
const SCAN_CHUNK: usize = UNIT * 26_214; // about 1 MiB

/// One timer log unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Unit {
    pub phys: u64,
    pub size: u32,
    pub slot_ms: i64,
    /// Position + 1 of the previous unit of the slot; 0: none.
    pub prev: u64,
    pub cq_offset: u64,
}

impl Unit {
    pub fn encode(&self) -> [u8; UNIT] {
        let mut b = [0u8; UNIT];
        b[0..8].copy_from_slice(&self.phys.to_be_bytes());
        b[8..12].copy_from_slice(&self.size.to_be_bytes());
        b[16..24].copy_from_slice(&self.slot_ms.to_be_bytes());
        b[24..32].copy_from_slice(&self.prev.to_be_bytes());
        b[32..40].copy_from_slice(&self.cq_offset.to_be_bytes());
        let crc = unit_crc(&b);
        b[12..16].copy_from_slice(&crc.to_be_bytes());
        b
    }

    /// The unit in `b` (exactly [`UNIT`] bytes), if its CRC matches.
    pub fn decode(b: &[u8]) -> Option<Unit> {
        let b: &[u8; UNIT] = b.try_into().ok()?;
        let be8 = |r: std::ops::Range<usize>| -> [u8; 8] { b[r].try_into().expect("8") };
        let be4 = |r: std::ops::Range<usize>| -> [u8; 4] { b[r].try_into().expect("4") };
        if u32::from_be_bytes(be4(12..16)) != unit_crc(b) {
            return None;
        }
        Some(Unit {
            phys: u64::from_be_bytes(be8(0..8)),
            size: u32::from_be_bytes(be4(8..12)),
            slot_ms: i64::from_be_bytes(be8(16..24)),
            prev: u64::from_be_bytes(be8(24..32)),
            cq_offset: u64::from_be_bytes(be8(32..40)),
        })
    }
}

/// CRC32 of a unit without its CRC field; never 0, so a zeroed unit never matches.
fn unit_crc(b: &[u8; UNIT]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&b[0..12]);
    h.update(&b[16..UNIT]);
    h.finalize() | 1
}

#[derive(Debug)]
struct LogFile {
    file: File,
    path: PathBuf,
    len: u64,
    /// The latest slot of its units (i64::MIN when empty).
    max_slot: i64,
    dirty: bool,
}

/// The timer log's files, by start position.
#[derive(Debug)]
pub(super) struct TimerLog {
    dir: PathBuf,
    file_size: u64,
    files: BTreeMap<u64, LogFile>,
}

impl TimerLog {
    /// Open (creating) the log in `dir`, ending it at its first torn unit.
    pub fn open(dir: &Path, file_size: u64) -> Result<TimerLog> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let mut starts = Vec::new();
        let rd = std::fs::read_dir(dir)
            .map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
        for e in rd {
            let e = e.map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
            let name = e.file_name();
            match name.to_str().and_then(crate::mapped_file::parse_file_name) {
                Some(start) => starts.push(start),
                None => tracing::warn!(file = %e.path().display(), "timer log: ignoring a file that is not a timer log file"),
            }
        }
        starts.sort_unstable();
        let mut log = TimerLog {
            dir: dir.to_path_buf(),
            file_size: (file_size / UNIT as u64).max(16) * UNIT as u64,
            files: BTreeMap::new(),
        };
        let mut torn = false;
        for start in starts {
            let path = dir.join(crate::mapped_file::file_name(start));
            if torn {
                tracing::warn!(file = %path.display(), "timer log: removing a file after a torn unit");
                std::fs::remove_file(&path)
                    .map_err(|e| Error::io(format!("removing {}", path.display()), e))?;
                continue;
            }
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
            let mut lf = LogFile {
                file,
                path,
                len: 0,
                max_slot: i64::MIN,
                dirty: false,
            };
            let (valid, max_slot) = scan_file(&lf, |_, _| {})?;
            let on_disk = lf.file.metadata().map(|m| m.len()).unwrap_or(0);
            if valid < on_disk {
                tracing::warn!(file = %lf.path.display(), valid, on_disk, "timer log: truncating at a torn or partial unit");
                lf.file
                    .set_len(valid)
                    .map_err(|e| Error::io(format!("truncating {}", lf.path.display()), e))?;
                torn = true;
            }
            lf.len = valid;
            lf.max_slot = max_slot;
            log.files.insert(start, lf);
        }
        Ok(log)
    }

    /// The position the next unit gets.
    pub fn end(&self) -> u64 {
        self.files
            .iter()
            .next_back()
            .map(|(s, f)| s + f.len)
            .unwrap_or(0)
    }

    /// Append units at [`TimerLog::end`], rolling files at the file size:
    /// all or nothing (a failed append leaves the log as it was, so a retry
    /// does not write a unit twice).
    pub fn append(&mut self, units: &[Unit]) -> Result<()> {
        let last_before = self
            .files
            .iter()
            .next_back()
            .map(|(s, f)| (*s, f.len, f.max_slot));
        let r = self.append_all(units);
        if r.is_err() {
            self.roll_back(last_before);
        }
        r
    }

    /// Undo a failed [`TimerLog::append`]: remove the files it created and
    /// cut the last file back to its length before it.
    fn roll_back(&mut self, last_before: Option<(u64, u64, i64)>) {
        let created: Vec<u64> = self
            .files
            .keys()
            .filter(|s| last_before.is_none_or(|(last, _, _)| **s > last))
            .copied()
            .collect();
        for s in created {
            if let Some(f) = self.files.remove(&s) {
                let _ = std::fs::remove_file(&f.path);
            }
        }
        if let Some((s, len, max_slot)) = last_before {
            if let Some(f) = self.files.get_mut(&s) {
                // Should the cut fail, the next append overwrites from `len`.
                let _ = f.file.set_len(len);
                f.len = len;
                f.max_slot = max_slot;
            }
        }
    }

    fn append_all(&mut self, units: &[Unit]) -> Result<()> {
        let mut rest = units;
        while !rest.is_empty() {
            let end = self.end();
            let start = match self.files.iter().next_back() {
                Some((s, f)) if f.len < self.file_size => *s,
                _ => {
                    let path = self.dir.join(crate::mapped_file::file_name(end));
                    let file = std::fs::OpenOptions::new()
                        .read(true)
                        .write(true)
                        .create(true)
                        .truncate(true)
                        .open(&path)
                        .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
                    crate::fs::sync_dir(&self.dir)?;
                    self.files.insert(
                        end,
                        LogFile {
                            file,
                            path,
                            len: 0,
                            max_slot: i64::MIN,
                            dirty: true,
                        },
                    );
                    end
                }
            };
            let f = self.files.get_mut(&start).expect("just found or inserted");
            let room = ((self.file_size - f.len) / UNIT as u64) as usize;
            let n = room.min(rest.len()).max(1);
            let mut buf = Vec::with_capacity(n * UNIT);
            for u in &rest[..n] {
                buf.extend_from_slice(&u.encode());
                f.max_slot = f.max_slot.max(u.slot_ms);
            }
            f.file
                .write_all_at(&buf, f.len)
                .map_err(|e| Error::io(format!("writing {}", f.path.display()), e))?;
            f.len += buf.len() as u64;
            f.dirty = true;
            rest = &rest[n..];
        }
        Ok(())
    }

    /// The unit at `pos`.
    pub fn read(&self, pos: u64) -> Result<Unit> {
        let (start, f) = self
            .files
            .range(..=pos)
            .next_back()
            .filter(|(s, f)| pos + UNIT as u64 <= *s + f.len)
            .ok_or_else(|| {
                Error::corruption(&self.dir, pos, "no timer log file holds this unit")
            })?;
        let mut b = [0u8; UNIT];
        f.file
            .read_exact_at(&mut b, pos - start)
            .map_err(|e| Error::io(format!("reading {}", f.path.display()), e))?;
        Unit::decode(&b)
            .ok_or_else(|| Error::corruption(&f.path, pos - start, "timer log unit CRC mismatch"))
    }

    /// Every unit, in log order, with its position.
    pub fn for_each(&self, mut each: impl FnMut(u64, &Unit)) -> Result<()> {
        for (start, f) in &self.files {
            scan_file(f, |off, u| each(start + off, u))?;
        }
        Ok(())
    }

    /// Cut the log at the first unit `drop` selects (units are in
    /// consume-queue order, so everything after it goes too).
    pub fn truncate_where(&mut self, drop: impl Fn(&Unit) -> bool) -> Result<()> {
        let mut cut = None;
        self.for_each(|pos, u| {
            if cut.is_none() && drop(u) {
                cut = Some(pos);
            }
        })?;
        let Some(cut) = cut else {
            return Ok(());
        };
        tracing::warn!(position = cut, "timer log: dropping units whose consume-queue entries are gone");
        let starts: Vec<u64> = self.files.range(..).map(|(s, _)| *s).collect();
        for start in starts {
            let f = self.files.get_mut(&start).expect("listed");
            if start >= cut {
                std::fs::remove_file(&f.path)
                    .map_err(|e| Error::io(format!("removing {}", f.path.display()), e))?;
                self.files.remove(&start);
            } else if start + f.len > cut {
                f.len = cut - start;
                f.file
                    .set_len(f.len)
                    .map_err(|e| Error::io(format!("truncating {}", f.path.display()), e))?;
                f.dirty = true;
                let (_, max_slot) = scan_file(f, |_, _| {})?;
                f.max_slot = max_slot;
            }
        }
        Ok(())
    }

    /// Whether any unit has a slot at or after `read_ms`.
    pub fn has_pending(&self, read_ms: i64) -> bool {
        self.files.values().any(|f| f.max_slot >= read_ms)
    }

    /// The latest slot at or after `read_ms`.
    pub fn max_pending_slot(&self, read_ms: i64) -> Option<i64> {
        self.files
            .values()
            .map(|f| f.max_slot)
            .filter(|s| *s >= read_ms)
            .max()
    }

    /// The consume-queue offset of the last unit.
    pub fn last_cq_offset(&self) -> Option<u64> {
        let end = self.end();
        (end >= UNIT as u64)
            .then(|| self.read(end - UNIT as u64).ok().map(|u| u.cq_offset))
            .flatten()
    }

    /// `fdatasync` the files written since the last call.
    pub fn sync(&mut self) -> Result<()> {
        for f in self.files.values_mut().filter(|f| f.dirty) {
            f.file
                .sync_data()
                .map_err(|e| Error::io(format!("syncing {}", f.path.display()), e))?;
            f.dirty = false;
        }
        Ok(())
    }

    /// Remove the files, other than the last, whose units are all in slots
    /// before `read_ms` (delivered).
    pub fn delete_delivered(&mut self, read_ms: i64) -> Result<usize> {
        let last = self.files.keys().next_back().copied();
        let dead: Vec<u64> = self
            .files
            .iter()
            .filter(|(s, f)| Some(**s) != last && f.max_slot < read_ms)
            .map(|(s, _)| *s)
            .collect();
        for s in &dead {
            let f = self.files.remove(s).expect("listed");
            std::fs::remove_file(&f.path)
                .map_err(|e| Error::io(format!("removing {}", f.path.display()), e))?;
        }
        Ok(dead.len())
    }

    /// Number of files (for tests and stats).
    #[cfg(test)]
    pub fn file_count(&self) -> usize {
        self.files.len()
    }
}

/// Scan a file's valid units (positional reads, so the file's cursor is
/// never used): returns the length they cover and their latest slot.
fn scan_file(f: &LogFile, mut each: impl FnMut(u64, &Unit)) -> Result<(u64, i64)> {
    let mut buf = vec![0u8; SCAN_CHUNK];
    let mut pos = 0u64;
    let mut max_slot = i64::MIN;
    loop {
        let got = read_full_at(&f.file, &mut buf, pos)
            .map_err(|e| Error::io(format!("reading {}", f.path.display()), e))?;
        let whole = got / UNIT * UNIT;
        for chunk in buf[..whole].chunks_exact(UNIT) {
            let Some(u) = Unit::decode(chunk) else {
                return Ok((pos, max_slot));
            };
            each(pos, &u);
            max_slot = max_slot.max(u.slot_ms);
            pos += UNIT as u64;
        }
        if got < buf.len() {
            return Ok((pos, max_slot));
        }
    }
}

/// Fill `buf` from `at` as far as the file goes; returns the bytes read.
fn read_full_at(file: &File, buf: &mut [u8], at: u64) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], at + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}
