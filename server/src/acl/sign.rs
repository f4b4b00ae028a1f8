//! Request signatures as RocketMQ 4.9's `AclUtils.combineRequestContent` and
//! `AclSigner.calSignature` compute them.
//!
//! The signed content is the values of every `extFields` entry except
//! `Signature`, in key order (Java's `TreeMap` of `String`: UTF-16 code unit
//! order), concatenated and encoded as UTF-8, followed by the body bytes. The
//! signature is standard Base64 (with padding) of HMAC-SHA1 keyed with the
//! secret key's UTF-8 bytes.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// The `extFields` key holding the client's access key.
pub const ACCESS_KEY_FIELD: &str = "AccessKey";
/// The `extFields` key holding the signature; never part of the signed content.
pub const SIGNATURE_FIELD: &str = "Signature";
/// The `extFields` key of a security token (optional, signed like any field).
pub const SECURITY_TOKEN_FIELD: &str = "SecurityToken";
/// `MixAll.UNIQUE_MSG_QUERY_FLAG`: the broker's validator leaves this key out
/// of the content it checks (see [`validator_request_content`]).
pub const UNIQUE_MSG_QUERY_FLAG: &str = "_UNIQUE_KEY_QUERY";

type HmacSha1 = Hmac<Sha1>;

/// Java's `String.compareTo`: UTF-16 code unit order (differs from Rust's
/// byte order only for characters above U+FFFF against U+E000..=U+FFFF).
fn java_string_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

/// `AclUtils.combineRequestContent`: the values of all `fields` except
/// `Signature`, in Java key order, as UTF-8, followed by `body`.
///
/// Takes any iterator of key/value pairs (a `HashMap`, a `BTreeMap`, a
/// slice); keys are expected to be unique.
pub fn combine_request_content<'a, I>(fields: I, body: &[u8]) -> Vec<u8>
where
    I: IntoIterator<Item = (&'a String, &'a String)>,
{
    combine_filtered(fields, body, |key| key != SIGNATURE_FIELD)
}

/// The content the broker's `PlainAccessValidator.parse` verifies: as
/// [`combine_request_content`] but also without the `_UNIQUE_KEY_QUERY`
/// field.
pub fn validator_request_content<'a, I>(fields: I, body: &[u8]) -> Vec<u8>
where
    I: IntoIterator<Item = (&'a String, &'a String)>,
{
    combine_filtered(fields, body, |key| {
        key != SIGNATURE_FIELD && key != UNIQUE_MSG_QUERY_FLAG
    })
}

fn combine_filtered<'a, I>(fields: I, body: &[u8], keep: impl Fn(&str) -> bool) -> Vec<u8>
where
    I: IntoIterator<Item = (&'a String, &'a String)>,
{
    let mut entries: Vec<(&String, &String)> =
        fields.into_iter().filter(|(k, _)| keep(k)).collect();
    entries.sort_by(|a, b| java_string_cmp(a.0, b.0));
    let len = entries.iter().map(|(_, v)| v.len()).sum::<usize>() + body.len();
    let mut out = Vec::with_capacity(len);
    for (_, value) in entries {
        out.extend_from_slice(value.as_bytes());
    }
    out.extend_from_slice(body);
    out
}

/// `AclSigner.calSignature(content, secretKey)`: Base64 (standard alphabet,
/// padded) of HMAC-SHA1 over `content` keyed with `secret_key`'s UTF-8 bytes.
pub fn sign(content: &[u8], secret_key: &str) -> String {
    match mac(content, secret_key) {
        Some(mac) => base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()),
        None => String::new(),
    }
}

/// Whether `signature` (as sent in `extFields`) is the signature of `content`
/// under `secret_key`. The comparison of the MAC takes constant time; a
/// signature that is not valid Base64 of 20 bytes is simply wrong.
pub fn verify(content: &[u8], secret_key: &str, signature: &str) -> bool {
    verify_parts(&[content], secret_key, signature)
}

/// [`verify`] of the content that is `parts` one after the other (the
/// field values, then the body in place), without joining them.
pub fn verify_parts(parts: &[&[u8]], secret_key: &str, signature: &str) -> bool {
    // A SHA-1 MAC is 20 bytes (28 Base64 characters); a longer signature
    // does not fit the buffer and is wrong. No allocation per request.
    let mut buf = [0u8; 32];
    let Ok(n) =
        base64::engine::general_purpose::STANDARD.decode_slice(signature.as_bytes(), &mut buf)
    else {
        return false;
    };
    let given = &buf[..n];
    // RocketMQ compares the Base64 strings; decoding accepts only canonical
    // padded standard Base64, so a string differing from the expected one
    // in any way other than the MAC bytes fails here or at verify_slice.
    let Ok(mut mac) = HmacSha1::new_from_slice(secret_key.as_bytes()) else {
        return false;
    };
    for part in parts {
        mac.update(part);
    }
    mac.verify_slice(given).is_ok()
}

/// The MAC state over `content`. HMAC takes a key of any length, so this is
/// never `None` in practice; `None` makes [`sign`] empty and [`verify`] false.
fn mac(content: &[u8], secret_key: &str) -> Option<HmacSha1> {
    let mut mac = HmacSha1::new_from_slice(secret_key.as_bytes()).ok()?;
    mac.update(content);
    Some(mac)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    // Vectors made with Java 17 (javac/java) by a throwaway program that
    // copies RocketMQ 4.9.7's AclUtils.combineRequestContent (TreeMap of the
    // fields, `Signature` skipped, values as UTF-8, then the body) and
    // AclSigner.calSignature (javax.crypto.Mac "HmacSHA1" keyed with the
    // secret's UTF-8 bytes, Base64 encoded; commons-codec's encodeBase64 and
    // java.util.Base64's basic encoder give the same padded output).
    // Each row: fields, body, secret key, content (hex), signature.
    #[allow(clippy::type_complexity)]
    const JAVA_VECTORS: &[(&[(&str, &str)], &[u8], &str, &str, &str)] = &[
        (
            &[("AccessKey", "RocketMQ"), ("topic", "topicA"), ("Signature", "ignored")],
            b"",
            "12345678",
            "526f636b65744d51746f70696341",
            "Xz7hbuQTTlO6bHQAeJAlb9On2jw=",
        ),
        (
            &[
                ("AccessKey", "rocketmq2"),
                ("b", "TopicTest"),
                ("a", "please_rename_unique_group_name"),
                ("c", "TBW102"),
                ("Signature", "xyz"),
            ],
            b"Hello RocketMQ",
            "12345678",
            "726f636b65746d7132706c656173655f72656e616d655f756e697175655f67726f75705f6e616d65546f7069635465737454425731303248656c6c6f20526f636b65744d51",
            "vc75Kh9hh2NaS0I10zKCWPgLVhg=",
        ),
        (
            &[("AccessKey", "RocketMQ"), ("topic", "主题-ü"), ("Z", "upper"), ("_k", "under")],
            &[0, 1, 2, 0xff],
            "sécret-κλειδί",
            "526f636b65744d517570706572756e646572e4b8bbe9a2982dc3bc000102ff",
            "cEx52GooLs1N3LS5LqIx9B55NNQ=",
        ),
        (&[], b"", "12345678", "", "beQgVA0KNM4WtCe68fj2DEn3WWU="),
    ];

    #[test]
    fn verifying_in_parts_is_verifying_the_joined_content() {
        let sig = sign(b"values-then-body", "secret-key");
        assert!(verify_parts(
            &[b"values-", b"then-body"],
            "secret-key",
            &sig
        ));
        assert!(verify_parts(
            &[b"values-then-body", b""],
            "secret-key",
            &sig
        ));
        assert!(!verify_parts(
            &[b"values-", b"then-bodY"],
            "secret-key",
            &sig
        ));
        assert!(!verify_parts(
            &[b"values-", b"then-body"],
            "other-key",
            &sig
        ));
    }

    #[test]
    fn java_vectors() {
        for (i, (pairs, body, secret, content_hex, signature)) in JAVA_VECTORS.iter().enumerate() {
            let map = fields(pairs);
            let content = combine_request_content(&map, body);
            assert_eq!(hex(&content), *content_hex, "vector {i} content");
            assert_eq!(sign(&content, secret), *signature, "vector {i} signature");
            assert!(verify(&content, secret, signature), "vector {i} verify");
            // The same fields in a BTreeMap give the same content.
            let sorted: BTreeMap<String, String> = map.into_iter().collect();
            assert_eq!(
                combine_request_content(&sorted, body),
                content,
                "vector {i} btree"
            );
        }
    }

    #[test]
    fn verify_rejects_wrong_signatures() {
        let content = b"RocketMQtopicA";
        let good = sign(content, "12345678");
        assert!(verify(content, "12345678", &good));
        assert!(!verify(content, "12345679", &good));
        assert!(!verify(b"RocketMQtopicB", "12345678", &good));
        assert!(!verify(content, "12345678", ""));
        assert!(!verify(content, "12345678", "not base64!"));
        assert!(!verify(content, "12345678", &good[..good.len() - 1]));
        assert!(!verify(content, "12345678", &format!("{good}AAAA")));
        // Valid Base64 of the wrong length, and longer than any MAC.
        assert!(!verify(content, "12345678", "AAAA"));
        assert!(!verify(content, "12345678", &"A".repeat(4096)));
    }

    #[test]
    fn validator_content_skips_unique_key_query() {
        let map = fields(&[
            ("AccessKey", "ak"),
            ("_UNIQUE_KEY_QUERY", "true"),
            ("topic", "t"),
        ]);
        assert_eq!(validator_request_content(&map, b"x"), b"aktx".to_vec());
        assert_eq!(combine_request_content(&map, b"x"), b"aktruetx".to_vec());
    }

    #[test]
    fn key_order_is_utf16_order() {
        // U+FF21 (one UTF-16 unit 0xFF21) sorts after U+1F600 (surrogates
        // 0xD83D..) in Java, before it in UTF-8 byte order.
        let map = fields(&[("\u{FF21}", "wide"), ("\u{1F600}", "emoji")]);
        assert_eq!(combine_request_content(&map, b""), b"emojiwide".to_vec());
    }
}
