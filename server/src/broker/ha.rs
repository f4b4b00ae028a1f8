//! Master/slave replication for the broker: a master serves slaves on its HA
//! port (and SYNC_MASTER puts wait for them); a slave follows the master that
//! `haMasterAddress` names, or the one the name server reports at registration.

use ferromq_engine::sync::LockExt;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferromq_engine::{BrokerRole, MessageStore, StoreConfig};
use ferromq_replication::{
    AutoSwitch, EpochCache, HaConfig, HaMaster, HaSlave, SlaveInfo, SlaveStatus,
};

use super::config::ControllerModeConfig;

/// The broker's replication side.
pub struct HaRole {
    master: Mutex<Option<HaMaster>>,
    slave: Mutex<Option<HaSlave>>,
    /// `haServerAddr` this broker registers (`brokerIP2:haPort`).
    advertised: Mutex<String>,
    /// Controller mode: the role changes at run time.
    controlled: Option<Controlled>,
    /// Set from the config: name-server reports must not override it.
    fixed_master: bool,
    fixed_address: Option<String>,
    learned_master: Mutex<Option<String>>,
}

/// What a controller-mode broker needs to start either side later.
struct Controlled {
    /// Where the HA port binds (the port: configured, or 0 before the first
    /// bind, then the one the OS chose, so it stays the same).
    bind: Mutex<SocketAddr>,
    advertise_ip: String,
    /// HA settings without the epoch part (added per role).
    base: HaConfig,
    epochs: Arc<EpochCache>,
    /// This broker's controller id, once a role was taken.
    my_id: Mutex<u64>,
    all_ack_in_sync_state_set: bool,
    min_in_sync_replicas: usize,
}

impl Controlled {
    fn ha_config(&self, broker_id: u64) -> HaConfig {
        let mut c = self.base.clone();
        let mut a = AutoSwitch::new(self.epochs.clone(), broker_id);
        a.all_ack_in_sync_state_set = self.all_ack_in_sync_state_set;
        a.min_in_sync_replicas = self.min_in_sync_replicas;
        c.auto_switch = Some(a);
        c
    }
}

impl std::fmt::Debug for HaRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HaRole")
            .field("advertised", &*self.advertised.locked())
            .finish()
    }
}

/// The HA port of a master: `haListenPort`, else `listenPort + 1`, else
/// (listenPort chosen by the OS) one the OS chooses.
fn ha_port(cfg: &StoreConfig, configured_listen_port: u16) -> u16 {
    if cfg.ha_listen_port != 0 {
        cfg.ha_listen_port
    } else if configured_listen_port == 0 {
        0
    } else {
        configured_listen_port.wrapping_add(1)
    }
}

impl HaRole {
    /// `fixed`: `haMasterAddress`, which name-server reports do not override.
    fn new(
        master: Option<HaMaster>,
        slave: Option<HaSlave>,
        advertised: String,
        controlled: Option<Controlled>,
        fixed: Option<String>,
    ) -> HaRole {
        HaRole {
            master: Mutex::new(master),
            slave: Mutex::new(slave),
            advertised: Mutex::new(advertised),
            controlled,
            fixed_master: fixed.is_some(),
            fixed_address: fixed,
            learned_master: Mutex::new(None),
        }
    }

    /// Start the master or slave side for `store`. `bind_ip` is the address the
    /// broker listens on; `configured_listen_port` is `listenPort` as configured
    /// (0: the OS chose the port, so the HA port is chosen by the OS too).
    /// `auth`: the authenticated handshake (ACL on), or `None`; `tls`: TLS
    /// on the HA connection (the broker's TLS settings).
    pub fn start(
        store: &Arc<MessageStore>,
        cfg: &StoreConfig,
        bind_ip: std::net::IpAddr,
        configured_listen_port: u16,
        advertise_ip: &str,
        auth: Option<Arc<dyn ferromq_replication::HaAuth>>,
        tls: ferromq_replication::HaTls,
    ) -> Result<HaRole, String> {
        let mut ha_cfg = HaConfig::from_store_config(cfg);
        ha_cfg.auth = auth;
        ha_cfg.tls = tls;
        match cfg.broker_role {
            BrokerRole::Slave => {
                let fixed = cfg.ha_master_address.clone();
                let slave =
                    HaSlave::start(store.clone(), fixed.clone().unwrap_or_default(), ha_cfg)
                        .map_err(|e| format!("cannot start the HA slave: {e}"))?;
                Ok(HaRole::new(None, Some(slave), String::new(), None, fixed))
            }
            BrokerRole::AsyncMaster | BrokerRole::SyncMaster => {
                let port = ha_port(cfg, configured_listen_port);
                let master = HaMaster::start(store.clone(), SocketAddr::new(bind_ip, port), ha_cfg)
                    .map_err(|e| format!("cannot start the HA master: {e}"))?;
                if cfg.broker_role == BrokerRole::SyncMaster {
                    store.set_replica_waiter(Some(master.waiter()));
                }
                let advertised = format!("{advertise_ip}:{}", master.local_addr().port());
                Ok(HaRole::new(Some(master), None, advertised, None, None))
            }
        }
    }

    /// Replication for a broker in controller mode: nothing runs until the
    /// controller gives a role ([`HaRole::become_master`],
    /// [`HaRole::become_slave`]). The epoch file is opened here.
    ///
    /// # Errors
    /// A message when the epoch file is damaged or cannot be read.
    #[allow(clippy::too_many_arguments)]
    pub fn start_controlled(
        cfg: &StoreConfig,
        mode: &ControllerModeConfig,
        bind_ip: std::net::IpAddr,
        configured_listen_port: u16,
        advertise_ip: &str,
        auth: Option<Arc<dyn ferromq_replication::HaAuth>>,
        tls: ferromq_replication::HaTls,
    ) -> Result<HaRole, String> {
        let mut base = HaConfig::from_store_config(cfg);
        base.auth = auth;
        base.tls = tls;
        let epochs = EpochCache::open(&mode.epoch_file_path).map_err(|e| {
            format!(
                "cannot open the epoch file {} (storePathEpochFile): {e}",
                mode.epoch_file_path.display()
            )
        })?;
        let controlled = Controlled {
            bind: Mutex::new(SocketAddr::new(
                bind_ip,
                ha_port(cfg, configured_listen_port),
            )),
            advertise_ip: advertise_ip.to_owned(),
            base,
            epochs,
            my_id: Mutex::new(0),
            all_ack_in_sync_state_set: mode.all_ack_in_sync_state_set,
            min_in_sync_replicas: mode.min_in_sync_replicas as usize,
        };
        Ok(HaRole::new(
            None,
            None,
            String::new(),
            Some(controlled),
            None,
        ))
    }

    /// Controller mode: make this broker the master at `epoch` (RocketMQ's
    /// `changeToMaster`): stop following, record `(epoch, log end)` in the
    /// epoch file, serve slaves on the HA port with SYNC puts acknowledged
    /// by the SyncStateSet `set`, then let the store take puts.
    ///
    /// # Errors
    /// A message when not in controller mode, the epoch file cannot be
    /// written, the HA port cannot be bound or the store refuses the role.
    pub fn become_master(
        &self,
        store: &Arc<MessageStore>,
        epoch: i32,
        my_id: u64,
        set: &BTreeSet<u64>,
    ) -> Result<(), String> {
        let c = self.controlled.as_ref().ok_or("not in controller mode")?;
        *c.my_id.locked() = my_id;
        if let Some(s) = self.slave.locked().take() {
            s.shutdown();
        }
        let epoch = u32::try_from(epoch).map_err(|_| format!("bad master epoch {epoch}"))?;
        c.epochs
            .become_master(epoch, store.commit_log_max_offset())
            .map_err(|e| format!("cannot write the epoch file: {e}"))?;
        let mut master = self.master.locked();
        if master.is_none() {
            let bind = *c.bind.locked();
            let m = HaMaster::start(store.clone(), bind, c.ha_config(my_id))
                .map_err(|e| format!("cannot start the HA master on {bind}: {e}"))?;
            *c.bind.locked() = SocketAddr::new(bind.ip(), m.local_addr().port());
            *self.advertised.locked() = format!("{}:{}", c.advertise_ip, m.local_addr().port());
            store.set_replica_waiter(Some(m.waiter()));
            *master = Some(m);
        }
        if let Some(m) = master.as_ref() {
            m.set_sync_state_set(set.clone(), my_id);
            m.set_fenced(false);
        }
        drop(master);
        store
            .change_role(BrokerRole::SyncMaster)
            .map_err(|e| format!("the store refused the master role: {e}"))?;
        Ok(())
    }

    /// Controller mode: make this broker a slave (RocketMQ's
    /// `changeToSlave`): a master first fails its waiting SYNC puts and
    /// stops taking puts, then closes its HA port; the slave side starts
    /// and follows the master named by [`HaRole::follow`], cutting a tail
    /// the master does not have.
    ///
    /// # Errors
    /// A message when not in controller mode, the store refuses the role or
    /// the slave cannot start.
    pub fn become_slave(&self, store: &Arc<MessageStore>, my_id: u64) -> Result<(), String> {
        let c = self.controlled.as_ref().ok_or("not in controller mode")?;
        *c.my_id.locked() = my_id;
        let old = self.master.locked().take();
        if let Some(m) = &old {
            m.set_fenced(true);
        }
        store
            .change_role(BrokerRole::Slave)
            .map_err(|e| format!("the store refused the slave role: {e}"))?;
        if let Some(m) = old {
            m.shutdown();
            store.set_replica_waiter(None);
            self.advertised.locked().clear();
        }
        // A slave shows what it has copied (it is cut to the new master's
        // history before it copies more).
        store.set_confirm_offset(None);
        let mut slave = self.slave.locked();
        if let Some(s) = slave.take() {
            // A new master: a new session with its handshake.
            s.shutdown();
        }
        *self.learned_master.locked() = None;
        *slave = Some(
            HaSlave::start(store.clone(), String::new(), c.ha_config(my_id))
                .map_err(|e| format!("cannot start the HA slave: {e}"))?,
        );
        Ok(())
    }

    /// Controller mode: follow the master whose HA port is `ha_addr`.
    pub fn follow(&self, ha_addr: &str) {
        if let Some(s) = self.slave.locked().as_ref() {
            let mut learned = self.learned_master.locked();
            if learned.as_deref() != Some(ha_addr) {
                tracing::info!(
                    master = ha_addr,
                    "following the master the controller named"
                );
                *learned = Some(ha_addr.to_owned());
                s.set_master_address(ha_addr.to_owned());
            }
        }
    }

    /// Controller mode: the SyncStateSet a master's SYNC puts wait for.
    pub fn set_sync_state_set(&self, set: &BTreeSet<u64>) {
        if let (Some(m), Some(c)) = (self.master.locked().as_ref(), &self.controlled) {
            m.set_sync_state_set(set.clone(), *c.my_id.locked());
        }
    }

    /// Controller mode: a fenced master fails its SYNC puts.
    pub fn set_fenced(&self, fenced: bool) {
        if let Some(m) = self.master.locked().as_ref() {
            m.set_fenced(fenced);
        }
    }

    /// Controller mode: the slaves (by broker id) that were caught up with
    /// this master within `within`.
    pub fn caught_up_slaves(&self, within: Duration) -> BTreeSet<u64> {
        let Some(m) = self.master.locked().as_ref().map(HaMaster::slaves) else {
            return BTreeSet::new();
        };
        m.into_iter()
            .filter(|s| s.last_caught_up.is_some_and(|t| t.elapsed() <= within))
            .filter_map(|s| s.broker_id)
            .collect()
    }

    /// The epoch file (controller mode).
    pub fn epochs(&self) -> Option<&Arc<EpochCache>> {
        self.controlled.as_ref().map(|c| &c.epochs)
    }

    /// The `haServerAddr` to register (empty on a slave).
    pub fn advertised(&self) -> String {
        self.advertised.locked().clone()
    }

    /// The HA port a master listens on.
    pub fn master_port(&self) -> Option<u16> {
        self.master.locked().as_ref().map(|m| m.local_addr().port())
    }

    /// A name server told this slave where its master's HA port is.
    pub fn on_master_learned(&self, ha_server_addr: &str) {
        let slave = self.slave.locked();
        let Some(slave) = slave.as_ref() else { return };
        if self.fixed_master || ha_server_addr.len() < 6 {
            return;
        }
        let mut learned = self.learned_master.locked();
        if learned.as_deref() != Some(ha_server_addr) {
            tracing::info!(
                master = ha_server_addr,
                "following the master the name server reported"
            );
            *learned = Some(ha_server_addr.to_string());
            slave.set_master_address(ha_server_addr.to_string());
        }
    }

    /// The master HA address a slave follows (configured or learned).
    pub fn master_address(&self) -> Option<String> {
        self.slave.locked().as_ref()?;
        if self.fixed_master {
            return self.fixed_address.clone();
        }
        self.learned_master.locked().clone()
    }

    /// Slaves of a master, with their lag.
    pub fn slaves(&self) -> Vec<SlaveInfo> {
        self.master
            .locked()
            .as_ref()
            .map(|m| m.slaves())
            .unwrap_or_default()
    }

    /// A slave's connection status.
    pub fn slave_status(&self) -> Option<SlaveStatus> {
        self.slave.locked().as_ref().map(|s| s.status())
    }

    /// Stop replicating (before the store shuts down).
    pub fn shutdown(&self) {
        if let Some(m) = self.master.locked().as_ref() {
            m.shutdown();
        }
        if let Some(s) = self.slave.locked().as_ref() {
            s.shutdown();
        }
    }
}
