//! The table of all consume queues, by topic and queue id.

use crate::sync::{LockExt, RwLockExt};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use crate::consume_queue::ConsumeQueue;
use crate::error::{Error, Result};

/// All consume queues, by topic and queue id.
pub(crate) struct CqTable {
    root: PathBuf,
    file_size: u64,
    queues: RwLock<HashMap<String, HashMap<u32, Arc<ConsumeQueue>>>>,
    /// Queues created by dispatch since the last `take_created` (a slave learns
    /// its topics from the log it follows).
    created: Mutex<Vec<(String, u32)>>,
    /// Deleted topics (`config/deletedTopics.json`): topic -> the commitlog
    /// end when it was deleted. Records of the topic below it get no unit
    /// (recovery and late dispatch do not bring the queues back).
    deleted: RwLock<HashMap<String, u64>>,
}

/// The file of [`CqTable`]'s deleted topics, under the config folder.
pub(crate) const DELETED_TOPICS_FILE: &str = "deletedTopics.json";

impl CqTable {
    pub fn new(root: PathBuf, file_size: u64) -> Self {
        CqTable {
            root,
            file_size,
            queues: RwLock::new(HashMap::new()),
            created: Mutex::new(Vec::new()),
            deleted: RwLock::new(HashMap::new()),
        }
    }

    /// Whether a record of `topic` at `commit_log_offset` was stored before
    /// the topic was deleted (it gets no unit).
    pub fn is_deleted(&self, topic: &str, commit_log_offset: u64) -> bool {
        let d = self.deleted.read_locked();
        !d.is_empty() && d.get(topic).is_some_and(|end| commit_log_offset < *end)
    }

    /// The deleted topics, with `topic` deleted at commitlog end `end` added
    /// (the caller persists them before deleting anything).
    pub fn deleted_with(&self, topic: &str, end: u64) -> HashMap<String, u64> {
        let mut d = self.deleted.read_locked().clone();
        d.insert(topic.to_string(), end);
        d
    }

    /// The deleted topics: topic -> the commitlog end when it was deleted.
    pub fn deleted(&self) -> HashMap<String, u64> {
        self.deleted.read_locked().clone()
    }

    /// Replace the deleted topics, dropping those whose records are all
    /// gone (`commit_log_min` past their end).
    pub fn set_deleted(&self, mut d: HashMap<String, u64>, commit_log_min: u64) {
        d.retain(|_, end| *end > commit_log_min);
        *self.deleted.write_locked() = d;
    }

    pub fn get(&self, topic: &str, queue_id: u32) -> Option<Arc<ConsumeQueue>> {
        self.queues
            .read_locked()
            .get(topic)
            .and_then(|m| m.get(&queue_id))
            .cloned()
    }

    pub fn get_or_create(&self, topic: &str, queue_id: u32) -> Result<Arc<ConsumeQueue>> {
        if let Some(q) = self.get(topic, queue_id) {
            return Ok(q);
        }
        let mut all = self.queues.write_locked();
        if let Some(q) = all.get(topic).and_then(|m| m.get(&queue_id)) {
            return Ok(Arc::clone(q));
        }
        // Names are data, never paths: only a valid topic name becomes a
        // folder (a name such as `../../x` would leave the store).
        crate::message::validate_topic(topic).map_err(|why| {
            Error::IllegalMessage(format!("no consume queue for an invalid topic name: {why}"))
        })?;
        let dir = self.root.join(topic).join(queue_id.to_string());
        let q = Arc::new(ConsumeQueue::load(&dir, topic, queue_id, self.file_size)?);
        all.entry(topic.to_string())
            .or_default()
            .insert(queue_id, Arc::clone(&q));
        self.created.locked().push((topic.to_string(), queue_id));
        Ok(q)
    }

    /// Queues created since the last call.
    pub fn take_created(&self) -> Vec<(String, u32)> {
        std::mem::take(&mut *self.created.locked())
    }

    /// Give back queues [`CqTable::take_created`] returned that the caller
    /// could not record yet (they come back with the next call).
    pub fn requeue_created(&self, back: Vec<(String, u32)>) {
        if !back.is_empty() {
            self.created.locked().extend(back);
        }
    }

    pub fn insert(&self, q: ConsumeQueue) {
        let mut all = self.queues.write_locked();
        all.entry(q.topic().to_string())
            .or_default()
            .insert(q.queue_id(), Arc::new(q));
    }

    /// Forget every queue of `topic` and delete its folder
    /// (`consumequeue/<topic>`); returns how many queues it had in the table.
    /// The files of a queue still in use elsewhere stay mapped until the
    /// last user lets go (they are unlinked, not truncated).
    pub fn remove_topic(&self, topic: &str) -> Result<usize> {
        crate::message::validate_topic(topic).map_err(Error::IllegalMessage)?;
        let gone = self.queues.write_locked().remove(topic);
        self.created.locked().retain(|(t, _)| t != topic);
        let dir = self.root.join(topic);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("deleting a topic's consume queues", e)),
        }
        Ok(gone.map_or(0, |m| m.len()))
    }

    pub fn all(&self) -> Vec<Arc<ConsumeQueue>> {
        self.queues
            .read_locked()
            .values()
            .flat_map(|m| m.values().cloned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_is_never_made_for_an_invalid_topic_name() {
        let dir = tempfile::tempdir().unwrap();
        let t = CqTable::new(dir.path().join("consumequeue"), 2000);
        for bad in ["../x", "a/b", "", "..", "a b"] {
            assert!(
                matches!(t.get_or_create(bad, 0), Err(Error::IllegalMessage(_))),
                "{bad:?}"
            );
        }
        assert!(!dir.path().join("x").exists());
        assert!(t.get_or_create("Good", 0).is_ok());
        assert!(t.all().len() == 1);
    }
}
