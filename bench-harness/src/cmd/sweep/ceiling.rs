//! The harness's own ceiling on the latency-throughput curve: at every
//! offered rate of the sweep's open-loop points, the same client workload
//! (producers, size, inflight, batch, queues; no consumers) driven against
//! the in-process null broker ([`crate::target::null_broker`]), which
//! answers SUCCESS at once and stores nothing. Its send -> ack latency at a
//! rate is the floor no broker can go under with this client on this
//! machine; where the null broker itself falls behind the offered rate, the
//! client, not the broker, is the limit.
//!
//! The runs are made by [`crate::sweep::run_sweep_points`] after each pass's
//! points (once per distinct client setting and rate per pass), so they
//! share the passes' drift; `--no-null-ceiling` skips them.

use std::fmt::Write as _;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use crate::broker::{warm_and_measure, LoadFigures};
use crate::error::Result;
use crate::sweep::knee::{setting_of, Knee, MIN_ACKED_SHARE};
use crate::sweep::{median, Point, PointSummary};
use crate::target::null_broker::NullBroker;
use crate::workload::Workload;

/// The legend label of the ceiling line.
pub const CEILING_LABEL: &str = "harness ceiling (null broker)";

/// Workload keys the client's own cost depends on: a ceiling is measured
/// per combination of the swept ones (consumers are left out, the null
/// broker stores nothing; slaves are the broker's).
pub const CLIENT_KEYS: &[&str] = &["producers", "size", "inflight", "batch", "queues"];

/// Share of its sends the null broker may see leave late (more than the
/// open loop's 1 ms threshold) before the rate counts as client-limited:
/// above it, the lateness alone sets the null broker's p99 past 1 ms.
pub const MAX_LATE_SHARE: f64 = 0.01;

/// One null-broker measurement at one offered rate.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CeilingRun {
    /// The swept client keys of the points it stands for, `k=v k=v`
    /// (empty when none of [`CLIENT_KEYS`] is swept).
    pub setting: String,
    /// Offered msgs/s.
    pub rate: f64,
    /// The pass after whose points it ran (0-based).
    pub repeat: usize,
    /// The figures.
    pub figures: LoadFigures,
}

/// A (client setting, rate) to measure, with its workload.
#[derive(Debug, Clone)]
pub struct CeilingTarget {
    /// As [`CeilingRun::setting`].
    pub setting: String,
    /// Offered msgs/s.
    pub rate: f64,
    /// The point's workload with no consumers.
    pub workload: Workload,
}

/// `k=v k=v` of the swept [`CLIENT_KEYS`] among `values`.
pub fn client_setting(values: &[(String, String)]) -> String {
    values
        .iter()
        .filter(|(k, _)| CLIENT_KEYS.contains(&k.as_str()))
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The distinct (client setting, offered rate) of the open-loop points, in
/// the order they first appear, each with the first such point's workload
/// without consumers. Closed-loop points add nothing.
pub fn targets(points: &[Point], workloads: &[Workload]) -> Vec<CeilingTarget> {
    let mut out: Vec<CeilingTarget> = Vec::new();
    for (p, w) in points.iter().zip(workloads) {
        let Some(o) = &w.open_loop else { continue };
        let setting = client_setting(&p.values);
        if out
            .iter()
            .any(|t| t.setting == setting && t.rate.total_cmp(&o.rate).is_eq())
        {
            continue;
        }
        let mut workload = w.clone();
        workload.consumers = 0;
        out.push(CeilingTarget {
            setting,
            rate: o.rate,
            workload,
        });
    }
    out
}

/// Measure `workload` against a fresh null broker on `rt`, with `warmup`.
///
/// # Errors
///
/// When the null broker cannot start or the drive fails.
pub fn measure(
    rt: &tokio::runtime::Runtime,
    workload: &Workload,
    warmup: Duration,
    stop: &Arc<AtomicBool>,
) -> Result<LoadFigures> {
    let null = NullBroker::start()?;
    let (m, cpu) = warm_and_measure(rt, &null.addr().to_string(), workload, warmup, stop)?;
    Ok(LoadFigures::new(&m, cpu))
}

/// The ceiling at one (client setting, rate), over its passes.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CeilingPoint {
    /// As [`CeilingRun::setting`].
    pub setting: String,
    /// Offered msgs/s.
    pub rate: f64,
    /// Passes measured.
    pub runs: usize,
    /// Median send -> ack p50, ms.
    pub p50_ms: f64,
    /// Median send -> ack p99, ms.
    pub p99_ms: f64,
    /// Median send -> ack p99.9, ms.
    pub p999_ms: f64,
    /// Median acknowledged msgs/s.
    pub acked_msgs_per_sec: f64,
    /// Requests sent, over all passes.
    pub sends: u64,
    /// Requests that left more than 1 ms after their intended time, over all passes.
    pub late_sends: u64,
    /// Requests due that never left, over all passes.
    pub unsent: u64,
    /// Failed requests, over all passes.
    pub errors: u64,
    /// Why the null broker itself did not keep to the offered rate (the
    /// client is the limit there); `None` when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_limited: Option<String>,
}

/// Why a ceiling point shows the client falling behind; `None` when it kept up.
pub fn client_limit_reason(c: &CeilingPoint) -> Option<String> {
    if c.errors > 0 {
        return Some(format!("{} errors", c.errors));
    }
    if c.unsent > 0 {
        return Some(format!("{} requests never sent", c.unsent));
    }
    if c.acked_msgs_per_sec < c.rate * MIN_ACKED_SHARE {
        return Some(format!(
            "acked {:.0} msgs/s < {:.0} % of offered",
            c.acked_msgs_per_sec,
            MIN_ACKED_SHARE * 100.0
        ));
    }
    if c.late_sends as f64 > c.sends as f64 * MAX_LATE_SHARE {
        return Some(format!(
            "{} of {} sends left > 1 ms late",
            c.late_sends, c.sends
        ));
    }
    None
}

/// The ceiling points of `runs`: one per (setting, rate), in the order
/// they first ran, sorted by setting then rate.
pub fn summarize(runs: &[CeilingRun]) -> Vec<CeilingPoint> {
    let mut keys: Vec<(String, f64)> = Vec::new();
    for r in runs {
        if !keys
            .iter()
            .any(|(s, rate)| *s == r.setting && rate.total_cmp(&r.rate).is_eq())
        {
            keys.push((r.setting.clone(), r.rate));
        }
    }
    keys.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    keys.into_iter()
        .map(|(setting, rate)| {
            let rs: Vec<&LoadFigures> = runs
                .iter()
                .filter(|r| r.setting == setting && r.rate.total_cmp(&rate).is_eq())
                .map(|r| &r.figures)
                .collect();
            let med = |g: &dyn Fn(&LoadFigures) -> f64| -> f64 {
                median(&rs.iter().map(|f| g(f)).collect::<Vec<_>>())
            };
            let open = || rs.iter().filter_map(|f| f.open_loop.as_ref());
            let mut c = CeilingPoint {
                runs: rs.len(),
                p50_ms: med(&|f| f.latency_us.p50 / 1000.0),
                p99_ms: med(&|f| f.latency_us.p99 / 1000.0),
                p999_ms: med(&|f| f.latency_us.p999 / 1000.0),
                acked_msgs_per_sec: med(&|f| f.msgs_per_sec),
                sends: open().map(|o| o.sends).sum(),
                late_sends: open().map(|o| o.late_sends).sum(),
                unsent: open().map(|o| o.unsent).sum(),
                errors: rs.iter().map(|f| f.errors).sum(),
                client_limited: None,
                setting,
                rate,
            };
            c.client_limited = client_limit_reason(&c);
            c
        })
        .collect()
}

/// The ceiling point of a curve setting (`setting_of` a point) at `rate`:
/// the one of the setting's swept client keys.
pub fn at<'a>(
    ceiling: &'a [CeilingPoint],
    sums: &[PointSummary],
    setting: &str,
    rate: f64,
) -> Option<&'a CeilingPoint> {
    let client = sums
        .iter()
        .find(|s| setting_of(s) == setting)
        .map(|s| client_setting(&s.point.values))?;
    ceiling
        .iter()
        .find(|c| c.setting == client && c.rate.total_cmp(&rate).is_eq())
}

/// The null broker's p99 at a rate against the limit: `X ms: Y % of the L
/// ms limit is the harness`, or that it is over the limit by itself.
fn share_of_limit(c: &CeilingPoint, limit_ms: f64) -> String {
    if c.p99_ms > limit_ms || limit_ms <= 0.0 {
        return format!(
            "{:.3} ms, over the {limit_ms} ms limit on its own",
            c.p99_ms
        );
    }
    format!(
        "{:.3} ms: {:.0} % of the {limit_ms} ms limit is the harness",
        c.p99_ms,
        c.p99_ms / limit_ms * 100.0
    )
}

/// Per knee, a sentence setting it against the ceiling: the null broker's
/// p99 at the knee rate as a share of the limit, the same at the rate that
/// missed, and whether the null broker itself kept up at each.
pub fn knee_ceiling_sentences(
    knees: &[Knee],
    ceiling: &[CeilingPoint],
    sums: &[PointSummary],
    limit_ms: f64,
) -> Vec<String> {
    let mut out = Vec::new();
    for k in knees {
        let of = if k.setting == "all" {
            String::new()
        } else {
            format!(" of `{}`", k.setting)
        };
        let mut s = String::new();
        match k.rate {
            Some(rate) => match at(ceiling, sums, &k.setting, rate) {
                Some(c) => {
                    let _ = write!(
                        s,
                        "At the knee{of} ({rate:.0} msgs/s) the null broker's p99 is {}.",
                        share_of_limit(c, limit_ms)
                    );
                    if let Some(why) = &c.client_limited {
                        let _ = write!(
                            s,
                            " The null broker itself fell behind at that rate ({why}): there the client, not the broker, is the limit."
                        );
                    }
                }
                None => {
                    let _ = write!(
                        s,
                        "At the knee{of} ({rate:.0} msgs/s) the null broker was not measured."
                    );
                }
            },
            None => {
                let _ = write!(s, "No knee{of}.");
            }
        }
        if let Some((miss, _)) = &k.first_miss {
            if let Some(c) = at(ceiling, sums, &k.setting, *miss) {
                let _ = write!(
                    s,
                    " At {miss:.0} msgs/s, the rate that missed, the null broker's p99 is {}",
                    share_of_limit(c, limit_ms)
                );
                match &c.client_limited {
                    Some(why) => {
                        let _ = write!(
                            s,
                            "; it fell behind there too ({why}): that miss is the client's, so the broker's own knee may lie higher."
                        );
                    }
                    None => s.push('.'),
                }
            }
        }
        out.push(s.trim_start().to_string());
    }
    out
}

/// The "Harness ceiling (null broker)" markdown: the table and, with a
/// limit, the knee sentences; empty without ceiling points.
pub fn ceiling_markdown(
    ceiling: &[CeilingPoint],
    knees: &[Knee],
    sums: &[PointSummary],
    limit_ms: Option<f64>,
) -> String {
    let mut s = String::new();
    if ceiling.is_empty() {
        return s;
    }
    let with_setting = ceiling.iter().any(|c| !c.setting.is_empty());
    let mut head = vec![
        "offered msgs/s",
        "acked msgs/s",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "late sends",
        "unsent",
        "passes",
        "client kept up",
    ];
    let mut aligns = "rrrrrrrrl".to_string();
    if with_setting {
        head.insert(0, "client setting");
        aligns.insert(0, 'l');
    }
    let mut t = crate::table::Table::new(&head, &aligns);
    for c in ceiling {
        let mut row = vec![
            format!("{:.0}", c.rate),
            format!("{:.0}", c.acked_msgs_per_sec),
            format!("{:.3}", c.p50_ms),
            format!("{:.3}", c.p99_ms),
            format!("{:.3}", c.p999_ms),
            format!("{} of {}", c.late_sends, c.sends),
            c.unsent.to_string(),
            c.runs.to_string(),
            c.client_limited
                .as_ref()
                .map_or("yes".to_string(), |w| format!("**no**: {w}")),
        ];
        if with_setting {
            row.insert(0, c.setting.clone());
        }
        t.row(row);
    }
    let _ = writeln!(s, "### Harness ceiling (null broker)\n");
    s.push_str(&t.finish());
    let _ = writeln!(
        s,
        "\nThe same client workload without consumers, driven at each offered rate against the harness's in-process null broker (answers SUCCESS at once, stores nothing), after each pass's points: its send -> ack latency is what the client and loopback alone cost at that rate, the dashed grey line on `latency-vs-rate.svg`. Latency on the curve above it is the broker's; a rate where the null broker did not keep up (more than {:.0} % of its sends > 1 ms late, a request unsent, an error, or acked < {:.0} % of offered; a black triangle on the plot) is limited by the client, not the broker.\n",
        MAX_LATE_SHARE * 100.0,
        MIN_ACKED_SHARE * 100.0
    );
    let behind: Vec<String> = ceiling
        .iter()
        .filter(|c| c.client_limited.is_some())
        .map(|c| {
            if c.setting.is_empty() {
                format!("{:.0} msgs/s", c.rate)
            } else {
                format!("{:.0} msgs/s ({})", c.rate, c.setting)
            }
        })
        .collect();
    if behind.is_empty() {
        let _ = writeln!(
            s,
            "The null broker kept up at every offered rate measured.\n"
        );
    } else {
        let _ = writeln!(
            s,
            "**The null broker itself fell behind at {}**: at those rates the client, not the broker, is the limit.\n",
            behind.join(", ")
        );
    }
    if let Some(l) = limit_ms {
        for line in knee_ceiling_sentences(knees, ceiling, sums, l) {
            let _ = writeln!(s, "- {line}");
        }
        if !knees.is_empty() {
            let _ = writeln!(s);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::OpenLoopFigures;
    use crate::results::LatencySummary;
    use crate::workload::Arrivals;

    /// Figures at `rate` offered: acked `acked`, p99 `p99_ms`, `late` of
    /// 1000 sends late, `unsent` never sent.
    fn figures(rate: f64, acked: f64, p99_ms: f64, late: u64, unsent: u64) -> LoadFigures {
        let us = p99_ms * 1000.0;
        let lat = LatencySummary {
            p50: us / 5.0,
            p90: us / 2.0,
            p99: us,
            p999: us * 2.0,
            p9999: us * 3.0,
            max: us * 3.0,
            mean: us / 4.0,
        };
        LoadFigures {
            messages: acked as u64,
            seconds: 1.0,
            msgs_per_sec: acked,
            mb_per_sec: 0.0,
            latency_us: lat,
            errors: 0,
            first_error: None,
            statuses: Default::default(),
            cpu_ns_per_msg: 0.0,
            acks_per_100ms: Vec::new(),
            consume: None,
            open_loop: Some(OpenLoopFigures {
                rate,
                arrivals: Arrivals::Constant,
                sends: 1000,
                late_sends: late,
                late_threshold_us: 1000.0,
                lateness_us: lat,
                unsent,
            }),
            broker_cpu_ns_per_msg: None,
            broker_memory: None,
            drain: None,
            loopback: Vec::new(),
        }
    }

    fn run(rate: f64, repeat: usize, f: LoadFigures) -> CeilingRun {
        CeilingRun {
            setting: String::new(),
            rate,
            repeat,
            figures: f,
        }
    }

    fn point(index: usize, flush: &str, rate: f64) -> PointSummary {
        let mut s = crate::sweep_report::tests::summary(index, "1", rate, 0.0, 1000.0);
        s.point.values = vec![
            ("flushDiskType".into(), flush.into()),
            ("rate".into(), format!("{rate}")),
        ];
        s.offered_rate = Some(rate);
        s
    }

    #[test]
    fn targets_are_one_per_client_setting_and_rate_without_consumers() {
        let pts = crate::sweep::points(&[
            (
                "flushDiskType".into(),
                vec!["ASYNC_FLUSH".into(), "SYNC_FLUSH".into()],
            ),
            (
                "rate".into(),
                vec!["0".into(), "1000".into(), "2000".into()],
            ),
        ]);
        let base = crate::broker::LoadArgs {
            consumers: 1,
            ..Default::default()
        };
        let ws: Vec<Workload> = pts
            .iter()
            .map(|p| crate::sweep::point_workload(&base, p).unwrap())
            .collect();
        let t = targets(&pts, &ws);
        assert_eq!(
            t.iter().map(|t| t.rate).collect::<Vec<_>>(),
            vec![1000.0, 2000.0]
        );
        assert!(t
            .iter()
            .all(|t| t.setting.is_empty() && t.workload.consumers == 0));
        assert_eq!(t[0].workload.producers, base.producers);
        // A swept client key makes one target per value and rate.
        let pts = crate::sweep::points(&[
            ("producers".into(), vec!["1".into(), "2".into()]),
            ("rate".into(), vec!["1000".into()]),
        ]);
        let ws: Vec<Workload> = pts
            .iter()
            .map(|p| crate::sweep::point_workload(&base, p).unwrap())
            .collect();
        let t = targets(&pts, &ws);
        assert_eq!(t.len(), 2);
        assert_eq!(t[1].setting, "producers=2");
        assert_eq!(t[1].workload.producers, 2);
    }

    #[test]
    fn the_summary_takes_medians_and_flags_a_client_that_fell_behind() {
        let runs = vec![
            run(2000.0, 0, figures(2000.0, 2000.0, 0.5, 0, 0)),
            run(1000.0, 0, figures(1000.0, 1000.0, 0.2, 0, 0)),
            run(2000.0, 1, figures(2000.0, 1990.0, 0.7, 5, 0)),
            run(2000.0, 2, figures(2000.0, 1995.0, 0.6, 1, 0)),
            run(4000.0, 0, figures(4000.0, 3000.0, 9.0, 400, 7)),
        ];
        let c = summarize(&runs);
        assert_eq!(
            c.iter().map(|c| c.rate).collect::<Vec<_>>(),
            vec![1000.0, 2000.0, 4000.0]
        );
        assert_eq!(c[1].runs, 3);
        assert_eq!(c[1].p99_ms, 0.6);
        assert_eq!(c[1].acked_msgs_per_sec, 1995.0);
        assert_eq!((c[1].sends, c[1].late_sends), (3000, 6));
        // 6 of 3000 late is under 1 %: the client kept up.
        assert_eq!(c[1].client_limited, None);
        let why = c[2].client_limited.as_deref().unwrap();
        assert!(why.contains("never sent"), "{why}");
        // Late alone, over 1 % of the sends.
        let late = summarize(&[run(1000.0, 0, figures(1000.0, 1000.0, 2.0, 20, 0))]);
        assert!(late[0]
            .client_limited
            .as_deref()
            .unwrap()
            .contains("20 of 1000 sends"));
        let short = summarize(&[run(1000.0, 0, figures(1000.0, 900.0, 0.2, 0, 0))]);
        assert!(short[0]
            .client_limited
            .as_deref()
            .unwrap()
            .contains("acked 900"));
    }

    #[test]
    fn the_table_and_the_knee_sentences_say_how_much_of_the_limit_is_the_harness() {
        let sums = vec![
            point(0, "ASYNC_FLUSH", 1000.0),
            point(1, "ASYNC_FLUSH", 2000.0),
            point(2, "SYNC_FLUSH", 1000.0),
            point(3, "SYNC_FLUSH", 2000.0),
        ];
        let ceiling = summarize(&[
            run(1000.0, 0, figures(1000.0, 1000.0, 0.25, 0, 0)),
            run(2000.0, 0, figures(2000.0, 1500.0, 3.0, 300, 0)),
        ]);
        let knees = vec![
            Knee {
                setting: "flushDiskType=ASYNC_FLUSH".into(),
                rate: Some(2000.0),
                point: Some(1),
                acked_msgs_per_sec: Some(2000.0),
                p99_ms: Some(1.0),
                first_miss: None,
            },
            Knee {
                setting: "flushDiskType=SYNC_FLUSH".into(),
                rate: Some(1000.0),
                point: Some(2),
                acked_msgs_per_sec: Some(1000.0),
                p99_ms: Some(1.0),
                first_miss: Some((2000.0, "p99 9 ms > 5 ms".into())),
            },
        ];
        let md = ceiling_markdown(&ceiling, &knees, &sums, Some(5.0));
        assert!(md.contains("### Harness ceiling (null broker)"), "{md}");
        assert!(
            md.contains("| 1000 | 1000 | 0.050 | 0.250 | 0.500 | 0 of 1000 | 0 | 1 | yes |"),
            "{md}"
        );
        assert!(md.contains("| 2000 | 1500 |"), "{md}");
        assert!(
            md.contains("**The null broker itself fell behind at 2000 msgs/s**"),
            "{md}"
        );
        let kept = ceiling_markdown(&ceiling[..1], &knees, &sums, Some(5.0));
        assert!(kept.contains("kept up at every offered rate"), "{kept}");
        assert!(
            md.contains("**no**: acked 1500 msgs/s < 98 % of offered"),
            "{md}"
        );
        // 0.25 ms of a 5 ms limit: 5 %.
        assert!(
            md.contains("- At the knee of `flushDiskType=SYNC_FLUSH` (1000 msgs/s) the null broker's p99 is 0.250 ms: 5 % of the 5 ms limit is the harness."),
            "{md}"
        );
        // 3 ms of 5 ms, and the client fell behind there.
        assert!(
            md.contains("At the knee of `flushDiskType=ASYNC_FLUSH` (2000 msgs/s) the null broker's p99 is 3.000 ms: 60 % of the 5 ms limit is the harness. The null broker itself fell behind at that rate"),
            "{md}"
        );
        // SYNC_FLUSH missed at 2000, where the null broker fell behind too.
        assert!(
            md.contains("At 2000 msgs/s, the rate that missed, the null broker's p99 is 3.000 ms: 60 % of the 5 ms limit is the harness; it fell behind there too (acked 1500"),
            "{md}"
        );
        // No ceiling measured: nothing to write.
        assert!(ceiling_markdown(&[], &knees, &sums, Some(5.0)).is_empty());
        // A knee at a rate the null broker did not run at says so.
        let s = knee_ceiling_sentences(&knees[1..], &ceiling[1..], &sums, 5.0);
        assert!(s[0].contains("was not measured"), "{s:?}");
        // No knee: the lowest rate missed; its ceiling is still compared.
        let none = Knee {
            setting: "all".into(),
            rate: None,
            point: None,
            acked_msgs_per_sec: None,
            p99_ms: None,
            first_miss: Some((1000.0, "p99 9 ms > 5 ms".into())),
        };
        let mut only_rate = point(0, "", 1000.0);
        only_rate.point.values.remove(0);
        let s = knee_ceiling_sentences(
            std::slice::from_ref(&none),
            &ceiling,
            std::slice::from_ref(&only_rate),
            5.0,
        );
        assert_eq!(
            s[0],
            "No knee. At 1000 msgs/s, the rate that missed, the null broker's p99 is 0.250 ms: 5 % of the 5 ms limit is the harness."
        );
        // A limit the null broker misses by itself is said so, not as a share over 100 %.
        let s = knee_ceiling_sentences(&[none], &ceiling, &[only_rate], 0.2);
        assert!(
            s[0].ends_with("0.250 ms, over the 0.2 ms limit on its own."),
            "{s:?}"
        );
    }
}
