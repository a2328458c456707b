//! `--exactly-once` (Kafka to Kafka in transactions): the real `streamer`
//! binary against a real broker. Whatever kills the copier (kill -9, twice;
//! one of two copiers of a group; the broker restarted), a
//! `read_committed` reader of the output sees every input record exactly
//! once. And the flags it cannot work with are refused.

mod kafka_support;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use kafka_support::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::{ClientConfig, Message};

/// Input records per test (ids 0..N), over three partitions.
const RECORDS: usize = 60_000;
const PARTITIONS: i32 = 3;
/// A killed member's partitions move on within this.
const SESSION: &str = "session.timeout.ms=6000";

/// An input topic and an output topic, empty.
fn topics(brokers: &str, prefix: &str) -> (String, String) {
    let (input, output) = (
        unique(&format!("{prefix}-in")),
        unique(&format!("{prefix}-out")),
    );
    create_topic(brokers, &input, PARTITIONS);
    create_topic(brokers, &output, PARTITIONS);
    (input, output)
}

/// Produces the `RECORDS` numbered records to `input` in `steps` steps
/// (each waits for its deliveries), so that the copiers are mid-copy for a
/// few seconds.
fn feed(brokers: &str, input: &str, steps: usize) -> std::thread::JoinHandle<()> {
    let (brokers, input) = (brokers.to_string(), input.to_string());
    std::thread::spawn(move || {
        for step in numbered(RECORDS, PARTITIONS).chunks(RECORDS / steps) {
            produce(&brokers, &input, step);
        }
    })
}

/// `streamer kafka -t INPUT -g GROUP -o kafka://OUTPUT --exactly-once ARGS`.
fn copier(brokers: &str, input: &str, group: &str, output: &str, args: &[&str]) -> Command {
    let mut command = streamer(brokers);
    command
        .args(["kafka", "-t", input, "-g", group, "-X", SESSION])
        .args(["-o", &format!("kafka://{output}"), "--exactly-once"])
        .args(args);
    command
}

/// Messages in `topic` as its high watermarks count them (transaction
/// markers, and messages of open or aborted transactions, included).
fn high_watermarks(brokers: &str, topic: &str) -> i64 {
    // read_committed (librdkafka's default) would give the last stable
    // offset: nothing of an open transaction.
    watermarks(brokers, topic, "read_uncommitted")
}

/// The end offsets of `topic`'s partitions, all together, as a reader
/// with `isolation` sees them (read_committed: the last stable offsets).
fn watermarks(brokers: &str, topic: &str, isolation: &str) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("isolation.level", isolation)
        .create()
        .expect("consumer");
    (0..PARTITIONS)
        .map(|partition| {
            consumer
                .fetch_watermarks(topic, partition, Duration::from_secs(10))
                .map_or(0, |(_, high)| high)
        })
        .sum()
}

/// Waits until `topic` holds at least `messages` messages.
fn wait_for_output(brokers: &str, topic: &str, messages: i64, copier: &mut Background) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while high_watermarks(brokers, topic) < messages {
        if let Some(status) = copier.child.try_wait().unwrap() {
            panic!(
                "the copier ended ({status}) early; its log:\n{}",
                copier.log()
            );
        }
        assert!(
            Instant::now() < deadline,
            "{topic} has fewer than {messages} messages after 60 s; the copier's log:\n{}",
            copier.log()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The input offsets the group committed, all partitions together.
fn committed_total(brokers: &str, group: &str, topic: &str) -> i64 {
    committed(brokers, group, topic, PARTITIONS)
        .iter()
        .map(|offset| offset.max(&0))
        .sum()
}

/// Every `id` in `topic` as a reader with `isolation` sees it, read up to
/// each partition's end (for `read_committed`, its last stable offset).
fn ids(brokers: &str, topic: &str, partitions: i32, isolation: &str) -> BTreeMap<u64, usize> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("eos-reader"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", isolation)
        .create()
        .expect("consumer");
    let mut list = TopicPartitionList::new();
    for partition in 0..partitions {
        list.add_partition_offset(topic, partition, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&list).expect("assign");
    let mut counts = BTreeMap::new();
    let mut ended = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while ended.len() < partitions as usize {
        assert!(Instant::now() < deadline, "reading {topic} timed out");
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                let record: serde_json::Value =
                    serde_json::from_slice(message.payload().unwrap()).unwrap();
                *counts.entry(record["id"].as_u64().unwrap()).or_insert(0) += 1;
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                ended.insert(partition);
            }
            Some(Err(error)) => panic!("reading {topic}: {error}"),
            None => {}
        }
    }
    counts
}

/// A `read_committed` reader of `output` sees each of the `RECORDS` ids
/// exactly once.
fn assert_exactly_once(brokers: &str, output: &str) {
    // A killed copier's open transaction holds read_committed readers at
    // its start until the broker aborts it (transaction.timeout.ms).
    wait_until(
        "no open transaction in the output",
        Duration::from_secs(60),
        || watermarks(brokers, output, "read_committed") == high_watermarks(brokers, output),
    );
    let counts = ids(brokers, output, PARTITIONS, "read_committed");
    let missing: Vec<u64> = (0..RECORDS as u64)
        .filter(|id| !counts.contains_key(id))
        .collect();
    let twice: Vec<(&u64, &usize)> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        missing.is_empty() && twice.is_empty() && counts.len() == RECORDS,
        "{} missing (e.g. {:?}), {} seen more than once (e.g. {:?}), {} ids",
        missing.len(),
        &missing[..missing.len().min(5)],
        twice.len(),
        &twice[..twice.len().min(5)],
        counts.len()
    );
}

/// Runs `command` with `--until-end` to its end; it must succeed.
fn finish(command: &mut Command) -> String {
    let output = run_with_deadline(command.arg("--until-end"), Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "the last run failed:\n{stderr}");
    stderr
}

#[test]
fn killed_twice_then_run_to_the_end_every_record_is_output_exactly_once() {
    let brokers = bootstrap();
    let (input, output) = topics(brokers, "eos-kill");
    produce(brokers, &input, &numbered(RECORDS, PARTITIONS));
    let group = unique("eos-kill-g");
    let dir = tempfile::tempdir().unwrap();
    // A stable instance id: the restarted copier has the same
    // transactional.id, which fences the killed one at once.
    let args = ["--instance-id", "copier-1"];
    for run in 1..=2 {
        // A copier copies the whole topic within a transaction or two: with
        // 2 s ones, the kill below falls inside one.
        let mut running = Background::start(
            copier(brokers, &input, &group, &output, &args).args(["--transaction-interval", "2s"]),
            &dir.path().join(format!("run{run}.log")),
        );
        let already = high_watermarks(brokers, &output);
        // Killed soon after it started writing: mid-run (checked below).
        wait_for_output(brokers, &output, already + 3000, &mut running);
        running.signal("KILL");
        running.wait(Duration::from_secs(10));
        let committed = committed_total(brokers, &group, &input);
        assert!(
            committed < RECORDS as i64,
            "run {run} was killed after it had committed everything ({committed})"
        );
    }
    let log = finish(&mut copier(brokers, &input, &group, &output, &args));
    assert_exactly_once(brokers, &output);
    assert_eq!(
        committed_total(brokers, &group, &input),
        RECORDS as i64,
        "{log}"
    );
    // The killed runs' aborted messages are there for a reader that does
    // not skip them: the kills fell inside 2 s transactions.
    let uncommitted: usize = ids(brokers, &output, PARTITIONS, "read_uncommitted")
        .values()
        .sum();
    assert!(
        uncommitted > RECORDS,
        "read_uncommitted sees {uncommitted} records for {RECORDS} inputs"
    );
}

#[test]
fn one_of_two_copiers_killed_the_other_takes_over_exactly_once() {
    let brokers = bootstrap();
    let (input, output) = topics(brokers, "eos-pair");
    let group = unique("eos-pair-g");
    let dir = tempfile::tempdir().unwrap();
    let start = |name: &str| {
        Background::start(
            &mut copier(brokers, &input, &group, &output, &["-v"]),
            &dir.path().join(format!("{name}.log")),
        )
    };
    let mut first = start("first");
    let mut second = start("second");
    wait_until(
        "both copiers hold partitions",
        Duration::from_secs(30),
        || first.log().contains("assigned") && second.log().contains("assigned"),
    );
    let feeder = feed(brokers, &input, 20);
    wait_for_output(brokers, &output, (RECORDS / 4) as i64, &mut second);
    first.signal("KILL");
    first.wait(Duration::from_secs(10));
    assert!(committed_total(brokers, &group, &input) < RECORDS as i64);
    // The survivor gets the killed one's partitions once its session ends
    // (and reads them once its open transaction is aborted by the broker:
    // no instance id, so nothing restarted with its transactional.id).
    let deadline = Instant::now() + Duration::from_secs(60);
    while committed_total(brokers, &group, &input) < RECORDS as i64 {
        assert!(
            Instant::now() < deadline,
            "the survivor did not commit every input record; its log:\n{}",
            second.log()
        );
        if let Some(status) = second.child.try_wait().unwrap() {
            panic!("the survivor ended ({status}); its log:\n{}", second.log());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    feeder.join().unwrap();
    second.signal("TERM");
    assert!(
        second.wait(Duration::from_secs(30)).success(),
        "{}",
        second.log()
    );
    assert_exactly_once(brokers, &output);
}

#[test]
fn the_broker_restarted_mid_run_every_record_is_output_exactly_once() {
    if external_broker() {
        return;
    }
    let broker = OwnBroker::start();
    let brokers = broker.bootstrap.as_str();
    let (input, output) = topics(brokers, "eos-restart");
    let group = unique("eos-restart-g");
    let dir = tempfile::tempdir().unwrap();
    let args = ["--instance-id", "copier-1"];
    let mut running = Background::start(
        &mut copier(brokers, &input, &group, &output, &args),
        &dir.path().join("run.log"),
    );
    let feeder = feed(brokers, &input, 20);
    wait_for_output(brokers, &output, (RECORDS / 4) as i64, &mut running);
    broker.run("stop");
    broker.run("start");
    feeder.join().unwrap();
    // The copier may ride the restart out, or fail (its transaction
    // aborted); either way a run to the end completes the copy.
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = running.child.try_wait().unwrap() {
            break Some(status);
        }
        if committed_total(brokers, &group, &input) == RECORDS as i64 {
            break None;
        }
        assert!(
            Instant::now() < deadline,
            "the copier is stuck; its log:\n{}",
            running.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    eprintln!("the copier across the broker's restart: {status:?}");
    match status {
        None => {
            running.signal("TERM");
            assert!(
                running.wait(Duration::from_secs(30)).success(),
                "{}",
                running.log()
            );
        }
        Some(status) => {
            let log = running.log();
            assert!(
                !status.success() && log.contains("aborted"),
                "{status}: {log}"
            );
            finish(&mut copier(brokers, &input, &group, &output, &args));
        }
    }
    assert_exactly_once(brokers, &output);
    assert_eq!(committed_total(brokers, &group, &input), RECORDS as i64);
}

/// The input of the bad-record test: partition 0 holds ids 0..100;
/// partition 1 ids 100..150, then a message that is not JSON (offset 50),
/// then ids 150..200.
fn input_with_a_bad_record(brokers: &str, input: &str) {
    let message = |partition: i32, text: String| TestMessage {
        partition,
        value: Some(text.into_bytes()),
        ..TestMessage::default()
    };
    let records = |ids: std::ops::Range<u64>, partition: i32| {
        ids.map(move |id| message(partition, format!(r#"{{"id":{id}}}"#)))
    };
    let messages: Vec<TestMessage> = records(0..100, 0)
        .chain(records(100..150, 1))
        .chain([message(1, "not json".into())])
        .chain(records(150..200, 1))
        .collect();
    produce(brokers, input, &messages);
}

#[test]
fn a_bad_record_commits_up_to_it_and_a_rerun_past_it_copies_every_record_once() {
    let brokers = bootstrap();
    let input = unique("eos-poison-in");
    let output = unique("eos-poison-out");
    create_topic(brokers, &input, 2);
    create_topic(brokers, &output, 1);
    input_with_a_bad_record(brokers, &input);
    let group = unique("eos-poison-g");
    let out = run_with_deadline(
        &mut copier(brokers, &input, &group, &output, &["--until-end"]),
        Duration::from_secs(60),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("streamer: error: {input}/1@50: invalid JSON")),
        "{stderr}"
    );
    // The last transaction carries the offsets of what it output: the
    // bad record's partition resumes at the bad record.
    assert_eq!(committed(brokers, &group, &input, 2)[1], 50, "{stderr}");
    let seen = ids(brokers, &output, 1, "read_committed");
    assert!(
        (100..150).all(|id| seen.get(&id) == Some(&1)) && !seen.contains_key(&150),
        "the records before the bad one once each, none after it: {seen:?}"
    );
    // The user skips the bad record; the rerun copies the rest.
    let skip = format!("{input}:1:51");
    let log = finish(&mut copier(
        brokers,
        &input,
        &group,
        &output,
        &["--from", &skip],
    ));
    let seen = ids(brokers, &output, 1, "read_committed");
    let wrong: Vec<_> = (0..200u64)
        .filter(|id| seen.get(id) != Some(&1))
        .map(|id| (id, seen.get(&id).copied().unwrap_or(0)))
        .collect();
    assert!(
        wrong.is_empty() && seen.len() == 200,
        "(id, times seen) not once: {wrong:?}\n{log}"
    );
    assert_eq!(committed(brokers, &group, &input, 2), [100, 101], "{log}");
}

#[test]
fn a_fenced_copier_names_its_transactional_id_and_counts_only_what_committed() {
    let brokers = bootstrap();
    let (input, output) = topics(brokers, "eos-fenced");
    let idle = unique("eos-fenced-idle");
    create_topic(brokers, &idle, PARTITIONS);
    let given = format!("transactional.id={}", unique("eos-fenced-id"));
    let id = &given["transactional.id=".len()..];
    // Long transactions, so that the fencing falls inside one.
    let long = [
        "-X",
        "transaction.timeout.ms=60000",
        "--transaction-interval",
        "8s",
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut first = Background::start(
        copier(brokers, &input, &unique("eos-fenced-g"), &output, &long).args(["-X", &given]),
        &dir.path().join("first.log"),
    );
    let records = numbered(2000, PARTITIONS);
    produce(brokers, &input, &records[..1000]);
    wait_until(
        "the first 1000 records committed",
        Duration::from_secs(60),
        || watermarks(brokers, &output, "read_committed") >= 1000,
    );
    produce(brokers, &input, &records[1000..]);
    wait_until(
        "the next 1000 in an open transaction",
        Duration::from_secs(60),
        || {
            high_watermarks(brokers, &output) - watermarks(brokers, &output, "read_committed")
                >= 1000
        },
    );
    // Another copier with the same transactional.id fences the first and
    // aborts its open transaction.
    finish(&mut copier(
        brokers,
        &idle,
        &unique("eos-fenced-g2"),
        &output,
        &["-X", &given],
    ));
    let status = first.wait(Duration::from_secs(60));
    let log = first.log();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(
        log.contains(&format!(
            "streamer: error: kafka: topic `{output}` (transactional.id {id}): "
        )) && log.contains(
            "the transaction holding 1000 records was aborted by a newer producer with \
             this transactional.id (another run with the same --instance-id or -X \
             transactional.id)"
        ),
        "{log}"
    );
    assert!(
        log.contains(
            // "read" counts the records handled (written or rejected).
            "streamer: 1000 records read, 1000 written, 0 rejected (1000 more read but not \
             written: the run stopped early)"
        ),
        "{log}"
    );
    let seen = ids(brokers, &output, PARTITIONS, "read_committed");
    assert!(
        seen.len() == 1000 && (0..1000u64).all(|id| seen.get(&id) == Some(&1)),
        "{seen:?}"
    );
}

/// Waits until a read_committed reader of `output` sees `messages`
/// messages, failing if the copier ends first.
fn wait_for_committed(brokers: &str, output: &str, messages: i64, copier: &mut Background) {
    wait_until(
        &format!("{messages} messages committed"),
        Duration::from_secs(90),
        || {
            if let Some(status) = copier.child.try_wait().unwrap() {
                panic!(
                    "the copier ended ({status}) early; its log:\n{}",
                    copier.log()
                );
            }
            watermarks(brokers, output, "read_committed") >= messages
        },
    );
}

#[test]
fn transactions_longer_than_ten_seconds_commit() {
    // The transaction timeout was a fixed 10 s: the broker aborted every
    // transaction of a --transaction-interval of 10 s or more before it
    // committed, and the run failed (blaming a "newer producer").
    let brokers = bootstrap();
    let (input, output) = topics(brokers, "eos-long");
    let dir = tempfile::tempdir().unwrap();
    let mut running = Background::start(
        copier(brokers, &input, &unique("eos-long-g"), &output, &[])
            .args(["--transaction-interval", "12s"]),
        &dir.path().join("copier.log"),
    );
    let records = numbered(2000, PARTITIONS);
    produce(brokers, &input, &records[..1000]);
    wait_for_committed(brokers, &output, 1000, &mut running);
    // A second transaction, 12 s long too.
    produce(brokers, &input, &records[1000..]);
    wait_for_committed(
        brokers,
        &output,
        2000 + 2 * i64::from(PARTITIONS),
        &mut running,
    );
    running.signal("TERM");
    let status = running.wait(Duration::from_secs(60));
    let log = running.log();
    assert_eq!(status.code(), Some(0), "{log}");
    let seen = ids(brokers, &output, PARTITIONS, "read_committed");
    assert!(
        seen.len() == 2000 && (0..2000u64).all(|id| seen.get(&id) == Some(&1)),
        "{seen:?}"
    );
}

#[test]
fn a_member_joining_or_leaving_mid_transaction_commits_it_and_both_run_on() {
    // A revoke waited 5 s for the revoked partitions' records, but their
    // transaction committed only at its 60 s timer, and then failed: they
    // had been revoked (exit 1). Now the revoke commits it at once.
    let brokers = bootstrap();
    let (input, output) = topics(brokers, "eos-join");
    let group = unique("eos-join-g");
    let long = [
        "--transaction-interval",
        "60s",
        "-X",
        "transaction.timeout.ms=120000",
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut first = Background::start(
        &mut copier(brokers, &input, &group, &output, &long),
        &dir.path().join("first.log"),
    );
    let records = numbered(2000, PARTITIONS);
    produce(brokers, &input, &records[..1000]);
    wait_for_output(brokers, &output, 1000, &mut first);
    assert!(
        watermarks(brokers, &output, "read_committed") < 1000,
        "the first 1000 records are in the open 60 s transaction"
    );
    let mut second = Background::start(
        &mut copier(brokers, &input, &group, &output, &long),
        &dir.path().join("second.log"),
    );
    // The join's revoke commits the first transaction long before its 60 s.
    let joined = Instant::now();
    wait_for_committed(brokers, &output, 1000, &mut first);
    assert!(
        joined.elapsed() < Duration::from_secs(40),
        "committed {:?} after the join",
        joined.elapsed()
    );
    produce(brokers, &input, &records[1000..]);
    // Most of them in the copiers' open transactions.
    wait_for_output(brokers, &output, 1900, &mut first);
    // The second leaves (a revoke for the first again), then the first.
    second.signal("TERM");
    let status = second.wait(Duration::from_secs(60));
    assert_eq!(status.code(), Some(0), "{}", second.log());
    first.signal("TERM");
    let status = first.wait(Duration::from_secs(60));
    assert_eq!(status.code(), Some(0), "{}", first.log());
    // What neither had read yet (if anything), copied by a last run.
    let log = finish(&mut copier(brokers, &input, &group, &output, &[]));
    let seen = ids(brokers, &output, PARTITIONS, "read_committed");
    assert!(
        seen.len() == 2000 && (0..2000u64).all(|id| seen.get(&id) == Some(&1)),
        "{seen:?}\n{log}"
    );
}

#[test]
fn groups_and_instance_ids_that_join_alike_do_not_fence_each_other() {
    // `-g P-x --instance-id y-z` and `-g P-x-y --instance-id z` were both
    // `streamer-P-x-y-z`: the second fenced the first (exit 1).
    let brokers = bootstrap();
    let (input, output) = topics(brokers, "eos-ids");
    let other = unique("eos-ids-other");
    create_topic(brokers, &other, PARTITIONS);
    let prefix = unique("eos-ids-g");
    let long = [
        "-X",
        "transaction.timeout.ms=60000",
        "--transaction-interval",
        "8s",
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut first = Background::start(
        copier(brokers, &input, &format!("{prefix}-x"), &output, &long)
            .args(["--instance-id", "y-z"]),
        &dir.path().join("first.log"),
    );
    produce(brokers, &input, &numbered(1000, PARTITIONS));
    wait_for_output(brokers, &output, 1000, &mut first);
    // The other command starts while the first's transaction is open.
    finish(
        copier(brokers, &other, &format!("{prefix}-x-y"), &output, &[])
            .args(["--instance-id", "z"]),
    );
    wait_for_committed(brokers, &output, 1000, &mut first);
    first.signal("TERM");
    let status = first.wait(Duration::from_secs(60));
    assert_eq!(status.code(), Some(0), "{}", first.log());
    let seen = ids(brokers, &output, PARTITIONS, "read_committed");
    assert!(
        seen.len() == 1000 && (0..1000u64).all(|id| seen.get(&id) == Some(&1)),
        "{seen:?}"
    );
}

#[test]
fn exactly_once_is_refused_where_it_cannot_hold() {
    let refused = |args: &[&str], message: &str| {
        let output = run_with_deadline(streamer("127.0.0.1:1").args(args), Duration::from_secs(10));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    };
    refused(
        &["file", "x.jsonl", "-o", "kafka://out", "--exactly-once"],
        "--exactly-once commits the input's Kafka offsets in the output's transaction: it \
         needs `streamer kafka` as the source",
    );
    refused(
        &["kafka", "-t", "in", "--exactly-once"],
        "--exactly-once writes the output in Kafka transactions: it needs -o kafka://TOPIC",
    );
    refused(
        &[
            "kafka",
            "-t",
            "in",
            "-o",
            "kafka://out",
            "--exactly-once",
            "--on-error",
            "skip",
        ],
        "--exactly-once with --on-error skip would let rejected records go outside the \
         transaction",
    );
    refused(
        &[
            "kafka",
            "-t",
            "in",
            "-o",
            "kafka://out",
            "--exactly-once",
            "--dead-letter",
            "d",
        ],
        "--dead-letter writes a file, which cannot be part of a Kafka transaction",
    );
    refused(
        &[
            "kafka",
            "-t",
            "in",
            "-o",
            "kafka://out",
            "--transaction-interval",
            "1s",
        ],
        "--transaction-interval applies with --exactly-once",
    );
    let copy = ["kafka", "-t", "in", "-o", "kafka://out", "--exactly-once"];
    refused(
        &[&copy[..], &["--limit", "300"]].concat(),
        "--limit stops in the middle of a batch, whose records' offsets then miss the last \
         transaction",
    );
    refused(
        &[&copy[..], &["-X", "isolation.level=read_uncommitted"]].concat(),
        "-X isolation.level=read_uncommitted would copy the messages of aborted transactions \
         too",
    );
    // librdkafka trims values and ignores their case: so does the check.
    refused(
        &[&copy[..], &["-X", "isolation.level= Read_Uncommitted "]].concat(),
        "-X isolation.level=read_uncommitted would copy the messages of aborted transactions \
         too",
    );
    for key in ["enable.auto.commit", "enable.auto.offset.store"] {
        refused(
            &[&copy[..], &["-X", &format!("{key}=true")]].concat(),
            &format!(
                "-X {key}=true would commit the input's offsets outside the transaction (an \
                 aborted transaction's records would then be lost)"
            ),
        );
    }
    refused(
        &[
            &copy[..],
            &["--transaction-interval", "20s"],
            &["-X", "transaction.timeout.ms=20000"],
        ]
        .concat(),
        "--transaction-interval (20000 ms) is not shorter than -X transaction.timeout.ms=20000: \
         the broker would abort every transaction before its commit",
    );
    refused(
        &[&copy[..], &["-X", "transaction.timeout.ms=soon"]].concat(),
        "-X transaction.timeout.ms=soon is not a number of milliseconds",
    );
    // It overflowed the transaction's deadline (a panic).
    refused(
        &[
            &copy[..],
            &["--transaction-interval", "18446744073709551615s"],
        ]
        .concat(),
        "`18446744073709551615s` is over 5m",
    );
}
