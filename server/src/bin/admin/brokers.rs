//! Broker subcommands: `clusterList`, `deleteExpiredCommitLog`,
//! `getBrokerConfig`, `haStatus`, `txnPending`, `damagedRecords`, `brokerStatus`.

use ferromq_server::remoting::request;
use serde_json::Value;

use crate::client::{body_json, num, Admin, Res};
use crate::print::{ha_rows, print_pending, table};
use crate::Target;

impl Admin {
    /// `clusterList`: every registered broker with its runtime figures.
    pub(crate) async fn cluster_list(&self) -> Res<()> {
        let mut rows = Vec::new();
        for (cluster, name, id, addr) in self.brokers().await? {
            let info = Self::runtime_info(&addr).await.unwrap_or_default();
            let g = |k: &str| info.get(k).cloned().unwrap_or_else(|| "-".into());
            rows.push(vec![
                cluster,
                name,
                id.to_string(),
                addr,
                g("brokerVersionDesc"),
                g("msgPutTotalTodayNow"),
                g("msgGetTotalTodayNow"),
                g("commitLogMaxOffset"),
                g("commitLogDiskRatio"),
            ]);
        }
        table(
            &[
                "#Cluster Name",
                "#Broker Name",
                "#BID",
                "#Addr",
                "#Version",
                "#PutTotalToday",
                "#GetTotalToday",
                "#CommitLogMax",
                "#DiskRatio",
            ],
            &rows,
        );
        Ok(())
    }

    /// `deleteExpiredCommitLog`: ask each target broker to delete expired files.
    pub(crate) async fn delete_expired_commit_log(&self, t: Target) -> Res<()> {
        self.each_target(
            &t,
            request::DELETE_EXPIRED_COMMITLOG,
            "delete expired commitlog on",
            |addr, _| {
                println!("{addr}: delete expired commitlog success.");
                Ok(())
            },
        )
        .await
    }

    /// `getBrokerConfig`: each target broker's `key=value` settings.
    pub(crate) async fn get_broker_config(&self, t: Target) -> Res<()> {
        self.each_target(
            &t,
            request::GET_BROKER_CONFIG,
            "broker config of",
            |addr, r| {
                println!("============{addr}============");
                for line in String::from_utf8_lossy(&r.body).lines() {
                    match line.split_once('=') {
                        Some((k, v)) if !line.starts_with('#') => {
                            println!("{:<50}=  {}", k.trim(), v.trim())
                        }
                        _ => {}
                    }
                }
                Ok(())
            },
        )
        .await
    }

    /// `haStatus`: the replication rows ([`ha_rows`]) of each target broker.
    pub(crate) async fn ha_status(&self, t: Target) -> Res<()> {
        let mut rows = Vec::new();
        for addr in self.targets(&t).await? {
            let info = Self::runtime_info(&addr).await?;
            rows.extend(ha_rows(&addr, &info));
        }
        table(
            &[
                "#Broker Addr",
                "#Role",
                "#Peer",
                "#Acked Offset",
                "#Lag Bytes",
                "#Lag ms",
            ],
            &rows,
        );
        Ok(())
    }

    /// `txnPending`: each target broker's half messages awaiting a decision.
    pub(crate) async fn txn_pending(&self, t: Target) -> Res<()> {
        self.each_target(
            &t,
            request::FERROMQ_GET_PENDING_TRANSACTIONS,
            "pending transactions of",
            |addr, r| {
                let v = body_json(&r, "pending transactions")?;
                print_pending(addr, &v);
                Ok(())
            },
        )
        .await
    }

    /// `damagedRecords`: the records each target broker found damaged and skipped.
    pub(crate) async fn damaged_records(&self, t: Target) -> Res<()> {
        let mut rows = Vec::new();
        for addr in self.targets(&t).await? {
            let info = Self::runtime_info(&addr).await?;
            let count = info.get("damagedRecordCount").cloned().unwrap_or_default();
            println!("{addr}: {count} damaged records");
            let listed = info.get("damagedRecords").map_or("[]", String::as_str);
            let v: Value = serde_json::from_str(listed)
                .map_err(|e| format!("damagedRecords of {addr}: {e}"))?;
            for d in v.as_array().into_iter().flatten() {
                rows.push(vec![
                    addr.clone(),
                    d["topic"].as_str().unwrap_or_default().to_string(),
                    num(&d["queueId"]).to_string(),
                    num(&d["queueOffset"]).to_string(),
                    num(&d["commitLogOffset"]).to_string(),
                    d["reason"].as_str().unwrap_or_default().to_string(),
                ]);
            }
        }
        table(
            &[
                "#Broker Addr",
                "#Topic",
                "#QID",
                "#Queue Offset",
                "#CommitLog Offset",
                "#Reason",
            ],
            &rows,
        );
        Ok(())
    }

    /// `brokerStatus`: each target broker's runtime figures.
    pub(crate) async fn broker_status(&self, t: Target) -> Res<()> {
        for addr in self.targets(&t).await? {
            let info = Self::runtime_info(&addr).await?;
            for (k, v) in info {
                println!("{k:<32}: {v}");
            }
        }
        Ok(())
    }
}
