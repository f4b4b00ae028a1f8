//! The commitlog: append under one short lock, blank-fill file tails, read by
//! offset, recover the write position after a restart.

mod allocator;
mod recover;
mod truncate;

use allocator::Allocator;

use crate::sync::LockExt;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::mapped_file::{MappedBytes, MappedFile};
use crate::mapped_file_queue::MappedFileQueue;
use crate::message::{
    check_record, RecordCheck, BLANK_MAGIC_CODE, PHYSICAL_OFFSET_POS, QUEUE_OFFSET_POS,
};

/// Bytes every file keeps free for its blank end record.
pub const END_FILE_MIN_BLANK_LENGTH: usize = 8;

/// One record inside an encoded batch buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordSlot {
    /// Start of the record in the buffer.
    pub start: usize,
    /// Position of its store timestamp, relative to `start`.
    pub store_timestamp_pos: usize,
}

/// Where an append landed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AppendResult {
    pub wrote_offset: u64,
    pub wrote_bytes: usize,
    pub queue_offset: u64,
    pub store_timestamp_ms: i64,
}

/// What the recovery scan did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitLogRecovery {
    /// Files whose records were walked and checked.
    pub files_scanned: usize,
    /// Log offset the walk started from (the start of the first file walked).
    pub scanned_from: u64,
    /// Bytes of valid records walked (and CRC-checked, with `checkCRCOnRecover`).
    pub bytes_scanned: u64,
    /// Bytes of a torn record zeroed at the tail.
    pub bytes_truncated: u64,
    /// Empty files after the end that were removed.
    pub files_removed: usize,
    /// The recovered end of the log.
    pub max_offset: u64,
}

struct PutState {
    /// Next queue offset per topic (by id) and queue id.
    queue_offsets: Vec<Vec<u64>>,
    /// Topic ids by name.
    topic_ids: hashbrown::HashMap<String, usize>,
    /// The topic of the last put and its id: a producer puts to one topic
    /// again and again, and this spares each put the hash lookup (one string
    /// compare instead).
    last_topic: String,
    last_id: Option<usize>,
    closed: bool,
    /// The log follows a master (raw appends only; puts refused) rather than
    /// taking puts (raw appends refused). Changed under this lock by a role
    /// switch, so a put is either appended before the switch or refused.
    follower: bool,
    /// The file being written and the queue's generation when it was taken:
    /// saves the file list's lock and an `Arc` clone on every put (both are
    /// cache lines the dispatcher writes too).
    current: Option<(u64, Arc<MappedFile>)>,
    /// Where records are encoded before a `pwrite` (when writing via the descriptor).
    scratch: Vec<u8>,
}

impl PutState {
    /// Replace the next queue offset of every queue.
    fn set_queue_offsets(&mut self, table: HashMap<String, Vec<u64>>) {
        self.last_id = None;
        self.topic_ids.clear();
        self.queue_offsets.clear();
        for (id, (topic, offsets)) in table.into_iter().enumerate() {
            self.topic_ids.insert(topic, id);
            self.queue_offsets.push(offsets);
        }
    }

    fn slot(&mut self, topic: &str, queue_id: u32) -> &mut u64 {
        let id = match self.last_id {
            Some(id) if self.last_topic == topic => id,
            _ => {
                let id = match self.topic_ids.get(topic) {
                    Some(&id) => id,
                    None => {
                        self.queue_offsets.push(Vec::new());
                        let id = self.queue_offsets.len() - 1;
                        self.topic_ids.insert(topic.to_string(), id);
                        id
                    }
                };
                self.last_topic.clear();
                self.last_topic.push_str(topic);
                self.last_id = Some(id);
                id
            }
        };
        let v = &mut self.queue_offsets[id];
        if v.len() <= queue_id as usize {
            v.resize(queue_id as usize + 1, 0);
        }
        &mut v[queue_id as usize]
    }
}

/// The commitlog.
pub(crate) struct CommitLog {
    pub queue: MappedFileQueue,
    put: Mutex<PutState>,
    allocator: Allocator,
    file_size: u64,
    pool: Option<crate::pool::TransientStorePool>,
    commit_backend: crate::io::CommitBackend,
    /// Puts reach the file with `pwrite` instead of stores into the mapping
    /// (see [`MappedFile::append_via_fd`]).
    write_via_fd: bool,
}

impl CommitLog {
    /// Map the commitlog files in `dir`.
    pub fn load(
        dir: &Path,
        file_size: u64,
        warm: bool,
        prefault_ahead: u64,
        pool: Option<crate::pool::TransientStorePool>,
        io_uring: bool,
        write_via_fd: bool,
    ) -> Result<Self> {
        let queue = MappedFileQueue::load(dir, file_size)?;
        Ok(CommitLog {
            queue,
            put: Mutex::new(PutState {
                queue_offsets: Vec::new(),
                topic_ids: hashbrown::HashMap::new(),
                last_topic: String::new(),
                last_id: None,
                closed: false,
                follower: false,
                current: None,
                scratch: Vec::new(),
            }),
            allocator: Allocator::new(
                dir.to_path_buf(),
                file_size as usize,
                warm,
                prefault_ahead as usize,
            ),
            file_size,
            commit_backend: crate::io::CommitBackend::new(
                io_uring && pool.is_some(),
                pool.as_ref(),
            ),
            pool,
            write_via_fd,
        })
    }

    /// Start the background file pre-allocation thread, make sure the file the
    /// next put goes to exists (so open reports a full disk, and the first put
    /// does not wait for file creation), and ask for the one after it.
    pub fn start(&self) -> Result<()> {
        self.allocator.start()?;
        let current = self.current_file()?;
        if let Some(pool) = &self.pool {
            if !current.is_full() && !current.is_pooled() {
                let buf = pool.borrow().ok_or_else(|| {
                    Error::Busy("no transient store pool buffer free at open".into())
                })?;
                current.attach_buffer(buf);
            }
        }
        self.allocator
            .request(current.file_from_offset() + self.file_size);
        Ok(())
    }

    /// Stop the allocation thread.
    pub fn stop(&self) {
        self.allocator.stop();
    }

    /// Refuse appends from now on; waits for an append in progress to finish.
    pub fn close(&self) {
        self.put.locked().closed = true;
    }

    /// Whether the log follows a master: set once at open, then changed only
    /// by [`CommitLog::switch_writer`].
    pub fn set_follower(&self, follower: bool) {
        self.put.locked().follower = follower;
    }

    /// Switch who writes the log, with no put and no raw append running:
    /// `follower` true makes puts fail with [`Error::WrongRole`] and allows
    /// raw appends; false the other way round. `then` runs under the put lock
    /// before the switch (the caller records its role there); when it returns
    /// a table, it becomes the next queue offset of every queue (a slave
    /// becoming master continues its queues where they end).
    ///
    /// # Errors
    /// [`Error::ShutDown`] after close; the error of `then` (nothing changed).
    pub fn switch_writer(
        &self,
        follower: bool,
        then: impl FnOnce() -> Result<Option<HashMap<String, Vec<u64>>>>,
    ) -> Result<()> {
        let mut st = self.put.locked();
        if st.closed {
            return Err(Error::ShutDown);
        }
        if let Some(table) = then()? {
            st.set_queue_offsets(table);
        }
        st.follower = follower;
        Ok(())
    }

    /// Start `topic`'s queues at offset 0 again (the topic was deleted).
    pub fn forget_topic_offsets(&self, topic: &str) {
        let mut st = self.put.locked();
        if let Some(&id) = st.topic_ids.get(topic) {
            st.queue_offsets[id].clear();
        }
    }

    /// Set the next queue offset of every queue (after recovery).
    pub fn set_queue_offsets(&self, table: HashMap<String, Vec<u64>>) {
        self.put.locked().set_queue_offsets(table);
    }

    /// Append `len` bytes of records (all for `topic`/`queue_id`) as one unit
    /// that never spans files: `fill` writes them straight into the file (it
    /// runs once, under the put lock, and must write every byte), then the
    /// queue offset, physical offset and store timestamp of each record in
    /// `slots` are patched in. With `assign_queue_offset`, records get
    /// consecutive queue offsets; otherwise their queue offset is 0 and the
    /// table is unchanged.
    pub fn append(
        &self,
        len: usize,
        fill: impl Fn(&mut [u8]),
        slots: &[RecordSlot],
        topic: &str,
        queue_id: u32,
        assign_queue_offset: bool,
    ) -> Result<AppendResult> {
        if len + END_FILE_MIN_BLANK_LENGTH > self.file_size as usize {
            return Err(Error::IllegalMessage(format!(
                "{len} bytes cannot fit in a commitlog file of {} bytes",
                self.file_size
            )));
        }
        let mut st = self.put.locked();
        if st.closed {
            return Err(Error::ShutDown);
        }
        if st.follower {
            return Err(Error::WrongRole("a slave does not accept puts".into()));
        }
        let now = crate::sys::now_ms();
        let queue_offset = if assign_queue_offset {
            *st.slot(topic, queue_id)
        } else {
            0
        };
        let mut rolls = 0;
        let mut scratch = std::mem::take(&mut st.scratch);
        let (file_from, pos) = loop {
            let file = self.writable_file(&mut st)?;
            let rem = file.remaining();
            if len + END_FILE_MIN_BLANK_LENGTH <= rem {
                let base = file.file_from_offset();
                let write = |dst: &mut [u8], pos: usize| {
                    fill(dst);
                    for (i, s) in slots.iter().enumerate() {
                        let rec = &mut dst[s.start..];
                        let phys = base + (pos + s.start) as u64;
                        let qo = if assign_queue_offset {
                            queue_offset + i as u64
                        } else {
                            0
                        };
                        rec[QUEUE_OFFSET_POS..QUEUE_OFFSET_POS + 8]
                            .copy_from_slice(&(qo as i64).to_be_bytes());
                        rec[PHYSICAL_OFFSET_POS..PHYSICAL_OFFSET_POS + 8]
                            .copy_from_slice(&(phys as i64).to_be_bytes());
                        rec[s.store_timestamp_pos..s.store_timestamp_pos + 8]
                            .copy_from_slice(&now.to_be_bytes());
                    }
                };
                let placed = if self.write_via_fd {
                    file.append_via_fd(len, &mut scratch, write)?
                } else {
                    file.append_in_place(len, write)
                };
                match placed {
                    Some(p) => {
                        file.set_last_write_ms(now);
                        break (base, p);
                    }
                    None => {
                        return Err(Error::corruption(
                            file.path(),
                            file.wrote_position() as u64,
                            "append lost its space under the put lock",
                        ))
                    }
                }
            }
            // Blank-fill the tail: [size of the rest][BLANK magic], then roll.
            let mut blank = [0u8; 8];
            blank[..4].copy_from_slice(&(rem as i32).to_be_bytes());
            blank[4..].copy_from_slice(&BLANK_MAGIC_CODE.to_be_bytes());
            file.append_and_fill(&blank);
            rolls += 1;
            if rolls > 2 {
                return Err(Error::IllegalMessage(format!(
                    "{len} bytes do not fit in a fresh commitlog file"
                )));
            }
            // The file is full now: `writable_file` rolls to the next one.
        };
        st.scratch = scratch;
        if assign_queue_offset {
            *st.slot(topic, queue_id) += slots.len() as u64;
        }
        self.queue.set_last_store_timestamp_ms(now);
        Ok(AppendResult {
            wrote_offset: file_from + pos as u64,
            wrote_bytes: len,
            queue_offset,
            store_timestamp_ms: now,
        })
    }

    /// The file puts go to, from the put state's cache while the file list is
    /// unchanged and the file has room, else looked up (rolling a full file).
    /// The generation is read before the lookup, so a change racing with it
    /// only costs one more lookup on the next put.
    fn writable_file<'s>(&self, st: &'s mut PutState) -> Result<&'s Arc<MappedFile>> {
        let generation = self.queue.generation();
        let fresh = matches!(&st.current, Some((g, f)) if *g == generation && !f.is_full());
        if !fresh {
            let f = self.current_file()?;
            f.set_unmap_before_flush(self.pool.is_none() && !self.write_via_fd);
            st.current = Some((generation, f));
        }
        Ok(&st.current.as_ref().expect("set above").1)
    }

    fn current_file(&self) -> Result<Arc<MappedFile>> {
        match self.queue.last_file() {
            Some(f) if !f.is_full() => Ok(f),
            Some(f) => self.roll(f.file_from_offset() + self.file_size),
            None => self.roll(0),
        }
    }

    fn roll(&self, offset: u64) -> Result<Arc<MappedFile>> {
        // In pool mode a new file needs a free buffer first (else SYSTEM_BUSY).
        let buf = match &self.pool {
            Some(pool) => Some(pool.borrow().ok_or_else(|| {
                Error::Busy(format!(
                    "all {} transient store pool buffers are waiting to be committed",
                    pool.total()
                ))
            })?),
            None => None,
        };
        let f = self.allocator.take(offset)?;
        if let Some(b) = buf {
            f.attach_buffer(b);
        }
        self.queue.push(Arc::clone(&f))?;
        self.allocator.request(offset + self.file_size);
        Ok(f)
    }

    /// Keep the mapping of the file being written pre-faulted `ahead` bytes
    /// beyond the write position, until `stop` is set. Runs on its own thread.
    pub fn run_prefault(&self, stop: &std::sync::atomic::AtomicBool, ahead: usize) {
        const CHUNK: usize = 4 << 20;
        let mut done: (u64, usize) = (u64::MAX, 0); // (file start, prefaulted up to)
        while !stop.load(std::sync::atomic::Ordering::Acquire) {
            let mut worked = false;
            if let Some(f) = self.queue.last_file() {
                if done.0 != f.file_from_offset() {
                    done = (f.file_from_offset(), f.wrote_position());
                }
                let target = (f.wrote_position() + ahead).min(f.file_size());
                if done.1 < target {
                    let len = (target - done.1).min(CHUNK);
                    if let Err(e) = f.prefault(done.1, len) {
                        tracing::info!(error = %e, "MADV_POPULATE_WRITE/READ unavailable; commitlog pre-faulting is off");
                        return;
                    }
                    done.1 += len;
                    worked = true;
                }
            }
            if !worked {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }

    /// Raw log bytes from `offset`, at most `max_len`, never crossing a file
    /// (what a master streams to its slaves). `None` when nothing is readable there.
    pub fn read_raw(&self, offset: u64, max_len: usize) -> Option<MappedBytes> {
        let f = self.queue.find_by_offset(offset)?;
        let pos = (offset - f.file_from_offset()) as usize;
        let avail = f.readable_position().checked_sub(pos)?;
        if avail == 0 {
            return None;
        }
        f.slice(pos, avail.min(max_len))
    }

    /// Append raw log bytes at exactly `offset`, which must be the end of the log
    /// (a slave applying what its master streamed). The bytes must not cross a
    /// file boundary; at a boundary a new file is started.
    pub fn append_raw(&self, offset: u64, data: &[u8]) -> Result<()> {
        let st = self.put.locked();
        if st.closed {
            return Err(Error::ShutDown);
        }
        if !st.follower {
            return Err(Error::WrongRole(
                "raw commitlog appends are for a slave following its master; \
                 this store is a master (its puts write the log)"
                    .into(),
            ));
        }
        let end = self.max_offset();
        let in_file = (offset % self.file_size) as usize;
        if end == 0 && offset > 0 && in_file == 0 {
            // An empty log may start anywhere a file starts (a new slave follows
            // its master from the master's last file, as RocketMQ does).
            self.queue.delete_files_from(0)?;
        } else if offset != end {
            return Err(Error::IllegalMessage(format!(
                "raw append at {offset}, but the log ends at {end}"
            )));
        }
        if in_file + data.len() > self.file_size as usize {
            return Err(Error::IllegalMessage(format!(
                "raw append of {} bytes at {offset} crosses a file boundary",
                data.len()
            )));
        }
        let file = match self.queue.last_file() {
            Some(f) if !f.is_full() => f,
            Some(f) => self.roll(f.file_from_offset() + self.file_size)?,
            None => self.roll(offset - in_file as u64)?,
        };
        if file.file_from_offset() + file.wrote_position() as u64 != offset {
            return Err(Error::IllegalMessage(format!(
                "raw append at {offset} does not continue {}",
                file.path().display()
            )));
        }
        if file.append(data).is_none() {
            return Err(Error::IllegalMessage(format!(
                "raw append of {} bytes does not fit {}",
                data.len(),
                file.path().display()
            )));
        }
        drop(st);
        Ok(())
    }

    /// Pool mode: write buffered bytes into the files (`least_pages` as for flushes).
    pub fn commit(&self, least_pages: u32) -> Result<u64> {
        self.queue.commit(least_pages, &self.commit_backend)
    }

    /// Pool mode, SYNC_FLUSH: commit everything buffered and sync it, one
    /// backend call per file (see [`MappedFileQueue::commit_and_sync`]).
    pub fn commit_and_sync(&self) -> Result<u64> {
        self.queue.commit_and_sync(&self.commit_backend)
    }

    /// The pool's commit backend (`io_uring` or `pwrite`).
    pub fn commit_backend(&self) -> &crate::io::CommitBackend {
        &self.commit_backend
    }

    /// True when puts go through the transient store pool.
    pub fn pooled(&self) -> bool {
        self.pool.is_some()
    }

    /// Pool buffers free now (0 without a pool).
    pub fn pool_available(&self) -> usize {
        self.pool.as_ref().map(|p| p.available()).unwrap_or(0)
    }

    /// End of the written log.
    pub fn max_offset(&self) -> u64 {
        self.queue.max_offset()
    }

    /// Start of the oldest file.
    pub fn min_offset(&self) -> u64 {
        self.queue.min_offset()
    }

    /// The record at `offset`, as stored, if it is readable, after checking it
    /// as recovery does: magic, sizes and field layout, the physical offset it
    /// records, and its body CRC. `None` when no file holds `offset` or nothing
    /// is written there yet.
    ///
    /// # Errors
    /// [`Error::Corruption`] naming the commitlog file and the position in it when
    /// the bytes at `offset` are not a valid record.
    pub fn read_record(&self, offset: u64) -> Result<Option<MappedBytes>> {
        let Some(f) = self.queue.find_by_offset(offset) else {
            return Ok(None);
        };
        let pos = (offset - f.file_from_offset()) as usize;
        let data = f.bytes_from(pos);
        if data.is_empty() {
            return Ok(None);
        }
        let corrupt = |why: String| {
            Err(Error::corruption(
                f.path(),
                pos as u64,
                format!("record at commitlog offset {offset}: {why}"),
            ))
        };
        match check_record(data, true) {
            Ok(RecordCheck::Message(h)) if h.physical_offset as u64 == offset => {
                Ok(f.slice(pos, h.total_size as usize))
            }
            Ok(RecordCheck::Message(h)) => corrupt(format!(
                "its physical offset field says {}",
                h.physical_offset
            )),
            Ok(RecordCheck::Blank) => corrupt("a blank end-of-file record, not a message".into()),
            Ok(RecordCheck::End) => corrupt("zero bytes, not a message".into()),
            Err(e) => corrupt(e.reason),
        }
    }

    /// `size` bytes at `offset`, if readable.
    pub fn get_data(&self, offset: u64, size: usize) -> Option<MappedBytes> {
        let f = self.queue.find_by_offset(offset)?;
        f.slice((offset - f.file_from_offset()) as usize, size)
    }
}
