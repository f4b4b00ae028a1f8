//! Request, response and language codes of RocketMQ 4.x remoting
//! (`RequestCode.java`, `ResponseCode.java`, `LanguageCode.java`).

/// Request codes (`org.apache.rocketmq.common.protocol.RequestCode`).
pub mod request {
    /// Send a message, long header names.
    pub const SEND_MESSAGE: i32 = 10;
    /// Pull messages of one queue.
    pub const PULL_MESSAGE: i32 = 11;
    /// Query messages by key.
    pub const QUERY_MESSAGE: i32 = 12;
    /// Query a broker offset.
    pub const QUERY_BROKER_OFFSET: i32 = 13;
    /// Read a consumer group's offset for one queue.
    pub const QUERY_CONSUMER_OFFSET: i32 = 14;
    /// Store a consumer group's offset for one queue.
    pub const UPDATE_CONSUMER_OFFSET: i32 = 15;
    /// Create or update a topic on a broker.
    pub const UPDATE_AND_CREATE_TOPIC: i32 = 17;
    /// Every topic config of a broker.
    pub const GET_ALL_TOPIC_CONFIG: i32 = 21;
    /// Change broker config.
    pub const UPDATE_BROKER_CONFIG: i32 = 25;
    /// Read broker config.
    pub const GET_BROKER_CONFIG: i32 = 26;
    /// Delete expired commitlog files now.
    pub const TRIGGER_DELETE_FILES: i32 = 27;
    /// Broker runtime figures.
    pub const GET_BROKER_RUNTIME_INFO: i32 = 28;
    /// Queue offset of a store time.
    pub const SEARCH_OFFSET_BY_TIMESTAMP: i32 = 29;
    /// Max offset of a queue.
    pub const GET_MAX_OFFSET: i32 = 30;
    /// Min offset of a queue.
    pub const GET_MIN_OFFSET: i32 = 31;
    /// Store time of the oldest message of a queue.
    pub const GET_EARLIEST_MSG_STORETIME: i32 = 32;
    /// A message by its offset msgId.
    pub const VIEW_MESSAGE_BY_ID: i32 = 33;
    /// Client heartbeat (producer and consumer groups).
    pub const HEART_BEAT: i32 = 34;
    /// A client leaves its groups.
    pub const UNREGISTER_CLIENT: i32 = 35;
    /// A consumer sends a message back for retry.
    pub const CONSUMER_SEND_MSG_BACK: i32 = 36;
    /// Commit or roll back a half message.
    pub const END_TRANSACTION: i32 = 37;
    /// Client ids of a consumer group.
    pub const GET_CONSUMER_LIST_BY_GROUP: i32 = 38;
    /// Broker to producer: check a transaction.
    pub const CHECK_TRANSACTION_STATE: i32 = 39;
    /// Broker to consumer: the group changed.
    pub const NOTIFY_CONSUMER_IDS_CHANGED: i32 = 40;
    /// Lock queues for orderly consumption.
    pub const LOCK_BATCH_MQ: i32 = 41;
    /// Unlock queues.
    pub const UNLOCK_BATCH_MQ: i32 = 42;
    /// Every consumer offset of a broker (`consumerOffset.json`'s content).
    pub const GET_ALL_CONSUMER_OFFSET: i32 = 43;
    /// Every delay-level progress of a broker (`delayOffset.json`'s content).
    pub const GET_ALL_DELAY_OFFSET: i32 = 45;
    /// Create or update a plain ACL account (`CreateAccessConfigRequestHeader`).
    pub const UPDATE_AND_CREATE_ACL_CONFIG: i32 = 50;
    /// Delete a plain ACL account (`accessKey`).
    pub const DELETE_ACL_CONFIG: i32 = 51;
    /// The ACL files' data versions (`GetBrokerAclConfigResponseHeader`).
    pub const GET_BROKER_CLUSTER_ACL_INFO: i32 = 52;
    /// Replace the global white list of an ACL file (`globalWhiteAddrs`).
    pub const UPDATE_GLOBAL_WHITE_ADDRS_CONFIG: i32 = 53;
    /// Every account and global white address (`GetBrokerClusterAclConfigResponseBody`).
    pub const GET_BROKER_CLUSTER_ACL_CONFIG: i32 = 54;
    /// Set a name server KV config item (`namespace`, `key`, `value`).
    pub const PUT_KV_CONFIG: i32 = 100;
    /// Read a name server KV config item (`namespace`, `key`; answer header `value`).
    pub const GET_KV_CONFIG: i32 = 101;
    /// Delete a name server KV config item (`namespace`, `key`).
    pub const DELETE_KV_CONFIG: i32 = 102;
    /// Broker registers with a name server.
    pub const REGISTER_BROKER: i32 = 103;
    /// Broker leaves a name server.
    pub const UNREGISTER_BROKER: i32 = 104;
    /// Route of a topic.
    pub const GET_ROUTEINFO_BY_TOPIC: i32 = 105;
    /// Brokers and clusters known to a name server.
    pub const GET_BROKER_CLUSTER_INFO: i32 = 106;
    /// Every subscription group of a broker (`subscriptionGroup.json`'s content).
    pub const GET_ALL_SUBSCRIPTIONGROUP_CONFIG: i32 = 201;
    /// Name server: take PERM_WRITE from a broker name's queues in every
    /// route (`brokerName`; answer header `wipeTopicCount`).
    pub const WIPE_WRITE_PERM_OF_BROKER: i32 = 205;
    /// Every topic known to a name server.
    pub const GET_ALL_TOPIC_LIST_FROM_NAMESERVER: i32 = 206;
    /// Name server: drop a topic's route (`topic`, optional `clusterName`).
    pub const DELETE_TOPIC_IN_NAMESRV: i32 = 216;
    /// Name server: a KV config namespace as `KVTable` (`namespace`).
    pub const GET_KVLIST_BY_NAMESPACE: i32 = 219;
    /// Name server: the topics of a cluster as `TopicList` (`cluster`).
    pub const GET_TOPICS_BY_CLUSTER: i32 = 224;
    /// Name server: cluster and broker names as `TopicList`, with one
    /// broker's address.
    pub const GET_SYSTEM_TOPIC_LIST_FROM_NS: i32 = 304;
    /// Send a message, single-letter header names.
    pub const SEND_MESSAGE_V2: i32 = 310;
    /// Send a batch of messages.
    pub const SEND_BATCH_MESSAGE: i32 = 320;
    /// Name server: give a broker name's queues PERM_READ | PERM_WRITE in
    /// every route (`brokerName`; answer header `addTopicCount`).
    pub const ADD_WRITE_PERM_OF_BROKER: i32 = 327;
    /// Ask a broker to delete expired commitlog files.
    pub const DELETE_EXPIRED_COMMITLOG: i32 = 329;
    /// Pull messages of one queue for a lite pull consumer (RocketMQ 5.x; the
    /// same `PullMessageProcessor` as PULL_MESSAGE, its own executor).
    pub const LITE_PULL_MESSAGE: i32 = 361;
    /// A client checks its subscription's filter type with the broker.
    pub const CHECK_CLIENT_CONFIG: i32 = 46;
    /// `TopicStatsTable`: min/max offset and last store time per queue.
    pub const GET_TOPIC_STATS_INFO: i32 = 202;
    /// `ConsumerConnection` of an online consumer group.
    pub const GET_CONSUMER_CONNECTION_LIST: i32 = 203;
    /// `ProducerConnection` of a producer group.
    pub const GET_PRODUCER_CONNECTION_LIST: i32 = 204;
    /// `ConsumeStats` of a consumer group (lag per queue, TPS).
    pub const GET_CONSUME_STATS: i32 = 208;
    /// `GroupList` of the groups consuming a topic.
    pub const QUERY_TOPIC_CONSUME_BY_WHO: i32 = 300;
    /// `BrokerStatsData` of one stats item (`BrokerStatsManager`'s keys).
    pub const VIEW_BROKER_STATS_DATA: i32 = 315;
    /// `ConsumeStatsList` of every subscription group of a broker.
    pub const GET_BROKER_CONSUME_STATS: i32 = 317;
    /// `ProducerTableInfo`: every producer group's clients.
    pub const GET_ALL_PRODUCER_INFO: i32 = 328;
    /// `TopicConfigAndQueueMapping` of one topic (RocketMQ 5.x).
    pub const GET_TOPIC_CONFIG: i32 = 351;
    /// ferromq-specific (not a RocketMQ code): pending half messages by producer
    /// group, as JSON (`ferromq-admin txnPending`).
    pub const FERROMQ_GET_PENDING_TRANSACTIONS: i32 = 1_000_037;
}

/// Response codes (`ResponseCode.java`, `RemotingSysResponseCode.java`).
pub mod response {
    /// Success.
    pub const SUCCESS: i32 = 0;
    /// A failure the client may retry.
    pub const SYSTEM_ERROR: i32 = 1;
    /// The server is overloaded (flow control).
    pub const SYSTEM_BUSY: i32 = 2;
    /// Unknown request code.
    pub const REQUEST_CODE_NOT_SUPPORTED: i32 = 3;
    /// Transaction failed.
    pub const TRANSACTION_FAILED: i32 = 4;
    /// Stored, but the sync flush timed out.
    pub const FLUSH_DISK_TIMEOUT: i32 = 10;
    /// Stored, but no slave is available.
    pub const SLAVE_NOT_AVAILABLE: i32 = 11;
    /// Stored, but the slave did not confirm in time.
    pub const FLUSH_SLAVE_TIMEOUT: i32 = 12;
    /// The message cannot be stored as given.
    pub const MESSAGE_ILLEGAL: i32 = 13;
    /// The store refuses writes (shut down, slave, disk full).
    pub const SERVICE_NOT_AVAILABLE: i32 = 14;
    /// Unsupported client version.
    pub const VERSION_NOT_SUPPORTED: i32 = 15;
    /// Not allowed.
    pub const NO_PERMISSION: i32 = 16;
    /// Unknown topic.
    pub const TOPIC_NOT_EXIST: i32 = 17;
    /// The topic exists already.
    pub const TOPIC_EXIST_ALREADY: i32 = 18;
    /// Nothing new in the queue.
    pub const PULL_NOT_FOUND: i32 = 19;
    /// Pull again at once (nothing matched the filter).
    pub const PULL_RETRY_IMMEDIATELY: i32 = 20;
    /// The pull offset is illegal.
    pub const PULL_OFFSET_MOVED: i32 = 21;
    /// Nothing found.
    pub const QUERY_NOT_FOUND: i32 = 22;
    /// Bad subscription expression.
    pub const SUBSCRIPTION_PARSE_FAILED: i32 = 23;
    /// Unknown subscription.
    pub const SUBSCRIPTION_NOT_EXIST: i32 = 24;
    /// Subscription is outdated.
    pub const SUBSCRIPTION_NOT_LATEST: i32 = 25;
    /// Unknown subscription group.
    pub const SUBSCRIPTION_GROUP_NOT_EXIST: i32 = 26;
    /// The broker holds no compiled filter for a SQL92 subscription.
    pub const FILTER_DATA_NOT_EXIST: i32 = 27;
    /// The broker's compiled filter is older than the pull's subVersion.
    pub const FILTER_DATA_NOT_LATEST: i32 = 28;
    /// No consumer of the group is online.
    pub const CONSUMER_NOT_ONLINE: i32 = 206;
    /// UPDATE_AND_CREATE_ACL_CONFIG failed.
    pub const UPDATE_AND_CREATE_ACL_CONFIG_FAILED: i32 = 209;
    /// DELETE_ACL_CONFIG failed.
    pub const DELETE_ACL_CONFIG_FAILED: i32 = 210;
    /// UPDATE_GLOBAL_WHITE_ADDRS_CONFIG failed.
    pub const UPDATE_GLOBAL_WHITE_ADDRS_CONFIG_FAILED: i32 = 211;
}

/// Name of a `LanguageCode` ordinal, as fastjson writes the enum.
pub fn language_name(code: u8) -> &'static str {
    match code {
        0 => "JAVA",
        1 => "CPP",
        2 => "DOTNET",
        3 => "PYTHON",
        4 => "DELPHI",
        5 => "ERLANG",
        6 => "RUBY",
        7 => "OTHER",
        8 => "HTTP",
        9 => "GO",
        10 => "PHP",
        11 => "OMS",
        12 => "RUST",
        _ => "OTHER",
    }
}

/// Ordinal of a `LanguageCode` name (case-insensitive); unknown names map to OTHER (7).
pub fn language_code(name: &str) -> u8 {
    (0u8..=12)
        .find(|c| language_name(*c).eq_ignore_ascii_case(name.trim()))
        .unwrap_or(7)
}
