//! RocketMQ 4.x's key index (`IndexService` / `IndexFile`), byte-compatible.
//!
//! # Layout
//!
//! Files live in `index/` and are named for the local time of their creation,
//! `yyyyMMddHHmmssSSS`. Each is `40 + 4 x maxHashSlotNum + 20 x maxIndexNum` bytes,
//! all big-endian:
//!
//! | bytes | field |
//! |---|---|
//! | 0..8 | `beginTimestamp` i64: store time (ms) of the first entry |
//! | 8..16 | `endTimestamp` i64: store time (ms) of the last entry |
//! | 16..24 | `beginPhyOffset` i64: commitlog offset of the first entry |
//! | 24..32 | `endPhyOffset` i64: commitlog offset of the last entry |
//! | 32..36 | `hashSlotCount` i32: slots in use (4.x: counted when a slot stops being empty) |
//! | 36..40 | `indexCount` i32: number of the next entry (entries count from 1) |
//! | 40 + 4 x s | slot `s`: number of the newest entry whose hash falls in it, 0 = empty |
//! | 40 + 4 x slots + 20 x n | entry `n`: `keyHash` i32, `phyOffset` i64, `timeDiff` i32 (s after `beginTimestamp`), `prevIndex` i32 |
//!
//! A key `k` of a message on topic `t` is hashed as `|javaHash("t#k")|` (`i32::MIN`
//! gives 0) into slot `hash % maxHashSlotNum`. A put writes the entry with
//! `prevIndex` = the slot's old value, points the slot at it and advances the
//! header. A file is full when `indexCount >= maxIndexNum`; the next one starts with
//! its begin and end set to the previous file's end, until its first entry.
//!
//! # Design: positional file I/O, no mapping
//!
//! Index files are read and written with `pread`/`pwrite`
//! ([`std::os::unix::fs::FileExt`]); nothing is memory-mapped, so this module has
//! no `unsafe` code and no reader can race with a writer on shared memory.
//!
//! - Each file's header lives in memory behind the file's `RwLock` and is the
//!   source of truth; it is written to bytes 0..40 on flush.
//! - The writable (last, not full) file also keeps its whole slot table in memory
//!   (`4 x maxHashSlotNum` bytes, 20 MB by default) and the entries added since
//!   the last write-out in a buffer. Puts change only memory; the buffer is written
//!   out every 64 KiB. A flush writes the buffered entries, the changed 4 KiB runs of
//!   slots, then the header, then `fdatasync`s: after it, the file's bytes are
//!   exactly what RocketMQ would have written.
//! - Entries are append-only: once an entry is on disk it never changes (except
//!   when recovery truncates it away), so readers `pread` it without the lock.
//!   A query takes the file's read lock only for a moment per chain step, so a long
//!   walk never holds up the writer.
//! - Full files drop their in-memory slots once flushed; queries on them `pread`
//!   the slot and the entries.
//! - A new file is created sparse (`set_len`): a write into it on a full disk
//!   returns `ENOSPC` as an error instead of faulting.
//! - One writer at a time (`build_index`, `truncate_after`, `delete_before` share a
//!   mutex); queries and flushes may run beside it.
//!
//! # Durability and recovery
//!
//! Keys put since the last [`IndexService::flush`] live only in memory: unlike
//! RocketMQ's mapped files they do not survive even a process crash. A flush writes
//! entries, then slots, then the header, then syncs; the header's `indexCount` and
//! `endPhyOffset` are the commit point. After [`IndexService::load`], records from
//! `last_update().1` up to the commitlog's end must be passed to
//! [`IndexService::build_index`] again (an index-only re-dispatch): records at or
//! below that offset are skipped, so re-dispatching from further back is harmless.
//! A flush cut short after the slots but before the header leaves slots pointing past
//! `indexCount`; load walks them back to the newest entry below it, so no older
//! entry is lost. After the commitlog tail is truncated,
//! [`IndexService::truncate_after`] drops the index entries past the new end.
//!
//! # Robustness
//!
//! Load checks each file's length and header and fails with [`Error::Corruption`]
//! naming the file and the field's offset. Slots and entries are not trusted: a
//! slot or link outside `1..indexCount`, a link that does not point to an older
//! entry, a negative time or a failed read ends a chain walk, which is also bounded
//! by `indexCount` steps. Corrupt bytes give fewer (or wrong) offsets, never a panic;
//! the caller reads the records and drops those whose keys do not match anyway.

mod file;
mod layout;
#[cfg(test)]
mod tests;

use crate::sync::{LockExt, RwLockExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use crate::config::StoreConfig;
use crate::error::{Error, Result};
use crate::message::{find_property, keys, sys_flag};

use file::IndexFile;
use layout::{file_size_bytes, format_name, parse_name, NAME_DIGITS};

/// Most offsets one query returns (RocketMQ's `maxMsgsNumBatch`).
pub const MAX_QUERY_RESULTS: usize = 64;

/// The index hash of key `key` on topic `topic`: `|javaHash("topic#key")|`, with
/// `i32::MIN` mapped to 0, as `IndexFile.indexKeyHashMethod` computes it.
pub fn key_hash(topic: &str, key: &str) -> i32 {
    let h = topic
        .encode_utf16()
        .chain(std::iter::once(u16::from(b'#')))
        .chain(key.encode_utf16())
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)));
    if h == i32::MIN {
        0
    } else {
        h.abs()
    }
}

/// The index: every index file of a store, oldest first.
#[derive(Debug)]
pub struct IndexService {
    dir: PathBuf,
    slot_num: u32,
    index_num: u32,
    /// Serializes the operations that change files or the file list.
    writer: Mutex<()>,
    files: RwLock<Vec<Arc<IndexFile>>>,
}

impl IndexService {
    /// Open the index files in `dir` (the store's `index/` directory, created when
    /// missing), in name order. The last file, when not full, takes new entries.
    /// Entries whose names are not 17 digits are skipped with a warning; a
    /// leftover `<17 digits>.tmp` from an interrupted creation is removed. Slots of
    /// a file that is not full which point past its `indexCount` (a flush cut short
    /// before the header) are walked back along their chains and rewritten.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when `maxHashSlotNum` is 0 or `maxIndexNum` is below 2 (a
    /// file must hold at least one entry); [`Error::Corruption`] naming the file and
    /// offset when a file's length does not match the config or its header is
    /// inconsistent; [`Error::Io`] when the directory or a file cannot be read.
    pub fn load(dir: &Path, cfg: &StoreConfig) -> Result<IndexService> {
        let slot_num = cfg.max_hash_slot_num;
        let index_num = cfg.max_index_num;
        if slot_num == 0 {
            return Err(Error::config(
                "maxHashSlotNum",
                "0",
                "at least 1 hash slot per index file",
            ));
        }
        if index_num < 2 || index_num > i32::MAX as u32 {
            return Err(Error::config(
                "maxIndexNum",
                index_num.to_string(),
                "2..=2147483647 (entry 0 is never used, so 1 holds no key)",
            ));
        }
        if file_size_bytes(slot_num, index_num) > i64::MAX as u64 {
            return Err(Error::config(
                "maxIndexNum",
                index_num.to_string(),
                "an index file size that fits a file offset",
            ));
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let rd = std::fs::read_dir(dir)
            .map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
        let mut found = Vec::new();
        for ent in rd {
            let ent = ent.map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
            let path = ent.path();
            let name = ent.file_name();
            let name = name.to_string_lossy();
            let is_file = ent.file_type().map(|t| t.is_file()).unwrap_or(false);
            match parse_name(&name) {
                Some(n) if is_file => found.push((n, path)),
                _ => {
                    let tmp_of_ours = name
                        .strip_suffix(".tmp")
                        .is_some_and(|s| parse_name(s).is_some());
                    if tmp_of_ours && is_file {
                        tracing::warn!(file = %path.display(), "removing a half-created index file");
                        std::fs::remove_file(&path)
                            .map_err(|e| Error::io(format!("removing {}", path.display()), e))?;
                    } else {
                        tracing::warn!(file = %path.display(), "ignoring a stray entry in the index directory");
                    }
                }
            }
        }
        found.sort();
        let mut files = Vec::with_capacity(found.len());
        for (n, path) in found {
            files.push(Arc::new(IndexFile::open(&path, n, slot_num, index_num)?));
        }
        for (i, f) in files.iter().enumerate() {
            if f.is_full() {
                continue;
            }
            let fixed = f.activate_and_repair()?;
            if fixed > 0 {
                tracing::warn!(file = %f.path().display(), slots = fixed, "repaired hash slots that pointed past indexCount (interrupted flush)");
            }
            if i + 1 < files.len() {
                // Only the last file takes entries; write the repair out and let go of the slots.
                f.flush()?;
                f.deactivate();
            }
        }
        Ok(IndexService {
            dir: dir.to_path_buf(),
            slot_num,
            index_num,
            writer: Mutex::new(()),
            files: RwLock::new(files),
        })
    }

    /// The directory of the index files.
    #[cfg_attr(not(feature = "internals"), allow(dead_code))] // for the benches and tests
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Number of index files.
    #[cfg_attr(not(feature = "internals"), allow(dead_code))] // for the benches and tests
    pub fn file_count(&self) -> usize {
        self.snapshot().len()
    }

    fn snapshot(&self) -> Vec<Arc<IndexFile>> {
        self.files.read_locked().clone()
    }

    fn last(&self) -> Option<Arc<IndexFile>> {
        self.files.read_locked().last().cloned()
    }

    /// Index one commitlog record (`IndexService.buildIndex`): its `UNIQ_KEY`
    /// property and each non-empty space-separated value of `KEYS`, each as
    /// `topic#key`, at `phy_offset` and `store_timestamp_ms`. `properties_raw` is
    /// the record's encoded properties. Rollback records are skipped, and so is a
    /// record at or below the current file's `endPhyOffset` once that file has
    /// entries (a re-dispatch after recovery; RocketMQ skips only offsets strictly
    /// below, which indexes the last record twice). Rolls to a new file when the
    /// current one is full.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when a new file cannot be created or buffered entries cannot be
    /// written out; [`Error::IllegalMessage`] when `phy_offset` exceeds `i64::MAX`.
    /// Keys put before the error stay in the index.
    pub fn build_index(
        &self,
        topic: &str,
        properties_raw: &[u8],
        sys_flag: i32,
        phy_offset: u64,
        store_timestamp_ms: i64,
    ) -> Result<()> {
        if sys_flag & sys_flag::TRANSACTION_MASK == sys_flag::TRANSACTION_ROLLBACK_TYPE {
            return Ok(());
        }
        let uniq = find_property(properties_raw, keys::UNIQ_KEY).filter(|k| !k.is_empty());
        let keys_value = find_property(properties_raw, keys::KEYS).unwrap_or("");
        let mut all = uniq
            .into_iter()
            .chain(keys_value.split(' ').filter(|k| !k.is_empty()))
            .peekable();
        if all.peek().is_none() {
            return Ok(());
        }
        let phy = i64::try_from(phy_offset).map_err(|_| {
            Error::IllegalMessage(format!("commitlog offset {phy_offset} beyond i64::MAX"))
        })?;
        let _w = self.writer.locked();
        let mut f = self.writable_file()?;
        let h = f.header();
        if phy < h.end_phy || (phy == h.end_phy && h.index_count > 1) {
            return Ok(());
        }
        for key in all {
            let hash = key_hash(topic, key);
            while !f.put(hash, phy, store_timestamp_ms)? {
                tracing::info!(file = %f.path().display(), "index file is full, rolling to a new one");
                f = self.create_file(Some(&f))?;
            }
        }
        Ok(())
    }

    /// The last file if it can take entries, else a new one. Writer lock held.
    fn writable_file(&self) -> Result<Arc<IndexFile>> {
        let last = self.last();
        match last {
            Some(f) if !f.is_full() => {
                f.activate()?;
                Ok(f)
            }
            other => self.create_file(other.as_ref()),
        }
    }

    /// Create a file after `prev` and append it to the list. Writer lock held.
    fn create_file(&self, prev: Option<&Arc<IndexFile>>) -> Result<Arc<IndexFile>> {
        let now = chrono::Local::now()
            .format("%Y%m%d%H%M%S%3f")
            .to_string()
            .parse::<u64>()
            .unwrap_or(0);
        let last_name = self.last().map(|f| f.name());
        // Names must sort in creation order even if the clock steps back.
        let mut name = match last_name {
            Some(l) if now <= l => l + 1,
            _ => now,
        };
        while self.dir.join(format_name(name)).exists() {
            name += 1;
        }
        if format_name(name).len() != NAME_DIGITS {
            return Err(Error::corruption(
                &self.dir,
                0,
                format!("no 17-digit index file name left after {name}"),
            ));
        }
        let (ts, phy) = prev.map_or((0, 0), |p| {
            let h = p.header();
            (h.end_ts, h.end_phy)
        });
        let f = Arc::new(IndexFile::create(
            &self.dir,
            name,
            self.slot_num,
            self.index_num,
            ts,
            phy,
        )?);
        self.files.write_locked().push(Arc::clone(&f));
        Ok(f)
    }

    /// Commitlog offsets of the records indexed under `topic#key` with a store time
    /// in `[begin_ms, end_ms]` (`IndexService.queryOffset`): newest file first, each
    /// chain newest entry first, at most `min(max_num, 64)`. Only hashes are
    /// compared, so the caller must read each record and drop those whose key
    /// differs. Corrupt index bytes give fewer offsets, never a panic.
    pub fn query(
        &self,
        topic: &str,
        key: &str,
        max_num: usize,
        begin_ms: i64,
        end_ms: i64,
    ) -> Vec<u64> {
        let max = max_num.min(MAX_QUERY_RESULTS);
        let mut out = Vec::with_capacity(max);
        if max == 0 {
            return out;
        }
        let hash = key_hash(topic, key);
        for f in self.snapshot().iter().rev() {
            let h = f.header();
            if h.time_matched(begin_ms, end_ms) {
                f.select(hash, max, begin_ms, end_ms, &mut out);
            }
            if h.begin_ts < begin_ms || out.len() >= max {
                break;
            }
        }
        out
    }

    /// Make every key put so far durable: write out buffered entries, changed slots
    /// and headers, and `fdatasync` each changed file. Afterwards the files hold
    /// RocketMQ's exact bytes, and `last_update().0` read before the call is a safe
    /// `indexMsgTimestamp` for the checkpoint.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when a write or sync fails; as after any failed sync, the caller
    /// should treat the index as not durable (fence, or rebuild after restart).
    pub fn flush(&self) -> Result<()> {
        for f in self.snapshot() {
            f.flush()?;
        }
        Ok(())
    }

    /// Recovery: remove every entry whose commitlog offset is `>= phy_offset` (the
    /// new end of the commitlog), so that re-dispatching from there rebuilds them
    /// once. Files that begin at or past it are deleted; the file that straddles it
    /// loses its tail entries, its slots are walked back to the newest kept entry,
    /// its header is recomputed and it is flushed. Entries before `phy_offset` stay:
    /// no re-dispatch from further back is needed. The shortened file's
    /// `endTimestamp` is only known to the second (see the entry layout) and is set
    /// to the end of that second.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when reading, writing or deleting a file fails.
    pub fn truncate_after(&self, phy_offset: u64) -> Result<()> {
        let phy = i64::try_from(phy_offset).unwrap_or(i64::MAX);
        let _w = self.writer.locked();
        while let Some(last) = self.last() {
            let h = last.header();
            let drop_whole = if h.begin_phy >= phy {
                true
            } else if h.index_count <= 1 || h.end_phy < phy {
                false
            } else {
                last.truncate_from(phy)?
            };
            if !drop_whole {
                last.flush()?;
                break;
            }
            tracing::info!(file = %last.path().display(), phy_offset, "deleting an index file past the recovered commitlog end");
            self.remove(&last)?;
        }
        if let Some(last) = self.last() {
            if !last.is_full() {
                last.activate()?;
            }
        }
        Ok(())
    }

    /// Retention: delete the oldest files whose `endPhyOffset` is below
    /// `min_phy_offset` (the commitlog's new minimum), stopping at the first that is
    /// not, and never the last file (`IndexService.deleteExpiredFile`). Returns how
    /// many files were deleted.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when a file cannot be deleted; files deleted before it stay deleted.
    pub fn delete_before(&self, min_phy_offset: u64) -> Result<usize> {
        let min = i64::try_from(min_phy_offset).unwrap_or(i64::MAX);
        let _w = self.writer.locked();
        let files = self.snapshot();
        let mut deleted = 0;
        for f in files.iter().take(files.len().saturating_sub(1)) {
            if f.header().end_phy >= min {
                break;
            }
            self.remove(f)?;
            deleted += 1;
        }
        Ok(deleted)
    }

    /// Delete `f` from disk, then from the list. Writer lock held.
    fn remove(&self, f: &Arc<IndexFile>) -> Result<()> {
        f.delete()?;
        self.files.write_locked().retain(|g| !Arc::ptr_eq(g, f));
        Ok(())
    }

    /// `(endTimestamp, endPhyOffset)` of the newest file, (0, 0) without files: the
    /// `indexLastUpdateTimestamp` and `indexLastUpdatePhyoffset` of a query response.
    pub fn last_update(&self) -> (i64, u64) {
        self.last().map_or((0, 0), |f| {
            let h = f.header();
            (h.end_ts, h.end_phy.max(0) as u64)
        })
    }
}
