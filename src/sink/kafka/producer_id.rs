//! An idempotent producer can send nothing before the brokers give it a
//! producer id. librdkafka asks for one after each metadata answer, from a
//! broker that is up then; the first answer comes over the bootstrap
//! connection, which librdkafka closes as soon as it knows the brokers by
//! their ids, so often no broker is up at that moment, and librdkafka then
//! asks again only every 500 ms (`rd_kafka_idemp_pid_timer_restart`): half
//! a second lost at the start of a run (measured: a 20,000-line run took
//! 0.6 s in 4 runs of 6, 0.1–0.2 s in the others).

use std::time::Duration;

use rdkafka::client::Client;

/// librdkafka's node id of a bootstrap connection (a broker known only by
/// the address it was given).
const BOOTSTRAP_NODE: i32 = -1;

/// How many metadata requests it asks, at most, for an answer from a
/// broker by its real id.
const TRIES: usize = 3;

/// How long each request may take: a broker that just answered answers
/// again at once, and the run goes on without this anyway.
const TIMEOUT: Duration = Duration::from_secs(1);

/// Asks for `topic`'s metadata again until a broker known by its id
/// answers: that broker is up when librdkafka, on its answer, asks for the
/// producer id. Returns the topic's partition count from the last answer,
/// if one came. Blocks (a few milliseconds): call it off the workers.
pub(super) fn hasten<C: rdkafka::ClientContext>(client: &Client<C>, topic: &str) -> Option<usize> {
    let mut partitions = None;
    for _ in 0..TRIES {
        match client.fetch_metadata(Some(topic), TIMEOUT) {
            Ok(metadata) => {
                partitions = super::partitions::partition_count(&metadata, topic);
                if metadata.orig_broker_id() != BOOTSTRAP_NODE {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    partitions
}
