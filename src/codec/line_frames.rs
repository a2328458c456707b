//! Newline framing (`--framing newline`) as a tokio-util [`Decoder`]: each
//! item is every whole line in the buffer at once ([`Frame::Lines`]), so a
//! read's lines are cut with one `memrchr` and handed on as one chunk (a
//! `LinesCodec` item per line would cost a `String` each).
//!
//! A line over the limit is reported ([`Frame::Oversize`]) as soon as the
//! buffer shows it, with or without its `\n`, and the rest of it is
//! skipped up to its `\n` as it arrives, without being kept: a reader
//! never holds more than the limit plus one read.

use bytes::{Buf, BytesMut};
use tokio_util::codec::Decoder;

use super::framing::{Frame, FrameError};

/// Cuts a byte stream into runs of whole lines of at most `max` bytes
/// (their `\n` not counted).
#[derive(Debug, Clone)]
pub struct LineFrames {
    max: usize,
    /// How many bytes at the front of the buffer are known to hold no
    /// `\n`, so that a long line arriving in many reads is searched once.
    scanned: usize,
    /// The rest of an oversize line is still to be skipped.
    skipping: bool,
}

impl LineFrames {
    /// Lines of at most `max_frame_bytes` bytes.
    pub fn new(max_frame_bytes: usize) -> Self {
        LineFrames {
            max: max_frame_bytes,
            scanned: 0,
            skipping: false,
        }
    }

    /// The unfinished line in `buf`, if one is under way (the end of a
    /// line being skipped was rejected already).
    pub fn unfinished<'a>(&self, buf: &'a [u8]) -> Option<&'a [u8]> {
        (!self.skipping && !buf.is_empty()).then_some(buf)
    }

    fn too_long(&self) -> FrameError {
        FrameError::TooLong {
            len: None,
            max: self.max,
        }
    }

    /// Drops what `buf` holds of the line being skipped; true once its
    /// end is reached.
    fn skip(&mut self, buf: &mut BytesMut) -> bool {
        if !self.skipping {
            return true;
        }
        match memchr::memchr(b'\n', buf) {
            Some(at) => {
                buf.advance(at + 1);
                self.skipping = false;
                true
            }
            None => {
                buf.clear();
                false
            }
        }
    }

    /// The length of the lines at the front of `run` (whole lines) that
    /// fit the limit: up to the first line over it.
    fn fitting(&self, run: &[u8]) -> usize {
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', run) {
            if end - start > self.max {
                break;
            }
            start = end + 1;
        }
        start
    }
}

impl Decoder for LineFrames {
    type Item = Frame;
    type Error = std::io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, Self::Error> {
        if !self.skip(buf) {
            return Ok(None);
        }
        let searched = self.scanned.min(buf.len());
        let Some(last) = memchr::memrchr(b'\n', &buf[searched..]).map(|at| searched + at) else {
            if buf.len() > self.max {
                // Over the limit before its end arrived: it will never fit.
                self.scanned = 0;
                self.skipping = true;
                return Ok(Some(Frame::Oversize(self.too_long(), buf.split())));
            }
            self.scanned = buf.len();
            return Ok(None);
        };
        self.scanned = 0;
        // No line of a run as short as the limit can be over it: the usual
        // case (a read is 64 KiB, the limit 1 MiB) needs no look inside.
        let fitting = match last <= self.max {
            true => last + 1,
            false => self.fitting(&buf[..=last]),
        };
        if fitting > 0 {
            return Ok(Some(Frame::Lines(buf.split_to(fitting))));
        }
        let end = memchr::memchr(b'\n', buf).expect("the run ends with one");
        let line = buf.split_to(end);
        buf.advance(1);
        Ok(Some(Frame::Oversize(self.too_long(), line)))
    }

    /// The last line may lack its `\n`.
    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, Self::Error> {
        if let Some(frame) = self.decode(buf)? {
            return Ok(Some(frame));
        }
        Ok((!buf.is_empty()).then(|| Frame::One(buf.split())))
    }
}
