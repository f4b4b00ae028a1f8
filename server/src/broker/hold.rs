//! Long polling: pulls parked until their queue grows past the offset they asked for.
//!
//! The engine's arrival listener (called on its dispatch thread) wakes the
//! parked pulls of a queue; each then re-runs once on the pull pool.
//!
//! Bounded, as a server on a real network must be:
//! - parked pulls are kept per queue, ordered by offset, in one of [`SHARDS`]
//!   maps chosen by a hash of (topic, queue id): an arrival or a new park
//!   touches only its own queue's entries (O(log n), no scan of every parked
//!   pull, no lock shared by all queues);
//! - each pull waits on its own tokio timer (the runtime's timer wheel), and
//!   removes its entry when it ends, however it ends: expiry scans nothing;
//! - every pull that may park is registered with its connection (an
//!   [`Activity`]), so [`PullHold::on_close`] drops that connection's parked
//!   pulls at once (their waits end without answering); a park checks the
//!   connection's closed flag ([`ConnInfo::is_closed`], set before `on_close`)
//!   under the connection's lock, so a pull that reaches the hold after its
//!   connection's `on_close` (even one that registered after it) never parks;
//! - a connection may have at most `max_per_connection` pulls parked; beyond
//!   that [`PullHold::park`] refuses and the broker short-polls the pull
//!   (waits `shortPollingTimeMills` unfiled, then answers).

use ferromq_engine::sync::LockExt;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{fence, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::remoting::ConnInfo;

/// Number of lock shards for queues and for connections.
pub const SHARDS: usize = 16;

/// Parked pulls of one queue, by (offset waited for, entry id).
type QueueWaiters = BTreeMap<(u64, u64), oneshot::Sender<()>>;

/// One shard of the queue index: topic -> queue id -> waiters.
type QueueShard = HashMap<String, HashMap<u32, QueueWaiters>>;

/// Where one parked pull is filed.
#[derive(Debug)]
struct ParkKey {
    topic: Arc<str>,
    queue_id: u32,
    offset: u64,
    id: u64,
}

/// One connection's pulls that may park.
#[derive(Debug, Default)]
struct ConnPulls {
    /// Pull requests of this connection in progress (parked or not).
    active: usize,
    /// Its parked pulls, by entry id.
    parked: HashMap<u64, Arc<ParkKey>>,
}

/// Parked pulls, indexed by queue and by connection.
pub struct PullHold {
    queues: Box<[Mutex<QueueShard>]>,
    conns: Box<[Mutex<HashMap<u64, ConnPulls>>]>,
    /// Entries in the queue index (pulls waiting now).
    parked: AtomicUsize,
    /// Parks refused because the connection had `max_per_connection` parked.
    refused: AtomicU64,
    next_id: AtomicU64,
    max_per_connection: usize,
}

impl std::fmt::Debug for PullHold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullHold")
            .field("parked", &self.parked())
            .field("max_per_connection", &self.max_per_connection)
            .finish_non_exhaustive()
    }
}

impl Default for PullHold {
    fn default() -> Self {
        Self::new(usize::MAX)
    }
}

/// Why [`PullHold::park`] did not park a pull.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParkRefused {
    /// The connection already has its maximum of parked pulls.
    Full,
    /// The connection has closed.
    Closed,
}

/// How a parked pull's wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// The queue grew past the offset (or the broker is stopping): pull again.
    Arrived,
    /// The suspend time passed: pull again.
    TimedOut,
    /// The connection closed: nobody is left to answer.
    Closed,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.locked()
}

/// FNV-1a over the topic and queue id: picks a queue shard.
fn queue_shard(topic: &str, queue_id: u32) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in topic.bytes().chain(queue_id.to_be_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % SHARDS as u64) as usize
}

fn conn_shard(conn_id: u64) -> usize {
    (conn_id % SHARDS as u64) as usize
}

/// A pull request in progress on a connection; see [`PullHold::enter`].
#[derive(Debug)]
pub struct Activity<'a> {
    hold: &'a PullHold,
    conn: &'a ConnInfo,
    conn_id: u64,
}

impl Drop for Activity<'_> {
    fn drop(&mut self) {
        let mut conns = lock(&self.hold.conns[conn_shard(self.conn_id)]);
        if let Some(c) = conns.get_mut(&self.conn_id) {
            c.active = c.active.saturating_sub(1);
            if c.active == 0 {
                conns.remove(&self.conn_id);
            }
        }
    }
}

/// A parked pull; its entry is removed when this is dropped.
#[derive(Debug)]
pub struct Parked<'a> {
    hold: &'a PullHold,
    conn_id: u64,
    key: Arc<ParkKey>,
    rx: Option<oneshot::Receiver<()>>,
}

impl Parked<'_> {
    /// Wait until the queue grows past the offset, `max` passes, or the
    /// connection closes.
    pub async fn wait(mut self, max: Duration) -> Wake {
        let Some(rx) = self.rx.take() else {
            return Wake::Closed;
        };
        match tokio::time::timeout(max, rx).await {
            Ok(Ok(())) => Wake::Arrived,
            Ok(Err(_)) => Wake::Closed,
            Err(_) => Wake::TimedOut,
        }
    }
}

impl Drop for Parked<'_> {
    fn drop(&mut self) {
        self.hold.unfile(&self.key);
        let mut conns = lock(&self.hold.conns[conn_shard(self.conn_id)]);
        if let Some(c) = conns.get_mut(&self.conn_id) {
            c.parked.remove(&self.key.id);
        }
    }
}

impl PullHold {
    /// No parked pulls; at most `max_per_connection` parked per connection.
    pub fn new(max_per_connection: usize) -> Self {
        PullHold {
            queues: (0..SHARDS).map(|_| Mutex::default()).collect(),
            conns: (0..SHARDS).map(|_| Mutex::default()).collect(),
            parked: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
            next_id: AtomicU64::new(1),
            max_per_connection,
        }
    }

    /// Register a pull request of connection `conn` that may park; it
    /// counts until the returned guard is dropped (after any [`Parked`]).
    pub fn enter<'a>(&'a self, conn: &'a ConnInfo) -> Activity<'a> {
        let conn_id = conn.id;
        let mut conns = lock(&self.conns[conn_shard(conn_id)]);
        conns.entry(conn_id).or_default().active += 1;
        Activity {
            hold: self,
            conn,
            conn_id,
        }
    }

    /// Park a pull of `activity`'s connection waiting for a message at
    /// `offset`; it wakes when the queue's max offset passes `offset`, on
    /// [`PullHold::wake_all`], or (as closed) on [`PullHold::on_close`].
    ///
    /// # Errors
    /// [`ParkRefused`] when the connection has its maximum parked or has closed.
    pub fn park<'a>(
        &'a self,
        activity: &Activity<'a>,
        topic: &str,
        queue_id: u32,
        offset: u64,
    ) -> Result<Parked<'a>, ParkRefused> {
        let conn_id = activity.conn_id;
        let (tx, rx) = oneshot::channel();
        let key = Arc::new(ParkKey {
            topic: Arc::from(topic),
            queue_id,
            offset,
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
        });
        // The connection's lock is held across the closed check and filing:
        // `on_close` runs after the flag is set and takes this lock, so either
        // it sees this entry or this sees the flag (lock order: connection, queue).
        let mut conns = lock(&self.conns[conn_shard(conn_id)]);
        if activity.conn.is_closed() {
            return Err(ParkRefused::Closed);
        }
        let c = conns.entry(conn_id).or_default();
        if c.parked.len() >= self.max_per_connection {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(ParkRefused::Full);
        }
        c.parked.insert(key.id, key.clone());
        {
            let mut q = lock(&self.queues[queue_shard(topic, queue_id)]);
            let list = match q.get_mut(topic) {
                Some(t) => t.entry(queue_id).or_default(),
                None => q
                    .entry(topic.to_string())
                    .or_default()
                    .entry(queue_id)
                    .or_default(),
            };
            list.insert((offset, key.id), tx);
            self.parked.fetch_add(1, Ordering::SeqCst);
        }
        drop(conns);
        // Pairs with the fence in `notify`: either the notifier sees this park,
        // or the caller's check of the max offset after parking sees its message.
        fence(Ordering::SeqCst);
        Ok(Parked {
            hold: self,
            conn_id,
            key,
            rx: Some(rx),
        })
    }

    /// Remove one entry from the queue index, if still there.
    fn unfile(&self, key: &ParkKey) -> Option<oneshot::Sender<()>> {
        let mut q = lock(&self.queues[queue_shard(&key.topic, key.queue_id)]);
        let queues = q.get_mut(&*key.topic)?;
        let list = queues.get_mut(&key.queue_id)?;
        let tx = list.remove(&(key.offset, key.id))?;
        self.parked.fetch_sub(1, Ordering::SeqCst);
        if list.is_empty() {
            queues.remove(&key.queue_id);
            if queues.is_empty() {
                q.remove(&*key.topic);
            }
        }
        Some(tx)
    }

    /// New messages: the queue's max offset is now `max_offset`. Called on the
    /// engine's dispatch thread: with nothing parked it takes no lock; else it
    /// locks one shard and takes the waiters below `max_offset` (O(log n)).
    pub fn notify(&self, topic: &str, queue_id: u32, max_offset: u64) {
        fence(Ordering::SeqCst);
        if self.parked.load(Ordering::Relaxed) == 0 {
            return;
        }
        let woken = {
            let mut q = lock(&self.queues[queue_shard(topic, queue_id)]);
            let Some(queues) = q.get_mut(topic) else {
                return;
            };
            let Some(list) = queues.get_mut(&queue_id) else {
                return;
            };
            match list.first_key_value() {
                Some((&(first, _), _)) if first < max_offset => {}
                _ => return,
            }
            let rest = list.split_off(&(max_offset, 0));
            let woken = std::mem::replace(list, rest);
            self.parked.fetch_sub(woken.len(), Ordering::SeqCst);
            if list.is_empty() {
                queues.remove(&queue_id);
                if queues.is_empty() {
                    q.remove(topic);
                }
            }
            woken
        };
        for tx in woken.into_values() {
            let _ = tx.send(());
        }
    }

    /// The connection closed (its [`ConnInfo::is_closed`] is already true, so
    /// its pulls still in flight cannot park): drop its parked pulls (their
    /// waits end as [`Wake::Closed`]). Returns how many were dropped.
    pub fn on_close(&self, conn_id: u64) -> usize {
        let parked = {
            let mut conns = lock(&self.conns[conn_shard(conn_id)]);
            let Some(c) = conns.get_mut(&conn_id) else {
                return 0;
            };
            std::mem::take(&mut c.parked)
        };
        let mut n = 0;
        for key in parked.values() {
            // Dropping the sender ends that pull's wait.
            if self.unfile(key).is_some() {
                n += 1;
            }
        }
        n
    }

    /// Wake every parked pull (shutdown).
    pub fn wake_all(&self) {
        for shard in self.queues.iter() {
            let drained = std::mem::take(&mut *lock(shard));
            for list in drained.into_values().flat_map(HashMap::into_values) {
                self.parked.fetch_sub(list.len(), Ordering::SeqCst);
                for tx in list.into_values() {
                    let _ = tx.send(());
                }
            }
        }
    }

    /// Number of parked pulls.
    pub fn parked(&self) -> usize {
        self.parked.load(Ordering::Relaxed)
    }

    /// Pulls not parked because their connection had its maximum parked (they
    /// are short-polled instead).
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Pull requests in progress that may park (held or not), over all connections.
    pub fn active(&self) -> usize {
        self.conns
            .iter()
            .map(|s| lock(s).values().map(|c| c.active).sum::<usize>())
            .sum()
    }

    /// Connections with a pull in progress that may park.
    pub fn connections(&self) -> usize {
        self.conns.iter().map(|s| lock(s).len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(id: u64) -> ConnInfo {
        ConnInfo::detached(id, "127.0.0.1:1".parse().unwrap())
    }

    /// What the server does when a connection ends: flag, then `on_close`.
    fn close(h: &PullHold, c: &ConnInfo) -> usize {
        c.mark_closed();
        h.on_close(c.id)
    }

    fn now_or_never<F: std::future::Future>(f: F) -> Option<F::Output> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            tokio::select! {
                biased;
                v = f => Some(v),
                _ = tokio::time::sleep(Duration::from_millis(50)) => None,
            }
        })
    }

    #[test]
    fn wakes_only_past_the_offset() {
        let h = PullHold::new(10);
        let c1 = conn(1);
        let act = h.enter(&c1);
        let a = h.park(&act, "T", 0, 5).unwrap();
        let b = h.park(&act, "T", 0, 7).unwrap();
        let other = h.park(&act, "U", 0, 0).unwrap();
        assert_eq!(h.parked(), 3);
        h.notify("T", 0, 6);
        assert_eq!(h.parked(), 2);
        assert_eq!(
            now_or_never(a.wait(Duration::from_secs(5))),
            Some(Wake::Arrived)
        );
        h.wake_all();
        assert_eq!(h.parked(), 0);
        assert_eq!(
            now_or_never(b.wait(Duration::from_secs(5))),
            Some(Wake::Arrived)
        );
        assert_eq!(
            now_or_never(other.wait(Duration::from_secs(5))),
            Some(Wake::Arrived)
        );
        assert_eq!(h.active(), 1);
        drop(act);
        assert_eq!(h.connections(), 0);
        assert_eq!(h.active(), 0);
    }

    #[test]
    fn expiry_and_drop_remove_the_entry() {
        let h = PullHold::new(10);
        let c1 = conn(1);
        let act = h.enter(&c1);
        let a = h.park(&act, "T", 3, 5).unwrap();
        assert_eq!(
            now_or_never(a.wait(Duration::from_millis(1))),
            Some(Wake::TimedOut)
        );
        assert_eq!(h.parked(), 0);
        let b = h.park(&act, "T", 3, 5).unwrap();
        drop(b);
        assert_eq!(h.parked(), 0);
        assert!(lock(&h.queues[queue_shard("T", 3)]).is_empty());
        // A notify with nothing parked does nothing.
        h.notify("T", 3, 100);
    }

    #[test]
    fn per_connection_cap() {
        let h = PullHold::new(2);
        let (c1, c2) = (conn(1), conn(2));
        let act = h.enter(&c1);
        let _a = h.park(&act, "T", 0, 1).unwrap();
        let b = h.park(&act, "T", 1, 1).unwrap();
        assert_eq!(h.park(&act, "T", 2, 1).unwrap_err(), ParkRefused::Full);
        assert_eq!(h.refused(), 1);
        // Another connection has its own allowance.
        let act2 = h.enter(&c2);
        let _c = h.park(&act2, "T", 2, 1).unwrap();
        drop(b);
        let _d = h.park(&act, "T", 2, 1).unwrap();
        assert_eq!(h.parked(), 3);
    }

    #[test]
    fn close_drops_the_connections_pulls() {
        let h = PullHold::new(10);
        let (c1, c2) = (conn(1), conn(2));
        let act1 = h.enter(&c1);
        let act1b = h.enter(&c1);
        let act2 = h.enter(&c2);
        let a = h.park(&act1, "T", 0, 1).unwrap();
        let b = h.park(&act2, "T", 0, 1).unwrap();
        assert_eq!(close(&h, &c1), 1);
        assert_eq!(h.parked(), 1);
        assert_eq!(
            now_or_never(a.wait(Duration::from_secs(5))),
            Some(Wake::Closed)
        );
        // A pull of the closed connection still in flight cannot park.
        assert_eq!(h.park(&act1b, "T", 0, 1).unwrap_err(), ParkRefused::Closed);
        // An arrival afterwards wakes only the other connection's pull.
        h.notify("T", 0, 2);
        assert_eq!(h.parked(), 0);
        assert_eq!(
            now_or_never(b.wait(Duration::from_secs(5))),
            Some(Wake::Arrived)
        );
        drop(act1);
        drop(act1b);
        drop(act2);
        assert_eq!(h.connections(), 0);
        assert_eq!(h.on_close(1), 0);
    }

    #[test]
    fn a_pull_registered_after_its_connections_close_never_parks() {
        let h = PullHold::new(10);
        let c1 = conn(1);
        // The close runs while none of the connection's pulls has registered
        // (its last pull task was spawned but has not reached the hold yet).
        assert_eq!(close(&h, &c1), 0);
        let late = h.enter(&c1);
        assert_eq!(h.park(&late, "T", 0, 1).unwrap_err(), ParkRefused::Closed);
        assert_eq!(h.parked(), 0);
        drop(late);
        assert_eq!(h.connections(), 0);
        // Racing closes and parks on threads: no pull is left parked.
        for round in 0..200u64 {
            let c = conn(100 + round);
            let act = h.enter(&c);
            let parked = std::thread::scope(|s| {
                let parker = s.spawn(|| h.park(&act, "T", 0, 1).ok());
                close(&h, &c);
                parker.join().unwrap()
            });
            assert_eq!(h.parked(), 0, "round {round}");
            if let Some(p) = parked {
                // Parked before the close: the close ended its wait.
                let got = now_or_never(p.wait(Duration::from_secs(5)));
                assert_eq!(got, Some(Wake::Closed), "round {round}");
            }
            drop(act);
        }
        assert_eq!(h.connections(), 0);
    }

    #[test]
    fn many_parked_on_one_queue_are_cheap() {
        let h = PullHold::new(usize::MAX);
        let c1 = conn(1);
        let act = h.enter(&c1);
        let start = std::time::Instant::now();
        let parked: Vec<_> = (0..100_000)
            .map(|_| h.park(&act, "T", 0, 9).unwrap())
            .collect();
        assert_eq!(h.parked(), 100_000);
        drop(parked);
        assert_eq!(h.parked(), 0);
        // Quadratic work (a scan per park) would take minutes here.
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{:?}",
            start.elapsed()
        );
    }
}
