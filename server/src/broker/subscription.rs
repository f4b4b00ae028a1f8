//! Subscription groups (`config/subscriptionGroup.json`), RocketMQ's
//! `SubscriptionGroupManager`.
//!
//! The file is `{"subscriptionGroupTable":{"g":{...}},"dataVersion":{...}}`; it is
//! read leniently (unknown fields ignored, numbers as strings accepted) and
//! written atomically (`.bak` kept) by a background writer at most every
//! [`CONFIG_PERSIST_INTERVAL`] after changes, and at shutdown: a thousand new
//! groups in one heartbeat cost one write, not a thousand. A crash loses at
//! most the groups created in the last interval; they are created again by the
//! clients' next heartbeat (RocketMQ itself persists consumer offsets only
//! every `flushConsumerOffsetInterval`, 5 s).

use ferromq_engine::sync::LockExt;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use ferromq_engine::persist::{CoalescedWriter, CONFIG_PERSIST_INTERVAL};

use serde::{Deserialize, Serialize};

use crate::remoting::json;
use crate::util::{atomic_write, now_ms};

/// Groups every RocketMQ 4.x broker knows from the start (`MixAll`).
pub const SYSTEM_GROUPS: &[&str] = &[
    "TOOLS_CONSUMER",
    "FILTERSRV_CONSUMER",
    "__MONITOR_CONSUMER",
    "CLIENT_INNER_PRODUCER",
    "SELF_TEST_C_GROUP",
    "CID_RMQ_SYS_TRANS",
    "CID_ONS-HTTP-PROXY",
    "CID_ONSAPI_PERMISSION",
    "CID_ONSAPI_OWNER",
    "CID_ONSAPI_PULL",
];

/// Default of `retryMaxTimes`.
pub const DEFAULT_RETRY_MAX_TIMES: i32 = 16;

/// One group's configuration (RocketMQ's `SubscriptionGroupConfig`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SubscriptionGroupConfig {
    /// Group name.
    pub group_name: String,
    /// The group may consume.
    pub consume_enable: bool,
    /// A new group starts from the queue's minimum offset.
    pub consume_from_min_enable: bool,
    /// Broadcast consumption is allowed.
    pub consume_broadcast_enable: bool,
    /// Queues of the group's retry topic (`%RETRY%group`).
    pub retry_queue_nums: i32,
    /// Reconsume attempts before a message goes to `%DLQ%group`.
    pub retry_max_times: i32,
    /// Broker the group reads from.
    pub broker_id: i64,
    /// Broker to read from when consumption is slow.
    pub which_broker_when_consume_slowly: i64,
    /// Tell consumers when the group's membership changes.
    pub notify_consumer_ids_changed_enable: bool,
}

impl Default for SubscriptionGroupConfig {
    fn default() -> Self {
        SubscriptionGroupConfig {
            group_name: String::new(),
            consume_enable: true,
            consume_from_min_enable: true,
            consume_broadcast_enable: true,
            retry_queue_nums: 1,
            retry_max_times: DEFAULT_RETRY_MAX_TIMES,
            broker_id: 0,
            which_broker_when_consume_slowly: 1,
            notify_consumer_ids_changed_enable: true,
        }
    }
}

impl SubscriptionGroupConfig {
    /// A group with RocketMQ's defaults.
    pub fn new(name: impl Into<String>) -> Self {
        SubscriptionGroupConfig {
            group_name: name.into(),
            ..Default::default()
        }
    }
}

use ferromq_engine::DataVersion;

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct GroupsFile {
    subscription_group_table: BTreeMap<String, SubscriptionGroupConfig>,
    data_version: DataVersion,
}

/// Why a group is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    /// The group is unknown and `autoCreateSubscriptionGroup` is off.
    #[error(
        "subscription group [{}] does not exist",
        ferromq_engine::message::name_for_message(.0)
    )]
    NotExist(String),
    /// The name breaks RocketMQ's rules for group names.
    #[error("{0}")]
    Invalid(String),
}

/// The group table.
#[derive(Debug)]
pub struct SubscriptionGroupManager {
    auto_create: bool,
    file: Arc<Mutex<GroupsFile>>,
    /// Writes the file after changes, at most once per interval.
    writer: CoalescedWriter,
}

impl SubscriptionGroupManager {
    /// Load `config_dir/subscriptionGroup.json` (or its `.bak`), adding the system groups.
    ///
    /// # Errors
    /// An I/O error other than a missing file, a file that is not the JSON
    /// shape, or a writer thread that cannot start.
    pub fn load(config_dir: &Path, auto_create: bool) -> std::io::Result<Self> {
        let path = config_dir.join("subscriptionGroup.json");
        let mut file: GroupsFile =
            crate::util::read_with_backup(&path, "subscription group", |text| {
                json::parse_lenient(text)
                    .and_then(serde_json::from_value::<GroupsFile>)
                    .map_err(|e| e.to_string())
            })?
            .unwrap_or_default();
        for g in SYSTEM_GROUPS {
            file.subscription_group_table
                .entry((*g).to_string())
                .or_insert_with(|| SubscriptionGroupConfig::new(*g));
        }
        // Keys are the truth; a hand-edited entry may lack its name.
        for (k, v) in file.subscription_group_table.iter_mut() {
            if v.group_name.is_empty() {
                v.group_name = k.clone();
            }
        }
        let bad = file
            .subscription_group_table
            .keys()
            .filter(|k| ferromq_engine::validate_group(k).is_err())
            .count();
        if bad > 0 {
            tracing::warn!(
                groups = bad,
                "subscriptionGroup.json holds groups whose names break the rules; kept, but no request can use them"
            );
        }
        let file = Arc::new(Mutex::new(file));
        let table = Arc::clone(&file);
        let writer = CoalescedWriter::start(
            "subscriptionGroup.json",
            CONFIG_PERSIST_INTERVAL,
            Box::new(move || {
                // A copy taken under the lock, encoded outside it.
                let copy = table.locked().clone();
                let text = serde_json::to_string_pretty(&copy).map_err(|e| e.to_string())?;
                atomic_write(&path, text.as_bytes())
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))
            }),
        )?;
        Ok(SubscriptionGroupManager {
            auto_create,
            file,
            writer,
        })
    }

    /// Write the file now if a change waits (at shutdown).
    ///
    /// # Errors
    /// The write's error.
    pub fn flush(&self) -> std::io::Result<()> {
        self.writer.flush_if_dirty().map_err(std::io::Error::other)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GroupsFile> {
        self.file.locked()
    }

    /// The group's configuration, created (and persisted) when unknown and
    /// auto-creation is on.
    ///
    /// # Errors
    /// [`GroupError::Invalid`] for a name that breaks the rules (nothing is
    /// created); [`GroupError::NotExist`] when unknown and auto-creation is off.
    pub fn find_or_create(&self, group: &str) -> Result<SubscriptionGroupConfig, GroupError> {
        ferromq_engine::validate_group(group).map_err(GroupError::Invalid)?;
        {
            let f = self.lock();
            if let Some(c) = f.subscription_group_table.get(group) {
                return Ok(c.clone());
            }
        }
        if !self.auto_create {
            return Err(GroupError::NotExist(group.to_string()));
        }
        let cfg = SubscriptionGroupConfig::new(group);
        self.upsert(cfg.clone())?;
        tracing::info!(%group, "subscription group auto-created");
        Ok(cfg)
    }

    /// The group's configuration, if known.
    pub fn get(&self, group: &str) -> Option<SubscriptionGroupConfig> {
        self.lock().subscription_group_table.get(group).cloned()
    }

    /// Every group.
    pub fn all(&self) -> Vec<SubscriptionGroupConfig> {
        self.lock()
            .subscription_group_table
            .values()
            .cloned()
            .collect()
    }

    /// The table's data version.
    pub fn data_version(&self) -> DataVersion {
        self.lock().data_version
    }

    /// The table as RocketMQ encodes it for GET_ALL_SUBSCRIPTIONGROUP_CONFIG:
    /// `{"subscriptionGroupTable":{...},"dataVersion":{...}}`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&*self.lock()).unwrap_or_default()
    }

    /// Replace the whole table with a master's (RocketMQ's
    /// `SlaveSynchronize.syncSubscriptionGroupConfig`) when its data version
    /// differs from ours, and persist it. Returns whether anything changed.
    ///
    /// # Errors
    /// A message when `text` is not a subscription-group table, or the file
    /// cannot be written.
    pub fn replace_from_json(&self, text: &str) -> Result<bool, String> {
        let mut incoming: GroupsFile = json::parse_lenient(text)
            .and_then(serde_json::from_value::<GroupsFile>)
            .map_err(|e| e.to_string())?;
        let before = incoming.subscription_group_table.len();
        incoming
            .subscription_group_table
            .retain(|k, _| ferromq_engine::validate_group(k).is_ok());
        if incoming.subscription_group_table.len() != before {
            tracing::warn!(
                dropped = before - incoming.subscription_group_table.len(),
                "the master's table names groups that break the rules; not copied"
            );
        }
        let mut f = self.lock();
        if f.data_version == incoming.data_version {
            return Ok(false);
        }
        *f = incoming;
        for (k, v) in f.subscription_group_table.iter_mut() {
            if v.group_name.is_empty() {
                v.group_name = k.clone();
            }
        }
        drop(f);
        self.writer.flush()?;
        Ok(true)
    }

    /// Create or replace a group; the file is written within the persist
    /// interval (a write failure is logged and retried).
    ///
    /// # Errors
    /// [`GroupError::Invalid`] for a name that breaks the rules.
    pub fn upsert(&self, cfg: SubscriptionGroupConfig) -> Result<(), GroupError> {
        ferromq_engine::validate_group(&cfg.group_name).map_err(GroupError::Invalid)?;
        let mut f = self.lock();
        f.subscription_group_table
            .insert(cfg.group_name.clone(), cfg);
        f.data_version.counter += 1;
        f.data_version.timestamp = now_ms();
        drop(f);
        self.writer.mark_dirty();
        Ok(())
    }
}

impl SubscriptionGroupManager {
    /// Return once every change made so far is in the file (an admin's
    /// change, answered only when it would survive a crash).
    ///
    /// # Errors
    /// The write's error.
    pub fn persist(&self) -> std::io::Result<()> {
        self.writer.write_through().map_err(std::io::Error::other)
    }

    /// Remove a group (DELETE_SUBSCRIPTIONGROUP); returns whether it was
    /// known. The file is written within the persist interval, or at once
    /// with [`SubscriptionGroupManager::flush`].
    pub fn remove(&self, group: &str) -> bool {
        let mut f = self.lock();
        if f.subscription_group_table.remove(group).is_none() {
            return false;
        }
        f.data_version.counter += 1;
        f.data_version.timestamp = now_ms();
        drop(f);
        self.writer.mark_dirty();
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_create_persist_and_reload() {
        let d = tempfile::tempdir().unwrap();
        let m = SubscriptionGroupManager::load(d.path(), true).unwrap();
        assert!(m.get("TOOLS_CONSUMER").is_some());
        let g = m.find_or_create("G1").unwrap();
        assert_eq!((g.retry_queue_nums, g.retry_max_times), (1, 16));
        m.flush().unwrap();
        let text = std::fs::read_to_string(d.path().join("subscriptionGroup.json")).unwrap();
        assert!(text.contains("\"subscriptionGroupTable\""));
        assert!(text.contains("\"retryMaxTimes\": 16"));
        let again = SubscriptionGroupManager::load(d.path(), false).unwrap();
        assert!(again.get("G1").is_some());
        assert_eq!(
            again.find_or_create("G2"),
            Err(GroupError::NotExist("G2".into()))
        );
    }

    #[test]
    fn reads_java_written_file() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("subscriptionGroup.json"),
            r#"{"dataVersion":{"counter":3,"timestamp":1},"subscriptionGroupTable":{
               "g":{"brokerId":0,"consumeBroadcastEnable":true,"consumeEnable":true,
               "consumeFromMinEnable":true,"groupName":"g","notifyConsumerIdsChangedEnable":true,
               "retryMaxTimes":3,"retryQueueNums":1,"whichBrokerWhenConsumeSlowly":1,
               "groupRetryPolicy":{"type":"CUSTOMIZED"}}}}"#,
        )
        .unwrap();
        let m = SubscriptionGroupManager::load(d.path(), false).unwrap();
        assert_eq!(m.get("g").unwrap().retry_max_times, 3);
        std::fs::write(d.path().join("subscriptionGroup.json"), "{nope").unwrap();
        assert!(SubscriptionGroupManager::load(d.path(), false).is_err());
    }

    #[test]
    fn slave_copies_the_master_table_by_version() {
        let dm = tempfile::tempdir().unwrap();
        let ds = tempfile::tempdir().unwrap();
        let master = SubscriptionGroupManager::load(dm.path(), true).unwrap();
        let mut g = SubscriptionGroupConfig::new("G1");
        g.retry_max_times = 3;
        // Two changes on the master, one on the slave: their versions differ even
        // when both tables change within the same millisecond.
        master.upsert(g.clone()).unwrap();
        master.upsert(g).unwrap();
        let slave = SubscriptionGroupManager::load(ds.path(), true).unwrap();
        slave.find_or_create("LOCAL").unwrap();
        assert_eq!(slave.replace_from_json(&master.to_json()), Ok(true));
        assert_eq!(slave.get("G1").unwrap().retry_max_times, 3);
        assert!(slave.get("LOCAL").is_none());
        assert_eq!(slave.data_version(), master.data_version());
        assert_eq!(slave.replace_from_json(&master.to_json()), Ok(false));
        let text = std::fs::read_to_string(ds.path().join("subscriptionGroup.json")).unwrap();
        assert!(text.contains("G1"));
        assert!(slave.replace_from_json("[1]").is_err());
    }
}
