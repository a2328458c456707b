//! Several files read together: glob patterns (`'logs/*.log'`, expanded
//! by streamer) and `--follow`. Each match is read by its own future, at
//! most `--max-open-files` at once, the order kept within each file. With
//! `--follow` the patterns are searched again whenever a watched folder
//! changes (and every `--poll-interval`), so files created later, and a
//! rotated file's successor, are picked up. A compressed match is read
//! once, not followed, and read again only if another file takes its name.

use std::collections::{HashMap, HashSet, VecDeque};
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures::stream::{FuturesUnordered, StreamExt};

use super::checkpoint::{CheckpointStore, Position};
use super::follow::Ended;
use super::open::{self, FollowWith};
use super::pattern::matches;
use super::successors::Successors;
use super::watch::Watch;
use super::{read_one, FileCheckpoint, FileOptions, Flow};
use crate::error::{Error, Result};
use crate::parts::SourceContext;

/// The files this run writes (`-o`, `--dead-letter`, `--checkpoint` and
/// its temporary and lock files), which a pattern never reads: reading
/// them would feed the run its own output, forever.
#[derive(Debug, Default, Clone)]
pub struct OwnFiles {
    /// Each file, with what it is (`-o`, ...) for the warning.
    files: Vec<(std::path::PathBuf, &'static str)>,
}

impl OwnFiles {
    /// Adds `path`, which is the run's `what` (such as "the -o file").
    pub fn add(&mut self, path: &std::path::Path, what: &'static str) {
        self.files.push((path.to_path_buf(), what));
    }

    /// What the match `path` (of device and inode `id`) is of the run's
    /// files, if it is one: the same canonical folder and name (a file
    /// created or replaced since is still known), or the same device and
    /// inode (a link to one).
    fn which(&self, path: &str, id: (u64, u64)) -> Option<&'static str> {
        use std::os::unix::fs::MetadataExt;
        let name = canonical_name(std::path::Path::new(path));
        self.files.iter().find_map(|(own, what)| {
            let same = (name.is_some() && canonical_name(own) == name)
                || std::fs::metadata(own).is_ok_and(|m| (m.dev(), m.ino()) == id);
            same.then_some(*what)
        })
    }
}

/// `path` as its canonical folder and its name (the file itself need not
/// exist).
fn canonical_name(path: &std::path::Path) -> Option<std::path::PathBuf> {
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => std::path::Path::new("."),
    };
    Some(folder.canonicalize().ok()?.join(path.file_name()?))
}

/// How many names a warning about waiting files shows.
const NAMES_SHOWN: usize = 5;

/// Up to [`NAMES_SHOWN`] of `paths`, and how many more.
fn some_names<'a>(paths: impl ExactSizeIterator<Item = &'a String>) -> String {
    let count = paths.len();
    let mut names: Vec<&str> = paths.take(NAMES_SHOWN).map(String::as_str).collect();
    let more = count - names.len();
    let more = (more > 0).then(|| format!(" and {more} more"));
    names.sort_unstable();
    format!("{}{}", names.join(", "), more.unwrap_or_default())
}

/// At the end of the run: the matches that never got a slot.
fn say_never_read(waiting: &VecDeque<String>, max_open_files: usize) {
    if !waiting.is_empty() {
        tracing::warn!(
            "{} matched files were never read: the run ended while they waited for one \
             of the {max_open_files} slots of --max-open-files: {}",
            waiting.len(),
            some_names(waiting.iter())
        );
    }
}

/// How one file's read ended.
struct Done {
    path: String,
    read: Result<Flow>,
    ended: Ended,
    /// Its checkpoint and where its last record sent on ends.
    read_to: Option<ReadTo>,
    /// With `--follow`: why it could not be opened, though it is there.
    refused: Option<String>,
}

/// A file's checkpoint and how far it was read: where a file rotated to
/// another matching name resumes.
type ReadTo = (Arc<FileCheckpoint>, Position);

/// What wakes a followed file's follower, and how many files wait for a
/// slot.
type Wake = (Arc<tokio::sync::Notify>, Arc<AtomicUsize>);

/// With `--follow`: compressed matches are read once their size and
/// modification time have not changed for two poll intervals, as a
/// compressed file is not followed: logrotate's `compress` writes it
/// progressively, and a read of it half written would end at a cut stream.
#[derive(Default)]
struct Settled {
    /// Each compressed match not read yet: its size and modification time,
    /// and since when they have been so.
    seen: HashMap<String, ((u64, i64, i64), std::time::Instant)>,
}

impl Settled {
    /// Whether `path` may be read now: not compressed, or settled.
    fn settled(&mut self, path: &str, options: &FileOptions) -> bool {
        let Ok(file) = super::successors::open_now(path) else {
            return true;
        };
        let compressed = open::head_of(&file, super::decompress::MAGIC_BYTES)
            .is_ok_and(|head| options.decompress.codec(&head).is_some());
        let (true, Ok(metadata)) = (compressed, file.metadata()) else {
            return true;
        };
        let now = (metadata.len(), metadata.mtime(), metadata.mtime_nsec());
        match self.seen.get(path) {
            Some((was, since)) if *was == now => {
                let settled = since.elapsed() >= options.poll_interval * 2;
                if settled {
                    self.seen.remove(path);
                }
                settled
            }
            _ => {
                let first_seen = (now, std::time::Instant::now());
                self.seen.insert(path.to_string(), first_seen);
                false
            }
        }
    }
}

/// A file's device and inode, if it is there.
fn file_id(path: &str) -> Option<(u64, u64)> {
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.dev(), metadata.ino()))
}

/// Reads every match of `patterns` (see the module documentation).
pub(super) async fn read_many(
    patterns: &[String],
    options: &FileOptions,
    own: &OwnFiles,
    store: &Arc<CheckpointStore>,
    ctx: &SourceContext,
) -> Result<()> {
    let mut watch = options.follow.then(|| Watch::new(options.poll_interval));
    if let Some(watch) = &mut watch {
        for pattern in patterns {
            if let Some(folder) = open::pattern_folder(pattern) {
                watch.watch_folder(&folder, super::pattern::recursive(pattern));
            }
        }
    }
    let folders_changed = watch.as_ref().map(|w| w.folders_changed.clone());
    // Paths being read, or waiting for a slot.
    let mut active: HashSet<String> = HashSet::new();
    // Without --follow, every path is read once (with it, never filled).
    let mut seen: HashSet<String> = HashSet::new();
    // With --follow, paths there but not opened (said once until opened
    // again), and those of them not tried again before the next poll or
    // folder change.
    let mut refused: HashSet<String> = HashSet::new();
    let mut hold: HashSet<String> = HashSet::new();
    // Truncated files: read again from their start.
    let mut fresh: HashSet<String> = HashSet::new();
    // Compressed files read to their end (with --follow), by the device
    // and inode they had then.
    let mut read_once: HashMap<String, (u64, u64)> = HashMap::new();
    let mut waiting: VecDeque<String> = VecDeque::new();
    // `waiting`'s length, for the followers: an idle file gives up its
    // slot while files wait for one.
    let waiting_count = Arc::new(AtomicUsize::new(0));
    // The file of each path being read: a rotated file matched under its
    // new name is read there only once its reader under the old name
    // ended, from where that one stopped (`rotated`), not read twice; an
    // idle file closed to free its slot waits there too, until it changes.
    let mut ids: HashMap<String, (u64, u64)> = HashMap::new();
    let mut rotated: HashMap<(u64, u64), ReadTo> = HashMap::new();
    let mut successors = Successors::default();
    let mut settled = Settled::default();
    let mut reads = FuturesUnordered::new();
    // How many waited when that was last said.
    let mut said_waiting = 0;
    // The run's own files met by a pattern, and matches that are not
    // regular files, each warned about once.
    let mut skipped: HashSet<String> = HashSet::new();
    let mut search = true;
    loop {
        if search && !ctx.shutdown.is_cancelled() {
            let mut matched = HashSet::new();
            for pattern in patterns {
                let found = matches(pattern)?;
                for (path, what) in &found.others {
                    if skipped.insert(path.clone()) {
                        tracing::warn!(
                            "{path} matches {pattern} but is {what}, not a regular file: not read"
                        );
                    }
                }
                for (path, id) in found.files {
                    matched.insert(id);
                    if active.contains(&path) && options.follow {
                        successors.note(&path, id, &ids, options.max_open_files);
                        continue;
                    }
                    if active.contains(&path)
                        || seen.contains(&path)
                        || hold.contains(&path)
                        || read_once.get(&path) == Some(&id)
                    {
                        continue;
                    }
                    if let Some(what) = own.which(&path, id) {
                        if skipped.insert(path.clone()) {
                            tracing::warn!(
                                "{path} matches {pattern} but is {what} of this run: not read \
                                 (it would read its own writes)"
                            );
                        }
                        continue;
                    }
                    if ids.values().any(|&read| read == id) || successors.holds(id) {
                        continue;
                    }
                    if let Some((_, read)) = rotated.get(&id) {
                        // Read to its end and closed: opened again only once
                        // it changed, so it holds no slot while idle.
                        let len = std::fs::metadata(&path).map_or(read.offset, |m| m.len());
                        match len.cmp(&read.offset) {
                            std::cmp::Ordering::Equal => {
                                store.park(id, &path);
                                continue;
                            }
                            std::cmp::Ordering::Less => {
                                rotated.remove(&id);
                                fresh.insert(path.clone());
                            }
                            std::cmp::Ordering::Greater => {}
                        }
                    }
                    if options.follow && !settled.settled(&path, options) {
                        continue;
                    }
                    ids.insert(path.clone(), id);
                    if !options.follow {
                        seen.insert(path.clone());
                    }
                    active.insert(path.clone());
                    waiting.push_back(path);
                }
            }
            // A rotated file read to its end under its old name and matched
            // under none now (deleted, or renamed out of the patterns) is
            // not waited for; nor is a compressed one no longer there.
            rotated.retain(|id, _| matched.contains(id));
            read_once.retain(|_, id| matched.contains(id));
            search = options.follow;
        }
        while reads.len() < options.max_open_files && !ctx.shutdown.is_cancelled() {
            let Some(path) = waiting.pop_front() else {
                break;
            };
            let restart = fresh.remove(&path);
            let wake = watch.as_mut().map(|w| w.file(std::path::Path::new(&path)));
            let successor = successors.take(&path);
            if let Some((id, _)) = &successor {
                ids.insert(path.clone(), *id);
            }
            let read_to = ids.get(&path).and_then(|id| rotated.remove(id));
            reads.push(read_path(
                path,
                options,
                store,
                ctx,
                (restart, read_to, successor.map(|(_, file)| file)),
                wake.map(|wake| (wake, waiting_count.clone())),
            ));
        }
        waiting_count.store(waiting.len(), Ordering::Relaxed);
        if waiting.len() > said_waiting {
            crate::warn_limited!(
                "{} files wait for one of the {} open ones to close (--max-open-files): {}",
                waiting.len(),
                options.max_open_files,
                some_names(waiting.iter())
            );
        }
        said_waiting = waiting.len();
        if reads.is_empty() && (!options.follow || ctx.shutdown.is_cancelled()) {
            say_never_read(&waiting, options.max_open_files);
            return Ok(());
        }
        let poll = tokio::time::sleep(options.poll_interval);
        tokio::select! {
            Some(done) = reads.next() => {
                let Done { path, read, ended, read_to, refused: why } = done;
                active.remove(&path);
                match why {
                    Some(why) => {
                        if refused.insert(path.clone()) {
                            tracing::warn!("{path}: cannot be read ({why}): tried again at the next change or poll (--follow)");
                        }
                        hold.insert(path.clone());
                    }
                    None => {
                        refused.remove(&path);
                    }
                }
                let id = ids.remove(&path);
                if let (Some(id), Some(read_to), Ended::Rotated | Ended::Deleted | Ended::Idle) = (id, read_to, ended) {
                    if ended == Ended::Idle {
                        store.park(id, &path);
                    }
                    rotated.insert(id, read_to);
                }
                if let Some(watch) = &watch {
                    watch.forget(std::path::Path::new(&path));
                }
                if read? == Flow::PipelineClosed {
                    say_never_read(&waiting, options.max_open_files);
                    return Ok(());
                }
                if successors.waiting(&path) && !ctx.shutdown.is_cancelled() {
                    active.insert(path.clone());
                    waiting.push_back(path.clone());
                }
                match ended {
                    Ended::Truncated => {
                        fresh.insert(path);
                    }
                    Ended::ReadOnce => {
                        if let Some(id) = file_id(&path) {
                            read_once.insert(path, id);
                        }
                    }
                    Ended::Rotated | Ended::Deleted | Ended::Idle | Ended::Stopped => {}
                }
            }
            _ = async { folders_changed.as_ref().unwrap().notified().await },
                if folders_changed.is_some() => hold.clear(),
            _ = poll, if options.follow && !ctx.shutdown.is_cancelled() => hold.clear(),
            _ = ctx.shutdown.cancelled(), if options.follow && reads.is_empty() => {}
        }
    }
}

/// Opens and reads the file at `path` (followed when `wake` is given):
/// from its start if `fresh`, else from where it was read under another
/// name (`read_to`) or where the checkpoint has it.
async fn read_path(
    path: String,
    options: &FileOptions,
    store: &Arc<CheckpointStore>,
    ctx: &SourceContext,
    (fresh, read_to, successor): (bool, Option<ReadTo>, Option<std::fs::File>),
    wake: Option<Wake>,
) -> Done {
    let follow = wake.is_some();
    let (read, ended, read_to, refused) = match read_file(
        &path,
        options,
        store,
        ctx,
        (fresh, read_to, successor),
        wake,
    )
    .await
    {
        Ok((flow, ended, read_to)) => (Ok(flow), ended, read_to, None),
        // A file made unreadable for a moment (chmod) does not end a
        // run that follows it: it is tried again.
        Err(Error::Open { source, .. }) if follow => (
            Ok(Flow::InputEnded),
            Ended::Stopped,
            None,
            Some(source.to_string()),
        ),
        // A compressed file cut short (truncated, or still written when
        // it settled) does not end a run that follows others.
        Err(Error::Corrupt(message)) if follow => {
            tracing::warn!("{message}: read up to there (--follow goes on)");
            (Ok(Flow::InputEnded), Ended::ReadOnce, None, None)
        }
        Err(error) => (Err(error), Ended::Stopped, None, None),
    };
    Done {
        path,
        read,
        ended,
        read_to,
        refused,
    }
}

async fn read_file(
    path: &str,
    options: &FileOptions,
    store: &Arc<CheckpointStore>,
    ctx: &SourceContext,
    (fresh, read_to, successor): (bool, Option<ReadTo>, Option<std::fs::File>),
    wake: Option<Wake>,
) -> Result<(Flow, Ended, Option<ReadTo>)> {
    let opened = match successor {
        Some(file) => Ok(tokio::fs::File::from_std(file)),
        None => tokio::fs::File::open(path).await,
    };
    let file = match opened {
        Ok(file) => file,
        // Gone between the search and the open: found again if it returns.
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok((Flow::InputEnded, Ended::Deleted, None))
        }
        Err(source) => {
            return Err(Error::Open {
                path: path.into(),
                source,
            })
        }
    };
    let file_options = options.for_path(path);
    // The same checkpoint as under the old name: that reader's acks still
    // to come advance it too.
    let (checkpoint, read_to) = match read_to {
        Some((checkpoint, position)) => (checkpoint, Some(position)),
        None => (Arc::new(FileCheckpoint::default()), None),
    };
    let follow_with = wake.map(|(wake, waiting)| {
        let with = FollowWith {
            wake,
            poll: options.poll_interval,
            waiting,
            read_to,
        };
        (with, ctx.shutdown.clone())
    });
    let mut opened = open::prepare(
        file,
        path,
        &file_options,
        store,
        &checkpoint,
        fresh,
        follow_with,
    )
    .await?;
    let follower = opened.follower.take();
    let compressed = opened.compressed;
    let (flow, end) = read_one(ctx, path, options, checkpoint.clone(), opened).await?;
    let ended = match follower {
        Some(task) => task.await.unwrap_or(Ended::Stopped),
        None if compressed && options.follow && !ctx.shutdown.is_cancelled() => Ended::ReadOnce,
        None => Ended::Stopped,
    };
    Ok((flow, ended, Some((checkpoint, end))))
}
