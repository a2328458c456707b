//! What happens to a record that cannot be decoded: the `--on-error`
//! policy, the warning, the count, and the `--dead-letter` file
//! ([`super::dead_letter`]).
//!
//! Dead-letter lines wait in memory until [`Rejects::write_out`] hands
//! them to the OS, off the tokio workers. The decode stage calls it before
//! it forwards each batch, so every line rejected before a batch was sent
//! (by the source, or by the decode stage itself) is in the file before
//! that batch's acks can fire: an offset commit never covers a rejected
//! record that a crash could still lose.

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::dead_letter::DeadLetter;
use super::reason::ByKind;
use crate::error::{Error, Result};
use crate::record::{Location, SourceInfo};

/// What to do with a record that cannot be decoded (`--on-error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OnError {
    /// Warn, count, dead-letter it, and go on.
    #[default]
    Skip,
    /// Stop the run at the first one, with its location and reason.
    Stop,
}

/// A Kafka message that stops the run stays uncommitted, so the next run
/// would stop at it again: say how to start past it.
fn with_skip_hint(location: Location<'_>, reason: &str) -> String {
    match location.source {
        SourceInfo::Kafka { topic, partition } => format!(
            "{reason}; to skip it, run again with --from {topic}:{partition}:{}",
            location.pos + 1
        ),
        _ => reason.to_string(),
    }
}

/// Warnings printed before the rest are only counted, so a file of bad
/// lines cannot bury the terminal (the dead-letter file still gets all).
const MAX_WARNINGS: u64 = 100;

/// The shared handler of rejected records; sources and the decode stage
/// both report to it.
#[derive(Debug)]
pub struct Rejects {
    policy: OnError,
    dead_letter: Option<DeadLetter>,
    count: AtomicU64,
    /// The count by kind of reason (see [`super::reason`]).
    by_kind: ByKind,
}

impl Rejects {
    /// A handler with `policy`, writing rejected records to `dead_letter`
    /// when given: the file (opened by [`crate::sink::opening`]) and its
    /// path, for messages.
    pub fn with_file(policy: OnError, dead_letter: Option<(PathBuf, File)>) -> Self {
        Rejects {
            policy,
            dead_letter: dead_letter.map(|(path, file)| DeadLetter::new(path, file)),
            count: AtomicU64::new(0),
            by_kind: ByKind::default(),
        }
    }

    /// Skip everything, no dead-letter file: for tests and library users.
    pub fn skip() -> Self {
        Rejects {
            policy: OnError::Skip,
            dead_letter: None,
            count: AtomicU64::new(0),
            by_kind: ByKind::default(),
        }
    }

    /// Handles one rejected record: counts it, warns, writes it to the
    /// dead-letter file. Under `--on-error stop` returns the error that
    /// ends the run.
    pub fn reject(&self, location: Location<'_>, raw: &[u8], reason: &str) -> Result<()> {
        self.handle(location, raw, reason, true)
    }

    /// [`Rejects::reject`] without the warning: for a caller whose own
    /// warning names the record (a TCP connection that breaks inside a
    /// record says both in one line, and that line is rate-limited, where a
    /// warning per record would be one line per client of a burst).
    pub fn reject_unwarned(&self, location: Location<'_>, raw: &[u8], reason: &str) -> Result<()> {
        self.handle(location, raw, reason, false)
    }

    /// Counts, dead-letters and (with `warn`) warns of one rejected record.
    fn handle(&self, location: Location<'_>, raw: &[u8], reason: &str, warn: bool) -> Result<()> {
        let seen = self.count.fetch_add(1, Ordering::Relaxed) + 1;
        self.by_kind.count(reason);
        if let Some(dead_letter) = &self.dead_letter {
            dead_letter.write(location, raw, reason)?;
        }
        match self.policy {
            OnError::Stop => Err(Error::Rejected {
                location: location.to_string(),
                reason: with_skip_hint(location, reason),
            }),
            OnError::Skip => {
                if !warn {
                    return Ok(());
                }
                if seen <= MAX_WARNINGS {
                    // A rejection names where it is itself: no span around it.
                    tracing::warn!(parent: None, "rejected {location}: {reason}");
                } else if seen == MAX_WARNINGS + 1 {
                    tracing::warn!(
                        "more than {MAX_WARNINGS} records rejected; counting the rest without a warning each"
                    );
                }
                Ok(())
            }
        }
    }

    /// True under `--on-error stop`.
    pub fn stops(&self) -> bool {
        self.policy == OnError::Stop
    }

    /// How many records were rejected so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// How many records were rejected so far, by kind of reason: every
    /// kind, those with none too.
    pub fn count_by_kind(&self) -> Vec<(&'static str, u64)> {
        self.by_kind.snapshot()
    }

    /// Hands every dead-letter line rejected so far to the OS, on the
    /// blocking pool (nothing to do, and no task, when none waits). The
    /// decode stage awaits this before it forwards a batch.
    pub async fn write_out(self: &Arc<Self>) -> Result<()> {
        if !self
            .dead_letter
            .as_ref()
            .is_some_and(DeadLetter::has_pending)
        {
            return Ok(());
        }
        let rejects = self.clone();
        tokio::task::spawn_blocking(move || rejects.finish())
            .await
            .map_err(|join_error| Error::panicked("the dead-letter write", join_error))?
    }

    /// Writes out the dead-letter lines still waiting. Blocks: for a thread
    /// of the blocking pool (a task awaits [`Rejects::write_out`]).
    pub fn finish(&self) -> Result<()> {
        match &self.dead_letter {
            Some(dead_letter) => dead_letter.flush(),
            None => Ok(()),
        }
    }
}
