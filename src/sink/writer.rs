//! The byte-stream sink: stdout or a file, as NDJSON or CSV, written in
//! large buffered writes.

use std::path::PathBuf;

use futures::future::BoxFuture;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::csv_out::CsvOutput;
use super::{Sink, SinkInput};
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

/// Writes records to any byte stream (stdout, a file).
pub struct WriterSink {
    writer: Box<dyn AsyncWrite + Unpin + Send>,
    name: PathBuf,
    format: OutputFormat,
}

impl WriterSink {
    /// A sink writing to standard output.
    pub fn stdout(format: OutputFormat) -> Self {
        WriterSink {
            writer: Box::new(tokio::io::stdout()),
            name: PathBuf::from("<stdout>"),
            format,
        }
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
        Ok(WriterSink {
            writer: Box::new(file),
            name: path,
            format,
        })
    }

    /// A sink writing to any stream; `name` is used in error messages.
    pub fn new(
        writer: impl AsyncWrite + Unpin + Send + 'static,
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
            let mut out = Output {
                writer: self.writer,
                name: self.name,
                buf: Vec::with_capacity(WRITE_SIZE + WRITE_SIZE / 4),
                pending: Acks::none(),
                pending_records: 0,
            };
            let mut csv = (self.format == OutputFormat::Csv).then(CsvOutput::default);
            loop {
                let batch = match input.try_recv() {
                    Ok(batch) => batch,
                    Err(true) => break,
                    Err(false) => {
                        // Caught up with the pipeline: write what we have
                        // now rather than hold it for a full buffer.
                        out.write(&input).await?;
                        match input.recv().await {
                            Some(batch) => batch,
                            None => break,
                        }
                    }
                };
                out.add(batch, csv.as_mut());
                if out.buf.len() >= WRITE_SIZE {
                    out.write(&input).await?;
                }
            }
            out.write(&input).await?;
            out.writer.shutdown().await.map_err(|e| out.error(e))
        })
    }
}

/// Encoded records waiting to be written, and the acks that fire once
/// they are.
struct Output {
    writer: Box<dyn AsyncWrite + Unpin + Send>,
    name: PathBuf,
    buf: Vec<u8>,
    pending: Acks,
    pending_records: usize,
}

impl Output {
    fn add(&mut self, batch: Batch, csv: Option<&mut CsvOutput>) {
        match csv {
            None => self.buf.extend_from_slice(batch.as_ndjson()),
            Some(csv) => csv.encode(&batch, &mut self.buf),
        }
        self.pending_records += batch.len();
        self.pending.append(batch.acks);
    }

    /// Writes and flushes the buffer, then fires the acks of what it held.
    async fn write(&mut self, input: &SinkInput) -> Result<()> {
        if self.pending_records == 0 && self.pending.is_empty() {
            return Ok(());
        }
        if !self.buf.is_empty() {
            self.writer
                .write_all(&self.buf)
                .await
                .map_err(|e| self.error(e))?;
            self.writer.flush().await.map_err(|e| self.error(e))?;
            self.buf.clear();
        }
        input.count_written(self.pending_records);
        self.pending_records = 0;
        std::mem::take(&mut self.pending).deliver();
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
