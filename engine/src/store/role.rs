//! Switching between master and slave while the store runs (a broker in
//! controller mode: a slave elected master, a master told it is now a slave;
//! RocketMQ 5's `changeRoleToMaster` / `changeRoleToSlave` on the store).
//!
//! Who writes the commitlog follows the role: a master's puts, or a slave's
//! raw appends of its master's stream ([`MessageStore::append_commit_log`],
//! after a [`MessageStore::truncate_commit_log`] if the histories diverged).
//! The commitlog's put lock orders a switch against both: a put takes it to
//! append and checks the role there, so a put either is appended before the
//! switch takes the lock or is refused with [`Error::WrongRole`] after;
//! likewise a raw append.
//!
//! The services that write puts of their own (delayed delivery, the timer)
//! run only while the store is a master: each switch starts a new epoch of
//! [`crate::service::RoleGate`]; a switch to slave waits until they have left
//! the master epoch (state written and dropped), and a switch to master lets
//! them start again from disk as at open.

use std::collections::HashMap;
use std::time::Duration;

use super::MessageStore;
use crate::config::BrokerRole;
use crate::error::{Error, Result};
use crate::sync::{LockExt, RwLockExt};

/// How long [`MessageStore::change_role`] waits for the delayed and timer
/// deliveries to pause at a switch to slave.
pub(super) const PAUSE_TIMEOUT: Duration = Duration::from_secs(10);

impl MessageStore {
    /// The role the store has now: `brokerRole` as opened
    /// ([`crate::StoreConfig::broker_role`]) until [`MessageStore::change_role`]
    /// changes it.
    pub fn role(&self) -> BrokerRole {
        self.inner.role()
    }

    /// Change the store's role while it runs; returns the role it had.
    ///
    /// - **Master to [`BrokerRole::Slave`]**: puts are refused from now on
    ///   ([`Error::WrongRole`]); a put already being appended finishes first,
    ///   so when this returns [`MessageStore::commit_log_max_offset`] moves
    ///   only by raw appends, and every put that succeeded lies below it.
    ///   Delayed delivery and the timer stop (their progress written to
    ///   `config/delayOffset.json` and `config/timercheck`, their in-memory
    ///   state dropped); this waits (at most 10 s, then logs a warning: their
    ///   puts are refused all the same) until they have. With the transient
    ///   store pool, what the pool holds is committed to the files first.
    ///   Then [`MessageStore::truncate_commit_log`] and
    ///   [`MessageStore::append_commit_log`] are allowed.
    /// - **Slave to master** ([`BrokerRole::SyncMaster`] /
    ///   [`BrokerRole::AsyncMaster`]): everything in the log is dispatched,
    ///   then new puts continue each queue where its consume queue ends (no
    ///   gap, no queue offset twice, also after raw appends and truncations);
    ///   raw appends and truncation are refused from now on. Delayed delivery
    ///   reloads its progress from `config/delayOffset.json`, and the timer
    ///   rebuilds from its log and checkpoint (with the scan for deliveries
    ///   the checkpoint misses), exactly as when a store is opened as master.
    ///   A store opened as slave has no transient store pool and keeps
    ///   writing without one.
    /// - **Between SYNC_MASTER and ASYNC_MASTER**: only whether puts wait for
    ///   a slave changes. **The same role**: nothing happens.
    ///
    /// Switches run one at a time. Readers are not affected.
    ///
    /// # Errors
    /// [`Error::ShutDown`] / [`Error::Fenced`]; for a switch to master,
    /// [`Error::Corruption`] / [`Error::Io`] when `delayOffset.json` cannot be
    /// read (as at open), an error dispatching the log, or [`Error::Busy`]
    /// when the deliveries of the last master epoch have still not paused
    /// (see above): the role is then unchanged. A failed commit of the pool at a switch to slave fences the
    /// store (as [`MessageStore::flush`] does).
    pub fn change_role(&self, role: BrokerRole) -> Result<BrokerRole> {
        let s = &self.inner;
        let _switch = s.role_switch.locked();
        let old = s.role();
        if old == role {
            return Ok(old);
        }
        if s.stopping.load(std::sync::atomic::Ordering::Acquire) {
            return Err(Error::ShutDown);
        }
        s.fence.check()?;
        match (old, role) {
            (_, BrokerRole::Slave) => self.demote()?,
            (BrokerRole::Slave, _) => self.promote(role)?,
            // SYNC_MASTER <-> ASYNC_MASTER: a put reads it after appending.
            _ => s.set_role(role),
        }
        tracing::warn!(from = ?old, to = ?role, "store role changed");
        Ok(old)
    }

    /// Master to slave (see [`MessageStore::change_role`]).
    fn demote(&self) -> Result<()> {
        let s = &self.inner;
        s.commitlog.switch_writer(true, || {
            s.set_role(BrokerRole::Slave);
            Ok(None)
        })?;
        let epoch = s.role_gate.set(false);
        s.schedule_waker.wake();
        s.timer.waker.wake();
        if s.commitlog.pooled() {
            // Raw appends and truncation work on the files: the last puts,
            // still in the pool's buffer, are committed first.
            s.commitlog
                .commit(0)
                .inspect_err(|e| s.fence.trip(format!("commitlog commit failed: {e}")))?;
        }
        if !s.role_gate.wait_acked(epoch, PAUSE_TIMEOUT) {
            tracing::warn!(
                timeout_ms = PAUSE_TIMEOUT.as_millis() as u64,
                "switch to slave: delayed or timer delivery did not pause in time \
                 (their puts are refused all the same)"
            );
        }
        Ok(())
    }

    /// A log followed by raw appends may end inside a record (a master's
    /// stream is cut into frames anywhere, and the master may have died
    /// mid-record): before it takes puts, that partial record is cut, as
    /// RocketMQ's `truncateInvalidMsg` does, or puts would follow bytes that
    /// are no record.
    fn cut_partial_tail(&self) -> Result<()> {
        let s = &self.inner;
        {
            // Exclusive, as promote's own pass: the dispatch thread must not
            // dispatch the same records at the same time.
            let _gate = s.log_gate.write_locked();
            s.dispatcher
                .dispatch_available(&s.commitlog, &s.cqs, s.index.as_ref(), &s.arrivals)?;
        }
        let (records_end, log_end) = (s.dispatcher.dispatched_offset(), s.commitlog.max_offset());
        if records_end < log_end {
            tracing::warn!(
                records_end,
                log_end,
                "promotion: the log ends inside a record; cutting the partial record"
            );
            self.truncate_commit_log(records_end)?;
        }
        Ok(())
    }

    /// Slave to master (see [`MessageStore::change_role`]).
    fn promote(&self, role: BrokerRole) -> Result<()> {
        let s = &self.inner;
        // The schedule service is paused (it acknowledged the switch to
        // slave, or the store opened as one): its progress can be replaced.
        if !s.role_gate.wait_acked(s.role_gate.epoch(), PAUSE_TIMEOUT) {
            return Err(Error::Busy(
                "the delayed or timer delivery of the last master epoch has not paused yet; \
                 retry the switch"
                    .into(),
            ));
        }
        s.schedule.reload()?;
        self.cut_partial_tail()?;
        {
            // No dispatch pass, consume-queue flush, clean pass or repair
            // runs meanwhile (as for a truncation), and no raw append.
            let _gate = s.log_gate.write_locked();
            s.commitlog.switch_writer(false, || {
                s.dispatcher.dispatch_available(
                    &s.commitlog,
                    &s.cqs,
                    s.index.as_ref(),
                    &s.arrivals,
                )?;
                let mut table: HashMap<String, Vec<u64>> = HashMap::new();
                for cq in s.cqs.all() {
                    let v = table.entry(cq.topic().to_string()).or_default();
                    let q = cq.queue_id() as usize;
                    if v.len() <= q {
                        v.resize(q + 1, 0);
                    }
                    v[q] = cq.max_offset();
                }
                // Topics the master created (known from its records) take
                // puts with their queue counts, not auto-created defaults.
                s.learn_dispatched_topics();
                s.set_role(role);
                Ok(Some(table))
            })?;
        }
        s.role_gate.set(true);
        s.schedule_waker.wake();
        s.timer.waker.wake();
        if s.cfg.transient_store_pool_enable && !s.commitlog.pooled() {
            tracing::info!(
                "transientStorePoolEnable: a store opened as slave has no transient store \
                 pool; as master it writes the commitlog files directly"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commitlog::RecordSlot;
    use crate::message::{encode_record, Message};

    /// A put that read the role before a switch to slave and reaches the
    /// commitlog after it is refused there, under the put lock: nothing is
    /// appended after the switch. Raw appends on a master are refused there
    /// too.
    #[test]
    fn the_put_lock_decides_who_writes() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = crate::StoreConfig::new(dir.path());
        cfg.mapped_file_size_commit_log = 64 * 1024;
        cfg.mapped_file_size_consume_queue = 2000;
        let store = MessageStore::open(cfg).unwrap();
        let host = "127.0.0.1:10911".parse().unwrap();
        // What a put does once past its role check.
        let append = || {
            let mut buf = Vec::new();
            let layout = encode_record(&Message::new("T", b"x".to_vec()), &host, &mut buf);
            let slot = RecordSlot {
                start: 0,
                store_timestamp_pos: layout.store_timestamp_pos,
            };
            store.inner.commitlog.append(
                buf.len(),
                |dst| dst.copy_from_slice(&buf),
                &[slot],
                "T",
                0,
                true,
            )
        };
        append().unwrap();
        store.change_role(BrokerRole::Slave).unwrap();
        let end = store.commit_log_max_offset();
        assert!(matches!(append(), Err(Error::WrongRole(_))));
        assert_eq!(store.commit_log_max_offset(), end);
        store.change_role(BrokerRole::AsyncMaster).unwrap();
        assert_eq!(append().unwrap().queue_offset, 1);
        let end = store.commit_log_max_offset();
        assert!(matches!(
            store.inner.commitlog.append_raw(end, b"x"),
            Err(Error::WrongRole(_))
        ));
        store.shutdown().unwrap();
    }
}
