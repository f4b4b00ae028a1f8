//! The controller's on-disk Raft store: openraft's own storage test suite,
//! reopening, and the damage it refuses or repairs.

use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};

use ferromq_controller::raft::{
    AppliedBatch, EventBatch, LogStore, StateMachineStore, StoreError, TypeConfig,
};
use ferromq_controller::Event;
use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{
    CommittedLeaderId, Entry, EntryPayload, LogId, Membership, RaftLogReader, RaftSnapshotBuilder,
    StorageError, Vote,
};
use tempfile::TempDir;

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError<u64>> {
        let dir = tempfile::tempdir().unwrap();
        let log = LogStore::open(dir.path()).unwrap();
        let sm = StateMachineStore::open(dir.path()).unwrap();
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite_passes() {
    Suite::test_all(Builder).unwrap();
}

fn log_id(term: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, 0), index)
}

fn event(id: u64) -> Event {
    Event::ApplyBrokerId {
        cluster_name: "c".into(),
        broker_name: "b".into(),
        broker_address: format!("127.0.0.1:{}", 10000 + id),
        new_broker_id: id,
        register_check_code: format!("127.0.0.1:{};1", 10000 + id),
    }
}

fn entry(term: u64, index: u64) -> Entry<TypeConfig> {
    let payload = if index == 0 {
        EntryPayload::Membership(Membership::new(vec![[0u64].into()], None))
    } else {
        EntryPayload::Normal(EventBatch {
            events: vec![event(index)],
        })
    };
    Entry {
        log_id: log_id(term, index),
        payload,
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn log_vote_and_markers_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        {
            let mut log = LogStore::open(dir.path()).unwrap();
            log.blocking_append((0..10).map(|i| entry(1, i)))
                .await
                .unwrap();
            log.truncate(log_id(1, 8)).await.unwrap();
            log.blocking_append([entry(2, 8)]).await.unwrap();
            log.save_vote(&Vote::new_committed(2, 1)).await.unwrap();
            log.save_committed(Some(log_id(2, 8))).await.unwrap();
            log.purge(log_id(1, 3)).await.unwrap();
        }
        let mut log = LogStore::open(dir.path()).unwrap();
        let state = log.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(log_id(1, 3)));
        assert_eq!(state.last_log_id, Some(log_id(2, 8)));
        assert_eq!(
            log.read_vote().await.unwrap(),
            Some(Vote::new_committed(2, 1))
        );
        assert_eq!(log.read_committed().await.unwrap(), Some(log_id(2, 8)));
        let entries = log.try_get_log_entries(0..100).await.unwrap();
        let ids: Vec<_> = entries.iter().map(|e| e.log_id).collect();
        let mut expected: Vec<_> = (4..8).map(|i| log_id(1, i)).collect();
        expected.push(log_id(2, 8));
        assert_eq!(ids, expected);
        // Appending goes on after the reopen, and a purge past the end
        // (after a snapshot install) empties the log.
        log.blocking_append([entry(2, 9)]).await.unwrap();
        log.purge(log_id(3, 20)).await.unwrap();
        log.blocking_append([entry(3, 21)]).await.unwrap();
        drop(log);
        let mut log = LogStore::open(dir.path()).unwrap();
        let state = log.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(log_id(3, 20)));
        assert_eq!(state.last_log_id, Some(log_id(3, 21)));
    });
}

fn write_log(dir: &TempDir, entries: u64) -> std::path::PathBuf {
    rt().block_on(async {
        let mut log = LogStore::open(dir.path()).unwrap();
        log.blocking_append((0..entries).map(|i| entry(1, i)))
            .await
            .unwrap();
    });
    dir.path().join("raft-log")
}

#[test]
fn a_flipped_byte_in_the_log_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(&dir, 5);
    let len = fs::metadata(&path).unwrap().len();
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let at = len / 2;
    f.seek(SeekFrom::Start(at)).unwrap();
    let mut b = [0u8; 1];
    f.read_exact(&mut b).unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(&[b[0] ^ 0x20]).unwrap();
    drop(f);
    let err = LogStore::open(dir.path())
        .err()
        .expect("corrupt log refused");
    let msg = err.to_string();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{msg}");
    assert!(msg.contains("raft-log") && msg.contains("corrupt"), "{msg}");
    // Nothing was reset: still refused.
    assert!(LogStore::open(dir.path()).is_err());
    assert_eq!(fs::metadata(&path).unwrap().len(), len);
}

#[test]
fn a_wrong_magic_or_garbage_meta_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(&dir, 3);
    let mut bytes = fs::read(&path).unwrap();
    bytes[0] = b'X';
    fs::write(&path, &bytes).unwrap();
    assert!(matches!(
        LogStore::open(dir.path()),
        Err(StoreError::Corrupt { offset: 0, .. })
    ));
    let dir = tempfile::tempdir().unwrap();
    write_log(&dir, 3);
    fs::write(dir.path().join("raft-meta"), b"{\"vote\":null}").unwrap();
    let err = LogStore::open(dir.path()).err().unwrap();
    assert!(err.to_string().contains("raft-meta"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    write_log(&dir, 3);
    fs::write(dir.path().join("snapshot"), b"garbage").unwrap();
    let err = StateMachineStore::open(dir.path()).err().unwrap();
    assert!(err.to_string().contains("snapshot"), "{err}");
}

#[test]
fn a_missing_log_beside_its_meta_is_an_error_an_empty_fresh_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let mut log = LogStore::open(dir.path()).unwrap();
        log.save_vote(&Vote::new(1, 0)).await.unwrap();
    });
    fs::remove_file(dir.path().join("raft-log")).unwrap();
    let err = LogStore::open(dir.path()).err().unwrap();
    assert!(err.to_string().contains("missing"), "{err}");
    // A crash while creating a fresh store leaves an empty log file.
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("raft-log"), b"").unwrap();
    LogStore::open(dir.path()).unwrap();
    assert_eq!(fs::read(dir.path().join("raft-log")).unwrap(), b"FMQRLOG1");
}

#[test]
fn a_torn_last_record_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(&dir, 5);
    let len = fs::metadata(&path).unwrap().len();
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(len - 3).unwrap();
    drop(f);
    rt().block_on(async {
        let mut log = LogStore::open(dir.path()).unwrap();
        let state = log.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id, Some(log_id(1, 3)));
        log.blocking_append([entry(1, 4)]).await.unwrap();
        drop(log);
        let mut log = LogStore::open(dir.path()).unwrap();
        assert_eq!(
            log.get_log_state().await.unwrap().last_log_id,
            Some(log_id(1, 4))
        );
    });
}

#[test]
fn snapshots_persist_the_state_and_are_validated() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let mut sm = StateMachineStore::open(dir.path()).unwrap();
        let out = sm.apply((0..4).map(|i| entry(1, i))).await.unwrap();
        assert_eq!(
            out[1],
            AppliedBatch {
                changed: vec![true]
            }
        );
        let mut b = sm.get_snapshot_builder().await;
        let snap = b.build_snapshot().await.unwrap();
        assert_eq!(snap.meta.last_log_id, Some(log_id(1, 3)));
        let state = sm.state();
        assert_eq!(state.group("b").unwrap().replicas().len(), 3);
        drop(sm);
        let mut sm = StateMachineStore::open(dir.path()).unwrap();
        assert_eq!(sm.state(), state);
        let (applied, membership) = sm.applied_state().await.unwrap();
        assert_eq!(applied, Some(log_id(1, 3)));
        assert_eq!(membership.log_id(), &Some(log_id(1, 0)));
        // A received snapshot whose state breaks the invariants is refused
        // and changes nothing.
        let mut meta = snap.meta.clone();
        meta.last_log_id = Some(log_id(1, 9));
        let bad = br#"{"groups":{"b":{"clusterName":"c","brokerName":"x"}}}"#.to_vec();
        assert!(sm
            .install_snapshot(&meta, Box::new(std::io::Cursor::new(bad)))
            .await
            .is_err());
        assert_eq!(sm.state(), state);
    });
}
