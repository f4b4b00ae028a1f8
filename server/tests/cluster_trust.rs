//! Cluster-internal trust with ACL on (a ferromq extension, issue 20 item 7):
//! a name server with `aclEnable=true` takes REGISTER_BROKER and
//! UNREGISTER_BROKER only from admin accounts while the broker's own signed
//! registration works; a master's HA port refuses a raw connection (eight
//! bytes of offset, which streams the commitlog from RocketMQ 4.x) and a
//! slave holding another secret, and replicates to a slave of the cluster.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::hostile::start_namesrv_with;
use common::{broker_props, ha_props, records, start_broker, temp_dir, wait_for, Client};
use ferromq_server::acl::Credentials;
use ferromq_server::remoting::{request, RemotingCommand};

const SYSTEM_ERROR: i32 = 1;

/// No white list: every request is signed or refused.
const ACL: &str = "\
accounts:
  - accessKey: clusteradmin
    secretKey: adminsecret1
    admin: true
  - accessKey: appuser
    secretKey: appsecret1
    admin: false
    defaultTopicPerm: PUB|SUB
    defaultGroupPerm: PUB|SUB
";

fn admin() -> Credentials {
    Credentials::new("clusteradmin", "adminsecret1").unwrap()
}

fn app() -> Credentials {
    Credentials::new("appuser", "appsecret1").unwrap()
}

fn signed(mut cmd: RemotingCommand, by: &Credentials) -> RemotingCommand {
    by.sign(&mut cmd);
    cmd
}

fn write_acl(dir: &Path, text: &str) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("plain_acl.yml");
    std::fs::write(&path, text).unwrap();
    format!("aclEnable=true\naclFilePath={}\n", path.display())
}

/// Whether the name server on `port` lists broker `name`
/// (GET_BROKER_CLUSTER_INFO; its body is fastjson's, keys unquoted).
fn registered(port: u16, name: &str) -> bool {
    let mut c = Client::connect(port);
    let r = c.invoke(RemotingCommand::request(request::GET_BROKER_CLUSTER_INFO));
    assert_eq!(r.code, 0, "cluster info: {:?}", r.remark);
    String::from_utf8_lossy(&r.body).contains(&format!("\"{name}\":"))
}

fn register(name: &str, addr: &str) -> RemotingCommand {
    RemotingCommand::request(request::REGISTER_BROKER)
        .with_ext("brokerName", name)
        .with_ext("brokerAddr", addr)
        .with_ext("clusterName", "TestCluster")
        .with_ext("haServerAddr", "127.0.0.1:1")
        .with_ext("brokerId", 0)
        .with_ext("compressed", false)
        .with_body(br#"{"topicConfigSerializeWrapper":{"topicConfigTable":{},"dataVersion":{"counter":1,"timestamp":1}},"filterServerList":[]}"#.to_vec())
}

fn unregister(name: &str, addr: &str) -> RemotingCommand {
    RemotingCommand::request(request::UNREGISTER_BROKER)
        .with_ext("brokerName", name)
        .with_ext("brokerAddr", addr)
        .with_ext("clusterName", "TestCluster")
        .with_ext("brokerId", 0)
}

fn assert_refused(r: &RemotingCommand, why: &str) {
    assert_eq!(r.code, SYSTEM_ERROR, "{:?}", r.remark);
    let remark = r.remark.as_deref().unwrap_or_default();
    assert!(
        remark.starts_with("org.apache.rocketmq.acl.common.AclException: ") && remark.contains(why),
        "remark {remark:?} should name {why:?}"
    );
    assert!(!remark.contains("adminsecret1") && !remark.contains("appsecret1"));
}

#[test]
fn name_server_takes_registrations_only_from_admin_accounts() {
    let (_d, dir) = temp_dir();
    let acl = write_acl(&dir.join("acl"), ACL);
    let (_ns, ns_port) = start_namesrv_with(&dir.join("ns"), &acl, &dir.join("ns.log"));
    let bdir = dir.join("broker");
    let (_broker, b_port) = start_broker(
        &bdir,
        &broker_props(&bdir.join("store"), &acl),
        Some(ns_port),
    );
    // The broker signs its registration with the first admin account.
    wait_for(Duration::from_secs(20), || {
        registered(ns_port, "broker-t").then_some(())
    })
    .expect("the broker's signed registration is taken");
    let broker_addr = format!("127.0.0.1:{b_port}");

    let mut c = Client::connect(ns_port);
    let fake = || register("broker-t", "127.0.0.1:1");
    assert_refused(&c.invoke(fake()), "No accessKey is configured");
    assert_refused(
        &c.invoke(signed(fake(), &app())),
        "Need admin permission for request code=103, but accessKey=appuser is not",
    );
    let wrong = Credentials::new("clusteradmin", "guessed-secret").unwrap();
    assert_refused(
        &c.invoke(signed(fake(), &wrong)),
        "Check signature failed for accessKey=clusteradmin",
    );
    let unknown = Credentials::new("nobody", "whatever1").unwrap();
    assert_refused(
        &c.invoke(signed(fake(), &unknown)),
        "No acl config for nobody",
    );
    assert_refused(
        &c.invoke(unregister("broker-t", &broker_addr)),
        "No accessKey is configured",
    );
    assert_refused(
        &c.invoke(signed(unregister("broker-t", &broker_addr), &app())),
        "Need admin permission",
    );
    // Nothing a stranger sent changed the routes.
    let route = common::route_brokers(&[ns_port], "TBW102").expect("a route");
    let addrs: Vec<&String> = route.iter().flat_map(|(_, a)| a.values()).collect();
    assert_eq!(addrs, vec![&broker_addr], "the real broker only");

    // An admin account may unregister (the check does not refuse everything).
    let r = c.invoke(signed(unregister("broker-t", &broker_addr), &admin()));
    assert_eq!(r.code, 0, "{:?}", r.remark);
    assert!(!registered(ns_port, "broker-t"));
    // Route queries stay open, as in RocketMQ.
    let r = c.invoke(RemotingCommand::request(request::GET_BROKER_CLUSTER_INFO));
    assert_eq!(r.code, 0);
}

#[test]
fn name_server_with_acl_and_no_file_does_not_start() {
    let (_d, dir) = temp_dir();
    let cfg = dir.join("namesrv.properties");
    let missing = dir.join("missing.yml");
    std::fs::write(
        &cfg,
        format!(
            "listenPort=0\nbindAddress=127.0.0.1\naclEnable=true\naclFilePath={}\n",
            missing.display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferromq-namesrv"))
        .arg("-c")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing.yml"), "{err}");
}

/// Connect to the HA port, send an offset report of 0 as a RocketMQ 4.x
/// slave does, and read what comes back for up to 10 s: the byte count
/// before the master closed.
fn raw_ha_connection(ha_port: u16) -> usize {
    let mut s = TcpStream::connect(("127.0.0.1", ha_port)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    s.write_all(&0i64.to_be_bytes()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = 0;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return got,
        }
    }
    panic!("the HA port kept a raw connection open for 10 s ({got} bytes sent)");
}

/// Bodies of `topic` queue 0 on the broker at `port`, pulled with `by`.
fn bodies(port: u16, topic: &str, by: &Credentials) -> Vec<String> {
    let mut c = Client::connect(port);
    let req = Client::pull_req("trust-check", topic, 0, 0, 32, 0, 0, "*");
    let r = c.invoke(signed(req, by));
    if r.code != 0 {
        return Vec::new();
    }
    records(&r.body)
        .iter()
        .map(|m| String::from_utf8_lossy(&m.body).to_string())
        .collect()
}

#[test]
fn ha_port_serves_only_slaves_of_the_cluster() {
    let (_d, dir) = temp_dir();
    let acl = write_acl(&dir.join("acl"), ACL);
    let mdir = dir.join("master");
    let (mut master, m_port) = start_broker(
        &mdir,
        &ha_props(&mdir.join("store"), "broker-h", 0, "ASYNC_MASTER", &acl),
        None,
    );
    let ha_port = common::ha_port(&mut master);
    let mut c = Client::connect(m_port);
    let r = c.invoke(signed(
        Client::send_v2_req("TrustTopic", 0, b"before-slaves", &[]),
        &app(),
    ));
    assert_eq!(r.code, 0, "{:?}", r.remark);

    // A stranger's eight bytes get nothing: closed before any frame.
    assert_eq!(
        raw_ha_connection(ha_port),
        0,
        "commitlog bytes sent to a stranger"
    );

    // A slave whose admin secret differs cannot prove itself, nor check the master.
    let impostor_acl = write_acl(
        &dir.join("acl-impostor"),
        &ACL.replace("adminsecret1", "othersecret1"),
    );
    let idir = dir.join("impostor");
    let slave_props = |store: &Path, acl: &str| {
        ha_props(
            store,
            "broker-h",
            1,
            "SLAVE",
            &format!("{acl}haMasterAddress=127.0.0.1:{ha_port}\nslaveReadEnable=true\n"),
        )
    };
    let (_impostor, i_port) = start_broker(
        &idir,
        &slave_props(&idir.join("store"), &impostor_acl),
        None,
    );

    // The real slave follows the master and gets the message.
    let sdir = dir.join("slave");
    let (_slave, s_port) = start_broker(&sdir, &slave_props(&sdir.join("store"), &acl), None);
    wait_for(Duration::from_secs(30), || {
        (bodies(s_port, "TrustTopic", &app()) == ["before-slaves"]).then_some(())
    })
    .expect("the slave of the cluster replicates");
    // Meanwhile the impostor (started first, retrying) got nothing.
    let impostor_has = bodies(
        i_port,
        "TrustTopic",
        &Credentials::new("appuser", "appsecret1").unwrap(),
    );
    assert!(
        impostor_has.is_empty(),
        "the impostor received {impostor_has:?}"
    );
}
