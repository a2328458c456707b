//! The CSV header rules, once for every source: the rows of one CSV
//! stream (a file, a TCP connection, a Kafka message) go in, and each comes
//! out as the stream's header, a record, or a rejection.
//!
//! 1. Unless `--no-header`, a stream's first row names its columns (see
//!    [`CsvHeader::from_fields`]); with it, the keys are `c1`, `c2`, ...
//! 2. A header that cannot be used (not UTF-8, over the size limit, a
//!    quote that never closes, no room for it in a memory bound) is
//!    rejected as `bad CSV header: ...`, with a warning, and every later
//!    row of the stream is a record that the decode stage rejects (`the
//!    CSV header on line 1 is unusable`): each is counted and dead-lettered
//!    in order, and reading goes on.
//! 3. A blank row is no record, and never the header (the readers drop
//!    blank rows before they get here).
//! 4. A stream of a header and no row holds no record; where a stream must
//!    give at least one (a Kafka message), its source rejects it, asking
//!    [`CsvAssembler::rows`].

use std::fmt::Display;
use std::sync::Arc;

use crate::cpu;
use crate::record::RawBatch;
use crate::record::{Content, CsvHeader};

/// How a source names its positions and its streams in messages.
#[derive(Debug, Clone, Copy)]
pub struct Naming {
    /// How a position reads after "the CSV header": `on line`, `on
    /// record`, `at offset`.
    pub position: &'static str,
    /// Where a record starts, said of one: `on this line`, `at this offset`.
    pub here: &'static str,
    /// What one stream is: `input`, `connection`, `message`.
    pub stream: &'static str,
}

impl Naming {
    /// Why a record the stream ends inside a quoted cell of is rejected.
    pub fn unclosed(&self) -> String {
        format!(
            "unclosed quote: the record that starts {} runs to the end of the {}",
            self.here, self.stream
        )
    }
}

/// What a row turned out to be.
#[derive(Debug)]
pub enum Taken<S> {
    /// A record: push it into a batch decoded as [`CsvAssembler::content`].
    Record,
    /// The stream's header, now in use (records decode with it), with
    /// what `admit` gave for it.
    Header(S),
    /// The header, rejected for this reason (already warned about); every
    /// later row is a record that [`CsvAssembler::content`] rejects.
    Rejected(String),
}

/// One CSV stream's header state; see the module documentation.
#[derive(Debug)]
pub struct CsvAssembler {
    naming: Naming,
    /// `None` until the header row was read (with `--no-header`, never).
    content: Option<Content>,
    /// Data rows taken (records, the rows under an unusable header too).
    rows: u64,
}

impl CsvAssembler {
    /// A stream whose first row is its header when `header` is true.
    pub fn new(header: bool, naming: Naming) -> Self {
        CsvAssembler {
            naming,
            content: (!header).then_some(Content::CsvNumbered),
            rows: 0,
        }
    }

    /// True until the header row is taken.
    pub fn wants_header(&self) -> bool {
        self.content.is_none()
    }

    /// What this stream's records are now (how they decode).
    pub fn content(&self) -> &Content {
        self.content.as_ref().unwrap_or(&Content::CsvNumbered)
    }

    /// Data rows taken so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Takes the row at `location` (`pos` is its position in the stream),
    /// whose cells are `cells`, `bytes` long in all. A header is admitted
    /// by `admit` first (given its byte and column counts), which may refuse
    /// it (a memory bound) or give something to keep with it.
    pub fn take<'a, S>(
        &mut self,
        location: impl Display,
        pos: u64,
        cells: impl Iterator<Item = &'a [u8]> + Clone,
        bytes: usize,
        admit: impl FnOnce(usize, usize) -> Result<S, String>,
    ) -> Taken<S> {
        if self.content.is_some() {
            self.rows += 1;
            return Taken::Record;
        }
        let built = admit(bytes, cells.clone().count()).and_then(|kept| {
            // Renaming a huge header's names takes a while.
            let header =
                cpu::off_worker(bytes, cpu::HEADER_BYTES, || CsvHeader::from_fields(cells));
            header.map(|header| (header, kept))
        });
        match built {
            Ok((header, kept)) => {
                self.content = Some(Content::Csv(Arc::new(header)));
                Taken::Header(kept)
            }
            Err(reason) => Taken::Rejected(self.unusable(location, pos, &reason)),
        }
    }

    /// The header row at `pos` could not even be read (too long, a quote
    /// that never closes): the header is unusable for `reason`. Returns the
    /// header's rejection reason.
    pub fn unreadable(&mut self, location: impl Display, pos: u64, reason: &str) -> String {
        self.unusable(location, pos, reason)
    }

    fn unusable(&mut self, location: impl Display, pos: u64, reason: &str) -> String {
        let Naming {
            position, stream, ..
        } = self.naming;
        crate::warn_limited!(
            "{location}: no usable CSV header: every row of this {stream} is rejected"
        );
        let rows = format!("the CSV header {position} {pos} is unusable");
        self.content = Some(Content::Unusable(rows.into()));
        format!("bad CSV header: {reason}")
    }
}

/// Appends a row to `batch` (the caller ends the record): `raw` is the
/// row as the input had it (without its line ends), `cells` its cells,
/// `cell_bytes` those back to back. Quotes always make the cells shorter
/// than the row, so a row as long as its cells and delimiters is its cells
/// split at the delimiters: it is copied as it was. A quoted one is copied
/// as its cells, and its bytes are kept beside them for dead letters.
pub fn push_row<'a>(
    batch: &mut RawBatch,
    raw: &[u8],
    delimiter: u8,
    cell_bytes: &[u8],
    cells: impl ExactSizeIterator<Item = &'a [u8]> + Clone + 'a,
) {
    if raw.len() == cell_bytes.len() + cells.len().saturating_sub(1) {
        batch.push_split(raw, delimiter);
    } else {
        batch.push_fields(cell_bytes, cell_ends(cells));
        batch.push_raw(raw);
    }
}

/// A row's bytes without the blank lines before it and the line ends
/// after it (a CSV reader skips those).
pub fn trim_line_ends(row: &[u8]) -> &[u8] {
    let is_line_end = |byte: &u8| *byte == b'\n' || *byte == b'\r';
    let start = row
        .iter()
        .position(|byte| !is_line_end(byte))
        .unwrap_or(row.len());
    let end = row
        .iter()
        .rposition(|byte| !is_line_end(byte))
        .map_or(start, |at| at + 1);
    &row[start..end]
}

/// Where each cell ends when `cells` lie back to back.
pub fn cell_ends<'a>(
    cells: impl Iterator<Item = &'a [u8]> + Clone + 'a,
) -> impl Iterator<Item = usize> + Clone + 'a {
    cells.scan(0, |end, cell| {
        *end += cell.len();
        Some(*end)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMING: Naming = Naming {
        position: "on line",
        here: "on this line",
        stream: "input",
    };

    fn take(assembler: &mut CsvAssembler, cells: &[&[u8]]) -> Taken<()> {
        let bytes = cells.iter().map(|cell| cell.len()).sum();
        assembler.take("x.csv:1", 1, cells.iter().copied(), bytes, |_, _| Ok(()))
    }

    #[test]
    fn the_first_row_is_the_header() {
        let mut assembler = CsvAssembler::new(true, NAMING);
        assert!(matches!(
            take(&mut assembler, &[b"a", b"b"]),
            Taken::Header(())
        ));
        assert!(
            matches!(assembler.content(), Content::Csv(header) if header.names() == ["a", "b"])
        );
        assert!(matches!(take(&mut assembler, &[b"1", b"2"]), Taken::Record));
        assert_eq!(assembler.rows(), 1);
        let mut numbered = CsvAssembler::new(false, NAMING);
        assert!(matches!(take(&mut numbered, &[b"a"]), Taken::Record));
        assert!(matches!(numbered.content(), Content::CsvNumbered));
    }

    #[test]
    fn rows_under_an_unusable_header_are_records_that_decode_rejects() {
        let mut assembler = CsvAssembler::new(true, NAMING);
        match take(&mut assembler, &[b"\xff"]) {
            Taken::Rejected(reason) => assert!(reason.starts_with("bad CSV header: invalid UTF-8")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(take(&mut assembler, &[b"1"]), Taken::Record));
        assert!(matches!(assembler.content(),
            Content::Unusable(reason) if &**reason == "the CSV header on line 1 is unusable"));
        let mut refused = CsvAssembler::new(true, NAMING);
        let taken = refused.take("c", 1, [&b"a"[..]].into_iter(), 1, |_, _| {
            Err::<(), _>("no room".to_string())
        });
        assert!(matches!(taken, Taken::Rejected(reason) if reason == "bad CSV header: no room"));
    }
}
