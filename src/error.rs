//! The library's error type: one variant per way a run can fail. An
//! underlying cause is kept as `source()`, not repeated in the message, so
//! printing the chain (`{:#}` of an `anyhow::Error`) shows it once.

use std::path::PathBuf;

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
    /// A Kafka client operation failed.
    #[error("kafka: {0}")]
    Kafka(String),
    /// The output's reader went away (`streamer ... | head`): not a failure
    /// for the user, but the run cannot go on.
    #[error("output closed by its reader")]
    BrokenPipe,
    /// A part of the pipeline (a source, a stage, a sink) panicked; the run
    /// stops rather than end as if its input were done.
    #[error("a pipeline task panicked: {0}")]
    Panicked(String),
    /// A flag combination or value that cannot work.
    #[error("{0}")]
    Config(String),
}

/// Shorthand for results carrying [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
