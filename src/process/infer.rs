//! `--infer-types`: the JSON value a CSV cell or a line stands for, as
//! Miller 6 infers types from data: decimal integers, floats (a point,
//! an exponent, or both) and `0x`/`0o`/`0b` integers are numbers; a
//! number with a leading zero (`007`, `00.5`) stays a string, as in
//! Miller without `-O`; `NaN` and `Inf` stay strings (JSON has no such
//! numbers). Besides Miller: `true`/`false` become booleans, an empty
//! value null.

use std::borrow::Cow;
use std::cmp::Ordering;

/// A number's value, for comparisons.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Number {
    /// An integer that fits in 64 bits.
    Int(i64),
    /// Any other number.
    Float(f64),
}

impl Number {
    /// Integers compare exactly; anything else as floats.
    pub(crate) fn compare(self, other: Number) -> Option<Ordering> {
        match (self, other) {
            (Number::Int(a), Number::Int(b)) => Some(a.cmp(&b)),
            (a, b) => a.as_f64().partial_cmp(&b.as_f64()),
        }
    }

    fn as_f64(self) -> f64 {
        match self {
            Number::Int(int) => int as f64,
            Number::Float(float) => float,
        }
    }
}

/// The JSON text `text` (a string value) becomes under `--infer-types`,
/// or `None` when it stays a string.
pub(crate) fn infer(text: &str) -> Option<Cow<'_, str>> {
    match text {
        "" => Some(Cow::Borrowed("null")),
        "true" | "false" => Some(Cow::Borrowed(text)),
        _ => json_number(text),
    }
}

/// The number `text` reads as, if it reads as one.
pub(crate) fn number(text: &str) -> Option<Number> {
    match scan(text)? {
        Scanned::Int(int) => Some(Number::Int(int)),
        Scanned::Decimal { float: false, .. } => match text.parse::<i64>() {
            Ok(int) => Some(Number::Int(int)),
            // Past 64 bits: as Miller does, a float.
            Err(_) => text.parse::<f64>().ok().map(Number::Float),
        },
        Scanned::Decimal { .. } => text.parse::<f64>().ok().map(Number::Float),
    }
}

/// `text` as a JSON number: as written when it is one already (no
/// precision lost, however long), else rewritten (`+5` → `5`, `.5` →
/// `0.5`, `5.` → `5.0`, `0xff` → `255`).
fn json_number(text: &str) -> Option<Cow<'_, str>> {
    match scan(text)? {
        Scanned::Int(int) => Some(Cow::Owned(int.to_string())),
        Scanned::Decimal { json: true, .. } => Some(Cow::Borrowed(text)),
        Scanned::Decimal { .. } => {
            let unsigned = text.strip_prefix('+').unwrap_or(text);
            let (sign, digits) = match unsigned.strip_prefix('-') {
                Some(rest) => ("-", rest),
                None => ("", unsigned),
            };
            let (mantissa, exponent) = match digits.find(['e', 'E']) {
                Some(at) => digits.split_at(at),
                None => (digits, ""),
            };
            let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
            let whole = if whole.is_empty() { "0" } else { whole };
            let fraction = if mantissa.contains('.') && fraction.is_empty() {
                "0"
            } else {
                fraction
            };
            let point = if fraction.is_empty() { "" } else { "." };
            Some(Cow::Owned(format!(
                "{sign}{whole}{point}{fraction}{exponent}"
            )))
        }
    }
}

/// What a number's text is.
enum Scanned {
    /// A `0x`, `0o` or `0b` integer, and its value.
    Int(i64),
    /// A decimal number: `float` when it has a point or an exponent,
    /// `json` when its text is a JSON number as it is.
    Decimal { float: bool, json: bool },
}

/// Reads `text` as Miller reads a number from data, or `None`.
fn scan(text: &str) -> Option<Scanned> {
    let bytes = text.as_bytes();
    let (negative, signed, body) = match bytes.first()? {
        b'-' => (true, true, &bytes[1..]),
        b'+' => (false, true, &bytes[1..]),
        _ => (false, false, bytes),
    };
    if let [b'0', base @ (b'x' | b'X' | b'o' | b'O' | b'b' | b'B'), digits @ ..] = body {
        let radix = match base.to_ascii_lowercase() {
            b'x' => 16,
            b'o' => 8,
            _ => 2,
        };
        let digits = std::str::from_utf8(digits).ok()?;
        if digits.is_empty() || digits.starts_with(['+', '-']) {
            return None;
        }
        let magnitude = i128::from(u64::from_str_radix(digits, radix).ok()?);
        let value = if negative { -magnitude } else { magnitude };
        return i64::try_from(value).ok().map(Scanned::Int);
    }
    let digits_in = |part: &[u8]| part.iter().take_while(|b| b.is_ascii_digit()).count();
    let whole = digits_in(body);
    let mut at = whole;
    let mut fraction = 0;
    let point = body.get(at) == Some(&b'.');
    if point {
        fraction = digits_in(&body[at + 1..]);
        at += 1 + fraction;
    }
    if whole + fraction == 0 {
        return None;
    }
    let mut exponent = false;
    if matches!(body.get(at), Some(b'e' | b'E')) {
        let mut digits_at = at + 1;
        if matches!(body.get(digits_at), Some(b'+' | b'-')) {
            digits_at += 1;
        }
        let count = digits_in(&body[digits_at..]);
        if count == 0 {
            return None;
        }
        exponent = true;
        at = digits_at + count;
    }
    if at != body.len() || (whole > 1 && body[0] == b'0') {
        return None;
    }
    // JSON takes no `+`, and wants digits on both sides of a point.
    let plus = signed && !negative;
    let json = !plus && whole > 0 && (fraction > 0 || !point);
    Some(Scanned::Decimal {
        float: point || exponent,
        json,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_as_miller_reads_them() {
        for (text, json) in [
            ("0", "0"),
            ("42", "42"),
            ("-42", "-42"),
            ("+42", "42"),
            ("3.25", "3.25"),
            ("-0.5", "-0.5"),
            (".5", "0.5"),
            ("-.5", "-0.5"),
            ("5.", "5.0"),
            ("1e5", "1e5"),
            ("1.5E-3", "1.5E-3"),
            ("0xff", "255"),
            ("-0x10", "-16"),
            ("0o17", "15"),
            ("0b101", "5"),
            (
                "123456789012345678901234567890",
                "123456789012345678901234567890",
            ),
        ] {
            assert_eq!(infer(text).as_deref(), Some(json), "{text}");
        }
    }

    #[test]
    fn what_stays_a_string() {
        for text in [
            "007",
            "00.5",
            "-01",
            "abc",
            "1,5",
            "1e",
            "e5",
            ".",
            "-",
            "0x",
            "0xg",
            "1 ",
            " 1",
            "NaN",
            "Inf",
            "True",
            "0x1ffffffffffffffff",
            "1_000",
        ] {
            assert_eq!(infer(text), None, "{text}");
        }
    }

    #[test]
    fn booleans_and_null() {
        assert_eq!(infer("true").as_deref(), Some("true"));
        assert_eq!(infer("false").as_deref(), Some("false"));
        assert_eq!(infer("").as_deref(), Some("null"));
    }

    #[test]
    fn values_for_comparisons() {
        assert_eq!(number("0x10"), Some(Number::Int(16)));
        assert_eq!(number("2.5"), Some(Number::Float(2.5)));
        assert_eq!(number("99999999999999999999"), Some(Number::Float(1e20)));
        assert_eq!(number("007"), None);
        assert_eq!(
            Number::Int(3).compare(Number::Float(2.5)),
            Some(Ordering::Greater)
        );
    }
}
