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

/// Write a map whose keys are objects as fastjson does (`{{"brokerName":..}:{..}}`):
/// each key is the key object's own JSON text, unquoted. This is what
/// RocketMQ's `TopicStatsTable` and `ConsumeStats` carry (`Map<MessageQueue, _>`).
pub fn object_key_map<'a, K, V, I>(entries: I) -> String
where
    K: serde::Serialize + 'a,
    V: serde::Serialize + 'a,
    I: IntoIterator<Item = (&'a K, &'a V)>,
{
    let mut s = String::from("{");
    for (i, (k, v)) in entries.into_iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&serde_json::to_string(k).unwrap_or_else(|_| "null".into()));
        s.push(':');
        s.push_str(&serde_json::to_string(v).unwrap_or_else(|_| "null".into()));
    }
    s.push('}');
    s
}

/// How deep [`parse_fastjson`] nests before it refuses the text.
pub const FASTJSON_MAX_DEPTH: usize = 128;

/// Parse fastjson output, which may have object keys that are not strings:
/// unquoted integers (`{0:5}`) and objects (`{{"topic":"T"}:{..}}`, a
/// `Map<MessageQueue, _>`). A key that is not a string becomes the compact
/// JSON text of the key (`{"brokerName":"b","queueId":0,"topic":"T"}`,
/// fields in the order written), so it can be read back with
/// `serde_json::from_str`.
///
/// # Errors
/// A sentence with the byte position when the text is not such JSON, or
/// nests deeper than [`FASTJSON_MAX_DEPTH`].
pub fn parse_fastjson(text: &str) -> Result<Value, String> {
    let mut p = FjParser {
        s: text.as_bytes(),
        text,
        i: 0,
    };
    let v = p.value(0)?;
    p.ws();
    if p.i != p.s.len() {
        return Err(p.err("trailing characters"));
    }
    Ok(v)
}

struct FjParser<'a> {
    s: &'a [u8],
    text: &'a str,
    i: usize,
}

impl FjParser<'_> {
    fn err(&self, what: &str) -> String {
        format!("fastjson: {what} at byte {}", self.i)
    }

    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, String> {
        if depth > FASTJSON_MAX_DEPTH {
            return Err(self.err("nested too deep"));
        }
        self.ws();
        match self.s.get(self.i) {
            None => Err(self.err("unexpected end")),
            Some(b'{') => self.object(depth),
            Some(b'[') => {
                self.i += 1;
                let mut a = Vec::new();
                if self.eat(b']') {
                    return Ok(Value::Array(a));
                }
                loop {
                    a.push(self.value(depth + 1)?);
                    if self.eat(b',') {
                        continue;
                    }
                    if self.eat(b']') {
                        return Ok(Value::Array(a));
                    }
                    return Err(self.err("expected , or ]"));
                }
            }
            Some(b'"') => self.string().map(Value::String),
            Some(_) => self.scalar(),
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, String> {
        self.i += 1;
        let mut m = serde_json::Map::new();
        if self.eat(b'}') {
            return Ok(Value::Object(m));
        }
        loop {
            self.ws();
            let key = match self.s.get(self.i) {
                Some(b'"') => self.string()?,
                Some(_) => match self.value(depth + 1)? {
                    Value::String(s) => s,
                    other => other.to_string(),
                },
                None => return Err(self.err("unexpected end")),
            };
            if !self.eat(b':') {
                return Err(self.err("expected :"));
            }
            let v = self.value(depth + 1)?;
            m.insert(key, v);
            if self.eat(b',') {
                continue;
            }
            if self.eat(b'}') {
                return Ok(Value::Object(m));
            }
            return Err(self.err("expected , or }"));
        }
    }

    fn string(&mut self) -> Result<String, String> {
        let start = self.i;
        self.i += 1;
        while self.i < self.s.len() && self.s[self.i] != b'"' {
            if self.s[self.i] == b'\\' {
                self.i += 1;
            }
            self.i += 1;
        }
        if self.i >= self.s.len() {
            return Err(self.err("unterminated string"));
        }
        self.i += 1;
        serde_json::from_str(&self.text[start..self.i]).map_err(|e| self.err(&e.to_string()))
    }

    fn scalar(&mut self) -> Result<Value, String> {
        let start = self.i;
        while self.i < self.s.len()
            && matches!(self.s[self.i], b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'+' | b'.')
        {
            self.i += 1;
        }
        let word = &self.text[start..self.i];
        if word.is_empty() {
            return Err(self.err("unexpected character"));
        }
        serde_json::from_str(word).map_err(|_| {
            self.i = start;
            self.err(&format!("not a value: {word:.20}"))
        })
    }
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

    #[derive(
        serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq, PartialOrd, Ord,
    )]
    #[serde(rename_all = "camelCase")]
    struct Mq {
        broker_name: String,
        queue_id: i32,
        topic: String,
    }

    #[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq)]
    #[serde(rename_all = "camelCase")]
    struct Ow {
        broker_offset: i64,
        consumer_offset: i64,
        last_timestamp: i64,
    }

    #[test]
    fn reads_the_issue_example() {
        let t = r#"{"offsetTable":{{"brokerName":"broker-a","queueId":0,"topic":"T"}:{"brokerOffset":10,"consumerOffset":7,"lastTimestamp":0}},"consumeTps":0.0}"#;
        let v = parse_fastjson(t).unwrap();
        let (k, w) = v["offsetTable"].as_object().unwrap().iter().next().unwrap();
        let mq: Mq = serde_json::from_str(k).unwrap();
        assert_eq!((mq.queue_id, mq.topic.as_str()), (0, "T"));
        assert_eq!(w["consumerOffset"], 7);
        assert_eq!(
            parse_fastjson("{0:1,-2:[true,null]}").unwrap()["-2"][0],
            true
        );
        for bad in ["{", "{1}", "[1,]x", "{\"a\":}", "\"x", "{a:1}", "[1 2]"] {
            assert!(parse_fastjson(bad).is_err(), "{bad}");
        }
        let deep = "[".repeat(10_000);
        assert!(parse_fastjson(&deep).unwrap_err().contains("deep"));
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            (-1e9f64..1e9).prop_map(Value::from),
            "[a-z\"\\\\é{}:, ]{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map("[a-z{}:\"]{0,4}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn standard_json_reads_as_serde_json_reads_it(v in json_value()) {
            let text = v.to_string();
            let want: Value = serde_json::from_str(&text).unwrap();
            proptest::prop_assert_eq!(parse_fastjson(&text).unwrap(), want);
        }

        #[test]
        fn any_text_is_answered_without_a_panic(t in "[\\[\\]{}\":,0-9a-z. -]{0,40}") {
            let _ = parse_fastjson(&t);
        }

        #[test]
        fn object_key_maps_round_trip(
            entries in proptest::collection::btree_map(
                ("[a-zA-Z0-9_%\\-\"\\\\é{}:,]{0,12}", "[a-z\\-]{0,8}", -5i32..64),
                (proptest::num::i64::ANY, -1i64..1_000_000, 0i64..i64::MAX),
                0..12,
            )
        ) {
            let items: Vec<(Mq, Ow)> = entries
                .iter()
                .map(|((t, b, q), (x, y, z))| {
                    (Mq { broker_name: b.clone(), queue_id: *q, topic: t.clone() },
                     Ow { broker_offset: *x, consumer_offset: *y, last_timestamp: *z })
                })
                .collect();
            let text = format!(
                "{{\"consumeTps\":1.5,\"offsetTable\":{}}}",
                object_key_map(items.iter().map(|(k, v)| (k, v)))
            );
            let v = parse_fastjson(&text).unwrap();
            let mut back: Vec<(Mq, Ow)> = v["offsetTable"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, w)| (serde_json::from_str(k).unwrap(), serde_json::from_value(w.clone()).unwrap()))
                .collect();
            back.sort_by(|a, b| a.0.cmp(&b.0));
            let mut want = items.clone();
            want.sort_by(|a, b| a.0.cmp(&b.0));
            proptest::prop_assert_eq!(back, want);
            proptest::prop_assert_eq!(v["consumeTps"].as_f64(), Some(1.5));
        }
    }
}
