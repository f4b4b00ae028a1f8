//! The log-reading dispatch pass: follow the commitlog from the dispatch
//! position, file by file, and turn each record into a consume-queue unit
//! and index entries.

use super::{
    Arrivals, CqTable, Dispatcher, Placed, QueueGap, Refusal, UnitBatcher, PUBLISH_EVERY_RECORDS,
};
use std::sync::atomic::Ordering;

use crate::commitlog::CommitLog;
use crate::consume_queue::CqUnit;
use crate::error::{Error, Result};
use crate::index::IndexService;
use crate::message::{check_record, sys_flag, RecordCheck};

impl Dispatcher {
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
        let refused_before = self.health.refused.load(Ordering::Relaxed);
        loop {
            let from = self.dispatched_offset();
            let Some(f) = commitlog.queue.find_by_offset(from) else {
                // Before the first file (deleted) -> jump to the min; after the last -> done.
                let min = commitlog.min_offset();
                if from < min && commitlog.queue.file_count() > 0 {
                    self.reput_from.store(min, Ordering::Release);
                    continue;
                }
                break;
            };
            let pos = (from - f.file_from_offset()) as usize;
            let data = f.bytes_from(pos);
            if data.is_empty() {
                if pos as u64 >= file_size {
                    // Read to the end of this file: on to the next.
                    self.reput_from
                        .store(f.file_from_offset() + file_size, Ordering::Release);
                    continue;
                }
                if f.is_fully_readable() {
                    // Bytes arrived after the snapshot: read them (a blank record
                    // at the tail sends us to the next file).
                    continue;
                }
                break;
            }
            let mut p = 0usize;
            // Records read since the units were last written and the position
            // moved, and the store time of the last of them.
            let mut unpublished = 0usize;
            let mut last_store_timestamp_ms = None;
            let mut next_file = false;
            // Whether this snapshot reaches the end of the file: decide on the
            // snapshot, not on the file's position now (the writer may have moved on).
            let snapshot_full = pos + data.len() >= f.file_size();
            let mut incomplete = false;
            while p < data.len() {
                // A record not yet fully readable (a slave receives the log in
                // chunks that need not end on a record boundary): wait for the rest.
                let rest = &data[p..];
                if rest.len() < 8 && !snapshot_full {
                    incomplete = true;
                    break;
                }
                if rest.len() >= 8 {
                    let total = i32::from_be_bytes(rest[..4].try_into().expect("4"));
                    let magic = i32::from_be_bytes(rest[4..8].try_into().expect("4"));
                    if magic == crate::message::MESSAGE_MAGIC_CODE
                        && total > 0
                        && total as usize > rest.len()
                        && !snapshot_full
                    {
                        incomplete = true;
                        break;
                    }
                }
                match check_record(rest, false) {
                    Ok(RecordCheck::Message(h)) => {
                        let tx = h.sys_flag & sys_flag::TRANSACTION_MASK;
                        let mut refused = None;
                        if tx == sys_flag::TRANSACTION_NOT_TYPE
                            || tx == sys_flag::TRANSACTION_COMMIT_TYPE
                        {
                            let unit = CqUnit {
                                commit_log_offset: h.physical_offset as u64,
                                size: h.total_size,
                                tags_code: self.tags_code(&h),
                            };
                            let target = (h.topic, h.queue_id, h.queue_offset as u64);
                            let here = f.file_from_offset() + (pos + p) as u64;
                            match batch.put(cqs, target, unit, strict) {
                                Ok(Placed::Taken) => {}
                                Ok(Placed::Gap(gap)) => {
                                    self.publish(&mut batch, here, last_store_timestamp_ms)?;
                                    // Dispatched again from the log's start by
                                    // the caller: refusals are counted then.
                                    self.health.refused.store(refused_before, Ordering::Relaxed);
                                    return Ok(Err(gap));
                                }
                                Ok(Placed::Refused(why)) => refused = Some(why),
                                Err(e) => {
                                    // Its queue cannot be created or grown (no
                                    // descriptor, no space): the records before it
                                    // keep their units, the position stops at it
                                    // and the caller retries; readers of the
                                    // written units are told now.
                                    self.publish(&mut batch, here, last_store_timestamp_ms)?;
                                    batch.notify(arrivals);
                                    return Err(e);
                                }
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
                        if let (Some(ix), None) = (index, refused) {
                            let indexed = ix.build_index(
                                h.topic,
                                h.properties,
                                h.sys_flag,
                                h.physical_offset as u64,
                                h.store_timestamp_ms,
                            );
                            if let Err(e) = indexed {
                                // As for a bad record: what came before stays readable.
                                self.publish(
                                    &mut batch,
                                    f.file_from_offset() + (pos + p) as u64,
                                    last_store_timestamp_ms,
                                )?;
                                return Err(e);
                            }
                        }
                        p += h.total_size as usize;
                        count += 1;
                        last_store_timestamp_ms = Some(h.store_timestamp_ms);
                        unpublished += 1;
                        if unpublished >= PUBLISH_EVERY_RECORDS {
                            self.publish(
                                &mut batch,
                                f.file_from_offset() + (pos + p) as u64,
                                last_store_timestamp_ms,
                            )?;
                            unpublished = 0;
                        }
                    }
                    Ok(RecordCheck::Blank) => {
                        next_file = true;
                        break;
                    }
                    Ok(RecordCheck::End) => break,
                    Err(e) => {
                        // The records before the bad one stay readable: their
                        // units are written and the position stops at it.
                        self.publish(
                            &mut batch,
                            f.file_from_offset() + (pos + p) as u64,
                            last_store_timestamp_ms,
                        )?;
                        return Err(Error::corruption(
                            f.path(),
                            (pos + p) as u64,
                            format!(
                                "dispatch found an invalid record below the write position: {e}"
                            ),
                        ));
                    }
                }
            }
            self.publish(
                &mut batch,
                f.file_from_offset() + (pos + p) as u64,
                last_store_timestamp_ms,
            )?;
            // Tell waiting readers after every snapshot, not only when the log
            // stops growing (a busy log would keep long-polling consumers waiting).
            batch.notify(arrivals);
            if next_file {
                self.reput_from
                    .store(f.file_from_offset() + file_size, Ordering::Release);
                continue;
            }
            if p == data.len() && !incomplete {
                continue;
            }
            break;
        }
        batch.notify(arrivals);
        Ok(Ok(count))
    }
}
