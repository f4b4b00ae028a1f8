//! Unit tests of loading, validation and printing.

use std::path::PathBuf;

use super::fields::{parse_delete_when, FIELDS};
use super::load::load;
use super::*;
use crate::Error;

#[test]
fn set_key_reads_a_value_as_a_file_does_and_changes_nothing_on_error() {
    let mut c = StoreConfig::new("/tmp/x");
    assert!(c.set_key("fileReservedTime", " 48 ").unwrap().is_empty());
    assert_eq!(c.file_reserved_time_hours, 48);
    c.set_key("deleteWhen", "04;16").unwrap();
    assert_eq!(c.delete_when_hours().unwrap(), vec![4, 16]);
    let w = c.set_key("diskMaxUsedSpaceRatio", "5").unwrap();
    assert_eq!(
        (w[0].kind, c.disk_max_used_space_ratio),
        (WarningKind::Clamped, 10)
    );
    let before = c.clone();
    for (k, v) in [
        ("deleteWhen", "24"),
        ("diskMaxUsedSpaceRatio", "abc"),
        ("flushIntervalCommitLog", "0"),
        ("noSuchKey", "1"),
    ] {
        let e = c.set_key(k, v).unwrap_err();
        assert!(
            matches!(e, Error::Config { ref key, .. } if key == k),
            "{e}"
        );
    }
    assert_eq!(c, before);
    // Every live key is a store key.
    for k in LIVE_KEYS {
        assert!(StoreConfig::keys().any(|s| s == *k), "{k}");
    }
}

fn load_str(text: &str) -> crate::Result<(StoreConfig, Vec<ConfigWarning>)> {
    load(
        &Properties::parse(text),
        Some(PathBuf::from("/home/test/store")),
    )
}

fn config_err(text: &str) -> (String, String, String) {
    match load_str(text) {
        Err(Error::Config {
            key,
            value,
            expected,
        }) => (key, value, expected),
        other => panic!("expected a config error for {text:?}, got {other:?}"),
    }
}

#[test]
fn empty_file_gives_defaults_under_home_store() {
    let (c, w) = load_str("").unwrap();
    assert_eq!(c, StoreConfig::new("/home/test/store"));
    assert!(w.is_empty());
}

#[test]
fn missing_root_without_home_is_an_error() {
    let err = load(&Properties::parse("brokerName=a\n"), None).unwrap_err();
    assert!(
        matches!(&err, Error::Config { key, .. } if key == "storePathRootDir"),
        "{err}"
    );
    let (c, _) = load(&Properties::parse("storePathRootDir=/srv/s\n"), None).unwrap();
    assert_eq!(c.store_path_root_dir, PathBuf::from("/srv/s"));
}

#[test]
fn every_field_loads_from_its_key() {
    let text = "\
storePathRootDir=/r
storePathCommitLog=/r/cl
mappedFileSizeCommitLog=65536
mappedFileSizeConsumeQueue=6000
flushDiskType=sync_flush
brokerRole=Slave
flushIntervalCommitLog=11
flushCommitLogLeastPages=12
flushCommitLogThoroughInterval=13
flushCommitLogTimed=FALSE
flushIntervalConsumeQueue=14
flushConsumeQueueLeastPages=15
flushConsumeQueueThoroughInterval=16
syncFlushTimeout=17
maxMessageSize=18
autoCreateTopicEnable=false
defaultTopicQueueNums=19
warmMapedFileEnable=True
flushLeastPagesWhenWarmMapedFile=20
brokerIP1=10.0.0.1
listenPort=30911
checkCRCOnRecover=false
maxTransferBytesOnMessageInMemory=21
maxTransferCountOnMessageInMemory=22
maxTransferBytesOnMessageInDisk=23
maxTransferCountOnMessageInDisk=24
accessMessageInMemoryMaxRatio=25
messageIndexEnable=false
maxHashSlotNum=26
maxIndexNum=27
deleteWhen=01;13
fileReservedTime=28
diskMaxUsedSpaceRatio=29
diskSpaceWarningLevelRatio=30
diskSpaceCleanForciblyRatio=31
cleanFileForciblyEnable=false
deleteCommitLogFilesInterval=32
deleteConsumeQueueFilesInterval=33
deleteFileBatchMax=34
destroyMapedFileIntervalForcibly=35
redeleteHangedFileInterval=36
cleanResourceInterval=37
transientStorePoolEnable=true
transientStorePoolSize=38
commitIntervalCommitLog=39
commitCommitLogLeastPages=40
commitCommitLogThoroughInterval=41
ioUringEnable=false
transientStorePoolSyncFlushEnable=true
syncFlushPwriteEnable=false
prefaultAheadBytes=43
haListenPort=44
haMasterAddress=127.0.0.1:10912
haSendHeartbeatInterval=45
haHousekeepingInterval=46
haTransferBatchSize=47
haSlaveFallbehindMax=48
slaveTimeout=49
messageDelayLevel=1s 2m 3h
osPageCacheBusyTimeOutMills=42
timerWheelEnable=false
timerPrecisionMs=500
timerMaxDelaySec=50
mappedFileSizeTimerLog=8192
timerRollWindowSlots=7
";
    let (c, w) = load_str(text).unwrap();
    assert!(w.is_empty(), "{w:?}");
    let expected = StoreConfig {
        store_path_root_dir: "/r".into(),
        store_path_commit_log: Some("/r/cl".into()),
        mapped_file_size_commit_log: 65536,
        mapped_file_size_consume_queue: 6000,
        flush_disk_type: FlushDiskType::SyncFlush,
        broker_role: BrokerRole::Slave,
        flush_interval_commit_log_ms: 11,
        flush_commit_log_least_pages: 12,
        flush_commit_log_thorough_interval_ms: 13,
        flush_commit_log_timed: false,
        flush_interval_consume_queue_ms: 14,
        flush_consume_queue_least_pages: 15,
        flush_consume_queue_thorough_interval_ms: 16,
        sync_flush_timeout_ms: 17,
        max_message_size: 18,
        auto_create_topic_enable: false,
        default_topic_queue_nums: 19,
        warm_maped_file_enable: true,
        flush_least_pages_when_warm_maped_file: 20,
        broker_ip1: "10.0.0.1".into(),
        listen_port: 30911,
        check_crc_on_recover: false,
        max_transfer_bytes_on_message_in_memory: 21,
        max_transfer_count_on_message_in_memory: 22,
        max_transfer_bytes_on_message_in_disk: 23,
        max_transfer_count_on_message_in_disk: 24,
        access_message_in_memory_max_ratio: 25,
        message_index_enable: false,
        max_hash_slot_num: 26,
        max_index_num: 27,
        delete_when: "01;13".into(),
        file_reserved_time_hours: 28,
        disk_max_used_space_ratio: 29,
        disk_space_warning_level_ratio: 30,
        disk_space_clean_forcibly_ratio: 31,
        clean_file_forcibly_enable: false,
        delete_commit_log_files_interval_ms: 32,
        delete_consume_queue_files_interval_ms: 33,
        delete_file_batch_max: 34,
        destroy_maped_file_interval_forcibly_ms: 35,
        redelete_hanged_file_interval_ms: 36,
        clean_resource_interval_ms: 37,
        transient_store_pool_enable: true,
        transient_store_pool_size: 38,
        commit_interval_commit_log_ms: 39,
        commit_commit_log_least_pages: 40,
        commit_commit_log_thorough_interval_ms: 41,
        io_uring_enable: false,
        transient_store_pool_sync_flush_enable: true,
        sync_flush_pwrite_enable: false,
        prefault_ahead_bytes: 43,
        ha_listen_port: 44,
        ha_master_address: Some("127.0.0.1:10912".into()),
        ha_send_heartbeat_interval_ms: 45,
        ha_housekeeping_interval_ms: 46,
        ha_transfer_batch_size: 47,
        ha_slave_fallbehind_max: 48,
        slave_timeout_ms: 49,
        message_delay_level: "1s 2m 3h".into(),
        os_page_cache_busy_timeout_ms: 42,
        timer_wheel_enable: false,
        timer_precision_ms: 500,
        timer_max_delay_sec: 50,
        mapped_file_size_timer_log: 8192,
        timer_roll_window_slots: 7,
    };
    assert_eq!(c, expected);
    // The table covers every field: a file that sets all of them sets no default.
    assert_eq!(FIELDS.len(), 65);
}

#[test]
fn field_table_has_unique_keys_disjoint_from_broker_keys() {
    let mut seen = std::collections::HashSet::new();
    for key in StoreConfig::keys() {
        assert!(seen.insert(key), "duplicate store key {key}");
        assert!(!BROKER_KEYS.contains(&key), "{key} is a store key");
        assert!(
            LEGACY_KEYS.iter().all(|(k, _)| *k != key),
            "{key} is legacy"
        );
    }
    let mut broker = std::collections::HashSet::new();
    for key in BROKER_KEYS {
        assert!(broker.insert(key), "duplicate broker key {key}");
    }
}

#[test]
fn old_spellings_load() {
    let (c, w) = load_str("mapedFileSizeCommitLog=8192\nmapedFileSizeConsumeQueue=2000\n").unwrap();
    assert_eq!(c.mapped_file_size_commit_log, 8192);
    assert_eq!(c.mapped_file_size_consume_queue, 2000);
    assert!(w.is_empty());
}

#[test]
fn both_spellings_equal_is_fine_different_is_an_error() {
    let (c, _) = load_str("mapedFileSizeCommitLog=8192\nmappedFileSizeCommitLog=8192\n").unwrap();
    assert_eq!(c.mapped_file_size_commit_log, 8192);
    let (key, value, expected) =
        config_err("mapedFileSizeConsumeQueue=2000\nmappedFileSizeConsumeQueue=4000\n");
    assert!(
        key.contains("mappedFileSizeConsumeQueue") && key.contains("mapedFileSizeConsumeQueue")
    );
    assert!(value.contains("2000") && value.contains("4000"), "{value}");
    assert!(
        value.contains("line 1") && value.contains("line 2"),
        "{value}"
    );
    assert!(expected.contains("keep one"), "{expected}");
}

#[test]
fn integers_reject_junk_and_out_of_range() {
    for (text, key, value) in [
        ("maxMessageSize=abc", "maxMessageSize", "abc"),
        ("maxMessageSize=4M", "maxMessageSize", "4M"),
        ("maxMessageSize=0", "maxMessageSize", "0"),
        ("maxMessageSize=-1", "maxMessageSize", "-1"),
        ("maxMessageSize=1.5", "maxMessageSize", "1.5"),
        ("maxMessageSize=", "maxMessageSize", ""),
        ("maxMessageSize=2147483648", "maxMessageSize", "2147483648"),
        ("listenPort=65536", "listenPort", "65536"),
        ("flushIntervalCommitLog=0", "flushIntervalCommitLog", "0"),
        ("defaultTopicQueueNums=0", "defaultTopicQueueNums", "0"),
        (
            "defaultTopicQueueNums=1025",
            "defaultTopicQueueNums",
            "1025",
        ),
        (
            "mappedFileSizeCommitLog=4095",
            "mappedFileSizeCommitLog",
            "4095",
        ),
        (
            "mapedFileSizeCommitLog=17179869185",
            "mapedFileSizeCommitLog",
            "17179869185",
        ),
        (
            "mappedFileSizeConsumeQueue=19",
            "mappedFileSizeConsumeQueue",
            "19",
        ),
        (
            "accessMessageInMemoryMaxRatio=101",
            "accessMessageInMemoryMaxRatio",
            "101",
        ),
        (
            "diskSpaceWarningLevelRatio=101",
            "diskSpaceWarningLevelRatio",
            "101",
        ),
        ("cleanResourceInterval=0", "cleanResourceInterval", "0"),
        ("commitIntervalCommitLog=0", "commitIntervalCommitLog", "0"),
        (
            "maxMessageSize=999999999999999999999999999999999999999999999",
            "maxMessageSize",
            "999999999999999999999999999999999999999999999",
        ),
    ] {
        let (k, v, expected) = config_err(&format!("a=1\n{text}\n"));
        assert_eq!((k.as_str(), v.as_str()), (key, value), "{text}");
        assert!(
            expected.starts_with("an integer from "),
            "{text}: {expected}"
        );
        assert!(expected.ends_with("line 2"), "{text}: {expected}");
    }
}

#[test]
fn integer_error_message_names_key_value_and_range() {
    let err = load_str("maxMessageSize=lots\n").unwrap_err().to_string();
    assert!(err.contains("maxMessageSize"), "{err}");
    assert!(err.contains("lots"), "{err}");
    assert!(err.contains("an integer from 1 to 2147483647"), "{err}");
}

#[test]
fn booleans_and_enums() {
    let (c, _) =
        load_str("messageIndexEnable=FaLsE\nflushDiskType=Sync_Flush\nbrokerRole=sync_master\n")
            .unwrap();
    assert!(!c.message_index_enable);
    assert_eq!(c.flush_disk_type, FlushDiskType::SyncFlush);
    assert_eq!(c.broker_role, BrokerRole::SyncMaster);
    for (text, key, expected) in [
        (
            "messageIndexEnable=yes",
            "messageIndexEnable",
            "true or false",
        ),
        (
            "messageIndexEnable=1",
            "messageIndexEnable",
            "true or false",
        ),
        (
            "flushDiskType=SYNC",
            "flushDiskType",
            "ASYNC_FLUSH or SYNC_FLUSH",
        ),
        (
            "brokerRole=MASTER",
            "brokerRole",
            "ASYNC_MASTER, SYNC_MASTER or SLAVE",
        ),
    ] {
        let (k, _, e) = config_err(text);
        assert_eq!(k, key);
        assert!(e.starts_with(expected), "{e}");
    }
}

#[test]
fn enum_strings_round_trip() {
    for t in [FlushDiskType::AsyncFlush, FlushDiskType::SyncFlush] {
        assert_eq!(t.to_string().parse::<FlushDiskType>().unwrap(), t);
    }
    for r in [
        BrokerRole::AsyncMaster,
        BrokerRole::SyncMaster,
        BrokerRole::Slave,
    ] {
        assert_eq!(r.to_string().parse::<BrokerRole>().unwrap(), r);
    }
    assert!("x".parse::<BrokerRole>().is_err());
}

#[test]
fn disk_max_used_space_ratio_is_clamped_with_a_warning() {
    for (given, used) in [("5", 10), ("0", 10), ("-3", 10), ("96", 95), ("150", 95)] {
        let (c, w) = load_str(&format!("diskMaxUsedSpaceRatio={given}\n")).unwrap();
        assert_eq!(c.disk_max_used_space_ratio, used, "{given}");
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].kind, WarningKind::Clamped);
        assert_eq!(w[0].key, "diskMaxUsedSpaceRatio");
        assert_eq!(w[0].value, given);
    }
    let (c, w) = load_str("diskMaxUsedSpaceRatio=95\n").unwrap();
    assert_eq!(c.disk_max_used_space_ratio, 95);
    assert!(w.is_empty());
    let (k, v, _) = config_err("diskMaxUsedSpaceRatio=lots\n");
    assert_eq!((k.as_str(), v.as_str()), ("diskMaxUsedSpaceRatio", "lots"));
}

#[test]
fn delete_when() {
    assert_eq!(parse_delete_when("04").unwrap(), vec![4]);
    assert_eq!(parse_delete_when("4").unwrap(), vec![4]);
    assert_eq!(parse_delete_when("16;04; 05 ;04;").unwrap(), vec![4, 5, 16]);
    assert_eq!(parse_delete_when("0;23").unwrap(), vec![0, 23]);
    for bad in [
        "", ";", "24", "-1", "4;;5", "04,05", "four", "4pm", "+4", "004000",
    ] {
        assert!(parse_delete_when(bad).is_err(), "{bad:?}");
    }
    let mut c = StoreConfig::new("/s");
    assert_eq!(c.delete_when_hours().unwrap(), vec![4]);
    c.delete_when = "25".into();
    let err = c.delete_when_hours().unwrap_err().to_string();
    assert!(err.contains("deleteWhen") && err.contains("25"), "{err}");
    assert!(c.validate().is_err());
    let (k, v, _) = config_err("deleteWhen=04,05\n");
    assert_eq!((k.as_str(), v.as_str()), ("deleteWhen", "04,05"));
}

#[test]
fn validate_accepts_defaults_and_rejects_bad_fields() {
    StoreConfig::new("/s").validate().unwrap();
    type Edit = fn(&mut StoreConfig);
    let cases: [(Edit, &str, &str); 14] = [
        (
            |c| c.mapped_file_size_commit_log = 4095,
            "mappedFileSizeCommitLog",
            "4095",
        ),
        (
            |c| c.mapped_file_size_commit_log = (16 << 30) + 1,
            "mappedFileSizeCommitLog",
            "17179869185",
        ),
        (
            |c| c.mapped_file_size_consume_queue = 19,
            "mappedFileSizeConsumeQueue",
            "19",
        ),
        (
            |c| c.mapped_file_size_consume_queue = 1 << 31,
            "mappedFileSizeConsumeQueue",
            "2147483648",
        ),
        (|c| c.max_message_size = 0, "maxMessageSize", "0"),
        (
            |c| c.default_topic_queue_nums = 0,
            "defaultTopicQueueNums",
            "0",
        ),
        (
            |c| c.default_topic_queue_nums = 1025,
            "defaultTopicQueueNums",
            "1025",
        ),
        (
            |c| c.flush_interval_consume_queue_ms = 0,
            "flushIntervalConsumeQueue",
            "0",
        ),
        (|c| c.sync_flush_timeout_ms = 0, "syncFlushTimeout", "0"),
        (
            |c| c.disk_max_used_space_ratio = 96,
            "diskMaxUsedSpaceRatio",
            "96",
        ),
        (
            |c| c.disk_space_clean_forcibly_ratio = 101,
            "diskSpaceCleanForciblyRatio",
            "101",
        ),
        (
            |c| c.store_path_root_dir = PathBuf::new(),
            "storePathRootDir",
            "",
        ),
        (
            |c| c.store_path_commit_log = Some("/a,/b".into()),
            "storePathCommitLog",
            "/a,/b",
        ),
        (|c| c.broker_ip1 = String::new(), "brokerIP1", ""),
    ];
    for (edit, key, value) in cases {
        let mut c = StoreConfig::new("/s");
        edit(&mut c);
        match c.validate() {
            Err(Error::Config {
                key: k,
                value: v,
                expected,
            }) => {
                assert_eq!((k.as_str(), v.as_str()), (key, value));
                assert!(!expected.is_empty());
            }
            other => panic!("{key}={value}: {other:?}"),
        }
    }
}

#[test]
fn index_file_size_is_bounded() {
    let mut c = StoreConfig::new("/s");
    c.max_index_num = 200_000_000;
    let err = c.validate().unwrap_err().to_string();
    assert!(
        err.contains("maxIndexNum") && err.contains("200000000"),
        "{err}"
    );
}

#[test]
fn validation_error_uses_the_spelling_and_line_from_the_file() {
    // Range checks fire while loading; cross-field checks during validate still name
    // the file's key and line.
    let (k, _, e) = config_err("x=1\nmaxHashSlotNum=5000000\nmaxIndexNum=200000000\n");
    assert_eq!(k, "maxIndexNum");
    assert!(e.ends_with("line 3"), "{e}");
    let (k, v, e) = config_err("mapedFileSizeCommitLog=100\n");
    assert_eq!((k.as_str(), v.as_str()), ("mapedFileSizeCommitLog", "100"));
    assert!(e.ends_with("line 1"), "{e}");
}

#[test]
fn unknown_key_warns_with_a_suggestion() {
    let (_, w) =
        load_str("# x\nmaxMesageSize=1\nwarmMappedFileEnable=true\nbrokername=a\n").unwrap();
    assert_eq!(w.len(), 3, "{w:?}");
    assert!(w.iter().all(|w| w.kind == WarningKind::UnknownKey));
    assert_eq!(w[0].key, "maxMesageSize");
    assert_eq!(w[0].line, Some(2));
    assert!(!w[0].message.contains("did you mean"));
    assert!(
        w[1].message.contains("did you mean `warmMapedFileEnable`"),
        "{}",
        w[1]
    );
    assert!(
        w[2].message.contains("did you mean `brokerName`"),
        "{}",
        w[2]
    );
}

#[test]
fn broker_keys_do_not_warn_and_stay_in_properties() {
    let text = "brokerClusterName=c\nbrokerName=b\nbrokerId=0\nnamesrvAddr=h:9876\n\
                sendMessageThreadPoolNums=8\nhaListenPort=10912\nslaveReadEnable=true\n\
                storePathEpochFile=/s/epochFileCheckpoint\n";
    let props = Properties::parse(text);
    let (_, w) = load(&props, Some("/s".into())).unwrap();
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(props.get("sendMessageThreadPoolNums"), Some("8"));
    assert_eq!(
        props.get("storePathEpochFile"),
        Some("/s/epochFileCheckpoint")
    );
    assert!(is_known_key("brokerName") && is_known_key("maxMessageSize"));
    assert!(is_known_key("mapedFileSizeCommitLog") && is_known_key("abortFile"));
    assert!(!is_known_key("maxMesageSize"));
}

#[test]
fn unsupported_features_warn_only_when_enabled() {
    let (_, w) = load_str("enableDLegerCommitLog=false\n").unwrap();
    assert!(w.is_empty());
    let (_, w) = load_str("enableDLegerCommitLog=true\n").unwrap();
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].kind, WarningKind::Unsupported);
}

#[test]
fn legacy_keys_warn_informationally() {
    let text = "checkTransactionMessageEnable=false\nstorePathConsumeQueue=/x/cq\n\
                storePathIndex=/x/i\nstoreCheckpoint=/x/c\nabortFile=/x/a\n";
    let (c, w) = load_str(text).unwrap();
    assert_eq!(c, StoreConfig::new("/home/test/store"));
    assert_eq!(w.len(), 5);
    for (warning, (key, _)) in w.iter().zip(LEGACY_KEYS) {
        assert_eq!(warning.kind, WarningKind::LegacyKey);
        assert_eq!(&warning.key, key);
        assert!(warning.message.contains("Ignored"), "{warning}");
    }
}

#[test]
fn tilde_paths_are_suspicious() {
    let (c, w) = load_str("storePathRootDir=~/store\n").unwrap();
    assert_eq!(c.store_path_root_dir, PathBuf::from("~/store"));
    assert_eq!(w[0].kind, WarningKind::Suspicious);
}

#[test]
fn commit_log_paths() {
    let (c, _) = load_str("storePathRootDir=/r\n").unwrap();
    assert_eq!(c.commit_log_dir(), PathBuf::from("/r/commitlog"));
    let (k, _, e) = config_err("storePathCommitLog=/a,/b\n");
    assert_eq!(k, "storePathCommitLog");
    assert!(e.contains("one directory path"), "{e}");
    let (k, _, _) = config_err("storePathRootDir=\n");
    assert_eq!(k, "storePathRootDir");
}

#[test]
fn values_with_nbsp_junk_load() {
    let (c, w) = load_str("maxMessageSize=65536\u{a0} \nbrokerRole=SLAVE\u{3000}\n").unwrap();
    assert_eq!(c.max_message_size, 65536);
    assert_eq!(c.broker_role, BrokerRole::Slave);
    assert!(w.is_empty());
}

#[test]
fn to_properties_round_trips_defaults_and_changes() {
    let mut c = StoreConfig::new("/data/store with space\u{a0}");
    let text = c.to_properties();
    assert!(
        text.contains("mappedFileSizeCommitLog=1073741824\n"),
        "{text}"
    );
    assert!(text.contains("flushDiskType=ASYNC_FLUSH\n"));
    assert!(text.contains("# storePathCommitLog is not set"));
    // Only the commitlog path's comment says where the commitlog is.
    assert!(text.contains("\n# haMasterAddress is not set\n"), "{text}");
    let (back, w) = load_str(&text).unwrap();
    assert_eq!(back, c);
    assert!(w.is_empty(), "{w:?}");

    c.store_path_commit_log = Some(" /odd\\path#x ".into());
    c.broker_role = BrokerRole::SyncMaster;
    c.flush_disk_type = FlushDiskType::SyncFlush;
    c.delete_when = "01;02".into();
    c.broker_ip1 = "::1".into();
    c.disk_max_used_space_ratio = 10;
    let (back, _) = load_str(&c.to_properties()).unwrap();
    assert_eq!(back, c);
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn load_never_panics(s in any::<String>()) {
            let _ = load_str(&s);
        }

        #[test]
        fn round_trip(
            cl in 4096u64..=(16 << 30),
            cq in 20u64..=2_147_483_640,
            sync in any::<bool>(),
            role in 0u8..3,
            interval in 1u64..=2_147_483_647,
            pages in 0u32..=2_147_483_647,
            ratio in 10u32..=95,
            hours in proptest::collection::btree_set(0u8..24, 1..4),
            root in "[^\u{0}]{1,20}",
            timed in any::<bool>(),
        ) {
            let mut c = StoreConfig::new(root.trim_matches(char::is_whitespace));
            prop_assume!(!c.store_path_root_dir.as_os_str().is_empty());
            c.mapped_file_size_commit_log = cl;
            c.mapped_file_size_consume_queue = cq;
            c.flush_disk_type = if sync { FlushDiskType::SyncFlush } else { FlushDiskType::AsyncFlush };
            c.broker_role = [BrokerRole::AsyncMaster, BrokerRole::SyncMaster, BrokerRole::Slave][usize::from(role)];
            c.flush_interval_commit_log_ms = interval;
            c.flush_commit_log_least_pages = pages;
            c.disk_max_used_space_ratio = ratio;
            c.delete_when = hours.iter().map(|h| format!("{h:02}")).collect::<Vec<_>>().join(";");
            c.flush_commit_log_timed = timed;
            c.validate().unwrap();
            let (back, warnings) = load_str(&c.to_properties()).unwrap();
            prop_assert_eq!(back, c);
            prop_assert!(warnings.iter().all(|w| w.kind == WarningKind::Suspicious));
        }
    }
}
