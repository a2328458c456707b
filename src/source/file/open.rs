//! Opening one input for reading: where to start (the checkpoint), what
//! comes before the file's bytes (a resumed CSV's header), and whether it
//! is read once or followed.

use std::io::SeekFrom;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::checkpoint::{CheckpointStore, Position};
use super::follow::{follow, Ended};
use super::{FileCheckpoint, FileOptions};
use crate::codec::Format;
use crate::error::{Error, Result};
use crate::source::shrink::ShrinkWatch;

/// A UTF-8 byte order mark, which the readers drop.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// How one input is read.
pub(super) struct Opened {
    /// Its bytes, from where reading starts.
    pub input: Box<dyn AsyncRead + Unpin + Send>,
    /// For a regular file: notices it shrinking under the reader.
    pub shrink: Option<ShrinkWatch>,
    /// Where reading starts.
    pub start: Position,
    /// A byte at position `p` of `input` is at `p + skew` in the file.
    pub skew: i64,
    /// The follower task, with `--follow`: why the stream ended.
    pub follower: Option<JoinHandle<Ended>>,
}

impl Opened {
    /// Standard input, read once from its start.
    pub(super) fn stdin() -> Opened {
        Opened {
            input: Box::new(tokio::io::stdin()),
            shrink: None,
            start: Position::default(),
            skew: 0,
            follower: None,
        }
    }
}

/// What following a file needs.
pub(super) struct FollowWith {
    /// Notified when the file changes.
    pub wake: Arc<Notify>,
    /// How often it is looked at regardless (`--poll-interval`).
    pub poll: std::time::Duration,
    /// Where the file was already read under another name (it was
    /// rotated): reading resumes there, while the checkpoint still waits
    /// for those records' acks.
    pub read_to: Option<Position>,
}

/// Opens the regular file, FIFO or device at `path` (already opened as
/// `file`), resuming where `store` says unless `fresh`; `checkpoint` is
/// set there and advanced by the reader's acks.
pub(super) async fn prepare(
    file: tokio::fs::File,
    path: &str,
    options: &FileOptions,
    store: &Arc<CheckpointStore>,
    checkpoint: &Arc<FileCheckpoint>,
    fresh: bool,
    follow_with: Option<(FollowWith, tokio_util::sync::CancellationToken)>,
) -> Result<Opened> {
    let open_error = |source| Error::Open {
        path: PathBuf::from(path),
        source,
    };
    let mut file = file;
    let format = options.format.unwrap_or_else(|| Format::from_path(path));
    let metadata = file.metadata().await.map_err(open_error)?;
    let shrink = ShrinkWatch::new(&file).await;
    if !metadata.is_file() {
        return Ok(Opened {
            input: Box::new(file),
            shrink,
            start: Position::default(),
            skew: 0,
            follower: None,
        });
    }
    let std_file = file.try_clone().await.map_err(open_error)?.into_std().await;
    let (store, checkpoint, name) = (store.clone(), checkpoint.clone(), path.to_string());
    let (header, delimiter, max) = (options.header, options.delimiter, options.max_record_bytes);
    let read_to = follow_with.as_ref().and_then(|(with, _)| with.read_to);
    let (start, prefix, bom) = tokio::task::spawn_blocking(move || {
        let start = store.track(&name, &std_file, fresh, &checkpoint)?;
        let start = match read_to {
            Some(read) if !fresh && read.offset > start.offset => read,
            _ => start,
        };
        let prefix = match format {
            Format::Csv if start.offset > 0 => {
                csv_prefix(&std_file, header, delimiter, max, start.line)?
            }
            _ => Vec::new(),
        };
        let mut first = [0u8; 3];
        let bom = start.offset == 0
            && std_file.read_at(&mut first, 0).is_ok_and(|read| read == 3)
            && first == BOM;
        std::io::Result::Ok((start, prefix, bom))
    })
    .await
    .map_err(|error| open_error(std::io::Error::other(error)))?
    .map_err(open_error)?;
    file.seek(SeekFrom::Start(start.offset))
        .await
        .map_err(open_error)?;
    let skew = start.offset as i64 - prefix.len() as i64 + if bom { BOM.len() as i64 } else { 0 };
    let (input, follower): (Box<dyn AsyncRead + Unpin + Send>, _) = match follow_with {
        Some((with, shutdown)) => {
            let (stream, task) = follow(
                file,
                start.offset,
                PathBuf::from(path),
                prefix,
                with.wake,
                with.poll,
                shutdown,
            );
            (Box::new(stream), Some(task))
        }
        None if prefix.is_empty() => (Box::new(file), None),
        None => (Box::new(std::io::Cursor::new(prefix).chain(file)), None),
    };
    Ok(Opened {
        input,
        shrink,
        start,
        skew,
        follower,
    })
}

/// What a CSV file resumed after `line` lines is read with before its
/// bytes: its header row (unless `--no-header`), then a blank line for
/// each line skipped (the CSV reader passes over blank lines), so that its
/// rows keep their names and their line numbers.
fn csv_prefix(
    file: &std::fs::File,
    header: bool,
    delimiter: u8,
    max_record_bytes: usize,
    line: u64,
) -> std::io::Result<Vec<u8>> {
    let mut prefix = Vec::new();
    if header {
        let mut head = vec![0u8; max_record_bytes.min(1 << 20)];
        let mut filled = 0;
        while filled < head.len() {
            match file.read_at(&mut head[filled..], filled as u64)? {
                0 => break,
                read => filled += read,
            }
        }
        head.truncate(filled);
        let text = head.strip_prefix(BOM).unwrap_or(&head);
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(delimiter)
            .from_reader(text);
        let mut record = csv::ByteRecord::new();
        reader
            .read_byte_record(&mut record)
            .map_err(std::io::Error::other)?;
        let end = (reader.position().byte() as usize).min(text.len());
        prefix.extend_from_slice(&text[..end]);
        if prefix.last() != Some(&b'\n') {
            prefix.push(b'\n');
        }
    }
    let lines = memchr::memchr_iter(b'\n', &prefix).count() as u64;
    prefix.resize(prefix.len() + line.saturating_sub(lines) as usize, b'\n');
    Ok(prefix)
}

/// Whether `path` is a glob pattern rather than a file name.
pub(super) fn is_pattern(path: &str) -> bool {
    path.contains(['*', '?', '['])
}

/// The folder to watch for a pattern's new matches: the part before its
/// first wildcard, if that is a whole folder.
pub(super) fn pattern_folder(pattern: &str) -> Option<PathBuf> {
    let folder = super::watch::folder_of(Path::new(pattern));
    (!is_pattern(&folder.to_string_lossy())).then_some(folder)
}
