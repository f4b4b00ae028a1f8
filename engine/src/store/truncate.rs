//! Cutting the commitlog back while the store runs: a slave that rejoins
//! after a failover drops what it has beyond the point where its history
//! and the new master's diverge, then follows the new master from there
//! (RocketMQ 5's `truncateFiles` on an auto-switch slave). Consume queues,
//! the index, the queue offsets new messages get, the checkpoint and the
//! consume-queue manifest follow, and a crash after it returns never brings
//! the cut records back.
//!
//! Order (each step durable before the next, so a crash part-way recovers
//! to the old log or the cut one, never to a mix):
//! 1. with dispatch, consume-queue flushes, clean passes and repairs held
//!    off (the log gate), commitlog syncs held off (the flusher's gate) and puts and raw
//!    appends held off (the put lock), check the offset is a record boundary;
//! 2. dispatch everything written, so every queue's units cover the log;
//! 3. cut each consume queue's units whose records are at or after the
//!    offset (zeroed, synced), the index's entries (its tail file rewritten
//!    and synced), and the tombstones of topics deleted after the offset
//!    (moved back to it, written atomically);
//! 4. lower the checkpoint's offsets to at most the offset (synced) and the
//!    consume-queue manifest's maxima to the queues' new ends (written
//!    atomically): the next open re-dispatches from there, so a crash before
//!    step 5 rebuilds the queues from the old log;
//! 5. delete the commitlog files after the one holding the offset (and a file
//!    made ahead), then zero and sync that file's bytes from the offset;
//! 6. set the dispatch position, the durable offset and the next queue
//!    offset of every queue to match, and forget damaged records and units
//!    noted in the cut stretch (reads would skip the new ones there).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::{LogTruncation, MessageStore, StoreInner, CQ_MANIFEST};
use crate::config::BrokerRole;
use crate::error::{Error, Result};
use crate::sync::{LockExt, RwLockExt};

impl MessageStore {
    /// Truncate the commitlog to `offset` while the store runs: every record
    /// at or after `offset` goes, with its consume-queue units and index
    /// entries; consume queues' max offsets and the queue offsets the next
    /// records get go back to match. For a slave about to follow a new master
    /// from the last point their logs agree (see
    /// `ferromq_replication::epoch::EpochFile::find_last_consistent_point`); the
    /// raw appends that follow ([`MessageStore::append_commit_log`]) continue
    /// at `offset`. After it returns, a crash and reopen keeps the cut: the
    /// cut bytes are zeroed and synced, later files deleted, the checkpoint
    /// and consume-queue manifest lowered.
    ///
    /// Only while the store is a [`BrokerRole::Slave`] (opened as one, or
    /// switched by [`MessageStore::change_role`]): a master's puts
    /// assign queue offsets and acknowledge writes concurrently, and cutting
    /// under them would lose acknowledged messages and hand out queue offsets
    /// twice; a slave takes no puts, so the only writer is its replication,
    /// which the caller stops first (a raw append waits for the truncation
    /// and then fails unless it continues at `offset`). Readers may run:
    /// a read racing the truncation may get a cut message or none.
    ///
    /// `offset == ` [`MessageStore::commit_log_max_offset`] cuts nothing.
    ///
    /// # Errors
    /// - [`Error::WrongRole`] on a master;
    /// - [`Error::Busy`] when the store was switched to slave and its delayed
    ///   or timer delivery has not paused within 10 s (nothing changed);
    /// - [`Error::InvalidOffset`] when `offset` is below the log's min offset
    ///   or above its max, or not where a record starts (inside a record, or
    ///   past the records of its file); nothing changed;
    /// - [`Error::ShutDown`] / [`Error::Fenced`] as for writes;
    /// - an I/O error cutting the files: the store is then fenced (reopen to
    ///   recover; the log ends between `offset` and its old end).
    pub fn truncate_commit_log(&self, offset: u64) -> Result<LogTruncation> {
        let s = &self.inner;
        let role = s.role();
        if role != BrokerRole::Slave {
            return Err(Error::WrongRole(format!(
                "the commitlog is truncated live only on a slave (this store is {role:?}); \
                 switch it to SLAVE (`change_role`) to follow a new master"
            )));
        }
        if s.stopping.load(Ordering::Acquire) {
            return Err(Error::ShutDown);
        }
        s.fence.check()?;
        if !s
            .role_gate
            .wait_acked(s.role_gate.epoch(), super::role::PAUSE_TIMEOUT)
        {
            return Err(Error::Busy(
                "the delayed or timer delivery of this former master has not paused yet; \
                 retry the truncation"
                    .into(),
            ));
        }
        s.truncate_live(offset)
    }
}

impl StoreInner {
    /// [`MessageStore::truncate_commit_log`] after its role check.
    fn truncate_live(&self, offset: u64) -> Result<LogTruncation> {
        let started = Instant::now();
        let _gate = self.log_gate.write_locked();
        let mut report = LogTruncation {
            offset,
            ..Default::default()
        };
        let changing = std::cell::Cell::new(false);
        let cut = self.flusher.truncating(offset, || {
            self.commitlog
                .truncate_live(offset, || self.cut_derived(offset, &changing, &mut report))
        });
        let cut = match cut {
            Ok(cut) => cut,
            Err(e) => {
                if changing.get() {
                    self.fence.trip(format!(
                        "live truncation of the commitlog to {offset} failed part-way: {e}"
                    ));
                }
                return Err(e);
            }
        };
        report.old_max_offset = cut.old_max;
        report.commit_log_files_removed = cut.files_removed;
        report.millis = started.elapsed().as_millis() as u64;
        tracing::warn!(
            offset,
            old_max_offset = cut.old_max,
            commit_log_files_removed = cut.files_removed,
            consume_queues_truncated = report.consume_queues_truncated,
            consume_queue_units_removed = report.consume_queue_units_removed,
            millis = report.millis,
            "truncated the commitlog (following a new master)"
        );
        Ok(report)
    }

    /// Steps 2 to 4 (see the module doc), under the put lock: returns the
    /// next queue offset of every queue for the cut log.
    /// `changing` is set once something is cut (a failure after that fences).
    fn cut_derived(
        &self,
        offset: u64,
        changing: &std::cell::Cell<bool>,
        report: &mut LogTruncation,
    ) -> Result<HashMap<String, Vec<u64>>> {
        // Every record written gets its units first, so that each queue's
        // units end where the log does before they are cut.
        self.dispatcher.dispatch_available(
            &self.commitlog,
            &self.cqs,
            self.index.as_ref(),
            &self.arrivals,
        )?;
        changing.set(true);
        let cl_min = self.commitlog.min_offset();
        let queues = self.cqs.all();
        for cq in &queues {
            let removed = cq.truncate_live(offset, cl_min)?;
            if removed > 0 {
                report.consume_queues_truncated += 1;
                report.consume_queue_units_removed += removed;
            }
        }
        if let Some(ix) = &self.index {
            ix.truncate_after(offset)?;
        }
        // The delayed and timer deliveries (paused on a slave) must not
        // count the cut records as seen: delivery progress past a schedule
        // queue's new end goes back to it, and the timer log and checkpoint
        // drop what was cut (see `StoreInner::timer_cut`).
        for level in 1..=self.schedule.max_level() {
            let end = self
                .cqs
                .get(crate::schedule::SCHEDULE_TOPIC, level - 1)
                .map_or(0, |cq| cq.max_offset());
            if self.schedule.offset(level).is_some_and(|o| o > end) {
                self.schedule.set_offset(level, end);
            }
        }
        self.schedule.persist()?;
        self.timer_cut(offset)?;
        // A topic deleted after `offset` was deleted at the log's end then:
        // its tombstone must not hide the new master's records of it from
        // there on.
        let deleted = self.cqs.deleted();
        if deleted.values().any(|end| *end > offset) {
            let clipped: HashMap<String, u64> = deleted
                .into_iter()
                .map(|(t, end)| (t, end.min(offset)))
                .collect();
            let json = serde_json::to_vec(&clipped)
                .map_err(|e| Error::io("encoding deleted topics", std::io::Error::other(e)))?;
            crate::fs::write_atomically(
                &self
                    .cfg
                    .config_dir()
                    .join(crate::consume_queue::table::DELETED_TOPICS_FILE),
                &json,
            )?;
            self.cqs.set_deleted(clipped, cl_min);
        }
        self.checkpoint.update(|d| {
            d.physic_offset = d.physic_offset.min(offset);
            d.logics_offset = d.logics_offset.min(offset);
            d.index_offset = d.index_offset.min(offset);
        });
        self.checkpoint.flush()?;
        {
            let mut manifest = self.cq_manifest.locked();
            let mut lowered = manifest.clone();
            for cq in &queues {
                if let Some(max) = lowered
                    .get_mut(cq.topic())
                    .and_then(|qs| qs.get_mut(&cq.queue_id()))
                {
                    *max = (*max).min(cq.max_offset());
                }
            }
            if lowered != *manifest {
                let json = serde_json::to_vec(&lowered).map_err(|e| {
                    Error::io(
                        "encoding a consume queue manifest",
                        std::io::Error::other(e),
                    )
                })?;
                crate::fs::write_atomically(&self.cfg.config_dir().join(CQ_MANIFEST), &json)?;
                *manifest = lowered;
            }
        }
        self.damaged.forget_cut(offset, |topic, queue_id| {
            self.cqs
                .get(topic, queue_id)
                .map_or(0, |cq| cq.max_offset())
        });
        self.dispatcher
            .reset(self.dispatcher.dispatched_offset().min(offset));
        let mut table: HashMap<String, Vec<u64>> = HashMap::new();
        for cq in &queues {
            let v = table.entry(cq.topic().to_string()).or_default();
            let q = cq.queue_id() as usize;
            if v.len() <= q {
                v.resize(q + 1, 0);
            }
            v[q] = cq.max_offset();
        }
        Ok(table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;
    use crate::StoreConfig;

    /// The queue offsets new puts get follow the cut: a master switched to
    /// slave, truncated, and switched back to master.
    #[test]
    fn puts_after_a_live_truncation_continue_at_the_cut() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = StoreConfig::new(dir.path());
        cfg.mapped_file_size_commit_log = 64 * 1024;
        cfg.mapped_file_size_consume_queue = 2000;
        let store = MessageStore::open(cfg).unwrap();
        let put = |topic: &str, q: u32, i: usize| {
            store
                .put_message(
                    &Message::new(
                        topic,
                        format!("{topic}-{q}-{i}-{}", "b".repeat(i % 300)).into_bytes(),
                    )
                    .with_queue_id(q),
                )
                .unwrap()
        };
        let mut puts = Vec::new();
        for i in 0..400 {
            let (topic, q) = (["P", "Q"][i % 2], (i / 2 % 3) as u32);
            puts.push((topic, q, put(topic, q, i)));
        }
        let (_, _, at) = &puts[233];
        let offset = at.commit_log_offset;
        store.change_role(BrokerRole::Slave).unwrap();
        let r = store.truncate_commit_log(offset).unwrap();
        store.change_role(BrokerRole::AsyncMaster).unwrap();
        assert_eq!(r.consume_queue_units_removed, 400 - 233);
        let mut next: HashMap<(&str, u32), u64> = HashMap::new();
        for (t, q, p) in &puts[..233] {
            next.insert((t, *q), p.queue_offset + 1);
        }
        for i in 0..60 {
            let (topic, q) = (["P", "Q"][i % 2], (i / 2 % 3) as u32);
            let p = put(topic, q, 1000 + i);
            if i == 0 {
                assert_eq!(p.commit_log_offset, offset, "the log continues at the cut");
            }
            let want = next.entry((topic, q)).or_insert(0);
            assert_eq!(p.queue_offset, *want, "{topic}-{q}");
            *want += 1;
        }
        store.shutdown().unwrap();
    }

    /// A topic deleted after the cut: its new records from the cut on get
    /// their units (the tombstone moves back to the cut), also after a reopen.
    #[test]
    fn a_tombstone_after_the_cut_moves_back_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = {
            let mut c = StoreConfig::new(dir.path());
            c.mapped_file_size_commit_log = 64 * 1024;
            c.mapped_file_size_consume_queue = 2000;
            c
        };
        let store = MessageStore::open(cfg.clone()).unwrap();
        let put = |topic: &str, i: usize| {
            store
                .put_message(
                    &Message::new(topic, format!("{topic}-{i}").into_bytes()).with_queue_id(0),
                )
                .unwrap()
        };
        for i in 0..50 {
            put("Keep", i);
        }
        let offset = put("Gone", 0).commit_log_offset;
        for i in 1..50 {
            put("Gone", i);
        }
        let wait = |n: u64| {
            let deadline = Instant::now() + std::time::Duration::from_secs(10);
            while store.max_offset_in_queue("Gone", 0) < n {
                assert!(Instant::now() < deadline, "not dispatched");
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        };
        wait(50);
        store.delete_topic("Gone").unwrap();
        assert_eq!(store.max_offset_in_queue("Gone", 0), 0);
        store.change_role(BrokerRole::Slave).unwrap();
        store.truncate_commit_log(offset).unwrap();
        store.change_role(BrokerRole::AsyncMaster).unwrap();
        for i in 0..5 {
            put("Gone", 100 + i);
        }
        wait(5);
        let got = store
            .get_message("g", "Gone", 0, 0, 32, &crate::store::MessageFilter::All)
            .unwrap();
        assert_eq!(got.messages.len(), 5);
        store.shutdown().unwrap();
        drop(store);
        let store = MessageStore::open(cfg).unwrap();
        assert_eq!(store.max_offset_in_queue("Gone", 0), 5);
        store.shutdown().unwrap();
    }
}
