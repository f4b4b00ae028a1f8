//! A slave's periodic copy of its master's configs (RocketMQ's `SlaveSynchronize`):
//! topics (GET_ALL_TOPIC_CONFIG), consumer offsets (GET_ALL_CONSUMER_OFFSET), delay
//! offsets (GET_ALL_DELAY_OFFSET) and subscription groups
//! (GET_ALL_SUBSCRIPTIONGROUP_CONFIG), 3 s after start and then every
//! `slaveSyncInterval` (10 s), from the master the name servers report.
//!
//! As in RocketMQ, topics and groups are replaced when the master's data version
//! differs; consumer offsets are merged entry by entry (`putAll`: the master's
//! `topic@group` entries win, the slave's other entries stay, so offsets committed
//! on the slave while the master is down are kept until the master knows the
//! group again); delay offsets are overwritten.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ferromq_engine::{BrokerRole, DataVersion, TopicConfig};
use serde_json::Value;
use tokio::sync::watch;

use super::Broker;
use crate::remoting::{json, request, response, RemotingClient, RemotingCommand};
use crate::util::now_ms;

/// Delay before the first copy (RocketMQ's 3 s).
const FIRST_SYNC_DELAY: Duration = Duration::from_secs(3);
/// Time limit of one request to the master.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// What the last copies did, for GET_BROKER_RUNTIME_INFO.
#[derive(Debug, Default)]
pub(super) struct SyncState {
    /// Time of the last round in which every copy succeeded, ms since the epoch (0: never).
    pub last_ok_ms: AtomicI64,
    /// Rounds with at least one failed copy.
    pub failed_rounds: AtomicU64,
}

/// Copy the master's configs until `stop` (a no-op on masters).
pub(super) async fn sync_loop(b: Arc<Broker>, mut stop: watch::Receiver<bool>) {
    // In controller mode any broker may become a slave: the loop runs and
    // copies whenever a master is named (none while this broker is master).
    if b.store.config().broker_role != BrokerRole::Slave && b.controller().is_none() {
        return;
    }
    let every = Duration::from_millis(b.cfg.slave_sync_interval_ms);
    let first = FIRST_SYNC_DELAY.min(every);
    tokio::select! {
        _ = tokio::time::sleep(first) => {}
        _ = stop.changed() => return,
    }
    let mut client: Option<RemotingClient> = None;
    let mut failing = false;
    loop {
        if *stop.borrow() {
            break;
        }
        let master = b.master_addr().filter(|m| m != &b.broker_addr);
        if let Some(m) = master {
            if client.as_ref().is_none_or(|c| c.addr() != m) {
                if let Some(old) = client.take() {
                    old.close().await;
                }
                client = Some(b.outgoing_client(m.clone()));
            }
            if let Some(c) = &client {
                // Shutdown does not wait for a master that does not answer.
                let round = tokio::select! {
                    r = sync_all(&b, c) => r,
                    _ = stop.changed() => break,
                };
                match round {
                    Ok(()) => {
                        b.slave_sync.last_ok_ms.store(now_ms(), Ordering::Release);
                        if failing {
                            tracing::info!(master = %m, "copying configs from the master works again");
                        }
                        failing = false;
                    }
                    Err(e) => {
                        b.slave_sync.failed_rounds.fetch_add(1, Ordering::Relaxed);
                        if !failing {
                            tracing::warn!(master = %m, error = %e, "cannot copy configs from the master");
                        }
                        failing = true;
                    }
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => break,
        }
    }
    if let Some(c) = client {
        c.close().await;
    }
}

async fn call(c: &RemotingClient, code: i32, what: &str) -> Result<String, String> {
    let r = c
        .invoke(RemotingCommand::request(code), CALL_TIMEOUT)
        .await
        .map_err(|e| format!("{what}: {e}"))?;
    if r.code != response::SUCCESS {
        return Err(format!("{what}: code {} {:?}", r.code, r.remark));
    }
    String::from_utf8(r.body).map_err(|_| format!("{what}: body is not UTF-8"))
}

/// One round: every copy is tried; the first error is returned.
async fn sync_all(b: &Arc<Broker>, c: &RemotingClient) -> Result<(), String> {
    let mut first_err = None;
    for (code, what) in [
        (request::GET_ALL_TOPIC_CONFIG, "topic config"),
        (request::GET_ALL_CONSUMER_OFFSET, "consumer offsets"),
        (request::GET_ALL_DELAY_OFFSET, "delay offsets"),
        (
            request::GET_ALL_SUBSCRIPTIONGROUP_CONFIG,
            "subscription groups",
        ),
    ] {
        let r = match call(c, code, what).await {
            Ok(text) => {
                let b2 = b.clone();
                tokio::task::spawn_blocking(move || apply(&b2, code, &text))
                    .await
                    .unwrap_or_else(|e| Err(e.to_string()))
                    .map_err(|e| format!("{what}: {e}"))
            }
            Err(e) => Err(e),
        };
        if let Err(e) = r {
            first_err.get_or_insert(e);
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// Apply one answer of the master (blocking: writes config files).
fn apply(b: &Broker, code: i32, text: &str) -> Result<(), String> {
    match code {
        request::GET_ALL_TOPIC_CONFIG => {
            let (topics, version) = parse_topic_wrapper(text)?;
            if version != b.store.topic_table_version() {
                // Names are data, never paths: replace_topics drops (and logs)
                // topics whose names break the rules (a stranger can pose as
                // the master).
                let n = topics.len();
                b.store
                    .replace_topics(topics, version)
                    .map_err(|e| e.to_string())?;
                tracing::info!(topics = n, "updated slave topic config from master");
            }
        }
        request::GET_ALL_CONSUMER_OFFSET => {
            b.offsets.merge_from_json(text)?;
            b.offsets.persist().map_err(|e| e.to_string())?;
            tracing::debug!("updated slave consumer offsets from master");
        }
        request::GET_ALL_DELAY_OFFSET => {
            let offsets = parse_delay_offsets(text)?;
            b.store
                .replace_delay_offsets(offsets)
                .map_err(|e| e.to_string())?;
        }
        request::GET_ALL_SUBSCRIPTIONGROUP_CONFIG => {
            let changed = b.groups.replace_from_json(text)?;
            if changed {
                tracing::info!("updated slave subscription groups from master");
            }
        }
        _ => {}
    }
    Ok(())
}

/// `{"topicConfigTable":{name:{...}},"dataVersion":{...}}` (TopicConfigSerializeWrapper).
///
/// # Errors
/// A message naming what is missing or malformed.
pub fn parse_topic_wrapper(text: &str) -> Result<(Vec<TopicConfig>, DataVersion), String> {
    let v = json::parse_lenient(text).map_err(|e| e.to_string())?;
    let Value::Object(table) = &v["topicConfigTable"] else {
        return Err("no topicConfigTable".into());
    };
    let mut topics = Vec::with_capacity(table.len());
    for (name, tc) in table {
        let mut tc: TopicConfig =
            serde_json::from_value(tc.clone()).map_err(|e| format!("topic {name}: {e}"))?;
        if tc.topic_name.is_empty() {
            tc.topic_name = name.clone();
        }
        topics.push(tc);
    }
    let version: DataVersion = serde_json::from_value(v["dataVersion"].clone()).unwrap_or_default();
    Ok((topics, version))
}

/// `{"offsetTable":{1:5,2:7}}` (fastjson's bare integer keys accepted).
///
/// # Errors
/// A message when the text is not such a table.
pub fn parse_delay_offsets(text: &str) -> Result<BTreeMap<u32, u64>, String> {
    let v = json::parse_lenient(text).map_err(|e| e.to_string())?;
    let Value::Object(t) = &v["offsetTable"] else {
        return Err("no offsetTable".into());
    };
    t.iter()
        .map(|(k, off)| {
            let level = k
                .trim()
                .parse::<u32>()
                .map_err(|_| format!("bad level {k}"))?;
            let off = off.as_u64().ok_or_else(|| format!("bad offset {off}"))?;
            Ok((level, off))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_java_written_wrappers() {
        let (t, v) = parse_topic_wrapper(
            r#"{"dataVersion":{"counter":7,"timestamp":123},"topicConfigTable":{"T":{"order":false,"perm":6,"readQueueNums":4,"topicFilterType":"SINGLE_TAG","topicName":"T","topicSysFlag":0,"writeQueueNums":4}}}"#,
        )
        .unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].read_queue_nums, 4);
        assert_eq!((v.counter, v.timestamp), (7, 123));
        assert!(parse_topic_wrapper("{}").is_err());
        assert!(parse_topic_wrapper(r#"{"topicConfigTable":{"T":{"perm":"x"}}}"#).is_err());
        let d = parse_delay_offsets(r#"{"offsetTable":{1:5,2:7}}"#).unwrap();
        assert_eq!(d.get(&2), Some(&7));
        assert!(parse_delay_offsets(r#"{"offsetTable":{"x":5}}"#).is_err());
        assert!(parse_delay_offsets("nope").is_err());
    }
}
