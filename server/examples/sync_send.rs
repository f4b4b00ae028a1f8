//! One producer, synchronous SEND_MESSAGE_V2 of fixed-size bodies against a
//! running broker on loopback; prints msgs/s.
//!
//! `cargo run --release -p ferromq-server --example sync_send -- PORT [COUNT] [BYTES]`
//! (COUNT default 20 000, BYTES default 1024; stops after 60 s whatever COUNT says).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use ferromq_server::remoting::codec::{decode_frame, encode};
use ferromq_server::remoting::{request, response, RemotingCommand};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .expect("usage: sync_send PORT [COUNT] [BYTES]");
    let count: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let size: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(1024);
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let body = vec![b'x'; size];
    let deadline = Instant::now() + Duration::from_secs(60);
    let start = Instant::now();
    let mut sent = 0usize;
    let mut lat = Vec::with_capacity(count);
    for i in 0..count {
        if Instant::now() >= deadline {
            break;
        }
        let mut req = RemotingCommand::request(request::SEND_MESSAGE_V2)
            .with_ext("a", "bench")
            .with_ext("b", "BenchTopic")
            .with_ext("c", "TBW102")
            .with_ext("d", 4)
            .with_ext("e", (i % 4) as i32)
            .with_ext("f", 0)
            .with_ext("g", 0)
            .with_ext("h", 0)
            .with_ext("i", "WAIT\u{1}true\u{2}TAGS\u{1}bench")
            .with_body(body.clone());
        req.opaque = i as i32;
        let t = Instant::now();
        s.write_all(&encode(&req).expect("encode")).expect("write");
        let mut len = [0u8; 4];
        s.read_exact(&mut len).expect("read");
        let mut frame = vec![0u8; i32::from_be_bytes(len) as usize];
        s.read_exact(&mut frame).expect("read");
        let resp = decode_frame(&frame).expect("decode");
        assert_eq!(resp.code, response::SUCCESS, "{:?}", resp.remark);
        lat.push(t.elapsed());
        sent += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    lat.sort();
    let p = |q: f64| lat[((lat.len() as f64 - 1.0) * q) as usize];
    println!(
        "{sent} sync sends of {size} B in {secs:.2} s: {:.0} msgs/s, p50 {:?}, p99 {:?}, max {:?}",
        sent as f64 / secs,
        p(0.5),
        p(0.99),
        p(1.0)
    );
}
