//! Store configuration: [`StoreConfig`], with RocketMQ's key names, units and defaults.
//!
//! Field names are the snake_case form of RocketMQ's `.properties` keys; a unit
//! suffix (`_ms`, `_hours`) is added where RocketMQ's key leaves it implicit.
//!
//! A RocketMQ 4.x broker file loads unchanged:
//!
//! ```
//! use ferromq_engine::config::{BrokerRole, Properties, StoreConfig};
//!
//! let props = Properties::parse(
//!     "brokerName=broker-a\nbrokerRole=SYNC_MASTER\n\
//!      storePathRootDir=/data/store\nmapedFileSizeCommitLog=1073741824\n",
//! );
//! let (config, warnings) = StoreConfig::from_properties(&props)?;
//! assert_eq!(config.broker_role, BrokerRole::SyncMaster);
//! assert_eq!(config.mapped_file_size_commit_log, 1 << 30);
//! assert!(warnings.is_empty()); // brokerName is a broker key: no warning
//! assert_eq!(props.get("brokerName"), Some("broker-a")); // still there for the broker
//! # Ok::<(), ferromq_engine::Error>(())
//! ```
//!
//! [`Properties`] reads the file, [`StoreConfig::from_properties`] maps keys to fields
//! and reports [`ConfigWarning`]s, [`StoreConfig::validate`] checks a config however it was
//! built, and [`StoreConfig::to_properties`] writes the effective values back out.

use std::path::PathBuf;

mod fields;
mod keys;
mod load;
mod properties;
#[cfg(test)]
mod tests;

pub use keys::{BROKER_KEYS, LEGACY_KEYS, LIVE_KEYS};
pub use load::{default_store_root, is_known_key};
pub use properties::Properties;

/// How the commitlog is made durable (`flushDiskType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum FlushDiskType {
    /// `ASYNC_FLUSH`: a background thread flushes every `flushIntervalCommitLog` ms.
    AsyncFlush,
    /// `SYNC_FLUSH`: a put returns once its bytes are durable (group commit).
    SyncFlush,
}

/// The broker's role in a master/slave group (`brokerRole`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum BrokerRole {
    /// `ASYNC_MASTER`: acknowledges once written locally.
    AsyncMaster,
    /// `SYNC_MASTER`: acknowledges once a slave has the message.
    SyncMaster,
    /// `SLAVE`: refuses writes, follows a master.
    Slave,
}

/// Configuration of a [`crate::MessageStore`].
///
/// Build one with [`StoreConfig::new`] and change fields, or read a RocketMQ
/// `.properties` file.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreConfig {
    /// `storePathRootDir`: root of the store directory.
    pub store_path_root_dir: PathBuf,
    /// `storePathCommitLog`: commitlog directory; `None` means `<root>/commitlog`.
    pub store_path_commit_log: Option<PathBuf>,
    /// `mappedFileSizeCommitLog` (old spelling `mapedFileSizeCommitLog`): bytes per commitlog file. Default 1 GiB.
    pub mapped_file_size_commit_log: u64,
    /// `mappedFileSizeConsumeQueue` (old spelling `mapedFileSizeConsumeQueue`): bytes per consume-queue file,
    /// rounded up to a multiple of 20. Default 6 000 000.
    pub mapped_file_size_consume_queue: u64,
    /// `flushDiskType`. Default `ASYNC_FLUSH`.
    pub flush_disk_type: FlushDiskType,
    /// `brokerRole`. Default `ASYNC_MASTER`.
    pub broker_role: BrokerRole,
    /// `flushIntervalCommitLog`: ms between async flushes. Default 500.
    pub flush_interval_commit_log_ms: u64,
    /// `flushCommitLogLeastPages`: dirty 4 KiB pages needed before an async flush. Default 4.
    pub flush_commit_log_least_pages: u32,
    /// `flushCommitLogThoroughInterval`: ms after which everything is flushed regardless. Default 10 000.
    pub flush_commit_log_thorough_interval_ms: u64,
    /// `flushCommitLogTimed`: sleep a fixed interval (true) or wake on each put (false). Default true.
    pub flush_commit_log_timed: bool,
    /// `flushIntervalConsumeQueue`: ms between consume-queue flushes. Default 1000.
    pub flush_interval_consume_queue_ms: u64,
    /// `flushConsumeQueueLeastPages`. Default 2.
    pub flush_consume_queue_least_pages: u32,
    /// `flushConsumeQueueThoroughInterval`: ms. Default 60 000.
    pub flush_consume_queue_thorough_interval_ms: u64,
    /// `syncFlushTimeout`: ms a SYNC_FLUSH put waits before FLUSH_DISK_TIMEOUT. Default 5000.
    pub sync_flush_timeout_ms: u64,
    /// `maxMessageSize`: largest body in bytes. Default 4 MiB.
    pub max_message_size: u32,
    /// `autoCreateTopicEnable`: create topics on first put. Default true.
    pub auto_create_topic_enable: bool,
    /// `defaultTopicQueueNums`: queues of an auto-created topic. Default 8.
    pub default_topic_queue_nums: u32,
    /// `warmMapedFileEnable`: pre-touch every page of a new commitlog file. Default false.
    pub warm_maped_file_enable: bool,
    /// `flushLeastPagesWhenWarmMapedFile`: pages between flushes while warming under SYNC_FLUSH. Default 4096.
    pub flush_least_pages_when_warm_maped_file: u32,
    /// `brokerIP1`: host part of the store address in offset msgIds. Default 127.0.0.1.
    pub broker_ip1: String,
    /// `listenPort`: port part of the store address in offset msgIds. Default 10911.
    pub listen_port: u16,
    /// `checkCRCOnRecover`: verify body CRCs while recovering. Default true.
    pub check_crc_on_recover: bool,
    /// `maxTransferBytesOnMessageInMemory`. Default 262 144.
    pub max_transfer_bytes_on_message_in_memory: u32,
    /// `maxTransferCountOnMessageInMemory`. Default 32.
    pub max_transfer_count_on_message_in_memory: u32,
    /// `maxTransferBytesOnMessageInDisk`. Default 65 536.
    pub max_transfer_bytes_on_message_in_disk: u32,
    /// `maxTransferCountOnMessageInDisk`. Default 8.
    pub max_transfer_count_on_message_in_disk: u32,
    /// `accessMessageInMemoryMaxRatio`: percent of RAM assumed cached. Default 40.
    pub access_message_in_memory_max_ratio: u32,
    /// `messageIndexEnable`: build the key index. Default true.
    pub message_index_enable: bool,
    /// `maxHashSlotNum`: hash slots per index file. Default 5 000 000.
    pub max_hash_slot_num: u32,
    /// `maxIndexNum`: entries per index file. Default 20 000 000.
    pub max_index_num: u32,
    /// `deleteWhen`: hours (0-23, `;`-separated) at which expired files are deleted. Default "04".
    pub delete_when: String,
    /// `fileReservedTime`: hours a commitlog file is kept after its last write. Default 72.
    pub file_reserved_time_hours: u64,
    /// `diskMaxUsedSpaceRatio`: percent of the partition above which deletion starts. Default 75 (clamped 10..=95).
    pub disk_max_used_space_ratio: u32,
    /// `diskSpaceWarningLevelRatio`: percent above which puts are refused. Default 90.
    pub disk_space_warning_level_ratio: u32,
    /// `diskSpaceCleanForciblyRatio`: percent above which unexpired files are deleted too. Default 85.
    pub disk_space_clean_forcibly_ratio: u32,
    /// `cleanFileForciblyEnable`. Default true.
    pub clean_file_forcibly_enable: bool,
    /// `deleteCommitLogFilesInterval`: ms between deleted files. Default 100.
    pub delete_commit_log_files_interval_ms: u64,
    /// `deleteConsumeQueueFilesInterval`: ms between consume queues cleaned. Default 100.
    pub delete_consume_queue_files_interval_ms: u64,
    /// `deleteFileBatchMax`: files deleted per pass at most. Default 10.
    pub delete_file_batch_max: u32,
    /// `destroyMapedFileIntervalForcibly`: ms before a file still in use is destroyed anyway. Default 120 000.
    pub destroy_maped_file_interval_forcibly_ms: u64,
    /// `redeleteHangedFileInterval`: ms between retries of a file whose deletion hung. Default 120 000.
    pub redelete_hanged_file_interval_ms: u64,
    /// `cleanResourceInterval`: ms between clean passes. Default 10 000.
    pub clean_resource_interval_ms: u64,
    /// `transientStorePoolEnable`. Default false.
    pub transient_store_pool_enable: bool,
    /// `transientStorePoolSize`: buffers in the pool. Default 5.
    pub transient_store_pool_size: u32,
    /// `commitIntervalCommitLog`: ms. Default 200.
    pub commit_interval_commit_log_ms: u64,
    /// `commitCommitLogLeastPages`. Default 4.
    pub commit_commit_log_least_pages: u32,
    /// `commitCommitLogThoroughInterval`: ms. Default 200.
    pub commit_commit_log_thorough_interval_ms: u64,
    /// `ioUringEnable` (ferromq key): use io_uring for the pool's commits. Default true.
    pub io_uring_enable: bool,
    /// `transientStorePoolSyncFlushEnable` (ferromq key): let the transient store
    /// pool serve SYNC_FLUSH too (RocketMQ ignores the pool under SYNC_FLUSH).
    /// Each group commit then writes the pool's bytes and syncs them in one
    /// submission. Default false.
    pub transient_store_pool_sync_flush_enable: bool,
    /// `syncFlushPwriteEnable` (ferromq key): under SYNC_FLUSH without the
    /// transient store pool, puts write their records with `pwrite` instead of
    /// copying them into the mapping (readers still read the mapping: it is the
    /// same page cache). Each sync then writes back pages this process never
    /// dirtied through its page tables, which spares the write-protect and TLB
    /// shootdown of every page a store into the mapping costs. Default true.
    pub sync_flush_pwrite_enable: bool,
    /// `prefaultAheadBytes` (ferromq key): how far ahead of the commitlog write
    /// position a background thread pre-faults the mapping (`MADV_POPULATE_WRITE`),
    /// so that page-cache allocation and zeroing stay off the put path. 0 turns it
    /// off. Default 16 MiB.
    pub prefault_ahead_bytes: u64,
    /// `haListenPort`: port the master listens on for slaves; 0 means `listenPort + 1`
    /// (RocketMQ 4.x always uses `listenPort + 1`). Default 0.
    pub ha_listen_port: u16,
    /// `haMasterAddress`: `host:port` of the master's HA port, for a slave; `None`
    /// means learn it from the name server. Default none.
    pub ha_master_address: Option<String>,
    /// `haSendHeartbeatInterval`: ms between a slave's offset reports when idle. Default 5000.
    pub ha_send_heartbeat_interval_ms: u64,
    /// `haHousekeepingInterval`: ms of silence after which a peer is dropped. Default 20 000.
    pub ha_housekeeping_interval_ms: u64,
    /// `haTransferBatchSize`: largest frame body the master sends. Default 32 768.
    pub ha_transfer_batch_size: u32,
    /// `haSlaveFallbehindMax`: bytes a slave may lag before SYNC_MASTER puts get
    /// SLAVE_NOT_AVAILABLE at once. Default 256 MiB.
    pub ha_slave_fallbehind_max: u64,
    /// `slaveTimeout`: ms a SYNC_MASTER put waits for a slave. Default 3000.
    pub slave_timeout_ms: u64,
    /// `messageDelayLevel`: the delay of each level, space-separated, with a
    /// unit each (`s`, `m`, `h`, `d`). Default RocketMQ's 18 levels.
    pub message_delay_level: String,
    /// `osPageCacheBusyTimeOutMills`: ms the put lock may be held before OS_PAGECACHE_BUSY. Default 1000.
    pub os_page_cache_busy_timeout_ms: u64,
    /// `timerWheelEnable`: timer messages (`TIMER_DELIVER_MS`, `TIMER_DELAY_SEC`,
    /// `TIMER_DELAY_MS`) are held until due. False refuses them. Default true.
    pub timer_wheel_enable: bool,
    /// `timerPrecisionMs`: width of a timer slot; a timer message is delivered
    /// at most this late, never early. Default 1000.
    pub timer_precision_ms: u32,
    /// `timerMaxDelaySec`: the longest timer delay accepted. Default 259 200 (3 days).
    pub timer_max_delay_sec: u32,
    /// `mappedFileSizeTimerLog`: bytes per timer log file. Default 100 MiB.
    pub mapped_file_size_timer_log: u64,
    /// `timerRollWindowSlots`: a timer due further ahead than this many slots
    /// waits at the window's end and is then written again ("rolled"), so its
    /// record stays younger than retention; the window is also kept within
    /// half of `fileReservedTime`. Default 172 800 (2 days at 1 s).
    pub timer_roll_window_slots: u32,
}

impl StoreConfig {
    /// RocketMQ's defaults, with the store rooted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        StoreConfig {
            store_path_root_dir: root.into(),
            store_path_commit_log: None,
            mapped_file_size_commit_log: 1024 * 1024 * 1024,
            mapped_file_size_consume_queue: 300_000 * 20,
            flush_disk_type: FlushDiskType::AsyncFlush,
            broker_role: BrokerRole::AsyncMaster,
            flush_interval_commit_log_ms: 500,
            flush_commit_log_least_pages: 4,
            flush_commit_log_thorough_interval_ms: 10_000,
            flush_commit_log_timed: true,
            flush_interval_consume_queue_ms: 1000,
            flush_consume_queue_least_pages: 2,
            flush_consume_queue_thorough_interval_ms: 60_000,
            sync_flush_timeout_ms: 5000,
            max_message_size: 4 * 1024 * 1024,
            auto_create_topic_enable: true,
            default_topic_queue_nums: 8,
            warm_maped_file_enable: false,
            flush_least_pages_when_warm_maped_file: 4096,
            broker_ip1: "127.0.0.1".to_string(),
            listen_port: 10911,
            check_crc_on_recover: true,
            max_transfer_bytes_on_message_in_memory: 256 * 1024,
            max_transfer_count_on_message_in_memory: 32,
            max_transfer_bytes_on_message_in_disk: 64 * 1024,
            max_transfer_count_on_message_in_disk: 8,
            access_message_in_memory_max_ratio: 40,
            message_index_enable: true,
            max_hash_slot_num: 5_000_000,
            max_index_num: 20_000_000,
            delete_when: "04".to_string(),
            file_reserved_time_hours: 72,
            disk_max_used_space_ratio: 75,
            disk_space_warning_level_ratio: 90,
            disk_space_clean_forcibly_ratio: 85,
            clean_file_forcibly_enable: true,
            delete_commit_log_files_interval_ms: 100,
            delete_consume_queue_files_interval_ms: 100,
            delete_file_batch_max: 10,
            destroy_maped_file_interval_forcibly_ms: 120_000,
            redelete_hanged_file_interval_ms: 120_000,
            clean_resource_interval_ms: 10_000,
            transient_store_pool_enable: false,
            transient_store_pool_size: 5,
            commit_interval_commit_log_ms: 200,
            commit_commit_log_least_pages: 4,
            commit_commit_log_thorough_interval_ms: 200,
            io_uring_enable: true,
            transient_store_pool_sync_flush_enable: false,
            sync_flush_pwrite_enable: true,
            prefault_ahead_bytes: 16 * 1024 * 1024,
            ha_listen_port: 0,
            ha_master_address: None,
            ha_send_heartbeat_interval_ms: 5000,
            ha_housekeeping_interval_ms: 20_000,
            ha_transfer_batch_size: 32 * 1024,
            ha_slave_fallbehind_max: 256 * 1024 * 1024,
            slave_timeout_ms: 3000,
            message_delay_level: "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h"
                .to_string(),
            os_page_cache_busy_timeout_ms: 1000,
            timer_wheel_enable: true,
            timer_precision_ms: 1000,
            timer_max_delay_sec: 259_200,
            mapped_file_size_timer_log: 100 * 1024 * 1024,
            timer_roll_window_slots: 172_800,
        }
    }

    /// Directory of the commitlog files.
    pub fn commit_log_dir(&self) -> PathBuf {
        self.store_path_commit_log
            .clone()
            .unwrap_or_else(|| self.store_path_root_dir.join("commitlog"))
    }

    /// Directory of the consume queues.
    pub fn consume_queue_dir(&self) -> PathBuf {
        self.store_path_root_dir.join("consumequeue")
    }

    /// Directory of the index files.
    pub fn index_dir(&self) -> PathBuf {
        self.store_path_root_dir.join("index")
    }

    /// Directory of the JSON config files (topics, offsets).
    pub fn config_dir(&self) -> PathBuf {
        self.store_path_root_dir.join("config")
    }

    /// The delay of each level in ms (level 1 first), from `messageDelayLevel`.
    ///
    /// # Errors
    /// [`crate::Error::Config`] naming `messageDelayLevel` when a level is not a number
    /// with a unit `s`, `m`, `h` or `d`.
    pub fn delay_levels_ms(&self) -> crate::Result<Vec<i64>> {
        parse_delay_levels(&self.message_delay_level).map_err(|e| {
            crate::Error::config("messageDelayLevel", self.message_delay_level.clone(), e)
        })
    }

    /// The master's HA port: `haListenPort`, or `listenPort + 1` when 0.
    pub fn effective_ha_listen_port(&self) -> u16 {
        if self.ha_listen_port != 0 {
            self.ha_listen_port
        } else {
            self.listen_port.wrapping_add(1)
        }
    }

    /// Consume-queue file size in bytes, rounded up to a whole number of 20-byte units.
    pub fn consume_queue_file_size(&self) -> u64 {
        self.mapped_file_size_consume_queue.div_ceil(20) * 20
    }
}

impl FlushDiskType {
    /// The RocketMQ spelling: `ASYNC_FLUSH` or `SYNC_FLUSH`.
    pub fn as_str(self) -> &'static str {
        match self {
            FlushDiskType::AsyncFlush => "ASYNC_FLUSH",
            FlushDiskType::SyncFlush => "SYNC_FLUSH",
        }
    }
}

impl std::fmt::Display for FlushDiskType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for FlushDiskType {
    type Err = crate::Error;

    /// Parses `ASYNC_FLUSH` or `SYNC_FLUSH`, in any case.
    fn from_str(s: &str) -> crate::Result<Self> {
        let t = properties::trim_blank(s);
        if t.eq_ignore_ascii_case("ASYNC_FLUSH") {
            Ok(FlushDiskType::AsyncFlush)
        } else if t.eq_ignore_ascii_case("SYNC_FLUSH") {
            Ok(FlushDiskType::SyncFlush)
        } else {
            Err(crate::Error::config(
                "flushDiskType",
                t,
                "ASYNC_FLUSH or SYNC_FLUSH",
            ))
        }
    }
}

impl BrokerRole {
    /// The RocketMQ spelling: `ASYNC_MASTER`, `SYNC_MASTER` or `SLAVE`.
    pub fn as_str(self) -> &'static str {
        match self {
            BrokerRole::AsyncMaster => "ASYNC_MASTER",
            BrokerRole::SyncMaster => "SYNC_MASTER",
            BrokerRole::Slave => "SLAVE",
        }
    }
}

impl std::fmt::Display for BrokerRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for BrokerRole {
    type Err = crate::Error;

    /// Parses `ASYNC_MASTER`, `SYNC_MASTER` or `SLAVE`, in any case.
    fn from_str(s: &str) -> crate::Result<Self> {
        let t = properties::trim_blank(s);
        if t.eq_ignore_ascii_case("ASYNC_MASTER") {
            Ok(BrokerRole::AsyncMaster)
        } else if t.eq_ignore_ascii_case("SYNC_MASTER") {
            Ok(BrokerRole::SyncMaster)
        } else if t.eq_ignore_ascii_case("SLAVE") {
            Ok(BrokerRole::Slave)
        } else {
            Err(crate::Error::config(
                "brokerRole",
                t,
                "ASYNC_MASTER, SYNC_MASTER or SLAVE",
            ))
        }
    }
}

/// What kind of thing a [`ConfigWarning`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WarningKind {
    /// A key that neither the store nor a RocketMQ 4.x broker knows (often a typo).
    UnknownKey,
    /// A RocketMQ 3.x key that 4.x ignores; the message says what it meant.
    LegacyKey,
    /// A key given twice in one file; the later value was kept.
    DuplicateKey,
    /// A value outside the range RocketMQ accepts was clamped into it (`diskMaxUsedSpaceRatio`).
    Clamped,
    /// A broker key asks for a RocketMQ feature that ferromq does not have.
    Unsupported,
    /// The file itself: a malformed escape, an encoding that is not UTF-8.
    Syntax,
    /// A value that loads but probably does not do what was meant (for example a leading `~`).
    Suspicious,
}

/// Something worth telling an operator about a configuration that still loaded.
///
/// [`StoreConfig::from_properties`] returns these and also logs each with
/// `tracing::warn!`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// What kind of problem this is.
    pub kind: WarningKind,
    /// The key, as spelled in the file (empty for a whole-file warning).
    pub key: String,
    /// The value, trimmed.
    pub value: String,
    /// The 1-based line of the entry, when it came from a file.
    pub line: Option<usize>,
    /// A sentence for the operator.
    pub message: String,
}

impl std::fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Parse `messageDelayLevel` ("1s 5s 10m 2h ...") into ms per level.
pub(crate) fn parse_delay_levels(v: &str) -> std::result::Result<Vec<i64>, String> {
    let expected = "space-separated delays like `1s 5s 10m 2h` (units s, m, h, d)";
    let mut out = Vec::new();
    for tok in v.split_whitespace() {
        let (num, unit) = tok.split_at(tok.len().saturating_sub(1));
        let mult: i64 = match unit {
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(expected.into()),
        };
        let n: i64 = num.parse().map_err(|_| expected.to_string())?;
        if n <= 0 {
            return Err(expected.into());
        }
        out.push(n.saturating_mul(mult));
    }
    if out.is_empty() || out.len() > 64 {
        return Err(format!("{expected}, 1 to 64 of them"));
    }
    Ok(out)
}
