//! `\u` escapes that stand for no character: half of a UTF-16 surrogate
//! pair without its other half (`"\ud800"`). JSON's grammar lets them
//! through, and serde_json skips them unread in a value it ignores, but
//! serde_json refuses them where it reads the string (a key, or any
//! reader that builds the object), as do many others: a line that holds
//! one is rejected rather than written for a reader to choke on. Found
//! by the `json_lines` fuzz target.

/// The column (1-based, in bytes) of the first escape in `json` that is
/// a lone surrogate. `json` is valid JSON: a backslash only ever starts
/// an escape, inside a string, and `\u` is followed by four hex digits.
pub(super) fn lone_surrogate(json: &[u8]) -> Option<usize> {
    let mut at = 0;
    // A leading surrogate's escape, waiting for its trailing one.
    let mut leading: Option<usize> = None;
    while let Some(found) = memchr::memchr(b'\\', &json[at..]) {
        let escape = at + found;
        let unit = match json.get(escape + 1) {
            Some(b'u') => json
                .get(escape + 2..escape + 6)
                .and_then(|hex| std::str::from_utf8(hex).ok())
                .and_then(|hex| u16::from_str_radix(hex, 16).ok()),
            _ => None,
        };
        let waiting = leading.take();
        match unit {
            Some(0xD800..=0xDBFF) if waiting.is_none() => leading = Some(escape),
            Some(0xDC00..=0xDFFF) if waiting == Some(escape.wrapping_sub(6)) => {}
            Some(0xD800..=0xDFFF) => return Some(waiting.unwrap_or(escape) + 1),
            _ if waiting.is_some() => return waiting.map(|at| at + 1),
            _ => {}
        }
        at = escape + if unit.is_some() { 6 } else { 2 };
        if at >= json.len() {
            break;
        }
    }
    leading.map(|at| at + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_pass_and_halves_are_found() {
        let check = |json: &str| lone_surrogate(json.as_bytes());
        assert_eq!(check(r#"{"a":"\ud83d\ude00","b":"\u00e9\n\\u"}"#), None);
        assert_eq!(check(r#"{"a":"\ud800"}"#), Some(7));
        assert_eq!(check(r#"{"a":"\ude00"}"#), Some(7));
        assert_eq!(check(r#"{"a":"\ud800x\udc00"}"#), Some(7));
        assert_eq!(check(r#"{"a":"\ud800\ud800\udc00"}"#), Some(7));
        assert_eq!(check(r#"{"a":"\ud83d\n"}"#), Some(7));
        assert_eq!(check(r#"{"\\":"\\ud800"}"#), None);
    }
}
