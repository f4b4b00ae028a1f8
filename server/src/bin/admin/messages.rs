//! Message subcommands: `queryMsgByKey`, `queryMsgById`.

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
                        m.properties.get("UNIQ_KEY").unwrap_or("-").to_string(),
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
    /// unique key.
    pub(crate) async fn query_msg_by_id(&self, msg_id: String, topic: Option<String>) -> Res<()> {
        let m = match decode_offset_msg_id(&msg_id) {
            Ok((addr, offset)) => {
                let req = RemotingCommand::request(request::VIEW_MESSAGE_BY_ID)
                    .with_ext("offset", offset);
                let r = ok(call(&addr.to_string(), req).await?, "view message")?;
                decode_records(&r.body)
                    .map_err(|e| format!("undecodable message: {e}"))?
                    .into_iter()
                    .next()
                    .ok_or("empty answer")?
            }
            Err(e) => {
                let Some(topic) = topic else {
                    return Err(format!(
                        "{msg_id} is not an offset msgId ({e}); give -t TOPIC to look it up as a unique key"
                    ));
                };
                let mut found = None;
                for (_, addr, _) in self.route(&topic).await? {
                    found = Self::query(&addr, &topic, &msg_id, true)
                        .await?
                        .into_iter()
                        .find(|m| m.properties.get("UNIQ_KEY") == Some(msg_id.as_str()));
                    if found.is_some() {
                        break;
                    }
                }
                found.ok_or(format!("no message {msg_id} in topic {topic}"))?
            }
        };
        print_message(&m);
        Ok(())
    }
}
