//! The quick check of a JSON line: one pass over its bytes that says it is
//! one JSON object, and checks its top-level keys, without serde_json's
//! per-token calls. It accepts exactly what serde_json accepts as an
//! object of ignored values (the parse [`super::jsonl`] falls back on), so
//! a line it cannot vouch for, invalid or only unusual (a top-level key
//! with escapes, a nesting deeper than [`MAX_DEPTH`]), goes to that parse,
//! which words the error.
//!
//! Strings are most of a line: the bytes that end or escape one are found
//! for the whole line first (`scan::json_escape_bits`), so each string's
//! end is a bit scan.

use std::cell::RefCell;

use super::json_keys::{FewKeys, Keys};

/// Nesting below the top-level object that the check follows (one bit
/// each in a `u64`); deeper lines go to serde_json, which has no limit for
/// ignored values.
const MAX_DEPTH: u32 = 64;

thread_local! {
    /// The bits of the line being checked, reused from line to line.
    static BITS: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

/// A line and its string bytes (`"`, `\`, controls) as bits.
struct Line<'a> {
    json: &'a [u8],
    bits: &'a [u64],
    /// Every marked byte is a `"` (most lines): each one ends a string
    /// that [`Line::string_end`] looks for, without reading it.
    only_quotes: bool,
}

/// `Some` when `text` (valid UTF-8) is one JSON object as serde_json reads
/// it, with what [`FewKeys`] found of its top-level keys (`needs_scan` set
/// when the keys need [`super::json_keys::scan`]: a nested object, more
/// keys than it holds), and whether the line has no escape at all (so no
/// `\u` either). `None` for anything it does not vouch for.
pub(super) fn object(text: &str, prefix: &str) -> Option<(Keys, bool)> {
    BITS.with(|bits| {
        let mut bits = bits.borrow_mut();
        let only_quotes = crate::scan::json_escape_bits(text.as_bytes(), &mut bits);
        let line = Line {
            json: text.as_bytes(),
            bits: &bits,
            only_quotes,
        };
        line.object(text, prefix).map(|keys| (keys, only_quotes))
    })
}

impl Line<'_> {
    fn object(&self, text: &str, prefix: &str) -> Option<Keys> {
        let json = self.json;
        let mut at = skip_space(json, 0);
        if json.get(at) != Some(&b'{') {
            return None;
        }
        let mut keys = Keys::default();
        let mut few = FewKeys::new();
        at = skip_space(json, at + 1);
        if json.get(at) == Some(&b'}') {
            at += 1;
        } else {
            loop {
                if json.get(at) != Some(&b'"') {
                    return None;
                }
                let (end, escaped) = self.string_end(at + 1)?;
                // serde_json reads a top-level key as text, which checks
                // its escapes further than an ignored string's: its parse
                // decides.
                if escaped {
                    return None;
                }
                // Valid UTF-8 cut at ASCII quotes: a whole string.
                let key = text.get(at + 1..end)?;
                if !keys.needs_scan && keys.duplicate.is_none() {
                    if key.starts_with(prefix) {
                        keys.top_with_prefix.push(key.to_string());
                    }
                    match few.insert(key) {
                        Some(true) => {}
                        Some(false) => keys.duplicate = Some(key.to_string()),
                        None => keys.needs_scan = true,
                    }
                }
                at = skip_space(json, end + 1);
                if json.get(at) != Some(&b':') {
                    return None;
                }
                at = self.value(skip_space(json, at + 1), &mut keys.needs_scan)?;
                at = skip_space(json, at);
                match json.get(at) {
                    Some(b',') => at = skip_space(json, at + 1),
                    Some(b'}') => {
                        at += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        (skip_space(json, at) == json.len()).then_some(keys)
    }

    /// The end of the value at `at`; sets `nested_object` when it holds an
    /// object (its keys are not checked here).
    #[inline]
    fn value(&self, at: usize, nested_object: &mut bool) -> Option<usize> {
        let json = self.json;
        match *json.get(at)? {
            b'"' => self.string_end(at + 1).map(|(end, _)| end + 1),
            b'{' | b'[' => self.container(at, nested_object),
            b't' => literal(json, at, b"true"),
            b'f' => literal(json, at, b"false"),
            b'n' => literal(json, at, b"null"),
            b'-' => number(json, at + 1),
            b'0'..=b'9' => number(json, at),
            _ => None,
        }
    }

    /// The end of the array or object that opens at `at`, walked with a
    /// stack of one bit per open container (set for an object).
    fn container(&self, mut at: usize, nested_object: &mut bool) -> Option<usize> {
        let json = self.json;
        let mut objects: u64 = 0;
        let mut depth: u32 = 0;
        // Each turn opens a container at `at`, or reads one value, then
        // what follows up to the next value.
        loop {
            let opened = json[at];
            if opened == b'{' || opened == b'[' {
                if depth == MAX_DEPTH {
                    return None;
                }
                let is_object = opened == b'{';
                objects = objects << 1 | u64::from(is_object);
                depth += 1;
                *nested_object |= is_object;
                at = skip_space(json, at + 1);
                let close = if is_object { b'}' } else { b']' };
                // An empty container goes on to its close.
                if json.get(at) != Some(&close) {
                    if is_object {
                        at = self.key(at)?;
                    }
                    if matches!(json.get(at), Some(b'{' | b'[')) {
                        continue;
                    }
                    at = self.value(at, nested_object)?;
                }
            } else {
                at = self.value(at, nested_object)?;
            }
            // Close containers until a comma leads to the next value.
            loop {
                at = skip_space(json, at);
                let in_object = objects & 1 == 1;
                match json.get(at) {
                    Some(b',') => {
                        at = skip_space(json, at + 1);
                        if in_object {
                            at = self.key(at)?;
                        }
                        break;
                    }
                    Some(b'}') if in_object => {}
                    Some(b']') if !in_object => {}
                    _ => return None,
                }
                at += 1;
                objects >>= 1;
                depth -= 1;
                if depth == 0 {
                    return Some(at);
                }
            }
            json.get(at)?;
        }
    }

    /// After a nested object's `{` or `,`: its key and colon; the position
    /// of the value after them.
    #[inline]
    fn key(&self, at: usize) -> Option<usize> {
        let json = self.json;
        if json.get(at) != Some(&b'"') {
            return None;
        }
        let (end, _) = self.string_end(at + 1)?;
        let at = skip_space(json, end + 1);
        (json.get(at) == Some(&b':')).then(|| skip_space(json, at + 1))
    }

    /// The index of the quote that closes the string whose text starts at
    /// `from`, and whether the text has escapes; `None` for a control
    /// byte, a bad escape or no closing quote.
    #[inline]
    fn string_end(&self, mut from: usize) -> Option<(usize, bool)> {
        if self.only_quotes {
            return self.next_special(from).map(|end| (end, false));
        }
        let json = self.json;
        let mut escaped = false;
        loop {
            from = self.next_special(from)?;
            match json[from] {
                b'"' => return Some((from, escaped)),
                b'\\' => {
                    escaped = true;
                    from += match *json.get(from + 1)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => 2,
                        b'u' => {
                            let hex = json.get(from + 2..from + 6)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return None;
                            }
                            6
                        }
                        _ => return None,
                    };
                }
                // A control byte.
                _ => return None,
            }
        }
    }

    /// The first byte from `from` on that ends or escapes a string.
    #[inline]
    fn next_special(&self, from: usize) -> Option<usize> {
        let mut index = from / 64;
        let mut word = self.bits.get(index)? & (u64::MAX << (from % 64));
        while word == 0 {
            index += 1;
            word = *self.bits.get(index)?;
        }
        Some(index * 64 + word.trailing_zeros() as usize)
    }
}

/// serde_json's white space between tokens (not `trim_ascii`'s: no form
/// feed).
#[inline]
fn skip_space(json: &[u8], mut at: usize) -> usize {
    while let Some(b' ' | b'\n' | b'\t' | b'\r') = json.get(at) {
        at += 1;
    }
    at
}

/// The end of `word` at `at`.
#[inline]
fn literal(json: &[u8], at: usize, word: &[u8]) -> Option<usize> {
    let end = at + word.len();
    (json.get(at..end)? == word).then_some(end)
}

/// The end of the number whose digits start at `at` (after any `-`): one
/// `0` or digits without a leading zero, then an optional fraction and
/// exponent, each with at least one digit.
#[inline]
fn number(json: &[u8], mut at: usize) -> Option<usize> {
    match *json.get(at)? {
        b'0' => at += 1,
        b'1'..=b'9' => at = digits(json, at + 1),
        _ => return None,
    }
    if json.get(at) == Some(&b'.') {
        at = some_digits(json, at + 1)?;
    }
    if let Some(b'e' | b'E') = json.get(at) {
        at += 1;
        if let Some(b'+' | b'-') = json.get(at) {
            at += 1;
        }
        at = some_digits(json, at)?;
    }
    // serde_json refuses a digit right after a leading zero; any other
    // byte is for the caller to judge.
    match json.get(at) {
        Some(b'0'..=b'9') => None,
        _ => Some(at),
    }
}

#[inline]
fn digits(json: &[u8], mut at: usize) -> usize {
    while let Some(b'0'..=b'9') = json.get(at) {
        at += 1;
    }
    at
}

/// At least one digit.
#[inline]
fn some_digits(json: &[u8], at: usize) -> Option<usize> {
    let end = digits(json, at);
    (end > at).then_some(end)
}

#[cfg(test)]
mod tests {
    use super::super::json_keys::scan;
    use super::super::jsonl::{parse, ORIGIN_KEY};
    use super::*;

    /// The keys as the line's encoding ends up with them: scanned when a
    /// check could not finish.
    fn settled(text: &str, keys: Keys) -> Keys {
        if keys.needs_scan {
            scan(text.as_bytes(), ORIGIN_KEY)
        } else {
            keys
        }
    }

    /// The quick check vouches only for what serde_json accepts, with the
    /// same keys in the end; `Err` when it does not vouch.
    fn agrees(text: &str) -> Result<(), ()> {
        let (quick, unescaped) = object(text, ORIGIN_KEY).ok_or(())?;
        let escapes = text.bytes().any(|byte| byte == b'\\' || byte < 0x20);
        assert_eq!(unescaped, !escapes, "{text:?}");
        let Ok(slow) = parse(text) else {
            panic!("vouched for what serde_json refuses: {text:?}");
        };
        assert_eq!(
            settled(text, quick),
            settled(text, slow),
            "keys differ: {text:?}"
        );
        Ok(())
    }

    const VALID: &[&str] = &[
        "{}",
        "{ }",
        r#"{"a":1}"#,
        "{\r\n\t\"a\" : 1 , \"b\":\"x\" }",
        r#"{"id":"0","ts":"1700000000000","sym":"NVDA","px":"132.870","note":"note-1"}"#,
        r#"{"a":[],"b":{},"c":[{}],"d":[[],[[]]],"e":{"f":{"g":[1,{"h":null}]}}}"#,
        r#"{"n":[0,-0,1,-12,0.5,-0.25e10,1E+2,3e-4,10.01E5,123456789012345678901234567890]}"#,
        r#"{"t":true,"f":false,"z":null,"s":"é€😀","x":"\u00e9\n\t\"\\\/\b\f\r","y":"\uD800"}"#,
        r#"{"a":1,"a":2}"#,
        r#"{"a":{"b":1,"b":2}}"#,
        r#"{"_origin":1,"_origin_2":{"_origin":1},"_originx":[]}"#,
        r#"{"k":"\u007f","l":"{","m":"}"}"#,
    ];

    #[test]
    fn vouches_for_valid_objects_with_the_same_keys() {
        for text in VALID {
            assert_eq!(agrees(text), Ok(()), "{text}");
        }
        let many: Vec<String> = (0..40).map(|k| format!("\"k{k}\":{k}")).collect();
        assert_eq!(agrees(&format!("{{{}}}", many.join(","))), Ok(()));
        assert_eq!(agrees(&format!("{{{},\"k7\":1}}", many.join(","))), Ok(()));
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(64), "]".repeat(64));
        assert_eq!(agrees(&deep), Ok(()));
    }

    #[test]
    fn leaves_errors_and_unusual_lines_to_serde_json() {
        let refused = [
            "",
            "[]",
            "1",
            "\"s\"",
            "{",
            "{\"a\"}",
            "{\"a\":}",
            "{\"a\":1,}",
            "{\"a\":[1,]}",
            "{\"a\":[1 2]}",
            "{\"a\":{\"b\"}}",
            "{\"a\":{\"b\":1,}}",
            "{\"a\":{,}}",
            "{\"a\":[}",
            "{\"a\":{]}",
            "{\"a\":1}}",
            "{\"a\":1} x",
            "{\"a\":1}\x0c",
            "{\"a\":01}",
            "{\"a\":-}",
            "{\"a\":1.}",
            "{\"a\":.5}",
            "{\"a\":1e}",
            "{\"a\":1e+}",
            "{\"a\":+1}",
            "{\"a\":tru}",
            "{\"a\":nul}",
            "{\"a\":truex}",
            "{\"a\":\"\u{1}\"}",
            "{\"a\":\"\\x\"}",
            "{\"a\":\"\\u12g4\"}",
            "{\"a\":\"\\u12\"}",
            "{\"a\":\"open}",
            "{\"a\x1f\":1}",
            "{1:1}",
            // Valid, but serde_json's to judge.
            r#"{"\u0061":1}"#,
        ];
        for text in refused {
            assert_eq!(object(text, ORIGIN_KEY), None, "{text:?}");
        }
        let too_deep = format!("{{\"a\":{}{}}}", "[".repeat(65), "]".repeat(65));
        assert_eq!(object(&too_deep, ORIGIN_KEY), None);
        assert!(parse(&too_deep).is_ok());
    }

    #[test]
    fn never_vouches_for_what_serde_json_refuses() {
        // Lines mutated at random (a fixed seed): each must be refused, or
        // be accepted by serde_json with the same keys.
        const BYTES: &[u8] = b"{}[]\",:\\ \t\n0123456789.eE+-tfnulrsa_\x01\x7f";
        let mut state: u64 = 0x2545_F491_4F6C_DD1D;
        let mut random = move |below: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % below as u64) as usize
        };
        let mut vouched = 0;
        for round in 0..60_000 {
            let mut line = VALID[round % VALID.len()].as_bytes().to_vec();
            for _ in 0..1 + random(3) {
                let at = random(line.len() + 1);
                let byte = BYTES[random(BYTES.len())];
                match random(3) {
                    0 if at < line.len() => line[at] = byte,
                    1 if at < line.len() => {
                        line.remove(at);
                    }
                    _ => line.insert(at, byte),
                }
            }
            if let Ok(text) = std::str::from_utf8(&line) {
                vouched += usize::from(agrees(text).is_ok());
            }
        }
        // Mutations often keep a line valid: the check did vouch for some.
        assert!(vouched > 1000, "{vouched}");
    }
}
