//! Watches the topics named explicitly (`--topic T`, not `^pattern`) for
//! deletion mid-run. librdkafka says nothing of it: its fetches fail with
//! "unknown topic" at debug level only, and it goes on waiting for the
//! topic's metadata to come back, so without this a deleted topic looked
//! like a quiet one. (A pattern subscription is told by librdkafka itself:
//! "Subscribed topic not available", rate-limited in [`crate::kafka`].)

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};

use super::rebalance::GroupContext;
use crate::kafka::{self, TopicCheck};

/// How often the named topics are looked up.
const INTERVAL: Duration = Duration::from_secs(2);

/// How long one lookup may wait for the brokers.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// Looks the named topics up every [`INTERVAL`] until dropped (the caller
/// aborts it when the run's reading ends); warns when one has gone, and
/// says when it is back.
pub(super) async fn watch(consumer: Arc<StreamConsumer<GroupContext>>, topics: Vec<String>) {
    if topics.is_empty() {
        return;
    }
    let mut gone = vec![false; topics.len()];
    loop {
        tokio::time::sleep(INTERVAL).await;
        for (topic, gone) in topics.iter().zip(gone.iter_mut()) {
            let (probe, name) = (consumer.clone(), topic.clone());
            let lookup = tokio::task::spawn_blocking(move || exists(&probe, &name)).await;
            match lookup {
                Ok(Some(false)) if !*gone => {
                    *gone = true;
                    crate::warn_limited!(
                        "topic `{topic}` no longer exists (deleted?): nothing more \
                         is read from it unless it is created again"
                    );
                }
                Ok(Some(true)) if *gone => {
                    *gone = false;
                    tracing::warn!("topic `{topic}` exists again");
                }
                // Unchanged, or the brokers did not answer: nothing new.
                _ => {}
            }
        }
    }
}

/// Whether the brokers know `topic` (`None`: they did not answer, or
/// answered with an error that may pass). Blocks.
fn exists(consumer: &StreamConsumer<GroupContext>, topic: &str) -> Option<bool> {
    let log = &consumer.context().log;
    match kafka::check_topic(consumer.client(), log, Some(topic), LOOKUP_TIMEOUT) {
        TopicCheck::Ready => Some(true),
        TopicCheck::Missing | TopicCheck::Unlisted => Some(false),
        TopicCheck::Unsettled(_) | TopicCheck::Permanent(_) | TopicCheck::Unreachable(_) => None,
    }
}
