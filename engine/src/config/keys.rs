//! Key lists: RocketMQ keys the store leaves to the broker, and legacy keys.

/// RocketMQ 4.9 broker keys that the store does not read: `BrokerConfig`,
/// `NettyServerConfig`, `NettyClientConfig`, and the `MessageStoreConfig` keys that belong
/// to HA, scheduling, DLedger and other parts outside this crate.
///
/// [`StoreConfig::from_properties`](super::StoreConfig::from_properties) does not warn
/// about these keys; they stay in the [`Properties`](super::Properties) for the broker
/// and replication crates. Keys that the store reads are listed by
/// [`StoreConfig::keys`](super::StoreConfig::keys) and are not repeated here.
pub const BROKER_KEYS: &[&str] = &[
    // ferromq broker keys (server crate)
    "bindAddress",
    "serverMaxFrameBytes",
    "slaveSyncInterval",
    "serverMaxRequestsPerConnection",
    "serverMaxQueuedReplyBytes",
    "serverMaxQueuedReplyBytesTotal",
    "serverMaxConnections",
    "longPollingMaxSuspendMillis",
    "longPollingMaxParkedPerConnection",
    "aclFilePath",
    // The broker's own credentials (server crate): RocketMQ ACL keys
    // `accessKey`/`secretKey` and RocketMQ 5's AuthConfig key.
    "accessKey",
    "secretKey",
    "innerClientAuthenticationCredentials",
    "fastListenPort",
    // TLS (RocketMQ's TlsSystemConfig names; read by the server crate)
    "tls.config.file",
    "tls.enable",
    "tls.test.mode.enable",
    "tls.server.mode",
    "tls.server.certPath",
    "tls.server.keyPath",
    "tls.server.keyPassword",
    "tls.server.need.client.auth",
    "tls.server.authClient",
    "tls.server.trustCertPath",
    "tls.client.certPath",
    "tls.client.keyPath",
    "tls.client.keyPassword",
    "tls.client.authServer",
    "tls.client.trustCertPath",
    "tls.ciphers",
    "tls.protocols",
    "aclReloadIntervalMs",
    // Prometheus metrics (RocketMQ 5's keys, read by the server crate)
    "metricsPromExporterHost",
    "metricsPromExporterPort",
    "metricsExporterType",
    // BrokerConfig
    "rocketmqHome",
    "namesrvAddr",
    "brokerIP2",
    "brokerName",
    "brokerClusterName",
    "brokerId",
    "brokerPermission",
    "clusterTopicEnable",
    "brokerTopicEnable",
    "autoCreateSubscriptionGroup",
    "messageStorePlugIn",
    "msgTraceTopicName",
    "traceTopicEnable",
    "sendMessageThreadPoolNums",
    "putMessageFutureThreadPoolNums",
    "pullMessageThreadPoolNums",
    "processReplyMessageThreadPoolNums",
    "queryMessageThreadPoolNums",
    "adminBrokerThreadPoolNums",
    "clientManageThreadPoolNums",
    "consumerManageThreadPoolNums",
    "heartbeatThreadPoolNums",
    "endTransactionThreadPoolNums",
    "flushConsumerOffsetInterval",
    "flushConsumerOffsetHistoryInterval",
    "rejectTransactionMessage",
    "fetchNamesrvAddrByAddressServer",
    "sendThreadPoolQueueCapacity",
    "putThreadPoolQueueCapacity",
    "pullThreadPoolQueueCapacity",
    "replyThreadPoolQueueCapacity",
    "queryThreadPoolQueueCapacity",
    "clientManagerThreadPoolQueueCapacity",
    "consumerManagerThreadPoolQueueCapacity",
    "heartbeatThreadPoolQueueCapacity",
    "endTransactionPoolQueueCapacity",
    "filterServerNums",
    "longPollingEnable",
    "shortPollingTimeMills",
    "notifyConsumerIdsChangedEnable",
    "highSpeedMode",
    "commercialEnable",
    "commercialTimerCount",
    "commercialTransCount",
    "commercialBigCount",
    "commercialBaseCount",
    "transferMsgByHeap",
    "maxDelayTime",
    "regionId",
    "registerBrokerTimeoutMills",
    "slaveReadEnable",
    "disableConsumeIfConsumerReadSlowly",
    "consumerFallbehindThreshold",
    "brokerFastFailureEnable",
    "waitTimeMillsInSendQueue",
    "waitTimeMillsInPullQueue",
    "waitTimeMillsInHeartbeatQueue",
    "waitTimeMillsInTransactionQueue",
    "startAcceptSendRequestTimeStamp",
    "traceOn",
    "enableCalcFilterBitMap",
    "expectConsumerNumUseFilter",
    "maxErrorRateOfBloomFilter",
    "filterDataCleanTimeSpan",
    "filterSupportRetry",
    "enablePropertyFilter",
    "compressedRegister",
    "forceRegister",
    "registerNameServerPeriod",
    "transactionTimeOut",
    "transactionCheckMax",
    "transactionCheckInterval",
    "aclEnable",
    "storeReplyMessageEnable",
    "autoDeleteUnusedStats",
    "isolateLogEnable",
    "rejectPullConsumerEnable",
    "accountStatsEnable",
    "accountStatsPrintZeroValues",
    // NettyServerConfig
    "serverWorkerThreads",
    "serverCallbackExecutorThreads",
    "serverSelectorThreads",
    "serverOnewaySemaphoreValue",
    "serverAsyncSemaphoreValue",
    "serverChannelMaxIdleTimeSeconds",
    "serverSocketSndBufSize",
    "serverSocketRcvBufSize",
    "serverSocketBacklog",
    "serverPooledByteBufAllocatorEnable",
    "useEpollNativeSelector",
    "writeBufferHighWaterMark",
    "writeBufferLowWaterMark",
    // NettyClientConfig
    "clientWorkerThreads",
    "clientCallbackExecutorThreads",
    "clientOnewaySemaphoreValue",
    "clientAsyncSemaphoreValue",
    "connectTimeoutMillis",
    "channelNotActiveInterval",
    "clientChannelMaxIdleTimeSeconds",
    "clientSocketSndBufSize",
    "clientSocketRcvBufSize",
    "clientPooledByteBufAllocatorEnable",
    "clientCloseSocketIfTimeout",
    "useTLS",
    // MessageStoreConfig keys outside the store proper (HA, schedule, DLedger, ...)
    "flushDelayOffsetInterval",
    "offsetCheckInSlave",
    "debugLockEnable",
    "duplicationEnable",
    "diskFallRecorded",
    "defaultQueryMaxNum",
    "fastFailIfNoBufferInStorePool",
    "useReentrantLockWhenPutMessage",
    "putMsgIndexHightWater",
    "maxMsgsNumBatch",
    "messageIndexSafe",
    "enableConsumeQueueExt",
    "mappedFileSizeConsumeQueueExt",
    "bitMapLengthConsumeQueueExt",
    "enableDLegerCommitLog",
    "dLegerGroup",
    "dLegerPeers",
    "dLegerSelfId",
    "preferredLeaderId",
    "isEnableBatchPush",
    "enableScheduleMessageStats",
    "enableLmq",
    "enableMultiDispatch",
    "maxLmqConsumeQueueNum",
    "enableScheduleAsyncDeliver",
    "scheduleAsyncDeliverMaxPendingLimit",
    "scheduleAsyncDeliverMaxResendNum2Blocked",
    // RocketMQ 5 controller mode (automatic failover): the master-epoch file,
    // read by the replication crate (`ferromq_replication::epoch`); default
    // `<storePathRootDir>/epochFileCheckpoint`.
    "storePathEpochFile",
    // RocketMQ 5 controller mode, broker side: read by the broker
    // (`ferromq_server::broker::config::ControllerModeConfig`).
    "enableControllerMode",
    "brokerHeartbeatInterval",
    "controllerHeartBeatTimeoutMills",
    "storePathBrokerIdentity",
    "controllerAddr",
    "fetchControllerAddrByDnsLookup",
    "controllerDeployedStandAlone",
    "syncBrokerMetadataPeriod",
    "checkSyncStateSetPeriod",
    "syncControllerMetadataPeriod",
    "brokerElectionPriority",
    "allAckInSyncStateSet",
    "inSyncReplicas",
    "minInSyncReplicas",
    "enableAutoInSyncReplicas",
    "haMaxTimeSlaveNotCatchup",
];

/// Keys from RocketMQ 3.x tutorials that 4.x brokers ignore, with what they meant and
/// what ferromq does instead. They load without error and produce an informational
/// [`ConfigWarning`](super::ConfigWarning).
pub const LEGACY_KEYS: &[(&str, &str)] = &[
    (
        "checkTransactionMessageEnable",
        "a RocketMQ 3.x switch for checking back prepared transaction messages (3.x kept a \
         transaction state table); 4.x has no such setting: check-back always runs and is \
         tuned with transactionCheckInterval / transactionTimeOut / transactionCheckMax. \
         Ignored",
    ),
    (
        "storePathConsumeQueue",
        "the RocketMQ 3.0.x consume-queue directory; 4.x and ferromq always use \
         <storePathRootDir>/consumequeue. Ignored",
    ),
    (
        "storePathIndex",
        "the RocketMQ 3.0.x index directory; 4.x and ferromq always use \
         <storePathRootDir>/index. Ignored",
    ),
    (
        "storeCheckpoint",
        "the RocketMQ 3.0.x checkpoint file path; 4.x and ferromq always use \
         <storePathRootDir>/checkpoint. Ignored",
    ),
    (
        "abortFile",
        "the RocketMQ 3.0.x abort-marker file path; 4.x and ferromq always use \
         <storePathRootDir>/abort. Ignored",
    ),
];

/// Broker keys whose non-default value asks for a RocketMQ feature ferromq does not
/// have: `(key, the harmless value, what is ignored)`. Setting another value warns.
pub(crate) const UNSUPPORTED_FEATURES: &[(&str, &str, &str)] = &[
    (
        "enableDLegerCommitLog",
        "false",
        "ferromq has no DLedger (Raft) commitlog; it uses master/slave replication",
    ),
    (
        "enableConsumeQueueExt",
        "false",
        "ferromq has no consume-queue extension files (consumequeue_ext)",
    ),
    (
        "duplicationEnable",
        "false",
        "ferromq does not support duplicating a store from a confirm offset",
    ),
    (
        "enableLmq",
        "false",
        "ferromq does not implement light message queues (LMQ)",
    ),
    (
        "enableMultiDispatch",
        "false",
        "ferromq does not implement multi-dispatch",
    ),
];

/// Store keys a running store changes live ([`crate::MessageStore::set_live`]):
/// the commitlog and consume-queue flush schedules and the retention settings
/// the clean service reads on each pass. Every other store key (paths, file
/// sizes, the flush mode, the role, ports, pools) is fixed while the store runs.
pub const LIVE_KEYS: &[&str] = &[
    "flushIntervalCommitLog",
    "flushCommitLogLeastPages",
    "flushCommitLogThoroughInterval",
    "flushIntervalConsumeQueue",
    "flushConsumeQueueLeastPages",
    "flushConsumeQueueThoroughInterval",
    "fileReservedTime",
    "deleteWhen",
    "diskMaxUsedSpaceRatio",
    "cleanFileForciblyEnable",
    "cleanResourceInterval",
    "deleteCommitLogFilesInterval",
    "deleteFileBatchMax",
    "destroyMapedFileIntervalForcibly",
    "redeleteHangedFileInterval",
];
