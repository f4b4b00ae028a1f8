//! Real RocketMQ clients with ACL credentials against a broker with
//! `aclEnable=true` (issue 20, first proof): the scenario both
//! `interop_python_acl` (Apache's C++ client) and `interop_node_acl`
//! (ali-ons) run, each with its own client script that takes the same
//! arguments:
//!
//! ```text
//! SCRIPT produce NAMESRV TOPIC ACCESS_KEY SECRET_KEY PREFIX N
//! SCRIPT consume NAMESRV TOPIC GROUP ACCESS_KEY SECRET_KEY PREFIX N SECONDS
//! SCRIPT exercise NAMESRV TOPIC ACCESS_KEY SECRET_KEY PREFIX N
//! ```
//!
//! (`-` as the access key: no credentials) and prints one `RESULT` line;
//! `exercise` runs the client's other request types with one account.
//! What a client shows on a refusal differs per client: [`AclClient`] checks
//! that part; the broker side (nothing stored, no offset committed, the
//! refusal's reason in the broker log) is checked here for both.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use ferromq_server::acl::Credentials;
use ferromq_server::remoting::{request, response, RemotingCommand};

use super::{broker_command, broker_props, spawn_to, start_namesrv, temp_dir, Client, Proc};

pub const TOPIC: &str = "AclTopic";
pub const QUEUES: i32 = 4;
/// Messages per good round.
pub const N: usize = 50;
/// Messages each refused producer tries to send.
pub const REFUSED_N: usize = 3;
/// How long a consumer that should get nothing is given.
pub const REFUSED_CONSUME_SECONDS: u32 = 8;
pub const CONSUME_SECONDS: u32 = 90;
pub const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);

pub const GOOD: (&str, &str) = ("goodUser", "goodSecret1");
pub const SUB_ONLY: (&str, &str) = ("subOnly", "subSecret12");
pub const DENY: (&str, &str) = ("denyUser", "denySecret1");
const INSPECTOR: (&str, &str) = ("inspector", "inspectorSecret");

/// No white list matches 127.0.0.1: every request must be signed.
/// - goodUser may PUB and SUB the topic, its groups are allowed;
/// - subOnly may only SUB the topic (and consume in subGroup);
/// - denyUser may PUB and SUB the topic, but its group denyGroup is DENY;
/// - inspector is an admin: the test creates the topic and reads offsets with it.
pub const PLAIN_ACL: &str = "\
accounts:
  - accessKey: goodUser
    secretKey: goodSecret1
    admin: false
    defaultTopicPerm: DENY
    defaultGroupPerm: DENY
    topicPerms:
      - AclTopic=PUB|SUB
    groupPerms:
      - goodGroup=SUB
      - goodPullGroup=SUB
      - goodRetryGroup=SUB
      - goodOrderlyGroup=SUB
  - accessKey: subOnly
    secretKey: subSecret12
    defaultTopicPerm: DENY
    defaultGroupPerm: DENY
    topicPerms:
      - AclTopic=SUB
    groupPerms:
      - subGroup=SUB
  - accessKey: denyUser
    secretKey: denySecret1
    defaultTopicPerm: DENY
    defaultGroupPerm: DENY
    topicPerms:
      - AclTopic=PUB|SUB
    groupPerms:
      - denyGroup=DENY
  - accessKey: inspector
    secretKey: inspectorSecret
    admin: true
";

/// One refused send case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusedSend {
    WrongSecret,
    UnknownKey,
    NoCredentials,
    SubOnlyAccount,
}

impl RefusedSend {
    pub const ALL: [RefusedSend; 4] = [
        RefusedSend::WrongSecret,
        RefusedSend::UnknownKey,
        RefusedSend::NoCredentials,
        RefusedSend::SubOnlyAccount,
    ];

    pub fn label(self) -> &'static str {
        match self {
            RefusedSend::WrongSecret => "wrong-secret",
            RefusedSend::UnknownKey => "unknown-key",
            RefusedSend::NoCredentials => "no-credentials",
            RefusedSend::SubOnlyAccount => "sub-only",
        }
    }

    fn keys(self) -> (&'static str, &'static str) {
        match self {
            RefusedSend::WrongSecret => (GOOD.0, "notTheSecret"),
            RefusedSend::UnknownKey => ("nobodyHere", "whateverSecret"),
            RefusedSend::NoCredentials => ("-", "-"),
            RefusedSend::SubOnlyAccount => SUB_ONLY,
        }
    }
}

/// What one client shows: the client-side half of the assertions.
pub trait AclClient {
    /// `program` and script path, e.g. `("python3", ".../python_acl_client.py")`.
    fn command(&self) -> (&'static str, String);
    /// The refusal reason the broker gives this client for `case` (the
    /// AclException's description). Differs for no credentials: the C++
    /// client always signs, with an empty access key when none was set.
    fn broker_reason(&self, case: RefusedSend) -> String {
        match case {
            RefusedSend::WrongSecret => format!("Check signature failed for accessKey={}", GOOD.0),
            RefusedSend::UnknownKey => "No acl config for nobodyHere".into(),
            RefusedSend::NoCredentials => "No accessKey is configured".into(),
            RefusedSend::SubOnlyAccount => format!("No default permission for topic:{TOPIC}"),
        }
    }
    /// Assert what the client showed for a refused send: its RESULT line,
    /// and `home` (its `$HOME`, where a client may have logged).
    fn check_refused_send(&self, case: RefusedSend, result: &str, home: &Path);
    /// Assert what the client showed as a push consumer whose requests are
    /// refused for `reason` (a DENY group, a wrong secret).
    fn check_refused_consume(&self, reason: &str, result: &str, home: &Path);
    /// Refusals the broker logs while this client uses the good account
    /// (RocketMQ would refuse them too), e.g. the C++ producer's unregister,
    /// which names an empty consumer group.
    fn good_account_refusals(&self) -> &'static [&'static str] {
        &[]
    }
    /// Assert the RESULT line of the script's `exercise` mode (the good
    /// account's other requests); its `sent_ok=` says how many messages it
    /// stored in [`TOPIC`].
    fn check_exercise(&self, result: &str);
}

/// The reasons of the broker log's "request refused by the ACL" lines, in
/// order (each is logged once per client address and reason per minute).
pub fn refusal_reasons(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("request refused by the ACL"))
        .filter_map(|l| {
            let start = l.find("reason=\"")? + "reason=\"".len();
            let end = start + l[start..].find("\" ")?;
            Some(l[start..end].to_string())
        })
        .collect()
}

/// A name server and a broker with `aclEnable=true` and [`PLAIN_ACL`]; the
/// broker's log (WARN) goes to a file, and [`TOPIC`] exists with [`QUEUES`]
/// queues and is routed by the name server.
pub struct AclCluster {
    _tmp: tempfile::TempDir,
    pub dir: PathBuf,
    _ns: Proc,
    pub ns_port: u16,
    _broker: Proc,
    pub broker_port: u16,
    pub log: PathBuf,
}

/// `cmd` signed by the admin account.
fn admin(mut cmd: RemotingCommand) -> RemotingCommand {
    Credentials::new(INSPECTOR.0, INSPECTOR.1)
        .unwrap()
        .sign(&mut cmd);
    cmd
}

impl AclCluster {
    pub fn start() -> AclCluster {
        let (tmp, dir) = temp_dir();
        let (ns, ns_port) = start_namesrv(&dir);
        let acl = dir.join("plain_acl.yml");
        std::fs::write(&acl, PLAIN_ACL).unwrap();
        // Short delay levels: a message given back comes again within 1 s;
        // an undecided transaction is checked back after 2 s.
        let extra = format!(
            "aclEnable=true\naclFilePath={}\nmessageDelayLevel=1s 1s 1s 2s 2s 2s\n\
             transactionCheckInterval=1000\ntransactionTimeOut=2000\n",
            acl.display()
        );
        let props = broker_props(&dir.join("store"), &extra);
        let mut cmd = broker_command(env!("CARGO_BIN_EXE_ferromq-broker"), &dir, &props);
        cmd.arg("-n").arg(format!("127.0.0.1:{ns_port}"));
        let log = dir.join("broker.log");
        let f = std::fs::File::create(&log).unwrap();
        let mut broker = spawn_to("broker", cmd, Stdio::from(f), "warn");
        let line = broker.wait_line("listening on", Duration::from_secs(30));
        let broker_port = super::port_of(&line);

        // ali-ons never creates a topic: the admin account creates it, as
        // mqadmin updateTopic would, so that both clients find the same
        // 4 queues. Then wait (bounded) for the route.
        let mut b = Client::connect(broker_port);
        let r = b.invoke(admin(
            RemotingCommand::request(request::UPDATE_AND_CREATE_TOPIC)
                .with_ext("topic", TOPIC)
                .with_ext("readQueueNums", QUEUES)
                .with_ext("writeQueueNums", QUEUES)
                .with_ext("perm", 6),
        ));
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
        let mut nsc = Client::connect(ns_port);
        super::wait_for(Duration::from_secs(30), || {
            let r = nsc.invoke(
                RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC).with_ext("topic", TOPIC),
            );
            (r.code == response::SUCCESS).then_some(())
        })
        .expect("route within 30 s");
        AclCluster {
            _tmp: tmp,
            dir,
            _ns: ns,
            ns_port,
            _broker: broker,
            broker_port,
            log,
        }
    }

    /// Messages stored in [`TOPIC`]: the sum of its queues' max offsets
    /// (asked with the admin account).
    pub fn stored(&self) -> i64 {
        let mut c = Client::connect(self.broker_port);
        (0..QUEUES)
            .map(|q| {
                let r = c.invoke(admin(Client::offset_req(request::GET_MAX_OFFSET, TOPIC, q)));
                assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
                r.ext_fields.get_i64("offset").unwrap()
            })
            .sum()
    }

    /// [`AclCluster::stored`] once it equals `want`, or its value after 10 s:
    /// a consume queue's max offset follows the acknowledged put within
    /// milliseconds (the dispatch is asynchronous), not at once.
    pub fn stored_when(&self, want: i64) -> i64 {
        super::wait_for(Duration::from_secs(10), || {
            let s = self.stored();
            (s == want).then_some(s)
        })
        .unwrap_or_else(|| self.stored())
    }

    /// The committed offsets of `group` on [`TOPIC`], per queue (`None`:
    /// QUERY_NOT_FOUND, never committed).
    pub fn committed(&self, group: &str) -> Vec<Option<i64>> {
        let mut c = Client::connect(self.broker_port);
        (0..QUEUES)
            .map(|q| {
                let r = c.invoke(admin(
                    RemotingCommand::request(request::QUERY_CONSUMER_OFFSET)
                        .with_ext("consumerGroup", group)
                        .with_ext("topic", TOPIC)
                        .with_ext("queueId", q),
                ));
                match r.code {
                    response::SUCCESS => Some(r.ext_fields.get_i64("offset").unwrap()),
                    response::QUERY_NOT_FOUND => None,
                    other => panic!("QUERY_CONSUMER_OFFSET {group} {q}: {other} {:?}", r.remark),
                }
            })
            .collect()
    }

    /// Run the client script with `args` and `$HOME` = `dir/home-<label>`;
    /// returns its RESULT line and that home.
    pub fn run(&self, client: &dyn AclClient, label: &str, args: &[String]) -> (String, PathBuf) {
        let (program, script) = client.command();
        let home = self.dir.join(format!("home-{label}"));
        let lines = super::run_client_script(program, &script, args, &home, SCRIPT_TIMEOUT);
        let result = super::result_line(&lines, &[]);
        eprintln!("{label}: {result}");
        (result, home)
    }

    pub fn produce(
        &self,
        client: &dyn AclClient,
        label: &str,
        keys: (&str, &str),
        prefix: &str,
        n: usize,
    ) -> (String, PathBuf) {
        let args = [
            "produce".to_string(),
            format!("127.0.0.1:{}", self.ns_port),
            TOPIC.into(),
            keys.0.into(),
            keys.1.into(),
            prefix.into(),
            n.to_string(),
        ];
        self.run(client, label, &args)
    }

    #[allow(clippy::too_many_arguments)]
    pub fn consume(
        &self,
        client: &dyn AclClient,
        label: &str,
        group: &str,
        keys: (&str, &str),
        prefix: &str,
        n: usize,
        seconds: u32,
    ) -> (String, PathBuf) {
        let args = [
            "consume".to_string(),
            format!("127.0.0.1:{}", self.ns_port),
            TOPIC.into(),
            group.into(),
            keys.0.into(),
            keys.1.into(),
            prefix.into(),
            n.to_string(),
            seconds.to_string(),
        ];
        self.run(client, label, &args)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// The keys the client scripts print in their RESULT lines.
const RESULT_KEYS: [&str; 18] = [
    "txn_checked",
    "client_retries",
    "batched",
    "pulled",
    "pushed",
    "via_retry_topic",
    "orderly",
    "retried",
    "mode",
    "sent_ok",
    "failed",
    "first_error",
    "close_error",
    "received",
    "others",
    "errors",
    "ready_error",
    "start_error",
];

/// The value of `key=` in a RESULT line: up to the next ` <key>=` of
/// [`RESULT_KEYS`], or the end (error texts hold spaces and `=`).
pub fn field<'a>(result: &'a str, key: &str) -> &'a str {
    let start = result
        .find(&format!(" {key}="))
        .unwrap_or_else(|| panic!("no {key}= in {result}"))
        + key.len()
        + 2;
    let rest = &result[start..];
    let end = RESULT_KEYS
        .iter()
        .filter_map(|k| rest.find(&format!(" {k}=")))
        .min()
        .unwrap_or(rest.len());
    &rest[..end]
}

/// Every log file a client wrote under `home`, concatenated.
pub fn client_logs(home: &Path) -> String {
    let mut out = String::new();
    let mut stack = vec![home.join("logs")];
    let mut budget = 64usize;
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if budget > 0 {
                budget -= 1;
                out.push_str(&String::from_utf8_lossy(
                    &std::fs::read(&p).unwrap_or_default(),
                ));
            }
        }
    }
    out
}

/// The whole scenario for one client:
/// 1. the good account sends [`N`] messages and consumes all of them;
/// 2. wrong secret, unknown key, no credentials and the SUB-only account
///    each fail to send ([`REFUSED_N`] tries each): the client sees the
///    failure ([`AclClient::check_refused_send`]), nothing is stored and the
///    broker logs the refusal's reason;
/// 3. the SUB-only account consumes everything in its own group (it may
///    SUB), and the DENY-group account gets nothing in its group, which
///    never gets a committed offset nor a group config; nor does a consumer
///    of the good group with a wrong secret;
/// 4. the good account still sends and consumes another [`N`].
pub fn run_scenario(client: &dyn AclClient) {
    let cluster = AclCluster::start();
    let c = &cluster;

    let (r, _) = c.produce(client, "good-produce-1", GOOD, "good1", N);
    assert_eq!(field(&r, "sent_ok"), N.to_string(), "{r}");
    assert_eq!(field(&r, "failed"), "0", "{r}");
    assert_eq!(c.stored_when(N as i64), N as i64);
    let (r, _) = c.consume(
        client,
        "good-consume-1",
        "goodGroup",
        GOOD,
        "good1",
        N,
        CONSUME_SECONDS,
    );
    assert_eq!(field(&r, "received"), N.to_string(), "{r}");
    // More of the client's requests with the good account: what each client
    // does here (batches, pulls, retries, locks) is its own.
    let args = [
        "exercise".to_string(),
        format!("127.0.0.1:{}", c.ns_port),
        TOPIC.into(),
        GOOD.0.into(),
        GOOD.1.into(),
        "good-ex".into(),
        N.to_string(),
    ];
    let (r, _) = c.run(client, "good-exercise", &args);
    client.check_exercise(&r);
    let stored_after_good = N as i64 + field(&r, "sent_ok").parse::<i64>().unwrap();
    // A commit after a check-back is a oneway request: wait (bounded).
    assert_eq!(c.stored_when(stored_after_good), stored_after_good);
    // Nothing the good account did was refused (beyond what RocketMQ
    // refuses too).
    for reason in refusal_reasons(&c.log_text()) {
        assert!(
            client.good_account_refusals().contains(&reason.as_str()),
            "the good account was refused: {reason:?}"
        );
    }

    for case in RefusedSend::ALL {
        let label = format!("refused-{}", case.label());
        let (r, home) = c.produce(client, &label, case.keys(), &label, REFUSED_N);
        assert_eq!(field(&r, "sent_ok"), "0", "{label}: {r}");
        assert_eq!(field(&r, "failed"), REFUSED_N.to_string(), "{label}: {r}");
        client.check_refused_send(case, &r, &home);
        assert_eq!(
            c.stored_when(stored_after_good),
            stored_after_good,
            "{label} stored something"
        );
        let reason = client.broker_reason(case);
        let log = c.log_text();
        assert!(
            log.contains(&format!("reason={reason:?}")),
            "{label}: the broker log does not name {reason:?}:\n{log}"
        );
    }

    // SUB-only may consume (in its allowed group): the consumer works.
    let (r, _) = c.consume(
        client,
        "sub-only-consume",
        "subGroup",
        SUB_ONLY,
        "good1",
        N,
        CONSUME_SECONDS,
    );
    assert_eq!(field(&r, "received"), N.to_string(), "{r}");
    // The DENY group gets nothing, and commits nothing; nor does a consumer
    // of the good group with a wrong secret.
    let refused_consumers = [
        (
            "deny-group-consume",
            "denyGroup",
            DENY,
            "No default permission for group:denyGroup".to_string(),
        ),
        (
            "wrong-secret-consume",
            "goodGroup",
            (GOOD.0, "notTheSecret"),
            format!("Check signature failed for accessKey={}", GOOD.0),
        ),
    ];
    for (label, group, keys, reason) in refused_consumers {
        let (r, home) = c.consume(
            client,
            label,
            group,
            keys,
            "good1",
            N,
            REFUSED_CONSUME_SECONDS,
        );
        assert_eq!(field(&r, "received"), "0", "{label}: {r}");
        assert_eq!(field(&r, "others"), "0", "{label}: {r}");
        client.check_refused_consume(&reason, &r, &home);
        // (Logged once per address and reason a minute: the wrong secret's
        // line may be the one its sends caused.)
        assert!(
            c.log_text().contains(&format!("reason={reason:?}")),
            "{label}: the broker log does not name {reason:?}"
        );
    }

    // The broker still serves the good account.
    let (r, _) = c.produce(client, "good-produce-2", GOOD, "good2", N);
    assert_eq!(field(&r, "sent_ok"), N.to_string(), "{r}");
    let want = stored_after_good + N as i64;
    assert_eq!(c.stored_when(want), want);
    let (r, _) = c.consume(
        client,
        "good-consume-2",
        "goodGroup",
        GOOD,
        "good2",
        N,
        CONSUME_SECONDS,
    );
    assert_eq!(field(&r, "received"), N.to_string(), "{r}");
    // The good group committed its progress (at least the first round).
    let committed: i64 = c.committed("goodGroup").into_iter().flatten().sum();
    assert!(committed >= N as i64, "goodGroup committed {committed}");

    // The refused group left no trace: no committed offset and no group
    // config, where the allowed groups have both. (QUERY_CONSUMER_OFFSET
    // cannot tell: it answers 0 for a group that never committed while the
    // queue still starts at 0, as RocketMQ does.) The broker flushes offsets
    // every second (`flushConsumerOffsetInterval=1000`).
    let config = c.dir.join("store/config");
    let offsets = super::wait_for(Duration::from_secs(15), || {
        let text = std::fs::read_to_string(config.join("consumerOffset.json")).ok()?;
        (text.contains("goodGroup") && text.contains("subGroup")).then_some(text)
    })
    .expect("goodGroup and subGroup offsets flushed within 15 s");
    assert!(!offsets.contains("denyGroup"), "{offsets}");
    let groups = std::fs::read_to_string(config.join("subscriptionGroup.json")).unwrap();
    assert!(groups.contains("\"goodGroup\""), "{groups}");
    assert!(!groups.contains("denyGroup"), "{groups}");
    eprintln!(
        "refusals the broker logged: {:?}",
        refusal_reasons(&c.log_text())
    );
}
