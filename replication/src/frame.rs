//! HA frame layout: `[i64 offset][i32 size][size bytes]`, big-endian.

use std::io::{Read, Write};

use crate::HaError;

/// Bytes before a frame's body.
pub const FRAME_HEADER_LEN: usize = 12;

/// Largest body a slave accepts (RocketMQ's slave read buffer is 4 MiB).
pub(crate) const MAX_FRAME_BODY: usize = 4 * 1024 * 1024;

/// Decode a frame header into `(offset, size)`, refusing negative values and
/// bodies larger than 4 MiB.
pub fn read_frame_header(h: &[u8; FRAME_HEADER_LEN]) -> Result<(u64, usize), HaError> {
    let offset = i64::from_be_bytes(h[..8].try_into().expect("8 bytes"));
    let size = i32::from_be_bytes(h[8..].try_into().expect("4 bytes"));
    if offset < 0 || size < 0 || size as usize > MAX_FRAME_BODY {
        return Err(HaError::Protocol(format!(
            "bad frame header: offset {offset}, size {size}"
        )));
    }
    Ok((offset as u64, size as usize))
}

/// Write one frame.
pub(crate) fn write_frame(w: &mut impl Write, offset: u64, body: &[u8]) -> std::io::Result<()> {
    let mut h = [0u8; FRAME_HEADER_LEN];
    h[..8].copy_from_slice(&(offset as i64).to_be_bytes());
    h[8..].copy_from_slice(&(body.len() as i32).to_be_bytes());
    w.write_all(&h)?;
    if !body.is_empty() {
        w.write_all(body)?;
    }
    w.flush()
}

/// Write a slave's offset report.
pub(crate) fn write_report(w: &mut impl Write, offset: u64) -> std::io::Result<()> {
    w.write_all(&(offset as i64).to_be_bytes())?;
    w.flush()
}

/// Read a slave's offset report.
pub(crate) fn read_report(r: &mut impl Read) -> std::io::Result<i64> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b)?;
    Ok(i64::from_be_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_limits() {
        let mut v = Vec::new();
        write_frame(&mut v, 4096, b"abc").unwrap();
        assert_eq!(v.len(), 15);
        let h: [u8; 12] = v[..12].try_into().unwrap();
        assert_eq!(read_frame_header(&h).unwrap(), (4096, 3));
        let mut bad = h;
        bad[0] = 0x80;
        assert!(read_frame_header(&bad).is_err());
        let mut huge = h;
        huge[8..].copy_from_slice(&(64i32 << 20).to_be_bytes());
        assert!(read_frame_header(&huge).is_err());
        let mut r = Vec::new();
        write_report(&mut r, 77).unwrap();
        assert_eq!(read_report(&mut &r[..]).unwrap(), 77);
    }
}
