//! RocketMQ 5's two histograms, recorded on the send and request paths when
//! metrics are on (`metricsExporterType=PROM`) and encoded by
//! [`super::metrics::BrokerCollector`]:
//!
//! * `rocketmq_message_size` (`BrokerMetricsManager.messageSize`): per
//!   stored send, the stored bytes per message (`wroteBytes / msgNum`, as
//!   RocketMQ records it: one observation per send, a batch's average), by
//!   `topic`, `message_type` (`normal`, `fifo`, `delay`, `transaction`, from
//!   the send's properties as `BrokerMetricsManager.getMessageType` reads
//!   them) and `is_system`; retry and DLQ topics are not recorded. Buckets
//!   [`MESSAGE_SIZE_BUCKETS`].
//! * `rocketmq_rpc_latency` (`RemotingMetricsManager.rpcLatency`): per
//!   answered request, the milliseconds from the broker's handler taking it
//!   to its answer, by `protocol_type` (`remoting`), `request_code` and
//!   `response_code` (RocketMQ's lower-case code names, `code_names.rs`;
//!   the number for a code without one) and `is_long_polling` (the pull was
//!   held). Buckets [`RPC_LATENCY_BUCKETS_MS`]. RocketMQ's `result` label
//!   (whether the answer was written) is not kept: the handler does not see
//!   the write.
//!
//! The record paths take no lock shared across topics or request codes: a
//! send takes the read side of the topic map and the histogram's own lock; a
//! request finds its histogram in a fixed table (request code by binary
//! search, then a few slots claimed once per response code) and takes only
//! that histogram's lock. A broker with metrics off has no
//! [`BrokerHistograms`] and pays one atomic load per send and request.
//!
//! Cardinality: topics are those of the topic table (entries of deleted
//! topics are dropped at the next scrape, [`BrokerHistograms::retain_topics`]);
//! request codes are RocketMQ's table plus at most [`EXTRA_REQUEST_CODES`]
//! other codes, then `other`; at most [`ANSWER_SLOTS`] (response code, long
//! polling) pairs per request code, then `response_code="other"`.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};
use std::time::Duration;

use prometheus_client::metrics::histogram::Histogram;

use super::code_names::{REQUEST_CODE_NAMES, RESPONSE_CODE_NAMES};

/// `rocketmq_message_size` buckets, bytes: 1 KiB, 4 KiB, 512 KiB, 1 MiB,
/// 2 MiB, 4 MiB (`BrokerMetricsManager.registerMetricsView`).
pub const MESSAGE_SIZE_BUCKETS: [f64; 6] = [
    1024.0,
    4.0 * 1024.0,
    512.0 * 1024.0,
    1024.0 * 1024.0,
    2.0 * 1024.0 * 1024.0,
    4.0 * 1024.0 * 1024.0,
];

/// `rocketmq_rpc_latency` buckets, ms: 1, 3, 5, 7, 10, 100, 1000, 2000,
/// 3000 (`RemotingMetricsManager.getMetricsView`).
pub const RPC_LATENCY_BUCKETS_MS: [f64; 9] =
    [1.0, 3.0, 5.0, 7.0, 10.0, 100.0, 1000.0, 2000.0, 3000.0];

/// Request codes outside RocketMQ's table that get a series of their own
/// (labelled with the number); later ones share `request_code="other"`.
pub const EXTRA_REQUEST_CODES: usize = 16;

/// (response code, long polling) pairs kept apart per request code; later
/// ones share `response_code="other"`.
pub const ANSWER_SLOTS: usize = 16;

/// RocketMQ 5's `TopicMessageType` as the metrics label it (`getMetricsValue`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// None of the others.
    Normal,
    /// Has a sharding key (`__SHARDINGKEY`).
    Fifo,
    /// Has a delay (`DELAY`, `__STARTDELIVERTIME`, `TIMER_DELIVER_MS`, `TIMER_DELAY_SEC`).
    Delay,
    /// A transaction's half message (`TRAN_MSG=true`).
    Transaction,
}

impl MessageType {
    /// All, in label order.
    pub const ALL: [MessageType; 4] = [
        MessageType::Normal,
        MessageType::Fifo,
        MessageType::Delay,
        MessageType::Transaction,
    ];

    /// The `message_type` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::Normal => "normal",
            MessageType::Fifo => "fifo",
            MessageType::Delay => "delay",
            MessageType::Transaction => "transaction",
        }
    }

    /// The type of a send with encoded `properties` (`key\u{1}value\u{2}...`),
    /// as `BrokerMetricsManager.getMessageType` reads a send header:
    /// transaction, else fifo, else delay, else normal. No allocation.
    pub fn of_properties(properties: &str) -> MessageType {
        let (mut fifo, mut delay) = (false, false);
        for pair in properties.split('\u{2}') {
            let (k, v) = pair.split_once('\u{1}').unwrap_or((pair, ""));
            match k {
                "TRAN_MSG" if v.eq_ignore_ascii_case("true") => return MessageType::Transaction,
                "__SHARDINGKEY" => fifo = true,
                "DELAY" | "__STARTDELIVERTIME" | "TIMER_DELIVER_MS" | "TIMER_DELAY_SEC" => {
                    delay = true
                }
                _ => {}
            }
        }
        if fifo {
            MessageType::Fifo
        } else if delay {
            MessageType::Delay
        } else {
            MessageType::Normal
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One topic's message sizes, one histogram per message type seen.
#[derive(Debug)]
struct TopicSizes {
    is_system: bool,
    by_type: [OnceLock<Histogram>; 4],
}

/// The latency of one (response code, long polling) pair of a request code.
#[derive(Debug)]
struct Answer {
    response_code: i32,
    long_polling: bool,
    latency: Histogram,
}

/// One request code's answers.
#[derive(Debug, Default)]
struct RequestSlot {
    /// The code, for the slots of codes outside RocketMQ's table (claimed once).
    code: OnceLock<i32>,
    answers: [OnceLock<Answer>; ANSWER_SLOTS],
    /// Answers past the slots: `response_code="other"`.
    other: OnceLock<Histogram>,
}

/// One series of `rocketmq_message_size`, as the collector encodes it.
#[derive(Debug, Clone)]
pub struct SizeSeries {
    /// `topic`.
    pub topic: String,
    /// `message_type`.
    pub message_type: MessageType,
    /// `is_system`.
    pub is_system: bool,
    /// The histogram (shared with the record path).
    pub histogram: Histogram,
}

/// One series of `rocketmq_rpc_latency`, as the collector encodes it.
#[derive(Debug, Clone)]
pub struct LatencySeries {
    /// `request_code`: RocketMQ's name, the number, or `other`.
    pub request_code: String,
    /// `response_code`: RocketMQ's name, the number, or `other`.
    pub response_code: String,
    /// `is_long_polling`.
    pub long_polling: bool,
    /// The histogram in ms (shared with the record path).
    pub histogram: Histogram,
}

/// The broker's histograms (see the module documentation); present only
/// when metrics are on.
#[derive(Debug)]
pub struct BrokerHistograms {
    cluster: String,
    broker_name: String,
    sizes: RwLock<HashMap<String, TopicSizes>>,
    /// `REQUEST_CODE_NAMES.len()` slots, then [`EXTRA_REQUEST_CODES`], then
    /// the `other` slot.
    requests: Box<[RequestSlot]>,
}

tokio::task_local! {
    /// Set by a pull the broker holds, while [`Broker::handle`](super::Broker)
    /// times its request.
    static LONG_POLLING: Cell<bool>;
}

/// Run `f` (a request's handling) and say whether it was held as a long
/// poll ([`mark_long_polling`] called within).
pub async fn scope_long_polling<F: std::future::Future>(f: F) -> (F::Output, bool) {
    LONG_POLLING
        .scope(Cell::new(false), async {
            let out = f.await;
            (out, LONG_POLLING.with(Cell::get))
        })
        .await
}

/// The current request is held (long polling); nothing outside
/// [`scope_long_polling`] (metrics off).
pub fn mark_long_polling() {
    let _ = LONG_POLLING.try_with(|c| c.set(true));
}

fn name_of(table: &[(i32, &'static str)], code: i32) -> Option<&'static str> {
    table
        .binary_search_by_key(&code, |(c, _)| *c)
        .ok()
        .map(|i| table[i].1)
}

/// A code's label: RocketMQ's name, else the number.
fn code_label(table: &[(i32, &'static str)], code: i32) -> String {
    name_of(table, code).map_or_else(|| code.to_string(), str::to_string)
}

impl BrokerHistograms {
    /// Empty histograms of a broker of `cluster` named `broker_name` (for
    /// `is_system`).
    pub fn new(cluster: &str, broker_name: &str) -> Self {
        let n = REQUEST_CODE_NAMES.len() + EXTRA_REQUEST_CODES + 1;
        BrokerHistograms {
            cluster: cluster.to_string(),
            broker_name: broker_name.to_string(),
            sizes: RwLock::new(HashMap::new()),
            requests: (0..n).map(|_| RequestSlot::default()).collect(),
        }
    }

    /// Record a stored send to `topic` with encoded `properties`:
    /// `wrote_bytes` over `messages` messages (one observation of their
    /// average, as RocketMQ). Retry and DLQ topics are skipped.
    pub fn record_send(&self, topic: &str, properties: &str, wrote_bytes: u64, messages: u64) {
        if messages == 0
            || topic.starts_with(super::send_back::RETRY_GROUP_TOPIC_PREFIX)
            || topic.starts_with(super::send_back::DLQ_GROUP_TOPIC_PREFIX)
        {
            return;
        }
        let kind = MessageType::of_properties(properties).index();
        let v = (wrote_bytes / messages) as f64;
        let new_hist = || Histogram::new(MESSAGE_SIZE_BUCKETS);
        {
            let map = self.sizes.read().unwrap_or_else(|e| e.into_inner());
            if let Some(t) = map.get(topic) {
                t.by_type[kind].get_or_init(new_hist).observe(v);
                return;
            }
        }
        let mut map = self.sizes.write().unwrap_or_else(|e| e.into_inner());
        let t = map.entry(topic.to_string()).or_insert_with(|| TopicSizes {
            is_system: super::ops_mut::is_system_topic(topic, &self.cluster, &self.broker_name),
            by_type: Default::default(),
        });
        t.by_type[kind].get_or_init(new_hist).observe(v);
    }

    /// Drop the sizes of topics `live` says are gone (deleted); takes the
    /// write lock only when there is one.
    pub fn retain_topics(&self, live: impl Fn(&str) -> bool) {
        let gone = {
            let map = self.sizes.read().unwrap_or_else(|e| e.into_inner());
            map.keys().any(|t| !live(t))
        };
        if gone {
            let mut map = self.sizes.write().unwrap_or_else(|e| e.into_inner());
            map.retain(|t, _| live(t));
        }
    }

    /// Forget `topic`'s sizes (it was deleted).
    pub fn forget_topic(&self, topic: &str) {
        let mut map = self.sizes.write().unwrap_or_else(|e| e.into_inner());
        map.remove(topic);
    }

    /// The slot of request `code`.
    fn slot(&self, code: i32) -> (usize, &RequestSlot) {
        let known = REQUEST_CODE_NAMES.len();
        if let Ok(i) = REQUEST_CODE_NAMES.binary_search_by_key(&code, |(c, _)| *c) {
            return (i, &self.requests[i]);
        }
        for i in known..known + EXTRA_REQUEST_CODES {
            if *self.requests[i].code.get_or_init(|| code) == code {
                return (i, &self.requests[i]);
            }
        }
        let i = known + EXTRA_REQUEST_CODES;
        (i, &self.requests[i])
    }

    /// Record a request of `request_code` answered `response_code` after
    /// `elapsed`; `long_polling`: it was held.
    pub fn record_rpc(
        &self,
        request_code: i32,
        response_code: i32,
        long_polling: bool,
        elapsed: Duration,
    ) {
        let ms = elapsed.as_secs_f64() * 1000.0;
        let (_, slot) = self.slot(request_code);
        for a in &slot.answers {
            let a = a.get_or_init(|| Answer {
                response_code,
                long_polling,
                latency: Histogram::new(RPC_LATENCY_BUCKETS_MS),
            });
            if a.response_code == response_code && a.long_polling == long_polling {
                a.latency.observe(ms);
                return;
            }
        }
        slot.other
            .get_or_init(|| Histogram::new(RPC_LATENCY_BUCKETS_MS))
            .observe(ms);
    }

    /// Every `rocketmq_message_size` series, by topic then type.
    pub fn size_series(&self) -> Vec<SizeSeries> {
        let map = self.sizes.read().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<SizeSeries> = map
            .iter()
            .flat_map(|(topic, t)| {
                MessageType::ALL.iter().filter_map(move |&kind| {
                    t.by_type[kind.index()].get().map(|h| SizeSeries {
                        topic: topic.clone(),
                        message_type: kind,
                        is_system: t.is_system,
                        histogram: h.clone(),
                    })
                })
            })
            .collect();
        out.sort_by(|a, b| {
            (&a.topic, a.message_type.index()).cmp(&(&b.topic, b.message_type.index()))
        });
        out
    }

    /// Every `rocketmq_rpc_latency` series, by request code slot.
    pub fn latency_series(&self) -> Vec<LatencySeries> {
        let known = REQUEST_CODE_NAMES.len();
        let mut out = Vec::new();
        for (i, slot) in self.requests.iter().enumerate() {
            let request_code = if i < known {
                REQUEST_CODE_NAMES[i].1.to_string()
            } else if let Some(code) = slot.code.get() {
                code_label(&REQUEST_CODE_NAMES, *code)
            } else if i == known + EXTRA_REQUEST_CODES {
                "other".to_string()
            } else {
                continue;
            };
            for a in slot.answers.iter().map_while(OnceLock::get) {
                out.push(LatencySeries {
                    request_code: request_code.clone(),
                    response_code: code_label(&RESPONSE_CODE_NAMES, a.response_code),
                    long_polling: a.long_polling,
                    histogram: a.latency.clone(),
                });
            }
            if let Some(h) = slot.other.get() {
                out.push(LatencySeries {
                    request_code: request_code.clone(),
                    response_code: "other".to_string(),
                    long_polling: false,
                    histogram: h.clone(),
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;
    use prometheus_client::registry::Registry;

    #[test]
    fn code_tables_are_sorted_for_binary_search() {
        for t in [&REQUEST_CODE_NAMES[..], &RESPONSE_CODE_NAMES[..]] {
            assert!(t.windows(2).all(|w| w[0].0 < w[1].0));
        }
        assert_eq!(name_of(&REQUEST_CODE_NAMES, 10), Some("send_message"));
        assert_eq!(name_of(&REQUEST_CODE_NAMES, 310), Some("send_message_v2"));
        assert_eq!(name_of(&RESPONSE_CODE_NAMES, 0), Some("success"));
        assert_eq!(name_of(&RESPONSE_CODE_NAMES, 2), Some("system_busy"));
        assert_eq!(code_label(&REQUEST_CODE_NAMES, 99_999), "99999");
    }

    #[test]
    fn message_types_as_rocketmq_reads_them() {
        let t = MessageType::of_properties;
        assert_eq!(t(""), MessageType::Normal);
        assert_eq!(t("TAGS\u{1}a\u{2}KEYS\u{1}k"), MessageType::Normal);
        assert_eq!(
            t("TRAN_MSG\u{1}true\u{2}__SHARDINGKEY\u{1}x"),
            MessageType::Transaction
        );
        assert_eq!(
            t("TRAN_MSG\u{1}false\u{2}__SHARDINGKEY\u{1}x"),
            MessageType::Fifo
        );
        assert_eq!(t("DELAY\u{1}3\u{2}__SHARDINGKEY\u{1}x"), MessageType::Fifo);
        assert_eq!(t("DELAY\u{1}3"), MessageType::Delay);
        assert_eq!(t("TIMER_DELIVER_MS\u{1}5\u{2}"), MessageType::Delay);
    }

    fn encoded(h: &Histogram) -> String {
        let mut r = Registry::default();
        r.register("h", "h", h.clone());
        let mut s = String::new();
        encode(&mut s, &r).unwrap();
        s
    }

    #[test]
    fn sizes_by_topic_and_type_and_deleted_topics_go() {
        let h = BrokerHistograms::new("C", "B");
        h.record_send("T", "", 3000, 3);
        h.record_send("T", "", 2000, 1);
        h.record_send("T", "DELAY\u{1}2", 600 * 1024, 1);
        h.record_send("%RETRY%g", "", 10, 1);
        h.record_send("%DLQ%g", "", 10, 1);
        h.record_send("rmq_sys_x", "", 10, 1);
        h.record_send("T", "", 0, 0);
        let s = h.size_series();
        let got: Vec<_> = s
            .iter()
            .map(|x| (x.topic.as_str(), x.message_type, x.is_system))
            .collect();
        assert_eq!(
            got,
            [
                ("T", MessageType::Normal, false),
                ("T", MessageType::Delay, false),
                ("rmq_sys_x", MessageType::Normal, true),
            ]
        );
        let text = encoded(&s[0].histogram);
        assert!(text.contains("h_count 2\n"), "{text}");
        assert!(text.contains("h_sum 3000.0\n"), "{text}");
        assert!(text.contains("h_bucket{le=\"1024.0\"} 1\n"), "{text}");
        assert!(text.contains("h_bucket{le=\"4096.0\"} 2\n"), "{text}");
        let text = encoded(&s[1].histogram);
        assert!(text.contains("h_bucket{le=\"524288.0\"} 0\n"), "{text}");
        assert!(text.contains("h_bucket{le=\"1048576.0\"} 1\n"), "{text}");
        h.retain_topics(|t| t == "T");
        assert_eq!(h.size_series().len(), 2);
        h.forget_topic("T");
        assert!(h.size_series().is_empty());
    }

    #[test]
    fn latencies_by_code_with_bounded_cardinality() {
        let h = BrokerHistograms::new("C", "B");
        let ms = Duration::from_millis;
        h.record_rpc(310, 0, false, ms(2));
        h.record_rpc(310, 0, false, ms(4));
        h.record_rpc(310, 2, false, ms(0));
        h.record_rpc(11, 19, true, ms(1500));
        // Codes RocketMQ has no name for: numbers, then "other".
        for code in 0..EXTRA_REQUEST_CODES as i32 + 5 {
            h.record_rpc(50_000 + code, 0, false, ms(1));
        }
        // Answers past the slots share "other".
        for resp in 0..ANSWER_SLOTS as i32 + 3 {
            h.record_rpc(10, 1000 + resp, false, ms(1));
        }
        let s = h.latency_series();
        let find = |req: &str, resp: &str, lp: bool| {
            s.iter()
                .find(|x| x.request_code == req && x.response_code == resp && x.long_polling == lp)
                .map(|x| encoded(&x.histogram))
        };
        let v2 = find("send_message_v2", "success", false).unwrap();
        assert!(v2.contains("h_count 2\n"), "{v2}");
        assert!(v2.contains("h_bucket{le=\"3.0\"} 1\n"), "{v2}");
        assert!(v2.contains("h_bucket{le=\"5.0\"} 2\n"), "{v2}");
        assert!(find("send_message_v2", "system_busy", false).is_some());
        let pull = find("pull_message", "pull_not_found", true).unwrap();
        assert!(pull.contains("h_bucket{le=\"2000.0\"} 1\n"), "{pull}");
        assert!(find("50000", "success", false).is_some());
        let other = find("other", "success", false).unwrap();
        assert!(other.contains("h_count 5\n"), "{other}");
        let send = s
            .iter()
            .filter(|x| x.request_code == "send_message")
            .count();
        assert_eq!(send, ANSWER_SLOTS + 1);
        let rest = find("send_message", "other", false).unwrap();
        assert!(rest.contains("h_count 3\n"), "{rest}");
    }
}
