//! END_TRANSACTION (37): RocketMQ 4.9's `EndTransactionProcessor`, plus the
//! once-only rule of [`TransactionBook`](super::TransactionBook).

use std::sync::Arc;

use ferromq_engine::message::{keys, sys_flag};
use ferromq_engine::{BrokerRole, MessageExt};

use super::{op_message, origin_of, to_commit, Claim, EndTransactionHeader, HALF_TOPIC, OP_TOPIC};
use crate::broker::dispatch::{HandlerResult, Request};
use crate::broker::{store_error_response, Broker};
use crate::remoting::{response, RemotingCommand};

const PERM_READ_WRITE: u32 = 6;

/// Whether the named failpoint is set in [`FAILPOINT_ENV`](super::FAILPOINT_ENV)
/// (read once). Only with the `fault-injection` feature (tests).
#[cfg(feature = "fault-injection")]
pub(crate) fn failpoint(name: &str) -> bool {
    static SET: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    SET.get_or_init(|| std::env::var(super::FAILPOINT_ENV).ok())
        .as_deref()
        .is_some_and(|v| v.split(',').any(|p| p.trim() == name))
}

impl Broker {
    /// END_TRANSACTION. Oneway requests run the same way; the server drops the
    /// answer. The commit or rollback runs on the request's executor (the send
    /// pool, from the table).
    pub(in crate::broker) async fn end_transaction(
        self: &Arc<Self>,
        req: Request<'_>,
    ) -> HandlerResult {
        let h = EndTransactionHeader::parse(&req.cmd.ext_fields)?;
        if self.store.role() == BrokerRole::Slave {
            tracing::warn!("Message store is slave mode, so end transaction is forbidden.");
            return Ok(RemotingCommand::error(
                response::SLAVE_NOT_AVAILABLE,
                "the broker is a slave: end transaction is forbidden",
            ));
        }
        if h.commit_or_rollback == sys_flag::TRANSACTION_NOT_TYPE {
            // RocketMQ answers nothing here; a oneway caller sees no difference,
            // a two-way caller gets an answer instead of a timeout.
            tracing::debug!(
                group = %h.producer_group,
                offset = h.tran_state_table_offset,
                from_check = h.from_transaction_check,
                "end transaction with unknown state; the check-back will ask again"
            );
            return Ok(RemotingCommand::response(
                response::SUCCESS,
                Some("transaction state unknown: the broker will check back".into()),
            ));
        }
        self.run_on(req.on, "end transaction", move |b| {
            b.end_transaction_blocking(&h)
        })
        .await
    }

    /// The half record named by an END_TRANSACTION, checked as
    /// `EndTransactionProcessor.checkPrepareMessage` does.
    fn prepared_message(&self, h: &EndTransactionHeader) -> Result<MessageExt, RemotingCommand> {
        let half = match self.store.look_message_by_offset(h.commit_log_offset) {
            Ok(Some(m)) if m.topic == HALF_TOPIC => m,
            Ok(_) | Err(_) => {
                return Err(RemotingCommand::error(
                    response::SYSTEM_ERROR,
                    "Find prepared transaction message failed",
                ))
            }
        };
        if half.properties.get(keys::PGROUP) != Some(h.producer_group.as_str()) {
            return Err(RemotingCommand::error(
                response::SYSTEM_ERROR,
                "The producer group wrong",
            ));
        }
        if half.queue_offset != h.tran_state_table_offset {
            return Err(RemotingCommand::error(
                response::SYSTEM_ERROR,
                "The transaction state table offset wrong",
            ));
        }
        if half.commit_log_offset != h.commit_log_offset {
            return Err(RemotingCommand::error(
                response::SYSTEM_ERROR,
                "The commit log offset wrong",
            ));
        }
        Ok(half)
    }

    /// Runs on the send pool.
    fn end_transaction_blocking(&self, h: &EndTransactionHeader) -> RemotingCommand {
        let half = match self.prepared_message(h) {
            Ok(m) => m,
            Err(r) => return r,
        };
        let origin = origin_of(&half);
        match self.txn.claim(origin) {
            Claim::Granted => {}
            Claim::AlreadyDecided | Claim::InFlight => {
                tracing::info!(
                    origin,
                    offset = h.tran_state_table_offset,
                    commit = h.commit_or_rollback == sys_flag::TRANSACTION_COMMIT_TYPE,
                    "transaction already decided; this decision has no effect"
                );
                return RemotingCommand::response(
                    response::SUCCESS,
                    Some("transaction already decided".into()),
                );
            }
        }
        if h.commit_or_rollback == sys_flag::TRANSACTION_COMMIT_TYPE {
            let m = match to_commit(&half) {
                Ok(m) => m,
                Err(why) => {
                    self.txn.finish(origin, false);
                    return RemotingCommand::error(response::SYSTEM_ERROR, why);
                }
            };
            if let Err(e) = self.store.put_message(&m) {
                self.txn.finish(origin, false);
                return store_error_response(&e);
            }
            self.stats.add_put(1);
            #[cfg(feature = "fault-injection")]
            if failpoint("after_commit_before_op") {
                tracing::error!(origin, "failpoint after_commit_before_op: aborting");
                std::process::abort();
            }
            match self.write_op(&half, origin) {
                Ok(()) => self.txn.finish(origin, true),
                // The commit is in the log: the claim stays in flight (no second
                // commit, no check-back past it) and the start-up scan writes the
                // missing op record.
                Err(e) => {
                    tracing::error!(origin, error = %e, "op record after a commit not written; it is written at the next start")
                }
            }
            RemotingCommand::success()
        } else {
            match self.write_op(&half, origin) {
                Ok(()) => {
                    self.txn.finish(origin, true);
                    RemotingCommand::success()
                }
                Err(e) => {
                    self.txn.finish(origin, false);
                    store_error_response(&e)
                }
            }
        }
    }

    /// Write the op record ending `half` (transaction `origin`).
    pub(super) fn write_op(
        &self,
        half: &MessageExt,
        origin: u64,
    ) -> Result<(), ferromq_engine::Error> {
        self.ensure_group_topic(OP_TOPIC, 1, PERM_READ_WRITE)?;
        self.store
            .put_message(&op_message(half, origin, half.store_host))?;
        Ok(())
    }

    /// Make sure the half topic exists (1 queue, read/write), as RocketMQ's
    /// `createTopicInSendMessageBackMethod` does on first use.
    pub(in crate::broker) fn ensure_half_topic(&self) -> Result<(), ferromq_engine::Error> {
        self.ensure_group_topic(HALF_TOPIC, 1, PERM_READ_WRITE)
            .map(|_| ())
    }
}
