//! Cuts a CSV byte stream into records, straight into a [`RawBatch`].
//!
//! Most rows of real CSV hold no quote: such a row is one line, and its
//! cells are what lies between delimiters. Those rows take a fast path (one
//! copy of the line, cells found by [`scan::scan_line`]); a row with a quote or a
//! carriage return goes through csv-core, which handles quoted delimiters,
//! doubled quotes, line breaks inside quotes and `\r` terminators. Both
//! paths cut records exactly as csv-core alone would (see the tests), and
//! report the line each record starts on.

use csv_core::{ReadRecordResult, Reader, ReaderBuilder};

use super::csv_row::CellBuffers;
use crate::record::RawBatch;
use crate::scan::{self, Line};

/// What [`CsvRecords::read`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// A record starting on this line; its cells were appended to the
    /// batch (the caller ends the record).
    Record(u64),
    /// The input holds no whole record yet: read more and call again with
    /// the unconsumed bytes first.
    NeedInput,
    /// The stream ended (`at_end` was given and every record was read).
    End,
}

/// A record ran past `--max-record-bytes` without ending (an unclosed
/// quote, most likely); where it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLong {
    /// The line the record started on.
    pub line: u64,
}

/// A record csv-core is part way through: the input ended inside it.
#[derive(Debug, Clone, Copy)]
struct Partial {
    cells_len: usize,
    ends_len: usize,
    line: u64,
    /// Input bytes of the record read so far.
    bytes: usize,
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
}

impl CsvRecords {
    /// A splitter for cells separated by `delimiter`; a record longer than
    /// `max_record_bytes` is an error, never buffered whole.
    pub fn new(delimiter: u8, max_record_bytes: usize) -> Self {
        CsvRecords {
            delimiter,
            fast: delimiter.is_ascii() && !matches!(delimiter, b'"' | b'\n' | b'\r'),
            max_record_bytes,
            core: ReaderBuilder::new().delimiter(delimiter).build(),
            line: 1,
            delimiters: Vec::new(),
            plain_scanned: 0,
            more_delimiters: Vec::new(),
            parsed: CellBuffers::new(),
            partial: None,
        }
    }

    /// The line number of the next unread byte.
    pub fn line(&self) -> u64 {
        self.line
    }

    /// Reads the next record from `input`, the bytes not yet consumed
    /// (`at_end` once no more will come), appending its cells to `out`.
    /// Returns what was found and how many bytes of `input` were consumed.
    pub fn read(
        &mut self,
        input: &[u8],
        at_end: bool,
        out: &mut RawBatch,
    ) -> Result<(Next, usize), TooLong> {
        if self.partial.is_some() {
            return self.read_slow(input, 0, at_end, out);
        }
        let mut pos = 0;
        loop {
            let rest = &input[pos..];
            // Line breaks between records make no record (as in csv-core),
            // and the record's line is the one after them.
            if let Some(&byte @ (b'\n' | b'\r')) = rest.first() {
                pos += 1;
                self.line += u64::from(byte == b'\n');
                continue;
            }
            return match self.scan_plain(rest) {
                Line::Plain(len) if len > self.max_record_bytes => Err(TooLong { line: self.line }),
                Line::Plain(len) => {
                    out.push_split(&rest[..len], &self.delimiters);
                    self.line += 1;
                    Ok((Next::Record(self.line - 1), pos + len + 1))
                }
                Line::NeedsParser => self.read_slow(input, pos, at_end, out),
                Line::Unfinished if rest.is_empty() => {
                    Ok((if at_end { Next::End } else { Next::NeedInput }, pos))
                }
                // The last line, without a `\n`.
                Line::Unfinished if at_end => {
                    out.push_split(rest, &self.delimiters);
                    self.line += 1;
                    Ok((Next::Record(self.line - 1), input.len()))
                }
                Line::Unfinished if rest.len() > self.max_record_bytes => {
                    Err(TooLong { line: self.line })
                }
                Line::Unfinished => {
                    self.plain_scanned = rest.len();
                    Ok((Next::NeedInput, pos))
                }
            };
        }
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

    /// Reads one record with csv-core from `input[start..]`, or goes on
    /// with the one it is inside.
    fn read_slow(
        &mut self,
        input: &[u8],
        start: usize,
        at_end: bool,
        out: &mut RawBatch,
    ) -> Result<(Next, usize), TooLong> {
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
            }
        });
        let mut pos = start;
        loop {
            let mut chunk = &input[pos..];
            if chunk.is_empty() && !at_end {
                partial.bytes += pos - start;
                self.check_length(&partial)?;
                self.partial = Some(partial);
                return Ok((Next::NeedInput, pos));
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
            match result {
                ReadRecordResult::InputEmpty => {}
                full @ (ReadRecordResult::OutputFull | ReadRecordResult::OutputEndsFull) => {
                    self.parsed.grow(full)
                }
                ReadRecordResult::Record => {
                    if partial.bytes + (pos - start) > self.max_record_bytes {
                        return Err(TooLong { line: partial.line });
                    }
                    self.line = self.core.line();
                    out.push_fields(
                        &self.parsed.cells[..partial.cells_len],
                        self.parsed.ends[..partial.ends_len].iter().copied(),
                    );
                    return Ok((Next::Record(partial.line), pos));
                }
                ReadRecordResult::End => {
                    self.line = self.core.line();
                    return Ok((Next::End, pos));
                }
            }
            if partial.bytes + (pos - start) > self.max_record_bytes {
                return Err(TooLong { line: partial.line });
            }
        }
    }

    fn check_length(&self, partial: &Partial) -> Result<(), TooLong> {
        if partial.bytes > self.max_record_bytes {
            return Err(TooLong { line: partial.line });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::codec::Decode;
    use crate::record::SourceInfo;

    type Rows = Vec<(u64, Vec<Vec<u8>>)>;

    /// Every record of `input`, fed in pieces of `piece` bytes.
    fn split(input: &[u8], piece: usize) -> Result<Rows, TooLong> {
        let source = Arc::new(SourceInfo::File { path: "t".into() });
        let mut batch = RawBatch::new(source, Decode::CsvNumbered);
        let mut records = CsvRecords::new(b',', 1 << 20);
        let mut buffer = Vec::new();
        let mut fed = 0;
        loop {
            let at_end = fed == input.len();
            let (next, consumed) = records.read(&buffer, at_end, &mut batch)?;
            buffer.drain(..consumed);
            match next {
                Next::Record(line) => batch.finish_record(line),
                Next::NeedInput => {
                    let more = piece.min(input.len() - fed);
                    buffer.extend_from_slice(&input[fed..fed + more]);
                    fed += more;
                }
                Next::End => break,
            }
        }
        Ok(batch
            .records()
            .map(|r| (r.location.pos, r.fields().map(<[u8]>::to_vec).collect()))
            .collect())
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
            // Where the next record starts: past any line breaks.
            let skipped = rest
                .iter()
                .take_while(|&&b| b == b'\n' || b == b'\r')
                .filter(|&&b| b == b'\n')
                .count() as u64;
            let start_line = *line.get_or_insert(reader.line() + skipped);
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
            let expected = split_by_csv_core(input);
            for piece in [1, 2, 3, 7, 64] {
                assert_eq!(
                    split(input, piece).unwrap(),
                    expected,
                    "input {:?} in pieces of {piece}",
                    String::from_utf8_lossy(input)
                );
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
            assert_eq!(
                split(&input, piece).unwrap(),
                split_by_csv_core(&input),
                "input {:?} in pieces of {piece}",
                String::from_utf8_lossy(&input)
            );
        }
    }

    #[test]
    fn an_unclosed_quote_is_too_long_at_its_start() {
        let mut input = b"ok,1\nok,2\n\"open,".to_vec();
        input.extend(std::iter::repeat_n(b'x', 4096));
        let source = Arc::new(SourceInfo::File { path: "t".into() });
        let mut batch = RawBatch::new(source, Decode::CsvNumbered);
        let mut records = CsvRecords::new(b',', 1000);
        let mut rest = &input[..];
        let error = loop {
            match records.read(rest, false, &mut batch) {
                Ok((Next::Record(line), consumed)) => {
                    batch.finish_record(line);
                    rest = &rest[consumed..];
                }
                Ok(other) => panic!("expected an error, got {other:?}"),
                Err(error) => break error,
            }
        };
        assert_eq!(error, TooLong { line: 3 });
        assert_eq!(batch.len(), 2);
    }

    #[test]
    fn a_whole_quoted_row_over_the_limit_is_too_long() {
        // In one piece, and ending in a later piece than it started.
        for piece in [4096, 900] {
            let mut input = b"ok,1\n\"".to_vec();
            input.extend(std::iter::repeat_n(b'q', 1200));
            input.extend_from_slice(b"\",2\nnext,3\n");
            let source = Arc::new(SourceInfo::File { path: "t".into() });
            let mut batch = RawBatch::new(source, Decode::CsvNumbered);
            let mut records = CsvRecords::new(b',', 1000);
            let (mut buffer, mut fed) = (Vec::new(), 0);
            let error = loop {
                match records.read(&buffer, fed == input.len(), &mut batch) {
                    Ok((Next::Record(line), used)) => {
                        batch.finish_record(line);
                        buffer.drain(..used);
                    }
                    Ok((Next::NeedInput, used)) => {
                        buffer.drain(..used);
                        let more = piece.min(input.len() - fed);
                        buffer.extend_from_slice(&input[fed..fed + more]);
                        fed += more;
                    }
                    Ok((Next::End, _)) => panic!("pieces of {piece}: no error"),
                    Err(error) => break error,
                }
            };
            assert_eq!(error, TooLong { line: 2 }, "pieces of {piece}");
            assert_eq!(batch.len(), 1);
        }
    }

    #[test]
    fn a_long_plain_line_is_too_long_before_it_ends() {
        let input = vec![b'x'; 2000];
        let source = Arc::new(SourceInfo::File { path: "t".into() });
        let mut batch = RawBatch::new(source, Decode::CsvNumbered);
        let mut records = CsvRecords::new(b',', 1000);
        assert_eq!(
            records.read(&input, false, &mut batch),
            Err(TooLong { line: 1 })
        );
    }
}
