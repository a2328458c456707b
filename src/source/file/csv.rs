//! CSV files and stdin, read by csv-async ([`CsvStream`]) and named by
//! the header rules ([`CsvAssembler`]).

use std::sync::atomic::Ordering;

use tokio::io::AsyncRead;

use super::{FileReader, Flow, TORN, UNFINISHED};
use crate::codec::csv_stream::{Bad, BadRecord, Next, TapInput};
use crate::codec::{CsvAssembler, CsvStream, Naming, Taken};
use crate::error::Result;
use crate::parts::{or_meanwhile, Closed};
use crate::record::RawBatch;
use crate::source::input::InputReader;
use crate::warn_limited;

/// How CSV header messages name a file's positions and the file.
pub(super) const NAMING: Naming = Naming {
    position: "on line",
    here: "on this line",
    stream: "input",
};

impl FileReader<'_> {
    /// Why a record the CSV reader found bad is rejected.
    fn csv_reason(&self, bad: &BadRecord) -> String {
        let max = self.options.max_record_bytes;
        match bad.bad {
            Bad::TooLong => format!("CSV record longer than {max} bytes (--max-record-bytes)"),
            Bad::TooLongInQuote => format!(
                "CSV record longer than {max} bytes (--max-record-bytes; an unclosed quote?); \
                 still inside a quoted cell, so skipping to where it closes"
            ),
            Bad::Unclosed => NAMING.unclosed(),
        }
    }

    /// [`FileReader::torn_at_end`], once the input ended after `bytes_read`
    /// bytes.
    async fn torn_csv(&self, bytes_read: u64, unfinished: bool) -> bool {
        self.bytes_read.store(bytes_read, Ordering::Relaxed);
        self.torn_at_end(unfinished).await
    }

    /// CSV, read with csv-async (see [`CsvStream`]): quoted cells may hold
    /// delimiters, doubled quotes and newlines; the first row is the header
    /// unless `--no-header`.
    pub(super) async fn read_csv(&self, input: impl AsyncRead + Unpin + Send) -> Result<Flow> {
        let reader = InputReader::new(input, self.stop.clone());
        let records = CsvStream::new(
            reader,
            self.options.delimiter,
            self.options.max_record_bytes,
        );
        let mut rows = CsvAssembler::new(self.options.header, NAMING);
        self.read_csv_records(records, &mut rows, 0, true).await
    }

    /// Reads the records of `records`, a whole CSV input or a part of one
    /// that starts where a record does (after `lines_before` lines), named
    /// by `rows`; `ends_input`: its end is the input's.
    pub(super) async fn read_csv_records<R: TapInput + Send>(
        &self,
        mut records: CsvStream<R>,
        rows: &mut CsvAssembler,
        lines_before: u64,
        ends_input: bool,
    ) -> Result<Flow> {
        let mut batch = RawBatch::new(self.source.clone(), rows.content().clone());
        let mut last_line = lines_before;
        // Whether the end of the input was checked for a truncated file.
        let mut end_checked = false;
        loop {
            // Caught up with the input: pass on what we have rather than
            // wait for a full batch.
            let next = if batch.is_empty() {
                records.next().await
            } else {
                let flush = || self.send(batch.take(), last_line);
                match or_meanwhile(records.next(), flush).await {
                    Ok(next) => next,
                    Err(Closed) => return Ok(Flow::PipelineClosed),
                }
            };
            let next = match next {
                Ok(next) => next,
                Err(_) if self.stopped() => {
                    let unfinished = records.unfinished();
                    if let Some((line, raw)) = unfinished.filter(|_| self.loses_unfinished()) {
                        if let Err(error) = self.reject(line, &raw, UNFINISHED) {
                            return Err(self.fail_after(batch, last_line, error).await);
                        }
                    }
                    break;
                }
                Err(error) => {
                    let line = records.unfinished().map_or(last_line + 1, |(line, _)| line);
                    let error = self.read_error(line, error);
                    return Err(self.fail_after(batch, last_line, error).await);
                }
            };
            let line = match next {
                Next::Record(line) => {
                    if records.last_unterminated() {
                        end_checked = true;
                        if self.torn_csv(records.bytes_read(), true).await {
                            if let Err(error) = self.reject(line, records.last_raw(), TORN) {
                                return Err(self.fail_after(batch, last_line, error).await);
                            }
                            continue;
                        }
                    }
                    if rows.wants_header() {
                        let (cells, bytes) = (records.cells(), records.last_raw().len());
                        let location = self.location(line);
                        match rows.take(location, line, cells, bytes, |_, _| Ok(())) {
                            Taken::Rejected(reason) => {
                                self.reject(line, records.last_raw(), &reason)?
                            }
                            Taken::Header(()) | Taken::Record => {}
                        }
                        batch = RawBatch::new(self.source.clone(), rows.content().clone());
                        continue;
                    }
                    records.push_to(&mut batch);
                    line
                }
                Next::End => {
                    if ends_input && !end_checked {
                        self.torn_csv(records.bytes_read(), false).await;
                    }
                    break;
                }
                Next::Rejected(bad) => {
                    // A quote left open at the end of a file that shrank:
                    // the file was cut, not left unclosed.
                    let torn = bad.bad == Bad::Unclosed && {
                        end_checked = true;
                        self.torn_csv(records.bytes_read(), true).await
                    };
                    let mut reason = match torn {
                        true => TORN.to_string(),
                        false => self.csv_reason(&bad),
                    };
                    if rows.wants_header() {
                        reason = rows.unreadable(self.location(bad.line), bad.line, &reason);
                        batch = RawBatch::new(self.source.clone(), rows.content().clone());
                    }
                    if let Err(error) = self.reject(bad.line, &bad.raw, &reason) {
                        return Err(self.fail_after(batch, last_line, error).await);
                    }
                    continue;
                }
                Next::NeverClosed { line, last_line } => {
                    warn_limited!(
                        "{}: the quote opened in this record never closes: lines {line} to {last_line} were skipped",
                        self.location(line)
                    );
                    continue;
                }
            };
            batch.finish_record(line);
            last_line = line;
            self.note_end(
                line,
                records.record_end(),
                line - 1 + records.record_lines(),
            );
            if self.ctx.is_full(&batch) && self.send(batch.take(), last_line).await.is_err() {
                return Ok(Flow::PipelineClosed);
            }
        }
        Ok(Flow::after(self.send(batch, last_line).await))
    }
}
