//! Store errors as answers: the response code RocketMQ gives each kind of
//! failure, and a remark that never shows a server path.

use std::time::Duration;

use ferromq_engine::Error as StoreError;

use crate::remoting::{response, RemotingCommand};

/// Map an engine error to a response code, as RocketMQ maps `PutMessageStatus`.
pub fn store_error_code(e: &StoreError) -> i32 {
    match e {
        StoreError::IllegalMessage(_) => response::MESSAGE_ILLEGAL,
        StoreError::TopicNotExist(_) => response::TOPIC_NOT_EXIST,
        StoreError::DiskFull(_)
        | StoreError::ShutDown
        | StoreError::Fenced(_)
        | StoreError::WrongRole(_) => response::SERVICE_NOT_AVAILABLE,
        StoreError::Busy(_) => response::SYSTEM_BUSY,
        StoreError::Io { .. }
        | StoreError::Corruption { .. }
        | StoreError::Config { .. }
        | StoreError::Locked(_) => response::SYSTEM_ERROR,
        _ => response::SYSTEM_ERROR,
    }
}

/// A store error as a response: [`store_error_code`] and [`store_error_remark`].
pub fn store_error_response(e: &StoreError) -> RemotingCommand {
    RemotingCommand::error(store_error_code(e), store_error_remark(e))
}

/// The WARN lines of [`store_error_remark`]: one per kind of error per 10 s
/// (a damaged file read by every pull would otherwise log a line per request),
/// with the count suppressed since the last one.
static STORE_ERROR_WARN: crate::warn_limit::WarnLimiter =
    crate::warn_limit::WarnLimiter::new(Duration::from_secs(10));

/// Keys of [`STORE_ERROR_WARN`], one per kind of error.
const WARN_IO: u64 = 1;
const WARN_CORRUPTION: u64 = 2;
const WARN_CONFIG: u64 = 3;
const WARN_OTHER: u64 = 4;

/// The remark a client gets for a store error: it names the problem but never
/// a server path (I/O and corruption errors carry file paths; those stay in
/// the broker's log, which gets the full error here, rate-limited per kind of
/// error).
pub fn store_error_remark(e: &StoreError) -> String {
    match e {
        StoreError::Io { source, .. } => {
            if let Some(suppressed) = STORE_ERROR_WARN.check_key(WARN_IO) {
                tracing::warn!(error = %e, suppressed, "store I/O error; the client is told without the path");
            }
            // The OS error alone: a custom error's message might hold a path.
            let what = match source.raw_os_error() {
                Some(code) => std::io::Error::from_raw_os_error(code).to_string(),
                None => source.kind().to_string(),
            };
            format!("store I/O error: {what} (details in the broker log)")
        }
        StoreError::Corruption {
            path,
            offset,
            reason,
        } => {
            if let Some(suppressed) = STORE_ERROR_WARN.check_key(WARN_CORRUPTION) {
                tracing::warn!(error = %e, suppressed, "damaged store data; the client is told without the path");
            }
            // The file's name (e.g. a commitlog file) but not where it lives; a
            // reason that quotes a path is left out.
            let file = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let reason = if quotes_a_path(reason) {
                "details in the broker log"
            } else {
                reason.as_str()
            };
            format!("corruption in store file {file} at offset {offset}: {reason}")
        }
        StoreError::Config { key, .. } => {
            if let Some(suppressed) = STORE_ERROR_WARN.check_key(WARN_CONFIG) {
                tracing::warn!(error = %e, suppressed, "store configuration error answered to a client");
            }
            format!("bad store configuration value for `{key}` (details in the broker log)")
        }
        StoreError::Locked(_) => "the store directory is locked by another process".into(),
        StoreError::Fenced(_) => {
            // The engine logged the cause (with its path) when it fenced.
            "store is fenced after an earlier failure of a durable write (details in the broker log)"
                .into()
        }
        StoreError::IllegalMessage(_)
        | StoreError::TopicNotExist(_)
        | StoreError::DiskFull(_)
        | StoreError::Busy(_)
        | StoreError::ShutDown
        | StoreError::WrongRole(_) => e.to_string(),
        _ => {
            if let Some(suppressed) = STORE_ERROR_WARN.check_key(WARN_OTHER) {
                tracing::warn!(error = %e, suppressed, "store error answered to a client");
            }
            "store error (details in the broker log)".into()
        }
    }
}

/// True when `s` has a word that starts with `/` (an absolute path).
fn quotes_a_path(s: &str) -> bool {
    s.split(|c: char| c.is_whitespace() || "()[]{}`'\"=:,;".contains(c))
        .any(|w| w.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remarks_carry_no_server_paths() {
        let io = StoreError::io(
            "creating /srv/store/consumequeue/T/0/00000000000000000000",
            std::io::Error::from_raw_os_error(libc_enospc()),
        );
        let r = store_error_remark(&io);
        assert!(!r.contains("/srv"), "{r}");
        assert!(r.contains("No space left"), "{r}");
        let custom = StoreError::io("x", std::io::Error::other("cannot open /srv/store/a"));
        assert!(!store_error_remark(&custom).contains("/srv"));
        let c = StoreError::corruption(
            "/srv/store/commitlog/00000000000000000000",
            42,
            "body CRC mismatch",
        );
        let r = store_error_remark(&c);
        assert!(!r.contains("/srv"), "{r}");
        assert!(
            r.contains("00000000000000000000") && r.contains("CRC"),
            "{r}"
        );
        let c = StoreError::corruption("/srv/a", 0, "re-reading: I/O error reading /srv/a: x");
        assert!(!store_error_remark(&c).contains("/srv"));
        let c = StoreError::corruption("/srv/a", 0, "I/O error (os error 5)");
        assert!(store_error_remark(&c).ends_with("I/O error (os error 5)"));
        let f = StoreError::Fenced("commitlog flush failed: I/O error syncing /srv/store/x".into());
        assert!(!store_error_remark(&f).contains("/srv"));
        assert!(!store_error_remark(&StoreError::Locked("/srv/store".into())).contains("/srv"));
        let r = store_error_response(&StoreError::IllegalMessage("body too big".into()));
        assert_eq!(r.code, response::MESSAGE_ILLEGAL);
        assert_eq!(r.remark.as_deref(), Some("illegal message: body too big"));
    }

    /// ENOSPC on Linux.
    fn libc_enospc() -> i32 {
        28
    }
}
