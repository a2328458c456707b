//! Flags that make no sense together, refused before anything starts,
//! each with what to do instead: a flag that the run would silently
//! ignore (`--poll-interval` without `--follow`, `--delimiter` on JSON
//! lines, `--key` without a Kafka output, `--tls-ca` with no Kafka
//! client). Only flags typed on the command line count ([`Cli::typed`]):
//! a deployment's environment (`STREAMER_TLS_CA`, ...) applies where it
//! can and is ignored elsewhere.

use crate::cli::{Cli, Command, GlobalArgs};
use crate::codec::Format;
use crate::exactly_once::transaction_timeout;
use crate::pipeline::OnError;
use crate::sink::OutputFormat;

/// The Kafka client flags, by id: they configure `streamer kafka` and the
/// `-o kafka://` producer, and nothing else. `--brokers` is left out: like
/// `STREAMER_BROKERS`, wrappers pass it to every run, which is harmless.
const KAFKA_CLIENT_FLAGS: [&str; 8] = [
    "kafka_settings",
    "tls",
    "tls_ca",
    "tls_cert",
    "tls_key",
    "sasl_mechanism",
    "sasl_user",
    "sasl_password_file",
];

/// The first combination of `cli`'s flags that makes no sense, as the
/// message that says what to do instead.
pub(super) fn check(cli: &Cli) -> Result<(), String> {
    check_kafka_output(&cli.global)?;
    check_exactly_once(cli)?;
    if !kafka_client(cli) {
        if let Some(id) = KAFKA_CLIENT_FLAGS.iter().find(|id| cli.typed(id)) {
            return Err(format!(
                "{} configures the Kafka clients, and this run has none: it applies to \
                 `streamer kafka` and -o kafka://TOPIC; drop it",
                flag(id)
            ));
        }
    }
    match &cli.command {
        Command::File(args) => {
            let csv = args.format == Some(Format::Csv)
                || (args.format.is_none()
                    && args
                        .paths
                        .iter()
                        .any(|path| Format::from_path(path) == Format::Csv));
            if !csv {
                let what = match args.format {
                    Some(format) => format!("--format {}", format_name(format)),
                    None => "not CSV by its name (.csv, .tsv)".to_string(),
                };
                check_csv_only(cli, &["delimiter", "no_header", "csv_workers"], &what)?;
            }
            let stdin = args.paths.iter().any(|path| path == "-");
            if stdin && args.follow {
                return Err(
                    "--follow reads files: `-` (standard input) cannot be followed \
                     (it is read to its end anyway): drop -F, or name a file"
                        .into(),
                );
            }
            if stdin && args.checkpoint.is_some() {
                return Err(
                    "--checkpoint resumes files, and standard input (`-`) cannot be \
                            read again from a position: drop --checkpoint, or name a file"
                        .into(),
                );
            }
            if cli.typed("poll_interval") && !args.follow {
                return Err("--poll-interval applies with --follow: add -F, or drop \
                            --poll-interval"
                    .into());
            }
            if cli.typed("checkpoint_interval") && args.checkpoint.is_none() {
                return Err("--checkpoint-interval applies with --checkpoint: add \
                            --checkpoint PATH, or drop --checkpoint-interval"
                    .into());
            }
        }
        Command::Tcp(args) if args.format != Format::Csv => {
            let what = format!("--format {}", format_name(args.format));
            check_csv_only(cli, &["delimiter", "no_header"], &what)?;
        }
        Command::Kafka(args) => {
            if args.format != Format::Csv {
                let what = format!("--format {}", format_name(args.format));
                check_csv_only(cli, &["delimiter", "no_header"], &what)?;
            }
            if cli.global.quiet && cli.typed("stats_interval") {
                return Err("-q turns the stats line off: drop --stats-interval, or -q".into());
            }
        }
        Command::Tcp(_) | Command::Tool(_) => {}
    }
    Ok(())
}

/// `--exactly-once` (issue 16) where it cannot hold: the input's offsets
/// and the output must be in one Kafka transaction, and every record must
/// either be in it or stop the run.
fn check_exactly_once(cli: &Cli) -> Result<(), String> {
    let global = &cli.global;
    if !global.exactly_once {
        if cli.typed("transaction_interval") {
            return Err("--transaction-interval applies with --exactly-once: add \
                        --exactly-once, or drop --transaction-interval"
                .into());
        }
        return Ok(());
    }
    if !matches!(cli.command, Command::Kafka(_)) {
        return Err(
            "--exactly-once commits the input's Kafka offsets in the output's transaction: \
             it needs `streamer kafka` as the source; drop --exactly-once (a file is read \
             at-least-once: --checkpoint)"
                .into(),
        );
    }
    if !kafka_output(global) {
        return Err(
            "--exactly-once writes the output in Kafka transactions: it needs \
             -o kafka://TOPIC; drop --exactly-once to write elsewhere (at-least-once: a \
             restart may write records again)"
                .into(),
        );
    }
    if cli.typed("on_error") && global.on_error == OnError::Skip {
        return Err(
            "--exactly-once with --on-error skip would let rejected records go outside the \
             transaction (a dead-letter Kafka topic is not supported): drop --on-error skip; \
             under --exactly-once a bad record aborts the transaction and stops the run, \
             naming its topic/partition@offset"
                .into(),
        );
    }
    if global.dead_letter.is_some() {
        return Err(
            "--dead-letter writes a file, which cannot be part of a Kafka transaction (a \
             crash would repeat its lines): drop --dead-letter with --exactly-once"
                .into(),
        );
    }
    if global.limit.is_some() {
        return Err(
            "--limit stops in the middle of a batch, whose records' offsets then miss the \
             last transaction (a rerun would write them again): drop --limit with \
             --exactly-once (--until-end stops at the end of the input)"
                .into(),
        );
    }
    // The last -X of a key is the one librdkafka uses; it compares values
    // case-insensitively (and -X values are trimmed as it trims them).
    let setting = |name: &str| {
        global
            .kafka_settings
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.to_ascii_lowercase())
    };
    if setting("isolation.level").as_deref() == Some("read_uncommitted") {
        return Err(
            "-X isolation.level=read_uncommitted would copy the messages of aborted \
             transactions too (duplicates in the output): drop it with --exactly-once, which \
             reads its input read_committed"
                .into(),
        );
    }
    // The consumer's own offset commits would move the group past records
    // whose transaction then aborts: they would be lost.
    for key in ["enable.auto.commit", "enable.auto.offset.store"] {
        if matches!(setting(key).as_deref(), Some("true" | "1" | "yes" | "on")) {
            return Err(format!(
                "-X {key}=true would commit the input's offsets outside the transaction \
                 (an aborted transaction's records would then be lost): drop it with \
                 --exactly-once, which commits the offsets in the output's transaction"
            ));
        }
    }
    if global.transaction_interval.is_zero() {
        return Err("--transaction-interval must be more than 0".into());
    }
    if let Some(timeout) = setting("transaction.timeout.ms") {
        match transaction_timeout(global.transaction_interval, &global.kafka_settings) {
            None => {
                return Err(format!(
                    "-X transaction.timeout.ms={timeout} is not a number of milliseconds"
                ))
            }
            Some(timeout) if timeout <= global.transaction_interval => {
                return Err(format!(
                "--transaction-interval ({} ms) is not shorter than -X transaction.timeout.ms={}: \
                     the broker would abort every transaction before its commit; set the \
                     timeout above twice the interval, or drop it (streamer then sets it so)",
                global.transaction_interval.as_millis(),
                timeout.as_millis()
            ))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// `--key`, `--compression` and `--output-format csv` against the output:
/// the first two need a `kafka://` one, the last cannot have it.
fn check_kafka_output(global: &GlobalArgs) -> Result<(), String> {
    // It failed only at the first rejected record ("cannot write
    // kafka://...: No such file or directory").
    if let Some(path) = global
        .dead_letter
        .as_ref()
        .filter(|path| path.to_string_lossy().starts_with("kafka://"))
    {
        return Err(format!(
            "--dead-letter {}: the dead letters go to a file (a Kafka topic is not \
             supported): give a file path",
            path.display()
        ));
    }
    let kafka = kafka_output(global);
    if !kafka && global.key.is_some() {
        return Err(
            "--key names the field that keys each Kafka message: it needs \
                    -o kafka://TOPIC; drop --key to write elsewhere"
                .into(),
        );
    }
    if !kafka && global.compression.is_some() {
        return Err(
            "--compression is the codec of the batches produced to Kafka: it \
                    needs -o kafka://TOPIC; drop --compression to write elsewhere \
                    (compress a file with a pipe: | zstd > out.jsonl.zst)"
                .into(),
        );
    }
    if let (Some(key), Some(select)) = (&global.key, &global.select) {
        if !select.contains(key) {
            return Err(format!(
                "--key {key}: --select leaves `{key}` out of every record, so no message \
                 would have a key: add `{key}` to --select"
            ));
        }
    }
    if global.origin && global.select.is_some() && global.output_format == OutputFormat::Csv {
        return Err(
            "--origin adds an `_origin` object, and the CSV columns are --select's \
             fields: drop --origin, or write JSON lines"
                .into(),
        );
    }
    if kafka && global.output_format == OutputFormat::Csv {
        return Err(
            "--output-format csv does not apply to a kafka:// output (its \
                    messages are JSON): drop --output-format csv"
                .into(),
        );
    }
    Ok(())
}

/// The first of the CSV-only flags `ids` typed for an input that is not
/// CSV (`what` says why).
fn check_csv_only(cli: &Cli, ids: &[&str], what: &str) -> Result<(), String> {
    match ids.iter().find(|id| cli.typed(id)) {
        Some(id) => Err(format!(
            "{} applies to CSV input, and this input is {what}: add --format csv if it \
             is CSV, or drop {}",
            flag(id),
            flag(id)
        )),
        None => Ok(()),
    }
}

/// Whether the run has a Kafka client: it reads `streamer kafka`, or
/// writes `-o kafka://TOPIC`.
pub(super) fn kafka_client(cli: &Cli) -> bool {
    kafka_output(&cli.global) || matches!(cli.command, Command::Kafka(_))
}

/// Whether `-o` is a Kafka topic.
fn kafka_output(global: &GlobalArgs) -> bool {
    global.output.starts_with("kafka://")
}

/// The flag an argument id is typed as (`--poll-interval`, `-X`).
fn flag(id: &str) -> String {
    let command = crate::cli::help::command();
    let arg = command
        .get_arguments()
        .chain(
            command
                .get_subcommands()
                .flat_map(|sub| sub.get_arguments()),
        )
        .find(|arg| arg.get_id() == id);
    match arg.map(|arg| (arg.get_long(), arg.get_short())) {
        Some((Some(long), _)) => format!("--{long}"),
        Some((None, Some(short))) => format!("-{short}"),
        _ => id.to_string(),
    }
}

/// A format's name as `--format` takes it.
fn format_name(format: Format) -> String {
    use clap::ValueEnum;
    format.to_possible_value().map_or_else(
        || format!("{format:?}"),
        |value| value.get_name().to_string(),
    )
}
