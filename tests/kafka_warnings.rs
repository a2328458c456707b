//! Warnings about a topic deleted mid-run: the real binary against the
//! real broker, as in tests/kafka.rs.

mod kafka_support;

use std::time::{Duration, Instant};

use kafka_support::*;

/// The WARN lines of a log.
fn warnings(log: &str) -> Vec<&str> {
    log.lines().filter(|line| line.contains(" WARN ")).collect()
}

/// Starts `streamer kafka --topic SUBSCRIPTION ARGS..` with one message in
/// `topic`, waits until it is read, deletes `topic`, and waits until the
/// log satisfies `seen` (at most 60 s); then stops the run and returns its
/// log as it stood before the stop, and the seconds since the deletion.
fn delete_while_reading(
    subscription: &str,
    topic: &str,
    args: &[&str],
    seen: impl Fn(&str) -> bool,
) -> (String, f64) {
    let brokers = bootstrap();
    create_topic(brokers, topic, 1);
    produce(brokers, topic, &numbered(1, 1));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let group = unique("warn-group");
    let mut streamer = Background::start(
        streamer(brokers)
            .args(args)
            .args(["kafka", "--topic", subscription, "--group", &group])
            .arg("-o")
            .arg(&out),
        &dir.path().join("stderr"),
    );
    streamer.wait_for_lines(&out, 1, Duration::from_secs(60));
    delete_topic(brokers, topic);
    let deleted = Instant::now();
    wait_until("the warnings", Duration::from_secs(60), || {
        seen(&streamer.log())
    });
    let before_stop = streamer.log();
    let seconds = deleted.elapsed().as_secs_f64();
    streamer.signal("TERM");
    streamer.wait(Duration::from_secs(30));
    (before_stop, seconds)
}

#[test]
fn deleted_topic_under_a_regex_warns_at_most_once_a_second() {
    let topic = unique("warn-regex");
    // Metadata refreshed twice a second (librdkafka's default is every 5
    // minutes), so that the deletion is seen, and repeated, within seconds.
    let (log, seconds) = delete_while_reading(
        &format!("^{topic}"),
        &topic,
        &["-X", "topic.metadata.refresh.interval.ms=500"],
        |log| {
            log.lines()
                .filter(|line| line.contains("not available"))
                .count()
                >= 4
        },
    );
    let repeated: Vec<&str> = warnings(&log)
        .into_iter()
        .filter(|line| line.contains("Subscribed topic not available"))
        .collect();
    // The first at once, then at most one a second, saying how many were
    // held back (librdkafka repeats it twice a second here).
    assert!(
        repeated.len() >= 4 && repeated.len() as f64 <= seconds + 1.0,
        "{} warnings in {seconds:.1} s; the log:\n{log}",
        repeated.len()
    );
    assert!(
        repeated
            .iter()
            .any(|line| line.contains("more like this held back in the last second or so")),
        "{log}"
    );
}

#[test]
fn deleted_topic_named_explicitly_gets_a_warning() {
    let topic = unique("warn-named");
    let expected = format!(
        "WARN kafka_source: topic `{topic}` no longer exists (deleted?): nothing more is read \
         from it unless it is created again"
    );
    let (log, _) = delete_while_reading(&topic, &topic, &[], |log| log.contains(&expected));
    assert_eq!(
        warnings(&log)
            .iter()
            .filter(|line| line.contains(&expected))
            .count(),
        1,
        "{log}"
    );
}
