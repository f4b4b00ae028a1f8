//! Controller mode (RocketMQ 5's `ReplicasManager`, RIP-44): the
//! controllers, not the properties file, decide this broker's id and role.
//!
//! * **Id.** The broker's controller id is kept in `storePathBrokerIdentity`
//!   (`cluster#group#id`, RocketMQ's `BrokerMetadata`). A broker without one
//!   asks for the next id (`CONTROLLER_GET_NEXT_BROKER_ID`), writes it with
//!   a check code to `<file>-temp`, applies for it
//!   (`CONTROLLER_APPLY_BROKER_ID`) and only then writes the file, so a crash
//!   in between retries the same id with the same check code.
//! * **Registration.** `CONTROLLER_REGISTER_BROKER` names the group's
//!   master, if any; without one the broker asks to be elected
//!   (`CONTROLLER_ELECT_MASTER`, broker trigger).
//! * **Heartbeats** go to every controller each `brokerHeartbeatInterval`
//!   (the controllers' heartbeat tables are not replicated), with the
//!   broker's epoch, log end and `controllerHeartBeatTimeoutMills`.
//! * **Role.** Every `syncBrokerMetadataPeriod` the broker asks the leader
//!   for its group's master (`CONTROLLER_GET_REPLICA_INFO`). A newer master
//!   epoch naming this broker makes it the master: the store takes puts,
//!   the epoch file gets `(epoch, log end)`, the HA port serves the others.
//!   One naming another broker makes it that master's slave: the store stops
//!   taking puts, then follows the master, cutting any tail the master does
//!   not have. Until the first answer the store takes no puts and the name
//!   servers are not told of the broker.
//! * **SyncStateSet.** A master asks the controller to change the set
//!   (`CONTROLLER_ALTER_SYNC_STATE_SET`): a slave that has caught up joins
//!   at the next heartbeat tick; one that has not caught up within
//!   `haMaxTimeSlaveNotCatchup` leaves, asked at most every
//!   `checkSyncStateSetPeriod`.
//!   While a change is asked for, sends wait for the members of both the old
//!   and the new set, so the controller's set always holds every replica
//!   that acknowledged a send.
//! * **Fencing.** A master whose heartbeats have gone unanswered by every
//!   controller for `controllerHeartBeatTimeoutMills` stops acknowledging
//!   sends until the controller confirms it is still the master: by then
//!   the controllers may have elected another.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferromq_controller::request_code as rc;
use ferromq_controller::response_code as code;
use ferromq_controller::SyncStateSet;
use ferromq_engine::sync::LockExt;
use tokio::sync::watch;

use super::config::ControllerModeConfig;
use super::{Broker, HandlerResult, Request};
use crate::controller::client::call_leader;
use crate::remoting::{request, response, RemotingClient, RemotingCommand};

/// How long one controller request waits for its answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a heartbeat waits for its answer (RocketMQ's
/// `sendHeartbeatTimeoutMillis`).
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a leader-bound request keeps looking for the leader.
const LEADER_WAIT: Duration = Duration::from_secs(3);
/// Pause between two failed attempts to register with the controllers.
const REGISTER_RETRY: Duration = Duration::from_millis(500);

/// What this broker knows of its group, from the controller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicaView {
    /// The master's controller id.
    pub master_id: Option<u64>,
    /// The master's client address.
    pub master_addr: Option<String>,
    /// The master epoch the role below was taken at (0: none yet).
    pub master_epoch: i32,
    /// The SyncStateSet the master works with.
    pub sync_state_set: BTreeSet<u64>,
    /// Its epoch.
    pub sync_state_set_epoch: i32,
    /// This broker is the master.
    pub is_master: bool,
    /// The master's HA address, once learned (a slave).
    pub master_ha_addr: Option<String>,
}

/// The controller-mode side of a broker; see the [module](self) docs.
#[derive(Debug)]
pub struct ControllerMode {
    cfg: ControllerModeConfig,
    /// The controller-assigned id (0 until known: ids start at 1).
    id: AtomicU64,
    view: Mutex<ReplicaView>,
    /// Serializes role changes.
    role_lock: tokio::sync::Mutex<()>,
    /// The controller that last answered as leader.
    leader: Mutex<Option<String>>,
    clients: Mutex<HashMap<String, Arc<RemotingClient>>>,
    /// When a heartbeat was last answered by some controller.
    heartbeat_ok: Mutex<Option<Instant>>,
    /// The master stopped acknowledging sends (see the module docs).
    fenced: AtomicBool,
    /// The role was decided at least once.
    decided: AtomicBool,
    /// Wakes the replica-info sync early (a role change notice).
    sync_now: tokio::sync::Notify,
    /// When a master last asked to shrink its SyncStateSet.
    last_shrink: Mutex<Option<Instant>>,
}

impl ControllerMode {
    /// The controller-mode state for `cfg` (nothing is contacted yet).
    pub fn new(cfg: ControllerModeConfig) -> Self {
        ControllerMode {
            cfg,
            id: AtomicU64::new(0),
            view: Mutex::new(ReplicaView::default()),
            role_lock: tokio::sync::Mutex::new(()),
            leader: Mutex::new(None),
            clients: Mutex::new(HashMap::new()),
            heartbeat_ok: Mutex::new(None),
            fenced: AtomicBool::new(false),
            decided: AtomicBool::new(false),
            sync_now: tokio::sync::Notify::new(),
            last_shrink: Mutex::new(None),
        }
    }

    /// The controller-assigned id, once known.
    pub fn controller_id(&self) -> Option<u64> {
        match self.id.load(Ordering::Acquire) {
            0 => None,
            id => Some(id),
        }
    }

    /// What the broker knows of its group now.
    pub fn view(&self) -> ReplicaView {
        self.view.locked().clone()
    }

    /// Whether the role has been decided by the controller yet.
    pub fn decided(&self) -> bool {
        self.decided.load(Ordering::Acquire)
    }

    /// Whether this master stopped acknowledging sends.
    pub fn fenced(&self) -> bool {
        self.fenced.load(Ordering::Acquire)
    }

    /// The id to register with the name servers: 0 as the master, the
    /// controller id as a slave (RocketMQ 5), `None` while undecided.
    pub fn name_server_id(&self) -> Option<i64> {
        if !self.decided() {
            return None;
        }
        if self.view.locked().is_master {
            Some(0)
        } else {
            self.controller_id().map(|id| id as i64)
        }
    }

    fn client(&self, b: &Broker, addr: &str) -> Arc<RemotingClient> {
        self.clients
            .locked()
            .entry(addr.to_owned())
            .or_insert_with(|| Arc::new(b.outgoing_client(addr.to_owned())))
            .clone()
    }

    /// One request to the controller leader.
    async fn call_leader(
        &self,
        b: &Broker,
        req: RemotingCommand,
    ) -> Result<RemotingCommand, String> {
        let first = self.leader.locked().clone();
        let (addr, r) = call_leader(
            &self.cfg.controller_addrs,
            first,
            &req,
            LEADER_WAIT,
            |a, r| {
                let c = self.client(b, &a);
                async move { c.invoke(r, CALL_TIMEOUT).await.map_err(|e| e.to_string()) }
            },
        )
        .await?;
        *self.leader.locked() = Some(addr);
        Ok(r)
    }
}

/// `cluster#group#id` (RocketMQ's `BrokerMetadata`), or with `#checkCode`
/// (its `TempBrokerMetadata`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Identity {
    cluster: String,
    group: String,
    id: u64,
    check_code: Option<String>,
}

impl Identity {
    fn encode(&self) -> String {
        let mut s = format!("{}#{}#{}", self.cluster, self.group, self.id);
        if let Some(c) = &self.check_code {
            s.push('#');
            s.push_str(c);
        }
        s
    }

    fn read(path: &Path) -> Result<Option<Identity>, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let text = text.trim();
        if text.is_empty() {
            return Ok(None);
        }
        let parts: Vec<&str> = text.splitn(4, '#').collect();
        let bad = || {
            format!(
                "{} is damaged: expected cluster#brokerName#brokerId, found {text:?}",
                path.display()
            )
        };
        if parts.len() < 3 {
            return Err(bad());
        }
        let id = parts[2].parse::<u64>().map_err(|_| bad())?;
        if id == 0 {
            return Err(bad());
        }
        Ok(Some(Identity {
            cluster: parts[0].to_owned(),
            group: parts[1].to_owned(),
            id,
            check_code: parts.get(3).map(|s| (*s).to_owned()),
        }))
    }

    fn write(&self, path: &Path) -> Result<(), String> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        crate::util::atomic_write(path, self.encode().as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    }
}

fn temp_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push("-temp");
    PathBuf::from(p)
}

fn header(b: &Broker, code: i32) -> RemotingCommand {
    RemotingCommand::request(code)
        .with_ext("clusterName", &b.cfg.broker_cluster_name)
        .with_ext("brokerName", &b.cfg.broker_name)
}

fn expect_ok(r: RemotingCommand, what: &str) -> Result<RemotingCommand, String> {
    if r.code == response::SUCCESS {
        Ok(r)
    } else {
        Err(format!(
            "{what}: code {}: {}",
            r.code,
            r.remark.as_deref().unwrap_or("").trim()
        ))
    }
}

/// The master a controller answer names: `(id, address, epoch)`.
fn master_of(r: &RemotingCommand) -> Option<(u64, String, i32)> {
    let f = &r.ext_fields;
    let id = f.opt_i64("masterBrokerId").ok().flatten()?;
    let addr = f.opt_str("masterAddress").filter(|a| !a.is_empty())?;
    let epoch = f.opt_i64("masterEpoch").ok().flatten()?;
    Some((
        u64::try_from(id).ok()?,
        addr.to_owned(),
        i32::try_from(epoch).ok()?,
    ))
}

/// The `syncStateSetEpoch` header of a controller answer (0 without one).
fn sync_state_set_epoch_of(r: &RemotingCommand) -> i32 {
    r.ext_fields
        .opt_i64("syncStateSetEpoch")
        .ok()
        .flatten()
        .and_then(|e| i32::try_from(e).ok())
        .unwrap_or(0)
}

/// The SyncStateSet of a body, if it has one.
fn sync_state_set_of(r: &RemotingCommand) -> Option<SyncStateSet> {
    if r.body.is_empty() {
        return None;
    }
    serde_json::from_slice::<SyncStateSet>(&r.body).ok()
}

impl Broker {
    fn controller_mode(&self) -> Option<&ControllerMode> {
        self.controller.as_ref()
    }

    /// NOTIFY_BROKER_ROLE_CHANGED from a controller: ask the leader for the
    /// group's master now. The notice's own content is not trusted (anyone
    /// can send one); what the leader answers is applied.
    pub(super) async fn role_change_notice(self: &Arc<Self>, req: Request<'_>) -> HandlerResult {
        let Some(cm) = self.controller_mode() else {
            return Ok(RemotingCommand::error(
                response::SYSTEM_ERROR,
                "this broker is not in controller mode (enableControllerMode=false)",
            ));
        };
        tracing::info!(
            peer = %req.conn.peer,
            master = req.cmd.ext_fields.opt_str("masterBrokerId").unwrap_or("-"),
            epoch = req.cmd.ext_fields.opt_str("masterEpoch").unwrap_or("-"),
            "controller mode: role change notice; asking the controller"
        );
        cm.sync_now.notify_one();
        Ok(RemotingCommand::success())
    }

    /// GET_BROKER_EPOCH_CACHE: this broker's epoch entries (RocketMQ 5's
    /// `EpochEntryCache`, the last entry ending at the log's end).
    pub(super) async fn broker_epoch_cache(self: &Arc<Self>, _req: Request<'_>) -> HandlerResult {
        let Some(epochs) = self.ha().and_then(|h| h.epochs().cloned()) else {
            return Ok(RemotingCommand::error(
                response::SYSTEM_ERROR,
                "no epoch entries: this broker is not in controller mode",
            ));
        };
        let max = self.store.commit_log_max_offset();
        let list: Vec<serde_json::Value> = epochs
            .entries()
            .iter()
            .map(|e| {
                serde_json::json!({
                    "epoch": e.epoch,
                    "startOffset": e.start_offset,
                    "endOffset": if e.end_offset == u64::MAX { max } else { e.end_offset },
                })
            })
            .collect();
        let id = self
            .controller_mode()
            .and_then(ControllerMode::controller_id)
            .unwrap_or_default();
        let body = serde_json::json!({
            "clusterName": self.cfg.broker_cluster_name,
            "brokerName": self.cfg.broker_name,
            "brokerId": id,
            "epochList": list,
            "maxOffset": max,
        });
        Ok(RemotingCommand::success().with_body(body.to_string().into_bytes()))
    }

    /// Step 1: the controller id, from the identity file or applied for.
    async fn ensure_controller_id(&self, cm: &ControllerMode) -> Result<u64, String> {
        let path = &cm.cfg.broker_identity_path;
        if let Some(idn) = Identity::read(path)? {
            if idn.cluster != self.cfg.broker_cluster_name || idn.group != self.cfg.broker_name {
                return Err(format!(
                    "{} names broker {}#{}, not this broker's {}#{}: remove it to join as a new replica",
                    path.display(),
                    idn.cluster,
                    idn.group,
                    self.cfg.broker_cluster_name,
                    self.cfg.broker_name
                ));
            }
            return Ok(idn.id);
        }
        let temp = temp_path(path);
        let pending = match Identity::read(&temp) {
            Ok(Some(t)) if t.check_code.is_some() => Some(t),
            _ => None,
        };
        let applying = match pending {
            Some(t) => t,
            None => {
                let r = expect_ok(
                    cm.call_leader(self, header(self, rc::CONTROLLER_GET_NEXT_BROKER_ID))
                        .await?,
                    "get next broker id",
                )?;
                let id = r
                    .ext_fields
                    .opt_i64("nextBrokerId")
                    .map_err(|e| e.to_string())?
                    .filter(|id| *id > 0)
                    .ok_or("get next broker id: no id in the answer")?;
                let t = Identity {
                    cluster: self.cfg.broker_cluster_name.clone(),
                    group: self.cfg.broker_name.clone(),
                    id: id as u64,
                    check_code: Some(format!("{};{}", self.broker_addr, crate::util::now_ms())),
                };
                t.write(&temp)?;
                t
            }
        };
        let req = header(self, rc::CONTROLLER_APPLY_BROKER_ID)
            .with_ext("appliedBrokerId", applying.id)
            .with_ext(
                "registerCheckCode",
                applying.check_code.clone().unwrap_or_default(),
            );
        let r = cm.call_leader(self, req).await?;
        if r.code != response::SUCCESS {
            // Taken by another replica meanwhile: start over with a new id.
            let _ = std::fs::remove_file(&temp);
            return Err(format!(
                "apply broker id {}: code {}: {}",
                applying.id,
                r.code,
                r.remark.unwrap_or_default()
            ));
        }
        let done = Identity {
            check_code: None,
            ..applying
        };
        done.write(path)?;
        let _ = std::fs::remove_file(&temp);
        tracing::info!(id = done.id, file = %path.display(), "controller mode: broker id applied");
        Ok(done.id)
    }

    /// Step 2: register the id and address; the answer's master, if any, is
    /// applied.
    async fn register_to_controller(&self, cm: &ControllerMode, id: u64) -> Result<(), String> {
        let req = header(self, rc::CONTROLLER_REGISTER_BROKER)
            .with_ext("brokerId", id)
            .with_ext("brokerAddress", &self.broker_addr);
        let r = expect_ok(
            cm.call_leader(self, req).await?,
            "register to the controller",
        )?;
        if let Some((mid, maddr, epoch)) = master_of(&r) {
            let set = sync_state_set_of(&r);
            self.apply_master(cm, mid, &maddr, epoch, set).await;
        }
        Ok(())
    }

    /// Heartbeat every listed controller (and the leader, when it was
    /// reached under an address not listed), each in a task of its own so a
    /// controller that is down or cut off delays nothing. An answer from the
    /// leader (from any, while the leader is not known) moves the time the
    /// fence counts from to when the heartbeat was sent.
    fn heartbeat_controllers(self: &Arc<Self>, id: u64) {
        let Some(cm) = self.controller_mode() else {
            return;
        };
        let view = cm.view();
        let req = header(self, rc::BROKER_HEARTBEAT)
            .with_ext("brokerAddr", &self.broker_addr)
            .with_ext("brokerId", id)
            .with_ext("epoch", view.master_epoch)
            .with_ext("maxOffset", self.store.commit_log_max_offset())
            .with_ext(
                "confirmOffset",
                self.store
                    .confirm_offset()
                    .unwrap_or_else(|| self.store.commit_log_max_offset()),
            )
            .with_ext(
                "heartbeatTimeoutMills",
                cm.cfg.controller_heartbeat_timeout_ms,
            )
            .with_ext("electionPriority", cm.cfg.election_priority);
        let leader = cm.leader.locked().clone();
        let mut targets = cm.cfg.controller_addrs.clone();
        let leader_listed = leader.as_ref().is_none_or(|l| targets.contains(l));
        if let (Some(l), false) = (&leader, leader_listed) {
            targets.push(l.clone());
        }
        let sent = Instant::now();
        for addr in targets {
            let counts = leader.as_ref().is_none_or(|l| *l == addr);
            let c = cm.client(self, &addr);
            let req = req.clone();
            let b = self.clone();
            tokio::spawn(async move {
                let ok = matches!(c.invoke(req, HEARTBEAT_TIMEOUT).await, Ok(r) if r.code == response::SUCCESS);
                if ok && counts {
                    if let Some(cm) = b.controller_mode() {
                        let mut last = cm.heartbeat_ok.locked();
                        if last.is_none_or(|t| t < sent) {
                            *last = Some(sent);
                        }
                    }
                }
            });
        }
    }

    /// Ask the leader for the group's master; apply a newer one, or ask to
    /// be elected when there is none.
    async fn sync_replica_info(&self, cm: &ControllerMode, id: u64) -> Result<(), String> {
        let r = cm
            .call_leader(
                self,
                RemotingCommand::request(rc::CONTROLLER_GET_REPLICA_INFO)
                    .with_ext("brokerName", &self.cfg.broker_name),
            )
            .await?;
        let r = expect_ok(r, "get replica info")?;
        let set = sync_state_set_of(&r);
        match master_of(&r) {
            Some((mid, maddr, epoch)) => {
                self.apply_master(cm, mid, &maddr, epoch, set).await;
                // Still the master at the epoch it holds: lift a fence.
                let v = cm.view();
                if v.is_master && mid == id && epoch == v.master_epoch && cm.fenced() {
                    tracing::info!(epoch, "controller mode: the controller confirms this master; acknowledging sends again");
                    cm.fenced.store(false, Ordering::Release);
                    if let Some(ha) = self.ha() {
                        ha.set_fenced(false);
                    }
                }
            }
            None => self.try_elect(cm, id).await?,
        }
        Ok(())
    }

    /// `CONTROLLER_ELECT_MASTER` (broker trigger): the group has no master.
    async fn try_elect(&self, cm: &ControllerMode, id: u64) -> Result<(), String> {
        let req = header(self, rc::CONTROLLER_ELECT_MASTER)
            .with_ext("brokerId", id)
            .with_ext("designateElect", false);
        let r = cm.call_leader(self, req).await?;
        if r.code != response::SUCCESS {
            tracing::debug!(code = r.code, remark = ?r.remark, "controller mode: no master elected yet");
            return Ok(());
        }
        if let Some((mid, maddr, epoch)) = master_of(&r) {
            // The elect answer's body holds the set; its epoch is a header.
            let set =
                serde_json::from_slice::<ferromq_controller::ElectMasterResponseBody>(&r.body)
                    .ok()
                    .map(|b| SyncStateSet {
                        sync_state_set: b.sync_state_set,
                        sync_state_set_epoch: sync_state_set_epoch_of(&r),
                    });
            self.apply_master(cm, mid, &maddr, epoch, set).await;
        }
        Ok(())
    }

    /// Take the role a controller answer gives (RocketMQ's
    /// `changeBrokerRole`): only a newer master epoch changes the role; the
    /// same epoch may bring a newer SyncStateSet.
    async fn apply_master(
        &self,
        cm: &ControllerMode,
        master_id: u64,
        master_addr: &str,
        epoch: i32,
        set: Option<SyncStateSet>,
    ) {
        let _serial = cm.role_lock.lock().await;
        let Some(my_id) = cm.controller_id() else {
            return;
        };
        let current = cm.view();
        if epoch < current.master_epoch {
            return;
        }
        if epoch == current.master_epoch && cm.decided() {
            // Same epoch: maybe a newer SyncStateSet for this master.
            if current.is_master {
                if let Some(s) =
                    set.filter(|s| s.sync_state_set_epoch > current.sync_state_set_epoch)
                {
                    self.adopt_sync_state_set(cm, s.sync_state_set, s.sync_state_set_epoch);
                }
            } else if current.master_ha_addr.is_none() {
                self.learn_master_ha(cm, master_addr).await;
            }
            return;
        }
        let result = if master_id == my_id {
            self.become_master(cm, epoch, set.unwrap_or_default()).await
        } else {
            self.become_slave(cm, master_id, master_addr, epoch).await
        };
        match result {
            Ok(()) => {
                cm.decided.store(true, Ordering::Release);
                // Tell the name servers at once (RocketMQ's registerBrokerWhenRoleChange).
                self.register_now.notify_one();
            }
            Err(e) => {
                tracing::error!(error = %e, epoch, master = master_id, "controller mode: cannot take the role the controller gave; retrying at the next sync");
            }
        }
    }

    async fn become_master(
        &self,
        cm: &ControllerMode,
        epoch: i32,
        set: SyncStateSet,
    ) -> Result<(), String> {
        let my_id = cm.controller_id().unwrap_or_default();
        let b = self.store.clone();
        let set2 = set.sync_state_set.clone();
        let ha_role = self.ha_handle().ok_or("replication is not started")?;
        tokio::task::spawn_blocking(move || ha_role.become_master(&b, epoch, my_id, &set2))
            .await
            .map_err(|e| format!("role change task failed: {e}"))??;
        {
            let mut v = cm.view.locked();
            *v = ReplicaView {
                master_id: Some(my_id),
                master_addr: Some(self.broker_addr.clone()),
                master_epoch: epoch,
                sync_state_set: set.sync_state_set,
                sync_state_set_epoch: set.sync_state_set_epoch,
                is_master: true,
                master_ha_addr: None,
            };
        }
        cm.fenced.store(false, Ordering::Release);
        // The leader just answered: the fence counts from now at the latest.
        cm.heartbeat_ok.locked().get_or_insert_with(Instant::now);
        *self.master_addr.locked() = None;
        tracing::info!(
            epoch,
            id = my_id,
            "controller mode: this broker is now the master"
        );
        Ok(())
    }

    async fn become_slave(
        &self,
        cm: &ControllerMode,
        master_id: u64,
        master_addr: &str,
        epoch: i32,
    ) -> Result<(), String> {
        let my_id = cm.controller_id().unwrap_or_default();
        let ha_role = self.ha_handle().ok_or("replication is not started")?;
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || ha_role.become_slave(&store, my_id))
            .await
            .map_err(|e| format!("role change task failed: {e}"))??;
        {
            let mut v = cm.view.locked();
            *v = ReplicaView {
                master_id: Some(master_id),
                master_addr: Some(master_addr.to_owned()),
                master_epoch: epoch,
                sync_state_set: BTreeSet::new(),
                sync_state_set_epoch: 0,
                is_master: false,
                master_ha_addr: None,
            };
        }
        // A slave copies the master's configs (offsets, topics, delay offsets).
        *self.master_addr.locked() = Some(master_addr.to_owned());
        tracing::info!(
            epoch,
            master = master_id,
            master_addr,
            "controller mode: this broker is now a slave"
        );
        self.learn_master_ha(cm, master_addr).await;
        Ok(())
    }

    /// Ask the master for its HA address (runtime info `haServerAddr`) and
    /// follow it.
    async fn learn_master_ha(&self, cm: &ControllerMode, master_addr: &str) {
        let c = cm.client(self, master_addr);
        let r = c
            .invoke(
                RemotingCommand::request(request::GET_BROKER_RUNTIME_INFO),
                CALL_TIMEOUT,
            )
            .await;
        let ha_addr = match r {
            Ok(r) if r.code == response::SUCCESS => runtime_value(&r.body, "haServerAddr"),
            _ => None,
        };
        let Some(ha_addr) = ha_addr.filter(|a| !a.is_empty()) else {
            tracing::debug!(
                master_addr,
                "controller mode: the master does not serve HA yet"
            );
            return;
        };
        if let Some(ha) = self.ha() {
            ha.follow(&ha_addr);
        }
        cm.view.locked().master_ha_addr = Some(ha_addr);
    }

    fn adopt_sync_state_set(&self, cm: &ControllerMode, set: BTreeSet<u64>, epoch: i32) {
        if let Some(ha) = self.ha() {
            ha.set_sync_state_set(&set);
        }
        let mut v = cm.view.locked();
        tracing::info!(old = ?v.sync_state_set, new = ?set, epoch, "controller mode: SyncStateSet changed");
        v.sync_state_set = set;
        v.sync_state_set_epoch = epoch;
    }

    /// A master's check of its SyncStateSet (RocketMQ's
    /// `checkSyncStateSetAndDoReport`).
    async fn check_sync_state_set(&self, cm: &ControllerMode, id: u64) {
        // Role changes wait: a change applied meanwhile must not be undone
        // by this check's own set (or its revert below).
        let serial = cm.role_lock.lock().await;
        let v = cm.view();
        if !v.is_master || cm.fenced() {
            return;
        }
        let Some(ha) = self.ha() else { return };
        let within = Duration::from_millis(cm.cfg.ha_max_time_slave_not_catchup_ms);
        let mut wanted = ha.caught_up_slaves(within);
        wanted.insert(id);
        if wanted == v.sync_state_set {
            return;
        }
        // A slave that caught up joins at once (RocketMQ's
        // maybeExpandInSyncStateSet); a set that would lose a member is
        // asked for at most every checkSyncStateSetPeriod.
        if !wanted.is_superset(&v.sync_state_set) {
            let period = Duration::from_millis(cm.cfg.check_sync_state_set_period_ms);
            let mut last = cm.last_shrink.locked();
            if last.is_some_and(|t| t.elapsed() < period) {
                return;
            }
            *last = Some(Instant::now());
        }
        // Until the controller agrees, sends wait for both sets' members.
        let union: BTreeSet<u64> = wanted.union(&v.sync_state_set).copied().collect();
        ha.set_sync_state_set(&union);
        let body = SyncStateSet {
            sync_state_set: wanted.clone(),
            sync_state_set_epoch: v.sync_state_set_epoch,
        };
        let req = RemotingCommand::request(rc::CONTROLLER_ALTER_SYNC_STATE_SET)
            .with_ext("brokerName", &self.cfg.broker_name)
            .with_ext("masterBrokerId", id)
            .with_ext("masterEpoch", v.master_epoch)
            .with_body(serde_json::to_vec(&body).unwrap_or_default());
        match cm.call_leader(self, req).await {
            Ok(r) if r.code == response::SUCCESS => {
                let epoch = r
                    .ext_fields
                    .opt_i64("newSyncStateSetEpoch")
                    .ok()
                    .flatten()
                    .unwrap_or(i64::from(v.sync_state_set_epoch) + 1)
                    as i32;
                self.adopt_sync_state_set(cm, wanted, epoch);
            }
            other => {
                ha.set_sync_state_set(&v.sync_state_set);
                match other {
                    Ok(r) if r.code == code::CONTROLLER_FENCED_MASTER_EPOCH => {
                        tracing::warn!("controller mode: the controller has a newer master epoch; asking for it");
                        drop(serial);
                        let _ = self.sync_replica_info(cm, id).await;
                    }
                    Ok(r) => {
                        tracing::warn!(code = r.code, remark = ?r.remark, "controller mode: SyncStateSet change refused")
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "controller mode: SyncStateSet change failed")
                    }
                }
            }
        }
    }

    /// Drop the epoch entries whose bytes retention deleted (RocketMQ's
    /// `truncatePrefixByOffset`); the file is written only when one goes.
    fn trim_epochs(&self) {
        let Some(epochs) = self.ha().and_then(|h| h.epochs().cloned()) else {
            return;
        };
        let min = self.store.commit_log_min_offset();
        let entries = epochs.entries();
        if entries.len() > 1 && entries[0].end_offset <= min {
            if let Err(e) = epochs.truncate_prefix(min) {
                tracing::warn!(error = %e, "controller mode: cannot trim the epoch file");
            }
        }
    }

    /// A master with no answered heartbeat for the timeout stops acknowledging.
    fn check_fence(&self, cm: &ControllerMode) {
        if !cm.view.locked().is_master || cm.fenced() {
            return;
        }
        let timeout = Duration::from_millis(cm.cfg.controller_heartbeat_timeout_ms);
        let last = *cm.heartbeat_ok.locked();
        if last.is_some_and(|t| t.elapsed() < timeout) {
            return;
        }
        tracing::warn!(
            timeout_ms = cm.cfg.controller_heartbeat_timeout_ms,
            "controller mode: no controller has answered a heartbeat within controllerHeartBeatTimeoutMills; \
             this master stops acknowledging sends until the controller confirms it"
        );
        cm.fenced.store(true, Ordering::Release);
        if let Some(ha) = self.ha() {
            ha.set_fenced(true);
        }
    }
}

/// One value of a runtime-info body (`{"table":{"k":"v",...}}`).
fn runtime_value(body: &[u8], key: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v.get("table")?.get(key)?.as_str().map(str::to_owned)
}

/// Run controller mode until `stop`: id, registration, then heartbeats
/// (with the fence check), replica-info syncs and (as master) SyncStateSet
/// checks, each on a task of its own so a controller that does not answer
/// delays none of the others.
pub(super) async fn run(b: Arc<Broker>, mut stop: watch::Receiver<bool>) {
    let Some(cm) = b.controller_mode() else {
        return;
    };
    // Id and registration, retried until they succeed.
    let id = loop {
        if *stop.borrow() {
            return;
        }
        match b.ensure_controller_id(cm).await {
            Ok(id) => {
                cm.id.store(id, Ordering::Release);
                match b.register_to_controller(cm, id).await {
                    Ok(()) => break id,
                    Err(e) => {
                        tracing::warn!(error = %e, "controller mode: registration failed; retrying")
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "controller mode: no broker id yet; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(REGISTER_RETRY) => {}
            _ = stop.changed() => return,
        }
    };
    b.heartbeat_controllers(id);
    if !cm.decided() {
        if let Err(e) = b.try_elect(cm, id).await {
            tracing::warn!(error = %e, "controller mode: election request failed");
        }
    }
    let ms = Duration::from_millis;
    let heartbeats = every_or_woken(
        b.clone(),
        stop.clone(),
        ms(cm.cfg.heartbeat_interval_ms),
        false,
        move |b| async move {
            b.heartbeat_controllers(id);
            if let Some(cm) = b.controller_mode() {
                b.check_fence(cm);
                // A slave that has not learned its master's HA port yet.
                let v = cm.view();
                if cm.decided() && !v.is_master && v.master_ha_addr.is_none() {
                    if let Some(addr) = v.master_addr {
                        b.learn_master_ha(cm, &addr).await;
                    }
                }
            }
        },
    );
    let sync = every_or_woken(
        b.clone(),
        stop.clone(),
        ms(cm.cfg.sync_broker_metadata_period_ms),
        true,
        move |b| async move {
            if let Some(cm) = b.controller_mode() {
                if let Err(e) = b.sync_replica_info(cm, id).await {
                    tracing::warn!(error = %e, "controller mode: replica info sync failed");
                }
                b.trim_epochs();
            }
        },
    );
    let check = every_or_woken(
        b.clone(),
        stop.clone(),
        // Expansions are checked every heartbeat; shrinks every period.
        ms(cm
            .cfg
            .check_sync_state_set_period_ms
            .min(cm.cfg.heartbeat_interval_ms)),
        false,
        move |b| async move {
            if let Some(cm) = b.controller_mode() {
                b.check_sync_state_set(cm, id).await;
            }
        },
    );
    let _ = stop.changed().await;
    for t in [heartbeats, sync, check] {
        let _ = t.await;
    }
}

/// Run `f` every `period` until `stop` (a run in progress finishes first),
/// and at once when `woken` and a role change notice came.
fn every_or_woken<F, Fut>(
    b: Arc<Broker>,
    mut stop: watch::Receiver<bool>,
    period: Duration,
    woken: bool,
    f: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn(Arc<Broker>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let notice = async {
                match b.controller_mode() {
                    Some(cm) if woken => cm.sync_now.notified().await,
                    _ => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tick.tick() => {}
                _ = notice => {}
                _ = stop.changed() => break,
            }
            f(b.clone()).await;
        }
    })
}
