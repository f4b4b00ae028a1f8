//! The client side of plain ACL: signing requests as RocketMQ's
//! `AclClientRPCHook` does, with credentials given on a command line or read
//! from RocketMQ's `conf/tools.yml` (what `mqadmin` reads).

use std::path::{Path, PathBuf};

use super::sign;
use crate::remoting::RemotingCommand;

/// `MixAll.ACL_CONF_TOOLS_FILE`: the admin tools' credentials under the
/// RocketMQ home.
pub const TOOLS_FILE: &str = "conf/tools.yml";

/// An account's access key and secret key.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// `AccessKey` sent with every request.
    pub access_key: String,
    /// The key the signature is made with; never sent.
    secret_key: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret stays out of logs and panics.
        f.debug_struct("Credentials")
            .field("access_key", &self.access_key)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Credentials of `access_key` and `secret_key`; `None` when either is
    /// blank (RocketMQ then does not sign).
    pub fn new(access_key: &str, secret_key: &str) -> Option<Credentials> {
        (!access_key.trim().is_empty() && !secret_key.trim().is_empty()).then(|| Credentials {
            access_key: access_key.to_string(),
            secret_key: secret_key.to_string(),
        })
    }

    /// Sign `cmd` as `AclClientRPCHook.doBeforeRequest`: add `AccessKey`,
    /// then `Signature` = Base64(HmacSHA1(secret, the values of every other
    /// field in key order, then the body)). A signature already present is
    /// replaced.
    pub fn sign(&self, cmd: &mut RemotingCommand) {
        cmd.ext_fields.0.remove(sign::SIGNATURE_FIELD);
        cmd.ext_fields
            .insert(sign::ACCESS_KEY_FIELD, self.access_key.as_str());
        let content = sign::combine_request_content(&cmd.ext_fields.0, &cmd.body);
        cmd.ext_fields.insert(
            sign::SIGNATURE_FIELD,
            sign::sign(&content, &self.secret_key),
        );
    }

    /// The signature of `content` with the secret key (Base64 HmacSHA1).
    pub fn sign_bytes(&self, content: &[u8]) -> String {
        sign::sign(content, &self.secret_key)
    }

    /// The credentials in a `tools.yml` (`accessKey`, `secretKey`):
    /// `Ok(None)` when the file does not exist, is empty or either key is blank (as
    /// RocketMQ: requests then go unsigned).
    ///
    /// # Errors
    ///
    /// When the file exists but cannot be read or is not a YAML mapping
    /// (the message names the file, never the secret).
    pub fn from_tools_file(path: &Path) -> Result<Option<Credentials>, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        if text.trim().is_empty() {
            // RocketMQ: an empty file means no credentials, not an error.
            return Ok(None);
        }
        let map: std::collections::BTreeMap<String, serde_yaml_ng::Value> =
            serde_yaml_ng::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let text_of = |key: &str| match map.get(key) {
            Some(serde_yaml_ng::Value::String(s)) => s.clone(),
            Some(serde_yaml_ng::Value::Number(n)) => n.to_string(),
            _ => String::new(),
        };
        Ok(Credentials::new(
            &text_of("accessKey"),
            &text_of("secretKey"),
        ))
    }

    /// `$ROCKETMQ_HOME/conf/tools.yml`, where `mqadmin` reads its
    /// credentials; `None` without `ROCKETMQ_HOME`.
    pub fn default_tools_file() -> Option<PathBuf> {
        let home = std::env::var_os("ROCKETMQ_HOME").filter(|h| !h.is_empty())?;
        Some(PathBuf::from(home).join(TOOLS_FILE))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::{parse_request, AclRules};

    const CONFIG: &str = "\
accounts:
  - accessKey: RocketMQAdmin
    secretKey: adminsecret
    admin: true
";

    #[test]
    fn a_signed_request_passes_the_broker_check_and_the_secret_stays_out() {
        let rules = AclRules::from_yaml(CONFIG);
        let c = Credentials::new("RocketMQAdmin", "adminsecret").unwrap();
        let mut cmd = RemotingCommand::request(crate::remoting::request::UPDATE_AND_CREATE_TOPIC)
            .with_ext("topic", "T")
            .with_ext("perm", 6)
            .with_body(b"body".to_vec());
        c.sign(&mut cmd);
        // Signing twice replaces the signature instead of signing it.
        c.sign(&mut cmd);
        let peer = "127.0.0.1:1".parse().ok();
        let parsed = parse_request(&cmd, peer).unwrap();
        assert_eq!(rules.check(&parsed.as_request()), Ok(()));
        let wrong = Credentials::new("RocketMQAdmin", "not-it").unwrap();
        let mut bad = cmd.clone();
        wrong.sign(&mut bad);
        assert!(rules
            .check(&parse_request(&bad, peer).unwrap().as_request())
            .is_err());
        assert!(!format!("{c:?}").contains("adminsecret"));
        assert!(!cmd.ext_fields.0.values().any(|v| v.contains("adminsecret")));
    }

    #[test]
    fn tools_files_are_read_as_rocketmq_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("tools.yml");
        assert_eq!(Credentials::from_tools_file(&f), Ok(None), "no file");
        std::fs::write(&f, "\n").unwrap();
        assert_eq!(Credentials::from_tools_file(&f), Ok(None), "empty file");
        std::fs::write(&f, "accessKey: RocketMQ\nsecretKey: 12345678\n").unwrap();
        let c = Credentials::from_tools_file(&f).unwrap().unwrap();
        assert_eq!(c.access_key, "RocketMQ");
        assert_eq!(c, Credentials::new("RocketMQ", "12345678").unwrap());
        std::fs::write(&f, "accessKey: RocketMQ\nsecretKey: ''\n").unwrap();
        assert_eq!(Credentials::from_tools_file(&f), Ok(None), "blank secret");
        std::fs::write(&f, "accessKey: [unclosed\n").unwrap();
        let e = Credentials::from_tools_file(&f).unwrap_err();
        assert!(e.contains("tools.yml"), "{e}");
        assert!(Credentials::new(" ", "x").is_none());
    }
}
