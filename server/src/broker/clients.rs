//! Producer and consumer clients known from heartbeats (RocketMQ's
//! `ProducerManager` / `ConsumerManager`).

use ferromq_engine::sync::LockExt;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::remoting::json::parse_lenient;
use crate::remoting::{request, ConnInfo, RemotingCommand};

#[derive(Debug, Clone)]
struct ClientChannel {
    conn: Arc<ConnInfo>,
    last_update: Instant,
    /// `LanguageCode` ordinal of its heartbeats (0 JAVA, 1 CPP, ...).
    language: u8,
}

#[derive(Debug, Default)]
struct ConsumerGroup {
    clients: BTreeMap<String, ClientChannel>,
    /// topic -> subscription expression.
    subscriptions: HashMap<String, String>,
    /// The latest heartbeat's `messageModel` was BROADCASTING.
    broadcasting: bool,
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

/// A heartbeat's subscriptions of one group: (topic, expression).
type Subscriptions = Vec<(String, String)>;

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
        self.heartbeat_from(conn, 0, body)
    }

    /// [`ClientManager::heartbeat`] from a client whose requests carry
    /// `language` (`LanguageCode` ordinal), remembered with its channel: the
    /// broker's requests to the client are encoded for it (e.g. the C++
    /// client's form of RESET_CONSUMER_CLIENT_OFFSET's body).
    ///
    /// # Errors
    /// As [`ClientManager::heartbeat`].
    pub fn heartbeat_from(
        &self,
        conn: &Arc<ConnInfo>,
        language: u8,
        body: &[u8],
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
        let mut consumers: Vec<(String, Option<Subscriptions>, bool)> = Vec::new();
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
                            subs.push((topic, expr));
                        }
                    }
                }
                // `MessageModel`: a name (Java) or its ordinal (BROADCASTING is 0).
                let broadcasting = match &c["messageModel"] {
                    Value::String(m) => m == "BROADCASTING",
                    Value::Number(n) => n.as_i64() == Some(0),
                    _ => false,
                };
                consumers.push((g, subs, broadcasting));
            }
        }
        let now = Instant::now();
        let ch = ClientChannel {
            conn: conn.clone(),
            last_update: now,
            language,
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
        for (g, subs, broadcasting) in consumers {
            let group = t.consumers.entry(g.clone()).or_default();
            group.broadcasting = broadcasting;
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
                group.subscriptions = subs.into_iter().collect();
            }
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
                        language: 0,
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
            .is_some_and(|g| g.broadcasting)
    }

    /// Client ids of a consumer group, sorted.
    pub fn consumer_ids(&self, group: &str) -> Vec<String> {
        self.lock()
            .consumers
            .get(group)
            .map(|g| g.clients.keys().cloned().collect())
            .unwrap_or_default()
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
