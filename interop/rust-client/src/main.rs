//! Interop driver for ferromq: the crates.io client `rocketmq-client-rust` 1.0
//! sends N messages through a name server, a push consumer receives them and a
//! lite pull consumer reads them again; every body and key is checked.
//!
//! ```text
//! ferromq-interop-rust-client <namesrv host:port> <topic> [count]
//! ```
//!
//! Prints one `RESULT ...` line (`sent=`, `pushed=`, `pulled=`, each the number
//! of distinct messages whose key and body matched what was sent) and exits 0
//! only when all three equal `count`. Every step is bounded in time; a step that
//! does not finish in time prints why and the process exits 1.
//! `server/tests/interop_rust_client.rs` runs it against ferromq.
//!
//! With `FERROMQ_RUST_CLIENT_SERVER_REBALANCE=1` the push consumer leaves
//! rebalancing to the broker (`client_rebalance(false)`: it asks
//! QUERY_ASSIGNMENT for its queues, as RocketMQ 5 clients can).
//!
//! With `FERROMQ_RUST_CLIENT_HOLD_SECS=S` the push consumer, once it has every
//! message, prints `HOLDING <group>` and stays up S seconds more (at most 300)
//! before it shuts down, so a test can ask the broker about it meanwhile
//! (consumer running info, consumer status, consume message directly).

use ferromq_interop_rust_client::{bounded, send_retrying, LIFECYCLE_TIMEOUT};
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rocketmq_client_rust::prelude::{
    DefaultLitePullConsumer, DefaultMQProducer, DefaultMQPushConsumer,
};
use rocketmq_client_rust::{
    ClientRuntime, ConsumeConcurrentlyContext, ConsumeConcurrentlyStatus, MQPushConsumer,
    MessageListenerConcurrently,
};
use rocketmq_model::common::consumer::consume_from_where::ConsumeFromWhere;
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::message_single::Message;

/// Messages sent when no count is given.
const DEFAULT_COUNT: usize = 100;
/// Bound on receiving every message, for each consumer.
const CONSUME_TIMEOUT: Duration = Duration::from_secs(90);

/// How long the broker may hold one of the lite pull consumer's pulls (ms).
const LITE_PULL_SUSPEND_MS: u64 = 2_000;

const PRODUCER_GROUP: &str = "rs_interop_producer";
const PUSH_GROUP: &str = "rs_interop_push";
const PULL_GROUP: &str = "rs_interop_pull";

/// The key of message `i`.
fn key_of(i: usize) -> String {
    format!("rs-key-{i}")
}

/// The body of message `i`.
fn body_of(i: usize) -> String {
    format!("rs-body-{i}: ferromq interop from rocketmq-client-rust")
}

/// What consumers saw: key -> number of deliveries whose body matched the key's
/// body, plus the count of deliveries that did not match (wrong body, no key).
#[derive(Default)]
struct Seen {
    good: BTreeMap<String, usize>,
    bad: Vec<String>,
}

impl Seen {
    /// Record one delivered message, checking its body against its key.
    fn record(&mut self, m: &MessageExt) {
        let keys = m.keys().unwrap_or_default();
        let body = m
            .body()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let expected = keys
            .first()
            .and_then(|k| k.strip_prefix("rs-key-"))
            .and_then(|n| n.parse::<usize>().ok())
            .map(body_of);
        match (keys.first(), expected) {
            (Some(k), Some(want)) if want == body => *self.good.entry(k.clone()).or_default() += 1,
            _ => self
                .bad
                .push(format!("keys={keys:?} body={body:?} msgId={}", m.msg_id())),
        }
    }

    /// Distinct keys received with the right body.
    fn distinct(&self) -> usize {
        self.good.len()
    }
}

/// Send `count` messages (key and body from the index, tag `TagA`), retrying a
/// failing send for up to [`ferromq_interop_rust_client::SEND_RETRY_BUDGET`]. Returns how many the broker
/// answered SEND_OK.
async fn produce(
    rt: &Arc<ClientRuntime>,
    namesrv: &str,
    topic: &str,
    count: usize,
) -> Result<usize, String> {
    let mut producer = DefaultMQProducer::builder(rt.clone())
        .producer_group(PRODUCER_GROUP.to_string())
        .name_server_addr(namesrv.to_string())
        .build();
    bounded("producer start", LIFECYCLE_TIMEOUT, producer.start())
        .await?
        .map_err(|e| format!("producer start: {e}"))?;
    let mut ok = 0;
    for i in 0..count {
        send_retrying(&mut producer, &format!("send of message {i}"), || {
            Ok(Message::builder()
                .topic(topic)
                .tags("TagA")
                .key(key_of(i))
                .body_slice(body_of(i).as_bytes())
                .build_unchecked())
        })
        .await?;
        ok += 1;
    }
    bounded("producer shutdown", LIFECYCLE_TIMEOUT, producer.shutdown()).await?;
    Ok(ok)
}

/// The push consumer's listener: records every delivery.
struct Recorder(Arc<Mutex<Seen>>);

impl MessageListenerConcurrently for Recorder {
    fn consume_message(
        &self,
        msgs: &[&MessageExt],
        _context: &ConsumeConcurrentlyContext,
    ) -> rocketmq_client_rust::ClientResult<ConsumeConcurrentlyStatus> {
        let mut seen = self.0.lock().expect("seen lock");
        for m in msgs {
            seen.record(m);
        }
        Ok(ConsumeConcurrentlyStatus::ConsumeSuccess)
    }
}

/// Wait until `seen` holds `count` distinct messages or `limit` passes.
async fn wait_for_all(seen: &Mutex<Seen>, count: usize, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if seen.lock().expect("seen lock").distinct() >= count {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// A push consumer (clustering, from the first offset) on `topic`, `*`:
/// what it received within [`CONSUME_TIMEOUT`].
async fn push_consume(
    rt: &Arc<ClientRuntime>,
    namesrv: &str,
    topic: &str,
    count: usize,
) -> Result<Seen, String> {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut consumer = DefaultMQPushConsumer::builder(rt.clone())
        .consumer_group(PUSH_GROUP.to_string())
        .name_server_addr(namesrv.to_string())
        .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
        .client_rebalance(std::env::var_os("FERROMQ_RUST_CLIENT_SERVER_REBALANCE").is_none())
        .build();
    consumer
        .subscribe(topic, "*")
        .await
        .map_err(|e| format!("push subscribe: {e}"))?;
    consumer.register_message_listener_concurrently(Recorder(seen.clone()));
    bounded("push consumer start", LIFECYCLE_TIMEOUT, consumer.start())
        .await?
        .map_err(|e| format!("push consumer start: {e}"))?;
    if !wait_for_all(&seen, count, CONSUME_TIMEOUT).await {
        eprintln!("push consumer: not every message within {CONSUME_TIMEOUT:?}");
    }
    let hold = std::env::var("FERROMQ_RUST_CLIENT_HOLD_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map_or(0, |s| s.min(300));
    if hold > 0 {
        println!("HOLDING {PUSH_GROUP}");
        tokio::time::sleep(Duration::from_secs(hold)).await;
    }
    bounded(
        "push consumer shutdown",
        LIFECYCLE_TIMEOUT,
        consumer.shutdown(),
    )
    .await?;
    let seen = std::mem::take(&mut *seen.lock().expect("seen lock"));
    Ok(seen)
}

/// A lite pull consumer (subscribe mode, from the first offset) polling
/// `topic` until it has read every message or [`CONSUME_TIMEOUT`] passes.
async fn pull_consume(
    rt: &Arc<ClientRuntime>,
    namesrv: &str,
    topic: &str,
    count: usize,
) -> Result<Seen, String> {
    let consumer = DefaultLitePullConsumer::builder(rt.clone())
        .consumer_group(PULL_GROUP)
        .name_server_addr(namesrv)
        .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
        // Short long polls (default 20 s held, 30 s client timeout): shutdown
        // waits for the pulls in flight.
        .broker_suspend_max_time_millis(LITE_PULL_SUSPEND_MS)
        .consumer_timeout_millis_when_suspend(LITE_PULL_SUSPEND_MS + 3_000)
        .build()
        .map_err(|e| format!("lite pull consumer build: {e}"))?;
    bounded(
        "lite pull consumer start",
        LIFECYCLE_TIMEOUT,
        consumer.start(),
    )
    .await?
    .map_err(|e| format!("lite pull consumer start: {e}"))?;
    consumer
        .subscribe(topic)
        .await
        .map_err(|e| format!("lite pull subscribe: {e}"))?;
    let mut seen = Seen::default();
    let deadline = Instant::now() + CONSUME_TIMEOUT;
    while seen.distinct() < count && Instant::now() < deadline {
        let polled = bounded(
            "poll",
            Duration::from_secs(10),
            consumer.poll_with_timeout(1_000),
        )
        .await?;
        for m in &polled {
            seen.record(m);
        }
    }
    if seen.distinct() < count {
        eprintln!("lite pull consumer: not every message within {CONSUME_TIMEOUT:?}");
    }
    // Auto commit runs only every 5 s, from a poll: commit what was read, so
    // that the shutdown stores it on the broker (UPDATE_CONSUMER_OFFSET).
    bounded("lite pull commit", LIFECYCLE_TIMEOUT, consumer.commit_all())
        .await?
        .map_err(|e| format!("lite pull commit: {e}"))?;
    bounded(
        "lite pull consumer shutdown",
        LIFECYCLE_TIMEOUT,
        consumer.shutdown(),
    )
    .await?;
    Ok(seen)
}

/// Summarise one consumer: `name=<distinct> name_dups=<extra deliveries>
/// name_bad=<mismatches>`, printing the first mismatches.
fn summary(name: &str, seen: &Seen) -> String {
    let dups: usize = seen.good.values().map(|n| n - 1).sum();
    for b in seen.bad.iter().take(5) {
        eprintln!("{name}: mismatched message: {b}");
    }
    format!(
        "{name}={} {name}_dups={dups} {name}_bad={}",
        seen.distinct(),
        seen.bad.len()
    )
}

/// Send, push-consume, pull-consume; the `RESULT` line's fields, and whether
/// every count matched.
async fn run(
    rt: &Arc<ClientRuntime>,
    namesrv: &str,
    topic: &str,
    count: usize,
) -> Result<(String, bool), String> {
    let sent = produce(rt, namesrv, topic, count).await?;
    eprintln!("sent {sent} of {count}");
    let pushed = push_consume(rt, namesrv, topic, count).await?;
    eprintln!("push consumer received {} distinct", pushed.distinct());
    let pulled = pull_consume(rt, namesrv, topic, count).await?;
    eprintln!("lite pull consumer read {} distinct", pulled.distinct());
    let ok = sent == count
        && pushed.distinct() == count
        && pushed.bad.is_empty()
        && pulled.distinct() == count
        && pulled.bad.is_empty();
    let line = format!(
        "count={count} sent={sent} {} {}",
        summary("pushed", &pushed),
        summary("pulled", &pulled)
    );
    Ok((line, ok))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(namesrv), Some(topic)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: {} <namesrv host:port> <topic> [count]", args[0]);
        return ExitCode::from(2);
    };
    let count = match args.get(3).map(|c| c.parse::<usize>()) {
        None => DEFAULT_COUNT,
        Some(Ok(c)) if c > 0 => c,
        Some(_) => {
            eprintln!("count must be a positive integer");
            return ExitCode::from(2);
        }
    };

    ferromq_interop_rust_client::run_client(
        |rt| async move { run(&rt, namesrv, topic, count).await },
    )
    .await
}
