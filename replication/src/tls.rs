//! TLS on the HA port (a ferromq extension; RocketMQ 4.x's HA stream is
//! always plain): with [`HaConfig::tls`](crate::HaConfig::tls) a master
//! serves TLS (and, unless [`HaTls::server_required`], plain slaves too, told
//! apart by the first byte as the broker's client port does), and a slave
//! connects with TLS.
//!
//! The HA protocol reads and writes one connection from two threads on the
//! master (offset reports in, commitlog frames out). A rustls session is one
//! state machine, so both sides share it behind a mutex: the
//! reader waits for socket bytes without the lock and takes it only to hand
//! them to the session; the writer takes it to encrypt, and sends under a
//! second lock only, so a slow socket keeps the reader from nothing.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};

use ferromq_engine::sync::LockExt;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, Connection, ServerConfig, ServerConnection};

/// The first byte of a TLS handshake record.
pub const TLS_HANDSHAKE_BYTE: u8 = 0x16;

/// Socket bytes read per step: at most one TLS record's worth, so one step
/// never decrypts more than the session's received-plaintext buffer holds.
const RAW_CHUNK: usize = 16 * 1024;

/// TLS settings of the HA port.
#[derive(Clone, Default)]
pub struct HaTls {
    /// Master side: serve TLS with this configuration.
    pub server: Option<Arc<ServerConfig>>,
    /// Master side: refuse plain connections (the broker's
    /// `tls.server.mode=enforcing`); else both are served.
    pub server_required: bool,
    /// Slave side: connect to the master with TLS.
    pub client: Option<Arc<ClientConfig>>,
}

impl std::fmt::Debug for HaTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HaTls")
            .field("server", &self.server.is_some())
            .field("server_required", &self.server_required)
            .field("client", &self.client.is_some())
            .finish()
    }
}

/// One TLS session shared by a connection's reader and writer.
pub(crate) struct Shared {
    conn: Mutex<Connection>,
    /// Held while records go to the socket. It is taken before `conn` is
    /// let go, so records reach the socket in the order the session made
    /// them, and its holders never take `conn`: a writer blocked on a full
    /// socket keeps the reader from nothing but sending.
    send: Mutex<()>,
    sock: TcpStream,
}

/// The encrypted records `conn` has to send, taken out of it.
fn take_outgoing(conn: &mut Connection) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out)?;
    }
    Ok(out)
}

/// The reading half of a connection, plain or TLS.
pub(crate) enum HaRead {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS: socket bytes wait in `pending` until the session's plaintext is
    /// read.
    Tls {
        shared: Arc<Shared>,
        raw: Box<[u8]>,
        pending: Vec<u8>,
        eof: bool,
    },
}

/// The writing half of a connection, plain or TLS.
pub(crate) enum HaWrite {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS: encrypts under the shared session's lock.
    Tls(Arc<Shared>),
}

impl Read for HaRead {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let (shared, raw, pending, eof) = match self {
            HaRead::Plain(s) => return s.read(out),
            HaRead::Tls {
                shared,
                raw,
                pending,
                eof,
            } => (shared, raw, pending, eof),
        };
        loop {
            {
                let mut conn = shared.conn.locked();
                match conn.reader().read(out) {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
                // No plaintext: hand the session what is pending (or the
                // end of the stream), then look again.
                if !pending.is_empty() || *eof {
                    let mut rd: &[u8] = pending;
                    let used = conn.read_tls(&mut rd)?;
                    pending.drain(..used);
                    conn.process_new_packets()
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                    if conn.wants_write() {
                        // Rare (alerts, key updates): sent with the session
                        // still held, after any write in progress.
                        let out = take_outgoing(&mut conn)?;
                        let _send = shared.send.locked();
                        (&shared.sock).write_all(&out)?;
                    }
                    if *eof && pending.is_empty() {
                        // rustls has seen the end: its reader now says
                        // whether it was clean (close_notify) or not.
                        return match conn.reader().read(out) {
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
                            other => other,
                        };
                    }
                    continue;
                }
            }
            // Without the lock: the writer keeps sending meanwhile. A read
            // timeout surfaces as the plain socket's would.
            let n = (&shared.sock).read(raw)?;
            if n == 0 {
                *eof = true;
            } else {
                pending.extend_from_slice(&raw[..n]);
            }
        }
    }
}

impl Write for HaWrite {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            HaWrite::Plain(s) => s.write(data),
            HaWrite::Tls(shared) => {
                let mut conn = shared.conn.locked();
                let n = conn.writer().write(data)?;
                let out = take_outgoing(&mut conn)?;
                let send = shared.send.locked();
                drop(conn);
                (&shared.sock).write_all(&out)?;
                drop(send);
                Ok(n)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            HaWrite::Plain(s) => s.flush(),
            HaWrite::Tls(shared) => {
                let mut conn = shared.conn.locked();
                let out = take_outgoing(&mut conn)?;
                let _send = shared.send.locked();
                drop(conn);
                (&shared.sock).write_all(&out)
            }
        }
    }
}

/// The two halves of a plain connection.
pub(crate) fn plain(sock: &TcpStream) -> io::Result<(HaRead, HaWrite)> {
    Ok((
        HaRead::Plain(sock.try_clone()?),
        HaWrite::Plain(sock.try_clone()?),
    ))
}

/// Run `conn`'s handshake on `sock` (bounded by the socket's timeouts), then
/// split it.
fn handshake_and_split(sock: &TcpStream, mut conn: Connection) -> io::Result<(HaRead, HaWrite)> {
    let mut s = sock;
    while conn.is_handshaking() {
        conn.complete_io(&mut s)?;
    }
    let shared = Arc::new(Shared {
        conn: Mutex::new(conn),
        send: Mutex::new(()),
        sock: sock.try_clone()?,
    });
    Ok((
        HaRead::Tls {
            shared: Arc::clone(&shared),
            raw: vec![0u8; RAW_CHUNK].into_boxed_slice(),
            pending: Vec::new(),
            eof: false,
        },
        HaWrite::Tls(shared),
    ))
}

/// The master's side of a TLS connection on `sock`.
///
/// # Errors
/// The handshake failed or timed out.
pub(crate) fn accept(sock: &TcpStream, cfg: Arc<ServerConfig>) -> io::Result<(HaRead, HaWrite)> {
    let conn = ServerConnection::new(cfg).map_err(io::Error::other)?;
    handshake_and_split(sock, Connection::Server(conn))
}

/// The slave's side of a TLS connection on `sock` to `master` (`host:port`;
/// the host is the name the certificate is checked for, when it is).
///
/// # Errors
/// The handshake failed or timed out, or the host is no valid name.
pub(crate) fn connect(
    sock: &TcpStream,
    master: &str,
    cfg: Arc<ClientConfig>,
) -> io::Result<(HaRead, HaWrite)> {
    let host = master.rsplit_once(':').map_or(master, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{master}: {e}")))?;
    let conn = ClientConnection::new(cfg, name).map_err(io::Error::other)?;
    handshake_and_split(sock, Connection::Client(conn))
}

/// Whether the connection on `sock` starts a TLS handshake: its first byte,
/// peeked (waiting as long as the socket's read timeout).
pub(crate) fn starts_tls(sock: &TcpStream) -> io::Result<bool> {
    let mut b = [0u8; 1];
    match sock.peek(&mut b)? {
        0 => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "closed before sending anything",
        )),
        _ => Ok(b[0] == TLS_HANDSHAKE_BYTE),
    }
}
