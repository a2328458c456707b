//! CSV rows of a TCP connection, as the header rules say
//! ([`CsvAssembler`]): from length-delimited frames (each frame one row,
//! split with the csv crate) or from the connection read as one CSV stream
//! (`connection/csv_stream.rs`). A header also takes its share of
//! `--max-buffered-bytes` ([`budget::header_cost`]), held as long as the
//! connection; a header whose share is not free is unusable.

use std::sync::Arc;

use super::budget::{self, Reservation, FREE_BYTES};
use super::Shared;
use crate::codec::csv_assembler::{push_row, trim_line_ends};
use crate::codec::{CsvAssembler, CsvRowSplitter, Naming, Taken};
use crate::cpu;
use crate::error::Result;
use crate::record::{Location, RawBatch, SourceInfo};

/// A header whose share ([`budget::header_cost`]) is at most this takes
/// none: about 100 columns.
const HEADER_FREE_BYTES: usize = 16 * 1024;

/// How CSV header messages name a connection's positions: its records
/// (frames, or the lines rows start on).
pub(super) fn naming(stream: bool) -> Naming {
    Naming {
        position: if stream { "on line" } else { "on record" },
        here: if stream {
            "on this line"
        } else {
            "in this record"
        },
        stream: "connection",
    }
}

/// A connection's CSV state: the row splitter and the header.
pub(super) struct CsvRows {
    splitter: CsvRowSplitter,
    pub(super) assembler: CsvAssembler,
    /// The header's share of the budget, held as long as the header.
    _share: Option<Reservation>,
}

impl CsvRows {
    /// Rows split on `delimiter`; with `header`, the first row names the
    /// columns, else they are `c1`, `c2`, ...
    pub(super) fn new(delimiter: u8, header: bool) -> Self {
        CsvRows {
            splitter: CsvRowSplitter::new(delimiter),
            assembler: CsvAssembler::new(header, naming(false)),
            _share: None,
        }
    }

    /// Notes a frame rejected as oversize: when it was to be the header,
    /// the header is unusable, and `reason` says so.
    pub(super) fn oversize(&mut self, source: &SourceInfo, pos: u64, reason: &mut String) {
        if self.assembler.wants_header() {
            *reason = self
                .assembler
                .unreadable(Location { source, pos }, pos, reason);
        }
    }

    /// Takes frame `pos` of the connection `source`: a row into `batch`
    /// (started with the assembler's decode), or the header, or a rejection.
    pub(super) fn take(
        &mut self,
        shared: &Shared,
        source: &Arc<SourceInfo>,
        pos: u64,
        frame: &[u8],
        batch: &mut Option<RawBatch>,
    ) -> Result<()> {
        let CsvRows {
            splitter,
            assembler,
            _share: share,
        } = self;
        let delimiter = splitter.delimiter();
        let split = cpu::off_worker(frame.len(), cpu::ROW_BYTES, || splitter.split(frame));
        let location = Location { source, pos };
        let cells = match split {
            // A blank frame is no record, header or not.
            Ok(None) => return Ok(()),
            Ok(Some(cells)) => cells,
            // A header that cannot be split is as unusable as one that
            // cannot be built: the next row must not take its place.
            Err(reason) if assembler.wants_header() => {
                let reason = assembler.unreadable(location, pos, &reason);
                return reject(shared, source, pos, frame, &reason);
            }
            Err(reason) => return reject(shared, source, pos, frame, &reason),
        };
        let bytes = frame.len();
        match assembler.take(location, pos, cells.iter(), bytes, |bytes, columns| {
            admit_header(shared, bytes, columns)
        }) {
            Taken::Record => {
                let content = assembler.content();
                let batch =
                    batch.get_or_insert_with(|| RawBatch::new(source.clone(), content.clone()));
                push_row(
                    batch,
                    trim_line_ends(frame),
                    delimiter,
                    cells.as_slice(),
                    cells.iter(),
                );
                batch.finish_record(pos);
                Ok(())
            }
            Taken::Header(kept) => {
                *share = kept;
                Ok(())
            }
            Taken::Rejected(reason) => reject(shared, source, pos, frame, &reason),
        }
    }
}

/// A header of `bytes` bytes and `columns` columns takes its share of the
/// budget (none for a usual one: it is part of what a connection costs,
/// so it never fails for want of room that big frames hold), or is
/// refused.
pub(super) fn admit_header(
    shared: &Shared,
    bytes: usize,
    columns: usize,
) -> Result<Option<Reservation>, String> {
    let cost = budget::header_cost(bytes, columns);
    if cost <= HEADER_FREE_BYTES {
        return Ok(None);
    }
    let Some(share) = shared.budget.try_reserve_bytes(cost) else {
        return Err(format!(
            "it needs {cost} bytes of --max-buffered-bytes ({columns} columns), \
             and only {} of {} are free; raise --max-buffered-bytes",
            shared.budget.available_bytes(),
            shared.budget.total_bytes()
        ));
    };
    if cost >= FREE_BYTES {
        tracing::info!(
            "its CSV header holds {cost} bytes of --max-buffered-bytes ({columns} columns)"
        );
    }
    Ok(Some(share))
}

/// Rejects record `pos` of the connection `source`.
pub(super) fn reject(
    shared: &Shared,
    source: &SourceInfo,
    pos: u64,
    raw: &[u8],
    reason: &str,
) -> Result<()> {
    // Never sent, but read all the same (`read` = written + rejected).
    shared.ctx.out.count_unsent(1);
    shared
        .ctx
        .rejects
        .reject(Location { source, pos }, raw, reason)
}
