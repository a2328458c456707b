//! One CSV row, already cut out of its stream (a TCP frame), split into
//! its cells with csv-core: quotes, doubled quotes and delimiters inside
//! quotes work as in a CSV file; the row must be the whole frame.

use csv_core::{ReadRecordResult, Reader, ReaderBuilder};

use super::csv_skip::RecordSkipper;
use super::Rejection;

/// Cell buffers larger than this (in bytes) are dropped before the next row.
const KEPT_BYTES: usize = 64 * 1024;

/// Why a row that ends inside a quoted cell is rejected.
const UNCLOSED: &str = "unclosed quote: a quoted cell runs to the end of the frame";

/// Where csv-core writes a row: its cells, unquoted, back to back, and
/// where each ends; both grow when csv-core finds them full.
#[derive(Debug)]
pub(super) struct CellBuffers {
    pub(super) cells: Vec<u8>,
    pub(super) ends: Vec<usize>,
}

impl CellBuffers {
    pub(super) fn new() -> Self {
        CellBuffers {
            cells: vec![0; 4096],
            ends: vec![0; 64],
        }
    }

    /// Doubles the buffer that `full` (`OutputFull` or `OutputEndsFull`)
    /// says csv-core ran out of.
    pub(super) fn grow(&mut self, full: ReadRecordResult) {
        match full {
            ReadRecordResult::OutputFull => self.cells.resize(self.cells.len() * 2, 0),
            ReadRecordResult::OutputEndsFull => self.ends.resize(self.ends.len() * 2, 0),
            _ => {}
        }
    }
}

/// Splits rows into cells, reusing its buffers from row to row.
#[derive(Debug)]
pub struct CsvRowSplitter {
    reader: Reader,
    delimiter: u8,
    /// The cells of the last row.
    out: CellBuffers,
}

impl CsvRowSplitter {
    /// A splitter for cells separated by `delimiter`.
    pub fn new(delimiter: u8) -> Self {
        CsvRowSplitter {
            reader: ReaderBuilder::new().delimiter(delimiter).build(),
            delimiter,
            out: CellBuffers::new(),
        }
    }

    /// The cells of `row`, or `None` for a blank row (no record, as in a
    /// CSV file). A trailing `\r` ends the row like `\n`; anything after
    /// the row's end (an unquoted line break and more) is rejected.
    pub fn split(&mut self, row: &[u8]) -> Result<Option<CsvCells<'_>>, Rejection> {
        let Some(count) = self.read_one(row)? else {
            return Ok(None);
        };
        Ok(Some(CsvCells {
            cells: &self.out.cells,
            ends: self.out.ends[..count].iter(),
            start: 0,
        }))
    }

    /// Reads the first record of `row` into `cells`/`ends` and returns its
    /// cell count; fails if a second record follows.
    fn read_one(&mut self, row: &[u8]) -> Result<Option<usize>, Rejection> {
        self.reader.reset();
        // The buffers grow for a huge row (or header); a connection does
        // not keep that memory for the rest of its life.
        if self.out.cells.len() > KEPT_BYTES || self.out.ends.len() > KEPT_BYTES / 8 {
            self.out = CellBuffers::new();
        }
        let (mut cells_len, mut ends_len) = (0, 0);
        let mut input = row;
        let mut at_end = false;
        loop {
            let (result, read, written, ended) = self.reader.read_record(
                input,
                &mut self.out.cells[cells_len..],
                &mut self.out.ends[ends_len..],
            );
            input = &input[read..];
            cells_len += written;
            ends_len += ended;
            match result {
                // An empty input tells csv-core the stream ended, which
                // ends the row without a terminator.
                ReadRecordResult::InputEmpty if !at_end => at_end = true,
                // csv-core ends the row (Record or End) at the end of the
                // input, so this is never reached; ending here is safe.
                ReadRecordResult::InputEmpty => return Ok(None),
                full @ (ReadRecordResult::OutputFull | ReadRecordResult::OutputEndsFull) => {
                    self.out.grow(full)
                }
                ReadRecordResult::Record => break,
                ReadRecordResult::End => return Ok(None),
            }
        }
        // csv-core ends a quoted cell at the end of the input as if it had
        // closed; a row that really ends inside one is said to.
        if at_end && memchr::memchr(b'"', row).is_some() && self.ends_in_quote(row) {
            return Err(UNCLOSED.into());
        }
        if !input.is_empty() && self.has_record(input) {
            return Err("more than one CSV row in a frame (an unquoted line break?)".into());
        }
        Ok(Some(ends_len))
    }

    /// True if `row` ends inside a quoted cell.
    fn ends_in_quote(&self, row: &[u8]) -> bool {
        let mut skipper = RecordSkipper::new(self.delimiter, 1);
        skipper.feed(row).is_none() && skipper.in_quote()
    }

    /// True if `rest` holds a record (not just line breaks).
    fn has_record(&mut self, rest: &[u8]) -> bool {
        let mut scratch = [0u8; 64];
        let mut ends = [0usize; 8];
        match self.reader.read_record(rest, &mut scratch, &mut ends).0 {
            ReadRecordResult::End => false,
            // All of `rest` was read: end the input to see what it was.
            ReadRecordResult::InputEmpty => !matches!(
                self.reader.read_record(&[], &mut scratch, &mut ends).0,
                ReadRecordResult::End
            ),
            _ => true,
        }
    }
}

/// The cells of one row; see [`CsvRowSplitter::split`].
#[derive(Debug, Clone)]
pub struct CsvCells<'a> {
    cells: &'a [u8],
    ends: std::slice::Iter<'a, usize>,
    start: usize,
}

impl<'a> Iterator for CsvCells<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let end = *self.ends.next()?;
        let cell = &self.cells[self.start..end];
        self.start = end;
        Some(cell)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(splitter: &mut CsvRowSplitter, row: &[u8]) -> Result<Option<Vec<String>>, Rejection> {
        Ok(splitter.split(row)?.map(|cells| {
            cells
                .map(|cell| String::from_utf8_lossy(cell).into_owned())
                .collect()
        }))
    }

    #[test]
    fn splits_quoted_and_plain_cells() {
        let mut splitter = CsvRowSplitter::new(b',');
        assert_eq!(
            cells(&mut splitter, br#"a,"b,c","say ""hi""",,"#).unwrap(),
            Some(vec![
                "a".into(),
                "b,c".into(),
                "say \"hi\"".into(),
                "".into(),
                "".into()
            ])
        );
        assert_eq!(
            cells(&mut splitter, b"x,y\r").unwrap(),
            Some(vec!["x".into(), "y".into()])
        );
        assert_eq!(
            cells(&mut splitter, b"\"in\nside\"").unwrap(),
            Some(vec!["in\nside".into()])
        );
    }

    #[test]
    fn blank_rows_are_no_records() {
        let mut splitter = CsvRowSplitter::new(b',');
        assert_eq!(cells(&mut splitter, b"").unwrap(), None);
        assert_eq!(cells(&mut splitter, b"\r").unwrap(), None);
        assert_eq!(
            cells(&mut splitter, b"only\r\n").unwrap(),
            Some(vec!["only".into()])
        );
    }

    #[test]
    fn two_rows_in_one_frame_are_rejected() {
        let mut splitter = CsvRowSplitter::new(b';');
        assert_eq!(
            cells(&mut splitter, b"a;b\nc;d").unwrap_err(),
            "more than one CSV row in a frame (an unquoted line break?)"
        );
        assert_eq!(
            cells(&mut splitter, b"a;b").unwrap(),
            Some(vec!["a".into(), "b".into()])
        );
    }

    #[test]
    fn a_row_ending_inside_a_quote_is_rejected_as_unclosed() {
        let mut splitter = CsvRowSplitter::new(b',');
        for row in [&b"\"unclosed,7"[..], b"a,\"b\"\"", b"a,\"x\r"] {
            assert_eq!(cells(&mut splitter, row).unwrap_err(), UNCLOSED, "{row:?}");
        }
        // A quote inside an unquoted cell opens nothing; a closed one is fine.
        assert_eq!(
            cells(&mut splitter, b"a\"b,\"c\"\"d\"").unwrap(),
            Some(vec!["a\"b".into(), "c\"d".into()])
        );
    }

    #[test]
    fn long_rows_grow_the_buffers() {
        let mut splitter = CsvRowSplitter::new(b',');
        let long = "x".repeat(5000);
        let row = vec![long.as_str(); 100].join(",");
        let split = cells(&mut splitter, row.as_bytes()).unwrap().unwrap();
        assert_eq!(split.len(), 100);
        assert!(split.iter().all(|cell| cell == &long));
        // ... and shrink back for the next row.
        assert_eq!(cells(&mut splitter, b"a,b").unwrap().unwrap(), ["a", "b"]);
        assert!(splitter.out.cells.len() <= KEPT_BYTES);
    }
}
