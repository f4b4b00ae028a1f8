//! Damage found while reading: how a consume-queue unit relates to the record
//! it points at, and the records found damaged (logged once, counted, listed).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::consume_queue::CqUnit;
use crate::message::{body_crc, check_record, RecordCheck, MESSAGE_MAGIC_CODE};

/// How a consume-queue unit relates to the bytes it points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnitCheck {
    /// The unit describes the record, and the record passes its checks.
    Matches,
    /// The unit is right (the record there is the one it describes: size,
    /// topic, queue and queue offset agree, or its magic and size do), but the
    /// record is damaged: its body fails its CRC, its physical-offset field is
    /// wrong, or its header does not parse. Rebuilding the queue cannot help.
    RecordDamaged,
    /// The unit does not describe the record there (another record, the
    /// middle of one, zeros, or nothing): the consume queue is damaged.
    UnitWrong,
}

/// Compare unit `u` (at `queue_offset` of `topic`/`queue_id`) with the bytes
/// `b` it points at. With `delay_levels_ms`, the tag code is compared too; with
/// `check_crc`, the body CRC.
pub(crate) fn classify(
    b: &[u8],
    u: &CqUnit,
    topic: &str,
    queue_id: u32,
    queue_offset: u64,
    delay_levels_ms: Option<&[i64]>,
    check_crc: bool,
) -> UnitCheck {
    match check_record(b, false) {
        Ok(RecordCheck::Message(h)) => {
            let same = h.total_size == u.size
                && h.topic == topic
                && h.queue_id == queue_id
                && h.queue_offset as u64 == queue_offset;
            if !same
                || delay_levels_ms
                    .is_some_and(|d| crate::dispatch::unit_tags_code(&h, d) != u.tags_code)
            {
                UnitCheck::UnitWrong
            } else if h.physical_offset as u64 != u.commit_log_offset
                || (check_crc && body_crc(h.body) != h.body_crc)
            {
                UnitCheck::RecordDamaged
            } else {
                UnitCheck::Matches
            }
        }
        Ok(_) => UnitCheck::UnitWrong,
        Err(_) => {
            // The header does not parse: believe the unit when the record's
            // size field and magic agree with it.
            let field = |at: usize| {
                b.get(at..at + 4)
                    .map(|x| i32::from_be_bytes(x.try_into().expect("4")))
            };
            if field(0) == Some(u.size as i32) && field(4) == Some(MESSAGE_MAGIC_CODE) {
                UnitCheck::RecordDamaged
            } else {
                UnitCheck::UnitWrong
            }
        }
    }
}

/// A record a read found damaged and skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamagedRecord {
    /// Topic of the queue that points at it.
    pub topic: String,
    /// Queue id.
    pub queue_id: u32,
    /// Queue offset of its unit.
    pub queue_offset: u64,
    /// Commitlog offset of the record (0 for a consume-queue unit that points
    /// at no record and could not be rebuilt).
    pub commit_log_offset: u64,
    /// What is wrong with it.
    pub reason: String,
}

/// At most this many damaged records are listed (the first found).
pub const MAX_LISTED_DAMAGED_RECORDS: usize = 100;

/// At most this many damaged records are remembered, so that each is logged
/// and counted once; past it, each further read of an unknown damaged record
/// counts again and is not logged.
const MAX_REMEMBERED: usize = 65_536;

/// The records reads found damaged.
#[derive(Debug, Default)]
pub(crate) struct DamagedRecords {
    count: AtomicU64,
    inner: Mutex<Remembered>,
}

#[derive(Debug, Default)]
struct Remembered {
    list: Vec<DamagedRecord>,
    seen: HashSet<u64>,
    /// Consume-queue units that point at no record and could not be repaired.
    units: HashSet<(String, u32, u64)>,
}

impl DamagedRecords {
    /// Note a damaged record: the first time it is seen, log it, count it and
    /// list it (while the list has room).
    pub fn note(&self, rec: DamagedRecord, file: &std::path::Path) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if g.seen.contains(&rec.commit_log_offset) {
            return;
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        if g.seen.len() >= MAX_REMEMBERED {
            return;
        }
        g.seen.insert(rec.commit_log_offset);
        tracing::error!(topic = %rec.topic, queue_id = rec.queue_id,
            queue_offset = rec.queue_offset, commit_log_offset = rec.commit_log_offset,
            file = %file.display(), reason = %rec.reason,
            "damaged record skipped by reads: its message cannot be delivered");
        if g.list.len() < MAX_LISTED_DAMAGED_RECORDS {
            g.list.push(rec);
        }
    }

    /// Note a consume-queue unit that does not point at its record and could
    /// not be rebuilt (`error` says what the read found, `why` why it could
    /// not be rebuilt): reads skip it from now on. Listed like a damaged record,
    /// with the unit's offset as its commitlog offset.
    pub fn note_unit(
        &self,
        topic: &str,
        queue_id: u32,
        queue_offset: u64,
        error: &crate::Error,
        why: &str,
    ) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if g.units.len() >= MAX_REMEMBERED
            || !g.units.insert((topic.to_string(), queue_id, queue_offset))
        {
            return;
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        tracing::error!(topic, queue_id, queue_offset, %error, why,
            "consume queue unit cannot be rebuilt from the commitlog; reads skip it");
        if g.list.len() < MAX_LISTED_DAMAGED_RECORDS {
            g.list.push(DamagedRecord {
                topic: topic.to_string(),
                queue_id,
                queue_offset,
                commit_log_offset: 0,
                reason: format!("{error}; not rebuilt: {why}"),
            });
        }
    }

    /// Was this unit noted by [`DamagedRecords::note_unit`]?
    pub fn has_unit(&self, topic: &str, queue_id: u32, queue_offset: u64) -> bool {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        !g.units.is_empty()
            && g.units
                .contains(&(topic.to_string(), queue_id, queue_offset))
    }

    /// Damaged records found so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The listed damaged records, in the order found.
    pub fn list(&self) -> Vec<DamagedRecord> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .list
            .clone()
    }
}
