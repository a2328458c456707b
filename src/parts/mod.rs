//! What the parts of a pipeline are and share: the [`Source`] and [`Sink`]
//! traits with what each is given to run ([`SourceContext`],
//! [`SinkInput`]), the run's counters ([`Stats`]) and the handler of
//! rejected records ([`Rejects`]).
//!
//! Sources, sinks and the pipeline all import from here, and this module
//! imports only the data types ([`crate::record`], [`crate::ack`]), the
//! error type and leaf helpers: so no two of them import each other.

mod dead_letter;
mod reason;
mod reject;
mod sink;
mod source;
mod stats;
pub mod whole_writes;

pub use self::reject::{OnError, Rejects};
pub use self::sink::{HeldWritten, Sink, SinkInput, TryRecv, WrittenCounter};
pub use self::source::{or_meanwhile, Closed, RawSender, Source, SourceContext};
pub use self::stats::{ChannelFill, Channels, Latency, Stats};
