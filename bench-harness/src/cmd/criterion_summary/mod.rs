//! `ferromq-bench criterion-summary`: gather the results `cargo bench` left
//! in `target/criterion/**/new/{estimates,benchmark}.json` into one markdown
//! table (mean with its 95 % confidence interval, median, throughput), so a
//! report folder can hold micro and load figures side by side.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::error::{BenchError, Result};

/// Flags of `ferromq-bench criterion-summary`.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct CriterionArgs {
    /// Criterion's output folder.
    #[arg(long, default_value = "target/criterion")]
    pub dir: PathBuf,
    /// Write the table to this file instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// One benchmark's estimates.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CriterionRow {
    /// `group/function/parameter`.
    pub id: String,
    /// Mean time per iteration, ns.
    pub mean_ns: f64,
    /// 95 % confidence interval of the mean, ns.
    pub mean_ci_ns: (f64, f64),
    /// Median, ns.
    pub median_ns: f64,
    /// Throughput per iteration, as criterion records it (`Bytes` or `Elements`).
    pub throughput: Option<(String, f64)>,
}

/// Deepest folder nesting searched.
pub const MAX_DEPTH: usize = 6;

fn find(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    if depth > MAX_DEPTH {
        return;
    }
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if !p.is_dir() {
            continue;
        }
        if p.file_name().is_some_and(|n| n == "new") {
            if p.join("estimates.json").is_file() {
                out.push(p);
            }
        } else if p
            .file_name()
            .is_some_and(|n| n != "report" && n != "base" && n != "change")
        {
            find(&p, depth + 1, out);
        }
    }
}

fn read_json(p: &Path) -> Option<serde_json::Value> {
    serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok()
}

/// Read every benchmark under `dir`, sorted by id.
pub fn collect(dir: &Path) -> Vec<CriterionRow> {
    let mut news = Vec::new();
    find(dir, 0, &mut news);
    let mut rows: Vec<CriterionRow> = news
        .iter()
        .filter_map(|new| {
            let est = read_json(&new.join("estimates.json"))?;
            let meta = read_json(&new.join("benchmark.json"));
            let id = meta
                .as_ref()
                .and_then(|m| m["full_id"].as_str().map(str::to_string))
                .or_else(|| {
                    new.parent()?
                        .strip_prefix(dir)
                        .ok()
                        .map(|p| p.display().to_string())
                })?;
            let throughput = meta.as_ref().and_then(|m| {
                let t = m["throughput"].as_object()?;
                let (k, v) = t.iter().next()?;
                Some((k.clone(), v.as_f64()?))
            });
            Some(CriterionRow {
                id,
                mean_ns: est["mean"]["point_estimate"].as_f64()?,
                mean_ci_ns: (
                    est["mean"]["confidence_interval"]["lower_bound"].as_f64()?,
                    est["mean"]["confidence_interval"]["upper_bound"].as_f64()?,
                ),
                median_ns: est["median"]["point_estimate"].as_f64()?,
                throughput,
            })
        })
        .collect();
    rows.sort_by(|a, b| a.id.cmp(&b.id));
    rows
}

fn time(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.3} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.3} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.3} µs", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}

/// The markdown table of `rows`.
pub fn markdown(rows: &[CriterionRow]) -> String {
    let mut s = String::from("## Criterion micro-benchmarks\n\n");
    if rows.is_empty() {
        s.push_str("No criterion results found (run `cargo bench` first).\n");
        return s;
    }
    s.push_str("| benchmark | mean | 95 % CI | median | throughput |\n|---|---:|---:|---:|---:|\n");
    for r in rows {
        let tp = match &r.throughput {
            Some((k, v)) if r.mean_ns > 0.0 => {
                let per_s = v / (r.mean_ns / 1e9);
                if k.starts_with("Bytes") || k.starts_with("BytesDecimal") {
                    format!("{:.1} MB/s", per_s / 1e6)
                } else {
                    format!("{:.0} elem/s", per_s)
                }
            }
            _ => String::new(),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} - {} | {} | {} |",
            r.id,
            time(r.mean_ns),
            time(r.mean_ci_ns.0),
            time(r.mean_ci_ns.1),
            time(r.median_ns),
            tp
        );
    }
    s
}

/// `ferromq-bench criterion-summary`.
///
/// # Errors
///
/// When the output cannot be written.
pub fn run_criterion_summary(args: &CriterionArgs) -> Result<i32> {
    let md = markdown(&collect(&args.dir));
    match &args.out {
        Some(p) => std::fs::write(p, md).map_err(|e| BenchError::io(p.display(), e))?,
        None => print!("{md}"),
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_nested_estimates_and_throughput() {
        let tmp = tempfile::tempdir().unwrap();
        let new = tmp.path().join("append/1024/new");
        std::fs::create_dir_all(&new).unwrap();
        std::fs::write(
            new.join("estimates.json"),
            r#"{"mean":{"confidence_interval":{"confidence_level":0.95,"lower_bound":900.0,"upper_bound":1100.0},"point_estimate":1000.0,"standard_error":5.0},"median":{"confidence_interval":{"confidence_level":0.95,"lower_bound":1.0,"upper_bound":2.0},"point_estimate":990.0,"standard_error":1.0}}"#,
        )
        .unwrap();
        std::fs::write(
            new.join("benchmark.json"),
            r#"{"group_id":"append","function_id":null,"value_str":"1024","throughput":{"Bytes":1024},"full_id":"append/1024","directory_name":"append/1024"}"#,
        )
        .unwrap();
        std::fs::create_dir_all(tmp.path().join("append/1024/base")).unwrap();
        let rows = collect(tmp.path());
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].id, "append/1024");
        assert_eq!(rows[0].mean_ns, 1000.0);
        let md = markdown(&rows);
        assert!(
            md.contains(
                "| append/1024 | 1.000 µs | 900.0 ns - 1.100 µs | 990.0 ns | 1024.0 MB/s |"
            ),
            "{md}"
        );
        assert!(markdown(&[]).contains("No criterion results"));
    }
}
