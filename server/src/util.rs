//! Small shared pieces: logging setup, signals, atomic file writes, CRC.

use std::io::Write;
use std::path::Path;

/// Install a `tracing` subscriber writing to stderr, filtered by `RUST_LOG`
/// (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

/// Resolve when SIGTERM or Ctrl-C (SIGINT) arrives.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Write `bytes` to `path` atomically: write and sync `path.tmp`, copy the old
/// file to `path.bak`, rename the temporary over `path`, sync the directory.
///
/// # Errors
/// The first I/O error.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // A temporary name of this write's own: two writers of the same file never
    // truncate or rename each other's half-written copy.
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!(
        "{}.{}.{seq}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or(""),
        std::process::id()
    ));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    if path.exists() {
        let bak = path.with_extension(format!(
            "{}.bak",
            path.extension().and_then(|e| e.to_str()).unwrap_or("")
        ));
        let _ = std::fs::copy(path, bak);
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Read a JSON config file written by [`atomic_write`], falling back to its
/// `.bak` copy when the file is missing or damaged. `Ok(None)` when neither
/// exists (or both are empty); an error when both are damaged, naming the file.
pub fn read_with_backup<T>(
    path: &Path,
    what: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> std::io::Result<Option<T>> {
    let mut bak = path.as_os_str().to_owned();
    bak.push(".bak");
    let bak = std::path::PathBuf::from(bak);
    let mut last_err = None;
    for p in [path, bak.as_path()] {
        match std::fs::read_to_string(p) {
            Ok(text) if text.trim().is_empty() => {}
            Ok(text) => match parse(&text) {
                Ok(v) => {
                    if p != path && path.exists() {
                        // Keep the damaged file aside, so that the next write
                        // does not copy it over the good backup.
                        let mut aside = path.as_os_str().to_owned();
                        aside.push(".damaged");
                        let _ = std::fs::rename(path, &aside);
                        tracing::warn!(path = %p.display(), "loaded the {what} file from its backup");
                    }
                    return Ok(Some(v));
                }
                Err(e) => {
                    tracing::error!(path = %p.display(), error = %e, "damaged {what} file");
                    last_err = Some(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{}: {e}", p.display()),
                    ));
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    match last_err {
        Some(e) => Err(e),
        None => Ok(None),
    }
}

/// RocketMQ's `UtilAll.crc32`: CRC-32/IEEE masked to 31 bits.
pub fn crc32_masked(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes) & 0x7FFF_FFFF
}

/// Current time in ms since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Raise the soft open-file limit to the hard limit and log both: each
/// connection and each store file takes a descriptor, and the usual soft
/// limit of 1024 is reached by a thousand idle clients. Call once at start,
/// after [`init_logging`].
pub fn raise_fd_limit() {
    match ferromq_engine::sys::raise_nofile_limit() {
        Ok(l) if l.soft_now < 4096 => tracing::warn!(
            soft_before = l.soft_before,
            soft = l.soft_now,
            hard = l.hard,
            "open file limit (RLIMIT_NOFILE) is low: raise the hard limit for many connections"
        ),
        Ok(l) => tracing::info!(
            soft_before = l.soft_before,
            soft = l.soft_now,
            hard = l.hard,
            "open file limit (RLIMIT_NOFILE)"
        ),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open file limit (RLIMIT_NOFILE)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_keeps_backup() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("config").join("x.json");
        atomic_write(&p, b"one").unwrap();
        atomic_write(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read(p.with_extension("json.bak")).unwrap(), b"one");
        assert!(!p.with_extension("json.tmp").exists());
    }

    #[test]
    fn concurrent_writers_of_one_file_neither_fail_nor_tear_it() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("groups.json");
        let writers: Vec<_> = (0..8)
            .map(|t| {
                let p = p.clone();
                std::thread::spawn(move || {
                    for i in 0..20 {
                        let body = format!(
                            "{{\"writer\":{t},\"n\":{i},\"pad\":\"{}\"}}",
                            "x".repeat(4096)
                        );
                        atomic_write(&p, body.as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(
            text.starts_with("{\"writer\":") && text.ends_with("\"}"),
            "torn: {}",
            &text[..40]
        );
        let left: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(left.is_empty(), "temporary files left: {left:?}");
    }
}
