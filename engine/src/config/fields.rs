//! The settings table: [`FIELDS`] maps each RocketMQ key to its
//! [`StoreConfig`] field, its type and its bounds, with the checks of the
//! text-valued keys. Loading, [`StoreConfig::validate`] and
//! [`StoreConfig::to_properties`] (in `load.rs`) all read it, so a new field
//! needs one line here.

use std::path::PathBuf;

use super::properties::trim_blank;
use super::{BrokerRole, FlushDiskType, StoreConfig};

/// Largest value of a Java `int`: the bound of RocketMQ's int settings, and ours for
/// intervals and counts (2^31 - 1 ms is almost 25 days).
pub(super) const JAVA_INT_MAX: u64 = 2_147_483_647;
/// Largest commitlog file: 16 GiB.
const MAX_COMMIT_LOG_FILE_BYTES: u64 = 16 << 30;
/// Largest consume-queue file: the largest multiple of 20 that is a Java `int`.
const MAX_CONSUME_QUEUE_FILE_BYTES: u64 = 2_147_483_640;
/// Size of an index file header, hash slot and entry (RocketMQ `IndexHeader`/`IndexFile`).
pub(super) const INDEX_HEADER_BYTES: u64 = 40;
pub(super) const INDEX_SLOT_BYTES: u64 = 4;
pub(super) const INDEX_ENTRY_BYTES: u64 = 20;

/// How a field is read and written.
pub(crate) enum Kind {
    /// An integer in `min..=max`. With `clamp`, values from a file outside the range are
    /// clamped into it with a warning instead of failing (RocketMQ's rule for
    /// `diskMaxUsedSpaceRatio`).
    Int {
        min: u64,
        max: u64,
        unit: &'static str,
        clamp: bool,
        get: fn(&StoreConfig) -> u64,
        set: fn(&mut StoreConfig, u64),
    },
    /// `true` or `false`, in any case.
    Bool {
        get: fn(&StoreConfig) -> bool,
        set: fn(&mut StoreConfig, bool),
    },
    /// Text with its own syntax; `check` returns what was expected when the text is bad.
    /// `get` returns `None` for an unset optional field.
    Text {
        get: fn(&StoreConfig) -> Option<String>,
        check: fn(&str) -> std::result::Result<(), String>,
        set: fn(&mut StoreConfig, &str),
    },
}

/// One RocketMQ key and the field it sets.
pub(crate) struct Field {
    /// The key RocketMQ 4.9 uses.
    pub(crate) key: &'static str,
    /// An older spelling that loads too.
    pub(crate) alias: Option<&'static str>,
    pub(crate) kind: Kind,
}

/// Narrowing from the `u64` the table works in to a field's own integer type. Values are
/// range-checked before they get here; the saturation only keeps this panic-free.
trait FromU64 {
    fn from_u64(v: u64) -> Self;
}

impl FromU64 for u64 {
    fn from_u64(v: u64) -> Self {
        v
    }
}

impl FromU64 for u32 {
    fn from_u64(v: u64) -> Self {
        u32::try_from(v).unwrap_or(u32::MAX)
    }
}

impl FromU64 for u16 {
    fn from_u64(v: u64) -> Self {
        u16::try_from(v).unwrap_or(u16::MAX)
    }
}

macro_rules! int {
    ($key:literal, $field:ident, $min:expr, $max:expr, $unit:literal) => {
        int!($key, None, $field, $min, $max, $unit, false)
    };
    ($key:literal, $alias:expr, $field:ident, $min:expr, $max:expr, $unit:literal, $clamp:expr) => {
        Field {
            key: $key,
            alias: $alias,
            kind: Kind::Int {
                min: $min,
                max: $max,
                unit: $unit,
                clamp: $clamp,
                get: |c: &StoreConfig| u64::from(c.$field),
                set: |c: &mut StoreConfig, v: u64| c.$field = FromU64::from_u64(v),
            },
        }
    };
}

macro_rules! boolean {
    ($key:literal, $field:ident) => {
        Field {
            key: $key,
            alias: None,
            kind: Kind::Bool {
                get: |c: &StoreConfig| c.$field,
                set: |c: &mut StoreConfig, v: bool| c.$field = v,
            },
        }
    };
}

/// Every key the store reads, in the order [`StoreConfig::to_properties`] writes them.
pub(crate) static FIELDS: &[Field] = &[
    Field {
        key: "storePathRootDir",
        alias: None,
        kind: Kind::Text {
            get: |c| Some(c.store_path_root_dir.to_string_lossy().into_owned()),
            check: check_dir,
            set: |c, v| c.store_path_root_dir = PathBuf::from(v),
        },
    },
    Field {
        key: "storePathCommitLog",
        alias: None,
        kind: Kind::Text {
            get: |c| {
                c.store_path_commit_log
                    .as_ref()
                    .map(|p| p.to_string_lossy().into_owned())
            },
            check: check_commit_log_dir,
            set: |c, v| c.store_path_commit_log = Some(PathBuf::from(v)),
        },
    },
    int!(
        "mappedFileSizeCommitLog",
        Some("mapedFileSizeCommitLog"),
        mapped_file_size_commit_log,
        4096,
        MAX_COMMIT_LOG_FILE_BYTES,
        "bytes",
        false
    ),
    int!(
        "mappedFileSizeConsumeQueue",
        Some("mapedFileSizeConsumeQueue"),
        mapped_file_size_consume_queue,
        20,
        MAX_CONSUME_QUEUE_FILE_BYTES,
        "bytes, rounded up to a multiple of 20",
        false
    ),
    Field {
        key: "flushDiskType",
        alias: None,
        kind: Kind::Text {
            get: |c| Some(c.flush_disk_type.as_str().to_string()),
            check: |v| {
                v.parse::<FlushDiskType>()
                    .map(|_| ())
                    .map_err(|_| "ASYNC_FLUSH or SYNC_FLUSH".to_string())
            },
            set: |c, v| {
                if let Ok(t) = v.parse() {
                    c.flush_disk_type = t;
                }
            },
        },
    },
    Field {
        key: "brokerRole",
        alias: None,
        kind: Kind::Text {
            get: |c| Some(c.broker_role.as_str().to_string()),
            check: |v| {
                v.parse::<BrokerRole>()
                    .map(|_| ())
                    .map_err(|_| "ASYNC_MASTER, SYNC_MASTER or SLAVE".to_string())
            },
            set: |c, v| {
                if let Ok(r) = v.parse() {
                    c.broker_role = r;
                }
            },
        },
    },
    int!(
        "flushIntervalCommitLog",
        flush_interval_commit_log_ms,
        1,
        JAVA_INT_MAX,
        "milliseconds"
    ),
    int!(
        "flushCommitLogLeastPages",
        flush_commit_log_least_pages,
        0,
        JAVA_INT_MAX,
        "4 KiB pages"
    ),
    int!(
        "flushCommitLogThoroughInterval",
        flush_commit_log_thorough_interval_ms,
        0,
        JAVA_INT_MAX,
        "milliseconds"
    ),
    boolean!("flushCommitLogTimed", flush_commit_log_timed),
    int!(
        "flushIntervalConsumeQueue",
        flush_interval_consume_queue_ms,
        1,
        JAVA_INT_MAX,
        "milliseconds"
    ),
    int!(
        "flushConsumeQueueLeastPages",
        flush_consume_queue_least_pages,
        0,
        JAVA_INT_MAX,
        "4 KiB pages"
    ),
    int!(
        "flushConsumeQueueThoroughInterval",
        flush_consume_queue_thorough_interval_ms,
        0,
        JAVA_INT_MAX,
        "milliseconds"
    ),
    int!(
        "syncFlushTimeout",
        sync_flush_timeout_ms,
        1,
        JAVA_INT_MAX,
        "milliseconds"
    ),
    int!("maxMessageSize", max_message_size, 1, JAVA_INT_MAX, "bytes"),
    boolean!("autoCreateTopicEnable", auto_create_topic_enable),
    int!(
        "defaultTopicQueueNums",
        default_topic_queue_nums,
        1,
        1024,
        "queues"
    ),
    boolean!("warmMapedFileEnable", warm_maped_file_enable),
    int!(
        "flushLeastPagesWhenWarmMapedFile",
        flush_least_pages_when_warm_maped_file,
        1,
        JAVA_INT_MAX,
        "4 KiB pages"
    ),
    Field {
        key: "brokerIP1",
        alias: None,
        kind: Kind::Text {
            get: |c| Some(c.broker_ip1.clone()),
            check: check_host,
            set: |c, v| c.broker_ip1 = v.to_string(),
        },
    },
    int!("listenPort", listen_port, 0, 65535, "a TCP port"),
    boolean!("checkCRCOnRecover", check_crc_on_recover),
    int!(
        "maxTransferBytesOnMessageInMemory",
        max_transfer_bytes_on_message_in_memory,
        1,
        JAVA_INT_MAX,
        "bytes"
    ),
    int!(
        "maxTransferCountOnMessageInMemory",
        max_transfer_count_on_message_in_memory,
        1,
        JAVA_INT_MAX,
        "messages"
    ),
    int!(
        "maxTransferBytesOnMessageInDisk",
        max_transfer_bytes_on_message_in_disk,
        1,
        JAVA_INT_MAX,
        "bytes"
    ),
    int!(
        "maxTransferCountOnMessageInDisk",
        max_transfer_count_on_message_in_disk,
        1,
        JAVA_INT_MAX,
        "messages"
    ),
    int!(
        "accessMessageInMemoryMaxRatio",
        access_message_in_memory_max_ratio,
        0,
        100,
        "percent"
    ),
    boolean!("messageIndexEnable", message_index_enable),
    int!(
        "maxHashSlotNum",
        max_hash_slot_num,
        1,
        JAVA_INT_MAX,
        "hash slots per index file"
    ),
    int!(
        "maxIndexNum",
        max_index_num,
        1,
        JAVA_INT_MAX,
        "entries per index file"
    ),
    Field {
        key: "deleteWhen",
        alias: None,
        kind: Kind::Text {
            get: |c| Some(c.delete_when.clone()),
            check: |v| parse_delete_when(v).map(|_| ()),
            set: |c, v| c.delete_when = v.to_string(),
        },
    },
    int!(
        "fileReservedTime",
        file_reserved_time_hours,
        0,
        JAVA_INT_MAX,
        "hours"
    ),
    int!(
        "diskMaxUsedSpaceRatio",
        None,
        disk_max_used_space_ratio,
        10,
        95,
        "percent",
        true
    ),
    int!(
        "diskSpaceWarningLevelRatio",
        disk_space_warning_level_ratio,
        0,
        100,
        "percent"
    ),
    int!(
        "diskSpaceCleanForciblyRatio",
        disk_space_clean_forcibly_ratio,
        0,
        100,
        "percent"
    ),
    boolean!("cleanFileForciblyEnable", clean_file_forcibly_enable),
    int!(
        "deleteCommitLogFilesInterval",
        delete_commit_log_files_interval_ms,
        0,
        JAVA_INT_MAX,
        "milliseconds"
    ),
    int!(
        "deleteConsumeQueueFilesInterval",
        delete_consume_queue_files_interval_ms,
        0,
        JAVA_INT_MAX,
        "milliseconds"
    ),
    int!(
        "deleteFileBatchMax",
        delete_file_batch_max,
        1,
        JAVA_INT_MAX,
        "files"
    ),
    int!(
        "destroyMapedFileIntervalForcibly",
        destroy_maped_file_interval_forcibly_ms,
        0,
        JAVA_INT_MAX,
        "milliseconds"
    ),
    int!(
        "redeleteHangedFileInterval",
        redelete_hanged_file_interval_ms,
        0,
        JAVA_INT_MAX,
        "milliseconds"
    ),
    int!(
        "cleanResourceInterval",
        clean_resource_interval_ms,
        1,
        JAVA_INT_MAX,
        "milliseconds"
    ),
    boolean!("transientStorePoolEnable", transient_store_pool_enable),
    int!(
        "transientStorePoolSize",
        transient_store_pool_size,
        1,
        JAVA_INT_MAX,
        "buffers"
    ),
    int!(
        "commitIntervalCommitLog",
        commit_interval_commit_log_ms,
        1,
        JAVA_INT_MAX,
        "milliseconds"
    ),
    int!(
        "commitCommitLogLeastPages",
        commit_commit_log_least_pages,
        0,
        JAVA_INT_MAX,
        "4 KiB pages"
    ),
    int!(
        "commitCommitLogThoroughInterval",
        commit_commit_log_thorough_interval_ms,
        0,
        JAVA_INT_MAX,
        "milliseconds"
    ),
    boolean!("ioUringEnable", io_uring_enable),
    boolean!(
        "transientStorePoolSyncFlushEnable",
        transient_store_pool_sync_flush_enable
    ),
    boolean!("syncFlushPwriteEnable", sync_flush_pwrite_enable),
    int!(
        "prefaultAheadBytes",
        prefault_ahead_bytes,
        0,
        MAX_COMMIT_LOG_FILE_BYTES,
        "bytes"
    ),
    Field {
        key: "messageDelayLevel",
        alias: None,
        kind: Kind::Text {
            get: |c| Some(c.message_delay_level.clone()),
            check: |v| super::parse_delay_levels(v).map(|_| ()),
            set: |c, v| c.message_delay_level = v.to_string(),
        },
    },
    int!(
        "haListenPort",
        ha_listen_port,
        0,
        65535,
        "a port (0: listenPort + 1)"
    ),
    Field {
        key: "haMasterAddress",
        alias: None,
        kind: Kind::Text {
            get: |c| c.ha_master_address.clone(),
            check: |v| {
                if v.is_empty()
                    || v.rsplit_once(':')
                        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
                {
                    Ok(())
                } else {
                    Err("host:port".into())
                }
            },
            set: |c, v| c.ha_master_address = (!v.is_empty()).then(|| v.to_string()),
        },
    },
    int!(
        "haSendHeartbeatInterval",
        ha_send_heartbeat_interval_ms,
        1,
        JAVA_INT_MAX,
        "milliseconds"
    ),
    int!(
        "haHousekeepingInterval",
        ha_housekeeping_interval_ms,
        1,
        JAVA_INT_MAX,
        "milliseconds"
    ),
    int!(
        "haTransferBatchSize",
        ha_transfer_batch_size,
        1,
        JAVA_INT_MAX,
        "bytes"
    ),
    int!(
        "haSlaveFallbehindMax",
        ha_slave_fallbehind_max,
        0,
        i64::MAX as u64,
        "bytes"
    ),
    int!(
        "slaveTimeout",
        slave_timeout_ms,
        1,
        JAVA_INT_MAX,
        "milliseconds"
    ),
    int!(
        "osPageCacheBusyTimeOutMills",
        os_page_cache_busy_timeout_ms,
        1,
        JAVA_INT_MAX,
        "milliseconds"
    ),
    boolean!("timerWheelEnable", timer_wheel_enable),
    int!(
        "timerPrecisionMs",
        timer_precision_ms,
        10,
        3_600_000,
        "milliseconds"
    ),
    int!(
        "timerMaxDelaySec",
        timer_max_delay_sec,
        1,
        31_536_000,
        "seconds"
    ),
    int!(
        "timerRollWindowSlots",
        timer_roll_window_slots,
        1,
        JAVA_INT_MAX,
        "slots"
    ),
    int!(
        "mappedFileSizeTimerLog",
        mapped_file_size_timer_log,
        4096,
        i64::MAX as u64,
        "bytes"
    ),
];

fn check_dir(v: &str) -> std::result::Result<(), String> {
    if v.is_empty() {
        Err("a directory path".to_string())
    } else {
        Ok(())
    }
}

fn check_commit_log_dir(v: &str) -> std::result::Result<(), String> {
    if v.is_empty() {
        Err("a directory path".to_string())
    } else if v.contains(',') {
        Err(
            "one directory path (ferromq does not support several `,`-separated commitlog \
             paths)"
                .to_string(),
        )
    } else {
        Ok(())
    }
}

fn check_host(v: &str) -> std::result::Result<(), String> {
    if v.is_empty() || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Err("an IP address or host name".to_string())
    } else {
        Ok(())
    }
}

/// Parses `deleteWhen`: `;`-separated hours 0..=23 (one trailing `;` is allowed, as
/// Java's `split` allows it). Returns the sorted, de-duplicated hours, or what was
/// expected.
pub(crate) fn parse_delete_when(v: &str) -> std::result::Result<Vec<u8>, String> {
    const EXPECTED: &str = "hours from 0 to 23 separated by `;` (for example 04 or 04;16)";
    let v = trim_blank(v);
    let body = v.strip_suffix(';').unwrap_or(v);
    let mut hours = Vec::new();
    for piece in body.split(';') {
        let piece = trim_blank(piece);
        let ok = !piece.is_empty() && piece.bytes().all(|b| b.is_ascii_digit());
        match piece.parse::<u8>() {
            Ok(h) if ok && h <= 23 => hours.push(h),
            _ => return Err(EXPECTED.to_string()),
        }
    }
    hours.sort_unstable();
    hours.dedup();
    Ok(hours)
}
