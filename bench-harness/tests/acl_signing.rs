//! `--access-key/--secret-key`: the harness signs its sends and the topic
//! creation as RocketMQ clients sign them, so it can measure a broker with
//! plain ACL on. `compare` starts one ferromq broker with `aclEnable=true`
//! and one without; the signed run succeeds on both (the plain broker
//! ignores the signature), and an unsigned run is refused by the ACL broker.

mod common;

use common::{bench, quiet_report, report_dirs, server_bins_or_skip};

const PLAIN_ACL: &str = "\
accounts:
  - accessKey: BenchAdmin
    secretKey: bench-secret
    admin: true
";

#[test]
fn signed_sends_pass_an_acl_broker_and_unsigned_ones_do_not() {
    let Some(bins) = server_bins_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let acl = tmp.path().join("plain_acl.yml");
    std::fs::write(&acl, PLAIN_ACL).unwrap();
    let on = tmp.path().join("on.properties");
    let off = tmp.path().join("off.properties");
    std::fs::write(
        &on,
        format!(
            "brokerName=on\naclEnable=true\naclFilePath={}\n",
            acl.display()
        ),
    )
    .unwrap();
    std::fs::write(&off, "brokerName=off\n").unwrap();
    let compare = |extra: &[&str], name: &str| {
        let mut c = bench();
        c.arg("compare")
            .arg("--a-props")
            .arg(&on)
            .arg("--b-props")
            .arg(&off)
            .args(["--a-name", "acl-on", "--b-name", "acl-off"])
            .args(["--repeat", "1", "--seconds", "1", "--warmup-seconds", "0.2"])
            .args(["--producers", "2", "--inflight", "4", "--small-files"])
            .args(["--name", name, "--quiet"])
            .args(extra);
        report_dirs(&mut c, tmp.path(), &bins);
        c
    };
    let (dir, v, _) = quiet_report(&mut compare(
        &["--access-key", "BenchAdmin", "--secret-key", "bench-secret"],
        "signed",
    ));
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for r in runs {
        let f = &r["figures"];
        assert_eq!(f["errors"], 0, "{r}");
        assert!(f["messages"].as_u64().unwrap() > 0, "{r}");
    }
    assert_eq!(v["points"][0]["a"]["runs"], 1);
    let command = v["command"].as_str().unwrap();
    assert!(
        command.contains("--secret-key '***'") && !command.contains("bench-secret"),
        "{command}"
    );
    for f in std::fs::read_dir(&dir).unwrap() {
        let bytes = std::fs::read(f.unwrap().path()).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains("bench-secret"),
            "the secret is in a report file"
        );
    }
    // Unsigned: the ACL broker refuses the topic creation, so A's run fails
    // (reported, not counted) while B's runs.
    let (_, v, md) = quiet_report(&mut compare(&[], "unsigned"));
    let runs = v["runs"].as_array().unwrap();
    let targets: Vec<&str> = runs.iter().map(|r| r["target"].as_str().unwrap()).collect();
    assert_eq!(targets, vec!["b"], "only the broker without ACL ran: {md}");
}
