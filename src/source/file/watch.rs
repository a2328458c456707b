//! File-system events for `--follow` (inotify on Linux, through the
//! `notify` crate): a followed file's change wakes its follower, and a
//! file appearing or disappearing in a watched folder wakes the search for
//! new matches. Without a watcher (the kernel refused one, or a folder
//! cannot be watched), the poll interval alone drives both.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::Notify;

/// Who waits for which path's events.
#[derive(Default)]
struct Waiters {
    files: HashMap<PathBuf, Arc<Notify>>,
    /// The plain followed paths (by event path, with the path as given),
    /// whose files are opened the moment an event shows them.
    plain: HashMap<PathBuf, String>,
    arrivals: Arrivals,
}

/// A file's device and inode.
type FileId = (u64, u64);

/// Files that came to a plain followed path, opened on the watcher's
/// thread as its event came: a file rotated away (or renamed again) before
/// the search saw it at the path is still read, through its descriptor.
#[derive(Default)]
struct Arrivals {
    /// By path as given, in the order they came.
    files: Vec<(String, FileId, std::fs::File)>,
    /// At most this many held (`--max-open-files`).
    max: usize,
    /// Whether one was not opened because `max` were held.
    missed: bool,
}

impl Arrivals {
    /// Opens what `at` holds now as a file that came to `path`, unless it
    /// is held already.
    fn open(&mut self, path: &str, at: &Path) {
        use std::os::unix::fs::MetadataExt;
        if self.files.len() >= self.max {
            self.missed = true;
            return;
        }
        let Ok(file) = super::successors::open_now(&at.to_string_lossy()) else {
            return;
        };
        let Ok(metadata) = file.metadata() else {
            return;
        };
        let id = (metadata.dev(), metadata.ino());
        if metadata.is_file() && !self.files.iter().any(|(_, held, _)| *held == id) {
            self.files.push((path.to_string(), id, file));
        }
    }
}

/// See the module documentation.
pub(super) struct Watch {
    waiters: Arc<Mutex<Waiters>>,
    /// Notified when a file is created, renamed or removed in a watched
    /// folder; its waiter is the glob search of [`super::many`].
    pub(super) folders_changed: Arc<Notify>,
    watcher: Option<notify::RecommendedWatcher>,
    watched: HashSet<PathBuf>,
    /// The folders watched with their subfolders (`**`), those created
    /// later too.
    recursive: Vec<PathBuf>,
}

impl Watch {
    /// A watcher, or polling only if none can be made (said once, as a warning).
    pub(super) fn new(poll: std::time::Duration) -> Watch {
        let waiters = Arc::new(Mutex::new(Waiters::default()));
        let folders_changed = Arc::new(Notify::new());
        let (for_events, changed) = (waiters.clone(), folders_changed.clone());
        // Runs on notify's own thread.
        let handler = move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            let mut waiters = for_events.lock().unwrap_or_else(|e| e.into_inner());
            arrived(&mut waiters, &event);
            if matches!(
                event.kind,
                EventKind::Create(_)
                    | EventKind::Remove(_)
                    | EventKind::Modify(notify::event::ModifyKind::Name(_))
            ) {
                changed.notify_one();
            }
            for path in &event.paths {
                if let Some(waiter) = waiters.files.get(path) {
                    waiter.notify_one();
                }
            }
        };
        let watcher = match notify::recommended_watcher(handler) {
            Ok(watcher) => Some(watcher),
            Err(error) => {
                tracing::warn!(
                    "cannot watch files for changes ({error}): looking at them every {poll:?} (--poll-interval)"
                );
                None
            }
        };
        Watch {
            waiters,
            folders_changed,
            watcher,
            watched: HashSet::new(),
            recursive: Vec::new(),
        }
    }

    /// Watches `folder` (with its subfolders if `recursive`), once; a
    /// folder that does not exist (yet) is left to polling.
    pub(super) fn watch_folder(&mut self, folder: &Path, recursive: bool) {
        let Some(watcher) = &mut self.watcher else {
            return;
        };
        let Ok(folder) = folder.canonicalize() else {
            return;
        };
        // Watched again alone, a subfolder would lose the watching of
        // the folders created in it later.
        if self.watched.contains(&folder) || self.recursive.iter().any(|r| folder.starts_with(r)) {
            return;
        }
        let mode = match recursive {
            true => RecursiveMode::Recursive,
            false => RecursiveMode::NonRecursive,
        };
        match watcher.watch(&folder, mode) {
            Ok(()) => {
                if recursive {
                    self.recursive.push(folder.clone());
                }
                self.watched.insert(folder);
            }
            Err(error) => tracing::debug!("cannot watch {}: {error}", folder.display()),
        }
    }

    /// What wakes the follower of `path` (its folder watched too).
    pub(super) fn file(&mut self, path: &Path) -> Arc<Notify> {
        let folder = folder_of(path);
        self.watch_folder(&folder, false);
        let key = event_path(path);
        let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        waiters.files.entry(key).or_default().clone()
    }

    /// `path`, a plain path followed, has each file that comes to it
    /// opened as its event comes (at most `max` held at once).
    pub(super) fn catch_arrivals(&mut self, path: &str, max: usize) {
        if self.watcher.is_none() {
            return;
        }
        let key = event_path(Path::new(path));
        let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        waiters.arrivals.max = max;
        waiters.plain.insert(key, path.to_string());
    }

    /// The files that came to plain followed paths since the last call,
    /// each with its path, in the order they came; and whether one was
    /// missed because `--max-open-files` were held.
    pub(super) fn take_arrivals(&self) -> (Vec<(String, FileId, std::fs::File)>, bool) {
        let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        let missed = std::mem::take(&mut waiters.arrivals.missed);
        (std::mem::take(&mut waiters.arrivals.files), missed)
    }

    /// `path` is followed no more.
    pub(super) fn forget(&self, path: &Path) {
        let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        waiters.files.remove(&event_path(path));
    }
}

/// Opens the file an event shows at a plain followed path: one created
/// or renamed there, or one renamed away from it (its new name is the
/// event's second path), which may be one the search never saw there.
fn arrived(waiters: &mut Waiters, event: &notify::Event) {
    use notify::event::{ModifyKind, RenameMode};
    let Waiters {
        plain, arrivals, ..
    } = waiters;
    match (event.kind, event.paths.as_slice()) {
        (EventKind::Create(_) | EventKind::Modify(ModifyKind::Name(RenameMode::To)), [at]) => {
            if let Some(path) = plain.get(at) {
                arrivals.open(path, at);
            }
        }
        (EventKind::Modify(ModifyKind::Name(RenameMode::Both)), [from, to]) => {
            if let Some(path) = plain.get(from) {
                arrivals.open(path, to);
            }
        }
        _ => {}
    }
}

/// The folder a path is in (`.` for a bare name).
pub(super) fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// `path` as the watcher names it in its events: its folder resolved.
fn event_path(path: &Path) -> PathBuf {
    let folder = folder_of(path);
    let folder = folder.canonicalize().unwrap_or(folder);
    match path.file_name() {
        Some(name) => folder.join(name),
        None => folder,
    }
}
