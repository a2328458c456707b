//! `--checkpoint` with `-o kafka://` (issue 12): the positions saved are
//! those the broker acknowledged, so a second run over the same file
//! sends nothing, and a run after an append sends only the new rows.

mod kafka_support;

use std::time::Duration;

use kafka_support::*;

#[test]
fn a_kafka_output_checkpoints_what_the_broker_acknowledged() {
    let brokers = bootstrap();
    let topic = unique("follow-checkpoint");
    create_topic(brokers, &topic, 1);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let checkpoint = dir.path().join("cp.json");
    let rows: String = (1..=1000).map(|n| format!("row {n}\n")).collect();
    std::fs::write(&log, &rows).unwrap();
    let run = || {
        run_with_deadline(
            streamer(brokers)
                .arg("file")
                .arg(&log)
                .arg("--checkpoint")
                .arg(&checkpoint)
                .args(["-o", &format!("kafka://{topic}")]),
            Duration::from_secs(60),
        )
    };
    let first = run();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&checkpoint).unwrap()).unwrap();
    assert_eq!(saved["files"][0]["offset"], rows.len());
    assert_eq!(saved["files"][0]["line"], 1000);

    let again = run();
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("0 records read, 0 written"), "{stderr}");

    let mut file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    std::io::Write::write_all(&mut file, b"row 1001\n").unwrap();
    assert!(run().status.success());
    let values: Vec<String> = read_topic(brokers, &topic)
        .into_iter()
        .map(|(_, _, value)| String::from_utf8(value).unwrap())
        .collect();
    assert_eq!(values.len(), 1001, "each row once");
    assert_eq!(values[1000], "{\"message\":\"row 1001\"}");
    delete_topic(brokers, &topic);
}
