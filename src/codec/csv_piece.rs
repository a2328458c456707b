//! One piece of a CSV stream, cut by [`super::csv_cut`], read by csv-async
//! on a worker into [`RawBatch`]es, exactly as [`super::CsvStream`] reads
//! those records in the whole stream: the same rows, the same line
//! numbers, the same bytes kept.
//!
//! The piece is read whole from memory, and only pieces without surprises
//! are read here: a record longer than `--max-record-bytes` makes the
//! piece [`Parsed::Irregular`] (the sequential reader, which knows every
//! rule, reads it again), and a piece whose last record does not end
//! inside it (the cut fell inside a quoted cell) is [`Parsed::Miscut`].

use std::sync::Arc;

use csv_async::{AsyncReaderBuilder, ByteRecord};
use tokio::io::AsyncReadExt;

use super::csv_assembler::push_row;
use super::csv_tap::{count_line_ends, SENTINEL};
use crate::record::{Content, RawBatch, SourceInfo};

/// How a piece's records are read and batched.
#[derive(Debug, Clone)]
pub struct PieceOptions {
    /// Where the records come from.
    pub source: Arc<SourceInfo>,
    /// CSV cell separator.
    pub delimiter: u8,
    /// `--max-record-bytes`.
    pub max_record_bytes: usize,
    /// Most records in one batch.
    pub batch_records: usize,
    /// A batch ends once it holds this many bytes.
    pub batch_bytes: usize,
}

/// What reading a piece gave.
#[derive(Debug)]
pub enum Parsed {
    /// Its records, in batches, each with the line of its last record.
    /// The batches' content is a placeholder: the header is not known
    /// here, the caller sets it.
    Rows(Vec<(RawBatch, u64)>),
    /// Cut right, but a record in it needs the sequential reader's rules.
    Irregular,
    /// Its last record goes on past its end: it was not cut at a record's
    /// end (quote parity was wrong about it).
    Miscut,
}

/// Reads `piece`, whose first byte is on line `lines_before + 1` and
/// which starts where a record does (blank lines may come first).
pub async fn parse(piece: &[u8], lines_before: u64, options: &PieceOptions) -> Parsed {
    let len = piece.len() as u64;
    // The sentinel closes a quote left open at the piece's end: the last
    // record then ends past it (see `csv_tap`).
    let input = piece.chain(SENTINEL);
    let mut reader = AsyncReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(options.delimiter)
        .buffer_capacity(64 * 1024)
        .create_reader(input);
    let mut record = ByteRecord::new();
    let mut batches = Vec::new();
    let mut batch = RawBatch::new(options.source.clone(), Content::CsvNumbered);
    // Lines are counted up to `counted`, which is on line `line`.
    let (mut counted, mut line, mut after_cr) = (0usize, lines_before + 1, false);
    let mut start = 0u64;
    let mut last_line = 0;
    let mut irregular = false;
    loop {
        match reader.read_byte_record(&mut record).await {
            Ok(true) => {}
            Ok(false) => break,
            // Nothing can fail reading memory; were it to, the sequential
            // reader would say what.
            Err(_) => return Parsed::Irregular,
        }
        let end = reader.position().byte();
        let rest = &piece[(start.min(len)) as usize..];
        let blank = rest
            .iter()
            .position(|&byte| byte != b'\n' && byte != b'\r')
            .unwrap_or(rest.len());
        let first = start.min(len) as usize + blank;
        if first == piece.len() {
            // Only blank lines and the sentinel's own record were left.
            break;
        }
        if end > len {
            return Parsed::Miscut;
        }
        let end = end as usize;
        line += count_line_ends(&piece[counted..first], &mut after_cr);
        let ends_line = matches!(piece[end - 1], b'\n' | b'\r');
        let content_end = end - usize::from(ends_line);
        // Read on all the same: only the piece's end tells whether it
        // was cut right, and the sequential reader must not read a
        // miscut piece alone.
        irregular |= content_end - first > options.max_record_bytes;
        let raw = &piece[first..content_end];
        let cells = record.as_slice().len() + record.len().saturating_sub(1);
        push_row(
            &mut batch,
            raw,
            options.delimiter,
            record.as_slice(),
            record.iter(),
        );
        batch.finish_record(line);
        last_line = line;
        if raw.len() == cells {
            // No quotes: its only line end is its last byte.
            line += u64::from(ends_line);
            after_cr = piece[end - 1] == b'\r';
        } else {
            line += count_line_ends(&piece[first..end], &mut after_cr);
        }
        counted = end;
        if batch.len() >= options.batch_records || batch.byte_len() >= options.batch_bytes {
            batches.push((batch.take(), last_line));
        }
        start = end as u64;
    }
    if irregular {
        return Parsed::Irregular;
    }
    if !batch.is_empty() {
        batches.push((batch, last_line));
    }
    Parsed::Rows(batches)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(max_record_bytes: usize) -> PieceOptions {
        PieceOptions {
            source: Arc::new(SourceInfo::File { path: "t".into() }),
            delimiter: b',',
            max_record_bytes,
            batch_records: 2,
            batch_bytes: 1 << 20,
        }
    }

    /// Each record as `line:cell|cell`, batch by batch.
    async fn rows(piece: &[u8], lines_before: u64) -> Vec<Vec<String>> {
        let Parsed::Rows(batches) = parse(piece, lines_before, &options(100)).await else {
            panic!("not rows");
        };
        batches
            .iter()
            .map(|(batch, last)| {
                let rows: Vec<String> = batch
                    .records()
                    .map(|record| {
                        let cells: Vec<String> = record
                            .fields()
                            .map(|cell| String::from_utf8_lossy(cell).into_owned())
                            .collect();
                        format!("{}:{}", record.location.pos, cells.join("|"))
                    })
                    .collect();
                assert!(rows.last().unwrap().starts_with(&format!("{last}:")));
                rows
            })
            .collect()
    }

    #[tokio::test]
    async fn records_are_named_by_their_first_line_as_in_the_whole_stream() {
        assert_eq!(
            rows(b"\r\na,b\r\n\r\nc,\"d\ne\"\rf\n\n\ng,\"\"\"\"\n", 10).await,
            [
                vec!["12:a|b".to_string(), "14:c|d\ne".to_string()],
                vec!["16:f".to_string(), "19:g|\"".to_string()],
            ]
        );
    }

    #[tokio::test]
    async fn a_piece_cut_inside_a_quote_is_miscut() {
        for piece in [&b"a\n\"b\n"[..], b"a,\"b\n\n", b"x\"\n\"\n"] {
            assert!(
                matches!(parse(piece, 0, &options(100)).await, Parsed::Miscut),
                "{piece:?}"
            );
        }
    }

    #[tokio::test]
    async fn an_overlong_record_is_left_to_the_sequential_reader() {
        let piece = format!("a\n{}\nb\n", "x".repeat(101));
        assert!(matches!(
            parse(piece.as_bytes(), 0, &options(100)).await,
            Parsed::Irregular
        ));
        assert!(matches!(
            parse(piece.as_bytes(), 0, &options(101)).await,
            Parsed::Rows(_)
        ));
        let miscut = format!("{piece}\"open\n");
        assert!(matches!(
            parse(miscut.as_bytes(), 0, &options(100)).await,
            Parsed::Miscut
        ));
    }
}
