//! `plain_acl.yml` files as RocketMQ 4.9's `PlainPermissionManager` loads
//! them.
//!
//! A file has `globalWhiteRemoteAddresses` (a list of address patterns) and
//! `accounts`, each with `accessKey`, `secretKey`, `whiteRemoteAddress`,
//! `admin`, `defaultTopicPerm`, `defaultGroupPerm`, `topicPerms` and
//! `groupPerms` (lists of `Name=PERM`), and `dataVersion` (RocketMQ's
//! `[{counter, timestamp}]`, kept per file in [`AclConfig::data_versions`];
//! a malformed one is ignored). Other keys are ignored. Unquoted numbers and booleans are taken as text where text is
//! expected (`secretKey: 12345678` in RocketMQ's own sample).
//!
//! Several files merge as in 4.9's `load()`: every `*.yml`/`*.yaml` under
//! the ACL folder (`conf/acl`, searched recursively), then the default file
//! (`conf/plain_acl.yml`) if it is not among them. Global white lists are
//! concatenated; an access key already defined by an earlier file (or
//! earlier in the same file) is ignored and reported in
//! [`AclConfig::ignored_duplicates`]. RocketMQ takes the folder's files in
//! the file system's listing order; ferromq sorts them by path so the result
//! does not depend on the file system.
//!
//! Unlike RocketMQ, a permission string other than `PUB`, `SUB`, `PUB|SUB`,
//! `SUB|PUB` and `DENY` is an error (RocketMQ silently reads it as `DENY`).
//! Error messages name the file and the account's access key, never a
//! secret key.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use super::address::AddressPattern;
use super::perm::Perm;
use crate::broker::send_back::retry_topic;

/// RocketMQ's `AclConstants.ACCESS_KEY_MIN_LENGTH` and
/// `SECRET_KEY_MIN_LENGTH`: a key must be *longer* than this many characters
/// (UTF-16 code units, as Java's `String.length`), so at least 7.
pub const KEY_MIN_LENGTH_EXCLUSIVE: usize = 6;

/// An error in an ACL config file.
#[derive(Debug, thiserror::Error)]
pub enum AclConfigError {
    /// The file or folder could not be read.
    #[error("{}: cannot read: {source}", file.display())]
    Io {
        /// The file or folder.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not YAML of the expected shape.
    #[error("{}: malformed ACL YAML: {message}", file.display())]
    Yaml {
        /// The file.
        file: PathBuf,
        /// The parser's message, with line and column where known.
        message: String,
    },
    /// An account entry is invalid.
    #[error("{}: account #{} ({}): {reason}", file.display(), index + 1, access_key.as_deref().unwrap_or("no accessKey"))]
    Account {
        /// The file.
        file: PathBuf,
        /// The account's index in `accounts` (0-based; printed 1-based).
        index: usize,
        /// The account's access key, if it has one.
        access_key: Option<String>,
        /// What is wrong.
        reason: String,
    },
    /// An entry of `globalWhiteRemoteAddresses` is invalid.
    #[error("{}: globalWhiteRemoteAddresses entry #{}: {reason}", file.display(), index + 1)]
    GlobalWhiteAddress {
        /// The file.
        file: PathBuf,
        /// The entry's index (0-based; printed 1-based).
        index: usize,
        /// What is wrong.
        reason: String,
    },
}

/// One account of an ACL file, validated. `Debug` does not show the secret.
#[derive(Clone)]
pub struct Account {
    /// The access key clients send as `AccessKey`.
    pub access_key: String,
    secret_key: String,
    /// `whiteRemoteAddress`: peers matching it are let in without a
    /// signature or permission check (RocketMQ 4.9 behaviour).
    pub white_remote_address: AddressPattern,
    /// `admin`: may send admin requests, and with no `topicPerms`/`groupPerms`
    /// at all may use every resource.
    pub admin: bool,
    /// `defaultTopicPerm` (missing: `DENY`).
    pub default_topic_perm: Perm,
    /// `defaultGroupPerm` (missing: `DENY`).
    pub default_group_perm: Perm,
    /// Per resource permissions: topics by name, groups by their retry topic
    /// (`%RETRY%group`), as RocketMQ keys them.
    pub resource_perms: HashMap<String, Perm>,
    /// The file the account came from.
    pub source: PathBuf,
}

impl Account {
    /// The secret key (to verify signatures); never log it.
    pub fn secret_key(&self) -> &str {
        &self.secret_key
    }
}

impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Account")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field("white_remote_address", &self.white_remote_address)
            .field("admin", &self.admin)
            .field("default_topic_perm", &self.default_topic_perm)
            .field("default_group_perm", &self.default_group_perm)
            .field("resource_perms", &self.resource_perms)
            .field("source", &self.source)
            .finish()
    }
}

/// One parsed ACL file.
#[derive(Debug, Clone, Default)]
pub struct AclFile {
    /// `globalWhiteRemoteAddresses`.
    pub global_white_remote_addresses: Vec<AddressPattern>,
    /// `accounts`, in file order (duplicates kept; [`AclConfig`] drops them).
    pub accounts: Vec<Account>,
    /// The first entry of `dataVersion`, if the file has a well-formed one.
    pub data_version: Option<DataVersion>,
}

/// RocketMQ's `DataVersion` of an ACL file: how often the broker changed it
/// (`counter`) and when last (`timestamp`, ms since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DataVersion {
    /// Changes made through the ACL admin requests.
    pub counter: i64,
    /// When the last change was made (ms since the epoch).
    pub timestamp: i64,
}

impl DataVersion {
    /// The version after one more change at `now_ms` (`DataVersion.nextVersion`).
    pub fn next(self, now_ms: i64) -> DataVersion {
        DataVersion {
            counter: self.counter.saturating_add(1),
            timestamp: now_ms,
        }
    }

    /// fastjson's form of RocketMQ's `DataVersion`: `{"counter":N,"timestamp":T}`.
    pub fn to_json(self) -> serde_json::Value {
        serde_json::json!({"counter": self.counter, "timestamp": self.timestamp})
    }

    /// The first entry of a file's `dataVersion` list, if well formed.
    pub(crate) fn from_yaml(v: &serde_yaml_ng::Value) -> Option<DataVersion> {
        let first = v.as_sequence()?.first()?;
        let num = |k: &str| -> Option<i64> {
            match first.get(k)? {
                serde_yaml_ng::Value::Number(n) => n.as_i64(),
                serde_yaml_ng::Value::String(s) => s.trim().parse().ok(),
                _ => None,
            }
        };
        Some(DataVersion {
            counter: num("counter")?,
            timestamp: num("timestamp").unwrap_or(0),
        })
    }
}

/// An access key defined again after its first definition, and ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateAccessKey {
    /// The access key.
    pub access_key: String,
    /// The file whose definition is used.
    pub kept_from: PathBuf,
    /// The file whose definition is ignored.
    pub ignored_in: PathBuf,
}

/// The merged ACL configuration of one or more files.
#[derive(Debug, Clone, Default)]
pub struct AclConfig {
    /// Every file's `globalWhiteRemoteAddresses`, in file order.
    pub global_white_remote_addresses: Vec<AddressPattern>,
    /// Accounts by access key (the first definition of each).
    pub accounts: HashMap<String, Account>,
    /// Later definitions of an access key, ignored as RocketMQ does (it logs
    /// "The accesssKey ... is repeated in multiple ACL files").
    pub ignored_duplicates: Vec<DuplicateAccessKey>,
    /// The files read, in merge order.
    pub files: Vec<PathBuf>,
    /// Each file's `dataVersion`, for the files that have one.
    pub data_versions: HashMap<PathBuf, DataVersion>,
}

impl AclConfig {
    /// Merges parsed files in order; see the [module docs](self).
    pub fn merge(files: impl IntoIterator<Item = (PathBuf, AclFile)>) -> Self {
        let mut config = AclConfig::default();
        for (path, file) in files {
            config
                .global_white_remote_addresses
                .extend(file.global_white_remote_addresses);
            for account in file.accounts {
                if let Some(kept) = config.accounts.get(&account.access_key) {
                    config.ignored_duplicates.push(DuplicateAccessKey {
                        access_key: account.access_key.clone(),
                        kept_from: kept.source.clone(),
                        ignored_in: path.clone(),
                    });
                } else {
                    config.accounts.insert(account.access_key.clone(), account);
                }
            }
            if let Some(v) = file.data_version {
                config.data_versions.insert(path.clone(), v);
            }
            config.files.push(path);
        }
        config
    }

    /// Loads and merges the ACL folder (`*.yml`/`*.yaml`, recursively) and
    /// then `default_file` if it is not in the folder. A missing folder or
    /// default file is skipped (RocketMQ creates an empty default file).
    pub fn load(
        acl_dir: Option<&Path>,
        default_file: Option<&Path>,
    ) -> Result<Self, AclConfigError> {
        let paths = list_files(acl_dir, default_file)?;
        let mut files = Vec::with_capacity(paths.len());
        for path in paths {
            let file = AclFile::load(&path)?;
            files.push((path, file));
        }
        Ok(AclConfig::merge(files))
    }
}

/// The files [`AclConfig::load`] reads, in merge order: the folder's
/// `*.yml`/`*.yaml` (recursively, by path), then `default_file` if it exists
/// and is not among them.
///
/// # Errors
/// The folder cannot be listed, or it nests deeper than [`MAX_FOLDER_DEPTH`].
pub fn list_files(
    acl_dir: Option<&Path>,
    default_file: Option<&Path>,
) -> Result<Vec<PathBuf>, AclConfigError> {
    let mut paths = Vec::new();
    if let Some(dir) = acl_dir {
        if dir.is_dir() {
            collect_yaml_files(dir, 0, &mut paths)?;
            paths.sort();
        }
    }
    if let Some(file) = default_file {
        if file.is_file() && !paths.iter().any(|p| p == file) {
            paths.push(file.to_path_buf());
        }
    }
    Ok(paths)
}

/// Checks one account entry (a YAML mapping as a file holds it) with the
/// rules a file's accounts are loaded with; the error is the reason alone
/// (no file name), never containing the secret key.
pub fn check_account(entry: &serde_yaml_ng::Value) -> Result<(), String> {
    let raw: RawAccount = serde_yaml_ng::from_value(entry.clone()).map_err(|e| e.to_string())?;
    build_account(raw, Path::new("")).map(|_| ())
}

/// Puts back the text fields of a file's accounts and global white list as
/// written in `text` into `map` (the same text read as a YAML mapping, where
/// an unquoted `secretKey: 0012345678` became the number 12345678): the
/// loader reads them as written, so an edit must write them so. Other
/// fields are left as they are.
///
/// # Errors
/// `text` is not an ACL file of the expected shape.
pub(crate) fn keep_written_text(
    text: &str,
    map: &mut serde_yaml_ng::Mapping,
) -> Result<(), String> {
    use serde_yaml_ng::Value;
    let raw: Option<RawFile> = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
    let Some(raw) = raw else { return Ok(()) };
    let text_value = |t: Text| t.0.map_or(Value::Null, Value::String);
    if let (Some(list), Some(Value::Sequence(seq))) = (
        raw.global_white_remote_addresses,
        map.get_mut("globalWhiteRemoteAddresses"),
    ) {
        for (item, t) in seq.iter_mut().zip(list) {
            *item = text_value(t);
        }
    }
    if let (Some(accounts), Some(Value::Sequence(seq))) = (raw.accounts, map.get_mut("accounts")) {
        for (item, a) in seq.iter_mut().zip(accounts) {
            let Value::Mapping(m) = item else { continue };
            for (k, v) in [
                ("accessKey", a.access_key),
                ("secretKey", a.secret_key),
                ("whiteRemoteAddress", a.white_remote_address),
                ("defaultTopicPerm", a.default_topic_perm),
                ("defaultGroupPerm", a.default_group_perm),
            ] {
                if let Some(v) = v {
                    m.insert(k.into(), Value::String(v));
                }
            }
            for (k, list) in [("topicPerms", a.topic_perms), ("groupPerms", a.group_perms)] {
                if let Some(list) = list {
                    m.insert(
                        k.into(),
                        Value::Sequence(list.into_iter().map(text_value).collect()),
                    );
                }
            }
        }
    }
    Ok(())
}

/// How deep [`AclConfig::load`] looks into sub-folders (a guard against
/// symlink loops; RocketMQ has none).
pub const MAX_FOLDER_DEPTH: usize = 16;

fn collect_yaml_files(
    dir: &Path,
    depth: usize,
    out: &mut Vec<PathBuf>,
) -> Result<(), AclConfigError> {
    let io = |source| AclConfigError::Io {
        file: dir.to_path_buf(),
        source,
    };
    if depth > MAX_FOLDER_DEPTH {
        let msg = format!("more than {MAX_FOLDER_DEPTH} levels of sub-folders (a symlink loop?)");
        return Err(io(std::io::Error::other(msg)));
    }
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.ends_with(".yml") || name.ends_with(".yaml") {
            out.push(path);
        } else if path.is_dir() {
            collect_yaml_files(&path, depth + 1, out)?;
        }
    }
    Ok(())
}

impl AclFile {
    /// Reads and parses one file.
    pub fn load(path: &Path) -> Result<Self, AclConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| AclConfigError::Io {
            file: path.to_path_buf(),
            source,
        })?;
        AclFile::parse(&text, path)
    }

    /// Parses the text of one file; `path` names it in errors and in
    /// [`Account::source`]. An empty file (or one with only comments) has no
    /// accounts.
    pub fn parse(text: &str, path: &Path) -> Result<Self, AclConfigError> {
        let raw: Option<RawFile> =
            serde_yaml_ng::from_str(text).map_err(|e| AclConfigError::Yaml {
                file: path.to_path_buf(),
                message: e.to_string(),
            })?;
        let raw = raw.unwrap_or_default();
        let mut file = AclFile {
            data_version: raw.data_version.as_ref().and_then(DataVersion::from_yaml),
            ..AclFile::default()
        };
        for (index, addr) in raw
            .global_white_remote_addresses
            .into_iter()
            .flatten()
            .enumerate()
        {
            let pattern = AddressPattern::parse(addr.as_deref().unwrap_or("")).map_err(|e| {
                AclConfigError::GlobalWhiteAddress {
                    file: path.to_path_buf(),
                    index,
                    reason: e.to_string(),
                }
            })?;
            file.global_white_remote_addresses.push(pattern);
        }
        for (index, account) in raw.accounts.into_iter().flatten().enumerate() {
            let access_key = account.access_key.clone();
            let account =
                build_account(account, path).map_err(|reason| AclConfigError::Account {
                    file: path.to_path_buf(),
                    index,
                    access_key,
                    reason,
                })?;
            file.accounts.push(account);
        }
        Ok(file)
    }
}

fn java_len(s: &str) -> usize {
    s.encode_utf16().count()
}

fn build_account(raw: RawAccount, path: &Path) -> Result<Account, String> {
    let access_key = raw.access_key.ok_or("accessKey is missing")?;
    if java_len(&access_key) <= KEY_MIN_LENGTH_EXCLUSIVE {
        return Err(format!(
            "accessKey must be longer than {KEY_MIN_LENGTH_EXCLUSIVE} characters"
        ));
    }
    let secret_key = raw.secret_key.ok_or("secretKey is missing")?;
    if java_len(&secret_key) <= KEY_MIN_LENGTH_EXCLUSIVE {
        return Err(format!(
            "secretKey must be longer than {KEY_MIN_LENGTH_EXCLUSIVE} characters (it has {})",
            java_len(&secret_key)
        ));
    }
    let white_remote_address = match raw.white_remote_address {
        Some(text) => {
            AddressPattern::parse(&text).map_err(|e| format!("whiteRemoteAddress: {e}"))?
        }
        None => AddressPattern::nothing(),
    };
    let default_perm = |name: &str, text: Option<String>| -> Result<Perm, String> {
        match text.as_deref().map(str::trim) {
            None | Some("") => Ok(Perm::DENY),
            Some(t) => Perm::parse(t).ok_or_else(|| bad_perm(name, t)),
        }
    };
    let default_topic_perm = default_perm("defaultTopicPerm", raw.default_topic_perm)?;
    let default_group_perm = default_perm("defaultGroupPerm", raw.default_group_perm)?;
    let mut resource_perms = HashMap::new();
    // Groups first, then topics, as RocketMQ's buildPlainAccessResource.
    for (list, is_topic) in [(raw.group_perms, false), (raw.topic_perms, true)] {
        let field = if is_topic { "topicPerms" } else { "groupPerms" };
        for entry in list.into_iter().flatten() {
            let entry = entry.unwrap_or_default();
            // StringUtils.split(entry, "="): empty pieces dropped, exactly 2 left.
            let pieces: Vec<&str> = entry.split('=').filter(|p| !p.is_empty()).collect();
            let [name, perm] = pieces[..] else {
                return Err(format!("{field} entry {entry:?} is not 'Name=PERM'"));
            };
            let name = name.trim();
            let perm = Perm::parse(perm)
                .ok_or_else(|| bad_perm(&format!("{field} entry {entry:?}"), perm.trim()))?;
            let resource = if is_topic {
                name.to_string()
            } else {
                retry_topic(name)
            };
            resource_perms.insert(resource, perm);
        }
    }
    Ok(Account {
        access_key,
        secret_key,
        white_remote_address,
        admin: raw.admin.unwrap_or(false),
        default_topic_perm,
        default_group_perm,
        resource_perms,
        source: path.to_path_buf(),
    })
}

fn bad_perm(what: &str, perm: &str) -> String {
    format!("{what}: permission {perm:?} is not one of PUB, SUB, PUB|SUB, SUB|PUB, DENY")
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawFile {
    #[serde(default)]
    global_white_remote_addresses: Option<Vec<Text>>,
    #[serde(default)]
    accounts: Option<Vec<RawAccount>>,
    #[serde(default)]
    data_version: Option<serde_yaml_ng::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawAccount {
    #[serde(default, deserialize_with = "text")]
    access_key: Option<String>,
    #[serde(default, deserialize_with = "text")]
    secret_key: Option<String>,
    #[serde(default, deserialize_with = "text")]
    white_remote_address: Option<String>,
    #[serde(default)]
    admin: Option<bool>,
    #[serde(default, deserialize_with = "text")]
    default_topic_perm: Option<String>,
    #[serde(default, deserialize_with = "text")]
    default_group_perm: Option<String>,
    #[serde(default)]
    topic_perms: Option<Vec<Text>>,
    #[serde(default)]
    group_perms: Option<Vec<Text>>,
}

/// A scalar taken as text: a string, or a number or boolean as written
/// (RocketMQ converts them to strings too); null is `None`.
struct Text(Option<String>);

impl std::ops::Deref for Text {
    type Target = Option<String>;
    fn deref(&self) -> &Option<String> {
        &self.0
    }
}

impl Text {
    fn unwrap_or_default(self) -> String {
        self.0.unwrap_or_default()
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        text(d).map(Text)
    }
}

fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string, number or boolean")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            // A plain scalar as written: `0012345678` stays that, not 12345678.
            d.deserialize_str(V)
        }
    }
    d.deserialize_option(V)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RocketMQ 4.9.7's distribution/conf/plain_acl.yml, unchanged.
    const SHIPPED: &str = include_str!("../../tests/fixtures/acl/plain_acl.yml");

    fn parse(text: &str) -> Result<AclFile, AclConfigError> {
        AclFile::parse(text, Path::new("conf/plain_acl.yml"))
    }

    fn err_text(text: &str) -> String {
        match parse(text) {
            Ok(file) => panic!("expected an error, parsed {file:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn shipped_file() {
        let file = parse(SHIPPED).expect("RocketMQ's sample parses");
        let globals: Vec<&str> = file
            .global_white_remote_addresses
            .iter()
            .map(|p| p.as_str())
            .collect();
        assert_eq!(globals, ["10.10.103.*", "192.168.0.*"]);
        assert_eq!(file.accounts.len(), 2);
        let a = &file.accounts[0];
        assert_eq!(a.access_key, "RocketMQ");
        assert_eq!(a.secret_key(), "12345678");
        assert!(!a.admin);
        assert!(!a
            .white_remote_address
            .matches(Some("127.0.0.1".parse().expect("ip"))));
        assert_eq!(a.default_topic_perm, Perm::DENY);
        assert_eq!(a.default_group_perm, Perm::SUB);
        let want: HashMap<String, Perm> = [
            ("topicA", Perm::DENY),
            ("topicB", Perm::PUB_SUB),
            ("topicC", Perm::SUB),
            ("%RETRY%groupA", Perm::DENY),
            ("%RETRY%groupB", Perm::PUB_SUB),
            ("%RETRY%groupC", Perm::SUB),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(a.resource_perms, want);
        let b = &file.accounts[1];
        assert_eq!(b.access_key, "rocketmq2");
        assert!(b.admin);
        assert_eq!(b.white_remote_address.as_str(), "192.168.1.*");
        assert_eq!(b.default_topic_perm, Perm::DENY);
        assert!(b.resource_perms.is_empty());
        assert_eq!(b.source, Path::new("conf/plain_acl.yml"));
        // Debug never shows a secret.
        assert!(!format!("{file:?}").contains("12345678"));
    }

    #[test]
    fn unquoted_scalars_are_taken_as_written() {
        let file = parse(
            "accounts:\n  - accessKey: 00123456789\n    secretKey: 1.50e30\n  - accessKey: true_key_1\n    secretKey: 12345678\n    whiteRemoteAddress: 127.0.0.1\n",
        )
        .expect("valid");
        assert_eq!(file.accounts[0].access_key, "00123456789");
        assert_eq!(file.accounts[0].secret_key(), "1.50e30");
        assert_eq!(file.accounts[1].secret_key(), "12345678");
        let e = err_text("accounts:\n  - accessKey: RocketMQ\n    secretKey: [1, 2]\n");
        assert!(e.contains("malformed ACL YAML"), "{e}");
    }

    #[test]
    fn empty_and_comment_only_files_have_no_accounts() {
        for text in ["", "# nothing\n", "---\n"] {
            let file = parse(text).expect("empty file");
            assert!(file.accounts.is_empty() && file.global_white_remote_addresses.is_empty());
        }
        let file = parse("accounts:\nglobalWhiteRemoteAddresses:\ndataVersion:\n  - counter: 1\n")
            .expect("nulls");
        assert!(file.accounts.is_empty());
    }

    #[test]
    fn malformed_yaml_names_the_file() {
        let e = err_text("accounts:\n  - accessKey: [unclosed\n");
        assert!(
            e.starts_with("conf/plain_acl.yml: malformed ACL YAML:"),
            "{e}"
        );
        let e = err_text("accounts: 5\n");
        assert_eq!(
            e,
            "conf/plain_acl.yml: malformed ACL YAML: accounts: invalid type: integer `5`, expected a sequence at line 1 column 11"
        );
        let e = err_text(
            "accounts:\n  - accessKey: RocketMQ\n    secretKey: 12345678\n    admin: maybe\n",
        );
        assert!(e.contains("malformed ACL YAML"), "{e}");
    }

    #[test]
    fn account_errors() {
        let e = err_text("accounts:\n  - secretKey: 12345678\n");
        assert_eq!(
            e,
            "conf/plain_acl.yml: account #1 (no accessKey): accessKey is missing"
        );
        let e = err_text("accounts:\n  - accessKey: RocketMQ\n");
        assert_eq!(
            e,
            "conf/plain_acl.yml: account #1 (RocketMQ): secretKey is missing"
        );
        let e = err_text("accounts:\n  - accessKey: short\n    secretKey: 12345678\n");
        assert!(e.contains("accessKey must be longer than 6"), "{e}");
        // Six characters is too short (RocketMQ: length <= 6 is refused); seven is fine.
        let e = err_text("accounts:\n  - accessKey: RocketMQ\n    secretKey: s3cr3t\n");
        assert!(
            e.contains("secretKey must be longer than 6 characters (it has 6)"),
            "{e}"
        );
        assert!(!e.contains("s3cr3t"), "a secret in an error: {e}");
        parse("accounts:\n  - accessKey: RocketMQ\n    secretKey: '1234567'\n").expect("7 chars");
        let e = err_text(
            "accounts:\n  - accessKey: okaccount\n    secretKey: 12345678\n  - accessKey: RocketMQ\n    secretKey: 12345678\n    defaultTopicPerm: READ\n",
        );
        assert!(
            e.starts_with("conf/plain_acl.yml: account #2 (RocketMQ): defaultTopicPerm"),
            "{e}"
        );
        let e = err_text("accounts:\n  - accessKey: RocketMQ\n    secretKey: 12345678\n    topicPerms:\n      - topicA=PUB,SUB\n");
        assert!(e.contains("topicPerms entry \"topicA=PUB,SUB\""), "{e}");
        let e = err_text("accounts:\n  - accessKey: RocketMQ\n    secretKey: 12345678\n    groupPerms:\n      - groupA\n");
        assert!(
            e.contains("groupPerms entry \"groupA\" is not 'Name=PERM'"),
            "{e}"
        );
        let e = err_text("accounts:\n  - accessKey: RocketMQ\n    secretKey: 12345678\n    topicPerms:\n      - a=b=PUB\n");
        assert!(e.contains("is not 'Name=PERM'"), "{e}");
        let e = err_text("accounts:\n  - accessKey: RocketMQ\n    secretKey: 12345678\n    whiteRemoteAddress: 192.168.1\n");
        assert!(
            e.contains("whiteRemoteAddress: invalid remote address pattern \"192.168.1\""),
            "{e}"
        );
        let e = err_text("globalWhiteRemoteAddresses:\n  - 10.10.103.*\n  - 300.1.1.1\n");
        assert!(
            e.starts_with("conf/plain_acl.yml: globalWhiteRemoteAddresses entry #2:"),
            "{e}"
        );
    }

    #[test]
    fn perm_entries_are_trimmed_and_later_ones_win() {
        let file = parse(
            "accounts:\n  - accessKey: RocketMQ\n    secretKey: 12345678\n    topicPerms:\n      - ' t1 = SUB|PUB '\n      - t1=DENY\n    groupPerms:\n      - g=PUB\n",
        )
        .expect("valid");
        let perms = &file.accounts[0].resource_perms;
        assert_eq!(perms.get("t1"), Some(&Perm::DENY));
        assert_eq!(perms.get("%RETRY%g"), Some(&Perm::PUB));
        assert_eq!(file.accounts[0].default_group_perm, Perm::DENY);
    }

    #[test]
    fn folder_merge_first_definition_wins() {
        let dir = tempfile::tempdir().expect("tempdir");
        let acl_dir = dir.path().join("conf/acl");
        std::fs::create_dir_all(acl_dir.join("sub")).expect("mkdir");
        let account = |key: &str, secret: &str| {
            format!("accounts:\n  - accessKey: {key}\n    secretKey: {secret}\n")
        };
        std::fs::write(
            acl_dir.join("a.yml"),
            format!(
                "globalWhiteRemoteAddresses:\n  - 10.0.0.*\n{}",
                account("shared_key", "from-a-secret")
            ),
        )
        .expect("write");
        std::fs::write(
            acl_dir.join("sub/b.yaml"),
            account("b_account", "from-b-secret"),
        )
        .expect("write");
        std::fs::write(acl_dir.join("notes.txt"), "not yaml: [").expect("write");
        let default = dir.path().join("conf/plain_acl.yml");
        std::fs::write(
            &default,
            format!(
                "globalWhiteRemoteAddresses:\n  - 10.1.0.*\n{}",
                account("shared_key", "from-default")
            ),
        )
        .expect("write");

        let config = AclConfig::load(Some(&acl_dir), Some(&default)).expect("loads");
        assert_eq!(
            config.files,
            [
                acl_dir.join("a.yml"),
                acl_dir.join("sub/b.yaml"),
                default.clone()
            ]
        );
        let globals: Vec<&str> = config
            .global_white_remote_addresses
            .iter()
            .map(|p| p.as_str())
            .collect();
        assert_eq!(globals, ["10.0.0.*", "10.1.0.*"]);
        assert_eq!(config.accounts.len(), 2);
        assert_eq!(config.accounts["shared_key"].secret_key(), "from-a-secret");
        assert_eq!(
            config.accounts["b_account"].source,
            acl_dir.join("sub/b.yaml")
        );
        assert_eq!(
            config.ignored_duplicates,
            [DuplicateAccessKey {
                access_key: "shared_key".into(),
                kept_from: acl_dir.join("a.yml"),
                ignored_in: default.clone(),
            }]
        );

        // Missing folder and file: nothing, no error.
        let none = AclConfig::load(
            Some(&dir.path().join("nope")),
            Some(&dir.path().join("nope.yml")),
        )
        .expect("ok");
        assert!(none.accounts.is_empty() && none.files.is_empty());

        // A symlink loop is an error, not a stack overflow.
        #[cfg(unix)]
        {
            let link = acl_dir.join("sub/loop");
            std::os::unix::fs::symlink(&acl_dir, &link).expect("symlink");
            let e = AclConfig::load(Some(&acl_dir), None)
                .expect_err("loop")
                .to_string();
            assert!(e.contains("levels of sub-folders"), "{e}");
            std::fs::remove_file(&link).expect("unlink");
        }

        // A bad file anywhere fails the load, naming it.
        std::fs::write(acl_dir.join("sub/bad.yml"), "accounts:\n  - accessKey: x\n")
            .expect("write");
        let e = AclConfig::load(Some(&acl_dir), Some(&default))
            .expect_err("bad file")
            .to_string();
        assert!(
            e.contains("bad.yml: account #1 (x): accessKey must be longer than 6"),
            "{e}"
        );
    }

    #[test]
    fn duplicate_in_one_file_keeps_the_first() {
        let text = "accounts:\n  - accessKey: RocketMQ\n    secretKey: first-secret\n  - accessKey: RocketMQ\n    secretKey: second-secret\n";
        let file = parse(text).expect("valid");
        let config = AclConfig::merge([(PathBuf::from("x.yml"), file)]);
        assert_eq!(config.accounts["RocketMQ"].secret_key(), "first-secret");
        assert_eq!(config.ignored_duplicates.len(), 1);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(500))]
        /// Arbitrary text (and arbitrary values in an account) parse or fail
        /// with an error, never a panic.
        #[test]
        fn parse_never_panics(
            text in "\\PC{0,200}",
            value in "[A-Za-z0-9|=:.*{},\\- ]{0,20}",
        ) {
            let _ = parse(&text);
            let account = format!(
                "accounts:\n  - accessKey: RocketMQ\n    secretKey: '{value}'\n    whiteRemoteAddress: '{value}'\n    defaultTopicPerm: '{value}'\n    topicPerms:\n      - '{value}'\n"
            );
            let _ = parse(&account);
        }
    }
}
