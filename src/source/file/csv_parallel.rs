//! CSV files and stdin read on several workers, in order.
//!
//! A reader task reads the input in blocks of about [`BLOCK`] bytes and
//! cuts them after the last line end outside quotes ([`Cutter`]); each
//! piece is read by csv-async on its own worker task
//! ([`csv_piece::parse`]), at most `--csv-workers` at once. The reader
//! hands the source task each piece's worker, in input order, over a
//! bounded channel; the source task waits for them one after the other
//! and sends their batches on, so records, their line numbers and the
//! checkpoint's acks stay in input order.
//!
//! Whatever is not plain goes to the sequential reader
//! ([`FileReader::read_csv_records`]), which knows every rule:
//! - the piece holding the header (while the header is still wanted) and
//!   a piece with a record over `--max-record-bytes`: that piece alone;
//! - a piece whose cut fell inside a quoted cell (quote parity was
//!   wrong), more than [`UNCUT_LIMIT`] bytes without a cut (a quote that
//!   never closes, a record that long), and the end of the input (a last
//!   record without a line end, a torn file, a read error, a signal): the
//!   rest of the input, from there to its end.

use std::io;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures::Stream;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::io::StreamReader;
use tokio_util::task::AbortOnDropHandle;

use super::csv::NAMING;
use super::{FileReader, Flow};
use crate::codec::csv_cut::Cutter;
use crate::codec::csv_piece::{self, Parsed, PieceOptions};
use crate::codec::csv_stream::TapInput;
use crate::codec::{CsvAssembler, CsvStream};
use crate::error::{Error, Result};
use crate::source::input::InputReader;

/// How much the reader reads before it cuts.
const BLOCK: usize = 256 * 1024;

/// Bytes held without a cut after which the rest of the input goes to the
/// sequential reader, rather than be held whole.
const UNCUT_LIMIT: usize = 4 * 1024 * 1024;

/// Where a piece starts in the input.
#[derive(Debug, Clone, Copy, Default)]
struct At {
    /// Lines before it.
    lines: u64,
    /// Bytes before it.
    bytes: u64,
}

/// What the reader task hands the source task, in input order.
enum Piece {
    /// Cut where a record ends (if quote parity was right), being read by
    /// a worker, which gives the bytes back with what it read.
    Cut {
        at: At,
        parsed: JoinHandle<(Vec<u8>, Parsed)>,
    },
    /// Bytes not cut, for the sequential reader; `end`, once the input
    /// ended after them: how (a read error, or shutdown).
    Uncut {
        at: At,
        bytes: Vec<u8>,
        end: Option<io::Result<()>>,
    },
}

/// The rest of the input, as the sequential reader reads it.
type Rest = StreamReader<Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>, Bytes>;

/// A file's memory is bounded by [`UNCUT_LIMIT`] and the pieces in flight.
impl TapInput for Rest {}

impl FileReader<'_> {
    /// [`FileReader::read_csv`] on `workers` workers; see the module
    /// documentation.
    pub(super) async fn read_csv_parallel(
        &self,
        input: Box<dyn AsyncRead + Unpin + Send>,
        workers: usize,
    ) -> Result<Flow> {
        let options = PieceOptions {
            source: self.source.clone(),
            delimiter: self.options.delimiter,
            max_record_bytes: self.options.max_record_bytes,
            batch_records: self.ctx.batch_records,
            batch_bytes: self.ctx.batch_bytes,
        };
        // The reader holds the sender; it closes after the input's end
        // was sent (or once this task no longer listens).
        let (tx, mut pieces) = mpsc::channel(workers);
        let input = InputReader::new(input, self.ctx.shutdown.clone());
        let _reader = AbortOnDropHandle::new(tokio::spawn(read_pieces(
            input,
            tx,
            Arc::new(Semaphore::new(workers)),
            options,
        )));
        let mut rows = CsvAssembler::new(self.options.header, NAMING);
        while let Some(piece) = pieces.recv().await {
            let (at, parsed) = match piece {
                Piece::Cut { at, parsed } => (at, parsed),
                Piece::Uncut { at, bytes, end } => {
                    let first = Piece::Uncut { at, bytes, end };
                    return self.read_rest(at, first, pieces, &mut rows).await;
                }
            };
            let (bytes, parsed) = parsed
                .await
                .map_err(|error| Error::panicked("a CSV worker", error))?;
            let flow = match parsed {
                Parsed::Rows(batches) if !rows.wants_header() => {
                    for (mut batch, last_line) in batches {
                        batch.content = rows.content().clone();
                        if self.send(batch, last_line).await.is_err() {
                            return Ok(Flow::PipelineClosed);
                        }
                    }
                    Flow::InputEnded
                }
                Parsed::Miscut => {
                    let first = Piece::Uncut {
                        at,
                        bytes,
                        end: None,
                    };
                    return self.read_rest(at, first, pieces, &mut rows).await;
                }
                Parsed::Rows(_) | Parsed::Irregular => {
                    let max = self.options.max_record_bytes;
                    let records = CsvStream::new(&bytes[..], self.options.delimiter, max)
                        .resuming(at.lines, at.bytes);
                    self.read_csv_records(records, &mut rows, at.lines, false)
                        .await?
                }
            };
            if flow == Flow::PipelineClosed {
                return Ok(flow);
            }
        }
        Err(self.read_error(0, io::Error::other("the CSV reader task ended early")))
    }

    /// Reads `first` and every piece after it, to the input's end, with
    /// the sequential reader; `first` starts `at`.
    async fn read_rest(
        &self,
        at: At,
        first: Piece,
        pieces: mpsc::Receiver<Piece>,
        rows: &mut CsvAssembler,
    ) -> Result<Flow> {
        let rest = RestState {
            first: Some(first),
            pieces,
            error: None,
            done: false,
        };
        let stream: Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>> =
            Box::pin(futures::stream::unfold(rest, RestState::next));
        let max = self.options.max_record_bytes;
        let records = CsvStream::new(StreamReader::new(stream), self.options.delimiter, max)
            .resuming(at.lines, at.bytes);
        self.read_csv_records(records, rows, at.lines, true).await
    }
}

/// The pieces left for the sequential reader, as a stream of bytes.
struct RestState {
    /// The piece it starts with.
    first: Option<Piece>,
    pieces: mpsc::Receiver<Piece>,
    /// How the input ended, after the bytes given last.
    error: Option<io::Error>,
    done: bool,
}

impl RestState {
    /// The next bytes (or how the input failed), and the state after them.
    async fn next(mut self) -> Option<(io::Result<Bytes>, RestState)> {
        if let Some(error) = self.error.take() {
            self.done = true;
            return Some((Err(error), self));
        }
        if self.done {
            return None;
        }
        let piece = match self.first.take() {
            Some(piece) => piece,
            None => match self.pieces.recv().await {
                Some(piece) => piece,
                None => {
                    self.done = true;
                    return Some((Err(reader_gone()), self));
                }
            },
        };
        match piece {
            Piece::Cut { parsed, .. } => match parsed.await {
                Ok((bytes, _)) => Some((Ok(Bytes::from(bytes)), self)),
                Err(error) => {
                    self.done = true;
                    Some((Err(io::Error::other(error)), self))
                }
            },
            Piece::Uncut { bytes, end, .. } => {
                match end {
                    None => {}
                    Some(Ok(())) => self.done = true,
                    Some(Err(error)) => self.error = Some(error),
                }
                Some((Ok(Bytes::from(bytes)), self))
            }
        }
    }
}

/// The reader task ended without saying how the input did (it panicked).
fn reader_gone() -> io::Error {
    io::Error::other("the CSV reader task ended early")
}

/// The reader task: reads `input`, cuts it into pieces, starts a worker
/// on each (at most as many at once as `workers` has permits) and sends
/// the pieces in order to `tx`, the last one an [`Piece::Uncut`] with its
/// `end`. Returns early once nobody listens.
async fn read_pieces(
    mut input: InputReader<Box<dyn AsyncRead + Unpin + Send>>,
    tx: mpsc::Sender<Piece>,
    workers: Arc<Semaphore>,
    options: PieceOptions,
) {
    let mut cutter = Cutter::default();
    let mut pending: Vec<u8> = Vec::with_capacity(BLOCK);
    let mut at = At::default();
    // Once a piece went uncut, the rest does too: the sequential reader
    // reads it all.
    let mut uncut = false;
    loop {
        if pending.capacity() - pending.len() < BLOCK / 2 {
            pending.reserve(BLOCK);
        }
        let read = tokio::select! {
            read = input.read_buf(&mut pending) => read,
            _ = tx.closed() => return,
        };
        let caught_up = match read {
            Ok(0) => Some(Ok(())),
            Err(error) => Some(Err(error)),
            // A read gives a whole block, or less once caught up with the
            // writer (a pipe, a growing file): either way, cut what there
            // is rather than wait.
            Ok(_) => None,
        };
        if let Some(end) = caught_up {
            let bytes = std::mem::take(&mut pending);
            let _ = tx
                .send(Piece::Uncut {
                    at,
                    bytes,
                    end: Some(end),
                })
                .await;
            return;
        }
        if !uncut {
            if let Some(cut) = cutter.cut(&pending) {
                let rest = pending.len() - cut.len;
                let mut piece = std::mem::replace(&mut pending, Vec::with_capacity(BLOCK + rest));
                pending.extend_from_slice(&piece[cut.len..]);
                piece.truncate(cut.len);
                let Ok(permit) = workers.clone().acquire_owned().await else {
                    return;
                };
                let options = options.clone();
                let lines = at.lines;
                let parsed = tokio::spawn(async move {
                    let parsed = csv_piece::parse(&piece, lines, &options).await;
                    drop(permit);
                    (piece, parsed)
                });
                if tx.send(Piece::Cut { at, parsed }).await.is_err() {
                    return;
                }
                at.lines += cut.lines;
                at.bytes += cut.len as u64;
                continue;
            }
            uncut = pending.len() >= UNCUT_LIMIT;
        }
        if uncut {
            let bytes = std::mem::replace(&mut pending, Vec::with_capacity(BLOCK));
            let piece = Piece::Uncut {
                at,
                bytes,
                end: None,
            };
            if tx.send(piece).await.is_err() {
                return;
            }
        }
    }
}
