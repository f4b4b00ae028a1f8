//! Simulated power loss and injected I/O failures, through the engine's I/O
//! hook: a shadow "disk" receives only what the store synced; at a chosen
//! moment it freezes (the power goes), and a store opened on the shadow must
//! hold every message acknowledged under SYNC_FLUSH before that moment.
//! Failed syncs fence the store; a full disk at file creation fails the put
//! cleanly and writes nothing.

mod common;

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ferromq_engine::io::{install_hook, IoHook};
use ferromq_engine::{Error, GetStatus, Message, MessageFilter, MessageStore, PutStatus};

/// Applies synced bytes, created and removed files to a shadow directory.
struct ShadowDisk {
    root: PathBuf,
    shadow: PathBuf,
    frozen: AtomicBool,
    lock: Mutex<()>,
    fail_sync: AtomicBool,
    fail_create_from: AtomicU64,
}

impl ShadowDisk {
    fn new(root: &Path, shadow: &Path) -> Arc<Self> {
        Arc::new(ShadowDisk {
            root: root.to_path_buf(),
            shadow: shadow.to_path_buf(),
            frozen: AtomicBool::new(false),
            lock: Mutex::new(()),
            fail_sync: AtomicBool::new(false),
            fail_create_from: AtomicU64::new(u64::MAX),
        })
    }

    fn map(&self, path: &Path) -> PathBuf {
        let p = self.shadow.join(path.strip_prefix(&self.root).unwrap());
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        p
    }

    fn freeze(&self) {
        let _g = self.lock.lock().unwrap();
        self.frozen.store(true, Ordering::SeqCst);
    }

    fn apply(&self, f: impl FnOnce()) {
        let _g = self.lock.lock().unwrap();
        if !self.frozen.load(Ordering::SeqCst) {
            f();
        }
    }
}

impl IoHook for ShadowDisk {
    fn before_sync(&self, _: &Path, _: usize, _: usize) -> std::io::Result<()> {
        if self.fail_sync.load(Ordering::SeqCst) {
            return Err(std::io::Error::from_raw_os_error(libc_eio()));
        }
        Ok(())
    }
    fn synced(&self, path: &Path, offset: usize, bytes: &[u8]) {
        self.apply(|| {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(self.map(path))
                .unwrap();
            f.write_all_at(bytes, offset as u64).unwrap();
        });
    }
    fn before_create(&self, path: &Path, _: usize) -> std::io::Result<()> {
        let offset: u64 = path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .parse()
            .unwrap_or(0);
        if path.starts_with(self.root.join("commitlog"))
            && offset >= self.fail_create_from.load(Ordering::SeqCst)
        {
            return Err(std::io::Error::from_raw_os_error(28)); // ENOSPC
        }
        Ok(())
    }
    fn created(&self, path: &Path, len: usize) {
        self.apply(|| {
            let f = std::fs::File::create(self.map(path)).unwrap();
            f.set_len(len as u64).unwrap();
        });
    }
    fn removed(&self, path: &Path) {
        self.apply(|| {
            let _ = std::fs::remove_file(self.map(path));
        });
    }
    fn replaced(&self, path: &Path, bytes: &[u8]) {
        self.apply(|| std::fs::write(self.map(path), bytes).unwrap());
    }
}

fn libc_eio() -> i32 {
    5
}

#[derive(Clone, Copy)]
struct Ack {
    queue: u32,
    queue_offset: u64,
    seq: u64,
}

fn run_power_loss_trial(freeze_after: usize) -> (usize, usize) {
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("store");
    let shadow_root = base.path().join("shadow");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&shadow_root).unwrap();
    let shadow = ShadowDisk::new(&root, &shadow_root);
    let guard = install_hook(&root, shadow.clone());
    let mut cfg = common::small_sync_config(&root);
    cfg.mapped_file_size_commit_log = 128 * 1024;
    let store = Arc::new(MessageStore::open(cfg.clone()).unwrap());
    let acks: Arc<Mutex<Vec<Ack>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let producers: Vec<_> = (0..4u32)
        .map(|q| {
            let (store, acks, stop) = (store.clone(), acks.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut seq = 0u64;
                while !stop.load(Ordering::SeqCst) && seq < 5000 {
                    let body = format!("q{q}-s{seq}-{}", "p".repeat((seq % 300) as usize));
                    match store.put_message(&Message::new("P", body.into_bytes()).with_queue_id(q))
                    {
                        Ok(r) if r.status == PutStatus::PutOk => acks.lock().unwrap().push(Ack {
                            queue: q,
                            queue_offset: r.queue_offset,
                            seq,
                        }),
                        Ok(_) => {}
                        Err(_) => break,
                    }
                    seq += 1;
                }
            })
        })
        .collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while acks.lock().unwrap().len() < freeze_after {
        assert!(std::time::Instant::now() < deadline, "too slow");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    // The power goes: every put acknowledged before this point synced before it.
    let acked = acks.lock().unwrap().len();
    shadow.freeze();
    stop.store(true, Ordering::SeqCst);
    for p in producers {
        p.join().unwrap();
    }
    drop(store);
    drop(guard);

    // Boot from what reached the "disk".
    let mut cfg2 = cfg.clone();
    cfg2.store_path_root_dir = shadow_root.clone();
    let store = MessageStore::open(cfg2).unwrap();
    assert!(
        store.recovery_report().abnormal,
        "the abort marker was durable"
    );
    let acks = acks.lock().unwrap();
    let mut lost = 0;
    for a in &acks[..acked] {
        let r = store
            .get_message("g", "P", a.queue, a.queue_offset, 1, &MessageFilter::All)
            .unwrap();
        let ok = r.status == GetStatus::Found
            && r.messages[0]
                .decode()
                .unwrap()
                .body
                .starts_with(format!("q{}-s{}-", a.queue, a.seq).as_bytes());
        if !ok {
            lost += 1;
        }
    }
    store.shutdown().unwrap();
    (acked, lost)
}

#[test]
fn sync_flush_acknowledged_messages_survive_a_power_loss() {
    let trials: usize = std::env::var("FERROMQ_POWER_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let mut total = 0;
    for t in 0..trials {
        let (acked, lost) = run_power_loss_trial(50 + t * 137 % 600);
        assert_eq!(
            lost, 0,
            "trial {t}: {lost} of {acked} acknowledged messages lost"
        );
        total += acked;
    }
    eprintln!("power-loss trials: {trials}, {total} acknowledged messages checked, 0 lost");
}

#[test]
fn a_failed_sync_fences_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let shadow_dir = tempfile::tempdir().unwrap();
    let shadow = ShadowDisk::new(dir.path(), shadow_dir.path());
    let _g = install_hook(dir.path(), shadow.clone());
    let store = MessageStore::open(common::small_sync_config(dir.path())).unwrap();
    store
        .put_message(&Message::new("F", b"ok".to_vec()))
        .unwrap();
    shadow.fail_sync.store(true, Ordering::SeqCst);
    let e = store
        .put_message(&Message::new("F", b"not durable".to_vec()))
        .unwrap_err();
    assert!(
        e.to_string().contains("Input/output error") || e.to_string().contains("os error 5"),
        "{e}"
    );
    // Healing the disk changes nothing: no silent retry.
    shadow.fail_sync.store(false, Ordering::SeqCst);
    match store.put_message(&Message::new("F", b"later".to_vec())) {
        Err(Error::Fenced(why)) => assert!(
            why.contains("os error 5") || why.contains("Input/output"),
            "{why}"
        ),
        other => panic!("expected Fenced, got {other:?}"),
    }
    assert!(store.stats().fenced.is_some());
    assert!(store.shutdown().is_err());
    assert!(dir.path().join("abort").exists());
}

#[test]
fn no_space_for_a_new_file_fails_the_put_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let shadow_dir = tempfile::tempdir().unwrap();
    let shadow = ShadowDisk::new(dir.path(), shadow_dir.path());
    shadow
        .fail_create_from
        .store(2 * 64 * 1024, Ordering::SeqCst);
    let _g = install_hook(dir.path(), shadow.clone());
    let store = MessageStore::open(common::small_config(dir.path())).unwrap();
    let mut stored = 0u64;
    let err = loop {
        match store.put_message(&Message::new("N", vec![7u8; 1000])) {
            Ok(_) => stored += 1,
            Err(e) => break e,
        }
        assert!(stored < 1000, "the third file was never needed");
    };
    assert!(err.is_no_space(), "{err}");
    let end = store.commit_log_max_offset();
    assert!(store
        .put_message(&Message::new("N", vec![7u8; 1000]))
        .unwrap_err()
        .is_no_space());
    assert_eq!(store.commit_log_max_offset(), end, "nothing written");
    assert!(
        store.stats().fenced.is_none(),
        "no data was at risk: not fenced"
    );
    // Space comes back: puts go on, and every message is there.
    shadow.fail_create_from.store(u64::MAX, Ordering::SeqCst);
    store
        .put_message(&Message::new("N", vec![7u8; 1000]))
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while store.max_offset_in_queue("N", 0) < stored + 1 {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    store.shutdown().unwrap();
}

/// A slave's live truncation (`truncate_commit_log`), then the power goes
/// at once: the store booted from what reached the disk keeps the cut (the
/// zeroed tail, the deleted files, the lowered checkpoint and manifest were
/// all synced before the call returned) and every kept message.
#[test]
fn live_truncation_survives_a_power_loss() {
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("store");
    let shadow_root = base.path().join("shadow");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&shadow_root).unwrap();
    let shadow = ShadowDisk::new(&root, &shadow_root);
    let guard = install_hook(&root, shadow.clone());
    let mut cfg = common::small_config(&root);
    cfg.transient_store_pool_enable = false;
    let store = MessageStore::open(cfg.clone()).unwrap();
    let mut puts = Vec::new();
    for i in 0..400u64 {
        let q = (i % 4) as u32;
        let body = format!("q{q}-i{i}-{}", "p".repeat((i * 13 % 500) as usize));
        let r = store
            .put_message(&Message::new("P", body.into_bytes()).with_queue_id(q))
            .unwrap();
        puts.push((q, r.queue_offset, r.commit_log_offset, i));
    }
    store.shutdown().unwrap();
    drop(store);
    let mut slave = cfg.clone();
    slave.broker_role = ferromq_engine::BrokerRole::Slave;
    let store = MessageStore::open(slave.clone()).unwrap();
    let cut_at = 187;
    let offset = puts[cut_at].2;
    store.truncate_commit_log(offset).unwrap();
    shadow.freeze(); // the power goes right after the call returned
    drop(store);
    drop(guard);

    let mut booted = slave.clone();
    booted.store_path_root_dir = shadow_root.clone();
    let store = MessageStore::open(booted).unwrap();
    assert_eq!(store.commit_log_max_offset(), offset, "the cut holds");
    for q in 0..4 {
        let kept = puts[..cut_at].iter().filter(|p| p.0 == q).count() as u64;
        assert_eq!(store.max_offset_in_queue("P", q), kept, "queue {q}");
    }
    for &(q, qo, clo, i) in &puts[..cut_at] {
        let r = store
            .get_message("g", "P", q, qo, 1, &MessageFilter::All)
            .unwrap();
        assert_eq!(r.status, GetStatus::Found, "kept message {i}");
        let m = r.messages[0].decode().unwrap();
        assert_eq!(m.commit_log_offset, clo);
        assert!(m.body.starts_with(format!("q{q}-i{i}-").as_bytes()));
    }
    for &(q, qo, _, i) in &puts[cut_at..] {
        let r = store
            .get_message("g", "P", q, qo, 1, &MessageFilter::All)
            .unwrap();
        assert_ne!(r.status, GetStatus::Found, "cut message {i} is back");
    }
    store.shutdown().unwrap();
}
