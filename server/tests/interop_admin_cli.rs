//! A real third-party admin tool, unchanged: crates.io's `rocketmq-admin-cli`
//! 1.0 (the rocketmq-rust project's RocketMQ admin CLI) against the real name
//! server and broker binaries, for topics, groups, consumer progress,
//! connections, offset reset, broker config, write permission and the name
//! server's KV config. Each command's effect is checked on ferromq's side
//! (stored offsets, config files, routes), not only the tool's output.
//!
//! The tool builds RocksDB from source, so `.ci/run` installs it once into
//! `~/.cache/ferromq/admin-cli` (`cargo install rocketmq-admin-cli --version
//! 1.0.0 --locked --root ...`) and passes its path in
//! `FERROMQ_ADMIN_CLI_BIN`; without it the test skips, saying why.
//!
//! What it took (each in the broker, each for any rocketmq-rust client):
//! its admin reads object-key maps with plain serde_json, so answers to a
//! client whose language is RUST carry them as JSON string keys
//! (`broker/dispatch.rs`); its `TopicStatsTable` needs `topicPutTps`, its
//! `ConsumeStatsList` `totalInflightDiff` and its `OffsetWrapper`
//! `pullOffset` (the last two are RocketMQ 5's too); `deleteTopic` sends its
//! own DELETE_TOPIC_IN_BROKER_LIST 5002 (`broker/ops_list.rs`); and
//! `deleteSubGroup` deletes the group's retry and DLQ topics whether they
//! exist or not, so deleting a topic a broker lacks answers SUCCESS, as
//! RocketMQ does.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use ferromq_server::remoting::{request, response, RemotingCommand};

const TOPIC: &str = "CliTopic";
const GROUP: &str = "CliGroup";
const PRODUCER: &str = "CliProducer";
const CLIENT_ID: &str = "127.0.0.1@cli-client";
const CLI_TIMEOUT: Duration = Duration::from_secs(60);

/// The tool: `FERROMQ_ADMIN_CLI_BIN`, else where `.ci/run` installs it.
fn cli_bin() -> Result<PathBuf, String> {
    let p = match std::env::var_os("FERROMQ_ADMIN_CLI_BIN") {
        Some(p) => PathBuf::from(p),
        None => {
            let home = std::env::var_os("HOME").ok_or("HOME is not set")?;
            Path::new(&home).join(".cache/ferromq/admin-cli/bin/rocketmq-admin-cli")
        }
    };
    if p.is_file() {
        Ok(p)
    } else {
        Err(format!(
            "{} is not there; `.ci/run` installs it (cargo install rocketmq-admin-cli --version 1.0.0 --locked --root ~/.cache/ferromq/admin-cli)",
            p.display()
        ))
    }
}

/// Runs the tool against one name server, bounded in time.
struct Cli {
    bin: PathBuf,
    namesrv: String,
    home: PathBuf,
}

impl Cli {
    /// Exit status and stdout + stderr of `rocketmq-admin-cli <args>`.
    fn run(&self, args: &[&str]) -> (bool, String) {
        let mut child = Command::new(&self.bin)
            .args(args)
            .env("NAMESRV_ADDR", &self.namesrv)
            .env("HOME", &self.home)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn rocketmq-admin-cli");
        let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let o = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        });
        let e = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        let deadline = Instant::now() + CLI_TIMEOUT;
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("rocketmq-admin-cli {args:?} did not finish within {CLI_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let text = format!("{}{}", o.join().unwrap(), e.join().unwrap());
        eprintln!("rocketmq-admin-cli {}:\n{text}", args.join(" "));
        (status.success(), text)
    }

    /// [`Cli::run`] that must succeed: its output.
    fn ok(&self, args: &[&str]) -> String {
        let (ok, text) = self.run(args);
        assert!(ok, "rocketmq-admin-cli {args:?} failed:\n{text}");
        text
    }
}

fn heartbeat() -> RemotingCommand {
    let body = format!(
        r#"{{"clientID":"{CLIENT_ID}","producerDataSet":[{{"groupName":"{PRODUCER}"}}],"consumerDataSet":[{{"groupName":"{GROUP}","consumeType":"CONSUME_PASSIVELY","messageModel":"CLUSTERING","consumeFromWhere":"CONSUME_FROM_FIRST_OFFSET","subscriptionDataSet":[{{"classFilterMode":false,"codeSet":[],"expressionType":"TAG","subString":"*","subVersion":1700000000000,"tagsSet":[],"topic":"{TOPIC}"}}],"unitMode":false}}]}}"#
    );
    let mut r = RemotingCommand::request(request::HEART_BEAT).with_body(body.into_bytes());
    r.language = 0;
    r.version = 401;
    r
}

/// A client online as producer of PRODUCER and consumer of GROUP that
/// answers GET_CONSUMER_RUNNING_INFO and counts the offset resets it is
/// told of, until `stop`.
fn online_client(port: u16, stop: Arc<AtomicBool>, resets: Arc<std::sync::atomic::AtomicUsize>) {
    let mut c = Client::connect(port);
    assert_eq!(c.invoke(heartbeat()).code, response::SUCCESS);
    c.stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    std::thread::spawn(move || {
        let mut len = [0u8; 4];
        while !stop.load(Ordering::Relaxed) {
            match c.stream.read_exact(&mut len) {
                Ok(()) => {}
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    continue
                }
                Err(_) => return,
            }
            let n = i32::from_be_bytes(len) as usize;
            let mut frame = vec![0u8; n];
            c.stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            if c.stream.read_exact(&mut frame).is_err() {
                return;
            }
            c.stream
                .set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let req = ferromq_server::remoting::codec::decode_frame(&frame).expect("frame");
            match req.code {
                307 => {
                    let info = format!(
                        r#"{{"properties":{{"PROP_CONSUME_TYPE":"CONSUME_PASSIVELY","PROP_CLIENT_VERSION":"V4_9_4"}},"subscriptionSet":[{{"topic":"{TOPIC}","subString":"*","classFilterMode":false,"expressionType":"TAG","codeSet":[],"tagsSet":[],"subVersion":1}}],"mqTable":{{}},"statusTable":{{}},"jstack":""}}"#
                    );
                    let mut resp = RemotingCommand::response(response::SUCCESS, None)
                        .with_body(info.into_bytes());
                    resp.opaque = req.opaque;
                    resp.flag = 1;
                    c.write_raw(&ferromq_server::remoting::codec::encode(&resp).unwrap());
                }
                220 => {
                    resets.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
        }
    });
}

fn stored_offset(c: &mut Client, q: i32) -> i64 {
    let r = c.invoke(
        Client::offset_req(request::QUERY_CONSUMER_OFFSET, TOPIC, q)
            .with_ext("consumerGroup", GROUP),
    );
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    r.ext_fields.get_i64("offset").unwrap()
}

fn topic_perm(ns_port: u16) -> Option<i64> {
    let mut c = Client::connect(ns_port);
    let r = c
        .invoke(RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC).with_ext("topic", TOPIC));
    if r.code != response::SUCCESS {
        return None;
    }
    let v = ferromq_server::remoting::json::parse_lenient(std::str::from_utf8(&r.body).unwrap())
        .unwrap();
    v["queueDatas"][0]["perm"].as_i64()
}

#[test]
fn rocketmq_admin_cli_manages_topics_groups_offsets_and_config() {
    let bin = match cli_bin() {
        Ok(b) => b,
        Err(why) => {
            eprintln!("SKIPPED interop_admin_cli: {why}");
            return;
        }
    };
    let (_tmp, dir) = temp_dir();
    let (_ns, ns_port) = start_namesrv(&dir);
    let store = dir.join("store");
    let (_broker, port) = start_broker(&dir, &broker_props(&store, ""), Some(ns_port));
    let broker_addr = format!("127.0.0.1:{port}");
    let home = dir.join("cli-home");
    std::fs::create_dir_all(&home).unwrap();
    let cli = Cli {
        bin,
        namesrv: format!("127.0.0.1:{ns_port}"),
        home,
    };
    wait_for(Duration::from_secs(30), || {
        let (ok, out) = cli.run(&["cluster", "clusterList"]);
        (ok && out.contains(&broker_addr)).then_some(())
    })
    .expect("the broker in clusterList");

    // Topic: created on the cluster's brokers, in the route with 4 queues.
    cli.ok(&[
        "topic",
        "updateTopic",
        "-t",
        TOPIC,
        "-c",
        "TestCluster",
        "-r",
        "4",
        "-w",
        "4",
    ]);
    let listed = cli.ok(&["topic", "topicList"]);
    assert!(listed.lines().any(|l| l.trim() == TOPIC), "{listed}");
    let route = cli.ok(&["topic", "topicRoute", "-t", TOPIC]);
    assert!(route.contains("\"writeQueueNums\":4"), "{route}");

    let mut c = Client::connect(port);
    for i in 0..12 {
        let r = c.send_v2(TOPIC, i % 4, format!("m{i}").as_bytes(), None, None);
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    }
    // The consume queues take a send a moment after it is stored.
    wait_for(Duration::from_secs(10), || {
        (total_max_offset(port, TOPIC, 4) == 12).then_some(())
    })
    .expect("12 messages in the consume queues");
    let status = cli.ok(&["topic", "topicStatus", "-t", TOPIC]);
    let rows: Vec<&str> = status
        .lines()
        .filter(|l| l.starts_with("broker-t"))
        .collect();
    assert_eq!(rows.len(), 4, "{status}");
    for r in &rows {
        let cols: Vec<&str> = r.split_whitespace().collect();
        assert_eq!((cols[2], cols[3]), ("0", "3"), "min and max offset: {r}");
    }

    // Subscription group with settings.
    cli.ok(&[
        "consumer",
        "updateSubGroup",
        "-g",
        GROUP,
        "-c",
        "TestCluster",
        "-r",
        "5",
        "-q",
        "1",
    ]);
    let groups = std::fs::read_to_string(store.join("config/subscriptionGroup.json")).unwrap();
    let v: serde_json::Value = ferromq_server::remoting::json::parse_lenient(&groups).unwrap();
    assert_eq!(
        v["subscriptionGroupTable"][GROUP]["retryMaxTimes"], 5,
        "{groups}"
    );

    // A client online; it has consumed 2 of each queue's 3.
    let stop = Arc::new(AtomicBool::new(false));
    let resets = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    online_client(port, stop.clone(), resets.clone());
    for q in 0..4 {
        let r = c.invoke(
            Client::offset_req(request::UPDATE_CONSUMER_OFFSET, TOPIC, q)
                .with_ext("consumerGroup", GROUP)
                .with_ext("commitOffset", 2),
        );
        assert_eq!(r.code, response::SUCCESS);
    }
    let progress = cli.ok(&["consumer", "consumerProgress", "-g", GROUP]);
    let prow: Vec<&str> = progress.lines().filter(|l| l.starts_with(TOPIC)).collect();
    assert_eq!(prow.len(), 4, "{progress}");
    for r in &prow {
        let cols: Vec<&str> = r.split_whitespace().collect();
        assert_eq!(
            (cols[3], cols[4], cols[5]),
            ("3", "2", "1"),
            "broker, consumer offset, diff: {r}"
        );
    }
    assert!(progress.contains("Consume Diff Total: 4"), "{progress}");
    let conns = cli.ok(&["connection", "consumerConnection", "-g", GROUP]);
    assert!(conns.contains(CLIENT_ID), "{conns}");
    let pc = c.invoke(
        RemotingCommand::request(request::GET_PRODUCER_CONNECTION_LIST)
            .with_ext("producerGroup", PRODUCER),
    );
    assert_eq!(pc.code, response::SUCCESS, "{:?}", pc.remark);
    eprintln!("204: {}", String::from_utf8_lossy(&pc.body));
    let pconns = cli.ok(&[
        "connection",
        "producerConnection",
        "-g",
        PRODUCER,
        "-t",
        TOPIC,
    ]);
    assert!(pconns.contains(CLIENT_ID), "{pconns}");
    let running = cli.ok(&["consumer", "consumerStatus", "-g", GROUP, "-i", CLIENT_ID]);
    assert!(running.contains(&format!("Topic: {TOPIC}")), "{running}");
    let bstats = cli.ok(&["broker", "brokerConsumeStats", "-b", &broker_addr]);
    assert_eq!(
        bstats
            .lines()
            .filter(|l| l.starts_with(TOPIC) && l.contains(GROUP))
            .count(),
        4,
        "{bstats}"
    );
    let all = cli.ok(&["stats", "statsAll", "-t", TOPIC]);
    assert!(all.contains(GROUP), "{all}");

    // Offset reset to an hour ago: every queue back to 0, stored, and the
    // online client told.
    let hour_ago = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 3_600_000)
        .to_string();
    let reset = cli.ok(&[
        "offset",
        "resetOffsetByTime",
        "-g",
        GROUP,
        "-t",
        TOPIC,
        "-s",
        &hour_ago,
    ]);
    assert_eq!(
        reset
            .lines()
            .filter(|l| l.contains("New Offset: 0"))
            .count(),
        4,
        "{reset}"
    );
    for q in 0..4 {
        assert_eq!(stored_offset(&mut c, q), 0, "queue {q}");
    }
    wait_for(Duration::from_secs(10), || {
        (resets.load(Ordering::Relaxed) > 0).then_some(())
    })
    .expect("the online client told of the reset");

    // Broker config, live and persisted.
    cli.ok(&[
        "broker",
        "updateBrokerConfig",
        "-b",
        &broker_addr,
        "-k",
        "fileReservedTime",
        "-v",
        "48",
        "--yes",
    ]);
    let props = std::fs::read_to_string(dir.join("broker.properties")).unwrap();
    assert!(props.lines().any(|l| l == "fileReservedTime=48"), "{props}");
    let cfg = cli.ok(&["broker", "getBrokerConfig", "-b", &broker_addr]);
    assert!(
        cfg.lines()
            .any(|l| l.starts_with("fileReservedTime") && l.trim_end().ends_with("48")),
        "{cfg}"
    );
    // A key that is not safe live is refused and nothing changes.
    let (ok, out) = cli.run(&[
        "broker",
        "updateBrokerConfig",
        "-b",
        &broker_addr,
        "-k",
        "storePathRootDir",
        "-v",
        "/tmp/x",
        "--yes",
    ]);
    assert!(!ok, "{out}");
    let props2 = std::fs::read_to_string(dir.join("broker.properties")).unwrap();
    assert_eq!(props, props2);

    // Draining: write permission off at the name server and back.
    assert_eq!(topic_perm(ns_port), Some(6));
    cli.ok(&["nameserver", "wipeWritePerm", "-b", "broker-t"]);
    assert_eq!(topic_perm(ns_port), Some(4));
    cli.ok(&["nameserver", "addWritePerm", "-b", "broker-t"]);
    assert_eq!(topic_perm(ns_port), Some(6));

    // KV config.
    cli.ok(&[
        "nameserver",
        "updateKvConfig",
        "-s",
        "cli-ns",
        "-k",
        "k1",
        "-v",
        "v1",
    ]);
    let mut n = Client::connect(ns_port);
    let get = |n: &mut Client| {
        n.invoke(
            RemotingCommand::request(101)
                .with_ext("namespace", "cli-ns")
                .with_ext("key", "k1"),
        )
    };
    let r = get(&mut n);
    assert_eq!(r.code, response::SUCCESS);
    assert_eq!(r.ext_fields.opt_str("value"), Some("v1"));
    cli.ok(&["nameserver", "deleteKvConfig", "-s", "cli-ns", "-k", "k1"]);
    assert_ne!(get(&mut n).code, response::SUCCESS);

    // Deleting the group (with its retry and DLQ topics, which do not
    // exist) and the topic.
    stop.store(true, Ordering::Relaxed);
    cli.ok(&[
        "consumer",
        "deleteSubGroup",
        "-g",
        GROUP,
        "-c",
        "TestCluster",
    ]);
    let groups = std::fs::read_to_string(store.join("config/subscriptionGroup.json")).unwrap();
    assert!(!groups.contains(&format!("\"{GROUP}\"")), "{groups}");
    cli.ok(&["topic", "deleteTopic", "-t", TOPIC, "-c", "TestCluster"]);
    let r = c.invoke(RemotingCommand::request(request::GET_TOPIC_CONFIG).with_ext("topic", TOPIC));
    assert_eq!(r.code, response::TOPIC_NOT_EXIST);
    assert_eq!(topic_perm(ns_port), None);
    let listed = cli.ok(&["topic", "topicList"]);
    assert!(!listed.lines().any(|l| l.trim() == TOPIC), "{listed}");
}
