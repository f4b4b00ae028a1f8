//! The consumer-side gauges of the broker's Prometheus endpoint against the
//! real binary: `rocketmq_consumer_lag_messages`,
//! `rocketmq_consumer_inflight_messages` (pulled but not committed) and
//! `rocketmq_consumer_lag_latency` (age of the oldest unconsumed message).

mod common;

use std::time::Duration;

use common::scrape::{get, sample};
use common::{temp_dir, total_max_offset, wait_for, Client};
use ferromq_server::remoting::{request, response};

const TOPIC: &str = "LagTopic";
const GROUP: &str = "LagGroup";

#[test]
fn lag_inflight_and_lag_latency_follow_pulls_and_commits() {
    let (_d, dir) = temp_dir();
    let (_broker, port, metrics) = common::scrape::start_broker_with_metrics(&dir);

    let mut c = Client::connect(port);
    for i in 0..10 {
        let r = c.send_v2(TOPIC, 0, format!("m{i}").as_bytes(), None, None);
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    }
    wait_for(Duration::from_secs(10), || {
        (total_max_offset(port, TOPIC, 1) == 10).then_some(())
    })
    .expect("dispatched");
    // The group pulls 6 and commits 2: 8 behind, 4 in flight.
    let r = c.pull(GROUP, TOPIC, 0, 0, 6);
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    assert_eq!(common::records(&r.body).len(), 6);
    let r = c.invoke(
        Client::offset_req(request::UPDATE_CONSUMER_OFFSET, TOPIC, 0)
            .with_ext("consumerGroup", GROUP)
            .with_ext("commitOffset", 2),
    );
    assert_eq!(r.code, response::SUCCESS);
    std::thread::sleep(Duration::from_millis(20));

    let labels = [
        &*format!("topic=\"{TOPIC}\""),
        &*format!("consumer_group=\"{GROUP}\""),
    ];
    let (_, text) = get(&metrics, "/metrics");
    assert_eq!(
        sample(&text, "rocketmq_consumer_lag_messages", &labels),
        Some(8.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "rocketmq_consumer_inflight_messages", &labels),
        Some(4.0),
        "{text}"
    );
    let waiting = sample(&text, "rocketmq_consumer_lag_latency", &labels).expect("lag latency");
    assert!((20.0..60_000.0).contains(&waiting), "{waiting}");

    // All consumed and committed: nothing behind, in flight or waiting.
    let r = c.pull(GROUP, TOPIC, 0, 6, 32);
    assert_eq!(common::records(&r.body).len(), 4);
    let r = c.invoke(
        Client::offset_req(request::UPDATE_CONSUMER_OFFSET, TOPIC, 0)
            .with_ext("consumerGroup", GROUP)
            .with_ext("commitOffset", 10),
    );
    assert_eq!(r.code, response::SUCCESS);
    let (_, text) = get(&metrics, "/metrics");
    for name in [
        "rocketmq_consumer_lag_messages",
        "rocketmq_consumer_inflight_messages",
        "rocketmq_consumer_lag_latency",
    ] {
        assert_eq!(sample(&text, name, &labels), Some(0.0), "{name}: {text}");
    }
}
