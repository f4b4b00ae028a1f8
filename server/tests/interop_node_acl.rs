//! Issue 20, first proof, with the pure-JavaScript RocketMQ client `ali-ons`
//! (npm, 3.x) driven by `tests/clients/node_acl_client.js`: with its
//! `accessKeyId`/`accessKeySecret` options it sends and consumes against a
//! broker with `aclEnable=true`; a wrong secret, an unknown key, no
//! credentials and a SUB-only account fail to send, a DENY group consumes
//! nothing, and the broker keeps serving the good account. With the good
//! account the script also sends with 10 in flight and has a message given
//! back and redelivered through the retry topic. The scenario is
//! `common::acl_interop::run_scenario`.
//!
//! What ali-ons does on a refusal (SYSTEM_ERROR with the AclException's
//! remark):
//! - a send: `producer.send` tries 4 times in all (SYSTEM_ERROR is one of the
//!   codes it retries), swallowing each error, then rejects with
//!   "Send [4] times, still failed, ..." without the remark;
//! - `producer.close()` unregisters the client and rejects with the remark
//!   (`MQClientException: org.apache.rocketmq.acl.common.AclException: ...`)
//!   when the account itself is refused (wrong secret, unknown key, no key);
//!   for the SUB-only account the unregister (no consumer group) passes;
//! - without credentials it signs nothing, so the broker answers
//!   "No accessKey is configured";
//! - a push consumer in a DENY group, or with a wrong secret: `ready()`
//!   rejects with the remark (its
//!   first rebalance asks GET_CONSUMER_LIST_BY_GROUP), an 'error' event
//!   carries it too, nothing is pulled, and `close()` rejects with it
//!   (the unregister of the group is refused as well).
//!
//! Skips (with a message) when `node` or the package is missing; `.ci/run`
//! installs it with `npm install --prefix server/tests/clients`.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::acl_interop::{self, field, AclClient, RefusedSend};

struct AliOns;

/// How ali-ons reports a SYSTEM_ERROR answer (code 1) with an
/// AclException's remark (the script prints `name (code N): message`).
const ACL_EXCEPTION: &str =
    "MQClientException (code 1): org.apache.rocketmq.acl.common.AclException: ";

fn node_client_available() -> Result<(), String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients");
    match Command::new("node")
        .args(["-e", "require('ali-ons')"])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Err(e) => Err(format!("node not runnable: {e}")),
        Ok(s) if !s.success() => Err(
            "`require('ali-ons')` failed; install with `npm install --prefix server/tests/clients`"
                .into(),
        ),
        Ok(_) => Ok(()),
    }
}

impl AclClient for AliOns {
    fn command(&self) -> (&'static str, String) {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/clients/node_acl_client.js"
        );
        ("node", script.to_string())
    }

    fn check_refused_send(&self, case: RefusedSend, result: &str, _home: &Path) {
        let err = field(result, "first_error");
        assert!(
            err.starts_with("Error: Send [4] times, still failed") && err.contains("AclTopic"),
            "{case:?}: {result}"
        );
        let close = field(result, "close_error");
        match case {
            RefusedSend::SubOnlyAccount => assert_eq!(close, "", "{result}"),
            _ => assert_eq!(
                close,
                format!("{ACL_EXCEPTION}{}", self.broker_reason(case)),
                "{case:?}: {result}"
            ),
        }
    }

    fn check_exercise(&self, result: &str) {
        let n = acl_interop::N.to_string();
        assert_eq!(field(result, "sent_ok"), n, "{result}");
        assert_eq!(field(result, "pushed"), n, "{result}");
        assert_eq!(field(result, "via_retry_topic"), "1", "{result}");
    }

    fn check_refused_consume(&self, reason: &str, result: &str, _home: &Path) {
        let remark = format!("org.apache.rocketmq.acl.common.AclException: {reason}");
        // ready() rejects with the remark, wrapped by the push consumer; the
        // same error is emitted as an 'error' event.
        assert_eq!(
            field(result, "ready_error"),
            format!("MQClientException (code 1): MQPushConsumer occurred an error {remark}"),
            "{result}"
        );
        assert_ne!(field(result, "errors"), "0", "{result}");
        assert_eq!(
            field(result, "close_error"),
            format!("MQClientException (code 1): {remark}"),
            "{result}"
        );
    }
}

#[test]
fn ali_ons_with_credentials_is_served_and_refused_as_its_account_says() {
    if let Err(why) = node_client_available() {
        eprintln!("SKIPPED interop_node_acl: {why}");
        return;
    }
    acl_interop::run_scenario(&AliOns);
}
