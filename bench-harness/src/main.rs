//! `ferromq-bench`: load generator and reports for ferromq.
//!
//! `ferromq-bench` alone, or `ferromq-bench store` with no flags, runs the
//! default store suite and writes `results/<UTC timestamp>-<host>/`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ferromq_bench::broker::{run_broker, BrokerArgs};
use ferromq_bench::compare::{run_compare, CompareArgs};
use ferromq_bench::criterion_summary::{run_criterion_summary, CriterionArgs};
use ferromq_bench::disk::{run_disk, DiskArgs};
use ferromq_bench::error::Result;
use ferromq_bench::failover::{run_failover, FailoverArgs};
use ferromq_bench::recover::{run_recover, run_writer, RecoverArgs, WriterArgs};
use ferromq_bench::store::{run_store, StoreArgs};
use ferromq_bench::sweep::{run_sweep, SweepArgs};

/// Load generator, baselines and reports for ferromq.
#[derive(Debug, Parser)]
#[command(name = "ferromq-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Drive the embedded engine in-process, with baselines on the same directory.
    /// Without workload flags: the default suite (under a minute).
    Store(StoreArgs),
    /// Drive a RocketMQ-protocol broker (or the in-process null broker) with the pipelined client.
    Broker(BrokerArgs),
    /// Sweep broker/store/workload settings against fresh brokers and write a report.
    Sweep(SweepArgs),
    /// Run one workload against two brokers (A B A B ...) and report B/A per point.
    Compare(CompareArgs),
    /// Raw limits of a directory's device: sequential write, 4 KiB write + fdatasync, memcpy into mapped files.
    Disk(DiskArgs),
    /// Gather `cargo bench` results (target/criterion) into a markdown table.
    CriterionSummary(CriterionArgs),
    /// Time the reopen of a crashed store against a plain read + CRC32 of its commitlog.
    Recover(RecoverArgs),
    /// Controller mode: SIGKILL the master of a three-replica group N times under load and time
    /// the recovery (SIGKILL -> first acknowledged send on the new master).
    Failover(FailoverArgs),
    /// Internal: the crashed store's writer process (started by `recover`).
    #[command(name = "__recover-writer", hide = true)]
    RecoverWriter(WriterArgs),
}

fn main() -> ExitCode {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let argv: Vec<String> = std::env::args().collect();
    let cli = Cli::parse();
    let result: Result<i32> = match cli.command {
        Some(Command::Store(args)) => run_store(&args, &argv),
        None => run_store(&StoreArgs::default(), &argv),
        Some(Command::Recover(args)) => run_recover(&args),
        Some(Command::Failover(args)) => run_failover(&args, &argv),
        Some(Command::Broker(args)) => run_broker(&args),
        Some(Command::Sweep(args)) => run_sweep(&args, &argv),
        Some(Command::Disk(args)) => run_disk(&args),
        Some(Command::Compare(args)) => run_compare(&args, &argv),
        Some(Command::CriterionSummary(args)) => run_criterion_summary(&args),
        Some(Command::RecoverWriter(args)) => run_writer(&args).map(|()| 0),
    };
    match result {
        Ok(0) => ExitCode::SUCCESS,
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
