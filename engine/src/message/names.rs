//! Topic and group names: what characters and lengths are legal.

use super::MAX_TOPIC_LEN;

/// Longest consumer or producer group name (RocketMQ 4.x's `Validators.checkGroup`,
/// `CHARACTER_MAX_LENGTH`).
pub const MAX_GROUP_LEN: usize = 255;

/// Whether `b` may appear in a topic or group name: `[%|a-zA-Z0-9_-]`.
const fn legal_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'%' | b'|' | b'_' | b'-')
}

/// Check a topic name as RocketMQ's `TopicValidator` does: not empty, at most
/// [`MAX_TOPIC_LEN`] characters of `[%|a-zA-Z0-9_-]`. The error names the rule
/// and quotes at most the first 64 characters of the name.
pub fn validate_topic(topic: &str) -> Result<(), String> {
    if topic.is_empty() || topic.len() > MAX_TOPIC_LEN {
        return Err(name_error("topic", topic, MAX_TOPIC_LEN));
    }
    // Every put checks its topic: one table lookup per byte, and the
    // offending character only looked for when there is one.
    const fn legal_bytes() -> [bool; 256] {
        let mut t = [false; 256];
        let mut b = 0;
        while b < 256 {
            t[b] = legal_name_byte(b as u8);
            b += 1;
        }
        t
    }
    const LEGAL: [bool; 256] = legal_bytes();
    if topic.bytes().all(|b| LEGAL[b as usize]) {
        return Ok(());
    }
    Err(name_error("topic", topic, MAX_TOPIC_LEN))
}

/// Check a consumer or producer group name as RocketMQ's clients do
/// (`Validators.checkGroup`): not empty, at most [`MAX_GROUP_LEN`] characters
/// of `[%|a-zA-Z0-9_-]`. The error names the rule and quotes at most the first
/// 64 characters of the name.
///
/// A group's retry topic `%RETRY%<group>` is a valid topic only for groups of
/// at most 120 characters (the limit RocketMQ 5 puts on groups for that reason).
pub fn validate_group(group: &str) -> Result<(), String> {
    if !group.is_empty() && group.len() <= MAX_GROUP_LEN && group.bytes().all(legal_name_byte) {
        return Ok(());
    }
    Err(name_error("group", group, MAX_GROUP_LEN))
}

/// At most the first 64 characters of `name` (escaped), for error messages:
/// a refusal never echoes a huge name back.
pub fn name_for_message(name: &str) -> String {
    const SHOWN: usize = 64;
    let mut out: String = name
        .chars()
        .take(SHOWN)
        .flat_map(char::escape_debug)
        .collect();
    if name.chars().nth(SHOWN).is_some() {
        out.push_str(&format!("...({} bytes)", name.len()));
    }
    out
}

/// Why `name` is not a valid `kind` name of at most `max` bytes.
fn name_error(kind: &str, name: &str, max: usize) -> String {
    if name.is_empty() {
        return format!("{kind} is empty (blank {kind} names are not allowed)");
    }
    if name.len() > max {
        return format!(
            "{kind} `{}` is {} bytes, longer than {max} (the limit for a {kind} name)",
            name_for_message(name),
            name.len()
        );
    }
    let c = name
        .chars()
        .find(|c| !(c.is_ascii() && legal_name_byte(*c as u8)))
        .unwrap_or('?');
    format!(
        "{kind} `{}` contains the illegal character {c:?} (allowed: ^[%|a-zA-Z0-9_-]+$)",
        name_for_message(name)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_validation() {
        assert!(validate_topic("Topic_A-1%|x").is_ok());
        assert!(validate_topic("").is_err());
        assert!(validate_topic("a b").is_err());
        assert!(validate_topic(&"x".repeat(128)).is_err());
        assert!(validate_topic(&"x".repeat(127)).is_ok());
        assert!(validate_group(&"g".repeat(255)).is_ok());
        assert!(validate_group("CID_RMQ_SYS_TRANS").is_ok());
        for bad in ["", "a.b", "a/b", "a b", "é", "g\n"] {
            assert!(validate_group(bad).is_err(), "{bad:?}");
            assert!(validate_topic(bad).is_err(), "{bad:?}");
        }
        let huge = "g".repeat(8 << 20);
        let why = validate_group(&huge).unwrap_err();
        assert!(why.contains("longer than 255") && why.len() < 200, "{why}");
        let why = validate_group(&format!("{}.", "g".repeat(200))).unwrap_err();
        assert!(why.contains("'.'") && why.len() < 200, "{why}");
        assert!(validate_group("").unwrap_err().contains("empty"));
    }
}
