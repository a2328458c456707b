//! Cuts a CSV byte stream into records, straight into a [`RawBatch`].
//!
//! Most rows of real CSV hold no quote: such a row is one line, and its
//! cells are what lies between delimiters. Those rows take a fast path (one
//! copy of the line, cells found by [`scan::scan_line`]); a row with a quote or a
//! carriage return goes through csv-core, which handles quoted delimiters,
//! doubled quotes, line breaks inside quotes and `\r` terminators. Both
//! paths cut records exactly as csv-core alone would (see the tests), and
//! report the line each record starts on.
//!
//! A bad record costs that record only: one over `--max-record-bytes` is
//! rejected as soon as it passes the limit, and the rest of it is parsed
//! without being kept, so reading goes on at the next record. A record the
//! input ends inside a quoted cell of is rejected whole, by its first line.

use csv_core::{ReadRecordResult, Reader, ReaderBuilder};

use super::csv_row::CellBuffers;
use super::csv_skip::{count_line_ends, RecordSkipper};
use crate::record::RawBatch;
use crate::scan::{self, Line};

/// How much of an over-long record a rejection keeps.
const REJECTED_HEAD: usize = 256;

/// What [`CsvRecords::read`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// A record starting on this line; its cells were appended to the
    /// batch (the caller ends the record).
    Record(u64),
    /// A bad record, not appended: the caller rejects it and calls again.
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
    /// The input holds no whole record yet: read more and call again with
    /// the unconsumed bytes first.
    NeedInput,
    /// The stream ended (`at_end` was given and every record was read).
    End,
}

/// A record [`CsvRecords`] rejects itself.
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

/// A record csv-core is part way through: the input ended inside it.
#[derive(Debug, Clone)]
struct Partial {
    cells_len: usize,
    ends_len: usize,
    line: u64,
    /// Input bytes of the record read so far.
    bytes: usize,
    /// Those bytes, but for the ones still in the caller's input.
    raw: Vec<u8>,
}

/// Splits a CSV stream into records; see the module documentation.
#[derive(Debug)]
pub struct CsvRecords {
    delimiter: u8,
    /// The fast path cuts on bytes, so it needs a delimiter that cannot be
    /// part of a quote or a line break.
    fast: bool,
    max_record_bytes: usize,
    core: Reader,
    /// Line number of the next unread byte.
    line: u64,
    /// The last byte read was a `\r`: a `\n` next ends no other line.
    after_cr: bool,
    /// Where the delimiters of the last plain line are.
    delimiters: Vec<u32>,
    /// Bytes of an unfinished plain line, at the front of the next input,
    /// that were already scanned (their delimiters are in `delimiters`).
    plain_scanned: usize,
    /// Scratch for the delimiters of the rest of such a line.
    more_delimiters: Vec<u32>,
    /// csv-core's output: the current slow record's cells.
    parsed: CellBuffers,
    partial: Option<Partial>,
    /// A record rejected as too long, read to its end without being kept;
    /// and the line it started on.
    skipping: Option<(RecordSkipper, u64)>,
}

impl CsvRecords {
    /// A splitter for cells separated by `delimiter`; a record longer than
    /// `max_record_bytes` is rejected, never buffered whole.
    pub fn new(delimiter: u8, max_record_bytes: usize) -> Self {
        CsvRecords {
            delimiter,
            fast: delimiter.is_ascii() && !matches!(delimiter, b'"' | b'\n' | b'\r'),
            max_record_bytes,
            core: ReaderBuilder::new().delimiter(delimiter).build(),
            line: 1,
            after_cr: false,
            delimiters: Vec::new(),
            plain_scanned: 0,
            more_delimiters: Vec::new(),
            parsed: CellBuffers::new(),
            partial: None,
            skipping: None,
        }
    }

    /// The line number of the next unread byte.
    pub fn line(&self) -> u64 {
        self.line
    }

    /// True while inside a record csv-core has read part of (its bytes
    /// are kept here, not in the caller's input).
    pub fn has_partial(&self) -> bool {
        self.partial.is_some()
    }

    /// The record the input stopped inside of (it will not go on: the run
    /// was stopped), given `rest`, the bytes not yet consumed: the line it
    /// starts on and its bytes read so far. `None` between records, or
    /// inside one already rejected as too long.
    pub fn unfinished(&mut self, rest: &[u8]) -> Option<(u64, Vec<u8>)> {
        // What was scanned of `rest` is not read again.
        self.plain_scanned = 0;
        if self.skipping.is_some() {
            return None;
        }
        if let Some(mut partial) = self.partial.take() {
            partial.raw.extend_from_slice(rest);
            return Some((partial.line, partial.raw));
        }
        let mut line = self.line;
        let mut start = 0;
        let mut after_cr = self.after_cr;
        while let Some(&byte @ (b'\n' | b'\r')) = rest.get(start) {
            line += count_line_ends(&[byte], &mut after_cr);
            start += 1;
        }
        (start < rest.len()).then(|| (line, rest[start..].to_vec()))
    }

    /// Reads the next record from `input`, the bytes not yet consumed
    /// (`at_end` once no more will come), appending its cells to `out`.
    /// Returns what was found and how many bytes of `input` were consumed.
    pub fn read(&mut self, input: &[u8], at_end: bool, out: &mut RawBatch) -> (Next, usize) {
        let mut pos = 0;
        if self.skipping.is_some() {
            match self.skip(input, at_end) {
                (None, used) => pos = used,
                (Some(next), used) => return (next, used),
            }
        }
        if self.partial.is_some() {
            return self.read_slow(input, pos, at_end, out);
        }
        loop {
            let rest = &input[pos..];
            // Line breaks between records make no record (as in csv-core),
            // and the record's line is the one after them.
            if let Some(&byte @ (b'\n' | b'\r')) = rest.first() {
                pos += 1;
                self.line += count_line_ends(&[byte], &mut self.after_cr);
                continue;
            }
            return match self.scan_plain(rest) {
                Line::Plain(len) if len > self.max_record_bytes => {
                    self.line += 1;
                    self.after_cr = false;
                    let bad = self.bad(self.line - 1, Bad::TooLong, &rest[..len]);
                    (bad, pos + len + 1)
                }
                Line::Plain(len) => {
                    out.push_split(&rest[..len], &self.delimiters);
                    self.line += 1;
                    self.after_cr = false;
                    (Next::Record(self.line - 1), pos + len + 1)
                }
                Line::NeedsParser => self.read_slow(input, pos, at_end, out),
                Line::Unfinished if rest.is_empty() => {
                    (if at_end { Next::End } else { Next::NeedInput }, pos)
                }
                // The last line, without a `\n`.
                Line::Unfinished if at_end && rest.len() > self.max_record_bytes => {
                    self.line += 1;
                    let bad = self.bad(self.line - 1, Bad::TooLong, rest);
                    (bad, input.len())
                }
                Line::Unfinished if at_end => {
                    out.push_split(rest, &self.delimiters);
                    self.line += 1;
                    (Next::Record(self.line - 1), input.len())
                }
                Line::Unfinished if rest.len() > self.max_record_bytes => {
                    // No quote in it so far, but one may open later in the
                    // line: the skipper finds where the record really ends.
                    let skipper = RecordSkipper::new(self.delimiter, self.line);
                    self.skipping = Some((skipper, self.line));
                    (self.bad(self.line, Bad::TooLong, rest), pos)
                }
                Line::Unfinished => {
                    self.plain_scanned = rest.len();
                    (Next::NeedInput, pos)
                }
            };
        }
    }

    /// A rejection of the record at `line`, keeping the head of `raw`.
    fn bad(&self, line: u64, bad: Bad, raw: &[u8]) -> Next {
        let raw = raw[..raw.len().min(REJECTED_HEAD)].to_vec();
        Next::Rejected(BadRecord { line, bad, raw })
    }

    /// Scans the line at the front of `rest` for the fast path, going on
    /// where the last call stopped if it ended inside this same line (so
    /// a long line arriving in many reads is scanned once).
    fn scan_plain(&mut self, rest: &[u8]) -> Line {
        if !self.fast {
            return Line::NeedsParser;
        }
        let resume = std::mem::take(&mut self.plain_scanned);
        if resume == 0 {
            return scan::scan_line(rest, self.delimiter, &mut self.delimiters);
        }
        let mut more = std::mem::take(&mut self.more_delimiters);
        let line = scan::scan_line(&rest[resume..], self.delimiter, &mut more);
        self.delimiters
            .extend(more.iter().map(|&at| at + resume as u32));
        self.more_delimiters = more;
        match line {
            Line::Plain(len) => Line::Plain(resume + len),
            other => other,
        }
    }

    /// Reads on through the record being skipped: once it ends, how much
    /// of `input` it took and `None` (go on reading); else what to return.
    fn skip(&mut self, input: &[u8], at_end: bool) -> (Option<Next>, usize) {
        let (skipper, line) = self.skipping.as_mut().expect("skipping");
        let (line, ended) = (*line, skipper.feed(input));
        self.line = skipper.line();
        self.after_cr = skipper.after_cr();
        match ended {
            Some(used) => {
                self.skipping = None;
                (None, used)
            }
            None if !at_end => (Some(Next::NeedInput), input.len()),
            None if skipper.in_quote() => {
                let last_line = skipper.last_line();
                self.skipping = None;
                (Some(Next::NeverClosed { line, last_line }), input.len())
            }
            // The input ends the record.
            None => {
                self.skipping = None;
                (None, input.len())
            }
        }
    }

    /// A skipper that has read `parts`, the start of a record on `line`.
    fn skipper_after(&self, line: u64, parts: [&[u8]; 2]) -> RecordSkipper {
        let mut skipper = RecordSkipper::new(self.delimiter, line);
        for part in parts {
            let ended = skipper.feed(part);
            debug_assert_eq!(ended, None, "csv-core saw no end");
        }
        skipper
    }

    /// The line after a record read so far: its bytes are `partial`'s
    /// kept ones, then `tail`. csv-core counts `\n` only; a lone `\r`
    /// ends a record, and so a line, too.
    fn lines_after(&mut self, partial: &Partial, tail: &[u8]) -> u64 {
        let mut after_cr = false;
        let ends =
            count_line_ends(&partial.raw, &mut after_cr) + count_line_ends(tail, &mut after_cr);
        self.after_cr = after_cr;
        partial.line + ends
    }

    /// Reads one record with csv-core from `input[start..]`, or goes on
    /// with the one it is inside.
    fn read_slow(
        &mut self,
        input: &[u8],
        start: usize,
        at_end: bool,
        out: &mut RawBatch,
    ) -> (Next, usize) {
        let mut partial = self.partial.take().unwrap_or_else(|| {
            // Each slow record starts afresh: the fast path moved past
            // whatever csv-core saw last.
            self.core.reset();
            self.core.set_line(self.line);
            Partial {
                cells_len: 0,
                ends_len: 0,
                line: self.line,
                bytes: 0,
                raw: Vec::new(),
            }
        });
        let mut pos = start;
        loop {
            let mut chunk = &input[pos..];
            if chunk.is_empty() && !at_end {
                partial.bytes += pos - start;
                partial.raw.extend_from_slice(&input[start..pos]);
                self.partial = Some(partial);
                return (Next::NeedInput, pos);
            }
            let so_far = [&partial.raw[..], &input[start..pos]];
            if chunk.is_empty() && self.skipper_after(partial.line, so_far).in_quote() {
                partial.raw.extend_from_slice(&input[start..pos]);
                self.line = self.lines_after(&partial, &[]);
                let bad = BadRecord {
                    line: partial.line,
                    bad: Bad::Unclosed,
                    raw: partial.raw,
                };
                return (Next::Rejected(bad), pos);
            }
            // csv-core drops a byte order mark at the start of the first
            // input after a reset; a record that starts with one keeps it
            // (the input's leading BOM was dropped before this).
            if partial.bytes == 0 && pos == start && chunk.first() == Some(&0xEF) {
                chunk = &chunk[..1];
            }
            let (result, read, written, ended) = self.core.read_record(
                chunk,
                &mut self.parsed.cells[partial.cells_len..],
                &mut self.parsed.ends[partial.ends_len..],
            );
            pos += read;
            partial.cells_len += written;
            partial.ends_len += ended;
            let read_so_far = partial.bytes + (pos - start);
            let too_long = read_so_far > self.max_record_bytes;
            match result {
                // The limit is on the record without its line end, which
                // csv-core took last (one byte: a `\n` after a `\r` is
                // taken as a blank line before the next record).
                ReadRecordResult::Record
                    if read_so_far - ends_with_line_end(&partial.raw, &input[start..pos])
                        > self.max_record_bytes =>
                {
                    self.line = self.lines_after(&partial, &input[start..pos]);
                    partial.raw.extend_from_slice(&input[start..pos]);
                    return (self.bad(partial.line, Bad::TooLong, &partial.raw), pos);
                }
                ReadRecordResult::Record => {
                    self.line = self.lines_after(&partial, &input[start..pos]);
                    out.push_fields(
                        &self.parsed.cells[..partial.cells_len],
                        self.parsed.ends[..partial.ends_len].iter().copied(),
                    );
                    return (Next::Record(partial.line), pos);
                }
                ReadRecordResult::End => {
                    self.line = self.lines_after(&partial, &input[start..pos]);
                    return (Next::End, pos);
                }
                ReadRecordResult::InputEmpty => {}
                full @ (ReadRecordResult::OutputFull | ReadRecordResult::OutputEndsFull) => {
                    self.parsed.grow(full)
                }
            }
            if too_long {
                let skipper = self.skipper_after(partial.line, [&partial.raw, &input[start..pos]]);
                let in_quote = skipper.in_quote();
                self.line = skipper.line();
                self.after_cr = skipper.after_cr();
                self.skipping = Some((skipper, partial.line));
                let bad = if in_quote {
                    Bad::TooLongInQuote
                } else {
                    Bad::TooLong
                };
                partial.raw.extend_from_slice(&input[start..pos]);
                return (self.bad(partial.line, bad, &partial.raw), pos);
            }
        }
    }
}

/// 1 if the bytes `kept` then `tail` end with a line end byte, else 0.
fn ends_with_line_end(kept: &[u8], tail: &[u8]) -> usize {
    let last = tail.last().or(kept.last());
    usize::from(matches!(last, Some(b'\n' | b'\r')))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::record::{Content, SourceInfo};

    type Rows = Vec<(u64, Vec<Vec<u8>>)>;

    /// Every record of `input` (limit `max` bytes), fed in pieces of
    /// `piece` bytes, and everything else `read` said.
    fn split_max(input: &[u8], piece: usize, max: usize) -> (Rows, Vec<Next>) {
        let source = Arc::new(SourceInfo::File { path: "t".into() });
        let mut batch = RawBatch::new(source, Content::CsvNumbered);
        let mut records = CsvRecords::new(b',', max);
        let mut buffer = Vec::new();
        let mut fed = 0;
        let mut said = Vec::new();
        loop {
            let at_end = fed == input.len();
            let (next, consumed) = records.read(&buffer, at_end, &mut batch);
            buffer.drain(..consumed);
            match next {
                Next::Record(line) => batch.finish_record(line),
                Next::NeedInput => {
                    let more = piece.min(input.len() - fed);
                    buffer.extend_from_slice(&input[fed..fed + more]);
                    fed += more;
                }
                Next::End => break,
                other => said.push(other),
            }
        }
        let rows = batch
            .records()
            .map(|r| (r.location.pos, r.fields().map(<[u8]>::to_vec).collect()))
            .collect();
        (rows, said)
    }

    fn split(input: &[u8], piece: usize) -> (Rows, Vec<Next>) {
        split_max(input, piece, 1 << 20)
    }

    /// Checks `split` against csv-core: the same records, but one that
    /// ends inside a quote (the last) is rejected whole.
    fn assert_like_csv_core(input: &[u8], piece: usize) {
        let mut expected = split_by_csv_core(input);
        let (rows, said) = split(input, piece);
        let context = format!(
            "input {:?} in pieces of {piece}",
            String::from_utf8_lossy(input)
        );
        match &said[..] {
            [] => {}
            [Next::Rejected(bad)] => {
                let (line, _) = expected.pop().expect("csv-core found a last record");
                assert_eq!((bad.line, bad.bad), (line, Bad::Unclosed), "{context}");
                assert!(input.ends_with(&bad.raw), "{context}");
            }
            other => panic!("{context}: {other:?}"),
        }
        assert_eq!(rows, expected, "{context}");
    }

    /// The same, through csv-core alone (as the csv crate reads), with the
    /// line each record starts on (blank lines before it skipped).
    fn split_by_csv_core(input: &[u8]) -> Rows {
        let mut reader = Reader::new();
        let mut rows = Vec::new();
        let mut rest = input;
        let mut cells = vec![0u8; 1 << 16];
        let mut ends = vec![0usize; 1024];
        let (mut cells_len, mut ends_len) = (0, 0);
        let mut line = None;
        loop {
            // Where the next record starts: past any line breaks. Its line
            // is 1 + the line ends before it, where `\r\n`, `\n` and a
            // lone `\r` are one each (csv-core counts `\n` only).
            let skipped = rest
                .iter()
                .take_while(|&&b| b == b'\n' || b == b'\r')
                .count();
            let before = &input[..input.len() - rest.len() + skipped];
            let line_ends = (0..before.len())
                .filter(|&at| match before[at] {
                    b'\r' => true,
                    b'\n' => at == 0 || before[at - 1] != b'\r',
                    _ => false,
                })
                .count() as u64;
            let start_line = *line.get_or_insert(1 + line_ends);
            let (result, read, written, ended) =
                reader.read_record(rest, &mut cells[cells_len..], &mut ends[ends_len..]);
            rest = &rest[read..];
            cells_len += written;
            ends_len += ended;
            match result {
                ReadRecordResult::Record => {
                    let mut start = 0;
                    let fields = ends[..ends_len]
                        .iter()
                        .map(|&end| {
                            let cell = cells[start..end].to_vec();
                            start = end;
                            cell
                        })
                        .collect();
                    rows.push((start_line, fields));
                    (cells_len, ends_len, line) = (0, 0, None);
                }
                ReadRecordResult::InputEmpty => {}
                ReadRecordResult::End => return rows,
                other => panic!("buffers too small: {other:?}"),
            }
        }
    }

    #[test]
    fn matches_csv_core_on_tricky_input_in_any_pieces() {
        let inputs: [&[u8]; 12] = [
            b"a,b,c\n1,2,3\n",
            b"a,b\n\n\n1,2",
            b"x,\"y,z\"\n\"q\"\"uote\",2\n",
            b"\"multi\nline\",1\nnext,2\n",
            b"crlf,1\r\ncrlf,2\r\n\r\nlast,3",
            b"cr,only\rsecond,row\r",
            b"mid\"quote,1\nok,2\n",
            b"\"closed\"after,1\n",
            b",\n,,\n\n",
            b"a,1\n\xef\xbb\xbf\"bom\",1\n",
            b"unicode \xc3\xa9,\xe6\xbc\xa2\n",
            b"\"unterminated,1\nnever,ends",
        ];
        for input in inputs {
            for piece in [1, 2, 3, 7, 64] {
                assert_like_csv_core(input, piece);
            }
        }
    }

    #[test]
    fn matches_csv_core_on_random_input() {
        // A fixed-seed generator: every run checks the same inputs.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |below: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % below as u64) as usize
        };
        let alphabet: [&[u8]; 7] = [b"a", b"bc", b",", b"\"", b"\n", b"\r", "é".as_bytes()];
        for _ in 0..5000 {
            let mut input = Vec::new();
            for _ in 0..next(40) {
                input.extend_from_slice(alphabet[next(alphabet.len())]);
            }
            let piece = 1 + next(16);
            assert_like_csv_core(&input, piece);
        }
    }

    fn rejected(line: u64, bad: Bad, raw: &[u8]) -> Next {
        Next::Rejected(BadRecord {
            line,
            bad,
            raw: raw.to_vec(),
        })
    }

    #[test]
    fn an_unclosed_quote_is_rejected_whole_by_its_first_line() {
        for piece in [1, 3, 64] {
            let (rows, said) = split(b"a,b\n1,2\n3,\"oops\n4,5\n", piece);
            assert_eq!(rows.len(), 2);
            assert_eq!(said, [rejected(3, Bad::Unclosed, b"3,\"oops\n4,5\n")]);
        }
    }

    #[test]
    fn an_unclosed_quote_past_the_limit_skips_to_the_end_and_says_so() {
        let mut input = b"ok,1\nok,2\n\"open,".to_vec();
        input.extend(std::iter::repeat_n(b'x', 4096));
        input.extend_from_slice(b"\nlast,3\n");
        for piece in [7, 1000, 8192] {
            let (rows, said) = split_max(&input, piece, 1000);
            assert_eq!(rows.len(), 2, "pieces of {piece}");
            let Next::Rejected(bad) = &said[0] else {
                panic!("{said:?}")
            };
            assert_eq!(
                (bad.line, bad.bad, bad.raw.len()),
                (3, Bad::TooLongInQuote, 256)
            );
            assert_eq!(
                said[1],
                Next::NeverClosed {
                    line: 3,
                    last_line: 4
                }
            );
            assert_eq!(said.len(), 2);
        }
    }

    #[test]
    fn a_too_long_record_is_rejected_alone() {
        // A quoted row that closes, a plain line, the last line without a
        // newline, in one piece or many.
        let mut input = b"ok,1\n\"".to_vec();
        input.extend(std::iter::repeat_n(b'q', 1200));
        input.extend_from_slice(b"\",2\nnext,3\n");
        input.extend(std::iter::repeat_n(b'p', 1200));
        input.extend_from_slice(b",\"a\nb\"\nafter,4\n");
        input.extend(std::iter::repeat_n(b'z', 1200));
        for piece in [4096, 900, 13] {
            let (rows, said) = split_max(&input, piece, 1000);
            let lines: Vec<u64> = rows.iter().map(|(line, _)| *line).collect();
            assert_eq!(lines, [1, 3, 6], "pieces of {piece}");
            let bad: Vec<(u64, Bad)> = said
                .iter()
                .map(|next| match next {
                    // Whether the limit is passed inside the quote depends
                    // on where the pieces end.
                    Next::Rejected(bad) if bad.bad == Bad::TooLongInQuote => {
                        (bad.line, Bad::TooLong)
                    }
                    Next::Rejected(bad) => (bad.line, bad.bad),
                    other => panic!("{other:?}"),
                })
                .collect();
            assert_eq!(
                bad,
                [(2, Bad::TooLong), (4, Bad::TooLong), (7, Bad::TooLong)],
                "pieces of {piece}"
            );
        }
    }
}
