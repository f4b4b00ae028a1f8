//! Scraping `/metrics` (`metricsExporterType=PROM`): one HTTP GET and the
//! samples of the OpenMetrics text.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use super::Proc;

/// The properties that turn the Prometheus endpoint on at an OS-chosen
/// loopback port.
pub const METRICS_ON: &str =
    "metricsExporterType=PROM\nmetricsPromExporterHost=127.0.0.1\nmetricsPromExporterPort=0\n";

/// A broker binary with metrics on (its store under `dir`): the process,
/// its remoting port and its metrics `host:port`.
pub fn start_broker_with_metrics(dir: &std::path::Path) -> (Proc, u16, String) {
    let props = super::broker_props(&dir.join("store"), METRICS_ON);
    let mut cmd = super::broker_command(env!("CARGO_BIN_EXE_ferromq-broker"), dir, &props);
    cmd.stdin(std::process::Stdio::null());
    let mut broker = super::spawn_to("broker", cmd, std::process::Stdio::null(), "warn");
    let port = super::port_of(&broker.wait_line("listening on", Duration::from_secs(30)));
    let metrics = metrics_addr(&mut broker);
    (broker, port, metrics)
}

/// One HTTP/1.0 GET of `path` at `addr`: (status line, body); empty when
/// nothing listens there (yet).
pub fn get(addr: &str, path: &str) -> (String, String) {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return (String::new(), String::new());
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

/// The value of the first sample of `name` whose labels contain every one
/// of `labels` (`key="value"`) in the exposition `text`.
pub fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .find(|l| labels.iter().all(|want| l.contains(want)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The `host:port` of the metrics endpoint a broker or name server prints
/// (`... metrics http://host:port/metrics`).
pub fn metrics_addr(p: &mut Proc) -> String {
    let line = p.wait_line("metrics http://", Duration::from_secs(30));
    line.split("http://")
        .nth(1)
        .and_then(|r| r.strip_suffix("/metrics"))
        .expect("metrics address")
        .to_string()
}
