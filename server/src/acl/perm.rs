//! RocketMQ 4.9's ACL permission bits (`org.apache.rocketmq.acl.common.Permission`).
//!
//! The bits are RocketMQ's, not a guess: `DENY = 1`, `ANY = 1 << 1`,
//! `PUB = 1 << 2`, `SUB = 1 << 3`.

use std::fmt;

use crate::remoting::codes::request;

/// A set of ACL permission bits, as RocketMQ's `Permission` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Perm(u8);

impl Perm {
    /// Nothing is allowed; wins over every other bit an owner holds.
    pub const DENY: Perm = Perm(1);
    /// Needed-side only: satisfied by an owner holding `PUB` or `SUB`.
    pub const ANY: Perm = Perm(1 << 1);
    /// Publish.
    pub const PUB: Perm = Perm(1 << 2);
    /// Subscribe.
    pub const SUB: Perm = Perm(1 << 3);
    /// Publish and subscribe (`PUB|SUB` or `SUB|PUB` in a config file).
    pub const PUB_SUB: Perm = Perm((1 << 2) | (1 << 3));

    /// The raw bits, as RocketMQ's `byte`.
    pub fn bits(self) -> u8 {
        self.0
    }

    /// Parses a permission string of a config file: `PUB`, `SUB`, `PUB|SUB`,
    /// `SUB|PUB` or `DENY` (surrounding blanks ignored, case-sensitive as in
    /// RocketMQ). Any other text is `None`.
    ///
    /// RocketMQ's `parsePermFromString` silently maps an unknown string to
    /// `DENY`; ferromq's config loader reports it as an error instead (see
    /// [`crate::acl::config`]).
    pub fn parse(text: &str) -> Option<Perm> {
        match text.trim() {
            "PUB" => Some(Perm::PUB),
            "SUB" => Some(Perm::SUB),
            "PUB|SUB" | "SUB|PUB" => Some(Perm::PUB_SUB),
            "DENY" => Some(Perm::DENY),
            _ => None,
        }
    }

    /// `Permission.checkPermission(needed, owned)`: an owner with the `DENY`
    /// bit holds nothing; a need of `ANY` is met by `PUB` or `SUB`; otherwise
    /// any common bit is enough.
    pub fn allows(owned: Perm, needed: Perm) -> bool {
        if owned.0 & Perm::DENY.0 != 0 {
            return false;
        }
        if needed.0 & Perm::ANY.0 != 0 {
            return owned.0 & (Perm::PUB.0 | Perm::SUB.0) != 0;
        }
        needed.0 & owned.0 != 0
    }
}

impl fmt::Display for Perm {
    /// The config file spelling (`PUB|SUB` for both); other bit sets print as
    /// their number.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Perm::DENY => f.write_str("DENY"),
            Perm::ANY => f.write_str("ANY"),
            Perm::PUB => f.write_str("PUB"),
            Perm::SUB => f.write_str("SUB"),
            Perm::PUB_SUB => f.write_str("PUB|SUB"),
            Perm(bits) => write!(f, "{bits}"),
        }
    }
}

/// Request codes that need an admin account: RocketMQ's
/// `Permission.ADMIN_CODE` (UPDATE_AND_CREATE_TOPIC, UPDATE_BROKER_CONFIG,
/// DELETE_TOPIC_IN_BROKER, UPDATE_AND_CREATE_SUBSCRIPTIONGROUP,
/// DELETE_SUBSCRIPTIONGROUP) and, unlike 4.9 (where any signed account may
/// send them), the ACL admin requests 50-54: changing accounts, and reading
/// them (code 54 answers with every secret key); and, also beyond 4.9, the
/// requests that destroy data or move consumers: TRIGGER_DELETE_FILES (27),
/// DELETE_EXPIRED_COMMITLOG (329) and INVOKE_BROKER_TO_RESET_OFFSET (222);
/// and rocketmq-rust's list forms of 215 and 207 (5002, 5003).
pub const ADMIN_REQUEST_CODES: [i32; 15] = [
    request::UPDATE_AND_CREATE_TOPIC,
    request::UPDATE_BROKER_CONFIG,
    215, // DELETE_TOPIC_IN_BROKER
    200, // UPDATE_AND_CREATE_SUBSCRIPTIONGROUP
    207, // DELETE_SUBSCRIPTIONGROUP
    request::UPDATE_AND_CREATE_ACL_CONFIG,
    request::DELETE_ACL_CONFIG,
    request::GET_BROKER_CLUSTER_ACL_INFO,
    request::UPDATE_GLOBAL_WHITE_ADDRS_CONFIG,
    request::GET_BROKER_CLUSTER_ACL_CONFIG,
    request::TRIGGER_DELETE_FILES,
    request::DELETE_EXPIRED_COMMITLOG,
    222,  // INVOKE_BROKER_TO_RESET_OFFSET
    5002, // rocketmq-rust's DELETE_TOPIC_IN_BROKER_LIST
    5003, // rocketmq-rust's DELETE_SUBSCRIPTION_GROUP_LIST
];

/// `Permission.needAdminPerm(code)`.
pub fn needs_admin(request_code: i32) -> bool {
    ADMIN_REQUEST_CODES.contains(&request_code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_are_rocketmqs() {
        assert_eq!(Perm::DENY.bits(), 1);
        assert_eq!(Perm::ANY.bits(), 2);
        assert_eq!(Perm::PUB.bits(), 4);
        assert_eq!(Perm::SUB.bits(), 8);
        assert_eq!(Perm::PUB_SUB.bits(), 12);
    }

    #[test]
    fn parse_and_format() {
        for (text, perm) in [
            ("PUB", Perm::PUB),
            (" SUB ", Perm::SUB),
            ("PUB|SUB", Perm::PUB_SUB),
            ("SUB|PUB", Perm::PUB_SUB),
            ("DENY", Perm::DENY),
        ] {
            assert_eq!(Perm::parse(text), Some(perm), "{text}");
        }
        for bad in ["", "pub", "PUB |SUB", "ANY", "PUB,SUB", "READ"] {
            assert_eq!(Perm::parse(bad), None, "{bad:?}");
        }
        assert_eq!(Perm::PUB_SUB.to_string(), "PUB|SUB");
        assert_eq!(Perm::parse(&Perm::SUB.to_string()), Some(Perm::SUB));
    }

    #[test]
    fn check_permission_table() {
        // (owned, needed, allowed), as Permission.checkPermission decides.
        let table = [
            (Perm::DENY, Perm::PUB, false),
            (Perm::DENY, Perm::ANY, false),
            (Perm(Perm::DENY.0 | Perm::PUB.0), Perm::PUB, false),
            (Perm::PUB, Perm::PUB, true),
            (Perm::PUB, Perm::SUB, false),
            (Perm::SUB, Perm::SUB, true),
            (Perm::SUB, Perm::PUB, false),
            (Perm::PUB_SUB, Perm::PUB, true),
            (Perm::PUB_SUB, Perm::SUB, true),
            (Perm::PUB, Perm::ANY, true),
            (Perm::SUB, Perm::ANY, true),
            (Perm::PUB_SUB, Perm::PUB_SUB, true),
        ];
        for (owned, needed, allowed) in table {
            assert_eq!(
                Perm::allows(owned, needed),
                allowed,
                "owned {owned} needed {needed}"
            );
        }
    }

    #[test]
    fn admin_codes() {
        for code in [17, 25, 215, 200, 207, 50, 51, 52, 53, 54] {
            assert!(needs_admin(code), "{code}");
        }
        for code in [10, 11, 34, 310, 49, 55] {
            assert!(!needs_admin(code), "{code}");
        }
    }
}
