//! The name server: a broker registry and topic router (RocketMQ `mqnamesrv`).
//!
//! Brokers register every 30 s with their topics; a broker silent for
//! `brokerChannelExpiredTime` (120 s) or whose connection closes is dropped.
//! Clients ask for a topic's route (`GET_ROUTEINFO_BY_TOPIC`). Several name
//! servers run side by side without talking to each other.

pub mod kvconfig;
pub mod metrics;
mod processor;
pub mod route;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ferromq_engine::config::Properties;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use kvconfig::KvConfigManager;
pub use processor::{NameServer, ADMIN_REQUESTS};
pub use route::RouteInfoManager;

use crate::remoting::server::{
    default_max_connections, DEFAULT_IDLE_SECS, DEFAULT_MAX_QUEUED_REPLY_BYTES,
    DEFAULT_MAX_QUEUED_REPLY_BYTES_TOTAL, MAX_IDLE_SECS, NAMESRV_FD_RESERVE,
};

/// The name server's default `serverMaxRequestsPerConnection`: 64. Its clients
/// ask one thing at a time (routes, registrations; nothing is held like a long
/// poll), and every request in progress is work a client that never reads can
/// queue: 64 topic lists of a large cluster are already seconds of CPU.
pub const NAMESRV_MAX_REQUESTS_PER_CONNECTION: usize = 64;
use crate::remoting::{serve, ServerConfig, DEFAULT_MAX_FRAME_BYTES};

/// Keys `mqnamesrv` accepts that ferromq reads but does not act on.
const IGNORED_KEYS: &[&str] = &[
    "rocketmqHome",
    "configStorePath",
    "productEnvName",
    "clusterTest",
    "serverWorkerThreads",
    "serverCallbackExecutorThreads",
    "serverSelectorThreads",
    "serverOnewaySemaphoreValue",
    "serverAsyncSemaphoreValue",
    "serverSocketSndBufSize",
    "serverSocketRcvBufSize",
    "serverSocketBacklog",
    "serverPooledByteBufAllocatorEnable",
    "useEpollNativeSelector",
];

/// Name server settings (`namesrv.properties`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamesrvConfig {
    /// `listenPort`: TCP port. Default 9876; 0 lets the OS choose.
    pub listen_port: u16,
    /// `bindAddress` (ferromq key): address to bind. Default `0.0.0.0`.
    pub bind_address: String,
    /// `brokerChannelExpiredTime` (ferromq key): ms without registration before a
    /// broker is dropped. Default 120 000.
    pub broker_channel_expired_time_ms: u64,
    /// `scanNotActiveBrokerInterval` (ferromq key): ms between expiry scans. Default 10 000.
    pub scan_not_active_broker_interval_ms: u64,
    /// `serverMaxFrameBytes` (ferromq key): largest frame accepted. Default 16 MiB.
    pub max_frame_bytes: usize,
    /// `serverChannelMaxIdleTimeSeconds`: a connection with nothing read, written
    /// or in progress for this long is closed; 0: never. Default 120.
    pub server_channel_max_idle_time_seconds: i64,
    /// `serverMaxRequestsPerConnection` (ferromq key): requests in progress per
    /// connection before it is no longer read. Default 64
    /// ([`NAMESRV_MAX_REQUESTS_PER_CONNECTION`]).
    pub server_max_requests_per_connection: usize,
    /// `serverMaxQueuedReplyBytes` (ferromq key): response bytes waiting for a
    /// connection's writer before it is no longer read. Default 4 MiB.
    pub server_max_queued_reply_bytes: usize,
    /// `serverMaxQueuedReplyBytesTotal` (ferromq key): response bytes waiting
    /// for all connections' writers together before no connection is read.
    /// Default 256 MiB.
    pub server_max_queued_reply_bytes_total: usize,
    /// `serverMaxConnections` (ferromq key): connections open at once; more are
    /// closed at once. Default: the open-file limit less 64 (or a quarter) for
    /// other files, at most 65 536
    /// ([`default_max_connections`]).
    pub server_max_connections: usize,
    /// `aclEnable` (a ferromq extension at the name server): take
    /// REGISTER_BROKER and UNREGISTER_BROKER only from admin accounts of the
    /// plain ACL rules ([`crate::acl::cluster`]). Route queries stay open, as
    /// in RocketMQ. Default false.
    pub acl_enable: bool,
    /// `aclFilePath`: the ACL file (or folder) instead of
    /// `$ROCKETMQ_HOME/conf/plain_acl.yml` and `conf/acl/`, as the broker's
    /// key. Default: unset.
    pub acl_file_path: Option<std::path::PathBuf>,
    /// `kvConfigPath`: the KV config file. Default
    /// `$HOME/namesrv/kvConfig.json`, as RocketMQ.
    pub kv_config_path: std::path::PathBuf,
    /// `orderMessageEnable`: routes carry `orderTopicConf`, the topic's value
    /// in the KV namespace ORDER_TOPIC_CONFIG. Default false, as RocketMQ.
    pub order_message_enable: bool,
    /// `enableControllerInNamesrv`: also run the controller (RocketMQ 5
    /// controller mode) in this process, configured by the controller keys
    /// of the same file ([`crate::controller::ControllerServerConfig`]) and
    /// serving on its own address in `controllerDLegerPeers`. Default false.
    pub enable_controller_in_namesrv: bool,
}

impl Default for NamesrvConfig {
    fn default() -> Self {
        NamesrvConfig {
            listen_port: 9876,
            bind_address: "0.0.0.0".to_string(),
            broker_channel_expired_time_ms: 120_000,
            scan_not_active_broker_interval_ms: 10_000,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            server_channel_max_idle_time_seconds: DEFAULT_IDLE_SECS as i64,
            server_max_requests_per_connection: NAMESRV_MAX_REQUESTS_PER_CONNECTION,
            server_max_queued_reply_bytes: DEFAULT_MAX_QUEUED_REPLY_BYTES,
            server_max_queued_reply_bytes_total: DEFAULT_MAX_QUEUED_REPLY_BYTES_TOTAL,
            server_max_connections: default_max_connections(NAMESRV_FD_RESERVE),
            acl_enable: false,
            acl_file_path: None,
            kv_config_path: kvconfig::default_kv_config_path(),
            order_message_enable: false,
            enable_controller_in_namesrv: false,
        }
    }
}

/// A bad value in a properties file.
#[derive(Debug, thiserror::Error)]
#[error("bad config value for `{key}`: `{value}` (expected {expected})")]
pub struct ConfigError {
    /// Key.
    pub key: String,
    /// Value as given.
    pub value: String,
    /// What is accepted.
    pub expected: &'static str,
}

/// Read a trimmed value and parse it.
///
/// # Errors
/// [`ConfigError`] naming the key, the value and what was expected.
pub fn parse_key<T: std::str::FromStr>(
    props: &Properties,
    key: &str,
    expected: &'static str,
) -> Result<Option<T>, ConfigError> {
    match props.get(key) {
        None => Ok(None),
        Some(v) => {
            let t = v.trim_matches(char::is_whitespace);
            if t.is_empty() {
                return Ok(None);
            }
            t.parse::<T>().map(Some).map_err(|_| ConfigError {
                key: key.to_string(),
                value: t.to_string(),
                expected,
            })
        }
    }
}

/// Parse a RocketMQ boolean (`true`/`false`, any case).
///
/// # Errors
/// [`ConfigError`] for anything else.
pub fn parse_bool_key(props: &Properties, key: &str) -> Result<Option<bool>, ConfigError> {
    match props.get(key).map(|v| v.trim_matches(char::is_whitespace)) {
        None | Some("") => Ok(None),
        Some(t) if t.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(t) if t.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(t) => Err(ConfigError {
            key: key.to_string(),
            value: t.to_string(),
            expected: "true or false",
        }),
    }
}

impl NamesrvConfig {
    /// Read the keys from parsed properties; unknown keys are logged and ignored.
    ///
    /// # Errors
    /// [`ConfigError`] for a value of the wrong form.
    pub fn from_properties(props: &Properties) -> Result<Self, ConfigError> {
        let mut c = NamesrvConfig::default();
        if let Some(v) = parse_key(props, "listenPort", "a TCP port 0..=65535")? {
            c.listen_port = v;
        }
        if let Some(v) = props.get("bindAddress") {
            c.bind_address = v.trim_matches(char::is_whitespace).to_string();
        }
        if let Some(v) = parse_key(props, "brokerChannelExpiredTime", "milliseconds")? {
            c.broker_channel_expired_time_ms = v;
        }
        if let Some(v) = parse_key(props, "scanNotActiveBrokerInterval", "milliseconds")? {
            c.scan_not_active_broker_interval_ms = v;
        }
        if let Some(v) = parse_key(props, "serverMaxFrameBytes", "a byte count")? {
            c.max_frame_bytes = v;
        }
        if let Some(v) = parse_key::<i64>(props, "serverChannelMaxIdleTimeSeconds", "seconds")? {
            // Clamped: a timer that far ahead would overflow the clock.
            c.server_channel_max_idle_time_seconds = v.min(MAX_IDLE_SECS as i64);
        }
        if let Some(v) =
            parse_key::<usize>(props, "serverMaxRequestsPerConnection", "a request count")?
        {
            c.server_max_requests_per_connection = v.max(1);
        }
        if let Some(v) = parse_key::<usize>(props, "serverMaxQueuedReplyBytes", "a byte count")? {
            c.server_max_queued_reply_bytes = v.max(1);
        }
        if let Some(v) =
            parse_key::<usize>(props, "serverMaxQueuedReplyBytesTotal", "a byte count")?
        {
            c.server_max_queued_reply_bytes_total = v.max(1);
        }
        if let Some(v) = parse_key::<usize>(props, "serverMaxConnections", "a connection count")? {
            c.server_max_connections = v.max(1);
        }
        if let Some(v) = parse_bool_key(props, "aclEnable")? {
            c.acl_enable = v;
        }
        if let Some(v) = props.get("aclFilePath") {
            let v = v.trim_matches(char::is_whitespace);
            c.acl_file_path = (!v.is_empty()).then(|| v.into());
        }
        if let Some(v) = props.get("kvConfigPath") {
            let v = v.trim_matches(char::is_whitespace);
            if !v.is_empty() {
                c.kv_config_path = v.into();
            }
        }
        if let Some(v) = parse_bool_key(props, "orderMessageEnable")? {
            c.order_message_enable = v;
        }
        if let Some(v) = parse_bool_key(props, "enableControllerInNamesrv")? {
            c.enable_controller_in_namesrv = v;
        }
        for (k, _) in props.iter() {
            // scanNotActiveBrokerInterval is both servers' key (each reads it).
            if (crate::controller::KEYS.contains(&k) || k == "controllerType")
                && k != "scanNotActiveBrokerInterval"
            {
                if !c.enable_controller_in_namesrv {
                    tracing::warn!(
                        key = k,
                        "controller key ignored: enableControllerInNamesrv is not true"
                    );
                }
                continue;
            }
            let known = [
                "metricsExporterType",
                "metricsPromExporterHost",
                "metricsPromExporterPort",
                "kvConfigPath",
                "orderMessageEnable",
                "enableControllerInNamesrv",
                "aclEnable",
                "aclFilePath",
                "listenPort",
                "bindAddress",
                "brokerChannelExpiredTime",
                "scanNotActiveBrokerInterval",
                "serverMaxFrameBytes",
                "serverChannelMaxIdleTimeSeconds",
                "serverMaxRequestsPerConnection",
                "serverMaxQueuedReplyBytes",
                "serverMaxQueuedReplyBytesTotal",
                "serverMaxConnections",
            ];
            if !known.contains(&k)
                && !IGNORED_KEYS.contains(&k)
                && !crate::remoting::tls::TLS_KEYS.contains(&k)
            {
                tracing::warn!(key = k, "unknown name server key ignored");
            }
        }
        Ok(c)
    }

    /// The effective settings as `key=value` lines.
    pub fn to_properties(&self) -> String {
        format!(
            "listenPort={}\nbindAddress={}\nbrokerChannelExpiredTime={}\nscanNotActiveBrokerInterval={}\nserverMaxFrameBytes={}\n\
             serverChannelMaxIdleTimeSeconds={}\nserverMaxRequestsPerConnection={}\nserverMaxQueuedReplyBytes={}\n\
             serverMaxQueuedReplyBytesTotal={}\nserverMaxConnections={}\naclEnable={}\naclFilePath={}\n\
             kvConfigPath={}\norderMessageEnable={}\nenableControllerInNamesrv={}\n",
            self.listen_port,
            self.bind_address,
            self.broker_channel_expired_time_ms,
            self.scan_not_active_broker_interval_ms,
            self.max_frame_bytes,
            self.server_channel_max_idle_time_seconds,
            self.server_max_requests_per_connection,
            self.server_max_queued_reply_bytes,
            self.server_max_queued_reply_bytes_total,
            self.server_max_connections,
            self.acl_enable,
            self.acl_file_path
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            self.kv_config_path.display(),
            self.order_message_enable,
            self.enable_controller_in_namesrv,
        )
    }

    /// The socket address to bind.
    ///
    /// # Errors
    /// [`ConfigError`] when `bindAddress` is not an IP address.
    pub fn bind_addr(&self) -> Result<SocketAddr, ConfigError> {
        let ip = self.bind_address.parse().map_err(|_| ConfigError {
            key: "bindAddress".into(),
            value: self.bind_address.clone(),
            expected: "an IP address",
        })?;
        Ok(SocketAddr::new(ip, self.listen_port))
    }
}

/// Run a name server on `listener` (with `tls`, if given: see
/// [`crate::remoting::tls`]), and its Prometheus metrics on `metrics` if
/// given ([`metrics`]), until `shutdown` turns true. `acl`: the rules
/// registrations are checked against when `cfg.acl_enable` (load them with
/// [`crate::acl::load_broker_rules`]); ignored otherwise. `kv`: the KV config
/// (load it from `cfg.kv_config_path` with [`KvConfigManager::load`]).
pub async fn run(
    cfg: NamesrvConfig,
    acl: Option<crate::acl::AclLive>,
    kv: KvConfigManager,
    listener: TcpListener,
    tls: Option<crate::remoting::tls::TlsServer>,
    metrics: Option<TcpListener>,
    shutdown: watch::Receiver<bool>,
) {
    let acl = acl.filter(|_| cfg.acl_enable).map(Arc::new);
    // The rules follow edits of the files, as the broker's do.
    let acl_watch = acl.clone().map(|live| {
        let every = Duration::from_millis(crate::acl::live::DEFAULT_RELOAD_INTERVAL_MS);
        tokio::spawn(crate::acl::live::watch_loop(live, every, shutdown.clone()))
    });
    let ns = Arc::new(
        NameServer::new()
            .with_acl(acl)
            .with_kv_config(kv)
            .with_order_message_enable(cfg.order_message_enable),
    );
    let metrics_task = metrics.map(|l| {
        let node_id = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let registry = crate::metrics::registry_of(metrics::NamesrvCollector::new(&ns, node_id));
        tokio::spawn(crate::metrics::serve(l, registry, shutdown.clone()))
    });
    let scan_ns = ns.clone();
    let expiry = Duration::from_millis(cfg.broker_channel_expired_time_ms);
    let every = Duration::from_millis(cfg.scan_not_active_broker_interval_ms.max(100));
    let mut scan_stop = shutdown.clone();
    let scanner = tokio::spawn(async move {
        // First scan after 5 s (or the interval, if shorter), as RocketMQ does.
        let mut tick = tokio::time::interval_at(
            tokio::time::Instant::now() + every.min(Duration::from_secs(5)),
            every,
        );
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let n = scan_ns.routes().scan_not_active(expiry);
                    if n > 0 {
                        tracing::info!(removed = n, "expired brokers removed");
                    }
                }
                _ = scan_stop.changed() => break,
            }
        }
    });
    let scfg = ServerConfig {
        max_frame_bytes: cfg.max_frame_bytes,
        max_requests_per_connection: cfg.server_max_requests_per_connection,
        max_queued_reply_bytes: cfg.server_max_queued_reply_bytes,
        max_queued_reply_bytes_total: cfg.server_max_queued_reply_bytes_total,
        idle_timeout: ServerConfig::idle_from_secs(cfg.server_channel_max_idle_time_seconds),
        max_connections: cfg.server_max_connections,
        tls,
        ..ServerConfig::default()
    };
    serve(listener, ns, scfg, shutdown).await;
    let _ = scanner.await;
    if let Some(t) = metrics_task {
        let _ = t.await;
    }
    if let Some(w) = acl_watch {
        let _ = w.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_keys() {
        let d = NamesrvConfig::from_properties(&Properties::parse("")).unwrap();
        assert_eq!(
            (
                d.server_channel_max_idle_time_seconds,
                d.server_max_requests_per_connection,
                d.server_max_queued_reply_bytes,
                d.server_max_queued_reply_bytes_total,
                d.server_max_connections
            ),
            (
                120,
                64,
                4 << 20,
                256 << 20,
                default_max_connections(NAMESRV_FD_RESERVE)
            )
        );
        let c = NamesrvConfig::from_properties(&Properties::parse(
            "serverChannelMaxIdleTimeSeconds=5\nserverMaxRequestsPerConnection=0\n\
             serverMaxQueuedReplyBytes=1000\nserverMaxConnections=10\n\
             serverMaxQueuedReplyBytesTotal=5000\n",
        ))
        .unwrap();
        assert_eq!(
            (
                c.server_channel_max_idle_time_seconds,
                c.server_max_requests_per_connection,
                c.server_max_queued_reply_bytes,
                c.server_max_queued_reply_bytes_total,
                c.server_max_connections
            ),
            (5, 1, 1000, 5000, 10)
        );
        assert!(c
            .to_properties()
            .contains("serverChannelMaxIdleTimeSeconds=5\n"));
        assert!(
            NamesrvConfig::from_properties(&Properties::parse("serverMaxConnections=-1\n"))
                .is_err()
        );
        let huge = NamesrvConfig::from_properties(&Properties::parse(&format!(
            "serverChannelMaxIdleTimeSeconds={}\n",
            i64::MAX
        )))
        .unwrap();
        assert_eq!(
            huge.server_channel_max_idle_time_seconds,
            MAX_IDLE_SECS as i64
        );
    }
}
