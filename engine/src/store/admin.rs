//! Administration: topics, delay offsets, statistics, retention controls,
//! and the replication hooks.

use crate::sync::{LockExt, RwLockExt};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{MessageStore, ReplicaWaiter, StoreStats};
use crate::error::{Error, Result};
use crate::message::validate_topic;
use crate::retention::{CleanPassReport, RetentionStats};
use crate::topic::TopicConfig;

impl MessageStore {
    /// Append raw commitlog bytes at exactly `offset` (a slave applying its
    /// master's stream). `offset` must be the end of the log, or the start of a
    /// file when the log is empty; the bytes must not cross a file. The dispatcher
    /// builds consume queues and the index from them as from local puts.
    ///
    /// # Errors
    /// [`Error::IllegalMessage`] when the offset does not continue the log or the
    /// bytes cross a file; [`Error::WrongRole`] while the store is a master
    /// (its puts write the log; see [`MessageStore::change_role`]);
    /// [`Error::Fenced`] / [`Error::ShutDown`] as for puts.
    pub fn append_commit_log(&self, offset: u64, data: &[u8]) -> Result<()> {
        let s = &self.inner;
        if s.stopping.load(Ordering::Acquire) {
            return Err(Error::ShutDown);
        }
        s.fence.check()?;
        s.commitlog.append_raw(offset, data)?;
        if s.commitlog.pooled() {
            // A master switched to slave keeps its pool: its commit service
            // makes the bytes readable (it is woken by puts otherwise).
            s.commit_waker.wake();
        }
        if s.arrivals.has_interest() {
            s.dispatcher.waker.wake();
        }
        Ok(())
    }

    /// Commitlog offset known durable on this store.
    pub fn commit_log_flushed_offset(&self) -> u64 {
        self.inner.flusher.durable_offset()
    }

    /// Register what SYNC_MASTER puts wait for after writing: the replication
    /// layer's "a slave has this offset" (see [`ReplicaWaiter`]). Without one,
    /// SYNC_MASTER puts report [`PutStatus::SlaveNotAvailable`](super::PutStatus::SlaveNotAvailable).
    pub fn set_replica_waiter(&self, waiter: Option<Arc<dyn ReplicaWaiter>>) {
        *self.inner.replica_waiter.write_locked() = waiter;
    }

    /// Create or update a topic.
    ///
    /// # Errors
    /// [`Error::IllegalMessage`] for a bad name or zero queues; [`Error::Io`] if it cannot be persisted.
    pub fn create_topic(&self, topic: &str, queue_nums: u32) -> Result<TopicConfig> {
        validate_topic(topic).map_err(Error::IllegalMessage)?;
        if queue_nums == 0 || queue_nums > 1024 {
            return Err(Error::IllegalMessage(format!(
                "queue count {queue_nums} out of range 1..=1024"
            )));
        }
        self.inner
            .topics
            .upsert(TopicConfig::new(topic, queue_nums))
    }

    /// Create or replace a topic with every field of its configuration
    /// (read/write queue counts, perm, flags), as UPDATE_AND_CREATE_TOPIC does.
    ///
    /// # Errors
    /// [`Error::IllegalMessage`] for a bad name or queue counts outside 1..=1024;
    /// [`Error::Io`] if it cannot be persisted.
    pub fn upsert_topic(&self, cfg: TopicConfig) -> Result<TopicConfig> {
        validate_topic(&cfg.topic_name).map_err(Error::IllegalMessage)?;
        for (what, n) in [
            ("read", cfg.read_queue_nums),
            ("write", cfg.write_queue_nums),
        ] {
            if n == 0 || n > 1024 {
                return Err(Error::IllegalMessage(format!(
                    "{what} queue count {n} out of range 1..=1024"
                )));
            }
        }
        self.inner.topics.upsert(cfg)
    }

    /// Return once every topic change made so far is in `config/topics.json`
    /// (changes are otherwise written within a short interval; see
    /// [`crate::persist`]). For changes that must survive a crash once
    /// acknowledged, as an administrator's UPDATE_AND_CREATE_TOPIC.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be written.
    pub fn persist_topics(&self) -> Result<()> {
        self.inner.topics.persist()
    }

    /// Whether the message at `queue_offset` of a queue is probably no longer in
    /// the page cache (RocketMQ's `checkInDiskByConsumeOffset`: further behind the
    /// commitlog end than `accessMessageInMemoryMaxRatio` % of RAM).
    pub fn is_offset_in_disk(&self, topic: &str, queue_id: u32, queue_offset: u64) -> bool {
        let s = &self.inner;
        let Some(u) = s.cqs.get(topic, queue_id).and_then(|q| q.get(queue_offset)) else {
            return false;
        };
        let limit = s.total_ram / 100 * s.cfg.access_message_in_memory_max_ratio as u64;
        s.commitlog.max_offset().saturating_sub(u.commit_log_offset) > limit
    }

    /// Version of the topic table (`dataVersion` of `config/topics.json`).
    pub fn topic_table_version(&self) -> crate::topic::DataVersion {
        self.inner.topics.data_version()
    }

    /// Replace every topic and the table's version, as a slave does with its
    /// master's table (RocketMQ's `SlaveSynchronize.syncTopicConfig`), and persist it.
    ///
    /// # Errors
    /// [`Error::Io`] when `config/topics.json` cannot be written.
    pub fn replace_topics(
        &self,
        mut topics: Vec<TopicConfig>,
        version: crate::topic::DataVersion,
    ) -> Result<()> {
        // A master's table is input like any other: names are checked.
        let before = topics.len();
        topics.retain(|t| validate_topic(&t.topic_name).is_ok());
        if topics.len() < before {
            tracing::warn!(
                refused = before - topics.len(),
                "topics with invalid names in the master's table are not copied"
            );
        }
        self.inner.topics.replace_all(topics, version)
    }

    /// Delivery progress of delayed messages: next queue offset per delay level
    /// (the content of `config/delayOffset.json`).
    pub fn delay_offsets(&self) -> std::collections::BTreeMap<u32, u64> {
        self.inner.schedule.all()
    }

    /// Replace the delivery progress of delayed messages (a slave copying its
    /// master's) and persist `config/delayOffset.json`.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be written.
    pub fn replace_delay_offsets(
        &self,
        offsets: std::collections::BTreeMap<u32, u64>,
    ) -> Result<()> {
        self.inner.schedule.replace_all(offsets)
    }

    /// The timer service's progress: timer messages pending and delivered,
    /// the next slot to deliver (see [`crate::TimerStats`]).
    pub fn timer_stats(&self) -> crate::TimerStats {
        self.inner.timer.stats()
    }

    /// Why the timer service stopped, if it could not start (its log or
    /// checkpoint unreadable); timer messages then wait undelivered.
    pub fn timer_failure(&self) -> Option<String> {
        use crate::sync::LockExt;
        self.inner.timer.failed.locked().clone()
    }

    /// Delete a topic (RocketMQ's DELETE_TOPIC_IN_BROKER): its configuration
    /// (`config/topics.json` written before returning), its consume queues
    /// (the `consumequeue/<topic>` folder) and its next queue offsets go; its
    /// commitlog records stay until retention removes their files. A later
    /// message to the topic starts its queues at offset 0 again. Returns
    /// whether the topic had a configuration or queues.
    ///
    /// # Errors
    /// [`Error::IllegalMessage`] for a bad name; [`Error::Io`] when the table
    /// cannot be written or the folder cannot be deleted.
    pub fn delete_topic(&self, topic: &str) -> Result<bool> {
        validate_topic(topic).map_err(Error::IllegalMessage)?;
        let s = &self.inner;
        // First the tombstone: records stored so far get no unit again, not
        // in late dispatch nor when a recovery re-dispatches the log.
        let deleted = s.cqs.deleted_with(topic, s.commitlog.max_offset());
        let json = serde_json::to_vec(&deleted)
            .map_err(|e| Error::io("encoding deleted topics", std::io::Error::other(e)))?;
        crate::fs::write_atomically(
            &s.cfg
                .config_dir()
                .join(crate::consume_queue::table::DELETED_TOPICS_FILE),
            &json,
        )?;
        s.cqs.set_deleted(deleted, s.commitlog.min_offset());
        let had_config = s.topics.remove(topic);
        s.topics.persist()?;
        s.commitlog.forget_topic_offsets(topic);
        let queues = s.cqs.remove_topic(topic)?;
        // The manifests name the queues the next open expects: a deleted
        // queue still named there would be rebuilt from the commitlog after
        // a crash. (A write that fails is redone by the next flush pass.)
        for (name, manifest) in [
            (super::CQ_MANIFEST, &s.cq_manifest),
            (super::CQ_MIN_MANIFEST, &s.cq_min_manifest),
        ] {
            let mut m = manifest.locked();
            if m.remove(topic).is_some() {
                s.write_manifest(name, &m);
            }
        }
        tracing::info!(topic, had_config, queues, "topic deleted");
        Ok(had_config || queues > 0)
    }

    /// A topic's configuration.
    pub fn topic_config(&self, topic: &str) -> Option<TopicConfig> {
        self.inner.topics.get(topic)
    }

    /// Every topic.
    pub fn topics(&self) -> Vec<TopicConfig> {
        self.inner.topics.all()
    }

    /// End of the commitlog.
    pub fn commit_log_max_offset(&self) -> u64 {
        self.inner.commitlog.max_offset()
    }

    /// Start of the commitlog.
    pub fn commit_log_min_offset(&self) -> u64 {
        self.inner.commitlog.min_offset()
    }

    /// Current figures.
    pub fn stats(&self) -> StoreStats {
        let s = &self.inner;
        StoreStats {
            commit_log_min_offset: s.commitlog.min_offset(),
            commit_log_max_offset: s.commitlog.max_offset(),
            commit_log_flushed_offset: s.flusher.durable_offset(),
            dispatched_offset: s.dispatcher.dispatched_offset(),
            commit_log_files: s.commitlog.queue.file_count(),
            consume_queues: s.cqs.all().len(),
            commit_log_syncs: s.flusher.syncs.load(Ordering::Relaxed),
            last_dispatched_store_timestamp_ms: s.dispatcher.last_store_timestamp_ms(),
            transient_store_pool: s.commitlog.pooled(),
            transient_store_pool_available: s.commitlog.pool_available(),
            commit_backend: match s.commitlog.commit_backend().fallback_reason() {
                Some(why) if s.commitlog.pooled() => format!("pwrite ({why})"),
                _ => s.commitlog.commit_backend().name().to_string(),
            },
            commit_registered_buffers: s.commitlog.commit_backend().registered_buffers(),
            commit_counters: s.commitlog.commit_backend().counters(),
            fenced: s.fence.cause(),
            dispatch_error: s.dispatcher.health.error.locked().clone(),
            dispatch_retries: s.dispatcher.health.retries.load(Ordering::Relaxed),
            records_refused: s.dispatcher.health.refused.load(Ordering::Relaxed),
            consume_queue_flush_error: s.cq_flush_failed.locked().clone(),
            damaged_records: s.damaged.count(),
            consume_queue_units_repaired: s.units_repaired.load(Ordering::Relaxed),
        }
    }

    /// Records that reads found damaged (body CRC, header) and skipped, the
    /// first [`crate::damage::MAX_LISTED_DAMAGED_RECORDS`] found: each was
    /// logged once, and pulls moved past it.
    pub fn damaged_records(&self) -> Vec<crate::damage::DamagedRecord> {
        self.inner.damaged.list()
    }

    /// Run one clean pass now (what the clean thread does every
    /// `cleanResourceInterval` ms) and return what it did.
    pub fn run_clean_pass(&self) -> CleanPassReport {
        self.inner.clean_pass()
    }

    /// Ask for expired files to be deleted whatever the hour (RocketMQ's
    /// DELETE_EXPIRED_COMMITLOG): the next 20 clean passes delete expired files.
    pub fn execute_delete_files_manually(&self) {
        self.inner
            .clean
            .manual_delete_rounds
            .store(20, Ordering::Release);
        self.inner.clean.waker.wake();
    }

    /// Disk usage, thresholds, offsets and the last clean pass.
    pub fn retention_stats(&self) -> RetentionStats {
        let s = &self.inner;
        RetentionStats {
            disk_used_ratio: s
                .env
                .disk
                .used_ratio(&s.cfg.commit_log_dir())
                .unwrap_or(-1.0),
            disk_max_used_space_ratio: s.live.lock().disk_max_used_space_ratio.clamp(10, 95) as f64
                / 100.0,
            clean_forcibly_ratio: s.cfg.disk_space_clean_forcibly_ratio as f64 / 100.0,
            warning_ratio: s.cfg.disk_space_warning_level_ratio as f64 / 100.0,
            disk_full: s.clean.disk_full.load(Ordering::Acquire),
            commit_log_min_offset: s.commitlog.min_offset(),
            commit_log_max_offset: s.commitlog.max_offset(),
            commit_log_files: s.commitlog.queue.file_count(),
            last_pass: s.clean.last.locked().clone(),
        }
    }
}

/// Live settings ([`crate::config::LIVE_KEYS`]).
impl MessageStore {
    /// Change one store setting while the store runs; see
    /// [`MessageStore::set_live_all`].
    ///
    /// # Errors
    /// As [`MessageStore::set_live_all`].
    pub fn set_live(&self, key: &str, value: &str) -> Result<Vec<crate::config::ConfigWarning>> {
        self.set_live_all(&[(key, value)])
    }

    /// Change store settings while the store runs: all of `changes` or none.
    ///
    /// Each key must be one of [`crate::config::LIVE_KEYS`]; each value is
    /// read with the rules a properties file is loaded by
    /// ([`crate::StoreConfig::set_key`]: the same bounds, `deleteWhen` as
    /// `;`-separated hours, `diskMaxUsedSpaceRatio` clamped into 10..=95 with a
    /// warning). The flush threads take a new schedule at once (they are
    /// woken, so a shorter interval does not wait out the old one); the clean
    /// service reads the retention settings at its next pass (a shorter
    /// `cleanResourceInterval` wakes it). Puts are not affected.
    ///
    /// [`MessageStore::config`] keeps the values the store opened with;
    /// [`MessageStore::current_config`] shows the changes.
    ///
    /// Returns the warnings of the values accepted (a clamped ratio).
    ///
    /// # Errors
    /// [`Error::Config`] naming the first key refused, its value and what was
    /// expected (a key fixed while the store runs, a value that does not
    /// parse or is out of range); then nothing changed.
    pub fn set_live_all(
        &self,
        changes: &[(&str, &str)],
    ) -> Result<Vec<crate::config::ConfigWarning>> {
        use crate::flush::FlushPolicy;
        let s = &self.inner;
        let mut cfg = s.live.lock();
        let (next, warnings) = checked_live(&cfg, changes)?;
        if FlushPolicy::commit_log(&next) != FlushPolicy::commit_log(&cfg) {
            s.flusher.set_policy(FlushPolicy::commit_log(&next));
        }
        let cq_before = s.cq_flush.interval();
        s.cq_flush.set(FlushPolicy::consume_queue(&next));
        if s.cq_flush.interval() < cq_before {
            s.cq_flush_waker.wake();
        }
        if s.live
            .set_clean_interval_ms(next.clean_resource_interval_ms)
        {
            s.clean.waker.wake();
        }
        for (k, v) in changes {
            tracing::info!(key = %k, value = %v, "store setting changed live");
        }
        *cfg = next;
        Ok(warnings)
    }

    /// Check `changes` as [`MessageStore::set_live_all`] would, changing nothing.
    ///
    /// # Errors
    /// As [`MessageStore::set_live_all`].
    pub fn check_live(
        &self,
        changes: &[(&str, &str)],
    ) -> Result<Vec<crate::config::ConfigWarning>> {
        checked_live(&self.inner.live.lock(), changes).map(|(_, w)| w)
    }

    /// The configuration in effect now: the one the store opened with
    /// ([`MessageStore::config`]) with the live changes applied, and
    /// `broker_role` the role the store has now ([`MessageStore::role`]).
    pub fn current_config(&self) -> crate::StoreConfig {
        let mut c = self.inner.live.config();
        c.broker_role = self.inner.role();
        c
    }
}

/// `cfg` with `changes` applied by the loader's rules, or the first refusal.
fn checked_live(
    cfg: &crate::StoreConfig,
    changes: &[(&str, &str)],
) -> Result<(crate::StoreConfig, Vec<crate::config::ConfigWarning>)> {
    let mut next = cfg.clone();
    let mut warnings = Vec::new();
    for (key, value) in changes {
        if !crate::config::LIVE_KEYS.contains(key) {
            return Err(Error::config(
                *key,
                *value,
                format!(
                    "a store key that changes while the store runs ({}); {key} is fixed \
                     until the store is opened again",
                    crate::config::LIVE_KEYS.join(", ")
                ),
            ));
        }
        warnings.extend(next.set_key(key, value)?);
    }
    Ok((next, warnings))
}
