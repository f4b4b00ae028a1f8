//! Helpers shared by the integration tests: run the built binary in a
//! scratch directory and parse its JSON.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The tiny single `store` run the store tests make: 2000 messages of 256 B
/// into 1 MiB commitlog files.
pub const TINY_STORE: &[&str] = &[
    "store",
    "--messages",
    "2000",
    "--size",
    "256",
    "--file-size",
    "1048576",
];

/// `--dir <tmp>/data --out <tmp>/out --bin-dir <bins>` and `RUST_LOG=error`:
/// where a test's sweep or compare keeps its stores and writes its report,
/// and which broker binaries it starts.
pub fn report_dirs<'a>(c: &'a mut Command, tmp: &Path, bins: &Path) -> &'a mut Command {
    c.arg("--dir")
        .arg(tmp.join("data"))
        .arg("--out")
        .arg(tmp.join("out"))
        .arg("--bin-dir")
        .arg(bins)
        .env("RUST_LOG", "error")
}

/// Run a `--quiet` sweep or compare, check it succeeded, and return its
/// report folder, parsed `results.json` and `report.md`.
pub fn quiet_report(c: &mut Command) -> (PathBuf, serde_json::Value, String) {
    let out = c.output().unwrap();
    assert_success(&out);
    let json_path = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    let dir = json_path.parent().unwrap().to_path_buf();
    let v = serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap_or_default();
    (dir, v, md)
}

/// The built `ferromq-bench`, as a command to add arguments to.
pub fn bench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ferromq-bench"))
}

/// Panic with the child's stderr unless it exited successfully.
pub fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Run `ferromq-bench` with `args`, working directory `cwd`, and return its output.
pub fn run_bench(cwd: &Path, args: &[&str]) -> Output {
    bench()
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("ferromq-bench runs")
}

/// Parse stdout as exactly one JSON object; panics with stderr on failure.
pub fn one_json_object(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}\nstderr:\n{stderr}\nstdout:\n{stdout}",
        out.status
    );
    let mut stream = serde_json::Deserializer::from_str(&stdout).into_iter::<serde_json::Value>();
    let value = stream
        .next()
        .expect("one JSON value on stdout")
        .unwrap_or_else(|e| panic!("stdout is not JSON: {e}\n{stdout}"));
    assert!(
        stream.next().is_none(),
        "more than one JSON value on stdout:\n{stdout}"
    );
    assert!(value.is_object(), "not an object: {value}");
    value
}

/// `v[key]` as f64; panics naming the key.
pub fn num(v: &serde_json::Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("`{key}` missing or not a number in {v}"))
}

/// True when `a` and `b` agree within a relative `tolerance`.
pub fn close(a: f64, b: f64, tolerance: f64) -> bool {
    (a - b).abs() <= tolerance * a.abs().max(b.abs()).max(f64::MIN_POSITIVE)
}

const BUILD_DEADLINE: Duration = Duration::from_secs(600);

/// [`server_bin_dir`], or `None` after saying on stderr that the test is
/// skipped.
pub fn server_bins_or_skip() -> Option<PathBuf> {
    let bins = server_bin_dir();
    if bins.is_none() {
        eprintln!("SKIPPED: ferromq-broker/ferromq-namesrv not found and could not be built");
    }
    bins
}

/// The folder holding `ferromq-namesrv` and `ferromq-broker` next to the
/// test binaries, built (bounded) when missing; `None` when impossible.
pub fn server_bin_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?.parent()?.to_path_buf(); // target/<profile>/
    let have = |d: &Path| d.join("ferromq-broker").is_file() && d.join("ferromq-namesrv").is_file();
    if have(&dir) {
        return Some(dir);
    }
    let cargo = std::env::var_os("CARGO")?;
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "-p", "ferromq-server", "--bins"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let mut child = cmd.spawn().ok()?;
    let until = Instant::now() + BUILD_DEADLINE;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    have(&dir).then_some(dir)
}
