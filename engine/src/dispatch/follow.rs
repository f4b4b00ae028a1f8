//! The log-reading dispatch pass: follow the commitlog from the dispatch
//! position, file by file, and turn each record into a consume-queue unit
//! and index entries.

use crate::consume_queue::CqTable;
use super::{
    Arrivals, Dispatcher, Placed, QueueGap, Refusal, UnitBatcher, PUBLISH_EVERY_RECORDS,
};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::commitlog::CommitLog;
use crate::consume_queue::CqUnit;
use crate::error::{Error, Result};
use crate::index::IndexService;
use crate::mapped_file::MappedFile;
use crate::message::{check_record, sys_flag, RecordCheck, RecordHeader};

/// What one dispatch call works with, the same for every record.
struct Pass<'a> {
    cqs: &'a CqTable,
    index: Option<&'a IndexService>,
    arrivals: &'a Arrivals,
    /// Stop at a record whose queue misses units before it (recovery).
    strict: bool,
    /// Refused-record count when the call began (restored on a gap: the
    /// caller dispatches again from the log's start and counts them then).
    refused_before: u64,
}

/// Where the dispatch position stands in the log.
enum Located {
    /// In `file`, at byte `pos` of it.
    At(Arc<MappedFile>, usize),
    /// The position moved (or bytes arrived): look again.
    Again,
    /// Nothing more to read now.
    Stop,
}

/// How far a pass over one snapshot of a file got.
struct SnapshotRead {
    /// Bytes of the snapshot read (whole records).
    p: usize,
    /// Store time of the last record read, if any.
    last_store_timestamp_ms: Option<i64>,
    /// A blank record ends the file: go on at the next one.
    next_file: bool,
    /// The snapshot ends inside a record: wait for the rest.
    incomplete: bool,
}

/// What dispatching one message record did.
enum Dispatched {
    /// Its unit is collected (or it was refused) and it is indexed.
    Done,
    /// Its queue misses units before it (a strict pass stops here).
    Gap(QueueGap),
    /// Its queue cannot be created or grown.
    QueueFailed(Error),
    /// Its index entries cannot be written.
    IndexFailed(Error),
}

impl Dispatcher {
    /// Dispatch from the dispatch position to the end of what is readable,
    /// snapshot by snapshot of each file; with `strict`, stop at the first
    /// record whose consume queue misses units before it and return the gap.
    pub(super) fn dispatch_inner(
        &self,
        commitlog: &CommitLog,
        cqs: &CqTable,
        index: Option<&IndexService>,
        arrivals: &Arrivals,
        strict: bool,
    ) -> Result<std::result::Result<usize, QueueGap>> {
        let mut count = 0;
        let mut batch = UnitBatcher::default();
        let file_size = commitlog.queue.file_size();
        let pass = Pass {
            cqs,
            index,
            arrivals,
            strict,
            refused_before: self.health.refused.load(Ordering::Relaxed),
        };
        loop {
            let (f, pos) = match self.locate(commitlog) {
                Located::At(f, pos) => (f, pos),
                Located::Again => continue,
                Located::Stop => break,
            };
            let mut data = f.bytes_from(pos);
            // The confirm offset: bytes past it are not dispatched yet (a
            // record across it reads as incomplete and waits).
            let start = f.file_from_offset() + pos as u64;
            let limit = self.limit();
            if start.saturating_add(data.len() as u64) > limit {
                let keep = limit.saturating_sub(start).min(data.len() as u64) as usize;
                if keep == 0 {
                    break;
                }
                data = &data[..keep];
            }
            if data.is_empty() {
                match self.past_readable_end(&f, pos, file_size) {
                    Located::Again => continue,
                    _ => break,
                }
            }
            let read = match self.dispatch_snapshot(&pass, &mut batch, &f, pos, data, &mut count)? {
                Ok(read) => read,
                Err(gap) => return Ok(Err(gap)),
            };
            self.publish(
                &mut batch,
                f.file_from_offset() + (pos + read.p) as u64,
                read.last_store_timestamp_ms,
            )?;
            // Tell waiting readers after every snapshot, not only when the log
            // stops growing (a busy log would keep long-polling consumers waiting).
            batch.notify(arrivals);
            if read.next_file {
                self.reput_from
                    .store(f.file_from_offset() + file_size, Ordering::Release);
                continue;
            }
            if read.p == data.len() && !read.incomplete {
                continue;
            }
            break;
        }
        batch.notify(arrivals);
        Ok(Ok(count))
    }

    /// The file holding the dispatch position and the position in it. Before
    /// the first file (deleted) the position jumps to the log's minimum; after
    /// the last file there is nothing to read.
    fn locate(&self, commitlog: &CommitLog) -> Located {
        let from = self.dispatched_offset();
        let Some(f) = commitlog.queue.find_by_offset(from) else {
            // Before the first file (deleted) -> jump to the min; after the last -> done.
            let min = commitlog.min_offset();
            if from < min && commitlog.queue.file_count() > 0 {
                self.reput_from.store(min, Ordering::Release);
                return Located::Again;
            }
            return Located::Stop;
        };
        let pos = (from - f.file_from_offset()) as usize;
        Located::At(f, pos)
    }

    /// Nothing readable at `pos` of `f`: at the file's end, move on to the
    /// next file; if the file became fully readable since, read again; else
    /// stop (the writer has not got further).
    fn past_readable_end(&self, f: &MappedFile, pos: usize, file_size: u64) -> Located {
        if pos as u64 >= file_size {
            // Read to the end of this file: on to the next.
            self.reput_from
                .store(f.file_from_offset() + file_size, Ordering::Release);
            return Located::Again;
        }
        if f.is_fully_readable() {
            // Bytes arrived after the snapshot: read them (a blank record
            // at the tail sends us to the next file).
            return Located::Again;
        }
        Located::Stop
    }

    /// Dispatch the whole records of `data`, a snapshot of `f` from byte
    /// `pos`, counting them in `count`; write the collected units and move the
    /// position every [`PUBLISH_EVERY_RECORDS`] records. On an error the
    /// records before the failing one keep their units and the position stops
    /// at it.
    fn dispatch_snapshot(
        &self,
        pass: &Pass<'_>,
        batch: &mut UnitBatcher,
        f: &MappedFile,
        pos: usize,
        data: &[u8],
        count: &mut usize,
    ) -> Result<std::result::Result<SnapshotRead, QueueGap>> {
        let mut read = SnapshotRead {
            p: 0,
            last_store_timestamp_ms: None,
            next_file: false,
            incomplete: false,
        };
        // Records read since the units were last written and the position
        // moved.
        let mut unpublished = 0usize;
        // Whether this snapshot reaches the end of the file: decide on the
        // snapshot, not on the file's position now (the writer may have moved on).
        let snapshot_full = pos + data.len() >= f.file_size();
        while read.p < data.len() {
            let rest = &data[read.p..];
            if record_incomplete(rest, snapshot_full) {
                read.incomplete = true;
                break;
            }
            let here = f.file_from_offset() + (pos + read.p) as u64;
            match check_record(rest, false) {
                Ok(RecordCheck::Message(h)) => {
                    match self.dispatch_message(pass, batch, &h) {
                        Dispatched::Done => {}
                        Dispatched::Gap(gap) => {
                            self.publish(batch, here, read.last_store_timestamp_ms)?;
                            // Dispatched again from the log's start by
                            // the caller: refusals are counted then.
                            self.health
                                .refused
                                .store(pass.refused_before, Ordering::Relaxed);
                            return Ok(Err(gap));
                        }
                        Dispatched::QueueFailed(e) => {
                            // Its queue cannot be created or grown (no
                            // descriptor, no space): the records before it
                            // keep their units, the position stops at it
                            // and the caller retries; readers of the
                            // written units are told now.
                            self.publish(batch, here, read.last_store_timestamp_ms)?;
                            batch.notify(pass.arrivals);
                            return Err(e);
                        }
                        Dispatched::IndexFailed(e) => {
                            // As for a bad record: what came before stays readable.
                            self.publish(batch, here, read.last_store_timestamp_ms)?;
                            return Err(e);
                        }
                    }
                    read.p += h.total_size as usize;
                    *count += 1;
                    read.last_store_timestamp_ms = Some(h.store_timestamp_ms);
                    unpublished += 1;
                    if unpublished >= PUBLISH_EVERY_RECORDS {
                        self.publish(
                            batch,
                            f.file_from_offset() + (pos + read.p) as u64,
                            read.last_store_timestamp_ms,
                        )?;
                        unpublished = 0;
                    }
                }
                Ok(RecordCheck::Blank) => {
                    read.next_file = true;
                    break;
                }
                Ok(RecordCheck::End) => break,
                Err(e) => {
                    // The records before the bad one stay readable: their
                    // units are written and the position stops at it.
                    self.publish(batch, here, read.last_store_timestamp_ms)?;
                    return Err(Error::corruption(
                        f.path(),
                        (pos + read.p) as u64,
                        format!("dispatch found an invalid record below the write position: {e}"),
                    ));
                }
            }
        }
        Ok(Ok(read))
    }

    /// Dispatch one message record: collect its consume-queue unit (a
    /// transaction's prepared and rolled-back records get none), refuse it if
    /// its queue target is invalid, and index it unless refused.
    #[inline]
    fn dispatch_message(
        &self,
        pass: &Pass<'_>,
        batch: &mut UnitBatcher,
        h: &RecordHeader<'_>,
    ) -> Dispatched {
        let tx = h.sys_flag & sys_flag::TRANSACTION_MASK;
        let mut refused = None;
        if tx == sys_flag::TRANSACTION_NOT_TYPE || tx == sys_flag::TRANSACTION_COMMIT_TYPE {
            let unit = CqUnit {
                commit_log_offset: h.physical_offset as u64,
                size: h.total_size,
                tags_code: self.tags_code(h),
            };
            let target = (h.topic, h.queue_id, h.queue_offset as u64);
            match batch.put(pass.cqs, target, unit, pass.strict) {
                Ok(Placed::Taken) => {}
                Ok(Placed::Gap(gap)) => return Dispatched::Gap(gap),
                Ok(Placed::Refused(why)) => refused = Some(why),
                Err(e) => return Dispatched::QueueFailed(e),
            }
        } else if crate::message::validate_topic(h.topic).is_err() {
            // No queue for these; the index still must not take the name.
            refused = Some(Refusal::TopicName);
        }
        if let Some(why) = refused {
            self.refuse(
                h.topic,
                h.physical_offset as u64,
                h.queue_id,
                h.queue_offset as u64,
                why,
            );
        }
        if let (Some(ix), None) = (pass.index, refused) {
            let indexed = ix.build_index(
                h.topic,
                h.properties,
                h.sys_flag,
                h.physical_offset as u64,
                h.store_timestamp_ms,
            );
            if let Err(e) = indexed {
                return Dispatched::IndexFailed(e);
            }
        }
        Dispatched::Done
    }
}

/// A record not yet fully readable at the start of `rest` (a slave receives
/// the log in chunks that need not end on a record boundary): wait for the
/// rest. Only a snapshot that does not reach the file's end can end inside a
/// record.
#[inline]
fn record_incomplete(rest: &[u8], snapshot_full: bool) -> bool {
    if rest.len() < 8 && !snapshot_full {
        return true;
    }
    if rest.len() >= 8 {
        let total = i32::from_be_bytes(rest[..4].try_into().expect("4"));
        let magic = i32::from_be_bytes(rest[4..8].try_into().expect("4"));
        if magic == crate::message::MESSAGE_MAGIC_CODE
            && total > 0
            && total as usize > rest.len()
            && !snapshot_full
        {
            return true;
        }
    }
    false
}
