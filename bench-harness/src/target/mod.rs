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
