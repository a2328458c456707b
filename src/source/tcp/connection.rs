//! One client connection: read into a buffer, cut what arrived into
//! frames, and send that read's frames on as one batch right away (so
//! batches grow with the rate, and a record never waits for a full batch).
//! While the batch waits for room in the pipeline, or the unfinished frame
//! for room in the buffer budget, the socket is not read. A frame that
//! holds a share of the budget must end within `--frame-timeout`.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, BufMut, BytesMut};
use futures::FutureExt;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::budget::{Reservation, FREE_BYTES};
use super::csv_rows::{reject, CsvRows, Label};
use super::{Shared, StopReason};
use crate::codec::{Format, Framer};
use crate::error::Result;
use crate::parts::Closed;
use crate::record::{self, RawBatch, SourceInfo};

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
    Whole(record::Content),
    /// Each frame is one CSV row. Boxed: csv-core's reader is a few
    /// kilobytes of tables.
    Csv(Box<CsvRows>),
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
    /// The unfinished frame held a share of the budget for `--frame-timeout`.
    FrameTimeout,
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
            Format::Lines => Content::Whole(record::Content::Lines),
            Format::Jsonl => Content::Whole(record::Content::Jsonl),
            Format::Csv => Content::Csv(Box::new(CsvRows::new(options.delimiter, options.header))),
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
        // When the unfinished frame must end by, while it holds a reservation.
        let mut frame_deadline: Option<Instant> = None;
        let frame_timeout = self.shared.options.frame_timeout;
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
                        frame_deadline = frame_timeout.map(|timeout| Instant::now() + timeout);
                        tracing::debug!(
                            "{}: holds a share of --max-buffered-bytes for a frame over 64 KiB \
                             (--frame-timeout {frame_timeout:?} to end it)",
                            Label(&self.source)
                        );
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
            let frames_before = self.frames;
            match self.read(&mut buf, room, frame_deadline).await {
                Read::Data => match self.take_frames(&mut framer, &mut buf).await? {
                    Flow::Go => {}
                    Flow::Close => return Ok(()),
                },
                ended => return self.end(ended, &framer, &buf).await,
            }
            // A frame ended: the next one gets its own time.
            if reservation.is_some() && self.frames != frames_before {
                frame_deadline = frame_timeout.map(|timeout| Instant::now() + timeout);
            }
            if reservation.is_some() && buf.len() <= FREE_BYTES {
                reservation = None;
                frame_deadline = None;
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
        let (_waiting, waiting) = shared.budget.waiting();
        crate::warn_limited!(
            "{waiting} connection(s) waiting for room in --max-buffered-bytes ({} bytes), \
             held by unfinished frames over 64 KiB and CSV headers: raise it, or lower \
             --max-frame-bytes; a frame holds its share for at most --frame-timeout ({})",
            shared.budget.total_bytes(),
            match shared.options.frame_timeout {
                Some(timeout) => format!("{timeout:?}"),
                None => "no limit".into(),
            }
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

    /// Reads at most `room` bytes once, unless the server stops reading,
    /// the client stays silent for the idle timeout, or `frame_deadline`
    /// passes.
    async fn read(
        &mut self,
        buf: &mut BytesMut,
        room: usize,
        frame_deadline: Option<Instant>,
    ) -> Read {
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
        let frame_timeout = async {
            match frame_deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = self.shared.stop_reading.cancelled() => Read::Stopped,
            () = frame_timeout => Read::FrameTimeout,
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
        for frame in frames.by_ref() {
            let taken = match frame {
                Ok(frame) => self.take_frame(&mut batch, frame),
                // The rest of an oversize frame is skipped as it comes, and
                // the connection goes on with the next one.
                Err((error, head)) => {
                    self.frames += 1;
                    let head = &head[..head.len().min(REJECTED_HEAD)];
                    let mut reason = error.to_string();
                    if let Content::Csv(rows) = &mut self.content {
                        rows.oversize(&self.source, &mut reason);
                    }
                    reject(&self.shared, &self.source, self.frames, head, &reason)
                }
            };
            // `--on-error stop`: the records before the bad frame are read,
            // so they go on before the run stops.
            if let Err(error) = taken {
                let _ = self.send(batch).await;
                return Err(error);
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
        if self.send(batch).await.is_err() {
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
        decode: &record::Content,
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
    fn take_frame(&mut self, batch: &mut Option<RawBatch>, frame: &[u8]) -> Result<()> {
        self.frames += 1;
        let pos = self.frames;
        let frame = match pos {
            1 => frame.strip_prefix(BOM).unwrap_or(frame),
            _ => frame,
        };
        match &mut self.content {
            Content::Whole(decode) => {
                batch
                    .get_or_insert_with(|| RawBatch::new(self.source.clone(), decode.clone()))
                    .push_record(frame, pos);
                Ok(())
            }
            Content::Csv(rows) => rows.take(&self.shared, &self.source, pos, frame, batch),
        }
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
            Read::FrameTimeout => {
                let timeout = self.shared.options.frame_timeout.unwrap_or_default();
                let reason = format!(
                    "frame not finished within {timeout:?} of holding a share of \
                     --max-buffered-bytes (--frame-timeout)"
                );
                self.reject(unfinished, &reason)?;
                crate::warn_limited!("{label}: closing the connection: {reason}");
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
