//! The controller's settings: RocketMQ 5's `ControllerConfig` keys the
//! standalone controller reads.

use std::path::PathBuf;

use ferromq_controller::raft::{ControllerNodeConfig, RaftTiming};
use ferromq_controller::{ControllerConfig, ControllerPeers};
use ferromq_engine::config::Properties;

use crate::namesrv::{parse_bool_key, parse_key};

/// RocketMQ's default `scanNotActiveBrokerInterval` for the controller: 5 s.
pub const DEFAULT_SCAN_NOT_ACTIVE_BROKER_INTERVAL_MS: u64 = 5000;

/// The keys the controller reads.
pub const KEYS: &[&str] = &[
    "controllerDLegerGroup",
    "controllerDLegerPeers",
    "controllerDLegerSelfId",
    "controllerStorePath",
    "enableElectUncleanMaster",
    "notifyBrokerRoleChanged",
    "scanNotActiveBrokerInterval",
];

/// RocketMQ keys accepted without a word though they change nothing here
/// (the controller is always the Raft one, logs go to stderr).
const IGNORED_KEYS: &[&str] = &["rocketmqHome", "controllerType", "configStorePath"];

/// A controller configuration that cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ControllerConfigError {
    /// A value of the wrong form.
    #[error(transparent)]
    Value(#[from] crate::namesrv::ConfigError),
    /// `controllerDLegerPeers` / `controllerDLegerSelfId` missing or bad.
    #[error("controllerDLegerPeers/controllerDLegerSelfId: {0}")]
    Peers(String),
}

/// The standalone controller's settings.
#[derive(Clone, Debug)]
pub struct ControllerServerConfig {
    /// `controllerDLegerGroup`: the Raft group's name.
    pub group: String,
    /// `controllerDLegerPeers` and `controllerDLegerSelfId`, parsed. The
    /// controller serves (Raft and the brokers' requests) on its own
    /// address in the peers.
    pub peers: ControllerPeers,
    /// `controllerStorePath`: the Raft log and snapshots.
    pub store_path: PathBuf,
    /// `enableElectUncleanMaster` (default false).
    pub enable_elect_unclean_master: bool,
    /// `notifyBrokerRoleChanged` (default true). Notifying brokers is not
    /// implemented yet: brokers learn the new master from their next
    /// register or heartbeat round.
    pub notify_broker_role_changed: bool,
    /// `scanNotActiveBrokerInterval` in ms (default 5000): how often the
    /// leader looks for inactive masters.
    pub scan_not_active_broker_interval_ms: u64,
    /// Raft timing (not a RocketMQ key: DLedger's are not mapped).
    pub timing: RaftTiming,
}

fn default_store_path() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join("DledgerController")
}

impl ControllerServerConfig {
    /// Reads the keys; unknown keys are logged and ignored.
    ///
    /// # Errors
    /// A value of the wrong form, a missing or malformed
    /// `controllerDLegerPeers`, a missing `controllerDLegerSelfId` or one
    /// not among the peers.
    pub fn from_properties(props: &Properties) -> Result<Self, ControllerConfigError> {
        let c = Self::from_shared_properties(props)?;
        for (k, _) in props.iter() {
            if !KEYS.contains(&k) && !IGNORED_KEYS.contains(&k) {
                tracing::warn!(key = k, "unknown controller key ignored");
            }
        }
        Ok(c)
    }

    /// Reads the keys from a file shared with another server (the name
    /// server's, with `enableControllerInNamesrv=true`): other keys are
    /// left to that server, which warns about the ones neither knows.
    ///
    /// # Errors
    /// As [`from_properties`](Self::from_properties).
    pub fn from_shared_properties(props: &Properties) -> Result<Self, ControllerConfigError> {
        let text = |k: &str| {
            props
                .get(k)
                .map(|v| v.trim_matches(char::is_whitespace).to_owned())
                .filter(|v| !v.is_empty())
        };
        let peers_text = text("controllerDLegerPeers").ok_or_else(|| {
            ControllerConfigError::Peers(
                "controllerDLegerPeers is missing (e.g. n0-127.0.0.1:9878;n1-127.0.0.1:9868)"
                    .into(),
            )
        })?;
        let self_id = text("controllerDLegerSelfId").ok_or_else(|| {
            ControllerConfigError::Peers(
                "controllerDLegerSelfId is missing (this controller's id in controllerDLegerPeers, e.g. n0)".into(),
            )
        })?;
        let peers = ControllerPeers::parse(&peers_text, &self_id)
            .map_err(|e| ControllerConfigError::Peers(e.to_string()))?;
        let mut c = ControllerServerConfig {
            group: text("controllerDLegerGroup")
                .unwrap_or_else(|| "DefaultControllerGroup".to_owned()),
            peers,
            store_path: text("controllerStorePath")
                .map(PathBuf::from)
                .unwrap_or_else(default_store_path),
            enable_elect_unclean_master: false,
            notify_broker_role_changed: true,
            scan_not_active_broker_interval_ms: DEFAULT_SCAN_NOT_ACTIVE_BROKER_INTERVAL_MS,
            timing: RaftTiming::default(),
        };
        if let Some(v) = parse_bool_key(props, "enableElectUncleanMaster")? {
            c.enable_elect_unclean_master = v;
        }
        if let Some(v) = parse_bool_key(props, "notifyBrokerRoleChanged")? {
            c.notify_broker_role_changed = v;
        }
        if let Some(v) = parse_key::<u64>(props, "scanNotActiveBrokerInterval", "milliseconds")? {
            c.scan_not_active_broker_interval_ms = v.max(1);
        }
        Ok(c)
    }

    /// The effective settings as `key=value` lines.
    pub fn to_properties(&self) -> String {
        let peers: Vec<String> = self
            .peers
            .peers()
            .iter()
            .map(|(id, addr)| format!("{}-{addr}", ferromq_controller::peers::node_name(*id)))
            .collect();
        format!(
            "controllerDLegerGroup={}\ncontrollerDLegerPeers={}\ncontrollerDLegerSelfId={}\n\
             controllerStorePath={}\nenableElectUncleanMaster={}\nnotifyBrokerRoleChanged={}\n\
             scanNotActiveBrokerInterval={}\n",
            self.group,
            peers.join(";"),
            ferromq_controller::peers::node_name(self.peers.self_id()),
            self.store_path.display(),
            self.enable_elect_unclean_master,
            self.notify_broker_role_changed,
            self.scan_not_active_broker_interval_ms,
        )
    }

    /// The state machine's settings.
    pub fn state_machine(&self) -> ControllerConfig {
        ControllerConfig {
            enable_elect_unclean_master: self.enable_elect_unclean_master,
        }
    }

    /// The Raft node's settings.
    pub fn node(&self) -> ControllerNodeConfig {
        let mut node = ControllerNodeConfig::new(self.peers.clone(), self.store_path.clone());
        node.group.clone_from(&self.group);
        node.timing = self.timing.clone();
        node
    }
}
