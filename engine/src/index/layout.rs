//! The index file format: sizes, the header, an entry, the file name, and
//! the check of a header read from disk.

use std::path::Path;

use crate::error::{Error, Result};

/// Header size in bytes.
pub(crate) const HEADER_BYTES: u64 = 40;
/// Size of one hash slot in bytes.
pub(crate) const SLOT_BYTES: u64 = 4;
/// Size of one index entry in bytes.
pub(crate) const ENTRY_BYTES: u64 = 20;

/// Width of an index file name: `yyyyMMddHHmmssSSS`.
pub(crate) const NAME_DIGITS: usize = 17;

/// Size of an index file for a slot count and an entry count.
pub(crate) fn file_size_bytes(slot_num: u32, index_num: u32) -> u64 {
    HEADER_BYTES + SLOT_BYTES * u64::from(slot_num) + ENTRY_BYTES * u64::from(index_num)
}

/// The 40-byte header (`IndexHeader`), decoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Header {
    /// Store timestamp (ms) of the first entry, or the previous file's end.
    pub begin_ts: i64,
    /// Store timestamp (ms) of the last entry.
    pub end_ts: i64,
    /// Commitlog offset of the first entry, or the previous file's end.
    pub begin_phy: i64,
    /// Commitlog offset of the last entry.
    pub end_phy: i64,
    /// Slots that are in use (RocketMQ 4.x counts a slot when it stops being empty).
    pub hash_slot_count: i32,
    /// Number of the next entry; entries are numbered from 1.
    pub index_count: i32,
}

impl Header {
    pub(crate) fn encode(&self) -> [u8; HEADER_BYTES as usize] {
        let mut b = [0u8; HEADER_BYTES as usize];
        b[0..8].copy_from_slice(&self.begin_ts.to_be_bytes());
        b[8..16].copy_from_slice(&self.end_ts.to_be_bytes());
        b[16..24].copy_from_slice(&self.begin_phy.to_be_bytes());
        b[24..32].copy_from_slice(&self.end_phy.to_be_bytes());
        b[32..36].copy_from_slice(&self.hash_slot_count.to_be_bytes());
        b[36..40].copy_from_slice(&self.index_count.to_be_bytes());
        b
    }

    pub(crate) fn decode(b: &[u8; HEADER_BYTES as usize]) -> Header {
        Header {
            begin_ts: be_i64(&b[0..8]),
            end_ts: be_i64(&b[8..16]),
            begin_phy: be_i64(&b[16..24]),
            end_phy: be_i64(&b[24..32]),
            hash_slot_count: be_i32(&b[32..36]),
            index_count: be_i32(&b[36..40]),
        }
    }

    /// RocketMQ's `IndexFile.isTimeMatched`: does `[begin, end]` overlap the file?
    pub(crate) fn time_matched(&self, begin_ms: i64, end_ms: i64) -> bool {
        (begin_ms < self.begin_ts && end_ms > self.end_ts)
            || (begin_ms >= self.begin_ts && begin_ms <= self.end_ts)
            || (end_ms >= self.begin_ts && end_ms <= self.end_ts)
    }
}

/// One 20-byte entry, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub key_hash: i32,
    pub phy: i64,
    pub time_diff_s: i32,
    pub prev: i32,
}

impl Entry {
    pub(super) fn encode(&self) -> [u8; ENTRY_BYTES as usize] {
        let mut b = [0u8; ENTRY_BYTES as usize];
        b[0..4].copy_from_slice(&self.key_hash.to_be_bytes());
        b[4..12].copy_from_slice(&self.phy.to_be_bytes());
        b[12..16].copy_from_slice(&self.time_diff_s.to_be_bytes());
        b[16..20].copy_from_slice(&self.prev.to_be_bytes());
        b
    }

    pub(super) fn decode(b: &[u8]) -> Entry {
        Entry {
            key_hash: be_i32(&b[0..4]),
            phy: be_i64(&b[4..12]),
            time_diff_s: be_i32(&b[12..16]),
            prev: be_i32(&b[16..20]),
        }
    }
}

pub(super) fn be_i32(b: &[u8]) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    i32::from_be_bytes(a)
}

fn be_i64(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    i64::from_be_bytes(a)
}

/// Check a header read from disk. `indexCount` 0 (a RocketMQ file created but
/// never flushed) reads as 1, as `IndexHeader.load` does.
pub(super) fn check_header(path: &Path, h: &mut Header, index_num: u32) -> Result<()> {
    if h.index_count == 0 {
        h.index_count = 1;
    }
    if h.index_count < 0 || h.index_count > index_num as i32 {
        return Err(Error::corruption(
            path,
            36,
            format!(
                "indexCount {} outside 1..={index_num} (maxIndexNum)",
                h.index_count
            ),
        ));
    }
    if h.hash_slot_count < 0 || h.hash_slot_count > h.index_count - 1 {
        return Err(Error::corruption(
            path,
            32,
            format!(
                "hashSlotCount {} outside 0..={} (entries in the file)",
                h.hash_slot_count,
                h.index_count - 1
            ),
        ));
    }
    if h.begin_phy < 0 {
        return Err(Error::corruption(
            path,
            16,
            format!("beginPhyOffset {} is negative", h.begin_phy),
        ));
    }
    if h.end_phy < h.begin_phy {
        return Err(Error::corruption(
            path,
            24,
            format!(
                "endPhyOffset {} is below beginPhyOffset {}",
                h.end_phy, h.begin_phy
            ),
        ));
    }
    Ok(())
}

/// `yyyyMMddHHmmssSSS` as a file name.
pub(crate) fn format_name(name: u64) -> String {
    format!("{name:0width$}", width = NAME_DIGITS)
}

/// Parse a 17-digit index file name.
pub(crate) fn parse_name(s: &str) -> Option<u64> {
    if s.len() == NAME_DIGITS && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}
