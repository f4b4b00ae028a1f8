//! Producer and consumer clients known from heartbeats (RocketMQ's
//! `ProducerManager` / `ConsumerManager`).

use ferromq_engine::sync::LockExt;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::filter::{expression_type, is_tag_type, CompileError, Sql92Filter};
use crate::remoting::json::parse_lenient;
use crate::remoting::{request, ConnInfo, RemotingCommand};

#[derive(Debug, Clone)]
struct ClientChannel {
    conn: Arc<ConnInfo>,
    last_update: Instant,
    /// The heartbeat's `LanguageCode` ordinal and version (RocketMQ's
    /// `ClientChannelInfo`).
    language: u8,
    version: i32,
    /// Wall-clock time of the last heartbeat (ms).
    last_update_ms: i64,
}

#[derive(Debug, Default)]
struct ConsumerGroup {
    clients: BTreeMap<String, ClientChannel>,
    /// topic -> subscription expression.
    subscriptions: HashMap<String, String>,
    /// topic -> `SubscriptionData` as fastjson writes it.
    subscription_data: BTreeMap<String, Value>,
    /// topic -> the SQL92 filter of a non-TAG subscription, compiled once
    /// (again only when its expression changes), or why it did not compile
    /// (RocketMQ's `ConsumerFilterManager`).
    filters: HashMap<String, CompiledFilter>,
    /// The last heartbeat's consumeType, messageModel, consumeFromWhere
    /// (enum names), as RocketMQ's `ConsumerGroupInfo` keeps them.
    consume_type: String,
    message_model: String,
    consume_from_where: String,
}

/// One client connection of a group, as GET_CONSUMER_CONNECTION_LIST and
/// GET_PRODUCER_CONNECTION_LIST show it (RocketMQ's `Connection`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConnection {
    /// The client id.
    pub client_id: String,
    /// The peer address, `ip:port`.
    pub client_addr: String,
    /// `LanguageCode` ordinal.
    pub language: u8,
    /// The client's version.
    pub version: i32,
    /// Wall-clock time of its last heartbeat (ms).
    pub last_update_ms: i64,
}

/// A consumer group online (RocketMQ's `ConsumerGroupInfo`).
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerGroupView {
    /// Its connections, by client id.
    pub connections: Vec<ClientConnection>,
    /// topic -> `SubscriptionData` (fastjson fields).
    pub subscriptions: BTreeMap<String, Value>,
    /// `ConsumeType` name.
    pub consume_type: String,
    /// `MessageModel` name.
    pub message_model: String,
    /// `ConsumeFromWhere` name.
    pub consume_from_where: String,
}

fn enum_name(v: &Value, names: &[&str], default: &str) -> String {
    match v {
        Value::String(s) if !s.is_empty() => s.clone(),
        Value::Number(n) => n
            .as_u64()
            .and_then(|i| names.get(i as usize))
            .map_or_else(|| default.to_string(), |s| (*s).to_string()),
        _ => default.to_string(),
    }
}

/// `SubscriptionData` as RocketMQ's broker writes it back, fields in
/// fastjson's (alphabetical) order, from what the heartbeat sent.
fn subscription_data(s: &Value, topic: &str, expr: &str) -> Value {
    let or = |k: &str, d: Value| {
        let v = &s[k];
        if v.is_null() {
            d
        } else {
            v.clone()
        }
    };
    serde_json::json!({
        "classFilterMode": or("classFilterMode", Value::Bool(false)),
        "codeSet": or("codeSet", Value::Array(Vec::new())),
        "expressionType": or("expressionType", Value::String("TAG".into())),
        "subString": expr,
        "subVersion": or("subVersion", Value::from(0)),
        "tagsSet": or("tagsSet", Value::Array(Vec::new())),
        "topic": topic,
    })
}

impl ClientChannel {
    fn view(&self, client_id: &str) -> ClientConnection {
        ClientConnection {
            client_id: client_id.to_string(),
            client_addr: self.conn.peer.to_string(),
            language: self.language,
            version: self.version,
            last_update_ms: self.last_update_ms,
        }
    }
}

#[derive(Debug, Default)]
struct Tables {
    producers: HashMap<String, BTreeMap<String, ClientChannel>>,
    consumers: HashMap<String, ConsumerGroup>,
}

/// Clients by group.
#[derive(Debug, Default)]
pub struct ClientManager {
    t: Mutex<Tables>,
    /// Rotates the producer connection a check-back goes to.
    next_producer: std::sync::atomic::AtomicUsize,
}

fn str_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A compiled SQL92 subscription, or why it did not compile.
pub type CompiledFilter = Result<Arc<Sql92Filter>, CompileError>;

/// Compile a subscription of a non-TAG expression type: SQL92 is the one
/// RocketMQ's `FilterFactory` knows.
pub fn compile_filter(kind: &str, expr: &str) -> CompiledFilter {
    if kind.eq_ignore_ascii_case(expression_type::SQL92) {
        Sql92Filter::compile(expr).map(Arc::new)
    } else {
        Err(CompileError {
            line: 1,
            column: 1,
            message: format!("no filter for expression type {kind}"),
        })
    }
}

/// A group's subscription of a topic, as a pull uses it.
#[derive(Debug, Clone)]
pub struct PullSubscription {
    /// The expression (`subString`).
    pub expression: String,
    /// The expression type when it is not TAG, and its compiled filter.
    pub filter: Option<(String, CompiledFilter)>,
}

/// A heartbeat's subscriptions of one group: (topic, expression).
type Subscriptions = Vec<(String, String, Value)>;

/// What a heartbeat told.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeartbeatSummary {
    /// The client id.
    pub client_id: String,
    /// Consumer groups in it.
    pub consumer_groups: Vec<String>,
    /// Producer groups in it.
    pub producer_groups: Vec<String>,
    /// Consumer groups this heartbeat joined the client to (membership changed).
    pub joined_groups: Vec<String>,
}

impl ClientManager {
    /// No clients.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.t.locked()
    }

    /// Apply a HEART_BEAT body (`HeartbeatData` JSON, read leniently: missing
    /// fields are skipped, enums may be names or numbers).
    ///
    /// Every producer and consumer group and every subscribed topic is checked
    /// first ([`ferromq_engine::validate_group`],
    /// [`super::names::validate_subscribed_topic`]); a heartbeat with one bad
    /// name is refused whole and changes nothing.
    ///
    /// # Errors
    /// A sentence when the body is not JSON, has no `clientID` or names a
    /// group or topic that breaks the rules.
    pub fn heartbeat(&self, conn: &Arc<ConnInfo>, body: &[u8]) -> Result<HeartbeatSummary, String> {
        self.heartbeat_from(conn, body, 7, 0)
    }

    /// [`ClientManager::heartbeat`] with the request's `language` (ordinal)
    /// and `version`, shown by the connection lists.
    ///
    /// # Errors
    /// As [`ClientManager::heartbeat`].
    pub fn heartbeat_from(
        &self,
        conn: &Arc<ConnInfo>,
        body: &[u8],
        language: u8,
        version: i32,
    ) -> Result<HeartbeatSummary, String> {
        let text = std::str::from_utf8(body).map_err(|e| format!("heartbeat body: {e}"))?;
        let v = parse_lenient(text).map_err(|e| format!("heartbeat body: {e}"))?;
        let client_id = str_of(&v["clientID"]).ok_or("heartbeat body has no clientID")?;
        let mut producer_groups = Vec::new();
        if let Value::Array(ps) = &v["producerDataSet"] {
            for p in ps {
                if let Some(g) = str_of(&p["groupName"]) {
                    ferromq_engine::validate_group(&g)
                        .map_err(|why| format!("heartbeat refused: producer {why}"))?;
                    producer_groups.push(g);
                }
            }
        }
        // (group, its subscriptions; None when the heartbeat has no
        // subscription set for the group)
        let mut consumers: Vec<(String, Option<Subscriptions>, [String; 3])> = Vec::new();
        if let Value::Array(cs) = &v["consumerDataSet"] {
            for c in cs {
                let Some(g) = str_of(&c["groupName"]) else {
                    continue;
                };
                ferromq_engine::validate_group(&g)
                    .map_err(|why| format!("heartbeat refused: consumer {why}"))?;
                let mut subs = None;
                if let Value::Array(ss) = &c["subscriptionDataSet"] {
                    let subs = subs.insert(Vec::new());
                    for s in ss {
                        if let Some(topic) = str_of(&s["topic"]) {
                            super::names::validate_subscribed_topic(&topic)
                                .map_err(|why| format!("heartbeat refused: subscription {why}"))?;
                            let expr = str_of(&s["subString"]).unwrap_or_else(|| "*".into());
                            let data = subscription_data(s, &topic, &expr);
                            subs.push((topic, expr, data));
                        }
                    }
                }
                let kinds = [
                    enum_name(
                        &c["consumeType"],
                        &["CONSUME_ACTIVELY", "CONSUME_PASSIVELY", "CONSUME_POP"],
                        "CONSUME_PASSIVELY",
                    ),
                    enum_name(
                        &c["messageModel"],
                        &["BROADCASTING", "CLUSTERING"],
                        "CLUSTERING",
                    ),
                    enum_name(
                        &c["consumeFromWhere"],
                        &[
                            "CONSUME_FROM_LAST_OFFSET",
                            "CONSUME_FROM_LAST_OFFSET_AND_FROM_MIN_WHEN_BOOT_FIRST",
                            "CONSUME_FROM_MIN_OFFSET",
                            "CONSUME_FROM_MAX_OFFSET",
                            "CONSUME_FROM_FIRST_OFFSET",
                            "CONSUME_FROM_TIMESTAMP",
                        ],
                        "CONSUME_FROM_LAST_OFFSET",
                    ),
                ];
                consumers.push((g, subs, kinds));
            }
        }
        let now = Instant::now();
        let ch = ClientChannel {
            conn: conn.clone(),
            last_update: now,
            language,
            version,
            last_update_ms: crate::util::now_ms(),
        };
        let mut sum = HeartbeatSummary {
            client_id: client_id.clone(),
            ..Default::default()
        };
        let mut t = self.lock();
        for g in producer_groups {
            t.producers
                .entry(g.clone())
                .or_default()
                .insert(client_id.clone(), ch.clone());
            sum.producer_groups.push(g);
        }
        for (g, subs, [consume_type, message_model, consume_from_where]) in consumers {
            let group = t.consumers.entry(g.clone()).or_default();
            let joined = group
                .clients
                .insert(client_id.clone(), ch.clone())
                .is_none_or(|old| old.conn.id != conn.id);
            if joined {
                sum.joined_groups.push(g.clone());
            }
            // As RocketMQ's `ConsumerGroupInfo.updateSubscription`: the
            // heartbeat's set replaces the group's (topics no longer named are
            // dropped), so the table follows the group instead of only growing.
            if let Some(subs) = subs {
                group.subscription_data = subs
                    .iter()
                    .map(|(t, _, d)| (t.clone(), d.clone()))
                    .collect();
                let mut filters = HashMap::new();
                for (topic, expr, data) in &subs {
                    let kind = data["expressionType"].as_str();
                    if is_tag_type(kind) {
                        continue;
                    }
                    let kind = kind.unwrap_or_default();
                    let kept = group.filters.remove(topic).filter(|f| match f {
                        Ok(f) => f.source() == expr,
                        Err(_) => false,
                    });
                    let f = kept.unwrap_or_else(|| {
                        let f = compile_filter(kind, expr);
                        if let Err(e) = &f {
                            tracing::warn!(group = %g, topic = %topic, error = %e, "a consumer's filter does not compile");
                        }
                        f
                    });
                    filters.insert(topic.clone(), f);
                }
                group.filters = filters;
                group.subscriptions = subs.into_iter().map(|(t, e, _)| (t, e)).collect();
            }
            group.consume_type = consume_type;
            group.message_model = message_model;
            group.consume_from_where = consume_from_where;
            sum.consumer_groups.push(g);
        }
        Ok(sum)
    }

    /// A client leaves its groups; returns the consumer groups that lost it.
    pub fn unregister(
        &self,
        client_id: &str,
        producer_group: Option<&str>,
        consumer_group: Option<&str>,
    ) -> Vec<String> {
        let mut t = self.lock();
        let mut changed = Vec::new();
        if let Some(g) = producer_group {
            if let Some(m) = t.producers.get_mut(g) {
                m.remove(client_id);
            }
        }
        if let Some(g) = consumer_group {
            if let Some(cg) = t.consumers.get_mut(g) {
                if cg.clients.remove(client_id).is_some() {
                    changed.push(g.to_string());
                }
                if cg.clients.is_empty() {
                    t.consumers.remove(g);
                }
            }
        }
        changed
    }

    /// Forget the clients of a closed connection; returns the consumer groups
    /// that lost a member.
    pub fn on_connection_closed(&self, conn_id: u64) -> Vec<String> {
        self.retain(|c| c.conn.id != conn_id)
    }

    /// Forget clients silent for longer than `expiry`; returns the consumer
    /// groups that lost a member.
    pub fn scan_not_active(&self, expiry: Duration) -> Vec<String> {
        let now = Instant::now();
        self.retain(|c| now.duration_since(c.last_update) <= expiry)
    }

    fn retain(&self, keep: impl Fn(&ClientChannel) -> bool) -> Vec<String> {
        let mut t = self.lock();
        for m in t.producers.values_mut() {
            m.retain(|_, c| keep(c));
        }
        t.producers.retain(|_, m| !m.is_empty());
        let mut changed = BTreeSet::new();
        for (name, g) in t.consumers.iter_mut() {
            let before = g.clients.len();
            g.clients.retain(|_, c| keep(c));
            if g.clients.len() != before {
                changed.insert(name.clone());
            }
        }
        t.consumers.retain(|_, g| !g.clients.is_empty());
        changed.into_iter().collect()
    }

    /// Tell every consumer of `group` that its membership changed
    /// (NOTIFY_CONSUMER_IDS_CHANGED, oneway), so they rebalance at once instead
    /// of at their next periodic rebalance. Returns how many were told.
    pub fn notify_consumer_ids_changed(&self, group: &str) -> usize {
        let conns: Vec<Arc<ConnInfo>> = self
            .lock()
            .consumers
            .get(group)
            .map(|g| g.clients.values().map(|c| c.conn.clone()).collect())
            .unwrap_or_default();
        conns
            .iter()
            .filter(|c| {
                c.send_oneway(
                    RemotingCommand::request(request::NOTIFY_CONSUMER_IDS_CHANGED)
                        .with_ext("consumerGroup", group),
                )
            })
            .count()
    }

    /// Remember `conn` as a connection of producer group `group` because a
    /// half message came over it (ferromq-specific: RocketMQ learns producer
    /// connections from heartbeats only, and the C++ client may send its first
    /// heartbeat 30 s after its first transactional send, so a check-back would
    /// find no channel). The entry expires and closes like a heartbeat's.
    pub fn note_producer_connection(&self, group: &str, conn: &Arc<ConnInfo>) {
        let key = format!("@connection-{}", conn.id);
        let mut t = self.lock();
        let m = t.producers.entry(group.to_string()).or_default();
        match m.get_mut(&key) {
            Some(c) => c.last_update = Instant::now(),
            None => {
                m.insert(
                    key,
                    ClientChannel {
                        conn: conn.clone(),
                        last_update: Instant::now(),
                        language: 7,
                        version: 0,
                        last_update_ms: crate::util::now_ms(),
                    },
                );
            }
        }
    }

    /// The connections of a producer group, starting at a rotating position
    /// (RocketMQ's `ProducerManager.getAvailableChannel` picks round-robin).
    pub fn producer_channels(&self, group: &str) -> Vec<Arc<ConnInfo>> {
        let mut v: Vec<Arc<ConnInfo>> = self
            .lock()
            .producers
            .get(group)
            .map(|m| m.values().map(|c| c.conn.clone()).collect())
            .unwrap_or_default();
        if !v.is_empty() {
            let n = self
                .next_producer
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let k = n % v.len();
            v.rotate_left(k);
        }
        v
    }

    /// The open connection of the producer whose heartbeats name `client_id`,
    /// in any producer group (RocketMQ's `ProducerManager.findChannel`, which
    /// request-reply uses to push a reply to its requester); the most recently
    /// heard from when it heartbeats on several connections. `None` when no
    /// producer of that id is connected.
    pub fn producer_by_client_id(&self, client_id: &str) -> Option<Arc<ConnInfo>> {
        self.lock()
            .producers
            .values()
            .filter_map(|m| m.get(client_id))
            .filter(|c| !c.conn.is_closed())
            .max_by_key(|c| c.last_update)
            .map(|c| c.conn.clone())
    }

    /// The consumers of a group: (client id, `LanguageCode` ordinal of its
    /// heartbeats, connection), sorted by client id.
    pub fn consumer_channels(&self, group: &str) -> Vec<(String, u8, Arc<ConnInfo>)> {
        self.lock()
            .consumers
            .get(group)
            .map(|g| {
                g.clients
                    .iter()
                    .map(|(id, c)| (id.clone(), c.language, c.conn.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether the group's consumers consume BROADCASTING (from their latest
    /// heartbeat).
    pub fn is_broadcasting(&self, group: &str) -> bool {
        self.lock()
            .consumers
            .get(group)
            .is_some_and(|g| g.message_model == "BROADCASTING")
    }

    /// Client ids of a consumer group, sorted.
    pub fn consumer_ids(&self, group: &str) -> Vec<String> {
        self.lock()
            .consumers
            .get(group)
            .map(|g| g.clients.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// A consumer group online, `None` when no client of it is.
    pub fn consumer_group(&self, group: &str) -> Option<ConsumerGroupView> {
        let t = self.lock();
        let g = t.consumers.get(group)?;
        Some(ConsumerGroupView {
            connections: g.clients.iter().map(|(id, c)| c.view(id)).collect(),
            subscriptions: g.subscription_data.clone(),
            consume_type: g.consume_type.clone(),
            message_model: g.message_model.clone(),
            consume_from_where: g.consume_from_where.clone(),
        })
    }

    /// The connections of a producer group (heartbeats only, not the
    /// transactional sends' connections), `None` when no client heartbeats
    /// it.
    pub fn producer_group(&self, group: &str) -> Option<Vec<ClientConnection>> {
        let t = self.lock();
        let conns: Vec<ClientConnection> = t
            .producers
            .get(group)?
            .iter()
            .filter(|(id, _)| !id.starts_with("@connection-"))
            .map(|(id, c)| c.view(id))
            .collect();
        (!conns.is_empty()).then_some(conns)
    }

    /// Every producer group with its connections.
    pub fn producer_table(&self) -> BTreeMap<String, Vec<ClientConnection>> {
        let t = self.lock();
        t.producers
            .iter()
            .map(|(g, m)| {
                let conns = m
                    .iter()
                    .filter(|(id, _)| !id.starts_with("@connection-"))
                    .map(|(id, c)| c.view(id))
                    .collect::<Vec<_>>();
                (g.clone(), conns)
            })
            .filter(|(_, c)| !c.is_empty())
            .collect()
    }

    /// The online consumer groups subscribed to `topic` (RocketMQ's
    /// `ConsumerManager.queryTopicConsumeByWho`).
    pub fn groups_subscribed_to(&self, topic: &str) -> BTreeSet<String> {
        let t = self.lock();
        t.consumers
            .iter()
            .filter(|(_, g)| g.subscriptions.contains_key(topic))
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// How many topics an online group subscribes to (0 when not online).
    pub fn subscription_count(&self, group: &str) -> usize {
        self.lock()
            .consumers
            .get(group)
            .map_or(0, |g| g.subscriptions.len())
    }

    /// A group's subscription of a topic with its compiled filter (for a
    /// non-TAG expression type), from its heartbeats.
    pub fn pull_subscription(&self, group: &str, topic: &str) -> Option<PullSubscription> {
        let t = self.lock();
        let g = t.consumers.get(group)?;
        let expression = g.subscriptions.get(topic)?.clone();
        let filter = g.filters.get(topic).map(|f| {
            let kind = g
                .subscription_data
                .get(topic)
                .and_then(|d| d["expressionType"].as_str())
                .unwrap_or(expression_type::SQL92)
                .to_string();
            (kind, f.clone())
        });
        Some(PullSubscription { expression, filter })
    }

    /// The group's compiled filter of a topic when its expression is `expr`
    /// (a pull that carries the expression reuses the heartbeat's).
    pub fn filter_for(&self, group: &str, topic: &str, expr: &str) -> Option<Arc<Sql92Filter>> {
        let t = self.lock();
        match t.consumers.get(group)?.filters.get(topic)? {
            Ok(f) if f.source() == expr => Some(f.clone()),
            _ => None,
        }
    }

    /// A group's subscription expression for a topic, from its heartbeats.
    pub fn subscription(&self, group: &str, topic: &str) -> Option<String> {
        self.lock()
            .consumers
            .get(group)
            .and_then(|g| g.subscriptions.get(topic).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_register_and_close() {
        let m = ClientManager::new();
        let conn = |id: u64| Arc::new(ConnInfo::detached(id, "127.0.0.1:1".parse().unwrap()));
        let (c7, c8, c1) = (conn(7), conn(8), conn(1));
        let body = br#"{"clientID":"c1","producerDataSet":[{"groupName":"P"}],
            "consumerDataSet":[{"groupName":"G","consumeType":1,"messageModel":"CLUSTERING",
            "subscriptionDataSet":[{"topic":"T","subString":"a || b"}]},{"noGroup":1}]}"#;
        let s = m.heartbeat(&c7, body).unwrap();
        assert_eq!(s.consumer_groups, vec!["G".to_string()]);
        assert_eq!(s.joined_groups, vec!["G".to_string()]);
        assert!(m.heartbeat(&c7, body).unwrap().joined_groups.is_empty());
        m.heartbeat(
            &c8,
            br#"{"clientID":"c2","consumerDataSet":[{"groupName":"G"}]}"#,
        )
        .unwrap();
        assert_eq!(
            m.consumer_ids("G"),
            vec!["c1".to_string(), "c2".to_string()]
        );
        assert_eq!(m.subscription("G", "T").as_deref(), Some("a || b"));
        // A heartbeat with a subscription set replaces the group's.
        m.heartbeat(
            &c7,
            br#"{"clientID":"c1","consumerDataSet":[{"groupName":"G",
            "subscriptionDataSet":[{"topic":"U","subString":"x"}]}]}"#,
        )
        .unwrap();
        assert_eq!(m.subscription("G", "T"), None);
        assert_eq!(m.subscription("G", "U").as_deref(), Some("x"));
        m.heartbeat(
            &c7,
            br#"{"clientID":"c1","consumerDataSet":[{"groupName":"G","subscriptionDataSet":[]}]}"#,
        )
        .unwrap();
        assert_eq!(m.subscription("G", "U"), None);
        assert_eq!(m.on_connection_closed(7), vec!["G".to_string()]);
        assert_eq!(
            m.notify_consumer_ids_changed("G"),
            0,
            "detached: nothing sent"
        );
        assert_eq!(m.consumer_ids("G"), vec!["c2".to_string()]);
        assert_eq!(m.unregister("c2", None, Some("G")), vec!["G".to_string()]);
        assert!(m.consumer_ids("G").is_empty());
        assert_eq!(
            m.producer_channels("P").len(),
            0,
            "c1 left with connection 7"
        );
        m.heartbeat(
            &c8,
            br#"{"clientID":"c3","producerDataSet":[{"groupName":"P"}]}"#,
        )
        .unwrap();
        assert_eq!(m.producer_channels("P")[0].id, 8);
        assert_eq!(m.producer_by_client_id("c3").map(|c| c.id), Some(8));
        assert!(m.producer_by_client_id("c1").is_none(), "closed with 7");
        assert!(m.producer_by_client_id("nobody").is_none());
        c8.mark_closed();
        assert!(
            m.producer_by_client_id("c3").is_none(),
            "a closed connection"
        );
        m.note_producer_connection("TX", &c1);
        m.note_producer_connection("TX", &c1);
        assert_eq!(m.producer_channels("TX").len(), 1);
        m.on_connection_closed(1);
        assert!(m.producer_channels("TX").is_empty());
        assert!(m.producer_channels("Q").is_empty());
        assert!(m.heartbeat(&c1, b"{}").is_err());
        assert!(m.heartbeat(&c1, b"\xff").is_err());
    }

    #[test]
    fn connection_lists_show_what_heartbeats_told() {
        let m = ClientManager::new();
        let c = Arc::new(ConnInfo::detached(4, "127.0.0.1:4242".parse().unwrap()));
        assert!(m.consumer_group("G").is_none());
        let body = br#"{"clientID":"c1","producerDataSet":[{"groupName":"P"}],
            "consumerDataSet":[{"groupName":"G","consumeType":0,"messageModel":"BROADCASTING",
            "consumeFromWhere":5,"subscriptionDataSet":[{"topic":"T","subString":"a || b",
            "tagsSet":["a","b"],"codeSet":[97,98],"subVersion":12}]}]}"#;
        m.heartbeat_from(&c, body, 1, 401).unwrap();
        let g = m.consumer_group("G").unwrap();
        assert_eq!(
            g.connections,
            vec![ClientConnection {
                client_id: "c1".into(),
                client_addr: "127.0.0.1:4242".into(),
                language: 1,
                version: 401,
                last_update_ms: g.connections[0].last_update_ms,
            }]
        );
        assert_eq!(
            (g.consume_type.as_str(), g.message_model.as_str()),
            ("CONSUME_ACTIVELY", "BROADCASTING")
        );
        assert_eq!(g.consume_from_where, "CONSUME_FROM_TIMESTAMP");
        assert_eq!(
            g.subscriptions["T"].to_string(),
            r#"{"classFilterMode":false,"codeSet":[97,98],"expressionType":"TAG","subString":"a || b","subVersion":12,"tagsSet":["a","b"],"topic":"T"}"#
        );
        assert_eq!(m.groups_subscribed_to("T").len(), 1);
        assert!(m.groups_subscribed_to("U").is_empty());
        assert_eq!(m.subscription_count("G"), 1);
        assert_eq!(m.producer_group("P").unwrap()[0].client_id, "c1");
        assert!(m.producer_group("Q").is_none());
        // A transactional send's connection is no producer client.
        m.note_producer_connection("TX", &c);
        assert_eq!(m.producer_group("TX"), None);
        let table = m.producer_table();
        assert_eq!(table.keys().collect::<Vec<_>>(), vec!["P"]);
    }

    #[test]
    fn a_heartbeat_with_one_bad_name_changes_nothing() {
        let m = ClientManager::new();
        let c = Arc::new(ConnInfo::detached(3, "127.0.0.1:1".parse().unwrap()));
        for body in [
            r#"{"clientID":"c","producerDataSet":[{"groupName":"P"}],"consumerDataSet":[{"groupName":"G"},{"groupName":""}]}"#.to_string(),
            format!(r#"{{"clientID":"c","consumerDataSet":[{{"groupName":"G"}},{{"groupName":"{}"}}]}}"#, "g".repeat(256)),
            r#"{"clientID":"c","producerDataSet":[{"groupName":"a.b"}],"consumerDataSet":[{"groupName":"G"}]}"#.to_string(),
            r#"{"clientID":"c","consumerDataSet":[{"groupName":"G","subscriptionDataSet":[{"topic":"../x"}]}]}"#.to_string(),
        ] {
            let e = m.heartbeat(&c, body.as_bytes()).unwrap_err();
            assert!(e.starts_with("heartbeat refused"), "{e}");
            assert!(e.len() < 300, "{e}");
            assert!(m.consumer_ids("G").is_empty());
            assert!(m.producer_channels("P").is_empty());
        }
    }
}
