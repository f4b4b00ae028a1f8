//! A controller-mode cluster as real processes, for the failover tests:
//! three standalone controllers, one name server, one broker group of
//! three replicas in controller mode (`enableControllerMode=true`), each
//! with its own store directory that survives its restarts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::controller::{free_ports, peers};
use super::proxy::Proxy;
use super::{broker_props, records, spawn_to, try_runtime_info, wait_for, Client, Proc};

/// The broker group.
pub const GROUP: &str = "broker-f";
/// `controllerHeartBeatTimeoutMills` of the test brokers.
pub const HB_TIMEOUT_MS: u64 = 2000;

/// One replica: its process (None while down), store and client port.
pub struct Replica {
    pub proc: Option<Proc>,
    pub dir: PathBuf,
    pub port: u16,
    pub log: PathBuf,
}

/// The cluster.
pub struct Cluster {
    pub dir: PathBuf,
    pub controllers: Vec<Proc>,
    pub controller_ports: Vec<u16>,
    pub namesrv: Proc,
    pub namesrv_port: u16,
    pub replicas: Vec<Replica>,
    /// Extra broker properties (each test's own).
    pub extra: String,
    /// Per replica, a proxy to each controller (when started proxied): its
    /// `controllerAddr` names these, so a test can cut its links.
    pub proxies: Vec<Vec<Proxy>>,
    /// Per replica (when started proxied), the proxy its slaves reach its HA
    /// port through: the replica binds 127.0.0.1 and advertises
    /// `brokerIP2=127.0.0.<11+i>` with a fixed `haListenPort`, where this
    /// proxy listens.
    pub ha_proxies: Vec<Proxy>,
}

fn log_level() -> String {
    std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into())
}

/// Start controller `i` of the peers on `ports`.
pub fn start_controller(dir: &Path, ports: &[u16], i: usize) -> Proc {
    let cfg = dir.join(format!("controller-n{i}.properties"));
    std::fs::write(
        &cfg,
        format!(
            "controllerDLegerGroup=FailoverGroup\ncontrollerDLegerPeers={}\ncontrollerDLegerSelfId=n{i}\n\
             controllerStorePath={}\nscanNotActiveBrokerInterval=500\nenableElectUncleanMaster=false\n\
             notifyBrokerRoleChanged=true\n",
            peers(ports),
            dir.join(format!("controller-store-n{i}")).display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferromq-controller"));
    cmd.arg("-c").arg(&cfg);
    let f = std::fs::File::create(dir.join(format!("controller-n{i}.log"))).unwrap();
    let mut p = spawn_to("controller", cmd, Stdio::from(f), &log_level());
    p.wait_line("listening on", Duration::from_secs(30));
    p
}

impl Cluster {
    /// Start three controllers, a name server and `replicas` brokers.
    pub fn start(dir: &Path, replicas: usize, extra: &str) -> Cluster {
        Self::start_with(dir, replicas, extra, false)
    }

    /// [`Cluster::start`] with each broker reaching the controllers through
    /// proxies of its own ([`Cluster::cut_controllers`]).
    pub fn start_proxied(dir: &Path, replicas: usize, extra: &str) -> Cluster {
        Self::start_with(dir, replicas, extra, true)
    }

    /// Cut (or heal) replica `i`'s links to every controller and its
    /// slaves' links to its HA port: as master, it is cut off from the rest.
    pub fn cut_links(&self, i: usize, cut: bool) {
        for p in self.proxies[i].iter().chain(self.ha_proxies.get(i)) {
            if cut {
                p.cut();
            } else {
                p.heal();
            }
        }
    }

    fn start_with(dir: &Path, replicas: usize, extra: &str, proxied: bool) -> Cluster {
        let controller_ports = free_ports(3);
        let controllers = (0..3)
            .map(|i| start_controller(dir, &controller_ports, i))
            .collect();
        let (namesrv, namesrv_port) = super::start_namesrv(dir);
        let mut c = Cluster {
            dir: dir.to_path_buf(),
            controllers,
            controller_ports,
            namesrv,
            namesrv_port,
            replicas: Vec::new(),
            extra: extra.to_owned(),
            proxies: Vec::new(),
            ha_proxies: Vec::new(),
        };
        for i in 0..replicas {
            if proxied {
                let ps = c
                    .controller_ports
                    .iter()
                    .map(|p| Proxy::start(*p))
                    .collect();
                c.proxies.push(ps);
                let ha_port = free_ports(1)[0];
                let at = std::net::SocketAddr::from(([127, 0, 0, 11 + i as u8], ha_port));
                c.ha_proxies.push(Proxy::start_at(at, ha_port));
            }
            let rdir = dir.join(format!("replica-{i}"));
            std::fs::create_dir_all(&rdir).unwrap();
            c.replicas.push(Replica {
                proc: None,
                dir: rdir.clone(),
                port: 0,
                log: dir.join(format!("replica-{i}.log")),
            });
            c.start_replica(i);
        }
        c
    }

    /// The properties of replica `i`.
    pub fn props(&self, i: usize) -> String {
        let controllers: Vec<String> = match self.proxies.get(i) {
            Some(ps) => ps.iter().map(|p| format!("127.0.0.1:{}", p.port)).collect(),
            None => self
                .controller_ports
                .iter()
                .map(|p| format!("127.0.0.1:{p}"))
                .collect(),
        };
        let ha = match self.ha_proxies.get(i) {
            Some(p) => format!(
                "bindAddress=127.0.0.1\nbrokerIP2=127.0.0.{}\nhaListenPort={}\n",
                11 + i,
                p.port
            ),
            None => String::new(),
        };
        broker_props(
            &self.replicas[i].dir.join("store"),
            &format!(
                "brokerName={GROUP}\nbrokerRole=SYNC_MASTER\nenableControllerMode=true\n\
                 controllerAddr={}\nallAckInSyncStateSet=true\nsyncBrokerMetadataPeriod=300\n\
                 checkSyncStateSetPeriod=300\nbrokerHeartbeatInterval=300\n\
                 controllerHeartBeatTimeoutMills={HB_TIMEOUT_MS}\nhaMaxTimeSlaveNotCatchup=3000\n\
                 haSendHeartbeatInterval=500\nhaHousekeepingInterval=3000\n\
                 defaultTopicQueueNums=1\nnamesrvAddr=127.0.0.1:{}\n{ha}{}",
                controllers.join(";"),
                self.namesrv_port,
                self.extra
            ),
        )
        .replace("brokerName=broker-t\n", "")
        .replace("defaultTopicQueueNums=4\n", "")
    }

    /// (Re)start replica `i` on its store.
    pub fn start_replica(&mut self, i: usize) {
        let props = self.props(i);
        let r = &mut self.replicas[i];
        let cfg = r.dir.join("broker.properties");
        std::fs::write(&cfg, props).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferromq-broker"));
        cmd.arg("-c").arg(&cfg);
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&r.log)
            .unwrap();
        let mut p = spawn_to("broker", cmd, Stdio::from(f), &log_level());
        let line = p.wait_line("listening on", Duration::from_secs(30));
        r.port = super::port_of(&line);
        r.proc = Some(p);
    }

    /// SIGKILL replica `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut p) = self.replicas[i].proc.take() {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }

    /// Runtime info of each live replica.
    pub fn infos(&self) -> Vec<(usize, BTreeMap<String, String>)> {
        self.replicas
            .iter()
            .enumerate()
            .filter(|(_, r)| r.proc.is_some())
            .filter_map(|(i, r)| try_runtime_info(r.port).map(|info| (i, info)))
            .collect()
    }

    /// The live replica that acts as master at the highest epoch, with
    /// that epoch.
    pub fn master(&self) -> Option<(usize, i64)> {
        self.infos()
            .into_iter()
            .filter(|(_, info)| {
                info.get("brokerRole").map(String::as_str) == Some("SYNC_MASTER")
                    && info.get("controllerFenced").map(String::as_str) != Some("true")
            })
            .filter_map(|(i, info)| Some((i, info.get("masterEpoch")?.parse().ok()?)))
            .max_by_key(|(_, e)| *e)
    }

    /// Wait until a master above `epoch` has a SyncStateSet of `members`.
    pub fn wait_master(
        &self,
        above_epoch: i64,
        members: usize,
        timeout: Duration,
    ) -> Option<(usize, i64)> {
        wait_for(timeout, || {
            let (i, e) = self.master().filter(|(_, e)| *e > above_epoch)?;
            let info = try_runtime_info(self.replicas[i].port)?;
            let n = info
                .get("syncStateSet")
                .map(|s| s.split(',').filter(|x| !x.is_empty()).count())
                .unwrap_or(0);
            (n >= members).then_some((i, e))
        })
    }

    /// A master above `epoch` (one replica in sync is enough), or a panic
    /// naming `what` with every replica's log tail.
    pub fn new_master(&self, epoch: i64, what: &str) -> (usize, i64) {
        match self.wait_master(epoch, 1, Duration::from_secs(30)) {
            Some(v) => v,
            None => panic!(
                "{what}: no new master within 30 s\n{}",
                (0..self.replicas.len())
                    .map(|i| format!("--- replica {i}\n{}", self.log_tail(i)))
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        }
    }

    /// The tail of replica `i`'s log, for failure messages.
    pub fn log_tail(&self, i: usize) -> String {
        let text = std::fs::read_to_string(&self.replicas[i].log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

/// Concatenated commitlog bytes of a store (`<store>/commitlog/*`), in file
/// order, starting at the first file's offset (returned with the bytes).
pub fn commitlog_bytes(store: &Path) -> (u64, Vec<u8>) {
    let mut files: Vec<(u64, PathBuf)> = std::fs::read_dir(store.join("commitlog"))
        .map(|rd| {
            rd.filter_map(|e| {
                let e = e.ok()?;
                let off = e.file_name().to_str()?.parse::<u64>().ok()?;
                Some((off, e.path()))
            })
            .collect()
        })
        .unwrap_or_default();
    files.sort();
    let first = files.first().map_or(0, |f| f.0);
    let mut out = Vec::new();
    for (_, p) in files {
        out.extend(std::fs::read(p).unwrap());
    }
    (first, out)
}

/// Wait, bounded, for `f` while printing nothing; `what` names it in the panic.
pub fn must<T>(what: &str, timeout: Duration, f: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    wait_for(timeout, f).unwrap_or_else(|| panic!("{what}: not within {:?}", started.elapsed()))
}

/// The topic the failover producers send to (one queue).
pub const TOPIC: &str = "FailoverTopic";

/// One acknowledged send.
#[derive(Debug, Clone)]
pub struct Ack {
    pub body: String,
    pub queue_offset: u64,
    pub port: u16,
    pub at: Instant,
}

/// The master's port among `ports` (the one answering SYNC_MASTER, not
/// fenced, at the highest epoch).
pub fn find_master(ports: &[u16]) -> Option<u16> {
    ports
        .iter()
        .filter_map(|p| {
            let info = try_runtime_info(*p)?;
            let master = info.get("brokerRole").map(String::as_str) == Some("SYNC_MASTER")
                && info.get("controllerFenced").map(String::as_str) != Some("true");
            let epoch: i64 = info.get("masterEpoch")?.parse().ok()?;
            master.then_some((epoch, *p))
        })
        .max()
        .map(|(_, p)| p)
}

/// Send bodies, each once, until `stop`, one at a time: to the master among
/// `ports` (found again after every failure), or always to `pinned`. Logs
/// what was acknowledged (SEND_OK) in `acks`; returns the sends tried.
pub fn producer(
    ports: Arc<Mutex<Vec<u16>>>,
    pinned: Option<u16>,
    stop: Arc<AtomicBool>,
    acks: Arc<Mutex<Vec<Ack>>>,
) -> u64 {
    // Bodies are unique across producers: each gets its own tag.
    static NEXT_TAG: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let k = NEXT_TAG.fetch_add(1, Ordering::Relaxed);
    let tag = pinned.map_or_else(|| format!("f{k}"), |p| format!("p{p}x{k}"));
    let mut n = 0u64;
    let mut client: Option<(u16, Client)> = None;
    while !stop.load(Ordering::Acquire) {
        if client.is_none() {
            let target = match pinned {
                Some(p) => Some(p),
                None => find_master(&ports.lock().unwrap().clone()),
            };
            match target.and_then(|p| Some((p, Client::try_connect(p, Duration::from_secs(3))?))) {
                Some(c) => client = Some(c),
                None => {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            }
        }
        let (port, c) = client.as_mut().expect("connected");
        n += 1;
        let body = format!("{tag}-{n}");
        let req = Client::send_v2_req(TOPIC, 0, body.as_bytes(), &[]);
        match c.try_invoke(req) {
            Ok(r) if r.code == 0 => {
                let qo = r
                    .ext_fields
                    .opt_i64("queueOffset")
                    .ok()
                    .flatten()
                    .expect("queueOffset in SEND_OK") as u64;
                acks.lock().unwrap().push(Ack {
                    body,
                    queue_offset: qo,
                    port: *port,
                    at: Instant::now(),
                });
            }
            // Not acknowledged (the master lost its replicas, or is no
            // longer the master): look for the master again.
            Ok(_) if pinned.is_none() => {
                client = None;
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(_) => std::thread::sleep(Duration::from_millis(20)),
            Err(_) => {
                client = None;
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    n
}

/// The number in environment variable `var`, or `default`.
pub fn env_num(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A seed from environment variable `var`, else from the clock (never 0).
pub fn env_seed(var: &str) -> u64 {
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    env_num(var, clock)
}

/// A small xorshift, for kill moments.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Every message of queue 0 on the broker at `port`: queue offset -> body.
pub fn read_queue(port: u16) -> BTreeMap<u64, String> {
    let mut c = Client::connect(port);
    let mut out = BTreeMap::new();
    let mut offset = 0u64;
    for _ in 0..100_000 {
        let r = c.pull("failover-check", TOPIC, 0, offset, 32);
        if r.code != 0 {
            break;
        }
        let recs = records(&r.body);
        if recs.is_empty() {
            break;
        }
        for m in recs {
            assert!(
                out.insert(
                    m.queue_offset,
                    String::from_utf8_lossy(&m.body).into_owned()
                )
                .is_none(),
                "queue offset {} read twice",
                m.queue_offset
            );
            offset = m.queue_offset + 1;
        }
    }
    out
}

/// The end checks: on the final master every acknowledged body is at the
/// queue offset its send was answered with (so no offset was acknowledged
/// twice with different bodies), the queue has no gap, no body is stored
/// twice; every live replica catches up and its commitlog equals the
/// master's byte for byte.
pub fn verify(cluster: &Cluster, acks: &[Ack]) {
    let (m, _) = cluster.master().expect("a final master");
    let port = cluster.replicas[m].port;
    let stored = read_queue(port);
    let offsets: Vec<u64> = stored.keys().copied().collect();
    assert_eq!(offsets.first().copied(), Some(0), "the queue starts at 0");
    for w in offsets.windows(2) {
        assert_eq!(w[1], w[0] + 1, "gap in queue offsets after {}", w[0]);
    }
    let mut seen = std::collections::HashSet::new();
    for body in stored.values() {
        assert!(seen.insert(body.clone()), "{body} stored twice");
    }
    for a in acks {
        assert_eq!(
            stored.get(&a.queue_offset),
            Some(&a.body),
            "acknowledged {} at queue offset {} (by port {}) is not there",
            a.body,
            a.queue_offset,
            a.port
        );
    }
    let master_max = logs_equal(cluster, m);
    println!(
        "verified: {} acknowledged messages on the master (port {port}), {} stored, logs equal up to {master_max}",
        acks.len(),
        stored.len()
    );
}

/// The port of the controller (among `ports`) that says it leads now (one
/// round of CONTROLLER_GET_METADATA_INFO), if any.
pub fn controller_leader_now(ports: &[u16]) -> Option<u16> {
    use ferromq_controller::request_code as rc;
    use ferromq_server::remoting::RemotingCommand;
    ports.iter().copied().find(|&p| {
        let req = RemotingCommand::request(rc::CONTROLLER_GET_METADATA_INFO);
        super::controller::try_call(p, &req)
            .is_some_and(|r| r.ext_fields.opt_str("isLeader") == Some("true"))
    })
}

/// `req` answered by the controller leader among `ports` (asked in turn
/// until one answers other than CONTROLLER_NOT_LEADER or an internal
/// error), for at most 30 s.
pub fn call_controllers(
    ports: &[u16],
    req: &ferromq_server::remoting::RemotingCommand,
) -> ferromq_server::remoting::RemotingCommand {
    use ferromq_controller::response_code as code;
    must(
        &format!("a controller leader answering request {}", req.code),
        Duration::from_secs(30),
        || {
            ports.iter().find_map(|&p| {
                let r = super::controller::try_call(p, req)?;
                (r.code != code::CONTROLLER_NOT_LEADER
                    && r.code != code::CONTROLLER_JRAFT_INTERNAL_ERROR)
                    .then_some(r)
            })
        },
    )
}

/// What the controllers hold for the group: CONTROLLER_GET_REPLICA_INFO's
/// master and SyncStateSet, and CONTROLLER_GET_SYNC_STATE_DATA's replicas
/// (id, address), sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupState {
    pub master_id: i64,
    pub master_addr: String,
    pub master_epoch: i64,
    pub sync_state_set: Vec<i64>,
    pub sync_state_set_epoch: i64,
    pub replicas: Vec<(i64, String)>,
}

/// The group's state as the controller leader among `ports` answers it.
pub fn group_state(ports: &[u16], group: &str) -> GroupState {
    use ferromq_controller::request_code as rc;
    use ferromq_server::remoting::RemotingCommand;
    let r = call_controllers(
        ports,
        &RemotingCommand::request(rc::CONTROLLER_GET_REPLICA_INFO).with_ext("brokerName", group),
    );
    assert_eq!(r.code, 0, "replica info: {r:?}");
    let f = &r.ext_fields;
    let body: serde_json::Value = serde_json::from_slice(&r.body).expect("replica info body");
    let mut sync_state_set: Vec<i64> = body["syncStateSet"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_i64()).collect())
        .unwrap_or_default();
    sync_state_set.sort();
    let d = call_controllers(
        ports,
        &RemotingCommand::request(rc::CONTROLLER_GET_SYNC_STATE_DATA)
            .with_body(serde_json::to_vec(&[group]).unwrap()),
    );
    assert_eq!(d.code, 0, "sync state data: {d:?}");
    let data: serde_json::Value = serde_json::from_slice(&d.body).expect("sync state data body");
    let info = &data["replicasInfoTable"][group];
    let mut replicas: Vec<(i64, String)> = ["inSyncReplicas", "notInSyncReplicas"]
        .iter()
        .flat_map(|k| info[*k].as_array().cloned().unwrap_or_default())
        .filter_map(|m| {
            Some((
                m["brokerId"].as_i64()?,
                m["brokerAddress"].as_str()?.to_owned(),
            ))
        })
        .collect();
    replicas.sort();
    GroupState {
        master_id: f.opt_i64("masterBrokerId").ok().flatten().unwrap_or(-1),
        master_addr: f.opt_str("masterAddress").unwrap_or("").to_owned(),
        master_epoch: f.opt_i64("masterEpoch").ok().flatten().unwrap_or(-1),
        sync_state_set,
        sync_state_set_epoch: body["syncStateSetEpoch"].as_i64().unwrap_or(-1),
        replicas,
    }
}

/// Write controller `name`'s properties (peers `peers_list`, store
/// `store`) and spawn it with its log (stderr) in `<dir>/<name>.log`
/// (appended); nothing is waited for.
pub fn spawn_controller(
    dir: &Path,
    name: &str,
    self_id: &str,
    peers_list: &str,
    store: &Path,
) -> Proc {
    let cfg = dir.join(format!("{name}.properties"));
    std::fs::write(
        &cfg,
        format!(
            "controllerDLegerGroup=FailoverGroup\ncontrollerDLegerPeers={peers_list}\ncontrollerDLegerSelfId={self_id}\n\
             controllerStorePath={}\nscanNotActiveBrokerInterval=500\nenableElectUncleanMaster=false\n\
             notifyBrokerRoleChanged=false\n",
            store.display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferromq-controller"));
    cmd.arg("-c").arg(&cfg);
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{name}.log")))
        .unwrap();
    spawn_to("controller", cmd, Stdio::from(f), &log_level())
}

/// Whether `p` exited within `timeout`, with its status.
pub fn exited_within(p: &mut Proc, timeout: Duration) -> Option<std::process::ExitStatus> {
    wait_for(timeout, || p.child.try_wait().ok().flatten())
}

/// SIGKILL controller `i` of the cluster (its `Proc` is left in place,
/// dead, until [`Cluster::restart_controller`]).
pub fn kill_controller(cluster: &mut Cluster, i: usize) {
    let p = &mut cluster.controllers[i];
    let _ = p.child.kill();
    let _ = p.child.wait();
}

/// Start controller `i` again on its store and port.
pub fn restart_controller(cluster: &mut Cluster, i: usize) {
    let p = start_controller(&cluster.dir, &cluster.controller_ports, i);
    cluster.controllers[i] = p;
}

/// The contents of replica `i`'s `brokerIdentity` file.
pub fn identity_of(cluster: &Cluster, i: usize) -> String {
    std::fs::read_to_string(cluster.replicas[i].dir.join("store").join("brokerIdentity"))
        .unwrap_or_default()
}

/// The longest pause between two consecutive acknowledgements in
/// `[from, to]` (counting from `from` and up to `to`).
pub fn longest_gap(acks: &[Ack], from: Instant, to: Instant) -> Duration {
    let mut times: Vec<Instant> = acks
        .iter()
        .map(|a| a.at)
        .filter(|t| *t >= from && *t <= to)
        .collect();
    times.sort();
    let mut prev = from;
    let mut gap = Duration::ZERO;
    for t in times.into_iter().chain(std::iter::once(to)) {
        gap = gap.max(t.saturating_duration_since(prev));
        prev = t;
    }
    gap
}

/// Controller `i`'s `raft-log` file (empty when it cannot be read).
pub fn raft_log(cluster: &Cluster, i: usize) -> Vec<u8> {
    std::fs::read(
        cluster
            .dir
            .join(format!("controller-store-n{i}"))
            .join("raft-log"),
    )
    .unwrap_or_default()
}

/// Every live replica catches up with the master `m` and its commitlog
/// equals the master's byte for byte; returns the master's log end.
pub fn logs_equal(cluster: &Cluster, m: usize) -> u64 {
    let port = cluster.replicas[m].port;
    let master_max: u64 = must("the master's log end", Duration::from_secs(5), || {
        try_runtime_info(port)?
            .get("commitLogMaxOffset")?
            .parse()
            .ok()
    });
    let (mfirst, mbytes) = commitlog_bytes(&cluster.replicas[m].dir.join("store"));
    for (i, r) in cluster.replicas.iter().enumerate() {
        if i == m || r.proc.is_none() {
            continue;
        }
        must(
            &format!("replica {i} caught up to {master_max}"),
            Duration::from_secs(30),
            || {
                let max: u64 = try_runtime_info(r.port)?
                    .get("commitLogMaxOffset")?
                    .parse()
                    .ok()?;
                (max == master_max).then_some(())
            },
        );
        let (first, bytes) = commitlog_bytes(&r.dir.join("store"));
        let from = first.max(mfirst);
        let a = &mbytes[(from - mfirst) as usize..(master_max - mfirst) as usize];
        let b = &bytes[(from - first) as usize..(master_max - first) as usize];
        assert!(
            a == b,
            "replica {i}'s commitlog differs from the master's in [{from}, {master_max})"
        );
    }
    master_max
}
