//! Remote address patterns of `plain_acl.yml` (`whiteRemoteAddress` and
//! `globalWhiteRemoteAddresses`), with RocketMQ 4.9's
//! `RemoteAddressStrategyFactory` semantics:
//!
//! | pattern | meaning |
//! | --- | --- |
//! | blank (empty, spaces, or no value) | matches **nothing** (`BlankRemoteAddressStrategy`) |
//! | `*`, `*.*.*.*`, `*:*:*:*:*:*:*:*` | matches every peer, even one without a known address |
//! | `192.168.1.1`, `::1` | that one address |
//! | `192.168.1.{1,2,3}`, `2001:db8::{1,2}` | the prefix followed by each listed end |
//! | `192.168.1.1,192.168.1.2` | each listed address |
//! | `192.168.1.*`, `192.168.*.*`, `192.168.1.1-100`, `192.168.1-10.*` | the first `*` or `a-b` segment (2nd, 3rd or 4th) is a range, the segments before it must be equal |
//! | `1050:0:0:0:5:600:300c:*`, `1050::5:600:300c:1-ff`, `2:0:0:0:ac5:78:1-200:*` | IPv6: the last group (`*` or hex `a-b`), or the one before a final `*`, is a range; the groups before it must be equal |
//!
//! ferromq rejects at load, as config errors, some patterns RocketMQ 4.9
//! accepts and then never matches or fails on at request time (a range
//! ending at 0, a pattern without any range segment, `*` in the first
//! segment), and, for IPv4 ranges, segments after the range segment other
//! than `*` (RocketMQ ignores them, which would match more than written).

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A parsed remote address pattern; see the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressPattern {
    text: String,
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// Blank: never matches.
    Nothing,
    /// `*`: always matches.
    Any,
    /// One or more exact addresses.
    Set(HashSet<IpAddr>),
    /// IPv4: the first `head.len()` octets, as decimal text, equal `head`;
    /// octet number `head.len()` is in `start..=end`.
    V4Range {
        head: Vec<String>,
        start: u8,
        end: u8,
    },
    /// IPv6: the first `head.len()` groups equal `head`; group number
    /// `head.len()` is in `start..=end`.
    V6Range {
        head: Vec<u16>,
        start: u16,
        end: u16,
    },
}

/// Why a remote address pattern is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid remote address pattern {pattern:?}: {reason}")]
pub struct AddressPatternError {
    /// The pattern as written.
    pub pattern: String,
    /// What is wrong with it.
    pub reason: String,
}

fn err(pattern: &str, reason: impl Into<String>) -> AddressPatternError {
    AddressPatternError {
        pattern: pattern.to_string(),
        reason: reason.into(),
    }
}

impl AddressPattern {
    /// The pattern of a missing or blank `whiteRemoteAddress`: matches no peer.
    pub fn nothing() -> Self {
        AddressPattern {
            text: String::new(),
            kind: Kind::Nothing,
        }
    }

    /// Parses a pattern as RocketMQ 4.9's `RemoteAddressStrategyFactory` does.
    pub fn parse(text: &str) -> Result<Self, AddressPatternError> {
        let kind = if text.trim().is_empty() {
            Kind::Nothing
        } else if matches!(text, "*" | "*.*.*.*" | "*:*:*:*:*:*:*:*") {
            Kind::Any
        } else if text.ends_with('}') {
            Kind::Set(parse_braces(text)?)
        } else if text.contains(',') {
            let mut set = HashSet::new();
            for part in text.split(',').filter(|p| !p.is_empty()) {
                set.insert(parse_exact(text, part)?);
            }
            Kind::Set(set)
        } else if text.contains('*') || text.contains('-') {
            if text.contains(':') {
                parse_v6_range(text)?
            } else {
                parse_v4_range(text)?
            }
        } else {
            Kind::Set(HashSet::from([parse_exact(text, text)?]))
        };
        Ok(AddressPattern {
            text: text.to_string(),
            kind,
        })
    }

    /// Whether a peer at `addr` (no port) matches. `None` (address unknown)
    /// matches only `*`. An IPv4-mapped IPv6 address is taken as IPv4.
    pub fn matches(&self, addr: Option<IpAddr>) -> bool {
        let addr = match (&self.kind, addr) {
            (Kind::Any, _) => return true,
            (Kind::Nothing, _) | (_, None) => return false,
            (_, Some(addr)) => addr.to_canonical(),
        };
        match (&self.kind, addr) {
            (Kind::Set(set), addr) => set.contains(&addr),
            (Kind::V4Range { head, start, end }, IpAddr::V4(v4)) => {
                let octets = v4.octets();
                head.iter().zip(octets).all(|(h, o)| *h == o.to_string())
                    && octets
                        .get(head.len())
                        .is_some_and(|o| (*start..=*end).contains(o))
            }
            (Kind::V6Range { head, start, end }, IpAddr::V6(v6)) => {
                let groups = v6.segments();
                head.iter().zip(groups).all(|(h, g)| *h == g)
                    && groups
                        .get(head.len())
                        .is_some_and(|g| (*start..=*end).contains(g))
            }
            _ => false,
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for AddressPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// One address, valid as commons-validator's `InetAddressValidator` wants
/// (dotted decimal IPv4 without leading zeros, or IPv6).
fn parse_exact(pattern: &str, addr: &str) -> Result<IpAddr, AddressPatternError> {
    if let Ok(v4) = addr.parse::<Ipv4Addr>() {
        return Ok(IpAddr::V4(v4));
    }
    if let Ok(v6) = addr.parse::<Ipv6Addr>() {
        return Ok(IpAddr::V6(v6));
    }
    Err(err(
        pattern,
        format!("{addr:?} is not an IPv4 or IPv6 address"),
    ))
}

/// `192.168.1.{1,2,3}` or `2001:db8::{1,2}`: the text before `{` followed by
/// each comma-separated item (empty items skipped, as StringUtils.split does).
fn parse_braces(text: &str) -> Result<HashSet<IpAddr>, AddressPatternError> {
    let (prefix, last) = if text.contains(':') {
        (
            text.rfind(':').map(|i| &text[..=i]),
            text.rsplit(':').next(),
        )
    } else {
        if text.split('.').filter(|p| !p.is_empty()).count() < 4 {
            return Err(err(text, "a {..} list must end a 4-part IPv4 address"));
        }
        (
            text.rfind('.').map(|i| &text[..=i]),
            text.rsplit('.').next(),
        )
    };
    let (Some(prefix), Some(last)) = (prefix, last) else {
        return Err(err(text, "a {..} list must follow an address prefix"));
    };
    let Some(items) = last.strip_prefix('{').and_then(|l| l.strip_suffix('}')) else {
        return Err(err(text, "a {..} list must be the whole last segment"));
    };
    let mut set = HashSet::new();
    for item in items.split(',').filter(|i| !i.is_empty()) {
        set.insert(parse_exact(text, &format!("{prefix}{item}"))?);
    }
    if set.is_empty() {
        return Err(err(text, "empty {..} list"));
    }
    Ok(set)
}

/// `a-b` (decimal or hex) or `*`: the inclusive range of one segment.
fn parse_range_segment(
    pattern: &str,
    seg: &str,
    radix: u32,
    max: u32,
) -> Result<Option<(u32, u32)>, AddressPatternError> {
    let seg = seg.trim();
    if seg == "*" {
        return Ok(Some((0, max)));
    }
    let Some((a, b)) = seg.split_once('-') else {
        return Ok(None);
    };
    let parse = |s: &str| {
        u32::from_str_radix(s.trim(), radix)
            .ok()
            .filter(|n| *n <= max)
    };
    match (parse(a), parse(b)) {
        (Some(start), Some(end)) if start <= end && end > 0 => Ok(Some((start, end))),
        _ => Err(err(
            pattern,
            format!("range {seg:?} must be start-end with start <= end, 0 < end <= {max}"),
        )),
    }
}

fn parse_v4_range(text: &str) -> Result<Kind, AddressPatternError> {
    let segs: Vec<&str> = text.split('.').collect();
    if segs.len() != 4 || segs.iter().any(|s| s.trim().is_empty()) {
        return Err(err(
            text,
            "an IPv4 range pattern has 4 dot-separated segments",
        ));
    }
    // RocketMQ looks for the range in the 2nd, 3rd then 4th segment.
    let mut found = None;
    for (i, seg) in segs.iter().enumerate().skip(1) {
        if let Some(range) = parse_range_segment(text, seg, 10, 255)? {
            found = Some((i, range));
            break;
        }
    }
    let Some((index, (start, end))) = found else {
        return Err(err(text, "no '*' or 'a-b' range in the 2nd to 4th segment"));
    };
    let mut head = Vec::with_capacity(index);
    for seg in &segs[..index] {
        let seg = seg.trim();
        if seg.parse::<u8>().is_err() {
            return Err(err(text, format!("{seg:?} is not a number 0-255")));
        }
        head.push(seg.to_string());
    }
    if segs[index + 1..].iter().any(|s| s.trim() != "*") {
        return Err(err(text, "segments after the range segment must be '*'"));
    }
    Ok(Kind::V4Range {
        head,
        start: start as u8,
        end: end as u8,
    })
}

/// IPv6 ranges: `AclUtils.IPv6AddressCheck` then the head as
/// `AclUtils.v6ipProcess` expands it.
fn parse_v6_range(text: &str) -> Result<Kind, AddressPatternError> {
    let asterisk = text.find('*');
    let minus = text.contains('-');
    if let Some(a) = asterisk {
        if a != text.len() - 1 {
            return Err(err(text, "'*' may only end an IPv6 pattern"));
        }
    }
    let groups: Vec<&str> = text.split(':').collect();
    // The range segment is the last one, or the one before a final '*'.
    let (range_seg, head_text) = match (asterisk.is_some(), minus) {
        (true, true) => {
            if groups.len() < 3 || groups[groups.len() - 1] != "*" {
                return Err(err(
                    text,
                    "an IPv6 range with '*' looks like 'a:b:...:1-ff:*'",
                ));
            }
            let cut =
                text.len() - groups[groups.len() - 1].len() - groups[groups.len() - 2].len() - 2;
            (groups[groups.len() - 2], &text[..cut])
        }
        _ => {
            let last = groups[groups.len() - 1];
            let cut = text.len() - last.len() - 1;
            (last, &text[..cut])
        }
    };
    if range_seg.contains('-') && range_seg.starts_with('-') {
        return Err(err(text, "a range may not start with '-'"));
    }
    let Some((start, end)) = parse_range_segment(text, range_seg, 16, 0xffff)? else {
        return Err(err(
            text,
            "the last IPv6 group must be '*' or a hex range 'a-b'",
        ));
    };
    if head_text.contains('-') || head_text.contains('*') {
        return Err(err(
            text,
            "only the last IPv6 group (or the one before a final '*') may be a range",
        ));
    }
    let part = if asterisk.is_some() && minus { 6 } else { 7 };
    let head = expand_v6(head_text, part).ok_or_else(|| {
        err(
            text,
            format!("{head_text:?} is not 1 to {part} IPv6 groups"),
        )
    })?;
    Ok(Kind::V6Range {
        head,
        start: start as u16,
        end: end as u16,
    })
}

/// `AclUtils.expandIP(text, part)`, parsed: `::` widened so the text has
/// `part` groups, each group hex 0..=ffff. Without `::` the head may have
/// fewer groups (RocketMQ accepts `1050:0005:0600:300c:3261:*`: the range is
/// then the group after them and the rest is not looked at).
fn expand_v6(text: &str, part: usize) -> Option<Vec<u16>> {
    let separators = text.matches(':').count();
    let expanded = if part > separators && text.contains("::") {
        let pad = ":".repeat(part - separators + 1);
        text.replacen("::", &pad, 1)
    } else {
        text.to_string()
    };
    let groups: Vec<u16> = expanded
        .split(':')
        .map(|g| {
            if g.is_empty() {
                Some(0)
            } else if g.len() <= 4 {
                u16::from_str_radix(g, 16).ok()
            } else {
                None
            }
        })
        .collect::<Option<_>>()?;
    (!groups.is_empty() && groups.len() <= part).then_some(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().expect("test address"))
    }

    #[test]
    fn match_table() {
        // (pattern, address, matches)
        let table: &[(&str, &str, bool)] = &[
            ("*", "1.2.3.4", true),
            ("*.*.*.*", "::1", true),
            ("*:*:*:*:*:*:*:*", "10.0.0.1", true),
            ("192.168.1.1", "192.168.1.1", true),
            ("192.168.1.1", "192.168.1.2", false),
            ("192.168.1.1", "::ffff:192.168.1.1", true),
            ("192.168.0.*", "192.168.0.77", true),
            ("192.168.0.*", "192.168.1.77", false),
            ("192.168.*.*", "192.168.200.1", true),
            ("192.168.*.*", "192.169.0.1", false),
            ("10.*.*.*", "10.1.2.3", true),
            ("192.168.1.1-100", "192.168.1.1", true),
            ("192.168.1.1-100", "192.168.1.100", true),
            ("192.168.1.1-100", "192.168.1.101", false),
            ("192.168.1.1-100", "192.168.1.0", false),
            ("192.168.1-10.*", "192.168.10.255", true),
            ("192.168.1-10.*", "192.168.11.1", false),
            ("192.168.1.{1,2,3}", "192.168.1.2", true),
            ("192.168.1.{1,2,3}", "192.168.1.4", false),
            ("192.168.1.1,192.168.1.9", "192.168.1.9", true),
            ("192.168.1.1,192.168.1.9", "192.168.1.5", false),
            ("::1", "::1", true),
            ("0:0:0:0:0:0:0:1", "::1", true),
            ("2001:db8::{1,2}", "2001:db8::2", true),
            ("2001:db8::{1,2}", "2001:db8::3", false),
            (
                "1050:0000:0000:0000:0005:0600:300c:*",
                "1050::5:600:300c:abcd",
                true,
            ),
            (
                "1050:0000:0000:0000:0005:0600:300c:*",
                "1050::5:600:300d:1",
                false,
            ),
            ("1050::0005:0600:300c:1-ff", "1050::5:600:300c:ff", true),
            ("1050::0005:0600:300c:1-ff", "1050::5:600:300c:100", false),
            ("2:0:0:0:ac5:78:1-200:*", "2::ac5:78:200:ffff", true),
            ("2:0:0:0:ac5:78:1-200:*", "2::ac5:78:201:0", false),
            ("2::ac5:78:1-200:*", "2::ac5:78:1:1", true),
            ("192.168.0.*", "::1", false),
            // From RocketMQ 4.9.7's RemoteAddressStrategyTest.
            ("192.100-150.*.*", "192.130.0.2", true),
            ("192.100-150.*.*", "192.151.0.2", false),
            ("127.0.1-200.*", "127.0.200.255", true),
            ("127.0.1-200.*", "127.0.0.1", false),
            ("127.*.*.*", "127.0.0.255", true),
            ("192.168.1.{1}", "192.168.1.1", true),
            ("1050::0005:0600:300c:*", "1050::5:600:300c:ffff", true),
            ("1050::0005:0600:3001:*", "1050::5:600:300c:1", false),
            ("1050::0005:0600:300c:1-200", "1050::5:600:300c:200", true),
            ("1050::0005:0600:300c:1-200", "1050::5:600:300c:201", false),
            (
                "1050::0005:0600:300c:1-200:*",
                "1050::5:600:300c:1:ffff",
                true,
            ),
            (
                "1050::0005:0600:300c:1-200:*",
                "1050::5:600:300c:201:0",
                false,
            ),
            (
                "1050:0005:0600:300c:3261:*",
                "1050:5:600:300c:3261:7::9",
                true,
            ),
            (
                "1050:0005:0600:300c:3261:*",
                "1050:5:600:300c:3262::",
                false,
            ),
            (
                "1050::0005:0600:300c:3261:{1,2,3}",
                "1050::5:600:300c:3261:3",
                true,
            ),
            (
                "1050::0005:0600:300c:3261:1-20:*",
                "1050:0:0:5:600:300c:3261:1",
                false,
            ),
            (
                "1050::0005:0600:300c:3261:1-20:*",
                "1050:0:5:600:300c:3261:14:1",
                true,
            ),
        ];
        for (pattern, addr, want) in table {
            let p = AddressPattern::parse(pattern).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(p.matches(ip(addr)), *want, "{pattern} vs {addr}");
        }
    }

    #[test]
    fn blank_matches_nothing_and_any_matches_unknown() {
        for blank in ["", "  "] {
            let p = AddressPattern::parse(blank).expect("blank is valid");
            assert!(!p.matches(ip("127.0.0.1")));
            assert!(!p.matches(None));
        }
        assert!(!AddressPattern::nothing().matches(ip("127.0.0.1")));
        assert!(AddressPattern::parse("*").expect("valid").matches(None));
        assert!(!AddressPattern::parse("192.168.0.*")
            .expect("valid")
            .matches(None));
    }

    #[test]
    fn invalid_patterns() {
        for bad in [
            "192.168.1",
            "192.168.1.256",
            "192.168.01.1",
            "abc",
            "192.168.1.*.1",
            "192.168.*",
            "192.168.1.0-0",
            "192.168.1.100-1",
            "192.168.1.1-256",
            "192.168.1.-1",
            "192.168.1.1-",
            "*.168.1.1",
            "1-2.3.4.5",
            "192.168.*.5",
            "x.168.1.*",
            "192.168.{1,2}",
            "192.168.1.{1,300}",
            "192.168.1.{}",
            "192.168.1.1,abc",
            "2001:db8::*:1",
            "2001:db8::1-ffff1",
            "2001:db8::-1",
            "2001:db8:1-2::1",
            "2001:db8::{1,x}",
            "1:2:3:4:5:6:7:8:*",
            // From RocketMQ 4.9.7's RemoteAddressStrategyTest (all AclException there).
            "256.0.0.1",
            "::1ggg",
            "127.0.0.1,2,3}",
            "::1,2,3}",
            "192.168.{1}",
            "{192.168.1}",
            "{192.168.1.1}",
            "127.0.0.2-1",
            "127.0.0.-1-200",
            "127.0.0.0-256",
        ] {
            let e = AddressPattern::parse(bad);
            assert!(e.is_err(), "{bad:?} should be invalid, got {e:?}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// Any text parses or is refused, and matching never panics.
        #[test]
        fn parse_never_panics(text in "[0-9a-fA-F:.*,{}\\- ]{0,40}|\\PC{0,20}") {
            if let Ok(p) = AddressPattern::parse(&text) {
                let _ = p.matches(ip("192.168.1.1"));
                let _ = p.matches(ip("1050::5:600:300c:1"));
                let _ = p.matches(None);
            }
        }
    }
}
