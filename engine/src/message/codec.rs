//! Encoding messages into commitlog records and decoding records back: the
//! body CRC, the in-place encoder used under the put lock, and the
//! bounds-checked record reader.

use super::*;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Body CRC as RocketMQ stores it: CRC-32/IEEE masked with `0x7FFF_FFFF`.
pub fn body_crc(body: &[u8]) -> u32 {
    crc32fast::hash(body) & 0x7FFF_FFFF
}

/// Where the encoder left the fields that are only known under the put lock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EncodedLayout {
    pub len: usize,
    pub store_timestamp_pos: usize,
}

pub(crate) const QUEUE_OFFSET_POS: usize = 20;
pub(crate) const PHYSICAL_OFFSET_POS: usize = 28;

fn host_len(addr: &SocketAddr) -> usize {
    if addr.is_ipv6() {
        20
    } else {
        8
    }
}

fn put_host(out: &mut impl RecordSink, addr: &SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => out.put(&ip.octets()),
        IpAddr::V6(ip) => out.put(&ip.octets()),
    }
    out.put(&(addr.port() as i32).to_be_bytes());
}

/// Where an encoder puts record bytes: a growing `Vec`, or exactly sized space.
pub(crate) trait RecordSink {
    fn put(&mut self, bytes: &[u8]);
}

impl RecordSink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// Exactly sized space (a record's place in a mapped file), filled front to back.
struct SliceSink<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl RecordSink for SliceSink<'_> {
    fn put(&mut self, bytes: &[u8]) {
        let end = self.pos + bytes.len();
        self.buf[self.pos..end].copy_from_slice(bytes);
        self.pos = end;
    }
}

/// One message measured and checksummed, ready to be encoded in place: the
/// body CRC and lengths are computed before the put lock is taken, and only
/// the copy into the file happens under it.
pub(crate) struct PreparedRecord<'a> {
    msg: &'a Message,
    store_host: &'a SocketAddr,
    body_crc: u32,
    props_len: usize,
    /// The record's length in bytes.
    pub len: usize,
    /// Where the store timestamp goes, relative to the record's start.
    pub store_timestamp_pos: usize,
}

impl<'a> PreparedRecord<'a> {
    /// Measure `msg` and checksum its body.
    pub fn new(msg: &'a Message, store_host: &'a SocketAddr) -> Self {
        let props_len = msg.properties.encoded_len();
        PreparedRecord {
            msg,
            store_host,
            body_crc: body_crc(&msg.body),
            props_len,
            len: record_len(msg, store_host, props_len),
            store_timestamp_pos: STORE_TIMESTAMP_POS_V4 - 8 + host_len(&msg.born_host),
        }
    }

    /// Encode into `dst`, which must be exactly `self.len` bytes.
    pub fn write(&self, dst: &mut [u8]) {
        debug_assert_eq!(dst.len(), self.len);
        let mut sink = SliceSink { buf: dst, pos: 0 };
        encode_to(self, &mut sink);
        debug_assert_eq!(sink.pos, self.len);
    }
}

/// Offset of the store timestamp in a record with an IPv4 born host.
const STORE_TIMESTAMP_POS_V4: usize = 56;

/// Length of the record `msg` encodes to with `props_len` bytes of properties.
pub(crate) fn record_len(msg: &Message, store_host: &SocketAddr, props_len: usize) -> usize {
    FIXED_RECORD_OVERHEAD - 16
        + host_len(&msg.born_host)
        + host_len(store_host)
        + msg.body.len()
        + msg.topic.len()
        + props_len
}

/// Append `msg` to `out` as a full record whose queue offset, physical offset
/// and store timestamp are zero, to be patched under the put lock. The layout's
/// positions are relative to the record's start. The caller has validated lengths.
pub(crate) fn encode_record(
    msg: &Message,
    store_host: &SocketAddr,
    out: &mut Vec<u8>,
) -> EncodedLayout {
    let start = out.len();
    let rec = PreparedRecord::new(msg, store_host);
    out.reserve(rec.len);
    encode_to(&rec, out);
    debug_assert_eq!(out.len() - start, rec.len);
    EncodedLayout {
        len: rec.len,
        store_timestamp_pos: rec.store_timestamp_pos,
    }
}

/// The record encoder: every field in RocketMQ's order, big-endian, with queue
/// offset, physical offset and store timestamp left at zero.
fn encode_to(rec: &PreparedRecord<'_>, out: &mut impl RecordSink) {
    let (msg, store_host) = (rec.msg, rec.store_host);
    let mut sys = msg.sys_flag & !(sys_flag::BORNHOST_V6 | sys_flag::STOREHOST_V6);
    if msg.born_host.is_ipv6() {
        sys |= sys_flag::BORNHOST_V6;
    }
    if store_host.is_ipv6() {
        sys |= sys_flag::STOREHOST_V6;
    }
    out.put(&(rec.len as i32).to_be_bytes());
    out.put(&MESSAGE_MAGIC_CODE.to_be_bytes());
    out.put(&rec.body_crc.to_be_bytes());
    out.put(&(msg.queue_id as i32).to_be_bytes());
    out.put(&msg.flag.to_be_bytes());
    out.put(&0i64.to_be_bytes()); // queue offset
    out.put(&0i64.to_be_bytes()); // physical offset
    out.put(&sys.to_be_bytes());
    out.put(&msg.born_timestamp_ms.to_be_bytes());
    put_host(out, &msg.born_host);
    out.put(&0i64.to_be_bytes()); // store timestamp
    put_host(out, store_host);
    out.put(&msg.reconsume_times.to_be_bytes());
    out.put(&msg.prepared_transaction_offset.to_be_bytes());
    out.put(&(msg.body.len() as i32).to_be_bytes());
    out.put(&msg.body);
    out.put(&[msg.topic.len() as u8]);
    out.put(msg.topic.as_bytes());
    out.put(&(rec.props_len as i16).to_be_bytes());
    msg.properties.encode_to(out);
}

/// Encode `msg` as a full commitlog record into `out` (cleared first), with queue
/// offset, physical offset and store timestamp left at zero (the store fills them
/// in under its put lock). Returns the record length. Lengths are not validated.
pub fn encode_message(msg: &Message, store_host: &SocketAddr, out: &mut Vec<u8>) -> usize {
    out.clear();
    encode_record(msg, store_host, out).len
}

/// A bounds-checked big-endian reader over a record.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    // Inlined, with the error built out of line: dispatch and recovery parse
    // every record's header through these, a dozen calls per record.
    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        match self.pos.checked_add(n).filter(|e| *e <= self.buf.len()) {
            Some(end) => {
                let s = &self.buf[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(self.truncated(n)),
        }
    }
    #[cold]
    #[inline(never)]
    fn truncated(&self, n: usize) -> DecodeError {
        DecodeError::new(format!(
            "record truncated: need {n} bytes at {}, have {}",
            self.pos,
            self.buf.len()
        ))
    }
    #[inline]
    fn i8(&mut self) -> Result<i8, DecodeError> {
        Ok(self.take(1)?[0] as i8)
    }
    #[inline]
    fn i16(&mut self) -> Result<i16, DecodeError> {
        Ok(i16::from_be_bytes(self.take(2)?.try_into().expect("2")))
    }
    #[inline]
    fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into().expect("4")))
    }
    #[inline]
    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.take(8)?.try_into().expect("8")))
    }
    fn host(&mut self, v6: bool) -> Result<SocketAddr, DecodeError> {
        let ip = if v6 {
            let mut o = [0u8; 16];
            o.copy_from_slice(self.take(16)?);
            IpAddr::V6(o.into())
        } else {
            let b = self.take(4)?;
            IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
        };
        let port = self.i32()?;
        Ok(SocketAddr::new(ip, port as u16))
    }
}

/// The parts of a record the dispatcher needs, parsed without copying the body.
#[derive(Debug, Clone)]
pub(crate) struct RecordHeader<'a> {
    pub total_size: u32,
    pub body_crc: u32,
    pub queue_id: u32,
    pub queue_offset: i64,
    pub physical_offset: i64,
    pub sys_flag: i32,
    pub store_timestamp_ms: i64,
    pub body: &'a [u8],
    pub topic: &'a str,
    pub properties: &'a [u8],
}

impl RecordHeader<'_> {
    /// Tag code from the `TAGS` property found in the raw properties bytes.
    pub fn tags_code(&self) -> i64 {
        find_property(self.properties, keys::TAGS)
            .map(|t| tags_code(Some(t)))
            .unwrap_or(0)
    }
}

/// Find a property in raw encoded bytes without allocating.
pub(crate) fn find_property<'a>(props: &'a [u8], key: &str) -> Option<&'a str> {
    for seg in props.split(|b| *b == 2) {
        if seg.len() < 3 {
            continue;
        }
        if let Some(i) = seg.iter().position(|b| *b == 1) {
            if &seg[..i] == key.as_bytes() {
                return std::str::from_utf8(&seg[i + 1..]).ok();
            }
        }
    }
    None
}

/// What [`check_record`] found at a position.
#[derive(Debug)]
pub(crate) enum RecordCheck<'a> {
    /// A valid message record.
    Message(RecordHeader<'a>),
    /// The blank record: the rest of the file is empty.
    Blank,
    /// Zero bytes: nothing was written here.
    End,
}

/// Validate the record at the start of `buf` (RocketMQ's `checkMessageAndReturnSize`).
/// `buf` holds the readable rest of the file. With `check_crc`, the body CRC is verified.
pub(crate) fn check_record(buf: &[u8], check_crc: bool) -> Result<RecordCheck<'_>, DecodeError> {
    if buf.len() < 8 {
        if buf.iter().all(|b| *b == 0) {
            return Ok(RecordCheck::End);
        }
        return Err(DecodeError::new("fewer than 8 bytes left for a record"));
    }
    let total = i32::from_be_bytes(buf[0..4].try_into().expect("4"));
    let magic = i32::from_be_bytes(buf[4..8].try_into().expect("4"));
    if total == 0 && magic == 0 {
        return Ok(RecordCheck::End);
    }
    if magic == BLANK_MAGIC_CODE {
        return Ok(RecordCheck::Blank);
    }
    if magic != MESSAGE_MAGIC_CODE {
        return Err(DecodeError::new(format!(
            "bad magic code {magic:#010x} (size field {total})"
        )));
    }
    if total < (FIXED_RECORD_OVERHEAD as i32 - 1) || total as usize > buf.len() {
        return Err(DecodeError::new(format!(
            "record size {total} out of range (at most {} bytes readable)",
            buf.len()
        )));
    }
    let rec = &buf[..total as usize];
    let h = parse_header(rec)?;
    if check_crc && body_crc(h.body) != h.body_crc {
        return Err(DecodeError::new(format!(
            "body CRC mismatch: stored {:#x}, computed {:#x}",
            h.body_crc,
            body_crc(h.body)
        )));
    }
    Ok(RecordCheck::Message(h))
}

/// Parse a whole message record (exactly `rec.len()` bytes) without copying.
pub(crate) fn parse_header(rec: &[u8]) -> Result<RecordHeader<'_>, DecodeError> {
    let mut r = Reader { buf: rec, pos: 0 };
    let total = r.i32()?;
    let magic = r.i32()?;
    if magic != MESSAGE_MAGIC_CODE {
        return Err(DecodeError::new(format!("bad magic code {magic:#010x}")));
    }
    if total as usize != rec.len() {
        return Err(DecodeError::new(format!(
            "size field {total} differs from record length {}",
            rec.len()
        )));
    }
    let body_crc = r.i32()? as u32;
    let queue_id = r.i32()?;
    let _flag = r.i32()?;
    let queue_offset = r.i64()?;
    let physical_offset = r.i64()?;
    let sys_flag = r.i32()?;
    let _born_ts = r.i64()?;
    r.take(if sys_flag & sys_flag::BORNHOST_V6 != 0 {
        20
    } else {
        8
    })?;
    let store_timestamp_ms = r.i64()?;
    r.take(if sys_flag & sys_flag::STOREHOST_V6 != 0 {
        20
    } else {
        8
    })?;
    let _reconsume = r.i32()?;
    let _prepared = r.i64()?;
    let body_len = r.i32()?;
    if body_len < 0 {
        return Err(DecodeError::new(format!("negative body length {body_len}")));
    }
    let body = r.take(body_len as usize)?;
    let topic_len = r.i8()?;
    if topic_len <= 0 {
        return Err(DecodeError::new(format!("bad topic length {topic_len}")));
    }
    let topic = std::str::from_utf8(r.take(topic_len as usize)?)
        .map_err(|_| DecodeError::new("topic is not UTF-8"))?;
    let props_len = r.i16()?;
    if props_len < 0 {
        return Err(DecodeError::new(format!(
            "negative properties length {props_len}"
        )));
    }
    let properties = r.take(props_len as usize)?;
    if r.pos != rec.len() {
        return Err(DecodeError::new(format!(
            "fields end at {} but the record is {} bytes",
            r.pos,
            rec.len()
        )));
    }
    if physical_offset < 0 {
        return Err(DecodeError::new("negative physical offset"));
    }
    // A negative queue id or offset does not make the record unreadable (as
    // in RocketMQ's checkMessageAndReturnSize): recovery keeps it and the
    // records after it, and dispatch refuses it (a negative id reads as a
    // u32 above any queue id it accepts, a negative offset as a u64 above
    // any queue offset).
    Ok(RecordHeader {
        total_size: total as u32,
        body_crc,
        queue_id: queue_id as u32,
        queue_offset,
        physical_offset,
        sys_flag,
        store_timestamp_ms,
        body,
        topic,
        properties,
    })
}

/// Decode one whole record into a [`MessageExt`], verifying its body CRC.
pub fn decode_record(rec: &[u8]) -> Result<MessageExt, DecodeError> {
    let h = parse_header(rec)?;
    if body_crc(h.body) != h.body_crc {
        return Err(DecodeError::new(format!(
            "body CRC mismatch: stored {:#x}, computed {:#x}",
            h.body_crc,
            body_crc(h.body)
        )));
    }
    let mut r = Reader { buf: rec, pos: 16 };
    let flag = r.i32()?;
    r.pos = 40;
    let born_timestamp_ms = r.i64()?;
    let born_host = r.host(h.sys_flag & sys_flag::BORNHOST_V6 != 0)?;
    let store_timestamp_ms = r.i64()?;
    let store_host = r.host(h.sys_flag & sys_flag::STOREHOST_V6 != 0)?;
    let reconsume_times = r.i32()?;
    let prepared_transaction_offset = r.i64()?;
    Ok(MessageExt {
        store_size: h.total_size,
        body_crc: h.body_crc,
        queue_id: h.queue_id,
        flag,
        queue_offset: h.queue_offset as u64,
        commit_log_offset: h.physical_offset as u64,
        sys_flag: h.sys_flag,
        born_timestamp_ms,
        born_host,
        store_timestamp_ms,
        store_host,
        reconsume_times,
        prepared_transaction_offset,
        body: h.body.to_vec(),
        topic: h.topic.to_string(),
        properties: MessageProperties::decode(h.properties)?,
    })
}

/// Decode a run of concatenated records (a pull response body).
pub fn decode_records(mut buf: &[u8]) -> Result<Vec<MessageExt>, DecodeError> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        if buf.len() < 4 {
            return Err(DecodeError::new("trailing bytes after the last record"));
        }
        let total = i32::from_be_bytes(buf[..4].try_into().expect("4"));
        if total <= 0 || total as usize > buf.len() {
            return Err(DecodeError::new(format!(
                "record size {total} out of range"
            )));
        }
        out.push(decode_record(&buf[..total as usize])?);
        buf = &buf[total as usize..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_host() -> SocketAddr {
        "10.1.2.3:10911".parse().unwrap()
    }

    #[test]
    fn encode_decode_round_trip() {
        let msg = Message::new("TopicTest", b"hello world".to_vec())
            .with_queue_id(3)
            .with_tags("TagA")
            .with_keys(["k1", "k2"])
            .with_property("custom", "v");
        let mut buf = Vec::new();
        let layout = encode_record(&msg, &store_host(), &mut buf);
        assert_eq!(layout.len, buf.len());
        assert_eq!(
            buf.len(),
            FIXED_RECORD_OVERHEAD + 11 + 9 + msg.properties.encoded_len()
        );
        assert_eq!(layout.store_timestamp_pos, 56);
        buf[QUEUE_OFFSET_POS..QUEUE_OFFSET_POS + 8].copy_from_slice(&7i64.to_be_bytes());
        buf[PHYSICAL_OFFSET_POS..PHYSICAL_OFFSET_POS + 8].copy_from_slice(&4096i64.to_be_bytes());
        let m = decode_record(&buf).unwrap();
        assert_eq!(m.topic, "TopicTest");
        assert_eq!(m.body, b"hello world");
        assert_eq!(m.queue_id, 3);
        assert_eq!(m.queue_offset, 7);
        assert_eq!(m.commit_log_offset, 4096);
        assert_eq!(m.tags(), Some("TagA"));
        assert_eq!(m.keys(), vec!["k1", "k2"]);
        assert_eq!(m.properties.get("custom"), Some("v"));
        assert_eq!(m.store_host, store_host());
        assert_eq!(m.msg_id(), "0A01020300002A9F0000000000001000");
        let (addr, off) = decode_offset_msg_id(&m.msg_id()).unwrap();
        assert_eq!((addr, off), (store_host(), 4096));
    }

    #[test]
    fn ipv6_hosts_round_trip() {
        let mut msg = Message::new("T", vec![1, 2, 3]);
        msg.born_host = "[::1]:1234".parse().unwrap();
        let sh: SocketAddr = "[fe80::1]:10911".parse().unwrap();
        let mut buf = Vec::new();
        encode_record(&msg, &sh, &mut buf);
        assert_eq!(buf.len(), FIXED_RECORD_OVERHEAD + 24 + 3 + 1);
        let m = decode_record(&buf).unwrap();
        assert_eq!(m.born_host, msg.born_host);
        assert_eq!(m.store_host, sh);
        assert_eq!(m.msg_id().len(), 56);
    }

    #[test]
    fn in_place_encoding_matches_the_vec_encoder_and_places_the_store_timestamp() {
        for born in ["10.0.0.1:1234", "[::1]:1234"] {
            let mut msg = Message::new("TopicTest", b"body bytes".to_vec())
                .with_tags("TagA")
                .with_keys(["k1"]);
            msg.born_host = born.parse().unwrap();
            msg.born_timestamp_ms = 1_700_000_000_123;
            let sh = store_host();
            let mut vec_buf = Vec::new();
            let layout = encode_record(&msg, &sh, &mut vec_buf);
            let rec = PreparedRecord::new(&msg, &sh);
            assert_eq!(
                (rec.len, rec.store_timestamp_pos),
                (layout.len, layout.store_timestamp_pos)
            );
            // Encode into dirty space, as a reused mapped page could be.
            let mut slice_buf = vec![0xA5u8; rec.len];
            rec.write(&mut slice_buf);
            assert_eq!(slice_buf, vec_buf, "born host {born}");
            let ts = 1_700_000_000_456i64;
            slice_buf[rec.store_timestamp_pos..rec.store_timestamp_pos + 8]
                .copy_from_slice(&ts.to_be_bytes());
            let m = decode_record(&slice_buf).unwrap();
            assert_eq!(m.store_timestamp_ms, ts, "born host {born}");
            assert_eq!(m.born_timestamp_ms, msg.born_timestamp_ms);
            assert_eq!(m.born_host, msg.born_host);
            assert_eq!(m.body, b"body bytes");
        }
    }

    #[test]
    fn corrupt_records_are_errors() {
        let msg = Message::new("T", vec![9; 100]);
        let mut buf = Vec::new();
        encode_record(&msg, &store_host(), &mut buf);
        let mut bad = buf.clone();
        bad[100] ^= 0xFF;
        assert!(decode_record(&bad).unwrap_err().reason.contains("CRC"));
        assert!(check_record(&bad, true).is_err());
        assert!(check_record(&bad, false).is_ok());
        assert!(decode_record(&buf[..50]).is_err());
        let mut bad_magic = buf.clone();
        bad_magic[5] = 0;
        assert!(check_record(&bad_magic, true).is_err());
        assert!(matches!(
            check_record(&[0u8; 64], true),
            Ok(RecordCheck::End)
        ));
    }

    proptest::proptest! {
        #[test]
        fn decoder_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
            let _ = decode_record(&bytes);
            let _ = decode_records(&bytes);
            let _ = check_record(&bytes, true);
            let _ = MessageProperties::decode(&bytes);
        }
    }
}
