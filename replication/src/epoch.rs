//! The master-epoch file of RocketMQ 5's controller mode (automatic failover):
//! for each master epoch, the commitlog offset at which it began
//! (RocketMQ's `EpochFileCache` over a `CheckpointFile`).
//!
//! When a master dies, the controller makes a slave of the SyncStateSet master
//! with a bumped epoch, and that broker appends `(epoch, its commitlog max
//! offset)`. A former master or lagging slave that rejoins compares its
//! entries with the new master's ([`EpochFile::find_last_consistent_point`]),
//! truncates its commitlog after that point
//! ([`MessageStore::truncate_commit_log`](ferromq_engine::MessageStore::truncate_commit_log))
//! and its epochs with it ([`EpochFile::truncate_suffix`]), then follows.
//!
//! Entries are `(epoch, start offset)`; an entry's end offset is the next
//! entry's start. The last entry's end is the log's max offset, which only the
//! caller knows: it is [`u64::MAX`] (open-ended) until
//! [`EpochFile::set_last_end_offset`] says where the log ends, as in RocketMQ
//! (`setLastEpochEntryEndOffset`).
//!
//! The file (`storePathEpochFile`, default `<storePathRootDir>/epochFileCheckpoint`)
//! has RocketMQ's `CheckpointFile` layout, so a RocketMQ 5 store's file reads
//! here and the other way round:
//!
//! ```text
//! <number of entries>
//! <CRC32 of the entry lines, & 0x7FFFFFFF, decimal>
//! <epoch>-<startOffset>
//! ...
//! ```
//!
//! Every change is written before it is visible: a temporary file, fsync,
//! rename over the file, fsync of the directory. A file whose count or
//! checksum does not match its lines is an error ([`EpochError::Corrupt`]),
//! never used (RocketMQ falls back to a `.bak` copy; an older copy could
//! lack the newest epoch, so ferromq does not).

use std::io::Write;
use std::path::{Path, PathBuf};

/// The file name under `storePathRootDir` when `storePathEpochFile` is not set
/// (RocketMQ's default).
pub const EPOCH_FILE_NAME: &str = "epochFileCheckpoint";

/// The properties key of the file's path (RocketMQ's `storePathEpochFile`).
pub const EPOCH_FILE_KEY: &str = "storePathEpochFile";

/// One master epoch: its number and the commitlog range it wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    /// The master epoch (RocketMQ's `int`; never negative here).
    pub epoch: u32,
    /// Commitlog offset of the first byte written in this epoch.
    pub start_offset: u64,
    /// Commitlog offset after the last byte of this epoch: the next entry's
    /// start, or for the last entry the log's max offset ([`u64::MAX`] while
    /// unknown, see [`EpochFile::set_last_end_offset`]).
    pub end_offset: u64,
}

impl EpochEntry {
    /// An entry starting at `start_offset`, open-ended.
    pub fn new(epoch: u32, start_offset: u64) -> Self {
        EpochEntry {
            epoch,
            start_offset,
            end_offset: u64::MAX,
        }
    }
}

/// What can go wrong with the epoch file.
#[derive(Debug, thiserror::Error)]
pub enum EpochError {
    /// Reading or writing the file failed.
    #[error("epoch file {path}: {context}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The file does not parse, or its entry count or checksum does not
    /// match its entries: it is not used.
    #[error("epoch file {path} is corrupt: {reason}; it is not used (restore it, or remove it to rebuild the epochs from the controller)")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An append whose epoch is not above the last one, or whose start offset
    /// is below the last one's (RocketMQ's `appendEntry` refuses both).
    #[error("epoch {epoch} at offset {start_offset} cannot follow epoch {last_epoch} at offset {last_start_offset}")]
    NotIncreasing {
        /// The refused epoch.
        epoch: u32,
        /// Its start offset.
        start_offset: u64,
        /// The last epoch in the file.
        last_epoch: u32,
        /// The last epoch's start offset.
        last_start_offset: u64,
    },
}

/// The epoch entries of a store, persisted in the epoch file.
#[derive(Debug)]
pub struct EpochFile {
    path: PathBuf,
    /// Ordered by epoch and by start offset; each end is the next start, the
    /// last end is the known log end (or `u64::MAX`).
    entries: Vec<EpochEntry>,
}

impl EpochFile {
    /// The file's path from a broker properties file: `storePathEpochFile` if
    /// set, else `<store_root>/epochFileCheckpoint`.
    pub fn path_from_properties(
        props: &ferromq_engine::config::Properties,
        store_root: &Path,
    ) -> PathBuf {
        match props.get(EPOCH_FILE_KEY).map(str::trim) {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => store_root.join(EPOCH_FILE_NAME),
        }
    }

    /// Open the file at `path`, with no entries when it does not exist (it
    /// is created by the first change).
    ///
    /// # Errors
    /// [`EpochError::Corrupt`] when the file is damaged; [`EpochError::Io`]
    /// when it cannot be read.
    pub fn open(path: impl Into<PathBuf>) -> Result<EpochFile, EpochError> {
        let path = path.into();
        let entries = match std::fs::read(&path) {
            Ok(bytes) => parse(&path, &bytes)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io_err(&path, "reading", e)),
        };
        Ok(EpochFile { path, entries })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every entry, oldest first.
    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// The first entry.
    pub fn first_entry(&self) -> Option<EpochEntry> {
        self.entries.first().copied()
    }

    /// The last entry.
    pub fn last_entry(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    /// The last epoch (`None` with no entries; RocketMQ answers -1).
    pub fn last_epoch(&self) -> Option<u32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// The entry of `epoch`.
    pub fn entry(&self, epoch: u32) -> Option<EpochEntry> {
        self.entries.iter().find(|e| e.epoch == epoch).copied()
    }

    /// The entry after `epoch`'s (the first with a greater epoch).
    pub fn next_entry(&self, epoch: u32) -> Option<EpochEntry> {
        self.entries.iter().find(|e| e.epoch > epoch).copied()
    }

    /// The entry whose range holds commitlog offset `offset`
    /// (`start <= offset < end`).
    pub fn entry_for_offset(&self, offset: u64) -> Option<EpochEntry> {
        self.entries
            .iter()
            .find(|e| e.start_offset <= offset && offset < e.end_offset)
            .copied()
    }

    /// Append a new epoch starting at `start_offset` (a broker becoming
    /// master: the offset is its commitlog max offset) and write the file.
    /// The last entry's end becomes `start_offset`.
    ///
    /// # Errors
    /// [`EpochError::NotIncreasing`] when `epoch` is not above the last epoch
    /// or `start_offset` is below the last start offset; nothing changes.
    /// [`EpochError::Io`] when the file cannot be written; nothing changes.
    ///
    /// RocketMQ refuses a start offset equal to the last one too; ferromq
    /// allows it (a master that wrote nothing in its epoch leaves an empty
    /// range, and a second failover must still record the new epoch), as
    /// [`EpochFile::find_last_consistent_point`] handles empty ranges.
    pub fn append(&mut self, epoch: u32, start_offset: u64) -> Result<(), EpochError> {
        if let Some(last) = self.entries.last() {
            if epoch <= last.epoch || start_offset < last.start_offset {
                return Err(EpochError::NotIncreasing {
                    epoch,
                    start_offset,
                    last_epoch: last.epoch,
                    last_start_offset: last.start_offset,
                });
            }
        }
        let mut next = self.entries.clone();
        if let Some(last) = next.last_mut() {
            last.end_offset = start_offset;
        }
        next.push(EpochEntry::new(epoch, start_offset));
        self.replace(next)
    }

    /// Say where the log ends (its max offset): the last entry's end, when it
    /// is not below the last entry's start (RocketMQ's
    /// `setLastEpochEntryEndOffset`). In memory only; the file holds starts.
    pub fn set_last_end_offset(&mut self, end_offset: u64) {
        if let Some(last) = self.entries.last_mut() {
            if last.start_offset <= end_offset {
                last.end_offset = end_offset;
            }
        }
    }

    /// The highest commitlog offset up to which this log and `other` (the
    /// entries of another broker, normally the new master's, with its last
    /// end set to its max offset) hold the same history, or `None` when they
    /// share no epoch (RocketMQ's `findConsistentPoint`, -1 there).
    ///
    /// From the newest local epoch down, the first epoch both have with the
    /// same start offset is where they last agreed: both wrote that epoch
    /// from the same offset, so they agree up to the end of the shorter of
    /// the two ranges. Epochs either side wrote later are where they diverge.
    /// Set this log's last end ([`EpochFile::set_last_end_offset`]) first, or
    /// the answer may be the other side's end beyond this log's.
    pub fn find_last_consistent_point(&self, other: &[EpochEntry]) -> Option<u64> {
        consistent_point(&self.entries, other)
    }

    /// Drop every entry that starts at or after `offset` and make the last
    /// kept one end at `offset` (the commitlog was truncated to `offset`),
    /// then write the file (RocketMQ's `truncateSuffixByOffset`, which leaves
    /// the last end open; here it is the new log end).
    ///
    /// # Errors
    /// [`EpochError::Io`] when the file cannot be written; nothing changes.
    pub fn truncate_suffix(&mut self, offset: u64) -> Result<(), EpochError> {
        let mut next: Vec<EpochEntry> = self
            .entries
            .iter()
            .copied()
            .filter(|e| e.start_offset < offset)
            .collect();
        if let Some(last) = next.last_mut() {
            last.end_offset = offset;
        }
        self.replace(next)
    }

    /// Drop every entry that ends at or before `offset` (retention deleted
    /// the commitlog below it), then write the file (RocketMQ's
    /// `truncatePrefixByOffset`). The entry holding `offset` stays with its
    /// start as it was: the epoch began there even if those bytes are gone.
    ///
    /// # Errors
    /// [`EpochError::Io`] when the file cannot be written; nothing changes.
    pub fn truncate_prefix(&mut self, offset: u64) -> Result<(), EpochError> {
        let next: Vec<EpochEntry> = self
            .entries
            .iter()
            .copied()
            .filter(|e| e.end_offset > offset)
            .collect();
        self.replace(next)
    }

    /// Replace every entry (a broker copying the master's epochs, RocketMQ's
    /// `initCacheFromEntries`): each end becomes the next start, the last
    /// end is the given last entry's end.
    ///
    /// # Errors
    /// [`EpochError::NotIncreasing`] when the entries are not in increasing
    /// epoch and start-offset order; [`EpochError::Io`] when the file
    /// cannot be written. Nothing changes on error.
    pub fn replace_all(&mut self, entries: &[EpochEntry]) -> Result<(), EpochError> {
        let mut next: Vec<EpochEntry> = Vec::with_capacity(entries.len());
        for e in entries {
            if let Some(prev) = next.last_mut() {
                if e.epoch <= prev.epoch || e.start_offset < prev.start_offset {
                    return Err(EpochError::NotIncreasing {
                        epoch: e.epoch,
                        start_offset: e.start_offset,
                        last_epoch: prev.epoch,
                        last_start_offset: prev.start_offset,
                    });
                }
                prev.end_offset = e.start_offset;
            }
            next.push(*e);
        }
        self.replace(next)
    }

    /// Write `next` to the file, then make it the entries.
    fn replace(&mut self, next: Vec<EpochEntry>) -> Result<(), EpochError> {
        if next != self.entries || !self.path.exists() {
            write_atomically(&self.path, &encode(&next))?;
        }
        self.entries = next;
        Ok(())
    }
}

/// [`EpochFile::find_last_consistent_point`] over two lists of entries
/// (`local`'s ends set as the method expects).
pub(crate) fn consistent_point(local: &[EpochEntry], other: &[EpochEntry]) -> Option<u64> {
    local.iter().rev().find_map(|l| {
        other
            .iter()
            .find(|o| o.epoch == l.epoch && o.start_offset == l.start_offset)
            .map(|o| l.end_offset.min(o.end_offset))
    })
}

/// RocketMQ's `UtilAll.crc32`: CRC32 (IEEE) with the sign bit cleared.
fn crc32(data: &[u8]) -> u32 {
    crc32fast::hash(data) & 0x7FFF_FFFF
}

fn encode(entries: &[EpochEntry]) -> Vec<u8> {
    let mut lines = String::new();
    for e in entries {
        lines.push_str(&format!("{}-{}\n", e.epoch, e.start_offset));
    }
    format!("{}\n{}\n{}", entries.len(), crc32(lines.as_bytes()), lines).into_bytes()
}

fn parse(path: &Path, bytes: &[u8]) -> Result<Vec<EpochEntry>, EpochError> {
    let corrupt = |reason: String| EpochError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::str::from_utf8(bytes).map_err(|_| corrupt("not UTF-8 text".into()))?;
    let mut lines = text.lines();
    let count: usize = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| corrupt("the first line is not an entry count".into()))?;
    let crc: i64 = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| corrupt("the second line is not a checksum".into()))?;
    // The checksum covers each entry line followed by a line separator, as
    // RocketMQ reads it back.
    let mut content = String::new();
    let mut entries: Vec<EpochEntry> = Vec::new();
    for (i, line) in lines.enumerate() {
        content.push_str(line);
        content.push('\n');
        if line.is_empty() {
            continue;
        }
        let entry = line
            .split_once('-')
            .and_then(|(e, s)| Some(EpochEntry::new(e.parse().ok()?, s.parse().ok()?)))
            .ok_or_else(|| {
                corrupt(format!(
                    "entry line {} is not <epoch>-<offset>: {line:?}",
                    i + 1
                ))
            })?;
        if let Some(prev) = entries.last_mut() {
            if entry.epoch <= prev.epoch || entry.start_offset < prev.start_offset {
                return Err(corrupt(format!(
                    "entry {}-{} does not follow {}-{}",
                    entry.epoch, entry.start_offset, prev.epoch, prev.start_offset
                )));
            }
            prev.end_offset = entry.start_offset;
        }
        entries.push(entry);
    }
    if entries.len() != count {
        return Err(corrupt(format!(
            "it says {count} entries but holds {}",
            entries.len()
        )));
    }
    let actual = crc32(content.as_bytes());
    if crc != i64::from(actual) {
        return Err(corrupt(format!(
            "checksum {crc} does not match the entries' {actual}"
        )));
    }
    Ok(entries)
}

fn io_err(path: &Path, context: &str, source: std::io::Error) -> EpochError {
    EpochError::Io {
        path: path.to_path_buf(),
        context: context.to_string(),
        source,
    }
}

/// Replace `path` with `data` durably: a temporary file beside it, fsync,
/// rename over it, fsync of the directory.
fn write_atomically(path: &Path, data: &[u8]) -> Result<(), EpochError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|e| io_err(&dir, "creating the directory", e))?;
    let mut f = std::fs::File::create(&tmp).map_err(|e| io_err(&tmp, "creating", e))?;
    f.write_all(data)
        .and_then(|_| f.sync_all())
        .map_err(|e| io_err(&tmp, "writing", e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| io_err(path, "renaming the new file over", e))?;
    std::fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err(&dir, "syncing the directory", e))?;
    Ok(())
}

#[cfg(test)]
mod tests;
