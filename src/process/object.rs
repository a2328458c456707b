//! A record's JSON object as its fields, each key with its value's JSON
//! text borrowed from the record (no value is built), and back.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

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

/// The fields of `object`, one JSON object, in order.
pub(super) fn fields(object: &[u8]) -> serde_json::Result<Vec<Field<'_>>> {
    Ok(serde_json::from_slice::<Fields<'_>>(object)?.0)
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

/// The fields, read from a JSON object.
struct Fields<'a>(Vec<Field<'a>>);

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(FieldsVisitor)
    }
}

struct FieldsVisitor;

impl<'de> Visitor<'de> for FieldsVisitor {
    type Value = Fields<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Fields<'de>, M::Error> {
        let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
        while let Some((Key(key), value)) = map.next_entry::<Key<'de>, &'de RawValue>()? {
            fields.push(Field {
                key,
                value: Cow::Borrowed(value.get()),
            });
        }
        Ok(Fields(fields))
    }
}

/// A key, borrowed from the record unless it has escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Borrowed(key)))
    }

    fn visit_str<E>(self, key: &str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(key.to_string())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_keep_their_order_and_raw_values() {
        let record = br#"{ "b" : [1, 2], "a\"q":"x\ny", "n":1.50,"t":null }"#;
        let fields = fields(record).unwrap();
        let read: Vec<(&str, &str)> = fields
            .iter()
            .map(|field| (field.key.as_ref(), field.value.as_ref()))
            .collect();
        assert_eq!(
            read,
            [
                ("b", "[1, 2]"),
                ("a\"q", r#""x\ny""#),
                ("n", "1.50"),
                ("t", "null")
            ]
        );
        let mut out = Vec::new();
        write(
            &mut out,
            fields.iter().rev().map(|field| (field.key.as_ref(), field)),
        );
        assert_eq!(out, br#"{"t":null,"n":1.50,"a\"q":"x\ny","b":[1, 2]}"#);
    }
}
