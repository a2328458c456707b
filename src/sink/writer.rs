//! The byte-stream sink: stdout or a file, as NDJSON or CSV, written in
//! large writes on the blocking pool while the next buffer fills.

use std::io::Write;
use std::os::fd::AsFd;
use std::path::PathBuf;

use futures::future::BoxFuture;
use tokio::task::JoinHandle;

use super::csv_out::CsvOutput;
use super::{Sink, SinkInput, WrittenCounter};
use crate::ack::Acks;
use crate::error::{Error, Result};
use crate::record::Batch;

/// Output buffered up to this size is written in one call.
const WRITE_SIZE: usize = 1024 * 1024;

/// How records are written out (`--output-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// One JSON object per line.
    #[default]
    Jsonl,
    /// CSV with a header row taken from the first record's keys.
    Csv,
}

/// A blocking byte stream the sink owns.
type Writer = Box<dyn Write + Send>;

/// Writes records to a byte stream (stdout, a file).
pub struct WriterSink {
    writer: Writer,
    name: PathBuf,
    format: OutputFormat,
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
        Ok(Self::new(std::fs::File::from(fd), name, format))
    }

    /// A sink writing to `path`, created (or truncated) now so that a bad
    /// path fails before anything is read.
    pub async fn create(path: impl Into<PathBuf>, format: OutputFormat) -> Result<Self> {
        let path = path.into();
        let file = tokio::fs::File::create(&path)
            .await
            .map_err(|source| Error::Output {
                path: path.clone(),
                source,
            })?;
        Ok(Self::new(file.into_std().await, path, format))
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
        }
    }
}

impl Sink for WriterSink {
    fn run(self: Box<Self>, mut input: SinkInput) -> BoxFuture<'static, Result<()>> {
        Box::pin(async move {
            let mut out = Output::new(self.writer, self.name, input.written_counter());
            let mut csv = (self.format == OutputFormat::Csv).then(CsvOutput::default);
            loop {
                match input.try_recv() {
                    Ok(batch) => {
                        out.add(batch, csv.as_mut());
                        if out.filling.bytes.len() >= WRITE_SIZE {
                            out.start_write().await?;
                        }
                        continue;
                    }
                    Err(true) => break,
                    Err(false) => {}
                }
                // Caught up with the pipeline: write what we have now rather
                // than hold it for a full buffer, then wait for more input
                // or for that write to finish (so its acks fire promptly).
                out.start_write().await?;
                tokio::select! {
                    written = out.finish_write(), if out.writing.is_some() => written?,
                    batch = input.recv() => match batch {
                        Some(batch) => out.add(batch, csv.as_mut()),
                        None => break,
                    },
                }
            }
            out.start_write().await?;
            out.finish_write().await
        })
    }
}

/// What a write on the blocking pool hands back: the writer, the emptied
/// buffer for reuse, and how the write went.
type WriteDone = (Writer, Vec<u8>, std::io::Result<()>);

/// Encoded records and the acks that fire once they are written.
#[derive(Default)]
struct Chunk {
    bytes: Vec<u8>,
    acks: Acks,
    records: usize,
}

/// The writer, the chunk being filled, and the chunk being written (on
/// the blocking pool, which hands writer and buffer back when done).
struct Output {
    writer: Option<Writer>,
    name: PathBuf,
    filling: Chunk,
    writing: Option<(JoinHandle<WriteDone>, Chunk)>,
    spare: Vec<u8>,
    written: WrittenCounter,
}

impl Output {
    fn new(writer: Writer, name: PathBuf, written: WrittenCounter) -> Self {
        Output {
            writer: Some(writer),
            name,
            filling: Chunk {
                bytes: Vec::with_capacity(WRITE_SIZE + WRITE_SIZE / 4),
                ..Chunk::default()
            },
            writing: None,
            spare: Vec::with_capacity(WRITE_SIZE + WRITE_SIZE / 4),
            written,
        }
    }

    fn add(&mut self, batch: Batch, csv: Option<&mut CsvOutput>) {
        match csv {
            None => self.filling.bytes.extend_from_slice(batch.as_ndjson()),
            Some(csv) => csv.encode(&batch, &mut self.filling.bytes),
        }
        self.filling.records += batch.len();
        self.filling.acks.append(batch.acks);
    }

    /// Hands the filled chunk to the blocking pool, after the previous
    /// write is done (writes stay in order, one at a time).
    async fn start_write(&mut self) -> Result<()> {
        if self.filling.records == 0 && self.filling.acks.is_empty() {
            return Ok(());
        }
        self.finish_write().await?;
        let next = Chunk {
            bytes: std::mem::take(&mut self.spare),
            ..Chunk::default()
        };
        let mut chunk = std::mem::replace(&mut self.filling, next);
        let bytes = std::mem::take(&mut chunk.bytes);
        let mut writer = self.writer.take().expect("no write in flight");
        let handle = tokio::task::spawn_blocking(move || {
            let result = writer.write_all(&bytes).and_then(|()| writer.flush());
            (writer, bytes, result)
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
        let (writer, mut bytes, result) = joined.map_err(|join_error| Error::Output {
            path: self.name.clone(),
            source: std::io::Error::other(join_error.to_string()),
        })?;
        self.writer = Some(writer);
        result.map_err(|source| self.error(source))?;
        bytes.clear();
        self.spare = bytes;
        self.written.add(chunk.records);
        chunk.acks.deliver();
        Ok(())
    }

    fn error(&self, source: std::io::Error) -> Error {
        if source.kind() == std::io::ErrorKind::BrokenPipe {
            Error::BrokenPipe
        } else {
            Error::Output {
                path: self.name.clone(),
                source,
            }
        }
    }
}
