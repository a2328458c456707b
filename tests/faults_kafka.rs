//! Faults around Kafka (issue 14), through the real binary: the output's
//! disk fills while a group reads (no offset is committed past what was
//! written), and a broker killed with SIGKILL and started again mid-run,
//! under the source and under the `kafka://` output (it resumes, nothing
//! is lost, and the exit status says what happened).

mod common;
mod kafka_support;

use std::io::Write;
use std::time::Duration;

use common::file_size_limit;
use kafka_support::*;

const SESSION_TIMEOUT: &str = "session.timeout.ms=6000";

fn stderr_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The ids of the whole lines of an NDJSON file (a torn last line left out).
fn ids_in(path: &std::path::Path) -> Vec<u64> {
    read_json_lines(path)
        .iter()
        .map(|record| record["id"].as_u64().unwrap())
        .collect()
}

#[test]
fn a_disk_that_fills_under_a_group_commits_no_offset_past_the_output() {
    const TOTAL: usize = 20_000;
    let brokers = bootstrap();
    let topic = unique("fault-fsize");
    create_topic(brokers, &topic, 1);
    produce(brokers, &topic, &numbered(TOTAL, 1));
    let group = unique("fault-fsize-g");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let output = run_with_deadline(
        file_size_limit(
            streamer(brokers)
                .args(["kafka", "-t", &topic, "-g", &group, "--until-end"])
                .args(["-X", SESSION_TIMEOUT])
                .arg("-o")
                .arg(&out),
            128 * 1024,
        ),
        Duration::from_secs(60),
    );
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "streamer: error: cannot write {}: File too large (os error 27)",
            out.display()
        )),
        "{stderr}"
    );
    let first = ids_in(&out);
    assert_eq!(first, (0..first.len() as u64).collect::<Vec<_>>());
    let committed = committed(brokers, &group, &topic, 1)[0];
    assert!(
        committed <= first.len() as i64,
        "offset {committed} committed, {} records written",
        first.len()
    );

    // The group's next run starts at the commit: nothing is lost.
    let again = dir.path().join("again.jsonl");
    let output = run_with_deadline(
        streamer(brokers)
            .args(["kafka", "-t", &topic, "-g", &group, "--until-end"])
            .args(["-X", SESSION_TIMEOUT])
            .arg("-o")
            .arg(&again),
        Duration::from_secs(60),
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let second = ids_in(&again);
    assert_eq!(second.first().copied(), Some(committed.max(0) as u64));
    let mut all = first;
    all.extend(second);
    duplicates_without_loss(
        &all.iter()
            .map(|id| serde_json::json!({ "id": id }))
            .collect::<Vec<_>>(),
        TOTAL,
    );
}

#[test]
fn a_broker_killed_and_restarted_under_the_source_loses_nothing() {
    source_rides_out_a_broker_outage("killed", |broker| broker.kill());
}

/// Appends `ids` as JSON lines to `path`.
fn append_ids(path: &std::path::Path, ids: std::ops::Range<usize>) {
    let text: String = ids.map(|id| format!("{{\"id\":{id}}}\n")).collect();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

/// How many distinct ids the topic holds now; 0 while the broker, just
/// restarted, cannot say yet (`read_topic` fails on its errors).
fn distinct_ids(brokers: &str, topic: &str) -> usize {
    let Ok(messages) = std::panic::catch_unwind(|| read_topic(brokers, topic)) else {
        return 0;
    };
    let ids: std::collections::BTreeSet<u64> = messages
        .iter()
        .map(|(_, _, value)| {
            serde_json::from_slice::<serde_json::Value>(value).unwrap()["id"]
                .as_u64()
                .unwrap()
        })
        .collect();
    ids.len()
}

#[test]
fn a_broker_killed_and_restarted_under_the_kafka_output_loses_nothing() {
    if external_broker() {
        eprintln!("skipped: KAFKA_BOOTSTRAP_SERVERS is set, and this test kills its own broker");
        return;
    }
    let broker = OwnBroker::start();
    let brokers = broker.bootstrap.as_str();
    let topic = unique("fault-kill-sink");
    create_topic(brokers, &topic, 2);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    append_ids(&input, 0..2000);
    let mut running = Background::start(
        streamer(brokers).args(["file", "-F"]).arg(&input).args([
            "-o",
            &format!("kafka://{topic}"),
            "-v",
        ]),
        &dir.path().join("log"),
    );
    wait_until(
        "the first records on the topic",
        Duration::from_secs(60),
        || distinct_ids(brokers, &topic) == 2000,
    );

    broker.kill();
    // Written while the broker is down: they wait in the producer.
    append_ids(&input, 2000..4000);
    wait_until("the outage is reported", Duration::from_secs(60), || {
        running
            .log()
            .contains(&format!("no broker at {brokers} answers"))
    });
    broker.run("start");
    wait_until(
        "every record on the topic",
        Duration::from_secs(120),
        || distinct_ids(brokers, &topic) == 4000,
    );
    running.signal("TERM");
    let status = running.wait(Duration::from_secs(30));
    assert!(status.success(), "{}", running.log());
    let total = read_topic(brokers, &topic).len();
    eprintln!(
        "broker killed under the output: {} duplicates",
        total - 4000
    );
}

#[test]
fn a_kafka_output_whose_broker_stays_dead_fails_naming_it() {
    if external_broker() {
        eprintln!("skipped: KAFKA_BOOTSTRAP_SERVERS is set, and this test kills its own broker");
        return;
    }
    let broker = OwnBroker::start();
    let brokers = broker.bootstrap.as_str();
    let topic = unique("fault-dead-sink");
    create_topic(brokers, &topic, 1);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    append_ids(&input, 0..100);
    let mut running = Background::start(
        streamer(brokers)
            .args(["file", "-F"])
            .arg(&input)
            .args(["-o", &format!("kafka://{topic}")])
            .args(["-X", "message.timeout.ms=3000"]),
        &dir.path().join("log"),
    );
    wait_until(
        "the first records on the topic",
        Duration::from_secs(60),
        || distinct_ids(brokers, &topic) == 100,
    );
    broker.kill();
    append_ids(&input, 100..200);
    let status = running.wait(Duration::from_secs(60));
    let log = running.log();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(
        log.contains(&format!(
            "streamer: error: kafka: cannot deliver to topic `{topic}` (brokers {brokers}): \
             Local: Message timed out"
        )),
        "{log}"
    );
}
