//! The Kafka source and sink, end to end: the real `streamer` binary
//! against a real broker (`$KAFKA_BOOTSTRAP_SERVERS`, else the project's
//! own, started by `scripts/kafka-broker start`). Every test uses its own
//! topics and groups, so they run in parallel.

mod kafka_support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use kafka_support::*;

/// A group's dead members are noticed after this; the test's second runs
/// would otherwise wait out librdkafka's 45 s default.
const SESSION_TIMEOUT: &str = "session.timeout.ms=6000";

fn stderr_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A message with this value (no key, no headers).
fn with_value(text: &[u8]) -> TestMessage {
    TestMessage {
        value: Some(text.to_vec()),
        ..TestMessage::default()
    }
}

/// Runs `streamer GLOBAL.. kafka -t TOPIC -g GROUP --until-end` to its end
/// (60 s at most).
fn consume_to_end(
    brokers: &str,
    global: &[&str],
    topic: &str,
    group: &str,
) -> std::process::Output {
    run_with_deadline(
        streamer(brokers)
            .args(global)
            .args(["kafka", "-t", topic, "-g", group, "--until-end"]),
        Duration::from_secs(60),
    )
}

#[test]
fn consumes_every_message_once_with_its_origin() {
    let brokers = bootstrap();
    let topic = unique("exact");
    let group = unique("exact-g");
    create_topic(brokers, &topic, 4);
    let mut messages = numbered(2000, 4);
    messages[7].headers = vec![("trace".into(), b"t-7".to_vec())];
    produce(brokers, &topic, &messages);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");

    let output = run_with_deadline(
        streamer(brokers)
            .args([
                "kafka",
                "-t",
                &topic,
                "-g",
                &group,
                "--until-end",
                "--origin",
            ])
            .arg("-o")
            .arg(&out),
        Duration::from_secs(60),
    );
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert!(stderr_of(&output).contains("2000 records read, 2000 written"));

    let records = read_json_lines(&out);
    assert_eq!(records.len(), 2000);
    let counts = id_counts(&records);
    assert_eq!(counts.len(), 2000, "every id once");
    assert!(counts.values().all(|&n| n == 1));
    let mut offsets_by_partition: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for record in &records {
        let id = record["id"].as_u64().unwrap() as usize;
        assert_eq!(record["body"], format!("message number {id}"));
        let origin = &record["_origin"];
        assert_eq!(origin["topic"], topic.as_str());
        assert_eq!(origin["partition"], (id % 4) as i64, "{record}");
        assert_eq!(origin["key"], format!("k{id}"));
        assert!(origin["timestamp"].as_i64().unwrap() > 1_600_000_000_000);
        let expected_headers = if id == 7 {
            serde_json::json!({"trace": "t-7"})
        } else {
            serde_json::json!({})
        };
        assert_eq!(origin["headers"], expected_headers);
        offsets_by_partition
            .entry(origin["partition"].as_i64().unwrap())
            .or_default()
            .push(origin["offset"].as_i64().unwrap());
    }
    for (partition, offsets) in offsets_by_partition {
        let expected: Vec<i64> = (0..500).collect();
        assert_eq!(offsets, expected, "partition {partition} in order");
    }

    // Everything was committed: the group has nothing left to read.
    let again = dir.path().join("again.jsonl");
    let output = run_with_deadline(
        streamer(brokers)
            .args(["kafka", "-t", &topic, "-g", &group, "--until-end"])
            .arg("-o")
            .arg(&again),
        Duration::from_secs(60),
    );
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert_eq!(count_lines(&again), 0);
}

#[test]
fn resumes_after_kill_9_without_losing_a_record() {
    let brokers = bootstrap();
    let topic = unique("kill");
    let group = unique("kill-g");
    create_topic(brokers, &topic, 4);
    let total = 30_000;
    // Small record batches, read with small fetches (below), so the kill
    // lands mid-stream rather than after one big fetch.
    produce_with(
        brokers,
        &topic,
        &numbered(total, 4),
        &[("batch.num.messages", "4")],
    );
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first.jsonl");
    let second = dir.path().join("second.jsonl");

    let mut running = Background::start(
        streamer(brokers)
            .args(["kafka", "-t", &topic, "-g", &group, "--batch-records", "20"])
            .args(["-X", SESSION_TIMEOUT, "-X", "auto.commit.interval.ms=100"])
            .args(["-X", "message.max.bytes=1000", "-X", "fetch.max.bytes=1024"])
            .args(["-X", "max.partition.fetch.bytes=256"])
            .arg("-o")
            .arg(&first),
        &dir.path().join("first.log"),
    );
    running.wait_for_lines(&first, 3000, Duration::from_secs(60));
    // A few automatic commits (every 100 ms here) happen before the kill.
    std::thread::sleep(Duration::from_millis(400));
    running.signal("KILL");
    running.wait(Duration::from_secs(10));
    let before_kill = count_lines(&first);
    assert!(
        before_kill < total,
        "the kill came too late to test anything ({before_kill} lines)"
    );

    let output = run_with_deadline(
        streamer(brokers)
            .args(["kafka", "-t", &topic, "-g", &group, "--until-end"])
            .args(["-X", SESSION_TIMEOUT])
            .arg("-o")
            .arg(&second),
        Duration::from_secs(90),
    );
    assert!(output.status.success(), "{}", stderr_of(&output));

    let mut records = read_json_lines(&first);
    let second_run = read_json_lines(&second);
    assert!(!second_run.is_empty(), "the second run had work left");
    records.extend(second_run);
    let duplicates = duplicates_without_loss(&records, total);
    eprintln!(
        "kill -9 after {before_kill} lines: {} records in both runs, {duplicates} duplicates",
        records.len()
    );
    assert_eq!(records.len(), total + duplicates);
    assert!(
        duplicates < before_kill,
        "the second run resumed from committed offsets, not from the start"
    );
}

#[test]
fn two_consumers_in_one_group_split_the_partitions() {
    let brokers = bootstrap();
    let topic = unique("split");
    let group = unique("split-g");
    create_topic(brokers, &topic, 4);
    let dir = tempfile::tempdir().unwrap();
    let outs = [dir.path().join("a.jsonl"), dir.path().join("b.jsonl")];
    let mut consumers: Vec<Background> = outs
        .iter()
        .enumerate()
        .map(|(n, out)| {
            Background::start(
                streamer(brokers)
                    .args(["-v", "--origin", "kafka", "-t", &topic, "-g", &group])
                    .args(["-X", SESSION_TIMEOUT])
                    .arg("-o")
                    .arg(out),
                &dir.path().join(format!("{n}.log")),
            )
        })
        .collect();
    // Both joined and share the partitions (each has two).
    wait_until("both consumers assigned", Duration::from_secs(60), || {
        consumers.iter().all(|c| {
            c.log()
                .lines()
                .rfind(|line| line.contains("assigned "))
                .is_some_and(|line| line.contains("assigned 2 partitions"))
        })
    });
    let total = 4000;
    produce(brokers, &topic, &numbered(total, 4));
    wait_until("every record written", Duration::from_secs(60), || {
        outs.iter().map(|out| count_lines(out)).sum::<usize>() >= total
            || consumers
                .iter_mut()
                .any(|c| matches!(c.child.try_wait(), Ok(Some(_))))
    });
    for consumer in &mut consumers {
        consumer.signal("TERM");
    }
    for consumer in &mut consumers {
        let status = consumer.wait(Duration::from_secs(30));
        assert!(status.success(), "{}", consumer.log());
    }

    let mut all = Vec::new();
    let mut partitions_seen = Vec::new();
    for out in &outs {
        let records = read_json_lines(out);
        assert!(!records.is_empty(), "each consumer got a share");
        let partitions: BTreeSet<i64> = records
            .iter()
            .map(|r| r["_origin"]["partition"].as_i64().unwrap())
            .collect();
        partitions_seen.push(partitions);
        all.extend(records);
    }
    assert!(
        partitions_seen[0].is_disjoint(&partitions_seen[1]),
        "no partition read by both: {partitions_seen:?}"
    );
    let counts = id_counts(&all);
    assert_eq!(counts.len(), total, "together they saw every record");
    assert!(counts.values().all(|&n| n == 1), "and each once");
}

#[test]
fn until_end_with_two_consumers_and_on_an_empty_topic() {
    let brokers = bootstrap();
    let topic = unique("until");
    let group = unique("until-g");
    create_topic(brokers, &topic, 4);
    let total = 6000;
    produce(brokers, &topic, &numbered(total, 4));
    let dir = tempfile::tempdir().unwrap();
    let outs = [dir.path().join("a.jsonl"), dir.path().join("b.jsonl")];
    let mut consumers: Vec<Background> = outs
        .iter()
        .enumerate()
        .map(|(n, out)| {
            Background::start(
                streamer(brokers)
                    .args(["kafka", "-t", &topic, "-g", &group, "--until-end"])
                    .args(["-X", SESSION_TIMEOUT])
                    .arg("-o")
                    .arg(out),
                &dir.path().join(format!("{n}.log")),
            )
        })
        .collect();
    for consumer in &mut consumers {
        let status = consumer.wait(Duration::from_secs(90));
        assert!(status.success(), "{}", consumer.log());
    }
    let mut all = read_json_lines(&outs[0]);
    all.extend(read_json_lines(&outs[1]));
    let counts = id_counts(&all);
    assert_eq!(counts.len(), total, "every record read by one or the other");
    let duplicates: usize = counts.values().map(|n| n - 1).sum();
    eprintln!("--until-end with two consumers: {duplicates} duplicates");

    // Records produced after the group finished are there for the next run.
    produce(brokers, &topic, &numbered(10, 4)[..]);
    let output = consume_to_end(brokers, &[], &topic, &group);
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert_eq!(String::from_utf8_lossy(&output.stdout).lines().count(), 10);

    // An empty topic: nothing to read, done at once.
    let empty = unique("empty");
    create_topic(brokers, &empty, 2);
    let output = run_with_deadline(
        streamer(brokers).args(["kafka", "-t", &empty, "-g", &group, "--until-end"]),
        Duration::from_secs(30),
    );
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert!(output.stdout.is_empty());
}

fn bad_messages() -> Vec<TestMessage> {
    vec![
        with_value(br#"{"id":0}"#),
        with_value(b"not json"),
        TestMessage::default(), // a tombstone: no value
        with_value(b"{\"id\":\"\xff\"}"),
        with_value(br#"[1,2]"#),
        with_value(br#"{"id":5}"#),
    ]
}

#[test]
fn bad_messages_follow_on_error() {
    let brokers = bootstrap();
    let topic = unique("bad");
    create_topic(brokers, &topic, 1);
    produce(brokers, &topic, &bad_messages());
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("dead.jsonl");

    let output = run_with_deadline(
        streamer(brokers)
            .args([
                "kafka",
                "-t",
                &topic,
                "-g",
                &unique("bad-skip"),
                "--until-end",
            ])
            .arg("--dead-letter")
            .arg(&dead),
        Duration::from_secs(60),
    );
    assert_eq!(output.status.code(), Some(3), "{}", stderr_of(&output));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "{\"id\":0}\n{\"id\":5}\n"
    );
    let rejected = read_json_lines(&dead);
    // The source rejects a tombstone itself, ahead of the decode stage's
    // rejections: the dead letters are not in offset order.
    let by_offset: BTreeMap<i64, &serde_json::Value> = rejected
        .iter()
        .map(|r| (r["origin"]["offset"].as_i64().unwrap(), r))
        .collect();
    assert_eq!(
        by_offset.keys().copied().collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    assert_eq!(by_offset[&1]["origin"]["topic"], topic.as_str());
    assert_eq!(by_offset[&1]["raw"], "not json");
    assert_eq!(
        by_offset[&2]["reason"],
        "message has no value (a tombstone)"
    );
    assert_eq!(
        by_offset[&4]["reason"],
        "not a JSON object (found an array)"
    );
    assert!(stderr_of(&output).contains(&format!("rejected {topic}/0@1")));

    let stop_group = unique("bad-stop");
    let output = consume_to_end(brokers, &["--on-error", "stop"], &topic, &stop_group);
    assert_eq!(output.status.code(), Some(1), "{}", stderr_of(&output));
    assert!(
        stderr_of(&output).contains(&format!("streamer: error: {topic}/0@1: invalid JSON")),
        "{}",
        stderr_of(&output)
    );
    // Nothing past the bad record is committed: a skipping rerun of the
    // same group sees it again.
    let output = consume_to_end(brokers, &[], &topic, &stop_group);
    assert_eq!(output.status.code(), Some(3), "{}", stderr_of(&output));
    assert!(String::from_utf8_lossy(&output.stdout).ends_with("{\"id\":5}\n"));
}

#[test]
fn a_message_the_source_rejects_under_stop_is_not_committed() {
    let brokers = bootstrap();
    let topic = unique("tombstone-stop");
    create_topic(brokers, &topic, 1);
    produce(
        brokers,
        &topic,
        &[
            with_value(br#"{"n":1}"#),
            with_value(br#"{"n":2}"#),
            TestMessage::default(), // a tombstone: rejected by the source itself
            with_value(br#"{"n":4}"#),
        ],
    );
    let group = unique("tombstone-stop-g");
    let output = consume_to_end(brokers, &["--on-error", "stop"], &topic, &group);
    assert_eq!(output.status.code(), Some(1), "{}", stderr_of(&output));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "{\"n\":1}\n{\"n\":2}\n"
    );
    assert!(
        stderr_of(&output).contains(&format!(
            "streamer: error: {topic}/0@2: message has no value (a tombstone)"
        )),
        "{}",
        stderr_of(&output)
    );
    // The records before it were written and committed; the tombstone was
    // not: the next run of the group meets it again.
    let output = consume_to_end(brokers, &[], &topic, &group);
    assert_eq!(output.status.code(), Some(3), "{}", stderr_of(&output));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "{\"n\":4}\n");
    assert!(stderr_of(&output).contains(&format!("rejected {topic}/0@2")));
}

#[test]
fn file_to_kafka_to_kafka_to_file_is_the_input() {
    let brokers = bootstrap();
    let first = unique("ticks");
    let second = unique("ticks-copy");
    create_topic(brokers, &first, 4);
    create_topic(brokers, &second, 3);
    let input = repo().join("data/ticks.csv");
    let dir = tempfile::tempdir().unwrap();

    let output = run_with_deadline(
        streamer(brokers).arg("file").arg(&input).args([
            "-o",
            &format!("kafka://{first}"),
            "--key",
            "symbol",
        ]),
        Duration::from_secs(60),
    );
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert!(stderr_of(&output).contains("200 records read, 200 written"));
    let messages = read_topic(brokers, &first);
    assert_eq!(messages.len(), 200);
    for (_, key, value) in &messages {
        let record: serde_json::Value = serde_json::from_slice(value).unwrap();
        assert_eq!(key.as_deref(), record["symbol"].as_str().map(str::as_bytes));
    }

    // Kafka to Kafka: the source commits only what the sink delivered.
    let group = unique("copy-g");
    let copy = || {
        run_with_deadline(
            streamer(brokers)
                .args(["kafka", "-t", &first, "-g", &group, "--until-end"])
                .args(["-o", &format!("kafka://{second}")]),
            Duration::from_secs(60),
        )
    };
    let output = copy();
    assert!(output.status.success(), "{}", stderr_of(&output));
    let output = copy();
    assert!(
        stderr_of(&output).contains("0 records read"),
        "all committed"
    );

    let out = dir.path().join("out.jsonl");
    let output = run_with_deadline(
        streamer(brokers)
            .args([
                "kafka",
                "-t",
                &second,
                "-g",
                &unique("read-g"),
                "--until-end",
            ])
            .arg("-o")
            .arg(&out),
        Duration::from_secs(60),
    );
    assert!(output.status.success(), "{}", stderr_of(&output));
    let reference = dir.path().join("reference.jsonl");
    let output = run_with_deadline(
        streamer(brokers)
            .arg("file")
            .arg(&input)
            .arg("-o")
            .arg(&reference),
        Duration::from_secs(30),
    );
    assert!(output.status.success());
    let sorted = |path: &std::path::Path| {
        let mut lines: Vec<String> = std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        lines.sort();
        lines
    };
    assert_eq!(sorted(&out), sorted(&reference));
}

#[test]
fn unknown_topic_and_bad_settings_are_one_clear_error() {
    let brokers = bootstrap();
    let missing = unique("missing");
    let cases: Vec<(Vec<String>, String)> = vec![
        (
            vec!["kafka".into(), "-t".into(), missing.clone()],
            format!("streamer: error: kafka: topic `{missing}` does not exist on {brokers}\n"),
        ),
        (
            vec!["kafka".into(), "-t".into(), "x".into(), "-X".into(), "no.such.key=1".into()],
            "streamer: error: kafka: invalid client setting no.such.key: No such configuration property: \"no.such.key\"\n".into(),
        ),
        (
            vec!["file".into(), "-".into(), "-o".into(), "kafka://t".into(), "-X".into(), "acks=sometimes".into()],
            "streamer: error: kafka: invalid client setting acks=sometimes: Invalid value for configuration property \"request.required.acks\"\n".into(),
        ),
        (
            vec!["kafka".into(), "-t".into(), "x".into(), "--until-end".into(), "-X".into(), "partition.assignment.strategy=cooperative-sticky".into()],
            "streamer: error: --until-end does not work with a cooperative partition.assignment.strategy; use the default (range,roundrobin) or group.protocol=consumer\n".into(),
        ),
    ];
    for (args, expected) in cases {
        let output = run_with_deadline(streamer(brokers).args(&args), Duration::from_secs(30));
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        assert_eq!(stderr_of(&output), expected, "{args:?}");
    }
}

#[test]
fn sigterm_while_the_brokers_are_down_exits_cleanly() {
    // Nothing listens on port 1.
    let dir = tempfile::tempdir().unwrap();
    let mut running = Background::start(
        streamer("127.0.0.1:1").args(["kafka", "-t", "t"]),
        &dir.path().join("log"),
    );
    wait_until("the outage is reported", Duration::from_secs(30), || {
        running
            .log()
            .contains("cannot reach the brokers at 127.0.0.1:1")
    });
    running.signal("TERM");
    let status = running.wait(Duration::from_secs(10));
    assert!(status.success(), "{}", running.log());
}

/// The pipeline full, the source stops taking messages: with room for two
/// batches of 100 in the channel and nobody reading it, the source has
/// sent exactly two batches (and holds a third) however many wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_pipeline_stops_the_consumer() {
    use streamer::codec::Format;
    use streamer::kafka::KafkaConfig;
    use streamer::pipeline::{Rejects, Stats};
    use streamer::source::{
        KafkaOptions, KafkaSource, OffsetReset, RawSender, Source, SourceContext,
    };

    let brokers = bootstrap();
    let topic = unique("full");
    let produced = {
        let topic = topic.clone();
        tokio::task::spawn_blocking(move || {
            create_topic(brokers, &topic, 1);
            produce(brokers, &topic, &numbered(5000, 1));
        })
    };
    produced.await.unwrap();
    let source = KafkaSource::new(KafkaOptions {
        config: KafkaConfig {
            brokers: brokers.to_string(),
            settings: vec![],
        },
        topics: vec![topic.clone()],
        group: unique("full-g"),
        offset_reset: OffsetReset::Earliest,
        until_end: false,
        format: Format::Jsonl,
        delimiter: b',',
        header: true,
        origin: false,
        instance_id: None,
        start: streamer::source::StartAt::default(),
        keep_tombstones: false,
        stats: None,
        exactly_once: None,
    })
    .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel(2);
    let stats = Arc::new(Stats::default());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let context = SourceContext {
        out: RawSender::new(tx, stats.clone()),
        shutdown: shutdown.clone(),
        rejects: Arc::new(Rejects::skip()),
        batch_records: 100,
        batch_bytes: 1 << 20,
    };
    let running = tokio::spawn(Box::new(source).run(context));
    let read = || stats.read.load(std::sync::atomic::Ordering::Relaxed);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while read() < 200 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the source read {}",
            read()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        read(),
        200,
        "two full batches in the channel, then it waits"
    );

    // Unblocked, it goes on; on shutdown it ends once its batches are gone.
    let first = rx.recv().await.unwrap();
    assert_eq!(first.len(), 100);
    shutdown.cancel();
    drop(first);
    while rx.recv().await.is_some() {}
    tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("the source ends")
        .unwrap()
        .unwrap();
}

#[test]
fn broker_stopped_and_restarted_mid_run_loses_nothing() {
    source_rides_out_a_broker_outage("stopped", |broker| broker.run("stop"));
}

/// Memory stays flat while the output is stalled: 100 MB wait in the
/// topic, stdout is not read for a while, and the process stays far below
/// that; then everything arrives.
#[test]
fn a_stalled_output_keeps_memory_flat() {
    use std::io::Read;
    let brokers = bootstrap();
    let topic = unique("rss");
    create_topic(brokers, &topic, 4);
    let padding = "x".repeat(2000);
    let total = 50_000;
    let messages: Vec<TestMessage> = (0..total)
        .map(|i| TestMessage {
            partition: (i % 4) as i32,
            value: Some(format!(r#"{{"id":{i},"pad":"{padding}"}}"#).into_bytes()),
            ..TestMessage::default()
        })
        .collect();
    produce(brokers, &topic, &messages);
    drop(messages);

    let mut child = streamer(brokers)
        .args(["kafka", "-t", &topic, "-g", &unique("rss-g"), "--until-end"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn streamer");
    let rss_kb = || -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kb| kb.parse().ok())
            .unwrap_or(0)
    };
    // Nobody reads stdout: the pipe fills, the sink blocks, the pipeline
    // fills, and the consumer stops fetching.
    let mut peak = 0;
    for _ in 0..40 {
        std::thread::sleep(Duration::from_millis(100));
        peak = peak.max(rss_kb());
    }
    eprintln!("stalled output: peak RSS {} MB", peak / 1024);
    assert!(
        peak < 100 * 1024,
        "RSS reached {} MB with the output stalled",
        peak / 1024
    );

    let mut stdout = child.stdout.take().unwrap();
    let mut lines = 0usize;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = stdout.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count();
    }
    let status = child.wait().unwrap();
    assert!(status.success());
    assert_eq!(lines, total);
}

#[test]
fn a_pattern_subscribes_to_every_matching_topic() {
    let brokers = bootstrap();
    let prefix = unique("pattern");
    let topics = [format!("{prefix}-a"), format!("{prefix}-b")];
    for (n, topic) in topics.iter().enumerate() {
        create_topic(brokers, topic, 2);
        let messages: Vec<TestMessage> =
            numbered(100, 2).into_iter().skip(n * 50).take(50).collect();
        produce(brokers, topic, &messages);
    }
    create_topic(brokers, &format!("{prefix}x-other"), 1);
    produce(brokers, &format!("{prefix}x-other"), &numbered(5, 1));
    let pattern = format!("^{}-[ab]$", prefix.replace('-', "[-]"));
    let output = run_with_deadline(
        streamer(brokers).args([
            "--origin",
            "kafka",
            "-t",
            &pattern,
            "--until-end",
            "-g",
            &unique("pattern-g"),
        ]),
        Duration::from_secs(60),
    );
    assert!(output.status.success(), "{}", stderr_of(&output));
    let records: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let counts = id_counts(&records);
    assert_eq!(counts.len(), 100);
    assert!(counts.values().all(|&n| n == 1));
    let seen: BTreeSet<String> = records
        .iter()
        .map(|r| r["_origin"]["topic"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(seen, topics.iter().cloned().collect());
}

#[test]
fn a_kafka_output_that_cannot_deliver_fails_the_run() {
    // Nothing listens on port 1: every message times out (after 1 s here).
    let output = run_with_deadline(
        streamer("127.0.0.1:1")
            .arg("file")
            .arg(repo().join("data/ticks.csv"))
            .args(["-o", "kafka://ticks", "-X", "message.timeout.ms=1000"]),
        Duration::from_secs(60),
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr_of(&output));
    let stderr = stderr_of(&output);
    assert!(stderr.contains("0 written"), "{stderr}");
    assert!(
        stderr.contains(
            "streamer: error: kafka: cannot deliver to topic `ticks` (brokers 127.0.0.1:1): Local: Message timed out"
        ),
        "{stderr}"
    );
}

#[test]
fn a_refused_login_is_one_clear_error() {
    if external_broker() {
        eprintln!("skipped: KAFKA_BOOTSTRAP_SERVERS is set, and this test needs a SASL listener of its own");
        return;
    }
    let broker = OwnBroker::start();
    let topic = unique("sasl");
    create_topic(&broker.bootstrap, &topic, 1);
    let login = |password: &str| {
        [
            "-X",
            "security.protocol=sasl_plaintext",
            "-X",
            "sasl.mechanism=PLAIN",
            "-X",
            "sasl.username=alice",
            "-X",
        ]
        .into_iter()
        .map(String::from)
        .chain([format!("sasl.password={password}")])
        .collect::<Vec<_>>()
    };
    let expected = format!(
        "streamer: error: kafka: the broker at {0} refused the login of user `alice` with \
         PLAIN: check the user and the password ($STREAMER_SASL_PASSWORD or \
         --sasl-password-file) (librdkafka: sasl_plaintext://{0}/bootstrap: SASL \
         authentication error: Authentication failed: Invalid username or password",
        broker.sasl_bootstrap
    );

    // A wrong password fails the run with one line naming the broker.
    let refused = |output: std::process::Output| {
        assert_eq!(output.status.code(), Some(1));
        let stderr = stderr_of(&output);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with(&expected), "{stderr}");
    };
    refused(run_with_deadline(
        streamer(&broker.sasl_bootstrap)
            .args(["kafka", "-t", &topic, "--until-end"])
            .args(login("wrong")),
        Duration::from_secs(60),
    ));
    refused(run_with_deadline(
        streamer(&broker.sasl_bootstrap)
            .arg("file")
            .arg(repo().join("data/ticks.csv"))
            .args(["-o", &format!("kafka://{topic}")])
            .args(login("wrong")),
        Duration::from_secs(60),
    ));

    // The right password works, both ways.
    let output = run_with_deadline(
        streamer(&broker.sasl_bootstrap)
            .arg("file")
            .arg(repo().join("data/ticks.csv"))
            .args(["-o", &format!("kafka://{topic}")])
            .args(login("secret")),
        Duration::from_secs(60),
    );
    assert!(output.status.success(), "{}", stderr_of(&output));
    let output = run_with_deadline(
        streamer(&broker.sasl_bootstrap)
            .args(["kafka", "-t", &topic, "--until-end"])
            .args(login("secret")),
        Duration::from_secs(60),
    );
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert_eq!(String::from_utf8_lossy(&output.stdout).lines().count(), 200);
}
