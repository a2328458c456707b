//! The one start-up check of the Kafka source and sink: do the brokers
//! answer, and does each named topic exist? Each side turns the answer into
//! its own messages and its own behaviour (the source waits for the
//! brokers and fails on a missing topic; the sink only warns while the
//! brokers are away, since its producer keeps retrying). The source's
//! topic watcher asks the same question every few seconds.

use std::time::Duration;

use rdkafka::client::Client;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::metadata::Metadata;

use super::{describe, error_code, is_permanent, ClientLog};

/// What the brokers said of one topic (or of themselves).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TopicCheck {
    /// The topic exists and has partitions (or, with no topic named, the
    /// brokers answer).
    Ready,
    /// The brokers say the topic does not exist.
    Missing,
    /// The brokers do not list the topic, or list it without partitions
    /// (not there, or being created).
    Unlisted,
    /// A topic-level error that retrying may cure (`topic `T`: reason`).
    Unsettled(String),
    /// An error retrying will not cure: credentials, permissions, TLS.
    Permanent(String),
    /// The brokers did not answer in time.
    Unreachable(String),
}

/// Asks the brokers about `topic` (`None`: only whether they answer), in
/// one metadata request of at most `timeout`. Blocks: call it off the
/// runtime's workers.
pub(crate) fn check_topic<C: rdkafka::ClientContext>(
    client: &Client<C>,
    log: &ClientLog,
    topic: Option<&str>,
    timeout: Duration,
) -> TopicCheck {
    match client.fetch_metadata(topic, timeout) {
        Ok(metadata) => {
            log.mark_answered();
            match topic {
                Some(topic) => classify_topic(&metadata, topic),
                None => TopicCheck::Ready,
            }
        }
        Err(error) => classify_failure(log, &error),
    }
}

/// A metadata request that failed as a whole.
fn classify_failure(log: &ClientLog, error: &KafkaError) -> TopicCheck {
    if let Some(reason) = log.permanent_error() {
        return TopicCheck::Permanent(reason);
    }
    match error_code(error) {
        // librdkafka's own reason (which broker, what it said) is clearer
        // than the bare code.
        Some(code) if is_permanent(code) => {
            TopicCheck::Permanent(log.last_error().unwrap_or_else(|| describe(error)))
        }
        _ => TopicCheck::Unreachable(describe(error)),
    }
}

/// What the metadata says of `topic`.
fn classify_topic(metadata: &Metadata, topic: &str) -> TopicCheck {
    let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return TopicCheck::Unlisted;
    };
    topic_state(
        found.error().map(RDKafkaErrorCode::from),
        !found.partitions().is_empty(),
        topic,
    )
}

fn topic_state(error: Option<RDKafkaErrorCode>, has_partitions: bool, topic: &str) -> TopicCheck {
    match error {
        None if has_partitions => TopicCheck::Ready,
        None => TopicCheck::Unlisted,
        Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic) => {
            TopicCheck::Missing
        }
        Some(code) => {
            let reason = format!(
                "topic `{topic}`: {}",
                describe(&KafkaError::MetadataFetch(code))
            );
            if is_permanent(code) {
                TopicCheck::Permanent(reason)
            } else {
                TopicCheck::Unsettled(reason)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::producer::Producer;

    #[test]
    fn topic_errors_are_classified() {
        assert_eq!(topic_state(None, true, "t"), TopicCheck::Ready);
        assert_eq!(topic_state(None, false, "t"), TopicCheck::Unlisted);
        assert_eq!(
            topic_state(Some(RDKafkaErrorCode::UnknownTopicOrPartition), false, "t"),
            TopicCheck::Missing
        );
        assert_eq!(
            topic_state(Some(RDKafkaErrorCode::UnknownTopic), true, "t"),
            TopicCheck::Missing
        );
        assert!(matches!(
            topic_state(Some(RDKafkaErrorCode::TopicAuthorizationFailed), true, "t"),
            TopicCheck::Permanent(reason) if reason.starts_with("topic `t`: ")
        ));
        assert!(matches!(
            topic_state(Some(RDKafkaErrorCode::LeaderNotAvailable), true, "t"),
            TopicCheck::Unsettled(reason) if reason.starts_with("topic `t`: ")
        ));
    }

    #[test]
    fn a_failed_request_is_permanent_only_for_errors_retrying_will_not_cure() {
        let log = ClientLog::new("source", "127.0.0.1:1");
        let down = KafkaError::MetadataFetch(RDKafkaErrorCode::BrokerTransportFailure);
        assert_eq!(
            classify_failure(&log, &down),
            TopicCheck::Unreachable("Local: Broker transport failure".into())
        );
        let refused = KafkaError::MetadataFetch(RDKafkaErrorCode::SaslAuthenticationFailed);
        assert!(matches!(
            classify_failure(&log, &refused),
            TopicCheck::Permanent(_)
        ));
    }

    #[test]
    fn no_answer_in_time_is_unreachable() {
        let config = super::super::KafkaConfig {
            brokers: "127.0.0.1:1".into(),
            settings: vec![],
        };
        let log = ClientLog::new("sink", "127.0.0.1:1");
        let producer: rdkafka::producer::BaseProducer =
            config.client_config(&[]).create().expect("a client");
        let check = check_topic(
            producer.client(),
            &log,
            Some("t"),
            Duration::from_millis(200),
        );
        assert!(matches!(check, TopicCheck::Unreachable(_)), "{check:?}");
    }
}
