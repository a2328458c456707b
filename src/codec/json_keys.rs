//! The keys of a JSON text already known to be valid: a key an object
//! holds twice (at any depth), and the top-level keys `--origin` must not
//! collide with. One pass over the bytes, without building a value; an
//! object of n keys costs O(n log n) at worst, whatever its keys are.

use std::borrow::Cow;

/// What [`scan`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Keys {
    /// The first key found twice in one object, unescaped.
    pub duplicate: Option<String>,
    /// Top-level keys that start with `prefix` (unescaped).
    pub top_with_prefix: Vec<String>,
    /// The keys need a [`scan`] (set by a check that could not finish).
    pub needs_scan: bool,
}

/// Keys of a top-level object that [`FewKeys`] holds at most.
const FEW: usize = 16;

/// The keys of a top-level object, checked while the validating parse
/// meets them: for a flat object of few plain keys (most records) that is
/// all the checking it needs, without a second pass over the line.
pub(super) struct FewKeys<'de> {
    /// One bit per [`class`] of the keys held: a key whose bit is clear
    /// differs from all of them, so most keys are compared with none.
    classes: u64,
    keys: [&'de str; FEW],
    count: usize,
}

impl<'de> FewKeys<'de> {
    /// None yet.
    pub(super) fn new() -> Self {
        FewKeys {
            classes: 0,
            keys: [""; FEW],
            count: 0,
        }
    }

    /// Adds a key as it is in the line (no escapes): `Some(false)` if the
    /// object had it already, `None` once the object has too many keys to
    /// hold (then [`scan`] the line instead).
    #[inline]
    pub(super) fn insert(&mut self, key: &'de str) -> Option<bool> {
        if self.count == FEW {
            return None;
        }
        let bit = 1 << class(key.as_bytes());
        if self.classes & bit != 0 && self.keys[..self.count].contains(&key) {
            return Some(false);
        }
        self.classes |= bit;
        self.keys[self.count] = key;
        self.count += 1;
        Some(true)
    }
}

/// One of 64 classes of keys, from a key's length and its first and last
/// bytes: equal keys fall in the same class, and keys of one record
/// seldom do.
fn class(key: &[u8]) -> u32 {
    let (first, last) = match key {
        [] => (0, 0),
        [first, .., last] => (*first, *last),
        [only] => (*only, *only),
    };
    let summary = key.len() as u64 ^ (first as u64) << 32 ^ (last as u64) << 40;
    // The top bits of a multiplicative hash depend on all of `summary`.
    (summary.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) as u32
}

/// An object with fewer keys than this checks each new key against the
/// ones before it (a walk over their fingerprints); a bigger one sorts its keys
/// when it closes, so its check stays O(n log n).
const SMALL_OBJECT: usize = 32;

/// One key of an open object: its fingerprint and where its text is.
#[derive(Debug, Clone, Copy)]
struct KeyRef {
    fingerprint: u64,
    start: usize,
    end: usize,
    /// The text has a `\`: it must be unescaped to be compared.
    escaped: bool,
}

impl KeyRef {
    /// The key's text, unescaped.
    #[inline]
    fn text<'a>(&self, json: &'a [u8]) -> Cow<'a, [u8]> {
        let raw = &json[self.start..self.end];
        if self.escaped {
            Cow::Owned(unescape(raw))
        } else {
            Cow::Borrowed(raw)
        }
    }
}

/// In the stack of open containers: an array (an object holds where its
/// keys start in the key list).
const ARRAY: usize = usize::MAX;

/// The key list and the stack of open containers, reused from line to
/// line (they never hold more than one line's open objects and keys).
#[derive(Default)]
struct Work {
    keys: Vec<KeyRef>,
    open: Vec<usize>,
}

thread_local! {
    static WORK: std::cell::RefCell<Work> = std::cell::RefCell::default();
}

/// Finds, in `json` (valid JSON: the caller checked it), a key an object
/// holds twice, and the top-level object's keys starting with `prefix`.
pub(super) fn scan(json: &[u8], prefix: &str) -> Keys {
    WORK.with(|work| {
        let mut work = work.borrow_mut();
        let Work { keys, open } = &mut *work;
        keys.clear();
        open.clear();
        scan_with(json, prefix, keys, open)
    })
}

fn scan_with(json: &[u8], prefix: &str, keys: &mut Vec<KeyRef>, open: &mut Vec<usize>) -> Keys {
    let mut found = Keys::default();
    // Inside an object, after `{` or `,`: the next string is a key.
    let mut key_next = false;
    let mut at = 0;
    while let Some(&byte) = json.get(at) {
        at += 1;
        match byte {
            b'"' => {
                let (end, escaped) = string_end(json, at);
                if key_next {
                    key_next = false;
                    let raw = &json[at..end];
                    let unescaped;
                    let text = if escaped {
                        unescaped = unescape(raw);
                        &unescaped[..]
                    } else {
                        raw
                    };
                    let key = KeyRef {
                        fingerprint: fingerprint(text),
                        start: at,
                        end,
                        escaped,
                    };
                    if open.len() == 1 && text.starts_with(prefix.as_bytes()) {
                        found
                            .top_with_prefix
                            .push(String::from_utf8_lossy(text).into_owned());
                    }
                    let from = open.last().copied().unwrap_or(0);
                    if keys.len() - from < SMALL_OBJECT
                        && keys[from..].iter().any(|other| {
                            other.fingerprint == key.fingerprint && *other.text(json) == *text
                        })
                    {
                        found.duplicate = Some(String::from_utf8_lossy(text).into_owned());
                        return found;
                    }
                    keys.push(key);
                }
                at = end + 1;
            }
            b'{' => {
                open.push(keys.len());
                key_next = true;
            }
            b'[' => open.push(ARRAY),
            // Valid JSON: `}` closes an object, `]` an array.
            b'}' => {
                let from = open.pop().unwrap_or(0);
                if keys.len() - from > SMALL_OBJECT {
                    if let Some(text) = repeated(json, &mut keys[from..]) {
                        found.duplicate = Some(text);
                        return found;
                    }
                }
                keys.truncate(from);
            }
            b']' => {
                open.pop();
            }
            b',' => key_next = open.last().is_some_and(|&from| from != ARRAY),
            _ => {}
        }
    }
    found
}

/// A key that `keys` (one big object's, the first `SMALL_OBJECT` of them
/// checked already) holds twice, if any: sorted by fingerprint, then text.
fn repeated(json: &[u8], keys: &mut [KeyRef]) -> Option<String> {
    keys.sort_unstable_by(|a, b| {
        a.fingerprint
            .cmp(&b.fingerprint)
            .then_with(|| a.text(json).cmp(&b.text(json)))
    });
    keys.windows(2)
        .find(|pair| {
            pair[0].fingerprint == pair[1].fingerprint && pair[0].text(json) == pair[1].text(json)
        })
        .map(|pair| String::from_utf8_lossy(&pair[0].text(json)).into_owned())
}

/// A cheap summary of a key: its length and three of its bytes. Keys
/// with different fingerprints differ; equal ones are compared in full.
#[inline]
fn fingerprint(key: &[u8]) -> u64 {
    let len = key.len();
    match key {
        [] => 0,
        [first, .., last] => {
            len as u64 | (*first as u64) << 32 | (key[len / 2] as u64) << 40 | (*last as u64) << 48
        }
        [only] => len as u64 | (*only as u64) << 32,
    }
}

/// A byte of all eight bytes of a word.
const fn splat(byte: u8) -> u64 {
    u64::from_ne_bytes([byte; 8])
}

/// The lowest set bit of the result marks the first zero byte of `word`
/// (bits above it may be set falsely, by the borrow).
fn zero_bytes(word: u64) -> u64 {
    word.wrapping_sub(splat(1)) & !word & splat(0x80)
}

/// The index of the quote that ends the string whose text starts at
/// `from`, and whether the text has a `\`. Eight bytes a step: strings
/// are most of a line's bytes.
fn string_end(json: &[u8], mut from: usize) -> (usize, bool) {
    let mut escaped = false;
    loop {
        while let Some(chunk) = json.get(from..from + 8) {
            let word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
            let special = zero_bytes(word ^ splat(b'"')) | zero_bytes(word ^ splat(b'\\'));
            if special != 0 {
                from += (special.trailing_zeros() / 8) as usize;
                break;
            }
            from += 8;
        }
        match json.get(from) {
            None => return (json.len(), escaped),
            Some(b'"') => return (from, escaped),
            Some(b'\\') => {
                escaped = true;
                from += 2;
            }
            Some(_) => from += 1,
        }
    }
}

/// The text of a string with escapes, as its bytes.
fn unescape(raw: &[u8]) -> Vec<u8> {
    let mut quoted = Vec::with_capacity(raw.len() + 2);
    quoted.push(b'"');
    quoted.extend_from_slice(raw);
    quoted.push(b'"');
    match serde_json::from_slice::<String>(&quoted) {
        Ok(text) => text.into_bytes(),
        // A lone surrogate (`\ud800`) is valid JSON but no string: its
        // escaped text stands for it, as it is what the reader sees.
        Err(_) => raw.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn duplicate(json: &str) -> Option<String> {
        scan(json.as_bytes(), "_origin").duplicate
    }

    #[test]
    fn finds_a_repeated_key_at_any_depth() {
        assert_eq!(duplicate(r#"{"a":1,"a":2}"#).as_deref(), Some("a"));
        assert_eq!(
            duplicate(r#"{"a":[{"b":"}","c":{"d":1,"d":2}}]}"#).as_deref(),
            Some("d")
        );
        assert_eq!(duplicate(r#"{"\u0061":1,"a":2}"#).as_deref(), Some("a"));
        assert_eq!(
            duplicate(r#"{"a\"":1,"a\u0022":2}"#).as_deref(),
            Some("a\"")
        );
        assert_eq!(
            duplicate(r#"{"a":{"a":{"a":1}},"b":[{"a":1},{"a":2}]}"#),
            None
        );
        assert_eq!(duplicate(r#"{"a":"a","b":["a","a"],"c":"\\","d":1}"#), None);
        assert_eq!(duplicate(r#"{"k,":1,"k":{"":[],"x":""}}"#), None);
    }

    #[test]
    fn big_objects_and_escapes_mixed_with_plain_keys() {
        let many: Vec<String> = (0..50).map(|k| format!("\"k{k}\":{k}")).collect();
        assert_eq!(duplicate(&format!("{{{}}}", many.join(","))), None);
        let repeated = format!("{{{},\"k3\":0}}", many.join(","));
        assert_eq!(duplicate(&repeated).as_deref(), Some("k3"));
        assert_eq!(
            duplicate(r#"{"a":1,"b":2,"\u0062":3}"#).as_deref(),
            Some("b")
        );
        assert_eq!(
            duplicate(r#"{"\u0062":3,"a":1,"b":2}"#).as_deref(),
            Some("b")
        );
    }

    #[test]
    fn few_keys_compare_keys_of_one_class_in_full() {
        let mut few = FewKeys::new();
        // One length, first and last byte: one class, told apart by text.
        let keys: Vec<String> = (0..FEW).map(|k| format!("a{k:02}b")).collect();
        for key in &keys[..FEW - 1] {
            assert_eq!(few.insert(key), Some(true), "{key}");
        }
        assert_eq!(few.insert("a00b"), Some(false));
        assert_eq!(few.insert("a14b"), Some(false));
        assert_eq!(few.insert(&keys[FEW - 1]), Some(true));
        // Full: the caller scans the line instead.
        assert_eq!(few.insert("a00b"), None);

        let mut few = FewKeys::new();
        for key in ["", "a", "ab", "ba", "aab", "abb"] {
            assert_eq!(few.insert(key), Some(true), "{key:?}");
        }
        for key in ["", "a", "ab", "ba", "aab", "abb"] {
            assert_eq!(few.insert(key), Some(false), "{key:?}");
        }
    }

    #[test]
    fn string_ends_match_a_byte_by_byte_walk() {
        fn walk(json: &[u8], mut from: usize) -> (usize, bool) {
            let mut escaped = false;
            while from < json.len() {
                match json[from] {
                    b'"' => return (from, escaped),
                    b'\\' => {
                        escaped = true;
                        from += 2;
                    }
                    _ => from += 1,
                }
            }
            (json.len(), escaped)
        }
        let texts = [
            r#"""#,
            r#"abc","x":1}"#,
            r#"0123456789abcdef","#,
            r#"0123456\"89","#,
            r#"01234567\\","#,
            r#"0123456\\\"9ab","#,
            r#"é€😀 sixteen bytes\u0041\""#,
            r#"ab\"#,
        ];
        for text in texts {
            for pad in 0..9 {
                let json = format!("{}{text}", "x".repeat(pad));
                assert_eq!(
                    string_end(json.as_bytes(), pad),
                    walk(json.as_bytes(), pad),
                    "{json:?}"
                );
            }
        }
    }

    #[test]
    fn collects_top_level_keys_with_the_prefix() {
        let keys = scan(
            br#"{"_origin":1,"x":{"_origin_2":1},"_origin_3":2}"#,
            "_origin",
        );
        assert_eq!(keys.top_with_prefix, ["_origin", "_origin_3"]);
        assert_eq!(keys.duplicate, None);
    }
}
