//! Helpers shared by the integration tests: run the built binary in a
//! scratch directory and parse its JSON.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// Run `ferromq-bench` with `args`, working directory `cwd`, and return its output.
pub fn run_bench(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferromq-bench"))
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
