//! What csv-async reads a CSV stream through: the input, with every byte
//! also kept until its record is done.
//!
//! csv-async hands out a record's cells only, once it is whole. Three
//! things it cannot say are found from the bytes kept here: the line a
//! record starts on (a lone `\r` ends a line too), the record's bytes as
//! they were (for dead letters), and whether it is growing past
//! `--max-record-bytes` (it would otherwise be buffered whole, however
//! long). The tap refuses to read on once the record under way has passed
//! that limit; csv-async (built with `end_on_io_error(false)`) returns that
//! refusal as an error and can then be asked to go on, its parser state
//! intact, which is how the rest of an over-long record is skipped.
//!
//! Before the input's first byte the tap puts [`PREFIX`], a one-cell row
//! the reader drops: csv-async keeps two copies of the first record it
//! reads (as the stream's headers) for as long as it reads, so that first
//! record must not be a header of a million columns.
//!
//! After the input's last byte the tap adds [`SENTINEL`], a line end, a
//! quote and a line end: if the input ended inside a quoted cell, that
//! quote closes it, so the record ends past the input's end; otherwise the
//! sentinel is a record of its own, which the reader drops. csv-async alone
//! would take an unclosed quote at the end of the input as a good record.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

/// Put before the input (see the module documentation).
pub(super) const PREFIX: &[u8] = b"-\n";

/// Appended to the input (see the module documentation).
pub(super) const SENTINEL: &[u8] = b"\n\"\n";

/// The error the tap ends a read with once a record passes the limit.
const PAST_LIMIT: &str = "CSV record past --max-record-bytes";

/// The kept bytes' buffer is shrunk back once it grew past this.
const KEPT_BYTES: usize = 4 * 1024 * 1024;

/// Bytes of a record being skipped that csv-async may gather before the
/// tap interrupts it again (csv-async then starts a new record buffer).
const SKIP_CHUNK: u64 = 256 * 1024;

/// How the tap treats the record csv-async is reading.
#[derive(Debug, Clone, Copy)]
pub(super) enum Mode {
    /// Keep its bytes, from `start` (where the previous record ended, the
    /// blank lines after that forgotten as they go by); no more reading
    /// once it passes the limit.
    Keep {
        /// Absolute offset where the record (maybe after blank lines) starts.
        start: u64,
    },
    /// Keep nothing (it was rejected as too long); interrupt csv-async every
    /// [`SKIP_CHUNK`] bytes so it never holds much of it.
    Skip {
        /// Where the last interruption was.
        mark: u64,
    },
}

/// The input under a tap: any byte stream, told before each read how
/// many bytes the record under way holds (a TCP connection takes a share
/// of its memory budget for a long one).
pub trait TapInput: AsyncRead + Unpin {
    /// The record under way holds `bytes` bytes (kept by the tap and
    /// csv-async); called before each read.
    fn holding(&mut self, bytes: u64) {
        let _ = bytes;
    }
}

/// In-memory input: a piece of a file cut between records.
impl TapInput for &[u8] {}

/// Counts line ends: `\n`, `\r`, and `\r\n` as one.
#[derive(Debug, Clone, Copy)]
pub(super) struct Lines {
    /// Bytes before this offset are counted.
    at: u64,
    /// The line number of the byte at `at`.
    line: u64,
    /// The byte before `at` was a `\r`.
    after_cr: bool,
}

/// The input, kept as it is read; see the module documentation.
pub(super) struct Tap<R> {
    inner: R,
    /// [`PREFIX`] was handed out.
    prefixed: bool,
    /// The bytes from offset `kept_from` to `delivered`.
    kept: Vec<u8>,
    kept_from: u64,
    delivered: u64,
    /// Once the input ended: its length (the sentinel lies past it).
    pub(super) input_end: Option<u64>,
    /// The input's last byte.
    last_byte: Option<u8>,
    sentinel_given: usize,
    pub(super) mode: Mode,
    max_record_bytes: u64,
    /// The last read was refused: the record passed the limit (or, while
    /// skipping, another chunk of it went by).
    pub(super) tripped: bool,
    lines: Lines,
    /// Input bytes before the tap's first: it reads the rest of a stream.
    offset: u64,
}

impl<R> Tap<R> {
    /// Taps `inner`; a record longer than `max_record_bytes` trips it.
    pub(super) fn new(inner: R, max_record_bytes: usize) -> Self {
        Tap {
            inner,
            prefixed: false,
            kept: Vec::new(),
            kept_from: 0,
            delivered: 0,
            input_end: None,
            last_byte: None,
            sentinel_given: 0,
            mode: Mode::Keep {
                start: PREFIX.len() as u64,
            },
            max_record_bytes: max_record_bytes as u64,
            tripped: false,
            // The prefix's line end makes the input's first line 1.
            lines: Lines {
                at: 0,
                line: 0,
                after_cr: false,
            },
            offset: 0,
        }
    }

    /// The input is the rest of a stream: `lines` lines and `bytes` bytes
    /// of it came before (the first byte is on line `lines + 1`).
    pub(super) fn resume(&mut self, lines: u64, bytes: u64) {
        self.lines.line = lines;
        self.offset = bytes;
    }

    /// The input.
    pub(super) fn inner_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// How much the kept bytes' buffer holds room for.
    #[cfg(test)]
    pub(super) fn kept_capacity(&self) -> usize {
        self.kept.capacity()
    }

    /// Bytes handed to csv-async so far (the sentinel included).
    pub(super) fn delivered(&self) -> u64 {
        self.delivered
    }

    /// The input bytes read so far (without the prefix and the sentinel).
    pub(super) fn input_read(&self) -> u64 {
        self.input_end
            .unwrap_or(self.delivered)
            .saturating_sub(PREFIX.len() as u64)
            + self.offset
    }

    /// The kept bytes from `from` to `to` (absolute offsets).
    pub(super) fn bytes(&self, from: u64, to: u64) -> &[u8] {
        &self.kept[(from - self.kept_from) as usize..(to - self.kept_from) as usize]
    }

    /// Where the first byte that is no line end lies at or after `start`,
    /// or where the kept bytes end.
    pub(super) fn first_content(&self, start: u64) -> u64 {
        // Blank lines before `kept_from` were forgotten as they went by.
        let start = start.max(self.kept_from);
        let rest = self.bytes(start, self.delivered);
        let skipped = rest
            .iter()
            .position(|&byte| byte != b'\n' && byte != b'\r')
            .unwrap_or(rest.len());
        start + skipped as u64
    }

    /// The line the byte at `offset` is on; the bytes before it must still
    /// be kept (or counted), and later calls may not go back.
    pub(super) fn line_at(&mut self, offset: u64) -> u64 {
        debug_assert!(offset >= self.lines.at);
        if offset == self.lines.at {
            return self.lines.line;
        }
        let from = (self.lines.at - self.kept_from) as usize;
        let to = (offset - self.kept_from) as usize;
        self.lines.line += count_line_ends(&self.kept[from..to], &mut self.lines.after_cr);
        self.lines.at = offset;
        self.lines.line
    }

    /// Moves the line count to `end`, the end of a record without quotes
    /// from the counted offset on: its only line end is its last byte, if
    /// that is one (no need to look at the rest).
    pub(super) fn line_after_plain(&mut self, end: u64) {
        debug_assert!(end > self.lines.at);
        let last = self.kept[(end - 1 - self.kept_from) as usize];
        self.lines.line += u64::from(last == b'\n' || last == b'\r');
        self.lines.after_cr = last == b'\r';
        self.lines.at = end;
    }

    /// The input's last line (the one its last byte is on).
    pub(super) fn last_line(&mut self) -> u64 {
        let end = self.input_end.unwrap_or(self.delivered);
        let line = self.line_at(end.max(self.lines.at));
        match self.last_byte {
            Some(b'\n' | b'\r') if line > 1 => line - 1,
            _ => line,
        }
    }

    /// Forgets the kept bytes before `offset` (counting their line ends).
    fn forget_before(&mut self, offset: u64) {
        if offset <= self.kept_from {
            return;
        }
        if self.lines.at < offset {
            self.line_at(offset);
        }
        self.kept.drain(..(offset - self.kept_from) as usize);
        self.kept_from = offset;
        // A long record grew the buffer: a connection must not keep that
        // memory once the record is gone.
        if self.kept.capacity() > KEPT_BYTES && self.kept.len() < KEPT_BYTES / 4 {
            self.kept.shrink_to(KEPT_BYTES / 4);
        }
    }

    fn deliver(&mut self, bytes: &[u8]) {
        self.kept.extend_from_slice(bytes);
        self.delivered += bytes.len() as u64;
    }
}

impl<R: TapInput> AsyncRead for Tap<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.prefixed {
            this.prefixed = true;
            buf.put_slice(PREFIX);
            this.deliver(PREFIX);
            return Poll::Ready(Ok(()));
        }
        // csv-async reads again only once it has parsed every byte it was
        // given: the record under way has all of them.
        match this.mode {
            Mode::Keep { start } => {
                let first = this.first_content(start);
                if this.delivered - first > this.max_record_bytes {
                    this.tripped = true;
                    return Poll::Ready(Err(io::Error::other(PAST_LIMIT)));
                }
                // Blank lines before the record are no part of it: gone.
                this.forget_before(first);
                this.inner.holding(this.delivered - first);
            }
            Mode::Skip { mark } => {
                this.forget_before(this.delivered);
                if this.delivered - mark > SKIP_CHUNK {
                    this.mode = Mode::Skip {
                        mark: this.delivered,
                    };
                    this.tripped = true;
                    return Poll::Ready(Err(io::Error::other(PAST_LIMIT)));
                }
                this.inner.holding(this.delivered - mark);
            }
        }
        if this.input_end.is_none() {
            let before = buf.filled().len();
            ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
            let new = &buf.filled()[before..];
            if !new.is_empty() {
                this.last_byte = new.last().copied();
                this.deliver(new);
                return Poll::Ready(Ok(()));
            }
            this.input_end = Some(this.delivered);
        }
        let rest = &SENTINEL[this.sentinel_given..];
        let n = rest.len().min(buf.remaining());
        buf.put_slice(&rest[..n]);
        this.sentinel_given += n;
        this.deliver(&SENTINEL[this.sentinel_given - n..this.sentinel_given]);
        Poll::Ready(Ok(()))
    }
}

/// How many lines `bytes` ends: each `\n`, each `\r`, a `\r\n` once.
/// `after_cr` says the byte before `bytes` was a `\r`, and is updated.
pub(super) fn count_line_ends(bytes: &[u8], after_cr: &mut bool) -> u64 {
    let mut count = 0;
    for at in memchr::memchr2_iter(b'\n', b'\r', bytes) {
        let cr_before = if at == 0 {
            *after_cr
        } else {
            bytes[at - 1] == b'\r'
        };
        if !(bytes[at] == b'\n' && cr_before) {
            count += 1;
        }
    }
    if let Some(&last) = bytes.last() {
        *after_cr = last == b'\r';
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_ends_count_crlf_once_across_pieces() {
        let mut after_cr = false;
        assert_eq!(count_line_ends(b"a\r\nb\rc\n\n", &mut after_cr), 4);
        assert!(!after_cr);
        assert_eq!(count_line_ends(b"a\r", &mut after_cr), 1);
        assert!(after_cr);
        assert_eq!(count_line_ends(b"\nb", &mut after_cr), 0);
        assert!(!after_cr);
    }
}
