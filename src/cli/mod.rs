//! Command-line flags (clap derive), each tested next to its definition:
//! the low-level arguments, as typed. [`crate::config::RunConfig::from_cli`]
//! checks them and turns them into what the run uses.
//!
//! Every flag sits under one heading of [`help`] (`help_heading = OUTPUT`,
//! ...: Input, Output, Processing, Limits, Logging, Kafka), which
//! [`help::command`] shows in that order; [`parse`] parses through it and
//! notes which flags were typed ([`Cli::given`]), for the checks of
//! combinations that make no sense. `completions` and `man` ([`tools`])
//! print, and run nothing.

pub mod help;
mod parse;
mod security;
pub mod tools;

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, FromArgMatches, Parser, Subcommand, ValueEnum};

pub use self::help::{INPUT, KAFKA, LIMITS, LOGGING, OUTPUT, PROCESSING, SECURITY};
pub use self::parse::{parse_bytes, parse_duration};
pub use self::security::SecurityArgs;
pub use self::tools::{CompletionsArgs, ManArgs, Tool};

use self::help::{EXAMPLES, FILE_EXAMPLES, KAFKA_EXAMPLES, TCP_EXAMPLES};
use self::parse::{
    bytes_text, parse_delimiter, parse_max_record_bytes, parse_name, parse_stats_interval,
    parse_transaction_interval,
};
use crate::codec::{Format, Framing};
use crate::kafka::parse_setting;
use crate::pipeline::{OnError, DEFAULT_BATCH_RECORDS, DEFAULT_BUFFER_RECORDS};
use crate::sink::{Compression, OutputFormat};
use crate::source::kafka::PartitionOffset;
use crate::source::tcp::Cidr;
use crate::source::{parse_from, parse_timestamp, Decompress, FileOptions, OffsetReset};

/// The file source's defaults, as `--help` shows them: stated once, by
/// [`FileOptions::default`], which library users build on too.
static FILE_DEFAULTS: LazyLock<FileDefaults> = LazyLock::new(|| {
    let options = FileOptions::default();
    FileDefaults {
        delimiter: char::from(options.delimiter).to_string(),
        max_record_bytes: bytes_text(options.max_record_bytes),
        poll_interval: format!("{}ms", options.poll_interval.as_millis()),
    }
});

/// Defaults of [`CsvArgs`] and [`FileArgs`], as flag values.
struct FileDefaults {
    delimiter: String,
    max_record_bytes: String,
    poll_interval: String,
}

/// Parses the process's command line as [`parse_args`] does; on a bad one,
/// prints clap's message and exits with status 2 (0 for `--help`).
pub fn parse() -> Cli {
    forget_empty_variables();
    parse_args(std::env::args_os()).unwrap_or_else(|error| {
        // Help and version go to stdout as they are; an error is one JSON
        // object when JSON lines were asked for, as every other line is.
        if error.use_stderr() && json_asked(std::env::args_os()) {
            let message = error.render().to_string();
            let message = message.trim_end().trim_start_matches("error: ");
            crate::stderr::use_json();
            crate::say!("streamer: error: {message}");
            std::process::exit(error.exit_code());
        }
        error.exit()
    })
}

/// Whether `--log-format json` was typed (it may be the flag that failed
/// to parse with the others) or `STREAMER_LOG_FORMAT=json` set.
fn json_asked(args: impl Iterator<Item = OsString>) -> bool {
    let args: Vec<OsString> = args.collect();
    let typed = args
        .windows(2)
        .any(|pair| pair[0] == "--log-format" && pair[1] == "json")
        || args.iter().any(|arg| arg == "--log-format=json");
    typed || std::env::var_os("STREAMER_LOG_FORMAT").is_some_and(|format| format == "json")
}

/// An empty `STREAMER_*` variable counts as unset, as an empty flag value
/// would be refused: a deployment template that leaves one blank
/// (`STREAMER_GROUP=`) then gets the default, not an empty group name, a
/// broker list of nothing, or a refusal of a flag nobody typed.
fn forget_empty_variables() {
    let empty: Vec<OsString> = std::env::vars_os()
        .filter(|(name, value)| {
            value.is_empty()
                && name
                    .to_str()
                    .is_some_and(|name| name.starts_with("STREAMER_"))
        })
        .map(|(name, _)| name)
        .collect();
    for name in empty {
        // Called first thing in `main`, before any other thread exists.
        std::env::remove_var(name);
    }
}

/// Parses `args` (the program name first) with the layout of
/// [`help::command`], noting in [`Cli::given`] the flags typed.
pub fn parse_args<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let mut command = help::command();
    let matches = command.try_get_matches_from_mut(args)?;
    let mut cli = Cli::from_arg_matches(&matches).map_err(|error| error.format(&mut command))?;
    cli.given = typed(&matches);
    Ok(cli)
}

/// The ids of the arguments typed on the command line (not a default, not
/// the environment), the subcommand's included.
fn typed(matches: &ArgMatches) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    let mut level = Some(matches);
    while let Some(matches) = level {
        ids.extend(
            matches
                .ids()
                .filter(|id| matches.value_source(id.as_str()) == Some(ValueSource::CommandLine))
                .map(|id| id.to_string()),
        );
        level = matches.subcommand().map(|(_, sub)| sub);
    }
    ids
}

/// How log lines (and streamer's own lines: errors, the summary) are
/// written on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum LogFormat {
    /// Lines for a person.
    #[default]
    Text,
    /// One JSON object per line, for a log collector.
    Json,
}

/// Listen to a stream and turn every record in it into a JSON object.
#[derive(Debug, Parser)]
#[command(name = "streamer", version, about, after_help = EXAMPLES, after_long_help = help::top_long_help())]
pub struct Cli {
    /// Flags of the pipeline and the output; accepted before or after the subcommand.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// Where the records come from.
    #[command(subcommand)]
    pub command: Command,
    /// The ids of the flags typed on the command line (not taken from a
    /// default or the environment); filled by [`parse_args`], empty when
    /// parsed otherwise.
    #[arg(skip)]
    pub given: BTreeSet<String>,
}

impl Cli {
    /// Whether the flag with this id (its field's name) was typed.
    pub fn typed(&self, id: &str) -> bool {
        self.given.contains(id)
    }
}

/// Flags of the pipeline and output, shared by every subcommand.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Write records to PATH instead of stdout (`-` is stdout), or to a Kafka topic with `kafka://TOPIC`.
    #[arg(short, long, global = true, value_name = "PATH", default_value = "-", help_heading = OUTPUT)]
    pub output: String,
    /// Kafka brokers, for `streamer kafka` and `-o kafka://TOPIC`.
    #[arg(
        long,
        global = true,
        env = "STREAMER_BROKERS",
        default_value = "localhost:9092",
        value_name = "HOST:PORT,...",
        help_heading = KAFKA
    )]
    pub brokers: String,
    /// A librdkafka setting for the Kafka clients (security, tuning), repeatable; wins over streamer's defaults.
    #[arg(short = 'X', global = true, value_name = "KEY=VALUE", value_parser = parse_setting, help_heading = KAFKA)]
    pub kafka_settings: Vec<(String, String)>,
    /// TLS and SASL for the Kafka clients (`--tls*`, `--sasl-*`).
    #[command(flatten)]
    pub security: SecurityArgs,
    /// With `-o kafka://TOPIC`: each message's key is this field of the record.
    #[arg(long, global = true, value_name = "FIELD", help_heading = KAFKA)]
    pub key: Option<String>,
    /// With `-o kafka://TOPIC`: the codec of the produced batches (librdkafka's
    /// compression.type; -X compression.type=... wins).
    #[arg(long, global = true, value_enum, value_name = "CODEC", help_heading = KAFKA)]
    pub compression: Option<Compression>,
    /// How records are written.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t,
        value_name = "FORMAT",
        help_heading = OUTPUT
    )]
    pub output_format: OutputFormat,
    /// Add an "_origin" object to each record saying where it came from
    /// (under "_origin_2", "_origin_3", ... if the record has "_origin" already).
    #[arg(long, global = true, help_heading = OUTPUT)]
    pub origin: bool,
    /// What to do with a bad record: skip it (warn, count, go on) or stop the run.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t,
        value_name = "POLICY",
        help_heading = OUTPUT
    )]
    pub on_error: OnError,
    /// Also write each rejected record (raw text, origin, reason) to PATH as a JSON line
    /// (a file: `-` is refused).
    #[arg(long, global = true, value_name = "PATH", help_heading = OUTPUT)]
    pub dead_letter: Option<PathBuf>,
    /// Add to the end of the -o and --dead-letter files instead of emptying them first.
    /// A last line cut short by a crash (one that cannot be a whole record) is removed first,
    /// with a warning; CSV output
    /// follows the existing header's columns. A run that resumes from saved positions
    /// (`streamer kafka`'s committed offsets, a `--checkpoint` file that exists) refuses to
    /// empty a non-empty -o or --dead-letter file: it needs --append (or another path).
    #[arg(short, long, global = true, help_heading = OUTPUT)]
    pub append: bool,
    /// Keep only the records for which EXPR holds, as `age >= 18 and (name == "Bob" or
    /// city contains "York")`: == != < <= > >= (as numbers when both sides are), contains,
    /// =~ "regex", and, or, not, parentheses; an odd field name quoted as ."first name".
    /// A comparison with a field the record lacks is false. Order: --infer-types, then
    /// --filter (on the input's field names), then --rename, then --select.
    #[arg(long, global = true, value_name = "EXPR", help_heading = PROCESSING)]
    pub filter: Option<String>,
    /// Rename field OLD to NEW (repeatable, or comma-separated); after --filter, before
    /// --select. A field already named NEW is replaced by the renamed one.
    #[arg(
        long,
        global = true,
        value_name = "OLD=NEW",
        value_delimiter = ',',
        help_heading = PROCESSING
    )]
    pub rename: Vec<String>,
    /// Keep only these fields, in this order (names after --rename); a field a record
    /// lacks is left out of it. CSV output: these are the columns.
    #[arg(
        long,
        global = true,
        value_name = "FIELD,...",
        value_delimiter = ',',
        help_heading = PROCESSING
    )]
    pub select: Option<Vec<String>>,
    /// CSV and line values that read as numbers (42, -1.5, 1e3, 0xff; not 007), true/false,
    /// or empty become JSON numbers, booleans, null (as Miller infers them); JSON input
    /// keeps its types. Before --filter.
    #[arg(long, global = true, help_heading = PROCESSING)]
    pub infer_types: bool,
    /// Stop after N records.
    #[arg(short = 'n', long, global = true, value_name = "N", visible_alias = "max-records", help_heading = LIMITS)]
    pub limit: Option<u64>,
    /// Records each channel of the pipeline holds at most (memory bound).
    #[arg(long, global = true, value_name = "N", default_value_t = DEFAULT_BUFFER_RECORDS as u64,
          value_parser = clap::value_parser!(u64).range(1..), help_heading = LIMITS)]
    pub buffer_records: u64,
    /// Records moved through the pipeline together at most.
    #[arg(long, global = true, value_name = "N", default_value_t = DEFAULT_BATCH_RECORDS as u64,
          value_parser = clap::value_parser!(u64).range(1..), help_heading = LIMITS)]
    pub batch_records: u64,
    /// No summary line, and only errors in the log.
    #[arg(short, long, global = true, help_heading = LOGGING)]
    pub quiet: bool,
    /// More log output (-v: info, -vv: debug, -vvv: trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, help_heading = LOGGING)]
    pub verbose: u8,
    /// Serve Prometheus metrics at http://ADDR/metrics while the run lasts (host:port; port 0 picks a free port, printed at start).
    #[arg(long, global = true, value_name = "ADDR", env = "STREAMER_METRICS", help_heading = LOGGING)]
    pub metrics: Option<String>,
    /// No live progress line (shown only when stderr is a terminal, and never with -q).
    #[arg(long, global = true, help_heading = LOGGING)]
    pub no_progress: bool,
    /// How stderr lines are written: text, or one JSON object per line (the log, errors and the summary alike).
    #[arg(long, global = true, value_enum, default_value_t, env = "STREAMER_LOG_FORMAT",
          value_name = "FORMAT", help_heading = LOGGING)]
    pub log_format: LogFormat,
    // --exactly-once (issue 16): one block.
    /// With `streamer kafka` and -o kafka://TOPIC: write the records and commit the input's offsets in one Kafka transaction, so that a read_committed reader of the output sees each input record once, whatever crashes.
    #[arg(long, global = true, help_heading = KAFKA)]
    pub exactly_once: bool,
    /// With --exactly-once: how long a transaction stays open before it commits (a read_committed reader sees its records only then).
    #[arg(long, global = true, value_name = "DURATION", default_value = "100ms", value_parser = parse_transaction_interval, help_heading = KAFKA)]
    pub transaction_interval: Duration,
}

/// The subcommands: the sources, and the tools that print and run nothing.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read files (`-` is stdin), in the order given.
    #[command(after_help = FILE_EXAMPLES)]
    File(FileArgs),
    /// Listen on a TCP address; every frame any client sends is a record.
    #[command(after_help = TCP_EXAMPLES, after_long_help = help::tcp_long_help())]
    Tcp(TcpArgs),
    /// Consume Kafka topics as a member of a consumer group (at-least-once).
    #[command(after_help = KAFKA_EXAMPLES)]
    Kafka(KafkaArgs),
    /// Print a completion script or the man page (runs nothing).
    #[command(flatten)]
    Tool(Tool),
}

/// `streamer kafka`.
#[derive(Debug, Args)]
pub struct KafkaArgs {
    /// A topic to consume, repeatable; one starting with `^` is a regular expression.
    #[arg(short, long = "topic", required = true, value_name = "TOPIC", help_heading = INPUT)]
    pub topics: Vec<String>,
    /// The consumer group: processes in one group share the partitions.
    #[arg(short, long, default_value = "streamer", value_name = "GROUP", env = "STREAMER_GROUP", help_heading = INPUT)]
    pub group: String,
    /// Where a group without a committed offset starts reading.
    #[arg(long, value_enum, default_value_t, value_name = "WHERE", help_heading = INPUT)]
    pub offset_reset: OffsetReset,
    /// Stop, after committing, once every assigned partition is read up to its end offset as of its assignment.
    #[arg(long, help_heading = INPUT)]
    pub until_end: bool,
    /// What message values hold (csv: each message is rows, the first a header unless --no-header).
    #[arg(long, value_enum, default_value = "jsonl", value_name = "FORMAT", help_heading = INPUT)]
    pub format: Format,
    #[command(flatten)]
    pub csv: CsvArgs,
    /// Static group membership (group.instance.id): a member restarted with the same ID gets its partitions back at once, without waiting out its session.
    #[arg(long, value_name = "ID", value_parser = parse_name, help_heading = INPUT)]
    pub instance_id: Option<String>,
    /// Start each partition at its first message at or after TIME (RFC 3339, or epoch milliseconds), over the group's committed offsets, on this run's first assignment of it; later runs resume from the commits.
    #[arg(long, value_name = "TIME", value_parser = parse_timestamp, help_heading = INPUT)]
    pub from_timestamp: Option<i64>,
    /// Start TOPIC's PARTITION at OFFSET on this run's first assignment of it, over the committed offset (and --from-timestamp); repeatable.
    #[arg(long = "from", value_name = "TOPIC:PARTITION:OFFSET", value_parser = parse_from, help_heading = INPUT)]
    pub from: Vec<PartitionOffset>,
    /// Pass a message without a value (a tombstone), or with an empty one, through as {"_key":KEY,"_value":null} (or ""), instead of rejecting it.
    #[arg(long, help_heading = INPUT)]
    pub keep_tombstones: bool,
    /// With -v, or when stderr is a terminal with --no-progress: a stats line (rate, lag and committed offset per partition) this often; 0 turns it off.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_stats_interval, help_heading = LOGGING)]
    pub stats_interval: Duration,
}

/// `streamer file`.
#[derive(Debug, Args)]
pub struct FileArgs {
    /// The files to read, in order; `-` reads stdin. A quoted glob pattern ('logs/*.log') reads its matches together.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<String>,
    /// What the input holds [default: from the extension: .csv, .jsonl/.ndjson, else lines].
    #[arg(long, value_enum, value_name = "FORMAT", help_heading = INPUT)]
    pub format: Option<Format>,
    #[command(flatten)]
    pub csv: CsvArgs,
    /// A longer line or CSV row is rejected alone, never buffered; reading goes on with the next (bytes as in the file, quotes included, its line end not; K, M, G suffixes; at most 1G).
    #[arg(long, value_name = "BYTES", default_value = FILE_DEFAULTS.max_record_bytes.as_str(), value_parser = parse_max_record_bytes, help_heading = LIMITS)]
    pub max_record_bytes: usize,
    /// CSV: how many pieces of a file or stdin are parsed at once, each on its own worker, the output in input order; each worker holds about 2 MB [default: the number of cores, at most 16; 1: one reader].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=16), help_heading = INPUT)]
    pub csv_workers: Option<u64>,
    /// Files that keep growing: at the end of each, wait for more, as `tail -F` does (through rotation, truncation and deletion); a pattern's new matches are read too. Ends on Ctrl-C/SIGTERM.
    #[arg(short = 'F', long, help_heading = INPUT)]
    pub follow: bool,
    /// With --follow: how often each file (and each pattern's folder) is looked at without a file-system event.
    #[arg(long, value_name = "DURATION", default_value = FILE_DEFAULTS.poll_interval.as_str(), value_parser = parse_duration, help_heading = INPUT)]
    pub poll_interval: Duration,
    /// Most files open at once when several are read together (a pattern, or --follow); the others wait.
    #[arg(long, value_name = "N", default_value_t = FileOptions::default().max_open_files as u64,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000), help_heading = LIMITS)]
    pub max_open_files: u64,
    /// Save, per file, how far the output has delivered its records to PATH, and resume each file from there.
    #[arg(long, value_name = "PATH", help_heading = INPUT)]
    pub checkpoint: Option<PathBuf>,
    /// How often --checkpoint is written (also at the end of the run).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration, help_heading = INPUT)]
    pub checkpoint_interval: Duration,
    /// How each file (and stdin) is decompressed as it is read: auto finds gzip, zstd or bzip2 from its first bytes (the format then comes from the name without .gz/.zst/.bz2); a compressed file is read once, never followed.
    #[arg(long, value_enum, value_name = "CODEC", default_value_t, help_heading = INPUT)]
    pub decompress: Decompress,
}

/// `streamer tcp`.
#[derive(Debug, Args)]
pub struct TcpArgs {
    /// Listen on ADDR (host:port); port 0 picks a free port, printed at start.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8888", help_heading = INPUT)]
    pub bind: String,
    /// How a connection's bytes are cut into frames: lines ending in \n (the last may
    /// lack it), or a 4-byte big-endian length then that many bytes.
    #[arg(long, value_enum, value_name = "FRAMING", default_value_t, help_heading = INPUT)]
    pub framing: Framing,
    /// What each frame holds (csv: one row per frame; see below).
    #[arg(long, value_enum, value_name = "FORMAT", default_value = "lines", help_heading = INPUT)]
    pub format: Format,
    #[command(flatten)]
    pub csv: CsvArgs,
    /// A longer frame is rejected and skipped; the connection goes on (bytes; K, M, G suffixes).
    #[arg(long, value_name = "BYTES", default_value = "1M", value_parser = parse_bytes, help_heading = LIMITS)]
    pub max_frame_bytes: usize,
    /// Most bytes all unfinished frames together may hold beyond 64 KiB per
    /// connection; when it is spent, connections with a long unfinished frame
    /// wait, unread (bytes; K, M, G suffixes; at least --max-frame-bytes).
    #[arg(long, value_name = "BYTES", default_value = "128M", value_parser = parse_bytes, help_heading = LIMITS)]
    pub max_buffered_bytes: usize,
    /// Most clients served at once; the next ones wait until one leaves.
    #[arg(long, value_name = "N", default_value_t = 1024,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000), help_heading = LIMITS)]
    pub max_connections: u64,
    /// Close a connection that sends nothing for this long (500ms, 30s, 5m, 1h; 0: never).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration, help_heading = LIMITS)]
    pub idle_timeout: Duration,
    /// A frame over 64 KiB, which holds a share of --max-buffered-bytes, must end
    /// within this, else it is rejected and its connection closed (0: no limit).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration, help_heading = LIMITS)]
    pub frame_timeout: Duration,
    /// After Ctrl-C/SIGTERM, how long open connections may still send (0: not at all).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration, help_heading = LIMITS)]
    pub drain_timeout: Duration,
    #[command(flatten)]
    pub security: TcpSecurityArgs,
}

/// `streamer tcp`'s access control, TLS and fair-service flags. Not
/// `--tls-cert`/`--tls-key`: those are the Kafka clients' own certificate,
/// and `streamer tcp -o kafka://T` may need both.
#[derive(Debug, Args)]
pub struct TcpSecurityArgs {
    /// Serve only clients in this network (CIDR: 10.0.0.0/8, fd00::/8; a bare address is
    /// that one host); repeatable. Others are closed at accept, before any byte is read.
    #[arg(long, value_name = "CIDR", help_heading = SECURITY)]
    pub allow: Vec<Cidr>,
    /// Most connections open at once from one client address; the next ones are closed at
    /// accept (0: no limit).
    #[arg(long, value_name = "N", default_value_t = 0, help_heading = SECURITY)]
    pub max_connections_per_ip: u64,
    /// Close a connection that sends fewer bytes a second than this, on average over
    /// each --min-rate-window (bytes; K, M suffixes; default: never). Against clients that
    /// hold slots by trickling bytes.
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes, help_heading = SECURITY)]
    pub min_rate: Option<usize>,
    /// The window --min-rate is measured over.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration, requires = "min_rate", hide_short_help = true, help_heading = SECURITY)]
    pub min_rate_window: Duration,
    /// Serve TLS with this certificate chain (PEM file, the server's certificate first; with
    /// --server-key; --client-ca and --handshake-timeout in --help).
    #[arg(long, value_name = "FILE", requires = "server_key", help_heading = SECURITY)]
    pub server_cert: Option<PathBuf>,
    /// The private key of --server-cert (unencrypted PEM file).
    #[arg(long, value_name = "FILE", requires = "server_cert", hide_short_help = true, help_heading = SECURITY)]
    pub server_key: Option<PathBuf>,
    /// Require a client certificate signed by these CA certificates (PEM file): mutual TLS.
    #[arg(long, value_name = "FILE", requires = "server_cert", hide_short_help = true, help_heading = SECURITY)]
    pub client_ca: Option<PathBuf>,
    /// A TLS client must finish its handshake within this, else it is closed.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration, requires = "server_cert", hide_short_help = true, help_heading = SECURITY)]
    pub handshake_timeout: Duration,
}

/// CSV flags, shared by every source that can read CSV.
#[derive(Debug, Args)]
pub struct CsvArgs {
    /// CSV cell separator: one ASCII character, or `tab`.
    #[arg(short, long, value_name = "CHAR", default_value = FILE_DEFAULTS.delimiter.as_str(), value_parser = parse_delimiter, help_heading = INPUT)]
    pub delimiter: u8,
    /// The CSV has no header row: keys are c1, c2, ...
    #[arg(long, help_heading = INPUT)]
    pub no_header: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        parse_args(std::iter::once("streamer").chain(args.iter().copied()))
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

    #[test]
    fn cli_is_well_formed() {
        help::command().debug_assert();
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
    fn processing_flags_take_lists() {
        let cli = parse(&[
            "file",
            "a",
            "--select",
            "a,b",
            "--select",
            "c",
            "--rename",
            "x=y,p=q",
            "--rename",
            "m=n",
            "--filter",
            "a > 1",
            "--infer-types",
        ])
        .unwrap();
        assert_eq!(
            cli.global.select,
            Some(vec!["a".into(), "b".into(), "c".into()])
        );
        assert_eq!(cli.global.rename, ["x=y", "p=q", "m=n"]);
        assert_eq!(cli.global.filter.as_deref(), Some("a > 1"));
        assert!(cli.global.infer_types);
        let plain = parse(&["file", "a"]).unwrap();
        assert!(plain.global.select.is_none() && plain.global.rename.is_empty());
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
    fn csv_workers_are_counted_from_one_and_default_to_the_cores() {
        let cli = parse(&["file", "a", "--csv-workers", "3"]).unwrap();
        assert_eq!(file_args(&cli).csv_workers, Some(3));
        assert_eq!(file_args(&parse(&["file", "a"]).unwrap()).csv_workers, None);
        for bad in ["0", "17", "x"] {
            assert!(
                parse(&["file", "a", "--csv-workers", bad]).is_err(),
                "{bad}"
            );
        }
        let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get());
        assert_eq!(FileOptions::default().csv_workers, cores.min(16));
    }

    #[test]
    fn global_flags_work_around_tcp() {
        let cli = parse(&["--origin", "tcp", "--bind", "127.0.0.1:0", "-o", "x.jsonl"]).unwrap();
        assert!(cli.global.origin);
        assert_eq!(cli.global.output, "x.jsonl");
        assert_eq!(tcp_args(&cli).bind, "127.0.0.1:0");
    }

    #[test]
    fn file_defaults_are_the_file_sources() {
        let cli = parse(&["file", "a"]).unwrap();
        let defaults = FileOptions::default();
        assert_eq!(file_args(&cli).max_record_bytes, defaults.max_record_bytes);
        assert_eq!(file_args(&cli).csv.delimiter, defaults.delimiter);
        assert_eq!(!file_args(&cli).csv.no_header, defaults.header);
        assert_eq!(FILE_DEFAULTS.max_record_bytes, "16M");
    }

    #[test]
    fn follow_and_checkpoint_flags() {
        let cli = parse(&["file", "-F", "logs/*.log", "--checkpoint", "cp.json"]).unwrap();
        let args = file_args(&cli);
        assert!(args.follow);
        assert_eq!(args.poll_interval, FileOptions::default().poll_interval);
        assert_eq!(args.poll_interval, Duration::from_millis(250));
        assert_eq!(args.max_open_files, 256);
        assert_eq!(args.checkpoint, Some(PathBuf::from("cp.json")));
        assert_eq!(args.checkpoint_interval, Duration::from_secs(1));
        let cli = parse(&[
            "file",
            "a",
            "--poll-interval",
            "1s",
            "--max-open-files",
            "8",
        ])
        .unwrap();
        assert!(!file_args(&cli).follow);
        assert_eq!(file_args(&cli).poll_interval, Duration::from_secs(1));
        assert_eq!(file_args(&cli).max_open_files, 8);
        assert!(parse(&["file", "a", "--max-open-files", "0"]).is_err());
    }

    impl Cli {
        fn command_format(&self) -> Option<Format> {
            file_args(self).format
        }
    }
}
