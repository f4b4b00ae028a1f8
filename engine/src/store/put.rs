//! Puts: every put and wait-for-put path, validation, queue assignment.

use crate::sync::RwLockExt;
use std::cell::RefCell;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{MessageStore, PutCallback, PutResult, PutStatus, ReplicaWaiter, StoreInner};
use crate::commitlog::RecordSlot;
use crate::config::{BrokerRole, FlushDiskType};
use crate::error::{Error, Result};
use crate::flush::SyncOutcome;
use crate::message::{
    self, encode_record, offset_msg_id, sys_flag, validate_topic, Message, MAX_PROPERTIES_LEN,
};

thread_local! {
    /// Per-thread encoding buffer and record slots, reused by every put (no
    /// allocation per message once warm).
    static ENCODE_BUF: RefCell<(Vec<u8>, Vec<RecordSlot>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Time left of `ms` milliseconds counted from `since`.
fn deadline_left(since: Instant, ms: u64) -> Duration {
    (since + Duration::from_millis(ms)).saturating_duration_since(Instant::now())
}

/// `msgs` without `TIMER_SRC`, which only the timer service may write (see
/// `StoreInner::put_message`); borrowed unless one has it.
fn without_timer_src(msgs: &[Message]) -> std::borrow::Cow<'_, [Message]> {
    if !msgs.iter().any(|m| {
        crate::timer::has_timer_property(m) && m.properties.get(message::keys::TIMER_SRC).is_some()
    }) {
        return std::borrow::Cow::Borrowed(msgs);
    }
    let mut owned = msgs.to_vec();
    for m in &mut owned {
        m.properties.remove(message::keys::TIMER_SRC);
    }
    std::borrow::Cow::Owned(owned)
}

/// A put's status from its disk and slave outcomes: as RocketMQ, when both
/// fail, the replica status wins.
fn combine_wait_status(flushed: PutStatus, replica: PutStatus) -> PutStatus {
    if replica == PutStatus::PutOk {
        flushed
    } else {
        replica
    }
}

impl MessageStore {
    /// Store one message.
    ///
    /// Returns a [`PutResult`] when the message was written (its status says
    /// whether a sync flush finished in time).
    ///
    /// A message with a `DELAY` level waits on [`crate::SCHEDULE_TOPIC`]; one
    /// with `TIMER_DELIVER_MS`, `TIMER_DELAY_SEC` or `TIMER_DELAY_MS` (see
    /// [`message::keys`]) waits on [`crate::TIMER_TOPIC`] until due, rounded up
    /// to `timerPrecisionMs`; either way it reaches its topic only then. A
    /// timer time in the past is stored at once. Progress:
    /// [`MessageStore::timer_stats`].
    ///
    /// # Errors
    /// Nothing is written when it returns an error: [`Error::IllegalMessage`]
    /// (bad topic, body over `maxMessageSize`, properties too long, queue id out
    /// of range, a timer property that is not a number or beyond
    /// `timerMaxDelaySec`), [`Error::TopicNotExist`], [`Error::ShutDown`], [`Error::Fenced`],
    /// [`Error::WrongRole`] on a slave, [`Error::Io`] when a new file cannot be made.
    pub fn put_message(&self, msg: &Message) -> Result<PutResult> {
        let r = self.inner.put_message(msg)?;
        self.finish_put(r, msg.wait_store_ok(), None)
    }

    /// Store one message without waiting for a sync flush or a slave: the
    /// result's status is [`PutStatus::PutOk`] once the bytes are in the log
    /// (readable, not yet durable). Pass it to [`MessageStore::wait_put`], on
    /// any thread, for the status [`MessageStore::put_message`] would have
    /// given. A server uses this to keep its put threads free while puts wait
    /// for SYNC_FLUSH or SYNC_MASTER (RocketMQ's `asyncPutMessage`), so that
    /// many waiting puts share one sync or one slave round trip.
    ///
    /// # Errors
    /// As [`MessageStore::put_message`].
    pub fn put_message_nowait(&self, msg: &Message) -> Result<PutResult> {
        self.inner.put_message(msg)
    }

    /// [`MessageStore::put_messages`] without the wait; see
    /// [`MessageStore::put_message_nowait`].
    ///
    /// # Errors
    /// As [`MessageStore::put_messages`].
    pub fn put_messages_nowait(&self, msgs: &[Message]) -> Result<PutResult> {
        Self::check_batch(msgs)?;
        self.inner.put_batch_inner(&without_timer_src(msgs), true)
    }

    /// True when a put must still wait after it is written: SYNC_FLUSH or
    /// SYNC_MASTER (or a store switched to slave since: see
    /// [`MessageStore::change_role`]), and the message asks to (`WAIT` is not
    /// `false`).
    pub fn put_needs_wait(&self, msg: &Message) -> bool {
        let c = &self.inner.cfg;
        msg.wait_store_ok()
            && (c.flush_disk_type == FlushDiskType::SyncFlush || self.inner.waits_for_replica())
    }

    /// Wait for what a put written by [`MessageStore::put_message_nowait`]
    /// still needs: its bytes durable (SYNC_FLUSH, up to `syncFlushTimeout`)
    /// and on a slave (SYNC_MASTER, up to the slave timeout). Returns the put
    /// with its final status: `PutOk`, `FlushDiskTimeout`, `FlushSlaveTimeout`
    /// or `SlaveNotAvailable`.
    ///
    /// # Errors
    /// [`Error::Fenced`] when a sync failed; [`Error::ShutDown`].
    pub fn wait_put(&self, put: PutResult) -> Result<PutResult> {
        self.finish_put(put, true, None)
    }

    /// [`MessageStore::wait_put`] with the timeouts counted from `written_at`
    /// (when the put was written) rather than from now: one thread can wait
    /// for many puts in turn, in log order, and each still gets its own
    /// deadline (a put whose deadline passed gets its timeout status at once).
    ///
    /// # Errors
    /// As [`MessageStore::wait_put`].
    pub fn wait_put_since(&self, put: PutResult, written_at: Instant) -> Result<PutResult> {
        self.finish_put(put, true, Some(written_at))
    }

    /// True when [`MessageStore::wait_put_then`] may block its caller: under
    /// SYNC_FLUSH it waits for the disk on the calling thread, and under
    /// SYNC_MASTER for the slave unless the registered [`ReplicaWaiter`]
    /// answers without blocking ([`ReplicaWaiter::answers_without_blocking`]),
    /// in which case it returns at once and the replication layer calls back
    /// from its own thread.
    pub fn wait_put_blocks(&self) -> bool {
        let s = &self.inner;
        s.cfg.flush_disk_type == FlushDiskType::SyncFlush
            || (s.waits_for_replica()
                && s.replica_waiter()
                    .is_some_and(|w| !w.answers_without_blocking()))
    }

    /// [`MessageStore::wait_put_since`] that hands the put with its final status
    /// to `done` instead of returning it. The disk wait (SYNC_FLUSH) happens on
    /// the calling thread; the slave wait (SYNC_MASTER) does not block it when
    /// the registered [`ReplicaWaiter`] implements
    /// [`ReplicaWaiter::on_replicated`]: `done` then runs on the replication
    /// layer's thread once a slave confirmed the put or its timeout passed, so
    /// it must be short (a send on a channel). A server uses it to answer
    /// SYNC_MASTER sends without a thread per waiting put and without a hop
    /// through a waiting thread.
    ///
    /// `done` gets what [`MessageStore::wait_put_since`] would return:
    /// [`Error::Fenced`] when a sync failed, [`Error::ShutDown`] when the store
    /// stopped, otherwise the put with its final status. It is called exactly
    /// once.
    pub fn wait_put_then(&self, mut put: PutResult, written_at: Instant, done: PutCallback) {
        let s = &self.inner;
        let end = put.commit_log_offset + u64::from(put.wrote_bytes);
        let flushed = match s.wait_flushed(end, written_at) {
            Ok(st) => st,
            Err(e) => return done(Err(e)),
        };
        if !s.waits_for_replica() {
            put.status = flushed;
            return done(Ok(put));
        }
        match s.replica_waiter() {
            None => {
                put.status = PutStatus::SlaveNotAvailable;
                done(Ok(put));
            }
            Some(w) => {
                let timeout = deadline_left(written_at, s.cfg.slave_timeout_ms);
                w.on_replicated(
                    end,
                    timeout,
                    Box::new(move |replica| {
                        put.status = combine_wait_status(flushed, replica);
                        done(Ok(put));
                    }),
                );
            }
        }
    }

    /// Wait for the put as its message asks (`wait`) and the store's flush
    /// mode and role require; the timeouts count from `since`, or from now.
    /// A put that need not wait reads no clock (a clock read is a real share
    /// of a small put: see docs/perf-notes.md#clock-reads-on-the-put-path).
    #[inline]
    fn finish_put(
        &self,
        mut put: PutResult,
        wait: bool,
        since: Option<Instant>,
    ) -> Result<PutResult> {
        let s = &self.inner;
        if wait && (s.cfg.flush_disk_type == FlushDiskType::SyncFlush || s.waits_for_replica()) {
            put.status = s.wait_put(
                put.commit_log_offset + u64::from(put.wrote_bytes),
                since.unwrap_or_else(Instant::now),
            )?;
        }
        Ok(put)
    }

    /// Store a batch of messages for one topic and queue as one unit (they land
    /// in the same commitlog file with consecutive queue offsets).
    ///
    /// # Errors
    /// As [`MessageStore::put_message`]; also when the batch is empty, mixes
    /// topics or queues, or holds transactional or delayed messages.
    pub fn put_messages(&self, msgs: &[Message]) -> Result<PutResult> {
        Self::check_batch(msgs)?;
        let msgs = &without_timer_src(msgs);
        let r = self.inner.put_batch_inner(msgs, true)?;
        self.finish_put(r, msgs[0].wait_store_ok(), None)
    }

    fn check_batch(msgs: &[Message]) -> Result<()> {
        let first = msgs
            .first()
            .ok_or_else(|| Error::IllegalMessage("empty batch".into()))?;
        for m in msgs {
            if m.topic != first.topic || m.queue_id != first.queue_id {
                return Err(Error::IllegalMessage(
                    "a batch must have one topic and one queue".into(),
                ));
            }
            if m.sys_flag & sys_flag::TRANSACTION_MASK != 0
                || m.properties.get(message::keys::DELAY).is_some()
            {
                return Err(Error::IllegalMessage(
                    "transactional or delayed messages cannot be batched".into(),
                ));
            }
            if crate::timer::has_timer_property(m)
                && [
                    message::keys::TIMER_DELIVER_MS,
                    message::keys::TIMER_DELAY_SEC,
                    message::keys::TIMER_DELAY_MS,
                ]
                .iter()
                .any(|k| m.properties.get(k).is_some())
                && m.properties.get(message::keys::TIMER_OUT_MS).is_none()
            {
                return Err(Error::IllegalMessage(
                    "timer messages cannot be batched".into(),
                ));
            }
        }
        Ok(())
    }
}

impl StoreInner {
    fn put_message(&self, msg: &Message) -> Result<PutResult> {
        // One pass over the properties decides for both timer checks below:
        // a plain put reads no clock and looks up no timer key.
        let timer = crate::timer::has_timer_property(msg);
        if timer && msg.properties.get(message::keys::TIMER_SRC).is_some() {
            // Only the timer service writes TIMER_SRC (a restart trusts it to
            // tell what was delivered): a client's is dropped.
            let mut m = msg.clone();
            m.properties.remove(message::keys::TIMER_SRC);
            return self.put_message(&m);
        }
        if let Some(level) = crate::schedule::delay_level(msg) {
            // A delayed message: check its real topic and queue now, then let it
            // wait on the schedule topic (RocketMQ 4.x's layout).
            self.check_writable()?;
            self.validate(msg)?;
            self.checked_queues(&msg.topic, msg.queue_id, None)?;
            let level = level.min(self.schedule.max_level());
            self.topics
                .get_or_create(crate::schedule::SCHEDULE_TOPIC, self.schedule.max_level())?;
            let waiting = crate::schedule::to_schedule(msg, level);
            return self.put_batch_inner(std::slice::from_ref(&waiting), false);
        }
        if let Some(due) = timer.then(|| self.timer_due(msg)).transpose()?.flatten() {
            // A timer message (RocketMQ 5): check its real topic and queue
            // now, then let it wait on the timer topic (see `crate::timer`).
            self.check_writable()?;
            self.validate(msg)?;
            self.checked_queues(&msg.topic, msg.queue_id, None)?;
            self.topics.get_or_create(crate::timer::TIMER_TOPIC, 1)?;
            let waiting = crate::timer::to_waiting(msg, due);
            let put = self.put_batch_inner(std::slice::from_ref(&waiting), false)?;
            // The timer thread looks every 100 ms anyway; a wake-up (a futex
            // call when it sleeps) only for a timer due sooner than that.
            if due <= crate::sys::now_ms() + crate::timer::WAKE_WITHIN_MS {
                self.timer.waker.wake();
            }
            return Ok(put);
        }
        self.put_batch_inner(std::slice::from_ref(msg), false)
    }

    /// The due time of a timer message (see [`crate::timer::due_time`]).
    fn timer_due(&self, msg: &Message) -> Result<Option<i64>> {
        let cfg = &self.cfg;
        let due = crate::timer::due_time(
            msg,
            crate::sys::now_ms(),
            i64::from(cfg.timer_precision_ms.max(1)),
            i64::from(cfg.timer_max_delay_sec).saturating_mul(1000),
        )?;
        if due.is_some() && !cfg.timer_wheel_enable {
            return Err(Error::IllegalMessage(
                "timer message illegal: timer messages are disabled (timerWheelEnable=false)"
                    .into(),
            ));
        }
        Ok(due)
    }

    /// Write queue count of `topic` (`known` if the caller looked it up
    /// already), auto-creating the topic when allowed, with `queue_id`
    /// checked against it. A put whose queue id is out of range creates
    /// nothing: an auto-created topic would get `defaultTopicQueueNums` queues,
    /// so that is checked first.
    fn checked_queues(&self, topic: &str, queue_id: u32, known: Option<u32>) -> Result<u32> {
        let out_of_range = |queues: u32| {
            Error::IllegalMessage(format!(
                "queue id {queue_id} out of range: topic `{topic}` has {queues} write queues"
            ))
        };
        let queues = match known.or_else(|| self.topics.write_queues(topic)) {
            Some(n) => n,
            None if self.cfg.auto_create_topic_enable => {
                let n = self.cfg.default_topic_queue_nums;
                if queue_id >= n {
                    return Err(out_of_range(n));
                }
                self.topics.get_or_create(topic, n)?
            }
            None => return Err(Error::TopicNotExist(topic.to_string())),
        };
        if queue_id >= queues {
            return Err(out_of_range(queues));
        }
        Ok(queues)
    }

    fn check_writable(&self) -> Result<()> {
        let s = self;
        if s.stopping.load(Ordering::Acquire) {
            return Err(Error::ShutDown);
        }
        s.fence.check()?;
        if s.clean.disk_full.load(Ordering::Acquire) {
            return Err(Error::DiskFull(format!(
                "the commitlog's disk is fuller than diskSpaceWarningLevelRatio {}%; puts resume below {}%",
                s.cfg.disk_space_warning_level_ratio, s.cfg.disk_space_clean_forcibly_ratio
            )));
        }
        if s.role() == BrokerRole::Slave {
            return Err(Error::WrongRole("a slave does not accept puts".into()));
        }
        Ok(())
    }

    fn validate(&self, msg: &Message) -> Result<()> {
        validate_topic(&msg.topic).map_err(Error::IllegalMessage)?;
        self.validate_content(msg)
    }

    /// [`StoreInner::validate`] but for the topic's name.
    fn validate_content(&self, msg: &Message) -> Result<()> {
        if msg.body.len() > self.cfg.max_message_size as usize {
            return Err(Error::IllegalMessage(format!(
                "body is {} bytes, more than maxMessageSize {}",
                msg.body.len(),
                self.cfg.max_message_size
            )));
        }
        let plen = msg.properties.encoded_len();
        if plen > MAX_PROPERTIES_LEN {
            return Err(Error::IllegalMessage(format!(
                "properties are {plen} bytes encoded, more than {MAX_PROPERTIES_LEN}"
            )));
        }
        for (k, v) in msg.properties.iter() {
            if k.is_empty() || k.bytes().chain(v.bytes()).any(|b| b == 1 || b == 2) {
                return Err(Error::IllegalMessage(format!(
                    "property `{}` has an empty key or contains the separators \\x01/\\x02",
                    k.escape_debug()
                )));
            }
        }
        Ok(())
    }

    pub(crate) fn put_batch_inner(&self, msgs: &[Message], batch: bool) -> Result<PutResult> {
        self.check_writable()?;
        let first = &msgs[0];
        let s = self;
        // A topic the table knows has a legal name (see `TopicTable::write_queues`);
        // an unknown one is checked before anything is created for it.
        let known = s.topics.write_queues(&first.topic);
        for (i, m) in msgs.iter().enumerate() {
            if known.is_some() && (i == 0 || m.topic == first.topic) {
                self.validate_content(m)?;
            } else {
                self.validate(m)?;
            }
        }
        s.checked_queues(&first.topic, first.queue_id, known)?;
        let tx = first.sys_flag & sys_flag::TRANSACTION_MASK;
        let assign = !(tx == sys_flag::TRANSACTION_PREPARED_TYPE
            || tx == sys_flag::TRANSACTION_ROLLBACK_TYPE);
        let appended = if let [m] = msgs {
            // One message: checksum it here, encode it once, in place, under the lock.
            let rec = message::PreparedRecord::new(m, &s.store_host);
            let slot = RecordSlot {
                start: 0,
                store_timestamp_pos: rec.store_timestamp_pos,
            };
            check_record_len(rec.len, s.cfg.max_message_size, batch)?;
            s.commitlog.append(
                rec.len,
                |dst| rec.write(dst),
                &[slot],
                &first.topic,
                first.queue_id,
                assign,
            )?
        } else {
            ENCODE_BUF.with(|b| {
                let (buf, slots) = &mut *b.borrow_mut();
                buf.clear();
                slots.clear();
                for m in msgs {
                    let start = buf.len();
                    let layout = encode_record(m, &s.store_host, buf);
                    debug_assert_eq!(layout.len, buf.len() - start);
                    slots.push(RecordSlot {
                        start,
                        store_timestamp_pos: layout.store_timestamp_pos,
                    });
                }
                check_record_len(buf.len(), s.cfg.max_message_size, batch)?;
                s.commitlog.append(
                    buf.len(),
                    |dst| dst.copy_from_slice(buf),
                    slots,
                    &first.topic,
                    first.queue_id,
                    assign,
                )
            })?
        };
        s.flusher.on_put();
        if s.commitlog.pooled() {
            // As RocketMQ wakes its commit service after a put, but only once a
            // commit would write something: at least commitCommitLogLeastPages
            // pages wait (one atomic load otherwise).
            let end = appended.wrote_offset + appended.wrote_bytes as u64;
            let least = u64::from(s.cfg.commit_commit_log_least_pages.max(1)) * 4096;
            if end.saturating_sub(s.commitlog.queue.committed_where()) >= least {
                s.commit_waker.wake();
            }
        }
        if s.arrivals.has_interest() {
            s.dispatcher.waker.wake();
        }

        let status = PutStatus::PutOk;
        let batch_msg_ids = if msgs.len() == 1 {
            None
        } else {
            // Recompute each record's offset from the encoded sizes.
            let mut ids = Vec::with_capacity(msgs.len());
            let mut off = appended.wrote_offset;
            for m in msgs {
                ids.push(offset_msg_id(s.store_host, off));
                off += message::record_len(m, &s.store_host, m.properties.encoded_len()) as u64;
            }
            Some(ids.join(","))
        };
        Ok(PutResult {
            status,
            commit_log_offset: appended.wrote_offset,
            queue_offset: appended.queue_offset,
            store_host: s.store_host,
            batch_msg_ids,
            wrote_bytes: appended.wrote_bytes as u32,
            message_count: msgs.len() as u32,
            store_timestamp_ms: appended.store_timestamp_ms,
        })
    }

    /// Whether a put written now, or being waited for, waits for a slave:
    /// under SYNC_MASTER, and also once the store became a slave
    /// ([`MessageStore::change_role`]): a put written before that switch
    /// reports `PutOk` only if a slave has it (the new master may not, and
    /// the put may be cut when this store follows it).
    #[inline]
    pub(crate) fn waits_for_replica(&self) -> bool {
        self.role() != BrokerRole::AsyncMaster
    }

    /// Wait until the log is durable (SYNC_FLUSH) and on a slave (SYNC_MASTER)
    /// up to `end`, as the config asks; the put's final status.
    fn wait_put(&self, end: u64, since: Instant) -> Result<PutStatus> {
        let flushed = self.wait_flushed(end, since)?;
        if !self.waits_for_replica() {
            return Ok(flushed);
        }
        let replica = match self.replica_waiter() {
            Some(w) => w.wait_replicated(end, deadline_left(since, self.cfg.slave_timeout_ms)),
            None => PutStatus::SlaveNotAvailable,
        };
        Ok(combine_wait_status(flushed, replica))
    }

    /// Under SYNC_FLUSH, wait until the log is durable up to `end` (at most
    /// `syncFlushTimeout` from `since`): `PutOk` or `FlushDiskTimeout`.
    fn wait_flushed(&self, end: u64, since: Instant) -> Result<PutStatus> {
        if self.cfg.flush_disk_type != FlushDiskType::SyncFlush {
            return Ok(PutStatus::PutOk);
        }
        let timeout = deadline_left(since, self.cfg.sync_flush_timeout_ms);
        Ok(match self.flusher.wait_durable(end, timeout)? {
            SyncOutcome::TimedOut => PutStatus::FlushDiskTimeout,
            _ => PutStatus::PutOk,
        })
    }

    fn replica_waiter(&self) -> Option<Arc<dyn ReplicaWaiter>> {
        self.replica_waiter.read_locked().clone()
    }
}

/// A single record (not a batch) may be at most `maxMessageSize` + 64 KiB
/// (room for header, topic and properties).
fn check_record_len(len: usize, max_message_size: u32, batch: bool) -> Result<()> {
    let max_rec = max_message_size as usize + 64 * 1024;
    if !batch && len > max_rec {
        return Err(Error::IllegalMessage(format!(
            "record of {len} bytes is larger than maxMessageSize + 64 KiB"
        )));
    }
    Ok(())
}
