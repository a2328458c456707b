//! A connection's byte stream: the TCP socket itself, or TLS over it. An
//! enum rather than a trait object or a generic: one match per read, no
//! cost per byte, and the plaintext path reads the socket as before.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// What a connection reads its client's bytes from.
pub(super) enum Socket {
    /// Plaintext.
    Plain(TcpStream),
    /// After a finished TLS handshake. Boxed: rustls's state is large.
    Tls(Box<TlsStream<TcpStream>>),
}

impl Socket {
    /// The TCP socket under it.
    fn tcp(&self) -> &TcpStream {
        match self {
            Socket::Plain(stream) => stream,
            Socket::Tls(stream) => stream.get_ref().0,
        }
    }

    /// Whether bytes wait unread in the socket (`Ready(Ok(0))`: the client
    /// closed): under TLS, the raw bytes, whose records are the client's.
    pub(super) fn poll_peek(
        &self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<usize>> {
        self.tcp().poll_peek(cx, buf)
    }

    /// [`Socket::poll_peek`] as a future.
    pub(super) async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.tcp().peek(buf).await
    }
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Socket::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}
