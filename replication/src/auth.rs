//! The authenticated HA handshake: a ferromq extension, used only when the
//! brokers run with ACL on ([`HaConfig::auth`](crate::HaConfig::auth)).
//!
//! RocketMQ 4.x's HA port trusts its network: anyone who can reach it and
//! sends eight bytes is streamed the whole commitlog, and a slave follows
//! whatever answers at the address the name server gave it. With an
//! [`HaAuth`] on both sides, a connection first runs a mutual
//! challenge-response over the cluster's credentials, and only then the
//! RocketMQ protocol (offset reports one way, commitlog frames the other):
//!
//! 1. slave → master: [`HANDSHAKE_MAGIC`], a 16-byte nonce `Ns`, the slave's
//!    access key and its broker name;
//! 2. master → slave: [`HANDSHAKE_MAGIC`], a nonce `Nm`, the master's access
//!    key, its broker name and its signature of
//!    `"ferromq-ha-master\0" Ns Nm brokerName`;
//! 3. slave → master: its signature of `"ferromq-ha-slave\0" Nm Ns brokerName`;
//! 4. master → slave: one byte, [`ACCEPTED`].
//!
//! Strings are a length byte and UTF-8 (at most 255 bytes). Each side checks
//! that the peer's broker name is its own, and the peer's signature with
//! [`HaAuth::verify`] (the server checks it against an admin account of its
//! ACL rules); the fresh nonces make an old exchange useless, and the
//! different prefixes keep a master's signature from serving as a slave's.
//! Whoever fails a check closes the connection. The magic is a negative
//! number as an offset report, which a RocketMQ slave never sends, so a
//! master tells a plain RocketMQ slave (refused when auth is on) from a
//! ferromq one at once.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::HaError;

/// The first eight bytes of an authenticated connection. As a big-endian
/// `i64` offset report it is negative.
pub const HANDSHAKE_MAGIC: [u8; 8] = [0xF1, b'F', b'M', b'Q', b'H', b'A', 0, 1];

/// The master's last handshake byte when it accepted the slave.
pub const ACCEPTED: u8 = 1;

/// Time each side allows the whole handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

const NONCE_LEN: usize = 16;
const MASTER_DOMAIN: &[u8] = b"ferromq-ha-master\0";
const SLAVE_DOMAIN: &[u8] = b"ferromq-ha-slave\0";

/// The credentials and checks of one broker for the HA handshake.
pub trait HaAuth: Send + Sync + std::fmt::Debug {
    /// The broker name master and slave share (`brokerName`).
    fn broker_name(&self) -> &str;
    /// This broker's access key.
    fn access_key(&self) -> &str;
    /// This broker's signature of `content`.
    fn sign(&self, content: &[u8]) -> String;
    /// Whether `signature` is `access_key`'s signature of `content` and that
    /// account may act as a member of the cluster.
    fn verify(&self, access_key: &str, content: &[u8], signature: &str) -> bool;
    /// Fresh random bytes for a nonce.
    ///
    /// # Errors
    /// When the system's random source fails.
    fn nonce(&self) -> Result<[u8; 16], String>;
}

fn protocol(why: impl Into<String>) -> HaError {
    HaError::Protocol(why.into())
}

fn io(context: &str) -> impl Fn(std::io::Error) -> HaError + '_ {
    move |e| HaError::io(context, e)
}

fn write_str(out: &mut Vec<u8>, s: &str) -> Result<(), HaError> {
    let len = u8::try_from(s.len()).map_err(|_| {
        protocol(format!(
            "a handshake field is over 255 bytes: {} bytes",
            s.len()
        ))
    })?;
    out.push(len);
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

fn read_str(r: &mut impl Read, what: &str) -> Result<String, HaError> {
    let mut len = [0u8; 1];
    r.read_exact(&mut len).map_err(io(what))?;
    let mut buf = vec![0u8; usize::from(len[0])];
    r.read_exact(&mut buf).map_err(io(what))?;
    String::from_utf8(buf).map_err(|_| protocol(format!("{what} is not UTF-8")))
}

fn read_nonce(r: &mut impl Read, what: &str) -> Result<[u8; NONCE_LEN], HaError> {
    let mut n = [0u8; NONCE_LEN];
    r.read_exact(&mut n).map_err(io(what))?;
    Ok(n)
}

fn signed_content(domain: &[u8], first: &[u8], second: &[u8], broker_name: &str) -> Vec<u8> {
    [domain, first, second, broker_name.as_bytes()].concat()
}

/// Runs `f` with `sock`'s read and write timeouts set to
/// [`HANDSHAKE_TIMEOUT`], restoring them after.
pub(crate) fn with_timeouts<T>(
    sock: &TcpStream,
    f: impl FnOnce() -> Result<T, HaError>,
) -> Result<T, HaError> {
    let before = sock.read_timeout().ok().flatten();
    let write_before = sock.write_timeout().ok().flatten();
    sock.set_read_timeout(Some(HANDSHAKE_TIMEOUT))
        .map_err(io("setting the handshake timeout"))?;
    let _ = sock.set_write_timeout(Some(HANDSHAKE_TIMEOUT));
    let out = f();
    let _ = sock.set_read_timeout(before);
    let _ = sock.set_write_timeout(write_before);
    out
}

/// The slave's side, on a fresh connection to the master, before its first
/// offset report.
///
/// # Errors
/// The master is not a member of the cluster (wrong broker name or
/// signature), refused this slave, or the connection failed.
pub fn slave_handshake(
    r: &mut impl Read,
    w: &mut impl Write,
    auth: &dyn HaAuth,
) -> Result<(), HaError> {
    {
        let ns = auth.nonce().map_err(protocol)?;
        let mut hello = HANDSHAKE_MAGIC.to_vec();
        hello.extend_from_slice(&ns);
        write_str(&mut hello, auth.access_key())?;
        write_str(&mut hello, auth.broker_name())?;
        w.write_all(&hello)
            .map_err(io("sending the HA handshake"))?;

        let mut magic = [0u8; 8];
        r.read_exact(&mut magic).map_err(io(
            "reading the master's handshake (does it run with ACL on?)",
        ))?;
        if magic != HANDSHAKE_MAGIC {
            return Err(protocol(
                "the master did not answer the authenticated HA handshake",
            ));
        }
        let nm = read_nonce(r, "reading the master's nonce")?;
        let master_key = read_str(r, "the master's access key")?;
        let master_name = read_str(r, "the master's broker name")?;
        let master_sig = read_str(r, "the master's signature")?;
        if master_name != auth.broker_name() {
            return Err(protocol(format!(
                "the master is broker {master_name:?}, not {:?}",
                auth.broker_name()
            )));
        }
        let content = signed_content(MASTER_DOMAIN, &ns, &nm, &master_name);
        if !auth.verify(&master_key, &content, &master_sig) {
            return Err(protocol(format!(
                "the master's proof failed for accessKey={master_key} (unknown, not admin, or a wrong signature)"
            )));
        }
        let mut proof = Vec::new();
        let content = signed_content(SLAVE_DOMAIN, &nm, &ns, auth.broker_name());
        write_str(&mut proof, &auth.sign(&content))?;
        w.write_all(&proof)
            .map_err(io("sending the slave's proof"))?;
        let mut verdict = [0u8; 1];
        r.read_exact(&mut verdict).map_err(io(
            "reading the master's verdict (it refused this slave's credentials if it closed)",
        ))?;
        if verdict[0] != ACCEPTED {
            return Err(protocol("the master refused this slave"));
        }
        Ok(())
    }
}

/// The master's side, on a newly accepted connection, before the slave's
/// first offset report. Returns the slave's access key.
///
/// # Errors
/// The peer did not start the handshake (a plain RocketMQ slave or a
/// stranger), named another broker, or failed its proof.
pub fn master_handshake(
    r: &mut impl Read,
    w: &mut impl Write,
    auth: &dyn HaAuth,
) -> Result<String, HaError> {
    {
        let mut magic = [0u8; 8];
        r.read_exact(&mut magic)
            .map_err(io("reading the HA handshake"))?;
        if magic != HANDSHAKE_MAGIC {
            return Err(protocol(
                "the connection did not start the authenticated HA handshake (ACL is on here: a slave needs aclEnable=true and the cluster's credentials)",
            ));
        }
        let ns = read_nonce(r, "reading the slave's nonce")?;
        let slave_key = read_str(r, "the slave's access key")?;
        let slave_name = read_str(r, "the slave's broker name")?;
        if slave_name != auth.broker_name() {
            return Err(protocol(format!(
                "the slave is broker {slave_name:?}, not {:?}",
                auth.broker_name()
            )));
        }
        let nm = auth.nonce().map_err(protocol)?;
        let mut challenge = HANDSHAKE_MAGIC.to_vec();
        challenge.extend_from_slice(&nm);
        write_str(&mut challenge, auth.access_key())?;
        write_str(&mut challenge, auth.broker_name())?;
        let content = signed_content(MASTER_DOMAIN, &ns, &nm, auth.broker_name());
        write_str(&mut challenge, &auth.sign(&content))?;
        w.write_all(&challenge)
            .map_err(io("sending the master's challenge"))?;
        let slave_sig = read_str(r, "the slave's proof")?;
        let content = signed_content(SLAVE_DOMAIN, &nm, &ns, &slave_name);
        if !auth.verify(&slave_key, &content, &slave_sig) {
            return Err(protocol(format!(
                "the slave's proof failed for accessKey={slave_key} (unknown, not admin, or a wrong signature)"
            )));
        }
        w.write_all(&[ACCEPTED])
            .map_err(io("accepting the slave"))?;
        Ok(slave_key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A test authority: "signatures" are the secret and the content's
    /// length and checksum, enough to tell right from wrong.
    #[derive(Debug)]
    struct Fake {
        name: &'static str,
        key: &'static str,
        secret: &'static str,
        /// (access key, secret) accounts this side accepts.
        known: Vec<(&'static str, &'static str)>,
    }

    fn fake_sig(secret: &str, content: &[u8]) -> String {
        let sum: u32 = content.iter().map(|&b| u32::from(b)).sum();
        format!("{secret}:{}:{sum}", content.len())
    }

    impl HaAuth for Fake {
        fn broker_name(&self) -> &str {
            self.name
        }
        fn access_key(&self) -> &str {
            self.key
        }
        fn sign(&self, content: &[u8]) -> String {
            fake_sig(self.secret, content)
        }
        fn verify(&self, access_key: &str, content: &[u8], signature: &str) -> bool {
            self.known
                .iter()
                .any(|(k, s)| *k == access_key && fake_sig(s, content) == signature)
        }
        fn nonce(&self) -> Result<[u8; 16], String> {
            Ok([7; 16])
        }
    }

    fn member(name: &'static str, key: &'static str, secret: &'static str) -> Fake {
        Fake {
            name,
            key,
            secret,
            known: vec![("admin", "secret1"), ("admin2", "secret2")],
        }
    }

    fn run(master: Fake, slave: Fake) -> (Result<String, HaError>, Result<(), HaError>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            let r = with_timeouts(&s, || master_handshake(&mut &s, &mut &s, &master));
            drop(s);
            r
        });
        let c = TcpStream::connect(addr).unwrap();
        let s = with_timeouts(&c, || slave_handshake(&mut &c, &mut &c, &slave));
        drop(c);
        (t.join().unwrap(), s)
    }

    #[test]
    fn members_accept_each_other() {
        let (m, s) = run(
            member("broker-a", "admin", "secret1"),
            member("broker-a", "admin2", "secret2"),
        );
        assert_eq!(m.unwrap(), "admin2");
        s.unwrap();
    }

    #[test]
    fn a_wrong_slave_secret_is_refused_by_the_master() {
        let (m, s) = run(
            member("broker-a", "admin", "secret1"),
            member("broker-a", "admin2", "guess"),
        );
        let m = m.unwrap_err().to_string();
        assert!(
            m.contains("slave's proof failed for accessKey=admin2"),
            "{m}"
        );
        assert!(s.is_err());
    }

    #[test]
    fn a_fake_master_is_refused_by_the_slave() {
        let (m, s) = run(
            member("broker-a", "intruder", "whatever"),
            member("broker-a", "admin2", "secret2"),
        );
        let s = s.unwrap_err().to_string();
        assert!(
            s.contains("master's proof failed for accessKey=intruder"),
            "{s}"
        );
        assert!(m.is_err());
    }

    #[test]
    fn another_brokers_slave_is_refused() {
        let (m, s) = run(
            member("broker-a", "admin", "secret1"),
            member("broker-b", "admin2", "secret2"),
        );
        let m = m.unwrap_err().to_string();
        assert!(m.contains("broker \"broker-b\", not \"broker-a\""), "{m}");
        assert!(s.is_err());
    }

    #[test]
    fn a_plain_offset_report_is_refused() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            let m = member("broker-a", "admin", "secret1");
            with_timeouts(&s, || master_handshake(&mut &s, &mut &s, &m))
        });
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(&0i64.to_be_bytes()).unwrap();
        let e = t.join().unwrap().unwrap_err().to_string();
        assert!(
            e.contains("did not start the authenticated HA handshake"),
            "{e}"
        );
        let magic = i64::from_be_bytes(HANDSHAKE_MAGIC);
        assert!(magic < 0, "the magic must never be a valid offset report");
    }

    #[test]
    fn a_silent_peer_times_out() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            let started = std::time::Instant::now();
            let m = member("broker-a", "admin", "secret1");
            let r = with_timeouts(&s, || master_handshake(&mut &s, &mut &s, &m));
            (r, started.elapsed())
        });
        let _c = TcpStream::connect(addr).unwrap();
        let (r, took) = t.join().unwrap();
        assert!(r.is_err());
        assert!(
            took < HANDSHAKE_TIMEOUT + Duration::from_secs(3),
            "{took:?}"
        );
    }
}
