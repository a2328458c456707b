//! JSON lines: each line must be one JSON object, passed through unchanged
//! (surrounding white space trimmed).

use std::fmt;

use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};

use super::Rejection;

/// Checks that `line` is one JSON object and appends it. Blank lines are no
/// records: `Ok(false)`.
pub(super) fn encode(line: &[u8], out: &mut Vec<u8>) -> Result<bool, Rejection> {
    let object = line.trim_ascii();
    if object.is_empty() {
        return Ok(false);
    }
    // serde_json skips ignored strings without checking their UTF-8.
    super::require_utf8(object, || "JSON line".to_string())?;
    let mut deserializer = serde_json::Deserializer::from_slice(object);
    deserializer
        .deserialize_any(ObjectCheck)
        .and_then(|()| deserializer.end())
        .map_err(describe)?;
    out.extend_from_slice(object);
    Ok(true)
}

/// Accepts a JSON object (of any content) and nothing else, without
/// building it.
struct ObjectCheck;

impl<'de> Visitor<'de> for ObjectCheck {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(())
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
        encode(line.as_bytes(), &mut Vec::new())
    }

    #[test]
    fn objects_pass_through_trimmed() {
        let mut out = Vec::new();
        assert_eq!(
            encode(b"  {\"a\": [1, {\"b\": null}]}\r", &mut out),
            Ok(true)
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
