//! Opens the output files of a run (`-o PATH`, `--dead-letter PATH`)
//! without destroying anything before the run is known to start.
//!
//! Each is opened without truncating. Only once all are open are they
//! compared, by the files themselves (device and inode, whatever the
//! spelling: dangling symlinks resolve once the file exists), with each
//! other and with the inputs; only then is a file emptied, or, with
//! `--append`, its torn last line cut. A run that fails at start (an input
//! or an output that cannot be opened, a signal while a named pipe waits
//! for a reader) leaves every output as it was, and removes the files it
//! made.

use std::fs::{File, OpenOptions};
use std::io::BufReader;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use tokio_util::sync::CancellationToken;

use super::files::WriteMode;
use crate::error::Error;

/// What to open, for [`open_outputs`].
#[derive(Debug)]
pub struct OutputRequest<'a> {
    /// The input files (`-` is skipped), which no output may be.
    pub inputs: &'a [String],
    /// `-o PATH` when it is a file (not stdout, not Kafka).
    pub output: Option<&'a Path>,
    /// Whether `-o` is written as CSV (its header matters when appending).
    pub output_csv: bool,
    /// `--dead-letter PATH`.
    pub dead_letter: Option<&'a Path>,
    /// How both are opened.
    pub mode: WriteMode,
}

/// An output file, open and ready for the run's first write.
#[derive(Debug)]
pub struct OpenedOutput {
    /// The path as given, for messages.
    pub path: PathBuf,
    /// The file, positioned where the run's output goes.
    pub file: File,
    /// With `--append` onto a non-empty CSV file: its header's columns,
    /// which the run's rows follow (and write no second header row).
    pub columns: Option<Vec<String>>,
    /// True when the run adds to lines the file already held.
    pub continues: bool,
}

/// The run's output files, opened.
#[derive(Debug, Default)]
pub struct OutputFiles {
    /// `-o`, when a file.
    pub output: Option<OpenedOutput>,
    /// `--dead-letter`.
    pub dead_letter: Option<OpenedOutput>,
}

/// Why the outputs were not opened.
#[derive(Debug)]
pub enum OpenError {
    /// A signal came while an open waited (a named pipe with no reader):
    /// the run ends before it began. The message says which output.
    Stopped(String),
    /// Two outputs are one file, or an output is an input: a usage error.
    Refused(String),
    /// An output cannot be opened.
    Failed {
        /// `-o` or `--dead-letter`.
        flag: &'static str,
        /// What failed.
        error: Error,
    },
}

/// One output while it is being opened.
struct Opening {
    flag: &'static str,
    path: PathBuf,
    file: File,
    /// The run made the file (it did not exist): removed if the run
    /// does not start.
    created: bool,
}

/// Opens the requested outputs; see the module's doc for the order.
/// `shutdown` (the first signal) ends a wait for a named pipe's reader.
pub async fn open_outputs(
    request: OutputRequest<'_>,
    shutdown: &CancellationToken,
) -> Result<OutputFiles, OpenError> {
    let wanted = [
        ("-o", request.output),
        ("--dead-letter", request.dead_letter),
    ];
    let mut opened: Vec<Opening> = Vec::new();
    for (flag, path) in wanted {
        let Some(path) = path else { continue };
        match open_one(flag, path, request.mode, shutdown).await {
            Ok(opening) => opened.push(opening),
            Err(error) => {
                remove_created(&opened);
                return Err(error);
            }
        }
    }
    if let Err(message) = check_distinct(&opened, request.inputs) {
        remove_created(&opened);
        return Err(OpenError::Refused(message));
    }
    let mut files = OutputFiles::default();
    for opening in opened {
        let csv = opening.flag == "-o" && request.output_csv;
        let flag = opening.flag;
        let path = opening.path.clone();
        let failed = |error| OpenError::Failed { flag, error };
        let ready = tokio::task::spawn_blocking(move || prepare(opening, request.mode, csv))
            .await
            .map_err(|join_error| failed(Error::panicked("opening an output", join_error)))?
            .map_err(|source| failed(Error::Output { path, source }))?;
        match flag {
            "-o" => files.output = Some(ready),
            _ => files.dead_letter = Some(ready),
        }
    }
    Ok(files)
}

/// Opens `path` for writing, creating it, emptying nothing. The open runs
/// on the blocking pool: for a named pipe it waits for a reader, which the
/// first signal stops waiting for.
async fn open_one(
    flag: &'static str,
    path: &Path,
    mode: WriteMode,
    shutdown: &CancellationToken,
) -> Result<Opening, OpenError> {
    let before = std::fs::metadata(path);
    let created = before
        .as_ref()
        .is_err_and(|error| error.kind() == std::io::ErrorKind::NotFound);
    let opening = path.to_path_buf();
    let open = tokio::task::spawn_blocking(move || {
        let mut options = OpenOptions::new();
        options.write(true).create(true);
        if mode == WriteMode::Append {
            options.append(true);
        }
        options.open(&opening)
    });
    let file = tokio::select! {
        opened = open => opened.map_err(|join_error| OpenError::Failed {
            flag,
            error: Error::panicked("opening an output", join_error),
        })?,
        () = shutdown.cancelled() => {
            // The open stays parked on its thread; the process exits
            // without waiting for it.
            let what = match before {
                Ok(metadata) if metadata.file_type().is_fifo() => {
                    "no reader opened the named pipe before the signal"
                }
                _ => "still opening when the signal came",
            };
            return Err(OpenError::Stopped(format!(
                "{flag} {}: {what}; nothing was read",
                path.display()
            )));
        }
    };
    let file = file.map_err(|source| OpenError::Failed {
        flag,
        error: Error::Output {
            path: path.to_path_buf(),
            source,
        },
    })?;
    Ok(Opening {
        flag,
        path: path.to_path_buf(),
        file,
        created,
    })
}

/// Refuses outputs that are one file, or an output that is an input.
/// Character devices (`/dev/null`, a terminal) need no protection.
fn check_distinct(opened: &[Opening], inputs: &[String]) -> Result<(), String> {
    let mut seen: Vec<(&Opening, (u64, u64))> = Vec::new();
    for opening in opened {
        let metadata = opening
            .file
            .metadata()
            .map_err(|error| format!("{} {}: {error}", opening.flag, opening.path.display()))?;
        if metadata.file_type().is_char_device() {
            continue;
        }
        let id = (metadata.dev(), metadata.ino());
        let input = inputs.iter().filter(|input| *input != "-").find(|input| {
            std::fs::metadata(input).is_ok_and(|input| (input.dev(), input.ino()) == id)
        });
        if let Some(input) = input {
            return Err(format!(
                "{} {}: that file is also an input ({input}), which writing it would \
                 destroy: give another path for {}",
                opening.flag,
                opening.path.display(),
                opening.flag
            ));
        }
        if let Some((other, _)) = seen.iter().find(|(_, other)| *other == id) {
            return Err(format!(
                "{} and {} name the same file ({}): their lines would interleave \
                 and corrupt each other: give them different paths",
                other.flag,
                opening.flag,
                opening.path.display()
            ));
        }
        seen.push((opening, id));
    }
    Ok(())
}

/// Removes the files this run made, when it does not start after all.
fn remove_created(opened: &[Opening]) {
    for opening in opened.iter().filter(|opening| opening.created) {
        // Through a symlink, the file made is the link's target.
        if let Ok(target) = std::fs::canonicalize(&opening.path) {
            let _ = std::fs::remove_file(target);
        }
    }
}

/// Empties the file (truncate mode), or readies it for appending: cuts a
/// torn last line, reads a CSV header.
fn prepare(opening: Opening, mode: WriteMode, csv: bool) -> std::io::Result<OpenedOutput> {
    let Opening { path, file, .. } = opening;
    let metadata = file.metadata()?;
    let mut ready = OpenedOutput {
        path,
        file,
        columns: None,
        continues: false,
    };
    if !metadata.is_file() {
        return Ok(ready);
    }
    match mode {
        WriteMode::Truncate => ready.file.set_len(0)?,
        WriteMode::Append => {
            let len = super::torn::mend_last_line(&ready.file, &ready.path, csv)?;
            ready.continues = len > 0;
            if csv && ready.continues {
                ready.columns = Some(read_header(&ready.path)?);
            }
        }
    }
    Ok(ready)
}

/// The columns of the CSV file at `path`: its first row.
fn read_header(path: &Path) -> std::io::Result<Vec<String>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(BufReader::new(File::open(path)?));
    let mut record = csv::ByteRecord::new();
    reader
        .read_byte_record(&mut record)
        .map_err(std::io::Error::other)?;
    Ok(record
        .iter()
        .map(|name| String::from_utf8_lossy(name).into_owned())
        .collect())
}
