//! Interop driver for ferromq's RocketMQ 5 timer messages: the crates.io
//! client `rocketmq-client-rust` 1.0 sends messages with its own
//! `set_delay_time_sec`, `set_delay_time_ms` and `set_deliver_time_ms`
//! (properties `TIMER_DELAY_SEC`, `TIMER_DELAY_MS`, `TIMER_DELIVER_MS`) and a
//! push consumer records when each arrives.
//!
//! ```text
//! timer <namesrv host:port> <topic> <consumer group>
//! ```
//!
//! 1. A push consumer (`*`, from the first offset) starts.
//! 2. A producer sends a plain `warmup` message (creating the topic if it is
//!    not there) and the run waits until the consumer has it, so that it is
//!    pulling before the timed sends. When the topic is new, that can take
//!    the client's rebalance interval (20 s): the consumer's start found no
//!    route, and it only looks again then; `server/tests/interop_rust_timer.rs`
//!    creates the topic and waits for its route first.
//! 3. The producer sends, one after the other: `sec2` (delay 2 s), `ms3500`
//!    (delay 3500 ms), `deliver5000` (deliver at now + 5000 ms) and `plain`.
//! 4. The run waits for the four (at most [`RECEIVE_TIMEOUT`] after the last
//!    send), then [`SETTLE`] more to see any duplicate.
//!
//! Prints one line
//! `RESULT ok|FAILED sent=4 bad=<n> warmup.n=<n> <name>.send=.. <name>.ack=..
//! <name>.due=.. <name>.recv=.. <name>.store=.. <name>.broker_due=.. <name>.n=..`
//! for each name (times in epoch ms; -1 when not received): `send` when the
//! send began, `ack` when the broker acknowledged it, `due` the send time
//! plus the delay (or the deliver time; for `plain` the send time), `recv`
//! when the listener first got it, `store` its store timestamp on the topic,
//! `broker_due` its `TIMER_OUT_MS` (the broker's due time) and `n` how many
//! times it was delivered; `bad` counts deliveries of bodies never sent.
//! Exits 0 when each of the four arrived exactly once and nothing else did;
//! `server/tests/interop_rust_timer.rs` checks the times.

use ferromq_interop_rust_client::{bounded, send_retrying, LIFECYCLE_TIMEOUT};
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rocketmq_client_rust::prelude::{DefaultMQProducer, DefaultMQPushConsumer};
use rocketmq_client_rust::{
    ClientRuntime, ConsumeConcurrentlyContext, ConsumeConcurrentlyStatus, MQPushConsumer,
    MessageListenerConcurrently,
};
use rocketmq_model::common::consumer::consume_from_where::ConsumeFromWhere;
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::message_single::Message;
use rocketmq_model::common::message::MessageTrait;

/// Bound on the consumer getting the warm-up (its first rebalance).
const WARM_UP_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on receiving the four, from the last send.
const RECEIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the consumer stays up after it has the four, to see any extra.
const SETTLE: Duration = Duration::from_secs(2);

const PRODUCER_GROUP: &str = "rs_timer_producer";
const WARM_UP: &str = "warmup";
/// `MessageConst.PROPERTY_TIMER_OUT_MS`: the broker's due time, on a
/// delivered timer message.
const TIMER_OUT_MS: &str = "TIMER_OUT_MS";

/// How a message is timed.
#[derive(Clone, Copy)]
enum Timing {
    DelaySec(u64),
    DelayMs(u64),
    /// Deliver this many ms after the send.
    DeliverIn(u64),
    Plain,
}

/// The messages, in send order.
const SENDS: [(&str, Timing); 4] = [
    ("sec2", Timing::DelaySec(2)),
    ("ms3500", Timing::DelayMs(3_500)),
    ("deliver5000", Timing::DeliverIn(5_000)),
    ("plain", Timing::Plain),
];

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn body_of(name: &str) -> String {
    format!("timer-body-{name}")
}

/// One message's times (epoch ms; -1: not yet).
#[derive(Clone, Copy)]
struct Times {
    send: i64,
    ack: i64,
    due: i64,
    recv: i64,
    store: i64,
    broker_due: i64,
    n: usize,
}

impl Default for Times {
    fn default() -> Self {
        Times {
            send: -1,
            ack: -1,
            due: -1,
            recv: -1,
            store: -1,
            broker_due: -1,
            n: 0,
        }
    }
}

/// Per message name, its times; and deliveries of unknown bodies.
#[derive(Default)]
struct Seen {
    by_name: BTreeMap<String, Times>,
    bad: usize,
}

impl Seen {
    /// How many of the timed messages arrived.
    fn arrived(&self) -> usize {
        SENDS
            .iter()
            .filter(|(name, _)| self.by_name.get(*name).is_some_and(|t| t.n > 0))
            .count()
    }
}

struct Recorder(Arc<Mutex<Seen>>);

impl MessageListenerConcurrently for Recorder {
    fn consume_message(
        &self,
        msgs: &[&MessageExt],
        _context: &ConsumeConcurrentlyContext,
    ) -> rocketmq_client_rust::ClientResult<ConsumeConcurrentlyStatus> {
        let recv = now_ms();
        let mut seen = self.0.lock().expect("seen lock");
        for m in msgs {
            let body = m
                .body()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            let name = body
                .strip_prefix("timer-body-")
                .filter(|n| *n == WARM_UP || SENDS.iter().any(|(s, _)| s == n));
            let Some(name) = name else {
                seen.bad += 1;
                eprintln!("unexpected message body {body:?}");
                continue;
            };
            let broker_due = m
                .property(&TIMER_OUT_MS.into())
                .and_then(|v| v.parse().ok())
                .unwrap_or(-1);
            let t = seen.by_name.entry(name.to_string()).or_default();
            t.n += 1;
            if t.n == 1 {
                let props: BTreeMap<_, _> = m.get_properties().iter().collect();
                eprintln!(
                    "{name} received at {recv} (queue {} offset {}), properties {props:?}",
                    m.queue_id(),
                    m.queue_offset()
                );
                t.recv = recv;
                t.store = m.store_timestamp();
                t.broker_due = broker_due;
            } else {
                eprintln!("{name} delivered again (#{}) at {recv}", t.n);
            }
        }
        Ok(ConsumeConcurrentlyStatus::ConsumeSuccess)
    }
}

/// The message `name`, timed by `timing` from `now` (epoch ms); and its due time.
fn message(topic: &str, name: &str, timing: Timing, now: i64) -> (Message, i64) {
    let mut m = Message::builder()
        .topic(topic)
        .key(format!("timer-key-{name}"))
        .body_slice(body_of(name).as_bytes())
        .build_unchecked();
    let due = match timing {
        Timing::DelaySec(s) => {
            m.set_delay_time_sec(s);
            now + s as i64 * 1000
        }
        Timing::DelayMs(ms) => {
            m.set_delay_time_ms(ms);
            now + ms as i64
        }
        Timing::DeliverIn(ms) => {
            let at = now + ms as i64;
            m.set_deliver_time_ms(at as u64);
            at
        }
        Timing::Plain => now,
    };
    (m, due)
}

/// Send `name` (retrying for up to [`ferromq_interop_rust_client::SEND_RETRY_BUDGET`]): when the
/// successful send began, when it was acknowledged, and the due time.
async fn send(
    p: &mut DefaultMQProducer,
    topic: &str,
    name: &str,
    timing: Timing,
) -> Result<(i64, i64, i64), String> {
    let (mut send, mut due) = (0, 0);
    send_retrying(p, &format!("send of {name}"), || {
        send = now_ms();
        let (msg, d) = message(topic, name, timing, send);
        due = d;
        Ok(msg)
    })
    .await?;
    Ok((send, now_ms(), due))
}

/// Wait (polling) until `done` holds for `seen` or `limit` passes.
async fn wait_for(seen: &Mutex<Seen>, limit: Duration, done: impl Fn(&Seen) -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done(&seen.lock().expect("seen lock")) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn run(
    rt: &Arc<ClientRuntime>,
    namesrv: &str,
    topic: &str,
    group: &str,
) -> Result<(String, bool), String> {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut consumer = DefaultMQPushConsumer::builder(rt.clone())
        .consumer_group(group.to_string())
        .name_server_addr(namesrv.to_string())
        .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
        .build();
    consumer
        .subscribe(topic, "*")
        .await
        .map_err(|e| format!("subscribe: {e}"))?;
    consumer.register_message_listener_concurrently(Recorder(seen.clone()));
    bounded("push consumer start", LIFECYCLE_TIMEOUT, consumer.start())
        .await?
        .map_err(|e| format!("push consumer start: {e}"))?;

    let mut producer = DefaultMQProducer::builder(rt.clone())
        .producer_group(PRODUCER_GROUP.to_string())
        .name_server_addr(namesrv.to_string())
        .build();
    bounded("producer start", LIFECYCLE_TIMEOUT, producer.start())
        .await?
        .map_err(|e| format!("producer start: {e}"))?;
    let started = Instant::now();
    send(&mut producer, topic, WARM_UP, Timing::Plain).await?;
    if !wait_for(&seen, WARM_UP_TIMEOUT, |s| s.by_name.contains_key(WARM_UP)).await {
        return Err(format!(
            "the consumer did not get the warm-up within {WARM_UP_TIMEOUT:?}"
        ));
    }
    eprintln!(
        "consumer got the warm-up {:?} after its send began",
        started.elapsed()
    );

    let mut sent = 0;
    for (name, timing) in SENDS {
        let (send_ms, ack, due) = send(&mut producer, topic, name, timing).await?;
        eprintln!(
            "sent {name} at {send_ms} (acked +{} ms), due {due}",
            ack - send_ms
        );
        let mut s = seen.lock().expect("seen lock");
        let t = s.by_name.entry(name.to_string()).or_default();
        (t.send, t.ack, t.due) = (send_ms, ack, due);
        sent += 1;
    }
    let all = wait_for(&seen, RECEIVE_TIMEOUT, |s| s.arrived() == SENDS.len()).await;
    if !all {
        eprintln!("not all received within {RECEIVE_TIMEOUT:?} of the last send");
    }
    tokio::time::sleep(SETTLE).await;
    bounded(
        "push consumer shutdown",
        LIFECYCLE_TIMEOUT,
        consumer.shutdown(),
    )
    .await?;
    bounded("producer shutdown", LIFECYCLE_TIMEOUT, producer.shutdown()).await?;

    let s = seen.lock().expect("seen lock");
    let mut fields = vec![
        format!("sent={sent}"),
        format!("bad={}", s.bad),
        format!(
            "warmup.n={}",
            s.by_name.get(WARM_UP).map(|t| t.n).unwrap_or(0)
        ),
    ];
    let mut ok = sent == SENDS.len() && s.bad == 0;
    for (name, _) in SENDS {
        let t = s.by_name.get(name).copied().unwrap_or_default();
        ok &= t.n == 1;
        fields.push(format!(
            "{name}.send={} {name}.ack={} {name}.due={} {name}.recv={} {name}.store={} {name}.broker_due={} {name}.n={}",
            t.send, t.ack, t.due, t.recv, t.store, t.broker_due, t.n
        ));
        if t.n > 0 {
            let broker_due = if t.broker_due >= 0 {
                format!("+{} ms", t.broker_due - t.send)
            } else {
                "none".to_string()
            };
            eprintln!(
                "{name}: due +{} ms, broker due {broker_due}, stored +{} ms, received +{} ms after the send",
                t.due - t.send,
                t.store - t.send,
                t.recv - t.send
            );
        }
    }
    Ok((fields.join(" "), ok))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(namesrv), Some(topic), Some(group)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!(
            "usage: {} <namesrv host:port> <topic> <consumer group>",
            args[0]
        );
        return ExitCode::from(2);
    };
    ferromq_interop_rust_client::run_client(
        |rt| async move { run(&rt, namesrv, topic, group).await },
    )
    .await
}
