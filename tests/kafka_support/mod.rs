//! Helpers for tests that run the real `streamer` binary against a real
//! Kafka broker: the broker itself, unique names, topics, producing test
//! data, and running the binary with deadlines.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;

/// The repository root (where `scripts/kafka-broker` lives).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The broker the tests use: `$KAFKA_BOOTSTRAP_SERVERS` if set, else the
/// project's own broker on 127.0.0.1:9092, started (once per test process)
/// by `scripts/kafka-broker start`, which does nothing if it already runs.
pub fn bootstrap() -> &'static str {
    static BOOTSTRAP: OnceLock<String> = OnceLock::new();
    BOOTSTRAP.get_or_init(|| {
        if let Ok(servers) = std::env::var("KAFKA_BOOTSTRAP_SERVERS") {
            if !servers.trim().is_empty() {
                return servers;
            }
        }
        let output = broker_script(&[], &["start"]);
        assert!(
            output.status.success(),
            "scripts/kafka-broker start failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        "127.0.0.1:9092".to_string()
    })
}

/// True when the tests run against a broker they did not start (so they
/// must not stop or restart brokers).
pub fn external_broker() -> bool {
    std::env::var("KAFKA_BOOTSTRAP_SERVERS").is_ok_and(|s| !s.trim().is_empty())
}

/// Runs `scripts/kafka-broker ARGS` with extra environment variables.
pub fn broker_script(env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = Command::new(repo().join("scripts/kafka-broker"));
    command.args(args).stdin(Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("run scripts/kafka-broker")
}

/// A name no other test (in this run or an earlier one) uses.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    format!(
        "{prefix}-{}-{seconds}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Creates a topic with `partitions` partitions and waits until every
/// partition has a leader.
pub fn create_topic(brokers: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client");
    let new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = futures::executor::block_on(admin.create_topics([&new_topic], &options))
        .expect("create topic");
    for result in results {
        result.unwrap_or_else(|(name, code)| panic!("cannot create topic {name}: {code}"));
    }
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("metadata client");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .ok()
            .and_then(|metadata| {
                metadata
                    .topics()
                    .iter()
                    .find(|t| t.name() == topic)
                    .map(|t| {
                        t.error().is_none()
                            && t.partitions().len() == partitions as usize
                            && t.partitions().iter().all(|p| p.leader() >= 0)
                    })
            })
            .unwrap_or(false);
        if ready {
            return;
        }
        assert!(Instant::now() < deadline, "topic {topic} has no leaders");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One message to produce.
#[derive(Debug, Clone, Default)]
pub struct TestMessage {
    pub partition: i32,
    pub key: Option<Vec<u8>>,
    /// `None` produces a tombstone.
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
}

/// `n` JSON messages `{"id":i,"body":"..."}`, spread round-robin over
/// `partitions`, keyed `k<i>`.
pub fn numbered(n: usize, partitions: i32) -> Vec<TestMessage> {
    (0..n)
        .map(|i| TestMessage {
            partition: (i % partitions as usize) as i32,
            key: Some(format!("k{i}").into_bytes()),
            value: Some(format!(r#"{{"id":{i},"body":"message number {i}"}}"#).into_bytes()),
            headers: Vec::new(),
        })
        .collect()
}

/// Produces `messages` (to their partitions, in order) and waits until the
/// broker has every one.
pub fn produce(brokers: &str, topic: &str, messages: &[TestMessage]) {
    produce_with(brokers, topic, messages, &[]);
}

/// [`produce`] with extra producer settings.
pub fn produce_with(
    brokers: &str,
    topic: &str,
    messages: &[TestMessage],
    settings: &[(&str, &str)],
) {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .set("enable.idempotence", "true");
    for (key, value) in settings {
        config.set(*key, *value);
    }
    let producer: BaseProducer = config.create().expect("producer");
    for message in messages {
        let mut headers = OwnedHeaders::new();
        for (key, value) in &message.headers {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
        loop {
            let mut record: BaseRecord<'_, [u8], [u8]> =
                BaseRecord::to(topic).partition(message.partition);
            if let Some(key) = &message.key {
                record = record.key(key.as_slice());
            }
            if let Some(value) = &message.value {
                record = record.payload(value.as_slice());
            }
            if !message.headers.is_empty() {
                record = record.headers(headers.clone());
            }
            match producer.send(record) {
                Ok(()) => break,
                Err((error, _)) => {
                    // Queue full: let deliveries drain it.
                    assert!(
                        matches!(
                            error,
                            rdkafka::error::KafkaError::MessageProduction(
                                rdkafka::types::RDKafkaErrorCode::QueueFull
                            )
                        ),
                        "produce failed: {error}"
                    );
                    producer.poll(Duration::from_millis(50));
                }
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer
        .flush(Duration::from_secs(60))
        .expect("every test message delivered");
}

/// Reads a whole topic (as of now) with a plain consumer: (partition, key,
/// value) per message, by partition then offset.
pub fn read_topic(brokers: &str, topic: &str) -> Vec<(i32, Option<Vec<u8>>, Vec<u8>)> {
    use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
    use rdkafka::Message;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("read-topic"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let partitions = metadata.topics()[0].partitions().len() as i32;
    let mut ends = BTreeMap::new();
    let mut list = TopicPartitionList::new();
    for partition in 0..partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, Duration::from_secs(10))
            .expect("watermarks");
        if high > low {
            ends.insert(partition, high);
            list.add_partition_offset(topic, partition, Offset::Offset(low))
                .unwrap();
        }
    }
    let mut out = Vec::new();
    if ends.is_empty() {
        return out;
    }
    consumer.assign(&list).expect("assign");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut done = BTreeMap::new();
    while done.len() < ends.len() {
        assert!(Instant::now() < deadline, "reading {topic} timed out");
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let message = message.expect("consume");
            out.push((
                message.partition(),
                message.key().map(<[u8]>::to_vec),
                message.payload().unwrap_or_default().to_vec(),
            ));
            if message.offset() + 1 >= ends[&message.partition()] {
                done.insert(message.partition(), ());
            }
        }
    }
    out.sort_by_key(|(partition, _, _)| *partition);
    out
}

/// The `streamer` binary with `--brokers`, logs at their defaults.
pub fn streamer(brokers: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_streamer"));
    command
        .arg("--brokers")
        .arg(brokers)
        .env_remove("RUST_LOG")
        .env_remove("STREAMER_BROKERS")
        .stdin(Stdio::null());
    command
}

/// Runs `command` to its end, killing it (and failing) after `limit`.
pub fn run_with_deadline(command: &mut Command, limit: Duration) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn streamer");
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let output = child.wait_with_output().expect("output");
            panic!(
                "streamer did not finish within {limit:?}; stderr:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A `streamer` running in the background, its stderr going to a file.
pub struct Background {
    pub child: Child,
    pub stderr: PathBuf,
}

impl Background {
    /// Starts `command` with stdout discarded and stderr to `stderr`.
    pub fn start(command: &mut Command, stderr: &Path) -> Self {
        let file = std::fs::File::create(stderr).expect("stderr file");
        let child = command
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("spawn streamer");
        Background {
            child,
            stderr: stderr.to_path_buf(),
        }
    }

    /// What the process logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Sends a signal (`libc`-free: through `kill(1)`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits until `path` has at least `lines` lines, failing after
    /// `limit` or if the process ends first.
    pub fn wait_for_lines(&mut self, path: &Path, lines: usize, limit: Duration) {
        self.wait_for_lines_explained(path, lines, limit, String::new);
    }

    /// [`Background::wait_for_lines`], adding what `explain` says to the
    /// failure (say, the broker's log).
    pub fn wait_for_lines_explained(
        &mut self,
        path: &Path,
        lines: usize,
        limit: Duration,
        explain: impl Fn() -> String,
    ) {
        let deadline = Instant::now() + limit;
        while count_lines(path) < lines {
            if let Some(status) = self.child.try_wait().expect("wait") {
                panic!("streamer ended ({status}) early; its log:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "{} has {} lines, not {lines}, after {limit:?}; streamer's log:\n{}\n{}",
                path.display(),
                count_lines(path),
                self.log(),
                explain()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits for the process to end, failing after `limit`.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!(
                    "streamer did not exit within {limit:?}; its log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        // A failed test must not leave its streamer running.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Polls `condition` every 20 ms until it holds, failing after `limit`.
pub fn wait_until(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Complete lines in a file (a line being written is not counted).
pub fn count_lines(path: &Path) -> usize {
    std::fs::read(path)
        .map(|bytes| bytes.iter().filter(|&&b| b == b'\n').count())
        .unwrap_or(0)
}

/// Every complete line of an NDJSON file, parsed.
pub fn read_json_lines(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.split_inclusive('\n')
        .filter(|line| line.ends_with('\n'))
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("bad line {line:?}: {e}")))
        .collect()
}

/// Every `id` of `total` is in `records`; returns how many came twice or more.
pub fn duplicates_without_loss(records: &[serde_json::Value], total: usize) -> usize {
    let counts = id_counts(records);
    let missing: Vec<u64> = (0..total as u64)
        .filter(|id| !counts.contains_key(id))
        .collect();
    assert!(
        missing.is_empty(),
        "lost {} records, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    counts.values().map(|n| n - 1).sum()
}

/// How many times each `id` appears in `records`.
pub fn id_counts<'a>(
    records: impl IntoIterator<Item = &'a serde_json::Value>,
) -> BTreeMap<u64, usize> {
    let mut counts = BTreeMap::new();
    for record in records {
        let id = record["id"]
            .as_u64()
            .unwrap_or_else(|| panic!("no id in {record}"));
        *counts.entry(id).or_insert(0) += 1;
    }
    counts
}

/// A broker of the test's own, on free ports with its data in a temporary
/// directory, for tests that stop and start it; stopped when dropped. It
/// also listens for SASL/PLAIN logins (user `alice`, password `secret`).
pub struct OwnBroker {
    env: Vec<(String, String)>,
    _data: tempfile::TempDir,
    /// Its PLAINTEXT listener.
    pub bootstrap: String,
    /// Its SASL_PLAINTEXT listener.
    pub sasl_bootstrap: String,
}

impl OwnBroker {
    /// Starts it (waits until it answers).
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts it with extra `server.properties` lines (which win over the
    /// script's own).
    pub fn start_with(config: &[&str]) -> Self {
        let (port, controller, sasl) = (free_port(), free_port(), free_port());
        let data = tempfile::tempdir().expect("broker data dir");
        let listeners = format!(
            "PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller},SASL_PLAINTEXT://127.0.0.1:{sasl}"
        );
        let extra = [
            format!("listeners={listeners}"),
            format!("advertised.listeners={listeners}"),
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT".into(),
            "sasl.enabled.mechanisms=PLAIN".into(),
            "listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_alice=\"secret\";".into(),
        ]
        .into_iter()
        .chain(config.iter().map(|line| line.to_string()))
        .collect::<Vec<_>>()
        .join("\n");
        let broker = OwnBroker {
            env: vec![
                ("KAFKA_PORT".into(), port.to_string()),
                ("KAFKA_CONTROLLER_PORT".into(), controller.to_string()),
                (
                    "STREAMER_KAFKA_DATA".into(),
                    data.path().join("broker").display().to_string(),
                ),
                ("KAFKA_EXTRA_CONFIG".into(), extra),
            ],
            _data: data,
            bootstrap: format!("127.0.0.1:{port}"),
            sasl_bootstrap: format!("127.0.0.1:{sasl}"),
        };
        broker.run("start");
        broker
    }

    /// `scripts/kafka-broker ARGS` with this broker's environment.
    fn script(&self, args: &[&str]) -> Output {
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        broker_script(&env, args)
    }

    /// The last lines of this broker's own log.
    pub fn log_tail(&self) -> String {
        let output = self.script(&["logs", "60"]);
        format!(
            "the broker's log:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    }

    /// Kills the broker with SIGKILL, as a crash would (no clean shutdown,
    /// its log and group state left as they were), and waits until the
    /// process is gone. `run("start")` starts it again on the same ports
    /// and data directory.
    pub fn kill(&self) {
        let data = &self
            .env
            .iter()
            .find(|(key, _)| key == "STREAMER_KAFKA_DATA")
            .expect("a data directory")
            .1;
        let pid_file = Path::new(data).join("broker.pid");
        let pid = std::fs::read_to_string(&pid_file).expect("the broker's pid file");
        let pid = pid.trim().to_string();
        let killed = Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .expect("kill");
        assert!(killed.success(), "kill -KILL {pid} failed");
        // Gone, or a zombie waiting to be reaped: either way its ports are
        // free. The pid file goes too, or `start` would wait for it.
        wait_until("the killed broker's end", Duration::from_secs(30), || {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map_or(true, |stat| stat.contains(") Z "))
        });
        let _ = std::fs::remove_file(pid_file);
    }

    /// Runs `scripts/kafka-broker COMMAND` for this broker.
    pub fn run(&self, command: &str) {
        let output = self.script(&[command]);
        assert!(
            output.status.success(),
            "scripts/kafka-broker {command} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        let _ = self.script(&["stop"]);
    }
}

/// Deletes a topic (and waits for the broker to accept the deletion).
pub fn delete_topic(brokers: &str, topic: &str) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client");
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results =
        futures::executor::block_on(admin.delete_topics(&[topic], &options)).expect("delete topic");
    for result in results {
        result.unwrap_or_else(|(name, code)| panic!("cannot delete topic {name}: {code}"));
    }
}

/// The offsets group `group` has committed for `topic`'s partitions
/// (`-1` where none).
pub fn committed(brokers: &str, group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut list = TopicPartitionList::new();
    for partition in 0..partitions {
        list.add_partition(topic, partition);
    }
    let Ok(offsets) = consumer.committed_offsets(list, Duration::from_secs(10)) else {
        return vec![-1; partitions as usize];
    };
    offsets
        .elements()
        .iter()
        .map(|element| match element.offset() {
            Offset::Offset(offset) => offset,
            _ => -1,
        })
        .collect()
}

/// A `streamer kafka` run on a broker of its own that goes away mid-run
/// (`outage`: stopped, or killed) and is started again: the run reports
/// the outage and the recovery, writes all 4,000 records (duplicates only
/// from after its last commit) and exits 0 at SIGTERM.
pub fn source_rides_out_a_broker_outage(how: &str, outage: impl Fn(&OwnBroker)) {
    if external_broker() {
        eprintln!("skipped: KAFKA_BOOTSTRAP_SERVERS is set, and this test restarts its own broker");
        return;
    }
    let broker = OwnBroker::start();
    let brokers = broker.bootstrap.as_str();
    let topic = unique("outage");
    create_topic(brokers, &topic, 4);
    let messages = numbered(4000, 4);
    produce(brokers, &topic, &messages[..2000]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let group = unique("outage-g");
    let mut running = Background::start(
        streamer(brokers)
            .args(["kafka", "-t", &topic, "-g", &group])
            // -v: the group's events, should this ever fail.
            .args(["-X", "session.timeout.ms=6000", "-v"])
            .arg("-o")
            .arg(&out),
        &dir.path().join("log"),
    );
    running.wait_for_lines(&out, 2000, Duration::from_secs(60));
    // The outage once the records written are committed (every second).
    wait_until("the first commits", Duration::from_secs(30), || {
        committed(brokers, &group, &topic, 4).iter().sum::<i64>() == 2000
    });

    outage(&broker);
    wait_until("the outage is reported", Duration::from_secs(60), || {
        running
            .log()
            .contains(&format!("no broker at {brokers} answers"))
    });
    broker.run("start");
    produce(brokers, &topic, &messages[2000..]);
    running.wait_for_lines_explained(&out, 4000, Duration::from_secs(120), || broker.log_tail());
    wait_until("the recovery is reported", Duration::from_secs(30), || {
        running.log().contains("answer again")
    });
    running.signal("TERM");
    let status = running.wait(Duration::from_secs(30));
    assert!(status.success(), "{}", running.log());
    let duplicates = duplicates_without_loss(&read_json_lines(&out), 4000);
    eprintln!("broker {how} under the source: {duplicates} duplicates");
}

/// A port free on the loopback now, for a broker's listener.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
