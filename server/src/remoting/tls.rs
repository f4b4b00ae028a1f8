//! TLS on the remoting ports, configured as RocketMQ 4.9 configures it
//! (`TlsSystemConfig`, `TlsHelper`), served with rustls (ring provider).
//!
//! # Keys
//!
//! Read from the file named by `tls.config.file` (RocketMQ's default
//! `/etc/rocketmq/tls.properties` when the key is absent and that file
//! exists), else from the broker or name server properties file itself; a key
//! in the TLS file wins over the same key in the main file, as RocketMQ's file
//! wins over `-D` system properties.
//!
//! | key | values | ferromq default |
//! | --- | --- | --- |
//! | `tls.server.mode` | `disabled`, `permissive`, `enforcing` | `permissive` when `tls.server.certPath` is set, else `disabled` |
//! | `tls.server.certPath` | PEM certificate chain | none |
//! | `tls.server.keyPath` | PEM private key (PKCS#8, PKCS#1 or SEC1; or encrypted PKCS#8) | none |
//! | `tls.server.keyPassword` | the password of an encrypted PKCS#8 key (PBES2: PBKDF2 or scrypt, AES-CBC) | none |
//! | `tls.server.need.client.auth` | `none`, `optional`, `require` | `none` |
//! | `tls.server.trustCertPath` | PEM CA bundle client certificates are checked against | none |
//! | `tls.client.certPath`, `tls.client.keyPath` | the client's own certificate and key | none |
//! | `tls.client.trustCertPath` | PEM CA bundle the server certificate is checked against | none |
//! | `tls.client.authServer` | `true`, `false` | `false` (any server certificate is accepted, as RocketMQ's client does) |
//!
//! # Modes
//!
//! - `disabled`: plain TCP only; a TLS ClientHello is read as a bad frame and
//!   the connection closes.
//! - `permissive`: the first byte a client sends decides, as RocketMQ's
//!   `HandshakeHandler` does: `0x16` (a TLS handshake record) starts a TLS
//!   session, anything else is served as plain remoting on the same port.
//! - `enforcing`: a connection whose first byte is not `0x16`, or whose
//!   handshake fails, is closed.
//!
//! # What differs from RocketMQ
//!
//! RocketMQ defaults to `permissive` with `tls.test.mode.enable=true`, which
//! serves a self-signed certificate made at start. ferromq makes no
//! certificate: without `tls.server.certPath` the default is `disabled`, and
//! `permissive` or `enforcing` without a certificate and key is a startup
//! error. Client certificates (`need.client.auth` `optional` or `require`)
//! are always checked against `tls.server.trustCertPath`, which is then
//! required; RocketMQ accepts any client certificate unless
//! `tls.server.authClient=true`.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use ferromq_engine::config::Properties;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// The key naming the TLS properties file (RocketMQ's `tls.config.file`).
pub const TLS_CONFIG_FILE_KEY: &str = "tls.config.file";

/// RocketMQ's default TLS properties file, read when `tls.config.file` is
/// not set and this file exists.
pub const DEFAULT_TLS_CONFIG_FILE: &str = "/etc/rocketmq/tls.properties";

/// The first byte of a TLS handshake record (a ClientHello starts with it).
pub const TLS_HANDSHAKE_BYTE: u8 = 0x16;

/// How long a TLS handshake may take once its first byte has arrived.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Every TLS key ferromq reads or knowingly ignores (RocketMQ 4.9's
/// `TlsSystemConfig` names), so the configuration readers do not warn about
/// them.
pub const TLS_KEYS: &[&str] = &[
    TLS_CONFIG_FILE_KEY,
    "useTLS",
    "tls.enable",
    "tls.test.mode.enable",
    "tls.server.mode",
    "tls.server.certPath",
    "tls.server.keyPath",
    "tls.server.keyPassword",
    "tls.server.need.client.auth",
    "tls.server.authClient",
    "tls.server.trustCertPath",
    "tls.client.certPath",
    "tls.client.keyPath",
    "tls.client.keyPassword",
    "tls.client.authServer",
    "tls.client.trustCertPath",
    "tls.ciphers",
    "tls.protocols",
];

/// `tls.server.mode`: what a server port accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsMode {
    /// Plain TCP only.
    #[default]
    Disabled,
    /// TLS and plain on the same port, told apart by the first byte.
    Permissive,
    /// TLS only; plain connections are closed.
    Enforcing,
}

impl TlsMode {
    /// The key's value as RocketMQ writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Disabled => "disabled",
            TlsMode::Permissive => "permissive",
            TlsMode::Enforcing => "enforcing",
        }
    }
}

/// `tls.server.need.client.auth`: whether clients must show a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuthMode {
    /// No client certificate is asked for.
    #[default]
    None,
    /// A client certificate is asked for; without one the client is served,
    /// with one it must chain to `tls.server.trustCertPath`.
    Optional,
    /// A client certificate chaining to `tls.server.trustCertPath` is required.
    Require,
}

impl ClientAuthMode {
    /// The key's value as RocketMQ writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuthMode::None => "none",
            ClientAuthMode::Optional => "optional",
            ClientAuthMode::Require => "require",
        }
    }
}

/// Why TLS could not be set up. Every variant names the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A key has a value outside what it allows.
    #[error("{key}={value}: expected {expected}")]
    BadValue {
        /// The key.
        key: &'static str,
        /// The value as given.
        value: String,
        /// What is allowed.
        expected: &'static str,
    },
    /// A file a key names cannot be read.
    #[error("{key}: cannot read {}: {source}", path.display())]
    Read {
        /// The key.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: io::Error,
    },
    /// A file a key names holds no usable PEM item.
    #[error("{key}: {}: {reason}", path.display())]
    Pem {
        /// The key.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The private key uses OpenSSL's legacy PEM encryption
    /// (`Proc-Type: 4,ENCRYPTED`): not supported; encrypted PKCS#8 is.
    #[error(
        "{key}: {} holds a key in OpenSSL's legacy PEM encryption, which ferromq does not \
         read: convert it once to encrypted PKCS#8 with `openssl pkcs8 -topk8 -v2 aes-256-cbc \
         -in {} -out <key.p8.pem>` (keeping {key_password}) and point {key} at the result",
        path.display(),
        path.display()
    )]
    EncryptedKey {
        /// The key naming the file.
        key: &'static str,
        /// The password key that would have applied.
        key_password: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// A key needed by another key's value is missing.
    #[error("{0}")]
    Missing(String),
    /// rustls refused the certificate, key or CA bundle.
    #[error("{what}: {source}")]
    Rustls {
        /// What was being set up.
        what: &'static str,
        /// Cause.
        #[source]
        source: rustls::Error,
    },
    /// The TLS properties file cannot be read.
    #[error("{TLS_CONFIG_FILE_KEY} {}: {reason}", path.display())]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// A private key's password (`tls.*.keyPassword`): never printed or logged.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyPassword(pub String);

impl std::fmt::Debug for KeyPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyPassword(<redacted>)")
    }
}

/// The server side of the TLS keys.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsServerSettings {
    /// `tls.server.mode`, after the default is applied.
    pub mode: TlsMode,
    /// `tls.server.certPath`.
    pub cert_path: Option<PathBuf>,
    /// `tls.server.keyPath`.
    pub key_path: Option<PathBuf>,
    /// `tls.server.keyPassword`: decrypts an encrypted PKCS#8 key.
    pub key_password: Option<KeyPassword>,
    /// `tls.server.need.client.auth`.
    pub need_client_auth: ClientAuthMode,
    /// `tls.server.trustCertPath`.
    pub trust_cert_path: Option<PathBuf>,
}

/// The client side of the TLS keys (a process's outgoing connections).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsClientSettings {
    /// Whether a server process makes its own calls over TLS: `useTLS`
    /// (RocketMQ's `NettyClientConfig` key), else `tls.enable`, else true
    /// exactly when `tls.server.mode=enforcing` (RocketMQ's `BrokerStartup`
    /// default). Command-line clients ignore it.
    pub enable: bool,
    /// `tls.client.certPath`: the certificate shown when a server asks.
    pub cert_path: Option<PathBuf>,
    /// `tls.client.keyPath`: its private key.
    pub key_path: Option<PathBuf>,
    /// `tls.client.keyPassword`: decrypts an encrypted PKCS#8 key.
    pub key_password: Option<KeyPassword>,
    /// `tls.client.trustCertPath`: CA bundle the server is checked against.
    pub trust_cert_path: Option<PathBuf>,
    /// `tls.client.authServer`: check the server's certificate. Default
    /// false, as RocketMQ's client: any server certificate is accepted (the
    /// handshake signature is still checked).
    pub auth_server: bool,
}

/// Both sides of the TLS keys of one process.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsSettings {
    /// Serving.
    pub server: TlsServerSettings,
    /// Connecting.
    pub client: TlsClientSettings,
    /// The TLS properties file read, if any.
    pub config_file: Option<PathBuf>,
}

/// A trimmed, non-empty value of `key` in `file` (first) or `props`.
fn value<'a>(file: Option<&'a Properties>, props: &'a Properties, key: &str) -> Option<&'a str> {
    let clean = |v: &'a str| Some(v.trim_matches(char::is_whitespace)).filter(|v| !v.is_empty());
    file.and_then(|f| f.get(key))
        .and_then(clean)
        .or_else(|| props.get(key).and_then(clean))
}

fn bool_value(
    file: Option<&Properties>,
    props: &Properties,
    key: &'static str,
) -> Result<Option<bool>, TlsError> {
    match value(file, props, key) {
        None => Ok(None),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(v) => Err(TlsError::BadValue {
            key,
            value: v.to_string(),
            expected: "true or false",
        }),
    }
}

impl TlsSettings {
    /// Read the TLS keys: the file named by `tls.config.file` (which must
    /// exist when named), else [`DEFAULT_TLS_CONFIG_FILE`] if it exists, over
    /// the keys of `props`. Files are only read here; certificates are loaded
    /// by [`TlsServerSettings::build`] and [`TlsClientSettings::build`].
    ///
    /// # Errors
    /// [`TlsError`] for a TLS file that cannot be read, a value of the wrong
    /// form, or a mode that lacks the keys it needs.
    pub fn from_properties(props: &Properties) -> Result<Self, TlsError> {
        let named = props
            .get(TLS_CONFIG_FILE_KEY)
            .map(|v| v.trim_matches(char::is_whitespace))
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        let path = named.or_else(|| {
            let d = Path::new(DEFAULT_TLS_CONFIG_FILE);
            d.is_file().then(|| d.to_path_buf())
        });
        let file = match &path {
            Some(p) => Some(Properties::from_file(p).map_err(|e| TlsError::ConfigFile {
                path: p.clone(),
                reason: e.to_string(),
            })?),
            None => None,
        };
        Self::from_parts(file.as_ref(), props, path)
    }

    fn from_parts(
        file: Option<&Properties>,
        props: &Properties,
        config_file: Option<PathBuf>,
    ) -> Result<Self, TlsError> {
        let get = |k: &str| value(file, props, k);
        let path = |k: &str| get(k).map(PathBuf::from);
        let cert_path = path("tls.server.certPath");
        let mode = match get("tls.server.mode") {
            None if cert_path.is_some() => TlsMode::Permissive,
            None => TlsMode::Disabled,
            Some(v) if v.eq_ignore_ascii_case("disabled") => TlsMode::Disabled,
            Some(v) if v.eq_ignore_ascii_case("permissive") => TlsMode::Permissive,
            Some(v) if v.eq_ignore_ascii_case("enforcing") => TlsMode::Enforcing,
            Some(v) => {
                return Err(TlsError::BadValue {
                    key: "tls.server.mode",
                    value: v.to_string(),
                    expected: "disabled, permissive or enforcing",
                })
            }
        };
        let need_client_auth = match get("tls.server.need.client.auth") {
            None => ClientAuthMode::None,
            Some(v) if v.eq_ignore_ascii_case("none") => ClientAuthMode::None,
            Some(v) if v.eq_ignore_ascii_case("optional") => ClientAuthMode::Optional,
            Some(v) if v.eq_ignore_ascii_case("require") => ClientAuthMode::Require,
            Some(v) => {
                return Err(TlsError::BadValue {
                    key: "tls.server.need.client.auth",
                    value: v.to_string(),
                    expected: "none, optional or require",
                })
            }
        };
        // Read for its form only: client certificates are always checked.
        let _ = bool_value(file, props, "tls.server.authClient")?;
        let _ = bool_value(file, props, "tls.test.mode.enable")?;
        let server = TlsServerSettings {
            mode,
            cert_path,
            key_path: path("tls.server.keyPath"),
            key_password: get("tls.server.keyPassword").map(|p| KeyPassword(p.to_string())),
            need_client_auth,
            trust_cert_path: path("tls.server.trustCertPath"),
        };
        server.check()?;
        let enable = match bool_value(file, props, "useTLS")? {
            Some(v) => v,
            None => bool_value(file, props, "tls.enable")?.unwrap_or(mode == TlsMode::Enforcing),
        };
        let client = TlsClientSettings {
            enable,
            cert_path: path("tls.client.certPath"),
            key_path: path("tls.client.keyPath"),
            key_password: get("tls.client.keyPassword").map(|p| KeyPassword(p.to_string())),
            trust_cert_path: path("tls.client.trustCertPath"),
            auth_server: bool_value(file, props, "tls.client.authServer")?.unwrap_or(false),
        };
        Ok(TlsSettings {
            server,
            client,
            config_file,
        })
    }

    /// The effective server keys as `key=value` lines (for `-p`).
    pub fn to_properties(&self) -> String {
        let p = |p: &Option<PathBuf>| {
            p.as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        };
        format!(
            "tls.server.mode={}\ntls.server.certPath={}\ntls.server.keyPath={}\n\
             tls.server.need.client.auth={}\ntls.server.trustCertPath={}\n",
            self.server.mode.as_str(),
            p(&self.server.cert_path),
            p(&self.server.key_path),
            self.server.need_client_auth.as_str(),
            p(&self.server.trust_cert_path),
        )
    }
}

impl TlsServerSettings {
    /// The keys a mode needs are there: a certificate and key unless
    /// disabled, a CA bundle when client certificates are asked for.
    fn check(&self) -> Result<(), TlsError> {
        if self.mode == TlsMode::Disabled {
            return Ok(());
        }
        if self.cert_path.is_none() || self.key_path.is_none() {
            return Err(TlsError::Missing(format!(
                "tls.server.mode={} needs tls.server.certPath and tls.server.keyPath \
                 (ferromq makes no self-signed certificate as RocketMQ's tls.test.mode.enable does)",
                self.mode.as_str()
            )));
        }
        if self.need_client_auth != ClientAuthMode::None && self.trust_cert_path.is_none() {
            return Err(TlsError::Missing(format!(
                "tls.server.need.client.auth={} needs tls.server.trustCertPath \
                 (the CA bundle client certificates are checked against)",
                self.need_client_auth.as_str()
            )));
        }
        Ok(())
    }

    /// Load the certificate, key and CA bundle and build the acceptor;
    /// `None` when the mode is `disabled`.
    ///
    /// # Errors
    /// [`TlsError`] naming the key whose file is missing, unreadable,
    /// malformed, encrypted, or refused by rustls.
    pub fn build(&self) -> Result<Option<TlsServer>, TlsError> {
        if self.mode == TlsMode::Disabled {
            return Ok(None);
        }
        self.check()?;
        let (Some(cert_path), Some(key_path)) = (&self.cert_path, &self.key_path) else {
            return Err(TlsError::Missing("tls.server.certPath".into()));
        };
        let certs = load_certs("tls.server.certPath", cert_path)?;
        let key = load_key(
            "tls.server.keyPath",
            "tls.server.keyPassword",
            key_path,
            self.key_password.as_ref(),
        )?;
        let provider = provider();
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|source| TlsError::Rustls {
                what: "TLS protocol versions",
                source,
            })?;
        let builder = match (self.need_client_auth, &self.trust_cert_path) {
            (ClientAuthMode::None, _) | (_, None) => builder.with_no_client_auth(),
            (auth, Some(trust)) => {
                let roots = load_roots("tls.server.trustCertPath", trust)?;
                let mut v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                if auth == ClientAuthMode::Optional {
                    v = v.allow_unauthenticated();
                }
                let v = v.build().map_err(|e| TlsError::Pem {
                    key: "tls.server.trustCertPath",
                    path: trust.clone(),
                    reason: e.to_string(),
                })?;
                builder.with_client_cert_verifier(v)
            }
        };
        let cfg = builder
            .with_single_cert(certs, key)
            .map_err(|source| TlsError::Rustls {
                what: "tls.server.certPath / tls.server.keyPath",
                source,
            })?;
        Ok(Some(TlsServer {
            mode: self.mode,
            acceptor: TlsAcceptor::from(Arc::new(cfg)),
        }))
    }
}

impl TlsClientSettings {
    /// Settings for a command-line client: check the server against the CA
    /// bundle `ca` when given, else accept any server certificate (RocketMQ's
    /// client default, `tls.client.authServer=false`).
    pub fn for_cli(ca: Option<PathBuf>) -> Self {
        TlsClientSettings {
            enable: true,
            auth_server: ca.is_some(),
            trust_cert_path: ca,
            ..TlsClientSettings::default()
        }
    }

    /// Load the files and build the connector.
    ///
    /// # Errors
    /// [`TlsError`] naming the key whose file is missing, unreadable or
    /// malformed; `tls.client.authServer=true` without
    /// `tls.client.trustCertPath` (ferromq reads no system trust store).
    pub fn build(&self) -> Result<TlsClient, TlsError> {
        let provider = provider();
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|source| TlsError::Rustls {
                what: "TLS protocol versions",
                source,
            })?;
        let builder = if self.auth_server {
            let Some(trust) = &self.trust_cert_path else {
                return Err(TlsError::Missing(
                    "tls.client.authServer=true needs tls.client.trustCertPath \
                     (ferromq reads no system trust store)"
                        .into(),
                ));
            };
            builder.with_root_certificates(load_roots("tls.client.trustCertPath", trust)?)
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert(provider)))
        };
        let cfg = match (&self.cert_path, &self.key_path) {
            (Some(c), Some(k)) => {
                let certs = load_certs("tls.client.certPath", c)?;
                let key = load_key(
                    "tls.client.keyPath",
                    "tls.client.keyPassword",
                    k,
                    self.key_password.as_ref(),
                )?;
                builder
                    .with_client_auth_cert(certs, key)
                    .map_err(|source| TlsError::Rustls {
                        what: "tls.client.certPath / tls.client.keyPath",
                        source,
                    })?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => {
                return Err(TlsError::Missing(
                    "tls.client.certPath and tls.client.keyPath go together".into(),
                ))
            }
        };
        Ok(TlsClient {
            connector: TlsConnector::from(Arc::new(cfg)),
        })
    }
}

/// The crypto provider: ring (no C/CMake build as aws-lc-rs needs).
// rustls 0.23.48 deprecates the ring provider because it has no
// post-quantum key exchange (X25519MLKEM768); the classic groups it offers
// (X25519, P-256, P-384) are what RocketMQ's Java clients negotiate anyway.
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(key: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        key,
        path: path.to_path_buf(),
        source,
    })
}

/// Every certificate in a PEM file; at least one.
fn load_certs(key: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(key, path)?;
    let pem = |reason: String| TlsError::Pem {
        key,
        path: path.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem(format!("malformed PEM: {e}")))?;
    if certs.is_empty() {
        return Err(pem("no CERTIFICATE block".into()));
    }
    Ok(certs)
}

/// The first private key in a PEM file, an encrypted PKCS#8 one decrypted
/// with `password`; a key in OpenSSL's legacy encryption is an error that
/// says how to convert it.
fn load_key(
    key: &'static str,
    key_password: &'static str,
    path: &Path,
    password: Option<&KeyPassword>,
) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(key, path)?;
    let text = String::from_utf8_lossy(&bytes);
    let bad = |reason: String| TlsError::Pem {
        key,
        path: path.to_path_buf(),
        reason,
    };
    if text.contains("Proc-Type: 4,ENCRYPTED") {
        // OpenSSL's legacy PEM encryption (DES/AES with an MD5 key
        // derivation), which RocketMQ's Netty does not read either.
        return Err(TlsError::EncryptedKey {
            key,
            key_password,
            path: path.to_path_buf(),
        });
    }
    if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        let Some(password) = password else {
            return Err(bad(format!(
                "an encrypted PKCS#8 key, and {key_password} is not set"
            )));
        };
        let (_, doc) = pkcs8::SecretDocument::from_pem(&text)
            .map_err(|e| bad(format!("malformed encrypted PKCS#8 PEM: {e}")))?;
        let info = pkcs8::EncryptedPrivateKeyInfo::try_from(doc.as_bytes())
            .map_err(|e| bad(format!("malformed encrypted PKCS#8 key: {e}")))?;
        let plain = info.decrypt(password.0.as_bytes()).map_err(|e| {
            bad(format!(
                "cannot decrypt the key with {key_password} (wrong password or an \
                 unsupported cipher): {e}"
            ))
        })?;
        return Ok(PrivateKeyDer::Pkcs8(plain.as_bytes().to_vec().into()));
    }
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        bad(match e {
            rustls_pki_types::pem::Error::NoItemsFound => {
                "no PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block".into()
            }
            e => format!("malformed PEM: {e}"),
        })
    })
}

/// A CA bundle; at least one certificate, each accepted as a trust anchor.
fn load_roots(key: &'static str, path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in load_certs(key, path)? {
        roots.add(c).map_err(|e| TlsError::Pem {
            key,
            path: path.to_path_buf(),
            reason: format!("not a usable CA certificate: {e}"),
        })?;
    }
    Ok(roots)
}

/// A built server-side TLS setup: the mode and the acceptor.
#[derive(Clone)]
pub struct TlsServer {
    mode: TlsMode,
    acceptor: TlsAcceptor,
}

impl std::fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsServer")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// What an accepted connection turned out to be.
pub(crate) enum Accepted {
    /// Plain remoting (permissive mode, first byte not 0x16).
    Plain(TcpStream),
    /// A finished TLS handshake.
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// Closed by the server: a plain client in enforcing mode or a failed
    /// handshake (why, for a rate-limited WARN).
    Refused(String),
    /// The peer went away or stayed silent before its first byte: as on a
    /// plain port, closed without a WARN (load balancers' TCP checks).
    Gone(String),
}

impl TlsServer {
    /// The mode (never `disabled`: a disabled server has no `TlsServer`).
    pub fn mode(&self) -> TlsMode {
        self.mode
    }

    /// The rustls configuration, for blocking sessions (the HA port).
    pub fn rustls_config(&self) -> Arc<rustls::ServerConfig> {
        Arc::clone(self.acceptor.config())
    }

    /// Tell TLS from plain by the first byte (waiting at most `first_byte`
    /// for it) and run the handshake (at most [`HANDSHAKE_TIMEOUT`]).
    pub(crate) async fn accept(&self, stream: TcpStream, first_byte: Option<Duration>) -> Accepted {
        let mut b = [0u8; 1];
        let peeked = match first_byte {
            Some(t) => match tokio::time::timeout(t, stream.peek(&mut b)).await {
                Ok(r) => r,
                Err(_) => return Accepted::Gone("no byte before the idle timeout".into()),
            },
            None => stream.peek(&mut b).await,
        };
        match peeked {
            Ok(0) => return Accepted::Gone("closed before sending anything".into()),
            Err(e) => return Accepted::Gone(format!("socket error: {e}")),
            Ok(_) => {}
        }
        if b[0] != TLS_HANDSHAKE_BYTE {
            return match self.mode {
                TlsMode::Enforcing => Accepted::Refused(format!(
                    "plain connection (first byte {:#04x}) refused: tls.server.mode=enforcing",
                    b[0]
                )),
                _ => Accepted::Plain(stream),
            };
        }
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(stream)).await {
            Ok(Ok(s)) => Accepted::Tls(Box::new(s)),
            Ok(Err(e)) => Accepted::Refused(format!("TLS handshake failed: {e}")),
            Err(_) => Accepted::Refused(format!(
                "TLS handshake not done within {HANDSHAKE_TIMEOUT:?}"
            )),
        }
    }
}

/// A built client-side TLS setup (cheap to clone).
#[derive(Clone)]
pub struct TlsClient {
    connector: TlsConnector,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClient").finish_non_exhaustive()
    }
}

impl TlsClient {
    /// The rustls configuration, for blocking sessions (the HA port).
    pub fn rustls_config(&self) -> Arc<rustls::ClientConfig> {
        Arc::clone(self.connector.config())
    }

    /// Run the TLS handshake on a connected `tcp` to `addr` (`host:port`;
    /// the host is the name the certificate is checked for when the server
    /// is authenticated).
    ///
    /// # Errors
    /// The handshake failed or `addr` has no valid host name.
    pub async fn handshake(&self, addr: &str, tcp: TcpStream) -> io::Result<ClientStream> {
        let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(host.to_string()).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{addr}: not a host name for TLS: {e}"),
            )
        })?;
        let s = tokio::time::timeout(HANDSHAKE_TIMEOUT, self.connector.connect(name, tcp))
            .await
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{addr}: TLS handshake not done within {HANDSHAKE_TIMEOUT:?}"),
                )
            })??;
        Ok(ClientStream::Tls(Box::new(s)))
    }
}

/// Connect to `addr` with TCP_NODELAY, then run the TLS handshake when `tls`
/// is given.
///
/// # Errors
/// Connecting or the handshake failed.
pub async fn connect(addr: &str, tls: Option<&TlsClient>) -> io::Result<ClientStream> {
    let tcp = TcpStream::connect(addr).await?;
    let _ = tcp.set_nodelay(true);
    match tls {
        None => Ok(ClientStream::Plain(tcp)),
        Some(t) => t.handshake(addr, tcp).await,
    }
}

/// An outgoing connection, plain or TLS. Writes to a TLS stream may stay in
/// the session's buffer until flushed: flush after each batch of writes.
#[derive(Debug)]
pub enum ClientStream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for ClientStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_flush(cx),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// RocketMQ's client default (`tls.client.authServer=false`, Netty's
/// `InsecureTrustManagerFactory`): any server certificate is accepted. The
/// handshake signatures are still checked, so the session key is bound to
/// the certificate the server showed; what is not checked is who issued it.
#[derive(Debug)]
struct AcceptAnyServerCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_knows_every_tls_key_as_a_broker_key() {
        // Two lists in two crates (the engine cannot see this one): the
        // broker's store config would warn "unknown key" for a missing one.
        for k in TLS_KEYS {
            assert!(ferromq_engine::config::BROKER_KEYS.contains(k), "{k}");
        }
    }

    fn settings(text: &str) -> Result<TlsSettings, TlsError> {
        TlsSettings::from_parts(None, &Properties::parse(text), None)
    }

    #[test]
    fn default_is_plain_and_a_certificate_makes_it_permissive() {
        let s = settings("").unwrap();
        assert_eq!(s.server.mode, TlsMode::Disabled);
        assert!(!s.client.auth_server);
        let s = settings("tls.server.certPath=c.pem\ntls.server.keyPath=k.pem\n").unwrap();
        assert_eq!(s.server.mode, TlsMode::Permissive);
    }

    #[test]
    fn modes_without_what_they_need_are_errors_naming_the_key() {
        let e = settings("tls.server.mode=enforcing\n").unwrap_err();
        assert!(e.to_string().contains("tls.server.certPath"), "{e}");
        let e = settings("tls.server.mode=strict\n").unwrap_err();
        assert!(e.to_string().contains("tls.server.mode=strict"), "{e}");
        let e = settings(
            "tls.server.mode=enforcing\ntls.server.certPath=c\ntls.server.keyPath=k\n\
             tls.server.need.client.auth=require\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("tls.server.trustCertPath"), "{e}");
        let e = settings("tls.client.authServer=yes\n").unwrap_err();
        assert!(e.to_string().contains("tls.client.authServer"), "{e}");
    }

    #[test]
    fn the_tls_file_wins_over_the_main_file() {
        let file = Properties::parse("tls.server.mode=enforcing\n");
        let main = Properties::parse(
            "tls.server.mode=disabled\ntls.server.certPath=c\ntls.server.keyPath=k\n",
        );
        let s = TlsSettings::from_parts(Some(&file), &main, None).unwrap();
        assert_eq!(s.server.mode, TlsMode::Enforcing);
        assert_eq!(s.server.cert_path.as_deref(), Some(Path::new("c")));
    }
}
