//! The broker's live ACL rules: reloaded when the files change on disk, and
//! changed by RocketMQ's ACL admin requests (codes 50-54).
//!
//! [`AclLive`] holds the rules behind a `RwLock<Arc<AclRules>>` and a
//! generation number: a reload builds the new rules apart, swaps the pointer
//! and bumps the generation. A request ([`AclLive::with_rules`]) reads the
//! generation (one atomic load, no write to a shared cache line) and checks
//! against its thread's cached `Arc` of the rules, fetched through the lock
//! only when the generation moved. Nothing on the request path waits for a
//! file.
//!
//! # Reloading
//!
//! [`watch_loop`] looks at the files every interval (the broker key
//! `aclReloadIntervalMs`, default [`DEFAULT_RELOAD_INTERVAL_MS`]; RocketMQ
//! 4.9.7's `AclFileWatchService` looks every 5 s): the list of files (as
//! [`AclLocation::load`] finds them) and each one's modification and change
//! times, size and inode. When any of it changed, every file is read again and, if all
//! load, the new rules replace the old ones. A malformed file, or none left,
//! keeps the old rules: a WARN names the file and the reason once per change
//! on disk (not every interval), and the next change is tried again. A
//! file that had content and is now empty is taken as a write in progress
//! (an editor that truncates, then writes) and keeps the rules the same way;
//! `accounts: []` removes every account of a file. Files that change again
//! while they are read are read at the next look.
//!
//! # Admin requests
//!
//! [`AclLive::update_account`] (UPDATE_AND_CREATE_ACL_CONFIG),
//! [`AclLive::delete_account`] (DELETE_ACL_CONFIG) and
//! [`AclLive::update_global_white`] (UPDATE_GLOBAL_WHITE_ADDRS_CONFIG) edit
//! the file as RocketMQ 4.9's `PlainPermissionManager` does: an account is
//! changed in the file it was loaded from, a new one is added to the default
//! file (`conf/plain_acl.yml`, or the `aclFilePath` file; for an
//! `aclFilePath` folder, `plain_acl.yml` in it), created if missing; the
//! file's `dataVersion` counter goes up by one with the time of the change.
//! The input is checked first with the rules the loader applies (key
//! lengths, permission strings, address patterns): a bad one is refused with
//! the reason and the file is not touched. The new text is written to a
//! temporary file beside it, synced, renamed over it and the folder synced,
//! then every file is loaded again and the rules swapped before the answer.
//! As with RocketMQ's writer, comments and key order of an edited file are
//! not kept.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use ferromq_engine::sync::LockExt;
use serde_yaml_ng::{Mapping, Value};
use tokio::sync::watch;

use super::address::AddressPattern;
use super::config::{
    check_account, keep_written_text, list_files, AclConfig, AclConfigError, DataVersion,
};
use super::rules::AclRules;
use super::startup::{AclLocation, AclStartupError, ACL_DIR, DEFAULT_ACL_FILE};

/// How often the ACL files are looked at by default (ms).
pub const DEFAULT_RELOAD_INTERVAL_MS: u64 = 500;

/// Ids of [`AclLive`] instances.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's rules: (instance id, generation, rules).
    static CACHED: RefCell<Option<(u64, u64, Arc<AclRules>)>> = const { RefCell::new(None) };
}

/// One file's identity on disk: modification time, size, inode and change
/// time (ns; 0 where unknown).
pub(crate) type Stamp = Option<(SystemTime, u64, u64, i64)>;

/// The rules in force and what they were loaded from.
#[derive(Debug)]
pub struct AclLive {
    location: AclLocation,
    rules: RwLock<Arc<AclRules>>,
    /// This instance's id, for the per-thread cache (tests run several
    /// brokers in one process).
    id: u64,
    /// Bumped after each swap of `rules`.
    generation: AtomicU64,
    /// Serializes reloads and admin edits.
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// The files and stamps the rules in force were loaded from.
    seen: Vec<(PathBuf, Stamp)>,
    /// The files and stamps whose load last failed (logged once).
    failed: Option<Vec<(PathBuf, Stamp)>>,
    /// The files of the rules in force, in merge order.
    files: Vec<PathBuf>,
    /// Their data versions (a file without one: counter 0, load time).
    versions: BTreeMap<PathBuf, DataVersion>,
}

/// One UPDATE_AND_CREATE_ACL_CONFIG request (`CreateAccessConfigRequestHeader`);
/// `None` fields are left as they are in an existing account.
#[derive(Debug, Clone, Default)]
pub struct AccountUpdate {
    /// `accessKey`.
    pub access_key: String,
    /// `secretKey` (required, as RocketMQ checks it).
    pub secret_key: Option<String>,
    /// `whiteRemoteAddress`.
    pub white_remote_address: Option<String>,
    /// `admin` (RocketMQ always sends it; absent is `false`).
    pub admin: bool,
    /// `defaultTopicPerm`.
    pub default_topic_perm: Option<String>,
    /// `defaultGroupPerm`.
    pub default_group_perm: Option<String>,
    /// `topicPerms`, split at `,` (`topicA=DENY,topicB=PUB`).
    pub topic_perms: Option<Vec<String>>,
    /// `groupPerms`, split at `,`.
    pub group_perms: Option<Vec<String>>,
}

/// The answer to GET_BROKER_CLUSTER_ACL_INFO: data versions.
#[derive(Debug, Clone)]
pub struct VersionInfo {
    /// The default file's version (RocketMQ's deprecated `version`).
    pub default_version: DataVersion,
    /// Every file's version, by path.
    pub all: BTreeMap<String, DataVersion>,
}

fn now_ms() -> i64 {
    crate::util::now_ms()
}

fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let (ino, ctime) = {
        use std::os::unix::fs::MetadataExt;
        (
            m.ino(),
            m.ctime().saturating_mul(1_000_000_000) + m.ctime_nsec(),
        )
    };
    #[cfg(not(unix))]
    let (ino, ctime) = (0, 0);
    Some((m.modified().ok()?, m.len(), ino, ctime))
}

impl AclLive {
    /// The live rules of `config`, loaded from `location` (the files are
    /// taken as they are now).
    pub fn new(location: AclLocation, config: AclConfig) -> AclLive {
        let seen = scan(&location);
        AclLive::with_seen(location, config, seen)
    }

    /// [`AclLive::new`] with the files as they were when `config` was read.
    pub(crate) fn with_seen(
        location: AclLocation,
        config: AclConfig,
        seen: Vec<(PathBuf, Stamp)>,
    ) -> AclLive {
        let files = config.files.clone();
        let versions = versions_of(&config);
        AclLive {
            location,
            rules: RwLock::new(Arc::new(AclRules::new(config))),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            generation: AtomicU64::new(0),
            state: Mutex::new(State {
                seen,
                failed: None,
                files,
                versions,
            }),
        }
    }

    /// The rules in force now (a snapshot: a later reload does not change it).
    pub fn rules(&self) -> Arc<AclRules> {
        match self.rules.read() {
            Ok(r) => r.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Runs `f` with the rules in force: the calling thread's cached copy
    /// while no reload happened since it was taken (one atomic load), else
    /// the new rules, cached for the next call.
    pub fn with_rules<R>(&self, f: impl FnOnce(&AclRules) -> R) -> R {
        let generation = self.generation.load(Ordering::Acquire);
        CACHED.with(|cell| {
            let Ok(mut cached) = cell.try_borrow_mut() else {
                // Called from inside `f`: no cache.
                return f(&self.rules());
            };
            let fresh = matches!(&*cached, Some((id, g, _)) if *id == self.id && *g == generation);
            if !fresh {
                *cached = Some((self.id, generation, self.rules()));
            }
            match &*cached {
                Some((_, _, rules)) => f(rules),
                None => f(&self.rules()),
            }
        })
    }

    /// The files the rules in force were loaded from, in merge order.
    pub fn files(&self) -> Vec<PathBuf> {
        self.state.locked().files.clone()
    }

    /// The file new accounts and the global white list go to.
    pub fn default_file(&self) -> PathBuf {
        match &self.location {
            AclLocation::Home(home) => home.join(DEFAULT_ACL_FILE),
            AclLocation::Explicit(p) if p.is_dir() => p.join("plain_acl.yml"),
            AclLocation::Explicit(p) => p.clone(),
        }
    }

    fn scan(&self) -> Vec<(PathBuf, Stamp)> {
        scan(&self.location)
    }

    /// Load the files again if they changed since the rules in force (or the
    /// last failed load) were read; returns whether new rules are in force.
    /// A failed load keeps the rules and logs a WARN once per change.
    pub fn reload_if_changed(&self) -> bool {
        let mut st = self.state.locked();
        let now = self.scan();
        if now == st.seen || st.failed.as_ref() == Some(&now) {
            return false;
        }
        // A file that had content and is now empty is most likely being
        // rewritten in place (truncated, not yet written): loading it would
        // drop its accounts for a moment. RocketMQ 4.9 skips an empty file
        // on reload too.
        let emptied = now.iter().find(|(path, s)| {
            s.is_some_and(|s| s.1 == 0)
                && st
                    .seen
                    .iter()
                    .any(|(p, old)| p == path && old.is_some_and(|o| o.1 > 0))
        });
        if let Some((path, _)) = emptied {
            tracing::warn!(
                file = %path.display(),
                "an ACL file became empty: taken as a write in progress, the previous rules stay in force \
                 (write `accounts: []` to remove every account)"
            );
            st.failed = Some(now);
            return false;
        }
        match self.location.load() {
            // Changed again while read (a write still going on): the next
            // look loads it once it is still.
            Ok(_) if self.scan() != now => false,
            Ok(config) => {
                tracing::info!(
                    files = ?config.files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>(),
                    accounts = config.accounts.len(),
                    "ACL files changed: new rules in force"
                );
                self.install(&mut st, config, now);
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "ACL files changed but cannot be loaded; the previous rules stay in force");
                st.failed = Some(now);
                false
            }
        }
    }

    fn install(&self, st: &mut State, config: AclConfig, seen: Vec<(PathBuf, Stamp)>) {
        for dup in &config.ignored_duplicates {
            tracing::warn!(
                access_key = %dup.access_key,
                kept_from = %dup.kept_from.display(),
                ignored_in = %dup.ignored_in.display(),
                "the accessKey is repeated in several ACL files; the first definition is used"
            );
        }
        st.seen = seen;
        st.failed = None;
        st.files = config.files.clone();
        let old = std::mem::take(&mut st.versions);
        st.versions = versions_of(&config);
        // A file without a dataVersion keeps the time it was first seen.
        for (path, v) in st.versions.iter_mut() {
            if !config.data_versions.contains_key(path) {
                if let Some(o) = old.get(path) {
                    *v = *o;
                }
            }
        }
        let rules = Arc::new(AclRules::new(config));
        match self.rules.write() {
            Ok(mut r) => *r = rules,
            Err(poisoned) => *poisoned.into_inner() = rules,
        }
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Edit `file` with `edit` (given the file's YAML mapping), bump its
    /// `dataVersion`, check the result loads, write it atomically and put
    /// the new rules in force.
    fn edit(
        &self,
        file: &Path,
        edit: impl FnOnce(&mut Mapping) -> Result<(), String>,
    ) -> Result<(), String> {
        let mut st = self.state.locked();
        let mut map = read_mapping(file)?;
        edit(&mut map)?;
        let version = map
            .get("dataVersion")
            .and_then(DataVersion::from_yaml)
            .unwrap_or_default()
            .next(now_ms());
        let mut entry = Mapping::new();
        entry.insert("counter".into(), version.counter.into());
        entry.insert("timestamp".into(), version.timestamp.into());
        map.insert(
            "dataVersion".into(),
            Value::Sequence(vec![Value::Mapping(entry)]),
        );
        let text = serde_yaml_ng::to_string(&Value::Mapping(map))
            .map_err(|e| format!("cannot write the ACL file: {e}"))?;
        // The loader's own check: what is written can be read back.
        super::config::AclFile::parse(&text, file).map_err(|e| match e {
            AclConfigError::Account { reason, .. } => reason,
            AclConfigError::GlobalWhiteAddress { reason, .. } => reason,
            other => other.to_string(),
        })?;
        write_atomically(file, text.as_bytes()).map_err(|e| {
            tracing::error!(file = %file.display(), error = %e, "cannot write the ACL file");
            format!("cannot write the ACL file: {e}")
        })?;
        let seen = self.scan();
        match self.location.load() {
            Ok(config) => {
                self.install(&mut st, config, seen);
                Ok(())
            }
            Err(e) => {
                tracing::warn!(error = %e, "ACL file written but the ACL files cannot be loaded; the previous rules stay in force");
                st.failed = Some(seen);
                Err(format!(
                    "the change was written but the ACL files cannot be loaded: {}",
                    startup_reason(&e)
                ))
            }
        }
    }

    /// UPDATE_AND_CREATE_ACL_CONFIG: create the account, or update it in
    /// the file it lives in (fields not given are kept, as
    /// `PlainPermissionManager.createAclAccessConfigMap`).
    ///
    /// # Errors
    /// The reason the input is refused or the file cannot be written
    /// (never containing the secret key); the file is then unchanged.
    pub fn update_account(&self, u: &AccountUpdate) -> Result<(), String> {
        let u = &AccountUpdate {
            access_key: u.access_key.trim().to_string(),
            ..u.clone()
        };
        check_update(u)?;
        let file = self
            .rules()
            .account(&u.access_key)
            .map(|a| a.source.clone())
            .unwrap_or_else(|| self.default_file());
        self.edit(&file, |map| {
            let accounts = accounts_of(map)?;
            let pos = accounts
                .iter()
                .position(|a| key_of(a) == Some(u.access_key.as_str()));
            let mut entry = match pos {
                Some(i) => match &accounts[i] {
                    Value::Mapping(m) => m.clone(),
                    _ => Mapping::new(),
                },
                None => Mapping::new(),
            };
            apply_update(&mut entry, u);
            let entry = Value::Mapping(entry);
            check_account(&entry)?;
            match pos {
                Some(i) => accounts[i] = entry,
                None => accounts.push(entry),
            }
            Ok(())
        })
    }

    /// DELETE_ACL_CONFIG: remove the account from the file it lives in.
    ///
    /// # Errors
    /// No such account, or the file cannot be written.
    pub fn delete_account(&self, access_key: &str) -> Result<(), String> {
        let access_key = access_key.trim();
        if access_key.is_empty() {
            return Err("accessKey is empty".into());
        }
        let Some(file) = self.rules().account(access_key).map(|a| a.source.clone()) else {
            return Err(format!("no account with accessKey={access_key}"));
        };
        self.edit(&file, |map| {
            let accounts = accounts_of(map)?;
            let before = accounts.len();
            accounts.retain(|a| key_of(a) != Some(access_key));
            if accounts.len() == before {
                return Err(format!(
                    "no account with accessKey={access_key} in its file"
                ));
            }
            Ok(())
        })
    }

    /// UPDATE_GLOBAL_WHITE_ADDRS_CONFIG: replace `globalWhiteRemoteAddresses`
    /// of `file` (one of the loaded ACL files; `None` or empty: the default
    /// file) with `addrs` (empty pieces dropped).
    ///
    /// # Errors
    /// A bad address pattern, a file that is not one of the broker's ACL
    /// files, or one that cannot be written.
    pub fn update_global_white(&self, addrs: &[String], file: Option<&str>) -> Result<(), String> {
        let addrs: Vec<&str> = addrs
            .iter()
            .map(|a| a.trim())
            .filter(|a| !a.is_empty())
            .collect();
        for a in &addrs {
            AddressPattern::parse(a).map_err(|e| format!("globalWhiteAddrs: {e}"))?;
        }
        let file = match file.map(str::trim).filter(|f| !f.is_empty()) {
            None => self.default_file(),
            Some(f) => {
                let f = PathBuf::from(f);
                if !self.files().contains(&f) && f != self.default_file() {
                    return Err(format!(
                        "aclFileFullPath {} is not one of the broker's ACL files",
                        f.display()
                    ));
                }
                f
            }
        };
        self.edit(&file, |map| {
            let list = addrs.iter().map(|a| Value::String(a.to_string())).collect();
            map.insert("globalWhiteRemoteAddresses".into(), Value::Sequence(list));
            Ok(())
        })
    }

    /// GET_BROKER_CLUSTER_ACL_INFO: the data versions of the loaded files.
    pub fn version_info(&self) -> VersionInfo {
        let st = self.state.locked();
        let default_version =
            st.versions
                .get(&self.default_file())
                .copied()
                .unwrap_or(DataVersion {
                    counter: 0,
                    timestamp: now_ms(),
                });
        let all = st
            .versions
            .iter()
            .map(|(p, v)| (p.display().to_string(), *v))
            .collect();
        VersionInfo {
            default_version,
            all,
        }
    }

    /// GET_BROKER_CLUSTER_ACL_CONFIG: `{"globalWhiteAddrs":[...],
    /// "plainAccessConfigs":[{...}]}` read from the loaded files as
    /// `PlainPermissionManager.getAllAclConfig` reads them (the first
    /// definition of each access key), secret keys included as in RocketMQ
    /// (only an admin account may ask).
    pub fn all_config_json(&self) -> serde_json::Value {
        let files = self.files();
        let mut white = Vec::new();
        let mut configs = Vec::new();
        let mut keys = std::collections::HashSet::new();
        for f in files {
            let Ok(map) = read_mapping(&f) else { continue };
            if let Some(Value::Sequence(list)) = map.get("globalWhiteRemoteAddresses") {
                white.extend(list.iter().filter_map(scalar_text));
            }
            let Some(Value::Sequence(accounts)) = map.get("accounts") else {
                continue;
            };
            for a in accounts {
                let Some(key) = a.get("accessKey").and_then(scalar_text) else {
                    continue;
                };
                if !keys.insert(key.clone()) {
                    continue;
                }
                let mut out = serde_json::Map::new();
                out.insert("accessKey".into(), key.into());
                for k in [
                    "secretKey",
                    "whiteRemoteAddress",
                    "defaultTopicPerm",
                    "defaultGroupPerm",
                ] {
                    if let Some(v) = a.get(k).and_then(scalar_text) {
                        out.insert(k.into(), v.into());
                    }
                }
                let admin = matches!(a.get("admin"), Some(Value::Bool(true)));
                out.insert("admin".into(), admin.into());
                for k in ["topicPerms", "groupPerms"] {
                    if let Some(Value::Sequence(list)) = a.get(k) {
                        let v: Vec<String> = list.iter().filter_map(scalar_text).collect();
                        out.insert(k.into(), v.into());
                    }
                }
                configs.push(serde_json::Value::Object(out));
            }
        }
        serde_json::json!({"globalWhiteAddrs": white, "plainAccessConfigs": configs})
    }
}

/// The files of `location` and their stamps, as [`AclLocation::load`] finds them.
pub(crate) fn scan(location: &AclLocation) -> Vec<(PathBuf, Stamp)> {
    let listed = match location {
        AclLocation::Home(home) => list_files(
            Some(&home.join(ACL_DIR)),
            Some(&home.join(DEFAULT_ACL_FILE)),
        ),
        AclLocation::Explicit(p) if p.is_dir() => list_files(Some(p), None),
        AclLocation::Explicit(p) => Ok(vec![p.clone()]),
    };
    match listed {
        Ok(files) => files
            .into_iter()
            .map(|f| {
                let s = stamp(&f);
                (f, s)
            })
            .collect(),
        // A folder that cannot be listed: a change that fails to load.
        Err(_) => vec![(PathBuf::new(), None)],
    }
}

fn versions_of(config: &AclConfig) -> BTreeMap<PathBuf, DataVersion> {
    let now = now_ms();
    config
        .files
        .iter()
        .map(|f| {
            let v = config.data_versions.get(f).copied().unwrap_or(DataVersion {
                counter: 0,
                timestamp: now,
            });
            (f.clone(), v)
        })
        .collect()
}

fn startup_reason(e: &AclStartupError) -> String {
    match e {
        AclStartupError::Config(AclConfigError::Account { reason, .. }) => reason.clone(),
        other => other.to_string(),
    }
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn key_of(account: &Value) -> Option<&str> {
    match account.get("accessKey")? {
        Value::String(s) => Some(s.as_str()),
        _ => None,
    }
}

/// The file's top-level mapping (a missing or empty file: an empty one).
fn read_mapping(file: &Path) -> Result<Mapping, String> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("cannot read the ACL file: {e}")),
    };
    let v: Value = serde_yaml_ng::from_str(&text)
        .map_err(|e| format!("the ACL file is not valid YAML: {e}"))?;
    let mut map = match v {
        Value::Null => return Ok(Mapping::new()),
        Value::Mapping(m) => m,
        _ => return Err("the ACL file is not a YAML mapping".into()),
    };
    keep_written_text(&text, &mut map)
        .map_err(|e| format!("the ACL file is not of the expected shape: {e}"))?;
    Ok(map)
}

/// The `accounts` list of `map`, created if absent or null.
fn accounts_of(map: &mut Mapping) -> Result<&mut Vec<Value>, String> {
    let slot = map
        .entry("accounts".into())
        .or_insert_with(|| Value::Sequence(Vec::new()));
    if slot.is_null() {
        *slot = Value::Sequence(Vec::new());
    }
    match slot {
        Value::Sequence(s) => Ok(s),
        _ => Err("the ACL file's accounts is not a list".into()),
    }
}

fn java_len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// `checkPlainAccessConfig` and `Permission.checkResourcePerms`, with
/// reasons that never quote the secret.
fn check_update(u: &AccountUpdate) -> Result<(), String> {
    let min = super::config::KEY_MIN_LENGTH_EXCLUSIVE;
    if java_len(u.access_key.trim()) <= min {
        return Err(format!(
            "accessKey={} is empty or not longer than {min} characters",
            u.access_key
        ));
    }
    match &u.secret_key {
        None => return Err("secretKey is missing".into()),
        Some(s) if java_len(s) <= min => {
            return Err(format!(
                "secretKey must be longer than {min} characters (it has {})",
                java_len(s)
            ))
        }
        Some(_) => {}
    }
    for (field, list) in [
        ("topicPerms", &u.topic_perms),
        ("groupPerms", &u.group_perms),
    ] {
        for entry in list.iter().flatten() {
            let pieces: Vec<&str> = entry.split('=').filter(|p| !p.is_empty()).collect();
            let [_, perm] = pieces[..] else {
                return Err(format!(
                    "{field}: {entry:?} is not 'Res=Perm'. For example: topicA=SUB"
                ));
            };
            if super::perm::Perm::parse(perm).is_none() {
                return Err(format!(
                    "{field}: {entry:?}: the permission must be one of PUB, SUB, PUB|SUB, SUB|PUB, DENY"
                ));
            }
        }
    }
    for (field, perm) in [
        ("defaultTopicPerm", &u.default_topic_perm),
        ("defaultGroupPerm", &u.default_group_perm),
    ] {
        if let Some(p) = perm.as_deref().filter(|p| !p.trim().is_empty()) {
            if super::perm::Perm::parse(p).is_none() {
                return Err(format!(
                    "{field}: {p:?} is not one of PUB, SUB, PUB|SUB, SUB|PUB, DENY"
                ));
            }
        }
    }
    if let Some(w) = &u.white_remote_address {
        AddressPattern::parse(w).map_err(|e| format!("whiteRemoteAddress: {e}"))?;
    }
    Ok(())
}

/// `createAclAccessConfigMap`: the fields given replace the entry's.
fn apply_update(entry: &mut Mapping, u: &AccountUpdate) {
    let mut set = |k: &str, v: Value| {
        entry.insert(Value::String(k.to_string()), v);
    };
    set("accessKey", u.access_key.trim().into());
    if let Some(s) = u.secret_key.as_deref().filter(|s| !s.is_empty()) {
        set("secretKey", s.into());
    }
    if let Some(w) = &u.white_remote_address {
        set("whiteRemoteAddress", w.as_str().into());
    }
    set("admin", u.admin.into());
    if let Some(p) = u.default_topic_perm.as_deref().filter(|p| !p.is_empty()) {
        set("defaultTopicPerm", p.into());
    }
    if let Some(p) = u.default_group_perm.as_deref().filter(|p| !p.is_empty()) {
        set("defaultGroupPerm", p.into());
    }
    let list = |v: &Vec<String>| Value::Sequence(v.iter().map(|s| s.as_str().into()).collect());
    if let Some(t) = &u.topic_perms {
        set("topicPerms", list(t));
    }
    if let Some(g) = &u.group_perms {
        set("groupPerms", list(g));
    }
}

/// Write `bytes` to `file` so that a crash leaves the old or the new
/// content: a temporary file beside it (`.NAME.tmp`, which no ACL folder
/// scan picks up), synced, renamed over `file`, then the folder synced. The
/// new file keeps the old one's permissions (owner-only when new). A
/// symlink is followed: the file it names is replaced, the link stays.
pub fn write_atomically(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    // A symlink stays one: the file it points to is replaced.
    let real;
    let file = if std::fs::symlink_metadata(file).is_ok_and(|m| m.file_type().is_symlink()) {
        real = std::fs::canonicalize(file)?;
        real.as_path()
    } else {
        file
    };
    let dir = file.parent().filter(|d| !d.as_os_str().is_empty());
    let dir = dir.unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = file
        .file_name()
        .ok_or_else(|| std::io::Error::other("the ACL file has no name"))?;
    let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let result = (|| {
        let mut f = opts.open(&tmp)?;
        if let Ok(m) = std::fs::metadata(file) {
            f.set_permissions(m.permissions())?;
        }
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, file)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Reload `acl` when its files change (see the [module docs](self)), every
/// `interval`, until `shutdown` turns true. The file checks run on a
/// blocking thread.
pub async fn watch_loop(
    acl: Arc<AclLive>,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(interval.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let a = acl.clone();
                let _ = tokio::task::spawn_blocking(move || a.reload_if_changed()).await;
            }
            _ = shutdown.changed() => break,
        }
        if *shutdown.borrow() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str =
        "accounts:\n  - accessKey: RocketMQ\n    secretKey: 12345678\n    defaultTopicPerm: PUB\n";

    fn live(dir: &Path) -> (AclLive, PathBuf) {
        let file = dir.join("conf/plain_acl.yml");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, ONE).unwrap();
        let loc = AclLocation::Home(dir.to_path_buf());
        let config = loc.load().unwrap();
        (AclLive::new(loc, config), file)
    }

    fn update(key: &str, secret: &str) -> AccountUpdate {
        AccountUpdate {
            access_key: key.into(),
            secret_key: Some(secret.into()),
            ..AccountUpdate::default()
        }
    }

    #[test]
    fn reload_swaps_good_files_and_keeps_rules_on_bad_ones() {
        let d = tempfile::tempdir().unwrap();
        let (live, file) = live(d.path());
        assert!(!live.reload_if_changed(), "nothing changed");
        assert!(
            live.with_rules(|r| r.account("RocketMQ").is_some()),
            "cached"
        );
        let old = live.rules();
        std::fs::write(
            &file,
            "accounts:\n  - accessKey: Another1\n    secretKey: 87654321\n",
        )
        .unwrap();
        assert!(live.reload_if_changed());
        assert!(live.rules().account("Another1").is_some());
        assert!(live.rules().account("RocketMQ").is_none());
        // The thread's cached rules follow the reload.
        assert!(live.with_rules(|r| r.account("Another1").is_some()));
        assert!(live.with_rules(|r| r.account("RocketMQ").is_none()));
        assert!(
            old.account("RocketMQ").is_some(),
            "a snapshot stays as it was"
        );
        std::fs::write(&file, "accounts: [\n").unwrap();
        assert!(!live.reload_if_changed());
        assert!(
            live.rules().account("Another1").is_some(),
            "bad file: old rules"
        );
        // Emptied (a write in progress): the rules stay; then written.
        std::fs::write(&file, "").unwrap();
        assert!(!live.reload_if_changed());
        assert!(live.rules().account("Another1").is_some());
        std::fs::write(&file, "accounts: []\n").unwrap();
        assert!(live.reload_if_changed());
        assert!(
            live.rules().account("Another1").is_none(),
            "written empty on purpose"
        );
        std::fs::write(
            &file,
            "accounts:\n  - accessKey: Another1\n    secretKey: 87654321\n",
        )
        .unwrap();
        assert!(live.reload_if_changed());
        // Removed: the rules stay too.
        std::fs::remove_file(&file).unwrap();
        assert!(!live.reload_if_changed());
        assert!(live.rules().account("Another1").is_some());
        std::fs::write(&file, ONE).unwrap();
        assert!(live.reload_if_changed());
        assert!(live.rules().account("RocketMQ").is_some());
    }

    #[test]
    fn admin_edits_persist_with_a_data_version_and_take_effect() {
        let d = tempfile::tempdir().unwrap();
        let (live, file) = live(d.path());
        let mut u = update("NewUser1", "newsecret");
        u.topic_perms = Some(vec!["topicA=PUB|SUB".into(), "topicB=DENY".into()]);
        u.default_group_perm = Some("SUB".into());
        live.update_account(&u).unwrap();
        let rules = live.rules();
        let a = rules.account("NewUser1").expect("created");
        assert_eq!(a.secret_key(), "newsecret");
        assert_eq!(a.source, file);
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains("dataVersion"), "{text}");
        assert!(text.contains("RocketMQ"), "the other account stays: {text}");
        assert_eq!(live.version_info().default_version.counter, 1);
        // Update keeps what is not given; a second change counts 2.
        let mut u2 = update("NewUser1", "othersecret");
        u2.admin = true;
        live.update_account(&u2).unwrap();
        // Blanks around the key name the same account.
        live.update_account(&AccountUpdate {
            access_key: " NewUser1 ".into(),
            ..u2.clone()
        })
        .unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(text.matches("NewUser1").count(), 1, "{text}");
        let rules = live.rules();
        let a = rules.account("NewUser1").unwrap();
        assert!(a.admin);
        assert_eq!(a.secret_key(), "othersecret");
        assert_eq!(a.resource_perms.len(), 2);
        assert_eq!(live.version_info().default_version.counter, 3);
        // Bad input: refused, file unchanged.
        let before = std::fs::read_to_string(&file).unwrap();
        for (bad, why) in [
            (update("short", "12345678"), "accessKey"),
            (
                update("NewUser2", "123456"),
                "secretKey must be longer than 6",
            ),
            (
                AccountUpdate {
                    default_topic_perm: Some("READ".into()),
                    ..update("NewUser2", "12345678")
                },
                "defaultTopicPerm",
            ),
            (
                AccountUpdate {
                    topic_perms: Some(vec!["topicA".into()]),
                    ..update("NewUser2", "12345678")
                },
                "Res=Perm",
            ),
            (
                AccountUpdate {
                    topic_perms: Some(vec!["topicA=WRITE".into()]),
                    ..update("NewUser2", "12345678")
                },
                "permission",
            ),
            (
                AccountUpdate {
                    white_remote_address: Some("300.1.1.1".into()),
                    ..update("NewUser2", "12345678")
                },
                "whiteRemoteAddress",
            ),
        ] {
            let e = live.update_account(&bad).expect_err(why);
            assert!(e.contains(why), "{e}");
            assert!(!e.contains("123456\"") && !e.contains("12345678"), "{e}");
        }
        assert_eq!(std::fs::read_to_string(&file).unwrap(), before);
        assert!(live.rules().account("NewUser2").is_none());
        // Delete.
        live.delete_account("NewUser1").unwrap();
        assert!(live.rules().account("NewUser1").is_none());
        assert!(live.delete_account("NewUser1").is_err());
        // Global white list.
        live.update_global_white(&["10.1.1.*".into(), "".into()], None)
            .unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains("10.1.1.*"), "{text}");
        assert!(live.update_global_white(&["10.1.1".into()], None).is_err());
        let e = live
            .update_global_white(&["10.1.1.*".into()], Some("/etc/passwd"))
            .unwrap_err();
        assert!(e.contains("not one of the broker's ACL files"), "{e}");
        let all = live.all_config_json();
        assert_eq!(all["globalWhiteAddrs"][0], "10.1.1.*");
        assert_eq!(all["plainAccessConfigs"][0]["accessKey"], "RocketMQ");
        assert_eq!(live.version_info().default_version.counter, 5);
        // The edits were seen: no reload of the broker's own writes.
        assert!(!live.reload_if_changed());
    }

    #[test]
    fn an_edit_keeps_the_other_accounts_as_written() {
        let d = tempfile::tempdir().unwrap();
        let (live, file) = live(d.path());
        std::fs::write(
            &file,
            "globalWhiteRemoteAddresses:\n  - 10.0.0.1\naccounts:\n  - accessKey: 00123456789\n    secretKey: 0012345678\n    defaultTopicPerm: PUB\n    topicPerms:\n      - 007=SUB\n  - accessKey: floaty1\n    secretKey: 1.50e30\n",
        )
        .unwrap();
        assert!(live.reload_if_changed());
        live.update_account(&update("NewUser1", "newsecret"))
            .unwrap();
        let rules = live.rules();
        let a = rules.account("00123456789").expect("kept as written");
        assert_eq!(a.secret_key(), "0012345678");
        assert!(a.resource_perms.contains_key("007"));
        assert_eq!(rules.account("floaty1").unwrap().secret_key(), "1.50e30");
        live.update_account(&update("00123456789", "0099999999"))
            .unwrap();
        assert_eq!(
            live.rules().account("00123456789").unwrap().secret_key(),
            "0099999999"
        );
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains("10.0.0.1"), "{text}");
    }

    #[cfg(unix)]
    #[test]
    fn a_symlinked_file_stays_a_symlink() {
        let d = tempfile::tempdir().unwrap();
        let real = d.path().join("real.yml");
        std::fs::write(&real, ONE).unwrap();
        let link = d.path().join("acl.yml");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let loc = AclLocation::Explicit(link.clone());
        let live = AclLive::new(loc.clone(), loc.load().unwrap());
        live.update_account(&update("NewUser1", "newsecret"))
            .unwrap();
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert!(std::fs::read_to_string(&real).unwrap().contains("NewUser1"));
        assert!(live.rules().account("NewUser1").is_some());
        assert!(!live.reload_if_changed());
    }

    #[test]
    fn accounts_are_changed_in_their_own_file() {
        let d = tempfile::tempdir().unwrap();
        let (live, default) = live(d.path());
        let other = d.path().join("conf/acl/team.yml");
        std::fs::create_dir_all(other.parent().unwrap()).unwrap();
        std::fs::write(
            &other,
            "accounts:\n  - accessKey: TeamUser\n    secretKey: teamsecret\n",
        )
        .unwrap();
        assert!(live.reload_if_changed());
        live.update_account(&update("TeamUser", "newteamsecret"))
            .unwrap();
        assert!(std::fs::read_to_string(&other)
            .unwrap()
            .contains("newteamsecret"));
        assert!(!std::fs::read_to_string(&default)
            .unwrap()
            .contains("TeamUser"));
        let info = live.version_info();
        assert_eq!(info.all[&other.display().to_string()].counter, 1);
        assert_eq!(info.default_version.counter, 0);
    }

    /// The request path's extra cost: taking the rules in force per request
    /// ([`AclLive::rules`]) next to the check itself. Run with
    /// `cargo test --release -p ferromq-server --lib hot_path_cost -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement, not a check"]
    fn hot_path_cost() {
        use crate::acl::{parse_request, sign};
        use crate::remoting::RemotingCommand;
        use std::time::Instant;
        let d = tempfile::tempdir().unwrap();
        let (live, _) = live(d.path());
        let live = Arc::new(live);
        let mut cmd = RemotingCommand::request(310)
            .with_ext("a", "producer")
            .with_ext("b", "topicA")
            .with_ext("c", "TBW102")
            .with_body(vec![b'x'; 256]);
        cmd.ext_fields.insert("AccessKey", "RocketMQ");
        let content = sign::combine_request_content(&cmd.ext_fields.0, &cmd.body);
        cmd.ext_fields
            .insert("Signature", sign::sign(&content, "12345678"));
        let peer = "127.0.0.1:1".parse().ok();
        let n = 200_000;
        let held = live.rules();
        for threads in [1usize, 2] {
            let run = |with_live: bool| {
                let t0 = Instant::now();
                std::thread::scope(|s| {
                    for _ in 0..threads {
                        s.spawn(|| {
                            for _ in 0..n {
                                let parsed = parse_request(&cmd, peer).unwrap();
                                let r = if with_live {
                                    live.with_rules(|r| r.check(&parsed.as_request()))
                                } else {
                                    held.check(&parsed.as_request())
                                };
                                assert!(r.is_ok());
                            }
                        });
                    }
                });
                t0.elapsed().as_nanos() as f64 / (n * threads) as f64
            };
            let (mut a, mut b) = (Vec::new(), Vec::new());
            for _ in 0..5 {
                a.push(run(false));
                b.push(run(true));
            }
            a.sort_by(f64::total_cmp);
            b.sort_by(f64::total_cmp);
            let t0 = Instant::now();
            for _ in 0..n {
                live.with_rules(|r| {
                    std::hint::black_box(r);
                });
            }
            let take = t0.elapsed().as_nanos() as f64 / n as f64;
            println!(
                "threads {threads}: check with the rules held {:.0} ns, taking them per request {:.0} ns (medians of 5); with_rules() alone {take:.1} ns",
                a[2], b[2]
            );
        }
    }
}
