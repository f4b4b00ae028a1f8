//! A record whose body is damaged mid-queue (bytes flipped in the commitlog
//! file under a running broker, after flush) is skipped loudly, not forever: a
//! consumer pulling from 0 gets every other message and a `nextBeginOffset`
//! past the damaged one; the broker logs it once however often it is pulled,
//! counts it in its runtime figures and lists it, and `ferromq-admin
//! damagedRecords` shows it.

mod common;
mod damage_support;

use std::os::unix::fs::FileExt;
use std::process::Command;
use std::time::Duration;

use common::*;
use damage_support::{pull_to_end, start_broker_logged};
use ferromq_engine::message::decode_offset_msg_id;
use ferromq_server::remoting::response;

const TOPIC: &str = "DamagedBody";
const N: usize = 60;
const VICTIM: usize = 37;

fn body(i: usize) -> Vec<u8> {
    format!("damaged-body-test-{i:04}-{}", "x".repeat(300)).into_bytes()
}

#[test]
fn a_damaged_record_is_skipped_once_logged_counted_and_listed() {
    let (_tmp, dir) = temp_dir();
    let store = dir.join("store");
    let log = dir.join("broker.log");
    let (mut broker, port) = start_broker_logged(&dir, &broker_props(&store, ""), &log);
    let mut c = Client::connect(port);
    let mut offsets = Vec::new();
    for i in 0..N {
        let r = c.send_v2(TOPIC, 0, &body(i), None, None);
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
        let id = r.ext_fields.get_str("msgId").unwrap().to_string();
        offsets.push(decode_offset_msg_id(&id).unwrap().1);
    }
    // Flushed: the bytes are in the file (ASYNC_FLUSH flushes every 500 ms).
    let end = offsets[N - 1];
    wait_for(Duration::from_secs(20), || {
        let info = runtime_info(port);
        let flushed: u64 = info["commitLogFlushedOffset"].parse().unwrap();
        (flushed > end).then_some(())
    })
    .expect("commitlog flushed");
    // Flip a byte in the middle of the victim's body through the file: the
    // broker's mapping shares the page.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(store.join("commitlog/00000000000000000000"))
        .unwrap();
    let mut rec = vec![0u8; 1024];
    file.read_at(&mut rec, offsets[VICTIM]).unwrap();
    let want = body(VICTIM);
    let at = rec.windows(want.len()).position(|w| w == want).unwrap() + 100;
    let pos = offsets[VICTIM] + at as u64;
    let mut b = [0u8; 1];
    file.read_exact_at(&mut b, pos).unwrap();
    file.write_all_at(&[b[0] ^ 0x08], pos).unwrap();

    // A consumer from 0 gets every other message and moves past the damaged one.
    let got = pull_to_end(&mut c, TOPIC, 0, 0, 50);
    let offs: Vec<u64> = got.messages.iter().map(|(q, _)| *q).collect();
    let expect: Vec<u64> = (0..N as u64).filter(|q| *q != VICTIM as u64).collect();
    assert_eq!(offs, expect);
    for (q, b) in &got.messages {
        assert!(*b == body(*q as usize), "body of {q}");
    }
    // A pull starting at the damaged record answers with the next one and an
    // offset past it.
    for _ in 0..3 {
        let r = c.pull("other-group", TOPIC, 0, VICTIM as u64, 1);
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
        assert_eq!(records(&r.body)[0].queue_offset, VICTIM as u64 + 1);
        let next: u64 = r
            .ext_fields
            .get_str("nextBeginOffset")
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(next, VICTIM as u64 + 2);
    }

    let info = runtime_info(port);
    assert_eq!(info["damagedRecordCount"], "1");
    let listed: serde_json::Value = serde_json::from_str(&info["damagedRecords"]).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["topic"], TOPIC);
    assert_eq!(listed[0]["queueId"], 0);
    assert_eq!(listed[0]["queueOffset"], VICTIM as u64);
    assert_eq!(listed[0]["commitLogOffset"], offsets[VICTIM]);

    let o = Command::new(env!("CARGO_BIN_EXE_ferromq-admin"))
        .args(["damagedRecords", "-b", &format!("127.0.0.1:{port}")])
        .output()
        .expect("run ferromq-admin");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("1 damaged records"), "{out}");
    let row = out
        .lines()
        .find(|l| l.contains(TOPIC))
        .unwrap_or_else(|| panic!("no row for the topic: {out}"));
    for want in [
        VICTIM.to_string(),
        offsets[VICTIM].to_string(),
        "CRC".to_string(),
    ] {
        assert!(row.contains(&want), "row lacks {want}: {row}");
    }

    drop(c);
    assert!(broker.terminate(Duration::from_secs(30)).success());
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<_> = text
        .lines()
        .filter(|l| l.contains("damaged record skipped"))
        .collect();
    assert_eq!(lines.len(), 1, "logged once: {text}");
    assert!(
        lines[0].contains(&format!("commit_log_offset={}", offsets[VICTIM])),
        "{}",
        lines[0]
    );
}

/// Damage in the newest commitlog file stops the broker at start with an error
/// that names `checkCRCOnRecover=false`; with it, the broker starts and pulls
/// skip the damaged record.
#[test]
fn damage_in_the_newest_file_names_check_crc_on_recover_which_starts_the_broker() {
    let (_tmp, dir) = temp_dir();
    let store = dir.join("store");
    let props = broker_props(&store, "");
    let (mut broker, port) = start_broker(&dir, &props, None);
    let mut c = Client::connect(port);
    let mut offsets = Vec::new();
    for i in 0..N {
        let r = c.send_v2(TOPIC, 0, &body(i), None, None);
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
        let id = r.ext_fields.get_str("msgId").unwrap().to_string();
        offsets.push(decode_offset_msg_id(&id).unwrap().1);
    }
    drop(c);
    assert!(broker.terminate(Duration::from_secs(30)).success());
    let path = store.join("commitlog/00000000000000000000");
    let mut bytes = std::fs::read(&path).unwrap();
    let want = body(VICTIM);
    let from = offsets[VICTIM] as usize;
    let at = from
        + bytes[from..]
            .windows(want.len())
            .position(|w| w == want)
            .unwrap()
        + 50;
    bytes[at] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();

    // The broker refuses to start, naming the option and its cost.
    let cfg = dir.join("broker.properties");
    std::fs::write(&cfg, &props).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferromq-broker"))
        .arg("-c")
        .arg(&cfg)
        .arg("--bind-address")
        .arg("127.0.0.1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status =
        wait_for(Duration::from_secs(30), || child.try_wait().unwrap()).unwrap_or_else(|| {
            let _ = child.kill();
            panic!("the broker did not exit on a damaged newest file")
        });
    assert!(!status.success());
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(err.contains("checkCRCOnRecover=false"), "{err}");
    assert!(err.contains("lost"), "{err}");

    // With the option it starts; a consumer gets every other message.
    let props = broker_props(&store, "checkCRCOnRecover=false\n");
    let (mut broker, port) = start_broker(&dir, &props, None);
    let mut c = Client::connect(port);
    let got = pull_to_end(&mut c, TOPIC, 0, 0, 50);
    let offs: Vec<u64> = got.messages.iter().map(|(q, _)| *q).collect();
    let expect: Vec<u64> = (0..N as u64).filter(|q| *q != VICTIM as u64).collect();
    assert_eq!(offs, expect);
    assert_eq!(runtime_info(port)["damagedRecordCount"], "1");
    drop(c);
    assert!(broker.terminate(Duration::from_secs(30)).success());
}
