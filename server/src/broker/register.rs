//! Registration with the name servers: at once, every `registerNameServerPeriod`,
//! and whenever a topic is created; UNREGISTER_BROKER on shutdown.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::Broker;
use crate::remoting::{json, request, response, RemotingClient, RemotingCommand};
use crate::util::{crc32_masked, now_ms};

/// Topic every auto-create producer asks routes for (`TBW102`).
const AUTO_CREATE_TOPIC_KEY: &str = "TBW102";

/// Least time between the starts of two registrations for topic changes.
const REGISTER_COALESCE: Duration = Duration::from_millis(50);

/// Version of the registered topic set: bumped whenever the set changes.
#[derive(Debug, Default)]
struct DataVersion {
    timestamp: i64,
    counter: i64,
    fingerprint: Vec<(String, u32, u32, u32)>,
}

fn register_body(b: &Broker, dv: &mut DataVersion) -> Vec<u8> {
    let mut topics: Vec<(String, u32, u32, u32)> = b
        .store
        .topics()
        .into_iter()
        .map(|t| {
            (
                t.topic_name,
                t.read_queue_nums,
                t.write_queue_nums,
                (t.perm & b.live.broker_permission()) | (t.perm & 1),
            )
        })
        .collect();
    if b.cfg.auto_create_topic_enable && !topics.iter().any(|t| t.0 == AUTO_CREATE_TOPIC_KEY) {
        let n = b.cfg.default_topic_queue_nums;
        // INHERIT | READ | WRITE, as RocketMQ registers TBW102.
        topics.push((
            AUTO_CREATE_TOPIC_KEY.to_string(),
            n,
            n,
            7 & (b.live.broker_permission() | 1),
        ));
    }
    topics.sort();
    if topics != dv.fingerprint || dv.timestamp == 0 {
        dv.fingerprint = topics;
        dv.counter += 1;
        dv.timestamp = now_ms();
    }
    let table: Vec<String> = dv
        .fingerprint
        .iter()
        .map(|(name, r, w, perm)| {
            format!(
                "{}:{{\"order\":false,\"perm\":{perm},\"readQueueNums\":{r},\"topicFilterType\":\"SINGLE_TAG\",\"topicName\":{},\"topicSysFlag\":0,\"writeQueueNums\":{w}}}",
                json::string(name),
                json::string(name)
            )
        })
        .collect();
    format!(
        "{{\"filterServerList\":[],\"topicConfigSerializeWrapper\":{{\"dataVersion\":{{\"counter\":{},\"timestamp\":{}}},\"topicConfigTable\":{{{}}}}}}}",
        dv.counter,
        dv.timestamp,
        table.join(",")
    )
    .into_bytes()
}

fn base_header(b: &Broker, code: i32, broker_id: i64) -> RemotingCommand {
    RemotingCommand::request(code)
        .with_ext("brokerName", &b.cfg.broker_name)
        .with_ext("brokerAddr", &b.broker_addr)
        .with_ext("clusterName", &b.cfg.broker_cluster_name)
        .with_ext("brokerId", broker_id)
}

/// The id to register: `brokerId`, or in controller mode 0 as the master
/// and the controller id as a slave; `None` while the controller has not
/// given a role yet (the broker is not announced until then).
fn registered_id(b: &Broker) -> Option<i64> {
    match b.controller() {
        Some(cm) => cm.name_server_id(),
        None => Some(b.cfg.broker_id),
    }
}

async fn register_all(b: &Arc<Broker>, clients: &[Arc<RemotingClient>], dv: &mut DataVersion) {
    let Some(broker_id) = registered_id(b) else {
        tracing::debug!("controller mode: no role yet, not registering with the name servers");
        return;
    };
    let body = register_body(b, dv);
    let ha = match b.ha() {
        Some(h) if !h.advertised().is_empty() => h.advertised(),
        _ => format!("{}:{}", b.cfg.broker_ip2, u32::from(b.cfg.listen_port) + 1),
    };
    let req = base_header(b, request::REGISTER_BROKER, broker_id)
        .with_ext("haServerAddr", ha)
        .with_ext("compressed", false)
        .with_ext("bodyCrc32", crc32_masked(&body))
        .with_body(body);
    let timeout = Duration::from_millis(b.cfg.register_broker_timeout_mills);
    let tasks: Vec<_> = clients
        .iter()
        .map(|c| {
            let c = c.clone();
            let req = req.clone();
            let b = b.clone();
            tokio::spawn(async move {
                match c.invoke(req, timeout).await {
                    Ok(r) if r.code == response::SUCCESS => {
                        tracing::debug!(namesrv = %c.addr(), "registered");
                        // A slave learns its master's HA address here.
                        // (In controller mode the controller names the master.)
                        if let (Some(h), Some(addr), None) =
                            (b.ha(), r.ext_fields.opt_str("haServerAddr"), b.controller())
                        {
                            h.on_master_learned(addr);
                        }
                        Some(r)
                    }
                    Ok(r) => {
                        tracing::warn!(namesrv = %c.addr(), code = r.code, remark = ?r.remark, "registration refused");
                        None
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "registration failed");
                        None
                    }
                }
            })
        })
        .collect();
    let mut first_ok = None;
    for t in tasks {
        if let Ok(Some(r)) = t.await {
            first_ok.get_or_insert(r);
        }
    }
    // As RocketMQ: the first answer names the master whose configs a slave copies
    // (none while the name servers know no live master).
    if let Some(r) = first_ok {
        b.set_master_addr(r.ext_fields.opt_str("masterAddr"));
    }
}

async fn unregister_all(b: &Arc<Broker>, clients: &[Arc<RemotingClient>]) {
    let Some(broker_id) = registered_id(b) else {
        return;
    };
    let req = base_header(b, request::UNREGISTER_BROKER, broker_id);
    let timeout = Duration::from_millis(b.cfg.register_broker_timeout_mills.min(3000));
    for c in clients {
        match c.invoke(req.clone(), timeout).await {
            Ok(_) => tracing::info!(namesrv = %c.addr(), "unregistered"),
            Err(e) => tracing::warn!(error = %e, "unregister failed"),
        }
        c.close().await;
    }
}

/// Register now, then periodically and on topic changes, until `stop`; then unregister.
pub(super) async fn registration_loop(b: Arc<Broker>, mut stop: watch::Receiver<bool>) {
    let clients: Vec<Arc<RemotingClient>> = b
        .cfg
        .namesrv_addr
        .iter()
        .map(|a| Arc::new(b.outgoing_client(a.clone())))
        .collect();
    if clients.is_empty() {
        tracing::warn!(
            "no name server address (namesrvAddr / -n): clients cannot find this broker"
        );
    }
    let mut dv = DataVersion::default();
    let period = Duration::from_millis(b.cfg.register_name_server_period_ms);
    loop {
        if *stop.borrow() {
            break;
        }
        let started = tokio::time::Instant::now();
        register_all(&b, &clients, &mut dv).await;
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = b.register_now.notified() => {
                // A new topic is registered at once (a consumer asks the name
                // server for its retry topic right after its heartbeat), but a
                // burst of creations (a heartbeat naming many new groups makes
                // a retry topic each) makes one registration per
                // REGISTER_COALESCE, not one body of every topic per creation.
                tokio::select! {
                    _ = tokio::time::sleep_until(started + REGISTER_COALESCE) => {}
                    _ = stop.changed() => break,
                }
            }
            _ = stop.changed() => break,
        }
    }
    unregister_all(&b, &clients).await;
}
