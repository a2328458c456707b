//! `--follow`: a file read as `tail -F` reads it. A task reads the file
//! into a channel, and once at its end waits for more (a file-watch event
//! or the poll interval). At the end it checks the path: a new file there
//! (rotation by rename) or none (deletion) ends the stream once the old
//! file's last bytes are read; a file shorter than what was read
//! (copytruncate) ends it at once, to be read again from the start.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tokio_util::io::StreamReader;
use tokio_util::sync::CancellationToken;

/// How much the follower reads at a time.
const READ_SIZE: usize = 256 * 1024;

/// Why a followed file's stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ended {
    /// Another file is at its path now: read that one next.
    Rotated,
    /// Its path is gone: pick it up again if it comes back.
    Deleted,
    /// It became shorter than what was read: read it again from the start.
    Truncated,
    /// The run is stopping, or the reader went away.
    Stopped,
    /// A compressed file, read to its end once: it is not followed (it
    /// does not grow in place).
    ReadOnce,
    /// Read to a line's end while other files wait for a slot
    /// (`--max-open-files`): closed, to be opened again where it was read
    /// to once it changes.
    Idle,
}

/// The byte stream of a followed file, as the readers take it.
pub(super) type FollowStream = StreamReader<tokio_stream_shim::Receiver, Bytes>;

/// Starts following `file` (opened at `path`, positioned at byte `start`): `prefix` comes first (a CSV header for a resumed file), then
/// the file. `wake` is notified when the watcher sees the file change;
/// `poll` is how often it is looked at regardless; `waiting` counts the
/// files waiting for a slot, for which an idle file gives up its own.
#[allow(clippy::too_many_arguments)]
pub(super) fn follow(
    mut file: tokio::fs::File,
    start: u64,
    path: PathBuf,
    prefix: Vec<u8>,
    wake: Arc<Notify>,
    poll: Duration,
    waiting: Arc<AtomicUsize>,
    shutdown: CancellationToken,
) -> (FollowStream, JoinHandle<Ended>) {
    // A few reads ahead at most: the pipeline's backpressure reaches the file.
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(2);
    let task = tokio::spawn(async move {
        if !prefix.is_empty() && tx.send(Ok(Bytes::from(prefix))).await.is_err() {
            return Ended::Stopped;
        }
        let identity = match file.metadata().await {
            Ok(metadata) => (metadata.dev(), metadata.ino()),
            Err(error) => {
                let _ = tx.send(Err(error)).await;
                return Ended::Stopped;
            }
        };
        let mut head = match file.try_clone().await {
            Ok(clone) => Head::new(clone.into_std().await),
            Err(error) => {
                let _ = tx.send(Err(error)).await;
                return Ended::Stopped;
            }
        };
        head.refresh(start).await;
        let mut position = start;
        // Set once the path holds another file or none: the next end of
        // this file is its last.
        let mut last_end: Option<Ended> = None;
        loop {
            let mut buf = BytesMut::with_capacity(READ_SIZE);
            match file.read_buf(&mut buf).await {
                Ok(0) => {}
                Ok(read) => {
                    position += read as u64;
                    head.read_to(&buf);
                    if tx.send(Ok(buf.freeze())).await.is_err() {
                        return Ended::Stopped;
                    }
                    continue;
                }
                Err(error) => {
                    let _ = tx.send(Err(error)).await;
                    return Ended::Stopped;
                }
            }
            if let Some(ended) = last_end {
                return ended;
            }
            match look(&file, &path, identity, position).await {
                // The writer may still add to the old file for a moment
                // (it has not reopened the path yet): read it once more
                // after one interval.
                Some(ended @ (Ended::Rotated | Ended::Deleted)) => {
                    last_end = Some(ended);
                    tokio::select! {
                        _ = tokio::time::sleep(poll) => {}
                        _ = tx.closed() => return Ended::Stopped,
                        _ = shutdown.cancelled() => {}
                    }
                }
                Some(ended) => {
                    tracing::warn!(
                        "{}: truncated (now shorter than the {position} bytes read): read again \
                         from its start",
                        path.display()
                    );
                    return ended;
                }
                // At its end while files wait for a slot: it gives up its
                // own. Only at a line's end: the reader takes the stream's
                // end as the file's, and would send a partial line whole.
                None if waiting.load(Ordering::Relaxed) > 0 && head.at_line_end(position) => {
                    return Ended::Idle;
                }
                None => {
                    tokio::select! {
                        _ = wake.notified() => {}
                        _ = tokio::time::sleep(poll) => {}
                        _ = tx.closed() => return Ended::Stopped,
                        // Not closing the stream: its end would read as
                        // the file's, and a partial last record as whole.
                        // The reader stops on shutdown by itself, holding
                        // that record back for the next run.
                        _ = shutdown.cancelled() => {
                            tx.closed().await;
                            return Ended::Stopped;
                        }
                    }
                    // Truncated and written again before we looked: its
                    // size may be past `position` already, but its first
                    // bytes, or the last ones read, changed.
                    if let Some(which) = head.changed(position).await {
                        tracing::warn!(
                            "{}: truncated and written again (its {which} are not the ones \
                             read): read again from its start",
                            path.display()
                        );
                        return Ended::Truncated;
                    }
                }
            }
        }
    });
    (StreamReader::new(tokio_stream_shim::Receiver(rx)), task)
}

/// At the end of the file: what became of it, or `None` if it is still
/// the file at `path`, at least `position` bytes long.
async fn look(
    file: &tokio::fs::File,
    path: &PathBuf,
    identity: (u64, u64),
    position: u64,
) -> Option<Ended> {
    if let Ok(metadata) = file.metadata().await {
        if metadata.len() < position {
            return Some(Ended::Truncated);
        }
    }
    match tokio::fs::metadata(path).await {
        Ok(now) if (now.dev(), now.ino()) == identity => None,
        Ok(_) => Some(Ended::Rotated),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Some(Ended::Deleted),
        Err(_) => None,
    }
}

/// A followed file's first bytes (up to [`HEAD_BYTES`]) and the last
/// ones read (as many), to notice it truncated and written again between
/// two looks: with the same header, its first bytes alone do not show it.
struct Head {
    file: Arc<std::fs::File>,
    bytes: Vec<u8>,
    /// The bytes just before the read position.
    last: Vec<u8>,
}

/// How many first (and last read) bytes [`Head`] compares.
const HEAD_BYTES: usize = 256;

impl Head {
    fn new(file: std::fs::File) -> Head {
        Head {
            file: Arc::new(file),
            bytes: Vec::new(),
            last: Vec::new(),
        }
    }

    /// The file's `len` bytes at `at` now (a failed read reads as none).
    async fn read(&self, at: u64, len: usize) -> Vec<u8> {
        let file = self.file.clone();
        tokio::task::spawn_blocking(move || {
            use std::os::unix::fs::FileExt;
            let mut bytes = vec![0; len];
            let mut filled = 0;
            while filled < len {
                match file.read_at(&mut bytes[filled..], at + filled as u64) {
                    Ok(0) | Err(_) => break,
                    Ok(read) => filled += read,
                }
            }
            bytes.truncate(filled);
            bytes
        })
        .await
        .unwrap_or_default()
    }

    /// Takes the first bytes, and those before `position`, as they are now.
    async fn refresh(&mut self, position: u64) {
        self.bytes = self.read(0, HEAD_BYTES).await;
        let from = position.saturating_sub(HEAD_BYTES as u64);
        self.last = self.read(from, (position - from) as usize).await;
    }

    /// `buf` was just read: the last bytes read end with it.
    fn read_to(&mut self, buf: &[u8]) {
        let keep = HEAD_BYTES.saturating_sub(buf.len()).min(self.last.len());
        self.last.drain(..self.last.len() - keep);
        self.last
            .extend_from_slice(&buf[buf.len().saturating_sub(HEAD_BYTES)..]);
    }

    /// Whether `position` is the file's start or just after a line end.
    fn at_line_end(&self, position: u64) -> bool {
        position == 0 || self.last.last() == Some(&b'\n')
    }

    /// Which bytes seen so far are not there any more: the first ones
    /// (more may have come: they are kept too), or the last ones read,
    /// which end at `position`.
    async fn changed(&mut self, position: u64) -> Option<&'static str> {
        let now = self.read(0, HEAD_BYTES).await;
        if self.bytes.len() == HEAD_BYTES {
            if now != self.bytes {
                return Some("first bytes");
            }
        } else if now.starts_with(&self.bytes) {
            self.bytes = now;
        } else {
            return Some("first bytes");
        }
        let from = position - self.last.len() as u64;
        (self.read(from, self.last.len()).await != self.last).then_some("last bytes read")
    }
}

/// An mpsc receiver as a `Stream`, which [`StreamReader`] reads.
pub(super) mod tokio_stream_shim {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use bytes::Bytes;
    use tokio::sync::mpsc;

    /// The follower's channel, read by the file's reader; closed by the
    /// follower when the file's stream ends.
    pub struct Receiver(pub(super) mpsc::Receiver<std::io::Result<Bytes>>);

    impl futures::Stream for Receiver {
        type Item = std::io::Result<Bytes>;

        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            self.0.poll_recv(cx)
        }
    }
}
