//! Issue 20, first proof, with Apache's C++ RocketMQ client (PyPI
//! `rocketmq-client-python==0.5.0rc2`, which bundles `librocketmq.so`
//! 2.1.x) driven by `tests/clients/python_acl_client.py`: with credentials
//! set by `set_session_credentials(access_key, secret_key, "ALIYUN")` it
//! sends and consumes against a broker with `aclEnable=true`; a wrong
//! secret, an unknown key, no credentials and a SUB-only account fail to
//! send, a DENY group consumes nothing, and the broker keeps serving the
//! good account. With the good account the script also sends batches, pulls
//! with the C API's pull consumer, has a message given back and redelivered
//! through the retry topic, consumes orderly (broker locks) and sends in
//! transactions (commit, rollback, and a commit answered to the broker's
//! check-back): every request type the client signs passes. The scenario is
//! `common::acl_interop::run_scenario`.
//!
//! What the C++ client does on a refusal (SYSTEM_ERROR with the
//! AclException's remark):
//! - a send: it logs `processSendResponse error remark:<remark>`, tries again
//!   (3 attempts in all, `retryTimes` 2), then `send_sync` raises
//!   `ProducerSendSyncFailed` with the generic text "No route info of this
//!   topic" (the remark is only in its log, `$HOME/logs/rocketmq-cpp`);
//! - without credentials it still signs, with an empty access key
//!   (`MQClientAPIImpl::callSignatureBeforeRequest` runs for every request),
//!   so the broker answers "No acl config for " as RocketMQ's
//!   PlainPermissionManager does, not "No accessKey is configured";
//! - a push consumer in a DENY group, or with a wrong secret: `start()`
//!   succeeds, the heartbeat gets "error response:1", GET_CONSUMER_LIST_BY_GROUP
//!   raises the remark in its log, the rebalance finds no consumer ids and
//!   nothing is ever pulled.
//!
//! Skips (with a message) when `python3` or the package is missing.

mod common;

use std::path::Path;

use common::acl_interop::{self, client_logs, field, AclClient, RefusedSend};

struct CppClient;

const ACL_EXCEPTION: &str = "org.apache.rocketmq.acl.common.AclException: ";

impl AclClient for CppClient {
    fn command(&self) -> (&'static str, String) {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/clients/python_acl_client.py"
        );
        ("python3", script.to_string())
    }

    fn broker_reason(&self, case: RefusedSend) -> String {
        match case {
            // The C++ client signs with an empty access key.
            RefusedSend::NoCredentials => "No acl config for ".into(),
            RefusedSend::WrongSecret => "Check signature failed for accessKey=goodUser".into(),
            RefusedSend::UnknownKey => "No acl config for nobodyHere".into(),
            RefusedSend::SubOnlyAccount => {
                format!("No default permission for topic:{}", acl_interop::TOPIC)
            }
        }
    }

    fn check_refused_send(&self, case: RefusedSend, result: &str, home: &Path) {
        let err = field(result, "first_error");
        assert!(
            err.starts_with("ProducerSendSyncFailed: No route info of this topic: AclTopic"),
            "{case:?}: {result}"
        );
        // The broker's remark reaches the client: it logs it for each try.
        let logs = client_logs(home);
        let want = format!(
            "processSendResponse error remark:{ACL_EXCEPTION}{}, error code:1",
            self.broker_reason(case)
        );
        // One line per try (3 per send); at least one, in case a try failed
        // in the client before it was sent (see python_acl_client.py).
        let tries = logs.matches(&want).count();
        assert!(tries >= 1, "{case:?}: no log line with {want:?}");
        eprintln!("{case:?}: the C++ client logged the remark {tries} times");
        assert!(logs.contains("send failed of times:"), "{case:?}");
    }

    fn good_account_refusals(&self) -> &'static [&'static str] {
        // The producer's unregister at shutdown names consumerGroup "" (the
        // C++ UnregisterClientRequestHeader always sends it), which RocketMQ
        // 4.9 checks as the group "" (getRetryTopic("") = "%RETRY%") and
        // refuses under defaultGroupPerm DENY too; the client logs a warning.
        &["No default permission for group:"]
    }

    fn check_exercise(&self, result: &str) {
        let n = acl_interop::N.to_string();
        for key in ["batched", "pulled", "pushed", "orderly"] {
            assert_eq!(field(result, key), n, "{key}: {result}");
        }
        assert_eq!(field(result, "via_retry_topic"), "1", "{result}");
        // The batches and two committed transactions (one on check-back).
        assert_eq!(
            field(result, "sent_ok"),
            (acl_interop::N + 2).to_string(),
            "{result}"
        );
        assert_eq!(field(result, "txn_checked"), "1", "{result}");
    }

    fn check_refused_consume(&self, reason: &str, result: &str, home: &Path) {
        assert_eq!(field(result, "start_error"), "", "{result}");
        let logs = client_logs(home);
        assert!(
            logs.contains("get error response:1 of heartbeat"),
            "the refused heartbeat is not in the client log"
        );
        // GET_CONSUMER_LIST_BY_GROUP fails with the remark: no rebalance.
        assert!(
            logs.contains(&format!("{ACL_EXCEPTION}{reason},error:1")),
            "{reason:?} not in the client log"
        );
        assert!(logs.contains("doRebalance the cidAll is empty"));
    }
}

#[test]
fn cpp_client_with_credentials_is_served_and_refused_as_its_account_says() {
    if let Err(why) = common::python_rocketmq_available("import rocketmq.client") {
        eprintln!("SKIPPED interop_python_acl: {why}");
        return;
    }
    acl_interop::run_scenario(&CppClient);
}
