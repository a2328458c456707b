//! Sources: the only code that reads the outside world. Each turns bytes
//! into [`RawBatch`](crate::record::RawBatch)es and sends them into the pipeline, waiting whenever
//! the pipeline is full (that wait is the backpressure).

mod bom;
pub mod file;
mod input;
pub mod kafka;
mod shrink;
pub mod tcp;

pub use self::file::{Decompress, FileOptions, FileSource};
pub use self::input::InputReader;
pub use self::kafka::{
    parse_from, parse_timestamp, KafkaOptions, KafkaSource, OffsetReset, StartAt, StatsLine,
};
pub use self::tcp::{check_tcp_budget, TcpOptions, TcpSource};

/// What a source is and is given; defined in [`crate::parts`], named here
/// too for library users.
pub use crate::parts::{Closed, RawSender, Source, SourceContext};
