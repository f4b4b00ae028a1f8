//! (a) A broker registers with the name server; a topic's route appears, in
//! fastjson form for old clients and standard JSON for new ones, and goes away
//! at once when the broker's connection closes.

mod common;

use std::time::Duration;

use common::*;
use ferromq_server::remoting::json::parse_lenient;
use ferromq_server::remoting::{request, response, RemotingCommand};

fn route(ns: &mut Client, topic: &str, version: i32) -> RemotingCommand {
    let mut req =
        RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC).with_ext("topic", topic);
    req.version = version;
    ns.invoke(req)
}

#[test]
fn route_appears_after_broker_registers_and_goes_when_it_dies() {
    let (_tmp, dir) = temp_dir();
    let (_ns, ns_port) = start_namesrv(&dir);
    let mut ns = Client::connect(ns_port);
    let r = route(&mut ns, "RouteTopic", 0);
    assert_eq!(r.code, response::TOPIC_NOT_EXIST);

    let (mut broker, broker_port) =
        start_broker(&dir, &broker_props(&dir.join("store"), ""), Some(ns_port));
    let mut b = Client::connect(broker_port);
    let created = b.invoke(
        RemotingCommand::request(request::UPDATE_AND_CREATE_TOPIC)
            .with_ext("topic", "RouteTopic")
            .with_ext("readQueueNums", 4)
            .with_ext("writeQueueNums", 4)
            .with_ext("perm", 6),
    );
    assert_eq!(created.code, response::SUCCESS, "{:?}", created.remark);

    let body = wait_for(Duration::from_secs(10), || {
        let r = route(&mut ns, "RouteTopic", 0);
        (r.code == response::SUCCESS).then_some(r.body)
    })
    .expect("route appears within 10 s");
    let text = String::from_utf8(body).unwrap();
    let addr = format!("127.0.0.1:{broker_port}");
    assert!(
        text.contains(&format!("{{0:\"{addr}\"}}")),
        "fastjson keys for old clients: {text}"
    );
    let v = parse_lenient(&text).unwrap();
    assert_eq!(v["queueDatas"][0]["brokerName"], "broker-t");
    assert_eq!(v["queueDatas"][0]["writeQueueNums"], 4);
    assert_eq!(v["brokerDatas"][0]["cluster"], "TestCluster");

    // Version >= 401 (V4_9_4) gets standard JSON.
    let r = route(&mut ns, "RouteTopic", 401);
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("standard JSON");
    assert_eq!(v["brokerDatas"][0]["brokerAddrs"]["0"], addr.as_str());
    // So does acceptStandardJsonOnly.
    let r = ns.invoke(
        RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC)
            .with_ext("topic", "RouteTopic")
            .with_ext("acceptStandardJsonOnly", true),
    );
    assert!(serde_json::from_slice::<serde_json::Value>(&r.body).is_ok());

    // Cluster info and topic list.
    let r = ns.invoke(RemotingCommand::request(request::GET_BROKER_CLUSTER_INFO));
    assert_eq!(r.code, response::SUCCESS);
    let v = parse_lenient(std::str::from_utf8(&r.body).unwrap()).unwrap();
    assert_eq!(v["clusterAddrTable"]["TestCluster"][0], "broker-t");
    assert_eq!(
        v["brokerAddrTable"]["broker-t"]["brokerAddrs"]["0"],
        addr.as_str()
    );
    let r = ns.invoke(RemotingCommand::request(
        request::GET_ALL_TOPIC_LIST_FROM_NAMESERVER,
    ));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let topics: Vec<&str> = v["topicList"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t.as_str())
        .collect();
    assert!(
        topics.contains(&"RouteTopic") && topics.contains(&"TBW102"),
        "{topics:?}"
    );

    // The broker does not answer name-server requests.
    let r = b.invoke(
        RemotingCommand::request(request::GET_ROUTEINFO_BY_TOPIC).with_ext("topic", "RouteTopic"),
    );
    assert_eq!(r.code, response::REQUEST_CODE_NOT_SUPPORTED);

    // Kill the broker: its connection closes and the route goes at once (not after 120 s).
    let _ = broker.child.kill();
    let _ = broker.child.wait();
    let gone = wait_for(Duration::from_secs(10), || {
        (route(&mut ns, "RouteTopic", 0).code == response::TOPIC_NOT_EXIST).then_some(())
    });
    assert!(
        gone.is_some(),
        "route still there 10 s after the broker died"
    );
}
