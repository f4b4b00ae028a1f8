//! `ferromq-engine`: an embedded, RocketMQ-compatible message store.
//!
//! Messages are appended to a commitlog of memory-mapped files whose records are
//! byte-compatible with RocketMQ 4.x; a dispatch thread indexes them into one
//! consume queue per (topic, queue id); flush threads make them durable on a
//! timer (`ASYNC_FLUSH`) or before a put returns (`SYNC_FLUSH`, group commit).
//! The store has no async runtime and no network: it is a plain Rust API.
//!
//! ```
//! use std::time::Duration;
//!
//! use ferromq_engine::{FlushDiskType, Message, MessageFilter, MessageStore, StoreConfig};
//!
//! let dir = std::env::temp_dir().join(format!("ferromq-lib-example-{}", std::process::id()));
//! let mut cfg = StoreConfig::new(&dir);
//! cfg.mapped_file_size_commit_log = 16 << 20; // 16 MiB files (default 1 GiB, allocated in full)
//! cfg.flush_disk_type = FlushDiskType::SyncFlush;
//! let store = MessageStore::open(cfg)?;
//! let put = store.put_message(&Message::new("Orders", b"order-1".to_vec()).with_tags("new"))?;
//! println!("stored at queue offset {} as {}", put.queue_offset, put.msg_id());
//! // Dispatch into the consume queue is asynchronous: wait before reading your own write.
//! assert!(store.wait_dispatched(&put, Duration::from_secs(5)));
//! let filter = MessageFilter::from_expression("new");
//! let got = store.get_message("billing", "Orders", 0, put.queue_offset, 32, &filter)?;
//! for m in &got.messages {
//!     println!("{:?}", m.decode()?.body);
//! }
//! store.shutdown()?;
//! let _ = std::fs::remove_dir_all(&dir);
//! # Ok::<(), ferromq_engine::Error>(())
//! ```
//!
//! # Layers
//!
//! Mostly, a layer uses the ones below it (`docs/architecture.md` in the
//! repository lists the exceptions, and names every module, thread and step
//! of the put, dispatch and pull paths).
//!
//! - **store**: [`MessageStore`], the embedding API: open (recovery, as
//!   named steps), put, read, admin, shutdown.
//! - **services**: background threads that follow the commitlog by offset:
//!   `dispatch` (consume queues and index), `flush`, `retention`, `schedule`
//!   (delayed messages), `persist` (config files); what they share (wake-up
//!   signal, panic guard, thread set) is in `service`.
//! - **storage**: `commitlog`, `consume_queue`, `index`, with `checkpoint`,
//!   `topic` and `damage`.
//! - **bottom**: `mapped_file` and `mapped_file_queue`, `io` (write paths and
//!   the test I/O hook), `pool`, `fs`, `sys`, `sync`; `config` and `message`
//!   (record codec) are used by every layer.
//!
//! Public modules: `config`, `error`, `io`, `message`, `persist`,
//! `retention`, `store`, `sync`, `sys`, and the re-exports below. The others
//! are internal; the cargo feature `internals` makes them public for the
//! criterion benches and tests (no stability promise), and `fault-injection`
//! compiles the test I/O hook (`io::install_hook`).
#![warn(missing_docs)]

// The embedding API and what the workspace's other crates share: always public.
pub mod config;
pub mod error;
pub mod io;
pub mod message;
pub mod persist;
pub mod retention;
pub mod store;
pub mod sync;
pub mod sys;

/// Declares the engine's internal modules: private, or public with the
/// `internals` cargo feature (the criterion benches and the engine's own
/// tests use them; no stability promise). The few items only those users call
/// carry `cfg_attr(not(feature = "internals"), allow(dead_code))`.
macro_rules! internal_modules {
    ($($name:ident),* $(,)?) => {$(
        #[cfg(feature = "internals")]
        pub mod $name;
        #[cfg(not(feature = "internals"))]
        mod $name;
    )*};
}

internal_modules!(
    checkpoint,
    commitlog,
    consume_queue,
    damage,
    dispatch,
    flush,
    fs,
    index,
    live,
    mapped_file,
    mapped_file_queue,
    pool,
    schedule,
    service,
    timer,
    topic,
);

pub use config::{BrokerRole, FlushDiskType, StoreConfig};
pub use damage::{DamagedRecord, MAX_LISTED_DAMAGED_RECORDS};
pub use dispatch::ArrivalListener;
pub use error::{Error, Result};
pub use mapped_file::MappedBytes;
pub use message::{
    validate_group, validate_topic, Message, MessageExt, MessageProperties, MAX_GROUP_LEN,
    MAX_TOPIC_LEN,
};
pub use retention::{CleanPassReport, Clock, DiskUsage, RetentionStats, StoreEnv};
pub use schedule::SCHEDULE_TOPIC;
pub use store::CommitLogRecovery;
pub use store::{
    GetResult, GetStatus, LogTruncation, MessageFilter, MessageStore, PutCallback, PutResult,
    PutStatus, QueryResult, RecordFilter, RecoveryReport, ReplicaCallback, ReplicaWaiter,
    StoreStats, StoredMessage,
};
pub use timer::{TimerStats, TIMER_TOPIC};
pub use topic::{DataVersion, TopicConfig};

/// The README's code blocks, compiled and run as doc tests so that the
/// embedding example stays true (`cargo test -p ferromq-engine --doc`).
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
