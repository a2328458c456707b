//! `--follow`: a file read as `tail -F` reads it. A task reads the file
//! into a channel, and once at its end waits for more (a file-watch event
//! or the poll interval). At the end it checks the path: a new file there
//! (rotation by rename) or none (deletion) ends the stream once the old
//! file's last bytes are read; a file shorter than what was read
//! (copytruncate) ends it at once, to be read again from the start.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
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
}

/// The byte stream of a followed file, as the readers take it.
pub(super) type FollowStream = StreamReader<tokio_stream_shim::Receiver, Bytes>;

/// Starts following `file` (opened at `path`, positioned at byte `start`): `prefix` comes first (a CSV header for a resumed file), then
/// the file. `wake` is notified when the watcher sees the file change;
/// `poll` is how often it is looked at regardless.
pub(super) fn follow(
    mut file: tokio::fs::File,
    start: u64,
    path: PathBuf,
    prefix: Vec<u8>,
    wake: Arc<Notify>,
    poll: Duration,
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
        head.refresh().await;
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
                Some(ended) => return ended,
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
                    // bytes changed.
                    if !head.unchanged().await {
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

/// A followed file's first bytes (up to [`HEAD_BYTES`]), to notice it
/// truncated and written again between two looks.
struct Head {
    file: Arc<std::fs::File>,
    bytes: Vec<u8>,
}

/// How many first bytes [`Head`] compares.
const HEAD_BYTES: usize = 256;

impl Head {
    fn new(file: std::fs::File) -> Head {
        Head {
            file: Arc::new(file),
            bytes: Vec::new(),
        }
    }

    /// The file's first bytes now (a failed read reads as none).
    async fn read(&self) -> Vec<u8> {
        let file = self.file.clone();
        tokio::task::spawn_blocking(move || {
            use std::os::unix::fs::FileExt;
            let mut bytes = vec![0; HEAD_BYTES];
            let read = file.read_at(&mut bytes, 0).unwrap_or(0);
            bytes.truncate(read);
            bytes
        })
        .await
        .unwrap_or_default()
    }

    /// Takes the first bytes as they are now.
    async fn refresh(&mut self) {
        self.bytes = self.read().await;
    }

    /// Whether the first bytes seen so far are still there (more may have
    /// come: they are kept too).
    async fn unchanged(&mut self) -> bool {
        if self.bytes.len() == HEAD_BYTES {
            let now = self.read().await;
            return now == self.bytes;
        }
        let now = self.read().await;
        let same = now.starts_with(&self.bytes);
        if same {
            self.bytes = now;
        }
        same
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
