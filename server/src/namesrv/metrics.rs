//! The name server's Prometheus metrics ([`crate::metrics`]), read from its
//! route tables when scraped. Labels: `node_type` (`namesrv`) and `node_id`
//! (its listening address).
//!
//! | metric | type | what |
//! |---|---|---|
//! | `ferromq_namesrv_live_brokers` | gauge | broker addresses registered and not expired |
//! | `rocketmq_topic_number` | gauge | topics routed |

use std::fmt;
use std::sync::{Arc, Weak};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use super::NameServer;

/// The name server's collector; reports nothing once the server is gone.
pub struct NamesrvCollector {
    ns: Weak<NameServer>,
    node_id: String,
}

impl fmt::Debug for NamesrvCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NamesrvCollector")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

impl NamesrvCollector {
    /// The collector of `ns`, listening at `node_id`.
    pub fn new(ns: &Arc<NameServer>, node_id: String) -> Self {
        NamesrvCollector {
            ns: Arc::downgrade(ns),
            node_id,
        }
    }
}

impl Collector for NamesrvCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        let Some(ns) = self.ns.upgrade() else {
            return Ok(());
        };
        let labels: Vec<(String, String)> = vec![
            ("node_type".into(), "namesrv".into()),
            ("node_id".into(), self.node_id.clone()),
        ];
        let rows = [
            (
                "ferromq_namesrv_live_brokers",
                "Broker addresses registered and not expired.",
                ns.routes().live_brokers(),
            ),
            (
                "rocketmq_topic_number",
                "Topics routed by this name server.",
                ns.routes().topic_list().len(),
            ),
        ];
        for (name, help, v) in rows {
            let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
            ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX))
                .encode(m.encode_family(&labels)?)?;
        }
        Ok(())
    }
}
