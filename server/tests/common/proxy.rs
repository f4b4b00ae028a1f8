//! A TCP proxy a test controls, to cut links: it listens on a loopback
//! port the OS picks and forwards to `target`. [`Proxy::cut`] closes every
//! forwarded connection and from then on accepts connections but forwards
//! nothing (a black hole, as a partition looks to the peer);
//! [`Proxy::heal`] forwards again.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The proxy; stops when dropped.
pub struct Proxy {
    pub port: u16,
    cut: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    /// Forward a new loopback port to `127.0.0.1:target`.
    pub fn start(target: u16) -> Proxy {
        Self::start_at("127.0.0.1:0".parse().unwrap(), target)
    }

    /// Forward `listen` (another loopback address, such as 127.0.0.11:P,
    /// to stand for a host) to `127.0.0.1:target`.
    pub fn start_at(listen: std::net::SocketAddr, target: u16) -> Proxy {
        let listener = TcpListener::bind(listen).unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (c, s, cs) = (cut.clone(), stop.clone(), conns.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Acquire) {
                let (client, _) = match listener.accept() {
                    Ok(v) => v,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                };
                let _ = client.set_nonblocking(false);
                if c.load(Ordering::Acquire) {
                    // Black hole: hold it open, forward nothing.
                    cs.lock().unwrap().push(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let _ = server.set_nodelay(true);
                let _ = client.set_nodelay(true);
                {
                    let mut l = cs.lock().unwrap();
                    l.push(client.try_clone().unwrap());
                    l.push(server.try_clone().unwrap());
                }
                pump(
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                    c.clone(),
                );
                pump(server, client, c.clone());
            }
        });
        Proxy {
            port,
            cut,
            stop,
            conns,
        }
    }

    /// Close every forwarded connection; new ones are held and get nothing.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::Release);
        for s in self.conns.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Forward again (held connections are closed).
    pub fn heal(&self) {
        for s in self.conns.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
        self.cut.store(false, Ordering::Release);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.cut();
    }
}

/// Copy `from` to `to` until either closes or the link is cut.
fn pump(mut from: TcpStream, mut to: TcpStream, cut: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if cut.load(Ordering::Acquire) || to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}
