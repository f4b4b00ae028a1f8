//! The broker: RocketMQ's client-facing request processors on a [`MessageStore`].
//!
//! Sends run on a pool of `sendMessageThreadPoolNums` threads, pulls on one of
//! `pullMessageThreadPoolNums`, each with a bounded queue (full -> SYSTEM_BUSY).
//! Light requests (offsets, heartbeats) are answered on the network runtime;
//! nothing that can block on the disk runs there.

mod admin;
pub mod clients;
pub mod config;
pub mod hold;
pub mod offsets;
pub mod pool;
mod pull;
mod register;
mod send;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferromq_engine::{Error as StoreError, MessageStore};
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};

pub use clients::ClientManager;
pub use config::BrokerConfig;
pub use hold::PullHold;
pub use offsets::ConsumerOffsetManager;
pub use pool::{BoundedPool, PoolBusy};

use crate::remoting::{request, response, serve, ConnInfo, Handler, RemotingCommand, ServerConfig};

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
    pull_pool: BoundedPool,
    groups: Mutex<HashSet<String>>,
    register_now: Notify,
    stopping: AtomicBool,
    next_queue: AtomicU32,
}

/// Why a broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The consumer offset file cannot be read.
    #[error("cannot load consumer offsets: {0}")]
    Offsets(std::io::Error),
    /// A pool thread cannot be spawned.
    #[error("cannot start thread pools: {0}")]
    Threads(std::io::Error),
}

impl Broker {
    /// Build the broker around an open store. `broker_addr` is the `ip:port`
    /// advertised to name servers and clients.
    ///
    /// # Errors
    /// [`StartError`] when the offsets file is damaged or threads cannot start.
    pub fn new(
        cfg: BrokerConfig,
        store: Arc<MessageStore>,
        broker_addr: String,
    ) -> Result<Arc<Broker>, StartError> {
        let offsets = ConsumerOffsetManager::load(&store.config().config_dir())
            .map_err(StartError::Offsets)?;
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
        let hold = Arc::new(PullHold::new());
        let listener_hold = hold.clone();
        store.set_message_arrival_listener(Some(Arc::new(move |topic, queue_id, max| {
            listener_hold.notify(topic, queue_id, max)
        })));
        Ok(Arc::new(Broker {
            cfg,
            store,
            broker_addr,
            offsets,
            clients: ClientManager::new(),
            hold,
            send_pool,
            pull_pool,
            groups: Mutex::new(HashSet::new()),
            register_now: Notify::new(),
            stopping: AtomicBool::new(false),
            next_queue: AtomicU32::new(0),
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

    /// Consumer offsets.
    pub fn offsets(&self) -> &ConsumerOffsetManager {
        &self.offsets
    }

    /// Answer one request.
    pub async fn process(
        self: Arc<Self>,
        conn: Arc<ConnInfo>,
        req: RemotingCommand,
    ) -> RemotingCommand {
        match req.code {
            request::SEND_MESSAGE | request::SEND_MESSAGE_V2 | request::SEND_BATCH_MESSAGE => {
                self.send(&conn, req).await
            }
            request::PULL_MESSAGE => self.pull(req).await,
            request::QUERY_CONSUMER_OFFSET => self.query_consumer_offset(&req).await,
            request::UPDATE_CONSUMER_OFFSET => self.update_consumer_offset(&req),
            request::GET_MAX_OFFSET => self.get_max_offset(&req),
            request::GET_MIN_OFFSET => self.get_min_offset(&req),
            request::HEART_BEAT => self.heart_beat(&conn, &req),
            request::UNREGISTER_CLIENT => self.unregister_client(&req),
            request::GET_CONSUMER_LIST_BY_GROUP => self.consumer_list(&req),
            request::UPDATE_AND_CREATE_TOPIC => self.create_topic(&req).await,
            code => RemotingCommand::error(
                response::REQUEST_CODE_NOT_SUPPORTED,
                format!(" request type {code} not supported"),
            ),
        }
    }

    /// Record a subscription group, or refuse it when auto-creation is off.
    fn check_group(&self, group: &str) -> Result<(), RemotingCommand> {
        let mut g = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        if g.contains(group) {
            return Ok(());
        }
        if !self.cfg.auto_create_subscription_group {
            return Err(RemotingCommand::error(
                response::SUBSCRIPTION_GROUP_NOT_EXIST,
                format!("subscription group [{group}] does not exist"),
            ));
        }
        g.insert(group.to_string());
        Ok(())
    }

    /// Persist the consumer offsets (off the runtime).
    async fn persist_offsets(self: &Arc<Self>) {
        let b = self.clone();
        match tokio::task::spawn_blocking(move || b.offsets.persist()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "cannot write consumerOffset.json"),
            Err(e) => tracing::error!(error = %e, "offset persist task failed"),
        }
    }
}

/// Map an engine error to a response code, as RocketMQ maps `PutMessageStatus`.
pub fn store_error_code(e: &StoreError) -> i32 {
    match e {
        StoreError::IllegalMessage(_) => response::MESSAGE_ILLEGAL,
        StoreError::TopicNotExist(_) => response::TOPIC_NOT_EXIST,
        StoreError::DiskFull(_)
        | StoreError::ShutDown
        | StoreError::Fenced(_)
        | StoreError::WrongRole(_) => response::SERVICE_NOT_AVAILABLE,
        StoreError::Busy(_) => response::SYSTEM_BUSY,
        StoreError::Io { .. }
        | StoreError::Corruption { .. }
        | StoreError::Config { .. }
        | StoreError::Locked(_) => response::SYSTEM_ERROR,
        _ => response::SYSTEM_ERROR,
    }
}

impl Handler for Broker {
    async fn handle(
        self: Arc<Self>,
        conn: Arc<ConnInfo>,
        req: RemotingCommand,
    ) -> Option<RemotingCommand> {
        Some(self.process(conn, req).await)
    }

    fn on_close(&self, conn: &ConnInfo) {
        self.clients.on_connection_closed(conn.id);
    }
}

/// Serve on `listener` until `shutdown` turns true; then stop accepting, finish
/// in-flight requests, unregister from the name servers, write the consumer
/// offsets and stop the pools. The caller shuts the store down afterwards.
pub async fn run(broker: Arc<Broker>, listener: TcpListener, shutdown: watch::Receiver<bool>) {
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
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        b.persist_offsets().await;
                        b.clients.scan_not_active(CLIENT_EXPIRY);
                    }
                    _ = stop.changed() => break,
                }
            }
        })
    };
    let waker = {
        let b = broker.clone();
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            let _ = stop.changed().await;
            b.stopping.store(true, Ordering::Release);
            b.hold.wake_all();
        })
    };
    let scfg = ServerConfig {
        max_frame_bytes: broker.cfg.max_frame_bytes,
        ..ServerConfig::default()
    };
    serve(listener, broker.clone(), scfg, shutdown).await;
    let _ = waker.await;
    let _ = housekeeping.await;
    let _ = reg.await;
    broker.persist_offsets().await;
    let b = broker.clone();
    let _ = tokio::task::spawn_blocking(move || {
        b.send_pool.shutdown();
        b.pull_pool.shutdown();
    })
    .await;
}

/// Split a `-n` argument (`a:9876;b:9876`) into addresses.
pub fn split_namesrv_addr_arg(s: &str) -> Vec<String> {
    config::split_namesrv_addr(s)
}
