//! Timer messages at any time, as RocketMQ 5 stores them: a put carrying
//! `TIMER_DELIVER_MS` (epoch ms), `TIMER_DELAY_SEC` or `TIMER_DELAY_MS` waits
//! until then and is then stored on its real topic and queue.
//!
//! # Layout
//!
//! - The waiting message is written to the commitlog on the system topic
//!   [`TIMER_TOPIC`], queue 0, with its real topic and queue kept in
//!   `REAL_TOPIC` / `REAL_QID` and its due time in `TIMER_OUT_MS`, which is
//!   also its consume-queue tag code. The commitlog is the timer's write-ahead
//!   log: a put is acknowledged once that record is stored, as any put.
//! - One service thread ("enqueue") reads that consume queue and appends a
//!   40-byte unit per message to the **timer log** (`<storePathRootDir>/timerlog/`,
//!   files of `mappedFileSizeTimerLog` bytes named by their first byte
//!   position): the record's commitlog offset and size, its delivery slot,
//!   the position of the previous unit of the same slot, its consume-queue
//!   offset, and a CRC.
//! - The **wheel** maps each slot (a multiple of `timerPrecisionMs`) to the
//!   last unit of that slot; units of a slot are linked backwards through the
//!   log. The wheel is a fixed array of `2 × timerMaxDelaySec × 1000 /
//!   timerPrecisionMs` slots (16 bytes each), allocated zeroed so that only
//!   the pages of slots in use are ever touched: memory does not grow with the
//!   number of pending timers, which live on disk. It is rebuilt from the
//!   timer log at start.
//! - The same thread ("dequeue") walks the slots up to the clock: slot `t`
//!   holds the messages due in `(t - precision, t]` and is delivered once the
//!   clock reaches `t`, so no message is delivered early, and at most one
//!   precision late (plus scheduling).
//! - `config/timercheck` records the next slot to deliver and the commitlog
//!   end at that moment, written once a second once the commitlog is flushed
//!   to that end and the timer log is synced.
//!
//! # Exactly once across crashes
//!
//! Each delivered message carries `TIMER_SRC`, the commitlog offset of its
//! waiting record. At start, the records written after the checkpoint's
//! commitlog end are scanned for it: a unit whose source is found there was
//! delivered before the crash and is not delivered again. Every delivery of a
//! slot at or after the checkpoint's slot is written after that commitlog end,
//! so the scan sees all of them.

mod log;

use crate::sync::LockExt;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::message::{decode_record, keys, sys_flag, Message, MessageExt};
use crate::store::StoreInner;
use log::{TimerLog, Unit};

/// The system topic timer messages wait in (RocketMQ 5's name).
pub const TIMER_TOPIC: &str = "rmq_sys_wheel_timer";

/// Units appended to the timer log per enqueue pass.
const ENQUEUE_BATCH: u64 = 4096;
/// Slots delivered per pass before the loop checks for new puts again.
const SLOTS_PER_PASS: u32 = 4096;
/// How often the checkpoint is written (when it changed).
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// Longest idle wait of the timer thread.
const IDLE_WAIT: Duration = Duration::from_millis(100);
/// A put wakes the timer thread only for a timer due within this many ms
/// (later ones are found by its next look, at most [`IDLE_WAIT`] away).
pub(crate) const WAKE_WITHIN_MS: i64 = 200;

/// What the timer service reports ([`crate::MessageStore::timer_stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimerStats {
    /// Timer messages written to the timer log and not yet delivered.
    pub pending: u64,
    /// Timer messages delivered since the store opened.
    pub delivered: u64,
    /// Waiting records written again since the store opened, because they
    /// were due beyond the roll window (`timerRollWindowSlots`).
    pub rolled: u64,
    /// The next slot to deliver (epoch ms; 0 before the service starts).
    pub read_time_ms: i64,
    /// The next consume-queue offset of [`TIMER_TOPIC`] to read into the log.
    pub enqueue_offset: u64,
    /// The slot width in effect (`timerPrecisionMs`, or the width the pending
    /// timers were stored with, until they are delivered).
    pub precision_ms: i64,
}

/// The timer service's shared state (the wheel itself is owned by its thread).
#[derive(Debug)]
pub(crate) struct TimerState {
    dir: PathBuf,
    ckpt_path: PathBuf,
    pending: AtomicU64,
    delivered: AtomicU64,
    rolled: AtomicU64,
    read_time: AtomicI64,
    enqueue_offset: AtomicU64,
    precision: AtomicI64,
    /// Wakes the timer thread (a put of a timer message, shutdown).
    pub waker: crate::service::Waker,
    /// The first failure that stopped the service (reported by stats/logs).
    pub failed: Mutex<Option<String>>,
}

impl TimerState {
    pub fn new(root: &Path, config_dir: &Path) -> Self {
        TimerState {
            dir: root.join("timerlog"),
            ckpt_path: config_dir.join("timercheck"),
            pending: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            rolled: AtomicU64::new(0),
            read_time: AtomicI64::new(0),
            enqueue_offset: AtomicU64::new(0),
            precision: AtomicI64::new(0),
            waker: crate::service::Waker::default(),
            failed: Mutex::new(None),
        }
    }

    pub fn stats(&self) -> TimerStats {
        TimerStats {
            pending: self.pending.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
            rolled: self.rolled.load(Ordering::Relaxed),
            read_time_ms: self.read_time.load(Ordering::Relaxed),
            enqueue_offset: self.enqueue_offset.load(Ordering::Relaxed),
            precision_ms: self.precision.load(Ordering::Relaxed),
        }
    }
}

/// The checkpoint: `config/timercheck`.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
struct Checkpoint {
    /// The next slot to deliver.
    read_time_ms: i64,
    /// The commitlog end when `read_time_ms` became the next slot.
    commit_log_offset: u64,
    /// The next consume-queue offset of the timer topic to enqueue.
    enqueue_offset: u64,
    /// The slot width the timer log's units were written with.
    precision_ms: i64,
}

fn load_checkpoint(path: &Path) -> Result<Option<Checkpoint>> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| Error::corruption(path, 0, format!("timercheck: {e}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
    }
}

/// When a message is to be delivered, from its timer properties: `Ok(None)`
/// for a message without them (or one to deliver now: a time in the past),
/// the due time otherwise, rounded up to `precision_ms`.
///
/// # Errors
/// [`Error::IllegalMessage`] ("timer message illegal: ...") when a timer
/// property is not a whole number, or the delay is beyond `max_delay_ms`.
pub(crate) fn due_time(
    msg: &Message,
    now_ms: i64,
    precision_ms: i64,
    max_delay_ms: i64,
) -> Result<Option<i64>> {
    if msg.topic == TIMER_TOPIC || msg.properties.get(keys::TIMER_OUT_MS).is_some() {
        return Ok(None); // a delivered timer message, or one already waiting
    }
    let tx = msg.sys_flag & sys_flag::TRANSACTION_MASK;
    if tx != sys_flag::TRANSACTION_NOT_TYPE && tx != sys_flag::TRANSACTION_COMMIT_TYPE {
        return Ok(None); // a half message waits for its commit
    }
    let parse = |key: &str| -> Result<Option<i64>> {
        match msg.properties.get(key) {
            None => Ok(None),
            Some(v) => v.trim().parse::<i64>().map(Some).map_err(|_| {
                Error::IllegalMessage(format!(
                    "timer message illegal: {key} `{v}` is not a whole number"
                ))
            }),
        }
    };
    let deliver = if let Some(s) = parse(keys::TIMER_DELAY_SEC)? {
        now_ms.saturating_add(s.saturating_mul(1000))
    } else if let Some(ms) = parse(keys::TIMER_DELAY_MS)? {
        now_ms.saturating_add(ms)
    } else if let Some(at) = parse(keys::TIMER_DELIVER_MS)? {
        at
    } else {
        return Ok(None);
    };
    if deliver <= now_ms {
        return Ok(None); // due already: delivered now, as RocketMQ does
    }
    if deliver - now_ms > max_delay_ms {
        return Err(Error::IllegalMessage(format!(
            "timer message illegal: the delay of {} ms is more than the max delay {} ms (timerMaxDelaySec)",
            deliver - now_ms,
            max_delay_ms
        )));
    }
    Ok(Some(round_up(deliver, precision_ms)))
}

/// Whether `msg` has any `TIMER_*` property: the one pass over its
/// properties a plain put pays for timer messages.
pub(crate) fn has_timer_property(msg: &Message) -> bool {
    msg.properties.iter().any(|(k, _)| k.starts_with("TIMER_"))
}

/// `t` rounded up to a multiple of `p` (> 0).
fn round_up(t: i64, p: i64) -> i64 {
    let r = t.rem_euclid(p);
    if r == 0 {
        t
    } else {
        t.saturating_add(p - r)
    }
}

/// The message as it waits: on the timer topic, real topic and queue kept.
pub(crate) fn to_waiting(msg: &Message, due_ms: i64) -> Message {
    let mut m = msg.clone();
    m.properties.insert(keys::TIMER_OUT_MS, due_ms.to_string());
    m.properties.insert(keys::REAL_TOPIC, msg.topic.clone());
    m.properties.insert(keys::REAL_QID, msg.queue_id.to_string());
    m.topic = TIMER_TOPIC.to_string();
    m.queue_id = 0;
    m
}

/// The message to deliver: back on its real topic and queue, marked with the
/// waiting record's commitlog offset.
fn to_delivered(ext: &MessageExt, src: u64) -> Option<Message> {
    let topic = ext.properties.get(keys::REAL_TOPIC)?.to_string();
    let queue_id: u32 = ext.properties.get(keys::REAL_QID)?.parse().ok()?;
    let mut properties = ext.properties.clone();
    properties.remove(keys::REAL_TOPIC);
    properties.remove(keys::REAL_QID);
    properties.insert(keys::TIMER_SRC, src.to_string());
    Some(ext.to_message(topic, queue_id, properties))
}

/// A waiting message written again (rolled), with the offset of the record
/// it replaces in `TIMER_SRC`, so a restart does not roll it twice.
fn to_rolled(ext: &MessageExt, src: u64) -> Message {
    let mut properties = ext.properties.clone();
    properties.insert(keys::TIMER_SRC, src.to_string());
    ext.to_message(TIMER_TOPIC.to_string(), 0, properties)
}

/// The consume-queue tag code of a record on the timer topic: its due time.
pub(crate) fn timer_tags_code(props: &[u8]) -> Option<i64> {
    crate::message::find_property(props, keys::TIMER_OUT_MS)?
        .trim()
        .parse()
        .ok()
}

/// The wheel: per slot index, the slot time it holds and its last unit's
/// position + 1 (0: none). Zeroed allocations, so untouched slots cost no
/// memory.
struct Wheel {
    time: Vec<i64>,
    head: Vec<u64>,
    precision: i64,
}

impl Wheel {
    fn new(slots: usize, precision: i64) -> Self {
        Wheel {
            time: vec![0; slots],
            head: vec![0; slots],
            precision,
        }
    }

    fn slots(&self) -> i64 {
        self.time.len() as i64
    }

    fn index(&self, slot_ms: i64) -> usize {
        (slot_ms.div_euclid(self.precision)).rem_euclid(self.slots()) as usize
    }

    /// The head of `slot_ms`'s chain if the wheel holds that slot.
    fn head_of(&self, slot_ms: i64) -> Option<u64> {
        let i = self.index(slot_ms);
        (self.time[i] == slot_ms && self.head[i] != 0).then(|| self.head[i] - 1)
    }

    fn link(&mut self, slot_ms: i64, pos: u64) {
        let i = self.index(slot_ms);
        self.time[i] = slot_ms;
        self.head[i] = pos + 1;
    }

    fn clear(&mut self, slot_ms: i64) {
        let i = self.index(slot_ms);
        if self.time[i] == slot_ms {
            self.time[i] = 0;
            self.head[i] = 0;
        }
    }
}

/// The timer thread's own state.
struct Service {
    log: TimerLog,
    wheel: Wheel,
    /// The next slot to deliver.
    read_ms: i64,
    /// The next consume-queue offset to enqueue.
    enqueue: u64,
    /// Timers due further ahead than this are rolled (see `timer_enqueue`).
    roll_window_ms: i64,
    /// Sources delivered after the checkpoint, before a crash (see the module docs).
    delivered_before: HashMap<u64, u32>,
    /// Cleared once every slot up to this time is delivered and the enqueue
    /// caught up with `dedup_until_cq`.
    dedup_until_ms: i64,
    dedup_until_cq: u64,
    /// Units of the slot being delivered already done (a failed put is retried
    /// from here, not from the slot's first unit).
    resume: (i64, usize),
    last: Checkpoint,
    /// The state of the last round, written once the flush passes its end.
    candidate: Option<Checkpoint>,
    persisted: Option<Checkpoint>,
    last_persist: Instant,
}

impl StoreInner {
    /// The timer thread: while the store is a master, rebuild from disk
    /// (as at a fresh open: [`StoreInner::timer_open`], with its scan for
    /// deliveries the checkpoint does not cover), then enqueue and deliver
    /// until shutdown or a switch to slave, which ends with the checkpoint
    /// written and every in-memory state dropped; while a slave, idle (see
    /// [`crate::service::RoleGate`]).
    pub(crate) fn run_timer(&self) {
        let who = crate::service::TIMER_SERVICE;
        while let Some(epoch) = self.await_master(who, &self.timer.waker) {
            let svc = match self.timer_open() {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "timer messages: the timer service cannot start; timer messages wait, undelivered");
                    *self.timer.failed.locked() = Some(e.to_string());
                    // Tried again only at the next switch to master.
                    while !self.stopping.load(Ordering::Acquire) && self.role_gate.is_current(epoch)
                    {
                        self.timer.waker.wait(Duration::from_secs(1));
                    }
                    continue;
                }
            };
            *self.timer.failed.locked() = None;
            self.run_timer_epoch(svc, epoch);
        }
    }

    /// Enqueue and deliver for one master epoch (until shutdown or a switch
    /// to slave), then write the checkpoint.
    fn run_timer_epoch(&self, mut svc: Service, epoch: u64) {
        // A failure is logged when it starts and when it ends, not per retry.
        let mut failing = false;
        while !self.stopping.load(Ordering::Acquire) && self.role_gate.is_current(epoch) {
            let (enqueued, enqueue_err) = match self.timer_enqueue(&mut svc) {
                Ok(n) => (n, None),
                Err(e) => (0, Some(format!("appending to the timer log: {e}"))),
            };
            let (delivered, deliver_err) = self.timer_deliver(&mut svc);
            match enqueue_err.or(deliver_err) {
                // The store became a slave (its puts refused): the loop ends.
                Some(_) if !self.role_gate.is_current(epoch) => break,
                Some(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "timer messages: stalled; retrying every 100 ms");
                    }
                    failing = true;
                    self.timer.waker.wait(IDLE_WAIT);
                    continue;
                }
                None if failing => {
                    tracing::info!("timer messages: resumed");
                    failing = false;
                }
                None => {}
            }
            if svc.last_persist.elapsed() >= CHECKPOINT_EVERY {
                if let Err(e) = self.timer_persist(&mut svc) {
                    tracing::warn!(error = %e, "timer messages: writing the checkpoint failed; retrying");
                }
                svc.last_persist = Instant::now();
            }
            if enqueued == 0 && delivered == 0 {
                let until_next = svc.read_ms.saturating_sub(crate::sys::now_ms()).max(1);
                let wait = IDLE_WAIT.min(Duration::from_millis(until_next as u64));
                self.timer.waker.wait(wait);
            }
        }
        if let Err(e) = self.timer_persist(&mut svc) {
            tracing::warn!(error = %e, "timer messages: writing the checkpoint at shutdown or at a switch to slave failed");
        }
    }

    /// A live truncation of the commitlog to `offset` (the store is a slave:
    /// the timer service is not running), after the consume queues were cut:
    /// the units of waiting records that are gone leave the timer log, and
    /// the checkpoint is lowered, so that the next start as master enqueues
    /// the timer topic from where its consume queue ends now (the records a
    /// new master's stream brings there) and scans for deliveries from
    /// `offset` on (the new master's, which name the same waiting records).
    /// A store that never ran the timer has nothing to cut.
    pub(crate) fn timer_cut(&self, offset: u64) -> Result<()> {
        let ckpt = load_checkpoint(&self.timer.ckpt_path)?;
        let cq_max = self
            .cqs
            .get(TIMER_TOPIC, 0)
            .map(|cq| cq.max_offset())
            .unwrap_or(0);
        if self.timer.dir.exists() {
            let mut log = TimerLog::open(&self.timer.dir, self.cfg.mapped_file_size_timer_log)?;
            log.truncate_where(|u| u.cq_offset >= cq_max || u.phys >= offset)?;
            log.sync()?;
            // Removed files stay removed across a power loss.
            crate::fs::sync_dir(&self.timer.dir)?;
        }
        if let Some(c) = ckpt {
            let lowered = Checkpoint {
                commit_log_offset: c.commit_log_offset.min(offset),
                enqueue_offset: c.enqueue_offset.min(cq_max),
                ..c
            };
            if lowered != c {
                let json = serde_json::to_vec(&lowered)
                    .map_err(|e| Error::io("encoding timercheck", std::io::Error::other(e)))?;
                crate::fs::write_atomically(&self.timer.ckpt_path, &json)?;
            }
        }
        Ok(())
    }

    /// Load the timer log and checkpoint, rebuild the wheel, and scan for
    /// deliveries a crash left unrecorded.
    fn timer_open(&self) -> Result<Service> {
        let cfg = &self.cfg;
        let ckpt = load_checkpoint(&self.timer.ckpt_path)?;
        let file_size = cfg.mapped_file_size_timer_log;
        let mut log = TimerLog::open(&self.timer.dir, file_size)?;
        // Units whose consume-queue entry no longer exists (a store recovered
        // to an earlier end) are dropped from the log's tail.
        let cq_max = self
            .cqs
            .get(TIMER_TOPIC, 0)
            .map(|cq| cq.max_offset())
            .unwrap_or(0);
        log.truncate_where(|u| u.cq_offset >= cq_max)?;
        let cfg_precision = i64::from(cfg.timer_precision_ms.max(1));
        let now = crate::sys::now_ms();
        let (read_ms, precision) = match ckpt {
            Some(c) if log.has_pending(c.read_time_ms) && c.precision_ms != cfg_precision => {
                tracing::warn!(
                    stored = c.precision_ms,
                    configured = cfg_precision,
                    "timer messages: timerPrecisionMs changed while timers are pending; the stored width stays in effect until they are delivered"
                );
                (c.read_time_ms, c.precision_ms.max(1))
            }
            Some(c) => (round_up(c.read_time_ms, cfg_precision), cfg_precision),
            None => {
                // No checkpoint (never written, or a store opened as master
                // for the first time): every unit in the log may be
                // undelivered, so start at the earliest; the scan below
                // tells the delivered ones.
                let mut first = now.div_euclid(cfg_precision) * cfg_precision;
                log.for_each(|_, u| first = first.min(u.slot_ms))?;
                (round_up(first, cfg_precision), cfg_precision)
            }
        };
        let max_delay_ms = i64::from(cfg.timer_max_delay_sec).saturating_mul(1000);
        let mut slots = (2 * max_delay_ms / precision).max(16);
        if let Some(max_slot) = log.max_pending_slot(read_ms) {
            // Timers stored under a larger timerMaxDelaySec keep their slots.
            slots = slots.max(max_slot.saturating_sub(read_ms) / precision + 2);
        }
        let mut wheel = Wheel::new(slots as usize, precision);
        let mut pending = 0u64;
        let mut min_pending_phys = None::<u64>;
        log.for_each(|pos, u| {
            if u.slot_ms >= read_ms {
                wheel.link(u.slot_ms, pos);
                pending += 1;
                min_pending_phys = Some(min_pending_phys.map_or(u.phys, |m| m.min(u.phys)));
            }
        })?;
        let enqueue = {
            let from_log = log.last_cq_offset().map(|o| o + 1).unwrap_or(0);
            let from_ckpt = ckpt.map(|c| c.enqueue_offset).unwrap_or(0);
            let min = self
                .cqs
                .get(TIMER_TOPIC, 0)
                .map(|cq| cq.min_offset())
                .unwrap_or(0);
            from_log.max(from_ckpt).max(min)
        };
        // Where deliveries not covered by the checkpoint may be: after its
        // commitlog end; with no checkpoint, after the oldest waiting record.
        let scan_from = match ckpt {
            Some(c) => c.commit_log_offset,
            None => min_pending_phys
                .into_iter()
                .chain(
                    self.cqs
                        .get(TIMER_TOPIC, 0)
                        .and_then(|cq| cq.get(enqueue))
                        .map(|u| u.commit_log_offset),
                )
                .min()
                .unwrap_or_else(|| self.commitlog.max_offset()),
        };
        let started = Instant::now();
        let delivered_before = self.scan_timer_sources(scan_from);
        tracing::info!(
            pending,
            read_time_ms = read_ms,
            enqueue_offset = enqueue,
            delivered_since_checkpoint = delivered_before.len(),
            scan_ms = started.elapsed().as_millis() as u64,
            "timer messages: service started"
        );
        self.timer.pending.store(pending, Ordering::Relaxed);
        self.timer.read_time.store(read_ms, Ordering::Relaxed);
        self.timer.enqueue_offset.store(enqueue, Ordering::Relaxed);
        self.timer.precision.store(precision, Ordering::Relaxed);
        let last = Checkpoint {
            read_time_ms: read_ms,
            commit_log_offset: scan_from,
            enqueue_offset: enqueue,
            precision_ms: precision,
        };
        let dedup_until_cq = self
            .cqs
            .get(TIMER_TOPIC, 0)
            .map(|cq| cq.max_offset())
            .unwrap_or(0);
        // timerRollWindowSlots, within half the commitlog's fileReservedTime
        // (at least one slot).
        let roll_window_ms = (i64::from(cfg.timer_roll_window_slots) * precision)
            .min(i64::try_from(cfg.file_reserved_time_hours.saturating_mul(1_800_000)).unwrap_or(i64::MAX))
            .max(precision);
        Ok(Service {
            log,
            wheel,
            roll_window_ms,
            read_ms,
            enqueue,
            dedup_until_ms: now,
            dedup_until_cq,
            delivered_before,
            resume: (read_ms, 0),
            last,
            candidate: None,
            persisted: ckpt,
            last_persist: Instant::now(),
        })
    }

    /// The `TIMER_SRC` of every delivered (or rolled) timer message stored
    /// from `from` on, with the body CRC of that copy.
    fn scan_timer_sources(&self, from: u64) -> HashMap<u64, u32> {
        use crate::message::RecordCheck;
        let mut found = HashMap::new();
        let end = self.commitlog.max_offset();
        let mut off = from.max(self.commitlog.min_offset());
        while off < end {
            let Some(f) = self.commitlog.queue.find_by_offset(off) else {
                break;
            };
            let base = f.file_from_offset();
            let data = f.bytes_from(0);
            let mut pos = (off - base) as usize;
            while pos < data.len() {
                match crate::message::check_record(&data[pos..], false) {
                    Ok(RecordCheck::Message(h)) => {
                        // Delivered messages and rolled waiting records both
                        // name the record they replace.
                        if let Some(src) =
                            crate::message::find_property(h.properties, keys::TIMER_SRC)
                                .and_then(|v| v.parse::<u64>().ok())
                        {
                            found.insert(src, h.body_crc);
                        }
                        pos += h.total_size as usize;
                    }
                    Ok(RecordCheck::Blank | RecordCheck::End) => break,
                    Err(e) => {
                        tracing::warn!(error = %e.reason, offset = base + pos as u64, "timer messages: the scan for deliveries stops in this file at a damaged record");
                        break;
                    }
                }
            }
            off = base + f.file_size() as u64;
        }
        found
    }

    /// Read new units of the timer topic's consume queue into the timer log.
    fn timer_enqueue(&self, svc: &mut Service) -> Result<usize> {
        let Some(cq) = self.cqs.get(TIMER_TOPIC, 0) else {
            return Ok(0);
        };
        svc.enqueue = svc.enqueue.max(cq.min_offset());
        let max = cq.max_offset();
        let end = max.min(svc.enqueue + ENQUEUE_BATCH);
        let span = svc.wheel.slots().saturating_sub(1) * svc.wheel.precision;
        let mut units = Vec::new();
        let mut next = svc.enqueue;
        while next < end {
            let Some(u) = cq.get(next) else {
                next += 1; // a blank unit
                continue;
            };
            // A timer due beyond the roll window waits in the window's last
            // slot and is then written again ("rolled", as RocketMQ 5 does),
            // so its record is never older than retention keeps records.
            let slot = round_up(u.tags_code, svc.wheel.precision)
                .min(round_up(svc.read_ms.saturating_add(svc.roll_window_ms), svc.wheel.precision))
                .max(svc.read_ms);
            if slot >= svc.read_ms.saturating_add(span) {
                break; // beyond the wheel until the clock catches up
            }
            units.push(Unit {
                phys: u.commit_log_offset,
                size: u.size,
                slot_ms: slot,
                prev: 0,
                cq_offset: next,
            });
            next += 1;
        }
        if units.is_empty() {
            svc.enqueue = next;
            self.timer.enqueue_offset.store(next, Ordering::Relaxed);
            return Ok(0);
        }
        // Chain each unit to its slot's head (the batch's own units first),
        // positions known before writing; the wheel moves once the append,
        // all or nothing, succeeded.
        let first = svc.log.end();
        let pos = |i: usize| first + (i * log::UNIT) as u64;
        let mut batch_heads: HashMap<i64, u64> = HashMap::new();
        for (i, u) in units.iter_mut().enumerate() {
            u.prev = batch_heads
                .insert(u.slot_ms, pos(i))
                .or_else(|| svc.wheel.head_of(u.slot_ms))
                .map_or(0, |h| h + 1);
        }
        svc.log.append(&units)?;
        for (i, u) in units.iter().enumerate() {
            svc.wheel.link(u.slot_ms, pos(i));
        }
        let n = units.len();
        svc.enqueue = next;
        self.timer.enqueue_offset.store(next, Ordering::Relaxed);
        self.timer.pending.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    /// Deliver the slots that are due; returns how many messages, and the
    /// failure that stopped it, if any (the slot is retried from where it
    /// stopped).
    fn timer_deliver(&self, svc: &mut Service) -> (usize, Option<String>) {
        let now = crate::sys::now_ms();
        let mut delivered = 0;
        let mut slots = 0;
        while svc.read_ms <= now && slots < SLOTS_PER_PASS && !self.stopping.load(Ordering::Acquire) {
            let slot = svc.read_ms;
            let units = match self.deliver_slot(svc, slot) {
                Ok((n, units)) => {
                    delivered += n;
                    units
                }
                Err(Error::ShutDown) => break,
                Err(e) => {
                    return (delivered, Some(format!("delivering slot {slot}: {e}")));
                }
            };
            svc.wheel.clear(slot);
            self.timer.pending.fetch_sub(
                (units as u64).min(self.timer.pending.load(Ordering::Relaxed)),
                Ordering::Relaxed,
            );
            svc.read_ms = slot + svc.wheel.precision;
            svc.resume = (svc.read_ms, 0);
            svc.last = Checkpoint {
                read_time_ms: svc.read_ms,
                commit_log_offset: self.commitlog.max_offset(),
                enqueue_offset: svc.enqueue,
                precision_ms: svc.wheel.precision,
            };
            self.timer.read_time.store(svc.read_ms, Ordering::Relaxed);
            slots += 1;
        }
        if !svc.delivered_before.is_empty()
            && svc.read_ms > svc.dedup_until_ms
            && svc.enqueue >= svc.dedup_until_cq
        {
            svc.delivered_before = HashMap::new();
        }
        (delivered, None)
    }

    /// Deliver one slot's units in the order they were written; returns how
    /// many messages were delivered and how many units the slot held.
    fn deliver_slot(&self, svc: &mut Service, slot: i64) -> Result<(usize, usize)> {
        let Some(head) = svc.wheel.head_of(slot) else {
            return Ok((0, 0));
        };
        let mut chain = Vec::new();
        let mut at = Some(head);
        while let Some(pos) = at {
            let u = svc.log.read(pos)?;
            if u.slot_ms != slot {
                return Err(Error::corruption(
                    &self.timer.dir,
                    pos,
                    format!("timer log unit of slot {} in the chain of slot {slot}", u.slot_ms),
                ));
            }
            chain.push(u);
            at = u.prev.checked_sub(1);
        }
        chain.reverse();
        let skip = if svc.resume.0 == slot { svc.resume.1 } else { 0 };
        let mut n = 0;
        for (i, u) in chain.iter().enumerate().skip(skip) {
            if self.stopping.load(Ordering::Acquire) {
                return Err(Error::ShutDown);
            }
            svc.resume = (slot, i);
            let Some(bytes) = self.commitlog.get_data(u.phys, u.size as usize) else {
                tracing::error!(phys = u.phys, slot, "timer messages: the waiting record is gone (retention); not delivered");
                continue;
            };
            let Ok(ext) = decode_record(&bytes) else {
                tracing::error!(phys = u.phys, slot, "timer messages: the waiting record is damaged; skipped");
                continue;
            };
            // Delivered before a crash: a copy names this record, carries its
            // body, and the slot was due before this start (a later slot
            // cannot have been delivered before it).
            if slot <= svc.dedup_until_ms
                && svc.delivered_before.get(&u.phys) == Some(&ext.body_crc)
            {
                svc.delivered_before.remove(&u.phys);
                continue;
            }
            let due = ext
                .properties
                .get(keys::TIMER_OUT_MS)
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(slot);
            let msg = if due > slot {
                // Rolled: written again on the timer topic, to wait on.
                to_rolled(&ext, u.phys)
            } else {
                match to_delivered(&ext, u.phys) {
                    Some(m) => m,
                    None => {
                        tracing::error!(phys = u.phys, slot, "timer messages: the waiting record lacks REAL_TOPIC/REAL_QID; skipped");
                        continue;
                    }
                }
            };
            let rolled = due > slot;
            match self.put_batch_inner(std::slice::from_ref(&msg), false) {
                Ok(_) if rolled => {
                    self.timer.rolled.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {
                    n += 1;
                    self.timer.delivered.fetch_add(1, Ordering::Relaxed);
                }
                Err(e @ (Error::IllegalMessage(_) | Error::TopicNotExist(_))) => {
                    tracing::error!(error = %e, phys = u.phys, "timer messages: dropping an undeliverable timer message");
                }
                Err(e) => return Err(e),
            }
        }
        svc.resume = (slot, chain.len());
        Ok((n, chain.len()))
    }

    /// Write the checkpoint once what it covers is durable: the commitlog up
    /// to its end (so the deliveries before it survive a power loss) and the
    /// timer log.
    ///
    /// Under steady deliveries the commitlog end moves on before the flush
    /// reaches it, so the state seen one round is kept as a candidate and
    /// written once the flush has passed its end.
    fn timer_persist(&self, svc: &mut Service) -> Result<()> {
        if svc.persisted == Some(svc.last) {
            return Ok(());
        }
        let flushed = self.commitlog.queue.flushed_where();
        let ready = if flushed >= svc.last.commit_log_offset {
            Some(svc.last)
        } else {
            svc.candidate.filter(|c| flushed >= c.commit_log_offset)
        };
        svc.candidate = Some(svc.last);
        let Some(ckpt) = ready else {
            return Ok(()); // next time
        };
        if svc.persisted == Some(ckpt) {
            return Ok(());
        }
        svc.log.sync()?;
        let json = serde_json::to_vec(&ckpt)
            .map_err(|e| Error::io("encoding timercheck", std::io::Error::other(e)))?;
        crate::fs::write_atomically(&self.timer.ckpt_path, &json)?;
        svc.persisted = Some(ckpt);
        // Timer log files wholly before the checkpoint's slot are delivered.
        svc.log.delete_delivered(ckpt.read_time_ms)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
