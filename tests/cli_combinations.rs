//! Flags that make no sense together are refused before anything starts
//! (issue 13): exit status 2, a message that says what to do instead, and
//! no output file created. One case per refusal, through the binary.

mod common;

use common::{run, Dir};

/// The message `streamer ARGS` is refused with (exit 2), having checked
/// that the `-o` file it names, if any, was not created.
fn refused(dir: &Dir, args: &[&str]) -> String {
    let out = run(args);
    assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
    assert!(
        !dir.root().join("out.jsonl").exists(),
        "{args:?}: the output was created"
    );
    let first = out.stderr.lines().next().unwrap_or_default();
    first
        .strip_prefix("error: ")
        .unwrap_or_else(|| panic!("{args:?}: {}", out.stderr))
        .to_string()
}

#[test]
fn producer_flags_need_a_kafka_output() {
    let dir = Dir::new();
    let input = dir.file("a.csv", "a\n1\n");
    let out = dir.path("out.jsonl");
    assert_eq!(
        refused(&dir, &["file", &input, "-o", &out, "--key", "a"]),
        "--key names the field that keys each Kafka message: it needs -o kafka://TOPIC; \
         drop --key to write elsewhere"
    );
    assert_eq!(
        refused(&dir, &["file", &input, "-o", &out, "--compression", "zstd"]),
        "--compression is the codec of the batches produced to Kafka: it needs \
         -o kafka://TOPIC; drop --compression to write elsewhere (compress a file with a \
         pipe: | zstd > out.jsonl.zst)"
    );
    assert_eq!(
        refused(
            &dir,
            &["file", &input, "-o", "kafka://t", "--output-format", "csv"]
        ),
        "--output-format csv does not apply to a kafka:// output (its messages are JSON): \
         drop --output-format csv"
    );
}

#[test]
fn kafka_client_flags_need_a_kafka_client() {
    let dir = Dir::new();
    let input = dir.file("a.log", "x\n");
    let out = dir.path("out.jsonl");
    let says = |flag: &str| {
        format!(
            "{flag} configures the Kafka clients, and this run has none: it applies to \
             `streamer kafka` and -o kafka://TOPIC; drop it"
        )
    };
    assert_eq!(
        refused(&dir, &["file", &input, "-o", &out, "-X", "acks=1"]),
        says("-X")
    );
    let ca = dir.file("ca.pem", "-----BEGIN CERTIFICATE-----\n");
    assert_eq!(
        refused(&dir, &["tcp", "--tls-ca", &ca, "-o", &out]),
        says("--tls-ca")
    );
    assert_eq!(
        refused(
            &dir,
            &[
                "file",
                &input,
                "-o",
                &out,
                "--sasl-mechanism",
                "PLAIN",
                "--sasl-user",
                "u"
            ]
        ),
        says("--sasl-mechanism")
    );
}

#[test]
fn csv_flags_need_csv_input() {
    let dir = Dir::new();
    let jsonl = dir.file("a.jsonl", "{}\n");
    let log = dir.file("a.log", "x\n");
    let out = dir.path("out.jsonl");
    assert_eq!(
        refused(
            &dir,
            &["file", &jsonl, "--format", "jsonl", "-d", ";", "-o", &out]
        ),
        "--delimiter applies to CSV input, and this input is --format jsonl: add --format \
         csv if it is CSV, or drop --delimiter"
    );
    assert_eq!(
        refused(&dir, &["file", &log, "--no-header", "-o", &out]),
        "--no-header applies to CSV input, and this input is not CSV by its name (.csv, \
         .tsv): add --format csv if it is CSV, or drop --no-header"
    );
    assert_eq!(
        refused(
            &dir,
            &[
                "file",
                &log,
                "--format",
                "lines",
                "--csv-workers",
                "2",
                "-o",
                &out
            ]
        ),
        "--csv-workers applies to CSV input, and this input is --format lines: add \
         --format csv if it is CSV, or drop --csv-workers"
    );
    assert_eq!(
        refused(&dir, &["tcp", "--delimiter", "tab", "-o", &out]),
        "--delimiter applies to CSV input, and this input is --format lines: add --format \
         csv if it is CSV, or drop --delimiter"
    );
    assert_eq!(
        refused(&dir, &["kafka", "-t", "a", "--no-header", "-o", &out]),
        "--no-header applies to CSV input, and this input is --format jsonl: add --format \
         csv if it is CSV, or drop --no-header"
    );
    // A CSV file by its name, or by --format, takes them.
    let csv = dir.file("semi.csv", "a;b\n1;2\n");
    let ok = run(&["file", &csv, "-d", ";", "--csv-workers", "1", "-q"]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert_eq!(ok.stdout, "{\"a\":\"1\",\"b\":\"2\"}\n");
}

#[test]
fn standard_input_is_neither_followed_nor_checkpointed() {
    let dir = Dir::new();
    let out = dir.path("out.jsonl");
    let checkpoint = dir.path("cp.json");
    assert_eq!(
        refused(&dir, &["file", "-", "-F", "-o", &out]),
        "--follow reads files: `-` (standard input) cannot be followed (it is read to its \
         end anyway): drop -F, or name a file"
    );
    assert_eq!(
        refused(
            &dir,
            &["file", "-", "--checkpoint", &checkpoint, "-o", &out]
        ),
        "--checkpoint resumes files, and standard input (`-`) cannot be read again from a \
         position: drop --checkpoint, or name a file"
    );
    assert!(!dir.root().join("cp.json").exists());
}

#[test]
fn intervals_need_what_they_time() {
    let dir = Dir::new();
    let log = dir.file("a.log", "x\n");
    let out = dir.path("out.jsonl");
    assert_eq!(
        refused(&dir, &["file", &log, "--poll-interval", "1s", "-o", &out]),
        "--poll-interval applies with --follow: add -F, or drop --poll-interval"
    );
    assert_eq!(
        refused(
            &dir,
            &["file", &log, "--checkpoint-interval", "5s", "-o", &out]
        ),
        "--checkpoint-interval applies with --checkpoint: add --checkpoint PATH, or drop \
         --checkpoint-interval"
    );
    assert_eq!(
        refused(
            &dir,
            &[
                "kafka",
                "-t",
                "a",
                "-q",
                "--stats-interval",
                "5s",
                "-o",
                &out
            ]
        ),
        "-q turns the stats line off: drop --stats-interval, or -q"
    );
}

#[test]
fn defaults_and_the_environment_are_not_typed_flags() {
    // The same flags' defaults, and a deployment's STREAMER_BROKERS, are
    // no combination: a plain run works; so does --brokers, which wrappers
    // pass to every run.
    let dir = Dir::new();
    let log = dir.file("a.log", "x\n");
    let out = common::streamer()
        .args(["--brokers", "k2:9092", "file", &log, "-q"])
        .env("STREAMER_BROKERS", "k1:9092")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "{\"message\":\"x\"}\n"
    );
}

#[test]
fn a_kafka_output_that_is_read_too_is_refused() {
    let dir = Dir::new();
    // A `^pattern` that matches the output read it forever; the literal
    // topic was refused with exit 1.
    assert_eq!(
        refused(
            &dir,
            &["kafka", "-t", "^f16-in10$", "-o", "kafka://f16-in10"]
        ),
        "-o kafka://f16-in10 is a topic being read (-t ^f16-in10$ matches it): every record \
         written would be read again, forever"
    );
    assert_eq!(
        refused(&dir, &["kafka", "-t", "orders", "-o", "kafka://orders"]),
        "-o kafka://orders is a topic being read: every record written would be read again, \
         forever"
    );
}

#[test]
fn a_dead_letter_topic_is_refused_at_start() {
    let dir = Dir::new();
    // It failed at the first rejected record: "cannot write kafka://dlq:
    // No such file or directory".
    assert_eq!(
        refused(&dir, &["kafka", "-t", "in", "--dead-letter", "kafka://dlq"]),
        "--dead-letter kafka://dlq: the dead letters go to a file (a Kafka topic is not \
         supported): give a file path"
    );
}
