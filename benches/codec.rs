//! Codec: commitlog record encode and decode against a plain copy of the same bytes.
//!
//! One criterion group, `codec`, per record of a 128 B, 1 KiB or 4 KiB body
//! with tags, two keys and three user properties (throughput: record length):
//!
//! - `encode`: `ferromq_engine::message::encode_message` into a reused `Vec`
//!   (the store does this outside its put lock, so it is producer-side cost).
//! - `decode`: `ferromq_engine::message::decode_record` of the encoded record
//!   into a `MessageExt` (verifies the body CRC, copies body, topic, properties).
//! - `copy_baseline`: `Vec::clear` + `extend_from_slice` of the record's bytes
//!   into a reused `Vec`: the floor for any encoder that writes every byte once.
//! - `crc32_body`: `crc32fast` over the body alone, the CRC's share of both
//!   encode and decode (RocketMQ stores it masked; the mask is free).
//!
//! Run: `cargo bench --bench codec -- --noplot`
// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ferromq::message::{body_crc, decode_record, encode_message};
use ferromq::Message;

/// Body sizes measured.
const BODY_SIZES: [usize; 3] = [128, 1024, 4096];

fn message(body_len: usize) -> Message {
    let body: Vec<u8> = (0..body_len).map(|i| (i * 31 % 251) as u8).collect();
    Message::new("BenchTopic", body)
        .with_queue_id(3)
        .with_tags("TagA")
        .with_keys(["order-123456", "user-42"])
        .with_property("traceId", "0af1c2d3e4f5a6b7")
        .with_property("region", "eu-west-1")
        .with_property("attempt", "1")
}

fn bench_codec(c: &mut Criterion) {
    let store_host = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7)), 10911);
    let mut group = c.benchmark_group("codec");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));

    for body_len in BODY_SIZES {
        let msg = message(body_len);
        let mut record = Vec::new();
        let record_len = encode_message(&msg, &store_host, &mut record);
        assert_eq!(
            decode_record(&record).expect("round trip").body,
            msg.body,
            "the encoded record must decode"
        );
        group.throughput(Throughput::Bytes(record_len as u64));

        let mut out = Vec::with_capacity(record_len);
        group.bench_with_input(BenchmarkId::new("encode", body_len), &msg, |b, msg| {
            b.iter(|| encode_message(black_box(msg), &store_host, &mut out))
        });
        group.bench_with_input(BenchmarkId::new("decode", body_len), &record, |b, rec| {
            b.iter(|| decode_record(black_box(rec)).expect("decode"))
        });
        let mut copy = Vec::with_capacity(record_len);
        group.bench_with_input(
            BenchmarkId::new("copy_baseline", body_len),
            &record,
            |b, rec| {
                b.iter(|| {
                    copy.clear();
                    copy.extend_from_slice(black_box(rec));
                    black_box(copy.len())
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("crc32_body", body_len),
            &msg.body,
            |b, body| b.iter(|| body_crc(black_box(body))),
        );
    }
    group.finish();
}

criterion_group!(benches, bench_codec);
criterion_main!(benches);
