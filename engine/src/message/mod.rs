//! Messages and RocketMQ 4.x commitlog records.
//!
//! A record is, big-endian (IPv4 hosts shown; IPv6 hosts take 20 bytes instead of 8):
//!
//! ```text
//! 0  TOTALSIZE i32      4  MAGICCODE i32     8  BODYCRC i32      12 QUEUEID i32
//! 16 FLAG i32           20 QUEUEOFFSET i64   28 PHYSICALOFFSET i64
//! 36 SYSFLAG i32        40 BORNTIMESTAMP i64 48 BORNHOST 8|20
//! .. STORETIMESTAMP i64 .. STOREHOST 8|20    .. RECONSUMETIMES i32
//! .. PREPARED TRANSACTION OFFSET i64         .. BODYLEN i32 + BODY
//! .. TOPICLEN i8 + TOPIC                     .. PROPERTIESLEN i16 + PROPERTIES
//! ```
//!
//! The body CRC is CRC-32/IEEE masked with `0x7FFF_FFFF`. Properties are
//! `key \x01 value \x02 ...`; the trailing `\x02` is written as RocketMQ 4.9.7
//! does (stripped) and accepted either way when reading.

mod codec;
mod msg_id;
mod names;
mod properties;

pub use codec::*;
pub use msg_id::*;
pub use names::*;
pub use properties::*;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Magic code of a message record.
pub const MESSAGE_MAGIC_CODE: i32 = 0xDAA3_20A7_u32 as i32;
/// Magic code of the blank record that fills the tail of a commitlog file.
pub const BLANK_MAGIC_CODE: i32 = 0xCBD4_3194_u32 as i32;
/// Fixed record overhead with IPv4 born and store hosts.
pub const FIXED_RECORD_OVERHEAD: usize = 91;
/// Longest topic name (the length is a signed byte).
pub const MAX_TOPIC_LEN: usize = 127;
/// Longest encoded properties string (the length is a signed short).
pub const MAX_PROPERTIES_LEN: usize = i16::MAX as usize;

/// `sysFlag` bits, as in RocketMQ's `MessageSysFlag`.
pub mod sys_flag {
    /// Body is compressed by the producer.
    pub const COMPRESSED: i32 = 0x1;
    /// Several tags.
    pub const MULTI_TAGS: i32 = 0x2;
    /// Mask of the transaction type bits.
    pub const TRANSACTION_MASK: i32 = 0xC;
    /// Not a transactional message.
    pub const TRANSACTION_NOT_TYPE: i32 = 0x0;
    /// Half (prepared) message.
    pub const TRANSACTION_PREPARED_TYPE: i32 = 0x4;
    /// Commit of a half message.
    pub const TRANSACTION_COMMIT_TYPE: i32 = 0x8;
    /// Rollback of a half message.
    pub const TRANSACTION_ROLLBACK_TYPE: i32 = 0xC;
    /// Born host is IPv6.
    pub const BORNHOST_V6: i32 = 0x10;
    /// Store host is IPv6.
    pub const STOREHOST_V6: i32 = 0x20;
}

/// Well-known property keys (RocketMQ's `MessageConst`).
pub mod keys {
    /// Space-separated business keys, indexed.
    pub const KEYS: &str = "KEYS";
    /// Tags; their Java hash is the consume-queue tag code.
    pub const TAGS: &str = "TAGS";
    /// Whether a sync-flush put waits for the flush (absent = true).
    pub const WAIT: &str = "WAIT";
    /// Delay level.
    pub const DELAY: &str = "DELAY";
    /// Client-generated unique id, indexed.
    pub const UNIQ_KEY: &str = "UNIQ_CLIENT_MESSAGE_ID_KEYIDX";
    /// Real topic of a half or delayed message.
    pub const REAL_TOPIC: &str = "REAL_TOPIC";
    /// Real queue id of a half or delayed message.
    pub const REAL_QID: &str = "REAL_QID";
    /// Transactional flag.
    pub const TRAN_MSG: &str = "TRAN_MSG";
    /// Producer group.
    pub const PGROUP: &str = "PGROUP";
    /// Timer message: deliver at this epoch time in ms (RocketMQ 5).
    pub const TIMER_DELIVER_MS: &str = "TIMER_DELIVER_MS";
    /// Timer message: deliver this many seconds after the put.
    pub const TIMER_DELAY_SEC: &str = "TIMER_DELAY_SEC";
    /// Timer message: deliver this many ms after the put.
    pub const TIMER_DELAY_MS: &str = "TIMER_DELAY_MS";
    /// The slot (epoch ms) a timer message is or was due in; set by the store.
    pub const TIMER_OUT_MS: &str = "TIMER_OUT_MS";
    /// On a delivered timer message: the commitlog offset of its waiting
    /// record (how a restart recognises what it delivered before a crash).
    pub const TIMER_SRC: &str = "TIMER_SRC";
}

/// Java's `String.hashCode()`: wrapping `31*h + c` over UTF-16 code units.
pub fn java_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
}

/// The consume-queue tag code of a tags string: its Java hash, sign-extended; 0 without tags.
pub fn tags_code(tags: Option<&str>) -> i64 {
    match tags {
        Some(t) if !t.is_empty() => java_hash(t) as i64,
        _ => 0,
    }
}

/// Milliseconds since the Unix epoch (lives in [`crate::sys`]; kept here for
/// `ferromq_engine::message::now_ms` callers).
pub use crate::sys::now_ms;

/// A message to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Topic name: `[%|a-zA-Z0-9_-]`, at most 127 bytes.
    pub topic: String,
    /// Queue of the topic.
    pub queue_id: u32,
    /// Application flag.
    pub flag: i32,
    /// Payload.
    pub body: Vec<u8>,
    /// Properties (tags, keys, ...).
    pub properties: MessageProperties,
    /// `sysFlag` bits (see [`sys_flag`]); host bits are set by the encoder.
    pub sys_flag: i32,
    /// Producer-side timestamp, ms since the epoch.
    pub born_timestamp_ms: i64,
    /// Producer address.
    pub born_host: SocketAddr,
    /// Times this message has been re-consumed.
    pub reconsume_times: i32,
    /// For commit/rollback records: commitlog offset of the half message.
    pub prepared_transaction_offset: i64,
}

impl Message {
    /// A message for `topic` with `body`, queue 0, born now at 127.0.0.1.
    pub fn new(topic: impl Into<String>, body: impl Into<Vec<u8>>) -> Self {
        Message {
            topic: topic.into(),
            queue_id: 0,
            flag: 0,
            body: body.into(),
            properties: MessageProperties::new(),
            sys_flag: 0,
            born_timestamp_ms: now_ms(),
            born_host: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            reconsume_times: 0,
            prepared_transaction_offset: 0,
        }
    }

    /// Set the queue id.
    pub fn with_queue_id(mut self, queue_id: u32) -> Self {
        self.queue_id = queue_id;
        self
    }

    /// Set the `TAGS` property.
    pub fn with_tags(mut self, tags: impl Into<String>) -> Self {
        self.properties.insert(keys::TAGS, tags);
        self
    }

    /// Set the `KEYS` property from several keys (joined with spaces).
    pub fn with_keys<I, S>(mut self, keys_iter: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let joined: Vec<String> = keys_iter
            .into_iter()
            .map(|s| s.as_ref().to_string())
            .collect();
        self.properties.insert(keys::KEYS, joined.join(" "));
        self
    }

    /// Set any property.
    pub fn with_property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.insert(key, value);
        self
    }

    /// The `TAGS` property.
    pub fn tags(&self) -> Option<&str> {
        self.properties.get(keys::TAGS)
    }

    /// Whether a sync-flush put waits for the flush (`WAIT`, absent = true).
    pub fn wait_store_ok(&self) -> bool {
        self.properties
            .get(keys::WAIT)
            .map(|v| !v.eq_ignore_ascii_case("false"))
            .unwrap_or(true)
    }
}

/// A message decoded from its stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageExt {
    /// The record's total size.
    pub store_size: u32,
    /// Stored body CRC (masked).
    pub body_crc: u32,
    /// Queue id.
    pub queue_id: u32,
    /// Application flag.
    pub flag: i32,
    /// Logical offset in its consume queue.
    pub queue_offset: u64,
    /// Commitlog offset of the record.
    pub commit_log_offset: u64,
    /// `sysFlag` bits.
    pub sys_flag: i32,
    /// Producer timestamp (ms).
    pub born_timestamp_ms: i64,
    /// Producer address.
    pub born_host: SocketAddr,
    /// Store timestamp (ms).
    pub store_timestamp_ms: i64,
    /// Store address.
    pub store_host: SocketAddr,
    /// Re-consume count.
    pub reconsume_times: i32,
    /// Prepared transaction offset.
    pub prepared_transaction_offset: i64,
    /// Body as stored.
    pub body: Vec<u8>,
    /// Topic.
    pub topic: String,
    /// Properties.
    pub properties: MessageProperties,
}

impl MessageExt {
    /// The offset msgId: 32 (IPv4) or 56 (IPv6) uppercase hex chars.
    pub fn msg_id(&self) -> String {
        offset_msg_id(self.store_host, self.commit_log_offset)
    }

    /// The `TAGS` property.
    pub fn tags(&self) -> Option<&str> {
        self.properties.get(keys::TAGS)
    }

    /// The `KEYS` property split on spaces.
    pub fn keys(&self) -> Vec<&str> {
        self.properties
            .get(keys::KEYS)
            .map(|k| k.split(' ').filter(|s| !s.is_empty()).collect())
            .unwrap_or_default()
    }

    /// The stored message as a new one to put on `topic`/`queue_id` with
    /// `properties`: body, flag, system flag, born time and host,
    /// re-consume count and prepared offset kept (how delayed and timer
    /// messages are re-put when due).
    pub fn to_message(
        &self,
        topic: String,
        queue_id: u32,
        properties: MessageProperties,
    ) -> Message {
        Message {
            topic,
            queue_id,
            flag: self.flag,
            body: self.body.clone(),
            properties,
            sys_flag: self.sys_flag,
            born_timestamp_ms: self.born_timestamp_ms,
            born_host: self.born_host,
            reconsume_times: self.reconsume_times,
            prepared_transaction_offset: self.prepared_transaction_offset,
        }
    }
}

/// Why bytes do not decode as a record or a property string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// What is wrong.
    pub reason: String,
}

impl DecodeError {
    fn new(reason: impl Into<String>) -> Self {
        DecodeError {
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for DecodeError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_hash_matches_java() {
        assert_eq!(java_hash(""), 0);
        assert_eq!(java_hash("TagA"), 2598919);
        assert_eq!(java_hash("hello"), 99162322);
        // Overflows wrap like Java ints.
        assert_eq!(java_hash("TagA || TagB and a long tail"), {
            let mut h: i32 = 0;
            for c in "TagA || TagB and a long tail".encode_utf16() {
                h = h.wrapping_mul(31).wrapping_add(c as i32);
            }
            h
        });
    }
}
