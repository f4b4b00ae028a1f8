//! Timer messages across broker SIGKILLs: none lost, none doubled, none early.
//!
//! A broker with a small commit log (4 MiB files) and a small timer log
//! (`mappedFileSizeTimerLog=65536`, so it rolls files) acknowledges 10,000
//! timer messages (unique key and body each; 90 % by `TIMER_DELIVER_MS`,
//! 10 % by `TIMER_DELAY_MS`) due at +2 s .. +25 s after sending starts, in a
//! seeded random order. It is SIGKILLed while deliveries happen (about 6 s
//! after sending starts, after every send got SEND_OK), stays down while
//! some messages come due, and restarts on the same store; then the real
//! topic is read from offset 0 of every queue.
//!
//! * `timer_messages_survive_sigkill`: one kill, down for 6 s.
//! * `timer_messages_survive_two_sigkills`: killed, down 3 s, up 2.5 s
//!   (delivering), killed again, down 3 s.
//! * `timer_messages_survive_sigkill_after_timer_log_files_were_deleted`:
//!   due in send order, killed at +9 s after the first timer log file was
//!   delivered and deleted, down 4 s.
//! * `timer_messages_survive_sigkill_during_catch_up`: down 8 s, restarted,
//!   killed again 20 ms after its timer service starts (delivering the
//!   overdue ones), down 3 s.
//! * `timer_messages_survive_sigkill_while_rolling`: `timerRollWindowSlots=3`,
//!   so timers are rolled (written again on the timer topic) every 3 s
//!   until due, before and after the kill; down 5 s.
//!
//! Each message must be delivered exactly once (duplicates and missing are
//! counted by key), never stored before it is due, at most [`LATE_RUN_MS`]
//! after it is due while the broker runs, and at most [`SOON_MS`] after the
//! restart when it came due while the broker was down (or just before the
//! kill). `FERROMQ_TIMER_SEED=N` changes the order and due times. The tests
//! run one after the other (about 30 s each).
//!
//! * `timer_messages_survive_sigkill_before_the_first_checkpoint`: 500 timer
//!   messages sent to a fresh broker, which is SIGKILLed 0.3 s after the
//!   sends, before the timer service wrote its first `config/timercheck`;
//!   restarted once all are due, it must deliver each once (about 20 s).
//!   `timer_messages_survive_sigterm_before_the_first_checkpoint`: the same
//!   with a graceful stop (about 8 s).
//! * `a_client_timer_src_does_not_cancel_a_pending_timer_after_sigkill`: a
//!   plain message whose `TIMER_SRC` property names a pending timer's
//!   waiting record, then a SIGKILL: the timer is still delivered (about
//!   10 s).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use ferromq_server::remoting::{request, response};

const TOPIC: &str = "TimerKill";
const N: usize = 10_000;
const QUEUES: i32 = 4;
const SENDERS: usize = 4;
/// Due times: sending start + `FIRST_DUE_MS` + [0, `SPREAD_MS`).
const FIRST_DUE_MS: i64 = 2_000;
const SPREAD_MS: i64 = 23_000;
/// How late a delivery may be while the broker runs (precision 1 s, plus
/// slack for 10,000 messages on a shared 2-core machine).
const LATE_RUN_MS: i64 = 3_000;
/// How soon after a restart (the broker listening) the messages that came
/// due while it was down must be stored.
const SOON_MS: i64 = 5_000;

/// One scenario at a time: their timing bounds assume the machine is not
/// also running the other one.
static SERIAL: Mutex<()> = Mutex::new(());

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn seed() -> u64 {
    std::env::var("FERROMQ_TIMER_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_261_207)
}

/// splitmix64: a deterministic pseudo-random stream.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn key(i: usize) -> String {
    format!("tk-{i:05}")
}

fn body(i: usize) -> Vec<u8> {
    format!("timer-kill-{i:05}-{}", "p".repeat(100 + i % 64)).into_bytes()
}

/// An acknowledged timer message: due in `[due_lo, due_hi]`.
#[derive(Debug, Clone, Copy)]
struct Sent {
    due_lo: i64,
    due_hi: i64,
}

fn props(store: &Path, extra: &str) -> String {
    let p = broker_props(store, &format!("mappedFileSizeTimerLog=65536\n{extra}"));
    assert!(p.contains("mapedFileSizeCommitLog=1048576\n"));
    p.replace(
        "mapedFileSizeCommitLog=1048576\n",
        "mapedFileSizeCommitLog=4194304\n",
    )
}

/// Send all N from `SENDERS` connections; message `i` goes to queue `i % 4`
/// and is due at `t0 + planned[i]`. Panics unless every send got SEND_OK.
fn send_all(port: u16, t0: i64, planned: &[i64]) -> Vec<Sent> {
    let results: Vec<Vec<(usize, Result<Sent, String>)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..SENDERS)
            .map(|w| {
                s.spawn(move || {
                    let mut c = Client::connect(port);
                    let mut out = Vec::new();
                    for i in (w..N).step_by(SENDERS) {
                        let due = t0 + planned[i];
                        let k = key(i);
                        let b = body(i);
                        let before = now_ms();
                        let rel = due - before;
                        let (prop, value) = if i % 10 == 3 && rel > 0 {
                            ("TIMER_DELAY_MS", rel.to_string())
                        } else {
                            ("TIMER_DELIVER_MS", due.to_string())
                        };
                        let req = Client::send_v2_req(
                            TOPIC,
                            (i % QUEUES as usize) as i32,
                            &b,
                            &[("KEYS", &k), ("TAGS", "timer"), (prop, &value)],
                        )
                        .with_ext("g", before);
                        let r = c.try_invoke(req);
                        let after = now_ms();
                        let res = match r {
                            Ok(r) if r.code == response::SUCCESS => {
                                Ok(if prop == "TIMER_DELAY_MS" {
                                    Sent {
                                        due_lo: before + rel,
                                        due_hi: after + rel,
                                    }
                                } else {
                                    Sent {
                                        due_lo: due,
                                        due_hi: due,
                                    }
                                })
                            }
                            Ok(r) => Err(format!("code {} remark {:?}", r.code, r.remark)),
                            Err(e) => Err(format!("i/o: {e}")),
                        };
                        let failed = res.is_err();
                        out.push((i, res));
                        if failed {
                            break;
                        }
                    }
                    out
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut sent = vec![None; N];
    for (i, r) in results.into_iter().flatten() {
        match r {
            Ok(s) => sent[i] = Some(s),
            Err(e) => panic!("send {} was not acknowledged: {e}", key(i)),
        }
    }
    sent.into_iter()
        .enumerate()
        .map(|(i, s)| s.unwrap_or_else(|| panic!("{} not sent", key(i))))
        .collect()
}

/// A time the broker was up: from `ready` (listening) to `end` (killed, or
/// `i64::MAX`).
#[derive(Debug, Clone, Copy)]
struct Up {
    ready: i64,
    end: i64,
}

/// The latest acceptable store time of a message due at `due`: at most
/// [`LATE_RUN_MS`] after it if the broker was up then and stayed up long
/// enough, else [`SOON_MS`] after the next restart.
fn latest_store(due: i64, ups: &[Up]) -> i64 {
    for u in ups {
        if due < u.ready {
            return u.ready.max(due) + SOON_MS;
        }
        if due <= u.end && u.end - due >= LATE_RUN_MS {
            return due + LATE_RUN_MS;
        }
    }
    unreachable!("the last up time never ends")
}

/// Every delivery of the topic from offset 0: key -> store timestamps.
struct Reader {
    c: Client,
    next: Vec<u64>,
}

impl Reader {
    fn new(port: u16) -> Reader {
        Reader {
            c: Client::connect(port),
            next: vec![0; QUEUES as usize],
        }
    }

    fn read(&mut self, into: &mut BTreeMap<String, Vec<(i64, Vec<u8>)>>) -> usize {
        let mut n = 0;
        for q in 0..QUEUES {
            for _ in 0..2_000 {
                let r = self
                    .c
                    .pull("timer-kill-reader", TOPIC, q, self.next[q as usize], 32);
                if r.code != response::SUCCESS {
                    break;
                }
                for m in records(&r.body) {
                    let k = m.keys().first().map(|k| k.to_string()).unwrap_or_default();
                    into.entry(k)
                        .or_default()
                        .push((m.store_timestamp_ms, m.body));
                    n += 1;
                }
                self.next[q as usize] = r.ext_fields.get_i64("nextBeginOffset").unwrap() as u64;
            }
        }
        n
    }
}

fn kill(broker: &mut Proc) -> i64 {
    assert!(
        broker.child.try_wait().unwrap().is_none(),
        "the broker died before the kill"
    );
    broker.child.kill().expect("SIGKILL");
    let at = now_ms();
    let _ = broker.child.wait();
    at
}

fn sleep_until(t: i64) {
    let d = t - now_ms();
    if d > 0 {
        std::thread::sleep(Duration::from_millis(d as u64));
    }
}

/// Send, then for each `(kill_after_ms, down_ms)`: kill at `t0 +
/// kill_after_ms` for the first (or right after sending when that is
/// later), `kill_after_ms` after the restarted broker listens for the
/// others, stay down `down_ms`, restart. A negative `kill_after_ms` (last
/// kill only) kills `-kill_after_ms` after the restarted broker logs that its
/// timer service started, without waiting for it to listen. Then read
/// everything and check.
/// With `ordered`, message `i` is due at `FIRST_DUE_MS + i * SPREAD_MS / N`
/// (so the first timer log files are wholly delivered, and deleted, before
/// the kill); otherwise at a seeded random time in the spread.
///
/// `extra`: more broker properties. Returns how many records the timer topic
/// (`rmq_sys_wheel_timer` queue 0) holds at the end.
fn scenario(name: &str, kills: &[(i64, i64)], ordered: bool, extra: &str) -> i64 {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let seed = seed();
    let mut rng = Rng(seed);
    let planned: Vec<i64> = (0..N)
        .map(|i| {
            if ordered {
                FIRST_DUE_MS + i as i64 * SPREAD_MS / N as i64
            } else {
                FIRST_DUE_MS + (rng.next() % SPREAD_MS as u64) as i64
            }
        })
        .collect();
    let (_tmp, dir) = temp_dir();
    let props = props(&dir.join("store"), extra);
    let (mut broker, port) = start_broker(&dir, &props, None);
    let mut ups = vec![Up {
        ready: now_ms(),
        end: i64::MAX,
    }];
    // Create the topic on every queue before timing starts.
    {
        let mut c = Client::connect(port);
        for q in 0..QUEUES {
            let r = c.send_v2(TOPIC, q, b"warm-up", Some("warm"), Some("warm-up"));
            assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
        }
    }

    let t0 = now_ms();
    let sent = send_all(port, t0, &planned);
    let send_done = now_ms();
    eprintln!(
        "{name}: seed {seed}: {N} timer messages acknowledged in {} ms",
        send_done - t0
    );

    let mut broker_port = port;
    for (n, &(kill_after, down)) in kills.iter().enumerate() {
        if n == 0 {
            sleep_until((t0 + kill_after).max(send_done + 300));
        } else {
            sleep_until(ups.last().unwrap().ready + kill_after);
        }
        let killed = kill(&mut broker);
        ups.last_mut().unwrap().end = killed;
        eprintln!(
            "{name}: SIGKILL {} at +{} ms; timer log files {:?}",
            n + 1,
            killed - t0,
            timer_log_files(&dir.join("store"))
        );
        sleep_until(killed + down);
        let restarted = now_ms();
        if let Some(&(next, _)) = kills.get(n + 1).filter(|k| k.0 < 0) {
            // Killed again `-next` ms after its timer service starts,
            // without waiting for it to listen.
            let log = dir.join(format!("broker-{n}.log"));
            let cmd = broker_command(env!("CARGO_BIN_EXE_ferromq-broker"), &dir, &props);
            let f = std::fs::File::create(&log).unwrap();
            let mut b = spawn_to("broker", cmd, std::process::Stdio::from(f), "info");
            let started = wait_for(Duration::from_secs(60), || {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                text.contains("timer messages: service started")
                    .then(now_ms)
            })
            .unwrap_or_else(|| panic!("no 'timer messages: service started' in {}", log.display()));
            ups.push(Up {
                ready: started,
                end: i64::MAX,
            });
            sleep_until(started - next);
            let killed = kill(&mut b);
            ups.last_mut().unwrap().end = killed;
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            eprintln!(
                "{name}: restarted at +{} ms, timer service started after {} ms, \
                 SIGKILL {} at +{} ms; its log:\n{}",
                restarted - t0,
                started - restarted,
                n + 2,
                killed - t0,
                text.lines()
                    .filter(|l| l.contains("timer") || l.contains("recover"))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            let down = kills[n + 1].1;
            sleep_until(killed + down);
            let (b, p) = start_broker(&dir, &props, None);
            let ready = now_ms();
            eprintln!("{name}: restarted, listening at +{} ms", ready - t0);
            broker = b;
            broker_port = p;
            ups.push(Up {
                ready,
                end: i64::MAX,
            });
            if n + 2 < kills.len() {
                panic!("a kill after the timer service starts must be the last");
            }
            break;
        }
        let (b, p) = start_broker(&dir, &props, None);
        let ready = now_ms();
        eprintln!(
            "{name}: restarted at +{} ms, listening after {} ms",
            restarted - t0,
            ready - restarted
        );
        broker = b;
        broker_port = p;
        ups.push(Up {
            ready,
            end: i64::MAX,
        });
    }

    // Read everything from offset 0 until all N arrived (bounded).
    let last_due = sent.iter().map(|s| s.due_hi).max().unwrap();
    let deadline = Instant::now()
        + Duration::from_millis(
            ((last_due.max(ups.last().unwrap().ready) - now_ms()).max(0) + 30_000) as u64,
        );
    let mut got: BTreeMap<String, Vec<(i64, Vec<u8>)>> = BTreeMap::new();
    let mut reader = Reader::new(broker_port);
    loop {
        reader.read(&mut got);
        let have = (0..N).filter(|&i| got.contains_key(&key(i))).count();
        if have == N || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // Late duplicates would come now.
    std::thread::sleep(Duration::from_millis(3_000));
    reader.read(&mut got);
    let waiting_records = {
        let r = reader.c.invoke(Client::offset_req(
            request::GET_MAX_OFFSET,
            "rmq_sys_wheel_timer",
            0,
        ));
        r.ext_fields.get_i64("offset").unwrap_or(-1)
    };
    drop(broker);

    // Check.
    let mut missing = Vec::new();
    let mut duplicated = Vec::new();
    let mut early = Vec::new();
    let mut late = Vec::new();
    let mut bad_body = Vec::new();
    let mut per_up = vec![0usize; ups.len()];
    let mut due_down = 0usize;
    let mut max_late_run: Option<i64> = None;
    let mut max_after_restart: Option<i64> = None;
    for (i, s) in sent.iter().enumerate() {
        let k = key(i);
        let Some(d) = got.get(&k) else {
            missing.push(k);
            continue;
        };
        if d.len() > 1 {
            duplicated.push(format!("{k} x{}", d.len()));
        }
        let expect_body = body(i);
        if d.iter().any(|(_, b)| *b != expect_body) {
            bad_body.push(k.clone());
        }
        if !ups.iter().any(|u| s.due_lo >= u.ready && s.due_hi <= u.end) {
            due_down += 1;
        }
        for &(store, _) in d {
            if store < s.due_lo {
                early.push(format!("{k} stored {} ms before due", s.due_lo - store));
            }
            let latest = latest_store(s.due_hi, &ups);
            if store > latest {
                late.push(format!(
                    "{k} due +{} stored +{} ({} ms past its bound)",
                    s.due_hi - t0,
                    store - t0,
                    store - latest
                ));
            }
            if let Some(u) = ups
                .iter()
                .position(|u| store >= u.ready - 5_000 && store <= u.end)
            {
                per_up[u] += 1;
                if u > 0 && s.due_hi < ups[u].ready {
                    max_after_restart = max_after_restart.max(Some(store - ups[u].ready));
                } else {
                    max_late_run = max_late_run.max(Some(store - s.due_hi));
                }
            }
        }
    }
    let unknown: Vec<&String> = got
        .keys()
        .filter(|k| k.as_str() != "warm-up" && !k.starts_with("tk-"))
        .collect();
    eprintln!(
        "{name}: delivered per broker run {per_up:?}; {due_down} came due while it was down; \
         latest delivery while running {max_late_run:?} ms after due; \
         overdue ones stored up to {max_after_restart:?} ms after a restart; \
         {waiting_records} records on the timer topic"
    );
    let few = |v: &Vec<String>| v.iter().take(10).cloned().collect::<Vec<_>>();
    assert!(
        missing.is_empty()
            && duplicated.is_empty()
            && early.is_empty()
            && late.is_empty()
            && bad_body.is_empty()
            && unknown.is_empty(),
        "{name} (seed {seed}): of {N} acknowledged timer messages: \
         {} missing (first {:?}), {} duplicated (first {:?}), {} stored early (first {:?}), \
         {} stored late (first {:?}), {} with a wrong body (first {:?}), unknown keys {:?}; \
         broker runs {ups:?}, t0 {t0}",
        missing.len(),
        few(&missing),
        duplicated.len(),
        few(&duplicated),
        early.len(),
        few(&early),
        late.len(),
        few(&late),
        bad_body.len(),
        few(&bad_body),
        unknown
    );
    assert_eq!(got.get("warm-up").map(Vec::len), Some(QUEUES as usize));
    // The scenario did what it says: deliveries in every run, some due while down.
    assert!(
        per_up.iter().all(|&n| n > 0),
        "{name}: a broker run delivered nothing: {per_up:?}"
    );
    assert!(
        due_down > 0,
        "{name}: nothing came due while the broker was down"
    );
    waiting_records
}

/// The timer log's files: (name, bytes).
fn timer_log_files(store: &Path) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = std::fs::read_dir(store.join("timerlog"))
        .map(|d| {
            d.flatten()
                .map(|e| {
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        e.metadata().map(|m| m.len()).unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn timer_messages_survive_sigkill() {
    scenario("one kill", &[(6_000, 6_000)], false, "");
}

#[test]
fn timer_messages_survive_two_sigkills() {
    scenario("two kills", &[(6_000, 3_000), (2_500, 3_000)], false, "");
}

/// Due in send order: the first timer log files are delivered and deleted
/// before the kill, so the restarted broker opens a log that no longer
/// starts at position 0.
#[test]
fn timer_messages_survive_sigkill_after_timer_log_files_were_deleted() {
    scenario("ordered, one kill", &[(9_000, 4_000)], true, "");
}

/// Down 8 s, so about 3,500 are overdue at the restart; killed again 20 ms
/// after the restarted broker's timer service starts, in the middle of
/// delivering them (before it can write a new checkpoint), then down 3 s.
#[test]
fn timer_messages_survive_sigkill_during_catch_up() {
    scenario(
        "kill during catch-up",
        &[(6_000, 8_000), (-20, 3_000)],
        false,
        "",
    );
}

/// With `timerRollWindowSlots=3`, a timer due more than 3 s ahead waits 3 s
/// and is then written again on the timer topic ("rolled"), until it is
/// within the window: most of the 10,000 are rolled several times, some by
/// the broker that is killed, some after the restart.
#[test]
fn timer_messages_survive_sigkill_while_rolling() {
    let records = scenario(
        "rolling, one kill",
        &[(6_000, 5_000)],
        false,
        "timerRollWindowSlots=3\n",
    );
    assert!(
        records > N as i64 + 5_000,
        "timers due up to 25 s ahead with a 3 s roll window were rolled: \
         the timer topic holds {records} records for {N} messages"
    );
}

/// A broker SIGKILLed within its first second on a fresh store, before the
/// timer service wrote its first checkpoint (`config/timercheck`), with
/// timer messages already in the timer log: those that come due while it is
/// down must still be delivered after the restart, once each.
#[test]
fn timer_messages_survive_sigkill_before_the_first_checkpoint() {
    early_stop(false);
}

/// The same with a graceful stop (SIGTERM) instead of SIGKILL.
#[test]
fn timer_messages_survive_sigterm_before_the_first_checkpoint() {
    early_stop(true);
}

/// Start a fresh broker, send 500 timer messages due +2.5 s .. +3.4 s after
/// its start, stop it (SIGTERM when `graceful`, else SIGKILL) 0.3 s after the
/// sends, restart it once all are due; each must be delivered once.
fn early_stop(graceful: bool) {
    const M: usize = 500;
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (_tmp, dir) = temp_dir();
    let store = dir.join("store");
    let props = props(&store, "");
    let (mut broker, port) = start_broker(&dir, &props, None);
    let started = now_ms();
    let mut c = Client::connect(port);
    let due = started + 2_500;
    for i in 0..M {
        let k = key(i);
        let due_i = due + (i as i64 % 10) * 100;
        let req = Client::send_v2_req(
            TOPIC,
            (i % QUEUES as usize) as i32,
            &body(i),
            &[("KEYS", &k), ("TIMER_DELIVER_MS", &due_i.to_string())],
        );
        let r = c.invoke(req);
        assert_eq!(r.code, response::SUCCESS, "send {k}: {:?}", r.remark);
    }
    let sent_at = now_ms();
    drop(c);
    // Let the timer thread move them to the timer log, then kill it before
    // its first checkpoint (written about a second after it starts).
    std::thread::sleep(Duration::from_millis(300));
    let ckpt = store.join("config").join("timercheck");
    let had_ckpt = ckpt.exists();
    let killed = if graceful {
        let at = now_ms();
        let st = broker.terminate(Duration::from_secs(30));
        eprintln!("SIGTERM: exit {st:?} after {} ms", now_ms() - at);
        at
    } else {
        kill(&mut broker)
    };
    eprintln!(
        "stopped {} ms after the start, {} ms after the sends; checkpoint present before: {had_ckpt}; timer log: {:?}",
        killed - started,
        killed - sent_at,
        timer_log_files(&store)
    );
    // Down until all are due, and a little more.
    sleep_until(due + 1_000 + 2_000);
    let (_broker, port) = start_broker(&dir, &props, None);
    let ready = now_ms();
    let mut got: BTreeMap<String, Vec<(i64, Vec<u8>)>> = BTreeMap::new();
    let mut reader = Reader::new(port);
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        reader.read(&mut got);
        if got.len() >= M {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(1_500));
    reader.read(&mut got);
    let missing: Vec<String> = (0..M).map(key).filter(|k| !got.contains_key(k)).collect();
    let dups: Vec<String> = got
        .iter()
        .filter(|(_, d)| d.len() > 1)
        .map(|(k, d)| format!("{k} x{}", d.len()))
        .collect();
    let late: Vec<String> = got
        .iter()
        .filter(|(_, d)| d.iter().any(|(s, _)| *s > ready + SOON_MS))
        .map(|(k, _)| k.clone())
        .collect();
    assert!(
        missing.is_empty() && dups.is_empty() && late.is_empty(),
        "{} {} ms after a fresh start (checkpoint present: {had_ckpt}), restarted after all \
         {M} were due: {} missing (first {:?}), {} duplicated (first {:?}), {} later than {SOON_MS} ms \
         after the restart",
        if graceful { "SIGTERM" } else { "SIGKILL" },
        killed - started,
        missing.len(),
        missing.iter().take(10).collect::<Vec<_>>(),
        dups.len(),
        dups.iter().take(10).collect::<Vec<_>>(),
        late.len()
    );
}

/// `TIMER_SRC` is how a restarted broker knows which waiting timer records
/// it delivered after its last checkpoint. A client's message that carries
/// `TIMER_SRC` (here: naming a pending timer message's waiting record, whose
/// commitlog offset the send answer's msgId gives away; a message forwarded
/// from another broker, properties and all, can carry any value) must not
/// make a restarted broker drop that pending timer message.
#[test]
fn a_client_timer_src_does_not_cancel_a_pending_timer_after_sigkill() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (_tmp, dir) = temp_dir();
    let props = props(&dir.join("store"), "");
    let (mut broker, port) = start_broker(&dir, &props, None);
    let mut c = Client::connect(port);
    // Let the timer service write a checkpoint or two first.
    let r = c.send_v2(TOPIC, 0, b"warm-up", None, Some("warm-up"));
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    std::thread::sleep(Duration::from_millis(2_500));
    let due = now_ms() + 6_000;
    let r = c.invoke(Client::send_v2_req(
        TOPIC,
        1,
        b"the timer",
        &[
            ("KEYS", "pending-timer"),
            ("TIMER_DELIVER_MS", &due.to_string()),
        ],
    ));
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let msg_id = r.ext_fields.get_str("msgId").unwrap().to_string();
    let (_, waiting) = ferromq_engine::message::decode_offset_msg_id(&msg_id).unwrap();
    let r = c.invoke(Client::send_v2_req(
        TOPIC,
        2,
        b"a plain message that names it",
        &[("KEYS", "plain"), ("TIMER_SRC", &waiting.to_string())],
    ));
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let killed = kill(&mut broker);
    eprintln!(
        "timer due at +{} ms (waiting record at {waiting}); a plain message with TIMER_SRC={waiting}; SIGKILL",
        due - killed
    );
    drop(c);
    let (_broker, port) = start_broker(&dir, &props, None);
    let mut got: BTreeMap<String, Vec<(i64, Vec<u8>)>> = BTreeMap::new();
    let mut reader = Reader::new(port);
    let deadline = Instant::now() + Duration::from_millis((due - now_ms()).max(0) as u64 + 5_000);
    while Instant::now() < deadline && !got.contains_key("pending-timer") {
        reader.read(&mut got);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        got.contains_key("plain"),
        "the plain message survived: {:?}",
        got.keys()
    );
    let timer_info: Vec<(String, String)> = runtime_info(port)
        .into_iter()
        .filter(|(k, _)| k.starts_with("timer"))
        .collect();
    let max_offsets: Vec<i64> = (0..QUEUES)
        .map(|q| {
            let r = reader
                .c
                .invoke(Client::offset_req(request::GET_MAX_OFFSET, TOPIC, q));
            r.ext_fields.get_i64("offset").unwrap_or(-1)
        })
        .collect();
    let timer_topic_max = reader
        .c
        .invoke(Client::offset_req(
            request::GET_MAX_OFFSET,
            "rmq_sys_wheel_timer",
            0,
        ))
        .ext_fields
        .get_i64("offset")
        .unwrap_or(-1);
    let d = got.get("pending-timer").unwrap_or_else(|| {
        panic!(
            "the timer message due {} ms after the kill was never delivered after the restart: \
             the client's plain message with TIMER_SRC={waiting} was taken for its delivery \
             (broker timer stats {timer_info:?}, max offsets of {TOPIC} {max_offsets:?}, \
             of rmq_sys_wheel_timer {timer_topic_max}, read {:?})",
            due - killed,
            got.keys().collect::<Vec<_>>()
        )
    });
    assert_eq!(d.len(), 1);
    assert!(d[0].0 >= due);
}
