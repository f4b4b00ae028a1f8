//! Consumer offsets (`config/consumerOffset.json`), RocketMQ's `ConsumerOffsetManager`.
//!
//! The file is `{"offsetTable":{"topic@group":{0:123,1:45}}}` with fastjson's
//! unquoted integer keys; it is read leniently (quoted keys work too) and written
//! atomically (`.tmp`, fsync, `.bak` copy of the old file, rename).

use ferromq_engine::sync::LockExt;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use serde_json::Value;

use crate::remoting::json;
use crate::util::atomic_write;

/// Committed offsets per `topic@group` and queue.
#[derive(Debug)]
pub struct ConsumerOffsetManager {
    path: PathBuf,
    table: Mutex<BTreeMap<String, BTreeMap<u32, i64>>>,
    dirty: AtomicBool,
    /// Where each group's last pull that found messages ends, per
    /// `topic@group` and queue (RocketMQ 5's `pullOffsetTable`; in memory
    /// only). Less the committed offset, the messages in flight.
    pulled: Mutex<BTreeMap<String, BTreeMap<u32, i64>>>,
}

/// The table key RocketMQ uses.
pub fn offset_key(topic: &str, group: &str) -> String {
    format!("{topic}@{group}")
}

fn parse_table(text: &str) -> Result<BTreeMap<String, BTreeMap<u32, i64>>, String> {
    let v = json::parse_lenient(text).map_err(|e| e.to_string())?;
    let mut out = BTreeMap::new();
    if let Value::Object(t) = &v["offsetTable"] {
        for (key, queues) in t {
            let mut m = BTreeMap::new();
            if let Value::Object(q) = queues {
                for (qid, off) in q {
                    let (Ok(qid), Some(off)) = (qid.trim().parse::<u32>(), off.as_i64()) else {
                        return Err(format!("bad entry {key}/{qid}: {off}"));
                    };
                    m.insert(qid, off);
                }
            }
            out.insert(key.clone(), m);
        }
    }
    Ok(out)
}

impl ConsumerOffsetManager {
    /// Load `<config_dir>/consumerOffset.json` (falling back to the `.bak` copy
    /// when the file is missing or damaged; empty when neither exists).
    ///
    /// # Errors
    /// An I/O error other than "not found", or both copies damaged.
    pub fn load(config_dir: &Path) -> std::io::Result<Self> {
        let path = config_dir.join("consumerOffset.json");
        let table = crate::util::read_with_backup(&path, "consumer offset", parse_table)?
            .unwrap_or_default();
        Ok(ConsumerOffsetManager {
            path,
            table: Mutex::new(table),
            dirty: AtomicBool::new(false),
            pulled: Mutex::new(BTreeMap::new()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, BTreeMap<u32, i64>>> {
        self.table.locked()
    }

    /// Record a group's offset for a queue.
    pub fn commit(&self, group: &str, topic: &str, queue_id: u32, offset: i64) {
        self.lock()
            .entry(offset_key(topic, group))
            .or_default()
            .insert(queue_id, offset);
        self.dirty.store(true, Ordering::Release);
    }

    /// Record where a group's pull of a queue that found messages ends
    /// (its next begin offset).
    pub fn commit_pull(&self, group: &str, topic: &str, queue_id: u32, next_offset: i64) {
        let key = offset_key(topic, group);
        let mut pulled = self.pulled.locked();
        match pulled.get_mut(&key) {
            Some(m) => {
                m.insert(queue_id, next_offset);
            }
            None => {
                pulled.insert(key, BTreeMap::from([(queue_id, next_offset)]));
            }
        }
    }

    /// Where a group's last pull of a queue that found messages ended
    /// (RocketMQ 5's `queryPullOffset`; `None` before any).
    pub fn query_pull(&self, group: &str, topic: &str, queue_id: u32) -> Option<i64> {
        self.pulled
            .locked()
            .get(&offset_key(topic, group))
            .and_then(|m| m.get(&queue_id))
            .copied()
    }

    /// A group's stored offset for a queue.
    pub fn query(&self, group: &str, topic: &str, queue_id: u32) -> Option<i64> {
        self.lock()
            .get(&offset_key(topic, group))
            .and_then(|m| m.get(&queue_id))
            .copied()
    }

    /// Whether any queue of `topic` has an offset stored for `group`.
    pub fn has_topic_group(&self, topic: &str, group: &str) -> bool {
        self.lock()
            .get(&offset_key(topic, group))
            .is_some_and(|m| !m.is_empty())
    }

    /// Forget every group's offsets of `topic` (the topic was deleted);
    /// returns how many `topic@group` entries went.
    pub fn remove_topic(&self, topic: &str) -> usize {
        let mut t = self.lock();
        let before = t.len();
        t.retain(|k, _| k.rsplit_once('@').is_none_or(|(tp, _)| tp != topic));
        let n = before - t.len();
        drop(t);
        if n > 0 {
            self.dirty.store(true, Ordering::Release);
        }
        n
    }

    /// Forget `group`'s offsets of every topic (RocketMQ 5's
    /// `removeOffset(group)`, for DELETE_SUBSCRIPTIONGROUP with
    /// `cleanOffset`); returns how many `topic@group` entries went.
    pub fn remove_group(&self, group: &str) -> usize {
        let mut t = self.lock();
        let before = t.len();
        t.retain(|k, _| k.rsplit_once('@').is_none_or(|(_, g)| g != group));
        let n = before - t.len();
        drop(t);
        self.pulled
            .locked()
            .retain(|k, _| k.rsplit_once('@').is_none_or(|(_, g)| g != group));
        if n > 0 {
            self.dirty.store(true, Ordering::Release);
        }
        n
    }

    /// Copy a master's table over this one (RocketMQ's `offsetTable.putAll`: each
    /// `topic@group` entry of `text` replaces the local one; others stay), then
    /// mark it for the next write. Returns the number of entries copied.
    ///
    /// # Errors
    /// A message when `text` is not a consumer-offset table.
    pub fn merge_from_json(&self, text: &str) -> Result<usize, String> {
        let mut incoming = parse_table(text)?;
        // Only `topic@group` keys whose names follow the rules are copied.
        let before = incoming.len();
        incoming.retain(|k, _| {
            k.rsplit_once('@').is_some_and(|(t, g)| {
                ferromq_engine::validate_topic(t).is_ok()
                    && ferromq_engine::validate_group(g).is_ok()
            })
        });
        if incoming.len() != before {
            tracing::warn!(
                dropped = before - incoming.len(),
                "offsets of topics or groups whose names break the rules; not copied"
            );
        }
        let n = incoming.len();
        self.lock().extend(incoming);
        self.dirty.store(true, Ordering::Release);
        Ok(n)
    }

    /// Every committed offset as (topic, group, queue id, offset).
    pub fn entries(&self) -> Vec<(String, String, u32, i64)> {
        let t = self.lock();
        let mut out = Vec::new();
        for (key, queues) in t.iter() {
            let Some((topic, group)) = key.split_once('@') else {
                continue;
            };
            out.extend(
                queues
                    .iter()
                    .map(|(q, o)| (topic.to_string(), group.to_string(), *q, *o)),
            );
        }
        out
    }

    /// The file contents, fastjson style.
    pub fn to_json(&self) -> String {
        let t = self.lock();
        let entries: Vec<String> = t
            .iter()
            .map(|(k, q)| {
                let vals: Vec<(u32, String)> = q.iter().map(|(a, b)| (*a, b.to_string())).collect();
                format!(
                    "{}:{}",
                    json::string(k),
                    json::int_key_map(vals.iter().map(|(a, b)| (*a, b.as_str())), false)
                )
            })
            .collect();
        format!("{{\"offsetTable\":{{{}}}}}", entries.join(","))
    }

    /// Write the file if anything changed since the last write.
    ///
    /// # Errors
    /// The I/O error; the table stays marked dirty.
    pub fn persist(&self) -> std::io::Result<()> {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let text = self.to_json();
        atomic_write(&self.path, text.as_bytes()).inspect_err(|_| {
            self.dirty.store(true, Ordering::Release);
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_fastjson_file() {
        let d = tempfile::tempdir().unwrap();
        let m = ConsumerOffsetManager::load(d.path()).unwrap();
        assert_eq!(m.query("g", "T", 0), None);
        m.commit("g", "T", 0, 123);
        m.commit("g", "T", 3, 7);
        m.persist().unwrap();
        let text = std::fs::read_to_string(d.path().join("consumerOffset.json")).unwrap();
        assert_eq!(text, r#"{"offsetTable":{"T@g":{0:123,3:7}}}"#);
        let m2 = ConsumerOffsetManager::load(d.path()).unwrap();
        assert_eq!(m2.query("g", "T", 3), Some(7));
        std::fs::write(
            d.path().join("consumerOffset.json"),
            r#"{"offsetTable":{"T@g":{"1":5}}}"#,
        )
        .unwrap();
        assert_eq!(
            ConsumerOffsetManager::load(d.path())
                .unwrap()
                .query("g", "T", 1),
            Some(5)
        );
        std::fs::write(d.path().join("consumerOffset.json"), "{broken").unwrap();
        assert!(ConsumerOffsetManager::load(d.path()).is_err());
        std::fs::write(
            d.path().join("consumerOffset.json.bak"),
            r#"{"offsetTable":{"T@g":{2:9}}}"#,
        )
        .unwrap();
        let m3 = ConsumerOffsetManager::load(d.path()).unwrap();
        assert_eq!(m3.query("g", "T", 2), Some(9));
    }

    #[test]
    fn merge_replaces_entries_of_the_master() {
        let d = tempfile::tempdir().unwrap();
        let m = ConsumerOffsetManager::load(d.path()).unwrap();
        m.commit("g", "T", 0, 50);
        m.commit("g", "T", 1, 60);
        m.commit("h", "T", 0, 5);
        assert_eq!(
            m.merge_from_json(r#"{"offsetTable":{"T@g":{0:40}}}"#),
            Ok(1)
        );
        assert_eq!(m.query("g", "T", 0), Some(40));
        // putAll replaces the whole topic@group entry, as RocketMQ does.
        assert_eq!(m.query("g", "T", 1), None);
        assert_eq!(m.query("h", "T", 0), Some(5));
        assert!(m.merge_from_json("{nope").is_err());
        assert_eq!(
            m.merge_from_json(
                r#"{"offsetTable":{"T@a.b":{0:1},"../x@g":{0:1},"T@":{0:1},"T@ok":{0:2}}}"#
            ),
            Ok(1)
        );
        assert_eq!(m.query("ok", "T", 0), Some(2));
        assert_eq!(m.query("a.b", "T", 0), None);
        m.persist().unwrap();
        assert!(d.path().join("consumerOffset.json").exists());
    }
}
