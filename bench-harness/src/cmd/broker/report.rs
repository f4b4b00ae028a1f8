//! What `broker` prints: the `--json` line, or the figures for people.

use std::fmt::Write as _;
use std::time::Instant;

use super::LoadFigures;
use crate::error::{BenchError, Result};
use crate::txn::TxnComparison;
use crate::workload::Workload;

/// The `--json` line: the target, its address, the workload, what was
/// measured under `key`, and the wall seconds since `started`.
///
/// # Errors
///
/// When the figures cannot be encoded or stdout cannot be written.
pub(super) fn json_line(
    out: &mut impl std::io::Write,
    target: &str,
    addr: &str,
    workload: &Workload,
    (key, measured): (&str, &impl serde::Serialize),
    started: Instant,
) -> Result<()> {
    let measured = serde_json::to_value(measured)
        .map_err(|e| BenchError::new(format!("encoding figures: {e}")))?;
    let mut v = serde_json::json!({
        "target": target,
        "addr": addr,
        "workload": workload,
        "wall_seconds": started.elapsed().as_secs_f64(),
    });
    v[key] = measured;
    writeln!(out, "{v}").map_err(|e| BenchError::io("stdout", e))
}

/// A send measurement's figures (`null`: against the in-process null
/// broker), with the consumers' when there were any.
pub(super) fn text(target: &str, workload: &Workload, f: &LoadFigures, null: bool) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{target}: {} producers x inflight {} x batch {}, {} B\n  \
         {:.0} msgs/s  {:.1} MB/s  over {:.2} s ({} msgs, {} errors)\n  \
         send->ack p50 {:.1} µs  p99 {:.1} µs  p99.9 {:.1} µs  max {:.1} µs\n  \
         client CPU {:.0} ns/msg{}",
        workload.producers,
        workload.inflight,
        workload.batch,
        workload.size_bytes,
        f.msgs_per_sec,
        f.mb_per_sec,
        f.seconds,
        f.messages,
        f.errors,
        f.latency_us.p50,
        f.latency_us.p99,
        f.latency_us.p999,
        f.latency_us.max,
        f.cpu_ns_per_msg,
        if null {
            format!(
                " (client + null broker); wall {:.0} ns/msg",
                1e9 / f.msgs_per_sec.max(1e-9)
            )
        } else {
            String::new()
        }
    );
    if let Some(e) = &f.first_error {
        let _ = writeln!(s, "  first error: {e}");
    }
    if let Some(c) = &f.consume {
        let _ = writeln!(
            s,
            "  {} consumers: {} msgs received ({}), {} pull errors\n  \
             send->consume p50 {:.1} µs  p99 {:.1} µs  p99.9 {:.1} µs  max {:.1} µs",
            c.consumers,
            c.consumed,
            if c.drained {
                "all acknowledged".to_string()
            } else {
                format!("NOT all acknowledged after {:.1} s", c.drain_seconds)
            },
            c.errors,
            c.latency_us.p50,
            c.latency_us.p99,
            c.latency_us.p999,
            c.latency_us.max,
        );
        if let Some(e) = &c.first_error {
            let _ = writeln!(s, "  first pull error: {e}");
        }
    }
    s
}

/// Plain against transactional sends, and their ratio.
pub(super) fn transactional_text(target: &str, workload: &Workload, c: &TxnComparison) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{target}: {} synchronous producers, {} B",
        workload.producers, workload.size_bytes
    );
    for (name, f) in [("plain", &c.plain), ("transactional", &c.transactional)] {
        let _ = writeln!(
            s,
            "  {name:<13} {:>8.0} msgs/s over {:.2} s ({} msgs, {} errors)  send->ack p50 {:.1} µs  p99 {:.1} µs",
            f.msgs_per_sec, f.seconds, f.messages, f.errors, f.latency_us.p50, f.latency_us.p99
        );
        if let Some(e) = &f.first_error {
            let _ = writeln!(s, "    first error: {e}");
        }
    }
    let _ = writeln!(s, "  transactional / plain: {:.2}", c.ratio);
    s
}
