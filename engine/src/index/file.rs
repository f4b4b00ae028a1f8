//! One index file: its header and (while writable) its hash slots in memory,
//! its bytes on disk through positional reads and writes.
//!
//! See the parent module for the layout and the concurrency design.

use crate::sync::RwLockExt;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::layout::{
    be_i32, check_header, file_size_bytes, format_name, Entry, Header, ENTRY_BYTES, HEADER_BYTES,
    SLOT_BYTES,
};
use crate::error::{Error, Result};
use crate::fs::sync_dir;

/// Slots per dirty-tracking page (4 KiB of slots).
const SLOTS_PER_PAGE: usize = 1024;
/// Entries buffered in memory are written out once they reach this many bytes.
const SPILL_BYTES: usize = 64 * 1024;
/// Zeros are written in chunks of this size when a truncation clears entries.
const ZERO_CHUNK_BYTES: usize = 1 << 20;

/// The in-memory part of a writable file.
struct Active {
    /// The whole slot table: the source of truth while the file is writable.
    slots: Vec<i32>,
    /// One bit per [`SLOTS_PER_PAGE`] slots changed since the last write-out.
    dirty_pages: Vec<u64>,
    /// Encoded entries not yet written to the file, numbered from `pending_from`.
    pending: Vec<u8>,
    pending_from: i32,
}

impl Active {
    fn mark_dirty(&mut self, slot: usize) {
        let page = slot / SLOTS_PER_PAGE;
        self.dirty_pages[page / 64] |= 1u64 << (page % 64);
    }

    fn pending_entries(&self) -> i32 {
        (self.pending.len() / ENTRY_BYTES as usize) as i32
    }
}

/// Mutable state of a file, behind its lock.
struct State {
    header: Header,
    header_dirty: bool,
    /// Bumped on every change; compared with `synced_gen` to know if a sync is due.
    change_gen: u64,
    synced_gen: u64,
    active: Option<Active>,
}

/// One index file.
pub(crate) struct IndexFile {
    path: PathBuf,
    name: u64,
    file: File,
    slot_num: u32,
    index_num: u32,
    state: RwLock<State>,
}

impl std::fmt::Debug for IndexFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexFile")
            .field("path", &self.path)
            .field("header", &self.header())
            .finish()
    }
}

impl IndexFile {
    /// Create `dir/<name>` with its full size and a header whose begin and end
    /// are the previous file's end (when positive), as `new IndexFile(...)` does.
    /// The file is made under a `.tmp` name and renamed, then the directory is synced.
    pub(crate) fn create(
        dir: &Path,
        name: u64,
        slot_num: u32,
        index_num: u32,
        prev_end_ts: i64,
        prev_end_phy: i64,
    ) -> Result<IndexFile> {
        let path = dir.join(format_name(name));
        let tmp = dir.join(format!("{}.tmp", format_name(name)));
        let size = file_size_bytes(slot_num, index_num);
        let mut header = Header {
            index_count: 1,
            ..Header::default()
        };
        if prev_end_phy > 0 {
            header.begin_phy = prev_end_phy;
            header.end_phy = prev_end_phy;
        }
        if prev_end_ts > 0 {
            header.begin_ts = prev_end_ts;
            header.end_ts = prev_end_ts;
        }
        let made = (|| -> std::io::Result<File> {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&tmp)?;
            file.set_len(size)?;
            file.write_all_at(&header.encode(), 0)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            Ok(file)
        })();
        let file = made.map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::io(format!("creating index file {}", path.display()), e)
        })?;
        sync_dir(dir)?;
        Ok(IndexFile {
            path,
            name,
            file,
            slot_num,
            index_num,
            state: RwLock::new(State {
                header,
                header_dirty: false,
                change_gen: 0,
                synced_gen: 0,
                active: Some(Active {
                    slots: vec![0; slot_num as usize],
                    dirty_pages: vec![0; dirty_words(slot_num)],
                    pending: Vec::new(),
                    pending_from: 1,
                }),
            }),
        })
    }

    /// Open an existing file and check its length and header.
    ///
    /// # Errors
    ///
    /// [`Error::Corruption`] naming the file and the offset of the bad field when
    /// the length is not `40 + 4 x slots + 20 x entries` or the header is inconsistent.
    pub(crate) fn open(path: &Path, name: u64, slot_num: u32, index_num: u32) -> Result<IndexFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| Error::io(format!("opening index file {}", path.display()), e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io(format!("stat {}", path.display()), e))?
            .len();
        let expected = file_size_bytes(slot_num, index_num);
        if len != expected {
            return Err(Error::corruption(
                path,
                0,
                format!(
                    "index file length is {len}, expected {expected} \
                     (40 + 4 x maxHashSlotNum {slot_num} + 20 x maxIndexNum {index_num})"
                ),
            ));
        }
        let mut hb = [0u8; HEADER_BYTES as usize];
        file.read_exact_at(&mut hb, 0)
            .map_err(|e| Error::io(format!("reading header of {}", path.display()), e))?;
        let mut header = Header::decode(&hb);
        check_header(path, &mut header, index_num)?;
        Ok(IndexFile {
            path: path.to_path_buf(),
            name,
            file,
            slot_num,
            index_num,
            state: RwLock::new(State {
                header,
                header_dirty: false,
                change_gen: 0,
                synced_gen: 0,
                active: None,
            }),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The name as a number (`yyyyMMddHHmmssSSS`).
    pub(crate) fn name(&self) -> u64 {
        self.name
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read_locked()
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write_locked()
    }

    /// A copy of the header as it is in memory (newer than the disk's until a flush).
    pub(crate) fn header(&self) -> Header {
        self.read().header
    }

    /// True when no entry can be added (`indexCount >= maxIndexNum`).
    pub(crate) fn is_full(&self) -> bool {
        self.read().header.index_count >= self.index_num as i32
    }

    fn entry_offset(&self, n: i32) -> u64 {
        HEADER_BYTES + SLOT_BYTES * u64::from(self.slot_num) + ENTRY_BYTES * n.max(0) as u64
    }

    fn slot_offset(&self, slot: usize) -> u64 {
        HEADER_BYTES + SLOT_BYTES * slot as u64
    }

    /// Load the slot table into memory so the file can take entries.
    fn ensure_active(&self, st: &mut State) -> Result<()> {
        if st.active.is_some() {
            return Ok(());
        }
        let n = self.slot_num as usize;
        let mut raw = vec![0u8; n * SLOT_BYTES as usize];
        self.file
            .read_exact_at(&mut raw, HEADER_BYTES)
            .map_err(|e| Error::io(format!("reading slots of {}", self.path.display()), e))?;
        let slots = raw.chunks_exact(4).map(be_i32).collect();
        st.active = Some(Active {
            slots,
            dirty_pages: vec![0; dirty_words(self.slot_num)],
            pending: Vec::new(),
            pending_from: st.header.index_count.max(1),
        });
        Ok(())
    }

    /// Make the file writable (slots in memory).
    pub(crate) fn activate(&self) -> Result<()> {
        if self.read().active.is_some() {
            return Ok(());
        }
        let mut st = self.write();
        self.ensure_active(&mut st)
    }

    fn read_slot(&self, st: &State, slot: usize) -> Option<i32> {
        if let Some(a) = &st.active {
            return a.slots.get(slot).copied();
        }
        let mut b = [0u8; 4];
        self.file
            .read_exact_at(&mut b, self.slot_offset(slot))
            .ok()?;
        Some(i32::from_be_bytes(b))
    }

    /// Entry `n`, which the caller has checked to be below `index_count`.
    fn read_entry(&self, st: &State, n: i32) -> std::io::Result<Entry> {
        if let Some(a) = &st.active {
            if n >= a.pending_from && n < a.pending_from + a.pending_entries() {
                let at = (n - a.pending_from) as usize * ENTRY_BYTES as usize;
                return Ok(Entry::decode(&a.pending[at..at + ENTRY_BYTES as usize]));
            }
        }
        let mut b = [0u8; ENTRY_BYTES as usize];
        self.file.read_exact_at(&mut b, self.entry_offset(n))?;
        Ok(Entry::decode(&b))
    }

    /// `IndexFile.putKey`. Returns `Ok(false)` when the file is full.
    pub(crate) fn put(&self, key_hash: i32, phy: i64, store_ts: i64) -> Result<bool> {
        let mut st = self.write();
        let h = st.header;
        if h.index_count >= self.index_num as i32 {
            return Ok(false);
        }
        self.ensure_active(&mut st)?;
        let n = h.index_count.max(1);
        let slot = (key_hash.max(0) as u32 % self.slot_num) as usize;
        let State {
            header,
            active,
            header_dirty,
            change_gen,
            ..
        } = &mut *st;
        let a = active.as_mut().expect("made active above");
        let mut slot_value = a.slots[slot];
        if slot_value <= 0 || slot_value >= n {
            slot_value = 0;
        }
        let time_diff_s = if header.begin_ts <= 0 {
            0
        } else {
            (store_ts.saturating_sub(header.begin_ts) / 1000).clamp(0, i64::from(i32::MAX)) as i32
        };
        let entry = Entry {
            key_hash,
            phy,
            time_diff_s,
            prev: slot_value,
        };
        if a.pending_from + a.pending_entries() != n {
            // Not contiguous (cannot happen while the header is consistent): write out first.
            spill(&self.file, &self.path, a, self.entry_offset(a.pending_from))?;
            a.pending_from = n;
        }
        if a.pending.is_empty() {
            a.pending_from = n;
        }
        a.pending.extend_from_slice(&entry.encode());
        a.slots[slot] = n;
        a.mark_dirty(slot);
        if n <= 1 {
            header.begin_phy = phy;
            header.begin_ts = store_ts;
        }
        if slot_value == 0 {
            header.hash_slot_count = header.hash_slot_count.wrapping_add(1);
        }
        header.index_count = n + 1;
        header.end_phy = phy;
        header.end_ts = store_ts;
        *header_dirty = true;
        *change_gen += 1;
        if a.pending.len() >= SPILL_BYTES {
            let at = self.entry_offset(a.pending_from);
            spill(&self.file, &self.path, a, at)?;
        }
        Ok(true)
    }

    /// `IndexFile.selectPhyOffset`: walk the chain of `key_hash`'s slot, adding the
    /// offsets of entries with an equal hash and a time in `[begin_ms, end_ms]`
    /// until `out` holds `max` offsets. Never fails: a bad slot, entry or link ends
    /// the walk. Each step takes the lock briefly, so a long walk does not hold up
    /// the writer.
    pub(crate) fn select(
        &self,
        key_hash: i32,
        max: usize,
        begin_ms: i64,
        end_ms: i64,
        out: &mut Vec<u64>,
    ) {
        let slot = (key_hash.max(0) as u32 % self.slot_num) as usize;
        let (header, slot_value) = {
            let st = self.read();
            (st.header, self.read_slot(&st, slot))
        };
        let count = header.index_count;
        let Some(mut n) = slot_value else { return };
        if n <= 0 || n >= count || count <= 1 {
            return;
        }
        let mut steps = 0i64;
        while out.len() < max && steps < i64::from(count) {
            steps += 1;
            let entry = {
                let st = self.read();
                // A truncation may have shrunk the file since the walk began.
                if n >= st.header.index_count {
                    return;
                }
                match self.read_entry(&st, n) {
                    Ok(e) => e,
                    Err(_) => return,
                }
            };
            if entry.time_diff_s < 0 {
                return;
            }
            let time_read = header
                .begin_ts
                .saturating_add(i64::from(entry.time_diff_s) * 1000);
            let time_matched = time_read >= begin_ms && time_read <= end_ms;
            if entry.key_hash == key_hash && time_matched && entry.phy >= 0 {
                out.push(entry.phy as u64);
            }
            // Links always point to an older entry; anything else ends the walk.
            if entry.prev <= 0 || entry.prev >= n || time_read < begin_ms {
                return;
            }
            n = entry.prev;
        }
    }

    /// Write out buffered entries, changed slots and the header, then `fdatasync`.
    /// A full file whose bytes are all durable drops its in-memory slots.
    pub(crate) fn flush(&self) -> Result<()> {
        let gen = {
            let mut st = self.write();
            let State {
                header,
                header_dirty,
                active,
                change_gen,
                synced_gen,
            } = &mut *st;
            if *change_gen == *synced_gen && !*header_dirty {
                drop(st);
                return self.drop_slots_if_sealed();
            }
            if let Some(a) = active.as_mut() {
                let at = self.entry_offset(a.pending_from);
                spill(&self.file, &self.path, a, at)?;
                write_dirty_slots(&self.file, &self.path, a, self.slot_num)?;
            }
            if *header_dirty {
                self.file.write_all_at(&header.encode(), 0).map_err(|e| {
                    Error::io(format!("writing header of {}", self.path.display()), e)
                })?;
                *header_dirty = false;
            }
            *change_gen
        };
        self.file
            .sync_data()
            .map_err(|e| Error::io(format!("fdatasync {}", self.path.display()), e))?;
        {
            let mut st = self.write();
            st.synced_gen = st.synced_gen.max(gen);
        }
        self.drop_slots_if_sealed()
    }

    fn drop_slots_if_sealed(&self) -> Result<()> {
        if self.read().active.is_none() {
            return Ok(());
        }
        let mut st = self.write();
        if is_clean(&st) && st.header.index_count >= self.index_num as i32 {
            st.active = None;
        }
        Ok(())
    }

    /// Drop the in-memory slots if everything in them is written and synced.
    pub(crate) fn deactivate(&self) {
        let mut st = self.write();
        if is_clean(&st) {
            st.active = None;
        }
    }

    /// For every slot that points at entry `k` or later (or is negative), the newest
    /// entry below `k` on its chain (0 when none), following links through entries
    /// below `readable` only. Links must point to older entries; a walk that finds
    /// anything else ends at 0.
    fn slots_past(&self, st: &State, k: i32, readable: i32) -> Result<Vec<(usize, i32)>> {
        let io = |e| Error::io(format!("reading entries of {}", self.path.display()), e);
        let mut fixes = Vec::new();
        let slots = &st.active.as_ref().expect("active").slots;
        for (i, &v0) in slots.iter().enumerate() {
            if v0 < k && v0 >= 0 {
                continue;
            }
            let mut v = v0.max(0);
            while v >= k {
                let prev = if v < readable {
                    self.read_entry(st, v).map_err(io)?.prev
                } else {
                    0
                };
                v = if prev > 0 && prev < v { prev } else { 0 };
            }
            fixes.push((i, v));
        }
        Ok(fixes)
    }

    /// Load the slots of a file that is not full and repair slots that point past
    /// `indexCount`: a flush that stopped after writing entries and slots but before
    /// the header leaves them, and they would hide the older entries of their chain.
    /// Such a slot goes back to the newest entry below `indexCount` on its chain (the
    /// entries were written before the slots). Returns how many slots changed; the
    /// repair reaches the disk with the next flush.
    pub(crate) fn activate_and_repair(&self) -> Result<usize> {
        let mut st = self.write();
        self.ensure_active(&mut st)?;
        let count = st.header.index_count;
        let fixes = self.slots_past(&st, count, self.index_num as i32)?;
        if fixes.is_empty() {
            return Ok(0);
        }
        let State {
            header,
            header_dirty,
            change_gen,
            active,
            ..
        } = &mut *st;
        let a = active.as_mut().expect("active");
        for &(i, v) in &fixes {
            a.slots[i] = v;
            a.mark_dirty(i);
        }
        header.hash_slot_count = a.slots.iter().filter(|v| **v > 0).count() as i32;
        *header_dirty = true;
        *change_gen += 1;
        Ok(fixes.len())
    }

    /// Remove every entry whose commitlog offset is `>= phy`. Entries are added in
    /// offset order, so those form a tail `[k, indexCount)`; slots that point into it
    /// are walked back to their newest older entry, the header is recomputed and the
    /// cleared entries are zeroed. Returns `Ok(true)` when no entry is left (the
    /// caller deletes the file). The caller flushes.
    ///
    /// `endTimestamp` becomes the store time of the new last entry as the file records
    /// it (seconds after `beginTimestamp`), rounded up to the end of that second and
    /// capped at the old value: entries keep no milliseconds.
    pub(crate) fn truncate_from(&self, phy: i64) -> Result<bool> {
        let mut st = self.write();
        self.ensure_active(&mut st)?;
        let io = |e| Error::io(format!("reading entries of {}", self.path.display()), e);
        let old = st.header;
        let mut k = old.index_count.max(1);
        while k > 1 && self.read_entry(&st, k - 1).map_err(io)?.phy >= phy {
            k -= 1;
        }
        if k == old.index_count {
            return Ok(false);
        }
        if k <= 1 {
            return Ok(true);
        }
        let fixes = self.slots_past(&st, k, old.index_count)?;
        let last = self.read_entry(&st, k - 1).map_err(io)?;
        let State {
            header,
            header_dirty,
            change_gen,
            active,
            ..
        } = &mut *st;
        let a = active.as_mut().expect("active");
        for (i, v) in fixes {
            a.slots[i] = v;
            a.mark_dirty(i);
        }
        if k >= a.pending_from {
            let keep = (k - a.pending_from) as usize * ENTRY_BYTES as usize;
            a.pending.truncate(keep);
        } else {
            a.pending.clear();
            a.pending_from = k;
        }
        // Zero the removed entries' bytes, whichever of them reached the disk.
        let mut from = self.entry_offset(k);
        let to = self.entry_offset(old.index_count);
        let zeros = vec![0u8; ZERO_CHUNK_BYTES];
        while from < to {
            let len = ((to - from) as usize).min(ZERO_CHUNK_BYTES);
            self.file.write_all_at(&zeros[..len], from).map_err(|e| {
                Error::io(format!("clearing entries of {}", self.path.display()), e)
            })?;
            from += len as u64;
        }
        header.index_count = k;
        header.end_phy = last.phy;
        header.end_ts = if k - 1 == 1 {
            header.begin_ts
        } else {
            header
                .begin_ts
                .saturating_add(i64::from(last.time_diff_s.max(0)) * 1000 + 999)
                .min(old.end_ts)
                .max(header.begin_ts)
        };
        header.hash_slot_count = a.slots.iter().filter(|v| **v > 0).count() as i32;
        *header_dirty = true;
        *change_gen += 1;
        Ok(false)
    }

    /// Remove the file from disk and sync the directory. Readers holding the file
    /// keep reading through the open descriptor.
    pub(crate) fn delete(&self) -> Result<()> {
        if let Some(h) = crate::io::hook_for(&self.path) {
            h.before_remove(&self.path)
                .map_err(|e| Error::io(format!("deleting {}", self.path.display()), e))?;
        }
        std::fs::remove_file(&self.path)
            .map_err(|e| Error::io(format!("deleting {}", self.path.display()), e))?;
        if let Some(dir) = self.path.parent() {
            sync_dir(dir)?;
        }
        Ok(())
    }
}

/// True when the file's memory holds nothing that is not written and synced.
fn is_clean(st: &State) -> bool {
    st.change_gen == st.synced_gen
        && !st.header_dirty
        && st
            .active
            .as_ref()
            .is_some_and(|a| a.pending.is_empty() && a.dirty_pages.iter().all(|w| *w == 0))
}

fn dirty_words(slot_num: u32) -> usize {
    (slot_num as usize).div_ceil(SLOTS_PER_PAGE).div_ceil(64)
}

/// Write the buffered entries at `at` (the offset of entry `pending_from`).
fn spill(file: &File, path: &Path, a: &mut Active, at: u64) -> Result<()> {
    if a.pending.is_empty() {
        return Ok(());
    }
    file.write_all_at(&a.pending, at)
        .map_err(|e| Error::io(format!("writing index entries to {}", path.display()), e))?;
    a.pending_from += a.pending_entries();
    a.pending.clear();
    Ok(())
}

/// Write every run of dirty slot pages with one positional write each.
fn write_dirty_slots(file: &File, path: &Path, a: &mut Active, slot_num: u32) -> Result<()> {
    let pages = (slot_num as usize).div_ceil(SLOTS_PER_PAGE);
    let is_dirty = |p: usize, a: &Active| a.dirty_pages[p / 64] & (1u64 << (p % 64)) != 0;
    let mut p = 0;
    let mut buf = Vec::new();
    while p < pages {
        if !is_dirty(p, a) {
            p += 1;
            continue;
        }
        let start = p;
        while p < pages && is_dirty(p, a) {
            p += 1;
        }
        let s0 = start * SLOTS_PER_PAGE;
        let s1 = (p * SLOTS_PER_PAGE).min(slot_num as usize);
        buf.clear();
        for v in &a.slots[s0..s1] {
            buf.extend_from_slice(&v.to_be_bytes());
        }
        file.write_all_at(&buf, HEADER_BYTES + SLOT_BYTES * s0 as u64)
            .map_err(|e| Error::io(format!("writing index slots to {}", path.display()), e))?;
    }
    a.dirty_pages.iter_mut().for_each(|w| *w = 0);
    Ok(())
}
