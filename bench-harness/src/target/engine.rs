//! The embedded engine, in-process: `ferromq_engine::MessageStore`.

use std::borrow::Cow;
use std::path::PathBuf;

use ferromq_engine::{FlushDiskType, Message, MessageStore, PutStatus, StoreConfig};

use crate::error::{BenchError, Result};
use crate::workload::{FlushMode, PutOutcome, PutRequest, Target, Workload};

/// Where to open the store.
#[derive(Debug, Clone)]
pub struct EngineTargetConfig {
    /// Store root directory (`storePathRootDir`); created fresh for each run.
    pub store_dir: PathBuf,
}

/// A `MessageStore` opened with RocketMQ's defaults, except the commitlog
/// file size and flush mode the workload asks for; the topic is created at
/// open with the workload's queue count.
///
/// One message per queue of the topic is built at open, so a put allocates
/// nothing on the harness's side.
pub struct EngineTarget {
    store: MessageStore,
    messages: Vec<Message>,
}

impl EngineTarget {
    /// Name used in reports.
    pub const NAME: &'static str = "engine (ferromq-engine, in-process)";
}

/// RocketMQ's spelling of a put status.
fn status_name(status: PutStatus) -> &'static str {
    match status {
        PutStatus::PutOk => "PUT_OK",
        PutStatus::FlushDiskTimeout => "FLUSH_DISK_TIMEOUT",
        PutStatus::FlushSlaveTimeout => "FLUSH_SLAVE_TIMEOUT",
        PutStatus::SlaveNotAvailable => "SLAVE_NOT_AVAILABLE",
    }
}

impl Target for EngineTarget {
    type Config = EngineTargetConfig;

    fn open(config: &EngineTargetConfig, workload: &Workload) -> Result<Self> {
        let mut cfg = StoreConfig::new(config.store_dir.clone());
        cfg.mapped_file_size_commit_log = workload.file_size_bytes;
        cfg.flush_disk_type = match workload.flush {
            FlushMode::Async => FlushDiskType::AsyncFlush,
            FlushMode::Sync => FlushDiskType::SyncFlush,
        };
        if !workload.store_settings.is_empty() {
            let mut props = ferromq_engine::config::Properties::parse(&cfg.to_properties());
            for (k, v) in &workload.store_settings {
                props.insert(k.clone(), v.clone());
            }
            cfg = StoreConfig::from_properties(&props)
                .map_err(|e| BenchError::new(format!("--set: {e}")))?
                .0;
        }
        let store = MessageStore::open(cfg).map_err(|e| {
            BenchError::new(format!(
                "MessageStore::open({}) failed: {e}",
                config.store_dir.display()
            ))
        })?;
        // Create the topic now, untimed: auto-creation on the first put writes
        // and fsyncs config/topics.json, which is not what a put costs.
        store
            .create_topic(&workload.topic, workload.queues)
            .map_err(|e| {
                BenchError::new(format!(
                    "cannot create topic {} with {} queues: {e}",
                    workload.topic, workload.queues
                ))
            })?;
        let body = workload.body();
        let messages = (0..workload.queues)
            .map(|q| Message::new(workload.topic.as_str(), body.clone()).with_queue_id(q))
            .collect();
        Ok(EngineTarget { store, messages })
    }

    fn put(&self, request: PutRequest) -> Result<PutOutcome> {
        let msg = &self.messages[request.queue_id as usize % self.messages.len()];
        let r = self
            .store
            .put_message(msg)
            .map_err(|e| BenchError::new(format!("put_message failed: {e}")))?;
        Ok(PutOutcome {
            status: Cow::Borrowed(status_name(r.status)),
            stored_bytes: u64::from(r.wrote_bytes),
        })
    }

    fn shutdown(&self) -> Result<()> {
        self.store
            .shutdown()
            .map_err(|e| BenchError::new(format!("MessageStore::shutdown failed: {e}")))
    }

    fn details(&self) -> Option<serde_json::Value> {
        let s = self.store.stats();
        Some(serde_json::json!({
            "transient_store_pool": s.transient_store_pool,
            "commit_backend": s.commit_backend,
            "commit_registered_buffers": s.commit_registered_buffers,
            "commit_counters": s.commit_counters,
            "commit_log_syncs": s.commit_log_syncs,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::run;

    #[test]
    fn status_spelling() {
        assert_eq!(status_name(PutStatus::PutOk), "PUT_OK");
        assert_eq!(
            status_name(PutStatus::FlushDiskTimeout),
            "FLUSH_DISK_TIMEOUT"
        );
    }

    #[test]
    fn engine_round_trip_small() {
        let tmp = tempfile::tempdir().unwrap();
        let mut w = Workload::new(1000);
        w.size_bytes = 128;
        w.producers = 2;
        w.file_size_bytes = 64 * 1024;
        let cfg = EngineTargetConfig {
            store_dir: tmp.path().join("store"),
        };
        let t = EngineTarget::open(&cfg, &w).unwrap();
        let m = run(&t, &w).unwrap();
        t.shutdown().unwrap();
        assert_eq!(m.messages, 1000);
        assert_eq!(m.put_errors, 0, "{:?}", m.first_error);
        assert_eq!(m.status_counts.get("PUT_OK"), Some(&1000));
        // Every record is the body plus RocketMQ's header and the topic.
        assert!(m.stored_bytes > 1000 * 128);
    }
}
