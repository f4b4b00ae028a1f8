//! Long polling: pulls parked until their queue grows past the offset they asked for.
//!
//! The engine's arrival listener (called on its dispatch thread) wakes the
//! parked pulls of a queue; each then re-runs once on the pull pool.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::oneshot;

struct Waiter {
    offset: u64,
    tx: oneshot::Sender<()>,
}

/// Parked pulls by topic and queue.
#[derive(Default)]
pub struct PullHold {
    waiting: Mutex<HashMap<String, HashMap<u32, Vec<Waiter>>>>,
}

impl std::fmt::Debug for PullHold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullHold").finish_non_exhaustive()
    }
}

impl PullHold {
    /// No parked pulls.
    pub fn new() -> Self {
        Self::default()
    }

    /// Park a pull waiting for a message at `offset`; the receiver fires when the
    /// queue's max offset passes it (or on [`PullHold::wake_all`]).
    pub fn park(&self, topic: &str, queue_id: u32, offset: u64) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        let mut w = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        let list = w
            .entry(topic.to_string())
            .or_default()
            .entry(queue_id)
            .or_default();
        // Drop waiters whose pull has already given up.
        list.retain(|x| !x.tx.is_closed());
        list.push(Waiter { offset, tx });
        rx
    }

    /// New messages: the queue's max offset is now `max_offset`. Never blocks for long.
    pub fn notify(&self, topic: &str, queue_id: u32, max_offset: u64) {
        let mut w = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        let Some(queues) = w.get_mut(topic) else {
            return;
        };
        let Some(list) = queues.get_mut(&queue_id) else {
            return;
        };
        let mut i = 0;
        while i < list.len() {
            if max_offset > list[i].offset || list[i].tx.is_closed() {
                let waiter = list.swap_remove(i);
                let _ = waiter.tx.send(());
            } else {
                i += 1;
            }
        }
        if list.is_empty() {
            queues.remove(&queue_id);
            if queues.is_empty() {
                w.remove(topic);
            }
        }
    }

    /// Wake every parked pull (shutdown).
    pub fn wake_all(&self) {
        let mut w = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        for (_, queues) in w.drain() {
            for (_, list) in queues {
                for waiter in list {
                    let _ = waiter.tx.send(());
                }
            }
        }
    }

    /// Number of parked pulls.
    pub fn parked(&self) -> usize {
        let w = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        w.values().flat_map(|q| q.values()).map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wakes_only_past_the_offset() {
        let h = PullHold::new();
        let mut a = h.park("T", 0, 5);
        let mut b = h.park("T", 0, 7);
        h.notify("T", 0, 6);
        assert!(a.try_recv().is_ok());
        assert!(b.try_recv().is_err());
        assert_eq!(h.parked(), 1);
        h.wake_all();
        assert!(b.try_recv().is_ok());
        assert_eq!(h.parked(), 0);
    }
}
