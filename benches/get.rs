//! Get: `MessageStore::get_message` of 32 messages by queue offset against
//! copying the same bytes out of a `Vec`.
//!
//! A store in a temp dir (`ASYNC_FLUSH`, 64 MiB commitlog files) is filled
//! with [`MESSAGES`] messages per body size (128 B, 1 KiB, 4 KiB; one topic per
//! size, queue 0) and the bench waits until all are dispatched, so every read
//! hits the page cache. Each iteration pulls the next 32 messages, walking the
//! queue and wrapping at its end. One criterion group, `get`, per size
//! (throughput: the bytes of the 32 records):
//!
//! - `get_message`: the pull as the store does it; the records come back as
//!   mapped slices, nothing is copied.
//! - `get_message_copy`: the same pull, then every record copied into one
//!   reused `Vec` (what a server does when it builds a response body).
//! - `vec_copy_baseline`: the same 32 records copied out of a `Vec` that holds
//!   the queue's records back to back, into a reused `Vec`.
//!
//! Disk use: 3 x 8192 records, under 40 MiB written, in one temp dir removed at
//! the end.
//!
//! Run: `cargo bench --bench get -- --noplot`
// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]
use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ferromq::{FlushDiskType, GetStatus, Message, MessageFilter, MessageStore, StoreConfig};

/// Messages stored per size.
const MESSAGES: u64 = 8192;
/// Messages per pull.
const BATCH: u32 = 32;
/// Body sizes measured.
const BODY_SIZES: [usize; 3] = [128, 1024, 4096];

fn bench_get(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cfg = StoreConfig::new(dir.path());
    cfg.flush_disk_type = FlushDiskType::AsyncFlush;
    cfg.mapped_file_size_commit_log = 64 * 1024 * 1024;
    cfg.message_index_enable = false;
    let store = MessageStore::open(cfg).expect("open store");

    let mut group = c.benchmark_group("get");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));

    for body_len in BODY_SIZES {
        let topic = format!("GetBench{body_len}");
        store.create_topic(&topic, 1).expect("create topic");
        for i in 0..MESSAGES {
            let body = vec![(i % 251) as u8; body_len];
            let msg = Message::new(topic.as_str(), body)
                .with_tags("TagA")
                .with_keys([format!("key-{i}")]);
            store.put_message(&msg).expect("put");
        }
        assert!(
            store.wait_for_messages(&topic, 0, MESSAGES - 1, Duration::from_secs(10)),
            "dispatch did not catch up"
        );

        // The baseline's source: every record of the queue, back to back, and where each starts.
        let mut all = Vec::new();
        let mut starts = Vec::with_capacity(MESSAGES as usize + 1);
        let mut offset = 0;
        while offset < MESSAGES {
            let got = store
                .get_message("bench", &topic, 0, offset, BATCH, &MessageFilter::All)
                .expect("get");
            assert_eq!(got.status, GetStatus::Found);
            for m in &got.messages {
                starts.push(all.len());
                all.extend_from_slice(m.bytes());
            }
            offset = got.next_begin_offset;
        }
        starts.push(all.len());
        let batch_bytes = starts[BATCH as usize] - starts[0];
        group.throughput(Throughput::Bytes(batch_bytes as u64));

        let next = |offset: &mut u64| {
            let o = *offset;
            *offset = (o + BATCH as u64) % MESSAGES;
            o
        };

        let mut offset = 0u64;
        group.bench_function(BenchmarkId::new("get_message", body_len), |b| {
            b.iter(|| {
                let got = store
                    .get_message(
                        "bench",
                        &topic,
                        0,
                        next(&mut offset),
                        BATCH,
                        &MessageFilter::All,
                    )
                    .expect("get");
                debug_assert_eq!(got.messages.len(), BATCH as usize);
                black_box(got)
            })
        });
        let mut out = Vec::with_capacity(batch_bytes * 2);
        let mut offset = 0u64;
        group.bench_function(BenchmarkId::new("get_message_copy", body_len), |b| {
            b.iter(|| {
                let got = store
                    .get_message(
                        "bench",
                        &topic,
                        0,
                        next(&mut offset),
                        BATCH,
                        &MessageFilter::All,
                    )
                    .expect("get");
                out.clear();
                for m in &got.messages {
                    out.extend_from_slice(m.bytes());
                }
                black_box(out.len())
            })
        });
        let mut offset = 0u64;
        group.bench_function(BenchmarkId::new("vec_copy_baseline", body_len), |b| {
            b.iter(|| {
                let o = next(&mut offset) as usize;
                let end = (o + BATCH as usize).min(MESSAGES as usize);
                out.clear();
                for i in o..end {
                    out.extend_from_slice(black_box(&all[starts[i]..starts[i + 1]]));
                }
                black_box(out.len())
            })
        });
    }
    group.finish();
    store.shutdown().expect("shutdown");
}

criterion_group!(benches, bench_get);
criterion_main!(benches);
