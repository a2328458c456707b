//! A wrapper for an input byte stream that every reader needs: it drops a
//! leading UTF-8 byte order mark, and ends the stream as soon as shutdown
//! is signalled (even while the input is silent).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

use super::bom::LeadingBom;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// After shutdown, how long a read already under way may still finish. A
/// file's or a pipe's read runs on a blocking thread: its bytes may have
/// left the pipe a moment before the thread hands them over, and must not
/// be dropped; a read still waiting for a silent writer is given up.
const READ_GRACE: std::time::Duration = std::time::Duration::from_millis(100);

/// The error an [`InputReader`] ends with once shutdown is signalled.
pub const SHUTDOWN: &str = "shutdown requested";

/// See the module documentation.
pub struct InputReader<R> {
    inner: R,
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    shut_down: bool,
    /// Running once shutdown came while a read was under way.
    grace: Option<Pin<Box<tokio::time::Sleep>>>,
    bom: LeadingBom,
}

impl<R: AsyncRead + Unpin> InputReader<R> {
    /// Wraps `inner`; reads fail with [`SHUTDOWN`] once `shutdown` is cancelled.
    pub fn new(inner: R, shutdown: CancellationToken) -> Self {
        InputReader {
            inner,
            shutdown: Box::pin(shutdown.cancelled_owned()),
            shut_down: false,
            grace: None,
            bom: LeadingBom::default(),
        }
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
        if this.shut_down {
            return Poll::Ready(Err(io::Error::other(SHUTDOWN)));
        }
        // The input first, shutdown only while it has nothing: a read that
        // already finished took its bytes out of a pipe, and dropping them
        // here would lose them.
        if let Poll::Ready(result) = this.poll_input(cx, buf) {
            return Poll::Ready(result);
        }
        if this.grace.is_none() && this.shutdown.as_mut().poll(cx).is_ready() {
            this.grace = Some(Box::pin(tokio::time::sleep(READ_GRACE)));
        }
        let grace_over = match this.grace.as_mut() {
            Some(grace) => grace.as_mut().poll(cx).is_ready(),
            None => false,
        };
        if grace_over {
            this.shut_down = true;
            return Poll::Ready(Err(io::Error::other(SHUTDOWN)));
        }
        Poll::Pending
    }
}

/// A file's memory is bounded by `--max-record-bytes` alone.
impl<R: AsyncRead + Unpin> crate::codec::csv_stream::TapInput for InputReader<R> {}

impl<R: AsyncRead + Unpin> InputReader<R> {
    /// One read of the input, its BOM dropped.
    fn poll_input(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let inner = &mut self.inner;
        self.bom
            .poll_read(cx, buf, |cx, buf| Pin::new(&mut *inner).poll_read(cx, buf))
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
    async fn hands_out_what_was_read_before_it_shuts_down() {
        let (mut writer, input) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut writer, b"a\n")
            .await
            .unwrap();
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        let mut reader = InputReader::new(input, shutdown);
        let mut buf = [0u8; 16];
        assert_eq!(reader.read(&mut buf).await.unwrap(), 2);
        let error = reader.read(&mut buf).await.unwrap_err();
        assert_eq!(error.to_string(), SHUTDOWN);
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
