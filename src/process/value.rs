//! A field's value as `--filter` reads it, from the field's JSON text.

use std::borrow::Cow;

use super::infer::{self, Number};

/// One field's value.
#[derive(Debug, Clone)]
pub(crate) enum Value<'a> {
    /// A JSON string, unescaped.
    Text(Cow<'a, str>),
    /// A JSON number, as written.
    Number(Cow<'a, str>),
    /// `true` or `false`.
    Bool(bool),
    /// `null`.
    Null,
    /// An object or an array: its JSON text.
    Nested(&'a str),
}

impl<'a> Value<'a> {
    /// The value of `json`, one JSON value's text (valid: it was checked,
    /// or written by the decode stage).
    pub(crate) fn of_json(json: &'a str) -> Value<'a> {
        match json.as_bytes().first() {
            Some(b'"') => Value::Text(unquote(json)),
            Some(b't') => Value::Bool(true),
            Some(b'f') => Value::Bool(false),
            Some(b'n') => Value::Null,
            Some(b'-' | b'0'..=b'9') => Value::Number(Cow::Borrowed(json)),
            _ => Value::Nested(json),
        }
    }

    /// The text comparisons, `contains` and `=~` read: a string's own
    /// text, a number as written, `true`/`false`, the empty string for
    /// null, an object's or array's JSON text.
    pub(crate) fn text(&self) -> Cow<'_, str> {
        match self {
            Value::Text(text) | Value::Number(text) => Cow::Borrowed(text),
            Value::Bool(true) => Cow::Borrowed("true"),
            Value::Bool(false) => Cow::Borrowed("false"),
            Value::Null => Cow::Borrowed(""),
            Value::Nested(json) => Cow::Borrowed(json),
        }
    }

    /// The number it is or reads as, if any.
    pub(crate) fn number(&self) -> Option<Number> {
        match self {
            Value::Text(text) | Value::Number(text) => infer::number(text),
            Value::Bool(_) | Value::Null | Value::Nested(_) => None,
        }
    }
}

/// A JSON string's text: borrowed when it has no escape.
pub(crate) fn unquote(json: &str) -> Cow<'_, str> {
    let inner = &json[1..json.len() - 1];
    if !inner.contains('\\') {
        return Cow::Borrowed(inner);
    }
    Cow::Owned(serde_json::from_str(json).expect("a JSON string checked before"))
}
