//! Message subcommands: `queryMsgByKey`, `queryMsgById`.

use ferromq_engine::message::keys::UNIQ_KEY;
use ferromq_engine::message::{decode_offset_msg_id, decode_records};
use ferromq_server::remoting::{request, RemotingCommand};

use crate::client::{call, ok, Admin, Res};
use crate::print::{print_message, table};

impl Admin {
    /// `queryMsgByKey`: the messages of a topic with a key.
    pub(crate) async fn query_msg_by_key(&self, topic: String, key: String) -> Res<()> {
        let mut rows = Vec::new();
        for (_, addr, _) in self.route(&topic).await? {
            for m in Self::query(&addr, &topic, &key, false).await? {
                if m.keys().contains(&key.as_str()) {
                    rows.push(vec![
                        m.msg_id(),
                        m.properties.get(UNIQ_KEY).unwrap_or("-").to_string(),
                        m.queue_id.to_string(),
                        m.queue_offset.to_string(),
                    ]);
                }
            }
        }
        if rows.is_empty() {
            return Err(format!("no message with key {key} in topic {topic}"));
        }
        table(&["#Message ID", "#Unique Key", "#QID", "#Offset"], &rows);
        Ok(())
    }

    /// `queryMsgById`: one message by its offset msgId, or with a topic by its
    /// unique key. As RocketMQ's `viewMessage(topic, msgId)`: an id that
    /// decodes as an offset msgId is looked up there first, but with a topic
    /// only at an address of one of its brokers (a unique key's 32 hex digits
    /// also decode, to an address made of its bytes), and when that lookup
    /// fails the id is queried as the unique key.
    pub(crate) async fn query_msg_by_id(&self, msg_id: String, topic: Option<String>) -> Res<()> {
        let routed = match &topic {
            Some(t) => Some(self.route(t).await?),
            None => None,
        };
        let by_offset = match decode_offset_msg_id(&msg_id) {
            Ok((addr, offset)) => {
                let addr = addr.to_string();
                let of_topic = routed
                    .as_ref()
                    .is_none_or(|r| r.iter().any(|(_, a, _)| *a == addr));
                if !of_topic {
                    None
                } else {
                    match Self::view_by_offset(&addr, offset).await {
                        Ok(m) => Some(m),
                        Err(e) if topic.is_some() => {
                            eprintln!("{msg_id}: not found as an offset msgId at {addr} ({e}); querying it as a unique key");
                            None
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            Err(e) if topic.is_none() => {
                return Err(format!(
                    "{msg_id} is not an offset msgId ({e}); give -t TOPIC to look it up as a unique key"
                ));
            }
            Err(_) => None,
        };
        let m = match (by_offset, topic, routed) {
            (Some(m), _, _) => m,
            (None, Some(topic), Some(routed)) => {
                let mut found = None;
                for (_, addr, _) in routed {
                    found = Self::query(&addr, &topic, &msg_id, true)
                        .await?
                        .into_iter()
                        .find(|m| m.properties.get(UNIQ_KEY) == Some(msg_id.as_str()));
                    if found.is_some() {
                        break;
                    }
                }
                found.ok_or(format!("no message {msg_id} in topic {topic}"))?
            }
            _ => return Err(format!("no message {msg_id}")),
        };
        print_message(&m);
        Ok(())
    }

    /// VIEW_MESSAGE_BY_ID at `addr` for the record at commitlog `offset`.
    async fn view_by_offset(addr: &str, offset: u64) -> Res<ferromq_engine::message::MessageExt> {
        let req = RemotingCommand::request(request::VIEW_MESSAGE_BY_ID).with_ext("offset", offset);
        let r = ok(call(addr, req).await?, "view message")?;
        decode_records(&r.body)
            .map_err(|e| format!("undecodable message: {e}"))?
            .into_iter()
            .next()
            .ok_or_else(|| "empty answer".to_string())
    }
}
