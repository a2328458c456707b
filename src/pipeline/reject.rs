//! What happens to a record that cannot be decoded: the `--on-error`
//! policy, the warning, the count, and the `--dead-letter` file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::json;
use crate::record::Location;

/// What to do with a record that cannot be decoded (`--on-error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OnError {
    /// Warn, count, dead-letter it, and go on.
    #[default]
    Skip,
    /// Stop the run at the first one, with its location and reason.
    Stop,
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
}

#[derive(Debug)]
struct DeadLetter {
    path: PathBuf,
    file: Mutex<BufWriter<File>>,
}

impl Rejects {
    /// A handler with `policy`, writing rejected records to `dead_letter`
    /// (created now, truncated) when given.
    pub fn new(policy: OnError, dead_letter: Option<&Path>) -> Result<Self> {
        let dead_letter = match dead_letter {
            None => None,
            Some(path) => {
                let file = File::create(path).map_err(|source| Error::Output {
                    path: path.to_path_buf(),
                    source,
                })?;
                Some(DeadLetter {
                    path: path.to_path_buf(),
                    file: Mutex::new(BufWriter::with_capacity(64 * 1024, file)),
                })
            }
        };
        Ok(Rejects {
            policy,
            dead_letter,
            count: AtomicU64::new(0),
        })
    }

    /// Skip everything, no dead-letter file: for tests and library users.
    pub fn skip() -> Self {
        Rejects {
            policy: OnError::Skip,
            dead_letter: None,
            count: AtomicU64::new(0),
        }
    }

    /// Handles one rejected record: counts it, warns, writes it to the
    /// dead-letter file. Under `--on-error stop` returns the error that
    /// ends the run.
    pub fn reject(&self, location: Location<'_>, raw: &[u8], reason: &str) -> Result<()> {
        let seen = self.count.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(dead_letter) = &self.dead_letter {
            dead_letter.write(location, raw, reason)?;
        }
        match self.policy {
            OnError::Stop => Err(Error::Rejected {
                location: location.to_string(),
                reason: reason.to_string(),
            }),
            OnError::Skip => {
                if seen <= MAX_WARNINGS {
                    tracing::warn!("rejected {location}: {reason}");
                } else if seen == MAX_WARNINGS + 1 {
                    tracing::warn!(
                        "more than {MAX_WARNINGS} records rejected; counting the rest without a warning each"
                    );
                }
                Ok(())
            }
        }
    }

    /// How many records were rejected so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Flushes the dead-letter file.
    pub fn finish(&self) -> Result<()> {
        match &self.dead_letter {
            Some(dead_letter) => dead_letter.flush(),
            None => Ok(()),
        }
    }
}

impl DeadLetter {
    /// One JSON line: `{"origin":{...},"reason":"...","raw":"..."}`, plus
    /// `raw_hex` with the exact bytes when they are not UTF-8.
    fn write(&self, location: Location<'_>, raw: &[u8], reason: &str) -> Result<()> {
        let mut line = Vec::with_capacity(raw.len() + reason.len() + 96);
        line.extend_from_slice(b"{\"origin\":");
        location.write_json(&mut line);
        line.extend_from_slice(b",\"reason\":");
        json::write_str(&mut line, reason.as_bytes());
        line.extend_from_slice(b",\"raw\":");
        json::write_lossy_str(&mut line, raw);
        if std::str::from_utf8(raw).is_err() {
            line.extend_from_slice(b",\"raw_hex\":\"");
            for byte in raw {
                line.extend_from_slice(format!("{byte:02x}").as_bytes());
            }
            line.push(b'"');
        }
        line.extend_from_slice(b"}\n");
        let mut file = self
            .file
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        file.write_all(&line).map_err(|source| self.error(source))
    }

    fn flush(&self) -> Result<()> {
        let mut file = self
            .file
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        file.flush().map_err(|source| self.error(source))
    }

    fn error(&self, source: std::io::Error) -> Error {
        Error::Output {
            path: self.path.clone(),
            source,
        }
    }
}
