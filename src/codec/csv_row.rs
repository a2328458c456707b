//! One CSV row that arrives as one piece (a length-delimited TCP frame),
//! split into its cells with the csv crate: quotes, doubled quotes and
//! delimiters inside quotes work as in a CSV file; the row must be the
//! whole frame.

use super::csv_stream::ends_in_quote;
use super::Rejection;

/// A row buffer grown past this (in bytes) is dropped after its row.
const KEPT_BYTES: usize = 64 * 1024;

/// Why a row that ends inside a quoted cell is rejected.
const UNCLOSED: &str = "unclosed quote: a quoted cell runs to the end of the frame";

/// Splits rows into cells, reusing its record from row to row.
#[derive(Debug)]
pub struct CsvRowSplitter {
    builder: csv::ReaderBuilder,
    delimiter: u8,
    /// The cells of the last row.
    record: csv::ByteRecord,
    /// Scratch for whatever follows the row in its frame.
    rest: csv::ByteRecord,
}

impl CsvRowSplitter {
    /// A splitter for cells separated by `delimiter`.
    pub fn new(delimiter: u8) -> Self {
        let mut builder = csv::ReaderBuilder::new();
        builder
            .has_headers(false)
            .flexible(true)
            .delimiter(delimiter);
        CsvRowSplitter {
            builder,
            delimiter,
            record: csv::ByteRecord::new(),
            rest: csv::ByteRecord::new(),
        }
    }

    /// The cell separator.
    pub fn delimiter(&self) -> u8 {
        self.delimiter
    }

    /// The cells of `row`, or `None` for a blank row (no record, as in a
    /// CSV file). A trailing `\r` ends the row like `\n`; anything after
    /// the row's end (an unquoted line break and more) is rejected.
    pub fn split(&mut self, row: &[u8]) -> Result<Option<&csv::ByteRecord>, Rejection> {
        // The record grows for a huge row (or header); a connection does
        // not keep that memory for the rest of its life.
        if self.record.as_slice().len() > KEPT_BYTES || self.record.len() > KEPT_BYTES / 8 {
            self.record = csv::ByteRecord::new();
        }
        // The csv crate takes a quote still open at the end as closed.
        if memchr::memchr(b'"', row).is_some() && ends_in_quote(row, self.delimiter) {
            return Err(UNCLOSED.into());
        }
        let mut reader = self.builder.from_reader(row);
        let invalid = |error: csv::Error| format!("invalid CSV: {error}");
        if !reader.read_byte_record(&mut self.record).map_err(invalid)? {
            return Ok(None);
        }
        if reader.read_byte_record(&mut self.rest).map_err(invalid)? {
            return Err("more than one CSV row in a frame (an unquoted line break?)".into());
        }
        Ok(Some(&self.record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(splitter: &mut CsvRowSplitter, row: &[u8]) -> Result<Option<Vec<String>>, Rejection> {
        Ok(splitter.split(row)?.map(|record| {
            record
                .iter()
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
        assert!(splitter.record.as_slice().len() <= KEPT_BYTES);
    }
}
