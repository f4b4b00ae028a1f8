//! `ferromq-bench`: load generator, baselines and reports for ferromq.
//!
//! One workload ([`workload::Workload`]) runs through one trait
//! ([`workload::Target`]) against many targets; today the embedded engine
//! in-process (`ferromq-bench store`). Every run is measured next to its
//! baselines on the same directory ([`baseline`]), and written as a report
//! folder with the machine it ran on ([`report`], [`machine`]).
//!
//! ```no_run
//! use ferromq_bench::store::{run_store, StoreArgs};
//! // The default suite, report into results/.
//! let code = run_store(&StoreArgs::default(), &["ferromq-bench".to_string()])?;
//! # Ok::<(), ferromq_bench::error::BenchError>(())
//! ```

pub mod baseline;
pub mod broker;
pub mod error;
pub mod machine;
pub mod recover;
pub mod report;
pub mod results;
pub mod store;
pub mod sweep;
pub mod sweep_report;
pub mod target;
pub mod workload;
