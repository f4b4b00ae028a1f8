//! [`RemotingCommand`]: one request or response, and typed access to its `extFields`.

use std::collections::BTreeMap;

use super::codes::response;

/// Header encoding of a frame (high byte of the header-length word).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SerializeType {
    /// JSON header (`0`), fastjson style.
    #[default]
    Json,
    /// RocketMQ's binary header (`1`).
    RocketMq,
}

impl SerializeType {
    /// The byte written in the frame.
    pub fn code(self) -> u8 {
        match self {
            SerializeType::Json => 0,
            SerializeType::RocketMq => 1,
        }
    }

    /// The type for a frame byte, if known.
    pub fn from_code(b: u8) -> Option<SerializeType> {
        match b {
            0 => Some(SerializeType::Json),
            1 => Some(SerializeType::RocketMq),
            _ => None,
        }
    }
}

/// `flag` bit 0: the command is a response.
pub const FLAG_RESPONSE: i32 = 1;
/// `flag` bit 1: the request expects no response.
pub const FLAG_ONEWAY: i32 = 2;

/// A header field that is missing or cannot be read as the expected type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// A required field is absent.
    #[error("the custom field <{0}> is null")]
    Missing(String),
    /// A field has a value of the wrong form.
    #[error("the custom field <{key}> has value `{value}`, expected {expected}")]
    Invalid {
        /// Field name.
        key: String,
        /// Value as received, cut to its first 64 characters (a peer's
        /// megabyte of junk is not echoed back or logged whole).
        value: String,
        /// What was expected.
        expected: &'static str,
    },
}

/// A [`HeaderError::Invalid`] quoting at most the first 64 characters of `value`.
fn invalid(key: &str, value: &str, expected: &'static str) -> HeaderError {
    const QUOTED: usize = 64;
    let value = match value.char_indices().nth(QUOTED) {
        Some((cut, _)) => format!("{}... ({} bytes)", &value[..cut], value.len()),
        None => value.to_string(),
    };
    HeaderError::Invalid {
        key: key.to_string(),
        value,
        expected,
    }
}

/// The `extFields` map: a request's custom header, every value a string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtFields(pub BTreeMap<String, String>);

impl ExtFields {
    /// An empty map.
    pub fn new() -> Self {
        ExtFields(BTreeMap::new())
    }

    /// Set a field.
    pub fn insert(&mut self, key: impl Into<String>, value: impl ToString) {
        self.0.insert(key.into(), value.to_string());
    }

    /// A field as a string, if present.
    pub fn opt_str(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// A required string field.
    ///
    /// # Errors
    /// [`HeaderError::Missing`] when absent.
    pub fn get_str(&self, key: &str) -> Result<&str, HeaderError> {
        self.opt_str(key)
            .ok_or_else(|| HeaderError::Missing(key.to_string()))
    }

    /// An optional integer field.
    ///
    /// # Errors
    /// [`HeaderError::Invalid`] when present but not an integer.
    pub fn opt_i64(&self, key: &str) -> Result<Option<i64>, HeaderError> {
        match self.opt_str(key) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse::<i64>()
                .map(Some)
                .map_err(|_| invalid(key, v, "an integer")),
        }
    }

    /// A required integer field.
    ///
    /// # Errors
    /// [`HeaderError::Missing`] or [`HeaderError::Invalid`].
    pub fn get_i64(&self, key: &str) -> Result<i64, HeaderError> {
        self.opt_i64(key)?
            .ok_or_else(|| HeaderError::Missing(key.to_string()))
    }

    /// A required 32-bit integer field.
    ///
    /// # Errors
    /// [`HeaderError::Missing`] or [`HeaderError::Invalid`] (also when out of range).
    pub fn get_i32(&self, key: &str) -> Result<i32, HeaderError> {
        let v = self.get_i64(key)?;
        i32::try_from(v).map_err(|_| invalid(key, &v.to_string(), "a 32-bit integer"))
    }

    /// An optional boolean field: `true`/`false` (any case) or `1`/`0`.
    ///
    /// # Errors
    /// [`HeaderError::Invalid`] for any other value.
    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>, HeaderError> {
        match self.opt_str(key) {
            None => Ok(None),
            Some(v) => {
                let t = v.trim();
                if t.eq_ignore_ascii_case("true") || t == "1" {
                    Ok(Some(true))
                } else if t.eq_ignore_ascii_case("false") || t == "0" {
                    Ok(Some(false))
                } else {
                    Err(invalid(key, v, "true, false, 1 or 0"))
                }
            }
        }
    }

    /// A required boolean field.
    ///
    /// # Errors
    /// [`HeaderError::Missing`] or [`HeaderError::Invalid`].
    pub fn get_bool(&self, key: &str) -> Result<bool, HeaderError> {
        self.opt_bool(key)?
            .ok_or_else(|| HeaderError::Missing(key.to_string()))
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no fields.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Fields in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// One remoting command: a request, a response or a oneway request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RemotingCommand {
    /// Request code, or response code in a response.
    pub code: i32,
    /// `LanguageCode` ordinal of the sender.
    pub language: u8,
    /// Sender's version (`MQVersion` ordinal).
    pub version: i32,
    /// Request id, echoed in the response.
    pub opaque: i32,
    /// Bit 0 response, bit 1 oneway.
    pub flag: i32,
    /// Free text, mostly the error of a response.
    pub remark: Option<String>,
    /// Custom header fields.
    pub ext_fields: ExtFields,
    /// Header encoding of this frame.
    pub serialize_type: SerializeType,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl RemotingCommand {
    /// A new request with `code`.
    pub fn request(code: i32) -> Self {
        RemotingCommand {
            code,
            ..Default::default()
        }
    }

    /// A response with `code` and an optional remark; call
    /// [`RemotingCommand::reply_to`] to address it.
    pub fn response(code: i32, remark: Option<String>) -> Self {
        RemotingCommand {
            code,
            flag: FLAG_RESPONSE,
            remark,
            ..Default::default()
        }
    }

    /// A SUCCESS response.
    pub fn success() -> Self {
        Self::response(response::SUCCESS, None)
    }

    /// An error response with a remark.
    pub fn error(code: i32, remark: impl Into<String>) -> Self {
        Self::response(code, Some(remark.into()))
    }

    /// Make this the response to `req`: same opaque and serialize type, response flag set.
    pub fn reply_to(mut self, req: &RemotingCommand) -> Self {
        self.opaque = req.opaque;
        self.serialize_type = req.serialize_type;
        self.flag |= FLAG_RESPONSE;
        self
    }

    /// True for a response.
    pub fn is_response(&self) -> bool {
        self.flag & FLAG_RESPONSE != 0
    }

    /// True for a oneway request.
    pub fn is_oneway(&self) -> bool {
        self.flag & FLAG_ONEWAY != 0
    }

    /// Builder: set an ext field.
    pub fn with_ext(mut self, key: &str, value: impl ToString) -> Self {
        self.ext_fields.insert(key, value);
        self
    }

    /// Builder: set the body.
    pub fn with_body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }
}

impl From<HeaderError> for RemotingCommand {
    /// A bad header becomes a SYSTEM_ERROR response, as Apache's broker answers a
    /// `RemotingCommandException`.
    fn from(e: HeaderError) -> Self {
        RemotingCommand::error(response::SYSTEM_ERROR, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_getters_are_lenient_and_clear() {
        let mut f = ExtFields::new();
        f.insert("a", "12");
        f.insert("b", "TRUE");
        f.insert("c", "0");
        f.insert("d", "x");
        assert_eq!(f.get_i64("a"), Ok(12));
        assert_eq!(f.get_bool("b"), Ok(true));
        assert_eq!(f.get_bool("c"), Ok(false));
        assert!(matches!(f.get_i64("d"), Err(HeaderError::Invalid { .. })));
        // A huge value is quoted by its first 64 characters only.
        let mut big = ExtFields::new();
        big.insert("queueId", "x".repeat(1 << 20));
        let e = big.get_i32("queueId").unwrap_err().to_string();
        assert!(e.len() < 200, "{e}");
        assert!(
            e.contains(&format!("{}... ({} bytes)", "x".repeat(64), 1 << 20)),
            "{e}"
        );
        assert!(matches!(f.get_bool("d"), Err(HeaderError::Invalid { .. })));
        assert_eq!(f.get_str("zz"), Err(HeaderError::Missing("zz".into())));
        assert_eq!(f.opt_i64("zz"), Ok(None));
        let resp: RemotingCommand = f.get_i64("zz").unwrap_err().into();
        assert_eq!(resp.code, response::SYSTEM_ERROR);
        assert!(resp.remark.unwrap().contains("zz"));
    }

    #[test]
    fn reply_echoes_opaque_and_type() {
        let mut req = RemotingCommand::request(10);
        req.opaque = 77;
        req.serialize_type = SerializeType::RocketMq;
        let r = RemotingCommand::success().reply_to(&req);
        assert_eq!(r.opaque, 77);
        assert_eq!(r.serialize_type, SerializeType::RocketMq);
        assert!(r.is_response());
    }
}
