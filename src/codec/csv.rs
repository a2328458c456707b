//! CSV rows to JSON objects, keyed by the header row (or `c1`, `c2`, ...).
//! Cells stay strings: a CSV cell has no type, and `007` must stay `007`.

use std::collections::{HashMap, HashSet};

use super::{require_utf8, Rejection};
use crate::json;
use crate::record::RawRecord;
use crate::scan;

/// The column names of a CSV input, kept ready to write (`"name":`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvHeader {
    names: Vec<String>,
    encoded_keys: Vec<Vec<u8>>,
    /// Bytes of all encoded keys: what a row adds besides its values.
    keys_len: usize,
    /// The key `--origin` adds its object under: `_origin`, or the first
    /// of `_origin_2`, `_origin_3`, ... that no column has.
    origin_key: String,
}

impl CsvHeader {
    /// Builds the header from the cells of a header row. Empty names become
    /// `cN`; a repeated name gets `_2`, `_3`, ... so no key is lost. Real
    /// names come first: a generated name never takes one that a later
    /// cell has (`x,x,x_2` is `x`, `x_3`, `x_2`). Linear in the cell count,
    /// however many names repeat.
    pub fn from_fields<'a>(fields: impl Iterator<Item = &'a [u8]>) -> Result<Self, Rejection> {
        // Each column's name as the row has it (empty for none).
        let mut raw_names: Vec<&str> = Vec::new();
        for (index, field) in fields.enumerate() {
            let column = index + 1;
            require_utf8(field, || format!("header column {column}"))?;
            raw_names.push(std::str::from_utf8(field).expect("checked above"));
        }
        // Real names first: the first column with each keeps it.
        let mut real: HashSet<&str> = HashSet::with_capacity(raw_names.len());
        let mut names: Vec<Option<String>> = raw_names
            .iter()
            .map(|&raw| (!raw.is_empty() && real.insert(raw)).then(|| raw.to_string()))
            .collect();
        let mut generated: HashSet<String> = HashSet::new();
        // The next suffix to try for each repeated name: each candidate is
        // tried once, so renaming stays linear.
        let mut next_suffix: HashMap<String, usize> = HashMap::new();
        for (index, (name, &raw)) in names.iter_mut().zip(&raw_names).enumerate() {
            if name.is_some() {
                continue;
            }
            let base = match raw {
                "" => format!("c{}", index + 1),
                _ => raw.to_string(),
            };
            let mut take = |candidate: &str| {
                let free = !real.contains(candidate) && !generated.contains(candidate);
                if free {
                    generated.insert(candidate.to_string());
                }
                free
            };
            if raw.is_empty() && take(&base) {
                *name = Some(base);
                continue;
            }
            let suffix = next_suffix.entry(base.clone()).or_insert(2);
            let renamed = loop {
                let candidate = format!("{base}_{suffix}");
                *suffix += 1;
                if take(&candidate) {
                    break candidate;
                }
            };
            *name = Some(renamed);
        }
        let names: Vec<String> = names.into_iter().map(|name| name.expect("named")).collect();
        let encoded_keys: Vec<Vec<u8>> = names
            .iter()
            .enumerate()
            .map(|(index, name)| encode_key(index, name))
            .collect();
        let keys_len = encoded_keys.iter().map(Vec::len).sum();
        let origin_like: Vec<&String> = names
            .iter()
            .filter(|name| name.starts_with(super::jsonl::ORIGIN_KEY))
            .collect();
        let origin_key = super::jsonl::free_origin_key(&origin_like).into_owned();
        Ok(CsvHeader {
            names,
            encoded_keys,
            keys_len,
            origin_key,
        })
    }

    /// The column names, in order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The key `--origin` adds its object under (see [`CsvHeader::from_fields`]).
    pub fn origin_key(&self) -> &str {
        &self.origin_key
    }

    /// Number of columns.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True for a header with no column.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// The bytes before column `index`'s value: `{"name":"` for the first,
/// `","name":"` after (the previous value's closing quote included), so a
/// row is one copy per cell plus its escaped value.
fn encode_key(index: usize, name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(name.len() + 6);
    key.extend_from_slice(if index == 0 { b"{" } else { b"\"," });
    json::write_str(&mut key, name.as_bytes());
    key.extend_from_slice(b":\"");
    key
}

/// Writes a row as an object keyed by `header`; the row must have exactly
/// as many cells as the header has columns.
pub(super) fn encode_named(
    header: &CsvHeader,
    record: &RawRecord<'_>,
    out: &mut Vec<u8>,
) -> Result<(), Rejection> {
    let found = record.field_count();
    if found != header.len() {
        return Err(format!(
            "expected {} fields (as in the header), found {found}",
            header.len()
        ));
    }
    let bytes = record.bytes();
    out.reserve(bytes.len() + header.keys_len + 2);
    // One pass over the row (its delimiters too, if it has them) settles
    // both UTF-8 and escaping for most rows.
    if scan::is_plain_ascii(bytes) {
        for (field, key) in record.fields().zip(&header.encoded_keys) {
            json::extend_small(out, key);
            json::extend_small(out, field);
        }
    } else {
        if !is_utf8_per_field(record) {
            for (field, name) in record.fields().zip(&header.names) {
                require_utf8(field, || format!("field '{name}'"))?;
            }
        }
        for (field, key) in record.fields().zip(&header.encoded_keys) {
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
    use crate::codec::Decode;
    use crate::record::{RawBatch, SourceInfo};
    use std::sync::Arc;

    fn header(names: &[&str]) -> CsvHeader {
        CsvHeader::from_fields(names.iter().map(|n| n.as_bytes())).unwrap()
    }

    fn row(fields: &[&[u8]]) -> RawBatch {
        let source = Arc::new(SourceInfo::File {
            path: "t.csv".into(),
        });
        let mut batch = RawBatch::new(source, Decode::CsvNumbered);
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
