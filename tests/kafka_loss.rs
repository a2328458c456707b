//! No Kafka message is lost without a trace, and librdkafka's debug logging
//! changes nothing a run does: the real `streamer` binary against a real
//! broker (see tests/kafka.rs for which one). Every message read is counted
//! in the summary's `read`, then written or rejected, and its offset is
//! committed only then.

mod kafka_support;

use std::process::Output;
use std::time::Duration;

use kafka_support::*;

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A message with this value (no key, no headers).
fn value(text: &[u8]) -> TestMessage {
    TestMessage {
        value: Some(text.to_vec()),
        ..TestMessage::default()
    }
}

/// A message without a value.
fn tombstone() -> TestMessage {
    TestMessage::default()
}

/// A one-partition topic holding `messages`, offsets 0, 1, ...
fn topic_with(prefix: &str, messages: &[TestMessage]) -> String {
    let brokers = bootstrap();
    let topic = unique(prefix);
    create_topic(brokers, &topic, 1);
    produce(brokers, &topic, messages);
    topic
}

/// What one `--until-end` run did.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    /// `(read, written, rejected)` from the summary line.
    counts: (u64, u64, u64),
    /// `(offset, reason)` of each dead letter, by offset.
    dead: Vec<(i64, String)>,
}

/// `streamer kafka -t TOPIC -g GROUP --until-end ARGS --dead-letter ...`.
fn consume(topic: &str, group: &str, args: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let dead_letter = dir.path().join("dead.jsonl");
    let output = run_with_deadline(
        streamer(bootstrap())
            .args(["kafka", "-t", topic, "-g", group, "--until-end"])
            .args(args)
            .arg("--dead-letter")
            .arg(&dead_letter),
        Duration::from_secs(60),
    );
    let stderr = stderr_of(&output);
    let mut dead: Vec<(i64, String)> = read_json_lines(&dead_letter)
        .iter()
        .map(|letter| {
            assert_eq!(letter["origin"]["topic"], topic, "{letter}");
            assert_eq!(letter["origin"]["partition"], 0, "{letter}");
            (
                letter["origin"]["offset"].as_i64().unwrap(),
                letter["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    dead.sort();
    Run {
        code: output.status.code(),
        stdout: stdout_of(&output),
        counts: summary_counts(&stderr),
        stderr,
        dead,
    }
}

/// `streamer: R records read, W written, J rejected in ...` as numbers.
fn summary_counts(stderr: &str) -> (u64, u64, u64) {
    let line = stderr
        .lines()
        .rfind(|line| line.starts_with("streamer: ") && line.contains(" records read"))
        .unwrap_or_else(|| panic!("no summary line in:\n{stderr}"));
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|word| !word.is_empty())
        .take(3)
        .map(|word| word.parse().unwrap())
        .collect();
    (numbers[0], numbers[1], numbers[2])
}

/// Everything the first run read was committed, up to the topic's last
/// message: a second run of the group reads nothing.
fn assert_all_committed(topic: &str, group: &str, args: &[&str]) {
    let again = consume(topic, group, args);
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert_eq!(again.counts, (0, 0, 0), "{}", again.stderr);
    assert_eq!(again.stdout, "");
}

const NOT_AN_OBJECT: &str = "empty message value (not a JSON object)";
const NO_ROW: &str = "empty message value (no CSV row)";
const TOMBSTONE: &str = "message has no value (a tombstone)";

#[test]
fn an_empty_json_lines_value_is_rejected_with_its_offset() {
    let topic = topic_with(
        "empty-jsonl",
        &[
            value(br#"{"id":0}"#),
            value(b""),
            value(br#"{"id":2}"#),
            tombstone(),
            value(b" \r\n"),
            value(br#"{"id":5}"#),
            value(b""),
        ],
    );
    let group = unique("empty-jsonl-g");
    let run = consume(&topic, &group, &[]);
    assert_eq!(run.code, Some(3), "{}", run.stderr);
    assert_eq!(run.stdout, "{\"id\":0}\n{\"id\":2}\n{\"id\":5}\n");
    assert_eq!(run.counts, (7, 3, 4), "{}", run.stderr);
    assert_eq!(
        run.dead,
        vec![
            (1, NOT_AN_OBJECT.to_string()),
            (3, TOMBSTONE.to_string()),
            (4, NOT_AN_OBJECT.to_string()),
            (6, NOT_AN_OBJECT.to_string()),
        ]
    );
    assert!(
        run.stderr
            .contains(&format!("rejected {topic}/0@1: {NOT_AN_OBJECT}")),
        "{}",
        run.stderr
    );
    assert_all_committed(&topic, &group, &[]);
}

#[test]
fn an_empty_value_under_stop_ends_the_run_and_is_not_committed() {
    let topic = topic_with(
        "empty-stop",
        &[value(br#"{"n":1}"#), value(b""), value(br#"{"n":3}"#)],
    );
    let group = unique("empty-stop-g");
    let run = consume(&topic, &group, &["--on-error", "stop"]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert_eq!(run.stdout, "{\"n\":1}\n");
    assert_eq!(run.counts, (2, 1, 1), "{}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("streamer: error: {topic}/0@1: {NOT_AN_OBJECT}")),
        "{}",
        run.stderr
    );
    // The next run of the group meets the empty value again.
    let run = consume(&topic, &group, &[]);
    assert_eq!(run.code, Some(3), "{}", run.stderr);
    assert_eq!(run.stdout, "{\"n\":3}\n");
    assert_eq!(run.counts, (2, 1, 1), "{}", run.stderr);
    assert_eq!(run.dead, vec![(1, NOT_AN_OBJECT.to_string())]);
}

#[test]
fn an_empty_lines_value_is_an_empty_message() {
    let topic = topic_with(
        "empty-lines",
        &[
            value(b"a"),
            value(b""),
            value(b"c\n"),
            // Headers but no value: a tombstone all the same.
            TestMessage {
                headers: vec![("trace".into(), b"t-3".to_vec())],
                ..tombstone()
            },
            value(b"\n"),
        ],
    );
    let group = unique("empty-lines-g");
    let run = consume(&topic, &group, &["--format", "lines"]);
    assert_eq!(run.code, Some(3), "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "{\"message\":\"a\"}\n{\"message\":\"\"}\n{\"message\":\"c\"}\n{\"message\":\"\"}\n"
    );
    assert_eq!(run.counts, (5, 4, 1), "{}", run.stderr);
    assert_eq!(run.dead, vec![(3, TOMBSTONE.to_string())]);
    assert_all_committed(&topic, &group, &["--format", "lines"]);
}

#[test]
fn an_empty_csv_value_is_rejected_with_or_without_a_header() {
    let topic = topic_with(
        "empty-csv",
        &[
            value(b"a,b\n1,2\n"),
            value(b""),
            value(b"a,b\n3,4"),
            tombstone(),
            value(b"\n\n"),
        ],
    );
    let expected_dead = vec![
        (1, NO_ROW.to_string()),
        (3, TOMBSTONE.to_string()),
        (4, NO_ROW.to_string()),
    ];

    let group = unique("empty-csv-g");
    let run = consume(&topic, &group, &["--format", "csv"]);
    assert_eq!(run.code, Some(3), "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "{\"a\":\"1\",\"b\":\"2\"}\n{\"a\":\"3\",\"b\":\"4\"}\n"
    );
    assert_eq!(run.counts, (5, 2, 3), "{}", run.stderr);
    assert_eq!(run.dead, expected_dead);
    assert_all_committed(&topic, &group, &["--format", "csv"]);

    let group = unique("empty-csv-nh-g");
    let args = ["--format", "csv", "--no-header"];
    let run = consume(&topic, &group, &args);
    assert_eq!(run.code, Some(3), "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "{\"c1\":\"a\",\"c2\":\"b\"}\n{\"c1\":\"1\",\"c2\":\"2\"}\n\
         {\"c1\":\"a\",\"c2\":\"b\"}\n{\"c1\":\"3\",\"c2\":\"4\"}\n"
    );
    assert_eq!(run.counts, (7, 4, 3), "{}", run.stderr);
    assert_eq!(run.dead, expected_dead);
    assert_all_committed(&topic, &group, &args);
}

#[test]
fn a_refused_login_with_debug_logging_is_the_same_one_error() {
    if external_broker() {
        eprintln!("skipped: KAFKA_BOOTSTRAP_SERVERS is set, and this test needs a SASL listener of its own");
        return;
    }
    let broker = OwnBroker::start();
    let topic = unique("sasl-debug");
    create_topic(&broker.bootstrap, &topic, 1);
    let wrong_login = [
        "-X",
        "security.protocol=sasl_plaintext",
        "-X",
        "sasl.mechanism=PLAIN",
        "-X",
        "sasl.username=alice",
        "-X",
        "sasl.password=wrong",
    ];
    let expected = format!(
        "streamer: error: kafka: the broker at {0} refused the login of user `alice` with \
         PLAIN: check the user and the password ($STREAMER_SASL_PASSWORD or \
         --sasl-password-file) (librdkafka: sasl_plaintext://{0}/bootstrap: SASL \
         authentication error: Authentication failed: Invalid username or password",
        broker.sasl_bootstrap
    );
    // Without debug logging a refused login ends the run in about 2 s (the
    // source) or 5 s (the sink); debug logging must not stretch that.
    let limit = Duration::from_secs(20);
    for debug in ["debug=broker", "debug=generic", "debug=all"] {
        let source = || {
            let mut command = streamer(&broker.sasl_bootstrap);
            command
                .args(["kafka", "-t", &topic, "--until-end"])
                .args(wrong_login)
                .args(["-X", debug]);
            command
        };
        let sink = || {
            let mut command = streamer(&broker.sasl_bootstrap);
            command
                .arg("file")
                .arg(repo().join("data/ticks.csv"))
                .args(["-o", &format!("kafka://{topic}")])
                .args(wrong_login)
                .args(["-X", debug]);
            command
        };
        for (side, mut command) in [("source", source()), ("sink", sink())] {
            let output = run_with_deadline(&mut command, limit);
            let stderr = stderr_of(&output);
            assert_eq!(
                output.status.code(),
                Some(1),
                "{side} with -X {debug}: {stderr}"
            );
            assert_eq!(
                stderr.lines().count(),
                1,
                "{side} with -X {debug}: {stderr}"
            );
            assert!(
                stderr.starts_with(&expected),
                "{side} with -X {debug}: {stderr}"
            );
        }
    }
}
