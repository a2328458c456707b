//! How `--help` is laid out: the headings every flag is grouped under, in
//! the order they are shown; each subcommand's examples and notes; and
//! [`command`], which arranges clap's command so that every subcommand
//! lists its own flags and the shared ones under those headings, the
//! Kafka client flags last (and out of `streamer file -h` and
//! `streamer tcp -h`, where they apply only to `-o kafka://`).
//!
//! A new flag takes `help_heading = <one of the constants below>`; a new
//! heading is a new constant, added to [`HEADINGS`] where it should show.

use clap::{Arg, CommandFactory};

use super::Cli;

/// Where the records come from and how they are read.
pub const INPUT: &str = "Input";
/// Where the records go and how they are written.
pub const OUTPUT: &str = "Output";
/// What is done to each record between reading and writing.
pub const PROCESSING: &str = "Processing";
/// The Kafka clients: brokers, settings, TLS, SASL, and the producer's key
/// and compression.
pub const KAFKA: &str = "Kafka (for -o kafka://TOPIC and streamer kafka)";
/// Bounds on memory, sizes, counts and waits.
pub const LIMITS: &str = "Limits";
/// What streamer says on stderr.
pub const LOGGING: &str = "Logging";
/// Who may connect to `streamer tcp`, over TLS or not, and how much of it
/// one client may hold.
pub const SECURITY: &str = "Security";

/// The headings, in the order `--help` shows them.
pub const HEADINGS: [&str; 7] = [INPUT, OUTPUT, PROCESSING, LIMITS, SECURITY, LOGGING, KAFKA];

/// The subcommands that read no Kafka topic: their `-h` leaves the Kafka
/// client flags out (`--help` lists them last).
const WITHOUT_KAFKA_INPUT: [&str; 2] = ["file", "tcp"];

/// The subcommands that run a pipeline, and so take the shared flags.
const SOURCES: [&str; 3] = ["file", "tcp", "kafka"];

/// The subcommands that print and run nothing ([`super::tools`]).
const TOOLS: [&str; 2] = ["completions", "man"];

/// The whole command line, laid out for `--help`: what [`super::parse`]
/// parses and the completions and man page describe.
pub fn command() -> clap::Command {
    let mut command = Cli::command();
    // Shared flags are global (accepted before or after the subcommand);
    // clap would append them to each subcommand's help in its own order,
    // mixed with the subcommand's flags. Each source gets its own copy,
    // so that its help groups them with its own flags by heading.
    let shared: Vec<Arg> = command
        .get_arguments()
        .filter(|arg| arg.is_global_set())
        .cloned()
        .collect();
    for name in SOURCES {
        let shared = shared.clone();
        command = command.mut_subcommand(name, |mut sub| {
            let hide_kafka = WITHOUT_KAFKA_INPUT.contains(&name);
            for arg in shared {
                let kafka = arg.get_help_heading() == Some(KAFKA);
                sub = sub.arg(arg.display_order(None).hide_short_help(kafka && hide_kafka));
            }
            by_heading(sub)
        });
    }
    // The tools run no pipeline: the shared flags are accepted (they are
    // global) but not listed.
    for name in TOOLS {
        let shared = shared.clone();
        command = command.mut_subcommand(name, |sub| {
            shared
                .into_iter()
                .fold(sub, |sub, arg| sub.arg(arg.hide(true)))
        });
    }
    by_heading(command)
}

/// `command` with its arguments in [`HEADINGS`] order (clap shows the
/// headings in the order their first argument comes), each heading's in
/// the order they were declared.
fn by_heading(mut command: clap::Command) -> clap::Command {
    let rank = |arg: &Arg| {
        arg.get_help_heading()
            .and_then(|heading| HEADINGS.iter().position(|known| *known == heading))
    };
    let mut ids: Vec<(Option<usize>, String)> = command
        .get_arguments()
        .map(|arg| (rank(arg), arg.get_id().to_string()))
        .collect();
    ids.sort_by_key(|(rank, _)| *rank);
    // Taking an argument out and putting it back moves it to the end.
    for (_, id) in ids {
        command = command.mut_arg(id, |arg| arg);
    }
    command
}

/// What each exit status means; shown by `--help` and the README.
pub const EXIT_CODES: &str = "\
Exit status:
  0  every record was processed (also: the output's reader went away, as in `| head`)
  1  the run failed (unreadable input, unwritable output, --on-error stop)
  2  bad command line
  3  the run finished, but some records were rejected (see the warnings or --dead-letter)";

/// `streamer --help`'s examples, one of each subcommand.
pub const EXAMPLES: &str = "\
Examples:
  # a CSV file to NDJSON on stdout
  streamer file data/ticks.csv
  # a log folder followed into Kafka, resuming where it stopped
  streamer file -F 'logs/*.log' --checkpoint logs.checkpoint -o kafka://logs
  # a TCP listener: 4-byte length, then a JSON object
  streamer tcp --bind 0.0.0.0:9000 --framing length-delimited --format jsonl -o events.jsonl
  # a Kafka topic copied to a file, then exit
  streamer kafka -t orders --until-end -o orders.jsonl -a
  # shell completions
  streamer completions bash > ~/.local/share/bash-completion/completions/streamer";

/// `streamer file --help`'s examples.
pub const FILE_EXAMPLES: &str = "\
Examples:
  # a CSV file to NDJSON on stdout; the first 10 records
  streamer file data/ticks.csv -n 10
  # semicolon-separated values from stdin, written as CSV
  streamer file - --format csv -d ';' --output-format csv < export.csv
  # a log folder followed into Kafka, resuming where it stopped
  streamer file -F 'logs/*.log' --checkpoint logs.checkpoint -o kafka://logs
  # compressed JSON lines, bad ones kept aside
  streamer file events.jsonl.gz -o events.jsonl --dead-letter bad.jsonl";

/// `streamer tcp --help`'s examples.
pub const TCP_EXAMPLES: &str = "\
Examples:
  # lines from any client on port 8888 to stdout
  streamer tcp
  # length-delimited JSON frames on every interface into Kafka
  streamer tcp --bind 0.0.0.0:9000 --framing length-delimited --format jsonl -o kafka://events
  # CSV rows, a header first on each connection, to a file
  streamer tcp --bind 127.0.0.1:0 --format csv -d tab -o rows.jsonl";

/// `streamer kafka --help`'s examples.
pub const KAFKA_EXAMPLES: &str = "\
Examples:
  # a topic to a file, resuming from the group's commits on the next run
  streamer kafka -t orders -g archive -o orders.jsonl -a
  # everything there is now, then exit (a batch job)
  streamer kafka -t orders --until-end -o orders.jsonl -a
  # every topic matching a pattern into another, zstd-compressed
  streamer kafka -t '^logs-.*' -g copier -o kafka://all-logs --compression zstd
  # over TLS and SASL (the password from $STREAMER_SASL_PASSWORD)
  streamer kafka -t orders --brokers k1:9093 --tls --sasl-mechanism SCRAM-SHA-256 --sasl-user app";

/// `streamer completions --help`'s examples.
pub const COMPLETIONS_EXAMPLES: &str = "\
Examples:
  streamer completions bash > ~/.local/share/bash-completion/completions/streamer
  streamer completions zsh > ~/.zfunc/_streamer
  streamer completions fish > ~/.config/fish/completions/streamer.fish";

/// `streamer man --help`'s examples.
pub const MAN_EXAMPLES: &str = "\
Examples:
  streamer man > streamer.1 && man ./streamer.1";

/// How `streamer tcp` treats its clients; shown by `streamer tcp --help`.
pub const TCP_NOTES: &str = "\
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

/// `streamer tcp --help`'s text after the flags: the examples, then the
/// notes (`-h` shows only the examples).
pub fn tcp_long_help() -> String {
    format!("{TCP_EXAMPLES}\n\n{TCP_NOTES}")
}

/// `streamer --help`'s text after the flags: the examples, then the exit
/// statuses.
pub fn top_long_help() -> String {
    format!("{EXAMPLES}\n\n{EXIT_CODES}")
}
