//! The controller's request handler: RocketMQ 5.3's
//! `ControllerRequestProcessor` over [`ReplicasInfoManager`] and
//! [`ControllerNode`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferromq_controller::heartbeat::DEFAULT_BROKER_CHANNEL_EXPIRED_TIME_MS;
use ferromq_controller::peers::node_name;
use ferromq_controller::raft::{ControllerNode, NodeError};
use ferromq_controller::request_code as rc;
use ferromq_controller::response_code::{
    CONTROLLER_INVALID_REQUEST, CONTROLLER_JRAFT_INTERNAL_ERROR, CONTROLLER_NOT_LEADER,
};
use ferromq_controller::*;
use ferromq_engine::sync::LockExt;
use serde::Serialize;
use tokio::sync::{watch, Notify};

use super::config::ControllerServerConfig;
use crate::remoting::{response, ConnInfo, ExtFields, Handler, HeaderError, RemotingCommand};

/// How long a request waits for its Raft write (RocketMQ: 5 s).
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a role change notice waits for a broker's answer.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(3);

/// Answers the brokers' (and admins') controller requests; see the
/// [module](super) documentation.
pub struct ControllerHandler {
    node: Arc<ControllerNode>,
    config: ControllerConfig,
    group: String,
    /// The effective configuration, for `GET_CONTROLLER_CONFIG`.
    properties: String,
    heartbeats: Mutex<Liveness>,
    /// Wakes the scanner early (a broker's connection closed).
    rescan: Notify,
    /// Serializes the leader's state-changing requests.
    writes: tokio::sync::Mutex<()>,
    epoch: Instant,
    /// `notifyBrokerRoleChanged`: tell a group's replicas of a new master.
    notify: bool,
}

/// The brokers' heartbeats and the connection each last came on: a broker
/// whose connection closes is forgotten at once (RocketMQ's
/// `onBrokerChannelClose`), as a crashed broker's connections close.
#[derive(Default)]
struct Liveness {
    table: HeartbeatTable,
    connections: BTreeMap<BrokerIdentity, u64>,
}

/// What a decided request becomes: the response and the events to
/// replicate before sending it.
type Decided = (RemotingCommand, Vec<Event>);

impl ControllerHandler {
    /// A handler over `node`.
    pub fn new(node: Arc<ControllerNode>, cfg: &ControllerServerConfig) -> Self {
        ControllerHandler {
            node,
            config: cfg.state_machine(),
            group: cfg.group.clone(),
            properties: cfg.to_properties(),
            heartbeats: Mutex::new(Liveness::default()),
            rescan: Notify::new(),
            writes: tokio::sync::Mutex::new(()),
            epoch: Instant::now(),
            notify: cfg.notify_broker_role_changed,
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Answers one request.
    pub async fn dispatch(&self, conn: &ConnInfo, req: &RemotingCommand) -> RemotingCommand {
        let f = &req.ext_fields;
        let result = match req.code {
            rc::BROKER_HEARTBEAT => Ok(self.heartbeat(conn.id, f)),
            rc::CONTROLLER_GET_METADATA_INFO => Ok(self.metadata()),
            // Any controller answers with its own settings, as RocketMQ does.
            rc::GET_CONTROLLER_CONFIG => {
                Ok(RemotingCommand::success().with_body(self.properties.clone().into_bytes()))
            }
            rc::CONTROLLER_GET_NEXT_BROKER_ID => match get_next_broker_id(f) {
                Ok(r) => Ok(self
                    .execute(false, |m, _| decided(m.get_next_broker_id(&r)))
                    .await),
                Err(e) => Err(e),
            },
            rc::CONTROLLER_APPLY_BROKER_ID => match apply_broker_id(f) {
                Ok(r) => Ok(self
                    .execute(true, |m, _| decided(m.apply_broker_id(&r)))
                    .await),
                Err(e) => Err(e),
            },
            rc::CONTROLLER_REGISTER_BROKER => match register_broker(f) {
                Ok(r) => Ok(self
                    .execute(true, |m, l| decided(m.register_broker(&r, l)))
                    .await),
                Err(e) => Err(e),
            },
            rc::CONTROLLER_ALTER_SYNC_STATE_SET => match alter_sync_state_set(f) {
                Ok(r) => match serde_json::from_slice::<SyncStateSet>(&req.body) {
                    Ok(set) => Ok(self
                        .execute(true, |m, l| decided(m.alter_sync_state_set(&r, &set, l)))
                        .await),
                    Err(e) => Ok(invalid(format!("bad SyncStateSet body: {e}"))),
                },
                Err(e) => Err(e),
            },
            rc::CONTROLLER_ELECT_MASTER => match elect_master(f) {
                Ok(r) => Ok(self.elect(&r).await),
                Err(e) => Err(e),
            },
            rc::CONTROLLER_GET_REPLICA_INFO => match f.get_str("brokerName") {
                Ok(name) => {
                    let r = GetReplicaInfoRequest {
                        broker_name: name.to_owned(),
                    };
                    Ok(self
                        .execute(false, |m, _| decided(m.get_replica_info(&r)))
                        .await)
                }
                Err(e) => Err(e),
            },
            rc::CONTROLLER_GET_SYNC_STATE_DATA => {
                match serde_json::from_slice::<Vec<String>>(&req.body) {
                    Ok(names) if !names.is_empty() => Ok(self
                        .execute(false, |m, l| decided(m.get_sync_state_data(&names, l)))
                        .await),
                    // RocketMQ answers an empty SUCCESS without a list.
                    _ if req.body.is_empty() => Ok(RemotingCommand::success()),
                    Ok(_) => Ok(RemotingCommand::success()),
                    Err(e) => Ok(invalid(format!("bad broker name list body: {e}"))),
                }
            }
            rc::CLEAN_BROKER_DATA => match clean_broker_data(f) {
                Ok(r) => Ok(self
                    .execute(true, |m, l| decided(m.clean_broker_data(&r, l)))
                    .await),
                Err(e) => Err(e),
            },
            code => Ok(RemotingCommand::error(
                response::REQUEST_CODE_NOT_SUPPORTED,
                format!(" request type {code} not supported"),
            )),
        };
        result.unwrap_or_else(|e| invalid(e.to_string()))
    }

    /// `BROKER_HEARTBEAT`: every controller records it.
    fn heartbeat(&self, conn_id: u64, f: &ExtFields) -> RemotingCommand {
        let broker_id = match f.opt_i64("brokerId") {
            Ok(Some(id)) if id >= 0 => id as u64,
            Ok(_) => return invalid("Heart beat with empty brokerId".to_owned()),
            Err(e) => return invalid(e.to_string()),
        };
        let hb = (|| -> Result<Heartbeat, HeaderError> {
            Ok(Heartbeat {
                cluster_name: f.opt_str("clusterName").unwrap_or_default().to_owned(),
                broker_name: f.opt_str("brokerName").unwrap_or_default().to_owned(),
                broker_address: f.opt_str("brokerAddr").unwrap_or_default().to_owned(),
                broker_id,
                heartbeat_timeout_ms: f
                    .opt_i64("heartbeatTimeoutMills")?
                    .filter(|t| *t > 0)
                    .map(|t| t as u64),
                epoch: opt_i32(f, "epoch")?,
                max_offset: f.opt_i64("maxOffset")?,
                confirm_offset: f.opt_i64("confirmOffset")?,
                election_priority: opt_i32(f, "electionPriority")?,
            })
        })();
        match hb {
            Ok(hb) => {
                let now = self.now();
                let mut live = self.heartbeats.locked();
                live.table.on_heartbeat(&hb, now);
                live.connections.insert(
                    BrokerIdentity {
                        cluster_name: hb.cluster_name,
                        broker_name: hb.broker_name,
                        broker_id: hb.broker_id,
                    },
                    conn_id,
                );
                RemotingCommand::response(response::SUCCESS, Some("Heart beat success".into()))
            }
            Err(e) => invalid(e.to_string()),
        }
    }

    /// `CONTROLLER_GET_METADATA_INFO`: any controller answers.
    fn metadata(&self) -> RemotingCommand {
        let leader = self.node.leader_id();
        let peers: String = self
            .node_peers()
            .iter()
            .map(|(id, addr)| format!("{}:{addr};", node_name(*id)))
            .collect();
        let mut cmd = RemotingCommand::success()
            .with_ext("group", &self.group)
            .with_ext("isLeader", self.node.is_leader())
            .with_ext("peers", peers);
        if let Some(id) = leader {
            cmd = cmd.with_ext("controllerLeaderId", node_name(id));
        }
        if let Some(addr) = self.node.leader_address() {
            cmd = cmd.with_ext("controllerLeaderAddress", addr);
        }
        cmd
    }

    fn node_peers(&self) -> Vec<(u64, String)> {
        let m = self.node.metrics();
        m.membership_config
            .membership()
            .nodes()
            .map(|(id, n)| (*id, n.addr.clone()))
            .collect()
    }

    /// `CONTROLLER_ELECT_MASTER`.
    async fn elect(&self, r: &ElectMasterRequest) -> RemotingCommand {
        let cmd = self
            .execute(true, |m, l| decided(m.elect_master(r, l)))
            .await;
        if cmd.code == response::SUCCESS {
            tracing::info!(
                broker_name = %r.broker_name,
                master = cmd.ext_fields.opt_str("masterBrokerId").unwrap_or("-"),
                epoch = cmd.ext_fields.opt_str("masterEpoch").unwrap_or("-"),
                "master elected"
            );
            if self.notify {
                self.notify_role_changed(&r.broker_name, &cmd).await;
            }
        }
        cmd
    }

    /// `notifyBrokerRoleChanged`: send NOTIFY_BROKER_ROLE_CHANGED (RocketMQ
    /// 5's header and SyncStateSet body) to each replica of the group, in
    /// the background. A broker takes it as a prompt to ask the leader for
    /// its group's master at once, not as the role itself, so a forged or
    /// stale notice changes nothing.
    async fn notify_role_changed(&self, broker_name: &str, elected: &RemotingCommand) {
        let Ok(state) = self.node.read_state().await else {
            return;
        };
        let Some(group) = state.group(broker_name) else {
            return;
        };
        let mut req = RemotingCommand::request(rc::NOTIFY_BROKER_ROLE_CHANGED);
        for key in [
            "masterAddress",
            "masterEpoch",
            "syncStateSetEpoch",
            "masterBrokerId",
        ] {
            if let Some(v) = elected.ext_fields.opt_str(key) {
                req.ext_fields.insert(key, v.to_owned());
            }
        }
        req.body = serde_json::to_vec(&SyncStateSet {
            sync_state_set: group.sync_state_set().clone(),
            sync_state_set_epoch: group.sync_state_set_epoch(),
        })
        .unwrap_or_default();
        for replica in group.replicas().values() {
            let addr = replica.address.clone();
            let req = req.clone();
            tokio::spawn(async move {
                let c = crate::remoting::RemotingClient::new(addr.clone());
                match c.invoke(req, NOTIFY_TIMEOUT).await {
                    Ok(r) if r.code == response::SUCCESS => {}
                    Ok(r) => {
                        tracing::debug!(broker = %addr, code = r.code, "role change notice refused")
                    }
                    Err(e) => {
                        tracing::debug!(broker = %addr, error = %e, "role change notice not delivered")
                    }
                }
                c.close().await;
            });
        }
    }

    /// The leader's path: a linearizable read of the state, the state
    /// machine's decision, the replication of its events (state-changing
    /// requests one at a time), the answer.
    async fn execute<F>(&self, write: bool, decide: F) -> RemotingCommand
    where
        F: FnOnce(&ReplicasInfoManager, &dyn BrokerLiveness) -> Decided,
    {
        let _serialized = if write {
            Some(self.writes.lock().await)
        } else {
            None
        };
        let state = match self.node.read_state().await {
            Ok(s) => s,
            Err(e) => return node_error(e),
        };
        let manager = ReplicasInfoManager::with_state(self.config.clone(), state);
        let (cmd, events) = {
            let live = self.heartbeats.locked();
            decide(&manager, &live.table.at(self.now()))
        };
        if events.is_empty() {
            return cmd;
        }
        match tokio::time::timeout(WRITE_TIMEOUT, self.node.client_write(events)).await {
            Ok(Ok(_)) => cmd,
            Ok(Err(e)) => node_error(e),
            Err(_) => RemotingCommand::error(
                CONTROLLER_JRAFT_INTERNAL_ERROR,
                format!("the write was not committed within {WRITE_TIMEOUT:?}"),
            ),
        }
    }

    /// Every `interval`: forget expired heartbeats; on the leader, past its
    /// grace period, elect a new master for each group whose master is
    /// inactive while another replica is active.
    pub async fn scan_loop(self: Arc<Self>, interval: Duration, mut stop: watch::Receiver<bool>) {
        let mut leader_since: Option<u64> = None;
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = self.rescan.notified() => {}
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        return;
                    }
                    continue;
                }
            }
            let now = self.now();
            let grace = {
                let mut live = self.heartbeats.locked();
                let Liveness { table, connections } = &mut *live;
                for gone in table.scan_not_active(now) {
                    connections.remove(&gone);
                }
                table
                    .max_heartbeat_timeout_ms()
                    .unwrap_or(DEFAULT_BROKER_CHANNEL_EXPIRED_TIME_MS)
            };
            if !self.node.is_leader() {
                leader_since = None;
                continue;
            }
            let since = *leader_since.get_or_insert(now);
            if now.saturating_sub(since) < grace {
                continue;
            }
            self.scan_once().await;
        }
    }

    async fn scan_once(&self) {
        let groups = {
            let _serialized = self.writes.lock().await;
            let Ok(state) = self.node.read_state().await else {
                return;
            };
            let manager = ReplicasInfoManager::with_state(self.config.clone(), state);
            let live = self.heartbeats.locked();
            manager.scan_need_reelect_broker_sets(&live.table.at(self.now()))
        };
        for broker_name in groups {
            tracing::warn!(%broker_name, "master inactive: electing a new one");
            let cmd = self
                .elect(&ElectMasterRequest::of_controller_trigger(&broker_name))
                .await;
            if cmd.code != response::SUCCESS {
                tracing::warn!(
                    %broker_name,
                    code = cmd.code,
                    remark = cmd.remark.as_deref().unwrap_or(""),
                    "election after an inactive master failed"
                );
            }
        }
    }
}

impl Handler for ControllerHandler {
    async fn handle(
        self: Arc<Self>,
        conn: Arc<ConnInfo>,
        req: RemotingCommand,
    ) -> Option<RemotingCommand> {
        Some(self.dispatch(&conn, &req).await)
    }

    /// Forgets the brokers whose last heartbeat came on this connection and
    /// wakes the scanner (RocketMQ's `onBrokerChannelClose`).
    fn on_close(&self, conn: &ConnInfo) {
        let mut live = self.heartbeats.locked();
        let Liveness { table, connections } = &mut *live;
        let mut forgotten = false;
        connections.retain(|identity, id| {
            if *id != conn.id {
                return true;
            }
            tracing::info!(?identity, peer = %conn.peer, "broker connection closed: heartbeat forgotten");
            table.remove(identity);
            forgotten = true;
            false
        });
        drop(live);
        if forgotten {
            self.rescan.notify_one();
        }
    }
}

fn invalid(remark: String) -> RemotingCommand {
    RemotingCommand::error(CONTROLLER_INVALID_REQUEST, remark)
}

fn node_error(e: NodeError) -> RemotingCommand {
    match e {
        NodeError::NotLeader { leader_address, .. } => RemotingCommand::error(
            CONTROLLER_NOT_LEADER,
            match leader_address {
                Some(addr) => format!("The controller is not in leader state, leader: {addr}"),
                None => "The controller is not in leader state, leader unknown".to_owned(),
            },
        ),
        e => RemotingCommand::error(CONTROLLER_JRAFT_INTERNAL_ERROR, e.to_string()),
    }
}

fn opt_i32(f: &ExtFields, key: &str) -> Result<Option<i32>, HeaderError> {
    match f.opt_i64(key)? {
        None => Ok(None),
        Some(v) => i32::try_from(v)
            .map(Some)
            .map_err(|_| HeaderError::Invalid {
                key: key.to_owned(),
                value: v.to_string(),
                expected: "a 32-bit integer",
            }),
    }
}

fn id(f: &ExtFields, key: &str) -> Result<u64, HeaderError> {
    let v = f.get_i64(key)?;
    u64::try_from(v).map_err(|_| HeaderError::Invalid {
        key: key.to_owned(),
        value: v.to_string(),
        expected: "a broker id, 0 or more",
    })
}

fn get_next_broker_id(f: &ExtFields) -> Result<GetNextBrokerIdRequest, HeaderError> {
    Ok(GetNextBrokerIdRequest {
        cluster_name: f.get_str("clusterName")?.to_owned(),
        broker_name: f.get_str("brokerName")?.to_owned(),
    })
}

fn apply_broker_id(f: &ExtFields) -> Result<ApplyBrokerIdRequest, HeaderError> {
    Ok(ApplyBrokerIdRequest {
        cluster_name: f.get_str("clusterName")?.to_owned(),
        broker_name: f.get_str("brokerName")?.to_owned(),
        applied_broker_id: id(f, "appliedBrokerId")?,
        register_check_code: f.get_str("registerCheckCode")?.to_owned(),
    })
}

fn register_broker(f: &ExtFields) -> Result<RegisterBrokerRequest, HeaderError> {
    Ok(RegisterBrokerRequest {
        cluster_name: f.get_str("clusterName")?.to_owned(),
        broker_name: f.get_str("brokerName")?.to_owned(),
        broker_id: id(f, "brokerId")?,
        broker_address: f.get_str("brokerAddress")?.to_owned(),
    })
}

fn alter_sync_state_set(f: &ExtFields) -> Result<AlterSyncStateSetRequest, HeaderError> {
    Ok(AlterSyncStateSetRequest {
        broker_name: f.get_str("brokerName")?.to_owned(),
        master_broker_id: id(f, "masterBrokerId")?,
        master_epoch: f.get_i32("masterEpoch")?,
    })
}

fn elect_master(f: &ExtFields) -> Result<ElectMasterRequest, HeaderError> {
    let broker_id = f.opt_i64("brokerId")?.filter(|id| *id >= 0);
    Ok(ElectMasterRequest {
        cluster_name: f.opt_str("clusterName").unwrap_or_default().to_owned(),
        broker_name: f.get_str("brokerName")?.to_owned(),
        broker_id: broker_id.map(|id| id as u64),
        designate_elect: f.opt_bool("designateElect")?.unwrap_or(false),
    })
}

fn clean_broker_data(f: &ExtFields) -> Result<CleanBrokerDataRequest, HeaderError> {
    Ok(CleanBrokerDataRequest {
        cluster_name: f.opt_str("clusterName").map(str::to_owned),
        broker_name: f.get_str("brokerName")?.to_owned(),
        broker_controller_ids_to_clean: f.opt_str("brokerControllerIdsToClean").map(str::to_owned),
        clean_living_broker: f.opt_bool("isCleanLivingBroker")?.unwrap_or(false),
    })
}

/// A response header's fields as `extFields`.
trait ResponseHeader {
    fn put(&self, cmd: &mut RemotingCommand);
}

fn put_opt<T: ToString>(cmd: &mut RemotingCommand, key: &str, v: Option<&T>) {
    if let Some(v) = v {
        cmd.ext_fields.insert(key, v.to_string());
    }
}

impl ResponseHeader for () {
    fn put(&self, _: &mut RemotingCommand) {}
}

impl ResponseHeader for GetNextBrokerIdResponse {
    fn put(&self, cmd: &mut RemotingCommand) {
        cmd.ext_fields.insert("clusterName", &self.cluster_name);
        cmd.ext_fields.insert("brokerName", &self.broker_name);
        cmd.ext_fields.insert("nextBrokerId", self.next_broker_id);
    }
}

impl ResponseHeader for ApplyBrokerIdResponse {
    fn put(&self, cmd: &mut RemotingCommand) {
        cmd.ext_fields.insert("clusterName", &self.cluster_name);
        cmd.ext_fields.insert("brokerName", &self.broker_name);
    }
}

impl ResponseHeader for RegisterBrokerResponse {
    fn put(&self, cmd: &mut RemotingCommand) {
        cmd.ext_fields.insert("clusterName", &self.cluster_name);
        cmd.ext_fields.insert("brokerName", &self.broker_name);
        put_opt(cmd, "masterBrokerId", self.master_broker_id.as_ref());
        put_opt(cmd, "masterAddress", self.master_address.as_ref());
        put_opt(cmd, "masterEpoch", self.master_epoch.as_ref());
        put_opt(cmd, "syncStateSetEpoch", self.sync_state_set_epoch.as_ref());
    }
}

impl ResponseHeader for AlterSyncStateSetResponse {
    fn put(&self, cmd: &mut RemotingCommand) {
        cmd.ext_fields
            .insert("newSyncStateSetEpoch", self.new_sync_state_set_epoch);
    }
}

impl ResponseHeader for ElectMasterResponse {
    fn put(&self, cmd: &mut RemotingCommand) {
        put_opt(cmd, "masterBrokerId", self.master_broker_id.as_ref());
        put_opt(cmd, "masterAddress", self.master_address.as_ref());
        put_opt(cmd, "masterEpoch", self.master_epoch.as_ref());
        put_opt(cmd, "syncStateSetEpoch", self.sync_state_set_epoch.as_ref());
    }
}

impl ResponseHeader for GetReplicaInfoResponse {
    fn put(&self, cmd: &mut RemotingCommand) {
        put_opt(cmd, "masterBrokerId", self.master_broker_id.as_ref());
        put_opt(cmd, "masterAddress", self.master_address.as_ref());
        put_opt(cmd, "masterEpoch", self.master_epoch.as_ref());
    }
}

/// A [`ControllerResult`] as a response (header, JSON body, remark) and its
/// events. The header and body go out whatever the code, as RocketMQ's
/// `ControllerResult` does.
fn decided<H: ResponseHeader, B: Serialize>(r: ControllerResult<H, B>) -> Decided {
    let mut cmd = RemotingCommand::response(r.code, r.remark);
    r.response.put(&mut cmd);
    if let Some(body) = &r.body {
        cmd.body = serde_json::to_vec(body).expect("controller bodies serialize to JSON");
    }
    (cmd, r.events)
}
