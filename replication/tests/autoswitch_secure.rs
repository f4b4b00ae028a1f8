//! Epoch mode behind TLS and the authenticated handshake: the epoch hello
//! runs after both, a diverged-free slave follows, and an epoch-mode slave
//! is refused by a classic master (and the other way round) with the store
//! untouched.

mod autoswitch_common;
mod common;

use std::sync::Arc;

use autoswitch_common::{any_port, az, epochs, put_n, starts};
use common::{certs::configs, log_bytes, store, wait_until};
use ferromq_engine::BrokerRole;
use ferromq_replication::{HaAuth, HaMaster, HaSlave, HaTls};

/// Every member shares one key; a signature is the content's length and
/// the key (enough to tell the handshake ran).
#[derive(Debug)]
struct Member;

impl HaAuth for Member {
    fn broker_name(&self) -> &str {
        "broker-a"
    }
    fn access_key(&self) -> &str {
        "admin"
    }
    fn sign(&self, content: &[u8]) -> String {
        format!("{}:{}", content.len(), crc(content))
    }
    fn verify(&self, access_key: &str, content: &[u8], signature: &str) -> bool {
        access_key == "admin" && signature == self.sign(content)
    }
    fn nonce(&self) -> Result<[u8; 16], String> {
        Ok([3; 16])
    }
}

fn crc(b: &[u8]) -> u32 {
    b.iter()
        .fold(17u32, |h, &x| h.wrapping_mul(31).wrapping_add(u32::from(x)))
}

#[test]
fn epoch_hello_runs_after_tls_and_auth() {
    let (md, sd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (server, client) = configs();
    let m = store(md.path(), BrokerRole::AsyncMaster);
    let em = epochs(md.path());
    em.become_master(1, 0).unwrap();
    let mut mcfg = az(&em, 1);
    mcfg.auth = Some(Arc::new(Member));
    mcfg.tls = HaTls {
        server: Some(server),
        server_required: true,
        client: None,
    };
    let master = HaMaster::start(m.clone(), any_port(), mcfg).unwrap();
    let s = store(sd.path(), BrokerRole::Slave);
    let es = epochs(sd.path());
    let mut scfg = az(&es, 2);
    scfg.auth = Some(Arc::new(Member));
    scfg.tls = HaTls {
        client: Some(client),
        ..HaTls::default()
    };
    let slave = HaSlave::start(s.clone(), master.local_addr().to_string(), scfg).unwrap();
    put_n(&m, 400, "secure");
    wait_until(20, "slave caught up", || {
        s.commit_log_max_offset() == m.commit_log_max_offset()
    });
    em.become_master(2, m.commit_log_max_offset()).unwrap();
    put_n(&m, 100, "secure-2");
    wait_until(20, "slave re-handshook and caught up", || {
        slave.status().epoch_handshakes >= 2
            && s.commit_log_max_offset() == m.commit_log_max_offset()
    });
    assert_eq!(starts(&es), starts(&em));
    assert_eq!(master.slaves()[0].broker_id, Some(2));
    let max = m.commit_log_max_offset();
    assert!(log_bytes(&s, 0, max) == log_bytes(&m, 0, max));
}

#[test]
fn classic_and_epoch_mode_refuse_each_other() {
    let (md, sd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let m = store(md.path(), BrokerRole::AsyncMaster);
    put_n(&m, 20, "classic");
    // A classic master and an epoch-mode slave.
    let classic = HaMaster::start(m.clone(), any_port(), common::fast_ha()).unwrap();
    let s = store(sd.path(), BrokerRole::Slave);
    let es = epochs(sd.path());
    let slave = HaSlave::start(s.clone(), classic.local_addr().to_string(), az(&es, 2)).unwrap();
    wait_until(10, "the slave refused", || {
        slave.status().protocol_errors >= 1
    });
    assert_eq!(s.commit_log_max_offset(), 0);
    assert!(slave
        .status()
        .last_error
        .unwrap_or_default()
        .contains("epoch mode"));
    slave.shutdown();
    classic.shutdown();

    // An epoch-mode master and a classic slave.
    let em = epochs(md.path());
    em.become_master(1, m.commit_log_max_offset()).unwrap();
    let master = HaMaster::start(m.clone(), any_port(), az(&em, 1)).unwrap();
    let plain = HaSlave::start(
        s.clone(),
        master.local_addr().to_string(),
        common::fast_ha(),
    )
    .unwrap();
    wait_until(10, "the master closed on the classic slave", || {
        plain.status().connections >= 2
    });
    assert_eq!(s.commit_log_max_offset(), 0, "nothing streamed");
    assert!(master.slaves().iter().all(|i| i.streaming_from.is_none()));
}
