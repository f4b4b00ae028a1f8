//! Live ACL changes on a real broker: the ACL file edited while a producer
//! sends (the new rule applies within the reload interval; a malformed edit
//! keeps the rules and is logged once); the ACL admin requests 50-54 (an
//! admin creates an account that then sends, deletes it and it is refused; a
//! non-admin's request and bad input change nothing); `ferromq-admin`'s ACL
//! subcommands as a process; a broker without ACL answering the admin
//! requests with their failure code; and bad signatures (not Base64; 10,000
//! pipelined on one connection while another client is served).

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{broker_props, start_broker_ns, temp_dir, Client};
use ferromq_server::acl::sign;
use ferromq_server::remoting::codec::encode;
use ferromq_server::remoting::{request, RemotingCommand};

const SYSTEM_ERROR: i32 = 1;
const ACL_EXCEPTION: &str = "org.apache.rocketmq.acl.common.AclException: ";
/// The reload interval the brokers here run with.
const RELOAD_MS: u64 = 200;

/// No white list matches 127.0.0.1: every request must be signed.
const PLAIN_ACL: &str = "\
globalWhiteRemoteAddresses:
  - 10.10.103.*
accounts:
  - accessKey: rocketmq2
    secretKey: 12345678
    defaultTopicPerm: DENY
    defaultGroupPerm: DENY
    topicPerms:
      - topicA=PUB|SUB
  - accessKey: RocketMQAdmin
    secretKey: adminsecret
    admin: true
";

use common::signed;

fn user(cmd: RemotingCommand) -> RemotingCommand {
    signed(cmd, "rocketmq2", "12345678")
}

fn admin(cmd: RemotingCommand) -> RemotingCommand {
    signed(cmd, "RocketMQAdmin", "adminsecret")
}

fn send(topic: &str) -> RemotingCommand {
    Client::send_v2_req(topic, 0, b"payload", &[])
}

fn assert_refused(r: &RemotingCommand, why: &str) {
    assert_eq!(r.code, SYSTEM_ERROR, "{why}: {:?}", r.remark);
    assert_eq!(
        r.remark.as_deref(),
        Some(format!("{ACL_EXCEPTION}{why}").as_str())
    );
}

/// A broker with ACL on, `PLAIN_ACL` in `dir/acl.yml` (`aclFilePath`),
/// reloading every [`RELOAD_MS`], logging at `warn` to `dir/broker.log`.
fn broker(dir: &Path, namesrv: &[u16]) -> (common::Proc, u16, PathBuf, PathBuf) {
    let file = dir.join("acl.yml");
    std::fs::write(&file, PLAIN_ACL).unwrap();
    let extra = format!(
        "aclEnable=true\naclFilePath={}\naclReloadIntervalMs={RELOAD_MS}\n",
        file.display()
    );
    let props = broker_props(&dir.join("store"), &extra);
    let log = dir.join("broker.log");
    let (p, port) = if namesrv.is_empty() {
        common::start_broker_logged_at(dir, &props, &log, "warn")
    } else {
        start_broker_ns(dir, &props, namesrv)
    };
    (p, port, file, log)
}

/// Replace `file`'s content the way editors and config tools do: a new file
/// renamed over it.
fn replace_file(file: &Path, text: &str) {
    let tmp = file.with_extension("new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, file).unwrap();
}

fn log_count(log: &Path, needle: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .matches(needle)
        .count()
}

#[test]
fn an_edited_file_applies_within_the_reload_interval_while_a_producer_runs() {
    let (_d, dir) = temp_dir();
    let (mut b, port, file, log) = broker(&dir, &[]);

    // The producer: signed sends to topicA, bounded in count and time,
    // each answer recorded with when it came.
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut c = Client::connect(port);
            let end = Instant::now() + Duration::from_secs(60);
            let mut answers = Vec::new();
            while answers.len() < 20_000 && Instant::now() < end && !stop.load(Ordering::Acquire) {
                let r = c.invoke(user(send("topicA")));
                answers.push((Instant::now(), r.code, r.remark));
            }
            answers
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    // The edit: topicA denied, topicB granted.
    let edited = PLAIN_ACL.replace("topicA=PUB|SUB", "topicA=DENY\n      - topicB=PUB");
    let edited_at = Instant::now();
    replace_file(&file, &edited);
    let mut c = Client::connect(port);
    let applied = common::wait_for(Duration::from_secs(10), || {
        (c.invoke(user(send("topicB"))).code == 0).then(Instant::now)
    })
    .expect("the edited rule applies");
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Release);
    let answers = producer.join().unwrap();

    let before: Vec<_> = answers.iter().filter(|a| a.0 < edited_at).collect();
    assert!(!before.is_empty(), "the producer sent before the edit");
    assert!(before.iter().all(|a| a.1 == 0), "allowed before the edit");
    let first_refused = answers
        .iter()
        .position(|a| a.1 != 0)
        .expect("the producer was refused after the edit");
    let (at, _, remark) = &answers[first_refused];
    assert_eq!(
        remark.as_deref(),
        Some(format!("{ACL_EXCEPTION}No default permission for topic:topicA").as_str())
    );
    // Within the interval, with room for a busy machine.
    let took = at.duration_since(edited_at);
    eprintln!(
        "edit to first refusal: {took:?} ({} sends before, {} after; interval {RELOAD_MS} ms)",
        before.len(),
        answers.len() - before.len()
    );
    assert!(
        took < Duration::from_millis(RELOAD_MS) + Duration::from_secs(3),
        "{took:?}"
    );
    assert!(applied.duration_since(edited_at) < Duration::from_secs(4));
    // Once refused, always refused: no old rules in between.
    assert!(answers[first_refused..].iter().all(|a| a.1 == SYSTEM_ERROR));

    // A malformed edit keeps the rules in force and is logged once.
    replace_file(&file, "accounts: [\n  - accessKey: [broken\n");
    std::thread::sleep(Duration::from_millis(RELOAD_MS * 6));
    assert_eq!(c.invoke(user(send("topicB"))).code, 0);
    assert_refused(
        &c.invoke(user(send("topicA"))),
        "No default permission for topic:topicA",
    );
    let warned = "cannot be loaded; the previous rules stay in force";
    assert_eq!(
        log_count(&log, warned),
        1,
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );
    assert!(
        log_count(&log, "acl.yml") >= 1,
        "the warning names the file"
    );
    // A removed file: the same.
    std::fs::remove_file(&file).unwrap();
    std::thread::sleep(Duration::from_millis(RELOAD_MS * 4));
    assert_eq!(c.invoke(user(send("topicB"))).code, 0);
    assert_eq!(log_count(&log, warned), 2);
    // Fixed again: the file's rules apply.
    replace_file(&file, PLAIN_ACL);
    common::wait_for(Duration::from_secs(10), || {
        (c.invoke(user(send("topicA"))).code == 0).then_some(())
    })
    .expect("the restored rules apply");
    // The reload task stops with the broker: a prompt, clean exit.
    let status = b.terminate(Duration::from_secs(20));
    assert!(status.success(), "{status:?}");
}

fn create_account(key: &str, secret: &str) -> RemotingCommand {
    RemotingCommand::request(request::UPDATE_AND_CREATE_ACL_CONFIG)
        .with_ext("accessKey", key)
        .with_ext("secretKey", secret)
        .with_ext("admin", false)
        .with_ext("defaultTopicPerm", "DENY")
        .with_ext("topicPerms", "topicN=PUB,topicX=DENY")
        .with_ext("groupPerms", "groupN=SUB")
}

#[test]
fn admin_requests_create_and_delete_accounts_and_others_change_nothing() {
    let (_d, dir) = temp_dir();
    let (_b, port, file, _log) = broker(&dir, &[]);
    let mut c = Client::connect(port);
    let original = std::fs::read(&file).unwrap();

    // A non-admin account may not use codes 50-54; the file is untouched.
    let r = c.invoke(user(create_account("sneaky01", "sneakysecret")));
    assert_refused(
        &r,
        "Need admin permission for request code=50, but accessKey=rocketmq2 is not",
    );
    for code in [51, 52, 53, 54] {
        let req = RemotingCommand::request(code)
            .with_ext("accessKey", "RocketMQAdmin")
            .with_ext("globalWhiteAddrs", "*");
        let r = c.invoke(user(req));
        assert_refused(
            &r,
            &format!(
                "Need admin permission for request code={code}, but accessKey=rocketmq2 is not"
            ),
        );
    }
    // Unsigned: refused too.
    assert_refused(
        &c.invoke(create_account("sneaky01", "sneakysecret")),
        "No accessKey is configured",
    );
    assert_eq!(std::fs::read(&file).unwrap(), original);

    // Bad input from the admin: a clear remark, the file unchanged.
    let bad = [
        (
            create_account("newUser1", "short"),
            209,
            "secretKey must be longer than 6",
        ),
        (create_account("tiny", "goodsecret"), 209, "accessKey=tiny"),
        (
            create_account("newUser1", "newsecret1").with_ext("defaultTopicPerm", "WRITE"),
            209,
            "defaultTopicPerm",
        ),
        (
            create_account("newUser1", "newsecret1").with_ext("topicPerms", "topicN"),
            209,
            "'Res=Perm'",
        ),
        (
            create_account("newUser1", "newsecret1").with_ext("whiteRemoteAddress", "1.2.3"),
            209,
            "whiteRemoteAddress",
        ),
        (
            RemotingCommand::request(request::UPDATE_GLOBAL_WHITE_ADDRS_CONFIG)
                .with_ext("globalWhiteAddrs", "10.1.*.*,300.1.1.1"),
            211,
            "globalWhiteAddrs",
        ),
        (
            RemotingCommand::request(request::UPDATE_GLOBAL_WHITE_ADDRS_CONFIG)
                .with_ext("globalWhiteAddrs", "10.1.1.*")
                .with_ext("aclFileFullPath", "/etc/passwd"),
            211,
            "not one of the broker's ACL files",
        ),
        (
            RemotingCommand::request(request::DELETE_ACL_CONFIG).with_ext("accessKey", "nobody99"),
            210,
            "no account with accessKey=nobody99",
        ),
    ];
    for (req, code, why) in bad {
        let r = c.invoke(admin(req));
        let remark = r.remark.clone().unwrap_or_default();
        assert_eq!(r.code, code, "{why}: {remark}");
        assert!(remark.contains(why), "{why}: {remark}");
        assert!(
            !remark.contains("short\"") && !remark.contains("goodsecret"),
            "{remark}"
        );
    }
    assert_eq!(std::fs::read(&file).unwrap(), original);

    // The admin creates an account; it sends at once.
    let r = c.invoke(admin(create_account("newUser1", "newsecret1")));
    assert_eq!(r.code, 0, "{:?}", r.remark);
    let new_user = |cmd| signed(cmd, "newUser1", "newsecret1");
    let r = c.invoke(new_user(send("topicN")));
    assert_eq!(r.code, 0, "{:?}", r.remark);
    assert_refused(
        &c.invoke(new_user(send("topicX"))),
        "No default permission for topic:topicX",
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("newUser1") && text.contains("topicN=PUB"),
        "{text}"
    );
    assert!(
        text.contains("rocketmq2"),
        "the other accounts stay: {text}"
    );
    assert!(
        text.contains("dataVersion") && text.contains("counter: 1"),
        "{text}"
    );

    // Version info (52) and the whole config (54).
    let r = c.invoke(admin(RemotingCommand::request(
        request::GET_BROKER_CLUSTER_ACL_INFO,
    )));
    assert_eq!(r.code, 0, "{:?}", r.remark);
    let f = |k: &str| r.ext_fields.opt_str(k).unwrap_or("").to_string();
    assert_eq!(f("clusterName"), "TestCluster");
    assert_eq!(f("brokerName"), "broker-t");
    assert!(f("brokerAddr").ends_with(&format!(":{port}")));
    let version: serde_json::Value = serde_json::from_str(&f("version")).unwrap();
    assert_eq!(version["counter"], 1);
    let all: serde_json::Value = serde_json::from_str(&f("allAclFileVersion")).unwrap();
    assert_eq!(all[file.display().to_string()]["counter"], 1, "{all}");
    let r = c.invoke(admin(RemotingCommand::request(
        request::GET_BROKER_CLUSTER_ACL_CONFIG,
    )));
    assert_eq!(r.code, 0, "{:?}", r.remark);
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["globalWhiteAddrs"][0], "10.10.103.*");
    let keys: Vec<&str> = body["plainAccessConfigs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["accessKey"].as_str())
        .collect();
    assert_eq!(keys, ["rocketmq2", "RocketMQAdmin", "newUser1"]);

    // Update: the account keeps what is not given.
    let update = RemotingCommand::request(request::UPDATE_AND_CREATE_ACL_CONFIG)
        .with_ext("accessKey", "newUser1")
        .with_ext("secretKey", "othersecret")
        .with_ext("admin", false);
    assert_eq!(c.invoke(admin(update)).code, 0);
    assert_refused(
        &c.invoke(new_user(send("topicN"))),
        "Check signature failed for accessKey=newUser1",
    );
    let r = c.invoke(signed(send("topicN"), "newUser1", "othersecret"));
    assert_eq!(r.code, 0, "{:?}", r.remark);

    // Global white list (53): 127.0.0.1 in it lets unsigned requests in.
    let white = RemotingCommand::request(request::UPDATE_GLOBAL_WHITE_ADDRS_CONFIG)
        .with_ext("globalWhiteAddrs", "10.10.103.*,127.0.0.1");
    assert_eq!(c.invoke(admin(white)).code, 0);
    assert_eq!(c.invoke(send("topicZ")).code, 0);
    let white = RemotingCommand::request(request::UPDATE_GLOBAL_WHITE_ADDRS_CONFIG)
        .with_ext("globalWhiteAddrs", "10.10.103.*");
    assert_eq!(c.invoke(admin(white)).code, 0);
    assert_refused(&c.invoke(send("topicZ")), "No accessKey is configured");
    // Naming the broker's file explicitly works too.
    let white = RemotingCommand::request(request::UPDATE_GLOBAL_WHITE_ADDRS_CONFIG)
        .with_ext("globalWhiteAddrs", "10.10.103.*,10.10.104.*")
        .with_ext("aclFileFullPath", file.display());
    assert_eq!(c.invoke(admin(white)).code, 0);
    assert!(std::fs::read_to_string(&file)
        .unwrap()
        .contains("10.10.104.*"));

    // Delete: refused at once.
    let del =
        RemotingCommand::request(request::DELETE_ACL_CONFIG).with_ext("accessKey", "newUser1");
    let r = c.invoke(admin(del));
    assert_eq!(r.code, 0, "{:?}", r.remark);
    assert_refused(
        &c.invoke(signed(send("topicN"), "newUser1", "othersecret")),
        "No acl config for newUser1",
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains("newUser1"), "{text}");
    assert!(text.contains("counter: 6"), "{text}");
    // The broker's own writes are not reloaded as changes.
    std::thread::sleep(Duration::from_millis(RELOAD_MS * 3));
    let r = c.invoke(user(send("topicA")));
    assert_eq!(r.code, 0, "{:?}", r.remark);
}

/// `ferromq-admin` with `args`, signing as the admin account.
fn admin_cli(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ferromq-admin"))
        .args(args)
        .args(["--accessKey", "RocketMQAdmin", "--secretKey", "adminsecret"])
        .env_remove("ROCKETMQ_HOME")
        .env_remove("NAMESRV_ADDR")
        .stdin(Stdio::null())
        .output()
        .expect("run ferromq-admin");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn ferromq_admin_acl_subcommands() {
    let (_d, dir) = temp_dir();
    let (_ns, ns_port) = common::start_namesrv(&dir);
    let (_b, port, file, _log) = broker(&dir, &[ns_port]);
    let addr = format!("127.0.0.1:{port}");
    let ns = format!("127.0.0.1:{ns_port}");
    let mut c = Client::connect(port);

    let (ok, out) = admin_cli(&[
        "updateAclConfig",
        "-b",
        &addr,
        "-a",
        "cliUser01",
        "-s",
        "clisecret",
        "-i",
        "DENY",
        "-t",
        "topicC=PUB,topicD=DENY",
        "-g",
        "groupC=SUB",
        "-w",
        "10.0.0.*",
    ]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!(
            "create or update plain access config to {addr} success."
        )),
        "{out}"
    );
    assert!(!out.contains("clisecret"), "{out}");
    let r = c.invoke(signed(send("topicC"), "cliUser01", "clisecret"));
    assert_eq!(r.code, 0, "{:?}", r.remark);
    assert_refused(
        &c.invoke(signed(send("topicD"), "cliUser01", "clisecret")),
        "No default permission for topic:topicD",
    );

    // Bad input: exit 1 with the broker's reason.
    let (ok, out) = admin_cli(&[
        "updateAclConfig",
        "-b",
        &addr,
        "-a",
        "cliUser02",
        "-s",
        "123",
    ]);
    assert!(
        !ok && out.contains("secretKey must be longer than 6"),
        "{out}"
    );
    let (ok, out) = admin_cli(&["updateAclConfig", "-a", "cliUser02", "-s", "1234567"]);
    assert!(!ok, "no -b or -c: {out}");

    let (ok, out) = admin_cli(&["clusterAclConfigVersion", "-b", &addr]);
    assert!(ok, "{out}");
    assert!(out.starts_with("#Cluster Name"), "{out}");
    let row = out
        .lines()
        .find(|l| l.contains(&file.display().to_string()))
        .unwrap_or_else(|| panic!("{out}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        &cells[..5],
        [
            "TestCluster",
            "broker-t",
            addr.as_str(),
            &file.display().to_string(),
            "1"
        ],
        "{row}"
    );

    let (ok, out) = admin_cli(&[
        "updateGlobalWhiteAddr",
        "-b",
        &addr,
        "-g",
        "10.9.9.*,10.8.8.8",
    ]);
    assert!(ok, "{out}");
    assert!(out.contains(&format!(
        "update global white remote addresses to {addr} success."
    )));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("10.9.9.*") && text.contains("10.8.8.8"),
        "{text}"
    );

    // -c: through the name server, once the broker registered.
    common::wait_for(Duration::from_secs(30), || {
        let (ok, out) = admin_cli(&["-n", &ns, "clusterAclConfigVersion", "-c", "TestCluster"]);
        (ok && out.contains(&addr)).then_some(())
    })
    .expect("the cluster's versions");
    let (ok, out) = admin_cli(&[
        "-n",
        &ns,
        "deleteAclConfig",
        "-c",
        "TestCluster",
        "-a",
        "cliUser01",
    ]);
    assert!(ok, "{out}");
    assert!(out.contains(&format!(
        "delete plain access config account from {addr} success."
    )));
    assert!(out.contains("account's accesskey is:cliUser01"), "{out}");
    assert_refused(
        &c.invoke(signed(send("topicC"), "cliUser01", "clisecret")),
        "No acl config for cliUser01",
    );
    let (ok, out) = admin_cli(&["clusterAclConfigVersion", "-b", &addr]);
    assert!(ok && out.contains(" 3 "), "{out}");

    // A non-admin account through the CLI: refused, the file unchanged.
    let before = std::fs::read(&file).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ferromq-admin"))
        .args([
            "updateAclConfig",
            "-b",
            &addr,
            "-a",
            "cliUser03",
            "-s",
            "clisecret",
        ])
        .args(["--accessKey", "rocketmq2", "--secretKey", "12345678"])
        .env_remove("ROCKETMQ_HOME")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Need admin permission for request code=50")
    );
    assert_eq!(std::fs::read(&file).unwrap(), before);
}

#[test]
fn a_signature_that_is_not_base64_is_a_failed_signature_check() {
    let (_d, dir) = temp_dir();
    let (_b, port, _file, _log) = broker(&dir, &[]);
    let mut c = Client::connect(port);
    for bad in ["not base64!", "====", "%%%", "\u{e9}t\u{e9}"] {
        let mut req = user(send("topicA"));
        req.ext_fields.insert(sign::SIGNATURE_FIELD, bad);
        assert_refused(
            &c.invoke(req),
            "Check signature failed for accessKey=rocketmq2",
        );
    }
    // Valid Base64 of the wrong length, and an empty one.
    for bad in ["AAAA", ""] {
        let mut req = user(send("topicA"));
        req.ext_fields.insert(sign::SIGNATURE_FIELD, bad);
        assert_refused(
            &c.invoke(req),
            "Check signature failed for accessKey=rocketmq2",
        );
    }
    assert_eq!(c.invoke(user(send("topicA"))).code, 0);
}

#[test]
fn ten_thousand_pipelined_bad_signatures_leave_others_served_and_the_log_short() {
    const N: usize = 10_000;
    let (_d, dir) = temp_dir();
    let (_b, port, _file, log) = broker(&dir, &[]);
    let mut frames = Vec::new();
    for i in 0..N {
        let mut req = signed(send("topicA"), "rocketmq2", "not-the-secret");
        req.opaque = i as i32 + 1;
        frames.extend_from_slice(&encode(&req).unwrap());
    }
    let mut bad = Client::connect(port);
    let mut writer = bad.stream.try_clone().unwrap();
    let write = std::thread::spawn(move || writer.write_all(&frames).is_ok());

    // Meanwhile another client is answered promptly, again and again.
    let mut good = Client::connect(port);
    let mut slowest = Duration::ZERO;
    let mut read = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while read < N && Instant::now() < deadline {
        let r = bad.read();
        assert_eq!(r.code, SYSTEM_ERROR);
        read += 1;
        if read % 1000 == 0 {
            let t = Instant::now();
            let r = good.invoke(user(send("topicA")));
            assert_eq!(r.code, 0, "{:?}", r.remark);
            slowest = slowest.max(t.elapsed());
        }
    }
    assert!(write.join().unwrap(), "all frames written");
    assert_eq!(read, N, "every bad request answered");
    assert!(
        slowest < Duration::from_secs(2),
        "another client waited {slowest:?}"
    );
    let lines = log_count(&log, "request refused by the ACL");
    assert!((1..=2).contains(&lines), "{lines} lines");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("not-the-secret") && !text.contains("12345678"));
}

#[test]
fn acl_admin_requests_on_a_broker_without_acl_say_so() {
    let (_d, dir) = temp_dir();
    let props = broker_props(&dir.join("store"), "aclEnable=false\n");
    let (_b, port) = common::start_broker(&dir, &props, None);
    let mut c = Client::connect(port);
    for (code, answer) in [(50, 209), (51, 210), (52, 1), (53, 211), (54, 1)] {
        let req = RemotingCommand::request(code)
            .with_ext("accessKey", "someone1")
            .with_ext("secretKey", "somesecret")
            .with_ext("globalWhiteAddrs", "*");
        let r = c.invoke(req);
        assert_eq!(r.code, answer, "code {code}: {:?}", r.remark);
        assert_eq!(
            r.remark.as_deref(),
            Some("ACL is not enabled on this broker (aclEnable=false)")
        );
    }
    assert!(!dir.join("plain_acl.yml").exists());
}
