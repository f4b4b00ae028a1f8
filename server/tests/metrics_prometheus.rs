//! Prometheus metrics (`metricsExporterType=PROM`): the broker's `/metrics`
//! counts the messages sent and the consumer lag; Debian's `prometheus`
//! server, started here on loopback and scraping the broker every second,
//! finds the same figures through its HTTP API. Without the `prometheus`
//! binary that half skips, saying so (`.ci/run` installs it).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::scrape::{get, metrics_addr, sample};
use common::{broker_props, spawn_to, temp_dir, wait_for, Client};
use ferromq_server::remoting::{request, response};

const TOPIC: &str = "MetricsTopic";
const GROUP: &str = "MetricsGroup";
const SENT: usize = 7;
const COMMITTED: i64 = 3;

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'_' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The value Prometheus at `prom` has for the instant query `q`.
fn prom_value(prom: &str, q: &str) -> Option<f64> {
    let (status, body) = get(prom, &format!("/api/v1/query?query={}", percent_encode(q)));
    if !status.contains("200") {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

#[test]
fn the_broker_exports_message_counts_and_lag_and_prometheus_scrapes_them() {
    let (_d, dir) = temp_dir();
    let (_broker, port, metrics) = common::scrape::start_broker_with_metrics(&dir);

    let mut c = Client::connect(port);
    for i in 0..SENT {
        let r = c.send_v2(TOPIC, 0, format!("m{i}").as_bytes(), None, None);
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    }
    // The consumer pulls once (what it gets depends on the dispatch), then
    // commits.
    let r = c.pull(GROUP, TOPIC, 0, 0, 1);
    assert!(
        r.code == response::SUCCESS || r.code == response::PULL_NOT_FOUND,
        "{:?}",
        r.remark
    );
    let r = c.invoke(
        Client::offset_req(request::UPDATE_CONSUMER_OFFSET, TOPIC, 0)
            .with_ext("consumerGroup", GROUP)
            .with_ext("commitOffset", COMMITTED),
    );
    assert_eq!(r.code, response::SUCCESS);

    let group_labels = ["topic=\"MetricsTopic\"", "consumer_group=\"MetricsGroup\""];
    let lag = (SENT as i64 - COMMITTED) as f64;
    let text = wait_for(Duration::from_secs(10), || {
        let (status, body) = get(&metrics, "/metrics");
        assert!(status.contains("200"), "{status}");
        (sample(
            &body,
            "rocketmq_messages_in_total",
            &["topic=\"MetricsTopic\""],
        ) == Some(SENT as f64)
            && sample(&body, "rocketmq_consumer_lag_messages", &group_labels) == Some(lag))
        .then_some(body)
    })
    .expect("the counters reach the sent and unconsumed counts");
    assert!(text.contains("node_type=\"broker\""), "{text}");
    assert!(
        text.contains("# TYPE rocketmq_messages_in counter"),
        "{text}"
    );
    assert_eq!(
        sample(&text, "rocketmq_topic_number", &[]).map(|v| v >= 1.0),
        Some(true)
    );
    assert!(
        sample(&text, "rocketmq_storage_size", &[]).unwrap() > 0.0,
        "{text}"
    );
    // Every metric the shipped Grafana dashboard plots is exported.
    let dash = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/grafana/ferromq-broker.json"
    ))
    .unwrap();
    let mut names: Vec<&str> = dash
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("rocketmq_") || w.starts_with("ferromq_"))
        .collect();
    names.sort_unstable();
    names.dedup();
    assert!(names.len() >= 10, "{names:?}");
    for n in names {
        // A counter's samples end in _total, a histogram's in _bucket,
        // _count and _sum; the TYPE line names the family.
        let family = ["_total", "_bucket", "_count", "_sum"]
            .iter()
            .find_map(|suffix| n.strip_suffix(suffix))
            .unwrap_or(n);
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "{n} not exported: {text}"
        );
    }
    // Anything but GET /metrics is refused; the endpoint still answers.
    assert!(get(&metrics, "/nothing").0.contains("404"));
    {
        let mut s = TcpStream::connect(&metrics).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"POST /metrics HTTP/1.0\r\n\r\n").unwrap();
        let mut t = String::new();
        let _ = s.read_to_string(&mut t);
        assert!(t.starts_with("HTTP/1.1 405"), "{t}");
    }
    assert!(get(&metrics, "/metrics").0.contains("200"));

    // Debian's Prometheus scrapes it.
    if Command::new("prometheus")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipping the Prometheus half: the prometheus binary is not installed (apt-get install prometheus)");
        return;
    }
    let prom_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let prom = format!("127.0.0.1:{prom_port}");
    let cfg = dir.join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  \
             - job_name: ferromq\n    static_configs:\n      - targets: ['{metrics}']\n"
        ),
    )
    .unwrap();
    let mut pcmd = Command::new("prometheus");
    pcmd.arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address={prom}"))
        .stdin(Stdio::null());
    let _prometheus = spawn_to("prometheus", pcmd, Stdio::null(), "warn");
    let started = Instant::now();
    let found = wait_for(Duration::from_secs(60), || {
        let sent = prom_value(
            &prom,
            "rocketmq_messages_in_total{job=\"ferromq\",topic=\"MetricsTopic\"}",
        )?;
        let lag = prom_value(
            &prom,
            "rocketmq_consumer_lag_messages{topic=\"MetricsTopic\",consumer_group=\"MetricsGroup\"}",
        )?;
        Some((sent, lag))
    });
    assert_eq!(
        found,
        Some((SENT as f64, lag)),
        "Prometheus did not find the figures within 60 s"
    );
    eprintln!("Prometheus had the figures after {:?}", started.elapsed());
}

#[test]
fn the_name_server_exports_its_live_brokers_and_topics() {
    let (_d, dir) = temp_dir();
    let (mut ns, ns_port) = common::hostile::start_namesrv_with(
        &dir.join("ns"),
        "metricsExporterType=PROM\nmetricsPromExporterHost=127.0.0.1\nmetricsPromExporterPort=0\n",
        &dir.join("ns.log"),
    );
    let metrics = metrics_addr(&mut ns);
    let bdir = dir.join("broker");
    let (_broker, _) =
        common::start_broker(&bdir, &broker_props(&bdir.join("store"), ""), Some(ns_port));
    let text = wait_for(Duration::from_secs(20), || {
        let (_, body) = get(&metrics, "/metrics");
        (sample(
            &body,
            "ferromq_namesrv_live_brokers",
            &["node_type=\"namesrv\""],
        ) == Some(1.0))
        .then_some(body)
    })
    .expect("the registered broker is counted");
    assert!(
        sample(&text, "rocketmq_topic_number", &[]).unwrap() >= 1.0,
        "{text}"
    );
}
