//! The file source: files and standard input, read in the order given, as
//! CSV, JSON lines or plain lines; with `--follow` or glob patterns, every
//! match together, followed as they grow (`many`, `follow`, `watch`), and
//! resumed from `--checkpoint` (`checkpoint`, `open`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncReadExt};

pub mod checkpoint;
mod csv;
mod csv_parallel;
mod decompress;
mod ends;
mod fd_limit;
mod follow;
mod gone;
mod many;
mod open;
mod options;
mod pattern;
mod settled;
mod successors;
mod watch;

pub use self::checkpoint::FileCheckpoint;
pub use self::decompress::Decompress;
pub use self::many::OwnFiles;
pub use self::options::FileOptions;

use self::checkpoint::{CheckpointStore, Position};
use self::ends::Ends;
use self::open::Opened;
use super::input::InputReader;
use super::shrink::ShrinkWatch;
use crate::codec::Format;
use crate::error::{Error, Result};
use crate::parts::{Closed, Source, SourceContext};
use crate::record::{Content, Location, RawBatch, SourceInfo};
use crate::warn_limited;

/// How much to ask of the input per read.
const READ_SIZE: usize = 256 * 1024;

/// Why the last record of a file that shrank while it was read is
/// rejected: its line end, and maybe more of it, is gone.
const TORN: &str = "the file was truncated while being read: this last record, without its line end, may be cut off";

/// Why a record half read when a signal stopped the run is rejected: from
/// a pipe, its bytes are gone and would otherwise vanish unseen.
const UNFINISHED: &str =
    "unfinished record: the run was stopped (by a signal) before its end was read";

/// Reads files (and `-`, standard input): in the order given, or, with
/// `--follow` or glob patterns, every match together (see [`many`]).
pub struct FileSource {
    paths: Vec<String>,
    options: FileOptions,
    checkpoints: Vec<Arc<FileCheckpoint>>,
    store: Arc<CheckpointStore>,
    own: OwnFiles,
}

impl FileSource {
    /// Checks that every path can be read before any is, so a typo in the
    /// last path fails the run before the first file is output. Nothing is
    /// opened here: a named pipe must be opened once only (its writer is
    /// gone after the first open closes), and opening one waits for a
    /// writer, which happens in [`Source::run`] where a signal can stop it.
    /// A pattern must match a file, unless `--follow` waits for one; with
    /// `--follow` a missing file is waited for too.
    pub fn open(paths: Vec<String>, mut options: FileOptions) -> Result<Self> {
        for path in paths.iter().filter(|path| path.as_str() != "-") {
            if open::is_pattern(path) {
                pattern::check_pattern(path, options.follow)?;
                continue;
            }
            let as_path = Path::new(path);
            let open_error = |source| Error::Open {
                path: as_path.to_path_buf(),
                source,
            };
            let metadata = match std::fs::metadata(as_path) {
                Err(error) if options.follow && error.kind() == std::io::ErrorKind::NotFound => {
                    tracing::warn!("{path}: no such file yet: waiting for it (--follow)");
                    continue;
                }
                metadata => metadata.map_err(open_error)?,
            };
            if metadata.is_dir() {
                return Err(Error::IsDirectory {
                    path: as_path.to_path_buf(),
                });
            }
            check_readable(as_path).map_err(open_error)?;
        }
        if options.follow && paths.iter().any(|path| path == "-") {
            return Err(Error::Config(
                "--follow reads files: `-` (standard input) cannot be followed".into(),
            ));
        }
        if options.follow || paths.iter().any(|path| open::is_pattern(path)) {
            fd_limit::fit(&mut options);
        }
        let checkpoints = paths.iter().map(|_| Arc::default()).collect();
        Ok(FileSource {
            paths,
            options,
            checkpoints,
            store: Arc::new(CheckpointStore::in_memory()),
            own: OwnFiles::default(),
        })
    }

    /// Resumes every file from the checkpoint at `path` (`--checkpoint`),
    /// which [`CheckpointStore::save`] then keeps up to date.
    pub fn checkpoint_to(mut self, path: &Path) -> Result<Self> {
        let store = CheckpointStore::load(path).map_err(|source| Error::Open {
            path: path.to_path_buf(),
            source,
        })?;
        self.store = Arc::new(store);
        // The checkpoint needs where each batch ends in the file, which
        // only the single CSV reader notes.
        self.options.csv_workers = 1;
        Ok(self)
    }

    /// The files the run writes, which a pattern's matches skip.
    pub fn never_read(mut self, own: OwnFiles) -> Self {
        self.own = own;
        self
    }

    /// The positions of every file read, which the sink's acks advance.
    pub fn checkpoint_store(&self) -> Arc<CheckpointStore> {
        self.store.clone()
    }

    /// One checkpoint per path, in order, advanced as the sink writes
    /// (when the paths are read in order: no pattern, no `--follow`).
    pub fn checkpoints(&self) -> Vec<Arc<FileCheckpoint>> {
        self.checkpoints.clone()
    }

    /// Whether the paths are read together rather than in order.
    fn reads_many(&self) -> bool {
        self.options.follow || self.paths.iter().any(|path| open::is_pattern(path))
    }
}

impl Source for FileSource {
    fn run(self: Box<Self>, ctx: SourceContext) -> BoxFuture<'static, Result<()>> {
        Box::pin(async move {
            if self.reads_many() {
                return many::read_many(&self.paths, &self.options, &self.own, &self.store, &ctx)
                    .await;
            }
            for (path, checkpoint) in self.paths.iter().zip(&self.checkpoints) {
                if ctx.shutdown.is_cancelled() {
                    break;
                }
                let opened = if path == "-" {
                    Opened::stdin(self.options.decompress)
                } else {
                    // Opening a named pipe waits for its writer: a signal
                    // must end that wait. (The blocking thread stays parked
                    // in open(2); the runtime does not wait for it at exit.)
                    let opened = tokio::select! {
                        opened = tokio::fs::File::open(path) => opened,
                        _ = ctx.shutdown.cancelled() => break,
                    };
                    let file = opened.map_err(|source| Error::Open {
                        path: PathBuf::from(path),
                        source,
                    })?;
                    let options = self.options.for_path(path);
                    let store = &self.store;
                    open::prepare(file, path, &options, store, checkpoint, false, None).await?
                };
                if read_one(&ctx, path, &self.options, checkpoint.clone(), opened)
                    .await
                    .0?
                    == Flow::PipelineClosed
                {
                    break;
                }
            }
            Ok(())
        })
    }
}

/// Reads one opened input to its end (or until the run stops); also
/// returns where the last record it sent on ends (a failed read too: the
/// records before the failure were sent).
async fn read_one(
    ctx: &SourceContext,
    path: &str,
    options: &FileOptions,
    checkpoint: Arc<FileCheckpoint>,
    opened: Opened,
) -> (Result<Flow>, Position) {
    let display = if path == "-" {
        SourceInfo::STDIN.to_string()
    } else {
        path.to_string()
    };
    let options = options.for_path(path);
    // A followed file's stream is ended by its follower, which on
    // shutdown reads the file up to the size it had then first.
    let stop = match &opened.held {
        Some(_) => tokio_util::sync::CancellationToken::new(),
        None => ctx.shutdown.clone(),
    };
    let reader = FileReader {
        ctx,
        stop,
        held: opened.held,
        source: Arc::new(SourceInfo::File { path: display }),
        options: &options,
        checkpoint,
        shrink: opened.shrink,
        bytes_read: AtomicU64::new(0),
        skew: opened.skew,
        first_line: opened.start.line,
        ends: Mutex::new(Ends::new(opened.start)),
    };
    let format = options.format.unwrap_or_else(|| Format::from_path(path));
    let flow: Result<Flow> = match format {
        // A followed file is read as it grows, a few lines at a time: the
        // parallel reader's pieces would only add latency.
        Format::Csv if options.csv_workers > 1 && !options.follow => {
            reader
                .read_csv_parallel(opened.input, options.csv_workers)
                .await
        }
        Format::Csv => reader.read_csv(opened.input).await,
        Format::Jsonl => reader.read_lines(opened.input, Content::Jsonl).await,
        Format::Lines => reader.read_lines(opened.input, Content::Lines).await,
    };
    let end = reader.ends.lock().unwrap_or_else(|e| e.into_inner()).last;
    (flow, end)
}

/// The length of a line as `--max-record-bytes` measures it: without its
/// line end (a `\r` before the `\n` is part of it).
fn content_len(line: &[u8]) -> usize {
    line.len() - usize::from(line.last() == Some(&b'\r'))
}

/// Fails unless this process may read `path` (with its effective ids, as
/// open(2) checks), without opening it.
fn check_readable(path: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: `c_path` is a valid NUL-terminated string for the call.
    let status = unsafe {
        libc::faccessat(
            libc::AT_FDCWD,
            c_path.as_ptr(),
            libc::R_OK,
            libc::AT_EACCESS,
        )
    };
    if status == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// How reading one input ended, when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    /// The input ended (or shutdown stopped its read): every record read
    /// was sent, on to the next input.
    InputEnded,
    /// The pipeline takes no more records (the run is ending downstream):
    /// read no more inputs.
    PipelineClosed,
}

impl Flow {
    /// The flow after the last send of an input.
    fn after(sent: Result<(), Closed>) -> Flow {
        match sent {
            Ok(()) => Flow::InputEnded,
            Err(Closed) => Flow::PipelineClosed,
        }
    }
}

/// Reads one input.
struct FileReader<'a> {
    ctx: &'a SourceContext,
    /// Ends the input's reads: the run's shutdown, or, for a followed
    /// file, never (its follower ends the stream).
    stop: tokio_util::sync::CancellationToken,
    /// A followed file's: set when its stream ends before the file does
    /// (the run stops, or it gives up its slot), a partial last record
    /// then held back.
    held: Option<Arc<std::sync::atomic::AtomicBool>>,
    source: Arc<SourceInfo>,
    options: &'a FileOptions,
    checkpoint: Arc<FileCheckpoint>,
    /// For a regular file: notices it shrinking under the reader.
    shrink: Option<ShrinkWatch>,
    /// Bytes read of this input so far.
    bytes_read: AtomicU64,
    /// A byte at position `p` of the input is at `p + skew` in the file
    /// (a resumed file starts mid-way, maybe after a header put back).
    skew: i64,
    /// Lines of the file before the input's first byte.
    first_line: u64,
    /// Where the records put in batches end (locked once per record, or
    /// once per read for lines).
    ends: Mutex<Ends>,
}

impl FileReader<'_> {
    fn location(&self, line: u64) -> Location<'_> {
        Location {
            source: &self.source,
            pos: line,
        }
    }

    /// Whether the input was stopped rather than ended: a partial last
    /// record is then kept back, not sent.
    fn stopped(&self) -> bool {
        self.ctx.shutdown.is_cancelled()
            || self
                .held
                .as_ref()
                .is_some_and(|held| held.load(Ordering::Acquire))
    }

    fn read_error(&self, line: u64, source: std::io::Error) -> Error {
        if let Some(message) = decompress::corrupt(&source) {
            return Error::Corrupt(message);
        }
        Error::Read {
            location: self.location(line).to_string(),
            source,
        }
    }

    /// Notes that the last record put in a batch, on line `record`, ends
    /// at byte `end` of the input, `lines` lines into the file.
    fn note_end(&self, record: u64, end: u64, lines: u64) {
        let end = self.position(end, lines);
        let mut ends = self.ends.lock().unwrap_or_else(|e| e.into_inner());
        ends.note(record, end);
    }

    /// Byte `end` of the input, `lines` lines into the file.
    fn position(&self, end: u64, lines: u64) -> Position {
        let offset = (end as i64 + self.skew).max(0) as u64;
        Position {
            offset,
            line: lines,
        }
    }

    /// Notes the ends in `noted` (see [`Ends::note_all`]), under one lock.
    fn note_ends(&self, noted: &mut Vec<(u64, Position)>) {
        if !noted.is_empty() {
            let mut ends = self.ends.lock().unwrap_or_else(|e| e.into_inner());
            ends.note_all(noted);
        }
    }

    /// Sends `batch` with an ack that moves this input's checkpoint to its
    /// last line (and the end of its last record) once the sink has written it.
    async fn send(&self, mut batch: RawBatch, last_line: u64) -> Result<(), Closed> {
        if batch.is_empty() {
            return Ok(());
        }
        self.ends.lock().unwrap_or_else(|e| e.into_inner()).ack(
            &mut batch,
            &self.checkpoint,
            last_line,
        );
        self.ctx.out.send(batch).await
    }

    /// Lines (for `lines` and `jsonl`): split on `\n`, the last line may
    /// lack one. A line longer than the cap is rejected and skipped without
    /// ever being held whole.
    async fn read_lines(&self, input: impl AsyncRead + Unpin, decode: Content) -> Result<Flow> {
        let mut reader = InputReader::new(input, self.stop.clone());
        let max_line = self.options.max_record_bytes;
        let mut buf: Vec<u8> = Vec::with_capacity(READ_SIZE * 2);
        let mut batch = RawBatch::new(self.source.clone(), decode.clone());
        let mut line = self.first_line;
        // Input bytes before `buf`'s first.
        let mut drained = 0u64;
        // Inside a line that was already rejected as too long, its number
        // already counted: drop bytes up to its end.
        let mut skipping = false;
        // Ends of the records read from `buf` and not yet noted: locking
        // `ends` once per line cost 3 % of a run's time.
        let mut noted: Vec<(u64, Position)> = Vec::new();
        loop {
            let more = match self.read_more(&mut reader, &mut buf, line + 1).await {
                Ok(more) => more,
                Err(error) => return Err(self.fail_after(batch, line, error).await),
            };
            let Some((read, caught_up)) = more else {
                if !skipping && !buf.is_empty() && self.loses_unfinished() {
                    line += 1;
                    if let Err(error) = self.reject(line, &buf, UNFINISHED) {
                        return Err(self.fail_after(batch, line - 1, error).await);
                    }
                }
                break;
            };
            let mut consumed = 0;
            while let Some(end) = memchr::memchr(b'\n', &buf[consumed..]) {
                if skipping {
                    skipping = false;
                } else {
                    line += 1;
                    let text = &buf[consumed..consumed + end];
                    if content_len(text) > max_line {
                        if let Err(error) = self.reject_long_line(line, text) {
                            self.note_ends(&mut noted);
                            return Err(self.fail_after(batch, line - 1, error).await);
                        }
                    } else {
                        batch.push_record(text, line);
                        let end = drained + (consumed + end + 1) as u64;
                        noted.push((line, self.position(end, line)));
                    }
                }
                consumed += end + 1;
                if self.ctx.is_full(&batch) {
                    self.note_ends(&mut noted);
                    if self.send(batch.take(), line).await.is_err() {
                        return Ok(Flow::PipelineClosed);
                    }
                }
            }
            self.note_ends(&mut noted);
            buf.drain(..consumed);
            drained += consumed as u64;
            if read == 0 {
                if self.torn_at_end(!buf.is_empty() && !skipping).await {
                    line += 1;
                    if let Err(error) = self.reject(line, &buf, TORN) {
                        return Err(self.fail_after(batch, line - 1, error).await);
                    }
                } else if !buf.is_empty() && !skipping {
                    line += 1;
                    if content_len(&buf) > max_line {
                        if let Err(error) = self.reject_long_line(line, &buf) {
                            return Err(self.fail_after(batch, line - 1, error).await);
                        }
                    } else {
                        batch.push_record(&buf, line);
                        self.note_end(line, drained + buf.len() as u64, line);
                    }
                }
                break;
            }
            // Not yet a whole line: a `\r` at its end may be its line end.
            if content_len(&buf) > max_line {
                if !skipping {
                    line += 1;
                    if let Err(error) = self.reject_long_line(line, &buf) {
                        return Err(self.fail_after(batch, line - 1, error).await);
                    }
                    skipping = true;
                }
                drained += buf.len() as u64;
                buf.clear();
            }
            // Caught up with the writer: pass on what we have rather than
            // wait for a full batch.
            if caught_up && !batch.is_empty() && self.send(batch.take(), line).await.is_err() {
                return Ok(Flow::PipelineClosed);
            }
        }
        Ok(Flow::after(self.send(batch, line).await))
    }

    /// Reads more of the input onto the end of `buf`: how many bytes came,
    /// and whether that was less than there was room for (we caught up with
    /// the writer: a pipe, a growing file). `None` once shutdown ends the
    /// input; a read error names `line`.
    async fn read_more(
        &self,
        reader: &mut InputReader<impl AsyncRead + Unpin>,
        buf: &mut Vec<u8>,
        line: u64,
    ) -> Result<Option<(usize, bool)>> {
        buf.reserve(READ_SIZE);
        let asked = buf.capacity() - buf.len();
        match reader.read_buf(buf).await {
            Ok(read) => {
                self.bytes_read.fetch_add(read as u64, Ordering::Relaxed);
                Ok(Some((read, read < asked)))
            }
            Err(_) if self.stopped() => Ok(None),
            Err(error) => Err(self.read_error(line, error)),
        }
    }

    /// Whether a record only partly read when the run stopped must be
    /// rejected: a signal stopped it and the input is a pipe, FIFO or
    /// stdin, whose bytes are gone once read. A regular file still holds
    /// the record (and the rest) for a run that starts over.
    fn loses_unfinished(&self) -> bool {
        self.shrink.is_none() && self.ctx.out.signalled()
    }

    /// At the end of the input: whether it is a regular file that shrank
    /// while it was read (warned about, naming it), with a last record
    /// (`unfinished`: without its line end) that may then be torn.
    async fn torn_at_end(&self, unfinished: bool) -> bool {
        let (Some(shrink), SourceInfo::File { path }) = (&self.shrink, &*self.source) else {
            return false;
        };
        let bytes_read = self.bytes_read.load(Ordering::Relaxed);
        let Some(now) = shrink.shrank(bytes_read).await else {
            return false;
        };
        warn_limited!(
            "{}: the file was truncated while being read (now {now} bytes, {bytes_read} were read){}",
            path,
            if unfinished { ": its last record, cut off, is rejected" } else { "" }
        );
        unfinished
    }

    /// Sends the records read before a rejection that stops the run
    /// (`--on-error stop`) or a read that fails (a corrupt compressed
    /// stream): they were read, so they are written.
    async fn fail_after(&self, batch: RawBatch, last_line: u64, error: Error) -> Error {
        let _ = self.send(batch, last_line).await;
        error
    }

    /// Rejects the record at `line`, which is in no batch: it counts as
    /// read here (`read` = written + rejected).
    fn reject(&self, line: u64, raw: &[u8], reason: &str) -> Result<(), Error> {
        self.ctx.out.count_unsent(1);
        self.ctx.rejects.reject(self.location(line), raw, reason)
    }

    /// Rejects line `line` as too long; the dead-letter file gets its
    /// first bytes only.
    fn reject_long_line(&self, line: u64, text: &[u8]) -> Result<(), Error> {
        let reason = format!(
            "line longer than {} bytes (--max-record-bytes)",
            self.options.max_record_bytes
        );
        let head = &text[..text.len().min(256)];
        self.reject(line, head, &reason)
    }
}
