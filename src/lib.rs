//! `streamer`: listen to a stream — a file, a TCP socket, a Kafka topic —
//! and turn every record in it into a JSON object, fast, with flat memory
//! and without losing a record.
//!
//! Module map:
//! - [`record`]: what flows through the pipeline ([`record::RawBatch`] from
//!   sources, [`record::Batch`] of JSON objects after decoding) and where
//!   each record came from ([`record::SourceInfo`]).
//! - [`ack`]: acknowledgements that travel with a batch and fire once the
//!   sink has written it (offset commits, file checkpoints).
//! - [`source`]: the file source, the TCP
//!   source ([`source::tcp`]) and the Kafka source ([`source::kafka`]); the
//!   only code that reads the outside world.
//! - [`codec`]: bytes to records: CSV, JSON lines, plain lines; cutting a
//!   stream into frames ([`codec::framing`]), a CSV stream into records
//!   ([`codec::csv_records`]) and a framed CSV row into cells
//!   ([`codec::csv_row`]).
//! - [`parts`]: what the parts of a pipeline are and share: the
//!   [`parts::Source`] and [`parts::Sink`] traits and what each is given,
//!   the run's counters and the handler of rejected records.
//! - [`pipeline`]: [`pipeline::Pipeline`] wires source → decode → stages → sink
//!   with bounded channels, and returns a [`pipeline::Report`].
//! - [`process`]: the processing flags (`--filter`, `--rename`,
//!   `--select`, `--infer-types`), applied by the decode stage.
//! - [`sink`]: stdout and file sinks (NDJSON or CSV), and the Kafka sink;
//!   [`sink::files`] checks output files against the inputs and opens them.
//! - [`kafka`]: what the Kafka source and sink share: `--brokers`/`-X`
//!   client settings and defaults, librdkafka logs and errors, and the
//!   start-up check of brokers and topics.
//! - [`exactly_once`]: `--exactly-once`, Kafka to Kafka with the output
//!   and the input offsets committed in one Kafka transaction.
//! - [`json`]: the hand-written JSON encoding used on the hot path.
//! - [`scan`]: 16-bytes-a-step byte scans of the hot path (CSV line ends
//!   and delimiters, JSON-plain text).
//! - [`cpu`]: long CPU work on input a client controls runs beside the
//!   runtime's workers.
//! - [`open_files`]: the open-file limit raised to the hard one at start.
//! - [`warn_limit`]: warnings the outside world can trigger at will,
//!   printed at most once a second per call site.
//! - [`error`]: the library's error type.
//! - [`stderr`]: lines on standard error that never fail the run ([`say!`]).
//! - [`cli`]: the command-line flags, as typed.
//! - [`config`]: the flags checked and turned into a [`config::RunConfig`].
//! - [`run`]: one command-line run: build, run, summary, exit status.
//! - [`metrics`]: `--metrics ADDR`, the run's figures as Prometheus text,
//!   read from [`metrics::Probes`].
//! - [`progress`]: the live progress line on a terminal.

pub mod ack;
pub mod cli;
pub mod codec;
pub mod config;
pub mod cpu;
pub mod error;
pub mod exactly_once;
pub mod json;
pub mod kafka;
pub mod metrics;
#[cfg(test)]
mod module_graph;
pub mod open_files;
pub mod parts;
pub mod pipeline;
pub mod process;
pub mod progress;
pub mod record;
pub mod run;
pub mod scan;
pub mod sink;
pub mod source;
pub mod stderr;
pub mod warn_limit;

pub use error::Error;
