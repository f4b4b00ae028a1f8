//! A tiny sweep end to end against the real `ferromq-namesrv` and
//! `ferromq-broker` binaries: two points, about a second each; the report,
//! the plots, the histograms and `results.json` are written and agree, and
//! the recommended snippet parses as a broker config. A second test stops a
//! sweep with SIGINT and checks that what was measured is still reported.
//! Two more sweep `rate` (open loop): with the harness ceiling (the null
//! broker at each offered rate) on by default, and with `--no-null-ceiling`.
//!
//! Where the server binaries come from: `cargo test --workspace` builds them
//! (the server's own integration tests need them) into the same
//! `target/<profile>/` folder that holds this test's `deps/`; when they are
//! missing (`cargo test -p ferromq-bench` alone), the test builds them with
//! `$CARGO build -p ferromq-server --bins` (bounded in time). If that is not
//! possible the tests say so on stderr and pass without running: they need
//! the binaries, not a particular build order.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{assert_success, bench, report_dirs, server_bins_or_skip};

fn sweep_cmd(tmp: &Path, bins: &Path, repeat: &str) -> Command {
    let mut c = bench();
    c.args(["sweep", "--param", "sendMessageThreadPoolNums=1,2"])
        .args([
            "--repeat",
            repeat,
            "--seconds",
            "1",
            "--warmup-seconds",
            "0.2",
        ])
        .args([
            "--producers",
            "2",
            "--inflight",
            "4",
            "--small-files",
            "--quiet",
        ])
        .args(["--p99-bound-ms", "1000", "--name", "tiny"])
        .args(["--consumers", "1"])
        .args(["--disk-bytes", "2MiB", "--disk-sync-seconds", "0.2"]);
    report_dirs(&mut c, tmp, bins);
    c
}

#[test]
fn tiny_sweep_writes_report_plots_and_json_that_agree() {
    let Some(bins) = server_bins_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("data")).unwrap();
    let out = sweep_cmd(tmp.path(), &bins, "1").output().unwrap();
    assert_success(&out);
    let json_path = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    let dir = json_path.parent().unwrap().to_path_buf();
    assert!(dir
        .file_name()
        .unwrap()
        .to_string_lossy()
        .ends_with("-tiny"));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    assert_eq!(v["interrupted"], false);
    let points = v["points"].as_array().unwrap();
    assert_eq!(points.len(), 2, "{v}");
    assert_eq!(v["runs"].as_array().unwrap().len(), 2);
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    for p in points {
        let rate = p["msgs_per_sec"].as_f64().unwrap();
        assert!(rate > 0.0, "{p}");
        assert_eq!(p["errors"], 0, "{p}");
        // The table shows the JSON's figures.
        let idx = p["point"]["index"].as_u64().unwrap();
        let row = format!("| {idx} | {} | 1 | {rate:.0} |", idx + 1);
        assert!(md.contains(&row), "no row `{row}` in\n{md}");
        assert!(dir.join(format!("point-{idx}.hgrm")).is_file());
        // Send -> consume: every acknowledged message was consumed.
        let c = &p["consume"];
        assert_eq!(c["all_consumed"], true, "{p}");
        assert!(c["p99_us"].as_f64().unwrap() > 0.0, "{p}");
        assert!(dir.join(format!("point-{idx}-e2e.hgrm")).is_file());
        let e2e_row = format!(
            "| {idx} | {} | {:.3} | {:.3} |",
            idx + 1,
            p["p99_us"].as_f64().unwrap() / 1000.0,
            c["p50_us"].as_f64().unwrap() / 1000.0
        );
        assert!(md.contains(&e2e_row), "no row `{e2e_row}` in\n{md}");
        // The disk ratios are the JSON's figures divided.
        let seq = v["disk"]["seq_write_mb_per_sec"].as_f64().unwrap();
        assert!(seq > 0.0);
        let mb = p["mb_per_sec"].as_f64().unwrap();
        let disk_row = format!("| {idx} | {} | {mb:.1} | {:.3} |", idx + 1, mb / seq);
        assert!(md.contains(&disk_row), "no row `{disk_row}` in\n{md}");
    }
    let run0 = &v["runs"][0]["figures"];
    assert_eq!(
        run0["consume"]["consumed"].as_u64(),
        run0["messages"].as_u64(),
        "{run0}"
    );
    assert!(md.contains("## Send -> consume (end to end)"));
    let end = v["load_average_end"].as_str().unwrap();
    assert!(
        md.contains(&format!("at the start, {end} at the end")),
        "{md}"
    );
    assert!(md.contains("## Against the disk's raw limits"));
    for f in [
        "throughput-vs-sendMessageThreadPoolNums.svg",
        "p99-vs-sendMessageThreadPoolNums.svg",
        "latency-percentiles.svg",
        "latency-percentiles-e2e.svg",
        "throughput-over-time.svg",
    ] {
        let svg = std::fs::read_to_string(dir.join(f)).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{f}"
        );
        assert!(md.contains(&format!("]({f})")), "report does not show {f}");
    }
    // The recommended snippet in report.md is the JSON's, and parses as a broker config.
    let snippet = md
        .split("```properties\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .unwrap();
    assert_eq!(snippet, v["recommendation"]["properties"].as_str().unwrap());
    let props = ferromq_engine::config::Properties::parse(snippet);
    let (store, _) = ferromq_engine::StoreConfig::from_properties(&props).unwrap();
    let broker = ferromq_server::broker::BrokerConfig::from_properties(&props, &store).unwrap();
    let best = v["recommendation"]["point"].as_u64().unwrap() as usize;
    assert_eq!(broker.send_message_thread_pool_nums, best + 1);
    assert!(md.contains("## Machine"));
    assert!(md.contains(v["git_commit"].as_str().unwrap()));
}

#[test]
fn sigint_stops_the_sweep_and_still_reports() {
    let Some(bins) = server_bins_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("data")).unwrap();
    let mut child = sweep_cmd(tmp.path(), &bins, "20")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // About two runs of ~1.5 s each, then Ctrl-C.
    std::thread::sleep(Duration::from_millis(4500));
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let until = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > until {
            let _ = child.kill();
            panic!("the sweep did not stop within 30 s of SIGINT");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(130));
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(stdout.trim()).unwrap()).unwrap();
    assert_eq!(v["interrupted"], true);
    let runs = v["runs"].as_array().unwrap().len();
    assert!((1..40).contains(&runs), "{runs} runs");
    // No broker left behind: the data folder holds no point folders.
    let left: Vec<_> = std::fs::read_dir(tmp.path().join("data"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// A one-pass open-loop sweep over `rates`, 1-second points, no disk
/// measurement, a p99 limit every rate meets on any machine.
fn rate_sweep_cmd(tmp: &Path, bins: &Path, rates: &str, name: &str) -> Command {
    let mut c = bench();
    c.args(["sweep", "--param", &format!("rate={rates}")])
        .args(["--repeat", "1", "--seconds", "1", "--warmup-seconds", "0.2"])
        .args([
            "--producers",
            "1",
            "--inflight",
            "4",
            "--small-files",
            "--quiet",
        ])
        .args([
            "--p99-limit-ms",
            "1000",
            "--disk-bytes",
            "0",
            "--name",
            name,
        ]);
    report_dirs(&mut c, tmp, bins);
    c
}

/// Run `c`, return the report folder and its parsed `results.json`.
fn report_of(mut c: Command) -> (PathBuf, serde_json::Value) {
    let out = c.output().unwrap();
    assert_success(&out);
    let json_path = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    let v = serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    (json_path.parent().unwrap().to_path_buf(), v)
}

#[test]
fn a_rate_sweep_measures_and_draws_the_harness_ceiling_at_every_rate() {
    let Some(bins) = server_bins_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("data")).unwrap();
    let (dir, v) = report_of(rate_sweep_cmd(tmp.path(), &bins, "200,400", "ceiling"));
    let ceiling = v["ceiling"].as_array().expect("a ceiling in results.json");
    let mut rates: Vec<f64> = ceiling
        .iter()
        .map(|c| c["rate"].as_f64().unwrap())
        .collect();
    rates.sort_by(f64::total_cmp);
    assert_eq!(rates, vec![200.0, 400.0], "{v}");
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    for c in ceiling {
        assert!(c["acked_msgs_per_sec"].as_f64().unwrap() > 0.0, "{c}");
        assert!(c["p99_ms"].as_f64().unwrap() > 0.0, "{c}");
        assert_eq!(c["runs"], 1, "{c}");
        assert_eq!(c["setting"], "", "{c}");
        // The table shows the JSON's figures.
        let row = format!(
            "| {:.0} | {:.0} | {:.3} | {:.3} |",
            c["rate"].as_f64().unwrap(),
            c["acked_msgs_per_sec"].as_f64().unwrap(),
            c["p50_ms"].as_f64().unwrap(),
            c["p99_ms"].as_f64().unwrap()
        );
        assert!(md.contains(&row), "no row `{row}` in\n{md}");
    }
    let runs = v["ceiling_runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{v}");
    for r in runs {
        assert!(r["figures"]["messages"].as_u64().unwrap() > 0, "{r}");
        assert!(r["figures"]["consume"].is_null(), "no consumers: {r}");
    }
    assert!(md.contains("### Harness ceiling (null broker)"), "{md}");
    // Each knee is set against the ceiling at its rate.
    for k in v["knees"].as_array().unwrap() {
        let Some(rate) = k["rate"].as_f64() else {
            continue;
        };
        let c = ceiling
            .iter()
            .find(|c| c["rate"].as_f64() == Some(rate))
            .unwrap();
        let line = format!(
            "At the knee ({rate:.0} msgs/s) the null broker's p99 is {:.3} ms",
            c["p99_ms"].as_f64().unwrap()
        );
        assert!(md.contains(&line), "no `{line}` in\n{md}");
    }
    let svg = std::fs::read_to_string(dir.join("latency-vs-rate.svg")).unwrap();
    assert!(svg.contains("harness ceiling (null broker)"), "{svg}");
    // results.json reads back, and so does one written before the ceiling.
    let text = serde_json::to_string(&v).unwrap();
    let back: ferromq_bench::sweep_report::SweepReport = serde_json::from_str(&text).unwrap();
    assert_eq!(back.ceiling.len(), 2);
    let mut old = v.clone();
    let o = old.as_object_mut().unwrap();
    o.remove("ceiling");
    o.remove("ceiling_runs");
    let old: ferromq_bench::sweep_report::SweepReport = serde_json::from_value(old).unwrap();
    assert!(old.ceiling.is_empty() && old.ceiling_runs.is_empty());
    assert_eq!(old.points.len(), 2);
}

#[test]
fn no_null_ceiling_skips_it() {
    let Some(bins) = server_bins_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("data")).unwrap();
    let mut c = rate_sweep_cmd(tmp.path(), &bins, "200", "no-ceiling");
    c.arg("--no-null-ceiling");
    let (dir, v) = report_of(c);
    assert_eq!(v["points"].as_array().unwrap().len(), 1, "{v}");
    assert!(
        v.get("ceiling").is_none() && v.get("ceiling_runs").is_none(),
        "{v}"
    );
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(!md.contains("Harness ceiling"), "{md}");
    let svg = std::fs::read_to_string(dir.join("latency-vs-rate.svg")).unwrap();
    assert!(!svg.contains("harness ceiling"), "{svg}");
}
