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
            if matches!(
                event.kind,
                EventKind::Create(_)
                    | EventKind::Remove(_)
                    | EventKind::Modify(notify::event::ModifyKind::Name(_))
            ) {
                changed.notify_one();
            }
            let waiters = for_events.lock().unwrap_or_else(|e| e.into_inner());
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

    /// `path` is followed no more.
    pub(super) fn forget(&self, path: &Path) {
        let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        waiters.files.remove(&event_path(path));
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
