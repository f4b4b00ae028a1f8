//! The commit backend's fallback when io_uring cannot be had: `pwrite` then
//! `fdatasync`.

use super::BackendCounters;
use std::sync::atomic::Ordering;

/// Write all of `data` at `offset` of `file` with `pwrite`; with `sync`, then
/// `fdatasync` it. Counts one submission, the write and the sync.
pub(super) fn pwrite(
    file: &std::fs::File,
    data: &[u8],
    offset: u64,
    sync: bool,
    c: &BackendCounters,
) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    c.submissions.fetch_add(1, Ordering::Relaxed);
    let mut r = Ok(());
    if !data.is_empty() {
        c.writes.fetch_add(1, Ordering::Relaxed);
        r = file.write_all_at(data, offset);
        if r.is_ok() {
            c.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
        }
    }
    if r.is_ok() && sync {
        c.syncs.fetch_add(1, Ordering::Relaxed);
        r = file.sync_data();
    }
    r
}
