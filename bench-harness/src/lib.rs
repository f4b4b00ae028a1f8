//! `ferromq-bench`: load generator, baselines and reports for ferromq.

pub mod error;
pub mod workload;
