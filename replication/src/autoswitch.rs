//! Epoch mode: RocketMQ 5's controller mode ("auto switch", RIP-44) on
//! ferromq's HA connection.
//!
//! With [`HaConfig::auto_switch`](crate::HaConfig::auto_switch) set on both
//! sides, [`HaMaster`](crate::HaMaster) and [`HaSlave`](crate::HaSlave) run an
//! epoch handshake before the classic stream (offset reports one way,
//! `[i64 offset][i32 size][bytes]` frames the other). It is ferromq's own, not
//! RocketMQ's wire format, and comes after TLS and the authenticated
//! handshake when those are configured. Big-endian throughout.
//!
//! Slave → master, the hello (26 bytes):
//!
//! ```text
//! [0..8)   EPOCH_HELLO_MAGIC  F2 46 4D 51 45 50 43 48 ("\xF2FMQEPCH")
//! [8..10)  u16 version        EPOCH_PROTOCOL_VERSION (1)
//! [10..18) u64 broker id      the slave's brokerId
//! [18..26) i64 max offset     the slave's commitlog max offset (>= 0)
//! ```
//!
//! Master → slave, the answer:
//!
//! ```text
//! [0..8)   EPOCH_HELLO_MAGIC
//! [8..10)  u16 version        the master's version
//! [10]     u8 status          0 accepted; 1 version not supported (the
//!                             master closes after this byte)
//! then, when accepted:
//! u64 broker id               the master's brokerId
//! i64 min offset              the master's commitlog min offset
//! i64 max offset              the master's commitlog max offset
//! u32 count                   at most MAX_EPOCH_ENTRIES
//! count × (u32 epoch, i64 start offset), oldest first
//! ```
//!
//! The slave then works out where its history and the master's last agree:
//! for the newest epoch both have from the same start offset, the shorter of the two ends (RocketMQ's `AutoSwitchHAClient`). A
//! log longer than that point is truncated to it
//! ([`MessageStore::truncate_commit_log`](ferromq_engine::MessageStore::truncate_commit_log)),
//! the epoch file's suffix with it, and the slave adopts the master's entries.
//! Then it sends its first offset report, and the classic stream runs. A
//! slave that cannot prove its bytes consistent with the master's (no common
//! epoch and the cut would need bytes the master no longer has) refuses to
//! follow, with an error, rather than append after diverged bytes.
//!
//! A classic peer on either side is told apart at the first eight bytes: the
//! magic is negative as an offset report, which a RocketMQ slave never
//! sends, and a classic ferromq master names the mismatch when it closes.

use ferromq_engine::sync::LockExt;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::epoch::{consistent_point, EpochEntry, EpochError, EpochFile};
use crate::HaError;

/// The first eight bytes of an epoch-mode hello and of its answer. As a
/// big-endian `i64` offset report it is negative.
pub const EPOCH_HELLO_MAGIC: [u8; 8] = [0xF2, b'F', b'M', b'Q', b'E', b'P', b'C', b'H'];

/// The epoch handshake version this build speaks.
pub const EPOCH_PROTOCOL_VERSION: u16 = 1;

/// Most epoch entries a master sends (and a slave accepts) in its answer.
pub const MAX_EPOCH_ENTRIES: usize = 65_536;

/// Answer status: the hello is accepted, the epochs follow.
const STATUS_ACCEPTED: u8 = 0;
/// Answer status: the slave's version is not spoken here.
const STATUS_BAD_VERSION: u8 = 1;

/// The epoch file shared by a broker's HA side and the broker itself
/// (RocketMQ's `EpochFileCache` as the `AutoSwitchHAService` and the
/// `ReplicasManager` share it). Every change is written to the file before
/// it is visible, as [`EpochFile`] does.
#[derive(Debug)]
pub struct EpochCache {
    file: Mutex<EpochFile>,
    /// Bumped by each new entry: a master drops its slaves when it moves.
    new_entries: AtomicU64,
}

impl EpochCache {
    /// Share `file`.
    pub fn new(file: EpochFile) -> Arc<EpochCache> {
        Arc::new(EpochCache {
            file: Mutex::new(file),
            new_entries: AtomicU64::new(0),
        })
    }

    /// Open the epoch file at `path` ([`EpochFile::open`]) and share it.
    ///
    /// # Errors
    /// As [`EpochFile::open`].
    pub fn open(path: impl Into<PathBuf>) -> Result<Arc<EpochCache>, EpochError> {
        Ok(Self::new(EpochFile::open(path)?))
    }

    /// Every entry, oldest first (the last one open-ended unless a caller
    /// set its end).
    pub fn entries(&self) -> Vec<EpochEntry> {
        self.file.locked().entries().to_vec()
    }

    /// The last epoch, `None` with no entries.
    pub fn last_epoch(&self) -> Option<u32> {
        self.file.locked().last_epoch()
    }

    /// How many entries were added through this handle
    /// ([`EpochCache::become_master`]) since it was made: a master streams
    /// to a slave only while this stays what it was at the slave's hello.
    pub fn new_entries(&self) -> u64 {
        self.new_entries.load(Ordering::Acquire)
    }

    /// This broker becomes master at `epoch` with its commitlog ending at
    /// `log_end` ([`MessageStore::commit_log_max_offset`](ferromq_engine::MessageStore::commit_log_max_offset)):
    /// entries that start beyond `log_end` (copied from an earlier master
    /// whose bytes this broker never got) are cut, then `(epoch, log_end)` is
    /// appended. The master's slaves are dropped and re-handshake.
    ///
    /// `log_end` must be a record boundary: a former slave's log can end
    /// inside a record (the stream is cut by size, not by record), and
    /// RocketMQ cuts that partial record first (`truncateInvalidMsg` in
    /// `AutoSwitchHAService.changeToMaster`). A slave whose history is
    /// compared with an epoch starting mid-record cannot be truncated there
    /// ([`MessageStore::truncate_commit_log`](ferromq_engine::MessageStore::truncate_commit_log)
    /// refuses) and will not follow.
    ///
    /// # Errors
    /// [`EpochError::NotIncreasing`] when `epoch` is not above the last
    /// epoch kept; [`EpochError::Io`] when the file cannot be written. The
    /// cut may have been written when the append fails.
    pub fn become_master(&self, epoch: u32, log_end: u64) -> Result<(), EpochError> {
        let mut f = self.file.locked();
        if f.entries().iter().any(|e| e.start_offset > log_end) {
            f.truncate_suffix(log_end.saturating_add(1))?;
        }
        f.append(epoch, log_end)?;
        self.new_entries.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// Drop the entries that end at or before `offset` (retention deleted
    /// the commitlog below it; [`EpochFile::truncate_prefix`]).
    ///
    /// # Errors
    /// [`EpochError::Io`] when the file cannot be written; nothing changes.
    pub fn truncate_prefix(&self, offset: u64) -> Result<(), EpochError> {
        self.file.locked().truncate_prefix(offset)
    }

    /// A slave's log now ends at `log_end` (after a truncation to it, or
    /// unchanged) and is a prefix of the master's: cut the entries from
    /// `log_end` on when the log was cut, then take the master's entries.
    pub(crate) fn adopt(
        &self,
        truncated_to: Option<u64>,
        master: &[EpochEntry],
    ) -> Result<(), EpochError> {
        let mut f = self.file.locked();
        if let Some(at) = truncated_to {
            f.truncate_suffix(at)?;
        }
        f.replace_all(master)
    }
}

/// The epoch-mode settings of one broker ([`crate::HaConfig::auto_switch`]).
#[derive(Debug, Clone)]
pub struct AutoSwitch {
    /// The broker's epoch file, shared with the broker layer.
    pub epochs: Arc<EpochCache>,
    /// This broker's `brokerId` (a slave sends it in its hello; a master
    /// counts its own id out of the SyncStateSet).
    pub broker_id: u64,
    /// `allAckInSyncStateSet`: a SYNC put waits for every member of the
    /// SyncStateSet. Default false.
    pub all_ack_in_sync_state_set: bool,
    /// `inSyncReplicas`: with `all_ack_in_sync_state_set` off, the replicas
    /// (the master included) that must have a put. Default 1.
    pub in_sync_replicas: usize,
    /// `minInSyncReplicas`: a SYNC put fails when the SyncStateSet (the
    /// master included) is smaller. Default 1.
    pub min_in_sync_replicas: usize,
}

impl AutoSwitch {
    /// Epoch mode for broker `broker_id` over `epochs`, RocketMQ's defaults
    /// otherwise.
    pub fn new(epochs: Arc<EpochCache>, broker_id: u64) -> AutoSwitch {
        AutoSwitch {
            epochs,
            broker_id,
            all_ack_in_sync_state_set: false,
            in_sync_replicas: 1,
            min_in_sync_replicas: 1,
        }
    }
}

impl AutoSwitch {
    /// [`AutoSwitch::new`] with `allAckInSyncStateSet`, `inSyncReplicas` and
    /// `minInSyncReplicas` read from a broker properties file (RocketMQ's
    /// defaults when absent).
    ///
    /// # Errors
    /// A value that is not `true`/`false` or a positive count, naming the key.
    pub fn from_properties(
        props: &ferromq_engine::config::Properties,
        epochs: Arc<EpochCache>,
        broker_id: u64,
    ) -> Result<AutoSwitch, String> {
        let mut a = AutoSwitch::new(epochs, broker_id);
        if let Some(v) = props.get("allAckInSyncStateSet").map(str::trim) {
            a.all_ack_in_sync_state_set = v
                .parse()
                .map_err(|_| format!("allAckInSyncStateSet={v:?} is not true or false"))?;
        }
        for (key, slot) in [
            ("inSyncReplicas", &mut a.in_sync_replicas),
            ("minInSyncReplicas", &mut a.min_in_sync_replicas),
        ] {
            if let Some(v) = props.get(key).map(str::trim) {
                *slot = v
                    .parse()
                    .ok()
                    .filter(|n: &usize| *n >= 1)
                    .ok_or_else(|| format!("{key}={v:?} is not a count of at least 1"))?;
            }
        }
        Ok(a)
    }
}

/// A slave's hello, as the master read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hello {
    pub broker_id: u64,
    pub max_offset: u64,
}

/// The master's answer, as the slave read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MasterView {
    pub broker_id: u64,
    pub min_offset: u64,
    pub max_offset: u64,
    /// Ends set: each the next start, the last the master's max offset.
    pub entries: Vec<EpochEntry>,
}

fn protocol(why: impl Into<String>) -> HaError {
    HaError::Protocol(why.into())
}

fn io(context: &'static str) -> impl Fn(std::io::Error) -> HaError {
    move |e| HaError::io(context, e)
}

fn read_arr<const N: usize>(r: &mut impl Read, what: &'static str) -> Result<[u8; N], HaError> {
    let mut b = [0u8; N];
    r.read_exact(&mut b).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            protocol(format!("{what}: the peer hung up mid-handshake"))
        } else {
            HaError::io(what, e)
        }
    })?;
    Ok(b)
}

fn read_offset(r: &mut impl Read, what: &'static str) -> Result<u64, HaError> {
    let v = i64::from_be_bytes(read_arr(r, what)?);
    u64::try_from(v).map_err(|_| protocol(format!("{what}: negative offset {v}")))
}

/// The slave's side: send the hello, read the master's answer.
pub(crate) fn slave_hello(
    r: &mut impl Read,
    w: &mut impl Write,
    broker_id: u64,
    max_offset: u64,
) -> Result<MasterView, HaError> {
    let mut hello = Vec::with_capacity(26);
    hello.extend_from_slice(&EPOCH_HELLO_MAGIC);
    hello.extend_from_slice(&EPOCH_PROTOCOL_VERSION.to_be_bytes());
    hello.extend_from_slice(&broker_id.to_be_bytes());
    hello.extend_from_slice(&(max_offset as i64).to_be_bytes());
    w.write_all(&hello)
        .and_then(|_| w.flush())
        .map_err(io("sending the epoch hello"))?;
    let magic: [u8; 8] = read_arr(
        r,
        "reading the master's epoch answer (does it run in epoch mode?)",
    )?;
    if magic != EPOCH_HELLO_MAGIC {
        return Err(protocol(
            "the master did not answer the epoch hello (it runs classic HA, not epoch mode)",
        ));
    }
    let version = u16::from_be_bytes(read_arr(r, "reading the master's epoch version")?);
    let [status] = read_arr(r, "reading the master's epoch status")?;
    match status {
        STATUS_ACCEPTED if version == EPOCH_PROTOCOL_VERSION => {}
        STATUS_BAD_VERSION => {
            return Err(protocol(format!(
                "the master speaks epoch handshake version {version}, not {EPOCH_PROTOCOL_VERSION}"
            )))
        }
        s => {
            return Err(protocol(format!(
                "bad epoch answer: version {version}, status {s}"
            )))
        }
    }
    let master_id = u64::from_be_bytes(read_arr(r, "reading the master's broker id")?);
    let min_offset = read_offset(r, "the master's min offset")?;
    let max_offset = read_offset(r, "the master's max offset")?;
    let count = u32::from_be_bytes(read_arr(r, "reading the master's epoch count")?) as usize;
    if count > MAX_EPOCH_ENTRIES || min_offset > max_offset {
        return Err(protocol(format!(
            "bad epoch answer: {count} entries, log [{min_offset}, {max_offset})"
        )));
    }
    let mut entries: Vec<EpochEntry> = Vec::with_capacity(count);
    for _ in 0..count {
        let epoch = u32::from_be_bytes(read_arr(r, "reading an epoch entry")?);
        let start = read_offset(r, "an epoch entry's start")?;
        if let Some(prev) = entries.last_mut() {
            if epoch <= prev.epoch || start < prev.start_offset {
                return Err(protocol(format!(
                    "the master's epochs are out of order: {epoch}-{start} after {}-{}",
                    prev.epoch, prev.start_offset
                )));
            }
            prev.end_offset = start;
        }
        if start > max_offset {
            return Err(protocol(format!(
                "the master's epoch {epoch} starts at {start}, beyond its max offset {max_offset}"
            )));
        }
        entries.push(EpochEntry::new(epoch, start));
    }
    if let Some(last) = entries.last_mut() {
        last.end_offset = max_offset;
    }
    Ok(MasterView {
        broker_id: master_id,
        min_offset,
        max_offset,
        entries,
    })
}

/// The master's side: read the hello. `Err` when it is not one (nothing was
/// answered) or names a version not spoken here (answered with status 1).
pub(crate) fn master_read_hello(r: &mut impl Read, w: &mut impl Write) -> Result<Hello, HaError> {
    let magic: [u8; 8] = read_arr(r, "reading the epoch hello")?;
    if magic != EPOCH_HELLO_MAGIC {
        let as_report = i64::from_be_bytes(magic);
        return Err(protocol(if magic == crate::auth::HANDSHAKE_MAGIC {
            "the slave asked for the authenticated HA handshake, but this master runs without ACL"
                .to_string()
        } else if as_report >= 0 {
            format!(
                "a classic HA slave (first offset report {as_report}) connected to an epoch-mode master"
            )
        } else {
            "the connection did not start with the epoch hello".to_string()
        }));
    }
    let version = u16::from_be_bytes(read_arr(r, "reading the hello's version")?);
    if version != EPOCH_PROTOCOL_VERSION {
        let mut a = EPOCH_HELLO_MAGIC.to_vec();
        a.extend_from_slice(&EPOCH_PROTOCOL_VERSION.to_be_bytes());
        a.push(STATUS_BAD_VERSION);
        let _ = w.write_all(&a).and_then(|_| w.flush());
        return Err(protocol(format!(
            "the slave speaks epoch handshake version {version}, not {EPOCH_PROTOCOL_VERSION}"
        )));
    }
    let broker_id = u64::from_be_bytes(read_arr(r, "reading the hello's broker id")?);
    let max_offset = read_offset(r, "the hello's max offset")?;
    Ok(Hello {
        broker_id,
        max_offset,
    })
}

/// The master's answer to an accepted hello.
pub(crate) fn master_answer(
    w: &mut impl Write,
    broker_id: u64,
    min_offset: u64,
    max_offset: u64,
    entries: &[EpochEntry],
) -> Result<(), HaError> {
    let entries = &entries[entries.len().saturating_sub(MAX_EPOCH_ENTRIES)..];
    let mut a = Vec::with_capacity(39 + entries.len() * 12);
    a.extend_from_slice(&EPOCH_HELLO_MAGIC);
    a.extend_from_slice(&EPOCH_PROTOCOL_VERSION.to_be_bytes());
    a.push(STATUS_ACCEPTED);
    a.extend_from_slice(&broker_id.to_be_bytes());
    a.extend_from_slice(&(min_offset as i64).to_be_bytes());
    a.extend_from_slice(&(max_offset as i64).to_be_bytes());
    a.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    for e in entries {
        a.extend_from_slice(&e.epoch.to_be_bytes());
        a.extend_from_slice(&(e.start_offset as i64).to_be_bytes());
    }
    w.write_all(&a)
        .and_then(|_| w.flush())
        .map_err(io("sending the epoch answer"))
}

/// Where a slave whose log is `[local_min, local_max)` with epochs `local`
/// stands against `master`: `Ok(None)` to follow from its max offset as it
/// is, `Ok(Some(p))` to truncate its log to `p` first (its bytes beyond `p`
/// are not the master's), `Err` when it cannot follow without bytes the
/// master no longer has or bytes it cannot prove the master's.
pub(crate) fn plan_follow(
    local: &[EpochEntry],
    local_min: u64,
    local_max: u64,
    master: &MasterView,
) -> Result<Option<u64>, HaError> {
    let Some(first) = master.entries.first() else {
        return Err(protocol(
            "the master has no epoch entries (it has not become master of any epoch)",
        ));
    };
    if local_max == 0 {
        // A new slave: the master streams what it still has.
        return Ok(None);
    }
    // This log's epochs as they describe it: entries copied from a master
    // beyond this log's end say nothing of its bytes.
    let mut mine: Vec<EpochEntry> = local
        .iter()
        .copied()
        .filter(|e| e.start_offset <= local_max)
        .collect();
    if let Some(last) = mine.last_mut() {
        last.end_offset = local_max;
    }
    let point = match consistent_point(&mine, &master.entries) {
        Some(p) => p.min(local_max),
        // No common epoch: nothing after the first epoch either side knows
        // is proven the master's.
        None => {
            let earliest = mine.first().map_or(first.start_offset, |m| {
                m.start_offset.min(first.start_offset)
            });
            earliest.min(local_max)
        }
    };
    let follow_from = point;
    if follow_from < master.min_offset {
        return Err(protocol(format!(
            "cannot follow the master: this slave's log agrees with it only up to {point} \
             (its log is [{local_min}, {local_max}), epochs {}), but the master's log starts at {} \
             (epochs {}); clear this slave's store to copy the master afresh",
            fmt_entries(&mine),
            master.min_offset,
            fmt_entries(&master.entries)
        )));
    }
    if point < local_max {
        if point < local_min {
            return Err(protocol(format!(
                "cannot follow the master: the logs agree only up to {point}, below this \
                 slave's min offset {local_min}; clear this slave's store"
            )));
        }
        return Ok(Some(point));
    }
    Ok(None)
}

fn fmt_entries(e: &[EpochEntry]) -> String {
    let v: Vec<String> = e
        .iter()
        .map(|e| format!("{}-{}", e.epoch, e.start_offset))
        .collect();
    format!("[{}]", v.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(min: u64, max: u64, e: &[(u32, u64)]) -> MasterView {
        let mut entries: Vec<EpochEntry> = e.iter().map(|&(a, b)| EpochEntry::new(a, b)).collect();
        for i in 1..entries.len() {
            entries[i - 1].end_offset = entries[i].start_offset;
        }
        if let Some(l) = entries.last_mut() {
            l.end_offset = max;
        }
        MasterView {
            broker_id: 1,
            min_offset: min,
            max_offset: max,
            entries,
        }
    }

    fn local(e: &[(u32, u64)]) -> Vec<EpochEntry> {
        view(0, u64::MAX, e).entries
    }

    #[test]
    fn hello_round_trip_and_refusals() {
        let mut hello = Vec::new();
        // The slave's hello, answered by a master from a canned buffer.
        let mut answer = Vec::new();
        master_answer(
            &mut answer,
            7,
            0,
            900,
            &[EpochEntry::new(1, 0), EpochEntry::new(2, 500)],
        )
        .unwrap();
        let v = slave_hello(&mut &answer[..], &mut hello, 3, 640).unwrap();
        assert_eq!(hello.len(), 26);
        assert_eq!(&hello[..8], &EPOCH_HELLO_MAGIC);
        assert_eq!(
            v,
            MasterView {
                broker_id: 7,
                ..view(0, 900, &[(1, 0), (2, 500)])
            }
        );
        let h = master_read_hello(&mut &hello[..], &mut Vec::new()).unwrap();
        assert_eq!(
            h,
            Hello {
                broker_id: 3,
                max_offset: 640
            }
        );
        // Every strict prefix of the hello or the answer is an error.
        for n in 0..hello.len() {
            assert!(master_read_hello(&mut &hello[..n], &mut Vec::new()).is_err());
        }
        for n in 0..answer.len() {
            assert!(slave_hello(&mut &answer[..n], &mut Vec::new(), 3, 0).is_err());
        }
        // A classic report, an unknown version (answered with status 1).
        let classic = 640i64.to_be_bytes();
        let e = master_read_hello(&mut &classic[..], &mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("classic"), "{e}");
        let mut v9 = hello.clone();
        v9[8..10].copy_from_slice(&9u16.to_be_bytes());
        let mut out = Vec::new();
        assert!(master_read_hello(&mut &v9[..], &mut out).is_err());
        assert_eq!(out.len(), 11);
        let e = slave_hello(&mut &out[..], &mut Vec::new(), 3, 0).unwrap_err();
        assert!(e.to_string().contains("version"), "{e}");
        // Out-of-order entries, or one beyond the master's end.
        let mut bad = Vec::new();
        master_answer(
            &mut bad,
            7,
            0,
            900,
            &[EpochEntry::new(2, 0), EpochEntry::new(1, 500)],
        )
        .unwrap();
        assert!(slave_hello(&mut &bad[..], &mut Vec::new(), 3, 0).is_err());
        let mut beyond = Vec::new();
        master_answer(&mut beyond, 7, 0, 100, &[EpochEntry::new(1, 500)]).unwrap();
        assert!(slave_hello(&mut &beyond[..], &mut Vec::new(), 3, 0).is_err());
    }

    #[test]
    fn settings_from_properties() {
        let d = tempfile::tempdir().unwrap();
        let e = EpochCache::open(d.path().join("epochs")).unwrap();
        let p = ferromq_engine::config::Properties::parse(
            "allAckInSyncStateSet=true\ninSyncReplicas=2\nminInSyncReplicas=3\n",
        );
        let a = AutoSwitch::from_properties(&p, e.clone(), 4).unwrap();
        assert!(a.all_ack_in_sync_state_set);
        assert_eq!(
            (a.in_sync_replicas, a.min_in_sync_replicas, a.broker_id),
            (2, 3, 4)
        );
        let d = AutoSwitch::from_properties(&Default::default(), e.clone(), 1).unwrap();
        assert!(!d.all_ack_in_sync_state_set);
        assert_eq!((d.in_sync_replicas, d.min_in_sync_replicas), (1, 1));
        for bad in [
            "allAckInSyncStateSet=yes",
            "minInSyncReplicas=0",
            "inSyncReplicas=x",
        ] {
            let p = ferromq_engine::config::Properties::parse(bad);
            let err = AutoSwitch::from_properties(&p, e.clone(), 1).unwrap_err();
            assert!(err.contains(bad.split('=').next().unwrap()), "{err}");
        }
    }

    #[test]
    fn become_master_cuts_copied_entries_beyond_the_log() {
        let d = tempfile::tempdir().unwrap();
        let e = EpochCache::open(d.path().join("epochs")).unwrap();
        // Copied from a master whose epoch 2 bytes never arrived.
        e.adopt(None, &[EpochEntry::new(1, 0), EpochEntry::new(2, 500)])
            .unwrap();
        assert_eq!(e.new_entries(), 0);
        e.become_master(3, 300).unwrap();
        let got: Vec<_> = e
            .entries()
            .iter()
            .map(|x| (x.epoch, x.start_offset))
            .collect();
        assert_eq!(got, [(1, 0), (3, 300)]);
        assert_eq!(e.new_entries(), 1);
        // An entry starting exactly at the end stays (an empty epoch).
        e.become_master(4, 300).unwrap();
        assert_eq!(e.entries().len(), 3);
        assert!(e.become_master(4, 900).is_err(), "epochs only go up");
        // Persisted.
        let again = EpochCache::open(d.path().join("epochs")).unwrap();
        assert_eq!(again.entries().len(), 3);
        assert_eq!(again.last_epoch(), Some(4));
    }

    #[test]
    fn plans() {
        let m = view(0, 900, &[(1, 0), (2, 500)]);
        // Diverged tail: was master at 1 up to 700; the new master's epoch
        // 2 began at 500.
        assert_eq!(
            plan_follow(&local(&[(1, 0)]), 0, 700, &m).unwrap(),
            Some(500)
        );
        // Lagging, no divergence: nothing cut.
        assert_eq!(plan_follow(&local(&[(1, 0)]), 0, 300, &m).unwrap(), None);
        assert_eq!(
            plan_follow(&local(&[(1, 0), (2, 500)]), 0, 600, &m).unwrap(),
            None
        );
        // Copied entries beyond the log's end do not count.
        assert_eq!(
            plan_follow(&local(&[(1, 0), (2, 500)]), 0, 400, &m).unwrap(),
            None
        );
        // New slave.
        assert_eq!(plan_follow(&[], 0, 0, &m).unwrap(), None);
        // No common epoch: back to the first epoch either side knows.
        assert_eq!(
            plan_follow(&local(&[(5, 100)]), 0, 700, &m).unwrap(),
            Some(0)
        );
        assert_eq!(plan_follow(&[], 0, 700, &m).unwrap(), Some(0));
        // ... refused when the master no longer has those bytes.
        let trimmed = view(400, 900, &[(2, 500)]);
        assert!(plan_follow(&local(&[(1, 0)]), 0, 700, &trimmed).is_err());
        // A slave behind the master's min offset cannot follow.
        assert!(plan_follow(&local(&[(2, 500)]), 0, 300, &view(400, 900, &[(2, 0)])).is_err());
        // A master without epochs.
        assert!(plan_follow(&[], 0, 0, &view(0, 0, &[])).is_err());
    }
}
