//! The library's error type: one variant per way a run can fail. An
//! underlying cause is kept as `source()`, not repeated in the message, so
//! printing the chain (`{:#}` of an `anyhow::Error`) shows it once.

use std::any::Any;
use std::path::PathBuf;

use tokio::task::JoinError;

/// Why a run (or one of its parts) failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An input file could not be opened or read.
    #[error("cannot read {}", path.display())]
    Open {
        /// The path as the user gave it.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// An input path names a directory.
    #[error("cannot read {}: is a directory", path.display())]
    IsDirectory {
        /// The path as the user gave it.
        path: PathBuf,
    },
    /// An output file could not be created or written.
    #[error("cannot write {}", path.display())]
    Output {
        /// The output path (`-` for stdout).
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A listening socket could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address as the user gave it.
        addr: String,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A record was rejected and the policy is `--on-error stop`.
    #[error("{location}: {reason}")]
    Rejected {
        /// Where the record came from (`path:line`, peer, topic/partition@offset).
        location: String,
        /// Why it was rejected.
        reason: String,
    },
    /// Reading an input failed mid-way.
    #[error("cannot read {location}")]
    Read {
        /// Where the read failed.
        location: String,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A compressed input's stream is corrupt or cut short; the message
    /// names the file, the codec and the byte of the file where decoding
    /// stopped.
    #[error("{0}")]
    Corrupt(String),
    /// A Kafka client operation failed.
    #[error("kafka: {0}")]
    Kafka(String),
    /// The output's reader went away (`streamer ... | head`): not a failure
    /// for the user, but the run cannot go on.
    #[error("output closed by its reader")]
    BrokenPipe,
    /// A task of the run (a part of the pipeline, a connection, a write on
    /// the blocking pool) panicked: a bug. The run stops rather than end as
    /// if its input were done. Made by [`Error::panicked`].
    #[error("a pipeline task panicked: {what}")]
    Panicked {
        /// Which task, and the panic's message when it has one.
        what: String,
    },
    /// A flag combination or value that cannot work.
    #[error("{0}")]
    Config(String),
}

impl Error {
    /// The error of `task` (say "the sink"), a task that ended without
    /// returning: it panicked, or was cancelled as the runtime shut down.
    /// Every `JoinError` of the crate becomes an error through here.
    pub fn panicked(task: &str, join_error: JoinError) -> Error {
        let what = match join_error.try_into_panic() {
            Ok(payload) => match panic_message(payload.as_ref()) {
                Some(message) => format!("{task}: {message}"),
                None => task.to_string(),
            },
            Err(cancelled) => format!("{task}: {cancelled}"),
        };
        Error::Panicked { what }
    }
}

/// The message a panic was raised with, when it is text (as from
/// `panic!` and `expect`).
fn panic_message(payload: &(dyn Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
}

/// Shorthand for results carrying [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicked_task_is_named_with_its_message() {
        let joined = tokio::spawn(async { panic!("bad {}", 7) }).await;
        let error = Error::panicked("the sink", joined.unwrap_err());
        assert_eq!(
            error.to_string(),
            "a pipeline task panicked: the sink: bad 7"
        );
        let joined = tokio::task::spawn_blocking(|| std::panic::panic_any(7u8)).await;
        let error = Error::panicked("the dead-letter write", joined.unwrap_err());
        assert_eq!(
            error.to_string(),
            "a pipeline task panicked: the dead-letter write"
        );
        let pending = tokio::spawn(std::future::pending::<()>());
        pending.abort();
        let error = Error::panicked("a connection", pending.await.unwrap_err());
        assert!(error.to_string().ends_with("cancelled"), "{error}");
    }
}
