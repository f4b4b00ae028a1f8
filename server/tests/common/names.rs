//! Helpers for the name-validation and config-persistence tests: heartbeats
//! naming many groups, config files of a broker's store, and starting another
//! broker binary (for measuring an older build the same way).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ferromq_server::remoting::{request, RemotingCommand};

use super::{port_of, spawn, Proc};

/// The broker binary to run: `FERROMQ_BROKER_BIN` when set (an older build to
/// compare with), else this build's.
pub fn broker_bin() -> PathBuf {
    std::env::var_os("FERROMQ_BROKER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_ferromq-broker")))
}

/// Start the broker binary `bin` with `props` (no name server).
pub fn start_broker_bin(bin: &Path, dir: &Path, props: &str) -> (Proc, u16) {
    let mut p = spawn("broker", super::broker_command(bin, dir, props));
    let line = p.wait_line("listening on", Duration::from_secs(30));
    let port = port_of(&line);
    (p, port)
}

/// A HEART_BEAT from `client_id` naming `consumer_groups` (each subscribing
/// to `topic`) and `producer_groups`.
pub fn heartbeat_req(
    client_id: &str,
    consumer_groups: &[String],
    producer_groups: &[String],
    topic: &str,
) -> RemotingCommand {
    let consumers: Vec<serde_json::Value> = consumer_groups
        .iter()
        .map(|g| {
            serde_json::json!({
                "groupName": g,
                "consumeType": "CONSUME_PASSIVELY",
                "messageModel": "CLUSTERING",
                "consumeFromWhere": "CONSUME_FROM_LAST_OFFSET",
                "unitMode": false,
                "subscriptionDataSet": [{
                    "topic": topic, "subString": "*", "classFilterMode": false,
                    "tagsSet": [], "codeSet": [], "subVersion": 1
                }]
            })
        })
        .collect();
    let producers: Vec<serde_json::Value> = producer_groups
        .iter()
        .map(|g| serde_json::json!({ "groupName": g }))
        .collect();
    let body = serde_json::json!({
        "clientID": client_id,
        "consumerDataSet": consumers,
        "producerDataSet": producers,
    });
    RemotingCommand::request(request::HEART_BEAT).with_body(body.to_string().into_bytes())
}

/// `<store>/config/<name>`.
pub fn config_file(store: &Path, name: &str) -> PathBuf {
    store.join("config").join(name)
}

/// The text of a config file ("" when missing).
pub fn read_config(store: &Path, name: &str) -> String {
    std::fs::read_to_string(config_file(store, name)).unwrap_or_default()
}

/// Size of a config file in bytes (0 when missing).
pub fn config_size(store: &Path, name: &str) -> u64 {
    std::fs::metadata(config_file(store, name))
        .map(|m| m.len())
        .unwrap_or(0)
}

/// Poll a config file every 20 ms until `ok` holds for its text or `timeout`
/// passes; returns how long it took.
pub fn wait_config(
    store: &Path,
    name: &str,
    timeout: Duration,
    ok: impl Fn(&str) -> bool,
) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if ok(&read_config(store, name)) {
            return Some(start.elapsed());
        }
        if start.elapsed() >= timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Topic names in a `topics.json` text.
pub fn topic_names(topics_json: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(topics_json).unwrap_or_default();
    v["topicConfigTable"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// Group names in a `subscriptionGroup.json` text.
pub fn group_names(groups_json: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(groups_json).unwrap_or_default();
    v["subscriptionGroupTable"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// Topic names a broker reports (GET_ALL_TOPIC_CONFIG).
pub fn broker_topics(c: &mut super::Client) -> Vec<String> {
    let r = c.invoke(RemotingCommand::request(request::GET_ALL_TOPIC_CONFIG));
    assert_eq!(r.code, 0, "{:?}", r.remark);
    topic_names(&String::from_utf8_lossy(&r.body))
}
