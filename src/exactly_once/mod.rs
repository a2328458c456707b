//! `--exactly-once`: Kafka to Kafka, the output messages and the input
//! offsets committed in one Kafka transaction, so that a `read_committed`
//! reader of the output sees each input record's output exactly once,
//! whatever crashes.
//!
//! The parts:
//! - [`Link`] (`link`): what the Kafka source and the transactional sink
//!   share: the open transaction's input offsets, noted as its batches
//!   are delivered, and the consumer group ([`Group`]) the offsets are
//!   committed for;
//! - [`TransactionalSink`] (`sink`): wraps the Kafka sink, opens a
//!   transaction before the first batch and commits it every
//!   `--transaction-interval` and at the end of the input;
//! - `commit`: one transaction's end: the offsets, the commit, the abort.
//!
//! A transaction that cannot commit is aborted and the run fails: the
//! records it held are read again by the next run (or the partitions'
//! next owner) from the offsets of the last committed transaction. The run
//! never goes on past an aborted transaction, so nothing is skipped.

mod commit;
mod link;
mod sink;

pub use self::link::{
    transaction_timeout, Group, Link, NextOffset, MAX_TRANSACTION_TIMEOUT, MIN_TRANSACTION_TIMEOUT,
};
pub use self::sink::TransactionalSink;
