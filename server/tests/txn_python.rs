//! The seed's transactional producer with a real client: Apache's C++ client
//! (PyPI `rocketmq-client-python==0.5.0rc2`, `TransactionMQProducer`) driven by
//! `tests/clients/python_txn_client.py` against the real name server and broker.
//!
//! 3,000 messages: the local transaction commits a third, rolls back a third
//! and answers unknown for the rest; the broker checks those back and the check
//! listener commits half of them and rolls back the others. A push consumer
//! must receive exactly the committed messages (1,500), each once.
//!
//! Skips (with a message) when `python3` or the package is missing.

mod common;

use std::time::Duration;

use common::*;
use ferromq_server::remoting::request;

const TOPIC: &str = "PyTxnTopic";
const N: usize = 3000;
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(240);

fn python_client_available() -> Result<(), String> {
    python_rocketmq_available("from rocketmq.client import TransactionMQProducer")
}

#[test]
fn cpp_transactional_producer_commits_rolls_back_and_is_checked_back() {
    if let Err(why) = python_client_available() {
        eprintln!("SKIPPED txn_python: {why}");
        return;
    }
    let (_tmp, dir) = temp_dir();
    let (_ns, ns_port) = start_namesrv(&dir);
    let store = dir.join("store");
    // Check back every second, after 2 s without a decision.
    let props = broker_props(
        &store,
        "transactionCheckInterval=1000\ntransactionTimeOut=2000\n",
    );
    let (_broker, broker_port) = start_broker(&dir, &props, Some(ns_port));

    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/python_txn_client.py"
    );
    let lines = run_client_script(
        "python3",
        script,
        &[
            format!("127.0.0.1:{ns_port}"),
            TOPIC.to_string(),
            N.to_string(),
        ],
        &dir.join("home"),
        SCRIPT_TIMEOUT,
    );
    let result = result_line(
        &lines,
        &[
            "sent=3000",
            "committed=1500",
            "consumed=1500",
            "duplicates=0",
            "checked_unknown=1000",
        ],
    );
    eprintln!("txn_python: {result}");

    // The broker agrees: 1,500 messages on the topic, 3,000 decisions in the op
    // queue, nothing pending.
    let total = total_max_offset(broker_port, TOPIC, 4);
    let mut c = Client::connect(broker_port);
    assert_eq!(total, 1500);
    let r = c.invoke(Client::offset_req(
        request::GET_MAX_OFFSET,
        "RMQ_SYS_TRANS_OP_HALF_TOPIC",
        0,
    ));
    assert_eq!(r.ext_fields.get_i64("offset").unwrap(), 3000);
    let r = c.invoke(ferromq_server::remoting::RemotingCommand::request(
        request::FERROMQ_GET_PENDING_TRANSACTIONS,
    ));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert!(v["groups"].as_object().unwrap().is_empty(), "{v}");
}
