//! The Kafka source in a consumer group as production runs it: members
//! joining mid-run, static membership, restarts, pattern subscriptions.
//! The real `streamer` binary against the real broker; each test has its
//! own topics and groups.

mod kafka_support;

use std::path::Path;
use std::time::{Duration, Instant};

use kafka_support::*;

/// Dead members are noticed after this rather than librdkafka's 45 s.
const SESSION_TIMEOUT: &str = "session.timeout.ms=6000";

/// A slow reader of a FIFO: the member writing to it is held back by
/// the reader, so its pipeline is full of batches read but not yet written
/// (as under a slow sink), the case a rebalance must handle.
struct SlowReader {
    lines: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SlowReader {
    /// Makes the FIFO `path` and reads it at about `bytes_per_10ms` per 10 ms.
    fn start(path: &Path, bytes_per_10ms: usize) -> Self {
        let status = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .expect("mkfifo");
        assert!(status.success());
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (path, shared) = (path.to_path_buf(), lines.clone());
        let thread = std::thread::spawn(move || {
            use std::io::Read;
            let mut fifo = std::fs::File::open(&path).expect("open fifo");
            let mut buffer = vec![0u8; bytes_per_10ms];
            let mut partial = Vec::new();
            loop {
                let started = Instant::now();
                let n = fifo.read(&mut buffer).expect("read fifo");
                if n == 0 {
                    return;
                }
                partial.extend_from_slice(&buffer[..n]);
                let whole = partial
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |i| i + 1);
                let records: Vec<serde_json::Value> = partial[..whole]
                    .split(|&b| b == b'\n')
                    .filter(|line| !line.is_empty())
                    .map(|line| serde_json::from_slice(line).expect("a JSON line"))
                    .collect();
                partial.drain(..whole);
                shared.lock().unwrap().extend(records);
                // Pacing, not synchronisation: this is the slow sink.
                std::thread::sleep(Duration::from_millis(10).saturating_sub(started.elapsed()));
            }
        });
        SlowReader {
            lines,
            thread: Some(thread),
        }
    }

    fn count(&self) -> usize {
        self.lines.lock().unwrap().len()
    }

    /// Every record read, once the writer has closed the FIFO.
    fn finish(mut self) -> Vec<serde_json::Value> {
        self.thread.take().unwrap().join().unwrap();
        std::mem::take(&mut *self.lines.lock().unwrap())
    }
}

/// A member of `group` reading `topic` into `out`, logging to `log`.
fn member(
    brokers: &str,
    topic: &str,
    group: &str,
    out: &Path,
    log: &Path,
    extra: &[&str],
) -> Background {
    Background::start(
        streamer(brokers)
            .args(["-v", "kafka", "-t", topic, "-g", group])
            .args(["-X", SESSION_TIMEOUT])
            .args(extra)
            .arg("-o")
            .arg(out),
        log,
    )
}

fn stop(member: &mut Background) {
    member.signal("TERM");
    let status = member.wait(Duration::from_secs(30));
    assert!(status.success(), "{}", member.log());
}

#[test]
fn a_member_joining_mid_run_reads_almost_nothing_twice() {
    let brokers = bootstrap();
    let topic = unique("join");
    let group = unique("join-g");
    create_topic(brokers, &topic, 4);
    let total = 300_000;
    produce(brokers, &topic, &numbered(total, 4));
    let dir = tempfile::tempdir().unwrap();
    let (out_a, out_b) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    // About 15k records a second each: A is far from done when B joins,
    // with its pipeline full.
    let reader_a = SlowReader::start(&out_a, 8 * 1024);
    let reader_b = SlowReader::start(&out_b, 8 * 1024);

    let mut a = member(
        brokers,
        &topic,
        &group,
        &out_a,
        &dir.path().join("a.log"),
        &[],
    );
    wait_until("A under way", Duration::from_secs(60), || {
        reader_a.count() >= total / 10
    });
    let mut b = member(
        brokers,
        &topic,
        &group,
        &out_b,
        &dir.path().join("b.log"),
        &[],
    );
    wait_until("B assigned", Duration::from_secs(60), || {
        b.log().contains("assigned 2 partitions")
    });
    wait_until("every record written", Duration::from_secs(90), || {
        reader_a.count() + reader_b.count() >= total
            && id_counts(
                reader_a
                    .lines
                    .lock()
                    .unwrap()
                    .iter()
                    .chain(reader_b.lines.lock().unwrap().iter()),
            )
            .len()
                >= total
    });
    stop(&mut a);
    stop(&mut b);

    let mut records = reader_a.finish();
    let from_b = reader_b.finish();
    assert!(
        from_b.len() >= total / 5,
        "B joined when A had read most of the topic ({} records left to B): \
         the test tests nothing",
        from_b.len()
    );
    records.extend(from_b);
    let duplicates = duplicates_without_loss(&records, total);
    eprintln!(
        "member joining mid-run: {duplicates} duplicates of {total} ({:.2} %)",
        duplicates as f64 * 100.0 / total as f64
    );
    assert!(
        duplicates * 100 < total,
        "{duplicates} of {total} records read twice; A's log:\n{}\nB's log:\n{}",
        a.log(),
        b.log()
    );
}

/// The `id`s of `path`'s records.
fn ids(path: &Path) -> std::collections::BTreeSet<u64> {
    id_counts(&read_json_lines(path)).into_keys().collect()
}

/// Kills `member` with -9 once it has written `lines` lines.
fn kill_after(member: &mut Background, out: &Path, lines: usize) {
    member.wait_for_lines(out, lines, Duration::from_secs(60));
    member.signal("KILL");
    member.wait(Duration::from_secs(10));
}

#[test]
fn a_static_member_restarted_after_kill_9_gets_its_partitions_back_at_once() {
    let brokers = bootstrap();
    let topic = unique("static");
    let group = unique("static-g");
    create_topic(brokers, &topic, 2);
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (dir.path().join("1.jsonl"), dir.path().join("2.jsonl"));
    // A session far longer than the wait allowed below.
    let static_member = ["--instance-id", "host-1", "-X", "session.timeout.ms=45000"];
    let messages = numbered(200, 2);

    let mut a = member(
        brokers,
        &topic,
        &group,
        &first,
        &dir.path().join("1.log"),
        &static_member,
    );
    produce(brokers, &topic, &messages[..100]);
    kill_after(&mut a, &first, 100);

    let restarted = Instant::now();
    let mut again = member(
        brokers,
        &topic,
        &group,
        &second,
        &dir.path().join("2.log"),
        &static_member,
    );
    produce(brokers, &topic, &messages[100..]);
    wait_until(
        "the restarted member's records",
        Duration::from_secs(60),
        || (100..200).all(|id| ids(&second).contains(&id)),
    );
    let took = restarted.elapsed();
    stop(&mut again);
    eprintln!("static member back after kill -9: records flowed again in {took:?}");
    assert!(
        took < Duration::from_secs(15),
        "the restarted member waited {took:?} (the old session?); its log:\n{}",
        again.log()
    );
    assert!(
        !again.log().contains("waiting for the group"),
        "{}",
        again.log()
    );
    let all: std::collections::BTreeSet<u64> = ids(&first).union(&ids(&second)).copied().collect();
    assert_eq!(all.len(), 200, "nothing lost");
}

#[test]
fn a_restart_waiting_out_the_old_session_says_so_then_reads() {
    let brokers = bootstrap();
    let topic = unique("wait-session");
    let group = unique("wait-session-g");
    create_topic(brokers, &topic, 2);
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (dir.path().join("1.jsonl"), dir.path().join("2.jsonl"));
    let session = ["-X", "session.timeout.ms=15000"];
    let messages = numbered(200, 2);

    let mut a = member(
        brokers,
        &topic,
        &group,
        &first,
        &dir.path().join("1.log"),
        &session,
    );
    produce(brokers, &topic, &messages[..100]);
    kill_after(&mut a, &first, 100);

    let mut again = member(
        brokers,
        &topic,
        &group,
        &second,
        &dir.path().join("2.log"),
        &session,
    );
    produce(brokers, &topic, &messages[100..]);
    let note = format!(
        "waiting for the group to hand out partitions: a previous member of group {group} \
         may still hold them until its session times out (session.timeout.ms=15000); \
         --instance-id avoids this"
    );
    wait_until("the waiting note", Duration::from_secs(15), || {
        again.log().contains(&note)
    });
    assert!(
        !(100..200).any(|id| ids(&second).contains(&id)),
        "records flowed before the note: nothing was waited for"
    );
    wait_until(
        "records after the old session ended",
        Duration::from_secs(60),
        || (100..200).all(|id| ids(&second).contains(&id)),
    );
    stop(&mut again);
    assert_eq!(again.log().matches(&note).count(), 1, "said once");
    let all: std::collections::BTreeSet<u64> = ids(&first).union(&ids(&second)).copied().collect();
    assert_eq!(all.len(), 200, "nothing lost");
}

#[test]
fn a_pattern_sees_a_topic_created_mid_run_within_seconds() {
    let brokers = bootstrap();
    let prefix = unique("pattern-new");
    let group = unique("pattern-new-g");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    create_topic(brokers, &format!("{prefix}_first"), 1);
    let mut running = member(
        brokers,
        &format!("^{prefix}_.*"),
        &group,
        &out,
        &dir.path().join("log"),
        &[],
    );
    wait_until("joined", Duration::from_secs(60), || {
        running.log().contains("assigned 1 partitions")
    });
    let topic = format!("{prefix}_later");
    create_topic(brokers, &topic, 1);
    let created = Instant::now();
    produce(brokers, &topic, &numbered(10, 1));
    running.wait_for_lines(&out, 10, Duration::from_secs(60));
    let took = created.elapsed();
    stop(&mut running);
    eprintln!("a topic created mid-run under a pattern: records in {took:?}");
    assert!(
        took < Duration::from_secs(15),
        "records of the new topic came after {took:?}"
    );
    assert_eq!(ids(&out).len(), 10);
}
