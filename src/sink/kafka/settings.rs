//! The producer's librdkafka settings: our defaults, then `--compression`,
//! then the user's `-X`, which wins over both.

use crate::kafka::KafkaConfig;

/// The producer's settings that differ from librdkafka's defaults.
const PRODUCER_DEFAULTS: &[(&str, &str)] = &[
    // Retries neither duplicate nor reorder messages.
    ("enable.idempotence", "true"),
    // Bound what waits in the client for the broker (librdkafka's default is 1 GiB).
    ("queue.buffering.max.kbytes", "16384"),
    ("linger.ms", "5"),
    // librdkafka connects to one broker at a time, at most every
    // reconnect.backoff.ms / 2 (100 / 2 by default): the leaders, learnt
    // from the bootstrap connection, were reached only 50 ms into a run.
    // Retries after a lost connection still back off, from 20 ms up to
    // reconnect.backoff.max.ms (10 s).
    ("reconnect.backoff.ms", "20"),
];

/// The codec of the produced batches (`--compression`, librdkafka's
/// `compression.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Compression {
    /// Batches as they are.
    None,
    /// gzip: small, slow.
    Gzip,
    /// Snappy: fast, larger.
    Snappy,
    /// LZ4: fast, the usual choice for throughput.
    Lz4,
    /// Zstandard: small and fast (brokers from Kafka 2.1).
    Zstd,
}

impl Compression {
    /// The value of `compression.type`.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// The most one produce request carries for one partition: librdkafka's
/// `batch.num.messages` and `batch.size`, as set (or their defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RequestSize {
    pub records: usize,
    pub bytes: usize,
}

/// The request size of a producer made from `config`.
pub(super) fn request_size(config: &rdkafka::ClientConfig) -> RequestSize {
    let read = |key: &str, default: usize| {
        config
            .get(key)
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(default)
    };
    RequestSize {
        records: read("batch.num.messages", 10_000),
        bytes: read("batch.size", 1_000_000),
    }
}

/// The producer's client configuration.
pub(super) fn producer_config(
    config: &KafkaConfig,
    compression: Option<Compression>,
) -> rdkafka::ClientConfig {
    let mut defaults = PRODUCER_DEFAULTS.to_vec();
    if let Some(compression) = compression {
        defaults.push(("compression.type", compression.name()));
    }
    config.client_config(&defaults)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_is_a_default_that_x_overrides() {
        let config = KafkaConfig {
            brokers: "b:1".into(),
            settings: vec![],
        };
        let client = producer_config(&config, Some(Compression::Zstd));
        assert_eq!(client.get("compression.type"), Some("zstd"));
        assert_eq!(producer_config(&config, None).get("compression.type"), None);
        let config = KafkaConfig {
            brokers: "b:1".into(),
            settings: vec![("compression.type".into(), "lz4".into())],
        };
        let client = producer_config(&config, Some(Compression::Gzip));
        assert_eq!(client.get("compression.type"), Some("lz4"));
    }

    #[test]
    fn the_request_size_is_librdkafkas_unless_x_sets_it() {
        let config = KafkaConfig {
            brokers: "b:1".into(),
            settings: vec![],
        };
        let size = request_size(&producer_config(&config, None));
        assert_eq!(
            size,
            RequestSize {
                records: 10_000,
                bytes: 1_000_000
            }
        );
        let config = KafkaConfig {
            brokers: "b:1".into(),
            settings: vec![("batch.size".into(), "65536".into())],
        };
        assert_eq!(request_size(&producer_config(&config, None)).bytes, 65536);
    }
}
