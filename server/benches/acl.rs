//! ACL: the broker's per-request check against the HMAC it cannot avoid.
//!
//! One criterion group, `acl`, per signed SEND_MESSAGE_V2 of a 128 B, 1 KiB or
//! 4 KiB body (throughput: body bytes):
//!
//! - `check`: what the broker runs per request with `aclEnable=true`
//!   (`acl::parse_request` then `AclRules::check`): read the access key,
//!   signature and resources, then verify the signature and the permissions.
//! - `hmac_baseline`: `acl::sign::verify_parts` over the same field values and
//!   body alone: the signature check every implementation pays. `check` minus
//!   this is ferromq's own overhead.
//!
//! Run: `cargo bench -p ferromq-server --bench acl -- --noplot`
// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]
use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ferromq_server::acl::{parse_request, sign, AclConfig, AclFile, AclRules, Credentials};
use ferromq_server::remoting::{request, RemotingCommand};

const BODY_SIZES: [usize; 3] = [128, 1024, 4096];

const RULES: &str = "\
accounts:
  - accessKey: benchuser
    secretKey: benchsecret
    defaultTopicPerm: DENY
    defaultGroupPerm: SUB
    topicPerms:
      - BenchTopic=PUB|SUB
";

fn rules() -> AclRules {
    let path = std::path::Path::new("plain_acl.yml");
    let file = AclFile::parse(RULES, path).expect("bench rules");
    AclRules::new(AclConfig::merge([(path.to_path_buf(), file)]))
}

/// A SEND_MESSAGE_V2 as a client sends it (short field names), signed.
fn send(body_len: usize) -> RemotingCommand {
    let mut cmd = RemotingCommand::request(request::SEND_MESSAGE_V2)
        .with_ext("a", "bench-producer")
        .with_ext("b", "BenchTopic")
        .with_ext("c", "TBW102")
        .with_ext("d", 4)
        .with_ext("e", 1)
        .with_ext("f", 0)
        .with_ext("g", 1_700_000_000_000i64)
        .with_ext("h", 0)
        .with_ext("i", "UNIQ_KEY\u{1}0A0B0C0D0E0F\u{2}WAIT\u{1}true\u{2}")
        .with_ext("j", 0)
        .with_ext("k", false)
        .with_body((0..body_len).map(|i| (i * 31 % 251) as u8).collect());
    Credentials::new("benchuser", "benchsecret")
        .expect("credentials")
        .sign(&mut cmd);
    cmd
}

fn bench_acl(c: &mut Criterion) {
    let rules = rules();
    let peer: SocketAddr = "127.0.0.1:40000".parse().expect("addr");
    let mut g = c.benchmark_group("acl");
    g.measurement_time(Duration::from_secs(3));
    g.warm_up_time(Duration::from_millis(500));
    for size in BODY_SIZES {
        let cmd = send(size);
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("check", size), &cmd, |b, cmd| {
            b.iter(|| {
                let parsed = parse_request(black_box(cmd), Some(peer)).expect("parses");
                assert!(rules.check(&parsed.as_request()).is_ok());
            })
        });
        let parsed = parse_request(&cmd, Some(peer)).expect("parses");
        let signature = parsed.signature.clone().expect("signed");
        g.bench_with_input(
            BenchmarkId::new("hmac_baseline", size),
            &(parsed.content.clone(), cmd.body.clone()),
            |b, (content, body)| {
                b.iter(|| {
                    assert!(sign::verify_parts(
                        &[black_box(content), black_box(body)],
                        "benchsecret",
                        &signature
                    ))
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, bench_acl);
criterion_main!(benches);
