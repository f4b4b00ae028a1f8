//! Systems a workload can be run against; each implements
//! [`crate::workload::Target`].
//!
//! - [`engine`]: the embedded `ferromq-engine`, in-process.
//!
//! A broker reached over RocketMQ's protocol will be another module here.

pub mod engine;
