//! `ferromq-controller`: the controller of RocketMQ 5's automatic failover
//! (controller mode, RIP-44): its deterministic state machine, replicated
//! between controllers with Raft ([`raft`], on openraft) and stored on disk.
//!
//! For each broker group (`brokerName`) the controller keeps the registered
//! replicas, the master, the master epoch and the SyncStateSet (the replicas
//! in sync with the master) with its epoch, and elects a new master from the
//! SyncStateSet when the master stops heartbeating.
//!
//! How it maps to RocketMQ 5.3's `controller` module:
//!
//! | here | RocketMQ |
//! |------|----------|
//! | [`State`], [`BrokerGroup`] ([`state`]) | `ReplicasInfoManager`'s `replicaInfoTable` + `syncStateSetInfoTable` (`BrokerReplicaInfo`, `SyncStateInfo`) |
//! | [`Event`], [`apply`] ([`event`]) | `impl/event/*Event`, `ReplicasInfoManager.applyEvent` |
//! | [`ReplicasInfoManager`], [`ControllerResult`] ([`manager`]) | `ReplicasInfoManager`'s request methods, `ControllerResult` |
//! | [`elect()`], [`BrokerLiveness`] ([`mod@elect`]) | `DefaultElectPolicy`, `BrokerValidPredicate`, `BrokerLiveInfoGetter` |
//! | [`HeartbeatTable`] ([`heartbeat`]) | `DefaultBrokerHeartbeatManager` |
//! | [`protocol`] | `RequestCode`/`ResponseCode` values, `header/controller/*`, `body/*` |
//! | [`raft`] ([`raft::ControllerNode`], [`raft::LogStore`], [`raft::StateMachineStore`]) | `DLedgerController` over DLedger (here openraft 0.9, log under `controllerStorePath`) |
//! | [`peers`] ([`ControllerPeers`]) | `controllerDLegerPeers`, `controllerDLegerSelfId` |
//!
//! The flow of a request: [`ReplicasInfoManager`] validates it against the
//! state (with the brokers' liveness where RocketMQ uses it) and returns a
//! [`ControllerResult`]: response code, remark, response header and body,
//! and the events to append to the replicated log. Applying those events
//! ([`apply`]) is the only way the state changes; it is deterministic (no
//! clock, no I/O), so every controller replaying the same log reaches the
//! same state, and the state serializes to JSON for snapshots.
//!
//! The events are replicated by Raft ([`raft`]): the leader appends the
//! events a request produced as one log entry
//! ([`raft::ControllerNode::client_write`]); every controller applies the
//! committed entries to its [`State`], snapshots are the state's JSON.
//!
//! The brokers' requests are served over RocketMQ remoting by
//! `ferromq-server`'s `controller` module and its `ferromq-controller`
//! binary, on the controller's port shared with Raft
//! ([`raft::ControllerNode::start_with_handed_connections`]). Next:
//! `enableControllerInNamesrv`, notifying brokers of role changes, then the
//! brokers' side.
//!
//! ```
//! use ferromq_controller::*;
//!
//! let mut m = ReplicasInfoManager::new(ControllerConfig::default());
//! let alive = |_: &str, _: &str, _: u64| true;
//! for (id, addr) in [(1, "10.0.0.1:10911"), (2, "10.0.0.2:10911")] {
//!     let r = m.apply_broker_id(&ApplyBrokerIdRequest {
//!         cluster_name: "DefaultCluster".into(),
//!         broker_name: "broker-a".into(),
//!         applied_broker_id: id,
//!         register_check_code: format!("{addr};1"),
//!     });
//!     m.apply_all(&r.events);
//! }
//! let r = m.elect_master(&ElectMasterRequest::of_broker_trigger("DefaultCluster", "broker-a", 1), &alive);
//! assert!(r.is_success());
//! m.apply_all(&r.events);
//! let group = m.state().group("broker-a").unwrap();
//! assert_eq!((group.master_broker_id(), group.master_epoch()), (Some(1), 1));
//! ```

pub mod elect;
pub mod event;
pub mod heartbeat;
pub mod manager;
pub mod peers;
pub mod protocol;
pub mod raft;
pub mod state;

pub use elect::{elect, BrokerLiveness, ElectionInfo, ElectionInput};
pub use event::{apply, apply_all, Event};
pub use heartbeat::{BrokerIdentity, BrokerLiveInfo, Heartbeat, HeartbeatTable, LivenessAt};
pub use manager::{ControllerConfig, ControllerResult, ReplicasInfoManager};
pub use peers::{ControllerPeers, PeersError};
pub use protocol::*;
pub use state::{BrokerGroup, Replica, State, FIRST_BROKER_CONTROLLER_ID};
