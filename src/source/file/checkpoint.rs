//! `--checkpoint PATH`: per file, how far the sink has delivered its
//! records, saved atomically (temporary file, fsync, rename) and read back
//! by the next run, which resumes each file there.
//!
//! A file is known by what it is, not by its name: device, inode and a
//! fingerprint (FNV-1a) of its first [`FINGERPRINT_BYTES`] bytes, so a
//! rotated or replaced file is not mistaken for the old one. A file still
//! shorter than that is fingerprinted on what it has, and again at each
//! save until it is long enough. The bytes just before the saved offset
//! are fingerprinted too ([`Before`]): a file rewritten in place, or
//! replaced by one that got the same inode and first bytes (a CSV header),
//! is read from its start, with a warning, not resumed in the middle of
//! other rows. An entry whose file was read to its end and is no longer at
//! its name is looked for in its folder: renamed there (rotated), it is
//! kept under its new name; gone from it (deleted, moved away), it is
//! dropped at the next save.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

/// How many of a file's first bytes make its fingerprint.
pub const FINGERPRINT_BYTES: usize = 256;

/// Where a file starts being read: a byte offset and the number of lines
/// before it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Position {
    /// Bytes of the file already delivered.
    pub offset: u64,
    /// Lines ending before `offset`.
    pub line: u64,
}

/// How far the records of one input have been written by the sink: the
/// last line number acknowledged (0 before any), and the byte offset in
/// the file up to which every record was delivered.
#[derive(Debug, Default)]
pub struct FileCheckpoint {
    pub(super) delivered_line: AtomicU64,
    /// The position delivered, as (offset, lines before it): one lock, so
    /// the two never disagree.
    delivered: Mutex<Position>,
}

impl FileCheckpoint {
    /// The last line whose record (or rejection) the sink has written out.
    pub fn delivered_line(&self) -> u64 {
        self.delivered_line.load(Ordering::Acquire)
    }

    /// The byte offset (and lines before it) up to which every record was
    /// delivered.
    pub fn delivered(&self) -> Position {
        *self.delivered.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts over at `start`: where this run starts reading the file.
    pub(super) fn reset(&self, start: Position) {
        *self.delivered.lock().unwrap_or_else(|e| e.into_inner()) = start;
        self.delivered_line.store(start.line, Ordering::Release);
    }

    /// The records up to `to` were delivered.
    pub(super) fn advance(&self, to: Position) {
        let mut delivered = self.delivered.lock().unwrap_or_else(|e| e.into_inner());
        if to.offset > delivered.offset {
            *delivered = to;
        }
    }
}

/// One file's saved entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    /// The name it was last read under (for people; not how it is found).
    path: String,
    dev: u64,
    ino: u64,
    /// How many first bytes the fingerprint covers.
    fingerprint_bytes: usize,
    /// FNV-1a of those bytes, in hex.
    fingerprint: String,
    offset: u64,
    line: u64,
    /// The bytes just before `offset` (absent from older checkpoints, and
    /// for compressed files: such an entry is trusted on its first bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    before: Option<Before>,
}

/// A fingerprint of the up to [`FINGERPRINT_BYTES`] bytes that end at an
/// entry's offset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Before {
    /// How many bytes it covers.
    bytes: usize,
    /// FNV-1a of those bytes, in hex.
    fingerprint: String,
}

impl Before {
    /// The bytes of `file` ending at `offset`; `None` if it is shorter.
    fn of(file: &std::fs::File, offset: u64) -> Option<Before> {
        use std::os::unix::fs::FileExt;
        let from = offset.saturating_sub(FINGERPRINT_BYTES as u64);
        let mut bytes = vec![0u8; (offset - from) as usize];
        file.read_exact_at(&mut bytes, from).ok()?;
        Some(Before {
            bytes: bytes.len(),
            fingerprint: fingerprint(&bytes),
        })
    }
}

/// Why a file known by its device, inode and first bytes is not resumed.
fn replaced(entry: &Entry, file: &std::fs::File, len: u64) -> Option<String> {
    if entry.offset > len {
        return Some(format!(
            "it is shorter ({len} bytes) than where it was read to ({} bytes)",
            entry.offset
        ));
    }
    let saved = entry.before.as_ref()?;
    let from = entry.offset - saved.bytes as u64;
    match Before::of(file, entry.offset) {
        Some(now) if now.fingerprint == saved.fingerprint => None,
        _ => Some(format!(
            "its bytes {from}..{} are not the ones read before",
            entry.offset
        )),
    }
}

impl Entry {
    /// Whether `head` (the file's first bytes) is the file this entry is of.
    fn matches(&self, dev: u64, ino: u64, head: &[u8]) -> bool {
        self.dev == dev
            && self.ino == ino
            && head.len() >= self.fingerprint_bytes
            && fingerprint(&head[..self.fingerprint_bytes]) == self.fingerprint
    }
}

/// The checkpoint file's contents.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Saved {
    files: Vec<Entry>,
}

/// A file being read this run, with the checkpoint its acks advance.
struct Live {
    path: String,
    dev: u64,
    ino: u64,
    head: Vec<u8>,
    /// To fingerprint a short file again once it is longer, and the bytes
    /// before the offset delivered; closed once its read is over.
    file: Option<Arc<std::fs::File>>,
    /// Its positions are in decompressed bytes: no [`Before`].
    compressed: bool,
    /// The last [`Before`] taken, and at which offset.
    before: Option<(u64, Before)>,
    start: Position,
    checkpoint: Arc<FileCheckpoint>,
}

impl Live {
    fn entry(&mut self) -> Entry {
        let delivered = self.checkpoint.delivered();
        let at = if delivered.offset > self.start.offset {
            delivered
        } else {
            self.start
        };
        if let Some(file) = &self.file {
            if self.head.len() < FINGERPRINT_BYTES {
                if let Ok(head) = read_head(file) {
                    self.head = head;
                }
            }
            let stale = self.before.as_ref().map(|(offset, _)| *offset) != Some(at.offset);
            if stale && !self.compressed {
                self.before = Before::of(file, at.offset).map(|before| (at.offset, before));
            }
        }
        let before = self
            .before
            .as_ref()
            .filter(|(offset, _)| *offset == at.offset);
        Entry {
            path: self.path.clone(),
            dev: self.dev,
            ino: self.ino,
            fingerprint_bytes: self.head.len(),
            fingerprint: fingerprint(&self.head),
            offset: at.offset,
            line: at.line,
            before: before.map(|(_, before)| before.clone()),
        }
    }

    /// Whether its read is over (only the store holds its checkpoint).
    fn finished(&self) -> bool {
        Arc::strong_count(&self.checkpoint) == 1
    }
}

/// Where the file of `(dev, ino)` is now: at `path`, or under another name
/// in the same folder (rotated: `app.log` renamed `app.log.1`, which a
/// pattern may read later, resumed by this entry). None when it is in
/// neither (deleted, or moved away): its entry is dropped once its read is
/// over, or a log rotated every hour would grow the checkpoint forever.
/// The folder is listed only when the file is no longer at `path`, and
/// the entry then takes the name found (or goes), so once per rotation.
fn now_at(path: &str, dev: u64, ino: u64) -> Option<String> {
    let is_it = |m: &std::fs::Metadata| (m.dev(), m.ino()) == (dev, ino);
    if std::fs::metadata(path).is_ok_and(|m| is_it(&m)) {
        return Some(path.to_string());
    }
    let folder = match Path::new(path).parent() {
        Some(folder) if !folder.as_os_str().is_empty() => folder,
        _ => Path::new("."),
    };
    std::fs::read_dir(folder)
        .ok()?
        .flatten()
        .find(|found| found.metadata().is_ok_and(|m| is_it(&m)))
        .and_then(|found| Some(folder.join(found.file_name()).to_str()?.to_string()))
}

/// The positions of every file this run knows, saved to `--checkpoint`
/// (or kept in memory only, without it: a file met again under another
/// name in the same run still resumes where it was).
pub struct CheckpointStore {
    path: Option<PathBuf>,
    inner: Mutex<Inner>,
    /// `PATH.lock`, locked (flock) for the whole run: a second run with
    /// the same checkpoint is refused. Released when the store is dropped.
    _lock: Option<std::fs::File>,
}

#[derive(Default)]
struct Inner {
    /// Entries read from the file and not met again this run.
    saved: Vec<Entry>,
    /// Files read this run, by (device, inode).
    live: HashMap<(u64, u64), Live>,
    /// What the file holds now, so an unchanged state is not written again.
    written: Option<String>,
}

impl Inner {
    /// Closes the copies kept of files whose read is over, fingerprinted
    /// one last time (otherwise every file met would keep a descriptor for
    /// the whole run), and forgets those no longer in their folder
    /// ([`now_at`]; those renamed there take their new name).
    fn release_closed(&mut self) {
        self.live.retain(|_, live| {
            if !live.finished() {
                return true;
            }
            if live.file.is_some() {
                live.entry();
                live.file = None;
            }
            match now_at(&live.path, live.dev, live.ino) {
                Some(path) => {
                    live.path = path;
                    true
                }
                None => false,
            }
        });
    }
}

impl std::fmt::Debug for CheckpointStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl CheckpointStore {
    /// A store that saves nothing.
    pub fn in_memory() -> Self {
        CheckpointStore {
            path: None,
            inner: Mutex::default(),
            _lock: None,
        }
    }

    /// Locks the checkpoint at `path` for this run (another run holding
    /// it is an error) and reads it (none yet is an empty one).
    pub fn load(path: &Path) -> std::io::Result<Self> {
        let path = &resolve(path);
        let lock = lock(path)?;
        let (saved, written) = match std::fs::read_to_string(path) {
            Ok(text) => {
                let saved: Saved = serde_json::from_str(&text).map_err(|error| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{}: not a streamer checkpoint: {error}", path.display()),
                    )
                })?;
                (saved.files, Some(text))
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => (Vec::new(), None),
            Err(error) => return Err(error),
        };
        Ok(CheckpointStore {
            path: Some(path.to_path_buf()),
            inner: Mutex::new(Inner {
                saved,
                live: HashMap::new(),
                written,
            }),
            _lock: Some(lock),
        })
    }

    /// Starts tracking `file`, opened at `path`, whose acks advance
    /// `checkpoint`: returns where to start reading it (where it was
    /// delivered to, unless `fresh`, or the file is shorter than that now),
    /// where `checkpoint` is set too. The positions of a `compressed` file
    /// are in its decompressed bytes, which its size does not bound.
    pub fn track(
        &self,
        path: &str,
        file: &std::fs::File,
        fresh: bool,
        compressed: bool,
        checkpoint: &Arc<FileCheckpoint>,
    ) -> std::io::Result<Position> {
        let metadata = file.metadata()?;
        let (dev, ino) = (metadata.dev(), metadata.ino());
        let head = read_head(file)?;
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.release_closed();
        let known = inner
            .live
            .get_mut(&(dev, ino))
            .filter(|live| head.starts_with(&live.head))
            .map(|live| live.entry())
            .or_else(|| {
                let at = inner
                    .saved
                    .iter()
                    .position(|e| e.matches(dev, ino, &head))?;
                Some(inner.saved.remove(at))
            });
        inner.saved.retain(|e| (e.dev, e.ino) != (dev, ino));
        let start = match known {
            Some(entry) if !fresh && entry.offset > 0 => {
                let why = (!compressed)
                    .then(|| replaced(&entry, file, metadata.len()))
                    .flatten();
                match why {
                    Some(why) => {
                        tracing::warn!(
                            "{path}: not resumed at byte {} but read from its start: it was \
                             replaced since it was read ({why})",
                            entry.offset
                        );
                        Position::default()
                    }
                    None => Position {
                        offset: entry.offset,
                        line: entry.line,
                    },
                }
            }
            _ => Position::default(),
        };
        checkpoint.reset(start);
        inner.live.insert(
            (dev, ino),
            Live {
                path: path.to_string(),
                dev,
                ino,
                head,
                file: file.try_clone().ok().map(Arc::new),
                compressed,
                before: None,
                start,
                checkpoint: checkpoint.clone(),
            },
        );
        Ok(start)
    }

    /// The file of `id`, read to its end, is closed and now at `path`:
    /// its copy is closed too, and it is saved under that name (its
    /// reader's `FileCheckpoint`, kept by the caller, keeps it live).
    pub(super) fn park(&self, id: (u64, u64), path: &str) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(live) = inner.live.get_mut(&id) {
            if live.file.is_some() {
                live.entry();
                live.file = None;
            }
            if live.path != path {
                live.path = path.to_string();
            }
        }
    }

    /// The path and delivered byte offset of every file whose read is
    /// under way (its reader holds its checkpoint), by path: at most
    /// `--max-open-files` of them, for `--metrics`.
    pub fn open_positions(&self) -> Vec<(String, u64)> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut open: Vec<(String, u64)> = inner
            .live
            .values()
            .filter(|live| Arc::strong_count(&live.checkpoint) > 1)
            .map(|live| (live.path.clone(), live.checkpoint.delivered().offset))
            .collect();
        open.sort();
        open
    }

    /// Writes the positions out if they changed since the last write,
    /// calling `before` first (with the positions already taken, so that
    /// it covers every record they count: the sink flushing its output to
    /// disk). Blocking: call it off the async workers.
    pub fn save(&self, before: impl FnOnce() -> std::io::Result<()>) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.release_closed();
        // Not in `track`: a file renamed while no run was reading it is
        // still found there, by its device and inode, under its new name;
        // kept under that name, as this run may not have opened it yet
        // (it waits for a slot, or matches a pattern only later).
        inner
            .saved
            .retain_mut(|e| match now_at(&e.path, e.dev, e.ino) {
                Some(path) => {
                    e.path = path;
                    true
                }
                None => false,
            });
        let mut files = inner.saved.clone();
        let mut live: Vec<Entry> = inner.live.values_mut().map(Live::entry).collect();
        live.sort_by(|a, b| a.path.cmp(&b.path));
        files.extend(live);
        let text = serde_json::to_string_pretty(&Saved { files }).map_err(std::io::Error::other)?;
        if inner.written.as_deref() == Some(text.as_str()) {
            return Ok(());
        }
        before()?;
        write_atomically(path, text.as_bytes()).map_err(|error| {
            std::io::Error::new(error.kind(), format!("{}: {error}", path.display()))
        })?;
        inner.written = Some(text);
        Ok(())
    }
}

/// Replaces `path` with `bytes` so that a crash leaves the old or the new
/// contents, never a mix: a temporary file beside it, fsync, rename, and
/// fsync of the folder (the rename itself).
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temporary = temporary_path(path);
    // A temporary file left by a crash, or a symlink put there, is
    // removed, never written through: create_new (O_EXCL) follows no link.
    match std::fs::remove_file(&temporary) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
        _ => {}
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, path)?;
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    std::fs::File::open(folder)?.sync_all()
}

/// The file the checkpoint path `path` stands for: a symlink at its end
/// followed, to the end of a chain of them (otherwise the rename of each
/// save would replace the link with a file, and a run through the link
/// would lock another file than a run through its target). Any other path
/// is left as spelled: its folder, however spelled, holds the same lock.
pub fn resolve(path: &Path) -> PathBuf {
    let mut path = path.to_path_buf();
    // Bounded as the kernel bounds a chain of links.
    for _ in 0..40 {
        let Ok(target) = std::fs::read_link(&path) else {
            break;
        };
        // A relative target is relative to the link's folder.
        path = super::watch::folder_of(&path).join(target);
    }
    path
}

/// The temporary file a checkpoint is written to before its rename.
pub fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".tmp");
    PathBuf::from(name)
}

/// Takes the lock of the checkpoint at `path` ([`lock_path`]), or says
/// that another run holds it.
fn lock(path: &Path) -> std::io::Result<std::fs::File> {
    let lock_path = lock_path(path);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(std::io::Error::new(
            std::io::ErrorKind::ResourceBusy,
            format!(
                "another streamer holds this checkpoint (its lock {} is taken): \
                 two runs would overwrite each other's positions",
                lock_path.display()
            ),
        )),
        Err(std::fs::TryLockError::Error(error)) => Err(std::io::Error::new(
            error.kind(),
            format!("cannot lock {}: {error}", lock_path.display()),
        )),
    }
}

/// The file locked while a run uses the checkpoint at `path` (the
/// checkpoint itself is replaced at each save: a lock on it would not hold).
pub fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".lock");
    PathBuf::from(name)
}

/// The first [`FINGERPRINT_BYTES`] bytes of `file` (fewer if it is shorter).
fn read_head(file: &std::fs::File) -> std::io::Result<Vec<u8>> {
    super::open::head_of(file, FINGERPRINT_BYTES)
}

/// FNV-1a (64 bits) of `bytes`, in hex: stable across builds and runs.
fn fingerprint(bytes: &[u8]) -> String {
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resumes_the_same_file_and_not_a_replaced_one() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("a.log");
        let saved = dir.path().join("cp.json");
        std::fs::write(&data, "one\ntwo\n").unwrap();
        let store = CheckpointStore::load(&saved).unwrap();
        let file = std::fs::File::open(&data).unwrap();
        let checkpoint = Arc::default();
        let start = store
            .track("a.log", &file, false, false, &checkpoint)
            .unwrap();
        assert_eq!(start, Position::default());
        checkpoint.advance(Position { offset: 4, line: 1 });
        store.save(|| Ok(())).unwrap();
        // The lock is held until the store is dropped.
        assert!(CheckpointStore::load(&saved).is_err());
        drop(store);

        let again = CheckpointStore::load(&saved).unwrap();
        let start = again
            .track("a.log", &file, false, false, &Arc::default())
            .unwrap();
        assert_eq!(start, Position { offset: 4, line: 1 });

        // Same name, new contents and inode: read from the start.
        std::fs::remove_file(&data).unwrap();
        std::fs::write(&data, "uno\ndos\n").unwrap();
        let replaced = std::fs::File::open(&data).unwrap();
        drop(again);
        let third = CheckpointStore::load(&saved).unwrap();
        assert_eq!(
            third
                .track("a.log", &replaced, false, false, &Arc::default())
                .unwrap(),
            Position::default()
        );
    }

    #[test]
    fn fingerprint_is_stable() {
        assert_eq!(fingerprint(b""), "cbf29ce484222325");
        assert_eq!(fingerprint(b"a"), "af63dc4c8601ec8c");
    }
}
