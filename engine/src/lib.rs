//! `ferromq-engine`: an embedded, RocketMQ-compatible message store.
//!
//! Messages are appended to a commitlog of memory-mapped files whose records are
//! byte-compatible with RocketMQ 4.x; a dispatch thread indexes them into one
//! consume queue per (topic, queue id); flush threads make them durable on a
//! timer (`ASYNC_FLUSH`) or before a put returns (`SYNC_FLUSH`, group commit).
//! The store has no async runtime and no network: it is a plain Rust API.
//!
//! ```no_run
//! use ferromq_engine::{FlushDiskType, Message, MessageFilter, MessageStore, StoreConfig};
//!
//! let mut cfg = StoreConfig::new("/var/lib/myapp/store");
//! cfg.flush_disk_type = FlushDiskType::SyncFlush;
//! let store = MessageStore::open(cfg)?;
//! let put = store.put_message(&Message::new("Orders", b"order-1".to_vec()).with_tags("new"))?;
//! println!("stored at queue offset {} as {}", put.queue_offset, put.msg_id());
//! let got = store.get_message("billing", "Orders", 0, 0, 32, &MessageFilter::from_expression("new"))?;
//! for m in &got.messages {
//!     println!("{:?}", m.decode()?.body);
//! }
//! store.shutdown()?;
//! # Ok::<(), ferromq_engine::Error>(())
//! ```
#![warn(missing_docs)]

pub mod checkpoint;
pub mod commitlog;
pub mod config;
pub mod consume_queue;
pub mod damage;
pub mod dispatch;
pub mod error;
pub mod flush;
pub mod index;
pub mod io;
pub mod mapped_file;
pub mod mapped_file_queue;
pub mod message;
pub mod persist;
pub mod pool;
pub mod retention;
pub mod schedule;
mod service;
pub mod store;
pub mod sync;
pub mod sys;
pub mod topic;

pub use config::{BrokerRole, FlushDiskType, StoreConfig};
pub use damage::DamagedRecord;
pub use dispatch::ArrivalListener;
pub use error::{Error, Result};
pub use mapped_file::MappedBytes;
pub use message::{
    validate_group, validate_topic, Message, MessageExt, MessageProperties, MAX_GROUP_LEN,
    MAX_TOPIC_LEN,
};
pub use retention::{CleanPassReport, Clock, DiskUsage, RetentionStats, StoreEnv};
pub use store::{
    GetResult, GetStatus, MessageFilter, MessageStore, PutCallback, PutResult, PutStatus,
    QueryResult, RecoveryReport, ReplicaCallback, ReplicaWaiter, StoreStats, StoredMessage,
};
pub use topic::{DataVersion, TopicConfig};
