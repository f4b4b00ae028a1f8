//! Topic configurations, persisted in `config/topics.json` in RocketMQ's shape.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// Write queue count by topic: what every put looks up, in a hash map
    /// (one hash and one compare) rather than the sorted map the file is
    /// written from (a compare per level). Rebuilt after every change.
    #[serde(skip)]
    write_queues: hashbrown::HashMap<String, u32>,
    #[serde(default)]
    data_version: DataVersion,
}

impl TopicsFile {
    /// Rebuild the write-queue index from the table. Topics with illegal
    /// names (a hand-edited file, a master's table) are left out, so a put
    /// that finds its topic here needs no check of the name.
    fn reindex(&mut self) {
        self.write_queues = self
            .topic_config_table
            .iter()
            .filter(|(name, _)| crate::message::validate_topic(name).is_ok())
            .map(|(name, c)| (name.clone(), c.write_queue_nums))
            .collect();
    }
}

/// The topic table.
#[derive(Debug)]
pub(crate) struct TopicTable {
    path: PathBuf,
    inner: RwLock<TopicsFile>,
    /// Tells this table apart from any other in the process (for the
    /// per-thread cache of [`TopicTable::write_queues`]).
    id: u64,
    /// Moves on every change to the table, inside the write lock.
    generation: AtomicU64,
}

/// Source of [`TopicTable`] ids.
static NEXT_TABLE_ID: AtomicU64 = AtomicU64::new(1);

/// The last topic this thread looked up: (table id, table generation, topic,
/// write queue count). A producer puts to the same topic again and again; this
/// spares each put the table's lock (two locked instructions, which also wait
/// for the previous put's stores into the log to drain) and a hash lookup.
#[derive(Default)]
struct RecentTopic {
    table: u64,
    generation: u64,
    topic: String,
    write_queues: u32,
}

thread_local! {
    static RECENT_TOPIC: std::cell::RefCell<RecentTopic> =
        std::cell::RefCell::new(RecentTopic::default());
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
        let mut file = file;
        file.reindex();
        Ok(TopicTable {
            path,
            inner: RwLock::new(file),
            id: NEXT_TABLE_ID.fetch_add(1, Ordering::Relaxed),
            generation: AtomicU64::new(0),
        })
    }

    /// Write queue count of `topic`, if it exists with a legal name (a
    /// topic loaded or copied with an illegal one is not found).
    pub fn write_queues(&self, topic: &str) -> Option<u32> {
        // Load the generation first: content read after it is at least as new.
        let generation = self.generation.load(Ordering::Acquire);
        let hit = RECENT_TOPIC.with(|r| {
            let r = r.borrow();
            (r.table == self.id && r.generation == generation && r.topic == topic)
                .then_some(r.write_queues)
        });
        if hit.is_some() {
            return hit;
        }
        let found = self
            .inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .write_queues
            .get(topic)
            .copied();
        if let Some(n) = found {
            RECENT_TOPIC.with(|r| {
                let mut r = r.borrow_mut();
                r.table = self.id;
                r.generation = generation;
                r.topic.clear();
                r.topic.push_str(topic);
                r.write_queues = n;
            });
        }
        found
    }

    /// After a change to `t` (the table under its write lock): rebuild the
    /// index and move the generation, so no thread's cached count outlives it.
    fn changed(&self, t: &mut TopicsFile) {
        t.reindex();
        self.generation.fetch_add(1, Ordering::AcqRel);
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
        self.changed(&mut t);
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
        self.changed(&mut t);
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
        self.changed(&mut t);
        t.data_version.counter += 1;
        t.data_version.timestamp = crate::message::now_ms();
        if let Err(e) = self.persist(&t) {
            t.topic_config_table.remove(topic);
            self.changed(&mut t);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_write_queue_count_follows_changes_and_tables() {
        let a_dir = tempfile::tempdir().unwrap();
        let b_dir = tempfile::tempdir().unwrap();
        let a = TopicTable::load(a_dir.path()).unwrap();
        let b = TopicTable::load(b_dir.path()).unwrap();
        a.upsert(TopicConfig::new("T", 4)).unwrap();
        b.upsert(TopicConfig::new("T", 2)).unwrap();
        // The same thread, the same topic name, two tables: each its own count.
        for _ in 0..3 {
            assert_eq!(a.write_queues("T"), Some(4));
            assert_eq!(b.write_queues("T"), Some(2));
        }
        assert_eq!(a.write_queues("T"), Some(4));
        // A change is seen by the next lookup, cached or not.
        a.upsert(TopicConfig::new("T", 8)).unwrap();
        assert_eq!(a.write_queues("T"), Some(8));
        a.replace_all(vec![TopicConfig::new("U", 1)], DataVersion::default())
            .unwrap();
        assert_eq!(a.write_queues("T"), None);
        assert_eq!(a.write_queues("U"), Some(1));
        assert_eq!(a.get_or_create("V", 3).unwrap(), 3);
        assert_eq!(a.write_queues("V"), Some(3));
        // Another thread starts with nothing cached.
        std::thread::scope(|s| {
            s.spawn(|| assert_eq!(a.write_queues("U"), Some(1)));
        });
    }

    #[test]
    fn a_topic_with_an_illegal_name_in_the_file_is_not_found_for_puts() {
        let dir = tempfile::tempdir().unwrap();
        let t = TopicTable::load(dir.path()).unwrap();
        t.replace_all(
            vec![TopicConfig::new("bad name", 4), TopicConfig::new("Good", 4)],
            DataVersion::default(),
        )
        .unwrap();
        let reloaded = TopicTable::load(dir.path()).unwrap();
        assert_eq!(reloaded.write_queues("Good"), Some(4));
        assert_eq!(reloaded.write_queues("bad name"), None);
        assert!(reloaded.get("bad name").is_some(), "still listed as it was");
    }
}
