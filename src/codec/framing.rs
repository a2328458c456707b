//! Cutting a byte stream into frames (`--framing`): lines ending in `\n`,
//! or frames behind a 4-byte big-endian length prefix (the layout of
//! tokio-util's `LengthDelimitedCodec` with its defaults).
//!
//! The [`Framer`] works on the reader's buffer in place and hands out
//! frames as slices of it, so framing costs no allocation and no reference
//! count per frame (tokio-util's `LinesCodec` makes a `String` per line,
//! `LengthDelimitedCodec` a `BytesMut` per frame). Every frame is bounded:
//! a frame longer than the limit is an error as soon as the buffer shows
//! it, so a reader never holds more than the limit plus one read. The
//! rest of that frame is then skipped (to the next `\n`, or past the
//! length its prefix announced) without being kept, and the frames after
//! it are cut as usual.

use std::fmt;

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
const LENGTH_BYTES: usize = 4;

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

/// The rest of an oversize frame, still to be skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Skip {
    /// Up to and with the next `\n`.
    Line,
    /// This many more bytes.
    Bytes(u64),
}

/// A frame over the limit: why, and the first bytes of it that are in the
/// buffer (without a length prefix), for the rejection.
pub type Oversize<'a> = (FrameError, &'a [u8]);

/// Finds frames in a growing buffer. The caller reads into the buffer,
/// takes the complete frames with [`Framer::frames`], drops the bytes
/// they used from the front, and reads again; the unfinished frame stays
/// at the front.
#[derive(Debug, Clone)]
pub struct Framer {
    framing: Framing,
    max_frame_bytes: usize,
    /// Newline framing: how many bytes of the unfinished line at the front
    /// of the buffer were already searched for `\n` (so a long line that
    /// arrives in many reads is searched once, not once per read).
    scanned: usize,
    /// What is left of an oversize frame being skipped.
    skip: Option<Skip>,
}

impl Framer {
    /// A framer for `framing` that refuses frames over `max_frame_bytes`.
    pub fn new(framing: Framing, max_frame_bytes: usize) -> Self {
        Framer {
            framing,
            max_frame_bytes,
            scanned: 0,
            skip: None,
        }
    }

    /// The complete frames at the front of `buf`, in order; a frame over
    /// the limit comes as an error, and its rest (in `buf` and in later
    /// reads) is skipped. Once done, [`Frames::consumed`] says how many bytes the frames used: drop
    /// those from the front of `buf` before the next call, and only append
    /// to it otherwise.
    pub fn frames<'a>(&'a mut self, buf: &'a [u8]) -> Frames<'a> {
        Frames {
            framer: self,
            buf,
            consumed: 0,
        }
    }

    /// Newline framing, many lines at once: the length of the run of
    /// complete lines at the front of `buf` (up to its last `\n`), with the
    /// offset of each line's `\n` in `newlines`. The run stops before a line
    /// over the limit, which [`Framer::frames`] then reports. The caller
    /// takes the whole run: it drops that many bytes from the front of
    /// `buf` before framing again. Length-delimited framing has no runs (0).
    pub fn line_run(&mut self, buf: &[u8], newlines: &mut Vec<u32>) -> usize {
        newlines.clear();
        if self.framing != Framing::Newline || self.skip.is_some() {
            return 0;
        }
        // The first `scanned` bytes are known to hold no `\n`.
        let searched = self.scanned.min(buf.len());
        let Some(last) = memchr::memrchr(b'\n', &buf[searched..]).map(|at| searched + at) else {
            return 0;
        };
        crate::scan::find_newlines(&buf[..=last], newlines);
        let mut start = 0usize;
        let fitting = newlines
            .iter()
            .take_while(|&&end| {
                let fits = end as usize - start <= self.max_frame_bytes;
                start = end as usize + 1;
                fits
            })
            .count();
        newlines.truncate(fitting);
        let len = newlines.last().map_or(0, |&end| end as usize + 1);
        if len > 0 {
            self.scanned = 0;
        }
        len
    }

    /// What the unfinished frame `rest` (what is left once the frames are
    /// taken) amounts to when the stream ends cleanly: the last line of
    /// newline framing even without its `\n` (none when `rest` is empty),
    /// or, for length-delimited framing, a truncated frame.
    pub fn finish<'a>(&self, rest: &'a [u8]) -> Result<Option<&'a [u8]>, FrameError> {
        // The end of a frame being skipped: it was rejected already.
        if rest.is_empty() || self.skip.is_some() {
            return Ok(None);
        }
        match self.framing {
            // `frames` already refused an unfinished line over the limit.
            Framing::Newline => Ok(Some(rest)),
            Framing::LengthDelimited if rest.len() < LENGTH_BYTES => Err(FrameError::Truncated {
                got: rest.len(),
                len: None,
            }),
            Framing::LengthDelimited => Err(FrameError::Truncated {
                got: rest.len() - LENGTH_BYTES,
                len: Some(u64::from(prefix(rest))),
            }),
        }
    }

    /// The bytes of the unfinished frame `rest`, without its length prefix:
    /// what a rejection of it shows.
    pub fn unfinished<'a>(&self, rest: &'a [u8]) -> &'a [u8] {
        match self.framing {
            Framing::Newline => rest,
            Framing::LengthDelimited => rest.get(LENGTH_BYTES..).unwrap_or_default(),
        }
    }
}

/// The length a length-delimited frame announces; `buf` holds its prefix.
fn prefix(buf: &[u8]) -> u32 {
    u32::from_be_bytes(buf[..LENGTH_BYTES].try_into().expect("4 bytes"))
}

/// The complete frames at the front of a buffer; see [`Framer::frames`].
#[derive(Debug)]
pub struct Frames<'a> {
    framer: &'a mut Framer,
    buf: &'a [u8],
    consumed: usize,
}

impl<'a> Frames<'a> {
    /// Bytes at the front of the buffer used by the frames handed out.
    pub fn consumed(&self) -> usize {
        self.consumed
    }

    /// Drops what is in the buffer of a frame being skipped; true once
    /// its end is reached.
    fn skip(&mut self) -> bool {
        let rest = &self.buf[self.consumed..];
        let (used, done) = match self.framer.skip {
            None => return true,
            Some(Skip::Line) => match memchr::memchr(b'\n', rest) {
                Some(at) => (at + 1, true),
                None => (rest.len(), false),
            },
            Some(Skip::Bytes(left)) => {
                let used = usize::try_from(left).map_or(rest.len(), |left| left.min(rest.len()));
                let left = left - used as u64;
                self.framer.skip = Some(Skip::Bytes(left));
                (used, left == 0)
            }
        };
        self.consumed += used;
        if done {
            self.framer.skip = None;
        }
        done
    }

    fn next_line(&mut self) -> Option<Result<&'a [u8], Oversize<'a>>> {
        let rest = &self.buf[self.consumed..];
        let max = self.framer.max_frame_bytes;
        let too_long = FrameError::TooLong { len: None, max };
        let searched = self.framer.scanned.min(rest.len());
        match memchr::memchr(b'\n', &rest[searched..]) {
            Some(at) => {
                let len = searched + at;
                self.consumed += len + 1;
                self.framer.scanned = 0;
                if len > max {
                    return Some(Err((too_long, &rest[..len])));
                }
                Some(Ok(&rest[..len]))
            }
            None if rest.len() > max => {
                self.consumed += rest.len();
                self.framer.scanned = 0;
                self.framer.skip = Some(Skip::Line);
                Some(Err((too_long, rest)))
            }
            None => {
                self.framer.scanned = rest.len();
                None
            }
        }
    }

    fn next_length_delimited(&mut self) -> Option<Result<&'a [u8], Oversize<'a>>> {
        let rest = &self.buf[self.consumed..];
        if rest.len() < LENGTH_BYTES {
            return None;
        }
        let len = prefix(rest) as usize;
        let max = self.framer.max_frame_bytes;
        if len > max {
            let body = &rest[LENGTH_BYTES..];
            let here = body.len().min(len);
            self.consumed += LENGTH_BYTES + here;
            if here < len {
                self.framer.skip = Some(Skip::Bytes((len - here) as u64));
            }
            let error = FrameError::TooLong {
                len: Some(len as u64),
                max,
            };
            return Some(Err((error, &body[..here])));
        }
        let end = LENGTH_BYTES + len;
        if rest.len() < end {
            return None;
        }
        self.consumed += end;
        Some(Ok(&rest[LENGTH_BYTES..end]))
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = Result<&'a [u8], Oversize<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if !self.skip() {
            return None;
        }
        match self.framer.framing {
            Framing::Newline => self.next_line(),
            Framing::LengthDelimited => self.next_length_delimited(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `chunks` as successive reads; returns the frames (as text),
    /// the error if one came, and what was left unframed.
    fn feed(framer: &mut Framer, chunks: &[&[u8]]) -> (Vec<String>, Option<FrameError>, Vec<u8>) {
        let mut buf = Vec::new();
        let mut frames = Vec::new();
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            let mut iter = framer.frames(&buf);
            let mut error = None;
            for frame in iter.by_ref() {
                match frame {
                    Ok(frame) => frames.push(String::from_utf8_lossy(frame).into_owned()),
                    Err((e, _)) => error = Some(e),
                }
            }
            let consumed = iter.consumed();
            buf.drain(..consumed);
            if error.is_some() {
                return (frames, error, buf);
            }
        }
        (frames, None, buf)
    }

    fn length_frame(body: &[u8]) -> Vec<u8> {
        let mut frame = (body.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(body);
        frame
    }

    #[test]
    fn lines_split_across_reads() {
        let mut framer = Framer::new(Framing::Newline, 100);
        let (frames, error, rest) = feed(&mut framer, &[b"ab", b"c\nd\n\nef", b"g\r\nh"]);
        assert_eq!(frames, ["abc", "d", "", "efg\r"]);
        assert_eq!(error, None);
        assert_eq!(rest, b"h");
        assert_eq!(framer.finish(&rest), Ok(Some(&b"h"[..])));
        assert_eq!(framer.finish(b""), Ok(None));
    }

    #[test]
    fn a_line_may_be_exactly_the_limit_but_not_longer() {
        let mut framer = Framer::new(Framing::Newline, 3);
        let (frames, error, _) = feed(&mut framer, &[b"abc", b"\nabcd\n"]);
        assert_eq!(frames, ["abc"]);
        assert_eq!(error, Some(FrameError::TooLong { len: None, max: 3 }));
    }

    #[test]
    fn an_endless_line_fails_before_its_end_arrives() {
        let mut framer = Framer::new(Framing::Newline, 4);
        let (frames, error, rest) = feed(&mut framer, &[b"ok\nabc", b"de", b"never read"]);
        assert_eq!(frames, ["ok"]);
        assert_eq!(error, Some(FrameError::TooLong { len: None, max: 4 }));
        // Taken to be skipped, not kept.
        assert_eq!(rest, b"");
    }

    #[test]
    fn a_line_run_stops_before_an_overlong_line() {
        let mut framer = Framer::new(Framing::Newline, 4);
        let mut newlines = Vec::new();
        let buf = b"ab\n\nabcd\nabcde\nx\nunfinished";
        let len = framer.line_run(buf, &mut newlines);
        assert_eq!(len, 9);
        assert_eq!(newlines, vec![2, 3, 8]);
        let (frames, error, rest) = feed(&mut framer, &[&buf[len..]]);
        // The overlong line is reported and skipped; framing goes on (and
        // skips the unfinished line too, already over the limit).
        assert_eq!(frames, ["x"]);
        assert_eq!(error, Some(FrameError::TooLong { len: None, max: 4 }));
        assert_eq!(rest, b"");
        let mut framer = Framer::new(Framing::LengthDelimited, 4);
        assert_eq!(framer.line_run(b"ab\n", &mut newlines), 0);
    }

    #[test]
    fn length_delimited_frames_across_reads() {
        let mut framer = Framer::new(Framing::LengthDelimited, 100);
        let mut stream = length_frame(b"one\ntwo");
        stream.extend(length_frame(b""));
        stream.extend(length_frame(b"three"));
        let (head, tail) = stream.split_at(2);
        let (middle, tail) = tail.split_at(9);
        let (frames, error, rest) = feed(&mut framer, &[head, middle, tail, &[0, 0]]);
        assert_eq!(frames, ["one\ntwo", "", "three"]);
        assert_eq!(error, None);
        assert_eq!(rest, [0, 0]);
        assert_eq!(
            framer.finish(&rest),
            Err(FrameError::Truncated { got: 2, len: None })
        );
        assert_eq!(
            framer.finish(&[0, 0, 0, 9, b'a']),
            Err(FrameError::Truncated {
                got: 1,
                len: Some(9)
            })
        );
        assert_eq!(framer.unfinished(&[0, 0, 0, 9, b'a']), b"a");
        assert_eq!(framer.unfinished(&[0, 0]), b"");
    }

    #[test]
    fn an_oversize_length_fails_at_its_prefix() {
        let mut framer = Framer::new(Framing::LengthDelimited, 5);
        let mut stream = length_frame(b"12345");
        stream.extend_from_slice(&6u32.to_be_bytes());
        let (frames, error, _) = feed(&mut framer, &[&stream]);
        assert_eq!(frames, ["12345"]);
        assert_eq!(
            error,
            Some(FrameError::TooLong {
                len: Some(6),
                max: 5
            })
        );
    }

    /// Every frame and oversize head of `chunks` fed as successive reads.
    fn feed_all(framer: &mut Framer, chunks: &[&[u8]]) -> Vec<Result<String, String>> {
        let mut buf = Vec::new();
        let mut out = Vec::new();
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            let mut iter = framer.frames(&buf);
            for frame in iter.by_ref() {
                out.push(
                    frame
                        .map(text)
                        .map_err(|(error, head)| format!("{error}: {}", text(head))),
                );
            }
            let consumed = iter.consumed();
            buf.drain(..consumed);
        }
        assert_eq!(framer.finish(&buf), Ok(None));
        out
    }

    #[test]
    fn an_oversize_line_is_skipped_to_its_end_and_framing_goes_on() {
        let mut framer = Framer::new(Framing::Newline, 4);
        let got = feed_all(
            &mut framer,
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
        let mut newlines = Vec::new();
        let mut framer = Framer::new(Framing::Newline, 4);
        let _ = feed_all(&mut framer, &[b"abcdef"]);
        // A run never starts inside a frame being skipped.
        assert_eq!(framer.line_run(b"xy\nz\n", &mut newlines), 0);
    }

    #[test]
    fn an_oversize_length_is_skipped_and_framing_goes_on() {
        let mut framer = Framer::new(Framing::LengthDelimited, 3);
        let mut stream = length_frame(b"abcdefgh");
        stream.extend(length_frame(b"ok"));
        let (head, tail) = stream.split_at(7);
        let got = feed_all(&mut framer, &[head, tail, &length_frame(b"end")]);
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
