//! Systems a workload can be run against.
//!
//! - [`engine`]: the embedded `ferromq-engine`, in-process, through the
//!   synchronous [`crate::workload::Target`] trait;
//! - [`broker`]: any broker speaking RocketMQ's remoting protocol, through the
//!   async pipelined driver [`broker::drive`] (same `Workload`, same measurement),
//!   and its pull consumers [`consumer`] for send -> consume latency;
//! - [`null_broker`]: a server that answers SUCCESS at once, to measure the
//!   client's own cost.

pub mod broker;
pub mod consumer;
pub mod engine;
pub mod null_broker;
pub mod open_loop;

/// A task's error count and the first error's text.
#[derive(Debug, Default)]
pub(crate) struct ErrorTally {
    /// Errors seen.
    pub count: u64,
    /// The first one.
    pub first: Option<String>,
}

impl ErrorTally {
    /// Count `e`, keeping its text if it is the first.
    pub fn record(&mut self, e: impl Into<String>) {
        self.count += 1;
        if self.first.is_none() {
            self.first = Some(e.into());
        }
    }

    /// Add a task's tally to a measurement's `count` and `first`.
    pub fn add_to(self, count: &mut u64, first: &mut Option<String>) {
        *count += self.count;
        if first.is_none() {
            *first = self.first;
        }
    }
}
