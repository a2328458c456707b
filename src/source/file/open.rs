//! Opening one input for reading: where to start (the checkpoint), what
//! comes before the file's bytes (a resumed CSV's header), whether it is
//! decompressed (`decompress`), and whether it is read once or followed.

use std::io::SeekFrom;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::checkpoint::{CheckpointStore, Position};
use super::decompress::{self, Codec, Decompress, Input, Skip, MAGIC_BYTES};
use super::follow::{follow, Ended, Follow, Seen};
use super::{FileCheckpoint, FileOptions};
use crate::codec::Format;
use crate::error::{Error, Result};
use crate::record::SourceInfo;
use crate::source::shrink::ShrinkWatch;

/// A UTF-8 byte order mark, which the readers drop.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// How one input is read.
pub(super) struct Opened {
    /// Its bytes (decompressed), from where reading starts.
    pub input: Input,
    /// For a regular file: notices it shrinking under the reader.
    pub shrink: Option<ShrinkWatch>,
    /// Where reading starts.
    pub start: Position,
    /// A byte at position `p` of `input` is at `p + skew` in the file.
    pub skew: i64,
    /// The follower task, with `--follow`: why the stream ended, and
    /// what was read.
    pub follower: Option<JoinHandle<(Ended, Seen)>>,
    /// With `--follow`: set by the follower when the stream ends before
    /// the file does (see [`FileReader`](super::FileReader)).
    pub held: Option<Arc<std::sync::atomic::AtomicBool>>,
    /// A compressed regular file: read to its end, never followed.
    pub compressed: bool,
}

impl Opened {
    /// Standard input, read once from its start, decompressed as
    /// `decompress` says.
    pub(super) fn stdin(decompress: Decompress) -> Opened {
        let stdin = Box::new(tokio::io::stdin());
        Opened {
            input: decompress::stream(stdin, decompress, SourceInfo::STDIN),
            shrink: None,
            start: Position::default(),
            skew: 0,
            follower: None,
            held: None,
            compressed: false,
        }
    }
}

/// What following a file needs.
pub(super) struct FollowWith {
    /// Notified when the file changes.
    pub wake: Arc<Notify>,
    /// How often it is looked at regardless (`--poll-interval`).
    pub poll: std::time::Duration,
    /// How many files wait for a slot: an idle file then gives up its own.
    pub waiting: Arc<std::sync::atomic::AtomicUsize>,
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
            input: decompress::stream(Box::new(file), options.decompress, path),
            shrink,
            start: Position::default(),
            skew: 0,
            follower: None,
            held: None,
            compressed: false,
        });
    }
    let std_file = file.try_clone().await.map_err(open_error)?.into_std().await;
    let (store, checkpoint, name) = (store.clone(), checkpoint.clone(), path.to_string());
    let (header, delimiter, max) = (options.header, options.delimiter, options.max_record_bytes);
    let decompress = options.decompress;
    let read_to = follow_with.as_ref().and_then(|(with, _)| with.read_to);
    let (start, codec, prefix, bom) = tokio::task::spawn_blocking(move || {
        let codec = decompress.codec(&head_of(&std_file, MAGIC_BYTES)?);
        let start = store.track(&name, &std_file, fresh, codec.is_some(), &checkpoint)?;
        let start = match read_to {
            Some(read) if !fresh && read.offset > start.offset => read,
            _ => start,
        };
        if codec.is_some() {
            return Ok((start, codec, Vec::new(), false));
        }
        let prefix = match format {
            Format::Csv if start.offset > 0 => {
                let head = head_of(&std_file, header_limit(max))?;
                csv_prefix(&head, header, delimiter, start.line)?
            }
            _ => Vec::new(),
        };
        let bom = start.offset == 0 && head_of(&std_file, BOM.len())? == BOM;
        std::io::Result::Ok((start, codec, prefix, bom))
    })
    .await
    .map_err(|error| open_error(std::io::Error::other(error)))?
    .map_err(open_error)?;
    if let Some(codec) = codec {
        let shrink = shrink.map(ShrinkWatch::compressed);
        return open_compressed(file, path, codec, start, shrink, options, format).await;
    }
    file.seek(SeekFrom::Start(start.offset))
        .await
        .map_err(open_error)?;
    let skew = start.offset as i64 - prefix.len() as i64 + if bom { BOM.len() as i64 } else { 0 };
    let (input, follower, held): (Input, _, _) = match follow_with {
        Some((with, shutdown)) => {
            let held = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let (stream, task) = follow(Follow {
                file: Arc::new(file.into_std().await),
                start: start.offset,
                path: PathBuf::from(path),
                prefix,
                wake: with.wake,
                poll: with.poll,
                waiting: with.waiting,
                held: held.clone(),
                shutdown,
            });
            (Box::new(stream), Some(task), Some(held))
        }
        None if prefix.is_empty() => (Box::new(file), None, None),
        None => (
            Box::new(std::io::Cursor::new(prefix).chain(file)),
            None,
            None,
        ),
    };
    Ok(Opened {
        input,
        shrink,
        start,
        skew,
        follower,
        held,
        compressed: false,
    })
}

/// A compressed regular file, opened at `path`: decompressed from its
/// start (it cannot seek), the `start.offset` bytes delivered before
/// dropped (a resumed CSV's header taken from the decompressed bytes), and
/// never followed: compressed files do not grow in place (logs are
/// compressed once rotated).
async fn open_compressed(
    file: tokio::fs::File,
    path: &str,
    codec: Codec,
    start: Position,
    shrink: Option<ShrinkWatch>,
    options: &FileOptions,
    format: Format,
) -> Result<Opened> {
    let failed = |source: std::io::Error| match decompress::corrupt(&source) {
        Some(message) => Error::Corrupt(message),
        None => Error::Open {
            path: PathBuf::from(path),
            source,
        },
    };
    let mut input = decompress::decoder(Box::new(file), codec, path);
    let resumed_csv = format == Format::Csv && start.offset > 0;
    let want = match resumed_csv && options.header {
        true => header_limit(options.max_record_bytes),
        false => BOM.len(),
    };
    let head = decompress::read_head(&mut input, want)
        .await
        .map_err(failed)?;
    let prefix = match resumed_csv {
        true => csv_prefix(&head, options.header, options.delimiter, start.line).map_err(failed)?,
        false => Vec::new(),
    };
    let bom = start.offset == 0 && head.starts_with(BOM);
    let skew = start.offset as i64 - prefix.len() as i64 + if bom { BOM.len() as i64 } else { 0 };
    let rest = Skip::new(decompress::put_back(head, input), start.offset);
    let input: Input = match prefix.is_empty() {
        true => Box::new(rest),
        false => Box::new(std::io::Cursor::new(prefix).chain(rest)),
    };
    Ok(Opened {
        input,
        shrink,
        start,
        skew,
        follower: None,
        held: None,
        compressed: true,
    })
}

/// How much of a file's start a resumed CSV's header is looked for in.
fn header_limit(max_record_bytes: usize) -> usize {
    max_record_bytes.min(1 << 20)
}

/// The first `len` bytes of `file` (fewer if it is shorter).
pub(super) fn head_of(file: &std::fs::File, len: usize) -> std::io::Result<Vec<u8>> {
    let mut head = vec![0u8; len];
    let mut filled = 0;
    while filled < head.len() {
        match file.read_at(&mut head[filled..], filled as u64)? {
            0 => break,
            read => filled += read,
        }
    }
    head.truncate(filled);
    Ok(head)
}

/// What a CSV file resumed after `line` lines is read with before its
/// bytes: its header row (unless `--no-header`), found in `head`, the
/// file's first bytes (decompressed), then a blank line for each line
/// skipped (the CSV reader passes over blank lines), so that its rows keep
/// their names and their line numbers.
fn csv_prefix(head: &[u8], header: bool, delimiter: u8, line: u64) -> std::io::Result<Vec<u8>> {
    let mut prefix = Vec::new();
    if header {
        let text = head.strip_prefix(BOM).unwrap_or(head);
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

/// Whether `path` is a glob pattern rather than a file name: a name with
/// glob characters that exists as it is spelled (`[x].log`) is a name.
pub(super) fn is_pattern(path: &str) -> bool {
    path.contains(['*', '?', '[']) && std::fs::symlink_metadata(path).is_err()
}

/// The folder to watch for a pattern's new matches: the folders before
/// its first wildcard.
pub(super) fn pattern_folder(pattern: &str) -> Option<PathBuf> {
    let mut folder = super::watch::folder_of(Path::new(pattern));
    while is_pattern(&folder.to_string_lossy()) {
        folder = super::watch::folder_of(&folder);
    }
    Some(folder)
}
