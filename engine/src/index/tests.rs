use std::path::Path;

use proptest::prelude::*;

use super::layout::{file_size_bytes, Header, HEADER_BYTES};
use super::*;
use crate::message::{java_hash, MessageProperties};

const T0: i64 = 1_700_000_000_000;

fn cfg(slots: u32, entries: u32) -> StoreConfig {
    let mut c = StoreConfig::new("/nonexistent");
    c.max_hash_slot_num = slots;
    c.max_index_num = entries;
    c
}

fn props(uniq: Option<&str>, keys_value: Option<&str>) -> Vec<u8> {
    let mut p = MessageProperties::new();
    p.insert("TAGS", "tagA");
    if let Some(k) = keys_value {
        p.insert(keys::KEYS, k);
    }
    if let Some(u) = uniq {
        p.insert(keys::UNIQ_KEY, u);
    }
    let mut out = Vec::new();
    p.encode_into(&mut out);
    out
}

fn all(svc: &IndexService, topic: &str, key: &str) -> Vec<u64> {
    svc.query(topic, key, 64, 0, i64::MAX)
}

fn index_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| parse_name(&p.file_name().unwrap().to_string_lossy()).is_some())
        .collect();
    v.sort();
    v
}

fn be32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

fn be64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}

#[test]
fn key_hash_is_abs_java_hash_of_topic_hash_key() {
    for (t, k) in [
        ("T", "k"),
        ("TopicTest", "ORDER-2024-0001"),
        ("中文", "ключ"),
    ] {
        let j = java_hash(&format!("{t}#{k}"));
        assert_eq!(key_hash(t, k), if j == i32::MIN { 0 } else { j.abs() });
    }
    // A known Java value: "a#b".hashCode() = 97*31*31 + 35*31 + 98.
    assert_eq!(key_hash("a", "b"), 97 * 961 + 35 * 31 + 98);
}

#[test]
fn put_and_query_several_keys_and_uniq_key() {
    let dir = tempfile::tempdir().unwrap();
    let svc = IndexService::load(dir.path(), &cfg(64, 1000)).unwrap();
    for i in 0..10u64 {
        let p = props(
            Some(&format!("UNIQ{i:04}")),
            Some(&format!("k{i}  common  tail{i} ")),
        );
        svc.build_index("T", &p, 0, 1000 + i * 100, T0 + i as i64 * 1000)
            .unwrap();
    }
    assert_eq!(all(&svc, "T", "k3"), vec![1300]);
    assert_eq!(all(&svc, "T", "tail7"), vec![1700]);
    assert_eq!(all(&svc, "T", "UNIQ0005"), vec![1500]);
    let common = all(&svc, "T", "common");
    assert_eq!(
        common,
        (0..10).rev().map(|i| 1000 + i * 100).collect::<Vec<_>>(),
        "newest first"
    );
    assert_eq!(svc.query("T", "common", 3, 0, i64::MAX).len(), 3);
    assert_eq!(svc.query("T", "common", 1000, 0, i64::MAX).len(), 10);
    assert!(
        all(&svc, "Other", "k3").is_empty(),
        "topic is part of the key"
    );
    assert!(all(&svc, "T", "").is_empty());
    assert_eq!(svc.last_update(), (T0 + 9000, 1900));
    assert_eq!(svc.file_count(), 1);
}

#[test]
fn query_caps_at_64() {
    let dir = tempfile::tempdir().unwrap();
    let svc = IndexService::load(dir.path(), &cfg(16, 1000)).unwrap();
    for i in 0..100u64 {
        svc.build_index("T", &props(None, Some("hot")), 0, i * 10, T0)
            .unwrap();
    }
    assert_eq!(
        svc.query("T", "hot", 1000, 0, i64::MAX).len(),
        MAX_QUERY_RESULTS
    );
}

#[test]
fn records_without_keys_and_rollbacks_are_not_indexed() {
    let dir = tempfile::tempdir().unwrap();
    let svc = IndexService::load(dir.path(), &cfg(16, 100)).unwrap();
    svc.build_index("T", &props(None, None), 0, 0, T0).unwrap();
    svc.build_index("T", &props(Some(""), Some("   ")), 0, 10, T0)
        .unwrap();
    assert_eq!(svc.file_count(), 0, "nothing to index creates no file");
    svc.build_index(
        "T",
        &props(Some("U"), Some("k")),
        sys_flag::TRANSACTION_ROLLBACK_TYPE,
        20,
        T0,
    )
    .unwrap();
    assert!(all(&svc, "T", "k").is_empty());
    svc.build_index(
        "T",
        &props(Some("U"), Some("k")),
        sys_flag::TRANSACTION_PREPARED_TYPE,
        30,
        T0,
    )
    .unwrap();
    assert_eq!(
        all(&svc, "T", "k"),
        vec![30],
        "prepared records are indexed"
    );
}

#[test]
fn collisions_in_one_slot_and_equal_hashes() {
    let dir = tempfile::tempdir().unwrap();
    // One slot: every key shares one chain.
    let svc = IndexService::load(dir.path(), &cfg(1, 100)).unwrap();
    // "Aa" and "BB" have equal Java hashes, so "T#Aa" and "T#BB" do too.
    assert_eq!(key_hash("T", "Aa"), key_hash("T", "BB"));
    svc.build_index("T", &props(None, Some("Aa")), 0, 100, T0)
        .unwrap();
    svc.build_index("T", &props(None, Some("x")), 0, 200, T0)
        .unwrap();
    svc.build_index("T", &props(None, Some("BB")), 0, 300, T0)
        .unwrap();
    svc.build_index("T", &props(None, Some("y")), 0, 400, T0)
        .unwrap();
    assert_eq!(all(&svc, "T", "x"), vec![200]);
    assert_eq!(all(&svc, "T", "y"), vec![400]);
    // Keys are not compared: both equal-hash records come back, for the caller to filter.
    assert_eq!(all(&svc, "T", "Aa"), vec![300, 100]);
    assert_eq!(all(&svc, "T", "BB"), vec![300, 100]);
}

#[test]
fn two_keys_in_the_same_slot_are_both_found() {
    let dir = tempfile::tempdir().unwrap();
    let slots = 8;
    let svc = IndexService::load(dir.path(), &cfg(slots, 100)).unwrap();
    let a = "key-a".to_string();
    let b = (0..)
        .map(|i| format!("key-{i}"))
        .find(|k| {
            k != &a
                && key_hash("T", k) % slots as i32 == key_hash("T", &a) % slots as i32
                && key_hash("T", k) != key_hash("T", &a)
        })
        .unwrap();
    svc.build_index("T", &props(None, Some(&a)), 0, 10, T0)
        .unwrap();
    svc.build_index("T", &props(None, Some(&b)), 0, 20, T0)
        .unwrap();
    assert_eq!(all(&svc, "T", &a), vec![10]);
    assert_eq!(all(&svc, "T", &b), vec![20]);
}

#[test]
fn time_range_filters_entries_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let svc = IndexService::load(dir.path(), &cfg(16, 8)).unwrap();
    // 20 records 10 s apart, spread over 3 files of 7 entries.
    for i in 0..20u64 {
        svc.build_index(
            "T",
            &props(None, Some("k")),
            0,
            i * 100,
            T0 + i as i64 * 10_000,
        )
        .unwrap();
    }
    assert_eq!(svc.file_count(), 3);
    let got = svc.query("T", "k", 64, T0 + 50_000, T0 + 120_000);
    assert_eq!(got, vec![1200, 1100, 1000, 900, 800, 700, 600, 500]);
    let got = svc.query("T", "k", 64, T0 + 185_000, T0 + 1_000_000);
    assert_eq!(got, vec![1900]);
    assert!(svc.query("T", "k", 64, 0, T0 - 1).is_empty());
    assert!(svc.query("T", "k", 64, T0 + 300_000, i64::MAX).is_empty());
    assert_eq!(svc.query("T", "k", 64, 0, i64::MAX).len(), 20);
}

#[test]
fn rolls_to_a_new_file_when_full() {
    let dir = tempfile::tempdir().unwrap();
    // 4 entries per file (entry 0 is never used).
    let svc = IndexService::load(dir.path(), &cfg(4, 5)).unwrap();
    for i in 0..10u64 {
        svc.build_index(
            "T",
            &props(None, Some(&format!("k{i}"))),
            0,
            i * 100,
            T0 + i as i64 * 1000,
        )
        .unwrap();
    }
    assert_eq!(svc.file_count(), 3);
    for i in 0..10u64 {
        assert_eq!(all(&svc, "T", &format!("k{i}")), vec![i * 100], "k{i}");
    }
    // One message whose keys straddle a roll.
    svc.build_index("T", &props(Some("u"), Some("a b c")), 0, 1000, T0 + 10_000)
        .unwrap();
    assert_eq!(svc.file_count(), 4);
    for k in ["u", "a", "b", "c"] {
        assert_eq!(all(&svc, "T", k), vec![1000], "{k}");
    }
    svc.flush().unwrap();
    let files = index_files(dir.path());
    assert_eq!(files.len(), 4);
    let names: Vec<_> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_owned())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    let b = std::fs::read(&files[1]).unwrap();
    assert_eq!(b.len() as u64, file_size_bytes(4, 5));
    // The second file's header: its own first and last entries.
    assert_eq!(be64(&b, 0), T0 + 4000);
    assert_eq!(be64(&b, 8), T0 + 7000);
    assert_eq!(be64(&b, 16), 400);
    assert_eq!(be64(&b, 24), 700);
    assert_eq!(be32(&b, 36), 5);
    // The first entry's time is relative to the previous file's end (RocketMQ computes
    // it before moving beginTimestamp to the entry's own time): (4000 - 3000) / 1000.
    let e1 = HEADER_BYTES as usize + 4 * 4 + 20;
    assert_eq!(be32(&b, e1 + 12), 1);
}

#[test]
fn header_slots_and_entries_are_rocketmq_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (slots, entries) = (16u32, 10u32);
    let svc = IndexService::load(dir.path(), &cfg(slots, entries)).unwrap();
    let recs = [
        ("k1", 5000u64, T0 + 1234),
        ("k2", 6000, T0 + 3456),
        ("k1", 7000, T0 + 9999),
    ];
    for (k, phy, ts) in recs {
        svc.build_index("Topic", &props(None, Some(k)), 0, phy, ts)
            .unwrap();
    }
    svc.flush().unwrap();
    let files = index_files(dir.path());
    assert_eq!(files.len(), 1);
    let name = files[0].file_name().unwrap().to_string_lossy().to_string();
    assert_eq!(name.len(), 17);
    let b = std::fs::read(&files[0]).unwrap();
    assert_eq!(b.len(), 40 + 16 * 4 + 10 * 20);
    assert_eq!(be64(&b, 0), T0 + 1234, "beginTimestamp");
    assert_eq!(be64(&b, 8), T0 + 9999, "endTimestamp");
    assert_eq!(be64(&b, 16), 5000, "beginPhyOffset");
    assert_eq!(be64(&b, 24), 7000, "endPhyOffset");
    let h1 = key_hash("Topic", "k1");
    let h2 = key_hash("Topic", "k2");
    let (s1, s2) = ((h1 % 16) as usize, (h2 % 16) as usize);
    assert_ne!(s1, s2, "test keys chosen to land in different slots");
    assert_eq!(be32(&b, 32), 2, "hashSlotCount: two slots in use");
    assert_eq!(be32(&b, 36), 4, "indexCount: next entry number");
    for s in 0..16 {
        let want = if s == s1 {
            3
        } else if s == s2 {
            2
        } else {
            0
        };
        assert_eq!(be32(&b, 40 + 4 * s), want, "slot {s}");
    }
    let entry = |n: usize| 40 + 16 * 4 + 20 * n;
    assert!(
        b[entry(0)..entry(1)].iter().all(|x| *x == 0),
        "entry 0 unused"
    );
    // [keyHash][phyOffset][timeDiff][prevIndex]
    assert_eq!(
        (
            be32(&b, entry(1)),
            be64(&b, entry(1) + 4),
            be32(&b, entry(1) + 12),
            be32(&b, entry(1) + 16)
        ),
        (h1, 5000, 0, 0),
        "first entry: beginTimestamp was 0, so timeDiff is 0"
    );
    assert_eq!(
        (
            be32(&b, entry(2)),
            be64(&b, entry(2) + 4),
            be32(&b, entry(2) + 12),
            be32(&b, entry(2) + 16)
        ),
        (h2, 6000, 2, 0)
    );
    assert_eq!(
        (
            be32(&b, entry(3)),
            be64(&b, entry(3) + 4),
            be32(&b, entry(3) + 12),
            be32(&b, entry(3) + 16)
        ),
        (h1, 7000, 8, 1)
    );
    assert!(b[entry(4)..].iter().all(|x| *x == 0));
}

#[test]
fn reopen_after_flush_finds_everything_and_keeps_writing() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(8, 6);
    {
        let svc = IndexService::load(dir.path(), &c).unwrap();
        for i in 0..12u64 {
            svc.build_index(
                "T",
                &props(Some(&format!("u{i}")), Some("k")),
                0,
                i * 100,
                T0 + i as i64 * 1000,
            )
            .unwrap();
        }
        svc.flush().unwrap();
    }
    let svc = IndexService::load(dir.path(), &c).unwrap();
    assert_eq!(svc.file_count(), 5);
    assert_eq!(svc.last_update(), (T0 + 11_000, 1100));
    for i in 0..12u64 {
        assert_eq!(all(&svc, "T", &format!("u{i}")), vec![i * 100]);
    }
    assert_eq!(all(&svc, "T", "k").len(), 12);
    // The last file was not full: new keys go on in it.
    svc.build_index("T", &props(None, Some("new")), 0, 1200, T0 + 12_000)
        .unwrap();
    assert_eq!(svc.file_count(), 5);
    assert_eq!(all(&svc, "T", "new"), vec![1200]);
    assert_eq!(all(&svc, "T", "k").len(), 12);
}

#[test]
fn unflushed_keys_are_visible_before_flush() {
    let dir = tempfile::tempdir().unwrap();
    let svc = IndexService::load(dir.path(), &cfg(1024, 100_000)).unwrap();
    // Enough entries to spill the write buffer to disk several times.
    for i in 0..10_000u64 {
        svc.build_index("T", &props(None, Some(&format!("k{}", i % 500))), 0, i, T0)
            .unwrap();
    }
    assert_eq!(all(&svc, "T", "k7").len(), 20);
    assert_eq!(all(&svc, "T", "k7")[0], 9507);
}

#[test]
fn re_dispatch_at_or_below_end_offset_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let svc = IndexService::load(dir.path(), &cfg(16, 100)).unwrap();
    let p = props(Some("u1"), Some("a b"));
    svc.build_index("T", &p, 0, 100, T0).unwrap();
    svc.build_index("T", &p, 0, 100, T0).unwrap();
    svc.build_index("T", &props(None, Some("a")), 0, 50, T0)
        .unwrap();
    assert_eq!(all(&svc, "T", "a"), vec![100]);
    assert_eq!(all(&svc, "T", "u1"), vec![100]);
    svc.build_index("T", &props(None, Some("a")), 0, 200, T0)
        .unwrap();
    assert_eq!(all(&svc, "T", "a"), vec![200, 100]);
}

#[test]
fn truncate_after_removes_the_tail_and_rebuild_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(4, 6);
    let put = |svc: &IndexService, i: u64| {
        svc.build_index(
            "T",
            &props(Some(&format!("u{i}")), Some("k")),
            0,
            i * 100,
            T0 + i as i64 * 1000,
        )
        .unwrap();
    };
    // Reference: records 0..7 only.
    let ref_dir = tempfile::tempdir().unwrap();
    let reference = IndexService::load(ref_dir.path(), &c).unwrap();
    for i in 0..7 {
        put(&reference, i);
    }
    reference.flush().unwrap();

    let svc = IndexService::load(dir.path(), &c).unwrap();
    for i in 0..12 {
        put(&svc, i);
    }
    svc.flush().unwrap();
    assert_eq!(svc.file_count(), 5);
    svc.truncate_after(700).unwrap();
    assert_eq!(svc.file_count(), 3);
    assert_eq!(svc.last_update().1, 600);
    for i in 0..12u64 {
        let want = if i < 7 { vec![i * 100] } else { vec![] };
        assert_eq!(all(&svc, "T", &format!("u{i}")), want, "u{i}");
    }
    assert_eq!(all(&svc, "T", "k").len(), 7);
    // The files hold the same slots and entries as an index built from 0..7 only.
    svc.flush().unwrap();
    let (a, b) = (index_files(dir.path()), index_files(ref_dir.path()));
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        let (x, y) = (std::fs::read(x).unwrap(), std::fs::read(y).unwrap());
        assert_eq!(x[16..], y[16..], "same bytes after the timestamps");
        assert_eq!(x[..8], y[..8], "same beginTimestamp");
    }
    // Re-dispatch rebuilds the rest once.
    for i in 7..12 {
        put(&svc, i);
    }
    for i in 0..12u64 {
        assert_eq!(all(&svc, "T", &format!("u{i}")), vec![i * 100], "u{i}");
    }
    // Survives a reopen.
    svc.flush().unwrap();
    drop(svc);
    let svc = IndexService::load(dir.path(), &c).unwrap();
    assert_eq!(all(&svc, "T", "k").len(), 12);
    // Truncating everything leaves no file.
    svc.truncate_after(0).unwrap();
    assert_eq!(svc.file_count(), 0);
    assert!(all(&svc, "T", "k").is_empty());
}

#[test]
fn flush_interrupted_before_the_header_loses_no_older_entry() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(4, 100);
    let put = |svc: &IndexService, i: u64| {
        svc.build_index(
            "T",
            &props(None, Some(&format!("k{}", i % 6))),
            0,
            i * 10,
            T0,
        )
        .unwrap();
    };
    let svc = IndexService::load(dir.path(), &c).unwrap();
    for i in 0..12 {
        put(&svc, i);
    }
    svc.flush().unwrap();
    let file = index_files(dir.path())[0].clone();
    let old_header = std::fs::read(&file).unwrap()[..40].to_vec();
    for i in 12..20 {
        put(&svc, i);
    }
    svc.flush().unwrap();
    drop(svc);
    // As if the process died after the entries and slots were written, before the header.
    let mut b = std::fs::read(&file).unwrap();
    b[..40].copy_from_slice(&old_header);
    std::fs::write(&file, &b).unwrap();
    let svc = IndexService::load(dir.path(), &c).unwrap();
    assert_eq!(svc.last_update().1, 110);
    for k in 0..6u64 {
        let want: Vec<u64> = (0..12)
            .rev()
            .filter(|i| i % 6 == k)
            .map(|i| i * 10)
            .collect();
        assert_eq!(all(&svc, "T", &format!("k{k}")), want, "k{k}");
    }
    // Re-dispatch from the index's end rebuilds the lost entries once.
    for i in 12..20 {
        put(&svc, i);
    }
    svc.flush().unwrap();
    let rebuilt = std::fs::read(&file).unwrap();
    assert_eq!(rebuilt, b_after_clean_build(&c, 20, put));
}

fn b_after_clean_build(c: &StoreConfig, n: u64, put: impl Fn(&IndexService, u64)) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let svc = IndexService::load(dir.path(), c).unwrap();
    for i in 0..n {
        put(&svc, i);
    }
    svc.flush().unwrap();
    std::fs::read(&index_files(dir.path())[0]).unwrap()
}

#[test]
fn truncate_inside_the_active_file_without_flush() {
    let dir = tempfile::tempdir().unwrap();
    let svc = IndexService::load(dir.path(), &cfg(2, 100)).unwrap();
    for i in 0..20u64 {
        svc.build_index(
            "T",
            &props(None, Some(&format!("k{} all", i % 3))),
            0,
            i * 10,
            T0,
        )
        .unwrap();
    }
    svc.truncate_after(105).unwrap();
    assert_eq!(
        all(&svc, "T", "all"),
        (0..=10).rev().map(|i| i * 10).collect::<Vec<_>>()
    );
    assert_eq!(all(&svc, "T", "k1"), vec![100, 70, 40, 10]);
    svc.build_index("T", &props(None, Some("k1")), 0, 110, T0)
        .unwrap();
    assert_eq!(all(&svc, "T", "k1"), vec![110, 100, 70, 40, 10]);
}

#[test]
fn delete_before_removes_old_files_but_never_the_last() {
    let dir = tempfile::tempdir().unwrap();
    let svc = IndexService::load(dir.path(), &cfg(4, 3)).unwrap();
    for i in 0..10u64 {
        svc.build_index("T", &props(None, Some("k")), 0, i * 100, T0)
            .unwrap();
    }
    assert_eq!(svc.file_count(), 5);
    assert_eq!(svc.delete_before(0).unwrap(), 0);
    // Files end at 100, 300, 500, 700, 900.
    assert_eq!(svc.delete_before(301).unwrap(), 2);
    assert_eq!(svc.file_count(), 3);
    assert_eq!(index_files(dir.path()).len(), 3);
    assert_eq!(all(&svc, "T", "k"), vec![900, 800, 700, 600, 500, 400]);
    assert_eq!(svc.delete_before(u64::MAX).unwrap(), 2);
    assert_eq!(svc.file_count(), 1);
}

#[test]
fn load_rejects_bad_sizes_and_headers_and_skips_strays() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(4, 5);
    {
        let svc = IndexService::load(dir.path(), &c).unwrap();
        svc.build_index("T", &props(None, Some("k")), 0, 100, T0)
            .unwrap();
        svc.flush().unwrap();
    }
    std::fs::write(dir.path().join("README"), b"hello").unwrap();
    std::fs::create_dir(dir.path().join("20240101000000000x")).unwrap();
    std::fs::write(dir.path().join("20240101000000000.tmp"), b"half").unwrap();
    let svc = IndexService::load(dir.path(), &c).unwrap();
    assert_eq!(all(&svc, "T", "k"), vec![100]);
    assert!(!dir.path().join("20240101000000000.tmp").exists());
    assert!(dir.path().join("README").exists());
    drop(svc);

    // Wrong size for the config.
    match IndexService::load(dir.path(), &cfg(8, 5)) {
        Err(Error::Corruption { path, offset, .. }) => {
            assert_eq!(path, index_files(dir.path())[0]);
            assert_eq!(offset, 0);
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    let file = index_files(dir.path())[0].clone();
    let good = std::fs::read(&file).unwrap();
    let bad_field = |at: usize, v: &[u8], want_offset: u64| {
        let mut b = good.clone();
        b[at..at + v.len()].copy_from_slice(v);
        std::fs::write(&file, &b).unwrap();
        match IndexService::load(dir.path(), &c) {
            Err(Error::Corruption { path, offset, .. }) => {
                assert_eq!(path, file);
                assert_eq!(offset, want_offset);
            }
            other => panic!("expected corruption at {want_offset}, got {other:?}"),
        }
    };
    bad_field(36, &6i32.to_be_bytes(), 36);
    bad_field(36, &(-1i32).to_be_bytes(), 36);
    bad_field(32, &5i32.to_be_bytes(), 32);
    bad_field(16, &(-5i64).to_be_bytes(), 16);
    bad_field(24, &50i64.to_be_bytes(), 24);
    std::fs::write(&file, &good[..good.len() - 1]).unwrap();
    assert!(matches!(
        IndexService::load(dir.path(), &c),
        Err(Error::Corruption { offset: 0, .. })
    ));
    assert!(matches!(
        IndexService::load(dir.path(), &cfg(0, 5)),
        Err(Error::Config { .. })
    ));
    assert!(matches!(
        IndexService::load(dir.path(), &cfg(4, 1)),
        Err(Error::Config { .. })
    ));
}

#[test]
fn header_round_trip() {
    let h = Header {
        begin_ts: 1,
        end_ts: -2,
        begin_phy: 3,
        end_phy: 4,
        hash_slot_count: 5,
        index_count: 6,
    };
    assert_eq!(Header::decode(&h.encode()), h);
}

#[test]
fn queries_run_beside_puts_rolls_and_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let svc = std::sync::Arc::new(IndexService::load(dir.path(), &cfg(64, 300)).unwrap());
    let n = 3000u64;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let svc = std::sync::Arc::clone(&svc);
            let done = std::sync::Arc::clone(&done);
            std::thread::spawn(move || {
                let mut rounds = 0u64;
                while !done.load(std::sync::atomic::Ordering::Acquire) {
                    let i = (rounds * 7 + r) % n;
                    for off in svc.query("T", &format!("u{i}"), 64, 0, i64::MAX) {
                        // Offsets come only from records with an equal key hash.
                        assert_eq!(
                            key_hash("T", &format!("u{}", off / 10)),
                            key_hash("T", &format!("u{i}"))
                        );
                    }
                    let hot = svc.query("T", "hot", 64, 0, i64::MAX);
                    assert!(hot.windows(2).all(|w| w[0] > w[1]), "newest first: {hot:?}");
                    rounds += 1;
                }
                rounds
            })
        })
        .collect();
    for i in 0..n {
        svc.build_index(
            "T",
            &props(Some(&format!("u{i}")), Some("hot")),
            0,
            i * 10,
            T0 + i as i64,
        )
        .unwrap();
        if i % 500 == 0 {
            svc.flush().unwrap();
        }
    }
    done.store(true, std::sync::atomic::Ordering::Release);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    assert!(svc.file_count() >= 20);
    for i in (0..n).step_by(97) {
        assert_eq!(all(&svc, "T", &format!("u{i}")), vec![i * 10]);
    }
}

/// A flushed index over `n` records with small files, for corruption tests.
fn build_fixture(dir: &Path, c: &StoreConfig, n: u64) -> Vec<String> {
    let svc = IndexService::load(dir, c).unwrap();
    let mut keys_used = Vec::new();
    for i in 0..n {
        let k = format!("k{}", i % 7);
        svc.build_index(
            "T",
            &props(Some(&format!("u{i}")), Some(&format!("{k} all"))),
            0,
            i * 64,
            T0 + i as i64 * 700,
        )
        .unwrap();
        keys_used.push(k);
        keys_used.push(format!("u{i}"));
    }
    svc.flush().unwrap();
    keys_used.push("all".into());
    keys_used
}

/// Load, query every key, add more entries, truncate and flush: any outcome but a panic.
fn exercise(dir: &Path, c: &StoreConfig, keys_used: &[String]) {
    let Ok(svc) = IndexService::load(dir, c) else {
        return;
    };
    for k in keys_used {
        let got = svc.query("T", k, 64, 0, i64::MAX);
        assert!(got.len() <= MAX_QUERY_RESULTS);
        let _ = svc.query("T", k, 64, T0 + 5_000, T0 + 9_000);
    }
    let (_, end) = svc.last_update();
    for i in 0..8u64 {
        let _ = svc.build_index(
            "T",
            &props(None, Some("k1 new")),
            0,
            end + 1 + i,
            T0 + 99_000,
        );
    }
    let _ = svc.query("T", "new", 64, 0, i64::MAX);
    let _ = svc.flush();
    let _ = svc.truncate_after(end / 2);
    let _ = svc.query("T", "k1", 64, i64::MIN, i64::MAX);
    let _ = svc.delete_before(end);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_byte_flips_never_panic(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..24),
        which in any::<prop::sample::Index>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(5, 12);
        let keys_used = build_fixture(dir.path(), &c, 20);
        let files = index_files(dir.path());
        let file = which.get(&files).clone();
        let mut b = std::fs::read(&file).unwrap();
        for (at, x) in &flips {
            let i = at.index(b.len());
            b[i] ^= x;
        }
        std::fs::write(&file, &b).unwrap();
        exercise(dir.path(), &c, &keys_used);
    }

    #[test]
    fn arbitrary_file_bytes_never_panic(
        header in proptest::collection::vec(any::<u8>(), 40),
        body in proptest::collection::vec(
            prop_oneof![Just(0u8), Just(1u8), Just(0xff), any::<u8>()],
            (5 * 4 + 12 * 20) as usize,
        ),
        small_header in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(5, 12);
        let mut b = header;
        if small_header {
            // Keep indexCount and hashSlotCount plausible so that load gets past the
            // header and the reader walks the random slots and entries.
            b[32..36].copy_from_slice(&0i32.to_be_bytes());
            let count = i32::from(b[39]) % 12 + 1;
            b[36..40].copy_from_slice(&count.to_be_bytes());
            b[16..24].copy_from_slice(&0i64.to_be_bytes());
        }
        b.extend_from_slice(&body);
        assert_eq!(b.len() as u64, file_size_bytes(5, 12));
        std::fs::write(dir.path().join("20240101000000000"), &b).unwrap();
        let keys_used: Vec<String> = (0..40).map(|i| format!("k{i}")).collect();
        exercise(dir.path(), &c, &keys_used);
    }

    #[test]
    fn small_valued_slots_and_links_never_panic_or_loop(
        count in 1i32..=12,
        begin_ts in prop_oneof![Just(0i64), Just(T0), any::<i64>()],
        slots in proptest::collection::vec(-2i32..15, 5),
        entries in proptest::collection::vec(
            (any::<bool>(), any::<i64>(), -2i32..100, -2i32..15),
            12,
        ),
    ) {
        // Slots and links that point anywhere near the valid range: self links,
        // forward links, cycles, out-of-range and negative numbers.
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(5, 12);
        let hot = key_hash("T", "k1");
        let h = Header {
            begin_ts,
            end_ts: begin_ts,
            begin_phy: 0,
            end_phy: 0,
            hash_slot_count: 0,
            index_count: count,
        };
        let mut b = h.encode().to_vec();
        for s in &slots {
            b.extend_from_slice(&s.to_be_bytes());
        }
        for (is_hot, phy, diff, prev) in &entries {
            let kh = if *is_hot { hot } else { hot ^ 1 };
            b.extend_from_slice(&kh.to_be_bytes());
            b.extend_from_slice(&phy.to_be_bytes());
            b.extend_from_slice(&diff.to_be_bytes());
            b.extend_from_slice(&prev.to_be_bytes());
        }
        assert_eq!(b.len() as u64, file_size_bytes(5, 12));
        std::fs::write(dir.path().join("20240101000000000"), &b).unwrap();
        let keys_used: Vec<String> = (0..10).map(|i| format!("k{i}")).collect();
        exercise(dir.path(), &c, &keys_used);
    }
}
