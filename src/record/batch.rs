//! Decoded records: what the decode stage hands on to the stages and the
//! sink.

use std::sync::Arc;

use super::{Location, SourceInfo};
use crate::ack::Acks;

/// Decoded records: each one JSON object, written as NDJSON (object, `\n`)
/// into one buffer, with each record's position kept beside it.
#[derive(Debug)]
pub struct Batch {
    /// Where these records came from.
    pub source: Arc<SourceInfo>,
    /// Fired once every record of this batch is written by the sink.
    pub acks: Acks,
    ndjson: Vec<u8>,
    /// Where each record's line ends in `ndjson`. Not `u32`: decoding may
    /// make a batch many times as big as its raw batch (CSV keys repeated
    /// on every row), and one word per record costs nothing to speak of.
    ends: Vec<usize>,
    positions: Vec<u64>,
}

impl Batch {
    /// An empty batch of records from `source`.
    pub fn new(source: Arc<SourceInfo>) -> Self {
        Self::with_capacity(source, 0, 0)
    }

    /// An empty batch with room for `records` records of `bytes` bytes in all.
    pub fn with_capacity(source: Arc<SourceInfo>, records: usize, bytes: usize) -> Self {
        Batch {
            source,
            acks: Acks::none(),
            ndjson: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(records),
            positions: Vec::with_capacity(records),
        }
    }

    /// The buffer to write the next record's JSON object into; end the
    /// record with [`Batch::finish_record`] or drop what was written with
    /// [`Batch::abandon_record`].
    pub fn record_buf(&mut self) -> &mut Vec<u8> {
        &mut self.ndjson
    }

    /// Where the record being written starts in [`Batch::record_buf`].
    pub fn record_start(&self) -> usize {
        self.ends.last().copied().unwrap_or(0)
    }

    /// Ends the record written into [`Batch::record_buf`] since the last one.
    pub fn finish_record(&mut self, pos: u64) {
        self.ndjson.push(b'\n');
        self.ends.push(self.ndjson.len());
        self.positions.push(pos);
    }

    /// Drops whatever was written into [`Batch::record_buf`] since the last
    /// finished record.
    pub fn abandon_record(&mut self) {
        self.ndjson.truncate(self.record_start());
    }

    /// Appends a record that is already one JSON object (no trailing newline).
    pub fn push_json(&mut self, object: &[u8], pos: u64) {
        self.ndjson.extend_from_slice(object);
        self.finish_record(pos);
    }

    /// Appends a record from a parsed JSON object.
    pub fn push_value(&mut self, object: &serde_json::Map<String, serde_json::Value>, pos: u64) {
        serde_json::to_writer(&mut self.ndjson, object).expect("a JSON map always serializes");
        self.finish_record(pos);
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when the batch holds no record.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// All records as NDJSON: one JSON object per line, each ending in `\n`.
    pub fn as_ndjson(&self) -> &[u8] {
        &self.ndjson
    }

    /// The NDJSON buffer itself, for a sink that writes it without a copy
    /// (take the acks out first: they go with the batch).
    pub fn into_ndjson(self) -> Vec<u8> {
        self.ndjson
    }

    /// Keeps only the first `len` records.
    pub fn truncate(&mut self, len: usize) {
        if len < self.ends.len() {
            let end = if len == 0 { 0 } else { self.ends[len - 1] };
            self.ndjson.truncate(end);
            self.ends.truncate(len);
            self.positions.truncate(len);
        }
    }

    /// The records, in order.
    pub fn iter(&self) -> impl Iterator<Item = RecordRef<'_>> {
        let mut start = 0usize;
        self.ends
            .iter()
            .zip(&self.positions)
            .map(move |(&end, &pos)| {
                let json = &self.ndjson[start..end - 1];
                start = end;
                RecordRef {
                    json,
                    location: Location {
                        source: &self.source,
                        pos,
                    },
                }
            })
    }

    /// Rebuilds the batch record by record: `step` gets each record and the
    /// output batch, and pushes zero, one or more records. The acks carry
    /// over, so dropped records still count as delivered once the rest are.
    pub fn rebuild(self, mut step: impl FnMut(RecordRef<'_>, &mut Batch)) -> Batch {
        let mut out = Batch::with_capacity(self.source.clone(), self.len(), self.ndjson.len());
        for record in self.iter() {
            step(record, &mut out);
        }
        out.acks = self.acks;
        out
    }

    /// Keeps the records for which `keep` is true.
    pub fn retain(self, mut keep: impl FnMut(&RecordRef<'_>) -> bool) -> Batch {
        self.rebuild(|record, out| {
            if keep(&record) {
                out.push_json(record.json, record.location.pos);
            }
        })
    }
}

/// One decoded record of a [`Batch`].
#[derive(Debug, Clone, Copy)]
pub struct RecordRef<'a> {
    /// The record as one JSON object, without the trailing newline.
    pub json: &'a [u8],
    /// Where the record came from.
    pub location: Location<'a>,
}

impl RecordRef<'_> {
    /// Parses the record into a JSON object (keys keep their order).
    pub fn to_object(&self) -> serde_json::Result<serde_json::Map<String, serde_json::Value>> {
        serde_json::from_slice(self.json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_source() -> Arc<SourceInfo> {
        Arc::new(SourceInfo::File {
            path: "in.csv".into(),
        })
    }

    #[test]
    fn batch_truncate_retain_and_iter_agree() {
        let mut batch = Batch::new(file_source());
        for n in 1..=4u64 {
            batch.push_json(format!("{{\"n\":{n}}}").as_bytes(), n);
        }
        let batch = batch.retain(|r| r.location.pos % 2 == 0);
        assert_eq!(batch.as_ndjson(), b"{\"n\":2}\n{\"n\":4}\n");
        let mut batch = batch;
        batch.truncate(1);
        let records: Vec<_> = batch.iter().map(|r| r.json.to_vec()).collect();
        assert_eq!(records, vec![b"{\"n\":2}".to_vec()]);
        batch.record_buf().extend_from_slice(b"{\"half");
        batch.abandon_record();
        assert_eq!(batch.as_ndjson(), b"{\"n\":2}\n");
    }
}
