//! The source's start-up wait: until the brokers answer (saying so while
//! they do not), then every named topic must exist. The question asked of
//! the brokers is [`crate::kafka::check_topic`], shared with the sink.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use rdkafka::consumer::{Consumer, StreamConsumer};
use tokio_util::sync::CancellationToken;

use super::rebalance::GroupContext;
use crate::error::{Error, Result};
use crate::kafka::{self, TopicCheck};

/// How long one start-up check waits for the brokers before saying they
/// do not answer (and trying again).
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Why the start-up check has not passed yet.
#[derive(Debug, PartialEq, Eq)]
enum Failure {
    Missing(String),
    Permanent(String),
    Unreachable(String),
}

/// Waits until the brokers answer and checks that every topic of `named`
/// exists. False when shutdown came first.
pub(super) async fn wait_for_topics(
    consumer: &Arc<StreamConsumer<GroupContext>>,
    named: &[String],
    brokers: &str,
    shutdown: &CancellationToken,
) -> Result<bool> {
    let mut warned: Option<Instant> = None;
    let mut failures = 0u32;
    loop {
        let probe = consumer.clone();
        let topics = named.to_vec();
        let check = tokio::task::spawn_blocking(move || check_topics(&probe, &topics));
        let outcome = tokio::select! {
            _ = shutdown.cancelled() => return Ok(false),
            outcome = serving_events(consumer, check) => {
                outcome.map_err(|e| Error::panicked("the Kafka topic check", e))?
            }
        };
        if let Some(reason) = consumer.context().log.permanent_error() {
            return Err(Error::Kafka(reason));
        }
        match outcome {
            Ok(()) => {
                consumer.context().log.mark_up();
                return Ok(true);
            }
            Err(Failure::Missing(topic)) => {
                return Err(Error::Kafka(format!(
                    "topic `{topic}` does not exist on {brokers}"
                )))
            }
            Err(Failure::Permanent(reason)) => return Err(Error::Kafka(reason)),
            Err(Failure::Unreachable(reason)) => {
                // Not on the first failure: a refused login shows up as a
                // lost connection first, and as what it is a moment later.
                failures += 1;
                if failures >= 2 && warned.is_none_or(|at| at.elapsed() > Duration::from_secs(60)) {
                    tracing::warn!(
                        "cannot reach the brokers at {brokers} ({reason}); \
                         retrying until they answer (Ctrl-C to stop)"
                    );
                    warned = Some(Instant::now());
                }
                consumer.context().log.mark_down();
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(false),
                    _ = serving_events(consumer, tokio::time::sleep(Duration::from_secs(1))) => {}
                }
            }
        }
    }
}

/// Runs `work` while serving the consumer's queued events (librdkafka's
/// logs, errors, statistics) as they come, however many: so its own reasons
/// (connection refused, a refused login...) reach the client context, and
/// the log, before `work` ends. Serving a fixed number (64) per check
/// instead let `-X debug=...`, which queues more log events than that
/// between two checks, bury a refused login behind an ever longer backlog:
/// the run retried for ever. Only for before the subscription: a message
/// served here would be lost.
async fn serving_events<F: std::future::Future>(
    consumer: &StreamConsumer<GroupContext>,
    work: F,
) -> F::Output {
    let mut events = consumer.stream();
    tokio::pin!(work);
    loop {
        tokio::select! {
            output = &mut work => return output,
            // Errors were handed to the context while being served.
            _ = events.next() => {}
        }
    }
}

/// One start-up check of every named topic (with none named, of the
/// brokers alone: patterns are matched after subscribing). Blocks.
fn check_topics(consumer: &StreamConsumer<GroupContext>, topics: &[String]) -> Result<(), Failure> {
    let log = &consumer.context().log;
    if topics.is_empty() {
        return as_failure(
            None,
            kafka::check_topic(consumer.client(), log, None, PROBE_TIMEOUT),
        );
    }
    for topic in topics {
        as_failure(
            Some(topic),
            kafka::check_topic(consumer.client(), log, Some(topic), PROBE_TIMEOUT),
        )?;
    }
    Ok(())
}

/// The source's reading of a check: a topic must be there with
/// partitions; a topic-level error that may pass is waited out like
/// unreachable brokers.
fn as_failure(topic: Option<&str>, check: TopicCheck) -> Result<(), Failure> {
    match check {
        TopicCheck::Ready => Ok(()),
        TopicCheck::Missing | TopicCheck::Unlisted => {
            Err(Failure::Missing(topic.unwrap_or_default().to_string()))
        }
        TopicCheck::Permanent(reason) => Err(Failure::Permanent(reason)),
        TopicCheck::Unsettled(reason) | TopicCheck::Unreachable(reason) => {
            Err(Failure::Unreachable(reason))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_topic_must_exist_with_partitions_and_passing_errors_are_waited_out() {
        assert_eq!(as_failure(Some("t"), TopicCheck::Ready), Ok(()));
        assert_eq!(
            as_failure(Some("t"), TopicCheck::Missing),
            Err(Failure::Missing("t".into()))
        );
        assert_eq!(
            as_failure(Some("t"), TopicCheck::Unlisted),
            Err(Failure::Missing("t".into()))
        );
        assert_eq!(
            as_failure(Some("t"), TopicCheck::Unsettled("topic `t`: x".into())),
            Err(Failure::Unreachable("topic `t`: x".into()))
        );
        assert_eq!(
            as_failure(None, TopicCheck::Permanent("refused".into())),
            Err(Failure::Permanent("refused".into()))
        );
    }
}
