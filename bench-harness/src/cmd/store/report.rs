//! Writing a report folder: `results/<UTC timestamp>-<host>/` with
//! `report.md` (tables, targets, machine), `results.json` (every figure) and
//! one `.hgrm` percentile table per run.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::baseline::{BaselineKind, BaselineResult};
use crate::error::{BenchError, Result};
use crate::results::{RunResult, SuiteResult, TargetCheck};
use crate::table::Table;

// The helpers every report shares, under their old paths.
pub use crate::reporting::{
    git_commit, hgrm, interrupted_note, load_average_line, machine_section, new_report_dir,
    shell_join, utc_now, utc_parts,
};

/// Create `<out>/<stamp>-<host>/` (with `-2`, `-3`, ... if it exists) and
/// write the report files into it. Returns the folder.
///
/// # Errors
///
/// When a folder or file cannot be created or written; the message names the path.
pub fn write_report(out: &Path, stamp: &str, suite: &SuiteResult) -> Result<PathBuf> {
    let host = sanitize(&suite.machine.hostname);
    let dir = new_report_dir(out, &format!("{stamp}-{host}"))?;
    let json = serde_json::to_string_pretty(suite)
        .map_err(|e| BenchError::new(format!("cannot encode results as JSON: {e}")))?;
    write(&dir.join("results.json"), &(json + "\n"))?;
    for run in &suite.runs {
        write(&dir.join(hgrm_name(run)), &hgrm(&run.histogram))?;
    }
    write(&dir.join("report.md"), &markdown(suite))?;
    Ok(dir)
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text)
        .map_err(|e| BenchError::io(format!("cannot write {}", path.display()), e))
}

/// File name of a run's histogram: `<name>.hgrm`.
pub fn hgrm_name(run: &RunResult) -> String {
    format!("{}.hgrm", sanitize(&run.name))
}

fn sanitize(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        "unknown".to_string()
    } else {
        s
    }
}

/// Two or three lines about a run, for people.
pub fn summary(r: &RunResult) -> String {
    let l = &r.latency_us;
    let capped = if r.stopped_early { " (time cap)" } else { "" };
    let mut s = format!(
        "{}: {} msgs{} in {:.3} s: {:.0} msgs/s, {:.1} MB/s; latency µs p50 {:.1} p99 {:.1} p99.9 {:.1} max {:.1}\n  \
         baseline ({}) {:.1} MB/s, ratio {:.3}; warm mapping {:.1} MB/s, ratio {:.3}",
        r.name,
        r.messages,
        capped,
        r.seconds,
        r.msgs_per_sec,
        r.mb_per_sec,
        l.p50,
        l.p99,
        l.p999,
        l.max,
        r.baseline.kind.describe(),
        r.baseline_mb_per_sec,
        r.ratio_to_baseline,
        r.warm_baseline_mb_per_sec,
        r.ratio_to_warm_baseline
    );
    let odd: Vec<String> = r
        .status_counts
        .iter()
        .filter(|(k, _)| k.as_str() != "PUT_OK")
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    if !odd.is_empty() {
        s.push_str(&format!(
            "\n  statuses other than PUT_OK: {}",
            odd.join(", ")
        ));
    }
    if r.put_errors > 0 {
        s.push_str(&format!(
            "\n  {} put errors, first: {}",
            r.put_errors,
            r.first_error.as_deref().unwrap_or("?")
        ));
    }
    if !r.engine_repeats.is_empty() {
        s.push_str(&format!(
            "\n  engine runs (median kept): {}",
            crate::report::repeats_list(&r.engine_repeats)
        ));
    }
    s
}

pub(crate) fn targets_summary(targets: &[TargetCheck]) -> String {
    let mut s = String::from("targets (issue 3):");
    for t in targets {
        let result = match t.pass {
            Some(true) => "PASS",
            Some(false) => "FAIL",
            None => "n/a ",
        };
        let measured = t
            .measured
            .map_or("not measured".to_string(), |v| format!("{v:.2}"));
        s.push_str(&format!(
            "\n  {result}  {}: {measured} (required {})",
            t.target, t.required
        ));
    }
    s
}

/// The `report.md` text of a suite.
pub fn markdown(suite: &SuiteResult) -> String {
    let mut s = String::new();
    let m = &suite.machine;
    let _ = writeln!(
        s,
        "# ferromq-bench store: {} on {}\n",
        suite.started_utc, m.hostname
    );
    let _ = writeln!(s, "- Command: `{}`", suite.command);
    let _ = writeln!(s, "- Git commit: `{}`", suite.git_commit);
    let _ = writeln!(
        s,
        "- Target: {}",
        suite.runs.first().map_or("none", |r| r.target.as_str())
    );
    let _ = writeln!(s, "- Directory under test: `{}`", m.disk.dir);
    let _ = writeln!(
        s,
        "- Total wall time: {:.1} s (runs, baselines, setup and shutdown)\n",
        suite.total_seconds
    );

    let _ = writeln!(s, "## Runs\n");
    let _ = writeln!(
        s,
        "| run | msgs | seconds | msgs/s | MB/s | p50 µs | p99 µs | p99.9 µs | max µs | baseline MB/s | ratio | warm MB/s | ratio to warm |"
    );
    let _ = writeln!(
        s,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in &suite.runs {
        let l = &r.latency_us;
        let _ = writeln!(
            s,
            "| {} | {}{} | {:.2} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} | {:.1} | {:.2} |",
            r.name,
            r.messages,
            if r.stopped_early { " (capped)" } else { "" },
            r.seconds,
            r.msgs_per_sec,
            r.mb_per_sec,
            l.p50,
            l.p99,
            l.p999,
            l.max,
            r.baseline_mb_per_sec,
            r.ratio_to_baseline,
            r.warm_baseline_mb_per_sec,
            r.ratio_to_warm_baseline
        );
    }
    let _ = writeln!(s);
    write_path_section(&mut s, &suite.runs);
    for r in &suite.runs {
        run_section(&mut s, r);
    }

    let _ = writeln!(s, "## Targets (issue 3)\n");
    let _ = writeln!(
        s,
        "| target | required | measured | result | measured with | on this disk |"
    );
    let _ = writeln!(s, "|---|---|---:|---|---|---|");
    for t in &suite.targets {
        target_row(&mut s, t);
    }
    let _ = writeln!(s);

    machine_section(&mut s, m);

    let _ = writeln!(s, "## How to read this\n");
    let _ = writeln!(
        s,
        "- MB = 10^6 bytes of message bodies (payload). The store also writes RocketMQ's record header \
         (about 100 bytes per message plus the topic), counted in `stored_bytes` in `results.json` but not in MB/s."
    );
    let _ = writeln!(
        s,
        "- Latency is per `put_message` call, from call to return, in every producer thread; histograms are merged. \
         The `.hgrm` files hold the full percentile tables (values in µs)."
    );
    let _ = writeln!(
        s,
        "- ASYNC baseline: memcpy of the same payload, in message-size chunks, into fresh fallocated mapped files of the \
         commitlog's size, rolling like the store. SYNC baseline: the same bytes written with pwrite in batches of \
         `producers` messages, each batch followed by fdatasync (ideal group commit). Warm baseline: memcpy into a \
         mapping whose pages were all written beforehand. Creating and allocating files is not timed; \
         the store does it in the background. The ASYNC baselines never flush: the store's background flush \
         (and the page-table work it causes) is part of what the ASYNC ratio measures."
    );
    let _ = writeln!(
        s,
        "- The memcpy baselines are measured up to 5 times (median kept, spread shown); ASYNC engine runs likewise up to \
         5 times, each on a fresh store (the run with the median MB/s is reported, every run listed); SYNC engine runs \
         once (`--repeat` changes both); the fdatasync baseline is split in two halves, one just before and one just after the run, pooled (its \
         spread shows how much the disk drifted). On a shared machine compare the load average above before comparing reports."
    );
    let _ = writeln!(
        s,
        "- A run marked (capped) hit its time cap; its figures are over what was measured until then, and its baselines \
         copy or write the same number of bytes."
    );
    s
}

/// The `## Write paths` section: runs of `--write-path` side by side, per
/// workload, with each path's msgs/s as a multiple of the mapped path's in the
/// same invocation and what the pool's commit backend did.
fn write_path_section(s: &mut String, runs: &[RunResult]) {
    if runs.iter().all(|r| r.write_path.is_none()) {
        return;
    }
    let _ = writeln!(s, "## Write paths\n");
    let _ = writeln!(
        s,
        "Each workload ran once per path, the paths interleaved. `× mmap` is msgs/s over the `mmap` run of the same \
         workload. The raw disk limits of the same bytes are the baselines in the table above (memcpy into a fresh \
         mapped file for ASYNC, pwrite + fdatasync batches for SYNC). Commit columns: io_uring submissions (or \
         pwrite commit calls), writes per submission, KiB per write, and data syncs made by the commit backend.\n"
    );
    let _ = writeln!(
        s,
        "| workload | path | msgs/s | MB/s | p50 µs | p99 µs | p99.9 µs | × mmap | baseline MB/s | backend | submissions | writes/sub | KiB/write | syncs |"
    );
    let _ = writeln!(
        s,
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|"
    );
    for r in runs {
        let Some(path) = &r.write_path else { continue };
        let workload = r.name.strip_suffix(&format!("-{path}")).unwrap_or(&r.name);
        let mmap = runs.iter().find(|o| {
            o.write_path.as_deref() == Some("mmap")
                && o.name.strip_suffix("-mmap") == Some(workload)
        });
        let times = mmap
            .map(|m| {
                format!(
                    "{:.2}",
                    crate::results::ratio(r.msgs_per_sec, m.msgs_per_sec)
                )
            })
            .unwrap_or_else(|| "-".into());
        let d = r.target_details.as_ref();
        let pooled = d
            .and_then(|d| d["transient_store_pool"].as_bool())
            .unwrap_or(false);
        let backend = if pooled {
            let name = d
                .and_then(|d| d["commit_backend"].as_str())
                .unwrap_or("?")
                .to_string();
            let fixed = d
                .and_then(|d| d["commit_registered_buffers"].as_bool())
                .unwrap_or(false);
            if fixed {
                format!("{name} (registered buffers)")
            } else {
                name
            }
        } else {
            "mapped file".to_string()
        };
        let c = d.map(|d| &d["commit_counters"]);
        let get = |k: &str| c.and_then(|c| c[k].as_u64()).unwrap_or(0);
        let (subs, writes, bytes, syncs) = (
            get("submissions"),
            get("writes"),
            get("bytes"),
            get("syncs"),
        );
        let cols = if pooled {
            format!(
                "{subs} | {:.1} | {:.0} | {syncs}",
                crate::results::ratio(writes as f64, subs as f64),
                crate::results::ratio(bytes as f64 / 1024.0, writes as f64)
            )
        } else {
            "- | - | - | -".to_string()
        };
        let l = &r.latency_us;
        let _ = writeln!(
            s,
            "| {workload} | {path} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {times} | {:.1} | {backend} | {cols} |",
            r.msgs_per_sec, r.mb_per_sec, l.p50, l.p99, l.p999, r.baseline_mb_per_sec
        );
    }
    let _ = writeln!(s);
}

/// The engine runs of a repeated workload, in order: MB/s each, the kept
/// (median) one marked.
pub fn repeats_list(repeats: &[crate::results::EngineRepeat]) -> String {
    repeats
        .iter()
        .map(|r| {
            let asleep = r
                .producers_asleep_ms
                .map(|ms| format!(", producers asleep {ms:.1} ms"))
                .unwrap_or_default();
            let figures = format!("{:.1} MB/s (p99 {:.1} µs{asleep})", r.mb_per_sec, r.p99_us);
            if r.kept {
                format!("{figures} [median, reported]")
            } else {
                figures
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A run's `### <name>` section: its command and a key | value table of
/// every figure.
fn run_section(s: &mut String, r: &RunResult) {
    let _ = writeln!(s, "### {}\n", r.name);
    let _ = writeln!(s, "`{}`\n", r.command);
    let mut t = Table::key_value();
    measured_rows(&mut t, r);
    t.kv(
        "baseline",
        format_args!(
            "{}: {:.1} MB/s over {} bytes in {:.3} s ({} ops, {} files){}{}; ratio {:.3}",
            r.baseline.kind.describe(),
            r.baseline.mb_per_sec,
            r.baseline.bytes,
            r.baseline.seconds,
            r.baseline.ops,
            r.baseline.files,
            spread(&r.baseline),
            capped(&r.baseline),
            r.ratio_to_baseline
        ),
    );
    resource_rows(&mut t, r);
    outcome_rows(&mut t, r);
    s.push_str(&t.finish());
    s.push('\n');
}

/// The rows of what the engine run did: workload, messages, bytes, time,
/// throughput, latency.
fn measured_rows(t: &mut Table, r: &RunResult) {
    let l = &r.latency_us;
    t.kv(
        "workload",
        format_args!(
            "{}, {} B bodies, {} producer(s), commitlog files of {} bytes",
            r.flush.rocketmq_name(),
            r.size,
            r.producers,
            r.file_size
        ),
    );
    let capped = match r.max_seconds {
        Some(cap) if r.stopped_early => format!(" (stopped at the {cap:.0} s cap)"),
        _ => String::new(),
    };
    t.kv(
        "messages",
        format_args!("{} of {}{}", r.messages, r.requested_messages, capped),
    );
    t.kv(
        "bytes",
        format_args!("{} payload, {} stored", r.bytes, r.stored_bytes),
    );
    t.kv(
        "time",
        format_args!(
            "{:.3} s (shutdown afterwards: {:.3} s)",
            r.seconds, r.shutdown_seconds
        ),
    );
    t.kv(
        "throughput",
        format_args!("{:.0} msgs/s, {:.2} MB/s", r.msgs_per_sec, r.mb_per_sec),
    );
    t.kv(
        "latency µs",
        format_args!(
            "p50 {:.1}, p90 {:.1}, p99 {:.1}, p99.9 {:.1}, p99.99 {:.1}, max {:.1}, mean {:.2}",
            l.p50, l.p90, l.p99, l.p999, l.p9999, l.max, l.mean
        ),
    );
}

/// The rows of what the run cost and how it was prepared: the engine
/// repeats, the producer and background threads, the memory preparation.
fn resource_rows(t: &mut Table, r: &RunResult) {
    if !r.engine_repeats.is_empty() {
        t.kv(
            "engine runs",
            format_args!(
                "{} runs on fresh stores, the median (by MB/s) reported: {}",
                r.engine_repeats.len(),
                repeats_list(&r.engine_repeats)
            ),
        );
    }
    if let Some(u) = &r.producer_usage {
        t.kv(
            "producer threads",
            format_args!(
                "on CPU {:.1} ms, waiting for a CPU {:.1} ms, asleep {:.1} ms (page locks, mutexes); {} minor and {} major faults; {} voluntary and {} involuntary switches",
                u.usage.on_cpu_ns as f64 / 1e6,
                u.usage.runqueue_wait_ns as f64 / 1e6,
                u.asleep_ns as f64 / 1e6,
                u.usage.minor_faults,
                u.usage.major_faults,
                u.usage.voluntary_switches,
                u.usage.involuntary_switches
            ),
        );
    }
    if !r.background_usage.is_empty() {
        let threads: Vec<String> = r
            .background_usage
            .iter()
            .map(|(name, u)| {
                format!(
                    "{name} {:.1} ms (+{:.1} ms waiting for a CPU)",
                    u.on_cpu_ns as f64 / 1e6,
                    u.runqueue_wait_ns as f64 / 1e6
                )
            })
            .collect();
        t.kv("target's threads on CPU", threads.join(", "));
    }
    match &r.memory_prep {
        Some(p) => t.kv(
            "memory",
            format_args!(
                "{:.0} MB of page cache cycled through a scratch file before the run ({:.2} s, untimed), and the same before each fresh-mapping baseline repeat",
                p.bytes as f64 / 1e6,
                p.seconds
            ),
        ),
        None => t.kv("memory", "not prepared (`--no-recycle`)"),
    }
}

/// The closing rows: the warm baseline, the put statuses and errors, the
/// histogram file.
fn outcome_rows(t: &mut Table, r: &RunResult) {
    t.kv(
        "warm baseline",
        format_args!(
            "{}: {:.1} MB/s{}{}; ratio {:.3}",
            r.warm_baseline.kind.describe(),
            r.warm_baseline.mb_per_sec,
            spread(&r.warm_baseline),
            capped(&r.warm_baseline),
            r.ratio_to_warm_baseline
        ),
    );
    let statuses: Vec<String> = r
        .status_counts
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    t.kv(
        "statuses",
        if statuses.is_empty() {
            "none".to_string()
        } else {
            statuses.join(", ")
        },
    );
    t.kv(
        "put errors",
        format_args!(
            "{}{}",
            r.put_errors,
            r.first_error
                .as_deref()
                .map(|e| format!(" (first: {})", e.replace('|', "/")))
                .unwrap_or_default()
        ),
    );
    t.kv(
        "histogram",
        format_args!("[{}]({})", hgrm_name(r), hgrm_name(r)),
    );
}

/// `, capped` when the baseline stopped at its time cap.
fn capped(b: &BaselineResult) -> &'static str {
    if b.stopped_early {
        ", capped"
    } else {
        ""
    }
}

fn spread(b: &BaselineResult) -> String {
    match (b.repeats, b.kind) {
        (0 | 1, _) => String::new(),
        (n, BaselineKind::PwriteFdatasync) => format!(
            ", pooled over {n} parts before and after the run (their rates {:.1}-{:.1} MB/s)",
            b.min_mb_per_sec, b.max_mb_per_sec
        ),
        (n, _) => format!(
            ", median of {n} (spread {:.1}-{:.1} MB/s)",
            b.min_mb_per_sec, b.max_mb_per_sec
        ),
    }
}

fn target_row(s: &mut String, t: &TargetCheck) {
    let measured = t
        .measured
        .map_or("not measured".to_string(), |v| format!("{v:.2}"));
    let result = match t.pass {
        Some(true) => "PASS",
        Some(false) => "FAIL",
        None => "not measured",
    };
    let cmds: Vec<String> = t.commands.iter().map(|c| format!("`{c}`")).collect();
    let _ = writeln!(
        s,
        "| {} | {} | {} | {} | {} | {} |",
        t.target,
        t.required,
        measured,
        result,
        cmds.join("<br>"),
        t.context.as_deref().unwrap_or("")
    );
}
