//! An idle slave keeps reporting: with the master's heartbeat frames
//! arriving about as often as the slave's read timeout, the slave still
//! sends its offset report every heartbeat interval, so the master never
//! drops it as silent (which in controller mode shrank the SyncStateSet of
//! an idle cluster).

mod common;

use std::time::{Duration, Instant};

use common::{store, wait_until};
use ferromq_engine::BrokerRole;
use ferromq_replication::{HaConfig, HaMaster, HaSlave};

#[test]
fn an_idle_slave_is_not_dropped_as_silent() {
    let (md, sd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let cfg = HaConfig {
        heartbeat_interval: Duration::from_millis(500),
        housekeeping_interval: Duration::from_millis(1500),
        reconnect_interval: Duration::from_millis(100),
        ..HaConfig::default()
    };
    let m = store(md.path(), BrokerRole::AsyncMaster);
    let master = HaMaster::start(m.clone(), "127.0.0.1:0".parse().unwrap(), cfg.clone()).unwrap();
    let s = store(sd.path(), BrokerRole::Slave);
    let slave = HaSlave::start(s, master.local_addr().to_string(), cfg).unwrap();
    wait_until(10, "the slave connected", || master.slaves().len() == 1);
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        assert_eq!(
            master.slaves().len(),
            1,
            "the master dropped the idle slave"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(slave.status().connections, 1, "{:?}", slave.status());
    slave.shutdown();
    master.shutdown();
}
