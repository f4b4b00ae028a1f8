//! The `checkpoint` file, in RocketMQ's layout: 4096 bytes, big-endian
//! `physicMsgTimestamp` i64 @0, `logicsMsgTimestamp` i64 @8, `indexMsgTimestamp`
//! i64 @16 (ms since the epoch). ferromq also keeps, after RocketMQ's fields,
//! a magic, the commitlog offset the timestamps correspond to and a CRC, so it
//! can tell a damaged checkpoint from a valid one (RocketMQ readers ignore them).
//!
//! Written with `pwrite` + `fdatasync` (no mapping): it changes once per flush round.

use crate::sync::LockExt;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Error, Result};

/// Size of the checkpoint file.
pub const CHECKPOINT_FILE_SIZE: usize = 4096;
const MAGIC: u32 = 0xF3_22_C4_01;

/// The recorded points. A checkpoint written by RocketMQ has only the
/// timestamps; its offsets read as 0, which makes recovery start at the
/// beginning of the log (slow, but never wrong).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckpointData {
    /// Store timestamp of the last commitlog record known flushed.
    pub physic_msg_timestamp: i64,
    /// Store timestamp of the last record whose consume-queue unit is flushed.
    pub logics_msg_timestamp: i64,
    /// End timestamp of the last full index file flushed.
    pub index_msg_timestamp: i64,
    /// Commitlog offset up to which consume queues are flushed (ferromq).
    pub logics_offset: u64,
    /// Commitlog offset known flushed (ferromq).
    pub physic_offset: u64,
    /// Commitlog offset up to which the key index is flushed (ferromq).
    pub index_offset: u64,
}

impl CheckpointData {
    /// RocketMQ's `minTimestamp`: min(physic, logics) - 3 s, at least 0.
    #[cfg_attr(not(feature = "internals"), allow(dead_code))] // for the benches and tests
    pub fn min_timestamp(&self) -> i64 {
        (self.physic_msg_timestamp.min(self.logics_msg_timestamp) - 3000).max(0)
    }

    fn encode(&self) -> [u8; 56] {
        let mut b = [0u8; 56];
        b[0..8].copy_from_slice(&self.physic_msg_timestamp.to_be_bytes());
        b[8..16].copy_from_slice(&self.logics_msg_timestamp.to_be_bytes());
        b[16..24].copy_from_slice(&self.index_msg_timestamp.to_be_bytes());
        b[24..28].copy_from_slice(&MAGIC.to_be_bytes());
        b[28..36].copy_from_slice(&self.logics_offset.to_be_bytes());
        b[36..44].copy_from_slice(&self.physic_offset.to_be_bytes());
        b[44..52].copy_from_slice(&self.index_offset.to_be_bytes());
        let crc = crc32fast::hash(&b[..52]);
        b[52..56].copy_from_slice(&crc.to_be_bytes());
        b
    }

    fn decode(b: &[u8]) -> Option<CheckpointData> {
        let i64_at = |p: usize| i64::from_be_bytes(b[p..p + 8].try_into().expect("8"));
        let magic = u32::from_be_bytes(b[24..28].try_into().expect("4"));
        let crc = u32::from_be_bytes(b[52..56].try_into().expect("4"));
        let d = CheckpointData {
            physic_msg_timestamp: i64_at(0),
            logics_msg_timestamp: i64_at(8),
            index_msg_timestamp: i64_at(16),
            logics_offset: u64::from_be_bytes(b[28..36].try_into().expect("8")),
            physic_offset: u64::from_be_bytes(b[36..44].try_into().expect("8")),
            index_offset: u64::from_be_bytes(b[44..52].try_into().expect("8")),
        };
        if magic == MAGIC && crc == crc32fast::hash(&b[..52]) {
            Some(d)
        } else if b[24..].iter().all(|x| *x == 0) {
            // A RocketMQ checkpoint: only the timestamps, no offsets.
            Some(d)
        } else {
            None
        }
    }
}

/// The checkpoint file.
#[derive(Debug)]
pub struct Checkpoint {
    path: PathBuf,
    file: File,
    data: Mutex<CheckpointData>,
}

/// What loading the checkpoint found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointState {
    /// No file: a new store.
    Missing,
    /// A valid file.
    Valid,
    /// The file is damaged; recovery must not trust it.
    Damaged,
}

impl Checkpoint {
    /// Open or create `path`.
    pub fn open(path: &Path) -> Result<(Checkpoint, CheckpointState)> {
        let existed = path.exists();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        let mut buf = vec![0u8; CHECKPOINT_FILE_SIZE];
        let len = file
            .metadata()
            .map_err(|e| Error::io(format!("stat {}", path.display()), e))?
            .len() as usize;
        let (data, state) = if !existed || len == 0 {
            (CheckpointData::default(), CheckpointState::Missing)
        } else if len != CHECKPOINT_FILE_SIZE {
            tracing::warn!(path = %path.display(), len, "checkpoint has the wrong size; ignoring it");
            (CheckpointData::default(), CheckpointState::Damaged)
        } else {
            file.read_exact_at(&mut buf, 0)
                .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
            match CheckpointData::decode(&buf) {
                Some(d) => (d, CheckpointState::Valid),
                None => {
                    tracing::warn!(path = %path.display(), "checkpoint CRC mismatch; ignoring it");
                    (CheckpointData::default(), CheckpointState::Damaged)
                }
            }
        };
        if len != CHECKPOINT_FILE_SIZE {
            file.set_len(CHECKPOINT_FILE_SIZE as u64)
                .map_err(|e| Error::io(format!("sizing {}", path.display()), e))?;
        }
        Ok((
            Checkpoint {
                path: path.to_path_buf(),
                file,
                data: Mutex::new(data),
            },
            state,
        ))
    }

    /// Current values.
    pub fn data(&self) -> CheckpointData {
        *self.data.locked()
    }

    /// Change the values in memory (persisted by [`Checkpoint::flush`]).
    pub fn update(&self, f: impl FnOnce(&mut CheckpointData)) {
        f(&mut self.data.locked());
    }

    /// Write and sync the current values.
    pub fn flush(&self) -> Result<()> {
        let d = self.data();
        let bytes = d.encode();
        let hook = crate::io::hook_for(&self.path);
        if let Some(h) = &hook {
            h.before_sync(&self.path, 0, bytes.len())
                .map_err(|e| Error::io(format!("writing {}", self.path.display()), e))?;
        }
        self.file
            .write_all_at(&bytes, 0)
            .and_then(|_| self.file.sync_data())
            .map_err(|e| Error::io(format!("writing {}", self.path.display()), e))?;
        if let Some(h) = &hook {
            h.synced(&self.path, 0, &bytes);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("checkpoint");
        let (c, st) = Checkpoint::open(&p).unwrap();
        assert_eq!(st, CheckpointState::Missing);
        c.update(|d| {
            d.physic_msg_timestamp = 1_700_000_000_000;
            d.logics_msg_timestamp = 1_700_000_001_000;
            d.index_msg_timestamp = 5;
            d.logics_offset = 4096;
            d.physic_offset = 8192;
        });
        c.flush().unwrap();
        drop(c);
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(bytes.len(), 4096);
        assert_eq!(
            i64::from_be_bytes(bytes[0..8].try_into().unwrap()),
            1_700_000_000_000
        );
        assert_eq!(
            i64::from_be_bytes(bytes[8..16].try_into().unwrap()),
            1_700_000_001_000
        );
        let (c, st) = Checkpoint::open(&p).unwrap();
        assert_eq!(st, CheckpointState::Valid);
        assert_eq!(c.data().logics_offset, 4096);
        assert_eq!(c.data().physic_offset, 8192);
        assert_eq!(c.data().min_timestamp(), 1_700_000_000_000 - 3000);
        drop(c);
        let mut bad = bytes.clone();
        bad[3] ^= 1;
        std::fs::write(&p, &bad).unwrap();
        let (_, st) = Checkpoint::open(&p).unwrap();
        assert_eq!(st, CheckpointState::Damaged);
        // A RocketMQ checkpoint (timestamps only) is accepted.
        let mut rmq = vec![0u8; 4096];
        rmq[0..8].copy_from_slice(&7i64.to_be_bytes());
        std::fs::write(&p, &rmq).unwrap();
        let (c, st) = Checkpoint::open(&p).unwrap();
        assert_eq!(st, CheckpointState::Valid);
        assert_eq!(c.data().physic_msg_timestamp, 7);
    }
}
