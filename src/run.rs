//! One command-line run: build the source and sink a [`RunConfig`] asks
//! for, run the pipeline, and say how it went (summary line, exit status).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::cli::help;
use crate::config::{Checkpointing, ConfigError, Output, RunConfig, SourceConfig};
use crate::error::Error;
use crate::exactly_once::TransactionalSink;
use crate::metrics::{MetricsListener, Probes};
use crate::pipeline::{Outcome, Pipeline, Rejects, Report, Stats};
use crate::progress::{self, Progress, Shape};
use crate::say;
use crate::sink::opening::{self, OpenError, OutputRequest};
use crate::sink::{DurableOutputs, KafkaSink, OutputFormat, Sink, WriterSink};
use crate::source::file::checkpoint::{lock_path, resolve, temporary_path, CheckpointStore};
use crate::source::file::OwnFiles;
use crate::source::kafka::PartitionTable;
use crate::source::tcp::TcpCounters;
use crate::source::{FileSource, KafkaSource, Source, TcpSource};

/// Every record was processed.
pub const EXIT_OK: u8 = 0;
/// The run failed.
pub const EXIT_FAILED: u8 = 1;
/// The command line is wrong (as clap's own usage errors).
pub const EXIT_USAGE: u8 = 2;
/// The run finished, but some records were rejected.
pub const EXIT_REJECTED: u8 = 3;

/// Reports a command line that cannot run ([`RunConfig::from_cli`]);
/// returns its exit status.
pub fn refuse(error: ConfigError) -> ExitCode {
    match error {
        ConfigError::Usage(message) => usage_error(message),
        ConfigError::Unusable(message) => {
            say!("streamer: error: {message}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// Runs what `config` asks for until its source ends or `shutdown` is
/// cancelled; returns the exit status, having printed the summary and any
/// error.
pub async fn run(config: RunConfig, shutdown: CancellationToken) -> ExitCode {
    let quiet = config.quiet;
    let filtering = (config.pipeline.process.as_ref()).is_some_and(|p| p.filter.is_some());
    let outcome = match execute(config, shutdown).await {
        Ok(outcome) => outcome,
        Err(error) => {
            if let Some(Refused(message)) = error.downcast_ref::<Refused>() {
                return usage_error(message.clone());
            }
            say!("streamer: error: {error:#}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let report = &outcome.report;
    crate::warn_limit::report_held_back();
    if !quiet {
        summary(report, filtering);
    }
    match outcome.error {
        None | Some(Error::BrokenPipe) if report.rejected > 0 => ExitCode::from(EXIT_REJECTED),
        None | Some(Error::BrokenPipe) => ExitCode::from(EXIT_OK),
        Some(error) => {
            say!("streamer: error: {:#}", anyhow::Error::from(error));
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// The end-of-run summary line; under `--log-format json` an object whose
/// "summary" holds the same figures.
fn summary(report: &Report, filtering: bool) {
    let seconds = report.elapsed.as_secs_f64();
    if crate::stderr::is_json() {
        crate::stderr::object(&serde_json::json!({
            "level": "INFO",
            "message": "summary",
            "summary": {
                "read": report.read,
                "written": report.written,
                "rejected": report.rejected,
                "unprocessed": report.unprocessed,
                "filtered": report.filtered,
                "seconds": (seconds * 1000.0).round() / 1000.0,
                "records_per_second": report.records_per_second().round(),
            }
        }));
        return;
    }
    // Said only when there are some: records the run read but dropped
    // unwritten as it stopped early (a rerun from saved positions reads
    // them again: they were never acknowledged).
    let unprocessed = match report.unprocessed {
        0 => String::new(),
        n => format!(" ({n} more read but not written: the run stopped early)"),
    };
    let filtered = match filtering {
        true => format!(", {} filtered out", report.filtered),
        false => String::new(),
    };
    say!(
        "streamer: {} records read, {} written, {} rejected{filtered}{unprocessed} in {seconds:.2} s ({:.0} records/s)",
        report.read,
        report.written,
        report.rejected,
        report.records_per_second()
    );
}

/// Builds the pipeline from the configuration and runs it. Outputs are
/// opened last, once the source and any Kafka output are known to work,
/// and emptied only when all opened ([`opening`]): a run that fails at
/// start destroys nothing.
async fn execute(config: RunConfig, shutdown: CancellationToken) -> anyhow::Result<Outcome> {
    let RunConfig {
        source,
        pipeline,
        sink,
        on_error,
        quiet,
        verbose: _,
        metrics,
        progress,
        log_format: _,
    } = config;
    let started = Instant::now();
    let metrics = match metrics {
        Some(addr) => Some(MetricsListener::bind(&addr).await?),
        None => None,
    };
    // What the metrics and the progress line read of the source itself.
    let mut watched = Watched::default();
    let mut listening = None;
    let mut inputs = Vec::new();
    let mut checkpointing = None;
    // --exactly-once: the source's link to the transactional sink.
    let mut transactions = None;
    let source: Box<dyn Source> = match source {
        SourceConfig::File {
            paths,
            options,
            checkpoint,
        } => {
            inputs.clone_from(&paths);
            let mut own = OwnFiles::default();
            if let Some(output) = sink.output.file() {
                own.add(output, "the -o file");
            }
            if let Some(dead_letter) = &sink.dead_letter {
                own.add(dead_letter, "the --dead-letter file");
            }
            if let Some(Checkpointing { path, .. }) = &checkpoint {
                own.add(path, "the --checkpoint file");
                let resolved = resolve(path);
                own.add(
                    &temporary_path(&resolved),
                    "the --checkpoint's temporary file",
                );
                own.add(&lock_path(&resolved), "the --checkpoint's lock file");
            }
            watched.kind = if paths.iter().all(|path| path == "-") {
                "stdin"
            } else {
                "file"
            };
            if progress {
                watched.shape = progress::file_shape(&paths, options.follow);
            }
            let mut source = FileSource::open(paths, options)?.never_read(own);
            if let Some(Checkpointing { path, interval }) = checkpoint {
                source = source.checkpoint_to(&path)?;
                checkpointing = Some((source.checkpoint_store(), interval));
            }
            watched.checkpoints = Some(source.checkpoint_store());
            Box::new(source)
        }
        SourceConfig::Tcp(options) => {
            let source = TcpSource::bind(options).await?;
            listening = Some(source.local_addr());
            watched.kind = "tcp";
            watched.tcp = Some(source.counters());
            Box::new(source)
        }
        SourceConfig::Kafka(options) => {
            transactions.clone_from(&options.exactly_once);
            let mut source = KafkaSource::new(options)?;
            watched.kind = "kafka";
            watched.kafka = Some(source.lag());
            // A missing topic is a start-up error, before any pipeline runs.
            if !source.connect(&shutdown).await? {
                return Ok(nothing_done(started));
            }
            Box::new(source)
        }
    };
    let kafka_sink = match &sink.output {
        Output::Kafka {
            config,
            topic,
            key,
            compression,
        } => {
            let config = match &transactions {
                Some(link) => link.producer_config(config),
                None => config.clone(),
            };
            let kafka_sink = KafkaSink::new(&config, topic, key.clone(), *compression)?;
            kafka_sink.check_topic().await?;
            let kafka_sink: Box<dyn Sink> = match transactions {
                Some(link) => Box::new(TransactionalSink::start(kafka_sink, link).await?),
                None => Box::new(kafka_sink),
            };
            Some(kafka_sink)
        }
        Output::Stdout | Output::File(_) => None,
    };
    let request = OutputRequest {
        inputs: &inputs,
        output: sink.output.file(),
        output_csv: sink.format == OutputFormat::Csv,
        dead_letter: sink.dead_letter.as_deref(),
        mode: sink.mode,
    };
    let files = match opening::open_outputs(request, &shutdown).await {
        Ok(files) => files,
        Err(OpenError::Stopped(message)) => {
            tracing::warn!("{message}");
            return Ok(nothing_done(started));
        }
        Err(OpenError::Refused(message)) => return Err(Refused(message).into()),
        Err(OpenError::Failed { flag: "-o", error }) => {
            return Err(anyhow::Error::from(error).context("cannot open the output"))
        }
        Err(OpenError::Failed { error, .. }) => return Err(error.into()),
    };
    // Only a checkpoint needs the outputs on disk before it: it is the one
    // promise that outlives the machine.
    let durable = match checkpointing {
        Some(_) => DurableOutputs::of(&files, matches!(sink.output, Output::Stdout))
            .context("cannot duplicate an output's handle for --checkpoint")?,
        None => DurableOutputs::default(),
    };
    let rejects = Arc::new(Rejects::with_file(
        on_error,
        files.dead_letter.map(|opened| (opened.path, opened.file)),
    ));
    let sink: Box<dyn Sink> = match (kafka_sink, files.output) {
        (Some(kafka_sink), _) => kafka_sink,
        (None, output) => {
            let writer = match output {
                Some(output) => WriterSink::from_opened(output, sink.format),
                None => WriterSink::stdout(sink.format)?,
            };
            match sink.select {
                // CSV output's columns, even when the first record lacks some.
                Some(select) => Box::new(writer.with_header(select)),
                None => Box::new(writer),
            }
        }
    };
    let pipeline = Pipeline::new(source, sink, pipeline).rejects(rejects.clone());
    let shape = watched.shape;
    let probes = watched.probes(pipeline.stats(), rejects);
    let metrics = match metrics {
        Some(listener) => Some(listener.serve(probes.clone())?),
        None => None,
    };
    // Said even without -v: it is how a script (or a test) that asked for
    // port 0 learns the port.
    if let (Some(server), false) = (&metrics, quiet) {
        say!(
            "streamer: metrics on http://{}/metrics",
            server.local_addr()
        );
    }
    if let (Some(addr), false) = (listening, quiet) {
        say!("streamer: listening on {addr}");
    }
    let durable = Arc::new(durable);
    let saver = checkpointing.as_ref().map(|(store, interval)| {
        tokio::spawn(save_every(store.clone(), durable.clone(), *interval))
    });
    let line = progress.then(|| Progress::start(shape, probes));
    let outcome = pipeline.run(shutdown).await;
    // Gone before anything else is said: the summary takes its place.
    if let Some(line) = line {
        line.clear();
    }
    drop(metrics);
    let (Some(saver), Some((store, _))) = (saver, checkpointing) else {
        return Ok(outcome);
    };
    saver.abort();
    // Every ack has fired now: the positions are final.
    tokio::task::spawn_blocking(move || store.save(|| durable.sync()))
        .await?
        .map_err(|error| {
            anyhow::Error::from(error).context("cannot write the --checkpoint file")
        })?;
    Ok(outcome)
}

/// The source's own figures, as far as its kind has them, for the
/// metrics and the progress line.
struct Watched {
    kind: &'static str,
    shape: Shape,
    tcp: Option<Arc<TcpCounters>>,
    kafka: Option<PartitionTable>,
    checkpoints: Option<Arc<CheckpointStore>>,
}

impl Default for Watched {
    fn default() -> Self {
        Watched {
            kind: "file",
            shape: Shape::Stream,
            tcp: None,
            kafka: None,
            checkpoints: None,
        }
    }
}

impl Watched {
    fn probes(self, stats: Arc<Stats>, rejects: Arc<Rejects>) -> Probes {
        Probes {
            tcp: self.tcp,
            kafka: self.kafka,
            checkpoints: self.checkpoints,
            ..Probes::new(self.kind, stats, rejects)
        }
    }
}

/// Writes the `--checkpoint` file every `interval` (when it changed),
/// the outputs it vouches for flushed to disk first; a failed write is
/// warned about and tried again next time.
async fn save_every(
    store: Arc<CheckpointStore>,
    durable: Arc<DurableOutputs>,
    interval: std::time::Duration,
) {
    loop {
        tokio::time::sleep(interval).await;
        let saving = store.clone();
        let durable = durable.clone();
        match tokio::task::spawn_blocking(move || saving.save(|| durable.sync())).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                crate::warn_limited!("cannot write the --checkpoint file: {error}")
            }
            Err(_) => return,
        }
    }
}

/// Outputs refused once opened (one file under two names, or an input):
/// a usage error, as those the names alone show.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// Prints `message` as clap prints a usage error (under `--log-format
/// json`, as one JSON line); returns its exit status.
fn usage_error(message: String) -> ExitCode {
    if crate::stderr::is_json() {
        say!("streamer: error: {message}");
    } else {
        let error = help::command().error(clap::error::ErrorKind::ArgumentConflict, message);
        let _ = error.print();
    }
    ExitCode::from(EXIT_USAGE)
}

/// The outcome of a run stopped (by a signal) before it began.
fn nothing_done(started: Instant) -> Outcome {
    Outcome {
        report: Report {
            elapsed: started.elapsed(),
            ..Report::default()
        },
        error: None,
    }
}
