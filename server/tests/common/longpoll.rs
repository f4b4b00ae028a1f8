//! Helpers for the long-polling abuse, batch-limit and remark tests: a broker
//! with its log in a file, pipelined requests, held-pull counts, process RSS,
//! batch bodies.

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use ferromq_server::remoting::codec::encode;
use ferromq_server::remoting::{request, RemotingCommand};

use super::{broker_bin, port_of, runtime_info, Proc};

/// Start a broker ([`broker_bin`]) with `props` whose log (stderr, at
/// `info`) goes to `log`.
pub fn start_broker_logged(dir: &Path, props: &str, log: &Path) -> (Proc, u16) {
    super::start_broker_logged_at(dir, props, log, "info")
}

/// [`super::start_broker`] (no name server) with [`broker_bin`].
pub fn start_broker_bin(dir: &Path, props: &str) -> (Proc, u16) {
    let mut p = super::spawn("broker", super::broker_command(broker_bin(), dir, props));
    let line = p.wait_line("listening on", Duration::from_secs(30));
    (p, port_of(&line))
}

/// `pullHoldCount` of the broker's runtime info: None when it reports none
/// or does not answer within 10 s.
pub fn held_pulls(port: u16) -> Option<u64> {
    let mut c = super::Client::connect(port);
    c.stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let r = c
        .try_invoke(RemotingCommand::request(request::GET_BROKER_RUNTIME_INFO))
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
    v["table"]["pullHoldCount"].as_str()?.parse().ok()
}

/// `pullHoldRefusedCount` of the broker's runtime info.
pub fn refused_holds(port: u16) -> Option<u64> {
    runtime_info(port).get("pullHoldRefusedCount")?.parse().ok()
}

/// Resident set size of process `pid` in KiB (`VmRSS` of /proc/PID/status).
pub fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS line")
}

/// Write `n` copies of `req` (opaques 1..=n) on `stream` in one go, without
/// reading any answer.
pub fn pipeline(stream: &mut TcpStream, req: &RemotingCommand, n: usize) {
    let mut buf = Vec::new();
    for i in 0..n {
        let mut r = req.clone();
        r.opaque = i as i32 + 1;
        buf.extend_from_slice(&encode(&r).expect("encode"));
    }
    stream.write_all(&buf).expect("pipelined write");
}

/// A long-polling pull (commit + suspend + subscription flags) of queue
/// `queue_id` at `offset`, asking to be held `suspend_ms`.
pub fn held_pull_req(topic: &str, queue_id: i32, offset: u64, suspend_ms: i64) -> RemotingCommand {
    super::Client::pull_req(
        "hold-group",
        topic,
        queue_id,
        offset,
        32,
        0x2 | 0x4,
        suspend_ms,
        "*",
    )
}

/// The `p`-th percentile (0..=100) of `v` (sorted here).
pub fn percentile(v: &mut [Duration], p: usize) -> Duration {
    assert!(!v.is_empty(), "no samples");
    v.sort();
    v[((v.len() - 1) * p / 100).min(v.len() - 1)]
}

/// A SEND_BATCH_MESSAGE body of `bodies` (RocketMQ's MessageDecoder.encodeMessages).
pub fn batch_body(bodies: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, b) in bodies.iter().enumerate() {
        let props = format!("KEYS\u{1}batch-{k}");
        let total = 20 + b.len() + 2 + props.len();
        out.extend_from_slice(&(total as i32).to_be_bytes());
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&0i32.to_be_bytes());
        out.extend_from_slice(&(b.len() as i32).to_be_bytes());
        out.extend_from_slice(b);
        out.extend_from_slice(&(props.len() as i16).to_be_bytes());
        out.extend_from_slice(props.as_bytes());
    }
    out
}

/// A SEND_BATCH_MESSAGE request (V2 header names) to `topic`/`queue_id`.
pub fn batch_req(topic: &str, queue_id: i32, body: Vec<u8>) -> RemotingCommand {
    RemotingCommand::request(request::SEND_BATCH_MESSAGE)
        .with_ext("a", "batch-producer")
        .with_ext("b", topic)
        .with_ext("c", "TBW102")
        .with_ext("d", 4)
        .with_ext("e", queue_id)
        .with_ext("f", 0)
        .with_ext("g", 1)
        .with_ext("h", 0)
        .with_ext("m", true)
        .with_body(body)
}
