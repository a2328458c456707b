//! With `--follow`: files that come to a followed path while the file
//! before them is still read there (see [`Successors`]).

use std::collections::{HashMap, VecDeque};
use std::os::unix::fs::MetadataExt;

/// A file's device and inode.
type FileId = (u64, u64);

/// With `--follow`: the files that came to a path while an earlier file
/// there was still read (rotated away, it is read to its end, one poll
/// interval after its rotation), opened as soon as a folder event shows
/// them, so that one rotated away in turn before its turn is still read,
/// through its descriptor, as `tail -F` would not (a plain path names no
/// rotated file).
#[derive(Default)]
pub(super) struct Successors {
    by_path: HashMap<String, VecDeque<(FileId, std::fs::File)>>,
    /// How many are open, bounded by `--max-open-files`.
    open: usize,
    /// Whether the bound was said.
    said: bool,
}

impl Successors {
    /// `path`, being read (or waiting to be), holds the file `id` now:
    /// opened and queued unless it is the one read or queued already.
    pub(super) fn note(
        &mut self,
        path: &str,
        id: (u64, u64),
        ids: &HashMap<String, (u64, u64)>,
        max: usize,
    ) {
        if ids.get(path) == Some(&id) || ids.values().any(|&read| read == id) || self.holds(id) {
            return;
        }
        if self.full(path, max) {
            return;
        }
        let Ok(file) = open_now(path) else {
            return;
        };
        // The path may have changed again since it was searched.
        let Ok(metadata) = file.metadata() else {
            return;
        };
        if !metadata.is_file() {
            return;
        }
        self.arrived(path, (metadata.dev(), metadata.ino()), file, ids, max);
    }

    /// The file `id`, opened as it came to `path` (or was renamed away
    /// from it): queued unless it is read or queued already.
    pub(super) fn arrived(
        &mut self,
        path: &str,
        id: (u64, u64),
        file: std::fs::File,
        ids: &HashMap<String, (u64, u64)>,
        max: usize,
    ) {
        if ids.values().any(|&read| read == id) || self.holds(id) || self.full(path, max) {
            return;
        }
        self.by_path
            .entry(path.to_string())
            .or_default()
            .push_back((id, file));
        self.open += 1;
    }

    /// Whether `max` files are queued already (said once: a file that
    /// comes to `path` now may be missed).
    pub(super) fn full(&mut self, path: &str, max: usize) -> bool {
        if self.open < max {
            return false;
        }
        if !self.said {
            self.said = true;
            tracing::warn!(
                "{path}: files come to it faster than they are read: more than {max} \
                 (--max-open-files) wait, and some may be missed: follow a pattern that \
                 matches the rotated names too (such as '{path}*')"
            );
        }
        true
    }

    /// Whether the file `id` is queued.
    pub(super) fn holds(&self, id: (u64, u64)) -> bool {
        self.by_path
            .values()
            .any(|queue| queue.iter().any(|(queued, _)| *queued == id))
    }

    /// Whether a file waits to be read at `path`.
    pub(super) fn waiting(&self, path: &str) -> bool {
        self.by_path
            .get(path)
            .is_some_and(|queue| !queue.is_empty())
    }

    /// At the end of the run: names the files queued and never read (the
    /// run stopped downstream first): a restart finds them only if a
    /// pattern matches the names they have now.
    pub(super) fn say_unread(&self) {
        for (path, queue) in &self.by_path {
            for ((_, inode), file) in queue {
                let size = file.metadata().map_or(0, |metadata| metadata.len());
                tracing::warn!(
                    "{path}: a file that came to it (inode {inode}, {size} bytes) was not read: \
                     the run ended first, and a restart finds it only if a pattern matches \
                     the name it has now"
                );
            }
        }
    }

    /// The next file to read at `path`, if one came while it was read.
    pub(super) fn take(&mut self, path: &str) -> Option<(FileId, std::fs::File)> {
        let queue = self.by_path.get_mut(path)?;
        // The file at the path now is read last: read first, it would be
        // followed, and the files rotated away before it (whose events
        // came later) would wait behind it for the whole run.
        let now = std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()));
        let at = queue
            .iter()
            .position(|(id, _)| Some(*id) != now)
            .unwrap_or(0);
        let next = queue.remove(at);
        if queue.is_empty() {
            self.by_path.remove(path);
        }
        self.open -= usize::from(next.is_some());
        next
    }
}

/// Opens `path` for reading without waiting: a FIFO put there since the
/// search would otherwise block the task until a writer came (on a
/// regular file, `O_NONBLOCK` changes nothing).
pub(super) fn open_now(path: &str) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}
