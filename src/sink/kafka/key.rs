//! The message key of `--key FIELD`, read from a record's JSON object.

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

/// The message key for `--key FIELD`: the field's value in the record's
/// top-level object (a string as its text, anything else as its JSON);
/// no key when the field is missing or null.
pub(super) fn key_of(json: &[u8], field: &str) -> Option<Vec<u8>> {
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    let value = KeySeed(field).deserialize(&mut deserializer).ok()??;
    match value {
        serde_json::Value::Null => None,
        serde_json::Value::String(text) => Some(text.into_bytes()),
        other => Some(other.to_string().into_bytes()),
    }
}

/// Finds one top-level field of a JSON object, skipping the others unbuilt.
struct KeySeed<'a>(&'a str);

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<serde_json::Value>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Option<serde_json::Value>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if found.is_none() && key == self.0 {
                found = Some(map.next_value::<serde_json::Value>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_from_a_top_level_field() {
        let json =
            br#"{"id":"a-1","n":7,"nested":{"id":"no"},"flag":true,"gone":null,"esc\"aped":"x"}"#;
        assert_eq!(key_of(json, "id"), Some(b"a-1".to_vec()));
        assert_eq!(key_of(json, "n"), Some(b"7".to_vec()));
        assert_eq!(key_of(json, "nested"), Some(br#"{"id":"no"}"#.to_vec()));
        assert_eq!(key_of(json, "flag"), Some(b"true".to_vec()));
        assert_eq!(key_of(json, "gone"), None);
        assert_eq!(key_of(json, "missing"), None);
        assert_eq!(key_of(json, "esc\"aped"), Some(b"x".to_vec()));
        assert_eq!(key_of(b"[1]", "id"), None);
    }
}
