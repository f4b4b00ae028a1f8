//! The controller replicated with Raft ([openraft] 0.9): the on-disk log
//! store and state machine ([`LogStore`], [`StateMachineStore`]), the Raft
//! RPCs over TCP ([`network`]) and the running controller
//! ([`ControllerNode`]).
//!
//! The replicated log holds [`EventBatch`]es: the events one controller
//! request produced ([`crate::ControllerResult::events`]), appended by the
//! leader in one entry so that they commit (and apply) together. Applying an
//! entry runs [`crate::apply`] on each event; the entry's response
//! ([`AppliedBatch`]) tells which events changed the state (a stale
//! `ElectMaster`/`AlterSyncStateSet` is skipped by its epoch check).
//!
//! # Storage (`controllerStorePath`)
//!
//! One directory per controller, three kinds of files:
//!
//! | file | content | written |
//! |------|---------|---------|
//! | `raft-log` | magic `FMQRLOG1`, then one record per log entry (the entry's JSON) | appended, fsynced before openraft is told the entries are durable; cut (`set_len` + fsync) on a conflict truncation; rewritten (temp file + rename) when a purge leaves dead records |
//! | `raft-meta` | magic `FMQRMET1`, one record: the vote, the committed log id, the last purged log id | replaced atomically (temp + fsync + rename + directory fsync) on each change |
//! | `snapshot` | magic `FMQRSNP1`, two records: the snapshot's meta (last log id, membership, id) and the [`crate::State`] JSON ([`crate::State::to_json`]) | replaced atomically when a snapshot is built or installed |
//!
//! A record is `[length: u32 BE][crc32: u32 BE][payload]`. One append-only
//! file rather than a file per entry or per chunk: the controller's log is
//! small (a few entries per broker event) and compacted by snapshots, so one
//! file with an in-memory index of offsets keeps appends to one write + one
//! fsync, truncation to one `set_len`, and recovery to one sequential scan;
//! a purge rewrites the live tail, which snapshots (every
//! [`RaftTiming::snapshot_logs_since_last`] entries) keep rare.
//!
//! At open, a missing directory (or one without `raft-meta` and with no or
//! an empty `raft-log`) is an empty store; anything else that does not
//! check out (a wrong magic, a bad checksum, an impossible length,
//! undecodable JSON, non-consecutive indexes, a `raft-meta` without its
//! `raft-log`, a snapshot whose state breaks the invariants) is a
//! [`StoreError::Corrupt`] naming the file and offset: the node does not
//! start, it never resets silently. The one
//! tolerated damage is a last `raft-log` record cut short by the end of the
//! file (an append torn by a crash, never acknowledged since its fsync did
//! not complete): it is cut off, with a warning.
//!
//! On restart the state machine starts from the snapshot, and openraft
//! re-applies the log from the snapshot up to the persisted committed log id.
//!
//! The store's file I/O (fsync included) runs synchronously inside
//! openraft's tasks: the controller writes a few small entries per broker
//! event, not a stream.
//!
//! # Cluster formation and reads
//!
//! The voters are the configured peers (`controllerDLegerPeers`), as with
//! DLedger: a controller whose store is pristine initializes Raft with that
//! list (each one does; openraft accepts the same initialization from
//! several nodes), and a controller whose store already holds a membership
//! refuses to start if the configured ids differ
//! ([`NodeError::MembershipMismatch`]). Addresses are taken from the
//! configuration, so a controller may move to another address.
//!
//! Writes go through the leader ([`ControllerNode::client_write`]).
//! [`ControllerNode::read_state`] is linearizable: openraft's
//! `ensure_linearizable` (the leader confirms its leadership with a quorum
//! and waits until it has applied up to the read index); followers refuse
//! it with [`NodeError::NotLeader`] naming the leader.
//! [`ControllerNode::local_state`] is the unchecked local copy.
//!
//! [openraft]: https://docs.rs/openraft/0.9

mod codec;
mod log_store;
pub mod network;
mod node;
mod state_machine;

use serde::{Deserialize, Serialize};

use crate::event::Event;

pub use codec::StoreError;
pub use log_store::{LogReader, LogStore};
pub use node::{ControllerNode, ControllerNodeConfig, NodeError, RaftTiming, Written};
pub use state_machine::StateMachineStore;

/// The events one controller request produced, replicated as one log entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventBatch {
    /// The events, applied in order.
    pub events: Vec<Event>,
}

/// What applying an [`EventBatch`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedBatch {
    /// For each event of the batch, whether it changed the state.
    pub changed: Vec<bool>,
}

openraft::declare_raft_types!(
    /// The controller's openraft type configuration: [`EventBatch`] entries,
    /// `u64` node ids (DLedger's `nK` is `K`), [`openraft::BasicNode`] with
    /// the controller's address, snapshots in memory as the State's JSON.
    pub TypeConfig:
        D = EventBatch,
        R = AppliedBatch,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = std::io::Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The openraft handle of a controller.
pub type ControllerRaft = openraft::Raft<TypeConfig>;

/// A log id of the controller's Raft log.
pub type LogId = openraft::LogId<u64>;
