//! The controller's state machine for openraft: the [`State`], changed only
//! by applying the log's [`Event`](crate::Event)s, and its snapshots (the
//! `snapshot` file; see [the module docs](super)).

use std::io::{self, Cursor};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use openraft::storage::RaftStateMachine;
use openraft::{
    BasicNode, Entry, EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, RaftLogId,
    RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError, StoredMembership,
};

use super::codec::{self, StoreError};
use super::{AppliedBatch, LogId, TypeConfig};
use crate::event::apply;
use crate::state::State;

const SNAPSHOT_MAGIC: &[u8; 8] = b"FMQRSNP1";
const SNAPSHOT_FILE: &str = "snapshot";

#[derive(Clone)]
struct StoredSnapshot {
    meta: SnapshotMeta<u64, BasicNode>,
    data: Vec<u8>,
}

struct SmData {
    state: State,
    last_applied: Option<LogId>,
    last_membership: StoredMembership<u64, BasicNode>,
    snapshot: Option<StoredSnapshot>,
}

/// What the state machine shares with the [`super::ControllerNode`]: the
/// applied state, read without going through openraft.
pub(crate) struct SmShared {
    snapshot_path: PathBuf,
    data: RwLock<SmData>,
    /// Serializes writes of the snapshot file.
    snapshot_file: Mutex<()>,
    snapshot_seq: AtomicU64,
}

impl SmShared {
    fn read(&self) -> RwLockReadGuard<'_, SmData> {
        self.data.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, SmData> {
        self.data.write().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of the applied state.
    pub(crate) fn state(&self) -> State {
        self.read().state.clone()
    }

    /// The last applied log id.
    pub(crate) fn last_applied(&self) -> Option<LogId> {
        self.read().last_applied
    }

    /// Persists `snapshot` unless the file already holds a newer one.
    fn persist(&self, snapshot: &StoredSnapshot) -> Result<(), StoreError> {
        let _file = self.snapshot_file.lock().unwrap_or_else(|p| p.into_inner());
        let on_disk = self.read().snapshot.as_ref().map(|s| s.meta.last_log_id);
        if on_disk.is_some_and(|last| last > snapshot.meta.last_log_id) {
            return Ok(());
        }
        let meta = serde_json::to_vec(&snapshot.meta).expect("snapshot meta serializes to JSON");
        codec::write_atomically(
            &self.snapshot_path,
            SNAPSHOT_MAGIC,
            &[&meta, &snapshot.data],
        )?;
        let mut data = self.write();
        if data
            .snapshot
            .as_ref()
            .is_none_or(|s| s.meta.last_log_id <= snapshot.meta.last_log_id)
        {
            data.snapshot = Some(snapshot.clone());
        }
        Ok(())
    }
}

/// The controller's state machine store: openraft's [`RaftStateMachine`].
///
/// Applying does not write to disk; snapshots do (the snapshot file is the
/// state machine's persistent form), and on restart openraft re-applies the
/// committed log after the snapshot.
pub struct StateMachineStore {
    shared: Arc<SmShared>,
}

/// Builds snapshots of a [`StateMachineStore`].
pub struct SnapshotBuilder {
    shared: Arc<SmShared>,
}

impl StateMachineStore {
    /// Opens the state machine of `dir`: the state of its snapshot file, or
    /// an empty state. A damaged snapshot is an error.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        let path = dir.join(SNAPSHOT_FILE);
        let mut data = SmData {
            state: State::new(),
            last_applied: None,
            last_membership: StoredMembership::default(),
            snapshot: None,
        };
        if let Some(records) = codec::read_record_file(&path, SNAPSHOT_MAGIC)? {
            let [meta, state] = records.as_slice() else {
                return Err(StoreError::corrupt(
                    &path,
                    0,
                    format!("expected two records, found {}", records.len()),
                ));
            };
            let meta: SnapshotMeta<u64, BasicNode> = serde_json::from_slice(meta)
                .map_err(|e| StoreError::corrupt(&path, 8, format!("undecodable meta: {e}")))?;
            data.state = State::from_json(state).map_err(|e| {
                StoreError::corrupt(&path, 8, format!("undecodable or invalid state: {e}"))
            })?;
            data.last_applied = meta.last_log_id;
            data.last_membership = meta.last_membership.clone();
            data.snapshot = Some(StoredSnapshot {
                meta,
                data: state.clone(),
            });
        }
        Ok(StateMachineStore {
            shared: Arc::new(SmShared {
                snapshot_path: path,
                data: RwLock::new(data),
                snapshot_file: Mutex::new(()),
                snapshot_seq: AtomicU64::new(0),
            }),
        })
    }

    /// A copy of the applied state.
    pub fn state(&self) -> State {
        self.shared.state()
    }

    pub(crate) fn shared(&self) -> Arc<SmShared> {
        self.shared.clone()
    }
}

fn snapshot_err(e: impl Into<io::Error>, verb: ErrorVerb) -> StorageError<u64> {
    StorageError::from_io_error(ErrorSubject::Snapshot(None), verb, e.into())
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<u64>> {
        let snapshot = {
            let data = self.shared.read();
            let seq = self.shared.snapshot_seq.fetch_add(1, Ordering::Relaxed);
            let snapshot_id = match data.last_applied {
                Some(id) => format!("{}-{}-{seq}", id.leader_id, id.index),
                None => format!("--{seq}"),
            };
            StoredSnapshot {
                meta: SnapshotMeta {
                    last_log_id: data.last_applied,
                    last_membership: data.last_membership.clone(),
                    snapshot_id,
                },
                data: data.state.to_json(),
            }
        };
        self.shared
            .persist(&snapshot)
            .map_err(|e| snapshot_err(e.into_io(), ErrorVerb::Write))?;
        Ok(Snapshot {
            meta: snapshot.meta,
            snapshot: Box::new(Cursor::new(snapshot.data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId>, StoredMembership<u64, BasicNode>), StorageError<u64>> {
        let data = self.shared.read();
        Ok((data.last_applied, data.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<AppliedBatch>, StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut data = self.shared.write();
        let mut out = Vec::new();
        for entry in entries {
            let log_id = *entry.get_log_id();
            data.last_applied = Some(log_id);
            match entry.payload {
                EntryPayload::Blank => out.push(AppliedBatch::default()),
                EntryPayload::Normal(batch) => {
                    let changed = batch
                        .events
                        .iter()
                        .map(|event| apply(&mut data.state, event))
                        .collect();
                    out.push(AppliedBatch { changed });
                }
                EntryPayload::Membership(membership) => {
                    data.last_membership = StoredMembership::new(Some(log_id), membership);
                    out.push(AppliedBatch::default());
                }
            }
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            shared: self.shared.clone(),
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        let bytes = snapshot.into_inner();
        let state = State::from_json(&bytes).map_err(|e| {
            snapshot_err(
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("received snapshot {}: {e}", meta.snapshot_id),
                ),
                ErrorVerb::Read,
            )
        })?;
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: bytes,
        };
        self.shared
            .persist(&stored)
            .map_err(|e| snapshot_err(e.into_io(), ErrorVerb::Write))?;
        let mut data = self.shared.write();
        data.state = state;
        data.last_applied = meta.last_log_id;
        data.last_membership = meta.last_membership.clone();
        data.snapshot = Some(stored);
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<u64>> {
        Ok(self.shared.read().snapshot.clone().map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data)),
        }))
    }
}
