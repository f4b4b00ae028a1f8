//! `ferromq-namesrv`: the name server binary.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ferromq_engine::config::Properties;
use ferromq_server::controller::{ControllerServer, ControllerServerConfig};
use ferromq_server::namesrv::{self, NamesrvConfig};
use ferromq_server::remoting::tls::TlsSettings;
use ferromq_server::util::{init_logging, raise_fd_limit, shutdown_signal};
use tokio::sync::watch;

/// RocketMQ-compatible name server.
#[derive(Parser, Debug)]
#[command(name = "ferromq-namesrv", version, about)]
struct Args {
    /// Properties file (`listenPort`, `bindAddress`, ...).
    #[arg(short = 'c', long = "configFile")]
    config: Option<PathBuf>,
    /// Address to bind (overrides `bindAddress`; default `0.0.0.0`).
    #[arg(short = 'b', long = "bind-address")]
    bind_address: Option<String>,
    /// Print the effective configuration and exit.
    #[arg(short = 'p', long = "printConfigItem")]
    print: bool,
}

fn main() -> ExitCode {
    init_logging();
    let args = Args::parse();
    // Before the configuration: the default serverMaxConnections derives from
    // the raised limit.
    raise_fd_limit();
    let props = match &args.config {
        Some(p) => match Properties::from_file(p) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("ferromq-namesrv: cannot read {}: {e}", p.display());
                return ExitCode::FAILURE;
            }
        },
        None => Properties::new(),
    };
    let mut cfg = match NamesrvConfig::from_properties(&props) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ferromq-namesrv: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(b) = &args.bind_address {
        cfg.bind_address = b.clone();
    }
    let tls = match TlsSettings::from_properties(&props) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("ferromq-namesrv: {e}");
            return ExitCode::FAILURE;
        }
    };
    let metrics = match ferromq_server::metrics::MetricsConfig::from_properties(&props) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("ferromq-namesrv: {e}");
            return ExitCode::FAILURE;
        }
    };
    // enableControllerInNamesrv: the controller's keys come from the same
    // file, and a controller that cannot start stops the name server too.
    let controller = if cfg.enable_controller_in_namesrv {
        match ControllerServerConfig::from_shared_properties(&props) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("ferromq-namesrv: enableControllerInNamesrv=true: controller: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    if args.print {
        print!(
            "{}{}{}{}",
            cfg.to_properties(),
            tls.to_properties(),
            metrics.to_properties(),
            controller
                .as_ref()
                .map(ControllerServerConfig::to_properties)
                .unwrap_or_default()
        );
        return ExitCode::SUCCESS;
    }
    // A secured name server with no usable ACL file stops here, never
    // taking registrations from anyone.
    let acl = match ferromq_server::acl::load_broker_rules(
        cfg.acl_enable,
        cfg.acl_file_path.as_deref(),
    ) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ferromq-namesrv: {e}");
            return ExitCode::FAILURE;
        }
    };
    // A damaged KV config file stops the start: starting empty would drop
    // every item without a word.
    let kv = match namesrv::KvConfigManager::load(&cfg.kv_config_path) {
        Ok(kv) => kv,
        Err(e) => {
            eprintln!("ferromq-namesrv: {e}");
            return ExitCode::FAILURE;
        }
    };
    let tls_server = match tls.server.build() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("ferromq-namesrv: TLS: {e}");
            return ExitCode::FAILURE;
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("namesrv-io")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ferromq-namesrv: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let addr = match cfg.bind_addr() {
            Ok(a) => a,
            Err(e) => {
                eprintln!("ferromq-namesrv: {e}");
                return ExitCode::FAILURE;
            }
        };
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("ferromq-namesrv: cannot bind {addr}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let local = listener.local_addr().unwrap_or(addr);
        let metrics_listener = match metrics.bind_addr(&cfg.bind_address) {
            Ok(None) => None,
            Ok(Some(a)) => match tokio::net::TcpListener::bind(a).await {
                Ok(l) => Some(l),
                Err(e) => {
                    eprintln!(
                        "ferromq-namesrv: cannot bind the metrics port {a} (metricsPromExporterHost/Port): {e}"
                    );
                    return ExitCode::FAILURE;
                }
            },
            Err(e) => {
                eprintln!("ferromq-namesrv: {e}");
                return ExitCode::FAILURE;
            }
        };
        // Started before the name server announces itself: a controller
        // that cannot start (port taken, store unusable) is a failed start.
        let controller = match controller {
            Some(c) => match ControllerServer::launch(c, "ferromq-namesrv controller").await {
                Ok(s) => Some(s),
                Err(e) => {
                    eprintln!("ferromq-namesrv: enableControllerInNamesrv=true: {e}");
                    return ExitCode::FAILURE;
                }
            },
            None => None,
        };
        println!("ferromq-namesrv listening on {local}");
        if let Some(m) = metrics_listener.as_ref().and_then(|l| l.local_addr().ok()) {
            println!("ferromq-namesrv metrics http://{m}/metrics");
        }
        let _ = std::io::stdout().flush();
        tracing::info!(%local, "name server started");
        let (stop_tx, stop_rx) = watch::channel(false);
        if let Some(t) = &tls_server {
            tracing::info!(mode = t.mode().as_str(), "TLS on the name server port");
        }
        let server = tokio::spawn(namesrv::run(
            cfg,
            acl,
            kv,
            listener,
            tls_server,
            metrics_listener,
            stop_rx,
        ));
        shutdown_signal().await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
        let _ = server.await;
        if let Some(c) = controller {
            c.shutdown().await;
            tracing::info!("controller stopped");
        }
        ExitCode::SUCCESS
    })
}
