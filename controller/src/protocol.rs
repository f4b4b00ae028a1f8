//! The controller's requests and responses as RocketMQ's remoting protocol
//! defines them: the request and response codes (`RequestCode`,
//! `ResponseCode`), the custom headers (`protocol/header/controller/*`) and
//! the JSON bodies (`protocol/body/*`).
//!
//! Headers are plain structs (the remoting layer maps them to `extFields`);
//! bodies serialize to the JSON RocketMQ's `RemotingSerializable.encode`
//! writes (camelCase fields, absent values omitted). A Java `Long` broker id of
//! `-1` or `null` ("no broker") is `None` here.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// RocketMQ's `RequestCode` values of the controller's requests.
pub mod request_code {
    /// A broker's heartbeat to the controller (`BROKER_HEARTBEAT`).
    pub const BROKER_HEARTBEAT: i32 = 904;
    /// `CONTROLLER_ALTER_SYNC_STATE_SET`: the master reports a new SyncStateSet.
    pub const CONTROLLER_ALTER_SYNC_STATE_SET: i32 = 1001;
    /// `CONTROLLER_ELECT_MASTER`: a broker, the controller or an admin asks for an election.
    pub const CONTROLLER_ELECT_MASTER: i32 = 1002;
    /// `CONTROLLER_REGISTER_BROKER`: a broker with an id registers.
    pub const CONTROLLER_REGISTER_BROKER: i32 = 1003;
    /// `CONTROLLER_GET_REPLICA_INFO`: the master and SyncStateSet of a group.
    pub const CONTROLLER_GET_REPLICA_INFO: i32 = 1004;
    /// `CONTROLLER_GET_METADATA_INFO`: the controller cluster's members.
    pub const CONTROLLER_GET_METADATA_INFO: i32 = 1005;
    /// `CONTROLLER_GET_SYNC_STATE_DATA`: the replicas of several groups (admin).
    pub const CONTROLLER_GET_SYNC_STATE_DATA: i32 = 1006;
    /// `GET_BROKER_EPOCH_CACHE`: a broker's epoch entries (a broker request).
    pub const GET_BROKER_EPOCH_CACHE: i32 = 1007;
    /// `NOTIFY_BROKER_ROLE_CHANGED`: the controller tells a broker of a new
    /// master (a broker request).
    pub const NOTIFY_BROKER_ROLE_CHANGED: i32 = 1008;
    /// `UPDATE_CONTROLLER_CONFIG`.
    pub const UPDATE_CONTROLLER_CONFIG: i32 = 1009;
    /// `GET_CONTROLLER_CONFIG`.
    pub const GET_CONTROLLER_CONFIG: i32 = 1010;
    /// `CLEAN_BROKER_DATA`: removes replicas or a group (admin).
    pub const CLEAN_BROKER_DATA: i32 = 1011;
    /// `CONTROLLER_GET_NEXT_BROKER_ID`: the id a new broker should apply for.
    pub const CONTROLLER_GET_NEXT_BROKER_ID: i32 = 1012;
    /// `CONTROLLER_APPLY_BROKER_ID`: a new broker applies for an id.
    pub const CONTROLLER_APPLY_BROKER_ID: i32 = 1013;
}

/// RocketMQ's `ResponseCode` values the controller answers with.
pub mod response_code {
    /// `SUCCESS`.
    pub const SUCCESS: i32 = 0;
    /// `SYSTEM_ERROR`.
    pub const SYSTEM_ERROR: i32 = 1;
    /// The request's master epoch is not the group's.
    pub const CONTROLLER_FENCED_MASTER_EPOCH: i32 = 2000;
    /// The request's SyncStateSet epoch is not the group's.
    pub const CONTROLLER_FENCED_SYNC_STATE_SET_EPOCH: i32 = 2001;
    /// The requester is not the group's master.
    pub const CONTROLLER_INVALID_MASTER: i32 = 2002;
    /// A new SyncStateSet names an unregistered replica.
    pub const CONTROLLER_INVALID_REPLICAS: i32 = 2003;
    /// The master is gone and no new one could be elected.
    pub const CONTROLLER_MASTER_NOT_AVAILABLE: i32 = 2004;
    /// A malformed request.
    pub const CONTROLLER_INVALID_REQUEST: i32 = 2005;
    /// A new SyncStateSet names a replica that is not alive.
    pub const CONTROLLER_BROKER_NOT_ALIVE: i32 = 2006;
    /// This controller is not the Raft leader.
    pub const CONTROLLER_NOT_LEADER: i32 = 2007;
    /// No such broker group.
    pub const CONTROLLER_BROKER_METADATA_NOT_EXIST: i32 = 2008;
    /// A clean request that cannot be carried out.
    pub const CONTROLLER_INVALID_CLEAN_BROKER_METADATA: i32 = 2009;
    /// The group or the broker id is not registered.
    pub const CONTROLLER_BROKER_NEED_TO_BE_REGISTERED: i32 = 2010;
    /// The current master is alive: no election.
    pub const CONTROLLER_MASTER_STILL_EXIST: i32 = 2011;
    /// No candidate (or not the designated one) could be elected.
    pub const CONTROLLER_ELECT_MASTER_FAILED: i32 = 2012;
    /// A SyncStateSet change refused (no group, unchanged set, set without the master).
    pub const CONTROLLER_ALTER_SYNC_STATE_SET_FAILED: i32 = 2013;
    /// The broker id applied for is taken or not allowed.
    pub const CONTROLLER_BROKER_ID_INVALID: i32 = 2014;
    /// `CONTROLLER_JRAFT_INTERNAL_ERROR`.
    pub const CONTROLLER_JRAFT_INTERNAL_ERROR: i32 = 2015;
    /// `CONTROLLER_BROKER_LIVE_INFO_NOT_EXISTS`.
    pub const CONTROLLER_BROKER_LIVE_INFO_NOT_EXISTS: i32 = 2016;
}

/// `GetNextBrokerIdRequestHeader`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetNextBrokerIdRequest {
    /// The broker's cluster.
    pub cluster_name: String,
    /// The broker's group.
    pub broker_name: String,
}

/// `GetNextBrokerIdResponseHeader`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GetNextBrokerIdResponse {
    /// The request's cluster.
    pub cluster_name: String,
    /// The request's group.
    pub broker_name: String,
    /// The id to apply for.
    pub next_broker_id: u64,
}

/// `ApplyBrokerIdRequestHeader`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApplyBrokerIdRequest {
    /// The broker's cluster.
    pub cluster_name: String,
    /// The broker's group.
    pub broker_name: String,
    /// The id applied for.
    pub applied_broker_id: u64,
    /// `address;timestamp`: identifies the broker across retries.
    pub register_check_code: String,
}

/// `ApplyBrokerIdResponseHeader`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplyBrokerIdResponse {
    /// The request's cluster.
    pub cluster_name: String,
    /// The request's group.
    pub broker_name: String,
}

/// `RegisterBrokerToControllerRequestHeader`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisterBrokerRequest {
    /// The broker's cluster.
    pub cluster_name: String,
    /// The broker's group.
    pub broker_name: String,
    /// The broker's id (applied for before).
    pub broker_id: u64,
    /// The broker's current address.
    pub broker_address: String,
}

/// `RegisterBrokerToControllerResponseHeader`: the master, when there is
/// one and it is alive.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegisterBrokerResponse {
    /// The request's cluster.
    pub cluster_name: String,
    /// The request's group.
    pub broker_name: String,
    /// The master's id.
    pub master_broker_id: Option<u64>,
    /// The master's address.
    pub master_address: Option<String>,
    /// The master epoch.
    pub master_epoch: Option<i32>,
    /// The SyncStateSet epoch.
    pub sync_state_set_epoch: Option<i32>,
}

/// `AlterSyncStateSetRequestHeader`; the new set is the request's
/// [`SyncStateSet`] body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlterSyncStateSetRequest {
    /// The group.
    pub broker_name: String,
    /// The requester, which must be the master.
    pub master_broker_id: u64,
    /// The master epoch the requester is master at.
    pub master_epoch: i32,
}

/// `AlterSyncStateSetResponseHeader`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AlterSyncStateSetResponse {
    /// The new SyncStateSet's epoch.
    pub new_sync_state_set_epoch: i32,
}

/// `ElectMasterRequestHeader`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElectMasterRequest {
    /// The cluster (informational: the group's own is used).
    pub cluster_name: String,
    /// The group.
    pub broker_name: String,
    /// The requesting broker, or the designated one; `None` when the
    /// controller triggers the election (Java's `-1`).
    pub broker_id: Option<u64>,
    /// Elect exactly `broker_id` (an admin's manual election).
    pub designate_elect: bool,
}

impl ElectMasterRequest {
    /// A broker asks (`ElectMasterRequestHeader.ofBrokerTrigger`): it becomes
    /// the master of a group that never had one.
    pub fn of_broker_trigger(cluster_name: &str, broker_name: &str, broker_id: u64) -> Self {
        ElectMasterRequest {
            cluster_name: cluster_name.to_owned(),
            broker_name: broker_name.to_owned(),
            broker_id: Some(broker_id),
            designate_elect: false,
        }
    }

    /// The controller found the master inactive (`ofControllerTrigger`).
    pub fn of_controller_trigger(broker_name: &str) -> Self {
        ElectMasterRequest {
            cluster_name: String::new(),
            broker_name: broker_name.to_owned(),
            broker_id: None,
            designate_elect: false,
        }
    }

    /// An admin designates the new master (`ofAdminTrigger`).
    pub fn of_admin_trigger(cluster_name: &str, broker_name: &str, broker_id: u64) -> Self {
        ElectMasterRequest {
            cluster_name: cluster_name.to_owned(),
            broker_name: broker_name.to_owned(),
            broker_id: Some(broker_id),
            designate_elect: true,
        }
    }
}

/// `ElectMasterResponseHeader`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ElectMasterResponse {
    /// The (new or still valid) master.
    pub master_broker_id: Option<u64>,
    /// Its address.
    pub master_address: Option<String>,
    /// The master epoch after the election.
    pub master_epoch: Option<i32>,
    /// The SyncStateSet epoch after the election.
    pub sync_state_set_epoch: Option<i32>,
}

/// `GetReplicaInfoRequestHeader`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetReplicaInfoRequest {
    /// The group.
    pub broker_name: String,
}

/// `GetReplicaInfoResponseHeader`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GetReplicaInfoResponse {
    /// The master, if any.
    pub master_broker_id: Option<u64>,
    /// Its address.
    pub master_address: Option<String>,
    /// The master epoch.
    pub master_epoch: Option<i32>,
}

/// `CleanControllerBrokerDataRequestHeader`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CleanBrokerDataRequest {
    /// The cluster, for the liveness check.
    pub cluster_name: Option<String>,
    /// The group.
    pub broker_name: String,
    /// `id;id;...`: the replicas to remove; blank removes the whole group.
    pub broker_controller_ids_to_clean: Option<String>,
    /// Skip the liveness checks (remove live replicas too).
    pub clean_living_broker: bool,
}

/// `SyncStateSet` body: a SyncStateSet and its epoch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncStateSet {
    /// The replicas in sync with the master (the master included).
    pub sync_state_set: BTreeSet<u64>,
    /// The set's epoch.
    pub sync_state_set_epoch: i32,
}

/// `BrokerMemberGroup` body part: a group's replicas and addresses.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BrokerMemberGroup {
    /// The cluster.
    pub cluster: String,
    /// The group.
    pub broker_name: String,
    /// Address by broker id.
    pub broker_addrs: BTreeMap<u64, String>,
}

/// `ElectMasterResponseBody`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ElectMasterResponseBody {
    /// The group's replicas (on a new master only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub broker_member_group: Option<BrokerMemberGroup>,
    /// The SyncStateSet after the election.
    pub sync_state_set: BTreeSet<u64>,
}

/// `BrokerReplicasInfo` body (GetSyncStateData): the replicas of several groups.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BrokerReplicasInfo {
    /// One entry per registered group asked for.
    pub replicas_info_table: BTreeMap<String, ReplicasInfo>,
}

/// `BrokerReplicasInfo.ReplicasInfo`: one group's master and replicas.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicasInfo {
    /// The master, if any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub master_broker_id: Option<u64>,
    /// Its address.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub master_address: Option<String>,
    /// The master epoch.
    pub master_epoch: i32,
    /// The SyncStateSet epoch.
    pub sync_state_set_epoch: i32,
    /// The SyncStateSet members, by id.
    pub in_sync_replicas: Vec<ReplicaIdentity>,
    /// The other replicas, by id.
    pub not_in_sync_replicas: Vec<ReplicaIdentity>,
}

impl ReplicasInfo {
    /// Whether `broker_id` is in the SyncStateSet (`isExistInSync`).
    pub fn is_in_sync(&self, broker_id: u64) -> bool {
        self.in_sync_replicas
            .iter()
            .any(|r| r.broker_id == broker_id)
    }
}

/// `BrokerReplicasInfo.ReplicaIdentity`: one replica.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaIdentity {
    /// The group.
    pub broker_name: String,
    /// The replica's id.
    pub broker_id: u64,
    /// Its address.
    pub broker_address: String,
    /// Whether it is alive now.
    pub alive: bool,
}
