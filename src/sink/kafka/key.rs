//! The message key of `--key FIELD`, read from a record's JSON object.

use std::borrow::Cow;
use std::fmt;

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{
    Deserialize, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor,
};

/// The message key for `--key FIELD`: the field's value in the record's
/// top-level object (a string as its text, anything else as its JSON);
/// no key when the field is missing or null. A string without escapes is
/// borrowed from the record: no allocation per message.
pub(super) fn key_of<'a>(json: &'a [u8], field: &str) -> Option<Cow<'a, [u8]>> {
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    match KeySeed(field).deserialize(&mut deserializer).ok()?? {
        Key::Null => None,
        Key::Borrowed(text) => Some(Cow::Borrowed(text.as_bytes())),
        Key::Owned(text) => Some(Cow::Owned(text.into_bytes())),
    }
}

/// A key's value as read.
enum Key<'de> {
    Null,
    /// A string's text, as it stands in the record.
    Borrowed(&'de str),
    /// A string with escapes, or another value as its JSON.
    Owned(String),
}

/// Finds one top-level field of a JSON object, skipping the others unbuilt.
struct KeySeed<'a>(&'a str);

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<Key<'de>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Option<Key<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(matches) = map.next_key_seed(NameIs(self.0))? {
            if found.is_none() && matches {
                found = Some(map.next_value_seed(KeyValue)?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// Whether a field's name is the key field's, compared where it is read.
struct NameIs<'a>(&'a str);

impl<'de> DeserializeSeed<'de> for NameIs<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for NameIs<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E>(self, name: &str) -> Result<bool, E> {
        Ok(name == self.0)
    }
}

/// Reads the key field's value.
struct KeyValue;

impl<'de> DeserializeSeed<'de> for KeyValue {
    type Value = Key<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Key<'de>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeyValue {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Key<'de>, E> {
        Ok(Key::Borrowed(text))
    }

    fn visit_str<E>(self, text: &str) -> Result<Key<'de>, E> {
        Ok(Key::Owned(text.to_string()))
    }

    fn visit_unit<E>(self) -> Result<Key<'de>, E> {
        Ok(Key::Null)
    }

    fn visit_bool<E>(self, value: bool) -> Result<Key<'de>, E> {
        Ok(Key::Owned(value.to_string()))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Key<'de>, E> {
        Ok(Key::Owned(value.to_string()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Key<'de>, E> {
        Ok(Key::Owned(value.to_string()))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Key<'de>, E> {
        Ok(Key::Owned(serde_json::Value::from(value).to_string()))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Key<'de>, A::Error> {
        let value = serde_json::Value::deserialize(MapAccessDeserializer::new(map))?;
        Ok(Key::Owned(value.to_string()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Key<'de>, A::Error> {
        let value = serde_json::Value::deserialize(SeqAccessDeserializer::new(seq))?;
        Ok(Key::Owned(value.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(json: &[u8], field: &str) -> Option<Vec<u8>> {
        key_of(json, field).map(Cow::into_owned)
    }

    #[test]
    fn keys_come_from_a_top_level_field() {
        let json =
            br#"{"id":"a-1","n":7,"nested":{"id":"no"},"flag":true,"gone":null,"esc\"aped":"x"}"#;
        assert_eq!(key(json, "id"), Some(b"a-1".to_vec()));
        assert_eq!(key(json, "n"), Some(b"7".to_vec()));
        assert_eq!(key(json, "nested"), Some(br#"{"id":"no"}"#.to_vec()));
        assert_eq!(key(json, "flag"), Some(b"true".to_vec()));
        assert_eq!(key(json, "gone"), None);
        assert_eq!(key(json, "missing"), None);
        assert_eq!(key(json, "esc\"aped"), Some(b"x".to_vec()));
        assert_eq!(key(b"[1]", "id"), None);
        assert_eq!(
            key(br#"{"f":1.5e0,"g":[1,{"a":null}]}"#, "f"),
            Some(b"1.5".to_vec())
        );
        assert_eq!(
            key(br#"{"f":1,"g":[1,{"a":null}]}"#, "g"),
            Some(br#"[1,{"a":null}]"#.to_vec())
        );
        assert_eq!(key(br#"{"f":-3}"#, "f"), Some(b"-3".to_vec()));
        assert_eq!(key(br#"{"f":"a\nb"}"#, "f"), Some(b"a\nb".to_vec()));
        assert!(matches!(
            key_of(br#"{"id":"plain"}"#, "id"),
            Some(Cow::Borrowed(b"plain"))
        ));
    }
}
