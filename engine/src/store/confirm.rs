//! The confirm offset: how far readers may see the log.
//!
//! In RocketMQ 5's controller mode a master exposes to consumers only what
//! every replica of its SyncStateSet has (its confirm offset): a record past
//! it may still be cut if the master fails and another replica, which never
//! got it, takes over, and a consumer must not have read it then. ferromq
//! does this at dispatch: records past the confirm offset get no
//! consume-queue unit and no index entry until the offset passes their end,
//! so pulls, queries, delayed and timer deliveries see only confirmed
//! records. The replication layer sets it; a store without it dispatches
//! everything as soon as it is written.

use super::MessageStore;

impl MessageStore {
    /// Let readers see the log only up to `offset` (`None`: all of it). A
    /// record is dispatched once it ends at or before the offset. Lowering it
    /// below what is already dispatched hides nothing that was dispatched.
    pub fn set_confirm_offset(&self, offset: Option<u64>) {
        let s = &self.inner;
        let limit = offset.unwrap_or(u64::MAX);
        let old = s.dispatcher.set_limit(limit);
        // As after a put: the dispatcher, which looks every millisecond
        // anyway, is woken at once only for consumers waiting on arrivals
        // (a wake per acknowledgement costs a context switch each).
        if limit > old && s.arrivals.has_interest() {
            s.dispatcher.waker.wake();
        }
    }

    /// The confirm offset [`MessageStore::set_confirm_offset`] set, if any.
    pub fn confirm_offset(&self) -> Option<u64> {
        match self.inner.dispatcher.limit() {
            u64::MAX => None,
            o => Some(o),
        }
    }
}
