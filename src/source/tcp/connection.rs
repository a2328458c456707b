//! One client connection: read into a buffer, cut what arrived into
//! frames, and send that read's frames on as one batch right away (so
//! batches grow with the rate, and a record never waits for a full batch).
//! While the batch waits for room in the pipeline, or the unfinished frame
//! for room in the buffer budget, the socket is not read. A frame that
//! holds a share of the budget must end within `--frame-timeout`.
//!
//! The frames are cut by tokio-util decoders ([`FrameDecoder`]), driven
//! here over the connection's own buffer rather than through a
//! `FramedRead`: `FramedRead` reads again by itself whenever its decoder
//! has no whole frame, and grows its buffer as it likes, so it could not
//! stop between two reads to take a share of the budget (waiting unread),
//! cap a read at the room the budget leaves, or say where one read's
//! frames end (one batch per read). This loop is `FramedRead`'s, with
//! those three steps added.
//!
//! A CSV connection goes through the same loop; only how a frame is
//! taken differs (`frames`: [`Content::Csv`] takes each frame as a row,
//! with `csv_rows`).

mod csv_stream;
mod frames;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use futures::FutureExt;
use tokio::io::AsyncReadExt;
use tokio::time::Instant;

use super::budget::{Reservation, FREE_BYTES};
use super::counters::CloseReason;
use super::csv_rows::{reject, CsvRows};
use super::rate::{RateWatch, TooSlow};
use super::socket::Socket;
use super::{Shared, StopReason};
use crate::codec::{Format, FrameDecoder, Framing};
use crate::error::Result;
use crate::parts::Closed;
use crate::record::{self, Location, RawBatch, SourceInfo};

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

/// What frames turn into: the one place where a CSV connection differs
/// (see `frames`).
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
    /// The `--min-rate` window ended, the socket empty: to be judged.
    WindowEnd,
    /// The client sent less than `--min-rate` in a window.
    TooSlow(TooSlow),
}

/// Whether to go on reading after a batch of frames.
enum Flow {
    Go,
    /// The pipeline takes no more records.
    Close,
    /// The frames cannot be cut further.
    Failed(io::Error),
}

/// One accepted client.
pub(super) struct Connection {
    stream: Socket,
    source: Arc<SourceInfo>,
    shared: Arc<Shared>,
    content: Content,
    /// Frames taken so far: the number of the last record.
    frames: u64,
    /// Where the lines of the last line run end (reused from read to read).
    newlines: Vec<u32>,
    /// The `--min-rate` window under way.
    rate: Option<RateWatch>,
}

impl Connection {
    /// Connection number `conn` (1 for the first accepted), from `peer`,
    /// whose TLS client certificate names `subject`.
    pub(super) fn new(
        stream: Socket,
        peer: SocketAddr,
        conn: u64,
        subject: Option<Box<str>>,
        shared: Arc<Shared>,
    ) -> Self {
        let options = &shared.options;
        let content = match options.format {
            Format::Lines => Content::Whole(record::Content::Lines),
            Format::Jsonl => Content::Whole(record::Content::Jsonl),
            Format::Csv => Content::Csv(Box::new(CsvRows::new(options.delimiter, options.header))),
        };
        let rate = options.min_rate.map(RateWatch::new);
        Connection {
            stream,
            source: Arc::new(SourceInfo::Tcp {
                peer,
                conn,
                subject,
            }),
            shared,
            content,
            frames: 0,
            newlines: Vec::new(),
            rate,
        }
    }

    /// Serves the client until it closes, breaks, idles, sends a frame
    /// that cannot be cut, or the server stops it. Only fails the run on a
    /// rejection under `--on-error stop`.
    pub(super) async fn run(mut self) -> Result<()> {
        match self.source.as_ref() {
            SourceInfo::Tcp {
                subject: Some(subject),
                ..
            } => tracing::info!("connected over TLS as {subject}"),
            _ => tracing::info!("connected"),
        }
        let options = &self.shared.options;
        if options.format == Format::Csv && options.framing == Framing::Newline {
            return self.run_csv_stream().await;
        }
        let mut buf = BytesMut::with_capacity(READ_SIZE);
        let mut decoder = FrameDecoder::new(
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
                            "holds a share of --max-buffered-bytes for a frame over 64 KiB \
                             (--frame-timeout {frame_timeout:?} to end it)"
                        );
                        continue;
                    }
                    Err(ended) => return self.end(ended, &mut decoder, &mut buf).await,
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
            let len_before = buf.len();
            match self.read(&mut buf, room, frame_deadline).await {
                Read::WindowEnd => match self.rate.as_mut().map(RateWatch::next_window) {
                    Some(Err(slow)) => {
                        return self.end(Read::TooSlow(slow), &mut decoder, &mut buf).await
                    }
                    _ => continue,
                },
                Read::Data => {
                    if let Some(rate) = &mut self.rate {
                        rate.add(buf.len() - len_before);
                    }
                    match self.take_frames(&mut decoder, &mut buf).await? {
                        Flow::Go => {}
                        Flow::Close => return Ok(()),
                        Flow::Failed(error) => {
                            return self.end(Read::Failed(error), &mut decoder, &mut buf).await
                        }
                    }
                }
                ended => return self.end(ended, &mut decoder, &mut buf).await,
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
        // One request throughout, so that it keeps its place in the queue.
        let granted = frame_share(shared.clone());
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
        let window_end = self.rate.as_ref().map(RateWatch::ends);
        let window_end = async {
            match window_end {
                Some(ends) => tokio::time::sleep_until(ends).await,
                None => std::future::pending().await,
            }
        };
        // After the read: a window is judged only once the socket has
        // nothing more for us.
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
            () = window_end => Read::WindowEnd,
        }
    }

    /// Handles how the connection ended; `buf` holds the unfinished frame.
    async fn end(
        mut self,
        mut ended: Read,
        decoder: &mut FrameDecoder,
        buf: &mut BytesMut,
    ) -> Result<()> {
        if let Read::Eof = ended {
            if let Some(error) = self.take_last(decoder, buf).await? {
                ended = Read::Failed(error);
            }
        }
        let unfinished = decoder.unfinished(buf).map(|raw| (self.frames + 1, raw));
        self::ended(
            &self.shared,
            &self.source,
            ended,
            unfinished,
            (self.frames, "frames"),
        )
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

/// Says how a connection ended, rejecting the record it ended inside of
/// (`unfinished`: its position and bytes) where that loses it; `taken`
/// counts what the client sent, and names it.
fn ended(
    shared: &Shared,
    source: &SourceInfo,
    ended: Read,
    unfinished: Option<(u64, &[u8])>,
    taken: (u64, &str),
) -> Result<()> {
    let reject = |(pos, raw): (u64, &[u8]), reason: &str| reject(shared, source, pos, raw, reason);
    // The record cut by an end that is warned of: rejected without a
    // warning of its own, the end's one warning naming it (one line per
    // connection, rate-limited, where two would be, one of them not).
    let cut = |reason: &str| -> Result<String> {
        let Some((pos, raw)) = unfinished else {
            return Ok(String::new());
        };
        shared.ctx.out.count_unsent(1);
        let location = Location { source, pos };
        shared.ctx.rejects.reject_unwarned(location, raw, reason)?;
        Ok(format!(
            "; its unfinished record {pos} ({} bytes) rejected as cut, never written",
            raw.len()
        ))
    };
    match ended {
        Read::Data | Read::WindowEnd => unreachable!("data is framed, a window judged: not ends"),
        Read::Eof => {
            shared.counters.closed(CloseReason::Client);
            let (count, what) = taken;
            tracing::info!("closed by the client after {count} {what}");
        }
        // rustls's read fails so when the TCP stream ends with no TLS
        // close_notify before it: the client did not finish the session,
        // or someone on the path cut it (a truncation attack looks the
        // same), so the bytes read last may not be all the client sent.
        Read::Failed(error)
            if shared.options.tls.is_some() && error.kind() == io::ErrorKind::UnexpectedEof =>
        {
            shared.counters.closed(CloseReason::Failed);
            let why = "connection closed without TLS close_notify: the last record may be cut";
            let said = cut(why)?;
            crate::warn_limited!("{why}{said}");
        }
        Read::Failed(error) => {
            shared.counters.closed(CloseReason::Failed);
            let said = cut(&format!("connection failed inside a frame: {error}"))?;
            crate::warn_limited!("connection failed: {error}{said}");
        }
        Read::Idle => {
            shared.counters.closed(CloseReason::IdleTimeout);
            let idle = shared.options.idle_timeout.unwrap_or_default();
            if let Some(unfinished) = unfinished {
                let reason =
                    format!("connection idle for {idle:?} inside a frame (--idle-timeout)");
                reject(unfinished, &reason)?;
            }
            tracing::info!("idle for {idle:?}: closing it (--idle-timeout)");
        }
        Read::FrameTimeout => {
            shared.counters.closed(CloseReason::FrameTimeout);
            let timeout = shared.options.frame_timeout.unwrap_or_default();
            let reason = format!(
                "frame not finished within {timeout:?} of holding a share of \
                 --max-buffered-bytes (--frame-timeout)"
            );
            // The frame's position is the next one's even when nothing of
            // it is left to show.
            let (pos, raw) = unfinished.unwrap_or((taken.0 + 1, &[]));
            reject((pos, raw), &reason)?;
            crate::warn_limited!("closing the connection: {reason}");
        }
        Read::TooSlow(slow) => {
            shared.counters.closed(CloseReason::MinRate);
            let reason = slow.reason();
            let said = cut(&format!("connection closed inside a frame: it {reason}"))?;
            crate::warn_limited!("closing the connection: it {reason}{said}");
        }
        Read::Stopped => {
            shared.counters.closed(CloseReason::Stopped);
            let reason = shared.stop_reason();
            if let (Some(StopReason::DrainTimeout), Some(unfinished)) = (reason, unfinished) {
                let reason =
                    "connection still open at the drain timeout, inside a frame (--drain-timeout)";
                reject(unfinished, reason)?;
            }
            let why = match reason {
                Some(StopReason::DrainTimeout) => "the drain timeout passed",
                Some(StopReason::PipelineClosed) => "the run is ending",
                Some(StopReason::RunFailed) | None => "another connection failed the run",
            };
            tracing::info!("closed by the server: {why}");
        }
    }
    Ok(())
}

/// A share of `--max-buffered-bytes` for a frame (or CSV row) past 64
/// KiB: at once when one is free, else once the connections ahead in line
/// have theirs, warning (at most once a second) that some wait.
pub(super) async fn frame_share(shared: Arc<Shared>) -> Reservation {
    if let Some(granted) = shared.budget.try_reserve() {
        return granted;
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
    shared.budget.reserve().await
}
