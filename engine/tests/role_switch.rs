//! A live master <-> slave role switch (`MessageStore::change_role`): a
//! demoted master refuses puts (none appended after the switch), may be
//! truncated and follow a new master by raw appends; a promoted slave takes
//! puts that continue its queues, and its delayed and timer deliveries start
//! from disk, each message delivered exactly once.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferromq_engine::message::keys;
use ferromq_engine::{
    BrokerRole, Error, GetStatus, Message, MessageFilter, MessageStore, PutResult, StoreConfig,
};

const TOPICS: [&str; 2] = ["RoleA", "RoleB"];
const QUEUES: u32 = 2;
const DELAY_TOPIC: &str = "RoleDelayed";
const TIMER_TOPIC: &str = "RoleTimer";

fn config(dir: &Path, role: BrokerRole) -> StoreConfig {
    let mut cfg = common::small_config(dir);
    // Live truncation works on the files; the pooled case has its own test.
    cfg.transient_store_pool_enable = false;
    cfg.broker_role = role;
    cfg.message_delay_level = "1s 2s 3s".into();
    cfg.timer_precision_ms = 100;
    cfg.mapped_file_size_timer_log = 4096;
    cfg
}

fn open(dir: &Path, role: BrokerRole) -> MessageStore {
    MessageStore::open(config(dir, role)).unwrap()
}

/// One acknowledged put.
#[derive(Debug, Clone)]
struct Put {
    topic: &'static str,
    queue_id: u32,
    body: Vec<u8>,
    r: PutResult,
}

fn put_one(store: &MessageStore, tag: &str, i: usize) -> Result<Put, Error> {
    let topic = TOPICS[i % TOPICS.len()];
    let queue_id = (i / TOPICS.len()) as u32 % QUEUES;
    let body = format!("{tag}-{i}-{}", "x".repeat(50 + (i * 31) % 400)).into_bytes();
    store
        .put_message(&Message::new(topic, body.clone()).with_queue_id(queue_id))
        .map(|r| Put {
            topic,
            queue_id,
            body,
            r,
        })
}

fn fill(store: &MessageStore, tag: &str, n: usize) -> Vec<Put> {
    (0..n).map(|i| put_one(store, tag, i).unwrap()).collect()
}

/// Wait (bounded) until every put is dispatched, then check each reads back
/// at its queue offset with its body and commitlog offset.
fn check_readable(store: &MessageStore, puts: &[Put]) {
    let mut want: BTreeMap<(&str, u32), u64> = BTreeMap::new();
    for p in puts {
        let e = want.entry((p.topic, p.queue_id)).or_default();
        *e = (*e).max(p.r.queue_offset + 1);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while want
        .iter()
        .any(|((t, q), n)| store.max_offset_in_queue(t, *q) < *n)
    {
        assert!(Instant::now() < deadline, "dispatch did not catch up");
        std::thread::sleep(Duration::from_millis(5));
    }
    for p in puts {
        let got = store
            .get_message(
                "g",
                p.topic,
                p.queue_id,
                p.r.queue_offset,
                1,
                &MessageFilter::All,
            )
            .unwrap();
        assert_eq!(got.status, GetStatus::Found, "{p:?}");
        let m = got.messages[0].decode().unwrap();
        assert_eq!(m.body, p.body, "{p:?}");
        assert_eq!(m.commit_log_offset, p.r.commit_log_offset, "{p:?}");
    }
}

/// Each queue's offsets are 0, 1, 2, ... over `puts` (in put order).
fn check_consecutive(puts: &[Put]) {
    let mut next: BTreeMap<(&str, u32), u64> = BTreeMap::new();
    for p in puts {
        let want = next.entry((p.topic, p.queue_id)).or_insert(0);
        assert_eq!(p.r.queue_offset, *want, "{p:?}");
        *want += 1;
    }
}

/// Raw-append `from`'s log bytes in `[start, end)` to `to` (the HA stream).
fn follow(from: &MessageStore, to: &MessageStore, start: u64, end: u64) {
    let mut at = start;
    while at < end {
        let chunk = from
            .read_commit_log(at, 8192.min((end - at) as usize))
            .unwrap();
        to.append_commit_log(at, chunk.as_slice()).unwrap();
        at += chunk.as_slice().len() as u64;
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else if e.file_name() != "lock" {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

fn is_wrong_role<T: std::fmt::Debug>(r: Result<T, Error>) -> bool {
    matches!(r, Err(Error::WrongRole(_)))
}

/// Bodies on queue 0 of `topic`.
fn bodies(store: &MessageStore, topic: &str) -> Vec<String> {
    let r = store
        .get_message("g", topic, 0, 0, 64, &MessageFilter::All)
        .unwrap();
    r.messages
        .iter()
        .map(|m| String::from_utf8(m.decode().unwrap().body).unwrap())
        .collect()
}

/// Wait (bounded) until queue 0 of `topic` has `n` messages.
fn wait_for(store: &MessageStore, topic: &str, n: u64, limit: Duration) {
    let until = Instant::now() + limit;
    while store.max_offset_in_queue(topic, 0) < n {
        assert!(
            Instant::now() < until,
            "{topic}: {} of {n} delivered",
            store.max_offset_in_queue(topic, 0)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn delayed(body: &str, level: u32) -> Message {
    Message::new(DELAY_TOPIC, body.as_bytes().to_vec())
        .with_property(keys::DELAY, level.to_string())
}

fn timer(body: &str, delay_ms: i64) -> Message {
    Message::new(TIMER_TOPIC, body.as_bytes().to_vec())
        .with_property(keys::TIMER_DELAY_MS, delay_ms.to_string())
}

/// (a) A master puts, is demoted (puts refused), truncated back to where its
/// history and a new master's agree, follows the new master by raw appends,
/// and is promoted: its new puts continue every queue after the appended
/// records, and everything reads back.
#[test]
fn demote_truncate_follow_promote() {
    let a_dir = tempfile::tempdir().unwrap();
    let b_dir = tempfile::tempdir().unwrap();
    let a = open(a_dir.path(), BrokerRole::AsyncMaster);
    let common_puts = fill(&a, "common", 240);
    a.shutdown().unwrap();
    drop(a);
    copy_dir(a_dir.path(), b_dir.path());
    let a = open(a_dir.path(), BrokerRole::SyncMaster);
    let b = open(b_dir.path(), BrokerRole::AsyncMaster);
    let cut = a.commit_log_max_offset();
    assert_eq!(b.commit_log_max_offset(), cut);
    // Diverging histories: `a` puts what the new master `b` never gets.
    let lost = fill(&a, "lost", 150);
    assert!(lost.iter().all(|p| p.r.commit_log_offset >= cut));
    let mut new = fill(&b, "new", 200);

    // A master refuses raw appends and truncation.
    assert_eq!(a.role(), BrokerRole::SyncMaster);
    assert!(is_wrong_role(
        a.append_commit_log(a.commit_log_max_offset(), b"x")
    ));
    assert!(is_wrong_role(a.truncate_commit_log(cut)));

    assert_eq!(
        a.change_role(BrokerRole::Slave).unwrap(),
        BrokerRole::SyncMaster
    );
    assert_eq!(a.role(), BrokerRole::Slave);
    assert_eq!(a.current_config().broker_role, BrokerRole::Slave);
    assert_eq!(a.config().broker_role, BrokerRole::SyncMaster);
    // The same role again: nothing happens.
    assert_eq!(a.change_role(BrokerRole::Slave).unwrap(), BrokerRole::Slave);
    assert!(is_wrong_role(put_one(&a, "refused", 0)));
    assert!(is_wrong_role(a.put_message(&delayed("refused", 1))));
    assert!(is_wrong_role(a.put_message(&timer("refused", 500))));
    assert!(is_wrong_role(
        a.put_messages(&[Message::new(TOPICS[0], b"batch".to_vec())])
    ));

    let report = a.truncate_commit_log(cut).unwrap();
    assert_eq!(report.consume_queue_units_removed, lost.len() as u64);
    assert_eq!(a.commit_log_max_offset(), cut);
    follow(&b, &a, cut, b.commit_log_max_offset());
    assert_eq!(a.commit_log_max_offset(), b.commit_log_max_offset());
    b.shutdown().unwrap();

    assert_eq!(
        a.change_role(BrokerRole::AsyncMaster).unwrap(),
        BrokerRole::Slave
    );
    assert!(is_wrong_role(
        a.append_commit_log(a.commit_log_max_offset(), b"x")
    ));
    assert!(is_wrong_role(a.truncate_commit_log(cut)));
    let more = fill(&a, "more", 180);
    assert_eq!(
        more[0].r.commit_log_offset,
        new.last()
            .map(|p| p.r.commit_log_offset + u64::from(p.r.wrote_bytes))
            .unwrap()
    );
    let mut all = common_puts.clone();
    all.append(&mut new);
    all.extend(more.iter().cloned());
    check_consecutive(&all);
    check_readable(&a, &all);
    a.shutdown().unwrap();
    drop(a);
    // The same after a reopen.
    let a = open(a_dir.path(), BrokerRole::AsyncMaster);
    check_readable(&a, &all);
    let after = put_one(&a, "after", 0).unwrap();
    let before = all
        .iter()
        .filter(|p| p.topic == after.topic && p.queue_id == after.queue_id)
        .count() as u64;
    assert_eq!(after.r.queue_offset, before);
    a.shutdown().unwrap();
}

/// A demoted master whose diverging suffix held timer and delayed messages
/// (the timer had enqueued them, one delayed message was delivered) is
/// truncated, follows the new master, whose own timer and delayed messages
/// are not yet due, and is promoted: it delivers the new master's messages,
/// once, and none of its cut ones.
#[test]
fn timer_and_schedule_follow_a_truncation() {
    let a_dir = tempfile::tempdir().unwrap();
    let b_dir = tempfile::tempdir().unwrap();
    let a = open(a_dir.path(), BrokerRole::AsyncMaster);
    a.put_message(&timer("common-timer", 100)).unwrap();
    wait_for(&a, TIMER_TOPIC, 1, Duration::from_secs(5));
    a.shutdown().unwrap();
    drop(a);
    copy_dir(a_dir.path(), b_dir.path());
    let a = open(a_dir.path(), BrokerRole::AsyncMaster);
    let b = open(b_dir.path(), BrokerRole::AsyncMaster);
    let cut = a.commit_log_max_offset();
    // A's suffix, lost at the failover.
    a.put_message(&delayed("a-lost-delivered", 2)).unwrap();
    a.put_message(&timer("a-lost-timer", 4000)).unwrap();
    a.put_message(&delayed("a-lost-delay", 3)).unwrap();
    wait_for(&a, DELAY_TOPIC, 1, Duration::from_secs(5));
    // B's suffix: not due before A follows it and B stops.
    b.put_message(&timer("b-timer", 2500)).unwrap();
    b.put_message(&delayed("b-delay", 3)).unwrap();
    b.put_message(&delayed("b-delay-2s", 2)).unwrap();
    a.change_role(BrokerRole::Slave).unwrap();
    a.truncate_commit_log(cut).unwrap();
    follow(&b, &a, cut, b.commit_log_max_offset());
    b.shutdown().unwrap();
    a.change_role(BrokerRole::AsyncMaster).unwrap();
    wait_for(&a, TIMER_TOPIC, 2, Duration::from_secs(6));
    wait_for(&a, DELAY_TOPIC, 2, Duration::from_secs(6));
    // Past every due time of A's cut messages too.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(bodies(&a, TIMER_TOPIC), ["common-timer", "b-timer"]);
    assert_eq!(bodies(&a, DELAY_TOPIC), ["b-delay-2s", "b-delay"]);
    a.shutdown().unwrap();
}

/// (b) Puts from several threads racing with a demotion: every put that
/// succeeded lies below the log's end when the switch returned and reads
/// back; every other got WrongRole; the log does not move after.
#[test]
fn puts_racing_with_demotion() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), BrokerRole::AsyncMaster);
    cfg.mapped_file_size_commit_log = 256 * 1024;
    let store = Arc::new(MessageStore::open(cfg).unwrap());
    let switched = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let store = Arc::clone(&store);
            let switched = Arc::clone(&switched);
            std::thread::spawn(move || {
                let mut ok = Vec::new();
                let mut refused = 0usize;
                // Bounded: at most 20 000 puts, and 50 refused ones.
                for i in 0..20_000 {
                    match put_one(&store, &format!("t{t}"), i * 4 + t) {
                        Ok(p) => ok.push(p),
                        Err(Error::WrongRole(_)) => {
                            refused += 1;
                            if refused >= 50 {
                                break;
                            }
                        }
                        Err(e) => panic!("unexpected error {e:?}"),
                    }
                    if switched.load(Ordering::Acquire) && refused == 0 && i % 64 == 0 {
                        std::thread::yield_now();
                    }
                }
                (ok, refused)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(60));
    let t = Instant::now();
    store.change_role(BrokerRole::Slave).unwrap();
    let demote = t.elapsed();
    let end = store.commit_log_max_offset();
    switched.store(true, Ordering::Release);
    let mut ok = Vec::new();
    let mut refused = 0;
    for t in threads {
        let (o, r) = t.join().unwrap();
        ok.extend(o);
        refused += r;
    }
    assert!(!ok.is_empty(), "no put before the switch");
    assert!(refused > 0, "no put after the switch");
    for p in &ok {
        assert!(
            p.r.commit_log_offset + u64::from(p.r.wrote_bytes) <= end,
            "{p:?} appended after the switch (log end {end})"
        );
    }
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        store.commit_log_max_offset(),
        end,
        "the log moved after the switch"
    );
    check_readable(&store, &ok);
    // Queue offsets: no gap, none twice.
    let mut per_queue: BTreeMap<(&str, u32), BTreeSet<u64>> = BTreeMap::new();
    for p in &ok {
        assert!(per_queue
            .entry((p.topic, p.queue_id))
            .or_default()
            .insert(p.r.queue_offset));
    }
    for set in per_queue.values() {
        assert_eq!(*set.iter().next_back().unwrap() + 1, set.len() as u64);
    }
    let t = Instant::now();
    store.change_role(BrokerRole::AsyncMaster).unwrap();
    let promote = t.elapsed();
    let next = put_one(&store, "after", 0).unwrap();
    assert_eq!(next.r.commit_log_offset, end);
    println!(
        "{} puts before the switch, {refused} refused after; demotion under 4 putting \
         threads {demote:?}, promotion {promote:?}",
        ok.len()
    );
    store.shutdown().unwrap();
}

/// (c) Delayed and timer messages put while master, the store demoted before
/// they are due: nothing delivered while a slave; promoted, each delivered
/// exactly once (also those delivered before the demotion stay delivered once).
#[test]
fn deliveries_pause_while_slave_and_resume_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), BrokerRole::AsyncMaster);
    store.put_message(&delayed("d1", 1)).unwrap();
    store.put_message(&timer("t1", 200)).unwrap();
    wait_for(&store, DELAY_TOPIC, 1, Duration::from_secs(5));
    wait_for(&store, TIMER_TOPIC, 1, Duration::from_secs(5));
    store.put_message(&delayed("d2", 1)).unwrap();
    store.put_message(&timer("t2", 600)).unwrap();
    let demoted_at = Instant::now();
    store.change_role(BrokerRole::Slave).unwrap();
    assert!(
        demoted_at.elapsed() < Duration::from_secs(2),
        "the pause was slow"
    );
    // Past both due times (1 s, 0.6 s), plus a second.
    std::thread::sleep(Duration::from_millis(1800));
    assert_eq!(bodies(&store, DELAY_TOPIC), ["d1"]);
    assert_eq!(bodies(&store, TIMER_TOPIC), ["t1"]);
    assert!(std::fs::metadata(dir.path().join("config/delayOffset.json")).is_ok());
    store.change_role(BrokerRole::SyncMaster).unwrap();
    wait_for(&store, DELAY_TOPIC, 2, Duration::from_secs(5));
    wait_for(&store, TIMER_TOPIC, 2, Duration::from_secs(5));
    // Nothing more comes.
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(bodies(&store, DELAY_TOPIC), ["d1", "d2"]);
    assert_eq!(bodies(&store, TIMER_TOPIC), ["t1", "t2"]);
    let t = store.timer_stats();
    assert_eq!(t.pending, 0, "{t:?}");
    store.shutdown().unwrap();
}

/// (d) Demote / promote cycles: queue offsets continue, puts are refused in
/// every slave phase, and a timer and a delayed message put in the first
/// cycle are delivered exactly once in the end.
#[test]
fn demote_promote_cycles() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), BrokerRole::AsyncMaster);
    store.put_message(&timer("cycled-timer", 700)).unwrap();
    store.put_message(&delayed("cycled-delay", 2)).unwrap();
    let mut all = Vec::new();
    for cycle in 0..4 {
        for i in 0..30 {
            all.push(put_one(&store, &format!("c{cycle}"), cycle * 30 + i).unwrap());
        }
        store.change_role(BrokerRole::Slave).unwrap();
        let end = store.commit_log_max_offset();
        assert!(is_wrong_role(put_one(&store, "refused", 0)));
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(store.commit_log_max_offset(), end);
        let role = [BrokerRole::SyncMaster, BrokerRole::AsyncMaster][cycle % 2];
        store.change_role(role).unwrap();
        // Sync <-> Async is only the flag.
        store.change_role(BrokerRole::AsyncMaster).unwrap();
        assert_eq!(store.role(), BrokerRole::AsyncMaster);
    }
    check_consecutive(&all);
    check_readable(&store, &all);
    wait_for(&store, TIMER_TOPIC, 1, Duration::from_secs(5));
    wait_for(&store, DELAY_TOPIC, 1, Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(bodies(&store, TIMER_TOPIC), ["cycled-timer"]);
    assert_eq!(bodies(&store, DELAY_TOPIC), ["cycled-delay"]);
    store.shutdown().unwrap();
}

/// (e) A store opened as slave follows a master (one of the records a
/// delayed message not yet due), creates no timer or schedule files, is
/// promoted, takes puts that continue the master's queues, and its schedule
/// and timer work (the followed delayed message delivered once).
#[test]
fn opened_as_slave_then_promoted() {
    let m_dir = tempfile::tempdir().unwrap();
    let s_dir = tempfile::tempdir().unwrap();
    let m = open(m_dir.path(), BrokerRole::AsyncMaster);
    let mut puts = fill(&m, "m", 120);
    m.put_message(&delayed("followed", 2)).unwrap();
    let end = m.commit_log_max_offset();

    let s = open(s_dir.path(), BrokerRole::Slave);
    assert_eq!(s.role(), BrokerRole::Slave);
    follow(&m, &s, 0, end);
    m.shutdown().unwrap();
    assert!(is_wrong_role(put_one(&s, "refused", 0)));
    std::thread::sleep(Duration::from_millis(200));
    let root = s_dir.path();
    assert!(!root.join("timerlog").exists(), "a slave made a timer log");
    assert!(!root.join("config/timercheck").exists());
    assert!(!root.join("config/delayOffset.json").exists());

    s.change_role(BrokerRole::AsyncMaster).unwrap();
    let more = fill(&s, "s", 60);
    puts.extend(more);
    check_consecutive(&puts);
    check_readable(&s, &puts);
    s.put_message(&delayed("local-delay", 1)).unwrap();
    s.put_message(&timer("local-timer", 300)).unwrap();
    wait_for(&s, TIMER_TOPIC, 1, Duration::from_secs(5));
    wait_for(&s, DELAY_TOPIC, 2, Duration::from_secs(6));
    std::thread::sleep(Duration::from_millis(600));
    let mut got = bodies(&s, DELAY_TOPIC);
    got.sort();
    assert_eq!(got, ["followed", "local-delay"]);
    assert_eq!(bodies(&s, TIMER_TOPIC), ["local-timer"]);
    assert!(root.join("timerlog").exists());
    s.shutdown().unwrap();
}

/// A slave never promoted: open, follow, shut down; no timer or schedule
/// files, and the shutdown is prompt (the idle services join at once).
#[test]
fn a_slave_never_promoted_makes_no_master_files() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), BrokerRole::Slave);
    std::thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    s.shutdown().unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "shutdown took {:?}",
        t.elapsed()
    );
    assert!(!dir.path().join("timerlog").exists());
    assert!(!dir.path().join("config/timercheck").exists());
    assert!(!dir.path().join("config/delayOffset.json").exists());
}

/// A master writing through the transient store pool, demoted: what the pool
/// held is in the files when the switch returns (raw reads see it), and
/// promoted again it goes on.
#[test]
fn pooled_master_demoted_and_promoted() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), BrokerRole::AsyncMaster);
    cfg.transient_store_pool_enable = true;
    cfg.transient_store_pool_size = 8;
    // Commits rarely on their own: the switch must do it.
    cfg.commit_interval_commit_log_ms = 60_000;
    cfg.commit_commit_log_least_pages = 1000;
    let store = MessageStore::open(cfg).unwrap();
    let mut puts = fill(&store, "p", 50);
    store.change_role(BrokerRole::Slave).unwrap();
    let end = store.commit_log_max_offset();
    let last = &puts.last().unwrap().r;
    assert_eq!(end, last.commit_log_offset + u64::from(last.wrote_bytes));
    let raw = store.read_commit_log(0, end as usize).unwrap();
    assert_eq!(raw.as_slice().len() as u64, end, "committed when demoted");
    store.change_role(BrokerRole::AsyncMaster).unwrap();
    // Queue offsets continue (the "q" puts reuse the same topics and queues).
    puts.extend(fill(&store, "q", 50));
    check_consecutive(&puts);
    store.flush().unwrap(); // commits the pool (its own commits are rare here)
    check_readable(&store, &puts);
    store.shutdown().unwrap();
}

/// A master writing through the transient store pool, demoted, follows a
/// master by raw appends (they go through its pool too, committed by its
/// commit service), and is promoted again.
#[test]
fn pooled_master_follows_by_raw_appends() {
    let a_dir = tempfile::tempdir().unwrap();
    let b_dir = tempfile::tempdir().unwrap();
    let mut cfg = config(a_dir.path(), BrokerRole::AsyncMaster);
    cfg.transient_store_pool_enable = true;
    cfg.transient_store_pool_size = 8;
    cfg.commit_interval_commit_log_ms = 10;
    cfg.commit_commit_log_least_pages = 0;
    let a = MessageStore::open(cfg).unwrap();
    let mut puts = fill(&a, "p", 80);
    a.flush().unwrap();
    copy_dir(a_dir.path(), b_dir.path());
    let b = open(b_dir.path(), BrokerRole::AsyncMaster);
    let cut = a.commit_log_max_offset();
    assert_eq!(b.commit_log_max_offset(), cut);
    // Indexes 80.. keep the topics and queues turning as one sequence.
    let b_puts: Vec<Put> = (80..400).map(|i| put_one(&b, "b", i).unwrap()).collect();
    a.change_role(BrokerRole::Slave).unwrap();
    follow(&b, &a, cut, b.commit_log_max_offset());
    b.shutdown().unwrap();
    puts.extend(b_puts);
    check_readable(&a, &puts);
    a.change_role(BrokerRole::SyncMaster).unwrap();
    puts.extend((400..450).map(|i| put_one(&a, "a", i).unwrap()));
    check_consecutive(&puts);
    check_readable(&a, &puts);
    a.shutdown().unwrap();
}

/// A slave whose log ends inside a record (its master died mid-stream) is
/// cut at the last whole record when promoted, and its puts follow it.
#[test]
fn promotion_cuts_a_partial_record_tail() {
    let m_dir = tempfile::tempdir().unwrap();
    let s_dir = tempfile::tempdir().unwrap();
    let m = open(m_dir.path(), BrokerRole::AsyncMaster);
    let mut puts = fill(&m, "m", 40);
    let whole = m.commit_log_max_offset();
    let last = put_one(&m, "m", 40).unwrap();
    let end = m.commit_log_max_offset();
    assert_eq!(last.r.commit_log_offset, whole);
    let s = open(s_dir.path(), BrokerRole::Slave);
    // The whole log but the last record's second half.
    follow(&m, &s, 0, whole + (end - whole) / 2);
    m.shutdown().unwrap();
    assert!(s.commit_log_max_offset() > whole);
    s.change_role(BrokerRole::SyncMaster).unwrap();
    assert_eq!(
        s.commit_log_max_offset(),
        whole,
        "the partial record is cut"
    );
    s.change_role(BrokerRole::AsyncMaster).unwrap();
    let more: Vec<Put> = (41..61).map(|i| put_one(&s, "s", i).unwrap()).collect();
    assert_eq!(more[0].r.commit_log_offset, whole);
    puts.extend(more);
    check_readable(&s, &puts);
    s.shutdown().unwrap();
}
