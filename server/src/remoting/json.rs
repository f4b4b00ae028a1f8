//! fastjson compatibility: RocketMQ's Java side writes maps with integer keys
//! unquoted (`{0:"127.0.0.1:10911"}`), which is not standard JSON.

use serde_json::Value;

/// Rewrite fastjson text so that unquoted integer object keys are quoted, leaving
/// everything else (strings, array elements, values) untouched.
pub fn quote_integer_keys(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len() + 16);
    // Stack of containers: true = object, false = array.
    let mut stack: Vec<bool> = Vec::new();
    let mut expect_key = false;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'"' => {
                // Copy the whole string, honouring escapes.
                let start = i;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                let end = (i + 1).min(bytes.len());
                out.push_str(&text[start..end]);
                i = end;
                expect_key = false;
                continue;
            }
            b'{' => {
                stack.push(true);
                expect_key = true;
            }
            b'[' => {
                stack.push(false);
                expect_key = false;
            }
            b'}' | b']' => {
                stack.pop();
                expect_key = false;
            }
            b',' => expect_key = stack.last() == Some(&true),
            b':' => expect_key = false,
            b'-' | b'0'..=b'9' if expect_key => {
                let start = i;
                i += 1;
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
                out.push('"');
                out.push_str(&text[start..i]);
                out.push('"');
                expect_key = false;
                continue;
            }
            c if c.is_ascii_whitespace() => {}
            _ => expect_key = false,
        }
        // Multi-byte UTF-8 sequences are copied byte run by byte run via char boundaries.
        let ch_len = text[i..].chars().next().map(char::len_utf8).unwrap_or(1);
        out.push_str(&text[i..i + ch_len]);
        i += ch_len;
    }
    out
}

/// Parse JSON that may use fastjson's unquoted integer keys.
///
/// # Errors
/// The serde_json error when the text is not JSON even after quoting keys.
pub fn parse_lenient(text: &str) -> Result<Value, serde_json::Error> {
    match serde_json::from_str(text) {
        Ok(v) => Ok(v),
        Err(_) => serde_json::from_str(&quote_integer_keys(text)),
    }
}

/// A JSON string literal.
pub fn string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string())
}

/// Write an integer-keyed map, keys quoted or (fastjson default) not.
pub fn int_key_map<'a, I, K>(entries: I, quote: bool) -> String
where
    I: IntoIterator<Item = (K, &'a str)>,
    K: std::fmt::Display,
{
    let mut s = String::from("{");
    for (i, (k, v)) in entries.into_iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        if quote {
            s.push('"');
            s.push_str(&k.to_string());
            s.push('"');
        } else {
            s.push_str(&k.to_string());
        }
        s.push(':');
        s.push_str(v);
    }
    s.push('}');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_integer_keys() {
        let t = r#"{"offsetTable":{"T@g":{0:12,1:-3}},"a":[1,2,{3:"x,4:"}], -7 :1}"#;
        let q = quote_integer_keys(t);
        assert_eq!(
            q,
            r#"{"offsetTable":{"T@g":{"0":12,"1":-3}},"a":[1,2,{"3":"x,4:"}], "-7" :1}"#
        );
        let v = parse_lenient(t).unwrap();
        assert_eq!(v["offsetTable"]["T@g"]["1"], -3);
        assert_eq!(
            quote_integer_keys("{\"é\":{1:\"ü\"}}"),
            "{\"é\":{\"1\":\"ü\"}}"
        );
    }

    #[test]
    fn writes_int_key_maps() {
        let a = string("a");
        assert_eq!(int_key_map([(0, a.as_str())], false), r#"{0:"a"}"#);
        assert_eq!(int_key_map([(0, a.as_str())], true), r#"{"0":"a"}"#);
    }
}
