//! `MessageFilter::Records`: a filter over each record a get reads (the
//! broker's SQL92 property filters). Refused records do not count against the
//! get's message limit; the next offset passes them; a get that reads only
//! refused records is NO_MATCHED_MESSAGE.

use std::sync::Arc;
use std::time::Duration;

use ferromq_engine::message::{decode_record, Message};
use ferromq_engine::{GetStatus, MessageFilter, MessageStore, RecordFilter, StoreConfig};

/// Accepts records whose property `k` is `v`.
#[derive(Debug)]
struct PropIs(&'static str, &'static str);

impl RecordFilter for PropIs {
    fn matches_record(&self, record: &[u8]) -> bool {
        decode_record(record)
            .ok()
            .is_some_and(|m| m.properties.get(self.0) == Some(self.1))
    }
}

#[test]
fn records_refused_by_the_filter_are_skipped_not_counted() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = StoreConfig::new(dir.path());
    cfg.mapped_file_size_commit_log = 256 * 1024;
    cfg.mapped_file_size_consume_queue = 6000;
    let store = MessageStore::open(cfg).unwrap();
    for i in 0..30u32 {
        let parity = if i % 3 == 0 { "three" } else { "other" };
        let m = Message::new("RF", format!("m{i}").into_bytes())
            .with_queue_id(0)
            .with_property("k", parity);
        store.put_message(&m).unwrap();
    }
    assert!(store.wait_for_messages("RF", 0, 29, Duration::from_secs(10)));
    let body = |r: &ferromq_engine::GetResult| -> Vec<String> {
        r.messages
            .iter()
            .map(|m| String::from_utf8(decode_record(m.bytes()).unwrap().body).unwrap())
            .collect()
    };

    let threes = MessageFilter::Records(Arc::new(PropIs("k", "three")));
    // Four matches wanted: m0, m3, m6, m9; the next offset is after m9.
    let r = store.get_message("g", "RF", 0, 0, 4, &threes).unwrap();
    assert_eq!(r.status, GetStatus::Found);
    assert_eq!(body(&r), ["m0", "m3", "m6", "m9"]);
    assert_eq!(r.next_begin_offset, 10);
    // The rest, from the middle.
    let r = store.get_message("g", "RF", 0, 10, 32, &threes).unwrap();
    assert_eq!(body(&r), ["m12", "m15", "m18", "m21", "m24", "m27"]);
    assert_eq!(r.next_begin_offset, 30);

    // Nothing matches: NO_MATCHED_MESSAGE, every message passed.
    let none = MessageFilter::Records(Arc::new(PropIs("k", "nine")));
    let r = store.get_message("g", "RF", 0, 0, 32, &none).unwrap();
    assert_eq!(r.status, GetStatus::NoMatchedMessage);
    assert!(r.messages.is_empty());
    assert_eq!(r.next_begin_offset, 30);

    // Equality is by identity of the filter.
    assert_eq!(threes, threes.clone());
    assert_ne!(
        threes,
        MessageFilter::Records(Arc::new(PropIs("k", "three")))
    );
    store.shutdown().unwrap();
}
