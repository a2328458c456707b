//! Length-delimited framing (`--framing length-delimited`): tokio-util's
//! [`LengthDelimitedCodec`] (a 4-byte big-endian length, then that many
//! bytes) behind a thin [`Decoder`] that reads the length first.
//!
//! Why not the codec alone: it fails the stream on a frame over its
//! `max_frame_length`, where an oversize frame must be rejected and
//! skipped with the connection going on; and once it has read a length
//! it reserves that many bytes in the buffer before they arrive, so every
//! client could make its connection allocate `--max-frame-bytes` outside
//! the `--max-buffered-bytes` budget by sending four bytes. So the codec
//! is handed only whole frames, and an oversize one is skipped here, as it
//! arrives, without being kept.

use bytes::{Buf, BytesMut};
use tokio_util::codec::{Decoder, LengthDelimitedCodec};

use super::framing::{Frame, FrameError, LENGTH_BYTES};

/// Cuts a byte stream into length-delimited frames of at most `max` bytes.
#[derive(Debug)]
pub struct LengthFrames {
    codec: LengthDelimitedCodec,
    max: usize,
    /// Bytes of an oversize frame still to be skipped.
    skip: u64,
}

impl LengthFrames {
    /// Frames of at most `max_frame_bytes` bytes (the prefix not counted).
    pub fn new(max_frame_bytes: usize) -> Self {
        let codec = LengthDelimitedCodec::builder()
            .length_field_length(LENGTH_BYTES)
            .max_frame_length(max_frame_bytes)
            .big_endian()
            .new_codec();
        LengthFrames {
            codec,
            max: max_frame_bytes,
            skip: 0,
        }
    }

    /// The unfinished frame in `buf` without its length prefix (nothing
    /// of it when the prefix itself is unfinished), if one is under way
    /// (the end of a frame being skipped was rejected already).
    pub fn unfinished<'a>(&self, buf: &'a [u8]) -> Option<&'a [u8]> {
        (self.skip == 0 && !buf.is_empty()).then(|| buf.get(LENGTH_BYTES..).unwrap_or_default())
    }
}

/// The length `buf`'s prefix announces; `buf` holds the whole prefix.
fn announced(buf: &[u8]) -> usize {
    let prefix: [u8; LENGTH_BYTES] = buf[..LENGTH_BYTES].try_into().expect("a whole prefix");
    u32::from_be_bytes(prefix) as usize
}

impl Decoder for LengthFrames {
    type Item = Frame;
    type Error = std::io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, Self::Error> {
        if self.skip > 0 {
            let here = usize::try_from(self.skip).map_or(buf.len(), |skip| skip.min(buf.len()));
            buf.advance(here);
            self.skip -= here as u64;
            if self.skip > 0 {
                return Ok(None);
            }
        }
        if buf.len() < LENGTH_BYTES {
            return Ok(None);
        }
        let len = announced(buf);
        if len > self.max {
            buf.advance(LENGTH_BYTES);
            let head = buf.split_to(len.min(buf.len()));
            self.skip = (len - head.len()) as u64;
            let error = FrameError::TooLong {
                len: Some(len as u64),
                max: self.max,
            };
            return Ok(Some(Frame::Oversize(error, head)));
        }
        if buf.len() < LENGTH_BYTES + len {
            return Ok(None);
        }
        Ok(self.codec.decode(buf)?.map(Frame::One))
    }

    /// The stream must not end inside a frame.
    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, Self::Error> {
        if let Some(frame) = self.decode(buf)? {
            return Ok(Some(frame));
        }
        // Skipping empties the buffer: what is left is a frame under way.
        if buf.is_empty() {
            return Ok(None);
        }
        let error = match buf.len() < LENGTH_BYTES {
            true => FrameError::Truncated {
                got: buf.len(),
                len: None,
            },
            false => FrameError::Truncated {
                got: buf.len() - LENGTH_BYTES,
                len: Some(announced(buf) as u64),
            },
        };
        let mut rest = buf.split();
        rest.advance(LENGTH_BYTES.min(rest.len()));
        Ok(Some(Frame::Truncated(error, rest)))
    }
}
