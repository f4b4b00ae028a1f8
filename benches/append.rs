//! Append: `MessageStore::put_message` against raw memcpy into a mapped file.
//!
//! One criterion group, `append`, with three functions per record size
//! (128 B, 1 KiB and 4 KiB bodies, plus tags, keys and the fixed header; the
//! throughput is the whole record length):
//!
//! - `put_message`: one producer thread, `ASYNC_FLUSH`, 64 MiB commitlog files,
//!   the same `Message` put again and again into topic `BenchTopic`, queue 0.
//!   The store's flush and dispatch threads run as they would in production.
//! - `memcpy_mmap_fresh`: the baseline. The same record bytes copied
//!   into a `memmap2::MmapMut` over a fresh 64 MiB file made with `set_len`,
//!   so every page is faulted in the first time it is written, as the store's
//!   are. A new file is made whenever as many bytes as one store instance
//!   takes have been copied (see below).
//! - `memcpy_mmap_warm`: the same copy into one mapping that wraps to its
//!   start when full, so after the first pass every page is already present:
//!   the ceiling a store that warms its next file could approach.
//!
//! The ratio `put_message / memcpy_mmap_fresh` is what issue 3's
//! `ratio_to_baseline` measures.
//!
//! # Disk use is bounded
//!
//! Criterion picks iteration counts from the measured speed, so a sample can
//! ask for millions of puts. `put_message` and `memcpy_mmap_fresh` therefore
//! run a sample in chunks of at most [`CHUNK_BYTES`] (two commitlog files, so
//! a file roll is included): each chunk gets a fresh store (or file) in a new
//! temp dir, and only the puts are timed; opening, shutting down and deleting
//! the dir are not. At most one such dir exists at a time, holding at most
//! three 64 MiB commitlog files (two written, one pre-allocated) plus the
//! consume queue, i.e. under 200 MiB of disk.
//!
//! Run: `cargo bench --bench append -- --noplot`
// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]
use std::fs::OpenOptions;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ferromq::message::encode_message;
use ferromq::{FlushDiskType, Message, MessageStore, StoreConfig};
use memmap2::MmapMut;

/// Commitlog (and baseline) file size.
const FILE_SIZE_BYTES: u64 = 64 * 1024 * 1024;
/// Bytes written into one store (or one fresh baseline file) before it is replaced.
const CHUNK_BYTES: u64 = 2 * FILE_SIZE_BYTES;
/// Body sizes measured.
const BODY_SIZES: [usize; 3] = [128, 1024, 4096];

fn message(body_len: usize) -> Message {
    Message::new("BenchTopic", vec![0x5a; body_len])
        .with_tags("TagA")
        .with_keys(["order-123456", "user-42"])
}

fn store_config(dir: &std::path::Path) -> StoreConfig {
    let mut cfg = StoreConfig::new(dir);
    cfg.flush_disk_type = FlushDiskType::AsyncFlush;
    cfg.mapped_file_size_commit_log = FILE_SIZE_BYTES;
    cfg.message_index_enable = false;
    cfg
}

/// Messages that fit in one chunk.
fn per_chunk(record_len: usize) -> u64 {
    CHUNK_BYTES / record_len as u64
}

/// Time `iters` puts, each chunk of them into a fresh store.
fn time_put_message(msg: &Message, record_len: usize, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(per_chunk(record_len));
        let dir = tempfile::tempdir().expect("temp dir");
        let store = MessageStore::open(store_config(dir.path())).expect("open store");
        // Creating the topic persists (and fsyncs) config/topics.json: keep it out of the timing.
        store.create_topic(&msg.topic, 1).expect("create topic");
        let start = Instant::now();
        for _ in 0..n {
            black_box(store.put_message(black_box(msg)).expect("put"));
        }
        total += start.elapsed();
        store.shutdown().expect("shutdown");
        drop(store);
        drop(dir);
        left -= n;
    }
    total
}

/// A `len`-byte file `name` in `dir`, made with `set_len` (sparse), mapped.
///
/// memmap2 only maps files in `unsafe` (another process could truncate the
/// file under the map); this is the one such site in the benches.
#[allow(unsafe_code)]
fn fresh_mapping(dir: &std::path::Path, name: &str, len: u64) -> MmapMut {
    let path = dir.join(name);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .expect("create baseline file");
    file.set_len(len).expect("set_len");
    // SAFETY: the file lives in a temp dir private to this process and is
    // neither truncated nor written through another handle while mapped.
    unsafe { MmapMut::map_mut(&file) }.expect("map baseline file")
}

/// Copy `record` into `map` at `*pos`, wrapping to the start when it does not fit.
fn copy_wrapping(map: &mut [u8], pos: &mut usize, record: &[u8]) {
    if *pos + record.len() > map.len() {
        *pos = 0;
    }
    map[*pos..*pos + record.len()].copy_from_slice(record);
    *pos += record.len();
}

/// Time `iters` copies, each chunk of them into a fresh file (two files' worth per chunk).
fn time_memcpy_fresh(record: &[u8], iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(per_chunk(record.len()));
        let dir = tempfile::tempdir().expect("temp dir");
        // Two files per chunk, like the two commitlog files a store chunk fills.
        let mut maps = [
            fresh_mapping(dir.path(), "baseline-0", FILE_SIZE_BYTES),
            fresh_mapping(dir.path(), "baseline-1", FILE_SIZE_BYTES),
        ];
        let start = Instant::now();
        let mut which = 0;
        let mut pos = 0usize;
        for _ in 0..n {
            if pos + record.len() > maps[which].len() {
                which = (which + 1) % maps.len();
                pos = 0;
            }
            copy_wrapping(&mut maps[which], &mut pos, black_box(record));
        }
        black_box(&maps);
        total += start.elapsed();
        drop(maps);
        drop(dir);
        left -= n;
    }
    total
}

fn bench_append(c: &mut Criterion) {
    let store_host = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 10911);
    let mut group = c.benchmark_group("append");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));

    // One warm mapping shared by the sizes: its pages are touched once up front.
    let warm_dir = tempfile::tempdir().expect("temp dir");
    let mut warm = fresh_mapping(warm_dir.path(), "warm", FILE_SIZE_BYTES);
    warm.fill(0);

    for body_len in BODY_SIZES {
        let msg = message(body_len);
        let mut record = Vec::new();
        let record_len = encode_message(&msg, &store_host, &mut record);
        group.throughput(Throughput::Bytes(record_len as u64));

        group.bench_with_input(BenchmarkId::new("put_message", body_len), &msg, |b, msg| {
            b.iter_custom(|iters| time_put_message(msg, record_len, iters));
        });
        group.bench_with_input(
            BenchmarkId::new("memcpy_mmap_fresh", body_len),
            &record,
            |b, record| b.iter_custom(|iters| time_memcpy_fresh(record, iters)),
        );
        let mut pos = 0usize;
        group.bench_with_input(
            BenchmarkId::new("memcpy_mmap_warm", body_len),
            &record,
            |b, record| b.iter(|| copy_wrapping(&mut warm, &mut pos, black_box(record))),
        );
    }
    group.finish();
}

criterion_group!(benches, bench_append);
criterion_main!(benches);
