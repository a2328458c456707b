//! One transaction's end: the input offsets sent into it for the consumer
//! group, then the commit; or, on any failure, the abort.

use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::link::{Link, NextOffset};
use crate::kafka;
use crate::sink::Transactions;

/// How long each transactional call may take, retries included.
pub(super) const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Pause between tries of a call librdkafka calls retriable.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// Commits the open transaction with the offsets the link noted for it;
/// on success fires the source's acks and returns the offsets committed.
/// Blocks: run it off the workers. The error says why; the transaction is
/// then still open (the caller aborts it).
pub(super) fn commit(producer: &dyn Transactions, link: &Link) -> Result<Vec<NextOffset>, String> {
    let taken = link.take();
    let group = link
        .group()
        .ok_or_else(|| "no consumer group is attached to the transaction".to_string())?;
    // The broker checks the group's generation, not who owns which
    // partition: records of a partition revoked meanwhile are read again by
    // its new owner, so their output must not commit.
    if let Some(stale) = taken
        .offsets
        .iter()
        .find(|o| !group.owns(&o.topic, o.partition, o.epoch))
    {
        return Err(format!(
            "partition {}/{} was revoked before the transaction holding its records up to \
             offset {} committed",
            stale.topic, stale.partition, stale.offset
        ));
    }
    if !taken.offsets.is_empty() {
        let metadata = group
            .metadata()
            .ok_or_else(|| "the consumer has left its group".to_string())?;
        let list = offsets_list(&taken.offsets);
        retrying(|| producer.send_offsets(&list, &metadata, CALL_TIMEOUT)).map_err(|error| {
            format!(
                "cannot add the offsets {} to the transaction: {}",
                describe(&taken.offsets),
                kafka::describe(&error)
            )
        })?;
    }
    retrying(|| producer.commit(CALL_TIMEOUT)).map_err(|error| {
        format!(
            "cannot commit the transaction (input offsets {}): {}",
            describe(&taken.offsets),
            kafka::describe(&error)
        )
    })?;
    group.committed(&taken.offsets);
    taken.acks.deliver();
    Ok(taken.offsets)
}

/// Aborts the open transaction, which holds `records` records, after
/// `reason`; returns the run's error message. `timed_out`: the
/// transaction's timeout, if it has been open that long (the broker then
/// aborted it itself, which librdkafka reports as a fencing). Blocks: run
/// it off the workers.
pub(super) fn abort(
    producer: &dyn Transactions,
    reason: &str,
    records: u64,
    timed_out: Option<Duration>,
) -> String {
    match retrying(|| producer.abort(CALL_TIMEOUT)) {
        Err(error) if fenced(&error) && timed_out.is_some() => format!(
            "{reason}; the transaction holding {records} records was open longer than its \
             transaction.timeout.ms ({} ms), so the broker aborted it: none of them is \
             visible to a read_committed reader (nor counted written); a commit took too \
             long (a slow or unreachable broker)",
            timed_out.unwrap_or_default().as_millis()
        ),
        Ok(()) => format!(
            "{reason}; the transaction holding {records} records was aborted: none of them \
             is visible to a read_committed reader (nor counted written), and the next run \
             reads them again from the last committed offsets"
        ),
        Err(error) if fenced(&error) => format!(
            "{reason}; the transaction holding {records} records was aborted by a newer \
             producer with this transactional.id (another run with the same --instance-id or \
             -X transactional.id): none of them is visible to a \
             read_committed reader (nor counted written)"
        ),
        Err(error) => format!(
            "{reason}; aborting the transaction holding {records} records failed too ({}): \
             the broker aborts it after transaction.timeout.ms (they are not counted \
             written), and the next run reads them again",
            kafka::describe(&error)
        ),
    }
}

/// Whether a newer producer with our `transactional.id` fenced this one
/// (its `init_transactions` aborted our open transaction).
fn fenced(error: &KafkaError) -> bool {
    matches!(
        kafka::error_code(error),
        Some(RDKafkaErrorCode::Fenced | RDKafkaErrorCode::ProducerFenced)
    )
}

/// Calls `call` again while librdkafka says its error is retriable, up to
/// [`CALL_TIMEOUT`].
fn retrying(mut call: impl FnMut() -> KafkaResult<()>) -> KafkaResult<()> {
    let deadline = Instant::now() + CALL_TIMEOUT;
    loop {
        match call() {
            Err(KafkaError::Transaction(error))
                if error.is_retriable() && Instant::now() < deadline =>
            {
                tracing::debug!("transactional call failed, retried: {error}");
                std::thread::sleep(RETRY_PAUSE);
            }
            result => return result,
        }
    }
}

fn offsets_list(offsets: &[NextOffset]) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    for o in offsets {
        let _ = list.add_partition_offset(&o.topic, o.partition, Offset::Offset(o.offset));
    }
    list
}

/// `t/0@5 t/1@7`, or `none`.
pub(super) fn describe(offsets: &[NextOffset]) -> String {
    if offsets.is_empty() {
        return "none".into();
    }
    offsets
        .iter()
        .map(|o| format!("{}/{}@{}", o.topic, o.partition, o.offset))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_listed_and_described_per_partition() {
        let offsets = [
            NextOffset {
                topic: "a".into(),
                partition: 0,
                offset: 5,
                epoch: 1,
            },
            NextOffset {
                topic: "b".into(),
                partition: 3,
                offset: 7,
                epoch: 1,
            },
        ];
        let list = offsets_list(&offsets);
        assert_eq!(
            list.find_partition("b", 3).map(|e| e.offset()),
            Some(Offset::Offset(7))
        );
        assert_eq!(describe(&offsets), "a/0@5 b/3@7");
        assert_eq!(describe(&[]), "none");
    }
}
