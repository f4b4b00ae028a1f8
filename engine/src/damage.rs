//! Damage found while reading: how a consume-queue unit relates to the record
//! it points at, and the records found damaged (logged once, counted, listed).

use crate::sync::LockExt;
use std::collections::{BTreeMap, HashMap, HashSet};
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
    /// Consume-queue units that point at no record and could not be repaired:
    /// per queue, ranges of queue offsets (start -> end, exclusive), so that
    /// remembering never stops and a long damaged stretch stays small.
    units: HashMap<(String, u32), BTreeMap<u64, u64>>,
}

/// Is `q` in one of the ranges?
fn in_ranges(r: &BTreeMap<u64, u64>, q: u64) -> bool {
    r.range(..=q).next_back().is_some_and(|(_, end)| q < *end)
}

/// Add `q` to the ranges, merging it with its neighbours.
fn add_to_ranges(r: &mut BTreeMap<u64, u64>, q: u64) {
    let mut start = q;
    let mut end = q + 1;
    if let Some((&s, &e)) = r.range(..q).next_back() {
        if e == q {
            start = s;
        }
    }
    if let Some(e) = r.remove(&end) {
        end = e;
    }
    r.insert(start, end);
}

impl DamagedRecords {
    /// Note a damaged record: the first time it is seen, log it, count it and
    /// list it (while the list has room).
    pub fn note(&self, rec: DamagedRecord, file: &std::path::Path) {
        let mut g = self.inner.locked();
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
    /// not be rebuilt because the commitlog cannot give its record back
    /// (`error` says what the read found, `why` why it could not be rebuilt):
    /// reads skip it from now on (every such unit is remembered). Listed like
    /// a damaged record, with 0 as its commitlog offset.
    pub fn note_unit(
        &self,
        topic: &str,
        queue_id: u32,
        queue_offset: u64,
        error: &crate::Error,
        why: &str,
    ) {
        let mut g = self.inner.locked();
        let ranges = g.units.entry((topic.to_string(), queue_id)).or_default();
        if in_ranges(ranges, queue_offset) {
            return;
        }
        add_to_ranges(ranges, queue_offset);
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
        let g = self.inner.locked();
        !g.units.is_empty()
            && g.units
                .get(&(topic.to_string(), queue_id))
                .is_some_and(|r| in_ranges(r, queue_offset))
    }

    /// The log was cut at commitlog offset `cut` and each queue now ends at
    /// `queue_max(topic, queue_id)` (a live truncation): forget the damaged
    /// records at or after `cut` and the unreadable units at or after their
    /// queue's new end, so that the records and units written there next
    /// are read. The count stays (it counts what was found).
    pub fn forget_cut(&self, cut: u64, queue_max: impl Fn(&str, u32) -> u64) {
        let mut g = self.inner.locked();
        g.seen.retain(|off| *off < cut);
        let Remembered { list, units, .. } = &mut *g;
        list.retain(|r| {
            if r.commit_log_offset == 0 {
                r.queue_offset < queue_max(&r.topic, r.queue_id)
            } else {
                r.commit_log_offset < cut
            }
        });
        units.retain(|(topic, queue_id), ranges| {
            let max = queue_max(topic, *queue_id);
            ranges.retain(|start, _| *start < max);
            if let Some(mut last) = ranges.last_entry() {
                let end = last.get_mut();
                *end = (*end).min(max);
            }
            !ranges.is_empty()
        });
    }

    /// Damaged records found so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The listed damaged records, in the order found.
    pub fn list(&self) -> Vec<DamagedRecord> {
        self.inner.locked().list.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_forgets_what_it_removed() {
        let d = DamagedRecords::default();
        let rec = |off: u64| DamagedRecord {
            topic: "T".into(),
            queue_id: 0,
            queue_offset: off / 100,
            commit_log_offset: off,
            reason: "x".into(),
        };
        d.note(rec(1000), std::path::Path::new("f"));
        d.note(rec(5000), std::path::Path::new("f"));
        let e = crate::Error::ShutDown;
        for q in [3, 4, 5, 6, 9] {
            d.note_unit("T", 0, q, &e, "why");
        }
        d.forget_cut(2000, |_, _| 5);
        assert_eq!(d.count(), 7, "the count stays");
        assert!(d.has_unit("T", 0, 3) && d.has_unit("T", 0, 4));
        assert!(!d.has_unit("T", 0, 5) && !d.has_unit("T", 0, 6) && !d.has_unit("T", 0, 9));
        let listed: Vec<_> = d.list().iter().map(|r| (r.commit_log_offset, r.queue_offset)).collect();
        assert_eq!(listed, [(1000, 10), (0, 3), (0, 4)]);
        // Noted again once the cut stretch holds records again.
        d.note(rec(5000), std::path::Path::new("f"));
        assert_eq!(d.count(), 8);
    }

    #[test]
    fn noted_units_are_remembered_as_merged_ranges() {
        let mut r = BTreeMap::new();
        for q in [5u64, 7, 6, 9, 4, 100] {
            add_to_ranges(&mut r, q);
        }
        assert_eq!(
            r.into_iter().collect::<Vec<_>>(),
            [(4, 8), (9, 10), (100, 101)]
        );
        let d = DamagedRecords::default();
        let e = crate::Error::ShutDown;
        // Far more than were ever capped: every one stays remembered.
        for q in 0..70_000u64 {
            d.note_unit("T", 0, q * 2, &e, "test");
        }
        assert_eq!(d.count(), 70_000);
        assert!(d.has_unit("T", 0, 69_999 * 2));
        assert!(!d.has_unit("T", 0, 3));
        assert!(!d.has_unit("T", 1, 0));
        d.note_unit("T", 0, 0, &e, "again");
        assert_eq!(d.count(), 70_000, "counted once");
    }
}
