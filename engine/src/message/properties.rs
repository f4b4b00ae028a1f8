//! Message properties: `key \x01 value \x02 ...`, in insertion order.

use super::{DecodeError, RecordSink};

/// Message properties in insertion order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageProperties {
    entries: Vec<(String, String)>,
}

impl MessageProperties {
    /// No properties.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Set `key` to `value`, replacing an earlier value.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let key = key.into();
        let value = value.into();
        if let Some(e) = self.entries.iter_mut().find(|(k, _)| *k == key) {
            e.1 = value;
        } else {
            self.entries.push((key, value));
        }
    }

    /// Remove `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        let i = self.entries.iter().position(|(k, _)| k == key)?;
        Some(self.entries.remove(i).1)
    }

    /// All entries in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Encode as `k\x01v\x02k\x01v` (no trailing separator) into `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        self.encode_to(out);
    }

    pub(super) fn encode_to(&self, out: &mut impl RecordSink) {
        for (i, (k, v)) in self.entries.iter().enumerate() {
            if i > 0 {
                out.put(&[2]);
            }
            out.put(k.as_bytes());
            out.put(&[1]);
            out.put(v.as_bytes());
        }
    }

    /// Encoded length in bytes.
    pub fn encoded_len(&self) -> usize {
        let sep = self.entries.len().saturating_sub(1);
        self.entries
            .iter()
            .map(|(k, v)| k.len() + v.len() + 1)
            .sum::<usize>()
            + sep
    }

    /// Decode RocketMQ's properties string; segments shorter than 3 bytes or
    /// without `\x01` are ignored, as RocketMQ does. Invalid UTF-8 is an error.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut p = MessageProperties::new();
        for seg in bytes.split(|b| *b == 2) {
            if seg.len() < 3 {
                continue;
            }
            let Some(i) = seg.iter().position(|b| *b == 1) else {
                continue;
            };
            let k = std::str::from_utf8(&seg[..i])
                .map_err(|_| DecodeError::new("property key is not UTF-8"))?;
            let v = std::str::from_utf8(&seg[i + 1..])
                .map_err(|_| DecodeError::new("property value is not UTF-8"))?;
            p.entries.push((k.to_string(), v.to_string()));
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_accept_trailing_separator() {
        let p = MessageProperties::decode(b"TAGS\x01a\x02KEYS\x01k\x02").unwrap();
        assert_eq!(p.get("TAGS"), Some("a"));
        assert_eq!(p.get("KEYS"), Some("k"));
        let mut out = Vec::new();
        p.encode_into(&mut out);
        assert_eq!(out, b"TAGS\x01a\x02KEYS\x01k");
        assert_eq!(out.len(), p.encoded_len());
    }
}
