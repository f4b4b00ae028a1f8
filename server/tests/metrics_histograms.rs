//! RocketMQ 5's histograms on `/metrics` (`metricsExporterType=PROM`):
//! `rocketmq_message_size` counts each send under its topic and message
//! type in the bucket of its stored size, `rocketmq_rpc_latency` each
//! request under its request and response code (and whether the pull was
//! held); a deleted topic's sizes go. A broker without metrics records
//! neither (checked in process: it has no histograms at all).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::scrape::{get, sample};
use common::{broker_props, temp_dir, wait_for, Client};
use ferromq_engine::config::Properties;
use ferromq_engine::{MessageStore, StoreConfig};
use ferromq_server::broker::metrics::BrokerCollector;
use ferromq_server::broker::{Broker, BrokerConfig};
use ferromq_server::remoting::{request, response, RemotingCommand};

const TOPIC: &str = "HistTopic";
const OTHER: &str = "HistOther";

/// Body sizes sent to [`TOPIC`], each far from a bucket bound once the
/// stored record's header (about 100-200 bytes here) is added.
const SIZES: [usize; 8] = [
    100,
    100,
    100,
    2000,
    2000,
    100 * 1024,
    100 * 1024,
    600 * 1024,
];

/// The cumulative count of `SIZES` per RocketMQ bucket bound (`le`).
const BUCKETS: [(&str, f64); 7] = [
    ("1024.0", 3.0),
    ("4096.0", 5.0),
    ("524288.0", 7.0),
    ("1048576.0", 8.0),
    ("2097152.0", 8.0),
    ("4194304.0", 8.0),
    ("+Inf", 8.0),
];

const SEND_V2_OK: [&str; 4] = [
    "protocol_type=\"remoting\"",
    "request_code=\"send_message_v2\"",
    "response_code=\"success\"",
    "is_long_polling=\"false\"",
];

fn send(c: &mut Client, topic: &str, size: usize, props: &[(&str, &str)]) {
    let r = c.send_v2_props(topic, 0, &vec![b'x'; size], props);
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
}

#[test]
fn sizes_and_latencies_are_bucketed_as_rocketmq_5_does() {
    let (_d, dir) = temp_dir();
    let (_broker, port, metrics) = common::scrape::start_broker_with_metrics(&dir);

    let mut c = Client::connect(port);
    for size in SIZES {
        send(&mut c, TOPIC, size, &[("TAGS", "t")]);
    }
    send(&mut c, OTHER, 10, &[("__SHARDINGKEY", "k")]);
    send(&mut c, OTHER, 10, &[("DELAY", "1")]);
    send(&mut c, OTHER, 10, &[("DELAY", "1")]);
    // A pull past the end of the queue, held (long polling) for 300 ms:
    // once the queue shows all that was sent.
    let end = SIZES.len() as i64;
    wait_for(Duration::from_secs(10), || {
        let r = c.invoke(Client::offset_req(request::GET_MAX_OFFSET, TOPIC, 0));
        (r.ext_fields.opt_i64("offset").ok().flatten() == Some(end)).then_some(())
    })
    .expect("the sends are dispatched");
    let r = c.invoke(Client::pull_req(
        "HistGroup",
        TOPIC,
        0,
        end as u64,
        1,
        0x2 | 0x4,
        300,
        "*",
    ));
    assert_eq!(r.code, response::PULL_NOT_FOUND, "{:?}", r.remark);

    // The latency is recorded after the answer is handed over: wait for it.
    let sends = (SIZES.len() + 3) as f64;
    let text = wait_for(Duration::from_secs(10), || {
        let (status, body) = get(&metrics, "/metrics");
        assert!(status.contains("200"), "{status}");
        (sample(&body, "rocketmq_rpc_latency_count", &SEND_V2_OK) >= Some(sends)).then_some(body)
    })
    .expect("every send's latency is recorded");
    assert!(
        text.contains("# TYPE rocketmq_message_size histogram"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE rocketmq_rpc_latency histogram"),
        "{text}"
    );

    let normal = [
        "topic=\"HistTopic\"",
        "message_type=\"normal\"",
        "is_system=\"false\"",
        "cluster=\"TestCluster\"",
        "node_type=\"broker\"",
        "node_id=\"broker-t:0\"",
    ];
    assert_eq!(
        sample(&text, "rocketmq_message_size_count", &normal),
        Some(SIZES.len() as f64),
        "{text}"
    );
    for (le, want) in BUCKETS {
        let mut labels = normal.to_vec();
        let le = format!("le=\"{le}\"");
        labels.push(&le);
        assert_eq!(
            sample(&text, "rocketmq_message_size_bucket", &labels),
            Some(want),
            "{le}: {text}"
        );
    }
    // The sum is the stored bytes: the bodies and each record's header.
    let sum = sample(&text, "rocketmq_message_size_sum", &normal).unwrap();
    let bodies: usize = SIZES.iter().sum();
    assert!(
        sum > bodies as f64 && sum < (bodies + SIZES.len() * 512) as f64,
        "{sum}"
    );
    let other = |kind: &str| {
        sample(
            &text,
            "rocketmq_message_size_count",
            &["topic=\"HistOther\"", &format!("message_type=\"{kind}\"")],
        )
    };
    assert_eq!(
        (other("fifo"), other("delay"), other("normal")),
        (Some(1.0), Some(2.0), None)
    );

    // Every send took less than the last bound; the held pull at least its
    // 300 ms, and it is labelled as held.
    assert_eq!(
        sample(
            &text,
            "rocketmq_rpc_latency_bucket",
            &[&SEND_V2_OK[..], &["le=\"3000.0\""]].concat()
        ),
        sample(&text, "rocketmq_rpc_latency_count", &SEND_V2_OK),
    );
    let held = [
        "request_code=\"pull_message\"",
        "response_code=\"pull_not_found\"",
        "is_long_polling=\"true\"",
    ];
    assert_eq!(
        sample(&text, "rocketmq_rpc_latency_count", &held),
        Some(1.0),
        "{text}"
    );
    let fast = [&held[..], &["le=\"100.0\""]].concat();
    assert_eq!(
        sample(&text, "rocketmq_rpc_latency_bucket", &fast),
        Some(0.0)
    );
    assert!(sample(&text, "rocketmq_rpc_latency_sum", &held).unwrap() >= 290.0);

    // A deleted topic's sizes go.
    let r = c.invoke(
        RemotingCommand::request(ferromq_server::broker::ops_mut::code::DELETE_TOPIC_IN_BROKER)
            .with_ext("topic", OTHER),
    );
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let (_, body) = get(&metrics, "/metrics");
    assert_eq!(
        sample(
            &body,
            "rocketmq_message_size_count",
            &["topic=\"HistOther\""]
        ),
        None,
        "{body}"
    );
    assert_eq!(
        sample(&body, "rocketmq_message_size_count", &normal),
        Some(SIZES.len() as f64)
    );
}

/// A broker in this process on 127.0.0.1 (no name server), served until
/// `stop` turns true or the runtime is dropped.
fn in_process_broker(
    dir: &std::path::Path,
) -> (
    tokio::runtime::Runtime,
    Arc<Broker>,
    u16,
    tokio::sync::watch::Sender<bool>,
) {
    let props = Properties::parse(&broker_props(&dir.join("store"), ""));
    let (store_cfg, _) = StoreConfig::from_properties(&props).unwrap();
    let cfg = BrokerConfig::from_properties(&props, &store_cfg).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let store = Arc::new(MessageStore::open(store_cfg).unwrap());
    let b = Broker::new(cfg, store, format!("127.0.0.1:{port}"), None).unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    rt.spawn(ferromq_server::broker::run(
        b.clone(),
        listener,
        None,
        None,
        stop_rx,
    ));
    (rt, b, port, stop_tx)
}

#[test]
fn a_broker_without_metrics_records_nothing() {
    let (_d, dir) = temp_dir();
    let (rt, b, port, stop) = in_process_broker(&dir);
    let mut c = Client::connect(port);
    for _ in 0..5 {
        send(&mut c, TOPIC, 100, &[]);
    }
    assert!(
        b.histograms().is_none(),
        "metrics off: no histograms, nothing recorded"
    );
    // The collector (metrics on) turns recording on from then on.
    let registry = ferromq_server::metrics::registry_of(BrokerCollector::new(&b));
    for _ in 0..2 {
        send(&mut c, TOPIC, 100, &[]);
    }
    let text = wait_for(Duration::from_secs(10), || {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        (sample(&text, "rocketmq_rpc_latency_count", &SEND_V2_OK) == Some(2.0)).then_some(text)
    })
    .expect("the sends after the collector are timed");
    assert_eq!(
        sample(
            &text,
            "rocketmq_message_size_count",
            &["topic=\"HistTopic\""]
        ),
        Some(2.0),
        "only the sends after metrics came on: {text}"
    );
    drop(c);
    let _ = stop.send(true);
    drop(rt);
}
