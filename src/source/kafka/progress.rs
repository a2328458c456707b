//! What the Kafka source says of its progress: the stats line every
//! `--stats-interval` while it runs (rate, and per partition its lag and
//! committed offset), and the high watermarks looked up at the end when
//! the statistics never brought them (a run shorter than their interval).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use rdkafka::consumer::{Consumer, StreamConsumer};

use super::options::StatsLine;
use super::partitions::{PartitionLag, PartitionTable};
use super::rebalance::GroupContext;
use crate::kafka::QUERY_TIMEOUT;
use crate::parts::Stats;

/// Says the stats line every `line.every` until aborted.
pub(super) async fn report(table: PartitionTable, stats: Arc<Stats>, line: StatsLine) {
    let mut ticks = tokio::time::interval(line.every);
    ticks.tick().await;
    let mut last = (Instant::now(), stats.written.load(Ordering::Relaxed));
    loop {
        ticks.tick().await;
        let now = (Instant::now(), stats.written.load(Ordering::Relaxed));
        let seconds = now.0.duration_since(last.0).as_secs_f64().max(1e-3);
        let rate = (now.1 - last.1) as f64 / seconds;
        last = now;
        let text = describe(rate, &table.snapshot());
        if line.as_log {
            tracing::info!("{text}");
        } else {
            crate::say!("streamer: {text}");
        }
    }
}

/// `stats: 1200 records/s; t/0 lag 5 committed 100, t/1 lag ? committed ?`.
fn describe(rate: f64, partitions: &[PartitionLag]) -> String {
    let known = |offset: Option<i64>| offset.map_or("?".to_string(), |o| o.to_string());
    let parts: Vec<String> = partitions
        .iter()
        .map(|p| {
            format!(
                "{}/{} lag {} committed {}",
                p.topic,
                p.partition,
                known(p.lag),
                known(p.committed)
            )
        })
        .collect();
    let partitions = if parts.is_empty() {
        "no partition assigned".to_string()
    } else {
        parts.join(", ")
    };
    format!("stats: {rate:.0} records/s; {partitions}")
}

/// Asks the brokers for the high watermark of every partition whose
/// statistics have not brought one yet. Blocks (one query each).
pub(super) fn fill_watermarks(consumer: &StreamConsumer<GroupContext>, table: &PartitionTable) {
    let unknown: Vec<(String, i32)> = table
        .snapshot()
        .into_iter()
        .filter(|p| p.high_watermark.is_none())
        .map(|p| (p.topic, p.partition))
        .collect();
    for (topic, partition) in unknown {
        if let Ok((_, high)) = consumer.fetch_watermarks(&topic, partition, QUERY_TIMEOUT) {
            table.lock().set_high_watermark(&topic, partition, high);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stats_line_names_each_partition_its_lag_and_commit() {
        let lag = |partition, lag, committed| PartitionLag {
            topic: "t".into(),
            partition,
            high_watermark: None,
            read: None,
            delivered: None,
            committed,
            lag,
        };
        assert_eq!(
            describe(1234.4, &[lag(0, Some(5), Some(100)), lag(1, None, None)]),
            "stats: 1234 records/s; t/0 lag 5 committed 100, t/1 lag ? committed ?"
        );
        assert_eq!(
            describe(0.0, &[]),
            "stats: 0 records/s; no partition assigned"
        );
    }
}
