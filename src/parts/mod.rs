//! What the parts of a pipeline are and share: the [`Source`] and [`Sink`]
//! traits with what each is given to run ([`SourceContext`],
//! [`SinkInput`]), the run's counters ([`Stats`]) and the handler of
//! rejected records ([`Rejects`]).
//!
//! Sources, sinks and the pipeline all import from here, and this module
//! imports only the data types ([`crate::record`], [`crate::ack`]), the
//! error type and leaf helpers: so no two of them import each other.

mod dead_letter;
mod reject;
mod sink;
mod source;

use std::sync::atomic::AtomicU64;

pub use self::reject::{OnError, Rejects};
pub use self::sink::{Sink, SinkInput, TryRecv, WrittenCounter};
pub use self::source::{or_meanwhile, Closed, RawSender, Source, SourceContext};

/// Counters shared by every part of a run.
#[derive(Debug, Default)]
pub struct Stats {
    /// Records the source took in: handed to the pipeline (whether or not
    /// it still took them), or rejected by the source itself.
    pub read: AtomicU64,
    /// Of those, lines that were no records at all (blank JSON lines),
    /// skipped by the decode stage.
    pub skipped: AtomicU64,
    /// Records the sink wrote out.
    pub written: AtomicU64,
    /// Records `--filter` dropped in the decode stage (handled, and
    /// acknowledged with their batch, but not written).
    pub filtered: AtomicU64,
}
