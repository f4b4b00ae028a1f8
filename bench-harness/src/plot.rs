//! The SVG plots of the reports (plotters, SVG backend): metric against a
//! swept key, latency percentile curves, throughput over time, and the B/A
//! ratios of a comparison.

use std::path::Path;

use hdrhistogram::Histogram;
use plotters::prelude::*;

use crate::compare::{ComparePoint, Ratio};
use crate::error::{BenchError, Result};
use crate::sweep::PointSummary;

fn draw_err<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> BenchError + '_ {
    move |e| BenchError::new(format!("plotting {what}: {e}"))
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
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_err(&what))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("{metric} vs {}", params[key].0), ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..ymax)
        .map_err(draw_err(&what))?;
    let labels = values.clone();
    chart
        .configure_mesh()
        .x_labels(n + 2)
        .x_label_formatter(&|x: &f64| {
            let i = x.round();
            if (x - i).abs() < 0.01 && i >= 0.0 {
                labels.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
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
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
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
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(draw_err(&what))?;
    root.present().map_err(draw_err(&what))?;
    Ok(())
}

/// Quantiles of the latency curve, and their x position in "nines".
const CURVE_QUANTILES: &[f64] = &[
    0.0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999,
];

fn nines(q: f64) -> f64 {
    -(1.0 - q).max(1e-6).log10()
}

/// Latency percentile curves, one line per point (all passes merged).
pub(crate) fn plot_latency_curves(path: &Path, hists: &[(String, Histogram<u64>)]) -> Result<()> {
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
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_err(&what))?;
    let mut chart = ChartBuilder::on(&root)
        .caption("send -> ack latency by percentile", ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..4.6f64, ((ymin / 1.5)..(ymax * 1.5)).log_scale())
        .map_err(draw_err(&what))?;
    chart
        .configure_mesh()
        .x_labels(10)
        .x_label_formatter(&|x: &f64| match (x * 2.0).round() as i64 {
            0 => "0%".into(),
            2 => "90%".into(),
            4 => "99%".into(),
            6 => "99.9%".into(),
            8 => "99.99%".into(),
            9 => "max".into(),
            _ => String::new(),
        })
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
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(draw_err(&what))?;
    root.present().map_err(draw_err(&what))?;
    Ok(())
}

/// Throughput over time of each point's first completed pass.
pub(crate) fn plot_over_time(path: &Path, series: &[(String, Vec<u64>)]) -> Result<()> {
    let what = path.display().to_string();
    let xmax = series.iter().map(|(_, v)| v.len()).max().unwrap_or(0) as f64 / 10.0;
    let ymax = series
        .iter()
        .flat_map(|(_, v)| v.iter().map(|n| *n as f64 * 10.0))
        .fold(0.0f64, f64::max);
    if xmax <= 0.0 || ymax <= 0.0 {
        return Ok(());
    }
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_err(&what))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "throughput over time (first pass, 100 ms buckets)",
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..xmax, 0f64..ymax * 1.15)
        .map_err(draw_err(&what))?;
    chart
        .configure_mesh()
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
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(draw_err(&what))?;
    root.present().map_err(draw_err(&what))?;
    Ok(())
}

/// Draw B/A of msgs/s and of p99 per point.
pub(crate) fn plot_ratios(path: &Path, pts: &[ComparePoint]) -> Result<()> {
    let what = path.display().to_string();
    let err = |e: &dyn std::fmt::Display| BenchError::new(format!("plotting {what}: {e}"));
    let n = pts.len().max(1);
    let ymax = pts
        .iter()
        .flat_map(|p| [p.throughput_ratio, p.p99_ratio, p.e2e_p99_ratio])
        .flatten()
        .map(|r| r.max)
        .fold(1.0f64, f64::max)
        * 1.5;
    // Log scale: 0.5 and 2 sit as far from 1; a ratio of 0 (a side measured
    // nothing in some pass) is drawn at the bottom.
    let ymin = pts
        .iter()
        .flat_map(|p| [p.throughput_ratio, p.p99_ratio, p.e2e_p99_ratio])
        .flatten()
        .flat_map(|r| [r.min, r.median])
        .filter(|v| *v > 0.0)
        .fold(1.0f64, f64::min)
        / 1.5;
    let ymin = ymin.max(1e-4);
    let clamp = |v: f64| v.max(ymin);
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption("B / A per point", ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), (ymin..ymax).log_scale())
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_labels(n + 2)
        .x_label_formatter(&|x: &f64| {
            let i = x.round();
            if (x - i).abs() < 0.01 && i >= 0.0 && (i as usize) < n {
                format!("point {}", i as usize)
            } else {
                String::new()
            }
        })
        .x_desc("point (see the table)")
        .y_desc("B / A (log scale)")
        .draw()
        .map_err(|e| err(&e))?;
    chart
        .draw_series(LineSeries::new(
            vec![(-0.5, 1.0), (n as f64 - 0.5, 1.0)],
            BLACK.stroke_width(1),
        ))
        .map_err(|e| err(&e))?;
    type Get = fn(&ComparePoint) -> Option<Ratio>;
    let series: [(&str, Get, f64); 3] = [
        ("msgs/s", |p| p.throughput_ratio, -0.15),
        ("send->ack p99", |p| p.p99_ratio, 0.0),
        ("send->consume p99", |p| p.e2e_p99_ratio, 0.15),
    ];
    for (i, (name, get, dx)) in series.into_iter().enumerate() {
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
            .map_err(|e| err(&e))?
            .label(name)
            .legend(move |(x, y)| Circle::new((x + 10, y), 5, color.filled()));
        chart
            .draw_series(vals.iter().map(|&(x, r)| {
                PathElement::new(
                    vec![(x, clamp(r.min)), (x, clamp(r.max))],
                    color.stroke_width(2),
                )
            }))
            .map_err(|e| err(&e))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
