//! `ferromq-bench store --json` prints one consistent JSON object for a tiny
//! run, in both flush modes, and leaves nothing behind.

mod common;

use common::{close, num, one_json_object, run_bench, TINY_STORE};

fn tiny_run(flush: &str, producers: &str) -> serde_json::Value {
    let cwd = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dir_arg = dir.path().to_str().unwrap();
    let out = run_bench(
        cwd.path(),
        &[
            TINY_STORE,
            &[
                "--producers",
                producers,
                "--flush",
                flush,
                "--dir",
                dir_arg,
                "--json",
                "--no-report",
            ],
        ]
        .concat(),
    );
    let v = one_json_object(&out);
    // --no-report wrote nothing in the working directory, and the store and
    // baseline files are gone from the directory under test.
    assert_eq!(std::fs::read_dir(cwd.path()).unwrap().count(), 0);
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "left behind in --dir: {left:?}");
    v
}

fn check(v: &serde_json::Value, flush: &str, producers: u64) {
    for key in [
        "messages",
        "bytes",
        "seconds",
        "msgs_per_sec",
        "mb_per_sec",
        "baseline_mb_per_sec",
        "ratio_to_baseline",
        "warm_baseline_mb_per_sec",
        "ratio_to_warm_baseline",
    ] {
        assert!(num(v, key) > 0.0, "`{key}` not positive in {v}");
    }
    for p in ["p50", "p99", "p999", "max"] {
        assert!(
            num(&v["latency_us"], p) > 0.0,
            "latency_us.{p} not positive in {v}"
        );
    }
    let l = &v["latency_us"];
    assert!(
        num(l, "p50") <= num(l, "p99")
            && num(l, "p99") <= num(l, "p999")
            && num(l, "p999") <= num(l, "max")
    );

    assert_eq!(v["flush"], flush);
    assert_eq!(v["producers"].as_u64(), Some(producers));
    assert_eq!(v["size"].as_u64(), Some(256));
    assert_eq!(v["file_size"].as_u64(), Some(1_048_576));
    assert!(v["dir"].as_str().is_some_and(|d| !d.is_empty()));
    assert_eq!(v["put_errors"].as_u64(), Some(0));
    assert_eq!(v["messages"].as_u64(), Some(2000));
    assert_eq!(v["bytes"].as_u64(), Some(2000 * 256));
    let statuses = v["status_counts"]
        .as_object()
        .expect("status_counts object");
    let counted: u64 = statuses.values().map(|n| n.as_u64().unwrap()).sum();
    assert_eq!(counted, 2000, "status_counts {statuses:?}");

    let (messages, bytes, seconds) = (num(v, "messages"), num(v, "bytes"), num(v, "seconds"));
    assert!(close(num(v, "msgs_per_sec"), messages / seconds, 1e-6));
    assert!(close(num(v, "mb_per_sec"), bytes / seconds / 1e6, 1e-6));
    let mb = num(v, "mb_per_sec");
    assert!(close(
        num(v, "ratio_to_baseline"),
        mb / num(v, "baseline_mb_per_sec"),
        1e-6
    ));
    assert!(close(
        num(v, "ratio_to_warm_baseline"),
        mb / num(v, "warm_baseline_mb_per_sec"),
        1e-6
    ));
    // The memcpy baselines moved the same payload.
    assert_eq!(v["warm_baseline"]["bytes"].as_u64(), Some(2000 * 256));
}

#[test]
fn async_run_reports_consistent_json() {
    let v = tiny_run("async", "1");
    check(&v, "async", 1);
    assert_eq!(v["baseline_kind"], "cold_mmap");
    assert_eq!(v["baseline"]["bytes"].as_u64(), Some(2000 * 256));
}

#[test]
fn sync_run_reports_consistent_json() {
    let v = tiny_run("sync", "4");
    check(&v, "sync", 4);
    assert_eq!(v["baseline_kind"], "pwrite_fdatasync");
    // The same payload once before and once after the run, in batches of
    // 4 messages: 500 fdatasyncs each.
    assert_eq!(v["baseline"]["repeats"].as_u64(), Some(2));
    assert_eq!(v["baseline"]["bytes"].as_u64(), Some(2 * 2000 * 256));
    assert_eq!(v["baseline"]["ops"].as_u64(), Some(1000));
}
