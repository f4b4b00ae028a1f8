//! The broker's Prometheus metrics ([`crate::metrics`]), read from its
//! counters, tables and store when scraped, with RocketMQ 5's names and
//! labels where they exist:
//!
//! | metric | type | labels | what |
//! |---|---|---|---|
//! | `rocketmq_messages_in_total` | counter | base, `topic` | messages stored since start |
//! | `rocketmq_throughput_in_total` | counter | base, `topic` | message bytes stored since start |
//! | `rocketmq_messages_out_total` | counter | base, `topic`, `consumer_group` | messages handed to consumers since start |
//! | `rocketmq_throughput_out_total` | counter | base, `topic`, `consumer_group` | message bytes handed to consumers since start |
//! | `rocketmq_topic_number` | gauge | base | topics configured |
//! | `rocketmq_consumer_group_number` | gauge | base | subscription groups |
//! | `rocketmq_consumer_lag_messages` | gauge | base, `topic`, `consumer_group` | messages not yet consumed (queue max offset less committed offset, over the topic's queues) |
//! | `rocketmq_consumer_inflight_messages` | gauge | base, `topic`, `consumer_group` | messages pulled but not yet committed (pull offset less committed offset) |
//! | `rocketmq_consumer_lag_latency` | gauge | base, `topic`, `consumer_group` | ms since the oldest unconsumed message was stored (0 when none waits) |
//! | `rocketmq_storage_size` | gauge | base | bytes of commitlog files |
//! | `rocketmq_storage_flush_behind_bytes` | gauge | base | written but not yet flushed |
//! | `rocketmq_storage_dispatch_behind_bytes` | gauge | base | written but not yet in consume queues |
//! | `ferromq_disk_used_ratio` | gauge | base | used share of the store's partition (0..1) |
//! | `ferromq_commitlog_syncs_total` | counter | base | commitlog syncs (fsync/fdatasync) |
//! | `ferromq_ha_slave_count` | gauge | base | slaves connected (a master) |
//! | `ferromq_ha_slave_lag_bytes` | gauge | base, `slave` | bytes a slave is behind |
//! | `ferromq_ha_slave_lag_ms` | gauge | base, `slave` | age of the oldest bytes a slave lacks |
//! | `ferromq_store_writable` | gauge | base | 1, or 0 while the store is fenced |
//! | `rocketmq_message_size` | histogram | base, `topic`, `message_type`, `is_system` | stored bytes per message of each send ([`super::histograms`]) |
//! | `rocketmq_rpc_latency` | histogram | base, `protocol_type`, `request_code`, `response_code`, `is_long_polling` | ms from a request's handling to its answer ([`super::histograms`]) |
//!
//! Base labels: `cluster` (brokerClusterName), `node_type` (`broker`),
//! `node_id` (`brokerName:brokerId`).
//!
//! The two histograms are the only figures recorded as they happen rather
//! than read at scrape time; [`BrokerCollector::new`] turns their recording
//! on ([`Broker::enable_histograms`]).

use std::fmt;
use std::sync::{Arc, Weak};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;

use super::Broker;

type Labels = Vec<(String, String)>;

/// The broker's collector; it holds the broker weakly and reports nothing
/// once the broker is gone.
pub struct BrokerCollector {
    broker: Weak<Broker>,
}

impl fmt::Debug for BrokerCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerCollector").finish_non_exhaustive()
    }
}

impl BrokerCollector {
    /// The collector of `broker`; from now on the broker records its
    /// histograms ([`Broker::enable_histograms`]).
    pub fn new(broker: &Arc<Broker>) -> Self {
        broker.enable_histograms();
        BrokerCollector {
            broker: Arc::downgrade(broker),
        }
    }
}

fn family<M: EncodeMetric>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    kind: MetricType,
    rows: impl IntoIterator<Item = (Labels, M)>,
) -> fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, kind)?;
    for (labels, metric) in rows {
        metric.encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

fn counter(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    base: &Labels,
    v: u64,
) -> fmt::Result {
    family(
        enc,
        name,
        help,
        MetricType::Counter,
        [(base.clone(), ConstCounter::new(v))],
    )
}

fn gauge(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    base: &Labels,
    v: i64,
) -> fmt::Result {
    family(
        enc,
        name,
        help,
        MetricType::Gauge,
        [(base.clone(), ConstGauge::new(v))],
    )
}

fn with(base: &Labels, more: &[(&str, &str)]) -> Labels {
    let mut l = base.clone();
    l.extend(more.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    l
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Collector for BrokerCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        let Some(b) = self.broker.upgrade() else {
            return Ok(());
        };
        let base: Labels = vec![
            ("cluster".into(), b.cfg.broker_cluster_name.clone()),
            ("node_type".into(), "broker".into()),
            (
                "node_id".into(),
                format!("{}:{}", b.cfg.broker_name, b.cfg.broker_id),
            ),
        ];
        let st = b.store.stats();
        let e = &mut enc;
        // Per topic (sends) and per topic and group (pulls), from the
        // BrokerStatsManager counters (`super::stats`).
        let rows = |name: &str, split: bool| -> Vec<(Labels, ConstCounter<u64>)> {
            let Some(set) = b.stats.set(name) else {
                return Vec::new();
            };
            let mut out: Vec<_> = set
                .entries()
                .into_iter()
                .map(|(key, item)| {
                    let labels = match key.split_once('@').filter(|_| split) {
                        Some((topic, group)) => {
                            with(&base, &[("topic", topic), ("consumer_group", group)])
                        }
                        None => with(&base, &[("topic", &key)]),
                    };
                    (labels, ConstCounter::new(item.value()))
                })
                .collect();
            out.sort_by(|a, b| a.0.cmp(&b.0));
            out
        };
        family(
            e,
            "rocketmq_messages_in",
            "Messages stored since the broker started, per topic.",
            MetricType::Counter,
            rows(super::stats::TOPIC_PUT_NUMS, false),
        )?;
        family(
            e,
            "rocketmq_throughput_in",
            "Message bytes stored since the broker started, per topic.",
            MetricType::Counter,
            rows(super::stats::TOPIC_PUT_SIZE, false),
        )?;
        family(
            e,
            "rocketmq_messages_out",
            "Messages handed to consumers since the broker started, per topic and group.",
            MetricType::Counter,
            rows(super::stats::GROUP_GET_NUMS, true),
        )?;
        family(
            e,
            "rocketmq_throughput_out",
            "Message bytes handed to consumers since the broker started, per topic and group.",
            MetricType::Counter,
            rows(super::stats::GROUP_GET_SIZE, true),
        )?;
        let topics = b.store.topics();
        gauge(
            e,
            "rocketmq_topic_number",
            "Topics configured on this broker.",
            &base,
            topics.len() as i64,
        )?;
        gauge(
            e,
            "rocketmq_consumer_group_number",
            "Subscription groups on this broker.",
            &base,
            b.groups.all().len() as i64,
        )?;
        // Lag, in flight and lag latency per (topic, group): over the
        // queues with a committed offset.
        type PerGroup = std::collections::BTreeMap<(String, String), u64>;
        let (mut lag, mut inflight, mut latency) =
            (PerGroup::new(), PerGroup::new(), PerGroup::new());
        let now = ferromq_engine::message::now_ms();
        for (topic, group, queue_id, offset) in b.offsets.entries() {
            let committed = u64::try_from(offset).unwrap_or(0);
            let max = b.store.max_offset_in_queue(&topic, queue_id);
            let behind = max.saturating_sub(committed);
            let pulled = b
                .offsets
                .query_pull(&group, &topic, queue_id)
                .and_then(|p| u64::try_from(p).ok())
                .unwrap_or(0);
            let waiting_ms = if behind > 0 {
                b.store
                    .message_store_time(&topic, queue_id, committed)
                    .ok()
                    .flatten()
                    .map_or(0, |stored| u64::try_from(now - stored).unwrap_or(0))
            } else {
                0
            };
            let key = (topic, group);
            *inflight.entry(key.clone()).or_default() += pulled.saturating_sub(committed);
            let l = latency.entry(key.clone()).or_default();
            *l = (*l).max(waiting_ms);
            *lag.entry(key).or_default() += behind;
        }
        for (name, help, table) in [
            (
                "rocketmq_consumer_inflight_messages",
                "Messages the group has pulled but not yet committed (pull offset less committed offset).",
                &inflight,
            ),
            (
                "rocketmq_consumer_lag_latency",
                "Milliseconds since the group's oldest unconsumed message was stored (0 when none waits).",
                &latency,
            ),
        ] {
            family(
                e,
                name,
                help,
                MetricType::Gauge,
                table.iter().map(|((t, g), v)| {
                    (
                        with(&base, &[("topic", t), ("consumer_group", g)]),
                        ConstGauge::new(to_i64(*v)),
                    )
                }),
            )?;
        }
        family(
            e,
            "rocketmq_consumer_lag_messages",
            "Messages of the topic not yet consumed by the group (committed offsets).",
            MetricType::Gauge,
            lag.iter().map(|((t, g), v)| {
                (
                    with(&base, &[("topic", t), ("consumer_group", g)]),
                    ConstGauge::new(to_i64(*v)),
                )
            }),
        )?;
        let file_size = b.store.config().mapped_file_size_commit_log;
        gauge(
            e,
            "rocketmq_storage_size",
            "Bytes of commitlog files on disk.",
            &base,
            to_i64(st.commit_log_files as u64 * file_size),
        )?;
        gauge(
            e,
            "rocketmq_storage_flush_behind_bytes",
            "Commitlog bytes written but not yet flushed.",
            &base,
            to_i64(
                st.commit_log_max_offset
                    .saturating_sub(st.commit_log_flushed_offset),
            ),
        )?;
        gauge(
            e,
            "rocketmq_storage_dispatch_behind_bytes",
            "Commitlog bytes not yet dispatched to consume queues.",
            &base,
            to_i64(
                st.commit_log_max_offset
                    .saturating_sub(st.dispatched_offset),
            ),
        )?;
        let rs = b.store.retention_stats();
        family(
            e,
            "ferromq_disk_used_ratio",
            "Used share of the store's partition (0..1).",
            MetricType::Gauge,
            [(base.clone(), ConstGauge::new(rs.disk_used_ratio))],
        )?;
        counter(
            e,
            "ferromq_commitlog_syncs",
            "Commitlog syncs (fsync/fdatasync).",
            &base,
            st.commit_log_syncs,
        )?;
        gauge(
            e,
            "ferromq_store_writable",
            "1 while the store takes writes, 0 while it is fenced after a failed durable write.",
            &base,
            i64::from(st.fenced.is_none()),
        )?;
        if let Some(h) = b.histograms() {
            // Entries of deleted topics go (the table lists the live ones).
            let live: std::collections::HashSet<&str> =
                topics.iter().map(|t| t.topic_name.as_str()).collect();
            h.retain_topics(|t| live.contains(t));
            family(
                e,
                "rocketmq_message_size",
                "Stored bytes per message of each send (RocketMQ: incoming messages size).",
                MetricType::Histogram,
                h.size_series().into_iter().map(|s| {
                    let labels = with(
                        &base,
                        &[
                            ("topic", &s.topic),
                            ("message_type", s.message_type.as_str()),
                            ("is_system", if s.is_system { "true" } else { "false" }),
                        ],
                    );
                    (labels, s.histogram)
                }),
            )?;
            family::<Histogram>(
                e,
                "rocketmq_rpc_latency",
                "Milliseconds from a request's handling to its answer (RocketMQ: rpc latency).",
                MetricType::Histogram,
                h.latency_series().into_iter().map(|s| {
                    let labels = with(
                        &base,
                        &[
                            ("protocol_type", "remoting"),
                            ("request_code", &s.request_code),
                            ("response_code", &s.response_code),
                            (
                                "is_long_polling",
                                if s.long_polling { "true" } else { "false" },
                            ),
                        ],
                    );
                    (labels, s.histogram)
                }),
            )?;
        }
        if let Some(ha) = b.ha() {
            if ha.slave_status().is_none() {
                let slaves = ha.slaves();
                gauge(
                    e,
                    "ferromq_ha_slave_count",
                    "Slaves connected to this master.",
                    &base,
                    slaves.len() as i64,
                )?;
                let rows: Vec<_> = slaves
                    .iter()
                    .map(|s| (s.addr.to_string(), s.lag_bytes, s.lag_ms))
                    .collect();
                family(
                    e,
                    "ferromq_ha_slave_lag_bytes",
                    "Bytes a slave is behind this master.",
                    MetricType::Gauge,
                    rows.iter().map(|(a, bytes, _)| {
                        (
                            with(&base, &[("slave", a)]),
                            ConstGauge::new(to_i64(*bytes)),
                        )
                    }),
                )?;
                family(
                    e,
                    "ferromq_ha_slave_lag_ms",
                    "Age in ms of the oldest bytes a slave lacks.",
                    MetricType::Gauge,
                    rows.iter().map(|(a, _, ms)| {
                        (with(&base, &[("slave", a)]), ConstGauge::new(to_i64(*ms)))
                    }),
                )?;
            }
        }
        Ok(())
    }
}
