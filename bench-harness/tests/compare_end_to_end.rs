//! `ferromq-bench compare` end to end against two real ferromq brokers that
//! it starts itself from two `.properties` files (A: ASYNC_FLUSH, B:
//! SYNC_FLUSH): two points (inflight 1 and 8), one pass, a second each, with
//! a consumer. The report, the JSON and the ratio plot are written and agree:
//! every run of the plan ran in the order A B A B, each point's B/A is the
//! ratio of the two runs' figures, and the table shows it. (Binaries: see
//! `sweep_end_to_end.rs`.)

mod common;

use common::{bench, quiet_report, report_dirs, server_bins_or_skip};

#[test]
fn compare_two_started_brokers_writes_ratios_that_agree() {
    let Some(bins) = server_bins_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a.properties");
    let b = tmp.path().join("b.properties");
    std::fs::write(
        &a,
        "brokerName=a\nflushDiskType=ASYNC_FLUSH\nlistenPort=10911\n",
    )
    .unwrap();
    std::fs::write(&b, "brokerName=b\nflushDiskType=SYNC_FLUSH\n").unwrap();
    let mut c = bench();
    c.arg("compare")
        .arg("--a-props")
        .arg(&a)
        .arg("--b-props")
        .arg(&b)
        .args(["--a-name", "async", "--b-name", "sync"])
        .args(["--param", "inflight=1,8", "--repeat", "1"])
        .args(["--seconds", "1", "--warmup-seconds", "0.2"])
        .args(["--producers", "2", "--consumers", "1", "--small-files"])
        .args(["--name", "tiny-compare", "--quiet"]);
    let (dir, v, md) = quiet_report(report_dirs(&mut c, tmp.path(), &bins));
    assert!(dir.to_string_lossy().ends_with("-tiny-compare"));

    // A B A B, every planned run done, no errors.
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(v["planned_runs"], 4);
    let order: Vec<(u64, &str)> = runs
        .iter()
        .map(|r| (r["point"].as_u64().unwrap(), r["target"].as_str().unwrap()))
        .collect();
    assert_eq!(order, vec![(0, "a"), (0, "b"), (1, "a"), (1, "b")]);
    for r in runs {
        let f = &r["figures"];
        assert_eq!(f["errors"], 0, "{r}");
        assert!(f["msgs_per_sec"].as_f64().unwrap() > 0.0);
        assert_eq!(f["consume"]["drained"], true, "{r}");
    }

    // Each point's ratio is B's run over A's run, and the table shows it.
    let points = v["points"].as_array().unwrap();
    assert_eq!(points.len(), 2);
    for (i, p) in points.iter().enumerate() {
        let ra = runs[2 * i]["figures"]["msgs_per_sec"].as_f64().unwrap();
        let rb = runs[2 * i + 1]["figures"]["msgs_per_sec"].as_f64().unwrap();
        let t = &p["throughput_ratio"];
        let median = t["median"].as_f64().unwrap();
        assert!((median - rb / ra).abs() < 1e-9 * median, "{p}");
        assert_eq!(t["min"], t["median"]);
        let cell = format!("{median:.2} ({median:.2}-{median:.2})");
        assert!(md.contains(&cell), "no `{cell}` in\n{md}");
        assert!(p["e2e_p99_ratio"]["median"].as_f64().unwrap() > 0.0);
        assert!(p["verdict"]
            .as_str()
            .unwrap()
            .contains("no spread measured"));
        assert!(dir.join(format!("point-{i}-a.hgrm")).is_file());
        assert!(dir.join(format!("point-{i}-b.hgrm")).is_file());
    }
    assert!(md.contains("| point | workload | async msgs/s"));
    assert!(md.contains("inflight=8"));
    let svg = std::fs::read_to_string(dir.join("ratio.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(md.contains("](ratio.svg)"));
    assert!(md.contains("## Machine"));
    let end = v["load_average_end"].as_str().unwrap();
    assert!(
        md.contains(&format!("at the start, {end} at the end")),
        "{md}"
    );
    // The started brokers' stores are gone.
    let left: Vec<_> = std::fs::read_dir(tmp.path().join("data"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
