//! Plain ACL, compatible with RocketMQ 4.9's `plain` access control: the
//! `plain_acl.yml` config, remote address patterns, request signatures and
//! the access decision.
//!
//! - [`config`]: parse and merge `plain_acl.yml` files ([`AclConfig`]).
//! - [`address`]: `whiteRemoteAddress` patterns ([`AddressPattern`]).
//! - [`sign`]: the signed request content and HMAC-SHA1 signatures.
//! - [`perm`]: permission bits ([`Perm`]) and admin request codes.
//! - [`rules`]: the decision for one request ([`AclRules::check`]).
//! - [`client`]: signing requests as a RocketMQ client does ([`Credentials`]),
//!   for `ferromq-admin` and the broker's own calls.
//! - [`cluster`]: trust between brokers and name servers ([`ClusterAuth`]).
//! - [`refusal`]: the answer to a refused request and its rate-limited log.
//! - [`resources`]: what a remoting request asks for ([`parse_request`]
//!   gives a [`ParsedAccess`], whose [`ParsedAccess::as_request`] is checked).
//! - [`startup`]: where the broker finds its files (`ROCKETMQ_HOME` or the
//!   `aclFilePath` key) and loading them at startup ([`load_broker_rules`]).
//! - [`live`]: the rules in force ([`AclLive`]), reloaded when the files
//!   change ([`live::watch_loop`]) and edited by the ACL admin requests
//!   (codes 50-54, answered in `broker/acl_admin.rs`).
//!
//! With `aclEnable=true` the broker loads the rules at startup (no file or a
//! malformed one stops it) and checks every client request before its
//! handler runs (`broker/dispatch.rs`); a refusal is answered as RocketMQ
//! 4.9 answers it, SYSTEM_ERROR with [`AclDenied::remark`]. While it runs,
//! changed files are loaded again within `aclReloadIntervalMs` (a bad file
//! keeps the rules in force), and admin accounts may create, update and
//! delete accounts and the global white list (persisted to the files). The
//! broker signs its own requests, and with ACL on the name server checks
//! registrations and the HA port authenticates slaves ([`cluster`], a
//! ferromq extension).
//!
//! # Where ferromq differs from RocketMQ 4.9
//!
//! All on the side of refusing a config RocketMQ would load:
//!
//! - a permission string other than `PUB`, `SUB`, `PUB|SUB`, `SUB|PUB`,
//!   `DENY` is an error (RocketMQ reads it as `DENY`);
//! - address patterns RocketMQ accepts but never matches or throws on at
//!   request time (a range ending at 0, no range segment, `*` first), and
//!   IPv4 range patterns with something other than `*` after the range
//!   segment (RocketMQ ignores it and matches more than written), are
//!   errors; see [`address`];
//! - the ACL admin requests 50-54 need an admin account (4.9 lets any
//!   signed account send them);
//! - a folder tree deeper than [`config::MAX_FOLDER_DEPTH`] (a symlink
//!   loop) is an error;
//! - with `aclEnable=true`, finding no ACL file is a startup error (RocketMQ
//!   starts with no accounts); see [`startup`].
//!
//! Also: the ACL folder's files are merged in path order, not the file
//! system's listing order, so which duplicate access key wins is stable;
//! and unquoted scalars are read as written (`secretKey: 0012345678` is
//! that text), where RocketMQ's YAML 1.1 reader may turn some into numbers.

pub mod address;
pub mod client;
pub mod cluster;
pub mod config;
pub mod live;
pub mod perm;
pub mod refusal;
pub mod resources;
pub mod rules;
pub mod sign;
pub mod startup;

pub use address::{AddressPattern, AddressPatternError};
pub use client::Credentials;
pub use cluster::ClusterAuth;
pub use config::{Account, AclConfig, AclConfigError, AclFile, DataVersion};
pub use live::{AccountUpdate, AclLive};
pub use perm::Perm;
pub use resources::{parse_request, ParseError, ParsedAccess};
pub use rules::{AccessRequest, AclDenied, AclRules};
pub use startup::{load_broker_rules, AclLocation, AclStartupError};
