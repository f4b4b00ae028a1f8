//! The broker: RocketMQ's client-facing request processors on a [`MessageStore`].
//!
//! Sends run on a pool of `sendMessageThreadPoolNums` threads, pulls on one of
//! `pullMessageThreadPoolNums`, each with a bounded queue (full -> SYSTEM_BUSY).
//! Light requests (offsets, heartbeats) are answered on the network runtime;
//! nothing that can block on the disk runs there.
//!
//! A request goes through `dispatch.rs`, the one table of request code ->
//! handler -> executor, to its processor's file:
//!
//! | file | RocketMQ processor | requests |
//! |---|---|---|
//! | `send.rs`, `send_back.rs` | `SendMessageProcessor` | SEND_MESSAGE (V2, batch), CONSUMER_SEND_MSG_BACK |
//! | `pull.rs` (+ `hold.rs`) | `PullMessageProcessor` (+ `PullRequestHoldService`) | PULL_MESSAGE, LITE_PULL_MESSAGE |
//! | `consumer_manage.rs` | `ConsumerManageProcessor` | QUERY/UPDATE_CONSUMER_OFFSET, GET_CONSUMER_LIST_BY_GROUP |
//! | `client_manage.rs` | `ClientManageProcessor` | HEART_BEAT, UNREGISTER_CLIENT |
//! | `query.rs` | `QueryMessageProcessor` | QUERY_MESSAGE, VIEW_MESSAGE_BY_ID, offsets by time, min/max offsets |
//! | `admin.rs` | `AdminBrokerProcessor` | topics, runtime info, config, tables, queue locks |
//! | `acl_admin.rs` | `AdminBrokerProcessor` (ACL) | ACL accounts and white list, codes 50-54 |
//! | `transaction/` | `EndTransactionProcessor` | END_TRANSACTION, pending transactions |
//! | `ops_stats.rs` | `AdminBrokerProcessor` (read-only) | topic stats, connections, consume stats, stats items: 202-204, 208, 300, 315, 317, 328, 351, 46 |
//! | `assignment.rs` | `QueryAssignmentProcessor` (PULL only) | QUERY_ASSIGNMENT 400, SET_MESSAGE_REQUEST_MODE 401 |
//! | `stats.rs` | `BrokerStatsManager` | the message counters of the runtime info and per topic/group |
//!
//! Store errors become answers in `store_error.rs`.

mod acl_admin;
mod admin;
mod assignment;
mod call_client;
mod client_manage;
pub mod clients;
mod code_names;
pub mod config;
mod consumer_manage;
pub mod controller_mode;
pub(crate) mod dispatch;
pub mod ha;
pub mod histograms;
pub mod hold;
pub mod lock;
pub mod metrics;
pub mod names;
pub mod offsets;
pub mod ops_list;
pub mod ops_mut;
pub mod ops_stats;
pub mod pool;
mod pull;
pub mod query;
mod register;
pub mod reply;
mod send;
pub(crate) use send::uses_short_names as send_uses_short_names;
pub mod send_back;
mod slave_sync;
pub mod stats;
mod store_error;
pub mod subscription;
pub mod transaction;

use ferromq_engine::sync::LockExt;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ferromq_engine::MessageStore;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};

pub use clients::ClientManager;
pub use config::BrokerConfig;
pub(crate) use dispatch::{Executor, HandlerError, HandlerResult, Request};
pub use hold::PullHold;
pub use lock::RebalanceLockManager;
pub use offsets::ConsumerOffsetManager;
pub use pool::{BoundedPool, PoolBusy};
pub use stats::BrokerStats;
pub use store_error::{store_error_code, store_error_remark, store_error_response};
pub use subscription::SubscriptionGroupManager;

use crate::remoting::{response, serve, ConnInfo, Handler, RemotingCommand};

/// Remark of a SYSTEM_BUSY answer when a pool's queue is full.
pub const BUSY_REMARK: &str = "[OVERLOAD]system busy, start flow control for a while";

/// How long a producer or consumer may stay silent before it is forgotten.
const CLIENT_EXPIRY: Duration = Duration::from_secs(120);

/// A running broker's shared state.
#[derive(Debug)]
pub struct Broker {
    cfg: BrokerConfig,
    store: Arc<MessageStore>,
    broker_addr: String,
    offsets: ConsumerOffsetManager,
    clients: ClientManager,
    hold: Arc<PullHold>,
    send_pool: BoundedPool,
    /// Answers SYNC_FLUSH / SYNC_MASTER sends once their wait is over.
    put_waiter: send::PutWaiter,
    pull_pool: BoundedPool,
    groups: SubscriptionGroupManager,
    locks: RebalanceLockManager,
    /// TLS for the broker's own calls (name servers, its master), set once
    /// at start ([`Broker::use_tls_for_outgoing`]); unset: plain.
    outgoing_tls: std::sync::OnceLock<crate::remoting::tls::TlsClient>,
    stats: BrokerStats,
    register_now: Notify,
    stopping: AtomicBool,
    next_queue: AtomicU32,
    /// Replication, once started (see [`Broker::start_ha`]).
    ha: std::sync::OnceLock<Arc<ha::HaRole>>,
    /// Controller mode (`enableControllerMode=true`), else `None`.
    controller: Option<controller_mode::ControllerMode>,
    /// A slave's master (client address), from the name servers' answers.
    master_addr: std::sync::Mutex<Option<String>>,
    /// What the slave copied from its master, and when.
    slave_sync: slave_sync::SyncState,
    /// Decided transactions.
    txn: transaction::TransactionBook,
    /// The plain ACL rules when `aclEnable=true`: every client request is
    /// checked in `dispatch.rs` before its handler runs; reloaded when the
    /// files change and edited by the ACL admin requests (`acl_admin.rs`).
    acl: Option<Arc<crate::acl::AclLive>>,
    /// What the broker signs its own requests with
    /// ([`BrokerConfig::credentials`], else the ACL's first admin account).
    credentials: Option<crate::acl::Credentials>,
    /// The settings UPDATE_BROKER_CONFIG changes live (`ops_mut.rs`).
    live: ops_mut::LiveConfig,
    /// RocketMQ 5's histograms, once metrics are on
    /// ([`Broker::enable_histograms`]); unset, nothing is recorded.
    histograms: std::sync::OnceLock<histograms::BrokerHistograms>,
}

/// Why a broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The consumer offset file cannot be read.
    #[error("cannot load consumer offsets: {0}")]
    Offsets(std::io::Error),
    /// The subscription group file cannot be read.
    #[error("cannot load subscription groups: {0}")]
    Groups(std::io::Error),
    /// A pool thread cannot be spawned.
    #[error("cannot start thread pools: {0}")]
    Threads(std::io::Error),
    /// `aclEnable=true` but no rules were given (see
    /// [`crate::acl::load_broker_rules`]): the broker would be open.
    #[error("aclEnable=true but no ACL rules were loaded")]
    AclNotLoaded,
}

impl Broker {
    /// Build the broker around an open store. `broker_addr` is the `ip:port`
    /// advertised to name servers and clients. `acl`: the rules to check
    /// every client request against, required when `cfg.acl_enable` (load
    /// them with [`crate::acl::load_broker_rules`]) and ignored otherwise.
    ///
    /// # Errors
    /// [`StartError`] when the offsets file is damaged, threads cannot start,
    /// or `aclEnable=true` comes without rules.
    pub fn new(
        cfg: BrokerConfig,
        store: Arc<MessageStore>,
        broker_addr: String,
        acl: Option<crate::acl::AclLive>,
    ) -> Result<Arc<Broker>, StartError> {
        if cfg.acl_enable && acl.is_none() {
            return Err(StartError::AclNotLoaded);
        }
        let acl = acl.filter(|_| cfg.acl_enable).map(Arc::new);
        let credentials = cfg.credentials.clone().or_else(|| {
            acl.as_ref()
                .and_then(|live| live.with_rules(crate::acl::AclRules::first_admin))
        });
        let offsets = ConsumerOffsetManager::load(&store.config().config_dir())
            .map_err(StartError::Offsets)?;
        let groups = SubscriptionGroupManager::load(
            &store.config().config_dir(),
            cfg.auto_create_subscription_group,
        )
        .map_err(StartError::Groups)?;
        let send_pool = BoundedPool::new(
            "SendMessageThread",
            cfg.send_message_thread_pool_nums,
            cfg.send_thread_pool_queue_capacity,
        )
        .map_err(StartError::Threads)?;
        let pull_pool = BoundedPool::new(
            "PullMessageThread",
            cfg.pull_message_thread_pool_nums,
            cfg.pull_thread_pool_queue_capacity,
        )
        .map_err(StartError::Threads)?;
        let hold = Arc::new(PullHold::new(cfg.long_polling_max_parked_per_connection));
        let listener_hold = hold.clone();
        store.set_message_arrival_listener(Some(Arc::new(move |topic, queue_id, max| {
            listener_hold.notify(topic, queue_id, max)
        })));
        let put_waiter = send::PutWaiter::start(store.clone()).map_err(StartError::Threads)?;
        let live = ops_mut::LiveConfig::new(&cfg);
        let controller = cfg
            .controller_mode
            .clone()
            .map(controller_mode::ControllerMode::new);
        Ok(Arc::new(Broker {
            live,
            cfg,
            put_waiter,
            store,
            broker_addr,
            offsets,
            clients: ClientManager::new(),
            hold,
            send_pool,
            pull_pool,
            groups,
            locks: RebalanceLockManager::new(),
            outgoing_tls: std::sync::OnceLock::new(),
            stats: BrokerStats::default(),
            register_now: Notify::new(),
            stopping: AtomicBool::new(false),
            next_queue: AtomicU32::new(0),
            ha: std::sync::OnceLock::new(),
            controller,
            master_addr: std::sync::Mutex::new(None),
            slave_sync: slave_sync::SyncState::default(),
            txn: transaction::TransactionBook::new(),
            acl,
            credentials,
            histograms: std::sync::OnceLock::new(),
        }))
    }

    /// The broker settings.
    pub fn config(&self) -> &BrokerConfig {
        &self.cfg
    }

    /// The store.
    pub fn store(&self) -> &Arc<MessageStore> {
        &self.store
    }

    /// `ip:port` advertised to clients.
    pub fn broker_addr(&self) -> &str {
        &self.broker_addr
    }

    /// Start recording `rocketmq_message_size` and `rocketmq_rpc_latency`
    /// ([`histograms`]); [`metrics::BrokerCollector::new`] calls it, so a
    /// broker without metrics records nothing. A second call changes nothing.
    pub fn enable_histograms(&self) {
        self.histograms.get_or_init(|| {
            histograms::BrokerHistograms::new(&self.cfg.broker_cluster_name, &self.cfg.broker_name)
        });
    }

    /// The histograms, when recording ([`Broker::enable_histograms`]).
    pub fn histograms(&self) -> Option<&histograms::BrokerHistograms> {
        self.histograms.get()
    }

    /// Consumer offsets.
    pub fn offsets(&self) -> &ConsumerOffsetManager {
        &self.offsets
    }

    /// Subscription groups.
    pub fn subscription_groups(&self) -> &SubscriptionGroupManager {
        &self.groups
    }

    /// Answer one request (through the table in `dispatch.rs`); a pull held
    /// until its connection closed is answered PULL_NOT_FOUND here.
    pub async fn process(
        self: Arc<Self>,
        conn: Arc<ConnInfo>,
        req: RemotingCommand,
    ) -> RemotingCommand {
        self.dispatch(&conn, req)
            .await
            .unwrap_or_else(|| RemotingCommand::response(response::PULL_NOT_FOUND, None))
    }

    /// Once many held pulls are gone (their connections closed, or they were
    /// answered), give the memory they took back to the OS: their requests'
    /// allocations are freed but glibc keeps them otherwise. Counted by pull
    /// requests that may park still in progress (a held pull's task ends a
    /// little after it leaves the hold); `t` keeps that count's high mark
    /// since the last release, and when that release was.
    ///
    /// `malloc_trim` walks the whole heap under glibc's arena locks, stalling
    /// allocations on a large heap for a while: it runs off the runtime
    /// (`spawn_blocking`), once the count has stopped falling (one trim per
    /// wave of ended pulls, after the wave), and at most once per
    /// [`MemoryTrim::MIN_INTERVAL`] (a drop meanwhile keeps its high mark and
    /// is handled when it is due).
    async fn return_memory_of_held_pulls(&self, t: &mut MemoryTrim) {
        let now = self.hold.active();
        if !t.due(now, std::time::Instant::now()) {
            return;
        }
        let _ = tokio::task::spawn_blocking(ferromq_engine::sys::release_free_memory).await;
        t.released(now, std::time::Instant::now());
    }

    /// Write the subscription groups now if a change waits (off the runtime).
    async fn persist_groups(self: &Arc<Self>) {
        self.persist("subscriptionGroup.json", "group", |b| b.groups.flush())
            .await;
    }

    /// Persist the consumer offsets (off the runtime).
    async fn persist_offsets(self: &Arc<Self>) {
        self.persist("consumerOffset.json", "offset", |b| b.offsets.persist())
            .await;
    }

    /// Run `write` (which writes `file`) on a blocking thread and log its
    /// failure; `what` names it in the log when the task itself fails.
    async fn persist(
        self: &Arc<Self>,
        file: &'static str,
        what: &'static str,
        write: fn(&Broker) -> std::io::Result<()>,
    ) {
        let b = self.clone();
        match tokio::task::spawn_blocking(move || write(&b)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "cannot write {file}"),
            Err(e) => tracing::error!(error = %e, "{what} persist task failed"),
        }
    }
}

impl Broker {
    /// Start master/slave replication for this broker's store (once).
    ///
    /// # Errors
    /// A message when the HA port cannot be bound or a thread cannot start.
    pub fn start_ha(
        &self,
        bind_ip: std::net::IpAddr,
        configured_listen_port: u16,
        tls_server: Option<&crate::remoting::tls::TlsServer>,
    ) -> Result<(), String> {
        let auth = self.ha_auth()?;
        if self.store.config().broker_role == ferromq_engine::BrokerRole::SyncMaster
            && self.cfg.controller_mode.is_none()
        {
            tracing::warn!(
                "brokerRole=SYNC_MASTER: until a slave connects every send is stored here but \
                 answered SLAVE_NOT_AVAILABLE, and clients that retry on that answer store it \
                 again (runtime info haSyncMasterWithoutSlave says whether one is connected)"
            );
        }
        let tls = ferromq_replication::HaTls {
            server: tls_server.map(crate::remoting::tls::TlsServer::rustls_config),
            server_required: tls_server
                .is_some_and(|t| t.mode() == crate::remoting::tls::TlsMode::Enforcing),
            client: self
                .outgoing_tls
                .get()
                .map(crate::remoting::tls::TlsClient::rustls_config),
        };
        let role = match &self.cfg.controller_mode {
            Some(mode) => ha::HaRole::start_controlled(
                self.store.config(),
                mode,
                bind_ip,
                configured_listen_port,
                &self.cfg.broker_ip2,
                auth,
                tls,
            )?,
            None => ha::HaRole::start(
                &self.store,
                self.store.config(),
                bind_ip,
                configured_listen_port,
                &self.cfg.broker_ip2,
                auth,
                tls,
            )?,
        };
        let _ = self.ha.set(Arc::new(role));
        Ok(())
    }

    /// The HA handshake with ACL on ([`crate::acl::ClusterAuth`]); `None`
    /// with ACL off (RocketMQ's open protocol, so RocketMQ 4.x slaves work).
    fn ha_auth(&self) -> Result<Option<Arc<dyn ferromq_replication::HaAuth>>, String> {
        let Some(rules) = &self.acl else {
            return Ok(None);
        };
        if self.credentials.is_none() {
            if self.store.config().broker_role == ferromq_engine::BrokerRole::Slave {
                return Err("aclEnable=true on a slave needs credentials to prove itself to its master: \
                     set accessKey/secretKey (an admin account) or define an admin account in the ACL file"
                    .to_string());
            }
            tracing::warn!(
                "aclEnable=true without accessKey/secretKey or an admin account: \
                 no slave will accept this master on the HA port"
            );
        }
        Ok(Some(Arc::new(crate::acl::ClusterAuth::new(
            &self.cfg.broker_name,
            self.credentials.clone(),
            rules.clone(),
        ))))
    }

    /// What the broker signs its own requests with, if anything.
    pub fn credentials(&self) -> Option<&crate::acl::Credentials> {
        self.credentials.as_ref()
    }

    /// Make the broker's own calls (registration with the name servers, a
    /// slave's copies from its master) over TLS with `tls` (RocketMQ's
    /// `useTLS`); call before [`run`]. A second call changes nothing.
    pub fn use_tls_for_outgoing(&self, tls: crate::remoting::tls::TlsClient) {
        let _ = self.outgoing_tls.set(tls);
    }

    /// A client for one of the broker's own calls to `addr`: TLS when
    /// [`Broker::use_tls_for_outgoing`] was called.
    /// It signs every request with [`Broker::credentials`], if any.
    pub(crate) fn outgoing_client(&self, addr: String) -> crate::remoting::RemotingClient {
        crate::remoting::RemotingClient::with_tls(addr, self.outgoing_tls.get().cloned())
            .with_credentials(self.credentials.clone())
    }

    /// Replication, when started.
    pub fn ha(&self) -> Option<&ha::HaRole> {
        self.ha.get().map(|h| &**h)
    }

    /// Replication, when started, for a blocking task.
    pub(crate) fn ha_handle(&self) -> Option<Arc<ha::HaRole>> {
        self.ha.get().cloned()
    }

    /// Controller mode's state, when `enableControllerMode=true`.
    pub fn controller(&self) -> Option<&controller_mode::ControllerMode> {
        self.controller.as_ref()
    }

    /// The store's role now (in controller mode it changes at run time).
    pub fn role(&self) -> ferromq_engine::BrokerRole {
        self.store.role()
    }

    /// The master (client address) a slave copies configs from, as the name
    /// servers last reported it.
    pub fn master_addr(&self) -> Option<String> {
        self.master_addr.locked().clone()
    }

    /// Record the master the name servers reported (`None`: no live master).
    pub fn set_master_addr(&self, addr: Option<&str>) {
        // In controller mode the controller names the master.
        if self.role() != ferromq_engine::BrokerRole::Slave || self.controller.is_some() {
            return;
        }
        let mut m = self.master_addr.locked();
        let addr = addr.filter(|a| !a.is_empty()).map(str::to_string);
        if *m != addr {
            match &addr {
                Some(a) => tracing::info!(master = %a, "copying configs from this master"),
                None => tracing::warn!("the name servers report no live master"),
            }
            *m = addr;
        }
    }
}

impl Handler for Broker {
    async fn handle(
        self: Arc<Self>,
        conn: Arc<ConnInfo>,
        req: RemotingCommand,
    ) -> Option<RemotingCommand> {
        // A pull held until its connection closed is answered with nothing.
        let Some(h) = self.histograms.get() else {
            return self.dispatch(&conn, req).await;
        };
        // Metrics on: time it, as RocketMQ's `rocketmq_rpc_latency`.
        let (code, started) = (req.code, std::time::Instant::now());
        let (answer, long_polling) =
            histograms::scope_long_polling(self.dispatch(&conn, req)).await;
        if let Some(a) = &answer {
            h.record_rpc(code, a.code, long_polling, started.elapsed());
        }
        answer
    }

    fn on_close(&self, conn: &ConnInfo) {
        let dropped = self.hold.on_close(conn.id);
        if dropped > 0 {
            tracing::debug!(peer = %conn.peer, dropped, "held pulls of a closed connection dropped");
        }
        let changed = self.clients.on_connection_closed(conn.id);
        self.consumer_ids_changed(&changed);
    }
}

/// Serve on `listener`, and on `fast` (the VIP port, `fastListenPort`) if
/// given, both with `tls` if given (see [`crate::remoting::tls`]), until
/// `shutdown` turns true; then stop accepting, finish in-flight requests,
/// unregister from the name servers, write the consumer offsets and stop the
/// pools. The caller shuts the store down afterwards. Each port has its own
/// connection cap and queued-reply budget.
pub async fn run(
    broker: Arc<Broker>,
    listener: TcpListener,
    fast: Option<TcpListener>,
    tls: Option<crate::remoting::tls::TlsServer>,
    shutdown: watch::Receiver<bool>,
) {
    {
        // Before the first registration, so that the name servers route it.
        let b = broker.clone();
        let made = tokio::task::spawn_blocking(move || b.ensure_reply_topic()).await;
        if let Ok(Err(e)) = made {
            tracing::warn!(error = %e, "the reply topic could not be created: request-reply replies are refused");
        }
    }
    let reg = tokio::spawn(register::registration_loop(
        broker.clone(),
        shutdown.clone(),
    ));
    let housekeeping = {
        let b = broker.clone();
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            let every = Duration::from_millis(b.cfg.flush_consumer_offset_interval_ms.max(100));
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            let mut trim = MemoryTrim::default();
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        b.return_memory_of_held_pulls(&mut trim).await;
                        b.persist_offsets().await;
                        let changed = b.clients.scan_not_active(CLIENT_EXPIRY);
                        b.consumer_ids_changed(&changed);
                        b.stats.roll_day();
                    }
                    _ = stop.changed() => break,
                }
            }
        })
    };
    let slave_sync = tokio::spawn(slave_sync::sync_loop(broker.clone(), shutdown.clone()));
    let controller = tokio::spawn(controller_mode::run(broker.clone(), shutdown.clone()));
    let stats_sampler = ops_stats::spawn_sampler(&broker, shutdown.clone());
    let acl_watch = broker.acl.clone().map(|acl| {
        let every = Duration::from_millis(broker.cfg.acl_reload_interval_ms);
        tokio::spawn(crate::acl::live::watch_loop(acl, every, shutdown.clone()))
    });
    // In controller mode a slave may become the master: the checker runs on
    // every broker and checks only while the store takes puts.
    let checker = (broker.controller.is_some()
        || broker.store.config().broker_role != ferromq_engine::BrokerRole::Slave)
        .then(|| {
        let b = broker.clone();
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            let every = Duration::from_millis(b.cfg.transaction_check_interval_ms);
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        if b.role() == ferromq_engine::BrokerRole::Slave {
                            continue;
                        }
                        let c = b.clone();
                        let _ = tokio::task::spawn_blocking(move || c.transaction_check_once()).await;
                    }
                    _ = stop.changed() => break,
                }
            }
        })
    });
    let waker = {
        let b = broker.clone();
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            let _ = stop.changed().await;
            b.stopping.store(true, Ordering::Release);
            b.hold.wake_all();
        })
    };
    let mut scfg = broker.cfg.server_config();
    scfg.tls = tls;
    {
        // Before the first request: decided transactions from the op queue, and
        // op records for commits a crash left without one.
        let b = broker.clone();
        let _ = tokio::task::spawn_blocking(move || b.recover_transactions()).await;
    }
    match fast {
        None => serve(listener, broker.clone(), scfg, shutdown).await,
        Some(fast) => {
            tokio::join!(
                serve(listener, broker.clone(), scfg.clone(), shutdown.clone()),
                serve(fast, broker.clone(), scfg, shutdown),
            );
        }
    }
    if let Some(c) = checker {
        let _ = c.await;
    }
    let _ = waker.await;
    let _ = housekeeping.await;
    let _ = stats_sampler.await;
    let _ = slave_sync.await;
    let _ = controller.await;
    if let Some(w) = acl_watch {
        let _ = w.await;
    }
    let _ = reg.await;
    broker.persist_offsets().await;
    broker.persist_groups().await;
    let b = broker.clone();
    let _ = tokio::task::spawn_blocking(move || {
        b.send_pool.shutdown();
        b.pull_pool.shutdown();
    })
    .await;
}

/// When to give held pulls' memory back to the OS (see
/// [`Broker::return_memory_of_held_pulls`]).
#[derive(Debug, Default)]
struct MemoryTrim {
    /// High mark of pull requests that may park in progress since the last release.
    peak: usize,
    /// When memory was last given back.
    last: Option<std::time::Instant>,
    /// The count at the previous check.
    prev: usize,
}

impl MemoryTrim {
    /// Pull requests gone before memory is given back.
    const RELEASE_AFTER: usize = 10_000;
    /// Shortest time between two releases.
    const MIN_INTERVAL: Duration = Duration::from_secs(60);

    /// With `active` pull requests in progress at `now` (checked every
    /// housekeeping tick): is a release due? (Updates the high mark.)
    fn due(&mut self, active: usize, now: std::time::Instant) -> bool {
        let falling = active < self.prev;
        self.prev = active;
        if self.peak.saturating_sub(active) < Self::RELEASE_AFTER {
            self.peak = self.peak.max(active);
            return false;
        }
        // Still falling: more is being freed; release once, after the wave.
        if falling {
            return false;
        }
        self.last
            .is_none_or(|l| now.saturating_duration_since(l) >= Self::MIN_INTERVAL)
    }

    /// Memory was given back at `now`, with `active` in progress.
    fn released(&mut self, active: usize, now: std::time::Instant) {
        self.peak = active;
        self.last = Some(now);
    }
}

/// Split a `-n` argument (`a:9876;b:9876`) into addresses.
pub fn split_namesrv_addr_arg(s: &str) -> Vec<String> {
    config::split_namesrv_addr(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_given_back_after_a_big_drop_at_most_once_a_minute() {
        let t0 = std::time::Instant::now();
        let mut t = MemoryTrim::default();
        assert!(!t.due(20_000, t0));
        assert!(!t.due(15_000, t0), "5,000 gone: not yet");
        assert!(!t.due(5_000, t0), "15,000 gone, but still falling");
        assert!(t.due(5_000, t0), "15,000 gone, and the wave is over");
        t.released(5_000, t0);
        assert!(!t.due(30_000, t0));
        // Another big drop within the minute waits, keeping its high mark.
        let soon = t0 + Duration::from_secs(10);
        assert!(!t.due(0, soon));
        assert!(!t.due(0, soon + Duration::from_secs(49)));
        assert!(t.due(0, t0 + Duration::from_secs(60)));
        t.released(0, t0 + Duration::from_secs(60));
        assert!(
            !t.due(0, t0 + Duration::from_secs(200)),
            "nothing more gone"
        );
    }
}
