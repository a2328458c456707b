//! CSV over TCP: each frame is one row; the first (unless `--no-header`)
//! names the connection's columns. A header is rejected when it cannot be
//! split into cells (an unclosed quote, more than one row), is not UTF-8,
//! is oversize, or when its share of `--max-buffered-bytes` (see
//! [`budget::header_cost`]) is not free; every later row of that
//! connection is then rejected too, so that each frame the client sent is
//! written or rejected, never dropped.

use std::fmt;
use std::sync::Arc;

use super::budget::{self, Reservation, FREE_BYTES};
use super::Shared;
use crate::codec::CsvRowSplitter;
use crate::cpu;
use crate::error::Result;
use crate::record::{Content, CsvHeader, Location, RawBatch, SourceInfo};

/// A header whose share ([`budget::header_cost`]) is at most this takes
/// none: about 100 columns.
const HEADER_FREE_BYTES: usize = 16 * 1024;

/// Why each row after an unusable header is rejected.
const UNUSABLE: &str = "the connection's header (record 1) is unusable";

/// The connection's header, as far as it is known.
enum Header {
    /// Not read yet (`--no-header` starts [`Header::Ready`]).
    Pending,
    /// Rows decode with it; `_share` is the header's share of the buffer
    /// budget, held as long as the header.
    Ready {
        decode: Content,
        _share: Option<Reservation>,
    },
    /// Rejected: every row is rejected too.
    Unusable,
}

/// A connection's CSV state: the row splitter and the header.
pub(super) struct CsvRows {
    splitter: CsvRowSplitter,
    header: Header,
}

impl CsvRows {
    /// Rows split on `delimiter`; with `header`, the first row names the
    /// columns, else they are `c1`, `c2`, ...
    pub(super) fn new(delimiter: u8, header: bool) -> Self {
        CsvRows {
            splitter: CsvRowSplitter::new(delimiter),
            header: match header {
                true => Header::Pending,
                false => Header::Ready {
                    decode: Content::CsvNumbered,
                    _share: None,
                },
            },
        }
    }

    /// Notes a frame rejected as oversize: when it was to be the header,
    /// the header is unusable, and `reason` says so.
    pub(super) fn oversize(&mut self, source: &SourceInfo, reason: &mut String) {
        if let Header::Pending = self.header {
            self.header = Header::Unusable;
            *reason = format!("bad CSV header: {reason}");
            crate::warn_limited!(
                "{}: {reason}; every row of this connection is rejected",
                Label(source)
            );
        }
    }

    /// Takes frame `pos` of the connection `source`: a row into `batch`
    /// (started with `new_batch`), or the header, or a rejection.
    pub(super) fn take(
        &mut self,
        shared: &Shared,
        source: &Arc<SourceInfo>,
        pos: u64,
        frame: &[u8],
        batch: &mut Option<RawBatch>,
    ) -> Result<()> {
        let CsvRows { splitter, header } = self;
        let split = cpu::off_worker(frame.len(), cpu::ROW_BYTES, || splitter.split(frame));
        let cells = match (split, &*header) {
            // A blank frame is no record, header or not.
            (Ok(None), _) => return Ok(()),
            (_, Header::Unusable) => return reject(shared, source, pos, frame, UNUSABLE),
            (Ok(Some(cells)), _) => cells,
            // A header that cannot be split is as unusable as one that
            // cannot be built: the next row must not take its place.
            (Err(reason), Header::Pending) => {
                return unusable(header, shared, source, pos, frame, &reason)
            }
            (Err(reason), Header::Ready { .. }) => {
                return reject(shared, source, pos, frame, &reason)
            }
        };
        match header {
            Header::Ready { decode, .. } => {
                let batch =
                    batch.get_or_insert_with(|| RawBatch::new(source.clone(), decode.clone()));
                for cell in cells {
                    batch.push_field(cell);
                }
                batch.finish_record(pos);
            }
            Header::Unusable => unreachable!("rejected above"),
            Header::Pending => {
                let label = Label(source);
                let columns = cells.clone().count();
                let cost = budget::header_cost(frame.len(), columns);
                // A usual header is part of what a connection costs: it
                // never fails for want of room that big frames hold.
                let share = match cost <= HEADER_FREE_BYTES {
                    true => Some(None),
                    false => shared.budget.try_reserve_bytes(cost).map(Some),
                };
                let built = match share {
                    None => Err(format!(
                        "it needs {cost} bytes of --max-buffered-bytes ({columns} columns), \
                         and only {} of {} are free; raise --max-buffered-bytes",
                        shared.budget.available_bytes(),
                        shared.budget.total_bytes()
                    )),
                    // Renaming a huge header's names takes a while.
                    Some(share) => cpu::off_worker(frame.len(), cpu::HEADER_BYTES, || {
                        CsvHeader::from_fields(cells)
                    })
                    .map(|built| (built, share)),
                };
                match built {
                    Ok((built, share)) => {
                        if cost >= FREE_BYTES {
                            tracing::info!(
                                "{label}: its CSV header holds {cost} bytes of \
                                 --max-buffered-bytes ({columns} columns)"
                            );
                        }
                        *header = Header::Ready {
                            decode: Content::Csv(Arc::new(built)),
                            _share: share,
                        };
                    }
                    Err(reason) => unusable(header, shared, source, pos, frame, &reason)?,
                }
            }
        }
        Ok(())
    }
}

/// Rejects the header, frame `pos` of the connection `source`, for
/// `reason`, and makes it [`Header::Unusable`], so that every later row is
/// rejected too.
fn unusable(
    header: &mut Header,
    shared: &Shared,
    source: &SourceInfo,
    pos: u64,
    frame: &[u8],
    reason: &str,
) -> Result<()> {
    *header = Header::Unusable;
    let reason = format!("bad CSV header: {reason}");
    reject(shared, source, pos, frame, &reason)?;
    crate::warn_limited!(
        "{}: {reason}; every row of this connection is rejected",
        Label(source)
    );
    Ok(())
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

/// A connection in log lines: `127.0.0.1:4000 (conn 3)`.
pub(super) struct Label<'a>(pub(super) &'a SourceInfo);

impl fmt::Display for Label<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            SourceInfo::Tcp { peer, conn } => write!(f, "{peer} (conn {conn})"),
            other => write!(f, "{other:?}"),
        }
    }
}
