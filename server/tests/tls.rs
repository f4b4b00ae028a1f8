//! TLS on the broker and name server ports (`tls.server.*`), against the real
//! binaries with certificates made here (rcgen): enforcing mode refuses plain
//! clients and garbage but serves TLS clients a send + pull round trip;
//! permissive mode serves both on one port; required client certificates
//! must chain to the trusted CA; `openssl s_client` completes a handshake;
//! bad certificate files stop the broker at start with an error naming the key.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use ferromq_server::remoting::tls::{TlsClient, TlsClientSettings};
use ferromq_server::remoting::{request, response, RemotingClient, RemotingCommand};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

const TIMEOUT: Duration = Duration::from_secs(10);

/// A CA and the PEM files of certificates it signed.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        Ca {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// Write the CA certificate to `dir/<file>`.
    fn write(&self, dir: &Path, file: &str) -> PathBuf {
        let p = dir.join(file);
        std::fs::write(&p, &self.cert_pem).unwrap();
        p
    }

    /// A certificate for localhost and 127.0.0.1 signed by this CA, written
    /// to `dir/<stem>.pem` and its key to `dir/<stem>.key`.
    fn leaf(&self, dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, stem);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let (c, k) = (
            dir.join(format!("{stem}.pem")),
            dir.join(format!("{stem}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }
}

/// A CA, a server certificate it signed, and the broker properties lines
/// that serve it in `mode`.
struct Certs {
    ca: Ca,
    ca_path: PathBuf,
    props: String,
}

fn certs(dir: &Path, mode: Option<&str>) -> Certs {
    let ca = Ca::new("ferromq test CA");
    let ca_path = ca.write(dir, "ca.pem");
    let (cert, key) = ca.leaf(dir, "server");
    let mut props = format!(
        "tls.server.certPath={}\ntls.server.keyPath={}\n",
        cert.display(),
        key.display()
    );
    if let Some(m) = mode {
        props.push_str(&format!("tls.server.mode={m}\n"));
    }
    Certs { ca, ca_path, props }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A TLS client that checks the server against `ca`, showing `cert` if given.
fn tls_client(ca: &Path, cert: Option<(PathBuf, PathBuf)>) -> TlsClient {
    let (cert_path, key_path) = cert.map_or((None, None), |(c, k)| (Some(c), Some(k)));
    TlsClientSettings {
        cert_path,
        key_path,
        ..TlsClientSettings::for_cli(Some(ca.to_path_buf()))
    }
    .build()
    .unwrap()
}

/// Send one message to queue 0 of `topic` over `client`, wait until it is
/// dispatched and pull it back; the body must come back intact.
async fn send_and_pull(client: &RemotingClient, topic: &str, body: &[u8]) {
    let r = client
        .invoke(Client::send_v2_req(topic, 0, body, &[]), TIMEOUT)
        .await
        .expect("send over TLS");
    assert_eq!(r.code, response::SUCCESS, "send: {:?}", r.remark);
    let offset = r.ext_fields.get_i64("queueOffset").unwrap();
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        let r = client
            .invoke(
                Client::offset_req(request::GET_MAX_OFFSET, topic, 0),
                TIMEOUT,
            )
            .await
            .unwrap();
        if r.ext_fields.get_i64("offset").unwrap() > offset {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never dispatched");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = client
        .invoke(
            Client::pull_req("tls-group", topic, 0, offset as u64, 1, 0x4, 0, "*"),
            TIMEOUT,
        )
        .await
        .expect("pull over TLS");
    assert_eq!(r.code, response::SUCCESS, "pull: {:?}", r.remark);
    let msgs = records(&r.body);
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].body, body);
}

/// A plain client's request on `port` is answered (true) or the connection
/// is closed without an answer (false).
fn plain_request_answered(port: u16) -> bool {
    let mut c = Client::connect(port);
    c.stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let frame = ferromq_server::remoting::codec::encode(&RemotingCommand::request(
        request::GET_BROKER_RUNTIME_INFO,
    ))
    .unwrap();
    c.write_raw(&frame);
    let mut len = [0u8; 4];
    std::io::Read::read_exact(&mut c.stream, &mut len).is_ok()
}

#[test]
fn enforcing_mode_refuses_plain_clients_and_garbage_and_serves_tls() {
    let (_tmp, dir) = temp_dir();
    let c = certs(&dir, Some("enforcing"));
    let (_broker, port) = start_broker(&dir, &broker_props(&dir.join("store"), &c.props), None);
    assert!(
        !plain_request_answered(port),
        "a plain client must be closed in enforcing mode"
    );
    // Garbage instead of a ClientHello: text, and a 0x16 byte followed by junk.
    for junk in [
        &b"GET / HTTP/1.0\r\n\r\n"[..],
        &[0x16, 3, 1, 0, 5, 1, 2, 3, 4, 5][..],
    ] {
        let mut raw = Client::connect(port);
        raw.write_raw(junk);
        assert!(
            raw.closed_within(Duration::from_secs(15)),
            "{junk:?} not closed"
        );
    }
    let rt = runtime();
    rt.block_on(async {
        let client = RemotingClient::with_tls(
            format!("127.0.0.1:{port}"),
            Some(tls_client(&c.ca_path, None)),
        );
        send_and_pull(&client, "TlsEnforced", b"over tls").await;
        // A client that does not trust the server's CA gives up.
        let other = Ca::new("someone else");
        let other_ca = other.write(&dir, "other-ca.pem");
        let doubter = RemotingClient::with_tls(
            format!("127.0.0.1:{port}"),
            Some(tls_client(&other_ca, None)),
        );
        let e = doubter
            .invoke(
                RemotingCommand::request(request::GET_BROKER_RUNTIME_INFO),
                TIMEOUT,
            )
            .await
            .expect_err("the server's certificate is not from other-ca");
        assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");
        // The first client still works after all that.
        send_and_pull(&client, "TlsEnforced", b"still served").await;
    });
}

#[test]
fn permissive_mode_serves_plain_and_tls_on_one_port_from_the_tls_config_file() {
    let (_tmp, dir) = temp_dir();
    // No tls.server.mode: a certificate makes it permissive (RocketMQ's default).
    let c = certs(&dir, None);
    let tls_file = dir.join("tls.properties");
    std::fs::write(&tls_file, &c.props).unwrap();
    let extra = format!("tls.config.file={}\n", tls_file.display());
    let (_broker, port) = start_broker(&dir, &broker_props(&dir.join("store"), &extra), None);
    let mut plain = Client::connect(port);
    let r = plain.send_v2("Permissive", 0, b"plain", None, None);
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    runtime().block_on(async {
        // Any server certificate accepted, as RocketMQ's client default.
        let any = TlsClientSettings::for_cli(None).build().unwrap();
        let client = RemotingClient::with_tls(format!("127.0.0.1:{port}"), Some(any));
        send_and_pull(&client, "Permissive", b"tls").await;
    });
    let r = plain.send_v2("Permissive", 0, b"plain again", None, None);
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
}

#[test]
fn required_client_certificates_must_chain_to_the_trusted_ca() {
    let (_tmp, dir) = temp_dir();
    let c = certs(&dir, Some("enforcing"));
    let props = format!(
        "{}tls.server.need.client.auth=require\ntls.server.trustCertPath={}\n",
        c.props,
        c.ca_path.display()
    );
    let (_broker, port) = start_broker(&dir, &broker_props(&dir.join("store"), &props), None);
    let addr = format!("127.0.0.1:{port}");
    let stranger = Ca::new("unknown CA");
    let stranger_cert = stranger.leaf(&dir, "stranger");
    let friend_cert = c.ca.leaf(&dir, "friend");
    runtime().block_on(async {
        let info = || RemotingCommand::request(request::GET_BROKER_RUNTIME_INFO);
        for (who, cert) in [
            ("no certificate", None),
            ("unknown CA", Some(stranger_cert)),
        ] {
            let client = RemotingClient::with_tls(addr.clone(), Some(tls_client(&c.ca_path, cert)));
            let r = client.invoke(info(), TIMEOUT).await;
            assert!(r.is_err(), "{who}: served {:?}", r.map(|r| r.code));
        }
        let client = RemotingClient::with_tls(
            addr.clone(),
            Some(tls_client(&c.ca_path, Some(friend_cert))),
        );
        send_and_pull(&client, "MutualTls", b"trusted client").await;
    });
}

#[test]
fn openssl_s_client_completes_a_handshake() {
    if Command::new("openssl").arg("version").output().is_err() {
        eprintln!("skipped: no openssl command on this machine");
        return;
    }
    let (_tmp, dir) = temp_dir();
    let c = certs(&dir, Some("enforcing"));
    let (_broker, port) = start_broker(&dir, &broker_props(&dir.join("store"), &c.props), None);
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .arg("-CAfile")
        .arg(&c.ca_path)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Verify return code: 0 (ok)"),
        "openssl s_client: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_name_server_serves_tls_and_the_broker_and_admin_tool_speak_it() {
    let (_tmp, dir) = temp_dir();
    let c = certs(&dir, Some("enforcing"));
    let cfg = dir.join("namesrv.properties");
    std::fs::write(
        &cfg,
        format!("listenPort=0\nbindAddress=127.0.0.1\n{}", c.props),
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferromq-namesrv"));
    cmd.arg("-c").arg(&cfg);
    let mut ns = spawn_to("namesrv", cmd, Stdio::null(), "warn");
    let ns_port = port_of(&ns.wait_line("listening on", Duration::from_secs(20)));
    // Enforcing on both: the broker registers over TLS (useTLS defaults to
    // true in enforcing mode, as RocketMQ's BrokerStartup sets it).
    let (_broker, broker_port) = start_broker(
        &dir,
        &broker_props(&dir.join("store"), &c.props),
        Some(ns_port),
    );
    let admin = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ferromq-admin"))
            .arg("-n")
            .arg(format!("127.0.0.1:{ns_port}"))
            .args(args)
            .output()
            .expect("run ferromq-admin")
    };
    let ca = c.ca_path.to_str().unwrap();
    let mut listed = String::new();
    for _ in 0..100 {
        let out = admin(&["--tls-ca", ca, "clusterList"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        listed = String::from_utf8_lossy(&out.stdout).into_owned();
        if listed.contains("broker-t") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(listed.contains("broker-t"), "{listed}");
    // The broker's own port over TLS.
    let out = admin(&[
        "--tls",
        "brokerStatus",
        "-b",
        &format!("127.0.0.1:{broker_port}"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = admin(&["topicList"]);
    assert!(!out.status.success(), "a plain admin call was served");
    let out = admin(&["--tls", "topicList"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The broker binary with `props` exits with an error whose text contains
/// every one of `needles`.
fn broker_fails_with(dir: &Path, props: &str, needles: &[&str]) -> String {
    let out = broker_command(broker_bin(), dir, props)
        .stdin(Stdio::null())
        .output()
        .expect("run the broker");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started with {props}: {err}");
    for n in needles {
        assert!(err.contains(n), "{n:?} not in: {err}");
    }
    err.to_string()
}

#[test]
fn bad_certificate_files_are_clear_startup_errors() {
    let (_tmp, dir) = temp_dir();
    let store = dir.join("store");
    let c = certs(&dir, Some("enforcing"));
    let key = dir.join("server.key");
    let missing = dir.join("nope.pem");
    broker_fails_with(
        &dir,
        &broker_props(
            &store,
            &format!(
                "tls.server.mode=enforcing\ntls.server.certPath={}\ntls.server.keyPath={}\n",
                missing.display(),
                key.display()
            ),
        ),
        &["tls.server.certPath", "nope.pem"],
    );
    let junk = dir.join("junk.pem");
    std::fs::write(
        &junk,
        "-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    broker_fails_with(
        &dir,
        &broker_props(
            &store,
            &format!(
                "tls.server.mode=enforcing\ntls.server.certPath={}\ntls.server.keyPath={}\n",
                junk.display(),
                key.display()
            ),
        ),
        &["tls.server.certPath", "junk.pem"],
    );
    let no_key = dir.join("nokey.pem");
    std::fs::write(&no_key, &c.ca.cert_pem).unwrap();
    broker_fails_with(
        &dir,
        &broker_props(
            &store,
            &format!(
                "tls.server.mode=enforcing\ntls.server.certPath={}\ntls.server.keyPath={}\n",
                dir.join("server.pem").display(),
                no_key.display()
            ),
        ),
        &["tls.server.keyPath", "no PRIVATE KEY"],
    );
    let encrypted = dir.join("encrypted.key");
    std::fs::write(
        &encrypted,
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n",
    )
    .unwrap();
    broker_fails_with(
        &dir,
        &broker_props(
            &store,
            &format!(
                "tls.server.mode=enforcing\ntls.server.certPath={}\ntls.server.keyPath={}\ntls.server.keyPassword=secret\n",
                dir.join("server.pem").display(),
                encrypted.display()
            ),
        ),
        &["tls.server.keyPath", "encrypted"],
    );
    broker_fails_with(
        &dir,
        &broker_props(&store, "tls.server.mode=enforcing\n"),
        &["tls.server.certPath"],
    );
    broker_fails_with(
        &dir,
        &broker_props(&store, &format!("tls.config.file={}\n", missing.display())),
        &["tls.config.file", "nope.pem"],
    );
    // None of these opened the store.
    assert!(!store.join("commitlog").exists());
}

#[test]
fn the_fast_port_serves_the_same_requests_with_the_same_tls_mode() {
    let (_tmp, dir) = temp_dir();
    let c = certs(&dir, Some("enforcing"));
    // A free port for fastListenPort (RocketMQ's listenPort - 2).
    let fast = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let props = format!("{}fastListenPort={fast}\n", c.props);
    let mut cmd = broker_command(
        broker_bin(),
        &dir,
        &broker_props(&dir.join("store"), &props),
    );
    cmd.stdin(Stdio::null());
    let mut broker = spawn_to("broker", cmd, Stdio::null(), "warn");
    let line = broker.wait_line("fast port", Duration::from_secs(30));
    assert!(line.ends_with(&format!(":{fast}")), "{line}");
    assert!(
        !plain_request_answered(fast),
        "a plain client must be closed on the fast port too"
    );
    runtime().block_on(async {
        let client = RemotingClient::with_tls(
            format!("127.0.0.1:{fast}"),
            Some(tls_client(&c.ca_path, None)),
        );
        send_and_pull(&client, "FastPort", b"vip channel").await;
    });
}

/// `tls.server.keyPassword` decrypts an encrypted PKCS#8 key (made by
/// `openssl pkcs8 -topk8`, as an operator would): the broker serves TLS with
/// it; a wrong or missing password is a clear startup error that never
/// quotes the password.
#[test]
fn an_encrypted_key_is_read_with_its_password() {
    if std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_err()
    {
        eprintln!("skipping: the openssl command is not installed (it makes the encrypted key)");
        return;
    }
    let (_tmp, dir) = temp_dir();
    let c = certs(&dir, Some("enforcing"));
    let encrypted = dir.join("server.p8.pem");
    let st = std::process::Command::new("openssl")
        .args([
            "pkcs8",
            "-topk8",
            "-v2",
            "aes-256-cbc",
            "-passout",
            "pass:s3cret-pw",
            "-in",
        ])
        .arg(dir.join("server.key"))
        .arg("-out")
        .arg(&encrypted)
        .status()
        .unwrap();
    assert!(st.success(), "openssl pkcs8 -topk8 failed");
    assert!(std::fs::read_to_string(&encrypted)
        .unwrap()
        .contains("BEGIN ENCRYPTED PRIVATE KEY"));
    let props = |password: &str| {
        broker_props(
            &dir.join("store"),
            &format!(
                "tls.server.mode=enforcing\ntls.server.certPath={}\ntls.server.keyPath={}\n{password}",
                dir.join("server.pem").display(),
                encrypted.display()
            ),
        )
    };
    broker_fails_with(
        &dir,
        &props("tls.server.keyPassword=wrong-pw\n"),
        &[
            "tls.server.keyPath",
            "cannot decrypt",
            "tls.server.keyPassword",
        ],
    );
    broker_fails_with(
        &dir,
        &props(""),
        &["tls.server.keyPath", "tls.server.keyPassword is not set"],
    );
    let (_broker, port) = start_broker(&dir, &props("tls.server.keyPassword=s3cret-pw\n"), None);
    runtime().block_on(async {
        let client = RemotingClient::with_tls(
            format!("127.0.0.1:{port}"),
            Some(tls_client(&c.ca_path, None)),
        );
        send_and_pull(&client, "TlsEncryptedKey", b"with a decrypted key").await;
    });
}
