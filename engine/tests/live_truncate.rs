//! Live truncation of the commitlog (`MessageStore::truncate_commit_log`): a
//! slave cutting its log back to where it agrees with a new master, consume
//! queues and index following, durable across a close and a SIGKILL.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferromq_engine::{
    BrokerRole, Error, GetStatus, Message, MessageFilter, MessageStore, StoreConfig,
};

const TOPICS: [&str; 3] = ["TruncA", "TruncB", "TruncC"];
const QUEUES: u32 = 3;

/// One acknowledged put.
#[derive(Debug, Clone)]
struct Put {
    topic: &'static str,
    queue_id: u32,
    queue_offset: u64,
    commit_log_offset: u64,
    size: u64,
    key: String,
    body: Vec<u8>,
}

fn config(dir: &Path, role: BrokerRole) -> StoreConfig {
    let mut cfg = common::small_config(dir);
    // The pool is a master's write path; these stores become slaves.
    cfg.transient_store_pool_enable = false;
    cfg.broker_role = role;
    cfg
}

fn open(dir: &Path, role: BrokerRole) -> MessageStore {
    MessageStore::open(config(dir, role)).unwrap()
}

/// `n` messages over three topics of three queues, bodies of varied length
/// (several 64 KiB commitlog files, so files end with blank records).
fn fill(store: &MessageStore, tag: &str, n: usize) -> Vec<Put> {
    (0..n)
        .map(|i| {
            let topic = TOPICS[i % TOPICS.len()];
            let queue_id = (i / TOPICS.len()) as u32 % QUEUES;
            let key = format!("{tag}-key-{i}");
            let body = format!("{tag}-{i}-{}", "x".repeat(300 + (i * 37) % 700)).into_bytes();
            let r = store
                .put_message(
                    &Message::new(topic, body.clone())
                        .with_queue_id(queue_id)
                        .with_tags("T")
                        .with_keys([key.clone()]),
                )
                .unwrap();
            Put {
                topic,
                queue_id,
                queue_offset: r.queue_offset,
                commit_log_offset: r.commit_log_offset,
                size: u64::from(r.wrote_bytes),
                key,
                body,
            }
        })
        .collect()
}

/// Units per queue of the puts.
fn queue_counts(puts: &[Put]) -> BTreeMap<(&'static str, u32), u64> {
    let mut m = BTreeMap::new();
    for p in puts {
        *m.entry((p.topic, p.queue_id)).or_insert(0) += 1;
    }
    m
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

fn wait_dispatched(store: &MessageStore, counts: &BTreeMap<(&'static str, u32), u64>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while counts
        .iter()
        .any(|((t, q), n)| store.max_offset_in_queue(t, *q) < *n)
    {
        assert!(Instant::now() < deadline, "dispatch did not catch up");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn get_one(store: &MessageStore, p: &Put) -> Option<ferromq_engine::MessageExt> {
    let r = store
        .get_message(
            "g",
            p.topic,
            p.queue_id,
            p.queue_offset,
            1,
            &MessageFilter::All,
        )
        .unwrap();
    (r.status == GetStatus::Found).then(|| r.messages[0].decode().unwrap())
}

/// Every kept put is readable and intact by queue offset and by key; every
/// cut one is gone from its queue, from the log and from the index.
fn check_cut(store: &MessageStore, kept: &[Put], cut: &[Put], offset: u64) {
    assert_eq!(store.commit_log_max_offset(), offset);
    assert!(
        store.commit_log_flushed_offset() <= offset,
        "durable past the cut"
    );
    assert!(
        store.read_commit_log(offset, 4096).is_none(),
        "nothing past the cut"
    );
    for ((t, q), n) in queue_counts(kept) {
        assert_eq!(store.max_offset_in_queue(t, q), n, "{t}-{q} max offset");
    }
    for p in kept {
        let m = get_one(store, p).unwrap_or_else(|| panic!("kept {p:?} not found"));
        assert_eq!(m.commit_log_offset, p.commit_log_offset);
        assert_eq!(m.body, p.body);
    }
    for p in kept.iter().step_by(17) {
        let found = store
            .query_messages_by_key(p.topic, &p.key, 8, 0, i64::MAX)
            .unwrap();
        assert_eq!(found.len(), 1, "kept key {} by index", p.key);
    }
    for p in cut {
        assert!(get_one(store, p).is_none(), "cut {p:?} still readable");
        let r = store
            .query_message(p.topic, &p.key, 8, 0, i64::MAX)
            .unwrap();
        assert!(r.messages.is_empty(), "cut key {} still indexed", p.key);
        assert!(
            r.index_last_update_phy_offset < offset.max(1),
            "the index ends at {}, past the cut {offset}",
            r.index_last_update_phy_offset
        );
    }
    for ((t, q), _) in queue_counts(cut) {
        let max = store.max_offset_in_queue(t, q);
        let r = store
            .get_message("g", t, q, max, 1, &MessageFilter::All)
            .unwrap();
        assert_ne!(r.status, GetStatus::Found, "{t}-{q} past its max");
    }
}

#[test]
fn truncate_mid_log_then_follow_a_new_master() {
    let a_dir = tempfile::tempdir().unwrap();
    let b_dir = tempfile::tempdir().unwrap();
    let a = open(a_dir.path(), BrokerRole::AsyncMaster);
    let puts = fill(&a, "old", 600);
    a.shutdown().unwrap();
    drop(a);
    copy_dir(a_dir.path(), b_dir.path());

    let cut_at = 331;
    let offset = puts[cut_at].commit_log_offset;
    let file_size = config(a_dir.path(), BrokerRole::Slave).mapped_file_size_commit_log;
    assert_ne!(offset % file_size, 0, "a cut inside a file");
    let (kept, cut) = puts.split_at(cut_at);

    // A master refuses.
    let m = open(a_dir.path(), BrokerRole::AsyncMaster);
    assert!(matches!(
        m.truncate_commit_log(offset),
        Err(Error::WrongRole(_))
    ));
    m.shutdown().unwrap();
    drop(m);

    let a = open(a_dir.path(), BrokerRole::Slave);
    let max = a.commit_log_max_offset();
    for bad in [
        offset + 1,
        offset + 8,
        max + 1,
        puts[5].commit_log_offset + 100,
    ] {
        assert!(
            matches!(a.truncate_commit_log(bad), Err(Error::InvalidOffset(_))),
            "{bad} is not a record boundary"
        );
    }
    assert_eq!(
        a.commit_log_max_offset(),
        max,
        "a refused cut changes nothing"
    );
    let report = a.truncate_commit_log(offset).unwrap();
    assert_eq!(report.offset, offset);
    assert_eq!(report.old_max_offset, max);
    assert_eq!(report.consume_queue_units_removed, cut.len() as u64);
    assert!(report.commit_log_files_removed > 0);
    check_cut(&a, kept, cut, offset);
    // Nothing to cut at the end.
    let again = a.truncate_commit_log(offset).unwrap();
    assert_eq!(again.consume_queue_units_removed, 0);

    // The new master: the same history up to `offset`, then its own.
    let b = open(b_dir.path(), BrokerRole::Slave);
    b.truncate_commit_log(offset).unwrap();
    b.shutdown().unwrap();
    drop(b);
    let b = open(b_dir.path(), BrokerRole::AsyncMaster);
    let new = fill(&b, "new", 250);
    assert_eq!(
        new[0].commit_log_offset, offset,
        "new records start at the cut"
    );
    for p in &new {
        let before = kept
            .iter()
            .filter(|k| k.topic == p.topic && k.queue_id == p.queue_id)
            .count() as u64;
        let same_queue_new = new
            .iter()
            .take_while(|n| n.commit_log_offset < p.commit_log_offset)
            .filter(|n| n.topic == p.topic && n.queue_id == p.queue_id)
            .count() as u64;
        assert_eq!(p.queue_offset, before + same_queue_new, "{p:?}");
    }
    // Follow it: raw bytes from the cut on, as the HA stream sends them.
    let mut at = offset;
    let end = b.commit_log_max_offset();
    while at < end {
        let chunk = b.read_commit_log(at, 8192).unwrap();
        a.append_commit_log(at, chunk.as_slice()).unwrap();
        at += chunk.as_slice().len() as u64;
    }
    b.shutdown().unwrap();
    let mut all = kept.to_vec();
    all.extend(new.iter().cloned());
    wait_dispatched(&a, &queue_counts(&all));
    for p in &all {
        let m = get_one(&a, p).unwrap_or_else(|| panic!("{p:?} not found"));
        assert_eq!(m.commit_log_offset, p.commit_log_offset);
        assert_eq!(m.body, p.body);
        assert_eq!(m.queue_offset, p.queue_offset);
    }
    for p in new.iter().step_by(11) {
        let found = a
            .query_messages_by_key(p.topic, &p.key, 8, 0, i64::MAX)
            .unwrap();
        assert_eq!(found.len(), 1, "new key {}", p.key);
    }
    for p in cut.iter().step_by(7) {
        let found = a
            .query_messages_by_key(p.topic, &p.key, 8, 0, i64::MAX)
            .unwrap();
        assert!(found.is_empty(), "cut key {} found", p.key);
    }
    a.shutdown().unwrap();
    drop(a);

    // Reopen: the cut stays cut, what followed stays, nothing is rebuilt.
    let a = open(a_dir.path(), BrokerRole::Slave);
    let rep = a.recovery_report().clone();
    assert!(!rep.abnormal);
    assert!(!rep.rebuilt_from_log_start, "{rep:?}");
    assert_eq!(a.commit_log_max_offset(), end);
    for ((t, q), n) in queue_counts(&all) {
        assert_eq!(a.max_offset_in_queue(t, q), n);
    }
    for p in &all {
        let m = get_one(&a, p).unwrap_or_else(|| panic!("{p:?} lost at reopen"));
        assert_eq!(m.body, p.body);
    }
    a.shutdown().unwrap();
}

#[test]
fn truncate_at_file_ends_and_starts_then_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), BrokerRole::AsyncMaster);
    let puts = fill(&s, "f", 500);
    s.shutdown().unwrap();
    drop(s);
    let file_size = config(dir.path(), BrokerRole::Slave).mapped_file_size_commit_log;
    // The record after which a file's blank end record starts, in the 4th file.
    let blank_after = puts
        .windows(2)
        .position(|w| {
            w[1].commit_log_offset / file_size > w[0].commit_log_offset / file_size
                && w[1].commit_log_offset / file_size == 4
        })
        .unwrap();
    let blank_start = puts[blank_after].commit_log_offset + puts[blank_after].size;
    assert_ne!(blank_start % file_size, 0);
    // The first record of the 3rd file.
    let file_start_idx = puts
        .iter()
        .position(|p| p.commit_log_offset == 2 * file_size)
        .unwrap();

    let s = open(dir.path(), BrokerRole::Slave);
    // 1. Where a blank end record starts (the file is no longer full).
    s.truncate_commit_log(blank_start).unwrap();
    check_cut(
        &s,
        &puts[..=blank_after],
        &puts[blank_after + 1..],
        blank_start,
    );
    // Past the records of the file now: not a boundary any more.
    assert!(matches!(
        s.truncate_commit_log(blank_start + 8),
        Err(Error::InvalidOffset(_))
    ));
    // 2. At a file's start (the file goes; the one before ends full).
    s.truncate_commit_log(2 * file_size).unwrap();
    check_cut(
        &s,
        &puts[..file_start_idx],
        &puts[file_start_idx..],
        2 * file_size,
    );
    s.shutdown().unwrap();
    drop(s);
    let s = open(dir.path(), BrokerRole::Slave);
    assert!(!s.recovery_report().rebuilt_from_log_start);
    check_cut(
        &s,
        &puts[..file_start_idx],
        &puts[file_start_idx..],
        2 * file_size,
    );
    // 3. Everything (the first file stays, empty).
    s.truncate_commit_log(0).unwrap();
    check_cut(&s, &[], &puts, 0);
    s.shutdown().unwrap();
    drop(s);
    let s = open(dir.path(), BrokerRole::Slave);
    check_cut(&s, &[], &puts, 0);
    s.shutdown().unwrap();
}

const CHILD_DIR_ENV: &str = "FERROMQ_TRUNCATE_CHILD_DIR";
const CHILD_OFFSET_ENV: &str = "FERROMQ_TRUNCATE_CHILD_OFFSET";

/// Not a test of its own: the child process of
/// `truncation_survives_sigkill`, entered only when it sets the variables.
#[test]
fn truncate_child_entry() {
    let (Ok(dir), Ok(offset)) = (
        std::env::var(CHILD_DIR_ENV),
        std::env::var(CHILD_OFFSET_ENV),
    ) else {
        return;
    };
    let s = open(dir.as_ref(), BrokerRole::Slave);
    s.truncate_commit_log(offset.parse().unwrap()).unwrap();
    println!("TRUNCATED");
    // Wait to be killed (no shutdown, no flush by anyone but the services).
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn truncation_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), BrokerRole::AsyncMaster);
    let puts = fill(&s, "k", 600);
    s.shutdown().unwrap();
    drop(s);
    let cut_at = 257;
    let offset = puts[cut_at].commit_log_offset;
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "truncate_child_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR_ENV, dir.path())
        .env(CHILD_OFFSET_ENV, offset.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut truncated = false;
    for line in BufReader::new(stdout).lines() {
        if line.unwrap().contains("TRUNCATED") {
            truncated = true;
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL right after the truncation returned
    child.wait().unwrap();
    assert!(truncated, "the child did not truncate");

    let s = open(dir.path(), BrokerRole::Slave);
    let rep = s.recovery_report().clone();
    assert!(rep.abnormal, "a killed store recovers abnormally");
    assert!(
        !rep.rebuilt_from_log_start,
        "the checkpoint and manifests agree with the cut: {rep:?}"
    );
    check_cut(&s, &puts[..cut_at], &puts[cut_at..], offset);
    s.shutdown().unwrap();
    drop(s);
    // And once more after a clean close.
    let s = open(dir.path(), BrokerRole::Slave);
    check_cut(&s, &puts[..cut_at], &puts[cut_at..], offset);
    s.shutdown().unwrap();
}

/// Readers pulling every queue and querying keys while the log is cut, over
/// and over: no read fails, and the cut leaves no record or unit listed as
/// damaged.
#[test]
fn readers_during_truncations() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path(), BrokerRole::AsyncMaster);
    let puts = fill(&s, "r", 900);
    s.shutdown().unwrap();
    drop(s);
    let s = Arc::new(open(dir.path(), BrokerRole::Slave));
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let (s, stop) = (Arc::clone(&s), Arc::clone(&stop));
            let puts = puts.clone();
            std::thread::spawn(move || {
                let mut reads = 0u64;
                while !stop.load(Ordering::Acquire) {
                    for t in TOPICS {
                        for q in 0..QUEUES {
                            // Near the end of the queue, where the cuts are.
                            let from = s.max_offset_in_queue(t, q).saturating_sub(12);
                            let got = s
                                .get_message("g", t, q, from, 16, &MessageFilter::All)
                                .unwrap();
                            for m in &got.messages {
                                m.decode().unwrap();
                            }
                            reads += 1;
                        }
                    }
                    let p = &puts[(reads as usize * 7 + r) % puts.len()];
                    s.query_messages_by_key(p.topic, &p.key, 4, 0, i64::MAX)
                        .unwrap();
                }
                reads
            })
        })
        .collect();
    let cuts: Vec<usize> = (0..20).map(|i| 880 - 40 * i).collect();
    for &cut_at in &cuts {
        std::thread::sleep(Duration::from_millis(5));
        s.truncate_commit_log(puts[cut_at].commit_log_offset)
            .unwrap();
    }
    std::thread::sleep(Duration::from_millis(20));
    stop.store(true, Ordering::Release);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    let last = *cuts.last().unwrap();
    check_cut(
        &s,
        &puts[..last],
        &puts[last..],
        puts[last].commit_log_offset,
    );
    assert_eq!(s.stats().damaged_records, 0, "{:?}", s.damaged_records());
    s.shutdown().unwrap();
}
