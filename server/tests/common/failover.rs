//! A controller-mode cluster as real processes, for the failover tests:
//! three standalone controllers, one name server, one broker group of
//! three replicas in controller mode (`enableControllerMode=true`), each
//! with its own store directory that survives its restarts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::controller::{free_ports, peers};
use super::{broker_props, spawn_to, try_runtime_info, wait_for, Proc};

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
             notifyBrokerRoleChanged=false\n",
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
        };
        for i in 0..replicas {
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
        let controllers: Vec<String> = self
            .controller_ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        broker_props(
            &self.replicas[i].dir.join("store"),
            &format!(
                "brokerName={GROUP}\nbrokerRole=SYNC_MASTER\nenableControllerMode=true\n\
                 controllerAddr={}\nallAckInSyncStateSet=true\nsyncBrokerMetadataPeriod=300\n\
                 checkSyncStateSetPeriod=300\nbrokerHeartbeatInterval=300\n\
                 controllerHeartBeatTimeoutMills={HB_TIMEOUT_MS}\nhaMaxTimeSlaveNotCatchup=3000\n\
                 haSendHeartbeatInterval=500\nhaHousekeepingInterval=3000\n\
                 defaultTopicQueueNums=1\nnamesrvAddr=127.0.0.1:{}\n{}",
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
    pub fn wait_master(&self, above_epoch: i64, members: usize, timeout: Duration) -> Option<(usize, i64)> {
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
