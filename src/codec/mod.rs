//! Bytes to records: how the decode stage turns a source's raw records
//! (lines, frames, CSV rows) into JSON objects, and how a stream is cut
//! into frames ([`framing`]), a CSV stream into records ([`csv_stream`],
//! with csv-async) and a framed CSV row into cells ([`csv_row`], with the
//! csv crate); the CSV header rules ([`csv_assembler`]). Shared by every
//! source.

mod csv;
pub mod csv_assembler;
pub mod csv_cut;
pub mod csv_piece;
pub mod csv_row;
pub mod csv_stream;
mod csv_tap;
pub mod framing;
mod json_check;
mod json_escapes;
mod json_keys;
mod jsonl;
mod length_frames;
mod line_frames;
mod lines;

use std::borrow::Cow;

pub use self::csv_assembler::{CsvAssembler, Naming, Taken};
pub use self::csv_row::CsvRowSplitter;
pub use self::csv_stream::CsvStream;
pub use self::framing::{Frame, FrameDecoder, FrameError, Framing};

use crate::record::{Batch, Content, RawRecord};

/// What the records of an input are, as the user names it (`--format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Comma-separated values; the first row is the header unless `--no-header`.
    Csv,
    /// One JSON object per line, passed through as it is.
    Jsonl,
    /// Each line becomes `{"message": "<line>"}`.
    Lines,
}

impl Format {
    /// The format a path's extension implies: `.csv` (and `.tsv`, CSV with
    /// tabs), `.jsonl`/`.ndjson`,
    /// anything else is lines.
    pub fn from_path(path: &str) -> Format {
        let lower = without_compression_suffix(path).to_ascii_lowercase();
        if lower.ends_with(".csv") || lower.ends_with(".tsv") {
            Format::Csv
        } else if lower.ends_with(".jsonl") || lower.ends_with(".ndjson") {
            Format::Jsonl
        } else {
            Format::Lines
        }
    }
}

/// `path` without a compression suffix (`.gz`, `.zst`, `.zstd`, `.bz2`):
/// the name that tells what a compressed file holds (`x.csv.gz` is CSV).
pub fn without_compression_suffix(path: &str) -> &str {
    const SUFFIXES: [&str; 4] = [".gz", ".zst", ".zstd", ".bz2"];
    SUFFIXES
        .iter()
        .find_map(|suffix| {
            let cut = path.len().checked_sub(suffix.len())?;
            let (name, end) = (path.get(..cut)?, path.get(cut..)?);
            end.eq_ignore_ascii_case(suffix).then_some(name)
        })
        .unwrap_or(path)
}

/// Options of the decode stage that hold for every record.
#[derive(Debug, Clone, Copy, Default)]
pub struct DecodeOptions {
    /// Add an `"_origin"` object saying where each record came from.
    pub origin: bool,
}

/// Why a record was rejected: shown to the user after its location.
pub type Rejection = String;

/// Work done on each record between its decoding and its `_origin` object
/// (`--filter`, `--rename`, `--select`, `--infer-types`: `crate::process`).
/// Generic rather than a trait object, so that [`NoStep`] costs nothing.
pub trait RecordStep {
    /// Rewrites the JSON object at `buf[start..]` (a record of a batch
    /// holding `content`), or says to drop it.
    fn apply(&mut self, content: &Content, buf: &mut Vec<u8>, start: usize) -> Step;
}

/// What a [`RecordStep`] did with a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Kept as it is now; `Some(key)`: its `--origin` object goes under
    /// this key (the step changed its keys).
    Keep(Option<Cow<'static, str>>),
    /// Dropped: the record is handled, and nothing is written for it.
    Drop,
}

/// The step that leaves every record as decoded (no processing flag).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoStep;

impl RecordStep for NoStep {
    #[inline(always)]
    fn apply(&mut self, _: &Content, _: &mut Vec<u8>, _: usize) -> Step {
        Step::Keep(None)
    }
}

/// What [`decode_into`] made of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    /// Appended to the batch.
    Written,
    /// No record at all (a blank JSON line): skipped.
    Blank,
    /// Dropped by the [`RecordStep`] (`--filter`).
    Dropped,
}

/// The key `--origin` adds its object under in a record whose top-level
/// keys starting with `_origin` are `taken`: the first of `_origin`,
/// `_origin_2`, ... not among them.
pub fn free_origin_key<S: AsRef<str>>(taken: &[S]) -> Cow<'static, str> {
    jsonl::free_origin_key(taken)
}

/// Appends `record`, one of a batch holding `content`, to `out` as one
/// JSON object passed through `step`, or says why it cannot. On rejection
/// (or when `step` drops it) `out` is left as it was. A record that is no
/// record at all (a blank line in JSON lines) is skipped.
pub fn decode_into<S: RecordStep>(
    content: &Content,
    record: &RawRecord<'_>,
    options: DecodeOptions,
    step: &mut S,
    out: &mut Batch,
) -> Result<Decoded, Rejection> {
    let start = out.record_start();
    let buf = out.record_buf();
    let mut origin_key = Cow::Borrowed(jsonl::ORIGIN_KEY);
    let written = match content {
        Content::Lines => lines::encode(record.bytes(), buf),
        Content::Jsonl => match jsonl::encode(record.bytes(), buf) {
            Ok(jsonl::Line::Object { origin_key: key }) => {
                origin_key = key;
                Ok(())
            }
            Ok(jsonl::Line::Blank) => return Ok(Decoded::Blank),
            Err(reason) => Err(reason),
        },
        Content::Csv(header) => {
            origin_key = Cow::Borrowed(header.origin_key());
            csv::encode_named(header, record, buf)
        }
        Content::CsvNumbered => csv::encode_numbered(record, buf),
        Content::Unusable(reason) => Err(reason.to_string()),
    };
    if let Err(reason) = written {
        out.abandon_record();
        return Err(reason);
    }
    match step.apply(content, out.record_buf(), start) {
        Step::Keep(None) => {}
        Step::Keep(Some(key)) => origin_key = key,
        Step::Drop => {
            out.abandon_record();
            return Ok(Decoded::Dropped);
        }
    }
    if options.origin {
        close_with_origin(out.record_buf(), record, &origin_key);
    }
    out.finish_record(record.location.pos);
    Ok(Decoded::Written)
}

/// Replaces the closing `}` of the object just written with
/// `,"_origin":{...}}`; the record's origin extras go inside `_origin`.
/// A record that has `_origin` already keeps it: `key` is then the first
/// free one of `_origin_2`, `_origin_3`, ... so no key is lost or repeated.
fn close_with_origin(buf: &mut Vec<u8>, record: &RawRecord<'_>, key: &str) {
    debug_assert_eq!(buf.last(), Some(&b'}'));
    buf.pop();
    let empty_object = buf.last() == Some(&b'{')
        || buf
            .iter()
            .rev()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|&b| b == b'{');
    if !empty_object {
        buf.push(b',');
    }
    crate::json::write_str(buf, key.as_bytes());
    buf.push(b':');
    record.location.write_json(buf);
    let extra = record.origin_extra();
    if !extra.is_empty() {
        buf.pop();
        buf.extend_from_slice(extra);
        buf.push(b'}');
    }
    buf.push(b'}');
}

/// Checks that `text` is UTF-8, naming `what` in the rejection.
fn require_utf8(text: &[u8], what: impl FnOnce() -> String) -> Result<(), Rejection> {
    match std::str::from_utf8(text) {
        Ok(_) => Ok(()),
        Err(error) => Err(format!(
            "invalid UTF-8 in {} (byte {})",
            what(),
            error.valid_up_to() + 1
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{CsvHeader, RawBatch, SourceInfo};
    use std::sync::Arc;

    fn decode_one(content: Content, fields: &[&[u8]], origin: bool) -> Result<String, Rejection> {
        let source = Arc::new(SourceInfo::File {
            path: "x.csv".into(),
        });
        let mut raw = RawBatch::new(source.clone(), content.clone());
        for field in fields {
            raw.push_field(field);
        }
        raw.finish_record(9);
        let mut out = Batch::new(source);
        let record = raw.records().next().unwrap();
        decode_into(
            &content,
            &record,
            DecodeOptions { origin },
            &mut NoStep,
            &mut out,
        )?;
        Ok(String::from_utf8(out.as_ndjson().to_vec()).unwrap())
    }

    #[test]
    fn format_follows_the_extension() {
        assert_eq!(Format::from_path("a/b.CSV"), Format::Csv);
        assert_eq!(Format::from_path("x.ndjson"), Format::Jsonl);
        assert_eq!(Format::from_path("x.jsonl"), Format::Jsonl);
        assert_eq!(Format::from_path("x.log"), Format::Lines);
        assert_eq!(Format::from_path("-"), Format::Lines);
        assert_eq!(Format::from_path("x.csv.gz"), Format::Csv);
        assert_eq!(Format::from_path("x.TSV.zst"), Format::Csv);
        assert_eq!(Format::from_path("x.jsonl.bz2"), Format::Jsonl);
        assert_eq!(Format::from_path("x.csv.gz.1"), Format::Lines);
        assert_eq!(Format::from_path("app.log.1.gz"), Format::Lines);
    }

    #[test]
    fn origin_is_added_as_last_key() {
        let header = Arc::new(CsvHeader::from_fields([&b"a"[..], b"b"].into_iter()).unwrap());
        assert_eq!(
            decode_one(Content::Csv(header), &[b"1", b"2"], true).unwrap(),
            "{\"a\":\"1\",\"b\":\"2\",\"_origin\":{\"path\":\"x.csv\",\"line\":9}}\n"
        );
        assert_eq!(
            decode_one(Content::Jsonl, &[b" { } "], true).unwrap(),
            "{ \"_origin\":{\"path\":\"x.csv\",\"line\":9}}\n"
        );
        assert_eq!(
            decode_one(Content::Lines, &[b"hi"], true).unwrap(),
            "{\"message\":\"hi\",\"_origin\":{\"path\":\"x.csv\",\"line\":9}}\n"
        );
    }

    #[test]
    fn origin_extras_go_inside_the_origin_object() {
        let source = Arc::new(SourceInfo::Kafka {
            topic: "ticks".into(),
            partition: 3,
        });
        let mut raw = RawBatch::new(source.clone(), Content::Jsonl);
        raw.push_field(br#"{"a":1}"#);
        raw.push_origin_extra(br#","key":"k","timestamp":7,"headers":{}"#);
        raw.finish_record(42);
        let mut out = Batch::new(source);
        let record = raw.records().next().unwrap();
        decode_into(
            &Content::Jsonl,
            &record,
            DecodeOptions { origin: true },
            &mut NoStep,
            &mut out,
        )
        .unwrap();
        let line = String::from_utf8(out.as_ndjson().to_vec()).unwrap();
        assert_eq!(
            line,
            "{\"a\":1,\"_origin\":{\"topic\":\"ticks\",\"partition\":3,\"offset\":42,\"key\":\"k\",\"timestamp\":7,\"headers\":{}}}\n"
        );
        serde_json::from_str::<serde_json::Value>(&line).unwrap();
    }

    #[test]
    fn rejected_records_leave_nothing_behind() {
        let err = decode_one(Content::Jsonl, &[b"[1]"], false).unwrap_err();
        assert_eq!(err, "not a JSON object (found an array)");
        let err = decode_one(Content::Lines, &[b"ok\xff"], false).unwrap_err();
        assert_eq!(err, "invalid UTF-8 in line (byte 3)");
    }
}
