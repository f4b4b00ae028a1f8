//! Helpers for the damage tests (consume-queue rebuild, damaged records):
//! a broker whose log goes to a file, pulling a queue to its end, copying a store.
#![allow(dead_code)]

use std::path::Path;

use crate::common::{records, Client, Proc};
use ferromq_server::remoting::response;

/// Start a broker with `props` whose log (stderr, at `warn`) goes to `log`.
pub fn start_broker_logged(dir: &Path, props: &str, log: &Path) -> (Proc, u16) {
    crate::common::start_broker_logged_at(dir, props, log, "warn")
}

/// What pulling a queue from an offset to its end delivered.
#[derive(Debug, Default)]
pub struct Pulled {
    /// `(queue offset, body)` of every message, in order.
    pub messages: Vec<(u64, Vec<u8>)>,
    /// `nextBeginOffset` of every successful pull.
    pub next_offsets: Vec<u64>,
}

/// Pull `topic`/`queue_id` from `from` until the broker says there is nothing
/// more (PULL_NOT_FOUND), at most `max_pulls` pulls of 32. Panics on any other
/// answer without a `nextBeginOffset` that moves on.
pub fn pull_to_end(
    c: &mut Client,
    topic: &str,
    queue_id: i32,
    from: u64,
    max_pulls: usize,
) -> Pulled {
    let mut out = Pulled::default();
    let mut offset = from;
    for _ in 0..max_pulls {
        let r = c.pull("damage-test", topic, queue_id, offset, 32);
        if r.code == response::PULL_NOT_FOUND {
            return out;
        }
        let next = r
            .ext_fields
            .get_str("nextBeginOffset")
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or_else(|| {
                panic!(
                    "pull at {offset}: code {} {:?} without nextBeginOffset",
                    r.code, r.remark
                )
            });
        assert!(
            r.code == response::SUCCESS || r.code == response::PULL_RETRY_IMMEDIATELY,
            "pull at {offset}: code {} {:?}",
            r.code,
            r.remark
        );
        assert!(next > offset, "pull at {offset} must move on (next {next})");
        if r.code == response::SUCCESS {
            for m in records(&r.body) {
                out.messages.push((m.queue_offset, m.body));
            }
        }
        out.next_offsets.push(next);
        offset = next;
    }
    panic!("{max_pulls} pulls did not reach the end of {topic}-{queue_id} (at {offset})");
}

/// Copy a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), &dst).unwrap();
        }
    }
}
