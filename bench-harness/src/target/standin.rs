//! A stand-in target that copies each body into memory under one lock.
//!
//! It is NOT the engine and its figures say nothing about ferromq; it lets
//! the harness, its baselines and reports be built and tested before the
//! engine's API exists.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Mutex;

use crate::error::{BenchError, Result};
use crate::workload::{PutOutcome, PutRequest, Target, Workload};

/// Where the stand-in "stores": it only checks that the directory exists.
#[derive(Debug, Clone)]
pub struct StandInConfig {
    /// Store directory (unused beyond an existence check).
    pub store_dir: PathBuf,
}

/// Copies bodies into a 64 MiB ring in memory under a mutex.
pub struct StandInTarget {
    body: Vec<u8>,
    ring: Mutex<(Vec<u8>, usize)>,
}

impl StandInTarget {
    /// Name used in reports.
    pub const NAME: &'static str = "stand-in (in-memory, NOT the engine)";
}

impl Target for StandInTarget {
    type Config = StandInConfig;

    fn open(config: &StandInConfig, workload: &Workload) -> Result<Self> {
        if !config.store_dir.is_dir() {
            return Err(BenchError::new(format!(
                "{} is not a directory",
                config.store_dir.display()
            )));
        }
        let ring = (64usize << 20).max(workload.size_bytes);
        Ok(StandInTarget {
            body: workload.body(),
            ring: Mutex::new((vec![0; ring], 0)),
        })
    }

    fn put(&self, _request: PutRequest) -> Result<PutOutcome> {
        let mut guard = self
            .ring
            .lock()
            .map_err(|_| BenchError::new("stand-in lock poisoned"))?;
        let (ring, pos) = &mut *guard;
        if *pos + self.body.len() > ring.len() {
            *pos = 0;
        }
        ring[*pos..*pos + self.body.len()].copy_from_slice(&self.body);
        *pos += self.body.len();
        Ok(PutOutcome {
            status: Cow::Borrowed("PUT_OK"),
            stored_bytes: self.body.len() as u64,
        })
    }

    fn shutdown(&self) -> Result<()> {
        Ok(())
    }
}
