//! The drain workload end to end: `compare` starts two real ferromq brokers
//! from `.properties` files and runs `--param drain=N` with 1 and 3
//! consumers. Every run fills the topic with N messages after a warm-up and
//! the consumers receive exactly the fill's acknowledged messages (not the
//! warm-up's, not an earlier run's), the drain rate and the broker's CPU per
//! drained message are measured (the brokers are children on this machine),
//! and the report's consume table shows them. (Binaries: see
//! `sweep_end_to_end.rs`.)

mod common;

use common::{bench, quiet_report, report_dirs, server_bins_or_skip};

#[test]
fn drain_runs_receive_exactly_the_fill_and_report_rate_and_broker_cpu() {
    let Some(bins) = server_bins_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a.properties");
    let b = tmp.path().join("b.properties");
    std::fs::write(&a, "brokerName=a\nflushDiskType=ASYNC_FLUSH\n").unwrap();
    std::fs::write(&b, "brokerName=b\nflushDiskType=ASYNC_FLUSH\n").unwrap();
    let n = 3000u64;
    let mut c = bench();
    c.arg("compare")
        .arg("--a-props")
        .arg(&a)
        .arg("--b-props")
        .arg(&b)
        .args(["--a-name", "one", "--b-name", "two"])
        .args(["--param", &format!("drain={n}"), "--param", "consumers=1,3"])
        .args(["--repeat", "1", "--warmup-seconds", "0.2"])
        .args(["--producers", "2", "--inflight", "8", "--queues", "4"])
        .args(["--pull-batch", "16", "--small-files"])
        .args(["--name", "tiny-drain", "--quiet"]);
    let (_, v, md) = quiet_report(report_dirs(&mut c, tmp.path(), &bins));

    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 4, "2 points x A and B");
    for r in runs {
        let f = &r["figures"];
        assert_eq!(f["errors"], 0, "{r}");
        assert_eq!(f["messages"], n, "the fill is N messages: {r}");
        let d = &f["drain"];
        assert_eq!(d["messages"], n, "{r}");
        assert_eq!(d["consumed"], n, "exactly the fill, once: {r}");
        assert_eq!(d["drained"], true, "{r}");
        assert_eq!(d["errors"], 0, "{r}");
        assert!(d["msgs_per_sec"].as_f64().unwrap() > 0.0, "{r}");
        let per_pull = d["msgs_per_pull"].as_f64().unwrap();
        assert!(per_pull > 0.0 && per_pull <= 16.0, "pull batch 16: {r}");
        assert!(
            d["broker_cpu_ns_per_msg"].as_f64().unwrap() > 0.0,
            "the broker is a child on this machine: {r}"
        );
        assert!(f["broker_cpu_ns_per_msg"].as_f64().unwrap() > 0.0, "{r}");
        assert!(
            f.get("consume").is_none(),
            "no send -> consume latency in a drain: {r}"
        );
    }
    let consumers: Vec<u64> = runs
        .iter()
        .map(|r| r["figures"]["drain"]["consumers"].as_u64().unwrap())
        .collect();
    assert_eq!(consumers, vec![1, 1, 3, 3]);
    for p in v["points"].as_array().unwrap() {
        assert!(p["a"]["drain_msgs_per_sec"].as_f64().unwrap() > 0.0, "{p}");
        assert!(p["drain_ratio"]["median"].as_f64().unwrap() > 0.0, "{p}");
        assert_eq!(p["a"]["drained_runs"], 1, "{p}");
    }
    assert!(md.contains("## Consume side and broker CPU"), "{md}");
    assert!(
        md.contains("| one drain msgs/s | two drain msgs/s |"),
        "{md}"
    );
    assert!(md.contains("| 1/1 / 1/1 |"), "{md}");
}

#[test]
fn a_sweep_over_drain_points_reports_the_drain_table() {
    let Some(bins) = server_bins_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut c = bench();
    c.args([
        "sweep",
        "--param",
        "drain=2000",
        "--param",
        "pull-batch=8,64",
    ])
    .args(["--repeat", "1", "--warmup-seconds", "0.2", "--seconds", "1"])
    .args(["--producers", "1", "--inflight", "8", "--queues", "2"])
    .args(["--small-files", "--quiet", "--disk-bytes", "0"])
    .args(["--name", "tiny-drain-sweep"]);
    let (_, v, md) = quiet_report(report_dirs(&mut c, tmp.path(), &bins));
    let points = v["points"].as_array().unwrap();
    assert_eq!(points.len(), 2);
    for (p, batch) in points.iter().zip([8.0, 64.0]) {
        let d = &p["drain"];
        assert_eq!(d["consumers"], 1, "--drain alone means one consumer: {p}");
        assert_eq!(d["all_drained"], true, "{p}");
        assert!(d["msgs_per_sec"].as_f64().unwrap() > 0.0, "{p}");
        let per_pull = d["msgs_per_pull"].as_f64().unwrap();
        assert!(per_pull > 0.0 && per_pull <= batch, "{p}");
        assert!(d["broker_cpu_ns_per_msg"].as_f64().unwrap() > 0.0, "{p}");
    }
    assert!(md.contains("## Drain (consume workload)"), "{md}");
    assert!(
        md.contains("| point | drain | pull-batch | consumers | drain msgs/s (min-max) |"),
        "{md}"
    );
}
