//! Kafka messages to raw batches: one batch per run of messages from one
//! partition, message values read as JSON lines, lines or CSV, and (with
//! `--origin`) each message's key, timestamp and headers kept for its
//! `_origin`.

use std::sync::Arc;

use super::origin::{write_origin_extra, write_tombstone};
use crate::codec::csv_assembler::{push_row, trim_line_ends};
use crate::codec::csv_stream::ends_in_quote;
use crate::codec::{CsvAssembler, Format, Naming, Taken};
use crate::error::Result;
use crate::parts::Rejects;
use crate::record::{Content, Location, RawBatch, SourceInfo};

/// What the batcher needs of one Kafka message.
#[derive(Debug, Clone, Default)]
pub(super) struct Message<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    /// `None` for a message without a value (a tombstone).
    pub payload: Option<&'a [u8]>,
    pub key: Option<&'a [u8]>,
    /// Milliseconds since the epoch, when the message has a timestamp.
    pub timestamp: Option<i64>,
    /// The headers, in order (only read when `--origin` wants them).
    pub headers: Vec<(&'a str, Option<&'a [u8]>)>,
}

/// How message values are read.
#[derive(Debug, Clone)]
pub(super) struct ValueFormat {
    pub format: Format,
    pub delimiter: u8,
    /// CSV: each message's first row names its columns.
    pub header: bool,
    /// Keep key, timestamp and headers for `_origin`.
    pub origin: bool,
    /// `--keep-tombstones`: no value, or an empty one where a record needs
    /// one, is a `{"_key":..,"_value":..}` record, not a rejection.
    pub keep_tombstones: bool,
}

/// A batch of one partition's messages, ready to send once the caller has
/// attached its acknowledgement.
#[derive(Debug)]
pub(super) struct Finished {
    pub batch: RawBatch,
    /// The partition's assignment epoch when the batch was started.
    pub epoch: u64,
    /// The offset after the batch's last message (rejected ones included):
    /// what to commit once the sink has written the batch.
    pub next_offset: i64,
}

struct Open {
    batch: RawBatch,
    epoch: u64,
    next_offset: i64,
}

/// Builds batches from messages in the order they are read.
pub(super) struct Batcher {
    format: ValueFormat,
    batch_records: usize,
    batch_bytes: usize,
    current: Option<Open>,
    /// Batches finished but not yet taken by [`Batcher::take_ready`].
    ready: Vec<Finished>,
    extra: Vec<u8>,
    /// The CSV row being read (reused from row to row).
    row: csv::ByteRecord,
    /// Messages rejected here since [`Batcher::take_rejected`]: they never
    /// enter a batch, so the source counts them as read itself.
    rejected: u64,
}

impl Batcher {
    /// A batcher making batches of at most `batch_records` records or
    /// about `batch_bytes` bytes.
    pub(super) fn new(format: ValueFormat, batch_records: usize, batch_bytes: usize) -> Self {
        Batcher {
            format,
            batch_records: batch_records.max(1),
            batch_bytes: batch_bytes.max(1),
            current: None,
            ready: Vec::new(),
            extra: Vec::new(),
            row: csv::ByteRecord::new(),
            rejected: 0,
        }
    }

    /// How many messages were rejected here (not put in a batch) since the
    /// last call.
    pub(super) fn take_rejected(&mut self) -> u64 {
        std::mem::take(&mut self.rejected)
    }

    /// True when records keep their message's key, timestamp and headers.
    pub(super) fn origin(&self) -> bool {
        self.format.origin
    }

    /// True when full batches wait to be taken.
    pub(super) fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Takes the full batches, in order.
    pub(super) fn take_ready(&mut self) -> Vec<Finished> {
        std::mem::take(&mut self.ready)
    }

    /// Ends the batch being filled (even if not full) and takes every
    /// batch, in order.
    pub(super) fn take_all(&mut self) -> Vec<Finished> {
        self.finish();
        self.take_ready()
    }

    fn finish(&mut self) {
        if let Some(open) = self.current.take() {
            self.ready.push(Finished {
                batch: open.batch,
                epoch: open.epoch,
                next_offset: open.next_offset,
            });
        }
    }

    /// Adds one message. `partition_info` names its partition's source and
    /// current assignment epoch when a new batch starts. A message that is
    /// no record (no value, an empty value where a JSON object or a CSV row
    /// must be, a bad CSV document) goes to `rejects`; the error is
    /// `--on-error stop`'s. Every message becomes at least one record of a
    /// batch or one rejection: none is dropped.
    pub(super) fn add(
        &mut self,
        message: &Message<'_>,
        partition_info: impl FnOnce() -> (Arc<SourceInfo>, u64),
        rejects: &Rejects,
    ) -> Result<()> {
        let same_partition = self.current.as_ref().is_some_and(|open| {
            matches!(&*open.batch.source,
                SourceInfo::Kafka { topic, partition }
                    if topic == message.topic && *partition == message.partition)
        });
        if !same_partition {
            self.finish();
        }
        if self.current.is_none() {
            let (source, epoch) = partition_info();
            self.current = Some(Open {
                batch: RawBatch::new(source, self.plain_decode()),
                epoch,
                next_offset: message.offset,
            });
        }
        self.extra.clear();
        if self.format.origin {
            write_origin_extra(&mut self.extra, message);
        }
        let empty = message
            .payload
            .is_some_and(|value| value.trim_ascii().is_empty());
        let result = match message.payload {
            _ if self.format.keep_tombstones
                && (message.payload.is_none() || empty && self.format.format != Format::Lines) =>
            {
                self.push_tombstone(message);
                Ok(())
            }
            None => self.reject(message, b"", "message has no value (a tombstone)", rejects),
            Some(value) => match self.format.format {
                // The decode stage skips blank JSON lines (right for a file);
                // a message is one record, so an empty one is a bad one.
                Format::Jsonl if value.trim_ascii().is_empty() => {
                    self.reject(message, value, EMPTY_JSON, rejects)
                }
                Format::Jsonl => {
                    self.push_one(value, message.offset);
                    Ok(())
                }
                Format::Lines => {
                    // After a kept tombstone (a JSON record) the batch
                    // decodes as lines again.
                    self.use_decode(Content::Lines);
                    let line = value.strip_suffix(b"\n").unwrap_or(value);
                    self.push_one(line, message.offset);
                    Ok(())
                }
                Format::Csv => self.push_csv(message, value, rejects),
            },
        };
        let open = self.current.as_mut().expect("opened above");
        // Under `--on-error stop` the failing message is not handled: the
        // batch's ack must stop short of it, so it is read again next run.
        if result.is_ok() {
            open.next_offset = open.next_offset.max(message.offset + 1);
        }
        if open.batch.len() >= self.batch_records || open.batch.byte_len() >= self.batch_bytes {
            self.finish();
        }
        result
    }

    /// The decode of a new batch; CSV with headers sets its own per
    /// message (see [`Batcher::use_header`]).
    fn plain_decode(&self) -> Content {
        match self.format.format {
            Format::Jsonl => Content::Jsonl,
            Format::Lines => Content::Lines,
            Format::Csv => Content::CsvNumbered,
        }
    }

    /// `--keep-tombstones`: the message's key and null (or empty) value
    /// as a JSON record, whatever the format of the other values.
    fn push_tombstone(&mut self, message: &Message<'_>) {
        self.use_decode(Content::Jsonl);
        let mut record = Vec::with_capacity(32);
        write_tombstone(&mut record, message);
        self.push_one(&record, message.offset);
    }

    fn push_one(&mut self, value: &[u8], offset: i64) {
        let batch = &mut self.current.as_mut().expect("open batch").batch;
        batch.push_field(value);
        batch.push_origin_extra(&self.extra);
        batch.finish_record(offset as u64);
    }

    fn reject(
        &mut self,
        message: &Message<'_>,
        raw: &[u8],
        reason: &str,
        rejects: &Rejects,
    ) -> Result<()> {
        self.rejected += 1;
        let open = self.current.as_ref().expect("open batch");
        let location = Location {
            source: &open.batch.source,
            pos: message.offset as u64,
        };
        rejects.reject(location, raw, reason)
    }

    /// A CSV document: every row is a record; unless `--no-header`, the
    /// first row names the columns of the rest (see [`CsvAssembler`]).
    fn push_csv(&mut self, message: &Message<'_>, value: &[u8], rejects: &Rejects) -> Result<()> {
        let delimiter = self.format.delimiter;
        // The csv crate takes a quote open at the end as closed: the last
        // row is then rejected, as a CSV stream's would be.
        let unclosed = memchr::memchr(b'"', value).is_some() && ends_in_quote(value, delimiter);
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(delimiter)
            .from_reader(value);
        let mut assembler = CsvAssembler::new(self.format.header, NAMING);
        let mut row = std::mem::take(&mut self.row);
        let mut header_used = false;
        let mut rejected_rows = false;
        // The open batch decodes as this message's rows do (set at its
        // first row: a header alone must not end the batch).
        let mut decode_set = false;
        let mut result = Ok(());
        while result.is_ok() {
            let start = reader.position().byte() as usize;
            match reader.read_byte_record(&mut row) {
                Ok(true) => {}
                Ok(false) => break,
                Err(error) => {
                    let raw = &value[start..];
                    result = self.reject(message, raw, &format!("invalid CSV: {error}"), rejects);
                    break;
                }
            }
            let start = row.position().map_or(start, |at| at.byte() as usize);
            let end = reader.position().byte() as usize;
            let raw = trim_line_ends(&value[start..end.min(value.len())]);
            let location = self.location(message.offset);
            let offset = message.offset as u64;
            if unclosed && end >= value.len() {
                let raw = &value[start..];
                let mut reason = NAMING.unclosed();
                if assembler.wants_header() {
                    reason = assembler.unreadable(location, offset, &reason);
                }
                rejected_rows = true;
                result = self.reject(message, raw, &reason, rejects);
                break;
            }
            let bytes = row.as_slice().len();
            match assembler.take(location, offset, row.iter(), bytes, |_, _| Ok(())) {
                Taken::Record => {
                    if !decode_set {
                        self.use_decode(assembler.content().clone());
                        decode_set = true;
                    }
                    let batch = &mut self.current.as_mut().expect("open batch").batch;
                    push_row(batch, raw, delimiter, row.as_slice(), row.iter());
                    batch.push_origin_extra(&self.extra);
                    batch.finish_record(message.offset as u64);
                }
                Taken::Header(()) => header_used = true,
                Taken::Rejected(reason) => {
                    rejected_rows = true;
                    result = self.reject(message, raw, &reason, rejects);
                }
            }
        }
        self.row = row;
        result?;
        // Every message is written or rejected: one that makes no record
        // (no row, or a header alone) is rejected.
        if assembler.rows() == 0 && !rejected_rows {
            let reason = if header_used { HEADER_ONLY } else { EMPTY_CSV };
            return self.reject(message, value, reason, rejects);
        }
        Ok(())
    }

    /// Where a message is, for messages about it.
    fn location(&self, offset: i64) -> Location<'_> {
        let open = self.current.as_ref().expect("open batch");
        Location {
            source: &open.batch.source,
            pos: offset as u64,
        }
    }

    /// Makes the open batch one decoded as `decode`, starting a new batch
    /// when its records decode otherwise.
    fn use_decode(&mut self, decode: Content) {
        let open = self.current.as_mut().expect("open batch");
        if same_decode(&open.batch.content, &decode) {
            return;
        }
        if open.batch.is_empty() {
            open.batch.content = decode;
            return;
        }
        let source = open.batch.source.clone();
        let epoch = open.epoch;
        let next_offset = open.next_offset;
        self.finish();
        self.current = Some(Open {
            batch: RawBatch::new(source, decode),
            epoch,
            next_offset,
        });
    }
}

/// Whether records decoded as `a` and as `b` come out the same.
fn same_decode(a: &Content, b: &Content) -> bool {
    match (a, b) {
        (Content::Csv(a), Content::Csv(b)) => a == b,
        (Content::Unusable(a), Content::Unusable(b)) => a == b,
        (Content::CsvNumbered, Content::CsvNumbered)
        | (Content::Jsonl, Content::Jsonl)
        | (Content::Lines, Content::Lines) => true,
        _ => false,
    }
}

/// How CSV header messages name a message's position and the message.
const NAMING: Naming = Naming {
    position: "at offset",
    here: "at this offset",
    stream: "message",
};

/// Why a CSV value of a header row alone is rejected.
const HEADER_ONLY: &str =
    "CSV message has a header row but no data rows (messages of one row need --no-header)";

/// Why an empty (or blank) value is rejected under `--format jsonl`.
const EMPTY_JSON: &str = "empty message value (not a JSON object)";

/// Why a value without any CSV row is rejected under `--format csv`.
const EMPTY_CSV: &str = "empty message value (no CSV row)";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{decode_into, DecodeOptions, NoStep};
    use crate::parts::OnError;
    use crate::record::Batch;

    fn batcher(format: Format, header: bool, origin: bool, batch_records: usize) -> Batcher {
        let format = ValueFormat {
            format,
            delimiter: b',',
            header,
            origin,
            keep_tombstones: false,
        };
        Batcher::new(format, batch_records, 1 << 20)
    }

    fn message<'a>(partition: i32, offset: i64, payload: Option<&'a [u8]>) -> Message<'a> {
        Message {
            topic: "t",
            partition,
            offset,
            payload,
            ..Message::default()
        }
    }

    fn info(partition: i32) -> impl FnOnce() -> (Arc<SourceInfo>, u64) {
        move || {
            let source = SourceInfo::Kafka {
                topic: "t".into(),
                partition,
            };
            (Arc::new(source), 7)
        }
    }

    fn decoded(finished: &Finished, origin: bool) -> Vec<String> {
        let mut out = Batch::new(finished.batch.source.clone());
        for record in finished.batch.records() {
            decode_into(
                &finished.batch.content,
                &record,
                DecodeOptions { origin },
                &mut NoStep,
                &mut out,
            )
            .unwrap();
        }
        out.iter()
            .map(|r| String::from_utf8(r.json.to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn one_batch_per_run_of_a_partition() {
        let rejects = Rejects::skip();
        let mut b = batcher(Format::Jsonl, true, false, 100);
        for (partition, offset) in [(0, 5), (0, 6), (1, 0), (0, 7)] {
            let value = format!("{{\"n\":{offset}}}");
            let m = message(partition, offset, Some(value.as_bytes()));
            b.add(&m, info(partition), &rejects).unwrap();
        }
        assert!(b.has_ready());
        let batches = b.take_all();
        let runs: Vec<_> = batches
            .iter()
            .map(|f| (f.batch.len(), f.next_offset, f.epoch))
            .collect();
        assert_eq!(runs, vec![(2, 7, 7), (1, 1, 7), (1, 8, 7)]);
        assert_eq!(decoded(&batches[0], false), vec!["{\"n\":5}", "{\"n\":6}"]);
    }

    #[test]
    fn batches_end_at_the_record_limit() {
        let rejects = Rejects::skip();
        let mut b = batcher(Format::Lines, true, false, 2);
        for offset in 0..5 {
            b.add(&message(0, offset, Some(b"x\n")), info(0), &rejects)
                .unwrap();
        }
        let sizes: Vec<_> = b.take_all().iter().map(|f| f.batch.len()).collect();
        assert_eq!(sizes, vec![2, 2, 1]);
    }

    #[test]
    fn a_tombstone_is_rejected_but_its_offset_is_covered() {
        let rejects = Rejects::skip();
        let mut b = batcher(Format::Jsonl, true, false, 100);
        b.add(&message(0, 1, Some(b"{}")), info(0), &rejects)
            .unwrap();
        b.add(&message(0, 2, None), info(0), &rejects).unwrap();
        let batches = b.take_all();
        assert_eq!(batches[0].batch.len(), 1);
        assert_eq!(batches[0].next_offset, 3);
        assert_eq!(rejects.count(), 1);
        let stop = Rejects::with_file(OnError::Stop, None);
        let error = batcher(Format::Jsonl, true, false, 100)
            .add(&message(0, 9, None), info(0), &stop)
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "t/0@9: message has no value (a tombstone); \
             to skip it, run again with --from t:0:10"
        );
    }

    #[test]
    fn kept_tombstones_and_empty_values_are_key_value_records() {
        for format in [Format::Jsonl, Format::Csv, Format::Lines] {
            let rejects = Rejects::skip();
            let mut b = batcher(format, true, false, 100);
            b.format.keep_tombstones = true;
            let mut tombstone = message(0, 1, None);
            tombstone.key = Some(b"k1");
            b.add(&tombstone, info(0), &rejects).unwrap();
            let mut empty = message(0, 2, Some(b""));
            empty.key = Some(b"k2");
            b.add(&empty, info(0), &rejects).unwrap();
            let mut blank = message(0, 3, Some(b" \n"));
            blank.key = Some(b"k3");
            b.add(&blank, info(0), &rejects).unwrap();
            let lines: Vec<String> = b
                .take_all()
                .iter()
                .flat_map(|f| decoded(f, false))
                .collect();
            let (empty_record, blank_record) = if format == Format::Lines {
                (r#"{"message":""}"#, r#"{"message":" "}"#)
            } else {
                (
                    r#"{"_key":"k2","_value":""}"#,
                    r#"{"_key":"k3","_value":" \n"}"#,
                )
            };
            assert_eq!(
                lines,
                [r#"{"_key":"k1","_value":null}"#, empty_record, blank_record],
                "{format:?}"
            );
            assert_eq!(rejects.count(), 0);
        }
    }

    #[test]
    fn an_empty_value_is_a_record_or_a_counted_rejection() {
        for (format, header, records) in [
            (Format::Lines, true, 1),
            (Format::Jsonl, true, 0),
            (Format::Csv, true, 0),
            (Format::Csv, false, 0),
        ] {
            let rejects = Rejects::skip();
            let mut b = batcher(format, header, false, 100);
            b.add(&message(0, 4, Some(b"")), info(0), &rejects).unwrap();
            b.add(&message(0, 5, Some(b"\n")), info(0), &rejects)
                .unwrap();
            let batches = b.take_all();
            assert_eq!(batches[0].batch.len(), 2 * records, "{format:?}");
            assert_eq!(batches[0].next_offset, 6, "{format:?}");
            let rejected = 2 - 2 * records as u64;
            assert_eq!(rejects.count(), rejected, "{format:?}");
            assert_eq!(b.take_rejected(), rejected, "{format:?}");
        }
    }

    #[test]
    fn origin_carries_key_timestamp_and_headers() {
        let rejects = Rejects::skip();
        let mut b = batcher(Format::Lines, true, true, 100);
        let mut m = message(2, 40, Some(b"hello"));
        m.key = Some(b"k\"1");
        m.timestamp = Some(1_700_000_000_123);
        m.headers = vec![("trace", Some(&b"abc"[..])), ("empty", None)];
        b.add(&m, info(2), &rejects).unwrap();
        b.add(&message(2, 41, Some(b"bye")), info(2), &rejects)
            .unwrap();
        let lines = decoded(&b.take_all()[0], true);
        assert_eq!(
            lines[0],
            r#"{"message":"hello","_origin":{"topic":"t","partition":2,"offset":40,"key":"k\"1","timestamp":1700000000123,"headers":{"trace":"abc","empty":null}}}"#
        );
        assert_eq!(
            lines[1],
            r#"{"message":"bye","_origin":{"topic":"t","partition":2,"offset":41,"key":null,"timestamp":null,"headers":{}}}"#
        );
    }

    #[test]
    fn a_repeated_header_name_maps_to_the_list_of_its_values() {
        let rejects = Rejects::skip();
        let mut b = batcher(Format::Lines, true, true, 100);
        let mut m = message(0, 3, Some(b"x"));
        m.headers = vec![
            ("h", Some(&b"1"[..])),
            ("t", None),
            ("h", None),
            ("h", Some(&b"3"[..])),
        ];
        b.add(&m, info(0), &rejects).unwrap();
        let lines = decoded(&b.take_all()[0], true);
        assert!(
            lines[0].ends_with(r#""headers":{"h":["1",null,"3"],"t":null}}}"#),
            "{}",
            lines[0]
        );
    }

    #[test]
    fn csv_messages_are_documents_with_a_header_row() {
        let rejects = Rejects::skip();
        let mut b = batcher(Format::Csv, true, false, 100);
        b.add(&message(0, 0, Some(b"a,b\n1,2\n3,4\n")), info(0), &rejects)
            .unwrap();
        b.add(&message(0, 1, Some(b"a,b\n5,6")), info(0), &rejects)
            .unwrap();
        b.add(&message(0, 2, Some(b"x\n7")), info(0), &rejects)
            .unwrap();
        b.add(&message(0, 3, Some(b"a,b\n")), info(0), &rejects)
            .unwrap();
        let batches = b.take_all();
        assert_eq!(batches.len(), 2, "a new header starts a new batch");
        assert_eq!(
            decoded(&batches[0], false),
            vec![
                r#"{"a":"1","b":"2"}"#,
                r#"{"a":"3","b":"4"}"#,
                r#"{"a":"5","b":"6"}"#
            ]
        );
        assert_eq!(batches[0].next_offset, 2);
        assert_eq!(decoded(&batches[1], false), vec![r#"{"x":"7"}"#]);
        assert_eq!(
            batches[1].next_offset, 4,
            "the header-only message is covered"
        );
        assert_eq!(rejects.count(), 1);
    }

    #[test]
    fn csv_without_header_numbers_the_columns() {
        let rejects = Rejects::skip();
        let mut b = batcher(Format::Csv, false, false, 100);
        b.add(&message(0, 0, Some(b"1,\"x,y\"\n")), info(0), &rejects)
            .unwrap();
        assert_eq!(
            decoded(&b.take_all()[0], false),
            vec![r#"{"c1":"1","c2":"x,y"}"#]
        );
    }

    #[test]
    fn csv_header_rules_are_those_of_every_stream() {
        let rejects = Rejects::skip();
        let mut b = batcher(Format::Csv, true, false, 100);
        // A bad header: rejected, and its rows are records the decode
        // stage rejects; a quote open at the end: the message is rejected.
        b.add(
            &message(0, 0, Some(b"\xff,b\n1,2\n3,4\n")),
            info(0),
            &rejects,
        )
        .unwrap();
        b.add(&message(0, 1, Some(b"a,b\n1,\"2\n")), info(0), &rejects)
            .unwrap();
        b.add(
            &message(0, 2, Some(b"a,b\n\"1\n2\",3\n")),
            info(0),
            &rejects,
        )
        .unwrap();
        assert_eq!(rejects.count(), 2);
        let batches = b.take_all();
        assert_eq!(batches.len(), 2);
        let unusable: Vec<_> = batches[0]
            .batch
            .records()
            .map(|r| r.bytes().to_vec())
            .collect();
        assert_eq!(unusable, [b"1,2".to_vec(), b"3,4".to_vec()]);
        assert!(matches!(&batches[0].batch.content,
            Content::Unusable(reason) if &**reason == "the CSV header at offset 0 is unusable"));
        assert_eq!(decoded(&batches[1], false), vec![r#"{"a":"1\n2","b":"3"}"#]);
        assert_eq!(batches[1].next_offset, 3);
    }
}
