//! The access decision of RocketMQ 4.9's `PlainPermissionManager.validate`.

use std::collections::HashMap;
use std::net::IpAddr;

use super::address::AddressPattern;
use super::config::{Account, AclConfig};
use super::perm::{needs_admin, Perm};
use super::sign;
use crate::broker::send_back::RETRY_GROUP_TOPIC_PREFIX;

/// `TopicValidator.RMQ_SYS_TRACE_TOPIC`: a request needing exactly `PUB` on
/// it skips the admin and resource checks (message trace).
pub const TRACE_TOPIC: &str = "RMQ_SYS_TRACE_TOPIC";

/// What one request asks for, as `PlainAccessValidator.parse` extracts it.
#[derive(Debug, Clone, Copy)]
pub struct AccessRequest<'a> {
    /// The peer's address without port; `None` if unknown.
    pub remote_ip: Option<IpAddr>,
    /// The request code.
    pub request_code: i32,
    /// `extFields["AccessKey"]`, if any.
    pub access_key: Option<&'a str>,
    /// `extFields["Signature"]`, if any.
    pub signature: Option<&'a str>,
    /// The signed content ([`sign::validator_request_content`]), or its
    /// field values alone when `body` is given apart.
    pub content: &'a [u8],
    /// The rest of the signed content, after `content`: the request body,
    /// borrowed in place (empty when `content` holds it already).
    pub body: &'a [u8],
    /// The resources used and the permission each needs: topics by name,
    /// groups as their retry topic (`%RETRY%group`). A name given twice
    /// counts with its last permission, as RocketMQ's map keeps it.
    pub resources: &'a [(String, Perm)],
}

/// Why a request is refused. `Display` gives RocketMQ's exception message
/// (which never contains a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclDenied {
    /// The request has no `AccessKey` and the peer is not globally white
    /// listed.
    #[error("No accessKey is configured")]
    NoAccessKey,
    /// No account has this access key.
    #[error("No acl config for {0}")]
    UnknownAccessKey(String),
    /// The signature is missing or wrong.
    #[error("Check signature failed for accessKey={0}")]
    SignatureMismatch(String),
    /// An admin request from a non-admin account.
    #[error(
        "Need admin permission for request code={request_code}, but accessKey={access_key} is not"
    )]
    NeedAdmin {
        /// The request code.
        request_code: i32,
        /// The account's access key.
        access_key: String,
    },
    /// The account lacks the permission on a resource. `resource` is
    /// `topic:NAME` or `group:NAME`, as RocketMQ's `printStr`.
    #[error("No default permission for {resource}")]
    NoPermission {
        /// `topic:NAME` or `group:NAME`.
        resource: String,
    },
}

impl AclDenied {
    /// The response remark RocketMQ 4.9's broker sends for this refusal: the
    /// exception's `toString()` (`RemotingHelper.exceptionSimpleDesc` then
    /// appends `, ` and the top stack frame, which ferromq has no use for
    /// and leaves out). 4.9 answers with response code `SYSTEM_ERROR` (1).
    pub fn remark(&self) -> String {
        format!("org.apache.rocketmq.acl.common.AclException: {self}")
    }
}

/// The rules of a loaded [`AclConfig`], ready to check requests.
#[derive(Debug, Clone)]
pub struct AclRules {
    global_white: Vec<AddressPattern>,
    accounts: HashMap<String, Account>,
}

impl From<AclConfig> for AclRules {
    fn from(config: AclConfig) -> Self {
        AclRules::new(config)
    }
}

impl AclRules {
    /// The rules of `config`.
    pub fn new(config: AclConfig) -> Self {
        AclRules {
            global_white: config.global_white_remote_addresses,
            accounts: config.accounts,
        }
    }

    /// The account of `access_key`, if any.
    pub fn account(&self, access_key: &str) -> Option<&Account> {
        self.accounts.get(access_key)
    }

    /// Decides a request as `PlainPermissionManager.validate` does, in its
    /// order: a globally white listed peer passes; then the access key must
    /// be present and known; a peer matching the account's
    /// `whiteRemoteAddress` passes (no signature or permission check); the
    /// signature must verify; a request needing exactly `PUB` on
    /// `RMQ_SYS_TRACE_TOPIC` passes; an admin request needs an admin
    /// account; an admin account with no per-resource permissions passes;
    /// every resource needs its permission (the resource's own, else the
    /// account's default topic or group permission).
    pub fn check(&self, req: &AccessRequest<'_>) -> Result<(), AclDenied> {
        if self.global_white.iter().any(|p| p.matches(req.remote_ip)) {
            return Ok(());
        }
        let access_key = req.access_key.ok_or(AclDenied::NoAccessKey)?;
        let Some(owned) = self.accounts.get(access_key) else {
            return Err(AclDenied::UnknownAccessKey(access_key.to_string()));
        };
        if owned.white_remote_address.matches(req.remote_ip) {
            return Ok(());
        }
        let signed = req
            .signature
            .is_some_and(|s| sign::verify_parts(&[req.content, req.body], owned.secret_key(), s));
        if !signed {
            return Err(AclDenied::SignatureMismatch(access_key.to_string()));
        }
        let needed = dedup_last_wins(req.resources);
        if needed
            .iter()
            .any(|(name, perm)| *name == TRACE_TOPIC && *perm == Perm::PUB)
        {
            return Ok(());
        }
        check_perm(req.request_code, &needed, owned)
    }

    /// Decides a request that only members of the cluster may make (a
    /// ferromq extension: REGISTER_BROKER and UNREGISTER_BROKER at a name
    /// server with ACL on): as [`AclRules::check`] up to the signature (a
    /// globally white listed peer passes, an account's `whiteRemoteAddress`
    /// stands in for the signature), then the account must be `admin`
    /// whatever the request code.
    ///
    /// # Errors
    /// The refusal, as [`AclRules::check`] names it.
    pub fn check_cluster_member(&self, req: &AccessRequest<'_>) -> Result<(), AclDenied> {
        if self.global_white.iter().any(|p| p.matches(req.remote_ip)) {
            return Ok(());
        }
        let access_key = req.access_key.ok_or(AclDenied::NoAccessKey)?;
        let Some(owned) = self.accounts.get(access_key) else {
            return Err(AclDenied::UnknownAccessKey(access_key.to_string()));
        };
        let signed = owned.white_remote_address.matches(req.remote_ip)
            || req.signature.is_some_and(|s| {
                sign::verify_parts(&[req.content, req.body], owned.secret_key(), s)
            });
        if !signed {
            return Err(AclDenied::SignatureMismatch(access_key.to_string()));
        }
        if !owned.admin {
            return Err(AclDenied::NeedAdmin {
                request_code: req.request_code,
                access_key: access_key.to_string(),
            });
        }
        Ok(())
    }

    /// The secret of `access_key` when it is an admin account: the accounts
    /// that may act as members of the cluster (the HA handshake).
    pub fn admin_secret(&self, access_key: &str) -> Option<&str> {
        self.accounts
            .get(access_key)
            .filter(|a| a.admin)
            .map(Account::secret_key)
    }

    /// The credentials of the admin account with the least access key: what
    /// the broker signs its own requests with when no `accessKey`/`secretKey`
    /// keys are set (RocketMQ leaves them unsigned; ferromq picks one stable
    /// account so a cluster sharing one ACL file works without more keys).
    pub fn first_admin(&self) -> Option<super::Credentials> {
        self.accounts
            .values()
            .filter(|a| a.admin)
            .min_by(|a, b| a.access_key.cmp(&b.access_key))
            .and_then(|a| super::Credentials::new(&a.access_key, a.secret_key()))
    }
}

#[cfg(test)]
impl AclRules {
    /// The rules of one `plain_acl.yml` text (tests across the crate).
    pub(crate) fn from_yaml(text: &str) -> AclRules {
        let path = std::path::Path::new("plain_acl.yml");
        let file = super::AclFile::parse(text, path).expect("valid test config");
        AclRules::new(AclConfig::merge([(path.to_path_buf(), file)]))
    }
}

/// `PlainPermissionManager.checkPerm`.
fn check_perm(
    request_code: i32,
    needed: &[(&str, Perm)],
    owned: &Account,
) -> Result<(), AclDenied> {
    if needs_admin(request_code) && !owned.admin {
        return Err(AclDenied::NeedAdmin {
            request_code,
            access_key: owned.access_key.clone(),
        });
    }
    if owned.resource_perms.is_empty() && owned.admin {
        return Ok(());
    }
    for (resource, needed_perm) in needed {
        let group = resource.strip_prefix(RETRY_GROUP_TOPIC_PREFIX);
        let owned_perm = match owned.resource_perms.get(*resource) {
            Some(perm) => *perm,
            None if group.is_some() => owned.default_group_perm,
            None => owned.default_topic_perm,
        };
        if !Perm::allows(owned_perm, *needed_perm) {
            let resource = match group {
                Some(g) => format!("group:{g}"),
                None => format!("topic:{resource}"),
            };
            return Err(AclDenied::NoPermission { resource });
        }
    }
    Ok(())
}

/// The resources with each name once, at its first position, with its last
/// permission.
fn dedup_last_wins(resources: &[(String, Perm)]) -> Vec<(&str, Perm)> {
    let mut out: Vec<(&str, Perm)> = Vec::with_capacity(resources.len());
    for (name, perm) in resources {
        match out.iter_mut().find(|(n, _)| *n == name.as_str()) {
            Some(slot) => slot.1 = *perm,
            None => out.push((name.as_str(), *perm)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const CONFIG: &str = "\
globalWhiteRemoteAddresses:
  - 10.10.103.*
accounts:
  - accessKey: RocketMQ
    secretKey: 12345678
    whiteRemoteAddress:
    admin: false
    defaultTopicPerm: DENY
    defaultGroupPerm: SUB
    topicPerms:
      - topicA=DENY
      - topicB=PUB|SUB
      - topicC=SUB
    groupPerms:
      - groupA=DENY
      - groupB=PUB|SUB
  - accessKey: rocketmq2
    secretKey: 87654321
    whiteRemoteAddress: 192.168.1.*
    admin: true
  - accessKey: admin_with_perms
    secretKey: adminsecret
    admin: true
    defaultTopicPerm: PUB
    topicPerms:
      - locked=DENY
";

    fn rules() -> AclRules {
        AclRules::from_yaml(CONFIG)
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().expect("test address"))
    }

    /// Signs `fields` (plus AccessKey) like a client with `secret` and
    /// checks the request from 127.0.0.1.
    fn signed_check(
        rules: &AclRules,
        access_key: &str,
        secret: &str,
        code: i32,
        resources: &[(&str, Perm)],
    ) -> Result<(), AclDenied> {
        let fields: HashMap<String, String> = [("AccessKey", access_key), ("topic", "whatever")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let content = sign::validator_request_content(&fields, b"body");
        let signature = sign::sign(&content, secret);
        let resources: Vec<(String, Perm)> =
            resources.iter().map(|(n, p)| (n.to_string(), *p)).collect();
        rules.check(&AccessRequest {
            remote_ip: ip("127.0.0.1"),
            request_code: code,
            access_key: Some(access_key),
            signature: Some(&signature),
            content: &content,
            body: b"",
            resources: &resources,
        })
    }

    const SEND: i32 = 10;
    const CREATE_TOPIC: i32 = 17;

    #[test]
    fn global_white_list_skips_everything() {
        let rules = rules();
        let req = AccessRequest {
            remote_ip: ip("10.10.103.7"),
            request_code: CREATE_TOPIC,
            access_key: None,
            signature: None,
            content: b"",
            body: b"",
            resources: &[("topicA".to_string(), Perm::PUB)],
        };
        assert_eq!(rules.check(&req), Ok(()));
        let other = AccessRequest {
            remote_ip: ip("10.10.104.7"),
            ..req
        };
        assert_eq!(rules.check(&other), Err(AclDenied::NoAccessKey));
        assert_eq!(other.resources.len(), 1);
        let unknown = AccessRequest {
            remote_ip: None,
            ..req
        };
        assert_eq!(
            rules.check(&unknown).map_err(|e| e.to_string()),
            Err("No accessKey is configured".into())
        );
    }

    #[test]
    fn unknown_access_key() {
        let e = signed_check(&rules(), "nobody_here", "12345678", SEND, &[]).expect_err("unknown");
        assert_eq!(e, AclDenied::UnknownAccessKey("nobody_here".into()));
        assert_eq!(e.to_string(), "No acl config for nobody_here");
        assert_eq!(
            e.remark(),
            "org.apache.rocketmq.acl.common.AclException: No acl config for nobody_here"
        );
    }

    #[test]
    fn account_white_address_skips_signature_and_perms() {
        let rules = rules();
        let req = AccessRequest {
            remote_ip: ip("192.168.1.20"),
            request_code: SEND,
            access_key: Some("rocketmq2"),
            signature: None,
            content: b"",
            body: b"",
            resources: &[("anything".to_string(), Perm::PUB)],
        };
        assert_eq!(rules.check(&req), Ok(()));
        let elsewhere = AccessRequest {
            remote_ip: ip("192.168.2.20"),
            ..req
        };
        assert_eq!(
            rules.check(&elsewhere),
            Err(AclDenied::SignatureMismatch("rocketmq2".into()))
        );
    }

    #[test]
    fn signature_failures() {
        let rules = rules();
        let e = signed_check(
            &rules,
            "RocketMQ",
            "wrong-secret",
            SEND,
            &[("topicB", Perm::PUB)],
        )
        .expect_err("bad");
        assert_eq!(
            e.to_string(),
            "Check signature failed for accessKey=RocketMQ"
        );
        assert!(!e.to_string().contains("12345678"));
        let no_signature = AccessRequest {
            remote_ip: ip("127.0.0.1"),
            request_code: SEND,
            access_key: Some("RocketMQ"),
            signature: None,
            content: b"x",
            body: b"",
            resources: &[],
        };
        assert_eq!(
            rules.check(&no_signature),
            Err(AclDenied::SignatureMismatch("RocketMQ".into()))
        );
        assert_eq!(
            signed_check(
                &rules,
                "RocketMQ",
                "12345678",
                SEND,
                &[("topicB", Perm::PUB)]
            ),
            Ok(())
        );
    }

    #[test]
    fn resource_permissions() {
        let rules = rules();
        let check = |resources: &[(&str, Perm)]| {
            signed_check(&rules, "RocketMQ", "12345678", SEND, resources)
        };
        let denied = |what: &str| {
            Err(AclDenied::NoPermission {
                resource: what.to_string(),
            })
        };
        assert_eq!(check(&[("topicB", Perm::PUB)]), Ok(()));
        assert_eq!(check(&[("topicB", Perm::SUB)]), Ok(()));
        assert_eq!(check(&[("topicC", Perm::SUB)]), Ok(()));
        assert_eq!(check(&[("topicC", Perm::PUB)]), denied("topic:topicC"));
        assert_eq!(check(&[("topicA", Perm::SUB)]), denied("topic:topicA"));
        // Default topic perm DENY.
        assert_eq!(check(&[("other", Perm::PUB)]), denied("topic:other"));
        // Groups as retry topics, default group perm SUB.
        assert_eq!(check(&[("%RETRY%groupB", Perm::SUB)]), Ok(()));
        assert_eq!(check(&[("%RETRY%someGroup", Perm::SUB)]), Ok(()));
        assert_eq!(
            check(&[("%RETRY%someGroup", Perm::PUB)]),
            denied("group:someGroup")
        );
        assert_eq!(
            check(&[("%RETRY%groupA", Perm::SUB)]),
            denied("group:groupA")
        );
        // The first failing resource is reported.
        assert_eq!(
            check(&[("topicB", Perm::SUB), ("%RETRY%groupA", Perm::SUB)]),
            denied("group:groupA")
        );
        let e = check(&[("topicA", Perm::PUB)]).expect_err("denied");
        assert_eq!(e.to_string(), "No default permission for topic:topicA");
        // A name given twice counts with its last permission.
        assert_eq!(
            check(&[("topicC", Perm::PUB), ("topicC", Perm::SUB)]),
            Ok(())
        );
    }

    #[test]
    fn trace_topic_publish_is_always_allowed() {
        let rules = rules();
        let check = |resources: &[(&str, Perm)]| {
            signed_check(&rules, "RocketMQ", "12345678", SEND, resources)
        };
        assert_eq!(
            check(&[(TRACE_TOPIC, Perm::PUB), ("topicA", Perm::PUB)]),
            Ok(())
        );
        assert_eq!(
            check(&[(TRACE_TOPIC, Perm::SUB)]),
            Err(AclDenied::NoPermission {
                resource: format!("topic:{TRACE_TOPIC}")
            })
        );
    }

    #[test]
    fn admin_requests() {
        let rules = rules();
        let e =
            signed_check(&rules, "RocketMQ", "12345678", CREATE_TOPIC, &[]).expect_err("not admin");
        assert_eq!(
            e.to_string(),
            "Need admin permission for request code=17, but accessKey=RocketMQ is not"
        );
        // An admin without per-resource perms may do anything.
        assert_eq!(
            signed_check(
                &rules,
                "rocketmq2",
                "87654321",
                CREATE_TOPIC,
                &[("topicA", Perm::PUB)]
            ),
            Ok(())
        );
        assert_eq!(
            signed_check(&rules, "rocketmq2", "87654321", SEND, &[("x", Perm::SUB)]),
            Ok(())
        );
        // An admin with per-resource perms is checked like anyone.
        let admin = |code, resources: &[(&str, Perm)]| {
            signed_check(&rules, "admin_with_perms", "adminsecret", code, resources)
        };
        assert_eq!(admin(CREATE_TOPIC, &[("new", Perm::PUB)]), Ok(()));
        assert_eq!(
            admin(SEND, &[("locked", Perm::PUB)]),
            Err(AclDenied::NoPermission {
                resource: "topic:locked".into()
            })
        );
        assert_eq!(
            admin(SEND, &[("new", Perm::SUB)]),
            Err(AclDenied::NoPermission {
                resource: "topic:new".into()
            })
        );
    }
}
