use super::log::{TimerLog, Unit, UNIT};
use std::os::unix::fs::FileExt;
use super::*;

fn msg() -> Message {
    Message::new("Real", b"b".to_vec()).with_queue_id(2)
}

#[test]
fn due_time_from_each_property() {
    let now = 1_000_500;
    let p = 1000;
    let max = 60_000;
    let d = |m: Message| due_time(&m, now, p, max);
    assert_eq!(d(msg()).unwrap(), None);
    // Rounded up to the precision: never early.
    assert_eq!(
        d(msg().with_property(keys::TIMER_DELAY_SEC, "2")).unwrap(),
        Some(1_003_000)
    );
    assert_eq!(
        d(msg().with_property(keys::TIMER_DELAY_MS, "1500")).unwrap(),
        Some(1_002_000)
    );
    assert_eq!(
        d(msg().with_property(keys::TIMER_DELIVER_MS, "1005000")).unwrap(),
        Some(1_005_000)
    );
    // In the past or now: delivered at once.
    assert_eq!(
        d(msg().with_property(keys::TIMER_DELIVER_MS, "5")).unwrap(),
        None
    );
    assert_eq!(
        d(msg().with_property(keys::TIMER_DELAY_SEC, "-3")).unwrap(),
        None
    );
    // Not a number, or too far: refused, saying why.
    let e = d(msg().with_property(keys::TIMER_DELAY_SEC, "abc")).unwrap_err();
    assert!(
        matches!(&e, Error::IllegalMessage(m) if m.contains("timer message illegal") && m.contains("TIMER_DELAY_SEC")),
        "{e}"
    );
    let e = d(msg().with_property(keys::TIMER_DELAY_SEC, "61")).unwrap_err();
    assert!(
        matches!(&e, Error::IllegalMessage(m) if m.contains("max delay 60000 ms")),
        "{e}"
    );
    assert!(d(msg().with_property(keys::TIMER_DELAY_SEC, "60")).is_ok());
    // Overflow saturates, then is refused as too far.
    assert!(d(msg().with_property(keys::TIMER_DELAY_SEC, i64::MAX.to_string())).is_err());
    // A delivered one (TIMER_OUT_MS) or a half message is not held again.
    assert_eq!(
        d(msg()
            .with_property(keys::TIMER_DELAY_SEC, "2")
            .with_property(keys::TIMER_OUT_MS, "1"))
        .unwrap(),
        None
    );
    let mut half = msg().with_property(keys::TIMER_DELAY_SEC, "2");
    half.sys_flag = sys_flag::TRANSACTION_PREPARED_TYPE;
    assert_eq!(d(half).unwrap(), None);
}

#[test]
fn waiting_and_delivered_round_trip() {
    let m = msg().with_tags("T").with_property("k", "v");
    let w = to_waiting(&m, 42_000);
    assert_eq!((w.topic.as_str(), w.queue_id), (TIMER_TOPIC, 0));
    let mut buf = Vec::new();
    crate::message::encode_message(&w, &"127.0.0.1:1".parse().unwrap(), &mut buf);
    let ext = crate::message::decode_record(&buf).unwrap();
    let h = crate::message::parse_header(&buf).unwrap();
    assert_eq!(timer_tags_code(h.properties), Some(42_000));
    let back = to_delivered(&ext, 77).unwrap();
    assert_eq!((back.topic.as_str(), back.queue_id), ("Real", 2));
    assert_eq!(back.tags(), Some("T"));
    assert_eq!(back.properties.get("k"), Some("v"));
    assert_eq!(back.properties.get(keys::TIMER_SRC), Some("77"));
    assert_eq!(back.properties.get(keys::TIMER_OUT_MS), Some("42000"));
    assert!(back.properties.get(keys::REAL_TOPIC).is_none());
}

fn unit(i: u64, slot: i64, prev: u64) -> Unit {
    Unit {
        phys: i * 100,
        size: 90,
        slot_ms: slot,
        prev,
        cq_offset: i,
    }
}

#[test]
fn log_appends_rolls_reads_and_survives_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let file_size = (UNIT * 16) as u64;
    let mut log = TimerLog::open(dir.path(), file_size).unwrap();
    let units: Vec<Unit> = (0..40).map(|i| unit(i, 1000 * (i as i64 % 3), 0)).collect();
    log.append(&units[..7]).unwrap();
    log.append(&units[7..]).unwrap();
    assert_eq!(log.end(), 40 * UNIT as u64);
    assert_eq!(log.file_count(), 3);
    assert_eq!(log.read(13 * UNIT as u64).unwrap(), units[13]);
    assert_eq!(log.last_cq_offset(), Some(39));
    log.sync().unwrap();
    drop(log);
    // A torn last unit: the log ends before it, nothing else is lost.
    let last = dir.path().join(crate::mapped_file::file_name(32 * UNIT as u64));
    let f = std::fs::OpenOptions::new().write(true).open(&last).unwrap();
    f.write_all_at(&[0xFF; 3], (7 * UNIT + 5) as u64).unwrap();
    drop(f);
    let log = TimerLog::open(dir.path(), file_size).unwrap();
    assert_eq!(log.end(), 39 * UNIT as u64);
    let mut seen = Vec::new();
    log.for_each(|pos, u| seen.push((pos, *u))).unwrap();
    assert_eq!(seen.len(), 39);
    assert!(seen.iter().enumerate().all(|(i, (pos, u))| *pos == (i * UNIT) as u64 && *u == units[i]));
    assert!(log.read(39 * UNIT as u64).is_err());
}

#[test]
fn log_deletes_only_delivered_files_and_truncates_lost_entries() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TimerLog::open(dir.path(), (UNIT * 16) as u64).unwrap();
    let units: Vec<Unit> = (0..40).map(|i| unit(i, i as i64 * 10, 0)).collect();
    log.append(&units).unwrap();
    // Slots 0..150 delivered: file 0 (slots 0..150) goes; file 1 (160..310) stays.
    assert_eq!(log.delete_delivered(160).unwrap(), 1);
    assert_eq!(log.file_count(), 2);
    assert!(log.has_pending(390));
    assert!(!log.has_pending(400));
    assert_eq!(log.max_pending_slot(0), Some(390));
    // The last file stays even when delivered (it holds the end).
    assert_eq!(log.delete_delivered(i64::MAX).unwrap(), 1);
    assert_eq!(log.end(), 40 * UNIT as u64);
    log.truncate_where(|u| u.cq_offset >= 35).unwrap();
    assert_eq!(log.end(), 35 * UNIT as u64);
    assert_eq!(log.last_cq_offset(), Some(34));
}

#[test]
fn wheel_links_and_clears_slots() {
    let mut w = Wheel::new(8, 1000);
    assert_eq!(w.head_of(3000), None);
    w.link(3000, 40);
    w.link(3000, 80);
    assert_eq!(w.head_of(3000), Some(80));
    // The same index eight slots later is another slot.
    assert_eq!(w.head_of(11_000), None);
    // Clearing the other slot of that index leaves this one alone.
    w.clear(11_000);
    assert_eq!(w.head_of(3000), Some(80));
    w.clear(3000);
    assert_eq!(w.head_of(3000), None);
    w.clear(3000);
    assert_eq!(w.head_of(3000), None);
}

#[test]
fn round_up_to_precision() {
    assert_eq!(round_up(1000, 1000), 1000);
    assert_eq!(round_up(1001, 1000), 2000);
    assert_eq!(round_up(0, 1000), 0);
    assert_eq!(round_up(-1, 1000), 0);
}
