//! CSV files and stdin, read by csv-async ([`CsvStream`]) and named by
//! the header rules ([`CsvAssembler`]).

use std::sync::atomic::Ordering;

use tokio::io::AsyncRead;

use super::{FileReader, Flow, TORN, UNFINISHED};
use crate::codec::csv_stream::{Bad, BadRecord, Next};
use crate::codec::{CsvAssembler, CsvStream, Naming, Taken};
use crate::error::Result;
use crate::parts::{or_meanwhile, Closed};
use crate::record::RawBatch;
use crate::source::input::InputReader;
use crate::warn_limited;

/// How CSV header messages name a file's positions and the file.
const NAMING: Naming = Naming {
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
            Bad::Torn => TORN.to_string(),
        }
    }

    /// CSV, read with csv-async (see [`CsvStream`]): quoted cells may hold
    /// delimiters, doubled quotes and newlines; the first row is the header
    /// unless `--no-header`.
    pub(super) async fn read_csv(&self, input: impl AsyncRead + Unpin + Send) -> Result<Flow> {
        let reader = InputReader::new(input, self.ctx.shutdown.clone());
        let max = self.options.max_record_bytes;
        let mut records = CsvStream::new(reader, self.options.delimiter, max);
        let mut rows = CsvAssembler::new(self.options.header, NAMING);
        let mut batch = RawBatch::new(self.source.clone(), rows.content().clone());
        let mut last_line = 0u64;
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
            self.bytes_read
                .store(records.bytes_read(), Ordering::Relaxed);
            let next = match next {
                Ok(next) => next,
                Err(_) if self.ctx.shutdown.is_cancelled() => {
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
                    return Err(self.read_error(line, error));
                }
            };
            let line = match next {
                Next::Record(line) => {
                    if records.last_unterminated() {
                        end_checked = true;
                        if self.torn_at_end(true).await {
                            if let Err(error) = self.reject(line, records.last_raw(), TORN) {
                                return Err(self.fail_after(batch, last_line, error).await);
                            }
                            continue;
                        }
                    }
                    if rows.wants_header() {
                        let (cells, bytes) = (records.cells(), records.cell_bytes());
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
                    if !end_checked {
                        self.torn_at_end(false).await;
                    }
                    break;
                }
                Next::Rejected(mut bad) => {
                    if bad.bad == Bad::Unclosed {
                        end_checked = true;
                        if self.torn_at_end(true).await {
                            bad.bad = Bad::Torn;
                        }
                    }
                    let mut reason = self.csv_reason(&bad);
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
            if self.ctx.is_full(&batch) && self.send(batch.take(), last_line).await.is_err() {
                return Ok(Flow::PipelineClosed);
            }
        }
        Ok(Flow::after(self.send(batch, last_line).await))
    }
}
