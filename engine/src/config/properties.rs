//! A reader for Java `.properties` files: [`Properties`].

use std::collections::HashMap;
use std::path::Path;

use super::{ConfigWarning, WarningKind};
use crate::error::{Error, Result};

/// True for the characters trimmed from keys and values: Unicode white space, plus the
/// byte-order mark U+FEFF and the zero-width space U+200B that copy and paste leaves behind.
pub(crate) fn is_blank(c: char) -> bool {
    c.is_whitespace() || c == '\u{feff}' || c == '\u{200b}'
}

/// One key and its value, with the line it was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    key: String,
    value: String,
    line: Option<usize>,
}

/// The entries of a `.properties` file, in the order their keys first appear.
///
/// Syntax (the Java rules):
///
/// - one entry per logical line: `key=value`, `key:value` or `key value`;
/// - a line whose first non-blank character is `#` or `!` is a comment;
/// - a line ending in an odd number of backslashes continues on the next line (the
///   backslash is dropped, and so is the leading white space of the next line);
/// - escapes `\t \n \r \f \\ \uXXXX`; a backslash before any other character stands for
///   that character (`\=`, `\:`, `\ `, `\#`), which is how a key can hold a separator;
/// - a key given twice keeps its last value.
///
/// Differences from Java, all on purpose:
///
/// - Keys and values are trimmed of all Unicode white space (U+00A0 no-break space,
///   U+3000 ideographic space, ...) and of U+FEFF / U+200B, not only of `' '`, `\t`, `\f`.
///   Files pasted from web pages end their lines with no-break spaces; Java keeps them in
///   the value. An escaped blank (`\ `, `\u00A0`) is kept.
/// - Any unescaped Unicode white space ends a key, as a space does in Java.
/// - Files are read as UTF-8 (`Properties.load(InputStream)`, which RocketMQ calls, reads
///   ISO-8859-1); a file that is not valid UTF-8 is read as ISO-8859-1, with a warning.
/// - A malformed `\uXXXX` escape does not fail the load (Java throws): it is kept as text
///   and reported in [`Properties::warnings`]; so is a duplicate key.
///
/// Parsing never fails and never panics, whatever the input.
///
/// # Examples
///
/// ```
/// use ferromq_engine::config::Properties;
///
/// let props = Properties::parse("# broker\nbrokerName = broker-a\u{a0}\nlistenPort:10911\n");
/// assert_eq!(props.get("brokerName"), Some("broker-a"));
/// assert_eq!(props.get("listenPort"), Some("10911"));
/// assert_eq!(props.line("listenPort"), Some(3));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Properties {
    entries: Vec<Entry>,
    index: HashMap<String, usize>,
    warnings: Vec<ConfigWarning>,
}

impl Properties {
    /// An empty set of properties.
    pub fn new() -> Self {
        Properties::default()
    }

    /// Parses the text of a `.properties` file (see [`Properties`] for the syntax).
    ///
    /// Never fails: problems that Java would reject (a malformed `\uXXXX`) or silently accept
    /// (a duplicate key) are kept in [`Properties::warnings`].
    pub fn parse(text: &str) -> Self {
        let mut props = Properties::new();
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let lines = natural_lines(text);
        let mut i = 0;
        while i < lines.len() {
            let first_line = i + 1;
            let first = lines[i].trim_start_matches(is_blank);
            i += 1;
            if first.is_empty() || first.starts_with('#') || first.starts_with('!') {
                continue;
            }
            let mut logical = String::from(first);
            let mut segment_start = 0;
            while ends_with_odd_backslashes(&logical[segment_start..]) {
                logical.pop();
                let Some(next) = lines.get(i) else { break };
                i += 1;
                segment_start = logical.len();
                logical.push_str(next.trim_start_matches(is_blank));
            }
            props.parse_logical_line(&logical, first_line);
        }
        props
    }

    /// Reads and parses a `.properties` file.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the path when the file cannot be read (missing, a directory,
    /// no permission). Syntax problems are not errors: see [`Properties::parse`].
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path)
            .map_err(|e| Error::io(format!("reading properties file {}", path.display()), e))?;
        match String::from_utf8(bytes) {
            Ok(text) => Ok(Properties::parse(&text)),
            Err(e) => {
                let text: String = e.as_bytes().iter().map(|&b| char::from(b)).collect();
                let mut props = Properties::parse(&text);
                props.warnings.insert(
                    0,
                    ConfigWarning {
                        kind: WarningKind::Syntax,
                        key: String::new(),
                        value: String::new(),
                        line: None,
                        message: format!(
                            "{} is not valid UTF-8 (first bad byte at offset {}); \
                             read as ISO-8859-1",
                            path.display(),
                            e.utf8_error().valid_up_to()
                        ),
                    },
                );
                Ok(props)
            }
        }
    }

    /// The value of `key`, if present. Keys are case-sensitive, as in Java.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.index.get(key).map(|&i| self.entries[i].value.as_str())
    }

    /// The line `key`'s value was read from (1-based; the first line of a continued
    /// entry), or `None` when the key is absent or was [inserted](Properties::insert).
    pub fn line(&self, key: &str) -> Option<usize> {
        self.index.get(key).and_then(|&i| self.entries[i].line)
    }

    /// True when `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.index.contains_key(key)
    }

    /// Sets `key` to `value` (both trimmed like parsed ones) and returns the previous value.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) -> Option<String> {
        let key = trim_blank(&key.into()).to_string();
        let value = trim_blank(&value.into()).to_string();
        self.set(key, value, None).map(|(old, _)| old)
    }

    /// The entries as `(key, value)`, in the order the keys first appeared.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.entries
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_str()))
    }

    /// The entries as `(key, value, line)`; `line` is `None` for inserted entries.
    pub fn iter_with_lines(&self) -> impl Iterator<Item = (&str, &str, Option<usize>)> + '_ {
        self.entries
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_str(), e.line))
    }

    /// Number of distinct keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there is no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// What the parser noticed: duplicate keys, malformed escapes, a file that was not UTF-8.
    pub fn warnings(&self) -> &[ConfigWarning] {
        &self.warnings
    }

    /// Stores an entry; returns the previous value and line when the key was present.
    fn set(
        &mut self,
        key: String,
        value: String,
        line: Option<usize>,
    ) -> Option<(String, Option<usize>)> {
        match self.index.get(&key) {
            Some(&i) => {
                let entry = &mut self.entries[i];
                let old_line = std::mem::replace(&mut entry.line, line);
                let old = std::mem::replace(&mut entry.value, value);
                Some((old, old_line))
            }
            None => {
                self.index.insert(key.clone(), self.entries.len());
                self.entries.push(Entry { key, value, line });
                None
            }
        }
    }

    fn parse_logical_line(&mut self, logical: &str, line: usize) {
        let mut problems = Vec::new();
        let chars = unescape(logical, &mut problems);

        let is_sep = |&(c, escaped): &(char, bool)| !escaped && (c == '=' || c == ':');
        let is_gap = |&(c, escaped): &(char, bool)| !escaped && is_blank(c);
        let key_end = chars
            .iter()
            .position(|ch| is_sep(ch) || is_gap(ch))
            .unwrap_or(chars.len());
        let mut pos = key_end;
        while pos < chars.len() && is_gap(&chars[pos]) {
            pos += 1;
        }
        if pos < chars.len() && is_sep(&chars[pos]) {
            pos += 1;
        }
        let key = trim_unescaped(&chars[..key_end]);
        let value = trim_unescaped(&chars[pos..]);

        for problem in problems {
            self.warnings.push(ConfigWarning {
                kind: WarningKind::Syntax,
                key: key.clone(),
                value: value.clone(),
                line: Some(line),
                message: format!("line {line}: {problem}"),
            });
        }
        if let Some((old, old_line)) = self.set(key.clone(), value.clone(), Some(line)) {
            let was = match old_line {
                Some(l) => format!("line {l}"),
                None => "an earlier entry".to_string(),
            };
            self.warnings.push(ConfigWarning {
                kind: WarningKind::DuplicateKey,
                key: key.clone(),
                value,
                line: Some(line),
                message: format!(
                    "`{key}` is set twice: line {line} overrides {was} (which set `{old}`)"
                ),
            });
        }
    }
}

impl<'a> IntoIterator for &'a Properties {
    type Item = (&'a str, &'a str);
    type IntoIter = Box<dyn Iterator<Item = (&'a str, &'a str)> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Properties {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut props = Properties::new();
        for (k, v) in iter {
            props.insert(k, v);
        }
        props
    }
}

/// Trims [`is_blank`] characters from both ends.
pub(crate) fn trim_blank(s: &str) -> &str {
    s.trim_matches(is_blank)
}

/// Splits on `\r\n`, `\r` and `\n`, as Java's `LineReader` does.
fn natural_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let bytes = text.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => {
                lines.push(&text[start..i]);
                start = i + 1;
            }
            b'\r' => {
                lines.push(&text[start..i]);
                if bytes.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if start < text.len() {
        lines.push(&text[start..]);
    }
    lines
}

fn ends_with_odd_backslashes(s: &str) -> bool {
    s.bytes().rev().take_while(|&b| b == b'\\').count() % 2 == 1
}

/// Resolves escapes; each char comes with `true` when it was written escaped.
fn unescape(s: &str, problems: &mut Vec<String>) -> Vec<(char, bool)> {
    let mut out = Vec::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push((c, false));
            continue;
        }
        let Some(e) = chars.next() else {
            // A lone trailing backslash: Java drops it as well.
            break;
        };
        let resolved = match e {
            't' => '\t',
            'n' => '\n',
            'r' => '\r',
            'f' => '\u{c}',
            'u' => {
                let (unit, raw) = read_hex4(&mut chars);
                match unit {
                    None => {
                        problems.push(format!("malformed \\uXXXX escape `\\u{raw}`: kept as text"));
                        out.push(('\\', true));
                        out.push(('u', true));
                        out.extend(raw.chars().map(|c| (c, true)));
                        continue;
                    }
                    Some(hi @ 0xD800..=0xDBFF) => {
                        // A UTF-16 surrogate pair written as two escapes.
                        let mut lookahead = chars.clone();
                        let low = if lookahead.next() == Some('\\') && lookahead.next() == Some('u')
                        {
                            match read_hex4(&mut lookahead).0 {
                                Some(lo @ 0xDC00..=0xDFFF) => Some(lo),
                                _ => None,
                            }
                        } else {
                            None
                        };
                        match low {
                            Some(lo) => {
                                chars = lookahead;
                                let cp = 0x10000
                                    + ((u32::from(hi) - 0xD800) << 10)
                                    + (u32::from(lo) - 0xDC00);
                                char::from_u32(cp).unwrap_or(char::REPLACEMENT_CHARACTER)
                            }
                            None => {
                                problems.push(format!(
                                    "unpaired surrogate `\\u{raw}`: replaced by U+FFFD"
                                ));
                                char::REPLACEMENT_CHARACTER
                            }
                        }
                    }
                    Some(unit) => char::from_u32(u32::from(unit)).unwrap_or_else(|| {
                        problems.push(format!("unpaired surrogate `\\u{raw}`: replaced by U+FFFD"));
                        char::REPLACEMENT_CHARACTER
                    }),
                }
            }
            other => other,
        };
        out.push((resolved, true));
    }
    out
}

/// Reads up to four hex digits; returns the code unit when there were four, and the
/// characters consumed.
fn read_hex4(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> (Option<u16>, String) {
    let mut raw = String::new();
    let mut unit: u16 = 0;
    for _ in 0..4 {
        match chars.peek().and_then(|c| c.to_digit(16)) {
            Some(d) => {
                raw.push(chars.next().unwrap_or('0'));
                // d < 16 and at most four digits: fits in u16.
                unit = (unit << 4) | u16::try_from(d).unwrap_or(0);
            }
            None => return (None, raw),
        }
    }
    (Some(unit), raw)
}

/// Collects chars into a string, dropping unescaped blanks at both ends.
fn trim_unescaped(chars: &[(char, bool)]) -> String {
    let keep = |&(c, escaped): &(char, bool)| escaped || !is_blank(c);
    let Some(start) = chars.iter().position(keep) else {
        return String::new();
    };
    let end = chars.iter().rposition(keep).map_or(start, |e| e + 1);
    chars[start..end].iter().map(|&(c, _)| c).collect()
}

/// Escapes `s` so that [`Properties::parse`] reads it back unchanged, as a key when
/// `is_key` (separators escaped too) or as a value.
pub(crate) fn escape(s: &str, is_key: bool) -> String {
    let mut out = String::with_capacity(s.len());
    let count = s.chars().count();
    for (i, c) in s.chars().enumerate() {
        let at_edge = i == 0 || i + 1 == count;
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\u{c}' => out.push_str("\\f"),
            '=' | ':' if is_key => {
                out.push('\\');
                out.push(c);
            }
            '#' | '!' if i == 0 => {
                out.push('\\');
                out.push(c);
            }
            ' ' if is_key || at_edge => out.push_str("\\ "),
            c if is_blank(c) && (is_key || at_edge) || c.is_control() => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04X}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(props: &Properties) -> Vec<(String, String)> {
        props
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn three_separators() {
        let p = Properties::parse("a=1\nb:2\nc 3\nd\t=\t4\ne  :  5\nf\n");
        assert_eq!(
            kv(&p),
            [
                ("a", "1"),
                ("b", "2"),
                ("c", "3"),
                ("d", "4"),
                ("e", "5"),
                ("f", "")
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        );
    }

    #[test]
    fn only_first_separator_splits() {
        let p = Properties::parse("namesrvAddr=a:9876;b:9876\nk = = v\n");
        assert_eq!(p.get("namesrvAddr"), Some("a:9876;b:9876"));
        assert_eq!(p.get("k"), Some("= v"));
    }

    #[test]
    fn comments_and_blank_lines() {
        let p = Properties::parse("# c\n! c\n   # indented\n\n \t \na=1 # not a comment\n");
        assert_eq!(p.len(), 1);
        assert_eq!(p.get("a"), Some("1 # not a comment"));
        assert_eq!(p.line("a"), Some(6));
    }

    #[test]
    fn comment_line_does_not_continue() {
        let p = Properties::parse("# comment \\\na=1\n");
        assert_eq!(p.get("a"), Some("1"));
    }

    #[test]
    fn continuation_lines() {
        let p = Properties::parse("a=one, \\\n    two, \\\n\tthree\nb=2\n");
        assert_eq!(p.get("a"), Some("one, two, three"));
        assert_eq!(p.line("a"), Some(1));
        assert_eq!(p.line("b"), Some(4));
    }

    #[test]
    fn even_backslashes_do_not_continue() {
        let p = Properties::parse("a=x\\\\\nb=2\n");
        assert_eq!(p.get("a"), Some("x\\"));
        assert_eq!(p.get("b"), Some("2"));
    }

    #[test]
    fn continuation_at_end_of_file() {
        let p = Properties::parse("a=x\\");
        assert_eq!(p.get("a"), Some("x"));
    }

    #[test]
    fn continued_line_starting_with_hash_is_value() {
        let p = Properties::parse("a=x\\\n#y\n");
        assert_eq!(p.get("a"), Some("x#y"));
    }

    #[test]
    fn escapes() {
        let p = Properties::parse(
            "a=t\\tn\\nr\\rf\\fb\\\\\nb=\\u0041\\u00e9\\u4E2D\nc\\=d\\:e\\ f=g\nh=\\q\\#\n",
        );
        assert_eq!(p.get("a"), Some("t\tn\nr\rf\u{c}b\\"));
        assert_eq!(p.get("b"), Some("Aé中"));
        assert_eq!(p.get("c=d:e f"), Some("g"));
        assert_eq!(p.get("h"), Some("q#"));
        assert!(p.warnings().is_empty());
    }

    #[test]
    fn surrogate_pairs() {
        let p = Properties::parse("a=\\uD83D\\uDE00\nb=\\uD83Dx\n");
        assert_eq!(p.get("a"), Some("😀"));
        assert_eq!(p.get("b"), Some("\u{fffd}x"));
        assert_eq!(p.warnings().len(), 1);
        assert_eq!(p.warnings()[0].kind, WarningKind::Syntax);
    }

    #[test]
    fn malformed_unicode_escape_is_kept_and_reported() {
        let p = Properties::parse("a=\\u12zz\n");
        assert_eq!(p.get("a"), Some("\\u12zz"));
        let w = &p.warnings()[0];
        assert_eq!(w.key, "a");
        assert_eq!(w.line, Some(1));
        assert!(w.message.contains("malformed"), "{w}");
    }

    #[test]
    fn unicode_white_space_is_trimmed() {
        let p = Properties::parse(
            "\u{a0}a=1\u{a0} \n\u{3000}b\u{3000}=\u{3000}2\u{3000}\nc=\u{feff}3\u{200b}\n\u{a0} \n",
        );
        assert_eq!(p.get("a"), Some("1"));
        assert_eq!(p.get("b"), Some("2"));
        assert_eq!(p.get("c"), Some("3"));
        assert_eq!(p.len(), 3);
    }

    #[test]
    fn inner_white_space_is_kept() {
        let p = Properties::parse("a = hello\u{a0}world \n");
        assert_eq!(p.get("a"), Some("hello\u{a0}world"));
    }

    #[test]
    fn escaped_blanks_are_kept() {
        let p = Properties::parse("a=\\ x\\ \nb=\\u00a0y\\u00A0\n");
        assert_eq!(p.get("a"), Some(" x "));
        assert_eq!(p.get("b"), Some("\u{a0}y\u{a0}"));
    }

    #[test]
    fn no_break_space_ends_a_key() {
        let p = Properties::parse("brokerName\u{a0}broker-a\n");
        assert_eq!(p.get("brokerName"), Some("broker-a"));
    }

    #[test]
    fn line_endings() {
        let p = Properties::parse("a=1\r\nb=2\rc=3\nd=4");
        assert_eq!(p.get("a"), Some("1"));
        assert_eq!(p.get("b"), Some("2"));
        assert_eq!(p.get("c"), Some("3"));
        assert_eq!(p.get("d"), Some("4"));
        assert_eq!(p.line("d"), Some(4));
    }

    #[test]
    fn byte_order_mark_is_skipped() {
        let p = Properties::parse("\u{feff}a=1\n");
        assert_eq!(p.get("a"), Some("1"));
    }

    #[test]
    fn later_duplicate_wins_and_is_reported() {
        let p = Properties::parse("a=1\nb=x\na=2\n");
        assert_eq!(p.get("a"), Some("2"));
        assert_eq!(p.line("a"), Some(3));
        assert_eq!(kv(&p)[0].0, "a", "first-appearance order is kept");
        let w = &p.warnings()[0];
        assert_eq!(w.kind, WarningKind::DuplicateKey);
        assert!(
            w.message.contains("line 3") && w.message.contains("line 1"),
            "{w}"
        );
    }

    #[test]
    fn insert_and_iterate() {
        let mut p = Properties::new();
        assert!(p.is_empty());
        assert_eq!(p.insert(" a ", "1\u{a0}"), None);
        assert_eq!(p.insert("a", "2"), Some("1".to_string()));
        assert_eq!(p.get("a"), Some("2"));
        assert_eq!(p.line("a"), None);
        assert!(p.contains_key("a"));
        let collected: Properties = [("x", "1"), ("y", "2")].into_iter().collect();
        assert_eq!((&collected).into_iter().count(), 2);
    }

    #[test]
    fn escape_round_trips() {
        for s in [
            "",
            "plain",
            " lead",
            "trail ",
            "\u{a0}nbsp\u{3000}",
            "a=b:c d",
            "#hash",
            "!bang",
            "back\\slash",
            "tab\tnl\ncr\rff\u{c}",
            "中文 😀",
            "\u{0}\u{1f}",
        ] {
            let text = format!("{}={}\n", escape(s, true), escape(s, false));
            let p = Properties::parse(&text);
            assert_eq!(p.get(s), Some(s), "{text:?}");
            assert!(p.warnings().is_empty(), "{text:?}");
        }
    }

    #[test]
    fn missing_file_is_io_error_naming_path() {
        let err = Properties::from_file("/nonexistent/dir/broker.properties").unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err:?}");
        assert!(
            err.to_string()
                .contains("/nonexistent/dir/broker.properties"),
            "{err}"
        );
    }

    #[test]
    fn latin1_file_is_read_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latin1.properties");
        std::fs::write(&path, b"a=caf\xe9\n").unwrap();
        let p = Properties::from_file(&path).unwrap();
        assert_eq!(p.get("a"), Some("café"));
        assert_eq!(p.warnings()[0].kind, WarningKind::Syntax);
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn parse_never_panics(s in any::<String>()) {
                let _ = Properties::parse(&s);
            }

            #[test]
            fn parse_never_panics_on_properties_like_text(
                s in r#"([a-z=: \t\\#!\r\nu0-9A-Fa-f\u{a0}\u{3000}]|\\u[0-9a-fA-F]{0,4}){0,64}"#
            ) {
                let _ = Properties::parse(&s);
            }

            #[test]
            fn escaped_entries_round_trip(k in "\\PC{0,12}", v in "\\PC{0,24}") {
                let text = format!("{}={}\n", escape(&k, true), escape(&v, false));
                let p = Properties::parse(&text);
                prop_assert_eq!(p.get(&k), Some(v.as_str()));
            }
        }
    }
}
