//! Where the Kafka source starts (`--from`, `--from-timestamp`, the way
//! past a poison pill), what it keeps of each message (tombstones, keys
//! and headers that are not text) and what it says while it runs (the
//! stats line, the lag at the end). The real `streamer` binary against the
//! real broker; each test has its own topics and groups.

mod kafka_support;

use std::process::Output;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kafka_support::*;

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `streamer [GLOBAL..] kafka -t TOPIC -g GROUP --until-end [ARGS..]`, to
/// its end; its records (stdout) parsed.
fn consume(
    topic: &str,
    group: &str,
    global: &[&str],
    args: &[&str],
) -> (Output, Vec<serde_json::Value>) {
    let output = run_with_deadline(
        streamer(bootstrap())
            .args(global)
            .args(["kafka", "-t", topic, "-g", group, "--until-end"])
            .args(args),
        Duration::from_secs(60),
    );
    let records = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}")))
        .collect();
    (output, records)
}

fn ids(records: &[serde_json::Value]) -> Vec<u64> {
    let mut ids: Vec<u64> = records.iter().map(|r| r["id"].as_u64().unwrap()).collect();
    ids.sort_unstable();
    ids
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn from_starts_a_partition_at_an_offset_once_then_commits_resume() {
    let brokers = bootstrap();
    let topic = unique("from");
    let group = unique("from-g");
    create_topic(brokers, &topic, 2);
    // Partition 0 holds ids 0, 2, .. 18 at offsets 0..9; partition 1 the odd ones.
    produce(brokers, &topic, &numbered(20, 2));
    let from = format!("{topic}:0:7");
    let (output, records) = consume(&topic, &group, &[], &["--from", &from]);
    assert!(output.status.success(), "{}", stderr_of(&output));
    let mut expected: Vec<u64> = vec![14, 16, 18];
    expected.extend((1..20).step_by(2));
    expected.sort_unstable();
    assert_eq!(ids(&records), expected);
    // The next run resumes from what the first committed: nothing left.
    produce(brokers, &topic, &[numbered(21, 2).pop().unwrap()]);
    let (output, records) = consume(&topic, &group, &[], &[]);
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert_eq!(ids(&records), [20]);
}

#[test]
fn from_timestamp_starts_at_the_first_message_at_or_after_it() {
    let brokers = bootstrap();
    let topic = unique("from-time");
    let group = unique("from-time-g");
    create_topic(brokers, &topic, 2);
    let messages = numbered(30, 2);
    produce(brokers, &topic, &messages[..20]);
    let before = now_millis();
    // The later messages must have a later timestamp than `before`.
    wait_until("the clock to move on", Duration::from_secs(5), || {
        now_millis() > before
    });
    // Only to partition 0: partition 1 has nothing after the time.
    let later: Vec<TestMessage> = messages[20..]
        .iter()
        .filter(|m| m.partition == 0)
        .cloned()
        .collect();
    produce(brokers, &topic, &later);
    let since = (before + 1).to_string();
    let (output, records) = consume(&topic, &group, &["-v"], &["--from-timestamp", &since]);
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert_eq!(ids(&records), [20, 22, 24, 26, 28]);
    assert!(
        stderr_of(&output).contains(&format!(
            "{topic}/1: starting at its end (no message at or after --from-timestamp)"
        )),
        "{}",
        stderr_of(&output)
    );
    let bad = run_with_deadline(
        streamer(brokers).args(["kafka", "-t", &topic, "--from-timestamp", "yesterday"]),
        Duration::from_secs(10),
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr_of(&bad).contains("neither epoch milliseconds nor an RFC 3339 time"));
}

#[test]
fn a_poison_pill_under_stop_says_how_to_skip_it_and_that_works() {
    let brokers = bootstrap();
    let topic = unique("poison");
    let group = unique("poison-g");
    create_topic(brokers, &topic, 1);
    let value = |text: &str| TestMessage {
        value: Some(text.as_bytes().to_vec()),
        ..TestMessage::default()
    };
    produce(
        brokers,
        &topic,
        &[
            value(r#"{"id":0}"#),
            value("not json"),
            value(r#"{"id":2}"#),
        ],
    );
    let (output, records) = consume(&topic, &group, &["--on-error", "stop"], &[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr_of(&output));
    assert_eq!(ids(&records), [0]);
    let hint = format!("to skip it, run again with --from {topic}:0:2");
    assert!(stderr_of(&output).contains(&hint), "{}", stderr_of(&output));
    let from = format!("{topic}:0:2");
    let (output, records) = consume(&topic, &group, &["--on-error", "stop"], &["--from", &from]);
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert_eq!(ids(&records), [2]);
}

#[test]
fn tombstones_empty_values_and_binary_keys_and_headers_are_kept_exactly() {
    let brokers = bootstrap();
    let topic = unique("exact-bytes");
    let group = unique("exact-bytes-g");
    create_topic(brokers, &topic, 1);
    let message = |key: &[u8], value: Option<&[u8]>| TestMessage {
        key: Some(key.to_vec()),
        value: value.map(<[u8]>::to_vec),
        ..TestMessage::default()
    };
    let mut binary = message(b"\xff\x01", Some(br#"{"id":3}"#));
    binary.headers = vec![
        ("bin".into(), b"\xc3\x28".to_vec()),
        ("txt".into(), b"ok".to_vec()),
    ];
    produce(
        brokers,
        &topic,
        &[
            message(b"k0", Some(br#"{"id":0}"#)),
            message(b"k1", None),
            message(b"k2", Some(b"")),
            binary,
        ],
    );
    let (output, records) = consume(&topic, &group, &["--origin"], &["--keep-tombstones"]);
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert_eq!(records.len(), 4, "{records:?}");
    assert_eq!(records[0]["_origin"]["key"], "k0");
    assert_eq!(records[1]["_key"], "k1");
    assert!(records[1]["_value"].is_null());
    assert_eq!(records[1]["_origin"]["offset"], 1);
    assert_eq!(records[2]["_key"], "k2");
    assert_eq!(records[2]["_value"], "");
    let origin = &records[3]["_origin"];
    assert_eq!(records[3]["id"], 3);
    assert_eq!(origin["key_b64"], "/wE=");
    assert!(origin.get("key").is_none(), "{origin}");
    assert_eq!(
        origin["headers"]["bin"],
        serde_json::json!({"base64": "wyg="})
    );
    assert_eq!(origin["headers"]["txt"], "ok");
    // Without the option, the tombstone and the empty value are rejected.
    let (output, records) = consume(&topic, &unique("exact-bytes-g2"), &[], &[]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr_of(&output));
    assert_eq!(records.len(), 2);
}

#[test]
fn the_stats_line_names_every_partition_and_short_runs_know_their_lag() {
    let brokers = bootstrap();
    let topic = unique("stats");
    let group = unique("stats-g");
    create_topic(brokers, &topic, 2);
    produce(brokers, &topic, &numbered(100, 2));
    let dir = tempfile::tempdir().unwrap();
    let mut running = Background::start(
        streamer(brokers)
            .args([
                "-v",
                "kafka",
                "-t",
                &topic,
                "-g",
                &group,
                "--stats-interval",
                "1s",
            ])
            .arg("-o")
            .arg(dir.path().join("out.jsonl")),
        &dir.path().join("log"),
    );
    let line = |log: &str| {
        log.lines()
            .find(|line| line.contains("stats: ") && line.contains("lag 0 committed 50, "))
            .map(str::to_string)
    };
    wait_until(
        "a stats line with both partitions",
        Duration::from_secs(30),
        || line(&running.log()).is_some(),
    );
    running.signal("TERM");
    running.wait(Duration::from_secs(30));
    let line = line(&running.log()).unwrap();
    assert!(
        line.contains(&format!(
            "{topic}/0 lag 0 committed 50, {topic}/1 lag 0 committed 50"
        )),
        "{line}"
    );
    // A run far shorter than any statistics interval still knows its lag.
    let (output, _) = consume(&topic, &unique("stats-g2"), &["-v"], &[]);
    assert!(output.status.success(), "{}", stderr_of(&output));
    let stderr = stderr_of(&output);
    assert_eq!(stderr.matches("committed 50, lag 0").count(), 2, "{stderr}");
}
