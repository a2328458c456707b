//! A CSV stream (a file, standard input, a TCP connection) cut into
//! records by csv-async, each named by the line it starts on.
//!
//! Quoted cells may hold delimiters, doubled quotes and line breaks; `\n`,
//! `\r\n` and a lone `\r` end a record, and blank lines make none. A bad
//! record costs that record only: one over `--max-record-bytes` is rejected
//! as soon as it passes the limit and the rest of it is read without being
//! kept, so reading goes on at the next record; a record the input ends
//! inside a quoted cell of is rejected whole, by its first line. The bytes
//! csv-async reads pass through a [`Tap`], which is what knows lines, raw
//! bytes and the limit (see [`super::csv_tap`]).

use std::io;

use csv_async::{AsyncReader, AsyncReaderBuilder, ByteRecord};

use super::csv_assembler::push_row;
pub use super::csv_tap::TapInput;
use super::csv_tap::{Mode, Tap, PREFIX, SENTINEL};
use crate::cpu;
use crate::record::RawBatch;

/// csv-async's buffer: how much it asks of the input per read (as much as
/// the line reader asks).
const BUFFER_BYTES: usize = 512 * 1024;

/// A record buffer that held a record this long is dropped after it.
const SHRINK_ABOVE: usize = 1024 * 1024;

/// How much of an over-long record a rejection keeps.
const REJECTED_HEAD: usize = 256;

/// What [`CsvStream::next`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// A record starting on this line: [`CsvStream::push_to`] appends it.
    Record(u64),
    /// A bad record: the caller rejects it and calls again.
    Rejected(BadRecord),
    /// The input ended inside the quoted cell of a record already rejected
    /// as too long ([`Bad::TooLongInQuote`]): everything from its first
    /// line (`line`) to the last (`last_line`) was skipped.
    NeverClosed {
        /// The line the record started on.
        line: u64,
        /// The input's last line.
        last_line: u64,
    },
    /// The stream ended; every record was read.
    End,
}

/// A record [`CsvStream`] rejects itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRecord {
    /// The line the record started on.
    pub line: u64,
    /// What is wrong with it.
    pub bad: Bad,
    /// Its bytes: the first few for one too long, all of an unclosed one.
    pub raw: Vec<u8>,
}

/// What is wrong with a [`BadRecord`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bad {
    /// Longer than `--max-record-bytes`; the rest of it is skipped.
    TooLong,
    /// Longer than `--max-record-bytes` inside a quoted cell: skipped to
    /// where that quote closes, which an unclosed quote never does (then
    /// [`Next::NeverClosed`] follows at the end of the input).
    TooLongInQuote,
    /// The input ended inside one of its quoted cells.
    Unclosed,
}

/// The record last read: where its bytes lie.
#[derive(Debug, Clone, Copy)]
struct Span {
    first: u64,
    content_end: u64,
    /// It ended at the end of the input, without a line end of its own.
    unterminated: bool,
}

/// Reads CSV records from a byte stream; see the module documentation.
pub struct CsvStream<R> {
    reader: AsyncReader<Tap<R>>,
    record: ByteRecord,
    delimiter: u8,
    max_record_bytes: usize,
    /// Where the record under way (maybe after blank lines) starts.
    start: u64,
    last: Option<Span>,
    /// Skipping the rest of an over-long record: its first line.
    skipping: Option<u64>,
    /// The tap's [`PREFIX`] row was read (and dropped).
    primed: bool,
    ended: bool,
}

impl<R: TapInput + Send> CsvStream<R> {
    /// Reads `input`, cells separated by `delimiter`; a record longer than
    /// `max_record_bytes` is rejected, never buffered whole.
    pub fn new(input: R, delimiter: u8, max_record_bytes: usize) -> Self {
        Self::with_buffer(input, delimiter, max_record_bytes, BUFFER_BYTES)
    }

    /// [`CsvStream::new`] reading at most `buffer_bytes` at a time.
    pub fn with_buffer(
        input: R,
        delimiter: u8,
        max_record_bytes: usize,
        buffer_bytes: usize,
    ) -> Self {
        let reader = AsyncReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(delimiter)
            .buffer_capacity(buffer_bytes)
            .end_on_io_error(false)
            .create_reader(Tap::new(input, max_record_bytes));
        CsvStream {
            reader,
            record: ByteRecord::new(),
            delimiter,
            max_record_bytes,
            start: PREFIX.len() as u64,
            last: None,
            skipping: None,
            primed: false,
            ended: false,
        }
    }

    /// Reads the rest of a stream, which began `lines` lines and `bytes`
    /// bytes earlier (the input's first byte is on line `lines + 1`, a
    /// cut made between records: see [`super::csv_cut`]).
    pub fn resuming(mut self, lines: u64, bytes: u64) -> Self {
        self.reader.get_mut().resume(lines, bytes);
        self
    }

    /// The input.
    pub fn input_mut(&mut self) -> &mut R {
        self.reader.get_mut().inner_mut()
    }

    /// Bytes of the input read so far.
    pub fn bytes_read(&self) -> u64 {
        self.reader.get_ref().input_read()
    }

    /// Bytes of the input up to the end of the record last read, as far as
    /// the CSV reader went (its line end, when it has one): where a later
    /// read resumes after it.
    pub fn record_end(&self) -> u64 {
        let end = self.reader.position().byte();
        end.saturating_sub(PREFIX.len() as u64)
            .min(self.bytes_read())
    }

    /// The line ends within the input up to [`CsvStream::record_end`] of
    /// the record last read: those inside it, and its own when the reader
    /// went past it.
    pub fn record_lines(&self) -> u64 {
        let Some(span) = self.last else {
            return 0;
        };
        let inside = memchr::memchr_iter(b'\n', self.last_raw()).count() as u64;
        let end = self.reader.position().byte();
        inside + u64::from(end > span.content_end && !span.unterminated)
    }

    /// Reads the next record. An error is the input's: nothing of the
    /// record under way is lost ([`CsvStream::unfinished`] has it).
    pub async fn next(&mut self) -> io::Result<Next> {
        if self.ended {
            return Ok(Next::End);
        }
        if !self.primed {
            // Never needs the input: the prefix holds a whole row.
            self.reader
                .read_byte_record(&mut self.record)
                .await
                .map_err(into_io)?;
            self.primed = true;
        }
        if let Some(line) = self.skipping {
            if let Some(next) = self.skip(line).await? {
                return Ok(next);
            }
        }
        self.last = None;
        // A long record grew the record's buffers: a connection must not
        // keep that memory once the record is gone.
        if self.record.as_slice().len() > SHRINK_ABOVE {
            self.record = ByteRecord::new();
        }
        self.start = self.reader.position().byte();
        self.tap().mode = Mode::Keep { start: self.start };
        let read = self.reader.read_byte_record(&mut self.record).await;
        let got = match read {
            Ok(got) => got,
            Err(_) if self.tap().tripped => return Ok(self.too_long()),
            Err(error) => return Err(into_io(error)),
        };
        let end = self.reader.position().byte();
        let start = self.start;
        let max = self.max_record_bytes as u64;
        // Quotes always make the cells shorter than the row: a row as long
        // as its cells and delimiters is its cells split at the delimiters
        // (a quote inside a plain cell, kept as it is, included).
        let cells = self.record.as_slice().len() + self.record.len().saturating_sub(1);
        let tap = self.tap();
        let first = tap.first_content(start).min(end);
        let input_end = tap.input_end.unwrap_or(u64::MAX);
        if !got || first >= input_end {
            self.ended = true;
            return Ok(Next::End);
        }
        let line = tap.line_at(first);
        if end >= input_end.saturating_add(2) {
            // The sentinel's quote closed a quoted cell of this record.
            let raw = tap.bytes(first, input_end).to_vec();
            tap.line_at(end);
            let bad = Bad::Unclosed;
            return Ok(Next::Rejected(BadRecord { line, bad, raw }));
        }
        let ends_line = matches!(tap.bytes(end - 1, end), [b'\n' | b'\r']);
        let content_end = end - u64::from(ends_line);
        let quoted = (content_end - first) as usize != cells;
        if quoted {
            tap.line_at(end);
        } else {
            tap.line_after_plain(end);
        }
        if content_end - first > max {
            let head = first + (content_end - first).min(REJECTED_HEAD as u64);
            let raw = tap.bytes(first, head).to_vec();
            let bad = Bad::TooLong;
            return Ok(Next::Rejected(BadRecord { line, bad, raw }));
        }
        self.last = Some(Span {
            first,
            content_end,
            unterminated: end > input_end,
        });
        Ok(Next::Record(line))
    }

    /// Whether the record last read ended with the input, without a line
    /// end of its own (the input may have been cut inside it).
    pub fn last_unterminated(&self) -> bool {
        self.last.is_some_and(|span| span.unterminated)
    }

    /// The record last read, as its raw bytes (without its line end).
    pub fn last_raw(&self) -> &[u8] {
        match self.last {
            Some(span) => self.reader.get_ref().bytes(span.first, span.content_end),
            None => &[],
        }
    }

    /// The cells of the record last read.
    pub fn cells(&self) -> csv_async::ByteRecordIter<'_> {
        self.record.iter()
    }

    /// Appends the record last read to `batch` (see [`push_row`]).
    pub fn push_to(&self, batch: &mut RawBatch) {
        let (raw, cells) = (self.last_raw(), self.record.as_slice());
        push_row(batch, raw, self.delimiter, cells, self.record.iter());
    }

    /// The record the input stopped inside of (it will not go on: the run
    /// was stopped, or the input failed): the line it starts on and its
    /// bytes read so far. `None` between records, or inside one already
    /// rejected as too long.
    pub fn unfinished(&mut self) -> Option<(u64, Vec<u8>)> {
        if self.skipping.is_some() || self.ended {
            return None;
        }
        let start = self.start;
        let tap = self.tap();
        let end = tap.input_end.unwrap_or(tap.delivered());
        if start >= end {
            return None;
        }
        let first = tap.first_content(start).min(end);
        (first < end).then(|| (tap.line_at(first), tap.bytes(first, end).to_vec()))
    }

    fn tap(&mut self) -> &mut Tap<R> {
        self.reader.get_mut()
    }

    /// The record under way passed the limit: reject it, and skip the rest.
    fn too_long(&mut self) -> Next {
        let (start, delimiter) = (self.start, self.delimiter);
        let tap = self.tap();
        tap.tripped = false;
        let first = tap.first_content(start);
        let line = tap.line_at(first);
        let read = tap.bytes(first, tap.delivered());
        let in_quote = cpu::off_worker(read.len(), cpu::ROW_BYTES, || {
            ends_in_quote(read, delimiter)
        });
        let head = read[..read.len().min(REJECTED_HEAD)].to_vec();
        tap.mode = Mode::Skip {
            mark: tap.delivered(),
        };
        self.skipping = Some(line);
        let bad = if in_quote {
            Bad::TooLongInQuote
        } else {
            Bad::TooLong
        };
        Next::Rejected(BadRecord {
            line,
            bad,
            raw: head,
        })
    }

    /// Reads on to the end of the record being skipped; `Some` when the
    /// input ends there.
    async fn skip(&mut self, line: u64) -> io::Result<Option<Next>> {
        loop {
            match self.reader.read_byte_record(&mut self.record).await {
                Ok(got) => {
                    self.skipping = None;
                    // The tail csv-async returns is not a sound record:
                    // csv-core counted its cells' ends from the record's
                    // start, before the interruptions. It is dropped unread.
                    self.record = ByteRecord::new();
                    let end = self.reader.position().byte();
                    let tap = self.tap();
                    let input_end = tap.input_end.unwrap_or(u64::MAX);
                    // The sentinel's quote closed a quote the record opened
                    // (before the limit caught it, or after).
                    if got && end >= input_end.saturating_add(2) {
                        let last_line = tap.last_line();
                        self.ended = true;
                        return Ok(Some(Next::NeverClosed { line, last_line }));
                    }
                    tap.line_at(end);
                    if !got || end >= input_end {
                        self.ended = true;
                        return Ok(Some(Next::End));
                    }
                    return Ok(None);
                }
                Err(_) if self.tap().tripped => self.tap().tripped = false,
                Err(error) => return Err(into_io(error)),
            }
        }
    }
}

/// Whether CSV `bytes` end inside a quoted cell. With [`SENTINEL`] after
/// them, the last record then ends inside the sentinel; else the sentinel
/// is a record of its own, starting after the last byte of `bytes` that is
/// no line end (or later).
pub(crate) fn ends_in_quote(bytes: &[u8], delimiter: u8) -> bool {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(io::Read::chain(bytes, SENTINEL));
    let mut record = csv::ByteRecord::new();
    let mut last_start = 0;
    while let Ok(true) = reader.read_byte_record(&mut record) {
        last_start = record.position().map_or(0, |at| at.byte());
    }
    // A record's start may lie before the line ends that came before it.
    let content = bytes
        .iter()
        .rposition(|&byte| byte != b'\n' && byte != b'\r')
        .map_or(0, |at| at + 1);
    last_start < content as u64
}

fn into_io(error: csv_async::Error) -> io::Error {
    match error.into_kind() {
        csv_async::ErrorKind::Io(error) => error,
        other => io::Error::other(format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Content;
    use crate::record::SourceInfo;
    use std::sync::Arc;

    async fn read_all(input: &[u8], max: usize) -> Vec<String> {
        let mut stream = CsvStream::new(input, b',', max);
        let source = Arc::new(SourceInfo::File { path: "t".into() });
        let mut out = Vec::new();
        loop {
            match stream.next().await.unwrap() {
                Next::Record(line) => {
                    let mut batch = RawBatch::new(source.clone(), Content::CsvNumbered);
                    stream.push_to(&mut batch);
                    batch.finish_record(line);
                    let record = batch.records().next().unwrap();
                    let cells: Vec<String> = record
                        .fields()
                        .map(|cell| String::from_utf8_lossy(cell).into_owned())
                        .collect();
                    out.push(format!("{line}:{}", cells.join("|")));
                }
                Next::Rejected(bad) => out.push(format!(
                    "{}:{:?}:{}",
                    bad.line,
                    bad.bad,
                    String::from_utf8_lossy(&bad.raw)
                )),
                Next::NeverClosed { line, last_line } => {
                    out.push(format!("never closed {line}-{last_line}"))
                }
                Next::End => return out,
            }
        }
    }

    #[tokio::test]
    async fn records_are_named_by_their_first_line() {
        assert_eq!(
            read_all(b"a,b\r\n\r\nc,\"d\ne\"\rf\n\n\ng", 100).await,
            ["1:a|b", "3:c|d\ne", "5:f", "8:g"]
        );
    }

    #[tokio::test]
    async fn an_unclosed_quote_is_rejected_whole() {
        assert_eq!(
            read_all(b"a\n1,\"x\n2\n", 100).await,
            ["1:a", "2:Unclosed:1,\"x\n2\n"]
        );
        assert_eq!(read_all(b"a\n\"x\"", 100).await, ["1:a", "2:x"]);
    }

    #[tokio::test]
    async fn an_overlong_record_is_skipped_and_reading_goes_on() {
        let long = format!("a\n{}\nb\n", "x".repeat(600_000));
        let read = read_all(long.as_bytes(), 1000).await;
        assert_eq!(read.len(), 3);
        assert_eq!(read[0], "1:a");
        assert!(read[1].starts_with("2:TooLong:xxx"));
        assert_eq!(read[2], "3:b");
        let quoted = format!(
            "a\n\"{}\n\"\nb\n\"{}",
            "q\n".repeat(300_000),
            "x".repeat(10)
        );
        let read = read_all(quoted.as_bytes(), 1000).await;
        assert_eq!(read[0], "1:a");
        assert!(read[1].starts_with("2:TooLongInQuote:\"q\nq"));
        assert_eq!(read[2], "300004:b");
        assert_eq!(read[3], "300005:Unclosed:\"xxxxxxxxxx");
    }

    #[tokio::test]
    async fn blank_lines_are_counted_and_forgotten_as_they_go_by() {
        let input = format!("a\n{}b\n", "\n".repeat(3_000_000));
        let mut stream = CsvStream::new(input.as_bytes(), b',', 100);
        assert_eq!(stream.next().await.unwrap(), Next::Record(1));
        assert_eq!(stream.next().await.unwrap(), Next::Record(3_000_002));
        // No more than a read's worth of them was ever kept.
        assert!(stream.reader.get_ref().kept_capacity() <= 2 * BUFFER_BYTES);
    }

    #[tokio::test]
    async fn a_quote_opened_after_the_limit_that_never_closes_is_said() {
        let input = format!("a\n{},\"open\n{}", "x".repeat(600_000), "3,4\n".repeat(10));
        let read = read_all(input.as_bytes(), 1000).await;
        assert_eq!(read.len(), 3, "{read:?}");
        assert!(read[1].starts_with("2:TooLong:xxx"));
        assert_eq!(read[2], "never closed 2-12");
    }

    #[test]
    fn a_quote_is_open_at_the_end_whatever_line_ends_follow() {
        for closed in [
            &b"\"x\",3\r\n"[..],
            b"\"x\ny\",8\r\n",
            b"5,2\r\n",
            b"x,\"8\"\r",
            b"a",
            b"",
        ] {
            assert!(!ends_in_quote(closed, b','), "{closed:?}");
        }
        for open in [&b"a,\"b\r\n"[..], b"\"", b"1,\"2\n3\n\n"] {
            assert!(ends_in_quote(open, b','), "{open:?}");
        }
    }
}
