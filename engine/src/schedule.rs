//! Delayed messages, as RocketMQ 4.x stores them: a put with a `DELAY` level is
//! written to `SCHEDULE_TOPIC_XXXX`, queue `level - 1`, with its real topic and
//! queue kept in `REAL_TOPIC` / `REAL_QID`; its consume-queue tag code is the
//! delivery time. A service re-puts each message to its real topic when due,
//! level by level in order, and keeps its progress in `config/delayOffset.json`
//! (`{"offsetTable":{1:offset,...}}`, levels as keys), so delivery resumes after a
//! restart (at least once: a message re-put just before a crash may come twice).

use crate::sync::LockExt;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::message::decode_record;
use crate::message::{keys, Message, MessageExt};
use crate::store::StoreInner;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The topic delayed messages wait in.
pub const SCHEDULE_TOPIC: &str = "SCHEDULE_TOPIC_XXXX";

/// Delivery progress per level (next queue offset to deliver).
#[derive(Debug)]
pub(crate) struct ScheduleState {
    pub levels_ms: Vec<i64>,
    path: PathBuf,
    offsets: Mutex<BTreeMap<u32, u64>>,
    persisted: Mutex<BTreeMap<u32, u64>>,
}

#[derive(serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct DelayOffsetFile {
    offset_table: BTreeMap<u32, u64>,
}

impl ScheduleState {
    pub fn load(config_dir: &std::path::Path, levels_ms: Vec<i64>) -> Result<Self> {
        let path = config_dir.join("delayOffset.json");
        let offsets = read_delay_offsets(&path)?;
        Ok(ScheduleState {
            levels_ms,
            path,
            persisted: Mutex::new(offsets.clone()),
            offsets: Mutex::new(offsets),
        })
    }

    /// Read every level's progress from `delayOffset.json` again, as open
    /// does (a slave becoming master: the file holds what it last delivered
    /// as a master, or what it copied from its master).
    ///
    /// # Errors
    /// As at open: a file that cannot be read or parsed (nothing changed).
    pub fn reload(&self) -> Result<()> {
        let offsets = read_delay_offsets(&self.path)?;
        *self.persisted.locked() = offsets.clone();
        *self.offsets.locked() = offsets;
        Ok(())
    }

    pub fn max_level(&self) -> u32 {
        self.levels_ms.len() as u32
    }

    pub fn offset(&self, level: u32) -> Option<u64> {
        self.offsets.locked().get(&level).copied()
    }

    pub fn set_offset(&self, level: u32, offset: u64) {
        self.offsets.locked().insert(level, offset);
    }

    /// Every level's progress.
    pub fn all(&self) -> BTreeMap<u32, u64> {
        self.offsets.locked().clone()
    }

    /// Replace every level's progress (a slave copying its master's) and persist it.
    pub fn replace_all(&self, offsets: BTreeMap<u32, u64>) -> Result<()> {
        *self.offsets.locked() = offsets;
        self.persist()
    }

    /// Write `delayOffset.json` if progress changed.
    pub fn persist(&self) -> Result<()> {
        let now = self.offsets.locked().clone();
        let mut last = self.persisted.locked();
        if *last == now {
            return Ok(());
        }
        let json = serde_json::to_vec(&DelayOffsetFile {
            offset_table: now.clone(),
        })
        .map_err(|e| Error::io("encoding delayOffset.json", std::io::Error::other(e)))?;
        crate::fs::write_atomically(&self.path, &json)?;
        *last = now;
        Ok(())
    }
}

/// Every level's progress as `path` (`delayOffset.json`) records it; empty
/// when there is no file.
fn read_delay_offsets(path: &std::path::Path) -> Result<BTreeMap<u32, u64>> {
    match std::fs::read(path) {
        Ok(b) => parse_delay_offsets(&b)
            .map_err(|e| Error::corruption(path, 0, format!("delayOffset.json: {e}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
    }
}

/// Parse delayOffset.json leniently: fastjson writes integer map keys unquoted.
fn parse_delay_offsets(b: &[u8]) -> std::result::Result<BTreeMap<u32, u64>, String> {
    let text = std::str::from_utf8(b).map_err(|e| e.to_string())?;
    let quoted = quote_integer_keys(text);
    serde_json::from_str::<DelayOffsetFile>(&quoted)
        .map(|f| f.offset_table)
        .map_err(|e| e.to_string())
}

/// `{1:5,2:7}` → `{"1":5,"2":7}` (only bare integer keys after `{` or `,`).
fn quote_integer_keys(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    let b = s.as_bytes();
    let mut i = 0;
    let mut in_str = false;
    while i < b.len() {
        let c = b[i] as char;
        if in_str {
            out.push(c);
            if c == '\\' && i + 1 < b.len() {
                out.push(b[i + 1] as char);
                i += 1;
            } else if c == '"' {
                in_str = false;
            }
            i += 1;
            continue;
        }
        if c == '"' {
            in_str = true;
            out.push(c);
            i += 1;
            continue;
        }
        out.push(c);
        if c == '{' || c == ',' {
            let mut j = i + 1;
            while j < b.len() && (b[j] as char).is_whitespace() {
                j += 1;
            }
            let start = j;
            while j < b.len() && (b[j] as char).is_ascii_digit() {
                j += 1;
            }
            if j > start && j < b.len() && b[j] == b':' {
                out.push('"');
                out.push_str(&s[start..j]);
                out.push('"');
                i = j;
                continue;
            }
        }
        i += 1;
    }
    out
}

/// The DELAY level of a message, if it is to be held back.
pub(crate) fn delay_level(msg: &Message) -> Option<u32> {
    let tx = msg.sys_flag & crate::message::sys_flag::TRANSACTION_MASK;
    if tx != crate::message::sys_flag::TRANSACTION_NOT_TYPE
        && tx != crate::message::sys_flag::TRANSACTION_COMMIT_TYPE
    {
        return None;
    }
    let level: i64 = msg.properties.get(keys::DELAY)?.trim().parse().ok()?;
    (level > 0).then_some(level.min(u32::MAX as i64) as u32)
}

/// The message as it waits: on the schedule topic, real topic and queue kept.
pub(crate) fn to_schedule(msg: &Message, level: u32) -> Message {
    let mut m = msg.clone();
    m.properties.insert(keys::REAL_TOPIC, msg.topic.clone());
    m.properties
        .insert(keys::REAL_QID, msg.queue_id.to_string());
    m.properties.insert(keys::DELAY, level.to_string());
    m.topic = SCHEDULE_TOPIC.to_string();
    m.queue_id = level - 1;
    m
}

/// The message to deliver: back on its real topic and queue, DELAY dropped.
pub(crate) fn to_real(ext: &MessageExt) -> Option<Message> {
    let topic = ext.properties.get(keys::REAL_TOPIC)?.to_string();
    let queue_id: u32 = ext.properties.get(keys::REAL_QID)?.parse().ok()?;
    let mut properties = ext.properties.clone();
    properties.remove(keys::DELAY);
    properties.remove(keys::REAL_TOPIC);
    properties.remove(keys::REAL_QID);
    Some(ext.to_message(topic, queue_id, properties))
}

impl StoreInner {
    /// Deliver the scheduled messages that are due; returns how many.
    fn deliver_due(&self) -> usize {
        let now = crate::sys::now_ms();
        let mut delivered = 0;
        for level in 1..=self.schedule.max_level() {
            let Some(cq) = self.cqs.get(crate::schedule::SCHEDULE_TOPIC, level - 1) else {
                continue;
            };
            let mut offset = self
                .schedule
                .offset(level)
                .unwrap_or(0)
                .max(cq.min_offset());
            let max = cq.max_offset();
            while offset < max && !self.stopping.load(Ordering::Acquire) {
                let Some(unit) = cq.get(offset) else {
                    offset += 1; // blank unit
                    continue;
                };
                if unit.tags_code > now {
                    break; // in order: later ones are due later
                }
                let Some(bytes) = self
                    .commitlog
                    .get_data(unit.commit_log_offset, unit.size as usize)
                else {
                    offset += 1; // deleted by retention
                    continue;
                };
                match decode_record(&bytes)
                    .ok()
                    .and_then(|e| crate::schedule::to_real(&e))
                {
                    Some(real) => match self.put_batch_inner(std::slice::from_ref(&real), false) {
                        Ok(_) => delivered += 1,
                        Err(e @ (Error::IllegalMessage(_) | Error::TopicNotExist(_))) => {
                            tracing::error!(error = %e, level, offset, "dropping an undeliverable delayed message");
                        }
                        // The store became a slave: delivery pauses (the
                        // service stops at its next check).
                        Err(Error::WrongRole(_)) => break,
                        Err(e) => {
                            tracing::warn!(error = %e, level, offset, "delayed delivery failed; retrying");
                            break;
                        }
                    },
                    None => {
                        tracing::error!(
                            level,
                            offset,
                            "scheduled record lacks REAL_TOPIC/REAL_QID; skipped"
                        );
                    }
                }
                offset += 1;
            }
            self.schedule.set_offset(level, offset);
        }
        delivered
    }

    /// The schedule service: delivers while the store is a master, idles
    /// while it is a slave (see [`crate::service::RoleGate`]). Its progress
    /// is read from `delayOffset.json` at open and again when a slave
    /// becomes master (by the switch, before this resumes), and written
    /// when a master epoch ends.
    pub(crate) fn run_schedule(&self) {
        let who = crate::service::SCHEDULE_SERVICE;
        while let Some(epoch) = self.await_master(who, &self.schedule_waker) {
            let mut last_persist = Instant::now();
            while !self.stopping.load(Ordering::Acquire) && self.role_gate.is_current(epoch) {
                let n = self.deliver_due();
                if last_persist.elapsed() >= Duration::from_secs(1) {
                    if let Err(e) = self.schedule.persist() {
                        tracing::error!(error = %e, "persisting delayOffset.json failed");
                    }
                    last_persist = Instant::now();
                }
                if n == 0 {
                    self.schedule_waker.wait(Duration::from_millis(50));
                }
            }
            if let Err(e) = self.schedule.persist() {
                tracing::error!(error = %e, "persisting delayOffset.json failed");
            }
        }
    }

    /// Wait, for service `who` (sleeping on `waker`), until the store is a
    /// master: the master epoch, or `None` once the store stops. Each time it
    /// looks it acknowledges the epoch it saw (a switch to slave waits for it).
    pub(crate) fn await_master(&self, who: usize, waker: &crate::service::Waker) -> Option<u64> {
        loop {
            let (master, epoch) = self.role_gate.ack(who);
            if self.stopping.load(Ordering::Acquire) {
                return None;
            }
            if master {
                return Some(epoch);
            }
            // A switch to master wakes it; the timeout only bounds a miss.
            waker.wait(Duration::from_secs(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fastjson_keys_and_round_trip() {
        let m = parse_delay_offsets(br#"{"offsetTable":{1:5,2:7}}"#).unwrap();
        assert_eq!(m.get(&1), Some(&5));
        assert_eq!(m.get(&2), Some(&7));
        let m = parse_delay_offsets(br#"{"offsetTable":{"3":9}}"#).unwrap();
        assert_eq!(m.get(&3), Some(&9));
        assert!(parse_delay_offsets(b"{junk").is_err());
    }

    #[test]
    fn rewrite_and_restore() {
        let msg = Message::new("Real", b"b".to_vec())
            .with_queue_id(3)
            .with_tags("T")
            .with_property(keys::DELAY, "2");
        assert_eq!(delay_level(&msg), Some(2));
        let s = to_schedule(&msg, 2);
        assert_eq!((s.topic.as_str(), s.queue_id), (SCHEDULE_TOPIC, 1));
        let mut buf = Vec::new();
        crate::message::encode_message(&s, &"127.0.0.1:1".parse().unwrap(), &mut buf);
        let ext = crate::message::decode_record(&buf).unwrap();
        let back = to_real(&ext).unwrap();
        assert_eq!((back.topic.as_str(), back.queue_id), ("Real", 3));
        assert_eq!(back.tags(), Some("T"));
        assert!(back.properties.get(keys::DELAY).is_none());
        assert_eq!(
            delay_level(&Message::new("T", vec![]).with_property(keys::DELAY, "0")),
            None
        );
    }
}
