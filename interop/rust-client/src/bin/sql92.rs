//! Interop driver for ferromq's SQL92 property filters: the crates.io client
//! `rocketmq-client-rust` 1.0 sends messages with user properties, then one
//! push consumer per expression subscribes with `MessageSelector::by_sql` and
//! must receive exactly the messages the expression matches.
//!
//! ```text
//! sql92 <namesrv host:port> <topic>
//! ```
//!
//! Message `i` (0..20) has body `sql-body-{i}`, key `sql-key-{i}`, tag `A`
//! (i < 10) or `B`, and the properties `n` = i (a string, as every property),
//! `color` = `red` (even i) or `blue`, and `odd` = `yes` on odd i only.
//!
//! Prints one `RESULT ok|FAILED ...` line: for each case `caseK=ok` or what
//! it wanted and got; exits 0 only when every case got exactly its messages.
//! `server/tests/interop_rust_sql92.rs` runs it against ferromq with
//! `enablePropertyFilter=true`.

use ferromq_interop_rust_client::{bounded, send_retrying, LIFECYCLE_TIMEOUT};
use std::collections::BTreeSet;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rocketmq_client_rust::prelude::{DefaultMQProducer, DefaultMQPushConsumer};
use rocketmq_client_rust::{
    ClientRuntime, ConsumeConcurrentlyContext, ConsumeConcurrentlyStatus, MQPushConsumer,
    MessageListenerConcurrently, MessageSelector,
};
use rocketmq_model::common::consumer::consume_from_where::ConsumeFromWhere;
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::message_single::Message;

/// Messages sent.
const COUNT: usize = 20;
/// Bound on receiving a case's messages.
const CONSUME_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a consumer stays up after it has its messages, to see any extra.
const SETTLE: Duration = Duration::from_secs(3);

const PRODUCER_GROUP: &str = "rs_sql92_producer";

/// A SQL92 expression and which message indices it matches.
type Case = (&'static str, fn(usize) -> bool);

/// Whether message `i` is even (`color` red, no `odd` property).
fn even(i: usize) -> bool {
    i & 1 == 0
}

/// The cases.
fn cases() -> Vec<Case> {
    vec![
        // Numbers sent as strings, compared with a number range.
        ("n BETWEEN 5 AND 14 AND color = 'red'", |i| {
            (5..=14).contains(&i) && even(i)
        }),
        // A property missing on half the messages.
        ("odd IS NULL", |i| even(i)),
        ("odd IS NOT NULL AND n >= 15", |i| !even(i) && i >= 15),
        // The tag is a property too.
        ("TAGS = 'B' AND (n < 12 OR color IN ('blue'))", |i| {
            i >= 10 && (i < 12 || !even(i))
        }),
        // A comparison over a missing property is unknown: nothing.
        ("missing > 1 OR missing = 'x'", |_| false),
    ]
}

fn body_of(i: usize) -> String {
    format!("sql-body-{i}")
}

fn message(topic: &str, i: usize) -> Result<Message, String> {
    let n = i.to_string();
    let mut b = Message::builder()
        .topic(topic)
        .tags(if i < 10 { "A" } else { "B" })
        .key(format!("sql-key-{i}"))
        .body_slice(body_of(i).as_bytes());
    let mut props = vec![
        ("n", n.as_str()),
        ("color", if even(i) { "red" } else { "blue" }),
    ];
    if !even(i) {
        props.push(("odd", "yes"));
    }
    for (k, v) in props {
        b = b
            .raw_property(k, v)
            .map_err(|e| format!("property {k}: {e}"))?;
    }
    Ok(b.build_unchecked())
}

async fn produce(rt: &Arc<ClientRuntime>, namesrv: &str, topic: &str) -> Result<usize, String> {
    let mut producer = DefaultMQProducer::builder(rt.clone())
        .producer_group(PRODUCER_GROUP.to_string())
        .name_server_addr(namesrv.to_string())
        .build();
    bounded("producer start", LIFECYCLE_TIMEOUT, producer.start())
        .await?
        .map_err(|e| format!("producer start: {e}"))?;
    let mut ok = 0;
    for i in 0..COUNT {
        send_retrying(&mut producer, &format!("send of message {i}"), || {
            message(topic, i)
        })
        .await?;
        ok += 1;
    }
    bounded("producer shutdown", LIFECYCLE_TIMEOUT, producer.shutdown()).await?;
    Ok(ok)
}

/// Indices of the messages delivered (from the body), and deliveries whose
/// body is not one sent.
#[derive(Default)]
struct Seen {
    got: BTreeSet<usize>,
    bad: usize,
}

struct Recorder(Arc<Mutex<Seen>>);

impl MessageListenerConcurrently for Recorder {
    fn consume_message(
        &self,
        msgs: &[&MessageExt],
        _context: &ConsumeConcurrentlyContext,
    ) -> rocketmq_client_rust::ClientResult<ConsumeConcurrentlyStatus> {
        let mut seen = self.0.lock().expect("seen lock");
        for m in msgs {
            let body = m
                .body()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            match body
                .strip_prefix("sql-body-")
                .and_then(|n| n.parse::<usize>().ok())
            {
                Some(i) if i < COUNT => {
                    seen.got.insert(i);
                }
                _ => seen.bad += 1,
            }
        }
        Ok(ConsumeConcurrentlyStatus::ConsumeSuccess)
    }
}

/// One push consumer (its own group, from the first offset) with `sql`: the
/// indices it received once it had `want` of them (or the timeout passed)
/// and [`SETTLE`] more.
async fn consume(
    rt: &Arc<ClientRuntime>,
    namesrv: &str,
    topic: &str,
    group: &str,
    sql: &str,
    want: usize,
) -> Result<Seen, String> {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut consumer = DefaultMQPushConsumer::builder(rt.clone())
        .consumer_group(group.to_string())
        .name_server_addr(namesrv.to_string())
        .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
        .build();
    consumer
        .subscribe_with_selector(topic, Some(MessageSelector::by_sql(sql)))
        .await
        .map_err(|e| format!("subscribe {sql:?}: {e}"))?;
    consumer.register_message_listener_concurrently(Recorder(seen.clone()));
    bounded("push consumer start", LIFECYCLE_TIMEOUT, consumer.start())
        .await?
        .map_err(|e| format!("push consumer start ({sql:?}): {e}"))?;
    let deadline = Instant::now() + CONSUME_TIMEOUT;
    while Instant::now() < deadline && seen.lock().expect("seen lock").got.len() < want {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(SETTLE).await;
    bounded(
        "push consumer shutdown",
        LIFECYCLE_TIMEOUT,
        consumer.shutdown(),
    )
    .await?;
    let seen = std::mem::take(&mut *seen.lock().expect("seen lock"));
    Ok(seen)
}

async fn run(
    rt: &Arc<ClientRuntime>,
    namesrv: &str,
    topic: &str,
) -> Result<(String, bool), String> {
    let sent = produce(rt, namesrv, topic).await?;
    eprintln!("sent {sent} of {COUNT}");
    let mut ok = sent == COUNT;
    let mut fields = vec![format!("sent={sent}")];
    for (k, (sql, pred)) in cases().into_iter().enumerate() {
        let want: BTreeSet<usize> = (0..COUNT).filter(|i| pred(*i)).collect();
        let group = format!("rs_sql92_case{k}");
        let seen = consume(rt, namesrv, topic, &group, sql, want.len()).await?;
        eprintln!("case{k} {sql:?}: want {want:?} got {:?}", seen.got);
        if seen.got == want && seen.bad == 0 {
            fields.push(format!("case{k}=ok"));
        } else {
            ok = false;
            fields.push(format!(
                "case{k}=FAILED(want={want:?},got={:?},bad={})",
                seen.got, seen.bad
            ));
        }
    }
    Ok((fields.join(" "), ok))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(namesrv), Some(topic)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: {} <namesrv host:port> <topic>", args[0]);
        return ExitCode::from(2);
    };
    ferromq_interop_rust_client::run_client(|rt| async move { run(&rt, namesrv, topic).await })
        .await
}
