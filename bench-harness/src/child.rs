//! Child processes of the harness: a guard that kills and reaps a child
//! (its own process group, stdout read line by line), finding the ferromq
//! binaries, reading the port a child listens on.

use std::io::{BufRead as _, BufReader};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::error::{BenchError, Result};

/// How long a child may take to print its `listening on` line.
pub const START_DEADLINE: Duration = Duration::from_secs(30);
/// How long a child has between SIGTERM and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(5);
/// A child process (its own process group) killed and reaped on drop.
pub struct ChildGuard {
    child: Child,
    name: String,
    lines: mpsc::Receiver<String>,
}

impl ChildGuard {
    /// Start `cmd` with stdout piped (read line by line on a thread).
    ///
    /// # Errors
    ///
    /// When it cannot be spawned.
    pub fn spawn(name: &str, cmd: Command) -> Result<ChildGuard> {
        Self::spawn_to(name, cmd, Stdio::inherit())
    }

    /// [`ChildGuard::spawn`] with stderr (the child's log) appended to the
    /// file `log`.
    ///
    /// # Errors
    ///
    /// When the log cannot be opened or the child cannot be spawned.
    pub fn spawn_logged(name: &str, cmd: Command, log: &Path) -> Result<ChildGuard> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| BenchError::io(log.display(), e))?;
        Self::spawn_to(name, cmd, Stdio::from(f))
    }

    fn spawn_to(name: &str, mut cmd: Command, stderr: Stdio) -> Result<ChildGuard> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .process_group(0);
        let set_by_caller = cmd.get_envs().any(|(k, _)| k == "RUST_LOG");
        if !set_by_caller && std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "warn");
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| BenchError::io(format!("starting {name}"), e))?;
        let out = child
            .stdout
            .take()
            .ok_or_else(|| BenchError::new(format!("{name} has no stdout")))?;
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name(format!("{name}-out"))
            .spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(l) = line else { break };
                    if tx.send(l).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| BenchError::io("spawning a reader thread", e))?;
        Ok(ChildGuard {
            child,
            name: name.to_string(),
            lines: rx,
        })
    }

    /// Wait (bounded) for a line containing `needle`; return it.
    ///
    /// # Errors
    ///
    /// When the child exits or stays silent past the deadline.
    pub fn wait_line(&mut self, needle: &str, deadline: Duration) -> Result<String> {
        let until = Instant::now() + deadline;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return Ok(l),
                Ok(_) => {}
                Err(_) => {
                    return Err(BenchError::new(format!(
                        "{} printed no `{needle}` line within {deadline:?}",
                        self.name
                    )))
                }
            }
        }
    }

    /// Wait (bounded) for the `listening on HOST:PORT` line; return the port.
    ///
    /// # Errors
    ///
    /// When the child exits or stays silent past the deadline.
    pub fn wait_port(&mut self, deadline: Duration) -> Result<u16> {
        let until = Instant::now() + deadline;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    if let Some(p) = listening_port(&l) {
                        return Ok(p);
                    }
                }
                Err(_) => {
                    let status = self.child.try_wait().ok().flatten();
                    return Err(BenchError::new(format!(
                        "{} printed no `listening on` line within {deadline:?} (exit status {status:?})",
                        self.name
                    )));
                }
            }
        }
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL. Returns true when it left on SIGTERM.
    pub fn stop(&mut self, grace: Duration) -> bool {
        if let Ok(Some(_)) = self.child.try_wait() {
            return true;
        }
        let pid = i32::try_from(self.child.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw);
        if let Some(pid) = pid {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let until = Instant::now() + grace;
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }
}

impl ChildGuard {
    /// SIGKILL the child and reap it (no grace: a crash).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The port in a `... listening on HOST:PORT ...` line.
pub fn listening_port(line: &str) -> Option<u16> {
    let after = line.split("listening on ").nth(1)?;
    let addr = after.split_whitespace().next()?;
    addr.rsplit(':').next()?.parse().ok()
}

/// Where `name` is: `bin_dir`, else next to this executable (and its parent,
/// for test executables in `deps/`), else `$PATH`.
///
/// # Errors
///
/// When it is nowhere.
pub fn find_binary(bin_dir: Option<&Path>, name: &str) -> Result<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(d) = bin_dir {
        dirs.push(d.to_path_buf());
    } else {
        if let Ok(exe) = std::env::current_exe() {
            if let Some(d) = exe.parent() {
                dirs.push(d.to_path_buf());
                if let Some(p) = d.parent() {
                    dirs.push(p.to_path_buf());
                }
            }
        }
        if let Some(path) = std::env::var_os("PATH") {
            dirs.extend(std::env::split_paths(&path));
        }
    }
    dirs.iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            BenchError::new(format!(
                "cannot find `{name}` (looked in {}); build it with `cargo build --release -p ferromq-server --bins` or pass --bin-dir",
                dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
            ))
        })
}

/// A child (started by the caller, e.g. `recover`'s writer) killed and reaped
/// when dropped, whatever happened.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Write `text` to `path`; the error names the path.
///
/// # Errors
///
/// When the file cannot be written.
pub fn write_file(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| BenchError::io(path.display(), e))
}

/// Start a name server from `bin` on a loopback port the system picks
/// (`namesrv.properties` in `dir`, created if missing); returns it with its port.
///
/// # Errors
///
/// When the folder or file cannot be written, or the name server does not
/// start listening within [`START_DEADLINE`].
pub fn start_namesrv(bin: &Path, dir: &Path) -> Result<(ChildGuard, u16)> {
    std::fs::create_dir_all(dir).map_err(|e| BenchError::io(dir.display(), e))?;
    let ns_cfg = dir.join("namesrv.properties");
    write_file(&ns_cfg, "listenPort=0\nbindAddress=127.0.0.1\n")?;
    let mut cmd = Command::new(bin);
    cmd.arg("-c").arg(&ns_cfg);
    let mut namesrv = ChildGuard::spawn("ferromq-namesrv", cmd)?;
    let port = namesrv.wait_port(START_DEADLINE)?;
    Ok((namesrv, port))
}

/// Start a broker (`name` in messages) from `bin` with the properties file
/// `cfg`, bound to loopback and registered with the name server at
/// `ns_port`; returns it with its port.
///
/// # Errors
///
/// When it cannot be spawned or does not listen within [`START_DEADLINE`].
pub fn start_broker(bin: &Path, name: &str, cfg: &Path, ns_port: u16) -> Result<(ChildGuard, u16)> {
    let mut cmd = Command::new(bin);
    cmd.arg("-c")
        .arg(cfg)
        .arg("--bind-address")
        .arg("127.0.0.1")
        .arg("-n")
        .arg(format!("127.0.0.1:{ns_port}"));
    let mut broker = ChildGuard::spawn(name, cmd)?;
    let port = broker.wait_port(START_DEADLINE)?;
    Ok((broker, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_line_gives_the_port() {
        assert_eq!(
            listening_port("ferromq-broker listening on 127.0.0.1:4242 as b"),
            Some(4242)
        );
        assert_eq!(listening_port("nothing"), None);
    }
}
