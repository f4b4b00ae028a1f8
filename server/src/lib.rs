//! `ferromq-server`: RocketMQ's wire protocol on top of `ferromq-engine`.
//!
//! - [`remoting`]: the frame codec (JSON and binary headers), codes, typed
//!   `extFields` access, and the async connection server and client.
//! - [`namesrv`]: the name server (broker registry, topic routes).
//! - [`acl`]: plain ACL (RocketMQ 4.9 `plain_acl.yml`, signatures, access
//!   decisions); not yet wired into request handling.
//! - [`filter`]: SQL92 property filters (RocketMQ's selector language).
//! - [`broker`]: the broker (send, pull with long polling, consumer offsets).
//!
//! The binaries `ferromq-namesrv` and `ferromq-broker` are thin wrappers.

pub mod acl;
pub mod broker;
pub mod controller;
pub mod filter;
pub mod metrics;
pub mod namesrv;
pub mod remoting;
pub mod util;
pub mod warn_limit;
