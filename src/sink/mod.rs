//! Sinks: where records end. A sink writes each batch, then fires the
//! batch's acks, so upstream checkpoints and commits follow the output.
//! [`files`] checks output files before the run; [`opening`] opens them
//! once it is known to start ([`torn`] mends a torn last line).

mod csv_out;
mod durable;
pub mod files;
mod gone;
mod kafka;
pub mod opening;
mod torn;
mod writer;

pub use self::durable::DurableOutputs;
pub use self::files::{OutputPlan, WriteMode};
pub use self::kafka::{Compression, KafkaSink, Transactions};
pub use self::writer::{OutputFormat, WriterSink};

/// What a sink is and is given; defined in [`crate::parts`], named here
/// too for library users.
pub use crate::parts::{Sink, SinkInput, TryRecv, WrittenCounter};
