//! NDJSON records to CSV rows. The columns are the existing header's when
//! appending to a CSV file, else `--select`'s names, else the first
//! record's keys. A record with a
//! key that is not a column is rejected (its value has no cell to go in);
//! a column the record lacks is an empty cell, as a null is.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::error::Result;
use crate::parts::Rejects;
use crate::record::{Batch, RecordRef};

/// Column names shown in a rejection's reason, at most.
const NAMES_SHOWN: usize = 10;

/// The CSV encoder's state: the columns, once known.
#[derive(Debug, Default)]
pub(super) struct CsvOutput {
    columns: Option<Columns>,
    /// The header row is still to be written (columns given by `--select`).
    header_due: bool,
}

/// The columns, and each name's position, so that placing a record's
/// cells is linear in its keys whatever the width.
#[derive(Debug)]
struct Columns {
    names: Vec<String>,
    position: HashMap<String, usize>,
}

impl Columns {
    fn new(names: Vec<String>) -> Self {
        let position = names
            .iter()
            .enumerate()
            .map(|(index, name)| (name.clone(), index))
            .collect();
        Columns { names, position }
    }
}

impl CsvOutput {
    /// An encoder whose columns are `names` (the header of the file it
    /// appends to), writing no header row.
    pub(super) fn with_columns(names: Vec<String>) -> Self {
        CsvOutput {
            columns: Some(Columns::new(names)),
            header_due: false,
        }
    }

    /// An encoder whose columns are `names` (`--select`), writing them as
    /// the header row before the first record.
    pub(super) fn with_header(names: Vec<String>) -> Self {
        CsvOutput {
            columns: Some(Columns::new(names)),
            header_due: true,
        }
    }

    /// Appends a row per record (and the header before the first, when
    /// the columns come from it); a nested value is written as its JSON
    /// text. A record that does not fit the columns goes to `rejects`.
    /// Returns how many rows it wrote; fails under `--on-error stop`.
    pub(super) fn encode(
        &mut self,
        batch: &Batch,
        out: &mut Vec<u8>,
        rejects: &Rejects,
    ) -> Result<usize> {
        let mut writer = csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(out);
        let mut text = String::new();
        let mut rows = 0;
        for record in batch.iter() {
            let object: Map<String, Value> = match record.to_object() {
                Ok(object) => object,
                Err(error) => {
                    reject(rejects, &record, &format!("not written as CSV: {error}"))?;
                    continue;
                }
            };
            if std::mem::take(&mut self.header_due) {
                let names = self.columns.as_ref().map(|columns| &columns.names);
                writer
                    .write_record(names.into_iter().flatten())
                    .expect("writing to memory cannot fail");
            }
            let columns = self.columns.get_or_insert_with(|| {
                let names: Vec<String> = object.keys().cloned().collect();
                writer
                    .write_record(&names)
                    .expect("writing to memory cannot fail");
                Columns::new(names)
            });
            let mut cells: Vec<Option<&Value>> = vec![None; columns.names.len()];
            let mut extra: Vec<&str> = Vec::new();
            for (key, value) in &object {
                match columns.position.get(key) {
                    Some(&index) => cells[index] = Some(value),
                    None => extra.push(key),
                }
            }
            if !extra.is_empty() {
                let reason = not_columns(&extra, &columns.names);
                reject(rejects, &record, &reason)?;
                continue;
            }
            for cell in &cells {
                let field: &[u8] = match cell {
                    None | Some(Value::Null) => b"",
                    Some(Value::String(text)) => text.as_bytes(),
                    Some(other) => {
                        text.clear();
                        use std::fmt::Write;
                        let _ = write!(text, "{other}");
                        text.as_bytes()
                    }
                };
                writer
                    .write_field(field)
                    .expect("writing to memory cannot fail");
            }
            writer
                .write_record(None::<&[u8]>)
                .expect("writing to memory cannot fail");
            rows += 1;
        }
        writer.flush().expect("writing to memory cannot fail");
        Ok(rows)
    }
}

fn reject(rejects: &Rejects, record: &RecordRef<'_>, reason: &str) -> Result<()> {
    rejects.reject(record.location, record.json, reason)
}

/// "key c is not a column of the CSV output (its header is a,b)".
fn not_columns(extra: &[&str], names: &[String]) -> String {
    let keys = shorten(extra.iter().copied(), extra.len(), ", ");
    let header = shorten(names.iter().map(String::as_str), names.len(), ",");
    match extra.len() {
        1 => format!("key {keys} is not a column of the CSV output (its header is {header})"),
        _ => format!("keys {keys} are not columns of the CSV output (its header is {header})"),
    }
}

/// The first names joined, and how many there are when not all are shown.
fn shorten<'a>(names: impl Iterator<Item = &'a str>, count: usize, separator: &str) -> String {
    let shown: Vec<&str> = names.take(NAMES_SHOWN).collect();
    let mut text = shown.join(separator);
    if count > NAMES_SHOWN {
        text.push_str(&format!("{separator}... ({count} in all)"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::SourceInfo;
    use std::sync::Arc;

    #[test]
    fn header_from_first_record_and_cells_quoted() {
        let mut batch = Batch::new(Arc::new(SourceInfo::File { path: "x".into() }));
        batch.push_json(br#"{"a":"1,2","b":"say \"hi\"","n":{"x":1}}"#, 1);
        batch.push_json(br#"{"b":"only b"}"#, 2);
        batch.push_json(br#"{"b":"only b","extra":true}"#, 3);
        let mut out = Vec::new();
        let mut csv = CsvOutput::default();
        let rejects = Rejects::skip();
        assert_eq!(csv.encode(&batch, &mut out, &rejects).unwrap(), 2);
        assert_eq!(rejects.count(), 1);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "a,b,n\n\"1,2\",\"say \"\"hi\"\"\",\"{\"\"x\"\":1}\"\n,only b,\n"
        );
    }

    #[test]
    fn a_long_list_of_names_is_shortened() {
        let names: Vec<String> = (0..12).map(|n| format!("c{n}")).collect();
        assert_eq!(
            not_columns(&["x", "y"], &names),
            "keys x, y are not columns of the CSV output (its header is \
             c0,c1,c2,c3,c4,c5,c6,c7,c8,c9,... (12 in all))"
        );
    }
}
