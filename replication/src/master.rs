//! The master side: accept slaves, stream the commitlog, track their acks, and
//! make SYNC_MASTER puts wait for them.

use ferromq_engine::sync::LockExt;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::BufWriter;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ferromq_engine::{MessageStore, PutStatus, ReplicaCallback, ReplicaWaiter};

use crate::autoswitch::{self, AutoSwitch};
use crate::frame::{read_report, write_frame};
use crate::tls::{self, HaRead, HaWrite};
use crate::{HaConfig, HaError};

/// A connected slave, as [`HaMaster::slaves`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaveInfo {
    /// The slave's address.
    pub addr: SocketAddr,
    /// Commitlog offset the slave last confirmed.
    pub acked_offset: u64,
    /// Bytes the slave is behind the master's log end.
    pub lag_bytes: u64,
    /// Age of the oldest bytes the master has and the slave has not confirmed,
    /// in ms (0 when the slave is up to date): how far behind in time it is. The
    /// age counts from when the master was first seen holding those bytes (at a
    /// slave report or a status query), so it may be short by up to one report
    /// interval.
    pub lag_ms: u64,
    /// Where streaming to this slave started, once its first report arrived.
    pub streaming_from: Option<u64>,
    /// The slave's broker id from its epoch hello (epoch mode), `None` in
    /// classic mode.
    pub broker_id: Option<u64>,
    /// The last time the slave confirmed everything the master had when the
    /// confirmation arrived (RocketMQ's `lastCaughtUpTimeMs`), `None` if it
    /// never did on this connection: for the broker's
    /// `haMaxTimeSlaveNotCatchup` check, which shrinks and grows the
    /// SyncStateSet.
    pub last_caught_up: Option<Instant>,
}

struct Conn {
    id: u64,
    addr: SocketAddr,
    acked: AtomicU64,
    /// Master log ends seen while the slave had not confirmed them, with the
    /// time (ms since start) each was first seen; oldest first.
    pending: Mutex<VecDeque<(u64, i64)>>,
    /// The slave is logged as fallen behind.
    behind_logged: AtomicBool,
    closed: AtomicBool,
    /// Where streaming started; `u64::MAX` until the first report.
    start: AtomicU64,
    /// The broker id from the epoch hello; `u64::MAX` until then (and in
    /// classic mode).
    broker_id: AtomicU64,
    /// [`crate::EpochCache::new_entries`] when the hello was answered: the
    /// connection ends when it moves. `u64::MAX` in classic mode.
    epoch_gen: AtomicU64,
    /// When (ms since start) the slave last confirmed the master's whole
    /// log; 0 never.
    caught_up_ms: AtomicI64,
    stream: TcpStream,
}

struct Inner {
    store: Arc<MessageStore>,
    cfg: HaConfig,
    file_size: u64,
    conns: Mutex<Vec<Arc<Conn>>>,
    next_id: AtomicU64,
    /// The highest offset any slave confirmed (RocketMQ's push2SlaveMaxOffset).
    max_acked: AtomicU64,
    /// Epoch mode: the offset waiting puts are acknowledged up to, as the
    /// last ack computed it under the waits lock (puts read it there instead
    /// of walking the SyncStateSet and the connections once each).
    quorum_acked: AtomicU64,
    stop: AtomicBool,
    /// WARN lines about connections refused by the authenticated handshake:
    /// one per ten seconds, however many strangers knock.
    refused_handshakes: Mutex<EveryTenSeconds>,
    /// Writers wait here for new log bytes; puts waiting for a slave poke it.
    data_lock: Mutex<()>,
    data_cv: Condvar,
    /// Bumped by every put that waits for a slave, before it looks at
    /// `writers_sleeping`: a writer that saw no new bytes sleeps only if this
    /// did not move since it looked, so a poke between its look and its wait is
    /// not lost (which cost up to a poll interval per SYNC_MASTER put).
    data_seq: AtomicU64,
    /// Writers inside their wait on `data_cv` (counted before they look at
    /// `data_seq`): a put pokes them only when one sleeps, so most SYNC_MASTER
    /// puts cost no lock and no futex call here.
    writers_sleeping: AtomicUsize,
    /// SYNC_MASTER puts waiting for a slave, in order of their log end; the
    /// reader that sees an ack answers those it covers, the ticker those whose
    /// time is up.
    waits: Mutex<VecDeque<AckWait>>,
    started: Instant,
    /// Epoch mode: the SyncStateSet (broker ids, the master's included).
    sync_state_set: Mutex<BTreeSet<u64>>,
    /// Epoch mode: this master's broker id, out of the SyncStateSet's acks.
    self_id: AtomicU64,
    /// Every wait fails while set ([`HaMaster::set_fenced`]).
    fenced: AtomicBool,
}

/// Serves slaves over RocketMQ's HA protocol.
pub struct HaMaster {
    inner: Arc<Inner>,
    local_addr: SocketAddr,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for HaMaster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HaMaster")
            .field("local_addr", &self.local_addr)
            .finish()
    }
}

impl HaMaster {
    /// Listen on `bind` (use port 0 for any) and serve slaves of `store`.
    ///
    /// # Errors
    /// [`HaError::Io`] when the port cannot be bound.
    pub fn start(
        store: Arc<MessageStore>,
        bind: SocketAddr,
        cfg: HaConfig,
    ) -> Result<HaMaster, HaError> {
        let listener =
            TcpListener::bind(bind).map_err(|e| HaError::io(format!("binding {bind}"), e))?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| HaError::io("reading the bound address", e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| HaError::io("setting the listener non-blocking", e))?;
        let file_size = store.config().mapped_file_size_commit_log;
        let mut cfg = cfg;
        cfg.transfer_batch_size = cfg
            .transfer_batch_size
            .clamp(1, crate::frame::MAX_FRAME_BODY);
        let inner = Arc::new(Inner {
            store,
            cfg,
            file_size,
            conns: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
            max_acked: AtomicU64::new(0),
            quorum_acked: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            refused_handshakes: Mutex::new(EveryTenSeconds::default()),
            data_lock: Mutex::new(()),
            data_cv: Condvar::new(),
            data_seq: AtomicU64::new(0),
            writers_sleeping: AtomicUsize::new(0),
            waits: Mutex::new(VecDeque::new()),
            started: Instant::now(),
            sync_state_set: Mutex::new(BTreeSet::new()),
            self_id: AtomicU64::new(0),
            fenced: AtomicBool::new(false),
        });
        if let Some(az) = &inner.cfg.auto_switch {
            inner.self_id.store(az.broker_id, Ordering::Release);
            inner.sync_state_set.locked().insert(az.broker_id);
            // A set of the master alone acknowledges at once.
            inner
                .quorum_acked
                .store(inner.acked_for_waits(), Ordering::Release);
        }
        let master = HaMaster {
            inner: Arc::clone(&inner),
            local_addr,
            threads: Mutex::new(Vec::new()),
        };
        let i2 = Arc::clone(&inner);
        master.spawn("ferromq-ha-accept", move || accept_loop(i2, listener))?;
        // Every 5 ms: answer the waits whose deadline passed; at the stop, all.
        let weak = Arc::downgrade(&inner);
        master.spawn("ferromq-ha-ticker", move || loop {
            std::thread::sleep(Duration::from_millis(5));
            let Some(i) = weak.upgrade() else { break };
            if i.stop.load(Ordering::Acquire) {
                i.fail_waits();
                break;
            }
            i.expire_waits(Instant::now());
        })?;
        tracing::info!(%local_addr, "HA master listening");
        Ok(master)
    }

    /// Start a thread that [`HaMaster::shutdown`] joins.
    fn spawn(&self, name: &str, f: impl FnOnce() + Send + 'static) -> Result<(), HaError> {
        let h = std::thread::Builder::new()
            .name(name.into())
            .spawn(f)
            .map_err(|e| HaError::io(format!("spawning the {name} thread"), e))?;
        self.threads.locked().push(h);
        Ok(())
    }

    /// The address slaves connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The [`ReplicaWaiter`] to register with the store
    /// ([`MessageStore::set_replica_waiter`]) for SYNC_MASTER.
    pub fn waiter(&self) -> Arc<dyn ReplicaWaiter> {
        Arc::new(Waiter(Arc::clone(&self.inner)))
    }

    /// The highest commitlog offset any slave confirmed.
    pub fn max_acked_offset(&self) -> u64 {
        self.inner.max_acked.load(Ordering::Acquire)
    }

    /// Connected slaves with their acked offsets and lag.
    pub fn slaves(&self) -> Vec<SlaveInfo> {
        let end = self.inner.store.commit_log_max_offset();
        let now = self.inner.now_ms();
        self.inner
            .conns
            .locked()
            .iter()
            .filter(|c| !c.closed.load(Ordering::Acquire))
            .map(|c| {
                let acked = c.acked.load(Ordering::Acquire);
                SlaveInfo {
                    addr: c.addr,
                    acked_offset: acked,
                    lag_bytes: end.saturating_sub(acked),
                    lag_ms: c.observe(end, acked, now),
                    streaming_from: match c.start.load(Ordering::Acquire) {
                        u64::MAX => None,
                        v => Some(v),
                    },
                    broker_id: match c.broker_id.load(Ordering::Acquire) {
                        u64::MAX => None,
                        v => Some(v),
                    },
                    last_caught_up: match c.caught_up_ms.load(Ordering::Acquire) {
                        0 => None,
                        ms => self
                            .inner
                            .started
                            .checked_add(Duration::from_millis((ms - 1) as u64)),
                    },
                }
            })
            .collect()
    }

    /// Epoch mode: the SyncStateSet is now `members` (broker ids, as the
    /// controller says) with this master as `self_id` (added to the set
    /// when missing). SYNC puts waiting for members no longer in it are
    /// answered at once if the rest have their bytes.
    pub fn set_sync_state_set(&self, members: BTreeSet<u64>, self_id: u64) {
        let mut members = members;
        members.insert(self_id);
        self.inner.self_id.store(self_id, Ordering::Release);
        *self.inner.sync_state_set.locked() = members;
        self.inner.complete_acked();
    }

    /// The SyncStateSet ([`HaMaster::set_sync_state_set`]): at start, just
    /// this master in epoch mode, empty in classic mode.
    pub fn sync_state_set(&self) -> BTreeSet<u64> {
        self.inner.sync_state_set.locked().clone()
    }

    /// Fence this master (it lost the controller, or another broker is
    /// master now): while fenced every waiting and every new SYNC put is
    /// answered SLAVE_NOT_AVAILABLE at once. `false` lifts it.
    pub fn set_fenced(&self, fenced: bool) {
        self.inner.fenced.store(fenced, Ordering::Release);
        if fenced {
            self.inner.fail_waits();
        }
    }

    /// Whether [`HaMaster::set_fenced`] fenced this master.
    pub fn is_fenced(&self) -> bool {
        self.inner.fenced.load(Ordering::Acquire)
    }

    /// Close every slave connection and stop listening.
    pub fn shutdown(&self) {
        self.inner.stop.store(true, Ordering::Release);
        for c in self.inner.conns.locked().iter() {
            c.closed.store(true, Ordering::Release);
            let _ = c.stream.shutdown(Shutdown::Both);
        }
        self.inner.data_cv.notify_all();
        self.inner.fail_waits();
        let threads: Vec<_> = self.threads.locked().drain(..).collect();
        for h in threads {
            let _ = h.join();
        }
    }
}

impl Drop for HaMaster {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Most master log ends remembered per slave for its time lag.
const MAX_PENDING: usize = 4096;

/// Drop the log ends `acked` covers, remember `end` if new, and return the age of
/// the oldest end still unconfirmed.
fn observe_pending(p: &mut VecDeque<(u64, i64)>, end: u64, acked: u64, now: i64) -> u64 {
    while p.front().is_some_and(|&(off, _)| off <= acked) {
        p.pop_front();
    }
    if end > acked && p.back().is_none_or(|&(off, _)| off < end) {
        if p.len() >= MAX_PENDING {
            // Keep the oldest entries exact; later ones merge into the last.
            p.pop_back();
        }
        p.push_back((end, now));
    }
    p.front().map_or(0, |&(_, seen)| (now - seen).max(0) as u64)
}

impl Conn {
    /// `(broker id, acked offset)` of an open connection whose slave named
    /// itself (epoch mode), else `None`.
    fn identified_ack(&self) -> Option<(u64, u64)> {
        let id = self.broker_id.load(Ordering::Acquire);
        if id == u64::MAX || self.closed.load(Ordering::Acquire) {
            return None;
        }
        Some((id, self.acked.load(Ordering::Acquire)))
    }

    /// Note that the master's log ends at `end` at `now` and the slave confirmed
    /// `acked`; returns the slave's time lag in ms.
    fn observe(&self, end: u64, acked: u64, now: i64) -> u64 {
        let mut p = self.pending.locked();
        observe_pending(&mut p, end, acked, now)
    }

    /// Log the slave falling behind or catching up (once per change).
    fn check_lag(&self, inner: &Inner, end: u64) {
        let acked = self.acked.load(Ordering::Acquire);
        let lag_ms = self.observe(end, acked, inner.now_ms());
        let lag_bytes = end.saturating_sub(acked);
        let alarm_ms = inner.cfg.fall_behind_alarm.as_millis() as u64;
        let behind = lag_ms >= alarm_ms || lag_bytes >= inner.cfg.slave_fallbehind_max;
        let logged = self.behind_logged.load(Ordering::Acquire);
        if behind && !logged {
            self.behind_logged.store(true, Ordering::Release);
            tracing::warn!(
                slave = %self.addr,
                acked,
                lag_bytes,
                lag_ms,
                "HA slave fell behind"
            );
        } else if logged && lag_ms < alarm_ms / 2 && lag_bytes < inner.cfg.slave_fallbehind_max / 2
        {
            self.behind_logged.store(false, Ordering::Release);
            tracing::info!(slave = %self.addr, acked, lag_bytes, lag_ms, "HA slave caught up");
        }
    }
}

impl Inner {
    fn now_ms(&self) -> i64 {
        self.started.elapsed().as_millis() as i64 + 1
    }

    /// The log offset up to which waiting puts are acknowledged: the highest
    /// ack in classic mode, the SyncStateSet's rule in epoch mode.
    fn acked_for_waits(&self) -> u64 {
        match &self.cfg.auto_switch {
            None => self.max_acked.load(Ordering::Acquire),
            Some(az) => self.quorum_acked(az, self.sync_state_set_acked()),
        }
    }

    /// Epoch mode's ack rule (RocketMQ 5's `GroupTransferService` under
    /// `AutoSwitchHAService`). With `allAckInSyncStateSet`: the lowest ack
    /// among the set's members other than this master (a member with no
    /// connection counts 0; a set of the master alone acks everything).
    /// Otherwise: the highest offset that `max(inSyncReplicas,
    /// minInSyncReplicas) - 1` distinct slaves all have.
    /// `set_acked` is [`Inner::sync_state_set_acked`], computed once by the
    /// caller (it is also the confirm offset).
    fn quorum_acked(&self, az: &AutoSwitch, set_acked: Option<u64>) -> u64 {
        if az.all_ack_in_sync_state_set {
            return set_acked.unwrap_or(u64::MAX);
        }
        let need = az.in_sync_replicas.max(az.min_in_sync_replicas);
        if need <= 1 {
            return u64::MAX;
        }
        let mut best: BTreeMap<u64, u64> = BTreeMap::new();
        for c in self.conns.locked().iter() {
            if let Some((id, acked)) = c.identified_ack() {
                let e = best.entry(id).or_insert(0);
                *e = (*e).max(acked);
            }
        }
        let mut acks: Vec<u64> = best.into_values().collect();
        acks.sort_unstable_by(|a, b| b.cmp(a));
        acks.get(need - 2).copied().unwrap_or(0)
    }

    /// The lowest ack among the SyncStateSet's members other than this
    /// master (a member with no connection counts 0; several connections
    /// of one member count their highest); `None` for a set of the master
    /// alone. Runs on every ack: no allocation, the set's lock then the
    /// connections' (never taken the other way round).
    fn sync_state_set_acked(&self) -> Option<u64> {
        let me = self.self_id.load(Ordering::Acquire);
        let set = self.sync_state_set.locked();
        let conns = self.conns.locked();
        set.iter()
            .filter(|&&m| m != me)
            .map(|&m| {
                conns
                    .iter()
                    .filter_map(|c| c.identified_ack())
                    .filter(|&(id, _)| id == m)
                    .map(|(_, acked)| acked)
                    .max()
                    .unwrap_or(0)
            })
            .min()
    }

    /// Answer the waiting puts that the acks now cover. In epoch mode the
    /// store's confirm offset follows the SyncStateSet's lowest ack too
    /// (RocketMQ 5's `confirmOffset`), so consumers see only what a newly
    /// elected master will have; neither moves while fenced.
    fn complete_acked(&self) {
        let mut done = Vec::new();
        {
            let mut w = self.waits.locked();
            if self.fenced.load(Ordering::Acquire) {
                return;
            }
            let acked = match &self.cfg.auto_switch {
                None => self.max_acked.load(Ordering::Acquire),
                Some(az) => {
                    let set_acked = self.sync_state_set_acked();
                    self.store.set_confirm_offset(set_acked);
                    self.quorum_acked(az, set_acked)
                }
            };
            self.quorum_acked.store(acked, Ordering::Release);
            while w.front().is_some_and(|a| a.end <= acked) {
                done.extend(w.pop_front());
            }
        }
        for a in done {
            (a.done)(PutStatus::PutOk);
        }
    }

    /// Answer the waiting puts whose deadline passed (FLUSH_SLAVE_TIMEOUT).
    fn expire_waits(&self, now: Instant) {
        let mut late = VecDeque::new();
        {
            let mut w = self.waits.locked();
            if w.iter().any(|a| a.deadline <= now) {
                let (gone, keep) = std::mem::take(&mut *w)
                    .into_iter()
                    .partition(|a| a.deadline <= now);
                *w = keep;
                late = gone;
            }
        }
        for a in late {
            (a.done)(PutStatus::FlushSlaveTimeout);
        }
    }

    /// The master stops: every waiting put gets SLAVE_NOT_AVAILABLE.
    fn fail_waits(&self) {
        let all = std::mem::take(&mut *self.waits.locked());
        for a in all {
            (a.done)(PutStatus::SlaveNotAvailable);
        }
    }

    /// New log bytes wait for a slave: wake a sleeping writer so it sends them
    /// now rather than at its next poll.
    fn poke_writers(&self) {
        self.data_seq.fetch_add(1, Ordering::SeqCst);
        if self.writers_sleeping.load(Ordering::SeqCst) > 0 {
            let _g = self.data_lock.locked();
            self.data_cv.notify_all();
        }
    }

    fn live_slaves(&self) -> usize {
        self.conns
            .locked()
            .iter()
            .filter(|c| !c.closed.load(Ordering::Acquire))
            .count()
    }

    fn close(&self, conn: &Conn, why: &str) {
        self.close_with(conn, why, true);
    }

    /// [`Inner::close`], logging at debug instead of WARN when `warn` is false
    /// (evictions, which the accept loop reports rate-limited).
    fn close_with(&self, conn: &Conn, why: &str, warn: bool) {
        if !conn.closed.swap(true, Ordering::AcqRel) {
            if warn {
                tracing::warn!(slave = %conn.addr, why, "HA slave connection closed");
            } else {
                tracing::debug!(slave = %conn.addr, why, "HA slave connection closed");
            }
            let _ = conn.stream.shutdown(Shutdown::Both);
            self.conns.locked().retain(|c| c.id != conn.id);
            self.data_cv.notify_all();
        }
    }
}

/// Most slave connections served at once. A master has one or two slaves; the
/// headroom is for reconnects that overlap the close of the old connection.
/// Each connection costs two threads and a `haTransferBatchSize` buffer, nothing
/// more. At the limit the oldest connection that has not sent its first offset
/// report yet makes room; when every connection has reported, new ones are
/// closed at once (with a WARN at most every 10 s).
pub const MAX_SLAVE_CONNECTIONS: usize = 16;

/// Most slave connections from one source address: a slave and the overlap of
/// its reconnect. At the limit the address's oldest connection that has not
/// reported yet makes room; when all have reported, the new one is closed at
/// once. So a stranger holding connections takes at most this many of the
/// [`MAX_SLAVE_CONNECTIONS`] slots per address it has, and connections that
/// never report cannot keep a real slave out at all.
pub const MAX_SLAVE_CONNECTIONS_PER_ADDRESS: usize = 2;

/// One log line per 10 s for a condition of the accept loop (which runs on one
/// thread), with the count of lines suppressed since.
#[derive(Default)]
struct EveryTenSeconds {
    last: Option<Instant>,
    suppressed: u64,
}

impl EveryTenSeconds {
    fn check(&mut self) -> Option<u64> {
        if self
            .last
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(10))
        {
            self.last = Some(Instant::now());
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            None
        }
    }
}

/// What to do with a new connection from `addr`.
enum Admission {
    /// Serve it.
    Serve,
    /// Serve it after closing this connection that has not reported yet.
    Evict(Arc<Conn>),
    /// Close it at once: the limit named is reached by connections that all
    /// reported.
    Refuse(&'static str),
}

/// The limits [`MAX_SLAVE_CONNECTIONS_PER_ADDRESS`] and
/// [`MAX_SLAVE_CONNECTIONS`] for a connection from `addr`.
fn admit(conns: &[Arc<Conn>], addr: SocketAddr) -> Admission {
    let live = || conns.iter().filter(|c| !c.closed.load(Ordering::Acquire));
    // The oldest (lowest id) connection among `cands` that has not reported.
    let oldest_silent = |cands: &mut dyn Iterator<Item = &Arc<Conn>>| {
        cands
            .filter(|c| c.start.load(Ordering::Acquire) == u64::MAX)
            .min_by_key(|c| c.id)
            .cloned()
    };
    let same = live().filter(|c| c.addr.ip() == addr.ip()).count();
    if same >= MAX_SLAVE_CONNECTIONS_PER_ADDRESS {
        return match oldest_silent(&mut live().filter(|c| c.addr.ip() == addr.ip())) {
            Some(c) => Admission::Evict(c),
            None => Admission::Refuse("per-address limit"),
        };
    }
    if live().count() >= MAX_SLAVE_CONNECTIONS {
        return match oldest_silent(&mut live()) {
            Some(c) => Admission::Evict(c),
            None => Admission::Refuse("connection limit"),
        };
    }
    Admission::Serve
}

fn accept_loop(inner: Arc<Inner>, listener: TcpListener) {
    let mut handles: Vec<JoinHandle<()>> = Vec::new();
    let mut refused_log = EveryTenSeconds::default();
    let mut evicted_log = EveryTenSeconds::default();
    let mut accept_log = EveryTenSeconds::default();
    while !inner.stop.load(Ordering::Acquire) {
        handles.retain(|h| !h.is_finished());
        match listener.accept() {
            Ok((stream, addr)) => {
                let admission = admit(&inner.conns.locked(), addr);
                match admission {
                    Admission::Serve => {}
                    Admission::Evict(old) => {
                        inner.close_with(&old, "evicted: it sent no offset report and a new connection needed its slot", false);
                        if let Some(suppressed) = evicted_log.check() {
                            tracing::warn!(
                                slave = %addr,
                                evicted = %old.addr,
                                max = MAX_SLAVE_CONNECTIONS,
                                max_per_address = MAX_SLAVE_CONNECTIONS_PER_ADDRESS,
                                suppressed,
                                "HA slave connection limit reached: closed the oldest connection that sent no offset report"
                            );
                        }
                    }
                    Admission::Refuse(limit) => {
                        if let Some(suppressed) = refused_log.check() {
                            tracing::warn!(
                                slave = %addr,
                                limit,
                                max = MAX_SLAVE_CONNECTIONS,
                                max_per_address = MAX_SLAVE_CONNECTIONS_PER_ADDRESS,
                                refused_since_last_line = suppressed,
                                "HA slave connection limit reached: closing new connections at once"
                            );
                        }
                        let _ = stream.shutdown(Shutdown::Both);
                        continue;
                    }
                }
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_nodelay(true);
                // A slave that reads nothing for the housekeeping interval is
                // dropped like one that reports nothing (the read side's timeout).
                let _ = stream.set_write_timeout(Some(inner.cfg.housekeeping_interval));
                let Ok(sock) = stream.try_clone() else {
                    continue;
                };
                let conn = Arc::new(Conn {
                    id: inner.next_id.fetch_add(1, Ordering::Relaxed),
                    addr,
                    acked: AtomicU64::new(0),
                    pending: Mutex::new(VecDeque::new()),
                    behind_logged: AtomicBool::new(false),
                    closed: AtomicBool::new(false),
                    start: AtomicU64::new(u64::MAX),
                    broker_id: AtomicU64::new(u64::MAX),
                    epoch_gen: AtomicU64::new(u64::MAX),
                    caught_up_ms: AtomicI64::new(0),
                    stream,
                });
                inner.conns.locked().push(Arc::clone(&conn));
                tracing::info!(slave = %addr, "HA slave connected");
                let (i1, c1) = (Arc::clone(&inner), Arc::clone(&conn));
                if let Ok(h) = std::thread::Builder::new()
                    .name("ferromq-ha-read".into())
                    .spawn(move || serve_conn(i1, c1, sock))
                {
                    handles.push(h);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                if let Some(suppressed) = accept_log.check() {
                    tracing::warn!(
                        error = %e,
                        failed_since_last_line = suppressed,
                        "HA accept failed (retrying every 100 ms)"
                    );
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    for h in handles {
        let _ = h.join();
    }
}

/// One slave connection: the session (TLS and the authenticated handshake,
/// when configured), then its writer thread and, on this thread, its reader.
fn serve_conn(inner: Arc<Inner>, conn: Arc<Conn>, sock: TcpStream) {
    let (rd, wr) = match open_session(&inner, &conn, &sock) {
        Ok(halves) => halves,
        Err(e) => {
            inner.close_with(&conn, &format!("refused: {e}"), false);
            if let Some(suppressed) = inner.refused_handshakes.locked().check() {
                tracing::warn!(
                    peer = %conn.addr,
                    error = %e,
                    refused_since_last_line = suppressed,
                    "HA connection refused (TLS or the authenticated handshake)"
                );
            }
            return;
        }
    };
    let first = Arc::new((Mutex::new(None::<u64>), Condvar::new()));
    let (i2, c2, f2) = (Arc::clone(&inner), Arc::clone(&conn), Arc::clone(&first));
    let writer = match std::thread::Builder::new()
        .name("ferromq-ha-write".into())
        .spawn(move || write_loop(i2, c2, wr, f2))
    {
        Ok(h) => h,
        Err(e) => {
            inner.close(&conn, &format!("cannot start the writer thread: {e}"));
            return;
        }
    };
    read_loop(&inner, &conn, rd, &first);
    let _ = writer.join();
}

/// The two halves of a new connection: TLS when the port serves it (plain
/// too unless TLS is required), then the authenticated handshake when
/// configured, then in epoch mode the epoch hello (which names the slave's
/// broker id, noted in `conn`); all within [`crate::auth::HANDSHAKE_TIMEOUT`].
fn open_session(
    inner: &Inner,
    conn: &Conn,
    sock: &TcpStream,
) -> Result<(HaRead, HaWrite), HaError> {
    crate::auth::with_timeouts(sock, || {
        let (mut rd, mut wr) = match &inner.cfg.tls.server {
            Some(cfg)
                if tls::starts_tls(sock)
                    .map_err(|e| HaError::io("reading the first byte", e))? =>
            {
                tls::accept(sock, Arc::clone(cfg)).map_err(|e| HaError::io("TLS handshake", e))?
            }
            Some(_) if inner.cfg.tls.server_required => return Err(HaError::Protocol(
                "plain connection refused: the HA port requires TLS (tls.server.mode=enforcing)"
                    .into(),
            )),
            _ => tls::plain(sock).map_err(|e| HaError::io("cloning the socket", e))?,
        };
        if let Some(auth) = &inner.cfg.auth {
            let access_key = crate::auth::master_handshake(&mut rd, &mut wr, auth.as_ref())?;
            tracing::info!(%access_key, "HA slave authenticated");
        }
        if let Some(az) = &inner.cfg.auto_switch {
            let hello = autoswitch::master_read_hello(&mut rd, &mut wr)?;
            if hello.broker_id == az.broker_id {
                return Err(HaError::Protocol(format!(
                    "the slave says it is broker {}, this master's own id",
                    hello.broker_id
                )));
            }
            // Taken before the entries: an epoch added after this ends the
            // connection, so the slave never follows with stale entries.
            let generation = az.epochs.new_entries();
            let entries = az.epochs.entries();
            let (min, max) = (
                inner.store.commit_log_min_offset(),
                inner.store.commit_log_max_offset(),
            );
            autoswitch::master_answer(&mut wr, az.broker_id, min, max, &entries)?;
            conn.broker_id.store(hello.broker_id, Ordering::Release);
            conn.epoch_gen.store(generation, Ordering::Release);
            tracing::info!(
                slave = %conn.addr,
                broker_id = hello.broker_id,
                slave_max_offset = hello.max_offset,
                master_max_offset = max,
                epochs = entries.len(),
                "HA slave epoch hello answered"
            );
        }
        Ok((rd, wr))
    })
}

/// Reads the slave's offset reports; the first one says where to start.
fn read_loop(
    inner: &Inner,
    conn: &Conn,
    mut stream: HaRead,
    first: &(Mutex<Option<u64>>, Condvar),
) {
    let _ = conn
        .stream
        .set_read_timeout(Some(inner.cfg.housekeeping_interval));
    let mut started = false;
    while !conn.closed.load(Ordering::Acquire) && !inner.stop.load(Ordering::Acquire) {
        let report = match read_report(&mut stream) {
            Ok(v) => v,
            Err(e) => {
                let why = if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) {
                    "no report within haHousekeepingInterval".to_string()
                } else {
                    format!("read failed: {e}")
                };
                inner.close(conn, &why);
                break;
            }
        };
        if !started && report == i64::from_be_bytes(crate::auth::HANDSHAKE_MAGIC) {
            inner.close(
                conn,
                "the slave asked for ferromq's authenticated HA handshake, but this master runs without ACL (aclEnable=false)",
            );
            break;
        }
        if !started && report == i64::from_be_bytes(autoswitch::EPOCH_HELLO_MAGIC) {
            inner.close(
                conn,
                "the slave runs epoch mode (RocketMQ 5 controller mode), but this master runs classic HA",
            );
            break;
        }
        let master_max = inner.store.commit_log_max_offset();
        // In epoch mode the slave saw the master's end in the hello's
        // answer and truncated to it: a first report beyond it is a slave
        // whose history is not the master's.
        let epoch_mode = inner.cfg.auto_switch.is_some();
        if report < 0 || report as u64 > master_max && (started || epoch_mode) {
            // A slave claiming more than the master has is lying (apache/rocketmq#3015).
            inner.close(
                conn,
                &format!("slave reported offset {report} beyond the master's {master_max}"),
            );
            break;
        }
        let report = report as u64;
        if !started {
            started = true;
            let (lock, cv) = first;
            *lock.locked() = Some(report);
            cv.notify_all();
        }
        if report >= master_max {
            conn.caught_up_ms.store(inner.now_ms(), Ordering::Release);
        }
        let prev = conn.acked.fetch_max(report, Ordering::AcqRel);
        if report > prev || prev == 0 {
            inner.max_acked.fetch_max(report, Ordering::AcqRel);
            inner.complete_acked();
        }
        conn.check_lag(inner, master_max);
    }
}

/// Streams the commitlog to the slave from where it asked.
fn write_loop(
    inner: Arc<Inner>,
    conn: Arc<Conn>,
    stream: HaWrite,
    first: Arc<(Mutex<Option<u64>>, Condvar)>,
) {
    // Wait for the slave's first report.
    let start = {
        let (lock, cv) = &*first;
        let now = Instant::now();
        let deadline = now
            .checked_add(inner.cfg.housekeeping_interval)
            .unwrap_or(now + crate::MAX_INTERVAL);
        let mut g = lock.locked();
        loop {
            if let Some(v) = *g {
                break Some(v);
            }
            let now = Instant::now();
            if now >= deadline || conn.closed.load(Ordering::Acquire) {
                break None;
            }
            g = cv
                .wait_timeout(g, (deadline - now).min(Duration::from_millis(100)))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    };
    let Some(report) = start else {
        inner.close(&conn, "no first offset report");
        return;
    };
    let epoch_gen = conn.epoch_gen.load(Ordering::Acquire);
    let epochs = inner.cfg.auto_switch.as_ref().map(|az| &az.epochs);
    let mut next = if report == 0 && epochs.is_some() {
        // Epoch mode: a new slave copies what the master still has
        // (RocketMQ 5's AutoSwitchHAConnection without syncFromLastFile).
        inner.store.commit_log_min_offset()
    } else if report == 0 {
        // A new slave starts at the beginning of the master's last file.
        let max = inner.store.commit_log_max_offset();
        max - max % inner.file_size
    } else {
        report
    };
    if epochs.is_some() && next < inner.store.commit_log_min_offset() {
        inner.close(
            &conn,
            &format!(
                "the slave asks for offset {next}, below the master's min offset {}",
                inner.store.commit_log_min_offset()
            ),
        );
        return;
    }
    conn.start.store(next, Ordering::Release);
    tracing::info!(slave = %conn.addr, from = next, "HA streaming");
    let mut w = BufWriter::with_capacity(inner.cfg.transfer_batch_size + 64, stream);
    let mut last_send = Instant::now();
    let mut last_lag_check = Instant::now();
    while !conn.closed.load(Ordering::Acquire) && !inner.stop.load(Ordering::Acquire) {
        if epochs.is_some_and(|e| e.new_entries() != epoch_gen) {
            inner.close(&conn, "the master's epoch changed: the slave re-handshakes");
            return;
        }
        // A slave that stops reporting is still seen falling behind.
        if last_lag_check.elapsed() >= Duration::from_millis(500) {
            conn.check_lag(&inner, inner.store.commit_log_max_offset());
            last_lag_check = Instant::now();
        }
        let seq = inner.data_seq.load(Ordering::SeqCst);
        match inner
            .store
            .read_commit_log(next, inner.cfg.transfer_batch_size)
        {
            Some(bytes) => {
                if let Err(e) = write_frame(&mut w, next, &bytes) {
                    inner.close(&conn, &write_error(&e));
                    return;
                }
                next += bytes.len() as u64;
                last_send = Instant::now();
            }
            None => {
                if last_send.elapsed() >= inner.cfg.heartbeat_interval {
                    if let Err(e) = write_frame(&mut w, next, &[]) {
                        inner.close(&conn, &write_error(&e));
                        return;
                    }
                    last_send = Instant::now();
                }
                let g = inner.data_lock.locked();
                inner.writers_sleeping.fetch_add(1, Ordering::SeqCst);
                if inner.data_seq.load(Ordering::SeqCst) == seq {
                    let _ = inner
                        .data_cv
                        .wait_timeout(g, Duration::from_millis(1))
                        .unwrap_or_else(|e| e.into_inner());
                }
                inner.writers_sleeping.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
}

/// Why a write to a slave failed, for the close's log line.
fn write_error(e: &std::io::Error) -> String {
    if matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    ) {
        "the slave read nothing within haHousekeepingInterval".to_string()
    } else {
        format!("write failed: {e}")
    }
}

/// A SYNC_MASTER put waiting for a slave.
struct AckWait {
    /// The log end the put needs confirmed.
    end: u64,
    deadline: Instant,
    done: ReplicaCallback,
}

struct Waiter(Arc<Inner>);

impl ReplicaWaiter for Waiter {
    fn wait_replicated(&self, end_offset: u64, timeout: Duration) -> PutStatus {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.on_replicated(
            end_offset,
            timeout,
            Box::new(move |status| {
                let _ = tx.send(status);
            }),
        );
        // The ticker answers every wait by its deadline (or at the stop); the
        // margin only bounds this wait should that ever fail.
        rx.recv_timeout(timeout + Duration::from_secs(1))
            .unwrap_or(PutStatus::FlushSlaveTimeout)
    }

    fn answers_without_blocking(&self) -> bool {
        true
    }

    fn on_replicated(&self, end_offset: u64, timeout: Duration, done: ReplicaCallback) {
        let inner = &self.0;
        if inner.stop.load(Ordering::Acquire) || inner.fenced.load(Ordering::Acquire) {
            return done(PutStatus::SlaveNotAvailable);
        }
        match &inner.cfg.auto_switch {
            None => {
                if inner.live_slaves() == 0 {
                    return done(PutStatus::SlaveNotAvailable);
                }
                let acked = inner.max_acked.load(Ordering::Acquire);
                if end_offset.saturating_sub(acked) >= inner.cfg.slave_fallbehind_max {
                    return done(PutStatus::SlaveNotAvailable);
                }
            }
            Some(az) => {
                // RocketMQ answers IN_SYNC_REPLICAS_NOT_ENOUGH (before
                // writing); the engine's closest status is this one.
                if inner.sync_state_set.locked().len() < az.min_in_sync_replicas {
                    return done(PutStatus::SlaveNotAvailable);
                }
            }
        }
        {
            // Under the lock, so that an ack (which raises `max_acked` or the
            // connection's ack before it takes this lock) either sees this
            // wait or is seen here; and a stop or a fence (set before
            // `fail_waits` takes this lock) either sees it or is seen here.
            let mut w = inner.waits.locked();
            if inner.stop.load(Ordering::Acquire) || inner.fenced.load(Ordering::Acquire) {
                drop(w);
                return done(PutStatus::SlaveNotAvailable);
            }
            // Epoch mode: what the last ack computed under this lock (every
            // ack and every SyncStateSet change recompute it here).
            let acked = match &inner.cfg.auto_switch {
                None => inner.max_acked.load(Ordering::Acquire),
                Some(_) => inner.quorum_acked.load(Ordering::Acquire),
            };
            if acked < end_offset {
                // Puts register in about log order: insert from the back.
                let at = w
                    .iter()
                    .rposition(|a| a.end <= end_offset)
                    .map_or(0, |p| p + 1);
                w.insert(
                    at,
                    AckWait {
                        end: end_offset,
                        deadline: {
                            let now = Instant::now();
                            now.checked_add(timeout)
                                .unwrap_or(now + crate::MAX_INTERVAL)
                        },
                        done,
                    },
                );
                drop(w);
                inner.poke_writers();
                return;
            }
        }
        done(PutStatus::PutOk);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_lag_is_the_age_of_the_oldest_unconfirmed_end() {
        let mut p = VecDeque::new();
        // Up to date: no lag.
        assert_eq!(observe_pending(&mut p, 100, 100, 10), 0);
        // The master grows at t=20 and t=30; the slave has not confirmed.
        assert_eq!(observe_pending(&mut p, 200, 100, 20), 0);
        assert_eq!(observe_pending(&mut p, 300, 100, 30), 10);
        assert_eq!(observe_pending(&mut p, 300, 100, 50), 30);
        // The slave confirms 200: the oldest missing end was seen at t=30.
        assert_eq!(observe_pending(&mut p, 300, 200, 60), 30);
        // Under steady load the lag stays small instead of growing forever.
        assert_eq!(observe_pending(&mut p, 400, 300, 70), 0);
        assert_eq!(observe_pending(&mut p, 500, 400, 80), 0);
        assert_eq!(observe_pending(&mut p, 500, 500, 90), 0);
        assert!(p.is_empty());
        for i in 0..(MAX_PENDING as u64 + 10) {
            observe_pending(&mut p, 1000 + i, 500, 100 + i as i64);
        }
        assert!(p.len() <= MAX_PENDING);
        assert_eq!(p.front().map(|e| e.1), Some(100));
    }
}
