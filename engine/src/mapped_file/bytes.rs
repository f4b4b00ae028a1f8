//! A range of a mapped file that keeps the mapping alive while it is read.

use super::MappedFile;
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

/// A range of a mapped file, kept mapped while this value lives.
#[derive(Clone)]
pub struct MappedBytes {
    pub(super) file: Arc<MappedFile>,
    pub(super) pos: usize,
    pub(super) len: usize,
}

impl MappedBytes {
    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        // The range was checked to be written when this value was made, and the
        // write position never moves back while the file is shared.
        self.file.bytes(self.pos, self.len).unwrap_or(&[])
    }

    /// The file the bytes lie in.
    pub fn path(&self) -> &Path {
        &self.file.path
    }

    /// Position of the first byte inside that file.
    pub fn position(&self) -> u64 {
        self.pos as u64
    }
}

impl Deref for MappedBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for MappedBytes {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl std::fmt::Debug for MappedBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "MappedBytes({} bytes at {} of {:?})",
            self.len, self.pos, self.file.path
        )
    }
}
