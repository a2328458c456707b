//! A UTF-8 byte order mark dropped from the start of a byte stream, even
//! when it arrives split over several reads.

use std::io;
use std::task::{ready, Context, Poll};

use tokio::io::ReadBuf;

/// The UTF-8 byte order mark.
pub const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

/// The start of a stream until it is known not to be (or no longer to
/// be) a byte order mark.
#[derive(Debug, Default)]
pub struct LeadingBom {
    /// Bytes seen before we know whether they are a BOM.
    head: [u8; 3],
    head_len: usize,
    /// How many of `head` were handed out (once the check is done).
    head_given: usize,
    checked: bool,
}

impl LeadingBom {
    /// One read of the stream into `buf` through `read` (one read of the
    /// stream itself), its leading BOM dropped.
    pub fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
        mut read: impl FnMut(&mut Context<'_>, &mut ReadBuf<'_>) -> Poll<io::Result<()>>,
    ) -> Poll<io::Result<()>> {
        while !self.checked && self.head_len < BOM.len() {
            let mut head = ReadBuf::new(&mut self.head[self.head_len..]);
            ready!(read(cx, &mut head))?;
            let n = head.filled().len();
            self.head_len += n;
            if n == 0 || self.head[..self.head_len] != BOM[..self.head_len] {
                break;
            }
        }
        if !self.checked {
            if self.head[..self.head_len] == BOM {
                self.head_given = self.head_len;
            }
            self.checked = true;
        }
        if self.head_given < self.head_len {
            let pending = &self.head[self.head_given..self.head_len];
            let n = pending.len().min(buf.remaining());
            buf.put_slice(&pending[..n]);
            self.head_given += n;
            return Poll::Ready(Ok(()));
        }
        read(cx, buf)
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;

    use tokio::io::{AsyncRead, AsyncReadExt};

    use super::*;

    /// A stream handing out one byte a read.
    struct Trickle(Vec<u8>, usize, LeadingBom);

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let Trickle(bytes, at, bom) = &mut *self;
            bom.poll_read(cx, buf, |_, buf| {
                if let Some(&byte) = bytes.get(*at) {
                    buf.put_slice(&[byte]);
                    *at += 1;
                }
                Poll::Ready(Ok(()))
            })
        }
    }

    async fn read(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut stream = Trickle(bytes.to_vec(), 0, LeadingBom::default());
        stream.read_to_end(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn a_bom_split_over_reads_is_dropped_and_nothing_else() {
        assert_eq!(read(b"\xEF\xBB\xBFa,b\n").await, b"a,b\n");
        assert_eq!(read(b"\xEF\xBBx").await, b"\xEF\xBBx");
        assert_eq!(read(b"\xEF").await, b"\xEF");
        assert_eq!(read(b"ab\xEF\xBB\xBF").await, b"ab\xEF\xBB\xBF");
        assert_eq!(read(b"").await, b"");
    }
}
