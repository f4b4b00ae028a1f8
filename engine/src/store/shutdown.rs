//! Flushing everything and shutting down.

use crate::sync::LockExt;
use std::sync::atomic::Ordering;

use super::MessageStore;
use crate::error::{Error, Result};

impl MessageStore {
    /// Flush the commitlog and every consume queue now.
    ///
    /// # Errors
    /// The flush error. A failed commitlog sync fences the store; a failed
    /// consume-queue flush does not (the queues are rebuilt from the
    /// commitlog): it is reported in [`StoreStats::consume_queue_flush_error`](super::StoreStats::consume_queue_flush_error)
    /// and the next open re-dispatches from the last offset known flushed.
    pub fn flush(&self) -> Result<()> {
        let s = &self.inner;
        if s.commitlog.pooled() {
            s.commitlog
                .commit(0)
                .inspect_err(|e| s.fence.trip(format!("commitlog commit failed: {e}")))?;
        }
        s.flusher.flush(&s.commitlog.queue, 0)?;
        for cq in s.cqs.all() {
            cq.flush(0).inspect_err(|e| s.note_cq_flush_failed(e))?;
        }
        Ok(())
    }

    /// Stop accepting puts, dispatch what is written, flush everything, join
    /// the background threads and mark the shutdown clean. Calling it again is a no-op.
    ///
    /// # Errors
    /// The first error met while flushing or persisting; the abort marker then
    /// stays, so the next open runs the abnormal recovery.
    pub fn shutdown(&self) -> Result<()> {
        let s = &self.inner;
        if s.shut_down.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        s.stopping.store(true, Ordering::Release);
        s.commitlog.close();
        let mut first_err: Option<Error> = None;
        fn keep_first(slot: &mut Option<Error>, r: Result<()>) {
            if let Err(e) = r {
                slot.get_or_insert(e);
            }
        }
        macro_rules! keep {
            ($r:expr $(,)?) => {
                keep_first(&mut first_err, $r)
            };
        }
        s.flusher.stop();
        s.dispatcher.waker.wake();
        s.dispatcher.backoff.wake();
        s.repairs.wake_for_shutdown();
        s.clean.waker.wake();
        s.schedule_waker.wake();
        s.timer.waker.wake();
        s.commit_waker.wake();
        s.cq_flush_waker.wake();
        if s.threads.join_all() > 0 {
            keep!(Err(Error::Fenced("a background thread panicked".into())));
        }
        s.commitlog.stop();
        if s.commitlog.pooled() {
            // Commit what the pool holds first, so it is dispatched and flushed below.
            keep!(s.commitlog.commit(0).map(|_| ()));
        }
        {
            let _gate = crate::sync::RwLockExt::read_locked(&s.log_gate);
            keep!(s
                .dispatcher
                .dispatch_available(&s.commitlog, &s.cqs, s.index.as_ref(), &s.arrivals)
                .map(|_| ()));
        }
        keep!(s.flusher.flush(&s.commitlog.queue, 0).map(|_| ()));
        keep!(s.flush_consume_queues(0));
        if let Some(why) = s.cq_flush_failed.locked().clone() {
            // Keep the abort marker: the next open re-dispatches from the
            // last offset known flushed.
            keep!(Err(Error::io(
                "a consume queue flush failed earlier; the next open rebuilds from the commitlog",
                std::io::Error::other(why),
            )));
        }
        keep!(s.topics.flush());
        keep!(s.schedule.persist());
        keep!(s.fence.check());
        if first_err.is_none() {
            let abort = s.cfg.store_path_root_dir.join("abort");
            keep!(std::fs::remove_file(&abort)
                .map_err(|e| Error::io(format!("removing {}", abort.display()), e)),);
            keep!(crate::fs::sync_dir(&s.cfg.store_path_root_dir));
            if let Some(h) = crate::io::hook_for(&abort) {
                h.removed(&abort);
            }
        }
        crate::sys::unlock(&s.lock_file);
        match first_err {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }
}

impl Drop for MessageStore {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::error!(error = %e, "store shutdown on drop failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;
    use crate::store::MessageFilter;
    use crate::StoreConfig;

    #[test]
    fn fenced_store_refuses_puts_and_keeps_the_abort_marker() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = StoreConfig::new(dir.path());
        cfg.mapped_file_size_commit_log = 64 * 1024;
        cfg.mapped_file_size_consume_queue = 2000;
        let store = MessageStore::open(cfg).unwrap();
        store
            .put_message(&Message::new("F", b"before".to_vec()))
            .unwrap();
        store
            .inner
            .fence
            .trip("fdatasync of commitlog: EIO (injected)");
        let e = store
            .put_message(&Message::new("F", b"after".to_vec()))
            .unwrap_err();
        assert!(
            matches!(e, Error::Fenced(ref why) if why.contains("EIO")),
            "{e}"
        );
        assert_eq!(
            store.stats().fenced.as_deref(),
            Some("fdatasync of commitlog: EIO (injected)")
        );
        assert!(store.shutdown().is_err(), "shutdown reports the failure");
        assert!(
            dir.path().join("abort").exists(),
            "next open must recover abnormally"
        );
        drop(store);
        let mut cfg = StoreConfig::new(dir.path());
        cfg.mapped_file_size_commit_log = 64 * 1024;
        cfg.mapped_file_size_consume_queue = 2000;
        let store = MessageStore::open(cfg).unwrap();
        assert!(store.recovery_report().abnormal);
        let r = store
            .get_message("g", "F", 0, 0, 32, &MessageFilter::All)
            .unwrap();
        assert_eq!(r.messages.len(), 1);
        store.shutdown().unwrap();
    }
}
