//! `ferromq-bench broker --transactional`: plain sends against transactional
//! sends, same client, same broker, same run.
//!
//! Each producer is one connection sending synchronously. A plain message is
//! one SEND_MESSAGE_V2; a transactional one is the producer's side of
//! `sendMessageInTransaction`: a half message (sysFlag PREPARED, `TRAN_MSG`,
//! `PGROUP`), then, on its answer, END_TRANSACTION commit sent oneway, as the
//! Java and C++ clients do. The figure is messages acknowledged per second
//! (half-message acknowledgements for the transactional run); latency is send
//! to acknowledgement.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferromq_engine::message::{decode_offset_msg_id, keys};
use ferromq_engine::MessageProperties;
use ferromq_server::remoting::codec::{encode, read_frame, DEFAULT_MAX_FRAME_BYTES};
use ferromq_server::remoting::{request, response, RemotingCommand};
use hdrhistogram::Histogram;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::error::{BenchError, Result};
use crate::results::LatencySummary;
use crate::workload::Workload;

/// Producer group of the transactional run.
pub const TXN_GROUP: &str = "ferromq_bench_txn";

/// Figures of one mode.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ModeFigures {
    /// Messages acknowledged.
    pub messages: u64,
    /// Measured seconds.
    pub seconds: f64,
    /// Messages per second.
    pub msgs_per_sec: f64,
    /// Send -> acknowledgement latency, µs.
    pub latency_us: LatencySummary,
    /// Failed requests.
    pub errors: u64,
    /// The first failure.
    pub first_error: Option<String>,
}

/// Plain and transactional figures of one run.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TxnComparison {
    /// Plain SEND_MESSAGE_V2.
    pub plain: ModeFigures,
    /// Half message + END_TRANSACTION commit (oneway).
    pub transactional: ModeFigures,
    /// transactional / plain msgs/s.
    pub ratio: f64,
}

struct ProducerOut {
    messages: u64,
    errors: u64,
    first_error: Option<String>,
    hist: Histogram<u64>,
}

fn send_request(w: &Workload, queue_id: u32, transactional: bool, body: &[u8]) -> RemotingCommand {
    let mut props = MessageProperties::new();
    props.insert(keys::WAIT, "true");
    let mut sys_flag = 0;
    if transactional {
        props.insert(keys::TRAN_MSG, "true");
        props.insert(keys::PGROUP, TXN_GROUP);
        sys_flag = 4;
    }
    let mut enc = Vec::new();
    props.encode_into(&mut enc);
    RemotingCommand::request(request::SEND_MESSAGE_V2)
        .with_ext("a", TXN_GROUP)
        .with_ext("b", &w.topic)
        .with_ext("c", "TBW102")
        .with_ext("d", w.queues)
        .with_ext("e", queue_id)
        .with_ext("f", sys_flag)
        .with_ext("g", ferromq_engine::sys::now_ms())
        .with_ext("h", 0)
        .with_ext("i", String::from_utf8_lossy(&enc))
        .with_ext("j", 0)
        .with_ext("k", false)
        .with_body(body.to_vec())
}

fn end_request(resp: &RemotingCommand) -> std::result::Result<RemotingCommand, String> {
    let e = &resp.ext_fields;
    let msg_id = e.get_str("msgId").map_err(|e| e.to_string())?;
    let queue_offset = e.get_i64("queueOffset").map_err(|e| e.to_string())?;
    let (_, cl) = decode_offset_msg_id(msg_id).map_err(|e| e.to_string())?;
    let mut r = RemotingCommand::request(request::END_TRANSACTION)
        .with_ext("producerGroup", TXN_GROUP)
        .with_ext("tranStateTableOffset", queue_offset)
        .with_ext("commitLogOffset", cl)
        .with_ext("commitOrRollback", 8)
        .with_ext("fromTransactionCheck", false)
        .with_ext("msgId", msg_id);
    r.flag |= 2; // oneway
    Ok(r)
}

async fn producer(
    addr: String,
    w: Workload,
    index: usize,
    transactional: bool,
    until: Instant,
    stop: Arc<AtomicBool>,
) -> ProducerOut {
    let mut out = ProducerOut {
        messages: 0,
        errors: 0,
        first_error: None,
        hist: Histogram::new(3).expect("3 significant figures"),
    };
    let fail = |out: &mut ProducerOut, e: String| {
        out.errors += 1;
        out.first_error.get_or_insert(e);
    };
    let stream = match TcpStream::connect(&addr).await {
        Ok(s) => s,
        Err(e) => {
            fail(&mut out, format!("connect {addr}: {e}"));
            return out;
        }
    };
    let _ = stream.set_nodelay(true);
    let mut stream = BufReader::new(stream);
    let body = vec![b'x'; w.size_bytes];
    let mut opaque = 1i32;
    let mut queue = index as u32;
    while Instant::now() < until && !stop.load(Ordering::Relaxed) && out.messages < w.messages {
        queue = (queue + 1) % w.queues.max(1);
        let mut req = send_request(&w, queue, transactional, &body);
        req.opaque = opaque;
        opaque = opaque.wrapping_add(1);
        let frame = match encode(&req) {
            Ok(f) => f,
            Err(e) => {
                fail(&mut out, e.to_string());
                return out;
            }
        };
        let t0 = Instant::now();
        if let Err(e) = stream.get_mut().write_all(&frame).await {
            fail(&mut out, e.to_string());
            return out;
        }
        let resp = loop {
            match read_frame(&mut stream, DEFAULT_MAX_FRAME_BYTES).await {
                Ok(Some(r)) if r.is_response() && r.opaque == req.opaque => break Some(r),
                Ok(Some(_)) => continue, // a check-back or notification
                Ok(None) => break None,
                Err(e) => {
                    fail(&mut out, e.to_string());
                    return out;
                }
            }
        };
        let Some(resp) = resp else {
            fail(&mut out, "connection closed".into());
            return out;
        };
        let _ = out
            .hist
            .record(t0.elapsed().as_nanos().min(u64::MAX as u128) as u64);
        if resp.code != response::SUCCESS {
            fail(
                &mut out,
                format!("send answered {}: {:?}", resp.code, resp.remark),
            );
            continue;
        }
        out.messages += 1;
        if transactional {
            match end_request(&resp).and_then(|mut r| {
                r.opaque = opaque;
                opaque = opaque.wrapping_add(1);
                encode(&r).map_err(|e| e.to_string())
            }) {
                Ok(f) => {
                    if let Err(e) = stream.get_mut().write_all(&f).await {
                        fail(&mut out, e.to_string());
                        return out;
                    }
                }
                Err(e) => fail(&mut out, e),
            }
        }
    }
    out
}

/// Drive `w.producers` synchronous producers for `duration`.
///
/// # Errors
/// When a producer task panics.
pub async fn drive_mode(
    addr: &str,
    w: &Workload,
    transactional: bool,
    duration: Duration,
    stop: &Arc<AtomicBool>,
) -> Result<ModeFigures> {
    let started = Instant::now();
    let until = started + duration;
    let tasks: Vec<_> = (0..w.producers.max(1))
        .map(|i| {
            tokio::spawn(producer(
                addr.to_string(),
                w.clone(),
                i,
                transactional,
                until,
                Arc::clone(stop),
            ))
        })
        .collect();
    let mut hist = Histogram::<u64>::new(3).expect("3 significant figures");
    let (mut messages, mut errors, mut first_error) = (0, 0, None);
    for t in tasks {
        let o = t
            .await
            .map_err(|e| BenchError::new(format!("producer task: {e}")))?;
        messages += o.messages;
        errors += o.errors;
        if first_error.is_none() {
            first_error = o.first_error;
        }
        let _ = hist.add(&o.hist);
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(ModeFigures {
        messages,
        seconds,
        msgs_per_sec: if seconds > 0.0 {
            messages as f64 / seconds
        } else {
            0.0
        },
        latency_us: LatencySummary::from_ns(&hist),
        errors,
        first_error,
    })
}

/// Warm up both modes for `warmup`, then measure plain, then transactional,
/// each for the workload's duration.
///
/// # Errors
/// As [`drive_mode`].
pub fn compare(
    rt: &tokio::runtime::Runtime,
    addr: &str,
    w: &Workload,
    warmup: Duration,
    stop: &Arc<AtomicBool>,
) -> Result<TxnComparison> {
    let duration = w.max_duration.unwrap_or(Duration::from_secs(10));
    if !warmup.is_zero() {
        rt.block_on(drive_mode(addr, w, false, warmup / 2, stop))?;
        rt.block_on(drive_mode(addr, w, true, warmup / 2, stop))?;
    }
    let plain = rt.block_on(drive_mode(addr, w, false, duration, stop))?;
    let transactional = rt.block_on(drive_mode(addr, w, true, duration, stop))?;
    let ratio = if plain.msgs_per_sec > 0.0 {
        transactional.msgs_per_sec / plain.msgs_per_sec
    } else {
        0.0
    };
    Ok(TxnComparison {
        plain,
        transactional,
        ratio,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_request_names_the_half_from_the_send_answer() {
        let msg_id =
            ferromq_engine::message::offset_msg_id("127.0.0.1:10911".parse().unwrap(), 4096);
        let resp = RemotingCommand::response(response::SUCCESS, None)
            .with_ext("msgId", &msg_id)
            .with_ext("queueOffset", 7);
        let r = end_request(&resp).unwrap();
        assert_eq!(r.code, request::END_TRANSACTION);
        assert_eq!(r.flag & 2, 2, "oneway");
        let e = &r.ext_fields;
        assert_eq!(e.get_i64("commitLogOffset").unwrap(), 4096);
        assert_eq!(e.get_i64("tranStateTableOffset").unwrap(), 7);
        assert_eq!(e.get_i64("commitOrRollback").unwrap(), 8);
        let bad = RemotingCommand::response(response::SUCCESS, None).with_ext("msgId", "zz");
        assert!(end_request(&bad).is_err());
        let w = Workload::new(1);
        let half = send_request(&w, 1, true, b"x");
        assert_eq!(half.ext_fields.get_i64("f").unwrap(), 4);
        assert!(half
            .ext_fields
            .get_str("i")
            .unwrap()
            .contains("TRAN_MSG\u{1}true"));
    }
}
