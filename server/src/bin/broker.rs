//! `ferromq-broker`: the broker binary.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use ferromq_engine::config::Properties;
use ferromq_engine::{MessageStore, StoreConfig};
use ferromq_server::acl::load_broker_rules;
use ferromq_server::broker::metrics::BrokerCollector;
use ferromq_server::broker::{self, split_namesrv_addr_arg, Broker, BrokerConfig};
use ferromq_server::metrics::MetricsConfig;
use ferromq_server::remoting::tls::TlsSettings;
use ferromq_server::util::{init_logging, raise_fd_limit, shutdown_signal};
use tokio::sync::watch;

/// RocketMQ-compatible broker.
#[derive(Parser, Debug)]
#[command(name = "ferromq-broker", version, about)]
struct Args {
    /// Name server addresses, `host:port;host:port` (overrides `namesrvAddr`).
    #[arg(short = 'n', long = "namesrvAddr")]
    namesrv: Option<String>,
    /// Broker properties file (RocketMQ keys).
    #[arg(short = 'c', long = "configFile")]
    config: Option<PathBuf>,
    /// Address to bind (overrides `bindAddress`; default `0.0.0.0`).
    #[arg(short = 'b', long = "bind-address")]
    bind_address: Option<String>,
    /// Print the effective configuration and exit.
    #[arg(short = 'p', long = "printConfigItem")]
    print: bool,
    /// Print the important configuration keys and exit.
    #[arg(short = 'm', long = "printImportantConfig")]
    important: bool,
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("ferromq-broker: {msg}");
    ExitCode::FAILURE
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
            Err(e) => return fail(format!("cannot read {}: {e}", p.display())),
        },
        None => Properties::new(),
    };
    let (mut store_cfg, _warnings) = match StoreConfig::from_properties(&props) {
        Ok(v) => v,
        Err(e) => return fail(e),
    };
    let mut cfg = match BrokerConfig::from_properties(&props, &store_cfg) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    if cfg.controller_mode.is_some() {
        // The controllers give the role; until they do the store takes no
        // puts (brokerRole is only a hint, as in RocketMQ 5).
        if store_cfg.broker_role != ferromq_engine::BrokerRole::Slave {
            tracing::info!(
                hint = store_cfg.broker_role.as_str(),
                "enableControllerMode=true: the store opens as a slave until the controller names a master"
            );
        }
        store_cfg.broker_role = ferromq_engine::BrokerRole::Slave;
    }
    if let Some(b) = &args.bind_address {
        cfg.bind_address = b.clone();
    }
    if let Some(n) = &args.namesrv {
        cfg.namesrv_addr = split_namesrv_addr_arg(n);
    }
    let tls = match TlsSettings::from_properties(&props) {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    let metrics = match MetricsConfig::from_properties(&props) {
        Ok(m) => m,
        Err(e) => return fail(e),
    };
    if args.print || args.important {
        if args.print {
            print!("{}", store_cfg.to_properties());
        }
        print!("{}", cfg.to_properties(args.important && !args.print));
        if args.print {
            print!("{}{}", tls.to_properties(), metrics.to_properties());
        }
        return ExitCode::SUCCESS;
    }
    // Before the store opens: a certificate that cannot be loaded stops here.
    let tls_server = match tls.server.build() {
        Ok(t) => t,
        Err(e) => return fail(format!("TLS: {e}")),
    };
    let tls_client = match tls.client.enable.then(|| tls.client.build()).transpose() {
        Ok(t) => t,
        Err(e) => return fail(format!("TLS (useTLS, tls.client.*): {e}")),
    };
    // Before the store opens: a secured config with no usable ACL file stops
    // here, never serving as an open broker.
    let acl = match load_broker_rules(cfg.acl_enable, cfg.acl_file_path.as_deref()) {
        Ok(a) => a,
        Err(e) => return fail(e),
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("broker-io")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(format!("cannot start the runtime: {e}")),
    };
    rt.block_on(async move {
        let addr = match cfg.bind_addr() {
            Ok(a) => a,
            Err(e) => return fail(e),
        };
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => return fail(format!("cannot bind {addr}: {e}")),
        };
        let local = listener.local_addr().unwrap_or(addr);
        let fast = match cfg.fast_bind_addr() {
            Ok(None) => None,
            Ok(Some(a)) => match tokio::net::TcpListener::bind(a).await {
                Ok(l) => Some(l),
                Err(e) => {
                    return fail(format!(
                        "cannot bind the fast (VIP) port {a} (fastListenPort, by default listenPort - 2; -1 opens none): {e}"
                    ))
                }
            },
            Err(e) => return fail(e),
        };
        let metrics_listener = match metrics.bind_addr(&cfg.bind_address) {
            Ok(None) => None,
            Ok(Some(a)) => match tokio::net::TcpListener::bind(a).await {
                Ok(l) => Some(l),
                Err(e) => {
                    return fail(format!(
                        "cannot bind the metrics port {a} (metricsPromExporterHost/Port): {e}"
                    ))
                }
            },
            Err(e) => return fail(e),
        };
        let configured_listen_port = cfg.listen_port;
        // The port the OS chose is the one msgIds and registrations carry.
        store_cfg.listen_port = local.port();
        cfg.listen_port = local.port();
        let store = match tokio::task::spawn_blocking(move || MessageStore::open(store_cfg)).await {
            Ok(Ok(s)) => Arc::new(s),
            Ok(Err(e)) => return fail(format!("cannot open the store: {e}")),
            Err(e) => return fail(format!("store open task failed: {e}")),
        };
        let broker_addr = format!("{}:{}", cfg.broker_ip1, local.port());
        let b = match Broker::new(cfg, store.clone(), broker_addr.clone(), acl) {
            Ok(b) => b,
            Err(e) => {
                let _ = tokio::task::spawn_blocking(move || store.shutdown()).await;
                return fail(e);
            }
        };
        // UPDATE_BROKER_CONFIG persists its changes there.
        if let Some(p) = &args.config {
            b.set_config_file(std::path::absolute(p).unwrap_or_else(|_| p.clone()));
        }
        // Before HA starts: a slave follows its master over TLS too.
        if let Some(t) = tls_client {
            tracing::info!("the broker's own calls (name servers, master, HA) use TLS");
            b.use_tls_for_outgoing(t);
        }
        if let Err(e) = b.start_ha(local.ip(), configured_listen_port, tls_server.as_ref()) {
            drop(b);
            let _ = tokio::task::spawn_blocking(move || store.shutdown()).await;
            return fail(e);
        }
        println!("ferromq-broker listening on {local} as {broker_addr}");
        if let Some(f) = fast.as_ref().and_then(|f| f.local_addr().ok()) {
            println!("ferromq-broker fast port {f}");
        }
        if let Some(port) = b.ha().and_then(|h| h.master_port()) {
            println!("ferromq-broker HA port {}:{port}", local.ip());
        }
        if let Some(m) = metrics_listener.as_ref().and_then(|l| l.local_addr().ok()) {
            println!("ferromq-broker metrics http://{m}/metrics");
        }
        let _ = std::io::stdout().flush();
        tracing::info!(%local, %broker_addr, "broker started");
        let (stop_tx, stop_rx) = watch::channel(false);
        let metrics_task = metrics_listener.map(|l| {
            let registry = ferromq_server::metrics::registry_of(BrokerCollector::new(&b));
            tokio::spawn(ferromq_server::metrics::serve(l, registry, stop_rx.clone()))
        });
        if let Some(t) = &tls_server {
            tracing::info!(mode = t.mode().as_str(), "TLS on the client port");
        }
        let server = tokio::spawn(broker::run(b.clone(), listener, fast, tls_server, stop_rx));
        shutdown_signal().await;
        tracing::info!("shutting down: stop accepting, finish in-flight requests, unregister");
        let _ = stop_tx.send(true);
        let _ = server.await;
        if let Some(t) = metrics_task {
            let _ = t.await;
        }
        if let Some(h) = b.ha() {
            h.shutdown();
        }
        drop(b);
        match tokio::task::spawn_blocking(move || store.shutdown()).await {
            Ok(Ok(())) => {
                tracing::info!("store shut down cleanly");
                ExitCode::SUCCESS
            }
            Ok(Err(e)) => fail(format!("store shutdown: {e}")),
            Err(e) => fail(format!("store shutdown task: {e}")),
        }
    })
}
