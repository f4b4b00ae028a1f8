//! The latency-throughput curve of a sweep over `rate` (open loop): the
//! points grouped into one series per setting (every swept key except
//! `rate`), ordered by offered rate, and the knee of each series, the highest
//! offered rate the setting takes within a p99 limit (`--p99-limit-ms`).

use std::fmt::Write as _;
use std::path::Path;

use crate::error::Result;
use crate::plot::{plot_latency_vs_rate, CeilingLine, RateCurve};
use crate::sweep::ceiling::{ceiling_markdown, CeilingPoint, CEILING_LABEL};
use crate::sweep::PointSummary;
use crate::sweep_report::SweepReport;

/// The swept key that is the x axis of the curve.
pub const RATE_KEY: &str = "rate";

/// Share of the offered rate a point must have acknowledged to count as
/// taking the load (the "within ~2 %" of the issue).
pub const MIN_ACKED_SHARE: f64 = 0.98;

/// One setting's points, by offered rate.
#[derive(Debug, Clone)]
pub struct CurveSeries<'a> {
    /// The setting: `k=v` of every swept key except `rate` (`all` when
    /// `rate` is the only swept key).
    pub setting: String,
    /// `(offered msgs/s, summary)`, ascending offered rate; closed-loop
    /// points (`rate=0`) are left out.
    pub points: Vec<(f64, &'a PointSummary)>,
}

/// The offered rate of a point: the figures' open-loop rate, else the swept
/// `rate` value; `None` for the closed loop.
pub fn offered_rate(s: &PointSummary) -> Option<f64> {
    s.offered_rate
        .or_else(|| s.point.get(RATE_KEY).and_then(|v| v.parse::<f64>().ok()))
        .filter(|r| *r > 0.0)
}

/// The setting of a point: its swept values except `rate`, as `k=v k=v`.
pub fn setting_of(s: &PointSummary) -> String {
    let others: Vec<String> = s
        .point
        .values
        .iter()
        .filter(|(k, _)| k != RATE_KEY)
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if others.is_empty() {
        "all".to_string()
    } else {
        others.join(" ")
    }
}

/// Group open-loop points into one series per setting (in the order the
/// settings first appear), each ordered by offered rate.
pub fn curve_series(sums: &[PointSummary]) -> Vec<CurveSeries<'_>> {
    let mut out: Vec<CurveSeries<'_>> = Vec::new();
    for s in sums {
        let Some(rate) = offered_rate(s) else {
            continue;
        };
        let setting = setting_of(s);
        match out.iter_mut().find(|c| c.setting == setting) {
            Some(c) => c.points.push((rate, s)),
            None => out.push(CurveSeries {
                setting,
                points: vec![(rate, s)],
            }),
        }
    }
    for c in &mut out {
        c.points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out
}

/// Why a point does or does not take its offered load within the limit;
/// `None` when it does.
pub fn miss_reason(offered: f64, s: &PointSummary, limit_ms: f64) -> Option<String> {
    if s.p99_us > limit_ms * 1000.0 {
        return Some(format!("p99 {:.3} ms > {limit_ms} ms", s.p99_us / 1000.0));
    }
    if s.errors > 0 {
        return Some(format!("{} errors", s.errors));
    }
    if s.unsent > 0 {
        return Some(format!("{} requests never sent", s.unsent));
    }
    if s.msgs_per_sec < offered * MIN_ACKED_SHARE {
        return Some(format!(
            "acked {:.0} msgs/s < {:.0} % of offered",
            s.msgs_per_sec,
            MIN_ACKED_SHARE * 100.0
        ));
    }
    None
}

/// The knee of one setting.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Knee {
    /// The setting (`k=v ...` of the swept keys except `rate`).
    pub setting: String,
    /// The highest offered rate (msgs/s) below which every measured rate of
    /// the setting also took its load within the limit; `None` when the
    /// lowest rate already missed.
    pub rate: Option<f64>,
    /// Point index of the knee.
    pub point: Option<usize>,
    /// Median acked msgs/s at the knee.
    pub acked_msgs_per_sec: Option<f64>,
    /// Median send -> ack p99 at the knee, ms.
    pub p99_ms: Option<f64>,
    /// The next offered rate, which missed the limit, and why (`None` when
    /// the highest measured rate still met it: the knee lies higher).
    pub first_miss: Option<(f64, String)>,
}

/// The knee of `c` under `limit_ms`: walking up the offered rates, the last
/// one that took its load (p99 <= limit, acked >= 98 % of offered, no
/// unsent request, no error) before the first that did not. Stopping at the
/// first miss keeps a lucky pass at a higher rate from passing for the knee.
pub fn knee_of(c: &CurveSeries<'_>, limit_ms: f64) -> Knee {
    let mut k = Knee {
        setting: c.setting.clone(),
        rate: None,
        point: None,
        acked_msgs_per_sec: None,
        p99_ms: None,
        first_miss: None,
    };
    for &(rate, s) in &c.points {
        if let Some(why) = miss_reason(rate, s, limit_ms) {
            k.first_miss = Some((rate, why));
            break;
        }
        k.rate = Some(rate);
        k.point = Some(s.point.index);
        k.acked_msgs_per_sec = Some(s.msgs_per_sec);
        k.p99_ms = Some(s.p99_us / 1000.0);
    }
    k
}

/// The knee of every setting.
pub fn knees(sums: &[PointSummary], limit_ms: f64) -> Vec<Knee> {
    curve_series(sums)
        .iter()
        .map(|c| knee_of(c, limit_ms))
        .collect()
}

/// The setting with the highest knee, if any has one.
pub fn best_knee(knees: &[Knee]) -> Option<&Knee> {
    knees
        .iter()
        .filter(|k| k.rate.is_some())
        .max_by(|a, b| a.rate.unwrap_or(0.0).total_cmp(&b.rate.unwrap_or(0.0)))
}

/// The report's sentence on the best knee.
pub fn knee_sentence(knees: &[Knee], limit_ms: f64) -> String {
    match best_knee(knees) {
        Some(k) => format!(
            "At p99 <= {limit_ms} ms this machine takes {:.0} msgs/s with {} (the highest knee of the settings measured{}).",
            k.rate.unwrap_or(0.0),
            if k.setting == "all" { "the settings of this sweep".to_string() } else { format!("`{}`", k.setting) },
            if k.first_miss.is_none() { "; its highest offered rate still met the limit, so the machine may take more" } else { "" }
        ),
        None => format!(
            "No setting took even its lowest offered rate with p99 <= {limit_ms} ms (acked within 2 % of offered, nothing unsent): no knee."
        ),
    }
}

/// The "knee per setting" markdown table and the sentence.
pub fn knee_markdown(knees: &[Knee], limit_ms: f64) -> String {
    let mut t = crate::table::Table::new(
        &[
            "setting",
            "knee msgs/s offered",
            "acked msgs/s",
            "p99 ms",
            "point",
            "next rate",
            "missed because",
        ],
        "lrrrrrl",
    );
    let opt = |v: Option<f64>, d: usize| v.map_or("-".to_string(), |v| format!("{v:.d$}"));
    for k in knees {
        t.row([
            k.setting.clone(),
            k.rate.map_or("none".to_string(), |r| format!("{r:.0}")),
            opt(k.acked_msgs_per_sec, 0),
            opt(k.p99_ms, 3),
            k.point.map_or("-".to_string(), |p| p.to_string()),
            k.first_miss
                .as_ref()
                .map_or("-".to_string(), |(r, _)| format!("{r:.0}")),
            k.first_miss.as_ref().map_or(
                "(highest rate measured met the limit)".to_string(),
                |(_, w)| w.clone(),
            ),
        ]);
    }
    let mut s = String::new();
    let _ = writeln!(s, "### Knee per setting (p99 <= {limit_ms} ms)\n");
    s.push_str(&t.finish());
    let _ = writeln!(
        s,
        "\nThe knee is the highest offered rate up to which every rate of the setting took its load: median send -> ack p99 <= {limit_ms} ms, median acked rate >= {:.0} % of offered, no request left unsent, no error. A rate that meets the p99 limit but falls short of the offered rate (the client or broker could not keep up) is not a knee.\n\n{}\n",
        MIN_ACKED_SHARE * 100.0,
        knee_sentence(knees, limit_ms)
    );
    s
}

/// The send -> ack curve plot of a report.
pub const CURVE_PLOT: &str = "latency-vs-rate.svg";
/// The send -> consume curve plot (points with consumers only).
pub const CURVE_PLOT_E2E: &str = "latency-vs-rate-e2e.svg";

/// The plot lines of the settings: send -> ack percentiles, or send ->
/// consume with `e2e` (points without consumers left out), each with its
/// knee (looked up by setting in `knees`).
pub(crate) fn rate_curves(sums: &[PointSummary], knees: &[Knee], e2e: bool) -> Vec<RateCurve> {
    curve_series(sums)
        .into_iter()
        .map(|c| {
            let ms = |s: &PointSummary| -> Option<[f64; 3]> {
                if e2e {
                    let c = s.consume.as_ref()?;
                    Some([c.p50_us, c.p99_us, c.p999_us].map(|v| v / 1000.0))
                } else {
                    Some([s.p50_us, s.p99_us, s.p999_us].map(|v| v / 1000.0))
                }
            };
            let points: Vec<(f64, [f64; 3])> = c
                .points
                .iter()
                .filter_map(|(r, s)| Some((*r, ms(s)?)))
                .collect();
            let knee = knees
                .iter()
                .find(|k| k.setting == c.setting)
                .and_then(|k| k.rate)
                .and_then(|kr| points.iter().find(|(r, _)| *r == kr))
                .map(|(r, y)| (*r, y[1]));
            RateCurve {
                name: c.setting,
                points,
                knee,
            }
        })
        .filter(|c| !c.points.is_empty())
        .collect()
}

/// The ceiling lines of the plot: one per swept client setting, labelled
/// [`CEILING_LABEL`] (with the setting when client keys were swept).
pub(crate) fn ceiling_lines(ceiling: &[CeilingPoint]) -> Vec<CeilingLine> {
    let mut out: Vec<CeilingLine> = Vec::new();
    for c in ceiling {
        let name = if c.setting.is_empty() {
            CEILING_LABEL.to_string()
        } else {
            format!("{CEILING_LABEL} {}", c.setting)
        };
        let pt = (c.rate, [c.p50_ms, c.p99_ms], c.client_limited.is_some());
        match out.iter_mut().find(|l| l.name == name) {
            Some(l) => l.points.push(pt),
            None => out.push(CeilingLine {
                name,
                points: vec![pt],
            }),
        }
    }
    for l in &mut out {
        l.points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out
}

/// Draw the curve plots of a report into `dir` (nothing when no point ran
/// open loop).
///
/// # Errors
///
/// When a plot cannot be drawn.
pub fn write_curve_plots(dir: &Path, r: &SweepReport) -> Result<()> {
    let caption =
        |what: &str| format!("{what} vs offered rate (thick: p99, thin: p50 below, p99.9 above)");
    let ack = rate_curves(&r.points, &r.knees, false);
    plot_latency_vs_rate(
        &dir.join(CURVE_PLOT),
        &caption("send -> ack"),
        &ack,
        &ceiling_lines(&r.ceiling),
        r.p99_limit_ms,
    )?;
    let e2e = rate_curves(&r.points, &r.knees, true);
    if !e2e.is_empty() {
        plot_latency_vs_rate(
            &dir.join(CURVE_PLOT_E2E),
            &caption("send -> consume"),
            &e2e,
            &[],
            None,
        )?;
    }
    Ok(())
}

/// The report's "Latency against offered load" section: the plots and the
/// knee table; empty when no point ran open loop.
pub fn curve_section(r: &SweepReport) -> String {
    let mut s = String::new();
    if curve_series(&r.points).is_empty() {
        return s;
    }
    let _ = writeln!(
        s,
        "## Latency against offered load
"
    );
    let _ = writeln!(
        s,
        "One line per setting (every swept key except `rate`); x = offered msgs/s, y = latency in ms on a log axis; thick line with dots = median p99 over passes, thin lines = p50 (below) and p99.9 (above); latency counts from each message's intended send time. Closed-loop points (`rate=0`) are not on the curve.\n"
    );
    if !r.ceiling.is_empty() {
        let _ = writeln!(
            s,
            "The dashed grey line is the harness ceiling: the null broker's send -> ack p99 at each offered rate (thin dashed grey: its p50), the client's own cost; a black triangle marks a rate where the null broker itself fell behind (see \"Harness ceiling (null broker)\" below).\n"
        );
    }
    let _ = writeln!(s, "![send -> ack latency vs offered rate]({CURVE_PLOT})\n");
    if r.points.iter().any(|p| p.consume.is_some()) {
        let _ = writeln!(
            s,
            "![send -> consume latency vs offered rate]({CURVE_PLOT_E2E})\n\nThe knee crosses on the send -> consume plot sit at the send -> ack knees' rates.\n"
        );
    }
    if let Some(l) = r.p99_limit_ms {
        s.push_str(&knee_markdown(&r.knees, l));
    }
    s.push_str(&ceiling_markdown(
        &r.ceiling,
        &r.knees,
        &r.points,
        r.p99_limit_ms,
    ));
    s
}

/// The report's line on a knee search (`--find-knee`), if the sweep was one.
pub fn search_line(r: &SweepReport) -> Option<String> {
    r.find_knee.map(|start| format!(
        "- knee search (`--find-knee`): per setting, from {start} msgs/s the rate doubled while the setting took it, then bisected; the passes of a rate ran back to back, not interleaved"
    ))
}

/// The best knee's sentence under "Recommended settings", if rate was swept.
pub fn recommendation_line(r: &SweepReport) -> Option<String> {
    r.p99_limit_ms.map(|l| {
        format!(
            "{} See \"Knee per setting\" above.\n",
            knee_sentence(&r.knees, l)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A summary at `rate` offered for `flush`, acked `acked`, p99 `p99_ms`.
    fn pt(index: usize, flush: &str, rate: f64, acked: f64, p99_ms: f64) -> PointSummary {
        let mut s = crate::sweep_report::tests::summary(index, "1", acked, 0.0, p99_ms * 1000.0);
        s.point.values = vec![
            ("flushDiskType".into(), flush.into()),
            ("rate".into(), format!("{rate}")),
        ];
        s.p999_us = p99_ms * 2000.0;
        s.offered_rate = Some(rate);
        s
    }

    /// Points from `first` on of `flush` at `(offered = acked rate, p99 ms)`.
    fn curve(first: usize, flush: &str, pts: &[(f64, f64)]) -> Vec<PointSummary> {
        pts.iter()
            .enumerate()
            .map(|(i, &(rate, p99))| pt(first + i, flush, rate, rate, p99))
            .collect()
    }

    #[test]
    fn series_group_every_key_but_rate_and_order_by_rate() {
        let sums = vec![
            pt(0, "ASYNC_FLUSH", 4000.0, 4000.0, 1.0),
            pt(1, "ASYNC_FLUSH", 1000.0, 1000.0, 1.0),
            pt(2, "SYNC_FLUSH", 1000.0, 1000.0, 1.0),
            pt(3, "SYNC_FLUSH", 0.0, 9000.0, 1.0), // closed loop: not on the curve
        ];
        let c = curve_series(&sums);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].setting, "flushDiskType=ASYNC_FLUSH");
        assert_eq!(
            c[0].points.iter().map(|p| p.0).collect::<Vec<_>>(),
            vec![1000.0, 4000.0]
        );
        assert_eq!(c[1].setting, "flushDiskType=SYNC_FLUSH");
        assert_eq!(c[1].points.len(), 1);
    }

    #[test]
    fn the_knee_stops_at_the_limit() {
        // 4000 is over the 5 ms limit; 8000 a lucky pass beyond the miss.
        let mut sums = curve(
            0,
            "A",
            &[(1000.0, 1.0), (2000.0, 4.9), (4000.0, 5.1), (8000.0, 2.0)],
        );
        sums[1].msgs_per_sec = 1990.0; // within 2 % of offered: still taken
        let k = &knees(&sums, 5.0)[0];
        assert_eq!(k.rate, Some(2000.0));
        assert_eq!(k.point, Some(1));
        let (miss, why) = k.first_miss.clone().unwrap();
        assert_eq!(miss, 4000.0);
        assert!(why.contains("p99"), "{why}");
        let md = knee_markdown(std::slice::from_ref(k), 5.0);
        assert!(md.contains("Knee per setting"), "{md}");
        assert!(
            md.contains("At p99 <= 5 ms this machine takes 2000 msgs/s with `flushDiskType=A`"),
            "{md}"
        );
    }

    #[test]
    fn short_of_the_offered_rate_or_unsent_is_not_a_knee() {
        // Meets the p99 limit but acked only 90 % of the offered rate.
        let short = vec![
            pt(0, "A", 1000.0, 1000.0, 1.0),
            pt(1, "A", 2000.0, 1800.0, 1.0),
        ];
        let k = &knees(&short, 5.0)[0];
        assert_eq!(k.rate, Some(1000.0));
        assert!(k.first_miss.as_ref().unwrap().1.contains("acked"));
        let mut unsent = pt(1, "A", 2000.0, 2000.0, 1.0);
        unsent.unsent = 3;
        let k = &knees(&[pt(0, "A", 1000.0, 1000.0, 1.0), unsent], 5.0)[0];
        assert_eq!(k.rate, Some(1000.0));
        assert!(k.first_miss.as_ref().unwrap().1.contains("never sent"));
    }

    #[test]
    fn no_point_under_the_limit_reports_no_knee() {
        let sums = curve(0, "A", &[(1000.0, 6.0), (2000.0, 7.0)]);
        let ks = knees(&sums, 5.0);
        assert_eq!(ks[0].rate, None);
        assert_eq!(best_knee(&ks), None);
        assert!(knee_sentence(&ks, 5.0).contains("no knee"));
        assert!(knee_markdown(&ks, 5.0).contains("| none |"));
    }

    #[test]
    fn the_best_knee_is_the_highest_setting() {
        let mut sums = curve(0, "ASYNC_FLUSH", &[(1000.0, 1.0), (2000.0, 1.0)]);
        sums.extend(curve(2, "SYNC_FLUSH", &[(1000.0, 1.0), (2000.0, 9.0)]));
        let ks = knees(&sums, 5.0);
        assert_eq!(ks[1].rate, Some(1000.0));
        let best = best_knee(&ks).unwrap();
        assert_eq!(best.setting, "flushDiskType=ASYNC_FLUSH");
        // Its highest rate met the limit: the sentence says it may take more.
        assert!(knee_sentence(&ks, 5.0).contains("may take more"));
    }

    #[test]
    fn the_plot_has_one_series_per_setting_and_marks_the_knee() {
        let mut sums = curve(
            0,
            "ASYNC_FLUSH",
            &[(1000.0, 1.0), (2000.0, 2.0), (4000.0, 9.0)],
        );
        sums.extend(curve(
            3,
            "SYNC_FLUSH",
            &[(1000.0, 3.0), (2000.0, 8.0), (4000.0, 20.0)],
        ));
        let ks = knees(&sums, 5.0);
        let curves = rate_curves(&sums, &ks, false);
        assert_eq!(curves.len(), 2);
        assert_eq!(curves[0].knee, Some((2000.0, 2.0)));
        assert_eq!(curves[1].knee, Some((1000.0, 3.0)));
        // No consumers: no send -> consume lines.
        assert!(rate_curves(&sums, &ks, true).is_empty());
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join(CURVE_PLOT);
        plot_latency_vs_rate(&p, "send -> ack vs offered rate", &curves, &[], Some(5.0)).unwrap();
        let svg = std::fs::read_to_string(&p).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("</svg>"));
        assert_eq!(svg.matches("flushDiskType=ASYNC_FLUSH").count(), 1, "{svg}");
        assert_eq!(svg.matches("flushDiskType=SYNC_FLUSH").count(), 1, "{svg}");
        assert!(svg.contains("knee 2000/s") && svg.contains("knee 1000/s"));
        assert!(svg.contains("p99 limit 5 ms"));
        assert!(svg.contains("latency (ms, log)") && svg.contains("offered rate (msgs/s)"));
    }

    #[test]
    fn the_ceiling_is_a_labelled_line_and_marks_where_the_client_fell_behind() {
        let c = |setting: &str, rate: f64, p99_ms: f64, late: bool| CeilingPoint {
            setting: setting.into(),
            rate,
            runs: 1,
            p50_ms: p99_ms / 2.0,
            p99_ms,
            p999_ms: p99_ms * 2.0,
            acked_msgs_per_sec: rate,
            sends: 100,
            late_sends: 0,
            unsent: 0,
            errors: 0,
            client_limited: late.then(|| "late".to_string()),
        };
        let kept_up = [c("", 2000.0, 0.3, false), c("", 1000.0, 0.2, false)];
        let lines = ceiling_lines(&kept_up);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].name, CEILING_LABEL);
        assert_eq!(
            lines[0].points.iter().map(|p| p.0).collect::<Vec<_>>(),
            vec![1000.0, 2000.0]
        );
        let sums = curve(0, "A", &[(1000.0, 1.0), (2000.0, 2.0)]);
        let curves = rate_curves(&sums, &knees(&sums, 5.0), false);
        let tmp = tempfile::tempdir().unwrap();
        let draw = |name: &str, ceiling: &[CeilingPoint]| -> String {
            let p = tmp.path().join(name);
            plot_latency_vs_rate(&p, "x", &curves, &ceiling_lines(ceiling), Some(5.0)).unwrap();
            std::fs::read_to_string(&p).unwrap()
        };
        let svg = draw("kept-up.svg", &kept_up);
        assert_eq!(svg.matches(CEILING_LABEL).count(), 1, "{svg}");
        assert!(!svg.contains("client-limited"), "{svg}");
        // A late rate is marked, with one legend entry; swept client keys
        // make one ceiling line each.
        let svg = draw(
            "late.svg",
            &[
                c("producers=1", 1000.0, 0.2, false),
                c("producers=1", 2000.0, 3.0, true),
                c("producers=2", 2000.0, 4.0, true),
            ],
        );
        assert_eq!(svg.matches("client-limited").count(), 1, "{svg}");
        assert!(
            svg.contains("harness ceiling (null broker) producers=1"),
            "{svg}"
        );
        assert!(
            svg.contains("harness ceiling (null broker) producers=2"),
            "{svg}"
        );
    }
}
