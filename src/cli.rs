//! Command-line flags, each tested next to its definition, and their
//! validation into what the pipeline runs with.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::codec::{DecodeOptions, Format, Framing};
use crate::kafka::{parse_setting, KafkaConfig};
use crate::pipeline::{OnError, PipelineConfig};
use crate::record::MAX_RECORD_BYTES_LIMIT;
use crate::sink::{OutputFormat, OutputPlan, WriteMode};
use crate::source::{FileOptions, KafkaOptions, OffsetReset, TcpOptions};

/// What each exit status means; shown by `--help` and the README.
pub const EXIT_CODES: &str = "\
Exit status:
  0  every record was processed (also: the output's reader went away, as in `| head`)
  1  the run failed (unreadable input, unwritable output, --on-error stop)
  2  bad command line
  3  the run finished, but some records were rejected (see the warnings or --dead-letter)";

/// Listen to a stream and turn every record in it into a JSON object.
#[derive(Debug, Parser)]
#[command(name = "streamer", version, about, after_help = EXIT_CODES)]
pub struct Cli {
    /// Flags of the pipeline and the output; accepted before or after the subcommand.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// Where the records come from.
    #[command(subcommand)]
    pub command: Command,
}

/// Flags of the pipeline and output, shared by every subcommand.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Write records to PATH instead of stdout (`-` is stdout), or to a Kafka topic with `kafka://TOPIC`.
    #[arg(short, long, global = true, value_name = "PATH", default_value = "-")]
    pub output: String,
    /// Kafka brokers, for `streamer kafka` and `-o kafka://TOPIC`.
    #[arg(
        long,
        global = true,
        env = "STREAMER_BROKERS",
        default_value = "localhost:9092",
        value_name = "HOST:PORT,..."
    )]
    pub brokers: String,
    /// A librdkafka setting for the Kafka clients (security, tuning), repeatable; wins over streamer's defaults.
    #[arg(short = 'X', global = true, value_name = "KEY=VALUE", value_parser = parse_setting)]
    pub kafka_settings: Vec<(String, String)>,
    /// With `-o kafka://TOPIC`: each message's key is this field of the record.
    #[arg(long, global = true, value_name = "FIELD")]
    pub key: Option<String>,
    /// How records are written.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t,
        value_name = "FORMAT"
    )]
    pub output_format: OutputFormat,
    /// Add an "_origin" object to each record saying where it came from
    /// (under "_origin_2", "_origin_3", ... if the record has "_origin" already).
    #[arg(long, global = true)]
    pub origin: bool,
    /// What to do with a bad record: skip it (warn, count, go on) or stop the run.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t,
        value_name = "POLICY"
    )]
    pub on_error: OnError,
    /// Also write each rejected record (raw text, origin, reason) to PATH as a JSON line
    /// (a file: `-` is refused).
    #[arg(long, global = true, value_name = "PATH")]
    pub dead_letter: Option<PathBuf>,
    /// Add to the end of the -o and --dead-letter files instead of emptying them first.
    /// A last line cut short by a crash (one that cannot be a whole record) is removed first,
    /// with a warning; CSV output
    /// follows the existing header's columns. `streamer kafka` resumes from its group's committed offsets, so it refuses to
    /// empty a non-empty -o or --dead-letter file: it needs --append (or another path).
    #[arg(short, long, global = true)]
    pub append: bool,
    /// Stop after N records.
    #[arg(long, global = true, value_name = "N", visible_alias = "max-records")]
    pub limit: Option<u64>,
    /// Records each channel of the pipeline holds at most (memory bound).
    #[arg(long, global = true, value_name = "N", default_value_t = 16 * 1024,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub buffer_records: u64,
    /// Records moved through the pipeline together at most.
    #[arg(long, global = true, value_name = "N", default_value_t = 1024,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_records: u64,
    /// No summary line, and only errors in the log.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// More log output (-v: info, -vv: debug, -vvv: trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

impl GlobalArgs {
    /// The pipeline's sizes and options.
    pub fn pipeline_config(&self) -> PipelineConfig {
        let mut config =
            PipelineConfig::with_buffer(self.buffer_records as usize, self.batch_records as usize);
        config.decode = DecodeOptions {
            origin: self.origin,
        };
        config.limit = self.limit;
        config
    }

    /// The Kafka clients' brokers and settings.
    pub fn kafka_config(&self) -> KafkaConfig {
        KafkaConfig {
            brokers: self.brokers.clone(),
            settings: self.kafka_settings.clone(),
        }
    }

    /// How `-o` and `--dead-letter` files are opened.
    pub fn write_mode(&self) -> WriteMode {
        if self.append {
            WriteMode::Append
        } else {
            WriteMode::Truncate
        }
    }

    /// The file `-o` names, unless it is stdout or a Kafka topic.
    pub fn output_file(&self) -> Option<&Path> {
        (self.output != "-" && self.kafka_output_topic().is_none()).then(|| Path::new(&self.output))
    }

    /// The topic of a `-o kafka://TOPIC` output.
    pub fn kafka_output_topic(&self) -> Option<&str> {
        self.output.strip_prefix("kafka://")
    }
}

impl Cli {
    /// What the run reads and writes, for the checks done before any
    /// output is opened ([`OutputPlan::check`]).
    pub fn output_plan(&self) -> OutputPlan<'_> {
        let (inputs, resumes_from): (&[String], _) = match &self.command {
            Command::File(args) => (&args.paths, None),
            Command::Tcp(_) => (&[], None),
            Command::Kafka(args) => (
                &[],
                Some(format!(
                    "the offsets its consumer group `{}` committed",
                    args.group
                )),
            ),
        };
        OutputPlan {
            inputs,
            output: self.global.output_file(),
            dead_letter: self.global.dead_letter.as_deref(),
            mode: self.global.write_mode(),
            resumes_from,
        }
    }
}

impl Cli {
    /// Parses the command line and checks what clap cannot check alone;
    /// a bad command line exits with status 2, as clap's own errors do.
    pub fn parse_checked() -> Self {
        let cli = Cli::parse();
        if let Err(message) = cli.validate() {
            Cli::command()
                .error(clap::error::ErrorKind::ValueValidation, message)
                .exit();
        }
        cli
    }

    /// Checks that span several flags or a flag's meaning: a `kafka://`
    /// output's topic name, a frame limit that fits the buffer budget.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(topic) = self.global.kafka_output_topic() {
            crate::kafka::check_topic_name(topic)
                .map_err(|reason| format!("-o {}: {reason}", self.global.output))?;
        }
        if let Command::Tcp(args) = &self.command {
            crate::source::check_tcp_budget(args.max_buffered_bytes, args.max_frame_bytes)?;
        }
        // Silently ignored, -a would let `>> out.csv` add a second header.
        let file_output = self.global.output != "-" && self.global.kafka_output_topic().is_none();
        if self.global.append && !file_output && self.global.dead_letter.is_none() {
            return Err(
                "--append (-a) applies to an -o FILE or --dead-letter FILE, and neither \
                        is given: to add to a file on standard output, use the shell's >>, \
                        or give the file with -o FILE -a"
                    .to_string(),
            );
        }
        Ok(())
    }
}

/// The sources.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read files (`-` is stdin), in the order given.
    File(FileArgs),
    /// Listen on a TCP address; every frame any client sends is a record.
    Tcp(TcpArgs),
    /// Consume Kafka topics as a member of a consumer group (at-least-once).
    Kafka(KafkaArgs),
}

/// `streamer kafka`.
#[derive(Debug, Args)]
pub struct KafkaArgs {
    /// A topic to consume, repeatable; one starting with `^` is a regular expression.
    #[arg(short, long = "topic", required = true, value_name = "TOPIC")]
    pub topics: Vec<String>,
    /// The consumer group: processes in one group share the partitions.
    #[arg(short, long, default_value = "streamer", value_name = "GROUP")]
    pub group: String,
    /// Where a group without a committed offset starts reading.
    #[arg(long, value_enum, default_value_t, value_name = "WHERE")]
    pub offset_reset: OffsetReset,
    /// Stop, after committing, once every assigned partition is read up to its end offset as of its assignment.
    #[arg(long)]
    pub until_end: bool,
    /// What message values hold (csv: each message is rows, the first a header unless --no-header).
    #[arg(long, value_enum, default_value = "jsonl", value_name = "FORMAT")]
    pub format: Format,
    #[command(flatten)]
    pub csv: CsvArgs,
}

impl KafkaArgs {
    /// How the Kafka source consumes.
    pub fn kafka_options(&self, global: &GlobalArgs) -> KafkaOptions {
        KafkaOptions {
            config: global.kafka_config(),
            topics: self.topics.clone(),
            group: self.group.clone(),
            offset_reset: self.offset_reset,
            until_end: self.until_end,
            format: self.format,
            delimiter: self.csv.delimiter,
            header: !self.csv.no_header,
            origin: global.origin,
        }
    }
}

/// `streamer file`.
#[derive(Debug, Args)]
pub struct FileArgs {
    /// The files to read, in order; `-` reads stdin.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<String>,
    /// What the input holds [default: from the extension: .csv, .jsonl/.ndjson, else lines].
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<Format>,
    #[command(flatten)]
    pub csv: CsvArgs,
    /// A longer line or CSV row is rejected alone, never buffered; reading goes on with the next (bytes as in the file, quotes included, its line end not; K, M, G suffixes).
    #[arg(long, value_name = "BYTES", default_value = "16M", value_parser = parse_max_record_bytes)]
    pub max_record_bytes: usize,
}

impl FileArgs {
    /// How the file source reads.
    pub fn file_options(&self) -> FileOptions {
        FileOptions {
            format: self.format,
            delimiter: self.csv.delimiter,
            header: !self.csv.no_header,
            max_record_bytes: self.max_record_bytes,
        }
    }
}

/// How `streamer tcp` treats its clients; shown by `streamer tcp --help`.
const TCP_NOTES: &str = "\
Clients beyond --max-connections are not refused: they wait, unread, in the
kernel's listen backlog until a connection closes (once that backlog is full
too, the kernel refuses them). On Ctrl-C or SIGTERM the server stops
accepting, reads the open connections until their clients close them or
--drain-timeout passes, writes everything out and exits; a second signal
exits at once.

A connection may hold 64 KiB of an unfinished frame; a longer one waits,
unread, for a share of --max-buffered-bytes as large as --max-frame-bytes,
so unfinished frames hold at most that budget plus 64 KiB per connection.
A frame holding a share must end within --frame-timeout (else it is
rejected and its connection closed), so waiting connections get theirs in
time. A CSV header holds a share (2 bytes a byte + 128 a column) for the
connection's life; a header that finds no room is rejected, and with it
every row of that connection.

With --format csv each frame is one CSV row, and the first frame of each
connection is its header unless --no-header. With --framing newline a quoted
cell cannot hold a line break (use --framing length-delimited for that).";

/// `streamer tcp`.
#[derive(Debug, Args)]
#[command(after_help = TCP_NOTES)]
pub struct TcpArgs {
    /// Listen on ADDR (host:port); port 0 picks a free port, printed at start.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8888")]
    pub bind: String,
    /// How a connection's bytes are cut into frames: lines ending in \n (the last may
    /// lack it), or a 4-byte big-endian length then that many bytes.
    #[arg(long, value_enum, value_name = "FRAMING", default_value_t)]
    pub framing: Framing,
    /// What each frame holds (csv: one row per frame; see below).
    #[arg(long, value_enum, value_name = "FORMAT", default_value = "lines")]
    pub format: Format,
    #[command(flatten)]
    pub csv: CsvArgs,
    /// A longer frame is rejected and skipped; the connection goes on (bytes; K, M, G suffixes).
    #[arg(long, value_name = "BYTES", default_value = "1M", value_parser = parse_bytes)]
    pub max_frame_bytes: usize,
    /// Most bytes all unfinished frames together may hold beyond 64 KiB per
    /// connection; when it is spent, connections with a long unfinished frame
    /// wait, unread (bytes; K, M, G suffixes; at least --max-frame-bytes).
    #[arg(long, value_name = "BYTES", default_value = "128M", value_parser = parse_bytes)]
    pub max_buffered_bytes: usize,
    /// Most clients served at once; the next ones wait until one leaves.
    #[arg(long, value_name = "N", default_value_t = 1024,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: u64,
    /// Close a connection that sends nothing for this long (500ms, 30s, 5m, 1h; 0: never).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// A frame over 64 KiB, which holds a share of --max-buffered-bytes, must end
    /// within this, else it is rejected and its connection closed (0: no limit).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub frame_timeout: Duration,
    /// After Ctrl-C/SIGTERM, how long open connections may still send (0: not at all).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub drain_timeout: Duration,
}

impl TcpArgs {
    /// How the TCP source listens and reads.
    pub fn tcp_options(&self) -> TcpOptions {
        TcpOptions {
            bind: self.bind.clone(),
            framing: self.framing,
            format: self.format,
            delimiter: self.csv.delimiter,
            header: !self.csv.no_header,
            max_frame_bytes: self.max_frame_bytes,
            max_buffered_bytes: self.max_buffered_bytes,
            max_connections: self.max_connections as usize,
            idle_timeout: (!self.idle_timeout.is_zero()).then_some(self.idle_timeout),
            frame_timeout: (!self.frame_timeout.is_zero()).then_some(self.frame_timeout),
            drain_timeout: self.drain_timeout,
        }
    }
}

/// CSV flags, shared by every source that can read CSV.
#[derive(Debug, Args)]
pub struct CsvArgs {
    /// CSV cell separator: one ASCII character, or `tab`.
    #[arg(long, value_name = "CHAR", default_value = ",", value_parser = parse_delimiter)]
    pub delimiter: u8,
    /// The CSV has no header row: keys are c1, c2, ...
    #[arg(long)]
    pub no_header: bool,
}

fn parse_delimiter(text: &str) -> Result<u8, String> {
    match text {
        "tab" | "\\t" | "\t" => Ok(b'\t'),
        // `\r` ends a CSV row, as `\n` does.
        _ if text.len() == 1 && text.is_ascii() && !matches!(text, "\"" | "\n" | "\r") => {
            Ok(text.as_bytes()[0])
        }
        _ => Err(
            "must be one ASCII character other than a quote, `\\r` or newline (or `tab`)".into(),
        ),
    }
}

/// Splits `64K` into its digits and its unit (`"64"`, `"K"`).
fn split_number(text: &str) -> (&str, &str) {
    let trimmed = text.trim();
    let digits_end = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    trimmed.split_at(digits_end)
}

/// Parses `--max-record-bytes`: a byte count up to
/// [`MAX_RECORD_BYTES_LIMIT`] (1 GiB), so a record always fits a batch.
fn parse_max_record_bytes(text: &str) -> Result<usize, String> {
    let bytes = parse_bytes(text)?;
    if bytes > MAX_RECORD_BYTES_LIMIT {
        return Err(format!(
            "`{text}` is more than the most a record may be, {}G",
            MAX_RECORD_BYTES_LIMIT >> 30
        ));
    }
    Ok(bytes)
}

/// Parses a byte count: `1048576`, `64K`, `16M`, `1G` (powers of 1024; an
/// optional `iB`/`B` after the letter).
pub fn parse_bytes(text: &str) -> Result<usize, String> {
    let (digits, unit) = split_number(text);
    let number: usize = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a byte count (like 65536, 64K, 16M)"))?;
    let multiplier: usize = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("`{text}` has an unknown unit (use K, M or G)")),
    };
    match number.checked_mul(multiplier) {
        Some(0) => Err("must be at least 1".into()),
        Some(bytes) => Ok(bytes),
        None => Err(format!("`{text}` is too large")),
    }
}

/// Parses a duration: `500ms`, `30s`, `5m`, `1h`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (digits, unit) = split_number(text);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (like 500ms, 30s, 5m)"))?;
    let seconds_per = match unit {
        "ms" => return Ok(Duration::from_millis(number)),
        "" | "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        _ => return Err(format!("`{text}` has an unknown unit (use ms, s, m or h)")),
    };
    number
        .checked_mul(seconds_per)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("`{text}` is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("streamer").chain(args.iter().copied()))
    }

    fn file_args(cli: &Cli) -> &FileArgs {
        match &cli.command {
            Command::File(args) => args,
            other => panic!("not `file`: {other:?}"),
        }
    }

    fn tcp_args(cli: &Cli) -> &TcpArgs {
        match &cli.command {
            Command::Tcp(args) => args,
            other => panic!("not `tcp`: {other:?}"),
        }
    }

    fn tcp_options(args: &[&str]) -> TcpOptions {
        let cli = parse(&[&["tcp"], args].concat()).unwrap();
        tcp_args(&cli).tcp_options()
    }

    fn kafka_args(cli: &Cli) -> &KafkaArgs {
        match &cli.command {
            Command::Kafka(args) => args,
            other => panic!("not `kafka`: {other:?}"),
        }
    }

    #[test]
    fn kafka_needs_a_topic_and_takes_several() {
        assert!(parse(&["kafka"]).is_err());
        let cli = parse(&["kafka", "--topic", "a", "-t", "^logs-.*"]).unwrap();
        let args = kafka_args(&cli);
        assert_eq!(args.topics, vec!["a", "^logs-.*"]);
        let options = args.kafka_options(&cli.global);
        assert_eq!(options.topics, vec!["a", "^logs-.*"]);
    }

    #[test]
    fn kafka_defaults() {
        let cli = parse(&["kafka", "-t", "a"]).unwrap();
        let options = kafka_args(&cli).kafka_options(&cli.global);
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
        let cli = parse(&[
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
        ])
        .unwrap();
        let options = kafka_args(&cli).kafka_options(&cli.global);
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
    fn brokers_default_to_localhost_and_are_global() {
        // STREAMER_BROKERS from the environment would change the default;
        // the explicit flag is tested instead of relying on its absence.
        let cli = parse(&["kafka", "-t", "a", "--brokers", "k1:9092,k2:9092"]).unwrap();
        assert_eq!(cli.global.kafka_config().brokers, "k1:9092,k2:9092");
        let cli = parse(&["--brokers", "k:1", "file", "x", "-o", "kafka://t"]).unwrap();
        assert_eq!(cli.global.brokers, "k:1");
        if std::env::var_os("STREAMER_BROKERS").is_none() {
            let cli = parse(&["kafka", "-t", "a"]).unwrap();
            assert_eq!(cli.global.brokers, "localhost:9092");
        }
    }

    #[test]
    fn kafka_settings_are_repeatable_key_values() {
        let cli = parse(&[
            "kafka",
            "-t",
            "a",
            "-X",
            "security.protocol=sasl_ssl",
            "-X",
            "sasl.password=p=w",
        ])
        .unwrap();
        assert_eq!(
            cli.global.kafka_config().settings,
            vec![
                ("security.protocol".to_string(), "sasl_ssl".to_string()),
                ("sasl.password".to_string(), "p=w".to_string())
            ]
        );
        assert!(parse(&["kafka", "-t", "a", "-X", "novalue"]).is_err());
    }

    #[test]
    fn kafka_output_and_key() {
        let cli = parse(&["file", "x.csv", "-o", "kafka://ticks", "--key", "id"]).unwrap();
        assert_eq!(cli.global.kafka_output_topic(), Some("ticks"));
        assert_eq!(cli.global.key.as_deref(), Some("id"));
        let cli = parse(&["file", "x.csv", "-o", "out.jsonl"]).unwrap();
        assert_eq!(cli.global.kafka_output_topic(), None);
        assert_eq!(cli.global.key, None);
    }

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_work_before_and_after_the_subcommand() {
        let before = parse(&["-o", "out.jsonl", "--origin", "file", "x.csv"]).unwrap();
        let after = parse(&["file", "x.csv", "-o", "out.jsonl", "--origin"]).unwrap();
        for cli in [&before, &after] {
            assert_eq!(cli.global.output, "out.jsonl");
            assert!(cli.global.origin);
            assert_eq!(file_args(cli).paths, vec!["x.csv"]);
        }
    }

    #[test]
    fn output_defaults_to_stdout_as_jsonl() {
        let cli = parse(&["file", "a.csv", "b.csv"]).unwrap();
        assert_eq!(cli.global.output, "-");
        assert_eq!(cli.global.output_format, OutputFormat::Jsonl);
        assert_eq!(file_args(&cli).paths, vec!["a.csv", "b.csv"]);
    }

    #[test]
    fn output_format_csv() {
        let cli = parse(&["file", "a.csv", "--output-format", "csv"]).unwrap();
        assert_eq!(cli.global.output_format, OutputFormat::Csv);
        assert!(parse(&["file", "a.csv", "--output-format", "xml"]).is_err());
    }

    #[test]
    fn on_error_and_dead_letter() {
        let cli = parse(&[
            "--on-error",
            "stop",
            "file",
            "a.csv",
            "--dead-letter",
            "bad.jsonl",
        ])
        .unwrap();
        assert_eq!(cli.global.on_error, OnError::Stop);
        assert_eq!(cli.global.dead_letter, Some(PathBuf::from("bad.jsonl")));
        assert_eq!(
            parse(&["file", "a"]).unwrap().global.on_error,
            OnError::Skip
        );
        assert!(parse(&["file", "a", "--on-error", "ignore"]).is_err());
    }

    #[test]
    fn append_is_global_and_plans_the_outputs() {
        let cli = parse(&[
            "file",
            "a.csv",
            "-o",
            "out.jsonl",
            "-a",
            "--dead-letter",
            "d",
        ])
        .unwrap();
        assert_eq!(cli.global.write_mode(), WriteMode::Append);
        let plan = cli.output_plan();
        assert_eq!(plan.inputs, ["a.csv"]);
        assert_eq!(plan.output, Some(Path::new("out.jsonl")));
        assert_eq!(plan.dead_letter, Some(Path::new("d")));
        assert_eq!(plan.resumes_from, None);
        let cli = parse(&["--append", "kafka", "-t", "t", "-o", "kafka://x"]).unwrap();
        assert_eq!(cli.global.write_mode(), WriteMode::Append);
        let plan = cli.output_plan();
        assert_eq!(plan.output, None);
        assert_eq!(
            plan.resumes_from.as_deref(),
            Some("the offsets its consumer group `streamer` committed")
        );
        let cli = parse(&["tcp"]).unwrap();
        assert_eq!(cli.global.write_mode(), WriteMode::Truncate);
        assert_eq!(cli.output_plan().output, None);
    }

    #[test]
    fn file_needs_a_path() {
        assert!(parse(&["file"]).is_err());
    }

    #[test]
    fn format_is_optional_and_checked() {
        assert_eq!(parse(&["file", "a"]).unwrap().command_format(), None);
        let cli = parse(&["file", "a", "--format", "jsonl"]).unwrap();
        assert_eq!(cli.command_format(), Some(Format::Jsonl));
        assert!(parse(&["file", "a", "--format", "xml"]).is_err());
    }

    #[test]
    fn delimiter_takes_one_ascii_character_or_tab() {
        let cli = parse(&["file", "a", "--delimiter", ";"]).unwrap();
        assert_eq!(file_args(&cli).csv.delimiter, b';');
        let cli = parse(&["file", "a", "--delimiter", "tab"]).unwrap();
        assert_eq!(file_args(&cli).csv.delimiter, b'\t');
        assert_eq!(
            file_args(&parse(&["file", "a"]).unwrap()).csv.delimiter,
            b','
        );
        for bad in [";;", "é", "\"", "", "\r", "\n"] {
            assert!(
                parse(&["file", "a", "--delimiter", bad]).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn no_header_turns_the_header_off() {
        let cli = parse(&["file", "a", "--no-header"]).unwrap();
        assert!(!file_args(&cli).file_options().header);
        assert!(
            file_args(&parse(&["file", "a"]).unwrap())
                .file_options()
                .header
        );
    }

    #[test]
    fn buffer_and_batch_sizes_shape_the_pipeline() {
        let cli = parse(&[
            "file",
            "a",
            "--buffer-records",
            "100",
            "--batch-records",
            "10",
        ])
        .unwrap();
        let config = cli.global.pipeline_config();
        assert_eq!(config.batch_records, 10);
        assert_eq!(config.channel_batches, 10);
        assert!(parse(&["file", "a", "--buffer-records", "0"]).is_err());
        assert!(parse(&["file", "a", "--batch-records", "0"]).is_err());
    }

    #[test]
    fn limit_and_origin_reach_the_pipeline() {
        let config = parse(&["--limit", "5", "--origin", "file", "a"])
            .unwrap()
            .global
            .pipeline_config();
        assert_eq!(config.limit, Some(5));
        assert!(config.decode.origin);
    }

    #[test]
    fn quiet_and_verbose() {
        let cli = parse(&["-q", "file", "a", "-vv"]).unwrap();
        assert!(cli.global.quiet);
        assert_eq!(cli.global.verbose, 2);
    }

    #[test]
    fn byte_counts_take_units() {
        assert_eq!(parse_bytes("65536"), Ok(65536));
        assert_eq!(parse_bytes("64K"), Ok(65536));
        assert_eq!(parse_bytes("16MiB"), Ok(16 << 20));
        assert_eq!(parse_bytes("1g"), Ok(1 << 30));
        assert!(parse_bytes("0").is_err());
        assert!(parse_bytes("12Q").is_err());
        assert!(parse_bytes("M").is_err());
        let cli = parse(&["file", "a", "--max-record-bytes", "1K"]).unwrap();
        assert_eq!(file_args(&cli).max_record_bytes, 1024);
    }

    #[test]
    fn max_record_bytes_has_an_upper_bound() {
        let cli = parse(&["file", "a", "--max-record-bytes", "1G"]).unwrap();
        assert_eq!(file_args(&cli).max_record_bytes, MAX_RECORD_BYTES_LIMIT);
        let error = parse(&["file", "a", "--max-record-bytes", "1025M"]).unwrap_err();
        assert!(
            error.to_string().contains("most a record may be, 1G"),
            "{error}"
        );
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
    fn global_flags_work_around_tcp() {
        let cli = parse(&["--origin", "tcp", "--bind", "127.0.0.1:0", "-o", "x.jsonl"]).unwrap();
        assert!(cli.global.origin);
        assert_eq!(cli.global.output, "x.jsonl");
        assert_eq!(tcp_args(&cli).bind, "127.0.0.1:0");
    }

    #[test]
    fn max_records_is_limit() {
        let cli = parse(&["tcp", "--max-records", "7"]).unwrap();
        assert_eq!(cli.global.pipeline_config().limit, Some(7));
        let cli = parse(&["--max-records", "7", "file", "a"]).unwrap();
        assert_eq!(cli.global.limit, Some(7));
    }

    #[test]
    fn durations_take_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("1.5s").is_err());
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("99999999999999999999h").is_err());
    }

    #[test]
    fn validate_checks_the_kafka_topic_and_the_tcp_budget() {
        let bad = |args: &[&str]| parse(args).unwrap().validate().unwrap_err();
        assert_eq!(
            bad(&["file", "x", "-o", "kafka://"]),
            "-o kafka://: a topic name has 1 to 249 characters"
        );
        assert!(bad(&["file", "x", "-o", "kafka://a b"]).starts_with("-o kafka://a b: `a b`"));
        assert!(bad(&["file", "x", "-a"]).starts_with("--append (-a) applies to an -o FILE"));
        assert!(bad(&["file", "x", "-a", "-o", "kafka://t"]).starts_with("--append (-a)"));
        assert!(parse(&["file", "x", "-a", "--dead-letter", "d"])
            .unwrap()
            .validate()
            .is_ok());
        assert!(bad(&[
            "tcp",
            "--max-frame-bytes",
            "2M",
            "--max-buffered-bytes",
            "1M"
        ])
        .contains("raise --max-buffered-bytes"));
        assert_eq!(
            parse(&["file", "x", "-o", "kafka://ok"])
                .unwrap()
                .validate(),
            Ok(())
        );
        assert_eq!(parse(&["tcp"]).unwrap().validate(), Ok(()));
    }

    impl Cli {
        fn command_format(&self) -> Option<Format> {
            file_args(self).format
        }
    }
}
