//! A message's key, timestamp and headers as JSON (for `_origin`), and the
//! record a kept tombstone becomes (`--keep-tombstones`). Bytes are kept
//! exactly: text that is not UTF-8 is written as base64, marked as such,
//! never with replacement characters.

use std::collections::hash_map::{Entry, HashMap};

use super::batcher::Message;
use crate::json;

/// `,"key":...,"timestamp":...,"headers":{...}` for a message's `_origin`;
/// a key that is not UTF-8 is `"key_b64":"..."` instead of `"key"`.
pub(super) fn write_origin_extra(out: &mut Vec<u8>, message: &Message<'_>) {
    write_key(out, b",\"key", message.key);
    out.extend_from_slice(b",\"timestamp\":");
    match message.timestamp {
        Some(millis) => json::write_int(out, millis),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"headers\":");
    write_headers(out, &message.headers);
}

/// `{"_key":...,"_value":null}` for a message without a value, or
/// the value as it is for an empty or blank one: the record
/// `--keep-tombstones` makes.
pub(super) fn write_tombstone(out: &mut Vec<u8>, message: &Message<'_>) {
    write_key(out, b"{\"_key", message.key);
    match message.payload {
        None => out.extend_from_slice(b",\"_value\":null}"),
        // Empty or blank (ASCII white space, so UTF-8): kept as it is.
        Some(value) => {
            out.extend_from_slice(b",\"_value\":");
            json::write_str(out, value);
            out.push(b'}');
        }
    }
}

/// `NAME":"text"` (after `prefix`, which opens the name), `NAME_b64":"..."`
/// for bytes that are not UTF-8, `NAME":null` for none.
fn write_key(out: &mut Vec<u8>, prefix: &[u8], key: Option<&[u8]>) {
    out.extend_from_slice(prefix);
    match key.map(std::str::from_utf8) {
        None => out.extend_from_slice(b"\":null"),
        Some(Ok(text)) => {
            out.extend_from_slice(b"\":");
            json::write_str(out, text.as_bytes());
        }
        Some(Err(_)) => {
            out.extend_from_slice(b"_b64\":\"");
            write_base64(out, key.unwrap_or_default());
            out.push(b'"');
        }
    }
}

/// A message's headers as one JSON object: a name that appears once maps
/// to its value (a string, `{"base64":"..."}` for bytes that are not
/// UTF-8, or null), a name repeated maps to the list of its values in
/// order, so no value is lost and no key repeats.
fn write_headers(out: &mut Vec<u8>, headers: &[(&str, Option<&[u8]>)]) {
    let write_value = |out: &mut Vec<u8>, value: &Option<&[u8]>| match value {
        Some(value) => match std::str::from_utf8(value) {
            Ok(text) => json::write_str(out, text.as_bytes()),
            Err(_) => {
                out.extend_from_slice(b"{\"base64\":\"");
                write_base64(out, value);
                out.extend_from_slice(b"\"}");
            }
        },
        None => out.extend_from_slice(b"null"),
    };
    // Grouped by name, in the order each name first appears; a map keeps
    // the grouping linear in the number of headers.
    let mut groups: Vec<(&str, Vec<&Option<&[u8]>>)> = Vec::with_capacity(headers.len());
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (name, value) in headers {
        match index.entry(name) {
            Entry::Occupied(entry) => groups[*entry.get()].1.push(value),
            Entry::Vacant(entry) => {
                entry.insert(groups.len());
                groups.push((name, vec![value]));
            }
        }
    }
    out.push(b'{');
    for (number, (name, values)) in groups.iter().enumerate() {
        if number > 0 {
            out.push(b',');
        }
        json::write_str(out, name.as_bytes());
        out.push(b':');
        if let [value] = values.as_slice() {
            write_value(out, value);
            continue;
        }
        out.push(b'[');
        for (position, value) in values.iter().enumerate() {
            if position > 0 {
                out.push(b',');
            }
            write_value(out, value);
        }
        out.push(b']');
    }
    out.push(b'}');
}

/// Standard base64 (RFC 4648, with padding).
fn write_base64(out: &mut Vec<u8>, bytes: &[u8]) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]);
            } else {
                out.push(b'=');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(write: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        write(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn base64_is_rfc_4648() {
        for (bytes, expected) in [
            (&b""[..], ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg=="),
            (b"\xff\xfe\x00", "//4A"),
        ] {
            assert_eq!(text(|out| write_base64(out, bytes)), expected);
        }
    }

    #[test]
    fn keys_and_headers_that_are_not_utf8_are_base64() {
        let message = Message {
            key: Some(b"\xff\x00k"),
            headers: vec![("bin", Some(&b"\xc3\x28"[..])), ("txt", Some(&b"ok"[..]))],
            ..Message::default()
        };
        assert_eq!(
            text(|out| write_origin_extra(out, &message)),
            r#","key_b64":"/wBr","timestamp":null,"headers":{"bin":{"base64":"wyg="},"txt":"ok"}"#
        );
    }

    #[test]
    fn a_tombstone_keeps_its_key_and_says_its_value() {
        let mut message = Message {
            key: Some(b"user-7"),
            ..Message::default()
        };
        assert_eq!(
            text(|out| write_tombstone(out, &message)),
            r#"{"_key":"user-7","_value":null}"#
        );
        message.payload = Some(b"");
        message.key = None;
        assert_eq!(
            text(|out| write_tombstone(out, &message)),
            r#"{"_key":null,"_value":""}"#
        );
        message.key = Some(b"\x80");
        assert_eq!(
            text(|out| write_tombstone(out, &message)),
            r#"{"_key_b64":"gA==","_value":""}"#
        );
    }
}
