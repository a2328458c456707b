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
/// ones before it (a scan of fingerprints); a bigger one sorts its keys
/// when it closes, so its check stays O(n log n).
const SMALL_OBJECT: usize = 32;

/// One key of an open object: its fingerprint and where its text is.
#[derive(Debug, Clone, Copy)]
struct KeyRef {
    fingerprint: u64,
    start: usize,
    end: usize,
}

impl KeyRef {
    /// The key's text, unescaped.
    fn text<'a>(&self, json: &'a [u8]) -> Cow<'a, [u8]> {
        unescape(&json[self.start..self.end])
    }
}

/// An open object or array.
struct Open {
    /// Objects: where its keys start in the key list (arrays: `None`).
    keys_from: Option<usize>,
}

thread_local! {
    /// The key list, reused from line to line (it never holds more than
    /// the keys of the objects open at one point of one line).
    static KEYS: std::cell::RefCell<Vec<KeyRef>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Finds, in `json` (valid JSON: the caller checked it), a key an object
/// holds twice, and the top-level object's keys starting with `prefix`.
pub(super) fn scan(json: &[u8], prefix: &str) -> Keys {
    KEYS.with(|keys| {
        let mut keys = keys.borrow_mut();
        keys.clear();
        scan_with(json, prefix, &mut keys)
    })
}

fn scan_with(json: &[u8], prefix: &str, keys: &mut Vec<KeyRef>) -> Keys {
    let mut found = Keys::default();
    let mut open: Vec<Open> = Vec::new();
    // Inside an object, after `{` or `,`: the next string is a key.
    let mut key_next = false;
    let mut at = 0;
    while at < json.len() {
        match json[at] {
            b'"' => {
                let end = string_end(json, at + 1);
                if key_next {
                    key_next = false;
                    let key = KeyRef {
                        fingerprint: 0,
                        start: at + 1,
                        end,
                    };
                    let text = key.text(json);
                    let key = KeyRef {
                        fingerprint: fingerprint(&text),
                        ..key
                    };
                    if open.len() == 1 && text.starts_with(prefix.as_bytes()) {
                        found
                            .top_with_prefix
                            .push(String::from_utf8_lossy(&text).into_owned());
                    }
                    let from = open.last().and_then(|o| o.keys_from).unwrap_or(0);
                    if keys.len() - from < SMALL_OBJECT
                        && keys[from..].iter().any(|other| {
                            other.fingerprint == key.fingerprint && other.text(json) == text
                        })
                    {
                        found.duplicate = Some(String::from_utf8_lossy(&text).into_owned());
                        return found;
                    }
                    keys.push(key);
                }
                at = end + 1;
                continue;
            }
            b'{' => {
                open.push(Open {
                    keys_from: Some(keys.len()),
                });
                key_next = true;
            }
            b'[' => open.push(Open { keys_from: None }),
            b'}' | b']' => {
                if let Some(Open {
                    keys_from: Some(from),
                }) = open.pop()
                {
                    if keys.len() - from > SMALL_OBJECT {
                        if let Some(text) = repeated(json, &mut keys[from..]) {
                            found.duplicate = Some(text);
                            return found;
                        }
                    }
                    keys.truncate(from);
                }
            }
            b',' => key_next = matches!(open.last(), Some(Open { keys_from: Some(_) })),
            _ => {}
        }
        at += 1;
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

/// The index of the quote that ends the string whose text starts at `from`.
fn string_end(json: &[u8], mut from: usize) -> usize {
    while from < json.len() {
        match json[from] {
            b'"' => return from,
            b'\\' => from += 2,
            _ => from += 1,
        }
    }
    json.len()
}

/// A key's text as its bytes: borrowed unless it has escapes.
fn unescape(raw: &[u8]) -> Cow<'_, [u8]> {
    if !raw.contains(&b'\\') {
        return Cow::Borrowed(raw);
    }
    let mut quoted = Vec::with_capacity(raw.len() + 2);
    quoted.push(b'"');
    quoted.extend_from_slice(raw);
    quoted.push(b'"');
    match serde_json::from_slice::<String>(&quoted) {
        Ok(text) => Cow::Owned(text.into_bytes()),
        // A lone surrogate (`\ud800`) is valid JSON but no string: its
        // escaped text stands for it, as it is what the reader sees.
        Err(_) => Cow::Owned(raw.to_vec()),
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
    fn collects_top_level_keys_with_the_prefix() {
        let keys = scan(
            br#"{"_origin":1,"x":{"_origin_2":1},"_origin_3":2}"#,
            "_origin",
        );
        assert_eq!(keys.top_with_prefix, ["_origin", "_origin_3"]);
        assert_eq!(keys.duplicate, None);
    }
}
