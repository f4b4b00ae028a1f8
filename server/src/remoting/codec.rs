//! The frame codec: `[i32 length][i32 headerLenAndType][header][body]`, big-endian.
//!
//! `length` counts everything after itself. The high byte of `headerLenAndType` is
//! the header's [`SerializeType`], the low 24 bits its length. The header is either
//! fastjson-style JSON or RocketMQ's binary layout
//! `[code i16][language u8][version i16][opaque i32][flag i32][remarkLen i32][remark]
//! [extLen i32][(keyLen i16, key, valLen i32, val)*]`.
//!
//! Decoding never panics and never allocates more than the frame it was handed; a
//! frame announcing more than the configured maximum is refused from its 4-byte
//! length prefix alone.

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::codes::{language_code, language_name};
use super::command::{ExtFields, RemotingCommand, SerializeType};

/// Default largest frame accepted (`com.rocketmq.remoting.frameMaxLength`): 16 MiB.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// Largest header length the 24-bit field can carry.
const MAX_HEADER_BYTES: usize = 0xFF_FFFF;

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The socket failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The length prefix announces more than the maximum.
    #[error("frame of {len} bytes is larger than the maximum {max}")]
    FrameTooLarge {
        /// Announced length.
        len: i64,
        /// Configured maximum.
        max: usize,
    },
    /// The length prefix is negative or too small to hold the header length word.
    #[error("invalid frame length {0}")]
    BadLength(i32),
    /// The connection ended inside a frame.
    #[error("connection closed inside a frame ({got} of {want} bytes)")]
    Truncated {
        /// Bytes received.
        got: usize,
        /// Bytes announced.
        want: usize,
    },
    /// The serialize-type byte is neither JSON (0) nor ROCKETMQ (1).
    #[error("unknown serialize type {0}")]
    UnknownSerializeType(u8),
    /// The header does not parse.
    #[error("malformed header: {0}")]
    BadHeader(String),
}

fn bad(msg: impl Into<String>) -> CodecError {
    CodecError::BadHeader(msg.into())
}

/// Encode `cmd` as a full frame (length prefix included), appended to `out`.
///
/// # Errors
/// [`CodecError::BadHeader`] when the header would not fit the 24-bit length field
/// or the frame would not fit an `i32` length.
pub fn encode_into(cmd: &RemotingCommand, out: &mut Vec<u8>) -> Result<(), CodecError> {
    let header = match cmd.serialize_type {
        SerializeType::Json => encode_json_header(cmd).into_bytes(),
        SerializeType::RocketMq => encode_binary_header(cmd)?,
    };
    if header.len() > MAX_HEADER_BYTES {
        return Err(bad(format!("header of {} bytes is too long", header.len())));
    }
    let total = 4 + header.len() + cmd.body.len();
    let total_i32 =
        i32::try_from(total).map_err(|_| bad(format!("frame of {total} bytes is too long")))?;
    out.reserve(4 + total);
    out.extend_from_slice(&total_i32.to_be_bytes());
    let hlt = (u32::from(cmd.serialize_type.code()) << 24) | header.len() as u32;
    out.extend_from_slice(&hlt.to_be_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&cmd.body);
    Ok(())
}

/// Encode `cmd` as a full frame.
///
/// # Errors
/// As [`encode_into`].
pub fn encode(cmd: &RemotingCommand) -> Result<Vec<u8>, CodecError> {
    let mut v = Vec::new();
    encode_into(cmd, &mut v)?;
    Ok(v)
}

fn json_str(s: &str) -> String {
    // Serializing a &str cannot fail.
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string())
}

/// The JSON header as fastjson writes it: keys sorted, null fields left out.
pub fn encode_json_header(cmd: &RemotingCommand) -> String {
    let mut s = String::with_capacity(128);
    s.push_str("{\"code\":");
    s.push_str(&cmd.code.to_string());
    if !cmd.ext_fields.is_empty() {
        s.push_str(",\"extFields\":{");
        for (i, (k, v)) in cmd.ext_fields.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push_str(&json_str(k));
            s.push(':');
            s.push_str(&json_str(v));
        }
        s.push('}');
    }
    s.push_str(",\"flag\":");
    s.push_str(&cmd.flag.to_string());
    s.push_str(",\"language\":\"");
    s.push_str(language_name(cmd.language));
    s.push_str("\",\"opaque\":");
    s.push_str(&cmd.opaque.to_string());
    if let Some(r) = &cmd.remark {
        s.push_str(",\"remark\":");
        s.push_str(&json_str(r));
    }
    s.push_str(",\"serializeTypeCurrentRPC\":\"");
    s.push_str(match cmd.serialize_type {
        SerializeType::Json => "JSON",
        SerializeType::RocketMq => "ROCKETMQ",
    });
    s.push_str("\",\"version\":");
    s.push_str(&cmd.version.to_string());
    s.push('}');
    s
}

fn encode_binary_header(cmd: &RemotingCommand) -> Result<Vec<u8>, CodecError> {
    let code = i16::try_from(cmd.code).map_err(|_| bad("code does not fit i16"))?;
    let version = i16::try_from(cmd.version).unwrap_or(i16::MAX);
    let mut h = Vec::with_capacity(64);
    h.extend_from_slice(&code.to_be_bytes());
    h.push(cmd.language);
    h.extend_from_slice(&version.to_be_bytes());
    h.extend_from_slice(&cmd.opaque.to_be_bytes());
    h.extend_from_slice(&cmd.flag.to_be_bytes());
    let remark = cmd.remark.as_deref().unwrap_or("").as_bytes();
    h.extend_from_slice(&(remark.len() as i32).to_be_bytes());
    h.extend_from_slice(remark);
    let mut ext = Vec::new();
    for (k, v) in cmd.ext_fields.iter() {
        let klen = i16::try_from(k.len()).map_err(|_| bad("ext field key too long"))?;
        ext.extend_from_slice(&klen.to_be_bytes());
        ext.extend_from_slice(k.as_bytes());
        ext.extend_from_slice(&(v.len() as i32).to_be_bytes());
        ext.extend_from_slice(v.as_bytes());
    }
    h.extend_from_slice(&(ext.len() as i32).to_be_bytes());
    h.extend_from_slice(&ext);
    Ok(h)
}

/// Try to decode one frame from the front of `buf`.
///
/// Returns `Ok(None)` when more bytes are needed, `Ok(Some((cmd, consumed)))` for a
/// whole frame.
///
/// # Errors
/// A length prefix over `max_frame_bytes` or below 4, or a malformed header.
pub fn decode(
    buf: &[u8],
    max_frame_bytes: usize,
) -> Result<Option<(RemotingCommand, usize)>, CodecError> {
    let Some(len) = buf.get(..4) else {
        return Ok(None);
    };
    let len = check_length([len[0], len[1], len[2], len[3]], max_frame_bytes)?;
    let Some(frame) = buf.get(4..4 + len) else {
        return Ok(None);
    };
    Ok(Some((decode_frame(frame)?, 4 + len)))
}

/// Validate a length prefix; returns the frame length.
fn check_length(prefix: [u8; 4], max_frame_bytes: usize) -> Result<usize, CodecError> {
    let len = i32::from_be_bytes(prefix);
    if len < 4 {
        return Err(CodecError::BadLength(len));
    }
    let len_usize = len as usize;
    if len_usize > max_frame_bytes {
        return Err(CodecError::FrameTooLarge {
            len: i64::from(len),
            max: max_frame_bytes,
        });
    }
    Ok(len_usize)
}

/// Decode a frame without its length prefix: `[headerLenAndType][header][body]`.
///
/// # Errors
/// [`CodecError::UnknownSerializeType`] or [`CodecError::BadHeader`].
pub fn decode_frame(frame: &[u8]) -> Result<RemotingCommand, CodecError> {
    let Some(hlt) = frame.get(..4) else {
        return Err(bad("frame shorter than its header length word"));
    };
    let st_byte = hlt[0];
    let header_len = u32::from_be_bytes([0, hlt[1], hlt[2], hlt[3]]) as usize;
    let st = SerializeType::from_code(st_byte).ok_or(CodecError::UnknownSerializeType(st_byte))?;
    let header = frame.get(4..4 + header_len).ok_or_else(|| {
        bad(format!(
            "header length {header_len} exceeds the frame ({} bytes)",
            frame.len() - 4
        ))
    })?;
    let mut cmd = match st {
        SerializeType::Json => decode_json_header(header)?,
        SerializeType::RocketMq => decode_binary_header(header)?,
    };
    cmd.serialize_type = st;
    cmd.body = frame[4 + header_len..].to_vec();
    Ok(cmd)
}

fn value_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn field_i32(obj: &serde_json::Map<String, Value>, key: &str) -> Result<Option<i32>, CodecError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => value_i64(v)
            .and_then(|n| i32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| bad(format!("`{key}` is not a 32-bit integer: {v}"))),
    }
}

fn value_string(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        other => Some(other.to_string()),
    }
}

/// Decode a JSON header leniently, as Apache's fastjson-based broker does:
/// missing `serializeTypeCurrentRPC`, numbers or booleans as `extFields` values,
/// `language` as a name or a number, numbers sent as strings.
///
/// # Errors
/// [`CodecError::BadHeader`] when it is not a JSON object or `code` is missing.
pub fn decode_json_header(header: &[u8]) -> Result<RemotingCommand, CodecError> {
    let v: Value = serde_json::from_slice(header).map_err(|e| bad(format!("JSON header: {e}")))?;
    let Value::Object(obj) = v else {
        return Err(bad("JSON header is not an object"));
    };
    let code = field_i32(&obj, "code")?.ok_or_else(|| bad("JSON header has no `code`"))?;
    let language = match obj.get("language") {
        Some(Value::String(s)) => language_code(s),
        Some(Value::Number(n)) => n.as_u64().and_then(|n| u8::try_from(n).ok()).unwrap_or(7),
        _ => 0,
    };
    let mut ext = ExtFields::new();
    match obj.get("extFields") {
        Some(Value::Object(m)) => {
            for (k, v) in m {
                if let Some(s) = value_string(v) {
                    ext.0.insert(k.clone(), s);
                }
            }
        }
        None | Some(Value::Null) => {}
        Some(other) => return Err(bad(format!("`extFields` is not an object: {other}"))),
    }
    Ok(RemotingCommand {
        code,
        language,
        version: field_i32(&obj, "version")?.unwrap_or(0),
        opaque: field_i32(&obj, "opaque")?.unwrap_or(0),
        flag: field_i32(&obj, "flag")?.unwrap_or(0),
        remark: obj.get("remark").and_then(value_string),
        ext_fields: ext,
        serialize_type: SerializeType::Json,
        body: Vec::new(),
    })
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], CodecError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(|| bad(format!("binary header ends inside {what}")))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self, what: &str) -> Result<u8, CodecError> {
        Ok(self.take(1, what)?[0])
    }
    fn i16(&mut self, what: &str) -> Result<i16, CodecError> {
        let b = self.take(2, what)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self, what: &str) -> Result<i32, CodecError> {
        let b = self.take(4, what)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn string(&mut self, len: i64, what: &str) -> Result<Option<String>, CodecError> {
        if len <= 0 {
            return Ok(None);
        }
        let n = usize::try_from(len).map_err(|_| bad(format!("{what} length {len}")))?;
        let b = self.take(n, what)?;
        Ok(Some(String::from_utf8_lossy(b).into_owned()))
    }
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
}

/// Decode RocketMQ's binary header.
///
/// # Errors
/// [`CodecError::BadHeader`] when a length points past the header.
pub fn decode_binary_header(header: &[u8]) -> Result<RemotingCommand, CodecError> {
    let mut r = Reader {
        buf: header,
        pos: 0,
    };
    let code = i32::from(r.i16("code")?);
    let language = r.u8("language")?;
    let version = i32::from(r.i16("version")?);
    let opaque = r.i32("opaque")?;
    let flag = r.i32("flag")?;
    let remark_len = r.i32("remark length")?;
    let remark = r.string(i64::from(remark_len), "remark")?;
    let ext_len = r.i32("extFields length")?;
    let mut ext = ExtFields::new();
    if ext_len > 0 {
        let ext_bytes = r.take(ext_len as usize, "extFields")?;
        let mut e = Reader {
            buf: ext_bytes,
            pos: 0,
        };
        while e.remaining() > 0 {
            let klen = e.i16("ext key length")?;
            let key = e.string(i64::from(klen), "ext key")?.unwrap_or_default();
            let vlen = e.i32("ext value length")?;
            let val = e.string(i64::from(vlen), "ext value")?.unwrap_or_default();
            ext.0.insert(key, val);
        }
    }
    Ok(RemotingCommand {
        code,
        language,
        version,
        opaque,
        flag,
        remark,
        ext_fields: ext,
        serialize_type: SerializeType::RocketMq,
        body: Vec::new(),
    })
}

/// Read one frame from an async stream.
///
/// Returns `Ok(None)` on a clean end of stream between frames.
///
/// # Errors
/// [`CodecError::FrameTooLarge`] (nothing is allocated), [`CodecError::Truncated`]
/// when the stream ends inside a frame, a malformed header, or an I/O error.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max_frame_bytes: usize,
) -> Result<Option<RemotingCommand>, CodecError> {
    let mut prefix = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let n = r.read(&mut prefix[got..]).await?;
        if n == 0 {
            return if got == 0 {
                Ok(None)
            } else {
                Err(CodecError::Truncated { got, want: 4 })
            };
        }
        got += n;
    }
    let len = check_length(prefix, max_frame_bytes)?;
    let mut frame = vec![0u8; len];
    let mut got = 0;
    while got < len {
        let n = r.read(&mut frame[got..]).await?;
        if n == 0 {
            return Err(CodecError::Truncated {
                got: got + 4,
                want: len + 4,
            });
        }
        got += n;
    }
    decode_frame(&frame).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample(st: SerializeType) -> RemotingCommand {
        let mut c = RemotingCommand::request(310)
            .with_ext("a", "group")
            .with_ext("b", "Topic\"Q\u{e9}")
            .with_body(b"hello".to_vec());
        c.opaque = 42;
        c.version = 407;
        c.language = 12;
        c.remark = Some("r\n".into());
        c.serialize_type = st;
        c
    }

    #[test]
    fn round_trips_both_header_types() {
        for st in [SerializeType::Json, SerializeType::RocketMq] {
            let c = sample(st);
            let bytes = encode(&c).unwrap();
            let (d, used) = decode(&bytes, DEFAULT_MAX_FRAME_BYTES).unwrap().unwrap();
            assert_eq!(used, bytes.len());
            assert_eq!(d, c);
            assert_eq!(decode(&bytes[..bytes.len() - 1], 1 << 20).unwrap(), None);
        }
    }

    #[test]
    fn json_header_is_lenient() {
        let h = br#"{"code":"11","language":9,"opaque":3,"flag":0,
            "extFields":{"queueId":2,"sysFlag":true,"x":null,"topic":"T"}}"#;
        let c = decode_json_header(h).unwrap();
        assert_eq!(c.code, 11);
        assert_eq!(c.language, 9);
        assert_eq!(c.ext_fields.get_i64("queueId"), Ok(2));
        assert_eq!(c.ext_fields.get_bool("sysFlag"), Ok(true));
        assert_eq!(c.ext_fields.opt_str("x"), None);
        let c = decode_json_header(br#"{"code":0,"language":"CPP"}"#).unwrap();
        assert_eq!(c.language, 1);
        assert!(decode_json_header(br#"{"language":"CPP"}"#).is_err());
        assert!(decode_json_header(b"[1]").is_err());
    }

    #[test]
    fn json_header_looks_like_fastjson() {
        let mut c = RemotingCommand::success().with_ext("offset", 5);
        c.opaque = 9;
        assert_eq!(
            encode_json_header(&c),
            r#"{"code":0,"extFields":{"offset":"5"},"flag":1,"language":"JAVA","opaque":9,"serializeTypeCurrentRPC":"JSON","version":0}"#
        );
    }

    #[test]
    fn refuses_oversize_and_bad_lengths() {
        let mut b = (100_000_000i32).to_be_bytes().to_vec();
        b.extend_from_slice(&[0; 8]);
        assert!(matches!(
            decode(&b, DEFAULT_MAX_FRAME_BYTES),
            Err(CodecError::FrameTooLarge { .. })
        ));
        assert!(matches!(
            decode(&(-1i32).to_be_bytes(), 100),
            Err(CodecError::BadLength(-1))
        ));
        // header length larger than the frame
        let mut f = 8i32.to_be_bytes().to_vec();
        f.extend_from_slice(&[0, 0, 1, 0, 0, 0, 0, 0]);
        assert!(matches!(decode(&f, 100), Err(CodecError::BadHeader(_))));
        // unknown serialize type
        let mut f = 4i32.to_be_bytes().to_vec();
        f.extend_from_slice(&[7, 0, 0, 0]);
        assert!(matches!(
            decode(&f, 100),
            Err(CodecError::UnknownSerializeType(7))
        ));
    }

    #[test]
    fn binary_header_bounds_are_checked() {
        let c = sample(SerializeType::RocketMq);
        let h = encode_binary_header(&c).unwrap();
        for cut in 0..h.len() {
            assert!(decode_binary_header(&h[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[tokio::test]
    async fn read_frame_reports_truncation() {
        let bytes = encode(&sample(SerializeType::Json)).unwrap();
        let mut cut = &bytes[..bytes.len() - 2];
        assert!(matches!(
            read_frame(&mut cut, DEFAULT_MAX_FRAME_BYTES).await,
            Err(CodecError::Truncated { .. })
        ));
        let mut whole = &bytes[..];
        assert!(read_frame(&mut whole, DEFAULT_MAX_FRAME_BYTES)
            .await
            .unwrap()
            .is_some());
        assert!(read_frame(&mut whole, DEFAULT_MAX_FRAME_BYTES)
            .await
            .unwrap()
            .is_none());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&data, 4096);
            let _ = decode_frame(&data);
            let _ = decode_binary_header(&data);
            let _ = decode_json_header(&data);
        }

        #[test]
        fn mutated_frames_never_panic(idx in 0usize..200, byte in any::<u8>()) {
            for st in [SerializeType::Json, SerializeType::RocketMq] {
                let mut b = encode(&sample(st)).unwrap();
                let i = idx % b.len();
                b[i] = byte;
                let _ = decode(&b, 4096);
            }
        }
    }
}
