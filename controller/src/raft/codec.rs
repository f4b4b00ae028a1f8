//! The on-disk record framing of the controller store, and its errors.
//!
//! Every store file starts with an 8-byte magic naming its kind and version,
//! followed by records framed as `[length: u32 BE][crc32: u32 BE][payload]`
//! (CRC-32/ISO-HDLC of the payload, as `crc32fast` computes it). The payloads
//! are JSON.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Bytes of a record's header (length + CRC).
pub(crate) const RECORD_HEADER: usize = 8;

/// The largest record accepted on reading: a larger length is corruption.
pub(crate) const MAX_RECORD: usize = 256 << 20;

/// Why the controller store could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An I/O error on a store file.
    #[error("controller store {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A store file does not hold what this store wrote: the node refuses to
    /// start rather than reset its Raft state (which could lose committed
    /// entries or break a vote it gave).
    #[error(
        "controller store file {path} is corrupt at byte {offset}: {reason} \
         (refusing to start on it: restore the directory from a backup, or \
         move it away to rejoin the cluster empty)"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where in the file.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
}

impl StoreError {
    pub(crate) fn io(path: &Path, source: io::Error) -> Self {
        StoreError::Io {
            path: path.to_owned(),
            source,
        }
    }

    pub(crate) fn corrupt(path: &Path, offset: u64, reason: impl Into<String>) -> Self {
        StoreError::Corrupt {
            path: path.to_owned(),
            offset,
            reason: reason.into(),
        }
    }

    /// As an `io::Error`, for openraft's `StorageError`.
    pub(crate) fn into_io(self) -> io::Error {
        match self {
            StoreError::Io { path, source } => {
                io::Error::new(source.kind(), format!("{}: {source}", path.display()))
            }
            corrupt @ StoreError::Corrupt { .. } => {
                io::Error::new(io::ErrorKind::InvalidData, corrupt.to_string())
            }
        }
    }
}

/// Appends one framed record holding `payload` to `out`.
pub(crate) fn put_record(out: &mut Vec<u8>, payload: &[u8]) {
    let len = u32::try_from(payload.len()).expect("a store record fits in u32");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_be_bytes());
    out.extend_from_slice(payload);
}

/// The records found by [`scan_records`].
pub(crate) struct Scanned {
    /// Each record's offset in the file (of its header) and its payload's
    /// byte range in the scanned buffer.
    pub records: Vec<(u64, Range<usize>)>,
    /// Where a last, incomplete record starts (the file ends inside it: an
    /// append torn by a crash), if any.
    pub torn_at: Option<u64>,
}

/// Scans the records of `bytes`, the whole file (magic included), after a
/// magic of `magic.len()` bytes that must match.
///
/// A complete record with a bad CRC or an impossible length is corruption
/// (an error); a record cut short by the end of the file is reported in
/// [`Scanned::torn_at`], for the caller to decide.
pub(crate) fn scan_records(path: &Path, bytes: &[u8], magic: &[u8]) -> Result<Scanned, StoreError> {
    if bytes.len() < magic.len() || &bytes[..magic.len()] != magic {
        return Err(StoreError::corrupt(
            path,
            0,
            format!(
                "it does not start with the magic {:?}",
                String::from_utf8_lossy(magic)
            ),
        ));
    }
    let mut pos = magic.len();
    let mut records = Vec::new();
    while pos < bytes.len() {
        if bytes.len() - pos < RECORD_HEADER {
            return Ok(Scanned {
                records,
                torn_at: Some(pos as u64),
            });
        }
        let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_be_bytes(bytes[pos + 4..pos + 8].try_into().expect("4 bytes"));
        if len == 0 || len > MAX_RECORD {
            return Err(StoreError::corrupt(
                path,
                pos as u64,
                format!("record length {len} is impossible"),
            ));
        }
        let start = pos + RECORD_HEADER;
        if bytes.len() - start < len {
            return Ok(Scanned {
                records,
                torn_at: Some(pos as u64),
            });
        }
        let payload = start..start + len;
        if crc32fast::hash(&bytes[payload.clone()]) != crc {
            return Err(StoreError::corrupt(
                path,
                pos as u64,
                "record checksum mismatch",
            ));
        }
        records.push((pos as u64, payload));
        pos = start + len;
    }
    Ok(Scanned {
        records,
        torn_at: None,
    })
}

/// Reads a file written by [`write_atomically`]: its magic and exactly the
/// records it holds; `None` when the file does not exist. A torn record is
/// corruption here (the file is replaced by rename, never appended to).
pub(crate) fn read_record_file(
    path: &Path,
    magic: &[u8],
) -> Result<Option<Vec<Vec<u8>>>, StoreError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::io(path, e)),
    };
    let scanned = scan_records(path, &bytes, magic)?;
    if let Some(at) = scanned.torn_at {
        return Err(StoreError::corrupt(path, at, "truncated record"));
    }
    Ok(Some(
        scanned
            .records
            .into_iter()
            .map(|(_, range)| bytes[range].to_vec())
            .collect(),
    ))
}

/// Replaces `path` with `magic` followed by `records`, crash-safely: written
/// to `<path>.tmp`, fsynced, renamed over `path`, and the directory fsynced.
pub(crate) fn write_atomically(
    path: &Path,
    magic: &[u8],
    records: &[&[u8]],
) -> Result<(), StoreError> {
    let mut bytes = magic.to_vec();
    for record in records {
        put_record(&mut bytes, record);
    }
    let tmp = tmp_path(path);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| StoreError::io(&tmp, e))?;
    file.write_all(&bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| StoreError::io(&tmp, e))?;
    drop(file);
    fs::rename(&tmp, path).map_err(|e| StoreError::io(path, e))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// `<path>.tmp`.
pub(crate) fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Fsyncs a directory (so a create or rename in it is durable).
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_damage_is_detected() {
        let p = Path::new("f");
        let mut bytes = b"MAGIC001".to_vec();
        put_record(&mut bytes, b"hello");
        put_record(&mut bytes, b"{}");
        let s = scan_records(p, &bytes, b"MAGIC001").unwrap();
        assert_eq!(s.records.len(), 2);
        assert_eq!(&bytes[s.records[1].1.clone()], b"{}");
        assert_eq!(s.records[1].0, 8 + 8 + 5);
        assert_eq!(s.torn_at, None);
        // Cut inside the last record: torn, the first one is kept.
        let s = scan_records(p, &bytes[..bytes.len() - 1], b"MAGIC001").unwrap();
        assert_eq!((s.records.len(), s.torn_at), (1, Some(21)));
        let s = scan_records(p, &bytes[..23], b"MAGIC001").unwrap();
        assert_eq!((s.records.len(), s.torn_at), (1, Some(21)));
        // A flipped payload byte: corruption, with its offset.
        let mut bad = bytes.clone();
        bad[17] ^= 1;
        match scan_records(p, &bad, b"MAGIC001") {
            Err(StoreError::Corrupt {
                offset: 8, reason, ..
            }) => {
                assert!(reason.contains("checksum"))
            }
            other => panic!("{:?}", other.map(|s| s.records)),
        }
        // An impossible length.
        let mut bad = bytes.clone();
        bad[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(scan_records(p, &bad, b"MAGIC001").is_err());
        // Wrong magic.
        assert!(scan_records(p, &bytes, b"MAGIC002").is_err());
        assert!(scan_records(p, b"MAG", b"MAGIC001").is_err());
    }

    #[test]
    fn atomic_files_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta");
        assert!(read_record_file(&path, b"MAGIC001").unwrap().is_none());
        write_atomically(&path, b"MAGIC001", &[b"a", b"bc"]).unwrap();
        write_atomically(&path, b"MAGIC001", &[b"x"]).unwrap();
        assert_eq!(
            read_record_file(&path, b"MAGIC001").unwrap().unwrap(),
            vec![b"x".to_vec()]
        );
        assert!(!tmp_path(&path).exists());
        let len = fs::metadata(&path).unwrap().len();
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len - 1).unwrap();
        assert!(matches!(
            read_record_file(&path, b"MAGIC001"),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
