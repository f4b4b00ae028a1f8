//! Topic configurations, persisted in `config/topics.json` in RocketMQ's shape.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Read and write permissions (`perm`): READ 4 | WRITE 2 = 6 by default.
pub const PERM_READ_WRITE: u32 = 6;

/// One topic's configuration (RocketMQ's `TopicConfig`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicConfig {
    /// Topic name.
    pub topic_name: String,
    /// Queues readers see.
    pub read_queue_nums: u32,
    /// Queues writers may use.
    pub write_queue_nums: u32,
    /// Permission bits.
    #[serde(default = "default_perm")]
    pub perm: u32,
    /// Filter type; always `SINGLE_TAG` here.
    #[serde(default = "default_filter")]
    pub topic_filter_type: String,
    /// System flags.
    #[serde(default)]
    pub topic_sys_flag: u32,
    /// Ordered topic.
    #[serde(default)]
    pub order: bool,
}

fn default_perm() -> u32 {
    PERM_READ_WRITE
}

fn default_filter() -> String {
    "SINGLE_TAG".into()
}

impl TopicConfig {
    /// A read-write topic with `queues` read and write queues.
    pub fn new(name: impl Into<String>, queues: u32) -> Self {
        TopicConfig {
            topic_name: name.into(),
            read_queue_nums: queues,
            write_queue_nums: queues,
            perm: PERM_READ_WRITE,
            topic_filter_type: default_filter(),
            topic_sys_flag: 0,
            order: false,
        }
    }
}

/// Version of a config table (RocketMQ's `DataVersion`): bumped at every change,
/// compared by slaves to decide whether to copy their master's table.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DataVersion {
    /// Time of the last change, ms since the epoch.
    pub timestamp: i64,
    /// Number of changes.
    pub counter: i64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TopicsFile {
    topic_config_table: BTreeMap<String, TopicConfig>,
    #[serde(default)]
    data_version: DataVersion,
}

/// The topic table.
#[derive(Debug)]
pub(crate) struct TopicTable {
    path: PathBuf,
    inner: RwLock<TopicsFile>,
}

impl TopicTable {
    pub fn load(config_dir: &Path) -> Result<TopicTable> {
        std::fs::create_dir_all(config_dir)
            .map_err(|e| Error::io(format!("creating {}", config_dir.display()), e))?;
        let path = config_dir.join("topics.json");
        let file = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<TopicsFile>(&bytes).map_err(|e| {
                Error::corruption(
                    &path,
                    e.column() as u64,
                    format!("topics.json does not parse: {e}"),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => TopicsFile::default(),
            Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
        };
        Ok(TopicTable {
            path,
            inner: RwLock::new(file),
        })
    }

    /// Write queue count of `topic`, if it exists.
    pub fn write_queues(&self, topic: &str) -> Option<u32> {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .topic_config_table
            .get(topic)
            .map(|t| t.write_queue_nums)
    }

    pub fn get(&self, topic: &str) -> Option<TopicConfig> {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .topic_config_table
            .get(topic)
            .cloned()
    }

    pub fn all(&self) -> Vec<TopicConfig> {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .topic_config_table
            .values()
            .cloned()
            .collect()
    }

    /// Insert or replace a topic and persist the table. Returns the stored config.
    pub fn upsert(&self, cfg: TopicConfig) -> Result<TopicConfig> {
        let mut t = self.inner.write().unwrap_or_else(|e| e.into_inner());
        t.topic_config_table
            .insert(cfg.topic_name.clone(), cfg.clone());
        t.data_version.counter += 1;
        t.data_version.timestamp = crate::message::now_ms();
        self.persist(&t)?;
        Ok(cfg)
    }

    /// The table's data version.
    pub fn data_version(&self) -> DataVersion {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .data_version
    }

    /// Replace the whole table and its version (a slave copying its master's) and persist it.
    pub fn replace_all(&self, topics: Vec<TopicConfig>, version: DataVersion) -> Result<()> {
        let mut t = self.inner.write().unwrap_or_else(|e| e.into_inner());
        t.topic_config_table = topics
            .into_iter()
            .map(|c| (c.topic_name.clone(), c))
            .collect();
        t.data_version = version;
        self.persist(&t)
    }

    /// Create `topic` with `queues` queues unless it exists; returns its write queue count.
    pub fn get_or_create(&self, topic: &str, queues: u32) -> Result<u32> {
        if let Some(n) = self.write_queues(topic) {
            return Ok(n);
        }
        let mut t = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = t.topic_config_table.get(topic) {
            return Ok(c.write_queue_nums);
        }
        t.topic_config_table
            .insert(topic.to_string(), TopicConfig::new(topic, queues));
        t.data_version.counter += 1;
        t.data_version.timestamp = crate::message::now_ms();
        if let Err(e) = self.persist(&t) {
            t.topic_config_table.remove(topic);
            return Err(e);
        }
        tracing::info!(topic, queues, "topic auto-created");
        Ok(queues)
    }

    pub fn flush(&self) -> Result<()> {
        let t = self.inner.read().unwrap_or_else(|e| e.into_inner());
        self.persist(&t)
    }

    /// Write to `.tmp`, fsync, keep the old file as `.bak`, rename, fsync the directory.
    fn persist(&self, t: &TopicsFile) -> Result<()> {
        let json = serde_json::to_vec_pretty(t)
            .map_err(|e| Error::io("encoding topics.json", std::io::Error::other(e)))?;
        write_atomically(&self.path, &json)
    }
}

/// Replace `path` with `data` durably: `.tmp` + fsync, old content to `.bak`, rename, dir fsync.
pub(crate) fn write_atomically(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    let bak = path.with_extension("json.bak");
    let mut f = std::fs::File::create(&tmp)
        .map_err(|e| Error::io(format!("creating {}", tmp.display()), e))?;
    f.write_all(data)
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
    if path.exists() {
        let _ = std::fs::copy(path, &bak);
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        Error::io(
            format!("renaming {} to {}", tmp.display(), path.display()),
            e,
        )
    })?;
    if let Some(dir) = path.parent() {
        crate::mapped_file::sync_dir(dir)?;
    }
    if let Some(h) = crate::io::hook_for(path) {
        h.replaced(path, data);
    }
    Ok(())
}
