//! Plain ACL, compatible with RocketMQ 4.9's `plain` access control: the
//! `plain_acl.yml` config, remote address patterns, request signatures and
//! the access decision.
//!
//! - [`config`]: parse and merge `plain_acl.yml` files ([`AclConfig`]).
//! - [`address`]: `whiteRemoteAddress` patterns ([`AddressPattern`]).
//! - [`sign`]: the signed request content and HMAC-SHA1 signatures.
//! - [`perm`]: permission bits ([`Perm`]) and admin request codes.
//! - [`rules`]: the decision for one request ([`AclRules::check`]).
//!
//! Not yet used by the broker: this is the core only.

pub mod address;
pub mod config;
pub mod perm;
pub mod rules;
pub mod sign;

pub use address::{AddressPattern, AddressPatternError};
pub use config::{Account, AclConfig, AclConfigError, AclFile};
pub use perm::Perm;
pub use rules::{AccessRequest, AclDenied, AclRules};
