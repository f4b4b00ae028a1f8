//! Prometheus metrics over HTTP, as RocketMQ 5 exports them
//! (`metricsExporterType=PROM`, `metricsPromExporterHost`,
//! `metricsPromExporterPort`, default port 5557): `GET /metrics` answers the
//! OpenMetrics text of a [`prometheus_client`] registry.
//!
//! The broker and the name server register collectors that read their
//! counters and tables when Prometheus scrapes ([`Collector`]): nothing is
//! added to the put or pull path, and a process nobody scrapes pays nothing.
//!
//! The HTTP side is the least a scraper needs: one request per connection,
//! at most [`MAX_REQUEST_BYTES`] of request head read within
//! [`REQUEST_TIMEOUT`], `GET /metrics` (or `/`) answered, anything else 404
//! or 405, at most [`MAX_CONNECTIONS`] at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ferromq_engine::config::Properties;
use prometheus_client::collector::Collector;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

use crate::namesrv::{parse_key, ConfigError};

/// RocketMQ 5's default `metricsPromExporterPort`.
pub const DEFAULT_PROM_PORT: u16 = 5557;

/// Longest request head read.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;

/// Time a scraper has to send its request head.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections served at once; more wait to be accepted.
pub const MAX_CONNECTIONS: usize = 16;

/// The metrics keys of a broker or name server properties file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    /// `metricsExporterType=PROM` turns the endpoint on; `DISABLE` (the
    /// default) leaves it off. RocketMQ's other exporters (`OTLP_GRPC`,
    /// `LOG`) are a startup error: ferromq serves Prometheus only.
    pub enabled: bool,
    /// `metricsPromExporterHost`: the address to bind. Default: the
    /// process's `bindAddress`, as RocketMQ binds all interfaces when unset.
    pub host: Option<String>,
    /// `metricsPromExporterPort`: default 5557; 0 lets the OS choose.
    pub port: u16,
}

impl MetricsConfig {
    /// Read the keys from `props`.
    ///
    /// # Errors
    /// [`ConfigError`] for an exporter type other than `DISABLE` or `PROM`,
    /// or a port that is not a port number.
    pub fn from_properties(props: &Properties) -> Result<Self, ConfigError> {
        let kind = props
            .get("metricsExporterType")
            .map(|v| v.trim().to_ascii_uppercase())
            .unwrap_or_default();
        let enabled = match kind.as_str() {
            "" | "DISABLE" => false,
            "PROM" => true,
            _ => {
                return Err(ConfigError {
                    key: "metricsExporterType".into(),
                    value: kind,
                    expected: "DISABLE or PROM (ferromq serves Prometheus only)",
                })
            }
        };
        let host = props
            .get("metricsPromExporterHost")
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty());
        let port = parse_key(props, "metricsPromExporterPort", "a TCP port 0..=65535")?
            .unwrap_or(DEFAULT_PROM_PORT);
        Ok(MetricsConfig {
            enabled,
            host,
            port,
        })
    }

    /// The address to bind, when enabled: `host` (else `bind_address`) and
    /// `port`.
    ///
    /// # Errors
    /// [`ConfigError`] when the host is not an IP address.
    pub fn bind_addr(&self, bind_address: &str) -> Result<Option<SocketAddr>, ConfigError> {
        if !self.enabled {
            return Ok(None);
        }
        let host = self.host.as_deref().unwrap_or(bind_address);
        let ip = host.parse().map_err(|_| ConfigError {
            key: "metricsPromExporterHost".into(),
            value: host.to_string(),
            expected: "an IP address",
        })?;
        Ok(Some(SocketAddr::new(ip, self.port)))
    }

    /// The keys as `key=value` lines (for `-p`).
    pub fn to_properties(&self) -> String {
        format!(
            "metricsExporterType={}\nmetricsPromExporterHost={}\nmetricsPromExporterPort={}\n",
            if self.enabled { "PROM" } else { "DISABLE" },
            self.host.as_deref().unwrap_or(""),
            self.port
        )
    }
}

/// A registry holding one collector.
pub fn registry_of(collector: impl Collector) -> Arc<Registry> {
    let mut r = Registry::default();
    r.register_collector(Box::new(collector));
    Arc::new(r)
}

/// Serve `registry` on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    registry: Arc<Registry>,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p,
            _ = shutdown.changed() => return,
        };
        let Ok(permit) = permit else {
            return;
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        match accepted {
            Ok((stream, _)) => {
                let registry = registry.clone();
                tokio::spawn(async move {
                    let _ = answer(stream, &registry).await;
                    drop(permit);
                });
            }
            Err(e) => {
                tracing::debug!(error = %e, "metrics accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Read one request head and answer it.
async fn answer(mut stream: TcpStream, registry: &Registry) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    let read_head = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            if head.len() >= MAX_REQUEST_BYTES {
                return Err(std::io::Error::other("request head too large"));
            }
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            head.extend_from_slice(&buf[..n]);
        }
        Ok(())
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, read_head).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e),
        Err(_) => return Ok(()),
    }
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (status, content_type, body) = match (method, path) {
        ("GET", "/metrics" | "/") => {
            let mut text = String::new();
            match prometheus_client::encoding::text::encode(&mut text, registry) {
                Ok(()) => (
                    "200 OK",
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    text,
                ),
                Err(e) => (
                    "500 Internal Server Error",
                    "text/plain",
                    format!("encoding failed: {e}\n"),
                ),
            }
        }
        ("GET", _) => ("404 Not Found", "text/plain", "only /metrics\n".to_string()),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "GET /metrics only\n".to_string(),
        ),
    };
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(reply.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_as_rocketmq_5_names_them() {
        let d = MetricsConfig::from_properties(&Properties::parse("")).unwrap();
        assert_eq!((d.enabled, d.port), (false, DEFAULT_PROM_PORT));
        assert_eq!(d.bind_addr("0.0.0.0").unwrap(), None);
        let c = MetricsConfig::from_properties(&Properties::parse(
            "metricsExporterType=PROM\nmetricsPromExporterHost=127.0.0.1\nmetricsPromExporterPort=0\n",
        ))
        .unwrap();
        assert_eq!(
            c.bind_addr("0.0.0.0").unwrap(),
            Some("127.0.0.1:0".parse().unwrap())
        );
        assert!(c.to_properties().contains("metricsExporterType=PROM\n"));
        // The store knows them as broker keys: no "unknown key" warning.
        let (_, unknown) = ferromq_engine::StoreConfig::from_properties(&Properties::parse(
            "metricsExporterType=PROM\nmetricsPromExporterHost=127.0.0.1\nmetricsPromExporterPort=0\n",
        ))
        .unwrap();
        assert!(unknown.is_empty(), "{unknown:?}");
        for bad in [
            "metricsExporterType=OTLP_GRPC\n",
            "metricsExporterType=PROM\nmetricsPromExporterPort=99999\n",
        ] {
            assert!(
                MetricsConfig::from_properties(&Properties::parse(bad)).is_err(),
                "{bad}"
            );
        }
        let host = MetricsConfig::from_properties(&Properties::parse(
            "metricsExporterType=prom\nmetricsPromExporterHost=nohost\n",
        ))
        .unwrap();
        assert!(host.bind_addr("0.0.0.0").is_err());
    }
}
