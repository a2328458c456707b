//! A record's JSON object as its fields, each key with its value's JSON
//! text borrowed from the record (no value is built), and back. The
//! object is valid JSON (the decode stage wrote it, or checked it as a
//! JSON line), so it is cut by hand at its top-level commas and colons,
//! not checked again as serde_json's `RawValue` would (a tenth of the
//! processing flags' CPU time on the benchmark CSV).

use std::borrow::Cow;

use super::value::unquote;
use crate::json;

/// One top-level field of a record.
#[derive(Debug)]
pub(super) struct Field<'a> {
    /// Its key, unescaped.
    pub key: Cow<'a, str>,
    /// Its value's JSON text: as in the record, or as `--infer-types`
    /// made it.
    pub value: Cow<'a, str>,
}

/// The fields of `object`, one valid JSON object, in order; `None` if it
/// is not one after all.
pub(super) fn fields(object: &[u8]) -> Option<Vec<Field<'_>>> {
    let text = std::str::from_utf8(object).ok()?;
    let bytes = text.as_bytes();
    let mut fields = Vec::with_capacity(16);
    let mut at = skip_space(bytes, 0);
    if bytes.get(at) != Some(&b'{') {
        return None;
    }
    at = skip_space(bytes, at + 1);
    if bytes.get(at) == Some(&b'}') {
        return Some(fields);
    }
    loop {
        if bytes.get(at) != Some(&b'"') {
            return None;
        }
        let key_end = string_end(bytes, at)?;
        let key = unquote(&text[at..key_end]);
        at = skip_space(bytes, key_end);
        if bytes.get(at) != Some(&b':') {
            return None;
        }
        at = skip_space(bytes, at + 1);
        let value_end = value_end(bytes, at)?;
        fields.push(Field {
            key,
            value: Cow::Borrowed(&text[at..value_end]),
        });
        at = skip_space(bytes, value_end);
        match bytes.get(at) {
            Some(b',') => at = skip_space(bytes, at + 1),
            Some(b'}') => return Some(fields),
            _ => return None,
        }
    }
}

fn skip_space(bytes: &[u8], mut at: usize) -> usize {
    while matches!(bytes.get(at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        at += 1;
    }
    at
}

/// Where the string whose opening quote is at `at` ends (past its
/// closing quote).
fn string_end(bytes: &[u8], at: usize) -> Option<usize> {
    let mut from = at + 1;
    loop {
        let found = from + memchr::memchr2(b'"', b'\\', &bytes[from..])?;
        match bytes[found] {
            b'\\' => from = found + 2,
            _ => return Some(found + 1),
        }
    }
}

/// Where the value starting at `at` ends.
fn value_end(bytes: &[u8], at: usize) -> Option<usize> {
    match bytes.get(at)? {
        b'"' => string_end(bytes, at),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut index = at;
            loop {
                match bytes.get(index)? {
                    b'"' => {
                        index = string_end(bytes, index)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(index + 1);
                        }
                    }
                    _ => {}
                }
                index += 1;
            }
        }
        // A number, true, false, null: up to what follows a value.
        _ => Some(
            bytes[at..]
                .iter()
                .position(|b| matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
                .map_or(bytes.len(), |len| at + len),
        ),
    }
}

/// Appends `{"key":value,...}` for `fields`, in the order given.
pub(super) fn write<'f, 'a: 'f>(
    out: &mut Vec<u8>,
    fields: impl Iterator<Item = (&'f str, &'f Field<'a>)>,
) {
    out.push(b'{');
    for (index, (key, field)) in fields.enumerate() {
        if index > 0 {
            out.push(b',');
        }
        json::write_str(out, key.as_bytes());
        out.push(b':');
        out.extend_from_slice(field.value.as_bytes());
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_keep_their_order_and_raw_values() {
        let record = br#"{ "b" : [1, {"x":"]"}], "a\"q":"x\ny\\", "n":1.50,"t":null , "e":{}}"#;
        let fields = fields(record).unwrap();
        let read: Vec<(&str, &str)> = fields
            .iter()
            .map(|field| (field.key.as_ref(), field.value.as_ref()))
            .collect();
        assert_eq!(
            read,
            [
                ("b", r#"[1, {"x":"]"}]"#),
                ("a\"q", r#""x\ny\\""#),
                ("n", "1.50"),
                ("t", "null"),
                ("e", "{}")
            ]
        );
        let mut out = Vec::new();
        write(
            &mut out,
            fields.iter().rev().map(|field| (field.key.as_ref(), field)),
        );
        assert_eq!(
            out,
            br#"{"e":{},"t":null,"n":1.50,"a\"q":"x\ny\\","b":[1, {"x":"]"}]}"#
        );
    }

    #[test]
    fn every_field_of_serde_jsons_reading() {
        let record =
            br#"{"a":1,"b":-2.5e3,"c":true,"d":"\u00e9\"","e":[[],[{}]],"f":{"g":[1,"}"]}}"#;
        let ours: Vec<(String, String)> = fields(record)
            .unwrap()
            .into_iter()
            .map(|field| (field.key.into_owned(), field.value.into_owned()))
            .collect();
        let theirs: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(record).unwrap();
        assert_eq!(ours.len(), theirs.len());
        for ((key, value), (their_key, their_value)) in ours.iter().zip(&theirs) {
            assert_eq!(key, their_key);
            assert_eq!(
                &serde_json::from_str::<serde_json::Value>(value).unwrap(),
                their_value
            );
        }
        assert!(fields(b"{}").unwrap().is_empty());
        assert!(fields(b"[1]").is_none());
    }
}
