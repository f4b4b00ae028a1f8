//! `ferromq-bench failover`: time to recover from the loss of the master in
//! controller mode (RocketMQ 5's automatic failover), with real processes.
//!
//! The harness starts three standalone controllers (`ferromq-controller`),
//! a name server and one broker group of three replicas in controller mode
//! (`enableControllerMode=true`, `allAckInSyncStateSet=true`), each replica
//! with a store of small commitlog files in a fresh directory, all on
//! loopback with ports the system picks. Producers (the harness's own
//! remoting client, one connection and one send in flight each) send to the
//! master, which they find by asking every replica for its runtime info
//! (`brokerRole` SYNC_MASTER, not `controllerFenced`, highest `masterEpoch`),
//! and find again whenever a send fails or is refused.
//!
//! Then `--kills` times: wait until the SyncStateSet holds all three
//! replicas, let the producers run `--window-seconds` plus a random delay
//! (seeded by `--seed`), SIGKILL the master, and record, polling every
//! 10 ms, when
//!
//! 1. a controller's replica info (CONTROLLER_GET_REPLICA_INFO) names a
//!    master at a higher epoch (the controllers noticed and elected),
//! 2. a surviving replica's runtime info says SYNC_MASTER at that epoch
//!    (the broker learned its new role),
//! 3. the name server's route names the new master (route refresh; the
//!    producers do not depend on it),
//! 4. a producer's send is acknowledged by another replica than the killed
//!    one: the **recovery time** as the client sees it.
//!
//! The killed replica is then restarted on its store and the harness waits
//! until the SyncStateSet is back to three. Throughput (acknowledged
//! messages per 100 ms) is kept for the whole run, so each kill also gets
//! msgs/s over the window before the kill and after recovery.
//!
//! Timeouts are RocketMQ's defaults unless `--quick` (the failover tests'
//! timings) or `--set KEY=VALUE` say otherwise; see [`timing_keys`].

mod report;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferromq_server::remoting::{request, response, RemotingClient, RemotingCommand};

use crate::child::{find_binary, write_file, ChildGuard, START_DEADLINE};
use crate::cli::ReportOut;
use crate::error::{BenchError, Result};
use crate::store::parse_bytes;

/// CONTROLLER_GET_REPLICA_INFO.
pub const CONTROLLER_GET_REPLICA_INFO: i32 = 1004;
/// The broker group (`brokerName`).
pub const GROUP: &str = "broker-fo";
/// The topic the producers send to.
pub const TOPIC: &str = "FailoverBench";
/// Queues of that topic (auto-created, `defaultTopicQueueNums`).
pub const QUEUES: u32 = 4;
/// How often the phases are polled after a kill.
pub const POLL: Duration = Duration::from_millis(10);
/// Timeout of one send (RocketMQ's `sendMsgTimeout`).
pub const SEND_TIMEOUT: Duration = Duration::from_secs(3);
/// Timeout of one runtime-info or replica-info query.
pub const QUERY_TIMEOUT: Duration = Duration::from_millis(1000);
/// How long the name server's route is still polled after the first ack on
/// the new master (it is recorded as not seen past that).
pub const ROUTE_GRACE: Duration = Duration::from_secs(10);
/// Width of a throughput bucket.
pub const BUCKET: Duration = Duration::from_millis(100);

/// Keys that go into the controllers' properties (the rest go to the brokers').
const CONTROLLER_KEYS: &[&str] = &[
    "scanNotActiveBrokerInterval",
    "enableElectUncleanMaster",
    "notifyBrokerRoleChanged",
];

/// Flags of `ferromq-bench failover`.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct FailoverArgs {
    /// Times the master is SIGKILLed (and restarted).
    #[arg(long, default_value_t = 10)]
    pub kills: usize,
    /// Seed of the kill moments (default: from the clock; printed and reported).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Producers, each one connection with one send in flight.
    #[arg(long, default_value_t = 4)]
    pub producers: usize,
    /// Body size in bytes (suffixes accepted).
    #[arg(long, default_value = "1024", value_parser = parse_bytes)]
    pub size: u64,
    /// Seconds of the throughput windows before each kill and after recovery;
    /// the producers also run this long at full strength before each kill.
    #[arg(long = "window-seconds", default_value_t = 5.0)]
    pub window_seconds: f64,
    /// The kill comes a random 0 to this many ms after the window.
    #[arg(long = "max-delay-ms", default_value_t = 3000)]
    pub max_delay_ms: u64,
    /// Test-like timeouts (the failover tests'): controllerHeartBeatTimeoutMills=2000,
    /// syncBrokerMetadataPeriod=300, checkSyncStateSetPeriod=300,
    /// brokerHeartbeatInterval=300, haMaxTimeSlaveNotCatchup=3000,
    /// haSendHeartbeatInterval=500, haHousekeepingInterval=3000,
    /// scanNotActiveBrokerInterval=500.
    #[arg(long)]
    pub quick: bool,
    /// A broker or controller key, `KEY=VALUE` (repeatable), over the
    /// defaults and `--quick` (controller keys: scanNotActiveBrokerInterval,
    /// enableElectUncleanMaster, notifyBrokerRoleChanged).
    #[arg(long = "set", value_parser = parse_set)]
    pub set: Vec<(String, String)>,
    /// Seconds from the cluster's start before the first kill. Default:
    /// controllerHeartBeatTimeoutMills + 2 x scanNotActiveBrokerInterval
    /// (a controller leader elects no new master until it has led for the
    /// heartbeat timeout, counted from its first scan as leader: a kill in
    /// that grace waits it out, which is start-up, not failover).
    #[arg(long = "settle-seconds")]
    pub settle_seconds: Option<f64>,
    /// Commitlog file size of the replicas.
    #[arg(long = "file-size", default_value = "16MiB", value_parser = parse_bytes)]
    pub file_size: u64,
    /// Longest wait for any phase (a new master, the first ack, the SyncStateSet back to three).
    #[arg(long = "phase-timeout-seconds", default_value_t = 120.0)]
    pub phase_timeout_seconds: f64,
    /// Directory for the cluster (stores, properties, logs); default: a
    /// temporary directory, removed afterwards unless the run fails.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Folder holding ferromq-controller, ferromq-namesrv and ferromq-broker.
    /// Default: the folder of this executable, then `$PATH`.
    #[arg(long = "bin-dir")]
    pub bin_dir: Option<PathBuf>,
    /// Report folder name after the time stamp and host (default `failover`,
    /// or `failover-quick` with `--quick`).
    #[arg(long)]
    pub name: Option<String>,
    /// Where the report folder goes; `--quiet`.
    #[command(flatten)]
    pub out: ReportOut,
}

/// `KEY=VALUE`.
///
/// # Errors
///
/// Without `=` or with an empty key.
pub fn parse_set(s: &str) -> std::result::Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not KEY=VALUE"))?;
    let k = k.trim();
    if k.is_empty() {
        return Err(format!("`{s}` has no key"));
    }
    Ok((k.to_string(), v.trim().to_string()))
}

/// `KEY=VALUE` pairs, in order.
pub type Keys = Vec<(String, String)>;

/// The timing keys of the run: `(broker keys, controller keys)`, each in
/// order. Default: RocketMQ's defaults as ferromq's code has them
/// (`ControllerModeConfig`: syncBrokerMetadataPeriod 5000,
/// checkSyncStateSetPeriod 5000, brokerHeartbeatInterval 1000,
/// controllerHeartBeatTimeoutMills 10000, haMaxTimeSlaveNotCatchup 15000;
/// the controller's scanNotActiveBrokerInterval 5000), written out so the
/// report shows them; `quick` the failover tests' values; `set` over both.
pub fn timing_keys(quick: bool, set: &[(String, String)]) -> (Keys, Keys) {
    let broker: &[(&str, &str)] = if quick {
        &[
            ("syncBrokerMetadataPeriod", "300"),
            ("checkSyncStateSetPeriod", "300"),
            ("brokerHeartbeatInterval", "300"),
            ("controllerHeartBeatTimeoutMills", "2000"),
            ("haMaxTimeSlaveNotCatchup", "3000"),
            ("haSendHeartbeatInterval", "500"),
            ("haHousekeepingInterval", "3000"),
        ]
    } else {
        &[
            ("syncBrokerMetadataPeriod", "5000"),
            ("checkSyncStateSetPeriod", "5000"),
            ("brokerHeartbeatInterval", "1000"),
            ("controllerHeartBeatTimeoutMills", "10000"),
            ("haMaxTimeSlaveNotCatchup", "15000"),
        ]
    };
    let controller: &[(&str, &str)] = if quick {
        &[("scanNotActiveBrokerInterval", "500")]
    } else {
        &[("scanNotActiveBrokerInterval", "5000")]
    };
    let own = |kv: &[(&str, &str)]| -> Keys {
        kv.iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    };
    let (mut b, mut c) = (own(broker), own(controller));
    for (k, v) in set {
        let target = if CONTROLLER_KEYS.contains(&k.as_str()) {
            &mut c
        } else {
            &mut b
        };
        match target.iter_mut().find(|(tk, _)| tk == k) {
            Some(slot) => slot.1 = v.clone(),
            None => target.push((k.clone(), v.clone())),
        }
    }
    (b, c)
}

/// The default of `--settle-seconds` for these keys.
pub fn default_settle(broker: &Keys, controller: &Keys) -> Duration {
    let ms = |keys: &Keys, k: &str, d: u64| {
        keys.iter()
            .find(|(key, _)| key == k)
            .and_then(|(_, v)| v.parse::<u64>().ok())
            .unwrap_or(d)
    };
    Duration::from_millis(
        ms(broker, "controllerHeartBeatTimeoutMills", 10_000)
            + 2 * ms(controller, "scanNotActiveBrokerInterval", 5000),
    )
}

/// One kill, as observed. Times are ms after the SIGKILL; `None`: not seen.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KillRecord {
    /// 1-based.
    pub kill: usize,
    /// The replica killed (0..3) and its epoch as master.
    pub killed_replica: usize,
    /// `masterEpoch` of the killed master.
    pub old_epoch: i64,
    /// The replica that became master, and its epoch.
    pub new_replica: Option<usize>,
    /// `masterEpoch` of the new master.
    pub new_epoch: Option<i64>,
    /// Seconds since the start of the run when the master was killed.
    pub killed_at_s: f64,
    /// A controller's replica info names a master at a higher epoch.
    pub controller_elected_ms: Option<f64>,
    /// The new master's runtime info says SYNC_MASTER at the higher epoch.
    pub broker_role_ms: Option<f64>,
    /// The name server's route names the new master.
    pub route_ms: Option<f64>,
    /// The first send acknowledged by another replica: the recovery time.
    pub first_ack_ms: f64,
    /// From the SIGKILL to the SyncStateSet back at three (the killed
    /// replica restarted right after the first ack), ms.
    pub in_sync_again_ms: f64,
    /// Acknowledged msgs/s over the window before the kill.
    pub before_msgs_per_sec: f64,
    /// Acknowledged msgs/s over the window from the first ack on the new master.
    pub after_ack_msgs_per_sec: f64,
    /// Acknowledged msgs/s over the window from the SyncStateSet back at three.
    pub after_in_sync_msgs_per_sec: f64,
}

/// Everything a run measured, as `results.json` holds it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FailoverResult {
    /// The command line.
    pub command: String,
    /// Seed of the kill moments.
    pub seed: u64,
    /// Test-like timeouts.
    pub quick: bool,
    /// Broker keys set (timing and overrides).
    pub broker_keys: Keys,
    /// Controller keys set.
    pub controller_keys: Keys,
    /// Producers.
    pub producers: usize,
    /// Body size.
    pub size_bytes: u64,
    /// Window of the msgs/s figures, s.
    pub window_seconds: f64,
    /// Commitlog file size.
    pub file_size_bytes: u64,
    /// Seconds from the cluster's start before the first kill could come.
    pub settle_seconds: f64,
    /// Each kill.
    pub kills: Vec<KillRecord>,
    /// Recovery (SIGKILL -> first ack on the new master), ms: p50, p99, max (nearest rank).
    pub recovery_p50_ms: f64,
    /// p99.
    pub recovery_p99_ms: f64,
    /// Max.
    pub recovery_max_ms: f64,
    /// Median over the kills of msgs/s before the kill.
    pub before_msgs_per_sec_median: f64,
    /// Median over the kills of msgs/s after the first ack.
    pub after_ack_msgs_per_sec_median: f64,
    /// Median over the kills of msgs/s after the SyncStateSet is back at three.
    pub after_in_sync_msgs_per_sec_median: f64,
    /// Sends acknowledged over the run.
    pub acked: u64,
    /// Sends answered with another code than SUCCESS.
    pub refused: u64,
    /// Sends that failed (connection lost, timeout).
    pub failed: u64,
    /// Acknowledged messages per 100 ms since the start.
    pub acks_per_bucket: Vec<u64>,
    /// Wall time of the run, s.
    pub seconds: f64,
}

/// The `p` (0..=1) percentile of `v` by nearest rank; 0 when empty.
pub fn nearest_rank(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = ((p * s.len() as f64).ceil() as usize).clamp(1, s.len());
    s[rank - 1]
}

/// Acknowledged msgs/s over `[from_s, to_s)` of the run, from 100 ms buckets.
pub fn rate_between(buckets: &[u64], from_s: f64, to_s: f64) -> f64 {
    if to_s <= from_s {
        return 0.0;
    }
    let a = (from_s * 10.0).floor().max(0.0) as usize;
    let b = (to_s * 10.0).floor().max(0.0) as usize;
    let n: u64 = buckets.iter().take(b).skip(a).copied().sum();
    n as f64 / ((b.saturating_sub(a)) as f64 / 10.0).max(0.1)
}

/// The master address in a GET_ROUTEINFO_BY_TOPIC body (broker id 0 of the
/// first broker data; fastjson writes the id unquoted).
pub fn route_master_addr(body: &str) -> Option<String> {
    let at = body.find("\"brokerAddrs\"")?;
    let rest = &body[at + "\"brokerAddrs\"".len()..];
    let open = rest.find('{')?;
    let close = rest.find('}')?;
    let map = rest.get(open + 1..close)?;
    map.split(',').find_map(|entry| {
        let (k, v) = entry.split_once(':')?;
        (k.trim().trim_matches('"') == "0").then(|| v.trim().trim_matches('"').to_string())
    })
}

/// A small xorshift for the kill moments.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Loopback ports free right now (bound together, then released).
fn free_ports(n: usize) -> Result<Vec<u16>> {
    let ls = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| BenchError::io("picking controller ports", e))?;
    ls.iter()
        .map(|l| {
            l.local_addr()
                .map(|a| a.port())
                .map_err(|e| BenchError::io("picking controller ports", e))
        })
        .collect()
}

/// One broker replica: its process (None while down), properties, log, port.
struct Replica {
    proc: Option<ChildGuard>,
    cfg: PathBuf,
    log: PathBuf,
    port: u16,
}

/// The cluster's processes.
struct Cluster {
    _controllers: Vec<ChildGuard>,
    controller_addrs: Vec<String>,
    _namesrv: ChildGuard,
    namesrv_addr: String,
    replicas: Vec<Replica>,
    broker_bin: PathBuf,
}

impl Cluster {
    fn start(dir: &Path, args: &FailoverArgs, bins: &Bins) -> Result<Cluster> {
        let (broker_keys, controller_keys) = timing_keys(args.quick, &args.set);
        std::fs::create_dir_all(dir).map_err(|e| BenchError::io(dir.display(), e))?;
        let ports = free_ports(3)?;
        let peers: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, p)| format!("n{i}-127.0.0.1:{p}"))
            .collect();
        let mut controllers = Vec::new();
        for i in 0..3 {
            let mut text = format!(
                "controllerDLegerGroup=BenchFailoverGroup\ncontrollerDLegerPeers={}\n\
                 controllerDLegerSelfId=n{i}\ncontrollerStorePath={}\n",
                peers.join(";"),
                dir.join(format!("controller-store-n{i}")).display()
            );
            for (k, v) in &controller_keys {
                text.push_str(&format!("{k}={v}\n"));
            }
            let cfg = dir.join(format!("controller-n{i}.properties"));
            write_file(&cfg, &text)?;
            let mut cmd = Command::new(&bins.controller);
            cmd.arg("-c").arg(&cfg).env("RUST_LOG", log_level());
            let mut c = ChildGuard::spawn_logged(
                &format!("ferromq-controller n{i}"),
                cmd,
                &dir.join(format!("controller-n{i}.log")),
            )?;
            c.wait_line("listening on", START_DEADLINE)?;
            controllers.push(c);
        }
        let ns_cfg = dir.join("namesrv.properties");
        write_file(&ns_cfg, "listenPort=0\nbindAddress=127.0.0.1\n")?;
        let mut cmd = Command::new(&bins.namesrv);
        cmd.arg("-c").arg(&ns_cfg).env("RUST_LOG", log_level());
        let mut namesrv =
            ChildGuard::spawn_logged("ferromq-namesrv", cmd, &dir.join("namesrv.log"))?;
        let ns_port = namesrv.wait_port(START_DEADLINE)?;
        let controller_addrs: Vec<String> =
            ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let mut cluster = Cluster {
            _controllers: controllers,
            controller_addrs,
            _namesrv: namesrv,
            namesrv_addr: format!("127.0.0.1:{ns_port}"),
            replicas: Vec::new(),
            broker_bin: bins.broker.clone(),
        };
        for i in 0..3 {
            let rdir = dir.join(format!("replica-{i}"));
            std::fs::create_dir_all(&rdir).map_err(|e| BenchError::io(rdir.display(), e))?;
            let mut text = format!(
                "brokerClusterName=BenchCluster\nbrokerName={GROUP}\nbrokerId=0\nlistenPort=0\n\
                 brokerIP1=127.0.0.1\nstorePathRootDir={}\nmapedFileSizeCommitLog={}\n\
                 defaultTopicQueueNums={QUEUES}\nautoCreateTopicEnable=true\n\
                 diskMaxUsedSpaceRatio=95\ndiskSpaceCleanForciblyRatio=98\ndiskSpaceWarningLevelRatio=99\n\
                 brokerRole=SYNC_MASTER\nenableControllerMode=true\ncontrollerAddr={}\n\
                 allAckInSyncStateSet=true\nnamesrvAddr={}\n",
                rdir.join("store").display(),
                args.file_size,
                cluster.controller_addrs.join(";"),
                cluster.namesrv_addr
            );
            for (k, v) in &broker_keys {
                text.push_str(&format!("{k}={v}\n"));
            }
            let cfg = rdir.join("broker.properties");
            write_file(&cfg, &text)?;
            cluster.replicas.push(Replica {
                proc: None,
                cfg,
                log: dir.join(format!("replica-{i}.log")),
                port: 0,
            });
            cluster.start_replica(i)?;
        }
        Ok(cluster)
    }

    /// (Re)start replica `i` on its store; it listens on a new port.
    fn start_replica(&mut self, i: usize) -> Result<()> {
        let r = &mut self.replicas[i];
        let mut cmd = Command::new(&self.broker_bin);
        cmd.arg("-c").arg(&r.cfg).env("RUST_LOG", log_level());
        let mut p = ChildGuard::spawn_logged(&format!("ferromq-broker replica {i}"), cmd, &r.log)?;
        r.port = p.wait_port(START_DEADLINE)?;
        r.proc = Some(p);
        Ok(())
    }

    /// Ports of the replicas that run.
    fn live_ports(&self) -> Vec<(usize, u16)> {
        self.replicas
            .iter()
            .enumerate()
            .filter(|(_, r)| r.proc.is_some())
            .map(|(i, r)| (i, r.port))
            .collect()
    }

    fn index_of(&self, port: u16) -> Option<usize> {
        self.replicas.iter().position(|r| r.port == port)
    }
}

/// The children's log level: `FERROMQ_FAILOVER_LOG`, default `info` (the
/// logs stay in the cluster directory).
fn log_level() -> String {
    std::env::var("FERROMQ_FAILOVER_LOG").unwrap_or_else(|_| "info".into())
}

/// The three binaries.
struct Bins {
    controller: PathBuf,
    namesrv: PathBuf,
    broker: PathBuf,
}

/// GET_BROKER_RUNTIME_INFO of the broker at `addr`, its `table`.
pub async fn runtime_info(addr: &str) -> Option<BTreeMap<String, String>> {
    let c = RemotingClient::new(addr);
    let r = c
        .invoke(
            RemotingCommand::request(request::GET_BROKER_RUNTIME_INFO),
            QUERY_TIMEOUT,
        )
        .await
        .ok()?;
    c.close().await;
    if r.code != response::SUCCESS {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
    Some(
        v["table"]
            .as_object()?
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect(),
    )
}

/// What a replica's runtime info says about its role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleView {
    /// SYNC_MASTER and not fenced.
    pub master: bool,
    /// `masterEpoch`.
    pub epoch: i64,
    /// Members of `syncStateSet`.
    pub in_sync: usize,
}

fn role_view(info: &BTreeMap<String, String>) -> Option<RoleView> {
    Some(RoleView {
        master: info.get("brokerRole").map(String::as_str) == Some("SYNC_MASTER")
            && info.get("controllerFenced").map(String::as_str) != Some("true"),
        epoch: info.get("masterEpoch")?.parse().ok()?,
        in_sync: info
            .get("syncStateSet")
            .map_or(0, |s| s.split(',').filter(|x| !x.trim().is_empty()).count()),
    })
}

/// The master among `ports` (SYNC_MASTER, not fenced, highest epoch):
/// `(port, view)`.
pub async fn find_master(ports: &[u16]) -> Option<(u16, RoleView)> {
    let views = futures_join_all(ports.iter().copied().map(|p| async move {
        let v = runtime_info(&format!("127.0.0.1:{p}"))
            .await
            .as_ref()
            .and_then(role_view);
        (p, v)
    }))
    .await;
    let mut best: Option<(u16, RoleView)> = None;
    for (p, v) in views {
        let Some(v) = v else { continue };
        if v.master && best.is_none_or(|(_, b)| v.epoch > b.epoch) {
            best = Some((p, v));
        }
    }
    best
}

/// Await every future of `it` concurrently (spawned on the runtime), in order.
async fn futures_join_all<F>(it: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = it.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        if let Ok(v) = h.await {
            out.push(v);
        }
    }
    out
}

/// The master epoch and address the controllers' replica info names (the
/// highest epoch any controller answers with).
pub async fn controller_master(addrs: &[String]) -> Option<(i64, String)> {
    let answers = futures_join_all(addrs.iter().cloned().map(|a| async move {
        let c = RemotingClient::new(a.as_str());
        let r = c
            .invoke(
                RemotingCommand::request(CONTROLLER_GET_REPLICA_INFO).with_ext("brokerName", GROUP),
                QUERY_TIMEOUT,
            )
            .await;
        c.close().await;
        let r = r.ok().filter(|r| r.code == response::SUCCESS)?;
        let epoch = r.ext_fields.opt_i64("masterEpoch").ok().flatten()?;
        let addr = r.ext_fields.opt_str("masterAddress")?.to_string();
        Some((epoch, addr))
    }))
    .await;
    answers.into_iter().flatten().max_by_key(|(e, _)| *e)
}

/// The master address in the name server's route of [`TOPIC`].
pub async fn route_master(namesrv: &str) -> Option<String> {
    let c = RemotingClient::new(namesrv);
    let r = c
        .invoke(
            RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC).with_ext("topic", TOPIC),
            QUERY_TIMEOUT,
        )
        .await
        .ok()?;
    c.close().await;
    if r.code != response::SUCCESS {
        return None;
    }
    route_master_addr(&String::from_utf8_lossy(&r.body))
}

/// What the producers share with the run.
struct Shared {
    /// Ports of the replicas (updated on restarts).
    ports: Mutex<Vec<u16>>,
    stop: AtomicBool,
    t0: Instant,
    buckets: Mutex<Vec<u64>>,
    /// After a kill: the killed master's port and the first ack from another.
    watch: Mutex<Option<Watch>>,
    acked: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
}

struct Watch {
    old_port: u16,
    first: Option<(Instant, u16)>,
}

impl Shared {
    fn ack(&self, port: u16) {
        let now = Instant::now();
        self.acked.fetch_add(1, Ordering::Relaxed);
        let i = (now.duration_since(self.t0).as_millis() / BUCKET.as_millis()) as usize;
        {
            let mut b = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
            if b.len() <= i {
                b.resize(i + 1, 0);
            }
            b[i] += 1;
        }
        let mut w = self.watch.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(w) = w.as_mut() {
            if w.first.is_none() && port != w.old_port {
                w.first = Some((now, port));
            }
        }
    }
}

/// SEND_MESSAGE_V2 of `body` to queue `queue` of [`TOPIC`], answered once stored.
fn send_request(queue: u32, body: &[u8]) -> RemotingCommand {
    RemotingCommand::request(request::SEND_MESSAGE_V2)
        .with_ext("a", "ferromq_bench_failover")
        .with_ext("b", TOPIC)
        .with_ext("c", "TBW102")
        .with_ext("d", QUEUES)
        .with_ext("e", queue)
        .with_ext("f", 0)
        .with_ext("g", 1_700_000_000_000i64)
        .with_ext("h", 0)
        .with_ext("i", "WAIT\u{1}true\u{2}")
        .with_ext("j", 0)
        .with_ext("k", false)
        .with_body(body.to_vec())
}

/// One producer: send to the master, find it again after any failure.
async fn producer(id: usize, shared: Arc<Shared>, body: Vec<u8>) {
    let queue = (id as u32) % QUEUES;
    let mut client: Option<(u16, RemotingClient)> = None;
    while !shared.stop.load(Ordering::Acquire) {
        let Some((port, c)) = client.as_ref() else {
            let ports = shared
                .ports
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            match find_master(&ports).await {
                Some((p, _)) => client = Some((p, RemotingClient::new(format!("127.0.0.1:{p}")))),
                None => tokio::time::sleep(Duration::from_millis(20)).await,
            }
            continue;
        };
        match c.invoke(send_request(queue, &body), SEND_TIMEOUT).await {
            Ok(r) if r.code == response::SUCCESS => shared.ack(*port),
            Ok(_) => {
                shared.refused.fetch_add(1, Ordering::Relaxed);
                client = None;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(_) => {
                shared.failed.fetch_add(1, Ordering::Relaxed);
                client = None;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Run `ferromq-bench failover`; the report folder's path is printed.
///
/// # Errors
///
/// When a binary is missing, the cluster does not start, or a phase does
/// not complete within `--phase-timeout-seconds` (the cluster directory,
/// with every process's log, is kept then and named in the message).
pub fn run_failover(args: &FailoverArgs, argv: &[String]) -> Result<i32> {
    if args.kills == 0 || args.producers == 0 {
        return Err(BenchError::new(
            "--kills and --producers must be at least 1",
        ));
    }
    let bins = Bins {
        controller: find_binary(args.bin_dir.as_deref(), "ferromq-controller")?,
        namesrv: find_binary(args.bin_dir.as_deref(), "ferromq-namesrv")?,
        broker: find_binary(args.bin_dir.as_deref(), "ferromq-broker")?,
    };
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1
    });
    eprintln!("failover: --seed {seed}");
    let (dir, tmp) = crate::machine::dir_or_temp(args.dir.as_deref())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| BenchError::io("starting the tokio runtime", e))?;
    let (_, started_utc) = crate::reporting::utc_now();
    let started = Instant::now();
    let outcome = rt.block_on(run(args, &bins, &dir, seed));
    let result = match outcome {
        Ok(r) => r,
        Err(e) => {
            if let Some(t) = tmp {
                let kept = t.keep();
                return Err(BenchError::new(format!(
                    "{e} (cluster directory with the logs kept: {})",
                    kept.display()
                )));
            }
            return Err(BenchError::new(format!("{e} (logs in {})", dir.display())));
        }
    };
    let result = FailoverResult {
        command: crate::reporting::shell_join(argv),
        seconds: started.elapsed().as_secs_f64(),
        ..result
    };
    let folder = report::write(args, &result, &started_utc, &dir)?;
    if args.out.quiet {
        println!("{}", folder.path().join("results.json").display());
    } else {
        println!("{}", folder.path().join("NOTES.md").display());
    }
    if !args.out.quiet {
        eprintln!("{}", report::summary_line(&result));
    }
    Ok(0)
}

fn timeout_err(what: &str, kill: usize) -> BenchError {
    BenchError::new(format!("kill {kill}: {what} not within the phase timeout"))
}

/// Wait until a master above `above` has all three replicas in its
/// SyncStateSet; returns `(replica, epoch)`.
async fn wait_in_sync(cluster: &Cluster, above: i64, limit: Duration) -> Option<(usize, i64)> {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        let ports: Vec<u16> = cluster.live_ports().iter().map(|(_, p)| *p).collect();
        if let Some((p, v)) = find_master(&ports).await {
            if v.epoch > above && v.in_sync >= 3 {
                return cluster.index_of(p).map(|i| (i, v.epoch));
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

async fn run(args: &FailoverArgs, bins: &Bins, dir: &Path, seed: u64) -> Result<FailoverResult> {
    let limit = Duration::from_secs_f64(args.phase_timeout_seconds.max(1.0));
    let window = Duration::from_secs_f64(args.window_seconds.max(0.1));
    let (broker_keys, controller_keys) = timing_keys(args.quick, &args.set);
    let settle = args.settle_seconds.map_or_else(
        || default_settle(&broker_keys, &controller_keys),
        |v| Duration::from_secs_f64(v.max(0.0)),
    );
    let mut cluster = Cluster::start(dir, args, bins)?;
    let settled = Instant::now() + settle;
    let mut rng = Rng(seed);
    eprintln!(
        "failover: cluster up in {} (controllers {}, name server {}), waiting for a master with three in sync",
        dir.display(),
        cluster.controller_addrs.join(","),
        cluster.namesrv_addr
    );
    let (_, mut epoch) = wait_in_sync(&cluster, 0, limit)
        .await
        .ok_or_else(|| BenchError::new("no first master with three replicas in sync"))?;
    let shared = Arc::new(Shared {
        ports: Mutex::new(cluster.replicas.iter().map(|r| r.port).collect()),
        stop: AtomicBool::new(false),
        t0: Instant::now(),
        buckets: Mutex::new(Vec::new()),
        watch: Mutex::new(None),
        acked: AtomicU64::new(0),
        refused: AtomicU64::new(0),
        failed: AtomicU64::new(0),
    });
    let body = vec![b'x'; args.size as usize];
    let tasks: Vec<_> = (0..args.producers)
        .map(|i| tokio::spawn(producer(i, shared.clone(), body.clone())))
        .collect();
    let pace = Pace {
        limit,
        window,
        settled,
    };
    let outcome = kill_loop(args, &mut cluster, &shared, &mut rng, &mut epoch, &pace).await;
    shared.stop.store(true, Ordering::Release);
    for t in tasks {
        let _ = t.await;
    }
    let (raw, ends) = outcome?;
    let buckets = shared
        .buckets
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let w = window.as_secs_f64();
    let kills: Vec<KillRecord> = raw
        .into_iter()
        .zip(ends)
        .map(|(mut k, insync_s)| {
            let ack_s = k.killed_at_s + k.first_ack_ms / 1000.0;
            k.before_msgs_per_sec = rate_between(&buckets, k.killed_at_s - w, k.killed_at_s);
            k.after_ack_msgs_per_sec = rate_between(&buckets, ack_s, ack_s + w);
            k.after_in_sync_msgs_per_sec = rate_between(&buckets, insync_s, insync_s + w);
            k
        })
        .collect();
    let rec: Vec<f64> = kills.iter().map(|k| k.first_ack_ms).collect();
    let med =
        |f: fn(&KillRecord) -> f64| crate::stats::median(&kills.iter().map(f).collect::<Vec<_>>());
    Ok(FailoverResult {
        command: String::new(),
        seed,
        quick: args.quick,
        broker_keys,
        controller_keys,
        producers: args.producers,
        size_bytes: args.size,
        window_seconds: w,
        file_size_bytes: args.file_size,
        settle_seconds: settle.as_secs_f64(),
        recovery_p50_ms: nearest_rank(&rec, 0.5),
        recovery_p99_ms: nearest_rank(&rec, 0.99),
        recovery_max_ms: nearest_rank(&rec, 1.0),
        before_msgs_per_sec_median: med(|k| k.before_msgs_per_sec),
        after_ack_msgs_per_sec_median: med(|k| k.after_ack_msgs_per_sec),
        after_in_sync_msgs_per_sec_median: med(|k| k.after_in_sync_msgs_per_sec),
        kills,
        acked: shared.acked.load(Ordering::Relaxed),
        refused: shared.refused.load(Ordering::Relaxed),
        failed: shared.failed.load(Ordering::Relaxed),
        acks_per_bucket: buckets,
        seconds: 0.0,
    })
}

/// How long phases may take, the windows, when the first kill may come.
#[derive(Debug, Clone, Copy)]
struct Pace {
    limit: Duration,
    window: Duration,
    settled: Instant,
}

/// The kills; returns the records (msgs/s still to fill in) and, per kill,
/// when (s since the start) the SyncStateSet was back at three.
async fn kill_loop(
    args: &FailoverArgs,
    cluster: &mut Cluster,
    shared: &Arc<Shared>,
    rng: &mut Rng,
    epoch: &mut i64,
    pace: &Pace,
) -> Result<(Vec<KillRecord>, Vec<f64>)> {
    let Pace {
        limit,
        window,
        settled,
    } = *pace;
    let mut records = Vec::new();
    let mut ends = Vec::new();
    let since = |t: Instant| t.duration_since(shared.t0).as_secs_f64();
    let ms = |t: Instant, from: Instant| t.duration_since(from).as_secs_f64() * 1000.0;
    for kill in 1..=args.kills {
        // Full strength for the window, then a random moment.
        let delay = Duration::from_millis(rng.next() % args.max_delay_ms.max(1));
        tokio::time::sleep(window + delay).await;
        if Instant::now() < settled {
            tokio::time::sleep_until(tokio::time::Instant::from_std(settled) + delay).await;
        }
        let ports: Vec<u16> = cluster.live_ports().iter().map(|(_, p)| *p).collect();
        let (mport, mview) = find_master(&ports)
            .await
            .ok_or_else(|| timeout_err("a master before the kill", kill))?;
        let m = cluster
            .index_of(mport)
            .ok_or_else(|| BenchError::new("the master's port is no replica's"))?;
        if mview.epoch != *epoch {
            eprintln!(
                "failover: kill {kill}: the master's epoch moved by itself ({} -> {})",
                *epoch, mview.epoch
            );
        }
        let old_epoch = mview.epoch;
        *shared.watch.lock().unwrap_or_else(|e| e.into_inner()) = Some(Watch {
            old_port: mport,
            first: None,
        });
        let killed = Instant::now();
        if let Some(mut p) = cluster.replicas[m].proc.take() {
            p.kill();
        }
        let old_addr = format!("127.0.0.1:{mport}");
        let (mut t_ctrl, mut t_role, mut t_route, mut t_ack) = (None, None, None, None);
        let (mut new_port, mut new_epoch) = (None, None);
        let until = killed + limit;
        loop {
            if Instant::now() > until {
                return Err(timeout_err(
                    &format!(
                        "after killing replica {m}: controller elected {t_ctrl:?}, broker role {t_role:?}, first ack {t_ack:?}"
                    ),
                    kill,
                ));
            }
            let live: Vec<u16> = cluster.live_ports().iter().map(|(_, p)| *p).collect();
            let (ctrl, role, route) = tokio::join!(
                controller_master(&cluster.controller_addrs),
                find_master(&live),
                route_master(&cluster.namesrv_addr)
            );
            let now = Instant::now();
            if t_ctrl.is_none() && ctrl.is_some_and(|(e, a)| e > old_epoch && a != old_addr) {
                t_ctrl = Some(now);
            }
            if t_role.is_none() {
                if let Some((p, v)) = role.filter(|(_, v)| v.epoch > old_epoch) {
                    t_role = Some(now);
                    new_port = Some(p);
                    new_epoch = Some(v.epoch);
                }
            }
            if t_route.is_none()
                && new_port.is_some()
                && route == new_port.map(|p| format!("127.0.0.1:{p}"))
            {
                t_route = Some(now);
            }
            if t_ack.is_none() {
                t_ack = shared
                    .watch
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .as_ref()
                    .and_then(|w| w.first)
                    .map(|(t, _)| t);
            }
            let core_done = t_ctrl.is_some() && t_role.is_some() && t_ack.is_some();
            let route_done = t_route.is_some() || t_ack.is_some_and(|a| a.elapsed() > ROUTE_GRACE);
            if core_done && route_done {
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        let t_ack = t_ack.ok_or_else(|| timeout_err("the first ack", kill))?;
        *shared.watch.lock().unwrap_or_else(|e| e.into_inner()) = None;
        // The killed replica rejoins on its store.
        cluster.start_replica(m)?;
        *shared.ports.lock().unwrap_or_else(|e| e.into_inner()) =
            cluster.replicas.iter().map(|r| r.port).collect();
        let (_, e) = wait_in_sync(cluster, old_epoch, limit)
            .await
            .ok_or_else(|| timeout_err("the SyncStateSet back at three", kill))?;
        let in_sync = Instant::now();
        *epoch = e;
        // The phases happen in order (an ack on the new master means it was
        // master, which means the controllers had elected it); one seen after
        // a later one was late by the polling, and counts at the later one.
        let t_role = t_role.map(|t| t.min(t_ack));
        let t_ctrl = t_ctrl.map(|t| t_role.map_or(t, |r| t.min(r)));
        let rec = KillRecord {
            kill,
            killed_replica: m,
            old_epoch,
            new_replica: new_port.and_then(|p| cluster.index_of(p)),
            new_epoch,
            killed_at_s: since(killed),
            controller_elected_ms: t_ctrl.map(|t| ms(t, killed)),
            broker_role_ms: t_role.map(|t| ms(t, killed)),
            route_ms: t_route.map(|t| ms(t, killed)),
            first_ack_ms: ms(t_ack, killed),
            in_sync_again_ms: ms(in_sync, killed),
            before_msgs_per_sec: 0.0,
            after_ack_msgs_per_sec: 0.0,
            after_in_sync_msgs_per_sec: 0.0,
        };
        eprintln!(
            "failover: kill {kill}/{}: replica {m} (epoch {old_epoch}) -> replica {:?} (epoch {:?}); controller {:?} ms, role {:?} ms, route {:?} ms, first ack {:.0} ms, in sync again {:.1} s",
            args.kills,
            rec.new_replica,
            rec.new_epoch,
            rec.controller_elected_ms.map(|v| v.round()),
            rec.broker_role_ms.map(|v| v.round()),
            rec.route_ms.map(|v| v.round()),
            rec.first_ack_ms,
            rec.in_sync_again_ms / 1000.0
        );
        records.push(rec);
        ends.push(since(in_sync));
    }
    // The last window after recovery.
    tokio::time::sleep(window + Duration::from_millis(200)).await;
    Ok((records, ends))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_master_reads_broker_id_zero() {
        let body = r#"{"brokerDatas":[{"brokerAddrs":{0:"127.0.0.1:1234"},"brokerName":"b"}],"queueDatas":[]}"#;
        assert_eq!(route_master_addr(body).as_deref(), Some("127.0.0.1:1234"));
        let body = r#"{"brokerDatas":[{"brokerAddrs":{"1":"h:1","0":"h:2"}}]}"#;
        assert_eq!(route_master_addr(body).as_deref(), Some("h:2"));
        assert_eq!(route_master_addr(r#"{"brokerAddrs":{1:"h:1"}}"#), None);
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(nearest_rank(&v, 0.5), 5.0);
        assert_eq!(nearest_rank(&v, 0.99), 10.0);
        assert_eq!(nearest_rank(&v, 1.0), 10.0);
        assert_eq!(nearest_rank(&[], 0.5), 0.0);
    }

    #[test]
    fn rates_from_buckets() {
        let b = vec![10u64; 50];
        assert!((rate_between(&b, 1.0, 2.0) - 100.0).abs() < 1e-9);
        assert_eq!(rate_between(&b, 2.0, 1.0), 0.0);
    }

    #[test]
    fn quick_and_set_override_the_defaults() {
        let (b, c) = timing_keys(false, &[]);
        assert!(b.contains(&("controllerHeartBeatTimeoutMills".into(), "10000".into())));
        assert!(c.contains(&("scanNotActiveBrokerInterval".into(), "5000".into())));
        let (b, c) = timing_keys(
            true,
            &[
                ("syncBrokerMetadataPeriod".into(), "100".into()),
                ("scanNotActiveBrokerInterval".into(), "200".into()),
            ],
        );
        assert!(b.contains(&("syncBrokerMetadataPeriod".into(), "100".into())));
        assert!(b.contains(&("controllerHeartBeatTimeoutMills".into(), "2000".into())));
        assert_eq!(
            c,
            vec![("scanNotActiveBrokerInterval".into(), "200".into())]
        );
        assert_eq!(parse_set("a=b"), Ok(("a".into(), "b".into())));
        assert!(parse_set("ab").is_err());
    }
}
