//! SQL92 property filters: what a pull pays per message read.
//!
//! One criterion group, `sql92`, over one stored record (1 KiB body, tag,
//! keys, a unique key and four user properties, as a client sends them):
//!
//! - `tag_baseline`: the tag subscription's check (a hash code comparison,
//!   from the consume queue unit: no record read).
//! - `match/<case>`: `Sql92Filter::matches_record` of a compiled expression:
//!   find the properties in the record, resolve the names the expression
//!   uses, evaluate.
//! - `compile`: compiling one expression (once per subscription change).
//!
//! Run: `cargo bench -p ferromq-server --bench sql92 -- --noplot`
// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]
use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use ferromq_engine::message::{encode_message, tags_code, Message};
use ferromq_server::filter::Sql92Filter;

const CASES: [(&str, &str); 5] = [
    ("eq_string", "region = 'east'"),
    ("between_number_as_string", "price BETWEEN 10 AND 500"),
    ("is_null", "coupon IS NULL"),
    (
        "in_list",
        "TAGS IN ('TagA', 'TagB', 'TagC', 'TagD', 'TagE', 'TagF')",
    ),
    (
        "four_conditions",
        "region = 'east' AND price > 100 AND (level IN ('gold', 'silver') OR coupon IS NOT NULL)",
    ),
];

fn record() -> Vec<u8> {
    let addr: SocketAddr = "127.0.0.1:10911".parse().unwrap();
    let m = Message::new("BenchTopic", vec![b'x'; 1024])
        .with_tags("TagA")
        .with_keys(["order-12345"])
        .with_property("UNIQ_KEY", "7F0000010001A2B3C4D5E6F708090A0B")
        .with_property("region", "east")
        .with_property("price", "250")
        .with_property("level", "gold")
        .with_property("channel", "web");
    let mut rec = Vec::new();
    encode_message(&m, &addr, &mut rec);
    rec
}

fn bench(c: &mut Criterion) {
    let rec = record();
    let mut g = c.benchmark_group("sql92");
    g.measurement_time(Duration::from_secs(2));
    g.warm_up_time(Duration::from_millis(500));
    let codes = vec![tags_code(Some("TagB")), tags_code(Some("TagA"))];
    let unit_code = tags_code(Some("TagA"));
    g.bench_function("tag_baseline", |b| {
        b.iter(|| black_box(&codes).contains(black_box(&unit_code)))
    });
    for (name, sql) in CASES {
        let f = Sql92Filter::compile(sql).expect("bench expression");
        assert!(f.matches_record(&rec), "{sql} should match");
        g.bench_function(format!("match/{name}"), |b| {
            b.iter(|| f.matches_record(black_box(&rec)))
        });
    }
    g.bench_function("compile", |b| {
        b.iter(|| Sql92Filter::compile(black_box(CASES[4].1)).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
