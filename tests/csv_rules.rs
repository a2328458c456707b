//! One table of CSV cases, run against every source: a file, a TCP
//! connection and a Kafka message hold the same text, and each must give
//! the same records and the same rejections (named the way that source
//! names its positions). The header rules are written once
//! (`codec/csv_assembler.rs`, the README's "CSV header rules").

mod common;
mod kafka_support;
mod tcp_server;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::Shutdown;
use std::time::Duration;

use common::Dir;
use kafka_support::{
    bootstrap, create_topic, produce, read_json_lines, run_with_deadline, streamer, unique,
    TestMessage,
};
use tcp_server::Server;

/// One CSV text and what every source makes of it.
struct Case {
    input: &'static [u8],
    /// The records, as JSON objects, in order.
    records: &'static [&'static str],
    /// The rejection reasons, in order: `{unusable N}` is the reason of a
    /// row under the unusable header at position N, `{unclosed}` that of a
    /// record a quote runs to the end of the stream from.
    rejected: &'static [&'static str],
    /// What a Kafka message makes of a header alone (it must give a record
    /// or a rejection); `None`: the same as the other sources.
    kafka_rejected: Option<&'static [&'static str]>,
}

const HEADER_ONLY: &str =
    "CSV message has a header row but no data rows (messages of one row need --no-header)";

const CASES: &[Case] = &[
    Case {
        input: b"a,b\n1,2\n3,4\n",
        records: &[r#"{"a":"1","b":"2"}"#, r#"{"a":"3","b":"4"}"#],
        rejected: &[],
        kafka_rejected: None,
    },
    // A quoted cell holds a delimiter, a doubled quote and a line break.
    Case {
        input: b"a,b\n\"x,\"\"y\"\"\nz\",2\n",
        records: &[r#"{"a":"x,\"y\"\nz","b":"2"}"#],
        rejected: &[],
        kafka_rejected: None,
    },
    // Blank lines make no record and are not the header; CRLF, a lone CR.
    Case {
        input: b"\r\n\na,b\r\n\r\n1,2\r3,4",
        records: &[r#"{"a":"1","b":"2"}"#, r#"{"a":"3","b":"4"}"#],
        rejected: &[],
        kafka_rejected: None,
    },
    // A leading byte order mark is dropped.
    Case {
        input: b"\xEF\xBB\xBFa,b\n1,2\n",
        records: &[r#"{"a":"1","b":"2"}"#],
        rejected: &[],
        kafka_rejected: None,
    },
    // Repeated and empty names.
    Case {
        input: b"a,a,\n1,2,3\n",
        records: &[r#"{"a":"1","a_2":"2","c3":"3"}"#],
        rejected: &[],
        kafka_rejected: None,
    },
    // A row with the wrong number of cells is rejected alone.
    Case {
        input: b"a,b\n1\n2,3\n",
        records: &[r#"{"a":"2","b":"3"}"#],
        rejected: &["expected 2 fields (as in the header), found 1"],
        kafka_rejected: None,
    },
    // An unusable header: it and every row under it are rejected.
    Case {
        input: b"\xff,b\n1,2\n3,4\n",
        records: &[],
        rejected: &[
            "bad CSV header: invalid UTF-8 in header column 1 (byte 1)",
            "{unusable 1}",
            "{unusable 1}",
        ],
        kafka_rejected: None,
    },
    // A quote that never closes: the record it opens runs to the end.
    Case {
        input: b"a,b\n1,2\n3,\"4\n5,6\n",
        records: &[r#"{"a":"1","b":"2"}"#],
        rejected: &["{unclosed}"],
        kafka_rejected: None,
    },
    // A header alone is an empty table; a message must be accounted for.
    Case {
        input: b"a,b\n",
        records: &[],
        rejected: &[],
        kafka_rejected: Some(&[HEADER_ONLY]),
    },
];

/// What one source made of each case: (records, rejection reasons).
type Results = Vec<(Vec<String>, Vec<String>)>;

/// Per case, the records of `output` and the reasons of `dead_letters`,
/// sorted into cases by `case_of` (given an `_origin`/`origin` object),
/// records in their order, `_origin` removed.
fn split_by_case(
    output: &str,
    dead_letters: &[serde_json::Value],
    case_of: impl Fn(&serde_json::Value) -> usize,
) -> Results {
    let mut results: Results = vec![(Vec::new(), Vec::new()); CASES.len()];
    for line in output.lines() {
        let mut record: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(line).unwrap();
        let origin = record.remove("_origin").expect("--origin");
        results[case_of(&origin)]
            .0
            .push(serde_json::to_string(&record).unwrap());
    }
    let mut dead: BTreeMap<(usize, u64), Vec<String>> = BTreeMap::new();
    for (n, letter) in dead_letters.iter().enumerate() {
        let case = case_of(&letter["origin"]);
        let reason = letter["reason"].as_str().unwrap().to_string();
        dead.entry((case, n as u64)).or_default().push(reason);
    }
    for ((case, _), reasons) in dead {
        results[case].1.extend(reasons);
    }
    results
}

/// What `case` should give, with a source's wording for positions.
fn expected(
    case: &Case,
    kafka: bool,
    unusable: &dyn Fn(u64) -> String,
    unclosed: &str,
) -> (Vec<String>, Vec<String>) {
    let records = case.records.iter().map(|r| r.to_string()).collect();
    let rejected = match (kafka, case.kafka_rejected) {
        (true, Some(rejected)) => rejected,
        _ => case.rejected,
    };
    let reasons = rejected
        .iter()
        .map(|reason| match *reason {
            "{unclosed}" => unclosed.to_string(),
            other => match other.strip_prefix("{unusable ") {
                Some(pos) => unusable(pos.trim_end_matches('}').parse().unwrap()),
                None => other.to_string(),
            },
        })
        .collect();
    (records, reasons)
}

fn check(source: &str, results: &Results, want: impl Fn(&Case) -> (Vec<String>, Vec<String>)) {
    for (case, got) in CASES.iter().zip(results) {
        assert_eq!(
            *got,
            want(case),
            "{source}, input {:?}",
            String::from_utf8_lossy(case.input)
        );
    }
}

fn on_line(line: u64) -> String {
    format!("the CSV header on line {line} is unusable")
}

#[test]
fn every_case_from_files() {
    let dir = Dir::new();
    let paths: Vec<String> = (0..CASES.len())
        .map(|n| dir.file(&format!("case{n}.csv"), CASES[n].input))
        .collect();
    let dead = dir.path("dead.jsonl");
    let mut args = vec!["--origin", "file", "--dead-letter", &dead];
    args.extend(paths.iter().map(String::as_str));
    let out = common::run(&args);
    assert_eq!(out.code, 3, "{}", out.stderr);
    let case_of = |origin: &serde_json::Value| {
        let path = origin["path"].as_str().unwrap();
        paths.iter().position(|p| p == path).unwrap()
    };
    let dead = read_json_lines(std::path::Path::new(&dead));
    let results = split_by_case(&out.stdout, &dead, case_of);
    let unclosed =
        "unclosed quote: the record that starts on this line runs to the end of the input";
    check("file", &results, |case| {
        expected(case, false, &on_line, unclosed)
    });
}

#[test]
fn every_case_from_tcp_connections() {
    let dir = Dir::new();
    let dead = dir.path("dead.jsonl");
    let mut server = Server::start(&["--origin", "-v", "--format", "csv", "--dead-letter", &dead]);
    for (n, case) in CASES.iter().enumerate() {
        let mut client = server.connect();
        client.write_all(case.input).unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        server.stderr.wait_for(&format!(
            "conn{{peer={} conn={}}}: closed by the client",
            client.local_addr().unwrap(),
            n + 1
        ));
    }
    assert_eq!(server.stop().code(), Some(3));
    let output: String = server
        .stdout
        .drain()
        .iter()
        .map(|line| format!("{line}\n"))
        .collect();
    let case_of = |origin: &serde_json::Value| origin["conn"].as_u64().unwrap() as usize - 1;
    let dead = read_json_lines(std::path::Path::new(&dead));
    let results = split_by_case(&output, &dead, case_of);
    let unclosed =
        "unclosed quote: the record that starts on this line runs to the end of the connection";
    check("tcp", &results, |case| {
        expected(case, false, &on_line, unclosed)
    });
}

#[test]
fn every_case_from_kafka_messages() {
    let brokers = bootstrap();
    let topic = unique("csv-rules");
    create_topic(brokers, &topic, 1);
    let messages: Vec<TestMessage> = CASES
        .iter()
        .map(|case| TestMessage {
            value: Some(case.input.to_vec()),
            ..TestMessage::default()
        })
        .collect();
    produce(brokers, &topic, &messages);
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("dead.jsonl");
    let output = run_with_deadline(
        streamer(brokers)
            .args([
                "--origin",
                "kafka",
                "-t",
                &topic,
                "-g",
                &unique("csv-rules-g"),
            ])
            .args(["--until-end", "--format", "csv", "--dead-letter"])
            .arg(&dead),
        Duration::from_secs(60),
    );
    assert_eq!(
        output.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let case_of = |origin: &serde_json::Value| origin["offset"].as_u64().unwrap() as usize;
    let stdout = String::from_utf8(output.stdout).unwrap();
    let results = split_by_case(&stdout, &read_json_lines(&dead), case_of);
    for (offset, (case, got)) in CASES.iter().zip(&results).enumerate() {
        let unusable = |_| format!("the CSV header at offset {offset} is unusable");
        let unclosed =
            "unclosed quote: the record that starts at this offset runs to the end of the message";
        assert_eq!(
            *got,
            expected(case, true, &unusable, unclosed),
            "kafka, input {:?}",
            String::from_utf8_lossy(case.input)
        );
    }
}
