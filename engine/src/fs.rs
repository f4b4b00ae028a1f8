//! File-system helpers under every durable file of the store: a directory
//! fsync, and replacing a small file atomically and durably.

use crate::error::{Error, Result};
use std::fs::File;
use std::io::Write;
use std::path::Path;

/// fsync a directory so that a created, renamed or removed entry is durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("fsync of directory {}", dir.display()), e))
}

/// Replace `path` with `data` durably: `.tmp` + fsync, old content to `.bak`, rename, dir fsync.
pub(crate) fn write_atomically(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    let bak = path.with_extension("json.bak");
    let mut f =
        File::create(&tmp).map_err(|e| Error::io(format!("creating {}", tmp.display()), e))?;
    f.write_all(data)
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
    if path.exists() {
        let _ = std::fs::copy(path, &bak);
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        Error::io(
            format!("renaming {} to {}", tmp.display(), path.display()),
            e,
        )
    })?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    if let Some(h) = crate::io::hook_for(path) {
        h.replaced(path, data);
    }
    Ok(())
}
