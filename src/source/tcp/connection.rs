//! One client connection: read into a buffer, cut what arrived into
//! frames, and send that read's frames on as one batch right away (so
//! batches grow with the rate, and a record never waits for a full batch).
//! While the batch waits for room in the pipeline, or the unfinished frame
//! for room in the buffer budget, the socket is not read.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, BufMut, BytesMut};
use futures::FutureExt;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::budget::{Reservation, FREE_BYTES};
use super::{Shared, StopReason};
use crate::codec::{CsvHeader, CsvRowSplitter, Decode, Format, Framer};
use crate::cpu;
use crate::error::Result;
use crate::record::{Location, RawBatch, SourceInfo};
use crate::source::Closed;

/// How much room each read gets.
const READ_SIZE: usize = 64 * 1024;

/// Makes room for `room` more bytes in `buf`, moving it to a buffer of
/// `capacity` bytes when it has too little (never doubling it).
fn make_room(buf: &mut BytesMut, room: usize, capacity: usize) {
    if buf.capacity() - buf.len() >= room {
        return;
    }
    let mut moved = BytesMut::with_capacity(capacity.max(buf.len() + room));
    moved.extend_from_slice(buf);
    *buf = moved;
}

/// How much of an oversize frame a rejection shows.
const REJECTED_HEAD: usize = 256;

/// A UTF-8 byte order mark, dropped from the start of a connection.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// What frames turn into.
enum Content {
    /// Each frame is one record as it is (a line, a JSON object).
    Whole(Decode),
    /// Each frame is one CSV row; `decode` is `None` until the header
    /// (the connection's first row) is read.
    Csv {
        /// Boxed: csv-core's reader is a few kilobytes of tables.
        splitter: Box<CsvRowSplitter>,
        decode: Option<Decode>,
    },
}

/// What a read brought.
enum Read {
    /// Bytes (now in the buffer).
    Data,
    /// The client closed its side.
    Eof,
    /// The connection broke (reset by the client, ...).
    Failed(io::Error),
    /// Nothing arrived for `--idle-timeout`.
    Idle,
    /// The server told open connections to stop reading.
    Stopped,
}

/// Whether to go on reading after a batch of frames.
enum Flow {
    Go,
    Close,
}

/// One accepted client.
pub(super) struct Connection {
    stream: TcpStream,
    source: Arc<SourceInfo>,
    shared: Arc<Shared>,
    content: Content,
    /// Frames taken so far: the number of the last record.
    frames: u64,
    /// Where the lines of the last line run end (reused from read to read).
    newlines: Vec<u32>,
}

impl Connection {
    /// Connection number `conn` (1 for the first accepted), from `peer`.
    pub(super) fn new(stream: TcpStream, peer: SocketAddr, conn: u64, shared: Arc<Shared>) -> Self {
        let options = &shared.options;
        let content = match options.format {
            Format::Lines => Content::Whole(Decode::Lines),
            Format::Jsonl => Content::Whole(Decode::Jsonl),
            Format::Csv => Content::Csv {
                splitter: Box::new(CsvRowSplitter::new(options.delimiter)),
                decode: (!options.header).then_some(Decode::CsvNumbered),
            },
        };
        Connection {
            stream,
            source: Arc::new(SourceInfo::Tcp { peer, conn }),
            shared,
            content,
            frames: 0,
            newlines: Vec::new(),
        }
    }

    /// Serves the client until it closes, breaks, idles, sends a frame
    /// that cannot be cut, or the server stops it. Only fails the run on a
    /// rejection under `--on-error stop`.
    pub(super) async fn run(mut self) -> Result<()> {
        tracing::info!("{}: connected", Label(&self.source));
        let mut buf = BytesMut::with_capacity(READ_SIZE);
        let mut framer = Framer::new(
            self.shared.options.framing,
            self.shared.options.max_frame_bytes,
        );
        // Held while the unfinished frame is longer than FREE_BYTES.
        let mut reservation: Option<Reservation> = None;
        loop {
            let limit = match reservation {
                Some(_) => self.shared.budget.reserved_bytes(),
                None => FREE_BYTES,
            };
            // With a reservation the buffer never fills: the framer refuses
            // a frame before it does.
            if reservation.is_none() && buf.len() >= limit {
                match self.reserve().await {
                    Ok(granted) => {
                        reservation = Some(granted);
                        continue;
                    }
                    Err(ended) => return self.end(ended, &framer, &buf).await,
                }
            }
            // Never 0: a read into no room would look like the client's end.
            let room = limit.saturating_sub(buf.len()).clamp(1, READ_SIZE);
            if reservation.is_some() {
                make_room(&mut buf, room, limit);
            } else {
                // Room for a full read beside the unfinished frame, but no
                // more: asking for READ_SIZE on top of it would double the
                // buffer of every connection (BytesMut grows by doubling).
                buf.reserve(room);
            }
            match self.read(&mut buf, room).await {
                Read::Data => match self.take_frames(&mut framer, &mut buf).await? {
                    Flow::Go => {}
                    Flow::Close => return Ok(()),
                },
                ended => return self.end(ended, &framer, &buf).await,
            }
            if reservation.is_some() && buf.len() <= FREE_BYTES {
                reservation = None;
                // Give the frame-sized buffer back to the allocator.
                if buf.capacity() > 2 * READ_SIZE {
                    let mut small = BytesMut::with_capacity(READ_SIZE);
                    small.extend_from_slice(&buf);
                    buf = small;
                }
            }
        }
    }

    /// Waits for a reservation of the buffer budget without reading the
    /// socket, so TCP flow control holds the client back. Ends as a read
    /// would when the server stops reading, or when the client has sent
    /// nothing more for `--idle-timeout` (bytes waiting unread in the
    /// socket are not idleness: those are held back by us).
    async fn reserve(&mut self) -> Result<Reservation, Read> {
        let shared = self.shared.clone();
        if let Some(granted) = shared.budget.try_reserve() {
            return Ok(granted);
        }
        tracing::debug!(
            "{}: waiting for room in --max-buffered-bytes ({} bytes free) before reading on",
            Label(&self.source),
            shared.budget.available_bytes()
        );
        // One request throughout, so that it keeps its place in the queue.
        let granted = shared.budget.reserve();
        tokio::pin!(granted);
        loop {
            let idle = async {
                match shared.options.idle_timeout {
                    Some(idle) => tokio::time::sleep(idle).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = shared.stop_reading.cancelled() => return Err(Read::Stopped),
                granted = &mut granted => return Ok(granted),
                () = idle => {
                    let mut byte = [0u8; 1];
                    // Not ready: nothing has arrived since the last read.
                    match self.stream.peek(&mut byte).now_or_never() {
                        Some(Ok(0)) => return Err(Read::Eof),
                        Some(Ok(_)) => {}
                        Some(Err(error)) => return Err(Read::Failed(error)),
                        None => return Err(Read::Idle),
                    }
                }
            }
        }
    }

    /// Reads at most `room` bytes once, unless the server stops reading or
    /// the client stays silent for the idle timeout.
    async fn read(&mut self, buf: &mut BytesMut, room: usize) -> Read {
        let idle_timeout = self.shared.options.idle_timeout;
        let mut limited = buf.limit(room);
        let read = self.stream.read_buf(&mut limited);
        // Both futures are cancel-safe: a read that loses the race has read
        // nothing.
        let read_or_idle = async {
            match idle_timeout {
                Some(idle) => tokio::time::timeout(idle, read).await.ok(),
                None => Some(read.await),
            }
        };
        tokio::select! {
            biased;
            _ = self.shared.stop_reading.cancelled() => Read::Stopped,
            result = read_or_idle => match result {
                None => Read::Idle,
                Some(Ok(0)) => Read::Eof,
                Some(Ok(_)) => Read::Data,
                Some(Err(error)) => Read::Failed(error),
            },
        }
    }

    /// Takes every complete frame in `buf` into one batch and sends it
    /// (in several if it fills up); the unfinished frame stays in `buf`.
    async fn take_frames(&mut self, framer: &mut Framer, buf: &mut BytesMut) -> Result<Flow> {
        let mut batch = None;
        if let Content::Whole(decode) = &self.content {
            // Past the first frame (which may start with a BOM), whole
            // lines are taken as a run: one scan, one copy.
            if self.frames > 0 {
                let decode = decode.clone();
                let run = framer.line_run(buf, &mut self.newlines);
                if self.take_line_run(&mut batch, &decode, buf).await.is_err() {
                    return Ok(Flow::Close);
                }
                buf.advance(run);
            }
        }
        let mut frames = framer.frames(buf);
        let mut bad_frame = None;
        for frame in frames.by_ref() {
            let frame = match frame {
                Ok(frame) => frame,
                Err(error) => {
                    bad_frame = Some(error);
                    break;
                }
            };
            match self.take_frame(&mut batch, frame) {
                Ok(Flow::Go) => {}
                Ok(Flow::Close) => {
                    let _ = self.send(batch).await;
                    return Ok(Flow::Close);
                }
                // `--on-error stop`: the records before the bad frame are
                // read, so they go on before the run stops.
                Err(error) => {
                    let _ = self.send(batch).await;
                    return Err(error);
                }
            }
            if batch
                .as_ref()
                .is_some_and(|batch| self.shared.ctx.is_full(batch))
                && self.send(batch.take()).await.is_err()
            {
                return Ok(Flow::Close);
            }
        }
        let consumed = frames.consumed();
        // What came before a bad frame goes on before the rejection.
        if self.send(batch).await.is_err() {
            return Ok(Flow::Close);
        }
        if let Some(error) = bad_frame {
            let unfinished = framer.unfinished(&buf[consumed..]);
            let head = &unfinished[..unfinished.len().min(REJECTED_HEAD)];
            self.reject(head, &error.to_string())?;
            crate::warn_limited!("{}: closing the connection: {error}", Label(&self.source));
            return Ok(Flow::Close);
        }
        buf.advance(consumed);
        Ok(Flow::Go)
    }

    /// Takes the lines of `buf` that `self.newlines` ends (a run from
    /// [`Framer::line_run`]) into `batch`, sending it each time it fills.
    async fn take_line_run(
        &mut self,
        batch: &mut Option<RawBatch>,
        decode: &Decode,
        buf: &[u8],
    ) -> Result<(), Closed> {
        let mut newlines = std::mem::take(&mut self.newlines);
        let mut start = 0usize;
        let mut rest = &newlines[..];
        let batch_records = self.shared.ctx.batch_records;
        while !rest.is_empty() {
            let open = batch.get_or_insert_with(|| {
                // Room for the lines it will take, no more.
                let lines = batch_records.min(rest.len()).max(1);
                let bytes = rest[lines - 1] as usize + 1 - start;
                RawBatch::with_capacity(self.source.clone(), decode.clone(), lines, bytes)
            });
            let room = batch_records.saturating_sub(open.len()).max(1);
            let (run, later) = rest.split_at(room.min(rest.len()));
            open.push_lines(buf, start, run, self.frames + 1);
            self.frames += run.len() as u64;
            start = *run.last().expect("not empty") as usize + 1;
            rest = later;
            if self.shared.ctx.is_full(open) {
                self.send(batch.take()).await?;
            }
        }
        // One read's worth is the usual size; a huge buffer's is not kept.
        newlines.shrink_to(READ_SIZE / 16);
        self.newlines = newlines;
        Ok(())
    }

    /// Turns one frame into a record of `batch` (or into the CSV header).
    fn take_frame(&mut self, batch: &mut Option<RawBatch>, frame: &[u8]) -> Result<Flow> {
        self.frames += 1;
        let pos = self.frames;
        let frame = match pos {
            1 => frame.strip_prefix(BOM).unwrap_or(frame),
            _ => frame,
        };
        let new_batch = |decode: &Decode| RawBatch::new(self.source.clone(), decode.clone());
        match &mut self.content {
            Content::Whole(decode) => batch
                .get_or_insert_with(|| new_batch(decode))
                .push_record(frame, pos),
            Content::Csv { splitter, decode } => {
                let split = cpu::off_worker(frame.len(), cpu::ROW_BYTES, || splitter.split(frame));
                let cells = match split {
                    Ok(Some(cells)) => cells,
                    Ok(None) => return Ok(Flow::Go),
                    Err(reason) => {
                        reject(&self.shared, &self.source, pos, frame, &reason)?;
                        return Ok(Flow::Go);
                    }
                };
                match decode {
                    Some(decode) => {
                        let batch = batch.get_or_insert_with(|| new_batch(decode));
                        for cell in cells {
                            batch.push_field(cell);
                        }
                        batch.finish_record(pos);
                    }
                    // Renaming a huge header's names takes a while.
                    None => match cpu::off_worker(frame.len(), cpu::HEADER_BYTES, || {
                        CsvHeader::from_fields(cells)
                    }) {
                        Ok(header) => *decode = Some(Decode::Csv(Arc::new(header))),
                        Err(reason) => {
                            let reason = format!("bad CSV header: {reason}");
                            reject(&self.shared, &self.source, pos, frame, &reason)?;
                            crate::warn_limited!(
                                "{}: closing the connection: {reason}",
                                Label(&self.source)
                            );
                            return Ok(Flow::Close);
                        }
                    },
                }
            }
        }
        Ok(Flow::Go)
    }

    /// Handles how the connection ended; `buf` holds the unfinished frame.
    async fn end(mut self, ended: Read, framer: &Framer, buf: &[u8]) -> Result<()> {
        let source = self.source.clone();
        let label = Label(&source);
        let unfinished = framer.unfinished(buf);
        match ended {
            Read::Data => unreachable!("data is framed, not an end"),
            Read::Eof => {
                match framer.finish(buf) {
                    Ok(None) => {}
                    Ok(Some(last)) => {
                        let mut batch = None;
                        self.take_frame(&mut batch, last)?;
                        let _ = self.send(batch).await;
                    }
                    Err(error) => self.reject(unfinished, &error.to_string())?,
                }
                tracing::info!("{label}: closed by the client after {} frames", self.frames);
            }
            Read::Failed(error) => {
                if !buf.is_empty() {
                    let reason = format!("connection failed inside a frame: {error}");
                    self.reject(unfinished, &reason)?;
                }
                crate::warn_limited!("{label}: connection failed: {error}");
            }
            Read::Idle => {
                let idle = self.shared.options.idle_timeout.unwrap_or_default();
                if !buf.is_empty() {
                    let reason =
                        format!("connection idle for {idle:?} inside a frame (--idle-timeout)");
                    self.reject(unfinished, &reason)?;
                }
                tracing::info!("{label}: idle for {idle:?}: closing it (--idle-timeout)");
            }
            Read::Stopped => {
                let reason = self.shared.stop_reason();
                if reason == Some(StopReason::DrainTimeout) && !buf.is_empty() {
                    let reason = "connection still open at the drain timeout, inside a frame (--drain-timeout)";
                    self.reject(unfinished, reason)?;
                }
                let why = match reason {
                    Some(StopReason::DrainTimeout) => "the drain timeout passed",
                    Some(StopReason::PipelineClosed) => "the run is ending",
                    Some(StopReason::RunFailed) | None => "another connection failed the run",
                };
                tracing::info!("{label}: closed by the server: {why}");
            }
        }
        Ok(())
    }

    /// Sends a batch into the pipeline, waiting while it is full.
    async fn send(&self, batch: Option<RawBatch>) -> Result<(), Closed> {
        match batch {
            Some(batch) => self.shared.ctx.out.send(batch).await,
            None => Ok(()),
        }
    }

    /// Rejects the next (unfinished or oversize) frame.
    fn reject(&self, raw: &[u8], reason: &str) -> Result<()> {
        reject(&self.shared, &self.source, self.frames + 1, raw, reason)
    }
}

/// Rejects record `pos` of the connection `source`.
fn reject(shared: &Shared, source: &SourceInfo, pos: u64, raw: &[u8], reason: &str) -> Result<()> {
    // Never sent, but read all the same (`read` = written + rejected).
    shared.ctx.out.count_unsent(1);
    shared
        .ctx
        .rejects
        .reject(Location { source, pos }, raw, reason)
}

/// A connection in log lines: `127.0.0.1:4000 (conn 3)`.
struct Label<'a>(&'a SourceInfo);

impl fmt::Display for Label<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            SourceInfo::Tcp { peer, conn } => write!(f, "{peer} (conn {conn})"),
            other => write!(f, "{other:?}"),
        }
    }
}
