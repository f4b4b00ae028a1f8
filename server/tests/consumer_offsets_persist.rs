//! (e) Consumer offsets (UPDATE_CONSUMER_OFFSET and the commit offset carried in
//! pulls) survive a clean broker restart, in config/consumerOffset.json.

mod common;

use std::time::Duration;

use common::*;
use ferromq_server::remoting::json::parse_lenient;
use ferromq_server::remoting::{request, response, RemotingCommand};

const TOPIC: &str = "Offsets";

fn query(c: &mut Client, group: &str, q: i32) -> RemotingCommand {
    c.invoke(
        RemotingCommand::request(request::QUERY_CONSUMER_OFFSET)
            .with_ext("consumerGroup", group)
            .with_ext("topic", TOPIC)
            .with_ext("queueId", q),
    )
}

#[test]
fn offsets_survive_restart() {
    let (_tmp, dir) = temp_dir();
    let store = dir.join("store");
    let props = broker_props(&store, "");
    let (mut broker, port) = start_broker(&dir, &props, None);
    let mut c = Client::connect(port);
    for q in 0..2 {
        assert_eq!(
            c.send_v2(TOPIC, q, b"m", None, None).code,
            response::SUCCESS
        );
    }
    // A new group with no stored offset starts at 0 while the queue holds
    // everything from 0 in memory (RocketMQ 4.x quickstart behaviour).
    let r = query(&mut c, "og", 0);
    assert_eq!(r.code, response::SUCCESS);
    assert_eq!(r.ext_fields.get_i64("offset").unwrap(), 0);

    // Offsets are stored for groups the broker knows (from a heartbeat or,
    // here, a pull), as RocketMQ 5 does.
    let r = c.pull("og", TOPIC, 0, 0, 1);
    assert!(
        r.code == response::SUCCESS || r.code == response::PULL_NOT_FOUND,
        "{:?}",
        r.remark
    );
    let r = c.invoke(
        RemotingCommand::request(request::UPDATE_CONSUMER_OFFSET)
            .with_ext("consumerGroup", "og")
            .with_ext("topic", TOPIC)
            .with_ext("queueId", 0)
            .with_ext("commitOffset", 42),
    );
    assert_eq!(r.code, response::SUCCESS);
    // Commit offset carried by a pull (sysFlag 0x1).
    let r = c.invoke(
        Client::pull_req("og", TOPIC, 1, 0, 32, 0x1 | 0x4, 0, "*").with_ext("commitOffset", 7),
    );
    assert!(r.code == response::SUCCESS || r.code == response::PULL_NOT_FOUND);
    assert_eq!(
        query(&mut c, "og", 0).ext_fields.get_i64("offset").unwrap(),
        42
    );
    assert_eq!(
        query(&mut c, "og", 1).ext_fields.get_i64("offset").unwrap(),
        7
    );
    // A oneway update (as the Java client sends it) gets no response; the next
    // answer on the connection is the query's (Client::invoke checks the opaque).
    let mut oneway = RemotingCommand::request(request::UPDATE_CONSUMER_OFFSET)
        .with_ext("consumerGroup", "og")
        .with_ext("topic", TOPIC)
        .with_ext("queueId", 2)
        .with_ext("commitOffset", 3);
    oneway.flag = 2;
    oneway.opaque = 9999;
    c.write_raw(&ferromq_server::remoting::codec::encode(&oneway).unwrap());
    let r = wait_for(Duration::from_secs(5), || {
        let r = query(&mut c, "og", 2);
        (r.code == response::SUCCESS && r.ext_fields.get_i64("offset").unwrap() == 3).then_some(r)
    });
    assert!(r.is_some(), "oneway update applied");
    drop(c);

    let status = broker.terminate(Duration::from_secs(20));
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
    let text = std::fs::read_to_string(store.join("config").join("consumerOffset.json")).unwrap();
    assert!(
        text.contains("{0:42,1:7,2:3}"),
        "fastjson-style file: {text}"
    );
    let v = parse_lenient(&text).unwrap();
    assert_eq!(v["offsetTable"]["Offsets@og"]["0"], 42);
    drop(broker);

    let (_broker2, port2) = start_broker(&dir, &props, None);
    let mut c = Client::connect(port2);
    assert_eq!(
        query(&mut c, "og", 0).ext_fields.get_i64("offset").unwrap(),
        42
    );
    assert_eq!(
        query(&mut c, "og", 1).ext_fields.get_i64("offset").unwrap(),
        7
    );
    // The messages survived too.
    let r = c.invoke(Client::offset_req(request::GET_MAX_OFFSET, TOPIC, 1));
    assert_eq!(r.ext_fields.get_i64("offset").unwrap(), 1);
}
