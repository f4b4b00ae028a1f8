//! Consume queue: `ConsumeQueue::get(offset)` random lookups against reading
//! 20 bytes at `offset * 20` from a plain `Vec<u8>`.
//!
//! A queue in a temp dir holds [`UNITS`] units (20 MB) in files of RocketMQ's
//! default 6 000 000 bytes (4 files), so a lookup first finds its file. Offsets
//! come from a fixed pseudo-random sequence of 4096 entries, one lookup per
//! iteration. One criterion group, `consume_queue` (throughput: lookups):
//!
//! - `cq_get`: `ConsumeQueue::get`, which finds the mapped file, bounds-checks
//!   the 20 bytes and decodes them into a `CqUnit`.
//! - `vec_read20_baseline`: copying the 20 bytes at `offset * 20` out of a
//!   `Vec<u8>` holding the same units: the floor.
//! - `vec_decode_baseline`: the same, decoded with `CqUnit::decode`, so the
//!   difference to `cq_get` is the file lookup alone.
//!
//! Run: `cargo bench --bench consume_queue -- --noplot`
// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]
use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ferromq::consume_queue::{ConsumeQueue, CqUnit, CQ_UNIT_SIZE};

/// Units stored.
const UNITS: u64 = 1_000_000;
/// RocketMQ's default consume-queue file size (300 000 units).
const CQ_FILE_SIZE_BYTES: u64 = 6_000_000;

/// xorshift64*: a fixed, dependency-free offset sequence.
fn offsets(n: usize, bound: u64) -> Vec<u64> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..n)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            x.wrapping_mul(0x2545_F491_4F6C_DD1D) % bound
        })
        .collect()
}

fn unit(i: u64) -> CqUnit {
    CqUnit {
        commit_log_offset: i * 1_200,
        size: 1_150 + (i % 50) as u32,
        tags_code: (i % 7) as i64,
    }
}

fn bench_consume_queue(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let cq = ConsumeQueue::load(
        &dir.path().join("BenchTopic/0"),
        "BenchTopic",
        0,
        CQ_FILE_SIZE_BYTES,
    )
    .expect("load consume queue");
    let mut plain = Vec::with_capacity(UNITS as usize * CQ_UNIT_SIZE);
    for i in 0..UNITS {
        let u = unit(i);
        cq.put(u, i).expect("put unit");
        plain.extend_from_slice(&(u.commit_log_offset as i64).to_be_bytes());
        plain.extend_from_slice(&(u.size as i32).to_be_bytes());
        plain.extend_from_slice(&u.tags_code.to_be_bytes());
    }
    assert_eq!(cq.max_offset(), UNITS);
    assert_eq!(cq.get(UNITS - 1), Some(unit(UNITS - 1)));

    let seq = offsets(4096, UNITS);
    let mut group = c.benchmark_group("consume_queue");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(1));

    let mut i = 0usize;
    group.bench_function("cq_get", |b| {
        b.iter(|| {
            i = (i + 1) & 4095;
            cq.get(black_box(seq[i])).expect("unit")
        })
    });
    let mut i = 0usize;
    group.bench_function("vec_read20_baseline", |b| {
        b.iter(|| {
            i = (i + 1) & 4095;
            let at = black_box(seq[i]) as usize * CQ_UNIT_SIZE;
            let mut unit = [0u8; CQ_UNIT_SIZE];
            unit.copy_from_slice(&plain[at..at + CQ_UNIT_SIZE]);
            black_box(unit)
        })
    });
    let mut i = 0usize;
    group.bench_function("vec_decode_baseline", |b| {
        b.iter(|| {
            i = (i + 1) & 4095;
            let at = black_box(seq[i]) as usize * CQ_UNIT_SIZE;
            CqUnit::decode(&plain[at..at + CQ_UNIT_SIZE]).expect("unit")
        })
    });
    group.finish();
}

criterion_group!(benches, bench_consume_queue);
criterion_main!(benches);
