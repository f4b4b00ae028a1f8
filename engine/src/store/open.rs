//! Opening the store.

use std::collections::HashMap;
use std::fs::File;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use super::{Manifest, MessageStore, RecoveryReport, StoreInner, BACKGROUND_NICE};
use crate::checkpoint::{Checkpoint, CheckpointData, CheckpointState};
use crate::commitlog::CommitLog;
use crate::config::{BrokerRole, FlushDiskType, StoreConfig};
use crate::consume_queue::CqTable;
use crate::consume_queue::{ConsumeQueue, CqUnit, CQ_UNIT_SIZE};
use crate::damage::UnitCheck;
use crate::dispatch::{Arrivals, Dispatcher, WalkedRecords};
use crate::error::{Error, Result};
use crate::index::IndexService;
use crate::message::validate_topic;
use crate::retention::StoreEnv;
use crate::topic::{TopicConfig, TopicTable};

/// File (under `config/`) recording how many units each consume queue had when
/// last flushed, so that open can tell a deleted or shortened queue.
pub(crate) const CQ_MANIFEST: &str = "consumeQueueMax.json";

/// File (under `config/`) recording the queue offset each consume queue's first
/// file starts at, as last flushed, so that open can tell first files lost to
/// damage from files deleted by retention.
pub(crate) const CQ_MIN_MANIFEST: &str = "consumeQueueMin.json";

/// Checks of the config that the store needs before it touches a file
/// (beyond [`StoreConfig::validate`]): file sizes, message size, delay levels,
/// default queue count.
/// Most timer wheel slots (16 bytes each, touched only where timers are).
const MAX_TIMER_SLOTS: u64 = 1 << 24;

fn basic_config_checks(cfg: &StoreConfig) -> Result<()> {
    if cfg.mapped_file_size_commit_log < 4096 {
        return Err(Error::config(
            "mappedFileSizeCommitLog",
            cfg.mapped_file_size_commit_log.to_string(),
            "at least 4096 bytes",
        ));
    }
    if cfg.consume_queue_file_size() < CQ_UNIT_SIZE as u64 {
        return Err(Error::config(
            "mappedFileSizeConsumeQueue",
            cfg.mapped_file_size_consume_queue.to_string(),
            "at least 20 bytes",
        ));
    }
    if cfg.max_message_size == 0 {
        return Err(Error::config(
            "maxMessageSize",
            "0",
            "a positive number of bytes",
        ));
    }
    cfg.delay_levels_ms()?;
    let timer_slots =
        2 * u64::from(cfg.timer_max_delay_sec) * 1000 / u64::from(cfg.timer_precision_ms.max(1));
    if timer_slots > MAX_TIMER_SLOTS {
        return Err(Error::config(
            "timerMaxDelaySec",
            cfg.timer_max_delay_sec.to_string(),
            format!(
                "at most {} seconds with timerPrecisionMs {} (the timer wheel keeps 2 x timerMaxDelaySec / timerPrecisionMs slots, at most {MAX_TIMER_SLOTS})",
                MAX_TIMER_SLOTS * u64::from(cfg.timer_precision_ms.max(1)) / 2000,
                cfg.timer_precision_ms
            ),
        ));
    }
    if cfg.default_topic_queue_nums == 0 {
        return Err(Error::config("defaultTopicQueueNums", "0", "at least 1"));
    }
    Ok(())
}

/// Take the exclusive lock on `<root>/lock` ([`Error::Locked`] when another
/// process holds it).
fn lock_store(root: &std::path::Path) -> Result<File> {
    let path = root.join("lock");
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    match crate::sys::try_lock_exclusive(&f) {
        Ok(true) => Ok(f),
        Ok(false) => Err(Error::Locked(root.to_path_buf())),
        Err(e) => Err(Error::io(format!("locking {}", path.display()), e)),
    }
}

impl MessageStore {
    /// Open (or create) the store at `cfg.store_path_root_dir`: validate the
    /// config, lock the directory, recover commitlog and consume queues, and
    /// start the background threads.
    ///
    /// # Errors
    /// [`Error::Config`] for bad settings, [`Error::Locked`] when another process
    /// holds the store, [`Error::Corruption`] for damage that recovery must not
    /// paper over, [`Error::Io`] for failed system calls.
    pub fn open(cfg: StoreConfig) -> Result<MessageStore> {
        Self::open_with_env(cfg, StoreEnv::default())
    }

    /// [`MessageStore::open`] with a given clock and disk-usage source (tests use
    /// this to move time to the `deleteWhen` hour or simulate a full disk).
    ///
    /// Opening runs these steps in order (RocketMQ's `DefaultMessageStore`
    /// `load()` → `recover()` → `start()`), each a function below.
    ///
    /// # Errors
    /// As [`MessageStore::open`].
    pub fn open_with_env(cfg: StoreConfig, env: StoreEnv) -> Result<MessageStore> {
        cfg.validate()?;
        basic_config_checks(&cfg)?;
        let started = Instant::now();
        let (lock_file, store_host) = lock_directory(&cfg)?;
        let (mut log, walked) = open_commitlog(&cfg)?;
        let phase = Instant::now();
        let queues = load_consume_queues(&cfg, &mut log)?;
        let plan = plan_redispatch(&mut log, &queues);
        log.report.consume_queue_millis = phase.elapsed().as_millis() as u64;
        let phase = Instant::now();
        let schedule =
            crate::schedule::ScheduleState::load(&cfg.config_dir(), log.delay_levels.clone())?;
        let (dispatcher, arrivals) = redispatch(&mut log, &queues, plan, walked)?;
        log.report.redispatch_millis = phase.elapsed().as_millis() as u64;
        restore_queue_offsets(&cfg, &mut log.commitlog, &queues)?;
        log.report.millis = started.elapsed().as_millis() as u64;
        log_recovery(&log.report);
        mark_open(&cfg, &log, &queues, &dispatcher)?;
        let inner = Arc::new(StoreInner::assemble(
            cfg,
            env,
            (lock_file, store_host),
            log,
            queues,
            (schedule, dispatcher, arrivals),
        ));
        inner.commitlog.start()?;
        let store = MessageStore { inner };
        store.start_services()?;
        Ok(store)
    }

    /// Last step of opening: start the background threads.
    ///
    /// Thread names: Linux keeps 15 bytes of a name (what `top -H`, `perf`
    /// and /proc show), so names are unique within their first 15.
    fn start_services(&self) -> Result<()> {
        let cfg = &self.inner.cfg;
        self.spawn("ferromq-flushcl", |s| {
            // Under ASYNC_FLUSH no put waits for this thread.
            if s.cfg.flush_disk_type == FlushDiskType::AsyncFlush {
                crate::sys::lower_thread_priority(BACKGROUND_NICE);
            }
            if s.commitlog.pooled() {
                s.flusher
                    .run_pooled(&s.commitlog.queue, || s.commitlog.commit_and_sync());
            } else {
                s.flusher.run(&s.commitlog.queue);
            }
        })?;
        self.spawn("ferromq-dispatch", |s| {
            // Normal priority (consumers wait for it), but woken by puts it
            // must not preempt the producer that woke it.
            crate::sys::batch_scheduling();
            s.run_dispatch()
        })?;
        if cfg.flush_disk_type == FlushDiskType::SyncFlush {
            self.spawn("ferromq-flushdog", |s| s.flusher.run_watchdog())?;
        }
        self.spawn("ferromq-flushcq", |s| {
            crate::sys::lower_thread_priority(BACKGROUND_NICE);
            s.run_cq_flush()
        })?;
        self.spawn("ferromq-clean", |s| {
            crate::sys::lower_thread_priority(BACKGROUND_NICE);
            s.run_clean()
        })?;
        self.spawn("ferromq-repair", |s| {
            crate::sys::lower_thread_priority(BACKGROUND_NICE);
            s.run_repairs()
        })?;
        // Both idle while the store is a slave (see `role.rs`): a slave
        // promoted to master starts them from disk.
        self.spawn_gated(crate::service::SCHEDULE_SERVICE, "ferromq-schedule", |s| {
            s.run_schedule()
        })?;
        if cfg.timer_wheel_enable {
            // Not niced: deliveries are due at a time, and a loaded
            // machine must not make them late.
            self.spawn_gated(crate::service::TIMER_SERVICE, "ferromq-timer", |s| {
                s.run_timer()
            })?;
        }
        if self.inner.commitlog.pooled() {
            self.spawn("ferromq-commit", |s| s.run_commit())?;
        }
        if cfg.prefault_ahead_bytes > 0
            && !cfg.warm_maped_file_enable
            && !self.inner.commitlog.pooled()
            && !commitlog_writes_via_fd(cfg, false)
        {
            self.spawn("ferromq-prefault", |s| {
                // Not niced: when it shares a core with the dispatch thread it
                // must keep its lead, or the producer catches it up and waits
                // on the page locks of its read-around batch (8 MiB at a time).
                // Under SCHED_BATCH its wake-ups never preempt a producer
                // (see docs/perf-notes.md#prefault-thread-priority).
                crate::sys::batch_scheduling();
                s.commitlog
                    .run_prefault(&s.stopping, s.cfg.prefault_ahead_bytes as usize)
            })?;
        }
        Ok(())
    }

    /// [`MessageStore::spawn`] for a service that runs only while the store
    /// is a master (`who`: see [`crate::service::RoleGate`]).
    fn spawn_gated(
        &self,
        who: usize,
        name: &'static str,
        f: impl FnOnce(&StoreInner) + Send + 'static,
    ) -> Result<()> {
        self.inner.role_gate.register(who);
        self.spawn(name, move |s| {
            let _exit = crate::service::GateExit(&s.role_gate, who);
            f(s)
        })
        .inspect_err(|_| self.inner.role_gate.exit(who))
    }

    /// Start `f` on the store's thread `name` (see [`crate::service::ServiceThreads`]).
    fn spawn(
        &self,
        name: &'static str,
        f: impl FnOnce(&StoreInner) + Send + 'static,
    ) -> Result<()> {
        let inner = Arc::clone(&self.inner);
        self.inner
            .threads
            .spawn(name, &self.inner.fence, move || f(&inner))
    }
}

/// What the commitlog step found, carried through the later steps.
pub(super) struct OpenedLog {
    /// The abort marker was there: the last run did not shut down cleanly.
    pub(super) abnormal: bool,
    pub(super) checkpoint: Checkpoint,
    /// The checkpoint's content as found, and whether it was valid.
    pub(super) ck: CheckpointData,
    pub(super) ck_valid: bool,
    pub(super) delay_levels: Vec<i64>,
    pub(super) commitlog: CommitLog,
    pub(super) report: RecoveryReport,
}

/// What the consume-queue step loaded.
pub(super) struct LoadedQueues {
    pub(super) cqs: CqTable,
    pub(super) topics: TopicTable,
    pub(super) index: Option<IndexService>,
    /// Units per queue at the last flush (`config/consumeQueueMax.json`).
    pub(super) manifest: Manifest,
    /// First-file queue offset per queue at the last flush (`config/consumeQueueMin.json`).
    pub(super) min_manifest: Manifest,
}

/// Where re-dispatch starts, and each queue's units before it (to count the
/// queues it rebuilt).
struct RedispatchPlan {
    from: u64,
    units_before: HashMap<(String, u32), u64>,
}

/// Step 1: create the store directory, lock it, and work out the store's
/// address (`brokerIP1`, `listenPort`).
fn lock_directory(cfg: &StoreConfig) -> Result<(File, SocketAddr)> {
    let root = &cfg.store_path_root_dir;
    std::fs::create_dir_all(root)
        .map_err(|e| Error::io(format!("creating {}", root.display()), e))?;
    let lock_file = lock_store(root)?;
    let ip: IpAddr = cfg
        .broker_ip1
        .parse()
        .map_err(|_| Error::config("brokerIP1", &cfg.broker_ip1, "an IPv4 or IPv6 address"))?;
    Ok((lock_file, SocketAddr::new(ip, cfg.listen_port)))
}

/// The transient store pool, when configured and allowed: RocketMQ's rule is
/// that it only serves ASYNC_FLUSH masters; ferromq serves SYNC_FLUSH too when
/// asked.
fn transient_pool(cfg: &StoreConfig) -> Result<Option<crate::pool::TransientStorePool>> {
    if !cfg.transient_store_pool_enable {
        return Ok(None);
    }
    if (cfg.flush_disk_type == FlushDiskType::AsyncFlush
        || cfg.transient_store_pool_sync_flush_enable)
        && cfg.broker_role != BrokerRole::Slave
    {
        Ok(Some(crate::pool::TransientStorePool::new(
            cfg.transient_store_pool_size as usize,
            cfg.mapped_file_size_commit_log as usize,
        )?))
    } else {
        tracing::warn!(
            "transientStorePoolEnable applies only to masters, and to SYNC_FLUSH only \
             with transientStorePoolSyncFlushEnable=true; ignored"
        );
        Ok(None)
    }
}

/// Step 2: read the abort marker and the checkpoint, open the commitlog and
/// walk it (every record written since the last known flush after a crash,
/// the last files otherwise), cutting a torn tail. After a crash the walk
/// keeps what re-dispatch needs of each record it checks, so re-dispatch does
/// not read the log a second time.
fn open_commitlog(cfg: &StoreConfig) -> Result<(OpenedLog, WalkedRecords)> {
    let root = &cfg.store_path_root_dir;
    let abnormal = root.join("abort").exists();
    let (checkpoint, ck_state) = Checkpoint::open(&root.join("checkpoint"))?;
    let ck = checkpoint.data();
    let ck_valid = ck_state == CheckpointState::Valid;
    let pool = transient_pool(cfg)?;
    let pooled = pool.is_some();
    let via_fd = commitlog_writes_via_fd(cfg, pooled);
    let mut commitlog = CommitLog::load(
        &cfg.commit_log_dir(),
        cfg.mapped_file_size_commit_log,
        cfg.warm_maped_file_enable,
        if pooled || via_fd {
            0
        } else {
            cfg.prefault_ahead_bytes
        },
        pool,
        cfg.io_uring_enable,
        via_fd,
    )?;
    let max_record = cfg.max_message_size as usize + 64 * 1024 + 1024;
    // After a crash, check every record written since the last known flush.
    let validate_from = abnormal.then_some(if ck_valid { ck.physic_offset } else { 0 });
    let phase = Instant::now();
    let delay_levels = cfg.delay_levels_ms()?;
    let mut walked = WalkedRecords::new(
        if abnormal { MAX_WALKED_RECORDS } else { 0 },
        delay_levels.clone(),
    );
    let cl_report = commitlog.recover(
        cfg.check_crc_on_recover,
        max_record,
        validate_from,
        &mut |h| walked.push(h),
    )?;
    let report = RecoveryReport {
        abnormal,
        commit_log: cl_report,
        walk_millis: phase.elapsed().as_millis() as u64,
        ..Default::default()
    };
    let log = OpenedLog {
        abnormal,
        checkpoint,
        ck,
        ck_valid,
        delay_levels,
        commitlog,
        report,
    };
    Ok((log, walked))
}

/// Step 3: load every consume queue (cut where it is damaged or points past
/// the commitlog end), the topic table and the key index.
fn load_consume_queues(cfg: &StoreConfig, log: &mut OpenedLog) -> Result<LoadedQueues> {
    let cqs = CqTable::new(cfg.consume_queue_dir(), cfg.consume_queue_file_size());
    cqs.set_deleted(
        load_deleted_topics(&cfg.config_dir()),
        log.commitlog.min_offset(),
    );
    let min_manifest = load_manifest(&cfg.config_dir().join(CQ_MIN_MANIFEST));
    let manifest = load_manifest(&cfg.config_dir().join(CQ_MANIFEST));
    for (topic, queue_id, dir) in list_consume_queues(&cfg.consume_queue_dir())? {
        let key = (topic.as_str(), queue_id);
        let cq = load_queue(cfg, log, &dir, key, (&manifest, &min_manifest))?;
        cqs.insert(cq);
        log.report.consume_queues += 1;
    }
    let topics = TopicTable::load(&cfg.config_dir())?;
    let index = if cfg.message_index_enable {
        let ix = IndexService::load(&cfg.index_dir(), cfg)?;
        ix.truncate_after(log.commitlog.max_offset())?;
        Some(ix)
    } else {
        None
    };
    Ok(LoadedQueues {
        cqs,
        topics,
        index,
        manifest,
        min_manifest,
    })
}

/// Load and check one consume queue, counting what was wrong with it in the
/// report. Units whose records the commitlog walk just checked are compared
/// with those records (the pages are warm), at most the last three files'
/// worth (the span a normal recovery walks; a crash tears only the tail).
/// Older units get order checks here, and every read checks a unit against
/// its record anyway.
fn load_queue(
    cfg: &StoreConfig,
    log: &mut OpenedLog,
    dir: &std::path::Path,
    (topic, queue_id): (&str, u32),
    (manifest, min_manifest): (&Manifest, &Manifest),
) -> Result<ConsumeQueue> {
    let (cl_min, cl_max) = (log.commitlog.min_offset(), log.commitlog.max_offset());
    let verify_from = log
        .report
        .commit_log
        .scanned_from
        .max(cl_max.saturating_sub(3 * cfg.mapped_file_size_commit_log));
    let (mut cq, bad_file) =
        ConsumeQueue::load_lenient(dir, topic, queue_id, cfg.consume_queue_file_size())?;
    let (commitlog, delay_levels) = (&log.commitlog, &log.delay_levels);
    let mut verify = |queue_offset: u64, u: &CqUnit| {
        check_unit(commitlog, topic, queue_id, queue_offset, u, delay_levels)
            != UnitCheck::UnitWrong
    };
    let expected_first = min_manifest.get(topic).and_then(|q| q.get(&queue_id));
    // Every file is scanned only after a crash or when the files are
    // not what the manifests recorded; otherwise the last three.
    let all_files = log.abnormal
        || bad_file.is_some()
        || manifests_disagree(
            &cq,
            expected_first.copied(),
            manifest.get(topic).and_then(|q| q.get(&queue_id)).copied(),
            cfg.consume_queue_file_size(),
        );
    let r = cq.recover(cl_min, cl_max, verify_from, all_files, &mut verify)?;
    let front_missing = front_files_missing(&cq, cl_min, expected_first.copied());
    if front_missing {
        tracing::warn!(
            topic,
            queue_id,
            first_file_offset = cq.first_file_offset(),
            expected_first,
            commit_log_min = cl_min,
            "consume queue lacks its first files while the commitlog still holds their \
             records; rebuilding it from the commitlog"
        );
        cq.clear()?;
    }
    if let Some(e) = &bad_file {
        tracing::warn!(topic, queue_id, error = %e,
            "consume queue file damaged or missing; rebuilding from the commitlog");
    }
    let report = &mut log.report;
    report.consume_queues_fully_scanned += usize::from(all_files);
    report.consume_queue_units_truncated += r.units_truncated;
    report.consume_queues_truncated += usize::from(r.units_truncated > 0);
    report.consume_queues_damaged += usize::from(r.damaged || front_missing || bad_file.is_some());
    Ok(cq)
}

/// Step 4: where re-dispatch starts. From where consume queues were last
/// known flushed; without a valid checkpoint, or when a queue lost units or
/// is damaged, from the start of the log (idempotent: units already present
/// are skipped).
fn plan_redispatch(log: &mut OpenedLog, queues: &LoadedQueues) -> RedispatchPlan {
    let (cl_min, cl_max) = (log.commitlog.min_offset(), log.commitlog.max_offset());
    let (ck, ck_valid) = (log.ck, log.ck_valid);
    let report = &mut log.report;
    let short_queue = queues.manifest.iter().find_map(|(topic, qs)| {
        qs.iter().find_map(|(q, max)| {
            let have = queues
                .cqs
                .get(topic, *q)
                .map(|c| c.max_offset())
                .unwrap_or(0);
            (have < *max).then(|| (topic.clone(), *q, have, *max))
        })
    });
    if let Some((topic, q, have, want)) = &short_queue {
        tracing::warn!(
            topic,
            queue_id = q,
            have,
            want,
            "consume queue has fewer units than when last flushed; rebuilding from the commitlog"
        );
        report.rebuilt_from_log_start = true;
    }
    if report.consume_queues_damaged > 0 {
        tracing::warn!(
            queues = report.consume_queues_damaged,
            "damaged consume queues; rebuilding from the commitlog"
        );
        report.rebuilt_from_log_start = true;
    }
    let units_before = queues
        .cqs
        .all()
        .iter()
        .map(|q| ((q.topic().to_string(), q.queue_id()), q.max_offset()))
        .collect();
    let from = if ck_valid && !report.rebuilt_from_log_start {
        let mut from = ck.logics_offset;
        if queues.index.is_some() {
            // Keys added since the index's last flush are rebuilt too.
            from = from.min(ck.index_offset);
        }
        from.clamp(cl_min, cl_max)
    } else {
        cl_min
    };
    report.redispatched_from = from;
    RedispatchPlan { from, units_before }
}

/// Step 5: dispatch the records from the plan's offset into consume queues
/// and the index, from what the walk kept when it covers them; when a queue
/// turns out to lack units the log still has, every queue again from the
/// start of the log.
fn redispatch(
    log: &mut OpenedLog,
    queues: &LoadedQueues,
    plan: RedispatchPlan,
    walked: WalkedRecords,
) -> Result<(Dispatcher, Arrivals)> {
    let (cl_min, cl_max) = (log.commitlog.min_offset(), log.commitlog.max_offset());
    let (commitlog, cqs, index) = (&log.commitlog, &queues.cqs, queues.index.as_ref());
    let report = &mut log.report;
    let dispatcher = Dispatcher::new(plan.from, log.delay_levels.clone());
    let arrivals = Arrivals::default();
    let first_pass =
        match dispatcher.dispatch_walked(&walked, cl_max, commitlog, cqs, index, &arrivals)? {
            Some(r) => r,
            None => dispatcher.dispatch_checking_gaps(commitlog, cqs, index, &arrivals)?,
        };
    drop(walked);
    report.records_redispatched = match first_pass {
        Ok(n) => n as u64,
        Err(gap) => {
            // A queue lacks units that the log still has (deleted, damaged or
            // lost its tail): rebuild every queue from the start of the log.
            tracing::warn!(
                ?gap,
                "consume queue is missing units; rebuilding from the commitlog"
            );
            report.rebuilt_from_log_start = true;
            report.redispatched_from = cl_min;
            dispatcher.reset(cl_min);
            dispatcher.dispatch_available(commitlog, cqs, index, &arrivals)? as u64
        }
    };
    if report.rebuilt_from_log_start {
        report.consume_queues_rebuilt = cqs
            .all()
            .iter()
            .filter(|q| {
                let key = (q.topic().to_string(), q.queue_id());
                q.max_offset() > plan.units_before.get(&key).copied().unwrap_or(0)
            })
            .count();
    }
    Ok((dispatcher, arrivals))
}

/// Step 6: give the commitlog each queue's next queue offset, and make sure
/// every queue found on disk has a topic (at least as many queues as its id
/// needs).
fn restore_queue_offsets(
    cfg: &StoreConfig,
    commitlog: &mut CommitLog,
    queues: &LoadedQueues,
) -> Result<()> {
    let mut table: HashMap<String, Vec<u64>> = HashMap::new();
    for cq in queues.cqs.all() {
        let v = table.entry(cq.topic().to_string()).or_default();
        let q = cq.queue_id() as usize;
        if v.len() <= q {
            v.resize(q + 1, 0);
        }
        v[q] = cq.max_offset();
        if queues.topics.get(cq.topic()).is_none() {
            let n = (cq.queue_id() + 1).max(cfg.default_topic_queue_nums);
            queues.topics.upsert(TopicConfig::new(cq.topic(), n))?;
        }
    }
    commitlog.set_queue_offsets(table);
    Ok(())
}

/// Log what recovery did: a WARN when anything was repaired or rebuilt.
fn log_recovery(report: &RecoveryReport) {
    if report.abnormal
        || report.commit_log.bytes_truncated > 0
        || report.consume_queue_units_truncated > 0
        || report.rebuilt_from_log_start
    {
        tracing::warn!(
            abnormal = report.abnormal,
            files_scanned = report.commit_log.files_scanned,
            bytes_scanned = report.commit_log.bytes_scanned,
            bytes_truncated = report.commit_log.bytes_truncated,
            consume_queues_truncated = report.consume_queues_truncated,
            consume_queue_units_truncated = report.consume_queue_units_truncated,
            consume_queues_damaged = report.consume_queues_damaged,
            consume_queues_rebuilt = report.consume_queues_rebuilt,
            rebuilt_from_log_start = report.rebuilt_from_log_start,
            records_redispatched = report.records_redispatched,
            millis = report.millis,
            "recovered the store"
        );
    } else {
        tracing::info!(?report, "store opened");
    }
}

/// Step 7: mark the store open: create the abort marker (a crash from here on
/// makes the next open recover abnormally), flush the index, and record the
/// recovered offsets in the checkpoint.
fn mark_open(
    cfg: &StoreConfig,
    log: &OpenedLog,
    queues: &LoadedQueues,
    dispatcher: &Dispatcher,
) -> Result<()> {
    let root = &cfg.store_path_root_dir;
    let abort_path = root.join("abort");
    File::create(&abort_path)
        .map_err(|e| Error::io(format!("creating {}", abort_path.display()), e))?;
    crate::fs::sync_dir(root)?;
    if let Some(h) = crate::io::hook_for(&abort_path) {
        h.created(&abort_path, 0);
    }
    if let Some(ix) = &queues.index {
        ix.flush()?;
    }
    let cl_max = log.commitlog.max_offset();
    log.checkpoint.update(|d| {
        d.physic_offset = cl_max;
        d.logics_offset = dispatcher.dispatched_offset();
        d.index_offset = dispatcher.dispatched_offset();
    });
    log.checkpoint.flush()
}

impl StoreInner {
    /// Write a consume-queue manifest (`config/<name>`); false, with a
    /// rate-limited WARN, when it cannot be written (retried by the next pass).
    pub(crate) fn write_manifest(&self, name: &str, map: &Manifest) -> bool {
        let written = serde_json::to_vec(map)
            .map_err(|e| {
                Error::io(
                    "encoding a consume queue manifest",
                    std::io::Error::other(e),
                )
            })
            .and_then(|json| crate::fs::write_atomically(&self.cfg.config_dir().join(name), &json));
        match written {
            Ok(()) => true,
            Err(e) => {
                if let Some(held_back) = self.cq_flush_log.allow() {
                    tracing::warn!(error = %e, manifest = name, not_logged = held_back,
                        "cannot write a consume queue manifest; retried");
                }
                false
            }
        }
    }
}

/// Read the deleted topics (`config/deletedTopics.json`); empty when missing
/// or damaged (logged).
fn load_deleted_topics(config_dir: &std::path::Path) -> HashMap<String, u64> {
    let path = config_dir.join(crate::consume_queue::table::DELETED_TOPICS_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(path = %path.display(), error = %e, "deleted topics file unreadable; ignored");
            HashMap::new()
        }),
        Err(_) => HashMap::new(),
    }
}

/// Read a consume-queue manifest; empty when missing or damaged (a damaged
/// one is logged: it is a hint, the queues themselves are checked).
fn load_manifest(path: &std::path::Path) -> Manifest {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
            tracing::warn!(path = %path.display(), error = %e, "ignoring a damaged consume queue manifest");
            Default::default()
        }),
        Err(_) => Default::default(),
    }
}

/// Find `consumequeue/<topic>/<queueId>` directories.
fn list_consume_queues(root: &std::path::Path) -> Result<Vec<(String, u32, PathBuf)>> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io(format!("listing {}", root.display()), e)),
    };
    for t in rd {
        let t = t.map_err(|e| Error::io(format!("listing {}", root.display()), e))?;
        if !t.path().is_dir() {
            tracing::warn!(path = %t.path().display(), "ignoring a stray file in consumequeue/");
            continue;
        }
        let topic = t.file_name().to_string_lossy().to_string();
        if validate_topic(&topic).is_err() {
            tracing::warn!(path = %t.path().display(), "ignoring a consume queue folder that is not a topic name");
            continue;
        }
        let qrd = std::fs::read_dir(t.path())
            .map_err(|e| Error::io(format!("listing {}", t.path().display()), e))?;
        for q in qrd {
            let q = q.map_err(|e| Error::io(format!("listing {}", t.path().display()), e))?;
            match q.file_name().to_string_lossy().parse::<u32>() {
                Ok(id) if id >= crate::dispatch::MAX_QUEUES_PER_TOPIC => {
                    // Left by an older version from a record dispatch now
                    // refuses: its topic would get an absurd queue count.
                    tracing::warn!(path = %q.path().display(),
                        "ignoring a consume queue folder whose queue id is out of range 0..1024")
                }
                Ok(id) if q.path().is_dir() => out.push((topic.clone(), id, q.path())),
                _ => {
                    tracing::warn!(path = %q.path().display(), "ignoring a stray entry in a consume queue folder")
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

/// At most this many records kept by a recovery walk for re-dispatch (56
/// bytes each: about 64 MiB); a longer walk re-dispatches by reading the log.
const MAX_WALKED_RECORDS: usize = 1_200_000;

/// Whether puts write the commitlog with `pwrite` (`syncFlushPwriteEnable`
/// under SYNC_FLUSH, when the transient store pool does not take the writes).
/// Pre-faulting the mapping for writes would dirty page-table entries again,
/// so it is off then.
fn commitlog_writes_via_fd(cfg: &StoreConfig, pooled: bool) -> bool {
    cfg.sync_flush_pwrite_enable && cfg.flush_disk_type == FlushDiskType::SyncFlush && !pooled
}

/// Recovery: how consume-queue unit `u` at `queue_offset` of `topic`/`queue_id`
/// relates to the record it points at (the body CRC is not checked here: the
/// commitlog walk did, where it walked). See [`crate::damage::classify`].
fn check_unit(
    commitlog: &CommitLog,
    topic: &str,
    queue_id: u32,
    queue_offset: u64,
    u: &CqUnit,
    delay_levels_ms: &[i64],
) -> UnitCheck {
    let Some(b) = commitlog.get_data(u.commit_log_offset, u.size as usize) else {
        return UnitCheck::UnitWrong;
    };
    crate::damage::classify(
        &b,
        u,
        topic,
        queue_id,
        queue_offset,
        Some(delay_levels_ms),
        false,
    )
}

/// True when a queue's files are not what the manifests recorded at the last
/// flush (`first`: first-file queue offset, `max`: units), or there is no
/// record: its first file starts elsewhere, or its last file is not the one
/// that holds its last recorded unit.
fn manifests_disagree(
    cq: &ConsumeQueue,
    first: Option<u64>,
    max: Option<u64>,
    file_size: u64,
) -> bool {
    let (Some(first), Some(max)) = (first, max) else {
        return true;
    };
    let per_file = (file_size / CQ_UNIT_SIZE as u64).max(1);
    let n = cq.file_count() as u64;
    if n == 0 || max == 0 {
        return n != 0 || max != 0;
    }
    let last_start = cq.first_file_offset() + (n - 1) * per_file;
    first != cq.first_file_offset() || last_start != (max - 1) / per_file * per_file
}

/// True when a consume queue's first files are gone while the commitlog still
/// holds records they indexed: the queue starts after offset 0, its first unit
/// points at or after the commitlog's start (files deleted by retention index
/// only records before it), and either the last flush recorded an earlier first
/// file (`expected_first`) or, with no record, the commitlog starts at 0 (so no
/// record was ever deleted).
fn front_files_missing(cq: &ConsumeQueue, cl_min: u64, expected_first: Option<u64>) -> bool {
    let first = cq.first_file_offset();
    if first == 0 || cq.file_count() == 0 {
        return false;
    }
    let Some(u) = cq.first_unit() else {
        return false;
    };
    u.commit_log_offset >= cl_min && expected_first.map_or(cl_min == 0, |e| e < first)
}
