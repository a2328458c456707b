//! CSV rows to JSON objects, keyed by the header row (or `c1`, `c2`, ...).
//! Cells stay strings: a CSV cell has no type, and `007` must stay `007`.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use super::{require_utf8, Rejection};
use crate::json;
use crate::record::{CsvHeader, RawRecord};
use crate::scan;

/// Building a header, and reading its keys back as names: the keys'
/// layout is this module's (`push_key`).
impl CsvHeader {
    /// Builds the header from the cells of a header row. Empty names become
    /// `cN`; a repeated name gets `_2`, `_3`, ... so no key is lost. Real
    /// names come first: a generated name never takes one that a later
    /// cell has (`x,x,x_2` is `x`, `x_3`, `x_2`). Linear in the cell count,
    /// however many names repeat.
    pub fn from_fields<'a>(fields: impl Iterator<Item = &'a [u8]>) -> Result<Self, Rejection> {
        // Each column's name as the row has it (empty for none).
        let mut raw_names: Vec<&str> = Vec::with_capacity(fields.size_hint().0);
        let mut raw_bytes = 0;
        for (index, field) in fields.enumerate() {
            raw_bytes += field.len();
            let column = index + 1;
            require_utf8(field, || format!("header column {column}"))?;
            raw_names.push(std::str::from_utf8(field).expect("checked above"));
        }
        // Real names first: the first column with each keeps it.
        let mut real: HashSet<&str> = HashSet::with_capacity(raw_names.len());
        let keeps: Vec<bool> = raw_names
            .iter()
            .map(|&raw| !raw.is_empty() && real.insert(raw))
            .collect();
        // The next suffix to try for each repeated name. A generated name
        // `base_N` can only be made again from the same base and N (the
        // `_N` is cut off the end), and N only grows: so generated names
        // never repeat, they need only go around the real ones, and each
        // candidate is tried once (linear).
        let mut next_suffix: HashMap<Cow<'_, str>, usize> = HashMap::new();
        // Sized for the keys up front, so that it never doubles: each is
        // its name, 6 bytes of JSON, and for a generated one a suffix.
        let renamed = keeps.iter().filter(|&&keep| !keep).count();
        let mut keys = Vec::with_capacity(raw_bytes + 6 * raw_names.len() + 8 * renamed);
        let mut key_ends = Vec::with_capacity(raw_names.len());
        let mut origin_like: Vec<String> = Vec::new();
        for (index, (&raw, &keep)) in raw_names.iter().zip(&keeps).enumerate() {
            let name: Cow<'_, str> = if keep {
                Cow::Borrowed(raw)
            } else {
                let base: Cow<'_, str> = match raw {
                    "" => Cow::Owned(format!("c{}", index + 1)),
                    _ => Cow::Borrowed(raw),
                };
                // `cN` has no `_N` ending: no generated name is ever it.
                if raw.is_empty() && !real.contains(&*base) {
                    base
                } else {
                    let suffix = next_suffix.entry(base.clone()).or_insert(2);
                    loop {
                        let candidate = format!("{base}_{suffix}");
                        *suffix += 1;
                        if !real.contains(candidate.as_str()) {
                            break Cow::Owned(candidate);
                        }
                    }
                }
            };
            if name.starts_with(super::jsonl::ORIGIN_KEY) {
                origin_like.push(name.to_string());
            }
            push_key(&mut keys, index, &name);
            let end = u32::try_from(keys.len())
                .map_err(|_| "CSV header too big: its keys pass 4 GiB".to_string())?;
            key_ends.push(end);
        }
        keys.shrink_to_fit();
        let origin_key = super::jsonl::free_origin_key(&origin_like).into_owned();
        Ok(CsvHeader::from_keys(keys, key_ends, origin_key))
    }

    /// The name of column `index` (0-based), as a key of the output.
    pub fn name(&self, index: usize) -> String {
        let key = self.key(index);
        // Between the leading `{` or `",` and the trailing `:"`.
        let skip = if index == 0 { 1 } else { 2 };
        serde_json::from_slice(&key[skip..key.len() - 2]).expect("a JSON string we wrote")
    }

    /// The column names, in order.
    pub fn names(&self) -> Vec<String> {
        (0..self.len()).map(|index| self.name(index)).collect()
    }
}

/// Appends the bytes before column `index`'s value: `{"name":"` for the
/// first, `","name":"` after (the previous value's closing quote
/// included), so a row is one copy per cell plus its escaped value.
fn push_key(keys: &mut Vec<u8>, index: usize, name: &str) {
    keys.extend_from_slice(if index == 0 { b"{" } else { b"\"," });
    json::write_str(keys, name.as_bytes());
    keys.extend_from_slice(b":\"");
}

/// Writes a row as an object keyed by `header`; the row must have exactly
/// as many cells as the header has columns.
pub(super) fn encode_named(
    header: &CsvHeader,
    record: &RawRecord<'_>,
    out: &mut Vec<u8>,
) -> Result<(), Rejection> {
    let bytes = record.bytes();
    // One pass over the row (its delimiters too, if it has them) settles
    // both UTF-8 and escaping for most rows.
    let plain = scan::is_plain_ascii(bytes);
    // A wrong count is said before bad UTF-8. A plain row finds its count
    // as its cells are written (counting a kept line's cells first would
    // read it twice).
    if !plain && record.field_count() != header.len() {
        return Err(wrong_count(header, record));
    }
    out.reserve(bytes.len() + header.keys_len() + 2);
    if plain {
        let mut fields = record.fields();
        for key in header.keys() {
            let Some(field) = fields.next() else {
                return Err(wrong_count(header, record));
            };
            json::extend_small(out, key);
            json::extend_small(out, field);
        }
        if fields.next().is_some() {
            return Err(wrong_count(header, record));
        }
    } else {
        if !is_utf8_per_field(record) {
            for (index, field) in record.fields().enumerate() {
                require_utf8(field, || format!("field '{}'", header.name(index)))?;
            }
        }
        for (field, key) in record.fields().zip(header.keys()) {
            out.extend_from_slice(key);
            json::write_escaped(out, field);
        }
    }
    if header.is_empty() {
        out.push(b'{');
    } else {
        out.push(b'"');
    }
    out.push(b'}');
    Ok(())
}

/// Why a row whose cell count is not the header's is rejected.
fn wrong_count(header: &CsvHeader, record: &RawRecord<'_>) -> Rejection {
    format!(
        "expected {} fields (as in the header), found {}",
        header.len(),
        record.field_count()
    )
}

/// True when every cell is valid UTF-8, checked in one pass over the whole
/// row: the row is valid, and no cell starts inside another's character.
fn is_utf8_per_field(record: &RawRecord<'_>) -> bool {
    std::str::from_utf8(record.bytes()).is_ok()
        && record
            .fields()
            .all(|field| field.first().is_none_or(|&byte| !is_continuation(byte)))
}

fn is_continuation(byte: u8) -> bool {
    byte & 0b1100_0000 == 0b1000_0000
}

/// Writes a row as an object keyed `c1`, `c2`, ... (`--no-header`).
pub(super) fn encode_numbered(record: &RawRecord<'_>, out: &mut Vec<u8>) -> Result<(), Rejection> {
    out.push(b'{');
    for (index, field) in record.fields().enumerate() {
        let column = index + 1;
        require_utf8(field, || format!("field c{column}"))?;
        if index > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"\"c");
        json::write_int(out, column);
        out.extend_from_slice(b"\":");
        json::write_str(out, field);
    }
    out.push(b'}');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Content, RawBatch, SourceInfo};
    use std::sync::Arc;

    fn header(names: &[&str]) -> CsvHeader {
        CsvHeader::from_fields(names.iter().map(|n| n.as_bytes())).unwrap()
    }

    fn row(fields: &[&[u8]]) -> RawBatch {
        let source = Arc::new(SourceInfo::File {
            path: "t.csv".into(),
        });
        let mut batch = RawBatch::new(source, Content::CsvNumbered);
        for field in fields {
            batch.push_field(field);
        }
        batch.finish_record(1);
        batch
    }

    fn named(header: &CsvHeader, fields: &[&[u8]]) -> Result<String, Rejection> {
        let batch = row(fields);
        let mut out = Vec::new();
        encode_named(header, &batch.records().next().unwrap(), &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn header_names_are_made_unique_and_never_empty() {
        let h = header(&["id", "", "id", "id", "name \"q\""]);
        assert_eq!(h.names(), &["id", "c2", "id_2", "id_3", "name \"q\""]);
        assert_eq!(
            named(&h, &[b"1", b"2", b"3", b"4", b"5"]).unwrap(),
            r#"{"id":"1","c2":"2","id_2":"3","id_3":"4","name \"q\"":"5"}"#
        );
    }

    #[test]
    fn generated_names_go_around_real_ones() {
        let h = header(&["x", "x", "x_2", "", "c4", "x", "x_3"]);
        assert_eq!(h.names(), &["x", "x_4", "x_2", "c4_2", "c4", "x_5", "x_3"]);
    }

    #[test]
    fn many_copies_of_a_name_are_renamed_in_linear_time() {
        let names = vec!["x"; 200_000];
        let started = std::time::Instant::now();
        let h = header(&names);
        assert_eq!(h.names()[199_999], "x_200000");
        // Quadratic renaming took minutes; linear takes milliseconds.
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn cells_stay_strings_and_are_escaped() {
        let h = header(&["a", "b"]);
        assert_eq!(
            named(&h, &[b"007", b"x,\"y\"\nz"]).unwrap(),
            r#"{"a":"007","b":"x,\"y\"\nz"}"#
        );
    }

    #[test]
    fn wrong_field_count_and_bad_utf8_are_rejected() {
        let h = header(&["a", "b"]);
        assert_eq!(
            named(&h, &[b"1"]).unwrap_err(),
            "expected 2 fields (as in the header), found 1"
        );
        assert_eq!(
            named(&h, &[b"1", b"\xe9t\xe9"]).unwrap_err(),
            "invalid UTF-8 in field 'b' (byte 1)"
        );
    }

    #[test]
    fn a_character_split_between_cells_is_invalid() {
        let h = header(&["a", "b"]);
        // "é" is C3 A9: the row as a whole is valid, each cell is not.
        assert_eq!(
            named(&h, &[b"x\xc3", b"\xa9y"]).unwrap_err(),
            "invalid UTF-8 in field 'a' (byte 2)"
        );
        assert_eq!(
            named(&h, &[b"\xc3\xa9", b""]).unwrap(),
            "{\"a\":\"é\",\"b\":\"\"}"
        );
    }

    #[test]
    fn numbered_keys() {
        let batch = row(&[b"x", b"y"]);
        let mut out = Vec::new();
        encode_numbered(&batch.records().next().unwrap(), &mut out).unwrap();
        assert_eq!(out, br#"{"c1":"x","c2":"y"}"#);
    }
}
