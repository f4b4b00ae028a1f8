//! A broker started with a given open-file limit (through `prlimit`), and
//! runtime info read over a connection the test already holds (a broker out
//! of descriptors accepts no new one).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ferromq_server::remoting::{request, RemotingCommand};

use super::{port_of, spawn, Client, Proc};

/// The broker binary under test: `FERROMQ_TEST_BROKER_BIN` when set (to run
/// a test against another build), else this build's.
pub fn broker_bin() -> PathBuf {
    std::env::var_os("FERROMQ_TEST_BROKER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_ferromq-broker")))
}

/// Start a broker with `props` under `prlimit --nofile=soft:hard`; `None`
/// (with a message) when `prlimit` cannot be run.
pub fn start_broker_with_nofile(
    dir: &Path,
    props: &str,
    soft: u64,
    hard: u64,
) -> Option<(Proc, u16)> {
    if Command::new("prlimit").arg("--version").output().is_err() {
        eprintln!("SKIPPED: prlimit (util-linux) is not installed");
        return None;
    }
    std::fs::create_dir_all(dir).unwrap();
    let cfg = dir.join("broker.properties");
    std::fs::write(&cfg, props).unwrap();
    let mut cmd = Command::new("prlimit");
    cmd.arg(format!("--nofile={soft}:{hard}"))
        .arg(broker_bin())
        .arg("-c")
        .arg(&cfg)
        .arg("--bind-address")
        .arg("127.0.0.1");
    let mut p = spawn("broker", cmd);
    let line = p.wait_line("listening on", Duration::from_secs(30));
    Some((p, port_of(&line)))
}

/// Start a name server under `prlimit --nofile=soft:hard`; `None` (with a
/// message) when `prlimit` cannot be run.
pub fn start_namesrv_with_nofile(dir: &Path, soft: u64, hard: u64) -> Option<(Proc, u16)> {
    if Command::new("prlimit").arg("--version").output().is_err() {
        eprintln!("SKIPPED: prlimit (util-linux) is not installed");
        return None;
    }
    let cfg = dir.join("namesrv.properties");
    std::fs::write(&cfg, "listenPort=0\nbindAddress=127.0.0.1\n").unwrap();
    let mut cmd = Command::new("prlimit");
    cmd.arg(format!("--nofile={soft}:{hard}"))
        .arg(env!("CARGO_BIN_EXE_ferromq-namesrv"))
        .arg("-c")
        .arg(&cfg);
    let mut p = spawn("namesrv", cmd);
    let line = p.wait_line("listening on", Duration::from_secs(20));
    Some((p, port_of(&line)))
}

/// GET_BROKER_RUNTIME_INFO over `c`.
pub fn runtime_info_via(c: &mut Client) -> std::collections::BTreeMap<String, String> {
    let r = c.invoke(RemotingCommand::request(request::GET_BROKER_RUNTIME_INFO));
    assert_eq!(r.code, 0, "runtime info: {:?}", r.remark);
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("runtime info JSON");
    v["table"]
        .as_object()
        .expect("table")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect()
}

/// The soft and hard open-file limits of process `pid` (from /proc).
pub fn nofile_of(pid: u32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files line");
    let nums: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (nums[0], nums[1])
}
