//! RocketMQ 5 timer messages against a real broker process.
//!
//! * `arrive_on_time_never_early_and_hidden_until_due` (named so that it
//!   starts first: libtest starts tests in name order, two at a time here):
//!   messages due at +1.5 s .. +65 s (by `TIMER_DELAY_SEC`, `TIMER_DELAY_MS`
//!   and `TIMER_DELIVER_MS`) are polled for every 50 ms. None is visible (topic max offset, pull) or
//!   stored (store timestamp) before it is due; each arrives at most the
//!   precision (1 s) plus 1 s after it is due; body, tags, keys and
//!   properties survive, and `TIMER_OUT_MS` names the due slot. About 67 s.
//! * `timer_bad_input_past_due_and_delay_levels`: a timer value that is not a
//!   number, or beyond `timerMaxDelaySec` (60 here), is refused with
//!   MESSAGE_ILLEGAL and nothing is stored; a `TIMER_DELIVER_MS` in the past
//!   is delivered at once; classic `DELAY` levels still work beside timers
//!   (and win over timer properties on the same message); a batch with
//!   timer properties is refused. About 10 s (runs beside the first).
//! * `rolled_timer_messages_arrive_on_time`: with `timerRollWindowSlots=2`
//!   timers due up to 12 s ahead are rolled (written again on the timer
//!   topic) several times; each still arrives once, on time. About 14 s.
//! * `fine_precision_timer_messages_arrive_on_time`: `timerPrecisionMs=100`,
//!   due +0.25 s .. +4 s, each at most 100 ms + 1 s late. About 5 s.
//! * `timer_wheel_disabled_refuses_waiting_timers`: `timerWheelEnable=false`
//!   refuses timers that would wait; past-due and plain ones are stored.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use ferromq_engine::MessageExt;
use ferromq_server::remoting::{request, response, RemotingCommand};

const QUEUES: i32 = 4;
/// `timerPrecisionMs` at its default.
const PRECISION_MS: i64 = 1_000;
/// How late a delivery may be after its due time: the precision plus 1 s.
const LATE_MS: i64 = PRECISION_MS + 1_000;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// One timer message as sent: its due time is in `[due_lo, due_hi]` (for a
/// relative delay, the broker reads its clock somewhere between the moment
/// the request left and the moment the answer came back).
#[derive(Debug, Clone)]
struct Sent {
    key: String,
    queue: i32,
    body: Vec<u8>,
    tag: String,
    /// The timer property and its value as sent.
    timer: (&'static str, String),
    due_lo: i64,
    due_hi: i64,
}

/// A SEND_MESSAGE_V2 with tags, keys, a user property `U`, `extra` and the
/// real born timestamp.
fn send_req(
    topic: &str,
    queue: i32,
    body: &[u8],
    tag: &str,
    key: &str,
    extra: &[(&str, &str)],
) -> RemotingCommand {
    let user = format!("u-{key}");
    let mut props: Vec<(&str, &str)> = vec![("TAGS", tag), ("KEYS", key), ("U", &user)];
    props.extend_from_slice(extra);
    Client::send_v2_req(topic, queue, body, &props).with_ext("g", now_ms())
}

/// Send a timer message with `timer` = (property, value); `rel` is the
/// relative delay in ms for the DELAY forms, None for `TIMER_DELIVER_MS`.
fn send_timer(
    c: &mut Client,
    topic: &str,
    queue: i32,
    key: &str,
    timer: (&'static str, String),
) -> Sent {
    let body = format!("timer-body-{key}").into_bytes();
    let tag = format!("tag-{}", queue);
    let before = now_ms();
    let r = c.invoke(send_req(
        topic,
        queue,
        &body,
        &tag,
        key,
        &[(timer.0, &timer.1)],
    ));
    let after = now_ms();
    assert_eq!(
        r.code,
        response::SUCCESS,
        "send {key} ({}={}): {:?}",
        timer.0,
        timer.1,
        r.remark
    );
    let v: i64 = timer.1.parse().unwrap();
    let (due_lo, due_hi) = match timer.0 {
        "TIMER_DELIVER_MS" => (v, v),
        "TIMER_DELAY_SEC" => (before + v * 1_000, after + v * 1_000),
        "TIMER_DELAY_MS" => (before + v, after + v),
        other => panic!("not a timer property: {other}"),
    };
    Sent {
        key: key.to_string(),
        queue,
        body,
        tag,
        timer,
        due_lo,
        due_hi,
    }
}

/// Pulls `topic`'s queues from where it left off; every message with the
/// wall-clock time (ms) of the pull answer that brought it.
struct Poller {
    c: Client,
    topic: String,
    next: Vec<u64>,
}

impl Poller {
    fn new(port: u16, topic: &str) -> Poller {
        Poller {
            c: Client::connect(port),
            topic: topic.to_string(),
            next: vec![0; QUEUES as usize],
        }
    }

    fn poll(&mut self) -> Vec<(MessageExt, i64)> {
        let mut out = Vec::new();
        for q in 0..QUEUES {
            for _ in 0..1_000 {
                let r = self
                    .c
                    .pull("timer-test", &self.topic, q, self.next[q as usize], 32);
                let at = now_ms();
                if r.code != response::SUCCESS {
                    break;
                }
                let got = records(&r.body);
                self.next[q as usize] = r.ext_fields.get_i64("nextBeginOffset").unwrap() as u64;
                out.extend(got.into_iter().map(|m| (m, at)));
            }
        }
        out
    }

    /// How many messages the topic holds (sum of max offsets).
    fn max_offsets(&mut self) -> i64 {
        (0..QUEUES)
            .map(|q| {
                let r = self
                    .c
                    .invoke(Client::offset_req(request::GET_MAX_OFFSET, &self.topic, q));
                assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
                r.ext_fields.get_i64("offset").unwrap()
            })
            .sum()
    }
}

/// Poll until every message of `sent` arrived or `deadline`; meanwhile the
/// topic never holds more messages than are due (plus `plain`, the plain
/// messages it held before). Returns each key's deliveries: (message,
/// receipt ms).
fn collect(
    p: &mut Poller,
    sent: &[Sent],
    plain: i64,
    deadline: Instant,
) -> BTreeMap<String, Vec<(MessageExt, i64)>> {
    let mut got: BTreeMap<String, Vec<(MessageExt, i64)>> = BTreeMap::new();
    while Instant::now() < deadline {
        let held = p.max_offsets();
        let now = now_ms();
        let due: Vec<&str> = sent
            .iter()
            .filter(|s| s.due_lo <= now)
            .map(|s| s.key.as_str())
            .collect();
        assert!(
            held <= due.len() as i64 + plain,
            "{}: the topic holds {held} messages at {now} but only {} are due ({due:?}) \
             besides {plain} plain ones: a timer message is visible before its due time",
            p.topic,
            due.len()
        );
        for (m, at) in p.poll() {
            let key = m.keys().first().map(|k| k.to_string()).unwrap_or_default();
            got.entry(key).or_default().push((m, at));
        }
        if sent.iter().all(|s| got.contains_key(&s.key)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    got
}

/// Each of `sent` delivered exactly once, not before it was due and at most
/// `precision` plus 1 s after, with its body, tags, keys and properties, and
/// `TIMER_OUT_MS` its due time rounded up to `precision`.
fn check_deliveries(
    sent: &[Sent],
    got: &BTreeMap<String, Vec<(MessageExt, i64)>>,
    topic: &str,
    precision: i64,
) {
    let late_ms = precision + 1_000;
    let missing: Vec<&str> = sent
        .iter()
        .filter(|s| !got.contains_key(&s.key))
        .map(|s| s.key.as_str())
        .collect();
    assert!(missing.is_empty(), "never delivered: {missing:?}");
    for s in sent {
        let d = &got[&s.key];
        assert_eq!(d.len(), 1, "{} delivered {} times", s.key, d.len());
        let (m, at) = &d[0];
        let store = m.store_timestamp_ms;
        eprintln!(
            "{}: {}={} due {}..{}, stored +{} ms, received +{} ms after due",
            s.key,
            s.timer.0,
            s.timer.1,
            s.due_lo,
            s.due_hi,
            store - s.due_lo,
            at - s.due_lo
        );
        assert!(
            *at >= s.due_lo,
            "{}: received at {at}, {} ms before it was due at {}",
            s.key,
            s.due_lo - at,
            s.due_lo
        );
        assert!(
            store >= s.due_lo,
            "{}: stored at {store}, {} ms before it was due at {}",
            s.key,
            s.due_lo - store,
            s.due_lo
        );
        assert!(
            *at <= s.due_hi + late_ms,
            "{}: received at {at}, {} ms after it was due at {} (more than {late_ms} ms)",
            s.key,
            at - s.due_hi,
            s.due_hi
        );
        assert!(
            store <= s.due_hi + late_ms,
            "{}: stored at {store}, {} ms after it was due at {} (more than {late_ms} ms)",
            s.key,
            store - s.due_hi,
            s.due_hi
        );
        assert_eq!(m.topic, topic, "{}: delivered on its real topic", s.key);
        assert_eq!(m.queue_id, s.queue as u32, "{}: on its queue", s.key);
        assert_eq!(m.body, s.body, "{}: body", s.key);
        assert_eq!(m.tags(), Some(s.tag.as_str()), "{}: tags", s.key);
        assert_eq!(m.keys(), vec![s.key.as_str()], "{}: keys", s.key);
        let user = format!("u-{}", s.key);
        assert_eq!(
            m.properties.get("U"),
            Some(user.as_str()),
            "{}: user property",
            s.key
        );
        assert_eq!(
            m.properties.get(s.timer.0),
            Some(s.timer.1.as_str()),
            "{}: the timer property it was sent with is kept",
            s.key
        );
        let out: i64 = m
            .properties
            .get("TIMER_OUT_MS")
            .unwrap_or_else(|| panic!("{}: no TIMER_OUT_MS in {:?}", s.key, m.properties))
            .parse()
            .unwrap_or_else(|e| panic!("{}: TIMER_OUT_MS not a number: {e}", s.key));
        assert!(
            out >= s.due_lo && out < s.due_hi + precision && out % precision == 0,
            "{}: TIMER_OUT_MS {out} is not its due time {}..{} rounded up to {precision} ms",
            s.key,
            s.due_lo,
            s.due_hi
        );
        assert!(
            store >= out,
            "{}: stored at {store}, before its slot TIMER_OUT_MS {out}",
            s.key
        );
    }
}

#[test]
fn arrive_on_time_never_early_and_hidden_until_due() {
    const TOPIC: &str = "TimerDue";
    let (_tmp, dir) = temp_dir();
    let (_broker, port) = start_broker(&dir, &broker_props(&dir.join("store"), ""), None);
    let mut c = Client::connect(port);
    // Create the topic first (auto-create on a plain send), so that max
    // offsets can be read from the start: one plain message, counted below.
    let r = c.send_v2(TOPIC, 0, b"plain", Some("plain"), Some("plain"));
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);

    let now = now_ms();
    let plan: Vec<(&str, (&'static str, String))> = vec![
        ("sec-2", ("TIMER_DELAY_SEC", "2".into())),
        ("ms-5000", ("TIMER_DELAY_MS", "5000".into())),
        (
            "deliver-65s",
            ("TIMER_DELIVER_MS", (now + 65_000).to_string()),
        ),
        ("ms-1500", ("TIMER_DELAY_MS", "1500".into())),
        ("ms-2001", ("TIMER_DELAY_MS", "2001".into())),
        (
            "deliver-3.3s",
            ("TIMER_DELIVER_MS", (now + 3_300).to_string()),
        ),
        ("sec-4", ("TIMER_DELAY_SEC", "4".into())),
        (
            "deliver-7.77s",
            ("TIMER_DELIVER_MS", (now + 7_770).to_string()),
        ),
        ("sec-9", ("TIMER_DELAY_SEC", "9".into())),
        ("ms-12345", ("TIMER_DELAY_MS", "12345".into())),
    ];
    let sent: Vec<Sent> = plan
        .into_iter()
        .enumerate()
        .map(|(i, (key, timer))| send_timer(&mut c, TOPIC, i as i32 % QUEUES, key, timer))
        .collect();

    let mut p = Poller::new(port, TOPIC);
    // The plain message, and nothing else yet.
    let plain = wait_for(Duration::from_secs(10), || {
        let m = p.poll();
        (!m.is_empty()).then_some(m)
    })
    .expect("the plain message");
    assert_eq!(plain.len(), 1, "only the plain message is visible at first");
    assert_eq!(plain[0].0.body, b"plain");
    let held = p.max_offsets();
    assert_eq!(
        held,
        1,
        "right after the sends (none due before +1.5 s, {} ms after the first) \
         the topic holds the plain message only",
        now_ms() - now
    );

    let last_due = sent.iter().map(|s| s.due_hi).max().unwrap();
    let wait = Duration::from_millis((last_due - now_ms()).max(0) as u64 + 15_000);
    let got = collect(&mut p, &sent, 1, Instant::now() + wait);
    check_deliveries(&sent, &got, TOPIC, PRECISION_MS);
    // Nothing more arrives.
    std::thread::sleep(Duration::from_millis(1_500));
    let late = p.poll();
    assert!(
        late.is_empty(),
        "delivered again: {:?}",
        late.iter().map(|(m, _)| m.keys()).collect::<Vec<_>>()
    );
    assert_eq!(p.max_offsets(), sent.len() as i64 + 1);
}

/// MESSAGE_ILLEGAL with a remark; returns the remark.
fn refused(c: &mut Client, topic: &str, key: &str, timer: (&str, &str)) -> String {
    let r = c.invoke(send_req(topic, 0, b"refused", "bad", key, &[timer]));
    let remark = r.remark.clone().unwrap_or_default();
    assert_eq!(
        r.code,
        response::MESSAGE_ILLEGAL,
        "{}={} must be refused with MESSAGE_ILLEGAL (13); got code {} remark {remark:?}",
        timer.0,
        timer.1,
        r.code
    );
    eprintln!("{}={}: refused: {remark}", timer.0, timer.1);
    remark
}

#[test]
fn timer_bad_input_past_due_and_delay_levels() {
    const BAD: &str = "TimerBad";
    const PAST: &str = "TimerPast";
    const BESIDE: &str = "TimerBeside";
    let (_tmp, dir) = temp_dir();
    let props = broker_props(&dir.join("store"), "timerMaxDelaySec=60\n");
    let (_broker, port) = start_broker(&dir, &props, None);
    let mut c = Client::connect(port);
    // The topics exist (a plain message on queue 1 of each), so max offsets
    // can be read.
    for t in [BAD, PAST, BESIDE] {
        let r = c.send_v2(t, 1, b"plain", Some("plain"), Some("plain"));
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    }

    // Not a number.
    for (i, (k, v)) in [
        ("TIMER_DELAY_SEC", "abc"),
        ("TIMER_DELAY_MS", "5s"),
        ("TIMER_DELIVER_MS", "tomorrow"),
    ]
    .into_iter()
    .enumerate()
    {
        let remark = refused(&mut c, BAD, &format!("nan-{i}"), (k, v));
        assert!(
            remark.to_lowercase().contains("timer"),
            "{k}={v}: the remark says what is wrong: {remark:?}"
        );
    }

    // Beyond timerMaxDelaySec=60.
    let far = (now_ms() + 120_000).to_string();
    for (i, (k, v)) in [
        ("TIMER_DELIVER_MS", far.as_str()),
        ("TIMER_DELAY_SEC", "120"),
        ("TIMER_DELAY_MS", "120000"),
    ]
    .into_iter()
    .enumerate()
    {
        let remark = refused(&mut c, BAD, &format!("far-{i}"), (k, v));
        assert!(
            remark.contains("timer message illegal"),
            "{k}={v}: remark {remark:?}"
        );
        let lower = remark.to_lowercase();
        assert!(
            lower.contains("max") || lower.contains("60"),
            "{k}={v}: the remark mentions the maximum delay: {remark:?}"
        );
    }

    // Due in the past: delivered at once.
    let t_past = now_ms();
    let past = send_timer(
        &mut c,
        PAST,
        0,
        "past",
        ("TIMER_DELIVER_MS", (t_past - 10_000).to_string()),
    );
    // Beside timers, classic delay levels (1 = 1 s, 2 = 5 s) and a 1 s timer.
    let mut beside: Vec<(String, i64, i64, i64)> = Vec::new(); // key, delay, before, after
                                                               // And a DELAY level wins over timer properties on the same message.
    for (i, (level, timer)) in [(1i64, false), (2, false), (1, true)]
        .into_iter()
        .enumerate()
    {
        let key = if timer {
            format!("level-{level}-with-timer-5s")
        } else {
            format!("level-{level}")
        };
        let mut extra = vec![("DELAY", level.to_string())];
        if timer {
            extra.push(("TIMER_DELAY_SEC", "5".to_string()));
        }
        let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let before = now_ms();
        let r = c.invoke(send_req(
            BESIDE,
            i as i32,
            key.as_bytes(),
            "lvl",
            &key,
            &extra,
        ));
        let after = now_ms();
        assert_eq!(r.code, response::SUCCESS, "{key}: {:?}", r.remark);
        beside.push((key, [0, 1_000, 5_000][level as usize], before, after));
    }
    let timer1 = send_timer(
        &mut c,
        BESIDE,
        2,
        "timer-1s",
        ("TIMER_DELAY_SEC", "1".into()),
    );
    beside.push((
        timer1.key.clone(),
        1_000,
        timer1.due_lo - 1_000,
        timer1.due_hi - 1_000,
    ));

    // The past one arrives at once.
    let mut pp = Poller::new(port, PAST);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut past_got = Vec::new();
    while Instant::now() < deadline && past_got.len() < 2 {
        past_got.extend(pp.poll());
        std::thread::sleep(Duration::from_millis(20));
    }
    let (m, at) = past_got
        .iter()
        .find(|(m, _)| m.keys() == vec!["past"])
        .cloned()
        .expect("the message due in the past is delivered");
    assert!(
        at - t_past <= LATE_MS,
        "due 10 s in the past, but delivered {} ms after the send",
        at - t_past
    );
    assert_eq!(m.body, past.body);
    assert_eq!(
        m.properties.get("TIMER_DELIVER_MS"),
        Some(past.timer.1.as_str())
    );

    // Delay levels and the 1 s timer.
    let mut bp = Poller::new(port, BESIDE);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got: BTreeMap<String, Vec<(MessageExt, i64)>> = BTreeMap::new();
    while Instant::now() < deadline && got.len() < beside.len() + 1 {
        for (m, at) in bp.poll() {
            let k = m.keys().first().map(|k| k.to_string()).unwrap_or_default();
            got.entry(k).or_default().push((m, at));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for (key, delay, before, after) in &beside {
        let d = got
            .get(key)
            .unwrap_or_else(|| panic!("{key} never delivered; got {:?}", got.keys()));
        assert_eq!(d.len(), 1, "{key} delivered {} times", d.len());
        let (m, at) = &d[0];
        let store = m.store_timestamp_ms;
        eprintln!(
            "{key}: stored {} ms, received {} ms after its send (delay {delay} ms)",
            store - before,
            at - before
        );
        assert!(
            store >= before + delay && *at >= before + delay,
            "{key}: stored {} ms / received {} ms after its send, before its {delay} ms delay",
            store - before,
            at - before
        );
        assert!(
            *at <= after + delay + LATE_MS,
            "{key}: received {} ms after its send, more than {LATE_MS} ms after its {delay} ms delay",
            at - after
        );
        assert_eq!(m.topic, BESIDE);
        assert_eq!(m.body.as_slice(), {
            if key.starts_with("level") {
                key.as_bytes().to_vec()
            } else {
                timer1.body.clone()
            }
        });
    }

    // The refused messages were never stored, not even later: only the plain one.
    std::thread::sleep(Duration::from_millis(1_500));
    assert_eq!(
        total_max_offset(port, BAD, QUEUES),
        1,
        "a refused timer message was stored"
    );
    let mut badp = Poller::new(port, BAD);
    let bad_msgs = badp.poll();
    assert_eq!(
        bad_msgs
            .iter()
            .map(|(m, _)| m.body.clone())
            .collect::<Vec<_>>(),
        vec![b"plain".to_vec()]
    );
    assert_eq!(total_max_offset(port, PAST, QUEUES), 2);
    assert_eq!(total_max_offset(port, BESIDE, QUEUES), 5);

    // A batch with timer properties is refused.
    let props = "KEYS\u{1}batch-timer\u{2}TIMER_DELAY_SEC\u{1}2";
    let text = "bt";
    let mut body = Vec::new();
    let total = 20 + text.len() + 2 + props.len();
    body.extend_from_slice(&(total as i32).to_be_bytes());
    body.extend_from_slice(&[0; 8]);
    body.extend_from_slice(&0i32.to_be_bytes());
    body.extend_from_slice(&(text.len() as i32).to_be_bytes());
    body.extend_from_slice(text.as_bytes());
    body.extend_from_slice(&(props.len() as i16).to_be_bytes());
    body.extend_from_slice(props.as_bytes());
    let r = c.invoke(
        RemotingCommand::request(request::SEND_BATCH_MESSAGE)
            .with_ext("a", "p")
            .with_ext("b", BAD)
            .with_ext("c", "TBW102")
            .with_ext("d", 4)
            .with_ext("e", 0)
            .with_ext("f", 0)
            .with_ext("g", now_ms())
            .with_ext("h", 0)
            .with_ext("m", true)
            .with_body(body),
    );
    assert_eq!(
        r.code,
        response::MESSAGE_ILLEGAL,
        "a batch with a timer message: {:?}",
        r.remark
    );
    std::thread::sleep(Duration::from_millis(2_500));
    assert_eq!(
        total_max_offset(port, BAD, QUEUES),
        1,
        "the batch was stored"
    );
}

/// One broker with `extra_props`, one plain message and the timer messages
/// `plan` gives (key, property; from the time the broker is up) sent to `topic`, each collected and checked
/// against its due time with `precision_ms`; the broker, client and poller
/// stay up for the caller's further checks.
struct PlanRun {
    _tmp: tempfile::TempDir,
    _broker: Proc,
    c: Client,
    p: Poller,
    sent: Vec<Sent>,
}

fn run_plan(
    topic: &str,
    extra_props: &str,
    plan: impl FnOnce(i64) -> Vec<(&'static str, (&'static str, String))>,
    precision_ms: i64,
    settle: Duration,
) -> PlanRun {
    let (tmp, dir) = temp_dir();
    let props = broker_props(&dir.join("store"), extra_props);
    let (broker, port) = start_broker(&dir, &props, None);
    let mut c = Client::connect(port);
    let r = c.send_v2(topic, 0, b"plain", Some("plain"), Some("plain"));
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let sent: Vec<Sent> = plan(now_ms())
        .into_iter()
        .enumerate()
        .map(|(i, (key, timer))| send_timer(&mut c, topic, i as i32 % QUEUES, key, timer))
        .collect();
    let mut p = Poller::new(port, topic);
    let last_due = sent.iter().map(|s| s.due_hi).max().unwrap();
    let wait = Duration::from_millis((last_due - now_ms()).max(0) as u64) + settle;
    let mut got = collect(&mut p, &sent, 1, Instant::now() + wait);
    assert_eq!(got.remove("plain").map(|v| v.len()), Some(1));
    check_deliveries(&sent, &got, topic, precision_ms);
    PlanRun {
        _tmp: tmp,
        _broker: broker,
        c,
        p,
        sent,
    }
}

/// With `timerRollWindowSlots=2`, timers due more than 2 s ahead are
/// written again on the timer topic every 2 s ("rolled") until they are
/// within the window; each still arrives once, on time, with its properties.
#[test]
fn rolled_timer_messages_arrive_on_time() {
    const TOPIC: &str = "TimerRolled";
    let plan = |now: i64| -> Vec<(&'static str, (&'static str, String))> {
        vec![
            ("r-sec-1", ("TIMER_DELAY_SEC", "1".into())),
            ("r-ms-2500", ("TIMER_DELAY_MS", "2500".into())),
            ("r-sec-5", ("TIMER_DELAY_SEC", "5".into())),
            (
                "r-deliver-6.6s",
                ("TIMER_DELIVER_MS", (now + 6_600).to_string()),
            ),
            ("r-ms-9050", ("TIMER_DELAY_MS", "9050".into())),
            (
                "r-deliver-12.2s",
                ("TIMER_DELIVER_MS", (now + 12_200).to_string()),
            ),
        ]
    };
    let mut run = run_plan(
        TOPIC,
        "timerRollWindowSlots=2\n",
        plan,
        PRECISION_MS,
        Duration::from_secs(15),
    );
    std::thread::sleep(Duration::from_millis(1_500));
    assert!(
        run.p.poll().is_empty(),
        "a rolled timer message was delivered again"
    );
    // They were rolled: the timer topic holds more records than messages.
    let r = run.c.invoke(Client::offset_req(
        request::GET_MAX_OFFSET,
        "rmq_sys_wheel_timer",
        0,
    ));
    let records = r.ext_fields.get_i64("offset").unwrap();
    eprintln!(
        "rolled: {records} records on the timer topic for {} messages",
        run.sent.len()
    );
    assert!(
        records > run.sent.len() as i64 + 3,
        "timers due up to 12 s ahead with a 2 s window were rolled: {records} records"
    );
}

/// `timerPrecisionMs=100`: due times are rounded up to 100 ms, so each
/// arrives no earlier than due and at most 100 ms plus 1 s after.
#[test]
fn fine_precision_timer_messages_arrive_on_time() {
    const TOPIC: &str = "TimerFine";
    const P: i64 = 100;
    let plan = |now: i64| -> Vec<(&'static str, (&'static str, String))> {
        vec![
            ("f-ms-250", ("TIMER_DELAY_MS", "250".into())),
            ("f-ms-1234", ("TIMER_DELAY_MS", "1234".into())),
            ("f-sec-2", ("TIMER_DELAY_SEC", "2".into())),
            (
                "f-deliver-2.71s",
                ("TIMER_DELIVER_MS", (now + 2_710).to_string()),
            ),
            ("f-ms-3999", ("TIMER_DELAY_MS", "3999".into())),
        ]
    };
    run_plan(
        TOPIC,
        "timerPrecisionMs=100\n",
        plan,
        P,
        Duration::from_secs(10),
    );
}

/// `timerWheelEnable=false`: a timer message that would wait is refused
/// (MESSAGE_ILLEGAL, the remark names the setting); one due in the past and
/// plain messages are stored.
#[test]
fn timer_wheel_disabled_refuses_waiting_timers() {
    const TOPIC: &str = "TimerOff";
    let (_tmp, dir) = temp_dir();
    let props = broker_props(&dir.join("store"), "timerWheelEnable=false\n");
    let (_broker, port) = start_broker(&dir, &props, None);
    let mut c = Client::connect(port);
    let r = c.send_v2(TOPIC, 0, b"plain", Some("plain"), Some("plain"));
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    for (i, (k, v)) in [
        ("TIMER_DELAY_SEC", "2".to_string()),
        ("TIMER_DELAY_MS", "1500".to_string()),
        ("TIMER_DELIVER_MS", (now_ms() + 3_000).to_string()),
    ]
    .iter()
    .enumerate()
    {
        let remark = refused(&mut c, TOPIC, &format!("off-{i}"), (k, v));
        assert!(
            remark.contains("timer message illegal") && remark.contains("timerWheelEnable"),
            "{k}={v}: {remark:?}"
        );
    }
    let past = send_timer(
        &mut c,
        TOPIC,
        1,
        "off-past",
        ("TIMER_DELIVER_MS", (now_ms() - 5_000).to_string()),
    );
    let mut p = Poller::new(port, TOPIC);
    let got = wait_for(Duration::from_secs(10), || {
        let m = p.poll();
        (!m.is_empty()).then_some(m)
    });
    let mut bodies: Vec<Vec<u8>> = got.into_iter().flatten().map(|(m, _)| m.body).collect();
    std::thread::sleep(Duration::from_millis(3_500));
    bodies.extend(p.poll().into_iter().map(|(m, _)| m.body));
    bodies.sort();
    let mut want = vec![b"plain".to_vec(), past.body];
    want.sort();
    assert_eq!(bodies, want, "only the plain message and the past-due one");
}
