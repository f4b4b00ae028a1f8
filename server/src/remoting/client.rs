//! A small async request/response client (the broker uses it to talk to name servers).
//!
//! One request at a time per client; the connection is opened lazily and dropped
//! after any error or timeout, so the next call reconnects. With a
//! [`TlsClient`] ([`RemotingClient::with_tls`]) the connection is TLS.

use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::sync::Mutex;

use super::codec::{encode, read_frame, CodecError, DEFAULT_MAX_FRAME_BYTES};
use super::command::RemotingCommand;
use super::tls::{self, ClientStream, TlsClient};
use crate::acl::Credentials;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Connecting, writing or reading failed, or a frame was malformed.
    #[error("{addr}: {source}")]
    Codec {
        /// Remote address.
        addr: String,
        /// Cause.
        #[source]
        source: CodecError,
    },
    /// No response in time.
    #[error("{addr}: no response within {timeout:?}")]
    Timeout {
        /// Remote address.
        addr: String,
        /// The limit.
        timeout: Duration,
    },
    /// The peer closed the connection before answering.
    #[error("{0}: connection closed before the response")]
    Closed(String),
}

/// A connection to one remote address.
#[derive(Debug)]
pub struct RemotingClient {
    addr: String,
    conn: Mutex<Option<BufReader<ClientStream>>>,
    next_opaque: AtomicI32,
    /// Signs every request when set (the broker's own calls with ACL on).
    credentials: Option<Credentials>,
    tls: Option<TlsClient>,
}

impl RemotingClient {
    /// A client for `addr` (`host:port`); nothing is connected yet.
    pub fn new(addr: impl Into<String>) -> Self {
        RemotingClient {
            addr: addr.into(),
            conn: Mutex::new(None),
            next_opaque: AtomicI32::new(1),
            credentials: None,
            tls: None,
        }
    }

    /// A client for `addr` that speaks TLS when `tls` is given.
    pub fn with_tls(addr: impl Into<String>, tls: Option<TlsClient>) -> Self {
        RemotingClient {
            tls,
            ..RemotingClient::new(addr)
        }
    }

    /// Sign every request with `credentials` (as RocketMQ's
    /// `AclClientRPCHook`); `None` sends them unsigned.
    #[must_use]
    pub fn with_credentials(mut self, credentials: Option<Credentials>) -> Self {
        self.credentials = credentials;
        self
    }

    /// The remote address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Send `req` and wait for its response.
    ///
    /// # Errors
    /// [`ClientError`] on connect/IO failure, a bad frame, a close or a timeout.
    pub async fn invoke(
        &self,
        mut req: RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand, ClientError> {
        req.opaque = self.next_opaque.fetch_add(1, Ordering::Relaxed);
        if let Some(c) = &self.credentials {
            c.sign(&mut req);
        }
        let mut guard = self.conn.lock().await;
        let res = tokio::time::timeout(timeout, self.exchange(&mut guard, &req)).await;
        match res {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => {
                *guard = None;
                Err(e)
            }
            Err(_) => {
                *guard = None;
                Err(ClientError::Timeout {
                    addr: self.addr.clone(),
                    timeout,
                })
            }
        }
    }

    /// Drop the connection, if any.
    pub async fn close(&self) {
        *self.conn.lock().await = None;
    }

    async fn exchange(
        &self,
        slot: &mut Option<BufReader<ClientStream>>,
        req: &RemotingCommand,
    ) -> Result<RemotingCommand, ClientError> {
        let err = |source: CodecError| ClientError::Codec {
            addr: self.addr.clone(),
            source,
        };
        if slot.is_none() {
            let s = tls::connect(&self.addr, self.tls.as_ref())
                .await
                .map_err(|e| err(e.into()))?;
            *slot = Some(BufReader::new(s));
        }
        let Some(stream) = slot.as_mut() else {
            return Err(ClientError::Closed(self.addr.clone()));
        };
        let frame = encode(req).map_err(err)?;
        let s = stream.get_mut();
        s.write_all(&frame).await.map_err(|e| err(e.into()))?;
        // A TLS session holds what it could not send yet until flushed.
        s.flush().await.map_err(|e| err(e.into()))?;
        loop {
            match read_frame(stream, DEFAULT_MAX_FRAME_BYTES)
                .await
                .map_err(err)?
            {
                None => return Err(ClientError::Closed(self.addr.clone())),
                Some(resp) if resp.is_response() && resp.opaque == req.opaque => return Ok(resp),
                Some(other) => {
                    tracing::debug!(addr = %self.addr, code = other.code, "skipping unrelated frame");
                }
            }
        }
    }
}
