//! `ferromq-controller`: the standalone controller of RocketMQ 5's
//! automatic failover (controller mode), serving the brokers' controller
//! requests and its Raft peers on its address in `controllerDLegerPeers`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ferromq_engine::config::Properties;
use ferromq_server::controller::{ControllerServer, ControllerServerConfig};
use ferromq_server::util::{init_logging, raise_fd_limit, shutdown_signal};

/// RocketMQ-compatible controller (RocketMQ 5 controller mode).
#[derive(Parser, Debug)]
#[command(name = "ferromq-controller", version, about)]
struct Args {
    /// Properties file (`controllerDLegerPeers`, `controllerDLegerSelfId`, ...).
    #[arg(short = 'c', long = "configFile")]
    config: Option<PathBuf>,
    /// Print the effective configuration and exit.
    #[arg(short = 'p', long = "printConfigItem")]
    print: bool,
}

fn main() -> ExitCode {
    init_logging();
    let args = Args::parse();
    raise_fd_limit();
    let props = match &args.config {
        Some(p) => match Properties::from_file(p) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("ferromq-controller: cannot read {}: {e}", p.display());
                return ExitCode::FAILURE;
            }
        },
        None => Properties::new(),
    };
    let cfg = match ControllerServerConfig::from_properties(&props) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ferromq-controller: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.print {
        print!("{}", cfg.to_properties());
        return ExitCode::SUCCESS;
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("controller-io")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ferromq-controller: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let server = match ControllerServer::launch(cfg, "ferromq-controller").await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("ferromq-controller: {e}");
                return ExitCode::FAILURE;
            }
        };
        shutdown_signal().await;
        tracing::info!("shutting down");
        server.shutdown().await;
        ExitCode::SUCCESS
    })
}
