//! SQL92 property filters with a real third-party client: the `sql92` binary
//! of `interop/rust-client/` (crates.io `rocketmq-client-rust` 1.0) sends 20
//! messages with user properties through the real name server and broker
//! (`enablePropertyFilter=true`), then push consumers subscribed with
//! `MessageSelector::by_sql` must each receive exactly the messages their
//! expression matches (`BETWEEN` over numbers sent as strings, `IS NULL` on a
//! missing property, `TAGS`, `IN`, a comparison over a missing property).
//!
//! The client crate lives outside the workspace (see `interop_rust_client.rs`):
//! the test finds the binary through `FERROMQ_RUST_CLIENT_SQL92_BIN` or under
//! `interop/rust-client/target/{debug,release}/sql92`, and skips with a
//! message when it is not there.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;

const TOPIC: &str = "RustClientSql92Topic";
const CLIENT_TIMEOUT: Duration = Duration::from_secs(400);
const BIN_NAME: &str = "sql92";
const CASES: usize = 5;

/// The driver binary (see [`common::interop_bin`]).
fn sql92_bin() -> Result<PathBuf, String> {
    interop_bin(BIN_NAME, "FERROMQ_RUST_CLIENT_SQL92_BIN")
}

#[test]
fn rocketmq_client_rust_sql92_push_consumers_get_exactly_the_matches() {
    let bin = match sql92_bin() {
        Ok(b) => b,
        Err(why) => {
            eprintln!("SKIPPED interop_rust_sql92: {why}");
            return;
        }
    };
    let (_tmp, dir) = temp_dir();
    let (_ns, ns_port) = start_namesrv(&dir);
    let props = broker_props(&dir.join("store"), "enablePropertyFilter=true\n");
    let (_broker, broker_port) = start_broker(&dir, &props, Some(ns_port));

    let lines = run_client(
        bin.to_str().expect("utf-8 path"),
        &[format!("127.0.0.1:{ns_port}"), TOPIC.to_string()],
        &dir.join("home"),
        CLIENT_TIMEOUT,
    );
    let want: Vec<String> = std::iter::once("sent=20".to_string())
        .chain((0..CASES).map(|k| format!("case{k}=ok")))
        .collect();
    let wants: Vec<&str> = want.iter().map(String::as_str).collect();
    let result = result_line(&lines, &wants);
    assert!(result.starts_with("RESULT ok "), "{result}");
    eprintln!("interop_rust_sql92: {result}");
    assert_eq!(total_max_offset(broker_port, TOPIC, 4), 20);
}
