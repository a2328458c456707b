//! NDJSON records to CSV rows: the columns are the first record's keys.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::record::Batch;

/// The CSV encoder's state: the columns, once the first record set them.
#[derive(Debug, Default)]
pub(super) struct CsvOutput {
    columns: Option<Columns>,
    warned_extra: bool,
    /// No header row: the output already has one (`--append` to a
    /// non-empty file).
    skip_header: bool,
}

/// The columns, and each name's position, so that placing a record's
/// cells is linear in its keys whatever the width.
#[derive(Debug)]
struct Columns {
    names: Vec<String>,
    position: HashMap<String, usize>,
}

impl CsvOutput {
    /// An encoder that writes no header row (the output has one already).
    pub(super) fn without_header() -> Self {
        CsvOutput {
            skip_header: true,
            ..CsvOutput::default()
        }
    }

    /// Appends a row per record (and the header before the first). A key
    /// missing from a record gives an empty cell; a nested value is written
    /// as its JSON text; a key the first record lacked is dropped, with one
    /// warning.
    pub(super) fn encode(&mut self, batch: &Batch, out: &mut Vec<u8>) {
        let mut writer = csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(out);
        let mut text = String::new();
        for record in batch.iter() {
            let object: Map<String, Value> = match record.to_object() {
                Ok(object) => object,
                Err(error) => {
                    tracing::warn!("{}: not written as CSV: {error}", record.location);
                    continue;
                }
            };
            let skip_header = self.skip_header;
            let columns = self.columns.get_or_insert_with(|| {
                let names: Vec<String> = object.keys().cloned().collect();
                if !skip_header {
                    writer
                        .write_record(&names)
                        .expect("writing to memory cannot fail");
                }
                let position = names
                    .iter()
                    .enumerate()
                    .map(|(index, name)| (name.clone(), index))
                    .collect();
                Columns { names, position }
            });
            let mut cells: Vec<Option<&Value>> = vec![None; columns.names.len()];
            let mut extra = false;
            for (key, value) in &object {
                match columns.position.get(key) {
                    Some(&index) => cells[index] = Some(value),
                    None => extra = true,
                }
            }
            if extra && !self.warned_extra {
                self.warned_extra = true;
                tracing::warn!(
                    "{}: keys not in the first record are left out of the CSV output",
                    record.location
                );
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
        }
        writer.flush().expect("writing to memory cannot fail");
    }
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
        batch.push_json(br#"{"b":"only b","extra":true}"#, 2);
        let mut out = Vec::new();
        let mut csv = CsvOutput::default();
        csv.encode(&batch, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "a,b,n\n\"1,2\",\"say \"\"hi\"\"\",\"{\"\"x\"\":1}\"\n,only b,\n"
        );
    }
}
