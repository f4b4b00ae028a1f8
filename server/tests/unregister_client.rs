//! UNREGISTER_CLIENT: a consumer leaving its group with UNREGISTER_CLIENT (its
//! connection still open) disappears from GET_CONSUMER_LIST_BY_GROUP at once,
//! the remaining member is told (NOTIFY_CONSUMER_IDS_CHANGED), and the
//! unregistered client's connection keeps working.

mod common;

use std::time::Duration;

use common::*;
use ferromq_server::remoting::{request, response, RemotingCommand};
use serde_json::Value;

const TOPIC: &str = "UnregTopic";
const GROUP: &str = "unreg_group";

fn heartbeat(client: &str) -> RemotingCommand {
    let body = format!(
        r#"{{"clientID":"{client}","producerDataSet":[],"consumerDataSet":[{{"groupName":"{GROUP}","consumeType":"CONSUME_PASSIVELY","messageModel":"CLUSTERING","consumeFromWhere":"CONSUME_FROM_LAST_OFFSET","subscriptionDataSet":[{{"topic":"{TOPIC}","subString":"*"}}],"unitMode":false}}]}}"#
    );
    RemotingCommand::request(request::HEART_BEAT).with_body(body.into_bytes())
}

fn members(c: &mut Client) -> Option<Vec<String>> {
    let r = c.invoke(
        RemotingCommand::request(request::GET_CONSUMER_LIST_BY_GROUP)
            .with_ext("consumerGroup", GROUP),
    );
    if r.code != response::SUCCESS {
        return None;
    }
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    let mut ids: Vec<String> = v["consumerIdList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect();
    ids.sort();
    Some(ids)
}

fn unregister(client: &str) -> RemotingCommand {
    RemotingCommand::request(request::UNREGISTER_CLIENT)
        .with_ext("clientID", client)
        .with_ext("consumerGroup", GROUP)
}

#[test]
fn unregister_client_shrinks_the_group_at_once() {
    let (_tmp, dir) = temp_dir();
    let (_broker, port) = start_broker(&dir, &broker_props(&dir.join("store"), ""), None);
    let mut a = Client::connect(port);
    let mut b = Client::connect(port);
    assert_eq!(a.invoke(heartbeat("client-a")).code, response::SUCCESS);
    assert_eq!(b.invoke(heartbeat("client-b")).code, response::SUCCESS);
    assert_eq!(
        members(&mut a),
        Some(vec!["client-a".to_string(), "client-b".to_string()])
    );
    a.server_requests.clear();

    // B leaves by UNREGISTER_CLIENT, its connection still open.
    assert_eq!(b.invoke(unregister("client-b")).code, response::SUCCESS);
    assert_eq!(members(&mut a), Some(vec!["client-a".to_string()]));
    let n = a.next_server_request();
    assert_eq!(n.code, request::NOTIFY_CONSUMER_IDS_CHANGED);
    assert_eq!(n.ext_fields.get_str("consumerGroup"), Ok(GROUP));
    // B's connection still serves requests.
    assert_eq!(
        b.send_v2(TOPIC, 0, b"still here", None, None).code,
        response::SUCCESS
    );
    assert_eq!(members(&mut b), Some(vec!["client-a".to_string()]));

    // The last member leaves: the group has no consumers.
    assert_eq!(a.invoke(unregister("client-a")).code, response::SUCCESS);
    assert_eq!(
        wait_for(Duration::from_secs(1), || Some(members(&mut a))).unwrap(),
        None
    );
}
