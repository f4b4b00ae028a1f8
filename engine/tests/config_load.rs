//! Loading real RocketMQ broker files: the seed's `broker-a.properties` (pasted from a web
//! page, with a no-break space at every line end) loads with the values it states, and
//! bad files fail with the key and the value.

use std::path::{Path, PathBuf};

use ferromq_engine::config::{
    BrokerRole, ConfigWarning, FlushDiskType, Properties, StoreConfig, WarningKind,
};
use ferromq_engine::Error;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Writes `text` to a temporary file and loads it.
fn load_text(text: &str) -> ferromq_engine::Result<(StoreConfig, Vec<ConfigWarning>)> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broker.properties");
    std::fs::write(&path, text).unwrap();
    StoreConfig::from_file(&path)
}

/// Asserts that loading fails with a config error whose message names key and value.
fn assert_config_error(text: &str, key: &str, value: &str) -> String {
    let err = load_text(text).expect_err(text);
    assert!(matches!(err, Error::Config { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&format!("`{key}`")), "{msg}");
    assert!(msg.contains(&format!("`{value}`")), "{msg}");
    msg
}

#[test]
fn fixture_is_the_seed_file_with_its_no_break_spaces() {
    let bytes = std::fs::read(fixture("seed-broker-a.properties")).unwrap();
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.starts_with("brokerClusterName=DefaultCluster\u{a0}\n"));
    assert!(text.ends_with("flushDiskType=ASYNC_FLUSH\u{a0}\n"));
    assert_eq!(text.lines().count(), 30);
    assert!(text.lines().all(|l| l.ends_with('\u{a0}')));
}

#[test]
fn seed_broker_a_loads_with_its_values() {
    let (c, warnings) = StoreConfig::from_file(fixture("seed-broker-a.properties")).unwrap();

    assert_eq!(
        c.store_path_root_dir,
        PathBuf::from("/home/rocket/alibaba-rocketmq/data/store")
    );
    assert_eq!(
        c.store_path_commit_log,
        Some(PathBuf::from(
            "/home/rocket/alibaba-rocketmq/data/store/commitlog"
        ))
    );
    assert_eq!(c.mapped_file_size_commit_log, 1_073_741_824);
    assert_eq!(c.mapped_file_size_consume_queue, 50_000_000);
    assert_eq!(c.consume_queue_file_size(), 50_000_000);
    assert_eq!(c.max_message_size, 65_536);
    assert_eq!(c.disk_max_used_space_ratio, 88);
    assert_eq!(c.broker_role, BrokerRole::SyncMaster);
    assert_eq!(c.flush_disk_type, FlushDiskType::AsyncFlush);
    assert_eq!(c.file_reserved_time_hours, 120);
    assert_eq!(c.delete_when, "04");
    assert_eq!(c.delete_when_hours().unwrap(), vec![4]);
    assert_eq!(c.default_topic_queue_nums, 4);
    assert!(c.auto_create_topic_enable);
    assert_eq!(c.listen_port, 10911);
    assert_eq!(c.destroy_maped_file_interval_forcibly_ms, 120_000);
    assert_eq!(c.redelete_hanged_file_interval_ms, 120_000);
    assert_eq!(c.flush_commit_log_least_pages, 4);
    assert_eq!(c.flush_consume_queue_least_pages, 2);
    assert_eq!(c.flush_commit_log_thorough_interval_ms, 10_000);
    assert_eq!(c.flush_consume_queue_thorough_interval_ms, 60_000);
    c.validate().unwrap();

    // Only the 3.x key warns, and only informationally; every other key is known.
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let w = &warnings[0];
    assert_eq!(w.kind, WarningKind::LegacyKey);
    assert_eq!(w.key, "checkTransactionMessageEnable");
    assert_eq!(w.value, "false");
    assert_eq!(w.line, Some(25));
}

#[test]
fn seed_broker_keys_stay_readable_for_the_broker() {
    let props = Properties::from_file(fixture("seed-broker-a.properties")).unwrap();
    assert_eq!(props.get("brokerClusterName"), Some("DefaultCluster"));
    assert_eq!(props.get("brokerName"), Some("broker-a"));
    assert_eq!(props.get("brokerId"), Some("0"));
    assert_eq!(
        props.get("namesrvAddr"),
        Some("192.168.36.189:9876;192.168.36.54:9876")
    );
    assert_eq!(props.get("sendMessageThreadPoolNums"), Some("128"));
    assert_eq!(props.get("pullMessageThreadPoolNums"), Some("128"));
    assert_eq!(props.get("autoCreateSubscriptionGroup"), Some("true"));
    assert_eq!(
        props.len(),
        27,
        "blank lines of no-break spaces hold no entry"
    );
    assert!(props.warnings().is_empty());
}

#[test]
fn seed_config_round_trips_through_to_properties() {
    let (c, _) = StoreConfig::from_file(fixture("seed-broker-a.properties")).unwrap();
    let text = c.to_properties();
    assert!(
        text.contains("mappedFileSizeConsumeQueue=50000000\n"),
        "{text}"
    );
    assert!(text.contains("brokerRole=SYNC_MASTER\n"), "{text}");
    let (back, warnings) = StoreConfig::from_properties(&Properties::parse(&text)).unwrap();
    assert_eq!(back, c);
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[test]
fn seed_slave_variant_loads() {
    let text = std::fs::read_to_string(fixture("seed-broker-a.properties"))
        .unwrap()
        .replace("brokerId=0", "brokerId=1")
        .replace("brokerRole=SYNC_MASTER", "brokerRole=SLAVE");
    let (c, _) = load_text(&text).unwrap();
    assert_eq!(c.broker_role, BrokerRole::Slave);
}

#[test]
fn bad_values_name_key_and_value() {
    assert_config_error("maxMessageSize=64k\n", "maxMessageSize", "64k");
    assert_config_error("maxMessageSize=0\u{a0}\n", "maxMessageSize", "0");
    assert_config_error(
        "mapedFileSizeCommitLog=1024\n",
        "mapedFileSizeCommitLog",
        "1024",
    );
    assert_config_error(
        "mappedFileSizeCommitLog=34359738368\n",
        "mappedFileSizeCommitLog",
        "34359738368",
    );
    assert_config_error(
        "mapedFileSizeConsumeQueue=10\n",
        "mapedFileSizeConsumeQueue",
        "10",
    );
    assert_config_error("defaultTopicQueueNums=0\n", "defaultTopicQueueNums", "0");
    assert_config_error(
        "defaultTopicQueueNums=2048\n",
        "defaultTopicQueueNums",
        "2048",
    );
    assert_config_error("flushIntervalCommitLog=0\n", "flushIntervalCommitLog", "0");
    assert_config_error("fileReservedTime=72h\n", "fileReservedTime", "72h");
    assert_config_error("deleteWhen=4am\n", "deleteWhen", "4am");
    assert_config_error("deleteWhen=04;24\n", "deleteWhen", "04;24");
    assert_config_error(
        "diskSpaceWarningLevelRatio=120\n",
        "diskSpaceWarningLevelRatio",
        "120",
    );
    assert_config_error("brokerRole=PRIMARY\n", "brokerRole", "PRIMARY");
    assert_config_error("flushDiskType=FSYNC\n", "flushDiskType", "FSYNC");
    assert_config_error(
        "autoCreateTopicEnable=yes\n",
        "autoCreateTopicEnable",
        "yes",
    );
    let msg = assert_config_error("listenPort=99999\n", "listenPort", "99999");
    assert!(msg.contains("from 0 to 65535"), "{msg}");
}

#[test]
fn error_reports_the_line() {
    let msg = assert_config_error(
        "# header\n\nbrokerName=a\nmaxMessageSize=x\n",
        "maxMessageSize",
        "x",
    );
    assert!(msg.contains("line 4"), "{msg}");
}

#[test]
fn both_spellings_with_different_values_conflict() {
    let err = load_text("mapedFileSizeCommitLog=1073741824\nmappedFileSizeCommitLog=536870912\n")
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("mapedFileSizeCommitLog"), "{msg}");
    assert!(msg.contains("mappedFileSizeCommitLog"), "{msg}");
    assert!(
        msg.contains("1073741824") && msg.contains("536870912"),
        "{msg}"
    );
    // Same value under both spellings is not a conflict.
    let (c, _) =
        load_text("mapedFileSizeConsumeQueue=6000\nmappedFileSizeConsumeQueue=6000\u{a0}\n")
            .unwrap();
    assert_eq!(c.mapped_file_size_consume_queue, 6000);
}

#[test]
fn unknown_keys_warn_and_known_ones_do_not() {
    let (c, warnings) = load_text(
        "storePathRootDir=/tmp/s\nbrokerName=broker-a\nflushDiskTyp=SYNC_FLUSH\nfoo.bar=1\n",
    )
    .unwrap();
    assert_eq!(c.flush_disk_type, FlushDiskType::AsyncFlush);
    let unknown: Vec<_> = warnings
        .iter()
        .filter(|w| w.kind == WarningKind::UnknownKey)
        .map(|w| (w.key.as_str(), w.line))
        .collect();
    assert_eq!(unknown, [("flushDiskTyp", Some(3)), ("foo.bar", Some(4))]);
    assert_eq!(warnings.len(), 2);
}

#[test]
fn disk_ratio_is_clamped_not_rejected() {
    let (c, warnings) = load_text("diskMaxUsedSpaceRatio=99\n").unwrap();
    assert_eq!(c.disk_max_used_space_ratio, 95);
    assert_eq!(warnings[0].kind, WarningKind::Clamped);
}

#[test]
fn missing_file_is_an_io_error_naming_the_path() {
    let err = StoreConfig::from_file("/no/such/dir/broker-a.properties").unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(
        err.to_string().contains("/no/such/dir/broker-a.properties"),
        "{err}"
    );
}

#[test]
fn missing_store_root_defaults_to_home_store() {
    // HOME is read, not changed: tests run in parallel.
    let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) else {
        return;
    };
    let (c, _) = load_text("brokerName=b\n").unwrap();
    assert_eq!(c.store_path_root_dir, PathBuf::from(home).join("store"));
}
