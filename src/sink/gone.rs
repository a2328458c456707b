//! An output file deleted or renamed while the run writes it.
//!
//! Writes to a deleted file still succeed (its inode lives on while it is
//! open), but nothing can read what they hold: acknowledging them would
//! commit Kafka offsets, or move a checkpoint, past records that are lost.
//! So after each write the sink asks the file's link count (one `fstat`),
//! and a deleted file ends the run before that write's acks fire: the
//! records read since are read again by the next run. A file renamed away
//! (rotated by `mv`) still holds its records: that is only warned about,
//! once, and looked for at most once a second, by the path.

use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// How often the output's path is compared with the file written.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// Why a write to a deleted output fails.
pub(super) const DELETED: &str = "the file was deleted while being written: \
    stopping before any record written into it is acknowledged (a rerun reads them again)";

/// Watches one regular output file; see the module documentation.
#[derive(Debug)]
pub(super) struct OutputWatch {
    /// The output as named in messages.
    name: PathBuf,
    /// A duplicate of the sink's descriptor, for `fstat`.
    file: File,
    /// The path that named the file at start, and the file's device and
    /// inode; `None` for stdout, which has no path to compare.
    path: Option<(PathBuf, (u64, u64))>,
    /// When the path is looked at next.
    next_look: Mutex<Instant>,
    /// The rename was warned about.
    warned: AtomicBool,
}

impl OutputWatch {
    /// A watch on `file`, the output named `name`, opened at `path` (none
    /// for stdout); `None` when it is not a regular file (a pipe, a
    /// terminal, a device), which cannot be deleted from under the run.
    pub(super) fn of(name: &Path, path: Option<&Path>, file: &File) -> io::Result<Option<Self>> {
        let metadata = file.metadata()?;
        if !metadata.file_type().is_file() {
            return Ok(None);
        }
        Ok(Some(OutputWatch {
            name: name.to_path_buf(),
            file: file.try_clone()?,
            path: path.map(|path| (path.to_path_buf(), (metadata.dev(), metadata.ino()))),
            next_look: Mutex::new(Instant::now() + LOOK_EVERY),
            warned: AtomicBool::new(false),
        }))
    }

    /// After a write: fails when the file was deleted; warns (once) when
    /// its path names another file or none. Blocks (`fstat`, `stat`).
    pub(super) fn check(&self) -> Result<()> {
        let deleted = match self.file.metadata() {
            Ok(metadata) => metadata.nlink() == 0,
            Err(_) => false,
        };
        if deleted {
            return Err(Error::Output {
                path: self.name.clone(),
                source: io::Error::other(DELETED),
            });
        }
        if let Some((path, id)) = &self.path {
            if !self.warned.load(Ordering::Relaxed) && self.look_now() {
                let same = std::fs::metadata(path).is_ok_and(|now| (now.dev(), now.ino()) == *id);
                if !same && !self.warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "{}: this path no longer names the output file (renamed or replaced?): \
                         records go on to the file, wherever it is now",
                        path.display()
                    );
                }
            }
        }
        Ok(())
    }

    /// True at most once every [`LOOK_EVERY`].
    fn look_now(&self) -> bool {
        let mut next = self
            .next_look
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        if now < *next {
            return false;
        }
        *next = now + LOOK_EVERY;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deleted_file_fails_the_check_and_a_pipe_is_not_watched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let file = File::create(&path).unwrap();
        let watch = OutputWatch::of(&path, Some(&path), &file).unwrap().unwrap();
        watch.check().unwrap();
        std::fs::remove_file(&path).unwrap();
        let error = watch.check().unwrap_err().to_string();
        assert_eq!(error, format!("cannot write {}", path.display()));

        let (reader, _writer) = std::io::pipe().unwrap();
        let pipe = File::from(std::os::fd::OwnedFd::from(reader));
        assert!(OutputWatch::of(&path, None, &pipe).unwrap().is_none());
    }

    #[test]
    fn a_renamed_file_is_still_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let file = File::create(&path).unwrap();
        let watch = OutputWatch::of(&path, Some(&path), &file).unwrap().unwrap();
        std::fs::rename(&path, dir.path().join("out.jsonl.1")).unwrap();
        *watch.next_look.lock().unwrap() = Instant::now();
        watch.check().unwrap();
        assert!(watch.warned.load(Ordering::Relaxed));
    }
}
