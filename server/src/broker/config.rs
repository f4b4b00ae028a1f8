//! Broker settings: the `BrokerConfig` / `NettyServerConfig` keys of a RocketMQ
//! broker `.properties` file that the store leaves to the broker.

use std::net::SocketAddr;

use ferromq_engine::config::Properties;
use ferromq_engine::StoreConfig;

use crate::namesrv::{parse_bool_key, parse_key, ConfigError};
use crate::remoting::server::{
    default_max_connections, BROKER_FD_RESERVE, DEFAULT_IDLE_SECS, DEFAULT_MAX_QUEUED_REPLY_BYTES,
    DEFAULT_MAX_QUEUED_REPLY_BYTES_TOTAL, DEFAULT_MAX_REQUESTS_PER_CONNECTION, MAX_IDLE_SECS,
};
use crate::remoting::{ServerConfig, DEFAULT_MAX_FRAME_BYTES};

/// Broker settings. Store settings live in [`StoreConfig`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerConfig {
    /// `brokerClusterName`. Default `DefaultCluster`.
    pub broker_cluster_name: String,
    /// `brokerName`. Default: the host name.
    pub broker_name: String,
    /// `brokerId`: 0 master, >0 slave. Default 0.
    pub broker_id: i64,
    /// `namesrvAddr` (or `-n`, or `NAMESRV_ADDR`): name servers, `;`-separated.
    pub namesrv_addr: Vec<String>,
    /// `brokerIP1`: address advertised to clients (from the store config).
    pub broker_ip1: String,
    /// `brokerIP2`: address advertised for HA. Default `brokerIP1`.
    pub broker_ip2: String,
    /// `listenPort`: client port (from the store config); 0 lets the OS choose.
    pub listen_port: u16,
    /// `bindAddress` (ferromq key): address to bind. Default `0.0.0.0`.
    pub bind_address: String,
    /// `sendMessageThreadPoolNums`: send pool threads. Default min(cores, 4).
    pub send_message_thread_pool_nums: usize,
    /// `pullMessageThreadPoolNums`: pull pool threads. Default 16 + 2 x cores.
    pub pull_message_thread_pool_nums: usize,
    /// `sendThreadPoolQueueCapacity`: queued sends before SYSTEM_BUSY. Default 10 000.
    pub send_thread_pool_queue_capacity: usize,
    /// `pullThreadPoolQueueCapacity`: queued pulls before SYSTEM_BUSY. Default 100 000.
    pub pull_thread_pool_queue_capacity: usize,
    /// `autoCreateTopicEnable` (from the store config).
    pub auto_create_topic_enable: bool,
    /// `defaultTopicQueueNums` (from the store config).
    pub default_topic_queue_nums: u32,
    /// `autoCreateSubscriptionGroup`. Default true.
    pub auto_create_subscription_group: bool,
    /// `longPollingEnable`: hold pulls until a message arrives. Default true.
    pub long_polling_enable: bool,
    /// `shortPollingTimeMills`: hold time when long polling is off. Default 1000.
    pub short_polling_time_mills: u64,
    /// `longPollingMaxSuspendMillis` (ferromq key): the longest a pull is held,
    /// whatever `suspendTimeoutMillis` it asks (clients ask 15 000 to 30 000).
    /// Default 45 000, at least 1.
    pub long_polling_max_suspend_ms: u64,
    /// `longPollingMaxParkedPerConnection` (ferromq key): pulls one connection
    /// may have held at once; beyond it a pull that finds nothing is
    /// short-polled (answered after `shortPollingTimeMills`). Default 768, at
    /// least 1, and at most 3/4 of `serverMaxRequestsPerConnection` (clamped
    /// with a WARN), because a held pull counts as a request in progress: a
    /// connection full of held pulls must keep room for its heartbeats, offset
    /// commits and sends.
    pub long_polling_max_parked_per_connection: usize,
    /// `registerNameServerPeriod`: ms between registrations (clamped 10 000..=60 000). Default 30 000.
    pub register_name_server_period_ms: u64,
    /// `registerBrokerTimeoutMills`: ms to wait for a name server. Default 6000.
    pub register_broker_timeout_mills: u64,
    /// `flushConsumerOffsetInterval`: ms between writes of consumerOffset.json. Default 5000.
    pub flush_consumer_offset_interval_ms: u64,
    /// `brokerPermission`: permission bits advertised. Default 6 (read + write).
    pub broker_permission: u32,
    /// `serverMaxFrameBytes` (ferromq key): largest frame accepted. Default 16 MiB.
    pub max_frame_bytes: usize,
    /// `slaveReadEnable`: consumers may be sent to a slave (pull responses
    /// suggest the group's `brokerId` / `whichBrokerWhenConsumeSlowly`). Default false.
    pub slave_read_enable: bool,
    /// `offsetCheckInSlave`: a slave corrects out-of-range pull offsets as a master
    /// does (PULL_OFFSET_MOVED) instead of asking to retry. Default false.
    pub offset_check_in_slave: bool,
    /// `enablePropertyFilter`: consumers may subscribe with SQL92 property
    /// filters (RocketMQ's key). Default false: such subscriptions are refused.
    pub enable_property_filter: bool,
    /// `slaveSyncInterval` (ferromq key): ms between a slave's copies of its
    /// master's topics, consumer offsets, delay offsets and subscription groups
    /// (RocketMQ's fixed 10 s). Default 10 000, at least 100.
    pub slave_sync_interval_ms: u64,
    /// `rejectTransactionMessage`: refuse half messages (NO_PERMISSION). Default false.
    pub reject_transaction_message: bool,
    /// `transactionCheckInterval`: ms between check-back rounds. Default 60 000.
    pub transaction_check_interval_ms: u64,
    /// `transactionTimeOut`: ms a half message waits for its decision before it
    /// is checked back. Default 6000.
    pub transaction_timeout_ms: u64,
    /// `transactionCheckMax`: check-backs before a half message is moved to
    /// `TRANS_CHECK_MAX_TIME_TOPIC`. Default 15.
    pub transaction_check_max: u32,
    /// `storeReplyMessageEnable`: store request-reply replies in
    /// `<cluster>_REPLY_TOPIC` as well as pushing them to their requester.
    /// Default true.
    pub store_reply_message_enable: bool,
    /// `serverChannelMaxIdleTimeSeconds`: a client connection with nothing read,
    /// written or in progress for this long is closed; 0: never. Default 120.
    pub server_channel_max_idle_time_seconds: i64,
    /// `serverMaxRequestsPerConnection` (ferromq key): requests in progress per
    /// connection (parked pulls included) before the broker stops reading it. Default 1024.
    pub server_max_requests_per_connection: usize,
    /// `serverMaxQueuedReplyBytes` (ferromq key): response bytes waiting for a
    /// connection's writer before the broker stops reading it. Default 4 MiB.
    pub server_max_queued_reply_bytes: usize,
    /// `serverMaxQueuedReplyBytesTotal` (ferromq key): response bytes waiting
    /// for all connections' writers together before no connection is read.
    /// Default 256 MiB.
    pub server_max_queued_reply_bytes_total: usize,
    /// `serverMaxConnections` (ferromq key): client connections open at once;
    /// more are closed at once. Default: the open-file limit less 4096 (or a
    /// quarter) for store files, at most 65 536
    /// ([`default_max_connections`]).
    pub server_max_connections: usize,
    /// `aclEnable`: check every client request against the plain ACL rules
    /// (RocketMQ 4.9's `PlainAccessValidator`). Default false.
    pub acl_enable: bool,
    /// `aclFilePath` (ferromq key): the ACL file (or a folder of them) to
    /// read instead of RocketMQ's `$ROCKETMQ_HOME/conf/plain_acl.yml` and
    /// `$ROCKETMQ_HOME/conf/acl/`. Default: unset.
    pub acl_file_path: Option<std::path::PathBuf>,
    /// The credentials the broker signs its own requests with (registration
    /// at name servers, a slave's config copies from its master) and proves
    /// itself with on the HA port when ACL is on: the `accessKey` and
    /// `secretKey` keys (both or neither), else RocketMQ 5's
    /// `innerClientAuthenticationCredentials` JSON
    /// (`{"accessKey":"..","secretKey":".."}`). Default: none; with
    /// `aclEnable=true` the broker then uses the first admin account of its
    /// ACL rules ([`crate::acl::AclRules::first_admin`]).
    pub credentials: Option<crate::acl::Credentials>,
    /// The fast (VIP) port: a second client port serving the same requests
    /// (and the same TLS mode), RocketMQ's `fastListenPort`, which Java
    /// clients with `vipChannelEnabled=true` (their default up to 4.4) and
    /// RocketMQ's dashboard use. Default, as RocketMQ: `listenPort - 2`, or
    /// a port the OS chooses when `listenPort` is 0 (or below 3). The key
    /// `fastListenPort` names another port (0: the OS chooses); `-1` (a
    /// ferromq extension) opens none (`None`).
    pub fast_listen_port: Option<u16>,
    /// `aclReloadIntervalMs` (ferromq key): how often the ACL files are
    /// looked at for changes (RocketMQ 4.9.7 looks every 5 s). Default
    /// [`crate::acl::live::DEFAULT_RELOAD_INTERVAL_MS`]; at least 10.
    pub acl_reload_interval_ms: u64,
    /// RocketMQ 5's controller mode (`enableControllerMode=true`): the
    /// controllers decide this broker's id and role; `None` when off.
    pub controller_mode: Option<ControllerModeConfig>,
}

/// The controller-mode settings (RocketMQ 5's `BrokerConfig` and
/// `MessageStoreConfig` keys), read when `enableControllerMode=true`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerModeConfig {
    /// `controllerAddr`: the controllers, `host:port;host:port`.
    pub controller_addrs: Vec<String>,
    /// `syncBrokerMetadataPeriod`: how often the broker asks the controller
    /// for its group's master and SyncStateSet. Default 5000 ms.
    pub sync_broker_metadata_period_ms: u64,
    /// `checkSyncStateSetPeriod`: how often a master checks which slaves are
    /// in sync and asks the controller to change the SyncStateSet. Default 5000 ms.
    pub check_sync_state_set_period_ms: u64,
    /// `brokerHeartbeatInterval`: heartbeats to every controller. Default 1000 ms.
    pub heartbeat_interval_ms: u64,
    /// `controllerHeartBeatTimeoutMills`: silence after which the controller
    /// counts this broker as gone (sent in each heartbeat); a master that has
    /// had no heartbeat answered for this long stops acknowledging sends.
    /// Default 10 000 ms.
    pub controller_heartbeat_timeout_ms: u64,
    /// `brokerElectionPriority`: lower is preferred. Default `i32::MAX`.
    pub election_priority: i32,
    /// `haMaxTimeSlaveNotCatchup`: a slave that has not caught up with the
    /// master for this long leaves the SyncStateSet. Default 15 000 ms.
    pub ha_max_time_slave_not_catchup_ms: u64,
    /// `allAckInSyncStateSet`: a send is acknowledged only when every member
    /// of the SyncStateSet has it. Default false.
    pub all_ack_in_sync_state_set: bool,
    /// `minInSyncReplicas`: fewer replicas in sync (the master included)
    /// refuse sends. Default 1.
    pub min_in_sync_replicas: u32,
    /// `storePathBrokerIdentity`: where the controller-assigned id is kept.
    /// Default `<storePathRootDir>/brokerIdentity`.
    pub broker_identity_path: std::path::PathBuf,
    /// `storePathEpochFile`: the master-epoch file. Default
    /// `<storePathRootDir>/epochFileCheckpoint`.
    pub epoch_file_path: std::path::PathBuf,
}

impl ControllerModeConfig {
    fn read(k: &Keys<'_>, store: &StoreConfig) -> Result<Option<Self>, ConfigError> {
        if !k.flag("enableControllerMode", false)? {
            return Ok(None);
        }
        let controller_addrs = k
            .text("controllerAddr")
            .map(|s| split_namesrv_addr(&s))
            .unwrap_or_default();
        if controller_addrs.is_empty() {
            return Err(ConfigError {
                key: "controllerAddr".into(),
                value: String::new(),
                expected: "the controllers' addresses (host:port;host:port) with enableControllerMode=true",
            });
        }
        let ms = |key: &str, default: u64| -> Result<u64, ConfigError> {
            Ok(k.num(key, "a number of milliseconds", default)?.max(1))
        };
        let root = &store.store_path_root_dir;
        Ok(Some(ControllerModeConfig {
            controller_addrs,
            sync_broker_metadata_period_ms: ms("syncBrokerMetadataPeriod", 5000)?,
            check_sync_state_set_period_ms: ms("checkSyncStateSetPeriod", 5000)?,
            heartbeat_interval_ms: ms("brokerHeartbeatInterval", 1000)?,
            controller_heartbeat_timeout_ms: ms("controllerHeartBeatTimeoutMills", 10_000)?,
            election_priority: k.num("brokerElectionPriority", "an integer", i32::MAX)?,
            ha_max_time_slave_not_catchup_ms: ms("haMaxTimeSlaveNotCatchup", 15_000)?,
            all_ack_in_sync_state_set: k.flag("allAckInSyncStateSet", false)?,
            min_in_sync_replicas: k
                .num("minInSyncReplicas", "a number of replicas", 1u32)?
                .max(1),
            broker_identity_path: k
                .text("storePathBrokerIdentity")
                .map(Into::into)
                .unwrap_or_else(|| root.join("brokerIdentity")),
            epoch_file_path: ferromq_replication::EpochFile::path_from_properties(k.0, root),
        }))
    }
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| "localhost".to_string())
}

/// Split `a:9876;b:9876` into addresses.
pub fn split_namesrv_addr(s: &str) -> Vec<String> {
    s.split(';')
        .map(|a| a.trim_matches(char::is_whitespace))
        .filter(|a| !a.is_empty())
        .map(str::to_string)
        .collect()
}

/// `longPollingMaxParkedPerConnection` at most 3/4 of
/// `serverMaxRequestsPerConnection` (and at least 1), with a WARN when lowered:
/// held pulls count as requests in progress, and a connection whose requests
/// are all held pulls is not read (no heartbeats, commits or sends) until one
/// of them is answered.
fn clamp_parked_per_connection(parked: usize, requests: usize) -> usize {
    let most = (requests / 4 * 3 + requests % 4 * 3 / 4).max(1);
    if parked <= most {
        return parked;
    }
    tracing::warn!(
        configured = parked,
        used = most,
        requests,
        "longPollingMaxParkedPerConnection lowered to 3/4 of serverMaxRequestsPerConnection, \
         so that a connection full of held pulls keeps room for its other requests"
    );
    most
}

/// An INFO for keys of RocketMQ 3.x that 4.x and ferromq ignore.
fn note_legacy_keys(props: &Properties) {
    if let Some(v) = props.get("checkTransactionMessageEnable") {
        // RocketMQ 3.x's switch for the check-back timer; 4.x has no such key and
        // always checks back (the store config reader already warned about it).
        tracing::info!(
            value = %v.trim_matches(char::is_whitespace),
            "checkTransactionMessageEnable is a RocketMQ 3.x key with no effect in 4.x or \
             ferromq: check-back always runs on a master, tuned by transactionCheckInterval, \
             transactionTimeOut and transactionCheckMax"
        );
    }
}

/// The keys of one `.properties` file, each read with its default.
struct Keys<'a>(&'a Properties);

impl Keys<'_> {
    /// A text key, trimmed of whitespace; `None` when absent or blank.
    fn text(&self, key: &str) -> Option<String> {
        self.0
            .get(key)
            .map(|v| v.trim_matches(char::is_whitespace).to_string())
            .filter(|v| !v.is_empty())
    }

    /// A key of a parsed type ([`parse_key`]; `expected` names its form in
    /// errors), or `default` when absent or blank.
    fn num<T: std::str::FromStr>(
        &self,
        key: &str,
        expected: &'static str,
        default: T,
    ) -> Result<T, ConfigError> {
        Ok(parse_key(self.0, key, expected)?.unwrap_or(default))
    }

    /// A `true` / `false` key ([`parse_bool_key`]), or `default`.
    fn flag(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        Ok(parse_bool_key(self.0, key)?.unwrap_or(default))
    }
}

/// [`BrokerConfig::credentials`] from `accessKey`/`secretKey` or
/// `innerClientAuthenticationCredentials`. Errors never quote a secret.
fn read_credentials(k: &Keys<'_>) -> Result<Option<crate::acl::Credentials>, ConfigError> {
    let bad = |key: &str, expected: &'static str| ConfigError {
        key: key.to_string(),
        value: "<not shown: it holds a secret>".to_string(),
        expected,
    };
    match (k.text("accessKey"), k.text("secretKey")) {
        (Some(a), Some(s)) => return Ok(crate::acl::Credentials::new(&a, &s)),
        (Some(_), None) => return Err(bad("secretKey", "a secretKey with the accessKey")),
        (None, Some(_)) => return Err(bad("accessKey", "an accessKey with the secretKey")),
        (None, None) => {}
    }
    const INNER: &str = "innerClientAuthenticationCredentials";
    let Some(json) = k.text(INNER) else {
        return Ok(None);
    };
    let expected = r#"a JSON object {"accessKey":"..","secretKey":".."}"#;
    let v: serde_json::Value = serde_json::from_str(&json).map_err(|_| bad(INNER, expected))?;
    let field = |name: &str| {
        v.get(name)
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
    };
    // RocketMQ: blank keys mean no signing.
    Ok(crate::acl::Credentials::new(
        field("accessKey"),
        field("secretKey"),
    ))
}

/// [`BrokerConfig::fast_listen_port`] from `fastListenPort` and `listenPort`.
fn read_fast_port(k: &Keys<'_>, listen_port: u16) -> Result<Option<u16>, ConfigError> {
    match k.text("fastListenPort").as_deref() {
        None => Ok(Some(
            listen_port
                .checked_sub(2)
                .filter(|_| listen_port >= 3)
                .unwrap_or(0),
        )),
        Some("-1") => Ok(None),
        Some(v) => v.parse::<u16>().map(Some).map_err(|_| ConfigError {
            key: "fastListenPort".into(),
            value: v.to_string(),
            expected: "a port number 0..=65535, or -1 for no fast port",
        }),
    }
}

impl BrokerConfig {
    /// Read the broker keys from `props`; store-owned keys come from `store`.
    ///
    /// # Errors
    /// [`ConfigError`] for a value of the wrong form.
    pub fn from_properties(props: &Properties, store: &StoreConfig) -> Result<Self, ConfigError> {
        let keys = Keys(props);
        let mut b = Self::read_keys(&keys, store)?;
        b.fast_listen_port = read_fast_port(&keys, b.listen_port)?;
        b.read_connection_keys(&keys)?;
        note_legacy_keys(props);
        b.apply_bounds();
        Ok(b)
    }

    /// Every key but the connection bounds, with its default, in this order
    /// (the first key of a wrong form is the error), some clamped as they are
    /// read; the other bounds follow in [`BrokerConfig::apply_bounds`].
    fn read_keys(k: &Keys<'_>, store: &StoreConfig) -> Result<Self, ConfigError> {
        let c = cores();
        Ok(BrokerConfig {
            // Identity and network.
            broker_cluster_name: k
                .text("brokerClusterName")
                .unwrap_or_else(|| "DefaultCluster".into()),
            broker_name: k.text("brokerName").unwrap_or_else(host_name),
            broker_id: k.num("brokerId", "an integer", 0)?,
            namesrv_addr: k
                .text("namesrvAddr")
                .or_else(|| std::env::var("NAMESRV_ADDR").ok())
                .map(|s| split_namesrv_addr(&s))
                .unwrap_or_default(),
            broker_ip1: store.broker_ip1.clone(),
            broker_ip2: k
                .text("brokerIP2")
                .unwrap_or_else(|| store.broker_ip1.clone()),
            listen_port: store.listen_port,
            bind_address: k.text("bindAddress").unwrap_or_else(|| "0.0.0.0".into()),
            // Thread pools and their queues.
            send_message_thread_pool_nums: k.num(
                "sendMessageThreadPoolNums",
                "a thread count",
                c.min(4),
            )?,
            pull_message_thread_pool_nums: k.num(
                "pullMessageThreadPoolNums",
                "a thread count",
                16 + 2 * c,
            )?,
            send_thread_pool_queue_capacity: k.num(
                "sendThreadPoolQueueCapacity",
                "a queue length",
                10_000,
            )?,
            pull_thread_pool_queue_capacity: k.num(
                "pullThreadPoolQueueCapacity",
                "a queue length",
                100_000,
            )?,
            // Topics and groups.
            auto_create_topic_enable: store.auto_create_topic_enable,
            default_topic_queue_nums: store.default_topic_queue_nums,
            auto_create_subscription_group: k.flag("autoCreateSubscriptionGroup", true)?,
            // Pulls.
            long_polling_enable: k.flag("longPollingEnable", true)?,
            short_polling_time_mills: k.num("shortPollingTimeMills", "milliseconds", 1000)?,
            long_polling_max_suspend_ms: k
                .num::<u64>("longPollingMaxSuspendMillis", "milliseconds", 45_000)?
                .max(1),
            long_polling_max_parked_per_connection: k
                .num::<usize>("longPollingMaxParkedPerConnection", "a count", 768)?
                .max(1),
            // Name server registration, offsets, permission, frames.
            register_name_server_period_ms: k
                .num::<u64>("registerNameServerPeriod", "milliseconds", 30_000)?
                .clamp(10_000, 60_000),
            register_broker_timeout_mills: k.num(
                "registerBrokerTimeoutMills",
                "milliseconds",
                6000,
            )?,
            flush_consumer_offset_interval_ms: k.num(
                "flushConsumerOffsetInterval",
                "milliseconds",
                5000,
            )?,
            broker_permission: k.num("brokerPermission", "permission bits", 6)?,
            max_frame_bytes: k.num(
                "serverMaxFrameBytes",
                "a byte count",
                DEFAULT_MAX_FRAME_BYTES,
            )?,
            // Slaves.
            slave_read_enable: k.flag("slaveReadEnable", false)?,
            offset_check_in_slave: k.flag("offsetCheckInSlave", false)?,
            enable_property_filter: k.flag("enablePropertyFilter", false)?,
            slave_sync_interval_ms: k
                .num::<u64>("slaveSyncInterval", "milliseconds", 10_000)?
                .max(100),
            // Transactions.
            reject_transaction_message: k.flag("rejectTransactionMessage", false)?,
            transaction_check_interval_ms: k.num(
                "transactionCheckInterval",
                "milliseconds",
                60_000,
            )?,
            transaction_timeout_ms: k.num("transactionTimeOut", "milliseconds", 6000)?,
            transaction_check_max: k.num("transactionCheckMax", "a check count", 15)?,
            // Request-reply.
            store_reply_message_enable: k.flag("storeReplyMessageEnable", true)?,
            // Connection bounds: their defaults; the keys are read last, in
            // [`BrokerConfig::read_connection_keys`].
            server_channel_max_idle_time_seconds: DEFAULT_IDLE_SECS as i64,
            server_max_requests_per_connection: DEFAULT_MAX_REQUESTS_PER_CONNECTION,
            server_max_queued_reply_bytes: DEFAULT_MAX_QUEUED_REPLY_BYTES,
            server_max_queued_reply_bytes_total: DEFAULT_MAX_QUEUED_REPLY_BYTES_TOTAL,
            server_max_connections: default_max_connections(BROKER_FD_RESERVE),
            // Access control.
            acl_enable: k.flag("aclEnable", false)?,
            acl_file_path: k.text("aclFilePath").map(Into::into),
            credentials: read_credentials(k)?,
            // From listenPort, in `BrokerConfig::from_properties`.
            fast_listen_port: None,
            acl_reload_interval_ms: k
                .num(
                    "aclReloadIntervalMs",
                    "a number of milliseconds",
                    crate::acl::live::DEFAULT_RELOAD_INTERVAL_MS,
                )?
                .max(10),
            controller_mode: ControllerModeConfig::read(k, store)?,
        })
    }

    /// The connection server's keys (see [`BrokerConfig::server_config`]),
    /// over the defaults [`BrokerConfig::read_keys`] set: the idle time at most
    /// [`MAX_IDLE_SECS`], the counts at least 1.
    fn read_connection_keys(&mut self, k: &Keys<'_>) -> Result<(), ConfigError> {
        if let Some(v) = parse_key::<i64>(k.0, "serverChannelMaxIdleTimeSeconds", "seconds")? {
            self.server_channel_max_idle_time_seconds = v.min(MAX_IDLE_SECS as i64);
        }
        let counts = [
            (
                &mut self.server_max_requests_per_connection,
                "serverMaxRequestsPerConnection",
                "a request count",
            ),
            (
                &mut self.server_max_queued_reply_bytes,
                "serverMaxQueuedReplyBytes",
                "a byte count",
            ),
            (
                &mut self.server_max_queued_reply_bytes_total,
                "serverMaxQueuedReplyBytesTotal",
                "a byte count",
            ),
            (
                &mut self.server_max_connections,
                "serverMaxConnections",
                "a connection count",
            ),
        ];
        for (field, key, expected) in counts {
            if let Some(v) = parse_key::<usize>(k.0, key, expected)? {
                *field = v.max(1);
            }
        }
        Ok(())
    }

    /// The lower bounds of the pools and the check-back interval, and the park
    /// cap below the request cap ([`clamp_parked_per_connection`], with a WARN).
    fn apply_bounds(&mut self) {
        self.transaction_check_interval_ms = self.transaction_check_interval_ms.max(10);
        self.send_message_thread_pool_nums = self.send_message_thread_pool_nums.max(1);
        self.pull_message_thread_pool_nums = self.pull_message_thread_pool_nums.max(1);
        self.long_polling_max_parked_per_connection = clamp_parked_per_connection(
            self.long_polling_max_parked_per_connection,
            self.server_max_requests_per_connection,
        );
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

    /// The socket address of the fast (VIP) port, if configured.
    ///
    /// # Errors
    /// [`ConfigError`] when `bindAddress` is not an IP address.
    pub fn fast_bind_addr(&self) -> Result<Option<SocketAddr>, ConfigError> {
        let Some(port) = self.fast_listen_port else {
            return Ok(None);
        };
        Ok(Some(SocketAddr::new(self.bind_addr()?.ip(), port)))
    }

    /// The connection server's settings for the client port.
    pub fn server_config(&self) -> ServerConfig {
        ServerConfig {
            max_frame_bytes: self.max_frame_bytes,
            max_requests_per_connection: self.server_max_requests_per_connection,
            max_queued_reply_bytes: self.server_max_queued_reply_bytes,
            max_queued_reply_bytes_total: self.server_max_queued_reply_bytes_total,
            idle_timeout: ServerConfig::idle_from_secs(self.server_channel_max_idle_time_seconds),
            max_connections: self.server_max_connections,
            ..ServerConfig::default()
        }
    }

    /// The broker keys as `key=value` lines (`important` = the short list of `-m`).
    pub fn to_properties(&self, important: bool) -> String {
        let mut s = format!(
            "brokerClusterName={}\nbrokerName={}\nbrokerId={}\nnamesrvAddr={}\nbrokerIP1={}\nlistenPort={}\n",
            self.broker_cluster_name,
            self.broker_name,
            self.broker_id,
            self.namesrv_addr.join(";"),
            self.broker_ip1,
            self.listen_port
        );
        if important {
            return s;
        }
        s.push_str(&format!(
            "brokerIP2={}\nbindAddress={}\nsendMessageThreadPoolNums={}\npullMessageThreadPoolNums={}\n\
             sendThreadPoolQueueCapacity={}\npullThreadPoolQueueCapacity={}\nautoCreateSubscriptionGroup={}\n\
             longPollingEnable={}\nshortPollingTimeMills={}\nregisterNameServerPeriod={}\n\
             registerBrokerTimeoutMills={}\nflushConsumerOffsetInterval={}\nbrokerPermission={}\nserverMaxFrameBytes={}\n\
             slaveReadEnable={}\noffsetCheckInSlave={}\nslaveSyncInterval={}\n\
             rejectTransactionMessage={}\ntransactionCheckInterval={}\ntransactionTimeOut={}\ntransactionCheckMax={}\n\
             serverChannelMaxIdleTimeSeconds={}\nserverMaxRequestsPerConnection={}\nserverMaxQueuedReplyBytes={}\n\
             serverMaxQueuedReplyBytesTotal={}\nserverMaxConnections={}\n",
            self.broker_ip2,
            self.bind_address,
            self.send_message_thread_pool_nums,
            self.pull_message_thread_pool_nums,
            self.send_thread_pool_queue_capacity,
            self.pull_thread_pool_queue_capacity,
            self.auto_create_subscription_group,
            self.long_polling_enable,
            self.short_polling_time_mills,
            self.register_name_server_period_ms,
            self.register_broker_timeout_mills,
            self.flush_consumer_offset_interval_ms,
            self.broker_permission,
            self.max_frame_bytes,
            self.slave_read_enable,
            self.offset_check_in_slave,
            self.slave_sync_interval_ms,
            self.reject_transaction_message,
            self.transaction_check_interval_ms,
            self.transaction_timeout_ms,
            self.transaction_check_max,
            self.server_channel_max_idle_time_seconds,
            self.server_max_requests_per_connection,
            self.server_max_queued_reply_bytes,
            self.server_max_queued_reply_bytes_total,
            self.server_max_connections
        ));
        s.push_str(&format!(
            "longPollingMaxSuspendMillis={}\nlongPollingMaxParkedPerConnection={}\n",
            self.long_polling_max_suspend_ms, self.long_polling_max_parked_per_connection
        ));
        s.push_str(&format!(
            "storeReplyMessageEnable={}\nenablePropertyFilter={}\n",
            self.store_reply_message_enable, self.enable_property_filter
        ));
        s.push_str(&format!(
            "fastListenPort={}\n",
            self.fast_listen_port.map_or(-1, i32::from)
        ));
        s.push_str(&format!(
            "aclEnable={}\naclFilePath={}\naclReloadIntervalMs={}\n",
            self.acl_enable,
            self.acl_file_path
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            self.acl_reload_interval_ms
        ));
        // The secret is never printed.
        if let Some(c) = &self.credentials {
            s.push_str(&format!("accessKey={}\n", c.access_key));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_seed_style_keys() {
        let props = Properties::parse(
            "brokerClusterName=DefaultCluster \nbrokerName=broker-a\u{a0}\nbrokerId=0\n\
             namesrvAddr=192.168.36.189:9876;192.168.36.54:9876 \nsendMessageThreadPoolNums=128 \n\
             pullMessageThreadPoolNums=128\nregisterNameServerPeriod=1000\n",
        );
        let (store, _) = StoreConfig::from_properties(&props).unwrap();
        let b = BrokerConfig::from_properties(&props, &store).unwrap();
        assert_eq!(b.broker_name, "broker-a");
        assert_eq!(b.namesrv_addr.len(), 2);
        assert_eq!(b.send_message_thread_pool_nums, 128);
        assert_eq!(b.register_name_server_period_ms, 10_000);
        assert_eq!(
            (
                b.transaction_check_interval_ms,
                b.transaction_timeout_ms,
                b.transaction_check_max,
                b.reject_transaction_message
            ),
            (60_000, 6000, 15, false)
        );
        let tx = Properties::parse(
            "transactionCheckInterval=500 \ntransactionTimeOut=1000\ntransactionCheckMax=3\n\
             rejectTransactionMessage=true\ncheckTransactionMessageEnable=false\n",
        );
        let (store, _) = StoreConfig::from_properties(&tx).unwrap();
        let b = BrokerConfig::from_properties(&tx, &store).unwrap();
        assert_eq!(
            (
                b.transaction_check_interval_ms,
                b.transaction_timeout_ms,
                b.transaction_check_max,
                b.reject_transaction_message
            ),
            (500, 1000, 3, true)
        );
        let bad = Properties::parse("transactionCheckMax=-1\n");
        assert!(BrokerConfig::from_properties(&bad, &store)
            .unwrap_err()
            .to_string()
            .contains("transactionCheckMax"));
        assert_eq!(
            (
                b.long_polling_max_suspend_ms,
                b.long_polling_max_parked_per_connection
            ),
            (45_000, 768)
        );
        let lp = Properties::parse(
            "longPollingMaxSuspendMillis=2000\nlongPollingMaxParkedPerConnection=0\n",
        );
        let b = BrokerConfig::from_properties(&lp, &store).unwrap();
        assert_eq!(
            (
                b.long_polling_max_suspend_ms,
                b.long_polling_max_parked_per_connection
            ),
            (2000, 1)
        );
        // The park cap stays below the request cap: at most 3/4 of it.
        let lp = Properties::parse(
            "longPollingMaxParkedPerConnection=5000\nserverMaxRequestsPerConnection=100\n",
        );
        let b = BrokerConfig::from_properties(&lp, &store).unwrap();
        assert_eq!(b.long_polling_max_parked_per_connection, 75);
        let lp = Properties::parse("serverMaxRequestsPerConnection=512\n");
        let b = BrokerConfig::from_properties(&lp, &store).unwrap();
        assert_eq!(b.long_polling_max_parked_per_connection, 384);
        let lp = Properties::parse("serverMaxRequestsPerConnection=4096\n");
        let b = BrokerConfig::from_properties(&lp, &store).unwrap();
        assert_eq!(b.long_polling_max_parked_per_connection, 768);
        assert_eq!(clamp_parked_per_connection(10, 1), 1);
        assert_eq!(clamp_parked_per_connection(10, 2), 1);
        assert_eq!(
            clamp_parked_per_connection(usize::MAX, usize::MAX),
            usize::MAX / 4 * 3 + 2
        );
        let bad = Properties::parse("brokerId=x\n");
        assert!(BrokerConfig::from_properties(&bad, &store)
            .unwrap_err()
            .to_string()
            .contains("brokerId"));
    }

    #[test]
    fn connection_bounds_and_idle_time() {
        let props = Properties::parse("");
        let (store, _) = StoreConfig::from_properties(&props).unwrap();
        let d = BrokerConfig::from_properties(&props, &store)
            .unwrap()
            .server_config();
        assert_eq!(d.idle_timeout, Some(std::time::Duration::from_secs(120)));
        assert_eq!(
            (
                d.max_requests_per_connection,
                d.max_queued_reply_bytes,
                d.max_connections
            ),
            (1024, 4 << 20, default_max_connections(BROKER_FD_RESERVE))
        );
        assert_eq!(d.max_queued_reply_bytes_total, 256 << 20);
        let props = Properties::parse(
            "serverChannelMaxIdleTimeSeconds=0\nserverMaxRequestsPerConnection=8\n\
             serverMaxQueuedReplyBytes=65536\nserverMaxConnections=3\n",
        );
        let (store, unknown) = StoreConfig::from_properties(&props).unwrap();
        assert!(unknown.is_empty(), "{unknown:?}");
        let b = BrokerConfig::from_properties(&props, &store).unwrap();
        let c = b.server_config();
        assert_eq!(c.idle_timeout, None);
        assert_eq!(
            (
                c.max_requests_per_connection,
                c.max_queued_reply_bytes,
                c.max_connections
            ),
            (8, 65536, 3)
        );
        assert!(b.to_properties(false).contains("serverMaxConnections=3\n"));
        let huge = Properties::parse(&format!("serverChannelMaxIdleTimeSeconds={}\n", i64::MAX));
        let h = BrokerConfig::from_properties(&huge, &store).unwrap();
        assert_eq!(h.server_channel_max_idle_time_seconds, MAX_IDLE_SECS as i64);
        let bad = Properties::parse("serverMaxConnections=many\n");
        assert!(BrokerConfig::from_properties(&bad, &store).is_err());
    }

    #[test]
    fn fast_listen_port_is_listen_port_minus_two_unless_named() {
        let read = |text: &str| {
            let props = Properties::parse(text);
            let (store, unknown) = StoreConfig::from_properties(&props).unwrap();
            assert!(unknown.is_empty(), "{unknown:?}");
            BrokerConfig::from_properties(&props, &store)
        };
        let d = read("bindAddress=127.0.0.1\n").unwrap();
        assert_eq!(d.fast_listen_port, Some(10909), "RocketMQ's default");
        assert_eq!(
            d.fast_bind_addr().unwrap(),
            Some("127.0.0.1:10909".parse().unwrap())
        );
        assert_eq!(read("listenPort=0\n").unwrap().fast_listen_port, Some(0));
        assert_eq!(read("listenPort=2\n").unwrap().fast_listen_port, Some(0));
        let b = read("bindAddress=127.0.0.1\nfastListenPort=10800\n").unwrap();
        assert_eq!(b.fast_listen_port, Some(10800));
        assert!(b.to_properties(false).contains("fastListenPort=10800\n"));
        let off = read("fastListenPort=-1\n").unwrap();
        assert_eq!(
            (off.fast_listen_port, off.fast_bind_addr().unwrap()),
            (None, None)
        );
        assert!(off.to_properties(false).contains("fastListenPort=-1\n"));
        let e = read("fastListenPort=-2\n").unwrap_err().to_string();
        assert!(
            e.contains("fastListenPort") && e.contains("-1 for no fast port"),
            "{e}"
        );
    }

    #[test]
    fn acl_keys() {
        let props = Properties::parse("");
        let (store, _) = StoreConfig::from_properties(&props).unwrap();
        let d = BrokerConfig::from_properties(&props, &store).unwrap();
        assert_eq!((d.acl_enable, d.acl_file_path.as_deref()), (false, None));
        let props = Properties::parse("aclEnable=true \naclFilePath=/etc/ferromq/acl.yml\n");
        let (store, unknown) = StoreConfig::from_properties(&props).unwrap();
        assert!(unknown.is_empty(), "{unknown:?}");
        let b = BrokerConfig::from_properties(&props, &store).unwrap();
        assert!(b.acl_enable);
        assert_eq!(
            b.acl_file_path.as_deref(),
            Some(std::path::Path::new("/etc/ferromq/acl.yml"))
        );
        let text = b.to_properties(false);
        assert!(text.contains(
            "aclEnable=true\naclFilePath=/etc/ferromq/acl.yml\naclReloadIntervalMs=500\n"
        ));
        let bad = Properties::parse("aclEnable=yes please\n");
        assert!(BrokerConfig::from_properties(&bad, &store)
            .unwrap_err()
            .to_string()
            .contains("aclEnable"));
    }

    #[test]
    fn own_credentials_from_either_key_set_and_never_printed() {
        let read = |text: &str| {
            let props = Properties::parse(text);
            let (store, unknown) = StoreConfig::from_properties(&props).unwrap();
            assert!(unknown.is_empty(), "{unknown:?}");
            BrokerConfig::from_properties(&props, &store)
        };
        assert_eq!(read("").unwrap().credentials, None);
        let b = read("accessKey=brokerkey\nsecretKey=s3cret-value\n").unwrap();
        assert_eq!(b.credentials.as_ref().unwrap().access_key, "brokerkey");
        let text = b.to_properties(false);
        assert!(text.contains("accessKey=brokerkey\n"), "{text}");
        assert!(!text.contains("s3cret-value"), "{text}");
        let inner = r#"innerClientAuthenticationCredentials={"accessKey":"inner1","secretKey":"s3cret-value"}"#;
        let b = read(inner).unwrap();
        assert_eq!(b.credentials.unwrap().access_key, "inner1");
        // The plain keys win over RocketMQ 5's JSON.
        let both = format!("accessKey=brokerkey\nsecretKey=x1234567\n{inner}\n");
        assert_eq!(
            read(&both).unwrap().credentials.unwrap().access_key,
            "brokerkey"
        );
        for bad in [
            "accessKey=brokerkey\n",
            "secretKey=s3cret-value\n",
            "innerClientAuthenticationCredentials={s3cret-value\n",
        ] {
            let e = read(bad).unwrap_err().to_string();
            assert!(!e.contains("s3cret-value"), "{e}");
        }
    }
}
