//! A null broker: a tiny tokio server on 127.0.0.1 that answers every request
//! with SUCCESS at once, storing nothing. Driving it with the broker client
//! measures the harness's own cost per message.
//!
//! [`NullBroker::start_stalling`] makes it stop reading and answering once,
//! for a set time: the test that open-loop latency counts from the intended
//! send time.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferromq_server::remoting::codec::encode;
use ferromq_server::remoting::{RemotingCommand, SerializeType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::error::{BenchError, Result};
use crate::target::broker::{response_head, BINARY_OPAQUE_AT};

/// Largest request frame the null broker accepts.
pub const MAX_REQUEST_FRAME: usize = 16 << 20;

/// A running null broker; stopped and joined on drop.
pub struct NullBroker {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl NullBroker {
    /// Start it on its own thread and single-threaded runtime, on
    /// `127.0.0.1` with a port the OS picks.
    ///
    /// # Errors
    ///
    /// When the runtime or the listener cannot be created.
    pub fn start() -> Result<NullBroker> {
        Self::start_with(None)
    }

    /// A null broker that, once, stops reading and answering for `stall`:
    /// the first connection to finish reading a batch of requests `after`
    /// the start or later sleeps before it reads again. A test double for a
    /// broker that stalls (a flush, a GC pause).
    ///
    /// # Errors
    ///
    /// As [`NullBroker::start`].
    pub fn start_stalling(after: Duration, stall: Duration) -> Result<NullBroker> {
        Self::start_with(Some(Arc::new(Stall {
            at: Instant::now() + after,
            length: stall,
            done: AtomicBool::new(false),
        })))
    }

    fn start_with(stall: Option<Arc<Stall>>) -> Result<NullBroker> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| BenchError::io("null broker runtime", e))?;
        let listener = rt
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .map_err(|e| BenchError::io("null broker bind", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| BenchError::io("null broker address", e))?;
        let (stop, stop_rx) = watch::channel(false);
        let thread = std::thread::Builder::new()
            .name("null-broker".into())
            .spawn(move || rt.block_on(serve(listener, stop_rx, stall)))
            .map_err(|e| BenchError::io("null broker thread", e))?;
        Ok(NullBroker {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for NullBroker {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The one stall of [`NullBroker::start_stalling`].
#[derive(Debug)]
struct Stall {
    /// Not before this.
    at: Instant,
    /// How long.
    length: Duration,
    /// It happened.
    done: AtomicBool,
}

async fn serve(listener: TcpListener, mut stop: watch::Receiver<bool>, stall: Option<Arc<Stall>>) {
    let mut ok = RemotingCommand::success();
    ok.serialize_type = SerializeType::RocketMq;
    let template = match encode(&ok) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!("null broker: cannot encode SUCCESS: {e}");
            return;
        }
    };
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((s, _)) => {
                    let _ = s.set_nodelay(true);
                    conns.spawn(connection(s, template.clone(), stop.clone(), stall.clone()));
                }
                Err(e) => {
                    tracing::warn!("null broker accept: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
        }
    }
    conns.abort_all();
}

async fn connection(
    mut s: TcpStream,
    template: Vec<u8>,
    mut stop: watch::Receiver<bool>,
    stall: Option<Arc<Stall>>,
) {
    let mut rbuf: Vec<u8> = Vec::with_capacity(256 * 1024);
    let mut wbuf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut pos = 0usize;
    // Bounded by the connection: each pass reads, or ends on close, error or stop.
    loop {
        if let Some(st) = &stall {
            if Instant::now() >= st.at && !st.done.swap(true, Ordering::Relaxed) {
                tokio::select! {
                    _ = stop.changed() => return,
                    () = tokio::time::sleep(st.length) => {}
                }
            }
        }
        if rbuf.len() == rbuf.capacity() {
            rbuf.reserve(256 * 1024);
        }
        let n = tokio::select! {
            _ = stop.changed() => return,
            r = s.read_buf(&mut rbuf) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
        };
        let _ = n;
        while let Some(len) = rbuf.get(pos..pos + 4) {
            let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
            if !(4..=MAX_REQUEST_FRAME).contains(&len) {
                return;
            }
            let Some(frame) = rbuf.get(pos + 4..pos + 4 + len) else {
                break;
            };
            let Some((_, opaque, flag)) = response_head(frame) else {
                return;
            };
            if flag & 3 == 0 {
                let at = wbuf.len();
                wbuf.extend_from_slice(&template);
                wbuf[at + BINARY_OPAQUE_AT..at + BINARY_OPAQUE_AT + 4]
                    .copy_from_slice(&opaque.to_be_bytes());
            }
            pos += 4 + len;
        }
        if pos == rbuf.len() {
            rbuf.clear();
            pos = 0;
        } else if pos > 64 * 1024 {
            rbuf.drain(..pos);
            pos = 0;
        }
        if !wbuf.is_empty() {
            if s.write_all(&wbuf).await.is_err() {
                return;
            }
            wbuf.clear();
        }
    }
}
