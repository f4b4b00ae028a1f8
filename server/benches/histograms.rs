//! The record paths of the broker's histograms (`broker::histograms`), what
//! a send and a request pay with metrics on, next to the per-topic counters
//! every send already pays (`BrokerStats::on_put`).
//!
//! One criterion group, `histograms`:
//!
//! - `on_put_baseline`: `BrokerStats::on_put` (always on): 4 counter adds
//!   under a map's read lock.
//! - `record_send`: `BrokerHistograms::record_send` of a send with typical
//!   properties to one of 100 topics.
//! - `record_rpc`: `BrokerHistograms::record_rpc` of a SEND_MESSAGE_V2
//!   answered SUCCESS.
//! - `record_send_4_threads_one_topic` / `record_rpc_4_threads`: the same
//!   with 4 threads recording into the same series at once (time per
//!   record per thread; the histogram's own lock is shared).
//!
//! Run: `cargo bench -p ferromq-server --bench histograms -- --noplot`
// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use ferromq_server::broker::histograms::BrokerHistograms;
use ferromq_server::broker::BrokerStats;

const PROPS: &str =
    "UNIQ_KEY\u{1}0A0B0C0D0E0F10111213\u{2}WAIT\u{1}true\u{2}TAGS\u{1}tagA\u{2}KEYS\u{1}order-42";
const THREADS: u64 = 4;

fn topics() -> Vec<String> {
    (0..100).map(|i| format!("BenchTopic-{i}")).collect()
}

/// `f(iters)` on [`THREADS`] threads at once; the time of the slowest.
fn on_threads(iters: u64, f: impl Fn(u64) + Sync) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| f(iters));
        }
    });
    start.elapsed()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("histograms");
    let topics = topics();
    let stats = BrokerStats::default();
    let h = BrokerHistograms::new("BenchCluster", "broker-a");
    for t in &topics {
        stats.on_put("BenchCluster", t, 1, 1200);
        h.record_send(t, PROPS, 1200, 1);
    }
    let mut i = 0usize;
    g.bench_function("on_put_baseline", |b| {
        b.iter(|| {
            i = (i + 1) % topics.len();
            stats.on_put("BenchCluster", black_box(&topics[i]), 1, black_box(1200));
        })
    });
    g.bench_function("record_send", |b| {
        b.iter(|| {
            i = (i + 1) % topics.len();
            h.record_send(black_box(&topics[i]), black_box(PROPS), black_box(1200), 1);
        })
    });
    g.bench_function("record_rpc", |b| {
        b.iter(|| {
            h.record_rpc(
                black_box(310),
                black_box(0),
                false,
                black_box(Duration::from_micros(800)),
            )
        })
    });
    g.bench_function("record_send_4_threads_one_topic", |b| {
        b.iter_custom(|iters| {
            on_threads(iters, |n| {
                for _ in 0..n {
                    h.record_send(black_box(&topics[0]), black_box(PROPS), 1200, 1);
                }
            })
        })
    });
    g.bench_function("record_rpc_4_threads", |b| {
        b.iter_custom(|iters| {
            on_threads(iters, |n| {
                for _ in 0..n {
                    h.record_rpc(black_box(310), 0, false, Duration::from_micros(800));
                }
            })
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
