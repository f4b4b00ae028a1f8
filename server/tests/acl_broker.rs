//! The broker with `aclEnable=true`: signed requests of an account pass;
//! missing, unknown or badly signed credentials, a DENY or SUB-only topic on
//! send and an admin request from a non-admin account are refused as
//! RocketMQ 4.9 refuses them (SYSTEM_ERROR, the AclException's remark) and
//! change nothing; `aclEnable=false` serves unsigned requests; a secured
//! config without a usable ACL file does not start.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{broker_command, broker_props, start_broker_env, temp_dir, Client};
use ferromq_server::remoting::{request, RemotingCommand};

const SYSTEM_ERROR: i32 = 1;
const ACL_EXCEPTION: &str = "org.apache.rocketmq.acl.common.AclException: ";

/// No white list matches 127.0.0.1: every request must be signed.
const PLAIN_ACL: &str = "\
globalWhiteRemoteAddresses:
  - 10.10.103.*
accounts:
  - accessKey: rocketmq2
    secretKey: 12345678
    whiteRemoteAddress: 192.168.0.*
    admin: false
    defaultTopicPerm: DENY
    defaultGroupPerm: DENY
    topicPerms:
      - topicA=PUB|SUB
      - topicS=SUB
      - topicD=DENY
    groupPerms:
      - groupA=SUB
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

fn create_topic(topic: &str) -> RemotingCommand {
    RemotingCommand::request(request::UPDATE_AND_CREATE_TOPIC)
        .with_ext("topic", topic)
        .with_ext("readQueueNums", 2)
        .with_ext("writeQueueNums", 2)
        .with_ext("perm", 6)
}

/// The broker's topics, read with the admin account.
fn topics(c: &mut Client) -> String {
    let r = c.invoke(admin(RemotingCommand::request(
        request::GET_ALL_TOPIC_CONFIG,
    )));
    assert_eq!(r.code, 0, "{:?}", r.remark);
    String::from_utf8_lossy(&r.body).into_owned()
}

fn max_offset(c: &mut Client, topic: &str) -> String {
    let r = c.invoke(admin(Client::offset_req(request::GET_MAX_OFFSET, topic, 0)));
    assert_eq!(r.code, 0, "{:?}", r.remark);
    r.ext_fields.opt_str("offset").unwrap_or("").to_string()
}

fn assert_refused(r: &RemotingCommand, why: &str) {
    assert_eq!(r.code, SYSTEM_ERROR, "{why}: {:?}", r.remark);
    assert_eq!(
        r.remark.as_deref(),
        Some(format!("{ACL_EXCEPTION}{why}").as_str())
    );
    let remark = r.remark.as_deref().unwrap_or("");
    assert!(!remark.contains("12345678") && !remark.contains("adminsecret"));
}

/// `PLAIN_ACL` at RocketMQ's place under `dir/home` (`conf/plain_acl.yml`),
/// and a broker with `acl_enable` started with that `ROCKETMQ_HOME`.
fn broker_with_home(dir: &Path, acl_enable: bool) -> (common::Proc, u16) {
    let home = dir.join("home");
    std::fs::create_dir_all(home.join("conf")).unwrap();
    std::fs::write(home.join("conf/plain_acl.yml"), PLAIN_ACL).unwrap();
    let props = broker_props(&dir.join("store"), &format!("aclEnable={acl_enable}\n"));
    let home_env = home.to_str().unwrap();
    start_broker_env(dir, &props, None, &[("ROCKETMQ_HOME", home_env)])
}

/// Broker properties with ACL on and `PLAIN_ACL` written to `dir/<file>`,
/// named by `aclFilePath`.
fn props_with_acl_file(dir: &Path, file: &str) -> String {
    let file = dir.join(file);
    std::fs::write(&file, PLAIN_ACL).unwrap();
    let extra = format!("aclEnable=true\naclFilePath={}\n", file.display());
    broker_props(&dir.join("store"), &extra)
}

#[test]
fn signed_requests_pass_and_refused_ones_change_nothing() {
    let (_d, dir) = temp_dir();
    let (_b, port) = broker_with_home(&dir, true);
    let mut c = Client::connect(port);

    // An account's signed send and pull.
    let r = c.invoke(user(send("topicA")));
    assert_eq!(r.code, 0, "signed send: {:?}", r.remark);
    let pull = Client::pull_req("groupA", "topicA", 0, 0, 32, 0x4, 0, "*");
    // The message reaches its queue shortly after the send is answered.
    let found = common::wait_for(Duration::from_secs(10), || {
        let r = c.invoke(user(pull.clone()));
        assert!([0, 19].contains(&r.code), "signed pull: {:?}", r.remark);
        (r.code == 0).then(|| common::records(&r.body).len())
    });
    assert_eq!(found, Some(1));

    // Credentials missing, unknown or wrongly signed.
    assert_refused(&c.invoke(send("topicA")), "No accessKey is configured");
    assert_refused(&c.invoke(pull.clone()), "No accessKey is configured");
    assert_refused(
        &c.invoke(signed(send("topicA"), "nobody-here", "12345678")),
        "No acl config for nobody-here",
    );
    assert_refused(
        &c.invoke(signed(send("topicA"), "rocketmq2", "not-the-secret")),
        "Check signature failed for accessKey=rocketmq2",
    );
    // Signed, then changed on the way: the signature no longer matches.
    let mut tampered = user(send("topicA"));
    tampered.body = b"other payload".to_vec();
    assert_refused(
        &c.invoke(tampered),
        "Check signature failed for accessKey=rocketmq2",
    );
    // A DENY topic, a SUB-only topic on send, a group not granted.
    assert_refused(
        &c.invoke(user(send("topicD"))),
        "No default permission for topic:topicD",
    );
    assert_refused(
        &c.invoke(user(send("topicS"))),
        "No default permission for topic:topicS",
    );
    // The same send dressed otherwise: short names on code 10, a batch
    // (code 320), long names on code 310 with an allowed `b` beside them.
    // Each names to the ACL the topic the handler writes to.
    let mut short_on_v1 = send("topicD");
    short_on_v1.code = request::SEND_MESSAGE;
    assert_refused(
        &c.invoke(user(short_on_v1)),
        "No default permission for topic:topicD",
    );
    let mut batch = send("topicD");
    batch.code = request::SEND_BATCH_MESSAGE;
    assert_refused(
        &c.invoke(user(batch)),
        "No default permission for topic:topicD",
    );
    let long_on_v2 = RemotingCommand::request(request::SEND_MESSAGE_V2)
        .with_ext("producerGroup", "pg")
        .with_ext("topic", "topicD")
        .with_ext("queueId", 0)
        .with_ext("b", "topicA")
        .with_body(b"payload".to_vec());
    assert_refused(
        &c.invoke(user(long_on_v2)),
        "No default permission for topic:topicD",
    );
    // A retry topic is its group's: groupB is not granted.
    assert_refused(
        &c.invoke(user(send("%RETRY%groupB"))),
        "No default permission for group:groupB",
    );
    let other_group = Client::pull_req("groupB", "topicA", 0, 0, 32, 0x4, 0, "*");
    assert_refused(
        &c.invoke(user(other_group)),
        "No default permission for group:groupB",
    );
    // A lite pull (served as a pull) is checked as one.
    let mut lite = Client::pull_req("groupA", "topicD", 0, 0, 32, 0x4, 0, "*");
    lite.code = request::LITE_PULL_MESSAGE;
    assert_refused(
        &c.invoke(user(lite)),
        "No default permission for topic:topicD",
    );
    // Admin requests from a non-admin account: topic create and delete,
    // broker config, file deletion, offset reset.
    assert_refused(
        &c.invoke(user(create_topic("madeByUser"))),
        "Need admin permission for request code=17, but accessKey=rocketmq2 is not",
    );
    let admin_only = [
        RemotingCommand::request(215).with_ext("topic", "topicA"),
        RemotingCommand::request(request::UPDATE_BROKER_CONFIG)
            .with_body(b"fileReservedTime=1\n".to_vec()),
        RemotingCommand::request(request::TRIGGER_DELETE_FILES),
        RemotingCommand::request(request::DELETE_EXPIRED_COMMITLOG),
        RemotingCommand::request(222)
            .with_ext("topic", "topicA")
            .with_ext("group", "groupA")
            .with_ext("timestamp", 0)
            .with_ext("isForce", true),
    ];
    for cmd in admin_only {
        let code = cmd.code;
        assert_refused(
            &c.invoke(user(cmd)),
            &format!(
                "Need admin permission for request code={code}, but accessKey=rocketmq2 is not"
            ),
        );
    }

    // Nothing changed: one message in topicA, no other topic created.
    assert_eq!(max_offset(&mut c, "topicA"), "1");
    let t = topics(&mut c);
    assert!(t.contains("\"topicA\""), "{t}");
    for absent in ["topicD", "topicS", "madeByUser"] {
        assert!(!t.contains(&format!("\"{absent}\"")), "{absent} in {t}");
    }
    // The same connection is still served; the admin may create topics.
    let r = c.invoke(admin(create_topic("madeByAdmin")));
    assert_eq!(r.code, 0, "{:?}", r.remark);
    assert!(topics(&mut c).contains("\"madeByAdmin\""));
    let r = c.invoke(user(send("topicA")));
    assert_eq!(r.code, 0, "{:?}", r.remark);
}

#[test]
fn the_explicit_path_key_is_used() {
    let (_d, dir) = temp_dir();
    let props = props_with_acl_file(&dir, "my_acl.yml");
    let (_b, port) = start_broker_env(&dir, &props, None, &[("ROCKETMQ_HOME", "")]);
    let mut c = Client::connect(port);
    assert_refused(&c.invoke(send("topicA")), "No accessKey is configured");
    let r = c.invoke(user(send("topicA")));
    assert_eq!(r.code, 0, "{:?}", r.remark);
}

#[test]
fn acl_disabled_serves_unsigned_requests() {
    let (_d, dir) = temp_dir();
    // A restrictive file at RocketMQ's place is not read without aclEnable.
    let (_b, port) = broker_with_home(&dir, false);
    let mut c = Client::connect(port);
    let r = c.invoke(send("topicD"));
    assert_eq!(r.code, 0, "{:?}", r.remark);
    let found = common::wait_for(Duration::from_secs(10), || {
        let r = c.pull("anyGroup", "topicD", 0, 0, 32);
        assert!([0, 19].contains(&r.code), "unsigned pull: {:?}", r.remark);
        (r.code == 0).then(|| common::records(&r.body).len())
    });
    assert_eq!(found, Some(1));
    let r = c.invoke(create_topic("openTopic"));
    assert_eq!(r.code, 0, "{:?}", r.remark);
}

/// Start the broker expecting it to exit; returns its exit code and stderr.
fn failed_start(dir: &Path, props: &str, home: Option<&Path>) -> (Option<i32>, String) {
    let mut cmd: Command = broker_command(env!("CARGO_BIN_EXE_ferromq-broker"), dir, props);
    match home {
        Some(h) => cmd.env("ROCKETMQ_HOME", h),
        None => cmd.env_remove("ROCKETMQ_HOME"),
    };
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .env("RUST_LOG", "warn");
    let mut child = cmd.spawn().expect("spawn broker");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the broker did not exit within 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    (status.code(), err)
}

#[test]
fn a_secured_config_without_a_usable_acl_file_does_not_start() {
    let (_d, dir) = temp_dir();
    let store = dir.join("store");
    // ROCKETMQ_HOME with no file.
    let home = dir.join("home");
    std::fs::create_dir_all(home.join("conf")).unwrap();
    let props = broker_props(&store, "aclEnable=true\n");
    let (code, err) = failed_start(&dir.join("b1"), &props, Some(&home));
    assert_eq!(code, Some(1), "{err}");
    let file = home.join("conf/plain_acl.yml");
    assert!(
        err.contains(&format!("{} does not exist", file.display())),
        "{err}"
    );
    // Malformed YAML: the file and the parser's position.
    std::fs::write(&file, "accounts:\n  - accessKey: [unclosed\n").unwrap();
    let (code, err) = failed_start(&dir.join("b2"), &props, Some(&home));
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("{}: malformed ACL YAML", file.display())),
        "{err}"
    );
    assert!(err.contains("line"), "{err}");
    // A bad account: named by its access key, its secret never printed.
    std::fs::write(
        &file,
        "accounts:\n  - accessKey: someone\n    secretKey: short\n",
    )
    .unwrap();
    let (code, err) = failed_start(&dir.join("b3"), &props, Some(&home));
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("someone") && err.contains("secretKey"),
        "{err}"
    );
    assert!(
        !err.contains("short\n") && !err.contains(": short"),
        "{err}"
    );
    // No home and no aclFilePath.
    let (code, err) = failed_start(&dir.join("b4"), &props, None);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("ROCKETMQ_HOME") && err.contains("aclFilePath"),
        "{err}"
    );
    // aclFilePath naming nothing.
    let missing = dir.join("nowhere/acl.yml");
    let extra = format!("aclEnable=true\naclFilePath={}\n", missing.display());
    let props = broker_props(&store, &extra);
    let (code, err) = failed_start(&dir.join("b5"), &props, Some(&home));
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "{} (aclFilePath) does not exist",
            missing.display()
        )),
        "{err}"
    );
    // Nothing was served: the store was never opened.
    assert!(!store.join("commitlog").exists());
}

#[test]
fn many_refusals_log_a_bounded_number_of_lines_and_others_are_served() {
    let (_d, dir) = temp_dir();
    let props = props_with_acl_file(&dir, "acl.yml");
    let log = dir.join("broker.log");
    let (_b, port) = common::start_broker_logged_at(&dir, &props, &log, "warn");
    let mut bad = Client::connect(port);
    for _ in 0..2_000 {
        let r = bad.invoke(signed(send("topicA"), "rocketmq2", "not-the-secret"));
        assert_eq!(r.code, SYSTEM_ERROR);
    }
    let mut good = Client::connect(port);
    let r = good.invoke(user(send("topicA")));
    assert_eq!(r.code, 0, "{:?}", r.remark);
    let text = std::fs::read_to_string(&log).unwrap();
    let lines = text.matches("request refused by the ACL").count();
    assert_eq!(lines, 1, "{text}");
    assert!(!text.contains("not-the-secret") && !text.contains("12345678"));
}

/// `ferromq-admin` with `args`, `ROCKETMQ_HOME` set to `home` (empty: none).
fn admin_cli(args: &[&str], home: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ferromq-admin"))
        .args(args)
        .env("ROCKETMQ_HOME", home)
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
fn ferromq_admin_signs_with_its_flags_or_tools_yml() {
    let (_d, dir) = temp_dir();
    let props = props_with_acl_file(&dir, "my_acl.yml");
    let (_b, port) = start_broker_env(&dir, &props, None, &[("ROCKETMQ_HOME", "")]);
    let addr = format!("127.0.0.1:{port}");
    let no_home = Path::new("");
    let create =
        |topic: &'static str| ["updateTopic", "-b", &addr, "-t", topic].map(str::to_string);
    let run = |args: &[String], extra: &[&str], home: &Path| {
        let mut v: Vec<&str> = args.iter().map(String::as_str).collect();
        v.extend_from_slice(extra);
        admin_cli(&v, home)
    };

    // Unsigned: refused, the remark says why, nothing created.
    let (ok, text) = run(&create("ByNobody"), &[], no_home);
    assert!(!ok && text.contains("No accessKey is configured"), "{text}");
    // A non-admin account: refused.
    let user_keys = ["--accessKey", "rocketmq2", "--secretKey", "12345678"];
    let (ok, text) = run(&create("ByUser"), &user_keys, no_home);
    assert!(!ok && text.contains("Need admin permission"), "{text}");
    // The admin account by flags, then by $ROCKETMQ_HOME/conf/tools.yml.
    let admin_keys = ["--accessKey", "RocketMQAdmin", "--secretKey", "adminsecret"];
    let (ok, text) = run(&create("ByFlags"), &admin_keys, no_home);
    assert!(ok, "{text}");
    let home = dir.join("home");
    std::fs::create_dir_all(home.join("conf")).unwrap();
    std::fs::write(
        home.join("conf/tools.yml"),
        "accessKey: RocketMQAdmin\nsecretKey: adminsecret\n",
    )
    .unwrap();
    let (ok, text) = run(&create("ByToolsYml"), &[], &home);
    assert!(ok, "{text}");
    // Flags win over the file; a wrong secret is refused.
    let wrong = ["--accessKey", "RocketMQAdmin", "--secretKey", "wrong-one"];
    let (ok, text) = run(&create("ByWrong"), &wrong, &home);
    assert!(!ok && text.contains("Check signature failed"), "{text}");
    assert!(!text.contains("wrong-one") && !text.contains("adminsecret"));
    // One flag without the other is a usage error.
    let (ok, _) = run(&create("Half"), &["--accessKey", "RocketMQAdmin"], no_home);
    assert!(!ok);

    let mut c = Client::connect(port);
    let t = topics(&mut c);
    for made in ["ByFlags", "ByToolsYml"] {
        assert!(t.contains(&format!("\"{made}\"")), "{made} in {t}");
    }
    for absent in ["ByNobody", "ByUser", "ByWrong", "Half"] {
        assert!(!t.contains(&format!("\"{absent}\"")), "{absent} in {t}");
    }
}
