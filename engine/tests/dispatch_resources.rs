//! Running out of a resource while dispatch creates a consume-queue file (no
//! descriptor, no space) is retried, reported and resumed by itself; it never
//! fences the store. Only a failed sync of commitlog data fences (see
//! power_loss.rs); a failed consume-queue flush is reported, not fenced.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferromq_engine::io::{install_hook, IoHook};
use ferromq_engine::{
    DiskUsage, GetStatus, Message, MessageFilter, MessageStore, StoreEnv, StoreStats,
};

/// Fails consume-queue file creations (or syncs) with `errno` while `on`.
#[derive(Default)]
struct FailCq {
    create: AtomicBool,
    sync: AtomicBool,
    errno: std::sync::atomic::AtomicI32,
}

fn is_cq(path: &Path) -> bool {
    path.components().any(|c| c.as_os_str() == "consumequeue")
}

impl IoHook for FailCq {
    fn before_create(&self, path: &Path, _len: usize) -> std::io::Result<()> {
        if self.create.load(Ordering::SeqCst) && is_cq(path) {
            return Err(std::io::Error::from_raw_os_error(
                self.errno.load(Ordering::SeqCst),
            ));
        }
        Ok(())
    }
    fn before_sync(&self, path: &Path, _offset: usize, _len: usize) -> std::io::Result<()> {
        if self.sync.load(Ordering::SeqCst) && is_cq(path) {
            return Err(std::io::Error::from_raw_os_error(libc::EIO));
        }
        Ok(())
    }
}

fn wait_stats(store: &MessageStore, what: &str, ok: impl Fn(&StoreStats) -> bool) -> StoreStats {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let st = store.stats();
        if ok(&st) {
            return st;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {st:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Bodies of every message in `topic`/`queue`, in queue order.
fn read_queue(store: &MessageStore, topic: &str, queue: u32) -> Vec<String> {
    let mut out = Vec::new();
    let mut offset = 0;
    for _ in 0..1000 {
        let r = store
            .get_message("g", topic, queue, offset, 32, &MessageFilter::All)
            .unwrap();
        if r.status != GetStatus::Found {
            break;
        }
        for m in &r.messages {
            assert_eq!(m.queue_offset, offset, "{topic}/{queue}");
            out.push(String::from_utf8(m.decode().unwrap().body).unwrap());
            offset += 1;
        }
    }
    out
}

#[test]
fn no_descriptor_for_a_new_consume_queue_is_retried_then_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Arc::new(FailCq::default());
    hook.errno.store(libc::EMFILE, Ordering::SeqCst);
    let _g = install_hook(dir.path(), hook.clone());
    let store = MessageStore::open(common::small_config(dir.path())).unwrap();
    store.create_topic("T", 4).unwrap();
    let put = |q: u32, body: String| {
        store
            .put_message(&Message::new("T", body.into_bytes()).with_queue_id(q))
            .unwrap()
    };
    for i in 0..5 {
        put(0, format!("0-{i}"));
    }
    wait_stats(&store, "first puts dispatched", |s| {
        s.dispatched_offset == store.commit_log_max_offset()
    });

    // No descriptor left: queue 1's first file cannot be created.
    hook.create.store(true, Ordering::SeqCst);
    let mut want: Vec<Vec<String>> = vec![(0..5).map(|i| format!("0-{i}")).collect(), vec![]];
    put(0, "0-5".into());
    want[0].push("0-5".into());
    let stuck_at = put(1, "1-0".into()).commit_log_offset;
    want[1].push("1-0".into());
    for i in 1..10u32 {
        // Puts go on, to the old queue and the new one.
        let q = i % 2;
        let body = format!("{q}-{}", want[q as usize].len());
        put(q, body.clone());
        want[q as usize].push(body);
    }
    let st = wait_stats(&store, "the error reported and retried", |s| {
        s.dispatch_error.is_some() && s.dispatch_retries >= 3
    });
    assert!(
        st.fenced.is_none(),
        "a resource error fences nothing: {st:?}"
    );
    assert!(
        st.dispatch_error
            .as_deref()
            .unwrap()
            .contains("os error 24"),
        "{st:?}"
    );
    // The position never passes the record whose unit is not written (it
    // may stop a little before it: units are written a batch at a time).
    assert!(
        st.dispatched_offset <= stuck_at,
        "position {} is past the stuck record at {stuck_at}",
        st.dispatched_offset
    );
    let readable = read_queue(&store, "T", 0);
    assert!(
        readable.starts_with(&want[0][..6]),
        "records before it are readable: {readable:?}"
    );
    assert!(read_queue(&store, "T", 1).is_empty());
    // A put still succeeds while dispatch waits.
    put(0, "0-late".into());
    want[0].push("0-late".into());

    // The descriptor is back: dispatch resumes by itself.
    hook.create.store(false, Ordering::SeqCst);
    let st = wait_stats(&store, "dispatch to resume", |s| {
        s.dispatched_offset == store.commit_log_max_offset() && s.dispatch_error.is_none()
    });
    assert!(st.fenced.is_none());
    assert_eq!(read_queue(&store, "T", 0), want[0]);
    assert_eq!(read_queue(&store, "T", 1), want[1]);
    store.shutdown().unwrap();
    assert!(!dir.path().join("abort").exists(), "a clean shutdown");
}

#[test]
fn a_failed_consume_queue_flush_is_reported_not_fenced() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Arc::new(FailCq::default());
    let _g = install_hook(dir.path(), hook.clone());
    let mut cfg = common::small_config(dir.path());
    // Every written unit is flushed on the next pass.
    cfg.flush_consume_queue_least_pages = 0;
    let store = MessageStore::open(cfg.clone()).unwrap();
    hook.sync.store(true, Ordering::SeqCst);
    for i in 0..50 {
        store
            .put_message(&Message::new("F", format!("m-{i}").into_bytes()).with_queue_id(0))
            .unwrap();
    }
    let st = wait_stats(&store, "the flush error reported", |s| {
        s.consume_queue_flush_error.is_some()
    });
    assert!(st.fenced.is_none(), "{st:?}");
    hook.sync.store(false, Ordering::SeqCst);
    store
        .put_message(&Message::new("F", b"m-50".to_vec()).with_queue_id(0))
        .unwrap();
    wait_stats(&store, "dispatched", |s| {
        s.dispatched_offset == store.commit_log_max_offset()
    });
    assert_eq!(read_queue(&store, "F", 0).len(), 51);
    // Shutdown says the queues' durability is in doubt and keeps the abort
    // marker: the next open re-dispatches from the last offset known flushed.
    assert!(store.shutdown().is_err());
    drop(store);
    assert!(dir.path().join("abort").exists());
    let store = MessageStore::open(cfg).unwrap();
    assert!(store.recovery_report().abnormal);
    let want: Vec<String> = (0..51).map(|i| format!("m-{i}")).collect();
    assert_eq!(read_queue(&store, "F", 0), want);
}

/// A file system the test mounts (we run as root); unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().ok()?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!(
                "SKIPPED: cannot mount a tmpfs ({}); this test needs root",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        Some(Tmpfs { dir })
    }

    fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Disk usage as a healthy disk reports it: the test is about the file
/// system refusing a file, not about the store's own disk-full threshold.
#[derive(Debug)]
struct Roomy;

impl DiskUsage for Roomy {
    fn used_ratio(&self, _path: &Path) -> std::io::Result<f64> {
        Ok(0.1)
    }
}

#[test]
fn no_space_for_a_new_consume_queue_then_space_freed_resumes() {
    let Some(fs) = Tmpfs::mount("4m") else {
        return;
    };
    let root = fs.path().join("store");
    let mut cfg = common::small_config(&root);
    cfg.message_index_enable = false;
    let env = StoreEnv {
        disk: Arc::new(Roomy),
        ..StoreEnv::default()
    };
    let store = MessageStore::open_with_env(cfg, env).unwrap();
    store.create_topic("T", 8).unwrap();
    let put = |q: u32, body: String| {
        store
            .put_message(&Message::new("T", body.into_bytes()).with_queue_id(q))
            .unwrap();
    };
    put(0, "0-0".into());
    wait_stats(&store, "first put dispatched", |s| {
        s.dispatched_offset == store.commit_log_max_offset()
    });

    // Fill the file system.
    let filler = fs.path().join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![1u8; 64 * 1024];
        let mut filled = false;
        for _ in 0..1024 {
            if f.write_all(&chunk).and_then(|_| f.sync_data()).is_err() {
                filled = true;
                break;
            }
        }
        assert!(filled, "a 4 MiB tmpfs took 64 MiB");
    }
    // Puts are acknowledged (the commitlog file is allocated already) while
    // no consume-queue file can be created for the new queues.
    let mut want: Vec<Vec<String>> = vec![vec!["0-0".into()]; 1];
    want.resize(8, vec![]);
    for i in 0..24u32 {
        let q = i % 8;
        let body = format!("{q}-{}", want[q as usize].len());
        put(q, body.clone());
        want[q as usize].push(body);
    }
    let st = wait_stats(&store, "the no-space error reported", |s| {
        s.dispatch_error.is_some() && s.dispatch_retries >= 2
    });
    assert!(
        st.dispatch_error
            .as_deref()
            .unwrap()
            .contains("os error 28"),
        "{st:?}"
    );
    assert!(st.fenced.is_none(), "{st:?}");
    assert!(st.dispatched_offset < store.commit_log_max_offset());

    // Space is back: dispatch resumes without a restart.
    std::fs::remove_file(&filler).unwrap();
    let st = wait_stats(&store, "dispatch to resume", |s| {
        s.dispatched_offset == store.commit_log_max_offset() && s.dispatch_error.is_none()
    });
    assert!(st.fenced.is_none());
    for (q, w) in want.iter().enumerate() {
        assert_eq!(&read_queue(&store, "T", q as u32), w, "queue {q}");
    }
    store.shutdown().unwrap();
    drop(store);
    drop(fs);
}
