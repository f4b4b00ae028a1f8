//! The dispatcher: follows the commitlog by offset and builds the consume
//! queues, then wakes readers waiting for new messages.

use crate::sync::{LockExt, RwLockExt};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::commitlog::CommitLog;
use crate::consume_queue::{ConsumeQueue, CqUnit, CQ_UNIT_SIZE};
use crate::error::{Error, Result};
use crate::flush::Waker;
use crate::index::IndexService;
use crate::message::{check_record, sys_flag, RecordCheck};

/// Callback told of new messages: `(topic, queue_id, new max offset)`.
pub type ArrivalListener = Arc<dyn Fn(&str, u32, u64) + Send + Sync>;

/// All consume queues, by topic and queue id.
pub(crate) struct CqTable {
    root: PathBuf,
    file_size: u64,
    queues: RwLock<HashMap<String, HashMap<u32, Arc<ConsumeQueue>>>>,
    /// Queues created by dispatch since the last `take_created` (a slave learns
    /// its topics from the log it follows).
    created: Mutex<Vec<(String, u32)>>,
}

impl CqTable {
    pub fn new(root: PathBuf, file_size: u64) -> Self {
        CqTable {
            root,
            file_size,
            queues: RwLock::new(HashMap::new()),
            created: Mutex::new(Vec::new()),
        }
    }

    pub fn get(&self, topic: &str, queue_id: u32) -> Option<Arc<ConsumeQueue>> {
        self.queues
            .read_locked()
            .get(topic)
            .and_then(|m| m.get(&queue_id))
            .cloned()
    }

    pub fn get_or_create(&self, topic: &str, queue_id: u32) -> Result<Arc<ConsumeQueue>> {
        if let Some(q) = self.get(topic, queue_id) {
            return Ok(q);
        }
        let mut all = self.queues.write_locked();
        if let Some(q) = all.get(topic).and_then(|m| m.get(&queue_id)) {
            return Ok(Arc::clone(q));
        }
        // Names are data, never paths: only a valid topic name becomes a
        // folder (a name such as `../../x` would leave the store).
        crate::message::validate_topic(topic).map_err(|why| {
            Error::IllegalMessage(format!("no consume queue for an invalid topic name: {why}"))
        })?;
        let dir = self.root.join(topic).join(queue_id.to_string());
        let q = Arc::new(ConsumeQueue::load(&dir, topic, queue_id, self.file_size)?);
        all.entry(topic.to_string())
            .or_default()
            .insert(queue_id, Arc::clone(&q));
        self.created.locked().push((topic.to_string(), queue_id));
        Ok(q)
    }

    /// Queues created since the last call.
    pub fn take_created(&self) -> Vec<(String, u32)> {
        std::mem::take(&mut *self.created.locked())
    }

    /// Give back queues [`CqTable::take_created`] returned that the caller
    /// could not record yet (they come back with the next call).
    pub fn requeue_created(&self, back: Vec<(String, u32)>) {
        if !back.is_empty() {
            self.created.locked().extend(back);
        }
    }

    pub fn insert(&self, q: ConsumeQueue) {
        let mut all = self.queues.write_locked();
        all.entry(q.topic().to_string())
            .or_default()
            .insert(q.queue_id(), Arc::new(q));
    }

    pub fn all(&self) -> Vec<Arc<ConsumeQueue>> {
        self.queues
            .read_locked()
            .values()
            .flat_map(|m| m.values().cloned())
            .collect()
    }
}

/// Wakes readers blocked in `wait_for_messages`.
#[derive(Default)]
pub(crate) struct Arrivals {
    generation: Mutex<u64>,
    cv: Condvar,
    waiters: AtomicUsize,
    has_listener: std::sync::atomic::AtomicBool,
    listener: RwLock<Option<ArrivalListener>>,
}

impl Arrivals {
    pub fn notify(&self, touched: &HashMap<String, HashMap<u32, u64>>) {
        if self.waiters.load(Ordering::SeqCst) > 0 {
            *self.generation.locked() += 1;
            self.cv.notify_all();
        }
        let l = self.listener.read_locked().clone();
        if let Some(l) = l {
            for (t, qs) in touched {
                for (q, max) in qs {
                    l(t, *q, *max);
                }
            }
        }
    }

    pub fn set_listener(&self, l: Option<ArrivalListener>) {
        self.has_listener.store(l.is_some(), Ordering::SeqCst);
        *self.listener.write_locked() = l;
    }

    /// True when a reader waits or a listener is registered: then puts wake the
    /// dispatcher at once; otherwise it polls every millisecond, as RocketMQ's does.
    pub fn has_interest(&self) -> bool {
        self.waiters.load(Ordering::Relaxed) > 0 || self.has_listener.load(Ordering::Relaxed)
    }

    /// Wait until `ready()` is true or the deadline passes.
    pub fn wait_until(&self, deadline: Instant, ready: impl Fn() -> bool) -> bool {
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let mut g = self.generation.locked();
        let r = loop {
            if ready() {
                break true;
            }
            let now = Instant::now();
            if now >= deadline {
                break false;
            }
            // Bounded waits also cover a notification racing with the check above.
            let step = (deadline - now).min(Duration::from_millis(100));
            g = self
                .cv
                .wait_timeout(g, step)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        };
        drop(g);
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        r
    }
}

/// Records a dispatch pass reads before it writes the units it collected and
/// moves the dispatch position past them (also the bound on units held).
const PUBLISH_EVERY_RECORDS: usize = 4096;

/// Units a queue's buffer keeps room for between batches: a pass over many
/// queues holds at most this much per queue once their batches are written.
const KEPT_UNIT_CAPACITY: usize = 256;

/// Empty a queue's collected units, giving back room beyond
/// [`KEPT_UNIT_CAPACITY`] (one long batch must not pin its memory for the
/// rest of the call, once per queue).
fn clear_units(units: &mut Vec<CqUnit>) {
    units.clear();
    units.shrink_to(KEPT_UNIT_CAPACITY);
}

/// One queue a dispatch call wrote to.
struct CachedQueue {
    cq: Arc<ConsumeQueue>,
    /// Next queue offset not yet announced to readers.
    announce: Option<u64>,
    /// Units collected and not yet written, for consecutive queue offsets
    /// from `from`.
    units: Vec<CqUnit>,
    from: u64,
    /// The queue's end as last seen (only dispatch makes it grow): a unit
    /// within a file's worth of units past it needs no look at the queue.
    end_seen: u64,
    /// Units one file of the queue holds.
    per_file: u64,
}

/// Queue ids dispatch gives a consume queue: `0..MAX_QUEUES_PER_TOPIC`. The
/// store never holds a topic with more queues (topic creation and updates
/// take 1..=1024, as does `defaultTopicQueueNums`), so no record a master
/// running this store writes has a larger id, whether or not a slave knows its
/// topic yet. The bound is fixed rather than the topic's configured count: a
/// topic whose queue count was lowered still has records in its higher queues,
/// and a slave learns topics from the log before their configs arrive.
pub(crate) const MAX_QUEUES_PER_TOPIC: u32 = 1024;

/// Largest queue offset dispatch gives a unit: half the largest offset whose
/// byte position in a consume queue (offset x 20) fits the signed 64-bit file
/// offsets RocketMQ uses, leaving room for file arithmetic. No queue reaches it
/// (2.3e17 messages: a billion a second for seven years); a negative offset
/// read from a record lands above it.
pub(crate) const MAX_QUEUE_OFFSET: u64 = i64::MAX as u64 / CQ_UNIT_SIZE as u64 / 2;

/// Why dispatch refused a record (it stays in the log, in no consume queue or
/// index, and the position moves past it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// Its topic is not a valid name (its queue would be a path built from it).
    TopicName,
    /// Its queue id is not below [`MAX_QUEUES_PER_TOPIC`] (a negative id
    /// included).
    QueueId,
    /// Its queue offset is above [`MAX_QUEUE_OFFSET`] (a negative one included).
    QueueOffset,
    /// Its queue offset is more than a consume-queue file's worth of units
    /// beyond the end of its queue, which holds units: it would be reached by
    /// blank-filling up to that many gigabytes. `end` is the queue's end.
    OffsetJump { end: u64 },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::TopicName => f.write_str("its topic is not a valid name"),
            Refusal::QueueId => write!(
                f,
                "its queue id is out of range 0..{MAX_QUEUES_PER_TOPIC} (the store's topic queue limit)"
            ),
            Refusal::QueueOffset => write!(f, "its queue offset is out of range 0..={MAX_QUEUE_OFFSET}"),
            Refusal::OffsetJump { end } => write!(
                f,
                "its queue offset is more than a consume-queue file beyond its queue's end {end} \
                 (no blank fill that large)"
            ),
        }
    }
}

/// What [`UnitBatcher::put`] did with a unit.
enum Placed {
    /// Collected; written before the position moves past its record.
    Taken,
    /// Not taken: the queue lacks units before it (strict mode).
    Gap(QueueGap),
    /// Not taken: the record gets no unit (see [`Refusal`]).
    Refused(Refusal),
}

/// `Some(end of the queue)` when a unit for `queue_offset` would need more
/// than a file's worth of blank units before it (`pending_end`: the end of
/// the units collected and not yet written, if any). A queue without files
/// starts late at the file holding the offset instead (at most a file of
/// blanks; see [`ConsumeQueue::put_batch`]): no jump then.
#[cold]
#[inline(never)]
fn jump_too_far(cq: &ConsumeQueue, pending_end: Option<u64>, queue_offset: u64) -> Option<u64> {
    let end = pending_end.map_or(cq.max_offset(), |p| p.max(cq.max_offset()));
    if queue_offset <= end.saturating_add(cq.units_per_file()) {
        return None;
    }
    if pending_end.is_none() && cq.file_count() == 0 {
        return None;
    }
    Some(end)
}

/// Per dispatch call: the queues it wrote to (one cheap lookup per record
/// instead of the table's lock, two SipHash lookups and an `Arc` clone), the
/// units each has collected, and the queues readers have not yet been told
/// about. Units are written a queue at a time ([`ConsumeQueue::put_batch`]:
/// one file lookup and one copy per batch instead of per unit), always before
/// the dispatch position moves past their records, so a caller that sees the
/// position sees the units.
#[derive(Default)]
struct UnitBatcher {
    queues: hashbrown::HashMap<String, hashbrown::HashMap<u32, CachedQueue>>,
    /// Queues that gained units since the last notice: every queue holding
    /// collected units is among them, since a notice always follows a write.
    dirty: Vec<(String, u32)>,
}

impl UnitBatcher {
    /// Collect `unit` for `(topic, queue id, queue offset)`. Units already in
    /// the queue are skipped when written. With `strict`, a unit beyond the
    /// queue's end is not taken: the gap is returned instead. A record is
    /// refused ([`Refusal`]) when its queue id or offset is out of range, when
    /// its topic is not a valid name (its queue would be a path built from
    /// it; checked only when its queue is not known yet), or when its offset
    /// jumps more than a file's worth of units past its queue's end (the
    /// queue is looked at only for a unit beyond a file's worth past the end
    /// last seen), so a record of a known queue costs a few comparisons more.
    fn put(
        &mut self,
        cqs: &CqTable,
        (topic, queue_id, queue_offset): (&str, u32, u64),
        unit: CqUnit,
        strict: bool,
    ) -> Result<Placed> {
        let gap = |have: u64| QueueGap {
            topic: topic.to_string(),
            queue_id,
            have,
            want: queue_offset,
        };
        // From the record, so from a peer or the disk: never trusted for
        // arithmetic or for sizing anything.
        if queue_id >= MAX_QUEUES_PER_TOPIC {
            return Ok(Placed::Refused(Refusal::QueueId));
        }
        if queue_offset > MAX_QUEUE_OFFSET {
            return Ok(Placed::Refused(Refusal::QueueOffset));
        }
        let cached = self
            .queues
            .get_mut(topic)
            .and_then(|m| m.get_mut(&queue_id));
        let entry = match cached {
            Some(e) => e,
            None => {
                let known = cqs.get(topic, queue_id);
                if known.is_none() && crate::message::validate_topic(topic).is_err() {
                    return Ok(Placed::Refused(Refusal::TopicName));
                }
                if strict {
                    let have = known.as_ref().map_or(0, |q| q.max_offset());
                    if queue_offset > have {
                        return Ok(Placed::Gap(gap(have)));
                    }
                }
                let cq = match known {
                    Some(q) => q,
                    None => cqs.get_or_create(topic, queue_id)?,
                };
                self.queues
                    .entry_ref(topic)
                    .or_default()
                    .entry(queue_id)
                    .or_insert(CachedQueue {
                        end_seen: cq.max_offset(),
                        per_file: cq.units_per_file(),
                        cq,
                        announce: None,
                        units: Vec::new(),
                        from: queue_offset,
                    })
            }
        };
        let collected_end = entry.from + entry.units.len() as u64;
        if strict {
            let have = if entry.units.is_empty() {
                entry.cq.max_offset()
            } else {
                entry.cq.max_offset().max(collected_end)
            };
            if queue_offset > have {
                return Ok(Placed::Gap(gap(have)));
            }
        }
        // A unit that continues the collected ones, or lands within a file
        // of the queue's end as last seen, is near (the usual case: two
        // comparisons); otherwise the queue decides.
        let pending_end = (!entry.units.is_empty()).then_some(collected_end);
        let near = entry
            .end_seen
            .max(pending_end.unwrap_or(0))
            .saturating_add(entry.per_file);
        if queue_offset > near {
            if let Some(end) = jump_too_far(&entry.cq, pending_end, queue_offset) {
                return Ok(Placed::Refused(Refusal::OffsetJump { end }));
            }
        }
        if !entry.units.is_empty() && queue_offset != collected_end {
            entry.cq.put_batch(entry.from, &entry.units)?;
            entry.end_seen = entry.end_seen.max(collected_end);
            clear_units(&mut entry.units);
        }
        if entry.units.is_empty() {
            entry.from = queue_offset;
        }
        entry.units.push(unit);
        if entry.announce.replace(queue_offset + 1).is_none() {
            self.dirty.push((topic.to_string(), queue_id));
        }
        Ok(Placed::Taken)
    }

    /// Write every collected unit to its queue.
    fn write_pending(&mut self) -> Result<()> {
        for (topic, q) in &self.dirty {
            let Some(e) = self
                .queues
                .get_mut(topic.as_str())
                .and_then(|m| m.get_mut(q))
            else {
                continue;
            };
            if !e.units.is_empty() {
                e.cq.put_batch(e.from, &e.units)?;
                e.end_seen = e.end_seen.max(e.from + e.units.len() as u64);
                clear_units(&mut e.units);
            }
        }
        Ok(())
    }

    /// Announce the queues that gained units since the last notice with their
    /// next offsets, and forget them (the queues stay cached). Call after
    /// [`UnitBatcher::write_pending`].
    fn notify(&mut self, arrivals: &Arrivals) {
        if self.dirty.is_empty() {
            return;
        }
        let mut touched: HashMap<String, HashMap<u32, u64>> = HashMap::new();
        for (topic, q) in self.dirty.drain(..) {
            let next = self
                .queues
                .get_mut(topic.as_str())
                .and_then(|m| m.get_mut(&q))
                .and_then(|e| e.announce.take());
            if let Some(n) = next {
                touched.entry(topic).or_default().insert(q, n);
            }
        }
        arrivals.notify(&touched);
    }
}

/// A record the recovery walk checked, kept in a few words so that
/// re-dispatching it needs no second read of the log (which, for a log larger
/// than the CPU caches, is a memory miss or two per record).
#[derive(Debug, Clone, Copy)]
struct WalkedRecord {
    phys: u64,
    queue_offset: u64,
    tags_code: i64,
    store_timestamp_ms: i64,
    size: u32,
    queue_id: u32,
    sys_flag: i32,
    /// Index into [`WalkedRecords`]' topic names.
    topic: u32,
    /// The record has `KEYS` or `UNIQ_KEY`: the index needs its properties.
    has_keys: bool,
}

/// The records an abnormal recovery's walk checked, in log order, up to a
/// bound; past it they are dropped and re-dispatch reads the log as before.
pub(crate) struct WalkedRecords {
    topics: Vec<String>,
    topic_ids: hashbrown::HashMap<String, u32>,
    records: Vec<WalkedRecord>,
    max_records: usize,
    overflowed: bool,
    delay_levels_ms: Vec<i64>,
}

impl WalkedRecords {
    /// Keep at most `max_records` (0: keep none).
    pub fn new(max_records: usize, delay_levels_ms: Vec<i64>) -> Self {
        WalkedRecords {
            topics: Vec::new(),
            topic_ids: hashbrown::HashMap::new(),
            records: Vec::new(),
            max_records,
            overflowed: max_records == 0,
            delay_levels_ms,
        }
    }

    /// Keep the record the walk just checked (the walk calls this in log order).
    pub fn push(&mut self, h: &crate::message::RecordHeader<'_>) {
        if self.overflowed {
            return;
        }
        if self.records.len() >= self.max_records {
            self.overflowed = true;
            self.records = Vec::new();
            return;
        }
        if self.records.len() == self.records.capacity() {
            // Grow by doubling, but never past the bound (a plain push could
            // allocate twice the bound).
            let extra = self
                .records
                .capacity()
                .max(4096)
                .min(self.max_records - self.records.len());
            self.records.reserve_exact(extra);
        }
        let topic = match self.topic_ids.get(h.topic) {
            Some(id) => *id,
            None => {
                let id = self.topics.len() as u32;
                self.topics.push(h.topic.to_string());
                self.topic_ids.insert(h.topic.to_string(), id);
                id
            }
        };
        // One pass over the properties for the tag and the keys (the walk is on
        // the recovery's critical path; three lookups cost three passes).
        use crate::message::keys;
        let (mut tags, mut has_keys) = (None, false);
        for seg in h.properties.split(|b| *b == 2) {
            let Some(i) = seg.iter().position(|b| *b == 1) else {
                continue;
            };
            let (k, v) = (&seg[..i], &seg[i + 1..]);
            if seg.len() < 3 {
                continue;
            } else if k == keys::TAGS.as_bytes() {
                // The first one counts, as in `find_property`.
                tags = tags.or(Some(v));
            } else if k == keys::KEYS.as_bytes() {
                has_keys |= v.iter().any(|b| *b != b' ');
            } else if k == keys::UNIQ_KEY.as_bytes() {
                has_keys |= !v.is_empty();
            }
        }
        let tags_code = if h.topic == crate::schedule::SCHEDULE_TOPIC {
            unit_tags_code(h, &self.delay_levels_ms)
        } else {
            tags.and_then(|t| std::str::from_utf8(t).ok())
                .map_or(0, |t| crate::message::tags_code(Some(t)))
        };
        self.records.push(WalkedRecord {
            phys: h.physical_offset as u64,
            queue_offset: h.queue_offset as u64,
            tags_code,
            store_timestamp_ms: h.store_timestamp_ms,
            size: h.total_size,
            queue_id: h.queue_id,
            sys_flag: h.sys_flag,
            topic,
            has_keys,
        });
    }

    /// True when the kept records are every record from `from` to `end`.
    fn covers(&self, from: u64, end: u64) -> bool {
        if self.overflowed {
            return false;
        }
        match (self.records.first(), self.records.last()) {
            (Some(first), Some(last)) => first.phys <= from && last.phys + last.size as u64 <= end,
            _ => from >= end,
        }
    }
}

/// A consume queue found missing units during recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueGap {
    /// Topic.
    pub topic: String,
    /// Queue id.
    pub queue_id: u32,
    /// Units the queue holds.
    pub have: u64,
    /// Queue offset of the record being dispatched.
    pub want: u64,
}

/// The consume-queue tag code of a record: the hash of its tags, or for a
/// scheduled message its delivery time (store time + the level's delay).
pub(crate) fn unit_tags_code(h: &crate::message::RecordHeader<'_>, delay_levels_ms: &[i64]) -> i64 {
    if h.topic == crate::schedule::SCHEDULE_TOPIC && !delay_levels_ms.is_empty() {
        if let Some(level) =
            crate::message::find_property(h.properties, crate::message::keys::DELAY)
                .and_then(|v| v.trim().parse::<usize>().ok())
                .filter(|l| *l > 0)
        {
            let i = level.min(delay_levels_ms.len()) - 1;
            return h.store_timestamp_ms.saturating_add(delay_levels_ms[i]);
        }
    }
    h.tags_code()
}

/// Lets a log line through at most once per interval and counts the ones
/// held back (a hostile peer or a long outage must not flood the log).
pub(crate) struct LogLimiter {
    every: Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

impl LogLimiter {
    pub fn new(every: Duration) -> Self {
        LogLimiter {
            every,
            state: Mutex::new((None, 0)),
        }
    }

    /// `Some(lines held back since the last one)` when a line may go out now.
    pub fn allow(&self) -> Option<u64> {
        let mut g = self.state.locked();
        let now = Instant::now();
        match g.0 {
            Some(t) if now.duration_since(t) < self.every => {
                g.1 += 1;
                None
            }
            _ => {
                g.0 = Some(now);
                Some(std::mem::take(&mut g.1))
            }
        }
    }
}

/// First wait after dispatch fails on a resource error; it doubles on each
/// failure up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(10);
/// Longest wait between two tries of a failing dispatch.
const RETRY_MAX: Duration = Duration::from_secs(1);
/// At most one log line per this interval for a refused record or a
/// retried dispatch error.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// How dispatch is doing: records refused (see [`Refusal`]), and the
/// resource error it is retrying, if any.
pub(crate) struct DispatchHealth {
    /// Records refused ([`Refusal`]: an invalid topic name, a queue id or
    /// offset out of range, or an offset jump too far past its queue's end).
    pub refused: AtomicU64,
    refused_log: LogLimiter,
    /// Dispatch is retrying an error (fast check for [`Dispatcher::note_ok`]).
    failing: std::sync::atomic::AtomicBool,
    /// The error being retried.
    pub error: Mutex<Option<String>>,
    /// Tries that failed, since the store opened.
    pub retries: AtomicU64,
    /// Failed tries of the current outage.
    outage_retries: AtomicU64,
    /// The next wait between tries (ms).
    backoff_ms: AtomicU64,
    error_log: LogLimiter,
    /// For topics a slave learns from its log but cannot record yet.
    pub learn_log: LogLimiter,
}

impl Default for DispatchHealth {
    fn default() -> Self {
        DispatchHealth {
            refused: AtomicU64::new(0),
            refused_log: LogLimiter::new(LOG_EVERY),
            failing: std::sync::atomic::AtomicBool::new(false),
            error: Mutex::new(None),
            retries: AtomicU64::new(0),
            outage_retries: AtomicU64::new(0),
            backoff_ms: AtomicU64::new(0),
            error_log: LogLimiter::new(LOG_EVERY),
            learn_log: LogLimiter::new(LOG_EVERY),
        }
    }
}

/// Follows the commitlog.
pub(crate) struct Dispatcher {
    reput_from: AtomicU64,
    /// Delay of each level (ms), for the tag code of scheduled messages.
    delay_levels_ms: Vec<i64>,
    last_store_timestamp_ms: AtomicI64,
    pub waker: Waker,
    pub health: DispatchHealth,
}

impl Dispatcher {
    pub fn new(from: u64, delay_levels_ms: Vec<i64>) -> Self {
        Dispatcher {
            reput_from: AtomicU64::new(from),
            delay_levels_ms,
            last_store_timestamp_ms: AtomicI64::new(0),
            waker: Waker::default(),
            health: DispatchHealth::default(),
        }
    }

    /// A record at `phys` refused for `why` ([`Refusal`]: its topic is not a
    /// valid name, its queue id or offset is out of range, or its offset jumps
    /// too far past its queue's end): it stays in the log, gets no
    /// consume-queue unit and no index entry, and the position moves past it.
    /// Counted, and logged at most every [`LOG_EVERY`].
    #[cold]
    #[inline(never)]
    fn refuse(&self, topic: &str, phys: u64, queue_id: u32, queue_offset: u64, why: Refusal) {
        let n = self.health.refused.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(held_back) = self.health.refused_log.allow() {
            // Debug-quoted and cut short: the name is hostile input. The id
            // and offset are shown as the record's signed fields.
            let shown: String = topic.chars().take(80).collect();
            tracing::warn!(topic = ?shown, queue_id = queue_id as i32, queue_offset = queue_offset as i64,
                commit_log_offset = phys, reason = %why, refused_total = n, not_logged = held_back,
                "record refused: kept in the commitlog, not dispatched to any consume queue or index");
        }
    }

    /// Dispatch failed with `e`, a resource error (no descriptor, no space, an
    /// I/O error creating or growing a consume-queue or index file): the
    /// position stays before the record whose unit is not written. Note it for
    /// stats and the (rate-limited) log, and return how long to wait before the
    /// next try (10 ms, doubling up to 1 s).
    pub fn note_retry(&self, e: &Error) -> Duration {
        let h = &self.health;
        let total = h.retries.fetch_add(1, Ordering::Relaxed) + 1;
        let outage = h.outage_retries.fetch_add(1, Ordering::Relaxed) + 1;
        *h.error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
        h.failing.store(true, Ordering::Release);
        if let Some(held_back) = h.error_log.allow() {
            tracing::error!(error = %e, retries = outage, retries_total = total, not_logged = held_back,
                dispatched_offset = self.dispatched_offset(),
                "dispatch cannot write a consume queue or index file; retrying (puts go on, readers wait)");
        }
        let prev = h.backoff_ms.load(Ordering::Relaxed);
        let next = if prev == 0 {
            RETRY_FIRST.as_millis() as u64
        } else {
            (prev * 2).min(RETRY_MAX.as_millis() as u64)
        };
        h.backoff_ms.store(next, Ordering::Relaxed);
        Duration::from_millis(next)
    }

    /// A dispatch call succeeded: end an outage noted by
    /// [`Dispatcher::note_retry`] (one atomic load when there is none).
    pub fn note_ok(&self) {
        let h = &self.health;
        if h.failing.load(Ordering::Acquire) && h.failing.swap(false, Ordering::AcqRel) {
            let outage = h.outage_retries.swap(0, Ordering::Relaxed);
            h.backoff_ms.store(0, Ordering::Relaxed);
            let was = h.error.lock().unwrap_or_else(|p| p.into_inner()).take();
            tracing::info!(retries = outage, error = ?was, dispatched_offset = self.dispatched_offset(),
                "dispatch resumed");
        }
    }

    /// Commitlog offset up to which records are dispatched.
    pub fn dispatched_offset(&self) -> u64 {
        self.reput_from.load(Ordering::Acquire)
    }

    /// Store timestamp of the last record dispatched (ms; 0 before the first).
    pub fn last_store_timestamp_ms(&self) -> i64 {
        self.last_store_timestamp_ms.load(Ordering::Acquire)
    }

    /// The consume-queue tag code of a record (see [`unit_tags_code`]).
    fn tags_code(&self, h: &crate::message::RecordHeader<'_>) -> i64 {
        unit_tags_code(h, &self.delay_levels_ms)
    }

    /// Restart dispatching at `offset` (recovery).
    pub fn reset(&self, offset: u64) {
        self.reput_from.store(offset, Ordering::Release);
    }

    /// Dispatch every readable record. Returns how many records were dispatched.
    pub fn dispatch_available(
        &self,
        commitlog: &CommitLog,
        cqs: &CqTable,
        index: Option<&IndexService>,
        arrivals: &Arrivals,
    ) -> Result<usize> {
        match self.dispatch_inner(commitlog, cqs, index, arrivals, false)? {
            Ok(n) => Ok(n),
            Err(gap) => Err(Error::corruption(
                "consumequeue",
                gap.want,
                "unexpected gap",
            )),
        }
    }

    /// Recovery pass from the records the walk kept: like
    /// [`Dispatcher::dispatch_checking_gaps`] from the dispatch position to
    /// `end` (the recovered end of the log), without reading the log again
    /// (except the properties of records with keys, for the index). `None`
    /// when the kept records do not cover that range (the caller then reads
    /// the log).
    pub fn dispatch_walked(
        &self,
        walked: &WalkedRecords,
        end: u64,
        commitlog: &CommitLog,
        cqs: &CqTable,
        index: Option<&IndexService>,
        arrivals: &Arrivals,
    ) -> Result<Option<std::result::Result<usize, QueueGap>>> {
        let from = self.dispatched_offset();
        if !walked.covers(from, end) {
            return Ok(None);
        }
        let mut batch = UnitBatcher::default();
        let mut count = 0;
        let refused_before = self.health.refused.load(Ordering::Relaxed);
        let start = walked.records.partition_point(|r| r.phys < from);
        for r in &walked.records[start..] {
            let topic = walked.topics[r.topic as usize].as_str();
            let tx = r.sys_flag & sys_flag::TRANSACTION_MASK;
            let mut refused = None;
            if tx == sys_flag::TRANSACTION_NOT_TYPE || tx == sys_flag::TRANSACTION_COMMIT_TYPE {
                let unit = CqUnit {
                    commit_log_offset: r.phys,
                    size: r.size,
                    tags_code: r.tags_code,
                };
                let target = (topic, r.queue_id, r.queue_offset);
                match batch.put(cqs, target, unit, true)? {
                    Placed::Taken => {}
                    Placed::Gap(gap) => {
                        batch.write_pending()?;
                        // The caller dispatches the log again from its start:
                        // the records refused here are counted then.
                        self.health.refused.store(refused_before, Ordering::Relaxed);
                        return Ok(Some(Err(gap)));
                    }
                    Placed::Refused(why) => refused = Some(why),
                }
            } else if crate::message::validate_topic(topic).is_err() {
                // No queue for these; the index still must not take the name.
                refused = Some(Refusal::TopicName);
            }
            if let Some(why) = refused {
                self.refuse(topic, r.phys, r.queue_id, r.queue_offset, why);
            }
            // Units are written as the pass goes (the position moves at its
            // end), a bounded number held at a time.
            if count % PUBLISH_EVERY_RECORDS == PUBLISH_EVERY_RECORDS - 1 {
                batch.write_pending()?;
            }
            if let (Some(ix), true, None) = (index, r.has_keys, refused) {
                // The walk checked this record as the configuration asks; read
                // it back as the log-reading dispatch does (no second CRC).
                let Some(bytes) = commitlog.get_data(r.phys, r.size as usize) else {
                    return Err(Error::corruption(
                        "commitlog",
                        r.phys,
                        "a record the recovery walk checked is gone",
                    ));
                };
                let h = crate::message::parse_header(&bytes).map_err(|e| {
                    Error::corruption(
                        "commitlog",
                        r.phys,
                        format!("re-reading a walked record: {e}"),
                    )
                })?;
                ix.build_index(
                    h.topic,
                    h.properties,
                    r.sys_flag,
                    r.phys,
                    r.store_timestamp_ms,
                )?;
            }
            count += 1;
            self.last_store_timestamp_ms
                .store(r.store_timestamp_ms, Ordering::Release);
        }
        self.publish(&mut batch, end.max(from), None)?;
        batch.notify(arrivals);
        Ok(Some(Ok(count)))
    }

    /// Recovery pass: like [`Dispatcher::dispatch_available`], but stop at the first
    /// record whose consume queue is missing units before it (a queue that was
    /// deleted, damaged or lost its tail). The caller then dispatches again from
    /// the start of the log, which rebuilds such queues.
    pub fn dispatch_checking_gaps(
        &self,
        commitlog: &CommitLog,
        cqs: &CqTable,
        index: Option<&IndexService>,
        arrivals: &Arrivals,
    ) -> Result<std::result::Result<usize, QueueGap>> {
        self.dispatch_inner(commitlog, cqs, index, arrivals, true)
    }

    /// Write the units `batch` collected, then move the dispatch position to
    /// `offset` (the records before it are dispatched), the last of them stored
    /// at `last_store_timestamp_ms` if any were read. The position is stored
    /// before the time: a reader that loads the time and then the position
    /// gets a time no later than the position's (the checkpoint).
    fn publish(
        &self,
        batch: &mut UnitBatcher,
        offset: u64,
        last_store_timestamp_ms: Option<i64>,
    ) -> Result<()> {
        batch.write_pending()?;
        self.reput_from.store(offset, Ordering::Release);
        if let Some(ms) = last_store_timestamp_ms {
            self.last_store_timestamp_ms.store(ms, Ordering::Release);
        }
        Ok(())
    }

    fn dispatch_inner(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_from_10_ms_doubling_to_1_s_and_reset_on_success() {
        let d = Dispatcher::new(0, Vec::new());
        let e = Error::io("creating a file", std::io::Error::from_raw_os_error(24));
        let waits: Vec<u64> = (0..10)
            .map(|_| d.note_retry(&e).as_millis() as u64)
            .collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
        assert_eq!(d.health.retries.load(Ordering::Relaxed), 10);
        assert!(d.health.error.lock().unwrap().is_some());
        d.note_ok();
        assert!(d.health.error.lock().unwrap().is_none());
        assert_eq!(d.note_retry(&e), Duration::from_millis(10));
        assert_eq!(d.health.retries.load(Ordering::Relaxed), 11, "a total");
    }

    #[test]
    fn the_log_limiter_lets_one_line_through_per_interval() {
        let l = LogLimiter::new(Duration::from_secs(3600));
        assert_eq!(l.allow(), Some(0));
        assert_eq!(l.allow(), None);
        assert_eq!(l.allow(), None);
        let l = LogLimiter::new(Duration::ZERO);
        assert_eq!(l.allow(), Some(0));
        assert_eq!(l.allow(), Some(0));
    }

    #[test]
    fn a_queue_is_never_made_for_an_invalid_topic_name() {
        let dir = tempfile::tempdir().unwrap();
        let t = CqTable::new(dir.path().join("consumequeue"), 2000);
        for bad in ["../x", "a/b", "", "..", "a b"] {
            assert!(
                matches!(t.get_or_create(bad, 0), Err(Error::IllegalMessage(_))),
                "{bad:?}"
            );
        }
        assert!(!dir.path().join("x").exists());
        assert!(t.get_or_create("Good", 0).is_ok());
        assert!(t.all().len() == 1);
    }
}
