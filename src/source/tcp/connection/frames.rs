//! A connection's frames into batches: every item the decoder cuts from a
//! read goes into one batch (sent as it fills, and once the read's frames
//! are taken). Whole lines go in as one copy; a CSV connection takes each
//! frame as a row (`csv_rows`), which is all it changes here.

use std::io;

use bytes::BytesMut;
use tokio_util::codec::Decoder;

use super::{Connection, Content, Flow, READ_SIZE};
use crate::codec::{Frame, FrameDecoder};
use crate::error::Result;
use crate::parts::Closed;
use crate::record::{Content as RecordContent, RawBatch};
use crate::source::bom::BOM;
use crate::source::tcp::csv_rows::reject;

/// How much of an oversize frame a rejection shows.
const REJECTED_HEAD: usize = 256;

impl Connection {
    /// Takes every whole frame in `buf` into one batch and sends it (in
    /// several if it fills up); the unfinished frame stays in `buf`.
    pub(super) async fn take_frames(
        &mut self,
        decoder: &mut FrameDecoder,
        buf: &mut BytesMut,
    ) -> Result<Flow> {
        let mut batch = None;
        loop {
            let flow = match decoder.decode(buf) {
                Ok(Some(frame)) => self.take(&mut batch, frame).await?,
                Ok(None) => break,
                Err(error) => Flow::Failed(error),
            };
            match flow {
                Flow::Go => {}
                Flow::Close => return Ok(Flow::Close),
                Flow::Failed(error) => {
                    let _ = self.send(batch).await;
                    return Ok(Flow::Failed(error));
                }
            }
        }
        match self.send(batch).await {
            Ok(()) => Ok(Flow::Go),
            Err(Closed) => Ok(Flow::Close),
        }
    }

    /// Takes one item of the decoder into `batch`, sending it each time it
    /// fills.
    async fn take(&mut self, batch: &mut Option<RawBatch>, frame: Frame) -> Result<Flow> {
        let taken = match frame {
            Frame::Lines(run) => return self.take_run(batch, &run).await,
            Frame::One(frame) => self.take_frame(batch, &frame),
            // The rest of an oversize frame is skipped as it comes, and
            // the connection goes on with the next one.
            Frame::Oversize(error, head) => {
                self.frames += 1;
                let head = &head[..head.len().min(REJECTED_HEAD)];
                let mut reason = error.to_string();
                if let Content::Csv(rows) = &mut self.content {
                    rows.oversize(&self.source, self.frames, &mut reason);
                }
                reject(&self.shared, &self.source, self.frames, head, &reason)
            }
            Frame::Truncated(error, rest) => self.reject(&rest, &error.to_string()),
        };
        self.taken(batch, taken).await
    }

    /// Sends `batch` once it is full; under `--on-error stop`, a failed
    /// frame (`taken`) sends the records before it, then stops the run.
    async fn taken(&self, batch: &mut Option<RawBatch>, taken: Result<()>) -> Result<Flow> {
        if let Err(error) = taken {
            let _ = self.send(batch.take()).await;
            return Err(error);
        }
        if batch
            .as_ref()
            .is_some_and(|batch| self.shared.ctx.is_full(batch))
            && self.send(batch.take()).await.is_err()
        {
            return Ok(Flow::Close);
        }
        Ok(Flow::Go)
    }

    /// Takes a run of whole lines: as one copy when each line is a record
    /// as it is, else one CSV row at a time.
    async fn take_run(&mut self, batch: &mut Option<RawBatch>, run: &[u8]) -> Result<Flow> {
        let decode = match &self.content {
            Content::Whole(decode) => decode.clone(),
            Content::Csv(_) => {
                let mut start = 0;
                for end in memchr::memchr_iter(b'\n', run) {
                    let taken = self.take_frame(batch, &run[start..end]);
                    start = end + 1;
                    match self.taken(batch, taken).await? {
                        Flow::Go => {}
                        other => return Ok(other),
                    }
                }
                return Ok(Flow::Go);
            }
        };
        match self.take_line_run(batch, &decode, run).await {
            Ok(()) => Ok(Flow::Go),
            Err(Closed) => Ok(Flow::Close),
        }
    }

    /// Takes the whole lines of `run` into `batch`, sending it each time
    /// it fills.
    async fn take_line_run(
        &mut self,
        batch: &mut Option<RawBatch>,
        decode: &RecordContent,
        run: &[u8],
    ) -> Result<(), Closed> {
        let mut newlines = std::mem::take(&mut self.newlines);
        // Not `memchr_iter`: one call per line costs it two to three times
        // as long on lines of 20 to 60 bytes.
        crate::scan::find_newlines(run, &mut newlines);
        let mut start = match self.frames {
            0 if run.starts_with(&BOM) => BOM.len(),
            _ => 0,
        };
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
            let (lines, later) = rest.split_at(room.min(rest.len()));
            open.push_lines(run, start, lines, self.frames + 1);
            self.frames += lines.len() as u64;
            start = *lines.last().expect("not empty") as usize + 1;
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
            1 => frame.strip_prefix(&BOM[..]).unwrap_or(frame),
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

    /// Takes what the end of the stream leaves in `buf`: the last line
    /// without its `\n`, or a truncated frame; an error if it cannot be cut.
    pub(super) async fn take_last(
        &mut self,
        decoder: &mut FrameDecoder,
        buf: &mut BytesMut,
    ) -> Result<Option<io::Error>> {
        let mut batch = None;
        loop {
            let frame = match decoder.decode_eof(buf) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(error) => return Ok(Some(error)),
            };
            if !matches!(self.take(&mut batch, frame).await?, Flow::Go) {
                break;
            }
        }
        let _ = self.send(batch).await;
        Ok(None)
    }
}
