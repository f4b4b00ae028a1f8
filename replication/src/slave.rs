//! The slave side: follow a master, append what it streams at exactly the
//! offset it was streamed for, report progress, reconnect by itself.

use ferromq_engine::sync::LockExt;
use std::io::{BufReader, Read};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ferromq_engine::MessageStore;

use crate::autoswitch::{self, EpochCache, MasterView};
use crate::frame::{read_frame_header, write_report, FRAME_HEADER_LEN};
use crate::tls;
use crate::{HaConfig, HaError};

/// What a slave is doing, for stats and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaveStatus {
    /// Connected to the master now.
    pub connected: bool,
    /// Connections made so far.
    pub connections: u64,
    /// Frames applied.
    pub frames_applied: u64,
    /// Connections dropped because the master sent something wrong.
    pub protocol_errors: u64,
    /// The last error, if any.
    pub last_error: Option<String>,
    /// Epoch mode: epoch handshakes completed (the master answered and the
    /// log was reconciled with its epochs).
    pub epoch_handshakes: u64,
    /// Epoch mode: truncations of a diverged tail so far.
    pub truncations: u64,
    /// Epoch mode: the offset the log was last truncated to.
    pub last_truncated_to: Option<u64>,
}

struct Inner {
    store: Arc<MessageStore>,
    master: Mutex<String>,
    cfg: HaConfig,
    stop: AtomicBool,
    connected: AtomicBool,
    connections: AtomicU64,
    frames: AtomicU64,
    protocol_errors: AtomicU64,
    last_error: Mutex<Option<String>>,
    current: Mutex<Option<TcpStream>>,
    epoch_handshakes: AtomicU64,
    truncations: AtomicU64,
    /// `u64::MAX`: none yet.
    last_truncated_to: AtomicU64,
}

/// Follows a master over RocketMQ's HA protocol.
pub struct HaSlave {
    inner: Arc<Inner>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for HaSlave {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HaSlave")
            .field("status", &self.status())
            .finish()
    }
}

impl HaSlave {
    /// Start following the master at `master` (`host:port` of its HA port; empty
    /// to wait for [`HaSlave::set_master_address`]).
    ///
    /// # Errors
    /// [`HaError::Io`] if the thread cannot be started.
    pub fn start(
        store: Arc<MessageStore>,
        master: String,
        cfg: HaConfig,
    ) -> Result<HaSlave, HaError> {
        let inner = Arc::new(Inner {
            store,
            master: Mutex::new(master),
            cfg,
            stop: AtomicBool::new(false),
            connected: AtomicBool::new(false),
            connections: AtomicU64::new(0),
            frames: AtomicU64::new(0),
            protocol_errors: AtomicU64::new(0),
            last_error: Mutex::new(None),
            current: Mutex::new(None),
            epoch_handshakes: AtomicU64::new(0),
            truncations: AtomicU64::new(0),
            last_truncated_to: AtomicU64::new(u64::MAX),
        });
        let i = Arc::clone(&inner);
        let h = std::thread::Builder::new()
            .name("ferromq-ha-slave".into())
            .spawn(move || run(i))
            .map_err(|e| HaError::io("spawning the HA slave thread", e))?;
        Ok(HaSlave {
            inner,
            thread: Mutex::new(Some(h)),
        })
    }

    /// Follow another master from the next connection on (the name server told
    /// of a new master address).
    pub fn set_master_address(&self, master: String) {
        let mut m = self.inner.master.locked();
        if *m != master {
            *m = master;
            if let Some(s) = self.inner.current.locked().as_ref() {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }

    /// Current status.
    pub fn status(&self) -> SlaveStatus {
        let i = &self.inner;
        SlaveStatus {
            connected: i.connected.load(Ordering::Acquire),
            connections: i.connections.load(Ordering::Acquire),
            frames_applied: i.frames.load(Ordering::Acquire),
            protocol_errors: i.protocol_errors.load(Ordering::Acquire),
            last_error: i.last_error.locked().clone(),
            epoch_handshakes: i.epoch_handshakes.load(Ordering::Acquire),
            truncations: i.truncations.load(Ordering::Acquire),
            last_truncated_to: match i.last_truncated_to.load(Ordering::Acquire) {
                u64::MAX => None,
                v => Some(v),
            },
        }
    }

    /// Stop following and join the thread.
    pub fn shutdown(&self) {
        self.inner.stop.store(true, Ordering::Release);
        if let Some(s) = self.inner.current.locked().as_ref() {
            let _ = s.shutdown(Shutdown::Both);
        }
        if let Some(h) = self.thread.locked().take() {
            let _ = h.join();
        }
    }
}

impl Drop for HaSlave {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn run(inner: Arc<Inner>) {
    while !inner.stop.load(Ordering::Acquire) {
        let master = inner.master.locked().clone();
        if master.is_empty() {
            // No master known yet (the name server tells us at registration).
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        match session(&inner, &master) {
            Ok(()) => {}
            Err(e) => {
                if matches!(
                    e,
                    HaError::Protocol(_) | HaError::Store(_) | HaError::Epoch(_)
                ) {
                    inner.protocol_errors.fetch_add(1, Ordering::AcqRel);
                }
                if !inner.stop.load(Ordering::Acquire) {
                    tracing::warn!(%master, error = %e, "HA slave connection ended");
                }
                *inner.last_error.locked() = Some(e.to_string());
            }
        }
        inner.connected.store(false, Ordering::Release);
        *inner.current.locked() = None;
        // Wait before reconnecting, waking early on stop.
        let until = Instant::now() + inner.cfg.reconnect_interval;
        while Instant::now() < until && !inner.stop.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn session(inner: &Arc<Inner>, master: &str) -> Result<(), HaError> {
    let addr = master
        .to_socket_addrs()
        .map_err(|e| HaError::io(format!("resolving {master}"), e))?
        .next()
        .ok_or_else(|| HaError::Protocol(format!("{master} resolves to nothing")))?;
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(3))
        .map_err(|e| HaError::io(format!("connecting to {master}"), e))?;
    let _ = stream.set_nodelay(true);
    // Registered first, so that shutdown closes it even mid-handshake.
    *inner.current.locked() = Some(
        stream
            .try_clone()
            .map_err(|e| HaError::io("cloning the socket", e))?,
    );
    let (reader, mut writer, view) = crate::auth::with_timeouts(&stream, || {
        let (mut rd, mut wr) = match &inner.cfg.tls.client {
            Some(cfg) => tls::connect(&stream, master, Arc::clone(cfg))
                .map_err(|e| HaError::io(format!("TLS handshake with {master}"), e))?,
            None => tls::plain(&stream).map_err(|e| HaError::io("cloning the socket", e))?,
        };
        if let Some(auth) = &inner.cfg.auth {
            crate::auth::slave_handshake(&mut rd, &mut wr, auth.as_ref())?;
        }
        let view = match &inner.cfg.auto_switch {
            Some(az) => Some(autoswitch::slave_hello(
                &mut rd,
                &mut wr,
                az.broker_id,
                inner.store.commit_log_max_offset(),
            )?),
            None => None,
        };
        Ok((rd, wr, view))
    })?;
    if let (Some(az), Some(view)) = (&inner.cfg.auto_switch, view) {
        reconcile(inner, &az.epochs, &view, master)?;
    }
    stream
        .set_read_timeout(Some(
            inner.cfg.heartbeat_interval.min(Duration::from_millis(500)),
        ))
        .map_err(|e| HaError::io("setting a read timeout", e))?;
    inner.connected.store(true, Ordering::Release);
    inner.connections.fetch_add(1, Ordering::AcqRel);
    let mut reader = BufReader::with_capacity(256 * 1024, reader);
    let store = &inner.store;
    write_report(&mut writer, store.commit_log_max_offset())
        .map_err(|e| HaError::io("sending the first offset report", e))?;
    tracing::info!(%master, from = store.commit_log_max_offset(), "HA slave connected");
    let mut last_report = Instant::now();
    let mut last_heard = Instant::now();
    let mut body = Vec::new();
    while !inner.stop.load(Ordering::Acquire) {
        let mut h = [0u8; FRAME_HEADER_LEN];
        match read_full(&mut reader, &mut h) {
            Ok(true) => {}
            Ok(false) => {
                // Idle: heartbeat, and drop a master that went silent.
                if last_heard.elapsed() >= inner.cfg.housekeeping_interval {
                    return Err(HaError::Protocol(
                        "master silent for haHousekeepingInterval".into(),
                    ));
                }
                if last_report.elapsed() >= inner.cfg.heartbeat_interval {
                    write_report(&mut writer, store.commit_log_max_offset())
                        .map_err(|e| HaError::io("sending a heartbeat report", e))?;
                    last_report = Instant::now();
                }
                continue;
            }
            Err(e) => return Err(HaError::io("reading a frame header", e)),
        }
        last_heard = Instant::now();
        let (offset, size) = read_frame_header(&h)?;
        body.resize(size, 0);
        let mut got = 0;
        let deadline = Instant::now() + inner.cfg.housekeeping_interval;
        while got < size {
            match reader.read(&mut body[got..]) {
                Ok(0) => return Err(HaError::Protocol("master closed mid-frame".into())),
                Ok(n) => got += n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if Instant::now() >= deadline {
                        return Err(HaError::Protocol("frame body did not arrive".into()));
                    }
                }
                Err(e) => return Err(HaError::io("reading a frame body", e)),
            }
        }
        let mine = store.commit_log_max_offset();
        if size == 0 {
            // The master's heartbeat. Report on time here too: heartbeats
            // arriving about as often as the read timeout would otherwise
            // keep the idle branch above from ever reporting, and the master
            // would drop this slave as silent.
            if last_report.elapsed() >= inner.cfg.heartbeat_interval {
                write_report(&mut writer, mine)
                    .map_err(|e| HaError::io("sending a heartbeat report", e))?;
                last_report = Instant::now();
            }
            continue;
        }
        if mine != 0 && offset != mine {
            return Err(HaError::Protocol(format!(
                "master pushed offset {offset} not equal to the slave's max offset {mine}"
            )));
        }
        store.append_commit_log(offset, &body)?;
        inner.frames.fetch_add(1, Ordering::AcqRel);
        write_report(&mut writer, store.commit_log_max_offset())
            .map_err(|e| HaError::io("sending an offset report", e))?;
        last_report = Instant::now();
    }
    Ok(())
}

/// Epoch mode, after the master's answer: truncate what this log has beyond
/// the last point it agrees with the master, cut the epoch file with it and
/// adopt the master's epochs. Nothing changes when the answer shows this
/// slave cannot follow (an error).
fn reconcile(
    inner: &Inner,
    epochs: &EpochCache,
    view: &MasterView,
    master: &str,
) -> Result<(), HaError> {
    let store = &inner.store;
    let (min, max) = (store.commit_log_min_offset(), store.commit_log_max_offset());
    let local = epochs.entries();
    let cut = autoswitch::plan_follow(&local, min, max, view)?;
    if let Some(at) = cut {
        tracing::warn!(
            %master,
            master_broker_id = view.broker_id,
            from = max,
            to = at,
            "HA slave truncating the commitlog tail the new master does not have"
        );
        store.truncate_commit_log(at)?;
        inner.truncations.fetch_add(1, Ordering::AcqRel);
        inner.last_truncated_to.store(at, Ordering::Release);
    }
    epochs.adopt(cut, &view.entries)?;
    inner.epoch_handshakes.fetch_add(1, Ordering::AcqRel);
    tracing::info!(
        %master,
        master_broker_id = view.broker_id,
        from = store.commit_log_max_offset(),
        master_max_offset = view.max_offset,
        "HA slave epoch handshake done"
    );
    Ok(())
}

/// Read exactly `buf.len()` bytes; `Ok(false)` when nothing at all arrived
/// before the read timeout (a partial header is waited for).
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<bool> {
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "master closed the connection",
                ))
            }
            Ok(n) => got += n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if got == 0 {
                    return Ok(false);
                }
                if Instant::now() >= deadline {
                    return Err(e);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}
