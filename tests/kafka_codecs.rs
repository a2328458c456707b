//! Every compression codec Kafka has, both ways, through the real binary
//! against the real broker: topics written by compressing producers are
//! read exactly, and `-o kafka://` compresses with each codec.

mod kafka_support;

use std::time::Duration;

use kafka_support::*;

const CODECS: [&str; 4] = ["gzip", "snappy", "lz4", "zstd"];

#[test]
fn every_codec_is_consumed_exactly() {
    let brokers = bootstrap();
    let messages = numbered(500, 2);
    for codec in CODECS {
        let topic = unique(&format!("codec-{codec}"));
        create_topic(brokers, &topic, 2);
        produce_with(brokers, &topic, &messages, &[("compression.type", codec)]);
        let output = run_with_deadline(
            streamer(brokers).args(["kafka", "-t", &topic, "-g", &unique("g"), "--until-end"]),
            Duration::from_secs(60),
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{codec}: {stderr}");
        let records: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        let counts = id_counts(&records);
        assert_eq!(counts.len(), 500, "{codec}: {stderr}");
        assert!(counts.values().all(|&c| c == 1), "{codec}: duplicates");
        for record in &records {
            let id = record["id"].as_u64().unwrap();
            assert_eq!(record["body"], format!("message number {id}"), "{codec}");
        }
    }
}

#[test]
fn every_codec_is_produced() {
    let brokers = bootstrap();
    for codec in CODECS {
        let topic = unique(&format!("codec-out-{codec}"));
        create_topic(brokers, &topic, 1);
        let output = run_with_deadline(
            streamer(brokers)
                .arg("file")
                .arg(repo().join("data/ticks.csv"))
                .args(["-o", &format!("kafka://{topic}")])
                .args(["-X", &format!("compression.type={codec}")]),
            Duration::from_secs(60),
        );
        assert!(
            output.status.success(),
            "{codec}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let read = read_topic(brokers, &topic);
        assert_eq!(read.len(), 200, "{codec}");
        let first: serde_json::Value = serde_json::from_slice(&read[0].2).unwrap();
        assert!(first.is_object(), "{codec}: {first}");
    }
}
