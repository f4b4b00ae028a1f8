//! Name server + SYNC_MASTER + SLAVE as real processes: the slave learns its
//! master from the name server, a send is acknowledged only once the slave has
//! it, the slave serves every message, and it keeps serving after the master is
//! SIGKILLed.

mod common;

use std::time::Duration;

use common::{broker_props, records, start_broker, start_namesrv, temp_dir, wait_for, Client};
use ferromq_server::remoting::codes::{request, response};
use ferromq_server::remoting::RemotingCommand;

#[test]
fn sync_master_and_slave_over_the_name_server() {
    let (_d, dir) = temp_dir();
    let (_ns, ns_port) = start_namesrv(&dir);
    let mdir = dir.join("master");
    let sdir = dir.join("slave");
    std::fs::create_dir_all(&mdir).unwrap();
    std::fs::create_dir_all(&sdir).unwrap();
    let (mut master, m_port) = start_broker(
        &mdir,
        &broker_props(
            &mdir.join("store"),
            "brokerName=broker-a\nbrokerRole=SYNC_MASTER\n",
        )
        .replace("brokerName=broker-t\n", ""),
        Some(ns_port),
    );
    // The master is registered before the slave asks the name server.
    let mut ns = Client::connect(ns_port);
    wait_for(Duration::from_secs(20), || {
        let r = ns.invoke(RemotingCommand::request(request::GET_BROKER_CLUSTER_INFO));
        let body = String::from_utf8_lossy(&r.body).to_string();
        body.contains("broker-a").then_some(())
    })
    .expect("master registered");
    let (_slave, s_port) = start_broker(
        &sdir,
        &broker_props(
            &sdir.join("store"),
            "brokerName=broker-a\nbrokerId=1\nbrokerRole=SLAVE\n",
        )
        .replace("brokerName=broker-t\n", "")
        .replace("brokerId=0\n", ""),
        Some(ns_port),
    );
    let mut mc = Client::connect(m_port);
    // Until the slave follows, SYNC_MASTER sends are stored but answered 11.
    wait_for(Duration::from_secs(30), || {
        let r = mc.send_v2("HaTopic", 0, b"probe", Some("T"), None);
        (r.code == response::SUCCESS).then_some(())
    })
    .expect("the slave follows the master it learned from the name server");
    for i in 0..200 {
        let r = mc.send_v2(
            "HaTopic",
            i % 4,
            format!("m{i}").as_bytes(),
            Some("T"),
            Some(&format!("k{i}")),
        );
        assert_eq!(r.code, response::SUCCESS, "send {i}: {:?}", r.remark);
    }
    // The slave serves every message from its own consume queues.
    let mut sc = Client::connect(s_port);
    let count_on_slave = |sc: &mut Client| -> usize {
        let mut n = 0;
        for q in 0..4 {
            let mut offset = 0;
            for _ in 0..100 {
                let r = sc.pull("ha-group", "HaTopic", q, offset, 32);
                if r.code != response::SUCCESS {
                    break;
                }
                let recs = records(&r.body);
                n += recs.len();
                offset = recs.last().map(|m| m.queue_offset + 1).unwrap_or(offset);
            }
        }
        n
    };
    let total = wait_for(Duration::from_secs(20), || {
        let n = count_on_slave(&mut sc);
        (n >= 200).then_some(n)
    })
    .expect("every acknowledged message is on the slave");
    assert!(total >= 200);
    // A slave refuses sends.
    let r = sc.send_v2("HaTopic", 0, b"no", None, None);
    assert_ne!(r.code, response::SUCCESS);
    // The master dies: the slave still serves everything that was acknowledged.
    master.child.kill().unwrap();
    let _ = master.child.wait();
    assert!(count_on_slave(&mut sc) >= 200);
}
