//! A wrapper for an input byte stream that every reader needs: it drops a
//! leading UTF-8 byte order mark, ends the stream as soon as shutdown is
//! signalled (even while the input is silent), and can cap how far a
//! record may run past its start.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

/// The error an [`InputReader`] ends with once shutdown is signalled.
pub const SHUTDOWN: &str = "shutdown requested";

/// The error an [`InputReader`] ends with when a record outgrows its cap.
pub const RECORD_TOO_LONG: &str = "record too long";

/// Where the current record started, in bytes after the BOM; the reader
/// that parses records moves it forward after each one.
#[derive(Debug, Clone, Default)]
pub struct RecordStart(Arc<AtomicU64>);

impl RecordStart {
    /// Marks the start of the next record at byte `offset`.
    pub fn set(&self, offset: u64) {
        self.0.store(offset, Ordering::Relaxed);
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// See the module documentation.
pub struct InputReader<R> {
    inner: R,
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    shut_down: bool,
    /// Bytes seen before we know whether they are a BOM.
    head: [u8; 3],
    head_len: usize,
    /// How many of `head` were handed out (once the BOM check is done).
    head_given: usize,
    bom_checked: bool,
    /// Bytes handed out so far.
    consumed: u64,
    bound: Option<(RecordStart, u64)>,
}

impl<R: AsyncRead + Unpin> InputReader<R> {
    /// Wraps `inner`; reads fail with [`SHUTDOWN`] once `shutdown` is cancelled.
    pub fn new(inner: R, shutdown: CancellationToken) -> Self {
        InputReader {
            inner,
            shutdown: Box::pin(shutdown.cancelled_owned()),
            shut_down: false,
            head: [0; 3],
            head_len: 0,
            head_given: 0,
            bom_checked: false,
            consumed: 0,
            bound: None,
        }
    }

    /// Makes reads fail with [`RECORD_TOO_LONG`] once more than `max_bytes`
    /// were read past `start` (an unterminated quote would otherwise grow
    /// one record without end).
    pub fn with_record_bound(mut self, start: RecordStart, max_bytes: u64) -> Self {
        self.bound = Some((start, max_bytes));
        self
    }

    /// Reads into `head` until it holds 3 bytes or the input ends, then
    /// drops them if they are a BOM.
    fn poll_head(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.head_len < BOM.len() {
            let mut buf = ReadBuf::new(&mut self.head[self.head_len..]);
            ready!(Pin::new(&mut self.inner).poll_read(cx, &mut buf))?;
            let n = buf.filled().len();
            if n == 0 {
                break;
            }
            self.head_len += n;
            if self.head[..self.head_len] != BOM[..self.head_len] {
                break;
            }
        }
        if self.head[..self.head_len] == BOM {
            self.head_given = self.head_len;
        }
        self.bom_checked = true;
        Poll::Ready(Ok(()))
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for InputReader<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        // Not `Interrupted`: readers retry on that kind.
        if this.shut_down || this.shutdown.as_mut().poll(cx).is_ready() {
            this.shut_down = true;
            return Poll::Ready(Err(io::Error::other(SHUTDOWN)));
        }
        if let Some((start, max_bytes)) = &this.bound {
            if this.consumed.saturating_sub(start.get()) > *max_bytes {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    RECORD_TOO_LONG,
                )));
            }
        }
        if !this.bom_checked {
            ready!(this.poll_head(cx))?;
        }
        let before = buf.filled().len();
        if this.head_given < this.head_len {
            let pending = &this.head[this.head_given..this.head_len];
            let n = pending.len().min(buf.remaining());
            buf.put_slice(&pending[..n]);
            this.head_given += n;
        } else {
            ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        }
        this.consumed += (buf.filled().len() - before) as u64;
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    async fn read_all(input: &[u8]) -> Vec<u8> {
        let mut reader = InputReader::new(input, CancellationToken::new());
        let mut out = Vec::new();
        reader.read_to_end(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn drops_a_leading_bom_only() {
        assert_eq!(read_all(b"\xEF\xBB\xBFa,b\n").await, b"a,b\n");
        assert_eq!(read_all(b"a\xEF\xBB\xBF").await, b"a\xEF\xBB\xBF");
        assert_eq!(read_all(b"\xEF\xBB").await, b"\xEF\xBB");
        assert_eq!(read_all(b"").await, b"");
        assert_eq!(read_all(b"\xEF\xBB\xBF").await, b"");
    }

    #[tokio::test]
    async fn ends_with_an_error_once_shut_down() {
        let (_writer, silent) = tokio::io::duplex(64);
        let shutdown = CancellationToken::new();
        let mut reader = InputReader::new(silent, shutdown.clone());
        let mut out = Vec::new();
        let read = reader.read_to_end(&mut out);
        shutdown.cancel();
        let error = read.await.unwrap_err();
        assert_eq!(error.to_string(), SHUTDOWN);
    }

    #[tokio::test]
    async fn caps_a_record_that_never_ends() {
        let input = vec![b'x'; 10_000];
        let start = RecordStart::default();
        let mut reader =
            InputReader::new(&input[..], CancellationToken::new()).with_record_bound(start, 100);
        let mut buf = [0u8; 64];
        let mut total = 0;
        let error = loop {
            match reader.read(&mut buf).await {
                Ok(n) => total += n,
                Err(error) => break error,
            }
        };
        assert_eq!(error.to_string(), RECORD_TOO_LONG);
        assert!(total > 100 && total <= 164, "read {total} bytes");
    }
}
