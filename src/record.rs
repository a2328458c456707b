//! What flows through the pipeline.
//!
//! Sources fill [`RawBatch`]es (records as undecoded fields); the decode
//! stage turns each into a [`Batch`] of JSON objects. Both keep records in
//! one buffer with an index beside it, so a batch of thousands of records
//! is a handful of allocations, and a sink can write a whole batch with one
//! copy.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::ack::{Acks, CutAck};
use crate::json;

mod batch;
mod csv_header;

pub use self::batch::{Batch, RecordRef};
pub use self::csv_header::CsvHeader;

/// Where the records of a batch came from; shared by every record in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceInfo {
    /// A file, or standard input (`path` is then `<stdin>`).
    File {
        /// The path as the user gave it.
        path: String,
    },
    /// One TCP connection.
    Tcp {
        /// The client's address.
        peer: SocketAddr,
        /// A per-run connection number, 1 for the first accepted.
        conn: u64,
        /// The subject of the client's TLS certificate, when it sent one.
        subject: Option<Box<str>>,
    },
    /// One partition of a Kafka topic.
    Kafka {
        /// The topic name.
        topic: String,
        /// The partition number.
        partition: i32,
    },
}

impl SourceInfo {
    /// The name standard input goes by in messages and origins.
    pub const STDIN: &'static str = "<stdin>";
}

/// One record's place: its source plus a position in it (a line number for
/// files, a record number for TCP connections, an offset for Kafka).
#[derive(Debug, Clone, Copy)]
pub struct Location<'a> {
    /// The source the record came from.
    pub source: &'a SourceInfo,
    /// Line number (files, 1-based), record number (TCP, 1-based) or offset (Kafka).
    pub pos: u64,
}

impl Location<'_> {
    /// Appends this location as a JSON object (the `_origin` field and the
    /// dead-letter `origin`).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        match self.source {
            SourceInfo::File { path } => {
                out.extend_from_slice(b"{\"path\":");
                json::write_lossy_str(out, path.as_bytes());
                out.extend_from_slice(b",\"line\":");
                json::write_int(out, self.pos);
            }
            SourceInfo::Tcp {
                peer,
                conn,
                subject,
            } => {
                out.extend_from_slice(b"{\"peer\":");
                json::write_str(out, peer.to_string().as_bytes());
                out.extend_from_slice(b",\"conn\":");
                json::write_int(out, *conn);
                if let Some(subject) = subject {
                    out.extend_from_slice(b",\"subject\":");
                    json::write_str(out, subject.as_bytes());
                }
                out.extend_from_slice(b",\"record\":");
                json::write_int(out, self.pos);
            }
            SourceInfo::Kafka { topic, partition } => {
                out.extend_from_slice(b"{\"topic\":");
                json::write_lossy_str(out, topic.as_bytes());
                out.extend_from_slice(b",\"partition\":");
                json::write_int(out, *partition);
                out.extend_from_slice(b",\"offset\":");
                json::write_int(out, self.pos);
            }
        }
        out.push(b'}');
    }
}

impl fmt::Display for Location<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.source {
            SourceInfo::File { path } => write!(f, "{path}:{}", self.pos),
            SourceInfo::Tcp { peer, conn, .. } => {
                write!(f, "{peer} (conn {conn}, record {})", self.pos)
            }
            SourceInfo::Kafka { topic, partition } => {
                write!(f, "{topic}/{partition}@{}", self.pos)
            }
        }
    }
}

/// What the records of a [`RawBatch`] are, so the decode stage knows how
/// to turn them into JSON objects; set by the source that filled it.
#[derive(Debug, Clone)]
pub enum Content {
    /// One field per record, the text of a line: `{"message": ...}`.
    Lines,
    /// One field per record, a JSON object.
    Jsonl,
    /// CSV cells, named by a header row.
    Csv(Arc<CsvHeader>),
    /// CSV cells, named `c1`, `c2`, ... (`--no-header`).
    CsvNumbered,
    /// Records that cannot be decoded, each rejected for this reason (the
    /// rows under a CSV header that was itself rejected: nothing can name
    /// their cells, yet each is accounted for).
    Unusable(Arc<str>),
}

/// Index entry of one raw record: where its fields end in `field_spans`,
/// where its origin members end in `origin_extra`, and its position in the
/// source.
#[derive(Debug, Clone, Copy)]
struct RawIndex {
    fields_end: u32,
    extra_end: u32,
    raw_end: u32,
    pos: u64,
}

/// Undecoded records from one source, as a source produces them: each
/// record is one or more fields of bytes (a line, or a CSV row's cells).
#[derive(Debug)]
pub struct RawBatch {
    /// Where these records came from.
    pub source: Arc<SourceInfo>,
    /// What these records are (how the decode stage turns them into JSON).
    pub content: Content,
    /// Fired once every record of this batch is written by the sink.
    pub acks: Acks,
    /// Instead of `acks` when `--limit` keeps only the first records: the
    /// ack of those (`None`: such a batch fires no ack).
    pub cut_ack: Option<CutAck>,
    data: Vec<u8>,
    /// Where each field lies in `data`. Fields need not touch: a CSV line
    /// is copied whole, delimiters and all, and its cells point into it.
    field_spans: Vec<Span>,
    /// Pre-rendered JSON members per record for its `_origin` object (a
    /// Kafka message's key, timestamp, headers); empty for most sources.
    origin_extra: Vec<u8>,
    /// Per record, the bytes it was read from when its fields are not them
    /// (a quoted CSV row); empty for most records.
    raws: Vec<u8>,
    /// Set once a line was pushed by [`RawBatch::push_split`]: a record of
    /// one field and no raw bytes is such a line, split at this byte.
    split_at: Option<u8>,
    records: Vec<RawIndex>,
}

impl RawBatch {
    /// An empty batch for records from `source`, holding `content`.
    pub fn new(source: Arc<SourceInfo>, content: Content) -> Self {
        Self::with_capacity(source, content, 0, 0)
    }

    /// An empty batch with room for `records` records of `bytes` bytes.
    pub fn with_capacity(
        source: Arc<SourceInfo>,
        content: Content,
        records: usize,
        bytes: usize,
    ) -> Self {
        RawBatch {
            source,
            content,
            acks: Acks::none(),
            cut_ack: None,
            data: Vec::with_capacity(bytes),
            field_spans: Vec::with_capacity(records),
            origin_extra: Vec::new(),
            raws: Vec::new(),
            split_at: None,
            records: Vec::with_capacity(records),
        }
    }

    /// An empty batch for the same source and content, with room for as
    /// much as this one holds: the next batch of a steady stream is likely
    /// as big, and then never regrows (copying) its buffers.
    pub fn empty_like(&self) -> RawBatch {
        let mut empty = Self::with_capacity(
            self.source.clone(),
            self.content.clone(),
            self.records.len(),
            self.data.len(),
        );
        empty.field_spans.reserve(self.field_spans.len());
        empty.origin_extra.reserve(self.origin_extra.len());
        empty.raws.reserve(self.raws.len());
        empty.split_at = self.split_at;
        empty
    }

    /// Takes the records (and acks) out, leaving an empty batch made by
    /// [`RawBatch::empty_like`].
    pub fn take(&mut self) -> RawBatch {
        let empty = self.empty_like();
        std::mem::replace(self, empty)
    }

    /// Appends one field to the record being built.
    pub fn push_field(&mut self, field: &[u8]) {
        let start = offset(self.data.len());
        self.data.extend_from_slice(field);
        self.field_spans.push(Span {
            start,
            end: offset(self.data.len()),
        });
    }

    /// Appends several fields at once: `bytes` holds them back to back and
    /// `ends` gives where each ends, relative to the start of `bytes` (one
    /// copy for a whole CSV row instead of one per cell).
    pub fn push_fields(&mut self, bytes: &[u8], ends: impl Iterator<Item = usize>) {
        let base = offset(self.data.len());
        self.data.extend_from_slice(bytes);
        // Every end is within `bytes`: checked once for them all.
        offset(self.data.len());
        let mut start = base;
        self.field_spans.extend(ends.map(|end| {
            debug_assert!(end <= bytes.len());
            let span = Span {
                start,
                end: base + end as u32,
            };
            start = span.end;
            span
        }));
    }

    /// Appends an unquoted CSV line, its cells split at `delimiter`: the
    /// line is kept whole and split when its fields are read (by the decode
    /// stage), so the source's thread does not.
    pub fn push_split(&mut self, line: &[u8], delimiter: u8) {
        self.split_at = Some(delimiter);
        self.push_field(line);
    }

    /// Appends a run of lines of `text` as one-field records, starting at
    /// offset `start`: each line ends at the `\n` whose offset in `text` is
    /// next in `newlines` (the `\n` is not part of it). Copies the run
    /// once. The records are numbered from `first_pos` up.
    pub fn push_lines(&mut self, text: &[u8], start: usize, newlines: &[u32], first_pos: u64) {
        let Some(&last) = newlines.last() else {
            return;
        };
        let base = offset(self.data.len());
        self.data.extend_from_slice(&text[start..=last as usize]);
        // Checked once for the whole run: every line ends before the
        // run's end, and each adds one field.
        offset(self.data.len());
        offset(self.field_spans.len() + newlines.len());
        let start = offset(start);
        let extra_end = offset(self.origin_extra.len());
        let raw_end = offset(self.raws.len());
        self.field_spans.reserve(newlines.len());
        self.records.reserve(newlines.len());
        let mut line_start = base;
        for (pos, &newline) in (first_pos..).zip(newlines) {
            let end = base + (newline - start);
            self.field_spans.push(Span {
                start: line_start,
                end,
            });
            line_start = end + 1;
            self.records.push(RawIndex {
                // Fits: checked for the whole run above.
                fields_end: self.field_spans.len() as u32,
                extra_end,
                raw_end,
                pos,
            });
        }
    }

    /// Adds JSON object members (`,"key":...`, each with its leading comma)
    /// that `--origin` appends to the `_origin` object of the record being
    /// built, after those its [`Location`] writes.
    pub fn push_origin_extra(&mut self, members: &[u8]) {
        self.origin_extra.extend_from_slice(members);
    }

    /// Keeps `raw`, the bytes the record being built was read from, when
    /// its fields are not them (a quoted CSV row's cells): what a
    /// dead-letter file shows of it.
    pub fn push_raw(&mut self, raw: &[u8]) {
        self.raws.extend_from_slice(raw);
    }

    /// Ends the record being built (its fields are those pushed since the
    /// last record); `pos` is its line, record number or offset.
    pub fn finish_record(&mut self, pos: u64) {
        self.records.push(RawIndex {
            fields_end: offset(self.field_spans.len()),
            extra_end: offset(self.origin_extra.len()),
            raw_end: offset(self.raws.len()),
            pos,
        });
    }

    /// Appends a record of one field (a line, a frame, a message).
    pub fn push_record(&mut self, bytes: &[u8], pos: u64) {
        self.push_field(bytes);
        self.finish_record(pos);
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when the batch holds no record.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Bytes of record data held (with their origin members).
    pub fn byte_len(&self) -> usize {
        self.data.len() + self.origin_extra.len() + self.raws.len()
    }

    /// The records, in order.
    pub fn records(&self) -> impl Iterator<Item = RawRecord<'_>> {
        let mut fields_start = 0u32;
        let mut extra_start = 0u32;
        let mut raw_start = 0u32;
        self.records.iter().map(move |index| {
            let fields = &self.field_spans[fields_start as usize..index.fields_end as usize];
            fields_start = index.fields_end;
            let origin_extra = &self.origin_extra[extra_start as usize..index.extra_end as usize];
            extra_start = index.extra_end;
            let raw = &self.raws[raw_start as usize..index.raw_end as usize];
            raw_start = index.raw_end;
            let split_at = self
                .split_at
                .filter(|_| fields.len() == 1 && raw.is_empty());
            RawRecord {
                data: &self.data,
                fields,
                origin_extra,
                raw,
                split_at,
                location: Location {
                    source: &self.source,
                    pos: index.pos,
                },
            }
        })
    }
}

/// The most bytes `--max-record-bytes` may allow. A source sends a raw
/// batch once it holds [`MAX_BATCH_BYTES`] (or fewer), so a batch holds
/// less than that plus one record: far below the 4 GiB its `u32` offsets
/// reach.
pub const MAX_RECORD_BYTES_LIMIT: usize = 1 << 30;

/// The most bytes a source lets a raw batch gather before it sends it,
/// whatever `batch_bytes` a library user asks for (see
/// [`MAX_RECORD_BYTES_LIMIT`]).
pub const MAX_BATCH_BYTES: usize = 1 << 30;

/// `len`, a length within a raw batch's buffers, as one of its `u32`
/// offsets. Sources keep batches far below 4 GiB (see
/// [`MAX_RECORD_BYTES_LIMIT`]): past it is a bug, which panics (and so
/// fails the run) rather than wrap and mix records up.
fn offset(len: usize) -> u32 {
    u32::try_from(len).expect("a raw batch is sent before it holds 4 GiB")
}

/// Where one field lies in a [`RawBatch`]'s data.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: u32,
    end: u32,
}

/// One undecoded record of a [`RawBatch`].
#[derive(Debug, Clone, Copy)]
pub struct RawRecord<'a> {
    data: &'a [u8],
    fields: &'a [Span],
    origin_extra: &'a [u8],
    raw: &'a [u8],
    /// For an unquoted CSV line kept whole: where its cells end.
    split_at: Option<u8>,
    /// Where the record came from.
    pub location: Location<'a>,
}

impl<'a> RawRecord<'a> {
    /// Number of fields (1 for lines and frames).
    pub fn field_count(&self) -> usize {
        match self.split_at {
            Some(delimiter) => {
                let mut delimiters = 0;
                crate::scan::for_each_byte(self.bytes(), delimiter, |_| delimiters += 1);
                delimiters + 1
            }
            None => self.fields.len(),
        }
    }

    /// The fields, in order.
    pub fn fields(&self) -> Fields<'a> {
        Fields(match self.split_at {
            Some(delimiter) => FieldsOf::Split(Some(self.bytes()), delimiter),
            None => FieldsOf::Spans(self.data, self.fields.iter()),
        })
    }

    /// The bytes the record was read from: those kept by
    /// [`RawBatch::push_raw`], else its fields as they lie (a line, a frame,
    /// an unquoted CSV row with its delimiters).
    pub fn raw(&self) -> &'a [u8] {
        if self.raw.is_empty() {
            self.bytes()
        } else {
            self.raw
        }
    }

    /// JSON members to append inside the record's `_origin` object after its
    /// location (see [`RawBatch::push_origin_extra`]); usually empty.
    pub fn origin_extra(&self) -> &'a [u8] {
        self.origin_extra
    }

    /// The bytes from the first field's start to the last one's end: the
    /// whole line for one-field records; for a CSV row, its cells with the
    /// delimiters between them when the row was unquoted, else its cells
    /// back to back.
    pub fn bytes(&self) -> &'a [u8] {
        match (self.fields.first(), self.fields.last()) {
            (Some(first), Some(last)) => &self.data[first.start as usize..last.end as usize],
            _ => &[],
        }
    }
}

/// The fields of a [`RawRecord`], in order.
#[derive(Debug, Clone)]
pub struct Fields<'a>(FieldsOf<'a>);

#[derive(Debug, Clone)]
enum FieldsOf<'a> {
    /// Fields pushed one by one: where each lies in the batch's data.
    Spans(&'a [u8], std::slice::Iter<'a, Span>),
    /// An unquoted CSV line, split at the delimiter as it is read: the line
    /// from the next field on (`None` after the last).
    Split(Option<&'a [u8]>, u8),
}

impl<'a> Iterator for Fields<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        match &mut self.0 {
            FieldsOf::Spans(data, spans) => {
                let span = spans.next()?;
                Some(&data[span.start as usize..span.end as usize])
            }
            FieldsOf::Split(rest, delimiter) => {
                let line = (*rest)?;
                // Cells are short: a plain search beats a vector one here.
                match line.iter().position(|byte| byte == delimiter) {
                    Some(at) => {
                        *rest = Some(&line[at + 1..]);
                        Some(&line[..at])
                    }
                    None => {
                        *rest = None;
                        Some(line)
                    }
                }
            }
        }
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
    fn raw_batch_keeps_fields_and_positions() {
        let mut batch = RawBatch::new(file_source(), Content::Lines);
        batch.push_field(b"a");
        batch.push_field(b"");
        batch.push_field(b"ccc");
        batch.finish_record(2);
        batch.push_record(b"line", 5);
        let records: Vec<_> = batch.records().collect();
        assert_eq!(records.len(), 2);
        assert_eq!(
            records[0].fields().collect::<Vec<_>>(),
            vec![&b"a"[..], b"", b"ccc"]
        );
        assert_eq!(records[0].bytes(), b"accc");
        assert_eq!(records[0].location.to_string(), "in.csv:2");
        assert_eq!(records[1].fields().collect::<Vec<_>>(), vec![&b"line"[..]]);
        assert_eq!(records[1].location.pos, 5);
        assert!(records[0].origin_extra().is_empty());
    }

    #[test]
    fn origin_extra_belongs_to_its_own_record() {
        let mut batch = RawBatch::new(file_source(), Content::Lines);
        batch.push_field(b"a");
        batch.push_origin_extra(br#","key":"k1""#);
        batch.finish_record(1);
        batch.push_record(b"b", 2);
        batch.push_origin_extra(br#","key":null"#);
        batch.push_origin_extra(br#","timestamp":5"#);
        batch.push_record(b"c", 3);
        let extras: Vec<_> = batch.records().map(|r| r.origin_extra().to_vec()).collect();
        assert_eq!(
            extras,
            vec![
                br#","key":"k1""#.to_vec(),
                Vec::new(),
                br#","key":null,"timestamp":5"#.to_vec()
            ]
        );
        assert_eq!(
            batch.byte_len(),
            3 + extras.iter().map(Vec::len).sum::<usize>()
        );
    }

    #[test]
    fn fields_pushed_at_once_equal_fields_pushed_one_by_one() {
        let mut batch = RawBatch::new(file_source(), Content::CsvNumbered);
        batch.push_record(b"first", 1);
        batch.push_fields(b"abcdef", [1, 1, 6].into_iter());
        batch.finish_record(2);
        let record = batch.records().nth(1).unwrap();
        assert_eq!(
            record.fields().collect::<Vec<_>>(),
            vec![&b"a"[..], b"", b"bcdef"]
        );
    }

    #[test]
    fn delimited_lines_make_a_cell_between_delimiters() {
        let mut batch = RawBatch::new(file_source(), Content::CsvNumbered);
        batch.push_split(b"a,,bc,", b',');
        batch.finish_record(1);
        batch.push_split(b"", b',');
        batch.finish_record(2);
        let records: Vec<_> = batch.records().collect();
        assert_eq!(
            records[0].fields().collect::<Vec<_>>(),
            vec![&b"a"[..], b"", b"bc", b""]
        );
        assert_eq!(records[0].bytes(), b"a,,bc,");
        assert_eq!(records[1].fields().collect::<Vec<_>>(), vec![&b""[..]]);
    }

    #[test]
    fn a_run_of_lines_equals_lines_pushed_one_by_one() {
        let mut run = RawBatch::new(file_source(), Content::Lines);
        run.push_record(b"before", 1);
        run.push_lines(b"none", 0, &[], 2);
        run.push_lines(b"skip\na\n\nbc\nnot yet", 5, &[6, 7, 10], 2);
        let mut one_by_one = RawBatch::new(file_source(), Content::Lines);
        for (line, pos) in [(&b"before"[..], 1), (b"a", 2), (b"", 3), (b"bc", 4)] {
            one_by_one.push_record(line, pos);
        }
        let records = |batch: &RawBatch| -> Vec<(Vec<u8>, u64)> {
            batch
                .records()
                .map(|r| (r.bytes().to_vec(), r.location.pos))
                .collect()
        };
        assert_eq!(records(&run), records(&one_by_one));
    }

    #[test]
    fn offsets_past_4_gib_fail_rather_than_wrap() {
        assert_eq!(offset(u32::MAX as usize), u32::MAX);
        let past = std::panic::catch_unwind(|| offset(u32::MAX as usize + 1));
        assert!(past.is_err(), "an offset past 4 GiB must not wrap");
        // A batch never gets near: one most-allowed record on top of the
        // most a batch gathers before it is sent still fits.
        assert!(MAX_BATCH_BYTES + MAX_RECORD_BYTES_LIMIT < u32::MAX as usize);
    }

    #[test]
    fn a_tls_client_subject_goes_into_the_origin() {
        let tcp = SourceInfo::Tcp {
            peer: "127.0.0.1:4000".parse().unwrap(),
            conn: 3,
            subject: Some("O=Acme \"East\",CN=sensor-7".into()),
        };
        let at = Location {
            source: &tcp,
            pos: 7,
        };
        let mut out = Vec::new();
        at.write_json(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"peer":"127.0.0.1:4000","conn":3,"subject":"O=Acme \"East\",CN=sensor-7","record":7}"#
        );
        assert_eq!(at.to_string(), "127.0.0.1:4000 (conn 3, record 7)");
    }

    #[test]
    fn locations_render_for_every_source() {
        let tcp = SourceInfo::Tcp {
            peer: "127.0.0.1:4000".parse().unwrap(),
            conn: 3,
            subject: None,
        };
        let kafka = SourceInfo::Kafka {
            topic: "ticks".into(),
            partition: 2,
        };
        let mut out = Vec::new();
        let at = Location {
            source: &tcp,
            pos: 7,
        };
        at.write_json(&mut out);
        assert_eq!(at.to_string(), "127.0.0.1:4000 (conn 3, record 7)");
        assert_eq!(out, br#"{"peer":"127.0.0.1:4000","conn":3,"record":7}"#);
        let at = Location {
            source: &kafka,
            pos: 42,
        };
        assert_eq!(at.to_string(), "ticks/2@42");
    }
}
