//! NDJSON records to CSV rows: the columns are the first record's keys.

use serde_json::{Map, Value};

use crate::record::Batch;

/// The CSV encoder's state: the columns, once the first record set them.
#[derive(Debug, Default)]
pub(super) struct CsvOutput {
    columns: Option<Vec<String>>,
    warned_extra: bool,
}

impl CsvOutput {
    /// Appends a row per record (and the header before the first). A key
    /// missing from a record gives an empty cell; a nested value is written
    /// as its JSON text; a key the first record lacked is dropped, with one
    /// warning.
    pub(super) fn encode(&mut self, batch: &Batch, out: &mut Vec<u8>) {
        let mut writer = csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(out);
        for record in batch.iter() {
            let object: Map<String, Value> = match record.to_object() {
                Ok(object) => object,
                Err(error) => {
                    tracing::warn!("{}: not written as CSV: {error}", record.location);
                    continue;
                }
            };
            let columns = self.columns.get_or_insert_with(|| {
                let names: Vec<String> = object.keys().cloned().collect();
                writer
                    .write_record(&names)
                    .expect("writing to memory cannot fail");
                names
            });
            if !self.warned_extra && object.keys().any(|key| !columns.contains(key)) {
                self.warned_extra = true;
                tracing::warn!(
                    "{}: keys not in the first record are left out of the CSV output",
                    record.location
                );
            }
            let cells = columns.iter().map(|column| match object.get(column) {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(text)) => text.clone(),
                Some(other) => other.to_string(),
            });
            writer
                .write_record(cells)
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
