//! The engine's one error type.
//!
//! I/O failures, corruption, bad configuration, illegal messages, a full disk
//! and a fenced store are distinct variants so that callers can react to each.

use std::path::PathBuf;
use std::sync::Arc;

/// Result alias used throughout the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the store. New variants may come: match
/// with a wildcard arm.
#[derive(Debug, thiserror::Error, Clone)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O call failed.
    #[error("I/O error {context}: {source}")]
    Io {
        /// What the store was doing, including the path.
        context: String,
        /// The underlying error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// Bytes on disk do not form what they should.
    #[error("corruption in {path} at offset {offset}: {reason}")]
    Corruption {
        /// The damaged file.
        path: PathBuf,
        /// Byte offset inside that file.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A configuration key has a value the store cannot use.
    #[error("bad config value for `{key}`: `{value}` (expected {expected})")]
    Config {
        /// The key, as spelled in the properties file.
        key: String,
        /// The value as given (trimmed).
        value: String,
        /// What would have been accepted.
        expected: String,
    },
    /// The message cannot be stored as given; nothing was written.
    #[error("illegal message: {0}")]
    IllegalMessage(String),
    /// The topic does not exist and auto-creation is off.
    #[error("topic `{0}` does not exist and autoCreateTopicEnable is false")]
    TopicNotExist(String),
    /// The disk is too full to accept writes.
    #[error("disk full: {0}")]
    DiskFull(String),
    /// A durability operation (sync, write) failed earlier; the store refuses
    /// further writes and reports the first cause.
    #[error("store is fenced after an earlier failure: {0}")]
    Fenced(String),
    /// The store directory is locked by another process (or another handle).
    #[error("store directory {0} is locked by another process")]
    Locked(PathBuf),
    /// The store is too busy to take the message now (no transient-pool buffer
    /// free); nothing was written. Brokers answer SYSTEM_BUSY.
    #[error("store busy: {0}")]
    Busy(String),
    /// The store has been shut down.
    #[error("store is shut down")]
    ShutDown,
    /// The operation is not allowed in the store's role (for example a put on a slave).
    #[error("wrong role: {0}")]
    WrongRole(String),
    /// An offset given to the store is outside the log or not where a record
    /// starts (for example a commitlog truncation inside a record); nothing
    /// was changed.
    #[error("invalid offset: {0}")]
    InvalidOffset(String),
}

impl Error {
    /// Wrap an [`std::io::Error`] with a description of what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source: Arc::new(source),
        }
    }

    /// Build a [`Error::Config`].
    pub fn config(
        key: impl Into<String>,
        value: impl Into<String>,
        expected: impl Into<String>,
    ) -> Self {
        Error::Config {
            key: key.into(),
            value: value.into(),
            expected: expected.into(),
        }
    }

    /// Build a [`Error::Corruption`].
    pub fn corruption(path: impl Into<PathBuf>, offset: u64, reason: impl Into<String>) -> Self {
        Error::Corruption {
            path: path.into(),
            offset,
            reason: reason.into(),
        }
    }

    /// True when the underlying OS error is "no space left on device".
    pub fn is_no_space(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.raw_os_error() == Some(libc::ENOSPC))
            || matches!(self, Error::DiskFull(_))
    }
}
