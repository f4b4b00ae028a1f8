//! Measuring one planned run of `store`: the engine on a fresh store (the
//! median of its repeats), then the baselines on the same directory.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::*;

/// The directory runs happen in: the user's, or a temporary one removed on drop.
pub(super) enum WorkDir {
    User(PathBuf),
    Temp(tempfile::TempDir),
}

impl WorkDir {
    pub(super) fn new(dir: Option<&Path>) -> Result<Self> {
        match dir {
            Some(d) => {
                std::fs::create_dir_all(d).map_err(|e| {
                    BenchError::io(format!("cannot create --dir {}", d.display()), e)
                })?;
                let meta = std::fs::metadata(d)
                    .map_err(|e| BenchError::io(format!("cannot read --dir {}", d.display()), e))?;
                if !meta.is_dir() {
                    return Err(BenchError::new(format!(
                        "--dir {} is not a directory",
                        d.display()
                    )));
                }
                Ok(WorkDir::User(d.to_path_buf()))
            }
            None => tempfile::Builder::new()
                .prefix("ferromq-bench-")
                .tempdir()
                .map(WorkDir::Temp)
                .map_err(|e| BenchError::io("cannot create a temporary directory", e)),
        }
    }

    pub(super) fn path(&self) -> &Path {
        match self {
            WorkDir::User(p) => p,
            WorkDir::Temp(t) => t.path(),
        }
    }
}

/// Run `plan` against the target `T`: open it on a fresh sub-directory of
/// `dir`, put, shut down, remove the store, then measure the baselines for
/// the same number of bytes on the same directory.
///
/// # Errors
///
/// When the target cannot be opened or shut down, or a baseline fails.
pub fn execute<T: Target>(
    plan: &RunPlan,
    dir: &Path,
    index: usize,
    config: impl Fn(&Path) -> T::Config,
    target_name: &str,
    command: String,
) -> Result<RunResult> {
    let w = &plan.workload;
    let store_dir = dir.join(format!(
        "ferromq-bench-store-{}-{index}",
        std::process::id()
    ));
    // The fdatasync baseline drifts with whatever else uses the disk, so it
    // brackets the run: half its time cap before, half after, pooled.
    let half_cap = plan.baseline_cap.map(|c| c / 2);
    let sync_before = if w.flush == FlushMode::Sync {
        let spec = BaselineSpec {
            dir: dir.to_path_buf(),
            file_size_bytes: w.file_size_bytes,
            chunk_bytes: w.size_bytes,
            total_bytes: w.total_bytes(),
            max_duration: half_cap,
        };
        Some(baseline::sync_write(&spec, w.producers)?)
    } else {
        None
    };
    let (kept, repeats) = repeated_engine_runs::<T>(plan, &store_dir, &config, target_name)?;
    let EngineRun {
        measurement,
        shutdown_seconds,
        details,
        memory_prep: run_prep,
    } = kept;
    let (base, warm) = baselines_after(plan, dir, measurement.bytes, sync_before, half_cap)?;
    let mut result = RunResult::new(RunInputs {
        name: plan.name.clone(),
        target: target_name.to_string(),
        command,
        workload: w,
        dir: dir.display().to_string(),
        measurement,
        baseline: base,
        warm_baseline: warm,
        shutdown_seconds,
    });
    result.write_path = plan.write_path.map(|p| p.as_str().to_string());
    result.target_details = details;
    result.memory_prep = run_prep;
    if repeats.len() > 1 {
        result.engine_repeats = repeats;
    }
    Ok(result)
}

/// The engine runs of `plan` (up to its repeat count, within
/// [`ENGINE_REPEAT_BUDGET_SECS`], stopping at a failed run): the run kept
/// (see [`kept_repeat`]) and every run's figures, the kept one marked.
///
/// # Errors
///
/// When the target cannot be opened or shut down.
fn repeated_engine_runs<T: Target>(
    plan: &RunPlan,
    store_dir: &Path,
    config: &impl Fn(&Path) -> T::Config,
    target_name: &str,
) -> Result<(EngineRun, Vec<EngineRepeat>)> {
    let w = &plan.workload;
    let mut engine_runs: Vec<EngineRun> = Vec::new();
    let mut spent = 0.0;
    while (engine_runs.len() as u32) < plan.engine_repeats.max(1)
        && (engine_runs.is_empty() || spent < ENGINE_REPEAT_BUDGET_SECS)
    {
        // A repeat gets what is left of the budget as its time cap, so the
        // repeats together take no longer than the first run's cap allows.
        let mut this = plan.clone();
        if !engine_runs.is_empty() {
            let left = Duration::from_secs_f64((ENGINE_REPEAT_BUDGET_SECS - spent).max(0.001));
            this.workload.max_duration =
                Some(this.workload.max_duration.map_or(left, |c| c.min(left)));
        }
        let run = engine_run::<T>(&this, store_dir, config, target_name)?;
        spent += run.measurement.elapsed.as_secs_f64();
        let failed = run.measurement.put_errors > 0 || run.measurement.messages == 0;
        engine_runs.push(run);
        if failed {
            break; // reported as it is: repeating would hide the failure
        }
    }
    let repeats: Vec<EngineRepeat> = engine_runs
        .iter()
        .map(|r| EngineRepeat::of_measurement(&r.measurement, w.producers))
        .collect();
    let last_failed = engine_runs
        .last()
        .is_some_and(|r| r.measurement.put_errors > 0 || r.measurement.messages == 0);
    let kept = kept_repeat(&repeats, last_failed);
    let run = engine_runs.swap_remove(kept);
    let repeats = repeats
        .into_iter()
        .enumerate()
        .map(|(i, r)| EngineRepeat {
            kept: i == kept,
            ..r
        })
        .collect::<Vec<_>>();
    Ok((run, repeats))
}

/// The baselines for the `bytes` the engine stored, on the same directory:
/// the flush mode's (cold mapping, median of repeats; or fdatasync pooled
/// with `sync_before`) and the warm mapping. Both empty when nothing was stored.
///
/// # Errors
///
/// When a baseline fails.
fn baselines_after(
    plan: &RunPlan,
    dir: &Path,
    bytes: u64,
    sync_before: Option<BaselineResult>,
    half_cap: Option<Duration>,
) -> Result<(BaselineResult, BaselineResult)> {
    let w = &plan.workload;
    let spec = BaselineSpec {
        dir: dir.to_path_buf(),
        file_size_bytes: w.file_size_bytes,
        chunk_bytes: w.size_bytes,
        total_bytes: bytes,
        max_duration: plan.baseline_cap,
    };
    if bytes == 0 {
        let empty = |kind| BaselineResult {
            kind,
            bytes: 0,
            seconds: 0.0,
            mb_per_sec: 0.0,
            ops: 0,
            files: 0,
            stopped_early: false,
            repeats: 0,
            min_mb_per_sec: 0.0,
            max_mb_per_sec: 0.0,
        };
        let kind = match w.flush {
            FlushMode::Async => baseline::BaselineKind::ColdMmap,
            FlushMode::Sync => baseline::BaselineKind::PwriteFdatasync,
        };
        return Ok((empty(kind), empty(baseline::BaselineKind::WarmMmap)));
    }
    let base = match w.flush {
        FlushMode::Async => {
            baseline::median_of(MMAP_BASELINE_REPEATS, MMAP_BASELINE_BUDGET_SECS, |cap| {
                if plan.recycle_page_cache {
                    baseline::recycle_page_cache(dir, recycle_bytes(spec.total_bytes))?;
                }
                baseline::cold_mmap(&with_cap(&spec, cap))
            })?
        }
        FlushMode::Sync => {
            let after = baseline::sync_write(
                &BaselineSpec {
                    max_duration: half_cap,
                    ..spec.clone()
                },
                w.producers,
            )?;
            match sync_before {
                Some(before) => baseline::pooled(&[before, after]),
                None => after,
            }
        }
    };
    let warm_spec = BaselineSpec {
        max_duration: Some(WARM_BASELINE_CAP),
        ..spec
    };
    let warm = baseline::median_of(MMAP_BASELINE_REPEATS, MMAP_BASELINE_BUDGET_SECS, |cap| {
        baseline::warm_mmap(&with_cap(&warm_spec, cap))
    })?;
    Ok((base, warm))
}

/// Which engine run a repeated workload reports: the one with the median
/// MB/s (the lower middle of an even count), or the last when it failed (the
/// repeats stop at a failure, which must not be hidden by earlier runs).
fn kept_repeat(repeats: &[EngineRepeat], last_failed: bool) -> usize {
    if last_failed || repeats.len() < 2 {
        return repeats.len().saturating_sub(1);
    }
    let mut order: Vec<usize> = (0..repeats.len()).collect();
    order.sort_by(|&a, &b| repeats[a].mb_per_sec.total_cmp(&repeats[b].mb_per_sec));
    order[(order.len() - 1) / 2]
}

/// Timed seconds after which no further engine repeat starts.
pub const ENGINE_REPEAT_BUDGET_SECS: f64 = 3.0;

/// One engine run of a workload, with what surrounded it.
struct EngineRun {
    measurement: workload::RunMeasurement,
    shutdown_seconds: f64,
    details: Option<serde_json::Value>,
    memory_prep: Option<baseline::MemoryPrep>,
}

/// Open the target `T` on a fresh `store_dir` (after cycling page cache, if
/// the plan says so), run the workload, shut down, remove the store.
fn engine_run<T: Target>(
    plan: &RunPlan,
    store_dir: &Path,
    config: &impl Fn(&Path) -> T::Config,
    target_name: &str,
) -> Result<EngineRun> {
    let w = &plan.workload;
    if store_dir.exists() {
        std::fs::remove_dir_all(store_dir)
            .map_err(|e| BenchError::io(format!("cannot clear {}", store_dir.display()), e))?;
    }
    std::fs::create_dir_all(store_dir)
        .map_err(|e| BenchError::io(format!("cannot create {}", store_dir.display()), e))?;
    let memory_prep = if plan.recycle_page_cache {
        let dir = store_dir.parent().unwrap_or(store_dir);
        Some(baseline::recycle_page_cache(
            dir,
            recycle_bytes(w.total_bytes()),
        )?)
    } else {
        None
    };
    let outcome = (|| {
        let target = T::open(&config(store_dir), w).map_err(|e| {
            BenchError::new(format!(
                "cannot open the {target_name} in {}: {e}",
                store_dir.display()
            ))
        })?;
        let measured = workload::run(&target, w);
        let details = target.details();
        let t = Instant::now();
        let shut = target.shutdown();
        let shutdown_seconds = t.elapsed().as_secs_f64();
        let measured = measured?;
        shut.map_err(|e| BenchError::new(format!("{target_name} shutdown failed: {e}")))?;
        Ok((measured, shutdown_seconds, details))
    })();
    if let Err(e) = std::fs::remove_dir_all(store_dir) {
        tracing::warn!("cannot remove {}: {e}", store_dir.display());
    }
    let (measurement, shutdown_seconds, details) = outcome?;
    Ok(EngineRun {
        measurement,
        shutdown_seconds,
        details,
        memory_prep,
    })
}

/// Bytes of page cache to cycle before a timed section that writes
/// `payload` bytes: records are a little larger than bodies; the margin
/// covers headers, the pre-faulted window ahead of the write position and
/// the next file's start.
fn recycle_bytes(payload: u64) -> u64 {
    payload + payload / 8 + (64 << 20)
}

/// `spec` with its time cap lowered to `cap`, if one is given.
fn with_cap(spec: &BaselineSpec, cap: Option<Duration>) -> BaselineSpec {
    let mut s = spec.clone();
    if let Some(cap) = cap {
        s.max_duration = Some(s.max_duration.map_or(cap, |own| own.min(cap)));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_repeat_is_kept_unless_the_last_failed() {
        let r = |mb_per_sec: f64| EngineRepeat {
            messages: 10,
            seconds: 1.0,
            mb_per_sec,
            p99_us: 1.0,
            producers_asleep_ms: None,
            kept: false,
        };
        assert_eq!(kept_repeat(&[r(3.0), r(1.0), r(2.0)], false), 2);
        assert_eq!(kept_repeat(&[r(3.0), r(1.0), r(2.0), r(4.0)], false), 2);
        assert_eq!(kept_repeat(&[r(5.0)], false), 0);
        assert_eq!(kept_repeat(&[r(3.0), r(0.0)], true), 1);
        assert_eq!(kept_repeat(&[], false), 0);
    }
}
