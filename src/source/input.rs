//! A wrapper for an input byte stream that every reader needs: it drops a
//! leading UTF-8 byte order mark, and ends the stream as soon as shutdown
//! is signalled (even while the input is silent).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

/// The error an [`InputReader`] ends with once shutdown is signalled.
pub const SHUTDOWN: &str = "shutdown requested";

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
        }
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
        if !this.bom_checked {
            ready!(this.poll_head(cx))?;
        }
        if this.head_given < this.head_len {
            let pending = &this.head[this.head_given..this.head_len];
            let n = pending.len().min(buf.remaining());
            buf.put_slice(&pending[..n]);
            this.head_given += n;
        } else {
            ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        }
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
}
