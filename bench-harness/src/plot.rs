//! The SVG plots of the reports (plotters, SVG backend): metric against a
//! swept key, latency percentile curves, throughput over time, and the B/A
//! ratios of a comparison.
//!
//! Every plot is an 800x480 SVG with a caption, a legend and axis labels that
//! carry no spurious decimals ([`linear_tick`], [`log_tick`]); the axes the
//! labels call "log" are log axes, and points are named by their settings.

use std::path::Path;

use hdrhistogram::Histogram;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::compare::{ComparePoint, Ratio};
use crate::error::{BenchError, Result};
use crate::sweep::PointSummary;

/// Height of every plot, and the width unless a plot needs more.
const SIZE: (u32, u32) = (800, 480);

fn draw_err<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> BenchError + '_ {
    move |e| BenchError::new(format!("plotting {what}: {e}"))
}

/// A tick label on a linear axis spanning `span`: as many decimals as a tenth
/// of the span needs (none for msgs/s or seconds), trailing zeros dropped.
pub fn linear_tick(v: f64, span: f64) -> String {
    let step = (span.abs() / 10.0).max(f64::MIN_POSITIVE);
    let decimals = (-step.log10().floor()).clamp(0.0, 6.0) as usize;
    trim_zeros(format!("{v:.decimals$}"))
}

/// A tick label on a log axis: whole numbers from 10 up, two significant
/// digits below (`0.5`, `2`, `1.5`), trailing zeros dropped.
pub fn log_tick(v: f64) -> String {
    if v.abs() >= 10.0 {
        return format!("{v:.0}");
    }
    let decimals = if v == 0.0 {
        0
    } else {
        (1.0 - v.abs().log10().floor()).clamp(0.0, 6.0) as usize
    };
    trim_zeros(format!("{v:.decimals$}"))
}

fn trim_zeros(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// The label of a category axis at `x`: `labels[i]` at the integer `i`, empty between.
fn category_tick(labels: &[String], x: f64) -> String {
    let i = x.round();
    if (x - i).abs() < 0.01 && i >= 0.0 {
        labels.get(i as usize).cloned().unwrap_or_default()
    } else {
        String::new()
    }
}

/// A white SVG canvas of `width` x 480 at `path`.
fn canvas<'a>(
    path: &'a Path,
    width: u32,
    what: &str,
) -> Result<DrawingArea<SVGBackend<'a>, Shift>> {
    let root = SVGBackend::new(path, (width, SIZE.1)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_err(what))?;
    Ok(root)
}

/// The chart frame every plot shares: caption, margins, label areas.
fn frame<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
    caption: &str,
    y_label_area: u32,
) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut b = ChartBuilder::on(root);
    b.caption(caption, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(y_label_area);
    b
}

/// The legend mark of a line series.
fn line_mark(color: RGBAColor) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
}

/// Draw the legend at `pos` and write the file.
fn finish<'a, CT: CoordTranslate>(
    mut chart: ChartContext<'a, SVGBackend<'a>, CT>,
    root: &DrawingArea<SVGBackend<'a>, Shift>,
    pos: SeriesLabelPosition,
    what: &str,
) -> Result<()> {
    chart
        .configure_series_labels()
        .position(pos)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(draw_err(what))?;
    root.present().map_err(draw_err(what))?;
    Ok(())
}

/// Series of a swept key: for each combination of the other keys, the
/// summaries ordered by that key's value index.
pub(crate) fn series_for<'a>(
    params: &[(String, Vec<String>)],
    key: usize,
    sums: &'a [PointSummary],
) -> Vec<(String, Vec<(usize, &'a PointSummary)>)> {
    let mut out: Vec<(String, Vec<(usize, &PointSummary)>)> = Vec::new();
    for s in sums {
        let others: Vec<String> = s
            .point
            .values
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != key)
            .map(|(_, (k, v))| format!("{k}={v}"))
            .collect();
        let name = if others.is_empty() {
            "all".to_string()
        } else {
            others.join(" ")
        };
        let x = params[key]
            .1
            .iter()
            .position(|v| Some(v.as_str()) == s.point.values.get(key).map(|(_, v)| v.as_str()))
            .unwrap_or(0);
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => v.push((x, s)),
            None => out.push((name, vec![(x, s)])),
        }
    }
    for (_, v) in &mut out {
        v.sort_by_key(|(x, _)| *x);
    }
    out
}

/// A line plot of a metric against one swept key, one line per combination
/// of the other keys, with the min-max range of the passes as a bar.
pub(crate) fn plot_vs_key(
    path: &Path,
    params: &[(String, Vec<String>)],
    key: usize,
    sums: &[PointSummary],
    metric: &str,
    value: &dyn Fn(&PointSummary) -> (f64, f64, f64),
) -> Result<()> {
    let what = path.display().to_string();
    let values = &params[key].1;
    let n = values.len();
    let series = series_for(params, key, sums);
    let ymax = sums
        .iter()
        .map(|s| value(s).2)
        .fold(0.0f64, f64::max)
        .max(1e-9)
        * 1.15;
    let root = canvas(path, SIZE.0, &what)?;
    let mut chart = frame(&root, &format!("{metric} vs {}", params[key].0), 80)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..ymax)
        .map_err(draw_err(&what))?;
    chart
        .configure_mesh()
        .x_labels(n + 2)
        .x_label_formatter(&|x: &f64| category_tick(values, *x))
        .y_labels(10)
        .y_label_formatter(&|y: &f64| linear_tick(*y, ymax))
        .x_desc(params[key].0.as_str())
        .y_desc(metric)
        .draw()
        .map_err(draw_err(&what))?;
    for (i, (name, pts)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let line: Vec<(f64, f64)> = pts.iter().map(|(x, s)| (*x as f64, value(s).0)).collect();
        chart
            .draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))
            .map_err(draw_err(&what))?
            .label(name.clone())
            .legend(line_mark(color));
        chart
            .draw_series(
                line.iter()
                    .map(|&(x, y)| Circle::new((x, y), 4, color.filled())),
            )
            .map_err(draw_err(&what))?;
        chart
            .draw_series(pts.iter().map(|(x, s)| {
                let (_, lo, hi) = value(s);
                PathElement::new(
                    vec![(*x as f64, lo), (*x as f64, hi)],
                    color.stroke_width(1),
                )
            }))
            .map_err(draw_err(&what))?;
    }
    finish(chart, &root, SeriesLabelPosition::MiddleRight, &what)
}

/// Quantiles of the latency curve, and their x position in "nines".
const CURVE_QUANTILES: &[f64] = &[
    0.0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999,
];

fn nines(q: f64) -> f64 {
    -(1.0 - q).max(1e-6).log10()
}

/// The percentile axis' label at `x` (in nines; 4.5 is the max).
fn nines_tick(x: f64) -> String {
    match (x * 2.0).round() as i64 {
        0 => "0%".into(),
        2 => "90%".into(),
        4 => "99%".into(),
        6 => "99.9%".into(),
        8 => "99.99%".into(),
        9 => "max".into(),
        _ => String::new(),
    }
}

/// Latency percentile curves titled `caption`, one line per point (all
/// passes merged), µs on a log axis.
pub(crate) fn plot_latency_curves(
    path: &Path,
    caption: &str,
    hists: &[(String, Histogram<u64>)],
) -> Result<()> {
    let what = path.display().to_string();
    let mut ymin = f64::INFINITY;
    let mut ymax = 0.0f64;
    let curves: Vec<(String, Vec<(f64, f64)>)> = hists
        .iter()
        .filter(|(_, h)| !h.is_empty())
        .map(|(n, h)| {
            let pts: Vec<(f64, f64)> = CURVE_QUANTILES
                .iter()
                .map(|&q| (nines(q), (h.value_at_quantile(q) as f64 / 1000.0).max(0.1)))
                .chain(std::iter::once((4.5, (h.max() as f64 / 1000.0).max(0.1))))
                .collect();
            for &(_, y) in &pts {
                ymin = ymin.min(y);
                ymax = ymax.max(y);
            }
            (n.clone(), pts)
        })
        .collect();
    if curves.is_empty() {
        return Ok(());
    }
    let root = canvas(path, SIZE.0, &what)?;
    let mut chart = frame(&root, caption, 80)
        .build_cartesian_2d(0f64..4.6f64, ((ymin / 1.5)..(ymax * 1.5)).log_scale())
        .map_err(draw_err(&what))?;
    chart
        .configure_mesh()
        .x_labels(10)
        .x_label_formatter(&|x: &f64| nines_tick(*x))
        .y_label_formatter(&|y: &f64| log_tick(*y))
        .x_desc("percentile")
        .y_desc("latency (µs, log)")
        .draw()
        .map_err(draw_err(&what))?;
    for (i, (name, pts)) in curves.into_iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(draw_err(&what))?
            .label(name)
            .legend(line_mark(color));
    }
    finish(chart, &root, SeriesLabelPosition::UpperLeft, &what)
}

/// Throughput over time of each point's first completed pass.
pub(crate) fn plot_over_time(path: &Path, series: &[(String, Vec<u64>)]) -> Result<()> {
    plot_over_time_marked(
        path,
        "throughput over time (first pass, 100 ms buckets)",
        series,
        &[],
    )
}

/// Throughput over time (100 ms buckets) under `caption`, with a thin grey
/// vertical line at each second of `marks` (`failover`: the kills).
pub(crate) fn plot_over_time_marked(
    path: &Path,
    caption: &str,
    series: &[(String, Vec<u64>)],
    marks: &[f64],
) -> Result<()> {
    let what = path.display().to_string();
    let xmax = series.iter().map(|(_, v)| v.len()).max().unwrap_or(0) as f64 / 10.0;
    let ymax = series
        .iter()
        .flat_map(|(_, v)| v.iter().map(|n| *n as f64 * 10.0))
        .fold(0.0f64, f64::max);
    if xmax <= 0.0 || ymax <= 0.0 {
        return Ok(());
    }
    let root = canvas(path, SIZE.0, &what)?;
    let mut chart = frame(&root, caption, 80)
        .build_cartesian_2d(0f64..xmax, 0f64..ymax * 1.15)
        .map_err(draw_err(&what))?;
    chart
        .configure_mesh()
        .x_labels(10)
        .x_label_formatter(&|x: &f64| linear_tick(*x, xmax))
        .y_labels(10)
        .y_label_formatter(&|y: &f64| linear_tick(*y, ymax * 1.15))
        .x_desc("seconds")
        .y_desc("msgs/s")
        .draw()
        .map_err(draw_err(&what))?;
    for (i, (name, v)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let pts: Vec<(f64, f64)> = v
            .iter()
            .enumerate()
            .map(|(t, n)| (t as f64 / 10.0, *n as f64 * 10.0))
            .collect();
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(1)))
            .map_err(draw_err(&what))?
            .label(name.clone())
            .legend(line_mark(color));
    }
    for (i, m) in marks.iter().enumerate() {
        let line = chart
            .draw_series(LineSeries::new(
                vec![(*m, 0.0), (*m, ymax * 1.15)],
                BLACK.mix(0.45).stroke_width(1),
            ))
            .map_err(draw_err(&what))?;
        if i == 0 {
            line.label("SIGKILL of the master")
                .legend(line_mark(BLACK.mix(0.45)));
        }
    }
    finish(chart, &root, SeriesLabelPosition::LowerRight, &what)
}

/// One setting's line on the latency-throughput plot.
#[derive(Debug, Clone)]
pub(crate) struct RateCurve {
    /// The setting (legend).
    pub name: String,
    /// `(offered msgs/s, [p50, p99, p99.9] ms)`, ascending rate.
    pub points: Vec<(f64, [f64; 3])>,
    /// `(offered msgs/s, p99 ms)` of the knee, if the setting has one.
    pub knee: Option<(f64, f64)>,
}

/// The harness ceiling's line on the latency-throughput plot (the null
/// broker at each offered rate).
#[derive(Debug, Clone)]
pub(crate) struct CeilingLine {
    /// Legend label.
    pub name: String,
    /// `(offered msgs/s, [p50, p99] ms, the null broker fell behind)`,
    /// ascending rate.
    pub points: Vec<(f64, [f64; 2], bool)>,
}

/// Latency against offered rate, one colour per setting: p99 thick with
/// dots, p50 and p99.9 thin below and above it, on a log axis in ms; each
/// knee a black cross labelled with its rate, the p99 limit a grey line;
/// each ceiling line dashed grey (p99 thick, p50 thin), a black
/// triangle at every rate where the null broker fell behind.
pub(crate) fn plot_latency_vs_rate(
    path: &Path,
    caption: &str,
    curves: &[RateCurve],
    ceilings: &[CeilingLine],
    limit_ms: Option<f64>,
) -> Result<()> {
    let what = path.display().to_string();
    let all = || curves.iter().flat_map(|c| c.points.iter());
    let ceil = || ceilings.iter().flat_map(|c| c.points.iter());
    let xmax = all()
        .map(|(x, _)| *x)
        .chain(ceil().map(|(x, _, _)| *x))
        .fold(0.0f64, f64::max)
        * 1.08;
    if xmax <= 0.0 {
        return Ok(());
    }
    let floor = 0.001;
    let ys = || {
        all()
            .flat_map(|(_, y)| y.iter().copied())
            .chain(ceil().flat_map(|(_, y, _)| y.iter().copied()))
            .chain(limit_ms)
    };
    let ymin = ys().map(|y| y.max(floor)).fold(f64::INFINITY, f64::min) / 1.5;
    let ymax = ys().fold(floor, f64::max) * 1.5;
    let root = canvas(path, SIZE.0, &what)?;
    let mut chart = frame(&root, caption, 80)
        .build_cartesian_2d(0f64..xmax, (ymin..ymax).log_scale())
        .map_err(draw_err(&what))?;
    chart
        .configure_mesh()
        .x_labels(10)
        .x_label_formatter(&|x: &f64| linear_tick(*x, xmax))
        .y_label_formatter(&|y: &f64| log_tick(*y))
        .x_desc("offered rate (msgs/s)")
        .y_desc("latency (ms, log)")
        .draw()
        .map_err(draw_err(&what))?;
    if let Some(l) = limit_ms {
        let grey = RGBColor(128, 128, 128).to_rgba();
        chart
            .draw_series(LineSeries::new(
                vec![(0.0, l), (xmax, l)],
                grey.stroke_width(1),
            ))
            .map_err(draw_err(&what))?
            .label(format!("p99 limit {l} ms"))
            .legend(line_mark(grey));
    }
    draw_ceilings(&mut chart, ceilings, floor, &what)?;
    for (i, c) in curves.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let line = |q: usize| -> Vec<(f64, f64)> {
            c.points
                .iter()
                .map(|(x, y)| (*x, y[q].max(floor)))
                .collect()
        };
        for q in [0, 2] {
            chart
                .draw_series(LineSeries::new(line(q), color.stroke_width(1)))
                .map_err(draw_err(&what))?;
        }
        chart
            .draw_series(LineSeries::new(line(1), color.stroke_width(3)))
            .map_err(draw_err(&what))?
            .label(c.name.clone())
            .legend(line_mark(color));
        chart
            .draw_series(
                line(1)
                    .into_iter()
                    .map(|p| Circle::new(p, 4, color.filled())),
            )
            .map_err(draw_err(&what))?;
        if let Some((x, y)) = c.knee {
            let y = y.max(floor);
            chart
                .draw_series([Cross::new((x, y), 9, BLACK.stroke_width(3))])
                .map_err(draw_err(&what))?;
            chart
                .draw_series([Text::new(
                    format!("knee {x:.0}/s"),
                    (x, y * 1.25),
                    ("sans-serif", 14).into_font().color(&BLACK),
                )])
                .map_err(draw_err(&what))?;
        }
    }
    finish(chart, &root, SeriesLabelPosition::UpperLeft, &what)
}

/// The ceiling lines of [`plot_latency_vs_rate`]: dashed grey, p99 thick
/// (in the legend) and p50 thin; black triangles where the null
/// broker fell behind (one legend entry for all of them).
fn draw_ceilings<DB: DrawingBackend>(
    chart: &mut ChartContext<
        '_,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, LogCoord<f64>>,
    >,
    ceilings: &[CeilingLine],
    floor: f64,
    what: &str,
) -> Result<()> {
    let grey = RGBColor(110, 110, 110).to_rgba();
    let mark = BLACK.filled();
    let mut late_labelled = false;
    for (i, c) in ceilings.iter().enumerate() {
        // One line per swept client setting: longer dashes for each next one.
        let dash = 8 + 6 * i.min(4) as u32;
        let line = |q: usize| -> Vec<(f64, f64)> {
            c.points
                .iter()
                .map(|(x, y, _)| (*x, y[q].max(floor)))
                .collect()
        };
        chart
            .draw_series(DashedLineSeries::new(line(0), 4, 4, grey.stroke_width(1)))
            .map_err(draw_err(what))?;
        chart
            .draw_series(DashedLineSeries::new(
                line(1),
                dash,
                5,
                grey.stroke_width(3),
            ))
            .map_err(draw_err(what))?
            .label(c.name.clone())
            .legend(move |(x, y)| {
                plotters::element::DashedPathElement::new(
                    vec![(x, y), (x + 20, y)],
                    dash / 2,
                    3,
                    grey.stroke_width(3),
                )
            });
        chart
            .draw_series(
                line(1)
                    .into_iter()
                    .map(|p| Circle::new(p, 3, grey.filled())),
            )
            .map_err(draw_err(what))?;
        let late: Vec<(f64, f64)> = c
            .points
            .iter()
            .filter(|(_, _, late)| *late)
            .map(|(x, y, _)| (*x, y[1].max(floor)))
            .collect();
        if late.is_empty() {
            continue;
        }
        let drawn = chart
            .draw_series(late.into_iter().map(|p| TriangleMarker::new(p, 9, mark)))
            .map_err(draw_err(what))?;
        if !late_labelled {
            late_labelled = true;
            drawn
                .label("null broker fell behind: client-limited")
                .legend(move |(x, y)| TriangleMarker::new((x + 10, y), 7, mark));
        }
    }
    Ok(())
}

/// The ratios of a comparison plot: `(legend, which ratio, x offset)`.
type RatioSeries = (&'static str, fn(&ComparePoint) -> Option<Ratio>, f64);

/// The three ratios drawn per point, side by side.
const RATIO_SERIES: [RatioSeries; 3] = [
    ("msgs/s", |p| p.throughput_ratio, -0.15),
    ("send->ack p99", |p| p.p99_ratio, 0.0),
    ("send->consume p99", |p| p.e2e_p99_ratio, 0.15),
];

/// The log axis' range of the ratio plot: every min, median and max with
/// room around them, 1 always inside; 0 ratios are left out (drawn at the bottom).
fn ratio_range(pts: &[ComparePoint]) -> (f64, f64) {
    let all = || {
        pts.iter()
            .flat_map(|p| [p.throughput_ratio, p.p99_ratio, p.e2e_p99_ratio])
            .flatten()
    };
    let ymax = all().map(|r| r.max).fold(1.0f64, f64::max) * 1.5;
    // Log scale: 0.5 and 2 sit as far from 1; a ratio of 0 (a side measured
    // nothing in some pass) is drawn at the bottom.
    let ymin = all()
        .flat_map(|r| [r.min, r.median])
        .filter(|v| *v > 0.0)
        .fold(1.0f64, f64::min)
        / 1.5;
    (ymin.max(1e-4), ymax)
}

/// Draw B/A of msgs/s and of p99 per point, on a log axis; each point is
/// labelled by its settings (`labels[i]`, e.g. `producers=16 inflight=4`).
pub(crate) fn plot_ratios(path: &Path, pts: &[ComparePoint], labels: &[String]) -> Result<()> {
    let what = path.display().to_string();
    let n = pts.len().max(1);
    let (ymin, ymax) = ratio_range(pts);
    let clamp = |v: f64| v.max(ymin);
    let width = SIZE.0.max(140 * n as u32);
    let root = canvas(path, width, &what)?;
    let mut chart = frame(&root, "B / A per point (log scale)", 60)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), (ymin..ymax).log_scale())
        .map_err(draw_err(&what))?;
    chart
        .configure_mesh()
        .x_labels(n + 2)
        .x_label_formatter(&|x: &f64| category_tick(labels, *x))
        .y_label_formatter(&|y: &f64| log_tick(*y))
        .x_desc("point (settings as in the table)")
        .y_desc("B / A (log scale)")
        .draw()
        .map_err(draw_err(&what))?;
    chart
        .draw_series(LineSeries::new(
            vec![(-0.5, 1.0), (n as f64 - 0.5, 1.0)],
            BLACK.stroke_width(1),
        ))
        .map_err(draw_err(&what))?;
    for (i, (name, get, dx)) in RATIO_SERIES.into_iter().enumerate() {
        let vals: Vec<(f64, Ratio)> = pts
            .iter()
            .enumerate()
            .filter_map(|(x, p)| get(p).map(|r| (x as f64 + dx, r)))
            .collect();
        if vals.is_empty() {
            continue;
        }
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(
                vals.iter()
                    .map(|&(x, r)| Circle::new((x, clamp(r.median)), 5, color.filled())),
            )
            .map_err(draw_err(&what))?
            .label(name)
            .legend(move |(x, y)| Circle::new((x + 10, y), 5, color.filled()));
        chart
            .draw_series(vals.iter().map(|&(x, r)| {
                PathElement::new(
                    vec![(x, clamp(r.min)), (x, clamp(r.max))],
                    color.stroke_width(2),
                )
            }))
            .map_err(draw_err(&what))?;
    }
    finish(chart, &root, SeriesLabelPosition::MiddleRight, &what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_ticks_carry_only_the_decimals_the_span_needs() {
        assert_eq!(linear_tick(40000.0, 120000.0), "40000");
        assert_eq!(linear_tick(2.0, 10.0), "2");
        assert_eq!(linear_tick(0.5, 3.0), "0.5");
        assert_eq!(linear_tick(0.25, 0.9), "0.25");
        assert_eq!(linear_tick(1.0, 3.0), "1");
    }

    #[test]
    fn log_ticks_are_short() {
        assert_eq!(log_tick(1000.0), "1000");
        assert_eq!(log_tick(10.0), "10");
        assert_eq!(log_tick(2.0), "2");
        assert_eq!(log_tick(0.5), "0.5");
        assert_eq!(log_tick(1.5), "1.5");
        assert_eq!(log_tick(0.1), "0.1");
    }

    #[test]
    fn categories_label_only_whole_positions() {
        let l = vec!["producers=16 inflight=4".to_string(), "b".to_string()];
        assert_eq!(category_tick(&l, 0.0), "producers=16 inflight=4");
        assert_eq!(category_tick(&l, 0.5), "");
        assert_eq!(category_tick(&l, 1.0), "b");
        assert_eq!(category_tick(&l, 2.0), "");
    }
}
