//! `ferromq-bench`: load generator, baselines and reports for ferromq.
//!
//! One workload ([`workload::Workload`]) runs against many targets: the
//! embedded engine in-process through the [`workload::Target`] trait
//! (`ferromq-bench store`), and any RocketMQ-protocol broker through the
//! pipelined client of [`target::broker`] (`ferromq-bench broker`, and
//! `ferromq-bench sweep`, which starts fresh brokers per point and writes a
//! report with plots and recommended settings, [`sweep`], [`sweep_report`]).
//! `ferromq-bench compare` runs one workload against two brokers, A B A B,
//! and reports B/A point by point ([`compare`]).
//! `ferromq-bench recover` times crash recovery against read + CRC32
//! ([`recover`]); `disk` measures the device's raw limits ([`disk`]);
//! `broker --transactional` compares plain and transactional sends ([`txn`]);
//! `criterion-summary` tabulates `cargo bench` results ([`criterion_summary`]). Every run is measured next to its
//! baselines on the same directory ([`baseline`]), and written as a report
//! folder with the machine it ran on ([`report`], [`machine`]).
//!
//!
//! Layout: every subcommand is a folder under [`cmd`], its flags and its run
//! in `mod.rs`, what it prints or writes in `report.rs`. Below them: child
//! processes ([`child`]), shared flags ([`cli`]), statistics ([`stats`]),
//! plots ([`plot`]), markdown tables ([`table`]), what every report folder
//! shares ([`reporting`]), the workload runner ([`workload`]) and its targets
//! ([`target`]). `bench-harness/README.md` has the map file by file.
//!
//! ```no_run
//! use ferromq_bench::store::{run_store, StoreArgs};
//! // The default suite, report into results/.
//! let code = run_store(&StoreArgs::default(), &["ferromq-bench".to_string()])?;
//! # Ok::<(), ferromq_bench::error::BenchError>(())
//! ```

pub mod baseline;
pub mod child;
pub mod cli;
pub mod cmd;
pub mod error;
pub mod loopback;
pub mod machine;
pub mod plot;
pub mod proc_cpu;
pub mod reporting;
pub mod results;
pub mod stats;
pub mod table;
pub mod target;
pub mod thread_usage;
pub mod txn;
pub mod workload;

// The subcommands under their old paths.
pub use cmd::store::report;
pub use cmd::sweep::report as sweep_report;
pub use cmd::{broker, compare, criterion_summary, disk, failover, recover, store, sweep};
