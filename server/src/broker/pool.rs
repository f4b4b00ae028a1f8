//! Bounded thread pools for calls into the engine that may block.
//!
//! A pool has a fixed number of named std threads and a queue of fixed length.
//! When the queue is full, [`BoundedPool::try_execute`] fails at once and the
//! broker answers SYSTEM_BUSY (RocketMQ's flow control), instead of letting
//! requests pile up.

use ferromq_engine::sync::LockExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// The pool's queue is full (or the pool is shut down).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("thread pool queue is full")]
pub struct PoolBusy;

/// A fixed set of worker threads fed by a bounded queue.
#[derive(Debug)]
pub struct BoundedPool {
    name: String,
    tx: Mutex<Option<SyncSender<Job>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    queued: Arc<AtomicUsize>,
}

impl BoundedPool {
    /// Start `threads` workers named `name-N` with a queue of `capacity` jobs.
    ///
    /// # Errors
    /// The OS error when a thread cannot be spawned.
    pub fn new(name: &str, threads: usize, capacity: usize) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel::<Job>(capacity.max(1));
        let rx = Arc::new(Mutex::new(rx));
        let mut handles = Vec::with_capacity(threads);
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            handles.push(
                std::thread::Builder::new()
                    .name(format!("{name}-{i}"))
                    .spawn(move || worker(&rx))?,
            );
        }
        Ok(BoundedPool {
            name: name.to_string(),
            tx: Mutex::new(Some(tx)),
            threads: Mutex::new(handles),
            queued: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Queue `f`; its result arrives on the returned receiver.
    ///
    /// # Errors
    /// [`PoolBusy`] when the queue is full or the pool has shut down.
    pub fn try_execute<F, R>(&self, f: F) -> Result<oneshot::Receiver<R>, PoolBusy>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let (rtx, rrx) = oneshot::channel();
        let queued = self.queued.clone();
        let job: Job = Box::new(move || {
            queued.fetch_sub(1, Ordering::Relaxed);
            let _ = rtx.send(f());
        });
        let guard = self.tx.locked();
        let Some(tx) = guard.as_ref() else {
            return Err(PoolBusy);
        };
        self.queued.fetch_add(1, Ordering::Relaxed);
        match tx.try_send(job) {
            Ok(()) => Ok(rrx),
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.queued.fetch_sub(1, Ordering::Relaxed);
                Err(PoolBusy)
            }
        }
    }

    /// Jobs waiting in the queue (not yet taken by a worker).
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Stop taking jobs, let the workers finish the queue, and join them.
    pub fn shutdown(&self) {
        self.tx.locked().take();
        let handles: Vec<_> = self.threads.locked().drain(..).collect();
        for h in handles {
            if h.join().is_err() {
                tracing::error!(pool = %self.name, "a worker thread panicked");
            }
        }
    }
}

fn worker(rx: &Mutex<Receiver<Job>>) {
    loop {
        let job = {
            let guard = rx.locked();
            guard.recv()
        };
        match job {
            Ok(job) => {
                // A panicking job must not take the worker down with it.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            }
            Err(_) => return,
        }
    }
}

impl Drop for BoundedPool {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn full_queue_is_refused_at_once() {
        let pool = BoundedPool::new("t", 1, 1).unwrap();
        let (gate_tx, gate_rx) = std::sync::mpsc::channel::<()>();
        let gate_rx = Mutex::new(gate_rx);
        let running = pool
            .try_execute(move || {
                let _ = gate_rx.lock().unwrap().recv_timeout(Duration::from_secs(5));
                1
            })
            .unwrap();
        // Wait until the worker has taken the first job off the queue.
        std::thread::sleep(Duration::from_millis(50));
        let queued = pool.try_execute(|| 2).unwrap();
        assert_eq!(pool.queued(), 1);
        assert_eq!(pool.try_execute(|| 3).unwrap_err(), PoolBusy);
        assert_eq!(pool.queued(), 1);
        gate_tx.send(()).unwrap();
        assert_eq!(running.await.unwrap(), 1);
        assert_eq!(queued.await.unwrap(), 2);
        pool.shutdown();
        assert!(pool.try_execute(|| 4).is_err());
    }
}
