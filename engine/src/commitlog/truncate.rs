//! Cutting the commitlog back while the store runs (a slave about to follow a
//! new master from where their histories agree).

use std::collections::HashMap;

use super::CommitLog;
use crate::error::{Error, Result};
use crate::message::{check_record, RecordCheck};
use crate::sync::LockExt;

/// What [`CommitLog::truncate_live`] cut.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LogCut {
    /// The log's end before.
    pub old_max: u64,
    /// Commitlog files deleted.
    pub files_removed: usize,
}

impl CommitLog {
    /// Check that `offset` is where a record starts (or the end of the log,
    /// or where a file's blank end record starts), walking the records of the
    /// file holding it from the file's start.
    ///
    /// # Errors
    /// [`Error::InvalidOffset`] when it is outside `[min, max]` or inside a
    /// record; [`Error::Corruption`] when the walk meets a record that does
    /// not parse before reaching it.
    pub(crate) fn check_record_boundary(&self, offset: u64) -> Result<()> {
        let (min, max) = (self.min_offset(), self.max_offset());
        if offset < min || offset > max {
            return Err(Error::InvalidOffset(format!(
                "commitlog offset {offset} is outside the log [{min}, {max}]"
            )));
        }
        if offset == max {
            return Ok(());
        }
        let Some(f) = self.queue.find_by_offset(offset) else {
            return Err(Error::InvalidOffset(format!(
                "no commitlog file holds offset {offset}"
            )));
        };
        let want = (offset - f.file_from_offset()) as usize;
        let data = f.bytes_from(0);
        let mut pos = 0usize;
        while pos < want {
            match check_record(&data[pos..], false) {
                Ok(RecordCheck::Message(h)) => {
                    let next = pos + h.total_size as usize;
                    if next > want {
                        return Err(Error::InvalidOffset(format!(
                            "commitlog offset {offset} is inside the record at {} \
                             ({} bytes): not a record boundary",
                            f.file_from_offset() + pos as u64,
                            h.total_size
                        )));
                    }
                    pos = next;
                }
                Ok(RecordCheck::Blank) | Ok(RecordCheck::End) => {
                    return Err(Error::InvalidOffset(format!(
                        "commitlog offset {offset} is after the end of the records of {} \
                         (they end at {})",
                        f.path().display(),
                        f.file_from_offset() + pos as u64
                    )));
                }
                Err(e) => {
                    return Err(Error::corruption(
                        f.path(),
                        pos as u64,
                        format!("walking to offset {offset}: {}", e.reason),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Make `offset` (a record boundary, checked) the end of the log while the
    /// store runs. Under the put lock, so no put or raw append runs meanwhile:
    /// `derived` runs first (the caller cuts consume queues, index and
    /// checkpoint, and returns the next queue offset of every queue for the
    /// cut log), then a file made ahead for the old end is deleted, the files
    /// are cut ([`crate::mapped_file_queue::MappedFileQueue::truncate_live`]),
    /// and the queue offsets for new puts become `derived`'s.
    ///
    /// # Errors
    /// As [`CommitLog::check_record_boundary`] (nothing changed); the error
    /// of `derived` (its own changes as it left them; the log unchanged);
    /// [`Error::ShutDown`] after close; I/O errors cutting the files.
    pub(crate) fn truncate_live(
        &self,
        offset: u64,
        derived: impl FnOnce() -> Result<HashMap<String, Vec<u64>>>,
    ) -> Result<LogCut> {
        let mut st = self.put.locked();
        if st.closed {
            return Err(Error::ShutDown);
        }
        if !st.follower {
            return Err(Error::WrongRole(
                "the commitlog is truncated live only on a slave: this store is a master".into(),
            ));
        }
        if self.pool.is_some() {
            return Err(Error::WrongRole(
                "the commitlog goes through the transient store pool (a master's): \
                 it is not truncated live"
                    .into(),
            ));
        }
        self.check_record_boundary(offset)?;
        let old_max = self.max_offset();
        let table = derived()?;
        self.allocator.discard()?;
        let files_removed = self.queue.truncate_live(offset)?;
        st.current = None;
        st.set_queue_offsets(table);
        if let Some(last) = self.queue.last_file() {
            self.allocator
                .request(last.file_from_offset() + self.file_size);
        }
        Ok(LogCut {
            old_max,
            files_removed,
        })
    }
}
