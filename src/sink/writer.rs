//! The byte-stream sink: stdout or a file, as NDJSON or CSV, written in
//! large writes on the blocking pool while the next buffer fills.

use std::io::{IoSlice, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::task::JoinHandle;

use super::csv_out::CsvOutput;
use super::files::{self, WriteMode};
use super::gone::OutputWatch;
use crate::ack::Acks;
use crate::error::{Error, Result};
use crate::parts::{whole_writes, Rejects, Sink, SinkInput, TryRecv, WrittenCounter};
use crate::record::Batch;

/// Output buffered up to this size is written in one call.
const WRITE_SIZE: usize = 1024 * 1024;

/// A batch smaller than this is copied into a shared buffer; a larger one
/// is written from its own buffer (no copy), as one part of a `writev`.
const SMALL_BATCH: usize = 16 * 1024;

/// Most buffers one `writev` may take (the usual `IOV_MAX`).
const MAX_PARTS: usize = 1024;

/// How records are written out (`--output-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// One JSON object per line.
    #[default]
    Jsonl,
    /// CSV with a header row taken from the first record's keys (or the
    /// appended file's header); a record with another key is rejected.
    Csv,
}

/// A blocking byte stream the sink owns.
type Writer = Box<dyn Write + Send>;

/// Writes records to a byte stream (stdout, a file).
pub struct WriterSink {
    writer: Writer,
    name: PathBuf,
    format: OutputFormat,
    /// The columns of CSV output when they are known at the start (the
    /// header of the file appended to); no header row is written then.
    columns: Option<Vec<String>>,
    /// The columns of CSV output `--select` names, when no file's header
    /// sets them: the header row written before the first record.
    header: Option<Vec<String>>,
    /// A regular file written (`-o`, or stdout redirected to one), checked
    /// after each write for having been deleted or renamed.
    watch: Option<Arc<OutputWatch>>,
}

impl WriterSink {
    /// A sink writing to standard output, unbuffered by Rust's `Stdout`
    /// (the sink does its own buffering, in large writes).
    pub fn stdout(format: OutputFormat) -> Result<Self> {
        let name = PathBuf::from("<stdout>");
        let fd = std::io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|source| Error::Output {
                path: name.clone(),
                source,
            })?;
        let file = std::fs::File::from(fd);
        let watch = OutputWatch::of(&name, None, &file).ok().flatten();
        Ok(Self::new(file, name, format).watched(watch))
    }

    /// A sink writing to `path`, created (or truncated) now so that a bad
    /// path fails before anything is read.
    pub async fn create(path: impl Into<PathBuf>, format: OutputFormat) -> Result<Self> {
        Self::open(path, format, WriteMode::Truncate).await
    }

    /// A sink writing to `path`, opened now (created, then emptied or
    /// appended to, as `mode` says) so that a bad path fails before
    /// anything is read. Appending CSV to a non-empty file writes no
    /// second header row.
    pub async fn open(
        path: impl Into<PathBuf>,
        format: OutputFormat,
        mode: WriteMode,
    ) -> Result<Self> {
        let path = path.into();
        let opening = path.clone();
        let opened = tokio::task::spawn_blocking(move || files::open(&opening, mode))
            .await
            .map_err(|join_error| Error::panicked("opening the output", join_error))?
            .map_err(|source| Error::Output {
                path: path.clone(),
                source,
            })?;
        let watch = OutputWatch::of(&path, Some(&path), &opened.file)
            .ok()
            .flatten();
        Ok(Self::new(opened.file, path, format).watched(watch))
    }

    /// A sink writing to an output file [`super::opening`] opened.
    pub fn from_opened(opened: super::opening::OpenedOutput, format: OutputFormat) -> Self {
        let path = opened.path;
        let watch = OutputWatch::of(&path, Some(&path), &opened.file)
            .ok()
            .flatten();
        let mut sink = Self::new(opened.file, path, format).watched(watch);
        sink.columns = opened.columns;
        sink
    }

    fn watched(mut self, watch: Option<OutputWatch>) -> Self {
        self.watch = watch.map(Arc::new);
        self
    }

    /// CSV output's columns are `names` (`--select`), whatever the first
    /// record holds, unless the file appended to has a header already.
    pub fn with_header(mut self, names: Vec<String>) -> Self {
        self.header = Some(names);
        self
    }

    /// A sink writing to any blocking stream; `name` is used in error messages.
    pub fn new(
        writer: impl Write + Send + 'static,
        name: impl Into<PathBuf>,
        format: OutputFormat,
    ) -> Self {
        WriterSink {
            writer: Box::new(writer),
            name: name.into(),
            format,
            columns: None,
            header: None,
            watch: None,
        }
    }
}

impl Sink for WriterSink {
    fn run(self: Box<Self>, mut input: SinkInput) -> BoxFuture<'static, Result<()>> {
        Box::pin(async move {
            let mut out = Output::new(
                self.writer,
                self.name,
                input.written_counter(),
                input.rejects(),
            );
            out.watch = self.watch;
            let (columns, header) = (self.columns, self.header);
            let mut csv = (self.format == OutputFormat::Csv).then(|| match (columns, header) {
                (Some(columns), _) => CsvOutput::with_columns(columns),
                (None, Some(header)) => CsvOutput::with_header(header),
                (None, None) => CsvOutput::default(),
            });
            loop {
                match input.try_recv() {
                    TryRecv::Batch(batch) => {
                        out.add(batch, csv.as_mut())?;
                        if out.filling.len >= WRITE_SIZE {
                            out.start_write().await?;
                        }
                        continue;
                    }
                    TryRecv::Closed => break,
                    TryRecv::Empty => {}
                }
                // Caught up with the pipeline: write what we have now rather
                // than hold it for a full buffer, then wait for more input
                // or for that write to finish (so its acks fire promptly).
                out.start_write().await?;
                tokio::select! {
                    written = out.finish_write(), if out.writing.is_some() => written?,
                    batch = input.recv() => match batch {
                        Some(batch) => out.add(batch, csv.as_mut())?,
                        None => break,
                    },
                }
            }
            out.start_write().await?;
            out.finish_write().await
        })
    }
}

/// What a write on the blocking pool hands back: the writer, how the
/// write went, and how long it took.
type WriteDone = (Writer, Result<()>, std::time::Duration);

/// Encoded records and the acks that fire once they are written: the
/// buffers of large batches as they came, small ones copied together.
#[derive(Default)]
struct Chunk {
    parts: Vec<Vec<u8>>,
    /// The last part takes small batches (it is not a batch's own buffer).
    last_part_open: bool,
    len: usize,
    acks: Acks,
    records: usize,
}

impl Chunk {
    fn open_part(&mut self) -> &mut Vec<u8> {
        if !self.last_part_open {
            self.parts.push(Vec::with_capacity(SMALL_BATCH));
            self.last_part_open = true;
        }
        self.parts.last_mut().expect("just made")
    }
}

/// The writer, the chunk being filled, and the chunk being written (on
/// the blocking pool, which hands the writer back when done).
struct Output {
    writer: Option<Writer>,
    name: PathBuf,
    filling: Chunk,
    writing: Option<(JoinHandle<WriteDone>, Chunk)>,
    written: WrittenCounter,
    /// Takes the records that cannot be written (CSV); their dead-letter
    /// lines are written out with each chunk, before its acks fire.
    rejects: Arc<Rejects>,
    /// Checked after each write, before its acks fire.
    watch: Option<Arc<OutputWatch>>,
}

impl Output {
    fn new(writer: Writer, name: PathBuf, written: WrittenCounter, rejects: Arc<Rejects>) -> Self {
        Output {
            writer: Some(writer),
            name,
            filling: Chunk::default(),
            writing: None,
            written,
            rejects,
            watch: None,
        }
    }

    /// Adds a batch to the chunk being filled; fails when a record that
    /// cannot be written ends the run (`--on-error stop`).
    fn add(&mut self, mut batch: Batch, csv: Option<&mut CsvOutput>) -> Result<()> {
        let chunk = &mut self.filling;
        chunk
            .acks
            .append(std::mem::replace(&mut batch.acks, Acks::none()));
        chunk.records += batch.len();
        let added = match csv {
            Some(csv) => {
                let part = chunk.open_part();
                let before = part.len();
                let rows = csv.encode(&batch, part, &self.rejects);
                let added = part.len() - before;
                chunk.len += added;
                // Rejected records are counted there, not as written.
                chunk.records -= batch.len() - rows?;
                return Ok(());
            }
            None if batch.as_ndjson().len() < SMALL_BATCH => {
                let part = chunk.open_part();
                part.extend_from_slice(batch.as_ndjson());
                batch.as_ndjson().len()
            }
            None => {
                let bytes = batch.into_ndjson();
                let len = bytes.len();
                chunk.parts.push(bytes);
                chunk.last_part_open = false;
                len
            }
        };
        chunk.len += added;
        Ok(())
    }

    /// Hands the filled chunk to the blocking pool, after the previous
    /// write is done (writes stay in order, one at a time).
    async fn start_write(&mut self) -> Result<()> {
        if self.filling.records == 0 && self.filling.acks.is_empty() {
            return Ok(());
        }
        self.finish_write().await?;
        let mut chunk = std::mem::take(&mut self.filling);
        let parts = std::mem::take(&mut chunk.parts);
        let mut writer = self.writer.take().expect("no write in flight");
        let rejects = self.rejects.clone();
        let watch = self.watch.clone();
        let name = self.name.clone();
        let handle = tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let result = whole_writes::whole(|| write_parts(&mut *writer, &parts))
                .and_then(|()| writer.flush())
                .map_err(|source| output_error(&name, source))
                .and_then(|()| watch.map_or(Ok(()), |watch| watch.check()))
                .and_then(|()| rejects.finish());
            (writer, result, started.elapsed())
        });
        self.writing = Some((handle, chunk));
        Ok(())
    }

    /// Waits for the write in flight, if any, then fires its acks.
    /// Cancel-safe: the write stays in flight until awaited to the end.
    async fn finish_write(&mut self) -> Result<()> {
        let Some((handle, _)) = &mut self.writing else {
            return Ok(());
        };
        let joined = handle.await;
        let (_, chunk) = self.writing.take().expect("checked above");
        let (writer, result, elapsed) =
            joined.map_err(|join_error| Error::panicked("the output write", join_error))?;
        self.writer = Some(writer);
        result?;
        self.written.add_write(chunk.records, chunk.len, elapsed);
        chunk.acks.deliver();
        Ok(())
    }
}

/// The error of a failed write to the output `name`.
fn output_error(name: &std::path::Path, source: std::io::Error) -> Error {
    if source.kind() == std::io::ErrorKind::BrokenPipe {
        Error::BrokenPipe
    } else {
        Error::Output {
            path: name.to_path_buf(),
            source,
        }
    }
}

/// Writes every part, in order, with as few `writev` calls as it takes.
fn write_parts(writer: &mut (impl Write + ?Sized), parts: &[Vec<u8>]) -> std::io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = parts.iter().map(|part| IoSlice::new(part)).collect();
    let mut rest = &mut slices[..];
    IoSlice::advance_slices(&mut rest, 0);
    while !rest.is_empty() {
        let take = rest.len().min(MAX_PARTS);
        match writer.write_vectored(&rest[..take]) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(written) => IoSlice::advance_slices(&mut rest, written),
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes at most 7 bytes of at most 3 buffers per call, like a pipe
    /// that is nearly full.
    struct Stingy(Vec<u8>);

    impl Write for Stingy {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }

        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> std::io::Result<usize> {
            let mut budget = 7;
            for buf in bufs.iter().take(3) {
                let take = buf.len().min(budget);
                self.0.extend_from_slice(&buf[..take]);
                budget -= take;
            }
            Ok(7 - budget)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_part_is_written_in_order_whatever_each_write_takes() {
        let parts: Vec<Vec<u8>> = (0..3000)
            .map(|n| format!("{n}").into_bytes().repeat(n % 4))
            .collect();
        let mut sink = Stingy(Vec::new());
        write_parts(&mut sink, &parts).unwrap();
        assert_eq!(sink.0, parts.concat());
    }
}
