//! The controllers' peer list, in RocketMQ 5's configuration format:
//! `controllerDLegerPeers=n0-127.0.0.1:9877;n1-127.0.0.1:9878;n2-127.0.0.1:9879`
//! and `controllerDLegerSelfId=n0`.
//!
//! Each entry is `<id>-<host>:<port>`, entries are separated by `;`. The ids
//! are DLedger's `n0`, `n1`, ...: `nK` is Raft node id `K`. Anything else (an
//! empty list or entry, an id that is not `n` followed by a number, a
//! duplicate id or address, an address without a valid port, a self id not in
//! the list) is refused with a [`PeersError`] naming the culprit, so a typo
//! never starts a controller that cannot form the configured cluster.

use std::collections::BTreeMap;
use std::fmt;

/// Why a peer list or self id was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PeersError {
    /// `controllerDLegerPeers` is empty.
    #[error("controllerDLegerPeers is empty")]
    Empty,
    /// An entry is not `<id>-<host>:<port>`.
    #[error("controllerDLegerPeers entry {entry:?}: {reason}")]
    BadEntry {
        /// The entry as written.
        entry: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An id is not `n` followed by a number.
    #[error("controller id {0:?} is not of the form nK (n0, n1, ...)")]
    BadId(String),
    /// The same id is listed twice.
    #[error("controllerDLegerPeers lists {0} twice")]
    DuplicateId(String),
    /// The same address is listed for two ids.
    #[error("controllerDLegerPeers lists address {0} for two controllers")]
    DuplicateAddress(String),
    /// `controllerDLegerSelfId` is not one of the listed ids.
    #[error("controllerDLegerSelfId {self_id} is not in controllerDLegerPeers ({peers})")]
    SelfNotInPeers {
        /// The self id as written.
        self_id: String,
        /// The listed ids.
        peers: String,
    },
}

/// A parsed `controllerDLegerPeers` + `controllerDLegerSelfId`: the Raft node
/// ids (`nK` → `K`) and their addresses, and this controller's id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControllerPeers {
    self_id: u64,
    peers: BTreeMap<u64, String>,
}

impl ControllerPeers {
    /// Parses `controllerDLegerPeers` and `controllerDLegerSelfId`; the self
    /// id must be listed.
    pub fn parse(peers: &str, self_id: &str) -> Result<Self, PeersError> {
        let peers = parse_peers(peers)?;
        let id = parse_node_id(self_id)?;
        if !peers.contains_key(&id) {
            return Err(PeersError::SelfNotInPeers {
                self_id: self_id.trim().to_owned(),
                peers: peers
                    .keys()
                    .map(|id| node_name(*id))
                    .collect::<Vec<_>>()
                    .join(","),
            });
        }
        Ok(ControllerPeers { self_id: id, peers })
    }

    /// This controller's Raft node id.
    pub fn self_id(&self) -> u64 {
        self.self_id
    }

    /// This controller's address (where it listens).
    pub fn self_address(&self) -> &str {
        // Checked at construction.
        &self.peers[&self.self_id]
    }

    /// Every controller, this one included: Raft node id → address.
    pub fn peers(&self) -> &BTreeMap<u64, String> {
        &self.peers
    }

    /// Consumes the peers into (self id, id → address).
    pub fn into_parts(self) -> (u64, BTreeMap<u64, String>) {
        (self.self_id, self.peers)
    }
}

impl fmt::Display for ControllerPeers {
    /// The `controllerDLegerPeers` form (ids in order).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (id, addr)) in self.peers.iter().enumerate() {
            if i > 0 {
                f.write_str(";")?;
            }
            write!(f, "{}-{addr}", node_name(*id))?;
        }
        Ok(())
    }
}

/// DLedger's name of Raft node id `id`: `n<id>`.
pub fn node_name(id: u64) -> String {
    format!("n{id}")
}

/// Parses a DLedger node id `nK` into `K`.
pub fn parse_node_id(id: &str) -> Result<u64, PeersError> {
    let trimmed = id.trim();
    let digits = trimmed
        .strip_prefix('n')
        .ok_or_else(|| PeersError::BadId(trimmed.to_owned()))?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PeersError::BadId(trimmed.to_owned()));
    }
    digits
        .parse()
        .map_err(|_| PeersError::BadId(trimmed.to_owned()))
}

/// Parses `controllerDLegerPeers` into Raft node id → address.
///
/// Whitespace around entries is ignored, and so is one trailing `;`.
pub fn parse_peers(peers: &str) -> Result<BTreeMap<u64, String>, PeersError> {
    let trimmed = peers.trim();
    let trimmed = trimmed.strip_suffix(';').unwrap_or(trimmed);
    if trimmed.trim().is_empty() {
        return Err(PeersError::Empty);
    }
    let mut out = BTreeMap::new();
    for entry in trimmed.split(';') {
        let entry = entry.trim();
        let bad = |reason: &str| PeersError::BadEntry {
            entry: entry.to_owned(),
            reason: reason.to_owned(),
        };
        if entry.is_empty() {
            return Err(bad("empty entry"));
        }
        let (id, addr) = entry
            .split_once('-')
            .ok_or_else(|| bad("expected <id>-<host>:<port>"))?;
        let id = parse_node_id(id)?;
        let addr = addr.trim();
        let (host, port) = addr
            .rsplit_once(':')
            .ok_or_else(|| bad("the address has no :port"))?;
        if host.is_empty() {
            return Err(bad("the address has no host"));
        }
        match port.parse::<u16>() {
            Ok(p) if p > 0 => {}
            _ => return Err(bad("the port is not a number in 1..=65535")),
        }
        if out.values().any(|a: &String| a == addr) {
            return Err(PeersError::DuplicateAddress(addr.to_owned()));
        }
        if out.insert(id, addr.to_owned()).is_some() {
            return Err(PeersError::DuplicateId(node_name(id)));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rocketmq_quick_start_peers() {
        let p = ControllerPeers::parse(
            "n0-127.0.0.1:9877;n1-127.0.0.1:9878;n2-127.0.0.1:9879",
            "n1",
        )
        .unwrap();
        assert_eq!(p.self_id(), 1);
        assert_eq!(p.self_address(), "127.0.0.1:9878");
        assert_eq!(
            p.peers(),
            &BTreeMap::from([
                (0, "127.0.0.1:9877".to_owned()),
                (1, "127.0.0.1:9878".to_owned()),
                (2, "127.0.0.1:9879".to_owned()),
            ])
        );
        assert_eq!(
            p.to_string(),
            "n0-127.0.0.1:9877;n1-127.0.0.1:9878;n2-127.0.0.1:9879"
        );
    }

    #[test]
    fn single_controller_whitespace_and_trailing_separator() {
        let p = ControllerPeers::parse(" n0-localhost:9878 ; ", " n0 ").unwrap();
        assert_eq!(p.self_id(), 0);
        assert_eq!(p.peers().len(), 1);
        assert_eq!(p.self_address(), "localhost:9878");
        let p = ControllerPeers::parse("n7-[::1]:9878", "n7").unwrap();
        assert_eq!(p.self_address(), "[::1]:9878");
    }

    #[test]
    fn malformed_lists_are_refused_clearly() {
        let err = |peers: &str| parse_peers(peers).unwrap_err();
        assert_eq!(err(""), PeersError::Empty);
        assert_eq!(err(" ; "), PeersError::Empty);
        assert!(
            matches!(err("n0-127.0.0.1:9877;;n1-127.0.0.1:9878"), PeersError::BadEntry { reason, .. } if reason == "empty entry")
        );
        assert!(matches!(
            err("n0:127.0.0.1:9877"),
            PeersError::BadEntry { .. }
        ));
        assert!(matches!(err("n0-127.0.0.1"), PeersError::BadEntry { .. }));
        assert!(matches!(err("n0-:9877"), PeersError::BadEntry { .. }));
        assert!(matches!(
            err("n0-127.0.0.1:port"),
            PeersError::BadEntry { .. }
        ));
        assert!(matches!(err("n0-127.0.0.1:0"), PeersError::BadEntry { .. }));
        assert!(matches!(
            err("n0-127.0.0.1:70000"),
            PeersError::BadEntry { .. }
        ));
        assert_eq!(err("x0-127.0.0.1:9877"), PeersError::BadId("x0".into()));
        assert_eq!(err("n-127.0.0.1:9877"), PeersError::BadId("n".into()));
        assert_eq!(err("n+1-127.0.0.1:9877"), PeersError::BadId("n+1".into()));
        assert_eq!(
            err("n0-127.0.0.1:9877;n0-127.0.0.1:9878"),
            PeersError::DuplicateId("n0".into())
        );
        assert_eq!(
            err("n0-127.0.0.1:9877;n1-127.0.0.1:9877"),
            PeersError::DuplicateAddress("127.0.0.1:9877".into())
        );
        let msg = err("n0-127.0.0.1").to_string();
        assert!(
            msg.contains("n0-127.0.0.1") && msg.contains(":port"),
            "{msg}"
        );
    }

    #[test]
    fn a_self_id_outside_the_list_is_refused() {
        let e = ControllerPeers::parse("n0-127.0.0.1:9877;n1-127.0.0.1:9878", "n2").unwrap_err();
        assert_eq!(
            e,
            PeersError::SelfNotInPeers {
                self_id: "n2".into(),
                peers: "n0,n1".into()
            }
        );
        assert!(e.to_string().contains("n2"));
        assert_eq!(
            ControllerPeers::parse("n0-127.0.0.1:9877", "0").unwrap_err(),
            PeersError::BadId("0".into())
        );
    }

    #[test]
    fn node_names_round_trip() {
        for id in [0, 1, 42, u64::MAX] {
            assert_eq!(parse_node_id(&node_name(id)).unwrap(), id);
        }
        assert!(parse_node_id("n18446744073709551616").is_err());
    }
}
