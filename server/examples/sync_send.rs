//! Producers doing synchronous SEND_MESSAGE_V2 of fixed-size bodies against a
//! running broker on loopback, each on its own connection and thread, one
//! request in flight each; prints msgs/s, MB/s and latency percentiles.
//!
//! `cargo run --release -p ferromq-server --example sync_send -- PORT [COUNT] [BYTES] [PRODUCERS]`
//! (COUNT = messages per producer, default 20 000; BYTES default 1024;
//! PRODUCERS default 1; every producer stops after 60 s whatever COUNT says).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use ferromq_server::remoting::codec::{decode_frame, encode};
use ferromq_server::remoting::{request, response, RemotingCommand};

const TIME_LIMIT: Duration = Duration::from_secs(60);

fn producer(id: usize, port: u16, count: usize, size: usize) -> Result<Vec<Duration>, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let body = vec![b'x'; size];
    let deadline = Instant::now() + TIME_LIMIT;
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
            .with_ext("e", ((i + id) % 4) as i32)
            .with_ext("f", 0)
            .with_ext("g", 0)
            .with_ext("h", 0)
            .with_ext("i", "WAIT\u{1}true\u{2}TAGS\u{1}bench")
            .with_body(body.clone());
        req.opaque = i as i32;
        let t = Instant::now();
        let frame = encode(&req).map_err(|e| e.to_string())?;
        s.write_all(&frame).map_err(|e| format!("write: {e}"))?;
        let mut len = [0u8; 4];
        s.read_exact(&mut len).map_err(|e| format!("read: {e}"))?;
        let n = usize::try_from(i32::from_be_bytes(len)).map_err(|_| "bad length")?;
        let mut frame = vec![0u8; n];
        s.read_exact(&mut frame).map_err(|e| format!("read: {e}"))?;
        let resp = decode_frame(&frame).map_err(|e| e.to_string())?;
        if resp.code != response::SUCCESS {
            return Err(format!("send failed: {} {:?}", resp.code, resp.remark));
        }
        lat.push(t.elapsed());
    }
    Ok(lat)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .expect("usage: sync_send PORT [COUNT] [BYTES] [PRODUCERS]");
    let count: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let size: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(1024);
    let producers: usize = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(1).max(1);
    let start = Instant::now();
    let handles: Vec<_> = (0..producers)
        .map(|id| std::thread::spawn(move || producer(id, port, count, size)))
        .collect();
    let mut lat = Vec::new();
    for h in handles {
        match h.join() {
            Ok(Ok(l)) => lat.extend(l),
            Ok(Err(e)) => panic!("producer failed: {e}"),
            Err(_) => panic!("producer thread panicked"),
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let sent = lat.len();
    assert!(sent > 0, "nothing sent");
    lat.sort();
    let p = |q: f64| lat[((lat.len() as f64 - 1.0) * q) as usize];
    println!(
        "{producers} producer(s), {sent} sync sends of {size} B in {secs:.2} s: {:.0} msgs/s, {:.1} MB/s, p50 {:?}, p99 {:?}, max {:?}",
        sent as f64 / secs,
        sent as f64 * size as f64 / secs / 1e6,
        p(0.5),
        p(0.99),
        p(1.0)
    );
}
