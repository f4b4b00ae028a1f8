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

fn spawn(name: &'static str, mut cmd: Command) -> Proc {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .stdin(Stdio::null())
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
        );
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

fn port_of(line: &str) -> u16 {
    // "... listening on 127.0.0.1:PORT[ as ...]"
    let after = line.split("listening on ").nth(1).expect("listening line");
    let addr = after.split_whitespace().next().expect("address");
    addr.rsplit(':').next().unwrap().parse().expect("port")
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

/// Properties for a broker with a small store under `store`.
pub fn broker_props(store: &Path, extra: &str) -> String {
    format!(
        "brokerClusterName=TestCluster\nbrokerName=broker-t\nbrokerId=0\nlistenPort=0\n\
         brokerIP1=127.0.0.1\nstorePathRootDir={}\nmapedFileSizeCommitLog=1048576\n\
         mapedFileSizeConsumeQueue=6000\ndefaultTopicQueueNums=4\nautoCreateTopicEnable=true\n\
         flushConsumerOffsetInterval=1000\nsendMessageThreadPoolNums=2\npullMessageThreadPoolNums=4\n{extra}",
        store.display()
    )
}

/// Start a broker with `props`, optionally registering with a name server.
pub fn start_broker(dir: &Path, props: &str, namesrv_port: Option<u16>) -> (Proc, u16) {
    start_broker_env(dir, props, namesrv_port, &[])
}

/// [`start_broker`] with extra environment variables (failpoints).
pub fn start_broker_env(
    dir: &Path,
    props: &str,
    namesrv_port: Option<u16>,
    envs: &[(&str, &str)],
) -> (Proc, u16) {
    let cfg = dir.join("broker.properties");
    std::fs::write(&cfg, props).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferromq-broker"));
    cmd.envs(envs.iter().copied());
    cmd.arg("-c")
        .arg(&cfg)
        .arg("--bind-address")
        .arg("127.0.0.1");
    if let Some(p) = namesrv_port {
        cmd.arg("-n").arg(format!("127.0.0.1:{p}"));
    }
    let mut p = spawn("broker", cmd);
    let line = p.wait_line("listening on", Duration::from_secs(30));
    let port = port_of(&line);
    (p, port)
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
        let mut props = MessageProperties::new();
        if let Some(t) = tags {
            props.insert("TAGS", t);
        }
        if let Some(k) = keys {
            props.insert("KEYS", k);
        }
        props.insert("WAIT", "true");
        let mut enc = Vec::new();
        props.encode_into(&mut enc);
        let req = RemotingCommand::request(request::SEND_MESSAGE_V2)
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
            .with_body(body.to_vec());
        self.invoke(req)
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
    struct Guard(Child);
    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    std::fs::create_dir_all(home).unwrap();
    let mut child = Command::new(program)
        .arg(script)
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
            "{script} did not finish within {timeout:?}; output: {lines:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    while let Ok(l) = rx.recv_timeout(Duration::from_millis(500)) {
        eprintln!("{program}: {l}");
        lines.push(l);
    }
    assert!(status.success(), "{script} failed: {lines:#?}");
    lines
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
