//! The request side of the state machine: RocketMQ's `ReplicasInfoManager`.
//!
//! Each request is validated against the current [`State`] (and, where
//! RocketMQ does, against the brokers' liveness) without changing it; the
//! [`ControllerResult`] carries the response code, remark, response header
//! and body, and the [`Event`]s to append to the replicated log. The state
//! changes only when those events are applied ([`ReplicasInfoManager::apply`]).
//! Requests that change the state must be serialized with the application of
//! their events (validate, append, apply, then the next request), as
//! RocketMQ's controllers do with their single-threaded event scheduler.

use std::collections::BTreeSet;

use crate::elect::{elect, BrokerLiveness, ElectionInput};
use crate::event::{self, Event};
use crate::protocol::response_code::*;
use crate::protocol::*;
use crate::state::{BrokerGroup, State, FIRST_BROKER_CONTROLLER_ID};

/// The controller settings the state machine's requests depend on (part of
/// RocketMQ's `ControllerConfig`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ControllerConfig {
    /// `enableElectUncleanMaster`: when no SyncStateSet member is alive, elect
    /// any alive replica (it may lack messages the old master acknowledged).
    /// Off by default, as in RocketMQ.
    pub enable_elect_unclean_master: bool,
}

/// The outcome of a request (RocketMQ's `ControllerResult`): a response code
/// ([`response_code`]), a remark when it is not `SUCCESS`, the response
/// header `H`, an optional JSON body `B`, and the events to append to the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControllerResult<H, B = ()> {
    /// A [`response_code`] value.
    pub code: i32,
    /// Why the request failed (or what it found).
    pub remark: Option<String>,
    /// The response header.
    pub response: H,
    /// The response body.
    pub body: Option<B>,
    /// The events to append and apply; empty for reads and refused requests.
    pub events: Vec<Event>,
}

impl<H, B> ControllerResult<H, B> {
    fn ok(response: H) -> Self {
        ControllerResult {
            code: SUCCESS,
            remark: None,
            response,
            body: None,
            events: Vec::new(),
        }
    }

    fn fail(mut self, code: i32, remark: String) -> Self {
        tracing::debug!(code, remark, "controller request refused");
        self.code = code;
        self.remark = Some(remark);
        self
    }

    fn with_body(mut self, body: B) -> Self {
        self.body = Some(body);
        self
    }

    fn with_event(mut self, event: Event) -> Self {
        self.events.push(event);
        self
    }

    /// Whether the code is `SUCCESS`.
    pub fn is_success(&self) -> bool {
        self.code == SUCCESS
    }
}

/// The controller's state machine: the [`State`], the requests validated
/// against it, and the application of events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplicasInfoManager {
    config: ControllerConfig,
    state: State,
}

impl ReplicasInfoManager {
    /// An empty state machine.
    pub fn new(config: ControllerConfig) -> Self {
        ReplicasInfoManager {
            config,
            state: State::new(),
        }
    }

    /// A state machine over `state` (restored from a snapshot).
    pub fn with_state(config: ControllerConfig, state: State) -> Self {
        ReplicasInfoManager { config, state }
    }

    /// The settings.
    pub fn config(&self) -> &ControllerConfig {
        &self.config
    }

    /// Changes the settings (RocketMQ's `UPDATE_CONTROLLER_CONFIG`).
    pub fn set_config(&mut self, config: ControllerConfig) {
        self.config = config;
    }

    /// The state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Takes the state out (for a snapshot).
    pub fn into_state(self) -> State {
        self.state
    }

    /// Applies one event ([`event::apply`]); returns whether it changed the state.
    pub fn apply(&mut self, event: &Event) -> bool {
        event::apply(&mut self.state, event)
    }

    /// Applies events in order; returns how many changed the state.
    pub fn apply_all<'a>(&mut self, events: impl IntoIterator<Item = &'a Event>) -> usize {
        event::apply_all(&mut self.state, events)
    }

    /// `CONTROLLER_GET_NEXT_BROKER_ID`: the id a new broker of the group
    /// should apply for (1 for a new group).
    pub fn get_next_broker_id(
        &self,
        request: &GetNextBrokerIdRequest,
    ) -> ControllerResult<GetNextBrokerIdResponse> {
        let next_broker_id = self.state.group(&request.broker_name).map_or(
            FIRST_BROKER_CONTROLLER_ID,
            BrokerGroup::next_assign_broker_id,
        );
        ControllerResult::ok(GetNextBrokerIdResponse {
            cluster_name: request.cluster_name.clone(),
            broker_name: request.broker_name.clone(),
            next_broker_id,
        })
    }

    /// `CONTROLLER_APPLY_BROKER_ID`: gives the broker the id it applies for
    /// when the id is free, or already its own (same register check code).
    /// A new group's first id must be 1. Refused: `CONTROLLER_BROKER_ID_INVALID`.
    pub fn apply_broker_id(
        &self,
        request: &ApplyBrokerIdRequest,
    ) -> ControllerResult<ApplyBrokerIdResponse> {
        let broker_name = &request.broker_name;
        let broker_id = request.applied_broker_id;
        let result = ControllerResult::ok(ApplyBrokerIdResponse {
            cluster_name: request.cluster_name.clone(),
            broker_name: broker_name.clone(),
        });
        let event = Event::ApplyBrokerId {
            cluster_name: request.cluster_name.clone(),
            broker_name: broker_name.clone(),
            broker_address: register_check_code_address(&request.register_check_code).to_owned(),
            new_broker_id: broker_id,
            register_check_code: request.register_check_code.clone(),
        };
        let Some(group) = self.state.group(broker_name) else {
            if broker_id == FIRST_BROKER_CONTROLLER_ID {
                return result.with_event(event);
            }
            return result.fail(
                CONTROLLER_BROKER_ID_INVALID,
                format!(
                    "Broker-set: {broker_name} hasn't been registered in controller, but broker try to apply brokerId: {broker_id}"
                ),
            );
        };
        match group.register_check_code(broker_id) {
            None => result.with_event(event),
            Some(code) if code == request.register_check_code => result.with_event(event),
            Some(_) => result.fail(
                CONTROLLER_BROKER_ID_INVALID,
                format!("Fail to apply brokerId: {broker_id} in broker-set: {broker_name}"),
            ),
        }
    }

    /// `CONTROLLER_REGISTER_BROKER`: a broker with an id comes up. Answers the
    /// master when it exists and is alive, and the SyncStateSet; records a
    /// changed address. The group and the id must be registered
    /// (`CONTROLLER_BROKER_NEED_TO_BE_REGISTERED`).
    pub fn register_broker(
        &self,
        request: &RegisterBrokerRequest,
        liveness: &dyn BrokerLiveness,
    ) -> ControllerResult<RegisterBrokerResponse, SyncStateSet> {
        let broker_name = &request.broker_name;
        let mut result = ControllerResult::ok(RegisterBrokerResponse {
            cluster_name: request.cluster_name.clone(),
            broker_name: broker_name.clone(),
            ..RegisterBrokerResponse::default()
        });
        let Some(group) = self.state.group(broker_name) else {
            return result.fail(
                CONTROLLER_BROKER_NEED_TO_BE_REGISTERED,
                format!("Broker-set: {broker_name} hasn't been registered in controller"),
            );
        };
        let broker_id = request.broker_id;
        let Some(address) = group.broker_address(broker_id) else {
            return result.fail(
                CONTROLLER_BROKER_NEED_TO_BE_REGISTERED,
                format!(
                    "BrokerId: {broker_id} hasn't been registered in broker-set: {broker_name}"
                ),
            );
        };
        if let Some(master) = group.master_broker_id() {
            if liveness.is_alive(&request.cluster_name, broker_name, master) {
                result.response.master_broker_id = Some(master);
                result.response.master_address = group.master_address().map(str::to_owned);
                result.response.master_epoch = Some(group.master_epoch());
                result.response.sync_state_set_epoch = Some(group.sync_state_set_epoch());
            }
        }
        if address != request.broker_address {
            result = result.with_event(Event::UpdateBrokerAddress {
                cluster_name: request.cluster_name.clone(),
                broker_name: broker_name.clone(),
                broker_address: request.broker_address.clone(),
                broker_id,
            });
        }
        result.with_body(sync_state_set_of(group))
    }

    /// `CONTROLLER_ALTER_SYNC_STATE_SET`: the master reports the replicas in
    /// sync with it. Checked in RocketMQ's order: the group exists and the set
    /// changes (`CONTROLLER_ALTER_SYNC_STATE_SET_FAILED`), the requester is
    /// the master (`CONTROLLER_INVALID_MASTER`) at the current master epoch
    /// (`CONTROLLER_FENCED_MASTER_EPOCH`) and knows the current set's epoch
    /// (`CONTROLLER_FENCED_SYNC_STATE_SET_EPOCH`), every member is a
    /// registered (`CONTROLLER_INVALID_REPLICAS`) and alive
    /// (`CONTROLLER_BROKER_NOT_ALIVE`) replica, and the set holds the master
    /// (`CONTROLLER_ALTER_SYNC_STATE_SET_FAILED`). The new set's epoch is
    /// the current one plus one.
    pub fn alter_sync_state_set(
        &self,
        request: &AlterSyncStateSetRequest,
        sync_state_set: &SyncStateSet,
        liveness: &dyn BrokerLiveness,
    ) -> ControllerResult<AlterSyncStateSetResponse, SyncStateSet> {
        let result = ControllerResult::ok(AlterSyncStateSetResponse::default());
        let Some(group) = self.state.group(&request.broker_name) else {
            return result.fail(
                CONTROLLER_ALTER_SYNC_STATE_SET_FAILED,
                "Broker metadata is not existed".to_owned(),
            );
        };
        let new_set = &sync_state_set.sync_state_set;
        if *new_set == group.sync_state_set {
            return result.fail(
                CONTROLLER_ALTER_SYNC_STATE_SET_FAILED,
                "The newSyncStateSet is equal with oldSyncStateSet, no needed to update syncStateSet"
                    .to_owned(),
            );
        }
        if group.master_broker_id != Some(request.master_broker_id) {
            return result.fail(
                CONTROLLER_INVALID_MASTER,
                format!(
                    "Rejecting alter syncStateSet request because the current leader is:{{{}}}, not {{{}}}",
                    show(group.master_broker_id),
                    request.master_broker_id
                ),
            );
        }
        if request.master_epoch != group.master_epoch {
            return result.fail(
                CONTROLLER_FENCED_MASTER_EPOCH,
                format!(
                    "Rejecting alter syncStateSet request because the current master epoch is:{{{}}}, not {{{}}}",
                    group.master_epoch, request.master_epoch
                ),
            );
        }
        if sync_state_set.sync_state_set_epoch != group.sync_state_set_epoch {
            return result.fail(
                CONTROLLER_FENCED_SYNC_STATE_SET_EPOCH,
                format!(
                    "Rejecting alter syncStateSet request because the current syncStateSet epoch is:{{{}}}, not {{{}}}",
                    group.sync_state_set_epoch, sync_state_set.sync_state_set_epoch
                ),
            );
        }
        for &replica in new_set {
            if !group.contains_replica(replica) {
                return result.fail(
                    CONTROLLER_INVALID_REPLICAS,
                    format!("Rejecting alter syncStateSet request because the replicas {{{replica}}} don't exist"),
                );
            }
            if !liveness.is_alive(&group.cluster_name, &group.broker_name, replica) {
                return result.fail(
                    CONTROLLER_BROKER_NOT_ALIVE,
                    format!("Rejecting alter syncStateSet request because the replicas {{{replica}}} don't alive"),
                );
            }
        }
        if !new_set.contains(&request.master_broker_id) {
            return result.fail(
                CONTROLLER_ALTER_SYNC_STATE_SET_FAILED,
                format!(
                    "Rejecting alter syncStateSet request because the newSyncStateSet don't contains origin leader {{{}}}",
                    request.master_broker_id
                ),
            );
        }
        let epoch = group.sync_state_set_epoch.saturating_add(1);
        let mut result = result
            .with_body(SyncStateSet {
                sync_state_set: new_set.clone(),
                sync_state_set_epoch: epoch,
            })
            .with_event(Event::AlterSyncStateSet {
                broker_name: group.broker_name.clone(),
                new_sync_state_set: new_set.clone(),
                master_epoch: group.master_epoch,
                sync_state_set_epoch: group.sync_state_set_epoch,
            });
        result.response.new_sync_state_set_epoch = epoch;
        result
    }

    /// `CONTROLLER_ELECT_MASTER`.
    ///
    /// A group that never had a master gets the requesting broker (if it is a
    /// registered replica). Otherwise [`elect`] picks among the alive
    /// SyncStateSet members (all alive replicas too when unclean election is
    /// enabled), keeping the old master while it is alive, or exactly the
    /// designated broker of an admin's request:
    /// - the old master again: `CONTROLLER_MASTER_STILL_EXIST`, no event;
    /// - a new master: `SUCCESS`, the master epoch and SyncStateSet epoch
    ///   bump, the set becomes {new master};
    /// - nobody, controller-triggered (`broker_id: None`):
    ///   `CONTROLLER_MASTER_NOT_AVAILABLE`, and, if there was a master, an
    ///   event clearing it (the master epoch bumps);
    /// - nobody, broker- or admin-triggered: `CONTROLLER_ELECT_MASTER_FAILED`.
    ///
    /// A designated election without a broker id is refused
    /// (`CONTROLLER_INVALID_REQUEST`).
    pub fn elect_master(
        &self,
        request: &ElectMasterRequest,
        liveness: &dyn BrokerLiveness,
    ) -> ControllerResult<ElectMasterResponse, ElectMasterResponseBody> {
        let mut result = ControllerResult::ok(ElectMasterResponse::default());
        let Some(group) = self.state.group(&request.broker_name) else {
            return result.fail(
                CONTROLLER_BROKER_NEED_TO_BE_REGISTERED,
                "Broker hasn't been registered".to_owned(),
            );
        };
        if request.designate_elect && request.broker_id.is_none() {
            // RocketMQ would look for broker -1, find nobody, and (taking the
            // request for the controller's own) clear a live master.
            return result.fail(
                CONTROLLER_INVALID_REQUEST,
                "A designated election needs a brokerId".to_owned(),
            );
        }
        let old_master = group.master_broker_id;
        let all_replicas = self
            .config
            .enable_elect_unclean_master
            .then(|| group.replica_ids());
        let mut new_master = None;
        if group.is_first_time_for_elect() {
            new_master = request.broker_id.filter(|&id| group.contains_replica(id));
        }
        if new_master.is_none() {
            let prefer = if request.designate_elect {
                request.broker_id
            } else {
                None
            };
            new_master = elect(
                liveness,
                &ElectionInput {
                    cluster_name: &group.cluster_name,
                    broker_name: &group.broker_name,
                    sync_state_set: &group.sync_state_set,
                    all_replicas: all_replicas.as_ref(),
                    old_master,
                    prefer,
                },
            );
        }
        match new_master {
            Some(master) if Some(master) == old_master => {
                result.response = ElectMasterResponse {
                    master_broker_id: Some(master),
                    master_address: group.master_address().map(str::to_owned),
                    master_epoch: Some(group.master_epoch),
                    sync_state_set_epoch: Some(group.sync_state_set_epoch),
                };
                result
                    .with_body(ElectMasterResponseBody {
                        broker_member_group: None,
                        sync_state_set: group.sync_state_set.clone(),
                    })
                    .fail(
                        CONTROLLER_MASTER_STILL_EXIST,
                        format!(
                            "The old master {master} is still alive, not need to elect new master for broker {}",
                            group.broker_name
                        ),
                    )
            }
            Some(master) => {
                tracing::info!(
                    broker_name = %group.broker_name,
                    master,
                    master_epoch = group.master_epoch.saturating_add(1),
                    "elected a new master"
                );
                result.response = ElectMasterResponse {
                    master_broker_id: Some(master),
                    master_address: group.broker_address(master).map(str::to_owned),
                    master_epoch: Some(group.master_epoch.saturating_add(1)),
                    sync_state_set_epoch: Some(group.sync_state_set_epoch.saturating_add(1)),
                };
                result
                    .with_body(ElectMasterResponseBody {
                        broker_member_group: Some(member_group(group)),
                        sync_state_set: BTreeSet::from([master]),
                    })
                    .with_event(Event::ElectMaster {
                        broker_name: group.broker_name.clone(),
                        new_master_broker_id: Some(master),
                        master_epoch: group.master_epoch,
                        sync_state_set_epoch: group.sync_state_set_epoch,
                    })
            }
            None if request.broker_id.is_none() => {
                tracing::warn!(broker_name = %group.broker_name, "no master could be elected");
                if old_master.is_some() {
                    // Record that the master is gone. (RocketMQ records it
                    // even when there is no master: only a pointless epoch
                    // bump, which would also end a new group's "first
                    // election" that lets the first broker asking be master.)
                    result = result.with_event(Event::ElectMaster {
                        broker_name: group.broker_name.clone(),
                        new_master_broker_id: None,
                        master_epoch: group.master_epoch,
                        sync_state_set_epoch: group.sync_state_set_epoch,
                    });
                }
                result.fail(
                    CONTROLLER_MASTER_NOT_AVAILABLE,
                    "Old master has down and failed to elect a new broker master".to_owned(),
                )
            }
            None => result.fail(
                CONTROLLER_ELECT_MASTER_FAILED,
                "Failed to elect a new master".to_owned(),
            ),
        }
    }

    /// `CONTROLLER_GET_REPLICA_INFO`: the group's master, master epoch and
    /// SyncStateSet (`CONTROLLER_BROKER_METADATA_NOT_EXIST` for no group).
    pub fn get_replica_info(
        &self,
        request: &GetReplicaInfoRequest,
    ) -> ControllerResult<GetReplicaInfoResponse, SyncStateSet> {
        let result = ControllerResult::ok(GetReplicaInfoResponse::default());
        let Some(group) = self.state.group(&request.broker_name) else {
            return result.fail(
                CONTROLLER_BROKER_METADATA_NOT_EXIST,
                "Broker metadata is not existed".to_owned(),
            );
        };
        let mut result = result.with_body(sync_state_set_of(group));
        result.response = GetReplicaInfoResponse {
            master_broker_id: group.master_broker_id,
            master_address: group.master_address().map(str::to_owned),
            master_epoch: Some(group.master_epoch),
        };
        result
    }

    /// `CONTROLLER_GET_SYNC_STATE_DATA`: for each registered group among
    /// `broker_names`, its master, epochs, and replicas in and out of the
    /// SyncStateSet with their liveness.
    pub fn get_sync_state_data(
        &self,
        broker_names: &[String],
        liveness: &dyn BrokerLiveness,
    ) -> ControllerResult<(), BrokerReplicasInfo> {
        let mut info = BrokerReplicasInfo::default();
        for group in broker_names.iter().filter_map(|n| self.state.group(n)) {
            let mut in_sync = Vec::new();
            let mut not_in_sync = Vec::new();
            for (&broker_id, replica) in &group.replicas {
                let identity = ReplicaIdentity {
                    broker_name: group.broker_name.clone(),
                    broker_id,
                    broker_address: replica.address.clone(),
                    alive: liveness.is_alive(&group.cluster_name, &group.broker_name, broker_id),
                };
                if group.sync_state_set.contains(&broker_id) {
                    in_sync.push(identity);
                } else {
                    not_in_sync.push(identity);
                }
            }
            info.replicas_info_table.insert(
                group.broker_name.clone(),
                ReplicasInfo {
                    master_broker_id: group.master_broker_id,
                    master_address: group.master_address().map(str::to_owned),
                    master_epoch: group.master_epoch,
                    sync_state_set_epoch: group.sync_state_set_epoch,
                    in_sync_replicas: in_sync,
                    not_in_sync_replicas: not_in_sync,
                },
            );
        }
        ControllerResult::ok(()).with_body(info)
    }

    /// `CLEAN_BROKER_DATA` (admin): removes the listed replicas
    /// (`broker_controller_ids_to_clean`, `id;id;...`) or, when none is
    /// listed, the whole group. Unless `clean_living_broker`, refuses
    /// (`CONTROLLER_INVALID_CLEAN_BROKER_METADATA`) to remove a group that
    /// has a master or a listed replica that is alive.
    pub fn clean_broker_data(
        &self,
        request: &CleanBrokerDataRequest,
        liveness: &dyn BrokerLiveness,
    ) -> ControllerResult<()> {
        let result = ControllerResult::ok(());
        let broker_name = &request.broker_name;
        let ids_text = request
            .broker_controller_ids_to_clean
            .as_deref()
            .filter(|s| !s.trim().is_empty());
        let ids = match ids_text.map(parse_broker_ids).transpose() {
            Ok(ids) => ids,
            Err(e) => {
                return result.fail(
                    CONTROLLER_INVALID_CLEAN_BROKER_METADATA,
                    format!(
                        "Please set the option <brokerControllerIdsToClean> according to the format, exception: {e}"
                    ),
                )
            }
        };
        let group = self.state.group(broker_name);
        if !request.clean_living_broker {
            match &ids {
                None => {
                    if group.is_some_and(|g| g.master_broker_id.is_some()) {
                        return result.fail(
                            CONTROLLER_INVALID_CLEAN_BROKER_METADATA,
                            format!("Broker {broker_name} is still alive, clean up failure"),
                        );
                    }
                }
                Some(ids) => {
                    let cluster = request.cluster_name.as_deref().unwrap_or_default();
                    if let Some(id) = ids
                        .iter()
                        .find(|&&id| liveness.is_alive(cluster, broker_name, id))
                    {
                        return result.fail(
                            CONTROLLER_INVALID_CLEAN_BROKER_METADATA,
                            format!(
                                "Broker [{broker_name},  {id}] is still alive, clean up failure"
                            ),
                        );
                    }
                }
            }
        }
        if group.is_none() {
            return result.fail(
                CONTROLLER_INVALID_CLEAN_BROKER_METADATA,
                format!("Broker {broker_name} is not existed,clean broker data failure."),
            );
        }
        result.with_event(Event::CleanBrokerData {
            broker_name: broker_name.clone(),
            broker_ids_to_clean: ids,
        })
    }

    /// The groups whose master is inactive while some replica is alive: the
    /// ones to trigger an election for (RocketMQ's
    /// `scanNeedReelectBrokerSets`), ordered by broker name.
    pub fn scan_need_reelect_broker_sets(&self, liveness: &dyn BrokerLiveness) -> Vec<String> {
        self.state
            .groups()
            .filter(|g| {
                g.master_broker_id.is_some_and(|master| {
                    !liveness.is_alive(&g.cluster_name, &g.broker_name, master)
                        && g.replicas
                            .keys()
                            .any(|&id| liveness.is_alive(&g.cluster_name, &g.broker_name, id))
                })
            })
            .map(|g| g.broker_name.clone())
            .collect()
    }
}

/// The address part of a register check code (`address;timestamp`).
fn register_check_code_address(code: &str) -> &str {
    code.split(';').next().unwrap_or_default()
}

/// Parses `id;id;...` as Java's `split(";")` + `Long.valueOf` would, except
/// that ids are unsigned: trailing empty parts are ignored, any other part
/// must be a number.
fn parse_broker_ids(text: &str) -> Result<BTreeSet<u64>, String> {
    let trimmed = text.trim_end_matches(';');
    trimmed
        .split(';')
        .map(|part| {
            part.parse::<u64>()
                .map_err(|e| format!("For input string: \"{part}\" ({e})"))
        })
        .collect()
}

fn show(id: Option<u64>) -> String {
    id.map_or_else(|| "null".to_owned(), |id| id.to_string())
}

fn sync_state_set_of(group: &BrokerGroup) -> SyncStateSet {
    SyncStateSet {
        sync_state_set: group.sync_state_set.clone(),
        sync_state_set_epoch: group.sync_state_set_epoch,
    }
}

fn member_group(group: &BrokerGroup) -> BrokerMemberGroup {
    BrokerMemberGroup {
        cluster: group.cluster_name.clone(),
        broker_name: group.broker_name.clone(),
        broker_addrs: group
            .replicas
            .iter()
            .map(|(&id, r)| (id, r.address.clone()))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_id_lists_parse_like_java() {
        assert_eq!(parse_broker_ids("1;2;3"), Ok(BTreeSet::from([1, 2, 3])));
        assert_eq!(parse_broker_ids("1;"), Ok(BTreeSet::from([1])));
        assert!(parse_broker_ids(";1").is_err());
        assert!(parse_broker_ids("1;x").is_err());
        assert!(parse_broker_ids(" 1").is_err());
        assert_eq!(
            register_check_code_address("10.0.0.1:10911;1700000000000"),
            "10.0.0.1:10911"
        );
        assert_eq!(register_check_code_address(""), "");
    }
}
