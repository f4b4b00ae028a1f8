//! The broker's per-request future stays small: each request runs as its own
//! task whose size is that future's, and a held pull keeps its task for up
//! to the long-polling time, 100,000 of them in `long_poll_abuse.rs`. The
//! request table boxes every handler's future (`broker/dispatch.rs`), so the
//! outer future is small; a handler added without the box makes it as big
//! as that handler's state, and this test says so.

mod common;

use std::sync::Arc;

use common::*;
use ferromq_engine::config::Properties;
use ferromq_engine::{MessageStore, StoreConfig};
use ferromq_server::broker::{Broker, BrokerConfig};
use ferromq_server::remoting::{request, ConnInfo, Handler, RemotingCommand};

/// The bound on the request future, in bytes (880 when written).
const MAX_REQUEST_FUTURE: usize = 1536;

#[test]
fn a_request_future_is_small_whatever_the_largest_handler() {
    let (_d, dir) = temp_dir();
    let props = Properties::parse(&broker_props(&dir.join("store"), ""));
    let (store_cfg, _) = StoreConfig::from_properties(&props).unwrap();
    let cfg = BrokerConfig::from_properties(&props, &store_cfg).unwrap();
    let store = Arc::new(MessageStore::open(store_cfg).unwrap());
    let b = Broker::new(cfg, store, "127.0.0.1:1".into(), None).unwrap();
    let conn = Arc::new(ConnInfo::detached(1, "127.0.0.1:2".parse().unwrap()));
    // Never polled: only its size is looked at.
    let fut = b
        .clone()
        .handle(conn, RemotingCommand::request(request::PULL_MESSAGE));
    let size = std::mem::size_of_val(&fut);
    eprintln!("request future: {size} bytes");
    assert!(
        size <= MAX_REQUEST_FUTURE,
        "the broker's request future is {size} bytes (bound {MAX_REQUEST_FUTURE}): \
         a handler in broker/dispatch.rs's table is probably not boxed"
    );
}
