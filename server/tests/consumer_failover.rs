//! Consumer failover, as the seed promises for the master/slave modes: two name
//! servers, a SYNC_MASTER and its slave (`slaveReadEnable=true`). Messages are
//! sent; a consumer reads part of them from the master and commits; the master
//! is SIGKILLed; a consumer finds the slave through the route and reads every
//! remaining message from it; the master restarts on its store and consumption
//! continues from it. Nothing is lost; duplicates (at least once) are only the
//! messages consumed on the slave after its last copy of the master's offsets.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::net::TcpListener;
use std::time::Duration;

use common::{
    ha_props, pick_pull_broker, records, route_brokers, runtime_info, start_broker_ns,
    start_namesrv, temp_dir, total_max_offset, wait_for, Client,
};
use ferromq_server::remoting::codes::{request, response};

const TOPIC: &str = "FailoverTopic";
const GROUP: &str = "FailoverGroup";
const QUEUES: i32 = 4;

/// A port `p` with `p + 1` free too (a master's client and HA ports).
fn free_port_pair() -> u16 {
    for _ in 0..200 {
        let a = TcpListener::bind("127.0.0.1:0").unwrap();
        let p = a.local_addr().unwrap().port();
        if p < u16::MAX && TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
    panic!("no free port pair");
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

/// The broker a consumer of `TOPIC` pulls from now, by route (bounded wait until
/// `want` accepts the route's addresses).
fn pull_broker(ns: &[u16], want: impl Fn(&BTreeMap<i64, String>) -> bool) -> u16 {
    let addr = wait_for(Duration::from_secs(20), || {
        let route = route_brokers(ns, TOPIC)?;
        let (_, addrs) = route.into_iter().next()?;
        if !want(&addrs) {
            return None;
        }
        pick_pull_broker(&addrs)
    })
    .expect("a route that lists the wanted brokers");
    port_of(&addr)
}

/// A fresh consumer on `port`: for each queue, start at the broker's stored
/// offset for the group (0 if none), pull at most `limit` messages, commit the
/// new offset there. Returns the bodies read and the suggested broker ids seen.
fn consume(port: u16, limit: usize) -> (Vec<String>, Vec<i64>) {
    let mut c = Client::connect(port);
    let mut bodies = Vec::new();
    let mut suggested = Vec::new();
    for q in 0..QUEUES {
        let r = c.invoke(
            Client::offset_req(request::QUERY_CONSUMER_OFFSET, TOPIC, q)
                .with_ext("consumerGroup", GROUP),
        );
        let mut offset = if r.code == response::SUCCESS {
            r.ext_fields.get_i64("offset").unwrap() as u64
        } else {
            0
        };
        let mut taken = 0;
        for _ in 0..200 {
            if taken >= limit {
                break;
            }
            let max = (limit - taken).min(32) as i32;
            let r = c.pull(GROUP, TOPIC, q, offset, max);
            suggested.push(r.ext_fields.get_i64("suggestWhichBrokerId").unwrap());
            match r.code {
                response::SUCCESS => {
                    let recs = records(&r.body);
                    taken += recs.len();
                    bodies.extend(
                        recs.iter()
                            .map(|m| String::from_utf8_lossy(&m.body).to_string()),
                    );
                    offset = r.ext_fields.get_i64("nextBeginOffset").unwrap() as u64;
                }
                response::PULL_NOT_FOUND => break,
                response::PULL_RETRY_IMMEDIATELY => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                code => panic!(
                    "pull on {port} q{q} at {offset}: code {code} {:?}",
                    r.remark
                ),
            }
        }
        let r = c.invoke(
            Client::offset_req(request::UPDATE_CONSUMER_OFFSET, TOPIC, q)
                .with_ext("consumerGroup", GROUP)
                .with_ext("commitOffset", offset),
        );
        assert_eq!(r.code, response::SUCCESS);
    }
    (bodies, suggested)
}

/// The group's offset per queue as the broker on `port` answers it.
fn offsets_on(port: u16) -> Vec<Option<i64>> {
    let mut c = Client::connect(port);
    (0..QUEUES)
        .map(|q| {
            let r = c.invoke(
                Client::offset_req(request::QUERY_CONSUMER_OFFSET, TOPIC, q)
                    .with_ext("consumerGroup", GROUP),
            );
            (r.code == response::SUCCESS).then(|| r.ext_fields.get_i64("offset").unwrap())
        })
        .collect()
}

/// Send until the SYNC_MASTER on `port` acknowledges (its slave follows).
fn wait_slave_follows(port: u16) {
    let mut c = Client::connect(port);
    wait_for(Duration::from_secs(30), || {
        let r = c.send_v2("FailoverProbe", 0, b"probe", None, None);
        (r.code == response::SUCCESS).then_some(())
    })
    .expect("the slave follows the master");
}

/// Wait (bounded) until the broker at `port` has dispatched `n` messages of TOPIC.
fn wait_dispatched(port: u16, n: usize) {
    wait_for(Duration::from_secs(10), || {
        (total_max_offset(port, TOPIC, QUEUES) >= n as i64).then_some(())
    })
    .unwrap_or_else(|| panic!("{n} messages dispatched on {port} within 10 s"));
}

fn send(port: u16, from: usize, to: usize) {
    let mut c = Client::connect(port);
    for i in from..to {
        let r = c.send_v2(
            TOPIC,
            (i % QUEUES as usize) as i32,
            format!("m{i}").as_bytes(),
            None,
            None,
        );
        assert_eq!(r.code, response::SUCCESS, "send {i}: {:?}", r.remark);
    }
}

#[test]
fn consumers_move_to_the_slave_and_back_without_loss() {
    let (_d, dir) = temp_dir();
    let (_ns1, ns1) = start_namesrv(&dir.join("ns1").tap_mkdir());
    let (_ns2, ns2) = start_namesrv(&dir.join("ns2").tap_mkdir());
    let ns = [ns1, ns2];
    let m_port = free_port_pair();
    let mdir = dir.join("master");
    let sdir = dir.join("slave");
    let m_props = ha_props(
        &mdir.join("store"),
        "broker-f",
        0,
        "SYNC_MASTER",
        "slaveReadEnable=true\n",
    )
    .replace("listenPort=0\n", &format!("listenPort={m_port}\n"));
    let (mut master, p) = start_broker_ns(&mdir, &m_props, &ns);
    assert_eq!(p, m_port);
    let (_slave, s_port) = start_broker_ns(
        &sdir,
        &ha_props(
            &sdir.join("store"),
            "broker-f",
            1,
            "SLAVE",
            "slaveReadEnable=true\nslaveSyncInterval=300\n",
        ),
        &ns,
    );
    wait_slave_follows(m_port);

    // 1. Sent through the master: acknowledged only once the slave has them.
    const FIRST: usize = 80;
    send(m_port, 0, FIRST);
    // A send is acknowledged once stored (and on the slave); its consume-queue
    // unit follows asynchronously, so a pull may come before it.
    wait_dispatched(m_port, FIRST);
    // A consumer reads a part from the master (found by route) and commits.
    let port = pull_broker(&ns, |a| a.contains_key(&0) && a.contains_key(&1));
    assert_eq!(port, m_port, "the route's master is the one consumers use");
    let (phase1, _) = consume(port, 8);
    assert_eq!(phase1.len(), 8 * QUEUES as usize);
    let committed = offsets_on(m_port);
    // The slave copies the master's offsets within a sync interval.
    wait_for(Duration::from_secs(15), || {
        (offsets_on(s_port) == committed).then_some(())
    })
    .expect("the slave copies the master's consumer offsets");
    // And the master has written them (every flushConsumerOffsetInterval): what a
    // SIGKILL finds on disk is what the restarted master knows.
    let offsets_file = mdir.join("store/config/consumerOffset.json");
    wait_for(Duration::from_secs(10), || {
        let text = std::fs::read_to_string(&offsets_file).unwrap_or_default();
        text.contains(&format!("{TOPIC}@{GROUP}")).then_some(())
    })
    .expect("the master persists the consumer offsets");

    // 2. The master dies: the route lists the slave only, consumers read it.
    master.child.kill().unwrap();
    let _ = master.child.wait();
    let port = pull_broker(&ns, |a| !a.contains_key(&0) && a.contains_key(&1));
    assert_eq!(port, s_port);
    let (phase2, suggested) = consume(port, usize::MAX);
    // The slave suggests the group's brokerId (the master) to a consumer that
    // keeps up, so it goes back once the master returns.
    assert!(suggested.iter().all(|&s| s == 0), "{suggested:?}");
    let mut seen: HashMap<String, usize> = HashMap::new();
    for b in phase1.iter().chain(&phase2) {
        *seen.entry(b.clone()).or_default() += 1;
    }
    for i in 0..FIRST {
        assert_eq!(
            seen.get(&format!("m{i}")),
            Some(&1),
            "m{i} while the master is down"
        );
    }
    // Offsets committed on the slave stay on the slave.
    let on_slave = offsets_on(s_port);
    assert!(
        on_slave
            .iter()
            .all(|o| *o == Some((FIRST / QUEUES as usize) as i64)),
        "{on_slave:?}"
    );

    // 3. The master restarts on its store and ports; new messages arrive.
    let (_master2, p) = start_broker_ns(&mdir, &m_props, &ns);
    assert_eq!(p, m_port);
    wait_slave_follows(m_port);
    const SECOND: usize = 40;
    send(m_port, FIRST, FIRST + SECOND);
    wait_dispatched(m_port, FIRST + SECOND);
    let port = pull_broker(&ns, |a| a.contains_key(&0));
    assert_eq!(port, m_port);
    // The master never saw the commits made on the slave: a consumer starts
    // again from the master's offsets (RocketMQ's at-least-once).
    assert_eq!(offsets_on(m_port), committed);
    let (phase3, _) = consume(port, usize::MAX);
    for b in &phase3 {
        *seen.entry(b.clone()).or_default() += 1;
    }
    for i in 0..FIRST + SECOND {
        assert!(seen.contains_key(&format!("m{i}")), "m{i} lost");
    }
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    eprintln!(
        "consumed {} on the master, {} on the slave, {} after the master returned; {} duplicates",
        phase1.len(),
        phase2.len(),
        phase3.len(),
        duplicates
    );
    // Only what was consumed on the slave after its last offset copy comes twice.
    assert!(
        duplicates <= phase2.len(),
        "{duplicates} > {}",
        phase2.len()
    );
    assert_eq!(seen.len(), FIRST + SECOND);
    // The restarted master reports its slave again.
    let info = wait_for(Duration::from_secs(10), || {
        let i = runtime_info(m_port);
        (i.get("haSlaveCount").map(String::as_str) == Some("1")).then_some(i)
    })
    .expect("the master reports its slave");
    assert!(info.contains_key("haSlave0LagMs"));
}

trait TapMkdir {
    fn tap_mkdir(self) -> Self;
}

impl TapMkdir for std::path::PathBuf {
    fn tap_mkdir(self) -> Self {
        std::fs::create_dir_all(&self).unwrap();
        self
    }
}
