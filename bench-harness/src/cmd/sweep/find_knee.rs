//! `sweep --find-knee START`: instead of a fixed `rate` list, search each
//! setting's knee. Starting at START msgs/s, the offered rate doubles while
//! the setting takes it (see [`crate::sweep::knee::miss_reason`]); after the
//! first miss, a bounded number of bisection steps (`--knee-steps`) narrows
//! the gap between the last rate taken and the first missed. Every measured
//! rate becomes a point of the sweep (all its passes back to back), so the
//! report, curve and knee table are those of a fixed-list sweep over the
//! rates the search tried.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::error::{BenchError, Result};
use crate::sweep::knee::{miss_reason, RATE_KEY};
use crate::sweep::{points, run_sweep_points, summarize, Point, SweepArgs, SweepOutcome};

/// Swept keys with their values, as `--param` gives them.
pub type Params = Vec<(String, Vec<String>)>;

/// Doublings the search makes at most from its start rate (2^16 x START).
pub const MAX_DOUBLINGS: usize = 16;

/// Search the knee: `takes(rate)` measures a rate and says whether the
/// setting took it (`None`: the sweep was stopped). Doubles from `start`
/// until a miss (at most [`MAX_DOUBLINGS`] times), then bisects `steps`
/// times between the last rate taken (0 when the start missed) and the
/// first missed, on whole msgs/s. Returns the rates tried, in order.
///
/// # Errors
///
/// Whatever `takes` returns.
pub fn search(
    start: f64,
    steps: usize,
    mut takes: impl FnMut(f64) -> Result<Option<bool>>,
) -> Result<Vec<f64>> {
    let mut tried = Vec::new();
    let mut taken = 0.0f64;
    let mut missed = None;
    let mut rate = start.round().max(1.0);
    for _ in 0..=MAX_DOUBLINGS {
        tried.push(rate);
        match takes(rate)? {
            None => return Ok(tried),
            Some(true) => {
                taken = rate;
                rate *= 2.0;
            }
            Some(false) => {
                missed = Some(rate);
                break;
            }
        }
    }
    let Some(mut hi) = missed else {
        return Ok(tried);
    };
    for _ in 0..steps {
        let mid = ((taken + hi) / 2.0).round();
        if mid <= taken || mid >= hi {
            break;
        }
        tried.push(mid);
        match takes(mid)? {
            None => break,
            Some(true) => taken = mid,
            Some(false) => hi = mid,
        }
    }
    Ok(tried)
}

/// Run the knee search for every setting of `args.params` (which must not
/// hold `rate`) and return the `--param` list the report should show
/// (the settings' keys, then `rate` with every rate tried, ascending) with
/// the outcome of all the rates measured.
///
/// # Errors
///
/// When `rate` is among the `--param` keys, or a run cannot start.
pub fn run_find_knee(
    args: &SweepArgs,
    start: f64,
    limit_ms: f64,
    stop: &Arc<AtomicBool>,
) -> Result<(Params, SweepOutcome)> {
    if args.params.iter().any(|(k, _)| k == RATE_KEY) {
        return Err(BenchError::new(
            "--find-knee picks the rates itself: leave `rate` out of --param",
        ));
    }
    let mut all = SweepOutcome {
        points: Vec::new(),
        runs: Vec::new(),
        planned_runs: 0,
        interrupted: false,
        properties: Vec::new(),
        ceiling: Vec::new(),
    };
    for setting in points(&args.params) {
        search(start, args.knee_steps, |rate| {
            if stop.load(Ordering::Relaxed) {
                return Ok(None);
            }
            let one = measure_rate(args, &setting, rate, stop)?;
            let took = summarize(&one.points, &one.runs)
                .first()
                .is_some_and(|s| miss_reason(rate, s, limit_ms).is_none());
            let interrupted = one.interrupted;
            merge(&mut all, one);
            Ok((!interrupted).then_some(took))
        })?;
        if all.interrupted {
            break;
        }
    }
    let mut rates: Vec<f64> = all
        .points
        .iter()
        .filter_map(|p| p.get(RATE_KEY)?.parse().ok())
        .collect();
    rates.sort_by(f64::total_cmp);
    rates.dedup();
    let mut params = args.params.clone();
    params.push((
        RATE_KEY.to_string(),
        rates.iter().map(|r| format!("{r}")).collect(),
    ));
    Ok((params, all))
}

/// Run the sweep: the knee search with `--find-knee`, else the fixed points.
/// With the search, also returns `args` with the `--param` list of the
/// rates tried, for the report.
///
/// # Errors
///
/// As [`run_find_knee`] and [`run_sweep_points`].
pub fn search_or_sweep(args: &SweepArgs) -> Result<(Option<SweepArgs>, SweepOutcome)> {
    let Some(start) = args.find_knee else {
        return Ok((None, run_sweep_points(args, None)?));
    };
    let rt = crate::broker::client_runtime(1)?;
    let limit = args.p99_limit_ms.unwrap_or(args.p99_bound_ms);
    let (params, outcome) = run_find_knee(args, start, limit, &crate::broker::ctrl_c_flag(&rt))?;
    let mut searched = args.clone();
    searched.params = params;
    Ok((Some(searched), outcome))
}

/// Measure one setting at one rate: a one-point sweep (all passes).
fn measure_rate(
    args: &SweepArgs,
    setting: &Point,
    rate: f64,
    stop: &Arc<AtomicBool>,
) -> Result<SweepOutcome> {
    let mut one = args.clone();
    one.params = setting
        .values
        .iter()
        .map(|(k, v)| (k.clone(), vec![v.clone()]))
        .chain(std::iter::once((
            RATE_KEY.to_string(),
            vec![format!("{rate}")],
        )))
        .collect();
    run_sweep_points(&one, Some(Arc::clone(stop)))
}

/// Append a one-point outcome to `all`, renumbering its point and runs.
fn merge(all: &mut SweepOutcome, one: SweepOutcome) {
    let base = all.points.len();
    let order = all.planned_runs;
    for mut p in one.points {
        p.index += base;
        all.points.push(p);
    }
    for mut r in one.runs {
        r.point += base;
        r.order += order;
        all.runs.push(r);
    }
    all.properties.extend(one.properties);
    all.ceiling.extend(one.ceiling);
    all.planned_runs += one.planned_runs;
    all.interrupted |= one.interrupted;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The search against a setting that takes every rate up to `knee`.
    fn tried(start: f64, steps: usize, knee: f64) -> Vec<f64> {
        search(start, steps, |r| Ok(Some(r <= knee))).unwrap()
    }

    #[test]
    fn the_search_doubles_then_bisects_and_stops_at_the_limit() {
        // 1000 2000 4000 8000 taken, 16000 missed; then 12000 (miss), 10000
        // (taken), 11000 (miss): the gap is 1000 after 3 steps.
        assert_eq!(
            tried(1000.0, 3, 10_500.0),
            vec![1000.0, 2000.0, 4000.0, 8000.0, 16000.0, 12000.0, 10000.0, 11000.0]
        );
        // Never past the first miss by more than the doubling.
        let t = tried(1000.0, 0, 3000.0);
        assert_eq!(t, vec![1000.0, 2000.0, 4000.0]);
        assert!(t.iter().filter(|r| **r > 3000.0).count() == 1);
    }

    #[test]
    fn a_start_that_misses_bisects_below_it_and_a_stop_ends_it() {
        assert_eq!(tried(1000.0, 2, 100.0), vec![1000.0, 500.0, 250.0]);
        let mut n = 0;
        let t = search(1000.0, 3, |_| {
            n += 1;
            Ok((n < 3).then_some(true))
        })
        .unwrap();
        assert_eq!(t, vec![1000.0, 2000.0, 4000.0]);
        // A setting that takes everything stops after MAX_DOUBLINGS.
        assert_eq!(tried(1.0, 3, f64::INFINITY).len(), MAX_DOUBLINGS + 1);
    }

    #[test]
    fn merged_points_are_renumbered() {
        let one = |rate: &str| SweepOutcome {
            points: vec![Point {
                index: 0,
                values: vec![("rate".into(), rate.into())],
            }],
            runs: Vec::new(),
            planned_runs: 2,
            interrupted: false,
            properties: vec![String::new()],
            ceiling: Vec::new(),
        };
        let mut all = one("1000");
        all.points.clear();
        all.properties.clear();
        all.planned_runs = 0;
        merge(&mut all, one("1000"));
        merge(&mut all, one("2000"));
        assert_eq!(all.points[1].index, 1);
        assert_eq!(all.points[1].get("rate"), Some("2000"));
        assert_eq!(all.planned_runs, 4);
        assert_eq!(all.properties.len(), 2);
    }
}
