//! UPDATE_BROKER_CONFIG (25) of the store's live keys against the real
//! binaries: `ferromq-admin updateBrokerConfig` changes fileReservedTime,
//! flushIntervalCommitLog, diskMaxUsedSpaceRatio and deleteWhen on a running
//! broker; the `-c` file holds the new values, GET_BROKER_CONFIG (26,
//! `ferromq-admin getBrokerConfig`) shows them, bad values are refused with
//! the file unchanged, a restart from the file keeps them, and a slave takes
//! them too.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use ferromq_server::remoting::{request, response, RemotingCommand};

/// `ferromq-admin getBrokerConfig -b addr`, as key -> value (each of
/// [`CHANGES`]' keys shown once).
fn broker_config(ns_port: u16, addr: &str) -> BTreeMap<String, String> {
    let out = admin_ok(ns_port, &["getBrokerConfig", "-b", addr]);
    let mut map = BTreeMap::new();
    for line in out.lines() {
        if let Some((k, v)) = line.split_once('=') {
            let k = k.trim();
            let previous = map.insert(k.to_string(), v.trim().to_string());
            let ours = CHANGES.iter().any(|(c, _)| *c == k);
            assert!(!ours || previous.is_none(), "{k} shown twice:\n{out}");
        }
    }
    map
}

/// `updateBrokerConfig -b addr -k key -v value`.
fn update(ns_port: u16, addr: &str, key: &str, value: &str) -> std::process::Output {
    admin(
        ns_port,
        &["updateBrokerConfig", "-b", addr, "-k", key, "-v", value],
    )
}

/// The `key=` lines of a properties file.
fn lines_of<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{key}=")))
        .collect()
}

const CHANGES: [(&str, &str); 4] = [
    ("fileReservedTime", "12"),
    ("flushIntervalCommitLog", "200"),
    ("diskMaxUsedSpaceRatio", "93"),
    ("deleteWhen", "03;15"),
];

#[test]
fn store_keys_change_live_persist_and_survive_a_restart() {
    let (_tmp, dir) = temp_dir();
    let (_ns, ns_port) = start_namesrv(&dir);
    let store = dir.join("store");
    let props = broker_props(&store, "fileReservedTime=72\nflushIntervalCommitLog=500\n");
    let (mut broker, port) = start_broker(&dir, &props, None);
    let addr = format!("127.0.0.1:{port}");
    let file = dir.join("broker.properties");

    let start = broker_config(ns_port, &addr);
    assert_eq!(start["fileReservedTime"], "72");
    assert_eq!(start["flushIntervalCommitLog"], "500");
    assert_eq!(start["diskMaxUsedSpaceRatio"], "95");
    assert_eq!(start["deleteWhen"], "04");

    for (k, v) in CHANGES {
        let o = update(ns_port, &addr, k, v);
        assert!(
            o.status.success(),
            "{k}={v}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    // The file: each key once, with its new value, the other lines kept.
    let persisted = std::fs::read_to_string(&file).unwrap();
    for (k, v) in CHANGES {
        assert_eq!(lines_of(&persisted, k), [format!("{k}={v}")], "{persisted}");
    }
    assert!(persisted.contains("brokerName=broker-t\n"), "{persisted}");
    // GET_BROKER_CONFIG: the store's effective values.
    let now = broker_config(ns_port, &addr);
    for (k, v) in CHANGES {
        assert_eq!(now[k], v, "{k}");
    }

    // Refused, nothing changed (the file neither): bad values, a store key
    // fixed while the store runs, and a good value beside a bad one.
    for (k, v, why) in [
        ("diskMaxUsedSpaceRatio", "abc", "diskMaxUsedSpaceRatio=abc"),
        ("deleteWhen", "25", "hours from 0 to 23"),
        ("flushIntervalCommitLog", "0", "flushIntervalCommitLog=0"),
        ("fileReservedTime", "-3", "fileReservedTime=-3"),
        ("mapedFileSizeCommitLog", "4096", "store setting fixed"),
    ] {
        let o = update(ns_port, &addr, k, v);
        assert!(!o.status.success(), "{k}={v} was accepted");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(why), "{k}={v}: {err}");
    }
    let mut c = Client::connect(port);
    let r = c.invoke(
        RemotingCommand::request(request::UPDATE_BROKER_CONFIG)
            .with_body(b"fileReservedTime=1\nslaveReadEnable=true\ndeleteWhen=25\n".to_vec()),
    );
    assert_eq!(r.code, response::SYSTEM_ERROR);
    assert!(
        r.remark
            .as_deref()
            .unwrap_or_default()
            .contains("deleteWhen"),
        "{:?}",
        r.remark
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), persisted);
    let after_refusals = broker_config(ns_port, &addr);
    assert_eq!(after_refusals, now, "nothing changed");

    // A ratio out of range is clamped, as a file's value is, and said so.
    let r = c.invoke(
        RemotingCommand::request(request::UPDATE_BROKER_CONFIG)
            .with_body(b"diskMaxUsedSpaceRatio=120\n".to_vec()),
    );
    assert_eq!(r.code, response::SUCCESS);
    assert!(
        r.remark.as_deref().unwrap_or_default().contains("using 95"),
        "{:?}",
        r.remark
    );
    assert_eq!(broker_config(ns_port, &addr)["diskMaxUsedSpaceRatio"], "95");
    let o = update(ns_port, &addr, "diskMaxUsedSpaceRatio", "93");
    assert!(o.status.success());
    let persisted = std::fs::read_to_string(&file).unwrap();
    drop(c);

    // A restart from the file keeps the values.
    broker.terminate(Duration::from_secs(30));
    drop(broker);
    let (_broker, port) = start_broker(&dir, &persisted, None);
    let addr = format!("127.0.0.1:{port}");
    let again = broker_config(ns_port, &addr);
    for (k, v) in CHANGES {
        assert_eq!(again[k], v, "{k} after the restart");
    }
}

#[test]
fn a_slave_takes_its_store_settings_live() {
    let (_tmp, dir) = temp_dir();
    let (_ns, ns_port) = start_namesrv(&dir);
    let props = ha_props(&dir.join("store"), "broker-s", 1, "SLAVE", "");
    let (_slave, port) = start_broker(&dir, &props, None);
    let addr = format!("127.0.0.1:{port}");
    assert_eq!(broker_config(ns_port, &addr)["brokerRole"], "SLAVE");
    for (k, v) in CHANGES {
        let o = update(ns_port, &addr, k, v);
        assert!(
            o.status.success(),
            "{k}={v}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let now = broker_config(ns_port, &addr);
    let persisted = std::fs::read_to_string(dir.join("broker.properties")).unwrap();
    for (k, v) in CHANGES {
        assert_eq!(now[k], v, "{k}");
        assert_eq!(lines_of(&persisted, k), [format!("{k}={v}")], "{persisted}");
    }
}
