//! How `ferromq-admin` prints: left-aligned tables and per-item listings.

use std::collections::BTreeMap;

use ferromq_engine::MessageExt;
use serde_json::Value;

use crate::client::num;

/// Rows of `haStatus` for one broker's runtime figures.
pub(crate) fn ha_rows(addr: &str, info: &BTreeMap<String, String>) -> Vec<Vec<String>> {
    let g = |k: &str| info.get(k).cloned().unwrap_or_else(|| "-".into());
    if info.contains_key("haMasterConnected") {
        let state = if g("haMasterConnected") == "true" {
            "following"
        } else {
            "not connected to"
        };
        return vec![vec![
            addr.to_string(),
            g("brokerRole"),
            format!("{state} {} (HA {})", g("masterAddr"), g("haMasterAddress")),
            g("commitLogMaxOffset"),
            "-".into(),
            "-".into(),
        ]];
    }
    let n: usize = g("haSlaveCount").parse().unwrap_or(0);
    if n == 0 {
        return vec![vec![
            addr.to_string(),
            g("brokerRole"),
            "no slave".into(),
            "-".into(),
            "-".into(),
            "-".into(),
        ]];
    }
    (0..n)
        .map(|i| {
            vec![
                addr.to_string(),
                g("brokerRole"),
                format!("slave {}", g(&format!("haSlave{i}Addr"))),
                g(&format!("haSlave{i}AckedOffset")),
                g(&format!("haSlave{i}LagBytes")),
                g(&format!("haSlave{i}LagMs")),
            ]
        })
        .collect()
}

/// Print rows as a left-aligned table.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut w: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < w.len() {
                w[i] = w[i].max(c.len());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let s: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{:<width$}", c, width = w[i]))
            .collect();
        println!("{}", s.join("  ").trim_end());
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

/// `1234` ms as `1.2 s`, `95000` as `1m35s`.
pub(crate) fn age(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        format!("{}m{:02}s", ms / 60_000, ms / 1000 % 60)
    } else {
        format!("{}h{:02}m", ms / 3_600_000, ms / 60_000 % 60)
    }
}

pub(crate) fn print_pending(addr: &str, v: &Value) {
    println!("============{addr}============");
    let groups = v["groups"].as_object().cloned().unwrap_or_default();
    if groups.is_empty() {
        println!("no pending transactions");
        return;
    }
    for (g, list) in groups {
        let list = list.as_array().cloned().unwrap_or_default();
        let oldest = list.iter().map(|p| num(&p["ageMs"])).max().unwrap_or(0);
        println!("{g}: {} pending, oldest {}", list.len(), age(oldest));
        let rows: Vec<Vec<String>> = list
            .iter()
            .map(|p| {
                vec![
                    p["msgId"].as_str().unwrap_or("-").to_string(),
                    p["realTopic"].as_str().unwrap_or("").to_string(),
                    num(&p["queueOffset"]).to_string(),
                    num(&p["checkTimes"]).to_string(),
                    age(num(&p["ageMs"])),
                ]
            })
            .collect();
        table(
            &["#MsgId", "#Topic", "#HalfOffset", "#Checks", "#Age"],
            &rows,
        );
    }
}

pub(crate) fn print_message(m: &MessageExt) {
    let props: Vec<String> = m
        .properties
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let rows = [
        ("OffsetID", m.msg_id()),
        ("Topic", m.topic.clone()),
        ("Tags", m.tags().unwrap_or("").to_string()),
        ("Keys", m.keys().join(" ")),
        ("Queue ID", m.queue_id.to_string()),
        ("Queue Offset", m.queue_offset.to_string()),
        ("CommitLog Offset", m.commit_log_offset.to_string()),
        ("Reconsume Times", m.reconsume_times.to_string()),
        ("Born Timestamp", m.born_timestamp_ms.to_string()),
        ("Store Timestamp", m.store_timestamp_ms.to_string()),
        ("Born Host", m.born_host.to_string()),
        ("Store Host", m.store_host.to_string()),
        ("System Flag", m.sys_flag.to_string()),
        ("Properties", format!("{{{}}}", props.join(", "))),
        ("Body Size", m.body.len().to_string()),
        (
            "Message Body",
            String::from_utf8_lossy(&m.body).into_owned(),
        ),
    ];
    for (k, v) in rows {
        println!("{k:<20}: {v}");
    }
}

#[cfg(test)]
mod tests {
    use super::age;

    #[test]
    fn ages_read_well() {
        assert_eq!(age(-5), "0.0 s");
        assert_eq!(age(1234), "1.2 s");
        assert_eq!(age(95_000), "1m35s");
        assert_eq!(age(7_380_000), "2h03m");
    }
}
