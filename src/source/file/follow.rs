//! `--follow`: a file read as `tail -F` reads it. A task reads the file
//! into a channel, and once at its end waits for more (a file-watch event
//! or the poll interval). At the end it checks the path: a new file there
//! (rotation by rename) or none (deletion) ends the stream once the old
//! file's last bytes are read; a file shorter than what was read
//! (copytruncate) ends it at once, to be read again from the start.
//!
//! At its end the task costs nothing but a timer: the file is read (on
//! the blocking pool) only once `fstat` shows more bytes than were read,
//! and its bytes are compared only once its size or modification time
//! changed.

use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
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
    /// A compressed file, read to its end (or to where its stream is cut
    /// short): not followed, but read again, from its start, its
    /// delivered records skipped, once it changes.
    ReadOnce,
    /// At its end while other files wait for a slot (`--max-open-files`):
    /// closed, to be opened again where its last whole line ends once it
    /// grows (a partial last line is read again then).
    Idle,
}

/// What was read of a file whose read ended: its size as read, its first
/// bytes and the bytes just before that size (up to [`HEAD_BYTES`] each).
/// A file opened again later is resumed only if they are still there: a
/// file truncated or rewritten while closed is read from its start.
#[derive(Debug, Clone, Default)]
pub(super) struct Seen {
    pub size: u64,
    first: Vec<u8>,
    last: Vec<u8>,
    /// Its modification time when it was opened (a file read once whole,
    /// compressed): rewritten in place at the same size, only that tells.
    modified: Option<(i64, i64)>,
}

impl Seen {
    /// `file` as it is now: `size` bytes of it read.
    pub(super) fn of(file: &std::fs::File, size: u64) -> Seen {
        let from = size.saturating_sub(HEAD_BYTES as u64);
        Seen {
            size,
            first: read_at(file, 0, HEAD_BYTES),
            last: read_at(file, from, (size - from) as usize),
            modified: file.metadata().ok().map(|m| (m.mtime(), m.mtime_nsec())),
        }
    }

    /// Whether the file at `path` may have changed since: another size,
    /// or another modification time when it was taken. Worth opening it
    /// again for [`Seen::differs`] then.
    pub(super) fn changed(&self, path: &str) -> bool {
        std::fs::metadata(path).is_ok_and(|m| {
            m.len() != self.size
                || self
                    .modified
                    .is_some_and(|modified| modified != (m.mtime(), m.mtime_nsec()))
        })
    }

    /// Why `file` is not the file read (shorter, or other bytes where
    /// they were read), if it is not.
    pub(super) fn differs(&self, file: &std::fs::File) -> Option<String> {
        let len = file.metadata().map_or(self.size, |m| m.len());
        if len < self.size {
            return Some(format!(
                "it is shorter ({len} bytes) than what was read ({} bytes)",
                self.size
            ));
        }
        if read_at(file, 0, self.first.len()) != self.first {
            return Some("its first bytes are not the ones read".into());
        }
        let from = self.size - self.last.len() as u64;
        (read_at(file, from, self.last.len()) != self.last)
            .then(|| format!("its bytes {from}..{} are not the ones read", self.size))
    }
}

/// The byte stream of a followed file, as the readers take it.
pub(super) type FollowStream = StreamReader<tokio_stream_shim::Receiver, Bytes>;

/// The error a followed file's stream ends with when the file does not
/// end there (the run stops, or the file gives up its slot): the reader,
/// told by [`Follow::held`], keeps a partial last record back, for a read
/// that starts again at its first byte.
const HELD: &str = "the followed file's read stops here";

/// What following a file needs.
pub(super) struct Follow {
    /// The file, opened at `path`.
    pub file: Arc<std::fs::File>,
    /// Where reading starts.
    pub start: u64,
    pub path: PathBuf,
    /// What comes before the file's bytes (a resumed CSV's header).
    pub prefix: Vec<u8>,
    /// Notified when the watcher sees the path change.
    pub wake: Arc<Notify>,
    /// How often the file is looked at regardless (`--poll-interval`).
    pub poll: Duration,
    /// How many files wait for a slot: an idle file then gives up its own.
    pub waiting: Arc<AtomicUsize>,
    /// Set before the stream ends with [`HELD`]: the reader reads it.
    pub held: Arc<AtomicBool>,
    /// On shutdown the file is read up to the size it has then, and its
    /// stream ended (held if the file is still at its path).
    pub shutdown: CancellationToken,
}

/// Starts following (see the module documentation); the task returns why
/// the stream ended and what was read.
pub(super) fn follow(with: Follow) -> (FollowStream, JoinHandle<(Ended, Seen)>) {
    // A few reads ahead at most: the pipeline's backpressure reaches the file.
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(2);
    let task = tokio::spawn(async move {
        let mut follower = Follower {
            tx,
            position: with.start,
            head: Head::default(),
            with,
        };
        let ended = follower.run().await;
        let seen = Seen {
            size: follower.position,
            first: follower.head.bytes,
            last: follower.head.last,
            modified: None,
        };
        (ended, seen)
    });
    (StreamReader::new(tokio_stream_shim::Receiver(rx)), task)
}

/// One followed file's task.
struct Follower {
    /// The stream's sending end; its receiver is the file's reader (which
    /// dropping it means the reader stopped). Dropped when the task ends,
    /// which ends the stream: the file's end, unless [`HELD`] came last.
    tx: mpsc::Sender<std::io::Result<Bytes>>,
    with: Follow,
    /// Bytes of the file read.
    position: u64,
    head: Head,
}

impl Follower {
    async fn run(&mut self) -> Ended {
        if !self.with.prefix.is_empty() {
            let prefix = Bytes::from(std::mem::take(&mut self.with.prefix));
            if self.tx.send(Ok(prefix)).await.is_err() {
                return Ended::Stopped;
            }
        }
        let identity = match self.with.file.metadata() {
            Ok(metadata) => (metadata.dev(), metadata.ino()),
            Err(error) => {
                let _ = self.tx.send(Err(error)).await;
                return Ended::Stopped;
            }
        };
        self.head.refresh(&self.with.file, self.position);
        // The size and modification time last looked at: the file's bytes
        // are compared again only once they change.
        let mut looked = stat(&self.with.file);
        // Set once the path holds another file or none: the next end of
        // this file is its last.
        let mut last_end: Option<Ended> = None;
        // On shutdown: the size the file had then, read up to it.
        let mut stop_at: Option<u64> = None;
        loop {
            if stop_at.is_none() && self.with.shutdown.is_cancelled() {
                stop_at = Some(stat(&self.with.file).0);
            }
            match self.read_more(stop_at).await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(()) => return Ended::Stopped,
            }
            if let Some(ended) = last_end {
                return ended;
            }
            let path = &self.with.path;
            let ended = look(&self.with.file, path, identity, self.position);
            if stop_at.is_some() {
                // A file rotated away or deleted is finished: its stream
                // ends as its end. One still at its path holds back a
                // partial last record for the next run.
                return match ended {
                    Some(ended) => ended,
                    None => self.hold(Ended::Stopped).await,
                };
            }
            match ended {
                // The writer may still add to the old file for a moment
                // (it has not reopened the path yet): read it once more
                // after one interval, or as soon as the new file has
                // bytes (the writer has moved to it).
                Some(ended @ (Ended::Rotated | Ended::Deleted)) => {
                    last_end = Some(ended);
                    if has_bytes(path) {
                        continue;
                    }
                    let grace = tokio::time::sleep(self.with.poll);
                    tokio::pin!(grace);
                    loop {
                        tokio::select! {
                            _ = &mut grace => break,
                            _ = self.tx.closed() => return Ended::Stopped,
                            _ = self.with.shutdown.cancelled() => break,
                            _ = self.with.wake.notified() => {
                                if has_bytes(path) {
                                    break;
                                }
                            }
                        }
                    }
                }
                Some(ended) => {
                    tracing::warn!(
                        "{}: truncated (now shorter than the {} bytes read): read again \
                         from its start",
                        path.display(),
                        self.position
                    );
                    return ended;
                }
                // At its end while files wait for a slot: it gives up its
                // own, a partial last line held back.
                None if self.with.waiting.load(Ordering::Relaxed) > 0 => {
                    return self.hold(Ended::Idle).await;
                }
                None => {
                    tokio::select! {
                        _ = self.with.wake.notified() => {}
                        _ = tokio::time::sleep(self.with.poll) => {}
                        _ = self.tx.closed() => return Ended::Stopped,
                        _ = self.with.shutdown.cancelled() => continue,
                    }
                    let now = stat(&self.with.file);
                    if now == looked {
                        continue;
                    }
                    looked = now;
                    // Truncated and written again before we looked: its
                    // size may be past `position` already, but its first
                    // bytes, or the last ones read, changed.
                    if let Some(which) = self.head.changed(&self.with.file, self.position) {
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
    }

    /// Reads what the file has past `position` (up to `stop_at`, on
    /// shutdown) into the stream: whether something came; `Err` if the
    /// reader is gone or the read failed (sent to the reader).
    async fn read_more(&mut self, stop_at: Option<u64>) -> Result<bool, ()> {
        let len = stat(&self.with.file).0;
        let until = stop_at.map_or(len, |stop| stop.min(len));
        if until <= self.position {
            return Ok(false);
        }
        let want = (until - self.position).min(READ_SIZE as u64) as usize;
        let (file, at) = (self.with.file.clone(), self.position);
        let read = tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; want];
            let read = file.read_at(&mut buf, at)?;
            buf.truncate(read);
            Ok(buf)
        })
        .await
        .unwrap_or_else(|error| Err(std::io::Error::other(error)));
        match read {
            Ok(buf) if buf.is_empty() => Ok(false),
            Ok(buf) => {
                self.position += buf.len() as u64;
                self.head.read_to(&buf);
                match self.tx.send(Ok(Bytes::from(buf))).await {
                    Ok(()) => Ok(true),
                    Err(_) => Err(()),
                }
            }
            Err(error) => {
                let _ = self.tx.send(Err(error)).await;
                Err(())
            }
        }
    }

    /// Ends the stream here without ending the file ([`HELD`]).
    async fn hold(&mut self, ended: Ended) -> Ended {
        self.with.held.store(true, Ordering::Release);
        let _ = self.tx.send(Err(std::io::Error::other(HELD))).await;
        ended
    }
}

/// The file's size and modification time (zero if it cannot be looked
/// at): an `fstat`, cheap enough for the async worker.
fn stat(file: &std::fs::File) -> (u64, i64, i64) {
    file.metadata()
        .map_or((0, 0, 0), |m| (m.len(), m.mtime(), m.mtime_nsec()))
}

/// Whether the file at `path` has bytes: after a rotation, the writer
/// has moved to it.
fn has_bytes(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|metadata| metadata.len() > 0)
}

/// At the end of the file: what became of it, or `None` if it is still
/// the file at `path`, at least `position` bytes long.
fn look(file: &std::fs::File, path: &Path, identity: (u64, u64), position: u64) -> Option<Ended> {
    if file.metadata().is_ok_and(|m| m.len() < position) {
        return Some(Ended::Truncated);
    }
    match std::fs::metadata(path) {
        Ok(now) if (now.dev(), now.ino()) == identity => None,
        Ok(_) => Some(Ended::Rotated),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Some(Ended::Deleted),
        Err(_) => None,
    }
}

/// `len` bytes of `file` at `at` (fewer at its end; none if the read fails).
fn read_at(file: &std::fs::File, at: u64, len: usize) -> Vec<u8> {
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
}

/// A followed file's first bytes (up to [`HEAD_BYTES`]) and the last
/// ones read (as many), to notice it truncated and written again between
/// two looks: with the same header, its first bytes alone do not show it.
#[derive(Default)]
struct Head {
    bytes: Vec<u8>,
    /// The bytes just before the read position.
    last: Vec<u8>,
}

/// How many first (and last read) bytes [`Head`] and [`Seen`] compare.
const HEAD_BYTES: usize = 256;

impl Head {
    /// Takes the first bytes, and those before `position`, as they are now.
    fn refresh(&mut self, file: &std::fs::File, position: u64) {
        self.bytes = read_at(file, 0, HEAD_BYTES);
        let from = position.saturating_sub(HEAD_BYTES as u64);
        self.last = read_at(file, from, (position - from) as usize);
    }

    /// `buf` was just read: the last bytes read end with it.
    fn read_to(&mut self, buf: &[u8]) {
        let keep = HEAD_BYTES.saturating_sub(buf.len()).min(self.last.len());
        self.last.drain(..self.last.len() - keep);
        self.last
            .extend_from_slice(&buf[buf.len().saturating_sub(HEAD_BYTES)..]);
    }

    /// Which bytes seen so far are not there any more: the first ones
    /// (more may have come: they are kept too), or the last ones read,
    /// which end at `position`.
    fn changed(&mut self, file: &std::fs::File, position: u64) -> Option<&'static str> {
        let now = read_at(file, 0, HEAD_BYTES);
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
        (read_at(file, from, self.last.len()) != self.last).then_some("last bytes read")
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
