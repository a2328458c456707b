//! JSON lines: each line must be one JSON object, passed through unchanged
//! (surrounding white space trimmed). An object with a key twice, at any
//! depth, is rejected: its meaning differs from one JSON reader to the
//! next, and every output line must be an object without duplicate keys.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};

use super::{json_check, json_escapes, json_keys, Rejection};

/// The name `--origin` adds its object under, unless the record has it.
pub(super) const ORIGIN_KEY: &str = "_origin";

/// A checked JSON line: whether it was a record at all, and the key its
/// `--origin` object would take.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Line {
    /// A blank line: no record.
    Blank,
    /// An object, appended; `origin_key` is the first of `_origin`,
    /// `_origin_2`, `_origin_3`, ... that it lacks at its top level.
    Object { origin_key: Cow<'static, str> },
}

/// Checks that `line` is one JSON object without duplicate keys and
/// appends it.
pub(super) fn encode(line: &[u8], out: &mut Vec<u8>) -> Result<Line, Rejection> {
    let object = line.trim_ascii();
    if object.is_empty() {
        return Ok(Line::Blank);
    }
    // serde_json skips ignored strings without checking their UTF-8, so
    // the line is checked here, once: parsed as text, its keys are not
    // checked again.
    let Ok(text) = std::str::from_utf8(object) else {
        return Err(super::require_utf8(object, || "JSON line".to_string()).unwrap_err());
    };
    let (mut keys, unescaped) = match json_check::object(text, ORIGIN_KEY) {
        Some(checked) => checked,
        // Invalid, or unusual: serde_json decides, and words the error.
        None => (parse(text)?, false),
    };
    // Valid JSON now, its keys checked if it is a flat object of few plain
    // keys; anything else (a nested object, escapes, many keys) gets a
    // scan of its bytes.
    if keys.needs_scan {
        keys = json_keys::scan(object, ORIGIN_KEY);
    }
    if let Some(key) = keys.duplicate {
        let mut quoted = Vec::new();
        crate::json::write_lossy_str(&mut quoted, key.as_bytes());
        return Err(format!(
            "duplicate key {}",
            String::from_utf8_lossy(&quoted)
        ));
    }
    if !unescaped && memchr::memmem::find(object, b"\\u").is_some() {
        if let Some(column) = json_escapes::lone_surrogate(object) {
            return Err(format!(
                "invalid JSON at column {column}: a \\u escape is half of a surrogate pair \
                 (no character)"
            ));
        }
    }
    out.extend_from_slice(object);
    Ok(Line::Object {
        origin_key: free_origin_key(&keys.top_with_prefix),
    })
}

/// serde_json's check that `text` is one JSON object, and of the keys as
/// far as [`ObjectCheck`] goes (`needs_scan` also set for any `{` after
/// the first: a nested object, or only a string holding one).
pub(super) fn parse(text: &str) -> Result<json_keys::Keys, Rejection> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let mut keys = deserializer
        .deserialize_any(ObjectCheck)
        .and_then(|keys| deserializer.end().map(|()| keys))
        .map_err(describe)?;
    keys.needs_scan |= memchr::memchr(b'{', &text.as_bytes()[1..]).is_some();
    Ok(keys)
}

/// The first of `_origin`, `_origin_2`, ... not in `taken`.
pub(super) fn free_origin_key<S: AsRef<str>>(taken: &[S]) -> Cow<'static, str> {
    // A set once there are many: a header can hold a million such names.
    let set: Option<std::collections::HashSet<&str>> =
        (taken.len() > 16).then(|| taken.iter().map(AsRef::as_ref).collect());
    let is_taken = |name: &str| match &set {
        Some(set) => set.contains(name),
        None => taken.iter().any(|t| t.as_ref() == name),
    };
    if !is_taken(ORIGIN_KEY) {
        return Cow::Borrowed(ORIGIN_KEY);
    }
    // `taken` holds at most that many names, so one of these is free.
    (2..=taken.len() + 1)
        .map(|n| format!("{ORIGIN_KEY}_{n}"))
        .find(|name| !is_taken(name))
        .map(Cow::Owned)
        .expect("one of len + 1 names is free")
}

/// Accepts a JSON object (of any content) and nothing else, without
/// building it, and checks its keys as far as [`json_keys::FewKeys`] can.
struct ObjectCheck;

impl<'de> Visitor<'de> for ObjectCheck {
    type Value = json_keys::Keys;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut keys = json_keys::Keys::default();
        let mut few = json_keys::FewKeys::new();
        while let Some(key) = map.next_key_seed(PlainKey)? {
            map.next_value::<IgnoredAny>()?;
            if keys.needs_scan || keys.duplicate.is_some() {
                continue;
            }
            let Some(key) = key else {
                keys.needs_scan = true;
                continue;
            };
            if key.starts_with(ORIGIN_KEY) {
                keys.top_with_prefix.push(key.to_string());
            }
            match few.insert(key) {
                Some(true) => {}
                Some(false) => keys.duplicate = Some(key.to_string()),
                None => keys.needs_scan = true,
            }
        }
        Ok(keys)
    }
}

/// A key as it is in the line, or `None` when it has escapes.
struct PlainKey;

impl<'de> serde::de::DeserializeSeed<'de> for PlainKey {
    type Value = Option<&'de str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for PlainKey {
    type Value = Option<&'de str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Self::Value, E> {
        Ok(Some(key))
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// Turns serde_json's error into a short reason; the position inside the
/// line is kept only where it helps (syntax errors).
fn describe(error: serde_json::Error) -> Rejection {
    let text = error.to_string();
    if let Some(found) = text
        .strip_prefix("invalid type: ")
        .and_then(|rest| rest.split(", expected").next())
    {
        let found = match found.split_whitespace().next() {
            Some("sequence") => "an array".to_string(),
            Some("string") => "a string".to_string(),
            Some("integer") | Some("floating") => "a number".to_string(),
            Some("boolean") => "a boolean".to_string(),
            Some("null") => "null".to_string(),
            _ => found.to_string(),
        };
        return format!("not a JSON object (found {found})");
    }
    let message = text.split(" at line ").next().unwrap_or(&text);
    format!("invalid JSON at column {}: {message}", error.column())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(line: &str) -> Result<bool, Rejection> {
        encode(line.as_bytes(), &mut Vec::new()).map(|line| line != Line::Blank)
    }

    fn origin_key(line: &str) -> Cow<'static, str> {
        match encode(line.as_bytes(), &mut Vec::new()) {
            Ok(Line::Object { origin_key }) => origin_key,
            other => panic!("{other:?}"),
        }
    }

    /// Found by the `json_lines` fuzz target: a lone surrogate in a value
    /// was passed through (serde_json skips it unread there), though the
    /// same in a key was rejected, and readers refuse the line.
    #[test]
    fn a_lone_surrogate_escape_is_rejected_in_a_value_as_in_a_key() {
        let reason = "invalid JSON at column 7: a \\u escape is half of a surrogate pair \
                      (no character)";
        assert_eq!(check(r#"{"a":"\ud800"}"#), Err(reason.to_string()));
        assert!(check(r#"{"\ud800":1}"#).is_err());
        assert_eq!(check(r#"{"a":"\ud83d\ude00"}"#), Ok(true));
    }

    #[test]
    fn a_repeated_key_at_any_depth_is_rejected() {
        assert_eq!(
            check(r#"{"a":1,"a":2}"#).unwrap_err(),
            r#"duplicate key "a""#
        );
        assert_eq!(
            check(r#"{"a":[{"b":1,"c":{"d":1,"d":2}}]}"#).unwrap_err(),
            r#"duplicate key "d""#
        );
        assert_eq!(
            check(r#"{"\u0061 at line 1":1,"a at line 1":2}"#).unwrap_err(),
            r#"duplicate key "a at line 1""#
        );
        let many: Vec<String> = (0..50).map(|k| format!("\"k{k}\":{k}")).collect();
        assert_eq!(check(&format!("{{{}}}", many.join(","))), Ok(true));
        let repeated = format!("{{{},\"k3\":0}}", many.join(","));
        assert_eq!(check(&repeated).unwrap_err(), r#"duplicate key "k3""#);
        assert_eq!(
            check(r#"{"a":{"a":{"a":1}},"b":[{"a":1},{"a":2}]}"#),
            Ok(true)
        );
    }

    #[test]
    fn the_origin_key_is_the_first_free_one_at_the_top_level() {
        assert_eq!(origin_key(r#"{"a":{"_origin":1}}"#), "_origin");
        assert_eq!(origin_key(r#"{"_origin":1}"#), "_origin_2");
        assert_eq!(origin_key(r#"{"_origin_2":1,"_origin":1}"#), "_origin_3");
        assert_eq!(origin_key(r#"{"_origin_3":1,"_origin":1}"#), "_origin_2");
        assert_eq!(origin_key(r#"{"_origins":1,"_origin_x":1}"#), "_origin");
    }

    #[test]
    fn objects_pass_through_trimmed() {
        let mut out = Vec::new();
        assert_eq!(
            encode(b"  {\"a\": [1, {\"b\": null}]}\r", &mut out),
            Ok(Line::Object {
                origin_key: Cow::Borrowed("_origin")
            })
        );
        assert_eq!(out, b"{\"a\": [1, {\"b\": null}]}");
    }

    #[test]
    fn blank_lines_are_skipped() {
        assert_eq!(check("   \r"), Ok(false));
    }

    #[test]
    fn everything_else_is_rejected_with_a_reason() {
        assert_eq!(
            check("[1]").unwrap_err(),
            "not a JSON object (found an array)"
        );
        assert_eq!(
            check("42").unwrap_err(),
            "not a JSON object (found a number)"
        );
        assert_eq!(
            check("\"s\"").unwrap_err(),
            "not a JSON object (found a string)"
        );
        assert_eq!(check("null").unwrap_err(), "not a JSON object (found null)");
        assert_eq!(
            check("{\"a\":1} x").unwrap_err(),
            "invalid JSON at column 9: trailing characters"
        );
        assert_eq!(
            check("{\"a\":}").unwrap_err(),
            "invalid JSON at column 6: expected value"
        );
        assert!(check("{\"a\":\"\u{0}\"}").is_err());
        assert_eq!(
            encode(b"{\"a\":\"\xff\"}", &mut Vec::new()).unwrap_err(),
            "invalid UTF-8 in JSON line (byte 7)"
        );
    }
}
