//! From [`Properties`] to [`StoreConfig`] and back, and validation.
//!
//! One table, [`FIELDS`], maps each RocketMQ key to its field, its type and its bounds;
//! loading, [`StoreConfig::validate`] and [`StoreConfig::to_properties`] all read it, so a
//! new field needs one line here.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::keys::{BROKER_KEYS, LEGACY_KEYS, UNSUPPORTED_FEATURES};
use super::properties::{escape, trim_blank};
use super::{BrokerRole, ConfigWarning, FlushDiskType, Properties, StoreConfig, WarningKind};
use crate::error::{Error, Result};

/// Largest value of a Java `int`: the bound of RocketMQ's int settings, and ours for
/// intervals and counts (2^31 - 1 ms is almost 25 days).
const JAVA_INT_MAX: u64 = 2_147_483_647;
/// Largest commitlog file: 16 GiB.
const MAX_COMMIT_LOG_FILE_BYTES: u64 = 16 << 30;
/// Largest consume-queue file: the largest multiple of 20 that is a Java `int`.
const MAX_CONSUME_QUEUE_FILE_BYTES: u64 = 2_147_483_640;
/// Size of an index file header, hash slot and entry (RocketMQ `IndexHeader`/`IndexFile`).
const INDEX_HEADER_BYTES: u64 = 40;
const INDEX_SLOT_BYTES: u64 = 4;
const INDEX_ENTRY_BYTES: u64 = 20;

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

fn parse_int(v: &str) -> Option<i128> {
    if v.len() > 40 {
        return None;
    }
    v.parse::<i128>().ok()
}

fn parse_bool(v: &str) -> Option<bool> {
    if v.eq_ignore_ascii_case("true") {
        Some(true)
    } else if v.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

fn int_expected(min: u64, max: u64, unit: &str, clamp: bool) -> String {
    if clamp {
        format!("an integer from {min} to {max} ({unit}; values from a file outside that range are clamped into it)")
    } else {
        format!("an integer from {min} to {max} ({unit})")
    }
}

fn with_line(expected: String, line: Option<usize>) -> String {
    match line {
        Some(l) => format!("{expected}; line {l}"),
        None => expected,
    }
}

impl Field {
    fn keys(&self) -> impl Iterator<Item = &'static str> {
        std::iter::once(self.key).chain(self.alias)
    }

    /// The field's value as written in a file, or `None` for an unset optional field.
    fn format(&self, c: &StoreConfig) -> Option<String> {
        match &self.kind {
            Kind::Int { get, .. } => Some(get(c).to_string()),
            Kind::Bool { get, .. } => Some(get(c).to_string()),
            Kind::Text { get, .. } => get(c),
        }
    }

    /// Sets the field from `value`, read under `key` (the spelling used in the file).
    fn apply(
        &self,
        c: &mut StoreConfig,
        key: &str,
        value: &str,
        line: Option<usize>,
        warnings: &mut Vec<ConfigWarning>,
    ) -> Result<()> {
        match &self.kind {
            Kind::Int {
                min,
                max,
                unit,
                clamp,
                set,
                ..
            } => {
                let expected = || with_line(int_expected(*min, *max, unit, *clamp), line);
                let n = parse_int(value).ok_or_else(|| Error::config(key, value, expected()))?;
                let (lo, hi) = (i128::from(*min), i128::from(*max));
                if *clamp {
                    let clamped = n.clamp(lo, hi);
                    if clamped != n {
                        warnings.push(ConfigWarning {
                            kind: WarningKind::Clamped,
                            key: key.to_string(),
                            value: value.to_string(),
                            line,
                            message: format!(
                                "{key}={value} is outside {min}..={max}; using {clamped}, \
                                 as RocketMQ does"
                            ),
                        });
                    }
                    set(c, u64::try_from(clamped).unwrap_or(*max));
                } else if (lo..=hi).contains(&n) {
                    set(c, u64::try_from(n).unwrap_or(*max));
                } else {
                    return Err(Error::config(key, value, expected()));
                }
            }
            Kind::Bool { set, .. } => {
                let b = parse_bool(value).ok_or_else(|| {
                    Error::config(key, value, with_line("true or false".to_string(), line))
                })?;
                set(c, b);
            }
            Kind::Text { check, set, .. } => {
                check(value).map_err(|e| Error::config(key, value, with_line(e, line)))?;
                set(c, value);
            }
        }
        Ok(())
    }

    /// Checks the field of an already built config.
    fn check(&self, c: &StoreConfig) -> Result<()> {
        match &self.kind {
            Kind::Int {
                min,
                max,
                unit,
                clamp,
                get,
                ..
            } => {
                let v = get(c);
                if v < *min || v > *max {
                    return Err(Error::config(
                        self.key,
                        v.to_string(),
                        int_expected(*min, *max, unit, *clamp),
                    ));
                }
            }
            Kind::Bool { .. } => {}
            Kind::Text { get, check, .. } => {
                if let Some(v) = get(c) {
                    check(&v).map_err(|e| Error::config(self.key, v, e))?;
                }
            }
        }
        Ok(())
    }
}

fn field_for(key: &str) -> Option<&'static Field> {
    FIELDS.iter().find(|f| f.keys().any(|k| k == key))
}

/// True for every key ferromq recognises: the store's own (both spellings of the
/// `maped*` sizes), [`BROKER_KEYS`] and [`LEGACY_KEYS`].
pub fn is_known_key(key: &str) -> bool {
    field_for(key).is_some()
        || BROKER_KEYS.contains(&key)
        || LEGACY_KEYS.iter().any(|(k, _)| *k == key)
}

/// RocketMQ's default store root, `$HOME/store`; `None` when `HOME` is not set.
pub fn default_store_root() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join("store"))
}

/// Lowercase, with the `mapped`/`maped` spelling difference folded away: what a typo
/// most often changes.
fn fold_key(key: &str) -> String {
    key.to_ascii_lowercase().replace("mapped", "maped")
}

fn suggestion(key: &str) -> Option<&'static str> {
    let folded = fold_key(key);
    FIELDS
        .iter()
        .flat_map(Field::keys)
        .chain(BROKER_KEYS.iter().copied())
        .chain(LEGACY_KEYS.iter().map(|(k, _)| *k))
        .find(|k| fold_key(k) == folded)
}

impl StoreConfig {
    /// Every `.properties` key the store reads, both spellings of the `maped*` sizes
    /// included.
    pub fn keys() -> impl Iterator<Item = &'static str> {
        FIELDS.iter().flat_map(Field::keys)
    }

    /// Builds a config from RocketMQ broker properties, then [validates](Self::validate) it.
    ///
    /// Absent keys keep RocketMQ's defaults; an absent `storePathRootDir` means
    /// `$HOME/store`. The historical spellings `mapedFileSizeCommitLog` and
    /// `mapedFileSizeConsumeQueue` load like the current ones (RocketMQ 4.5.2+ silently
    /// ignores them; ferromq honours them, as files written for older brokers intend).
    ///
    /// Returns the config and the warnings, each also logged with `tracing::warn!`:
    /// parse problems, unknown keys (with a suggestion when one is close), legacy 3.x keys,
    /// a clamped `diskMaxUsedSpaceRatio`, broker keys asking for features ferromq lacks.
    /// [`BROKER_KEYS`] load silently and stay in `props` for the broker.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the key as spelled in the file, the value and what was
    /// expected (with the line number), when a value does not parse or is out of range;
    /// when both spellings of a size key are present with different values; when
    /// `storePathRootDir` is absent and `HOME` is not set.
    pub fn from_properties(props: &Properties) -> Result<(StoreConfig, Vec<ConfigWarning>)> {
        load(props, default_store_root())
    }

    /// Reads a `.properties` file and builds a config from it; see
    /// [`StoreConfig::from_properties`].
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the path when the file cannot be read; otherwise as
    /// [`StoreConfig::from_properties`].
    pub fn from_file(path: impl AsRef<Path>) -> Result<(StoreConfig, Vec<ConfigWarning>)> {
        let props = Properties::from_file(path)?;
        StoreConfig::from_properties(&props)
    }

    /// Checks every value; the store calls this before it touches any file.
    ///
    /// Rejected: a commitlog file size under 4096 bytes or over 16 GiB; a consume-queue
    /// file size under 20 bytes or over 2 147 483 640; `maxMessageSize` 0;
    /// `defaultTopicQueueNums` 0 or over 1024; a zero interval for a loop that would
    /// busy-spin (flush, commit, clean, sync-flush timeout, page-cache busy timeout);
    /// `deleteWhen` that is not `;`-separated hours 0..=23; ratios outside 0..=100 and
    /// `diskMaxUsedSpaceRatio` outside 10..=95 (a file's value is clamped on load instead);
    /// an empty store path, several commitlog paths, an empty `brokerIP1`; an index file
    /// (`40 + 4 * maxHashSlotNum + 20 * maxIndexNum` bytes) over 2 GiB. Other integers are
    /// bounded by Java's `int`, as in RocketMQ.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] with the RocketMQ key, the value and what is expected.
    pub fn validate(&self) -> Result<()> {
        for field in FIELDS {
            field.check(self)?;
        }
        let index_bytes = INDEX_HEADER_BYTES
            + INDEX_SLOT_BYTES * u64::from(self.max_hash_slot_num)
            + INDEX_ENTRY_BYTES * u64::from(self.max_index_num);
        if index_bytes > JAVA_INT_MAX {
            return Err(Error::config(
                "maxIndexNum",
                self.max_index_num.to_string(),
                format!(
                    "an index file of at most {JAVA_INT_MAX} bytes: 40 + 4 x maxHashSlotNum \
                     ({}) + 20 x maxIndexNum is {index_bytes}",
                    self.max_hash_slot_num
                ),
            ));
        }
        Ok(())
    }

    /// The hours of `deleteWhen`, sorted and de-duplicated (`"04;16"` gives `[4, 16]`).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for `deleteWhen` when it is not `;`-separated hours 0..=23.
    pub fn delete_when_hours(&self) -> Result<Vec<u8>> {
        parse_delete_when(&self.delete_when)
            .map_err(|e| Error::config("deleteWhen", self.delete_when.clone(), e))
    }

    /// The effective config as `key=value` lines with RocketMQ key names, one per field, in
    /// a fixed order. An unset `storePathCommitLog` is written as a comment. Reading the
    /// text back with [`Properties::parse`] and [`StoreConfig::from_properties`] gives an
    /// equal config (paths that are not valid UTF-8 excepted).
    pub fn to_properties(&self) -> String {
        let mut out = String::from("# ferromq store configuration (effective values)\n");
        for field in FIELDS {
            // Writing to a String cannot fail.
            let _ = match field.format(self) {
                Some(v) => writeln!(out, "{}={}", escape(field.key, true), escape(&v, false)),
                None => writeln!(
                    out,
                    "# {} is not set: the commitlog is in {}",
                    field.key,
                    escape(&self.commit_log_dir().to_string_lossy(), false)
                ),
            };
        }
        out
    }
}

/// [`StoreConfig::from_properties`] with the default root given (tests pass their own).
pub(crate) fn load(
    props: &Properties,
    default_root: Option<PathBuf>,
) -> Result<(StoreConfig, Vec<ConfigWarning>)> {
    let mut warnings: Vec<ConfigWarning> = props.warnings().to_vec();

    let root = match default_root {
        Some(root) => root,
        None if props.contains_key("storePathRootDir") => PathBuf::new(),
        None => {
            return Err(Error::config(
                "storePathRootDir",
                "",
                "a directory path: the key is absent and HOME is not set, so RocketMQ's \
                 default $HOME/store is unknown",
            ))
        }
    };
    let mut config = StoreConfig::new(root);
    // Canonical key -> (spelling used in the file, line), to word validation errors.
    let mut used: HashMap<&'static str, (String, Option<usize>)> = HashMap::new();

    for field in FIELDS {
        let present: Vec<(&str, &str, Option<usize>)> = field
            .keys()
            .filter_map(|k| props.get(k).map(|v| (k, v, props.line(k))))
            .collect();
        match present.as_slice() {
            [] => {}
            [(key, value, line)] => {
                field.apply(&mut config, key, value, *line, &mut warnings)?;
                used.insert(field.key, (key.to_string(), *line));
            }
            [first, second, ..] => {
                let mut a = config.clone();
                let mut b = config.clone();
                let mut scratch = Vec::new();
                field.apply(&mut a, first.0, first.1, first.2, &mut scratch)?;
                field.apply(&mut b, second.0, second.1, second.2, &mut scratch)?;
                if field.format(&a) != field.format(&b) {
                    let at = |line: Option<usize>| {
                        line.map_or(String::new(), |l| format!(" (line {l})"))
                    };
                    return Err(Error::config(
                        format!("{} and {}", first.0, second.0),
                        format!(
                            "{}{} and {}{}",
                            first.1,
                            at(first.2),
                            second.1,
                            at(second.2)
                        ),
                        format!(
                            "one value: {} and {} are two spellings of the same setting; \
                             keep one",
                            first.0, second.0
                        ),
                    ));
                }
                field.apply(&mut config, first.0, first.1, first.2, &mut warnings)?;
                used.insert(field.key, (first.0.to_string(), first.2));
            }
        }
    }

    for (key, value, line) in props.iter_with_lines() {
        if field_for(key).is_some() {
            continue;
        }
        let warning = |kind, message| ConfigWarning {
            kind,
            key: key.to_string(),
            value: value.to_string(),
            line,
            message,
        };
        let at = line.map_or(String::new(), |l| format!(" (line {l})"));
        if let Some((_, meaning)) = LEGACY_KEYS.iter().find(|(k, _)| *k == key) {
            warnings.push(warning(
                WarningKind::LegacyKey,
                format!("{key}={value}{at}: {meaning}"),
            ));
        } else if BROKER_KEYS.contains(&key) {
            if let Some((_, harmless, what)) = UNSUPPORTED_FEATURES
                .iter()
                .find(|(k, harmless, _)| *k == key && !value.eq_ignore_ascii_case(harmless))
            {
                warnings.push(warning(
                    WarningKind::Unsupported,
                    format!("{key}={value}{at}: {what}; the setting is ignored (only {harmless} is supported)"),
                ));
            }
        } else {
            let hint = suggestion(key)
                .map(|k| format!("; did you mean `{k}`?"))
                .unwrap_or_default();
            warnings.push(warning(
                WarningKind::UnknownKey,
                format!("unknown key `{key}`{at}: neither the store nor a RocketMQ 4.x broker reads it{hint}"),
            ));
        }
    }

    let root = config.store_path_root_dir.to_string_lossy();
    for (key, value) in [
        ("storePathRootDir", Some(root.as_ref())),
        ("storePathCommitLog", props.get("storePathCommitLog")),
    ] {
        if let Some(v) = value.filter(|v| *v == "~" || v.starts_with("~/")) {
            warnings.push(ConfigWarning {
                kind: WarningKind::Suspicious,
                key: key.to_string(),
                value: v.to_string(),
                line: props.line(key),
                message: format!(
                    "{key}={v}: `~` is not expanded (RocketMQ does not expand it either); \
                     this is a directory literally named `~`"
                ),
            });
        }
    }

    config.validate().map_err(|e| match e {
        Error::Config {
            key,
            value,
            expected,
        } => match used.get(key.as_str()) {
            Some((spelling, line)) => {
                Error::config(spelling.clone(), value, with_line(expected, *line))
            }
            None => Error::Config {
                key,
                value,
                expected,
            },
        },
        other => other,
    })?;

    for w in &warnings {
        tracing::warn!(key = %w.key, line = ?w.line, kind = ?w.kind, "{}", w.message);
    }
    Ok((config, warnings))
}
