//! The pipeline: source → decode → your stages → sink, joined by bounded
//! channels of batches, with acknowledgements flowing back from the sink.
//!
//! ```text
//! source ─RawBatch─▶ decode ─Batch─▶ stage … ─Batch─▶ sink
//!    ▲                                                  │
//!    └──────────── acks fire once written ──────────────┘
//! ```
//!
//! Every channel is bounded (in batches, each batch bounded in records and
//! bytes), so a slow sink makes the source wait, and the source stops
//! reading the outside world. Each part ends when its input closes, so
//! ending the source drains everything downstream.

mod decode;
mod stage;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use self::stage::Stage;
/// The run's shared handlers; defined in [`crate::parts`], named here too
/// for library users.
pub use crate::parts::{OnError, Rejects, Stats};

use crate::codec::DecodeOptions;
use crate::error::{Error, Result};
use crate::parts::{RawSender, Sink, SinkInput, Source, SourceContext};
use crate::process::Processing;
use crate::record::{self, Batch, RawBatch};

/// Records each channel holds at most, by default (`--buffer-records`).
pub const DEFAULT_BUFFER_RECORDS: usize = 16 * 1024;
/// Records in one batch at most, by default (`--batch-records`).
pub const DEFAULT_BATCH_RECORDS: usize = 1024;

/// Sizes and options of one run.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Most records in one batch.
    pub batch_records: usize,
    /// A batch is sent once it holds this many bytes, whatever its count.
    pub batch_bytes: usize,
    /// Capacity of each channel, in batches.
    pub channel_batches: usize,
    /// Options of the decode stage (`--origin`).
    pub decode: DecodeOptions,
    /// Stop after this many records are decoded (`--limit`).
    pub limit: Option<u64>,
    /// `--filter`, `--rename`, `--select`, `--infer-types`, applied by
    /// the decode stage (`None`: none of them).
    pub process: Option<Arc<Processing>>,
}

impl PipelineConfig {
    /// A configuration that holds about `buffer_records` records in each
    /// channel, in batches of at most `batch_records`.
    pub fn with_buffer(buffer_records: usize, batch_records: usize) -> Self {
        let batch_records = batch_records.clamp(1, buffer_records.max(1));
        PipelineConfig {
            batch_records,
            batch_bytes: 256 * 1024,
            channel_batches: buffer_records.div_ceil(batch_records).max(1),
            decode: DecodeOptions::default(),
            limit: None,
            process: None,
        }
    }
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self::with_buffer(DEFAULT_BUFFER_RECORDS, DEFAULT_BATCH_RECORDS)
    }
}

/// What a finished run did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Report {
    /// Records read and handled: each was written, rejected or filtered
    /// out (`read = written + rejected + filtered`, always).
    pub read: u64,
    /// Records written by the sink.
    pub written: u64,
    /// Records rejected (bad input).
    pub rejected: u64,
    /// Records `--filter` dropped (acknowledged as if written).
    pub filtered: u64,
    /// Records the source read but the run dropped unhandled because it
    /// stopped early (`--limit`, `--on-error stop`, the output closed, a
    /// failure): neither written nor rejected, nor acknowledged.
    pub unprocessed: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl Report {
    /// The report of a finished run. Every part has ended, so a record
    /// taken in and neither written nor rejected is one the run dropped
    /// on its way (in a channel, or a batch a part never took): counting
    /// it this way misses none, whichever way it was dropped.
    fn count(stats: &Stats, rejected: u64, elapsed: Duration) -> Report {
        let taken_in = stats.read.load(Ordering::Relaxed) - stats.skipped.load(Ordering::Relaxed);
        let written = stats.written.load(Ordering::Relaxed);
        let filtered = stats.filtered.load(Ordering::Relaxed);
        let handled = written + rejected + filtered;
        Report {
            read: handled,
            written,
            rejected,
            filtered,
            unprocessed: taken_in.saturating_sub(handled),
            elapsed,
        }
    }

    /// Written records per second of wall time.
    pub fn records_per_second(&self) -> f64 {
        self.written as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The result of a run: its report, and the error that ended it, if any
/// (the report is true either way: records written before a failure were
/// written).
#[derive(Debug)]
pub struct Outcome {
    /// What was done.
    pub report: Report,
    /// Why the run ended early, if it did.
    pub error: Option<Error>,
}

/// A source, the stages after decoding, and a sink, ready to run.
pub struct Pipeline {
    source: Box<dyn Source>,
    stages: Vec<Box<dyn Stage>>,
    sink: Box<dyn Sink>,
    config: PipelineConfig,
    rejects: Arc<Rejects>,
    stats: Arc<Stats>,
}

impl Pipeline {
    /// A pipeline from `source` to `sink`, skipping bad records.
    pub fn new(source: Box<dyn Source>, sink: Box<dyn Sink>, config: PipelineConfig) -> Self {
        Pipeline {
            source,
            stages: Vec::new(),
            sink,
            config,
            rejects: Arc::new(Rejects::skip()),
            stats: Arc::default(),
        }
    }

    /// The run's live counters (records read and written so far).
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// Adds a processing stage after decoding (and after earlier stages).
    pub fn stage(mut self, stage: impl Stage) -> Self {
        self.stages.push(Box::new(stage));
        self
    }

    /// Sets how rejected records are handled.
    pub fn rejects(mut self, rejects: Arc<Rejects>) -> Self {
        self.rejects = rejects;
        self
    }

    /// Runs until the source ends (or `shutdown` is cancelled and the
    /// records already read are written), or until a part fails.
    pub async fn run(self, shutdown: CancellationToken) -> Outcome {
        let started = Instant::now();
        let Pipeline {
            source,
            stages,
            sink,
            config,
            rejects,
            stats,
        } = self;
        // Cancelled by the user's signal, or by any part that ends the run
        // early (limit reached, `--on-error stop`, the sink failing): only
        // sources watch it.
        let stop = shutdown.child_token();

        // Source → decode. The decode stage holds the receiver; once it is
        // gone, the source's sends fail and the source returns.
        let (raw_tx, raw_rx) = mpsc::channel::<RawBatch>(config.channel_batches);
        stats.channels.register("raw", &raw_tx);
        let context = SourceContext {
            out: RawSender::new(raw_tx, stats.clone()).with_signal(shutdown.clone()),
            shutdown: stop.clone(),
            rejects: rejects.clone(),
            batch_records: config.batch_records,
            batch_bytes: config.batch_bytes.min(record::MAX_BATCH_BYTES),
        };
        let source_task = spawn_part("the source", stop.clone(), source.run(context));

        // Decode → first stage (or sink). Closing it (the decode stage
        // ending) tells the next part that no more batches come.
        let (decoded_tx, mut next_rx) = mpsc::channel::<Batch>(config.channel_batches);
        stats.channels.register("decoded", &decoded_tx);
        let decode_task = spawn_part(
            "the decode stage",
            stop.clone(),
            decode::run(
                raw_rx,
                decoded_tx,
                config.clone(),
                rejects.clone(),
                stop.clone(),
                stats.clone(),
            ),
        );

        let mut stage_tasks = Vec::new();
        for (number, stage) in stages.into_iter().enumerate() {
            // Stage → next stage (or sink); closed when this stage ends.
            let (tx, rx) = mpsc::channel::<Batch>(config.channel_batches);
            stats
                .channels
                .register(&format!("stage_{}", number + 1), &tx);
            stage_tasks.push(spawn_part(
                "a stage",
                stop.clone(),
                stage::run(stage, next_rx, tx),
            ));
            next_rx = rx;
        }

        let input = SinkInput::new(next_rx, stats.clone(), rejects.clone());
        let sink_result = spawn_part("the sink", stop.clone(), sink.run(input)).await;
        // The sink is done: nothing more can be written, so make sure the
        // source stops too (it may be waiting for input, not sending).
        stop.cancel();
        let decode_result = decode_task.await;
        let mut stage_result = Ok(());
        for task in stage_tasks {
            stage_result = stage_result.and(task.await);
        }
        let source_result = source_task.await;
        // The dead-letter lines rejected last (by the sink, say), off the workers.
        let finish_result = rejects.write_out().await;

        let error = [
            sink_result,
            decode_result,
            stage_result,
            source_result,
            finish_result,
        ]
        .into_iter()
        .find_map(|result| result.err());
        Outcome {
            report: Report::count(&stats, rejects.count(), started.elapsed()),
            error,
        }
    }
}

/// Runs one part of the pipeline as its own task; if it fails, the whole
/// run is told to stop. `name` says which part it is, should it panic.
fn spawn_part(
    name: &'static str,
    stop: CancellationToken,
    part: impl std::future::Future<Output = Result<()>> + Send + 'static,
) -> impl std::future::Future<Output = Result<()>> {
    let task = tokio::spawn(async move {
        let result = part.await;
        if result.is_err() {
            stop.cancel();
        }
        result
    });
    async move {
        match task.await {
            Ok(result) => result,
            Err(join_error) => Err(Error::panicked(name, join_error)),
        }
    }
}
