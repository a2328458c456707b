//! One run of the Kafka source, start to end: subscribe, read (the
//! [`ConsumeLoop`]), then drain the acknowledgements of batches still in
//! the pipeline, commit everything written, say where each partition
//! stands, and leave the group.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::consumer::Consumer;
use tokio::sync::mpsc;

use super::batcher::{Batcher, ValueFormat};
use super::commit::{commit_delivered, store_delivered};
use super::consume_loop::ConsumeLoop;
use super::partitions::PartitionLag;
use super::startup::wait_for_topics;
use super::{partition_span, progress, topic_watch, KafkaSource};
use crate::error::{Error, Result};
use crate::kafka;
use crate::parts::SourceContext;
use tracing::Instrument;

/// How long the end of a run may wait for the final commit, and for
/// leaving the group, before giving up on them (brokers down).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(15);

/// Runs the source until shutdown, `--until-end`, the pipeline closing or
/// a permanent error; returns once every batch sent was written (or
/// dropped) and what was written is committed.
pub(super) async fn consume(source: KafkaSource, ctx: SourceContext) -> Result<()> {
    let KafkaSource {
        options,
        consumer,
        table,
        changed,
        connected,
    } = source;
    let SourceContext {
        out,
        shutdown,
        rejects,
        batch_records,
        batch_bytes,
    } = ctx;
    let named = options.named_topics();
    if !connected && !wait_for_topics(&consumer, &named, &options.config.brokers, &shutdown).await?
    {
        return Ok(());
    }
    let topics: Vec<&str> = options.topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topics)
        .map_err(|error| Error::Kafka(format!("cannot subscribe: {}", kafka::describe(&error))))?;

    // Acknowledgements of sent batches. Each batch's ack holds a clone of
    // the sender; when every batch is written or dropped and the loop's
    // own clone is gone, `recv` returns `None`: nothing is in flight.
    let (acks_tx, acks_rx) = mpsc::unbounded_channel();
    let format = ValueFormat {
        format: options.format,
        delimiter: options.delimiter,
        header: options.header,
        origin: options.origin,
        keep_tombstones: options.keep_tombstones,
    };
    let reporter = options.stats.map(|line| {
        tokio::spawn(progress::report(table.clone(), out.stats(), line).in_current_span())
    });
    let mut reader = ConsumeLoop {
        consumer: &consumer,
        table: &table,
        rejects: &rejects,
        out,
        acks_tx,
        acks: acks_rx,
        batcher: Batcher::new(format, batch_records, batch_bytes),
        sources: HashMap::new(),
        until_end: options.until_end,
        unreadable: Default::default(),
        waiting_note: options.waiting_note(),
        transactions: options.exactly_once.clone(),
    };
    let watcher = tokio::spawn(topic_watch::watch(consumer.clone(), named).in_current_span());
    let result = reader.read(&shutdown, &changed).await;
    watcher.abort();
    if let Some(reporter) = reporter {
        reporter.abort();
    }
    let ConsumeLoop {
        out,
        acks_tx,
        mut acks,
        ..
    } = reader;

    // Drain: closing our end of the pipeline lets it finish; each written
    // batch acknowledges here, and the channel closes once none is left.
    drop(out);
    drop(acks_tx);
    while let Some(delivered) = acks.recv().await {
        store_delivered(&*consumer, &table, delivered);
    }
    // A batch dropped unwritten (the run failing downstream) never acks:
    // leaving the group must not wait for it.
    table.drained();
    let committer = consumer.clone();
    let transactional = options.exactly_once.is_some();
    let partitions = table.clone();
    let committed = {
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            span.in_scope(|| {
                // Under --exactly-once the transactions committed them.
                if !transactional {
                    commit_delivered(&*committer, &partitions, "final");
                }
                // The lag said below needs them.
                progress::fill_watermarks(&committer, &partitions);
            })
        })
    };
    if tokio::time::timeout(CLOSE_TIMEOUT, committed)
        .await
        .is_err()
    {
        tracing::warn!(
            "the final offset commit did not finish in {} s (brokers down?); \
             the next run starts from the last committed offsets",
            CLOSE_TIMEOUT.as_secs()
        );
    }
    for partition in table.snapshot() {
        let _span = partition_span(&partition.topic, partition.partition).entered();
        tracing::info!("{}", describe_progress(&partition));
    }
    // Leaving the group runs the revoke callback (nothing left to commit)
    // and may block on unreachable brokers: do it off the runtime, bounded.
    let closing = tokio::task::spawn_blocking(move || drop(consumer));
    if tokio::time::timeout(CLOSE_TIMEOUT, closing).await.is_err() {
        tracing::warn!("leaving the consumer group timed out");
    }
    result
}

/// `read to 10, written to 8, committed 8, lag 2` (`?` where unknown).
fn describe_progress(partition: &PartitionLag) -> String {
    let known = |offset: Option<i64>| offset.map_or("?".to_string(), |o| o.to_string());
    format!(
        "read to {}, written to {}, committed {}, lag {}",
        known(partition.read),
        known(partition.delivered),
        known(partition.committed),
        known(partition.lag)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_says_unknown_offsets_as_question_marks() {
        let partition = PartitionLag {
            topic: "t".into(),
            partition: 0,
            high_watermark: None,
            read: Some(10),
            delivered: Some(8),
            committed: None,
            lag: None,
        };
        assert_eq!(
            describe_progress(&partition),
            "read to 10, written to 8, committed ?, lag ?"
        );
    }
}
