//! Cutting a byte stream into frames (`--framing`): lines ending in `\n`
//! ([`LineFrames`]), or frames behind a 4-byte big-endian length prefix
//! ([`LengthFrames`], tokio-util's `LengthDelimitedCodec` with its
//! defaults). Both are tokio-util [`Decoder`]s; [`FrameDecoder`] is the
//! one `--framing` picks.
//!
//! Every frame is bounded: a frame longer than the limit is reported
//! ([`Frame::Oversize`]) as soon as the buffer shows it, so a reader never
//! holds more than the limit plus one read. The rest of that frame is then
//! skipped (to the next `\n`, or past the length its prefix announced)
//! without being kept, and the frames after it are cut as usual: an
//! oversize frame is an item, not an error, since the stream goes on.

use std::fmt;

use bytes::BytesMut;
use tokio_util::codec::Decoder;

pub use super::length_frames::LengthFrames;
pub use super::line_frames::LineFrames;

/// How a byte stream is cut into frames (`--framing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Framing {
    /// Each frame ends with `\n`; the last one may lack it when the stream ends.
    #[default]
    Newline,
    /// Each frame is a 4-byte big-endian length, then that many bytes.
    LengthDelimited,
}

/// Bytes in the length prefix of a length-delimited frame.
pub(super) const LENGTH_BYTES: usize = 4;

/// Why a stream cannot be cut further; the text is the rejection reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// A frame is longer than the limit. `len` is its announced length
    /// (length-delimited); a line has none, only the limit it ran past.
    TooLong {
        /// The length the prefix announced, if there was one.
        len: Option<u64>,
        /// The limit (`--max-frame-bytes`).
        max: usize,
    },
    /// The stream ended inside a length prefix (`len` is `None`) or inside
    /// a frame of `len` bytes; `got` bytes of it had arrived.
    Truncated {
        /// Bytes of the prefix or frame that arrived.
        got: usize,
        /// The frame's announced length, once its prefix is complete.
        len: Option<u64>,
    },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooLong { len: None, max } => {
                write!(f, "frame longer than {max} bytes (--max-frame-bytes)")
            }
            FrameError::TooLong {
                len: Some(len),
                max,
            } => write!(
                f,
                "frame of {len} bytes is longer than {max} bytes (--max-frame-bytes)"
            ),
            FrameError::Truncated { got, len: None } => write!(
                f,
                "connection ended inside a frame's length prefix ({got} of {LENGTH_BYTES} bytes)"
            ),
            FrameError::Truncated {
                got,
                len: Some(len),
            } => write!(f, "connection ended inside a frame ({got} of {len} bytes)"),
        }
    }
}

/// What a [`FrameDecoder`] cuts from the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// Whole lines, each with its `\n`, none over the limit: every line
    /// the buffer held (newline framing), to be taken as one run.
    Lines(BytesMut),
    /// One frame: a length-delimited frame without its prefix, or the
    /// last line of a stream that ended without its `\n`.
    One(BytesMut),
    /// A frame over the limit, and its first bytes that were in the buffer
    /// (without a length prefix), for the rejection; the rest is skipped.
    Oversize(FrameError, BytesMut),
    /// The stream ended inside a length-delimited frame: why, and the
    /// bytes of it that arrived (without a length prefix).
    Truncated(FrameError, BytesMut),
}

/// The decoder `--framing` picks.
#[derive(Debug)]
pub enum FrameDecoder {
    /// `--framing newline`.
    Lines(LineFrames),
    /// `--framing length-delimited`.
    Length(LengthFrames),
}

impl FrameDecoder {
    /// A decoder for `framing` that refuses frames over `max_frame_bytes`.
    pub fn new(framing: Framing, max_frame_bytes: usize) -> Self {
        match framing {
            Framing::Newline => FrameDecoder::Lines(LineFrames::new(max_frame_bytes)),
            Framing::LengthDelimited => FrameDecoder::Length(LengthFrames::new(max_frame_bytes)),
        }
    }

    /// The unfinished frame in `buf` (what is left once the frames are
    /// taken), as a rejection shows it, if one is under way.
    pub fn unfinished<'a>(&self, buf: &'a [u8]) -> Option<&'a [u8]> {
        match self {
            FrameDecoder::Lines(lines) => lines.unfinished(buf),
            FrameDecoder::Length(length) => length.unfinished(buf),
        }
    }
}

impl Decoder for FrameDecoder {
    type Item = Frame;
    type Error = std::io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, Self::Error> {
        match self {
            FrameDecoder::Lines(lines) => lines.decode(buf),
            FrameDecoder::Length(length) => length.decode(buf),
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, Self::Error> {
        match self {
            FrameDecoder::Lines(lines) => lines.decode_eof(buf),
            FrameDecoder::Length(length) => length.decode_eof(buf),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(bytes: &[u8]) -> String {
        String::from_utf8_lossy(bytes).into_owned()
    }

    /// Every frame `decoder` cuts from `buf` now: a run of lines one by
    /// one, an oversize frame as `Err((error, head))`.
    fn decode_all(
        decoder: &mut FrameDecoder,
        buf: &mut BytesMut,
    ) -> Vec<Result<String, (FrameError, String)>> {
        let mut out = Vec::new();
        while let Some(frame) = decoder.decode(buf).unwrap() {
            match frame {
                Frame::Lines(run) => {
                    assert_eq!(run.last(), Some(&b'\n'));
                    let lines = run[..run.len() - 1].split(|&byte| byte == b'\n');
                    out.extend(lines.map(|line| Ok(text(line))));
                }
                Frame::One(frame) => out.push(Ok(text(&frame))),
                Frame::Oversize(error, head) => out.push(Err((error, text(&head)))),
                Frame::Truncated(..) => panic!("only at the end of the stream"),
            }
        }
        out
    }

    /// Feeds `chunks` as successive reads; returns the frames (as text),
    /// the error if one came, and what was left unframed.
    fn feed(
        decoder: &mut FrameDecoder,
        chunks: &[&[u8]],
    ) -> (Vec<String>, Option<FrameError>, Vec<u8>) {
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            let mut error = None;
            for frame in decode_all(decoder, &mut buf) {
                match frame {
                    Ok(frame) => frames.push(frame),
                    Err((e, _)) => error = Some(e),
                }
            }
            if error.is_some() {
                return (frames, error, buf.to_vec());
            }
        }
        (frames, None, buf.to_vec())
    }

    /// What the unfinished `rest` amounts to when the stream ends cleanly.
    fn finish(decoder: &mut FrameDecoder, rest: &[u8]) -> Result<Option<Vec<u8>>, FrameError> {
        let mut buf = BytesMut::from(rest);
        let last = match decoder.decode_eof(&mut buf).unwrap() {
            None => Ok(None),
            Some(Frame::One(last)) => Ok(Some(last.to_vec())),
            Some(Frame::Truncated(error, _)) => Err(error),
            Some(other) => panic!("not an end: {other:?}"),
        };
        assert_eq!(decoder.decode_eof(&mut buf).unwrap(), None);
        last
    }

    fn length_frame(body: &[u8]) -> Vec<u8> {
        let mut frame = (body.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(body);
        frame
    }

    #[test]
    fn lines_split_across_reads() {
        let mut decoder = FrameDecoder::new(Framing::Newline, 100);
        let (frames, error, rest) = feed(&mut decoder, &[b"ab", b"c\nd\n\nef", b"g\r\nh"]);
        assert_eq!(frames, ["abc", "d", "", "efg\r"]);
        assert_eq!(error, None);
        assert_eq!(rest, b"h");
        assert_eq!(finish(&mut decoder, &rest), Ok(Some(b"h".to_vec())));
        assert_eq!(finish(&mut decoder, b""), Ok(None));
    }

    #[test]
    fn a_line_may_be_exactly_the_limit_but_not_longer() {
        let mut decoder = FrameDecoder::new(Framing::Newline, 3);
        let (frames, error, _) = feed(&mut decoder, &[b"abc", b"\nabcd\n"]);
        assert_eq!(frames, ["abc"]);
        assert_eq!(error, Some(FrameError::TooLong { len: None, max: 3 }));
    }

    #[test]
    fn an_endless_line_fails_before_its_end_arrives() {
        let mut decoder = FrameDecoder::new(Framing::Newline, 4);
        let (frames, error, rest) = feed(&mut decoder, &[b"ok\nabc", b"de", b"never read"]);
        assert_eq!(frames, ["ok"]);
        assert_eq!(error, Some(FrameError::TooLong { len: None, max: 4 }));
        // Taken to be skipped, not kept.
        assert_eq!(rest, b"");
    }

    #[test]
    fn a_line_run_stops_before_an_overlong_line() {
        let mut decoder = FrameDecoder::new(Framing::Newline, 4);
        let buf = b"ab\n\nabcd\nabcde\nx\nunfinished";
        let mut run = BytesMut::from(&buf[..]);
        let Some(Frame::Lines(lines)) = decoder.decode(&mut run).unwrap() else {
            panic!("a run of lines first");
        };
        assert_eq!(lines.len(), 9);
        let newlines: Vec<usize> = memchr::memchr_iter(b'\n', &lines).collect();
        assert_eq!(newlines, vec![2, 3, 8]);
        let (frames, error, rest) = feed(&mut decoder, &[&buf[lines.len()..]]);
        // The overlong line is reported and skipped; framing goes on (and
        // skips the unfinished line too, already over the limit).
        assert_eq!(frames, ["x"]);
        assert_eq!(error, Some(FrameError::TooLong { len: None, max: 4 }));
        assert_eq!(rest, b"");
        let mut decoder = FrameDecoder::new(Framing::LengthDelimited, 4);
        assert_eq!(
            decoder.decode(&mut BytesMut::from(&b"ab\n"[..])).unwrap(),
            None
        );
    }

    #[test]
    fn length_delimited_frames_across_reads() {
        let mut decoder = FrameDecoder::new(Framing::LengthDelimited, 100);
        let mut stream = length_frame(b"one\ntwo");
        stream.extend(length_frame(b""));
        stream.extend(length_frame(b"three"));
        let (head, tail) = stream.split_at(2);
        let (middle, tail) = tail.split_at(9);
        let (frames, error, rest) = feed(&mut decoder, &[head, middle, tail, &[0, 0]]);
        assert_eq!(frames, ["one\ntwo", "", "three"]);
        assert_eq!(error, None);
        assert_eq!(rest, [0, 0]);
        assert_eq!(
            finish(&mut decoder, &rest),
            Err(FrameError::Truncated { got: 2, len: None })
        );
        assert_eq!(
            finish(&mut decoder, &[0, 0, 0, 9, b'a']),
            Err(FrameError::Truncated {
                got: 1,
                len: Some(9)
            })
        );
        assert_eq!(decoder.unfinished(&[0, 0, 0, 9, b'a']), Some(&b"a"[..]));
        assert_eq!(decoder.unfinished(&[0, 0]), Some(&b""[..]));
        assert_eq!(decoder.unfinished(&[]), None);
    }

    #[test]
    fn an_oversize_length_fails_at_its_prefix() {
        let mut decoder = FrameDecoder::new(Framing::LengthDelimited, 5);
        let mut stream = length_frame(b"12345");
        stream.extend_from_slice(&6u32.to_be_bytes());
        let (frames, error, _) = feed(&mut decoder, &[&stream]);
        assert_eq!(frames, ["12345"]);
        assert_eq!(
            error,
            Some(FrameError::TooLong {
                len: Some(6),
                max: 5
            })
        );
    }

    #[test]
    fn a_length_prefix_takes_no_memory_before_its_frame_arrives() {
        let mut decoder = FrameDecoder::new(Framing::LengthDelimited, 1 << 20);
        let mut buf = BytesMut::with_capacity(64);
        buf.extend_from_slice(&(1u32 << 20).to_be_bytes());
        buf.extend_from_slice(b"zz");
        assert_eq!(decoder.decode(&mut buf).unwrap(), None);
        assert!(buf.capacity() < 1024, "{}", buf.capacity());
    }

    /// Every frame and oversize head of `chunks` fed as successive reads.
    fn feed_all(decoder: &mut FrameDecoder, chunks: &[&[u8]]) -> Vec<Result<String, String>> {
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            let frames = decode_all(decoder, &mut buf).into_iter();
            out.extend(
                frames.map(|frame| frame.map_err(|(error, head)| format!("{error}: {head}"))),
            );
        }
        assert_eq!(finish(decoder, &buf), Ok(None));
        out
    }

    #[test]
    fn an_oversize_line_is_skipped_to_its_end_and_framing_goes_on() {
        let mut decoder = FrameDecoder::new(Framing::Newline, 4);
        let got = feed_all(
            &mut decoder,
            &[b"ok\nabcdef", b"gh", b"ij\nnext\nabcdefg\nlast\n"],
        );
        let too_long = "frame longer than 4 bytes (--max-frame-bytes)";
        assert_eq!(
            got,
            [
                Ok("ok".into()),
                Err(format!("{too_long}: abcdef")),
                Ok("next".into()),
                Err(format!("{too_long}: abcdefg")),
                Ok("last".into()),
            ]
        );
        let mut decoder = FrameDecoder::new(Framing::Newline, 4);
        let _ = feed_all(&mut decoder, &[b"abcdef"]);
        // A run never starts inside a frame being skipped.
        assert_eq!(decoder.unfinished(b"xy"), None);
        let mut buf = BytesMut::from(&b"xy\nz\n"[..]);
        assert_eq!(decode_all(&mut decoder, &mut buf), [Ok("z".into())]);
    }

    #[test]
    fn an_oversize_length_is_skipped_and_framing_goes_on() {
        let mut decoder = FrameDecoder::new(Framing::LengthDelimited, 3);
        let mut stream = length_frame(b"abcdefgh");
        stream.extend(length_frame(b"ok"));
        let (head, tail) = stream.split_at(7);
        let got = feed_all(&mut decoder, &[head, tail, &length_frame(b"end")]);
        assert_eq!(
            got,
            [
                Err("frame of 8 bytes is longer than 3 bytes (--max-frame-bytes): abc".into()),
                Ok("ok".into()),
                Ok("end".into()),
            ]
        );
    }

    #[test]
    fn errors_read_as_reasons() {
        let reasons = [
            FrameError::TooLong { len: None, max: 10 },
            FrameError::TooLong {
                len: Some(11),
                max: 10,
            },
            FrameError::Truncated { got: 2, len: None },
            FrameError::Truncated {
                got: 2,
                len: Some(7),
            },
        ]
        .map(|error| error.to_string());
        assert_eq!(
            reasons,
            [
                "frame longer than 10 bytes (--max-frame-bytes)",
                "frame of 11 bytes is longer than 10 bytes (--max-frame-bytes)",
                "connection ended inside a frame's length prefix (2 of 4 bytes)",
                "connection ended inside a frame (2 of 7 bytes)",
            ]
        );
    }
}
