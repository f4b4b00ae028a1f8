//! Where the broker finds its ACL files, and loading them at startup.
//!
//! As RocketMQ 4.9.7's `PlainPermissionManager`: the home is the
//! `ROCKETMQ_HOME` environment variable (RocketMQ first looks at the JVM
//! system property `rocketmq.home.dir`, which ferromq has no equivalent
//! of); the ACL folder is `$ROCKETMQ_HOME/conf/acl` (every `*.yml`/`*.yaml`
//! in it, recursively) and the default file `$ROCKETMQ_HOME/conf/plain_acl.yml`
//! (RocketMQ's system property `rocketmq.acl.plain.file` moves it; ferromq's
//! broker key `aclFilePath` replaces both, see [`AclLocation`]).
//!
//! Unlike RocketMQ, which starts with an empty rule set when it finds no
//! file, a broker with `aclEnable=true` and no ACL file does not start
//! ([`AclStartupError`]): a secured config never becomes an open broker, and
//! an empty rule set refusing every request is as likely a typo in the path.
//! An empty file (no accounts) is loaded as written: it refuses everything
//! not white listed.

use std::path::{Path, PathBuf};

use super::config::{AclConfig, AclConfigError};
use super::live::AclLive;

/// The environment variable naming RocketMQ's home (`MixAll.ROCKETMQ_HOME_ENV`).
pub const ROCKETMQ_HOME_ENV: &str = "ROCKETMQ_HOME";
/// The ACL folder under the home (`conf/acl`).
pub const ACL_DIR: &str = "conf/acl";
/// The default ACL file under the home (`conf/plain_acl.yml`).
pub const DEFAULT_ACL_FILE: &str = "conf/plain_acl.yml";

/// Where the ACL rules are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AclLocation {
    /// RocketMQ's places under a home: the folder `home/conf/acl` and the
    /// file `home/conf/plain_acl.yml`.
    Home(PathBuf),
    /// The ferromq key `aclFilePath`: this file alone, or, if it is a
    /// folder, every `*.yml`/`*.yaml` in it (recursively).
    Explicit(PathBuf),
}

/// Why the broker cannot load its ACL rules with `aclEnable=true`.
#[derive(Debug, thiserror::Error)]
pub enum AclStartupError {
    /// Neither `aclFilePath` nor `ROCKETMQ_HOME` says where the files are.
    #[error(
        "aclEnable=true but no ACL file: set the ROCKETMQ_HOME environment variable \
         (for $ROCKETMQ_HOME/{DEFAULT_ACL_FILE} and $ROCKETMQ_HOME/{ACL_DIR}/) or the \
         broker key aclFilePath"
    )]
    NoLocation,
    /// The places looked at hold no ACL file.
    #[error("aclEnable=true but no ACL file: {} does not exist and {} holds no *.yml file", file.display(), dir.display())]
    NotFound {
        /// The default file looked for.
        file: PathBuf,
        /// The folder looked in.
        dir: PathBuf,
    },
    /// `aclFilePath` names nothing.
    #[error("aclEnable=true but the ACL file {} (aclFilePath) does not exist", .0.display())]
    ExplicitNotFound(PathBuf),
    /// `aclFilePath` is a folder with no ACL file in it.
    #[error("aclEnable=true but the ACL folder {} (aclFilePath) holds no *.yml file", .0.display())]
    ExplicitFolderEmpty(PathBuf),
    /// A file cannot be read or is malformed (the error names the file).
    #[error("aclEnable=true but the ACL rules cannot be loaded: {0}")]
    Config(#[from] AclConfigError),
}

impl AclLocation {
    /// The location from `aclFilePath` (`explicit`) or else the home
    /// (`ROCKETMQ_HOME`); `None` when there is neither (an empty value
    /// counts as absent).
    pub fn resolve(explicit: Option<&Path>, home: Option<&Path>) -> Option<AclLocation> {
        let set = |p: Option<&Path>| {
            p.filter(|p| !p.as_os_str().is_empty())
                .map(Path::to_path_buf)
        };
        set(explicit)
            .map(AclLocation::Explicit)
            .or_else(|| set(home).map(AclLocation::Home))
    }

    /// [`AclLocation::resolve`] with the home from the `ROCKETMQ_HOME`
    /// environment variable.
    pub fn from_env(explicit: Option<&Path>) -> Option<AclLocation> {
        let home = std::env::var_os(ROCKETMQ_HOME_ENV).map(PathBuf::from);
        AclLocation::resolve(explicit, home.as_deref())
    }

    /// Loads and merges the files of this location.
    ///
    /// # Errors
    /// [`AclStartupError`] when no file is found or one cannot be read or
    /// parsed.
    pub fn load(&self) -> Result<AclConfig, AclStartupError> {
        match self {
            AclLocation::Home(home) => {
                let dir = home.join(ACL_DIR);
                let file = home.join(DEFAULT_ACL_FILE);
                let config = AclConfig::load(Some(&dir), Some(&file))?;
                if config.files.is_empty() {
                    return Err(AclStartupError::NotFound { file, dir });
                }
                Ok(config)
            }
            AclLocation::Explicit(path) if path.is_dir() => {
                let config = AclConfig::load(Some(path), None)?;
                if config.files.is_empty() {
                    return Err(AclStartupError::ExplicitFolderEmpty(path.clone()));
                }
                Ok(config)
            }
            AclLocation::Explicit(path) => {
                if !path.exists() {
                    return Err(AclStartupError::ExplicitNotFound(path.clone()));
                }
                let file = super::config::AclFile::load(path)?;
                Ok(AclConfig::merge([(path.clone(), file)]))
            }
        }
    }
}

/// The broker's rules at startup: `None` when `acl_enable` is false (the
/// files are not read), else the rules of [`AclLocation::from_env`], logging
/// the files read and the access keys defined twice, ready to be reloaded
/// and edited ([`AclLive`]).
///
/// # Errors
/// [`AclStartupError`] with `acl_enable`: no location, no file, or a file
/// that cannot be read or parsed.
pub fn load_broker_rules(
    acl_enable: bool,
    acl_file_path: Option<&Path>,
) -> Result<Option<AclLive>, AclStartupError> {
    if !acl_enable {
        return Ok(None);
    }
    let location = AclLocation::from_env(acl_file_path).ok_or(AclStartupError::NoLocation)?;
    // The files as they are before they are read: a change meanwhile is
    // seen by the first look for changes.
    let seen = super::live::scan(&location);
    let config = location.load()?;
    for dup in &config.ignored_duplicates {
        tracing::warn!(
            access_key = %dup.access_key,
            kept_from = %dup.kept_from.display(),
            ignored_in = %dup.ignored_in.display(),
            "the accessKey is repeated in several ACL files; the first definition is used"
        );
    }
    let files: Vec<String> = config
        .files
        .iter()
        .map(|f| f.display().to_string())
        .collect();
    tracing::info!(
        files = ?files,
        accounts = config.accounts.len(),
        "ACL rules loaded"
    );
    Ok(Some(AclLive::with_seen(location, config, seen)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE_ACCOUNT: &str = "accounts:\n  - accessKey: RocketMQ\n    secretKey: 12345678\n";

    #[test]
    fn the_explicit_path_wins_over_the_home_and_empty_values_are_absent() {
        let e = Path::new("/etc/acl.yml");
        let h = Path::new("/opt/rocketmq");
        assert_eq!(
            AclLocation::resolve(Some(e), Some(h)),
            Some(AclLocation::Explicit(e.into()))
        );
        assert_eq!(
            AclLocation::resolve(Some(Path::new("")), Some(h)),
            Some(AclLocation::Home(h.into()))
        );
        assert_eq!(AclLocation::resolve(None, Some(Path::new(""))), None);
    }

    #[test]
    fn home_reads_the_folder_and_the_default_file_and_refuses_neither() {
        let home = tempfile::tempdir().unwrap();
        let loc = AclLocation::Home(home.path().into());
        let err = loc.load().unwrap_err().to_string();
        assert!(err.contains("conf/plain_acl.yml does not exist"), "{err}");
        assert!(err.contains("conf/acl holds no *.yml file"), "{err}");
        std::fs::create_dir_all(home.path().join(ACL_DIR)).unwrap();
        std::fs::write(home.path().join("conf/acl/a.yml"), ONE_ACCOUNT).unwrap();
        let config = loc.load().unwrap();
        assert_eq!(config.files.len(), 1);
        std::fs::write(home.path().join(DEFAULT_ACL_FILE), "accounts: [\n").unwrap();
        let err = loc.load().unwrap_err().to_string();
        assert!(err.contains("plain_acl.yml: malformed ACL YAML"), "{err}");
    }

    #[test]
    fn explicit_file_or_folder() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("mine.yml");
        let err = AclLocation::Explicit(file.clone()).load().unwrap_err();
        assert!(matches!(err, AclStartupError::ExplicitNotFound(_)), "{err}");
        let err = AclLocation::Explicit(dir.path().into()).load().unwrap_err();
        assert!(
            matches!(err, AclStartupError::ExplicitFolderEmpty(_)),
            "{err}"
        );
        std::fs::write(&file, ONE_ACCOUNT).unwrap();
        let config = AclLocation::Explicit(file.clone()).load().unwrap();
        assert!(config.accounts.contains_key("RocketMQ"));
        let config = AclLocation::Explicit(dir.path().into()).load().unwrap();
        assert_eq!(config.files, vec![file]);
    }

    #[test]
    fn disabled_reads_nothing() {
        let missing = Path::new("/nonexistent/ferromq/acl.yml");
        assert!(load_broker_rules(false, Some(missing)).unwrap().is_none());
        assert!(load_broker_rules(true, Some(missing)).is_err());
    }
}
