//! Controller subcommands (RocketMQ 5 controller mode, mqadmin's
//! `tools/command/controller`, `ha` and `broker` ones): `getControllerMetaData`,
//! `getControllerConfig`, `getSyncStateSet`, `electMaster`,
//! `cleanBrokerMetadata` and `getBrokerEpoch`.
//!
//! `-a` names any controller (or several, `host:port;host:port`): requests
//! that need the Raft leader follow a `CONTROLLER_NOT_LEADER` answer's
//! `leader: host:port` to it.

use std::collections::BTreeSet;
use std::time::Duration;

use clap::Args;
use ferromq_controller::request_code as rc;
use ferromq_controller::response_code as code;
use ferromq_controller::{BrokerReplicasInfo, ElectMasterResponseBody, ReplicasInfo};
use ferromq_server::remoting::{response, RemotingCommand};
use serde_json::Value;

use crate::client::{body_json, call, num, ok, Admin, Res};

/// RocketMQ's `GET_BROKER_EPOCH_CACHE` (a broker request).
const GET_BROKER_EPOCH_CACHE: i32 = 1007;

/// How long a leader-bound request keeps looking for the leader.
const LEADER_WAIT: Duration = Duration::from_secs(10);

/// `-a`: the controllers to ask.
#[derive(Args, Debug)]
pub(crate) struct ControllerAddr {
    /// Controller address(es), `host:port` or `host:port;host:port`.
    #[arg(short = 'a', long = "controllerAddress")]
    controller: String,
}

impl ControllerAddr {
    fn list(&self) -> Res<Vec<String>> {
        let v: Vec<String> = self
            .controller
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if v.is_empty() {
            Err("no controller address: use -a host:port".into())
        } else {
            Ok(v)
        }
    }
}

/// `getSyncStateSet`.
#[derive(Args, Debug)]
pub(crate) struct GetSyncStateSet {
    #[command(flatten)]
    addr: ControllerAddr,
    /// Broker group (broker name).
    #[arg(short = 'b', long = "brokerName", required_unless_present = "cluster")]
    broker_name: Option<String>,
    /// Every group of this cluster (broker names from the name server, -n).
    #[arg(short = 'c', long = "clusterName")]
    cluster: Option<String>,
}

/// `electMaster`.
#[derive(Args, Debug)]
pub(crate) struct ElectMaster {
    #[command(flatten)]
    addr: ControllerAddr,
    /// Broker group (broker name).
    #[arg(short = 'b', long = "brokerName")]
    broker_name: String,
    /// The id of the replica to make master.
    #[arg(short = 'i', long = "brokerId")]
    broker_id: u64,
    /// The group's cluster.
    #[arg(short = 'c', long = "clusterName")]
    cluster: String,
}

/// `cleanBrokerMetadata`.
#[derive(Args, Debug)]
pub(crate) struct CleanBrokerMetadata {
    #[command(flatten)]
    addr: ControllerAddr,
    /// Broker group (broker name).
    #[arg(short = 'b', long = "brokerName")]
    broker_name: String,
    /// Replica ids to remove, `1;2;3` (without: the whole group).
    #[arg(short = 'i', long = "brokerControllerIdsToClean")]
    ids: Option<String>,
    /// The group's cluster (required without -l: the liveness check needs it).
    #[arg(short = 'c', long = "clusterName")]
    cluster: Option<String>,
    /// Remove live replicas too.
    #[arg(short = 'l', long = "cleanLivingBroker")]
    clean_living: bool,
}

/// `getBrokerEpoch`.
#[derive(Args, Debug)]
pub(crate) struct GetBrokerEpoch {
    /// Broker address `ip:port`.
    #[arg(short = 'b', long = "brokerAddr", required_unless_present = "cluster")]
    broker: Option<String>,
    /// Every broker of this cluster (from the name server, -n).
    #[arg(short = 'c', long = "clusterName")]
    cluster: Option<String>,
}

/// The name of a controller response code, for error messages.
fn code_name(c: i32) -> &'static str {
    match c {
        code::CONTROLLER_FENCED_MASTER_EPOCH => "CONTROLLER_FENCED_MASTER_EPOCH",
        code::CONTROLLER_FENCED_SYNC_STATE_SET_EPOCH => "CONTROLLER_FENCED_SYNC_STATE_SET_EPOCH",
        code::CONTROLLER_INVALID_MASTER => "CONTROLLER_INVALID_MASTER",
        code::CONTROLLER_INVALID_REPLICAS => "CONTROLLER_INVALID_REPLICAS",
        code::CONTROLLER_MASTER_NOT_AVAILABLE => "CONTROLLER_MASTER_NOT_AVAILABLE",
        code::CONTROLLER_INVALID_REQUEST => "CONTROLLER_INVALID_REQUEST",
        code::CONTROLLER_BROKER_NOT_ALIVE => "CONTROLLER_BROKER_NOT_ALIVE",
        code::CONTROLLER_NOT_LEADER => "CONTROLLER_NOT_LEADER",
        code::CONTROLLER_BROKER_METADATA_NOT_EXIST => "CONTROLLER_BROKER_METADATA_NOT_EXIST",
        code::CONTROLLER_INVALID_CLEAN_BROKER_METADATA => {
            "CONTROLLER_INVALID_CLEAN_BROKER_METADATA"
        }
        code::CONTROLLER_BROKER_NEED_TO_BE_REGISTERED => "CONTROLLER_BROKER_NEED_TO_BE_REGISTERED",
        code::CONTROLLER_MASTER_STILL_EXIST => "CONTROLLER_MASTER_STILL_EXIST",
        code::CONTROLLER_ELECT_MASTER_FAILED => "CONTROLLER_ELECT_MASTER_FAILED",
        code::CONTROLLER_ALTER_SYNC_STATE_SET_FAILED => "CONTROLLER_ALTER_SYNC_STATE_SET_FAILED",
        code::CONTROLLER_BROKER_ID_INVALID => "CONTROLLER_BROKER_ID_INVALID",
        code::CONTROLLER_JRAFT_INTERNAL_ERROR => "CONTROLLER_JRAFT_INTERNAL_ERROR",
        response::REQUEST_CODE_NOT_SUPPORTED => "REQUEST_CODE_NOT_SUPPORTED",
        response::SYSTEM_ERROR => "SYSTEM_ERROR",
        _ => "",
    }
}

/// An answer other than SUCCESS as an error naming `what` and the code.
fn controller_ok(r: RemotingCommand, what: &str) -> Res<RemotingCommand> {
    if r.code == response::SUCCESS {
        return Ok(r);
    }
    let name = code_name(r.code);
    let name = if name.is_empty() {
        String::new()
    } else {
        format!(" ({name})")
    };
    Err(format!(
        "{what}: code {}{name}: {}",
        r.code,
        r.remark.as_deref().unwrap_or("").trim()
    ))
}

/// Sends `req` to the controller leader: to the first of `addrs` that
/// answers, following `CONTROLLER_NOT_LEADER` to the leader it names, and
/// retrying (up to [`LEADER_WAIT`]) while no leader is known.
async fn call_leader(addrs: &[String], req: &RemotingCommand) -> Res<RemotingCommand> {
    ferromq_server::controller::client::call_leader(
        addrs,
        None,
        req,
        LEADER_WAIT,
        |a, r| async move { call(&a, r).await },
    )
    .await
    .map(|(_, r)| r)
}

/// The first of `addrs` that answers `req`.
async fn call_any(addrs: &[String], req: &RemotingCommand) -> Res<RemotingCommand> {
    let mut last = String::new();
    for a in addrs {
        match call(a, req.clone()).await {
            Ok(r) => return Ok(r),
            Err(e) => last = format!("controller {e}"),
        }
    }
    Err(last)
}

fn or_dash<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

fn print_replicas(name: &str, info: &ReplicasInfo) {
    println!("#brokerName\t{name}");
    println!("#MasterBrokerId\t{}", or_dash(info.master_broker_id));
    println!("#MasterAddr\t{}", or_dash(info.master_address.as_deref()));
    println!("#MasterEpoch\t{}", info.master_epoch);
    println!("#SyncStateSetEpoch\t{}", info.sync_state_set_epoch);
    println!("#SyncStateSetNums\t{}", info.in_sync_replicas.len());
    let lines = info
        .in_sync_replicas
        .iter()
        .map(|r| ("InSyncReplica", r))
        .chain(
            info.not_in_sync_replicas
                .iter()
                .map(|r| ("NotInSyncReplica", r)),
        );
    for (kind, r) in lines {
        println!(
            "{kind}:\tReplicaIdentity{{brokerName='{}', brokerId={}, brokerAddress='{}', alive={}}}",
            r.broker_name, r.broker_id, r.broker_address, r.alive
        );
    }
}

impl Admin {
    /// `getControllerMetaData`: the controller group, its leader and peers,
    /// as the controller asked sees them.
    pub(crate) async fn get_controller_metadata(&self, a: ControllerAddr) -> Res<()> {
        let addrs = a.list()?;
        let req = RemotingCommand::request(rc::CONTROLLER_GET_METADATA_INFO);
        let r = controller_ok(call_any(&addrs, &req).await?, "controller metadata")?;
        let f = &r.ext_fields;
        println!("#ControllerGroup\t{}", f.opt_str("group").unwrap_or("-"));
        println!(
            "#ControllerLeaderId\t{}",
            f.opt_str("controllerLeaderId").unwrap_or("-")
        );
        println!(
            "#ControllerLeaderAddress\t{}",
            f.opt_str("controllerLeaderAddress").unwrap_or("-")
        );
        for peer in f.opt_str("peers").unwrap_or("").split(';') {
            if !peer.trim().is_empty() {
                println!("#Peer:\t{}", peer.trim());
            }
        }
        Ok(())
    }

    /// `getControllerConfig`: each controller's effective settings.
    pub(crate) async fn get_controller_config(&self, a: ControllerAddr) -> Res<()> {
        for addr in a.list()? {
            let req = RemotingCommand::request(rc::GET_CONTROLLER_CONFIG);
            let what = format!("controller config of {addr}");
            let r = controller_ok(
                call(&addr, req).await.map_err(|e| format!("{what}: {e}"))?,
                &what,
            )?;
            println!("============{addr}============");
            for line in String::from_utf8_lossy(&r.body).lines() {
                match line.split_once('=') {
                    Some((k, v)) if !line.trim_start().starts_with('#') => {
                        println!("{:<50}=  {}", k.trim(), v.trim())
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// `getSyncStateSet`: master, epochs and replicas (in sync or not) of
    /// one group (-b) or every group of a cluster (-c).
    pub(crate) async fn get_sync_state_set(&self, a: GetSyncStateSet) -> Res<()> {
        let addrs = a.addr.list()?;
        let names: Vec<String> = match (&a.broker_name, &a.cluster) {
            (Some(b), _) => vec![b.trim().to_owned()],
            (None, Some(c)) => {
                let names: BTreeSet<String> = self
                    .brokers()
                    .await?
                    .into_iter()
                    .filter(|(cluster, ..)| cluster == c)
                    .map(|(_, name, ..)| name)
                    .collect();
                if names.is_empty() {
                    return Err(format!("cluster {c} has no broker at the name server"));
                }
                names.into_iter().collect()
            }
            (None, None) => return Err("use -b <brokerName> or -c <clusterName>".into()),
        };
        let body = serde_json::to_vec(&names).map_err(|e| e.to_string())?;
        let req = RemotingCommand::request(rc::CONTROLLER_GET_SYNC_STATE_DATA).with_body(body);
        let r = controller_ok(call_leader(&addrs, &req).await?, "sync state data")?;
        let info: BrokerReplicasInfo = serde_json::from_slice(&r.body)
            .map_err(|e| format!("sync state data: bad body: {e}"))?;
        let missing: Vec<&str> = names
            .iter()
            .filter(|n| !info.replicas_info_table.contains_key(*n))
            .map(String::as_str)
            .collect();
        let mut first = true;
        for (name, replicas) in &info.replicas_info_table {
            if !first {
                println!();
            }
            first = false;
            print_replicas(name, replicas);
        }
        if !missing.is_empty() {
            return Err(format!(
                "broker group {} not registered at the controller",
                missing.join(", ")
            ));
        }
        Ok(())
    }

    /// `electMaster`: make replica -i the master of group -b (the controller
    /// refuses a replica that is not alive or, without unclean election,
    /// not in the SyncStateSet).
    pub(crate) async fn elect_master(&self, e: ElectMaster) -> Res<()> {
        let addrs = e.addr.list()?;
        let req = RemotingCommand::request(rc::CONTROLLER_ELECT_MASTER)
            .with_ext("clusterName", &e.cluster)
            .with_ext("brokerName", &e.broker_name)
            .with_ext("brokerId", e.broker_id)
            .with_ext("designateElect", true);
        let what = format!("elect broker {} of {} master", e.broker_id, e.broker_name);
        let r = controller_ok(call_leader(&addrs, &req).await?, &what)?;
        let f = &r.ext_fields;
        println!("#ClusterName\t{}", e.cluster);
        println!("#BrokerName\t{}", e.broker_name);
        println!(
            "#BrokerMasterAddr\t{}",
            f.opt_str("masterAddress").unwrap_or("-")
        );
        println!("#MasterEpoch\t{}", f.opt_str("masterEpoch").unwrap_or("-"));
        println!(
            "#SyncStateSetEpoch\t{}",
            f.opt_str("syncStateSetEpoch").unwrap_or("-")
        );
        if !r.body.is_empty() {
            let body: ElectMasterResponseBody =
                serde_json::from_slice(&r.body).map_err(|e| format!("{what}: bad body: {e}"))?;
            if let Some(g) = body.broker_member_group {
                for (id, addr) in &g.broker_addrs {
                    println!("\t#Broker\t{id}\t{addr}");
                }
            }
        }
        Ok(())
    }

    /// `cleanBrokerMetadata`: remove replicas (-i) or a whole group from the
    /// controller's metadata.
    pub(crate) async fn clean_broker_metadata(&self, c: CleanBrokerMetadata) -> Res<()> {
        let addrs = c.addr.list()?;
        let ids = c.ids.as_deref().map(str::trim).filter(|s| !s.is_empty());
        if let Some(ids) = ids {
            if ids
                .split(';')
                .filter(|s| !s.trim().is_empty())
                .any(|s| s.trim().parse::<u64>().is_err())
            {
                return Err(format!(
                    "bad -i {ids:?}: give broker ids as id;id;... (e.g. 1;2;3)"
                ));
            }
        }
        let cluster = c
            .cluster
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty());
        if !c.clean_living && cluster.is_none() {
            return Err("without -l (cleanLivingBroker) -c <clusterName> is required".to_owned());
        }
        let mut req = RemotingCommand::request(rc::CLEAN_BROKER_DATA)
            .with_ext("brokerName", &c.broker_name)
            .with_ext("isCleanLivingBroker", c.clean_living);
        if let Some(cluster) = cluster {
            req = req.with_ext("clusterName", cluster);
        }
        if let Some(ids) = ids {
            req = req.with_ext("brokerControllerIdsToClean", ids);
        }
        let what = format!("clean broker {} metadata", c.broker_name);
        controller_ok(call_leader(&addrs, &req).await?, &what)?;
        println!(
            "clear broker {} metadata from controller success!",
            c.broker_name
        );
        Ok(())
    }

    /// `getBrokerEpoch`: a broker's epoch entries (GET_BROKER_EPOCH_CACHE),
    /// for one broker (-b) or every broker of a cluster (-c).
    pub(crate) async fn get_broker_epoch(&self, g: GetBrokerEpoch) -> Res<()> {
        let addrs: Vec<String> = match (&g.broker, &g.cluster) {
            (Some(b), _) => vec![b.trim().to_owned()],
            (None, Some(c)) => {
                let v: Vec<String> = self
                    .brokers()
                    .await?
                    .into_iter()
                    .filter(|(cluster, ..)| cluster == c)
                    .map(|(.., addr)| addr)
                    .collect();
                if v.is_empty() {
                    return Err(format!("cluster {c} has no broker at the name server"));
                }
                v
            }
            (None, None) => return Err("use -b <brokerAddr> or -c <clusterName>".into()),
        };
        for addr in addrs {
            let r = call(&addr, RemotingCommand::request(GET_BROKER_EPOCH_CACHE))
                .await
                .map_err(|e| format!("broker {addr}: {e}"))?;
            if r.code == response::REQUEST_CODE_NOT_SUPPORTED {
                return Err(format!(
                    "the broker at {addr} does not support GET_BROKER_EPOCH_CACHE \
                     (epoch entries exist only on brokers in controller mode)"
                ));
            }
            let what = format!("epoch cache of {addr}");
            let r = ok(r, &what)?;
            let v = body_json(&r, &what)?;
            print_epochs(&addr, &v);
        }
        Ok(())
    }
}

/// One broker's `EpochEntryCache`, as mqadmin prints it (the last entry
/// ends at the broker's max offset).
fn print_epochs(addr: &str, v: &Value) {
    let s = |k: &str| v[k].as_str().unwrap_or("-").to_owned();
    println!("#clusterName\t{}", s("clusterName"));
    println!("#brokerName\t{}", s("brokerName"));
    println!("#brokerAddr\t{addr}");
    println!("#brokerId\t{}", num(&v["brokerId"]));
    let list = v["epochList"].as_array().cloned().unwrap_or_default();
    for (i, e) in list.iter().enumerate() {
        let end = if i + 1 == list.len() {
            num(&v["maxOffset"])
        } else {
            num(&e["endOffset"])
        };
        println!(
            "#Epoch: EpochEntry{{epoch={}, startOffset={}, endOffset={end}}}",
            num(&e["epoch"]),
            num(&e["startOffset"])
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controller_errors_name_the_code() {
        let r = RemotingCommand::error(code::CONTROLLER_ELECT_MASTER_FAILED, "no candidate ");
        let e = controller_ok(r, "elect").unwrap_err();
        assert_eq!(
            e,
            "elect: code 2012 (CONTROLLER_ELECT_MASTER_FAILED): no candidate"
        );
    }
}
