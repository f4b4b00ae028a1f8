//! Test harness: start the real binaries on 127.0.0.1 with OS-chosen ports, and
//! a tiny blocking RocketMQ client built on the crate's codec.
#![allow(dead_code, missing_docs)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ferromq_engine::message::decode_records;
use ferromq_engine::{MessageExt, MessageProperties};
use ferromq_server::remoting::codec::{decode_frame, encode};
use ferromq_server::remoting::{request, RemotingCommand};

pub mod acl_interop;
pub mod controller;
pub mod failover;
pub mod hostile;
pub mod limited;
pub mod longpoll;
pub mod proxy;
pub mod scrape;

/// A child process killed (SIGKILL) and reaped when dropped.
pub struct Proc {
    pub child: Child,
    pub name: &'static str,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    /// Wait (bounded) for a stdout line containing `needle`.
    pub fn wait_line(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return l,
                Ok(_) => continue,
                Err(_) => panic!("{}: no line with `{needle}` within {timeout:?}", self.name),
            }
        }
    }

    /// Send SIGTERM (via the `kill` command) and wait, bounded, for the exit.
    pub fn terminate(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let st = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(st.success(), "kill -TERM failed");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {timeout:?} after SIGTERM",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(name: &'static str, cmd: Command) -> Proc {
    let log = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into());
    spawn_to(name, cmd, Stdio::inherit(), &log)
}

/// `spawn` with the child's stderr (its log) going to `stderr`, at `rust_log`.
pub fn spawn_to(name: &'static str, mut cmd: Command, stderr: Stdio, rust_log: &str) -> Proc {
    cmd.stdout(Stdio::piped())
        .stderr(stderr)
        .stdin(Stdio::null())
        .env("RUST_LOG", rust_log);
    let mut child = cmd.spawn().expect("spawn binary");
    let out = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(l) = line else { break };
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    Proc {
        child,
        name,
        lines: rx,
    }
}

pub fn port_of(line: &str) -> u16 {
    // "... listening on 127.0.0.1:PORT[ as ...]"
    let after = line.split("listening on ").nth(1).expect("listening line");
    let addr = after.split_whitespace().next().expect("address");
    addr.rsplit(':').next().unwrap().parse().expect("port")
}

/// `cmd` signed as a RocketMQ client's ACL hook signs it
/// (`AclClientRPCHook`): `AccessKey`, then `Signature` over the other fields
/// and the body.
pub fn signed(
    mut cmd: ferromq_server::remoting::RemotingCommand,
    access_key: &str,
    secret_key: &str,
) -> ferromq_server::remoting::RemotingCommand {
    ferromq_server::acl::Credentials::new(access_key, secret_key)
        .expect("non-blank test credentials")
        .sign(&mut cmd);
    cmd
}

/// The HA port a master broker printed (`ferromq-broker HA port IP:PORT`).
pub fn ha_port(broker: &mut Proc) -> u16 {
    let line = broker.wait_line("HA port", Duration::from_secs(30));
    line.rsplit(':')
        .next()
        .and_then(|p| p.trim().parse().ok())
        .expect("HA port")
}

/// Run `ferromq-admin -n 127.0.0.1:<ns_port> <args>` to its end.
pub fn admin(ns_port: u16, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ferromq-admin"))
        .arg("-n")
        .arg(format!("127.0.0.1:{ns_port}"))
        .args(args)
        .output()
        .expect("run ferromq-admin")
}

/// [`admin`] that must succeed: its standard output.
pub fn admin_ok(ns_port: u16, args: &[&str]) -> String {
    let o = admin(ns_port, args);
    assert!(
        o.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// Start a name server; returns it and its port.
pub fn start_namesrv(dir: &Path) -> (Proc, u16) {
    let cfg = dir.join("namesrv.properties");
    std::fs::write(&cfg, "listenPort=0\nbindAddress=127.0.0.1\n").unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferromq-namesrv"));
    cmd.arg("-c").arg(&cfg);
    let mut p = spawn("namesrv", cmd);
    let line = p.wait_line("listening on", Duration::from_secs(20));
    let port = port_of(&line);
    (p, port)
}

/// Start a name server whose log (stderr, at `info`) goes to the file `log`.
pub fn start_namesrv_logged(dir: &Path, log: &Path) -> (Proc, u16) {
    let cfg = dir.join("namesrv.properties");
    std::fs::write(&cfg, "listenPort=0\nbindAddress=127.0.0.1\n").unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferromq-namesrv"));
    cmd.arg("-c").arg(&cfg);
    let f = std::fs::File::create(log).unwrap();
    let mut p = spawn_to("namesrv", cmd, Stdio::from(f), "info");
    let line = p.wait_line("listening on", Duration::from_secs(20));
    let port = port_of(&line);
    (p, port)
}

/// Properties for a broker with a small store under `store`.
///
/// The disk guard's levels are set near full: the test machine's disk is shared,
/// and at RocketMQ's defaults a partition that others filled past 75 % makes the
/// broker delete (or past 90 % refuse) a test's messages mid-test.
pub fn broker_props(store: &Path, extra: &str) -> String {
    format!(
        "brokerClusterName=TestCluster\nbrokerName=broker-t\nbrokerId=0\nlistenPort=0\n\
         brokerIP1=127.0.0.1\nstorePathRootDir={}\nmapedFileSizeCommitLog=1048576\n\
         mapedFileSizeConsumeQueue=6000\ndefaultTopicQueueNums=4\nautoCreateTopicEnable=true\n\
         flushConsumerOffsetInterval=1000\nsendMessageThreadPoolNums=2\npullMessageThreadPoolNums=4\n\
         diskMaxUsedSpaceRatio=95\ndiskSpaceCleanForciblyRatio=98\ndiskSpaceWarningLevelRatio=99\n{extra}",
        store.display()
    )
}

/// Start a broker with `props`, optionally registering with a name server.
pub fn start_broker(dir: &Path, props: &str, namesrv_port: Option<u16>) -> (Proc, u16) {
    let ports: Vec<u16> = namesrv_port.into_iter().collect();
    start_broker_ns(dir, props, &ports)
}

/// Start a broker with `props` that registers with every name server of `namesrv_ports`.
pub fn start_broker_ns(dir: &Path, props: &str, namesrv_ports: &[u16]) -> (Proc, u16) {
    start_broker_env_ns(dir, props, namesrv_ports, &[])
}

/// [`start_broker`] with extra environment variables (failpoints).
pub fn start_broker_env(
    dir: &Path,
    props: &str,
    namesrv_port: Option<u16>,
    envs: &[(&str, &str)],
) -> (Proc, u16) {
    let ports: Vec<u16> = namesrv_port.into_iter().collect();
    start_broker_env_ns(dir, props, &ports, envs)
}

/// [`start_broker_ns`] with extra environment variables.
pub fn start_broker_env_ns(
    dir: &Path,
    props: &str,
    namesrv_ports: &[u16],
    envs: &[(&str, &str)],
) -> (Proc, u16) {
    let mut cmd = broker_command(env!("CARGO_BIN_EXE_ferromq-broker"), dir, props);
    cmd.envs(envs.iter().copied());
    if !namesrv_ports.is_empty() {
        let list: Vec<String> = namesrv_ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        cmd.arg("-n").arg(list.join(";"));
    }
    let mut p = spawn("broker", cmd);
    let line = p.wait_line("listening on", Duration::from_secs(30));
    let port = port_of(&line);
    (p, port)
}

/// The broker binary under test: `FERROMQ_TEST_BROKER_BIN` when set and not
/// empty (an older build, to show that a test fails there), else this crate's.
pub fn broker_bin() -> std::ffi::OsString {
    std::env::var_os("FERROMQ_TEST_BROKER_BIN")
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_ferromq-broker").into())
}

/// A command that starts broker binary `bin` on 127.0.0.1 with `props`
/// (written to `dir/broker.properties`).
pub fn broker_command(bin: impl AsRef<std::ffi::OsStr>, dir: &Path, props: &str) -> Command {
    std::fs::create_dir_all(dir).unwrap();
    let cfg = dir.join("broker.properties");
    std::fs::write(&cfg, props).unwrap();
    let mut cmd = Command::new(bin);
    cmd.arg("-c")
        .arg(&cfg)
        .arg("--bind-address")
        .arg("127.0.0.1");
    cmd
}

/// Start [`broker_bin`] with `props`; its log (stderr, at `rust_log`) goes to
/// the file `log`.
pub fn start_broker_logged_at(dir: &Path, props: &str, log: &Path, rust_log: &str) -> (Proc, u16) {
    let cmd = broker_command(broker_bin(), dir, props);
    let f = std::fs::File::create(log).unwrap();
    let mut p = spawn_to("broker", cmd, Stdio::from(f), rust_log);
    let line = p.wait_line("listening on", Duration::from_secs(30));
    (p, port_of(&line))
}

/// Properties of one broker of a master/slave pair named `name`: a master
/// (`brokerId=0`, `role` ASYNC_MASTER or SYNC_MASTER) or a slave (`id` > 0,
/// `role` SLAVE), with a small store under `store`.
pub fn ha_props(store: &Path, name: &str, id: i64, role: &str, extra: &str) -> String {
    broker_props(
        store,
        &format!("brokerName={name}\nbrokerId={id}\nbrokerRole={role}\n{extra}"),
    )
    .replace("brokerName=broker-t\n", "")
    .replacen("brokerId=0\n", "", 1)
}

/// GET_BROKER_RUNTIME_INFO of the broker on `port`, or None when it does
/// not answer within 2 s (a killed or starting broker).
pub fn try_runtime_info(port: u16) -> Option<std::collections::BTreeMap<String, String>> {
    let mut c = Client::try_connect(port, Duration::from_secs(2))?;
    let r = c
        .try_invoke(RemotingCommand::request(request::GET_BROKER_RUNTIME_INFO))
        .ok()?;
    if r.code != 0 {
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

/// GET_BROKER_RUNTIME_INFO of the broker on `port`.
pub fn runtime_info(port: u16) -> std::collections::BTreeMap<String, String> {
    let mut c = Client::connect(port);
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

/// A topic's route as a real client reads it: ask the name servers in turn and
/// take the first answer; per broker name, its addresses by broker id.
pub fn route_brokers(
    namesrv_ports: &[u16],
    topic: &str,
) -> Option<Vec<(String, std::collections::BTreeMap<i64, String>)>> {
    for p in namesrv_ports {
        let Ok(stream) = TcpStream::connect(("127.0.0.1", *p)) else {
            continue;
        };
        drop(stream);
        let mut c = Client::connect(*p);
        let r = c.invoke(
            RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC)
                .with_ext("topic", topic)
                .with_ext("acceptStandardJsonOnly", true),
        );
        if r.code != 0 {
            continue;
        }
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("route JSON");
        let mut out = Vec::new();
        for bd in v["brokerDatas"].as_array().into_iter().flatten() {
            let name = bd["brokerName"].as_str().unwrap_or_default().to_string();
            let addrs = bd["brokerAddrs"]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(id, a)| Some((id.parse().ok()?, a.as_str()?.to_string())))
                .collect();
            out.push((name, addrs));
        }
        return Some(out);
    }
    None
}

/// The broker a consumer pulls from, as RocketMQ's client picks it: the master
/// (id 0) if listed, else any slave.
pub fn pick_pull_broker(addrs: &std::collections::BTreeMap<i64, String>) -> Option<String> {
    addrs.get(&0).or_else(|| addrs.values().next()).cloned()
}

pub fn temp_dir() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().to_path_buf();
    (d, p)
}

/// A blocking client: one request at a time.
pub struct Client {
    pub stream: TcpStream,
    next_opaque: i32,
    /// Requests the server sent us (e.g. NOTIFY_CONSUMER_IDS_CHANGED) while we
    /// waited for a response.
    pub server_requests: Vec<RemotingCommand>,
}

impl Client {
    /// [`Client::connect`] that gives up (None) when the port refuses or
    /// does not accept within `timeout`; reads and writes time out after
    /// `timeout` too.
    pub fn try_connect(port: u16, timeout: Duration) -> Option<Client> {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
        stream.set_read_timeout(Some(timeout)).ok()?;
        stream.set_write_timeout(Some(timeout)).ok()?;
        stream.set_nodelay(true).ok()?;
        Some(Client {
            stream,
            next_opaque: 1,
            server_requests: Vec::new(),
        })
    }

    pub fn connect(port: u16) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream
            .set_write_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            next_opaque: 1,
            server_requests: Vec::new(),
        }
    }

    pub fn write_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// Read one frame.
    pub fn read(&mut self) -> RemotingCommand {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).expect("read length");
        let n = i32::from_be_bytes(len) as usize;
        let mut frame = vec![0u8; n];
        self.stream.read_exact(&mut frame).expect("read frame");
        decode_frame(&frame).expect("decode")
    }

    pub fn invoke(&mut self, mut req: RemotingCommand) -> RemotingCommand {
        req.opaque = self.next_opaque;
        self.next_opaque += 1;
        self.write_raw(&encode(&req).unwrap());
        // Bounded: the read timeout ends a silent server.
        loop {
            let resp = self.read();
            if !resp.is_response() {
                self.server_requests.push(resp);
                continue;
            }
            assert_eq!(resp.opaque, req.opaque);
            return resp;
        }
    }

    /// The next request the server sent us (stashed or read now).
    pub fn next_server_request(&mut self) -> RemotingCommand {
        if !self.server_requests.is_empty() {
            return self.server_requests.remove(0);
        }
        let r = self.read();
        assert!(!r.is_response(), "unexpected response {r:?}");
        r
    }

    /// True when the server closes the connection within `timeout`.
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        self.stream.set_read_timeout(Some(timeout)).unwrap();
        let mut b = [0u8; 64];
        loop {
            match self.stream.read(&mut b) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    }

    pub fn send_v2(
        &mut self,
        topic: &str,
        queue_id: i32,
        body: &[u8],
        tags: Option<&str>,
        keys: Option<&str>,
    ) -> RemotingCommand {
        let mut extra = Vec::new();
        if let Some(t) = tags {
            extra.push(("TAGS", t));
        }
        if let Some(k) = keys {
            extra.push(("KEYS", k));
        }
        self.send_v2_props(topic, queue_id, body, &extra)
    }

    /// SEND_MESSAGE_V2 with the given message properties (plus `WAIT=true`).
    pub fn send_v2_props(
        &mut self,
        topic: &str,
        queue_id: i32,
        body: &[u8],
        extra: &[(&str, &str)],
    ) -> RemotingCommand {
        self.invoke(Self::send_v2_req(topic, queue_id, body, extra))
    }

    /// A SEND_MESSAGE_V2 request with the given properties (plus `WAIT=true`).
    pub fn send_v2_req(
        topic: &str,
        queue_id: i32,
        body: &[u8],
        extra: &[(&str, &str)],
    ) -> RemotingCommand {
        let mut props = MessageProperties::new();
        for (k, v) in extra {
            props.insert(*k, *v);
        }
        props.insert("WAIT", "true");
        let mut enc = Vec::new();
        props.encode_into(&mut enc);
        RemotingCommand::request(request::SEND_MESSAGE_V2)
            .with_ext("a", "test-producer")
            .with_ext("b", topic)
            .with_ext("c", "TBW102")
            .with_ext("d", 4)
            .with_ext("e", queue_id)
            .with_ext("f", 0)
            .with_ext("g", 1_700_000_000_000i64)
            .with_ext("h", 0)
            .with_ext("i", String::from_utf8(enc).unwrap())
            .with_ext("j", 0)
            .with_ext("k", false)
            .with_body(body.to_vec())
    }

    /// `invoke` that returns an I/O error instead of panicking (a peer that
    /// went away, as a killed broker does).
    pub fn try_invoke(&mut self, mut req: RemotingCommand) -> std::io::Result<RemotingCommand> {
        req.opaque = self.next_opaque;
        self.next_opaque += 1;
        let bytes = encode(&req).map_err(|e| std::io::Error::other(e.to_string()))?;
        self.stream.write_all(&bytes)?;
        loop {
            let mut len = [0u8; 4];
            self.stream.read_exact(&mut len)?;
            let n = i32::from_be_bytes(len) as usize;
            let mut frame = vec![0u8; n];
            self.stream.read_exact(&mut frame)?;
            let resp = decode_frame(&frame).map_err(|e| std::io::Error::other(e.to_string()))?;
            if !resp.is_response() {
                self.server_requests.push(resp);
                continue;
            }
            if resp.opaque != req.opaque {
                return Err(std::io::Error::other("response to another request"));
            }
            return Ok(resp);
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn pull_req(
        group: &str,
        topic: &str,
        queue_id: i32,
        offset: u64,
        max: i32,
        sys_flag: i32,
        suspend_ms: i64,
        sub: &str,
    ) -> RemotingCommand {
        RemotingCommand::request(request::PULL_MESSAGE)
            .with_ext("consumerGroup", group)
            .with_ext("topic", topic)
            .with_ext("queueId", queue_id)
            .with_ext("queueOffset", offset)
            .with_ext("maxMsgNums", max)
            .with_ext("sysFlag", sys_flag)
            .with_ext("commitOffset", 0)
            .with_ext("suspendTimeoutMillis", suspend_ms)
            .with_ext("subscription", sub)
            .with_ext("subVersion", 0)
            .with_ext("expressionType", "TAG")
    }

    pub fn pull(
        &mut self,
        group: &str,
        topic: &str,
        queue_id: i32,
        offset: u64,
        max: i32,
    ) -> RemotingCommand {
        self.invoke(Self::pull_req(
            group, topic, queue_id, offset, max, 0x4, 0, "*",
        ))
    }

    pub fn offset_req(code: i32, topic: &str, queue_id: i32) -> RemotingCommand {
        RemotingCommand::request(code)
            .with_ext("topic", topic)
            .with_ext("queueId", queue_id)
    }
}

/// Decode a pull body.
pub fn records(body: &[u8]) -> Vec<MessageExt> {
    decode_records(body).expect("pull body decodes as stored records")
}

/// Poll `f` every 50 ms until it returns Some or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Run an interop client script (`program script args...`) with `HOME` set to
/// `home`, bounded by `timeout` (killed on expiry or when the test panics);
/// returns its stdout lines after asserting it exited with success.
pub fn run_client_script(
    program: &str,
    script: &str,
    args: &[String],
    home: &Path,
    timeout: Duration,
) -> Vec<String> {
    let mut all = vec![script.to_string()];
    all.extend_from_slice(args);
    run_client(program, &all, home, timeout)
}

/// Run an interop client program with `args` and `HOME` set to `home`, bounded
/// by `timeout` (killed on expiry or when the test panics); returns its stdout
/// lines after asserting it exited with success.
pub fn run_client(program: &str, args: &[String], home: &Path, timeout: Duration) -> Vec<String> {
    struct Guard(Child);
    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    std::fs::create_dir_all(home).unwrap();
    let mut child = Command::new(program)
        .args(args)
        .env("HOME", home)
        .env("PYTHONUNBUFFERED", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
    let out = child.stdout.take().expect("stdout");
    let mut guard = Guard(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(l) = line else { break };
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + timeout;
    let mut lines = Vec::new();
    let status = loop {
        while let Ok(l) = rx.try_recv() {
            eprintln!("{program}: {l}");
            lines.push(l);
        }
        if let Some(st) = guard.0.try_wait().expect("try_wait") {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "{program} {args:?} did not finish within {timeout:?}; output: {lines:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    while let Ok(l) = rx.recv_timeout(Duration::from_millis(500)) {
        eprintln!("{program}: {l}");
        lines.push(l);
    }
    if !status.success() {
        dump_client_logs(&home.join("logs"));
    }
    assert!(status.success(), "{program} {args:?} failed: {lines:#?}");
    lines
}

/// Print the last lines of every log file a client wrote under `dir`
/// (the C++ client logs to `$HOME/logs/rocketmq-cpp`), so that a failure in
/// CI says what the client saw.
fn dump_client_logs(dir: &Path) {
    let mut stack = vec![dir.to_path_buf()];
    let mut budget = 64usize;
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            budget = budget.saturating_sub(1);
            if budget == 0 {
                return;
            }
            let text = String::from_utf8_lossy(&std::fs::read(&p).unwrap_or_default()).into_owned();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(80)..];
            eprintln!("---- last {} lines of {} ----", tail.len(), p.display());
            for l in tail {
                eprintln!("{l}");
            }
        }
    }
}

/// The `RESULT ...` line of a client script, checked for each `want` substring.
pub fn result_line(lines: &[String], wants: &[&str]) -> String {
    let r = lines
        .iter()
        .find(|l| l.starts_with("RESULT "))
        .expect("a RESULT line")
        .clone();
    for w in wants {
        assert!(r.contains(w), "{w} missing in {r}");
    }
    r
}

/// `Ok` when `python3` can run `import_stmt` (the PyPI package
/// `rocketmq-client-python==0.5.0rc2`, which bundles Apache's C++ client);
/// otherwise why not, with the install command. Real-client tests skip on `Err`.
pub fn python_rocketmq_available(import_stmt: &str) -> Result<(), String> {
    match Command::new("python3")
        .args(["-c", import_stmt])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
    {
        Err(e) => Err(format!("python3 not runnable: {e}")),
        Ok(o) if !o.status.success() => Err(format!(
            "`{import_stmt}` failed ({}); install with `python3 -m pip install rocketmq-client-python==0.5.0rc2`",
            String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("")
        )),
        Ok(_) => Ok(()),
    }
}

/// The sum of GET_MAX_OFFSET over queues `0..queues` of `topic` on the broker
/// at `port`: how many messages the topic holds.
pub fn total_max_offset(port: u16, topic: &str, queues: i32) -> i64 {
    let mut c = Client::connect(port);
    (0..queues)
        .map(|q| {
            let r = c.invoke(Client::offset_req(request::GET_MAX_OFFSET, topic, q));
            assert_eq!(r.code, 0, "GET_MAX_OFFSET {topic} {q}: {:?}", r.remark);
            r.ext_fields.get_i64("offset").unwrap()
        })
        .sum()
}

/// Name-validation and config-persistence helpers (issue 17).
pub mod names;

/// A binary of the interop crate `interop/rust-client` (outside the
/// workspace; `.ci/run` builds it): `$env_var` when set, else the newest of
/// the crate's debug and release builds of `bin_name`. `Err` says why there
/// is none, for the test's SKIPPED line.
pub fn interop_bin(bin_name: &str, env_var: &str) -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os(env_var) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("{env_var}={} is not a file", p.display()))
        };
    }
    let target = concat!(env!("CARGO_MANIFEST_DIR"), "/../interop/rust-client/target");
    ["debug", "release"]
        .iter()
        .map(|profile| PathBuf::from(target).join(profile).join(bin_name))
        .filter_map(|p| {
            let modified = std::fs::metadata(&p).and_then(|m| m.modified()).ok()?;
            Some((modified, p))
        })
        .max()
        .map(|(_, p)| p)
        .ok_or_else(|| {
            format!(
                "{bin_name} is not built; build it with \
                 `cargo build --manifest-path interop/rust-client/Cargo.toml` \
                 (or set {env_var})"
            )
        })
}
