//! `ferromq-bench failover --kills 1` with the failover tests' timeouts
//! (`--quick`): a controller-mode cluster as processes, one SIGKILL of the
//! master, and a report with exactly one recovery figure. Bounded: the run's
//! phases time out after 30 s each, and the whole run is given 60 s of
//! measuring (plus start-up) before the test fails. Skipped, with a message,
//! when the server binaries (ferromq-controller, ferromq-namesrv,
//! ferromq-broker) are not built and cannot be.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{bench, server_bins_or_skip};

/// Longest the whole run may take.
const RUN_LIMIT: Duration = Duration::from_secs(90);

#[test]
fn one_kill_with_quick_timeouts_reports_one_recovery() {
    let Some(bins) = server_bins_or_skip() else {
        return;
    };
    if !bins.join("ferromq-controller").is_file() {
        eprintln!(
            "SKIPPED: ferromq-controller not found in {} (cargo build -p ferromq-server --bins)",
            bins.display()
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut child = bench()
        .args([
            "failover",
            "--quick",
            "--kills",
            "1",
            "--window-seconds",
            "1",
            "--max-delay-ms",
            "200",
            "--seed",
            "42",
            "--producers",
            "2",
            "--phase-timeout-seconds",
            "30",
            "--quiet",
        ])
        .arg("--dir")
        .arg(tmp.path().join("cluster"))
        .arg("--out")
        .arg(tmp.path().join("out"))
        .arg("--bin-dir")
        .arg(&bins)
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if started.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "failover --kills 1 took over {RUN_LIMIT:?}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("--seed 42"),
        "the seed is printed: {stderr}"
    );
    let json_path = std::path::PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    let kills = v["kills"].as_array().expect("kills");
    assert_eq!(kills.len(), 1, "{v}");
    let rec = kills[0]["first_ack_ms"].as_f64().expect("first_ack_ms");
    assert!(rec > 0.0 && rec < 30_000.0, "recovery {rec} ms");
    assert_eq!(v["recovery_p50_ms"].as_f64(), Some(rec));
    assert_eq!(v["recovery_max_ms"].as_f64(), Some(rec));
    assert_ne!(kills[0]["new_replica"], kills[0]["killed_replica"]);
    assert!(v["acked"].as_u64().unwrap() > 0);
    assert_eq!(
        v["broker_keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|kv| kv[0] == "controllerHeartBeatTimeoutMills")
            .map(|kv| kv[1].clone()),
        Some(serde_json::json!("2000"))
    );
    let dir = json_path.parent().unwrap();
    let notes = std::fs::read_to_string(dir.join("NOTES.md")).unwrap();
    assert!(notes.contains("| recovery p50 (nearest rank) |"), "{notes}");
    assert!(notes.contains("--kills 1"), "the command is in the notes");
    assert!(dir.join("throughput.svg").is_file());
}
