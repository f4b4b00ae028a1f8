//! Interop driver for ferromq's request-reply (RocketMQ 4.6+): the crates.io
//! client `rocketmq-client-rust` 1.0 runs a responder and a requester through
//! a name server and broker.
//!
//! ```text
//! request_reply <namesrv host:port> <request topic> [count]
//! ```
//!
//! - The responder is a push consumer on the request topic; for each request
//!   it builds the reply with the client's `MessageUtil::create_reply_message`
//!   (topic `<cluster>_REPLY_TOPIC`, the request's `CORRELATION_ID` and
//!   `REPLY_TO_CLIENT`) and sends it with a producer (SEND_REPLY_MESSAGE_V2);
//!   the broker pushes it to the requester (PUSH_REPLY_MESSAGE_TO_CLIENT).
//! - The requester's `DefaultMQProducer::request(msg, timeout)` must return the
//!   reply to each of `count` requests, body `reply-to:<request body>`, with
//!   the request's correlation id.
//! - A request to a topic nobody consumes must fail with the client's timeout
//!   after its timeout (not before, not hanging).
//!
//! Prints one `RESULT ok|FAILED requests=<n> replied=<n> bad=<n>
//! no_responder=<timeout|...>` line and exits 0 only when every reply came and
//! the unanswered request timed out cleanly. Every step is bounded in time.
//! `server/tests/interop_rust_request_reply.rs` runs it against ferromq.

use ferromq_interop_rust_client::{bounded, send_retrying, LIFECYCLE_TIMEOUT, SEND_TIMEOUT_MS};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rocketmq_client_rust::prelude::{DefaultMQProducer, DefaultMQPushConsumer};
use rocketmq_client_rust::{
    ClientRuntime, ConsumeConcurrentlyContext, ConsumeConcurrentlyStatus, MQPushConsumer,
    MessageListenerConcurrently, MessageUtil,
};
use rocketmq_model::common::consumer::consume_from_where::ConsumeFromWhere;
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::message_single::Message;
use rocketmq_model::common::message::MessageTrait;
use rocketmq_model::result::SendStatus;
use tokio::sync::{mpsc, oneshot};

/// Requests sent when no count is given.
const DEFAULT_COUNT: usize = 10;
/// Timeout of one request, given to the client (ms).
const REQUEST_TIMEOUT_MS: u64 = 10_000;
/// Timeout of the request nobody answers (ms).
const NO_RESPONDER_TIMEOUT_MS: u64 = 3_000;
/// How long the first request may keep failing (the responder's first
/// rebalance) before the run gives up.
const FIRST_REQUEST_BUDGET: Duration = Duration::from_secs(60);

const REQUESTER_GROUP: &str = "rs_rr_requester";
const RESPONDER_GROUP: &str = "rs_rr_responder";
const RESPONDER_PRODUCER_GROUP: &str = "rs_rr_responder_producer";

/// `MessageConst.PROPERTY_MESSAGE_REPLY_TO_CLIENT`.
const REPLY_TO_CLIENT: &str = "REPLY_TO_CLIENT";
/// `MessageConst.PROPERTY_CORRELATION_ID`.
const CORRELATION_ID: &str = "CORRELATION_ID";

/// A started producer of `group`.
async fn producer(
    rt: &Arc<ClientRuntime>,
    namesrv: &str,
    group: &str,
) -> Result<DefaultMQProducer, String> {
    let mut p = DefaultMQProducer::builder(rt.clone())
        .producer_group(group.to_string())
        .name_server_addr(namesrv.to_string())
        .build();
    bounded("producer start", LIFECYCLE_TIMEOUT, p.start())
        .await?
        .map_err(|e| format!("producer {group} start: {e}"))?;
    Ok(p)
}

/// Send one plain message to `topic` (creating it on the broker), retrying
/// for up to [`ferromq_interop_rust_client::SEND_RETRY_BUDGET`].
async fn warm_up(p: &mut DefaultMQProducer, topic: &str) -> Result<(), String> {
    send_retrying(p, &format!("warm-up send to {topic}"), || {
        Ok(Message::builder()
            .topic(topic)
            .body_slice(b"warm-up: not a request")
            .build_unchecked())
    })
    .await
}

/// The responder's listener: hands each request to the replying task (the
/// listener is synchronous, sending is not). Messages without
/// `REPLY_TO_CLIENT` (the warm-up) are not requests.
struct Responder(mpsc::UnboundedSender<MessageExt>);

impl MessageListenerConcurrently for Responder {
    fn consume_message(
        &self,
        msgs: &[&MessageExt],
        _context: &ConsumeConcurrentlyContext,
    ) -> rocketmq_client_rust::ClientResult<ConsumeConcurrentlyStatus> {
        for m in msgs {
            if m.property(&REPLY_TO_CLIENT.into()).is_some() {
                let _ = self.0.send((*m).clone());
            }
        }
        Ok(ConsumeConcurrentlyStatus::ConsumeSuccess)
    }
}

/// What the replying task saw: replies the broker accepted, and failures.
#[derive(Default)]
struct Replies {
    sent: usize,
    failed: Vec<String>,
}

/// Reply to every request that arrives on `rx` with `reply-to:<body>`,
/// until `stop`.
async fn reply_loop(
    mut rx: mpsc::UnboundedReceiver<MessageExt>,
    mut stop: oneshot::Receiver<()>,
    p: DefaultMQProducer,
    seen: Arc<Mutex<Replies>>,
) -> DefaultMQProducer {
    loop {
        let m = tokio::select! {
            m = rx.recv() => match m {
                Some(m) => m,
                None => break,
            },
            _ = &mut stop => break,
        };
        let body = m.body().map(|b| b.to_vec()).unwrap_or_default();
        let mut reply_body = b"reply-to:".to_vec();
        reply_body.extend_from_slice(&body);
        let outcome = match MessageUtil::create_reply_message(&m.message, &reply_body) {
            Ok(reply) => match bounded(
                "reply send",
                Duration::from_millis(SEND_TIMEOUT_MS * 2),
                p.send_with_timeout(reply, SEND_TIMEOUT_MS),
            )
            .await
            {
                Ok(Ok(Some(r))) if r.send_status == SendStatus::SendOk => Ok(()),
                Ok(Ok(r)) => Err(format!("reply send result {r:?}")),
                Ok(Err(e)) => Err(format!("reply send: {e}")),
                Err(e) => Err(e),
            },
            Err(e) => Err(format!("create_reply_message: {e}")),
        };
        let mut s = seen.lock().expect("replies lock");
        match outcome {
            Ok(()) => s.sent += 1,
            Err(why) => {
                eprintln!("responder: {why}");
                s.failed.push(why);
            }
        }
    }
    p
}

/// Whether the client's error is its request timeout (1.0 says
/// `core.operation.timed_out: Operation timed out`).
fn is_timeout(why: &str) -> bool {
    let w = why.to_lowercase();
    w.contains("timeout") || w.contains("timed out") || w.contains("timed_out")
}

/// Body of request `i`.
fn request_body(i: usize) -> String {
    format!("rr-request-{i}")
}

/// One request: the reply's body, or why there is none.
async fn request_once(
    p: &DefaultMQProducer,
    topic: &str,
    body: &str,
    timeout_ms: u64,
) -> Result<Vec<u8>, String> {
    let msg = Message::builder()
        .topic(topic)
        .body_slice(body.as_bytes())
        .build_unchecked();
    let got = bounded(
        "request",
        Duration::from_millis(timeout_ms + 10_000),
        p.request(msg, timeout_ms),
    )
    .await?
    .map_err(|e| format!("{e}"))?;
    if got.property(&CORRELATION_ID.into()).is_none() {
        return Err("the reply has no CORRELATION_ID".into());
    }
    Ok(got.get_body().map(|b| b.to_vec()).unwrap_or_default())
}

/// Responder up, `count` requests, then one request nobody answers; the
/// `RESULT` line's fields and whether all is well.
async fn run(
    rt: &Arc<ClientRuntime>,
    namesrv: &str,
    topic: &str,
    count: usize,
) -> Result<(String, bool), String> {
    let mut requester = producer(rt, namesrv, REQUESTER_GROUP).await?;
    warm_up(&mut requester, topic).await?;
    let silent_topic = format!("{topic}_NoResponder");
    warm_up(&mut requester, &silent_topic).await?;

    let (tx, rx) = mpsc::unbounded_channel();
    let replies = Arc::new(Mutex::new(Replies::default()));
    let reply_producer = producer(rt, namesrv, RESPONDER_PRODUCER_GROUP).await?;
    let (stop_replier, stop) = oneshot::channel();
    let replier = tokio::spawn(reply_loop(rx, stop, reply_producer, replies.clone()));
    let mut consumer = DefaultMQPushConsumer::builder(rt.clone())
        .consumer_group(RESPONDER_GROUP.to_string())
        .name_server_addr(namesrv.to_string())
        .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
        .build();
    consumer
        .subscribe(topic, "*")
        .await
        .map_err(|e| format!("responder subscribe: {e}"))?;
    consumer.register_message_listener_concurrently(Responder(tx));
    bounded("responder start", LIFECYCLE_TIMEOUT, consumer.start())
        .await?
        .map_err(|e| format!("responder start: {e}"))?;

    let mut replied = 0;
    let mut bad = Vec::new();
    for i in 0..count {
        let body = request_body(i);
        let started = Instant::now();
        loop {
            match request_once(&requester, topic, &body, REQUEST_TIMEOUT_MS).await {
                Ok(reply) if reply == format!("reply-to:{body}").as_bytes() => {
                    replied += 1;
                    break;
                }
                Ok(reply) => {
                    bad.push(format!(
                        "request {i}: reply body {:?}",
                        String::from_utf8_lossy(&reply)
                    ));
                    break;
                }
                // The first request may go out before the responder's
                // first rebalance; later ones must not fail.
                Err(why) if i == 0 && started.elapsed() < FIRST_REQUEST_BUDGET => {
                    eprintln!("request 0 failed, retrying: {why}");
                }
                Err(why) => {
                    bad.push(format!("request {i}: {why}"));
                    break;
                }
            }
        }
    }
    eprintln!("{replied} of {count} requests answered");

    // Nobody consumes the silent topic: the request must time out, after
    // its timeout.
    let started = Instant::now();
    let outcome = request_once(
        &requester,
        &silent_topic,
        "nobody-answers",
        NO_RESPONDER_TIMEOUT_MS,
    )
    .await;
    let waited = started.elapsed();
    let no_responder = match outcome {
        Ok(reply) => format!("replied:{}", String::from_utf8_lossy(&reply)),
        Err(why)
            if is_timeout(&why)
                && waited >= Duration::from_millis(NO_RESPONDER_TIMEOUT_MS - 200) =>
        {
            eprintln!("no-responder request ended after {waited:?}: {why}");
            "timeout".to_string()
        }
        Err(why) => format!("error-after-{}ms:{why:?}", waited.as_millis()),
    };

    bounded("responder shutdown", LIFECYCLE_TIMEOUT, consumer.shutdown()).await?;
    drop(consumer);
    let _ = stop_replier.send(());
    let mut reply_producer = bounded("replier", LIFECYCLE_TIMEOUT, replier)
        .await?
        .map_err(|e| format!("replier task: {e}"))?;
    bounded(
        "responder producer shutdown",
        LIFECYCLE_TIMEOUT,
        reply_producer.shutdown(),
    )
    .await?;
    bounded(
        "requester shutdown",
        LIFECYCLE_TIMEOUT,
        requester.shutdown(),
    )
    .await?;

    for b in bad.iter().take(5) {
        eprintln!("bad: {b}");
    }
    let r = replies.lock().expect("replies lock");
    let ok = replied == count && bad.is_empty() && no_responder == "timeout";
    let line = format!(
        "requests={count} replied={replied} bad={} replies_sent={} replies_failed={} no_responder={no_responder}",
        bad.len(),
        r.sent,
        r.failed.len()
    );
    Ok((line, ok))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(namesrv), Some(topic)) = (args.get(1), args.get(2)) else {
        eprintln!(
            "usage: {} <namesrv host:port> <request topic> [count]",
            args[0]
        );
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
