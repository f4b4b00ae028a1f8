//! `ferromq-admin`: RocketMQ's `mqadmin` subcommands that matter day to day,
//! against any name server and broker speaking RocketMQ 4.x remoting.
//!
//! ```text
//! ferromq-admin -n 127.0.0.1:9876 topicList
//! ferromq-admin -n 127.0.0.1:9876 updateTopic -t T -c DefaultCluster -r 4 -w 4
//! ferromq-admin -n 127.0.0.1:9876 topicStatus -t T
//! ferromq-admin -n 127.0.0.1:9876 consumerProgress -g G
//! ferromq-admin -n 127.0.0.1:9876 consumerConnection -g G
//! ferromq-admin -n 127.0.0.1:9876 producerConnection -g P -t T
//! ferromq-admin -n 127.0.0.1:9876 statsAll -t T
//! ferromq-admin txnPending -b 127.0.0.1:10911
//! ferromq-admin damagedRecords -b 127.0.0.1:10911
//! ferromq-admin updateAclConfig -b 127.0.0.1:10911 -a someone1 -s secret123 -t T=PUB
//! ferromq-admin clusterAclConfigVersion -c DefaultCluster
//! ferromq-admin getControllerMetaData -a 127.0.0.1:9878
//! ferromq-admin getSyncStateSet -a 127.0.0.1:9878 -b broker-a
//! ferromq-admin electMaster -a 127.0.0.1:9878 -c DefaultCluster -b broker-a -i 2
//! ```
//!
//! With `--accessKey/--secretKey` (or `$ROCKETMQ_HOME/conf/tools.yml`, as
//! mqadmin reads it) every request is signed for a broker with plain ACL.
//! With `--tls` every connection is TLS (`--tls-ca` checks the server,
//! `--tls-cert/--tls-key` show a client certificate).
//!
//! Output is a plain table; any failure prints `ferromq-admin: <why>` and exits 1.

mod acl;
mod brokers;
mod call_client;
mod client;
mod controller;
mod messages;
mod namesrv_ops;
mod ops_mut;
mod ops_stats;
mod print;
mod topics;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use client::{Admin, Res};
use ferromq_server::acl::Credentials;
use ferromq_server::remoting::tls::TlsClientSettings;

/// RocketMQ admin tool.
#[derive(Parser, Debug)]
#[command(name = "ferromq-admin", version, about)]
struct Cli {
    /// Name server addresses, `host:port;host:port` (default: $NAMESRV_ADDR).
    #[arg(short = 'n', long = "namesrvAddr", global = true)]
    namesrv: Option<String>,
    /// ACL access key: every request is signed as RocketMQ clients sign
    /// them (default: `accessKey` of `$ROCKETMQ_HOME/conf/tools.yml`, as
    /// mqadmin reads it; without either, requests go unsigned).
    #[arg(long = "accessKey", global = true, requires = "secret_key")]
    access_key: Option<String>,
    /// ACL secret key of `--accessKey`.
    #[arg(long = "secretKey", global = true, requires = "access_key")]
    secret_key: Option<String>,
    /// Connect with TLS. Without `--tls-ca` any server certificate is
    /// accepted, as RocketMQ clients do by default (`tls.client.authServer=false`).
    #[arg(long = "tls", global = true)]
    tls: bool,
    /// PEM CA bundle the server certificate must chain to (implies `--tls`).
    #[arg(long = "tls-ca", global = true)]
    tls_ca: Option<std::path::PathBuf>,
    /// PEM client certificate, for servers that ask for one
    /// (`tls.server.need.client.auth`); implies `--tls`.
    #[arg(long = "tls-cert", global = true, requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of `--tls-cert`.
    #[arg(long = "tls-key", global = true, requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
#[allow(clippy::enum_variant_names)]
enum Cmd {
    /// List every topic the name server knows (-c: with cluster and groups).
    #[command(name = "topicList")]
    TopicList(namesrv_ops::TopicListArgs),
    /// A topic's route from the name server, as mqadmin prints it (JSON).
    #[command(name = "topicRoute")]
    TopicRoute {
        /// Topic.
        #[arg(short = 't', long = "topic")]
        topic: String,
    },
    /// Create or update a topic on one broker (-b) or every master of a cluster (-c).
    #[command(name = "updateTopic")]
    UpdateTopic(UpdateTopic),
    /// Brokers per cluster, with their runtime figures.
    #[command(name = "clusterList")]
    ClusterList,
    /// Min and max offsets of every queue of a topic.
    #[command(name = "topicStatus")]
    TopicStatus {
        /// Topic.
        #[arg(short = 't', long = "topic")]
        topic: String,
    },
    /// A consumer group's offsets and lag per queue.
    #[command(name = "consumerProgress")]
    ConsumerProgress {
        /// Consumer group.
        #[arg(short = 'g', long = "groupName")]
        group: String,
        /// Only this topic.
        #[arg(short = 't', long = "topicName")]
        topic: Option<String>,
    },
    /// A consumer group's clients and subscriptions (mqadmin's layout).
    #[command(name = "consumerConnection")]
    ConsumerConnection(ops_stats::ConsumerConnection),
    /// A producer group's clients on a topic's brokers (mqadmin's layout).
    #[command(name = "producerConnection")]
    ProducerConnection(ops_stats::ProducerConnection),
    /// Per topic and group: lag, in/out TPS and messages of the last day.
    #[command(name = "statsAll")]
    StatsAll(ops_stats::StatsAll),
    /// Every subscription group's lag per queue on one broker (mqadmin's layout).
    #[command(name = "brokerConsumeStats")]
    BrokerConsumeStats(ops_stats::BrokerConsumeStats),
    /// Messages of a topic with a key.
    #[command(name = "queryMsgByKey")]
    QueryMsgByKey {
        /// Topic.
        #[arg(short = 't', long = "topic")]
        topic: String,
        /// Key.
        #[arg(short = 'k', long = "msgKey")]
        key: String,
    },
    /// One message by its msgId (offset msgId; with -t also a unique key).
    /// With -g and -d, the message is sent to that consumer to consume at
    /// once (CONSUME_MESSAGE_DIRECTLY) and its result printed.
    #[command(name = "queryMsgById")]
    QueryMsgById {
        /// Message id.
        #[arg(short = 'i', long = "msgId")]
        msg_id: String,
        /// Topic, to look a unique key (client msgId) up.
        #[arg(short = 't', long = "topic")]
        topic: Option<String>,
        /// Consumer group (with -d: consume the message directly).
        #[arg(short = 'g', long = "consumerGroup", requires = "client_id")]
        group: Option<String>,
        /// Client id of a consumer of the group (with -g).
        #[arg(short = 'd', long = "clientId", requires = "group")]
        client_id: Option<String>,
    },
    /// Each client's running info: properties, subscriptions, offsets,
    /// RT and TPS (GET_CONSUMER_RUNNING_INFO, mqadmin's layout).
    #[command(name = "consumerStatus")]
    ConsumerStatus(call_client::ConsumerStatus),
    /// Each client's offsets as the client holds them
    /// (INVOKE_BROKER_TO_GET_CONSUMER_STATUS).
    #[command(name = "getConsumerStatus")]
    GetConsumerStatus(call_client::GetConsumerStatus),
    /// Delete expired commitlog files now.
    #[command(name = "deleteExpiredCommitLog")]
    DeleteExpiredCommitLog(Target),
    /// A broker's runtime figures.
    #[command(name = "brokerStatus")]
    BrokerStatus(Target),
    /// A broker's effective configuration.
    #[command(name = "getBrokerConfig")]
    GetBrokerConfig(Target),
    /// Replication: per slave of a master its address, acked offset and lag in
    /// bytes and ms; for a slave, the master it follows.
    #[command(name = "haStatus")]
    HaStatus(Target),
    /// Records the broker found damaged and skipped (a body that fails its
    /// CRC, a damaged header): topic, queue, queue offset, commitlog offset
    /// (ferromq-specific, from the runtime figures).
    #[command(name = "damagedRecords")]
    DamagedRecords(Target),
    /// Half messages still waiting for commit or rollback, per producer group,
    /// with their age (ferromq-specific broker request).
    #[command(name = "txnPending")]
    TxnPending(Target),
    /// Create or update a plain ACL account on one broker (-b) or every
    /// broker of a cluster (-c).
    #[command(name = "updateAclConfig", visible_alias = "updateAccessConfig")]
    UpdateAclConfig(acl::UpdateAcl),
    /// Delete a plain ACL account on one broker (-b) or every broker of a
    /// cluster (-c).
    #[command(name = "deleteAclConfig", visible_alias = "deleteAccessConfig")]
    DeleteAclConfig(acl::DeleteAcl),
    /// The ACL files' versions of one broker (-b) or every master of a
    /// cluster (-c).
    #[command(name = "clusterAclConfigVersion")]
    ClusterAclConfigVersion(Target),
    /// Replace the ACL global white list on one broker (-b) or every broker
    /// of a cluster (-c).
    #[command(name = "updateGlobalWhiteAddr")]
    UpdateGlobalWhiteAddr(acl::UpdateGlobalWhite),
    /// Reset a consumer group's offsets of a topic to a time (online
    /// consumers are told, stored offsets change).
    #[command(name = "resetOffsetByTime")]
    ResetOffsetByTime(ops_mut::ResetOffsetByTime),
    /// Create or update a subscription group on one broker (-b) or every
    /// master of a cluster (-c).
    #[command(name = "updateSubGroup")]
    UpdateSubGroup(ops_mut::UpdateSubGroup),
    /// Delete a subscription group on one broker (-b) or every master of a
    /// cluster (-c).
    #[command(name = "deleteSubGroup")]
    DeleteSubGroup(ops_mut::DeleteSubGroup),
    /// Delete a topic at every broker of a cluster and at the name servers.
    #[command(name = "deleteTopic")]
    DeleteTopic(ops_mut::DeleteTopic),
    /// Change one broker setting live on one broker (-b) or every master of
    /// a cluster (-c); it is persisted to the broker's properties file.
    #[command(name = "updateBrokerConfig")]
    UpdateBrokerConfig(ops_mut::UpdateBrokerConfig),
    /// Create or update a KV config item at every name server.
    #[command(name = "updateKvConfig")]
    UpdateKvConfig(namesrv_ops::UpdateKvConfig),
    /// Delete a KV config item at every name server.
    #[command(name = "deleteKvConfig")]
    DeleteKvConfig(namesrv_ops::DeleteKvConfig),
    /// Wipe the write perm of a broker name at every name server (-n).
    #[command(name = "wipeWritePerm")]
    WipeWritePerm(namesrv_ops::WritePerm),
    /// Give a broker name its write perm back at every name server (-n).
    #[command(name = "addWritePerm")]
    AddWritePerm(namesrv_ops::WritePerm),
    /// The controller group, its leader and peers (-a: any controller).
    #[command(name = "getControllerMetaData")]
    GetControllerMetaData(controller::ControllerAddr),
    /// Each controller's effective settings (-a: `host:port;host:port`).
    #[command(name = "getControllerConfig")]
    GetControllerConfig(controller::ControllerAddr),
    /// A broker group's master, epochs and replicas in and out of the
    /// SyncStateSet, from the controller (-b group, or -c every group of a cluster).
    #[command(name = "getSyncStateSet")]
    GetSyncStateSet(controller::GetSyncStateSet),
    /// Make replica -i the master of group -b (a manual switch at the controller).
    #[command(name = "electMaster")]
    ElectMaster(controller::ElectMaster),
    /// Remove replicas (-i) or a whole group from the controller's metadata.
    #[command(name = "cleanBrokerMetadata")]
    CleanBrokerMetadata(controller::CleanBrokerMetadata),
    /// A broker's epoch entries (controller mode; -b broker address, or -c cluster).
    #[command(name = "getBrokerEpoch")]
    GetBrokerEpoch(controller::GetBrokerEpoch),
}

#[derive(Args, Debug)]
struct UpdateTopic {
    /// Topic.
    #[arg(short = 't', long = "topic")]
    topic: String,
    #[command(flatten)]
    target: Target,
    /// Read queues.
    #[arg(short = 'r', long = "readQueueNums", default_value_t = 8)]
    read: u32,
    /// Write queues.
    #[arg(short = 'w', long = "writeQueueNums", default_value_t = 8)]
    write: u32,
    /// Permission bits (2 write, 4 read, 6 both).
    #[arg(short = 'p', long = "perm", default_value_t = 6)]
    perm: u32,
    /// Ordered topic.
    #[arg(short = 'o', long = "order", default_value_t = false)]
    order: bool,
}

#[derive(Args, Debug)]
struct Target {
    /// Broker address `ip:port`.
    #[arg(short = 'b', long = "brokerAddr")]
    broker: Option<String>,
    /// Cluster name: every master of the cluster.
    #[arg(short = 'c', long = "clusterName")]
    cluster: Option<String>,
}

impl Admin {
    /// Run one subcommand: each has its own method, in `topics.rs`,
    /// `messages.rs`, `brokers.rs`, `acl.rs` or `ops_mut.rs`.
    async fn run(&self, cmd: Cmd) -> Res<()> {
        match cmd {
            Cmd::TopicList(a) => self.topic_list_cmd(a).await,
            Cmd::TopicRoute { topic } => self.topic_route(&topic).await,
            Cmd::UpdateTopic(u) => self.update_topic(u).await,
            Cmd::ClusterList => self.cluster_list().await,
            Cmd::TopicStatus { topic } => self.topic_status(topic).await,
            Cmd::ConsumerProgress { group, topic } => self.consumer_progress(group, topic).await,
            Cmd::ConsumerConnection(a) => self.consumer_connection(a).await,
            Cmd::ProducerConnection(a) => self.producer_connection(a).await,
            Cmd::StatsAll(a) => self.stats_all(a).await,
            Cmd::BrokerConsumeStats(a) => self.broker_consume_stats(a).await,
            Cmd::QueryMsgByKey { topic, key } => self.query_msg_by_key(topic, key).await,
            Cmd::QueryMsgById {
                msg_id,
                topic,
                group: Some(group),
                client_id: Some(client_id),
            } => {
                self.consume_message_directly(&msg_id, topic.as_deref(), &group, &client_id)
                    .await
            }
            Cmd::QueryMsgById { msg_id, topic, .. } => self.query_msg_by_id(msg_id, topic).await,
            Cmd::ConsumerStatus(a) => self.consumer_status(a).await,
            Cmd::GetConsumerStatus(a) => self.get_consumer_status(a).await,
            Cmd::DeleteExpiredCommitLog(t) => self.delete_expired_commit_log(t).await,
            Cmd::GetBrokerConfig(t) => self.get_broker_config(t).await,
            Cmd::HaStatus(t) => self.ha_status(t).await,
            Cmd::TxnPending(t) => self.txn_pending(t).await,
            Cmd::DamagedRecords(t) => self.damaged_records(t).await,
            Cmd::BrokerStatus(t) => self.broker_status(t).await,
            Cmd::UpdateAclConfig(u) => self.update_acl_config(u).await,
            Cmd::DeleteAclConfig(d) => self.delete_acl_config(d).await,
            Cmd::ClusterAclConfigVersion(t) => self.cluster_acl_config_version(t).await,
            Cmd::UpdateGlobalWhiteAddr(g) => self.update_global_white_addr(g).await,
            Cmd::ResetOffsetByTime(r) => self.reset_offset_by_time(r).await,
            Cmd::UpdateSubGroup(u) => self.update_sub_group(u).await,
            Cmd::DeleteSubGroup(d) => self.delete_sub_group(d).await,
            Cmd::DeleteTopic(d) => self.delete_topic(d).await,
            Cmd::UpdateBrokerConfig(u) => self.update_broker_config(u).await,
            Cmd::UpdateKvConfig(u) => self.update_kv_config(u).await,
            Cmd::DeleteKvConfig(d) => self.delete_kv_config(d).await,
            Cmd::WipeWritePerm(w) => self.write_perm(w, true).await,
            Cmd::AddWritePerm(w) => self.write_perm(w, false).await,
            Cmd::GetControllerMetaData(a) => self.get_controller_metadata(a).await,
            Cmd::GetControllerConfig(a) => self.get_controller_config(a).await,
            Cmd::GetSyncStateSet(a) => self.get_sync_state_set(a).await,
            Cmd::ElectMaster(e) => self.elect_master(e).await,
            Cmd::CleanBrokerMetadata(c) => self.clean_broker_metadata(c).await,
            Cmd::GetBrokerEpoch(g) => self.get_broker_epoch(g).await,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let namesrv = cli
        .namesrv
        .or_else(|| std::env::var("NAMESRV_ADDR").ok())
        .map(|s| ferromq_server::broker::split_namesrv_addr_arg(&s))
        .unwrap_or_default();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ferromq-admin: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let credentials = match (&cli.access_key, &cli.secret_key) {
        (Some(a), Some(s)) => match Credentials::new(a, s) {
            Some(c) => Some(c),
            None => {
                eprintln!("ferromq-admin: --accessKey and --secretKey must not be blank");
                return ExitCode::FAILURE;
            }
        },
        _ => match Credentials::default_tools_file().map(|f| Credentials::from_tools_file(&f)) {
            None | Some(Ok(None)) => None,
            Some(Ok(Some(c))) => Some(c),
            Some(Err(e)) => {
                eprintln!("ferromq-admin: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    client::set_credentials(credentials);
    if cli.tls || cli.tls_ca.is_some() || cli.tls_cert.is_some() {
        let settings = TlsClientSettings {
            cert_path: cli.tls_cert.clone(),
            key_path: cli.tls_key.clone(),
            ..TlsClientSettings::for_cli(cli.tls_ca.clone())
        };
        match settings.build() {
            Ok(t) => client::set_tls(Some(t)),
            Err(e) => {
                eprintln!("ferromq-admin: TLS: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let admin = Admin { namesrv };
    match rt.block_on(admin.run(cli.cmd)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferromq-admin: {e}");
            ExitCode::FAILURE
        }
    }
}
