//! A CSV connection with newline framing: the socket read as one CSV
//! stream by csv-async ([`CsvStream`]), so a quoted cell may hold a line
//! break as in a file. Rows are numbered by the line they start on. The
//! connection's bounds hold as for frames: a row is at most
//! `--max-frame-bytes` (a longer one is rejected and skipped), one that
//! grows past 64 KiB first takes a share of `--max-buffered-bytes` (the
//! socket waits unread meanwhile) and must end within `--frame-timeout`;
//! `--idle-timeout`, `--min-rate` and the server's stop end the stream as
//! they end a read of frames ([`SocketInput`]).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::super::budget::{Reservation, FREE_BYTES};
use super::super::csv_rows::{admit_header, naming, reject};
use super::super::rate::RateWatch;
use super::super::socket::Socket;
use super::super::Shared;
use super::{Connection, Read, READ_SIZE};
use crate::codec::csv_stream::{Bad, Next, TapInput};
use crate::codec::{CsvAssembler, CsvStream, Taken};
use crate::error::Result;
use crate::parts::{or_meanwhile, Closed};
use crate::record::{Location, RawBatch};
use crate::source::bom::LeadingBom;

/// A future waiting for a share of the budget.
type Waiting = Pin<Box<dyn Future<Output = Reservation> + Send>>;

/// The socket as the CSV stream's input: see the module documentation. A
/// read it ends early fails, and [`SocketInput::ended`] says why.
pub(super) struct SocketInput {
    stream: Socket,
    shared: Arc<Shared>,
    stop: Pin<Box<WaitForCancellationFutureOwned>>,
    /// Fires after `--idle-timeout` without a byte from the client.
    idle: Option<Pin<Box<Sleep>>>,
    /// Bytes the row under way holds (see [`TapInput::holding`]).
    held: u64,
    /// The row's share of the budget, once it passed 64 KiB.
    reservation: Option<Reservation>,
    waiting: Option<Waiting>,
    /// When a row holding a share must have ended.
    deadline: Option<Pin<Box<Sleep>>>,
    /// A leading byte order mark is dropped.
    bom: LeadingBom,
    /// Why reads stopped, when the server or a timeout stopped them.
    ended: Option<Read>,
    /// The `--min-rate` window under way, and its end.
    rate: Option<(RateWatch, Pin<Box<Sleep>>)>,
}

impl SocketInput {
    fn new(stream: Socket, shared: Arc<Shared>) -> Self {
        let stop = Box::pin(shared.stop_reading.clone().cancelled_owned());
        let rate = shared.options.min_rate.map(|rate| {
            let watch = RateWatch::new(rate);
            let ends = Box::pin(tokio::time::sleep_until(watch.ends()));
            (watch, ends)
        });
        let idle = shared
            .options
            .idle_timeout
            .map(|idle| Box::pin(tokio::time::sleep(idle)));
        SocketInput {
            stream,
            shared,
            stop,
            idle,
            held: 0,
            reservation: None,
            waiting: None,
            deadline: None,
            bom: LeadingBom::default(),
            ended: None,
            rate,
        }
    }

    /// With nothing to read: whether a `--min-rate` window ended too
    /// slow (registering the wake-up if it has not ended).
    fn too_slow(&mut self, cx: &mut Context<'_>) -> Option<Read> {
        let (watch, ends) = self.rate.as_mut()?;
        while ends.as_mut().poll(cx).is_ready() {
            if let Err(slow) = watch.next_window() {
                return Some(Read::TooSlow(slow));
            }
            ends.as_mut().reset(watch.ends());
        }
        None
    }

    fn end(&mut self, why: Read) -> Poll<io::Result<()>> {
        self.ended = Some(why);
        Poll::Ready(Err(io::Error::other("the connection's reading ended")))
    }

    /// Whether `--idle-timeout` passed (registering the wake-up if not).
    fn idled(&mut self, cx: &mut Context<'_>) -> bool {
        self.idle
            .as_mut()
            .is_some_and(|idle| idle.as_mut().poll(cx).is_ready())
    }

    fn rearm_idle(&mut self) {
        if let (Some(idle), Some(timeout)) = (&mut self.idle, self.shared.options.idle_timeout) {
            idle.as_mut().reset(Instant::now() + timeout);
        }
    }

    /// A row past 64 KiB waits for a share of the budget, unread; `Ready`
    /// once it may read on (or must end).
    fn poll_share(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Read>> {
        if self.held <= FREE_BYTES as u64 {
            // The row ended: the next one gets its own share and time.
            self.reservation = None;
            self.deadline = None;
            return Poll::Ready(Ok(()));
        }
        if self.reservation.is_some() {
            return Poll::Ready(Ok(()));
        }
        let shared = self.shared.clone();
        let waiting = self
            .waiting
            .get_or_insert_with(|| Box::pin(super::frame_share(shared)));
        if let Poll::Ready(granted) = waiting.as_mut().poll(cx) {
            self.waiting = None;
            self.reservation = Some(granted);
            let timeout = self.shared.options.frame_timeout;
            self.deadline = timeout.map(|timeout| Box::pin(tokio::time::sleep(timeout)));
            tracing::debug!("holds a share of --max-buffered-bytes for a row over 64 KiB");
            return Poll::Ready(Ok(()));
        }
        if !self.idled(cx) {
            return Poll::Pending;
        }
        // Bytes waiting unread are not idleness: we hold them back.
        let mut byte = [0u8; 1];
        match self.stream.poll_peek(cx, &mut ReadBuf::new(&mut byte)) {
            Poll::Ready(Ok(0)) => Poll::Ready(Err(Read::Eof)),
            Poll::Ready(Ok(_)) => {
                self.rearm_idle();
                Poll::Pending
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(Read::Failed(error))),
            Poll::Pending => Poll::Ready(Err(Read::Idle)),
        }
    }
}

impl TapInput for SocketInput {
    fn holding(&mut self, bytes: u64) {
        self.held = bytes;
    }
}

impl AsyncRead for SocketInput {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.stop.as_mut().poll(cx).is_ready() {
            return this.end(Read::Stopped);
        }
        match this.poll_share(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(Read::Eof)) => return Poll::Ready(Ok(())),
            Poll::Ready(Err(why)) => return this.end(why),
            Poll::Ready(Ok(())) => {}
        }
        if let Some(deadline) = &mut this.deadline {
            if deadline.as_mut().poll(cx).is_ready() {
                return this.end(Read::FrameTimeout);
            }
        }
        let stream = &mut this.stream;
        let filled = buf.filled().len();
        let read = this
            .bom
            .poll_read(cx, buf, |cx, buf| Pin::new(&mut *stream).poll_read(cx, buf));
        match read {
            Poll::Ready(Ok(())) => {
                if let Some((watch, _)) = &mut this.rate {
                    watch.add(buf.filled().len() - filled);
                }
                this.rearm_idle();
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => this.end(Read::Failed(error)),
            Poll::Pending if this.idled(cx) => this.end(Read::Idle),
            Poll::Pending => match this.too_slow(cx) {
                Some(slow) => this.end(slow),
                None => Poll::Pending,
            },
        }
    }
}

impl Connection {
    /// Serves a CSV client with newline framing: see the module
    /// documentation.
    pub(super) async fn run_csv_stream(self) -> Result<()> {
        let Connection {
            stream,
            source,
            shared,
            ..
        } = self;
        let options = &shared.options;
        let max = options.max_frame_bytes;
        let input = SocketInput::new(stream, shared.clone());
        let mut records = CsvStream::with_buffer(input, options.delimiter, max, READ_SIZE);
        let mut assembler = CsvAssembler::new(options.header, naming(true));
        // The header's share of the budget, held as long as the connection.
        let mut header_share = None;
        let mut batch = RawBatch::new(source.clone(), assembler.content().clone());
        let mut rows = 0u64;
        let reject =
            |line: u64, raw: &[u8], reason: &str| reject(&shared, &source, line, raw, reason);
        let ended = loop {
            // The client paused: what it sent goes on now.
            let next = if batch.is_empty() {
                records.next().await
            } else {
                let flush = || shared.ctx.out.send(batch.take());
                match or_meanwhile(records.next(), flush).await {
                    Ok(next) => next,
                    Err(Closed) => return Ok(()),
                }
            };
            let next = match next {
                Ok(next) => next,
                Err(error) => {
                    let why = records.input_mut().ended.take();
                    break why.unwrap_or(Read::Failed(error));
                }
            };
            let taken = match next {
                Next::End => break Read::Eof,
                Next::NeverClosed { line, last_line } => {
                    crate::warn_limited!(
                        "{}: the quote opened in this row never closes: lines {line} to {last_line} were skipped",
                        Location { source: &source, pos: line }
                    );
                    continue;
                }
                Next::Rejected(bad) => {
                    rows += 1;
                    let mut reason = match bad.bad {
                        Bad::Unclosed => naming(true).unclosed(),
                        Bad::TooLong | Bad::TooLongInQuote => {
                            format!("frame longer than {max} bytes (--max-frame-bytes)")
                        }
                    };
                    if assembler.wants_header() {
                        let location = Location {
                            source: &source,
                            pos: bad.line,
                        };
                        reason = assembler.unreadable(location, bad.line, &reason);
                        batch = RawBatch::new(source.clone(), assembler.content().clone());
                    }
                    reject(bad.line, &bad.raw, &reason)
                }
                Next::Record(line) if assembler.wants_header() => {
                    rows += 1;
                    let location = Location {
                        source: &source,
                        pos: line,
                    };
                    // The row as sent, as a framed header is measured.
                    let (cells, bytes) = (records.cells(), records.last_raw().len());
                    let taken = assembler.take(location, line, cells, bytes, |bytes, columns| {
                        admit_header(&shared, bytes, columns)
                    });
                    batch = RawBatch::new(source.clone(), assembler.content().clone());
                    match taken {
                        Taken::Header(share) => {
                            header_share = share;
                            Ok(())
                        }
                        Taken::Rejected(reason) => reject(line, records.last_raw(), &reason),
                        Taken::Record => Ok(()),
                    }
                }
                Next::Record(line) => {
                    rows += 1;
                    records.push_to(&mut batch);
                    batch.finish_record(line);
                    Ok(())
                }
            };
            if let Err(error) = taken {
                // `--on-error stop`: the rows before it are written.
                let _ = shared.ctx.out.send(batch).await;
                return Err(error);
            }
            if shared.ctx.is_full(&batch) && shared.ctx.out.send(batch.take()).await.is_err() {
                return Ok(());
            }
        };
        if !batch.is_empty() && shared.ctx.out.send(batch).await.is_err() {
            return Ok(());
        }
        let unfinished = records.unfinished();
        // The budget's shares go back before the close is said: a client
        // that waits for that line may count on them.
        drop(records);
        drop(header_share);
        let unfinished = unfinished.as_ref().map(|(line, raw)| (*line, &raw[..]));
        super::ended(&shared, &source, ended, unfinished, (rows, "rows"))
    }
}
