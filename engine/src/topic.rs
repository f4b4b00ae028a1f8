//! Topic configurations, persisted in `config/topics.json` in RocketMQ's shape.
//!
//! Changes are written by a [`CoalescedWriter`] at most every
//! [`CONFIG_PERSIST_INTERVAL`] and at
//! shutdown, not once per change; each write keeps the previous file as
//! `topics.json.bak`, and loading falls back to it when
//! `topics.json` is missing or does not parse. A topic auto-created less than
//! an interval before a crash is learned again at open from its consume queues
//! when it got a message (with `max(queue id + 1, defaultTopicQueueNums)`
//! queues); a topic an administrator configured is written before the change
//! is acknowledged (`TopicTable::persist`), so it keeps its queue counts.

use crate::fs::write_atomically;
use crate::sync::RwLockExt;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::persist::{CoalescedWriter, CONFIG_PERSIST_INTERVAL};

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

/// What `topics.json` holds, as written (the same shape as [`TopicsFile`]).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TopicsSnapshot<'a> {
    topic_config_table: &'a BTreeMap<String, TopicConfig>,
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

    /// Bring the write-queue index up to date for one topic (after an insert
    /// or replace of that topic only): constant work, where [`Self::reindex`]
    /// is linear in the table (a thousand new topics would cost a million steps).
    fn reindex_one(&mut self, name: &str) {
        match self.topic_config_table.get(name) {
            Some(c) if crate::message::validate_topic(name).is_ok() => {
                let n = c.write_queue_nums;
                match self.write_queues.get_mut(name) {
                    Some(v) => *v = n,
                    None => {
                        self.write_queues.insert(name.to_string(), n);
                    }
                }
            }
            _ => {
                self.write_queues.remove(name);
            }
        }
    }
}

/// The topic table.
#[derive(Debug)]
pub(crate) struct TopicTable {
    inner: Arc<RwLock<TopicsFile>>,
    /// Writes `topics.json` after changes, at most once per interval.
    writer: CoalescedWriter,
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
    /// Load `config_dir/topics.json`, or its `.bak` copy when the file is
    /// missing or does not parse (the copy used is logged); empty when neither
    /// exists.
    ///
    /// # Errors
    /// [`Error::Corruption`] when the file is damaged and no good copy is left;
    /// [`Error::Io`] when the directory or a file cannot be read, or the writer
    /// thread cannot start.
    pub fn load(config_dir: &Path) -> Result<TopicTable> {
        std::fs::create_dir_all(config_dir)
            .map_err(|e| Error::io(format!("creating {}", config_dir.display()), e))?;
        let path = config_dir.join("topics.json");
        let mut file = read_topics_file(&path)?;
        file.reindex();
        let inner = Arc::new(RwLock::new(file));
        let table = Arc::clone(&inner);
        let target = path.clone();
        let writer = CoalescedWriter::start(
            "topics.json",
            CONFIG_PERSIST_INTERVAL,
            Box::new(move || {
                // A copy taken under the lock, encoded outside it: changes
                // (a burst of new topics) do not wait for the encoding.
                let (topic_config_table, data_version) = {
                    let t = table.read_locked();
                    (t.topic_config_table.clone(), t.data_version)
                };
                let json = serde_json::to_vec_pretty(&TopicsSnapshot {
                    topic_config_table: &topic_config_table,
                    data_version,
                })
                .map_err(|e| format!("encoding topics.json: {e}"))?;
                write_atomically(&target, &json).map_err(|e| e.to_string())
            }),
        )
        .map_err(|e| Error::io("starting the topics.json writer", e))?;
        Ok(TopicTable {
            inner,
            writer,
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
        let found = self.inner.read_locked().write_queues.get(topic).copied();
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

    /// [`Self::changed`] when only `topic` changed (inserted or replaced).
    fn changed_one(&self, t: &mut TopicsFile, topic: &str) {
        t.reindex_one(topic);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    pub fn get(&self, topic: &str) -> Option<TopicConfig> {
        self.inner
            .read_locked()
            .topic_config_table
            .get(topic)
            .cloned()
    }

    pub fn all(&self) -> Vec<TopicConfig> {
        self.inner
            .read_locked()
            .topic_config_table
            .values()
            .cloned()
            .collect()
    }

    /// Insert or replace a topic; the table is written within the persist
    /// interval. Returns the stored config.
    pub fn upsert(&self, cfg: TopicConfig) -> Result<TopicConfig> {
        let mut t = self.inner.write_locked();
        t.topic_config_table
            .insert(cfg.topic_name.clone(), cfg.clone());
        self.changed_one(&mut t, &cfg.topic_name);
        t.data_version.counter += 1;
        t.data_version.timestamp = crate::sys::now_ms();
        drop(t);
        self.writer.mark_dirty();
        Ok(cfg)
    }

    /// Remove a topic; the table is written within the persist interval.
    /// Returns whether it was there.
    pub fn remove(&self, topic: &str) -> bool {
        let mut t = self.inner.write_locked();
        if t.topic_config_table.remove(topic).is_none() {
            return false;
        }
        self.changed(&mut t);
        t.data_version.counter += 1;
        t.data_version.timestamp = crate::sys::now_ms();
        drop(t);
        self.writer.mark_dirty();
        true
    }

    /// The table's data version.
    pub fn data_version(&self) -> DataVersion {
        self.inner.read_locked().data_version
    }

    /// Replace the whole table and its version (a slave copying its master's) and persist it.
    pub fn replace_all(&self, topics: Vec<TopicConfig>, version: DataVersion) -> Result<()> {
        let mut t = self.inner.write_locked();
        t.topic_config_table = topics
            .into_iter()
            .map(|c| (c.topic_name.clone(), c))
            .collect();
        self.changed(&mut t);
        t.data_version = version;
        drop(t);
        self.writer
            .flush()
            .map_err(|e| Error::io("writing topics.json", std::io::Error::other(e)))
    }

    /// Create `topic` with `queues` queues unless it exists; returns its write queue count.
    pub fn get_or_create(&self, topic: &str, queues: u32) -> Result<u32> {
        if let Some(n) = self.write_queues(topic) {
            return Ok(n);
        }
        let mut t = self.inner.write_locked();
        if let Some(c) = t.topic_config_table.get(topic) {
            return Ok(c.write_queue_nums);
        }
        t.topic_config_table
            .insert(topic.to_string(), TopicConfig::new(topic, queues));
        self.changed_one(&mut t, topic);
        t.data_version.counter += 1;
        t.data_version.timestamp = crate::sys::now_ms();
        drop(t);
        self.writer.mark_dirty();
        tracing::info!(topic, queues, "topic auto-created");
        Ok(queues)
    }

    /// Return once every change made so far is in `topics.json` (one write,
    /// shared with concurrent callers; none when a later write already has them).
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be written (the change stays in the
    /// table and is written again on the next round).
    pub fn persist(&self) -> Result<()> {
        self.writer
            .write_through()
            .map_err(|e| Error::io("writing topics.json", std::io::Error::other(e)))
    }

    /// Write `topics.json` now (at shutdown).
    pub fn flush(&self) -> Result<()> {
        self.writer
            .flush()
            .map_err(|e| Error::io("writing topics.json", std::io::Error::other(e)))
    }
}

/// Read `topics.json`, falling back to `topics.json.bak` when it is missing,
/// empty or does not parse; an empty table when neither exists.
fn read_topics_file(path: &Path) -> Result<TopicsFile> {
    let bak = path.with_extension("json.bak");
    let mut damaged: Option<Error> = None;
    for p in [path, bak.as_path()] {
        let bytes = match std::fs::read(p) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(format!("reading {}", p.display()), e)),
        };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            tracing::error!(path = %p.display(), "topic table file is empty");
            damaged.get_or_insert_with(|| Error::corruption(p, 0, "topics.json is empty"));
            continue;
        }
        match serde_json::from_slice::<TopicsFile>(&bytes) {
            Ok(f) => {
                if p != path {
                    tracing::warn!(
                        path = %p.display(),
                        topics = f.topic_config_table.len(),
                        "topics.json is missing or damaged; loaded the topic table from its backup"
                    );
                    set_aside_damaged(path);
                } else {
                    tracing::debug!(path = %p.display(), "topic table loaded");
                }
                return Ok(f);
            }
            Err(e) => {
                tracing::error!(path = %p.display(), error = %e, "topic table file does not parse");
                damaged.get_or_insert_with(|| {
                    Error::corruption(
                        p,
                        e.column() as u64,
                        format!("topics.json does not parse: {e}"),
                    )
                });
            }
        }
    }
    match damaged {
        Some(e) => Err(e),
        None => Ok(TopicsFile::default()),
    }
}

/// Rename a damaged `path` to `path.damaged` (kept for inspection), so that
/// the next write does not copy it over the good backup it was read from.
fn set_aside_damaged(path: &Path) {
    if !path.exists() {
        return;
    }
    let aside = path.with_extension("json.damaged");
    match std::fs::rename(path, &aside) {
        Ok(()) => tracing::warn!(path = %aside.display(), "the damaged file is kept aside"),
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "cannot set the damaged file aside")
        }
    }
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
