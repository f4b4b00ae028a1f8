//! What `compare` writes: the per-point summaries (B/A ratios and verdicts),
//! `report.md`, `results.json`, the `.hgrm` files and the ratio plot.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::{CompareRun, Hists, RATIO_PLOT};
use crate::error::Result;
use crate::machine::MachineInfo;
use crate::plot::plot_ratios;
use crate::reporting::origin_lines;
use crate::reporting::ReportFolder;
use crate::stats::median;
use crate::sweep::Point;
use crate::table::Table;

/// One side of a point, across passes.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SideSummary {
    /// Completed passes.
    pub runs: usize,
    /// Median msgs/s and its min-max.
    pub msgs_per_sec: f64,
    /// Lowest and highest msgs/s.
    pub msgs_per_sec_range: (f64, f64),
    /// Median send -> ack p99, µs.
    pub p99_us: f64,
    /// Median send -> consume p99, µs (with consumers).
    pub e2e_p99_us: Option<f64>,
    /// Median broker CPU per acknowledged message, ns (where measurable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker_cpu_ns_per_msg: Option<f64>,
    /// Median drain rate, msgs/s (the drain workload).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain_msgs_per_sec: Option<f64>,
    /// Median broker CPU per drained message, ns (the drain workload).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain_broker_cpu_ns_per_msg: Option<f64>,
    /// Passes whose drain received every message of the fill.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drained_runs: Option<usize>,
    /// Errors over all passes (sends and pulls).
    pub errors: u64,
}

/// A ratio B/A: median over passes and the passes' range.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Ratio {
    /// Median of the per-pass ratios.
    pub median: f64,
    /// Smallest per-pass ratio.
    pub min: f64,
    /// Largest per-pass ratio.
    pub max: f64,
}

impl Ratio {
    fn of(v: &[f64]) -> Option<Ratio> {
        if v.is_empty() {
            return None;
        }
        Some(Ratio {
            median: median(v),
            min: v.iter().copied().fold(f64::INFINITY, f64::min),
            max: v.iter().copied().fold(0.0, f64::max),
        })
    }
}

/// One point of the comparison.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ComparePoint {
    /// The point.
    pub point: Point,
    /// A's figures.
    pub a: Option<SideSummary>,
    /// B's figures.
    pub b: Option<SideSummary>,
    /// B/A of msgs/s, per pass where both ran.
    pub throughput_ratio: Option<Ratio>,
    /// B/A of send -> ack p99.
    pub p99_ratio: Option<Ratio>,
    /// B/A of send -> consume p99 (with consumers).
    pub e2e_p99_ratio: Option<Ratio>,
    /// B/A of the drain rate (the drain workload).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain_ratio: Option<Ratio>,
    /// What the passes support, in a few words.
    pub verdict: String,
}

/// Everything `results.json` holds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CompareReport {
    /// The exact command line.
    pub command: String,
    /// `git rev-parse HEAD` (with `-dirty`).
    pub git_commit: String,
    /// UTC start, ISO 8601.
    pub started_utc: String,
    /// Wall seconds.
    pub total_seconds: f64,
    /// A's name and how it was reached.
    pub a: (String, String),
    /// B's name and how it was reached.
    pub b: (String, String),
    /// Swept workload keys.
    pub params: Vec<(String, Vec<String>)>,
    /// Passes asked for.
    pub repeat: usize,
    /// Whether even passes ran B before A (`--abba`).
    pub abba: bool,
    /// Runs planned.
    pub planned_runs: usize,
    /// Ctrl-C stopped it early.
    pub interrupted: bool,
    /// The base workload.
    pub base_workload: crate::sweep_report::BaseWorkload,
    /// Measured seconds per run.
    pub seconds: f64,
    /// Warm-up seconds per run.
    pub warmup_seconds: f64,
    /// Per-point comparison.
    pub points: Vec<ComparePoint>,
    /// Every run, in order.
    pub runs: Vec<CompareRun>,
    /// The machine.
    pub machine: MachineInfo,
    /// Load average (1/5/15 min) when the last run ended.
    pub load_average_end: String,
}

fn side(runs: &[&CompareRun]) -> Option<SideSummary> {
    if runs.is_empty() {
        return None;
    }
    let rate: Vec<f64> = runs.iter().map(|r| r.figures.msgs_per_sec).collect();
    let e2e: Vec<f64> = runs
        .iter()
        .filter_map(|r| r.figures.consume.as_ref().map(|c| c.latency_us.p99))
        .collect();
    let med = |v: Vec<f64>| (!v.is_empty()).then(|| median(&v));
    let drains: Vec<&crate::broker::DrainFigures> = runs
        .iter()
        .filter_map(|r| r.figures.drain.as_ref())
        .collect();
    Some(SideSummary {
        broker_cpu_ns_per_msg: med(runs
            .iter()
            .filter_map(|r| r.figures.broker_cpu_ns_per_msg)
            .collect()),
        drain_msgs_per_sec: med(drains.iter().map(|d| d.msgs_per_sec).collect()),
        drain_broker_cpu_ns_per_msg: med(drains
            .iter()
            .filter_map(|d| d.broker_cpu_ns_per_msg)
            .collect()),
        drained_runs: (!drains.is_empty()).then(|| drains.iter().filter(|d| d.drained).count()),
        runs: runs.len(),
        msgs_per_sec: median(&rate),
        msgs_per_sec_range: (
            rate.iter().copied().fold(f64::INFINITY, f64::min),
            rate.iter().copied().fold(0.0, f64::max),
        ),
        p99_us: median(
            &runs
                .iter()
                .map(|r| r.figures.latency_us.p99)
                .collect::<Vec<_>>(),
        ),
        e2e_p99_us: (!e2e.is_empty()).then(|| median(&e2e)),
        errors: runs
            .iter()
            .map(|r| {
                r.figures.errors
                    + r.figures.consume.as_ref().map_or(0, |c| c.errors)
                    + r.figures.drain.as_ref().map_or(0, |d| d.errors)
            })
            .sum(),
    })
}

/// Summaries and per-pass ratios of every point.
pub fn summarize(points: &[Point], runs: &[CompareRun]) -> Vec<ComparePoint> {
    points
        .iter()
        .map(|p| {
            let of = |t: &str| -> Vec<&CompareRun> {
                runs.iter()
                    .filter(|r| r.point == p.index && r.target == t)
                    .collect()
            };
            let (ra, rb) = (of("a"), of("b"));
            let mut tr = Vec::new();
            let mut lr = Vec::new();
            let mut er = Vec::new();
            let mut dr = Vec::new();
            for a in &ra {
                let Some(b) = rb.iter().find(|b| b.repeat == a.repeat) else {
                    continue;
                };
                let (fa, fb) = (&a.figures, &b.figures);
                if fa.msgs_per_sec > 0.0 {
                    tr.push(fb.msgs_per_sec / fa.msgs_per_sec);
                }
                if fa.latency_us.p99 > 0.0 {
                    lr.push(fb.latency_us.p99 / fa.latency_us.p99);
                }
                if let (Some(ca), Some(cb)) = (&fa.consume, &fb.consume) {
                    if ca.latency_us.p99 > 0.0 {
                        er.push(cb.latency_us.p99 / ca.latency_us.p99);
                    }
                }
                if let (Some(da), Some(db)) = (&fa.drain, &fb.drain) {
                    if da.msgs_per_sec > 0.0 {
                        dr.push(db.msgs_per_sec / da.msgs_per_sec);
                    }
                }
            }
            let throughput_ratio = Ratio::of(&tr);
            let verdict = match throughput_ratio {
                None => "not measured on both".to_string(),
                Some(r) if tr.len() < 2 => {
                    format!("B/A {:.2} from one pass: no spread measured", r.median)
                }
                Some(r) if r.min > 1.0 => "B faster in every pass".to_string(),
                Some(r) if r.max < 1.0 => "A faster in every pass".to_string(),
                Some(_) => "within the spread (passes disagree)".to_string(),
            };
            ComparePoint {
                point: p.clone(),
                a: side(&ra),
                b: side(&rb),
                throughput_ratio,
                p99_ratio: Ratio::of(&lr),
                e2e_p99_ratio: Ratio::of(&er),
                drain_ratio: Ratio::of(&dr),
                verdict,
            }
        })
        .collect()
}

pub(super) fn point_label(p: &Point) -> String {
    if p.values.is_empty() {
        "(base workload)".to_string()
    } else {
        p.label()
    }
}

pub(super) fn fmt_ratio(r: Option<Ratio>) -> String {
    r.map_or_else(
        || "-".to_string(),
        |r| format!("{:.2} ({:.2}-{:.2})", r.median, r.min, r.max),
    )
}

/// The `report.md` text.
pub fn markdown(r: &CompareReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# ferromq-bench compare: {} vs {}\n", r.a.0, r.b.0);
    origin_lines(
        &mut s,
        &r.command,
        &r.git_commit,
        &r.started_utc,
        r.total_seconds,
    );
    let _ = writeln!(s, "- A = **{}**: {}", r.a.0, r.a.1);
    let _ = writeln!(s, "- B = **{}**: {}", r.b.0, r.b.1);
    let _ = writeln!(s, "{}", r.base_workload.line(r.warmup_seconds, r.seconds));
    let _ = writeln!(
        s,
        "- runs: {} of {} planned ({} passes; each pass runs every point on {}){}",
        r.runs.len(),
        r.planned_runs,
        r.repeat,
        if r.abba {
            "A then B in odd passes, B then A in even ones"
        } else {
            "A then on B"
        },
        crate::reporting::interrupted_note(r.interrupted)
    );
    let _ = writeln!(
        s,
        "{}\n",
        crate::reporting::load_average_line(&r.machine, &r.load_average_end)
    );
    let _ = writeln!(s, "## B / A, point by point\n");
    s.push_str(&points_table(r));
    let _ = writeln!(
        s,
        "\nB/A is computed per pass from the two adjacent runs (A then B) and summarized as the median with the range over passes; above 1 in msgs/s means B is faster, above 1 in p99 means B is slower. A point is called only when every pass agrees; otherwise the difference is within the spread. Latency is send -> ack per message (a batch shares its ack time); send -> consume is from queueing the request to reading the pull response that holds the message.\n"
    );
    let _ = writeln!(
        s,
        "**B/A per point (dot = median, bar = range over passes; 1 = equal; log scale)**\n\n![B/A per point]({RATIO_PLOT})\n"
    );
    if let Some(t) = consume_table(r) {
        let _ = writeln!(s, "## Consume side and broker CPU\n");
        s.push_str(&t);
        let _ = writeln!(
            s,
            "\nDrain: the producers fill the topic with `drain` messages, then the consumers empty it from where the fill began; the rate is messages received over the time from starting the consumers to the last message. Broker CPU is the broker process's user + system time (from `/proc`, found by its listening port; `-` where the broker is not on this machine) per drained message, and per acknowledged message over a send measurement (serving its consumers too).\n"
        );
    }
    let _ = writeln!(s, "## Every run, in order\n");
    s.push_str(&runs_table(r));
    let _ = writeln!(s);
    if let Some(t) = crate::broker::open_loop_section(r.runs.iter().map(|run| {
        (
            format!("point {} pass {} {}", run.point, run.repeat + 1, run.target),
            &run.figures,
        )
    })) {
        let _ = writeln!(s, "{t}");
    }
    crate::reporting::machine_section(&mut s, &r.machine);
    let _ = writeln!(
        s,
        "## How to read this\n\n- Both targets ran on this machine, in the same sitting, alternating; on a shared machine compare only what the ranges separate.\n- `point-<n>-<a|b>.hgrm` hold each side's send -> ack latency distribution (all passes merged, µs); `results.json` every figure."
    );
    s
}

/// The B / A table: per point, both sides' figures, the ratios, the verdict.
fn points_table(r: &CompareReport) -> String {
    let (a, b) = (&r.a.0, &r.b.0);
    let mut t = Table::new(
        &[
            "point",
            "workload",
            &format!("{a} msgs/s (min-max)"),
            &format!("{b} msgs/s (min-max)"),
            "B/A msgs/s (min-max)",
            &format!("{a} p99 ms"),
            &format!("{b} p99 ms"),
            "B/A p99 (min-max)",
            &format!("{a} send->consume p99 ms"),
            &format!("{b} send->consume p99 ms"),
            "B/A send->consume p99",
            "errors A/B",
            "verdict",
        ],
        "rlrrrrrrrrrrl",
    );
    for p in &r.points {
        let rate = |x: &Option<SideSummary>| {
            x.as_ref().map_or_else(
                || "-".to_string(),
                |x| {
                    format!(
                        "{:.0} ({:.0}-{:.0})",
                        x.msgs_per_sec, x.msgs_per_sec_range.0, x.msgs_per_sec_range.1
                    )
                },
            )
        };
        let p99 = |x: &Option<SideSummary>| {
            x.as_ref()
                .map_or_else(|| "-".to_string(), |x| format!("{:.3}", x.p99_us / 1000.0))
        };
        let e2e = |x: &Option<SideSummary>| {
            x.as_ref()
                .and_then(|x| x.e2e_p99_us)
                .map_or_else(|| "-".to_string(), |v| format!("{:.3}", v / 1000.0))
        };
        let errs = |x: &Option<SideSummary>| x.as_ref().map_or(0, |x| x.errors);
        t.row([
            p.point.index.to_string(),
            point_label(&p.point),
            rate(&p.a),
            rate(&p.b),
            fmt_ratio(p.throughput_ratio),
            p99(&p.a),
            p99(&p.b),
            fmt_ratio(p.p99_ratio),
            e2e(&p.a),
            e2e(&p.b),
            fmt_ratio(p.e2e_p99_ratio),
            format!("{}/{}", errs(&p.a), errs(&p.b)),
            p.verdict.clone(),
        ]);
    }
    t.finish()
}

/// The consume side: per point, each side's drain rate (the drain
/// workload) and the broker's CPU per message, where any run measured them.
fn consume_table(r: &CompareReport) -> Option<String> {
    let any = r.points.iter().any(|p| {
        [p.a.as_ref(), p.b.as_ref()]
            .into_iter()
            .flatten()
            .any(|x| x.drain_msgs_per_sec.is_some() || x.broker_cpu_ns_per_msg.is_some())
    });
    if !any {
        return None;
    }
    let (a, b) = (&r.a.0, &r.b.0);
    let mut t = Table::new(
        &[
            "point",
            "workload",
            &format!("{a} drain msgs/s"),
            &format!("{b} drain msgs/s"),
            "B/A drain (min-max)",
            &format!("{a} broker CPU ns/drained msg"),
            &format!("{b} broker CPU ns/drained msg"),
            &format!("{a} broker CPU ns/acked msg"),
            &format!("{b} broker CPU ns/acked msg"),
            "drained passes A/B",
        ],
        "rlrrrrrrrl",
    );
    let f0 = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.0}"));
    for p in &r.points {
        let get = |x: Option<&SideSummary>, f: fn(&SideSummary) -> Option<f64>| x.and_then(f);
        let drained = |x: Option<&SideSummary>| {
            x.map_or_else(
                || "-".to_string(),
                |x| {
                    x.drained_runs
                        .map_or_else(|| "-".to_string(), |d| format!("{d}/{}", x.runs))
                },
            )
        };
        t.row([
            p.point.index.to_string(),
            point_label(&p.point),
            f0(get(p.a.as_ref(), |x| x.drain_msgs_per_sec)),
            f0(get(p.b.as_ref(), |x| x.drain_msgs_per_sec)),
            fmt_ratio(p.drain_ratio),
            f0(get(p.a.as_ref(), |x| x.drain_broker_cpu_ns_per_msg)),
            f0(get(p.b.as_ref(), |x| x.drain_broker_cpu_ns_per_msg)),
            f0(get(p.a.as_ref(), |x| x.broker_cpu_ns_per_msg)),
            f0(get(p.b.as_ref(), |x| x.broker_cpu_ns_per_msg)),
            format!("{} / {}", drained(p.a.as_ref()), drained(p.b.as_ref())),
        ]);
    }
    Some(t.finish())
}

/// The table of every run, in the order they ran.
fn runs_table(r: &CompareReport) -> String {
    let mut t = Table::new(
        &[
            "#",
            "point",
            "pass",
            "target",
            "msgs/s",
            "p99 ms",
            "send->consume p99 ms",
            "errors",
            "broker VmRSS MiB",
            "broker RssAnon MiB",
        ],
        "rrrlrrrrrr",
    );
    let mib = |k: u64| format!("{:.1}", k as f64 / 1024.0);
    for run in &r.runs {
        let name = if run.target == "a" { &r.a.0 } else { &r.b.0 };
        t.row([
            run.order.to_string(),
            run.point.to_string(),
            (run.repeat + 1).to_string(),
            name.clone(),
            format!("{:.0}", run.figures.msgs_per_sec),
            format!("{:.3}", run.figures.latency_us.p99 / 1000.0),
            run.figures.consume.as_ref().map_or_else(
                || "-".into(),
                |c| format!("{:.3}", c.latency_us.p99 / 1000.0),
            ),
            run.figures.errors.to_string(),
            run.figures
                .broker_memory
                .map_or_else(|| "-".into(), |m| mib(m.vm_rss_kib)),
            run.figures
                .broker_memory
                .map_or_else(|| "-".into(), |m| mib(m.rss_anon_kib)),
        ]);
    }
    let mut s = t.finish();
    if r.runs.iter().any(|run| run.figures.broker_memory.is_some()) {
        s.push_str(
            "\nBroker VmRSS and RssAnon (`/proc/<pid>/status`) are read when the run's \
             measured sends end; a broker the harness did not start on this machine has none. \
             They grow over the passes as the store does; RssAnon leaves the mapped files out.\n",
        );
    }
    s
}

/// Write the report folder `<stamp>-<host>-<name>/` under `out`.
///
/// # Errors
///
/// When a file cannot be written or the plot drawn.
pub fn write(
    out: &Path,
    stamp: &str,
    name: &str,
    r: &CompareReport,
    hists: &Hists,
) -> Result<PathBuf> {
    let folder = ReportFolder::create(out, stamp, &r.machine.hostname, name, r)?;
    for ((p, side), h) in hists {
        let s = if *side == 0 { "a" } else { "b" };
        folder.put(&format!("point-{p}-{s}.hgrm"), &crate::reporting::hgrm(h))?;
    }
    let labels: Vec<String> = r.points.iter().map(|p| point_label(&p.point)).collect();
    plot_ratios(&folder.path().join(RATIO_PLOT), &r.points, &labels)?;
    folder.put("report.md", &markdown(r))?;
    Ok(folder.path().to_path_buf())
}
