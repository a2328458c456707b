//! Compressed inputs (`.gz`, `.zst`, `.bz2`), decompressed as they are
//! read: the codec is the one `--decompress` names, or by default the one
//! the input's first bytes (its magic number) show, so a misnamed file
//! still reads and a plain file named `.gz` is read as it is. A corrupt or
//! cut-short stream fails the read with one error ([`corrupt`]) naming the
//! file and the byte of it where decoding stopped.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use async_compression::tokio::bufread::{BzDecoder, GzipDecoder, ZstdDecoder};
use tokio::io::{AsyncBufRead, AsyncRead, AsyncReadExt, BufReader, ReadBuf};

/// An input as the readers take it.
pub(super) type Input = Box<dyn AsyncRead + Unpin + Send>;

/// How many first bytes of an input the magic numbers need.
pub(super) const MAGIC_BYTES: usize = 4;

/// How much of the compressed input is read at a time.
const RAW_BUFFER: usize = 64 * 1024;

/// Decompressed bytes a resumed input may drop in one read before it lets
/// other tasks run: skipping a large file's delivered part is CPU work.
const SKIP_PER_POLL: u64 = 8 * 1024 * 1024;

/// `--decompress`: how an input's bytes are decompressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Decompress {
    /// By the input's first bytes: gzip, zstd, bzip2, or none.
    #[default]
    Auto,
    /// gzip (every member of a concatenated file).
    Gzip,
    /// Zstandard (every frame of a concatenated file).
    Zstd,
    /// bzip2 (every stream of a concatenated file).
    Bzip2,
    /// The bytes as they are.
    None,
}

/// A compression format streamer reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Codec {
    Gzip,
    Zstd,
    Bzip2,
}

impl Decompress {
    /// The codec an input that starts with `head` is read with, if any.
    pub(super) fn codec(self, head: &[u8]) -> Option<Codec> {
        match self {
            Decompress::Auto => Codec::sniff(head),
            Decompress::Gzip => Some(Codec::Gzip),
            Decompress::Zstd => Some(Codec::Zstd),
            Decompress::Bzip2 => Some(Codec::Bzip2),
            Decompress::None => None,
        }
    }
}

impl Codec {
    /// The codec whose magic number `head` starts with.
    fn sniff(head: &[u8]) -> Option<Codec> {
        // gzip's magic, then its only compression method (deflate);
        // bzip2's, then its block size, a digit 1 to 9.
        match head {
            [0x1f, 0x8b, 0x08, ..] => Some(Codec::Gzip),
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Some(Codec::Zstd),
            [b'B', b'Z', b'h', b'1'..=b'9', ..] => Some(Codec::Bzip2),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Codec::Gzip => "gzip",
            Codec::Zstd => "zstd",
            Codec::Bzip2 => "bzip2",
        }
    }
}

/// `raw`, a compressed input from its first byte, decompressed with
/// `codec`; `name` is the input's name in errors.
pub(super) fn decoder(raw: Input, codec: Codec, name: &str) -> Input {
    let counted = Counted {
        inner: BufReader::with_capacity(RAW_BUFFER, raw),
        progress: Arc::default(),
    };
    let progress = counted.progress.clone();
    let inner: Input = match codec {
        Codec::Gzip => {
            let mut decoder = GzipDecoder::new(counted);
            decoder.multiple_members(true);
            Box::new(decoder)
        }
        Codec::Zstd => {
            let mut decoder = ZstdDecoder::new(counted);
            decoder.multiple_members(true);
            Box::new(decoder)
        }
        Codec::Bzip2 => {
            let mut decoder = BzDecoder::new(counted);
            decoder.multiple_members(true);
            Box::new(decoder)
        }
    };
    Box::new(Named {
        inner,
        codec,
        name: name.to_string(),
        progress,
    })
}

/// Reads up to `want` bytes of `input` (fewer only at its end).
pub(super) async fn read_head(input: &mut Input, want: usize) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(want);
    while head.len() < want {
        let limit = (want - head.len()) as u64;
        if (&mut *input).take(limit).read_buf(&mut head).await? == 0 {
            break;
        }
    }
    Ok(head)
}

/// `head`, bytes already read of `rest`, put back in front of it.
pub(super) fn put_back(head: Vec<u8>, rest: Input) -> Input {
    Box::new(std::io::Cursor::new(head).chain(rest))
}

/// A stream (standard input, a FIFO) decompressed as `decompress` says,
/// its first bytes looked at as they come: waiting for them is a read
/// like any other, which shutdown ends.
pub(super) fn stream(raw: Input, decompress: Decompress, name: &str) -> Input {
    if decompress == Decompress::None {
        return raw;
    }
    Box::new(Sniffing {
        state: Sniff::Head {
            raw: Some(raw),
            head: Vec::with_capacity(MAGIC_BYTES),
        },
        decompress,
        name: name.to_string(),
    })
}

/// The error `error` stands for, if it is a compressed stream's
/// ([`decoder`]): its message, which names the file and the byte.
pub(super) fn corrupt(error: &io::Error) -> Option<String> {
    let inner = error.get_ref()?;
    inner
        .downcast_ref::<CorruptStream>()
        .map(|corrupt| corrupt.0.clone())
}

/// A compressed stream's error, with its whole message.
#[derive(Debug)]
struct CorruptStream(String);

impl std::fmt::Display for CorruptStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CorruptStream {}

/// Where decoding stands in the compressed input, for errors.
#[derive(Default)]
struct Progress {
    /// Bytes the decoder consumed.
    consumed: AtomicU64,
    /// Bytes offered to the decoder past those and not consumed yet: a
    /// decoder that fails consumes none of the bytes it failed on, and
    /// bzip2 finds damage only at the end of its block.
    offered: AtomicU64,
    /// A read of the input itself failed, which is not the stream's fault.
    failed: AtomicBool,
}

/// The compressed input under a decoder, noting its [`Progress`].
struct Counted {
    inner: BufReader<Input>,
    progress: Arc<Progress>,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let read = ready!(Pin::new(&mut self.inner).poll_read(cx, buf));
        if read.is_err() {
            self.progress.failed.store(true, Ordering::Relaxed);
        }
        let read_now = (buf.filled().len() - before) as u64;
        self.progress
            .consumed
            .fetch_add(read_now, Ordering::Relaxed);
        Poll::Ready(read)
    }
}

impl AsyncBufRead for Counted {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        let filled = ready!(Pin::new(&mut this.inner).poll_fill_buf(cx));
        match &filled {
            Ok(bytes) => this
                .progress
                .offered
                .store(bytes.len() as u64, Ordering::Relaxed),
            Err(_) => this.progress.failed.store(true, Ordering::Relaxed),
        }
        Poll::Ready(filled)
    }

    fn consume(mut self: Pin<&mut Self>, amt: usize) {
        let progress = &self.progress;
        progress.consumed.fetch_add(amt as u64, Ordering::Relaxed);
        let offered = progress.offered.load(Ordering::Relaxed);
        progress
            .offered
            .store(offered.saturating_sub(amt as u64), Ordering::Relaxed);
        Pin::new(&mut self.inner).consume(amt);
    }
}

/// A decoder whose errors name the file, the codec and the byte.
struct Named {
    inner: Input,
    codec: Codec,
    name: String,
    progress: Arc<Progress>,
}

impl AsyncRead for Named {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let error = match ready!(Pin::new(&mut self.inner).poll_read(cx, buf)) {
            Ok(()) => return Poll::Ready(Ok(())),
            // The file's own read failed (or shutdown): not the stream.
            Err(error) if self.progress.failed.load(Ordering::Relaxed) => {
                return Poll::Ready(Err(error))
            }
            Err(error) => error,
        };
        let (name, codec) = (&self.name, self.codec.name());
        let at = self.progress.consumed.load(Ordering::Relaxed);
        let end = at + self.progress.offered.load(Ordering::Relaxed);
        let input = match name.as_str() {
            crate::record::SourceInfo::STDIN => "the input",
            _ => "the file",
        };
        // Where decoding stopped; the damage is in the bytes it was
        // decoding then (bzip2: in the block that ends there).
        let place = match end > at {
            true => format!("in bytes {at}-{end} of {input}"),
            false => format!("at byte {at} of {input}"),
        };
        let message = if error.kind() == io::ErrorKind::UnexpectedEof {
            format!(
                "{name}: {input} ends (at byte {end}) before its {codec} stream does: cut short?"
            )
        } else {
            format!("{name}: corrupt {codec} stream {place}: {error}")
        };
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::InvalidData,
            CorruptStream(message),
        )))
    }
}

/// [`stream`]'s input: its first bytes, then the input decompressed.
struct Sniffing {
    state: Sniff,
    decompress: Decompress,
    name: String,
}

enum Sniff {
    /// Reading the first [`MAGIC_BYTES`] bytes (`raw` is taken once done).
    Head { raw: Option<Input>, head: Vec<u8> },
    /// The codec is known: the input from its first byte.
    Body(Input),
}

impl AsyncRead for Sniffing {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            let (raw, head) = match &mut this.state {
                Sniff::Body(input) => return Pin::new(input).poll_read(cx, buf),
                Sniff::Head { raw, head } => (raw, head),
            };
            let mut more = [0u8; MAGIC_BYTES];
            let mut more = ReadBuf::new(&mut more[..MAGIC_BYTES - head.len()]);
            let reader = raw.as_mut().expect("taken only when done");
            ready!(Pin::new(reader).poll_read(cx, &mut more))?;
            head.extend_from_slice(more.filled());
            if more.filled().is_empty() || head.len() == MAGIC_BYTES {
                let codec = this.decompress.codec(head);
                let raw = put_back(std::mem::take(head), raw.take().expect("not yet taken"));
                this.state = Sniff::Body(match codec {
                    Some(codec) => decoder(raw, codec, &this.name),
                    None => raw,
                });
            }
        }
    }
}

/// An input whose first `left` bytes are dropped: a compressed file
/// resumed mid-way cannot seek, so it is decompressed from its start.
pub(super) struct Skip {
    inner: Input,
    left: u64,
}

impl Skip {
    /// `inner` without its first `left` bytes.
    pub(super) fn new(inner: Input, left: u64) -> Skip {
        Skip { inner, left }
    }
}

impl AsyncRead for Skip {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let mut skipped = 0;
        while this.left > 0 {
            if skipped >= SKIP_PER_POLL {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            // The caller's buffer is the scratch space.
            let before = buf.filled().len();
            ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
            let read = (buf.filled().len() - before) as u64;
            if read == 0 {
                return Poll::Ready(Ok(()));
            }
            let dropped = read.min(this.left);
            this.left -= dropped;
            skipped += dropped;
            let filled = buf.filled_mut();
            filled.copy_within(before + dropped as usize.., before);
            buf.set_filled(before + (read - dropped) as usize);
            if read > dropped {
                return Poll::Ready(Ok(()));
            }
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_magic_numbers() {
        let auto = Decompress::Auto;
        assert_eq!(auto.codec(b"\x1f\x8b\x08\x00"), Some(Codec::Gzip));
        assert_eq!(auto.codec(b"\x28\xb5\x2f\xfd"), Some(Codec::Zstd));
        assert_eq!(auto.codec(b"BZh9"), Some(Codec::Bzip2));
        assert_eq!(auto.codec(b"BZhX"), None);
        assert_eq!(auto.codec(b"a,b\n"), None);
        assert_eq!(auto.codec(b""), None);
        assert_eq!(Decompress::Gzip.codec(b"a,b\n"), Some(Codec::Gzip));
        assert_eq!(Decompress::None.codec(b"\x1f\x8b\x08\x00"), None);
    }

    #[tokio::test]
    async fn skips_the_first_bytes_over_several_reads() {
        let data: Vec<u8> = (0..100u8).collect();
        let mut skip = Skip::new(Box::new(std::io::Cursor::new(data)), 42);
        let mut out = Vec::new();
        let mut small = [0u8; 16];
        loop {
            let read = skip.read(&mut small).await.unwrap();
            if read == 0 {
                break;
            }
            out.extend_from_slice(&small[..read]);
        }
        assert_eq!(out, (42..100u8).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn sniffs_a_stream_given_a_byte_at_a_time() {
        let plain = b"BZ\nline\n".to_vec();
        let (mut writer, reader) = tokio::io::duplex(1);
        let write =
            tokio::spawn(
                async move { tokio::io::AsyncWriteExt::write_all(&mut writer, &plain).await },
            );
        let mut input = stream(Box::new(reader), Decompress::Auto, "-");
        let mut out = Vec::new();
        input.read_to_end(&mut out).await.unwrap();
        write.await.unwrap().unwrap();
        assert_eq!(out, b"BZ\nline\n");
    }
}
