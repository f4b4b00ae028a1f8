//! Trust between the members of a cluster when ACL is on (a ferromq
//! extension; RocketMQ 4.x trusts its own network):
//!
//! - a name server with `aclEnable=true` takes REGISTER_BROKER and
//!   UNREGISTER_BROKER only from admin accounts
//!   ([`AclRules::check_cluster_member`](super::AclRules::check_cluster_member)), so a stranger can neither remove a
//!   broker from the routes nor register a fake master;
//! - the broker signs its own requests (registration, a slave's config
//!   copies) with its credentials ([`crate::broker::BrokerConfig::credentials`],
//!   else [`AclRules::first_admin`](super::AclRules::first_admin));
//! - master and slave run the authenticated HA handshake
//!   ([`ferromq_replication::auth`]) with [`ClusterAuth`]: each proves it holds
//!   an admin account's secret, so the HA port streams the commitlog only to
//!   slaves of the cluster and a slave follows only a master of it.

use std::sync::Arc;

use ferromq_replication::HaAuth;

use super::{sign, AclLive, Credentials};

/// The HA handshake's credentials and checks of one broker: it proves itself
/// with `credentials` and accepts a peer that proves an admin account of the
/// rules in force (reloaded ones included).
#[derive(Debug)]
pub struct ClusterAuth {
    broker_name: String,
    credentials: Option<Credentials>,
    rules: Arc<AclLive>,
}

impl ClusterAuth {
    /// The handshake of broker `broker_name`. Without `credentials` this side
    /// cannot prove itself (a master so configured still checks its slaves,
    /// but every slave refuses it).
    pub fn new(broker_name: &str, credentials: Option<Credentials>, rules: Arc<AclLive>) -> Self {
        ClusterAuth {
            broker_name: broker_name.to_string(),
            credentials,
            rules,
        }
    }
}

impl HaAuth for ClusterAuth {
    fn broker_name(&self) -> &str {
        &self.broker_name
    }

    fn access_key(&self) -> &str {
        self.credentials
            .as_ref()
            .map_or("", |c| c.access_key.as_str())
    }

    fn sign(&self, content: &[u8]) -> String {
        self.credentials
            .as_ref()
            .map_or_else(String::new, |c| c.sign_bytes(content))
    }

    fn verify(&self, access_key: &str, content: &[u8], signature: &str) -> bool {
        self.rules.with_rules(|rules| {
            rules
                .admin_secret(access_key)
                .is_some_and(|secret| sign::verify(content, secret, signature))
        })
    }

    fn nonce(&self) -> Result<[u8; 16], String> {
        let mut n = [0u8; 16];
        getrandom::fill(&mut n).map_err(|e| format!("no random bytes for the HA nonce: {e}"))?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str = "\
accounts:
  - accessKey: zzadmin1
    secretKey: zsecret12
    admin: true
  - accessKey: aaadmin1
    secretKey: secret123
    admin: true
  - accessKey: plainuser
    secretKey: usersecret
    admin: false
";

    #[test]
    fn only_admin_accounts_verify_and_the_least_admin_key_signs() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain_acl.yml");
        std::fs::write(&file, RULES).unwrap();
        let live = || {
            let l = crate::acl::load_broker_rules(true, Some(&file));
            Arc::new(l.expect("rules").expect("ACL on"))
        };
        let rules = live();
        let first = rules.with_rules(crate::acl::AclRules::first_admin);
        let first = first.expect("an admin account");
        assert_eq!(first.access_key, "aaadmin1");
        let auth = ClusterAuth::new("broker-a", Some(first), rules);
        let sig = auth.sign(b"content");
        assert!(auth.verify("aaadmin1", b"content", &sig));
        assert!(!auth.verify("aaadmin1", b"other content", &sig));
        let user = Credentials::new("plainuser", "usersecret").unwrap();
        assert!(!auth.verify("plainuser", b"content", &user.sign_bytes(b"content")));
        assert!(!auth.verify("zzadmin1", b"content", &sig));
        assert_ne!(auth.nonce().unwrap(), auth.nonce().unwrap());
        let unarmed = ClusterAuth::new("broker-a", None, live());
        assert_eq!(
            (unarmed.access_key(), unarmed.sign(b"x").as_str()),
            ("", "")
        );
    }
}
