//! The harness's error type: a message that says what was being done.

use std::fmt;

/// Result alias used throughout the harness.
pub type Result<T, E = BenchError> = std::result::Result<T, E>;

/// A failure of the harness, with enough context to act on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchError {
    message: String,
}

impl BenchError {
    /// An error with a plain message.
    pub fn new(message: impl Into<String>) -> Self {
        BenchError {
            message: message.into(),
        }
    }

    /// An I/O error, prefixed with what was being done (path included).
    pub fn io(context: impl fmt::Display, source: std::io::Error) -> Self {
        BenchError::new(format!("{context}: {source}"))
    }

    /// The message, without any prefix.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for BenchError {}
