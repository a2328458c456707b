//! One run's configuration, checked. The flags ([`Cli`], the low-level
//! arguments) become a [`RunConfig`] through one fallible step,
//! [`RunConfig::from_cli`], which holds every check that spans flags or
//! needs the files they name (but no broker): a run that cannot work is
//! refused before anything is opened or emptied.
//!
//! Defaults are the flags' (clap's, some taken from the library's
//! constants and `Default`s); none is restated here.

mod combinations;
mod security;
mod tcp;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::cli::{Cli, Command, GlobalArgs, LogFormat};
use crate::codec::DecodeOptions;
use crate::exactly_once::{transaction_timeout, Link, MIN_TRANSACTION_TIMEOUT};
use crate::kafka::{check_topic_name, KafkaConfig};
use crate::pipeline::{OnError, PipelineConfig};
use crate::process::Processing;
use crate::sink::files::identity;
use crate::sink::{Compression, OutputFormat, OutputPlan, WriteMode};
use crate::source::file::checkpoint;
use crate::source::{check_tcp_budget, FileOptions, KafkaOptions, StartAt, StatsLine, TcpOptions};

/// Everything one command-line run needs, checked.
#[derive(Debug)]
pub struct RunConfig {
    /// Where the records come from, and how they are read.
    pub source: SourceConfig,
    /// The pipeline's sizes, `--limit` and `--origin`.
    pub pipeline: PipelineConfig,
    /// Where the records, and the rejected ones, are written.
    pub sink: SinkConfig,
    /// What a bad record does to the run (`--on-error`).
    pub on_error: OnError,
    /// No summary line, and only errors in the log (`-q`).
    pub quiet: bool,
    /// More log output: one level per `-v`.
    pub verbose: u8,
    /// `--metrics`: where to serve the metrics.
    pub metrics: Option<String>,
    /// Show the live progress line: stderr is a terminal, and neither
    /// `-q` nor `--no-progress`.
    pub progress: bool,
    /// How stderr lines are written (`--log-format`).
    pub log_format: LogFormat,
}

/// The source of a run.
#[derive(Debug)]
pub enum SourceConfig {
    /// `streamer file`.
    File {
        /// The files, in order; `-` is standard input.
        paths: Vec<String>,
        /// How they are read.
        options: FileOptions,
        /// `--checkpoint`: where the positions delivered are saved.
        checkpoint: Option<Checkpointing>,
    },
    /// `streamer tcp`.
    Tcp(TcpOptions),
    /// `streamer kafka`.
    Kafka(KafkaOptions),
}

impl SourceConfig {
    /// The input files, which no output may be.
    pub fn inputs(&self) -> &[String] {
        match self {
            SourceConfig::File { paths, .. } => paths,
            SourceConfig::Tcp(_) | SourceConfig::Kafka(_) => &[],
        }
    }

    /// When the source resumes from positions an earlier run saved (a
    /// Kafka group's offsets, a `--checkpoint` file that holds some), what
    /// they are, for [`OutputPlan::check`]'s message.
    fn resumes_from(&self) -> Option<String> {
        match self {
            SourceConfig::Kafka(options) => Some(format!(
                "the offsets its consumer group `{}` committed",
                options.group
            )),
            SourceConfig::File {
                checkpoint: Some(checkpoint),
                ..
            } if std::fs::metadata(&checkpoint.path).is_ok_and(|m| m.len() > 0) => Some(format!(
                "the positions saved in --checkpoint {}",
                checkpoint.path.display()
            )),
            SourceConfig::File { .. } | SourceConfig::Tcp(_) => None,
        }
    }
}

/// `--checkpoint PATH` and `--checkpoint-interval`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpointing {
    /// The checkpoint file.
    pub path: PathBuf,
    /// How often it is written (and once at the end).
    pub interval: Duration,
}

/// Where a run writes, and how.
#[derive(Debug)]
pub struct SinkConfig {
    /// Where the records go (`-o`).
    pub output: Output,
    /// How they are written (`--output-format`; never CSV to Kafka).
    pub format: OutputFormat,
    /// How the `-o` and `--dead-letter` files are opened (`--append`).
    pub mode: WriteMode,
    /// Where rejected records go too (`--dead-letter`), a file.
    pub dead_letter: Option<PathBuf>,
    /// `--select`'s names: CSV output's columns.
    pub select: Option<Vec<String>>,
}

/// Where the records go (`-o`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Standard output (`-o -`, the default).
    Stdout,
    /// A file (`-o PATH`).
    File(PathBuf),
    /// A Kafka topic (`-o kafka://TOPIC`).
    Kafka {
        /// Brokers and librdkafka settings (`--brokers`, `-X`).
        config: KafkaConfig,
        /// The topic, its name checked.
        topic: String,
        /// The record field that is each message's key (`--key`).
        key: Option<String>,
        /// The codec of the produced batches (`--compression`).
        compression: Option<Compression>,
    },
}

impl Output {
    /// The file `-o` names, if it names one.
    pub fn file(&self) -> Option<&Path> {
        match self {
            Output::File(path) => Some(path),
            Output::Stdout | Output::Kafka { .. } => None,
        }
    }
}

/// Why a command line cannot run.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A bad command line: reported as clap reports its own errors (exit 2).
    #[error("{0}")]
    Usage(String),
    /// Flags that cannot work together, reported as a failed run (exit 1),
    /// as they were when the source or the sink found them.
    #[error("{0}")]
    Unusable(String),
}

impl RunConfig {
    /// Checks the flags and turns them into the run's configuration. The
    /// usage errors come first, in the order the flags were always
    /// checked in.
    pub fn from_cli(mut cli: Cli) -> Result<RunConfig, ConfigError> {
        combinations::check(&cli).map_err(ConfigError::Usage)?;
        // --exactly-once: a bad record stops the run (`skip` is refused).
        if cli.global.exactly_once {
            cli.global.on_error = OnError::Stop;
        }
        // The TLS and SASL flags become librdkafka settings ahead of `-X`,
        // which still overrides them. Without a Kafka client they can only
        // come from the environment (typed, they are refused above), which
        // a deployment sets for every run: not read, not checked.
        if combinations::kafka_client(&cli) {
            let password = std::env::var(security::PASSWORD_VARIABLE).ok();
            let security = security::kafka_security(&cli.global.security, password)?;
            cli.global
                .kafka_settings
                .splice(0..0, security.properties());
        }
        let processing = processing(&cli.global);
        let mut config = RunConfig::unchecked(cli)?;
        config.check_flags().map_err(ConfigError::Usage)?;
        let processing = processing.map_err(ConfigError::Usage)?;
        config.pipeline.process = processing.is_active().then(|| Arc::new(processing));
        // Before any output is opened (emptied) for writing.
        config.output_plan().check().map_err(ConfigError::Usage)?;
        config.check_loop().map_err(ConfigError::Usage)?;
        config.check_clients().map_err(ConfigError::Unusable)?;
        Ok(config)
    }

    /// The flags as they are, not yet checked; refused when the
    /// subcommand runs no pipeline (`completions`, `man`).
    fn unchecked(cli: Cli) -> Result<RunConfig, ConfigError> {
        let Cli {
            global, command, ..
        } = cli;
        let progress = progress_line(&global);
        Ok(RunConfig {
            source: source_config(command, &global)?,
            pipeline: pipeline_config(&global),
            sink: SinkConfig {
                output: output(&global),
                format: global.output_format,
                mode: if global.append {
                    WriteMode::Append
                } else {
                    WriteMode::Truncate
                },
                dead_letter: global.dead_letter,
                select: global.select,
            },
            on_error: global.on_error,
            quiet: global.quiet,
            verbose: global.verbose,
            metrics: global.metrics,
            progress,
            log_format: global.log_format,
        })
    }

    /// Checks that span several flags or a flag's meaning: a `kafka://`
    /// output's topic name, a frame limit that fits the buffer budget,
    /// `--append` with a file to add to.
    fn check_flags(&self) -> Result<(), String> {
        if let Some(addr) = &self.metrics {
            check_metrics_addr(addr)?;
        }
        if let Output::Kafka { topic, .. } = &self.sink.output {
            check_topic_name(topic).map_err(|reason| format!("-o kafka://{topic}: {reason}"))?;
        }
        if let SourceConfig::Tcp(options) = &self.source {
            check_tcp_budget(options.max_buffered_bytes, options.max_frame_bytes)?;
        }
        if let SourceConfig::File {
            paths,
            options,
            checkpoint,
        } = &self.source
        {
            check_following(paths, options, checkpoint.as_ref(), &self.sink)?;
        }
        // Silently ignored, -a would let `>> out.csv` add a second header.
        let appends_to_a_file =
            self.sink.output.file().is_some() || self.sink.dead_letter.is_some();
        if self.sink.mode == WriteMode::Append && !appends_to_a_file {
            return Err(
                "--append (-a) applies to an -o FILE or --dead-letter FILE, and neither \
                        is given: to add to a file on standard output, use the shell's >>, \
                        or give the file with -o FILE -a"
                    .to_string(),
            );
        }
        Ok(())
    }

    /// What the run reads and writes, for the checks done before any
    /// output is opened ([`OutputPlan::check`]).
    fn output_plan(&self) -> OutputPlan<'_> {
        OutputPlan {
            inputs: self.source.inputs(),
            output: self.sink.output.file(),
            dead_letter: self.sink.dead_letter.as_deref(),
            mode: self.sink.mode,
            resumes_from: self.source.resumes_from(),
        }
    }

    /// The Kafka clients' checks that need no broker.
    fn check_clients(&self) -> Result<(), String> {
        if let SourceConfig::Kafka(options) = &self.source {
            options.validate().map_err(|error| error.to_string())?;
        }
        Ok(())
    }

    /// A Kafka output that is also an input: a refusal like the other
    /// combinations (exit 2).
    fn check_loop(&self) -> Result<(), String> {
        if let (SourceConfig::Kafka(options), Output::Kafka { topic, .. }) =
            (&self.source, &self.sink.output)
        {
            // Both clients take the same --brokers and -X. A `^pattern`
            // subscribes to every topic it matches (librdkafka's regex;
            // one that does not compile is librdkafka's to refuse).
            let read = |input: &String| match input.strip_prefix('^') {
                Some(_) => regex::Regex::new(input).is_ok_and(|pattern| pattern.is_match(topic)),
                None => input == topic,
            };
            if let Some(input) = options.topics.iter().find(|input| read(input)) {
                let how = if input == topic {
                    String::new()
                } else {
                    format!(" (-t {input} matches it)")
                };
                return Err(format!(
                    "-o kafka://{topic} is a topic being read{how}: every record written \
                     would be read again, forever"
                ));
            }
        }
        Ok(())
    }
}

/// `--follow` and `--checkpoint`: a poll interval that is not 0, and a
/// checkpoint in a folder it can be written to, none of whose files (it,
/// its temporary file, its lock) is an input, the output or the
/// dead-letter file, however spelled, whether or not they exist yet.
fn check_following(
    paths: &[String],
    options: &FileOptions,
    checkpoint: Option<&Checkpointing>,
    sink: &SinkConfig,
) -> Result<(), String> {
    if options.follow && options.poll_interval.is_zero() {
        return Err("--poll-interval must be more than 0".into());
    }
    let Some(checkpoint) = checkpoint else {
        return Ok(());
    };
    if checkpoint.interval.is_zero() {
        return Err("--checkpoint-interval must be more than 0".into());
    }
    let path = checkpoint.path.as_path();
    if path == Path::new("-") {
        return Err("--checkpoint needs a file (`-` is refused)".into());
    }
    check_writable_folder(path)?;
    let resolved = checkpoint::resolve(path);
    // A link's target may be in another folder, which must exist too.
    if resolved != path {
        check_writable_folder(&resolved)?;
    }
    checkpoint::check_files(path)?;
    let others = paths
        .iter()
        .filter(|input| input.as_str() != "-")
        .map(|input| (Path::new(input.as_str()), "an input"))
        .chain(sink.output.file().map(|output| (output, "the -o file")))
        .chain(
            sink.dead_letter
                .as_deref()
                .map(|dead| (dead, "the --dead-letter file")),
        );
    let temporary = checkpoint::temporary_path(&resolved);
    let lock = checkpoint::lock_path(&resolved);
    for (other, what) in others {
        let shown = other.display();
        // Through a link, even one whose target does not exist yet.
        if same_file(path, other) || same_file(&resolved, other) {
            return Err(format!(
                "--checkpoint {} is {what} ({shown}): it would be overwritten: give \
                 --checkpoint another path",
                path.display()
            ));
        }
        for (companion, role) in [(&temporary, "temporary file"), (&lock, "lock file")] {
            if same_file(companion, other) {
                return Err(format!(
                    "--checkpoint {}: its {role} {} is {what} ({shown}): it would be \
                     overwritten: give --checkpoint another path",
                    path.display(),
                    companion.display()
                ));
            }
        }
    }
    Ok(())
}

/// The checkpoint's folder exists and can be written to: found now, not
/// once the run's output is written.
fn check_writable_folder(path: &Path) -> Result<(), String> {
    use std::os::unix::ffi::OsStrExt;
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let unusable = |why: &str| {
        Err(format!(
            "--checkpoint {}: {why} {}",
            path.display(),
            folder.display()
        ))
    };
    if !folder.is_dir() {
        return unusable("no such folder:");
    }
    let Ok(name) = std::ffi::CString::new(folder.as_os_str().as_bytes()) else {
        return unusable("cannot use the folder");
    };
    // SAFETY: access(2) reads the NUL-terminated name and nothing else.
    if unsafe { libc::access(name.as_ptr(), libc::W_OK) } != 0 {
        return unusable("cannot write in the folder");
    }
    Ok(())
}

/// Whether `a` and `b` name one file: the same name, or the same file as
/// the outputs are compared ([`identity`]: device and inode, or the
/// canonical folder and name of one not there yet).
fn same_file(a: &Path, b: &Path) -> bool {
    a == b || identity(a).is_some_and(|a| identity(b).is_some_and(|b| a == b))
}

/// The topic of a `-o kafka://TOPIC` output.
fn kafka_topic(output: &str) -> Option<&str> {
    output.strip_prefix("kafka://")
}

/// `-o` as given (`-` is stdout), with `--key` for a Kafka topic.
fn output(global: &GlobalArgs) -> Output {
    match (global.output.as_str(), kafka_topic(&global.output)) {
        (_, Some(topic)) => Output::Kafka {
            config: kafka_config(global),
            topic: topic.to_string(),
            key: global.key.clone(),
            compression: global.compression,
        },
        ("-", None) => Output::Stdout,
        (path, None) => Output::File(PathBuf::from(path)),
    }
}

/// The live progress line: only for a person (stderr a terminal), and
/// neither `-q` nor `--no-progress`.
/// `--metrics HOST:PORT`: its shape, before anything starts (whether the
/// host resolves and the port is free is found when it is bound).
fn check_metrics_addr(addr: &str) -> Result<(), String> {
    let shape = "give HOST:PORT, as 127.0.0.1:9898, [::1]:9898 or localhost:0";
    let Some((host, port)) = addr.rsplit_once(':') else {
        return Err(format!("--metrics {addr:?}: no port: {shape}"));
    };
    if host.is_empty() || host.contains('/') {
        return Err(format!("--metrics {addr:?}: no host: {shape}"));
    }
    if port.parse::<u16>().is_err() {
        return Err(format!(
            "--metrics {addr:?}: `{port}` is not a port (0 to 65535): {shape}"
        ));
    }
    Ok(())
}

fn progress_line(global: &GlobalArgs) -> bool {
    use std::io::IsTerminal;
    // JSON lines are for a program, which a redrawn line would only garble.
    std::io::stderr().is_terminal()
        && !global.quiet
        && !global.no_progress
        && global.log_format == LogFormat::Text
}

/// The Kafka source's stats line: every `every` (0: never), with `-v` as
/// a log line, or printed when stderr is a terminal without the progress
/// line (which shows the rate and lag itself); never with `-q`.
fn stats_line(global: &GlobalArgs, every: Duration) -> Option<StatsLine> {
    use std::io::IsTerminal;
    let wanted = global.verbose > 0 || (std::io::stderr().is_terminal() && !progress_line(global));
    (wanted && !global.quiet && !every.is_zero()).then_some(StatsLine {
        every,
        as_log: global.verbose > 0,
    })
}

/// The Kafka clients' brokers and settings.
fn kafka_config(global: &GlobalArgs) -> KafkaConfig {
    KafkaConfig {
        brokers: global.brokers.clone(),
        settings: global.kafka_settings.clone(),
    }
}

/// `--filter`, `--rename`, `--select`, `--infer-types`, checked (a bad
/// expression is refused here, before anything is read).
fn processing(global: &GlobalArgs) -> Result<Processing, String> {
    Processing::new(
        global.filter.as_deref(),
        &global.rename,
        global.select.as_deref(),
        global.infer_types,
    )
}

/// The pipeline's sizes and options.
fn pipeline_config(global: &GlobalArgs) -> PipelineConfig {
    let mut config = PipelineConfig::with_buffer(
        global.buffer_records as usize,
        global.batch_records as usize,
    );
    config.decode = DecodeOptions {
        origin: global.origin,
    };
    config.limit = global.limit;
    config
}

/// The subcommand's source and its options.
fn source_config(command: Command, global: &GlobalArgs) -> Result<SourceConfig, ConfigError> {
    Ok(match command {
        Command::File(args) => SourceConfig::File {
            options: FileOptions {
                format: args.format,
                delimiter: args.csv.delimiter,
                header: !args.csv.no_header,
                max_record_bytes: args.max_record_bytes,
                csv_workers: args
                    .csv_workers
                    .map_or(FileOptions::default().csv_workers, |workers| {
                        workers as usize
                    }),
                follow: args.follow,
                poll_interval: args.poll_interval,
                max_open_files: args.max_open_files as usize,
                decompress: args.decompress,
            },
            checkpoint: args.checkpoint.map(|path| Checkpointing {
                path,
                interval: args.checkpoint_interval,
            }),
            paths: args.paths,
        },
        Command::Tcp(args) => SourceConfig::Tcp(tcp::options(args)?),
        Command::Kafka(args) => SourceConfig::Kafka(KafkaOptions {
            // --exactly-once: before `group` and `instance_id` move.
            exactly_once: global.exactly_once.then(|| {
                // The last -X transactional.id is the one librdkafka uses.
                let explicit = global
                    .kafka_settings
                    .iter()
                    .rev()
                    .find(|(key, _)| key == "transactional.id")
                    .map(|(_, id)| id.as_str());
                let interval = global.transaction_interval;
                Link::new(
                    &args.group,
                    args.instance_id.as_deref(),
                    explicit,
                    interval,
                    // Not a number: librdkafka refuses it when the producer
                    // is made; the least timeout stands in till then.
                    transaction_timeout(interval, &global.kafka_settings)
                        .unwrap_or(MIN_TRANSACTION_TIMEOUT),
                )
            }),
            config: kafka_config(global),
            topics: args.topics,
            group: args.group,
            offset_reset: args.offset_reset,
            until_end: args.until_end,
            format: args.format,
            delimiter: args.csv.delimiter,
            header: !args.csv.no_header,
            origin: global.origin,
            instance_id: args.instance_id,
            start: StartAt {
                offsets: args.from,
                timestamp: args.from_timestamp,
            },
            keep_tombstones: args.keep_tombstones,
            stats: stats_line(global, args.stats_interval),
        }),
        Command::Tool(tool) => {
            return Err(ConfigError::Usage(format!(
                "`streamer {}` prints, and runs no pipeline",
                tool.name()
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::codec::{Format, Framing};
    use crate::source::OffsetReset;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        crate::cli::parse_args(std::iter::once("streamer").chain(args.iter().copied()))
    }

    fn config(args: &[&str]) -> RunConfig {
        RunConfig::from_cli(parse(args).unwrap()).unwrap()
    }

    fn file_options(args: &[&str]) -> FileOptions {
        match config(args).source {
            SourceConfig::File { options, .. } => options,
            other => panic!("not `file`: {other:?}"),
        }
    }

    fn tcp_options(args: &[&str]) -> TcpOptions {
        match config(&[&["tcp"], args].concat()).source {
            SourceConfig::Tcp(options) => options,
            other => panic!("not `tcp`: {other:?}"),
        }
    }

    fn kafka_options(args: &[&str]) -> KafkaOptions {
        match config(args).source {
            SourceConfig::Kafka(options) => options,
            other => panic!("not `kafka`: {other:?}"),
        }
    }

    #[test]
    fn a_checkpoint_is_no_input_or_output_and_intervals_are_not_zero() {
        let refused = |args: &[&str]| RunConfig::from_cli(parse(args).unwrap()).unwrap_err();
        assert_eq!(
            refused(&["file", "a.log", "-o", "out", "--checkpoint", "out"]).to_string(),
            "--checkpoint out is the -o file (out): it would be overwritten: give \
             --checkpoint another path"
        );
        assert_eq!(
            refused(&["file", "a.log", "--checkpoint", "-"]).to_string(),
            "--checkpoint needs a file (`-` is refused)"
        );
        assert_eq!(
            refused(&["file", "-F", "a.log", "--poll-interval", "0"]).to_string(),
            "--poll-interval must be more than 0"
        );
        assert_eq!(
            refused(&[
                "file",
                "a.log",
                "--checkpoint",
                "c",
                "--checkpoint-interval",
                "0"
            ])
            .to_string(),
            "--checkpoint-interval must be more than 0"
        );
    }

    #[test]
    fn a_topic_is_not_written_into_itself() {
        let cli = parse(&["kafka", "-t", "orders", "-o", "kafka://orders"]).unwrap();
        let error = RunConfig::from_cli(cli).unwrap_err();
        assert!(
            error.to_string().contains("is a topic being read"),
            "{error}"
        );
        config(&["kafka", "-t", "orders", "-o", "kafka://copy"]);
        let cli = parse(&["kafka", "-t", "^ord.*$", "-o", "kafka://orders"]).unwrap();
        let error = RunConfig::from_cli(cli).unwrap_err();
        assert!(
            error.to_string().contains(
                "-o kafka://orders is a topic being read (-t ^ord.*$ matches it): every \
                 record written would be read again, forever"
            ),
            "{error}"
        );
        config(&["kafka", "-t", "^ord.*x$", "-o", "kafka://orders"]);
    }

    fn kafka_topic_and_key(args: &[&str]) -> Option<(String, Option<String>)> {
        match config(args).sink.output {
            Output::Kafka { topic, key, .. } => Some((topic, key)),
            _ => None,
        }
    }

    fn kafka_args(cli: &Cli) -> &crate::cli::KafkaArgs {
        match &cli.command {
            Command::Kafka(args) => args,
            other => panic!("not `kafka`: {other:?}"),
        }
    }

    /// The usage error `args` make.
    fn bad(args: &[&str]) -> String {
        match RunConfig::from_cli(parse(args).unwrap()) {
            Err(ConfigError::Usage(message)) => message,
            other => panic!("{args:?}: not a usage error: {other:?}"),
        }
    }

    /// The error `args` make, reported as a failed run.
    fn unusable(args: &[&str]) -> String {
        match RunConfig::from_cli(parse(args).unwrap()) {
            Err(ConfigError::Unusable(message)) => message,
            other => panic!("{args:?}: not an unusable configuration: {other:?}"),
        }
    }

    #[test]
    fn kafka_needs_a_topic_and_takes_several() {
        assert!(parse(&["kafka"]).is_err());
        let cli = parse(&["kafka", "--topic", "a", "-t", "^logs-.*"]).unwrap();
        let args = kafka_args(&cli);
        assert_eq!(args.topics, vec!["a", "^logs-.*"]);
        let options = kafka_options(&["kafka", "--topic", "a", "-t", "^logs-.*"]);
        assert_eq!(options.topics, vec!["a", "^logs-.*"]);
    }

    #[test]
    fn kafka_defaults() {
        let options = kafka_options(&["kafka", "-t", "a"]);
        assert_eq!(options.group, "streamer");
        assert_eq!(options.offset_reset, OffsetReset::Earliest);
        assert!(!options.until_end);
        assert_eq!(options.format, Format::Jsonl);
        assert!(options.header);
        assert_eq!(options.delimiter, b',');
        assert!(!options.origin);
    }

    #[test]
    fn kafka_group_offset_reset_until_end_and_format() {
        let options = kafka_options(&[
            "--origin",
            "kafka",
            "-t",
            "a",
            "--group",
            "g1",
            "--offset-reset",
            "latest",
            "--until-end",
            "--format",
            "csv",
            "--no-header",
            "--delimiter",
            ";",
        ]);
        assert_eq!(options.group, "g1");
        assert_eq!(options.offset_reset, OffsetReset::Latest);
        assert!(options.until_end);
        assert_eq!(options.format, Format::Csv);
        assert!(!options.header);
        assert_eq!(options.delimiter, b';');
        assert!(options.origin);
        assert!(parse(&["kafka", "-t", "a", "--offset-reset", "middle"]).is_err());
    }

    #[test]
    fn kafka_membership_start_tombstones_and_stats() {
        let options = kafka_options(&["kafka", "-t", "a"]);
        assert_eq!(options.instance_id, None);
        assert!(options.start.is_committed());
        assert!(!options.keep_tombstones);
        let options = kafka_options(&[
            "-v",
            "kafka",
            "-t",
            "a",
            "-t",
            "b",
            "--instance-id",
            "host-1",
            "--from",
            "a:1:5",
            "--from",
            "b:0:0",
            "--from-timestamp",
            "2024-05-01T00:00:00Z",
            "--keep-tombstones",
            "--stats-interval",
            "2s",
        ]);
        assert_eq!(options.instance_id.as_deref(), Some("host-1"));
        let starts: Vec<_> = options
            .start
            .offsets
            .iter()
            .map(|o| (o.topic.as_str(), o.partition, o.offset))
            .collect();
        assert_eq!(starts, [("a", 1, 5), ("b", 0, 0)]);
        assert_eq!(options.start.timestamp, Some(1_714_521_600_000));
        assert!(options.keep_tombstones);
        assert_eq!(
            options.stats,
            Some(StatsLine {
                every: Duration::from_secs(2),
                as_log: true
            })
        );
        let quiet = kafka_options(&["-q", "-v", "kafka", "-t", "a"]);
        assert_eq!(quiet.stats, None, "never with -q");
        let off = kafka_options(&["-v", "kafka", "-t", "a", "--stats-interval", "0"]);
        assert_eq!(off.stats, None);
        assert!(parse(&["kafka", "-t", "a", "--from", "a:1"]).is_err());
    }

    #[test]
    fn brokers_default_to_localhost_and_are_global() {
        // STREAMER_BROKERS from the environment would change the default;
        // the explicit flag is tested instead of relying on its absence.
        let options = kafka_options(&["kafka", "-t", "a", "--brokers", "k1:9092,k2:9092"]);
        assert_eq!(options.config.brokers, "k1:9092,k2:9092");
        let cli = parse(&["--brokers", "k:1", "file", "x", "-o", "kafka://t"]).unwrap();
        assert_eq!(cli.global.brokers, "k:1");
        match config(&["--brokers", "k:1", "file", "x", "-o", "kafka://t"])
            .sink
            .output
        {
            Output::Kafka { config, .. } => assert_eq!(config.brokers, "k:1"),
            other => panic!("not kafka: {other:?}"),
        }
        if std::env::var_os("STREAMER_BROKERS").is_none() {
            let cli = parse(&["kafka", "-t", "a"]).unwrap();
            assert_eq!(cli.global.brokers, "localhost:9092");
        }
    }

    #[test]
    fn kafka_settings_are_repeatable_key_values() {
        let options = kafka_options(&[
            "kafka",
            "-t",
            "a",
            "-X",
            "security.protocol=sasl_ssl",
            "-X",
            "sasl.password=p=w",
        ]);
        assert_eq!(
            options.config.settings,
            vec![
                ("security.protocol".to_string(), "sasl_ssl".to_string()),
                ("sasl.password".to_string(), "p=w".to_string())
            ]
        );
        assert!(parse(&["kafka", "-t", "a", "-X", "novalue"]).is_err());
    }

    #[test]
    fn kafka_output_compression() {
        let output = |args: &[&str]| match config(args).sink.output {
            Output::Kafka { compression, .. } => compression,
            other => panic!("not kafka: {other:?}"),
        };
        assert_eq!(output(&["file", "x", "-o", "kafka://t"]), None);
        assert_eq!(
            output(&["file", "x", "-o", "kafka://t", "--compression", "lz4"]),
            Some(Compression::Lz4)
        );
        assert!(parse(&["file", "x", "-o", "kafka://t", "--compression", "brotli"]).is_err());
    }

    #[test]
    fn kafka_output_and_key() {
        let output = kafka_topic_and_key(&["file", "x.csv", "-o", "kafka://ticks", "--key", "id"]);
        let (topic, key) = output.unwrap();
        assert_eq!(topic, "ticks");
        assert_eq!(key.as_deref(), Some("id"));
        let (_, key) = kafka_topic_and_key(&["file", "x.csv", "-o", "kafka://ticks"]).unwrap();
        assert_eq!(key, None);
        assert_eq!(
            kafka_topic_and_key(&["file", "x.csv", "-o", "out.jsonl"]),
            None
        );
    }

    #[test]
    fn output_is_stdout_a_file_or_a_topic() {
        assert_eq!(config(&["file", "a"]).sink.output, Output::Stdout);
        assert_eq!(
            config(&["file", "a", "-o", "-"]).sink.output,
            Output::Stdout
        );
        let output = config(&["file", "a", "-o", "out.jsonl"]).sink.output;
        assert_eq!(output, Output::File(PathBuf::from("out.jsonl")));
        assert_eq!(output.file(), Some(Path::new("out.jsonl")));
        let output = config(&["file", "a", "-o", "kafka://t", "-X", "acks=1"])
            .sink
            .output;
        assert_eq!(output.file(), None);
        let Output::Kafka {
            config,
            topic,
            key,
            compression,
        } = output
        else {
            panic!("not kafka: {output:?}")
        };
        assert_eq!((topic.as_str(), key, compression), ("t", None, None));
        assert_eq!(config.settings, [("acks".to_string(), "1".to_string())]);
    }

    #[test]
    fn append_is_global_and_plans_the_outputs() {
        let config = RunConfig::unchecked(
            parse(&[
                "file",
                "a.csv",
                "-o",
                "out.jsonl",
                "-a",
                "--dead-letter",
                "d",
            ])
            .unwrap(),
        )
        .unwrap();
        assert_eq!(config.sink.mode, WriteMode::Append);
        let plan = config.output_plan();
        assert_eq!(plan.inputs, ["a.csv"]);
        assert_eq!(plan.output, Some(Path::new("out.jsonl")));
        assert_eq!(plan.dead_letter, Some(Path::new("d")));
        assert_eq!(plan.resumes_from, None);
        let config = RunConfig::unchecked(
            parse(&["--append", "kafka", "-t", "t", "-o", "kafka://x"]).unwrap(),
        )
        .unwrap();
        assert_eq!(config.sink.mode, WriteMode::Append);
        let plan = config.output_plan();
        assert_eq!(plan.output, None);
        assert_eq!(
            plan.resumes_from.as_deref(),
            Some("the offsets its consumer group `streamer` committed")
        );
        let config = RunConfig::unchecked(parse(&["tcp"]).unwrap()).unwrap();
        assert_eq!(config.sink.mode, WriteMode::Truncate);
        assert_eq!(config.output_plan().output, None);
    }

    #[test]
    fn no_header_turns_the_header_off() {
        assert!(!file_options(&["file", "a.csv", "--no-header"]).header);
        assert!(file_options(&["file", "a"]).header);
    }

    #[test]
    fn file_options_follow_the_flags() {
        let config = config(&["file", "a", "b", "--format", "csv", "--delimiter", ";"]);
        assert_eq!(config.source.inputs(), ["a", "b"]);
        let SourceConfig::File { options, .. } = config.source else {
            panic!("not `file`")
        };
        assert_eq!(options.format, Some(Format::Csv));
        assert_eq!(options.delimiter, b';');
        let options = file_options(&["file", "a", "--max-record-bytes", "1K"]);
        assert_eq!(options.max_record_bytes, 1024);
        assert_eq!(options.format, None);
    }

    #[test]
    fn decompress_is_auto_unless_named() {
        use crate::source::Decompress;
        assert_eq!(file_options(&["file", "a.gz"]).decompress, Decompress::Auto);
        for (flag, codec) in [
            ("gzip", Decompress::Gzip),
            ("zstd", Decompress::Zstd),
            ("bzip2", Decompress::Bzip2),
            ("none", Decompress::None),
        ] {
            let options = file_options(&["file", "a", "--decompress", flag]);
            assert_eq!(options.decompress, codec);
        }
    }

    #[test]
    fn buffer_and_batch_sizes_shape_the_pipeline() {
        let config = config(&[
            "file",
            "a",
            "--buffer-records",
            "100",
            "--batch-records",
            "10",
        ])
        .pipeline;
        assert_eq!(config.batch_records, 10);
        assert_eq!(config.channel_batches, 10);
        assert!(parse(&["file", "a", "--buffer-records", "0"]).is_err());
        assert!(parse(&["file", "a", "--batch-records", "0"]).is_err());
    }

    #[test]
    fn pipeline_defaults_are_the_librarys() {
        let config = config(&["file", "a"]).pipeline;
        let default = PipelineConfig::default();
        assert_eq!(config.batch_records, default.batch_records);
        assert_eq!(config.channel_batches, default.channel_batches);
        assert_eq!(config.batch_bytes, default.batch_bytes);
        assert_eq!(config.limit, None);
        assert!(!config.decode.origin);
    }

    #[test]
    fn limit_and_origin_reach_the_pipeline() {
        let config = config(&["--limit", "5", "--origin", "file", "a"]).pipeline;
        assert_eq!(config.limit, Some(5));
        assert!(config.decode.origin);
    }

    #[test]
    fn on_error_quiet_verbose_and_dead_letter_reach_the_run() {
        let config = config(&[
            "--on-error",
            "stop",
            "-q",
            "file",
            "a",
            "-vv",
            "--dead-letter",
            "bad.jsonl",
            "--output-format",
            "csv",
        ]);
        assert_eq!(config.on_error, OnError::Stop);
        assert!(config.quiet);
        assert_eq!(config.verbose, 2);
        assert_eq!(config.sink.dead_letter, Some(PathBuf::from("bad.jsonl")));
        assert_eq!(config.sink.format, OutputFormat::Csv);
    }

    #[test]
    fn tcp_defaults() {
        let options = tcp_options(&[]);
        assert_eq!(options.bind, "127.0.0.1:8888");
        assert_eq!(options.framing, Framing::Newline);
        assert_eq!(options.format, Format::Lines);
        assert_eq!(options.delimiter, b',');
        assert!(options.header);
        assert_eq!(options.max_frame_bytes, 1 << 20);
        assert_eq!(options.max_buffered_bytes, 128 << 20);
        assert_eq!(options.max_connections, 1024);
        assert_eq!(options.idle_timeout, Some(Duration::from_secs(300)));
        assert_eq!(options.frame_timeout, Some(Duration::from_secs(30)));
        assert_eq!(options.drain_timeout, Duration::from_secs(30));
    }

    #[test]
    fn tcp_bind_takes_any_text_checked_when_binding() {
        assert_eq!(tcp_options(&["--bind", "0.0.0.0:0"]).bind, "0.0.0.0:0");
        assert_eq!(tcp_options(&["--bind", "localhost:9"]).bind, "localhost:9");
    }

    #[test]
    fn tcp_framing_and_format() {
        let options = tcp_options(&["--framing", "length-delimited", "--format", "jsonl"]);
        assert_eq!(options.framing, Framing::LengthDelimited);
        assert_eq!(options.format, Format::Jsonl);
        assert!(parse(&["tcp", "--framing", "crlf"]).is_err());
        assert!(parse(&["tcp", "--format", "xml"]).is_err());
    }

    #[test]
    fn tcp_csv_flags() {
        let options = tcp_options(&["--format", "csv", "--no-header", "--delimiter", "tab"]);
        assert_eq!(options.format, Format::Csv);
        assert!(!options.header);
        assert_eq!(options.delimiter, b'\t');
    }

    #[test]
    fn tcp_max_frame_bytes() {
        assert_eq!(
            tcp_options(&["--max-frame-bytes", "64K"]).max_frame_bytes,
            65536
        );
        assert_eq!(
            tcp_options(&["--max-frame-bytes", "100"]).max_frame_bytes,
            100
        );
        assert!(parse(&["tcp", "--max-frame-bytes", "0"]).is_err());
    }

    #[test]
    fn tcp_max_connections() {
        assert_eq!(tcp_options(&["--max-connections", "3"]).max_connections, 3);
        assert!(parse(&["tcp", "--max-connections", "0"]).is_err());
        assert!(parse(&["tcp", "--max-connections", "-1"]).is_err());
    }

    #[test]
    fn tcp_timeouts() {
        let options = tcp_options(&["--idle-timeout", "250ms", "--drain-timeout", "2m"]);
        assert_eq!(options.idle_timeout, Some(Duration::from_millis(250)));
        assert_eq!(options.drain_timeout, Duration::from_secs(120));
        let options = tcp_options(&["--idle-timeout", "0", "--drain-timeout", "0"]);
        assert_eq!(options.idle_timeout, None);
        assert_eq!(options.drain_timeout, Duration::ZERO);
        assert_eq!(tcp_options(&["--frame-timeout", "0"]).frame_timeout, None);
        let options = tcp_options(&["--frame-timeout", "2s"]);
        assert_eq!(options.frame_timeout, Some(Duration::from_secs(2)));
        assert!(parse(&["tcp", "--idle-timeout", "soon"]).is_err());
    }

    #[test]
    fn max_records_is_limit() {
        assert_eq!(
            config(&["tcp", "--max-records", "7"]).pipeline.limit,
            Some(7)
        );
        let cli = parse(&["--max-records", "7", "file", "a"]).unwrap();
        assert_eq!(cli.global.limit, Some(7));
    }

    #[test]
    fn validate_checks_the_kafka_topic_and_the_tcp_budget() {
        assert_eq!(
            bad(&["file", "x", "-o", "kafka://"]),
            "-o kafka://: a topic name has 1 to 249 characters"
        );
        assert!(bad(&["file", "x", "-o", "kafka://a b"]).starts_with("-o kafka://a b: `a b`"));
        assert!(bad(&["file", "x", "-a"]).starts_with("--append (-a) applies to an -o FILE"));
        assert!(bad(&["file", "x", "-a", "-o", "kafka://t"]).starts_with("--append (-a)"));
        assert!(
            RunConfig::from_cli(parse(&["file", "x", "-a", "--dead-letter", "d"]).unwrap()).is_ok()
        );
        assert!(bad(&[
            "tcp",
            "--max-frame-bytes",
            "2M",
            "--max-buffered-bytes",
            "1M"
        ])
        .contains("raise --max-buffered-bytes"));
        assert!(RunConfig::from_cli(parse(&["file", "x", "-o", "kafka://ok"]).unwrap()).is_ok());
        assert!(RunConfig::from_cli(parse(&["tcp"]).unwrap()).is_ok());
    }

    #[test]
    fn outputs_are_checked_before_any_is_opened() {
        assert!(bad(&["file", "x", "--dead-letter", "-"]).starts_with("--dead-letter -: "));
        assert!(bad(&["file", "x", "-o", "x"]).starts_with("-o x: that file is also an input (x)"));
        assert!(bad(&["file", "x", "-o", "y", "--dead-letter", "./y"])
            .starts_with("-o and --dead-letter name the same file (./y)"));
    }

    #[test]
    fn kafka_only_flags_are_refused_and_client_checks_fail_the_run() {
        assert!(bad(&["file", "x", "--key", "id"]).starts_with("--key names the field"));
        assert!(bad(&["file", "x", "--compression", "zstd"]).starts_with("--compression is"));
        assert!(bad(&["file", "x", "--key", "id", "-o", "out.jsonl"]).starts_with("--key"));
        assert!(
            bad(&["file", "x", "-o", "kafka://t", "--output-format", "csv"])
                .starts_with("--output-format csv does not apply to a kafka:// output")
        );
        assert!(unusable(&["kafka", "-t", "a/b"]).contains("not a valid topic name"));
        assert!(unusable(&[
            "kafka",
            "-t",
            "x",
            "--until-end",
            "-X",
            "partition.assignment.strategy=cooperative-sticky",
        ])
        .starts_with("--until-end does not work with a cooperative"));
        // The combinations come first.
        assert!(bad(&["file", "x", "-a", "--key", "id"]).starts_with("--key"));
    }

    #[test]
    fn tools_run_no_pipeline() {
        assert_eq!(
            bad(&["completions", "bash"]),
            "`streamer completions` prints, and runs no pipeline"
        );
        assert_eq!(bad(&["man"]), "`streamer man` prints, and runs no pipeline");
    }

    #[test]
    fn security_from_the_environment_is_unread_without_a_kafka_client() {
        // As STREAMER_TLS_CA would set it: a value that is not typed.
        let mut cli = parse(&["file", "x"]).unwrap();
        cli.global.security.tls_ca = Some(PathBuf::from("/no/such/ca.pem"));
        assert!(RunConfig::from_cli(cli).is_ok());
        let mut cli = parse(&["file", "x", "-o", "kafka://t"]).unwrap();
        cli.global.security.tls_ca = Some(PathBuf::from("/no/such/ca.pem"));
        assert!(matches!(
            RunConfig::from_cli(cli),
            Err(ConfigError::Unusable(message)) if message.starts_with("--tls-ca /no/such/ca.pem")
        ));
    }
}
