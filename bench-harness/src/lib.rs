//! `ferromq-bench`: load generator, baselines and reports for ferromq.

pub mod baseline;
pub mod error;
pub mod machine;
pub mod report;
pub mod results;
pub mod workload;
