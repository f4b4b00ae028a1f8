//! `ferromq-bench recover --json` end to end on a tiny store: the writer child
//! is killed, the reopen is abnormal, and the JSON carries the figures.

mod common;

use common::{assert_success, bench};

#[test]
fn recover_json_small_store_full_variant() {
    let tmp = tempfile::tempdir().unwrap();
    let out = bench()
        .args([
            "recover",
            "--bytes",
            "4MiB",
            "--size",
            "512",
            "--file-size",
            "1MiB",
        ])
        .args(["--full", "--cached", "--json", "--dir"])
        .arg(tmp.path())
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    assert_success(&out);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["variant"], "full");
    // Both rates are over the bytes recovery walked: the whole log here.
    assert_eq!(v["measured_from"], 0, "{stdout}");
    assert_eq!(v["measured_bytes"], v["commitlog_bytes"], "{stdout}");
    assert!(v["basis"].as_str().unwrap().contains("recovery walked"));
    assert_eq!(v["abnormal"], true);
    for k in ["recover_mb_per_sec", "read_crc_mb_per_sec", "ratio"] {
        assert!(v[k].as_f64().unwrap() > 0.0, "{k} in {stdout}");
    }
    let cl = v["commitlog_bytes"].as_u64().unwrap();
    assert!(cl >= 4 << 20, "{stdout}");
    // Full variant: every record was validated and dispatched again.
    let scanned = v["bytes_scanned"].as_u64().unwrap();
    assert!(scanned * 100 >= cl * 99, "{stdout}");
    assert!(
        v["records_redispatched"].as_u64().unwrap() > 5000,
        "{stdout}"
    );
    // The store folder is removed afterwards.
    assert!(!tmp.path().join("recover-store").exists());
}
