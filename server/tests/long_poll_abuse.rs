//! Long polling under abuse (issue 17, item 2), against the real broker:
//! - 100,000 held pulls on one queue, over 400 connections: other clients'
//!   sends and pulls keep a bounded p99; when the connections close, the held
//!   count drops to 0 at once and the broker's RSS stays bounded;
//! - a pull asking a suspend time far above `longPollingMaxSuspendMillis` is
//!   answered within the cap;
//! - beyond `longPollingMaxParkedPerConnection`, a pull that finds nothing is
//!   short-polled: answered after `shortPollingTimeMills` (PULL_NOT_FOUND,
//!   nextBeginOffset as for any such pull), neither held nor answered at once;
//! - held pulls of a closed connection are dropped, and a message arriving
//!   later answers nobody and logs no error.

mod common;

use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::longpoll::*;
use common::*;
use ferromq_server::remoting::{request, response, RemotingCommand};

const HOLD_TOPIC: &str = "HoldTopic";
const OTHER_TOPIC: &str = "OtherTopic";

/// Connections and held pulls per connection of the big test: 100,000 in all,
/// few enough per connection to stay under any sane per-connection bound on
/// requests in progress.
const CONNS: usize = 400;
const PER_CONN: usize = 250;
const TOTAL: u64 = (CONNS * PER_CONN) as u64;

/// Other clients' p99 for a send and for a pull with all the pulls held.
const P99_BOUND: Duration = Duration::from_millis(500);
/// The longest any request of other clients may wait while the 100,000 are
/// being parked (the broker's runtime then works through 100,000 requests on
/// two cores in a debug build).
const PARKING_MAX_BOUND: Duration = Duration::from_secs(8);
/// How long the other client keeps measuring once all are held.
const STEADY: Duration = Duration::from_secs(2);
/// Broker RSS with 100,000 pulls held, and after they are gone. Measured
/// on the shared 2-core VM (debug build): 388-392 MiB at 9fd24bf and
/// 402-411 MiB at the end of session 13 (about 4 KiB per held pull, the same
/// RSS at start); 400 MiB was within the spread. The bound catches a
/// regression like the 660 MiB of unboxed handler futures, which
/// `request_future_size.rs` pins down exactly.
const RSS_HELD_BOUND_KIB: u64 = 450 * 1024;
/// The broker gives the memory back once they are gone (within its
/// housekeeping tick, 1 s with the test properties).
const RSS_AFTER_BOUND_KIB: u64 = 100 * 1024;
/// How soon the held count is 0 once the connections close (it drops in each
/// connection's close; the broker works through 100,000 ended requests meanwhile).
const GONE_BOUND: Duration = Duration::from_secs(10);

fn wait_max_offset(c: &mut Client, topic: &str, queue_id: i32, want: i64) {
    wait_for(Duration::from_secs(10), || {
        let r = c.invoke(Client::offset_req(request::GET_MAX_OFFSET, topic, queue_id));
        (r.ext_fields.get_i64("offset").unwrap() == want).then_some(())
    })
    .unwrap_or_else(|| panic!("{topic}/{queue_id} max offset {want} within 10 s"));
}

/// One round of the other client: when it started, its send's and its pull's latency.
type Round = (Instant, Duration, Duration);

/// Another client: send one message then pull, every 10 ms, until `stop`
/// (bounded: 50 s, 10,000 rounds).
fn probe(port: u16, stop: Arc<AtomicBool>) -> Result<Vec<Round>, String> {
    let mut c = Client::connect(port);
    let mut rounds = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(50);
    while !stop.load(Ordering::Acquire) && Instant::now() < deadline && rounds.len() < 10_000 {
        let began = Instant::now();
        let r = c.try_invoke(Client::send_v2_req(OTHER_TOPIC, 0, b"probe", &[]));
        let send = began.elapsed();
        match r {
            Ok(r) if r.code == response::SUCCESS => {}
            other => return Err(format!("probe send after {send:?}: {other:?}")),
        }
        let t = Instant::now();
        let r = c.try_invoke(Client::pull_req(
            "probe-group",
            OTHER_TOPIC,
            0,
            0,
            32,
            0x4,
            0,
            "*",
        ));
        let pull = t.elapsed();
        match r {
            Ok(r) if r.code == response::SUCCESS => {}
            other => return Err(format!("probe pull after {pull:?}: {other:?}")),
        }
        rounds.push((began, send, pull));
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(rounds)
}

/// p99 and max of sends and of pulls over `rounds`.
fn summary(rounds: &[Round]) -> (Duration, Duration, Duration, Duration) {
    let mut sends: Vec<Duration> = rounds.iter().map(|r| r.1).collect();
    let mut pulls: Vec<Duration> = rounds.iter().map(|r| r.2).collect();
    let (sp, pp) = (percentile(&mut sends, 99), percentile(&mut pulls, 99));
    (sp, sends[sends.len() - 1], pp, pulls[pulls.len() - 1])
}

#[test]
fn hundred_thousand_held_pulls_then_disconnect() {
    let (_tmp, dir) = temp_dir();
    let props = broker_props(
        &dir.join("store"),
        "pullThreadPoolQueueCapacity=200000\nlongPollingMaxParkedPerConnection=1000\n",
    );
    let (broker, port) = start_broker_bin(&dir, &props);
    let pid = broker.child.id();
    let mut c = Client::connect(port);
    for t in [HOLD_TOPIC, OTHER_TOPIC] {
        assert_eq!(
            c.send_v2(t, 0, b"first", None, None).code,
            response::SUCCESS
        );
        wait_max_offset(&mut c, t, 0, 1);
    }
    let rss_start = rss_kib(pid);

    let stop = Arc::new(AtomicBool::new(false));
    let prober = {
        let stop = stop.clone();
        std::thread::spawn(move || probe(port, stop))
    };
    std::thread::sleep(Duration::from_millis(200));

    // 100,000 pulls at the end of one queue, each asking to be held 30 s.
    let req = held_pull_req(HOLD_TOPIC, 0, 1, 30_000);
    let start = Instant::now();
    let mut conns = Vec::with_capacity(CONNS);
    for _ in 0..CONNS {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
        pipeline(&mut s, &req, PER_CONN);
        conns.push(s);
    }
    let written = start.elapsed();
    let all_held = wait_for(Duration::from_secs(40), || {
        (held_pulls(port) == Some(TOTAL)).then_some(Instant::now())
    });
    let held_in = start.elapsed();
    let rss_held = rss_kib(pid);
    // Keep probing with everything held.
    std::thread::sleep(STEADY);
    stop.store(true, Ordering::Release);
    let probed = prober.join().expect("probe thread");

    eprintln!(
        "{TOTAL} pulls written in {written:?}, all held after {held_in:?}; \
         RSS {rss_start} KiB at start, {rss_held} KiB held"
    );
    let rounds = probed.expect("other client's requests answered");
    let all_held = all_held.unwrap_or_else(|| {
        panic!(
            "held count reaches {TOTAL} within 40 s (now {:?})",
            held_pulls(port)
        )
    });
    let (parking, steady): (Vec<Round>, Vec<Round>) = rounds.iter().partition(|r| r.0 < all_held);
    for (what, rs) in [("while parking", &parking), ("all held", &steady)] {
        if !rs.is_empty() {
            let (sp, sm, pp, pm) = summary(rs);
            eprintln!(
                "other client {what}: {} rounds; send p99 {sp:?} max {sm:?}; pull p99 {pp:?} max {pm:?}",
                rs.len()
            );
        }
    }
    assert!(steady.len() >= 20, "{} rounds with all held", steady.len());
    let (sp, _, pp, _) = summary(&steady);
    assert!(
        sp < P99_BOUND && pp < P99_BOUND,
        "with {TOTAL} held, other clients' p99 under {P99_BOUND:?}: send {sp:?}, pull {pp:?}"
    );
    if !parking.is_empty() {
        let (_, sm, _, pm) = summary(&parking);
        assert!(
            sm < PARKING_MAX_BOUND && pm < PARKING_MAX_BOUND,
            "while {TOTAL} pulls are parked, no request of other clients waits \
             {PARKING_MAX_BOUND:?}: send max {sm:?}, pull max {pm:?}"
        );
    }
    assert!(
        rss_held < RSS_HELD_BOUND_KIB,
        "RSS with {TOTAL} held: {rss_held} KiB"
    );

    // Everyone leaves: their held pulls go with them.
    let closed = Instant::now();
    drop(conns);
    let gone = wait_for(GONE_BOUND, || (held_pulls(port) == Some(0)).then_some(()));
    let gone_in = closed.elapsed();
    assert!(
        gone.is_some(),
        "held count 0 within {GONE_BOUND:?} of the disconnect (not at their 30 s expiry)"
    );
    let returned = wait_for(Duration::from_secs(5), || {
        (rss_kib(pid) < RSS_AFTER_BOUND_KIB).then_some(())
    });
    let rss_after = rss_kib(pid);
    eprintln!(
        "held count 0 after {gone_in:?}; RSS {rss_after} KiB {:?} after",
        closed.elapsed()
    );
    assert!(
        returned.is_some(),
        "RSS back under {RSS_AFTER_BOUND_KIB} KiB within 5 s: {rss_after} KiB"
    );

    // A message to the queue they held answers nobody and harms nothing.
    assert_eq!(
        c.send_v2(HOLD_TOPIC, 0, b"late", None, None).code,
        response::SUCCESS
    );
    wait_max_offset(&mut c, HOLD_TOPIC, 0, 2);
    let r = c.pull("hold-group", HOLD_TOPIC, 0, 1, 32);
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    assert_eq!(records(&r.body)[0].body, b"late");
    assert_eq!(held_pulls(port), Some(0));
}

#[test]
fn suspend_time_and_held_pulls_per_connection_are_capped() {
    const CAP_MS: u64 = 5000;
    const PER_CONN_CAP: usize = 5;
    let (_tmp, dir) = temp_dir();
    let props = broker_props(
        &dir.join("store"),
        &format!(
            "longPollingMaxSuspendMillis={CAP_MS}\nlongPollingMaxParkedPerConnection={PER_CONN_CAP}\n"
        ),
    );
    let (_broker, port) = start_broker_bin(&dir, &props);
    let mut c = Client::connect(port);
    assert_eq!(
        c.send_v2(HOLD_TOPIC, 0, b"first", None, None).code,
        response::SUCCESS
    );
    wait_max_offset(&mut c, HOLD_TOPIC, 0, 1);

    // An hour asked for: held for the cap, then PULL_NOT_FOUND at offset 1.
    let t = Instant::now();
    let r = c.invoke(held_pull_req(HOLD_TOPIC, 0, 1, 3_600_000));
    let took = t.elapsed();
    assert_eq!(r.code, response::PULL_NOT_FOUND, "{:?}", r.remark);
    assert_eq!(r.ext_fields.get_i64("nextBeginOffset").unwrap(), 1);
    assert!(
        took >= Duration::from_millis(CAP_MS - 300) && took < Duration::from_millis(CAP_MS + 3000),
        "held about {CAP_MS} ms, not an hour: {took:?}"
    );

    // One connection, 8 pulls: 5 are held, 3 are short-polled (answered after
    // shortPollingTimeMills, 1000 ms by default).
    let mut held = Client::connect(port);
    let t = Instant::now();
    pipeline(
        &mut held.stream,
        &held_pull_req(HOLD_TOPIC, 0, 1, 60_000),
        PER_CONN_CAP + 3,
    );
    for _ in 0..3 {
        let r = held.read();
        assert_eq!(r.code, response::PULL_NOT_FOUND, "{:?}", r.remark);
        assert_eq!(r.ext_fields.get_i64("nextBeginOffset").unwrap(), 1);
    }
    let refused_in = t.elapsed();
    assert!(
        refused_in >= Duration::from_millis(900) && refused_in < Duration::from_millis(CAP_MS / 2),
        "pulls over the per-connection cap are answered after the short-poll time ({refused_in:?})"
    );
    assert_eq!(held_pulls(port), Some(PER_CONN_CAP as u64));
    assert_eq!(refused_holds(port), Some(3));
    // The held ones are answered by the next message.
    assert_eq!(
        c.send_v2(HOLD_TOPIC, 0, b"second", None, None).code,
        response::SUCCESS
    );
    for _ in 0..PER_CONN_CAP {
        let r = held.read();
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
        assert_eq!(records(&r.body)[0].body, b"second");
    }
    assert_eq!(held_pulls(port), Some(0));
}

#[test]
fn held_pulls_of_a_closed_connection_are_dropped() {
    let (_tmp, dir) = temp_dir();
    let log = dir.join("broker.log");
    let props = broker_props(&dir.join("store"), "");
    let (_broker, port) = start_broker_logged(&dir, &props, &log);
    let mut c = Client::connect(port);
    assert_eq!(
        c.send_v2(HOLD_TOPIC, 1, b"first", None, None).code,
        response::SUCCESS
    );
    wait_max_offset(&mut c, HOLD_TOPIC, 1, 1);

    let mut gone = Client::connect(port);
    pipeline(
        &mut gone.stream,
        &held_pull_req(HOLD_TOPIC, 1, 1, 30_000),
        3,
    );
    wait_for(Duration::from_secs(10), || {
        (held_pulls(port) == Some(3)).then_some(())
    })
    .expect("3 pulls held");
    drop(gone);
    let t = Instant::now();
    wait_for(Duration::from_secs(5), || {
        (held_pulls(port) == Some(0)).then_some(())
    })
    .expect("held pulls dropped when their connection closed");
    eprintln!("dropped {:?} after the close", t.elapsed());

    // A message arriving afterwards wakes nobody; the broker keeps serving.
    assert_eq!(
        c.send_v2(HOLD_TOPIC, 1, b"late", None, None).code,
        response::SUCCESS
    );
    wait_max_offset(&mut c, HOLD_TOPIC, 1, 2);
    std::thread::sleep(Duration::from_millis(300));
    let r = c.pull("hold-group", HOLD_TOPIC, 1, 1, 32);
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let text = std::fs::read_to_string(&log).unwrap();
    for bad in ["ERROR", "panicked"] {
        assert!(!text.contains(bad), "broker log has {bad}:\n{text}");
    }
}

#[test]
fn oversize_batch_is_refused_whole() {
    const MAX: usize = 64 * 1024;
    let (_tmp, dir) = temp_dir();
    let props = broker_props(&dir.join("store"), &format!("maxMessageSize={MAX}\n"));
    let (_broker, port) = start_broker_bin(&dir, &props);
    let mut c = Client::connect(port);
    const TOPIC: &str = "BatchLimit";
    assert_eq!(
        c.send_v2(TOPIC, 0, b"first", None, None).code,
        response::SUCCESS
    );
    wait_max_offset(&mut c, TOPIC, 0, 1);

    // Five 16 KiB messages, each within maxMessageSize, 80 KiB together.
    let bodies: Vec<Vec<u8>> = (0..5).map(|i| vec![b'a' + i as u8; 16 * 1024]).collect();
    let body = batch_body(&bodies);
    assert!(body.len() > MAX);
    let r = c.invoke(batch_req(TOPIC, 0, body));
    assert_eq!(r.code, response::MESSAGE_ILLEGAL, "{:?}", r.remark);
    let remark = r.remark.unwrap_or_default();
    assert!(
        remark.contains("maxMessageSize") && remark.contains(&MAX.to_string()),
        "{remark}"
    );
    // Also as the C++ client sends a batch: SEND_MESSAGE_V2 with `m`=true.
    let mut v2 = batch_req(TOPIC, 0, batch_body(&bodies));
    v2.code = request::SEND_MESSAGE_V2;
    assert_eq!(c.invoke(v2).code, response::MESSAGE_ILLEGAL);
    // Nothing stored: a later single message is the next offset.
    std::thread::sleep(Duration::from_millis(300));
    let r = c.invoke(Client::offset_req(request::GET_MAX_OFFSET, TOPIC, 0));
    assert_eq!(r.ext_fields.get_i64("offset").unwrap(), 1);

    // Three of them (48 KiB plus headers) fit, and are stored.
    let r = c.invoke(batch_req(TOPIC, 0, batch_body(&bodies[..3])));
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    wait_max_offset(&mut c, TOPIC, 0, 4);
}

#[test]
fn error_remarks_name_the_problem_not_the_store_path() {
    let (_tmp, dir) = temp_dir();
    let store = dir.join("store");
    let props = broker_props(&store, "");
    let (_broker, port) = start_broker_bin(&dir, &props);
    let store_path = store.display().to_string();
    let mut c = Client::connect(port);
    let r = c.send_v2("Remarks", 0, &[7u8; 300], None, None);
    assert_eq!(r.code, response::SUCCESS);
    let (_, off) =
        ferromq_engine::message::decode_offset_msg_id(r.ext_fields.get_str("msgId").unwrap())
            .unwrap();
    wait_max_offset(&mut c, "Remarks", 0, 1);
    let mut remarks = Vec::new();

    // A damaged record (one body byte flipped in place, through the mapping's
    // page cache): reading it is a corruption error whose cause names the file.
    {
        use std::io::{Seek, SeekFrom, Write};
        let file = store.join("commitlog/00000000000000000000");
        let mut f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
        f.seek(SeekFrom::Start(off + 250)).unwrap();
        f.write_all(&[0x55]).unwrap();
    }
    let r = c.invoke(RemotingCommand::request(request::VIEW_MESSAGE_BY_ID).with_ext("offset", off));
    assert_ne!(r.code, response::SUCCESS, "a damaged record is not served");
    remarks.push(("VIEW_MESSAGE_BY_ID", r.remark.unwrap_or_default()));

    // An I/O error writing the topic table (its temporary file is a directory):
    // auto-creating a topic fails, with a cause that names the file.
    // The broker's coalesced config writer may be writing topics.json (through
    // this very temporary file) right now: wait, bounded, until it is gone.
    let tmp = store.join("config/topics.json.tmp");
    std::fs::create_dir_all(store.join("config")).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while let Err(e) = std::fs::create_dir(&tmp) {
        assert!(
            e.kind() == std::io::ErrorKind::AlreadyExists && tmp.is_file(),
            "cannot create {}: {e}",
            tmp.display()
        );
        assert!(
            std::time::Instant::now() < deadline,
            "{} stays",
            tmp.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let r = c.send_v2("RemarksNew", 0, b"x", None, None);
    if r.code != response::SUCCESS {
        remarks.push(("auto-create", r.remark.unwrap_or_default()));
    }

    for (what, remark) in &remarks {
        eprintln!("{what}: {remark}");
        assert!(!remark.is_empty(), "{what}: a remark");
        assert!(
            !remark.contains(&store_path) && !remark.contains("/tmp"),
            "{what}: the remark names no server path: {remark}"
        );
    }
}
