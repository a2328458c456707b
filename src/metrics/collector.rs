//! The scrape: every metric read from the [`Probes`] when `/metrics` is
//! asked for, in Prometheus' text format (prometheus-client's encoder).
//! The counters are the pipeline's own atomics, so the hot path does no
//! work for a scrape, and a run without `--metrics` none at all.

use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use super::probes::Probes;

/// The registry of one run: its metrics, all read from `probes`.
pub fn registry(probes: Probes) -> Registry {
    let mut registry = Registry::with_prefix("streamer");
    registry.register_collector(Box::new(RunCollector(probes)));
    registry
}

/// Renders `registry` as Prometheus text (format 0.0.4).
pub fn render(registry: &Registry) -> String {
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, registry)
        .expect("writing to a String cannot fail");
    text
}

struct RunCollector(Probes);

impl std::fmt::Debug for RunCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunCollector").finish_non_exhaustive()
    }
}

/// One metric: name, help, unit, and its series (label pairs, value).
fn family<M: EncodeMetric, const N: usize>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    series: impl IntoIterator<Item = ([(&'static str, String); N], M)>,
) -> std::fmt::Result {
    let mut series = series.into_iter().peekable();
    let Some((_, first)) = series.peek() else {
        return Ok(());
    };
    let metric_type = first.metric_type();
    let mut metric = encoder.encode_descriptor(name, help, unit, metric_type)?;
    for (labels, value) in series {
        value.encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

fn counter(value: u64) -> ConstCounter<u64> {
    ConstCounter::new(value)
}

fn gauge(value: i64) -> ConstGauge<i64> {
    ConstGauge::new(value)
}

impl Collector for RunCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let probes = &self.0;
        let stats = &probes.stats;
        let source = || [("source", probes.source.to_string())];
        let e = &mut encoder;
        family(
            e,
            "records_read",
            "Records the source took in (a record rejected later included).",
            None,
            [(source(), counter(probes.records_read()))],
        )?;
        family(
            e,
            "records_written",
            "Records the sink wrote out.",
            None,
            [(source(), counter(probes.records_written()))],
        )?;
        family(
            e,
            "records_filtered",
            "Records --filter dropped (acknowledged like written ones).",
            None,
            [(source(), counter(stats.filtered.load(Ordering::Relaxed)))],
        )?;
        family(
            e,
            "records_rejected",
            "Records rejected, by kind of reason.",
            None,
            probes.rejects.count_by_kind().into_iter().map(|(kind, n)| {
                let labels = [
                    ("source", probes.source.to_string()),
                    ("reason", kind.into()),
                ];
                (labels, counter(n))
            }),
        )?;
        family(
            e,
            "bytes_read",
            "Bytes of the records taken in, as the source holds them (a file's lines without line ends, a TCP frame with its line end, a Kafka message's value).",
            None,
            [(source(), counter(stats.bytes_read.load(Ordering::Relaxed)))],
        )?;
        family(
            e,
            "bytes_written",
            "Bytes the sink wrote out (for Kafka, the message values).",
            None,
            [(
                source(),
                counter(stats.bytes_written.load(Ordering::Relaxed)),
            )],
        )?;
        let waited = stats.backpressure_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        family(
            e,
            "backpressure",
            "Time the source waited for room in the first channel.",
            Some(&Unit::Seconds),
            [([], ConstCounter::new(waited))],
        )?;
        let channels = stats.channels.fill();
        family(
            e,
            "channel_fill",
            "Batches each channel of the pipeline holds now.",
            None,
            channels
                .iter()
                .map(|c| ([("channel", c.name.clone())], gauge(c.batches as i64))),
        )?;
        family(
            e,
            "channel_capacity",
            "Batches each channel of the pipeline holds at most.",
            None,
            channels
                .iter()
                .map(|c| ([("channel", c.name.clone())], gauge(c.capacity as i64))),
        )?;
        let (sum, count, buckets) = stats.sink_writes.snapshot();
        let mut metric = e.encode_descriptor(
            "sink_write",
            "How long the sink's writes took (Kafka: a batch's hand-over to its last delivery).",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        metric.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
        if let Some(tcp) = &probes.tcp {
            family(
                e,
                "tcp_connections_open",
                "TCP connections open now.",
                None,
                [([], gauge(tcp.open() as i64))],
            )?;
            family(
                e,
                "tcp_connections_accepted",
                "TCP connections accepted.",
                None,
                [([], counter(tcp.accepted()))],
            )?;
            family(
                e,
                "tcp_connections_refused",
                "TCP connections closed at accept, before any byte was read, by reason.",
                None,
                tcp.refused_by_reason()
                    .into_iter()
                    .map(|(reason, n)| ([("reason", reason.to_string())], counter(n))),
            )?;
            family(
                e,
                "tcp_connections_closed",
                "TCP connections ended, by reason.",
                None,
                tcp.closed_by_reason()
                    .into_iter()
                    .map(|(reason, n)| ([("reason", reason.to_string())], counter(n))),
            )?;
            family(
                e,
                "tls_handshake_failures",
                "TLS handshakes of the TCP source that failed, by reason.",
                None,
                tcp.tls_failures()
                    .into_iter()
                    .map(|(reason, n)| ([("reason", reason.to_string())], counter(n))),
            )?;
        }
        if let Some(table) = &probes.kafka {
            let partitions = table.snapshot();
            let labels = |p: &crate::source::kafka::PartitionLag| {
                [
                    ("topic", p.topic.clone()),
                    ("partition", p.partition.to_string()),
                ]
            };
            family(
                e,
                "kafka_consumer_lag",
                "Messages of each assigned partition not yet written: its end offset less the offset delivered.",
                None,
                partitions
                    .iter()
                    .filter_map(|p| Some((labels(p), gauge(p.lag?)))),
            )?;
            family(
                e,
                "kafka_committed_offset",
                "The group's last committed offset of each assigned partition.",
                None,
                partitions
                    .iter()
                    .filter_map(|p| Some((labels(p), gauge(p.committed?)))),
            )?;
            family(
                e,
                "kafka_end_offset",
                "The end offset (high watermark) of each assigned partition, as last heard from the brokers.",
                None,
                partitions
                    .iter()
                    .filter_map(|p| Some((labels(p), gauge(p.high_watermark?)))),
            )?;
        }
        if let Some(store) = &probes.checkpoints {
            family(
                e,
                "file_checkpoint_offset",
                "Byte offset up to which every record of each file being read was written out.",
                None,
                store.open_positions().into_iter().map(|(path, offset)| {
                    (
                        [("file", path)],
                        gauge(i64::try_from(offset).unwrap_or(i64::MAX)),
                    )
                }),
            )?;
        }
        Ok(())
    }
}
