//! What `broker` prints: the `--json` line, or the figures for people.

use std::fmt::Write as _;
use std::time::Instant;

use super::{DrainFigures, LoadFigures, OpenLoopFigures};
use crate::error::{BenchError, Result};
use crate::proc_cpu::ProcMemory;
use crate::target::open_loop::LATE_NS;
use crate::txn::TxnComparison;
use crate::workload::{format_delay_ms, Workload, TIMER_DELAY_MS_PROPERTY};

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
        "{target}: {} producers x inflight {} x batch {}, {} B{}\n  \
         {:.0} msgs/s  {:.1} MB/s  over {:.2} s ({} msgs, {} errors)\n  \
         send->ack p50 {:.1} µs  p99 {:.1} µs  p99.9 {:.1} µs  max {:.1} µs\n  \
         client CPU {:.0} ns/msg{}",
        workload.producers,
        workload.inflight,
        workload.batch,
        workload.size_bytes,
        timer_suffix(workload),
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
    if let Some(b) = f.broker_cpu_ns_per_msg {
        let _ = writeln!(
            s,
            "  broker CPU {b:.0} ns/msg (its process, over the measurement)"
        );
    }
    if let Some(m) = &f.broker_memory {
        let _ = writeln!(s, "{}", memory_line(m, workload, f.messages));
    }
    if let Some(o) = &f.open_loop {
        s.push_str(&open_loop_text(o));
    }
    if let Some(d) = &f.drain {
        s.push_str(&drain_text(d, workload));
    } else if f.consume.is_none() && !null {
        let _ = writeln!(
            s,
            "  consumers: none (--consumers N measures send->consume beside the sends; --drain N the drain rate)"
        );
    }
    if let Some(c) = &f.consume {
        let _ = writeln!(
            s,
            "  {} consumers: {} msgs received ({}), {} pull errors\n  \
             send->consume p50 {:.1} µs  p99 {:.1} µs  p99.9 {:.1} µs  max {:.1} µs",
            c.consumers,
            c.consumed,
            match (c.drained, workload.filter.is_none()) {
                _ if !workload.timer_delays.is_empty() => format!(
                    "timer messages: consumers see them only when due, so these are the ones due within the run \
                     (shortest delay {}) and send->consume includes the delay",
                    workload
                        .timer_delays
                        .min_ms()
                        .map_or_else(String::new, format_delay_ms)
                ),
                (true, true) => "all acknowledged".to_string(),
                (true, false) => format!(
                    "all acknowledged of the even half, filter {} `{}`",
                    workload.filter.as_str(),
                    workload.filter.subscription()
                ),
                (false, _) => format!("NOT all acknowledged after {:.1} s", c.drain_seconds),
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
    for l in &f.loopback {
        let _ = writeln!(
            s,
            "  loopback TCP round trip ({} B each way, {}): p50 {:.1} µs  p99 {:.1} µs  max {:.1} µs",
            l.bytes,
            l.paced_rate.map_or_else(
                || "back to back".to_string(),
                |r| format!("paced at {r:.0}/s from intended times")
            ),
            l.p50_us,
            l.p99_us,
            l.max_us,
        );
    }
    s
}

/// `, timer messages (...)` after the workload of the first line when the
/// run sent timer messages (`--timer-delays`), else nothing.
pub(crate) fn timer_suffix(workload: &Workload) -> String {
    if workload.timer_delays.is_empty() {
        return String::new();
    }
    format!(
        ", timer messages ({TIMER_DELAY_MS_PROPERTY} {} round-robin, held by the broker until due)",
        workload.timer_delays
    )
}

/// The broker's memory when the sends ended; with timer messages, how many
/// were pending then (at most: every one acknowledged, less any already due).
pub(crate) fn memory_line(m: &ProcMemory, workload: &Workload, acked: u64) -> String {
    let mib = |k: u64| k as f64 / 1024.0;
    let mut s = format!(
        "  broker memory at the end of the sends: VmRSS {:.1} MiB  RssAnon {:.1} MiB{} (pid {})",
        mib(m.vm_rss_kib),
        mib(m.rss_anon_kib),
        m.vm_hwm_kib
            .map_or_else(String::new, |h| format!("  VmHWM {:.1} MiB", mib(h))),
        m.pid
    );
    if !workload.timer_delays.is_empty() {
        let _ = write!(
            s,
            "\n  timer messages pending then: up to {acked} (the measured sends; warm-up sends and earlier runs add to them) less those already due"
        );
    }
    s
}

/// The drain workload's lines: how fast the consumers emptied the filled topic.
pub(crate) fn drain_text(d: &DrainFigures, workload: &Workload) -> String {
    let mut s = format!(
        "  drain: {} consumers (pull batch {}{}) received {} of {} msgs in {:.3} s{}\n  \
         {:.0} msgs/s  {:.1} MB/s  {:.1} msgs per pull  client CPU {:.0} ns/msg{}\n",
        d.consumers,
        workload.pull_batch,
        if workload.filter.is_none() {
            String::new()
        } else {
            format!(
                ", filter {} `{}`: the even half",
                workload.filter.as_str(),
                workload.filter.subscription()
            )
        },
        d.consumed,
        d.messages,
        d.seconds,
        if d.drained {
            ""
        } else {
            " (NOT all: timed out)"
        },
        d.msgs_per_sec,
        d.mb_per_sec,
        d.msgs_per_pull,
        d.client_cpu_ns_per_msg,
        d.broker_cpu_ns_per_msg
            .map_or_else(String::new, |b| format!("  broker CPU {b:.0} ns/msg")),
    );
    if let Some(e) = &d.first_error {
        let _ = writeln!(s, "  first pull error: {e} ({} failed pulls)", d.errors);
    }
    s
}

/// The open loop's lines: offered load, and how late the sends left.
pub(crate) fn open_loop_text(o: &OpenLoopFigures) -> String {
    let mut s = format!(
        "  open loop: {:.0} msgs/s offered ({}), latency from each intended send time\n  \
         {} sends, {} left > {:.0} µs late; lateness p50 {:.1} µs  p99 {:.1} µs  max {:.1} µs\n",
        o.rate,
        o.arrivals.as_str(),
        o.sends,
        o.late_sends,
        o.late_threshold_us,
        o.lateness_us.p50,
        o.lateness_us.p99,
        o.lateness_us.max,
    );
    if o.unsent > 0 {
        let _ = writeln!(
            s,
            "  {} sends due within the run never left (window full): the target fell behind",
            o.unsent
        );
    }
    s
}

/// The markdown section of the open-loop runs of a report (sweep, compare):
/// per run that had `--rate`, the offered and achieved rate and how late the
/// client's sends left. `runs` gives each run's label and figures; `None`
/// when no run was open loop.
pub(crate) fn open_loop_section<'a>(
    runs: impl IntoIterator<Item = (String, &'a LoadFigures)>,
) -> Option<String> {
    let mut t = crate::table::Table::new(
        &[
            "run",
            "offered msgs/s",
            "arrivals",
            "acked msgs/s",
            "sends",
            "late sends",
            "lateness p50 ms",
            "p99 ms",
            "max ms",
            "never sent",
        ],
        "lrlrrrrrrr",
    );
    let mut any = false;
    for (label, f) in runs {
        let Some(o) = &f.open_loop else { continue };
        any = true;
        t.row([
            label,
            format!("{:.0}", o.rate),
            o.arrivals.as_str().to_string(),
            format!("{:.0}", f.msgs_per_sec),
            o.sends.to_string(),
            o.late_sends.to_string(),
            format!("{:.3}", o.lateness_us.p50 / 1000.0),
            format!("{:.3}", o.lateness_us.p99 / 1000.0),
            format!("{:.3}", o.lateness_us.max / 1000.0),
            o.unsent.to_string(),
        ]);
    }
    any.then(|| {
        format!(
            "## Open loop: offered rate and client lateness\n\n{}\n\
             Open-loop runs send on a schedule (`--rate`), not when acknowledgements \
             return; their latencies count from each message's intended send time, so \
             queueing in the client, the socket and the broker is in them. A send is \
             late when it left the client more than {:.0} ms after its intended time \
             (its window was full, or the client could not keep up); 'never sent' = \
             due within the run but still waiting for the window at its end. Many late \
             sends at a rate the null broker (`ferromq-bench broker --null --rate N`) \
             takes without them mean the target fell behind, not the client.\n",
            t.finish(),
            LATE_NS as f64 / 1e6
        )
    })
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
