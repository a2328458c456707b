//! Several files read together: glob patterns (`'logs/*.log'`, expanded
//! by streamer) and `--follow`. Each match is read by its own future, at
//! most `--max-open-files` at once, the order kept within each file. With
//! `--follow` the patterns are searched again whenever a watched folder
//! changes (and every `--poll-interval`), so files created later, and a
//! rotated file's successor, are picked up. A compressed match is not
//! followed: it is read to its end, and again, from its start with its
//! delivered records skipped, whenever it changes (a file still written
//! when it was read ends cut short).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures::stream::{FuturesUnordered, StreamExt};

use super::checkpoint::{CheckpointStore, Position};
use super::follow::{Ended, Seen};
use super::gone::Gone;
use super::open::{self, FollowWith};
use super::pattern::matches;
use super::settled::Settled;
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

/// At the end of the run (the pipeline closed: a stop drains them all):
/// the matches still queued for a slot, whose unread bytes (all of a new
/// one, the appended ones of one read before) were not read.
fn say_never_read(waiting: &VecDeque<String>, max_open_files: usize) {
    if !waiting.is_empty() {
        tracing::warn!(
            "{} matched files were left with unread bytes: the run ended while they waited \
             for one of the {max_open_files} slots of --max-open-files: {}",
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
    /// With `--follow`: where it is resumed if it is read again.
    parked: Option<Parked>,
    /// With `--follow`: why it could not be opened, though it is there.
    refused: Option<String>,
}

/// A file whose read ended, kept while it stays matched (rotated to a
/// matching name, closed while idle, compressed): opened again once its
/// size changes, and resumed where its last record sent ends unless it
/// was truncated or rewritten meanwhile (`seen` shows it).
struct Parked {
    /// Its checkpoint: the acks of its first read still advance it.
    checkpoint: Arc<FileCheckpoint>,
    /// Where its last record sent ends.
    end: Position,
    /// What was read of it.
    seen: Seen,
}

/// What wakes a followed file's follower, and how many files wait for a
/// slot.
type Wake = (Arc<tokio::sync::Notify>, Arc<AtomicUsize>);

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
    if let Some(watch) = &mut watch {
        for pattern in patterns.iter().filter(|p| !open::is_pattern(p)) {
            watch.catch_arrivals(pattern, options.max_open_files);
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
    let mut waiting: VecDeque<String> = VecDeque::new();
    // `waiting`'s length, for the followers: an idle file gives up its
    // slot while files wait for one.
    let waiting_count = Arc::new(AtomicUsize::new(0));
    // The file of each path being read: a rotated file matched under its
    // new name is read there only once its reader under the old name
    // ended, from where that one stopped (`parked`), not read twice; an
    // idle file closed to free its slot, and a compressed file read to
    // its end, wait there too, until they change.
    let mut ids: HashMap<String, (u64, u64)> = HashMap::new();
    let mut parked: HashMap<(u64, u64), Parked> = HashMap::new();
    let mut gone = Gone::new(options.poll_interval);
    let mut successors = Successors::default();
    let mut settled = Settled::default();
    let mut reads = FuturesUnordered::new();
    // How many waited when that was last said.
    let mut said_waiting = 0;
    // The run's own files met by a pattern, and matches that are not
    // regular files, each warned about once.
    let mut skipped: HashSet<String> = HashSet::new();
    // Searched at the start, at each poll and folder change, and when a
    // read ends in a way that may leave a new file at its path; not for a
    // file giving up its slot (one search per slot made 2,000 files
    // through 256 slots take 11 s: a search looks at every match).
    let mut search = true;
    // Not restarted by each turn of the loop: with reads ending all the
    // time, the poll still comes.
    let mut poll = tokio::time::interval(options.poll_interval);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    poll.tick().await;
    // A stop searches once more: a file read before and appended to since
    // the last search (closed to free its slot, or read to its end) is
    // queued then, and drained with the others up to its size.
    let mut searched_at_stop = false;
    loop {
        let stopping = ctx.shutdown.is_cancelled();
        let last_search = options.follow && stopping && !searched_at_stop;
        if (search && !stopping) || last_search {
            searched_at_stop |= stopping;
            let queue = Queue {
                ids: &ids,
                active: &mut active,
                waiting: &mut waiting,
            };
            queue_arrivals(
                watch.as_ref(),
                &mut successors,
                queue,
                options.max_open_files,
            );
            let mut matched = HashSet::new();
            for pattern in patterns {
                let found = matches(pattern)?;
                for (path, why) in &found.others {
                    if skipped.insert(path.clone()) {
                        tracing::warn!("{path} matches {pattern} but {why}: not read");
                    }
                }
                for (path, id) in found.files {
                    matched.insert(id);
                    if active.contains(&path) && options.follow {
                        successors.note(&path, id, &ids, options.max_open_files);
                        continue;
                    }
                    if active.contains(&path) || seen.contains(&path) || hold.contains(&path) {
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
                    // The stop's search queues only files read before and
                    // grown since: any other, its reader ended by the stop
                    // with acks still to come, would be read again from a
                    // checkpoint not yet past them.
                    if stopping && !parked.contains_key(&id) {
                        continue;
                    }
                    if let Some(read) = parked.get(&id) {
                        // Read to its end and closed: opened again only once
                        // its size (or a compressed one's mtime) changed, so
                        // it holds no slot while idle (whether it was
                        // truncated or rewritten is looked at then). Its
                        // checkpoint entry takes the name it has now.
                        store.park(id, &path);
                        if !read.seen.changed(&path) {
                            continue;
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
            // not waited for; nor is a compressed one no longer there: once
            // more than this search missed it (`Gone`).
            parked.retain(|id, _| gone.keep(*id, matched.contains(id)));
            gone.retain(|id| parked.contains_key(id));
            search = false;
        }
        while reads.len() < options.max_open_files {
            // Once the run stops, every queued file is still read, through
            // the slots, up to its size (its follower stops there): bytes
            // appended to a file after it gave up its slot would otherwise
            // be dropped, and a file queued at a followed path would not
            // be found by a restart.
            let Some(path) = waiting.pop_front() else {
                break;
            };
            let restart = fresh.remove(&path);
            let wake = watch.as_mut().map(|w| w.file(std::path::Path::new(&path)));
            let successor = successors.take(&path);
            if let Some((id, _)) = &successor {
                ids.insert(path.clone(), *id);
            }
            let resume = ids.get(&path).and_then(|id| parked.remove(id));
            let searched = successor
                .is_none()
                .then(|| ids.get(&path).copied())
                .flatten();
            reads.push(read_path(
                path,
                options,
                store,
                ctx,
                Start {
                    fresh: restart,
                    resume,
                    successor: successor.map(|(_, file)| file),
                    searched,
                },
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
            successors.say_unread();
            return Ok(());
        }
        tokio::select! {
            Some(done) = reads.next() => {
                let Done { path, read, ended, parked: resume, refused: why } = done;
                // Before the file read is forgotten: one that came as it
                // ended may be it, renamed away.
                let queue = Queue {
                    ids: &ids,
                    active: &mut active,
                    waiting: &mut waiting,
                };
                queue_arrivals(watch.as_ref(), &mut successors, queue, options.max_open_files);
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
                if let (Some(id), Some(resume), Ended::Rotated | Ended::Deleted | Ended::Idle | Ended::ReadOnce) = (id, resume, ended) {
                    if matches!(ended, Ended::Idle | Ended::ReadOnce) {
                        store.park(id, &path);
                    }
                    parked.insert(id, resume);
                }
                if let Some(watch) = &watch {
                    watch.forget(std::path::Path::new(&path));
                }
                if read? == Flow::PipelineClosed {
                    say_never_read(&waiting, options.max_open_files);
                    successors.say_unread();
                    return Ok(());
                }
                if successors.waiting(&path) {
                    active.insert(path.clone());
                    waiting.push_back(path.clone());
                }
                // Its path may hold a new file (rotated, deleted, or the
                // same file truncated, read again from its start).
                search = options.follow
                    && matches!(ended, Ended::Rotated | Ended::Deleted | Ended::Truncated);
                if ended == Ended::Truncated {
                    fresh.insert(path);
                }
            }
            _ = async { folders_changed.as_ref().unwrap().notified().await },
                if folders_changed.is_some() => {
                    hold.clear();
                    search = true;
                }
            _ = poll.tick(), if options.follow && !ctx.shutdown.is_cancelled() => {
                hold.clear();
                search = true;
            }
            _ = ctx.shutdown.cancelled(), if options.follow && reads.is_empty() => {}
        }
    }
}

/// The tables of [`read_many`] a file queued at a path goes to.
struct Queue<'a> {
    /// The file read at each path.
    ids: &'a HashMap<String, (u64, u64)>,
    /// The paths read or waiting for a slot.
    active: &'a mut HashSet<String>,
    /// The paths waiting for a slot.
    waiting: &'a mut VecDeque<String>,
}

/// Queues the files the watcher opened as they came to plain followed
/// paths (or were renamed away from them): each is read at its path
/// after the file read there, even if it is renamed again, or deleted,
/// before a search could see it.
fn queue_arrivals(watch: Option<&Watch>, successors: &mut Successors, queue: Queue, max: usize) {
    let Some(watch) = watch else {
        return;
    };
    let (arrivals, missed) = watch.take_arrivals();
    for (path, id, file) in arrivals {
        successors.arrived(&path, id, file, queue.ids, max);
        if successors.waiting(&path) && queue.active.insert(path.clone()) {
            queue.waiting.push_back(path);
        }
    }
    if missed {
        crate::warn_limited!(
            "files come to a followed path faster than they are read: more than {max} \
             (--max-open-files) wait, and some may be missed: follow a pattern that matches \
             the rotated names too"
        );
    }
}

/// Where and how a read of one path starts.
struct Start {
    /// Read from the file's start, whatever its checkpoint says.
    fresh: bool,
    /// Where its earlier read stopped: under another name, or before it
    /// was closed.
    resume: Option<Parked>,
    /// The file already opened at its rotation, to read instead of
    /// opening the path.
    successor: Option<std::fs::File>,
    /// The device and inode the search found at the path, which the file
    /// opened must still be.
    searched: Option<(u64, u64)>,
}

/// Opens and reads the file at `path` (followed when `wake` is given),
/// from where `how` says: its start, where its earlier read stopped, or
/// where the checkpoint has it.
async fn read_path(
    path: String,
    options: &FileOptions,
    store: &Arc<CheckpointStore>,
    ctx: &SourceContext,
    how: Start,
    wake: Option<Wake>,
) -> Done {
    let follow = wake.is_some();
    let (read, ended, parked, refused) =
        match read_file(&path, options, store, ctx, how, wake).await {
            Ok((flow, ended, parked)) => (Ok(flow), ended, parked, None),
            // A file made unreadable for a moment (chmod) does not end a
            // run that follows it: it is tried again.
            Err(Error::Open { source, .. }) if follow => (
                Ok(Flow::InputEnded),
                Ended::Stopped,
                None,
                Some(source.to_string()),
            ),
            Err(error) => (Err(error), Ended::Stopped, None, None),
        };
    Done {
        path,
        read,
        ended,
        parked,
        refused,
    }
}

/// Under `--follow`, a compressed file cut short (still written when it
/// settled, or truncated) or corrupt does not end the run: it is read
/// again once it changes, from where its records sent end.
fn cut_short(
    message: &str,
    checkpoint: Arc<FileCheckpoint>,
    end: Position,
    seen: Option<Seen>,
) -> (Flow, Ended, Option<Parked>) {
    tracing::warn!("{message}: read up to there, and again once it changes (--follow)");
    let parked = seen.map(|seen| Parked {
        checkpoint,
        end,
        seen,
    });
    (Flow::InputEnded, Ended::ReadOnce, parked)
}

async fn read_file(
    path: &str,
    options: &FileOptions,
    store: &Arc<CheckpointStore>,
    ctx: &SourceContext,
    Start {
        fresh,
        resume,
        successor,
        searched,
    }: Start,
    wake: Option<Wake>,
) -> Result<(Flow, Ended, Option<Parked>)> {
    let opened = match successor {
        Some(file) => Ok(file),
        None => super::successors::open_now(path),
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
    // Renamed between the search and this open: the path holds another
    // file than the one `read_many`'s tables (`ids`, `parked`) have at it.
    // Read under that file's device and inode, its state would go to the
    // other (resumed at its position, or kept from being read as "being
    // read"): not read now, its state handed back, and the path searched
    // again, which finds each file under the name it has now.
    let now = file.metadata().map(|m| {
        use std::os::unix::fs::MetadataExt;
        (m.dev(), m.ino())
    });
    if searched.is_some_and(|searched| now.is_ok_and(|now| now != searched)) {
        tracing::debug!("{path}: another file than the one searched: searched again");
        return Ok((Flow::InputEnded, Ended::Deleted, resume));
    }
    // The path may hold another kind of file since it was searched.
    if !file.metadata().is_ok_and(|metadata| metadata.is_file()) {
        return Err(Error::Open {
            path: path.into(),
            source: std::io::Error::other("not a regular file"),
        });
    }
    // A file closed after its read is resumed only if it is still what
    // was read: truncated or rewritten meanwhile, it is read again.
    let (mut fresh, mut resume) = (fresh, resume);
    if let Some(why) = resume.as_ref().and_then(|read| read.seen.differs(&file)) {
        tracing::warn!(
            "{path}: truncated or rewritten since it was read ({why}): read again from its start"
        );
        (fresh, resume) = (true, None);
    }
    // What a file read once (compressed) is, as it is opened: read again
    // only once that changes.
    let seen = options.follow.then(|| {
        let len = file.metadata().map_or(0, |metadata| metadata.len());
        Seen::of(&file, len)
    });
    let file = tokio::fs::File::from_std(file);
    let file_options = options.for_path(path);
    // The same checkpoint as before: the acks of the earlier read still
    // to come advance it too.
    let (checkpoint, read_to) = match resume {
        Some(read) => (read.checkpoint, Some(read.end)),
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
    let prepared = open::prepare(
        file,
        path,
        &file_options,
        store,
        &checkpoint,
        fresh,
        follow_with,
    )
    .await;
    let mut opened = match prepared {
        Ok(opened) => opened,
        Err(Error::Corrupt(message)) if options.follow => {
            let at = read_to.unwrap_or_default();
            return Ok(cut_short(&message, checkpoint, at, seen));
        }
        Err(error) => return Err(error),
    };
    let follower = opened.follower.take();
    let compressed = opened.compressed;
    let (flow, end) = read_one(ctx, path, options, checkpoint.clone(), opened).await;
    let (ended, seen) = match follower {
        Some(task) => match task.await {
            Ok((ended, read)) => (ended, Some(read)),
            Err(_) => (Ended::Stopped, None),
        },
        None if compressed && options.follow => (Ended::ReadOnce, seen),
        None => (Ended::Stopped, None),
    };
    let flow = match flow {
        Err(Error::Corrupt(message)) if options.follow => {
            return Ok(cut_short(&message, checkpoint, end, seen));
        }
        flow => flow?,
    };
    let parked = seen.map(|seen| Parked {
        checkpoint,
        end,
        seen,
    });
    Ok((flow, ended, parked))
}
