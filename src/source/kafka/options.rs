//! What the Kafka source is asked to do ([`KafkaOptions`]), the checks
//! made on it before any client exists, and the consumer settings that
//! differ from librdkafka's defaults.

use std::time::Duration;

use super::start::StartAt;
use crate::codec::Format;
use crate::error::{Error, Result};
use crate::exactly_once::Link;
use crate::kafka::{self, KafkaConfig};

/// How long a consumer waits for its first assignment before saying why
/// it may be waiting (a dead member's session still holding partitions).
pub(super) const ASSIGNMENT_PATIENCE: Duration = Duration::from_secs(5);

/// librdkafka's `session.timeout.ms` default, for the waiting note.
const DEFAULT_SESSION_TIMEOUT_MS: &str = "45000";

/// The periodic stats line (`--stats-interval`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatsLine {
    /// How often.
    pub every: Duration,
    /// As an info log line (`-v`), else printed to stderr as it is (a
    /// terminal without `-v`).
    pub as_log: bool,
}

/// Where a group without committed offsets starts (`--offset-reset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OffsetReset {
    /// At the oldest message still in the partition.
    #[default]
    Earliest,
    /// At the end: only messages produced from now on.
    Latest,
}

impl OffsetReset {
    /// The value of librdkafka's `auto.offset.reset`.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            OffsetReset::Earliest => "earliest",
            OffsetReset::Latest => "latest",
        }
    }
}

/// How the Kafka source consumes.
#[derive(Debug, Clone)]
pub struct KafkaOptions {
    /// Brokers and librdkafka settings.
    pub config: KafkaConfig,
    /// Topic names; one starting with `^` is a regular expression.
    pub topics: Vec<String>,
    /// The consumer group.
    pub group: String,
    /// Where to start without a committed offset.
    pub offset_reset: OffsetReset,
    /// Interrupted once every assigned partition is read up to its end offset as
    /// of its assignment.
    pub until_end: bool,
    /// What message values hold.
    pub format: Format,
    /// CSV cell separator.
    pub delimiter: u8,
    /// CSV: each message's first row names the columns.
    pub header: bool,
    /// Keep each message's key, timestamp and headers for `_origin`.
    pub origin: bool,
    /// `--instance-id`: static membership (`group.instance.id`).
    pub instance_id: Option<String>,
    /// `--from`, `--from-timestamp`: where this run starts, over the
    /// group's committed offsets.
    pub start: StartAt,
    /// `--keep-tombstones`: a message without a value, or with an empty
    /// one where a record needs one, becomes `{"_key":..,"_value":null}`
    /// (or `""`) instead of a rejection.
    pub keep_tombstones: bool,
    /// The stats line while it runs, if wanted.
    pub stats: Option<StatsLine>,
    /// `--exactly-once`: the link to the transactional sink, which commits
    /// the offsets; the consumer commits none itself.
    pub exactly_once: Option<Link>,
}

impl KafkaOptions {
    /// The topics named outright (not `^patterns`): the ones the start-up
    /// check and the topic watcher can look up.
    pub(super) fn named_topics(&self) -> Vec<String> {
        self.topics
            .iter()
            .filter(|topic| !topic.starts_with('^'))
            .cloned()
            .collect()
    }

    /// The checks that need no broker: at least one topic, valid names, and
    /// no `--until-end` with a cooperative assignment strategy. Run by
    /// [`crate::config::RunConfig::from_cli`] before anything starts, and by
    /// [`super::KafkaSource::new`] for options a library user made.
    pub fn validate(&self) -> Result<()> {
        if self.topics.is_empty() {
            return Err(Error::Config("give at least one --topic".into()));
        }
        for topic in self.topics.iter().filter(|t| !t.starts_with('^')) {
            kafka::check_topic_name(topic).map_err(Error::Config)?;
        }
        // Only a pattern can match a topic not named: a --from for any
        // other would silently do nothing.
        let patterns = self.topics.iter().any(|t| t.starts_with('^'));
        if let Some(stray) = self
            .start
            .offsets
            .iter()
            .find(|at| !patterns && !self.topics.contains(&at.topic))
        {
            return Err(Error::Config(format!(
                "--from {}:{}:{} names a topic this run does not read (--topic {})",
                stray.topic,
                stray.partition,
                stray.offset,
                self.topics.join(",")
            )));
        }
        // A cooperative rebalance first hands a joining member an empty
        // incremental assignment, which `--until-end` would take as "all
        // read" and exit having read nothing.
        let cooperative = self.config.settings.iter().any(|(key, value)| {
            key == "partition.assignment.strategy" && value.contains("cooperative")
        });
        if self.until_end && cooperative {
            return Err(Error::Config(
                "--until-end does not work with a cooperative partition.assignment.strategy; \
                 use the default (range,roundrobin) or group.protocol=consumer"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The line said once when no partition comes for a while.
    pub(super) fn waiting_note(&self) -> String {
        let session = self
            .config
            .settings
            .iter()
            .rfind(|(key, _)| key == "session.timeout.ms")
            .map_or(DEFAULT_SESSION_TIMEOUT_MS, |(_, value)| value.as_str());
        let cure = if self.instance_id.is_some() {
            "a member restarted with the same --instance-id takes them back at once"
        } else {
            "--instance-id avoids this"
        };
        format!(
            "waiting for the group to hand out partitions: a previous member of group {} \
             may still hold them until its session times out (session.timeout.ms={session}); {cure}",
            self.group
        )
    }

    /// The consumer's settings that differ from librdkafka's defaults; `-X`
    /// overrides any of them.
    pub(super) fn consumer_defaults(&self) -> Vec<(&str, &str)> {
        let mut defaults: Vec<(&str, &str)> = vec![
            ("group.id", self.group.as_str()),
            ("auto.offset.reset", self.offset_reset.as_str()),
            ("enable.auto.commit", "true"),
            ("auto.commit.interval.ms", "1000"),
            // Offsets are stored by us, once the sink has written the records.
            ("enable.auto.offset.store", "false"),
            (
                "enable.partition.eof",
                if self.until_end { "true" } else { "false" },
            ),
            // Bound the prefetch: about this much, plus one fetch response, is
            // what the client holds while the pipeline is full. The message
            // count matters as much as the bytes for small messages (each
            // queued message costs librdkafka a few hundred bytes).
            ("queued.max.messages.kbytes", "8192"),
            ("queued.min.messages", "50000"),
            ("fetch.max.bytes", "4194304"),
            // Once the prefetch is full, librdkafka waits this long before
            // fetching again (1 s by default, which stalls a fast pipeline).
            ("fetch.queue.backoff.ms", "10"),
            // Statistics carry the high watermarks that the lag figure
            // needs: every second, so a short run knows them too.
            ("statistics.interval.ms", "1000"),
        ];
        if let Some(id) = &self.instance_id {
            defaults.push(("group.instance.id", id));
        }
        // --exactly-once: the offsets are committed in the output's
        // transactions only; input written by transactions is read once
        // committed (a chain of copiers stays exactly-once).
        if self.exactly_once.is_some() {
            defaults.push(("enable.auto.commit", "false"));
            defaults.push(("isolation.level", "read_committed"));
        }
        // A pattern sees a new matching topic at the next metadata refresh
        // (every 5 minutes by default).
        if self.topics.iter().any(|topic| topic.starts_with('^')) {
            defaults.push(("topic.metadata.refresh.interval.ms", "5000"));
        }
        defaults
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::kafka::PartitionOffset;

    fn options(topics: &[&str]) -> KafkaOptions {
        KafkaOptions {
            config: KafkaConfig {
                brokers: "127.0.0.1:1".into(),
                settings: vec![],
            },
            topics: topics.iter().map(|t| t.to_string()).collect(),
            group: "g".into(),
            offset_reset: OffsetReset::Latest,
            until_end: false,
            format: Format::Jsonl,
            delimiter: b',',
            header: true,
            origin: false,
            instance_id: None,
            start: StartAt::default(),
            keep_tombstones: false,
            stats: None,
            exactly_once: None,
        }
    }

    #[test]
    fn a_from_must_name_a_topic_read() {
        let from = |topic: &str| PartitionOffset {
            topic: topic.into(),
            partition: 0,
            offset: 1,
        };
        let mut named = options(&["orders"]);
        named.start.offsets = vec![from("nosuch")];
        let error = named.validate().unwrap_err().to_string();
        assert!(
            error.contains("--from nosuch:0:1 names a topic this run does not read"),
            "{error}"
        );
        named.start.offsets = vec![from("orders")];
        assert!(named.validate().is_ok());
        let mut pattern = options(&["^ord.*"]);
        pattern.start.offsets = vec![from("orders")];
        assert!(pattern.validate().is_ok());
    }

    #[test]
    fn defaults_follow_the_options_and_keep_offsets_ours() {
        let mut options = options(&["t"]);
        let get = |options: &KafkaOptions, key: &str| {
            options
                .consumer_defaults()
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.to_string())
        };
        assert_eq!(get(&options, "group.id").as_deref(), Some("g"));
        assert_eq!(
            get(&options, "auto.offset.reset").as_deref(),
            Some("latest")
        );
        assert_eq!(
            get(&options, "enable.auto.offset.store").as_deref(),
            Some("false")
        );
        assert_eq!(
            get(&options, "enable.partition.eof").as_deref(),
            Some("false")
        );
        options.until_end = true;
        assert_eq!(
            get(&options, "enable.partition.eof").as_deref(),
            Some("true")
        );
        assert_eq!(get(&options, "group.instance.id"), None);
        assert_eq!(get(&options, "topic.metadata.refresh.interval.ms"), None);
        options.instance_id = Some("host-1".into());
        options.topics = vec!["^t.*".into()];
        assert_eq!(
            get(&options, "group.instance.id").as_deref(),
            Some("host-1")
        );
        assert_eq!(
            get(&options, "topic.metadata.refresh.interval.ms").as_deref(),
            Some("5000")
        );
    }

    #[test]
    fn the_waiting_note_names_the_group_and_its_session_timeout() {
        let mut options = options(&["t"]);
        assert!(options.waiting_note().contains(
            "a previous member of group g may still hold them until its session times out \
             (session.timeout.ms=45000); --instance-id avoids this"
        ));
        options.config.settings = vec![("session.timeout.ms".into(), "6000".into())];
        assert!(options.waiting_note().contains("(session.timeout.ms=6000)"));
    }

    #[test]
    fn patterns_are_not_named_topics() {
        assert_eq!(options(&["a", "^b.*", "c"]).named_topics(), ["a", "c"]);
    }

    #[test]
    fn validation_needs_topics_valid_names_and_no_cooperative_until_end() {
        assert_eq!(
            options(&[]).validate().unwrap_err().to_string(),
            "give at least one --topic"
        );
        assert!(options(&["a/b"]).validate().is_err());
        assert!(options(&["^a/b"]).validate().is_ok());
        let mut cooperative = options(&["t"]);
        cooperative.config.settings = vec![(
            "partition.assignment.strategy".into(),
            "cooperative-sticky".into(),
        )];
        assert!(cooperative.validate().is_ok());
        cooperative.until_end = true;
        assert!(cooperative
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("--until-end does not work with a cooperative"));
    }
}
