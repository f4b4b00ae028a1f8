//! What every report folder shares: the folder itself, its time stamp,
//! the command line and git commit it records, the machine table, the
//! header lines of interrupted runs and load, and the `.hgrm` percentile files.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;

use crate::error::{BenchError, Result};
use crate::table::Table;

/// A new folder `out/<base>` (or `out/<base>-2`, `-3`, ... when taken) for
/// one report; `out` is created when missing.
///
/// # Errors
///
/// When a folder cannot be created; the message names the path.
pub fn new_report_dir(out: &Path, base: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(out)
        .map_err(|e| BenchError::io(format!("cannot create {}", out.display()), e))?;
    let mut dir = out.join(base);
    let mut n = 1;
    loop {
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 100 => {
                n += 1;
                dir = out.join(format!("{base}-{n}"));
            }
            Err(e) => {
                return Err(BenchError::io(
                    format!("cannot create {}", dir.display()),
                    e,
                ))
            }
        }
    }
}

/// `k` for a file or folder name: every character but ASCII letters, digits
/// and `-` becomes `_`.
pub fn file_key(k: &str) -> String {
    k.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A report folder being written (`sweep`, `compare`).
#[derive(Debug)]
pub struct ReportFolder {
    dir: PathBuf,
}

impl ReportFolder {
    /// Create `out/<stamp>-<host>-<name>/` (see [`new_report_dir`]; host and
    /// name through [`file_key`]) and write `results` into its `results.json`.
    ///
    /// # Errors
    ///
    /// When the folder cannot be created or the file encoded or written.
    pub fn create(
        out: &Path,
        stamp: &str,
        host: &str,
        name: &str,
        results: &impl serde::Serialize,
    ) -> Result<ReportFolder> {
        let base = format!("{stamp}-{}-{}", file_key(host), file_key(name));
        let folder = ReportFolder {
            dir: new_report_dir(out, &base)?,
        };
        let json = serde_json::to_string_pretty(results)
            .map_err(|e| BenchError::new(format!("encoding results.json: {e}")))?;
        folder.put("results.json", &(json + "\n"))?;
        Ok(folder)
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Write `text` into the file `name` of the folder.
    ///
    /// # Errors
    ///
    /// When it cannot be written; the message names the path.
    pub fn put(&self, name: &str, text: &str) -> Result<()> {
        let p = self.dir.join(name);
        std::fs::write(&p, text).map_err(|e| BenchError::io(p.display(), e))
    }
}

/// Print where the report folder `dir` is on stdout: with `quiet` only its
/// `results.json` path, and false (print nothing more); else the path of
/// its `report.md`, and true.
pub fn print_report_path(dir: &Path, quiet: bool) -> bool {
    if quiet {
        println!("{}", dir.join("results.json").display());
    } else {
        println!("{}", dir.join("report.md").display());
    }
    !quiet
}

/// Print `result` on stdout: as one JSON line with `json`, else as
/// `text(result)`.
///
/// # Errors
///
/// When it cannot be encoded or stdout cannot be written.
pub fn print_result<T: serde::Serialize>(
    json: bool,
    result: &T,
    text: impl FnOnce(&T) -> String,
) -> Result<()> {
    let text = if json {
        serde_json::to_string(result).map_err(|e| BenchError::new(format!("encoding JSON: {e}")))?
    } else {
        text(result)
    };
    let mut out = std::io::stdout().lock();
    std::io::Write::write_fmt(&mut out, format_args!("{text}\n"))
        .map_err(|e| BenchError::io("stdout", e))
}

/// The `## Machine` section of a report: host, CPU, memory, kernel, load, and
/// the directory's file system, device and RAID level.
pub fn machine_section(s: &mut String, m: &crate::machine::MachineInfo) {
    let d = &m.disk;
    let _ = writeln!(s, "## Machine\n");
    let mut t = Table::key_value();
    t.kv("host", &m.hostname);
    t.kv(
        "CPU",
        format_args!(
            "{} ({} logical CPUs, {} available to the process)",
            m.cpu_model, m.cpu_logical, m.cpu_available
        ),
    );
    t.kv("memory", m.memory_display());
    t.kv("kernel", &m.kernel);
    t.kv("load average at start (1/5/15 min)", &m.load_average);
    t.kv("directory", format_args!("`{}`", d.dir));
    t.kv(
        "file system",
        format_args!(
            "{} on `{}`, mounted at `{}` ({})",
            d.fs_type, d.source, d.mount_point, d.mount_options
        ),
    );
    t.kv(
        "device",
        format_args!("{} (model: {})", d.device, d.device_model),
    );
    t.kv("rotational", &d.rotational);
    t.kv("I/O scheduler", &d.scheduler);
    let members = if d.raid_members.is_empty() {
        String::new()
    } else {
        format!(" over {}", d.raid_members.join(", "))
    };
    t.kv("RAID", format_args!("{}{}", d.raid_level, members));
    s.push_str(&t.finish());
    s.push('\n');
}

/// A histogram recorded in nanoseconds as a percentile table in
/// HdrHistogram's `.hgrm` text format, values in microseconds.
///
/// Percentile levels step as HdrHistogram's `outputPercentileDistribution`
/// does with 5 ticks per half distance: 0, 10 %, ... 50 %, 55 %, ... 75 %,
/// 77.5 %, ... ever closer to 100 %, until the largest value is reached.
pub fn hgrm(h: &Histogram<u64>) -> String {
    const TICKS_PER_HALF_DISTANCE: f64 = 5.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    if !h.is_empty() {
        let max = h.max();
        let mut q = 0.0f64;
        // 1/(1-q) doubles every 5 lines; 300 lines reach 1 - 2^-60, past any count.
        for _ in 0..300 {
            let value = h.value_at_quantile(q);
            if value >= max || q >= 1.0 {
                break;
            }
            let total = h.count_between(0, value);
            let _ = writeln!(
                s,
                "{:>12.3} {q:>2.12} {total:>10} {:>14.2}",
                value as f64 / 1000.0,
                1.0 / (1.0 - q)
            );
            let halvings = (1.0 / (1.0 - q)).log2().floor();
            q += 1.0 / (TICKS_PER_HALF_DISTANCE * 2f64.powf(halvings + 1.0));
        }
        let _ = writeln!(
            s,
            "{:>12.3} {:>2.12} {:>10}",
            max as f64 / 1000.0,
            1.0,
            h.len()
        );
    }
    let _ = writeln!(
        s,
        "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]",
        h.mean() / 1000.0,
        h.stdev() / 1000.0
    );
    let _ = writeln!(
        s,
        "#[Max     = {:>12.3}, Total count    = {:>12}]",
        h.max() as f64 / 1000.0,
        h.len()
    );
    s
}

/// Seconds since the Unix epoch as UTC `(year, month, day, hour, minute, second)`.
pub fn utc_parts(epoch_secs: u64) -> (i64, u32, u32, u32, u32, u32) {
    let days = (epoch_secs / 86_400) as i64;
    let rem = epoch_secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        month,
        day,
        (rem / 3600) as u32,
        (rem % 3600 / 60) as u32,
        (rem % 60) as u32,
    )
}

/// Now, as `(folder stamp "20260126T011500Z", ISO 8601 "2026-01-26T01:15:00Z")`.
pub fn utc_now() -> (String, String) {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (y, mo, d, h, mi, s) = utc_parts(secs);
    (
        format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z"),
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z"),
    )
}

/// `git rev-parse HEAD` in the current directory, `-dirty` appended when
/// tracked files have changes; unknown without git or outside a repository.
pub fn git_commit() -> String {
    let head = Command::new("git").args(["rev-parse", "HEAD"]).output();
    let Ok(head) = head else {
        return "unknown".to_string();
    };
    if !head.status.success() {
        return "unknown".to_string();
    }
    let mut commit = String::from_utf8_lossy(&head.stdout).trim().to_string();
    let dirty = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .is_ok_and(|o| o.status.success() && !o.stdout.is_empty());
    if dirty {
        commit.push_str("-dirty");
    }
    commit
}

/// The flag whose value [`shell_join`] never writes.
const SECRET_FLAG: &str = "--secret-key";

/// Arguments as a command line a POSIX shell would run the same way, except
/// that the value of `--secret-key` is written as `***`.
pub fn shell_join<I: IntoIterator<Item = S>, S: AsRef<str>>(args: I) -> String {
    let mut after_secret_flag = false;
    args.into_iter()
        .map(|a| {
            let a = a.as_ref();
            // A secret never reaches a report: the value of `--secret-key`
            // (as the next argument or after `=`) is written as `***`.
            if std::mem::take(&mut after_secret_flag) {
                return "'***'".to_string();
            }
            if a == SECRET_FLAG {
                after_secret_flag = true;
                return a.to_string();
            }
            if a.starts_with(SECRET_FLAG) && a[SECRET_FLAG.len()..].starts_with('=') {
                return format!("{SECRET_FLAG}='***'");
            }
            let plain = !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
            if plain {
                a.to_string()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A report's first lines: the command line, the git commit, when it
/// started (UTC) and how long it took.
pub fn origin_lines(
    s: &mut String,
    command: &str,
    git_commit: &str,
    started_utc: &str,
    took_seconds: f64,
) {
    let _ = writeln!(s, "- command: `{command}`");
    let _ = writeln!(s, "- git commit: `{git_commit}`");
    let _ = writeln!(
        s,
        "- started (UTC): {started_utc}; took {took_seconds:.0} s"
    );
}

/// The suffix of a report's "runs" line when Ctrl-C stopped the run early.
pub fn interrupted_note(interrupted: bool) -> &'static str {
    if interrupted {
        "; **interrupted by Ctrl-C**: only completed runs are reported"
    } else {
        ""
    }
}

/// A report's load-average line: at the start (from `machine`) and at the end.
pub fn load_average_line(machine: &crate::machine::MachineInfo, at_end: &str) -> String {
    format!(
        "- load average (1/5/15 min): {} at the start, {} at the end, on {} logical CPUs",
        machine.load_average, at_end, machine.cpu_logical
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc_parts(0), (1970, 1, 1, 0, 0, 0));
        // 2000-02-29 12:34:56 UTC
        assert_eq!(utc_parts(951_827_696), (2000, 2, 29, 12, 34, 56));
        // 2026-11-26 01:13:48 UTC
        assert_eq!(utc_parts(1_795_655_628), (2026, 11, 26, 1, 13, 48));
        let (stamp, iso) = utc_now();
        assert_eq!(stamp.len(), 16);
        assert_eq!(iso.len(), 20);
    }

    #[test]
    fn quoting() {
        assert_eq!(
            shell_join(["a", "--dir", "/tmp/x y", "it's"]),
            r"a --dir '/tmp/x y' 'it'\''s'"
        );
        assert_eq!(shell_join([""]), "''");
    }

    #[test]
    fn secret_keys_never_reach_a_report() {
        let line = shell_join([
            "compare",
            "--access-key",
            "ak",
            "--secret-key",
            "s3cret",
            "--secret-key=other",
            "--seconds",
            "1",
        ]);
        assert_eq!(
            line,
            "compare --access-key ak --secret-key '***' --secret-key='***' --seconds 1"
        );
    }

    #[test]
    fn hgrm_has_percentiles_and_footer() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
        for v in 1..=1000u64 {
            h.record(v * 1000).unwrap();
        }
        let text = hgrm(&h);
        assert!(text.starts_with("       Value"));
        assert!(text.contains("#[Max     ="), "{text}");
        assert!(text.contains("Total count    =         1000"));
        let last = text
            .lines()
            .rfind(|l| !l.starts_with('#') && !l.trim().is_empty())
            .unwrap();
        assert!(last.contains("1.000000000000"), "{last}");
        assert!(hgrm(&Histogram::<u64>::new(3).unwrap()).contains("Total count"));
        // A long tail: the table still walks through p99 and p99.9.
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
        h.record_n(1000, 99_890).unwrap();
        h.record_n(50_000, 100).unwrap();
        h.record_n(25_000_000, 10).unwrap();
        let text = hgrm(&h);
        let rows: Vec<(f64, f64)> = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty() && !l.contains("Value"))
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f[0].parse().unwrap(), f[1].parse().unwrap())
            })
            .collect();
        assert!(
            rows.iter()
                .any(|&(v, q)| (0.99..0.9999).contains(&q) && (v - 50.0).abs() < 0.1),
            "{text}"
        );
        assert_eq!(rows.last().unwrap().1, 1.0);
        assert!(
            rows.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 < w[1].1),
            "{text}"
        );
    }
}
