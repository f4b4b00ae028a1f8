//! The Raft log, vote and committed/purged markers on disk
//! (`raft-log`, `raft-meta`; see [the module docs](super)).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    Entry, ErrorSubject, ErrorVerb, LogState, OptionalSend, RaftLogId, RaftLogReader, StorageError,
    Vote,
};
use serde::{Deserialize, Serialize};

use super::codec::{self, StoreError};
use super::{LogId, TypeConfig};

const LOG_MAGIC: &[u8; 8] = b"FMQRLOG1";
const META_MAGIC: &[u8; 8] = b"FMQRMET1";
const LOG_FILE: &str = "raft-log";
const META_FILE: &str = "raft-meta";

/// The vote and the log markers, `raft-meta`'s record.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogMeta {
    vote: Option<Vote<u64>>,
    committed: Option<LogId>,
    last_purged: Option<LogId>,
}

struct LogInner {
    log_path: PathBuf,
    meta_path: PathBuf,
    file: File,
    /// The end of the last complete record.
    file_len: u64,
    /// index → (offset of the record in `raft-log`, entry); the live entries
    /// (after `meta.last_purged`).
    entries: BTreeMap<u64, (u64, Entry<TypeConfig>)>,
    /// Records of purged entries still in the file (dropped by the next
    /// rewrite).
    dead_records: usize,
    meta: LogMeta,
}

fn lock(inner: &Mutex<LogInner>) -> MutexGuard<'_, LogInner> {
    // A panic while holding the lock leaves the in-memory index as the
    // last successful operation left it (every mutation is done last).
    inner
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The controller's Raft log store: openraft's [`RaftLogStorage`] over the
/// `raft-log` and `raft-meta` files of a directory.
///
/// Entries are also kept in memory (the controller's log is small and
/// bounded by snapshots and purges), so reads never touch the disk.
pub struct LogStore {
    inner: Arc<Mutex<LogInner>>,
}

/// A reader of a [`LogStore`] (shares its in-memory entries).
#[derive(Clone)]
pub struct LogReader {
    inner: Arc<Mutex<LogInner>>,
}

impl LogStore {
    /// Opens (or creates) the log store in `dir`.
    ///
    /// A damaged store is an error ([`StoreError::Corrupt`]); see [the
    /// module docs](super) for what is checked.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        let meta_path = dir.join(META_FILE);
        let meta = match codec::read_record_file(&meta_path, META_MAGIC)? {
            None => LogMeta::default(),
            Some(records) => {
                let [record] = records.as_slice() else {
                    return Err(StoreError::corrupt(
                        &meta_path,
                        0,
                        format!("expected one record, found {}", records.len()),
                    ));
                };
                serde_json::from_slice(record).map_err(|e| {
                    StoreError::corrupt(&meta_path, 8, format!("undecodable meta: {e}"))
                })?
            }
        };
        let log_path = dir.join(LOG_FILE);
        let meta_exists = meta_path.exists();
        let log_len = match fs::metadata(&log_path) {
            Ok(m) => Some(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(StoreError::io(&log_path, e)),
        };
        // A fresh store: no log, or an empty one left by a crash during its
        // creation, and no meta (written only once the log exists). A meta
        // without its log is a lost log, not a fresh store.
        let fresh = !meta_exists && log_len.is_none_or(|len| len == 0);
        if log_len.is_none() && meta_exists {
            return Err(StoreError::corrupt(
                &log_path,
                0,
                "the log is missing while raft-meta exists",
            ));
        }
        let (file, file_len, entries, dead_records) = if !fresh {
            load_log(&log_path, &meta)?
        } else {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&log_path)
                .map_err(|e| StoreError::io(&log_path, e))?;
            file.write_all(LOG_MAGIC)
                .and_then(|()| file.sync_all())
                .map_err(|e| StoreError::io(&log_path, e))?;
            codec::sync_dir(dir)?;
            (file, LOG_MAGIC.len() as u64, BTreeMap::new(), 0)
        };
        Ok(LogStore {
            inner: Arc::new(Mutex::new(LogInner {
                log_path,
                meta_path,
                file,
                file_len,
                entries,
                dead_records,
                meta,
            })),
        })
    }
}

type Loaded = (File, u64, BTreeMap<u64, (u64, Entry<TypeConfig>)>, usize);

fn load_log(path: &Path, meta: &LogMeta) -> Result<Loaded, StoreError> {
    let bytes = fs::read(path).map_err(|e| StoreError::io(path, e))?;
    let scanned = codec::scan_records(path, &bytes, LOG_MAGIC)?;
    let purged_index = meta.last_purged.map(|id| id.index);
    let mut entries = BTreeMap::new();
    let mut dead = 0;
    let mut previous: Option<u64> = None;
    for (offset, range) in &scanned.records {
        let entry: Entry<TypeConfig> = serde_json::from_slice(&bytes[range.clone()])
            .map_err(|e| StoreError::corrupt(path, *offset, format!("undecodable entry: {e}")))?;
        let index = entry.get_log_id().index;
        if let Some(previous) = previous {
            if index != previous + 1 {
                return Err(StoreError::corrupt(
                    path,
                    *offset,
                    format!("entry {index} follows entry {previous}"),
                ));
            }
        }
        previous = Some(index);
        if purged_index.is_some_and(|purged| index <= purged) {
            // Purged, its rewrite did not happen before a crash.
            dead += 1;
            continue;
        }
        entries.insert(index, (*offset, entry));
    }
    let mut file_len = bytes.len() as u64;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| StoreError::io(path, e))?;
    if let Some(torn_at) = scanned.torn_at {
        tracing::warn!(
            path = %path.display(),
            torn_at,
            dropped_bytes = file_len - torn_at,
            "controller raft log ends in a record torn by a crash: cutting it off"
        );
        file.set_len(torn_at)
            .and_then(|()| file.sync_all())
            .map_err(|e| StoreError::io(path, e))?;
        file_len = torn_at;
    }
    Ok((file, file_len, entries, dead))
}

fn write_err(subject: ErrorSubject<u64>, e: StoreError) -> StorageError<u64> {
    StorageError::from_io_error(subject, ErrorVerb::Write, e.into_io())
}

impl LogInner {
    fn last_log_id(&self) -> Option<LogId> {
        self.entries
            .last_key_value()
            .map(|(_, (_, e))| *e.get_log_id())
            .or(self.meta.last_purged)
    }

    fn save_meta(&self, meta: &LogMeta) -> Result<(), StoreError> {
        let json = serde_json::to_vec(meta).expect("raft meta serializes to JSON");
        codec::write_atomically(&self.meta_path, META_MAGIC, &[&json])
    }

    fn append(&mut self, entries: Vec<Entry<TypeConfig>>) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        // Consecutive to the last entry; an empty log (fresh, or purged
        // entirely by a snapshot) takes any index after the purged one.
        let mut next = self.entries.last_key_value().map(|(last, _)| last + 1);
        let min = self.meta.last_purged.map_or(0, |id| id.index + 1);
        let mut bytes = Vec::new();
        let mut offsets = Vec::with_capacity(entries.len());
        // Entries at or below the purged index are inside the snapshot
        // already: nothing to keep.
        let entries: Vec<_> = entries
            .into_iter()
            .filter(|e| e.get_log_id().index >= min)
            .collect();
        for entry in &entries {
            let index = entry.get_log_id().index;
            let expected = next.unwrap_or(index);
            if index != expected {
                return Err(StoreError::io(
                    &self.log_path,
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("append of entry {index} where {expected} is expected (a hole)"),
                    ),
                ));
            }
            next = Some(index + 1);
            offsets.push(self.file_len + bytes.len() as u64);
            let json = serde_json::to_vec(entry).expect("raft entry serializes to JSON");
            codec::put_record(&mut bytes, &json);
        }
        let path = &self.log_path;
        self.file
            .seek(SeekFrom::Start(self.file_len))
            .and_then(|_| self.file.write_all(&bytes))
            .and_then(|()| self.file.sync_data())
            .map_err(|e| StoreError::io(path, e))?;
        self.file_len += bytes.len() as u64;
        for (offset, entry) in offsets.into_iter().zip(entries) {
            self.entries
                .insert(entry.get_log_id().index, (offset, entry));
        }
        Ok(())
    }

    fn truncate(&mut self, from_index: u64) -> Result<(), StoreError> {
        let Some((_, (offset, _))) = self.entries.range(from_index..).next() else {
            return Ok(());
        };
        let offset = *offset;
        let path = &self.log_path;
        self.file
            .set_len(offset)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| StoreError::io(path, e))?;
        self.file_len = offset;
        self.entries.split_off(&from_index);
        Ok(())
    }

    fn purge(&mut self, upto: LogId) -> Result<(), StoreError> {
        if self.meta.last_purged.is_some_and(|p| p.index >= upto.index) {
            return Ok(());
        }
        // The marker first: after a crash before the rewrite, the purged
        // records are skipped at open.
        let mut meta = self.meta.clone();
        meta.last_purged = Some(upto);
        self.save_meta(&meta)?;
        self.meta = meta;
        let kept = self.entries.split_off(&(upto.index + 1));
        self.dead_records += self.entries.len();
        self.entries = kept;
        if self.dead_records > 0 {
            self.rewrite()?;
        }
        Ok(())
    }

    /// Rewrites `raft-log` with the live entries only.
    fn rewrite(&mut self) -> Result<(), StoreError> {
        let mut bytes = LOG_MAGIC.to_vec();
        let mut offsets = Vec::with_capacity(self.entries.len());
        for (index, (_, entry)) in &self.entries {
            offsets.push((*index, bytes.len() as u64));
            let json = serde_json::to_vec(entry).expect("raft entry serializes to JSON");
            codec::put_record(&mut bytes, &json);
        }
        let tmp = codec::tmp_path(&self.log_path);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| StoreError::io(&tmp, e))?;
        file.write_all(&bytes)
            .and_then(|()| file.sync_all())
            .map_err(|e| StoreError::io(&tmp, e))?;
        fs::rename(&tmp, &self.log_path).map_err(|e| StoreError::io(&self.log_path, e))?;
        codec::sync_dir(self.log_path.parent().unwrap_or(Path::new(".")))?;
        self.file = file;
        self.file_len = bytes.len() as u64;
        for (index, offset) in offsets {
            if let Some(slot) = self.entries.get_mut(&index) {
                slot.0 = offset;
            }
        }
        self.dead_records = 0;
        Ok(())
    }

    fn read<RB: RangeBounds<u64>>(&self, range: RB) -> Vec<Entry<TypeConfig>> {
        let start = match range.start_bound() {
            Bound::Included(s) => Bound::Included(*s),
            Bound::Excluded(s) => Bound::Excluded(*s),
            Bound::Unbounded => Bound::Unbounded,
        };
        let end = match range.end_bound() {
            Bound::Included(e) => Bound::Included(*e),
            Bound::Excluded(e) => Bound::Excluded(*e),
            Bound::Unbounded => Bound::Unbounded,
        };
        self.entries
            .range((start, end))
            .map(|(_, (_, e))| e.clone())
            .collect()
    }
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<u64>> {
        Ok(lock(&self.inner).read(range))
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<u64>> {
        Ok(lock(&self.inner).read(range))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<u64>> {
        let inner = lock(&self.inner);
        Ok(LogState {
            last_purged_log_id: inner.meta.last_purged,
            last_log_id: inner.last_log_id(),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        LogReader {
            inner: self.inner.clone(),
        }
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError<u64>> {
        let mut inner = lock(&self.inner);
        let mut meta = inner.meta.clone();
        meta.vote = Some(*vote);
        inner
            .save_meta(&meta)
            .map_err(|e| write_err(ErrorSubject::Vote, e))?;
        inner.meta = meta;
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError<u64>> {
        Ok(lock(&self.inner).meta.vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError<u64>> {
        let mut inner = lock(&self.inner);
        if inner.meta.committed == committed {
            return Ok(());
        }
        let mut meta = inner.meta.clone();
        meta.committed = committed;
        inner
            .save_meta(&meta)
            .map_err(|e| write_err(ErrorSubject::Store, e))?;
        inner.meta = meta;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError<u64>> {
        Ok(lock(&self.inner).meta.committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<_> = entries.into_iter().collect();
        let result = lock(&self.inner).append(entries);
        match result {
            Ok(()) => {
                // Written and fsynced.
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                let err = write_err(ErrorSubject::Logs, e);
                callback.log_io_completed(Err(io::Error::other(err.to_string())));
                Err(err)
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError<u64>> {
        lock(&self.inner)
            .truncate(log_id.index)
            .map_err(|e| write_err(ErrorSubject::Logs, e))
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError<u64>> {
        lock(&self.inner)
            .purge(log_id)
            .map_err(|e| write_err(ErrorSubject::Logs, e))
    }
}
