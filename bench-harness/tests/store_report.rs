//! A run with `--out` writes report.md, results.json and a histogram that
//! agree with the JSON on stdout.

mod common;

use common::{num, one_json_object, run_bench, TINY_STORE};

#[test]
fn report_folder_agrees_with_stdout() {
    let cwd = tempfile::tempdir().unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let out_arg = out_dir.path().to_str().unwrap();
    let out = run_bench(
        cwd.path(),
        &[TINY_STORE, &["--json", "--out", out_arg]].concat(),
    );
    let v = one_json_object(&out);

    let folders: Vec<_> = std::fs::read_dir(out_dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(folders.len(), 1, "{folders:?}");
    let folder = &folders[0];
    assert_eq!(v["report_dir"].as_str(), folder.to_str());
    let name = folder.file_name().unwrap().to_str().unwrap();
    // <YYYYMMDDTHHMMSSZ>-<host>
    assert!(
        name.len() > 17 && name.as_bytes()[8] == b'T' && name.as_bytes()[15] == b'Z',
        "{name}"
    );

    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(folder.join("results.json")).unwrap())
            .unwrap();
    let run = &results["runs"][0];
    for key in [
        "messages",
        "bytes",
        "seconds",
        "msgs_per_sec",
        "mb_per_sec",
        "baseline_mb_per_sec",
        "ratio_to_baseline",
    ] {
        assert_eq!(
            run[key], v[key],
            "results.json and stdout differ on `{key}`"
        );
    }
    assert_eq!(run["latency_us"], v["latency_us"]);
    assert!(results["command"]
        .as_str()
        .unwrap()
        .contains("--messages 2000"));
    assert!(results["machine"]["kernel"].is_string());
    assert_eq!(results["targets"].as_array().map(Vec::len), Some(3));

    let md = std::fs::read_to_string(folder.join("report.md")).unwrap();
    assert!(md.contains("--messages 2000"), "command line missing");
    assert!(md.contains("Git commit"));
    assert!(md.contains("## Targets (issue 3)"));
    assert!(md.contains("## Machine"));
    assert!(
        md.contains(&format!("{:.0}", num(&v, "msgs_per_sec"))),
        "msgs/s of stdout not in report.md"
    );
    assert!(
        md.contains(&format!("{:.1}", num(&v["latency_us"], "p99"))),
        "p99 not in report.md"
    );

    let hgrm = std::fs::read_to_string(folder.join("async-256B-1p.hgrm")).unwrap();
    assert!(hgrm.contains("Total count    =         2000"), "{hgrm}");
    // Nothing was written into the working directory (no stray results/).
    assert_eq!(std::fs::read_dir(cwd.path()).unwrap().count(), 0);
}

#[test]
fn bad_flags_fail_with_a_message() {
    let cwd = tempfile::tempdir().unwrap();
    let out = run_bench(
        cwd.path(),
        &["store", "--flush", "sometimes", "--no-report"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("sometimes"));

    let out = run_bench(
        cwd.path(),
        &[
            "store",
            "--messages",
            "10",
            "--producers",
            "0",
            "--no-report",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--producers"));

    let file = cwd.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let out = run_bench(
        cwd.path(),
        &[
            "store",
            "--messages",
            "10",
            "--dir",
            file.to_str().unwrap(),
            "--no-report",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("error:"));
}
