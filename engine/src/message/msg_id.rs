//! Offset message ids: the store host and commitlog offset of a record, in
//! uppercase hex.

use super::DecodeError;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Offset msgId: uppercase hex of `[store ip][port i32][commitlog offset i64]`.
pub fn offset_msg_id(store_host: SocketAddr, commit_log_offset: u64) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut raw = [0u8; 28];
    let n = match store_host.ip() {
        IpAddr::V4(ip) => {
            raw[..4].copy_from_slice(&ip.octets());
            4
        }
        IpAddr::V6(ip) => {
            raw[..16].copy_from_slice(&ip.octets());
            16
        }
    };
    raw[n..n + 4].copy_from_slice(&(store_host.port() as i32).to_be_bytes());
    raw[n + 4..n + 12].copy_from_slice(&(commit_log_offset as i64).to_be_bytes());
    let mut s = String::with_capacity((n + 12) * 2);
    for b in &raw[..n + 12] {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

/// Decode an offset msgId into store address and commitlog offset.
pub fn decode_offset_msg_id(msg_id: &str) -> Result<(SocketAddr, u64), DecodeError> {
    let bytes = hex_decode(msg_id).ok_or_else(|| DecodeError::new("msgId is not hex"))?;
    let ip_len = match bytes.len() {
        16 => 4,
        28 => 16,
        n => {
            return Err(DecodeError::new(format!(
                "msgId has {n} bytes, want 16 or 28"
            )))
        }
    };
    let ip = if ip_len == 4 {
        IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]))
    } else {
        let mut o = [0u8; 16];
        o.copy_from_slice(&bytes[..16]);
        IpAddr::V6(o.into())
    };
    let port = i32::from_be_bytes(bytes[ip_len..ip_len + 4].try_into().expect("4 bytes"));
    let off = i64::from_be_bytes(bytes[ip_len + 4..ip_len + 12].try_into().expect("8 bytes"));
    if !(0..=65535).contains(&port) || off < 0 {
        return Err(DecodeError::new("msgId has an invalid port or offset"));
    }
    Ok((SocketAddr::new(ip, port as u16), off as u64))
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if b.len() % 2 != 0 {
        return None;
    }
    let val = |c: u8| -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    };
    b.chunks(2)
        .map(|p| Some(val(p[0])? << 4 | val(p[1])?))
        .collect()
}
