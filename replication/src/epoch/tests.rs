//! The epoch file, after RocketMQ 5's `EpochFileCacheTest`.

use super::*;

/// `<Epoch1, 100>, <Epoch2, 300>, <Epoch3, 500>` in a fresh file.
fn cache1(dir: &Path) -> EpochFile {
    let mut f = EpochFile::open(dir.join("EpochCheckpoint")).unwrap();
    f.append(1, 100).unwrap();
    f.append(2, 300).unwrap();
    f.append(3, 500).unwrap();
    let e = f.entry(2).unwrap();
    assert_eq!((e.epoch, e.start_offset, e.end_offset), (2, 300, 500));
    f
}

fn other(dir: &Path, entries: &[(u32, u64)]) -> EpochFile {
    let mut f = EpochFile::open(dir.join("EpochCheckpoint2")).unwrap();
    for &(e, s) in entries {
        f.append(e, s).unwrap();
    }
    f
}

#[test]
fn append_sets_ends_and_refuses_non_increasing() {
    let d = tempfile::tempdir().unwrap();
    let mut f = cache1(d.path());
    assert_eq!(f.last_epoch(), Some(3));
    assert_eq!(f.first_entry().unwrap().start_offset, 100);
    assert_eq!(f.last_entry().unwrap().end_offset, u64::MAX);
    assert!(matches!(
        f.append(3, 900),
        Err(EpochError::NotIncreasing { .. })
    ));
    assert!(matches!(
        f.append(2, 900),
        Err(EpochError::NotIncreasing { .. })
    ));
    assert!(matches!(
        f.append(4, 499),
        Err(EpochError::NotIncreasing { .. })
    ));
    assert_eq!(f.entries().len(), 3, "refused appends change nothing");
    // A master that wrote nothing in its epoch: the next starts where it did.
    f.append(4, 500).unwrap();
    assert_eq!(f.entry(3).unwrap().end_offset, 500);
    assert_eq!(f.next_entry(3).unwrap().epoch, 4);
    assert_eq!(f.next_entry(4), None);
    let empty = EpochFile::open(d.path().join("none")).unwrap();
    assert_eq!(empty.last_epoch(), None);
    assert_eq!(empty.find_last_consistent_point(f.entries()), None);
}

#[test]
fn reopen_reads_what_was_written() {
    let d = tempfile::tempdir().unwrap();
    let f = cache1(d.path());
    let again = EpochFile::open(f.path()).unwrap();
    assert_eq!(again.entries(), f.entries());
    let e = again.entry(2).unwrap();
    assert_eq!((e.epoch, e.start_offset, e.end_offset), (2, 300, 500));
    // RocketMQ's CheckpointFile layout.
    let text = std::fs::read_to_string(f.path()).unwrap();
    let lines = "1-100\n2-300\n3-500\n";
    let crc = crc32fast::hash(lines.as_bytes()) & 0x7FFF_FFFF;
    assert_eq!(text, format!("3\n{crc}\n{lines}"));
    assert!(!d.path().join("EpochCheckpoint.tmp").exists());
}

#[test]
fn entry_for_offset() {
    let d = tempfile::tempdir().unwrap();
    let mut f = cache1(d.path());
    let e = f.entry_for_offset(350).unwrap();
    assert_eq!((e.epoch, e.start_offset, e.end_offset), (2, 300, 500));
    assert_eq!(f.entry_for_offset(300).unwrap().epoch, 2);
    assert_eq!(f.entry_for_offset(500).unwrap().epoch, 3);
    assert_eq!(f.entry_for_offset(99), None);
    f.set_last_end_offset(700);
    assert_eq!(f.entry_for_offset(699).unwrap().epoch, 3);
    assert_eq!(f.entry_for_offset(700), None);
    f.set_last_end_offset(400); // below the last start: ignored
    assert_eq!(f.last_entry().unwrap().end_offset, 700);
}

#[test]
fn consistent_point_sample1_last_epoch_started_elsewhere() {
    let d = tempfile::tempdir().unwrap();
    let f = cache1(d.path());
    let o = other(d.path(), &[(1, 100), (2, 300), (3, 450)]);
    assert_eq!(f.find_last_consistent_point(o.entries()), Some(450));
    assert_eq!(o.find_last_consistent_point(f.entries()), Some(450));
}

#[test]
fn consistent_point_sample2_same_epochs_different_ends() {
    let d = tempfile::tempdir().unwrap();
    let mut f = cache1(d.path());
    let mut o = other(d.path(), &[(1, 100), (2, 300), (3, 500)]);
    f.set_last_end_offset(700);
    o.set_last_end_offset(600);
    assert_eq!(f.find_last_consistent_point(o.entries()), Some(600));
    assert_eq!(o.find_last_consistent_point(f.entries()), Some(600));
}

#[test]
fn consistent_point_sample3_no_common_history() {
    let d = tempfile::tempdir().unwrap();
    let f = cache1(d.path());
    let o = other(d.path(), &[(1, 200), (2, 500)]);
    assert_eq!(f.find_last_consistent_point(o.entries()), None);
}

#[test]
fn consistent_point_sample4_other_has_a_later_epoch() {
    let d = tempfile::tempdir().unwrap();
    let mut f = cache1(d.path());
    let o = other(d.path(), &[(1, 100), (2, 300), (3, 500), (4, 800)]);
    f.set_last_end_offset(700);
    assert_eq!(o.find_last_consistent_point(f.entries()), Some(700));
    assert_eq!(f.find_last_consistent_point(o.entries()), Some(700));
}

#[test]
fn consistent_point_divergence_at_various_points() {
    let d = tempfile::tempdir().unwrap();
    // The former master wrote epoch 3 up to 900; the new master (a slave of
    // epoch 3 that had 650 of it) started epoch 4 at 650.
    let mut old = cache1(d.path());
    old.set_last_end_offset(900);
    let mut new = other(d.path(), &[(1, 100), (2, 300), (3, 500), (4, 650)]);
    new.set_last_end_offset(1200);
    assert_eq!(old.find_last_consistent_point(new.entries()), Some(650));
    // A lagging slave with only part of epoch 2 agrees up to its own end.
    let d2 = tempfile::tempdir().unwrap();
    let mut lag = other(d2.path(), &[(1, 100), (2, 300)]);
    lag.set_last_end_offset(420);
    assert_eq!(lag.find_last_consistent_point(new.entries()), Some(420));
    // Diverged inside the first epoch's successor: the old master started
    // epoch 2 at 300 and wrote on, the new one (epoch 2 never seen) took
    // epoch 3 at 250 after epoch 1.
    let d3 = tempfile::tempdir().unwrap();
    let mut n3 = other(d3.path(), &[(1, 100), (3, 250)]);
    n3.set_last_end_offset(800);
    assert_eq!(old.find_last_consistent_point(n3.entries()), Some(250));
    // Identical histories: the shorter end.
    let d4 = tempfile::tempdir().unwrap();
    let mut same = other(d4.path(), &[(1, 100), (2, 300), (3, 500)]);
    same.set_last_end_offset(900);
    assert_eq!(old.find_last_consistent_point(same.entries()), Some(900));
    // Open-ended on both sides (no end set): the answer is open too.
    let d5 = tempfile::tempdir().unwrap();
    let open = other(d5.path(), &[(1, 100)]);
    let open2 = other(d4.path().join("x").as_path(), &[(1, 100)]);
    assert_eq!(
        open.find_last_consistent_point(open2.entries()),
        Some(u64::MAX)
    );
}

#[test]
fn truncate_suffix() {
    let d = tempfile::tempdir().unwrap();
    let mut f = cache1(d.path());
    f.truncate_suffix(150).unwrap();
    assert!(f.entry(1).is_some());
    assert!(f.entry(2).is_none());
    assert_eq!(f.last_entry().unwrap().end_offset, 150);
    assert_eq!(EpochFile::open(f.path()).unwrap().entries().len(), 1);
    // At an entry's start: that entry goes.
    let mut g = cache1(tempfile::tempdir().unwrap().path());
    g.truncate_suffix(500).unwrap();
    assert_eq!(g.last_epoch(), Some(2));
    assert_eq!(g.last_entry().unwrap().end_offset, 500);
    // Below every start: nothing left, and the file says so.
    g.truncate_suffix(50).unwrap();
    assert!(g.entries().is_empty());
    assert!(EpochFile::open(g.path()).unwrap().entries().is_empty());
    // A new epoch may follow.
    g.append(7, 50).unwrap();
    assert_eq!(EpochFile::open(g.path()).unwrap().last_epoch(), Some(7));
}

#[test]
fn truncate_prefix() {
    let d = tempfile::tempdir().unwrap();
    let mut f = cache1(d.path());
    f.truncate_prefix(300).unwrap();
    assert_eq!(f.first_entry().unwrap().epoch, 2, "epoch 1 ended at 300");
    f.truncate_prefix(450).unwrap();
    assert_eq!(f.first_entry().unwrap().epoch, 2, "epoch 2 holds 450");
    f.truncate_prefix(10_000).unwrap();
    assert_eq!(f.entries().len(), 1, "the open-ended last epoch stays");
    assert_eq!(EpochFile::open(f.path()).unwrap().entries().len(), 1);
}

#[test]
fn replace_all_copies_another_brokers_entries() {
    let d = tempfile::tempdir().unwrap();
    let mut f = EpochFile::open(d.path().join("e")).unwrap();
    let src = cache1(d.path());
    f.replace_all(src.entries()).unwrap();
    assert_eq!(EpochFile::open(f.path()).unwrap().entries(), src.entries());
    let bad = [EpochEntry::new(2, 100), EpochEntry::new(1, 200)];
    assert!(f.replace_all(&bad).is_err());
    assert_eq!(f.entries(), src.entries());
}

#[test]
fn corrupt_file_is_an_error() {
    let d = tempfile::tempdir().unwrap();
    let f = cache1(d.path());
    let good = std::fs::read_to_string(f.path()).unwrap();
    let cases = [
        good.replace("2-300", "2-301"), // checksum no longer matches
        good.replacen('3', "4", 1),     // count says 4
        good.replace("3-500\n", ""),    // an entry lost
        good.replace("2-300", "2_300"), // not <epoch>-<offset>
        "garbage".to_string(),
        String::new(),
        good[..good.len() - 4].to_string(), // torn
    ];
    for bad in cases {
        std::fs::write(f.path(), &bad).unwrap();
        match EpochFile::open(f.path()) {
            Err(EpochError::Corrupt { reason, .. }) => assert!(!reason.is_empty()),
            other => panic!("{bad:?} opened as {other:?}"),
        }
    }
    // Out-of-order entries with a matching checksum are refused too.
    let lines = "2-300\n1-100\n";
    let crc = crc32fast::hash(lines.as_bytes()) & 0x7FFF_FFFF;
    std::fs::write(f.path(), format!("2\n{crc}\n{lines}")).unwrap();
    assert!(matches!(
        EpochFile::open(f.path()),
        Err(EpochError::Corrupt { .. })
    ));
}

#[test]
fn path_from_properties() {
    let root = Path::new("/s");
    let p = ferromq_engine::config::Properties::parse("brokerName=b\n");
    assert_eq!(
        EpochFile::path_from_properties(&p, root),
        root.join("epochFileCheckpoint")
    );
    let p = ferromq_engine::config::Properties::parse("storePathEpochFile=/x/epochs\n");
    assert_eq!(
        EpochFile::path_from_properties(&p, root),
        Path::new("/x/epochs")
    );
}
