//! The io_uring write path of the commit backend: linked chunked writes with
//! the data sync linked behind them in the same submission.

use super::BackendCounters;
use io_uring::{opcode, squeue, types};
use std::sync::atomic::Ordering;

/// Most writes a commit puts in one io_uring submission (plus one sync).
pub(super) const RING_WRITES: usize = 31;
/// Bytes per io_uring write: a commit of `n` bytes is `ceil(n / CHUNK)` linked
/// writes, so the kernel can start on the first chunk while later ones queue.
const CHUNK: usize = 512 * 1024;

/// Tag of the sync's completion (writes are tagged with their index).
const SYNC_TAG: u64 = u64::MAX;

/// Write `data` at `offset` through the ring as linked writes of at most
/// [`CHUNK`] bytes, [`RING_WRITES`] per submission, with `sync` an
/// `fdatasync` linked behind the last write; wait for every completion. A
/// short write cancels the rest of its chain: the remainder (and the sync) go
/// in the next round. Every round writes at least one byte or fails, so the
/// loop ends.
pub(super) fn uring_write(
    ring: &mut io_uring::IoUring,
    file: &std::fs::File,
    data: &[u8],
    offset: u64,
    fixed: Option<u16>,
    sync: bool,
    counters: &BackendCounters,
) -> std::io::Result<()> {
    use std::os::unix::io::AsRawFd;
    let fd = types::Fd(file.as_raw_fd());
    let mut done = 0usize;
    loop {
        let left = data.len() - done;
        let n = left.div_ceil(CHUNK).min(RING_WRITES);
        let with_sync = sync && left <= n * CHUNK;
        let round = Round {
            fd,
            data,
            done,
            offset,
            n,
        };
        let lens = push_writes(ring, &round, fixed, with_sync)?;
        if with_sync {
            push_sync(ring, fd)?;
        }
        let total = n + usize::from(with_sync);
        counters.submissions.fetch_add(1, Ordering::Relaxed);
        ring.submit_and_wait(total)?;
        let (res, sync_res) = reap(ring, total)?;
        let (wrote, broken) = count_written(&res[..n], &lens[..n], counters)?;
        counters.bytes.fetch_add(wrote as u64, Ordering::Relaxed);
        done += wrote;
        match sync_res {
            Some(r) if r < 0 && r != -libc::ECANCELED => {
                return Err(std::io::Error::from_raw_os_error(-r));
            }
            Some(r) if r >= 0 && !broken => {
                counters.syncs.fetch_add(1, Ordering::Relaxed);
                debug_assert_eq!(done, data.len());
                return Ok(());
            }
            _ => {}
        }
        if !sync && done == data.len() {
            return Ok(());
        }
    }
}

/// One submission round of [`uring_write`]: `n` chunks of `data` from byte
/// `done` on, written at file offset `offset + done`.
struct Round<'a> {
    fd: types::Fd,
    data: &'a [u8],
    done: usize,
    offset: u64,
    n: usize,
}

/// Queue the round's `n` chunk writes, each linked to the next (the last one
/// too when a sync follows); return each chunk's length.
fn push_writes(
    ring: &mut io_uring::IoUring,
    round: &Round<'_>,
    fixed: Option<u16>,
    with_sync: bool,
) -> std::io::Result<[usize; RING_WRITES]> {
    let Round {
        fd,
        data,
        done,
        offset,
        n,
    } = *round;
    let mut lens = [0usize; RING_WRITES];
    for (i, len) in lens.iter_mut().enumerate().take(n) {
        let start = done + i * CHUNK;
        *len = CHUNK.min(data.len() - start);
        let ptr = data[start..].as_ptr();
        let entry = match fixed {
            Some(idx) => opcode::WriteFixed::new(fd, ptr, *len as u32, idx)
                .offset(offset + start as u64)
                .build(),
            None => opcode::Write::new(fd, ptr, *len as u32)
                .offset(offset + start as u64)
                .build(),
        };
        let link = i + 1 < n || with_sync;
        let entry = if link {
            entry.flags(squeue::Flags::IO_LINK)
        } else {
            entry
        };
        // SAFETY: the entry points into `data` and at the file, both borrowed
        // by the caller `uring_write` for its whole run, which reaps every
        // completion of this submission before returning or going round
        // again; so the memory and the descriptor outlive the kernel's use of
        // them. A fixed index names a registered buffer that `data` lies
        // inside (the caller's pool buffer).
        #[allow(unsafe_code)]
        unsafe {
            ring.submission()
                .push(&entry.user_data(i as u64))
                .map_err(|_| std::io::Error::other("io_uring submission queue full"))?;
        }
    }
    Ok(lens)
}

/// Queue an `fdatasync` of `fd`, linked behind the writes queued before it.
fn push_sync(ring: &mut io_uring::IoUring, fd: types::Fd) -> std::io::Result<()> {
    let entry = opcode::Fsync::new(fd)
        .flags(types::FsyncFlags::DATASYNC)
        .build()
        .user_data(SYNC_TAG);
    // SAFETY: a sync holds no memory of ours; the file outlives it as above.
    #[allow(unsafe_code)]
    unsafe {
        ring.submission()
            .push(&entry)
            .map_err(|_| std::io::Error::other("io_uring submission queue full"))?;
    }
    Ok(())
}

/// Reap all `total` completions of a submission before looking at any
/// result: each write's result by index, and the sync's if there was one.
fn reap(
    ring: &mut io_uring::IoUring,
    total: usize,
) -> std::io::Result<([i32; RING_WRITES], Option<i32>)> {
    let mut res = [0i32; RING_WRITES];
    let mut sync_res: Option<i32> = None;
    let mut reaped = 0;
    while reaped < total {
        let got: Vec<(u64, i32)> = ring
            .completion()
            .map(|c| (c.user_data(), c.result()))
            .collect();
        if got.is_empty() {
            ring.submit_and_wait(total - reaped)?;
            continue;
        }
        for (tag, r) in got {
            reaped += 1;
            if tag == SYNC_TAG {
                sync_res = Some(r);
            } else if let Some(slot) = res.get_mut(tag as usize) {
                *slot = r;
            }
        }
    }
    Ok((res, sync_res))
}

/// Writes complete in order along the chain: count full writes, then the
/// first short or failed one ends this round. Returns the bytes written and
/// whether the chain broke (a short write).
fn count_written(
    res: &[i32],
    lens: &[usize],
    counters: &BackendCounters,
) -> std::io::Result<(usize, bool)> {
    let mut wrote = 0usize;
    let mut broken = false;
    for (&r, &len) in res.iter().zip(lens) {
        if r < 0 {
            if r == -libc::ECANCELED && broken {
                continue;
            }
            return Err(std::io::Error::from_raw_os_error(-r));
        }
        counters.writes.fetch_add(1, Ordering::Relaxed);
        wrote += r as usize;
        if (r as usize) < len {
            if r == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::WriteZero,
                    "io_uring wrote nothing",
                ));
            }
            broken = true;
        }
        if broken {
            // Later links were cancelled (or, if not, wrote bytes we will
            // simply write again at the same offsets).
            break;
        }
    }
    Ok((wrote, broken))
}
