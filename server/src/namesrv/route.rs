//! The route tables: which brokers are alive, which topics they serve.
//!
//! Mirrors RocketMQ 4.x `RouteInfoManager`: topic -> queue data per broker name,
//! broker name -> addresses by broker id, cluster -> broker names, and a live
//! table keyed by broker address with the last registration time and the
//! connection it came over.

use ferromq_engine::sync::LockExt;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::remoting::json;

/// `PermName.PERM_READ`.
pub const PERM_READ: u32 = 4;
/// `PermName.PERM_WRITE`.
pub const PERM_WRITE: u32 = 2;

/// One broker's queues of a topic (`QueueData`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueData {
    /// Broker name (master/slave group).
    pub broker_name: String,
    /// Readable queues.
    pub read_queue_nums: u32,
    /// Writable queues.
    pub write_queue_nums: u32,
    /// Permission bits (READ 4, WRITE 2, INHERIT 1).
    pub perm: u32,
    /// Topic system flag.
    pub topic_sys_flag: u32,
}

/// A topic config as a broker registers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicEntry {
    /// Topic name.
    pub topic_name: String,
    /// Readable queues.
    pub read_queue_nums: u32,
    /// Writable queues.
    pub write_queue_nums: u32,
    /// Permission bits.
    pub perm: u32,
    /// Topic system flag.
    pub topic_sys_flag: u32,
}

/// The addresses of one broker name (`BrokerData`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerData {
    /// Cluster name.
    pub cluster: String,
    /// Broker name.
    pub broker_name: String,
    /// Address by broker id (0 = master).
    pub broker_addrs: BTreeMap<i64, String>,
    /// RocketMQ 5.x `enableActingMaster`: the broker group lets a slave act as
    /// master (5.x HA). Taken from the latest registration; false for brokers
    /// that do not send it (4.x, ferromq).
    pub enable_acting_master: bool,
    /// RocketMQ 5.x `zoneName` of the latest registration, if it had one.
    pub zone_name: Option<String>,
}

impl BrokerData {
    /// fastjson form; `quote` writes the integer keys quoted (standard JSON).
    ///
    /// The fields of RocketMQ 5.x's `BrokerData` in fastjson's order (by name):
    /// `enableActingMaster` is always written (a Java `boolean`; clients built
    /// on 5.x, such as rocketmq-client-rust, require it), `zoneName` only when
    /// set (fastjson leaves nulls out). 4.x clients ignore both.
    pub fn to_json(&self, quote: bool) -> String {
        let addrs: Vec<(i64, String)> = self
            .broker_addrs
            .iter()
            .map(|(k, v)| (*k, json::string(v)))
            .collect();
        let zone = self
            .zone_name
            .as_deref()
            .map(|z| format!(",\"zoneName\":{}", json::string(z)))
            .unwrap_or_default();
        format!(
            "{{\"brokerAddrs\":{},\"brokerName\":{},\"cluster\":{},\"enableActingMaster\":{}{zone}}}",
            json::int_key_map(addrs.iter().map(|(k, v)| (*k, v.as_str())), quote),
            json::string(&self.broker_name),
            json::string(&self.cluster),
            self.enable_acting_master,
        )
    }
}

#[derive(Debug)]
struct LiveInfo {
    last_update: Instant,
    data_version: Value,
    conn_id: u64,
    ha_server_addr: String,
}

#[derive(Debug, Default)]
struct Tables {
    topic_queue: BTreeMap<String, BTreeMap<String, QueueData>>,
    broker_addr: BTreeMap<String, BrokerData>,
    cluster_addr: BTreeMap<String, BTreeSet<String>>,
    live: HashMap<String, LiveInfo>,
}

/// A registration request, decoded.
#[derive(Debug, Clone)]
pub struct Registration {
    /// Cluster name.
    pub cluster: String,
    /// `ip:port` clients use.
    pub broker_addr: String,
    /// Broker name.
    pub broker_name: String,
    /// Broker id (0 master).
    pub broker_id: i64,
    /// HA address (`ip:port`).
    pub ha_server_addr: String,
    /// Data version of the topic configs.
    pub data_version: Value,
    /// Topic configs, if the body carried them.
    pub topics: Option<Vec<TopicEntry>>,
    /// The header's `enableActingMaster` (RocketMQ 5.x brokers); false when absent.
    pub enable_acting_master: bool,
    /// The header's `zoneName` (RocketMQ 5.x brokers), if any.
    pub zone_name: Option<String>,
    /// Connection it came over.
    pub conn_id: u64,
}

/// What a registration answers: the master's addresses, for a slave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegisterResult {
    /// The master's HA address.
    pub ha_server_addr: Option<String>,
    /// The master's address.
    pub master_addr: Option<String>,
}

/// The name server's route tables.
#[derive(Debug, Default)]
pub struct RouteInfoManager {
    t: Mutex<Tables>,
}

impl RouteInfoManager {
    /// Empty tables.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.t.locked()
    }

    /// Add or refresh a broker.
    pub fn register(&self, r: Registration) -> RegisterResult {
        let mut t = self.lock();
        t.cluster_addr
            .entry(r.cluster.clone())
            .or_default()
            .insert(r.broker_name.clone());
        let mut first = !t.broker_addr.contains_key(&r.broker_name);
        let bd = t
            .broker_addr
            .entry(r.broker_name.clone())
            .or_insert_with(|| BrokerData {
                cluster: r.cluster.clone(),
                broker_name: r.broker_name.clone(),
                broker_addrs: BTreeMap::new(),
                enable_acting_master: false,
                zone_name: None,
            });
        // As RocketMQ 5.x's RouteInfoManager: the latest registration sets both.
        bd.enable_acting_master = r.enable_acting_master;
        bd.zone_name.clone_from(&r.zone_name);
        // A slave turned master (or the reverse) keeps its address under the new id only.
        bd.broker_addrs
            .retain(|id, addr| !(addr == &r.broker_addr && *id != r.broker_id));
        let old = bd.broker_addrs.insert(r.broker_id, r.broker_addr.clone());
        first |= old.is_none();
        if let Some(topics) = &r.topics {
            if r.broker_id == 0 {
                let changed = t
                    .live
                    .get(&r.broker_addr)
                    .map(|l| l.data_version != r.data_version)
                    .unwrap_or(true);
                if changed || first {
                    for tc in topics {
                        t.topic_queue
                            .entry(tc.topic_name.clone())
                            .or_default()
                            .insert(
                                r.broker_name.clone(),
                                QueueData {
                                    broker_name: r.broker_name.clone(),
                                    read_queue_nums: tc.read_queue_nums,
                                    write_queue_nums: tc.write_queue_nums,
                                    perm: tc.perm,
                                    topic_sys_flag: tc.topic_sys_flag,
                                },
                            );
                    }
                }
            }
        }
        if t.live
            .insert(
                r.broker_addr.clone(),
                LiveInfo {
                    last_update: Instant::now(),
                    data_version: r.data_version.clone(),
                    conn_id: r.conn_id,
                    ha_server_addr: r.ha_server_addr.clone(),
                },
            )
            .is_none()
        {
            tracing::info!(broker = %r.broker_name, addr = %r.broker_addr, id = r.broker_id, "new broker registered");
        }
        let mut res = RegisterResult::default();
        if r.broker_id != 0 {
            let master = t
                .broker_addr
                .get(&r.broker_name)
                .and_then(|b| b.broker_addrs.get(&0))
                .cloned();
            if let Some(m) = master {
                res.ha_server_addr = t.live.get(&m).map(|l| l.ha_server_addr.clone());
                res.master_addr = Some(m);
            }
        }
        res
    }

    /// Remove a broker address.
    pub fn unregister(&self, cluster: &str, broker_addr: &str, broker_name: &str, broker_id: i64) {
        let mut t = self.lock();
        Self::unregister_locked(&mut t, cluster, broker_addr, broker_name, broker_id);
    }

    fn unregister_locked(
        t: &mut Tables,
        cluster: &str,
        broker_addr: &str,
        broker_name: &str,
        broker_id: i64,
    ) {
        t.live.remove(broker_addr);
        let mut remove_name = false;
        if let Some(bd) = t.broker_addr.get_mut(broker_name) {
            if bd.broker_addrs.get(&broker_id).map(String::as_str) == Some(broker_addr) {
                bd.broker_addrs.remove(&broker_id);
            }
            if bd.broker_addrs.is_empty() {
                t.broker_addr.remove(broker_name);
                remove_name = true;
            }
        }
        tracing::info!(broker = %broker_name, addr = %broker_addr, id = broker_id, "broker unregistered");
        if remove_name {
            if let Some(names) = t.cluster_addr.get_mut(cluster) {
                names.remove(broker_name);
                if names.is_empty() {
                    t.cluster_addr.remove(cluster);
                }
            }
            t.topic_queue.retain(|_, per_broker| {
                per_broker.remove(broker_name);
                !per_broker.is_empty()
            });
        }
    }

    /// Remove every broker address whose entry matches `pred`.
    fn remove_live_where(&self, why: &str, pred: impl Fn(&LiveInfo) -> bool) -> usize {
        let mut t = self.lock();
        let addrs: Vec<String> = t
            .live
            .iter()
            .filter(|(_, l)| pred(l))
            .map(|(a, _)| a.clone())
            .collect();
        for addr in &addrs {
            let found = t.broker_addr.values().find_map(|bd| {
                bd.broker_addrs
                    .iter()
                    .find(|(_, a)| *a == addr)
                    .map(|(id, _)| (bd.cluster.clone(), bd.broker_name.clone(), *id))
            });
            tracing::warn!(addr = %addr, "dropping broker: {why}");
            match found {
                Some((cluster, name, id)) => {
                    Self::unregister_locked(&mut t, &cluster, addr, &name, id);
                }
                None => {
                    t.live.remove(addr);
                }
            }
        }
        addrs.len()
    }

    /// A connection closed: drop the brokers that registered over it.
    pub fn on_connection_closed(&self, conn_id: u64) -> usize {
        self.remove_live_where("its connection closed", |l| l.conn_id == conn_id)
    }

    /// Drop brokers silent for longer than `expiry`.
    pub fn scan_not_active(&self, expiry: Duration) -> usize {
        let now = Instant::now();
        self.remove_live_where("no registration within the expiry time", |l| {
            now.duration_since(l.last_update) > expiry
        })
    }

    /// `TopicRouteData` of a topic as JSON, or `None` if unknown.
    /// `quote_keys` selects standard JSON over fastjson's unquoted integer keys.
    pub fn route_json(&self, topic: &str, quote_keys: bool) -> Option<String> {
        self.route_json_with(topic, quote_keys, None)
    }

    /// [`RouteInfoManager::route_json`] with RocketMQ's `orderTopicConf`
    /// (written, in fastjson's field order, when given).
    pub fn route_json_with(
        &self,
        topic: &str,
        quote_keys: bool,
        order_topic_conf: Option<&str>,
    ) -> Option<String> {
        let t = self.lock();
        let queues = t.topic_queue.get(topic)?;
        let brokers: Vec<&BrokerData> = queues
            .keys()
            .filter_map(|name| t.broker_addr.get(name))
            .collect();
        if queues.is_empty() || brokers.is_empty() {
            return None;
        }
        let bds: Vec<String> = brokers.iter().map(|b| b.to_json(quote_keys)).collect();
        let qds: Vec<String> = queues
            .values()
            .map(|q| {
                format!(
                    "{{\"brokerName\":{},\"perm\":{},\"readQueueNums\":{},\"topicSysFlag\":{},\"writeQueueNums\":{}}}",
                    json::string(&q.broker_name),
                    q.perm,
                    q.read_queue_nums,
                    q.topic_sys_flag,
                    q.write_queue_nums
                )
            })
            .collect();
        let order = order_topic_conf
            .map(|c| format!("\"orderTopicConf\":{},", json::string(c)))
            .unwrap_or_default();
        Some(format!(
            "{{\"brokerDatas\":[{}],\"filterServerTable\":{{}},{order}\"queueDatas\":[{}]}}",
            bds.join(","),
            qds.join(",")
        ))
    }

    /// WIPE_WRITE_PERM_OF_BROKER (`wipe`) or ADD_WRITE_PERM_OF_BROKER: in every
    /// topic's route, the queue data of `broker_name` loses PERM_WRITE (2), or
    /// gets PERM_READ | PERM_WRITE (6, as RocketMQ 4.9's
    /// `operateWritePermOfBroker` sets it). Returns the number of topics
    /// changed (0 for a broker name nobody registered).
    ///
    /// As in RocketMQ, the change lasts until the broker registers a changed
    /// topic config (a new data version): its topics' perms then replace it.
    pub fn operate_write_perm(&self, broker_name: &str, wipe: bool) -> usize {
        let mut t = self.lock();
        let mut n = 0;
        for per_broker in t.topic_queue.values_mut() {
            if let Some(q) = per_broker.get_mut(broker_name) {
                q.perm = if wipe {
                    q.perm & !PERM_WRITE
                } else {
                    PERM_READ | PERM_WRITE
                };
                n += 1;
            }
        }
        n
    }

    /// DELETE_TOPIC_IN_NAMESRV: drop a topic's route; with a cluster, only
    /// the queue data of that cluster's brokers (the topic goes when none
    /// is left). Returns whether anything was removed.
    pub fn delete_topic(&self, topic: &str, cluster: Option<&str>) -> bool {
        let mut t = self.lock();
        let Some(cluster) = cluster else {
            return t.topic_queue.remove(topic).is_some();
        };
        let names = t.cluster_addr.get(cluster).cloned().unwrap_or_default();
        let Some(per_broker) = t.topic_queue.get_mut(topic) else {
            return false;
        };
        let before = per_broker.len();
        per_broker.retain(|name, _| !names.contains(name));
        let removed = per_broker.len() != before;
        if per_broker.is_empty() {
            t.topic_queue.remove(topic);
        }
        removed
    }

    /// GET_TOPICS_BY_CLUSTER: the topics with queues on a broker of
    /// `cluster` (none for an unknown cluster).
    pub fn topics_by_cluster(&self, cluster: &str) -> Vec<String> {
        let t = self.lock();
        let Some(names) = t.cluster_addr.get(cluster) else {
            return Vec::new();
        };
        t.topic_queue
            .iter()
            .filter(|(_, per_broker)| per_broker.keys().any(|n| names.contains(n)))
            .map(|(topic, _)| topic.clone())
            .collect()
    }

    /// GET_SYSTEM_TOPIC_LIST_FROM_NS: as RocketMQ 4.9, every cluster name
    /// and broker name (each is a system topic of the broker), and the
    /// address of one registered broker to ask for more.
    pub fn system_topic_list(&self) -> (Vec<String>, Option<String>) {
        let t = self.lock();
        let mut topics = BTreeSet::new();
        for (cluster, names) in &t.cluster_addr {
            topics.insert(cluster.clone());
            topics.extend(names.iter().cloned());
        }
        let addr = t
            .broker_addr
            .values()
            .find_map(|bd| bd.broker_addrs.values().next().cloned());
        (topics.into_iter().collect(), addr)
    }

    /// `ClusterInfo` as JSON (fastjson style).
    pub fn cluster_info_json(&self, quote_keys: bool) -> String {
        let t = self.lock();
        let brokers: Vec<String> = t
            .broker_addr
            .iter()
            .map(|(name, bd)| format!("{}:{}", json::string(name), bd.to_json(quote_keys)))
            .collect();
        let clusters: Vec<String> = t
            .cluster_addr
            .iter()
            .map(|(c, names)| {
                let n: Vec<String> = names.iter().map(|s| json::string(s)).collect();
                format!("{}:[{}]", json::string(c), n.join(","))
            })
            .collect();
        format!(
            "{{\"brokerAddrTable\":{{{}}},\"clusterAddrTable\":{{{}}}}}",
            brokers.join(","),
            clusters.join(",")
        )
    }

    /// Every topic name.
    pub fn topic_list(&self) -> Vec<String> {
        self.lock().topic_queue.keys().cloned().collect()
    }

    /// Number of live broker addresses.
    pub fn live_brokers(&self) -> usize {
        self.lock().live.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(addr: &str, id: i64, conn: u64, topics: &[&str]) -> Registration {
        Registration {
            cluster: "C".into(),
            broker_addr: addr.into(),
            broker_name: "b".into(),
            broker_id: id,
            ha_server_addr: format!("{addr}-ha"),
            data_version: serde_json::json!({"counter": 1, "timestamp": 5}),
            topics: Some(
                topics
                    .iter()
                    .map(|t| TopicEntry {
                        topic_name: t.to_string(),
                        read_queue_nums: 4,
                        write_queue_nums: 4,
                        perm: 6,
                        topic_sys_flag: 0,
                    })
                    .collect(),
            ),
            enable_acting_master: false,
            zone_name: None,
            conn_id: conn,
        }
    }

    #[test]
    fn register_route_and_expire() {
        let m = RouteInfoManager::new();
        assert_eq!(
            m.register(reg("h:1", 0, 1, &["T"])),
            RegisterResult::default()
        );
        let slave = m.register(reg("h:2", 1, 2, &["T"]));
        assert_eq!(slave.master_addr.as_deref(), Some("h:1"));
        assert_eq!(slave.ha_server_addr.as_deref(), Some("h:1-ha"));
        let r = m.route_json("T", false).unwrap();
        assert!(r.contains(r#"{0:"h:1",1:"h:2"}"#), "{r}");
        let r = m.route_json("T", true).unwrap();
        let v: Value = serde_json::from_str(&r).unwrap();
        assert_eq!(v["queueDatas"][0]["writeQueueNums"], 4);
        assert!(m.route_json("U", false).is_none());
        assert_eq!(m.on_connection_closed(2), 1);
        assert_eq!(m.live_brokers(), 1);
        assert_eq!(m.scan_not_active(Duration::from_secs(1000)), 0);
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(m.scan_not_active(Duration::ZERO), 1);
        assert!(m.route_json("T", false).is_none());
        assert_eq!(m.topic_list(), Vec::<String>::new());
        assert_eq!(
            m.cluster_info_json(false),
            r#"{"brokerAddrTable":{},"clusterAddrTable":{}}"#
        );
    }

    fn perm_of(m: &RouteInfoManager, topic: &str) -> i64 {
        let v: Value = serde_json::from_str(&m.route_json(topic, true).unwrap()).unwrap();
        v["queueDatas"][0]["perm"].as_i64().unwrap()
    }

    /// RocketMQ 4.9's `operateWritePermOfBroker`: wipe takes PERM_WRITE,
    /// add sets READ|WRITE; a registration with the same data version keeps
    /// the change, one with a new data version (a changed topic config)
    /// replaces it, as `registerBroker` does.
    #[test]
    fn write_perm_wipe_add_and_reregistration() {
        let m = RouteInfoManager::new();
        m.register(reg("h:1", 0, 1, &["T", "U"]));
        assert_eq!(m.operate_write_perm("b", true), 2);
        assert_eq!(perm_of(&m, "T"), 4);
        assert_eq!(m.operate_write_perm("nobody", true), 0);
        // The broker's periodic registration: same data version, wipe stays.
        m.register(reg("h:1", 0, 1, &["T", "U"]));
        assert_eq!(perm_of(&m, "U"), 4);
        // A slave's registration never touches the queue datas.
        m.register(reg("h:2", 1, 2, &["T", "U"]));
        assert_eq!(perm_of(&m, "T"), 4);
        assert_eq!(m.operate_write_perm("b", false), 2);
        assert_eq!(perm_of(&m, "T"), 6);
        // A read-only topic gets READ|WRITE from add, as in RocketMQ.
        m.operate_write_perm("b", true);
        let mut changed = reg("h:1", 0, 1, &["T", "U"]);
        changed.data_version = serde_json::json!({"counter": 2, "timestamp": 6});
        m.register(changed);
        assert_eq!(
            perm_of(&m, "T"),
            6,
            "a new data version brings the broker's perms"
        );
    }

    #[test]
    fn delete_topic_topics_by_cluster_and_system_topics() {
        let m = RouteInfoManager::new();
        m.register(reg("h:1", 0, 1, &["T", "U"]));
        let mut other = reg("h:9", 0, 9, &["T"]);
        other.cluster = "D".into();
        other.broker_name = "c".into();
        m.register(other);
        assert_eq!(m.topics_by_cluster("C"), vec!["T", "U"]);
        assert_eq!(m.topics_by_cluster("D"), vec!["T"]);
        assert!(m.topics_by_cluster("nope").is_empty());
        let (sys, addr) = m.system_topic_list();
        assert_eq!(sys, vec!["C", "D", "b", "c"]);
        assert!(addr.is_some());
        // With a cluster: only that cluster's queue datas go.
        assert!(m.delete_topic("T", Some("D")));
        let v: Value = serde_json::from_str(&m.route_json("T", true).unwrap()).unwrap();
        assert_eq!(v["queueDatas"].as_array().unwrap().len(), 1);
        assert!(!m.delete_topic("T", Some("nope")));
        assert!(m.delete_topic("T", None));
        assert!(m.route_json("T", true).is_none());
        assert!(!m.delete_topic("T", None));
        assert_eq!(m.topic_list(), vec!["U"]);
        // orderTopicConf sits where fastjson sorts it.
        let r = m.route_json_with("U", true, Some("b:4")).unwrap();
        assert!(
            r.contains(r#""filterServerTable":{},"orderTopicConf":"b:4","queueDatas""#),
            "{r}"
        );
    }

    /// The brokerData and queueData objects as RocketMQ 5.x's name server
    /// writes them (remoting/protocol/route/BrokerData.java, QueueData.java,
    /// TopicRouteData.java; fastjson: fields by name, nulls left out).
    #[test]
    fn route_json_has_the_rocketmq_5_fields() {
        let m = RouteInfoManager::new();
        m.register(reg("h:1", 0, 1, &["T"]));
        let r = m.route_json("T", false).unwrap();
        assert_eq!(
            r,
            concat!(
                r#"{"brokerDatas":[{"brokerAddrs":{0:"h:1"},"brokerName":"b","cluster":"C","enableActingMaster":false}],"#,
                r#""filterServerTable":{},"#,
                r#""queueDatas":[{"brokerName":"b","perm":6,"readQueueNums":4,"topicSysFlag":0,"writeQueueNums":4}]}"#
            )
        );
        // A 5.x broker's header fields are kept and shown, the latest registration winning.
        let mut five = reg("h:1", 0, 1, &["T"]);
        five.enable_acting_master = true;
        five.zone_name = Some("z1".into());
        m.register(five);
        let r = m.route_json("T", true).unwrap();
        assert!(
            r.contains(r#""cluster":"C","enableActingMaster":true,"zoneName":"z1"}"#),
            "{r}"
        );
        let info = m.cluster_info_json(false);
        assert!(
            info.contains(r#""enableActingMaster":true,"zoneName":"z1"}"#),
            "{info}"
        );
        m.register(reg("h:1", 0, 1, &["T"]));
        let r = m.route_json("T", true).unwrap();
        assert!(r.contains(r#""enableActingMaster":false}"#), "{r}");
    }

    /// rocketmq-client-rust 1.0's route structs (rocketmq-protocol 1.0:
    /// `TopicRouteData`, `BrokerData`, `QueueData`), with the same serde
    /// rules: every non-`Option` field is required. Its first route lookup
    /// failed ("Serialization failed") while `enableActingMaster` was missing.
    mod rust_client_shape {
        use serde::Deserialize;
        use std::collections::HashMap;

        #[derive(Deserialize)]
        #[allow(dead_code)]
        pub struct TopicRouteData {
            #[serde(rename = "orderTopicConf")]
            pub order_topic_conf: Option<String>,
            #[serde(rename = "queueDatas")]
            pub queue_datas: Vec<QueueData>,
            #[serde(rename = "brokerDatas")]
            pub broker_datas: Vec<BrokerData>,
            #[serde(rename = "filterServerTable")]
            pub filter_server_table: HashMap<String, Vec<String>>,
            #[serde(rename = "topicQueueMappingInfo", alias = "topicQueueMappingByBroker")]
            pub topic_queue_mapping_by_broker: Option<HashMap<String, serde_json::Value>>,
        }

        #[derive(Deserialize)]
        #[allow(dead_code)]
        pub struct BrokerData {
            pub cluster: String,
            #[serde(rename = "brokerName")]
            pub broker_name: String,
            #[serde(rename = "brokerAddrs")]
            pub broker_addrs: HashMap<u64, String>,
            #[serde(rename = "zoneName")]
            pub zone_name: Option<String>,
            #[serde(rename = "enableActingMaster")]
            pub enable_acting_master: bool,
        }

        #[derive(Deserialize)]
        #[allow(dead_code)]
        pub struct QueueData {
            #[serde(rename = "brokerName")]
            pub broker_name: String,
            #[serde(rename = "readQueueNums")]
            pub read_queue_nums: u32,
            #[serde(rename = "writeQueueNums")]
            pub write_queue_nums: u32,
            pub perm: u32,
            #[serde(rename = "topicSysFlag")]
            pub topic_sys_flag: u32,
        }

        #[derive(Deserialize)]
        #[allow(dead_code)]
        pub struct ClusterInfo {
            #[serde(rename = "brokerAddrTable")]
            pub broker_addr_table: Option<HashMap<String, BrokerData>>,
            #[serde(rename = "clusterAddrTable")]
            pub cluster_addr_table: Option<HashMap<String, Vec<String>>>,
        }
    }

    #[test]
    fn rocketmq_client_rust_parses_the_route_and_cluster_info() {
        let m = RouteInfoManager::new();
        m.register(reg("h:1", 0, 1, &["T"]));
        m.register(reg("h:2", 1, 2, &["T"]));
        let r = m.route_json("T", true).unwrap();
        let route: rust_client_shape::TopicRouteData = serde_json::from_str(&r).unwrap();
        assert_eq!(route.broker_datas.len(), 1);
        let bd = &route.broker_datas[0];
        assert_eq!(bd.broker_addrs.get(&0).map(String::as_str), Some("h:1"));
        assert_eq!(bd.broker_addrs.get(&1).map(String::as_str), Some("h:2"));
        assert!(!bd.enable_acting_master);
        assert_eq!(bd.zone_name, None);
        assert_eq!(route.queue_datas[0].write_queue_nums, 4);
        // The client quotes fastjson's integer keys before parsing; so do we here.
        let info = json::quote_integer_keys(&m.cluster_info_json(false));
        let info: rust_client_shape::ClusterInfo = serde_json::from_str(&info).unwrap();
        let table = info.broker_addr_table.unwrap();
        assert_eq!(table["b"].cluster, "C");
        assert_eq!(info.cluster_addr_table.unwrap()["C"], vec!["b".to_string()]);
    }
}
